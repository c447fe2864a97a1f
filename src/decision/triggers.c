/*
 * decision/triggers.c
 *	  Trigger rules and the actions of trigger rules and geofences
 *	  (docs/triggers.md).
 *
 * Protocol.  kaireon.respond calls kaireon_fire_triggers after it has written
 * an outcome, inside its SPI connection and transaction.  The tenant's active
 * trigger rules come from the compiled configuration (config/compile.c: their
 * conditions are compiled once per configuration version); a rule matches
 * when its event_type is 'outcome' or the outcome's key and its condition
 * holds over event.* (the outcome) and customer.* (the customer's data row,
 * read once, only if a condition names it).  Every condition is evaluated
 * before any action runs.  Then, by priority (highest first, then id), each
 * matching rule with a cooldown takes a transaction advisory lock on (tenant,
 * rule, customer) and looks, under the latest snapshot, for a firing of the
 * rule for the customer closer in time than cooldown_ms to the event: so two
 * concurrent events fire once, at any isolation level.  A rule that fires
 * runs its action and appends a trigger_rule_firings row with what it did.
 *
 * Actions (kaireon_run_action, also the geofences' actions) are SQL statements
 * run with the caller's rights, never more: recommend (kaireon.recommend, a
 * recorded decision), notify and webhook (an outbox event), enroll_journey
 * (kaireon.enroll_in_journey; the journey engine advances the enrolment) and
 * update_attribute (the customer's row of the
 * published customer data table, the attributes checked against the schema;
 * it wakes the journey enrolments waiting for "attribute_change").
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "config/conditions.h"
#include "config/validate.h"
#include "decision/decision.h"

/* What a trigger rule's condition reads: the event and, on demand, the customer. */
typedef struct TriggerSubject
{
	KTenantConfig *cfg;
	const char *customer_id;
	json_t	   *event;
	json_t	   *customer;		/* NULL until a condition names customer.* */
} TriggerSubject;

/* A matched rule, copied out of the compiled configuration before any action runs. */
typedef struct Matched
{
	char	   *id;
	char	   *name;
	char	   *action_type;
	json_t	   *action_config;
	int64		cooldown_ms;
} Matched;

/* Resolve a trigger condition's field (event.*, customer.*). */
static json_t *
trigger_value(const char *field, void *arg)
{
	TriggerSubject *s = arg;

	if (strncmp(field, "event.", 6) == 0)
		return kaireon_path(s->event, field + 6);
	if (strncmp(field, "customer.", 9) == 0)
	{
		if (s->customer == NULL)
			s->customer = s->cfg->ncustomer_schemas > 0 ?
				kaireon_customer_attributes(s->cfg, s->customer_id, NULL, NULL) : json_object();
		return kaireon_path(s->customer, field + 9);
	}
	return NULL;
}

/* Run a statement of an action; the SPI result code checked. */
static void
action_exec(const char *sql, int n, Oid *types, Datum *values, const char *nulls, int expect)
{
	if (kspi_execute_with_args(sql, n, types, values, nulls, false, 0) != expect)
		elog(ERROR, "kaireon: trigger action statement failed: %s", sql);
}

/* jsonb datum of a JSON value. */
static Datum
jsonb_datum(json_t *v)
{
	return JsonbPGetDatum(kj_to_jsonb(v));
}

/* recommend: a recorded decision for the customer on the action's channel and placement. */
static json_t *
action_recommend(const char *tenant_id, const char *customer_id, json_t *config)
{
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, INT4OID, TEXTOID};
	Datum		v[7];	/* the options ask for no explanations: the action reads only the offers */
	char		nulls[8] = "       ";
	json_t	   *context = json_object_get(config, "context");
	json_t	   *result = json_object();
	bool		isnull;
	Datum		d;

	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = CStringGetTextDatum(customer_id);
	v[2] = CStringGetTextDatum(kj_str(config, "channel"));
	if (kj_str(config, "placement"))
		v[3] = CStringGetTextDatum(kj_str(config, "placement"));
	else
		nulls[3] = 'n';
	v[4] = jsonb_datum(context ? context : json_object());
	if (json_object_get(config, "maxOffers"))
		v[5] = Int32GetDatum((int32) kj_num(config, "maxOffers", 1));
	else
		nulls[5] = 'n';
	if (kj_str(config, "decisionFlow"))
		v[6] = CStringGetTextDatum(kj_str(config, "decisionFlow"));
	else
		nulls[6] = 'n';
	action_exec("SELECT min(r.recommendation_id), coalesce(jsonb_agg(r.offer_id ORDER BY r.rank) "
				"       FILTER (WHERE r.rank IS NOT NULL), '[]') "
				"  FROM kaireon.recommend($1, $2, $3, $4, $5, $6, $7, '{\"explain\": false}') r",
				7, types, v, nulls, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	json_object_set_new(result, "recommendationId", isnull ? json_null() : json_string(TextDatumGetCString(d)));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	json_object_set_new(result, "offers", kj_from_jsonb(DatumGetJsonbP(d), "offers"));
	return result;
}

/* notify and webhook: an outbox event, delivered by the outbox's handlers. */
static json_t *
action_outbox(const char *tenant_id, const char *customer_id, const char *action_type, json_t *config,
			  json_t *source, json_t *event)
{
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		v[3];
	const char *topic = kj_str(config, "topic");
	json_t	   *payload = json_object();
	bool		isnull;

	if (topic == NULL)
		topic = strcmp(action_type, "webhook") == 0 ? "trigger.webhook" : "trigger.notify";
	json_object_set_new(payload, "tenantId", json_string(tenant_id));
	json_object_set_new(payload, "customerId", json_string(customer_id));
	json_object_set_new(payload, "action", json_string(action_type));
	json_object_set(payload, "source", source);
	json_object_set(payload, "event", event);
	if (kj_str(config, "url"))
		json_object_set_new(payload, "url", json_string(kj_str(config, "url")));
	if (json_object_get(config, "payload"))
		json_object_set(payload, "payload", json_object_get(config, "payload"));
	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = CStringGetTextDatum(topic);
	v[2] = jsonb_datum(payload);
	action_exec("INSERT INTO kaireon.outbox_events (tenant_id, topic, payload) VALUES ($1, $2, $3) RETURNING id",
				3, types, v, NULL, SPI_OK_INSERT_RETURNING);
	return json_pack("{s:s,s:s}", "outboxEventId",
					 TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
					 "topic", topic);
}

/*
 * enroll_journey: kaireon.enroll_in_journey (48_journeys.sql, the one home of
 * enrolment: the published version's entry step, at most one active
 * enrolment per customer and journey, re-entry only when the journey allows
 * it), with the trigger's source as the reason.  Advancing it is the journey
 * engine's part.
 */
static json_t *
action_enroll(const char *tenant_id, const char *customer_id, json_t *config, json_t *source, TimestampTz at)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum		v[5];
	bool		isnull;
	Datum		result;

	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = CStringGetTextDatum(kj_str(config, "journeyId"));
	v[2] = CStringGetTextDatum(customer_id);
	v[3] = jsonb_datum(source);
	v[4] = TimestampTzGetDatum(at);
	action_exec("SELECT kaireon.enroll_in_journey($1, $2, $3, $4, $5)",
				5, types, v, NULL, SPI_OK_SELECT);
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "kaireon.enroll_in_journey returned NULL");
	return kj_from_jsonb(DatumGetJsonbP(result), "kaireon.enroll_in_journey");
}

/*
 * update_attribute: the customer's row of the customer data table, checked
 * against its schema; a changed row wakes the customer's enrolments waiting
 * for "attribute_change" at the event's time.
 */
static json_t *
action_update(const char *tenant_id, const char *customer_id, json_t *config, TimestampTz at, const char *where)
{
	json_t	   *result;
	json_t	   *attributes = json_object_get(config, "attributes");
	char	   *table;
	char	   *key;
	StringInfoData cols;
	StringInfoData vals;
	const char *name;
	json_t	   *value;
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		v[2];

	kaireon_customer_update_target(tenant_id, kj_str(config, "schema"), attributes, where, &table, &key);
	initStringInfo(&cols);
	initStringInfo(&vals);
	json_object_foreach(attributes, name, value)
	{
		appendStringInfo(&cols, "%s%s", cols.len ? ", " : "", quote_identifier(name));
		appendStringInfo(&vals, "%sr.%s", vals.len ? ", " : "", quote_identifier(name));
	}
	v[0] = jsonb_datum(attributes);
	v[1] = CStringGetTextDatum(customer_id);
	action_exec(psprintf("UPDATE %s AS t SET (%s) = ROW(%s) FROM jsonb_populate_record(NULL::%s, $1) r "
						 "WHERE t.%s = $2", table, cols.data, vals.data, table, key),
				2, types, v, NULL, SPI_OK_UPDATE);
	result = json_pack("{s:s,s:I}", "table", table, "updated", (json_int_t) SPI_processed);
	/* a changed row is the event "attribute_change" of the customer (decision/wake.c) */
	if (SPI_processed > 0)
	{
		const char *event_types[1] = {"attribute_change"};
		int64		woken = kaireon_wake_journeys(kaireon_config_get(tenant_id), customer_id, event_types, 1, at);

		if (woken > 0)
			json_object_set_new(result, "journeysWoken", json_integer((json_int_t) woken));
	}
	return result;
}

/*
 * Run one action of a trigger rule or a geofence for the customer, with the
 * caller's rights; source says what fired it (for the outbox payload and the
 * enrolment's history), where names it in messages.  The result as JSON.
 * Must be called inside an SPI connection.
 */
json_t *
kaireon_run_action(const char *tenant_id, const char *customer_id, const char *action_type, json_t *config,
				   json_t *source, json_t *event, TimestampTz at, const char *where)
{
	kaireon_check_stored_action(where, action_type, config);
	if (strcmp(action_type, "recommend") == 0)
		return action_recommend(tenant_id, customer_id, config);
	if (strcmp(action_type, "notify") == 0 || strcmp(action_type, "webhook") == 0)
		return action_outbox(tenant_id, customer_id, action_type, config, source, event);
	if (strcmp(action_type, "enroll_journey") == 0)
		return action_enroll(tenant_id, customer_id, config, source, at);
	if (strcmp(action_type, "update_attribute") == 0)
		return action_update(tenant_id, customer_id, config, at, where);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s has an unknown action type \"%s\"", where, action_type),
			 errhint("Valid action types: recommend, notify, enroll_journey, webhook, update_attribute.")));
	return NULL;
}

/*
 * Is the rule cooling down for the customer?  Takes the transaction advisory
 * lock of (tenant, rule, customer), then looks for a firing closer than the
 * cooldown to at under the latest snapshot, which sees a concurrent firing
 * committed while this transaction waited for the lock, whatever the
 * isolation level.
 */
static bool
cooling_down(const char *tenant_id, const Matched *m, const char *customer_id, TimestampTz at)
{
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID};
	Datum		v[5];
	SPIPlanPtr	plan;
	int			rc;
	int			nest;

	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = CStringGetTextDatum(m->id);
	v[2] = CStringGetTextDatum(customer_id);
	v[3] = TimestampTzGetDatum(at);
	v[4] = Int64GetDatum(m->cooldown_ms);
	action_exec("SELECT pg_advisory_xact_lock(hashtextextended('kaireon trigger ' || $1 || '/' || $2 || '/' || $3, 0))",
				3, types, v, NULL, SPI_OK_SELECT);
	nest = kspi_pin_search_path();	/* prepared under the path it runs under (util/spi.c) */
	plan = SPI_prepare("SELECT 1 FROM kaireon.trigger_rule_firings f "
					   " WHERE f.tenant_id = $1 AND f.trigger_rule_id = $2 AND f.customer_id = $3 "
					   "   AND f.fired_at > $4 - $5 * interval '1 millisecond' "
					   "   AND f.fired_at < $4 + $5 * interval '1 millisecond' LIMIT 1",
					   5, types);
	kspi_unpin_search_path(nest);
	if (plan == NULL)
		elog(ERROR, "kaireon: preparing the cooldown check failed");
	CommandCounterIncrement();
	rc = kspi_execute_snapshot(plan, v, NULL, GetLatestSnapshot(), InvalidSnapshot, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: the cooldown check failed");
	return SPI_processed > 0;
}

/*
 * Fire the tenant's trigger rules (of its compiled configuration cfg)
 * matching an outcome (event: the outcome's fields, as respond returns them,
 * with its context) of the customer at the event's time.  Returns the
 * firings as a JSON array ([] when none).  Inside respond's SPI connection;
 * cfg is read before the first action only (an action's decision may
 * recompile it), and the caller must not use it afterwards.
 */
json_t *
kaireon_fire_triggers(KTenantConfig *cfg, const char *customer_id, const char *outcome, json_t *event,
					  TimestampTz at)
{
	const char *tenant_id = pstrdup(cfg->tenant_id);
	TriggerSubject subject = {cfg, customer_id, event, NULL};
	Matched    *matched;
	int			nmatched = 0;
	json_t	   *fired = json_array();

	if (cfg->ntrigger_rules == 0)
		return fired;
	matched = palloc(sizeof(Matched) * cfg->ntrigger_rules);
	for (int i = 0; i < cfg->ntrigger_rules; i++)
	{
		const KTriggerRule *r = &cfg->trigger_rules[i];

		if (strcmp(r->event_type, "outcome") != 0 && strcmp(r->event_type, outcome) != 0)
			continue;
		if (r->cond != NULL && !kaireon_expr_holds(r->cond, trigger_value, &subject))
			continue;
		/* copied: an action (a decision) may recompile the configuration */
		matched[nmatched].id = pstrdup(r->id);
		matched[nmatched].name = pstrdup(r->name);
		matched[nmatched].action_type = pstrdup(r->action_type);
		matched[nmatched].action_config = json_deep_copy(r->action_config);
		matched[nmatched].cooldown_ms = r->cooldown_ms;
		nmatched++;
	}

	for (int i = 0; i < nmatched; i++)
	{
		const Matched *m = &matched[i];
		Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID, JSONBOID};
		Datum		v[7];
		json_t	   *source;
		json_t	   *result;

		if (m->cooldown_ms > 0 && cooling_down(tenant_id, m, customer_id, at))
			continue;
		source = json_pack("{s:s,s:s}", "triggerRuleId", m->id, "triggerRuleName", m->name);
		result = kaireon_run_action(tenant_id, customer_id, m->action_type, m->action_config, source, event, at,
									psprintf("trigger rule \"%s\" (id %s)", m->name, m->id));
		v[0] = CStringGetTextDatum(tenant_id);
		v[1] = CStringGetTextDatum(m->id);
		v[2] = CStringGetTextDatum(customer_id);
		v[3] = CStringGetTextDatum(outcome);
		v[4] = TimestampTzGetDatum(at);
		v[5] = jsonb_datum(event);
		v[6] = jsonb_datum(result);
		action_exec("INSERT INTO kaireon.trigger_rule_firings (tenant_id, trigger_rule_id, customer_id, event_type, "
					"  fired_at, event, result) VALUES ($1, $2, $3, $4, $5, $6, $7)",
					7, types, v, NULL, SPI_OK_INSERT);
		json_array_append_new(fired, json_pack("{s:s,s:s,s:o}", "triggerRuleId", m->id, "action", m->action_type,
											   "result", result));
	}
	return fired;
}
