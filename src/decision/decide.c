/*
 * decide.c
 *	  The recommend pipeline's request (spec section 4): the tenant's
 *	  configuration, the channel, placements and flow of each (step 1), the
 *	  customer's state read once, one placement after another
 *	  (kaireon_decide_placement, pipeline.c: steps 2 to 10), and, unless a
 *	  dry run, the recording of step 11 (persist.c).
 *
 * kaireon_decide runs inside its own SPI connection with every allocation of
 * its own in the caller's per-call memory context.  Configuration comes from
 * the per-backend cache (config/cache.c); the customer's state is read with
 * at most three prepared queries (customer.c); everything per candidate is
 * computation over those (rules.c, policies.c).
 *
 * Exactness under concurrency.  A recording decision first locks the
 * customer's row of kaireon.decision_locks until commit (identity.c, on the
 * canonical customer of the identifier given): two sessions deciding
 * for one customer run one after the other, and the second reads the history
 * the first wrote (or, under REPEATABLE READ, fails with a serialization
 * error), so per-customer caps never overshoot.  Volume
 * constraints and budgets are taken one unit at a time by a conditional
 * UPDATE when a candidate is selected (caps.c); the row lock serialises
 * racers and a rollback gives the unit back.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "portability/instr_time.h"
#include "utils/timestamp.h"

#include "util/ids.h"
#include "decision/decision.h"
#include "security/session.h"

/* Mandatory offers placed first per customer per day (spec section 4, step 10). */
#define KAIREON_MANDATORY_PER_DAY 5

/* ---- flow resolution (step 1) ---- */

/* Is a flow usable: published with a published version? */
static void
check_runnable(const KTenantConfig *cfg, int flow, const char *how)
{
	if (!cfg->flows[flow].runnable)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("decision flow \"%s\" (%s) is not published", cfg->flows[flow].key, how),
				 errhint("Publish it with kaireon.publish_decision_flow.")));
}

/*
 * The flow for a request: the explicit key, else the highest-priority route
 * of the channel and placement (a route without placement serves every
 * placement of its channel), else the tenant's default flow.
 */
static int
resolve_flow(const KTenantConfig *cfg, const char *flow_key, const char *channel_id, const char *placement_id)
{
	int			f;

	if (flow_key != NULL)
	{
		f = kaireon_find_flow(cfg, flow_key);
		if (f < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("decision flow \"%s\" does not exist for tenant \"%s\"", flow_key, cfg->tenant_id),
					 errhint("Pass the key of a kaireon.decision_flows row, or omit it to use the routes.")));
		check_runnable(cfg, f, "named by the request");
		return f;
	}
	for (int i = 0; i < cfg->nroutes; i++)
	{
		const KRoute *r = &cfg->routes[i];

		if (r->flow < 0 || strcmp(r->channel_id, channel_id) != 0)
			continue;
		if (r->placement_id != NULL && (placement_id == NULL || strcmp(r->placement_id, placement_id) != 0))
			continue;
		if (cfg->flows[r->flow].runnable)
			return r->flow;
	}
	if (cfg->default_flow >= 0)
	{
		check_runnable(cfg, cfg->default_flow, "the tenant's default");
		return cfg->default_flow;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("no decision flow serves channel \"%s\"%s%s for tenant \"%s\"", channel_id,
					placement_id ? " placement " : "", placement_id ? placement_id : "", cfg->tenant_id),
			 errhint("Add a flow route, mark a published flow as default, or name a flow in the request.")));
	return -1;
}

/* ---- the request, across its placements ---- */

/* Count of mandatory offers served to the customer today (UTC). */
static int
mandatory_served_today(const KRequest *req)
{
	TimestampTz day = req->day_start;
	int			n = 0;

	for (int i = 0; i < req->cust->nevents; i++)
		if (req->cust->events[i].type == KEV_RECOMMENDATION && req->cust->events[i].mandatory &&
			req->cust->events[i].at >= day)
			n++;
	return n;
}

/* Does a placement id (NULL: none) match a JSON one (null or absent: none)? */
static bool
same_placement(const char *placement_id, json_t *v)
{
	return placement_id == NULL ? !json_is_string(v) :
		json_is_string(v) && strcmp(placement_id, json_string_value(v)) == 0;
}

/*
 * The flow A/B test arm of each placement that took one, into its funnel
 * (debug output, traces) and its decisions' explanations: flowExperiment
 * {experiment, arm}.
 */
static void
note_flow_arms(KDecideResult *res)
{
	size_t		i,
				k;
	json_t	   *a,
			   *f;

	json_array_foreach(res->flow_arms, i, a)
	{
		json_t	   *pid = json_object_get(a, "placementId");
		json_t	   *note = json_pack("{s:O,s:O}", "experiment", json_object_get(a, "experiment"),
									 "arm", json_object_get(a, "arm"));

		json_array_foreach(res->funnels, k, f)
			if (same_placement(json_string_value(json_object_get(f, "placement")), pid))
			json_object_set(f, "flowExperiment", note);
		for (int d = 0; d < res->ndecisions; d++)
			if (res->decisions[d].explanation != NULL && same_placement(res->decisions[d].placement_id, pid))
				json_object_set(res->decisions[d].explanation, "flowExperiment", note);
		json_decref(note);
	}
}

/*
 * The whole pipeline for one request, across its placements, and, unless
 * dry_run, the recording of step 11, for a tenant the caller may act for.
 * Raises with a specific SQLSTATE on bad input before anything is written.
 */
static KDecideResult *
decide(KDecideArgs *args)
{
	MemoryContext mcxt = CurrentMemoryContext;
	KDecideResult *res = palloc0(sizeof(KDecideResult));
	KRequest   *req = palloc0(sizeof(KRequest));
	KTenantConfig *cfg;
	int			nplacements = json_array_size(args->placements);
	int		   *flows = palloc(sizeof(int) * Max(nplacements, 1));
	json_t	   *taken = NULL;
	int			mandatory_left;
	TimestampTz started = GetCurrentTimestamp();
	double		sample;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(mcxt);

	cfg = kaireon_config_get(args->tenant_id);
	/* the canonical customer of the identifier given, before anything reads it (identity.c) */
	kaireon_decide_identity(cfg, args);
	req->cfg = cfg;
	req->now = GetCurrentTransactionStartTimestamp();
	req->day_start = kaireon_period_start("day", req->now);
	req->week_start = kaireon_period_start("week", req->now);
	req->month_start = kaireon_period_start("month", req->now);
	req->channel_id = args->channel_id;
	req->channel = kaireon_find_channel(cfg, args->channel_id);
	args->channel_known = req->channel >= 0;
	if (req->channel < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist for tenant \"%s\"", args->channel_id, cfg->tenant_id),
				 errhint("Pass the id of a kaireon.channels row of the tenant.")));
	if (!cfg->channels[req->channel].active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" is inactive", args->channel_id),
				 errhint("Set its status to active to decide for it.")));
	for (int i = 0; i < nplacements; i++)
	{
		const char *pid = json_string_value(json_array_get(args->placements, i));
		int			p = kaireon_find_placement(cfg, pid);

		/* each listing is decided on its own: a repeated one would pass max_slots */
		for (int k = 0; k < i; k++)
			if (strcmp(json_string_value(json_array_get(args->placements, k)), pid) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("placement \"%s\" is listed twice (placements[%d] and placements[%d])", pid, k, i),
						 errhint("List each placement once; its max_slots (or its limit) says how many decisions it gets.")));
		if (p < 0 || strcmp(cfg->placements[p].channel_id, args->channel_id) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("placement \"%s\" does not exist in channel \"%s\" of tenant \"%s\"",
							pid, args->channel_id, cfg->tenant_id),
					 errhint("Pass the id of a kaireon.placements row of that channel.")));
		if (!cfg->placements[p].active)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("placement \"%s\" is inactive", pid),
					 errhint("Set its status to active to decide for it.")));
		flows[i] = resolve_flow(cfg, args->flow_key, args->channel_id, pid);
	}
	if (nplacements == 0)
		flows[0] = resolve_flow(cfg, args->flow_key, args->channel_id, NULL);

	res->req = req;
	res->recommendation_id = kaireon_new_uuid();
	res->decisions = palloc(sizeof(KDecision));
	res->dropped = palloc(sizeof(KCandidate *));
	res->dropped_placement = palloc(sizeof(char *));
	res->controls = palloc(sizeof(KControl));
	res->funnels = json_array();

	/* whether this decision is traced is drawn first: a traced one keeps its dropped candidates */
	if (!args->dry_run)
	{
		sample = pg_prng_double(&pg_global_prng_state);
		res->traced = args->force_trace || sample < cfg->trace_sample_rate;
		kaireon_lock_customer(cfg->tenant_id, args);	/* on the canonical customer (identity.c) */
	}
	/* flow A/B tests: a flow naming one hands the customer to its arm (flow_experiments.c) */
	kaireon_flow_arms(res, args, flows, Max(nplacements, 1), nplacements > 0 ? args->placements : NULL);
	res->placement_flows = flows;
	req->keep_reasons = args->debug || res->traced;
	req->list_matches = !args->matches_unread;
	req->cust = kaireon_load_customer(req, args->customer_id, args->context,
									  cfg->flows[flows[0]].customer_schema);
	req->rule_memo = palloc0(sizeof(int8) * Max(cfg->nrules, 1));
	req->rule_memo_why = palloc0(sizeof(char *) * Max(cfg->nrules, 1));
	req->qual_memo = palloc0(sizeof(struct KQualMemo *) * Max(cfg->nqual_classes, 1));
	req->policy_memo = palloc0(sizeof(int8) * Max(cfg->npolicies, 1));
	req->policy_memo_why = palloc0(sizeof(char *) * Max(cfg->npolicies, 1));
	req->policy_class_memo = palloc0(sizeof(struct KPolicyMemo *) * Max(cfg->npolicy_classes, 1));
	mandatory_left = KAIREON_MANDATORY_PER_DAY - mandatory_served_today(req);
	if (args->deduplicate)
		taken = json_object();

	if (nplacements == 0)
		kaireon_decide_placement(res, args, NULL, flows[0], taken, mandatory_left, 0);
	for (int i = 0; i < nplacements; i++)
	{
		int			before = res->ndecisions;

		kaireon_decide_placement(res, args, json_string_value(json_array_get(args->placements, i)), flows[i],
								 taken, mandatory_left, args->placement_limits ? args->placement_limits[i] : 0);
		for (int k = before; k < res->ndecisions; k++)
			if (res->decisions[k].cand->mandatory)
				mandatory_left--;
	}

	note_flow_arms(res);

	if (!args->dry_run)
	{
		kaireon_record_decisions(res, args);
		kaireon_record_controls(res, args);
		kaireon_log_shadow_scores(res, args->customer_id);
		if (res->traced)
			kaireon_record_trace(res, args, (double) (GetCurrentTimestamp() - started) / 1000.0);
	}

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	MemoryContextSwitchTo(mcxt);
	return res;
}

/*
 * Decide (decide() above), counted by the statistics (stats/stats.h) unless
 * it is a campaign's: the decision, its drops and latency, or its error.  A
 * tenant the caller may not act for is refused first, and not counted (its
 * id is the caller's to make up).
 */
KDecideResult *
kaireon_decide(KDecideArgs *args)
{
	KDecideResult *res;
	instr_time	start,
				elapsed;

	kaireon_check_tenant_access(args->tenant_id);
	if (args->batch)
		return decide(args);
	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		res = decide(args);
	}
	PG_CATCH();
	{
		/* under its channel once the configuration knows it: made-up ids must not fill the table */
		kaireon_stat_error(args->tenant_id, args->channel_known ? args->channel_id : NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	kaireon_stat_decision(args->tenant_id, args->channel_id, args->dry_run, &res->stat,
						  (int64) INSTR_TIME_GET_MICROSEC(elapsed));
	return res;
}
