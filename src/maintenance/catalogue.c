/*
 * maintenance/catalogue.c
 *	  The catalogue of maintenance jobs (kaireon_jobs[], in the order
 *	  run_maintenance runs them), the bodies of the jobs that are one SQL
 *	  function each (outbox, summaries, volume_reset, scores, dual_prices,
 *	  alerts, journeys),
 *	  and kaireon.run_maintenance / run_maintenance_batched.
 *
 * A job is a KJobDef (maintenance.h): its name, its schedule setting and
 * default, and its body, which runs in a KJobCtx (jobs.c) and fills the
 * detail of its run history row.  Retention and partitions define theirs in
 * retention.c and partitions.c.  To add a job: write its body and KJobDef,
 * append it to kaireon_jobs[] with the next number, and list it in
 * kaireon.maintenance_jobs() (sql/install) and docs/workers.md; the worker
 * (worker.c) registers its schedule setting from here.
 */
#include "postgres.h"

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "maintenance/maintenance.h"
#include "stats/stats.h"

PG_FUNCTION_INFO_V1(kaireon_run_maintenance);
PG_FUNCTION_INFO_V1(kaireon_run_maintenance_batched);

static int	kaireon_outbox_batch_size = 100;
static int	kaireon_outbox_retry_base = 1000;
static int	kaireon_outbox_retry_max = 3600000;
static int	kaireon_summary_slice = 1440;
static int	kaireon_alert_batch_size = 100;
static int	kaireon_journey_batch_size = 100;

/* Register the settings of the catalogue's jobs (before the kaireon. prefix is reserved). */
void
kaireon_catalogue_init(void)
{
	for (int i = 0; i < kaireon_njobs; i++)
		Assert(kaireon_jobs[i]->number == i);
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
	DefineCustomIntVariable("kaireon.alert_batch_size",
							"Alert rules evaluated per transaction by the alerts job.",
							NULL, &kaireon_alert_batch_size, 100, 1, 10000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.journey_batch_size",
							"Due journey enrolments advanced per transaction by the journeys job.",
							NULL, &kaireon_journey_batch_size, 100, 1, 10000,
							PGC_SUSET, 0, NULL, NULL, NULL);
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
	int			rc = kspi_execute_with_args(q->sql, q->nargs, q->types, q->values, NULL, false, 0);

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

/* The body of a job of one statement that counts what it did: detail.key, idle when 0. */
static void
job_count(KJobCtx *ctx, json_t *detail, const char *sql, const char *key)
{
	int64		out[3];

	if (!job_sql(ctx, detail, out, sql, 0, NULL, NULL))
		return;
	json_object_set_new(detail, key, json_integer(out[0]));
	if (out[0] == 0)
		json_object_set_new(detail, "idle", json_true());
	kjob_boundary(ctx, false);
}

/* volume_reset: start the new period of the volume constraints whose period ended. */
static void
job_volume_reset(KJobCtx *ctx, json_t *detail)
{
	job_count(ctx, detail, "SELECT kaireon.reset_volume_counters()::bigint", "reset");
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
	/* one row per constraint whose price it updated */
	job_count(ctx, detail, "SELECT count(*) FROM kaireon.update_dual_prices()", "constraints");
}

/*
 * alerts: kaireon.evaluate_alerts at the run's start time, one transaction per
 * batch, until every active rule was evaluated at that time (evaluate_alerts
 * skips a rule already evaluated at it) or the job has run for 30 seconds.
 */
static void
job_alerts(KJobCtx *ctx, json_t *detail)
{
	TimestampTz started = GetCurrentTimestamp();
	int64		rules = 0;
	int64		fired = 0;
	int64		errors = 0;
	Oid			types[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2] = {TimestampTzGetDatum(started), Int32GetDatum(kaireon_alert_batch_size)};
	int64		out[3];

	for (;;)
	{
		if (!job_sql(ctx, detail, out,
					 "SELECT count(*), count(*) FILTER (WHERE fired), count(*) FILTER (WHERE reason LIKE 'error:%') "
					 "  FROM kaireon.evaluate_alerts(NULL, $1, $2)", 2, types, values))
			break;
		rules += out[0];
		fired += out[1];
		errors += out[2];
		kjob_boundary(ctx, false);	/* commit: the alerts' outbox events can go out */
		if (out[0] < kaireon_alert_batch_size || job_long(ctx, started, 30))
			break;
	}
	json_object_set_new(detail, "rules", json_integer(rules));
	json_object_set_new(detail, "fired", json_integer(fired));
	json_object_set_new(detail, "errors", json_integer(errors));
	if (rules == 0)
		json_object_set_new(detail, "idle", json_true());
}

/* schedules: due scheduled campaign runs and pending export batches, one per transaction (docs/schedules.md). */
static void
job_schedules(KJobCtx *ctx, json_t *detail)
{
	TimestampTz started = GetCurrentTimestamp();
	int64		runs = 0,
				batches = 0;
	int64		out[3];

	for (int i = 0; i < 100000; i++)
	{
		if (!job_sql(ctx, detail, out,
					 "SELECT count(*) FILTER (WHERE action = 'run'), count(*) FILTER (WHERE action = 'export') "
					 "  FROM kaireon.run_schedules(NULL, 1, 1)", 0, NULL, NULL))
			break;
		runs += out[0];
		batches += out[1];
		kjob_boundary(ctx, out[0] + out[1] > 0);
		if (out[0] + out[1] == 0 || job_long(ctx, started, 60))
			break;
	}
	json_object_set_new(detail, "runs", json_integer(runs));
	json_object_set_new(detail, "exportBatches", json_integer(batches));
	if (runs + batches == 0)
		json_object_set_new(detail, "idle", json_true());
}

/*
 * journeys: segment entries (kaireon.enroll_journey_segments, up to 1000
 * members), then kaireon.advance_journeys in batches of kaireon.journey_batch_size
 * due enrolments, one transaction per batch (a batch's steps and moves commit
 * together), until fewer are due or the job has run for 60 seconds.
 */
static void
job_journeys(KJobCtx *ctx, json_t *detail)
{
	TimestampTz started = GetCurrentTimestamp();
	int64		enrollments = 0,
				steps = 0,
				errors = 0;
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(kaireon_journey_batch_size)};
	int64		out[3];
	Datum		entries[1] = {Int32GetDatum(1000)};

	/* segment entry first: the members enrolled now are due in this run */
	if (job_sql(ctx, detail, out, "SELECT count(*), 0::bigint, 0::bigint FROM kaireon.enroll_journey_segments(NULL, now(), $1)",
				1, types, entries))
	{
		json_object_set_new(detail, "segmentEntries", json_integer(out[0]));
		kjob_boundary(ctx, false);
	}
	for (int i = 0; i < 100000; i++)
	{
		if (!job_sql(ctx, detail, out,
					 "SELECT count(DISTINCT (enrollment_tenant_id, enrollment_id)), count(*), "
					 "       count(*) FILTER (WHERE step_type = 'error') "
					 "  FROM kaireon.advance_journeys(NULL, now(), $1)", 1, types, values))
			break;
		enrollments += out[0];
		steps += out[1];
		errors += out[2];
		kjob_boundary(ctx, false);	/* commit: the batch's steps and moves together */
		if (out[0] < kaireon_journey_batch_size || job_long(ctx, started, 60))
			break;
	}
	json_object_set_new(detail, "enrollments", json_integer(enrollments));
	json_object_set_new(detail, "steps", json_integer(steps));
	json_object_set_new(detail, "errors", json_integer(errors));
	if (enrollments == 0)
		json_object_set_new(detail, "idle", json_true());
}

static const KJobDef kjob_outbox = {2, "outbox", "kaireon.outbox_schedule", "1s", false, job_outbox};
static const KJobDef kjob_summaries = {3, "summaries", "kaireon.summary_schedule", "5min", true, job_summaries};
static const KJobDef kjob_volume_reset = {4, "volume_reset", "kaireon.volume_reset_schedule", "1min", false, job_volume_reset};
static const KJobDef kjob_scores = {6, "scores", "kaireon.score_schedule", "02:00", true, job_scores};
static const KJobDef kjob_dual_prices = {7, "dual_prices", "kaireon.dual_price_schedule", "1min", false, job_dual_prices};
static const KJobDef kjob_alerts = {8, "alerts", "kaireon.alert_schedule", "1min", false, job_alerts};
static const KJobDef kjob_schedules = {9, "schedules", "kaireon.campaign_schedule", "1min", false, job_schedules};
static const KJobDef kjob_journeys = {10, "journeys", "kaireon.journey_schedule", "10s", false, job_journeys};

/* The jobs, in the order run_maintenance runs them (kaireon.maintenance_jobs() lists them too). */
const KJobDef *const kaireon_jobs[] = {
	&kjob_retention,
	&kjob_partitions,
	&kjob_outbox,
	&kjob_summaries,
	&kjob_volume_reset,
	&kjob_suppressions,
	&kjob_scores,
	&kjob_dual_prices,
	&kjob_alerts,
	&kjob_schedules,
	&kjob_journeys,
};
const int	kaireon_njobs = lengthof(kaireon_jobs);

/* A job by name, or NULL. */
static const KJobDef *
kjob_find(const char *name)
{
	for (int i = 0; i < kaireon_njobs; i++)
		if (strcmp(kaireon_jobs[i]->name, name) == 0)
			return kaireon_jobs[i];
	return NULL;
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
			out = lappend(out, (void *) kaireon_jobs[i]);
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
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int j = 0; j < kaireon_njobs; j++)
				appendStringInfo(&names, "%s%s", j ? ", " : "", kaireon_jobs[j]->name);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown maintenance job \"%s\"", name ? name : "null"),
					 errhint("Jobs: %s.", names.data)));
		}
	}
	for (int j = 0; j < kaireon_njobs; j++)
		for (int i = 0; i < n; i++)
			if (strcmp(TextDatumGetCString(elems[i]), kaireon_jobs[j]->name) == 0)
			{
				out = lappend(out, (void *) kaireon_jobs[j]);
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
	kaireon_progress_start("run_maintenance", NULL, list_length(jobs));
	foreach(lc, jobs)
	{
		const KJobDef *job = (const KJobDef *) lfirst(lc);
		TimestampTz started = GetCurrentTimestamp();
		json_t	   *detail;
		char	   *error;
		const char *status;
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		kaireon_progress_update(job->name, foreach_current_index(lc), list_length(jobs));
		status = kjob_run(&ctx, job, &detail, &error);
		nulls[5] = error == NULL;

		values[0] = CStringGetTextDatum(job->name);
		values[1] = CStringGetTextDatum(status);
		values[2] = TimestampTzGetDatum(started);
		values[3] = TimestampTzGetDatum(GetCurrentTimestamp());
		values[4] = PointerGetDatum(kj_to_jsonb(detail));
		if (error)
			values[5] = CStringGetTextDatum(error);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	kaireon_progress_end();
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
		const char *status;

		/* one operation per job: a failed job's rollback ends the row (progress.c) */
		kaireon_progress_start("run_maintenance", NULL, list_length(jobs));
		kaireon_progress_update(job->name, foreach_current_index(lc), list_length(jobs));
		status = kjob_run(&ctx, job, &detail, &error);
		kaireon_progress_end();
		if (strcmp(status, "succeeded") != 0)
			ereport(WARNING,
					(errcode(kjob_status_errcode(status)),
					 errmsg("kaireon maintenance job %s %s: %s", job->name, status, error ? error : ""),
					 errhint("See kaireon.maintenance_runs.")));
		MemoryContextReset(ctx.mcxt);
	}
	SPI_finish();
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(run_cxt);
	PG_RETURN_VOID();
}
