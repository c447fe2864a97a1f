/*
 * util/collation.c
 *	  Whether a collation orders text as its bytes, so that a scan key or a
 *	  comparison may name "C" instead and compare with memcmp rather than
 *	  through the locale machinery (decision/state_read.c's direct reads,
 *	  config/references.c's key probes).
 *
 * The answer for a collation never changes while the database exists (a
 * collation's locale cannot be altered, nor the database's), so it is kept
 * per backend: the last few collations asked about, forgotten when any
 * collation is dropped or made (a syscache callback: a dropped collation's
 * OID may come back as another's).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_database.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/pg_locale.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

#include "util/collation.h"

#define KNOWN_SLOTS 8

static struct
{
	Oid			coll;
	bool		bytewise;
}			known[KNOWN_SLOTS];
static int	nknown = 0;
static bool callback_registered = false;

/* Syscache callback on pg_collation: every answer kept is forgotten. */
static void
collation_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	nknown = 0;
}

/*
 * Whether the collation orders text exactly as its bytes (as "C" does), so
 * that a scan key may name "C" instead and compare with memcmp: "C" and
 * "POSIX" themselves, and a deterministic libc collation of a UTF-8 database
 * whose LC_COLLATE is glibc's C.UTF-8 from glibc 2.35 on, which is defined as
 * code point order (glibc's codepoint_collation: strcoll is strcmp), and the
 * code point order of UTF-8 is its byte order.  Earlier glibc versions and
 * other libraries keep the collation's own comparison.
 */
static bool
look_up_bytewise(Oid coll)
{
	bool		bytewise = false;

	if (!OidIsValid(coll) || lc_collate_is_c(coll))
		return OidIsValid(coll);
#ifdef __GLIBC__
	{
		int			major = 0,
					minor = 0;
		char		provider = 0;
		bool		deterministic = true;
		char	   *name = NULL;
		HeapTuple	tup;
		Datum		d;
		bool		isnull;

		if (GetDatabaseEncoding() != PG_UTF8 ||
			sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) != 2 ||
			major < 2 || (major == 2 && minor < 35))
			return false;
		if (coll == DEFAULT_COLLATION_OID)
		{
			tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
			if (!HeapTupleIsValid(tup))
				return false;
			provider = ((Form_pg_database) GETSTRUCT(tup))->datlocprovider;
			d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_datcollate, &isnull);
		}
		else
		{
			tup = SearchSysCache1(COLLOID, ObjectIdGetDatum(coll));
			if (!HeapTupleIsValid(tup))
				return false;
			provider = ((Form_pg_collation) GETSTRUCT(tup))->collprovider;
			deterministic = ((Form_pg_collation) GETSTRUCT(tup))->collisdeterministic;
			d = SysCacheGetAttr(COLLOID, tup, Anum_pg_collation_collcollate, &isnull);
		}
		if (!isnull)
			name = TextDatumGetCString(d);
		ReleaseSysCache(tup);
		bytewise = provider == COLLPROVIDER_LIBC && deterministic && name != NULL &&
			(strcmp(name, "C.UTF-8") == 0 || strcmp(name, "C.utf8") == 0);
	}
#endif
	return bytewise;
}

/* look_up_bytewise, remembered per backend for the last KNOWN_SLOTS collations. */
bool
kaireon_bytewise_collation(Oid coll)
{
	bool		bytewise;

	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(COLLOID, collation_changed, (Datum) 0);
		callback_registered = true;
	}
	for (int i = 0; i < nknown; i++)
		if (known[i].coll == coll)
			return known[i].bytewise;
	bytewise = look_up_bytewise(coll);
	if (nknown < KNOWN_SLOTS)
	{
		known[nknown].coll = coll;
		known[nknown].bytewise = bytewise;
		nknown++;
	}
	return bytewise;
}
