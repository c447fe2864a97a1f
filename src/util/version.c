/*
 * util/version.c
 *	  The check that the installed SQL objects are the version this library
 *	  serves (util/version.h; docs/upgrades.md).
 *
 * Protocol: the library is replaced before ALTER EXTENSION kaireon UPDATE runs
 * (a package upgrade replaces kaireon.so under every database's old SQL), so
 * for a while the new library may meet the SQL of an older release, or, after a
 * downgrade of the package, of a newer one. The paths that read the tables
 * (everything that compiles a tenant's configuration: recommend, respond,
 * campaigns, arbitration; the audit capture of every write; every maintenance
 * job) call
 * kaireon_require_sql_version first. pg_extension has no syscache and an
 * update of its row sends no invalidation, so the answer is cached until any
 * function changes: every upgrade script re-creates functions (at least
 * kaireon.version(), docs/upgrades.md), which sends a pg_proc invalidation to
 * every backend; so does a reset of the invalidation queue. A backend started
 * after the change reads the catalog afresh. The hot path then costs one
 * test of a static flag.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "util/version.h"

/* The installed SQL version was found to be KAIREON_VERSION, and no function changed since. */
static bool sql_version_ok = false;

/* pg_proc invalidation callback: check the installed version again at the next call. */
static void
version_proc_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	sql_version_ok = false;
}

/* Load-time initialisation: forget the checked version when a function changes. */
void
kaireon_version_init(void)
{
	CacheRegisterSyscacheCallback(PROCOID, version_proc_changed, (Datum) 0);
}

/* pg_extension.extversion of kaireon, palloc'd; NULL while the extension does not exist. */
static char *
installed_sql_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("kaireon"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* Error unless the installed SQL is the version this library serves (util/version.h). */
void
kaireon_require_sql_version(void)
{
	static const char *const known[] = KAIREON_SQL_VERSIONS;
	char	   *installed;
	StringInfoData list;
	size_t		i;

	if (sql_version_ok)
		return;
	installed = installed_sql_version();
	/* no extension (a DROP in progress, or a call outside it): nothing to check against */
	if (installed == NULL)
		return;
	if (strcmp(installed, KAIREON_VERSION) == 0)
	{
		sql_version_ok = true;
		return;
	}
	initStringInfo(&list);
	for (i = 0; i < lengthof(known); i++)
	{
		if (strcmp(installed, known[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("kaireon's SQL objects in this database are at version %s; the loaded library serves version %s",
							installed, KAIREON_VERSION),
					 errdetail("The library was updated; the extension's SQL objects in this database were not."),
					 errhint("Run ALTER EXTENSION kaireon UPDATE in this database (docs/upgrades.md).")));
		appendStringInfo(&list, "%s%s", i > 0 ? ", " : "", known[i]);
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("kaireon's SQL objects in this database are at version %s, which the loaded library %s does not know",
					installed, KAIREON_VERSION),
			 errdetail("The library knows the SQL versions %s.", list.data),
			 errhint("Install the kaireon library of version %s (docs/upgrades.md).", installed)));
}
