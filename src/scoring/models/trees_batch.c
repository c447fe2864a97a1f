/*
 * scoring/models/trees_batch.c
 *	  score_batch of gradient_boosted: a decision's candidates scored at once,
 *	  by the leaves the shared (customer) features allow and per-row caches of
 *	  the leaves each row's own (offer) features allow, or tree by tree over
 *	  reduced trees.
 *
 * Protocol (ModelOps.score_batch, model.h): rows of feature values, the
 * features shared by every row (their values read from row 0) and the rows'
 * ids (hints for the cache of allowed leaves, checked against the values);
 * out[r] equals trees_score of row r bit for bit.  The cache lives in the
 * compiled model (TreeModel.row_cxt) and is emptied only between batches.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "port/pg_bitutils.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "scoring/models/trees_internal.h"

/* At most this many features of a row's own (not shared) key the cache of its allowed leaves. */
#define ROW_KEY_VALUES 8
/* The cache of allowed leaves is emptied, between batches, once it has passed this size. */
#define ROW_LEAVES_MAX_BYTES (16 * 1024 * 1024)

/* A row's own feature values (the shared ones masked out) and which features are shared. */
typedef struct RowKey
{
	uint64		shared;			/* bit f: feature f is shared */
	int32		nown;			/* the number of values in v */
	int32		pad;
	double		v[ROW_KEY_VALUES];	/* the values of the other features, in order, as given;
									 * the rest zero */
} RowKey;

/* Hash of a RowKey: of its used part only (the rest is zero in every key). */
static uint32
row_key_hash(const void *key, Size keysize)
{
	const RowKey *k = key;

	return hash_bytes((const unsigned char *) k, offsetof(RowKey, v) + sizeof(double) * k->nown);
}

/* The leaves each tree allows a row with that key, whatever the shared features' values. */
typedef struct RowLeaves
{
	RowKey		key;
	uint64	   *allowed;		/* per tree */
} RowLeaves;

/*
 * The node a subject reaches from node i while the splits read only shared
 * features (their values in x0, row 0's: the same in every row): the first
 * split on a feature of the row's own, or a leaf.
 */
static inline int
resolve_shared(const TreeModel *m, const Tree *t, int i, const bool *shared, const float *x0f,
			   const double *x0)
{
	const FastNode *nodes = t->fast;
	int			f;

	while ((f = nodes[i].feature) >= 0 && shared[f])
	{
		const FastNode *n = &nodes[i];
		int			right;

		if (m->format == TF_XGBOOST)
			right = isnan(x0f[f]) ? n->default_right : !(x0f[f] < n->thr32);
		else
			right = lgb_right(n, x0[f]);
		i = n->left + right;
	}
	return i;
}

/*
 * The part of tree t that subjects with the shared features' values can
 * reach, in out (the prediction layout: children adjacent): every split on a
 * shared feature replaced by the child those values take.  The walk of a row
 * through it makes the same comparisons on its own features, in the same
 * order, and reaches the same leaf as through the whole tree.  Returns the
 * number of nodes (at most t->nnodes); src is scratch of t->nnodes ints.
 */
static int
reduce_tree(const TreeModel *m, const Tree *t, const bool *shared, const float *x0f, const double *x0,
			FastNode *out, int *src)
{
	int			head = 0,
				next = 1;

	src[0] = resolve_shared(m, t, 0, shared, x0f, x0);
	while (head < next)
	{
		const FastNode *n = &t->fast[src[head]];

		out[head] = *n;
		if (n->feature >= 0)
		{
			out[head].left = next;
			src[next] = resolve_shared(m, t, n->left, shared, x0f, x0);
			src[next + 1] = resolve_shared(m, t, n->left + 1, shared, x0f, x0);
			next += 2;
		}
		head++;
	}
	return head;
}

/* Does a value go right at split node n (either format)? */
static inline int
goes_right(const TreeModel *m, const FastNode *n, float xf, double xd)
{
	if (m->format == TF_XGBOOST)
		return isnan(xf) ? n->default_right : !(xf < n->thr32);
	return lgb_right(n, xd);
}

/*
 * shared_leaves' walk, for one format (xgb a constant where it is inlined):
 * depth first, going on to the left child at once and keeping the right one
 * for later (at most one pending node per level: a tree of at most 64 leaves
 * is at most 63 levels deep).
 */
static pg_attribute_always_inline uint64
walk_shared(const Tree *t, const bool *shared, const float *x0f, const double *x0, bool xgb)
{
	const FastNode *nodes = t->fast;
	int			stack[64];
	int			sp = 0;
	int			i = 0;
	uint64		leaves = 0;

	for (;;)
	{
		const FastNode *n = &nodes[i];
		int			f = n->feature;

		if (f < 0)
		{
			leaves |= t->below[i];
			if (sp == 0)
				return leaves;
			i = stack[--sp];
		}
		else if (shared[f])
			i = n->left + (xgb ? (isnan(x0f[f]) ? n->default_right : !(x0f[f] < n->thr32)) : lgb_right(n, x0[f]));
		else
		{
			stack[sp++] = n->left + 1;
			i = n->left;
		}
	}
}

/*
 * The leaves of tree t that the shared features' values (row 0's) allow: the
 * leaves below the nodes a walk reaches when it follows the shared features'
 * splits and takes both ways at every other split.
 */
static uint64
shared_leaves(const TreeModel *m, const Tree *t, const bool *shared, const float *x0f, const double *x0)
{
	if (m->format == TF_XGBOOST)
		return walk_shared(t, shared, x0f, x0, true);
	return walk_shared(t, shared, x0f, x0, false);
}

/*
 * The same leaves as shared_leaves, found split group by split group: all
 * leaves but those on the side not taken at each split on a shared feature
 * (the walk's leaves are exactly those: a leaf lies below a split only when
 * the split is its ancestor).  A value that is not missing (nor, for
 * LightGBM, zero) goes right at a group's first j splits, j found by a binary
 * search (XGBoost: threshold <= value; LightGBM: threshold < value); other
 * values are taken split by split (goes_right).
 */
static pg_attribute_always_inline uint64
group_leaves(const TreeModel *m, const Tree *t, const bool *shared, const float *x0f, const double *x0,
			 bool xgb)
{
	uint64		acc = ~UINT64CONST(0);

	for (int g = 0; g < t->ngroups; g++)
	{
		const SplitGroup *sg = &t->groups[g];
		int			f = sg->feature;
		int			lo = 0,
					n = sg->n;

		if (!shared[f])
			continue;
		if (xgb ? isnan(x0f[f]) : isnan(x0[f]) || (x0[f] >= -LGB_ZERO && x0[f] <= LGB_ZERO))
		{
			for (int k = 0; k < sg->n; k++)
			{
				const FastNode *nd = &t->fast[sg->node[k]];

				acc &= ~t->below[nd->left + !goes_right(m, nd, xgb ? x0f[f] : 0, x0[f])];
			}
			continue;
		}
		while (n > 0)
		{
			int			half = n >> 1;

			if (xgb ? sg->thr32[lo + half] <= x0f[f] : sg->thr[lo + half] < x0[f])
			{
				lo += half + 1;
				n -= half + 1;
			}
			else
				n = half;
		}
		acc &= sg->mask[lo];
	}
	return acc;
}

/*
 * Choose, per tree, how its shared features' leaves are found for these shared
 * features: by group_leaves when its estimated cost (per group of a shared
 * feature, a binary search) is below the walk's (per node the walk is
 * expected to visit, taking one way at a shared split, both at the others).
 * Both give the same leaves; the choice only moves the cost.
 */
static void
plan_shared_leaves(TreeModel *m, const bool *shared, uint64 shared_bits)
{
	for (int t = 0; t < m->ntrees; t++)
	{
		Tree	   *tr = &m->trees[t];
		double	   *reach = palloc(sizeof(double) * tr->nnodes);
		double		walk = 0,
					groups = 0;

		reach[0] = 1;
		for (int i = 0; i < tr->nnodes; i++)
		{
			const FastNode *n = &tr->fast[i];

			walk += 6 * reach[i];
			if (n->feature >= 0)
				reach[n->left] = reach[n->left + 1] = shared[n->feature] ? reach[i] / 2 : reach[i];
		}
		for (int g = 0; g < tr->ngroups; g++)
			if (shared[tr->groups[g].feature])
				groups += 10 + 8 * (pg_leftmost_one_pos32((uint32) tr->groups[g].n) + 1);
		tr->by_groups = groups < walk;
		pfree(reach);
	}
	m->plan_shared = shared_bits;
	m->plan_made = true;
}

/*
 * The leaves each tree allows a row's own features: all leaves but those on
 * the side its values do not take at a split on one of them.  Kept per model
 * by the values (key: the row's own values as doubles, and which features are
 * shared), since a row's own features are mostly an offer's, which come back
 * with every decision; nothing can go stale (a model that changes is compiled
 * anew, with an empty cache).  xf and xd are the row's values (xf NULL for
 * LightGBM).
 */
static RowLeaves *
row_leaves(TreeModel *m, const RowKey *key, const bool *shared, const float *xf, const double *xd)
{
	RowLeaves  *e;
	bool		found;
	uint64	   *allowed;

	if (m->row_leaves == NULL)
	{
		HASHCTL		ctl;

		if (m->row_cxt == NULL)
			m->row_cxt = AllocSetContextCreate(m->cxt, "kaireon tree leaves by row", ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(RowKey);
		ctl.entrysize = sizeof(RowLeaves);
		ctl.hash = row_key_hash;
		ctl.match = memcmp;
		ctl.hcxt = m->row_cxt;
		m->row_leaves = hash_create("kaireon tree leaves by row", 256, &ctl,
									HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
		m->nrow_leaves = 0;
	}
	e = hash_search(m->row_leaves, key, HASH_FIND, &found);
	if (found)
		return e;
	/* computed before the entry is made: an error on the way leaves no entry behind */
	allowed = MemoryContextAlloc(m->row_cxt, sizeof(uint64) * m->ntrees);
	for (int t = 0; t < m->ntrees; t++)
	{
		const Tree *tr = &m->trees[t];

		allowed[t] = ~UINT64CONST(0);
		for (int i = 0; i < tr->nnodes; i++)
		{
			const FastNode *n = &tr->fast[i];

			if (n->feature >= 0 && !shared[n->feature])
				allowed[t] &= ~tr->below[n->left + !goes_right(m, n, xf ? xf[n->feature] : 0, xd[n->feature])];
		}
	}
	e = hash_search(m->row_leaves, key, HASH_ENTER, &found);
	e->allowed = allowed;
	m->nrow_leaves++;
	return e;
}

/*
 * The entry of row_leaves for a row the caller names row id (see
 * kaireon_model_score_batch): the one last found for that id when its key is
 * the row's (the id is only a hint, the values decide), else row_leaves'.
 */
static const uint64 *
row_leaves_by_id(TreeModel *m, int id, const RowKey *key, const bool *shared, const float *xf,
				 const double *xd)
{
	RowLeaves  *e;

	if (id >= 0 && id < m->nby_id && (e = m->by_id[id]) != NULL && e->key.shared == key->shared &&
		e->key.nown == key->nown)
	{
		int			k = 0;

		/* the values' bits, as the hash table's memcmp compares them */
		while (k < key->nown && memcmp(&e->key.v[k], &key->v[k], sizeof(double)) == 0)
			k++;
		if (k == key->nown)
			return e->allowed;
	}
	e = row_leaves(m, key, shared, xf, xd);
	if (id >= 0)
	{
		if (id >= m->nby_id)
		{
			int			n = Max(id + 1, 2 * m->nby_id);

			m->by_id = m->by_id == NULL ? MemoryContextAllocZero(m->row_cxt, sizeof(RowLeaves *) * n) :
				repalloc(m->by_id, sizeof(RowLeaves *) * n);
			memset(m->by_id + m->nby_id, 0, sizeof(RowLeaves *) * (n - m->nby_id));
			m->nby_id = n;
		}
		m->by_id[id] = e;
	}
	return e->allowed;
}

/*
 * Empty the cache of allowed leaves when it has passed its size: only between
 * batches, since a batch keeps pointers to the entries it was given (a batch
 * adds at most one entry per row beyond the size).
 */
static void
row_leaves_trim(TreeModel *m)
{
	if (m->row_leaves != NULL &&
		m->nrow_leaves * (long) (sizeof(RowLeaves) + sizeof(uint64) * m->ntrees) > ROW_LEAVES_MAX_BYTES)
	{
		MemoryContextReset(m->row_cxt);
		m->row_leaves = NULL;
		m->by_id = NULL;
		m->nby_id = 0;
	}
}

/*
 * sum plus, tree by tree in order, the value of the one leaf that both sets
 * allow (shared[t] & own[t]): tree t's leaf values at v + (t << shift).  Four
 * trees a step, the additions in order; with a constant shift (the functions
 * for depth 6 below, kept apart so that the compiler does not merge them back
 * into the general one) each load's place is a displacement.
 */
#define SUM_LEAVES(type, v, shift, shared, own, ntrees, sum) \
	do { \
		const uint64 *s_ = (shared), *o_ = (own), *end_ = s_ + ((ntrees) & ~3); \
		const type *v_ = (v); \
		for (; s_ < end_; s_ += 4, o_ += 4, v_ += 4 << (shift)) \
		{ \
			(sum) += v_[(uint32) pg_rightmost_one_pos64(s_[0] & o_[0])]; \
			(sum) += (v_ + (1 << (shift)))[(uint32) pg_rightmost_one_pos64(s_[1] & o_[1])]; \
			(sum) += (v_ + (2 << (shift)))[(uint32) pg_rightmost_one_pos64(s_[2] & o_[2])]; \
			(sum) += (v_ + (3 << (shift)))[(uint32) pg_rightmost_one_pos64(s_[3] & o_[3])]; \
		} \
		for (end_ = (shared) + (ntrees); s_ < end_; s_++, o_++, v_ += 1 << (shift)) \
			(sum) += v_[(uint32) pg_rightmost_one_pos64(s_[0] & o_[0])]; \
	} while (0)

/* SUM_LEAVES in float (XGBoost), any shift. */
static pg_noinline float
sum_leaves32(const float *v, int shift, const uint64 *shared, const uint64 *own, int ntrees, float sum)
{
	SUM_LEAVES(float, v, shift, shared, own, ntrees, sum);
	return sum;
}

/* SUM_LEAVES in float, trees of 33 to 64 leaves (depth 6). */
static pg_noinline float
sum_leaves32_64(const float *v, const uint64 *shared, const uint64 *own, int ntrees, float sum)
{
	SUM_LEAVES(float, v, 6, shared, own, ntrees, sum);
	return sum;
}

/* SUM_LEAVES in double (LightGBM), any shift. */
static pg_noinline double
sum_leaves64(const double *v, int shift, const uint64 *shared, const uint64 *own, int ntrees, double sum)
{
	SUM_LEAVES(double, v, shift, shared, own, ntrees, sum);
	return sum;
}

/* SUM_LEAVES in double, trees of 33 to 64 leaves. */
static pg_noinline double
sum_leaves64_64(const double *v, const uint64 *shared, const uint64 *own, int ntrees, double sum)
{
	SUM_LEAVES(double, v, 6, shared, own, ntrees, sum);
	return sum;
}

/*
 * The margins of the rows of a batch by leaf sets (trees of at most 64
 * leaves, at most ROW_KEY_VALUES own features): the leaf a row reaches is the
 * one leaf both the shared features' values and the row's own allow (each
 * excludes the side not taken at each of its splits, and any other leaf lies
 * on the side not taken at its last common ancestor with the leaf reached),
 * so a row costs an AND and a lowest-bit per tree once the leaves its own
 * values allow are known (row_leaves_by_id).  Steps: the shared features'
 * leaves per tree (once); each row's own leaves; then row by row its leaves
 * added in tree order onto the base margin, into fsum (XGBoost) or dsum.
 */
static void
leaf_set_margins(TreeModel *m, int nf, const KaireonValue *values, int nrows, const int *row_ids,
				 const bool *shared, float *fsum, double *dsum)
{
	bool		xgb = m->format == TF_XGBOOST;
	int			ntrees = m->ntrees;
	int			shift = m->leaf_shift;
	uint64	   *leaves = palloc(sizeof(uint64) * ntrees);
	const uint64 **allowed = palloc(sizeof(uint64 *) * nrows);
	double	   *xd = palloc(sizeof(double) * nf);
	float	   *xf = xgb ? palloc(sizeof(float) * nf) : NULL;
	int			own[ROW_KEY_VALUES];
	RowKey		key;

	/* the shared features' values (row 0's, the same in every row) and the leaves they allow */
	memset(&key, 0, sizeof(key));
	for (int f = 0; f < nf; f++)
	{
		xd[f] = kv_number(&values[f]);
		if (xgb)
			xf[f] = (float) xd[f];
		if (shared[f])
			key.shared |= UINT64CONST(1) << f;
		else
			own[key.nown++] = f;
	}
	if (!m->plan_made || m->plan_shared != key.shared)
		plan_shared_leaves(m, shared, key.shared);
	for (int t = 0; t < ntrees; t++)
	{
		const Tree *tr = &m->trees[t];

		if (!tr->by_groups)
			leaves[t] = shared_leaves(m, tr, shared, xf, xd);
		else if (xgb)
			leaves[t] = group_leaves(m, tr, shared, xf, xd, true);
		else
			leaves[t] = group_leaves(m, tr, shared, xf, xd, false);
	}

	/* each row's own leaves: by its id when its values are those of the id's last row */
	row_leaves_trim(m);
	for (int r = 0; r < nrows; r++)
	{
		const KaireonValue *row = values + (size_t) r * nf;

		for (int k = 0; k < key.nown; k++)
		{
			xd[own[k]] = kv_number(&row[own[k]]);
			if (xgb)
				xf[own[k]] = (float) xd[own[k]];
			key.v[k] = xd[own[k]];
		}
		allowed[r] = row_leaves_by_id(m, row_ids ? row_ids[r] : -1, &key, shared, xf, xd);
	}

	/* the leaves, row by row in tree order (one leaf is allowed by both: never an empty set) */
	for (int r = 0; r < nrows; r++)
	{
		if (xgb)
			fsum[r] = shift == 6 ? sum_leaves32_64(m->leaf_value32, leaves, allowed[r], ntrees, (float) m->base_margin)
				: sum_leaves32(m->leaf_value32, shift, leaves, allowed[r], ntrees, (float) m->base_margin);
		else
			dsum[r] = shift == 6 ? sum_leaves64_64(m->leaf_value, leaves, allowed[r], ntrees, m->base_margin)
				: sum_leaves64(m->leaf_value, shift, leaves, allowed[r], ntrees, m->base_margin);
	}
	pfree(leaves);
	pfree(allowed);
	pfree(xd);
	if (xf)
		pfree(xf);
}

/*
 * score_batch: the rows' predictions, by leaf sets where the trees and the
 * features allow (leaf_set_margins), else tree by tree over all rows (each
 * tree's nodes stay in the cache while every row walks it), each tree first
 * reduced by the shared features when some are shared and there are rows
 * enough to pay for it.  Every row's leaves are added in tree order onto the
 * base margin, in the same precision as trees_predict, so each score equals
 * trees_score of its row bit for bit.
 */
void
kaireon_trees_score_batch(const ModelImpl *impl, const KaireonValue *values, int nrows, const char *const *arms,
						  const bool *shared, const int *row_ids, double *out)
{
	TreeModel  *m = (TreeModel *) impl->data;
	int			nf = impl->nfeatures;
	bool		xgb = m->format == TF_XGBOOST;
	bool		any_shared = false;
	int			nown = 0;
	float	   *fsum = xgb ? palloc(sizeof(float) * nrows) : NULL;
	double	   *dsum = xgb ? NULL : palloc(sizeof(double) * nrows);

	for (int f = 0; shared != NULL && f < nf; f++)
		any_shared |= shared[f];
	for (int f = 0; any_shared && f < nf; f++)
		nown += !shared[f];
	if (any_shared && m->leaf_sets && nf <= 64 && nown <= ROW_KEY_VALUES)
		leaf_set_margins(m, nf, values, nrows, row_ids, shared, fsum, dsum);
	else
	{
		double	   *xd = palloc(sizeof(double) * (size_t) nrows * nf);
		float	   *xf = xgb ? palloc(sizeof(float) * (size_t) nrows * nf) : NULL;
		FastNode   *reduced = NULL;
		int		   *src = NULL;
		int			maxnodes = 1;

		/* feature rows laid out one after the other, as the library's own types */
		for (int r = 0; r < nrows; r++)
		{
			for (int f = 0; f < nf; f++)
			{
				xd[(size_t) r * nf + f] = kv_number(&values[(size_t) r * nf + f]);
				if (xgb)
					xf[(size_t) r * nf + f] = (float) xd[(size_t) r * nf + f];
			}
			if (xgb)
				fsum[r] = (float) m->base_margin;
			else
				dsum[r] = m->base_margin;
		}
		for (int t = 0; t < m->ntrees; t++)
			maxnodes = Max(maxnodes, m->trees[t].nnodes);
		/* reducing a tree costs at most its nodes, once; walking it costs its depth per row */
		if (any_shared && nrows >= 8)
		{
			reduced = palloc(sizeof(FastNode) * maxnodes);
			src = palloc(sizeof(int) * maxnodes);
		}
		for (int t = 0; t < m->ntrees; t++)
		{
			Tree		walk = m->trees[t];

			if (reduced != NULL)
			{
				walk.nnodes = reduce_tree(m, &m->trees[t], shared, xf, xd, reduced, src);
				walk.fast = reduced;
			}
			if (xgb)
				for (int r = 0; r < nrows; r++)
					fsum[r] += (float) xgb_leaf(&walk, xf + (size_t) r * nf);
			else
				for (int r = 0; r < nrows; r++)
					dsum[r] += lgb_leaf(&walk, xd + (size_t) r * nf);
		}
		pfree(xd);
		if (xf)
			pfree(xf);
		if (reduced)
		{
			pfree(reduced);
			pfree(src);
		}
	}
	for (int r = 0; r < nrows; r++)
	{
		if (xgb && m->transform == TT_SIGMOID && isnan(fsum[r]))
			out[r] = fsum[r];	/* as trees_predict: a NaN stays NaN (fminf would drop it) */
		else if (xgb && m->transform == TT_SIGMOID)
		{
			/* as trees_predict: XGBoost's logistic in float, clamped against overflow */
			float		e = expf(fminf(-fsum[r], 88.7f));

			out[r] = (double) (1.0f / (e + 1.0f));
		}
		else if (xgb)
			out[r] = fsum[r];
		else
			out[r] = lgb_output(m, dsum[r]);
	}
	if (fsum)
		pfree(fsum);
	if (dsum)
		pfree(dsum);
}
