/*
 * decision/score_node.c
 *	  The score node (spec section 4, step 9): each remaining candidate of a
 *	  placement scored by its flow's method (priority_weighted, propensity or
 *	  the PRIE formula), times its match multiplier.  Pipeline.c's score node
 *	  calls it; the models are model_scores.c's, the propensity rules.c's,
 *	  the PRIE factors arbitration/realtime.c's (through arbitration/hooks.h).
 */
#include "postgres.h"

#include "arbitration/hooks.h"
#include "decision/decision.h"

/* Clamp a PRIE factor into (0, 1]. */
static double
factor(double x)
{
	if (!(x > 1e-6))
		return 1e-6;
	return x > 1 ? 1 : x;
}

/*
 * Score the remaining candidates by the flow's method, times the match
 * multiplier.  The factors are kept as numbers (factors[]: priority, weight,
 * match for priority_weighted; propensity, match for propensity; P, R, I, E
 * for formula) and turned into JSON only for the decisions returned.
 * Called by pipeline.c's score node, once per placement (twice when a
 * demotion rescores).
 */
void
kaireon_score_candidates(KRequest *req, const KFlow *flow, KCandidate *cands, int n)
{
	double		max_value = 0,
				max_margin = 0;

	/* a model over offer features scores all the candidates at once (model_scores.c) */
	if (flow->method != KSCORE_PRIORITY_WEIGHTED)
		kaireon_batch_model_scores(req, flow, cands, n);
	for (int i = 0; i < n; i++)
		if (!cands[i].dropped_stage)
		{
			max_value = Max(max_value, req->cfg->offers[cands[i].offer].value);
			max_margin = Max(max_margin, req->cfg->offers[cands[i].offer].margin);
		}

	for (int i = 0; i < n; i++)
	{
		KCandidate *c = &cands[i];
		const KOffer *o = &req->cfg->offers[c->offer];

		if (c->dropped_stage)
			continue;
		switch (flow->method)
		{
			case KSCORE_PRIORITY_WEIGHTED:
				c->factors[0] = o->priority / 100.0;
				c->factors[1] = o->weight / 100.0;
				c->factors[2] = c->match;
				c->score = c->factors[0] * c->factors[1] * c->factors[2];
				break;
			case KSCORE_PROPENSITY:
				c->factors[0] = kaireon_propensity(req, c);
				c->factors[1] = c->match;
				c->score = c->factors[0] * c->factors[1];
				break;
			case KSCORE_FORMULA:
				/* R, I, E and the weights (profile, EXP3-IX arm): arbitration/realtime.c */
				c->factors[0] = factor(kaireon_propensity(req, c));
				c->score = karb_prie(req, flow, c, max_value, max_margin);
				break;
		}
	}
}
