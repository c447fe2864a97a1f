/*
 * util/ids.c
 *	  Identifiers kaireon generates: random UUIDs for recommendations and
 *	  interactions (the pipeline, respond, campaigns, decision recording).
 */
#include "postgres.h"

#include "common/pg_prng.h"

#include "util/ids.h"

/*
 * A random (version 4) UUID as text, from the backend's PRNG (seeded from a
 * strong random source at backend start): ids need to be unique, not secret,
 * and this is an order of magnitude cheaper than a strong random draw.
 */
char *
kaireon_new_uuid(void)
{
	uint8		b[16];
	uint64		x = pg_prng_uint64(&pg_global_prng_state);
	uint64		y = pg_prng_uint64(&pg_global_prng_state);

	memcpy(b, &x, 8);
	memcpy(b + 8, &y, 8);
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
