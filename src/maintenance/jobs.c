/*
 * maintenance/jobs.c
 *	  The job framework (docs/workers.md): the context a maintenance job runs
 *	  in, its batches and subtransactions, its locks, its run history, and
 *	  kjob_run, which runs one job.  The jobs themselves are listed in
 *	  catalogue.c; retention.c and partitions.c hold the long ones.
 *
 * A job body does its work in batches and calls kjob_boundary() between
 * two of them.  What the boundary does depends on who runs the job (maintenance.h):
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
#include "postgres.h"

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

#include "util/spi.h"
#include "util/version.h"
#include "util/subxact.h"
#include "maintenance/maintenance.h"

static int	kaireon_retention_batch_delay = 50;
static int	kaireon_run_history_size = 100;

/* Register the settings of the job framework (before the kaireon. prefix is reserved). */
void
kaireon_jobs_init(void)
{
	DefineCustomIntVariable("kaireon.retention_batch_delay",
							"Pause after each retention batch that removed rows (worker and procedures only).",
							NULL, &kaireon_retention_batch_delay, 50, 0, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
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

/* The number of the job whose session lock this process holds, -1 if none. */
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
	int			idx = job->number;

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
			/* only the worker runs KJOB_WORKER: its SIGHUP flag is ours to read */
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
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
	ErrorData  *edata = ksubxact_run(fn, arg);

	if (edata == NULL)
		return true;
	if (errmsg)
		*errmsg = pstrdup(edata->message);
	if (sqlerrcode)
		*sqlerrcode = edata->sqlerrcode;
	FreeErrorData(edata);
	return false;
}

/* Run a statement with arguments; the first column of its first row as int64 (NULL -> 0). */
int64
kjob_exec_int(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			rc = kspi_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	int64		v = 0;

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
 * Mark a run still 'running' failed, with the error, in a transaction of its
 * own (the caller has none open: the worker's error path, procedure_failed).
 */
void
kjob_mark_failed(int64 run_id, const char *message)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(run_id), CStringGetTextDatum(message)};

	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	kjob_exec("UPDATE kaireon.maintenance_runs SET status = 'failed', finished_at = clock_timestamp(), error = $2 "
			  " WHERE id = $1 AND status = 'running'", 2, types, values, NULL);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
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
		if (ctx->run_id != 0)
			kjob_mark_failed(ctx->run_id, edata->message);
		StartTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *e2;

		/* the row stays 'running' until a worker finds its process gone */
		MemoryContextSwitchTo(ctx->mcxt);
		e2 = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errcode(e2->sqlerrcode),
				 errmsg("kaireon: could not mark maintenance run %lld failed: %s", (long long) ctx->run_id, e2->message)));
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	ReThrowError(edata);
}

/* The worker could not take a job's lock: note the run skipped (a row for long jobs). */
static const char *
job_skipped(KJobCtx *ctx, const KJobDef *job, json_t *detail, TimestampTz started)
{
	int			holder = kjob_lock_holder(job->number + 1);

	json_object_set_new(detail, "skipped", json_string("running elsewhere"));
	if (holder != 0)
		json_object_set_new(detail, "heldBy", json_integer(holder));
	ereport(job->record_start ? LOG : DEBUG1,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("kaireon worker: job %s skipped: running elsewhere (pid %d)", job->name, holder)));
	if (job->record_start)
		history_end(ctx, job, "skipped", detail, NULL, started);
	return "skipped";
}

/* The SQLSTATE of a warning that a run ended other than succeeded: skipped (its lock held elsewhere) or failed. */
int
kjob_status_errcode(const char *status)
{
	return strcmp(status, "skipped") == 0 ? ERRCODE_LOCK_NOT_AVAILABLE : ERRCODE_WARNING;
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
	/* the jobs read the tables of the SQL version this library serves */
	kaireon_require_sql_version();
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
