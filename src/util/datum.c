/*
 * util/datum.c
 *	  Building datums for SPI arguments: one-dimensional arrays of any type,
 *	  as the batched writes pass them to unnest().
 */
#include "postgres.h"

#include "utils/array.h"
#include "utils/lsyscache.h"

#include "util/datum.h"

/* A one-dimensional array datum of n values of a type (nulls may be NULL: none). */
Datum
kd_array(Datum *values, bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type, typlen, typbyval, typalign));
}
