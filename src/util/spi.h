/*
 * util/spi.h
 *	  SPI calls that keep the caller's memory context.
 *
 * Every SPI call ends by switching CurrentMemoryContext to the SPI procedure
 * context, which SPI_finish deletes; code that allocates results after an SPI
 * call (compiled configurations, decisions) would put them there and lose
 * them.  These wrappers restore the context that was current before the call.
 * The convention every file follows is stated at the top of util/spi.c.
 */
#ifndef KAIREON_UTIL_SPI_H
#define KAIREON_UTIL_SPI_H

#include "postgres.h"

#include "executor/spi.h"

extern int	kspi_pin_search_path(void);
extern void kspi_unpin_search_path(int nest);
extern int	kspi_execute(const char *sql, bool read_only, long count);
extern int	kspi_execute_with_args(const char *sql, int nargs, Oid *argtypes, Datum *values,
								   const char *nulls, bool read_only, long count);
extern int	kspi_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count);
extern int	kspi_execute_snapshot(SPIPlanPtr plan, Datum *values, const char *nulls, Snapshot snapshot,
								  Snapshot crosscheck, bool read_only, long count);
extern SPIPlanPtr kspi_prepare_keep(const char *sql, int nargs, Oid *argtypes);
extern bool kspi_citus_installed(void);
extern bool kspi_citus_table(const char *qualified_name);

#endif							/* KAIREON_UTIL_SPI_H */
