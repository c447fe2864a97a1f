/*
 * models/experiment.c
 *	  The two numeric helpers of champion/challenger experiments
 *	  (sql/install/35_models.sql holds the rest): the 32-bit FNV-1a hash
 *	  that assigns a customer to a variant, and the standard normal CDF for
 *	  the two-proportion z-test (PostgreSQL 15 has no erf in SQL).
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(kaireon_fnv1a);
PG_FUNCTION_INFO_V1(kaireon_normal_cdf);

/* kaireon.fnv1a(text): 32-bit FNV-1a of the text's bytes, as a bigint in [0, 2^32). */
Datum
kaireon_fnv1a(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const unsigned char *p = (const unsigned char *) VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	uint32		h = 2166136261u;
	int			i;

	for (i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= 16777619u;
	}
	PG_RETURN_INT64((int64) h);
}

/* kaireon.normal_cdf(z): P(Z <= z) for a standard normal Z. */
Datum
kaireon_normal_cdf(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(0.5 * erfc(-PG_GETARG_FLOAT8(0) / M_SQRT2));
}
