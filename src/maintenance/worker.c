/*
 * maintenance/worker.c
 *	  The background workers (docs/workers.md): with kaireon in
 *	  shared_preload_libraries, a launcher starts one maintenance worker per
 *	  database listed in kaireon.databases, and each worker runs the
 *	  maintenance jobs (catalogue.c) of its database on the schedules set by the
 *	  kaireon.*_schedule settings.
 *
 * Life cycle.  The launcher is a static background worker connected to no
 * database (shared catalogs only; restarted by the postmaster 5 s after it
 * dies, and at once after a crash restart).  It registers the database workers as
 * dynamic background workers that the postmaster never restarts itself
 * (BGW_NEVER_RESTART) and with itself as the process to notify: when one
 * stops while its database is still listed, the launcher starts it again
 * after kaireon.worker_restart_delay, doubling the delay (up to 5 minutes)
 * while it keeps stopping within a minute of its start (a database that does
 * not exist, say).  On SIGHUP the launcher re-reads kaireon.databases,
 * starting workers for new databases and stopping (SIGTERM) those of removed
 * ones; on SIGTERM (server shutdown, or pg_terminate_backend) it stops its
 * workers, waits (at most 10 s) for them to exit, and exits with code 1, so
 * that the postmaster starts it again unless it is shutting down.  It ignores
 * SIGINT: a cancel (pg_cancel_backend) must not make it exit and lose track
 * of its workers.  Both processes exit when the postmaster dies
 * (WL_EXIT_ON_PM_DEATH, and PostmasterIsAlive between batches).
 *
 * One worker per database: a worker takes the session advisory lock
 * (KJOB_LOCK_KEY, 0) of its database when it starts, and exits (logging
 * which process holds it) when another process has it, so a worker left
 * behind by a launcher that died is never doubled; the launcher then starts
 * it again with its growing delay.  Each job run also takes the job's lock
 * (jobs.c), which the worker only tries: a job running elsewhere (a manual
 * run_maintenance) is skipped.  These advisory locks are the only locks a
 * worker holds across its sleeps; no decision takes them.  A worker whose
 * role is neither a superuser nor BYPASSRLS exits with an error (row level
 * security would hide every tenant's rows from its jobs).
 *
 * A worker handles SIGHUP by re-reading the settings between jobs and
 * between batches (a changed schedule takes effect at once) and SIGTERM with
 * die(): the current statement is cancelled, its transaction rolled back, and
 * the process exits; SIGINT cancels the job it runs (recorded failed) and
 * is ignored between jobs.  When it starts, it marks every run of its
 * database's kaireon.maintenance_runs left 'running' by a process that is
 * gone (no backend of that pid started before the run) as
 * 'interrupted' and runs those jobs again at once (trigger 'recovery'): a
 * purge cut short by a crash or a kill finishes then.  Between jobs it
 * sleeps on its latch until the next job is due, holding no lock and no
 * transaction.  While the extension is not installed in its database it
 * waits, checking every 10 s.
 *
 * Schedules: 'off', 'HH:MM' (every day at that time, UTC) or an interval
 * with a unit ('1s', '5min', '1h', '500ms').  A daily job runs at its next
 * occurrence; an interval job runs when the worker starts and then every
 * interval after the start of its previous run.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "util/spi.h"
#include "maintenance/maintenance.h"

PGDLLEXPORT void kaireon_launcher_main(Datum arg);
PGDLLEXPORT void kaireon_worker_main(Datum arg);

#define KAIREON_MAX_DATABASES 64

static char *kaireon_databases = NULL;
static char *kaireon_worker_role = NULL;
static int	kaireon_worker_restart_delay = 10;
static char *schedule_values[16];	/* one per job of kaireon_jobs[] (room for 16) */

/* A parsed schedule. */
typedef enum
{
	SCHED_OFF,
	SCHED_DAILY,
	SCHED_INTERVAL
} SchedKind;

typedef struct Schedule
{
	SchedKind	kind;
	int			minute_of_day;	/* daily: UTC minute */
	int			interval_ms;	/* interval */
} Schedule;

/* Parse a schedule; false (with a detail for the GUC check hook) when malformed. */
static bool
parse_schedule(const char *text, Schedule *out, const char **detail)
{
	int			h,
				m,
				ms;
	char		extra;
	const char *hint = NULL;

	*detail = NULL;
	if (text == NULL || pg_strcasecmp(text, "off") == 0)
	{
		out->kind = SCHED_OFF;
		return true;
	}
	if (strchr(text, ':') != NULL)
	{
		if (sscanf(text, "%d:%d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59)
		{
			*detail = "A daily schedule is HH:MM (UTC), from 00:00 to 23:59.";
			return false;
		}
		out->kind = SCHED_DAILY;
		out->minute_of_day = h * 60 + m;
		return true;
	}
	/* an interval needs its unit: a bare number would silently mean milliseconds */
	if (strpbrk(text, "abcdefghijklmnopqrstuvwxyz") == NULL ||
		!parse_int(text, &ms, GUC_UNIT_MS, &hint) || ms < 100)
	{
		*detail = "A schedule is 'off', a daily time 'HH:MM' (UTC), or an interval of at least 100ms with its unit ('1s', '5min', '1h').";
		return false;
	}
	out->kind = SCHED_INTERVAL;
	out->interval_ms = ms;
	return true;
}

/* Check hook of the schedule settings. */
static bool
check_schedule(char **newval, void **extra, GucSource source)
{
	Schedule	s;
	const char *detail;

	if (!parse_schedule(*newval, &s, &detail))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("%s", detail);
		return false;
	}
	return true;
}

/* Split kaireon.databases (a copy is split); false when malformed. */
static bool
split_databases(const char *value, List **names)
{
	char	   *copy = pstrdup(value ? value : "");
	ListCell   *lc;

	*names = NIL;
	if (!SplitGUCList(copy, ',', names))
		return false;
	foreach(lc, *names)
		if (strlen((char *) lfirst(lc)) == 0 || strlen((char *) lfirst(lc)) >= NAMEDATALEN)
			return false;
	return list_length(*names) <= KAIREON_MAX_DATABASES;
}

/* Check hook of kaireon.databases. */
static bool
check_databases(char **newval, void **extra, GucSource source)
{
	List	   *names;

	if (!split_databases(*newval, &names))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errdetail("kaireon.databases is a comma-separated list of at most %d database names.",
							KAIREON_MAX_DATABASES);
		return false;
	}
	return true;
}

/* Register the worker settings and, when preloaded, the launcher. */
void
kaireon_worker_init(void)
{
	BackgroundWorker w;

	/* can't happen unless the job list outgrew the array (which overwrote the next settings) */
	if (kaireon_njobs > (int) lengthof(schedule_values))
		elog(ERROR, "kaireon: %d maintenance jobs, room for %d schedules", kaireon_njobs,
			 (int) lengthof(schedule_values));
	DefineCustomStringVariable("kaireon.databases",
							   "Databases the kaireon background workers maintain (comma-separated).",
							   "Needs kaireon in shared_preload_libraries; one worker per database.",
							   &kaireon_databases, "", PGC_SIGHUP, 0, check_databases, NULL, NULL);
	DefineCustomStringVariable("kaireon.worker_role",
							   "Role the maintenance workers connect as (empty: the bootstrap superuser).",
							   NULL, &kaireon_worker_role, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.worker_restart_delay",
							"Wait before the launcher restarts a maintenance worker that stopped.",
							"Doubled, up to 5 minutes, while a worker keeps stopping within a minute of its start.",
							&kaireon_worker_restart_delay, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	for (int i = 0; i < kaireon_njobs; i++)
	{
		/*
		 * The GUC machinery keeps the description pointer for the life of the process, and
		 * the context current here (PostmasterContext when preloaded) is freed as each
		 * backend starts: the text lives in TopMemoryContext.
		 */
		char	   *desc = MemoryContextStrdup(TopMemoryContext,
											   psprintf("Schedule of the %s maintenance job: 'off', 'HH:MM' (daily, UTC) or an interval.",
														kaireon_jobs[i]->name));

		DefineCustomStringVariable(kaireon_jobs[i]->setting, desc,
								   NULL, &schedule_values[i], kaireon_jobs[i]->schedule, PGC_SIGHUP, 0, check_schedule, NULL, NULL);
	}

	if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
		return;
	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "kaireon");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "kaireon_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "kaireon launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "kaireon launcher");
	RegisterBackgroundWorker(&w);
}

/* ---------------------------------------------------------------- launcher */

/* A database the launcher serves. */
typedef struct LauncherDb
{
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz restart_at;
	int			delay_s;
	bool		no_slot_logged;
} LauncherDb;

static LauncherDb ldbs[KAIREON_MAX_DATABASES];
static int	nldbs = 0;

/* Start the worker of one database; false when no background worker slot is free. */
static bool
start_worker(LauncherDb *d)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "kaireon");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "kaireon_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "kaireon maintenance worker for database %s", d->name);
	snprintf(w.bgw_type, BGW_MAXLEN, "kaireon maintenance");
	w.bgw_notify_pid = MyProcPid;
	strlcpy(w.bgw_extra, d->name, BGW_EXTRALEN);
	if (!RegisterDynamicBackgroundWorker(&w, &d->handle))
	{
		d->handle = NULL;
		if (!d->no_slot_logged)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("kaireon launcher: no background worker slot for the worker of database \"%s\"", d->name),
					 errhint("Raise max_worker_processes (one kaireon worker per database in kaireon.databases, plus the launcher).")));
		d->no_slot_logged = true;
		d->restart_at = GetCurrentTimestamp() + 10 * USECS_PER_SEC;
		return false;
	}
	d->no_slot_logged = false;
	d->started_at = GetCurrentTimestamp();
	return true;
}

/* Align the served databases with kaireon.databases. */
static void
sync_databases(void)
{
	List	   *names;
	ListCell   *lc;
	int			n = 0;

	if (!split_databases(kaireon_databases, &names))
		names = NIL;			/* the check hook refused it already */
	/* stop the workers of databases no longer listed */
	for (int i = 0; i < nldbs; i++)
	{
		bool		keep = false;

		foreach(lc, names)
			if (strcmp((char *) lfirst(lc), ldbs[i].name) == 0)
				keep = true;
		if (keep)
			ldbs[n++] = ldbs[i];
		else
		{
			if (ldbs[i].handle != NULL)
				TerminateBackgroundWorker(ldbs[i].handle);
			ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION), errmsg("kaireon launcher: stopping the worker of database \"%s\"", ldbs[i].name)));
		}
	}
	nldbs = n;
	/* add the new ones */
	foreach(lc, names)
	{
		bool		known = false;

		for (int i = 0; i < nldbs; i++)
			if (strcmp(ldbs[i].name, (char *) lfirst(lc)) == 0)
				known = true;
		if (known || nldbs >= KAIREON_MAX_DATABASES)
			continue;
		memset(&ldbs[nldbs], 0, sizeof(LauncherDb));
		strlcpy(ldbs[nldbs].name, (char *) lfirst(lc), NAMEDATALEN);
		ldbs[nldbs].delay_s = kaireon_worker_restart_delay;
		nldbs++;
	}
}

/*
 * SIGTERM: stop the workers, wait (at most 10 s) until they are gone, and
 * exit with code 1.  A background worker that exits with 0 is unregistered;
 * with 1 the postmaster starts it again after bgw_restart_time, except when
 * the server is shutting down: pg_terminate_backend(launcher) restarts it.
 */
static void
launcher_stop(void)
{
	TimestampTz deadline = GetCurrentTimestamp() + 10 * USECS_PER_SEC;

	ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION), errmsg("kaireon launcher: shutdown requested; stopping the workers")));
	for (int i = 0; i < nldbs; i++)
		if (ldbs[i].handle != NULL)
			TerminateBackgroundWorker(ldbs[i].handle);
	for (int i = 0; i < nldbs; i++)
	{
		pid_t		pid;

		while (ldbs[i].handle != NULL && GetCurrentTimestamp() < deadline)
		{
			BgwHandleStatus st = GetBackgroundWorkerPid(ldbs[i].handle, &pid);

			if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED)
				break;
			/* the postmaster sets the latch (SIGUSR1) when the worker exits */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	proc_exit(1);
}

/* The launcher's main loop. */
void
kaireon_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGINT, SIG_IGN);	/* a cancel would end it (an ERROR outside any handler) */
	BackgroundWorkerUnblockSignals();
	/*
	 * Connected to no database (shared catalogs only), like the logical
	 * replication launcher: it shows in pg_stat_activity, and its SIGUSR1
	 * handler sets the latch when a worker starts or stops (bgw_notify_pid).
	 */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION), errmsg("kaireon launcher started (databases: \"%s\")", kaireon_databases)));
	sync_databases();

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		timeout = 10000;

		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			launcher_stop();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			sync_databases();
		}
		for (int i = 0; i < nldbs; i++)
		{
			LauncherDb *d = &ldbs[i];
			pid_t		pid;

			if (d->handle != NULL)
			{
				BgwHandleStatus st = GetBackgroundWorkerPid(d->handle, &pid);

				if (st == BGWH_POSTMASTER_DIED)
					proc_exit(1);
				if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
					continue;
				/* it stopped: start it again after a delay, longer while it keeps stopping */
				pfree(d->handle);
				d->handle = NULL;
				if (TimestampDifferenceExceeds(d->started_at, now, 60000))
					d->delay_s = kaireon_worker_restart_delay;
				else
					d->delay_s = Min(Max(d->delay_s, kaireon_worker_restart_delay) * 2, 300);
				d->restart_at = now + (TimestampTz) d->delay_s * USECS_PER_SEC;
				ereport(LOG,
						(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
						 errmsg("kaireon launcher: the worker of database \"%s\" stopped; restarting it in %d s",
								d->name, d->delay_s)));
			}
			if (now >= d->restart_at)
				(void) start_worker(d);
			if (d->handle == NULL)
				timeout = Min(timeout, Max(1, (d->restart_at - now) / 1000));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------- worker */

/* A job as the worker schedules it. */
typedef struct WorkerJob
{
	const KJobDef *def;
	char	   *text;			/* the schedule setting's value */
	Schedule	sched;
	TimestampTz next;			/* DT_NOEND: not scheduled */
	TimestampTz last_start;		/* 0: never ran */
	bool		recover;		/* interrupted run found at start: run now */
} WorkerJob;

static WorkerJob wjobs[lengthof(schedule_values)];
static MemoryContext job_cxt = NULL;

/* When a job is next due, from its schedule, after `now`. */
static void
schedule_next(WorkerJob *j, TimestampTz now)
{
	switch (j->sched.kind)
	{
		case SCHED_OFF:
			j->next = DT_NOEND;
			break;
		case SCHED_DAILY:
			{
				TimestampTz day = now - (now % USECS_PER_DAY);
				TimestampTz t = day + (TimestampTz) j->sched.minute_of_day * 60 * USECS_PER_SEC;

				if (t <= now)
					t += USECS_PER_DAY;
				j->next = t;
				break;
			}
		case SCHED_INTERVAL:
			j->next = j->last_start == 0 ? now :
				j->last_start + (TimestampTz) j->sched.interval_ms * 1000;
			break;
	}
}

/* Read the schedule settings; re-plan the jobs whose schedule changed. */
static void
read_schedules(bool first)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < kaireon_njobs; i++)
	{
		WorkerJob  *j = &wjobs[i];
		const char *value = GetConfigOption(kaireon_jobs[i]->setting, false, false);
		const char *detail;

		j->def = kaireon_jobs[i];
		if (!first && j->text != NULL && strcmp(j->text, value) == 0)
			continue;
		if (!parse_schedule(value, &j->sched, &detail))
			j->sched.kind = SCHED_OFF;
		if (j->text)
			pfree(j->text);
		j->text = MemoryContextStrdup(TopMemoryContext, value);
		schedule_next(j, now);
		if (!first)
			ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION),
						  errmsg("kaireon worker: job %s now runs on schedule \"%s\"", j->def->name, value)));
	}
}

/* Whether the extension is installed in this database (a short transaction). */
static bool
extension_installed(void)
{
	bool		ok;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	ok = OidIsValid(get_extension_oid("kaireon", true));
	CommitTransactionCommand();
	return ok;
}

/*
 * Whether this database is a Citus worker node (Citus installed and this
 * node's group not 0, the coordinator's; a server with Citus but no cluster
 * is group 0): the cluster's jobs run on the coordinator, which sends each
 * tenant's work to its shard (docs/scale-out.md), so a worker node's
 * maintenance worker runs none (a short transaction).
 */
static bool
citus_worker_node(void)
{
	bool		worker = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (kspi_citus_installed())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "kaireon: SPI_connect failed");
		if (kspi_execute("SELECT groupid <> 0 FROM pg_catalog.pg_dist_local_group", true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
		{
			bool		isnull;

			worker = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
		}
		SPI_finish();
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
	return worker;
}

/*
 * Mark the runs left 'running' by processes that are gone as interrupted;
 * the worker's own jobs among them run again at once.  A process is gone
 * when no backend has its pid, or the one that has it started after the run
 * (a pid reused after a crash restart), or the run started before the server.
 * backend_start is NULL for the sessions of other roles when the worker's
 * role is not a superuser (nor pg_read_all_stats): then the pid decides.
 */
static void
recover_runs(void)
{
	int			rc;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	rc = kspi_execute("UPDATE kaireon.maintenance_runs r SET status = 'interrupted', finished_at = clock_timestamp(), "
					  "       error = 'the process running it stopped (crash, kill, SIGTERM or shutdown)' "
					  " WHERE r.status = 'running' "
					  "   AND (r.started_at < pg_postmaster_start_time() "
					  "        OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.pid "
					  "                          AND (a.backend_start IS NULL OR a.backend_start <= r.started_at))) "
					  "RETURNING r.job, r.source, r.id", false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "kaireon: could not mark the interrupted runs");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *job = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		char	   *source = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

		ereport(LOG,
				(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
				 errmsg("kaireon worker: run %s of job %s (%s) was interrupted%s",
						SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3), job, source,
						strcmp(source, "worker") == 0 ? "; running it again" : "")));
		if (strcmp(source, "worker") == 0)
			for (int k = 0; k < kaireon_njobs; k++)
				if (strcmp(wjobs[k].def->name, job) == 0)
					wjobs[k].recover = true;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* Record that a run failed outside its statements (best effort, in a new transaction). */
static void
mark_failed(int64 run_id, const char *message)
{
	SetCurrentStatementStartTimestamp();
	kjob_mark_failed(run_id, message);
}

/*
 * Exit (FATAL) unless the worker's role may maintain every tenant: a role
 * that is neither a superuser nor BYPASSRLS sees no tenant's rows through
 * row level security, and its runs would succeed doing nothing.  In a
 * transaction.
 */
static void
require_worker_role(const char *dbname)
{
	if (superuser() || has_bypassrls_privilege(GetUserId()))
		return;
	ereport(FATAL,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("kaireon worker: role \"%s\" cannot maintain database \"%s\": it is neither a superuser nor has BYPASSRLS",
					GetUserNameFromId(GetUserId(), false), dbname),
			 errdetail("Row level security would hide the rows of every tenant from the maintenance jobs (retention would remove nothing)."),
			 errhint("Set kaireon.worker_role to a superuser or a role with BYPASSRLS (ALTER ROLE ... BYPASSRLS), or empty for the bootstrap superuser.")));
}

/*
 * At start: check the role, and take the worker lock of the database for
 * the session; exit (code 0, logged) when another process holds it.
 */
static void
claim_database(const char *dbname)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	require_worker_role(dbname);
	if (!kjob_lock_database())
	{
		int			holder;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "kaireon: SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		holder = kjob_lock_holder(0);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		ereport(LOG,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("kaireon worker: another process (pid %d) holds the maintenance lock of database \"%s\"; exiting",
						holder, dbname),
				 errdetail("A maintenance worker left behind by a launcher that stopped, or a session holding pg_advisory_lock(%d, 0).",
						   KJOB_LOCK_KEY)));
		proc_exit(0);
	}
	CommitTransactionCommand();
}

/* Run one job in the worker's transactions. */
static void
run_job(WorkerJob *j, const char *trigger)
{
	KJobCtx		ctx = {0};
	json_t	   *detail;
	char	   *error;

	MemoryContextReset(job_cxt);
	MemoryContextSwitchTo(job_cxt);
	ctx.mode = KJOB_WORKER;
	ctx.mcxt = job_cxt;
	ctx.source = "worker";
	ctx.trigger = trigger;
	pgstat_report_activity(STATE_RUNNING, psprintf("kaireon job %s (%s)", j->def->name, trigger));
	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "kaireon: SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		require_worker_role(MyBgworkerEntry->bgw_extra);	/* ALTER ROLE since the start */
		(void) kjob_run(&ctx, j->def, &detail, &error);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/* an error outside the job's statements: log it, roll back, mark the run failed */
		MemoryContextSwitchTo(job_cxt);
		HOLD_INTERRUPTS();
		edata = CopyErrorData();
		EmitErrorReport();
		AbortOutOfAnyTransaction();
		FlushErrorState();
		kjob_release_lock();	/* a session lock: the abort keeps it */
		RESUME_INTERRUPTS();
		MemoryContextSwitchTo(job_cxt);
		if (ctx.run_id != 0)
			mark_failed(ctx.run_id, edata->message);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(TopMemoryContext);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* A database worker's main loop. */
void
kaireon_worker_main(Datum arg)
{
	char		dbname[NAMEDATALEN];
	bool		installed = false;
	bool		waiting_logged = false;
	bool		worker_node_logged = false;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, NAMEDATALEN);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(dbname,
										 kaireon_worker_role && kaireon_worker_role[0] ? kaireon_worker_role : NULL, 0);
	SetConfigOption("application_name", "kaireon maintenance", PGC_USERSET, PGC_S_SESSION);
	/* the jobs' statements pin it too (util/spi.c); nothing the worker runs resolves in public */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
	claim_database(dbname);
	job_cxt = AllocSetContextCreate(TopMemoryContext, "kaireon job", ALLOCSET_DEFAULT_SIZES);
	read_schedules(true);
	ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION), errmsg("kaireon maintenance worker started for database \"%s\"", dbname)));

	for (;;)
	{
		TimestampTz now;
		TimestampTz next = DT_NOEND;
		long		timeout;

		QueryCancelPending = false; /* a cancel between jobs has nothing to cancel */
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			read_schedules(false);
		}
		if (!extension_installed())
		{
			if (!waiting_logged)
				ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION),
								 errmsg("kaireon worker: extension kaireon is not installed in database \"%s\"; waiting",
									 dbname)));
			waiting_logged = true;
			installed = false;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		waiting_logged = false;
		if (citus_worker_node())
		{
			if (!worker_node_logged)
				ereport(LOG, (errcode(ERRCODE_SUCCESSFUL_COMPLETION),
								 errmsg("kaireon worker: database \"%s\" is on a Citus worker node; its jobs run on the coordinator",
									 dbname)));
			worker_node_logged = true;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		worker_node_logged = false;
		if (!installed)
		{
			/* first sight of the extension: runs cut short before this start */
			recover_runs();
			installed = true;
		}
		for (int i = 0; i < kaireon_njobs; i++)
		{
			WorkerJob  *j = &wjobs[i];

			now = GetCurrentTimestamp();
			if (!j->recover && j->next > now)
				continue;
			j->last_start = now;
			run_job(j, j->recover ? "recovery" : "schedule");
			j->recover = false;
			schedule_next(j, GetCurrentTimestamp());
			/* settings reloaded during the job (between its batches) or since */
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			read_schedules(false);
			QueryCancelPending = false;
			CHECK_FOR_INTERRUPTS();
		}
		/* sleep until the next job is due (at most 10 s), holding nothing */
		Assert(!IsTransactionState());
		now = GetCurrentTimestamp();
		for (int i = 0; i < kaireon_njobs; i++)
			next = Min(next, wjobs[i].next);
		timeout = next == DT_NOEND ? 10000 : Min(10000, Max(0, (next - now + 999) / 1000));
		if (timeout > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
}
