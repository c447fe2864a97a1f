/*
 * config/trigger_rules.c
 *	  Trigger rules and geofences checked when written (docs/triggers.md):
 *	  the triggers kaireon_internal._validate_trigger_rule() and
 *	  _validate_geofence(), whose 22023 messages name the rule or fence and
 *	  the bad part; an action's configuration by its type (the FieldSpec
 *	  tables below, checked by fieldspec.c), also for a stored action before
 *	  it runs (decision/triggers.c); and the customer data table an
 *	  update_attribute action writes, checked against the published data
 *	  schema.  A trigger rule's condition is a guardrail expression, checked
 *	  by validate_expr.c (kaireon_check_expression).
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "util/spi.h"
#include "util/subxact.h"
#include "config/validate.h"

PG_FUNCTION_INFO_V1(kaireon_validate_trigger_rule);
PG_FUNCTION_INFO_V1(kaireon_validate_geofence);

static const char *const trigger_action_types[] = {
	"recommend", "notify", "enroll_journey", "webhook", "update_attribute", NULL
};
static const char *const geofence_action_types[] = {"recommend", "notify", NULL};
/* the fields a trigger rule's condition may compare */
static const char *const trigger_prefixes[] = {"event.", "customer.", NULL};

static const FieldSpec action_recommend[] = {
	{"channel", JT_STRING, true, NULL, 0, 1, 200},
	{"placement", JT_STRING, false, NULL, 0, 1, 200},
	{"decisionFlow", JT_STRING, false, NULL, 0, 1, 200},
	{"maxOffers", JT_INTEGER, false, NULL, 0, 1, 50},
	{"context", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec action_notify[] = {
	{"topic", JT_STRING, false, NULL, 0, 1, 200},
	{"payload", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec action_webhook[] = {
	{"url", JT_STRING, true, NULL, 0, 1, 2000},
	{"topic", JT_STRING, false, NULL, 0, 1, 200},
	{"payload", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec action_enroll_journey[] = {
	{"journeyId", JT_STRING, true, NULL, 0, 1, 200},
	FIELD_END
};
static const FieldSpec action_update_attribute[] = {
	{"attributes", JT_OBJECT, true, NULL, 0, NO_BOUND, NO_BOUND},
	{"schema", JT_STRING, false, NULL, 0, 1, 40},
	FIELD_END
};

/* The attribute values of an update_attribute action read as their fields' types (a subtransaction's step). */
typedef struct AttributeCheck
{
	const char *table;
	Oid		   *types;
	Datum	   *values;
} AttributeCheck;

/* The step: jsonb_populate_record of the table's row type over the values (errors on a bad value). */
static void
attribute_check_step(void *arg)
{
	AttributeCheck *c = (AttributeCheck *) arg;

	if (kspi_execute_with_args(psprintf("SELECT jsonb_populate_record(NULL::%s, $1) IS NULL", c->table),
							   1, c->types, c->values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: checking the attribute values failed");
}

/* The field table of an action type (one of trigger_action_types). */
static const FieldSpec *
action_fields(const char *action_type)
{
	if (strcmp(action_type, "recommend") == 0)
		return action_recommend;
	if (strcmp(action_type, "notify") == 0)
		return action_notify;
	if (strcmp(action_type, "webhook") == 0)
		return action_webhook;
	if (strcmp(action_type, "enroll_journey") == 0)
		return action_enroll_journey;
	return action_update_attribute;
}

/*
 * The customer data table an update_attribute action writes, checked against
 * the data schema: the tenant's published customer schema of that name (NULL:
 * the first by name, as recommend reads; looked up by
 * kaireon_internal._customer_data_table), every attribute one of its fields
 * and not its key, and the values of the field types (jsonb_populate_record
 * reads them as the update will).  22023 naming the rule (where) and the bad
 * attribute otherwise.  Sets *table (quoted schema.table) and *key (quoted
 * key column).  Runs inside an SPI connection, with the caller's rights.
 */
void
kaireon_customer_update_target(const char *tenant_id, const char *schema_name, json_t *attributes,
							   const char *where, char **table, char **key)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		v[2];
	char		nulls[2] = {' ', schema_name ? ' ' : 'n'};
	bool		isnull;
	json_t	   *fields;
	const char *name;
	json_t	   *value;
	Oid			jtypes[1] = {JSONBOID};
	Datum		jv[1];

	v[0] = CStringGetTextDatum(tenant_id);
	v[1] = schema_name ? CStringGetTextDatum(schema_name) : (Datum) 0;
	/* the one home of the look-up (25_data_schemas.sql) */
	if (kspi_execute_with_args("SELECT c.table_name, c.key_column, c.fields FROM kaireon_internal._customer_data_table($1, $2) c",
							   2, types, v, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the customer data schema failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: %s", where,
						schema_name ? psprintf("\"%s\" is not a published customer data schema of tenant \"%s\"",
											   schema_name, tenant_id)
						: psprintf("tenant \"%s\" has no published customer data schema", tenant_id)),
				 errhint("Publish the customer data schema first (kaireon.publish_data_schema), or name one in \"schema\".")));
	*table = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	fields = kj_from_jsonb(DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull)),
						   "schema fields");
	if (json_object_size(attributes) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: field \"attributes\" must name at least one attribute", where),
				 errhint("Pass {\"attributes\": {\"field\": value}}.")));
	json_object_foreach(attributes, name, value)
	{
		json_t	   *pk = json_object_get(fields, name);

		if (pk == NULL || json_is_true(pk))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: attribute \"%s\" %s", where, name,
							pk ? "is the key of the customer data table and cannot be updated"
							: psprintf("is not a field of the customer data table %s", *table)),
					 errhint("Name fields of the published customer data schema (kaireon.schema_fields).")));
	}
	/* the values must read as the fields' types: tried in a subtransaction, refused as 22023 */
	jv[0] = JsonbPGetDatum(kj_to_jsonb(attributes));
	{
		AttributeCheck check = {*table, jtypes, jv};
		ErrorData  *edata = ksubxact_run(attribute_check_step, &check);

		if (edata != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: field \"attributes\" holds a value the customer data table %s cannot take: %s",
							where, *table, edata->message),
					 errhint("Give each attribute a value of its field's type (kaireon.schema_fields.data_type).")));
	}
}

/* Validate an action's configuration (22023 naming where and the field). */
static void
check_action(ValidateCtx *ctx, const char *type_where, const char *action_type, json_t *config,
			 const char *const *types)
{
	if (!kaireon_in_choices(action_type, types))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: unknown action type \"%s\"", type_where, action_type),
				 errhint("Valid action types: %s.", kaireon_choices_text(types))));
	kaireon_check_fields(ctx, config, action_fields(action_type));
}

/*
 * A stored action (a trigger rule's or a geofence's) checked as when written, before it runs:
 * rows written before the checks existed (0.1.0 kept trigger_rules and geofences without
 * running them) answer 22023 naming where and the field, never a missing field at run time.
 */
void
kaireon_check_stored_action(const char *where, const char *action_type, json_t *config)
{
	ValidateCtx ctx = {0};

	ctx.where = where;
	ctx.rule_type = NULL;
	if (action_type == NULL)
		kaireon_config_error(&ctx, "type", "is required");
	if (config != NULL && !json_is_object(config))
		kaireon_config_error(&ctx, "(root)", psprintf("must be an object, not %s", kj_type_name(config)));
	check_action(&ctx, psprintf("%s type", where), action_type, config ? config : json_object(),
				 trigger_action_types);
}

/*
 * Trigger kaireon_internal._validate_trigger_rule(): a trigger rule's event
 * type ('outcome' or a registered outcome type key of the tenant), action
 * type, action configuration and condition (the guardrail expression language
 * over event.* and customer.*), refused with 22023 naming the rule and the
 * bad part.  Nulls are left to the NOT NULL constraints.
 */
Datum
kaireon_validate_trigger_rule(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tuple = kaireon_trigger_new_row(fcinfo, "_validate_trigger_rule");
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon validate", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	char	   *tenant_id = kaireon_trigger_text(td, tuple, "tenant_id");
	char	   *id = kaireon_trigger_text(td, tuple, "id");
	char	   *name = kaireon_trigger_text(td, tuple, "name");
	char	   *event_type = kaireon_trigger_text(td, tuple, "event_type");
	char	   *action_type = kaireon_trigger_text(td, tuple, "action_type");
	char	   *rule = psprintf("trigger rule \"%s\" (id %s)", name ? name : "", id ? id : "");
	json_t	   *condition;
	json_t	   *config;
	ValidateCtx ctx = {0};

	if (tenant_id == NULL || event_type == NULL || action_type == NULL)
		goto done;
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, SPI_fnumber(RelationGetDescr(td->tg_relation), "cooldown_ms"),
									 RelationGetDescr(td->tg_relation), &isnull);

		if (!isnull && (DatumGetInt64(d) < 0 || DatumGetInt64(d) > KAIREON_MAX_COOLDOWN_MS))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s cooldown_ms: " INT64_FORMAT " is not between 0 and " INT64_FORMAT " (100 years)",
							rule, DatumGetInt64(d), (int64) KAIREON_MAX_COOLDOWN_MS),
					 errhint("A rule that fires once per customer for good: 3153600000000.")));
	}
	condition = kaireon_trigger_json(td, tuple, "condition", "condition");
	config = kaireon_trigger_json(td, tuple, "action_config", "action_config");
	ctx.rule_type = NULL;

	ctx.where = psprintf("%s event_type", rule);
	if (strcmp(event_type, "outcome") != 0)
	{
		Oid			types[2] = {TEXTOID, TEXTOID};
		Datum		v[2] = {CStringGetTextDatum(tenant_id), CStringGetTextDatum(event_type)};

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "kaireon: SPI_connect failed");
		if (kspi_execute_with_args("SELECT 1 FROM kaireon.outcome_types WHERE tenant_id = $1 AND key = $2",
								   2, types, v, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: reading the outcome types failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: \"%s\" is neither \"outcome\" nor an outcome type of tenant \"%s\"",
							ctx.where, event_type, tenant_id),
					 errhint("Use \"outcome\" (every outcome kaireon.respond records) or a key of kaireon.outcome_types (click, conversion, ...).")));
		SPI_finish();
		MemoryContextSwitchTo(tmp);
	}

	ctx.where = psprintf("%s action_config", rule);
	check_action(&ctx, psprintf("%s action_type", rule), action_type, config, trigger_action_types);
	if (strcmp(action_type, "update_attribute") == 0)
	{
		char	   *table;
		char	   *key;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "kaireon: SPI_connect failed");
		MemoryContextSwitchTo(tmp);
		kaireon_customer_update_target(tenant_id, kj_str(config, "schema"), json_object_get(config, "attributes"),
									   ctx.where, &table, &key);
		SPI_finish();
		MemoryContextSwitchTo(tmp);
	}

	/* {} is a condition that always holds */
	ctx.where = psprintf("%s condition", rule);
	if (condition != NULL && json_object_size(condition) > 0)
		kaireon_check_expression(&ctx, condition, trigger_prefixes, kaireon_expression_operators);
done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return PointerGetDatum(tuple);
}

/*
 * Trigger kaireon_internal._validate_geofence(): a geofence's action
 * ({"type": "recommend" | "notify", the fields of that action type, and
 * "dwellSeconds", required for trigger_on 'dwell'}), 22023 naming the
 * geofence and the field.
 */
Datum
kaireon_validate_geofence(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tuple = kaireon_trigger_new_row(fcinfo, "_validate_geofence");
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon validate", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	char	   *id = kaireon_trigger_text(td, tuple, "id");
	char	   *name = kaireon_trigger_text(td, tuple, "name");
	char	   *trigger_on = kaireon_trigger_text(td, tuple, "trigger_on");
	json_t	   *action = kaireon_trigger_json(td, tuple, "action", "action");
	ValidateCtx ctx = {0};
	json_t	   *type;
	json_t	   *dwell;
	json_t	   *rest;

	ctx.where = psprintf("geofence \"%s\" (id %s) action", name ? name : "", id ? id : "");
	ctx.rule_type = NULL;
	if (action == NULL || trigger_on == NULL)
		goto done;
	if (!json_is_object(action))
		kaireon_config_error(&ctx, "(root)", psprintf("must be an object, not %s", kj_type_name(action)));
	type = json_object_get(action, "type");
	if (type == NULL)
		kaireon_config_error(&ctx, "type", "is required (recommend or notify)");
	if (!json_is_string(type))
		kaireon_config_error(&ctx, "type", psprintf("must be string, not %s", kj_type_name(type)));
	dwell = json_object_get(action, "dwellSeconds");
	if (dwell != NULL && (!json_is_number(dwell) || !(json_number_value(dwell) > 0) ||
						  json_number_value(dwell) > 31536000))
		kaireon_config_error(&ctx, "dwellSeconds", "must be a number of seconds above 0 and at most 31536000");
	if (strcmp(trigger_on, "dwell") == 0 && dwell == NULL)
		kaireon_config_error(&ctx, "dwellSeconds", "is required for trigger_on 'dwell'");
	if (strcmp(trigger_on, "dwell") != 0 && dwell != NULL)
		kaireon_config_error(&ctx, "dwellSeconds", psprintf("must be absent for trigger_on '%s'", trigger_on));
	rest = json_deep_copy(action);
	json_object_del(rest, "type");
	json_object_del(rest, "dwellSeconds");
	check_action(&ctx, psprintf("%s type", ctx.where), json_string_value(type), rest, geofence_action_types);
done:
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return PointerGetDatum(tuple);
}
