/*
 * decision/explain.c
 *	  Explanations of returned decisions: the score factors of a candidate by
 *	  scoring method, whether its propensity is reported, and the explanation
 *	  object recommend returns, the trace and the decision log record
 *	  (pipeline.c, persist.c, recommend.c).  Pure computation over the
 *	  compiled configuration and the candidate.
 *
 * An explanation is built when a caller asks for it, after the pipeline: as
 * jsonb straight from the numbers for kaireon.recommend's explanation column
 * (no jansson tree, no text), or as a jansson tree for recommend_json's
 * response, from the one description below (util/json.h, KjBuild).  What the
 * pipeline keeps for it is in the decision: the candidate, the placement's
 * model and experiment variant, and the facts later stages add (KDecision's
 * explanation object: arbitration, degradedScoring).
 */
#include "postgres.h"

#include "util/json.h"

#include "decision/decision.h"

/* Did the candidate's score use its propensity (so that it is reported)? */
bool
kaireon_scored_by_propensity(const KFlow *flow, const KCandidate *c)
{
	return flow->method != KSCORE_PRIORITY_WEIGHTED && c->propensity >= 0;
}

/* The score factors of a candidate as the member key (or the whole value). */
static void
factors(KjBuild *b, const char *key, const KFlow *flow, const KCandidate *c)
{
	kjb_object(b, key);
	switch (flow->method)
	{
		case KSCORE_PRIORITY_WEIGHTED:
			kjb_real(b, "priority", c->factors[0]);
			kjb_real(b, "weight", c->factors[1]);
			kjb_real(b, "match", c->factors[2]);
			break;
		case KSCORE_PROPENSITY:
			kjb_real(b, "propensity", c->factors[0]);
			kjb_real(b, "match", c->factors[1]);
			break;
		case KSCORE_FORMULA:
			kjb_real(b, "P", c->factors[0]);
			kjb_real(b, "R", c->factors[1]);
			kjb_real(b, "I", c->factors[2]);
			kjb_real(b, "E", c->factors[3]);
			kjb_object(b, "weights");
			kjb_real(b, "P", c->weights ? c->weights[0] : flow->w_p);
			kjb_real(b, "R", c->weights ? c->weights[1] : flow->w_r);
			kjb_real(b, "I", c->weights ? c->weights[2] : flow->w_i);
			kjb_real(b, "E", c->weights ? c->weights[3] : flow->w_e);
			kjb_end(b);
			break;
	}
	kjb_end(b);
}

/* The score factors of a candidate as JSON (for traces). */
json_t *
kaireon_factors_json(const KFlow *flow, const KCandidate *c)
{
	KjBuild		b;

	kjb_init(&b, false);
	factors(&b, NULL, flow, c);
	return kjb_tree(&b);
}

/* Maturity band of an offer's outcome count (spec section 6). */
static const char *
maturity(int64 n)
{
	return n == 0 ? "cold" : n < 50 ? "immature" : n < 200 ? "maturing" : "mature";
}

/* The explanation of a returned decision, built into b. */
static void
explain(KjBuild *b, const KDecideResult *res, const KDecision *d)
{
	static const char *const methods[] = {"priority_weighted", "propensity", "formula"};
	const KTenantConfig *cfg = res->req->cfg;
	const KFlow *flow = d->spec != NULL ? d->spec : &cfg->flows[d->flow];	/* key, version: the flow's */
	const KCandidate *c = d->cand;
	const KCreative *cr = &cfg->creatives[c->creative];

	kjb_object(b, NULL);
	kjb_string(b, "method", methods[flow->method]);
	kjb_real(b, "score", c->score);
	factors(b, "factors", flow, c);
	kjb_bool(b, "mandatory", c->mandatory);
	kjb_object(b, "flow");
	kjb_string(b, "key", flow->key);
	kjb_int(b, "version", flow->version);
	kjb_end(b);
	kjb_string(b, "policySnapshot", cfg->policy_hash);
	kjb_object(b, "creative");
	kjb_string(b, "id", cr->id);
	kjb_real(b, "weight", cr->weight);
	kjb_end(b);
	if (kaireon_scored_by_propensity(flow, c))
	{
		kjb_object(b, "propensity");
		kjb_real(b, "value", c->propensity);
		kjb_string(b, "source", c->propensity_source ? c->propensity_source : "default");
		kjb_int(b, "outcomes", c->propensity_n);
		kjb_string(b, "maturity", maturity(c->propensity_n));
		kjb_end(b);
	}
	if (d->model_key != NULL || d->variant != NULL)
	{
		kjb_object(b, "model");
		kjb_string(b, "key", d->model_key);
		kjb_bool(b, "ranks", d->model != NULL);
		if (d->variant != NULL)
			kjb_string(b, "experimentVariant", d->variant);
		kjb_end(b);
	}
	if (c->npassed > 0)
	{
		kjb_array(b, "matchRules");
		for (int i = 0; i < c->npassed; i++)
			kjb_string(b, NULL, cfg->rules[c->passed[i]].name);
		kjb_end(b);
	}
	if (c->warnings)
		kjb_json(b, "warnings", c->warnings);
	/* what later stages added: arbitration's facts, degradedScoring */
	if (d->explanation != NULL)
	{
		const char *key;
		json_t	   *v;

		json_object_foreach(d->explanation, key, v)
			kjb_json(b, key, v);
	}
	kjb_end(b);
}

/* The explanation of a returned decision as jsonb (kaireon.recommend's explanation column). */
Jsonb *
kaireon_explanation_jsonb(const KDecideResult *res, const KDecision *d)
{
	KjBuild		b;

	kjb_init(&b, true);
	explain(&b, res, d);
	return kjb_jsonb(&b);
}

/* The explanation of a returned decision as JSON (recommend_json's decisions). */
json_t *
kaireon_explanation_json(const KDecideResult *res, const KDecision *d)
{
	KjBuild		b;

	kjb_init(&b, false);
	explain(&b, res, d);
	return kjb_tree(&b);
}
