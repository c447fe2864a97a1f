/*
 * models/trees.c
 *	  gradient_boosted: tree ensembles imported from XGBoost and LightGBM
 *	  (models/trees_import.c turns their files into the canonical model_state
 *	  read here), their predictions and TreeSHAP explanations.
 *
 * Predictions reproduce the source library's arithmetic, so kaireon's score
 * equals the library's own prediction:
 *   - XGBoost works in single precision: a feature value is rounded to float,
 *     a split sends it left when value < threshold (both float), a missing
 *     value follows the node's default direction, and leaf values are summed
 *     in float onto the base margin, then the logistic function is applied in
 *     float for logistic objectives.
 *   - LightGBM works in double precision: left when value <= threshold; with
 *     missing type "None" a missing value counts as 0, with "Zero" a zero or
 *     missing value follows the default direction, with "NaN" a missing value
 *     does (zero meaning |value| <= 1e-35f, LightGBM's float constant); leaves
 *     are summed in double, then the objective's output conversion: sigmoid(scale
 *     * sum) for binary, sigmoid(sum) for cross_entropy, log(1 + e^sum) for
 *     cross_entropy_lambda, e^sum for poisson, gamma and tweedie, sign(sum) *
 *     sum^2 for the regressions trained with sqrt, else the sum itself.
 *
 * explain_score returns TreeSHAP values (Lundberg, Erion and Lee, "Consistent
 * individualized feature attribution for tree ensembles", 2018, algorithm 2):
 * exact Shapley values of the margin under the trees' own cover-weighted
 * conditional expectations, plus the expected value (base margin plus each
 * tree's cover-weighted mean leaf value), in double precision.
 */
#include "postgres.h"

#include <math.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "scoring/models/model.h"

#define WHERE_DEFAULT "algorithm_models.model_state"

typedef enum TreeFormat
{
	TF_XGBOOST,
	TF_LIGHTGBM
} TreeFormat;

/* How the margin becomes the output (the objective's ConvertOutput). */
typedef enum TreeTransform
{
	TT_IDENTITY,				/* raw sum */
	TT_SIGMOID,					/* 1 / (1 + e^(-scale * sum)) */
	TT_SIGNED_SQUARE,			/* sign(sum) * sum^2: LightGBM regression with sqrt */
	TT_EXP,						/* e^sum: LightGBM poisson, gamma, tweedie */
	TT_SOFTPLUS					/* log(1 + e^sum): LightGBM cross_entropy_lambda */
} TreeTransform;

typedef enum MissingType
{
	MISSING_NONE = 0,			/* LightGBM: missing counts as 0 */
	MISSING_ZERO = 1,			/* LightGBM: 0 and missing take the default */
	MISSING_NAN = 2				/* missing takes the default (XGBoost always) */
} MissingType;

/*
 * LightGBM's kZeroThreshold is the float literal 1e-35f; compared with a double feature value
 * it is widened to 1.0000000180025095e-35, which is the bound LightGBM really uses.
 */
#define LGB_ZERO ((double) 1e-35f)

/* One node; a leaf has feature -1 and its value in value. */
typedef struct TreeNode
{
	int32		feature;
	int32		left;
	int32		right;
	float		thr32;			/* XGBoost threshold */
	uint8		default_left;
	uint8		missing;		/* MissingType */
	double		value;			/* LightGBM threshold, or the leaf value */
} TreeNode;

/*
 * The prediction layout of a node: the tree renumbered breadth-first so that a
 * node's children are adjacent (right = left + 1), which turns each step into
 * "left + went_right" without a branch on the comparison.
 */
typedef struct FastNode
{
	double		value;			/* LightGBM threshold, or the leaf value */
	float		thr32;			/* XGBoost threshold */
	int32		feature;		/* -1 for a leaf */
	int32		left;
	uint8		default_right;
	uint8		missing;
} FastNode;

/*
 * The splits of one tree on one feature, for the leaves a value allows
 * (group_leaves): ordered by threshold, so that a value that is not missing
 * goes right at the first j of them and left at the others, j found by a
 * binary search, and mask[j] holds the leaves that allows.
 */
typedef struct SplitGroup
{
	int			feature;
	int			n;				/* splits on the feature */
	float	   *thr32;			/* their thresholds, ascending (XGBoost; else NULL) */
	double	   *thr;			/* (LightGBM; else NULL) */
	int32	   *node;			/* their nodes (prediction layout), in the same order */
	uint64	   *mask;			/* n + 1 leaf sets */
} SplitGroup;

typedef struct Tree
{
	int			nnodes;
	int			depth;			/* longest root-to-leaf path, in edges */
	FastNode   *fast;			/* prediction layout */
	uint64	   *below;			/* per node of fast: the leaves below it (itself for a leaf), as bits
								 * of their numbers; NULL when the tree has more than 64 leaves */
	SplitGroup *groups;			/* with below: the splits by feature, by feature */
	int			ngroups;
	bool		by_groups;		/* the plan for TreeModel.plan_shared: the shared features' leaves
								 * by group_leaves (else by shared_leaves' walk) */
	TreeNode   *nodes;			/* original layout (TreeSHAP) */
	double	   *cover;			/* per node: training weight (hessian sum or count) */
	double	   *mean;			/* per node: cover-weighted mean leaf value below it */
} Tree;

typedef struct TreeModel
{
	TreeFormat	format;
	TreeTransform transform;	/* margin to output */
	double		sigmoid_scale;	/* LightGBM's sigmoid parameter */
	double		base_margin;
	int			ntrees;
	int			max_depth;
	Tree	   *trees;
	bool		leaf_sets;		/* every tree has at most 64 leaves (Tree.below) */
	/*
	 * with leaf_sets, the leaf values of every tree in one array, tree t's leaf k at
	 * (t << leaf_shift) + k, 2^leaf_shift the most leaves of a tree (in the library's
	 * precision: float for XGBoost, double for LightGBM; the other NULL)
	 */
	int			leaf_shift;
	float	   *leaf_value32;
	double	   *leaf_value;
	MemoryContext cxt;			/* the compiled model's context */
	/* the leaves each tree allows a row's own features (see trees_score_batch), by their values */
	MemoryContext row_cxt;
	HTAB	   *row_leaves;
	long		nrow_leaves;
	/* the same entries by the caller's row ids (hints, checked against the values), or NULL */
	struct RowLeaves **by_id;
	int			nby_id;
	/* which features were shared when the trees' by_groups were chosen (plan_made) */
	uint64		plan_shared;
	bool		plan_made;
} TreeModel;

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

/* Read one per-node numeric array of length n (xgboost ints and floats both). */
static double *
read_array(const char *where, json_t *tree, const char *path, const char *key, int n, bool required)
{
	json_t	   *arr = model_get(where, tree, path, key, JSON_ARRAY, required);
	double	   *out;
	size_t		i;
	json_t	   *v;

	if (arr == NULL)
		return NULL;
	if ((int) json_array_size(arr) != n)
		model_error(where, path, "field \"%s\" has %zu entries, not %d (one per node)",
					key, json_array_size(arr), n);
	out = palloc(sizeof(double) * Max(n, 1));
	json_array_foreach(arr, i, v)
	{
		if (json_is_boolean(v))
			out[i] = json_is_true(v) ? 1 : 0;
		else if (json_is_number(v) && isfinite(json_number_value(v)))
			out[i] = json_number_value(v);
		else
			model_error(where, path, "field \"%s\" entry %zu must be a finite number, not %s",
						key, i, kj_type_name(v));
	}
	return out;
}

/* Cover-weighted mean leaf value below node i (children have larger indices). */
static void
compute_means(Tree *t)
{
	int			i;

	t->mean = palloc(sizeof(double) * t->nnodes);
	for (i = t->nnodes - 1; i >= 0; i--)
	{
		TreeNode   *n = &t->nodes[i];

		if (n->feature < 0)
			t->mean[i] = n->value;
		else
		{
			double		cl = t->cover[n->left],
						cr = t->cover[n->right];
			double		c = cl + cr;

			t->mean[i] = c > 0 ? (cl * t->mean[n->left] + cr * t->mean[n->right]) / c
				: (t->mean[n->left] + t->mean[n->right]) / 2;
		}
	}
}

/* Renumber the tree breadth-first into the prediction layout. */
static void
build_fast(Tree *t)
{
	int		   *queue = palloc(sizeof(int) * t->nnodes);	/* original ids, by new id */
	int			head = 0,
				next = 1;

	t->fast = palloc0(sizeof(FastNode) * t->nnodes);
	queue[0] = 0;
	while (head < next)
	{
		const TreeNode *n = &t->nodes[queue[head]];
		FastNode   *f = &t->fast[head];

		f->feature = n->feature;
		f->value = n->value;
		f->thr32 = n->thr32;
		f->default_right = !n->default_left;
		f->missing = n->missing;
		if (n->feature >= 0)
		{
			/* a node reached twice would overflow the queue: each node has one parent */
			if (next + 2 > t->nnodes)
				model_error("algorithm_models.model_state", "trees", "has a node with two parents");
			f->left = next;
			queue[next++] = n->left;
			queue[next++] = n->right;
		}
		head++;
	}
	pfree(queue);
}

/*
 * Number the leaves of the prediction layout (breadth first) and note, per
 * node, the set of leaves below it, when there are at most 64 (Tree.below).
 */
static void
number_leaves(Tree *t)
{
	int			nleaves = 0;

	for (int i = 0; i < t->nnodes; i++)
		nleaves += t->fast[i].feature < 0;
	if (nleaves > 64)
		return;
	t->below = palloc0(sizeof(uint64) * t->nnodes);
	nleaves = 0;
	for (int i = 0; i < t->nnodes; i++)
		if (t->fast[i].feature < 0)
			t->below[i] = UINT64CONST(1) << nleaves++;
	/* children come after their parent in breadth-first order */
	for (int i = t->nnodes - 1; i >= 0; i--)
		if (t->fast[i].feature >= 0)
			t->below[i] = t->below[t->fast[i].left] | t->below[t->fast[i].left + 1];
}

/* qsort_arg order of split nodes (prediction layout): by feature, then threshold, then place. */
static int
split_cmp(const void *a, const void *b, void *arg)
{
	const Tree *t = (const Tree *) ((void **) arg)[0];
	bool		xgb = *(const bool *) ((void **) arg)[1];
	const FastNode *x = &t->fast[*(const int32 *) a];
	const FastNode *y = &t->fast[*(const int32 *) b];

	if (x->feature != y->feature)
		return x->feature < y->feature ? -1 : 1;
	if (xgb ? x->thr32 != y->thr32 : x->value != y->value)
		return (xgb ? x->thr32 < y->thr32 : x->value < y->value) ? -1 : 1;
	return *(const int32 *) a < *(const int32 *) b ? -1 : (*(const int32 *) a > *(const int32 *) b);
}

/*
 * Group tree t's splits by feature (Tree.groups, with below): each group's
 * thresholds ascending, and for each j the leaves allowed when a value goes
 * right at the first j splits and left at the others (the splits it goes
 * right at exclude the leaves on their left, the others those on their right).
 */
static void
group_splits(Tree *t, bool xgb)
{
	int32	   *order = palloc(sizeof(int32) * t->nnodes);
	int			nsplits = 0;
	void	   *arg[2] = {t, &xgb};

	for (int i = 0; i < t->nnodes; i++)
		if (t->fast[i].feature >= 0)
			order[nsplits++] = i;
	qsort_arg(order, nsplits, sizeof(int32), split_cmp, arg);
	t->groups = palloc(sizeof(SplitGroup) * Max(nsplits, 1));
	t->ngroups = 0;
	for (int a = 0, b; a < nsplits; a = b)
	{
		SplitGroup *g = &t->groups[t->ngroups++];
		uint64		acc;

		for (b = a; b < nsplits && t->fast[order[b]].feature == t->fast[order[a]].feature; b++);
		g->feature = t->fast[order[a]].feature;
		g->n = b - a;
		g->thr32 = xgb ? palloc(sizeof(float) * g->n) : NULL;
		g->thr = xgb ? NULL : palloc(sizeof(double) * g->n);
		g->node = palloc(sizeof(int32) * g->n);
		g->mask = palloc(sizeof(uint64) * (g->n + 1));
		for (int k = 0; k < g->n; k++)
		{
			g->node[k] = order[a + k];
			if (xgb)
				g->thr32[k] = t->fast[order[a + k]].thr32;
			else
				g->thr[k] = t->fast[order[a + k]].value;
		}
		/* mask[j]: the first j go right (not left), the others left (not right) */
		g->mask[g->n] = ~UINT64CONST(0);
		for (int k = g->n - 1; k >= 0; k--)
			g->mask[k] = g->mask[k + 1] & ~t->below[t->fast[g->node[k]].left + 1];
		acc = ~UINT64CONST(0);
		for (int j = 1; j <= g->n; j++)
		{
			acc &= ~t->below[t->fast[g->node[j - 1]].left];
			g->mask[j] &= acc;
		}
	}
	pfree(order);
}

/* Compile one tree of the canonical state. */
static void
compile_tree(const char *where, json_t *jt, int index, int nfeatures, TreeFormat format, Tree *t)
{
	char		path[64];
	json_t	   *split;
	double	   *feature,
			   *left,
			   *right,
			   *thr,
			   *dflt,
			   *missing,
			   *value,
			   *cover;
	int			n,
				i;
	int		   *depth;
	static const char *const keys[] = {"split", "threshold", "left", "right", "defaultLeft",
	"missingType", "value", "cover", NULL};

	snprintf(path, sizeof(path), "trees[%d]", index);
	if (!json_is_object(jt))
		model_error(where, path, "must be an object, not %s", kj_type_name(jt));
	model_check_keys(where, jt, path, keys);
	split = model_get(where, jt, path, "split", JSON_ARRAY, true);
	n = (int) json_array_size(split);
	if (n < 1)
		model_error(where, path, "has no nodes");
	if (n > 1000000)
		model_error(where, path, "has %d nodes, more than 1000000", n);
	feature = read_array(where, jt, path, "split", n, true);
	left = read_array(where, jt, path, "left", n, true);
	right = read_array(where, jt, path, "right", n, true);
	thr = read_array(where, jt, path, "threshold", n, true);
	value = read_array(where, jt, path, "value", n, true);
	cover = read_array(where, jt, path, "cover", n, false);
	dflt = read_array(where, jt, path, "defaultLeft", n, false);
	missing = read_array(where, jt, path, "missingType", n, false);

	t->nnodes = n;
	t->nodes = palloc0(sizeof(TreeNode) * n);
	t->cover = palloc(sizeof(double) * n);
	depth = palloc0(sizeof(int) * n);
	t->depth = 0;
	for (i = 0; i < n; i++)
	{
		TreeNode   *nd = &t->nodes[i];

		if (feature[i] != floor(feature[i]) || feature[i] < -1 || feature[i] >= nfeatures)
			model_error(where, path, "node %d splits on feature %g, not one of the %d features (or -1 for a leaf)",
						i, feature[i], nfeatures);
		nd->feature = (int32) feature[i];
		t->cover[i] = cover ? cover[i] : 1.0;
		if (t->cover[i] < 0)
			model_error(where, path, "node %d has a negative cover", i);
		if (nd->feature < 0)
		{
			nd->left = nd->right = -1;
			nd->value = format == TF_XGBOOST ? (double) (float) value[i] : value[i];
			continue;
		}
		/* children come after their parent: no cycles, and means can be computed backwards */
		if (left[i] != floor(left[i]) || right[i] != floor(right[i]) ||
			left[i] <= i || right[i] <= i || left[i] >= n || right[i] >= n || left[i] == right[i])
			model_error(where, path, "node %d has children %g and %g; children must be distinct nodes after their parent",
						i, left[i], right[i]);
		nd->left = (int32) left[i];
		nd->right = (int32) right[i];
		nd->default_left = dflt ? (dflt[i] != 0) : 1;
		if (format == TF_XGBOOST)
		{
			nd->thr32 = (float) thr[i];
			nd->missing = MISSING_NAN;
		}
		else
		{
			nd->value = thr[i];
			nd->missing = missing ? (uint8) missing[i] : MISSING_NAN;
			if (missing && (missing[i] < 0 || missing[i] > 2 || missing[i] != floor(missing[i])))
				model_error(where, path, "node %d has missingType %g; it must be 0 (None), 1 (Zero) or 2 (NaN)",
							i, missing[i]);
		}
		depth[nd->left] = Max(depth[nd->left], depth[i] + 1);
		depth[nd->right] = Max(depth[nd->right], depth[i] + 1);
		t->depth = Max(t->depth, depth[i] + 1);
	}
	if (t->depth > 64)
		model_error(where, path, "is %d levels deep; at most 64 are supported", t->depth);
	compute_means(t);
	build_fast(t);
	number_leaves(t);
	pfree(depth);
}

/* Compile the canonical state written by trees_import.c (or by hand). */
static void
trees_compile(const ModelSource *src, ModelImpl *impl)
{
	const char *where = src->where;
	TreeModel  *m = palloc0(sizeof(TreeModel));
	json_t	   *features,
			   *trees,
			   *v;
	const char *format,
			   *transform;
	size_t		i;
	static const char *const keys[] = {"format", "objective", "transform", "sigmoidScale",
	"baseMargin", "features", "trees", NULL};

	model_check_keys(where, src->state, "", keys);
	format = json_string_value(model_get(where, src->state, "", "format", JSON_STRING, true));
	if (strcmp(format, "xgboost") == 0)
		m->format = TF_XGBOOST;
	else if (strcmp(format, "lightgbm") == 0)
		m->format = TF_LIGHTGBM;
	else
		model_error(where, "", "field \"format\" must be \"xgboost\" or \"lightgbm\", not \"%s\"", format);
	model_get(where, src->state, "", "objective", JSON_STRING, false);
	v = model_get(where, src->state, "", "transform", JSON_STRING, false);
	transform = v ? json_string_value(v) : "identity";
	if (strcmp(transform, "identity") == 0)
		m->transform = TT_IDENTITY;
	else if (strcmp(transform, "sigmoid") == 0)
		m->transform = TT_SIGMOID;
	else if (m->format == TF_LIGHTGBM && strcmp(transform, "signedSquare") == 0)
		m->transform = TT_SIGNED_SQUARE;
	else if (m->format == TF_LIGHTGBM && strcmp(transform, "exp") == 0)
		m->transform = TT_EXP;
	else if (m->format == TF_LIGHTGBM && strcmp(transform, "softplus") == 0)
		m->transform = TT_SOFTPLUS;
	else
		model_error(where, "", "field \"transform\" must be %s, not \"%s\"",
					m->format == TF_XGBOOST ? "\"sigmoid\" or \"identity\"" :
					"\"sigmoid\", \"identity\", \"signedSquare\", \"exp\" or \"softplus\"",
					transform);
	m->sigmoid_scale = model_get_number(where, src->state, "", "sigmoidScale", false, 1.0);
	m->base_margin = model_get_number(where, src->state, "", "baseMargin", false, 0.0);
	if (m->format == TF_XGBOOST)
		m->base_margin = (double) (float) m->base_margin;

	features = model_get(where, src->state, "", "features", JSON_ARRAY, true);
	if (json_array_size(features) == 0)
		model_error(where, "", "field \"features\" must name at least one feature");
	json_array_foreach(features, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0)
			model_error(where, "features", "entry %zu must be a non-empty string", i);
		if (model_feature_index(impl, json_string_value(v)) != (int) i)
			model_error(where, "features", "names \"%s\" twice", json_string_value(v));
	}

	trees = model_get(where, src->state, "", "trees", JSON_ARRAY, true);
	if (json_array_size(trees) == 0)
		model_error(where, "", "field \"trees\" must hold at least one tree");
	m->ntrees = (int) json_array_size(trees);
	m->trees = palloc0(sizeof(Tree) * m->ntrees);
	m->leaf_sets = true;
	json_array_foreach(trees, i, v)
	{
		compile_tree(where, v, (int) i, impl->nfeatures, m->format, &m->trees[i]);
		m->max_depth = Max(m->max_depth, m->trees[i].depth);
		m->leaf_sets &= m->trees[i].below != NULL;
		CHECK_FOR_INTERRUPTS();
	}
	if (m->leaf_sets)
	{
		/* every leaf value at its tree's places (a leaf's number: the bit of its set) */
		int			last = 0;	/* the highest leaf number */

		for (int t = 0; t < m->ntrees; t++)
			last = Max(last, pg_leftmost_one_pos64(m->trees[t].below[0]));	/* the root: all leaves */
		m->leaf_shift = last == 0 ? 0 : pg_leftmost_one_pos32((uint32) last) + 1;
		if (m->format == TF_XGBOOST)
			m->leaf_value32 = palloc0(sizeof(float) * m->ntrees << m->leaf_shift);
		else
			m->leaf_value = palloc0(sizeof(double) * m->ntrees << m->leaf_shift);
		for (int t = 0; t < m->ntrees; t++)
			group_splits(&m->trees[t], m->format == TF_XGBOOST);
		for (int t = 0; t < m->ntrees; t++)
			for (int n = 0; n < m->trees[t].nnodes; n++)
				if (m->trees[t].fast[n].feature < 0)
				{
					int			k = (t << m->leaf_shift) + pg_rightmost_one_pos64(m->trees[t].below[n]);

					if (m->leaf_value32)
						m->leaf_value32[k] = (float) m->trees[t].fast[n].value;
					else
						m->leaf_value[k] = m->trees[t].fast[n].value;
				}
	}
	m->cxt = CurrentMemoryContext;
	impl->data = m;
}

/* The leaf value a feature vector reaches in an XGBoost tree (x already rounded to float). */
static inline double
xgb_leaf(const Tree *t, const float *x)
{
	const FastNode *nodes = t->fast;
	int			i = 0;
	int			f;

	while ((f = nodes[i].feature) >= 0)
	{
		const FastNode *n = &nodes[i];
		float		fv = x[f];
		int			right = !(fv < n->thr32);

		if (isnan(fv))
			right = n->default_right;
		i = n->left + right;
	}
	return nodes[i].value;
}

/* Does a LightGBM value go right at node n? */
static inline int
lgb_right(const FastNode *n, double fv)
{
	if (isnan(fv) && n->missing != MISSING_NAN)
		fv = 0.0;
	if ((n->missing == MISSING_ZERO && fv >= -LGB_ZERO && fv <= LGB_ZERO) ||
		(n->missing == MISSING_NAN && isnan(fv)))
		return n->default_right;
	return !(fv <= n->value);
}

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

/* The leaf value a feature vector reaches in a LightGBM tree. */
static inline double
lgb_leaf(const Tree *t, const double *x)
{
	const FastNode *nodes = t->fast;
	int			i = 0;

	while (nodes[i].feature >= 0)
		i = nodes[i].left + lgb_right(&nodes[i], x[nodes[i].feature]);
	return nodes[i].value;
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

/* LightGBM's ConvertOutput for the model's objective, in double as LightGBM computes it. */
static inline double
lgb_output(const TreeModel *m, double sum)
{
	switch (m->transform)
	{
		case TT_SIGMOID:
			return 1.0 / (1.0 + exp(-m->sigmoid_scale * sum));
		case TT_SIGNED_SQUARE:
			return (sum > 0 ? 1.0 : sum < 0 ? -1.0 : 0.0) * sum * sum;
		case TT_EXP:
			return exp(sum);
		case TT_SOFTPLUS:
			/* log(1 + e^x), not log1p: LightGBM's own expression, bit for bit */
			return log(1.0 + exp(sum));
		case TT_IDENTITY:
			break;
	}
	return sum;
}

/* The margin (sum of leaves plus base) and the output, as the source library computes them. */
static void
trees_predict(const TreeModel *m, const double *x, int nf, double *margin, double *output)
{
	int			t;

	if (m->format == TF_XGBOOST)
	{
		float		xf[256];
		float	   *xs = nf <= 256 ? xf : palloc(sizeof(float) * nf);
		float		sum = (float) m->base_margin;
		int			i;

		for (i = 0; i < nf; i++)
			xs[i] = (float) x[i];
		for (t = 0; t < m->ntrees; t++)
		{
			const Tree *tr = &m->trees[t];

			sum += (float) xgb_leaf(tr, xs);
		}
		if (xs != xf)
			pfree(xs);
		*margin = sum;
		if (m->transform == TT_SIGMOID)
		{
			/* XGBoost's logistic in float, clamped against overflow */
			float		e = expf(fminf(-sum, 88.7f));

			*output = (double) (1.0f / (e + 1.0f));
		}
		else
			*output = sum;
	}
	else
	{
		double		sum = m->base_margin;

		for (t = 0; t < m->ntrees; t++)
			sum += lgb_leaf(&m->trees[t], x);
		*margin = sum;
		*output = lgb_output(m, sum);
	}
}

/* Feature values as doubles, NaN for missing. */
static double *
gather_numbers(const ModelImpl *impl, const KaireonValue *values, double *buf, int bufsize)
{
	double	   *x = impl->nfeatures <= bufsize ? buf : palloc(sizeof(double) * impl->nfeatures);
	int			i;

	for (i = 0; i < impl->nfeatures; i++)
		x[i] = kv_number(&values[i]);
	return x;
}

/* Score: the library's prediction (probability for logistic objectives). */
static double
trees_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	double		buf[256];
	double	   *x = gather_numbers(impl, values, buf, 256);
	double		margin,
				out;

	trees_predict((const TreeModel *) impl->data, x, impl->nfeatures, &margin, &out);
	if (x != buf)
		pfree(x);
	return out;
}

/* ---- scoring many subjects at once ---- */

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
static void
trees_score_batch(const ModelImpl *impl, const KaireonValue *values, int nrows, const char *const *arms,
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
		if (xgb && m->transform == TT_SIGMOID)
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

/* ---- TreeSHAP ---- */

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
static void
trees_shap(const TreeModel *m, const double *x, int nf, double *phi, double *expected)
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

/* explain_score: prediction, margin, expected value and TreeSHAP contributions. */
static json_t *
trees_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const TreeModel *m = (const TreeModel *) impl->data;
	double		buf[256];
	double	   *x = gather_numbers(impl, values, buf, 256);
	double	   *phi = palloc(sizeof(double) * impl->nfeatures);
	double		margin,
				out,
				expected;
	json_t	   *result = json_object();
	json_t	   *contrib = json_object();
	json_t	   *vals = json_object();
	int			i;

	trees_predict(m, x, impl->nfeatures, &margin, &out);
	trees_shap(m, x, impl->nfeatures, phi, &expected);
	for (i = 0; i < impl->nfeatures; i++)
	{
		json_object_set_new(contrib, impl->feature_names[i], json_real(phi[i]));
		json_object_set_new(vals, impl->feature_names[i], kv_to_json(&values[i]));
	}
	json_object_set_new(result, "score", json_real(out));
	json_object_set_new(result, "margin", json_real(margin));
	json_object_set_new(result, "expectedValue", json_real(expected));
	json_object_set_new(result, "contributions", contrib);
	json_object_set_new(result, "features", vals);
	json_object_set_new(result, "trees", json_integer(m->ntrees));
	json_object_set_new(result, "format", json_string(m->format == TF_XGBOOST ? "xgboost" : "lightgbm"));
	return result;
}

const ModelOps kaireon_trees_ops = {
	.type_name = "gradient_boosted",
	.compile = trees_compile,
	.score = trees_score,
	.score_batch = trees_score_batch,
	.explain = trees_explain,
	.learns_online = false,
	.learn = NULL,
};
