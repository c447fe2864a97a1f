/*
 * decision/explain.c
 *	  Explanations of returned decisions: the score factors of a candidate by
 *	  scoring method, whether its propensity is reported, and the explanation
 *	  object recommend returns, the trace and the decision log record
 *	  (pipeline.c, persist.c, recommend.c).  Pure computation over the
 *	  compiled configuration and the candidate.
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

/* The score factors of a candidate as JSON (for explanations and traces). */
json_t *
kaireon_factors_json(const KFlow *flow, const KCandidate *c)
{
	switch (flow->method)
	{
		case KSCORE_PRIORITY_WEIGHTED:
			return json_pack("{s:f,s:f,s:f}", "priority", c->factors[0], "weight", c->factors[1],
							 "match", c->factors[2]);
		case KSCORE_PROPENSITY:
			return json_pack("{s:f,s:f}", "propensity", c->factors[0], "match", c->factors[1]);
		case KSCORE_FORMULA:
			return json_pack("{s:f,s:f,s:f,s:f,s:{s:f,s:f,s:f,s:f}}", "P", c->factors[0], "R", c->factors[1],
							 "I", c->factors[2], "E", c->factors[3], "weights",
							 "P", c->weights ? c->weights[0] : flow->w_p, "R", c->weights ? c->weights[1] : flow->w_r,
							 "I", c->weights ? c->weights[2] : flow->w_i, "E", c->weights ? c->weights[3] : flow->w_e);
	}
	return json_object();
}

/* Maturity band of an offer's outcome count (spec section 6). */
static const char *
maturity(int64 n)
{
	return n == 0 ? "cold" : n < 50 ? "immature" : n < 200 ? "maturing" : "mature";
}

/* The explanation of a returned decision. */
json_t *
kaireon_explain(const KRequest *req, const KFlow *flow, const KCandidate *c)
{
	static const char *const methods[] = {"priority_weighted", "propensity", "formula"};
	const KCreative *cr = &req->cfg->creatives[c->creative];
	json_t	   *e = json_pack("{s:s,s:f,s:o,s:b,s:{s:s,s:i},s:s,s:{s:s,s:f}}",
							  "method", methods[flow->method],
							  "score", c->score,
							  "factors", kaireon_factors_json(flow, c),
							  "mandatory", c->mandatory,
							  "flow", "key", flow->key, "version", flow->version,
							  "policySnapshot", req->cfg->policy_hash,
							  "creative", "id", cr->id, "weight", cr->weight);

	if (kaireon_scored_by_propensity(flow, c))
		json_object_set_new(e, "propensity",
							json_pack("{s:f,s:s,s:I,s:s}", "value", c->propensity,
									  "source", c->propensity_source ? c->propensity_source : "default",
									  "outcomes", (json_int_t) c->propensity_n,
									  "maturity", maturity(c->propensity_n)));
	if (req->model_key != NULL || req->variant != NULL)
	{
		json_t	   *m = json_object();

		json_object_set_new(m, "key", req->model_key ? json_string(req->model_key) : json_null());
		json_object_set_new(m, "ranks", json_boolean(req->model != NULL));
		if (req->variant != NULL)
			json_object_set_new(m, "experimentVariant", json_string(req->variant));
		json_object_set_new(e, "model", m);
	}
	if (c->npassed > 0)
	{
		json_t	   *names = json_array();

		for (int i = 0; i < c->npassed; i++)
			json_array_append_new(names, json_string(req->cfg->rules[c->passed[i]].name));
		json_object_set_new(e, "matchRules", names);
	}
	if (c->warnings)
		json_object_set(e, "warnings", c->warnings);
	return e;
}

