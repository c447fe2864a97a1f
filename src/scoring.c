/*
 * scoring.c
 *	  The scoring interface of scoring.h before any model type is implemented:
 *	  no tenant has a usable model yet, so kaireon_model_get answers NULL and
 *	  callers take their documented fallback (adaptive propensity, then 0.5).
 *	  The model scorers (scorecard, naive Bayes, logistic regression, tree
 *	  ensembles, bandits) replace this file.
 */
#include "postgres.h"

#include "scoring.h"

/* No model types are compiled yet: every lookup misses. */
KaireonModel *
kaireon_model_get(const char *tenant_id, const char *model_key)
{
	return NULL;
}

/* Unreachable while kaireon_model_get returns no model. */
double
kaireon_model_score(KaireonModel *model, const KaireonFeatures *features, const char *arm)
{
	elog(ERROR, "kaireon_model_score called without a model");
	return 0.0;					/* keep the compiler quiet */
}
