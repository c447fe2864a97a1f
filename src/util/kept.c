/*
 * util/kept.c
 *	  The last bytes kept per backend with what they became: one slot per
 *	  use, holding a key (at most KAIREON_KEPT_MAX bytes, compared by size
 *	  and memcmp) and the value made of it, in one chunk of
 *	  TopMemoryContext.  The slot is replaced only once the new chunk is
 *	  allocated and filled, so a failed allocation leaves it as it was.
 *	  Used for recommend's options (decision/recommend.c) and for the
 *	  options the planner hook merges "explain": false into
 *	  (decision/projection.c): a value must depend on the key's bytes alone.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "util/kept.h"

/* The value kept for exactly these key bytes, else NULL. */
const void *
kaireon_kept_get(const KKept *kept, const void *key, Size keylen)
{
	if (kept->chunk == NULL || kept->keylen != keylen || memcmp(kept->chunk, key, keylen) != 0)
		return NULL;
	return kept->chunk + MAXALIGN(keylen);
}

/* Keep value for key, replacing what was kept; a key over KAIREON_KEPT_MAX is not kept. */
void
kaireon_kept_put(KKept *kept, const void *key, Size keylen, const void *value, Size valuelen)
{
	char	   *chunk;

	if (keylen > KAIREON_KEPT_MAX)
		return;
	chunk = MemoryContextAlloc(TopMemoryContext, MAXALIGN(keylen) + valuelen);
	memcpy(chunk, key, keylen);
	memcpy(chunk + MAXALIGN(keylen), value, valuelen);
	if (kept->chunk != NULL)
		pfree(kept->chunk);
	kept->chunk = chunk;
	kept->keylen = keylen;
}
