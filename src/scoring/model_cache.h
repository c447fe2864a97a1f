/*
 * scoring/model_cache.h
 *	  The compiled model and the cache generation of scoring.c, for the SQL
 *	  entry points (sql.c), which read a model's fields and keep a model
 *	  between rows while the generation is unchanged.
 */
#ifndef KAIREON_SCORING_MODEL_CACHE_H
#define KAIREON_SCORING_MODEL_CACHE_H

#include "scoring/models/model.h"
#include "scoring/scoring.h"

#define MAX_MODEL_KEY_LEN 300

struct KaireonModel
{
	char	   *tenant_id;
	char	   *key;
	char	   *id;
	char	   *registry_status;
	char	   *family;			/* NULL when in no family */
	char	   *stamp;			/* row version the model was compiled from */
	const ModelOps *ops;
	ModelImpl	impl;
	MemoryContext cxt;
	bool		untrained;		/* model_state is {}: nothing to score with */
	bool		reads_offer;	/* some feature is an offer.<field> (kaireon_model_reads_offer) */
	bool		shadows_loaded;
	int			nshadows;
	char	  **shadow_keys;
};

/* Bumped when the relcache callback marks the cache: a model kept across calls is stale. */
extern uint64 kaireon_model_cache_generation;

#endif							/* KAIREON_SCORING_MODEL_CACHE_H */
