/*
 * decision/wake.c
 *	  Events wake the journey enrolments waiting for them (docs/journeys.md,
 *	  "Events").
 *
 * Protocol.  An event of a customer (an outcome recorded by respond, a
 * location event and its geofence transitions, a trigger rule's
 * update_attribute) calls kaireon_wake_journeys with its event types and
 * time, inside its SPI connection and transaction.  The tenant's compiled
 * configuration knows the event types its published journey versions wait
 * for (config/compile.c, load_journey_events): an event of no such type (every
 * event of a tenant without event waits) returns at once, without a
 * statement.  Otherwise one statement (its plan kept for the backend), through
 * the partial index journey_enrollments_event_wait_idx, finds the customer's
 * active enrolments waiting for one of the types whose wait the event's time
 * falls in (at or after last_step_at, the wait's start, and before
 * wait_until, its timeout; an event from before or after wakes nothing):
 *
 *  - those no other transaction holds it locks FOR NO KEY UPDATE SKIP LOCKED
 *    and sets their wait_event_at and wait_until to the event's time, so the
 *    engine's next pass takes the wait's next branch;
 *  - every active enrolment of the customer another transaction holds
 *    (another event's, which woke it but may still roll back; an engine pass,
 *    which may fail, or may move it into a new wait this event falls in;
 *    anyone's row lock), whatever its wait in this statement's snapshot, it
 *    does not wait for: it records the wake in journey_pending_wakes
 *    (enrolment, each of the event's types, time), under a key share
 *    lock of the enrolment, which neither an event's nor the engine's FOR NO
 *    KEY UPDATE blocks (only a FOR UPDATE or a DELETE does, and then the event
 *    waits for it: the enrolment may be gone after).  The engine reads the
 *    pending wakes as due enrolments too and takes the earliest inside the
 *    wait as its event (campaign/journeys.c).
 *
 * So a committed event that came during a wait wakes it whoever held the
 * enrolment and whatever became of the holder, and never waits for a batch:
 * the holder commits a wake (the earliest event counts, once, and the pass
 * removes the pending wakes with its move), rolls back (the pending wake
 * wakes it), or commits a move into a new wait (the pending wake falls in it
 * when the event came after the move's time, and wakes it; otherwise it
 * counts for nothing, and the next pass over the enrolment removes it).  It
 * runs with the caller's rights.
 */
#include "postgres.h"

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "decision/decision.h"

/* The wake-up's UPDATE, prepared on first use and kept for the backend's life. */
static SPIPlanPtr wake_plan = NULL;

/* Is the event type one the tenant's journeys wait for? */
static bool
awaited(const KTenantConfig *cfg, const char *event_type)
{
	for (int i = 0; i < cfg->njourney_events; i++)
		if (strcmp(cfg->journey_events[i], event_type) == 0)
			return true;
	return false;
}

/*
 * Wake the customer's enrolments waiting for one of the event types at time
 * at; returns how many woke (a pending wake recorded counts).  cfg is the tenant's compiled configuration;
 * inside an SPI connection.
 */
int64
kaireon_wake_journeys(const KTenantConfig *cfg, const char *customer_id, const char *const *event_types, int ntypes,
					  TimestampTz at)
{
	Datum	   *types_d = palloc(sizeof(Datum) * Max(ntypes, 1));
	int			n = 0;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTARRAYOID, TIMESTAMPTZOID};
	Datum		v[4];

	for (int i = 0; i < ntypes; i++)
		if (awaited(cfg, event_types[i]))
			types_d[n++] = CStringGetTextDatum(event_types[i]);
	if (n == 0)
		return 0;
	v[0] = CStringGetTextDatum(cfg->tenant_id);
	v[1] = CStringGetTextDatum(customer_id);
	v[2] = PointerGetDatum(construct_array(types_d, n, TEXTOID, -1, false, TYPALIGN_INT));
	v[3] = TimestampTzGetDatum(at);
	/*
	 * planned once per backend (kspi_prepare_keep; the plan cache replans it
	 * when a table changes).  "free" is the customer's active enrolments no
	 * other transaction holds (FOR NO KEY UPDATE SKIP LOCKED: a key share lock,
	 * another event's pending wake, does not count; any other lock does,
	 * another event's probe too, so two events of one customer at once each
	 * wake or record: a share lock here let the second find the first's rows
	 * free and record nothing); "held" records a
	 * pending wake, for each of the event's types, for every other active
	 * enrolment of the customer the UPDATE did not wake, whatever its wait was
	 * in the statement's snapshot: the holder may be moving it into a new wait
	 * for this event (a timeout into a second wait, a wake into the next one),
	 * which began before the event.  A pending wake of a wait it does not fall
	 * in counts for nothing, and the engine's next pass over the enrolment
	 * removes it (campaign/journeys.c).
	 */
	if (wake_plan == NULL)
		wake_plan = kspi_prepare_keep("WITH woken AS ("
									  "  UPDATE kaireon.journey_enrollments x SET wait_event_at = $4, wait_until = $4, updated_at = now() "
									  "   WHERE x.tenant_id = $1 AND (x.tenant_id, x.id) IN "
									  "         (SELECT y.tenant_id, y.id FROM kaireon.journey_enrollments y "
									  "           WHERE y.tenant_id = $1 AND y.customer_id = $2 AND y.wait_event_type = ANY ($3) "
									  "             AND y.status = 'active' AND y.wait_event_at IS NULL AND y.last_step_at <= $4 "
									  "             AND (y.wait_until IS NULL OR y.wait_until > $4) "
									  "             FOR NO KEY UPDATE SKIP LOCKED) "
									  "  RETURNING x.id), "
									  "free AS ("
									  "  SELECT f.id FROM kaireon.journey_enrollments f "
									  "   WHERE f.tenant_id = $1 AND f.customer_id = $2 AND f.status = 'active' "
									  "     FOR NO KEY UPDATE SKIP LOCKED), "
									  "held AS ("
									  "  INSERT INTO kaireon.journey_pending_wakes (tenant_id, enrollment_id, event_type, event_at) "
									  "  SELECT z.tenant_id, z.id, t.event_type, $4 "
									  "    FROM kaireon.journey_enrollments z CROSS JOIN unnest($3) t (event_type) "
									  "   WHERE z.tenant_id = $1 AND z.customer_id = $2 AND z.status = 'active' "
									  "     AND z.id NOT IN (SELECT w.id FROM woken w) AND z.id NOT IN (SELECT f.id FROM free f) "
									  "     FOR KEY SHARE OF z "
									  "  RETURNING 1) "
									  "SELECT (SELECT count(*) FROM woken) + (SELECT count(*) FROM held)",
									  4, types);
	if (kspi_execute_plan(wake_plan, v, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: waking the journey enrolments failed");
	{
		bool		isnull;
		Datum		count = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return isnull ? 0 : DatumGetInt64(count);
	}
}
