/*
 * models/bayesian.c
 *	  bayesian: naive Bayes over binned predictors, in log space with Laplace
 *	  smoothing (alpha, default 1, from 1e-6 to 1e6; counts at most 1e15:
 *	  KAIREON_MODEL_MIN_ALPHA and its neighbours in model.h).
 *
 *	  log-odds = log((P + a) / (N + a))
 *	           + sum over predictors with a value of
 *	             log((p_b + a) / (P_f + a B)) - log((n_b + a) / (N_f + a B))
 *	  score = sigmoid(log-odds), where P, N are the positive and negative
 *	  examples, p_b, n_b the counts of the subject's bin b of predictor f,
 *	  P_f, N_f that predictor's totals and B its number of bins.  A numeric
 *	  predictor has binEdges e1 < ... < ek and k+1 bins (bin i holds
 *	  e_i <= x < e_i+1); a categorical one has a bin per known category plus
 *	  one for unseen categories.  Missing predictors are left out.
 *
 *	  The counts are learned online from respond (learn below) and by
 *	  kaireon.train_model (models/train_fit.c).
 */
#include "postgres.h"

#include <math.h>

#include "scoring/models/model.h"

typedef struct NbCategory
{
	char	   *name;
	double		pos;
	double		neg;
} NbCategory;

typedef struct NbPredictor
{
	int			feature;
	bool		categorical;
	int			nedges;			/* numeric: edges, and nedges + 1 bins */
	double	   *edges;
	double	   *pos;			/* numeric: per bin */
	double	   *neg;
	int			ncats;			/* categorical */
	NbCategory *cats;
	double		total_pos;
	double		total_neg;
} NbPredictor;

typedef struct NaiveBayes
{
	double		alpha;
	double		positives;
	double		negatives;
	int			npred;
	NbPredictor *preds;
} NaiveBayes;

/* Refuse a count (at path, field key) above KAIREON_MODEL_MAX_COUNT. */
static void
check_count(const char *where, const char *path, const char *key, double count)
{
	if (count > KAIREON_MODEL_MAX_COUNT)
		model_error(where, path, "field \"%s\" is %g; a count must be at most %g",
					key, count, KAIREON_MODEL_MAX_COUNT);
}

/* A non-negative count array of length n at obj.key. */
static double *
count_array(const char *where, json_t *obj, const char *path, const char *key, int n)
{
	json_t	   *arr = model_get(where, obj, path, key, JSON_ARRAY, true);
	double	   *out = palloc(sizeof(double) * n);
	size_t		i;
	json_t	   *v;

	if ((int) json_array_size(arr) != n)
		model_error(where, path, "field \"%s\" has %zu counts; binEdges give %d bins",
					key, json_array_size(arr), n);
	json_array_foreach(arr, i, v)
	{
		out[i] = model_number(where, v, path);
		if (out[i] < 0)
			model_error(where, path, "field \"%s\" has a negative count", key);
		check_count(where, path, key, out[i]);
	}
	return out;
}

/* Compile the counts document. */
static void
bayesian_compile(const ModelSource *src, ModelImpl *impl)
{
	const char *where = src->where;
	NaiveBayes *nb = palloc0(sizeof(NaiveBayes));
	json_t	   *preds,
			   *p;
	const char *name;
	int			n = 0;
	static const char *const keys[] = {"alpha", "positives", "negatives", "predictors", "training", NULL};
	static const char *const num_keys[] = {"binEdges", "positive", "negative", NULL};
	static const char *const cat_keys[] = {"categories", NULL};

	model_check_keys(where, src->state, "", keys);
	nb->alpha = model_get_number(where, src->state, "", "alpha", false, 1.0);
	if (!(nb->alpha > 0))
		model_error(where, "", "field \"alpha\" must be above 0");
	/* the adaptive model's range: an enormous alpha made every score NaN */
	if (nb->alpha < KAIREON_MODEL_MIN_ALPHA || nb->alpha > KAIREON_MODEL_MAX_ALPHA)
		model_error(where, "", "field \"alpha\" must be from %g to %g, not %g",
					KAIREON_MODEL_MIN_ALPHA, KAIREON_MODEL_MAX_ALPHA, nb->alpha);
	nb->positives = model_get_number(where, src->state, "", "positives", false, 0);
	nb->negatives = model_get_number(where, src->state, "", "negatives", false, 0);
	if (nb->positives < 0 || nb->negatives < 0)
		model_error(where, "", "fields \"positives\" and \"negatives\" must not be negative");
	check_count(where, "", "positives", nb->positives);
	check_count(where, "", "negatives", nb->negatives);
	model_get(where, src->state, "", "training", JSON_OBJECT, false);
	preds = model_get(where, src->state, "", "predictors", JSON_OBJECT, true);
	nb->preds = palloc0(sizeof(NbPredictor) * Max(json_object_size(preds), 1));
	json_object_foreach(preds, name, p)
	{
		NbPredictor *pr = &nb->preds[n++];
		char		path[300];
		int			i;

		snprintf(path, sizeof(path), "predictors.\"%.200s\"", name);
		if (!json_is_object(p))
			model_error(where, path, "must be an object, not %s", kj_type_name(p));
		pr->feature = model_feature_index(impl, name);
		if (json_object_get(p, "categories") != NULL)
		{
			json_t	   *cats = model_get(where, p, path, "categories", JSON_OBJECT, true);
			const char *cname;
			json_t	   *c;
			int			k = 0;

			model_check_keys(where, p, path, cat_keys);
			pr->categorical = true;
			pr->cats = palloc0(sizeof(NbCategory) * Max(json_object_size(cats), 1));
			json_object_foreach(cats, cname, c)
			{
				char		cpath[600];

				snprintf(cpath, sizeof(cpath), "%s.categories.\"%.200s\"", path, cname);
				if (!json_is_object(c))
					model_error(where, cpath, "must be an object {\"positive\": n, \"negative\": n}");
				pr->cats[k].name = pstrdup(cname);
				pr->cats[k].pos = model_get_number(where, c, cpath, "positive", false, 0);
				pr->cats[k].neg = model_get_number(where, c, cpath, "negative", false, 0);
				if (pr->cats[k].pos < 0 || pr->cats[k].neg < 0)
					model_error(where, cpath, "has a negative count");
				check_count(where, cpath, "positive", pr->cats[k].pos);
				check_count(where, cpath, "negative", pr->cats[k].neg);
				pr->total_pos += pr->cats[k].pos;
				pr->total_neg += pr->cats[k].neg;
				k++;
			}
			pr->ncats = k;
		}
		else
		{
			json_t	   *edges = model_get(where, p, path, "binEdges", JSON_ARRAY, true);
			json_t	   *e;
			size_t		j;

			model_check_keys(where, p, path, num_keys);
			pr->nedges = (int) json_array_size(edges);
			pr->edges = palloc(sizeof(double) * Max(pr->nedges, 1));
			json_array_foreach(edges, j, e)
			{
				pr->edges[j] = model_number(where, e, path);
				if (j > 0 && !(pr->edges[j] > pr->edges[j - 1]))
					model_error(where, path, "field \"binEdges\" must be strictly increasing");
			}
			pr->pos = count_array(where, p, path, "positive", pr->nedges + 1);
			pr->neg = count_array(where, p, path, "negative", pr->nedges + 1);
			for (i = 0; i <= pr->nedges; i++)
			{
				pr->total_pos += pr->pos[i];
				pr->total_neg += pr->neg[i];
			}
		}
	}
	nb->npred = n;
	impl->data = nb;
}

/* The bin of a numeric value: the number of edges at or below it. */
static int
numeric_bin(const NbPredictor *pr, double x)
{
	int			lo = 0,
				hi = pr->nedges;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (pr->edges[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The log-odds contribution of one predictor for a value, with its bin in
 * *bin_label; false when the value is missing.
 */
static bool
predictor_logodds(const NaiveBayes *nb, const NbPredictor *pr, const KaireonValue *v,
				  double *lo, char *bin_label, size_t label_len)
{
	double		a = nb->alpha;
	double		p,
				n,
				bins;

	if (pr->categorical)
	{
		char		buf[64];
		const char *s = kv_level_text(v, buf, sizeof(buf));
		int			k;

		if (s == NULL)
			return false;
		p = n = 0;
		for (k = 0; k < pr->ncats; k++)
			if (strcmp(pr->cats[k].name, s) == 0)
			{
				p = pr->cats[k].pos;
				n = pr->cats[k].neg;
				break;
			}
		bins = pr->ncats + 1;
		if (bin_label)
			strlcpy(bin_label, s, label_len);
	}
	else
	{
		double		x = kv_number(v);
		int			b;

		if (isnan(x))
			return false;
		b = numeric_bin(pr, x);
		p = pr->pos[b];
		n = pr->neg[b];
		bins = pr->nedges + 1;
		if (bin_label)
			snprintf(bin_label, label_len, "%d", b);
	}
	*lo = log((p + a) / (pr->total_pos + a * bins)) - log((n + a) / (pr->total_neg + a * bins));
	return true;
}

/* The prior log-odds with smoothing. */
static double
prior_logodds(const NaiveBayes *nb)
{
	return log((nb->positives + nb->alpha) / (nb->negatives + nb->alpha));
}

/* Score: the posterior probability of a positive outcome. */
static double
bayesian_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const NaiveBayes *nb = impl->data;
	double		z = prior_logodds(nb);
	int			i;

	for (i = 0; i < nb->npred; i++)
	{
		double		lo;

		if (predictor_logodds(nb, &nb->preds[i], &values[nb->preds[i].feature], &lo, NULL, 0))
			z += lo;
	}
	return kaireon_sigmoid(z);
}

/* Explanation: prior log-odds and each predictor's log-odds contribution and bin. */
static json_t *
bayesian_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const NaiveBayes *nb = impl->data;
	double		z = prior_logodds(nb);
	json_t	   *contrib = json_object();
	json_t	   *bins = json_object();
	json_t	   *out = json_object();
	int			i;

	for (i = 0; i < nb->npred; i++)
	{
		const NbPredictor *pr = &nb->preds[i];
		double		lo;
		char		label[256];
		const char *name = impl->feature_names[pr->feature];

		if (predictor_logodds(nb, pr, &values[pr->feature], &lo, label, sizeof(label)))
		{
			z += lo;
			json_object_set_new(contrib, name, json_real(lo));
			json_object_set_new(bins, name, pr->categorical ? json_string(label) : json_integer(atoi(label)));
		}
		else
		{
			json_object_set_new(contrib, name, json_real(0));
			json_object_set_new(bins, name, json_null());
		}
	}
	json_object_set_new(out, "score", json_real(kaireon_sigmoid(z)));
	json_object_set_new(out, "logOdds", json_real(z));
	json_object_set_new(out, "priorLogOdds", json_real(prior_logodds(nb)));
	json_object_set_new(out, "contributions", contrib);
	json_object_set_new(out, "bins", bins);
	json_object_set_new(out, "positives", json_real(nb->positives));
	json_object_set_new(out, "negatives", json_real(nb->negatives));
	return out;
}

/* Add one to a numeric member (creating it at 0). */
static void
bump(json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	json_object_set_new(obj, key, json_real((v && json_is_number(v) ? json_number_value(v) : 0) + 1));
}

/* Learn one outcome: the class count and each present predictor's bin count. */
static void
bayesian_learn(json_t *state, json_t *predictors, const KaireonValue *values,
			   const ModelImpl *impl, const char *arm, bool positive)
{
	const NaiveBayes *nb = impl->data;
	const char *cls = positive ? "positive" : "negative";
	json_t	   *preds = json_object_get(state, "predictors");
	int			i;

	bump(state, positive ? "positives" : "negatives");
	for (i = 0; i < nb->npred; i++)
	{
		const NbPredictor *pr = &nb->preds[i];
		const KaireonValue *v = &values[pr->feature];
		json_t	   *p = json_object_get(preds, impl->feature_names[pr->feature]);

		if (pr->categorical)
		{
			char		buf[64];
			const char *s = kv_level_text(v, buf, sizeof(buf));
			json_t	   *cats = json_object_get(p, "categories");
			json_t	   *c;

			if (s == NULL)
				continue;
			c = json_object_get(cats, s);
			if (c == NULL)
			{
				c = json_object();
				json_object_set_new(c, "positive", json_real(0));
				json_object_set_new(c, "negative", json_real(0));
				json_object_set_new(cats, s, c);
			}
			bump(c, cls);
		}
		else
		{
			double		x = kv_number(v);
			json_t	   *arr;
			int			b;

			if (isnan(x))
				continue;
			b = numeric_bin(pr, x);
			arr = json_object_get(p, cls);
			json_array_set_new(arr, b, json_real(json_number_value(json_array_get(arr, b)) + 1));
		}
	}
}

const ModelOps kaireon_bayesian_ops = {
	.type_name = "bayesian",
	.compile = bayesian_compile,
	.score = bayesian_score,
	.explain = bayesian_explain,
	.learns_online = true,
	.learn = bayesian_learn,
};

/*
 * Fill an empty model_state from the predictors column: zero counts, numeric
 * predictors binned by their binEdges, categorical and boolean ones by value.
 */
void
kaireon_bayesian_init_state(json_t *state, json_t *predictors)
{
	json_t	   *preds = json_object();
	size_t		i;
	json_t	   *p;

	json_object_set_new(state, "alpha", json_real(1));
	json_object_set_new(state, "positives", json_real(0));
	json_object_set_new(state, "negatives", json_real(0));
	json_array_foreach(predictors, i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		json_t	   *type = json_object_get(p, "type");
		json_t	   *edges = json_object_get(p, "binEdges");
		json_t	   *out = json_object();

		if (name == NULL)
			continue;
		if (type && json_is_string(type) && strcmp(json_string_value(type), "numeric") == 0)
		{
			json_t	   *pos = json_array(),
					   *neg = json_array();
			size_t		k;

			if (edges == NULL || !json_is_array(edges))
				model_error("algorithm_models.predictors", name,
							"is numeric and needs \"binEdges\" for a bayesian model");
			for (k = 0; k <= json_array_size(edges); k++)
			{
				json_array_append_new(pos, json_real(0));
				json_array_append_new(neg, json_real(0));
			}
			json_object_set(out, "binEdges", edges);
			json_object_set_new(out, "positive", pos);
			json_object_set_new(out, "negative", neg);
		}
		else
			json_object_set_new(out, "categories", json_object());
		json_object_set_new(preds, name, out);
	}
	json_object_set_new(state, "predictors", preds);
}
