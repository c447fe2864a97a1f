/*
 * campaign/journeys.c
 *	  The journey engine (docs/journeys.md, "The engine"):
 *	  kaireon.advance_journeys(tenant_id, at, max_enrollments), which the
 *	  "journeys" maintenance job calls (maintenance/catalogue.c).
 *
 * Protocol.  One statement reads up to max_enrollments due enrolments,
 * earliest first, without a lock (on Citus a multi-shard SELECT cannot
 * lock): those active with wait_until <= at, through the partial index
 * journey_enrollments_due_idx, and those with a pending wake at or before at
 * (journey_pending_wakes, through its index on event_at: an event that found
 * the enrolment held by another transaction recorded it there,
 * decision/wake.c), each enrolment once.  Each enrolment then makes its pass,
 * whose first statement locks it alone FOR NO KEY UPDATE SKIP LOCKED (a
 * router query on Citus; NO KEY, so an event's key share lock that records a
 * pending wake never waits for it): one another runner holds is skipped, one
 * it has advanced meanwhile is no longer due (its latest version is checked
 * once locked), and the pass takes no step.  The pass takes the earliest
 * pending wake inside its event wait as the event and removes the
 * enrolment's pending wakes with its move; one not due removes only those
 * of a wait that is over.  The pass,
 * kaireon_internal._journey_advance (sql/install/49_journey_engine.sql), in
 * a subtransaction with the session confined to the enrolment's tenant
 * (kaireon functions refuse any other tenant; the tenant's stored SQL runs
 * as the decision path runs it).  The steps' effects (decisions, outbox
 * events, deliveries, assignments) and the enrolment's move are in the
 * caller's transaction: they commit together, so a step runs once; a crash
 * before the commit leaves neither, and the enrolment is due again.  A pass
 * that fails is rolled back alone and recorded (_journey_failed: an error
 * entry in the history, due again 5 minutes later; a pending wake of its
 * wait moves into wait_event_at, so it does not make it due sooner).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "util/subxact.h"
#include "security/session.h"

/* How far after the transaction's time an `at` may be (evaluate_alerts allows as much). */
#define KAIREON_MAX_AHEAD (5 * USECS_PER_MINUTE)

PG_FUNCTION_INFO_V1(kaireon_advance_journeys);
PG_FUNCTION_INFO_V1(kaireon_enroll_journey_segments);

/* A due enrolment, claimed, and the steps its pass took. */
typedef struct DueEnrollment
{
	char	   *tenant_id;
	char	   *id;
	char	   *journey_id;
	char	   *customer_id;
	char	   *step_id;		/* the step it was due at */
	TimestampTz at;
	int			nsteps;
	char	  **steps;			/* step_id, step_type, outcome per step */
} DueEnrollment;

/* The pass of one enrolment, confined to its tenant (a subtransaction's step). */
static void
advance_one(void *arg)
{
	DueEnrollment *d = (DueEnrollment *) arg;
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3] = {CStringGetTextDatum(d->tenant_id), CStringGetTextDatum(d->id),
	TimestampTzGetDatum(d->at)};
	const char *volatile prev = kaireon_confine_tenant(d->tenant_id);

	PG_TRY();
	{
		if (kspi_execute_with_args("SELECT step_id, step_type, outcome FROM kaireon_internal._journey_advance($1, $2, $3)",
								   3, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: the pass of enrolment \"%s\" failed", d->id);
		d->nsteps = (int) SPI_processed;
		d->steps = palloc(sizeof(char *) * 3 * Max(d->nsteps, 1));
		for (int i = 0; i < d->nsteps; i++)
			for (int c = 0; c < 3; c++)
				d->steps[i * 3 + c] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);
	}
	PG_FINALLY();
	{
		kaireon_confine_tenant(prev);
	}
	PG_END_TRY();
}

/* Record a failed pass (a subtransaction's step: its own failure is left to the next run). */
static void
record_failure(void *arg)
{
	DueEnrollment *d = (DueEnrollment *) arg;
	Oid			types[4] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[4] = {CStringGetTextDatum(d->tenant_id), CStringGetTextDatum(d->id),
		TimestampTzGetDatum(d->at), CStringGetTextDatum(d->steps[2])};

	if (kspi_execute_with_args("SELECT kaireon_internal._journey_failed($1, $2, $3, $4)",
							   4, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: recording the failure of enrolment \"%s\" failed", d->id);
}

/* Put one result row: the enrolment and one step. */
static void
put_row(ReturnSetInfo *rsinfo, DueEnrollment *d, char **step)
{
	Datum		values[7];
	bool		nulls[7] = {false};

	values[0] = CStringGetTextDatum(d->tenant_id);
	values[1] = CStringGetTextDatum(d->id);
	values[2] = CStringGetTextDatum(d->journey_id);
	values[3] = CStringGetTextDatum(d->customer_id);
	for (int c = 0; c < 3; c++)
	{
		nulls[4 + c] = step[c] == NULL;
		if (step[c] != NULL)
			values[4 + c] = CStringGetTextDatum(step[c]);
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * The start both SQL functions share: (tenant_id, at, max) checked (22004 for
 * a NULL at or max, 22023 for an infinite at, one more than 5 minutes after
 * the transaction's time, or max outside 1..limit, the caller's access to
 * tenant_id), the result set made, SPI connected.
 */
static char *
engine_start(FunctionCallInfo fcinfo, const char *max_name, int limit, const char *max_hint,
			 TimestampTz *at, int *max)
{
	char	   *tenant = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext caller;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("at and %s must not be null", max_name),
				 errhint("Leave them out for their defaults.")));
	*at = PG_GETARG_TIMESTAMPTZ(1);
	*max = PG_GETARG_INT32(2);
	if (TIMESTAMP_NOT_FINITE(*at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time"),
				 errhint("Pass the time to run as of.")));
	/*
	 * the rule of kaireon.evaluate_alerts (sql/install/47_orchestration.sql):
	 * a pass later than now starts each wait it reaches (and enrols) from
	 * then, so the enrolments would not be due again until long after
	 */
	if (*at > GetCurrentTransactionStartTimestamp() + KAIREON_MAX_AHEAD)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at %s is in the future (more than 5 minutes after the transaction's time)",
						timestamptz_to_str(*at)),
				 errhint("Pass the present or a past time: a pass at a later time starts the waits it reaches from then, and leaves those enrolments waiting until long after.")));
	if (*max < 1 || *max > limit)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d, not %d", max_name, limit, *max),
				 errhint("%s", max_hint)));
	if (tenant != NULL)
		kaireon_check_tenant_access(tenant);
	InitMaterializedSRF(fcinfo, 0);
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(caller);
	return tenant;
}

/*
 * kaireon.advance_journeys(tenant_id, at, max_enrollments).  Steps: (1) check
 * the arguments and the caller's access to tenant_id; (2) read the due
 * enrolments; (3) each one's pass in a subtransaction, confined to its
 * tenant (it locks the enrolment, or skips it); a failed pass recorded.
 */
Datum
kaireon_advance_journeys(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant;
	TimestampTz at;
	int			max;
	Oid			types[3] = {TIMESTAMPTZOID, TEXTOID, INT4OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	DueEnrollment *due;
	int			ndue;

	tenant = engine_start(fcinfo, "max_enrollments", 10000, "Pass how many due enrolments to advance in this call.",
						  &at, &max);
	values[0] = TimestampTzGetDatum(at);
	values[1] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	nulls[1] = tenant ? ' ' : 'n';
	values[2] = Int32GetDatum(max);
	/*
	 * due by wait_until, or by a pending wake (an event that found the
	 * enrolment held: decision/wake.c); each kind read through its index, up
	 * to max, then each enrolment once, at its earliest; ties in the order of
	 * journey and customer (never of the random id: the order is the same at
	 * every run)
	 */
	if (kspi_execute_with_args("SELECT d.tenant_id, d.id, d.journey_id, d.customer_id, d.current_step_id "
							   "  FROM (SELECT DISTINCT ON (u.tenant_id, u.id) u.* FROM ("
							   "         (SELECT e.tenant_id, e.id, e.journey_id, e.customer_id, e.current_step_id, e.wait_until AS due "
							   "            FROM kaireon.journey_enrollments e "
							   "           WHERE e.status = 'active' AND e.wait_until <= $1 "
							   "             AND ($2::text IS NULL OR e.tenant_id = $2) "
							   "           ORDER BY e.wait_until LIMIT $3) "
							   "         UNION ALL "
							   "         (SELECT e.tenant_id, e.id, e.journey_id, e.customer_id, e.current_step_id, p.event_at "
							   "            FROM kaireon.journey_pending_wakes p "
							   "            JOIN kaireon.journey_enrollments e ON e.tenant_id = p.tenant_id AND e.id = p.enrollment_id "
							   "           WHERE p.event_at <= $1 AND ($2::text IS NULL OR p.tenant_id = $2) "
							   "           ORDER BY p.event_at LIMIT $3)) u "
							   "        ORDER BY u.tenant_id, u.id, u.due) d "
							   " ORDER BY d.due, d.tenant_id, d.journey_id, d.customer_id, d.id LIMIT $3",
							   3, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the due enrolments failed");
	ndue = (int) SPI_processed;
	due = palloc0(sizeof(DueEnrollment) * Max(ndue, 1));
	for (int i = 0; i < ndue; i++)
	{
		due[i].tenant_id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		due[i].id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		due[i].journey_id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		due[i].customer_id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4);
		due[i].step_id = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 5);
		due[i].at = at;
	}
	for (int i = 0; i < ndue; i++)
	{
		DueEnrollment *d = &due[i];
		ErrorData  *err;

		CHECK_FOR_INTERRUPTS();
		err = ksubxact_run(advance_one, d);
		if (err != NULL)
		{
			ErrorData  *err2;

			d->steps = palloc(sizeof(char *) * 3);
			d->steps[0] = d->step_id;
			d->steps[1] = pstrdup("error");
			d->steps[2] = psprintf("error: %s", err->message);
			err2 = ksubxact_run(record_failure, d);
			if (err2 != NULL)
				ereport(WARNING,
						(errcode(err2->sqlerrcode),
						 errmsg("kaireon: recording the failure of journey enrolment \"%s\" failed: %s",
								d->id, err2->message)));
			put_row(rsinfo, d, d->steps);
			continue;
		}
		for (int s = 0; s < d->nsteps; s++)
			put_row(rsinfo, d, &d->steps[s * 3]);
	}
	SPI_finish();
	return (Datum) 0;
}

/* The segment entries of one tenant (a subtransaction's step, confined to the tenant). */
typedef struct SegmentEntries
{
	char	   *tenant_id;
	TimestampTz at;
	int			max;
	int			n;
	char	  **rows;			/* journey_id, customer_id per enrolment */
} SegmentEntries;

/* Enrol one tenant's segment members (kaireon_internal._journey_segment_entries), confined. */
static void
enrol_tenant_segments(void *arg)
{
	SegmentEntries *t = (SegmentEntries *) arg;
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[3] = {CStringGetTextDatum(t->tenant_id), TimestampTzGetDatum(t->at), Int32GetDatum(t->max)};
	const char *volatile prev = kaireon_confine_tenant(t->tenant_id);

	PG_TRY();
	{
		if (kspi_execute_with_args("SELECT journey_id, customer_id FROM kaireon_internal._journey_segment_entries($1, $2, $3)",
								   3, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: the segment entries of tenant \"%s\" failed", t->tenant_id);
		t->n = (int) SPI_processed;
		t->rows = palloc(sizeof(char *) * 2 * Max(t->n, 1));
		for (int i = 0; i < t->n; i++)
			for (int c = 0; c < 2; c++)
				t->rows[i * 2 + c] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1);
	}
	PG_FINALLY();
	{
		kaireon_confine_tenant(prev);
	}
	PG_END_TRY();
}

/*
 * kaireon.enroll_journey_segments(tenant_id, at, max_customers).  Steps: (1)
 * check the arguments and the caller's access to tenant_id; (2) the tenants
 * with an active published journey whose entry names a segment; (3) per
 * tenant, in a subtransaction confined to it, enrol up to what is left of
 * max_customers; a tenant that fails (say, its segment is unpublished) is
 * rolled back alone and reported as a warning.
 */
Datum
kaireon_enroll_journey_segments(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant;
	TimestampTz at;
	int			left;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char		nulls[1] = {' '};
	int			ntenants;
	char	  **tenants;

	tenant = engine_start(fcinfo, "max_customers", 100000, "Pass how many segment members to enrol in this call.",
						  &at, &left);
	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	nulls[0] = tenant ? ' ' : 'n';
	if (kspi_execute_with_args("SELECT DISTINCT x.tenant_id FROM kaireon.journeys x "
							   " WHERE x.status = 'active' AND x.published_version IS NOT NULL "
							   "   AND ($1::text IS NULL OR x.tenant_id = $1) "
							   "   AND jsonb_path_exists(x.published_versions, "
							   "         '$[*] ? (@.version == $v).definition.steps[*] ? (@.type == \"entry_trigger\" && exists(@.segmentId))', "
							   "         jsonb_build_object('v', x.published_version)) "
							   " ORDER BY 1",
							   1, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the journeys with segment entry failed");
	ntenants = (int) SPI_processed;
	tenants = palloc(sizeof(char *) * Max(ntenants, 1));
	for (int i = 0; i < ntenants; i++)
		tenants[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	for (int i = 0; i < ntenants && left > 0; i++)
	{
		SegmentEntries t = {.tenant_id = tenants[i], .at = at, .max = left};
		ErrorData  *err;

		CHECK_FOR_INTERRUPTS();
		err = ksubxact_run(enrol_tenant_segments, &t);
		if (err != NULL)
		{
			ereport(WARNING,
					(errcode(err->sqlerrcode),
					 errmsg("kaireon: the journey segment entries of tenant \"%s\" failed: %s",
							t.tenant_id, err->message)));
			continue;
		}
		for (int r = 0; r < t.n; r++)
		{
			Datum		row[3] = {CStringGetTextDatum(t.tenant_id), CStringGetTextDatum(t.rows[r * 2]),
			CStringGetTextDatum(t.rows[r * 2 + 1])};
			bool		rnulls[3] = {false, false, false};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rnulls);
		}
		left -= t.n;
	}
	SPI_finish();
	return (Datum) 0;
}
