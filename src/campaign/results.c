/*
 * campaign/results.c
 *	  A solved campaign's results (campaign.c runs it): writes the assignment
 *	  to kaireon.campaign_decisions and, unless a simulation, records each
 *	  decision in interaction_history with its delivery and the control
 *	  group's rows, takes the run's units of the budgets and volume
 *	  constraints, and summarizes the run.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "util/ids.h"
#include "util/datum.h"
#include "util/spi.h"
#include "arbitration/arbitration.h"
#include "arbitration/constraints.h"
#include "campaign/solver.h"
#include "decision/decision.h"
#include "stats/stats.h"
#include "campaign/results.h"

/* Rows written per INSERT of campaign decisions. */
#define CAMPAIGN_WRITE_BATCH 1000

/* Column buffers of campaign decisions waiting to be written. */
typedef struct Rows
{
	int			n;
	Datum		col[11][CAMPAIGN_WRITE_BATCH];
	bool		null[11][CAMPAIGN_WRITE_BATCH];
} Rows;

static void record_interactions(Campaign *cp, Rows *rows, Oid *types13, Datum *args13);

/*
 * Insert a batch of n rows from column arrays in one statement, and fail
 * unless it inserted all n (elog failure).  into is "INSERT INTO <table>
 * (<columns>) ".  On one server: into followed by select (an INSERT ...
 * SELECT FROM unnest() of the arrays), prepared once into *plan and kept.
 * When the tables are distributed (Citus): into, "VALUES " and one row per
 * element, row_fmt with %1$d standing for the row's number (its subscript in
 * every array); each row names the tenant ($1), so that Citus sends the
 * statement to the tenant's shard (an INSERT ... SELECT FROM unnest() it
 * would route row by row, which a delegated call may not).
 */
static void
insert_batch(bool distributed, SPIPlanPtr *plan, const char *into, const char *select,
			 const char *row_fmt, int nargs, Oid *types, Datum *args, int n, const char *failure)
{
	int			rc;

	if (!distributed)
	{
		if (*plan == NULL)
		{
			char	   *sql = psprintf("%s%s", into, select);

			*plan = kspi_prepare_keep(sql, nargs, types);
			pfree(sql);
		}
		rc = kspi_execute_plan(*plan, args, NULL, false, 0);
	}
	else
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "%sVALUES ", into);
		for (int r = 1; r <= n; r++)
		{
			if (r > 1)
				appendStringInfoString(&sql, ", ");
			appendStringInfo(&sql, row_fmt, r);
		}
		rc = kspi_execute_with_args(sql.data, nargs, types, args, NULL, false, 0);
		pfree(sql.data);
	}
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) n)
		elog(ERROR, "%s", failure);
}

/*
 * Write the buffered rows in one INSERT (insert_batch), with their
 * interactions unless a simulation.
 */
static void
flush_rows(Campaign *cp, Rows *rows)
{
	static const Oid elem[11] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID,
	FLOAT8OID, BOOLOID, TEXTOID, TEXTOID};
	static SPIPlanPtr plan = NULL;
	Oid			types[13];
	Datum		args[13];

	if (rows->n == 0)
		return;
	types[0] = TEXTOID;
	types[1] = TEXTOID;
	for (int c = 0; c < 11; c++)
		types[2 + c] = get_array_type(elem[c]);
	args[0] = CStringGetTextDatum(cp->spec->tenant_id);
	args[1] = CStringGetTextDatum(cp->campaign_run_id);
	for (int c = 0; c < 11; c++)
		args[2 + c] = kd_array(rows->col[c], rows->null[c], rows->n, elem[c]);
	insert_batch(cp->distributed, &plan,
				 "INSERT INTO kaireon.campaign_decisions (tenant_id, campaign_run_id, customer_id, rank, offer_id, "
				 "  creative_id, channel_id, decision_flow_id, score, arbitrated_value, mandatory, recommendation_id, "
				 "  interaction_id) ",
				 "SELECT $1, $2, u.* FROM unnest($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS u",
				 "($1, $2, $3[%1$d], $4[%1$d], $5[%1$d], $6[%1$d], $7[%1$d], $8[%1$d], $9[%1$d], $10[%1$d], "
				 "$11[%1$d], $12[%1$d], $13[%1$d])",
				 13, types, args, rows->n, "kaireon: could not write the campaign decisions");
	cp->written += rows->n;
	kaireon_progress_update("writing", cp->written, cp->selected);
	if (!cp->spec->simulation)
		record_interactions(cp, rows, types, args);
	rows->n = 0;
}

/* Order of a customer's assigned candidates: forced first, then value, then offer id. */
static int
assigned_cmp(const void *a, const void *b, void *arg)
{
	const Campaign *cp = (const Campaign *) arg;
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	if (cp->prob.forced[x] != cp->prob.forced[y])
		return cp->prob.forced[x] ? -1 : 1;
	if (cp->prob.value[x] != cp->prob.value[y])
		return cp->prob.value[x] > cp->prob.value[y] ? -1 : 1;
	return strcmp(cp->cfg->offers[cp->prob.pair[x] / cp->nch].id, cp->cfg->offers[cp->prob.pair[y] / cp->nch].id);
}

/* Per-offer counts of the assignment (for the summary). */
static json_t *
offer_counts(const Campaign *cp)
{
	int64	   *counts = palloc0(sizeof(int64) * Max(cp->cfg->noffers, 1));
	json_t	   *out = json_object();

	for (int64 c = 0; c < cp->prob.ncand; c++)
		if (cp->sol.selected[c])
			counts[cp->prob.pair[c] / cp->nch]++;
	for (int o = 0; o < cp->cfg->noffers; o++)
		if (counts[o] > 0)
			json_object_set_new(out, cp->cfg->offers[o].id, json_integer(counts[o]));
	return out;
}

/*
 * Write the assignment to campaign_decisions (ranked per customer), with a
 * recommendation id per customer and, unless simulating, an interaction id per
 * decision.
 */
void
kcamp_write_decisions(Campaign *cp)
{
	Rows	   *rows = palloc0(sizeof(Rows));
	int64	   *mine = palloc(sizeof(int64) * Max(cp->prob.m, 1) * 2 + sizeof(int64));
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon campaign rows", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	double	   *pen = palloc0(sizeof(double) * Max(cp->prob.npairs, 1));

	for (int q = 0; q < cp->prob.npairs; q++)
		for (int k = 0; k < cp->prob.nk; k++)
			pen[q] += cp->sol.lambda[k] * cp->prob.cost[(int64) q * cp->prob.nk + k];

	old = MemoryContextSwitchTo(tmp);
	for (int i = 0; i < cp->prob.ncust; i++)
	{
		int			n = 0;
		char		rec[64];	/* (on the stack: a flush within the customer resets tmp) */

		for (int64 c = cp->prob.start[i]; c < cp->prob.start[i + 1]; c++)
			if (cp->sol.selected[c])
				mine[n++] = c;
		if (n == 0)
			continue;
		qsort_arg(mine, n, sizeof(int64), assigned_cmp, cp);
		strlcpy(rec, kaireon_new_uuid(), sizeof(rec));
		for (int r = 0; r < n; r++)
		{
			int64		c = mine[r];
			int			offer = cp->prob.pair[c] / cp->nch;
			int			ch = cp->prob.pair[c] % cp->nch;
			int			k = rows->n;
			int			flow = cp->customer_flow[(int64) i * cp->nch + ch];

			rows->col[0][k] = CStringGetTextDatum(cp->customers[i]);
			rows->col[1][k] = Int32GetDatum(r + 1);
			rows->col[2][k] = CStringGetTextDatum(cp->cfg->offers[offer].id);
			rows->col[3][k] = CStringGetTextDatum(cp->cfg->creatives[cp->prob.tag[c]].id);
			rows->col[4][k] = CStringGetTextDatum(cp->cfg->channels[cp->channel[ch]].id);
			if (flow >= 0)
				rows->col[5][k] = CStringGetTextDatum(cp->cfg->flows[flow].id);
			rows->null[5][k] = flow < 0;
			rows->col[6][k] = Float8GetDatum(cp->prob.value[c]);
			rows->col[7][k] = Float8GetDatum(cp->prob.value[c] - pen[cp->prob.pair[c]]);
			rows->col[8][k] = BoolGetDatum(cp->prob.forced[c]);
			rows->col[9][k] = CStringGetTextDatum(rec);
			if (!cp->spec->simulation)
				rows->col[10][k] = CStringGetTextDatum(kaireon_new_uuid());
			rows->null[10][k] = cp->spec->simulation;
			rows->n++;
			cp->decisions++;
			if (rows->n == CAMPAIGN_WRITE_BATCH)
			{
				MemoryContextSwitchTo(old);
				flush_rows(cp, rows);
				MemoryContextReset(tmp);
				MemoryContextSwitchTo(tmp);
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
	flush_rows(cp, rows);
	MemoryContextDelete(tmp);
}

/*
 * Record a batch of the run's decisions as interactions, from the same
 * column arrays as the campaign_decisions rows (flush_rows's argument order:
 * $3 customer, $4 rank, $5 offer, $6 creative, $7 channel, $8 flow, $9
 * score, $12 recommendation, $13 interaction; $14 the run, $15 the time),
 * in one INSERT (insert_batch).
 */
static void
record_interactions(Campaign *cp, Rows *rows, Oid *types13, Datum *args13)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[15];
	Datum		args[15];

	memcpy(types, types13, sizeof(Oid) * 13);
	memcpy(args, args13, sizeof(Datum) * 13);
	types[13] = TEXTOID;
	types[14] = TIMESTAMPTZOID;
	args[13] = CStringGetTextDatum(cp->spec->run_id);
	args[14] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	insert_batch(cp->distributed, &plan,
				 "INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, "
				 "  recommendation_id, rank, offer_id, creative_id, channel_id, decision_flow_id, campaign_id, score, "
				 "  context) ",
				 "SELECT $1, u.interaction_id, $15, u.customer_id, 'recommendation', u.recommendation_id, u.rank, "
				 "       u.offer_id, u.creative_id, u.channel_id, u.decision_flow_id, $14, u.score, "
				 "       jsonb_build_object('campaignRunId', $2::text) "
				 "  FROM unnest($3, $4, $5, $6, $7, $8, $9, $12, $13) "
				 "       AS u (customer_id, rank, offer_id, creative_id, channel_id, decision_flow_id, score, "
				 "             recommendation_id, interaction_id)",
				 "($1, $13[%1$d], $15, $3[%1$d], 'recommendation', $12[%1$d], $4[%1$d], $5[%1$d], $6[%1$d], "
				 "$7[%1$d], $8[%1$d], $14, $9[%1$d], jsonb_build_object('campaignRunId', $2::text))",
				 15, types, args, rows->n, "kaireon: could not record the campaign's interactions");

	/*
	 * a recorded decision of a campaign is sent: its channel_deliveries row
	 * and channel.delivery outbox event through the one home,
	 * kaireon.create_delivery (idempotency key: the decision's interaction id)
	 */
	if (kspi_execute_with_args("SELECT count(kaireon.create_delivery($1, u.id, payload => jsonb_build_object('campaignRunId', $2))) "
							   "  FROM unnest($3) AS u (id)",
							   3, (Oid[]) {TEXTOID, TEXTOID, types13[12]}, (Datum[]) {args13[0], args13[1], args13[12]},
							   NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not create the campaign's deliveries");
}

/*
 * Record a 'control' row per customer and channel a control group held back
 * (as recommend does: no offer; campaign_id the run, context {campaignRunId,
 * controlGroup: {scope, percent}}), so kaireon.lift counts campaign traffic
 * too, a batch per INSERT (insert_batch).
 */
void
kcamp_record_controls(Campaign *cp)
{
	static SPIPlanPtr plan = NULL;
	static const Oid elem[6] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID};
	Oid			types[10];
	Datum		args[10];
	int			batch = CAMPAIGN_WRITE_BATCH;
	Datum	   *col[6];

	for (int c = 0; c < 6; c++)
		col[c] = palloc(sizeof(Datum) * batch);
	types[0] = TEXTOID;
	types[1] = TEXTOID;
	types[2] = TEXTOID;
	types[3] = TIMESTAMPTZOID;
	for (int c = 0; c < 6; c++)
		types[4 + c] = get_array_type(elem[c]);
	args[0] = CStringGetTextDatum(cp->spec->tenant_id);
	args[1] = CStringGetTextDatum(cp->campaign_run_id);
	args[2] = CStringGetTextDatum(cp->spec->run_id);
	args[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	for (int64 start = 0; start < cp->ncontrols; start += batch)
	{
		int			n = (int) Min(batch, cp->ncontrols - start);

		for (int r = 0; r < n; r++)
		{
			const CampaignControl *cc = &cp->controls[start + r];

			col[0][r] = CStringGetTextDatum(kaireon_new_uuid());
			col[1][r] = CStringGetTextDatum(cp->customers[cc->customer]);
			col[2][r] = CStringGetTextDatum(cp->cfg->channels[cp->channel[cc->ch]].id);
			col[3][r] = CStringGetTextDatum(cp->cfg->flows[cc->flow].id);
			col[4][r] = CStringGetTextDatum(cc->scope);
			col[5][r] = Float8GetDatum(cc->percent);
		}
		for (int c = 0; c < 6; c++)
			args[4 + c] = kd_array(col[c], NULL, n, elem[c]);
		insert_batch(cp->distributed, &plan,
					 "INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, "
					 "  recommendation_id, channel_id, decision_flow_id, campaign_id, context) ",
					 "SELECT $1, u.id, $4, u.customer_id, 'control', u.id, u.channel_id, u.flow_id, $3, "
					 "       jsonb_build_object('campaignRunId', $2::text, "
					 "                          'controlGroup', jsonb_build_object('scope', u.scope, 'percent', u.percent)) "
					 "  FROM unnest($5, $6, $7, $8, $9, $10) AS u (id, customer_id, channel_id, flow_id, scope, percent)",
					 "($1, $5[%1$d], $4, $6[%1$d], 'control', $5[%1$d], $7[%1$d], $8[%1$d], $3, "
					 "jsonb_build_object('campaignRunId', $2::text, 'controlGroup', "
					 "jsonb_build_object('scope', $9[%1$d], 'percent', $10[%1$d])))",
					 10, types, args, n, "kaireon: could not record the campaign's control group rows");
	}
}

/*
 * Take the run's units of every budget and volume constraint it used: one
 * conditional UPDATE each; when real-time decisions took the room meanwhile,
 * fail with 40001.
 */
void
kcamp_take_units(Campaign *cp)
{
	for (int k = 0; k < cp->nglobal; k++)
	{
		const KArbConstraint *c = &cp->set->items[cp->global[k]];
		double		used = cp->sol.used[k];
		KCapCounter counter;

		if (used <= 0 || (c->source != KARB_SRC_BUDGET && c->source != KARB_SRC_VOLUME))
			continue;
		if (c->source == KARB_SRC_VOLUME)
			counter = KCOUNTER_VOLUME;
		else if (strcmp(c->type, "budget_spend") == 0)
			counter = KCOUNTER_BUDGET_SPEND;
		else
			counter = KCOUNTER_BUDGET_IMPRESSIONS;
		if (!kaireon_caps_take_units(cp->spec->tenant_id, c->id, counter, c->cost_field ? used : rint(used)))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("constraint \"%s\" (%s) no longer has room for the campaign's %g units",
							c->name ? c->name : c->id, c->key, used),
					 errdetail("Real-time decisions used it while the campaign ran."),
					 errhint("Run the campaign again.")));
	}
}

/*
 * Does a run's use take all of a constraint's remaining capacity? (summary's "binding": the
 * constraint stopped the run, not merely has a positive price; 1000 of 1001 is not binding.)
 */
static bool
capacity_used_up(double used, double cap)
{
	return used >= cap - 1e-9 * Max(1.0, fabs(cap));
}

/* The summary of a solved campaign (campaign_runs.summary, simulation_runs.results). */
json_t *
kcamp_summary(Campaign *cp)
{
	json_t	   *cons = json_array();

	for (int k = 0; k < cp->nglobal; k++)
	{
		const KArbConstraint *c = &cp->set->items[cp->global[k]];

		json_array_append_new(cons, json_pack("{s:s,s:s,s:s,s:s?,s:f,s:f,s:f,s:f,s:b}",
											  "key", c->key, "name", c->name ? c->name : c->id,
											  "type", c->type, "period", c->period,
											  "limit", c->limit, "usedBefore", c->used,
											  "used", cp->sol.used[k], "lambda", cp->sol.lambda[k],
											  "binding", capacity_used_up(cp->sol.used[k], cp->prob.cap[k])));
	}
	for (int r = 0; r < cp->nresp; r++)
	{
		const KArbConstraint *c = &cp->set->items[cp->resp[r]];

		json_array_append_new(cons, json_pack("{s:s,s:s,s:s,s:f}", "key", c->key,
											  "name", c->name ? c->name : c->id, "type", c->type,
											  "maxPerResponse", c->per_response));
	}
	return json_pack("{s:s,s:b,s:f,s:I,s:I,s:o,s:o,s:{s:f,s:f,s:f},s:{s:I,s:I,s:I}}",
					 "method", cp->sol.method, "converged", cp->sol.converged,
					 "tolerance", cp->spec->opt.tolerance,
					 "candidates", (json_int_t) cp->prob.offered,
					 "candidatesKept", (json_int_t) cp->prob.ncand,
					 "constraints", cons,
					 "offers", offer_counts(cp),
					 "timingMs", "scoring", cp->ms_scoring, "solve", cp->ms_solve, "write", cp->ms_write,
					 "repair", "removed", (json_int_t) cp->sol.removed, "filled", (json_int_t) cp->sol.filled,
					 "exchanged", (json_int_t) cp->sol.exchanged);
}
