/*
 * test/bench/floor/kaireon_bench_floor.c
 *	  The benchmark's floor (test/bench/run.sh; docs/performance.md): a C
 *	  function of kaireon.recommend's signature and row type that returns no
 *	  row.  Called as the benchmark calls recommend, it costs what PostgreSQL
 *	  spends on the statement around the call (parse, analysis with the five
 *	  defaults read, planning, executor start, the materialized result,
 *	  commit) and nothing of kaireon's: the highest ratio to SELECT 1 any
 *	  recommend of that shape could reach.  Not part of the extension.
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(kaireon_bench_floor);

/* An empty result, materialized as recommend's is (so the executor does the same work around it). */
Datum
kaireon_bench_floor(PG_FUNCTION_ARGS)
{
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	PG_RETURN_NULL();
}
