/*
 * stats/progress.c
 *	  Progress of long operations in shared memory: kaireon.progress
 *	  (docs/statistics.md).  run_campaign, simulate, train_model,
 *	  run_retention, run_maintenance and distribute (through the internal SQL
 *	  helpers below) report their phase and how far they are.
 *
 * Protocol.  One slot per backend (MaxBackends slots, made at server start
 * when kaireon is in shared_preload_libraries), indexed by MyBackendId: a
 * backend writes only its own slot, so writers never contend.  A write is
 * bracketed by PGSTAT_BEGIN_WRITE_ACTIVITY / PGSTAT_END_WRITE_ACTIVITY (the
 * slot's st_changecount is odd while it changes); a reader copies the slot
 * and keeps the copy only when st_changecount was even and the same before
 * and after (pgstat_begin_read_activity ... pgstat_read_activity_complete),
 * retrying otherwise: the changecount protocol of PgBackendStatus, with no
 * lock.  A slot with pid 0 is free.
 *
 * Lifetime.  kaireon_progress_start fills the slot, kaireon_progress_end
 * frees it.  An operation started while another runs (a nested call) does not
 * touch the slot: the row shows the outermost operation.  The slot is also
 * freed when the transaction aborts (an error, a cancel), when a
 * subtransaction in which the operation started aborts (transaction
 * callbacks), and when the backend exits (on_shmem_exit).  A commit does not
 * free it: a procedure (run_maintenance_batched) commits between batches.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "security/session.h"
#include "stats/stats.h"

#define KPROGRESS_OPLEN 32
#define KPROGRESS_TENANTLEN 128
#define KPROGRESS_PHASELEN 64
#define KPROGRESS_MAXDEPTH 16

/* One backend's running operation. */
typedef struct KProgressSlot
{
	int			st_changecount; /* the name the pgstat macros use */
	int			pid;			/* 0: free */
	Oid			dbid;
	char		operation[KPROGRESS_OPLEN];
	char		tenant[KPROGRESS_TENANTLEN];	/* "" for none */
	bool		tenant_cut;		/* the tenant id was longer than the slot holds */
	char		phase[KPROGRESS_PHASELEN];
	int64		done;
	int64		total;			/* < 0: unknown */
	TimestampTz started;
} KProgressSlot;

static KProgressSlot *slots = NULL;
static KProgressSlot *my_slot = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Nesting levels of the transactions that started this backend's running operations. */
static int	depth = 0;
static int	levels[KPROGRESS_MAXDEPTH];
static bool callbacks_registered = false;

PG_FUNCTION_INFO_V1(kaireon_progress);
PG_FUNCTION_INFO_V1(kaireon_progress_start_sql);
PG_FUNCTION_INFO_V1(kaireon_progress_update_sql);
PG_FUNCTION_INFO_V1(kaireon_progress_end_sql);

/* shmem_request_hook: one slot per backend. */
static void
progress_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(mul_size(MaxBackends, sizeof(KProgressSlot)));
}

/* shmem_startup_hook: create or attach to the slots. */
static void
progress_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("kaireon_progress", mul_size(MaxBackends, sizeof(KProgressSlot)), &found);
	if (!found)
		memset(slots, 0, mul_size(MaxBackends, sizeof(KProgressSlot)));
	LWLockRelease(AddinShmemInitLock);
}

/* Module init: with shared_preload_libraries, the shared memory hooks. */
void
kaireon_progress_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* Free this backend's slot and forget its operations. */
static void
clear_slot(void)
{
	depth = 0;
	if (my_slot == NULL || my_slot->pid == 0)
		return;
	PGSTAT_BEGIN_WRITE_ACTIVITY(my_slot);
	my_slot->pid = 0;
	PGSTAT_END_WRITE_ACTIVITY(my_slot);
}

/* Transaction callback: an abort ends every operation. */
static void
progress_xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		clear_slot();
}

/* Subtransaction callback: an abort ends the operations started in it. */
static void
progress_subxact_cb(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	int			level;

	if (event != SUBXACT_EVENT_ABORT_SUB || depth == 0)
		return;
	level = GetCurrentTransactionNestLevel();
	while (depth > 0 && levels[Min(depth, KPROGRESS_MAXDEPTH) - 1] >= level)
		depth--;
	if (depth == 0)
		clear_slot();
}

/* on_shmem_exit: the slot of an exiting backend is freed. */
static void
progress_exit(int code, Datum arg)
{
	clear_slot();
	my_slot = NULL;
}

/* Copy at most len - 1 bytes of s into a slot field. */
static void
put_text(char *dst, const char *s, size_t len)
{
	int			n;

	if (s == NULL)
		s = "";
	/* cut at a character boundary: the field must stay valid text of the database encoding */
	n = pg_mbcliplen(s, strlen(s), len - 1);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

/*
 * Start reporting an operation (total < 0: unknown).  Does nothing without
 * shared memory, and only counts the nesting while another runs.
 */
void
kaireon_progress_start(const char *operation, const char *tenant_id, int64 total)
{
	if (slots == NULL || MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
		return;
	if (!callbacks_registered)
	{
		RegisterXactCallback(progress_xact_cb, NULL);
		RegisterSubXactCallback(progress_subxact_cb, NULL);
		on_shmem_exit(progress_exit, (Datum) 0);
		callbacks_registered = true;
	}
	my_slot = &slots[MyBackendId - 1];
	if (depth < KPROGRESS_MAXDEPTH)
		levels[depth] = GetCurrentTransactionNestLevel();
	if (depth++ > 0)
		return;
	PGSTAT_BEGIN_WRITE_ACTIVITY(my_slot);
	my_slot->pid = MyProcPid;
	my_slot->dbid = MyDatabaseId;
	put_text(my_slot->operation, operation, KPROGRESS_OPLEN);
	put_text(my_slot->tenant, tenant_id, KPROGRESS_TENANTLEN);
	my_slot->tenant_cut = tenant_id != NULL && strlen(tenant_id) >= KPROGRESS_TENANTLEN;
	my_slot->phase[0] = '\0';
	my_slot->done = 0;
	my_slot->total = total;
	my_slot->started = GetCurrentTimestamp();
	PGSTAT_END_WRITE_ACTIVITY(my_slot);
}

/* Report the phase (NULL: unchanged), what is done and the total (< 0: unknown) of the outermost operation. */
void
kaireon_progress_update(const char *phase, int64 done, int64 total)
{
	if (depth != 1 || my_slot == NULL)
		return;
	PGSTAT_BEGIN_WRITE_ACTIVITY(my_slot);
	if (phase != NULL)
		put_text(my_slot->phase, phase, KPROGRESS_PHASELEN);
	my_slot->done = done;
	my_slot->total = total;
	PGSTAT_END_WRITE_ACTIVITY(my_slot);
}

/* End the innermost running operation; the slot is freed when the outermost ends. */
void
kaireon_progress_end(void)
{
	if (depth == 0)
		return;
	if (--depth == 0)
		clear_slot();
}

/*
 * kaireon_internal._progress(): the running operations the caller may see
 * (the rule of kaireon.stat_decisions: superusers, BYPASSRLS roles and
 * members of pg_read_all_stats see all; others the rows of their current
 * tenant in this database).
 */
Datum
kaireon_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KStatScope	scope;
	const char *tenant = NULL;

	if (slots == NULL)
		kaireon_stats_need_preload("kaireon.progress");
	InitMaterializedSRF(fcinfo, 0);
	scope = kaireon_stat_scope(&tenant);
	if (scope == KSTAT_SEE_TENANT && tenant == NULL)
		return (Datum) 0;
	for (int i = 0; i < MaxBackends; i++)
	{
		KProgressSlot *s = &slots[i];
		KProgressSlot c;
		Datum		v[8];
		bool		n[8] = {0};

		for (;;)
		{
			int			before,
						after;

			pgstat_begin_read_activity(s, before);
			memcpy(&c, s, sizeof(KProgressSlot));
			pgstat_end_read_activity(s, after);
			if (pgstat_read_activity_complete(before, after))
				break;
			CHECK_FOR_INTERRUPTS();
		}
		if (c.pid == 0)
			continue;
		if (!kaireon_stat_visible(scope, tenant, c.dbid, c.tenant) ||
			(scope == KSTAT_SEE_TENANT && c.tenant_cut))
			continue;
		v[0] = Int32GetDatum(c.pid);
		v[1] = ObjectIdGetDatum(c.dbid);
		v[2] = CStringGetTextDatum(c.operation);
		n[3] = c.tenant[0] == '\0';
		v[3] = n[3] ? (Datum) 0 : CStringGetTextDatum(c.tenant);
		n[4] = c.phase[0] == '\0';
		v[4] = n[4] ? (Datum) 0 : CStringGetTextDatum(c.phase);
		v[5] = Int64GetDatum(c.done);
		n[6] = c.total < 0;
		v[6] = Int64GetDatum(c.total);
		v[7] = TimestampTzGetDatum(c.started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

/* kaireon_internal._progress_start(operation, tenant_id, total): for PL/pgSQL operations (distribute). */
Datum
kaireon_progress_start_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("operation must not be null"),
				 errhint("Name the operation, as kaireon.progress shows it.")));
	kaireon_progress_start(text_to_cstring(PG_GETARG_TEXT_PP(0)),
						   PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)),
						   PG_ARGISNULL(2) ? -1 : PG_GETARG_INT64(2));
	PG_RETURN_VOID();
}

/* kaireon_internal._progress_update(phase, done, total): a NULL phase stays as it was; a NULL total is unknown. */
Datum
kaireon_progress_update_sql(PG_FUNCTION_ARGS)
{
	kaireon_progress_update(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
							PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
							PG_ARGISNULL(2) ? -1 : PG_GETARG_INT64(2));
	PG_RETURN_VOID();
}

/* kaireon_internal._progress_end(): the operation started by _progress_start is over. */
Datum
kaireon_progress_end_sql(PG_FUNCTION_ARGS)
{
	kaireon_progress_end();
	PG_RETURN_VOID();
}
