/*
 * scoring/scoring.h
 *	  The one interface between the recommend pipeline (and any other caller
 *	  that needs a model's opinion) and the model scorers.
 *
 * A caller describes one scoring subject (a customer, with its context and a
 * candidate offer) as a KaireonFeatures lookup, finds a tenant's model by key
 * through the per-backend model cache, and asks it for a score.  Feature names
 * are the plain attribute names of the customer's data and the request context
 * (context wins), plus "offer.<column>" for the candidate offer's fields.
 *
 * Models are compiled once per backend and cached; the cache is invalidated
 * when algorithm_models changes (the scoring module owns that).  Lookups and
 * scores do no catalog or SPI work once a model is cached.
 */
#ifndef KAIREON_SCORING_H
#define KAIREON_SCORING_H

#include "postgres.h"

#include "utils/jsonb.h"

#include "config/types.h"

/* module init (kaireon.c): the relcache callback of the model cache */
extern void kaireon_scoring_init(void);

/* experiment.c: sticky assignment buckets in [0, 100) (experiments, control groups) */
extern double kaireon_assignment_bucket(const char *key, const char *customer_id);
extern double kaireon_control_bucket(const char *tenant_id, const char *scope, const char *customer_id);
extern int	kaireon_split_arm(const char *key, const char *customer_id, const double *weights, int n, double total);

/* The kind of a feature value. */
typedef enum KaireonValueKind
{
	KV_NULL,					/* present but null */
	KV_NUMBER,
	KV_STRING,
	KV_BOOL
} KaireonValueKind;

/* One feature value; strings are owned by the caller and live as long as the call. */
typedef struct KaireonValue
{
	KaireonValueKind kind;
	double		num;			/* KV_NUMBER, and KV_BOOL as 0 or 1 */
	const char *str;			/* KV_STRING */
} KaireonValue;

/*
 * Feature lookup: get() fills *out and returns true when the subject has the
 * feature, false when it is missing.  A callback, so that callers need not
 * copy attributes for every candidate.
 */
typedef struct KaireonFeatures
{
	bool		(*get) (const struct KaireonFeatures *self, const char *name, KaireonValue *out);
	void	   *arg;
} KaireonFeatures;

/* A compiled model (opaque outside the scoring module). */
typedef struct KaireonModel KaireonModel;

/*
 * Score from values already in the model's feature order (model types; and callers that score
 * one subject against many arms, with values from kaireon_model_gather).
 */
extern double kaireon_model_score_values(KaireonModel *model, const KaireonValue *values,
										 const char *arm);

/*
 * Score nrows subjects at once, e.g. the candidates of one decision: row r's values at
 * values + r * nfeatures (the model's feature order, as kaireon_model_feature_names lists it),
 * arms[r] its arm (arms may be NULL when every arm is NULL), shared[f] true when feature f has
 * the same value in every row (a feature of the customer or of the request), which lets a model
 * type evaluate what reads only those once (tree models: the customer's part of each tree).
 * row_ids (may be NULL) name rows that come back batch after batch (a decision's offers: the
 * offer's index in the configuration), which lets a model type find what it keeps for a row's
 * own values without looking the values up; only a hint: an id whose row's values changed
 * costs that lookup, never a wrong score. out[r] is exactly kaireon_model_score_values of
 * row r, and the rows are scored in order (models that draw random numbers draw them as row
 * by row would).
 */
extern void kaireon_model_score_batch(KaireonModel *model, const KaireonValue *values, int nrows,
									  const char *const *arms, const bool *shared, const int *row_ids,
									  double *out);

/* For the model types (models/): the ops (models/model.h) of a model_type name, or NULL. */
struct ModelOps;
extern const struct ModelOps *kaireon_model_ops(const char *type_name);

/*
 * The tenant's model with this key, compiled and cached, or NULL when the
 * tenant has no such model (callers fall back; that is not an error).
 */
extern KaireonModel *kaireon_model_get(const char *tenant_id, const char *model_key);

/*
 * Score a subject: a probability in [0, 1] for classifiers and bandits, the
 * raw prediction for regression models.  arm is the candidate offer id, used
 * by per-arm models (bandits); others ignore it.
 */
extern double kaireon_model_score(KaireonModel *model, const KaireonFeatures *features,
								  const char *arm);


/* ---- additions of the scoring module (docs/models.md) ---- */

/* kaireon_model_get, but also returning models whose state is still empty (untrained). */
extern KaireonModel *kaireon_model_lookup(const char *tenant_id, const char *model_key);

/*
 * kaireon_model_lookup for a decision, which falls back instead of failing: NULL
 * with *problem set (the error message) when the model's row cannot be compiled;
 * NULL with *problem NULL when there is no such model.  Other errors are raised.
 */
extern KaireonModel *kaireon_model_lookup_for_decision(const char *tenant_id, const char *model_key,
													   char **problem);

/* The score with its factors (per-type JSON object, see docs/models.md), as jsonb. */
extern Jsonb *kaireon_model_explain(KaireonModel *model, const KaireonFeatures *features,
									const char *arm);

/* The model's algorithm_models id, key and registry_status. */
extern const char *kaireon_model_id(const KaireonModel *model);
extern const char *kaireon_model_key(const KaireonModel *model);
extern const char *kaireon_model_registry_status(const KaireonModel *model);

/*
 * May the model rank candidates?  False for shadow and archived models: a
 * shadow model is scored and logged (kaireon.log_shadow_scores) but never ranks.
 */
extern bool kaireon_model_ranks(const KaireonModel *model);

/* Does the score depend on the candidate offer (per-arm state or offer.<field> features)? */
extern bool kaireon_model_per_offer(const KaireonModel *model);

/* Does the model read a feature of the candidate offer (offer.<field>)? */
extern bool kaireon_model_reads_offer(const KaireonModel *model);

/* A subject's values of the model's features, in its order (palloc'd in the current context). */
extern KaireonValue *kaireon_model_gather(KaireonModel *model, const KaireonFeatures *features);

/* The feature names a model reads, in the order of kaireon.score's float8[] form. */
extern int	kaireon_model_feature_names(const KaireonModel *model, const char *const **names);

/*
 * The (trained) shadow models of the model's registry family, other than the
 * model itself; *shadows is palloc'd in the current context.
 */
extern int	kaireon_model_shadows(KaireonModel *model, KaireonModel ***shadows);

/*
 * Shard rows per scope of model_adaptations (see model_adaptations.shard): a backend writes
 * the shard MyBackendId % KAIREON_ADAPTATION_SHARDS, so concurrent learners update different
 * rows of the hot scopes (respond's adaptive counts, adaptive models).
 */
#define KAIREON_ADAPTATION_SHARDS 16

/* KaireonOutcomeClass, the classification of an outcome type: config/types.h */

/*
 * Online learning, for respond: update the state of the tenant's model with
 * this key from one outcome (bayesian: class and bin counts of the features;
 * bandits: the arm's counts).  Takes the model's row lock, so concurrent calls
 * serialise.  Returns false, changing nothing, when the model does not exist,
 * does not learn online, or the outcome is neutral.  arm is the offer id
 * (required by bandits); features may be NULL for bandits.
 */
extern bool kaireon_model_learn(const char *tenant_id, const char *model_key, const char *arm,
								const KaireonFeatures *features, KaireonOutcomeClass outcome);

#endif							/* KAIREON_SCORING_H */
