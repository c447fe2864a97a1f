/*
 * campaign/customers.c
 *	  A campaign's customers and candidates (campaign.c runs it): lists the
 *	  customers with the run's customer query or its segment's view, confined
 *	  to the tenant (the tenant stored that SQL), and for each customer and
 *	  channel runs the recommend pipeline itself (kaireon_decide with
 *	  dry_run: nothing written), adding the candidates to the solver's store
 *	  (store.c).
 */
#include "postgres.h"

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "util/spi.h"
#include "arbitration/arbitration.h"
#include "campaign/solver.h"
#include "decision/decision.h"
#include "security/confine.h"
#include "stats/stats.h"
#include "campaign/customers.h"

/* Customers read from the cursor at a time. */
#define CAMPAIGN_FETCH 1000

/* The SQL that lists the campaign's customers (one text column, distinct). */
char *
kcamp_customers_sql(const Campaign *cp)
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
		/* held back by a control group: no candidates, a 'control' row later (kcamp_record_controls, results.c) */
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
void
kcamp_list_customers(void *arg)
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
void
kcamp_collect(Campaign *cp)
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
		cp->customers_query = kcamp_customers_sql(cp);
		MemoryContextSwitchTo(mine);
		kaireon_run_confined(cp->spec->tenant_id, kcamp_list_customers, cp);
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
