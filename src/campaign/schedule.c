/*
 * campaign/schedule.c
 *	  Scheduled campaign runs (docs/schedules.md): kaireon.run_schedules(at,
 *	  max_runs, max_export_batches), which the "schedules" maintenance job
 *	  calls (catalogue.c), runs the kaireon.runs rows whose next_run_at is due
 *	  with kaireon.run_campaign, advances their next_run_at, and writes the
 *	  decisions of each run whose file_config asks for it as CSV or JSON lines,
 *	  into kaireon.campaign_exports or a file of kaireon.export_directory
 *	  (schedule_export.c, which holds the export protocol);
 *	  kaireon.cron_next(expr, after) is the cron arithmetic of util/cron.c.
 *	  Also here: the export settings registered, and the trigger that checks
 *	  a run's schedule and file_config when written.  The two files share
 *	  campaign/schedule_export.h; calls run schedule.c -> schedule_export.c.
 *
 * Run protocol.  Due runs are found through the partial index runs_due_idx
 * (status active, a schedule kind, next_run_at <= at), a few at a time
 * without a lock, then each is locked alone (FOR UPDATE SKIP LOCKED, the due
 * condition checked again): a run another scheduler holds is skipped, and
 * one it has advanced meanwhile is no longer due.  The campaign, its
 * campaign_runs row (with summary.scheduledFor, the slot), the advance of
 * next_run_at (once: cleared and the run completed; recurring: slot +
 * repeat_interval; cron: the next matching minute after at) and the export
 * checkpoint all commit in one transaction: a crash before the commit leaves
 * nothing and the slot runs again once; after it the slot is consumed, so no
 * slot runs twice.  A run that fails still gets its failed campaign_runs row
 * and advances (no retry storm); the campaign runs with the session confined
 * to the run's tenant (kaireon functions refuse any other tenant) and the
 * tenant's stored SQL runs as kaireon_confined (campaign.c).
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/cron.h"
#include "util/spi.h"
#include "util/subxact.h"
#include "campaign/schedule.h"
#include "campaign/schedule_export.h"
#include "security/session.h"

PG_FUNCTION_INFO_V1(kaireon_cron_next);
PG_FUNCTION_INFO_V1(kaireon_run_schedules);
PG_FUNCTION_INFO_V1(kaireon_check_run_schedule);

/* Check hook of kaireon.export_directory: empty, or an absolute path without "..". */
static bool
check_export_directory(char **newval, void **extra, GucSource source)
{
	const char *v = *newval;

	if (v == NULL || v[0] == '\0')
		return true;
	if (v[0] != '/')
	{
		GUC_check_errdetail("kaireon.export_directory must be an absolute path, not \"%s\".", v);
		return false;
	}
	if (strstr(v, "/../") != NULL || strcmp(v + strlen(v) - Min(strlen(v), 3), "/..") == 0)
	{
		GUC_check_errdetail("kaireon.export_directory must not contain \"..\".");
		return false;
	}
	for (const char *p = v; *p; p++)
		if ((unsigned char) *p < 0x20)
		{
			GUC_check_errdetail("kaireon.export_directory must not contain control characters.");
			return false;
		}
	if (strlen(v) > MAXPGPATH - 128)
	{
		GUC_check_errdetail("kaireon.export_directory is longer than %d bytes.", MAXPGPATH - 128);
		return false;
	}
	return true;
}

/* Register the export settings (before the kaireon. prefix is reserved). */
void
kaireon_schedule_init(void)
{
	DefineCustomStringVariable("kaireon.export_directory",
							   "Server directory where scheduled campaign runs write their file exports; empty: file exports are refused.",
							   "Set by a superuser; each file is named kaireon_<tenant slug>_<campaign run id>.csv or .jsonl.",
							   &kaireon_export_directory, "", PGC_SUSET, 0, check_export_directory, NULL, NULL);
	DefineCustomIntVariable("kaireon.export_batch_size",
							"Decisions a campaign export writes per batch (one transaction in the worker).",
							NULL, &kaireon_export_batch_size, 10000, 1, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.export_fail_after",
							"Tests only: a campaign export fails after writing this many rows (0: never).",
							NULL, &kaireon_export_fail_after, 0, 0, INT_MAX,
							PGC_SUSET, GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL, NULL, NULL, NULL);
}

/* kaireon.cron_next(expr, after): the first minute matching expr after after (UTC); NULL if none in 10 years. */
Datum
kaireon_cron_next(PG_FUNCTION_ARGS)
{
	KCron		c;
	TimestampTz next;

	kcron_parse(text_to_cstring(PG_GETARG_TEXT_PP(0)), &c);
	next = kcron_next(&c, PG_GETARG_TIMESTAMPTZ(1));
	if (next == DT_NOEND)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(next);
}

/* ---- checked when written ---- */

/* Raise 22023 about a run's schedule or file_config. */
static void
bad_run(const char *run_id, const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("run \"%s\": %s", run_id, msg),
			 errhint("%s", hint)));
}

/* Check a run's file_config: {} or {"format": "csv"|"json", "target": "table"|"file"}. */
static void
check_file_config(const char *run_id, Jsonb *jb)
{
	json_t	   *conf = kj_from_jsonb(jb, "file_config");
	const char *key;
	json_t	   *v;
	const char *format,
			   *target;

	json_object_foreach(conf, key, v)
	{
		if (strcmp(key, "format") != 0 && strcmp(key, "target") != 0)
			bad_run(run_id, psprintf("file_config has an unknown key \"%s\"", key),
					"file_config is {} (no export) or {\"format\": \"csv\" or \"json\", \"target\": \"table\" or \"file\"}.");
		if (!json_is_string(v))
			bad_run(run_id, psprintf("file_config.%s must be a string, not %s", key, kj_type_name(v)),
					"file_config is {} (no export) or {\"format\": \"csv\" or \"json\", \"target\": \"table\" or \"file\"}.");
	}
	if (json_object_size(conf) == 0)
		return;
	format = kj_str(conf, "format");
	target = kj_str(conf, "target");
	if (format == NULL || (strcmp(format, "csv") != 0 && strcmp(format, "json") != 0))
		bad_run(run_id, format ? psprintf("file_config.format must be \"csv\" or \"json\", not %s", quote_literal_cstr(format)) :
				"file_config has no format",
				"csv: a header line, then one line per decision; json: one JSON object per line.");
	if (target != NULL && strcmp(target, "table") != 0 && strcmp(target, "file") != 0)
		bad_run(run_id, psprintf("file_config.target must be \"table\" or \"file\", not %s", quote_literal_cstr(target)),
				"table: kaireon.campaign_exports; file: a file of kaireon.export_directory.");
	if (target != NULL && strcmp(target, "file") == 0 &&
		(kaireon_export_directory == NULL || kaireon_export_directory[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("run \"%s\": file export is not enabled: kaireon.export_directory is not set", run_id),
				 errhint("A superuser sets kaireon.export_directory, or use file_config target \"table\".")));
}

/* A column of a trigger's tuple by name, *isnull set. */
static Datum
tuple_col(HeapTuple tuple, TupleDesc desc, const char *name, bool *isnull)
{
	int			n = SPI_fnumber(desc, name);

	if (n <= 0)
		elog(ERROR, "kaireon: kaireon.runs has no column %s", name);
	return heap_getattr(tuple, n, desc, isnull);
}

/* A text column as a C string, NULL for NULL. */
static char *
tuple_text(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = tuple_col(tuple, desc, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * BEFORE INSERT OR UPDATE OF schedule_type, cron_expression, repeat_interval,
 * file_config ON kaireon.runs: check the schedule (a cron expression parsed,
 * and it must match within ten years; recurring needs repeat_interval) and
 * file_config (22023, 55000 for a file export without a directory); then,
 * on INSERT or when the schedule changed, fill next_run_at: the next cron
 * minute after now() (recomputed for a changed cron schedule unless the
 * statement set next_run_at itself), now() for once and recurring when NULL.
 */
Datum
kaireon_check_run_schedule(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	char	   *id,
			   *kind,
			   *cron;
	bool		isnull,
				interval_null,
				next_null,
				changed = true;
	Datum		file_config,
				next;
	TimestampTz fill = 0;
	bool		do_fill = false;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "kaireon: _check_run_schedule must be a BEFORE ROW trigger");
	desc = td->tg_relation->rd_att;
	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	id = tuple_text(tuple, desc, "id");
	kind = tuple_text(tuple, desc, "schedule_type");
	cron = tuple_text(tuple, desc, "cron_expression");
	(void) tuple_col(tuple, desc, "repeat_interval", &interval_null);
	next = tuple_col(tuple, desc, "next_run_at", &next_null);
	file_config = tuple_col(tuple, desc, "file_config", &isnull);
	if (strcmp(kind, "cron") == 0 && cron == NULL)
		bad_run(id, "schedule_type cron needs a cron_expression",
				"Set cron_expression to five fields, e.g. '0 6 * * 1-5' (06:00 UTC on weekdays).");
	if (strcmp(kind, "recurring") == 0 && interval_null)
		bad_run(id, "schedule_type recurring needs a repeat_interval",
				"Set repeat_interval, e.g. '1 day' (at least 1 minute); next_run_at is the first run.");
	if (!interval_null)
	{
		Interval   *iv = DatumGetIntervalP(tuple_col(tuple, desc, "repeat_interval", &isnull));
		Interval	minute = {.time = USECS_PER_MINUTE};

		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv), IntervalPGetDatum(&minute))) < 0)
			bad_run(id, psprintf("repeat_interval %s is shorter than 1 minute",
								 DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)))),
					"Runs are scheduled to the minute: use at least '1 minute'.");
		/* a negative part can step back (e.g. '1 month -30 days' from February): a slot would run again at once */
		if (iv->month < 0 || iv->day < 0 || iv->time < 0)
			bad_run(id, psprintf("repeat_interval %s has a negative part",
								 DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)))),
					"Months, days and time each add time: write e.g. '23 hours' rather than '1 day -1 hour'.");
	}
	if (cron != NULL)
	{
		KCron		c;

		kcron_parse(cron, &c);
		if (kcron_next(&c, GetCurrentTransactionStartTimestamp()) == DT_NOEND)
			bad_run(id, psprintf("cron expression \"%s\" matches no time in the next ten years", cron),
					"Check the day-of-month and month fields (e.g. 30 2 is February 30th).");
	}
	if (!isnull)
		check_file_config(id, DatumGetJsonbP(file_config));

	/* next_run_at */
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		HeapTuple	old = td->tg_trigtuple;
		char	   *okind = tuple_text(old, desc, "schedule_type");
		char	   *ocron = tuple_text(old, desc, "cron_expression");
		bool		onull;
		Datum		onext = tuple_col(old, desc, "next_run_at", &onull);

		changed = strcmp(okind, kind) != 0 || (ocron == NULL) != (cron == NULL) ||
			(cron != NULL && strcmp(ocron, cron) != 0);
		if (changed && strcmp(kind, "cron") == 0 && !next_null && !onull &&
			DatumGetTimestampTz(onext) == DatumGetTimestampTz(next))
			next_null = true;	/* a new cron schedule: its own next minute */
	}
	if (changed && next_null)
	{
		TimestampTz now = GetCurrentTransactionStartTimestamp();

		if (strcmp(kind, "cron") == 0)
		{
			KCron		c;

			kcron_parse(cron, &c);
			fill = kcron_next(&c, now);
			do_fill = true;
		}
		else if (strcmp(kind, "once") == 0 || strcmp(kind, "recurring") == 0)
		{
			fill = now;
			do_fill = true;
		}
	}
	if (do_fill)
	{
		int			attnum = SPI_fnumber(desc, "next_run_at");
		Datum		v = TimestampTzGetDatum(fill);
		bool		n = false;

		tuple = heap_modify_tuple_by_cols(tuple, desc, 1, &attnum, &v, &n);
	}
	return PointerGetDatum(tuple);
}

/* ---- runs ---- */

/* A claimed run. */
typedef struct DueRun
{
	char	   *tenant_id;
	char	   *id;
	char	   *kind;			/* once, recurring, cron */
	char	   *cron;
	Datum		interval;		/* repeat_interval (recurring) */
	bool		has_interval;
	TimestampTz slot;			/* next_run_at when claimed */
	bool		export;			/* file_config asks for an export */
	char	   *format;
	char	   *target;
	/* set by the campaign step */
	char	   *campaign_run_id;
	char	   *status;
	char	   *error;
	int64		recommended;	/* decisions of the campaign run */
} DueRun;

/*
 * Claim one due run: read candidates through runs_due_idx, lock the first one
 * no other scheduler holds and that is still due.  False when none is left.
 */
static bool
claim_run(TimestampTz at, DueRun *r)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		args[3];
	int			n;
	char	  **tenants,
			  **ids;

	args[0] = TimestampTzGetDatum(at);
	if (kspi_execute_with_args("SELECT tenant_id, id FROM kaireon.runs "
							   " WHERE status = 'active' AND schedule_type IN ('once', 'recurring', 'cron') "
							   "   AND next_run_at <= $1 ORDER BY next_run_at LIMIT " CppAsString2(SCHEDULE_CANDIDATES),
							   1, &types[2], args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the due runs failed");
	n = sched_candidates(&tenants, &ids);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		args[0] = CStringGetTextDatum(tenants[i]);
		args[1] = CStringGetTextDatum(ids[i]);
		args[2] = TimestampTzGetDatum(at);
		if (kspi_execute_with_args("SELECT schedule_type, cron_expression, repeat_interval, next_run_at, "
								   "       file_config ->> 'format', coalesce(file_config ->> 'target', 'table') "
								   "  FROM kaireon.runs WHERE tenant_id = $1 AND id = $2 AND status = 'active' "
								   "   AND schedule_type IN ('once', 'recurring', 'cron') AND next_run_at <= $3 "
								   "   FOR UPDATE SKIP LOCKED", 3, types, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: locking a due run failed");
		if (SPI_processed == 0)
			continue;
		memset(r, 0, sizeof(*r));
		r->tenant_id = tenants[i];
		r->id = ids[i];
		r->kind = sched_col(0, 1);
		r->cron = sched_col(0, 2);
		r->interval = sched_col_datum(0, 3, &isnull);
		r->has_interval = !isnull;
		if (r->has_interval)
		{
			Interval   *copy = palloc(sizeof(Interval));

			memcpy(copy, DatumGetIntervalP(r->interval), sizeof(Interval));
			r->interval = IntervalPGetDatum(copy);
		}
		r->slot = DatumGetTimestampTz(sched_col_datum(0, 4, &isnull));
		r->format = sched_col(0, 5);
		r->target = sched_col(0, 6);
		r->export = r->format != NULL;
		return true;
	}
	return false;
}

/* The campaign of a claimed run (a subtransaction step). */
static void
run_campaign_step(void *arg)
{
	DueRun	   *r = (DueRun *) arg;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2] = {CStringGetTextDatum(r->tenant_id), CStringGetTextDatum(r->id)};
	const char *volatile prev = kaireon_confine_tenant(r->tenant_id);

	PG_TRY();
	{
		sched_exec("SELECT id, status, error, recommended FROM kaireon.run_campaign($1, $2, false)", 2, types, args, NULL,
				   SPI_OK_SELECT);
		r->campaign_run_id = sched_col(0, 1);
		r->status = sched_col(0, 2);
		r->error = sched_col(0, 3);
		r->recommended = atoll(sched_col(0, 4));
	}
	PG_FINALLY();
	{
		kaireon_confine_tenant(prev);
	}
	PG_END_TRY();
}

/*
 * t + interval in UTC: timestamp (without time zone) arithmetic on the same
 * microseconds, so days and months do not depend on the session's TimeZone.
 */
static TimestampTz
plus_utc(TimestampTz t, Datum interval)
{
	return (TimestampTz) DatumGetTimestamp(DirectFunctionCall2(timestamp_pl_interval, TimestampGetDatum((Timestamp) t),
															   interval));
}

/* The next slot of a run after it ran at `at`: *has_next false for none. */
static TimestampTz
next_slot(const DueRun *r, TimestampTz at, bool *has_next)
{
	*has_next = true;
	if (strcmp(r->kind, "recurring") == 0 && r->has_interval)
	{
		TimestampTz next = plus_utc(r->slot, r->interval);

		/* behind by more than one interval: the missed slots are not caught up */
		if (next <= at)
			next = plus_utc(at, r->interval);
		/* never a next slot that is already due (the trigger refuses intervals that step back) */
		if (next <= at)
		{
			*has_next = false;
			return 0;
		}
		return next;
	}
	if (strcmp(r->kind, "cron") == 0 && r->cron != NULL)
	{
		KCron		c;
		TimestampTz next;

		kcron_parse(r->cron, &c);
		next = kcron_next(&c, at);
		if (next != DT_NOEND)
			return next;
	}
	*has_next = false;
	return 0;
}

/*
 * Run one claimed run (see the run protocol in the file header): the
 * campaign, or a failed campaign_runs row; the slot on the row; the advance;
 * the export checkpoint.
 */
static void
run_one(TimestampTz at, DueRun *r, ScheduleOut *out)
{
	ErrorData  *edata = ksubxact_run(run_campaign_step, r);
	bool		has_next;
	TimestampTz next = next_slot(r, at, &has_next);
	Oid			types[5] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, BOOLOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	args[0] = CStringGetTextDatum(r->tenant_id);
	args[1] = CStringGetTextDatum(r->id);
	args[2] = TimestampTzGetDatum(r->slot);
	if (edata != NULL)
	{
		/* refused before it started (a paused flow, a deleted channel): still one campaign_runs row */
		r->error = psprintf("%s (SQLSTATE %s)", edata->message, unpack_sql_state(edata->sqlerrcode));
		r->status = "failed";
		FreeErrorData(edata);
		args[3] = CStringGetTextDatum(r->error);
		args[4] = TimestampTzGetDatum(GetCurrentTimestamp());
		types[4] = TIMESTAMPTZOID;
		sched_exec("INSERT INTO kaireon.campaign_runs (tenant_id, campaign_id, run_number, status, started_at, completed_at, error) "
				   "SELECT $1, $2, coalesce(max(run_number), 0) + 1, 'failed', $5, $5, $4 "
				   "  FROM kaireon.campaign_runs WHERE tenant_id = $1 AND campaign_id = $2 RETURNING id",
				   5, types, args, nulls, SPI_OK_INSERT_RETURNING);
		r->campaign_run_id = sched_col(0, 1);
	}
	args[3] = CStringGetTextDatum(r->campaign_run_id);
	sched_exec("UPDATE kaireon.campaign_runs SET summary = summary || jsonb_build_object('scheduledFor', $3::timestamptz) "
			   " WHERE tenant_id = $1 AND id = $4", 4, types, args, NULL, SPI_OK_UPDATE);
	/* the advance */
	args[2] = TimestampTzGetDatum(next);
	nulls[2] = has_next ? ' ' : 'n';
	args[4] = BoolGetDatum(strcmp(r->kind, "once") == 0);
	types[4] = BOOLOID;
	sched_exec("UPDATE kaireon.runs SET next_run_at = $3, status = CASE WHEN $5 THEN 'completed' ELSE status END "
			   " WHERE tenant_id = $1 AND id = $2", 5, types, args, nulls, SPI_OK_UPDATE);
	/* the export of a completed run */
	if (r->export && strcmp(r->status, "completed") == 0)
	{
		Oid			etypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
		Datum		eargs[4] = {CStringGetTextDatum(r->tenant_id), CStringGetTextDatum(r->campaign_run_id),
		CStringGetTextDatum(r->format), CStringGetTextDatum(r->target)};

		sched_exec("INSERT INTO kaireon.export_checkpoints (tenant_id, export_type, campaign_run_id, format, target, status) "
				   "VALUES ($1, 'campaign_run:' || $2, $2, $3, $4, 'running')", 4, etypes, eargs, NULL, SPI_OK_INSERT);
	}
	sched_emit(out, "run", r->tenant_id, r->id, r->campaign_run_id, r->slot, r->status, next, has_next, r->recommended,
			   r->error);
}

/* Raise 42501 unless the caller may act for every tenant. */
static void
require_scheduler(void)
{
	if (superuser() || has_bypassrls_privilege(GetUserId()))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for kaireon.run_schedules"),
			 errdetail("It runs the scheduled campaigns of every tenant."),
			 errhint("Run it as a superuser or a role with BYPASSRLS; the maintenance worker runs it on kaireon.campaign_schedule.")));
}

/*
 * kaireon.run_schedules(at, max_runs, max_export_batches): the due runs at
 * `at` (default now), at most max_runs of them, then at most
 * max_export_batches batches of pending exports; one row per run and batch.
 * In the caller's transaction (the maintenance job calls it with 1, 1 and
 * commits between calls).
 */
Datum
kaireon_run_schedules(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz at = PG_ARGISNULL(0) ? GetCurrentTimestamp() : PG_GETARG_TIMESTAMPTZ(0);
	int			max_runs = PG_ARGISNULL(1) ? 100 : PG_GETARG_INT32(1);
	int			max_batches = PG_ARGISNULL(2) ? 1000 : PG_GETARG_INT32(2);
	ScheduleOut out;
	MemoryContext caller;

	require_scheduler();
	if (max_runs < 0 || max_batches < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_runs and max_export_batches must not be negative (%d, %d)", max_runs, max_batches),
				 errhint("Pass 0 to skip runs or exports.")));
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time"),
				 errhint("Pass a time, or NULL for now.")));
	InitMaterializedSRF(fcinfo, 0);
	out.rsinfo = rsinfo;
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(caller);
	for (int i = 0; i < max_runs; i++)
	{
		DueRun		r;

		CHECK_FOR_INTERRUPTS();
		if (!claim_run(at, &r))
			break;
		run_one(at, &r, &out);
	}
	for (int i = 0; i < max_batches; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!kaireon_export_one(at, &out))
			break;
	}
	SPI_finish();
	return (Datum) 0;
}
