/*
 * config/config.h
 *	  The compiled form of a tenant's decisioning configuration, and the
 *	  configuration cache that makes and keeps it (compile.c, cache.c).
 *
 * compile.c (with eligibility.c) compiles a tenant's offers, creatives,
 * channels, rules, policies, guardrails, flows and caps into these structs
 * once, in a memory context of their own; cache.c keeps them per backend
 * until a committed change to the configuration invalidates them (protocol
 * at the top of cache.c); lookup.c finds things in them by id.  Everything
 * above config/ (the recommend pipeline, respond, arbitration, campaigns) only
 * reads them.  JSON values (offer rows, rule values) are jansson trees
 * allocated in the same context; they are never modified or freed
 * individually.  conditions.h has the pure condition and scope tests over
 * these structs; state_plan.c prepares the per-request customer-state queries.
 */
#ifndef KAIREON_CONFIG_H
#define KAIREON_CONFIG_H

#include "util/json.h"

#include "executor/spi.h"
#include "utils/timestamp.h"

#include "config/types.h"

/* ---- conditions (qualification rules, guardrails, segment filters) ---- */

typedef enum KOp
{
	KOP_EQ, KOP_NEQ, KOP_GT, KOP_GTE, KOP_LT, KOP_LTE, KOP_IN, KOP_NOT_IN,
	KOP_CONTAINS, KOP_STARTS_WITH, KOP_EXISTS, KOP_NOT_EXISTS,
	KOP_REGEX					/* flow graphs' filter nodes only (docs/flows.md) */
} KOp;

/* One comparison of a looked-up value with a constant. */
typedef struct KCond
{
	const char *path;			/* attribute name, or dotted path */
	KOp			op;
	json_t	   *value;			/* constant (array for in/not_in); NULL for exists */
	void	   *regex;			/* KOP_REGEX: the pattern compiled once (regex_t), else NULL */
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

/* KScopeKind: config/types.h */
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

/* A creative's content compiled for personalization (template.c). */
typedef struct KTemplate KTemplate;

typedef struct KCreative
{
	const char *id;
	const char *name;
	int			offer;			/* index into offers */
	const char *channel_id;
	int			channel;		/* index into channels, or -1 */
	const char *placement_id;	/* NULL: any placement of the channel */
	int			placement;		/* index into placements; -1: none named, -2: not a placement now */
	double		weight;
	json_t	   *content;		/* the content object as stored */
	KTemplate  *content_tpl;	/* its placeholders compiled, or NULL: none */
} KCreative;

/*
 * The columns of a tenant's offer rows, sorted by name (strcmp): every row of
 * to_jsonb(offers) has the same, so the offers share one list and each keeps
 * only its values by column (compile.c, load_offers).
 */
typedef struct KOfferShape
{
	int			ncolumns;
	const char **names;
} KOfferShape;

typedef struct KOffer
{
	const char *id;
	const char *name;
	const char *category_id;
	const char *category_name;	/* the category's name, or NULL */
	int			category;		/* ordinal of category_id among the offers' categories, -1: none */
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
	/* the row, for offer.* lookups (kaireon_offer_column, kaireon_offer_attribute) */
	const KOfferShape *shape;	/* its column names, shared by the tenant's offers */
	json_t	  **fields;			/* its values by column; NULL: SQL or JSON null */
	double		holdout_percent;	/* the offer's holdout group, 0..100 (docs/lift.md) */
	int			ncreatives;
	int		   *creatives;		/* indexes into creatives */
	/* what can apply to it, bound at compile (eligibility.c, bind_offer): the candidate loop visits only these */
	int			nbound_rules[3];
	int		   *bound_rules[3]; /* rule indexes of each stage whose scopes can cover it, in stage order */
	int			qual_class;		/* its qualification class (eligibility.c, bind_offer): the offers whose
								 * bound rules give one verdict in any request share one, and
								 * decision/rules.c qualifies one offer of a class per request;
								 * -1: a bound rule reads the candidate, or none is bound */
	int			nbound_policies;
	struct KPolicyBinding *bound_policies;	/* policies (not allow_override) that can block it, by priority */
	int			nbound_overrides;
	struct KPolicyBinding *bound_overrides; /* allow_override policies that can exempt it, by priority */
	int			policy_class;	/* its policy class (eligibility.c, bind_offer): offers of one category
								 * with the same bindings, some evaluated once per request or
								 * category; decision/policies.c finds the first of those that
								 * blocks once per class; -1: none */
	int			nown_policies;	/* of a policy class: the bindings in bound_policies (indexes, */
	int		   *own_policies;	/* ascending) evaluated per candidate (neither independent nor per_category) */
	bool		own_need_offer_event;	/* every one of those is a policy that blocks only an offer an
										 * event of the customer names (kaireon_policy_needs_offer_event) */
	struct KOfferPool *creative_pool;	/* its creatives for the last channel, placement and match
										 * mode picked without exclusions (decision/creatives.c) */
} KOffer;

/* ---- qualification rules ---- */

/* KRuleType: config/types.h */

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

/* KPolicyType: config/types.h */

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

/*
 * A contact policy bound to an offer it can apply to: scope is the index of the
 * policy's scope that covers the offer whatever the request (the first that covers,
 * no request-dependent scope before it), or -1 when which scope covers it depends on
 * the request (segments, channel): then the loop matches the scopes.
 */
typedef struct KPolicyBinding
{
	int			policy;			/* index into policies */
	int			scope;			/* index into its scopes, or -1 */
	bool		independent;	/* under that scope its verdict is the same for every candidate
								 * (kaireon_policy_independent): evaluated once per request */
	bool		per_category;	/* its verdict is the same for every offer of this offer's category
								 * (kaireon_policy_per_category): evaluated once per category */
} KPolicyBinding;

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
 * An active trigger rule (docs/triggers.md): fires its action when an event
 * of event_type ('outcome' or an outcome type key) satisfies the condition.
 */
typedef struct KTriggerRule
{
	const char *id;
	const char *name;
	const char *event_type;
	const char *action_type;
	json_t	   *action_config;
	int			priority;
	int64		cooldown_ms;
	KExpr	   *cond;			/* NULL: always holds */
} KTriggerRule;

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

/* ---- flow graphs (draft_config version 2, docs/flows.md; compiled by flowgraph.c) ---- */

#define KNODE_TYPE_LIST(X) \
	X(KNODE_INVENTORY, "inventory") \
	X(KNODE_MATCH_CREATIVES, "match_creatives") \
	X(KNODE_ENRICH, "enrich") \
	X(KNODE_QUALIFY, "qualify") \
	X(KNODE_CONTACT_POLICY, "contact_policy") \
	X(KNODE_FILTER, "filter") \
	X(KNODE_CONDITIONAL, "conditional") \
	X(KNODE_CALL_FLOW, "call_flow") \
	X(KNODE_SCORE, "score") \
	X(KNODE_OPTIMIZE, "optimize") \
	X(KNODE_RANK, "rank") \
	X(KNODE_GROUP, "group") \
	X(KNODE_COMPUTE, "compute") \
	X(KNODE_SET_PROPERTIES, "set_properties") \
	X(KNODE_RESPONSE, "response") \
	X(KNODE_EXTENSION_POINT, "extension_point")

#define KNODE_ENUM(e, name) e,
typedef enum KNodeType
{
	KNODE_TYPE_LIST(KNODE_ENUM)
	KNODE_NTYPES
} KNodeType;
#undef KNODE_ENUM

extern const char *const kaireon_node_type_names[];	/* NULL-terminated, by KNodeType */

/* What a conditional node branches on. */
typedef enum KBranchBy
{
	KBRANCH_SEGMENT, KBRANCH_ATTRIBUTE, KBRANCH_EXPERIMENT, KBRANCH_CHANNEL
} KBranchBy;

/* One branch of a conditional node: taken when its test holds (first in order wins). */
typedef struct KBranch
{
	const char *name;
	int			next;			/* node index its edge leads to */
	const char *segment_id;		/* KBRANCH_SEGMENT: the segment */
	int			segment;		/* its index (-1: unknown or unpublished, never holds) */
	KExpr	   *when;			/* KBRANCH_ATTRIBUTE: customer.* / request.* / channel.* expression */
	const char *arm;			/* KBRANCH_EXPERIMENT: the experiment variant */
	json_t	   *channels;		/* KBRANCH_CHANNEL: channel ids */
} KBranch;

/* A compute node's expression: a number, a field, or an operation over sub-expressions. */
typedef enum KCalcKind
{
	KCALC_NUMBER, KCALC_FIELD, KCALC_ADD, KCALC_SUB, KCALC_MUL, KCALC_DIV, KCALC_MIN, KCALC_MAX
} KCalcKind;

typedef struct KCalc
{
	KCalcKind	kind;
	double		number;
	const char *field;			/* offer.*, customer.*, request.*, candidate.score|propensity|<computed> */
	int			computed;		/* candidate.<computed field>: its index, else -1 */
	int			nargs;
	struct KCalc **args;
} KCalc;

/* One node of a compiled flow graph: its type's parameters and its successor(s) as indexes. */
/* What a flow graph's rank node orders by (docs/flows.md); names in flowgraph.c's kflow_rank_by_names. */
typedef enum KRankBy
{
	KRANK_SCORE, KRANK_PRIORITY, KRANK_VALUE, KRANK_MARGIN, KRANK_COST
} KRankBy;

typedef struct KNode
{
	const char *id;
	KNodeType	type;
	int			next;			/* the successor's index, -1: none (a response node) */
	/* inventory */
	json_t	   *inv_categories, *inv_sub_categories, *inv_offers, *inv_exclude;
	/* match_creatives; inventory: its successor is match_creatives (one pass picks creatives) */
	KPlacementMatch placement_match;
	bool		fuse_creatives;
	/* qualify, contact_policy: which rules / policies apply here (NULL: all of the tenant's) */
	bool	   *only;			/* per rule (qualify) or policy (contact_policy) index */
	bool		guardrails;		/* qualify: the guardrails too */
	bool		caps;			/* contact_policy: volume constraints and budgets too */
	/* score: the score parameters (a copy of the flow with the node's score object) */
	struct KFlow *spec;
	/* optimize: an arbitration profile key (NULL: the flow's), dual prices on/off */
	const char *profile_key;
	bool		prices;
	/* rank: the key the response selects by (KRANK_SCORE: the fixed pipeline's order), ascending? */
	KRankBy		rank_by;
	bool		rank_asc;
	/* filter */
	KExpr	   *expr;
	/* conditional */
	KBranchBy	by;
	int			nbranches;
	KBranch    *branches;
	int			otherwise;		/* the default edge's node, -1: none (the path ends) */
	/* call_flow */
	const char *flow_key;
	int			flow;			/* index into the tenant's flows, -1: not found (55000 when run) */
	/* compute */
	int			computed;		/* index of the computed field it sets, -1: the score */
	KCalc	   *calc;
	/* set_properties */
	json_t	   *properties;
	/* response: maxOffers (0: the request's or flow's), fields shown in each explanation */
	int			max_offers;
	json_t	   *fields;
	/* enrich: a customer data schema read into customer.<as> */
	const char *schema;
	const char *as;
	/* extension_point: a SQL function, its time budget */
	const char *function;
	int			timeout_ms;
	/* group: placements filled jointly */
	json_t	   *placements;
} KNode;

/* A flow's compiled graph: version 1 flows compile into the linear graph of the fixed pipeline. */
typedef struct KGraph
{
	int			version;		/* 1 or 2 */
	int			nnodes;
	KNode	   *nodes;
	int			entry;
	int			ncomputed;		/* distinct computed field names */
	const char **computed;
} KGraph;

/* Most nested call_flow calls (checked at publish, guarded when run). */
#define KAIREON_FLOW_CALL_DEPTH 8

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
	const char *profile_key;	/* score.profileKey: the arbitration profile of its formula weights */
	double		w_p, w_r, w_i, w_e;	/* formula weights */
	int			max_offers;		/* default when the request gives none */
	const char *customer_schema;	/* data schema name, NULL = the tenant's customer schema */
	double		control_percent;	/* controlGroupPercent: the flow's control group, 0..100 */
	json_t	   *control_answer; /* controlAnswer: offer ids its control group gets, or NULL */
	const char *flow_experiment_key;	/* flowExperiment: the A/B test of flows it enters, or NULL */
	int			flow_experiment;	/* index into flow_experiments, -1: none (docs/lift.md) */
	KGraph	   *graph;			/* the compiled graph the executor runs (flowgraph.c) */
} KFlow;

/*
 * A flow A/B test: an experiment whose traffic_split is {"flows": {flowKey:
 * weight}} (docs/lift.md, "Flow A/B tests").  Arms are by key in C collation,
 * as kaireon.assign_variant orders them.
 */
typedef struct KFlowExperiment
{
	const char *key;
	bool		running;		/* status 'running': assigns customers */
	int			narms;
	const char **arms;			/* flow keys */
	int		   *arm_flows;		/* index into flows, -1: not a flow now */
	double	   *weights;
	double		total;			/* sum of the weights */
} KFlowExperiment;

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
	KaireonOutcomeClass classification;
} KOutcomeType;

/* The customer data schema recommend reads attributes from. */
typedef struct KCustomerSchema
{
	const char *name;
	const char *qualified_table;	/* quoted schema.table */
	const char *key_column;
	SPIPlanPtr	plan;			/* SELECT t.* ... WHERE key = $1 */
	/* the catalog facts the plan was made of, checked again after an invalidation of the table (cache.c) */
	Oid			table;
	Oid			pk_index;
} KCustomerSchema;

/* A tenant's compiled configuration (compile.c; kept by cache.c). */
typedef struct KTenantConfig
{
	char	   *tenant_id;
	int64		version;
	MemoryContext mcxt;
	double		trace_sample_rate;
	double		control_percent;	/* tenant_settings.control_group_percent, 0..100 */
	bool		identity_links; /* the tenant has identity links: decisions resolve identifiers
								 * (decision/identity.c, docs/identity.md) */

	int			nchannels;
	KChannel   *channels;
	int			nplacements;
	KPlacement *placements;
	int			noffers;
	KOffer	   *offers;
	int			ncategories;	/* distinct category ids of the offers (KOffer.category) */
	int			ncreatives;
	KCreative  *creatives;
	int			nrules;
	KRule	   *rules;			/* by priority, highest first */
	int			nstage_rules[3];
	int		   *stage_rules[3]; /* rule indexes of each stage (eligibility, fit, match), by priority */
	int			nqual_classes;	/* qualification classes of the offers (KOffer.qual_class) */
	int			npolicy_classes;	/* policy classes of the offers (KOffer.policy_class) */
	int			npolicies;
	KPolicy    *policies;		/* by priority, highest first */
	int			nguardrails;
	KGuardrail *guardrails;
	int			ntrigger_rules;
	KTriggerRule *trigger_rules;	/* active, by priority, highest first, then id */
	int			njourney_events;
	char	  **journey_events;	/* the event types the event waits of the tenant's published
								 * journey versions wait for (distinct): the events that
								 * may wake an enrolment (decision/wake.c, docs/journeys.md) */
	int			nsegments;
	KSegment   *segments;
	int			nflows;
	KFlow	   *flows;
	int			default_flow;	/* -1: none */
	int			nflow_experiments;
	KFlowExperiment *flow_experiments;	/* those the flows name (flowExperiment) */
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
	SPIPlanPtr	history_plan;	/* the customer's recent history (state_plan.c; read by decision/customer.c) */
	SPIPlanPtr	suppression_plan;	/* the customer's active suppressions */
	SPIPlanPtr	extras_plan;	/* consent, engagement, metrics, cap usage; NULL when none is read */
	SPIPlanPtr	adaptation_plan;	/* the tenant's adaptive propensity counts */
	MemoryContext adaptation_mcxt;
	json_t	   *adaptation;		/* "<scope>|<id>" -> [positives, negatives] */
	int64	   *adaptation_offers;	/* the same counts by offer index: positives, negatives (2 each) */
	int64	   *adaptation_categories;	/* by category (KOffer.category), then scope_id '' */
	int64		adaptation_global[2];	/* and of the tenant */
	int			noffer_features;	/* offer.<field> features models read, with their value per */
	struct KOfferFeature *offer_features;	/* offer: built on first use (decision/model_scores.c) */
	TimestampTz adaptation_loaded_at;
	bool		needs_consent;	/* some channel needs a consent purpose */
	bool		needs_metrics;	/* some rule or policy reads metric values */
	bool		has_engagement; /* some policy scales by engagement health */
	double		max_lookback_hours; /* longest history window a rule or policy reads */
	char		policy_hash[17];	/* 16 hex chars of SHA-256 of the policy snapshot */
	char	   *policy_snapshot;	/* its JSON text */
	struct KArbConfig *arb;		/* arbitration's compiled part, made on first use (arbitration/rtconfig.c) */
	int			pins;			/* calls using it (config/cache.c): replaced while pinned, it is freed
								 * only once the last of them ends */
} KTenantConfig;

/* ---- cache.c: the configuration cache ---- */

extern int	kaireon_adaptation_refresh_ms;	/* kaireon.adaptation_refresh_ms */

extern void kaireon_config_cache_init(void);
/*
 * Another subsystem's relcache listener, called by the configuration cache's
 * relcache callback for every invalidation (decision/state_read.c sets it):
 * PostgreSQL has 10 relcache callback slots for every library of a backend
 * together, Citus takes several, and registering one too many is FATAL.
 */
extern void (*kaireon_relcache_listener) (Oid relid);
extern KTenantConfig *kaireon_config_get(const char *tenant_id);

/* ---- lookup.c: finding by id in a compiled configuration ---- */

extern int	kaireon_find_offer(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_channel(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_placement(const KTenantConfig *cfg, const char *id);
extern int	kaireon_find_flow(const KTenantConfig *cfg, const char *key);
extern int	kaireon_find_segment(const KTenantConfig *cfg, const char *id);
extern KaireonOutcomeClass kaireon_outcome_class(const KTenantConfig *cfg, const char *key, bool *found);

/* ---- flowgraph.c: flow graphs (docs/flows.md) ---- */

extern void kaireon_flowgraph_init(void);
extern void kaireon_compile_flow_score(KFlow *f, json_t *score);
extern void kaireon_compile_flow_graph(KTenantConfig *cfg, KFlow *flow);
extern int	kaireon_graph_computed_index(const KGraph *g, const char *name);

/* ---- template.c: creative content with personalization ---- */

extern KTemplate *kaireon_template_compile(json_t *content, json_t *personalization);
extern json_t *kaireon_creative_content(const KCreative *cr, const KOffer *offer, json_t *customer_attrs);

/* ---- state_plan.c ---- */

/* Most history rows read for one customer (the newest); documented in docs/recommend.md. */
#define KAIREON_MAX_EVENTS 10000

extern void kaireon_prepare_state_plan(KTenantConfig *cfg);

#endif							/* KAIREON_CONFIG_H */
