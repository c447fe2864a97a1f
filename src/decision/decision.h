/*
 * decision/decision.h
 *	  The functions of src/decision/ that other files call, by file: the
 *	  recommend pipeline and the pieces it runs per request.  The types are
 *	  in decision/request.h (per-request state) and config/config.h (the
 *	  compiled configuration), both included here, so other folders
 *	  (campaign/) include only this header.
 *
 * Calls within the folder run downward, never in a circle:
 *   recommend.c -> decide.c, explain.c, identity.c
 *   decide.c    -> pipeline.c, identity.c, flow_experiments.c, persist.c, customer.c, model_scores.c,
 *                  policies.c
 *   pipeline.c  -> score_node.c, caps.c, graph.c, policies.c, rules.c, model_scores.c, ranking.c
 *   score_node.c -> model_scores.c, rules.c
 *   graph.c     -> rules.c, customer.c (and security/confine.c)
 *   respond.c   -> identity.c, caps.c, model_scores.c, rules.c, triggers.c
 *   geofences.c -> triggers.c -> customer.c
 *   persist.c -> explain.c;  caps.c -> policies.c -> rules.c -> model_scores.c -> customer.c
 * and out of the folder only down: config/, scoring/, arbitration/ (through
 * arbitration/hooks.h), security/, util/.
 */
#ifndef KAIREON_DECISION_H
#define KAIREON_DECISION_H

#include "decision/request.h"

struct KaireonModel;

/* decide.c: the pipeline, one call per recommend (or campaign customer) */
extern KDecideResult *kaireon_decide(KDecideArgs *args);

/* pipeline.c: one placement's decision, its flow's graph run (decide.c calls it once per placement) */
extern void kaireon_decide_placement(KDecideResult *res, KDecideArgs *args, const char *placement_id, int flow_idx,
									 json_t *taken, int mandatory_left, int limit);

/* creatives.c: the creative of a candidate, drawn by weight with a draw fixed by the recommendation id */
extern uint64 kaireon_draw_seed(const char *recommendation_id);
extern int	kaireon_pick_creative(const KRequest *req, KPlacementMatch mode, const KOffer *o, int placement,
								  json_t *exclude, uint64 seed);

/* score_node.c: the score node, a placement's candidates scored by the flow's method */
extern void kaireon_score_candidates(KRequest *req, const KFlow *flow, KCandidate *cands, int n);

/* ranking.c: the rank order of a placement's candidates, selecting the best of them */
#define KAIREON_SELECT_BEST_MAX 8	/* most decisions still needed for which kaireon_select_best ranks them in one pass */
extern int	kaireon_rank_cmp(const void *a, const void *b, void *arg);
extern void kaireon_select_next(KCandidate **ranked, int i, int n, KTenantConfig *cfg, const KNode *rn);
extern int	kaireon_select_best(KCandidate **ranked, int i, int n, int k, KTenantConfig *cfg, const KNode *rn);

/* identity.c: the canonical customer of an identifier, the per-customer decision lock */
extern void kaireon_resolve_identity(KTenantConfig *cfg, const char *given, const char *type, const char *what,
									 KIdentity *out);
extern json_t *kaireon_identity_json(const KIdentity *id);
extern void kaireon_identity_note(json_t *context, const KIdentity *id, const char *what);
extern void kaireon_decide_identity(KTenantConfig *cfg, KDecideArgs *args);
extern void kaireon_lock_customer(const char *tenant_id, KDecideArgs *args);

/* flow_experiments.c: flow A/B tests, a placement's flow replaced by its arm's */
extern void kaireon_flow_arms(KDecideResult *res, KDecideArgs *args, int *flows, int n, json_t *placements);

/* customer.c: the customer's state, read once per request */
extern KCustomer *kaireon_load_customer(KRequest *req, const char *customer_id, json_t *context,
										const char *schema_name);
extern json_t *kaireon_customer_attributes(KTenantConfig *cfg, const char *customer_id, json_t *context,
										  const char *schema_name);
extern json_t *kaireon_tenant_adaptation(KTenantConfig *cfg);

/* rules.c: scopes, qualification rules, guardrails, propensity */
extern bool kaireon_in_segment(const KRequest *req, int segment);
extern bool kaireon_scope_matches(const KRequest *req, const KScope *scope, const KOffer *offer);
extern void kaireon_qualify(KRequest *req, KCandidate *cand, const bool *only);
extern void kaireon_forget_customer_verdicts(KRequest *req);
extern void kaireon_apply_guardrails(KRequest *req, KCandidate *cand);
extern json_t *kaireon_request_field(const KRequest *req, const KOffer *offer, const char *field);
extern double kaireon_propensity(KRequest *req, KCandidate *cand);

/* policies.c: contact policies and caps */
extern TimestampTz kaireon_period_start(const char *period, TimestampTz now);
extern bool kaireon_cap_applies(const KRequest *req, const KCap *c, const KOffer *offer);
extern void kaireon_apply_policies(KRequest *req, KCandidate *cand, const bool *only);
extern void kaireon_apply_caps(KRequest *req, KCandidate *cand);

/* model_scores.c: the placement's model, rule models, shadow scores, learning from outcomes */
extern void kaireon_request_model(KRequest *req, const KFlow *flow, const char *customer_id, bool dry_run);
extern double kaireon_candidate_model_score(KRequest *req, struct KaireonModel *model, const KOffer *offer);
extern void kaireon_batch_model_scores(KRequest *req, const KFlow *flow, const KCandidate *cands, int n);
extern struct KaireonModel *kaireon_rule_model(KRequest *req, const KRule *rule);
extern void kaireon_log_shadow_scores(KDecideResult *res, const char *customer_id);
extern bool kaireon_learn_outcome(KTenantConfig *cfg, const char *model_key, const char *offer_id,
								  const char *channel_id, const char *customer_id, const char *flow_id,
								  json_t *context, KaireonOutcomeClass cls);

/* graph.c: the flow graph nodes the fixed pipeline has no step for (docs/flows.md) */
extern void kaireon_graph_filter(KRequest *req, const KGraph *g, const KNode *node, KCandidate *cands, int n);
extern int	kaireon_graph_branch(KRequest *req, const KNode *node, const char **branch);
extern void kaireon_graph_compute(KRequest *req, const KGraph *g, const KNode *node, KCandidate *cands, int n);
extern void kaireon_graph_enrich(KRequest *req, const KNode *node);
extern json_t *kaireon_graph_fields(const KGraph *g, const KNode *node, const KCandidate *c);
extern void kaireon_graph_extension(KRequest *req, const KNode *node, KCandidate *cands, int n);

/* explain.c: explanations and score factors */
extern bool kaireon_scored_by_propensity(const KFlow *flow, const KCandidate *c);
extern json_t *kaireon_factors_json(const KFlow *flow, const KCandidate *c);
extern Jsonb *kaireon_explanation_jsonb(const KDecideResult *res, const KDecision *d);
extern json_t *kaireon_explanation_json(const KDecideResult *res, const KDecision *d);

/* caps.c: every change of the volume and budget counters */
typedef enum KCapCounter
{
	KCOUNTER_VOLUME, KCOUNTER_BUDGET_IMPRESSIONS, KCOUNTER_BUDGET_SPEND
} KCapCounter;

extern bool kaireon_reserve_caps(KRequest *req, KCandidate *cand);
extern bool kaireon_caps_take_units(const char *tenant_id, const char *id, KCapCounter counter, double units);
extern void kaireon_caps_count_conversion(const char *tenant_id, const char *offer_id, const char *category_id,
										  const char *channel_id);

/* persist.c: recording decisions and traces */
extern void kaireon_record_decisions(KDecideResult *res, KDecideArgs *args);
extern void kaireon_record_controls(KDecideResult *res, KDecideArgs *args);
extern void kaireon_record_trace(KDecideResult *res, KDecideArgs *args, double duration_ms);

/* triggers.c: trigger rules on outcomes; the actions of trigger rules and geofences */
extern json_t *kaireon_fire_triggers(KTenantConfig *cfg, const char *customer_id, const char *outcome,
									 json_t *event, TimestampTz at);
extern json_t *kaireon_run_action(const char *tenant_id, const char *customer_id, const char *action_type,
								  json_t *config, json_t *source, json_t *event, TimestampTz at, const char *where);

/* wake.c: events wake the journey enrolments waiting for them */
extern int64 kaireon_wake_journeys(const KTenantConfig *cfg, const char *customer_id, const char *const *event_types,
								   int ntypes, TimestampTz at);

#endif							/* KAIREON_DECISION_H */
