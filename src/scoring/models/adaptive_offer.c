/*
 * scoring/models/adaptive_offer.c
 *	  adaptive: compiling one offer's model from its shard rows' sketches, at its
 *	  first use after a read (the protocol, "Reading", at the top of adaptive.c):
 *	  pooling, ChiMerge, each predictor's bins, log-odds and AUC, the calibration.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "scoring/models/adaptive_internal.h"

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
		double		best_chi;

		/* quadratic: a pooled symbolic predictor has up to shards x maxSymbols values */
		CHECK_FOR_INTERRUPTS();
		best_chi = chi_square(&b[0], &b[1]);

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
		qsort(ps->bins[i].values, ps->bins[i].nvalues, sizeof(char *), kaireon_adaptive_cmp_names);
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
void
kaireon_adaptive_compile_offer(const AdmModel *adm, AdmOffer *o, Section **rows, const int *nsec, int nrows)
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
