/*
 * models/logistic.c
 *	  logistic_regression: score = sigmoid(bias + sum of weight * value).
 *	  A numeric predictor has one weight (a missing or non-numeric value
 *	  contributes 0, booleans count 0 or 1); a categorical predictor is one-hot
 *	  encoded, with one weight per known level (an unknown or missing level
 *	  contributes 0).  models/train_fit.c fits these weights in the database.
 *
 *	  online_learner: the same scorer, whose weights are learned online by
 *	  stochastic gradient descent on the log loss with an L2 penalty, one
 *	  outcome at a time (respond, kaireon.model_learn, or train_model's pass
 *	  over the history), with scikit-learn's SGDClassifier update.  For
 *	  outcome y (+1 positive, -1 negative), t the number of updates so far
 *	  plus one, and p = bias + w.x before the update:
 *	    eta    = eta0 (constant) | eta0 / t^powerT (invscaling)
 *	           | 1 / (alpha (t0 + t - 1)) (optimal, t0 = 1 / (alpha sqrt(1 / sqrt(alpha))))
 *	    g      = -y / (e^(yp) + 1)   (e^(-yp) (-y) when yp > 18, -y when yp < -18)
 *	    u      = -eta g
 *	    w      = max(0, 1 - eta alpha) w + u x
 *	    bias   = bias + u            (fitIntercept; the bias is not penalised)
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

/* online_learner's learning-rate schedules (scikit-learn's learning_rate) */
typedef enum SgdSchedule
{
	SGD_CONSTANT, SGD_INVSCALING, SGD_OPTIMAL
} SgdSchedule;

static const char *const sgd_schedule_names[] = {"constant", "invscaling", "optimal", NULL};

/* online_learner's settings and progress (scikit-learn's defaults) */
typedef struct SgdSettings
{
	SgdSchedule schedule;		/* learningRate: optimal */
	double		alpha;			/* L2 strength: 0.0001 */
	double		eta0;			/* initial rate of constant / invscaling: 0.01 */
	double		power_t;		/* invscaling exponent: 0.5 */
	bool		fit_intercept;	/* true */
	double		updates;		/* outcomes learned so far (t - 1) */
} SgdSettings;

typedef struct Logistic
{
	double		bias;
	int			nterms;
	LrTerm	   *terms;
	SgdSettings sgd;			/* online_learner only */
} Logistic;

/* Read online_learner's settings from its state (22023 naming the field when out of range). */
static void
sgd_settings(const char *where, json_t *state, SgdSettings *s)
{
	json_t	   *v = model_get(where, state, "", "learningRate", JSON_STRING, false);
	json_t	   *fi = json_object_get(state, "fitIntercept");

	s->schedule = SGD_OPTIMAL;
	if (v != NULL)
	{
		int			k;

		for (k = 0; sgd_schedule_names[k] != NULL; k++)
			if (strcmp(sgd_schedule_names[k], json_string_value(v)) == 0)
				break;
		if (sgd_schedule_names[k] == NULL)
			model_error(where, "learningRate", "must be constant, invscaling or optimal, not \"%s\"",
						json_string_value(v));
		s->schedule = (SgdSchedule) k;
	}
	s->alpha = model_get_number(where, state, "", "alpha", false, 0.0001);
	s->eta0 = model_get_number(where, state, "", "eta0", false, 0.01);
	s->power_t = model_get_number(where, state, "", "powerT", false, 0.5);
	s->updates = model_get_number(where, state, "", "updates", false, 0);
	if (fi != NULL && !json_is_boolean(fi))
		model_error(where, "fitIntercept", "must be true or false, not %s", kj_type_name(fi));
	s->fit_intercept = fi == NULL || json_is_true(fi);
	if (s->alpha < 0 || (s->schedule == SGD_OPTIMAL && !(s->alpha > 0)))
		model_error(where, "alpha", "must be above 0 (at least 0 unless learningRate is optimal), not %g", s->alpha);
	if (s->schedule != SGD_OPTIMAL && !(s->eta0 > 0))
		model_error(where, "eta0", "must be above 0 for learningRate %s, not %g",
					sgd_schedule_names[s->schedule], s->eta0);
	if (s->updates < 0 || s->updates != floor(s->updates))
		model_error(where, "updates", "must be a whole number of at least 0, not %g", s->updates);
}

/*
 * Compile {"bias": b, "weights": {"x": w, "c": {"level": w, ...}}}; for an
 * online learner both may be absent (a fresh model), the SGD settings may be
 * there, and the predictors column adds the features it has no weight for yet.
 */
static void
compile_weights(const ModelSource *src, ModelImpl *impl, bool online)
{
	const char *where = src->where;
	Logistic   *lr = palloc0(sizeof(Logistic));
	json_t	   *weights,
			   *v;
	const char *name;
	int			n = 0;
	static const char *const keys[] = {"bias", "weights", "training", NULL};
	static const char *const online_keys[] = {"bias", "weights", "learningRate", "alpha", "eta0",
	"powerT", "fitIntercept", "updates", NULL};

	model_check_keys(where, src->state, "", online ? online_keys : keys);
	lr->bias = model_get_weight(where, src->state, "", "bias", !online, 0);
	weights = model_get(where, src->state, "", "weights", JSON_OBJECT, !online);
	if (online)
		sgd_settings(where, src->state, &lr->sgd);
	else
		model_get(where, src->state, "", "training", JSON_OBJECT, false);
	lr->terms = palloc0(sizeof(LrTerm) * (json_object_size(weights) + 1));
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
	/* an online learner reads every listed predictor, weighted or not yet */
	if (online && src->predictors != NULL)
	{
		size_t		i;
		json_t	   *p;

		json_array_foreach(src->predictors, i, p)
		{
			json_t	   *pn = json_object_get(p, "name");

			if (json_is_string(pn) && json_string_length(pn) > 0)
				model_feature_index(impl, json_string_value(pn));
		}
	}
}

/* Compile a logistic_regression model. */
static void
logistic_compile(const ModelSource *src, ModelImpl *impl)
{
	compile_weights(src, impl, false);
}

/* Compile an online_learner model. */
static void
online_compile(const ModelSource *src, ModelImpl *impl)
{
	compile_weights(src, impl, true);
}

/* The contribution of one term for a value. */
static double
term_value(const LrTerm *t, const KaireonValue *v)
{
	int			k;
	char		buf[64];
	const char *level;

	if (!t->categorical)
	{
		double		x = kv_number(v);

		return isnan(x) ? 0.0 : t->weight * x;
	}
	/* a level named by a number or boolean matches its text form */
	level = kv_level_text(v, buf, sizeof(buf));
	for (k = 0; level != NULL && k < t->nlevels; k++)
		if (strcmp(t->levels[k].level, level) == 0)
			return t->levels[k].weight;
	return 0.0;
}

/* The linear predictor bias + sum of terms. */
static double
logistic_score_margin(const ModelImpl *impl, const KaireonValue *values)
{
	const Logistic *lr = impl->data;
	double		z = lr->bias;
	int			i;

	for (i = 0; i < lr->nterms; i++)
		z += term_value(&lr->terms[i], &values[lr->terms[i].feature]);
	return z;
}

/* Score: sigmoid of the linear predictor. */
static double
logistic_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	return kaireon_sigmoid(logistic_score_margin(impl, values));
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

/* ---- online_learner: SGD on the log loss with L2 (scikit-learn's SGDClassifier) ---- */

/* The learning rate of update number t (from 1). */
static double
sgd_eta(const SgdSettings *s, double t)
{
	switch (s->schedule)
	{
		case SGD_CONSTANT:
			return s->eta0;
		case SGD_INVSCALING:
			return s->eta0 / pow(t, s->power_t);
		case SGD_OPTIMAL:
			{
				/*
				 * t0 makes the first rate equal a "typical weight" sqrt(1 /
				 * sqrt(alpha)) divided by max(1, g(-typw, +1)), which is 1 for
				 * the log loss (its derivative is negative there)
				 */
				double		typw = sqrt(1.0 / sqrt(s->alpha));
				double		t0 = 1.0 / (typw * s->alpha);

				return 1.0 / (s->alpha * (t0 + t - 1));
			}
	}
	return 0;					/* not reached */
}

/* Derivative of the log loss log(1 + e^(-yp)) with respect to p, with its cut-offs at |yp| 18. */
static double
log_loss_derivative(double p, double y)
{
	double		z = p * y;

	if (z > 18.0)
		return exp(-z) * -y;
	if (z < -18.0)
		return -y;
	return -y / (exp(z) + 1.0);
}

/* Scale every weight of a weights object (level weights too) by c. */
static void
scale_weights(json_t *weights, double c)
{
	const char *name;
	json_t	   *v;

	json_object_foreach(weights, name, v)
	{
		if (json_is_object(v))
			scale_weights(v, c);
		else
			json_object_set_new(weights, name, json_real(json_number_value(v) * c));
	}
}

/* Is a predictor of the predictors column categorical? */
static bool
predictor_categorical(json_t *predictors, const char *name)
{
	size_t		i;
	json_t	   *p;

	json_array_foreach(predictors, i, p)
	{
		json_t	   *t = json_object_get(p, "type");

		const char *pn = kj_str(p, "name");

		if (pn != NULL && strcmp(pn, name) == 0)
			return t != NULL && json_is_string(t) && strcmp(json_string_value(t), "categorical") == 0;
	}
	return false;
}

/*
 * A weight or bias an SGD step produced: finite and within the models' bound, else 22003
 * naming it (a step that overflows must not be dropped, nor stored for the validation to refuse).
 */
static double
sgd_checked(double value, const char *what)
{
	if (!isfinite(value) || fabs(value) > KAIREON_MODEL_MAX_WEIGHT)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("online_learner step diverged: %s would become %g", what, value),
				 errhint("Lower eta0 or use learningRate \"optimal\" or \"invscaling\", and keep feature values on a moderate scale.")));
	return value;
}

/*
 * Learn one outcome: one SGD step on the state document, in place (the order
 * of scikit-learn's _plain_sgd: rate, margin, decay of the weights, step on the
 * weights and the bias, then the count).  A feature without a weight gets one
 * (a numeric predictor its first weight, a categorical one its level's).
 */
static void
online_learn(json_t *state, json_t *predictors, const KaireonValue *values,
			 const ModelImpl *impl, const char *arm, bool positive)
{
	const Logistic *lr = impl->data;
	const SgdSettings *s = &lr->sgd;
	double		y = positive ? 1.0 : -1.0;
	double		p = logistic_score_margin(impl, values);
	double		eta = sgd_eta(s, s->updates + 1);
	double		g = log_loss_derivative(p, y);
	double		u;
	json_t	   *weights = json_object_get(state, "weights");

	if (g < -1e12)
		g = -1e12;
	else if (g > 1e12)
		g = 1e12;
	u = -eta * g;
	if (weights == NULL)
	{
		weights = json_object();
		json_object_set_new(state, "weights", weights);
	}
	scale_weights(weights, Max(0.0, 1.0 - eta * s->alpha));
	for (int f = 0; f < impl->nfeatures && u != 0.0; f++)
	{
		const char *name = impl->feature_names[f];
		const KaireonValue *v = &values[f];
		json_t	   *w = json_object_get(weights, name);
		bool		categorical = w != NULL ? json_is_object(w) : predictor_categorical(predictors, name);

		if (kv_missing(v))
			continue;
		if (categorical)
		{
			char		buf[64];
			const char *level = kv_level_text(v, buf, sizeof(buf));
			json_t	   *lw;

			if (w == NULL)
			{
				w = json_object();
				json_object_set_new(weights, name, w);
			}
			lw = json_object_get(w, level);
			json_object_set_new(w, level, json_real(sgd_checked((lw ? json_number_value(lw) : 0.0) + u, name)));
		}
		else
		{
			double		x = kv_number(v);

			if (isnan(x) || x == 0.0)
				continue;
			json_object_set_new(weights, name, json_real(sgd_checked((w ? json_number_value(w) : 0.0) + u * x, name)));
		}
	}
	if (u != 0.0 && s->fit_intercept)
		json_object_set_new(state, "bias", json_real(sgd_checked(lr->bias + u, "bias")));
	else if (json_object_get(state, "bias") == NULL)
		json_object_set_new(state, "bias", json_real(lr->bias));
	json_object_set_new(state, "updates", json_integer((json_int_t) s->updates + 1));
}

const ModelOps kaireon_online_ops = {
	.type_name = "online_learner",
	.compile = online_compile,
	.score = logistic_score,
	.explain = logistic_explain,
	.learns_online = true,
	.learn = online_learn,
};
