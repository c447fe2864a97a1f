/*
 * scoring.c
 *	  The scoring module: the per-backend cache of compiled models behind
 *	  scoring.h, dispatch to the model types (src/scoring/models/), online
 *	  learning (kaireon_model_learn) and the triggers of algorithm_models.  The
 *	  SQL entry points are in sql.c.
 *
 * Cache protocol.  A model is compiled from its algorithm_models row once and
 * kept in a hash table keyed by (tenant, model key), each model in a memory
 * context of its own under TopMemoryContext.  A statement trigger on
 * algorithm_models calls CacheInvalidateRelcache on the table, which reaches
 * every backend's relcache callback at commit (and this backend's at the next
 * command).  The callback only marks every entry "to check" (it may run in
 * the middle of anything, so it neither frees nor queries).  The next lookup
 * of a marked entry reads the row's stamp (xmin, ctid and updated_at, which
 * change with every new row version) and recompiles only when it changed; a
 * replaced model's memory is handed to the current transaction, so a pointer
 * a caller still holds stays valid until the transaction ends.  A model read
 * under a transaction snapshot (REPEATABLE READ, SERIALIZABLE) may predate an
 * invalidation already processed, so it stays "to check".
 *
 * Online learning (kaireon.model_learn, and respond through
 * kaireon_model_learn) rewrites model_state under the row lock of the model,
 * so concurrent learners serialise and no count is lost; these updates do not
 * bump the model's version or write a model_versions snapshot.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"
#include "util/subxact.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "util/inval.h"
#include "util/spi.h"
#include "audit/audit.h"
#include "security/session.h"
#include "scoring/models/model.h"
#include "scoring/scoring.h"
#include "scoring/model_cache.h"

PG_FUNCTION_INFO_V1(kaireon_validate_model_trigger);
PG_FUNCTION_INFO_V1(kaireon_models_changed_trigger);

#define CACHE_KEY_LEN 512

typedef struct ModelCacheEntry
{
	char		key[CACHE_KEY_LEN];
	KaireonModel *model;		/* NULL: the tenant has no such model */
	bool		needs_check;
} ModelCacheEntry;

static HTAB *model_cache = NULL;
static Oid	models_relid = InvalidOid;
uint64		kaireon_model_cache_generation = 1;
static bool learning_update = false;

static const ModelOps *const all_ops[] = {
	&kaireon_scorecard_ops, &kaireon_bayesian_ops, &kaireon_logistic_ops,
	&kaireon_trees_ops, &kaireon_thompson_ops, &kaireon_epsilon_ops, &kaireon_online_ops,
	&kaireon_adaptive_ops, NULL
};

/* The ops of a model_type name, or NULL. */
const ModelOps *
kaireon_model_ops(const char *type_name)
{
	int			i;

	for (i = 0; all_ops[i] != NULL; i++)
		if (strcmp(all_ops[i]->type_name, type_name) == 0)
			return all_ops[i];
	return NULL;
}

/* Relcache callback: any change of algorithm_models marks every cached model to check. */
static void
models_relcache_cb(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	ModelCacheEntry *e;

	if (model_cache == NULL)
		return;
	if (relid != InvalidOid && relid != models_relid)
		return;
	if (relid != InvalidOid)
		models_relid = InvalidOid;	/* look it up again: the extension may be recreated */
	hash_seq_init(&status, model_cache);
	while ((e = hash_seq_search(&status)) != NULL)
	{
		e->needs_check = true;
		if (e->model)
			e->model->shadows_loaded = false;
	}
	kaireon_model_cache_generation++;
}

/* Module init: the relcache callback (called once from _PG_init). */
void
kaireon_scoring_init(void)
{
	kaireon_register_relcache_callback(models_relcache_cb, (Datum) 0);
}

/* The hash table, created on first use. */
static HTAB *
get_cache(void)
{
	if (model_cache == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = CACHE_KEY_LEN;
		ctl.entrysize = sizeof(ModelCacheEntry);
		model_cache = hash_create("kaireon model cache", 64, &ctl, HASH_ELEM | HASH_STRINGS);
	}
	if (models_relid == InvalidOid)
	{
		Oid			nsp = get_namespace_oid("kaireon", true);

		if (OidIsValid(nsp))
			models_relid = get_relname_relid("algorithm_models", nsp);
	}
	return model_cache;
}

/* Free a model's memory at the end of the current transaction. */
static void
retire_model(KaireonModel *m)
{
	if (m != NULL)
		MemoryContextSetParent(m->cxt, TopTransactionContext);
}

/* Parse JSON text of a row column (22023 naming the column on failure). */
static json_t *
parse_column(const char *text, const char *what)
{
	return kj_parse(text, strlen(text), what);
}

/*
 * Compile a model from its documents into a new context under
 * CurrentMemoryContext; the caller reparents it when keeping the model.
 */
static KaireonModel *
compile_model(const char *tenant_id, const char *key, const char *id, const char *type,
			  const char *registry_status, const char *family, const char *stamp,
			  const char *state_text, const char *predictors_text, const char *config_text)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon model",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon model load",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	KaireonModel *m;
	ModelSource src;
	const ModelOps *ops = kaireon_model_ops(type);

	if (ops == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown model_type \"%s\"", type),
				 errhint("Use scorecard, bayesian, logistic_regression, gradient_boosted, thompson_bandit, epsilon_greedy, online_learner or adaptive.")));
	src.where = "algorithm_models.model_state";
	src.state = parse_column(state_text, "algorithm_models.model_state");
	src.predictors = parse_column(predictors_text, "algorithm_models.predictors");
	src.config = parse_column(config_text, "algorithm_models.config");
	src.tenant_id = tenant_id;
	src.model_id = id;

	MemoryContextSwitchTo(cxt);
	m = palloc0(sizeof(KaireonModel));
	m->cxt = cxt;
	m->tenant_id = pstrdup(tenant_id);
	m->key = pstrdup(key);
	m->id = pstrdup(id);
	m->registry_status = pstrdup(registry_status);
	m->family = family ? pstrdup(family) : NULL;
	m->stamp = pstrdup(stamp);
	m->ops = ops;
	/* an empty state is an untrained model, except for bandits (their prior is enough) */
	m->untrained = json_object_size(src.state) == 0 && !ops->learns_online;
	if (ops == &kaireon_bayesian_ops && json_object_size(src.state) == 0)
		m->untrained = true;
	if (!m->untrained)
		ops->compile(&src, &m->impl);
	for (int i = 0; i < m->impl.nfeatures; i++)
		m->reads_offer |= strncmp(m->impl.feature_names[i], "offer.", 6) == 0;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return m;
}

/* Check the shape of the predictors column: an array of {"name", "type", ...} objects. */
static void
check_predictors(json_t *preds)
{
	size_t		i;
	json_t	   *p;
	static const char *const types[] = {"numeric", "categorical", "boolean", NULL};

	json_array_foreach(preds, i, p)
	{
		char		path[64];
		json_t	   *t;
		json_t	   *e;

		snprintf(path, sizeof(path), "[%zu]", i);
		if (!json_is_object(p))
			model_error("algorithm_models.predictors", path, "must be an object, not %s", kj_type_name(p));
		t = model_get("algorithm_models.predictors", p, path, "name", JSON_STRING, true);
		if (json_string_length(t) == 0)
			model_error("algorithm_models.predictors", path, "field \"name\" must not be empty");
		t = model_get("algorithm_models.predictors", p, path, "type", JSON_STRING, false);
		if (t)
		{
			const char *const *k;

			for (k = types; *k; k++)
				if (strcmp(*k, json_string_value(t)) == 0)
					break;
			if (*k == NULL)
				model_error("algorithm_models.predictors", path,
							"field \"type\" must be numeric, categorical or boolean, not \"%s\"",
							json_string_value(t));
		}
		e = model_get("algorithm_models.predictors", p, path, "binEdges", JSON_ARRAY, false);
		if (e)
		{
			size_t		j;
			json_t	   *x;
			double		prev = -INFINITY;

			json_array_foreach(e, j, x)
			{
				double		d = model_number("algorithm_models.predictors", x, path);

				if (!(d > prev))
					model_error("algorithm_models.predictors", path, "field \"binEdges\" must be strictly increasing");
				prev = d;
			}
		}
	}
}

/* A copy of an SPI result string in the caller's context (outlives SPI_finish). */
static char *
spi_copy(char *s)
{
	char	   *c;

	if (s == NULL)
		return NULL;
	c = SPI_palloc(strlen(s) + 1);
	strcpy(c, s);
	return c;
}

/* Read one model row through SPI: false when the tenant has no model with this key. */
static bool
fetch_model_row(const char *tenant_id, const char *key, bool stamp_only,
				char **id, char **type, char **status, char **family, char **stamp,
				char **state, char **preds, char **config)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	int			rc;
	bool		found = false;

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(key);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = kspi_execute_with_args(stamp_only ?
							    "SELECT xmin::text || ':' || ctid::text || ':' || updated_at::text "
							    "FROM kaireon.algorithm_models WHERE tenant_id = $1 AND key = $2" :
							    "SELECT xmin::text || ':' || ctid::text || ':' || updated_at::text, id, model_type, "
							    "registry_status, registry_family, model_state::text, predictors::text, config::text "
							    "FROM kaireon.algorithm_models WHERE tenant_id = $1 AND key = $2",
							    2, argtypes, args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		found = true;
		*stamp = spi_copy(SPI_getvalue(tup, desc, 1));
		if (!stamp_only)
		{
			*id = spi_copy(SPI_getvalue(tup, desc, 2));
			*type = spi_copy(SPI_getvalue(tup, desc, 3));
			*status = spi_copy(SPI_getvalue(tup, desc, 4));
			*family = spi_copy(SPI_getvalue(tup, desc, 5));
			*state = spi_copy(SPI_getvalue(tup, desc, 6));
			*preds = spi_copy(SPI_getvalue(tup, desc, 7));
			*config = spi_copy(SPI_getvalue(tup, desc, 8));
		}
	}
	SPI_finish();
	return found;
}

/* Build the cache key, refusing overlong names. */
static void
cache_key(const char *tenant_id, const char *model_key, char *buf)
{
	if (strlen(model_key) > MAX_MODEL_KEY_LEN || strlen(tenant_id) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model key \"%.40s...\" is longer than %d characters", model_key, MAX_MODEL_KEY_LEN),
				 errhint("Model keys are short identifiers.")));
	memset(buf, 0, CACHE_KEY_LEN);
	snprintf(buf, CACHE_KEY_LEN, "%s\x1f%s", tenant_id, model_key);
}

/*
 * The tenant's model with this key, compiled and cached, or NULL when there is
 * none or it is untrained (its model_state is still {}).
 */
KaireonModel *
kaireon_model_get(const char *tenant_id, const char *model_key)
{
	KaireonModel *m = kaireon_model_lookup(tenant_id, model_key);

	return (m == NULL || m->untrained) ? NULL : m;
}

/* kaireon_model_get, but also returning untrained models. */
KaireonModel *
kaireon_model_lookup(const char *tenant_id, const char *model_key)
{
	char		key[CACHE_KEY_LEN];
	ModelCacheEntry *e;
	bool		found;
	char	   *id = NULL,
			   *type = NULL,
			   *status = NULL,
			   *family = NULL,
			   *stamp = NULL,
			   *state = NULL,
			   *preds = NULL,
			   *config = NULL;
	KaireonModel *m;

	cache_key(tenant_id, model_key, key);
	e = hash_search(get_cache(), key, HASH_FIND, &found);
	if (found && !e->needs_check)
		return e->model;
	if (found && e->model != NULL)
	{
		/* something changed somewhere: is this row still the same version? */
		if (fetch_model_row(tenant_id, model_key, true, NULL, NULL, NULL, NULL, &stamp,
							NULL, NULL, NULL) &&
			strcmp(stamp, e->model->stamp) == 0)
		{
			e = hash_search(model_cache, key, HASH_FIND, &found);
			if (found)
			{
				e->needs_check = IsolationUsesXactSnapshot();
				return e->model;
			}
		}
	}
	if (!fetch_model_row(tenant_id, model_key, false, &id, &type, &status, &family, &stamp,
						 &state, &preds, &config))
		m = NULL;
	else
	{
		m = compile_model(tenant_id, model_key, id, type, status, family, stamp, state, preds, config);
		MemoryContextSetParent(m->cxt, TopMemoryContext);
	}
	/* the SPI calls may have processed invalidations: search again before writing */
	e = hash_search(model_cache, key, HASH_ENTER, &found);
	if (found)
		retire_model(e->model);
	e->model = m;

	/*
	 * Under REPEATABLE READ or SERIALIZABLE the row was read with the
	 * transaction's old snapshot, possibly before a change whose invalidation
	 * has already been processed: check it again at every use.
	 */
	e->needs_check = IsolationUsesXactSnapshot();
	return m;
}

/* A model lookup as a subtransaction's step (kaireon_model_lookup_for_decision). */
typedef struct ModelLookup
{
	const char *tenant_id;
	const char *model_key;
	KaireonModel *model;
} ModelLookup;

/* The step: look the model up (compiling it when it is not cached). */
static void
model_lookup_step(void *arg)
{
	ModelLookup *l = (ModelLookup *) arg;

	l->model = kaireon_model_lookup(l->tenant_id, l->model_key);
}

/*
 * kaireon_model_lookup for a decision, which falls back rather than fails: a
 * model whose row cannot be compiled (a data exception, class 22: a stored
 * state this version refuses) gives NULL with the error's message in
 * *problem; any other error is raised.  A cached model is returned at once;
 * only a lookup that reads and compiles the row runs in a subtransaction.
 */
KaireonModel *
kaireon_model_lookup_for_decision(const char *tenant_id, const char *model_key, char **problem)
{
	char		key[CACHE_KEY_LEN];
	ModelCacheEntry *e;
	bool		found;
	ModelLookup lookup;
	ErrorData  *err;

	*problem = NULL;
	cache_key(tenant_id, model_key, key);
	e = hash_search(get_cache(), key, HASH_FIND, &found);
	if (found && !e->needs_check)
		return e->model;
	lookup.tenant_id = tenant_id;
	lookup.model_key = model_key;
	lookup.model = NULL;
	err = ksubxact_run(model_lookup_step, &lookup);
	if (err == NULL)
		return lookup.model;
	if (ERRCODE_TO_CATEGORY(err->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
		ReThrowError(err);
	*problem = pstrdup(err->message);
	FreeErrorData(err);
	return NULL;
}

/* Gather a subject's values of the model's features. */
static void
gather_values(const KaireonModel *model, const KaireonFeatures *features, KaireonValue *values)
{
	int			i;

	for (i = 0; i < model->impl.nfeatures; i++)
	{
		values[i].kind = KV_NULL;
		values[i].num = 0;
		values[i].str = NULL;
		if (features == NULL || !features->get(features, model->impl.feature_names[i], &values[i]))
			values[i].kind = KV_NULL;
	}
}

/*
 * A model's score, refused with 22003 unless it is a finite number: no caller ever sees NaN
 * or Infinity (docs/models.md, "Finite numbers").  Parameters are finite and bounded when a
 * model is compiled, but a product of a parameter and a huge feature value can still
 * overflow, and Infinity - Infinity is NaN.
 */
static double
finite_score(const KaireonModel *model, double score)
{
	if (!isfinite(score))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("model \"%s\" of tenant \"%s\" computed a score that is not a finite number (%s)",
						model->key, model->tenant_id,
						isnan(score) ? "NaN" : score > 0 ? "Infinity" : "-Infinity"),
				 errdetail("A parameter times a feature value, or their sum, overflowed double precision."),
				 errhint("Check the magnitudes of the feature values passed and of the model's parameters; see docs/models.md.")));
	return score;
}

/* Score a subject (see scoring.h). */
double
kaireon_model_score(KaireonModel *model, const KaireonFeatures *features, const char *arm)
{
	KaireonValue buf[64];
	KaireonValue *values = model->impl.nfeatures <= 64 ? buf
		: palloc(sizeof(KaireonValue) * model->impl.nfeatures);
	double		s;

	if (model->untrained)
		elog(ERROR, "kaireon_model_score called on an untrained model");
	gather_values(model, features, values);
	s = finite_score(model, model->ops->score(&model->impl, values, arm));
	if (values != buf)
		pfree(values);
	return s;
}

/* Score from values already in the model's feature order. */
double
kaireon_model_score_values(KaireonModel *model, const KaireonValue *values, const char *arm)
{
	if (model->untrained)
		elog(ERROR, "kaireon_model_score_values called on an untrained model");
	return finite_score(model, model->ops->score(&model->impl, values, arm));
}

/* Score many subjects at once (see scoring.h). */
void
kaireon_model_score_batch(KaireonModel *model, const KaireonValue *values, int nrows,
						  const char *const *arms, const bool *shared, const int *row_ids, double *out)
{
	int			nf = model->impl.nfeatures;

	if (model->untrained)
		elog(ERROR, "kaireon_model_score_batch called on an untrained model");
	if (model->ops->score_batch != NULL && nrows > 1)
		model->ops->score_batch(&model->impl, values, nrows, arms, shared, row_ids, out);
	else
		for (int r = 0; r < nrows; r++)
			out[r] = model->ops->score(&model->impl, values + (size_t) r * nf, arms ? arms[r] : NULL);
	for (int r = 0; r < nrows; r++)
		finite_score(model, out[r]);
}

/* A subject's values of the model's features, in its order. */
KaireonValue *
kaireon_model_gather(KaireonModel *model, const KaireonFeatures *features)
{
	KaireonValue *values = palloc(sizeof(KaireonValue) * Max(model->impl.nfeatures, 1));

	gather_values(model, features, values);
	return values;
}

/* The explanation of a score as jansson JSON (in the current context). */
static json_t *
model_explain_json(KaireonModel *model, const KaireonFeatures *features, const char *arm)
{
	KaireonValue *values = palloc(sizeof(KaireonValue) * Max(model->impl.nfeatures, 1));
	json_t	   *out;

	gather_values(model, features, values);
	out = model->ops->explain(&model->impl, values, arm);
	/* jansson stores no NaN or Infinity: a non-finite score leaves "score" unset */
	finite_score(model, json_is_number(json_object_get(out, "score"))
				 ? json_number_value(json_object_get(out, "score")) : NAN);
	json_object_set_new(out, "model", json_string(model->key));
	json_object_set_new(out, "modelType", json_string(model->ops->type_name));
	json_object_set_new(out, "registryStatus", json_string(model->registry_status));
	return out;
}

/* Convert JSON text to a Jsonb datum. */
static Jsonb *
text_to_jsonb(const char *text)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* The explanation of a score, as jsonb (see scoring.h). */
Jsonb *
kaireon_model_explain(KaireonModel *model, const KaireonFeatures *features, const char *arm)
{
	return text_to_jsonb(kj_dump(model_explain_json(model, features, arm), JSON_COMPACT));
}

/* The registry status of a model (see scoring.h). */
const char *
kaireon_model_registry_status(const KaireonModel *model)
{
	return model->registry_status;
}

/* The algorithm_models id of a model. */
const char *
kaireon_model_id(const KaireonModel *model)
{
	return model->id;
}

/* The key of a model. */
const char *
kaireon_model_key(const KaireonModel *model)
{
	return model->key;
}

/* May this model rank candidates? Shadow and archived models may not (see scoring.h). */
bool
kaireon_model_ranks(const KaireonModel *model)
{
	return strcmp(model->registry_status, "shadow") != 0 &&
		strcmp(model->registry_status, "archived") != 0;
}

/*
 * Does the model's score depend on the candidate offer: per-arm state
 * (bandits) or an offer.<field> feature?  If not, one score serves every
 * candidate of a request.
 */
bool
kaireon_model_per_offer(const KaireonModel *model)
{
	return model->ops->per_arm || kaireon_model_reads_offer(model);
}

/* Does the model read an offer.<field> feature? (Noted when it is compiled: asked per candidate.) */
bool
kaireon_model_reads_offer(const KaireonModel *model)
{
	return model->reads_offer;
}

/* The model's feature names, in the order of kaireon.score's float8[] form. */
int
kaireon_model_feature_names(const KaireonModel *model, const char *const **names)
{
	*names = (const char *const *) model->impl.feature_names;
	return model->impl.nfeatures;
}

/*
 * The shadow models of the model's registry family (other than itself), for
 * callers that score them alongside and log the result (see scoring.h).
 */
int
kaireon_model_shadows(KaireonModel *model, KaireonModel ***shadows)
{
	int			i,
				n = 0;
	KaireonModel **out;

	if (model->family == NULL)
	{
		*shadows = NULL;
		return 0;
	}
	if (!model->shadows_loaded)
	{
		Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		args[3];
		MemoryContext old;
		int			rc;
		uint64		k;

		args[0] = CStringGetTextDatum(model->tenant_id);
		args[1] = CStringGetTextDatum(model->family);
		args[2] = CStringGetTextDatum(model->key);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		rc = kspi_execute_with_args("SELECT key FROM kaireon.algorithm_models WHERE tenant_id = $1 "
								    "AND registry_family = $2 AND registry_status = 'shadow' AND key <> $3 ORDER BY key",
								    3, argtypes, args, NULL, true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "reading shadow models failed");
		old = MemoryContextSwitchTo(model->cxt);
		model->shadow_keys = palloc(sizeof(char *) * Max(SPI_processed, 1));
		for (k = 0; k < SPI_processed; k++)
			model->shadow_keys[k] = pstrdup(SPI_getvalue(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, 1));
		model->nshadows = (int) SPI_processed;
		MemoryContextSwitchTo(old);
		SPI_finish();
		model->shadows_loaded = true;
	}
	out = palloc(sizeof(KaireonModel *) * Max(model->nshadows, 1));
	for (i = 0; i < model->nshadows; i++)
	{
		KaireonModel *s = kaireon_model_get(model->tenant_id, model->shadow_keys[i]);

		if (s != NULL)
			out[n++] = s;
	}
	*shadows = out;
	return n;
}

/* ---- online learning ---- */

/*
 * Learn one outcome (see scoring.h): under the model's row lock, read its
 * state, let the type update it, write it back.  False when the model does
 * not learn online, is unknown, or the outcome is neutral.
 */
bool
kaireon_model_learn(const char *tenant_id, const char *model_key, const char *arm,
					const KaireonFeatures *features, KaireonOutcomeClass outcome)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	int			rc;
	char	   *type,
			   *state_text,
			   *preds_text,
			   *id;
	json_t	   *state,
			   *preds;
	const ModelOps *ops;
	ModelSource src;
	ModelImpl	impl;
	KaireonValue *values;
	int			i;

	if (outcome == KAIREON_OUTCOME_NEUTRAL)
		return false;
	/* adaptive: learned into model_adaptations rows, without the model's row lock */
	{
		KaireonModel *m = kaireon_model_lookup(tenant_id, model_key);

		if (m != NULL && m->ops == &kaireon_adaptive_ops)
		{
			values = palloc0(sizeof(KaireonValue) * Max(m->impl.nfeatures, 1));
			gather_values(m, features, values);
			kaireon_adaptive_learn(&m->impl, values, arm, outcome == KAIREON_OUTCOME_POSITIVE);
			return true;
		}
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(model_key);
	rc = kspi_execute_with_args("SELECT id, model_type, model_state::text, predictors::text "
							    "FROM kaireon.algorithm_models WHERE tenant_id = $1 AND key = $2 FOR UPDATE",
							    2, argtypes, args, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}
	id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	state_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	preds_text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
	ops = kaireon_model_ops(type);
	if (ops == NULL || !ops->learns_online)
	{
		SPI_finish();
		return false;
	}
	state = parse_column(state_text, "algorithm_models.model_state");
	preds = parse_column(preds_text, "algorithm_models.predictors");
	if (ops == &kaireon_bayesian_ops && json_object_size(state) == 0)
		kaireon_bayesian_init_state(state, preds);
	src.where = "algorithm_models.model_state";
	src.state = state;
	src.predictors = preds;
	src.config = NULL;
	src.tenant_id = tenant_id;
	src.model_id = id;
	memset(&impl, 0, sizeof(impl));
	ops->compile(&src, &impl);
	values = palloc0(sizeof(KaireonValue) * Max(impl.nfeatures, 1));
	for (i = 0; i < impl.nfeatures; i++)
		if (features == NULL || !features->get(features, impl.feature_names[i], &values[i]))
			values[i].kind = KV_NULL;
	ops->learn(state, preds, values, &impl, arm, outcome == KAIREON_OUTCOME_POSITIVE);

	argtypes[0] = TEXTOID;
	args[0] = CStringGetTextDatum(kj_dump(state, JSON_COMPACT));
	args[1] = CStringGetTextDatum(tenant_id);
	args[2] = CStringGetTextDatum(id);
	learning_update = true;
	PG_TRY();
	{
		rc = kspi_execute_with_args("UPDATE kaireon.algorithm_models SET model_state = $1::jsonb "
								    "WHERE tenant_id = $2 AND id = $3",
								    3, argtypes, args, NULL, false, 0);
	}
	PG_FINALLY();
	{
		learning_update = false;
	}
	PG_END_TRY();
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "updating algorithm_models failed: %s", SPI_result_code_string(rc));
	SPI_finish();
	return true;
}

/* ---- triggers on algorithm_models ---- */

/* Does column name differ between two tuples? */
static bool
column_changed(HeapTuple a, HeapTuple b, TupleDesc desc, const char *name)
{
	int			att = SPI_fnumber(desc, name);
	bool		na,
				nb;
	Datum		da,
				db;
	Form_pg_attribute attr;

	if (att <= 0)
		elog(ERROR, "algorithm_models has no column \"%s\"", name);
	attr = TupleDescAttr(desc, att - 1);
	da = heap_getattr(a, att, desc, &na);
	db = heap_getattr(b, att, desc, &nb);
	if (na || nb)
		return na != nb;
	return !datumIsEqual(da, db, attr->attbyval, attr->attlen);
}

/*
 * BEFORE INSERT OR UPDATE row trigger on algorithm_models: compile the new
 * row's model (22023 naming the field when it is malformed, so nothing is
 * stored), and bump version when its definition or registry place changed
 * (except for online learning, which only moves counts).
 */
Datum
kaireon_validate_model_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	newtup;
	TupleDesc	desc;
	char	   *type,
			   *state,
			   *preds,
			   *config;
	MemoryContext cxt,
				old;
	bool		isnull;
	static const char *const watched[] = {"model_type", "model_state", "predictors", "config",
	"registry_status", "registry_family", NULL};

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "validate_model_trigger must be a BEFORE row trigger");
	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);

	type = SPI_getvalue(newtup, desc, SPI_fnumber(desc, "model_type"));
	state = SPI_getvalue(newtup, desc, SPI_fnumber(desc, "model_state"));
	preds = SPI_getvalue(newtup, desc, SPI_fnumber(desc, "predictors"));
	config = SPI_getvalue(newtup, desc, SPI_fnumber(desc, "config"));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon model check", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	/* an unknown model_type is left to the table's CHECK constraint */
	if (type != NULL && state != NULL && preds != NULL && config != NULL && kaireon_model_ops(type) != NULL)
	{
		json_t	   *pj = parse_column(preds, "algorithm_models.predictors");

		check_predictors(pj);
		compile_model("", "", "", type, "", NULL, "", state, preds, config);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);

	/*
	 * version is kaireon's, not the writer's: a new model is version 1 and an
	 * update keeps the version or bumps it by one (so an approval of "version
	 * n" cannot be defeated by writing the number back).  A restore keeps the
	 * dumped versions.
	 */
	if (!kaireon_audit_restore_session())
	{
		int			att = SPI_fnumber(desc, "version");
		int32		v = 1;
		Datum		nv;
		bool		nn = false;

		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		{
			const char *const *c;
			bool		changed = false;

			for (c = watched; *c != NULL && !learning_update; c++)
				if (column_changed(td->tg_trigtuple, newtup, desc, *c))
				{
					changed = true;
					break;
				}
			v = DatumGetInt32(heap_getattr(td->tg_trigtuple, att, desc, &isnull)) + (changed ? 1 : 0);
		}
		nv = Int32GetDatum(v);
		newtup = heap_modify_tuple_by_cols(newtup, desc, 1, &att, &nv, &nn);
	}
	return PointerGetDatum(newtup);
}

/* AFTER statement trigger on algorithm_models: invalidate every backend's model cache. */
Datum
kaireon_models_changed_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "models_changed_trigger must be a trigger");
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}
