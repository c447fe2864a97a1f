/*
 * decision_models.c
 *	  How a decision uses the scoring models (src/scoring.h): which model
 *	  scores a placement (the flow's score.modelKey, or the variant of the
 *	  flow's score.experimentKey), the features of a candidate, the shadow
 *	  scores logged beside a recorded decision, and learning from an outcome.
 *
 * The model itself is compiled and cached by the scoring module; per request
 * this module does at most one query (the experiment assignment, when the
 * flow names an experiment) and, when recording a decision whose model has
 * shadow models, one INSERT of their scores.
 */
#include "util/json.h"

#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "util/spi.h"
#include "decision.h"
#include "scoring.h"

/* What a feature lookup reads: the customer's attributes and the candidate offer. */
typedef struct FeatureArg
{
	json_t	   *attrs;			/* customer data merged with the request context */
	const KOffer *offer;		/* for offer.<field>; may be NULL */
} FeatureArg;

/* Feature lookup for the scoring interface: customer attributes, and offer.<field>. */
static bool
feature_get(const KaireonFeatures *self, const char *name, KaireonValue *out)
{
	const FeatureArg *fa = (const FeatureArg *) self->arg;
	json_t	   *v;

	if (strncmp(name, "offer.", 6) == 0)
		v = fa->offer ? kaireon_offer_attribute(fa->offer, name + 6) : NULL;
	else
		v = kaireon_path(fa->attrs, name);
	if (v == NULL)
		return false;
	if (json_is_number(v))
	{
		out->kind = KV_NUMBER;
		out->num = json_number_value(v);
	}
	else if (json_is_boolean(v))
	{
		out->kind = KV_BOOL;
		out->num = json_is_true(v) ? 1 : 0;
	}
	else if (json_is_string(v))
	{
		out->kind = KV_STRING;
		out->str = json_string_value(v);
	}
	else
		out->kind = KV_NULL;
	return true;
}

/*
 * The experiment variant of the customer and the model key it gives (NULL
 * for the holdout).  A dry run reads an existing assignment or computes the
 * variant without storing it.
 */
static const char *
experiment_model(KRequest *req, const char *experiment_key, const char *customer_id, bool dry_run)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[4];
	bool		isnull;
	Datum		d;

	if (plan == NULL)
		plan = kspi_prepare_keep("SELECT variant, model_key FROM kaireon.assign_experiment($1, $2, $3, $4)",
								 4, types);
	args[0] = CStringGetTextDatum(req->cfg->tenant_id);
	args[1] = CStringGetTextDatum(experiment_key);
	args[2] = CStringGetTextDatum(customer_id);
	args[3] = BoolGetDatum(!dry_run);
	if (kspi_execute_plan(plan, args, NULL, dry_run, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: assigning the experiment failed");
	req->variant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Set the request's model for a placement decided by this flow: the
 * experiment's variant when the flow names one, else score.modelKey.  A model
 * that is missing, untrained, shadow or archived ranks nothing (the
 * propensity falls back to the adaptive counts), but an untrained one is
 * still recorded so that it learns from the outcomes.
 */
void
kaireon_request_model(KRequest *req, const KFlow *flow, const char *customer_id, bool dry_run)
{
	const char *key = flow->model_key;
	KaireonModel *m;

	req->model = NULL;
	req->model_key = NULL;
	req->variant = NULL;
	req->model_memo_valid = false;
	if (flow->experiment_key != NULL)
		key = experiment_model(req, flow->experiment_key, customer_id, dry_run);
	if (key == NULL)
		return;
	m = kaireon_model_lookup(req->cfg->tenant_id, key);
	if (m == NULL)
		return;
	req->model_key = kaireon_model_key(m);
	if (kaireon_model_get(req->cfg->tenant_id, key) != NULL && kaireon_model_ranks(m))
		req->model = m;
}

/*
 * A model's score of the request's customer with a candidate offer.  The
 * request's model, when its score does not depend on the offer, is scored
 * once per placement.
 */
double
kaireon_candidate_model_score(KRequest *req, KaireonModel *model, const KOffer *offer)
{
	FeatureArg	fa = {req->cust->attrs, offer};
	KaireonFeatures f = {feature_get, &fa};
	bool		memo = (model == req->model && !kaireon_model_per_offer(model));
	double		s;

	if (memo && req->model_memo_valid)
		return req->model_memo;
	s = kaireon_model_score(model, &f, offer->id);
	if (memo)
	{
		req->model_memo = s;
		req->model_memo_valid = true;
	}
	return s;
}

/*
 * Log, for every recorded decision whose model has shadow models, each
 * shadow model's score of the decision beside the ranking model's, in one
 * INSERT into model_shadow_scores.  Shadow models never rank.
 */
void
kaireon_log_shadow_scores(KDecideResult *res, const char *customer_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID,
	TEXTOID, FLOAT8ARRAYOID};
	KRequest   *req = res->req;
	Datum	   *model_ids = NULL,
			   *offer_ids = NULL,
			   *scores = NULL,
			   *ranking = NULL;
	const char *ranking_id = NULL;
	int			n = 0,
				cap = 0;
	Datum		v[8];
	char		nulls[9] = "        ";

	for (int i = 0; i < res->ndecisions; i++)
	{
		KDecision  *d = &res->decisions[i];
		const KOffer *offer = &req->cfg->offers[d->cand->offer];
		KaireonModel **shadows;
		int			ns;
		FeatureArg	fa = {req->cust->attrs, offer};
		KaireonFeatures f = {feature_get, &fa};

		if (d->model == NULL || (ns = kaireon_model_shadows(d->model, &shadows)) == 0)
			continue;
		ranking_id = kaireon_model_id(d->model);
		for (int k = 0; k < ns; k++)
		{
			if (n == cap)
			{
				cap = Max(8, cap * 2);
				model_ids = model_ids ? repalloc(model_ids, sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
				offer_ids = offer_ids ? repalloc(offer_ids, sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
				scores = scores ? repalloc(scores, sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
				ranking = ranking ? repalloc(ranking, sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
			}
			model_ids[n] = CStringGetTextDatum(kaireon_model_id(shadows[k]));
			offer_ids[n] = CStringGetTextDatum(offer->id);
			scores[n] = Float8GetDatum(kaireon_model_score(shadows[k], &f, offer->id));
			ranking[n] = Float8GetDatum(kaireon_model_score(d->model, &f, offer->id));
			n++;
		}
	}
	if (n == 0)
		return;
	if (plan == NULL)
		plan = kspi_prepare_keep(
			"INSERT INTO kaireon.model_shadow_scores (tenant_id, customer_id, recommendation_id, model_id, "
			"  offer_id, score, ranking_model_id, ranking_score) "
			"SELECT $1, $2, $3, u.model_id, u.offer_id, u.score, $7, u.ranking_score "
			"  FROM unnest($4::text[], $5::text[], $6::float8[], $8::float8[]) AS u(model_id, offer_id, score, ranking_score)",
			8, types);
	v[0] = CStringGetTextDatum(req->cfg->tenant_id);
	v[1] = CStringGetTextDatum(customer_id);
	v[2] = CStringGetTextDatum(res->recommendation_id);
	v[3] = PointerGetDatum(construct_array(model_ids, n, TEXTOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_array(offer_ids, n, TEXTOID, -1, false, TYPALIGN_INT));
	v[5] = PointerGetDatum(construct_array(scores, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[6] = CStringGetTextDatum(ranking_id);
	v[7] = PointerGetDatum(construct_array(ranking, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (kspi_execute_plan(plan, v, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kaireon: logging the shadow scores failed");
}

/* Features for learning: read the customer's attributes on first use only. */
typedef struct LazyFeatureArg
{
	KTenantConfig *cfg;
	const char *customer_id;
	const char *schema;
	json_t	   *context;
	FeatureArg	fa;
	bool		loaded;
} LazyFeatureArg;

/* Feature lookup that reads the customer's data row the first time a feature is asked for. */
static bool
lazy_feature_get(const KaireonFeatures *self, const char *name, KaireonValue *out)
{
	LazyFeatureArg *la = (LazyFeatureArg *) self->arg;
	KaireonFeatures inner = {feature_get, &la->fa};

	if (!la->loaded)
	{
		la->fa.attrs = kaireon_customer_attributes(la->cfg, la->customer_id, la->context, la->schema);
		la->loaded = true;
	}
	return feature_get(&inner, name, out);
}

/*
 * Let the decision's model learn from an outcome (cls > 0 positive, < 0
 * negative; neutral outcomes teach nothing).  The features are the customer's
 * attributes now, with the decision's request context; they are read only
 * when the model asks for one (bandits do not).  True when the model learned.
 */
bool
kaireon_learn_outcome(KTenantConfig *cfg, const char *model_key, const char *offer_id,
					  const char *customer_id, const char *flow_id, json_t *context, int cls)
{
	LazyFeatureArg la;
	KaireonFeatures f = {lazy_feature_get, &la};
	int			o = offer_id ? kaireon_find_offer(cfg, offer_id) : -1;

	if (cls == 0 || model_key == NULL)
		return false;
	memset(&la, 0, sizeof(la));
	la.cfg = cfg;
	la.customer_id = customer_id;
	la.context = context;
	la.fa.offer = o >= 0 ? &cfg->offers[o] : NULL;
	for (int i = 0; flow_id != NULL && i < cfg->nflows; i++)
		if (strcmp(cfg->flows[i].id, flow_id) == 0)
			la.schema = cfg->flows[i].customer_schema;
	return kaireon_model_learn(cfg->tenant_id, model_key, offer_id, &f,
							   cls > 0 ? KAIREON_OUTCOME_POSITIVE : KAIREON_OUTCOME_NEGATIVE);
}

/*
 * The model a propensity_threshold rule names (modelKey), when it may score:
 * trained and neither shadow nor archived; else NULL (the rule then reads the
 * candidate's propensity).
 */
KaireonModel *
kaireon_rule_model(const char *tenant_id, const char *model_key)
{
	KaireonModel *m = kaireon_model_get(tenant_id, model_key);

	return (m != NULL && kaireon_model_ranks(m)) ? m : NULL;
}
