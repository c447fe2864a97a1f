/*
 * models/model.h
 *	  Internal interface between the scoring module (scoring.c: cache, SQL
 *	  entry points, dispatch) and the model types (one file each under
 *	  src/scoring/models/).  Not for use outside src/scoring/scoring.c and src/scoring/models/.
 *
 * A model type compiles its algorithm_models row (model_state, predictors,
 * config) into a C struct once; scoring then works on a vector of feature
 * values gathered in the order of the model's feature list, so no type looks
 * names up per row.  Compilation errors are ereport(ERROR) with SQLSTATE
 * 22023 naming the offending field (model_error below).
 */
#ifndef KAIREON_MODELS_MODEL_H
#define KAIREON_MODELS_MODEL_H

#include "postgres.h"

#include "util/json.h"

#include "scoring/scoring.h"

/* What a compiling model type is told: where errors come from, and its documents. */
typedef struct ModelSource
{
	const char *where;			/* "algorithm_models.model_state" or an import format */
	json_t	   *state;			/* model_state (object) */
	json_t	   *predictors;		/* predictors (array) */
	json_t	   *config;			/* config (object) */
	const char *tenant_id;		/* the model's tenant and algorithm_models id ("" when checking) */
	const char *model_id;
} ModelSource;

/*
 * A compiled model of one type.  feature_names lists the features it reads, in
 * the order score() receives them.
 */
typedef struct ModelImpl
{
	void	   *data;
	int			nfeatures;
	char	  **feature_names;
} ModelImpl;

/* The operations of one model type. */
typedef struct ModelOps
{
	const char *type_name;		/* algorithm_models.model_type */
	/* compile into impl (in the current memory context); ereport 22023 on bad input */
	void		(*compile) (const ModelSource *src, ModelImpl *impl);
	/* score one subject from its gathered feature values */
	double		(*score) (const ModelImpl *impl, const KaireonValue *values, const char *arm);
	/*
	 * optional: score nrows subjects at once (kaireon_model_score_batch in scoring.h: rows of
	 * values, arms, the features shared by every row, the rows' ids or NULL), out[r] exactly
	 * score() of row r; NULL: score() row by row
	 */
	void		(*score_batch) (const ModelImpl *impl, const KaireonValue *values, int nrows,
								const char *const *arms, const bool *shared, const int *row_ids,
								double *out);
	/* the score with its factors, as a JSON object */
	json_t	   *(*explain) (const ModelImpl *impl, const KaireonValue *values, const char *arm);
	/* does this type learn online (respond updates its state)? */
	bool		learns_online;
	/* does the score depend on the arm (per-offer state)? */
	bool		per_arm;
	/* update a model_state document in place for one outcome (learns_online types but adaptive) */
	void		(*learn) (json_t *state, json_t *predictors, const KaireonValue *values,
						  const ModelImpl *impl, const char *arm, bool positive);
} ModelOps;

extern const ModelOps kaireon_scorecard_ops;
extern const ModelOps kaireon_bayesian_ops;
extern const ModelOps kaireon_logistic_ops;
extern const ModelOps kaireon_online_ops;
extern const ModelOps kaireon_trees_ops;
extern const ModelOps kaireon_thompson_ops;
extern const ModelOps kaireon_epsilon_ops;
extern const ModelOps kaireon_adaptive_ops;

/*
 * adaptive (models/adaptive.c): learn one outcome of the arm's model (one upsert of this
 * backend's model_adaptations shard row), and the report of the arm's predictors.
 */
extern void kaireon_adaptive_learn(const ModelImpl *impl, const KaireonValue *values,
								   const char *arm, bool positive);
extern json_t *kaireon_adaptive_report(const ModelImpl *impl, const char *arm, const char *channel);

/* Fill an empty bayesian model_state with zero counts for the predictors column. */
extern void kaireon_bayesian_init_state(json_t *state, json_t *predictors);


/* ---- helpers shared by the model types (models/common.c) ---- */

/* ereport 22023: "invalid <where>: <path> <problem>" with a hint about docs/models.md */
extern void model_error(const char *where, const char *path, const char *fmt,...)
			pg_attribute_printf(3, 4) pg_attribute_noreturn();

/* member of an object that must be there / may be there, type-checked */
extern json_t *model_get(const char *where, json_t *obj, const char *path, const char *key,
						 int json_type, bool required);
extern double model_number(const char *where, json_t *v, const char *path);
extern double model_get_number(const char *where, json_t *obj, const char *path,
							   const char *key, bool required, double dflt);
/*
 * a number added up or multiplied with feature values (logistic weights and bias, scorecard
 * points): finite and at most this in magnitude (docs/models.md, "Finite numbers")
 */
#define KAIREON_MODEL_MAX_WEIGHT 1e100
/*
 * the Laplace smoothing of naive-Bayes counts (bayesian model_state and train_model's option,
 * adaptive config): from KAIREON_MODEL_MIN_ALPHA to KAIREON_MODEL_MAX_ALPHA; and a count of
 * examples (bayesian counts) at most KAIREON_MODEL_MAX_COUNT, exact in double precision
 */
#define KAIREON_MODEL_MIN_ALPHA 1e-6
#define KAIREON_MODEL_MAX_ALPHA 1e6
#define KAIREON_MODEL_MAX_COUNT 1e15
extern double model_weight(const char *where, json_t *v, const char *path);
extern double model_get_weight(const char *where, json_t *obj, const char *path,
							   const char *key, bool required, double dflt);
/* refuse members of obj outside allowed (NULL-terminated) */
extern void model_check_keys(const char *where, json_t *obj, const char *path,
							 const char *const *allowed);

/* index of name in impl's feature list, adding it when absent */
extern int	model_feature_index(ModelImpl *impl, const char *name);

/* value as a number: numbers and booleans; NaN for missing, null and strings */
extern double kv_number(const KaireonValue *v);
/* is the value absent (KV_NULL) or missing? */
static inline bool
kv_missing(const KaireonValue *v)
{
	return v->kind == KV_NULL;
}

/* a jsonb value as a KaireonValue (strings copied; NULL, null, arrays, objects: KV_NULL) */
extern void kaireon_value_from_jsonb(const JsonbValue *v, KaireonValue *out);

/* the name of the categorical level a value falls in (buf: at least 64 bytes), NULL when missing */
extern const char *kv_level_text(const KaireonValue *v, char *buf, size_t len);

/* a KaireonValue as JSON (for explanations) */
extern json_t *kv_to_json(const KaireonValue *v);

/* the logistic function, computed without overflow */
extern double kaireon_sigmoid(double x);

/* uniform random number in [0, 1) from the models' generator (common.c), and its seed */
extern double model_random(void);
extern void model_random_seed(uint64 seed);

#endif							/* KAIREON_MODELS_MODEL_H */
