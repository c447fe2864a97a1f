/*
 * decision.h
 *	  The compiled form of a tenant's decisioning configuration, and the
 *	  per-request state of the recommend pipeline.
 *
 * config_cache.c compiles a tenant's offers, creatives, channels, rules,
 * policies, guardrails, flows and caps into these structs once, in a memory
 * context of their own, and keeps them per backend until a committed change to
 * the configuration invalidates them.  The pipeline (recommend.c, rules.c,
 * policies.c) only reads them.  JSON values (offer rows, rule values) are
 * jansson trees allocated in the same context; they are never modified or
 * freed individually.
 */
#ifndef KAIREON_DECISION_H
#define KAIREON_DECISION_H

#include "util/json.h"

#include "executor/spi.h"
#include "utils/timestamp.h"

/* ---- conditions (qualification rules, guardrails, segment filters) ---- */

typedef enum KOp
{
	KOP_EQ, KOP_NEQ, KOP_GT, KOP_GTE, KOP_LT, KOP_LTE, KOP_IN, KOP_NOT_IN,
	KOP_CONTAINS, KOP_STARTS_WITH, KOP_EXISTS, KOP_NOT_EXISTS
} KOp;

/* One comparison of a looked-up value with a constant. */
typedef struct KCond
{
	const char *path;			/* attribute name, or dotted path */
	KOp			op;
	json_t	   *value;			/* constant (array for in/not_in); NULL for exists */
} KCond;

typedef enum KExprKind
{
	KEXPR_ALL, KEXPR_ANY, KEXPR_NOT, KEXPR_CMP
} KExprKind;

/* A boolean expression tree (guardrails, segment filters). */
typedef struct KExpr
{
	KExprKind	kind;
	int			nchildren;
	struct KExpr **children;	/* ALL, ANY: n children; NOT: one */
	KCond		cond;			/* CMP */
} KExpr;

/* ---- scopes ---- */

typedef enum KScopeKind
{
	KSCOPE_GLOBAL, KSCOPE_SEGMENT, KSCOPE_CHANNEL, KSCOPE_CATEGORY,
	KSCOPE_SUB_CATEGORY, KSCOPE_OFFER
} KScopeKind;

typedef struct KScope
{
	KScopeKind	kind;
	const char *id;				/* NULL for global */
	int			segment;		/* index into segments for KSCOPE_SEGMENT, -1 if unknown */
} KScope;

/* ---- catalog ---- */

typedef struct KChannel
{
	const char *id;
	const char *name;
	const char *channel_type;
	bool		implicit_impressions;
	const char *consent_purpose;	/* NULL: no consent needed */
	bool		active;
	json_t	   *row;			/* the row, for guardrails on channel.* */
} KChannel;

typedef struct KPlacement
{
	const char *id;
	const char *channel_id;
	int			max_slots;
	bool		active;
} KPlacement;

typedef struct KCreative
{
	const char *id;
	const char *name;
	int			offer;			/* index into offers */
	const char *channel_id;
	const char *placement_id;	/* NULL: any placement of the channel */
	double		weight;
} KCreative;

typedef struct KOffer
{
	const char *id;
	const char *name;
	const char *category_id;
	const char *sub_category_id;
	bool		active;			/* status = 'active' */
	int			priority;
	double		weight;
	bool		mandatory;
	double		value;
	double		margin;
	double		cost;
	/* schedule */
	bool		has_start, has_end;
	TimestampTz start, end;
	int			days_mask;		/* bit d set: allowed on weekday d (0 = Sunday); 0 = any */
	int			hour_start, hour_end;	/* -1: any hour */
	const char *timezone;		/* NULL: UTC */
	json_t	   *row;			/* the row with custom_fields, for offer.* lookups */
	int			ncreatives;
	int		   *creatives;		/* indexes into creatives */
} KOffer;

/* ---- qualification rules ---- */

typedef enum KRuleType
{
	KRULE_SEGMENT_REQUIRED, KRULE_ATTRIBUTE_CONDITION, KRULE_PROPENSITY_THRESHOLD,
	KRULE_RECENCY_CHECK, KRULE_METRIC_CONDITION, KRULE_OFFER_ATTRIBUTE
} KRuleType;

typedef enum KStage
{
	KSTAGE_ELIGIBILITY, KSTAGE_FIT, KSTAGE_MATCH
} KStage;

typedef struct KRule
{
	const char *id;
	const char *name;
	KRuleType	type;
	KStage		stage;
	int			priority;
	int			nscopes;
	KScope	   *scopes;
	double		multiplier;		/* match stage: factor when the rule fails */
	/* by type */
	KCond		cond;			/* attribute_condition, offer_attribute, metric_condition */
	int			attr_source;	/* attribute_condition: 0 any, 1 customer data, 2 context */
	int			nsegments;		/* segment_required */
	int		   *segments;		/* segment indexes (-1 unknown) */
	bool		match_all;
	double		threshold;		/* propensity_threshold */
	KOp			threshold_op;
	const char *model_key;
	double		within_hours;	/* recency_check */
	bool		require_recent;
	int			level;			/* 0 offer, 1 category, 2 any */
	json_t	   *interaction_types;	/* array or NULL */
	json_t	   *outcomes;		/* array or NULL */
	const char *metric_key;
	const char *dimension_key;
	bool	   *offer_holds;	/* offer_attribute: the result for each offer, computed at compile */
	int8	   *applies;		/* per offer: 1 a scope covers it, 0 none can, -1 depends on the request */
} KRule;

/* ---- contact policies ---- */

typedef enum KPolicyType
{
	KPOL_FREQUENCY_CAP, KPOL_COOLDOWN, KPOL_BUDGET_EXHAUSTED, KPOL_OUTCOME_BASED,
	KPOL_SEGMENT_EXCLUSION, KPOL_TIME_WINDOW, KPOL_MUTUAL_EXCLUSION,
	KPOL_CATEGORY_SUPPRESSION, KPOL_CROSS_CHANNEL_CAP, KPOL_CUSTOMER_TOTAL_CAP,
	KPOL_OFFER_CATEGORY_CAP, KPOL_ALLOW_OVERRIDE, KPOL_METRIC_CONDITION
} KPolicyType;

#define KPOL_NTYPES 13

typedef struct KPolicy
{
	const char *id;
	const char *name;
	KPolicyType type;
	const char *type_name;
	int			priority;
	int			nscopes;
	KScope	   *scopes;
	bool		bypassable;		/* mandatory offers may bypass it */
	bool		engagement;		/* scale caps by engagement health */
	double		engagement_min, engagement_max;
	/* caps and windows */
	int			max_count;
	const char *period;			/* "day", "week", "month" or NULL */
	double		lookback_hours; /* when period is NULL */
	json_t	   *count_types;	/* array of interaction types / outcomes, or NULL */
	json_t	   *ids;			/* offerIds, categoryIds, channelIds, segmentIds */
	int			nsegments;
	int		   *segments;
	json_t	   *outcomes;		/* outcome keys (outcome_based, cooldown, category_suppression) */
	double		hours;			/* cooldown, suppression windows, in hours */
	int			start_hour, end_hour, days_mask;	/* time_window */
	const char *timezone;
	json_t	   *exempt_types;	/* allow_override: rule type names, NULL = all */
	KCond		cond;			/* metric_condition */
	const char *metric_key;
	const char *dimension_key;
	const char *budget_id;
	const char *budget_metric;
	double		budget_threshold;
	int			level;			/* outcome_based: 0 offer, 1 category, 2 any */
	int8	   *applies;		/* per offer: 1 a scope covers it, 0 none can, -1 depends on the request */
} KPolicy;

/* ---- guardrails, segments, flows, caps ---- */

typedef struct KGuardrail
{
	const char *id;
	const char *key;
	const char *name;
	bool		hard;
	KExpr	   *expr;
} KGuardrail;

/*
 * A segment.  Membership is read through the segment's view (exactly the SQL
 * semantics of its filters and joins) by one query per request that tests
 * every segment the rules and policies refer to: slot is its position in that
 * query's result, -1 when nothing refers to it or it is not published.
 */
typedef struct KSegment
{
	const char *id;
	const char *name;
	bool		published;
	const char *view;			/* qualified view name, NULL until published */
	int			slot;
} KSegment;

typedef enum KScoreMethod
{
	KSCORE_PRIORITY_WEIGHTED, KSCORE_PROPENSITY, KSCORE_FORMULA
} KScoreMethod;

typedef enum KPlacementMatch
{
	KPM_STRICT, KPM_FALLBACK, KPM_ANY
} KPlacementMatch;

typedef struct KFlow
{
	const char *id;
	const char *key;
	bool		runnable;		/* published (or active) with a published version */
	bool		is_default;
	int			version;
	json_t	   *config;			/* the published snapshot's config */
	/* compiled from config */
	json_t	   *inv_categories, *inv_sub_categories, *inv_offers, *inv_exclude;
	KPlacementMatch placement_match;
	KScoreMethod method;
	const char *model_key;		/* score.modelKey: the model giving the propensity */
	bool		model_propensity;	/* score.propensitySource "model": the model's score is the
									 * propensity; "adaptive": only the adaptive fallback */
	const char *experiment_key;	/* score.experimentKey: the model comes from this experiment */
	double		w_p, w_r, w_i, w_e;	/* formula weights */
	int			max_offers;		/* default when the request gives none */
	const char *customer_schema;	/* data schema name, NULL = the tenant's customer schema */
} KFlow;

typedef struct KRoute
{
	const char *channel_id;
	const char *placement_id;	/* NULL: any placement */
	int			flow;			/* index into flows */
	int			priority;
} KRoute;

typedef enum KCapKind
{
	KCAP_VOLUME, KCAP_BUDGET
} KCapKind;

/* A volume constraint or budget allocation: counters live in the table, read per request. */
typedef struct KCap
{
	KCapKind	kind;
	const char *id;
	const char *name;
	KScopeKind	scope;
	const char *scope_id;
	const char *period;			/* volume: daily/...; budget: period_type */
	const char *period_key;		/* budgets */
	int64		max_volume;		/* volume */
	bool		has_max_impressions, has_max_spend, has_max_conversions;
	int64		max_impressions;
	double		max_spend;
	int64		max_conversions;
} KCap;

typedef struct KOutcomeType
{
	const char *key;
	int			classification; /* 1 positive, -1 negative, 0 neutral */
} KOutcomeType;

/* The customer data schema recommend reads attributes from. */
typedef struct KCustomerSchema
{
	const char *name;
	const char *qualified_table;	/* quoted schema.table */
	const char *key_column;
	SPIPlanPtr	plan;			/* SELECT t.* ... WHERE key = $1 */
} KCustomerSchema;

/* A tenant's compiled configuration (config_cache.c). */
typedef struct KTenantConfig
{
	char	   *tenant_id;
	int64		version;
	MemoryContext mcxt;
	double		trace_sample_rate;

	int			nchannels;
	KChannel   *channels;
	int			nplacements;
	KPlacement *placements;
	int			noffers;
	KOffer	   *offers;
	int			ncreatives;
	KCreative  *creatives;
	int			nrules;
	KRule	   *rules;			/* by priority, highest first */
	int			nstage_rules[3];
	int		   *stage_rules[3]; /* rule indexes of each stage (eligibility, fit, match), by priority */
	int			npolicies;
	KPolicy    *policies;		/* by priority, highest first */
	int			nguardrails;
	KGuardrail *guardrails;
	int			nsegments;
	KSegment   *segments;
	int			nflows;
	KFlow	   *flows;
	int			default_flow;	/* -1: none */
	int			nroutes;
	KRoute	   *routes;			/* by priority, highest first */
	int			ncaps;
	KCap	   *caps;
	int			noutcomes;
	KOutcomeType *outcomes;
	int			ncustomer_schemas;
	KCustomerSchema *customer_schemas;	/* published customer schemas by name */
	int			nsegment_slots;
	SPIPlanPtr	segment_plan;	/* SELECT ARRAY[EXISTS(view where customer_id = $1), ...] */
	SPIPlanPtr	history_plan;	/* the customer's recent history (customer.c) */
	SPIPlanPtr	suppression_plan;	/* the customer's active suppressions */
	SPIPlanPtr	extras_plan;	/* consent, engagement, metrics, cap usage; NULL when none is read */
	SPIPlanPtr	adaptation_plan;	/* the tenant's adaptive propensity counts */
	MemoryContext adaptation_mcxt;
	json_t	   *adaptation;		/* "<scope>|<id>" -> [positives, negatives] */
	TimestampTz adaptation_loaded_at;
	bool		needs_consent;	/* some channel needs a consent purpose */
	bool		needs_metrics;	/* some rule or policy reads metric values */
	bool		has_engagement; /* some policy scales by engagement health */
	double		max_lookback_hours; /* longest history window a rule or policy reads */
	char		policy_hash[17];	/* 16 hex chars of SHA-256 of the policy snapshot */
	char	   *policy_snapshot;	/* its JSON text */
	struct KArbConfig *arb;		/* arbitration's compiled part, made on first use (arbitration/realtime.c) */
} KTenantConfig;

/* ---- per-request state (recommend.c, customer.c, rules.c, policies.c) ---- */

typedef enum KEventType
{
	KEV_RECOMMENDATION, KEV_IMPRESSION, KEV_OUTCOME
} KEventType;

/* One row of the customer's recent interaction history. */
typedef struct KEvent
{
	KEventType	type;
	const char *outcome;		/* outcome key for KEV_OUTCOME */
	int			classification; /* of the outcome: 1, -1, 0 */
	const char *offer_id;
	const char *category_id;	/* of the offer, when known */
	const char *channel_id;
	bool		mandatory;		/* the offer is mandatory */
	TimestampTz at;
} KEvent;

/* An active suppression of the customer. */
typedef struct KSuppression
{
	KScopeKind	kind;
	const char *id;
	const char *reason;
} KSuppression;

/* What recommend knows about the customer, read once per request. */
typedef struct KCustomer
{
	const char *id;
	json_t	   *data;			/* the customer data row, or NULL */
	json_t	   *context;		/* the request context object */
	json_t	   *attrs;			/* data merged with context (context wins) */
	bool	   *segments;		/* membership by segment slot */
	int			nevents;
	KEvent	   *events;			/* within the longest window any rule or policy reads */
	int			nsuppressions;
	KSuppression *suppressions;
	json_t	   *consent;		/* purpose -> "granted" | "revoked" | "pending" (latest row) */
	bool		has_engagement;
	double		engagement;		/* engagement health score 0..1 */
	json_t	   *metrics;		/* "<metric key>" or "<metric key>|<dimension>" -> number */
} KCustomer;

/* A candidate offer moving through the pipeline. */
typedef struct KCandidate
{
	int			offer;
	int			creative;
	bool		mandatory;		/* mandatory and within the daily allowance */
	double		match;			/* product of match-stage multipliers */
	int			npassed;
	int		   *passed;			/* indexes of the match rules that held */
	double		propensity;		/* < 0 until computed */
	const char *propensity_source;
	int64		propensity_n;
	double		score;
	const char *dropped_stage;	/* NULL while in the running */
	char	   *dropped_reason;
	json_t	   *warnings;		/* soft guardrails */
	double		factors[4];		/* score factors by method: see pipeline.c score_candidates */
	const double *weights;		/* formula: the P, R, I, E weights used (NULL: the flow's) */
	double		price;			/* real-time arbitration: sum of lambda * cost subtracted from the score */
} KCandidate;

/* The request, as the rules and policies see it. */
typedef struct KRequest
{
	KTenantConfig *cfg;
	KCustomer  *cust;
	const char *channel_id;
	int			channel;		/* index, or -1 */
	const char *placement_id;
	int			flow;
	TimestampTz now;
	json_t	   *request;		/* request.* for guardrails: channel, placement, hour, weekday, context */
	json_t	   *cap_usage;		/* cap id -> {"used": n, ...} read this request */
	json_t	   *adaptation;		/* "<scope>|<id>" -> [positives, negatives] */
	/* results that do not depend on the candidate, computed once per request */
	int8	   *rule_memo;		/* per rule: 0 unknown, 1 holds, 2 fails */
	char	  **rule_memo_why;
	int8	   *policy_memo;	/* per policy (under a candidate-independent scope): 0, 1 passes, 2 blocks */
	char	  **policy_memo_why;
	TimestampTz day_start, week_start, month_start;	/* calendar periods of now, UTC */
	/* the model of the placement being decided (decision_models.c) */
	struct KaireonModel *model;	/* NULL: none (no modelKey, untrained, or experiment holdout) */
	const char *model_key;		/* the model's key, also when untrained (it still learns) */
	const char *variant;		/* the experiment variant, or NULL */
	struct KaireonModel **rule_models;	/* per rule: the model its modelKey names, looked up once */
	int8	   *rule_models_done;	/* per rule: 1 once looked up */
	bool		model_memo_valid;	/* model_memo holds the model's score for every candidate */
	struct KArbRequest *arb;	/* arbitration's per-request state (arbitration/realtime.c) */
	double		model_memo;		/* (a model that reads no offer feature scores them all alike) */
} KRequest;

/* rules.c */
extern json_t *kaireon_path(json_t *root, const char *path);
extern json_t *kaireon_offer_attribute(const KOffer *offer, const char *path);
extern bool kaireon_cond_holds(const KCond *cond, json_t *actual);
extern bool kaireon_scope_matches(const KRequest *req, const KScope *scope, const KOffer *offer);
extern bool kaireon_in_segment(const KRequest *req, int segment);
extern void kaireon_qualify(KRequest *req, KCandidate *cand);
extern void kaireon_precompute_offer_rule(KTenantConfig *cfg, KRule *rule);
extern int8 *kaireon_static_applicability(KTenantConfig *cfg, int nscopes, const KScope *scopes);
extern void kaireon_apply_guardrails(KRequest *req, KCandidate *cand);
extern double kaireon_propensity(KRequest *req, KCandidate *cand);

/* policies.c */
extern void kaireon_apply_policies(KRequest *req, KCandidate *cand);
extern void kaireon_apply_caps(KRequest *req, KCandidate *cand);
extern bool kaireon_cap_applies(const KRequest *req, const KCap *c, const KOffer *offer);
extern TimestampTz kaireon_period_start(const char *period, TimestampTz now);

/* customer.c */
extern void kaireon_prepare_state_plan(KTenantConfig *cfg);
extern json_t *kaireon_tenant_adaptation(KTenantConfig *cfg);
extern int	kaireon_adaptation_refresh_ms;
extern KCustomer *kaireon_load_customer(KRequest *req, const char *customer_id, json_t *context,
										const char *schema_name);
extern json_t *kaireon_customer_attributes(KTenantConfig *cfg, const char *customer_id, json_t *context,
										  const char *schema_name);

/* ---- the decision (pipeline.c, persist.c, recommend.c) ---- */

/* What a caller asks for. */
typedef struct KDecideArgs
{
	const char *tenant_id;
	const char *customer_id;
	const char *channel_id;
	json_t	   *placements;		/* placement ids (strings); empty: the request names none */
	const char *flow_key;		/* NULL: route or default */
	json_t	   *context;
	int			max_offers;		/* 0: the flow's default */
	bool		dry_run;
	bool		debug;
	bool		force_trace;
	bool		deduplicate;	/* grouped placements: an offer in one placement only */
	json_t	   *exclude_offers;
	json_t	   *exclude_creatives;
	bool		batch;			/* a campaign's candidates: every one ranked, no explanation, no
								 * real-time prices or per-response caps (the campaign solves those) */
} KDecideArgs;

/* One returned decision. */
typedef struct KDecision
{
	KCandidate *cand;
	int			rank;			/* within its placement, from 1 */
	const char *placement_id;	/* the requested placement, or NULL */
	int			flow;
	char	   *interaction_id;
	json_t	   *explanation;
	struct KaireonModel *model; /* the placement's ranking model, or NULL */
	const char *model_key;		/* the placement's model (recorded for learning from outcomes) */
	double		selection_probability;	/* of a stochastic policy's choice (EXP3-IX arm), or 0: none */
	int			arm;			/* EXP3-IX arm, or -1 */
	const char *profile_id;		/* arbitration profile whose weights scored it, or NULL */
} KDecision;

/* What the pipeline returns. */
typedef struct KDecideResult
{
	char	   *recommendation_id;
	KRequest   *req;
	int			ndecisions;
	KDecision  *decisions;
	int			ndropped;
	KCandidate **dropped;		/* with dropped_stage and reason, for debug */
	const char **dropped_placement;
	json_t	   *funnels;		/* one funnel object per placement */
	bool		traced;
} KDecideResult;

extern KDecideResult *kaireon_decide(KDecideArgs *args);
extern json_t *kaireon_factors_json(const KFlow *flow, const KCandidate *c);
extern bool kaireon_scored_by_propensity(const KFlow *flow, const KCandidate *c);
extern char *kaireon_new_uuid(void);

/* decision_models.c */
extern void kaireon_request_model(KRequest *req, const KFlow *flow, const char *customer_id, bool dry_run);
extern double kaireon_candidate_model_score(KRequest *req, struct KaireonModel *model, const KOffer *offer);
extern struct KaireonModel *kaireon_rule_model(KRequest *req, const KRule *rule);
extern void kaireon_log_shadow_scores(KDecideResult *res, const char *customer_id);
extern bool kaireon_learn_outcome(KTenantConfig *cfg, const char *model_key, const char *offer_id,
								  const char *customer_id, const char *flow_id, json_t *context, int cls);

/* persist.c */
extern bool kaireon_reserve_caps(KRequest *req, KCandidate *cand);
extern void kaireon_record_decisions(KDecideResult *res, KDecideArgs *args);
extern void kaireon_record_trace(KDecideResult *res, KDecideArgs *args, double duration_ms);

/* config_cache.c */
extern void kaireon_config_cache_init(void);
extern KTenantConfig *kaireon_config_get(const char *tenant_id);
extern int	kaireon_find_offer(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_channel(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_placement(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_flow(const KTenantConfig *cfg, const char *key);
extern int	kaireon_find_segment(const KTenantConfig *cfg, const char *id);
extern int	kaireon_outcome_class(const KTenantConfig *cfg, const char *key, bool *found);
extern bool kaireon_parse_op(const char *name, KOp *op);

#endif							/* KAIREON_DECISION_H */
