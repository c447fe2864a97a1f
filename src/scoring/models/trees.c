/*
 * scoring/models/trees.c
 *	  gradient_boosted: tree ensembles imported from XGBoost and LightGBM
 *	  (models/trees_import.c turns their files into the canonical model_state
 *	  read here): its compile phase, one row's prediction and explanation, and
 *	  the model type's ModelOps.  Many rows at once are scored by
 *	  trees_batch.c, TreeSHAP values computed by trees_shap.c; the compiled
 *	  model's types are in trees_internal.h.
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
 * Compiling refuses (22023) a tree that is not one (each node but the root must
 * be the child of exactly one node, so build_fast's layout holds every node),
 * and leaf values, baseMargin and sigmoidScale beyond KAIREON_MODEL_MAX_WEIGHT
 * or, for XGBoost's leaves and baseMargin, beyond float.
 *
 * explain_score returns the prediction, its margin and the TreeSHAP values of
 * trees_shap.c.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "miscadmin.h"
#include "port/pg_bitutils.h"

#include "scoring/models/trees_internal.h"

#define WHERE_DEFAULT "algorithm_models.model_state"

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
			/* compile_tree checked that each node but the root has exactly one parent */
			if (next + 2 > t->nnodes)
				elog(ERROR, "build_fast: a node of the tree is reached twice");
			f->left = next;
			queue[next++] = n->left;
			queue[next++] = n->right;
		}
		head++;
	}
	/*
	 * every slot filled: a zeroed FastNode would be a phantom split on feature 0 whose leaf set
	 * is empty (trees_batch.c would read past the leaf values)
	 */
	if (head != t->nnodes)
		elog(ERROR, "build_fast: %d of the tree's %d nodes are reachable from the root", head, t->nnodes);
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
	int		   *parents;
	json_t	   *values;
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

	values = json_object_get(jt, "value");

	t->nnodes = n;
	t->nodes = palloc0(sizeof(TreeNode) * n);
	t->cover = palloc(sizeof(double) * n);
	depth = palloc0(sizeof(int) * n);
	parents = palloc0(sizeof(int) * n);
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
			char		vpath[96];

			/* leaves are added up: bounded like other weights, and finite in XGBoost's float */
			snprintf(vpath, sizeof(vpath), "%s.value[%d]", path, i);
			model_weight(where, json_array_get(values, i), vpath);
			nd->left = nd->right = -1;
			nd->value = format == TF_XGBOOST ? (double) (float) value[i] : value[i];
			if (!isfinite(nd->value))
				model_error(where, vpath, "is %g, beyond single precision (XGBoost adds leaf values up in float, at most %g in magnitude)",
							value[i], (double) FLT_MAX);
			continue;
		}
		/* children come after their parent: no cycles, and means can be computed backwards */
		if (left[i] != floor(left[i]) || right[i] != floor(right[i]) ||
			left[i] <= i || right[i] <= i || left[i] >= n || right[i] >= n || left[i] == right[i])
			model_error(where, path, "node %d has children %g and %g; children must be distinct nodes after their parent",
						i, left[i], right[i]);
		nd->left = (int32) left[i];
		nd->right = (int32) right[i];
		parents[nd->left]++;
		parents[nd->right]++;
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
	/*
	 * a tree: every node but the root is the child of exactly one node (children come after
	 * their parent, so each is then reached from the root, and build_fast fills every slot)
	 */
	for (i = 1; i < n; i++)
	{
		if (parents[i] == 0)
			model_error(where, path, "node %d is not reachable from the root (no node has it as a child); every node but node 0 must be the child of exactly one node",
						i);
		if (parents[i] > 1)
			model_error(where, path, "node %d is the child of %d nodes; every node but node 0 must be the child of exactly one node",
						i, parents[i]);
	}
	pfree(parents);
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
	/* both multiply or add to the sum of the leaves: bounded like other weights */
	m->sigmoid_scale = model_get_weight(where, src->state, "", "sigmoidScale", false, 1.0);
	m->base_margin = model_get_weight(where, src->state, "", "baseMargin", false, 0.0);
	if (m->format == TF_XGBOOST)
	{
		double		given = m->base_margin;

		m->base_margin = (double) (float) given;
		if (!isfinite(m->base_margin))
			model_error(where, "", "field \"baseMargin\" is %g, beyond single precision (XGBoost computes in float, at most %g in magnitude)",
						given, (double) FLT_MAX);
	}

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
		if (m->transform == TT_SIGMOID && isnan(sum))
			*output = sum;		/* fminf would drop the NaN: finite_score refuses it */
		else if (m->transform == TT_SIGMOID)
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
	kaireon_trees_shap(m, x, impl->nfeatures, phi, &expected);
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
	.score_batch = kaireon_trees_score_batch,
	.explain = trees_explain,
	.learns_online = false,
	.learn = NULL,
};
