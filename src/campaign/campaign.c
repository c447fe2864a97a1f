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

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "util/ids.h"
#include "util/datum.h"
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

PG_FUNCTION_INFO_V1(kaireon_run_campaign);
PG_FUNCTION_INFO_V1(kaireon_simulate);

/* Customers read from the cursor at a time. */
#define CAMPAIGN_FETCH 1000
/* Rows written per INSERT of campaign decisions. */
#define CAMPAIGN_WRITE_BATCH 1000

/* What a campaign runs. */
typedef struct CampaignSpec
{
	const char *tenant_id;
	const char *run_id;			/* NULL: an ad-hoc simulation */
	const char *flow_key;		/* NULL: the channel's route or the default flow */
	const char *segment_id;
	const char *customer_query;
	json_t	   *channels;		/* channel ids */
	int			max_offers;
	json_t	   *limits;			/* the run's own volume limits, or NULL */
	int64		sample_size;	/* 0: every customer */
	bool		simulation;		/* record nothing but the run row */
	bool		write_decisions;	/* campaign_decisions rows */
	KArbOptions opt;
} CampaignSpec;

/* A campaign in progress. */
typedef struct Campaign
{
	CampaignSpec *spec;
	KTenantConfig *cfg;
	int64		cfg_version;	/* the configuration the candidates are indexed by */
	int			nch;
	int		   *channel;		/* channel indexes */
	KArbConstraintSet *set;
	int		   *global;			/* constraint indexes with a global limit */
	int			nglobal;
	int		   *resp;			/* constraint indexes with a per-response cap */
	int			nresp;
	KArbProblem prob;
	char	  **customers;
	int64		ncustomers;
	int64		customers_alloc;
	KArbSolution sol;
	double		ms_scoring,
				ms_solve,
				ms_write;
	int64		decisions;
	int64		selected;		/* decisions to write (kaireon.progress) */
	int64		written;		/* decisions written so far */
	char	   *campaign_run_id;
	char	   *customers_query;	/* the SQL listing the customers */
	bool		listed;			/* customers listed (before the call's first write) */
	bool		distributed;	/* the tenant's tables are Citus shards (kaireon.distribute()) */
	int		   *customer_flow;	/* per customer and channel (customer * nch + ch): the flow that
								 * decided (a flow A/B test's arm: docs/lift.md), -1: none */
	int64		ncontrols;		/* (customer, channel) pairs a control group held back: */
	int64		controls_alloc;
	struct CampaignControl *controls;	/* recorded as 'control' rows unless a simulation */
} Campaign;

/* A customer a control group held back on a channel (docs/lift.md). */
typedef struct CampaignControl
{
	int64		customer;		/* index into customers */
	int			ch;
	int			flow;
	const char *scope;			/* "tenant" or "flow" */
	double		percent;
} CampaignControl;

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

	/* how the decisions are written (flush_rows) */
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

/* ---- customers and candidates ---- */

/* The SQL that lists the campaign's customers (one text column, distinct). */
static char *
customers_sql(const Campaign *cp)
{
	const CampaignSpec *spec = cp->spec;
	char	   *source;
	const char *order = spec->sample_size > 0 ? "ORDER BY kaireon.fnv1a(c), c" : "ORDER BY c";
	char	   *limit = spec->sample_size > 0 ? psprintf(" LIMIT " INT64_FORMAT, spec->sample_size) : "";

	if (spec->customer_query != NULL)
	{
		/* (a newline ends a trailing -- comment; the text parsed alone as one SELECT) */
		source = psprintf("SELECT DISTINCT x.c::text AS c FROM (%s\n) AS x(c) WHERE x.c IS NOT NULL",
						  spec->customer_query);
	}
	else
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		args[2];
		char	   *view;

		args[0] = CStringGetTextDatum(spec->tenant_id);
		args[1] = CStringGetTextDatum(spec->segment_id);
		if (kspi_execute_with_args("SELECT kaireon_internal._segment_view($1, $2)", 2, types, args, NULL, false, 1)
			!= SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "kaireon: could not resolve the campaign's segment");
		view = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		source = psprintf("SELECT DISTINCT s.customer_id::text AS c FROM %s s WHERE s.customer_id IS NOT NULL", view);
	}
	return psprintf("SELECT c FROM (%s) AS members %s%s", source, order, limit);
}

/* Keep a customer id for the results. */
static int64
keep_customer(Campaign *cp, const char *id)
{
	if (cp->ncustomers >= cp->customers_alloc)
	{
		cp->customers_alloc = Max(1024, cp->customers_alloc * 2);
		cp->customers = cp->customers ?
			repalloc_huge(cp->customers, sizeof(char *) * cp->customers_alloc) :
			MemoryContextAllocHuge(CurrentMemoryContext, sizeof(char *) * cp->customers_alloc);
	}
	cp->customers[cp->ncustomers] = pstrdup(id);
	return cp->ncustomers++;
}

/*
 * One customer: the pipeline once per channel (dry run, in batch mode: every
 * candidate that survives it, ranked), then the candidates into the solver's
 * store.
 */
static void
score_customer(Campaign *cp, int64 customer, MemoryContext percall,
			   int32 *pair, double *value, bool *forced, int32 *tag)
{
	MemoryContext old = MemoryContextSwitchTo(percall);
	const char *customer_id = cp->customers[customer];
	int			n = 0;

	for (int ch = 0; ch < cp->nch; ch++)
	{
		KDecideArgs args;
		KDecideResult *res;

		memset(&args, 0, sizeof(args));
		args.tenant_id = cp->spec->tenant_id;
		args.customer_id = customer_id;
		args.channel_id = cp->cfg->channels[cp->channel[ch]].id;
		args.placements = json_array();
		args.flow_key = cp->spec->flow_key;
		args.context = json_object();
		args.dry_run = true;
		args.batch = true;		/* every candidate, ranked, without explanations */
		res = kaireon_decide(&args);
		/* offer and creative indexes are only comparable within one compiled configuration */
		if (res->req->cfg != cp->cfg || res->req->cfg->version != cp->cfg_version)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the configuration of tenant \"%s\" changed while the campaign ran",
							cp->spec->tenant_id),
					 errhint("Run the campaign again.")));
		/* held back by a control group: no candidates, a 'control' row later (record_controls) */
		for (int c = 0; c < res->ncontrols; c++)
		{
			CampaignControl *cc;

			if (cp->ncontrols == cp->controls_alloc)
			{
				cp->controls_alloc *= 2;
				cp->controls = repalloc(cp->controls, sizeof(CampaignControl) * cp->controls_alloc);
			}
			cc = &cp->controls[cp->ncontrols++];
			cc->customer = customer;
			cc->ch = ch;
			cc->flow = res->controls[c].flow;
			cc->scope = res->controls[c].scope;
			cc->percent = res->controls[c].percent;
		}
		for (int d = 0; d < res->ndecisions; d++)
		{
			const KDecision *dec = &res->decisions[d];

			cp->customer_flow[customer * cp->nch + ch] = dec->flow;
			pair[n] = dec->cand->offer * cp->nch + ch;
			value[n] = dec->cand->score;
			forced[n] = dec->cand->mandatory;
			tag[n] = dec->cand->creative;
			n++;
		}
	}
	/* a mandatory offer is placed once per customer: on its best-scored channel */
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n && forced[a]; b++)
			if (b != a && forced[b] && pair[a] / cp->nch == pair[b] / cp->nch &&
				(value[b] > value[a] || (value[b] == value[a] && b < a)))
				forced[a] = false;
	MemoryContextSwitchTo(old);
	karb_add_customer(&cp->prob, n, pair, value, forced, tag);
	MemoryContextReset(percall);
}

/*
 * List the campaign's customers: runs the customer query or reads the
 * segment's view, confined to the tenant (kaireon_run_confined: the tenant
 * stored that SQL), and keeps every id.
 */
static void
list_customers(void *arg)
{
	Campaign   *cp = (Campaign *) arg;
	MemoryContext mine = CurrentMemoryContext;
	Portal		portal;

	kaireon_progress_update("listing customers", 0, -1);
	portal = kaireon_confined_cursor("kaireon_campaign_customers", cp->customers_query);
	for (;;)
	{
		SPITupleTable *tt;

		kaireon_progress_update("listing customers", cp->ncustomers, -1);
		SPI_cursor_fetch(portal, true, CAMPAIGN_FETCH);
		MemoryContextSwitchTo(mine);
		tt = SPI_tuptable;
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			char	   *id = SPI_getvalue(tt->vals[r], tt->tupdesc, 1);

			CHECK_FOR_INTERRUPTS();
			keep_customer(cp, id);
			pfree(id);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	MemoryContextSwitchTo(mine);
}

/* List the customers (confined to the tenant), then score each. */
static void
collect(Campaign *cp)
{
	KTenantConfig *cfg = cp->cfg;
	int			npairs = cfg->noffers * cp->nch;
	MemoryContext mine = CurrentMemoryContext;
	MemoryContext percall = AllocSetContextCreate(CurrentMemoryContext, "kaireon campaign customer",
												  ALLOCSET_DEFAULT_SIZES);
	int			maxn = Max(npairs, 1);
	int32	   *pair = palloc(sizeof(int32) * maxn);
	double	   *value = palloc(sizeof(double) * maxn);
	bool	   *forced = palloc(sizeof(bool) * maxn);
	int32	   *tag = palloc(sizeof(int32) * maxn);

	karb_problem_init(&cp->prob, cp->spec->max_offers, npairs, cp->nglobal, cp->nresp);
	cp->ncontrols = 0;
	cp->controls_alloc = 64;
	cp->controls = palloc(sizeof(CampaignControl) * cp->controls_alloc);
	for (int q = 0; q < npairs; q++)
	{
		const KOffer *o = &cfg->offers[q / cp->nch];
		const char *chan = cfg->channels[cp->channel[q % cp->nch]].id;

		for (int k = 0; k < cp->nglobal; k++)
			cp->prob.cost[(int64) q * cp->nglobal + k] = karb_offer_cost(&cp->set->items[cp->global[k]], o, chan);
		for (int r = 0; r < cp->nresp; r++)
			cp->prob.rcost[(int64) q * cp->nresp + r] = karb_offer_cost(&cp->set->items[cp->resp[r]], o, chan);
	}
	for (int k = 0; k < cp->nglobal; k++)
	{
		const KArbConstraint *c = &cp->set->items[cp->global[k]];

		cp->prob.cap[k] = Max(c->limit - c->used, 0);
	}
	for (int r = 0; r < cp->nresp; r++)
		cp->prob.rcap[r] = cp->set->items[cp->resp[r]].per_response;

	if (!cp->listed)
	{
		cp->customers_query = customers_sql(cp);
		MemoryContextSwitchTo(mine);
		kaireon_run_confined(cp->spec->tenant_id, list_customers, cp);
		MemoryContextSwitchTo(mine);
	}
	cp->customer_flow = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * Max(cp->ncustomers * cp->nch, 1));
	for (int64 k = 0; k < cp->ncustomers * cp->nch; k++)
		cp->customer_flow[k] = -1;
	for (int64 i = 0; i < cp->ncustomers; i++)
	{
		CHECK_FOR_INTERRUPTS();
		kaireon_progress_update("scoring", i, cp->ncustomers);
		score_customer(cp, i, percall, pair, value, forced, tag);
	}
	MemoryContextDelete(percall);
}

/* ---- results ---- */

/* Column buffers of campaign decisions waiting to be written. */
typedef struct Rows
{
	int			n;
	Datum		col[11][CAMPAIGN_WRITE_BATCH];
	bool		null[11][CAMPAIGN_WRITE_BATCH];
} Rows;

static void record_interactions(Campaign *cp, Rows *rows, Oid *types13, Datum *args13);

/*
 * Write the buffered rows in one INSERT, with their interactions unless a
 * simulation.  On one server: a kept plan inserting from unnest() of the
 * column arrays.  When the tables are distributed (Citus): a VALUES row per
 * decision, each naming the tenant ($1), so that Citus sends the statement to
 * the tenant's shard (an INSERT ... SELECT FROM unnest() it would route row by
 * row, which a delegated call may not).
 */
static void
flush_rows(Campaign *cp, Rows *rows)
{
	static const Oid elem[11] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID,
	FLOAT8OID, BOOLOID, TEXTOID, TEXTOID};
	static SPIPlanPtr plan = NULL;
	Oid			types[13];
	Datum		args[13];
	int			rc;

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
	if (!cp->distributed)
	{
		if (plan == NULL)
			plan = kspi_prepare_keep(
				"INSERT INTO kaireon.campaign_decisions (tenant_id, campaign_run_id, customer_id, rank, offer_id, "
				"  creative_id, channel_id, decision_flow_id, score, arbitrated_value, mandatory, recommendation_id, "
				"  interaction_id) "
				"SELECT $1, $2, u.* FROM unnest($3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) AS u",
				13, types);
		rc = kspi_execute_plan(plan, args, NULL, false, 0);
	}
	else
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfoString(&sql,
							   "INSERT INTO kaireon.campaign_decisions (tenant_id, campaign_run_id, customer_id, rank, offer_id, "
							   "  creative_id, channel_id, decision_flow_id, score, arbitrated_value, mandatory, recommendation_id, "
							   "  interaction_id) VALUES ");
		for (int r = 1; r <= rows->n; r++)
		{
			appendStringInfo(&sql, "%s($1, $2", r > 1 ? ", " : "");
			for (int c = 0; c < 11; c++)
				appendStringInfo(&sql, ", $%d[%d]", 3 + c, r);
			appendStringInfoChar(&sql, ')');
		}
		rc = kspi_execute_with_args(sql.data, 13, types, args, NULL, false, 0);
		pfree(sql.data);
	}
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) rows->n)
		elog(ERROR, "kaireon: could not write the campaign decisions");
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
static void
write_decisions(Campaign *cp)
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
 * score, $12 recommendation, $13 interaction; $14 the run, $15 the time):
 * from unnest() on one server, a VALUES row per decision naming the tenant
 * when the tables are distributed (one shard on Citus).
 */
static void
record_interactions(Campaign *cp, Rows *rows, Oid *types13, Datum *args13)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[15];
	Datum		args[15];
	int			rc;

	memcpy(types, types13, sizeof(Oid) * 13);
	memcpy(args, args13, sizeof(Datum) * 13);
	types[13] = TEXTOID;
	types[14] = TIMESTAMPTZOID;
	args[13] = CStringGetTextDatum(cp->spec->run_id);
	args[14] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (!cp->distributed)
	{
		if (plan == NULL)
			plan = kspi_prepare_keep(
				"INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, "
				"  recommendation_id, rank, offer_id, creative_id, channel_id, decision_flow_id, campaign_id, score, "
				"  context) "
				"SELECT $1, u.interaction_id, $15, u.customer_id, 'recommendation', u.recommendation_id, u.rank, "
				"       u.offer_id, u.creative_id, u.channel_id, u.decision_flow_id, $14, u.score, "
				"       jsonb_build_object('campaignRunId', $2::text) "
				"  FROM unnest($3, $4, $5, $6, $7, $8, $9, $12, $13) "
				"       AS u (customer_id, rank, offer_id, creative_id, channel_id, decision_flow_id, score, "
				"             recommendation_id, interaction_id)",
				15, types);
		rc = kspi_execute_plan(plan, args, NULL, false, 0);
	}
	else
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfoString(&sql,
							   "INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, "
							   "  recommendation_id, rank, offer_id, creative_id, channel_id, decision_flow_id, campaign_id, score, "
							   "  context) VALUES ");
		for (int r = 1; r <= rows->n; r++)
			appendStringInfo(&sql, "%s($1, $13[%d], $15, $3[%d], 'recommendation', $12[%d], $4[%d], $5[%d], $6[%d], "
							 "$7[%d], $8[%d], $14, $9[%d], jsonb_build_object('campaignRunId', $2::text))",
							 r > 1 ? ", " : "", r, r, r, r, r, r, r, r, r);
		rc = kspi_execute_with_args(sql.data, 15, types, args, NULL, false, 0);
		pfree(sql.data);
	}
	if (rc != SPI_OK_INSERT || SPI_processed != (uint64) rows->n)
		elog(ERROR, "kaireon: could not record the campaign's interactions");

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
 * too: from unnest() on one server, a VALUES row per control naming the
 * tenant when the tables are distributed (one shard on Citus).
 */
static void
record_controls(Campaign *cp)
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
		int			rc;

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
		if (!cp->distributed)
		{
			if (plan == NULL)
				plan = kspi_prepare_keep(
					"INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, "
					"  recommendation_id, channel_id, decision_flow_id, campaign_id, context) "
					"SELECT $1, u.id, $4, u.customer_id, 'control', u.id, u.channel_id, u.flow_id, $3, "
					"       jsonb_build_object('campaignRunId', $2::text, "
					"                          'controlGroup', jsonb_build_object('scope', u.scope, 'percent', u.percent)) "
					"  FROM unnest($5, $6, $7, $8, $9, $10) AS u (id, customer_id, channel_id, flow_id, scope, percent)",
					10, types);
			rc = kspi_execute_plan(plan, args, NULL, false, 0);
		}
		else
		{
			StringInfoData sql;

			initStringInfo(&sql);
			appendStringInfoString(&sql,
								   "INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, "
								   "  interaction_type, recommendation_id, channel_id, decision_flow_id, campaign_id, context) VALUES ");
			for (int r = 1; r <= n; r++)
				appendStringInfo(&sql, "%s($1, $5[%d], $4, $6[%d], 'control', $5[%d], $7[%d], $8[%d], $3, "
								 "jsonb_build_object('campaignRunId', $2::text, 'controlGroup', "
								 "jsonb_build_object('scope', $9[%d], 'percent', $10[%d])))",
								 r > 1 ? ", " : "", r, r, r, r, r, r, r);
			rc = kspi_execute_with_args(sql.data, 10, types, args, NULL, false, 0);
			pfree(sql.data);
		}
		if (rc != SPI_OK_INSERT || SPI_processed != (uint64) n)
			elog(ERROR, "kaireon: could not record the campaign's control group rows");
	}
}

/*
 * Take the run's units of every budget and volume constraint it used: one
 * conditional UPDATE each; when real-time decisions took the room meanwhile,
 * fail with 40001.
 */
static void
take_units(Campaign *cp)
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
static json_t *
summary(Campaign *cp)
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

/* Everything after the run row: collect, solve, write.  Raises on failure (the caller rolls back). */
static json_t *
execute(Campaign *cp)
{
	TimestampTz t0 = GetCurrentTimestamp();
	int			k;
	double		need;

	collect(cp);
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
		write_decisions(cp);	/* with their interactions, unless a simulation */
		if (!cp->spec->simulation)
		{
			record_controls(cp);
			take_units(cp);
		}
	}
	else
	{
		for (int64 c = 0; c < cp->prob.ncand; c++)
			if (cp->sol.selected[c])
				cp->decisions++;
	}
	cp->ms_write = ms_since(t0);
	return summary(cp);
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

	cp->customers_query = customers_sql(cp);
	kaireon_run_confined(cp->spec->tenant_id, list_customers, cp);
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
