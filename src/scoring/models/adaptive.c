/*
 * models/adaptive.c
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
 * row upsert: positives/negatives + 1 and its sketch (a binary
 * document, format below) rewritten by kaireon_internal._adaptive_learn from
 * the observation, without parsing anything but the sketch's bytes.
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
 * keeps it for the transaction; it reads again at the first use in a later
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
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "scoring/models/model.h"

PG_FUNCTION_INFO_V1(kaireon_adaptive_learn_sql);

#define WHERE_CONFIG "algorithm_models.config"
#define WHERE_PREDICTORS "algorithm_models.predictors"

/* The settings (config), with their defaults in adaptive_compile. */
typedef struct AdmConfig
{
	int			sketch_bins;	/* sketchBins: bins of a numeric sketch per shard row */
	int			max_symbols;	/* maxSymbols: values counted per symbolic predictor and row */
	double		min_positives;	/* minPositives: maturity */
	double		auc_threshold;	/* aucThreshold: a predictor is active above it */
	double		merge_chi2;		/* mergeChiSquare: ChiMerge's threshold */
	double		alpha;			/* alpha: Laplace smoothing of the bins */
	int			refresh_ms;		/* refreshMs: how old a backend's copy may get */
	bool		per_channel;	/* perChannel: one model per offer and channel */
} AdmConfig;

/* A declared predictor. */
typedef struct AdmPredictor
{
	char	   *name;
	int			feature;
	bool		symbolic;
} AdmPredictor;

/* One bin of a compiled predictor. */
typedef struct AdmBin
{
	double		pos;
	double		neg;
	double		lo;				/* log-odds contribution */
	double		lower;			/* numeric: the interval [lower, upper) */
	double		upper;
	int			nvalues;		/* symbolic: the values of the group */
	char	  **values;
} AdmBin;

/* A compiled predictor of one offer: its bins, the last one the missing bin. */
typedef struct AdmPredState
{
	int			nbins;			/* with the missing bin */
	AdmBin	   *bins;
	double		auc;
	bool		active;
} AdmPredState;

/* The compiled model of one offer. */
typedef struct AdmOffer
{
	char	   *scope_id;
	double		positives;
	double		negatives;
	bool		mature;
	AdmPredState *preds;
	int			ncal;			/* calibration: PAV blocks (centre, value) */
	double	   *cal_x;
	double	   *cal_y;
	double		cal_pos;
	double		cal_neg;
	/* as read: compiled on first use */
	bool		compiled;
	int			nrows;
	struct Section **rows;		/* each shard row's sketch sections */
	int		   *nsec;
} AdmOffer;

/* The compiled model: the definition, and this backend's copy of what it learned. */
typedef struct AdmModel
{
	AdmConfig	cfg;
	char	   *tenant_id;
	char	   *model_id;
	int			npred;
	AdmPredictor *preds;
	int			channel_feature;	/* perChannel: the feature decision.channel */
	/* this backend's copy of the learned state */
	MemoryContext state_cxt;
	bool		loaded;
	LocalTransactionId loaded_lxid;
	TimestampTz loaded_at;
	int			noffers;		/* sorted by scope_id */
	AdmOffer   *offers;
} AdmModel;

/* One bin of a sketch, or a run of bins while compiling. */
typedef struct SketchBin
{
	double		c;				/* centroid (numeric and score sketches) */
	double		pos;
	double		neg;
	double		cmin;			/* the smallest and largest centroid of a run */
	double		cmax;
	int			first;			/* symbolic: the values [first, last] of the sorted list */
	int			last;
} SketchBin;

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
	adm->cfg.sketch_bins = config_int(config, "sketchBins", 20, 2, 200);
	adm->cfg.max_symbols = config_int(config, "maxSymbols", 100, 1, 1000);
	adm->cfg.min_positives = config_number(config, "minPositives", 200, 0, 1e9);
	adm->cfg.auc_threshold = config_number(config, "aucThreshold", 0.52, 0.5, 1);
	adm->cfg.merge_chi2 = config_number(config, "mergeChiSquare", 3.84, 0, 1e6);
	adm->cfg.alpha = config_number(config, "alpha", 1, 1e-6, 1e6);
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

/* ---- sketches (one shard row): the binary format of model_adaptations.sketch ---- */

/*
 * A sketch document: "KAS1", uint32 number of sections, then each section:
 * uint8 kind (SEC_NUMERIC, SEC_SYMBOLIC, SEC_SCORE), uint8 0, uint16 name
 * length, uint32 entries, the name's bytes, then its entries: numeric and
 * score sketches as the centroid (a double) and positives and negatives
 * (uint32 each); symbolic counts as positives and negatives (uint32 each),
 * uint16 value length and the value's bytes.  Native byte order, read with memcpy.  An
 * observation (what one outcome adds) has the same format with one entry per
 * section (its counts unused).
 */
/* The longest symbolic value a sketch keeps (its length is stored in 16 bits); longer: missing. */
#define ADM_MAX_SYMBOL 1024
#define SKETCH_MAGIC "KAS1"
#define SEC_NUMERIC 1
#define SEC_SYMBOLIC 2
#define SEC_SCORE 3

/* One symbolic value's counts. */
typedef struct SymCount
{
	char	   *value;
	double		pos;
	double		neg;
} SymCount;

/* One section of a sketch document, read. */
typedef struct Section
{
	int			kind;
	char	   *name;
	int			count;
	int			cap;
	SketchBin  *bins;			/* numeric, score */
	SymCount   *syms;			/* symbolic */
} Section;

/* Raise 22023 for a malformed sketch document. */
static void
bad_sketch(const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("model_adaptations.sketch is malformed: %s", problem),
			 errhint("It is written by kaireon's adaptive learning only (docs/models.md, adaptive).")));
}

/* Take n bytes from the cursor, or 22023 past the end. */
static const char *
take(const char **p, const char *end, size_t n)
{
	const char *at = *p;

	if ((size_t) (end - at) < n)
		bad_sketch("it ends early");
	*p = at + n;
	return at;
}

/* Take a count (uint32). */
static double
get_count(const char **p, const char *end)
{
	uint32		c;

	memcpy(&c, take(p, end, 4), 4);
	return (double) c;
}

/* Read a sketch document into sections (each with room for extra more entries). */
static int
sketch_parse(const char *data, size_t len, Section **out, int extra)
{
	const char *p = data,
			   *end = data + len;
	uint32		n;
	Section    *s;

	if (len == 0)
	{
		*out = palloc0(sizeof(Section));
		return 0;
	}
	if (memcmp(take(&p, end, 4), SKETCH_MAGIC, 4) != 0)
		bad_sketch("it does not start with KAS1");
	memcpy(&n, take(&p, end, 4), 4);
	/* counts are checked against the bytes left before anything is allocated for them */
	if (n > 100000 || (uint64) n * 8 > (uint64) (end - p))
		bad_sketch("too many sections");
	s = palloc0(sizeof(Section) * (n + 1));
	for (uint32 i = 0; i < n; i++)
	{
		uint8		kind;
		uint16		nlen;
		uint32		count;

		kind = *(const uint8 *) take(&p, end, 2);
		memcpy(&nlen, take(&p, end, 2), 2);
		memcpy(&count, take(&p, end, 4), 4);
		if (kind < SEC_NUMERIC || kind > SEC_SCORE || count > 1000000 ||
			(uint64) count * (kind == SEC_SYMBOLIC ? 10 : 16) > (uint64) (end - p))
			bad_sketch("a section has an unknown kind or too many entries");
		s[i].kind = kind;
		s[i].name = pnstrdup(take(&p, end, nlen), nlen);
		s[i].count = (int) count;
		s[i].cap = (int) count + extra;
		if (kind == SEC_SYMBOLIC)
		{
			s[i].syms = palloc(sizeof(SymCount) * (s[i].cap + 1));
			for (uint32 k = 0; k < count; k++)
			{
				uint16		vlen;

				s[i].syms[k].pos = get_count(&p, end);
				s[i].syms[k].neg = get_count(&p, end);
				memcpy(&vlen, take(&p, end, 2), 2);
				s[i].syms[k].value = pnstrdup(take(&p, end, vlen), vlen);
			}
		}
		else
		{
			s[i].bins = palloc0(sizeof(SketchBin) * (s[i].cap + 1));
			for (uint32 k = 0; k < count; k++)
			{
				memcpy(&s[i].bins[k].c, take(&p, end, 8), 8);
				if (!isfinite(s[i].bins[k].c))
					bad_sketch("a centroid is not a finite number");
				s[i].bins[k].pos = get_count(&p, end);
				s[i].bins[k].neg = get_count(&p, end);
			}
		}
	}
	if (p != end)
		bad_sketch("it has bytes after its last section");
	*out = s;
	return (int) n;
}

/* Append n bytes to buf. */
static void
put(StringInfo buf, const void *data, int n)
{
	appendBinaryStringInfo(buf, data, n);
}

/* Append a count as uint32 (22003 beyond its range). */
static void
put_count(StringInfo buf, double count)
{
	uint32		c;

	if (!(count >= 0 && count <= (double) PG_UINT32_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("an adaptive model's bin count of one shard row would exceed %u", PG_UINT32_MAX),
				 errhint("Delete the model's model_adaptations rows of the offer to start it again.")));
	c = (uint32) count;
	put(buf, &c, 4);
}

/* Write sections as a sketch document (a bytea). */
static bytea *
sketch_write(const Section *s, int n)
{
	StringInfoData buf;
	uint32		nn = (uint32) n;
	bytea	   *out;

	initStringInfo(&buf);
	put(&buf, SKETCH_MAGIC, 4);
	put(&buf, &nn, 4);
	for (int i = 0; i < n; i++)
	{
		uint8		head[2] = {(uint8) s[i].kind, 0};
		uint16		nlen = (uint16) strlen(s[i].name);
		uint32		count = (uint32) s[i].count;

		put(&buf, head, 2);
		put(&buf, &nlen, 2);
		put(&buf, &count, 4);
		put(&buf, s[i].name, nlen);
		for (int k = 0; k < s[i].count; k++)
		{
			if (s[i].kind == SEC_SYMBOLIC)
			{
				uint16		vlen = (uint16) strlen(s[i].syms[k].value);

				put_count(&buf, s[i].syms[k].pos);
				put_count(&buf, s[i].syms[k].neg);
				put(&buf, &vlen, 2);
				put(&buf, s[i].syms[k].value, vlen);
			}
			else
			{
				put(&buf, &s[i].bins[k].c, 8);
				put_count(&buf, s[i].bins[k].pos);
				put_count(&buf, s[i].bins[k].neg);
			}
		}
	}
	out = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(out, VARHDRSZ + buf.len);
	memcpy(VARDATA(out), buf.data, buf.len);
	return out;
}

/*
 * Add value x with its class to a sketch of at most max bins (room for one
 * more): counted in the bin of that centroid, else a new bin; one bin too
 * many merges the adjacent pair with the fewest responses (ties: the
 * narrowest gap, then the leftmost) into their count-weighted mean.
 */
static int
sketch_add(SketchBin *b, int n, int max, double x, bool positive)
{
	int			at = 0;
	int			best = -1;
	double		best_count = 0,
				best_gap = 0;

	while (at < n && b[at].c < x)
		at++;
	if (at < n && b[at].c == x)
	{
		if (positive)
			b[at].pos++;
		else
			b[at].neg++;
		return n;
	}
	memmove(&b[at + 1], &b[at], sizeof(SketchBin) * (n - at));
	b[at].c = x;
	b[at].pos = positive ? 1 : 0;
	b[at].neg = positive ? 0 : 1;
	n++;
	while (n > max)
	{
		SketchBin  *l,
				   *r;
		double		wl,
					wr;

		best = -1;
		for (int i = 0; i + 1 < n; i++)
		{
			double		count = b[i].pos + b[i].neg + b[i + 1].pos + b[i + 1].neg;
			double		gap = b[i + 1].c - b[i].c;

			if (best < 0 || count < best_count || (count == best_count && gap < best_gap))
			{
				best = i;
				best_count = count;
				best_gap = gap;
			}
		}
		l = &b[best];
		r = &b[best + 1];
		wl = l->pos + l->neg;
		wr = r->pos + r->neg;
		/* the weighted mean of two neighbours lies between them: the order holds (weights
		 * applied first, so no product overflows) */
		l->c = l->c * (wl / (wl + wr)) + r->c * (wr / (wl + wr));
		l->pos += r->pos;
		l->neg += r->neg;
		memmove(&b[best + 1], &b[best + 2], sizeof(SketchBin) * (n - best - 2));
		n--;
	}
	return n;
}

/*
 * kaireon_internal._adaptive_learn(sketch bytea, observation bytea, positive
 * boolean, sketch_bins integer, max_symbols integer): a shard row's sketch
 * after one outcome.  Each section of the observation (one value) is added
 * to the row's section of that kind and name (created when new): numeric and
 * score values to a sketch of at most sketch_bins bins, symbolic values
 * counted (a new value only while the section has fewer than max_symbols).
 * A NULL sketch is empty.
 */
Datum
kaireon_adaptive_learn_sql(PG_FUNCTION_ARGS)
{
	bytea	   *state = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	bytea	   *obs;
	bool		positive;
	int			max_bins,
				max_symbols,
				n,
				nobs;
	Section    *s,
			   *o;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	obs = PG_GETARG_BYTEA_PP(1);
	positive = PG_GETARG_BOOL(2);
	max_bins = PG_GETARG_INT32(3);
	max_symbols = PG_GETARG_INT32(4);
	if (max_bins < 2 || max_symbols < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("_adaptive_learn needs sketch_bins >= 2 and max_symbols >= 1, not %d and %d",
						max_bins, max_symbols),
				 errhint("It is called by kaireon's adaptive models only (docs/models.md).")));
	nobs = sketch_parse(VARDATA_ANY(obs), VARSIZE_ANY_EXHDR(obs), &o, 0);
	n = state ? sketch_parse(VARDATA_ANY(state), VARSIZE_ANY_EXHDR(state), &s, 1) : 0;
	s = n > 0 ? repalloc(s, sizeof(Section) * (n + nobs + 1)) : palloc0(sizeof(Section) * (nobs + 1));
	for (int i = 0; i < nobs; i++)
	{
		Section    *t = NULL;

		if (o[i].count != 1)
			bad_sketch("an observation section holds one value");
		for (int k = 0; k < n && t == NULL; k++)
			if (s[k].kind == o[i].kind && strcmp(s[k].name, o[i].name) == 0)
				t = &s[k];
		if (t == NULL)
		{
			t = &s[n++];
			memset(t, 0, sizeof(Section));
			t->kind = o[i].kind;
			t->name = o[i].name;
			t->cap = 1;
			if (t->kind == SEC_SYMBOLIC)
				t->syms = palloc(sizeof(SymCount) * 2);
			else
				t->bins = palloc0(sizeof(SketchBin) * 2);
		}
		if (t->count >= t->cap)
		{
			/* room for one more entry (and the sketch's transient extra one) */
			t->cap = t->count + 1;
			if (t->kind == SEC_SYMBOLIC)
				t->syms = repalloc(t->syms, sizeof(SymCount) * (t->cap + 1));
			else
				t->bins = repalloc(t->bins, sizeof(SketchBin) * (t->cap + 1));
		}
		if (t->kind == SEC_SYMBOLIC)
		{
			int			k = 0;

			while (k < t->count && strcmp(t->syms[k].value, o[i].syms[0].value) != 0)
				k++;
			if (k == t->count)
			{
				if (t->count >= max_symbols)
					continue;	/* full: the value counts as missing */
				t->syms[k].value = o[i].syms[0].value;
				t->syms[k].pos = t->syms[k].neg = 0;
				t->count++;
			}
			if (positive)
				t->syms[k].pos++;
			else
				t->syms[k].neg++;
		}
		else
			t->count = sketch_add(t->bins, t->count, max_bins, o[i].bins[0].c, positive);
	}
	PG_RETURN_BYTEA_P(sketch_write(s, n));
}

/* ---- compiling an offer ---- */

/* Order sketch bins by centroid. */
static int
cmp_centroid(const void *a, const void *b)
{
	double		x = ((const SketchBin *) a)->c,
				y = ((const SketchBin *) b)->c;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Pool bins (of several shards): sort by centroid, sum equal centroids, then
 * group consecutive bins into runs of about total / runs responses each
 * (a bin is never split).  Each run keeps its smallest and largest centroid
 * and the count-weighted mean centroid.
 */
static int
pool_bins(SketchBin *b, int n, int runs)
{
	int			m = 0;
	double		total = 0,
				target,
				acc = 0;
	int			out = 0;

	if (n == 0)
		return 0;
	qsort(b, n, sizeof(SketchBin), cmp_centroid);
	for (int i = 0; i < n; i++)
	{
		if (m > 0 && b[m - 1].c == b[i].c)
		{
			b[m - 1].pos += b[i].pos;
			b[m - 1].neg += b[i].neg;
		}
		else
			b[m++] = b[i];
		total += b[i].pos + b[i].neg;
	}
	target = total / runs;
	for (int i = 0; i < m; i++)
	{
		double		w = b[i].pos + b[i].neg;

		if (i == 0 || acc >= target)
		{
			b[out] = b[i];
			b[out].cmin = b[out].cmax = b[i].c;
			acc = 0;
			out++;
		}
		else
		{
			SketchBin  *r = &b[out - 1];
			double		rw = r->pos + r->neg;

			/* the run's count-weighted mean centroid, weights applied first (no overflow) */
			if (rw + w > 0)
				r->c = r->c * (rw / (rw + w)) + b[i].c * (w / (rw + w));
			r->pos += b[i].pos;
			r->neg += b[i].neg;
			r->cmax = b[i].c;
		}
		acc += w;
	}
	return out;
}

/* Pearson's chi-square of the 2x2 table of two bins' positives and negatives (0 when a margin is 0). */
static double
chi_square(const SketchBin *a, const SketchBin *b)
{
	double		ta = a->pos + a->neg,
				tb = b->pos + b->neg,
				tp = a->pos + b->pos,
				tn = a->neg + b->neg,
				d = a->pos * b->neg - b->pos * a->neg;

	if (ta == 0 || tb == 0 || tp == 0 || tn == 0)
		return 0;
	return (ta + tb) * d * d / (ta * tb * tp * tn);
}

/*
 * ChiMerge: merge the adjacent pair with the smallest chi-square while it is
 * below threshold (the merged bin spans both: cmin, cmax, first, last).
 */
static int
chi_merge(SketchBin *b, int n, double threshold)
{
	while (n > 1)
	{
		int			best = 0;
		double		best_chi = chi_square(&b[0], &b[1]);

		for (int i = 1; i + 1 < n; i++)
		{
			double		c = chi_square(&b[i], &b[i + 1]);

			if (c < best_chi)
			{
				best = i;
				best_chi = c;
			}
		}
		if (!(best_chi < threshold))
			break;
		b[best].pos += b[best + 1].pos;
		b[best].neg += b[best + 1].neg;
		b[best].cmax = b[best + 1].cmax;
		b[best].last = b[best + 1].last;
		memmove(&b[best + 1], &b[best + 2], sizeof(SketchBin) * (n - best - 2));
		n--;
	}
	return n;
}

/* Order bins by positive rate (ties by position: first), for AUC and symbol groups. */
static int
cmp_rate(const void *a, const void *b)
{
	const SketchBin *x = a,
			   *y = b;
	double		l = x->pos * (y->pos + y->neg),
				r = y->pos * (x->pos + x->neg);

	if (l != r)
		return l < r ? -1 : 1;
	return x->first < y->first ? -1 : x->first > y->first ? 1 : 0;
}

/*
 * The AUC of bins ranked by positive rate: the probability that a random
 * positive's bin has a higher rate than a random negative's, ties counting
 * one half.  0.5 without positives or negatives.
 */
static double
bins_auc(const AdmBin *bins, int n)
{
	SketchBin  *s = palloc(sizeof(SketchBin) * Max(n, 1));
	int			m = 0;
	double		P = 0,
				N = 0,
				below = 0,
				sum = 0;

	for (int i = 0; i < n; i++)
		if (bins[i].pos + bins[i].neg > 0)
		{
			s[m].pos = bins[i].pos;
			s[m].neg = bins[i].neg;
			s[m].first = i;
			P += bins[i].pos;
			N += bins[i].neg;
			m++;
		}
	if (P == 0 || N == 0)
		return 0.5;
	qsort(s, m, sizeof(SketchBin), cmp_rate);
	for (int i = 0; i < m;)
	{
		double		p = 0,
					q = 0;
		int			j = i;

		/* bins of one rate form one group */
		while (j < m && s[j].pos * (s[i].pos + s[i].neg) == s[i].pos * (s[j].pos + s[j].neg))
		{
			p += s[j].pos;
			q += s[j].neg;
			j++;
		}
		sum += p * (below + q / 2);
		below += q;
		i = j;
	}
	return sum / (P * N);
}

/* Fill bins' log-odds contributions, the AUC and whether the predictor is active. */
static void
finish_predictor(const AdmModel *adm, const AdmOffer *o, AdmPredState *ps)
{
	double		a = adm->cfg.alpha,
				B = ps->nbins;

	for (int i = 0; i < ps->nbins; i++)
		ps->bins[i].lo = log((ps->bins[i].pos + a) / (o->positives + a * B)) -
			log((ps->bins[i].neg + a) / (o->negatives + a * B));
	ps->auc = bins_auc(ps->bins, ps->nbins);
	ps->active = ps->auc > adm->cfg.auc_threshold;
}

/*
 * Merge the ordered bins b by ChiMerge and make them the predictor's bins, with one more, the
 * missing bin: the offer's responses that no bin counted.  Returns the merged count.
 */
static int
merged_bins(const AdmModel *adm, const AdmOffer *o, SketchBin *b, int n, AdmPredState *ps)
{
	double		pos = 0,
				neg = 0;
	AdmBin	   *m;

	n = chi_merge(b, n, adm->cfg.merge_chi2);
	ps->nbins = n + 1;
	ps->bins = palloc0(sizeof(AdmBin) * ps->nbins);
	for (int i = 0; i < n; i++)
	{
		ps->bins[i].pos = b[i].pos;
		ps->bins[i].neg = b[i].neg;
		pos += b[i].pos;
		neg += b[i].neg;
	}
	m = &ps->bins[n];
	m->pos = Max(o->positives - pos, 0);
	m->neg = Max(o->negatives - neg, 0);
	m->lower = NAN;
	m->upper = NAN;
	return n;
}

/* Compile a numeric predictor from its pooled sketch bins. */
static void
compile_numeric(const AdmModel *adm, const AdmOffer *o, SketchBin *b, int n, AdmPredState *ps)
{
	n = pool_bins(b, n, 2 * adm->cfg.sketch_bins);
	n = merged_bins(adm, o, b, n, ps);
	for (int i = 0; i < n; i++)
	{
		ps->bins[i].lower = i == 0 ? -INFINITY : ps->bins[i - 1].upper;
		ps->bins[i].upper = i == n - 1 ? INFINITY : b[i].cmax / 2 + b[i + 1].cmin / 2;
	}
	finish_predictor(adm, o, ps);
}

/* Order symbol names for a deterministic pooling. */
static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Order symbol counts by value. */
static int
cmp_sym(const void *a, const void *b)
{
	return strcmp(((const SymCount *) a)->value, ((const SymCount *) b)->value);
}

/* Compile a symbolic predictor from its values' counts (of all shards; a value may repeat). */
static void
compile_symbolic(const AdmModel *adm, const AdmOffer *o, SymCount *syms, int nsyms, AdmPredState *ps)
{
	int			n = 0;
	char	  **names;
	SketchBin  *b = palloc0(sizeof(SketchBin) * Max(nsyms, 1));

	/* pool equal values (sorted by value: a deterministic order) */
	qsort(syms, nsyms, sizeof(SymCount), cmp_sym);
	for (int i = 0; i < nsyms; i++)
	{
		if (n > 0 && strcmp(syms[n - 1].value, syms[i].value) == 0)
		{
			syms[n - 1].pos += syms[i].pos;
			syms[n - 1].neg += syms[i].neg;
		}
		else
			syms[n++] = syms[i];
	}
	for (int i = 0; i < n; i++)
	{
		b[i].pos = syms[i].pos;
		b[i].neg = syms[i].neg;
		b[i].first = b[i].last = i;
	}
	/* values in the order of their positive rate, then grouped */
	qsort(b, n, sizeof(SketchBin), cmp_rate);
	names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		names[i] = pstrdup(syms[b[i].first].value);
		b[i].first = b[i].last = i;
	}
	n = merged_bins(adm, o, b, n, ps);
	for (int i = 0; i < n; i++)
	{
		ps->bins[i].nvalues = b[i].last - b[i].first + 1;
		ps->bins[i].values = &names[b[i].first];
		/* values within a group sorted by name, for lookups and reports */
		qsort(ps->bins[i].values, ps->bins[i].nvalues, sizeof(char *), cmp_names);
	}
	finish_predictor(adm, o, ps);
}

/*
 * Calibration: pool the raw log-odds sketch, then the pool-adjacent-violators
 * fit of the smoothed positive rate (p + r0) / (t + 1) with weight t + 1
 * (r0 the offer's base rate) in the order of the raw log-odds; each block is
 * placed at its count-weighted mean raw log-odds.
 */
static void
compile_calibration(const AdmModel *adm, AdmOffer *o, SketchBin *b, int n)
{
	double		r0 = (o->positives + 1) / (o->positives + o->negatives + 2);
	double	   *w,
			   *x,
			   *y,
			   *t;
	int			k = 0;

	n = pool_bins(b, n, 2 * adm->cfg.sketch_bins);
	w = palloc(sizeof(double) * Max(n, 1));
	x = palloc(sizeof(double) * Max(n, 1));
	y = palloc(sizeof(double) * Max(n, 1));
	t = palloc(sizeof(double) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		double		cnt = b[i].pos + b[i].neg;

		o->cal_pos += b[i].pos;
		o->cal_neg += b[i].neg;
		/* a new block, then pool while it violates the order */
		w[k] = cnt + 1;
		y[k] = (b[i].pos + r0) / (cnt + 1);
		x[k] = b[i].c * cnt;
		t[k] = cnt;
		k++;
		while (k > 1 && y[k - 2] >= y[k - 1])
		{
			y[k - 2] = (y[k - 2] * w[k - 2] + y[k - 1] * w[k - 1]) / (w[k - 2] + w[k - 1]);
			w[k - 2] += w[k - 1];
			x[k - 2] += x[k - 1];
			t[k - 2] += t[k - 1];
			k--;
		}
	}
	for (int i = 0; i < k; i++)
		x[i] = t[i] > 0 ? x[i] / t[i] : 0;
	o->ncal = (o->cal_pos > 0 && o->cal_neg > 0) ? k : 0;
	o->cal_x = x;
	o->cal_y = y;
}

/* Order offers by scope id. */
static int
cmp_offer(const void *a, const void *b)
{
	return strcmp(((const AdmOffer *) a)->scope_id, ((const AdmOffer *) b)->scope_id);
}

/* The entries of every shard's section of this kind and name, pooled into one array. */
static int
gather_sections(Section **rows, const int *nsec, int nrows, int kind, const char *name,
				SketchBin **bins, SymCount **syms)
{
	int			n = 0,
				cap = 16;

	*bins = palloc(sizeof(SketchBin) * cap);
	*syms = palloc(sizeof(SymCount) * cap);
	for (int r = 0; r < nrows; r++)
		for (int i = 0; i < nsec[r]; i++)
		{
			Section    *s = &rows[r][i];

			if (s->kind != kind || strcmp(s->name, name) != 0)
				continue;
			if (n + s->count > cap)
			{
				cap = Max(cap * 2, n + s->count);
				*bins = repalloc(*bins, sizeof(SketchBin) * cap);
				*syms = repalloc(*syms, sizeof(SymCount) * cap);
			}
			if (kind == SEC_SYMBOLIC)
				memcpy(&(*syms)[n], s->syms, sizeof(SymCount) * s->count);
			else
				memcpy(&(*bins)[n], s->bins, sizeof(SketchBin) * s->count);
			n += s->count;
		}
	return n;
}

/* Compile one offer from its shard rows' sketches (the counts are already in o). */
static void
compile_offer(const AdmModel *adm, AdmOffer *o, Section **rows, const int *nsec, int nrows)
{
	SketchBin  *bins;
	SymCount   *syms;
	int			n;

	o->mature = o->positives >= adm->cfg.min_positives;
	o->preds = palloc0(sizeof(AdmPredState) * Max(adm->npred, 1));
	for (int k = 0; k < adm->npred; k++)
	{
		const AdmPredictor *pr = &adm->preds[k];

		n = gather_sections(rows, nsec, nrows, pr->symbolic ? SEC_SYMBOLIC : SEC_NUMERIC, pr->name, &bins, &syms);
		if (pr->symbolic)
			compile_symbolic(adm, o, syms, n, &o->preds[k]);
		else
			compile_numeric(adm, o, bins, n, &o->preds[k]);
	}
	n = gather_sections(rows, nsec, nrows, SEC_SCORE, "", &bins, &syms);
	compile_calibration(adm, o, bins, n);
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

				nsec[i - r] = sketch_parse(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), &rows[i - r], 0);
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

		compile_offer(adm, o, o->rows, o->nsec, o->nrows);
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
			if (bsearch(&s, ps->bins[i].values, ps->bins[i].nvalues, sizeof(char *), cmp_names) != NULL)
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
	v[5] = PointerGetDatum(sketch_write(obs, n));
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
