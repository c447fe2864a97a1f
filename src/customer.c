/*
 * customer.c
 *	  Reads what one request needs to know about its customer with one
 *	  prepared query per tenant configuration and customer schema, through
 *	  indexes: segment membership (one EXISTS per referenced segment on the
 *	  segment views), the recent interaction history and active suppressions
 *	  (as arrays), only when the configuration reads them consent, engagement
 *	  health, metric values and cap usage (one jsonb), and the customer data
 *	  row (by primary key).  One statement instead of one per kind saves the
 *	  executor start-up and snapshot of each (docs/performance.md).  The
 *	  tenant's adaptive propensity counts are read at most once per
 *	  kaireon.adaptation_refresh_ms.
 */
#include "util/json.h"

#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "util/spi.h"
#include "decision.h"
#include "kaireon.h"

/* Most history rows read for one customer (the newest); documented in docs/recommend.md. */
#define KAIREON_MAX_EVENTS 10000

/*
 * Columns of the customer state query (1-based): one row.  History and
 * suppressions come as arrays of anonymous records, the history newest first
 * (type, outcome, offer, channel, time), the suppressions (scope, scope id,
 * reason) in index order.
 */
enum
{
	STATE_SEGMENTS = 1,			/* boolean[] by segment slot, or NULL */
	STATE_EXTRAS,				/* consent, engagement, metrics, cap usage: jsonb, or NULL */
	STATE_EVENTS,				/* record[] of history rows */
	STATE_SUPPRESSIONS,			/* record[] of active suppressions */
	STATE_ROW					/* the customer data row (the table's row type), or NULL; only with a schema */
};

/* The jsonb expression of consent, engagement, metrics and cap usage (only the parts the configuration reads), or NULL. */
static char *
extras_sql(KTenantConfig *cfg)
{
	StringInfoData sql;
	bool		extras = false;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "jsonb_build_object('customer', $2::text");
	if (cfg->needs_consent)
	{
		appendStringInfoString(&sql,
							   ", 'consent', (SELECT jsonb_object_agg(c.purpose, c.status) FROM "
							   "  (SELECT DISTINCT ON (purpose) purpose, status FROM kaireon.consent_records "
							   "    WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose, created_at DESC, id DESC) c)");
		extras = true;
	}
	if (cfg->has_engagement)
	{
		appendStringInfoString(&sql,
							   ", 'engagement', (SELECT e.score FROM kaireon.customer_engagement_health e "
							   "   WHERE e.tenant_id = $1 AND e.customer_id = $2)");
		extras = true;
	}
	if (cfg->needs_metrics)
	{
		appendStringInfoString(&sql,
							   ", 'metrics', (SELECT jsonb_object_agg(CASE WHEN v.dimension_key = '' THEN d.key "
							   "   ELSE d.key || '|' || v.dimension_key END, v.value) "
							   "   FROM kaireon.metric_values v JOIN kaireon.metric_definitions d "
							   "     ON d.tenant_id = v.tenant_id AND d.id = v.metric_id "
							   "  WHERE v.tenant_id = $1 AND v.customer_id = $2)");
		extras = true;
	}
	if (cfg->ncaps > 0)
	{
		appendStringInfoString(&sql,
							   ", 'caps', coalesce((SELECT jsonb_object_agg(v.id, jsonb_build_object('used', "
							   "   CASE WHEN v.reset_at IS NULL OR v.reset_at <= now() THEN 0 ELSE v.current_count END)) "
							   "   FROM kaireon.volume_constraints v WHERE v.tenant_id = $1 AND v.status = 'active'), '{}') "
							   " || coalesce((SELECT jsonb_object_agg(b.id, jsonb_build_object('impressions', b.used_impressions, "
							   "   'spend', b.used_spend, 'conversions', b.used_conversions)) "
							   "   FROM kaireon.budget_allocations b WHERE b.tenant_id = $1 AND b.status <> 'inactive'), '{}')");
		extras = true;
	}
	appendStringInfoChar(&sql, ')');
	return extras ? sql.data : NULL;
}

/*
 * The customer state query of a tenant configuration and customer schema
 * (cs NULL: none), prepared at its first use and kept with the
 * configuration: one statement, one row, its columns described at
 * STATE_SEGMENTS.  Scalar subqueries and ARRAY(SELECT ROW(...)) only:
 * aggregates would cost more to start than they save, and a UNION of the
 * kinds would widen every plan node.  Parameters: $1 tenant id, $2 customer
 * id, $3 the oldest history time needed.
 */
static SPIPlanPtr
state_plan(KTenantConfig *cfg, KCustomerSchema *cs)
{
	SPIPlanPtr *slot = cs != NULL ? &cs->state_plan : &cfg->state_plan;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	char	   *extras;
	StringInfoData sql;

	if (*slot != NULL)
		return *slot;
	extras = extras_sql(cfg);
	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s, %s, "
					 "  ARRAY(SELECT ROW(h.interaction_type, h.outcome_type_key, h.offer_id, h.channel_id, h.occurred_at) "
					 "          FROM kaireon.interaction_history h "
					 "         WHERE h.tenant_id = $1 AND h.customer_id = $2 AND h.occurred_at >= $3 "
					 "         ORDER BY h.occurred_at DESC LIMIT %d), "
					 "  ARRAY(SELECT ROW(s.scope, s.scope_id, s.reason) FROM kaireon.suppressions s "
					 "         WHERE s.tenant_id = $1 AND s.customer_id = $2 "
					 "           AND (s.expires_at IS NULL OR s.expires_at > now()))",
					 cfg->segment_sql != NULL ? cfg->segment_sql : "NULL::boolean[]",
					 extras != NULL ? extras : "NULL::jsonb", KAIREON_MAX_EVENTS);
	/* the row of one customer, by primary key; the tenant condition keeps RLS honest */
	if (cs != NULL)
		appendStringInfo(&sql, ", (SELECT t FROM %s t WHERE t.tenant_id = $1 AND t.%s = $2::%s)",
						 cs->qualified_table, quote_identifier(cs->key_column), cs->key_type);
	*slot = kspi_prepare_keep(sql.data, 3, argtypes);
	return *slot;
}

/*
 * The tenant's adaptive propensity counts ("<scope>|<id>" -> [positives,
 * negatives]), read at most once per kaireon.adaptation_refresh_ms per
 * backend: they move with every outcome, and a propensity a second old is as
 * good as a fresh one, so they are not worth a query per decision.
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
	MemoryContextSwitchTo(old);
	cfg->adaptation_loaded_at = now;
	return cfg->adaptation;
}

/* What a customer lookup was doing, for the error context of a failure in it. */
typedef struct LookupContext
{
	const char *customer_id;
	const KCustomerSchema *schema;
} LookupContext;

static void
lookup_errcontext(void *arg)
{
	LookupContext *lc = (LookupContext *) arg;

	errcontext("looking up customer \"%s\" by %s in %s", lc->customer_id, lc->schema->key_column,
			   lc->schema->qualified_table);
}

/*
 * The customer's data row as a JSON object, straight from the columns from
 * "first" on of a tuple: numbers as numbers, booleans, text as strings, jsonb
 * as JSON, anything else as its text form (dates and timestamps in ISO form);
 * the tenant column left out.
 */
static json_t *
row_json(HeapTuple t, TupleDesc desc, int first)
{
	json_t	   *obj;

	obj = json_object();
	for (int i = first; i <= desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i - 1);
		bool		isnull;
		Datum		d;
		json_t	   *v;

		if (att->attisdropped || strcmp(NameStr(att->attname), "tenant_id") == 0)
			continue;
		d = SPI_getbinval(t, desc, i, &isnull);
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

/* The customer's data row in a customer schema (NULL when none); args are (customer id, tenant id). */
static json_t *
customer_row(const KCustomerSchema *cs, Datum *args)
{
	json_t	   *row;
	LookupContext lc;
	ErrorContextCallback cb;

	if (cs == NULL || cs->plan == NULL)
		return NULL;
	/* a customer id that is no value of the key's type fails here: say where */
	lc.customer_id = TextDatumGetCString(args[0]);
	lc.schema = cs;
	cb.previous = error_context_stack;
	cb.callback = lookup_errcontext;
	cb.arg = &lc;
	error_context_stack = &cb;
	if (kspi_execute_plan(cs->plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading customer data failed");
	row = SPI_processed == 0 ? NULL : row_json(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
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

/*
 * The records of a record[] column of the state query, each deformed into
 * natts values (C strings for text, else the datum); returns the count.
 * values[i * natts + k] and nulls[i * natts + k] hold field k of record i.
 */
static int
record_array(HeapTuple t, TupleDesc desc, int col, int natts, Datum **values, bool **nulls)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t, desc, col, &isnull);
	Datum	   *elems;
	bool	   *elnulls;
	int			n;
	TupleDesc	rowdesc = NULL;

	*values = NULL;
	*nulls = NULL;
	if (isnull)
		return 0;
	deconstruct_array(DatumGetArrayTypeP(d), RECORDOID, -1, false, TYPALIGN_DOUBLE, &elems, &elnulls, &n);
	*values = palloc(sizeof(Datum) * natts * Max(n, 1));
	*nulls = palloc(sizeof(bool) * natts * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTupleHeader td = DatumGetHeapTupleHeader(elems[i]);
		HeapTupleData row;

		if (elnulls[i])
			elog(ERROR, "kaireon: a NULL record in the customer's state");
		if (rowdesc == NULL)
		{
			rowdesc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td), HeapTupleHeaderGetTypMod(td));
			if (rowdesc->natts != natts)
				elog(ERROR, "kaireon: a record of %d fields in the customer's state, %d expected",
					 rowdesc->natts, natts);
		}
		row.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&row.t_self);
		row.t_tableOid = InvalidOid;
		row.t_data = td;
		heap_deform_tuple(&row, rowdesc, *values + i * natts, *nulls + i * natts);
		for (int k = 0; k < natts; k++)
			if (!(*nulls)[i * natts + k] && TupleDescAttr(rowdesc, k)->atttypid == TEXTOID)
				(*values)[i * natts + k] = CStringGetDatum(TextDatumGetCString((*values)[i * natts + k]));
	}
	if (rowdesc != NULL)
		ReleaseTupleDesc(rowdesc);
	return n;
}

/* A text field of record_array's output as a C string, or NULL. */
#define REC_STR(values, nulls, i) ((nulls)[i] ? NULL : DatumGetCString((values)[i]))

/* The customer's history rows (newest first) from the state query as KEvent structs. */
static void
load_events(KRequest *req, KCustomer *cust, HeapTuple t, TupleDesc desc)
{
	Datum	   *values;
	bool	   *nulls;

	cust->nevents = record_array(t, desc, STATE_EVENTS, 5, &values, &nulls);
	cust->events = palloc0(sizeof(KEvent) * Max(cust->nevents, 1));
	for (int i = 0; i < cust->nevents; i++)
	{
		KEvent	   *ev = &cust->events[i];
		const char *type = REC_STR(values, nulls, i * 5);
		int			o;

		ev->type = strcmp(type, "recommendation") == 0 ? KEV_RECOMMENDATION :
			strcmp(type, "impression") == 0 ? KEV_IMPRESSION : KEV_OUTCOME;
		ev->outcome = REC_STR(values, nulls, i * 5 + 1);
		ev->offer_id = REC_STR(values, nulls, i * 5 + 2);
		ev->channel_id = REC_STR(values, nulls, i * 5 + 3);
		ev->at = DatumGetTimestampTz(values[i * 5 + 4]);
		o = kaireon_find_offer(req->cfg, ev->offer_id);
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
}

/* The customer's active suppressions from the state query. */
static void
load_suppressions(KCustomer *cust, HeapTuple t, TupleDesc desc)
{
	static const char *const kinds[] = {"global", "segment", "channel", "category", "sub_category", "offer"};
	Datum	   *values;
	bool	   *nulls;

	cust->nsuppressions = record_array(t, desc, STATE_SUPPRESSIONS, 3, &values, &nulls);
	cust->suppressions = palloc0(sizeof(KSuppression) * Max(cust->nsuppressions, 1));
	for (int i = 0; i < cust->nsuppressions; i++)
	{
		const char *scope = REC_STR(values, nulls, i * 3);

		for (int k = 0; k < (int) lengthof(kinds); k++)
			if (strcmp(scope, kinds[k]) == 0)
				cust->suppressions[i].kind = (KScopeKind) k;
		cust->suppressions[i].id = REC_STR(values, nulls, i * 3 + 1);
		cust->suppressions[i].reason = REC_STR(values, nulls, i * 3 + 2);
	}
}

/* Segment membership by slot from the state query's boolean[] (all false when NULL). */
static bool *
load_segments(KTenantConfig *cfg, HeapTuple t, TupleDesc desc)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t, desc, STATE_SEGMENTS, &isnull);
	bool	   *segments = palloc0(sizeof(bool) * Max(cfg->nsegment_slots, 1));

	if (!isnull)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(d), BOOLOID, 1, true, TYPALIGN_CHAR, &elems, &nulls, &n);
		for (int i = 0; i < n && i < cfg->nsegment_slots; i++)
			segments[i] = !nulls[i] && DatumGetBool(elems[i]);
	}
	return segments;
}

/* The customer data row (a composite of the table's row type in the state query) as JSON, or NULL. */
static json_t *
load_row(HeapTuple t, TupleDesc desc)
{
	bool		isnull;
	Datum		d = SPI_getbinval(t, desc, STATE_ROW, &isnull);
	HeapTupleHeader td;
	TupleDesc	rowdesc;
	HeapTupleData row;
	json_t	   *obj;

	if (isnull)
		return NULL;
	td = DatumGetHeapTupleHeader(d);
	rowdesc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td), HeapTupleHeaderGetTypMod(td));
	row.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&row.t_self);
	row.t_tableOid = InvalidOid;
	row.t_data = td;
	obj = row_json(&row, rowdesc, 1);
	ReleaseTupleDesc(rowdesc);
	return obj;
}

/*
 * Read the customer's state for a request with the one state query
 * (state_plan): attributes (customer data merged with the context, context
 * winning), segments, history, suppressions, consent, engagement, metrics;
 * and the tenant's cap usage into the request.  Runs inside the caller's SPI
 * connection.  The query is not read-only: it takes a fresh snapshot, after
 * the customer's decision lock when recording (pipeline.c), so it sees the
 * history of a concurrent decision that committed before the lock was got.
 */
KCustomer *
kaireon_load_customer(KRequest *req, const char *customer_id, json_t *context, const char *schema_name)
{
	KTenantConfig *cfg = req->cfg;
	KCustomer  *cust = palloc0(sizeof(KCustomer));
	KCustomerSchema *cs = customer_schema(cfg, schema_name);
	Datum		args[3];
	json_t	   *state = NULL;
	HeapTuple	head;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	LookupContext lc;
	ErrorContextCallback cb;

	if (cs != NULL && cs->plan == NULL)
		cs = NULL;				/* a schema without a primary key: no data row */
	cust->id = customer_id;
	cust->context = context ? context : json_object();
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = CStringGetTextDatum(customer_id);
	args[2] = TimestampTzGetDatum(history_since(req));

	/* a customer id that is no value of the key's type fails here: say where */
	if (cs != NULL)
	{
		lc.customer_id = customer_id;
		lc.schema = cs;
		cb.previous = error_context_stack;
		cb.callback = lookup_errcontext;
		cb.arg = &lc;
		error_context_stack = &cb;
	}
	if (kspi_execute_plan(state_plan(cfg, cs), args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading the customer's state failed");
	if (cs != NULL)
		error_context_stack = cb.previous;
	head = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	cust->data = cs != NULL ? load_row(head, desc) : NULL;
	cust->attrs = cust->data ? json_deep_copy(cust->data) : json_object();
	json_object_update(cust->attrs, cust->context);
	if (cfg->segment_sql != NULL)
		cust->segments = load_segments(cfg, head, desc);
	load_events(req, cust, head, desc);
	load_suppressions(cust, head, desc);
	d = SPI_getbinval(head, desc, STATE_EXTRAS, &isnull);
	if (!isnull)
		state = kj_from_jsonb(DatumGetJsonbP(d), "customer state");
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
	attrs = customer_row(customer_schema(cfg, schema_name), args);
	if (attrs == NULL)
		attrs = json_object();
	if (json_is_object(context))
		json_object_update(attrs, context);
	return attrs;
}
