/*
 * sql.c
 *	  The SQL entry points of the scoring module: kaireon.score,
 *	  kaireon.explain_score, kaireon.model_features, kaireon.set_model_seed,
 *	  kaireon.adaptive_report, kaireon.model_learn and kaireon.import_model,
 *	  over the model cache of scoring.c (scoring.h, model_cache.h).  A call
 *	  site keeps its model in fn_extra between rows while the cache generation
 *	  is unchanged.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "util/spi.h"
#include "security/session.h"
#include "scoring/models/model.h"
#include "scoring/models/trees_import.h"
#include "scoring/scoring.h"
#include "scoring/model_cache.h"

PG_FUNCTION_INFO_V1(kaireon_score_jsonb);
PG_FUNCTION_INFO_V1(kaireon_score_array);
PG_FUNCTION_INFO_V1(kaireon_explain_score);
PG_FUNCTION_INFO_V1(kaireon_model_features_sql);
PG_FUNCTION_INFO_V1(kaireon_model_learn_sql);
PG_FUNCTION_INFO_V1(kaireon_import_model);
PG_FUNCTION_INFO_V1(kaireon_set_model_seed);
PG_FUNCTION_INFO_V1(kaireon_adaptive_report_sql);

/* ---- SQL: features from jsonb ---- */

typedef struct JsonbFeatures
{
	KaireonFeatures base;
	Jsonb	   *jb;
} JsonbFeatures;

/* KaireonFeatures.get over a jsonb object. */
static bool
jsonb_feature_get(const KaireonFeatures *self, const char *name, KaireonValue *out)
{
	const JsonbFeatures *jf = (const JsonbFeatures *) self;
	JsonbValue	vbuf;
	JsonbValue *v = getKeyJsonValueFromContainer(&jf->jb->root, name, strlen(name), &vbuf);

	if (v == NULL)
		return false;
	kaireon_value_from_jsonb(v, out);	/* null, arrays and objects count as missing */
	return true;
}

/* A features lookup over a jsonb object argument (22023 unless an object). */
static void
jsonb_features(Jsonb *jb, JsonbFeatures *jf)
{
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("features must be a JSON object of feature names and values"),
				 errhint("For example '{\"age\": 42, \"device\": \"mobile\"}'.")));
	jf->base.get = jsonb_feature_get;
	jf->base.arg = NULL;
	jf->jb = jb;
}

/* ---- SQL entry points ---- */

/* What score() keeps between rows in fn_extra. */
typedef struct ScoreCallCache
{
	uint64		generation;
	char		tenant[256];
	char		key[MAX_MODEL_KEY_LEN + 1];
	size_t		tenant_len;
	size_t		key_len;
	KaireonModel *model;
	KaireonValue *values;
} ScoreCallCache;

/* The model of a SQL call: access-checked, found, trained; cached per call site. */
static KaireonModel *
sql_model(FunctionCallInfo fcinfo, bool need_trained)
{
	ScoreCallCache *cc = (ScoreCallCache *) fcinfo->flinfo->fn_extra;
	char	   *tenant,
			   *key;
	KaireonModel *m;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and model_key must not be null"),
				 errhint("Pass the tenant and the key of one of its algorithm_models rows.")));
	if (cc != NULL && cc->generation == kaireon_model_cache_generation && cc->model != NULL)
	{
		/* the same model as the previous row: compare the arguments in place */
		text	   *t = PG_GETARG_TEXT_PP(0);
		text	   *k = PG_GETARG_TEXT_PP(1);

		if (VARSIZE_ANY_EXHDR(t) == cc->tenant_len && VARSIZE_ANY_EXHDR(k) == cc->key_len &&
			memcmp(VARDATA_ANY(t), cc->tenant, cc->tenant_len) == 0 &&
			memcmp(VARDATA_ANY(k), cc->key, cc->key_len) == 0)
			return cc->model;
	}
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kaireon_check_tenant_access(tenant);
	m = kaireon_model_lookup(tenant, key);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no model \"%s\"", tenant, key),
				 errhint("Create it in kaireon.algorithm_models or with kaireon.import_model.")));
	if (need_trained && m->untrained)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" of tenant \"%s\" has no learned state yet", key, tenant),
				 errhint("Train it with kaireon.train_model, import it with kaireon.import_model, or write its model_state.")));
	if (cc == NULL)
	{
		cc = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ScoreCallCache));
		fcinfo->flinfo->fn_extra = cc;
	}
	if (strlen(tenant) < sizeof(cc->tenant))
	{
		strlcpy(cc->tenant, tenant, sizeof(cc->tenant));
		strlcpy(cc->key, key, sizeof(cc->key));
		cc->tenant_len = strlen(tenant);
		cc->key_len = strlen(key);
		cc->generation = kaireon_model_cache_generation;
		cc->model = m;
		cc->values = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
										sizeof(KaireonValue) * Max(m->impl.nfeatures, 1));
	}
	return m;
}

/* The optional arm argument (argument n). */
static char *
arm_arg(FunctionCallInfo fcinfo, int n)
{
	if (PG_NARGS() > n && !PG_ARGISNULL(n))
		return text_to_cstring(PG_GETARG_TEXT_PP(n));
	return NULL;
}

/* The features argument n (a jsonb object, not null) as a lookup; doing names the call in the hint. */
static void
features_arg(FunctionCallInfo fcinfo, int n, JsonbFeatures *jf, const char *doing)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("features must not be null"),
				 errhint("Pass '{}' to %s without features.", doing)));
	jsonb_features(PG_GETARG_JSONB_P(n), jf);
}

/* kaireon.score(tenant_id, model_key, features jsonb, arm text) */
Datum
kaireon_score_jsonb(PG_FUNCTION_ARGS)
{
	KaireonModel *m = sql_model(fcinfo, true);
	JsonbFeatures jf;

	features_arg(fcinfo, 2, &jf, "score");
	PG_RETURN_FLOAT8(kaireon_model_score(m, &jf.base, arm_arg(fcinfo, 3)));
}

/*
 * kaireon.score(tenant_id, model_key, features float8[], arm text): values in
 * the order of kaireon.model_features; NULL or NaN elements are missing.
 */
Datum
kaireon_score_array(PG_FUNCTION_ARGS)
{
	KaireonModel *m = sql_model(fcinfo, true);
	ArrayType  *arr;
	int			n,
				i;
	Datum	   *elems;
	bool	   *nulls;
	KaireonValue *values;
	ScoreCallCache *cc = (ScoreCallCache *) fcinfo->flinfo->fn_extra;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("features must not be null"),
				 errhint("Pass one value per feature of kaireon.model_features(tenant_id, model_key).")));
	arr = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("features must be a one-dimensional array")));
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	if (n != m->impl.nfeatures)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" reads %d features, but %d values were given", m->key,
						m->impl.nfeatures, n),
				 errhint("kaireon.model_features(tenant_id, model_key) lists them in order.")));
	values = (cc != NULL && cc->model == m) ? cc->values : palloc(sizeof(KaireonValue) * Max(n, 1));
	if (!ARR_HASNULL(arr))
	{
		/* the common case: read the doubles in place */
		const float8 *d = (const float8 *) ((const char *) arr + ARR_OVERHEAD_NONULLS(ARR_NDIM(arr)));

		for (i = 0; i < n; i++)
		{
			values[i].kind = isfinite(d[i]) ? KV_NUMBER : KV_NULL;	/* NaN, +-Infinity: missing */
			values[i].num = d[i];
		}
	}
	else
	{
		deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
		for (i = 0; i < n; i++)
		{
			values[i].num = nulls[i] ? 0 : DatumGetFloat8(elems[i]);
			values[i].kind = (nulls[i] || !isfinite(values[i].num)) ? KV_NULL : KV_NUMBER;
		}
	}
	PG_RETURN_FLOAT8(kaireon_model_score_values(m, values, arm_arg(fcinfo, 3)));
}

/* kaireon.explain_score(tenant_id, model_key, features jsonb, arm text) */
Datum
kaireon_explain_score(PG_FUNCTION_ARGS)
{
	KaireonModel *m = sql_model(fcinfo, true);
	JsonbFeatures jf;

	features_arg(fcinfo, 2, &jf, "explain a score");
	PG_RETURN_JSONB_P(kaireon_model_explain(m, &jf.base, arm_arg(fcinfo, 3)));
}

/* kaireon.model_features(tenant_id, model_key): the features a model reads, in order. */
Datum
kaireon_model_features_sql(PG_FUNCTION_ARGS)
{
	KaireonModel *m = sql_model(fcinfo, false);
	Datum	   *d = palloc(sizeof(Datum) * Max(m->impl.nfeatures, 1));
	int			i;

	for (i = 0; i < m->impl.nfeatures; i++)
		d[i] = CStringGetTextDatum(m->impl.feature_names[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, m->impl.nfeatures, TEXTOID, -1, false, TYPALIGN_INT));
}

/* kaireon.set_model_seed(seed): make bandit draws in this session reproducible. */
Datum
kaireon_set_model_seed(PG_FUNCTION_ARGS)
{
	model_random_seed((uint64) PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}

/*
 * kaireon.adaptive_report(tenant_id, model_key, offer_id, channel_id): the adaptive
 * model's predictors for one offer (and channel, for a perChannel model), highest AUC first
 * (see models/adaptive.c).
 */
Datum
kaireon_adaptive_report_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KaireonModel *m = sql_model(fcinfo, false);
	json_t	   *rows;
	size_t		i;
	json_t	   *r;

	if (m->ops != &kaireon_adaptive_ops)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" is a %s model, not an adaptive one", m->key, m->ops->type_name),
				 errhint("adaptive_report reports models of model_type adaptive.")));
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("offer_id must not be null"),
				 errhint("An adaptive model has one model per offer: name the offer.")));
	rows = kaireon_adaptive_report(&m->impl, text_to_cstring(PG_GETARG_TEXT_PP(2)),
								   PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3)));
	InitMaterializedSRF(fcinfo, 0);
	json_array_foreach(rows, i, r)
	{
		Datum		v[5];
		bool		nulls[5] = {false, false, false, false, false};

		v[0] = CStringGetTextDatum(json_string_value(json_object_get(r, "predictor")));
		v[1] = CStringGetTextDatum(json_string_value(json_object_get(r, "type")));
		v[2] = Float8GetDatum(json_number_value(json_object_get(r, "auc")));
		v[3] = BoolGetDatum(json_is_true(json_object_get(r, "active")));
		v[4] = JsonbPGetDatum(kj_to_jsonb(json_object_get(r, "bins")));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}

/* kaireon.model_learn(tenant_id, model_key, arm, features jsonb, outcome text) */
Datum
kaireon_model_learn_sql(PG_FUNCTION_ARGS)
{
	char	   *tenant,
			   *key,
			   *arm,
			   *outcome;
	KaireonOutcomeClass oc;
	JsonbFeatures jf;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id, model_key and outcome must not be null"),
				 errhint("outcome is the classification of the outcome: positive, negative or neutral.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	arm = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	outcome = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (strcmp(outcome, "positive") == 0)
		oc = KAIREON_OUTCOME_POSITIVE;
	else if (strcmp(outcome, "negative") == 0)
		oc = KAIREON_OUTCOME_NEGATIVE;
	else if (strcmp(outcome, "neutral") == 0)
		oc = KAIREON_OUTCOME_NEUTRAL;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outcome must be positive, negative or neutral, not \"%s\"", outcome),
				 errhint("Pass the classification of the outcome type.")));
	kaireon_check_tenant_access(tenant);
	if (!PG_ARGISNULL(3))
		jsonb_features(PG_GETARG_JSONB_P(3), &jf);
	PG_RETURN_BOOL(kaireon_model_learn(tenant, key, arm, PG_ARGISNULL(3) ? NULL : &jf.base, oc));
}

/* ---- import ---- */

/*
 * kaireon.import_model(tenant_id, model_key, format, document, options):
 * convert an XGBoost or LightGBM file into a gradient_boosted model, creating
 * or replacing the model with this key; returns its id.
 */
Datum
kaireon_import_model(PG_FUNCTION_ARGS)
{
	char	   *tenant,
			   *key,
			   *format,
			   *doc_text;
	json_t	   *doc,
			   *options = NULL,
			   *state,
			   *preds,
			   *v;
	Oid			argtypes[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[7];
	char		nulls[7] = "       ";
	char	   *name,
			   *family = NULL;
	char	   *metrics;
	int			rc;
	char	   *id;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id, model_key, format and document must not be null"),
				 errhint("format is xgboost_json or lightgbm_json; document is the file's text.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	format = text_to_cstring(PG_GETARG_TEXT_PP(2));
	doc_text = text_to_cstring(PG_GETARG_TEXT_PP(3));
	kaireon_check_tenant_access(tenant);
	if (key[0] == '\0' || strlen(key) > MAX_MODEL_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model_key must be between 1 and %d characters", MAX_MODEL_KEY_LEN),
				 errhint("Use a short identifier such as 'churn-xgb'.")));
	if (!PG_ARGISNULL(4))
	{
		static const char *const opt_keys[] = {"featureNames", "name", "family", NULL};

		options = kj_from_jsonb(PG_GETARG_JSONB_P(4), "options");
		if (!json_is_object(options))
			model_error("import_model options", "", "must be a JSON object");
		model_check_keys("import_model options", options, "", opt_keys);
	}
	/* XGBoost writes NaN (e.g. the split conditions of categorical nodes): read it as null */
	doc = kj_parse_nonfinite(doc_text, strlen(doc_text), "the model document");
	kaireon_trees_import(format, doc, options, &state, &preds);

	v = options ? model_get("import_model options", options, "", "name", JSON_STRING, false) : NULL;
	name = v ? pstrdup(json_string_value(v)) : key;
	v = options ? model_get("import_model options", options, "", "family", JSON_STRING, false) : NULL;
	if (v)
		family = pstrdup(json_string_value(v));
	metrics = psprintf("{\"importedFrom\": \"%s\", \"trees\": %zu}",
					   strncmp(format, "xgboost", 7) == 0 ? "xgboost_json" : "lightgbm_json",
					   json_array_size(json_object_get(state, "trees")));

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(key);
	args[2] = CStringGetTextDatum(name);
	args[3] = CStringGetTextDatum(kj_dump(state, JSON_COMPACT));
	args[4] = CStringGetTextDatum(kj_dump(preds, JSON_COMPACT));
	args[5] = family ? CStringGetTextDatum(family) : (Datum) 0;
	nulls[5] = family ? ' ' : 'n';
	args[6] = CStringGetTextDatum(metrics);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = kspi_execute_with_args(
							    "INSERT INTO kaireon.algorithm_models AS m (tenant_id, key, name, model_type, model_state, "
							    "predictors, registry_family, metrics, status, last_trained_at) "
							    "VALUES ($1, $2, $3, 'gradient_boosted', $4::jsonb, $5::jsonb, $6, $7::jsonb, 'active', now()) "
							    "ON CONFLICT (tenant_id, key) DO UPDATE SET model_type = EXCLUDED.model_type, "
							    "model_state = EXCLUDED.model_state, predictors = EXCLUDED.predictors, "
							    "registry_family = coalesce(EXCLUDED.registry_family, m.registry_family), "
							    "metrics = m.metrics || EXCLUDED.metrics, last_trained_at = EXCLUDED.last_trained_at "
							    "RETURNING id",
							    7, argtypes, args, nulls, false, 0);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "storing the imported model failed: %s", SPI_result_code_string(rc));
	id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	id = pstrdup(id);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(id));
}
