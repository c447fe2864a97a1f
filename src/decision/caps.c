/*
 * decision/caps.c
 *	  The one owner of the statements that change the volume and budget
 *	  counters: taking a unit of every cap covering a selected candidate
 *	  (recommend, step 11), taking a campaign run's units (campaign/), and
 *	  counting a conversion against the budgets covering a positive outcome
 *	  (respond).  The SQL pieces the readers share (rows in force, a volume
 *	  period's rollover, what a volume constraint has used) are
 *	  config/caps.h; the statements are built from them.  Everything happens
 *	  in the caller's transaction, through plans prepared once per backend.
 *
 * Cap units.  A volume constraint or budget unit is taken by one conditional
 * UPDATE ... WHERE used + units <= cap RETURNING: the row lock serialises
 * concurrent decisions, so N racers never take more than the cap, and a
 * rollback gives the unit back.  A volume counter starts a new period lazily:
 * when its reset_at has passed (or was never set) the taking UPDATE restarts
 * the count at the units taken and moves reset_at to the end of the current
 * period.  When a candidate needs several caps and one is used up, the units
 * already taken for it are returned (the rows are still locked by this
 * transaction).
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"

#include "util/spi.h"
#include "config/caps.h"
#include "decision/decision.h"

/*
 * Take units of a volume constraint in force: $3 units (float8, whole),
 * restarting an ended period; $4 the time (the transaction's: now()), a
 * parameter because Citus allows no function but IMMUTABLE ones in the CASE
 * of an UPDATE.
 */
#define VOLUME_TAKE_SQL \
	"UPDATE kaireon.volume_constraints v " \
	"   SET current_count = CASE WHEN " KCAPS_VOLUME_PERIOD_OVER_AT("$4") " THEN $3::bigint " \
	"                            ELSE v.current_count + $3::bigint END, " \
	"       reset_at = CASE WHEN " KCAPS_VOLUME_PERIOD_OVER_AT("$4") \
	"                       THEN kaireon_internal._period_end(v.period, $4) ELSE v.reset_at END " \
	" WHERE v.id = $2 AND " KCAPS_VOLUME_IN_FORCE \
	"   AND (" KCAPS_VOLUME_USED_AT("$4") ") + $3::bigint <= v.max_volume " \
	"RETURNING 1"

static SPIPlanPtr vol_take_plan = NULL;
static SPIPlanPtr vol_return_plan = NULL;
static SPIPlanPtr bud_take_plan = NULL;
static SPIPlanPtr bud_return_plan = NULL;
static SPIPlanPtr bud_take_spend_plan = NULL;
static SPIPlanPtr bud_take_impressions_plan = NULL;
static SPIPlanPtr conversion_plan = NULL;

/* Prepare and keep a plan once per backend. */
static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
		*slot = kspi_prepare_keep(sql, nargs, types);
	return *slot;
}

/* Run a kept counter UPDATE ... RETURNING with (tenant id, cap id, amount); true when it changed the row. */
static bool
run_take(SPIPlanPtr plan, const char *tenant_id, const char *id, double amount, const char *what)
{
	Datum		args[4];
	int			rc;

	/* (the time is the volume plan's $4; a plan of three parameters reads three) */
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(id);
	args[2] = Float8GetDatum(amount);
	args[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	rc = kspi_execute_plan(plan, args, NULL, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "kaireon: %s failed: %s", what, SPI_result_code_string(rc));
	return SPI_processed > 0;
}

/* Take (take = true) or return one unit of a cap for a candidate; false when used up. */
static bool
cap_unit(const KRequest *req, const KCap *c, double cost, bool take)
{
	Oid			types[4] = {TEXTOID, TEXTOID, FLOAT8OID, TIMESTAMPTZOID};
	SPIPlanPtr	plan;

	if (c->kind == KCAP_VOLUME)
		plan = take ?
			keep_plan(&vol_take_plan, VOLUME_TAKE_SQL, 4, types) :
			keep_plan(&vol_return_plan,
					  "UPDATE kaireon.volume_constraints SET current_count = current_count - 1 "
					  " WHERE tenant_id = $1 AND id = $2 AND current_count > 0 RETURNING 1", 2, types);
	else
		plan = take ?
			keep_plan(&bud_take_plan,
					  "UPDATE kaireon.budget_allocations b "
					  "   SET used_impressions = b.used_impressions + 1, used_spend = b.used_spend + $3 "
					  " WHERE b.tenant_id = $1 AND b.id = $2 "
					  "   AND (b.max_impressions IS NULL OR b.used_impressions < b.max_impressions) "
					  "   AND (b.max_spend IS NULL OR b.used_spend + $3 <= b.max_spend) "
					  "RETURNING 1", 3, types) :
			keep_plan(&bud_return_plan,
					  "UPDATE kaireon.budget_allocations "
					  "   SET used_impressions = greatest(used_impressions - 1, 0), "
					  "       used_spend = greatest(used_spend - $3, 0) "
					  " WHERE tenant_id = $1 AND id = $2 RETURNING 1", 3, types);
	return run_take(plan, req->cfg->tenant_id, c->id, c->kind == KCAP_VOLUME ? 1.0 : cost, "cap update");
}

/*
 * Take one unit of every volume constraint and budget covering a selected
 * candidate.  False (with nothing taken) when one of them is used up.
 */
bool
kaireon_reserve_caps(KRequest *req, KCandidate *cand)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];
	int			taken = 0;
	int		   *done = palloc(sizeof(int) * Max(req->cfg->ncaps, 1));

	for (int i = 0; i < req->cfg->ncaps; i++)
	{
		const KCap *c = &req->cfg->caps[i];

		if (!kaireon_cap_applies(req, c, offer))
			continue;
		if (!cap_unit(req, c, offer->cost, true))
		{
			for (int k = 0; k < taken; k++)
				(void) cap_unit(req, &req->cfg->caps[done[k]], offer->cost, false);
			return false;
		}
		done[taken++] = i;
	}
	return true;
}

/*
 * Take a campaign run's units of one counter at once: volume units, budget
 * impressions or budget spend.  False when they no longer fit.
 */
bool
kaireon_caps_take_units(const char *tenant_id, const char *id, KCapCounter counter, double units)
{
	Oid			types[4] = {TEXTOID, TEXTOID, FLOAT8OID, TIMESTAMPTZOID};
	SPIPlanPtr	plan;

	switch (counter)
	{
		case KCOUNTER_VOLUME:
			plan = keep_plan(&vol_take_plan, VOLUME_TAKE_SQL, 4, types);
			break;
		case KCOUNTER_BUDGET_SPEND:
			plan = keep_plan(&bud_take_spend_plan,
							 "UPDATE kaireon.budget_allocations b SET used_spend = b.used_spend + $3::numeric "
							 " WHERE b.tenant_id = $1 AND b.id = $2 AND b.used_spend + $3::numeric <= b.max_spend "
							 "RETURNING 1", 3, types);
			break;
		default:
			plan = keep_plan(&bud_take_impressions_plan,
							 "UPDATE kaireon.budget_allocations b SET used_impressions = b.used_impressions + $3::bigint "
							 " WHERE b.tenant_id = $1 AND b.id = $2 AND b.used_impressions + $3::bigint <= b.max_impressions "
							 "RETURNING 1", 3, types);
			break;
	}
	return run_take(plan, tenant_id, id, units, "taking a campaign's units");
}

/*
 * Count a positive outcome's conversion against every budget in force and in
 * its current period whose scope covers the offer (its category, channel).
 */
void
kaireon_caps_count_conversion(const char *tenant_id, const char *offer_id, const char *category_id,
							  const char *channel_id)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	char		nulls[5] = "    ";
	int			rc;

	keep_plan(&conversion_plan,
			  "UPDATE kaireon.budget_allocations b SET used_conversions = b.used_conversions + 1 "
			  " WHERE " KCAPS_BUDGET_IN_FORCE
			  "   AND (b.scope = 'global' OR (b.scope = 'offer' AND b.scope_id = $2) "
			  "        OR (b.scope = 'category' AND b.scope_id = $3) OR (b.scope = 'channel' AND b.scope_id = $4)) "
			  "   AND " KCAPS_BUDGET_CURRENT,
			  4, types);
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(offer_id);
	args[2] = category_id ? CStringGetTextDatum(category_id) : (Datum) 0;
	nulls[2] = category_id ? ' ' : 'n';
	args[3] = channel_id ? CStringGetTextDatum(channel_id) : (Datum) 0;
	nulls[3] = channel_id ? ' ' : 'n';
	rc = kspi_execute_plan(conversion_plan, args, nulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "kaireon: respond statement failed: %s", SPI_result_code_string(rc));
}
