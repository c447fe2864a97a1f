/*
 * util/inval.c
 *	  One relcache invalidation callback for all of kaireon's caches.
 *
 * PostgreSQL 15 keeps at most ten relcache callbacks per backend
 * (MAX_RELCACHE_CALLBACKS), shared by every preloaded library: Citus alone
 * registers several, and one more from kaireon made a backend of a Citus
 * coordinator fail at its start ("out of relcache_callback_list slots").
 * So kaireon registers one, on the first registration here, and calls each
 * of its modules' callbacks from it, in the order they registered (each
 * module registers from its init, called by _PG_init).
 *
 * Also one counter of the changes that can change a user's EXECUTE right on
 * a function (and what an inlined SQL function does): a function changed
 * (pg_proc), a role's attributes (pg_authid: a superuser no more) or a role
 * membership (pg_auth_members).  A cache of expressions compiled for a user
 * (ExecInitExpr checks the right once, when it compiles) keeps the count it
 * was compiled at and compiles again when the count moved: the segment
 * views' WHERE clauses (decision/state_row.c), the direct history write's
 * defaults and CHECKs (decision/history_write.c).
 */
#include "postgres.h"

#include "utils/syscache.h"

#include "util/inval.h"

#define MAX_KAIREON_RELCACHE_CALLBACKS 8

static struct
{
	RelcacheCallbackFunction func;
	Datum		arg;
}			callbacks[MAX_KAIREON_RELCACHE_CALLBACKS];
static int	ncallbacks = 0;
static uint64 rights_changes = 0;

/* The one registered callback: each module's, in turn. */
static void
kaireon_relcache_cb(Datum arg, Oid relid)
{
	for (int i = 0; i < ncallbacks; i++)
		callbacks[i].func(callbacks[i].arg, relid);
}

/* Register a module's relcache callback (called from its init). */
void
kaireon_register_relcache_callback(RelcacheCallbackFunction func, Datum arg)
{
	if (ncallbacks >= MAX_KAIREON_RELCACHE_CALLBACKS)
		elog(FATAL, "kaireon: out of relcache callback slots");
	if (ncallbacks == 0)
		CacheRegisterRelcacheCallback(kaireon_relcache_cb, (Datum) 0);
	callbacks[ncallbacks].func = func;
	callbacks[ncallbacks].arg = arg;
	ncallbacks++;
}

/* Syscache callback on pg_proc, pg_authid and pg_auth_members: one change more. */
static void
rights_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	rights_changes++;
}

/*
 * How many times a function, a role or a role membership changed in this
 * backend's view since its first call (which registers the callbacks: a
 * cache that compiles after reading the count sees every later change).
 */
uint64
kaireon_rights_changes(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, rights_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHOID, rights_changed, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rights_changed, (Datum) 0);
		registered = true;
	}
	return rights_changes;
}
