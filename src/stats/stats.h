/*
 * stats/stats.h
 *	  Decision statistics and progress of long operations, in shared memory
 *	  (stats/stats.c, stats/progress.c; the protocols are at the top of each
 *	  file, the design in docs/statistics.md).  Both need kaireon in
 *	  shared_preload_libraries; without it the counting calls do nothing and
 *	  the views raise 55000.
 */
#ifndef KAIREON_STATS_STATS_H
#define KAIREON_STATS_STATS_H

#include "postgres.h"

/*
 * Why a candidate was dropped: one value per (stage, reason) pair, the stage
 * being the pipeline's dropped_stage.  The statistics count drops in fixed
 * arrays indexed by this list; kaireon.stat_decisions shows them as
 * {"stage": {"reason": n}}.  The rule or policy that refused a candidate is
 * named by recommend's debug output and the trace, not counted here.
 */
#define KSTAT_DROP_LIST(X) \
	X(KDROP_SCHEDULE, "candidates", "outside_schedule") \
	X(KDROP_INVENTORY, "candidates", "not_in_inventory") \
	X(KDROP_EXCLUDED, "candidates", "excluded") \
	X(KDROP_DEDUPLICATE, "candidates", "already_placed") \
	X(KDROP_NO_CREATIVE, "candidates", "no_creative") \
	X(KDROP_ELIGIBILITY, "eligibility", "rule_failed") \
	X(KDROP_FIT, "fit", "rule_failed") \
	X(KDROP_GUARDRAIL, "guardrail", "guardrail_failed") \
	X(KDROP_CONSENT, "consent", "consent_revoked") \
	X(KDROP_SUPPRESSION, "suppression", "suppressed") \
	X(KDROP_CONTACT_POLICY, "contact_policy", "policy_refused") \
	X(KDROP_VOLUME, "volume_constraint", "limit_reached") \
	X(KDROP_BUDGET, "budget", "limit_reached") \
	X(KDROP_DUAL_PRICE, "arbitration", "below_dual_price") \
	X(KDROP_RESPONSE_CAP, "arbitration", "per_response_cap") \
	X(KDROP_CAP, "cap", "no_unit_left") \
	X(KDROP_HOLDOUT, "candidates", "offer_holdout") \
	X(KDROP_FILTER, "filter", "filter_failed") \
	X(KDROP_EXTENSION, "extension_point", "dropped")

#define KSTAT_DROP_ENUM(e, stage, reason) e,
typedef enum KDropReason
{
	KSTAT_DROP_LIST(KSTAT_DROP_ENUM)
	KSTAT_NDROPS
} KDropReason;
#undef KSTAT_DROP_ENUM

/* What one decision adds to its tenant's and channel's counters (filled by the pipeline). */
typedef struct KStatDecision
{
	int32		candidates;		/* active offers considered, over all placements */
	int32		cap_refusals;	/* candidates refused by a volume constraint or budget */
	int32		drops[KSTAT_NDROPS];
} KStatDecision;

/* module init (kaireon.c): the settings, and the shared memory when preloaded */
extern void kaireon_stats_init(void);
extern void kaireon_progress_init(void);

/* stats.c: 55000 for what needs kaireon in shared_preload_libraries */
extern void kaireon_stats_need_preload(const char *what) pg_attribute_noreturn();

/* who sees which rows of kaireon.stat_decisions and kaireon.progress (stats.c) */
typedef enum KStatScope
{
	KSTAT_SEE_TENANT,			/* one tenant's rows of this database */
	KSTAT_SEE_DATABASE,			/* every row of this database */
	KSTAT_SEE_CLUSTER			/* every row (superusers) */
} KStatScope;
extern KStatScope kaireon_stat_scope(const char **tenant);
extern bool kaireon_stat_visible(KStatScope scope, const char *tenant, Oid dbid, const char *row_tenant);

/* stats.c: counting (no-ops without shared memory; never raise) */
extern void kaireon_stat_decision(const char *tenant_id, const char *channel_id, bool dry_run,
								  const KStatDecision *d, int64 elapsed_us);
extern void kaireon_stat_error(const char *tenant_id, const char *channel_id);
extern void kaireon_stat_config(const char *tenant_id, bool compiled);
extern void kaireon_stat_respond(const char *tenant_id, const char *channel_id, int classification);

/* progress.c: the long operation this backend runs (nested calls keep the outermost row) */
extern void kaireon_progress_start(const char *operation, const char *tenant_id, int64 total);
extern void kaireon_progress_update(const char *phase, int64 done, int64 total);
extern void kaireon_progress_end(void);

#endif							/* KAIREON_STATS_STATS_H */
