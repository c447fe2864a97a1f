/*
 * models/train.c
 *	  In-database training (kaireon.train_model) and drift checks
 *	  (kaireon.check_drift).
 *
 * Examples are the tenant's outcome interactions (interaction_history rows
 * of type outcome) whose outcome type is classified positive (label 1) or
 * negative (label 0; neutral outcomes are left out), with the customer's
 * attributes from the tenant's published customer data schema (ds_ table,
 * joined on its primary key) merged with the interaction's context (context
 * wins), as recommend sees them.
 *
 * logistic_regression minimises the L2-regularised negative log-likelihood
 *     sum_i [log(1 + e^z_i) - y_i z_i] + (l2 / 2) * |w|^2,  z_i = b + w.x_i
 * (the bias b is not penalised), which is scikit-learn's LogisticRegression
 * objective with C = 1 / l2, by Newton's method (IRLS) with step halving,
 * solving each Newton system by a Cholesky factorisation.
 * bayesian counts each predictor's bins per class (models/bayesian.c).
 *
 * Drift compares the model's scores of two windows of examples: population
 * stability index over the baseline's score deciles, the Kolmogorov-Smirnov
 * statistic, and the AUC of the baseline minus that of the recent window.
 * Feature drift compares each predictor's distribution in the recent window
 * with the one training saw (metrics.featureBaseline, written by train_model):
 * numeric predictors over the training deciles, categorical ones per level,
 * each with a bin for missing values; one PSI per predictor.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "security/session.h"
#include "stats/stats.h"
#include "scoring/models/model.h"
#include "scoring/scoring.h"

PG_FUNCTION_INFO_V1(kaireon_train_model);
PG_FUNCTION_INFO_V1(kaireon_check_drift);

/* Training examples: n rows of nf feature values and a label. */
typedef struct Examples
{
	int			n;
	int			nf;
	KaireonValue *values;		/* n * nf */
	double	   *y;
} Examples;

/*
 * The SQL of the examples of a tenant: label and merged features of each
 * positive or negative outcome in [$2, $3), optionally of offer $4.
 */
static char *
examples_sql(const char *tenant_id, const char *data_schema_id)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	char		nulls[2] = "  ";
	int			rc;
	char	   *join = "";
	char	   *feats = "ih.context";

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = data_schema_id ? CStringGetTextDatum(data_schema_id) : (Datum) 0;
	nulls[1] = data_schema_id ? ' ' : 'n';
	rc = kspi_execute_with_args(
							    "SELECT t.slug, ds.table_name, f.name FROM kaireon.data_schemas ds "
							    "JOIN kaireon.tenants t ON t.id = ds.tenant_id "
							    "JOIN kaireon.schema_fields f ON f.tenant_id = ds.tenant_id AND f.schema_id = ds.id AND f.is_primary_key "
							    "WHERE ds.tenant_id = $1 AND ds.status = 'published' AND ds.entity_type = 'customer' "
							    "AND ds.schema_type = 'entity' AND ($2::text IS NULL OR ds.id = $2) ORDER BY ds.name",
							    2, argtypes, args, nulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "reading data_schemas failed");
	if (SPI_processed > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant \"%s\" has %d published customer data schemas; which one holds the features is ambiguous",
						tenant_id, (int) SPI_processed),
				 errhint("Name it with options => '{\"dataSchemaId\": \"...\"}' or config.training.dataSchemaId.")));
	if (SPI_processed == 0 && data_schema_id != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no published customer data schema \"%s\"", tenant_id, data_schema_id),
				 errhint("Publish it with kaireon.publish_data_schema first.")));
	if (SPI_processed == 1)
	{
		char	   *slug = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		char	   *table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		char	   *pk = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

		join = psprintf(" LEFT JOIN %s.%s c ON c.tenant_id = ih.tenant_id AND c.%s::text = ih.customer_id",
						quote_identifier(psprintf("kaireon_t_%s", slug)), quote_identifier(table),
						quote_identifier(pk));
		feats = "(coalesce(to_jsonb(c) - 'tenant_id', '{}'::jsonb) || ih.context)";
	}
	return psprintf(
					"SELECT x.y, x.features FROM (SELECT CASE coalesce(ot.classification, "
					"CASE ih.outcome_type_key WHEN 'click' THEN 'positive' WHEN 'conversion' THEN 'positive' "
					"WHEN 'share' THEN 'positive' WHEN 'save' THEN 'positive' WHEN 'not_interested' THEN 'negative' "
					"WHEN 'opt_out' THEN 'negative' WHEN 'dismiss' THEN 'negative' WHEN 'complaint' THEN 'negative' "
					"ELSE 'neutral' END) WHEN 'positive' THEN 1 WHEN 'negative' THEN 0 END AS y, "
					"%s AS features, ih.occurred_at, ih.id "
					"FROM kaireon.interaction_history ih "
					"LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = ih.tenant_id AND ot.key = ih.outcome_type_key "
					"AND ot.deleted_at IS NULL%s "
					"WHERE ih.tenant_id = $1 AND ih.interaction_type = 'outcome' "
					"AND ih.occurred_at >= $2 AND ih.occurred_at < $3 AND ($4::text IS NULL OR ih.offer_id = $4)) x "
					"WHERE x.y IS NOT NULL ORDER BY x.occurred_at, x.id",
					feats, join);
}

/* Load the examples of [since, until) with the values of the named features. */
static Examples *
load_examples(const char *tenant_id, const char *data_schema_id, TimestampTz since,
			  TimestampTz until, const char *offer_id, char **names, int nf)
{
	Examples   *ex = palloc0(sizeof(Examples));
	MemoryContext caller = CurrentMemoryContext;
	Oid			argtypes[4] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	char	   *sql;
	Portal		portal;
	SPIPlanPtr	plan;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	sql = examples_sql(tenant_id, data_schema_id);
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = TimestampTzGetDatum(since);
	args[2] = TimestampTzGetDatum(until);
	args[3] = offer_id ? CStringGetTextDatum(offer_id) : (Datum) 0;
	nulls[3] = offer_id ? ' ' : 'n';
	plan = SPI_prepare(sql, 4, argtypes);
	if (plan == NULL)
		elog(ERROR, "preparing the examples query failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, args, nulls, true);
	ex->nf = nf;
	for (;;)
	{
		uint64		k;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		{
			MemoryContext old = MemoryContextSwitchTo(caller);
			int			need = ex->n + (int) SPI_processed;

			if (ex->n == 0)
			{
				ex->values = palloc(sizeof(KaireonValue) * Max(nf, 1) * need);
				ex->y = palloc(sizeof(double) * need);
			}
			else
			{
				ex->values = repalloc_huge(ex->values, sizeof(KaireonValue) * Max(nf, 1) * need);
				ex->y = repalloc_huge(ex->y, sizeof(double) * need);
			}
			for (k = 0; k < SPI_processed; k++)
			{
				bool		isnull;
				HeapTuple	tup = SPI_tuptable->vals[k];
				Jsonb	   *jb;
				int			i;

				ex->y[ex->n] = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
				jb = DatumGetJsonbP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
				for (i = 0; i < nf; i++)
				{
					JsonbValue	vbuf;
					JsonbValue *v = isnull ? NULL :
						getKeyJsonValueFromContainer(&jb->root, names[i], strlen(names[i]), &vbuf);

					kaireon_value_from_jsonb(v, &ex->values[(size_t) ex->n * nf + i]);
				}
				ex->n++;
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	return ex;
}

/* qsort order of (score, label) pairs by score. */
static int
cmp_pair(const void *a, const void *b)
{
	double		x = ((const double *) a)[0],
				y = ((const double *) b)[0];

	return x < y ? -1 : x > y ? 1 : 0;
}

/* AUC of scores against labels (ties count half), or NaN without both classes. */
static double
auc(const double *score, const double *y, int n)
{
	double	   *pairs = palloc(sizeof(double) * 2 * Max(n, 1));
	double		npos = 0,
				nneg = 0,
				rank_sum = 0;
	int			i = 0;

	for (i = 0; i < n; i++)
	{
		pairs[2 * i] = score[i];
		pairs[2 * i + 1] = y[i];
		if (y[i] > 0.5)
			npos++;
		else
			nneg++;
	}
	if (npos == 0 || nneg == 0)
		return NAN;
	qsort(pairs, n, sizeof(double) * 2, cmp_pair);
	i = 0;
	while (i < n)
	{
		int			j = i;
		double		mid,
					pos = 0;

		while (j < n && pairs[2 * j] == pairs[2 * i])
		{
			if (pairs[2 * j + 1] > 0.5)
				pos++;
			j++;
		}
		mid = (i + 1 + j) / 2.0;	/* average 1-based rank of the tie group */
		rank_sum += pos * mid;
		i = j;
	}
	pfree(pairs);
	return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg);
}

/* Mean log loss of probabilities (clamped away from 0 and 1). */
static double
log_loss(const double *p, const double *y, int n)
{
	double		s = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		double		q = Min(Max(p[i], 1e-15), 1 - 1e-15);

		s -= y[i] > 0.5 ? log(q) : log(1 - q);
	}
	return n > 0 ? s / n : NAN;
}

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
static json_t *
train_logistic(Examples *ex, char **names, bool *categorical, double l2, int max_iter, json_t *metrics)
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
	json_object_set_new(metrics, "auc", isnan(auc(prob, ex->y, ex->n)) ? json_null() : json_real(auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(log_loss(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "iterations", json_integer(iters));
	json_object_set_new(metrics, "converged", json_boolean(stop.converged));
	json_object_set_new(metrics, "stoppedBy", json_string(stop.stopped_by));
	json_object_set_new(metrics, "gradientMax", json_real(stop.gradient));
	json_object_set_new(metrics, "gradientTolerance", json_real(1e-10 * Max(1.0, (double) ex->n)));
	return state;
}

/* ---- naive Bayes ---- */

/* qsort order of doubles. */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Decile edges of a numeric feature's values (distinct), for predictors without binEdges. */
static json_t *
decile_edges(Examples *ex, int f)
{
	double	   *v = palloc(sizeof(double) * Max(ex->n, 1));
	int			n = 0,
				i,
				q;
	json_t	   *edges = json_array();
	double		last = -INFINITY;

	for (i = 0; i < ex->n; i++)
	{
		double		d = kv_number(&ex->values[(size_t) i * ex->nf + f]);

		if (!isnan(d))
			v[n++] = d;
	}
	qsort(v, n, sizeof(double), cmp_double);
	for (q = 1; q < 10 && n > 0; q++)
	{
		double		e = v[(int) ((double) q * n / 10)];

		if (e > last)
		{
			json_array_append_new(edges, json_real(e));
			last = e;
		}
	}
	pfree(v);
	return edges;
}

/* Train naive Bayes counts; returns model_state. */
static json_t *
train_bayesian(Examples *ex, char **names, json_t *predictors, double alpha, json_t *metrics)
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
			json_object_set_new(c, "binEdges", decile_edges(ex, (int) k));
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
	json_object_set_new(metrics, "auc", isnan(auc(prob, ex->y, ex->n)) ? json_null() : json_real(auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(log_loss(prob, ex->y, ex->n)));
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
static json_t *
train_online(Examples *ex, char **names, json_t *predictors, json_t *current, json_t *metrics)
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
	json_object_set_new(metrics, "auc", isnan(auc(prob, ex->y, ex->n)) ? json_null() : json_real(auc(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "logLoss", json_real(log_loss(prob, ex->y, ex->n)));
	json_object_set_new(metrics, "updates", json_integer(ex->n));
	return state;
}

/* ---- feature baselines (feature drift) ---- */

/* A categorical baseline lists at most this many levels; later new ones count as "other". */
#define BASELINE_MAX_LEVELS 1000

/*
 * The shares of example column f in the bins of a feature description desc:
 * {"binEdges": [...]} (numeric: bin i holds e_i <= x < e_i+1, bin 0 all below
 * e_1) or {"shares": {level: ...}} (categorical: a level desc does not list
 * counts in otherShare); a missing value counts in missingShare.  Returns
 * {"shares": ..., "otherShare" (categorical), "missingShare"}.
 */
static json_t *
feature_shares(const Examples *ex, int f, json_t *desc)
{
	json_t	   *edges = json_object_get(desc, "binEdges");
	json_t	   *out = json_object();
	double		n = Max(ex->n, 1),
				missing = 0,
				other = 0;
	int			i;

	if (edges != NULL)
	{
		int			k = (int) json_array_size(edges);
		double	   *e = palloc(sizeof(double) * Max(k, 1));
		double	   *cnt = palloc0(sizeof(double) * (k + 1));
		json_t	   *shares = json_array();
		int			b;

		for (b = 0; b < k; b++)
			e[b] = json_number_value(json_array_get(edges, b));
		for (i = 0; i < ex->n; i++)
		{
			double		x = kv_number(&ex->values[(size_t) i * ex->nf + f]);

			if (isnan(x))
			{
				missing++;
				continue;
			}
			for (b = 0; b < k && x >= e[b]; b++);
			cnt[b]++;
		}
		for (b = 0; b <= k; b++)
			json_array_append_new(shares, json_real(cnt[b] / n));
		json_object_set_new(out, "shares", shares);
	}
	else
	{
		json_t	   *levels = json_object_get(desc, "shares");
		json_t	   *shares = json_object();
		const char *level;
		json_t	   *v;

		json_object_foreach(levels, level, v)
			json_object_set_new(shares, level, json_real(0));
		for (i = 0; i < ex->n; i++)
		{
			char		buf[64];
			const char *lv = kv_level_text(&ex->values[(size_t) i * ex->nf + f], buf, sizeof(buf));
			json_t	   *s;

			if (lv == NULL)
				missing++;
			else if ((s = json_object_get(shares, lv)) != NULL)
				json_real_set(s, json_real_value(s) + 1);
			else
				other++;
		}
		json_object_foreach(shares, level, v)
			json_real_set(v, json_real_value(v) / n);
		json_object_set_new(out, "shares", shares);
		json_object_set_new(out, "otherShare", json_real(other / n));
	}
	json_object_set_new(out, "missingShare", json_real(missing / n));
	return out;
}

/*
 * The training distribution of each predictor (metrics.featureBaseline):
 * {"samples": n, "features": {name: {"type", "binEdges" (numeric: the
 * training deciles), "shares", "otherShare" (categorical), "missingShare"}}}.
 * A categorical predictor lists its levels in the order first seen, at most
 * BASELINE_MAX_LEVELS of them.
 */
static json_t *
feature_baseline(const Examples *ex, char **names, const bool *categorical)
{
	json_t	   *features = json_object();
	json_t	   *out = json_object();

	for (int f = 0; f < ex->nf; f++)
	{
		json_t	   *desc = json_object();
		json_t	   *shares;
		const char *key;
		json_t	   *v;

		if (categorical[f])
		{
			json_t	   *levels = json_object();

			for (int i = 0; i < ex->n && json_object_size(levels) < BASELINE_MAX_LEVELS; i++)
			{
				char		buf[64];
				const char *lv = kv_level_text(&ex->values[(size_t) i * ex->nf + f], buf, sizeof(buf));

				if (lv != NULL)
					json_object_set_new(levels, lv, json_real(0));
			}
			json_object_set_new(desc, "type", json_string("categorical"));
			json_object_set_new(desc, "shares", levels);
		}
		else
		{
			json_object_set_new(desc, "type", json_string("numeric"));
			json_object_set_new(desc, "binEdges", decile_edges((Examples *) ex, f));
		}
		shares = feature_shares(ex, f, desc);
		json_object_foreach(shares, key, v)
			json_object_set(desc, key, v);
		json_object_set_new(features, names[f], desc);
	}
	json_object_set_new(out, "samples", json_integer(ex->n));
	json_object_set_new(out, "features", features);
	return out;
}

/* ---- SQL entry points ---- */

/* A number from options, else config.training, else dflt. */
static double
option_number(json_t *options, json_t *training, const char *key, double dflt)
{
	json_t	   *v = json_object_get(options, key);

	if (v == NULL && training)
		v = json_object_get(training, key);
	if (v == NULL)
		return dflt;
	return model_number("train_model options", v, key);
}

/* A string from options, else config.training, else NULL. */
static const char *
option_string(json_t *options, json_t *training, const char *key)
{
	json_t	   *v = json_object_get(options, key);

	if (v == NULL && training)
		v = json_object_get(training, key);
	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		model_error("train_model options", key, "must be a string");
	return json_string_value(v);
}

/* Read a model's row for training: id, type, predictors, config, model_state. */
static void
read_model(const char *tenant, const char *key, char **id, char **type, json_t **preds, json_t **config,
		   json_t **state)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(key);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT id, model_type, predictors::text, config::text, model_state::text FROM kaireon.algorithm_models "
							   "WHERE tenant_id = $1 AND key = $2", 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no model \"%s\"", tenant, key),
				 errhint("Create it in kaireon.algorithm_models first.")));
	*id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	{
		char	   *p = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		char	   *c = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);
		char	   *s = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
		char	   *cid = SPI_palloc(strlen(*id) + 1),
				   *ctype = SPI_palloc(strlen(*type) + 1),
				   *cp = SPI_palloc(strlen(p) + 1),
				   *cc = SPI_palloc(strlen(c) + 1),
				   *cs = SPI_palloc(strlen(s) + 1);

		strcpy(cid, *id);
		strcpy(ctype, *type);
		strcpy(cp, p);
		strcpy(cc, c);
		strcpy(cs, s);
		SPI_finish();
		*id = cid;
		*type = ctype;
		*preds = kj_parse(cp, strlen(cp), "algorithm_models.predictors");
		*config = kj_parse(cc, strlen(cc), "algorithm_models.config");
		*state = kj_parse(cs, strlen(cs), "algorithm_models.model_state");
	}
}

/* A window bound argument, or dflt when null. */
static TimestampTz
ts_arg(FunctionCallInfo fcinfo, int n, TimestampTz dflt)
{
	return PG_ARGISNULL(n) ? dflt : PG_GETARG_TIMESTAMPTZ(n);
}

/*
 * kaireon.train_model(tenant_id, model_key, since, until, options): fit the
 * model from the outcomes of [since, until), store its state and metrics (a
 * new version and model_versions snapshot); returns the metrics.
 */
Datum
kaireon_train_model(PG_FUNCTION_ARGS)
{
	char	   *tenant,
			   *key,
			   *id,
			   *type;
	json_t	   *preds,
			   *config,
			   *training,
			   *options,
			   *metrics = json_object(),
			   *state,
			   *current,
			   *p;
	char	  **names;
	bool	   *categorical;
	int			nf;
	size_t		k;
	Examples   *ex;
	TimestampTz since,
				until;
	double		npos = 0;
	int			i;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and model_key must not be null"),
				 errhint("Pass the tenant and the key of the model to train.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kaireon_check_tenant_access(tenant);
	kaireon_progress_start("train_model", tenant, -1);
	since = ts_arg(fcinfo, 2, DT_NOBEGIN);
	until = ts_arg(fcinfo, 3, DT_NOEND);
	options = PG_ARGISNULL(4) ? json_object() : kj_from_jsonb(PG_GETARG_JSONB_P(4), "options");
	if (!json_is_object(options))
		model_error("train_model options", "", "must be a JSON object");
	{
		static const char *const opt_keys[] = {"l2", "maxIterations", "alpha", "offerId", "dataSchemaId", "minExamples", NULL};

		model_check_keys("train_model options", options, "", opt_keys);
	}
	read_model(tenant, key, &id, &type, &preds, &config, &current);
	training = json_object_get(config, "training");
	if (training && !json_is_object(training))
		model_error("algorithm_models.config", "training", "must be an object");
	if (strcmp(type, "logistic_regression") != 0 && strcmp(type, "bayesian") != 0 &&
		strcmp(type, "online_learner") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is a %s model; train_model trains logistic_regression, bayesian and online_learner models", key, type),
				 errhint("Import gradient_boosted models with kaireon.import_model; bandits and scorecards learn from respond or are written directly.")));
	nf = (int) json_array_size(preds);
	if (nf == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model \"%s\" has no predictors to train on", key),
				 errhint("List them in algorithm_models.predictors, e.g. [{\"name\": \"age\", \"type\": \"numeric\"}].")));
	names = palloc(sizeof(char *) * nf);
	categorical = palloc(sizeof(bool) * nf);
	json_array_foreach(preds, k, p)
	{
		json_t	   *t = json_object_get(p, "type");

		names[k] = pstrdup(json_string_value(json_object_get(p, "name")));
		categorical[k] = t != NULL && strcmp(json_string_value(t), "categorical") == 0;
	}
	kaireon_progress_update("loading examples", 0, -1);
	ex = load_examples(tenant, option_string(options, training, "dataSchemaId"), since, until,
					   option_string(options, training, "offerId"), names, nf);
	for (i = 0; i < ex->n; i++)
		npos += ex->y[i];
	if (ex->n < (int) option_number(options, training, "minExamples", 1) || npos == 0 || npos == ex->n)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" cannot be trained from %d examples (%d positive): both outcomes are needed",
						key, ex->n, (int) npos),
				 errhint("Record positive and negative outcomes in interaction_history for the window first.")));

	if (strcmp(type, "logistic_regression") == 0)
	{
		double		l2 = option_number(options, training, "l2", 1.0);
		int			max_iter = (int) option_number(options, training, "maxIterations", 100);

		if (l2 < 0)
			model_error("train_model options", "l2", "must not be negative");
		if (max_iter < 1 || max_iter > 10000)
			model_error("train_model options", "maxIterations", "must be between 1 and 10000");
		state = train_logistic(ex, names, categorical, l2, max_iter, metrics);
	}
	else if (strcmp(type, "online_learner") == 0)
		state = train_online(ex, names, preds, current, metrics);
	else
	{
		double		alpha = option_number(options, training, "alpha", 1.0);

		if (!(alpha > 0))
			model_error("train_model options", "alpha", "must be above 0");
		state = train_bayesian(ex, names, preds, alpha, metrics);
	}
	json_object_set_new(metrics, "featureBaseline", feature_baseline(ex, names, categorical));
	json_object_set_new(metrics, "samples", json_integer(ex->n));
	json_object_set_new(metrics, "positives", json_integer((json_int_t) npos));
	json_object_set_new(metrics, "negatives", json_integer(ex->n - (json_int_t) npos));
	json_object_set_new(metrics, "trainedAt",
						json_string(timestamptz_to_str(GetCurrentTransactionStartTimestamp())));

	kaireon_progress_update("storing", ex->n, ex->n);
	args[0] = CStringGetTextDatum(kj_dump(state, JSON_COMPACT));
	args[1] = CStringGetTextDatum(kj_dump(metrics, JSON_COMPACT));
	args[2] = CStringGetTextDatum(tenant);
	args[3] = CStringGetTextDatum(id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("UPDATE kaireon.algorithm_models SET model_state = $1::jsonb, "
							   "metrics = metrics || $2::jsonb, last_trained_at = now(), status = 'active' "
							   "WHERE tenant_id = $3 AND id = $4", 4, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "storing the trained model failed");
	SPI_finish();
	kaireon_progress_end();
	PG_RETURN_JSONB_P(DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														 CStringGetDatum(kj_dump(metrics, JSON_COMPACT)))));
}

/* Score every example with a model (values already in its feature order). */
static double *
score_examples(KaireonModel *m, Examples *ex)
{
	double	   *s = palloc(sizeof(double) * Max(ex->n, 1));
	int			i;

	for (i = 0; i < ex->n; i++)
		s[i] = kaireon_model_score_values(m, &ex->values[(size_t) i * ex->nf], NULL);
	return s;
}

/* One bin's term of a population stability index: shares floored at 1e-4 (empty bins). */
static double
psi_term(double baseline_share, double current_share)
{
	double		pb = Max(baseline_share, 1e-4),
				pc = Max(current_share, 1e-4);

	return (pc - pb) * log(pc / pb);
}

/* Population stability index of current against baseline over the baseline's deciles. */
static double
psi(double *base, int nb, double *cur, int nc, json_t *detail)
{
	double	   *sorted = palloc(sizeof(double) * Max(nb, 1));
	double		edges[9];
	double		bc[10] = {0},
				cc[10] = {0};
	double		total = 0;
	int			i,
				b;
	json_t	   *je = json_array(),
			   *jb = json_array(),
			   *jc = json_array();

	memcpy(sorted, base, sizeof(double) * nb);
	qsort(sorted, nb, sizeof(double), cmp_double);
	for (i = 0; i < 9; i++)
	{
		edges[i] = sorted[(int) ((double) (i + 1) * nb / 10)];
		json_array_append_new(je, json_real(edges[i]));
	}
	for (i = 0; i < nb; i++)
	{
		for (b = 0; b < 9 && base[i] >= edges[b]; b++);
		bc[b]++;
	}
	for (i = 0; i < nc; i++)
	{
		for (b = 0; b < 9 && cur[i] >= edges[b]; b++);
		cc[b]++;
	}
	for (b = 0; b < 10; b++)
	{
		total += psi_term(bc[b] / nb, cc[b] / nc);
		json_array_append_new(jb, json_real(bc[b] / nb));
		json_array_append_new(jc, json_real(cc[b] / nc));
	}
	json_object_set_new(detail, "binEdges", je);
	json_object_set_new(detail, "baselineShares", jb);
	json_object_set_new(detail, "currentShares", jc);
	return total;
}

/*
 * Feature drift of the examples cur against a model's featureBaseline: each
 * feature's shares in the baseline's bins, with its PSI over the bins, the
 * missing bin and (categorical) the "other" bin; fills detail's "features"
 * and "drifted" (the features whose PSI exceeds limit) and returns the largest PSI.
 */
static double
feature_drift(const Examples *cur, json_t *baseline, double limit, json_t *detail)
{
	json_t	   *features = json_object_get(baseline, "features");
	json_t	   *out = json_object();
	json_t	   *drifted = json_array();
	const char *name;
	json_t	   *desc;
	int			f = 0;
	double		worst = 0;

	json_object_foreach(features, name, desc)
	{
		json_t	   *now = feature_shares(cur, f++, desc);
		json_t	   *bs = json_object_get(desc, "shares"),
				   *cs = json_object_get(now, "shares");
		double		psi_f = psi_term(kj_num(desc, "missingShare", 0), kj_num(now, "missingShare", 0));

		if (json_is_array(bs))
		{
			for (size_t b = 0; b < json_array_size(bs); b++)
				psi_f += psi_term(json_number_value(json_array_get(bs, b)),
								  json_number_value(json_array_get(cs, b)));
		}
		else
		{
			const char *level;
			json_t	   *v;

			json_object_foreach(bs, level, v)
				psi_f += psi_term(json_number_value(v), kj_num(cs, level, 0));
			psi_f += psi_term(kj_num(desc, "otherShare", 0), kj_num(now, "otherShare", 0));
		}
		json_object_set_new(now, "psi", json_real(psi_f));
		json_object_set_new(out, name, now);
		if (psi_f > limit)
			json_array_append_new(drifted, json_string(name));
		worst = Max(worst, psi_f);
	}
	json_object_set_new(detail, "features", out);
	json_object_set_new(detail, "drifted", drifted);
	return worst;
}

/* Two-sample Kolmogorov-Smirnov statistic. */
static double
ks(double *a, int na, double *b, int nb)
{
	double	   *x = palloc(sizeof(double) * Max(na, 1));
	double	   *y = palloc(sizeof(double) * Max(nb, 1));
	int			i = 0,
				j = 0;
	double		d = 0;

	memcpy(x, a, sizeof(double) * na);
	memcpy(y, b, sizeof(double) * nb);
	qsort(x, na, sizeof(double), cmp_double);
	qsort(y, nb, sizeof(double), cmp_double);
	while (i < na && j < nb)
	{
		double		v = Min(x[i], y[j]);

		while (i < na && x[i] == v)
			i++;
		while (j < nb && y[j] == v)
			j++;
		d = Max(d, fabs((double) i / na - (double) j / nb));
	}
	return d;
}

/* The featureBaseline train_model recorded in a model's metrics, or NULL. */
static json_t *
read_feature_baseline(const char *tenant, const char *model_id)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	json_t	   *out = NULL;
	MemoryContext caller = CurrentMemoryContext;

	args[0] = CStringGetTextDatum(tenant);
	args[1] = CStringGetTextDatum(model_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT metrics -> 'featureBaseline' FROM kaireon.algorithm_models "
							   "WHERE tenant_id = $1 AND id = $2", 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading algorithm_models failed");
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);	/* outlives SPI_finish */

			out = kj_from_jsonb(DatumGetJsonbP(d), "algorithm_models.metrics.featureBaseline");
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	if (out != NULL && !json_is_object(json_object_get(out, "features")))
		model_error("algorithm_models.metrics", "featureBaseline", "must hold an object \"features\" (train_model writes it)");
	return out;
}

/*
 * kaireon.check_drift(tenant_id, model_key, baseline_start, baseline_end,
 * current_start, current_end, thresholds): PSI, KS and AUC decay of the
 * model's scores between the windows, one model_drift_checks row each.
 */
Datum
kaireon_check_drift(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant,
			   *key;
	KaireonModel *m;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	TimestampTz cur_start,
				cur_end,
				base_start,
				base_end;
	json_t	   *thresholds;
	Examples   *base,
			   *cur;
	double	   *sb,
			   *sc;
	const char *const *names;
	int			nf;
	double		scores[4],
				limits[4];
	bool		have[4] = {true, true, true, false};
	const char *types[4] = {"psi", "ks_test", "auc_decay", "feature_drift"};
	json_t	   *bdetail[4],
			   *cdetail[4];
	json_t	   *feature_base;
	double		auc_b,
				auc_c;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and model_key must not be null"),
				 errhint("Pass the tenant and the key of the model to check.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	kaireon_check_tenant_access(tenant);
	cur_end = ts_arg(fcinfo, 5, now);
	cur_start = ts_arg(fcinfo, 4, cur_end - 7 * USECS_PER_DAY);
	base_end = ts_arg(fcinfo, 3, cur_start);
	base_start = ts_arg(fcinfo, 2, base_end - 30 * USECS_PER_DAY);
	if (!(base_start < base_end) || !(cur_start < cur_end))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("each drift window must start before it ends"),
				 errhint("Pass baseline_start < baseline_end and current_start < current_end.")));
	thresholds = PG_ARGISNULL(6) ? json_object() : kj_from_jsonb(PG_GETARG_JSONB_P(6), "thresholds");
	if (!json_is_object(thresholds))
		model_error("check_drift thresholds", "", "must be a JSON object");
	{
		static const char *const keys[] = {"psi", "ks_test", "auc_decay", "feature_drift", NULL};

		model_check_keys("check_drift thresholds", thresholds, "", keys);
	}
	limits[0] = option_number(thresholds, NULL, "psi", 0.2);
	limits[1] = option_number(thresholds, NULL, "ks_test", 0.1);
	limits[2] = option_number(thresholds, NULL, "auc_decay", 0.05);
	limits[3] = option_number(thresholds, NULL, "feature_drift", 0.2);

	m = kaireon_model_get(tenant, key);
	if (m == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" has no trained model \"%s\"", tenant, key),
				 errhint("Drift is measured on a model's scores: train or import it first.")));
	nf = kaireon_model_feature_names(m, &names);
	base = load_examples(tenant, NULL, base_start, base_end, NULL, (char **) names, nf);
	cur = load_examples(tenant, NULL, cur_start, cur_end, NULL, (char **) names, nf);
	if (base->n < 10 || cur->n < 10)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("drift needs at least 10 outcomes in each window; the baseline has %d and the current window %d",
						base->n, cur->n),
				 errhint("Widen the windows.")));
	sb = score_examples(m, base);
	sc = score_examples(m, cur);
	for (i = 0; i < 4; i++)
	{
		bdetail[i] = json_object();
		cdetail[i] = json_object();
		json_object_set_new(bdetail[i], "from", json_string(timestamptz_to_str(base_start)));
		json_object_set_new(bdetail[i], "to", json_string(timestamptz_to_str(base_end)));
		json_object_set_new(bdetail[i], "samples", json_integer(base->n));
		json_object_set_new(cdetail[i], "from", json_string(timestamptz_to_str(cur_start)));
		json_object_set_new(cdetail[i], "to", json_string(timestamptz_to_str(cur_end)));
		json_object_set_new(cdetail[i], "samples", json_integer(cur->n));
	}
	scores[0] = psi(sb, base->n, sc, cur->n, bdetail[0]);
	scores[1] = ks(sb, base->n, sc, cur->n);
	auc_b = auc(sb, base->y, base->n);
	auc_c = auc(sc, cur->y, cur->n);
	if (isnan(auc_b) || isnan(auc_c))
		have[2] = false;
	else
	{
		scores[2] = auc_b - auc_c;
		json_object_set_new(bdetail[2], "auc", json_real(auc_b));
		json_object_set_new(cdetail[2], "auc", json_real(auc_c));
	}
	/* feature drift: the current window's predictors against the training distribution */
	feature_base = read_feature_baseline(tenant, kaireon_model_id(m));
	if (feature_base != NULL)
	{
		json_t	   *features = json_object_get(feature_base, "features");
		char	  **fnames = palloc(sizeof(char *) * Max(json_object_size(features), 1));
		const char *fname;
		json_t	   *v;
		int			fn = 0;

		json_object_foreach(features, fname, v)
			fnames[fn++] = pstrdup(fname);
		scores[3] = feature_drift(load_examples(tenant, NULL, cur_start, cur_end, NULL, fnames, fn),
								  feature_base, limits[3], cdetail[3]);
		json_decref(bdetail[3]);
		bdetail[3] = feature_base;
		/* jsonb gave the count back as a real */
		json_object_set_new(feature_base, "samples", json_integer((json_int_t) kj_num(feature_base, "samples", 0)));
		have[3] = true;
	}

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	for (i = 0; i < 4; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		Oid			argtypes[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID};
		Datum		args[7];
		bool		drifted;

		if (!have[i])
			continue;
		drifted = scores[i] > limits[i];
		args[0] = CStringGetTextDatum(tenant);
		args[1] = CStringGetTextDatum(kaireon_model_id(m));
		args[2] = CStringGetTextDatum(types[i]);
		args[3] = CStringGetTextDatum(kj_dump(bdetail[i], JSON_COMPACT));
		args[4] = CStringGetTextDatum(kj_dump(cdetail[i], JSON_COMPACT));
		args[5] = Float8GetDatum(scores[i]);
		args[6] = Float8GetDatum(limits[i]);
		if (kspi_execute_with_args("INSERT INTO kaireon.model_drift_checks (tenant_id, model_id, check_type, "
								   "baseline, current, drift_score, threshold, drifted) "
								   "VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $6 > $7)",
								   7, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "writing model_drift_checks failed");
		values[0] = CStringGetTextDatum(types[i]);
		values[1] = Float8GetDatum(scores[i]);
		values[2] = Float8GetDatum(limits[i]);
		values[3] = BoolGetDatum(drifted);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
