/*
 * models/trees_import.h
 *	  Import of XGBoost and LightGBM JSON model files into the canonical
 *	  gradient_boosted model_state (models/trees_import.c).
 */
#ifndef KAIREON_MODELS_TREES_IMPORT_H
#define KAIREON_MODELS_TREES_IMPORT_H

#include "util/json.h"

extern void kaireon_trees_import(const char *format, json_t *doc, json_t *options,
								 json_t **state, json_t **predictors);

#endif							/* KAIREON_MODELS_TREES_IMPORT_H */
