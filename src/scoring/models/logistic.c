/*
 * models/logistic.c
 *	  logistic_regression: score = sigmoid(bias + sum of weight * value).
 *	  A numeric predictor has one weight (a missing or non-numeric value
 *	  contributes 0, booleans count 0 or 1); a categorical predictor is one-hot
 *	  encoded, with one weight per known level (an unknown or missing level
 *	  contributes 0).  models/train.c fits these weights in the database.
 */
#include "postgres.h"

#include <math.h>

#include "scoring/models/model.h"

typedef struct LrLevel
{
	char	   *level;
	double		weight;
} LrLevel;

typedef struct LrTerm
{
	int			feature;
	bool		categorical;
	double		weight;			/* numeric */
	int			nlevels;		/* categorical */
	LrLevel    *levels;
} LrTerm;

typedef struct Logistic
{
	double		bias;
	int			nterms;
	LrTerm	   *terms;
} Logistic;

/* Compile {"bias": b, "weights": {"x": w, "c": {"level": w, ...}}}. */
static void
logistic_compile(const ModelSource *src, ModelImpl *impl)
{
	const char *where = src->where;
	Logistic   *lr = palloc0(sizeof(Logistic));
	json_t	   *weights,
			   *v;
	const char *name;
	int			n = 0;
	static const char *const keys[] = {"bias", "weights", "training", NULL};

	model_check_keys(where, src->state, "", keys);
	lr->bias = model_get_weight(where, src->state, "", "bias", true, 0);
	weights = model_get(where, src->state, "", "weights", JSON_OBJECT, true);
	model_get(where, src->state, "", "training", JSON_OBJECT, false);
	lr->terms = palloc0(sizeof(LrTerm) * Max(json_object_size(weights), 1));
	json_object_foreach(weights, name, v)
	{
		LrTerm	   *t = &lr->terms[n++];
		char		path[300];

		snprintf(path, sizeof(path), "weights.\"%.200s\"", name);
		if (name[0] == '\0')
			model_error(where, "weights", "has an empty feature name");
		t->feature = model_feature_index(impl, name);
		if (json_is_object(v))
		{
			const char *level;
			json_t	   *w;
			int			k = 0;

			t->categorical = true;
			t->levels = palloc0(sizeof(LrLevel) * Max(json_object_size(v), 1));
			json_object_foreach(v, level, w)
			{
				char		lpath[600];

				snprintf(lpath, sizeof(lpath), "%s.\"%.200s\"", path, level);
				t->levels[k].level = pstrdup(level);
				t->levels[k].weight = model_weight(where, w, lpath);
				k++;
			}
			t->nlevels = k;
		}
		else if (json_is_number(v))
			t->weight = model_weight(where, v, path);
		else
			model_error(where, path, "must be a number (numeric predictor) or an object of level weights (categorical predictor), not %s",
						kj_type_name(v));
	}
	lr->nterms = n;
	impl->data = lr;
}

/* The contribution of one term for a value. */
static double
term_value(const LrTerm *t, const KaireonValue *v)
{
	int			k;

	if (!t->categorical)
	{
		double		x = kv_number(v);

		return isnan(x) ? 0.0 : t->weight * x;
	}
	if (v->kind == KV_STRING)
	{
		for (k = 0; k < t->nlevels; k++)
			if (strcmp(t->levels[k].level, v->str) == 0)
				return t->levels[k].weight;
	}
	else if (v->kind == KV_BOOL || v->kind == KV_NUMBER)
	{
		/* a level named by a number or boolean matches its text form */
		char		buf[64];

		if (v->kind == KV_BOOL)
			strlcpy(buf, v->num != 0 ? "true" : "false", sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "%.15g", v->num);
		for (k = 0; k < t->nlevels; k++)
			if (strcmp(t->levels[k].level, buf) == 0)
				return t->levels[k].weight;
	}
	return 0.0;
}

/* Score: sigmoid of the linear predictor. */
static double
logistic_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Logistic *lr = impl->data;
	double		z = lr->bias;
	int			i;

	for (i = 0; i < lr->nterms; i++)
		z += term_value(&lr->terms[i], &values[lr->terms[i].feature]);
	return kaireon_sigmoid(z);
}

/* Explanation: the logit, the bias and each predictor's contribution to the logit. */
static json_t *
logistic_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Logistic *lr = impl->data;
	double		z = lr->bias;
	json_t	   *contrib = json_object();
	json_t	   *out = json_object();
	int			i;

	for (i = 0; i < lr->nterms; i++)
	{
		double		c = term_value(&lr->terms[i], &values[lr->terms[i].feature]);

		z += c;
		json_object_set_new(contrib, impl->feature_names[lr->terms[i].feature], json_real(c));
	}
	json_object_set_new(out, "score", json_real(kaireon_sigmoid(z)));
	json_object_set_new(out, "logit", json_real(z));
	json_object_set_new(out, "bias", json_real(lr->bias));
	json_object_set_new(out, "contributions", contrib);
	return out;
}

const ModelOps kaireon_logistic_ops = {
	.type_name = "logistic_regression",
	.compile = logistic_compile,
	.score = logistic_score,
	.explain = logistic_explain,
	.learns_online = false,
	.learn = NULL,
};
