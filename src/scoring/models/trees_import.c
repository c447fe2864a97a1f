/*
 * models/trees_import.c
 *	  Turns an XGBoost JSON model (Booster.save_model('m.json')) or a LightGBM
 *	  JSON dump (Booster.dump_model()) into kaireon's canonical
 *	  gradient_boosted model_state (docs/models.md), which models/trees.c
 *	  compiles.  Anything the scorer would not reproduce exactly (categorical
 *	  splits, multi-class, DART, linear trees, unknown objectives) is refused
 *	  with 22023 rather than imported approximately.
 */
#include "postgres.h"

#include <math.h>

#include "scoring/models/model.h"
#include "scoring/models/trees_import.h"

/* Numbers in XGBoost files are sometimes strings ("5E-1", "[5E-1]"); read either. */
static double
number_or_string(const char *where, json_t *v, const char *path)
{
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		char	   *end;
		double		d;

		if (*s == '[')
			s++;
		d = strtod(s, &end);
		if (end != s && (*end == '\0' || (*end == ']' && end[1] == '\0')) && isfinite(d))
			return d;
	}
	model_error(where, path, "must be a number, not %s", kj_type_name(v));
}

/* The feature names: options.featureNames, else the file's, else f0..fN-1. */
static json_t *
feature_names(const char *where, json_t *options, json_t *from_file, int nfeatures,
			  const char *prefix)
{
	json_t	   *names = options ? json_object_get(options, "featureNames") : NULL;
	json_t	   *out = json_array();
	size_t		i;
	json_t	   *v;

	if (names == NULL || json_is_null(names))
		names = from_file;
	if (names != NULL && json_is_array(names) && json_array_size(names) > 0)
	{
		if ((int) json_array_size(names) != nfeatures)
			model_error(where, "featureNames", "has %zu names but the model has %d features",
						json_array_size(names), nfeatures);
		json_array_foreach(names, i, v)
		{
			if (!json_is_string(v) || json_string_length(v) == 0)
				model_error(where, "featureNames", "entry %zu must be a non-empty string", i);
			json_array_append(out, v);
		}
		return out;
	}
	if (names != NULL && !json_is_array(names) && !json_is_null(names))
		model_error(where, "featureNames", "must be an array of strings");
	for (i = 0; i < (size_t) nfeatures; i++)
	{
		char		name[32];

		snprintf(name, sizeof(name), "%s%zu", prefix, i);
		json_array_append_new(out, json_string(name));
	}
	return out;
}

/* The predictors column for a tree model: one numeric predictor per feature. */
static json_t *
predictors_for(json_t *features)
{
	json_t	   *preds = json_array();
	size_t		i;
	json_t	   *v;

	json_array_foreach(features, i, v)
	{
		json_t	   *p = json_object();

		json_object_set(p, "name", v);
		json_object_set_new(p, "type", json_string("numeric"));
		json_array_append_new(preds, p);
	}
	return preds;
}

/* Follow a chain of object members, each required. */
static json_t *
dig(const char *where, json_t *obj, const char *path, const char *const *keys)
{
	json_t	   *v = obj;
	char		p[256];
	const char *const *k;

	strlcpy(p, path, sizeof(p));
	for (k = keys; *k != NULL; k++)
	{
		v = model_get(where, v, p, *k, k[1] ? JSON_OBJECT : -1, true);
		if (p[0])
			strlcat(p, ".", sizeof(p));
		strlcat(p, *k, sizeof(p));
	}
	return v;
}

/*
 * A number XGBoost keeps in float, rounded as XGBoost rounds it; the number itself when it is
 * beyond single precision (json_real refuses Infinity: the entry would silently go missing),
 * so that compiling the state (trees.c) refuses it naming the field.
 */
static json_t *
xgb_float(double d)
{
	float		f = (float) d;

	return json_real(isfinite(f) ? (double) f : d);
}

/* XGBoost: one tree of learner.gradient_booster.model.trees. */
static json_t *
xgb_tree(const char *where, json_t *jt, int index, int nfeatures)
{
	char		path[64];
	json_t	   *left,
			   *right,
			   *split,
			   *cond,
			   *dflt,
			   *hess,
			   *stype;
	json_t	   *out = json_object();
	json_t	   *o_split = json_array(),
			   *o_thr = json_array(),
			   *o_left = json_array(),
			   *o_right = json_array(),
			   *o_dflt = json_array(),
			   *o_val = json_array(),
			   *o_cover = json_array();
	size_t		n,
				i;

	snprintf(path, sizeof(path), "trees[%d]", index);
	if (!json_is_object(jt))
		model_error(where, path, "must be an object");
	left = model_get(where, jt, path, "left_children", JSON_ARRAY, true);
	right = model_get(where, jt, path, "right_children", JSON_ARRAY, true);
	split = model_get(where, jt, path, "split_indices", JSON_ARRAY, true);
	cond = model_get(where, jt, path, "split_conditions", JSON_ARRAY, true);
	dflt = model_get(where, jt, path, "default_left", JSON_ARRAY, true);
	hess = model_get(where, jt, path, "sum_hessian", JSON_ARRAY, true);
	stype = model_get(where, jt, path, "split_type", JSON_ARRAY, false);
	n = json_array_size(left);
	if (n == 0 || json_array_size(right) != n || json_array_size(split) != n ||
		json_array_size(cond) != n || json_array_size(dflt) != n || json_array_size(hess) != n ||
		(stype && json_array_size(stype) != n))
		model_error(where, path, "node arrays (left_children, right_children, split_indices, split_conditions, default_left, sum_hessian) must be non-empty and of one length");
	for (i = 0; i < n; i++)
	{
		json_t	   *l = json_array_get(left, i),
				   *r = json_array_get(right, i),
				   *s = json_array_get(split, i),
				   *c = json_array_get(cond, i),
				   *d = json_array_get(dflt, i),
				   *h = json_array_get(hess, i);
		double		ld,
					rd;

		if (stype && json_number_value(json_array_get(stype, i)) != 0)
			model_error(where, path, "node %zu is a categorical split, which kaireon does not import", i);
		if (!json_is_number(l) || !json_is_number(r) || !json_is_number(s) || !json_is_number(c) ||
			!json_is_number(h) || !(json_is_number(d) || json_is_boolean(d)))
			model_error(where, path, "node %zu has a non-numeric entry (NaN, Infinity or not a number)", i);
		ld = json_number_value(l);
		rd = json_number_value(r);
		if (ld == -1)
		{
			json_array_append_new(o_split, json_integer(-1));
			json_array_append_new(o_thr, json_integer(0));
			json_array_append_new(o_left, json_integer(-1));
			json_array_append_new(o_right, json_integer(-1));
			json_array_append_new(o_dflt, json_integer(0));
			json_array_append_new(o_val, xgb_float(json_number_value(c)));
		}
		else
		{
			double		f = json_number_value(s);

			if (f < 0 || f >= nfeatures || f != floor(f))
				model_error(where, path, "node %zu splits on feature %g of %d", i, f, nfeatures);
			json_array_append_new(o_split, json_integer((json_int_t) f));
			json_array_append_new(o_thr, xgb_float(json_number_value(c)));
			json_array_append_new(o_left, json_integer((json_int_t) ld));
			json_array_append_new(o_right, json_integer((json_int_t) rd));
			json_array_append_new(o_dflt, json_integer(json_is_true(d) ||
													   (json_is_number(d) && json_number_value(d) != 0)));
			json_array_append_new(o_val, json_integer(0));
		}
		json_array_append_new(o_cover, json_real(json_number_value(h)));
	}
	json_object_set_new(out, "split", o_split);
	json_object_set_new(out, "threshold", o_thr);
	json_object_set_new(out, "left", o_left);
	json_object_set_new(out, "right", o_right);
	json_object_set_new(out, "defaultLeft", o_dflt);
	json_object_set_new(out, "value", o_val);
	json_object_set_new(out, "cover", o_cover);
	return out;
}

/* XGBoost JSON model (save_model('m.json')) to the canonical state. */
static void
import_xgboost(json_t *doc, json_t *options, json_t **state, json_t **predictors)
{
	const char *where = "XGBoost model";
	json_t	   *learner,
			   *booster,
			   *model,
			   *trees,
			   *param,
			   *obj,
			   *v,
			   *features,
			   *out,
			   *ftypes;
	const char *objective;
	const char *transform;
	double		base_score,
				base_margin;
	int			nfeatures;
	size_t		i;
	json_t	   *out_trees;
	static const char *const booster_path[] = {"learner", "gradient_booster", NULL};
	static const char *const model_path[] = {"model", NULL};

	if (!json_is_object(doc))
		model_error(where, "", "must be a JSON object, not %s", kj_type_name(doc));
	learner = model_get(where, doc, "", "learner", JSON_OBJECT, true);
	booster = dig(where, doc, "", booster_path);
	if (!json_is_object(booster))
		model_error(where, "learner.gradient_booster", "must be an object");
	v = model_get(where, booster, "learner.gradient_booster", "name", JSON_STRING, true);
	if (strcmp(json_string_value(v), "gbtree") != 0)
		model_error(where, "learner.gradient_booster.name", "is \"%s\"; only \"gbtree\" boosters are imported (not dart or gblinear)",
					json_string_value(v));
	model = dig(where, booster, "learner.gradient_booster", model_path);
	if (!json_is_object(model))
		model_error(where, "learner.gradient_booster.model", "must be an object");
	trees = model_get(where, model, "learner.gradient_booster.model", "trees", JSON_ARRAY, true);
	if (json_array_size(trees) == 0)
		model_error(where, "learner.gradient_booster.model.trees", "is empty");

	param = model_get(where, learner, "learner", "learner_model_param", JSON_OBJECT, true);
	v = model_get(where, param, "learner.learner_model_param", "num_feature", -1, true);
	nfeatures = (int) number_or_string(where, v, "learner.learner_model_param.num_feature");
	if (nfeatures < 1 || nfeatures > 100000)
		model_error(where, "learner.learner_model_param.num_feature", "is %d; it must be between 1 and 100000", nfeatures);
	v = json_object_get(param, "num_class");
	if (v && number_or_string(where, v, "learner.learner_model_param.num_class") > 1)
		model_error(where, "learner.learner_model_param.num_class", "is above 1; multi-class models are not imported");
	v = json_object_get(param, "num_target");
	if (v && number_or_string(where, v, "learner.learner_model_param.num_target") > 1)
		model_error(where, "learner.learner_model_param.num_target", "is above 1; multi-target models are not imported");
	v = model_get(where, param, "learner.learner_model_param", "base_score", -1, true);
	base_score = number_or_string(where, v, "learner.learner_model_param.base_score");

	obj = model_get(where, learner, "learner", "objective", JSON_OBJECT, true);
	objective = json_string_value(model_get(where, obj, "learner.objective", "name", JSON_STRING, true));
	if (strcmp(objective, "binary:logistic") == 0 || strcmp(objective, "reg:logistic") == 0)
	{
		float		b = (float) base_score;

		if (!(b > 0.0f && b < 1.0f))
			model_error(where, "learner.learner_model_param.base_score", "is %g; a logistic objective needs a base score in (0, 1)", base_score);
		/* XGBoost's probability-to-margin, in float */
		base_margin = (double) (-logf(1.0f / b - 1.0f));
		transform = "sigmoid";
	}
	else if (strcmp(objective, "binary:logitraw") == 0)
	{
		base_margin = (double) (float) base_score;
		transform = "identity";
	}
	else if (strcmp(objective, "reg:squarederror") == 0 || strcmp(objective, "reg:linear") == 0)
	{
		base_margin = (double) (float) base_score;
		transform = "identity";
	}
	else
		model_error(where, "learner.objective.name", "is \"%s\"; kaireon imports binary:logistic, reg:logistic, binary:logitraw and reg:squarederror",
					objective);

	ftypes = json_object_get(learner, "feature_types");
	if (ftypes && json_is_array(ftypes))
		json_array_foreach(ftypes, i, v)
			if (json_is_string(v) && strcmp(json_string_value(v), "c") == 0)
			model_error(where, "learner.feature_types", "marks feature %zu categorical; categorical splits are not imported", i);

	/* json_real refuses Infinity: baseMargin would silently go missing (and read as 0) */
	if (!isfinite(base_margin))
		model_error(where, "learner.learner_model_param.base_score", "is %g; its margin (%g) is beyond single precision",
					base_score, base_margin);
	features = feature_names(where, options, json_object_get(learner, "feature_names"), nfeatures, "f");
	out_trees = json_array();
	json_array_foreach(trees, i, v)
		json_array_append_new(out_trees, xgb_tree(where, v, (int) i, nfeatures));

	out = json_object();
	json_object_set_new(out, "format", json_string("xgboost"));
	json_object_set_new(out, "objective", json_string(objective));
	json_object_set_new(out, "transform", json_string(transform));
	json_object_set_new(out, "baseMargin", json_real(base_margin));
	json_object_set_new(out, "features", features);
	json_object_set_new(out, "trees", out_trees);
	*state = out;
	*predictors = predictors_for(features);
}

/* Arrays of one canonical tree being built from LightGBM's nested nodes. */
typedef struct LgbOut
{
	json_t	   *split,
			   *thr,
			   *left,
			   *right,
			   *dflt,
			   *missing,
			   *value,
			   *cover;
	int			count;
	int			nfeatures;
	const char *path;
} LgbOut;

/* Append node (and its subtree, in preorder) to o; returns its index. */
static int
lgb_node(const char *where, json_t *node, LgbOut *o, int depth)
{
	int			me = o->count++;
	json_t	   *v;

	if (depth > 64)
		model_error(where, o->path, "is more than 64 levels deep");
	if (!json_is_object(node))
		model_error(where, o->path, "node %d must be an object, not %s", me, kj_type_name(node));
	if (json_object_get(node, "leaf_value") != NULL)
	{
		/* a linear tree's leaf predicts leaf_const + sum(coeff * x), not leaf_value */
		if (json_object_get(node, "leaf_const") != NULL || json_object_get(node, "leaf_coeff") != NULL ||
			json_object_get(node, "leaf_features") != NULL)
			model_error(where, o->path, "node %d is a linear leaf (leaf_const, leaf_coeff); linear trees (linear_tree=true) are not imported",
						me);
		v = model_get(where, node, o->path, "leaf_value", JSON_REAL, true);
		json_array_append_new(o->split, json_integer(-1));
		json_array_append_new(o->thr, json_integer(0));
		json_array_append_new(o->left, json_integer(-1));
		json_array_append_new(o->right, json_integer(-1));
		json_array_append_new(o->dflt, json_integer(0));
		json_array_append_new(o->missing, json_integer(0));
		json_array_append_new(o->value, json_real(model_number(where, v, o->path)));
		v = json_object_get(node, "leaf_count");
		json_array_append_new(o->cover, json_real(v && json_is_number(v) ? json_number_value(v) : 1.0));
		return me;
	}
	else
	{
		double		f = model_get_number(where, node, o->path, "split_feature", true, 0);
		double		thr = model_get_number(where, node, o->path, "threshold", true, 0);
		const char *dt = json_string_value(model_get(where, node, o->path, "decision_type", JSON_STRING, true));
		const char *mt;
		int			missing;
		bool		dl;
		int			l,
					r;

		v = model_get(where, node, o->path, "missing_type", JSON_STRING, false);
		mt = v ? json_string_value(v) : "None";
		if (strcmp(dt, "<=") != 0)
			model_error(where, o->path, "node %d has decision_type \"%s\"; only numerical \"<=\" splits are imported (no categorical splits)",
						me, dt);
		if (strcmp(mt, "None") == 0)
			missing = 0;
		else if (strcmp(mt, "Zero") == 0)
			missing = 1;
		else if (strcmp(mt, "NaN") == 0)
			missing = 2;
		else
			model_error(where, o->path, "node %d has missing_type \"%s\"; expected None, Zero or NaN", me, mt);
		if (f < 0 || f >= o->nfeatures || f != floor(f))
			model_error(where, o->path, "node %d splits on feature %g of %d", me, f, o->nfeatures);
		v = model_get(where, node, o->path, "default_left", JSON_TRUE, false);
		dl = v ? json_is_true(v) : true;
		json_array_append_new(o->split, json_integer((json_int_t) f));
		json_array_append_new(o->thr, json_real(thr));
		json_array_append_new(o->dflt, json_integer(dl ? 1 : 0));
		json_array_append_new(o->missing, json_integer(missing));
		json_array_append_new(o->value, json_integer(0));
		v = json_object_get(node, "internal_count");
		json_array_append_new(o->cover, json_real(v && json_is_number(v) ? json_number_value(v) : 1.0));
		/* children indices are known only after their subtrees are appended */
		json_array_append_new(o->left, json_integer(0));
		json_array_append_new(o->right, json_integer(0));
		l = lgb_node(where, model_get(where, node, o->path, "left_child", JSON_OBJECT, true), o, depth + 1);
		r = lgb_node(where, model_get(where, node, o->path, "right_child", JSON_OBJECT, true), o, depth + 1);
		json_array_set_new(o->left, me, json_integer(l));
		json_array_set_new(o->right, me, json_integer(r));
		return me;
	}
}

/*
 * The output conversion of a LightGBM objective string, as LightGBM reads it back from a
 * model: the objective's name, then parameters separated by spaces ("binary sigmoid:1",
 * "regression sqrt"). Names are matched exactly; objectives whose output kaireon would not
 * reproduce (ranking, multi-class, custom) are refused.
 */
static const char *
lgb_transform(const char *where, const char *objective, double *scale)
{
	static const char *const regressions[] = {"regression", "regression_l1", "fair", "quantile", "mape", NULL};
	static const char *const exponentials[] = {"poisson", "gamma", "tweedie", NULL};
	char	   *copy = pstrdup(objective);
	char	   *save = NULL;
	char	   *name = strtok_r(copy, " ", &save);
	char	   *param;
	bool		is_binary,
				is_regression = false,
				is_exp = false;
	bool		sqrt_param = false;
	bool		has_sigmoid = false;

	*scale = 1.0;
	if (name == NULL)
		name = "";
	is_binary = strcmp(name, "binary") == 0;
	for (const char *const *r = regressions; *r; r++)
		is_regression |= strcmp(name, *r) == 0;
	for (const char *const *e = exponentials; *e; e++)
		is_exp |= strcmp(name, *e) == 0;
	if (!is_binary && !is_regression && !is_exp && strcmp(name, "huber") != 0 &&
		strcmp(name, "cross_entropy") != 0 && strcmp(name, "cross_entropy_lambda") != 0)
		model_error(where, "objective", "is \"%s\"; kaireon imports binary, cross_entropy, cross_entropy_lambda, regression, regression_l1, huber, fair, quantile, mape, poisson, gamma and tweedie",
					objective);
	/* the parameters LightGBM writes after the name: "sigmoid:<x>" (binary), "sqrt" (regressions) */
	while ((param = strtok_r(NULL, " ", &save)) != NULL)
	{
		if (strcmp(param, "sqrt") == 0 && !is_binary)
			sqrt_param = true;
		else if (strncmp(param, "sigmoid:", 8) == 0 && is_binary)
		{
			char	   *end;

			*scale = strtod(param + 8, &end);
			if (end == param + 8 || *end != '\0' || !(*scale > 0) || !isfinite(*scale))
				model_error(where, "objective", "has a bad sigmoid parameter in \"%s\"", objective);
			has_sigmoid = true;
		}
		else
			model_error(where, "objective", "has the parameter \"%s\" in \"%s\", which LightGBM does not write for %s",
						param, objective, name);
	}
	if (is_binary)
	{
		/* LightGBM itself refuses a binary objective without a positive sigmoid */
		if (!has_sigmoid)
			model_error(where, "objective", "is \"%s\"; a binary objective names its sigmoid parameter (\"binary sigmoid:1\")",
						objective);
		return "sigmoid";
	}
	if (strcmp(name, "cross_entropy") == 0)
		return "sigmoid";
	if (strcmp(name, "cross_entropy_lambda") == 0)
		return "softplus";
	/* poisson, gamma and tweedie predict e^sum whatever follows the name */
	if (is_exp)
		return "exp";
	/* huber drops sqrt when LightGBM reads the model back: its output is the sum */
	if (!is_regression)
		return "identity";
	return sqrt_param ? "signedSquare" : "identity";
}

/* LightGBM JSON dump (Booster.dump_model()) to the canonical state. */
static void
import_lightgbm(json_t *doc, json_t *options, json_t **state, json_t **predictors)
{
	const char *where = "LightGBM model";
	json_t	   *info,
			   *v,
			   *features,
			   *out,
			   *out_trees;
	const char *objective;
	const char *transform = "identity";
	double		scale = 1.0;
	int			nfeatures;
	size_t		i;

	if (!json_is_object(doc))
		model_error(where, "", "must be a JSON object, not %s", kj_type_name(doc));
	v = json_object_get(doc, "num_class");
	if (v && json_is_number(v) && json_number_value(v) > 1)
		model_error(where, "num_class", "is above 1; multi-class models are not imported");
	v = json_object_get(doc, "num_tree_per_iteration");
	if (v && json_is_number(v) && json_number_value(v) > 1)
		model_error(where, "num_tree_per_iteration", "is above 1; multi-class models are not imported");
	v = json_object_get(doc, "is_linear");
	if (v && (json_is_true(v) || (json_is_number(v) && json_number_value(v) != 0)))
		model_error(where, "is_linear", "is set; linear trees (linear_tree=true) are not imported");
	v = json_object_get(doc, "average_output");
	if (v && json_is_true(v))
		model_error(where, "average_output", "is true; random forest models are not imported");
	nfeatures = (int) model_get_number(where, doc, "", "max_feature_idx", true, 0) + 1;
	if (nfeatures < 1 || nfeatures > 100000)
		model_error(where, "max_feature_idx", "must be between 0 and 99999");
	objective = json_string_value(model_get(where, doc, "", "objective", JSON_STRING, true));
	transform = lgb_transform(where, objective, &scale);
	features = feature_names(where, options, json_object_get(doc, "feature_names"), nfeatures, "Column_");
	info = model_get(where, doc, "", "tree_info", JSON_ARRAY, true);
	if (json_array_size(info) == 0)
		model_error(where, "tree_info", "is empty");
	out_trees = json_array();
	json_array_foreach(info, i, v)
	{
		char		path[64];
		LgbOut		o;
		json_t	   *t = json_object();

		snprintf(path, sizeof(path), "tree_info[%zu]", i);
		if (!json_is_object(v))
			model_error(where, path, "must be an object");
		if (json_object_get(v, "num_cat") && json_is_number(json_object_get(v, "num_cat")) &&
			json_number_value(json_object_get(v, "num_cat")) > 0)
			model_error(where, path, "has categorical splits, which kaireon does not import");
		memset(&o, 0, sizeof(o));
		o.split = json_array();
		o.thr = json_array();
		o.left = json_array();
		o.right = json_array();
		o.dflt = json_array();
		o.missing = json_array();
		o.value = json_array();
		o.cover = json_array();
		o.nfeatures = nfeatures;
		o.path = path;
		lgb_node(where, model_get(where, v, path, "tree_structure", JSON_OBJECT, true), &o, 0);
		json_object_set_new(t, "split", o.split);
		json_object_set_new(t, "threshold", o.thr);
		json_object_set_new(t, "left", o.left);
		json_object_set_new(t, "right", o.right);
		json_object_set_new(t, "defaultLeft", o.dflt);
		json_object_set_new(t, "missingType", o.missing);
		json_object_set_new(t, "value", o.value);
		json_object_set_new(t, "cover", o.cover);
		json_array_append_new(out_trees, t);
	}
	out = json_object();
	json_object_set_new(out, "format", json_string("lightgbm"));
	json_object_set_new(out, "objective", json_string(objective));
	json_object_set_new(out, "transform", json_string(transform));
	json_object_set_new(out, "sigmoidScale", json_real(scale));
	json_object_set_new(out, "baseMargin", json_real(0));
	json_object_set_new(out, "features", features);
	json_object_set_new(out, "trees", out_trees);
	*state = out;
	*predictors = predictors_for(features);
}

/*
 * Convert an imported document of the given format ("xgboost_json" or
 * "lightgbm_json") into model_state and predictors; 22023 on anything else.
 */
void
kaireon_trees_import(const char *format, json_t *doc, json_t *options,
					 json_t **state, json_t **predictors)
{
	if (strcmp(format, "xgboost_json") == 0 || strcmp(format, "xgboost") == 0)
		import_xgboost(doc, options, state, predictors);
	else if (strcmp(format, "lightgbm_json") == 0 || strcmp(format, "lightgbm") == 0)
		import_lightgbm(doc, options, state, predictors);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown model format \"%s\"", format),
				 errhint("Use \"xgboost_json\" (Booster.save_model('m.json')) or \"lightgbm_json\" (Booster.dump_model()).")));
}
