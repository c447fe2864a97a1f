/*
 * util/ids.c
 *	  Identifiers kaireon generates: random UUIDs for recommendations and
 *	  interactions (the pipeline, respond, campaigns, decision recording).
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

#include "util/ids.h"

/*
 * A random (version 4) UUID as text, from the backend's PRNG (seeded from a
 * strong random source at backend start): ids need to be unique, not secret,
 * and this is an order of magnitude cheaper than a strong random draw.  The
 * text is uuid_out's (the uuid type's own output: lowercase, 8-4-4-4-12).
 */
char *
kaireon_new_uuid(void)
{
	pg_uuid_t	u;
	uint64		x = pg_prng_uint64(&pg_global_prng_state);
	uint64		y = pg_prng_uint64(&pg_global_prng_state);

	memcpy(u.data, &x, 8);
	memcpy(u.data + 8, &y, 8);
	u.data[6] = (u.data[6] & 0x0f) | 0x40;
	u.data[8] = (u.data[8] & 0x3f) | 0x80;
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&u)));
}
