/*
 * rt.h
 *	  Arbitration's compiled part of a tenant configuration (KArbConfig, hung
 *	  on KTenantConfig.arb and freed with it) and the per-request state
 *	  (KArbRequest), shared by rtconfig.c, realtime.c and exp3.c.
 */
#ifndef KAIREON_ARB_RT_H
#define KAIREON_ARB_RT_H

#include "util/json.h"

#include "config/config.h"

/* PRIE weights: P, R, I, E, and the share of I that comes from revenue (the rest from margin). */
typedef struct KArbWeights
{
	double		w[4];			/* P, R, I, E; a profile's sum to 1 */
	double		revenue_share;	/* I = V^s * M^(1-s): V normalised value, M normalised margin */
} KArbWeights;

/* An arbitration profile: one weight vector, or EXP3-IX arms. */
typedef struct KArbProfile
{
	const char *id;
	const char *key;
	int			narms;			/* 0: plain weights in arms[0] */
	KArbWeights *arms;			/* max(narms, 1) */
	double		gamma,
				eta,
				beta;			/* EXP3-IX hyper-parameters */
} KArbProfile;

/* A constraint as recommend sees it. */
typedef struct KArbRtConstraint
{
	const char *key;
	const char *name;
	const char *channel_id;		/* channel scope: covers only this channel; NULL: any */
	double	   *cost;			/* per offer: what a decision of it costs (0: not covered) */
	double		per_response;	/* > 0: per-response cap */
	bool		priced;			/* has a calendar-period limit: a dual price applies */
} KArbRtConstraint;

/* Arbitration's compiled part of a tenant configuration. */
typedef struct KArbConfig
{
	int			nprofiles;
	KArbProfile *profiles;
	int		   *flow_profile;	/* per flow: profile index, -1 none */
	const char **flow_missing;	/* per flow: the profile key it names that does not exist, or NULL */
	int			ncons;
	KArbRtConstraint *cons;
	bool		any_priced;
	bool		any_per_response;
	bool		any_bandit;
	bool		enabled;		/* tenant_settings.realtime_arbitration_enabled */
	/* the state read at most once per kaireon.arbitration_refresh_ms */
	MemoryContext state_cxt;
	bool		loaded;
	TimestampTz loaded_at;
	bool		has_version;
	int64		lambda_version;
	double	   *lambda;			/* per constraint */
	double	  **gains;			/* per profile: per arm cumulative reward estimates */
	SPIPlanPtr	state_plan;
} KArbConfig;

/* Per-request state. */
typedef struct KArbRequest
{
	KArbConfig *ac;
	int			profile;		/* the placement's profile, or -1 */
	int			arm;			/* the drawn arm, or -1 */
	double		arm_probability;
	KArbWeights weights;		/* the placement's weights */
	double	   *placement_w;	/* a copy of weights.w per placement, which candidates point to */
	bool		priced;			/* prices were applied */
	double	   *resp_used;		/* per constraint: used of its per-response cap in this request */
	bool		batch;
} KArbRequest;

/* rtconfig.c */
extern KArbConfig *karb_config(KTenantConfig *cfg);
extern void karb_refresh_state(KTenantConfig *cfg, KArbConfig *ac, bool force);
extern void karb_forget_state(KTenantConfig *cfg);

/* exp3.c */
extern void karb_exp3_probabilities(const KArbProfile *p, const double *gains, double *prob);
extern int	karb_exp3_draw(const double *prob, int n, double u);

#endif							/* KAIREON_ARB_RT_H */
