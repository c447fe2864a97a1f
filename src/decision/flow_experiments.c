/*
 * flow_experiments.c
 *	  Flow A/B tests (docs/lift.md, "Flow A/B tests"): a decision flow whose
 *	  configuration names an experiment (flowExperiment) hands each customer
 *	  to one of the experiment's arms, a decision flow, and the arm's flow
 *	  decides.
 *
 * Protocol.  The arms and weights are compiled with the configuration
 * (config/compile.c, KFlowExperiment); a tenant whose flows name no experiment
 * does nothing here.  Per request, after the customer's decision lock is
 * taken (identity.c: recording decisions for one customer run one after the
 * other), one indexed read of variant_assignments finds the customer's arms
 * of every experiment the request's flows enter.  A customer without one
 * gets the arm kaireon_split_arm gives (scoring/experiment.c, the one rule
 * kaireon.assign_variant uses too) and, unless it is a dry run, the
 * assignment is written (INSERT ... ON CONFLICT, once per customer and
 * experiment; an expired row is replaced as assign_variant does).  A dry
 * run reads an existing assignment, else computes the arm without writing
 * it.  Only a running experiment assigns:
 * otherwise, or when the stored arm is not a runnable flow of the experiment
 * now, the flow that names the experiment decides itself.
 */
#include "postgres.h"

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "util/datum.h"
#include "util/spi.h"
#include "decision/decision.h"
#include "scoring/scoring.h"

/* The index of an arm by name, or -1. */
static int
find_arm(const KFlowExperiment *e, const char *name)
{
	for (int k = 0; k < e->narms; k++)
		if (strcmp(e->arms[k], name) == 0)
			return k;
	return -1;
}

/*
 * The customer's stored arms of the experiments (one indexed read):
 * stored[x] is the arm's name for each experiment index x, or NULL.
 */
static void
read_assignments(const KTenantConfig *cfg, const char *customer_id, const bool *wanted, const char **stored)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		args[3];
	Datum	   *keys = palloc(sizeof(Datum) * cfg->nflow_experiments);
	int			n = 0;

	for (int x = 0; x < cfg->nflow_experiments; x++)
		if (wanted[x])
			keys[n++] = CStringGetTextDatum(cfg->flow_experiments[x].key);
	if (plan == NULL)
		plan = kspi_prepare_keep("SELECT a.experiment_key, a.variant_name FROM kaireon.variant_assignments a "
								 " WHERE a.tenant_id = $1 AND a.customer_id = $2 AND a.experiment_key = ANY ($3) "
								 "   AND (a.expires_at IS NULL OR a.expires_at > now())",
								 3, types);
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = CStringGetTextDatum(customer_id);
	args[2] = kd_array(keys, NULL, n, TEXTOID);
	if (kspi_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the flow experiment assignments failed");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *key = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

		for (int x = 0; x < cfg->nflow_experiments; x++)
			if (wanted[x] && strcmp(cfg->flow_experiments[x].key, key) == 0)
				stored[x] = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
	}
}

/*
 * Write a customer's new assignment; returns the arm stored, which is a
 * concurrent writer's when one was first (an assign_variant call: decisions
 * for one customer hold its lock).
 */
static const char *
store_assignment(const KTenantConfig *cfg, const char *customer_id, const char *key, const char *arm)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr read_plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];

	if (plan == NULL)
		plan = kspi_prepare_keep(
			"INSERT INTO kaireon.variant_assignments AS a (tenant_id, customer_id, experiment_key, variant_name) "
			"VALUES ($1, $2, $3, $4) "
			"ON CONFLICT ON CONSTRAINT variant_assignments_tenant_id_experiment_key_customer_id_key "
			"DO UPDATE SET variant_name = EXCLUDED.variant_name, assigned_at = now(), expires_at = NULL, "
			"              updated_at = now() "
			"      WHERE a.expires_at IS NOT NULL AND a.expires_at <= now() "
			"RETURNING a.variant_name",
			4, types);
	if (read_plan == NULL)
		read_plan = kspi_prepare_keep("SELECT a.variant_name FROM kaireon.variant_assignments a "
									  " WHERE a.tenant_id = $1 AND a.customer_id = $2 AND a.experiment_key = $3",
									  3, types);
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = CStringGetTextDatum(customer_id);
	args[2] = CStringGetTextDatum(key);
	args[3] = CStringGetTextDatum(arm);
	if (kspi_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "kaireon: recording the flow experiment assignment failed");
	if (SPI_processed == 1)
		return arm;
	if (kspi_execute_plan(read_plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading the flow experiment assignment failed");
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * Replace each placement's flow (flows[0..n)) by its arm's when the flow
 * enters a running flow A/B test; note the arms taken in res->flow_arms
 * ({experiment, arm, flow, placementId}).  placements: the request's
 * placement ids (n of them), or NULL for one request without placement.
 */
void
kaireon_flow_arms(KDecideResult *res, KDecideArgs *args, int *flows, int n, json_t *placements)
{
	const KTenantConfig *cfg = res->req->cfg;
	bool	   *wanted;
	const char **stored;
	bool		any = false;

	res->flow_arms = json_array();
	if (cfg->nflow_experiments == 0)
		return;
	wanted = palloc0(sizeof(bool) * cfg->nflow_experiments);
	stored = palloc0(sizeof(char *) * cfg->nflow_experiments);
	for (int i = 0; i < n; i++)
	{
		int			x = cfg->flows[flows[i]].flow_experiment;

		if (x >= 0 && cfg->flow_experiments[x].running && cfg->flow_experiments[x].narms > 0)
			wanted[x] = any = true;
	}
	if (!any)
		return;
	read_assignments(cfg, args->customer_id, wanted, stored);
	for (int x = 0; x < cfg->nflow_experiments; x++)
	{
		const KFlowExperiment *e = &cfg->flow_experiments[x];

		if (!wanted[x] || stored[x] != NULL)
			continue;
		stored[x] = e->arms[kaireon_split_arm(e->key, args->customer_id, e->weights, e->narms, e->total)];
		if (!args->dry_run)
			stored[x] = store_assignment(cfg, args->customer_id, e->key, stored[x]);
	}
	for (int i = 0; i < n; i++)
	{
		int			x = cfg->flows[flows[i]].flow_experiment;
		int			k,
					arm_flow;

		if (x < 0 || !wanted[x])
			continue;
		k = find_arm(&cfg->flow_experiments[x], stored[x]);
		arm_flow = k >= 0 ? cfg->flow_experiments[x].arm_flows[k] : -1;
		/* an arm that is no runnable flow now: the flow naming the experiment decides */
		if (arm_flow >= 0 && cfg->flows[arm_flow].runnable)
			flows[i] = arm_flow;
		json_array_append_new(res->flow_arms,
							  json_pack("{s:s,s:s,s:s,s:s?}", "experiment", cfg->flow_experiments[x].key,
										"arm", stored[x], "flow", cfg->flows[flows[i]].key, "placementId",
										placements ? json_string_value(json_array_get(placements, i)) : NULL));
	}
}
