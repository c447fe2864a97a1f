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

/*
 * What an explanation's members are written from.  Each object is a table of
 * members in the order recommend_json shows them (util/json.h, KjMembers):
 * jsonb gets them in its own key order, so that its sort finds them sorted.
 */
typedef struct ExplainOf
{
	const KDecideResult *res;	/* NULL: the factors alone (a trace) */
	const KDecision *d;
	const KFlow *flow;			/* key, version, method: the flow's, or the score node's */
	const KCandidate *c;
} ExplainOf;

/* A score factor of the candidate. */
static void
w_factor(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_real(b, key, ((const ExplainOf *) arg)->c->factors[i]);
}

/* A formula weight: the candidate's (arbitration's profile) or the flow's. */
static void
w_weight(KjBuild *b, const char *key, const void *arg, int i)
{
	const ExplainOf *x = arg;
	const double flow_weights[4] = {x->flow->w_p, x->flow->w_r, x->flow->w_i, x->flow->w_e};

	kjb_real(b, key, x->c->weights ? x->c->weights[i] : flow_weights[i]);
}

static const KjMember weight_table[] = {
	{"P", w_weight, 0}, {"R", w_weight, 1}, {"I", w_weight, 2}, {"E", w_weight, 3}
};
static KjMembers weight_members = KJ_MEMBERS(weight_table);

/* The formula's weights. */
static void
w_weights(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_object(b, key);
	kjb_members(b, &weight_members, arg);
	kjb_end(b);
}

static const KjMember priority_weighted_table[] = {
	{"priority", w_factor, 0}, {"weight", w_factor, 1}, {"match", w_factor, 2}
};
static const KjMember propensity_factor_table[] = {{"propensity", w_factor, 0}, {"match", w_factor, 1}};
static const KjMember formula_table[] = {
	{"P", w_factor, 0}, {"R", w_factor, 1}, {"I", w_factor, 2}, {"E", w_factor, 3}, {"weights", w_weights, 0}
};

/* The factors of each scoring method (KScoreMethod's order). */
static KjMembers factor_members[] = {
	KJ_MEMBERS(priority_weighted_table), KJ_MEMBERS(propensity_factor_table), KJ_MEMBERS(formula_table)
};

/* The score factors of a candidate as the member key (or the whole value). */
static void
factors(KjBuild *b, const char *key, const ExplainOf *x)
{
	kjb_object(b, key);
	kjb_members(b, &factor_members[x->flow->method], x);
	kjb_end(b);
}

/* The score factors of a candidate as JSON (for traces). */
json_t *
kaireon_factors_json(const KFlow *flow, const KCandidate *c)
{
	KjBuild		b;
	ExplainOf	x = {NULL, NULL, flow, c};

	kjb_init(&b, false);
	factors(&b, NULL, &x);
	return kjb_tree(&b);
}

/* Maturity band of an offer's outcome count (spec section 6). */
static const char *
maturity(int64 n)
{
	return n == 0 ? "cold" : n < 50 ? "immature" : n < 200 ? "maturing" : "mature";
}

/* method: the scoring method's name. */
static void
w_method(KjBuild *b, const char *key, const void *arg, int i)
{
	static const char *const methods[] = {"priority_weighted", "propensity", "formula"};

	kjb_string(b, key, methods[((const ExplainOf *) arg)->flow->method]);
}

/* score */
static void
w_score(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_real(b, key, ((const ExplainOf *) arg)->c->score);
}

/* factors */
static void
w_factors(KjBuild *b, const char *key, const void *arg, int i)
{
	factors(b, key, arg);
}

/* mandatory */
static void
w_mandatory(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_bool(b, key, ((const ExplainOf *) arg)->c->mandatory);
}

/* flow: {key, version} (written in jsonb's key order: as shown) */
static void
w_flow(KjBuild *b, const char *key, const void *arg, int i)
{
	const ExplainOf *x = arg;

	kjb_object(b, key);
	kjb_string(b, "key", x->flow->key);
	kjb_int(b, "version", x->flow->version);
	kjb_end(b);
}

/* policySnapshot */
static void
w_policy_snapshot(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_string(b, key, ((const ExplainOf *) arg)->res->req->cfg->policy_hash);
}

/* creative: {id, weight} (in jsonb's key order) */
static void
w_creative(KjBuild *b, const char *key, const void *arg, int i)
{
	const ExplainOf *x = arg;
	const KCreative *cr = &x->res->req->cfg->creatives[x->c->creative];

	kjb_object(b, key);
	kjb_string(b, "id", cr->id);
	kjb_real(b, "weight", cr->weight);
	kjb_end(b);
}

/* propensity's members */
static void
w_propensity_value(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_real(b, key, ((const ExplainOf *) arg)->c->propensity);
}

/* propensity.source: where the propensity came from ("default" when nothing set it). */
static void
w_propensity_source(KjBuild *b, const char *key, const void *arg, int i)
{
	const KCandidate *c = ((const ExplainOf *) arg)->c;

	kjb_string(b, key, c->propensity_source ? c->propensity_source : "default");
}

/* propensity.outcomes: the outcomes it was learnt from. */
static void
w_propensity_outcomes(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_int(b, key, ((const ExplainOf *) arg)->c->propensity_n);
}

/* propensity.maturity: the maturity those outcomes give. */
static void
w_propensity_maturity(KjBuild *b, const char *key, const void *arg, int i)
{
	kjb_string(b, key, maturity(((const ExplainOf *) arg)->c->propensity_n));
}

static const KjMember propensity_table[] = {
	{"value", w_propensity_value, 0}, {"source", w_propensity_source, 0}, {"outcomes", w_propensity_outcomes, 0},
	{"maturity", w_propensity_maturity, 0}
};
static KjMembers propensity_members = KJ_MEMBERS(propensity_table);

/* propensity, when the score used it */
static void
w_propensity(KjBuild *b, const char *key, const void *arg, int i)
{
	const ExplainOf *x = arg;

	if (!kaireon_scored_by_propensity(x->flow, x->c))
		return;
	kjb_object(b, key);
	kjb_members(b, &propensity_members, arg);
	kjb_end(b);
}

/* model: {key, ranks, experimentVariant} (in jsonb's key order), when the placement has a model or variant */
static void
w_model(KjBuild *b, const char *key, const void *arg, int i)
{
	const KDecision *d = ((const ExplainOf *) arg)->d;

	if (d->model_key == NULL && d->variant == NULL)
		return;
	kjb_object(b, key);
	kjb_string(b, "key", d->model_key);
	kjb_bool(b, "ranks", d->model != NULL);
	if (d->variant != NULL)
		kjb_string(b, "experimentVariant", d->variant);
	kjb_end(b);
}

/* matchRules: the match rules that held, when any */
static void
w_match_rules(KjBuild *b, const char *key, const void *arg, int i)
{
	const ExplainOf *x = arg;

	if (x->c->npassed == 0)
		return;
	kjb_array(b, key);
	for (int k = 0; k < x->c->npassed; k++)
		kjb_string(b, NULL, x->res->req->cfg->rules[x->c->passed[k]].name);
	kjb_end(b);
}

/* warnings, when any */
static void
w_warnings(KjBuild *b, const char *key, const void *arg, int i)
{
	const KCandidate *c = ((const ExplainOf *) arg)->c;

	if (c->warnings)
		kjb_json(b, key, c->warnings);
}

/* An explanation's own members, in recommend_json's order. */
static const KjMember explanation_table[] = {
	{"method", w_method, 0}, {"score", w_score, 0}, {"factors", w_factors, 0}, {"mandatory", w_mandatory, 0},
	{"flow", w_flow, 0}, {"policySnapshot", w_policy_snapshot, 0}, {"creative", w_creative, 0},
	{"propensity", w_propensity, 0}, {"model", w_model, 0}, {"matchRules", w_match_rules, 0}, {"warnings", w_warnings, 0}
};
static KjMembers explanation_members = KJ_MEMBERS(explanation_table);

/* The explanation of a returned decision, built into b. */
static void
explain(KjBuild *b, const KDecideResult *res, const KDecision *d)
{
	const KTenantConfig *cfg = res->req->cfg;
	ExplainOf	x = {res, d, d->spec != NULL ? d->spec : &cfg->flows[d->flow], d->cand};

	kjb_object(b, NULL);
	kjb_members(b, &explanation_members, &x);
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
