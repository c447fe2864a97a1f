/*
 * decision/request.h
 *	  The per-request state of the recommend pipeline: the customer's state,
 *	  the candidates, the request as the rules and policies see it, and what
 *	  a caller asks of the pipeline and gets back (kaireon_decide).
 *
 * All of it lives in the caller's per-call memory context and points into
 * the compiled configuration (config/config.h), which it never modifies.
 * Arbitration's hooks (arbitration/hooks.h) take these types; they are
 * plain structs, so arbitration reads them without calling into decision/.
 */
#ifndef KAIREON_DECISION_REQUEST_H
#define KAIREON_DECISION_REQUEST_H

#include "config/config.h"
#include "stats/stats.h"

/* ---- the customer's state, read once per request (customer.c) ---- */

typedef enum KEventType
{
	KEV_RECOMMENDATION, KEV_IMPRESSION, KEV_OUTCOME
} KEventType;

/* One row of the customer's recent interaction history. */
typedef struct KEvent
{
	KEventType	type;
	const char *outcome;		/* outcome key for KEV_OUTCOME */
	KaireonOutcomeClass classification; /* of the outcome */
	const char *offer_id;
	int			offer;			/* its index in the configuration's offers, -1 when not one of them */
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
	KEvent	   *events;			/* within the longest window any rule or policy reads, newest first */
	bool	   *offer_seen;		/* by offer index: an event names the offer (so an offer's own policies can skip the scan) */
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
	int			passed_room;	/* the room passed has (rules.c, passed_room) */
	double		propensity;		/* < 0 until computed */
	const char *propensity_source;
	int64		propensity_n;
	double		score;
	const char *dropped_stage;	/* NULL while in the running */
	char	   *dropped_reason;
	KDropReason drop;			/* with dropped_stage: the kind counted by the statistics */
	json_t	   *warnings;		/* soft guardrails */
	double		factors[4];		/* score factors by method: see score_node.c kaireon_score_candidates */
	const double *weights;		/* formula: the P, R, I, E weights used (NULL: the flow's) */
	double		price;			/* real-time arbitration: sum of lambda * cost subtracted from the score */
	double	   *computed;		/* a flow graph's compute nodes' fields (KGraph.computed; NaN: missing),
								 * NULL until one runs */
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
	json_t	   *request;		/* request.* for guardrails: channel, hour, weekday, context; built on its first read (rules.c) */
	json_t	   *cap_usage;		/* cap id -> {"used": n, ...} read this request */
	json_t	   *adaptation;		/* "<scope>|<id>" -> [positives, negatives] */
	/* results that do not depend on the candidate, computed once per request */
	bool		keep_reasons;	/* the drops' reasons are read (debug, a traced decision): written;
								 * else the qualification and policy reasons stay NULL */
	bool		list_matches;	/* the match rules that held are listed (KCandidate.passed): an
								 * explanation may be built; not for kaireon.recommend with
								 * options.explain false */
	int		   *free_slots;		/* room for the candidates' lists of match rules that held */
	int			nfree_slots;	/* (rules.c) */
	int8	   *rule_memo;		/* per rule: 0 unknown, 1 holds, 2 fails */
	char	  **rule_memo_why;
	struct KQualMemo **qual_memo;	/* per qualification class: what its first candidate got (rules.c) */
	int8	   *policy_memo;	/* per policy (under a candidate-independent scope): 0, 1 passes, 2 blocks */
	char	  **policy_memo_why;
	int8	   *policy_cat_memo;	/* per policy and category (KPolicyBinding.per_category): 0, 1, 2; */
	char	  **policy_cat_memo_why;	/* NULL until a candidate needs one */
	struct KPolicyMemo **policy_class_memo; /* per policy class: its constant bindings' verdict (policies.c) */
	TimestampTz day_start, week_start, month_start;	/* calendar periods of now, UTC */
	/* the model of the placement being decided (model_scores.c) */
	struct KaireonModel *model;	/* NULL: none (no modelKey, untrained, or experiment holdout) */
	const char *model_key;		/* the model's key, also when untrained (it still learns) */
	const char *variant;		/* the experiment variant, or NULL */
	struct KaireonModel **rule_models;	/* per rule: the model its modelKey names, looked up once */
	int8	   *rule_models_done;	/* per rule: 1 once looked up */
	bool		model_memo_valid;	/* model_memo holds the model's score for every candidate */
	struct KArbRequest *arb;	/* arbitration's per-request state (arbitration/realtime.c) */
	const KFlow *spec;			/* the score parameters in force: the flow's, or its graph's score
								 * node's (flowgraph.c); NULL: the flow's */
	json_t	   *degraded;		/* models named but missing or broken, the scoring fell back
								 * (model_scores.c): [{model, use, placementId, reason, detail}],
								 * NULL while none */
	double		model_memo;		/* (a model that reads no offer feature scores them all alike) */
	struct KaireonValue *model_values;	/* a per-arm model that reads no offer feature: */
	bool		model_values_valid;	/* its feature values, gathered once per placement */
	double	   *model_offer_scores; /* per offer: the model's score, scored for all candidates
									 * at once (kaireon_batch_model_scores); NaN where not scored;
									 * NULL while not batched */
} KRequest;

/* ---- the decision: what a caller asks, what the pipeline returns (decide.c) ---- */

/* Which customer an identifier given by a request resolved to (identity.c, docs/identity.md). */
typedef struct KIdentity
{
	const char *given;			/* the identifier the request gave */
	const char *type;			/* its identifier type: given, or the link's; NULL when unknown */
	const char *customer_id;	/* the canonical customer decided for */
	bool		resolved;		/* a link (or a merge) led from given to another customer id */
} KIdentity;

/* What a caller asks for. */
typedef struct KDecideArgs
{
	const char *tenant_id;
	const char *customer_id;	/* as given; the pipeline sets the canonical customer (identity.c) */
	const char *identifier_type;	/* what customer_id is (identity_links.identifier_type), or NULL: any */
	const char *identifier_what;	/* its name in messages (NULL: "customer_id") */
	KIdentity	identity;		/* set by the pipeline: the identifier and its canonical customer */
	const char *channel_id;
	json_t	   *placements;		/* placement ids (strings); empty: the request names none */
	int		   *placement_limits;	/* per placement: its own limit, 0: max_offers; NULL: none */
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
	bool		channel_known;	/* set by the pipeline: the channel is in the configuration */
	bool		matches_unread; /* the caller builds no explanation (kaireon.recommend with
								 * options.explain false): the match rules that held are not listed */
	bool		funnels_unread; /* the caller reads no funnel (kaireon.recommend without debug): the
								 * placements' funnels are built only for a traced decision */
} KDecideArgs;

/* One returned decision. */
typedef struct KDecision
{
	KCandidate *cand;
	int			rank;			/* within its placement, from 1 */
	const char *placement_id;	/* the requested placement, or NULL */
	int			flow;
	char	   *interaction_id;
	json_t	   *explanation;	/* what later stages add to its explanation (arbitration's facts,
								 * degradedScoring): an object, NULL for a campaign's decisions,
								 * which have none; the explanation itself is built when a caller
								 * asks for it (explain.c) */
	struct KaireonModel *model; /* the placement's ranking model, or NULL */
	const char *model_key;		/* the placement's model (recorded for learning from outcomes) */
	const char *variant;		/* the placement's experiment variant, or NULL */
	double		selection_probability;	/* of a stochastic policy's choice (EXP3-IX arm), or 0: none */
	int			arm;			/* EXP3-IX arm, or -1 */
	const char *profile_id;		/* arbitration profile whose weights scored it, or NULL */
	const KFlow *spec;			/* the score parameters that scored it (a graph's score node), NULL: the flow's */
} KDecision;

/* A placement the customer's control group left empty (docs/lift.md). */
typedef struct KControl
{
	const char *placement_id;	/* the requested placement, or NULL */
	int			flow;
	const char *scope;			/* "tenant" or "flow": whose control group */
	double		percent;		/* that group's percentage */
	char	   *interaction_id; /* of the recorded 'control' row (NULL: a dry run, or an answer) */
	int			nanswer;		/* the flow's control answer (controlAnswer) shown, in order: */
	int		   *answer_offers;	/* offer indexes */
	int		   *answer_creatives;	/* their creatives' indexes */
	char	  **answer_ids;		/* their 'control' rows' ids (NULL in a dry run) */
} KControl;

/* What the pipeline returns. */
typedef struct KDecideResult
{
	char	   *recommendation_id;
	KRequest   *req;
	int			ndecisions;
	KDecision  *decisions;
	int			ndropped;
	KCandidate **dropped;		/* with dropped_stage and reason, for debug */
	int			ncontrols;
	KControl   *controls;		/* placements left empty by a control group */
	const char **dropped_placement;
	json_t	   *funnels;		/* one funnel object per placement */
	json_t	   *flow_arms;		/* flow A/B test arms taken: [{experiment, arm, flow, placementId}] */
	const int  *placement_flows;	/* the flow deciding each request placement (after A/B arms) */
	json_t	   *grouped;		/* placements a flow graph's group node filled: id -> decisions
								 * (NULL until one does) */
	bool		traced;
	KStatDecision stat;			/* what the statistics count (stats/stats.h) */
} KDecideResult;

#endif							/* KAIREON_DECISION_REQUEST_H */
