/*
 * stats/stats.c
 *	  Decision statistics in shared memory: kaireon.stat_decisions and
 *	  kaireon.stat_reset() (docs/statistics.md).
 *
 * One entry per (database, tenant, channel) in a fixed-size shared hash table
 * of kaireon.stat_max entries, made at server start when kaireon is in
 * shared_preload_libraries (shmem_request_hook, shmem_startup_hook).  The
 * tenant-level counters (configuration compiles and cache hits) live in the
 * tenant's entry with an empty channel (shown as NULL).  When the table is
 * full, or a tenant or channel id is longer than KSTAT_IDLEN - 1 bytes, a call
 * counts in the one overflow entry (shown with NULL database, tenant and
 * channel) instead: nothing is evicted, so a counter never goes back without
 * a reset, and kaireon.stat_reset() frees the table.
 *
 * Locking protocol (that of pg_stat_statements):
 *   - the LWLock of tranche "kaireon_stats" protects the hash table's shape:
 *     a lookup holds it shared, creating or removing entries holds it
 *     exclusive;
 *   - each entry's spinlock protects its counters: an update or a read of an
 *     entry's counters holds the spinlock (and the LWLock, in either mode,
 *     so the entry cannot go away); nothing else is done under a spinlock;
 *   - the overflow entry and stats_reset are in the shared header, under the
 *     header's spinlock;
 *   - nothing raises an error while holding a spinlock, nor while counting under
 *     the LWLock (HASH_ENTER_NULL); the reader of kaireon.stat_decisions builds
 *     its rows under the shared LWLock (palloc may fail there: an error
 *     releases LWLocks at abort).
 * A count: build the key on the stack, find the entry under the shared lock,
 * add under its spinlock; only the first count of a new key takes the lock
 * exclusively.  No allocation, no catalog access, no SPI on this path.
 *
 * Who sees what (kaireon_stat_scope, also the rule of kaireon.progress): a
 * session confined to a tenant (its stored SQL running) or pinned to one sees
 * that tenant's rows of the current database, whatever its other rights;
 * otherwise superusers see every row of every database (and the overflow
 * row), BYPASSRLS roles and members of pg_read_all_stats the rows of the
 * current database, and any other role the rows of its current tenant
 * (kaireon.current_tenant_id()) in the current database, none without a
 * tenant.  kaireon.stat_reset(NULL) resets what the caller sees (a tenant's
 * caller must name it); resetting one tenant needs access to that tenant.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_authid.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "security/session.h"
#include "stats/stats.h"

/* Longest tenant or channel id counted in its own entry, plus one. */
#define KSTAT_IDLEN 128

/*
 * Latency buckets: 0, 1, 2 and 3 microseconds, then four buckets per power of
 * two (quarter octaves: each at most 25% wide) up to 2^40 microseconds.
 */
#define KSTAT_NBUCKETS 160

/* The statistics of one key (all counts since the last reset). */
typedef struct KStatCounters
{
	int64		decisions;		/* recorded (not dry run) decisions */
	int64		dry_runs;
	int64		errors;			/* decisions that raised */
	int64		candidates;
	int64		cap_refusals;
	int64		compiles;		/* configuration compiles (tenant rows) */
	int64		cache_hits;		/* configuration cache hits (tenant rows) */
	int64		responds[3];	/* by outcome class: negative, neutral, positive */
	int64		drops[KSTAT_NDROPS];
	int64		latency[KSTAT_NBUCKETS];
} KStatCounters;

typedef struct KStatKey
{
	Oid			dbid;
	char		tenant[KSTAT_IDLEN];
	char		channel[KSTAT_IDLEN];	/* "" for the tenant-level counters */
} KStatKey;

typedef struct KStatEntry
{
	KStatKey	key;			/* hash key: first */
	TimestampTz since;			/* when the entry was made (set once, under the exclusive lock) */
	slock_t		mutex;			/* protects c */
	KStatCounters c;
} KStatEntry;

typedef struct KStatShared
{
	LWLock	   *lock;			/* the hash table's shape */
	slock_t		mutex;			/* protects overflow and reset_at */
	KStatCounters overflow;
	TimestampTz reset_at;
} KStatShared;

static int	kaireon_stat_max = 1000;
static KStatShared *shared = NULL;
static HTAB *stat_hash = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

#define KSTAT_DROP_NAMES(e, stage, reason) {stage, reason},
static const struct
{
	const char *stage;
	const char *reason;
}			drop_names[KSTAT_NDROPS] = {KSTAT_DROP_LIST(KSTAT_DROP_NAMES)};
#undef KSTAT_DROP_NAMES

PG_FUNCTION_INFO_V1(kaireon_stat_decisions);
PG_FUNCTION_INFO_V1(kaireon_stat_reset);

/* The shared memory the statistics need. */
static Size
stats_memsize(void)
{
	return add_size(MAXALIGN(sizeof(KStatShared)), hash_estimate_size(kaireon_stat_max, sizeof(KStatEntry)));
}

/* shmem_request_hook: reserve the memory and the lock. */
static void
stats_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(stats_memsize());
	RequestNamedLWLockTranche("kaireon_stats", 1);
}

/*
 * The table's hash of a key: of the database and the two ids up to their
 * ends, not of the whole zero-padded key (about a tenth of the bytes; keys are
 * still compared whole, with memcmp).  Every process sets the same function.
 */
static uint32
stat_key_hash(const void *key, Size keysize)
{
	const KStatKey *k = (const KStatKey *) key;
	uint32		h = hash_bytes_uint32(k->dbid);

	h = hash_combine(h, hash_bytes((const unsigned char *) k->tenant, strnlen(k->tenant, KSTAT_IDLEN)));
	return hash_combine(h, hash_bytes((const unsigned char *) k->channel, strnlen(k->channel, KSTAT_IDLEN)));
}

/* shmem_startup_hook: create (postmaster) or attach to (EXEC_BACKEND children) the table. */
static void
stats_shmem_startup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("kaireon_stats", sizeof(KStatShared), &found);
	if (!found)
	{
		shared->lock = &(GetNamedLWLockTranche("kaireon_stats"))->lock;
		SpinLockInit(&shared->mutex);
		memset(&shared->overflow, 0, sizeof(KStatCounters));
		shared->reset_at = GetCurrentTimestamp();
	}
	info.keysize = sizeof(KStatKey);
	info.entrysize = sizeof(KStatEntry);
	info.hash = stat_key_hash;
	stat_hash = ShmemInitHash("kaireon_stats hash", kaireon_stat_max, kaireon_stat_max, &info,
							  HASH_ELEM | HASH_FUNCTION);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Module init, with shared_preload_libraries only (as pg_stat_statements: a
 * PGC_POSTMASTER setting cannot be defined once the server runs): the setting
 * and the shared memory hooks.
 */
void
kaireon_stats_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("kaireon.stat_max",
							"Entries (database, tenant, channel) of kaireon.stat_decisions; more count in its overflow row.",
							NULL, &kaireon_stat_max, 1000, 100, 1000000,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_shmem_startup;
}

/* Raise 55000: what needs the shared memory kaireon makes only when preloaded. */
void
kaireon_stats_need_preload(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("kaireon must be loaded via \"shared_preload_libraries\" to use %s", what),
			 errhint("Add kaireon to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Fill a key; false when an id is too long for it (the call counts in the overflow entry). */
static bool
make_key(KStatKey *key, const char *tenant_id, const char *channel_id)
{
	size_t		tl = strlen(tenant_id),
				cl = channel_id ? strlen(channel_id) : 0;

	if (tl >= KSTAT_IDLEN || cl >= KSTAT_IDLEN)
		return false;
	memset(key, 0, sizeof(KStatKey));
	key->dbid = MyDatabaseId;
	memcpy(key->tenant, tenant_id, tl);
	if (cl > 0)
		memcpy(key->channel, channel_id, cl);
	return true;
}

/* The quarter-octave bucket of a latency in microseconds. */
static int
latency_bucket(int64 us)
{
	int			msb,
				b;

	if (us < 4)
		return us < 0 ? 0 : (int) us;
	msb = pg_leftmost_one_pos64((uint64) us);
	b = 4 * (msb - 1) + (int) ((us >> (msb - 2)) & 3);
	return Min(b, KSTAT_NBUCKETS - 1);
}

/* The upper bound of a bucket, in microseconds. */
static double
bucket_upper(int b)
{
	if (b < 4)
		return b + 1;
	return (double) (5 + b % 4) * (double) (UINT64CONST(1) << (b / 4 - 1));
}

/* A counting step: what to add to one key's counters (called under its spinlock). */
typedef void (*KStatAdd) (KStatCounters *c, const void *arg);

/*
 * Add to the counters of (tenant, channel) of this database: the protocol at
 * the top of the file.  Does nothing without shared memory.
 */
static void
count(const char *tenant_id, const char *channel_id, KStatAdd add, const void *arg)
{
	KStatKey	key;
	KStatEntry *e;

	if (shared == NULL || tenant_id == NULL)
		return;
	if (!make_key(&key, tenant_id, channel_id))
	{
		SpinLockAcquire(&shared->mutex);
		add(&shared->overflow, arg);
		SpinLockRelease(&shared->mutex);
		return;
	}
	LWLockAcquire(shared->lock, LW_SHARED);
	e = hash_search(stat_hash, &key, HASH_FIND, NULL);
	if (e == NULL)
	{
		bool		found;

		LWLockRelease(shared->lock);
		LWLockAcquire(shared->lock, LW_EXCLUSIVE);
		e = hash_search(stat_hash, &key, HASH_FIND, NULL);
		if (e == NULL && hash_get_num_entries(stat_hash) < kaireon_stat_max)
		{
			e = hash_search(stat_hash, &key, HASH_ENTER_NULL, &found);
			if (e != NULL && !found)
			{
				e->since = GetCurrentTimestamp();
				SpinLockInit(&e->mutex);
				memset(&e->c, 0, sizeof(KStatCounters));
			}
		}
		if (e == NULL)
		{
			LWLockRelease(shared->lock);
			SpinLockAcquire(&shared->mutex);
			add(&shared->overflow, arg);
			SpinLockRelease(&shared->mutex);
			return;
		}
	}
	SpinLockAcquire(&e->mutex);
	add(&e->c, arg);
	SpinLockRelease(&e->mutex);
	LWLockRelease(shared->lock);
}

/* What a decision adds, with its latency bucket. */
typedef struct DecisionArg
{
	const KStatDecision *d;
	bool		dry_run;
	int			bucket;
} DecisionArg;

/* Add one decision. */
static void
add_decision(KStatCounters *c, const void *arg)
{
	const DecisionArg *a = arg;

	if (a->dry_run)
		c->dry_runs++;
	else
		c->decisions++;
	c->candidates += a->d->candidates;
	c->cap_refusals += a->d->cap_refusals;
	for (int i = 0; i < KSTAT_NDROPS; i++)
		c->drops[i] += a->d->drops[i];
	c->latency[a->bucket]++;
}

/* Count a decision that returned (recommend, recommend_json; not a campaign's). */
void
kaireon_stat_decision(const char *tenant_id, const char *channel_id, bool dry_run,
					  const KStatDecision *d, int64 elapsed_us)
{
	DecisionArg a = {d, dry_run, latency_bucket(elapsed_us)};

	count(tenant_id, channel_id, add_decision, &a);
}

/* Add one error. */
static void
add_error(KStatCounters *c, const void *arg)
{
	c->errors++;
}

/* Count a decision that raised an error. */
void
kaireon_stat_error(const char *tenant_id, const char *channel_id)
{
	count(tenant_id, channel_id, add_error, NULL);
}

/* Add a configuration compile (arg non-NULL) or cache hit. */
static void
add_config(KStatCounters *c, const void *arg)
{
	if (arg != NULL)
		c->compiles++;
	else
		c->cache_hits++;
}

/* Count a configuration compile or a cache hit, in the tenant's row. */
void
kaireon_stat_config(const char *tenant_id, bool compiled)
{
	count(tenant_id, NULL, add_config, compiled ? tenant_id : NULL);
}

/* Add a respond of class *arg (-1, 0, 1). */
static void
add_respond(KStatCounters *c, const void *arg)
{
	c->responds[*(const int *) arg + 1]++;
}

/* Count a recorded respond by its outcome class (-1 negative, 0 neutral, 1 positive). */
void
kaireon_stat_respond(const char *tenant_id, const char *channel_id, int classification)
{
	int			cls = Max(-1, Min(classification, 1));

	count(tenant_id, channel_id, add_respond, &cls);
}

/*
 * What the calling session may see of the statistics and of kaireon.progress
 * (the rule at the top of this file); *tenant is set for KSTAT_SEE_TENANT
 * (NULL: a role without a current tenant, which sees nothing).
 */
KStatScope
kaireon_stat_scope(const char **tenant)
{
	Oid			caller = GetOuterUserId();
	const char *held = kaireon_restricted_tenant();

	*tenant = NULL;
	if (held != NULL)
	{
		*tenant = held;
		return KSTAT_SEE_TENANT;
	}
	if (superuser_arg(caller))
		return KSTAT_SEE_CLUSTER;
	if (has_bypassrls_privilege(caller) || has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS))
		return KSTAT_SEE_DATABASE;
	*tenant = kaireon_current_tenant();
	return KSTAT_SEE_TENANT;
}

/* Is a row of (dbid, tenant) visible in this scope? */
bool
kaireon_stat_visible(KStatScope scope, const char *tenant, Oid dbid, const char *row_tenant)
{
	if (scope == KSTAT_SEE_CLUSTER)
		return true;
	if (dbid != MyDatabaseId)
		return false;
	return scope == KSTAT_SEE_DATABASE || (tenant != NULL && strcmp(row_tenant, tenant) == 0);
}

/* The latency at quantile q of a histogram, in milliseconds (the bucket's upper bound), or NULL. */
static Datum
percentile(const int64 *h, int64 total, double q, bool *isnull)
{
	int64		rank = (int64) ceil(q * (double) total),
				acc = 0;

	*isnull = total == 0;
	if (total == 0)
		return (Datum) 0;
	rank = Max(rank, 1);
	for (int b = 0; b < KSTAT_NBUCKETS; b++)
	{
		acc += h[b];
		if (acc >= rank)
			return Float8GetDatum(bucket_upper(b) / 1000.0);
	}
	return Float8GetDatum(bucket_upper(KSTAT_NBUCKETS - 1) / 1000.0);
}

/* The drops as {"stage": {"reason": n}}, non-zero counts only. */
static Datum
drops_jsonb(const int64 *drops)
{
	json_t	   *o = json_object();

	for (int i = 0; i < KSTAT_NDROPS; i++)
	{
		json_t	   *stage;

		if (drops[i] == 0)
			continue;
		stage = json_object_get(o, drop_names[i].stage);
		if (stage == NULL)
		{
			stage = json_object();
			json_object_set_new(o, drop_names[i].stage, stage);
		}
		json_object_set_new(stage, drop_names[i].reason, json_integer(drops[i]));
	}
	return JsonbPGetDatum(kj_to_jsonb(o));
}

#define KSTAT_COLS 18

/* One row of kaireon.stat_decisions (key NULL: the overflow row). */
static void
put_row(ReturnSetInfo *rsinfo, const KStatKey *key, const KStatCounters *c, TimestampTz since)
{
	Datum		v[KSTAT_COLS];
	bool		n[KSTAT_COLS] = {0};
	int64		total = 0;
	int			i = 0;

	for (int b = 0; b < KSTAT_NBUCKETS; b++)
		total += c->latency[b];
	n[0] = n[1] = key == NULL;
	n[2] = key == NULL || key->channel[0] == '\0';
	v[i++] = key ? ObjectIdGetDatum(key->dbid) : (Datum) 0;
	v[i++] = key ? CStringGetTextDatum(key->tenant) : (Datum) 0;
	v[i++] = n[2] ? (Datum) 0 : CStringGetTextDatum(key->channel);
	v[i++] = Int64GetDatum(c->decisions);
	v[i++] = Int64GetDatum(c->dry_runs);
	v[i++] = Int64GetDatum(c->errors);
	v[i++] = Int64GetDatum(c->candidates);
	v[i++] = drops_jsonb(c->drops);
	v[i++] = Int64GetDatum(c->cap_refusals);
	v[i] = percentile(c->latency, total, 0.50, &n[i]);
	i++;
	v[i] = percentile(c->latency, total, 0.95, &n[i]);
	i++;
	v[i] = percentile(c->latency, total, 0.99, &n[i]);
	i++;
	v[i++] = Int64GetDatum(c->compiles);
	v[i++] = Int64GetDatum(c->cache_hits);
	v[i++] = Int64GetDatum(c->responds[2]);
	v[i++] = Int64GetDatum(c->responds[1]);
	v[i++] = Int64GetDatum(c->responds[0]);
	v[i++] = TimestampTzGetDatum(since);
	Assert(i == KSTAT_COLS);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/*
 * kaireon_internal._stat_decisions(): the rows of kaireon.stat_decisions the
 * caller may see.  Each entry's counters are copied under its spinlock, then
 * the row is built outside it (under the shared LWLock only).
 */
Datum
kaireon_stat_decisions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KStatScope	scope;
	const char *tenant = NULL;
	HASH_SEQ_STATUS seq;
	KStatEntry *e;
	KStatCounters c;
	TimestampTz reset_at;

	if (shared == NULL)
		kaireon_stats_need_preload("kaireon.stat_decisions");
	InitMaterializedSRF(fcinfo, 0);
	scope = kaireon_stat_scope(&tenant);
	if (scope == KSTAT_SEE_TENANT && tenant == NULL)
		return (Datum) 0;
	SpinLockAcquire(&shared->mutex);
	reset_at = shared->reset_at;
	c = shared->overflow;
	SpinLockRelease(&shared->mutex);
	/* the overflow row belongs to no database: superusers only */
	if (scope == KSTAT_SEE_CLUSTER)
		put_row(rsinfo, NULL, &c, reset_at);

	LWLockAcquire(shared->lock, LW_SHARED);
	hash_seq_init(&seq, stat_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (!kaireon_stat_visible(scope, tenant, e->key.dbid, e->key.tenant))
			continue;
		SpinLockAcquire(&e->mutex);
		c = e->c;
		SpinLockRelease(&e->mutex);
		put_row(rsinfo, &e->key, &c, e->since);
	}
	LWLockRelease(shared->lock);
	return (Datum) 0;
}

/*
 * kaireon.stat_reset(tenant_id): forget the counters, all of them (NULL: the
 * caller must see every row; the overflow row too) or those of one tenant of
 * the current database (the caller must have access to the tenant).
 */
Datum
kaireon_stat_reset(PG_FUNCTION_ARGS)
{
	const char *tenant = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *own_tenant;
	KStatScope	scope;
	HASH_SEQ_STATUS seq;
	KStatEntry *e;

	if (shared == NULL)
		kaireon_stats_need_preload("kaireon.stat_reset()");
	scope = kaireon_stat_scope(&own_tenant);
	if (tenant == NULL && scope == KSTAT_SEE_TENANT)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to reset the statistics of every tenant"),
				 errhint("Pass your tenant: kaireon.stat_reset('<tenant id>'), or ask a superuser.")));
	if (tenant != NULL)
		kaireon_check_tenant_access(tenant);

	/* one tenant of this database; or what the caller sees: this database's rows, or all */
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, stat_hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (tenant != NULL ? (e->key.dbid == MyDatabaseId && strcmp(e->key.tenant, tenant) == 0)
			: kaireon_stat_visible(scope, NULL, e->key.dbid, e->key.tenant))
			hash_search(stat_hash, &e->key, HASH_REMOVE, NULL);
	LWLockRelease(shared->lock);
	if (tenant == NULL && scope == KSTAT_SEE_CLUSTER)
	{
		TimestampTz now = GetCurrentTimestamp();

		SpinLockAcquire(&shared->mutex);
		memset(&shared->overflow, 0, sizeof(KStatCounters));
		shared->reset_at = now;
		SpinLockRelease(&shared->mutex);
	}
	PG_RETURN_VOID();
}
