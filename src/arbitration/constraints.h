/*
 * constraints.h
 *	  The global and per-response constraints arbitration prices: cross-offer
 *	  constraints (channel_quota, portfolio_budget, category_cap), budget
 *	  allocations (impressions, spend), volume constraints, and a campaign
 *	  run's own volume constraints, in one form (docs/arbitration.md).
 */
#ifndef KAIREON_ARB_CONSTRAINTS_H
#define KAIREON_ARB_CONSTRAINTS_H

#include "util/json.h"

#include "config/config.h"

/* Where a constraint comes from. */
typedef enum KArbSource
{
	KARB_SRC_CROSS_OFFER,
	KARB_SRC_BUDGET,
	KARB_SRC_VOLUME,
	KARB_SRC_RUN
} KArbSource;

/* One constraint: what it covers, what a decision costs it, its limits. */
typedef struct KArbConstraint
{
	char	   *key;			/* unique: cross_offer:<id>[:<category>], budget:<id>:spend, volume:<id>, run:... */
	char	   *id;				/* the row's id (run constraints: the run's id) */
	char	   *name;
	KArbSource	source;
	const char *type;			/* channel_quota, portfolio_budget, category_cap, budget_spend,
								 * budget_impressions, volume, run_total, run_offer, run_category,
								 * run_channel */
	KScopeKind	scope;			/* global, channel, category or offer */
	char	   *scope_id;
	char	   *cost_field;		/* NULL: a decision costs 1; else cost, value, margin or a custom field */
	bool		has_limit;		/* a global limit over its period */
	double		limit;
	char	   *period;			/* daily, weekly, monthly, quarterly, total or run */
	double		used;			/* consumed in the current period (karb_read_usage) */
	double		per_response;	/* > 0: at most this much in one response (one customer in a campaign) */
	bool		scope_known;	/* the channel, category or offer it names exists */
} KArbConstraint;

typedef struct KArbConstraintSet
{
	int			n;
	KArbConstraint *items;
} KArbConstraintSet;

/*
 * The tenant's active constraints (inside an SPI connection): cross-offer
 * constraints (a global category_cap becomes one constraint per category),
 * and, when with_caps, the current budget allocations and volume constraints
 * and the run's own limits (run_limits: runs.volume_constraints, may be NULL).
 */
extern KArbConstraintSet *karb_load_constraints(const KTenantConfig *cfg, bool with_caps,
												json_t *run_limits, const char *run_id);

/* What a decision of the offer on the channel costs the constraint (0: not covered). */
extern double karb_offer_cost(const KArbConstraint *k, const KOffer *o, const char *channel_id);

/* Start and end of the constraint's current period at t (false for run and total periods). */
extern bool karb_period_bounds(const char *period, TimestampTz t, TimestampTz *start, TimestampTz *end);

/*
 * Fill each constraint's used: what the current period has consumed up to t
 * (recorded recommendations for cross-offer constraints; the counters for
 * budgets and volume constraints; 0 for run limits).
 */
extern void karb_read_usage(const KTenantConfig *cfg, KArbConstraintSet *set, TimestampTz t);

#endif							/* KAIREON_ARB_CONSTRAINTS_H */
