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
 */
#include "postgres.h"

#include "util/inval.h"

#define MAX_KAIREON_RELCACHE_CALLBACKS 8

static struct
{
	RelcacheCallbackFunction func;
	Datum		arg;
}			callbacks[MAX_KAIREON_RELCACHE_CALLBACKS];
static int	ncallbacks = 0;

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
