/*
 * hooks.h
 *	  The calls the recommend pipeline (pipeline.c, score_node.c), the decision
 *	  recording (persist.c) and respond (respond.c) make into arbitration: one call site
 *	  each, the logic in src/arbitration/ (docs/arbitration.md).
 */
#ifndef KAIREON_ARB_HOOKS_H
#define KAIREON_ARB_HOOKS_H

#include "decision/request.h"

/*
 * A placement is about to be decided with this flow: choose its PRIE weights
 * (the flow's profile, or an EXP3-IX arm drawn by the recommendation id) and,
 * when real-time arbitration is on, read the dual prices.
 */
extern void karb_placement(KRequest *req, const KFlow *flow, const KDecideArgs *args,
						   const char *recommendation_id);

/*
 * The formula (PRIE) score of a candidate whose propensity factor is in
 * factors[0]: fills the R, I and E factors and the weights used.  max_value
 * and max_margin are the largest offer value and margin among the candidates.
 */
extern double karb_prie(KRequest *req, const KFlow *flow, KCandidate *c, double max_value, double max_margin);

/*
 * Real-time Lagrangian arbitration: subtract sum_k lambda_k * cost_k from each
 * remaining candidate's score; drop the ordinary ones left at or below zero.
 */
extern void karb_price(KRequest *req, const KDecideArgs *args, KCandidate *cands, int n);

/*
 * May the candidate join the response within the per-response caps?  When
 * not, marks it dropped (stage arbitration) with the reason.
 */
extern bool karb_admit(KRequest *req, KCandidate *c);

/*
 * Note the arbitration facts of a returned decision, count it against the
 * per-response caps, and add the facts to its explanation.
 */
extern void karb_decision(KRequest *req, KDecision *d);

/* The version of the dual prices the request used; false when none were. */
extern bool karb_lambda_version(const KRequest *req, int64 *version);

/*
 * respond: a positive outcome rewards the EXP3-IX arm of the decision it
 * belongs to (once per decision); adds what it did to the result.
 */
extern void karb_respond(KTenantConfig *cfg, const char *recommendation_id, const char *customer_id,
						 const char *offer_id, const char *placement_id, KaireonOutcomeClass cls, json_t *result);

#endif							/* KAIREON_ARB_HOOKS_H */
