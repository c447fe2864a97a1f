/*
 * scoring/models/train.c
 *	  In-database training (kaireon.train_model) and drift checks
 *	  (kaireon.check_drift): the SQL entry points.
 *
 * train_model reads the model's row, loads the examples of its window
 * (train_examples.c), fits the model of its family (train_fit.c), records
 * the training distribution of each predictor (train_metrics.c) and stores
 * the state and metrics.  check_drift loads the examples of two windows,
 * scores them with the model and measures the drift of the scores and of
 * the predictors (train_metrics.c), one model_drift_checks row per check.
 * The files share scoring/models/train_internal.h.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "security/session.h"
#include "stats/stats.h"
#include "scoring/models/model.h"
#include "scoring/models/train_internal.h"
#include "scoring/scoring.h"

PG_FUNCTION_INFO_V1(kaireon_train_model);
PG_FUNCTION_INFO_V1(kaireon_check_drift);

/* ---- SQL entry points ---- */

/* A number from options, else config.training, else dflt. */
static double
option_number(json_t *options, json_t *training, const char *key, double dflt)
{
	json_t	   *v = json_object_get(options, key);

	if (v == NULL && training)
		v = json_object_get(training, key);
	if (v == NULL)
		return dflt;
	return model_number("train_model options", v, key);
}

/* A string from options, else config.training, else NULL. */
static const char *
option_string(json_t *options, json_t *training, const char *key)
{
	json_t	   *v = json_object_get(options, key);

	if (v == NULL && training)
		v = json_object_get(training, key);
	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		model_error("train_model options", key, "must be a string");
	return json_string_value(v);
}

/* Read a model's row for training: id, type, predictors, config, model_state. */
static void
read_model(const char *tenant, const char *key, char **id, char **type, json_t **preds, json_t **config,
		   json_t **state)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(key);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT id, model_type, predictors::text, config::text, model_state::text FROM kaireon.algorithm_models "
							   "WHERE tenant_id = $1 AND key = $2", 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no model \"%s\"", tenant, key),
				 errhint("Create it in kaireon.algorithm_models first.")));
	*id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	{
		char	   *p = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		char	   *c = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
		char	   *cid = SPI_palloc(strlen(*id) + 1),
				   *ctype = SPI_palloc(strlen(*type) + 1),
				   *cp = SPI_palloc(strlen(p) + 1),
				   *cc = SPI_palloc(strlen(c) + 1),
				   *cs = SPI_palloc(strlen(s) + 1);

		strcpy(cid, *id);
		strcpy(ctype, *type);
		strcpy(cp, p);
		strcpy(cc, c);
		strcpy(cs, s);
		SPI_finish();
		*id = cid;
		*type = ctype;
		*preds = kj_parse(cp, strlen(cp), "algorithm_models.predictors");
		*config = kj_parse(cc, strlen(cc), "algorithm_models.config");
		*state = kj_parse(cs, strlen(cs), "algorithm_models.model_state");
	}
}

/* A window bound argument, or dflt when null. */
static TimestampTz
ts_arg(FunctionCallInfo fcinfo, int n, TimestampTz dflt)
{
	return PG_ARGISNULL(n) ? dflt : PG_GETARG_TIMESTAMPTZ(n);
}

/*
 * kaireon.train_model(tenant_id, model_key, since, until, options): fit the
 * model from the outcomes of [since, until), store its state and metrics (a
 * new version and model_versions snapshot); returns the metrics.
 */
Datum
kaireon_train_model(PG_FUNCTION_ARGS)
{
	char	   *tenant,
			   *key,
			   *id,
			   *type;
	json_t	   *preds,
			   *config,
			   *training,
			   *options,
			   *metrics = json_object(),
			   *state,
			   *current,
			   *p;
	char	  **names;
	bool	   *categorical;
	int			nf;
	size_t		k;
	Examples   *ex;
	TimestampTz since,
				until;
	double		npos = 0;
	int			i;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and model_key must not be null"),
				 errhint("Pass the tenant and the key of the model to train.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kaireon_check_tenant_access(tenant);
	kaireon_progress_start("train_model", tenant, -1);
	since = ts_arg(fcinfo, 2, DT_NOBEGIN);
	until = ts_arg(fcinfo, 3, DT_NOEND);
	options = PG_ARGISNULL(4) ? json_object() : kj_from_jsonb(PG_GETARG_JSONB_P(4), "options");
	if (!json_is_object(options))
		model_error("train_model options", "", "must be a JSON object");
	{
		static const char *const opt_keys[] = {"l2", "maxIterations", "alpha", "offerId", "dataSchemaId", "minExamples", NULL};

		model_check_keys("train_model options", options, "", opt_keys);
	}
	read_model(tenant, key, &id, &type, &preds, &config, &current);
	training = json_object_get(config, "training");
	if (training && !json_is_object(training))
		model_error("algorithm_models.config", "training", "must be an object");
	if (strcmp(type, "logistic_regression") != 0 && strcmp(type, "bayesian") != 0 &&
		strcmp(type, "online_learner") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is a %s model; train_model trains logistic_regression, bayesian and online_learner models", key, type),
				 errhint("Import gradient_boosted models with kaireon.import_model; bandits and scorecards learn from respond or are written directly.")));
	nf = (int) json_array_size(preds);
	if (nf == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" has no predictors to train on", key),
				 errhint("List them in algorithm_models.predictors, e.g. [{\"name\": \"age\", \"type\": \"numeric\"}].")));
	names = palloc(sizeof(char *) * nf);
	categorical = palloc(sizeof(bool) * nf);
	json_array_foreach(preds, k, p)
	{
		json_t	   *t = json_object_get(p, "type");

		names[k] = pstrdup(json_string_value(json_object_get(p, "name")));
		categorical[k] = t != NULL && strcmp(json_string_value(t), "categorical") == 0;
	}
	kaireon_progress_update("loading examples", 0, -1);
	ex = kaireon_train_load_examples(tenant, option_string(options, training, "dataSchemaId"),
									 since, until, option_string(options, training, "offerId"),
									 names, nf);
	for (i = 0; i < ex->n; i++)
		npos += ex->y[i];
	if (ex->n < (int) option_number(options, training, "minExamples", 1) || npos == 0 || npos == ex->n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" cannot be trained from %d examples (%d positive): both outcomes are needed",
						key, ex->n, (int) npos),
				 errhint("Record positive and negative outcomes in interaction_history for the window first.")));

	if (strcmp(type, "logistic_regression") == 0)
	{
		double		l2 = option_number(options, training, "l2", 1.0);
		int			max_iter = (int) option_number(options, training, "maxIterations", 100);

		if (l2 < 0)
			model_error("train_model options", "l2", "must not be negative");
		if (max_iter < 1 || max_iter > 10000)
			model_error("train_model options", "maxIterations", "must be between 1 and 10000");
		state = kaireon_train_logistic(ex, names, categorical, l2, max_iter, metrics);
	}
	else if (strcmp(type, "online_learner") == 0)
		state = kaireon_train_online(ex, names, preds, current, metrics);
	else
	{
		double		alpha = option_number(options, training, "alpha", 1.0);

		if (!(alpha > 0))
			model_error("train_model options", "alpha", "must be above 0");
		if (alpha < KAIREON_MODEL_MIN_ALPHA || alpha > KAIREON_MODEL_MAX_ALPHA)
			model_error("train_model options", "alpha", "must be from %g to %g, not %g",
						KAIREON_MODEL_MIN_ALPHA, KAIREON_MODEL_MAX_ALPHA, alpha);
		state = kaireon_train_bayesian(ex, names, preds, alpha, metrics);
	}
	json_object_set_new(metrics, "featureBaseline", kaireon_train_feature_baseline(ex, names, categorical));
	json_object_set_new(metrics, "samples", json_integer(ex->n));
	json_object_set_new(metrics, "positives", json_integer((json_int_t) npos));
	json_object_set_new(metrics, "negatives", json_integer(ex->n - (json_int_t) npos));
	json_object_set_new(metrics, "trainedAt",
						json_string(timestamptz_to_str(GetCurrentTransactionStartTimestamp())));

	kaireon_progress_update("storing", ex->n, ex->n);
	args[0] = CStringGetTextDatum(kj_dump(state, JSON_COMPACT));
	args[1] = CStringGetTextDatum(kj_dump(metrics, JSON_COMPACT));
	args[2] = CStringGetTextDatum(tenant);
	args[3] = CStringGetTextDatum(id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("UPDATE kaireon.algorithm_models SET model_state = $1::jsonb, "
							   "metrics = metrics || $2::jsonb, last_trained_at = now(), status = 'active' "
							   "WHERE tenant_id = $3 AND id = $4", 4, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "storing the trained model failed");
	SPI_finish();
	kaireon_progress_end();
	PG_RETURN_JSONB_P(DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(kj_dump(metrics, JSON_COMPACT)))));
}

/* Score every example with a model (values already in its feature order). */
static double *
score_examples(KaireonModel *m, Examples *ex)
{
	double	   *s = palloc(sizeof(double) * Max(ex->n, 1));
	int			i;

	for (i = 0; i < ex->n; i++)
		s[i] = kaireon_model_score_values(m, &ex->values[(size_t) i * ex->nf], NULL);
	return s;
}

/* The featureBaseline train_model recorded in a model's metrics, or NULL. */
static json_t *
read_feature_baseline(const char *tenant, const char *model_id)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	json_t	   *out = NULL;
	MemoryContext caller = CurrentMemoryContext;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT metrics -> 'featureBaseline' FROM kaireon.algorithm_models "
							   "WHERE tenant_id = $1 AND id = $2", 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);	/* outlives SPI_finish */

			out = kj_from_jsonb(DatumGetJsonbP(d), "algorithm_models.metrics.featureBaseline");
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	if (out != NULL && !json_is_object(json_object_get(out, "features")))
		model_error("algorithm_models.metrics", "featureBaseline", "must hold an object \"features\" (train_model writes it)");
	return out;
}

/*
 * kaireon.check_drift(tenant_id, model_key, baseline_start, baseline_end,
 * current_start, current_end, thresholds): PSI, KS and AUC decay of the
 * model's scores between the windows, one model_drift_checks row each.
 */
Datum
kaireon_check_drift(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant,
			   *key;
	KaireonModel *m;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz cur_start,
				cur_end,
				base_start,
				base_end;
	json_t	   *thresholds;
	Examples   *base,
			   *cur;
	double	   *sb,
			   *sc;
	const char *const *names;
	int			nf;
	double		scores[4],
				limits[4];
	bool		have[4] = {true, true, true, false};
	const char *types[4] = {"psi", "ks_test", "auc_decay", "feature_drift"};
	json_t	   *bdetail[4],
			   *cdetail[4];
	json_t	   *feature_base;
	double		auc_b,
				auc_c;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and model_key must not be null"),
				 errhint("Pass the tenant and the key of the model to check.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kaireon_check_tenant_access(tenant);
	cur_end = ts_arg(fcinfo, 5, now);
	cur_start = ts_arg(fcinfo, 4, cur_end - 7 * USECS_PER_DAY);
	base_end = ts_arg(fcinfo, 3, cur_start);
	base_start = ts_arg(fcinfo, 2, base_end - 30 * USECS_PER_DAY);
	if (!(base_start < base_end) || !(cur_start < cur_end))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("each drift window must start before it ends"),
				 errhint("Pass baseline_start < baseline_end and current_start < current_end.")));
	thresholds = PG_ARGISNULL(6) ? json_object() : kj_from_jsonb(PG_GETARG_JSONB_P(6), "thresholds");
	if (!json_is_object(thresholds))
		model_error("check_drift thresholds", "", "must be a JSON object");
	{
		static const char *const keys[] = {"psi", "ks_test", "auc_decay", "feature_drift", NULL};

		model_check_keys("check_drift thresholds", thresholds, "", keys);
	}
	limits[0] = option_number(thresholds, NULL, "psi", 0.2);
	limits[1] = option_number(thresholds, NULL, "ks_test", 0.1);
	limits[2] = option_number(thresholds, NULL, "auc_decay", 0.05);
	limits[3] = option_number(thresholds, NULL, "feature_drift", 0.2);

	m = kaireon_model_get(tenant, key);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no trained model \"%s\"", tenant, key),
				 errhint("Drift is measured on a model's scores: train or import it first.")));
	nf = kaireon_model_feature_names(m, &names);
	base = kaireon_train_load_examples(tenant, NULL, base_start, base_end, NULL, (char **) names, nf);
	cur = kaireon_train_load_examples(tenant, NULL, cur_start, cur_end, NULL, (char **) names, nf);
	if (base->n < 10 || cur->n < 10)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("drift needs at least 10 outcomes in each window; the baseline has %d and the current window %d",
						base->n, cur->n),
				 errhint("Widen the windows.")));
	sb = score_examples(m, base);
	sc = score_examples(m, cur);
	for (i = 0; i < 4; i++)
	{
		bdetail[i] = json_object();
		cdetail[i] = json_object();
		json_object_set_new(bdetail[i], "from", json_string(timestamptz_to_str(base_start)));
		json_object_set_new(bdetail[i], "to", json_string(timestamptz_to_str(base_end)));
		json_object_set_new(bdetail[i], "samples", json_integer(base->n));
		json_object_set_new(cdetail[i], "from", json_string(timestamptz_to_str(cur_start)));
		json_object_set_new(cdetail[i], "to", json_string(timestamptz_to_str(cur_end)));
		json_object_set_new(cdetail[i], "samples", json_integer(cur->n));
	}
	scores[0] = kaireon_train_psi(sb, base->n, sc, cur->n, bdetail[0]);
	scores[1] = kaireon_train_ks(sb, base->n, sc, cur->n);
	auc_b = kaireon_train_auc(sb, base->y, base->n);
	auc_c = kaireon_train_auc(sc, cur->y, cur->n);
	if (isnan(auc_b) || isnan(auc_c))
		have[2] = false;
	else
	{
		scores[2] = auc_b - auc_c;
		json_object_set_new(bdetail[2], "auc", json_real(auc_b));
		json_object_set_new(cdetail[2], "auc", json_real(auc_c));
	}
	/* feature drift: the current window's predictors against the training distribution */
	feature_base = read_feature_baseline(tenant, kaireon_model_id(m));
	if (feature_base != NULL)
	{
		json_t	   *features = json_object_get(feature_base, "features");
		char	  **fnames = palloc(sizeof(char *) * Max(json_object_size(features), 1));
		const char *fname;
		json_t	   *v;
		int			fn = 0;

		json_object_foreach(features, fname, v)
			fnames[fn++] = pstrdup(fname);
		scores[3] = kaireon_train_feature_drift(kaireon_train_load_examples(tenant, NULL, cur_start,
																			cur_end, NULL, fnames, fn),
												feature_base, limits[3], cdetail[3]);
		json_decref(bdetail[3]);
		bdetail[3] = feature_base;
		/* jsonb gave the count back as a real */
		json_object_set_new(feature_base, "samples", json_integer((json_int_t) kj_num(feature_base, "samples", 0)));
		have[3] = true;
	}

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (i = 0; i < 4; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		Oid			argtypes[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID};
		Datum		args[7];
		bool		drifted;

		if (!have[i])
			continue;
		drifted = scores[i] > limits[i];
		args[0] = CStringGetTextDatum(tenant);
		args[1] = CStringGetTextDatum(kaireon_model_id(m));
		args[2] = CStringGetTextDatum(types[i]);
		args[3] = CStringGetTextDatum(kj_dump(bdetail[i], JSON_COMPACT));
		args[4] = CStringGetTextDatum(kj_dump(cdetail[i], JSON_COMPACT));
		args[5] = Float8GetDatum(scores[i]);
		args[6] = Float8GetDatum(limits[i]);
		if (kspi_execute_with_args("INSERT INTO kaireon.model_drift_checks (tenant_id, model_id, check_type, "
								   "baseline, current, drift_score, threshold, drifted) "
								   "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $6 > $7)",
								   7, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "writing model_drift_checks failed");
		values[0] = CStringGetTextDatum(types[i]);
		values[1] = Float8GetDatum(scores[i]);
		values[2] = Float8GetDatum(limits[i]);
		values[3] = BoolGetDatum(drifted);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
