/*
 * util/finite.c
 *	  kaireon_internal._is_finite(double precision) and (numeric): the check
 *	  of every <table>_<column>_finite constraint (sql/install/99_finalize.sql,
 *	  docs/schema.md "Finite numbers").  C rather than SQL: a SQL function in
 *	  a CHECK is inlined again each time a statement prepares the table's
 *	  constraints (reading and planning its body), which cost a recording
 *	  decision about 180k instructions per INSERT (docs/performance.md); a C
 *	  call costs nothing to prepare.  Both are STRICT (NULL for NULL, which a
 *	  CHECK passes), as the SQL versions were.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(kaireon_is_finite_float8);
PG_FUNCTION_INFO_V1(kaireon_is_finite_numeric);

/* _is_finite(double precision): not NaN, Infinity or -Infinity. */
Datum
kaireon_is_finite_float8(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(isfinite(PG_GETARG_FLOAT8(0)));
}

/*
 * _is_finite(numeric): not NaN, Infinity or -Infinity, and at most
 * 1.7976931348623157e308 in magnitude (compared exactly, as numerics).
 */
Datum
kaireon_is_finite_numeric(PG_FUNCTION_ARGS)
{
	static Datum limit = (Datum) 0;
	Numeric		value = PG_GETARG_NUMERIC(0);

	if (numeric_is_nan(value) || numeric_is_inf(value))
		PG_RETURN_BOOL(false);
	if (limit == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		limit = DirectFunctionCall3(numeric_in, CStringGetDatum("1.7976931348623157e308"),
									ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_DATUM(DirectFunctionCall2(numeric_le,
										DirectFunctionCall1(numeric_abs, NumericGetDatum(value)), limit));
}
