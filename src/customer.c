/*
 * customer.c
 *	  Reads what one request needs to know about its customer, through
 *	  indexes, in at most three prepared queries: the customer data row (by
 *	  primary key), segment membership (one EXISTS per referenced segment on
 *	  the segment views), and one query returning, as a single jsonb, the
 *	  customer's recent interaction history, active suppressions, consent,
 *	  engagement health and metric values, with the tenant's adaptation counts
 *	  and cap usage.  The parts a tenant's configuration never reads are left
 *	  out of that query when it is prepared.
 */
#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "decision.h"
#include "kaireon.h"

/* Most history rows read for one customer (the newest); documented in docs/recommend.md. */
#define KAIREON_MAX_EVENTS 10000

/*
 * Prepare the per-request state query of a tenant configuration.  $1 tenant
 * id, $2 customer id, $3 the oldest history time needed.
 */
void
kaireon_prepare_state_plan(KTenantConfig *cfg)
{
	StringInfoData sql;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT jsonb_build_object("
					 " 'events', (SELECT coalesce(jsonb_agg(jsonb_build_array(h.interaction_type, h.outcome_type_key, "
					 "             h.offer_id, h.channel_id, extract(epoch FROM h.occurred_at))), '[]') "
					 "           FROM (SELECT * FROM kaireon.interaction_history h "
					 "                  WHERE h.tenant_id = $1 AND h.customer_id = $2 AND h.occurred_at >= $3 "
					 "                  ORDER BY h.occurred_at DESC LIMIT %d) h), "
					 " 'suppressions', (SELECT coalesce(jsonb_agg(jsonb_build_array(s.scope, s.scope_id, s.reason)), '[]') "
					 "           FROM kaireon.suppressions s WHERE s.tenant_id = $1 AND s.customer_id = $2 "
					 "            AND (s.expires_at IS NULL OR s.expires_at > now()))",
					 KAIREON_MAX_EVENTS);
	if (cfg->needs_consent)
		appendStringInfoString(&sql,
							   ", 'consent', (SELECT jsonb_object_agg(c.purpose, c.status) FROM "
							   "  (SELECT DISTINCT ON (purpose) purpose, status FROM kaireon.consent_records "
							   "    WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose, created_at DESC, id DESC) c)");
	if (cfg->has_engagement)
		appendStringInfoString(&sql,
							   ", 'engagement', (SELECT e.score FROM kaireon.customer_engagement_health e "
							   "   WHERE e.tenant_id = $1 AND e.customer_id = $2)");
	if (cfg->needs_metrics)
		appendStringInfoString(&sql,
							   ", 'metrics', (SELECT jsonb_object_agg(CASE WHEN v.dimension_key = '' THEN d.key "
							   "   ELSE d.key || '|' || v.dimension_key END, v.value) "
							   "   FROM kaireon.metric_values v JOIN kaireon.metric_definitions d "
							   "     ON d.tenant_id = v.tenant_id AND d.id = v.metric_id "
							   "  WHERE v.tenant_id = $1 AND v.customer_id = $2)");
	if (cfg->needs_adaptation)
		appendStringInfoString(&sql,
							   ", 'adaptation', (SELECT jsonb_object_agg(a.scope || '|' || coalesce(a.scope_id, ''), "
							   "   jsonb_build_array(a.positives, a.negatives)) FROM kaireon.model_adaptations a "
							   "  WHERE a.tenant_id = $1 AND a.model_id IS NULL)");
	if (cfg->ncaps > 0)
		appendStringInfoString(&sql,
							   ", 'caps', coalesce((SELECT jsonb_object_agg(v.id, jsonb_build_object('used', "
							   "   CASE WHEN v.reset_at IS NOT NULL AND v.reset_at <= now() THEN 0 ELSE v.current_count END)) "
							   "   FROM kaireon.volume_constraints v WHERE v.tenant_id = $1 AND v.status = 'active'), '{}') "
							   " || coalesce((SELECT jsonb_object_agg(b.id, jsonb_build_object('impressions', b.used_impressions, "
							   "   'spend', b.used_spend, 'conversions', b.used_conversions)) "
							   "   FROM kaireon.budget_allocations b WHERE b.tenant_id = $1 AND b.status <> 'inactive'), '{}')");
	appendStringInfoChar(&sql, ')');

	cfg->state_plan = kspi_prepare_keep(sql.data, 3, argtypes);
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

/* The customer data schema a flow reads: the one it names, else the first by name. */
static KCustomerSchema *
customer_schema(KTenantConfig *cfg, const char *name)
{
	if (cfg->ncustomer_schemas == 0)
		return NULL;
	if (name == NULL)
		return &cfg->customer_schemas[0];
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
	TimestampTz day = kaireon_period_start("day", req->now);
	TimestampTz window = req->now - (TimestampTz) (req->cfg->max_lookback_hours * USECS_PER_HOUR);

	return Min(day, window);
}

/* Parse the events array of the state query into KEvent structs. */
static void
parse_events(KRequest *req, KCustomer *cust, json_t *events)
{
	size_t		i;
	json_t	   *e;

	cust->nevents = events ? json_array_size(events) : 0;
	cust->events = palloc0(sizeof(KEvent) * Max(cust->nevents, 1));
	json_array_foreach(events, i, e)
	{
		KEvent	   *ev = &cust->events[i];
		const char *type = json_string_value(json_array_get(e, 0));
		json_t	   *outcome = json_array_get(e, 1);
		json_t	   *offer = json_array_get(e, 2);
		json_t	   *channel = json_array_get(e, 3);
		double		epoch = json_number_value(json_array_get(e, 4));
		int			o;

		ev->type = strcmp(type, "recommendation") == 0 ? KEV_RECOMMENDATION :
			strcmp(type, "impression") == 0 ? KEV_IMPRESSION : KEV_OUTCOME;
		ev->outcome = json_is_string(outcome) ? json_string_value(outcome) : NULL;
		ev->offer_id = json_is_string(offer) ? json_string_value(offer) : NULL;
		ev->channel_id = json_is_string(channel) ? json_string_value(channel) : NULL;
		ev->at = (TimestampTz) (epoch * USECS_PER_SEC) -
			((TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
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

/* Parse the suppressions array into KSuppression structs. */
static void
parse_suppressions(KCustomer *cust, json_t *rows)
{
	size_t		i;
	json_t	   *r;
	static const char *const kinds[] = {"global", "segment", "channel", "category", "sub_category", "offer"};

	cust->nsuppressions = rows ? json_array_size(rows) : 0;
	cust->suppressions = palloc0(sizeof(KSuppression) * Max(cust->nsuppressions, 1));
	json_array_foreach(rows, i, r)
	{
		const char *scope = json_string_value(json_array_get(r, 0));
		json_t	   *id = json_array_get(r, 1);
		json_t	   *reason = json_array_get(r, 2);

		for (int k = 0; k < (int) lengthof(kinds); k++)
			if (strcmp(scope, kinds[k]) == 0)
				cust->suppressions[i].kind = (KScopeKind) k;
		cust->suppressions[i].id = json_is_string(id) ? json_string_value(id) : NULL;
		cust->suppressions[i].reason = json_is_string(reason) ? json_string_value(reason) : NULL;
	}
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

	cust->id = customer_id;
	cust->context = context ? context : json_object();
	args[0] = CStringGetTextDatum(customer_id);
	args[1] = CStringGetTextDatum(cfg->tenant_id);
	if (cs != NULL && cs->plan != NULL)
		cust->data = plan_json(cs->plan, args, "customer data");
	cust->attrs = cust->data ? json_deep_copy(cust->data) : json_object();
	json_object_update(cust->attrs, cust->context);

	if (cfg->segment_plan != NULL)
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
	state = plan_json(cfg->state_plan, args, "customer state");
	parse_events(req, cust, kj_array(state, "events"));
	parse_suppressions(cust, kj_array(state, "suppressions"));
	cust->consent = json_object_get(state, "consent");
	if (json_is_number(json_object_get(state, "engagement")))
	{
		cust->has_engagement = true;
		cust->engagement = kj_num(state, "engagement", 0);
	}
	cust->metrics = json_object_get(state, "metrics");
	if (cust->metrics != NULL && !json_is_object(cust->metrics))
		cust->metrics = NULL;
	req->adaptation = json_object_get(state, "adaptation");
	req->cap_usage = json_object_get(state, "caps");
	return cust;
}
