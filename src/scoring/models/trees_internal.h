/*
 * scoring/models/trees_internal.h
 *	  The compiled gradient_boosted model, shared by the files of the tree
 *	  family: trees.c (compile, one row), trees_batch.c (many rows at once) and
 *	  trees_shap.c (TreeSHAP): its types, the walk of one tree and the output
 *	  conversion that trees.c and trees_batch.c both inline, and what each file
 *	  offers the others.  Not for use outside src/scoring/models/trees*.c.
 */
#ifndef KAIREON_SCORING_MODELS_TREES_INTERNAL_H
#define KAIREON_SCORING_MODELS_TREES_INTERNAL_H

#include <math.h>

#include "utils/hsearch.h"

#include "scoring/models/model.h"

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
	/* the leaves each tree allows a row's own features (see trees_batch.c), by their values */
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

/* score_batch (trees_batch.c): the rows' predictions, each equal to trees_score of its row. */
extern void kaireon_trees_score_batch(const ModelImpl *impl, const KaireonValue *values, int nrows,
									  const char *const *arms, const bool *shared,
									  const int *row_ids, double *out);

/* TreeSHAP values of the margin and the expected value (trees_shap.c). */
extern void kaireon_trees_shap(const TreeModel *m, const double *x, int nf, double *phi,
							   double *expected);

#endif							/* KAIREON_SCORING_MODELS_TREES_INTERNAL_H */
