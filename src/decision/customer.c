/*
 * decision/customer.c
 *	  Reads what one request needs to know about its customer, through
 *	  indexes: the customer data row (by primary key), the recent interaction
 *	  history and active suppressions straight through their indexes
 *	  (decision/state_read.c), else (and for the rest) with the queries the
 *	  compiled configuration prepared (config/eligibility.c, config/state_plan.c):
 *	  segment membership (one EXISTS per referenced segment on the segment
 *	  views), and, only when the configuration reads them, consent,
 *	  engagement health, metric values and cap usage (one jsonb).
 *	  The tenant's adaptive propensity counts are read at most once per
 *	  kaireon.adaptation_refresh_ms.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "access/xact.h"

#include "util/spi.h"
#include "decision/decision.h"
#include "decision/state_read.h"
#include "decision/state_row.h"

/* The counts of "<scope>|<id>" in the adaptation object: positives and negatives, 0 when absent. */
static void
adaptation_pair(json_t *adaptation, const char *scope, const char *id, int64 *out)
{
	char		key[512];
	json_t	   *v;

	snprintf(key, sizeof(key), "%s|%s", scope, id ? id : "");
	v = json_object_get(adaptation, key);
	out[0] = v ? (int64) json_number_value(json_array_get(v, 0)) : 0;
	out[1] = v ? (int64) json_number_value(json_array_get(v, 1)) : 0;
}

/*
 * The tenant's adaptive propensity counts ("<scope>|<id>" -> [positives,
 * negatives]), read at most once per kaireon.adaptation_refresh_ms per
 * backend: they move with every outcome, and a propensity a second old is as
 * good as a fresh one, so they are not worth a query per decision.  The
 * counts of every offer, category and the tenant are also laid out by index
 * (cfg->adaptation_offers, _categories, _global) at each read, so that a
 * candidate's propensity looks nothing up.
 */
json_t *
kaireon_tenant_adaptation(KTenantConfig *cfg)
{
	TimestampTz now = GetCurrentTimestamp();
	MemoryContext old;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	if (cfg->adaptation != NULL &&
		now - cfg->adaptation_loaded_at < (TimestampTz) kaireon_adaptation_refresh_ms * 1000)
		return cfg->adaptation;
	if (cfg->adaptation_plan == NULL)
		cfg->adaptation_plan = kspi_prepare_keep(
			"SELECT a.scope || '|' || coalesce(a.scope_id, ''), sum(a.positives)::int8, sum(a.negatives)::int8 "
			"  FROM kaireon.model_adaptations a WHERE a.tenant_id = $1 AND a.model_id IS NULL "
			" GROUP BY a.scope, a.scope_id",
			1, argtypes);
	if (cfg->adaptation_mcxt == NULL)
		cfg->adaptation_mcxt = AllocSetContextCreate(cfg->mcxt, "kaireon adaptation counts", ALLOCSET_SMALL_SIZES);
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	if (kspi_execute_plan(cfg->adaptation_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading adaptation counts failed");
	MemoryContextReset(cfg->adaptation_mcxt);
	old = MemoryContextSwitchTo(cfg->adaptation_mcxt);
	cfg->adaptation = json_object();
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	t = SPI_tuptable->vals[i];
		char	   *key = SPI_getvalue(t, SPI_tuptable->tupdesc, 1);
		int64		pos = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 2, &isnull));
		int64		neg = DatumGetInt64(SPI_getbinval(t, SPI_tuptable->tupdesc, 3, &isnull));

		json_object_set_new(cfg->adaptation, key, json_pack("[I,I]", (json_int_t) pos, (json_int_t) neg));
	}
	cfg->adaptation_offers = palloc(sizeof(int64) * 2 * Max(cfg->noffers, 1));
	cfg->adaptation_categories = palloc(sizeof(int64) * 2 * (cfg->ncategories + 1));
	for (int c = 0; c <= cfg->ncategories; c++)
		cfg->adaptation_categories[2 * c] = -1;		/* not looked up yet */
	for (int o = 0; o < cfg->noffers; o++)
	{
		const KOffer *offer = &cfg->offers[o];
		int			c = offer->category >= 0 ? offer->category : cfg->ncategories;

		adaptation_pair(cfg->adaptation, "offer", offer->id, &cfg->adaptation_offers[2 * o]);
		if (cfg->adaptation_categories[2 * c] < 0)
			adaptation_pair(cfg->adaptation, "category", offer->category >= 0 ? offer->category_id : NULL,
							&cfg->adaptation_categories[2 * c]);
	}
	adaptation_pair(cfg->adaptation, "global", NULL, cfg->adaptation_global);
	MemoryContextSwitchTo(old);
	cfg->adaptation_loaded_at = now;
	return cfg->adaptation;
}

/* Run a prepared plan that returns one jsonb (or NULL) and parse it. */
static json_t *
plan_json(SPIPlanPtr plan, Datum *args, const char *what)
{
	bool		isnull;
	Datum		d;

	/* not read-only: a fresh snapshot, taken after the customer's decision lock */
	if (kspi_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading %s failed", what);
	if (SPI_processed == 0)
		return NULL;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return NULL;
	return kj_from_jsonb(DatumGetJsonbP(d), what);
}

/* What a customer lookup was doing, for the error context of a failure in it. */
typedef struct LookupContext
{
	const char *customer_id;
	const KCustomerSchema *schema;
} LookupContext;

/* Error context of a customer lookup: which customer, by which key, in which table. */
static void
lookup_errcontext(void *arg)
{
	LookupContext *lc = (LookupContext *) arg;

	errcontext("looking up customer \"%s\" by %s in %s", lc->customer_id, lc->schema->key_column,
			   lc->schema->qualified_table);
}

/*
 * The customer's data row as a JSON object, straight from the tuple: numbers
 * as numbers, booleans, text as strings, jsonb as JSON, anything else as its
 * text form (dates and timestamps in ISO form); the tenant column (and
 * dropped columns) left out.
 */
static json_t *
row_json(HeapTuple t, TupleDesc desc)
{
	json_t	   *obj = json_object();
	Datum	   *values = palloc(sizeof(Datum) * Max(desc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(desc->natts, 1));

	heap_deform_tuple(t, desc, values, nulls);	/* every column in one pass */
	for (int i = 1; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		isnull = nulls[i - 1];
		Datum		d = values[i - 1];
		json_t	   *v;

		if (att->attisdropped || strcmp(NameStr(att->attname), "tenant_id") == 0)
			continue;
		if (isnull)
			v = json_null();
		else
			switch (att->atttypid)
			{
				case INT2OID:
					v = json_integer(DatumGetInt16(d));
					break;
				case INT4OID:
					v = json_integer(DatumGetInt32(d));
					break;
				case INT8OID:
					v = json_integer(DatumGetInt64(d));
					break;
				case FLOAT4OID:
					v = json_real(DatumGetFloat4(d));
					break;
				case FLOAT8OID:
					v = json_real(DatumGetFloat8(d));
					break;
				case NUMERICOID:
					v = json_real(DatumGetFloat8(DirectFunctionCall1(numeric_float8, d)));
					break;
				case BOOLOID:
					v = json_boolean(DatumGetBool(d));
					break;
				case JSONBOID:
					v = kj_from_jsonb(DatumGetJsonbP(d), NameStr(att->attname));
					break;
				case TEXTOID:
				case VARCHAROID:
					v = json_string(TextDatumGetCString(d));
					break;
				default:
					v = json_string(SPI_getvalue(t, desc, i));
					break;
			}
		json_object_set_new(obj, NameStr(att->attname), v ? v : json_null());
	}
	return obj;
}

/* The customer's data row as read straight through its primary key, for segment membership. */
typedef struct KDirectRow
{
	bool		read;			/* read here (else by the SQL, or no customer schema) */
	Oid			table;
	HeapTuple	tuple;			/* NULL: the customer has no row */
	TupleDesc	desc;
} KDirectRow;

/*
 * The customer's data row in a customer schema (NULL when none); args are
 * (customer id, tenant id).  Through the primary key (decision/state_read.c),
 * else by the schema's prepared query.  direct (may be NULL) says which.
 */
static json_t *
customer_row(const KCustomerSchema *cs, Datum *args, KDirectRow *direct)
{
	json_t	   *row = NULL;
	LookupContext lc;
	ErrorContextCallback cb;
	HeapTuple	t;
	TupleDesc	desc;
	Oid			table;

	if (direct != NULL)
		direct->read = false;
	if (cs == NULL || cs->plan == NULL)
		return NULL;
	/* a customer id that is no value of the key's type fails here: say where */
	lc.customer_id = TextDatumGetCString(args[0]);
	lc.schema = cs;
	cb.previous = error_context_stack;
	cb.callback = lookup_errcontext;
	cb.arg = &lc;
	error_context_stack = &cb;
	if (kaireon_read_customer_row(cs->qualified_table, TextDatumGetCString(args[1]), lc.customer_id, &t, &desc,
								  &table))
	{
		if (t != NULL)
			row = row_json(t, desc);
		if (direct != NULL)
		{
			direct->read = true;
			direct->table = table;
			direct->tuple = t;
			direct->desc = desc;
		}
	}
	else
	{
		if (kspi_execute_plan(cs->plan, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: reading customer data failed");
		if (SPI_processed > 0)
			row = row_json(SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	}
	error_context_stack = cb.previous;
	return row;
}

/* The customer data schema a flow reads: the one it names, else the first by name. */
static KCustomerSchema *
customer_schema(KTenantConfig *cfg, const char *name)
{
	if (name == NULL)
		return cfg->ncustomer_schemas > 0 ? &cfg->customer_schemas[0] : NULL;
	for (int i = 0; i < cfg->ncustomer_schemas; i++)
		if (strcmp(cfg->customer_schemas[i].name, name) == 0)
			return &cfg->customer_schemas[i];
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("customer data schema \"%s\" named by the decision flow is not a published customer schema of tenant \"%s\"",
					name, cfg->tenant_id),
			 errhint("Publish it with kaireon.publish_data_schema, or fix the flow's customerSchema.")));
	return NULL;
}

/* Oldest history a request needs: the longest rule/policy window, and today (mandatory allowance). */
static TimestampTz
history_since(const KRequest *req)
{
	TimestampTz day = req->day_start;
	TimestampTz window = req->now - (TimestampTz) (req->cfg->max_lookback_hours * USECS_PER_HOUR);

	return Min(day, window);
}

/* Fill one history event from its columns (the direct read's or the SQL's). */
static void
fill_event(KRequest *req, KEvent *ev, const char *type, char *outcome, char *offer_id, char *channel_id,
		   TimestampTz at)
{
	int			o;

	ev->type = strcmp(type, "recommendation") == 0 ? KEV_RECOMMENDATION :
		strcmp(type, "impression") == 0 ? KEV_IMPRESSION : KEV_OUTCOME;
	ev->outcome = outcome;
	ev->offer_id = offer_id;
	ev->channel_id = channel_id;
	ev->at = at;
	o = kaireon_find_offer(req->cfg, ev->offer_id);
	ev->offer = o;
	if (o >= 0)
	{
		ev->category_id = req->cfg->offers[o].category_id;
		ev->mandatory = req->cfg->offers[o].mandatory;
	}
	if (ev->outcome != NULL)
	{
		bool		found;

		ev->classification = kaireon_outcome_class(req->cfg, ev->outcome, &found);
	}
}

/*
 * Read the history rows of the request's window into KEvent structs: through
 * the index (decision/state_read.c), else by the prepared query.
 */
static void
load_events(KRequest *req, KCustomer *cust, const char *customer_id, Datum *args)
{
	SPITupleTable *tt;
	KHistoryRow *rows;
	int			n;

	if (kaireon_read_history(req->cfg->tenant_id, customer_id, DatumGetTimestampTz(args[2]),
							 KAIREON_MAX_EVENTS, &rows, &n))
	{
		cust->nevents = n;
		cust->events = palloc0(sizeof(KEvent) * Max(n, 1));
		for (int i = 0; i < n; i++)
			fill_event(req, &cust->events[i], rows[i].type, rows[i].outcome, rows[i].offer_id,
					   rows[i].channel_id, rows[i].at);
		return;
	}
	if (kspi_execute_plan(req->cfg->history_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the customer's history failed");
	tt = SPI_tuptable;
	cust->nevents = SPI_processed;
	cust->events = palloc0(sizeof(KEvent) * Max(cust->nevents, 1));
	for (int i = 0; i < cust->nevents; i++)
	{
		HeapTuple	t = tt->vals[i];
		bool		isnull;

		fill_event(req, &cust->events[i], SPI_getvalue(t, tt->tupdesc, 1), SPI_getvalue(t, tt->tupdesc, 2),
				   SPI_getvalue(t, tt->tupdesc, 3), SPI_getvalue(t, tt->tupdesc, 4),
				   DatumGetTimestampTz(SPI_getbinval(t, tt->tupdesc, 5, &isnull)));
	}
}

/* Fill one suppression from its columns (the direct read's or the SQL's). */
static void
fill_suppression(KSuppression *sup, const char *scope, char *scope_id, char *reason)
{
	int			k = kaireon_type_index(kaireon_scope_names, scope);

	if (k >= 0)
		sup->kind = (KScopeKind) k;
	sup->id = scope_id;
	sup->reason = reason;
}

/*
 * Read the customer's active suppressions: through the index
 * (decision/state_read.c), else by the prepared query.
 */
static void
load_suppressions(KRequest *req, KCustomer *cust, const char *customer_id, Datum *args)
{
	SPITupleTable *tt;
	KSuppressionRow *rows;
	int			n;

	if (kaireon_read_suppressions(req->cfg->tenant_id, customer_id, GetCurrentTransactionStartTimestamp(),
								  &rows, &n))
	{
		cust->nsuppressions = n;
		cust->suppressions = palloc0(sizeof(KSuppression) * Max(n, 1));
		for (int i = 0; i < n; i++)
			fill_suppression(&cust->suppressions[i], rows[i].scope, rows[i].scope_id, rows[i].reason);
		return;
	}
	if (kspi_execute_plan(req->cfg->suppression_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the customer's suppressions failed");
	tt = SPI_tuptable;
	cust->nsuppressions = SPI_processed;
	cust->suppressions = palloc0(sizeof(KSuppression) * Max(cust->nsuppressions, 1));
	for (int i = 0; i < cust->nsuppressions; i++)
		fill_suppression(&cust->suppressions[i], SPI_getvalue(tt->vals[i], tt->tupdesc, 1),
						 SPI_getvalue(tt->vals[i], tt->tupdesc, 2), SPI_getvalue(tt->vals[i], tt->tupdesc, 3));
}

/*
 * Segment membership from the customer's data row read through its primary
 * key, without the segment query (decision/state_read.c, protocol step 6);
 * false, with nothing set, when any of the segments needs the query.
 */
static bool
direct_segments(KTenantConfig *cfg, const KDirectRow *direct, KCustomer *cust)
{
	bool	   *member;

	if (!direct->read)
		return false;
	member = palloc0(sizeof(bool) * Max(cfg->nsegment_slots, 1));
	for (int i = 0; i < cfg->nsegments; i++)
	{
		int			m;

		if (cfg->segments[i].slot < 0)
			continue;
		m = kaireon_segment_member(cfg->segments[i].view, direct->table, direct->tuple, direct->desc);
		if (m < 0)
			return false;
		member[cfg->segments[i].slot] = m == 1;
	}
	cust->segments = member;
	return true;
}

/*
 * Read the customer's state for a request: attributes (customer data merged
 * with the context, context winning), segments, history, suppressions,
 * consent, engagement, metrics; and the tenant's adaptation counts and cap
 * usage into the request.  Runs inside the caller's SPI connection.
 */
KCustomer *
kaireon_load_customer(KRequest *req, const char *customer_id, json_t *context, const char *schema_name)
{
	KTenantConfig *cfg = req->cfg;
	KCustomer  *cust = palloc0(sizeof(KCustomer));
	KCustomerSchema *cs = customer_schema(cfg, schema_name);
	Datum		args[3];
	json_t	   *state;
	KDirectRow	direct;

	cust->id = customer_id;
	cust->context = context ? context : json_object();
	args[0] = CStringGetTextDatum(customer_id);
	args[1] = CStringGetTextDatum(cfg->tenant_id);
	cust->data = customer_row(cs, args, &direct);
	/* the data merged with the context, the context winning; the data row itself when there is no context (both are only read) */
	if (cust->data != NULL && json_object_size(cust->context) == 0)
		cust->attrs = json_incref(cust->data);
	else
	{
		cust->attrs = cust->data ? json_deep_copy(cust->data) : json_object();
		json_object_update(cust->attrs, cust->context);
	}

	if (cfg->segment_plan != NULL && direct_segments(cfg, &direct, cust))
		;						/* every segment answered from the data row */
	else if (cfg->segment_plan != NULL)
	{
		bool		isnull;
		Datum		d;

		if (kspi_execute_plan(cfg->segment_plan, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "kaireon: reading segment membership failed");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		cust->segments = palloc0(sizeof(bool) * cfg->nsegment_slots);
		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(arr, BOOLOID, 1, true, TYPALIGN_CHAR, &elems, &nulls, &n);
			for (int i = 0; i < n && i < cfg->nsegment_slots; i++)
				cust->segments[i] = !nulls[i] && DatumGetBool(elems[i]);
		}
	}

	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = CStringGetTextDatum(customer_id);
	args[2] = TimestampTzGetDatum(history_since(req));
	load_events(req, cust, customer_id, args);
	/* the offers the events name: an offer's own policies (decision/policies.c) skip the scan for the others */
	cust->offer_seen = palloc0(sizeof(bool) * Max(cfg->noffers, 1));
	for (int i = 0; i < cust->nevents; i++)
		if (cust->events[i].offer >= 0)
			cust->offer_seen[cust->events[i].offer] = true;
	load_suppressions(req, cust, customer_id, args);
	state = cfg->extras_plan ? plan_json(cfg->extras_plan, args, "customer state") : NULL;
	cust->consent = json_object_get(state, "consent");
	if (json_is_number(json_object_get(state, "engagement")))
	{
		cust->has_engagement = true;
		cust->engagement = kj_num(state, "engagement", 0);
	}
	cust->metrics = json_object_get(state, "metrics");
	if (cust->metrics != NULL && !json_is_object(cust->metrics))
		cust->metrics = NULL;
	req->cap_usage = json_object_get(state, "caps");
	return cust;
}

/*
 * The customer's attributes outside a decision (for learning from an outcome):
 * the data row in the named customer schema (else the tenant's first) merged
 * with the context, the context winning.
 */
json_t *
kaireon_customer_attributes(KTenantConfig *cfg, const char *customer_id, json_t *context, const char *schema_name)
{
	Datum		args[2];
	json_t	   *attrs;

	args[0] = CStringGetTextDatum(customer_id);
	args[1] = CStringGetTextDatum(cfg->tenant_id);
	attrs = customer_row(customer_schema(cfg, schema_name), args, NULL);
	if (attrs == NULL)
		attrs = json_object();
	if (json_is_object(context))
		json_object_update(attrs, context);
	return attrs;
}
