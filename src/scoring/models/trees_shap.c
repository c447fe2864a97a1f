/*
 * scoring/models/trees_shap.c
 *	  TreeSHAP values of a gradient_boosted model, for explain_score (trees.c).
 *
 * explain_score returns TreeSHAP values (Lundberg, Erion and Lee, "Consistent
 * individualized feature attribution for tree ensembles", 2018, algorithm 2):
 * exact Shapley values of the margin under the trees' own cover-weighted
 * conditional expectations, plus the expected value (base margin plus each
 * tree's cover-weighted mean leaf value), in double precision.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "scoring/models/trees_internal.h"

/* Which child of split node n a LightGBM value goes to (original layout, for TreeSHAP). */
static inline int
lgb_child(const TreeNode *n, double fv)
{
	if (isnan(fv) && n->missing != MISSING_NAN)
		fv = 0.0;
	if ((n->missing == MISSING_ZERO && fv >= -LGB_ZERO && fv <= LGB_ZERO) ||
		(n->missing == MISSING_NAN && isnan(fv)))
		return n->default_left ? n->left : n->right;
	return fv <= n->value ? n->left : n->right;
}

/* Which child of split node i the subject goes to (either format). */
static inline int
hot_child(const TreeModel *m, const TreeNode *n, const double *x)
{
	if (m->format == TF_XGBOOST)
	{
		float		fv = (float) x[n->feature];

		if (isnan(fv))
			return n->default_left ? n->left : n->right;
		return fv < n->thr32 ? n->left : n->right;
	}
	return lgb_child(n, x[n->feature]);
}

/* One element of the path of unique features from the root. */
typedef struct PathElem
{
	int			feature;		/* -1 for the root's placeholder */
	double		zero_frac;		/* share of cover that follows this path */
	double		one_frac;		/* 1 when the subject follows this path, else 0 */
	double		weight;			/* permutation weight */
} PathElem;

/* Grow the path (length len) by one feature; the new length is len + 1. */
static void
path_extend(PathElem *p, int len, double zero_frac, double one_frac, int feature)
{
	int			i;

	p[len].feature = feature;
	p[len].zero_frac = zero_frac;
	p[len].one_frac = one_frac;
	p[len].weight = len == 0 ? 1.0 : 0.0;
	for (i = len - 1; i >= 0; i--)
	{
		p[i + 1].weight += one_frac * p[i].weight * (i + 1) / (double) (len + 1);
		p[i].weight = zero_frac * p[i].weight * (len - i) / (double) (len + 1);
	}
}

/* Undo the extension of element k of a path of length len (new length len - 1). */
static void
path_unwind(PathElem *p, int len, int k)
{
	double		one = p[k].one_frac,
				zero = p[k].zero_frac;
	double		next = p[len - 1].weight;
	int			j;

	for (j = len - 2; j >= 0; j--)
	{
		if (one != 0)
		{
			double		w = p[j].weight;

			p[j].weight = next * len / ((j + 1) * one);
			next = w - p[j].weight * zero * (len - 1 - j) / (double) len;
		}
		else
			p[j].weight = p[j].weight * len / (zero * (len - 1 - j));
	}
	for (j = k; j < len - 1; j++)
	{
		p[j].feature = p[j + 1].feature;
		p[j].zero_frac = p[j + 1].zero_frac;
		p[j].one_frac = p[j + 1].one_frac;
	}
}

/* Total weight of the path with element k unwound, leaving the path unchanged. */
static double
path_unwound_sum(const PathElem *p, int len, int k)
{
	double		one = p[k].one_frac,
				zero = p[k].zero_frac;
	double		next = p[len - 1].weight;
	double		total = 0;
	int			j;

	for (j = len - 2; j >= 0; j--)
	{
		if (one != 0)
		{
			double		w = next * len / ((j + 1) * one);

			total += w;
			next = p[j].weight - w * zero * (len - 1 - j) / (double) len;
		}
		else
			total += p[j].weight * len / (zero * (len - 1 - j));
	}
	return total;
}

/*
 * The recursion of algorithm 2: p (length len) is the parent's path, copied into
 * this level's slot (each level owns maxlen elements after the parent's).
 */
static void
shap_recurse(const TreeModel *m, const Tree *t, const double *x, double *phi, int node,
			 PathElem *parent, int len, double zero_frac, double one_frac, int feature, int maxlen)
{
	PathElem   *p = parent + maxlen;
	const TreeNode *n = &t->nodes[node];
	int			i;

	memcpy(p, parent, sizeof(PathElem) * len);
	path_extend(p, len, zero_frac, one_frac, feature);
	len++;

	if (n->feature < 0)
	{
		for (i = 1; i < len; i++)
		{
			double		w = path_unwound_sum(p, len, i);

			phi[p[i].feature] += w * (p[i].one_frac - p[i].zero_frac) * n->value;
		}
		return;
	}
	else
	{
		int			hot = hot_child(m, n, x);
		int			cold = hot == n->left ? n->right : n->left;
		double		cover = t->cover[node];
		double		in_zero = 1.0,
					in_one = 1.0;
		double		hz,
					cz;

		/* a feature seen higher up is unwound, and its fractions carried down */
		for (i = 1; i < len; i++)
			if (p[i].feature == n->feature)
			{
				in_zero = p[i].zero_frac;
				in_one = p[i].one_frac;
				path_unwind(p, len, i);
				len--;
				break;
			}
		hz = cover > 0 ? t->cover[hot] / cover : 0.5;
		cz = cover > 0 ? t->cover[cold] / cover : 0.5;
		shap_recurse(m, t, x, phi, hot, p, len, in_zero * hz, in_one, n->feature, maxlen);
		shap_recurse(m, t, x, phi, cold, p, len, in_zero * cz, 0.0, n->feature, maxlen);
	}
}

/*
 * TreeSHAP values of the margin: phi[0..nf-1] per feature, and *expected the
 * base margin plus each tree's mean; they add up to the margin.
 */
void
kaireon_trees_shap(const TreeModel *m, const double *x, int nf, double *phi, double *expected)
{
	int			maxlen = m->max_depth + 2;
	PathElem   *buf = palloc0(sizeof(PathElem) * maxlen * (maxlen + 2));
	int			t;

	memset(phi, 0, sizeof(double) * nf);
	*expected = m->base_margin;
	for (t = 0; t < m->ntrees; t++)
	{
		const Tree *tr = &m->trees[t];

		*expected += tr->mean[0];
		if (tr->nodes[0].feature < 0)
			continue;			/* a lone leaf only shifts the expected value */
		shap_recurse(m, tr, x, phi, 0, buf, 0, 1.0, 1.0, -1, maxlen);
		CHECK_FOR_INTERRUPTS();
	}
	pfree(buf);
}
