/*
 * jobs.c
 *	  The maintenance jobs (docs/workers.md), the context they run in, their
 *	  run history, and kaireon.run_maintenance / run_maintenance_batched.
 *
 * A job body does its work in batches and calls kjob_boundary() between
 * two of them.  What the boundary does depends on who runs the job (maint.h):
 * nothing in a caller's transaction (SQL functions), SPI_commit() in a CALLed
 * procedure, commit and a new transaction in the background worker; after a
 * batch that changed rows it may also pause kaireon.retention_batch_delay, so
 * a long purge leaves room to the decisions.  No lock is held across the
 * pause (the transaction that took them has committed; in a caller's
 * transaction there is no pause).  Each statement of a job runs in a
 * subtransaction (kjob_try), so an error is recorded in the job's detail and
 * the run goes on with the next job; a cancel (or a statement timeout) is
 * re-thrown.
 *
 * Every run is recorded in kaireon.maintenance_runs.  Long jobs (retention,
 * partitions, summaries, scores) write their row when they start, committed
 * at once in the worker and in procedures, and update it as they progress,
 * so a row left 'running' by a process that is gone marks an interrupted
 * run (the worker marks it and runs the job again when it starts).  Frequent
 * jobs (outbox, volume resets, suppressions, dual prices) write a row only
 * when they did something or failed.  Each job keeps its newest
 * kaireon.run_history_size rows.
 *
 * Locking protocol.  A job never runs twice at once in a database: each run
 * takes the advisory lock (KJOB_LOCK_KEY, job number + 1) of its database
 * (kjob_lock_job).  The worker only tries it and skips the run when another
 * process holds it (status 'skipped', detail.heldBy); a manual call
 * (run_maintenance, run_retention and their procedures) waits for it, within
 * lock_timeout (55P03 beyond).  In the caller's transaction it is a
 * transaction lock; in the worker and in procedures, whose runs span several
 * transactions, a session lock released when the job ends (or fails: the
 * worker's error path and kjob_run's, after the rollback).  It is the only
 * lock held across the pauses between batches, and no decision takes it.
 * The worker also holds (KJOB_LOCK_KEY, 0) for its whole life: one worker per
 * database (kjob_lock_database).
 */
#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/pmsignal.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "kaireon.h"
#include "maintenance/maintenance.h"

PG_FUNCTION_INFO_V1(kaireon_run_maintenance);
PG_FUNCTION_INFO_V1(kaireon_run_maintenance_batched);

int			kaireon_retention_batch_size = 5000;
int			kaireon_retention_batch_delay = 50;
int			kaireon_retention_lock_timeout = 100;
int			kaireon_retention_partition_action = KRET_PARTITION_DROP;
int			kaireon_retention_decision_lock_days = 100;
int			kaireon_retention_idempotency_days = 30;
int			kaireon_partition_months_ahead = 3;
int			kaireon_outbox_batch_size = 100;
int			kaireon_summary_slice = 1440;
int			kaireon_run_history_size = 100;
static int	kaireon_outbox_retry_base = 1000;
static int	kaireon_outbox_retry_max = 3600000;

static const struct config_enum_entry partition_actions[] = {
	{"drop", KRET_PARTITION_DROP, false},
	{"detach", KRET_PARTITION_DETACH, false},
	{NULL, 0, false}
};

/* Register the settings of the jobs (before the kaireon. prefix is reserved). */
void
kaireon_jobs_init(void)
{
	DefineCustomIntVariable("kaireon.retention_batch_size",
							"Rows retention removes per batch (each batch is one short transaction in the worker).",
							NULL, &kaireon_retention_batch_size, 5000, 100, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_batch_delay",
							"Pause after each retention batch that removed rows (worker and procedures only).",
							NULL, &kaireon_retention_batch_delay, 50, 0, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_lock_timeout",
							"Longest wait for the locks of a partition retention drops, or of partition creation.",
							"Beyond it the step is retried a few times, then left to the next run.",
							&kaireon_retention_lock_timeout, 100, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomEnumVariable("kaireon.retention_partition_action",
							 "What retention does with a monthly partition of interaction_history every tenant has passed: drop or detach.",
							 NULL, &kaireon_retention_partition_action, KRET_PARTITION_DROP, partition_actions,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_decision_lock_days",
							"Days after a customer's last recorded decision before retention removes its decision_locks row.",
							NULL, &kaireon_retention_decision_lock_days, 100, 1, 36500,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_idempotency_days",
							"Days retention keeps the idempotency keys of kaireon.respond.",
							NULL, &kaireon_retention_idempotency_days, 30, 1, 36500,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.partition_months_ahead",
							"Months of interaction_history partitions created ahead of the current one.",
							NULL, &kaireon_partition_months_ahead, 3, 0, 120,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.outbox_batch_size",
							"Outbox events published per transaction by the outbox job.",
							NULL, &kaireon_outbox_batch_size, 100, 1, 10000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.outbox_retry_base",
							"Wait before the first retry of a failed outbox delivery; doubled for each further retry.",
							NULL, &kaireon_outbox_retry_base, 1000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.outbox_retry_max",
							"Longest wait between two retries of a failed outbox delivery.",
							NULL, &kaireon_outbox_retry_max, 3600000, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.summary_slice",
							"Creation time of history one summary rollup step adds per definition (one transaction in the worker).",
							NULL, &kaireon_summary_slice, 1440, 1, 525600,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.run_history_size",
							"Rows of kaireon.maintenance_runs kept per job.",
							NULL, &kaireon_run_history_size, 100, 1, 100000,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Raise 42501 unless the caller may run maintenance over every tenant. */
void
kjob_require_maintainer(const char *what)
{
	if (superuser() || has_bypassrls_privilege(GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for %s", what),
			 errdetail("It acts on the rows of every tenant."),
			 errhint("Run it as a superuser or a role with BYPASSRLS (kaireon.grant_admin_role).")));
}

/* Sleep ms milliseconds on the process latch, holding no lock; wakes for interrupts. */
void
kjob_sleep(int ms)
{
	if (ms <= 0)
		return;
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/* The tag of kaireon's advisory lock (KJOB_LOCK_KEY, key2) in this database. */
static void
kjob_lock_tag(LOCKTAG *tag, int key2)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) KJOB_LOCK_KEY, (uint32) key2, 2);
}

/* The job whose session lock this process holds (index in kaireon_jobs), -1 if none. */
static int	held_job_lock = -1;

/* Error context while waiting for a job's lock. */
static void
job_lock_context(void *arg)
{
	errcontext("waiting for maintenance job %s, which another process is running (kaireon.maintenance_runs, pg_locks)",
			   (const char *) arg);
}

/*
 * Take the lock of a job (see the file header): a transaction lock in the
 * caller's transaction, else a session lock; the worker does not wait.
 * False when the worker could not have it.
 */
static bool
kjob_lock_job(KJobCtx *ctx, const KJobDef *job)
{
	LOCKTAG		tag;
	int			idx = (int) (job - kaireon_jobs);

	ErrorContextCallback errcb;
	LockAcquireResult res;

	kjob_lock_tag(&tag, idx + 1);
	/* a lock timeout or a cancel while waiting names the job */
	errcb.callback = job_lock_context;
	errcb.arg = (void *) job->name;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	Assert(ctx->mode == KJOB_ATOMIC || held_job_lock < 0);
	res = LockAcquire(&tag, ExclusiveLock, ctx->mode != KJOB_ATOMIC, ctx->mode == KJOB_WORKER);
	error_context_stack = errcb.previous;
	if (res == LOCKACQUIRE_NOT_AVAIL)
		return false;
	if (ctx->mode != KJOB_ATOMIC)
		held_job_lock = idx;
	return true;
}

/* Release the session lock of a job, if this process holds one (no transaction needed). */
void
kjob_release_lock(void)
{
	LOCKTAG		tag;

	if (held_job_lock < 0)
		return;
	kjob_lock_tag(&tag, held_job_lock + 1);
	held_job_lock = -1;
	(void) LockRelease(&tag, ExclusiveLock, true);
}

/* Try the worker's lock of this database, for the session; false when another process holds it. */
bool
kjob_lock_database(void)
{
	LOCKTAG		tag;

	kjob_lock_tag(&tag, 0);
	return LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* The pid of another process holding kaireon's lock (KJOB_LOCK_KEY, key2), 0 if none (SPI connected). */
int
kjob_lock_holder(int key2)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2] = {Int64GetDatum((int64) KJOB_LOCK_KEY), Int64GetDatum((int64) key2)};

	return (int) kjob_exec_int("SELECT l.pid::bigint FROM pg_catalog.pg_locks l "
							   " WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_catalog.pg_backend_pid() "
							   "   AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()) "
							   "   AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 2 LIMIT 1",
							   2, types, values, NULL);
}

/*
 * The point between two batches of a job: commit (procedure, worker) and,
 * after a batch that changed rows (pause), wait kaireon.retention_batch_delay.
 * SPI stays connected; CurrentMemoryContext is kept.
 */
void
kjob_boundary(KJobCtx *ctx, bool pause)
{
	MemoryContext cxt = CurrentMemoryContext;

	ctx->batches++;
	switch (ctx->mode)
	{
		case KJOB_ATOMIC:
			CHECK_FOR_INTERRUPTS();
			return;
		case KJOB_PROCEDURE:
			SPI_commit();		/* and starts the next transaction */
			if (pause)
				kjob_sleep(kaireon_retention_batch_delay);
			break;
		case KJOB_WORKER:
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			pgstat_report_stat(false);
			if (pause)
				kjob_sleep(kaireon_retention_batch_delay);
			else
				CHECK_FOR_INTERRUPTS();
			if (!PostmasterIsAlive())
				proc_exit(1);
			if (kaireon_worker_reload_pending())
				ProcessConfigFile(PGC_SIGHUP);
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "kaireon: SPI_connect failed");
			PushActiveSnapshot(GetTransactionSnapshot());
			break;
	}
	MemoryContextSwitchTo(cxt);
}

/*
 * Run fn(arg) in a subtransaction.  On error, roll it back and return false
 * with the message (in the caller's memory context) and SQLSTATE; a cancel
 * or statement timeout (57014) is re-thrown, so an interrupted run stops.
 */
bool
kjob_try(KJobCtx *ctx, KStepFn fn, void *arg, char **errmsg, int *sqlerrcode)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		if (errmsg)
			*errmsg = pstrdup(edata->message);
		if (sqlerrcode)
			*sqlerrcode = edata->sqlerrcode;
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Run a statement with arguments; the first column of its first row as int64 (NULL -> 0). */
int64
kjob_exec_int(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	int64		v = 0;

	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		elog(ERROR, "kaireon: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
	if (SPI_tuptable != NULL && SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			v = DatumGetInt64(d);
	}
	return v;
}

/* Run a statement with arguments. */
void
kjob_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	(void) kjob_exec_int(sql, nargs, types, values, nulls);
}

/* A statement of a job body (kjob_try): its first row's int8 columns (at most 3). */
typedef struct JobSql
{
	const char *sql;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	int64		out[3];
} JobSql;

/* kjob_try body of job_sql. */
static void
job_sql_body(void *arg)
{
	JobSql	   *q = (JobSql *) arg;
	MemoryContext cxt = CurrentMemoryContext;
	int			rc = SPI_execute_with_args(q->sql, q->nargs, q->types, q->values, NULL, false, 0);

	MemoryContextSwitchTo(cxt);
	if (rc < 0)
		elog(ERROR, "kaireon: \"%s\" failed: %s", q->sql, SPI_result_code_string(rc));
	memset(q->out, 0, sizeof(q->out));
	if (SPI_tuptable != NULL && SPI_processed > 0)
		for (int i = 0; i < Min(SPI_tuptable->tupdesc->natts, 3); i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull);

			if (!isnull)
				q->out[i] = DatumGetInt64(d);
		}
}

/*
 * Run one statement of a job in a subtransaction; on error record it in the
 * job's detail ("error") and return false.  out gets the int8 columns of the
 * first row.
 */
static bool
job_sql(KJobCtx *ctx, json_t *detail, int64 *out, const char *sql, int nargs, Oid *types, Datum *values)
{
	JobSql		q = {sql, nargs, types, values, {0, 0, 0}};
	char	   *msg = NULL;

	if (!kjob_try(ctx, job_sql_body, &q, &msg, NULL))
	{
		json_object_set_new(detail, "error", json_string(msg));
		return false;
	}
	if (out)
		memcpy(out, q.out, sizeof(q.out));
	return true;
}

/* Whether a job has run long enough in one go (the worker comes back for the rest). */
static bool
job_long(KJobCtx *ctx, TimestampTz started, int seconds)
{
	return ctx->mode != KJOB_ATOMIC &&
		TimestampDifferenceExceeds(started, GetCurrentTimestamp(), seconds * 1000);
}

/* retention: every data class of every tenant, then the coming partitions. */
static void
job_retention(KJobCtx *ctx, json_t *detail)
{
	ctx->report = kaireon_retention(ctx, ctx->dry_run, ctx->classes, &ctx->nreport, detail);
	if (json_array_size(json_object_get(detail, "errors")) > 0)
		json_object_set_new(detail, "error", json_string("some tables could not be purged (see errors)"));
}

/* suppressions: retention of the suppressions class (expired suppressions). */
static void
job_suppressions(KJobCtx *ctx, json_t *detail)
{
	ctx->report = kaireon_retention(ctx, false, list_make1("suppressions"), &ctx->nreport, detail);
	if (json_integer_value(json_object_get(detail, "rowsDeleted")) == 0 &&
		json_array_size(json_object_get(detail, "errors")) == 0)
		json_object_set_new(detail, "idle", json_true());
	if (json_array_size(json_object_get(detail, "errors")) > 0)
		json_object_set_new(detail, "error", json_string("some suppressions could not be removed (see errors)"));
}

/* partitions: the coming months' partitions of interaction_history. */
static void
job_partitions(KJobCtx *ctx, json_t *detail)
{
	char	   *err = NULL;
	json_t	   *created = kaireon_create_partitions(ctx, &err);

	if (created == NULL)
		json_object_set_new(detail, "error", json_string(err));
	else
		json_object_set_new(detail, "created", created);
}

/* outbox: publish due events, one transaction per batch, until none is left. */
static void
job_outbox(KJobCtx *ctx, json_t *detail)
{
	TimestampTz started = GetCurrentTimestamp();
	int64		total = 0;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(kaireon_outbox_batch_size)};
	int64		out[3];

	for (int i = 0; i < 1000; i++)
	{
		if (!job_sql(ctx, detail, out, "SELECT kaireon.publish_outbox($1)::bigint", 1, types, values))
			break;
		total += out[0];
		kjob_boundary(ctx, false);	/* commit: the notifications go out */
		if (out[0] < kaireon_outbox_batch_size || job_long(ctx, started, 10))
			break;
	}
	json_object_set_new(detail, "events", json_integer(total));
	if (total == 0)
		json_object_set_new(detail, "idle", json_true());
}

/* summaries: roll up new history (one slice per transaction) until caught up, then metrics. */
static void
job_summaries(KJobCtx *ctx, json_t *detail)
{
	TimestampTz started = GetCurrentTimestamp();
	int64		rows = 0;
	int64		out[3];
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(kaireon_summary_slice)};
	bool		caught_up = false;

	for (int i = 0; i < 100000 && !caught_up; i++)
	{
		if (!job_sql(ctx, detail, out,
					 "SELECT count(*) FILTER (WHERE NOT caught_up), coalesce(sum(rows_read), 0)::bigint, count(*) "
					 "  FROM kaireon.rollup_summaries(NULL, make_interval(mins => $1))", 1, types, values))
			return;
		rows += out[1];
		caught_up = out[0] == 0;
		json_object_set_new(detail, "definitions", json_integer(out[2]));
		json_object_set_new(detail, "rowsSummarised", json_integer(rows));
		kjob_history_progress(ctx, detail);
		kjob_boundary(ctx, out[1] > 0);
		if (job_long(ctx, started, 60))
			break;
	}
	json_object_set_new(detail, "caughtUp", json_boolean(caught_up));
	if (!job_sql(ctx, detail, out,
				 "SELECT count(*), count(*) FILTER (WHERE status <> 'computed'), coalesce(sum(customers), 0)::bigint "
				 "  FROM kaireon.compute_metrics()", 0, NULL, NULL))
		return;
	json_object_set_new(detail, "metrics", json_integer(out[0]));
	json_object_set_new(detail, "metricErrors", json_integer(out[1]));
	json_object_set_new(detail, "metricValues", json_integer(out[2]));
	kjob_boundary(ctx, false);
}

/* volume_reset: start the new period of the volume constraints whose period ended. */
static void
job_volume_reset(KJobCtx *ctx, json_t *detail)
{
	int64		out[3];

	if (!job_sql(ctx, detail, out, "SELECT kaireon.reset_volume_counters()::bigint", 0, NULL, NULL))
		return;
	json_object_set_new(detail, "reset", json_integer(out[0]));
	if (out[0] == 0)
		json_object_set_new(detail, "idle", json_true());
	kjob_boundary(ctx, false);
}

/* scores: customer engagement health and CLV / RFM. */
static void
job_scores(KJobCtx *ctx, json_t *detail)
{
	int64		out[3];

	if (!job_sql(ctx, detail, out,
				 "SELECT coalesce(sum(customers), 0)::bigint, coalesce(sum(removed), 0)::bigint "
				 "  FROM kaireon.compute_engagement_health()", 0, NULL, NULL))
		return;
	json_object_set_new(detail, "engagementScored", json_integer(out[0]));
	json_object_set_new(detail, "engagementRemoved", json_integer(out[1]));
	kjob_boundary(ctx, out[0] > 0);
	if (!job_sql(ctx, detail, out,
				 "SELECT coalesce(sum(customers), 0)::bigint, coalesce(sum(removed), 0)::bigint "
				 "  FROM kaireon.compute_customer_clv()", 0, NULL, NULL))
		return;
	json_object_set_new(detail, "clvScored", json_integer(out[0]));
	json_object_set_new(detail, "clvRemoved", json_integer(out[1]));
	kjob_boundary(ctx, false);
}

/* dual_prices: kaireon.update_dual_prices(), the real-time dual price step of arbitration. */
static void
job_dual_prices(KJobCtx *ctx, json_t *detail)
{
	int64		out[3];

	/* one row per constraint whose price it updated */
	if (!job_sql(ctx, detail, out, "SELECT count(*) FROM kaireon.update_dual_prices()", 0, NULL, NULL))
		return;
	json_object_set_new(detail, "constraints", json_integer(out[0]));
	if (out[0] == 0)
		json_object_set_new(detail, "idle", json_true());
	kjob_boundary(ctx, false);
}

/* The jobs, in the order run_maintenance runs them (kaireon.maintenance_jobs() lists them too). */
const KJobDef kaireon_jobs[] = {
	{"retention", "kaireon.retention_schedule", true, job_retention},
	{"partitions", "kaireon.partition_schedule", true, job_partitions},
	{"outbox", "kaireon.outbox_schedule", false, job_outbox},
	{"summaries", "kaireon.summary_schedule", true, job_summaries},
	{"volume_reset", "kaireon.volume_reset_schedule", false, job_volume_reset},
	{"suppressions", "kaireon.suppression_schedule", false, job_suppressions},
	{"scores", "kaireon.score_schedule", true, job_scores},
	{"dual_prices", "kaireon.dual_price_schedule", false, job_dual_prices},
};
const int	kaireon_njobs = lengthof(kaireon_jobs);

/* A job by name, or NULL. */
const KJobDef *
kjob_find(const char *name)
{
	for (int i = 0; i < kaireon_njobs; i++)
		if (strcmp(kaireon_jobs[i].name, name) == 0)
			return &kaireon_jobs[i];
	return NULL;
}

/* Update a running job's history row with its progress (worker and procedures). */
void
kjob_history_progress(KJobCtx *ctx, json_t *detail)
{
	Oid			types[2] = {INT8OID, JSONBOID};
	Datum		values[2];

	if (ctx->run_id == 0 || ctx->mode == KJOB_ATOMIC)
		return;
	values[0] = Int64GetDatum(ctx->run_id);
	values[1] = PointerGetDatum(kj_to_jsonb(detail));
	kjob_exec("UPDATE kaireon.maintenance_runs SET detail = $2 WHERE id = $1", 2, types, values, NULL);
}

/* Write a finished run (its row, or a new one) and trim the job's history. */
static void
history_end(KJobCtx *ctx, const KJobDef *job, const char *status, json_t *detail, const char *error,
			TimestampTz started)
{
	Oid			types[7] = {INT8OID, TEXTOID, JSONBOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Oid			ttypes[2] = {TEXTOID, INT4OID};
	Datum		tvalues[2];

	values[0] = Int64GetDatum(ctx->run_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = PointerGetDatum(kj_to_jsonb(detail));
	if (error)
		values[3] = CStringGetTextDatum(error);
	else
		nulls[3] = 'n';
	values[4] = CStringGetTextDatum(job->name);
	values[5] = CStringGetTextDatum(ctx->source);
	values[6] = TimestampTzGetDatum(started);
	if (ctx->run_id != 0)
		kjob_exec("UPDATE kaireon.maintenance_runs SET status = $2, finished_at = clock_timestamp(), detail = $3, "
				  "error = $4 WHERE id = $1", 4, types, values, nulls);
	else
		ctx->run_id = kjob_exec_int("INSERT INTO kaireon.maintenance_runs (job, source, trigger, status, started_at, "
									"  finished_at, detail, error) "
									"VALUES ($5, $6, $8, $2, $7, clock_timestamp(), $3, $4) RETURNING id",
									8, (Oid[]) {INT8OID, TEXTOID, JSONBOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID},
									(Datum[]) {values[0], values[1], values[2], values[3], values[4], values[5], values[6],
			CStringGetTextDatum(ctx->trigger)},
									(char[]) {' ', ' ', ' ', nulls[3], ' ', ' ', ' ', ' '});
	tvalues[0] = CStringGetTextDatum(job->name);
	tvalues[1] = Int32GetDatum(kaireon_run_history_size - 1);
	kjob_exec("DELETE FROM kaireon.maintenance_runs WHERE job = $1 AND status <> 'running' "
			  "   AND id < (SELECT r.id FROM kaireon.maintenance_runs r WHERE r.job = $1 ORDER BY r.id DESC "
			  "              OFFSET $2 LIMIT 1)", 2, ttypes, tvalues, NULL);
}

/*
 * In a procedure, an error escaped a job whose history row was committed as
 * 'running': roll the transaction back, release the job's lock, mark the row
 * failed with the error in a transaction of its own, and re-throw the error.
 * The SPI stack may hold connections the error left behind (a function
 * called by a statement of the job), so this aborts and commits below SPI,
 * as SPI_rollback and SPI_commit do; the caller's connection goes too, which
 * does not matter as the error ends the procedure.
 */
static void
procedure_failed(KJobCtx *ctx)
{
	MemoryContext cxt = MemoryContextSwitchTo(ctx->mcxt);
	ErrorData  *edata = CopyErrorData();

	FlushErrorState();
	/*
	 * The portal's snapshot is forgotten as SPI_rollback does; snapshots the
	 * error left on the stack make it complain after it has emptied the
	 * stack, which is all that matters here.
	 */
	PG_TRY();
	{
		ForgetPortalSnapshots();
	}
	PG_CATCH();
	{
		FlushErrorState();
	}
	PG_END_TRY();
	AbortCurrentTransaction();
	kjob_release_lock();
	MemoryContextSwitchTo(ctx->mcxt);
	PG_TRY();
	{
		StartTransactionCommand();
		if (ctx->run_id != 0)
		{
			Oid			types[2] = {INT8OID, TEXTOID};
			Datum		values[2] = {Int64GetDatum(ctx->run_id), CStringGetTextDatum(edata->message)};

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "kaireon: SPI_connect failed");
			PushActiveSnapshot(GetTransactionSnapshot());
			kjob_exec("UPDATE kaireon.maintenance_runs SET status = 'failed', finished_at = clock_timestamp(), error = $2 "
					  " WHERE id = $1 AND status = 'running'", 2, types, values, NULL);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			StartTransactionCommand();
		}
	}
	PG_CATCH();
	{
		ErrorData  *e2;

		/* the row stays 'running' until a worker finds its process gone */
		MemoryContextSwitchTo(ctx->mcxt);
		e2 = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("kaireon: could not mark maintenance run %lld failed: %s", (long long) ctx->run_id, e2->message)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	ReThrowError(edata);
}

/* The worker could not take a job's lock: note the run skipped (a row for long jobs). */
static const char *
job_skipped(KJobCtx *ctx, const KJobDef *job, json_t *detail, TimestampTz started)
{
	int			holder = kjob_lock_holder((int) (job - kaireon_jobs) + 1);

	json_object_set_new(detail, "skipped", json_string("running elsewhere"));
	if (holder != 0)
		json_object_set_new(detail, "heldBy", json_integer(holder));
	ereport(job->record_start ? LOG : DEBUG1,
			(errmsg("kaireon worker: job %s skipped: running elsewhere (pid %d)", job->name, holder)));
	if (job->record_start)
		history_end(ctx, job, "skipped", detail, NULL, started);
	return "skipped";
}

/*
 * Run one job in a run context: its lock, its history row, its body, its
 * status (succeeded, or failed when the body recorded an error; skipped when
 * the worker found it running elsewhere).  SPI must be connected.  Returns
 * the status; *detail is what the job did, *error why it failed.  An error
 * that escapes (a cancel, a timeout, a failed commit) is re-thrown; in a
 * procedure the run is marked failed first (procedure_failed), in the worker
 * its caller does it.
 */
const char *
kjob_run(KJobCtx *ctx, const KJobDef *job, json_t **detail_out, char **error)
{
	MemoryContext old = MemoryContextSwitchTo(ctx->mcxt);
	json_t	   *detail = json_object();
	TimestampTz started = GetCurrentTimestamp();
	const char *volatile status;
	json_t	   *err;

	ctx->run_id = 0;
	ctx->report = NULL;
	ctx->nreport = 0;
	*error = NULL;
	*detail_out = detail;
	if (!kjob_lock_job(ctx, job))
	{
		status = job_skipped(ctx, job, detail, started);
		MemoryContextSwitchTo(old);
		return status;
	}
	PG_TRY();
	{
		if (job->record_start)
		{
			Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
			Datum		values[3] = {CStringGetTextDatum(job->name), CStringGetTextDatum(ctx->source),
			CStringGetTextDatum(ctx->trigger)};

			ctx->run_id = kjob_exec_int("INSERT INTO kaireon.maintenance_runs (job, source, trigger) "
										"VALUES ($1, $2, $3) RETURNING id", 3, types, values, NULL);
			kjob_boundary(ctx, false);	/* visible as running from now on */
		}
		job->run(ctx, detail);
		err = json_object_get(detail, "error");
		status = err ? "failed" : "succeeded";
		*error = err ? pstrdup(json_string_value(err)) : NULL;
		if (!json_is_true(json_object_get(detail, "idle")) || err != NULL || job->record_start)
			history_end(ctx, job, status, detail, *error, started);
		kjob_boundary(ctx, false);
	}
	PG_CATCH();
	{
		if (ctx->mode == KJOB_PROCEDURE)
			procedure_failed(ctx);	/* does not return */
		PG_RE_THROW();
	}
	PG_END_TRY();
	kjob_release_lock();
	MemoryContextSwitchTo(old);
	return status;
}

/* The jobs argument of run_maintenance: a list of job definitions (all when NULL). */
static List *
jobs_arg(FunctionCallInfo fcinfo)
{
	List	   *out = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (PG_ARGISNULL(0))
	{
		for (int i = 0; i < kaireon_njobs; i++)
			out = lappend(out, (void *) &kaireon_jobs[i]);
		return out;
	}
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("jobs must not be empty"),
				 errhint("Pass NULL for every job.")));
	/* in the order of kaireon.maintenance_jobs(), whatever the order given */
	for (int i = 0; i < n; i++)
	{
		char	   *name = nulls[i] ? NULL : TextDatumGetCString(elems[i]);

		if (name == NULL || kjob_find(name) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown maintenance job \"%s\"", name ? name : "null"),
					 errhint("Jobs: retention, partitions, outbox, summaries, volume_reset, suppressions, scores, dual_prices.")));
	}
	for (int j = 0; j < kaireon_njobs; j++)
		for (int i = 0; i < n; i++)
			if (strcmp(TextDatumGetCString(elems[i]), kaireon_jobs[j].name) == 0)
			{
				out = lappend(out, (void *) &kaireon_jobs[j]);
				break;
			}
	return out;
}

/*
 * kaireon.run_maintenance(jobs): every job once, in the caller's transaction;
 * one row per job (job, status, started_at, finished_at, detail, error).
 */
Datum
kaireon_run_maintenance(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	List	   *jobs;
	ListCell   *lc;
	KJobCtx		ctx = {0};

	kjob_require_maintainer("kaireon.run_maintenance");
	jobs = jobs_arg(fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	ctx.mode = KJOB_ATOMIC;
	ctx.mcxt = CurrentMemoryContext;
	ctx.source = "function";
	ctx.trigger = "manual";
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	foreach(lc, jobs)
	{
		const KJobDef *job = (const KJobDef *) lfirst(lc);
		TimestampTz started = GetCurrentTimestamp();
		json_t	   *detail;
		char	   *error;
		const char *status = kjob_run(&ctx, job, &detail, &error);
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, error == NULL};

		values[0] = CStringGetTextDatum(job->name);
		values[1] = CStringGetTextDatum(status);
		values[2] = TimestampTzGetDatum(started);
		values[3] = TimestampTzGetDatum(GetCurrentTimestamp());
		values[4] = PointerGetDatum(kj_to_jsonb(detail));
		if (error)
			values[5] = CStringGetTextDatum(error);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* CALL kaireon.run_maintenance_batched(jobs): every job once, committing as it goes. */
Datum
kaireon_run_maintenance_batched(PG_FUNCTION_ARGS)
{
	bool		atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
						   !castNode(CallContext, fcinfo->context)->atomic);
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext run_cxt;
	List	   *jobs;
	ListCell   *lc;
	KJobCtx		ctx = {0};

	kjob_require_maintainer("kaireon.run_maintenance_batched");
	/* the job list outlasts the commits; each job's own allocations go with it */
	run_cxt = AllocSetContextCreate(atomic ? CurrentMemoryContext : PortalContext,
									"kaireon maintenance run", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(run_cxt);
	jobs = jobs_arg(fcinfo);
	ctx.mode = atomic ? KJOB_ATOMIC : KJOB_PROCEDURE;
	ctx.mcxt = AllocSetContextCreate(run_cxt, "kaireon maintenance job", ALLOCSET_DEFAULT_SIZES);
	ctx.source = "procedure";
	ctx.trigger = "manual";
	if (SPI_connect_ext(atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	foreach(lc, jobs)
	{
		const KJobDef *job = (const KJobDef *) lfirst(lc);
		json_t	   *detail;
		char	   *error;
		const char *status = kjob_run(&ctx, job, &detail, &error);

		if (strcmp(status, "succeeded") != 0)
			ereport(WARNING,
					(errmsg("kaireon maintenance job %s %s: %s", job->name, status, error ? error : ""),
					 errhint("See kaireon.maintenance_runs.")));
		MemoryContextReset(ctx.mcxt);
	}
	SPI_finish();
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(run_cxt);
	PG_RETURN_VOID();
}
