/*
 * invalidate.c
 *	  The trigger kaireon.config_changed() on every configuration table that
 *	  the recommend cache compiles (see cache.c for the protocol).
 *
 * It collects the tenant ids of the changed rows (from the row, or from the
 * statement's transition tables), gives each of those tenants a fresh
 * configuration version (kaireon.config_versions), and calls
 * CacheInvalidateRelcache on config_versions, so that at commit every backend
 * of this node re-checks the versions of the tenants it has cached (on Citus,
 * backends check the version on every call instead: cache.c).  A tenant
 * deleted in the same transaction gets no version row (it would violate the
 * foreign key); the invalidation alone then makes backends find it gone.
 * TRUNCATE renews every tenant's version.
 *
 * A version is a per-tenant counter, not a sequence (a sequence is local to
 * a node on Citus, and a tenant's rows move between nodes): the larger of the
 * old version + 1 and the transaction's time in microseconds, so a tenant
 * deleted and created again never gets back a version a backend may have
 * cached.  The statement names the tenant (one shard on Citus) and calls no
 * function in its ON CONFLICT update (Citus requires them IMMUTABLE there).
 *
 * Trigger argument: the name of the tenant column (default "tenant_id";
 * "id" on kaireon.tenants).
 *
 * kaireon_internal._identity_links_changed() is the trigger of
 * kaireon.identity_links: a tenant's links are no configuration (they change
 * with every sign-in), but whether it has any is (decisions resolve
 * identifiers only then: decision/identity.c).  The first link a tenant
 * writes sets the sticky flag config_versions.identity_links and renews the
 * version in the same statement; later links change nothing, so linking
 * costs no recompilation.  The compiled flag is that column or any link
 * (compile.c), so a restore, which keeps no config_versions, loses nothing.
 *
 * kaireon_internal._config_changed_replica() is the same signal for changes that fire
 * no statement trigger: logical replication's apply worker (and any session
 * with session_replication_role = replica) fires only row triggers enabled
 * REPLICA or ALWAYS.  It is such a row trigger, enabled REPLICA, on every
 * configuration table, so it never fires on the primary's write path.  It
 * writes nothing (a subscriber's config_versions may be replicated too, and
 * a local write would conflict with the publisher's): it sends a relcache
 * invalidation of kaireon.config_version_seq, which makes every backend
 * recompile every tenant it has cached (cache.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "util/spi.h"


PG_FUNCTION_INFO_V1(kaireon_config_changed);
PG_FUNCTION_INFO_V1(kaireon_config_changed_replica);
PG_FUNCTION_INFO_V1(kaireon_identity_links_changed);

/* Add the tenant id of a tuple to the list (no duplicates). */
static List *
add_tenant(List *tenants, HeapTuple tuple, TupleDesc desc, int attno)
{
	bool		isnull;
	Datum		d;
	char	   *id;
	ListCell   *lc;

	if (tuple == NULL)
		return tenants;
	d = heap_getattr(tuple, attno, desc, &isnull);
	if (isnull)
		return tenants;
	id = TextDatumGetCString(d);
	foreach(lc, tenants)
		if (strcmp((char *) lfirst(lc), id) == 0)
		return tenants;
	return lappend(tenants, id);
}

/* Add the tenant ids of every row of a transition table. */
static List *
add_transition_tenants(List *tenants, Tuplestorestate *store, TupleDesc desc, int attno)
{
	TupleTableSlot *slot;

	if (store == NULL)
		return tenants;
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_rescan(store);
	while (tuplestore_gettupleslot(store, true, false, slot))
	{
		bool		shouldfree;
		HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &shouldfree);

		tenants = add_tenant(tenants, tuple, desc, attno);
		if (shouldfree)
			heap_freetuple(tuple);
	}
	ExecDropSingleTupleTableSlot(slot);
	return tenants;
}

/* A version no earlier configuration of any tenant had: the current time in microseconds. */
static int64
fresh_version(void)
{
	return (int64) GetCurrentTimestamp();
}

/*
 * Renew a tenant's configuration version (inside an SPI connection).  With
 * first_link (identity links), only when config_versions.identity_links is
 * not set yet, which it sets.  True when a version was renewed.  (Only the
 * first link's statement names the column, which 0.2.0 added: under a 0.1.0
 * catalog an audited write must still fail on the version check.)  Its
 * operators are pg_catalog's by name: it may run as the table's owner, with
 * the caller's search_path.
 */
static bool
renew_version(const char *tenant_id, bool first_link)
{
	Oid			types[3] = {TEXTOID, INT8OID, TIMESTAMPTZOID};
	Datum		args[3];

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = Int64GetDatum(fresh_version());
	args[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (kspi_execute_with_args(psprintf(
		"INSERT INTO kaireon.config_versions AS v (tenant_id, version, updated_at%s) "
		"SELECT t.id, $2, $3%s FROM kaireon.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 "
		"ON CONFLICT (tenant_id) DO UPDATE SET version = GREATEST(v.version OPERATOR(pg_catalog.+) 1, EXCLUDED.version), "
		"    updated_at = EXCLUDED.updated_at%s",
		first_link ? ", identity_links" : "", first_link ? ", true" : "",
		first_link ? ", identity_links = true WHERE NOT v.identity_links" : ""),
		3, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kaireon: could not renew the configuration version");
	return SPI_processed > 0;
}

/* AFTER trigger: renew the configuration version of the tenants whose configuration changed. */
Datum
kaireon_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	const char *column;
	int			attno;
	List	   *tenants = NIL;
	ListCell   *lc;
	Oid			marker;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "config_changed must be an AFTER trigger");
	desc = RelationGetDescr(td->tg_relation);
	column = td->tg_trigger->tgnargs > 0 ? td->tg_trigger->tgargs[0] : "tenant_id";
	attno = SPI_fnumber(desc, column);
	if (attno <= 0)
		elog(ERROR, "config_changed: table \"%s\" has no column \"%s\"",
			 RelationGetRelationName(td->tg_relation), column);

	if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		tenants = add_tenant(tenants, td->tg_trigtuple, desc, attno);
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			tenants = add_tenant(tenants, td->tg_newtuple, desc, attno);
	}
	else
	{
		tenants = add_transition_tenants(tenants, td->tg_oldtable, desc, attno);
		tenants = add_transition_tenants(tenants, td->tg_newtable, desc, attno);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
		Datum		args[2];

		args[0] = Int64GetDatum(fresh_version());
		args[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		if (kspi_execute_with_args("UPDATE kaireon.config_versions "
								   "SET version = GREATEST(version + 1, $1), updated_at = $2",
								   2, types, args, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "kaireon: could not renew configuration versions");
	}
	foreach(lc, tenants)
		renew_version((char *) lfirst(lc), false);
	SPI_finish();

	marker = get_relname_relid("config_versions", get_namespace_oid("kaireon", false));
	if (OidIsValid(marker))
		CacheInvalidateRelcacheByRelid(marker);
	return PointerGetDatum(NULL);
}

/*
 * AFTER INSERT or UPDATE statement trigger of kaireon.identity_links (new
 * rows as new_rows): the tenants that had no link yet get the flag
 * config_versions.identity_links and a new configuration version (one
 * conditional upsert each, which the row lock of config_versions serialises:
 * of two first links written at once, the second sees the flag and changes
 * nothing); the backends' caches are invalidated only when one did.
 */
Datum
kaireon_identity_links_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	int			attno;
	List	   *tenants;
	ListCell   *lc;
	bool		renewed = false;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
		elog(ERROR, "_identity_links_changed must be an AFTER statement trigger");
	desc = RelationGetDescr(td->tg_relation);
	attno = SPI_fnumber(desc, "tenant_id");
	if (attno <= 0)
		elog(ERROR, "_identity_links_changed: table \"%s\" has no column tenant_id",
			 RelationGetRelationName(td->tg_relation));
	tenants = add_transition_tenants(NIL, td->tg_newtable, desc, attno);
	if (tenants == NIL)
		return PointerGetDatum(NULL);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	foreach(lc, tenants)
		renewed |= renew_version((char *) lfirst(lc), true);
	SPI_finish();
	if (renewed)
	{
		Oid			marker = get_relname_relid("config_versions", get_namespace_oid("kaireon", false));

		if (OidIsValid(marker))
			CacheInvalidateRelcacheByRelid(marker);
	}
	return PointerGetDatum(NULL);
}

/*
 * AFTER row (or TRUNCATE statement) trigger enabled REPLICA: make every backend recompile
 * every cached configuration at commit, writing nothing.
 */
Datum
kaireon_config_changed_replica(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Oid			seq;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		elog(ERROR, "_config_changed_replica must be an AFTER trigger");
	seq = get_relname_relid("config_version_seq", RelationGetNamespace(td->tg_relation));
	if (OidIsValid(seq))
		CacheInvalidateRelcacheByRelid(seq);
	return PointerGetDatum(NULL);
}
