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
 * statement.  Otherwise one UPDATE (its plan kept for the backend), through the partial index
 * journey_enrollments_event_wait_idx, sets wait_event_at and wait_until of
 * the customer's active enrolments waiting for one of the types to the
 * event's time, so the engine's next pass takes the wait's next branch.  An
 * event from before the wait began, or at or after its timeout, wakes
 * nothing; an enrolment the engine holds (at its timeout) is skipped, so an
 * event never waits for a batch.  It runs with the caller's rights.
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
 * at; returns how many woke.  cfg is the tenant's compiled configuration;
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
	/* planned once per backend (kspi_prepare_keep; the plan cache replans it when the table changes) */
	if (wake_plan == NULL)
		wake_plan = kspi_prepare_keep("UPDATE kaireon.journey_enrollments x SET wait_event_at = $4, wait_until = $4, updated_at = now() "
									  " WHERE x.tenant_id = $1 AND (x.tenant_id, x.id) IN "
									  "       (SELECT y.tenant_id, y.id FROM kaireon.journey_enrollments y "
									  "         WHERE y.tenant_id = $1 AND y.customer_id = $2 AND y.wait_event_type = ANY ($3) "
									  "           AND y.status = 'active' AND y.wait_event_at IS NULL AND y.last_step_at <= $4 "
									  "           AND (y.wait_until IS NULL OR y.wait_until > $4) "
									  "           FOR UPDATE SKIP LOCKED)",
									  4, types);
	if (kspi_execute_plan(wake_plan, v, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "kaireon: waking the journey enrolments failed");
	return (int64) SPI_processed;
}
