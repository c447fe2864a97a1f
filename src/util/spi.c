/*
 * util/spi.c
 *	  SPI calls that keep the caller's memory context (see util/spi.h).
 *
 * The SPI memory convention of kaireon (every file follows it; cursors, which
 * have no wrapper, are fetched with SPI_cursor_fetch and read at once):
 *
 *	1. Statements run through kspi_execute, kspi_execute_with_args,
 *	   kspi_execute_plan and kspi_execute_snapshot (plans kept for the backend:
 *	   kspi_prepare_keep), never
 *	   SPI_execute* directly: SPI's own calls leave the SPI procedure context
 *	   current, whatever was current before; these return with the context
 *	   that was current before the call, so no caller saves and restores it
 *	   around a statement.
 *	2. SPI_connect makes the procedure context current, and SPI_finish deletes
 *	   it.  Whatever must outlive SPI_finish (a result row, a compiled
 *	   configuration, a report) is allocated in the context that was current
 *	   before SPI_connect: either switch back to it right after SPI_connect
 *	   (MemoryContext caller = CurrentMemoryContext; SPI_connect();
 *	   MemoryContextSwitchTo(caller);), so that everything the function reads
 *	   lives there, or copy the few values out with SPI_palloc.  Temporary
 *	   values may stay in the procedure context and go with SPI_finish.
 *
 *	3. kaireon's statements run with search_path pinned to pg_catalog, pg_temp
 *	   (kspi_pin_search_path): every wrapper below pins it for its call, and
 *	   code that prepares or opens a cursor itself pins it around both.  The
 *	   statements name kaireon's objects by schema and PostgreSQL's resolve
 *	   in pg_catalog; under the caller's path, a function or operator a
 *	   tenant created in a schema of that path (public, where tenants may
 *	   create) with a closer argument type than pg_catalog's would be chosen
 *	   and run with the rights of whoever triggered the statement: an
 *	   operator, a superuser, the maintenance worker (docs/security.md).
 *	   Kept plans are made and run under the same path, so the plan cache
 *	   never parses them again for a change of path.
 *
 * It also answers, once for every file, whether Citus is installed and
 * whether a table is in its metadata (kspi_citus_installed, kspi_citus_table).
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "util/spi.h"

/* The search_path of kaireon's own statements (convention 3). */
#define KSPI_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * Pin search_path to pg_catalog, pg_temp in a new GUC nesting level, unless
 * it is that already; returns the level kspi_unpin_search_path takes (0:
 * nothing was set).  An error before the unpin is undone by the abort of the
 * (sub)transaction, as for a function's SET clause.
 */
int
kspi_pin_search_path(void)
{
	int			nest;

	if (namespace_search_path != NULL && strcmp(namespace_search_path, KSPI_SEARCH_PATH) == 0)
		return 0;
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", KSPI_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* Back to the search_path before kspi_pin_search_path (which returned nest). */
void
kspi_unpin_search_path(int nest)
{
	if (nest > 0)
		AtEOXact_GUC(true, nest);
}

/* SPI_execute, keeping CurrentMemoryContext, under kaireon's search_path. */
int
kspi_execute(const char *sql, bool read_only, long count)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			nest = kspi_pin_search_path();
	int			rc = SPI_execute(sql, read_only, count);

	kspi_unpin_search_path(nest);
	MemoryContextSwitchTo(cxt);
	return rc;
}

/* SPI_execute_with_args, keeping CurrentMemoryContext, under kaireon's search_path. */
int
kspi_execute_with_args(const char *sql, int nargs, Oid *argtypes, Datum *values,
					   const char *nulls, bool read_only, long count)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			nest = kspi_pin_search_path();
	int			rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, read_only, count);

	kspi_unpin_search_path(nest);
	MemoryContextSwitchTo(cxt);
	return rc;
}

/* SPI_execute_plan, keeping CurrentMemoryContext, under kaireon's search_path. */
int
kspi_execute_plan(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only, long count)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			nest = kspi_pin_search_path();
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	kspi_unpin_search_path(nest);
	MemoryContextSwitchTo(cxt);
	return rc;
}

/* SPI_execute_snapshot (a given snapshot and crosscheck snapshot), keeping CurrentMemoryContext, under kaireon's search_path. */
int
kspi_execute_snapshot(SPIPlanPtr plan, Datum *values, const char *nulls, Snapshot snapshot,
					  Snapshot crosscheck, bool read_only, long count)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			nest = kspi_pin_search_path();
	int			rc = SPI_execute_snapshot(plan, values, nulls, snapshot, crosscheck, read_only, true, count);

	kspi_unpin_search_path(nest);
	MemoryContextSwitchTo(cxt);
	return rc;
}

/*
 * Prepare a plan (under kaireon's search_path) and keep it for the life of
 * the backend (or until SPI_freeplan).  The plan is generic (planned once, with parameters):
 * kaireon's kept queries are simple index lookups whose best plan does not
 * depend on the values, and re-planning per call would cost more than the
 * query (partitioned tables are pruned at executor start).  With Citus, the
 * plan is custom instead (below).
 */
SPIPlanPtr
kspi_prepare_keep(const char *sql, int nargs, Oid *argtypes)
{
	MemoryContext cxt = CurrentMemoryContext;
	/*
	 * With Citus in the database, plans are custom (planned with the values):
	 * Citus routes a query on several tables to the one shard of its tenant
	 * only when it sees the tenant id, and a generic plan hides it.
	 */
	int			opts = kspi_citus_installed() ? CURSOR_OPT_CUSTOM_PLAN : CURSOR_OPT_GENERIC_PLAN;
	int			nest = kspi_pin_search_path();
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, opts);

	kspi_unpin_search_path(nest);
	MemoryContextSwitchTo(cxt);
	if (plan == NULL)
		elog(ERROR, "kaireon: could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "kaireon: could not keep a prepared plan");
	MemoryContextSwitchTo(cxt);
	return plan;
}

/*
 * Whether Citus is installed in this database (its metadata catalog
 * pg_dist_partition exists): the one test of it in C.  Whether kaireon is
 * distributed there is another question (config/cache.c, 95_distribute.sql).
 */
bool
kspi_citus_installed(void)
{
	return OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/*
 * Whether a table (its qualified name) is in Citus's metadata: distributed,
 * a reference table or a Citus local table (kaireon.distribute() placed it).
 * False, with no query, where Citus is not installed.  Runs inside SPI.
 */
bool
kspi_citus_table(const char *qualified_name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	if (!kspi_citus_installed())
		return false;
	args[0] = CStringGetTextDatum(qualified_name);
	if (kspi_execute_with_args("SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::pg_catalog.regclass",
							   1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not read pg_dist_partition");
	return SPI_processed > 0;
}
