/*
 * scoring/models/train_metrics.c
 *	  Measures on examples: the AUC and log loss of a fit, the training
 *	  distribution of each predictor, and the drift checks' statistics.
 *
 * Drift compares the model's scores of two windows of examples: population
 * stability index over the baseline's score deciles, the Kolmogorov-Smirnov
 * statistic, and the AUC of the baseline minus that of the recent window.
 * Feature drift compares each predictor's distribution in the recent window
 * with the one training saw (metrics.featureBaseline, written by train_model):
 * numeric predictors over the training deciles, categorical ones per level,
 * each with a bin for missing values; one PSI per predictor.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "scoring/models/model.h"
#include "scoring/models/train_internal.h"

/* ---- the quality of a fit: AUC and log loss ---- */

/* qsort order of (score, label) pairs by score. */
static int
cmp_pair(const void *a, const void *b)
{
	double		x = ((const double *) a)[0],
				y = ((const double *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/* AUC of scores against labels (ties count half), or NaN without both classes. */
double
kaireon_train_auc(const double *score, const double *y, int n)
{
	double	   *pairs = palloc(sizeof(double) * 2 * Max(n, 1));
	double		npos = 0,
				nneg = 0,
				rank_sum = 0;
	int			i = 0;

	for (i = 0; i < n; i++)
	{
		pairs[2 * i] = score[i];
		pairs[2 * i + 1] = y[i];
		if (y[i] > 0.5)
			npos++;
		else
			nneg++;
	}
	if (npos == 0 || nneg == 0)
		return NAN;
	qsort(pairs, n, sizeof(double) * 2, cmp_pair);
	i = 0;
	while (i < n)
	{
		int			j = i;
		double		mid,
					pos = 0;

		while (j < n && pairs[2 * j] == pairs[2 * i])
		{
			if (pairs[2 * j + 1] > 0.5)
				pos++;
			j++;
		}
		mid = (i + 1 + j) / 2.0;	/* average 1-based rank of the tie group */
		rank_sum += pos * mid;
		i = j;
	}
	pfree(pairs);
	return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

/* Mean log loss of probabilities (clamped away from 0 and 1). */
double
kaireon_train_log_loss(const double *p, const double *y, int n)
{
	double		s = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		double		q = Min(Max(p[i], 1e-15), 1 - 1e-15);

		s -= y[i] > 0.5 ? log(q) : log(1 - q);
	}
	return n > 0 ? s / n : NAN;
}

/* ---- feature baselines (feature drift) ---- */

/* qsort order of doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Decile edges of a numeric feature's values (distinct), for predictors without binEdges. */
json_t *
kaireon_train_decile_edges(Examples *ex, int f)
{
	double	   *v = palloc(sizeof(double) * Max(ex->n, 1));
	int			n = 0,
				i,
				q;
	json_t	   *edges = json_array();
	double		last = -INFINITY;

	for (i = 0; i < ex->n; i++)
	{
		double		d = kv_number(&ex->values[(size_t) i * ex->nf + f]);

		if (!isnan(d))
			v[n++] = d;
	}
	qsort(v, n, sizeof(double), cmp_double);
	for (q = 1; q < 10 && n > 0; q++)
	{
		double		e = v[(int) ((double) q * n / 10)];

		if (e > last)
		{
			json_array_append_new(edges, json_real(e));
			last = e;
		}
	}
	pfree(v);
	return edges;
}

/* A categorical baseline lists at most this many levels; later new ones count as "other". */
#define BASELINE_MAX_LEVELS 1000

/*
 * The shares of example column f in the bins of a feature description desc:
 * {"binEdges": [...]} (numeric: bin i holds e_i <= x < e_i+1, bin 0 all below
 * e_1) or {"shares": {level: ...}} (categorical: a level desc does not list
 * counts in otherShare); a missing value counts in missingShare.  Returns
 * {"shares": ..., "otherShare" (categorical), "missingShare"}.
 */
static json_t *
feature_shares(const Examples *ex, int f, json_t *desc)
{
	json_t	   *edges = json_object_get(desc, "binEdges");
	json_t	   *out = json_object();
	double		n = Max(ex->n, 1),
				missing = 0,
				other = 0;
	int			i;

	if (edges != NULL)
	{
		int			k = (int) json_array_size(edges);
		double	   *e = palloc(sizeof(double) * Max(k, 1));
		double	   *cnt = palloc0(sizeof(double) * (k + 1));
		json_t	   *shares = json_array();
		int			b;

		for (b = 0; b < k; b++)
			e[b] = json_number_value(json_array_get(edges, b));
		for (i = 0; i < ex->n; i++)
		{
			double		x = kv_number(&ex->values[(size_t) i * ex->nf + f]);

			if (isnan(x))
			{
				missing++;
				continue;
			}
			for (b = 0; b < k && x >= e[b]; b++);
			cnt[b]++;
		}
		for (b = 0; b <= k; b++)
			json_array_append_new(shares, json_real(cnt[b] / n));
		json_object_set_new(out, "shares", shares);
	}
	else
	{
		json_t	   *levels = json_object_get(desc, "shares");
		json_t	   *shares = json_object();
		const char *level;
		json_t	   *v;

		json_object_foreach(levels, level, v)
			json_object_set_new(shares, level, json_real(0));
		for (i = 0; i < ex->n; i++)
		{
			char		buf[64];
			const char *lv = kv_level_text(&ex->values[(size_t) i * ex->nf + f], buf, sizeof(buf));
			json_t	   *s;

			if (lv == NULL)
				missing++;
			else if ((s = json_object_get(shares, lv)) != NULL)
				json_real_set(s, json_real_value(s) + 1);
			else
				other++;
		}
		json_object_foreach(shares, level, v)
			json_real_set(v, json_real_value(v) / n);
		json_object_set_new(out, "shares", shares);
		json_object_set_new(out, "otherShare", json_real(other / n));
	}
	json_object_set_new(out, "missingShare", json_real(missing / n));
	return out;
}

/*
 * The training distribution of each predictor (metrics.featureBaseline):
 * {"samples": n, "features": {name: {"type", "binEdges" (numeric: the
 * training deciles), "shares", "otherShare" (categorical), "missingShare"}}}.
 * A categorical predictor lists its levels in the order first seen, at most
 * BASELINE_MAX_LEVELS of them.
 */
json_t *
kaireon_train_feature_baseline(const Examples *ex, char **names, const bool *categorical)
{
	json_t	   *features = json_object();
	json_t	   *out = json_object();

	for (int f = 0; f < ex->nf; f++)
	{
		json_t	   *desc = json_object();
		json_t	   *shares;
		const char *key;
		json_t	   *v;

		if (categorical[f])
		{
			json_t	   *levels = json_object();

			for (int i = 0; i < ex->n && json_object_size(levels) < BASELINE_MAX_LEVELS; i++)
			{
				char		buf[64];
				const char *lv = kv_level_text(&ex->values[(size_t) i * ex->nf + f], buf, sizeof(buf));

				if (lv != NULL)
					json_object_set_new(levels, lv, json_real(0));
			}
			json_object_set_new(desc, "type", json_string("categorical"));
			json_object_set_new(desc, "shares", levels);
		}
		else
		{
			json_object_set_new(desc, "type", json_string("numeric"));
			json_object_set_new(desc, "binEdges", kaireon_train_decile_edges((Examples *) ex, f));
		}
		shares = feature_shares(ex, f, desc);
		json_object_foreach(shares, key, v)
			json_object_set(desc, key, v);
		json_object_set_new(features, names[f], desc);
	}
	json_object_set_new(out, "samples", json_integer(ex->n));
	json_object_set_new(out, "features", features);
	return out;
}

/* ---- drift: PSI of the scores and of each feature, KS ---- */

/* One bin's term of a population stability index: shares floored at 1e-4 (empty bins). */
static double
psi_term(double baseline_share, double current_share)
{
	double		pb = Max(baseline_share, 1e-4),
				pc = Max(current_share, 1e-4);

	return (pc - pb) * log(pc / pb);
}

/* Population stability index of current against baseline over the baseline's deciles. */
double
kaireon_train_psi(double *base, int nb, double *cur, int nc, json_t *detail)
{
	double	   *sorted = palloc(sizeof(double) * Max(nb, 1));
	double		edges[9];
	double		bc[10] = {0},
				cc[10] = {0};
	double		total = 0;
	int			i,
				b;
	json_t	   *je = json_array(),
			   *jb = json_array(),
			   *jc = json_array();

	memcpy(sorted, base, sizeof(double) * nb);
	qsort(sorted, nb, sizeof(double), cmp_double);
	for (i = 0; i < 9; i++)
	{
		edges[i] = sorted[(int) ((double) (i + 1) * nb / 10)];
		json_array_append_new(je, json_real(edges[i]));
	}
	for (i = 0; i < nb; i++)
	{
		for (b = 0; b < 9 && base[i] >= edges[b]; b++);
		bc[b]++;
	}
	for (i = 0; i < nc; i++)
	{
		for (b = 0; b < 9 && cur[i] >= edges[b]; b++);
		cc[b]++;
	}
	for (b = 0; b < 10; b++)
	{
		total += psi_term(bc[b] / nb, cc[b] / nc);
		json_array_append_new(jb, json_real(bc[b] / nb));
		json_array_append_new(jc, json_real(cc[b] / nc));
	}
	json_object_set_new(detail, "binEdges", je);
	json_object_set_new(detail, "baselineShares", jb);
	json_object_set_new(detail, "currentShares", jc);
	return total;
}

/*
 * Feature drift of the examples cur against a model's featureBaseline: each
 * feature's shares in the baseline's bins, with its PSI over the bins, the
 * missing bin and (categorical) the "other" bin; fills detail's "features"
 * and "drifted" (the features whose PSI exceeds limit) and returns the largest PSI.
 */
double
kaireon_train_feature_drift(const Examples *cur, json_t *baseline, double limit, json_t *detail)
{
	json_t	   *features = json_object_get(baseline, "features");
	json_t	   *out = json_object();
	json_t	   *drifted = json_array();
	const char *name;
	json_t	   *desc;
	int			f = 0;
	double		worst = 0;

	json_object_foreach(features, name, desc)
	{
		json_t	   *now = feature_shares(cur, f++, desc);
		json_t	   *bs = json_object_get(desc, "shares"),
				   *cs = json_object_get(now, "shares");
		double		psi_f = psi_term(kj_num(desc, "missingShare", 0), kj_num(now, "missingShare", 0));

		if (json_is_array(bs))
		{
			for (size_t b = 0; b < json_array_size(bs); b++)
				psi_f += psi_term(json_number_value(json_array_get(bs, b)),
								  json_number_value(json_array_get(cs, b)));
		}
		else
		{
			const char *level;
			json_t	   *v;

			json_object_foreach(bs, level, v)
				psi_f += psi_term(json_number_value(v), kj_num(cs, level, 0));
			psi_f += psi_term(kj_num(desc, "otherShare", 0), kj_num(now, "otherShare", 0));
		}
		json_object_set_new(now, "psi", json_real(psi_f));
		json_object_set_new(out, name, now);
		if (psi_f > limit)
			json_array_append_new(drifted, json_string(name));
		worst = Max(worst, psi_f);
	}
	json_object_set_new(detail, "features", out);
	json_object_set_new(detail, "drifted", drifted);
	return worst;
}

/* Two-sample Kolmogorov-Smirnov statistic. */
double
kaireon_train_ks(double *a, int na, double *b, int nb)
{
	double	   *x = palloc(sizeof(double) * Max(na, 1));
	double	   *y = palloc(sizeof(double) * Max(nb, 1));
	int			i = 0,
				j = 0;
	double		d = 0;

	memcpy(x, a, sizeof(double) * na);
	memcpy(y, b, sizeof(double) * nb);
	qsort(x, na, sizeof(double), cmp_double);
	qsort(y, nb, sizeof(double), cmp_double);
	while (i < na && j < nb)
	{
		double		v = Min(x[i], y[j]);

		while (i < na && x[i] == v)
			i++;
		while (j < nb && y[j] == v)
			j++;
		d = Max(d, fabs((double) i / na - (double) j / nb));
	}
	return d;
}
