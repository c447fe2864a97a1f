/*
 * scoring/models/train_fit.c
 *	  Fitting a model to the examples, one function per model family
 *	  (logistic_regression, bayesian, online_learner), for
 *	  kaireon.train_model (train.c).
 *
 * logistic_regression minimises the L2-regularised negative log-likelihood
 *     sum_i [log(1 + e^z_i) - y_i z_i] + (l2 / 2) * |w|^2,  z_i = b + w.x_i
 * (the bias b is not penalised), which is scikit-learn's LogisticRegression
 * objective with C = 1 / l2, by Newton's method (IRLS) with step halving,
 * solving each Newton system by a Cholesky factorisation.
 * bayesian counts each predictor's bins per class (models/bayesian.c).
 * online_learner replays the examples in time order through its online
 * update (models/logistic.c).
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "stats/stats.h"
#include "scoring/models/model.h"
#include "scoring/models/train_internal.h"

/* ---- logistic regression ---- */

/* One column of the design matrix: a numeric feature or one level of a categorical one. */
typedef struct Column
{
	int			feature;
	char	   *level;			/* NULL for numeric */
} Column;

/* The design-matrix value of column c for example row (values of the row). */
static inline double
column_value(const Column *c, const KaireonValue *v)
{
	const KaireonValue *x = &v[c->feature];

	if (c->level == NULL)
	{
		double		d = kv_number(x);

		return isnan(d) ? 0.0 : d;
	}
	if (x->kind == KV_STRING)
		return strcmp(x->str, c->level) == 0 ? 1.0 : 0.0;
	if (x->kind == KV_BOOL)
		return strcmp(c->level, x->num != 0 ? "true" : "false") == 0 ? 1.0 : 0.0;
	if (x->kind == KV_NUMBER)
	{
		char		buf[64];

		snprintf(buf, sizeof(buf), "%.15g", x->num);
		return strcmp(buf, c->level) == 0 ? 1.0 : 0.0;
	}
	return 0.0;
}

/* In-place Cholesky solve of the SPD system A x = b (A is p x p, row-major); false if not SPD. */
static bool
cholesky_solve(double *a, double *b, int p)
{
	int			i,
				j,
				k;

	for (j = 0; j < p; j++)
	{
		double		d = a[j * p + j];

		for (k = 0; k < j; k++)
			d -= a[j * p + k] * a[j * p + k];
		if (!(d > 0))
			return false;
		d = sqrt(d);
		a[j * p + j] = d;
		for (i = j + 1; i < p; i++)
		{
			double		s = a[i * p + j];

			for (k = 0; k < j; k++)
				s -= a[i * p + k] * a[j * p + k];
			a[i * p + j] = s / d;
		}
	}
	for (i = 0; i < p; i++)		/* L y = b */
	{
		double		s = b[i];

		for (k = 0; k < i; k++)
			s -= a[i * p + k] * b[k];
		b[i] = s / a[i * p + i];
	}
	for (i = p - 1; i >= 0; i--)	/* L^T x = y */
	{
		double		s = b[i];

		for (k = i + 1; k < p; k++)
			s -= a[k * p + i] * b[k];
		b[i] = s / a[i * p + i];
	}
	return true;
}

/* The penalised objective at coefficients w (w[0] is the bias), with x the dense design. */
static double
lr_objective(const double *x, const double *y, int n, int p, const double *w, double l2)
{
	double		f = 0;
	int			i,
				j;

	for (i = 0; i < n; i++)
	{
		double		z = 0;

		for (j = 0; j < p; j++)
			z += x[(size_t) i * p + j] * w[j];
		/* log(1 + e^z) without overflow */
		f += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - y[i] * z;
	}
	for (j = 1; j < p; j++)
		f += 0.5 * l2 * w[j] * w[j];
	return f;
}

/* Why Newton's method stopped (metrics.stoppedBy). */
typedef struct LrStop
{
	bool		converged;		/* the gradient criterion holds at the final coefficients */
	const char *stopped_by;		/* "gradient", "step" (steps stopped moving) or "iterations" */
	double		gradient;		/* max |g| at the final coefficients, when known */
} LrStop;

/*
 * Fit by Newton's method; returns iterations, with *stop. Converged means the gradient
 * criterion (max |g| < 1e-10 n) holds; when a step stops moving the coefficients, one more
 * gradient is computed at the final point, and without the criterion the fit stops as
 * "step", not converged.
 */
static int
lr_fit(const double *x, const double *y, int n, int p, double l2, int max_iter, double *w,
	   LrStop *stop)
{
	double	   *h = palloc(sizeof(double) * p * p);
	double	   *g = palloc(sizeof(double) * p);
	double	   *trial = palloc(sizeof(double) * p);
	double		f = lr_objective(x, y, n, p, w, l2);
	double		tolerance = 1e-10 * Max(1.0, (double) n);
	bool		stalled = false;
	int			it;

	stop->converged = false;
	stop->stopped_by = "iterations";
	stop->gradient = NAN;
	for (it = 1; it <= max_iter + 1; it++)
	{
		int			i,
					j,
					k;
		double		step = 1.0,
					gmax = 0;

		kaireon_progress_update("training", it - 1, max_iter);
		memset(h, 0, sizeof(double) * p * p);
		memset(g, 0, sizeof(double) * p);
		for (i = 0; i < n; i++)
		{
			const double *xi = &x[(size_t) i * p];
			double		z = 0,
						q,
						s;

			for (j = 0; j < p; j++)
				z += xi[j] * w[j];
			q = kaireon_sigmoid(z);
			s = q * (1 - q);
			for (j = 0; j < p; j++)
			{
				if (xi[j] == 0)
					continue;
				g[j] += (q - y[i]) * xi[j];
				for (k = 0; k <= j; k++)
					h[j * p + k] += s * xi[j] * xi[k];
			}
			if ((i & 4095) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		for (j = 1; j < p; j++)
		{
			g[j] += l2 * w[j];
			h[j * p + j] += l2;
		}
		for (j = 0; j < p; j++)
		{
			gmax = Max(gmax, fabs(g[j]));
			for (k = j + 1; k < p; k++)
				h[j * p + k] = h[k * p + j];
		}
		stop->gradient = gmax;
		if (gmax < tolerance)
		{
			stop->converged = true;
			stop->stopped_by = "gradient";
			break;
		}
		if (stalled)
		{
			stop->stopped_by = "step";
			break;
		}
		/* the pass after the last iteration only measures the final gradient */
		if (it > max_iter)
			break;
		/* a tiny ridge keeps the unpenalised bias solvable when l2 = 0 */
		for (j = 0; j < p; j++)
			h[j * p + j] += 1e-12;
		if (!cholesky_solve(h, g, p))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("logistic regression training failed: the Newton system is singular"),
					 errhint("Use a positive l2 regularisation, or predictors that vary.")));
		/* step halving until the objective does not increase */
		for (;;)
		{
			double		ft;

			for (j = 0; j < p; j++)
				trial[j] = w[j] - step * g[j];
			ft = lr_objective(x, y, n, p, trial, l2);
			if (ft <= f || step < 1e-10)
			{
				double		dmax = 0;

				for (j = 0; j < p; j++)
					dmax = Max(dmax, fabs(trial[j] - w[j]));
				memcpy(w, trial, sizeof(double) * p);
				f = ft;
				if (dmax < 1e-12)
					stalled = true;
				break;
			}
			step /= 2;
		}
	}
	return Min(it, max_iter);
}

/* Train a logistic regression; returns model_state, fills metrics. */
json_t *
kaireon_train_logistic(Examples *ex, char **names, bool *categorical, double l2, int max_iter,
					   json_t *metrics)
{
	int			nf = ex->nf;
	Column	   *cols = palloc(sizeof(Column) * (nf * 4 + 8));
	int			ncols = 0,
				capcols = nf * 4 + 8;
	int			p,
				i,
				j;
	double	   *x,
			   *w,
			   *prob;
	LrStop		stop;
	int			iters;
	json_t	   *state = json_object(),
			   *weights = json_object(),
			   *training = json_object();

	/* columns: numeric features, then every level seen of each categorical feature */
	for (j = 0; j < nf; j++)
	{
		if (!categorical[j])
		{
			cols[ncols].feature = j;
			cols[ncols++].level = NULL;
			continue;
		}
		for (i = 0; i < ex->n; i++)
		{
			KaireonValue *v = &ex->values[(size_t) i * nf + j];
			char		buf[64];
			const char *s = NULL;
			int			c;

			if (v->kind == KV_STRING)
				s = v->str;
			else if (v->kind == KV_BOOL)
				s = v->num != 0 ? "true" : "false";
			else if (v->kind == KV_NUMBER)
			{
				snprintf(buf, sizeof(buf), "%.15g", v->num);
				s = buf;
			}
			if (s == NULL)
				continue;
			for (c = 0; c < ncols; c++)
				if (cols[c].feature == j && cols[c].level && strcmp(cols[c].level, s) == 0)
					break;
			if (c < ncols)
				continue;
			if (ncols >= 2000)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("logistic regression training: more than 2000 one-hot columns (predictor \"%s\")", names[j]),
						 errhint("Bin or group the levels of high-cardinality categorical predictors.")));
			if (ncols >= capcols)
			{
				capcols *= 2;
				cols = repalloc(cols, sizeof(Column) * capcols);
			}
			cols[ncols].feature = j;
			cols[ncols++].level = pstrdup(s);
		}
	}
	p = ncols + 1;
	x = palloc_extended(sizeof(double) * (size_t) ex->n * p, MCXT_ALLOC_HUGE);
	for (i = 0; i < ex->n; i++)
	{
		x[(size_t) i * p] = 1.0;
		for (j = 0; j < ncols; j++)
			x[(size_t) i * p + j + 1] = column_value(&cols[j], &ex->values[(size_t) i * nf]);
	}
	w = palloc0(sizeof(double) * p);
	iters = lr_fit(x, ex->y, ex->n, p, l2, max_iter, w, &stop);

	prob = palloc(sizeof(double) * Max(ex->n, 1));
	for (i = 0; i < ex->n; i++)
	{
		double		z = 0;

		for (j = 0; j < p; j++)
			z += x[(size_t) i * p + j] * w[j];
		prob[i] = kaireon_sigmoid(z);
	}
	json_object_set_new(state, "bias", json_real(w[0]));
	for (j = 0; j < ncols; j++)
	{
		const char *name = names[cols[j].feature];

		if (cols[j].level == NULL)
			json_object_set_new(weights, name, json_real(w[j + 1]));
		else
		{
			json_t	   *lv = json_object_get(weights, name);

			if (lv == NULL)
			{
				lv = json_object();
				json_object_set_new(weights, name, lv);
			}
			json_object_set_new(lv, cols[j].level, json_real(w[j + 1]));
		}
	}
	/* categorical predictors never seen still appear, with no levels */
	for (j = 0; j < nf; j++)
		if (json_object_get(weights, names[j]) == NULL)
			json_object_set_new(weights, names[j], categorical[j] ? json_object() : json_real(0));
	json_object_set_new(state, "weights", weights);
	json_object_set_new(training, "l2", json_real(l2));
	json_object_set_new(training, "iterations", json_integer(iters));
	json_object_set_new(training, "converged", json_boolean(stop.converged));
	json_object_set_new(state, "training", training);
	json_object_set_new(metrics, "auc", isnan(kaireon_train_auc(prob, ex->y, ex->n)) ? json_null() : json_real(kaireon_train_auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(kaireon_train_log_loss(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "iterations", json_integer(iters));
	json_object_set_new(metrics, "converged", json_boolean(stop.converged));
	json_object_set_new(metrics, "stoppedBy", json_string(stop.stopped_by));
	json_object_set_new(metrics, "gradientMax", json_real(stop.gradient));
	json_object_set_new(metrics, "gradientTolerance", json_real(1e-10 * Max(1.0, (double) ex->n)));
	return state;
}

/* ---- naive Bayes ---- */

/* Train naive Bayes counts; returns model_state. */
json_t *
kaireon_train_bayesian(Examples *ex, char **names, json_t *predictors, double alpha,
					   json_t *metrics)
{
	json_t	   *state = json_object();
	json_t	   *preds = json_array();
	size_t		k;
	json_t	   *p;
	ModelSource src;
	ModelImpl	impl;
	int			i,
				j;
	double	   *prob;
	int		   *map;
	KaireonValue *row;

	/* predictors with edges derived where they are missing */
	json_array_foreach(predictors, k, p)
	{
		json_t	   *c = json_deep_copy(p);
		json_t	   *type = json_object_get(p, "type");

		if (type && strcmp(json_string_value(type), "numeric") == 0 && json_object_get(p, "binEdges") == NULL)
			json_object_set_new(c, "binEdges", kaireon_train_decile_edges(ex, (int) k));
		json_array_append_new(preds, c);
	}
	kaireon_bayesian_init_state(state, preds);
	json_object_set_new(state, "alpha", json_real(alpha));
	src.where = "algorithm_models.model_state";
	src.state = state;
	src.predictors = preds;
	src.config = NULL;
	memset(&impl, 0, sizeof(impl));
	kaireon_bayesian_ops.compile(&src, &impl);
	/* impl's feature j is example column map[j] */
	map = palloc(sizeof(int) * Max(impl.nfeatures, 1));
	for (j = 0; j < impl.nfeatures; j++)
		for (map[j] = 0; map[j] < ex->nf - 1; map[j]++)
			if (strcmp(names[map[j]], impl.feature_names[j]) == 0)
				break;
	row = palloc(sizeof(KaireonValue) * Max(impl.nfeatures, 1));
	for (i = 0; i < ex->n; i++)
	{
		for (j = 0; j < impl.nfeatures; j++)
			row[j] = ex->values[(size_t) i * ex->nf + map[j]];
		kaireon_bayesian_ops.learn(state, preds, row, &impl, NULL, ex->y[i] > 0.5);
		if ((i & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	/* metrics from the trained counts */
	memset(&impl, 0, sizeof(impl));
	kaireon_bayesian_ops.compile(&src, &impl);
	prob = palloc(sizeof(double) * Max(ex->n, 1));
	for (i = 0; i < ex->n; i++)
	{
		for (j = 0; j < impl.nfeatures; j++)
		{
			int			c;

			for (c = 0; c < ex->nf - 1; c++)
				if (strcmp(names[c], impl.feature_names[j]) == 0)
					break;
			row[j] = ex->values[(size_t) i * ex->nf + c];
		}
		prob[i] = kaireon_bayesian_ops.score(&impl, row, NULL);
	}
	json_object_set_new(metrics, "auc", isnan(kaireon_train_auc(prob, ex->y, ex->n)) ? json_null() : json_real(kaireon_train_auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(kaireon_train_log_loss(prob, ex->y, ex->n)));
	return state;
}

/* ---- online learner: the history replayed through the online update ---- */

/* Example i's values in the order of a compiled model's features (matched by name; others missing). */
static void
example_row(const Examples *ex, int i, char **names, const ModelImpl *impl, KaireonValue *row)
{
	for (int j = 0; j < impl->nfeatures; j++)
	{
		int			c;

		for (c = 0; c < ex->nf && strcmp(names[c], impl->feature_names[j]) != 0; c++);
		if (c < ex->nf)
			row[j] = ex->values[(size_t) i * ex->nf + c];
		else
			row[j].kind = KV_NULL;
	}
}

/*
 * Train an online_learner by replaying the examples in time order through its
 * online update (models/logistic.c), from no weights, keeping the settings of
 * the current state; returns model_state and fills metrics (auc, logLoss).
 */
json_t *
kaireon_train_online(Examples *ex, char **names, json_t *predictors, json_t *current,
					 json_t *metrics)
{
	static const char *const settings[] = {"learningRate", "alpha", "eta0", "powerT", "fitIntercept", NULL};
	json_t	   *state = json_object();
	MemoryContext step = AllocSetContextCreate(CurrentMemoryContext, "kaireon online replay",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext outer = CurrentMemoryContext;
	ModelSource src;
	ModelImpl	impl;
	KaireonValue *row = NULL;
	double	   *prob = palloc(sizeof(double) * Max(ex->n, 1));

	for (const char *const *k = settings; *k != NULL; k++)
		if (json_object_get(current, *k) != NULL)
			json_object_set(state, *k, json_object_get(current, *k));
	src.where = "algorithm_models.model_state";
	src.state = state;
	src.predictors = predictors;
	src.config = NULL;
	/* one more pass than examples: the last one compiles the trained model for the metrics */
	for (int i = 0; i <= ex->n; i++)
	{
		MemoryContextReset(step);
		MemoryContextSwitchTo(step);
		memset(&impl, 0, sizeof(impl));
		kaireon_online_ops.compile(&src, &impl);
		MemoryContextSwitchTo(outer);
		row = row ? repalloc(row, sizeof(KaireonValue) * (impl.nfeatures + 1))
			: palloc(sizeof(KaireonValue) * (impl.nfeatures + 1));
		if (i < ex->n)
		{
			example_row(ex, i, names, &impl, row);
			kaireon_online_ops.learn(state, predictors, row, &impl, NULL, ex->y[i] > 0.5);
		}
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	for (int i = 0; i < ex->n; i++)
	{
		example_row(ex, i, names, &impl, row);
		prob[i] = kaireon_online_ops.score(&impl, row, NULL);
	}
	json_object_set_new(metrics, "auc", isnan(kaireon_train_auc(prob, ex->y, ex->n)) ? json_null() : json_real(kaireon_train_auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(kaireon_train_log_loss(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "updates", json_integer(ex->n));
	return state;
}
