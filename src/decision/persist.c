/*
 * decision/persist.c
 *	  Step 11 of recommend: writing the interaction rows of the decisions
 *	  (and implicit impressions), the 'control' rows of placements a control
 *	  group left empty (docs/lift.md), and the sampled decision trace with its
 *	  policy snapshot.  Everything happens in the caller's transaction,
 *	  through plans prepared once per backend.  The cap units of selected
 *	  candidates are taken before (caps.c).
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/guc.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "util/ids.h"
#include "util/datum.h"
#include "util/spi.h"
#include "arbitration/hooks.h"
#include "decision/decision.h"
#include "decision/history_write.h"

static SPIPlanPtr history_plan = NULL;
static SPIPlanPtr control_plan = NULL;
static SPIPlanPtr trace_plan = NULL;
static SPIPlanPtr snapshot_plan = NULL;

/* Prepare and keep a plan once per backend. */
static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *types)
{
	if (*slot == NULL)
		*slot = kspi_prepare_keep(sql, nargs, types);
	return *slot;
}

/* A jsonb datum from a jansson value. */
static Datum
jsonb_datum(const json_t *value)
{
	return JsonbPGetDatum(kj_to_jsonb(value));
}

/*
 * The decisions' rows written without the statement (decision/history_write.c),
 * when no row names a model (the statement looks its version up); the session
 * still needs SELECT on the columns of algorithm_models the statement's
 * lookup reads, which the statement's executor checks for every row (else
 * the statement runs and raises).  v and vnulls are the statement's scalar
 * parameters, cols and nulls its 13 row columns.  false: nothing written,
 * the statement runs.
 */
static bool
record_directly(const Datum *v, const char *vnulls, Datum **cols, bool **nulls, int n)
{
	static const char *const names[22] = {"tenant_id", "customer_id", "recommendation_id", "channel_id",
		"context", "lambda_version", "policy_version_hash", "occurred_at", "model_version",
		"id", "interaction_type", "rank", "offer_id", "creative_id", "placement_id", "decision_flow_id",
		"score", "propensity", "model_key", "selection_probability", "arbitration_arm",
	"arbitration_profile_id"};
	static const Oid types[22] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT8OID, TEXTOID,
		TIMESTAMPTZOID, INT4OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	FLOAT8OID, FLOAT8OID, TEXTOID, FLOAT8OID, INT4OID, TEXTOID};
	/* the columns of algorithm_models the statement reads */
	static const char *const model_columns[3] = {"version", "tenant_id", "key"};
	/* the statement's scalar parameters ($1-$5, $19, $20) for the first seven names */
	static const int scalar[7] = {0, 1, 2, 3, 4, 18, 19};
	Datum	   *values[22];
	bool	   *isnull[22];
	KHistoryRows rows;
	uint64		inserted;

	for (int r = 0; r < n; r++)
		if (!nulls[9][r])
			return false;		/* model_key: the statement looks its version up */
	for (int c = 0; c < 9; c++)
	{
		values[c] = palloc(sizeof(Datum) * n);
		isnull[c] = palloc(sizeof(bool) * n);
		for (int r = 0; r < n; r++)
		{
			if (c < 7)
			{
				values[c][r] = v[scalar[c]];
				isnull[c][r] = vnulls[scalar[c]] == 'n';
			}
			else if (c == 7)
			{
				values[c][r] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* now() */
				isnull[c][r] = false;
			}
			else
			{
				values[c][r] = (Datum) 0;	/* model_version: no model */
				isnull[c][r] = true;
			}
		}
	}
	for (int c = 0; c < 13; c++)
	{
		values[9 + c] = cols[c];
		isnull[9 + c] = nulls[c];
	}
	rows.ncols = 22;
	rows.names = names;
	rows.types = types;
	rows.values = values;
	rows.nulls = isnull;
	rows.nrows = n;
	rows.read_table = "algorithm_models";
	rows.read_columns = model_columns;
	rows.nread_columns = 3;
	if (!kaireon_history_insert(&rows, &inserted))
		return false;
	if (inserted != (uint64) n)
		elog(ERROR, "kaireon: could not record the decisions");
	return true;
}

/*
 * Write the decisions in one statement: an interaction_history row of type
 * recommendation per decision (with rank and recommendation id), and an
 * impression row when the channel records impressions implicitly.  (One
 * multi-row INSERT: a partition's constraints and the executor are set up
 * once for all the rows, not once per row.)
 */
void
kaireon_record_decisions(KDecideResult *res, KDecideArgs *args)
{
	static Oid	types[20] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
		TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, TEXTARRAYOID,
	FLOAT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, INT8OID, TEXTOID};
	const KRequest *req = res->req;
	bool		implicit = req->cfg->channels[req->channel].implicit_impressions;
	int			n = res->ndecisions * (implicit ? 2 : 1);
	Datum	   *cols[13];
	bool	   *nulls[13];
	Datum		v[20];
	char		vnulls[20];
	int64		lambda_version;
	int			r = 0;
	SPIPlanPtr	plan;

	if (n == 0)
		return;
	for (int c = 0; c < 13; c++)
	{
		cols[c] = palloc(sizeof(Datum) * n);
		nulls[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < res->ndecisions; i++)
	{
		const KDecision *d = &res->decisions[i];

		for (int k = 0; k < (implicit ? 2 : 1); k++, r++)
		{
			cols[0][r] = CStringGetTextDatum(k == 0 ? d->interaction_id : kaireon_new_uuid());
			cols[1][r] = CStringGetTextDatum(k == 0 ? "recommendation" : "impression");
			cols[2][r] = Int32GetDatum(d->rank);
			cols[3][r] = CStringGetTextDatum(req->cfg->offers[d->cand->offer].id);
			cols[4][r] = CStringGetTextDatum(req->cfg->creatives[d->cand->creative].id);
			if (d->placement_id)
				cols[5][r] = CStringGetTextDatum(d->placement_id);
			else
				nulls[5][r] = true;
			cols[6][r] = CStringGetTextDatum(req->cfg->flows[d->flow].id);
			cols[7][r] = Float8GetDatum(d->cand->score);
			if (kaireon_scored_by_propensity(&req->cfg->flows[d->flow], d->cand))
				cols[8][r] = Float8GetDatum(d->cand->propensity);
			else
				nulls[8][r] = true;
			if (d->model_key)
				cols[9][r] = CStringGetTextDatum(d->model_key);
			else
				nulls[9][r] = true;
			/* for off-policy evaluation: the stochastic policy's probability, arm and profile */
			cols[10][r] = Float8GetDatum(d->selection_probability);
			nulls[10][r] = !(d->selection_probability > 0);
			cols[11][r] = Int32GetDatum(d->arm);
			nulls[11][r] = d->arm < 0;
			if (d->profile_id)
				cols[12][r] = CStringGetTextDatum(d->profile_id);
			else
				nulls[12][r] = true;
		}
	}
	v[0] = CStringGetTextDatum(req->cfg->tenant_id);
	v[1] = CStringGetTextDatum(args->customer_id);
	v[2] = CStringGetTextDatum(res->recommendation_id);
	v[3] = CStringGetTextDatum(req->channel_id);
	v[4] = jsonb_datum(req->cust->context);
	memset(vnulls, ' ', sizeof(vnulls));
	if (karb_lambda_version(req, &lambda_version))
		v[18] = Int64GetDatum(lambda_version);
	else
		vnulls[18] = 'n';
	v[19] = CStringGetTextDatum(req->cfg->policy_hash);
	if (record_directly(v, vnulls, cols, nulls, n))
		return;
	v[5] = kd_array(cols[0], nulls[0], n, TEXTOID);
	v[6] = kd_array(cols[1], nulls[1], n, TEXTOID);
	v[7] = kd_array(cols[2], nulls[2], n, INT4OID);
	v[8] = kd_array(cols[3], nulls[3], n, TEXTOID);
	v[9] = kd_array(cols[4], nulls[4], n, TEXTOID);
	v[10] = kd_array(cols[5], nulls[5], n, TEXTOID);
	v[11] = kd_array(cols[6], nulls[6], n, TEXTOID);
	v[12] = kd_array(cols[7], nulls[7], n, FLOAT8OID);
	v[13] = kd_array(cols[8], nulls[8], n, FLOAT8OID);
	v[14] = kd_array(cols[9], nulls[9], n, TEXTOID);
	v[15] = kd_array(cols[10], nulls[10], n, FLOAT8OID);
	v[16] = kd_array(cols[11], nulls[11], n, INT4OID);
	v[17] = kd_array(cols[12], nulls[12], n, TEXTOID);
	plan = keep_plan(&history_plan,
					 "INSERT INTO kaireon.interaction_history (tenant_id, customer_id, recommendation_id, "
					 "  channel_id, context, occurred_at, id, interaction_type, rank, offer_id, creative_id, "
					 "  placement_id, decision_flow_id, score, propensity, model_key, selection_probability, "
					 "  arbitration_arm, arbitration_profile_id, lambda_version, policy_version_hash, model_version) "
					 "SELECT $1, $2, $3, $4, $5, now(), u.*, $19, $20, "
					 "       (SELECT m.version FROM kaireon.algorithm_models m "
					 "         WHERE m.tenant_id = $1 AND m.key = u.model_key) "
					 "  FROM unnest($6::text[], $7::text[], $8::int[], $9::text[], $10::text[], $11::text[], "
					 "              $12::text[], $13::float8[], $14::float8[], $15::text[], $16::float8[], "
					 "              $17::int[], $18::text[]) "
					 "       AS u (id, interaction_type, rank, offer_id, creative_id, placement_id, decision_flow_id, "
					 "             score, propensity, model_key, selection_probability, arbitration_arm, "
					 "             arbitration_profile_id)",
					 20, types);
	if (kspi_execute_plan(plan, v, vnulls, false, 0) != SPI_OK_INSERT || SPI_processed != (uint64) n)
		elog(ERROR, "kaireon: could not record the decisions");
}

/*
 * Write one interaction_history row of type 'control' per placement a control
 * group left empty: no offer, no rank; or, when the flow has a control answer,
 * one per offer of the answer shown (offer, creative, rank).  Their context is
 * the request's with "controlGroup": {"scope", "percent"}.  kaireon.lift
 * counts these customers as the control group; caps, policies and respond
 * never read such rows.
 */
void
kaireon_record_controls(KDecideResult *res, KDecideArgs *args)
{
	static Oid	types[11] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
	TEXTOID, TEXTOID, INT4OID};
	const KRequest *req = res->req;
	const KTenantConfig *cfg = req->cfg;
	SPIPlanPtr	plan;

	if (res->ncontrols == 0)
		return;
	plan = keep_plan(&control_plan,
					 "INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, recommendation_id, "
					 "  channel_id, placement_id, decision_flow_id, context, offer_id, creative_id, rank, "
					 "  occurred_at, interaction_type) "
					 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), 'control')", 11, types);
	for (int i = 0; i < res->ncontrols; i++)
	{
		const KControl *c = &res->controls[i];
		json_t	   *ctx = json_deep_copy(req->cust->context);
		Datum		v[11];
		char		nulls[11];

		json_object_set_new(ctx, "controlGroup", json_pack("{s:s,s:f}", "scope", c->scope, "percent", c->percent));
		memset(nulls, ' ', sizeof(nulls));
		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[2] = CStringGetTextDatum(args->customer_id);
		v[3] = CStringGetTextDatum(res->recommendation_id);
		v[4] = CStringGetTextDatum(req->channel_id);
		if (c->placement_id)
			v[5] = CStringGetTextDatum(c->placement_id);
		else
			nulls[5] = 'n';
		v[6] = CStringGetTextDatum(cfg->flows[c->flow].id);
		v[7] = jsonb_datum(ctx);
		/* the row without offer (k = -1), or one row per offer of the control answer */
		for (int k = c->nanswer > 0 ? 0 : -1; k < c->nanswer; k++)
		{
			v[1] = CStringGetTextDatum(k < 0 ? c->interaction_id : c->answer_ids[k]);
			nulls[8] = nulls[9] = nulls[10] = k < 0 ? 'n' : ' ';
			if (k >= 0)
			{
				v[8] = CStringGetTextDatum(cfg->offers[c->answer_offers[k]].id);
				v[9] = CStringGetTextDatum(cfg->creatives[c->answer_creatives[k]].id);
				v[10] = Int32GetDatum(k + 1);
			}
			if (kspi_execute_plan(plan, v, nulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "kaireon: could not record the control group decision");
		}
	}
}

/* Write the decision trace and, once per hash, its policy snapshot. */
void
kaireon_record_trace(KDecideResult *res, KDecideArgs *args, double duration_ms)
{
	static Oid	snap_types[3] = {TEXTOID, TEXTOID, JSONBOID};
	static Oid	types[17] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
		INT8OID, INT8OID, INT8OID, INT8OID, INT8OID, JSONBOID, JSONBOID, TEXTOID, FLOAT8OID, BOOLOID};
	const KRequest *req = res->req;
	const KTenantConfig *cfg = req->cfg;
	Datum		sv[3];
	Datum		v[17];
	char		nulls[17];
	json_t	   *qual = json_array();
	json_t	   *scoring = json_array();
	json_t	   *selected = json_array();
	json_t	   *all = json_object();
	int64		sums[5] = {0};
	static const char *const keys[] = {"candidates", "afterQualification", "afterSuppression",
	"afterContactPolicy", "final"};
	const char *request_id = GetConfigOption("kaireon.request_id", true, false);
	size_t		i;
	json_t	   *f;

	sv[0] = CStringGetTextDatum(cfg->tenant_id);
	sv[1] = CStringGetTextDatum(cfg->policy_hash);
	sv[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(cfg->policy_snapshot));
	if (kspi_execute_plan(keep_plan(&snapshot_plan,
								   "INSERT INTO kaireon.policy_snapshots (tenant_id, policy_version_hash, "
								   "  eligibility_policies, suppression_policies, guardrail_rules) "
								   "SELECT $1, $2, $3 -> 'eligibilityPolicies', $3 -> 'suppressionPolicies', "
								   "       $3 -> 'guardrailRules' "
								   "ON CONFLICT (tenant_id, policy_version_hash) DO NOTHING", 3, snap_types),
						 sv, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kaireon: could not record the policy snapshot");

	for (int k = 0; k < res->ndropped; k++)
	{
		const KCandidate *c = res->dropped[k];

		json_array_append_new(qual, json_pack("{s:s,s:s?,s:s,s:s}", "offerId", cfg->offers[c->offer].id,
											  "placementId", res->dropped_placement[k],
											  "stage", c->dropped_stage, "reason", c->dropped_reason));
	}
	for (int k = 0; k < res->ndecisions; k++)
	{
		const KDecision *d = &res->decisions[k];

		json_t	   *sr = json_pack("{s:s,s:f,s:o}", "offerId", cfg->offers[d->cand->offer].id,
									   "score", d->cand->score, "factors",
									   kaireon_factors_json(&cfg->flows[d->flow], d->cand));

		/* a degraded decision says which models fell back and why, as its explanation does */
		if (req->degraded != NULL)
			json_object_set(sr, "degradedScoring", req->degraded);
		json_array_append_new(scoring, sr);
		json_array_append_new(selected, json_pack("{s:i,s:s,s:s,s:s?}", "rank", d->rank,
												  "offerId", cfg->offers[d->cand->offer].id,
												  "creativeId", cfg->creatives[d->cand->creative].id,
												  "placementId", d->placement_id));
	}
	json_array_foreach(res->funnels, i, f)
		for (int k = 0; k < 5; k++)
		sums[k] += (int64) kj_num(f, keys[k], 0);
	(void) all;

	memset(nulls, ' ', sizeof(nulls));
	v[0] = CStringGetTextDatum(cfg->tenant_id);
	v[1] = CStringGetTextDatum((request_id && request_id[0]) ? request_id : res->recommendation_id);
	v[2] = CStringGetTextDatum(res->recommendation_id);
	v[3] = CStringGetTextDatum(args->customer_id);
	v[4] = CStringGetTextDatum(req->channel_id);
	if (json_array_size(args->placements) > 0)
		v[5] = CStringGetTextDatum(json_string_value(json_array_get(args->placements, 0)));
	else
		nulls[5] = 'n';
	v[6] = CStringGetTextDatum(cfg->flows[req->flow].id);
	for (int k = 0; k < 5; k++)
		v[7 + k] = Int64GetDatum(sums[k]);
	v[12] = jsonb_datum(json_pack("{s:o,s:o,s:O}", "qualification", qual, "scoring", scoring,
								  "funnel", res->funnels));
	v[13] = jsonb_datum(selected);
	v[14] = CStringGetTextDatum(cfg->policy_hash);
	v[15] = Float8GetDatum(duration_ms);
	v[16] = BoolGetDatum(req->degraded != NULL);
	if (kspi_execute_plan(keep_plan(&trace_plan,
								   "INSERT INTO kaireon.decision_traces (tenant_id, request_id, recommendation_id, "
								   "  customer_id, channel_id, placement_id, decision_flow_id, candidate_count, "
								   "  after_qualification, after_suppression, after_contact_policy, final_count, "
								   "  qualification_results, scoring_results, funnel, selected_offers, "
								   "  policy_version_hash, duration_ms, degraded_scoring) "
								   "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
								   "  $13 -> 'qualification', $13 -> 'scoring', $13 -> 'funnel', $14, $15, $16, $17)",
								   17, types),
						 v, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "kaireon: could not record the decision trace");
}
