/*
 * config/cache.c
 *	  Per-backend cache of each tenant's compiled decisioning configuration.
 *
 * The first recommend or respond for a tenant reads its configuration tables
 * with SPI and compiles them into the structs of config.h (compile.c), in a
 * memory context of their own under CacheMemoryContext.  Later calls reuse
 * them and do no SPI work for configuration.  This file keeps them and
 * decides when one must be compiled again.
 *
 * Invalidation protocol.  Every configuration table has a trigger
 * (kaireon.config_changed, see invalidate.c) that, in the writing
 * transaction, sets the tenant's row of kaireon.config_versions to a fresh
 * value of a sequence and calls CacheInvalidateRelcache on config_versions.
 * At commit every backend receives that relcache invalidation; our callback
 * only counts it (callbacks must not do catalog or SPI work): every cached
 * tenant is then "to check".  The next kaireon_config_get for such a tenant
 * reads the tenant's version (one indexed lookup) and recompiles only when
 * it changed.  A cached config also remembers the OID of config_versions, so
 * a dropped and recreated extension never reuses configurations compiled
 * before.  Entries are replaced only at the start of a call; a replaced
 * configuration a call still uses is retired, not freed (see Pins).
 *
 * Changes that fire no statement trigger.  Logical replication's apply
 * worker (and any session with session_replication_role = replica) fires
 * only triggers enabled REPLICA or ALWAYS, and row triggers only (statement
 * triggers at the initial table copy).  Each configuration table therefore
 * also has a row trigger enabled REPLICA (kaireon_internal._config_changed_replica)
 * that writes nothing, so that a subscriber whose config_versions is not
 * replicated (or is) never conflicts with the publisher: it sends a relcache
 * invalidation of the sequence kaireon.config_version_seq, which tells every
 * backend to recompile every cached tenant whatever its version.  So does a
 * full reset of the caches (the backend may have missed such a message).
 * The triggers enabled REPLICA do not fire on the primary's write path.
 *
 * The callback bumps counters rather than flags on the entries, and a
 * lookup records the counters as they were before it read the version, so an
 * invalidation that arrives while a configuration is being compiled is not
 * lost.
 *
 * Snapshots.  The version is read, and a configuration compiled, under the
 * caller's snapshot, which may be older than the change whose invalidation
 * was just taken in (one that arrives with a lock taken after the
 * statement's or a REPEATABLE READ transaction's snapshot): such a read
 * sees the old version, and must not use the invalidation up.  So an
 * invalidation counted while a transaction is in progress (not at its
 * start, before any snapshot of it) is counted once more when that
 * transaction ends (a transaction callback): the next transaction's calls
 * read the version again, under their own snapshots.  Within the
 * transaction the configuration its snapshot saw stays in use.
 *
 * Customer data tables.  A compiled configuration holds facts about its
 * tenant's data tables that no configuration change covers (a DBA may
 * alter a table by hand): the table and its primary key, which the kept
 * lookup's SQL names.  A relcache invalidation of such a table marks the
 * tenants whose configuration reads it; their next call checks the facts
 * again (the relcache, no SQL) and recompiles when one changed.
 *
 * Pins.  A call may run SQL of the tenant's (a view, a policy's function, a
 * trigger) that calls recommend or respond again for the same tenant after
 * a change; that nested call compiles afresh, and the configuration it
 * replaces is still used by the outer call.  So every configuration handed
 * out is pinned until the caller's memory context is reset or deleted (a
 * reset callback; an error's cleanup deletes it too), and one replaced
 * while pinned is retired: freed by the first kaireon_config_get after its
 * last pin is gone.
 *
 * On Citus (kaireon.distribute()), a configuration change runs on the node
 * holding the tenant's shards, and relcache invalidations reach only that
 * node's backends; a backend elsewhere (the coordinator, or the old node of
 * a moved tenant) would keep a stale configuration.  So when
 * kaireon.config_versions is a distributed table, every call reads the
 * tenant's version (one indexed lookup on the tenant's own row, local in a
 * delegated call) and recompiles when it changed.  Whether it is distributed
 * is looked up again after every invalidation of config_versions (Citus's
 * create_distributed_table sends one).
 */
#include "postgres.h"

#include "util/json.h"
#include "util/version.h"

#include "access/relation.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"

#include "util/inval.h"
#include "util/spi.h"
#include "config/compile.h"
#include "stats/stats.h"

typedef struct CacheEntry
{
	char		tenant_id[NAMEDATALEN * 4]; /* hash key */
	KTenantConfig *config;
	uint64		checked;		/* check_count when its version was last read */
	uint64		compiled;		/* recompile_count when it was compiled */
	Oid			marker;			/* config_versions OID it was compiled under */
	uint32		tables_marked;	/* invalidations of data tables it reads (Customer data tables) */
	uint32		tables_checked; /* tables_marked when they were last checked */
} CacheEntry;

static HTAB *config_cache = NULL;

/* Configurations replaced while pinned (in CacheMemoryContext), freed once unpinned. */
static List *retired = NIL;

/* The relations whose invalidations concern the cache (as last looked up). */
static Oid	version_marker = InvalidOid;	/* kaireon.config_versions */
static Oid	recompile_marker = InvalidOid;	/* kaireon.config_version_seq */

/*
 * config_marker_oid's last answer (InvalidOid: none kept), forgotten with any
 * relcache invalidation of that relation (its drop, rename or move sends one;
 * so does every configuration change) or a full reset, and with any change
 * of a schema (the name "kaireon" could then mean another): the two catalog
 * lookups it saves were a sixth of kaireon_config_get.
 */
static Oid	known_marker = InvalidOid;

static uint64 marker_resets = 0;	/* times it was forgotten: a lookup overtaken by one is not kept */

/* Whether config_versions is a Citus distributed table: -1 not known, else 0 / 1. */
static int	versions_distributed = -1;

/* Invalidations received: every tenant is to check / to recompile since. */
static uint64 check_count = 1;

static uint64 recompile_count = 1;

/* Invalidations counted while this transaction is in progress, to count again at its end (see Snapshots). */
static bool replay_check = false;
static bool replay_recompile = false;

/*
 * Relcache callback: a change to config_versions makes every tenant "to check"; one to
 * config_version_seq (sent by the replica-mode trigger) or a full reset "to recompile".
 * Every invalidation also goes to kaireon_relcache_listener (config.h).
 */
void		(*kaireon_relcache_listener) (Oid relid) = NULL;

/* The relcache callback itself (see above). */
static void
config_cache_invalidate(Datum arg, Oid relid)
{
	if (kaireon_relcache_listener != NULL)
		kaireon_relcache_listener(relid);
	if (relid == InvalidOid || (OidIsValid(recompile_marker) && relid == recompile_marker))
	{
		check_count++;
		recompile_count++;
		if (IsTransactionState())
			replay_check = replay_recompile = true;
	}
	else if (OidIsValid(version_marker) && relid == version_marker)
	{
		check_count++;
		if (IsTransactionState())
			replay_check = true;
	}
	if (relid == InvalidOid || relid == version_marker)
		versions_distributed = -1;
	if (relid == InvalidOid || relid == known_marker)
	{
		known_marker = InvalidOid;
		marker_resets++;
	}
	if (OidIsValid(relid) && config_cache != NULL)
	{
		HASH_SEQ_STATUS seq;
		CacheEntry *e;

		hash_seq_init(&seq, config_cache);
		while ((e = hash_seq_search(&seq)) != NULL)
			for (int i = 0; e->config != NULL && i < e->config->ncustomer_schemas; i++)
				if (e->config->customer_schemas[i].table == relid)
				{
					e->tables_marked++;
					break;
				}
	}
}

/* Syscache callback on pg_namespace: a schema renamed, dropped or made; the kept marker is forgotten. */
static void
config_namespace_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	known_marker = InvalidOid;
	marker_resets++;
}

/* Transaction callback: count once more, at its end, the invalidations a transaction took in (see Snapshots). */
static void
config_xact_end(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (replay_check)
		check_count++;
	if (replay_recompile)
		recompile_count++;
	replay_check = replay_recompile = false;
}

/*
 * Whether every call must read the tenant's version (config_versions is a
 * Citus distributed table, see the protocol above).  Runs inside SPI.
 */
static bool
check_every_call(Oid marker)
{
	if (versions_distributed < 0)
		versions_distributed = OidIsValid(marker) && kspi_citus_table("kaireon.config_versions") ? 1 : 0;
	return versions_distributed == 1;
}

int			kaireon_adaptation_refresh_ms = 1000;

/* Module init: the relcache callback (the hash table is made on first use) and settings. */
void
kaireon_config_cache_init(void)
{
	kaireon_register_relcache_callback(config_cache_invalidate, (Datum) 0);
	RegisterXactCallback(config_xact_end, NULL);
	CacheRegisterSyscacheCallback(NAMESPACEOID, config_namespace_invalidate, (Datum) 0);
	DefineCustomIntVariable("kaireon.adaptation_refresh_ms",
							"How old the adaptive propensity counts a backend uses may be, in milliseconds.",
							"0 reads them for every decision.",
							&kaireon_adaptation_refresh_ms, 1000, 0, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* OID of kaireon.config_versions, or InvalidOid when the extension is not there (kept: known_marker). */
static Oid
config_marker_oid(void)
{
	uint64		resets = marker_resets;
	Oid			nsp;
	Oid			marker;

	if (OidIsValid(known_marker))
		return known_marker;
	nsp = get_namespace_oid("kaireon", true);
	if (!OidIsValid(nsp))
		return InvalidOid;
	marker = get_relname_relid("config_versions", nsp);
	if (resets == marker_resets)
		known_marker = marker;
	return marker;
}

/* Read the tenant's configuration version; -1 when the tenant does not exist. */
static int64
read_version(const char *tenant_id)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	int64		v;

	args[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args(
		"SELECT coalesce((SELECT version FROM kaireon.config_versions WHERE tenant_id = $1), 0) "
		"  FROM kaireon.tenants t WHERE t.id = $1", 1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not read the configuration version");
	if (SPI_processed == 0)
		return -1;
	v = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return v;
}

/*
 * Whether each data table cfg reads is still the table, with the primary key
 * and key column, it was compiled with (the catalog as it is now, as the
 * compile reads it: kaireon_primary_key).
 */
static bool
tables_current(const KTenantConfig *cfg)
{
	for (int i = 0; i < cfg->ncustomer_schemas; i++)
	{
		const KCustomerSchema *cs = &cfg->customer_schemas[i];
		Relation	rel = try_relation_open(cs->table, AccessShareLock);
		AttrNumber	keyatt;
		bool		same;

		if (rel == NULL)
			return false;
		same = kaireon_primary_key(rel, &keyatt) == cs->pk_index &&
			strcmp(quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											  RelationGetRelationName(rel)), cs->qualified_table) == 0 &&
			(!OidIsValid(cs->pk_index) ||
			 (keyatt > 0 && cs->key_column != NULL &&
			  strcmp(NameStr(TupleDescAttr(RelationGetDescr(rel), keyatt - 1)->attname), cs->key_column) == 0));
		relation_close(rel, AccessShareLock);
		if (!same)
			return false;
	}
	return true;
}

/* Memory context reset callback: the call that pinned a configuration is over. */
static void
config_unpin(void *arg)
{
	((KTenantConfig *) arg)->pins--;
}

/* Pin cfg until the caller's memory context is reset or deleted; return it. */
static KTenantConfig *
config_pin(KTenantConfig *cfg)
{
	MemoryContextCallback *cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));

	cb->func = config_unpin;
	cb->arg = cfg;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	cfg->pins++;
	return cfg;
}

/* Free cfg now when no call uses it, else retire it until its last pin is gone. */
static void
config_replace(KTenantConfig *cfg)
{
	if (cfg->pins <= 0)
	{
		kaireon_config_free(cfg);
		return;
	}
	{
		MemoryContext old = MemoryContextSwitchTo(CacheMemoryContext);

		retired = lappend(retired, cfg);
		MemoryContextSwitchTo(old);
	}
}

/* Free the retired configurations no call uses any more. */
static void
free_unpinned(void)
{
	ListCell   *lc;

	foreach(lc, retired)
	{
		KTenantConfig *cfg = lfirst(lc);

		if (cfg->pins > 0)
			continue;
		retired = foreach_delete_current(retired, lc);
		kaireon_config_free(cfg);
	}
}

/*
 * The tenant's compiled configuration, compiling it on first use or after a
 * committed change, pinned for the caller's memory context (see Pins
 * above).  Must be called inside an SPI connection.  Raises 42704 for an
 * unknown tenant.  Steps: the fast path (checked since the last
 * invalidation); else the version read; then the configuration kept when
 * its version and compile are current, else compiled again.
 */
KTenantConfig *
kaireon_config_get(const char *tenant_id)
{
	CacheEntry *e;
	bool		found;
	Oid			marker = config_marker_oid();
	int64		version;
	uint64		checked;
	uint64		compiled;

	kaireon_require_sql_version();
	if (strlen(tenant_id) >= sizeof(((CacheEntry *) 0)->tenant_id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant id \"%.40s...\" is too long", tenant_id),
				 errhint("Tenant ids are at most 200 characters.")));
	if (retired != NIL)
		free_unpinned();
	if (config_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(((CacheEntry *) 0)->tenant_id);
		ctl.entrysize = sizeof(CacheEntry);
		ctl.hcxt = CacheMemoryContext;
		config_cache = hash_create("kaireon tenant configs", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (marker != version_marker || !OidIsValid(recompile_marker))
	{
		version_marker = marker;
		recompile_marker = OidIsValid(marker) ?
			get_relname_relid("config_version_seq", get_rel_namespace(marker)) : InvalidOid;
	}
	e = hash_search(config_cache, tenant_id, HASH_ENTER, &found);
	if (!found)
	{
		e->config = NULL;
		e->checked = 0;
		e->compiled = 0;
		e->marker = InvalidOid;
		e->tables_marked = e->tables_checked = 0;
	}
	if (e->config != NULL && e->tables_marked != e->tables_checked)
	{
		/* the marks as they were before the check: one arriving during it (or an error) checks again */
		uint32		marked = e->tables_marked;

		if (!tables_current(e->config))
			e->compiled = 0;
		e->tables_checked = marked;
	}
	if (e->config != NULL && e->checked == check_count && e->compiled == recompile_count && e->marker == marker &&
		!check_every_call(marker))
	{
		kaireon_stat_config(tenant_id, false);
		return config_pin(e->config);
	}

	/* invalidations arriving from here on are for the next call */
	checked = check_count;
	compiled = recompile_count;
	version = read_version(tenant_id);
	if (version < 0)
	{
		if (e->config)
			config_replace(e->config);
		hash_search(config_cache, tenant_id, HASH_REMOVE, NULL);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant_id),
				 errhint("Create it in kaireon.tenants, and check kaireon.tenant_id for row level security.")));
	}
	if (e->config != NULL && e->marker == marker && e->config->version == version && e->compiled == compiled)
	{
		e->checked = checked;
		kaireon_stat_config(tenant_id, false);
		return config_pin(e->config);
	}
	{
		KTenantConfig *fresh = kaireon_config_compile(tenant_id, version);

		if (e->config)
			config_replace(e->config);
		e->config = fresh;
		e->marker = marker;
		e->checked = checked;
		e->compiled = compiled;
	}
	kaireon_stat_config(tenant_id, true);
	return config_pin(e->config);
}

/*
 * kaireon.config_cache_stats(): one row per configuration compiled in this
 * backend (tenant, version, bytes of its memory context and what it holds),
 * for the tenants the caller may see (the rule of kaireon.stat_decisions).
 * Reads only this backend's cache: no SPI, no compile.
 */
PG_FUNCTION_INFO_V1(kaireon_config_cache_stats);

/* kaireon.config_cache_stats(): see above. */
Datum
kaireon_config_cache_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *tenant = NULL;
	KStatScope	scope;
	HASH_SEQ_STATUS seq;
	CacheEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	scope = kaireon_stat_scope(&tenant);
	if (config_cache == NULL || (scope == KSTAT_SEE_TENANT && tenant == NULL))
		return (Datum) 0;
	hash_seq_init(&seq, config_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		const KTenantConfig *cfg = e->config;
		Datum		v[7];
		bool		n[7] = {0};

		if (cfg == NULL || !kaireon_stat_visible(scope, tenant, MyDatabaseId, cfg->tenant_id))
			continue;
		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = Int64GetDatum(cfg->version);
		v[2] = Int64GetDatum((int64) MemoryContextMemAllocated(cfg->mcxt, true));
		v[3] = Int32GetDatum(cfg->noffers);
		v[4] = Int32GetDatum(cfg->ncreatives);
		v[5] = Int32GetDatum(cfg->nrules);
		v[6] = Int32GetDatum(cfg->npolicies);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}
