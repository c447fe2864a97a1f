/*
 * scoring/models/train_internal.h
 *	  Private interface of in-database training and drift checks: the
 *	  training examples, and the functions of train_examples.c (reading them),
 *	  train_fit.c (fitting per model family) and train_metrics.c (measures)
 *	  that the SQL entry points (train.c) call.  Not for use outside
 *	  src/scoring/models/train*.c.
 */
#ifndef KAIREON_SCORING_MODELS_TRAIN_INTERNAL_H
#define KAIREON_SCORING_MODELS_TRAIN_INTERNAL_H

#include "postgres.h"

#include "util/json.h"

#include "datatype/timestamp.h"

#include "scoring/scoring.h"

/* Training examples: n rows of nf feature values and a label. */
typedef struct Examples
{
	int			n;
	int			nf;
	KaireonValue *values;		/* n * nf */
	double	   *y;
} Examples;

/* ---- train_examples.c ---- */

/* Load the examples of [since, until) with the values of the named features. */
extern Examples *kaireon_train_load_examples(const char *tenant_id, const char *data_schema_id,
											 TimestampTz since, TimestampTz until,
											 const char *offer_id, char **names, int nf);

/* ---- train_fit.c: one fit per model family; each returns model_state and fills metrics ---- */

/* Train a logistic regression; returns model_state, fills metrics. */
extern json_t *kaireon_train_logistic(Examples *ex, char **names, bool *categorical, double l2,
									  int max_iter, json_t *metrics);
/* Train naive Bayes counts; returns model_state. */
extern json_t *kaireon_train_bayesian(Examples *ex, char **names, json_t *predictors, double alpha,
									  json_t *metrics);
/* Train an online_learner by replaying the examples in time order through its online update. */
extern json_t *kaireon_train_online(Examples *ex, char **names, json_t *predictors, json_t *current,
									json_t *metrics);

/* ---- train_metrics.c ---- */

/* AUC of scores against labels (ties count half), or NaN without both classes. */
extern double kaireon_train_auc(const double *score, const double *y, int n);
/* Mean log loss of probabilities (clamped away from 0 and 1). */
extern double kaireon_train_log_loss(const double *p, const double *y, int n);
/* Decile edges of a numeric feature's values (distinct), for predictors without binEdges. */
extern json_t *kaireon_train_decile_edges(Examples *ex, int f);
/* The training distribution of each predictor (metrics.featureBaseline). */
extern json_t *kaireon_train_feature_baseline(const Examples *ex, char **names,
											  const bool *categorical);
/* Population stability index of current against baseline over the baseline's deciles. */
extern double kaireon_train_psi(double *base, int nb, double *cur, int nc, json_t *detail);
/* Feature drift of the examples cur against a model's featureBaseline; returns the largest PSI. */
extern double kaireon_train_feature_drift(const Examples *cur, json_t *baseline, double limit,
										  json_t *detail);
/* Two-sample Kolmogorov-Smirnov statistic. */
extern double kaireon_train_ks(double *a, int na, double *b, int nb);

#endif							/* KAIREON_SCORING_MODELS_TRAIN_INTERNAL_H */
