/*
 * decision/model_scores.c
 *	  How a decision uses the scoring models (src/scoring/scoring.h): which model
 *	  scores a placement (the flow's score.modelKey, or the variant of the
 *	  flow's score.experimentKey), the features of a candidate, the shadow
 *	  scores logged beside a recorded decision, and learning from an outcome.
 *
 * The model itself is compiled and cached by the scoring module; per request
 * this module does at most one query (the experiment assignment, when the
 * flow names an experiment) and, when recording a decision whose model has
 * shadow models, one INSERT of their scores.
 *
 * Degraded scoring: a model a flow (or its experiment's variant) or a
 * propensity_threshold rule names that is missing (deleted while the compiled
 * configuration still names it) or broken (its row no longer compiles) ranks
 * nothing; the decision falls back as for no model and says so in
 * req->degraded, which the explanations, the trace and recommend_json carry.
 */
#include "postgres.h"

#include "util/json.h"

#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/float.h"
#include "utils/lsyscache.h"

#include "util/spi.h"
#include "config/conditions.h"
#include "decision/decision.h"
#include "scoring/scoring.h"

/* What a feature lookup reads: the customer's attributes, the candidate offer, the channel. */
typedef struct FeatureArg
{
	json_t	   *attrs;			/* customer data merged with the request context */
	const KOffer *offer;		/* for offer.<field>; may be NULL */
	const char *channel_id;		/* for decision.channel; may be NULL */
} FeatureArg;

/*
 * An offer.<field> feature of a model: its value per offer of the compiled
 * configuration (KV_NULL where the offer has none), made on first use in the
 * configuration's memory, so it lives and dies with the configuration it was
 * read from (strings point into the offers' rows).
 */
typedef struct KOfferFeature
{
	char	   *name;
	KaireonValue *values;
} KOfferFeature;

static bool json_value(json_t *v, KaireonValue *out);

/*
 * Feature lookup for the scoring interface: customer attributes, offer.<field>, and
 * decision.channel (the decision's channel id: adaptive models per offer and channel).
 */
static bool
feature_get(const KaireonFeatures *self, const char *name, KaireonValue *out)
{
	const FeatureArg *fa = (const FeatureArg *) self->arg;

	if (strcmp(name, "decision.channel") == 0)
	{
		if (fa->channel_id == NULL)
			return false;
		out->kind = KV_STRING;
		out->str = fa->channel_id;
		return true;
	}
	if (strncmp(name, "offer.", 6) == 0)
		return json_value(fa->offer ? kaireon_offer_attribute(fa->offer, name + 6) : NULL, out);
	return json_value(kaireon_path(fa->attrs, name), out);
}

/*
 * The offer.<field> feature's values per offer of the configuration (see
 * KOfferFeature), by their place in cfg->offer_features (which a later
 * feature may move).
 */
static int
offer_feature(KTenantConfig *cfg, const char *name)
{
	MemoryContext old;
	KOfferFeature *of;

	for (int i = 0; i < cfg->noffer_features; i++)
		if (strcmp(cfg->offer_features[i].name, name) == 0)
			return i;
	old = MemoryContextSwitchTo(cfg->mcxt);
	cfg->offer_features = cfg->offer_features == NULL ? palloc(sizeof(KOfferFeature)) :
		repalloc(cfg->offer_features, sizeof(KOfferFeature) * (cfg->noffer_features + 1));
	of = &cfg->offer_features[cfg->noffer_features];
	of->name = pstrdup(name);
	of->values = palloc(sizeof(KaireonValue) * Max(cfg->noffers, 1));
	for (int o = 0; o < cfg->noffers; o++)
	{
		of->values[o].kind = KV_NULL;
		of->values[o].num = 0;
		of->values[o].str = NULL;
		if (!json_value(kaireon_offer_attribute(&cfg->offers[o], name + 6), &of->values[o]))
			of->values[o].kind = KV_NULL;
	}
	MemoryContextSwitchTo(old);
	return cfg->noffer_features++;
}

/* A JSON value as a feature value; false when there is none (v NULL). */
static bool
json_value(json_t *v, KaireonValue *out)
{
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
 * variant without storing it.  An experiment that does not exist, or has
 * ended, assigns nobody new: such a customer gets its champion's model (the
 * winner once an experiment is completed), or none; it never fails the
 * decision.
 */
static const char *
experiment_model(KRequest *req, const char *experiment_key, const char *customer_id, bool dry_run)
{
	static SPIPlanPtr state_plan = NULL;
	static SPIPlanPtr assign_plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	Datum		args[4];
	bool		isnull;
	Datum		d;

	if (state_plan == NULL)
		state_plan = kspi_prepare_keep(
			"SELECT e.status = 'running' OR EXISTS (SELECT 1 FROM kaireon.experiment_assignments a "
			"        WHERE a.tenant_id = $1 AND a.experiment_id = e.id AND a.customer_id = $3), "
			"       (SELECT m.key FROM kaireon.algorithm_models m "
			"         WHERE m.tenant_id = $1 AND m.id = e.champion_model_id) "
			"  FROM kaireon.experiments e WHERE e.tenant_id = $1 AND e.key = $2",
			3, types);
	if (assign_plan == NULL)
		assign_plan = kspi_prepare_keep("SELECT variant, model_key FROM kaireon.assign_experiment($1, $2, $3, $4)",
										4, types);
	args[0] = CStringGetTextDatum(req->cfg->tenant_id);
	args[1] = CStringGetTextDatum(experiment_key);
	args[2] = CStringGetTextDatum(customer_id);
	args[3] = BoolGetDatum(!dry_run);
	if (kspi_execute_plan(state_plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the experiment failed");
	if (SPI_processed == 0)
		return NULL;			/* no such experiment */
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		/* ended (or not started) and the customer was never assigned: the champion */
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		return isnull ? NULL : TextDatumGetCString(d);
	}
	if (kspi_execute_plan(assign_plan, args, NULL, dry_run, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: assigning the experiment failed");
	req->variant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/* Note that the request's scoring fell back because the model key (used by a "flow" or a "rule") is missing or broken. */
static void
note_degraded(KRequest *req, const char *key, const char *use, const char *problem)
{
	size_t		i;
	json_t	   *e;

	if (req->degraded == NULL)
		req->degraded = json_array();
	json_array_foreach(req->degraded, i, e)
		if (strcmp(kj_str(e, "model"), key) == 0 && strcmp(kj_str(e, "use"), use) == 0)
		return;
	json_array_append_new(req->degraded,
						  json_pack("{s:s,s:s,s:s?,s:s,s:s}", "model", key, "use", use,
									"placementId", req->placement_id,
									"reason", problem ? "broken" : "missing",
									"detail", problem ? problem :
									psprintf("tenant \"%s\" has no model \"%s\"", req->cfg->tenant_id, key)));
}

/* The model a decision names, compiled and cached; NULL, noted as degraded, when it is missing or broken. */
static KaireonModel *
decision_model(KRequest *req, const char *key, const char *use)
{
	char	   *problem;
	KaireonModel *m = kaireon_model_lookup_for_decision(req->cfg->tenant_id, key, &problem);

	if (m == NULL)
		note_degraded(req, key, use, problem);
	return m;
}

/*
 * Set the request's model for a placement decided by this flow: the
 * experiment's variant when the flow names one, else score.modelKey.  A model
 * that is missing, broken, untrained, shadow or archived ranks nothing (the
 * propensity falls back to the adaptive counts), but an untrained one is
 * still recorded so that it learns from the outcomes.  Missing and broken
 * ones are degraded scoring (note_degraded); the others are states the
 * tenant chose.
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
	req->model_values_valid = false;
	req->model_offer_scores = NULL;
	if (flow->experiment_key != NULL)
		key = experiment_model(req, flow->experiment_key, customer_id, dry_run);
	if (key == NULL)
		return;
	m = decision_model(req, key, "flow");
	if (m == NULL)
		return;
	req->model_key = kaireon_model_key(m);
	if (kaireon_model_get(req->cfg->tenant_id, key) != NULL && kaireon_model_ranks(m))
		req->model = m;
}

/*
 * A model's score of the request's customer with a candidate offer.  The
 * request's model, when its score does not depend on the offer, is scored
 * once per placement; when only its state does (per-arm models reading no
 * offer feature: bandits, adaptive models), its feature values are gathered
 * once per placement.
 */
double
kaireon_candidate_model_score(KRequest *req, KaireonModel *model, const KOffer *offer)
{
	FeatureArg	fa;
	KaireonFeatures f = {feature_get, &fa};
	bool		memo;
	double		s;

	/* scored in the batch (only models that read the offer: never memo below) */
	if (model == req->model && req->model_offer_scores != NULL &&
		!isnan(req->model_offer_scores[offer - req->cfg->offers]))
		return req->model_offer_scores[offer - req->cfg->offers];
	memo = (model == req->model && !kaireon_model_per_offer(model));
	if (memo && req->model_memo_valid)
		return req->model_memo;
	fa.attrs = req->cust->attrs;
	fa.offer = offer;
	fa.channel_id = req->channel_id;
	if (model == req->model && !memo && !kaireon_model_reads_offer(model))
	{
		if (!req->model_values_valid)
		{
			req->model_values = kaireon_model_gather(model, &f);
			req->model_values_valid = true;
		}
		return kaireon_model_score_values(model, req->model_values, offer->id);
	}
	s = kaireon_model_score(model, &f, offer->id);
	if (memo)
	{
		req->model_memo = s;
		req->model_memo_valid = true;
	}
	return s;
}

/*
 * Score every remaining candidate by the placement's model at once, before
 * the scoring stage asks for them one by one (kaireon_candidate_model_score
 * then returns the scores kept in req->model_offer_scores), when the flow
 * takes its propensity from a model that reads offer features: the stage
 * would score each of them exactly once, in this order, so the batch changes
 * nothing but the cost.  The customer's and the request's features are
 * gathered once and marked shared (the same in every row); only the offer's
 * are gathered per candidate.
 */
void
kaireon_batch_model_scores(KRequest *req, const KFlow *flow, const KCandidate *cands, int n)
{
	KaireonModel *model = req->model;
	const char *const *names;
	int			nf,
				nrows = 0;
	bool	   *shared;
	const KOfferFeature **own;
	KaireonValue *values;
	KaireonValue *first;
	const char **arms;
	int		   *offers;
	double	   *scores;
	FeatureArg	fa = {req->cust->attrs, NULL, req->channel_id};
	KaireonFeatures f = {feature_get, &fa};

	if (model == NULL || !flow->model_propensity || !kaireon_model_reads_offer(model) ||
		req->model_offer_scores != NULL)
		return;
	/* the candidates the stage would score: not dropped, no propensity yet (a rule may have asked) */
	for (int i = 0; i < n; i++)
		nrows += !cands[i].dropped_stage && cands[i].propensity < 0;
	if (nrows < 2)
		return;
	nf = kaireon_model_feature_names(model, &names);
	shared = palloc(sizeof(bool) * Max(nf, 1));
	values = palloc(sizeof(KaireonValue) * (size_t) nrows * Max(nf, 1));
	arms = palloc(sizeof(char *) * nrows);
	offers = palloc(sizeof(int) * nrows);
	scores = palloc(sizeof(double) * nrows);
	/* the shared features once (feature_get reads the offer only for offer.<field>) */
	first = kaireon_model_gather(model, &f);
	own = palloc(sizeof(KOfferFeature *) * Max(nf, 1));
	for (int k = 0; k < nf; k++)
		shared[k] = strncmp(names[k], "offer.", 6) != 0;
	for (int k = 0; k < nf; k++)
		if (!shared[k])
			offer_feature(req->cfg, names[k]);
	/* all made: their places no longer move */
	for (int k = 0; k < nf; k++)
		own[k] = shared[k] ? NULL : &req->cfg->offer_features[offer_feature(req->cfg, names[k])];
	nrows = 0;
	for (int i = 0; i < n; i++)
	{
		KaireonValue *row = values + (size_t) nrows * nf;

		if (cands[i].dropped_stage || cands[i].propensity >= 0)
			continue;
		for (int k = 0; k < nf; k++)
			row[k] = shared[k] ? first[k] : own[k]->values[cands[i].offer];
		arms[nrows] = req->cfg->offers[cands[i].offer].id;
		offers[nrows] = cands[i].offer;
		nrows++;
	}
	kaireon_model_score_batch(model, values, nrows, arms, shared, offers, scores);
	req->model_offer_scores = palloc(sizeof(double) * req->cfg->noffers);
	for (int o = 0; o < req->cfg->noffers; o++)
		req->model_offer_scores[o] = get_float8_nan();
	for (int r = 0; r < nrows; r++)
		req->model_offer_scores[offers[r]] = scores[r];
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
	TEXTARRAYOID, FLOAT8ARRAYOID};
	KRequest   *req = res->req;
	Datum	   *cols[5] = {NULL};	/* shadow model id, offer id, score, ranking model id, its score */
	int			n = 0,
				cap = 0;
	Datum		v[8];

	for (int i = 0; i < res->ndecisions; i++)
	{
		KDecision  *d = &res->decisions[i];
		const KOffer *offer = &req->cfg->offers[d->cand->offer];
		KaireonModel **shadows;
		int			ns;
		FeatureArg	fa = {req->cust->attrs, offer, req->channel_id};
		KaireonFeatures f = {feature_get, &fa};

		if (d->model == NULL || (ns = kaireon_model_shadows(d->model, &shadows)) == 0)
			continue;
		for (int k = 0; k < ns; k++)
		{
			if (n == cap)
			{
				cap = Max(8, cap * 2);
				for (int c = 0; c < 5; c++)
					cols[c] = cols[c] ? repalloc(cols[c], sizeof(Datum) * cap) : palloc(sizeof(Datum) * cap);
			}
			cols[0][n] = CStringGetTextDatum(kaireon_model_id(shadows[k]));
			cols[1][n] = CStringGetTextDatum(offer->id);
			cols[2][n] = Float8GetDatum(kaireon_model_score(shadows[k], &f, offer->id));
			cols[3][n] = CStringGetTextDatum(kaireon_model_id(d->model));	/* per decision: placements differ */
			cols[4][n] = Float8GetDatum(kaireon_model_score(d->model, &f, offer->id));
			n++;
		}
	}
	if (n == 0)
		return;
	if (plan == NULL)
		plan = kspi_prepare_keep(
			"INSERT INTO kaireon.model_shadow_scores (tenant_id, customer_id, recommendation_id, model_id, "
			"  offer_id, score, ranking_model_id, ranking_score) "
			"SELECT $1, $2, $3, u.* "
			"  FROM unnest($4::text[], $5::text[], $6::float8[], $7::text[], $8::float8[]) "
			"       AS u(model_id, offer_id, score, ranking_model_id, ranking_score)",
			8, types);
	v[0] = CStringGetTextDatum(req->cfg->tenant_id);
	v[1] = CStringGetTextDatum(customer_id);
	v[2] = CStringGetTextDatum(res->recommendation_id);
	v[3] = PointerGetDatum(construct_array(cols[0], n, TEXTOID, -1, false, TYPALIGN_INT));
	v[4] = PointerGetDatum(construct_array(cols[1], n, TEXTOID, -1, false, TYPALIGN_INT));
	v[5] = PointerGetDatum(construct_array(cols[2], n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	v[6] = PointerGetDatum(construct_array(cols[3], n, TEXTOID, -1, false, TYPALIGN_INT));
	v[7] = PointerGetDatum(construct_array(cols[4], n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (kspi_execute_plan(plan, v, NULL, false, 0) != SPI_OK_INSERT)
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

	if (!la->loaded && strcmp(name, "decision.channel") != 0)
	{
		la->fa.attrs = kaireon_customer_attributes(la->cfg, la->customer_id, la->context, la->schema);
		la->loaded = true;
	}
	return feature_get(&inner, name, out);
}

/*
 * Let the decision's model learn from an outcome of class cls (neutral
 * outcomes teach nothing).  The features are the customer's
 * attributes now, with the decision's request context, and the decision's
 * channel (decision.channel); the attributes are read only
 * when the model asks for one (bandits do not).  True when the model learned.
 */
bool
kaireon_learn_outcome(KTenantConfig *cfg, const char *model_key, const char *offer_id,
					  const char *channel_id, const char *customer_id, const char *flow_id,
					  json_t *context, KaireonOutcomeClass cls)
{
	LazyFeatureArg la;
	KaireonFeatures f = {lazy_feature_get, &la};
	int			o = offer_id ? kaireon_find_offer(cfg, offer_id) : -1;

	if (cls == KAIREON_OUTCOME_NEUTRAL || model_key == NULL)
		return false;
	memset(&la, 0, sizeof(la));
	la.cfg = cfg;
	la.customer_id = customer_id;
	la.context = context;
	la.fa.offer = o >= 0 ? &cfg->offers[o] : NULL;
	la.fa.channel_id = channel_id;
	for (int i = 0; flow_id != NULL && i < cfg->nflows; i++)
		if (strcmp(cfg->flows[i].id, flow_id) == 0)
			la.schema = cfg->flows[i].customer_schema;
	return kaireon_model_learn(cfg->tenant_id, model_key, offer_id, &f, cls);
}

/*
 * The model a propensity_threshold rule names (modelKey), when it may score:
 * trained and neither shadow nor archived; else NULL (the rule then reads the
 * candidate's propensity; a missing or broken model is degraded scoring).
 * Looked up once per request and rule.
 */
KaireonModel *
kaireon_rule_model(KRequest *req, const KRule *rule)
{
	int			ri = rule - req->cfg->rules;

	if (req->rule_models == NULL)
	{
		req->rule_models = palloc0(sizeof(KaireonModel *) * req->cfg->nrules);
		req->rule_models_done = palloc0(sizeof(int8) * req->cfg->nrules);
	}
	if (!req->rule_models_done[ri])
	{
		KaireonModel *m = decision_model(req, rule->model_key, "rule");

		if (m != NULL && kaireon_model_get(req->cfg->tenant_id, rule->model_key) == NULL)
			m = NULL;			/* untrained */
		req->rule_models[ri] = (m != NULL && kaireon_model_ranks(m)) ? m : NULL;
		req->rule_models_done[ri] = 1;
	}
	return req->rule_models[ri];
}
