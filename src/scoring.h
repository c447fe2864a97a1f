/*
 * scoring.h
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

#endif							/* KAIREON_SCORING_H */
