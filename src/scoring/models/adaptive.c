/*
 * scoring/models/adaptive.c
 *	  adaptive: one naive-Bayes model per offer learning online from every
 *	  outcome, as Pega's Adaptive Decision Manager does (docs/models.md,
 *	  "adaptive").
 *
 * Protocol.  The algorithm_models row holds only the definition: predictors
 * (name and type) and config (settings, below); its model_state stays {}.
 * What a model learned lives in kaireon.model_adaptations rows with model_id =
 * the model, scope 'offer', scope_id = the offer id (perChannel: the JSON
 * array [offer id, channel id or null]), one row per shard
 * (the shard of the learning backend, as respond's adaptive counts), so
 * concurrent learners update different rows.  Learning an outcome is ONE
 * row upsert: positives/negatives + 1 and its sketch (a binary document,
 * format at the top of adaptive_sketch.c) rewritten by
 * kaireon_internal._adaptive_learn from the observation, without parsing
 * anything but the sketch's bytes.
 *
 * A numeric predictor keeps a sketch of at most sketchBins bins (centroid c,
 * positives p, negatives n, sorted by c): a value equal to a centroid counts
 * there; another value becomes a bin of its own and, when that makes one bin
 * too many, the two adjacent bins with the fewest responses together are
 * merged (centroid: their count-weighted mean), so bins tend to equal
 * evidence.  A symbolic predictor counts each value (at most maxSymbols
 * values; later new values are not counted, so they count as missing).  A
 * section named "" is the same sketch of the model's raw log-odds at learning
 * time (only once the offer's model is mature): the data of the calibration.
 *
 * Reading.  Each backend reads every shard row of the model (one query) and
 * keeps it for the transaction (a sketch section longer than learning writes,
 * ADM_MAX_SKETCH_BINS / ADM_MAX_SYMBOLS plus slack, is refused: 22023); it reads again at the first use in a later
 * transaction once refreshMs have passed since (0: every transaction), so an
 * outcome reaches every backend's scores within refreshMs (its own backend's
 * too: learning does not make the backend read again).  An offer is compiled
 * at its first use after a read.  Compiling an
 * offer: the shards' sketches are pooled (sorted, equal centroids summed,
 * then grouped into at most 2 * sketchBins runs of about equal responses)
 * and adjacent bins are merged while the smallest chi-square of their 2x2
 * table (positives / negatives) is below mergeChiSquare (ChiMerge); symbolic
 * values are sorted by positive rate and merged the same way into value
 * groups.  Each predictor also has a missing bin (responses without a value).
 * A predictor's AUC is that of its bins ranked by positive rate; it is active
 * when its AUC is above aucThreshold.  The raw log-odds add the active
 * predictors' naive-Bayes contributions (Laplace alpha) to the prior; the
 * score is the pool-adjacent-violators fit of the outcome on the raw
 * log-odds, interpolated; an offer with fewer than minPositives positives
 * answers its base rate (P + 1) / (P + N + 2).
 *
 * Files.  This file holds the definition (config and predictors), this
 * backend's copy of the learned state (read, refreshed, an offer looked up),
 * scoring and explanation, learning and the report, and the ops table;
 * adaptive_sketch.c the sketch format and kaireon_internal._adaptive_learn;
 * adaptive_offer.c the compiling of an offer.  adaptive_internal.h holds the
 * types and functions they share.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/backendid.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "scoring/models/model.h"
#include "scoring/models/adaptive_internal.h"

#define WHERE_CONFIG "algorithm_models.config"
#define WHERE_PREDICTORS "algorithm_models.predictors"

/* An integer setting of config within [lo, hi]. */
static int
config_int(json_t *config, const char *key, int dflt, int lo, int hi)
{
	double		v = model_get_number(WHERE_CONFIG, config, "", key, false, dflt);

	if (v != floor(v) || v < lo || v > hi)
		model_error(WHERE_CONFIG, "", "field \"%s\" must be an integer from %d to %d, not %g", key, lo, hi, v);
	return (int) v;
}

/* A number setting of config within [lo, hi]. */
static double
config_number(json_t *config, const char *key, double dflt, double lo, double hi)
{
	double		v = model_get_number(WHERE_CONFIG, config, "", key, false, dflt);

	if (v < lo || v > hi)
		model_error(WHERE_CONFIG, "", "field \"%s\" must be from %g to %g, not %g", key, lo, hi, v);
	return v;
}

/* Compile the definition: config settings and the predictors (model_state must be {}). */
static void
adaptive_compile(const ModelSource *src, ModelImpl *impl)
{
	AdmModel   *adm = palloc0(sizeof(AdmModel));
	json_t	   *config = src->config ? src->config : json_object();
	static const char *const keys[] = {"sketchBins", "maxSymbols", "minPositives", "aucThreshold",
	"mergeChiSquare", "alpha", "refreshMs", "perChannel", NULL};
	size_t		i;
	json_t	   *p;

	if (json_object_size(src->state) != 0)
		model_error(src->where, "", "must be {} for an adaptive model (what it learns is in kaireon.model_adaptations)");
	model_check_keys(WHERE_CONFIG, config, "", keys);
	adm->cfg.sketch_bins = config_int(config, "sketchBins", 20, 2, ADM_MAX_SKETCH_BINS);
	adm->cfg.max_symbols = config_int(config, "maxSymbols", 100, 1, ADM_MAX_SYMBOLS);
	adm->cfg.min_positives = config_number(config, "minPositives", 200, 0, 1e9);
	adm->cfg.auc_threshold = config_number(config, "aucThreshold", 0.52, 0.5, 1);
	adm->cfg.merge_chi2 = config_number(config, "mergeChiSquare", 3.84, 0, 1e6);
	adm->cfg.alpha = config_number(config, "alpha", 1, KAIREON_MODEL_MIN_ALPHA, KAIREON_MODEL_MAX_ALPHA);
	adm->cfg.refresh_ms = config_int(config, "refreshMs", 1000, 0, 86400000);
	adm->cfg.per_channel = json_is_true(model_get(WHERE_CONFIG, config, "", "perChannel", JSON_TRUE, false));

	adm->preds = palloc0(sizeof(AdmPredictor) * Max(json_array_size(src->predictors), 1));
	json_array_foreach(src->predictors, i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		const char *type = json_string_value(json_object_get(p, "type"));
		char		path[64];

		snprintf(path, sizeof(path), "[%zu]", i);
		if (name == NULL)
			model_error(WHERE_PREDICTORS, path, "lacks the required field \"name\"");
		if (type == NULL)
			model_error(WHERE_PREDICTORS, path,
						"needs a \"type\" (numeric, categorical or boolean) for an adaptive model");
		for (int k = 0; k < adm->npred; k++)
			if (strcmp(adm->preds[k].name, name) == 0)
				model_error(WHERE_PREDICTORS, path, "names predictor \"%s\" twice", name);
		adm->preds[adm->npred].name = pstrdup(name);
		adm->preds[adm->npred].symbolic = strcmp(type, "numeric") != 0;
		adm->preds[adm->npred].feature = model_feature_index(impl, name);
		adm->npred++;
	}
	adm->channel_feature = adm->cfg.per_channel ? model_feature_index(impl, "decision.channel") : -1;
	adm->tenant_id = pstrdup(src->tenant_id ? src->tenant_id : "");
	adm->model_id = pstrdup(src->model_id ? src->model_id : "");
	adm->state_cxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon adaptive state",
										   ALLOCSET_DEFAULT_SIZES);
	impl->data = adm;
}

/* ---- this backend's copy of the learned state ---- */

/* Order offers by scope id. */
static int
cmp_offer(const void *a, const void *b)
{
	return strcmp(((const AdmOffer *) a)->scope_id, ((const AdmOffer *) b)->scope_id);
}

/*
 * Read every offer of the model (all its model_adaptations rows, one query)
 * into a fresh state context.
 */
static void
adm_load(AdmModel *adm)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	uint64		nrows;
	int			cap;

	MemoryContextReset(adm->state_cxt);
	adm->loaded = false;
	adm->noffers = 0;
	adm->offers = NULL;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
		plan = kspi_prepare_keep("SELECT scope_id, positives, negatives, sketch "
								 "  FROM kaireon.model_adaptations "
								 " WHERE tenant_id = $1 AND model_id = $2 AND scope = 'offer' ORDER BY scope_id, shard",
								 2, types);
	args[0] = CStringGetTextDatum(adm->tenant_id);
	args[1] = CStringGetTextDatum(adm->model_id);
	if (kspi_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the adaptive model's state failed");
	nrows = SPI_processed;
	/* everything read lives in the state context until the next read */
	old = MemoryContextSwitchTo(adm->state_cxt);
	cap = 0;
	for (uint64 r = 0; r < nrows;)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *scope_id = SPI_getvalue(tup, desc, 1);
		uint64		end = r;
		AdmOffer   *o;
		Section   **rows;
		int		   *nsec;

		while (end < nrows && strcmp(SPI_getvalue(SPI_tuptable->vals[end], desc, 1), scope_id) == 0)
			end++;
		if (adm->noffers == cap)
		{
			cap = Max(16, cap * 2);
			adm->offers = adm->offers ? repalloc(adm->offers, sizeof(AdmOffer) * cap) : palloc(sizeof(AdmOffer) * cap);
		}
		o = &adm->offers[adm->noffers++];
		memset(o, 0, sizeof(AdmOffer));
		o->scope_id = scope_id;
		rows = palloc(sizeof(Section *) * (end - r));
		nsec = palloc0(sizeof(int) * (end - r));
		for (uint64 i = r; i < end; i++)
		{
			bool		isnull;
			Datum		d;

			tup = SPI_tuptable->vals[i];
			o->positives += DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			o->negatives += DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
			d = SPI_getbinval(tup, desc, 4, &isnull);
			if (isnull)
				rows[i - r] = NULL;
			else
			{
				bytea	   *b = DatumGetByteaPP(d);

				nsec[i - r] = kaireon_adaptive_sketch_parse(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), &rows[i - r], 0);
			}
		}
		o->rows = rows;
		o->nsec = nsec;
		o->nrows = (int) (end - r);
		r = end;
	}
	/* the query's order is the collation's: adm_offer's bsearch needs strcmp's */
	if (adm->noffers > 1)
		qsort(adm->offers, adm->noffers, sizeof(AdmOffer), cmp_offer);
	MemoryContextSwitchTo(old);
	SPI_finish();
	MemoryContextSwitchTo(caller);
	adm->loaded = true;
	adm->loaded_lxid = MyProc->lxid;
	adm->loaded_at = GetCurrentTransactionStartTimestamp();
}

/*
 * Make the backend's copy current: kept within a transaction; read again at
 * the first use in a later transaction when refreshMs have passed since it
 * was read (by the transactions' start times; 0: every transaction).
 */
static void
adm_refresh(AdmModel *adm)
{
	if (adm->loaded && adm->loaded_lxid == MyProc->lxid)
		return;
	if (adm->loaded && adm->cfg.refresh_ms > 0 &&
		!TimestampDifferenceExceeds(adm->loaded_at, GetCurrentTransactionStartTimestamp(), adm->cfg.refresh_ms))
	{
		adm->loaded_lxid = MyProc->lxid;
		return;
	}
	adm_load(adm);
}

/*
 * The scope id of the arm's (offer's) model: the offer id; with perChannel the
 * JSON array [offer id, channel id or null] of the subject's decision.channel.
 */
static const char *
scope_of(const AdmModel *adm, const char *arm, const KaireonValue *values)
{
	const KaireonValue *ch;

	if (!adm->cfg.per_channel || arm == NULL)
		return arm;
	ch = &values[adm->channel_feature];
	return kj_dump(json_pack("[s,s?]", arm, ch->kind == KV_STRING ? ch->str : NULL), JSON_COMPACT);
}

/* The compiled offer with this scope id (compiled on first use), or NULL when it has learned nothing. */
static AdmOffer *
adm_offer(AdmModel *adm, const char *scope_id)
{
	AdmOffer	key;
	AdmOffer   *o;

	if (scope_id == NULL)
		return NULL;
	adm_refresh(adm);
	if (adm->noffers == 0)
		return NULL;
	key.scope_id = (char *) scope_id;
	o = bsearch(&key, adm->offers, adm->noffers, sizeof(AdmOffer), cmp_offer);
	if (o != NULL && !o->compiled)
	{
		MemoryContext old = MemoryContextSwitchTo(adm->state_cxt);

		kaireon_adaptive_compile_offer(adm, o, o->rows, o->nsec, o->nrows);
		o->compiled = true;
		MemoryContextSwitchTo(old);
	}
	return o;
}

/* ---- scoring ---- */

/*
 * The bin of a value for a compiled predictor: the missing bin for a missing
 * value, -1 for a symbol the offer never saw (it contributes nothing).
 */
static int
value_bin(const AdmPredictor *pr, const AdmPredState *ps, const KaireonValue *v)
{
	if (pr->symbolic)
	{
		char		buf[64];
		const char *s = kv_level_text(v, buf, sizeof(buf));

		if (s == NULL)
			return ps->nbins - 1;
		for (int i = 0; i < ps->nbins - 1; i++)
			if (bsearch(&s, ps->bins[i].values, ps->bins[i].nvalues, sizeof(char *), kaireon_adaptive_cmp_names) != NULL)
				return i;
		return -1;
	}
	else
	{
		double		x = kv_number(v);
		int			lo = 0,
					hi = ps->nbins - 2;

		if (isnan(x))
			return ps->nbins - 1;
		/* the first bin whose upper bound is above x (the last one's is +Infinity) */
		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (x < ps->bins[mid].upper)
				hi = mid;
			else
				lo = mid + 1;
		}
		return lo;
	}
}

/* The raw log-odds of an offer's mature model: the prior plus the active predictors' contributions. */
static double
raw_logodds(const AdmModel *adm, const AdmOffer *o, const KaireonValue *values)
{
	double		a = adm->cfg.alpha;
	double		z = log((o->positives + a) / (o->negatives + a));

	for (int k = 0; k < adm->npred; k++)
	{
		const AdmPredState *ps = &o->preds[k];
		int			b;

		if (!ps->active)
			continue;
		b = value_bin(&adm->preds[k], ps, &values[adm->preds[k].feature]);
		if (b >= 0)
			z += ps->bins[b].lo;
	}
	return z;
}

/*
 * The calibrated propensity of raw log-odds z: the PAV blocks' values
 * interpolated linearly between their centres (constant beyond the first and
 * the last), plus 1e-9 * (sigmoid(z) - 0.5) so that equal values keep the raw
 * order; sigmoid(z) while the offer has no calibration data.
 */
static double
calibrate(const AdmOffer *o, double z)
{
	double		p;

	if (o->ncal == 0)
		return kaireon_sigmoid(z);
	if (z <= o->cal_x[0])
		p = o->cal_y[0];
	else if (z >= o->cal_x[o->ncal - 1])
		p = o->cal_y[o->ncal - 1];
	else
	{
		int			lo = 0,
					hi = o->ncal - 1;

		while (hi - lo > 1)
		{
			int			mid = (lo + hi) / 2;

			if (o->cal_x[mid] <= z)
				lo = mid;
			else
				hi = mid;
		}
		p = o->cal_x[hi] > o->cal_x[lo]
			? o->cal_y[lo] + (o->cal_y[hi] - o->cal_y[lo]) * (z - o->cal_x[lo]) / (o->cal_x[hi] - o->cal_x[lo])
			: o->cal_y[lo];
	}
	p += 1e-9 * (kaireon_sigmoid(z) - 0.5);
	return Min(Max(p, 0), 1);
}

/* The offer's base rate, the answer of an immature model. */
static double
base_rate(const AdmOffer *o)
{
	return o == NULL ? 0.5 : (o->positives + 1) / (o->positives + o->negatives + 2);
}

/* Score: the calibrated propensity of the arm's (offer's) model, or its base rate while immature. */
static double
adaptive_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	AdmModel   *adm = impl->data;
	AdmOffer   *o = adm_offer(adm, scope_of(adm, arm, values));

	if (o == NULL || !o->mature)
		return base_rate(o);
	return calibrate(o, raw_logodds(adm, o, values));
}

/* A JSON description of a bin: its interval or values, and its counts. */
static json_t *
bin_json(const AdmPredictor *pr, const AdmPredState *ps, int b)
{
	const AdmBin *bin = &ps->bins[b];
	json_t	   *out = json_object();

	if (b == ps->nbins - 1)
		json_object_set_new(out, "missing", json_true());
	else if (pr->symbolic)
	{
		json_t	   *vals = json_array();

		for (int i = 0; i < bin->nvalues; i++)
			json_array_append_new(vals, json_string(bin->values[i]));
		json_object_set_new(out, "values", vals);
	}
	else
	{
		json_object_set_new(out, "lower", isfinite(bin->lower) ? json_real(bin->lower) : json_null());
		json_object_set_new(out, "upper", isfinite(bin->upper) ? json_real(bin->upper) : json_null());
	}
	json_object_set_new(out, "positives", json_real(bin->pos));
	json_object_set_new(out, "negatives", json_real(bin->neg));
	json_object_set_new(out, "logOdds", json_real(bin->lo));
	return out;
}

/*
 * Explanation: the offer's counts and maturity, the prior, each predictor's
 * bin, AUC, whether it is active and its log-odds contribution (0 when
 * inactive or for an unseen symbol), the raw log-odds and the calibrated score.
 */
static json_t *
adaptive_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	AdmModel   *adm = impl->data;
	const char *scope_id = scope_of(adm, arm, values);
	AdmOffer   *o = adm_offer(adm, scope_id);
	json_t	   *out = json_object();
	json_t	   *preds = json_object();
	double		a = adm->cfg.alpha;

	json_object_set_new(out, "offer", arm ? json_string(arm) : json_null());
	if (adm->cfg.per_channel)
		json_object_set_new(out, "channel", kv_to_json(&values[adm->channel_feature]));
	json_object_set_new(out, "positives", json_real(o ? o->positives : 0));
	json_object_set_new(out, "negatives", json_real(o ? o->negatives : 0));
	json_object_set_new(out, "mature", json_boolean(o != NULL && o->mature));
	json_object_set_new(out, "minPositives", json_real(adm->cfg.min_positives));
	if (o == NULL || !o->mature)
	{
		json_object_set_new(out, "score", json_real(base_rate(o)));
		json_object_set_new(out, "baseRate", json_real(base_rate(o)));
		return out;
	}
	for (int k = 0; k < adm->npred; k++)
	{
		const AdmPredictor *pr = &adm->preds[k];
		const AdmPredState *ps = &o->preds[k];
		int			b = value_bin(pr, ps, &values[pr->feature]);
		json_t	   *p = json_object();

		json_object_set_new(p, "value", kv_to_json(&values[pr->feature]));
		json_object_set_new(p, "bin", b >= 0 ? bin_json(pr, ps, b) : json_null());
		json_object_set_new(p, "auc", json_real(ps->auc));
		json_object_set_new(p, "active", json_boolean(ps->active));
		json_object_set_new(p, "contribution", json_real(ps->active && b >= 0 ? ps->bins[b].lo : 0));
		json_object_set_new(preds, pr->name, p);
	}
	{
		double		z = raw_logodds(adm, o, values);

		json_object_set_new(out, "priorLogOdds", json_real(log((o->positives + a) / (o->negatives + a))));
		json_object_set_new(out, "predictors", preds);
		json_object_set_new(out, "logOdds", json_real(z));
		json_object_set_new(out, "rawScore", json_real(kaireon_sigmoid(z)));
		json_object_set_new(out, "calibrated", json_boolean(o->ncal > 0));
		json_object_set_new(out, "score", json_real(calibrate(o, z)));
	}
	return out;
}

/* ---- learning ---- */

/*
 * Learn one outcome of the arm's (offer's) model: one upsert of this
 * backend's shard row (see the protocol at the top).  The observation holds
 * each present predictor's value and, once the offer is mature, the raw
 * log-odds of the model this backend holds.
 */
void
kaireon_adaptive_learn(const ModelImpl *impl, const KaireonValue *values, const char *arm,
					   bool positive)
{
	static SPIPlanPtr plan = NULL;
	AdmModel   *adm = impl->data;
	AdmOffer   *o;
	Section    *obs = palloc0(sizeof(Section) * (adm->npred + 1));
	SketchBin  *bins = palloc0(sizeof(SketchBin) * (adm->npred + 1));
	SymCount   *syms = palloc0(sizeof(SymCount) * (adm->npred + 1));
	int			n = 0;
	Oid			types[9] = {TEXTOID, TEXTOID, TEXTOID, INT2OID, INT4OID, BYTEAOID, INT4OID, INT4OID,
	TIMESTAMPTZOID};
	Datum		v[9];
	const char *scope_id;

	if (arm == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("an adaptive model learns per offer: arm (the offer id) must not be null"),
				 errhint("Pass the offer id of the outcome as arm.")));
	scope_id = scope_of(adm, arm, values);
	o = adm_offer(adm, scope_id);
	for (int k = 0; k < adm->npred; k++)
	{
		const AdmPredictor *pr = &adm->preds[k];
		const KaireonValue *val = &values[pr->feature];
		char		buf[64];
		const char *sym = pr->symbolic ? kv_level_text(val, buf, sizeof(buf)) : NULL;

		/* missing (a symbol longer than ADM_MAX_SYMBOL bytes too): counted by the offer's totals only */
		if (pr->symbolic ? (sym == NULL || strlen(sym) > ADM_MAX_SYMBOL) : !isfinite(kv_number(val)))
			continue;
		obs[n].kind = pr->symbolic ? SEC_SYMBOLIC : SEC_NUMERIC;
		obs[n].name = pr->name;
		obs[n].count = 1;
		obs[n].bins = &bins[n];
		obs[n].syms = &syms[n];
		if (pr->symbolic)
			syms[n].value = pstrdup(sym);
		else
			bins[n].c = kv_number(val);
		n++;
	}
	if (o != NULL && o->mature)
	{
		obs[n].kind = SEC_SCORE;
		obs[n].name = "";
		obs[n].count = 1;
		obs[n].bins = &bins[n];
		bins[n].c = raw_logodds(adm, o, values);
		n++;
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (plan == NULL)
		plan = kspi_prepare_keep(
			"INSERT INTO kaireon.model_adaptations AS a (tenant_id, model_id, scope, scope_id, shard, "
			"  positives, negatives, positive_rate, sketch, updated_at) "
			"VALUES ($1, $2, 'offer', $3, $4, $5, 1 - $5, $5, "
			"        kaireon_internal._adaptive_learn(NULL, $6, $5 = 1, $7, $8), $9) "
			"ON CONFLICT (tenant_id, model_id, scope, scope_id, shard) DO UPDATE "
			"   SET positives = a.positives + $5, negatives = a.negatives + 1 - $5, "
			"       positive_rate = (a.positives + $5)::float8 / (a.positives + a.negatives + 1), "
			"       sketch = kaireon_internal._adaptive_learn(a.sketch, $6, $5 = 1, $7, $8), "
			"       updated_at = EXCLUDED.updated_at",
			9, types);
	v[0] = CStringGetTextDatum(adm->tenant_id);
	v[1] = CStringGetTextDatum(adm->model_id);
	v[2] = CStringGetTextDatum(scope_id);
	v[3] = Int16GetDatum((int16) (MyBackendId % KAIREON_ADAPTATION_SHARDS));
	v[4] = Int32GetDatum(positive ? 1 : 0);
	v[5] = PointerGetDatum(kaireon_adaptive_sketch_write(obs, n));
	v[6] = Int32GetDatum(adm->cfg.sketch_bins);
	v[7] = Int32GetDatum(adm->cfg.max_symbols);
	v[8] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (kspi_execute_plan(plan, v, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kaireon: updating the adaptive model's state failed");
	SPI_finish();
}

/* ---- the report ---- */

/*
 * The report of the arm's (offer's, with perChannel the offer's and channel's) model: one object per predictor
 * (predictor, type, auc, active, bins), highest AUC first; an empty array when
 * the offer has learned nothing.
 */
json_t *
kaireon_adaptive_report(const ModelImpl *impl, const char *arm, const char *channel)
{
	AdmModel   *adm = impl->data;
	KaireonValue *values = palloc0(sizeof(KaireonValue) * Max(impl->nfeatures, 1));
	AdmOffer   *o;
	json_t	   *rows = json_array();
	int		   *order;

	if (adm->channel_feature >= 0 && channel != NULL)
	{
		values[adm->channel_feature].kind = KV_STRING;
		values[adm->channel_feature].str = channel;
	}
	o = adm_offer(adm, scope_of(adm, arm, values));

	if (o == NULL)
		return rows;
	order = palloc(sizeof(int) * Max(adm->npred, 1));
	for (int k = 0; k < adm->npred; k++)
	{
		int			j = k;

		/* insertion by AUC, descending; equal AUCs in declaration order */
		while (j > 0 && o->preds[order[j - 1]].auc < o->preds[k].auc)
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = k;
	}
	for (int i = 0; i < adm->npred; i++)
	{
		int			k = order[i];
		const AdmPredictor *pr = &adm->preds[k];
		const AdmPredState *ps = &o->preds[k];
		json_t	   *bins = json_array();

		for (int b = 0; b < ps->nbins; b++)
			json_array_append_new(bins, bin_json(pr, ps, b));
		json_array_append_new(rows, json_pack("{s:s,s:s,s:f,s:b,s:o}", "predictor", pr->name,
											  "type", pr->symbolic ? "symbolic" : "numeric",
											  "auc", ps->auc, "active", ps->active, "bins", bins));
	}
	return rows;
}

const ModelOps kaireon_adaptive_ops = {
	.type_name = "adaptive",
	.compile = adaptive_compile,
	.score = adaptive_score,
	.explain = adaptive_explain,
	.learns_online = true,
	.per_arm = true,
	.learn = NULL,				/* learns through kaireon_adaptive_learn: rows, not model_state */
};
