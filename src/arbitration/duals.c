/*
 * duals.c
 *	  The real-time dual prices' maintenance step (docs/arbitration.md,
 *	  "Real time"): kaireon.update_dual_prices(tenant_id, as_of) and the
 *	  all-tenant kaireon.update_dual_prices() that the maintenance job (a
 *	  background worker when preloaded, pg_cron otherwise) calls.
 *
 * Online dual descent towards a paced target.  For each constraint with a
 * limit C over a calendar period [s, e) (cross-offer constraints, budget
 * allocations, volume constraints), at time t with consumption U (recorded
 * decisions' costs, or the counter) and the previous update at t0 with U0:
 *     uniform rate  r0 = C / (e - s)
 *     pacing        m  = clamp((max(C - U, 0) / (e - t)) / r0, 0.5, 2)
 *     target rate   r* = m r0
 *     observed rate r  = (U - U0) / (t - t0)
 *     lambda       <- clamp(lambda + step (r - r*) / (r0 cbar), 0, lambda_max)
 * where cbar is the mean cost of the offers the constraint covers and
 * lambda_max = 1 / max(smallest positive cost, MIN_PRICED_COST): at that price
 * no candidate with a score up to 1 is worth the constraint, and it is at most
 * 1e12, so that prices stay finite (a cost of 1e-300 gave 1e300, and a
 * mandatory offer's score -Infinity).  A used-up constraint gets lambda_max.  Each update of a tenant gives its prices a new version
 * (kaireon.dual_price_state.version), which recommend records on the
 * decisions it prices.
 *
 * Counters in kaireon.dual_price_state: attempted (updates run), noops (no
 * price moved), solver_failed (the all-tenant call caught an error for the
 * tenant; its previous prices stay), not_converged (after the update some
 * constraint was still consumed faster than its paced target by more than
 * the tolerance).
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "util/subxact.h"
#include "arbitration/constraints.h"
#include "security/session.h"

PG_FUNCTION_INFO_V1(kaireon_update_dual_prices);
PG_FUNCTION_INFO_V1(kaireon_update_dual_prices_all);

#define HOUR_USECS ((double) USECS_PER_HOUR)

/* The smallest cost lambda_max is the inverse of: lambda_max is at most 1e12. */
#define MIN_PRICED_COST 1e-12

/* The previous update of a constraint. */
typedef struct Previous
{
	bool		found;
	double		lambda;
	double		consumed;
	TimestampTz as_of;
	TimestampTz period_start;
} Previous;

/* The previous rows of a tenant, by constraint key. */
static json_t *
previous_rows(const char *tenant_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;

	args[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args(
		"SELECT coalesce(jsonb_object_agg(p.constraint_key, jsonb_build_object('lambda', p.lambda, "
		"         'consumed', p.consumed, 'as_of', extract(epoch FROM p.as_of), "
		"         'period_start', extract(epoch FROM p.period_start))), '{}') "
		"  FROM kaireon.dual_prices p WHERE p.tenant_id = $1",
		1, types, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading the dual prices failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return kj_from_jsonb(DatumGetJsonbP(d), "dual prices");
}

/* An epoch (seconds) as a timestamptz. */
static TimestampTz
from_epoch(double secs)
{
	return (TimestampTz) rint((secs - ((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY)) * USECS_PER_SEC);
}

/* The tenant's step size and tolerance (tenant_settings.settings -> 'lagrangian'). */
static void
tenant_tuning(const char *tenant_id, double *step, double *tolerance)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;
	json_t	   *t = NULL;

	args[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args("SELECT s.settings -> 'lagrangian' FROM kaireon.tenant_settings s WHERE s.tenant_id = $1",
							   1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the tenant's settings failed");
	if (SPI_processed == 1)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			t = kj_from_jsonb(DatumGetJsonbP(d), "tenant_settings.settings.lagrangian");
	}
	*step = kj_num(t, "stepSize", 0.1);
	*tolerance = kj_num(t, "tolerance", 0.1);
	if (!(*step > 0 && *step <= 100))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_settings.settings.lagrangian.stepSize must be in (0, 100], not %g", *step),
				 errhint("It scales each update of a dual price.")));
	if (!(*tolerance >= 0 && *tolerance <= 10))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_settings.settings.lagrangian.tolerance must be in [0, 10], not %g", *tolerance),
				 errhint("It is the relative excess over the paced target still counted as converged.")));
}

/* Mean and smallest positive cost of the offers a constraint covers (1, 1 when none). */
static void
cost_stats(const KTenantConfig *cfg, const KArbConstraint *k, double *mean, double *min)
{
	double		mean_so_far = 0;
	int			n = 0;

	*min = 0;
	for (int o = 0; o < cfg->noffers; o++)
	{
		double		a;

		if (!cfg->offers[o].active)
			continue;
		a = karb_offer_cost(k, &cfg->offers[o], k->scope == KSCOPE_CHANNEL ? k->scope_id : NULL);
		if (!(a > 0) || !isfinite(a))
			continue;
		/* a running mean: a sum of costs near DBL_MAX would overflow */
		n++;
		mean_so_far += (a - mean_so_far) / n;
		*min = *min > 0 ? Min(*min, a) : a;
	}
	*mean = n > 0 ? mean_so_far : 1;
	if (*min <= 0)
		*min = 1;
}

/* One output row of update_dual_prices. */
typedef struct Update
{
	const char *key;
	double		lambda,
				previous,
				multiplier,
				target,
				observed,
				consumed,
				capacity;
} Update;

/*
 * Update one tenant's dual prices as of a time; returns the updates (and
 * their count) and the new version.  Runs inside an SPI connection.
 */
static Update *
update_tenant(const char *tenant_id, TimestampTz as_of, int *nout, int64 *version_out)
{
	KTenantConfig *cfg = kaireon_config_get(tenant_id);
	KArbConstraintSet *set = karb_load_constraints(cfg, true, NULL, NULL);
	json_t	   *prev = previous_rows(tenant_id);
	Update	   *out = palloc0(sizeof(Update) * Max(set->n, 1));
	int			n = 0;
	bool		moved = false,
				behind = false;
	double		step,
				tolerance;
	int64		version;
	json_t	   *keys = json_array();
	Oid			types[13] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, FLOAT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};

	tenant_tuning(tenant_id, &step, &tolerance);
	karb_read_usage(cfg, set, as_of);

	/* the new version first: every row written below carries it */
	{
		Oid			t1[2] = {TEXTOID, TIMESTAMPTZOID};
		Datum		a1[2];
		bool		isnull;

		/* the time is a parameter: no function in the ON CONFLICT update (Citus needs that) */
		a1[0] = CStringGetTextDatum(tenant_id);
		a1[1] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		if (kspi_execute_with_args(
			"INSERT INTO kaireon.dual_price_state AS s (tenant_id, version, attempted, last_run_at) "
			"VALUES ($1, 1, 1, $2) ON CONFLICT (tenant_id) DO UPDATE "
			"   SET version = s.version + 1, attempted = s.attempted + 1, last_run_at = EXCLUDED.last_run_at RETURNING version",
			2, t1, a1, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
			elog(ERROR, "kaireon: could not update the dual price state");
		version = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	for (int i = 0; i < set->n; i++)
	{
		const KArbConstraint *k = &set->items[i];
		TimestampTz s,
					e,
					t0;
		Previous	p;
		json_t	   *pr;
		double		u0,
					dt,
					r0,
					remaining,
					left_hours,
					cbar,
					cmin,
					lmax;
		Update	   *u;
		Datum		v[13];

		if (!k->has_limit || k->source == KARB_SRC_RUN || !karb_period_bounds(k->period, as_of, &s, &e))
			continue;
		CHECK_FOR_INTERRUPTS();
		pr = json_object_get(prev, k->key);
		p.found = pr != NULL;
		p.lambda = kj_num(pr, "lambda", 0);
		p.consumed = kj_num(pr, "consumed", 0);
		p.as_of = p.found ? from_epoch(kj_num(pr, "as_of", 0)) : 0;
		p.period_start = p.found ? from_epoch(kj_num(pr, "period_start", 0)) : 0;
		/* a new period starts from its beginning with nothing consumed */
		if (p.found && p.period_start == s && p.as_of <= as_of)
		{
			u0 = p.consumed;
			t0 = p.as_of;
		}
		else
		{
			u0 = 0;
			t0 = s;
		}
		u = &out[n++];
		u->key = k->key;
		u->previous = p.lambda;
		u->consumed = k->used;
		u->capacity = k->limit;
		dt = (double) (as_of - t0) / HOUR_USECS;
		r0 = k->limit / ((double) (e - s) / HOUR_USECS);
		remaining = Max(k->limit - k->used, 0);
		left_hours = Max((double) (e - as_of) / HOUR_USECS, 1e-9);
		u->multiplier = Min(Max((remaining / left_hours) / r0, 0.5), 2.0);
		u->target = u->multiplier * r0;
		u->observed = dt > 0 ? (k->used - u0) / dt : 0;
		cost_stats(cfg, k, &cbar, &cmin);
		lmax = 1.0 / Max(cmin, MIN_PRICED_COST);
		if (remaining <= 0)
			u->lambda = lmax;
		else if (dt > 0)
			u->lambda = Min(Max(p.lambda + step * (u->observed - u->target) / (r0 * cbar), 0), lmax);
		else
			u->lambda = Min(p.lambda, lmax);
		if (u->lambda != p.lambda || !p.found)
			moved |= u->lambda != p.lambda;
		if (remaining > 0 && dt > 0 && u->observed > u->target * (1 + tolerance))
			behind = true;

		v[0] = CStringGetTextDatum(tenant_id);
		v[1] = CStringGetTextDatum(k->key);
		v[2] = CStringGetTextDatum(k->name ? k->name : k->id);
		v[3] = CStringGetTextDatum(k->type);
		v[4] = Float8GetDatum(u->lambda);
		v[5] = Float8GetDatum(u->multiplier);
		v[6] = Float8GetDatum(u->capacity);
		v[7] = Float8GetDatum(u->consumed);
		v[8] = Float8GetDatum(u->target);
		v[9] = Float8GetDatum(u->observed);
		v[10] = TimestampTzGetDatum(s);
		v[11] = TimestampTzGetDatum(e);
		v[12] = TimestampTzGetDatum(as_of);
		if (kspi_execute_with_args(
			psprintf("INSERT INTO kaireon.dual_prices AS p (tenant_id, constraint_key, constraint_name, constraint_type, "
					 "  lambda, pacing_multiplier, capacity, consumed, target_rate, observed_rate, period_start, "
					 "  period_end, as_of, version) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, " INT64_FORMAT ") "
					 "ON CONFLICT (tenant_id, constraint_key) DO UPDATE SET constraint_name = EXCLUDED.constraint_name, "
					 "  constraint_type = EXCLUDED.constraint_type, lambda = EXCLUDED.lambda, "
					 "  pacing_multiplier = EXCLUDED.pacing_multiplier, capacity = EXCLUDED.capacity, "
					 "  consumed = EXCLUDED.consumed, target_rate = EXCLUDED.target_rate, "
					 "  observed_rate = EXCLUDED.observed_rate, period_start = EXCLUDED.period_start, "
					 "  period_end = EXCLUDED.period_end, as_of = EXCLUDED.as_of, version = EXCLUDED.version",
					 version),
			13, types, v, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "kaireon: could not write the dual price of %s", k->key);
		json_array_append_new(keys, json_string(k->key));
	}

	/* prices of constraints that no longer exist (or lost their limit) go */
	{
		Oid			t2[2] = {TEXTOID, JSONBOID};
		Datum		a2[2];

		a2[0] = CStringGetTextDatum(tenant_id);
		a2[1] = JsonbPGetDatum(kj_to_jsonb(keys));
		if (kspi_execute_with_args("DELETE FROM kaireon.dual_prices WHERE tenant_id = $1 "
								   "   AND NOT ($2 ? constraint_key)", 2, t2, a2, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "kaireon: could not remove old dual prices");
		if (SPI_processed > 0)
			moved = true;
		if (kspi_execute_with_args("UPDATE kaireon.dual_price_state SET noops = noops + $2::int, "
								   "  not_converged = not_converged + $3::int, last_error = NULL "
								   " WHERE tenant_id = $1",
								   3, (Oid[]) {TEXTOID, BOOLOID, BOOLOID},
								   (Datum[]) {a2[0], BoolGetDatum(!moved), BoolGetDatum(behind)},
								   NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "kaireon: could not count the update");
	}
	*nout = n;
	*version_out = version;
	return out;
}

/* One tenant's update as a subtransaction's step (kaireon.update_dual_prices). */
typedef struct DualsStep
{
	const char *tenant_id;
	TimestampTz as_of;
	Update	   *u;
	int			n;
	int64		version;
} DualsStep;

/* The step: update the tenant's prices, keep the updates and the version. */
static void
duals_step(void *arg)
{
	DualsStep  *st = (DualsStep *) arg;

	st->u = update_tenant(st->tenant_id, st->as_of, &st->n, &st->version);
}

/* Append a tenant's updates to the result. */
static void
emit(ReturnSetInfo *rsinfo, const char *tenant_id, const Update *u, int n, int64 version)
{
	for (int i = 0; i < n; i++)
	{
		Datum		values[10];
		bool		nulls[10] = {0};

		values[0] = CStringGetTextDatum(tenant_id);
		values[1] = CStringGetTextDatum(u[i].key);
		values[2] = Float8GetDatum(u[i].lambda);
		values[3] = Float8GetDatum(u[i].previous);
		values[4] = Float8GetDatum(u[i].multiplier);
		values[5] = Float8GetDatum(u[i].target);
		values[6] = Float8GetDatum(u[i].observed);
		values[7] = Float8GetDatum(u[i].consumed);
		values[8] = Float8GetDatum(u[i].capacity);
		values[9] = Int64GetDatum(version);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/* kaireon.update_dual_prices(tenant_id, as_of): one tenant's update (whether or not real-time arbitration is on). */
Datum
kaireon_update_dual_prices(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext mcxt;
	char	   *tenant_id;
	TimestampTz as_of;
	Update	   *u;
	int			n;
	int64		version;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be null"),
				 errhint("Pass a tenant, or call kaireon.update_dual_prices() for every tenant.")));
	tenant_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	as_of = PG_ARGISNULL(1) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(1);
	InitMaterializedSRF(fcinfo, 0);
	mcxt = CurrentMemoryContext;
	kaireon_check_tenant_access(tenant_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(mcxt);
	u = update_tenant(tenant_id, as_of, &n, &version);
	emit(rsinfo, tenant_id, u, n, version);
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	return (Datum) 0;
}

/*
 * kaireon.update_dual_prices(): every tenant with real-time arbitration on
 * (that the caller may act for), each in a subtransaction: a tenant whose
 * update fails keeps its prices and counts a solver failure with the error.
 */
Datum
kaireon_update_dual_prices_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext mcxt;
	json_t	   *tenants;
	size_t		i;
	json_t	   *t;
	TimestampTz as_of = GetCurrentTransactionStartTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	mcxt = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(mcxt);
	if (kspi_execute("SELECT coalesce(jsonb_agg(s.tenant_id ORDER BY s.tenant_id), '[]') FROM kaireon.tenant_settings s "
					 " WHERE s.realtime_arbitration_enabled", false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: listing the tenants failed");
	{
		bool		isnull;

		tenants = kj_from_jsonb(DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
								"tenants");
	}
	json_array_foreach(tenants, i, t)
	{
		const char *tenant_id = json_string_value(t);
		Update	   *u = NULL;
		int			n = 0;
		int64		version = 0;
		char	   *error = NULL;
		const char *current = kaireon_current_tenant();
		Oid			caller = GetOuterUserId();

		CHECK_FOR_INTERRUPTS();
		/* only tenants the caller may act for */
		if (!superuser_arg(caller) && !has_bypassrls_privilege(caller) &&
			(current == NULL || strcmp(current, tenant_id) != 0))
			continue;

		{
			DualsStep	st = {tenant_id, as_of, NULL, 0, 0};
			ErrorData  *edata;

			MemoryContextSwitchTo(mcxt);
			edata = ksubxact_run(duals_step, &st);

			u = st.u;
			n = st.n;
			version = st.version;
			if (edata != NULL)
				error = edata->message;
		}
		if (error != NULL)
		{
			Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
			Datum		args[3];

			args[0] = CStringGetTextDatum(tenant_id);
			args[1] = CStringGetTextDatum(error);
			args[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
			if (kspi_execute_with_args(
				"INSERT INTO kaireon.dual_price_state AS s (tenant_id, attempted, solver_failed, last_run_at, last_error) "
				"VALUES ($1, 1, 1, $3, $2) ON CONFLICT (tenant_id) DO UPDATE "
				"   SET attempted = s.attempted + 1, solver_failed = s.solver_failed + 1, last_run_at = EXCLUDED.last_run_at, "
				"       last_error = EXCLUDED.last_error", 3, types, args, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "kaireon: could not count the failed update");
			continue;
		}
		emit(rsinfo, tenant_id, u, n, version);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	return (Datum) 0;
}
