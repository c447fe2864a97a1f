/*
 * config/lookup.c
 *	  Finding things by id in a compiled configuration: offers, channels,
 *	  placements and segments by binary search over their arrays, which the
 *	  compile sorts by id (flows by key), and an outcome type's
 *	  classification.  Pure computation: no SPI, no catalog.
 */
#include "postgres.h"

#include "config/config.h"

/* Binary search over an array of structs sorted by a const char *id at offset 0. */
#define BSEARCH_BY_ID(arr, n, key) \
	do { \
		int lo = 0, hi = (n) - 1; \
		if ((key) == NULL) return -1; \
		while (lo <= hi) \
		{ \
			int mid = (lo + hi) / 2; \
			int c = strcmp((arr)[mid].id, (key)); \
			if (c == 0) return mid; \
			if (c < 0) lo = mid + 1; else hi = mid - 1; \
		} \
		return -1; \
	} while (0)

/* Index of an offer by id (offers are sorted by id), or -1. */
int
kaireon_find_offer(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->offers, cfg->noffers, id);
}

/* Index of a channel by id, or -1. */
int
kaireon_find_channel(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->channels, cfg->nchannels, id);
}

/* Index of a placement by id, or -1. */
int
kaireon_find_placement(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->placements, cfg->nplacements, id);
}

/* Index of a segment by id, or -1. */
int
kaireon_find_segment(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->segments, cfg->nsegments, id);
}

/* Index of a flow by key (flows are sorted by key), or -1. */
int
kaireon_find_flow(const KTenantConfig *cfg, const char *key)
{
	int			lo = 0,
				hi = cfg->nflows - 1;

	if (key == NULL)
		return -1;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(cfg->flows[mid].key, key);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Classification of an outcome key (neutral when unknown, with *found false). */
KaireonOutcomeClass
kaireon_outcome_class(const KTenantConfig *cfg, const char *key, bool *found)
{
	for (int i = 0; i < cfg->noutcomes; i++)
	{
		if (strcmp(cfg->outcomes[i].key, key) == 0)
		{
			*found = true;
			return cfg->outcomes[i].classification;
		}
	}
	*found = false;
	return KAIREON_OUTCOME_NEUTRAL;
}
