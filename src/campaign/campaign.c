/*
 * campaign.c
 *	  Batch arbitration: kaireon.run_campaign(tenant_id, run_id, simulation)
 *	  and kaireon.simulate(...) (docs/arbitration.md, "Batch campaigns").
 *
 * A campaign takes a run definition (kaireon.runs: flow, segment or customer
 * query, channels, max_offers, its own volume limits), walks its customers
 * with a cursor, and for each customer and channel runs the recommend
 * pipeline itself (kaireon_decide with dry_run: the same candidates, rules,
 * policies, caps and scores a real-time decision would see, nothing
 * written).  The candidates go into the solver's store (solver.c), which
 * prunes those no prices could ever select; the solver then finds the dual
 * prices of the global constraints and the assignment.  run_campaign writes
 * the assignment to kaireon.campaign_decisions, and, unless it is a
 * simulation, records each decision in interaction_history, creates its
 * delivery (kaireon.create_delivery: a recorded decision is sent) and takes
 * its units of the budgets and volume constraints; simulate writes only its
 * kaireon.simulation_runs row.
 *
 * This file checks the definition and runs the steps; customers.c lists the
 * customers and collects their candidates, results.c writes the results.
 *
 * Failure protocol.  Bad input (unknown run, channel or flow; a run without
 * customers; a constraint naming an unknown scope) is refused before
 * anything is written.  Everything after the campaign_runs row is created runs
 * in a subtransaction: when it fails part way, the subtransaction is rolled
 * back (no decisions, interactions or counters remain) and the row is marked
 * failed with the error's message; the function then returns that row
 * instead of raising.  A cancelled query is re-raised (nothing remains).
 *
 * Locking.  The run's kaireon.runs row is locked for the duration, so two
 * executions of one run take consecutive run numbers.  Budget and volume
 * units are taken at the end, each by one conditional UPDATE for the run's
 * total: when real-time decisions used the room meanwhile, the run fails
 * (SQLSTATE 40001) rather than overshoot.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "util/subxact.h"
#include "arbitration/arbitration.h"
#include "arbitration/constraints.h"
#include "campaign/solver.h"
#include "decision/decision.h"
#include "security/session.h"
#include "security/confine.h"
#include "stats/stats.h"
#include "config/validate.h"
#include "campaign/customers.h"
#include "campaign/results.h"

PG_FUNCTION_INFO_V1(kaireon_run_campaign);
PG_FUNCTION_INFO_V1(kaireon_simulate);

/* Milliseconds since a start time. */
static double
ms_since(TimestampTz start)
{
	return (double) (GetCurrentTimestamp() - start) / 1000.0;
}

/* ---- the definition ---- */

/* Raise 42704 for an unknown object. */
static void
unknown(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("%s", what),
			 errhint("%s", hint)));
}

/*
 * A kaireon.runs row as JSON, with the key of its decision flow (flow_key);
 * locked FOR UPDATE when lock.  42704 with the hint when it does not exist.
 */
static json_t *
load_run(const char *tenant_id, const char *run_id, bool lock, const char *hint)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	bool		isnull;

	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(run_id);
	if (kspi_execute_with_args(
		psprintf("SELECT to_jsonb(r) || jsonb_build_object('flow_key', (SELECT f.key FROM kaireon.decision_flows f "
				 "         WHERE f.tenant_id = $1 AND f.id = r.decision_flow_id AND f.deleted_at IS NULL)) "
				 "  FROM kaireon.runs r WHERE r.tenant_id = $1 AND r.id = $2%s", lock ? " FOR UPDATE" : ""),
		2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the run failed");
	if (SPI_processed == 0)
		unknown(psprintf("run \"%s\" does not exist for tenant \"%s\"", run_id, tenant_id), hint);
	return kj_from_jsonb(DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
						 "run");
}

/* Check the definition against the tenant's configuration; resolve channels and constraints. */
static void
prepare(Campaign *cp)
{
	CampaignSpec *spec = cp->spec;
	KTenantConfig *cfg = cp->cfg;
	size_t		i;
	json_t	   *ch;
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	/* how the decisions are written (flush_rows, results.c) */
	cp->distributed = kspi_citus_table("kaireon.campaign_decisions");
	if (spec->channels == NULL || json_array_size(spec->channels) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("campaign %s names no channel", spec->run_id ? spec->run_id : "simulation"),
				 errhint("Set runs.channel_ids (or config.channelIds of a simulation) to the channels to decide for.")));
	cp->nch = json_array_size(spec->channels);
	cp->channel = palloc(sizeof(int) * cp->nch);
	json_array_foreach(spec->channels, i, ch)
	{
		const char *id = json_string_value(ch);
		int			c = id ? kaireon_find_channel(cfg, id) : -1;

		if (c < 0)
			unknown(psprintf("channel \"%s\" of the campaign does not exist for tenant \"%s\"",
							 id ? id : "(not a string)", cfg->tenant_id),
					"List ids of kaireon.channels rows of the tenant.");
		if (!cfg->channels[c].active)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("channel \"%s\" of the campaign is inactive", id),
					 errhint("Activate it or remove it from the campaign's channels.")));
		for (size_t k = 0; k < i; k++)
			if (cp->channel[k] == c)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("channel \"%s\" is listed twice in the campaign", id),
						 errhint("List each channel once.")));
		cp->channel[i] = c;
	}
	if (spec->flow_key != NULL && kaireon_find_flow(cfg, spec->flow_key) < 0)
		unknown(psprintf("decision flow \"%s\" of the campaign does not exist for tenant \"%s\"",
						 spec->flow_key, cfg->tenant_id),
				"Name a decision flow of the tenant.");
	if (spec->segment_id == NULL && spec->customer_query == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("campaign %s has neither a segment nor a customer query",
						spec->run_id ? spec->run_id : "simulation"),
				 errhint("Set runs.segment_id or runs.customer_query.")));
	if (spec->customer_query != NULL)
		kaireon_check_stored_select(spec->customer_query, "the campaign's customer query");
	if (spec->segment_id != NULL && kaireon_find_segment(cfg, spec->segment_id) < 0)
		unknown(psprintf("segment \"%s\" of the campaign does not exist for tenant \"%s\"",
						 spec->segment_id, cfg->tenant_id),
				"Name a kaireon.segments row of the tenant.");

	/* constraints: global limits and per-response caps */
	cp->set = karb_load_constraints(cfg, true, spec->limits, spec->run_id ? spec->run_id : "simulation");
	karb_read_usage(cfg, cp->set, now);
	cp->global = palloc(sizeof(int) * Max(cp->set->n, 1));
	cp->resp = palloc(sizeof(int) * Max(cp->set->n, 1));
	for (int k = 0; k < cp->set->n; k++)
	{
		KArbConstraint *c = &cp->set->items[k];

		if (!c->scope_known)
			unknown(psprintf("constraint \"%s\" (%s) names %s \"%s\", which does not exist for tenant \"%s\"",
							 c->name, c->key,
							 c->scope == KSCOPE_CHANNEL ? "channel" : c->scope == KSCOPE_CATEGORY ? "category" : "offer",
							 c->scope_id ? c->scope_id : "", cfg->tenant_id),
					"Fix the constraint's scope_id, or set its status to inactive.");
		if (c->has_limit)
			cp->global[cp->nglobal++] = k;
		if (c->per_response > 0)
			cp->resp[cp->nresp++] = k;
	}
}

/* Everything after the run row: collect, solve, write.  Raises on failure (the caller rolls back). */
static json_t *
execute(Campaign *cp)
{
	TimestampTz t0 = GetCurrentTimestamp();
	int			k;
	double		need;

	kcamp_collect(cp);
	cp->ms_scoring = ms_since(t0);
	if (!karb_forced_feasible(&cp->prob, &k, &need))
	{
		const KArbConstraint *c = &cp->set->items[cp->global[k]];

		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("constraint \"%s\" (%s) is infeasible: the mandatory offers alone need %g of the %g it has left",
						c->name ? c->name : c->id, c->key, need, cp->prob.cap[k]),
				 errhint("Raise its limit, or make fewer offers of its scope mandatory.")));
	}
	t0 = GetCurrentTimestamp();
	kaireon_progress_update("solving", 0, -1);
	karb_solve(&cp->prob, &cp->spec->opt, &cp->sol);
	cp->ms_solve = ms_since(t0);
	t0 = GetCurrentTimestamp();
	if (cp->spec->write_decisions)
	{
		for (int64 c = 0; c < cp->prob.ncand; c++)
			if (cp->sol.selected[c])
				cp->selected++;
		kaireon_progress_update("writing", 0, cp->selected);
		kcamp_write_decisions(cp);	/* with their interactions, unless a simulation */
		if (!cp->spec->simulation)
		{
			kcamp_record_controls(cp);
			kcamp_take_units(cp);
		}
	}
	else
	{
		for (int64 c = 0; c < cp->prob.ncand; c++)
			if (cp->sol.selected[c])
				cp->decisions++;
	}
	cp->ms_write = ms_since(t0);
	return kcamp_summary(cp);
}

/*
 * List the customers, confined to the tenant (the step run before the call
 * writes anything: on Citus the confined role may not read the tenant's
 * shards once the transaction modified them as the caller, 25001).
 */
static json_t *
list_first(Campaign *cp)
{
	MemoryContext mine = CurrentMemoryContext;

	cp->customers_query = kcamp_customers_sql(cp);
	kaireon_run_confined(cp->spec->tenant_id, kcamp_list_customers, cp);
	MemoryContextSwitchTo(mine);
	cp->listed = true;
	return NULL;
}

/*
 * Run a step (execute, list_first) in a subtransaction.  On success returns
 * its result; on failure rolls the subtransaction back, returns NULL and the
 * error message in *error (a cancelled query is re-raised).
 */
/* A campaign step as a subtransaction's step (run_guarded). */
typedef struct GuardedStep
{
	Campaign   *cp;
	json_t	   *(*step) (Campaign *);
	json_t	   *result;
} GuardedStep;

/* The step: run it, keep its result. */
static void
guarded_step(void *arg)
{
	GuardedStep *g = (GuardedStep *) arg;

	g->result = g->step(g->cp);
}

/* Run one step of the campaign in a subtransaction: its result, or NULL with *error set (message and SQLSTATE). */
static json_t *
run_guarded(Campaign *cp, json_t *(*step) (Campaign *), char **error)
{
	GuardedStep g = {cp, step, NULL};
	ErrorData  *edata;

	*error = NULL;
	/* a cancel is re-raised there, once the subtransaction is gone: the caller's transaction aborts as a whole */
	edata = ksubxact_run(guarded_step, &g);
	if (edata == NULL)
		return g.result;
	*error = psprintf("%s (SQLSTATE %s)", edata->message, unpack_sql_state(edata->sqlerrcode));
	FreeErrorData(edata);
	return NULL;
}

/* Solver settings: the GUC defaults, overridden by an options object (tolerance, maxIterations). */
static void
solver_options(KArbOptions *opt, json_t *conf)
{
	opt->tolerance = kj_num(conf, "tolerance", karb_tolerance);
	opt->max_iterations = (int) kj_num(conf, "maxIterations", karb_max_iterations);
	if (!(opt->tolerance >= 0 && opt->tolerance < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tolerance must be in [0, 1), not %g", opt->tolerance),
				 errhint("The solver stops when the relative duality gap is at most the tolerance.")));
	if (opt->max_iterations < 1 || opt->max_iterations > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("maxIterations must be from 1 to 100000, not %d", opt->max_iterations),
				 errhint("It bounds the dual function evaluations.")));
}

/* Raise 22004 for a NULL argument. */
static void
require(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("Pass a value for %s.", name)));
}

/*
 * Return the single row a query returned, as the function's composite result
 * (copied into the context that was current at SPI_connect).
 */
static Datum
return_row(void)
{
	HeapTupleHeader h;

	if (SPI_processed != 1)
		elog(ERROR, "kaireon: the run row was not found");
	h = SPI_returntuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	return PointerGetDatum(h);
}

/*
 * kaireon.run_campaign(tenant_id, run_id, simulation): one execution of a
 * run; returns its kaireon.campaign_runs row (status completed or failed).
 */
Datum
kaireon_run_campaign(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt,
				old;
	Campaign	cp;
	CampaignSpec spec;
	json_t	   *run,
			   *sum;
	char	   *error;
	Oid			types[7] = {TEXTOID, TEXTOID, BOOLOID, TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID};
	Oid			start_types[4] = {TEXTOID, TEXTOID, BOOLOID, TIMESTAMPTZOID};
	Datum		args[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	const char *status;
	Datum		result;

	require(fcinfo, 0, "tenant_id");
	require(fcinfo, 1, "run_id");
	memset(&spec, 0, sizeof(spec));
	memset(&cp, 0, sizeof(cp));
	callcxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon campaign", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);
	spec.tenant_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	spec.run_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	spec.simulation = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	spec.write_decisions = true;
	solver_options(&spec.opt, NULL);
	kaireon_check_tenant_access(spec.tenant_id);
	kaireon_progress_start("run_campaign", spec.tenant_id, -1);

	/* connected from the caller's context: SPI_returntuple copies the result row there */
	MemoryContextSwitchTo(old);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(callcxt);
	cp.spec = &spec;
	cp.cfg = kaireon_config_get(spec.tenant_id);
	cp.cfg_version = cp.cfg->version;

	/* the run, locked for the duration (consecutive run numbers) */
	run = load_run(spec.tenant_id, spec.run_id, true, "Pass the id of a kaireon.runs row of the tenant.");
	status = kj_str(run, "status");
	if (strcmp(status, "archived") == 0 || strcmp(status, "paused") == 0 ||
		(strcmp(status, "draft") == 0 && !spec.simulation))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("run \"%s\" is %s", spec.run_id, status),
				 errhint("Only active or completed runs execute (a draft run may be simulated: simulation => true).")));
	if (kj_str(run, "decision_flow_id") != NULL && kj_str(run, "flow_key") == NULL)
		unknown(psprintf("the decision flow of run \"%s\" is deleted", spec.run_id),
				"Point the run at an existing decision flow.");
	spec.flow_key = kj_str(run, "flow_key");
	spec.segment_id = kj_str(run, "segment_id");
	spec.customer_query = kj_str(run, "customer_query");
	spec.channels = kj_array(run, "channel_ids");
	spec.max_offers = (int) kj_num(run, "max_offers", 1);
	spec.limits = json_object_get(run, "volume_constraints");
	prepare(&cp);
	(void) run_guarded(&cp, list_first, &error);

	/* the campaign_runs row, before anything else is written */
	args[0] = CStringGetTextDatum(spec.tenant_id);
	args[1] = CStringGetTextDatum(spec.run_id);
	args[2] = BoolGetDatum(spec.simulation);
	/* times are parameters (the clock read here): Citus sends no volatile function to a shard */
	args[3] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (kspi_execute_with_args(
		"INSERT INTO kaireon.campaign_runs (tenant_id, campaign_id, run_number, status, is_simulation, started_at) "
		"SELECT $1, $2, coalesce(max(run_number), 0) + 1, 'running', $3, $4 "
		"  FROM kaireon.campaign_runs WHERE tenant_id = $1 AND campaign_id = $2 RETURNING id",
		4, start_types, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "kaireon: could not create the campaign run");
	cp.campaign_run_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	sum = error ? NULL : run_guarded(&cp, execute, &error);

	args[0] = CStringGetTextDatum(spec.tenant_id);
	args[1] = CStringGetTextDatum(cp.campaign_run_id);
	args[2] = BoolGetDatum(error == NULL);
	if (error)
	{
		args[3] = CStringGetTextDatum(error);
		nulls[4] = 'n';
	}
	else
	{
		nulls[3] = 'n';
		args[4] = JsonbPGetDatum(kj_to_jsonb(json_pack("{s:I,s:I,s:f,s:f,s:f,s:i,s:o}",
													  "customers", (json_int_t) cp.ncustomers,
													  "recommended", (json_int_t) cp.decisions,
													  "primal", cp.sol.primal, "dual", cp.sol.dual,
													  "gap", cp.sol.gap, "iterations", cp.sol.iterations,
													  "summary", sum)));
	}
	args[5] = CStringGetTextDatum(spec.run_id);
	args[6] = TimestampTzGetDatum(GetCurrentTimestamp());
	/* two statements: Citus sends each to the tenant's shard (a modifying CTE it plans apart) */
	if (error == NULL &&
		kspi_execute_with_args("UPDATE kaireon.runs SET last_run_at = $2 WHERE tenant_id = $1 AND id = $3",
							   3, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TEXTOID},
							   (Datum[]) {args[0], args[6], args[5]}, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "kaireon: could not mark the run");
	if (kspi_execute_with_args(
		"UPDATE kaireon.campaign_runs SET "
		"  status = CASE WHEN $3 THEN 'completed' ELSE 'failed' END, "
		"  error = $4, completed_at = $7, "
		"  total_customers = coalesce(($5 ->> 'customers')::bigint, 0), "
		"  processed = coalesce(($5 ->> 'customers')::bigint, 0), "
		"  recommended = coalesce(($5 ->> 'recommended')::bigint, 0), "
		"  primal_value = ($5 ->> 'primal')::float8, dual_bound = ($5 ->> 'dual')::float8, "
		"  duality_gap = ($5 ->> 'gap')::float8, iterations = coalesce(($5 ->> 'iterations')::int, 0), "
		"  summary = coalesce($5 -> 'summary', '{}') "
		"WHERE tenant_id = $1 AND id = $2 RETURNING *",
		7, types, args, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "kaireon: could not finish the campaign run");
	result = return_row();
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	kaireon_progress_end();
	PG_RETURN_DATUM(result);
}

/* A string from an options object, checked. */
static const char *
opt_string(json_t *conf, const char *key)
{
	json_t	   *v = json_object_get(conf, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("config.%s must be a string, not %s", key, kj_type_name(v)),
				 errhint("See kaireon.simulate in docs/arbitration.md.")));
	return json_string_value(v);
}

/*
 * kaireon.simulate(tenant_id, run_id, decision_flow_key, segment_id,
 * sample_size, config, name): a what-if campaign over a sample of customers;
 * writes only its kaireon.simulation_runs row, which it returns.
 */
Datum
kaireon_simulate(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {
		"channelIds", "maxOffers", "customerQuery", "volumeConstraints", "tolerance", "maxIterations", NULL
	};
	MemoryContext callcxt,
				old;
	Campaign	cp;
	CampaignSpec spec;
	json_t	   *conf,
			   *run = NULL,
			   *sum;
	char	   *error;
	const char *key;
	json_t	   *v;
	Oid			types[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, JSONBOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum		args[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *sim_id;
	Datum		result;

	require(fcinfo, 0, "tenant_id");
	memset(&spec, 0, sizeof(spec));
	memset(&cp, 0, sizeof(cp));
	callcxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon simulation", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);
	spec.tenant_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	spec.run_id = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	spec.flow_key = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	spec.segment_id = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	spec.sample_size = PG_ARGISNULL(4) ? 1000 : PG_GETARG_INT32(4);
	conf = PG_ARGISNULL(5) ? json_object() : kj_from_jsonb(PG_GETARG_JSONB_P(5), "config");
	spec.simulation = true;
	spec.write_decisions = false;
	if (spec.sample_size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("sample_size must be at least 1, not " INT64_FORMAT, spec.sample_size),
				 errhint("Simulate over a sample of at least one customer.")));
	if (!json_is_object(conf))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("config must be a JSON object, not %s", kj_type_name(conf)),
				 errhint("Pass {\"channelIds\": [...], \"maxOffers\": 1, ...}.")));
	json_object_foreach(conf, key, v)
	{
		bool		ok = false;

		for (int i = 0; allowed[i]; i++)
			if (strcmp(allowed[i], key) == 0)
				ok = true;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("config has an unknown key \"%s\"", key),
					 errhint("Known keys: channelIds, maxOffers, customerQuery, volumeConstraints, tolerance, maxIterations.")));
	}
	solver_options(&spec.opt, conf);
	kaireon_check_tenant_access(spec.tenant_id);
	kaireon_progress_start("simulate", spec.tenant_id, -1);

	/* connected from the caller's context: SPI_returntuple copies the result row there */
	MemoryContextSwitchTo(old);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(callcxt);
	cp.spec = &spec;
	cp.cfg = kaireon_config_get(spec.tenant_id);
	cp.cfg_version = cp.cfg->version;

	/* a run supplies what the arguments leave out */
	if (spec.run_id != NULL)
	{
		run = load_run(spec.tenant_id, spec.run_id, false, "Pass the id of a kaireon.runs row of the tenant, or none.");
		if (spec.flow_key == NULL)
			spec.flow_key = kj_str(run, "flow_key");
		if (spec.segment_id == NULL)
			spec.segment_id = kj_str(run, "segment_id");
	}
	spec.customer_query = opt_string(conf, "customerQuery");
	if (spec.customer_query == NULL && spec.segment_id == NULL && run != NULL)
		spec.customer_query = kj_str(run, "customer_query");
	spec.channels = json_object_get(conf, "channelIds");
	if (spec.channels != NULL && !json_is_array(spec.channels))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("config.channelIds must be an array of channel ids, not %s", kj_type_name(spec.channels)),
				 errhint("Pass {\"channelIds\": [\"email\"]}.")));
	if (spec.channels == NULL && run != NULL)
		spec.channels = kj_array(run, "channel_ids");
	v = json_object_get(conf, "maxOffers");
	if (v != NULL && !(json_is_number(v) && json_number_value(v) == floor(json_number_value(v)) &&
					   json_number_value(v) >= 1 && json_number_value(v) <= 50))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("config.maxOffers must be an integer from 1 to 50"),
				 errhint("Ask for between 1 and 50 offers per customer.")));
	spec.max_offers = v ? (int) json_number_value(v) : run ? (int) kj_num(run, "max_offers", 1) : 1;
	spec.limits = json_object_get(conf, "volumeConstraints");
	if (spec.limits != NULL)
		kaireon_validate_config(KCONF_RUN_VOLUME_CONSTRAINTS, NULL, spec.limits, "config.volumeConstraints");
	else if (run != NULL)
		spec.limits = json_object_get(run, "volume_constraints");
	prepare(&cp);
	(void) run_guarded(&cp, list_first, &error);

	args[0] = CStringGetTextDatum(spec.tenant_id);
	args[1] = PG_ARGISNULL(6) ? (Datum) 0 : PointerGetDatum(PG_GETARG_TEXT_PP(6));
	nulls[1] = PG_ARGISNULL(6) ? 'n' : ' ';
	if (spec.segment_id)
		args[2] = CStringGetTextDatum(spec.segment_id);
	else
		nulls[2] = 'n';
	if (spec.flow_key)
		args[3] = CStringGetTextDatum(spec.flow_key);
	else
		nulls[3] = 'n';
	args[4] = Int32GetDatum((int32) spec.sample_size);
	args[5] = JsonbPGetDatum(kj_to_jsonb(conf));
	/* times are parameters (the clock read here): Citus sends no volatile function to a shard */
	nulls[6] = nulls[7] = 'n';	/* (not used here: null, so no one reads them) */
	args[8] = TimestampTzGetDatum(GetCurrentTimestamp());
	if (kspi_execute_with_args(
		"INSERT INTO kaireon.simulation_runs (tenant_id, name, segment_id, decision_flow_key, sample_size, config, "
		"  status, started_at) VALUES ($1, $2, $3, $4, $5, $6, 'running', $9) RETURNING id",
		9, types, args, nulls, false, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "kaireon: could not create the simulation run");
	sim_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	cp.campaign_run_id = sim_id;

	sum = error ? NULL : run_guarded(&cp, execute, &error);

	memset(nulls, ' ', sizeof(nulls));
	memset(args, 0, sizeof(args));
	args[0] = CStringGetTextDatum(spec.tenant_id);
	args[1] = CStringGetTextDatum(sim_id);
	args[8] = TimestampTzGetDatum(GetCurrentTimestamp());
	for (int k = 2; k < 6; k++)
		nulls[k] = 'n';
	if (error)
	{
		args[6] = CStringGetTextDatum(error);
		nulls[7] = 'n';
	}
	else
	{
		nulls[6] = 'n';
		json_object_set_new(sum, "customers", json_integer(cp.ncustomers));
		json_object_set_new(sum, "recommended", json_integer(cp.decisions));
		json_object_set_new(sum, "primalValue", json_real(cp.sol.primal));
		json_object_set_new(sum, "dualBound", json_real(cp.sol.dual));
		json_object_set_new(sum, "dualityGap", json_real(cp.sol.gap));
		json_object_set_new(sum, "iterations", json_integer(cp.sol.iterations));
		args[7] = JsonbPGetDatum(kj_to_jsonb(sum));
	}
	if (kspi_execute_with_args(
		"UPDATE kaireon.simulation_runs SET status = CASE WHEN $7 IS NULL THEN 'completed' ELSE 'failed' END, "
		"  error = $7, results = coalesce($8, '{}'), completed_at = $9 "
		"WHERE tenant_id = $1 AND id = $2 RETURNING *",
		9, types, args, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "kaireon: could not finish the simulation run");
	result = return_row();
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	kaireon_progress_end();
	PG_RETURN_DATUM(result);
}
