/*
 * decision/geofences.c
 *	  kaireon.location_event: enter, exit and dwell of a customer against the
 *	  tenant's geofences, and the fences' actions (docs/triggers.md).
 *
 * Protocol.  One call is one location of one customer at a time `at` (never
 * the clock, unless the caller leaves `at` to its default now()).  Under a
 * transaction advisory lock on (tenant, customer), so two locations of one
 * customer are taken one after the other, the candidates are the active
 * fences whose bounding box holds the point (GiST index geofences_box_idx on
 * kaireon_internal._geofence_box) and the fences the customer was inside
 * (geofence_presences); each is tested by great-circle distance
 * (kaireon_internal._haversine_m).  Then per fence, by id:
 *   inside, not present  -> enter: a presence row (entered_at = at)
 *   inside, present      -> last_seen_at = at; dwell once when at - entered_at
 *                           reaches the action's dwellSeconds
 *   outside, present     -> exit: the presence row removed
 * A location older than the customer's last one at a fence changes nothing
 * there (it is stale).  A transition equal to the fence's trigger_on runs its
 * action (decision/triggers.c: recommend or notify) with the caller's rights.
 * Last, the location wakes the customer's journey enrolments waiting for the
 * event "location" or for "geofence_enter" / "geofence_exit" /
 * "geofence_dwell" when one of its transitions was that (decision/wake.c).
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "decision/decision.h"
#include "security/session.h"

PG_FUNCTION_INFO_V1(kaireon_location_event);

/* Refuse a coordinate that is not a finite number within [-bound, bound]. */
static void
check_coordinate(const char *name, double value, double bound)
{
	if (!isfinite(value) || value < -bound || value > bound)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number from %g to %g degrees, not %s", name, -bound, bound,
						isnan(value) ? "NaN" : isinf(value) ? (value > 0 ? "Infinity" : "-Infinity")
						: psprintf("%g", value)),
				 errhint("Pass the location in WGS 84 degrees: latitude from -90 to 90, longitude from -180 to 180.")));
}

/* Run a statement of the location event; the SPI result code checked. */
static void
geo_exec(const char *sql, int n, Oid *types, Datum *values, int expect)
{
	if (kspi_execute_with_args(sql, n, types, values, NULL, false, 0) != expect)
		elog(ERROR, "kaireon: location event statement failed: %s", sql);
}

/* A text column of the current SPI row (NULL when null). */
static char *
col_text(HeapTuple row, TupleDesc desc, int n)
{
	return SPI_getvalue(row, desc, n);
}

/*
 * kaireon.location_event(tenant_id, customer_id, latitude, longitude, at):
 * one row per transition (geofence_id, transition enter / exit / dwell,
 * fired: whether the fence's action ran, result: what it did).
 */
Datum
kaireon_location_event(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller;
	const char *tenant_id;
	const char *customer_id;
	double		lat;
	double		lon;
	TimestampTz at;
	Oid			types[5] = {TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID, TIMESTAMPTZOID};
	Datum		v[5];
	SPITupleTable *fences;
	uint64		nfences;
	char	  **events;
	int			nevents = 0;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null",
							((const char *const[]) {"tenant_id", "customer_id", "latitude", "longitude", "at"})[i]),
					 errhint("Pass the tenant, the customer, the location in degrees and its time.")));
	tenant_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	customer_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	lat = PG_GETARG_FLOAT8(2);
	lon = PG_GETARG_FLOAT8(3);
	at = PG_GETARG_TIMESTAMPTZ(4);
	check_coordinate("latitude", lat, 90);
	check_coordinate("longitude", lon, 180);
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time, not %s", timestamptz_to_str(at)),
				 errhint("Pass the time the location was taken.")));
	kaireon_check_tenant_access(tenant_id);

	InitMaterializedSRF(fcinfo, 0);
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(caller);

	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = CStringGetTextDatum(customer_id);
	v[2] = Float8GetDatum(lat);
	v[3] = Float8GetDatum(lon);
	v[4] = TimestampTzGetDatum(at);
	geo_exec("SELECT pg_advisory_xact_lock(hashtextextended('kaireon location ' || $1 || '/' || $2, 0))",
			 2, types, v, SPI_OK_SELECT);
	/* candidates: fences whose box holds the point (the GiST index), and those the customer is in */
	geo_exec("WITH c AS ("
			 "  SELECT g.id FROM kaireon.geofences g "
			 "   WHERE g.tenant_id = $1 AND g.status = 'active' "
			 "     AND kaireon_internal._geofence_box(g.latitude, g.longitude, g.radius_meters) "
			 "         @> box(point($4, $3), point($4, $3)) "
			 "  UNION "
			 "  SELECT p.geofence_id FROM kaireon.geofence_presences p WHERE p.tenant_id = $1 AND p.customer_id = $2) "
			 "SELECT g.id, g.name, g.trigger_on, g.action, "
			 "       g.status = 'active' AND d.m <= g.radius_meters, d.m, "
			 "       p.entered_at IS NOT NULL, p.last_seen_at > $5, "
			 "       p.dwell_fired_at IS NULL AND $5 - p.entered_at "
			 "         >= make_interval(secs => (g.action ->> 'dwellSeconds')::float8) "
			 "  FROM c JOIN kaireon.geofences g ON g.tenant_id = $1 AND g.id = c.id "
			 "  LEFT JOIN kaireon.geofence_presences p "
			 "         ON p.tenant_id = $1 AND p.customer_id = $2 AND p.geofence_id = g.id "
			 "  CROSS JOIN LATERAL (SELECT kaireon_internal._haversine_m($3, $4, g.latitude, g.longitude) AS m) d "
			 " ORDER BY g.id",
			 5, types, v, SPI_OK_SELECT);
	fences = SPI_tuptable;
	nfences = SPI_processed;
	/* the event types of this location (decision/wake.c): "location", then one per transition */
	events = palloc(sizeof(char *) * (nfences + 1));
	events[nevents++] = "location";

	for (uint64 i = 0; i < nfences; i++)
	{
		HeapTuple	row = fences->vals[i];
		TupleDesc	desc = fences->tupdesc;
		char	   *fence_id = col_text(row, desc, 1);
		char	   *name = col_text(row, desc, 2);
		char	   *trigger_on = col_text(row, desc, 3);
		bool		isnull;
		json_t	   *action = kj_from_jsonb(DatumGetJsonbP(SPI_getbinval(row, desc, 4, &isnull)), "action");
		bool		inside = DatumGetBool(SPI_getbinval(row, desc, 5, &isnull));
		double		distance = DatumGetFloat8(SPI_getbinval(row, desc, 6, &isnull));
		bool		present = DatumGetBool(SPI_getbinval(row, desc, 7, &isnull));
		Datum		stale_d = SPI_getbinval(row, desc, 8, &isnull);
		bool		stale = !isnull && DatumGetBool(stale_d);
		Datum		dwell_d = SPI_getbinval(row, desc, 9, &isnull);
		bool		dwell_due = !isnull && DatumGetBool(dwell_d);
		const char *transition = NULL;
		Datum		fv[5];
		bool		fnulls[4] = {false, false, false, false};
		json_t	   *result = NULL;

		if (stale)
			continue;
		fv[0] = v[0];
		fv[1] = v[1];
		fv[2] = CStringGetTextDatum(fence_id);
		fv[3] = v[4];
		if (inside && !present)
		{
			geo_exec("INSERT INTO kaireon.geofence_presences (tenant_id, customer_id, geofence_id, entered_at, last_seen_at) "
					 "VALUES ($1, $2, $3, $4, $4)", 4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}, fv,
					 SPI_OK_INSERT);
			transition = "enter";
		}
		else if (inside)
		{
			bool		dwell = strcmp(trigger_on, "dwell") == 0 && dwell_due;

			geo_exec(psprintf("UPDATE kaireon.geofence_presences SET last_seen_at = $4%s "
							  " WHERE tenant_id = $1 AND customer_id = $2 AND geofence_id = $3",
							  dwell ? ", dwell_fired_at = $4" : ""),
					 4, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID}, fv, SPI_OK_UPDATE);
			if (dwell)
				transition = "dwell";
		}
		else if (present)
		{
			geo_exec("DELETE FROM kaireon.geofence_presences WHERE tenant_id = $1 AND customer_id = $2 AND geofence_id = $3",
					 3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID}, fv, SPI_OK_DELETE);
			transition = "exit";
		}
		if (transition == NULL)
			continue;
		events[nevents++] = psprintf("geofence_%s", transition);

		if (strcmp(transition, trigger_on) == 0)
		{
			json_t	   *config = json_deep_copy(action);
			const char *type = kj_str(action, "type");
			json_t	   *source = json_pack("{s:s,s:s,s:s}", "geofenceId", fence_id, "geofenceName", name,
										   "transition", transition);
			json_t	   *event = json_pack("{s:f,s:f,s:f,s:s}", "latitude", lat, "longitude", lon,
										  "distanceMeters", distance, "at", timestamptz_to_str(at));

			json_object_del(config, "type");
			json_object_del(config, "dwellSeconds");
			result = kaireon_run_action(tenant_id, customer_id, type, config, source, event, at,
										psprintf("geofence \"%s\" (id %s)", name, fence_id));
		}
		{
			Datum		out[4];

			out[0] = CStringGetTextDatum(fence_id);
			out[1] = CStringGetTextDatum(transition);
			out[2] = BoolGetDatum(result != NULL);
			if (result != NULL)
				out[3] = JsonbPGetDatum(kj_to_jsonb(result));
			else
				fnulls[3] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, fnulls);
		}
	}
	/*
	 * the customer's enrolments waiting for one of its events wake up (the
	 * configuration read now: a fence's decision may have recompiled it)
	 */
	kaireon_wake_journeys(kaireon_config_get(tenant_id), customer_id, (const char *const *) events, nevents, at);
	SPI_finish();
	return (Datum) 0;
}
