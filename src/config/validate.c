/*
 * config/validate.c
 *	  Validates JSON configuration documents when they are written, so that a
 *	  malformed rule is refused with SQLSTATE 22023 and a message naming the
 *	  field instead of failing at decision time: the entry points, the
 *	  dispatch by kind, and the documents of two kinds, decision flows
 *	  (version 1) and offer schedules.  The other kinds are checked by the
 *	  family's other files: validate_rules.c (qualification rules, contact
 *	  policies), validate_arbitration.c (cross-offer constraints, arbitration
 *	  profiles, run volume constraints) and validate_expr.c (guardrails: the
 *	  expression language); they share config/validate_internal.h.
 *
 * Each rule type has a table of FieldSpec rows (name, allowed JSON types,
 * required, allowed string values, numeric bounds) and an optional check for
 * rules that span fields.  Unknown fields are refused, so a misspelt key
 * cannot silently fall back to a default.  The shapes are documented in
 * docs/config.md; keep the two in step.
 *
 * Entry points: the trigger kaireon.validate_config_trigger(kind, type_column,
 * config_column) on the configuration tables, and the SQL function
 * kaireon.validate_config(kind, rule_type, config text), which also reports
 * malformed JSON text.  Trigger rules and geofences, whose messages name the
 * rule or fence, have triggers of their own (trigger_rules.c).  The checking
 * of an object against its FieldSpec table, and the 22023 report every
 * validator of the folder raises, are fieldspec.c's.
 *
 * Calls run validate.c -> validate_arbitration.c, validate_expr.c (and
 * validate_rules.c's specs, whose checks it calls through them) ->
 * fieldspec.c; trigger_rules.c -> validate_expr.c (kaireon_check_expression),
 * fieldspec.c; flowgraph.c calls validate_expr.c and fieldspec.c and reads
 * validate.c's version 1 tables, journey.c calls fieldspec.c; validate.c
 * reaches flowgraph.c only through the hook kaireon_flow_graph_validator that
 * flowgraph.c sets.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "pgtime.h"

#include "config/types.h"
#include "config/validate_internal.h"

PG_FUNCTION_INFO_V1(kaireon_validate_config_trigger);
PG_FUNCTION_INFO_V1(kaireon_validate_config_sql);

/* ---- decision flow configurations (draft_config and published snapshots) ---- */

static const char *const placement_modes[] = {"strict", "fallback", "any", NULL};
static const char *const score_methods[] = {"priority_weighted", "propensity", "formula", NULL};
static const char *const propensity_sources[] = {"model", "adaptive", NULL};

/* The version 2 validator (config/flowgraph.c sets it at load: it calls this file, not back). */
void		(*kaireon_flow_graph_validator) (json_t *config, ValidateCtx *ctx) = NULL;

static const FieldSpec flow_fields[] = {
	{"version", JT_INTEGER, false, NULL, 0, 1, 1},	/* 2: a flow graph (flowgraph.c) */
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"inventory", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"placementMatchMode", JT_STRING, false, placement_modes, 0, NO_BOUND, NO_BOUND},
	{"score", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"maxOffers", JT_INTEGER, false, NULL, 0, 1, 50},
	{"customerSchema", JT_STRING, false, NULL, 0, 1, 40},
	{"controlGroupPercent", JT_NUMBER, false, NULL, 0, 0, 100},
	{"controlAnswer", JT_ARRAY, false, NULL, JT_STRING, 0, 50},
	{"flowExperiment", JT_STRING, false, NULL, 0, 1, 200},
	FIELD_END
};
const FieldSpec kaireon_flow_inventory_fields[] = {
	{"categories", JT_ARRAY, false, NULL, JT_STRING, 0, 10000},
	{"subCategories", JT_ARRAY, false, NULL, JT_STRING, 0, 10000},
	{"offers", JT_ARRAY, false, NULL, JT_STRING, 0, 100000},
	{"excludeOffers", JT_ARRAY, false, NULL, JT_STRING, 0, 100000},
	FIELD_END
};
const FieldSpec kaireon_flow_score_fields[] = {
	{"method", JT_STRING, false, score_methods, 0, NO_BOUND, NO_BOUND},
	{"modelKey", JT_STRING, false, NULL, 0, 1, 200},
	{"experimentKey", JT_STRING, false, NULL, 0, 1, 200},
	{"propensitySource", JT_STRING, false, propensity_sources, 0, NO_BOUND, NO_BOUND},
	{"profileKey", JT_STRING, false, NULL, 0, 1, 200},
	{"weights", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
const FieldSpec kaireon_flow_weight_fields[] = {
	{"propensity", JT_NUMBER, false, NULL, 0, 0, 1},
	{"relevance", JT_NUMBER, false, NULL, 0, 0, 1},
	{"impact", JT_NUMBER, false, NULL, 0, 0, 1},
	{"emphasis", JT_NUMBER, false, NULL, 0, 0, 1},
	FIELD_END
};

/* ---- offer schedules ---- */

static const FieldSpec schedule_fields[] = {
	{"start", JT_STRING, false, NULL, 0, 1, 64},
	{"end", JT_STRING, false, NULL, 0, 1, 64},
	{"days", JT_ARRAY, false, NULL, JT_INTEGER, 1, 7},
	{"hours", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"timezone", JT_STRING, false, NULL, 0, 1, 64},
	FIELD_END
};
static const FieldSpec schedule_hours_fields[] = {
	{"start", JT_INTEGER, true, NULL, 0, 0, 23},
	{"end", JT_INTEGER, true, NULL, 0, 1, 24},
	FIELD_END
};

/* Decision flows: the nested inventory, score and weights objects. */
static void
check_flow(json_t *config, ValidateCtx *ctx)
{
	json_t	   *inv = json_object_get(config, "inventory");
	json_t	   *score = json_object_get(config, "score");
	ValidateCtx sub = {0};

	sub.rule_type = NULL;
	if (inv != NULL)
	{
		sub.where = psprintf("%s.inventory", ctx->where);
		kaireon_check_fields(&sub, inv, kaireon_flow_inventory_fields);
	}
	if (score != NULL)
	{
		json_t	   *w = json_object_get(score, "weights");

		sub.where = psprintf("%s.score", ctx->where);
		kaireon_check_fields(&sub, score, kaireon_flow_score_fields);
		if (w != NULL)
		{
			sub.where = psprintf("%s.score.weights", ctx->where);
			kaireon_check_fields(&sub, w, kaireon_flow_weight_fields);
		}
	}
}

/* Error context naming the schedule field whose timestamp is being parsed. */
static void
schedule_errcontext(void *arg)
{
	errcontext("in field \"%s\" of an offer schedule", (const char *) arg);
}

/* Parse a schedule timestamp with timestamptz_in: a bad one raises its own error, with context. */
static TimestampTz
schedule_timestamp(const char *field, const char *value)
{
	ErrorContextCallback cb;
	TimestampTz ts;

	cb.callback = schedule_errcontext;
	cb.arg = (void *) field;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(value),
												 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	error_context_stack = cb.previous;
	return ts;
}

/* Offer schedules: timestamps that parse, end after start, weekdays, hours, a known time zone. */
static void
check_schedule(json_t *config, ValidateCtx *ctx)
{
	const char *start = kj_str(config, "start");
	const char *end = kj_str(config, "end");
	const char *tz = kj_str(config, "timezone");
	json_t	   *days = json_object_get(config, "days");
	json_t	   *hours = json_object_get(config, "hours");
	size_t		i;
	json_t	   *d;

	if (start && end && schedule_timestamp("end", end) <= schedule_timestamp("start", start))
		kaireon_config_error(ctx, "end", "must be later than \"start\"");
	else if (start)
		(void) schedule_timestamp("start", start);
	else if (end)
		(void) schedule_timestamp("end", end);
	json_array_foreach(days, i, d)
	{
		if (json_number_value(d) < 0 || json_number_value(d) > 6)
			kaireon_config_error(ctx, psprintf("days[%zu]", i),
						 psprintf("must be a weekday from 0 (Sunday) to 6, not %g", json_number_value(d)));
	}
	if (hours != NULL)
	{
		ValidateCtx sub = {0};

		sub.where = psprintf("%s.hours", ctx->where);
		sub.rule_type = NULL;
		kaireon_check_fields(&sub, hours, schedule_hours_fields);
		if (kj_num(hours, "start", 0) == kj_num(hours, "end", 0))
			kaireon_config_error(&sub, "end", "must differ from \"start\" (the window would be empty)");
	}
	if (tz != NULL && pg_tzset(tz) == NULL)
		kaireon_config_error(ctx, "timezone", psprintf("names no known time zone: \"%s\"", tz));
}

/* ---- entry points ---- */

/* Map a kind name ('qualification_rule', 'contact_policy', 'guardrail') to the enum. */
bool
kaireon_config_kind_from_name(const char *name, KaireonConfigKind *kind)
{
	if (strcmp(name, "qualification_rule") == 0)
		*kind = KCONF_QUALIFICATION_RULE;
	else if (strcmp(name, "contact_policy") == 0)
		*kind = KCONF_CONTACT_POLICY;
	else if (strcmp(name, "guardrail") == 0)
		*kind = KCONF_GUARDRAIL;
	else if (strcmp(name, "decision_flow") == 0)
		*kind = KCONF_DECISION_FLOW;
	else if (strcmp(name, "offer_schedule") == 0)
		*kind = KCONF_OFFER_SCHEDULE;
	else if (strcmp(name, "cross_offer_constraint") == 0)
		*kind = KCONF_CROSS_OFFER_CONSTRAINT;
	else if (strcmp(name, "arbitration_profile") == 0)
		*kind = KCONF_ARBITRATION_PROFILE;
	else if (strcmp(name, "run_volume_constraints") == 0)
		*kind = KCONF_RUN_VOLUME_CONSTRAINTS;
	else
		return false;
	return true;
}

/* The spec table for a kind (NULL for kinds without rule types). */
static const RuleSpec *
specs_for(KaireonConfigKind kind)
{
	switch (kind)
	{
		case KCONF_QUALIFICATION_RULE:
			return kaireon_qualification_specs;
		case KCONF_CONTACT_POLICY:
			return kaireon_contact_specs;
		case KCONF_CROSS_OFFER_CONSTRAINT:
			return kaireon_cross_offer_specs;
		case KCONF_GUARDRAIL:
		case KCONF_DECISION_FLOW:
		case KCONF_OFFER_SCHEDULE:
		case KCONF_ARBITRATION_PROFILE:
		case KCONF_RUN_VOLUME_CONSTRAINTS:
			return NULL;
	}
	return NULL;
}

/* Find a rule type's spec, or NULL. */
static const RuleSpec *
find_rule_spec(KaireonConfigKind kind, const char *rule_type)
{
	const RuleSpec *specs = specs_for(kind);
	int			t;

	if (kind == KCONF_QUALIFICATION_RULE)
	{
		t = kaireon_type_index(kaireon_qualification_type_names, rule_type);
		return t >= 0 ? &kaireon_qualification_specs[t] : NULL;
	}
	if (kind == KCONF_CONTACT_POLICY)
	{
		t = kaireon_type_index(kaireon_policy_type_names, rule_type);
		return t >= 0 ? &kaireon_contact_specs[t] : NULL;
	}
	if (specs == NULL || rule_type == NULL)
		return NULL;
	for (int i = 0; specs[i].rule_type != NULL; i++)
		if (strcmp(specs[i].rule_type, rule_type) == 0)
			return &specs[i];
	return NULL;
}

/* Is rule_type a rule type of this kind (always true for guardrails, which have none)? */
bool
kaireon_config_rule_type_known(KaireonConfigKind kind, const char *rule_type)
{
	return specs_for(kind) == NULL || find_rule_spec(kind, rule_type) != NULL;
}

/* Validate one configuration document; raise 22023 naming the first bad field. */
void
kaireon_validate_config(KaireonConfigKind kind, const char *rule_type,
						json_t *config, const char *where)
{
	ValidateCtx ctx = {0};

	ctx.where = where;
	ctx.rule_type = rule_type;

	if (kind == KCONF_GUARDRAIL)
	{
		ctx.rule_type = NULL;
		kaireon_check_guardrail_node(&ctx, config, "$", 0, kaireon_guardrail_prefixes, kaireon_expression_operators);
		return;
	}
	if (kind == KCONF_OFFER_SCHEDULE)
	{
		ctx.rule_type = NULL;
		kaireon_check_fields(&ctx, config, schedule_fields);
		check_schedule(config, &ctx);
		return;
	}
	if (kind == KCONF_DECISION_FLOW)
	{
		json_t	   *version = json_is_object(config) ? json_object_get(config, "version") : NULL;

		ctx.rule_type = NULL;
		if (version != NULL && json_is_number(version) && json_number_value(version) == 2)
		{
			if (kaireon_flow_graph_validator == NULL)
				elog(ERROR, "kaireon: the flow graph validator is not loaded");
			ctx.doc = "docs/flows.md";
			kaireon_flow_graph_validator(config, &ctx);
			return;
		}
		kaireon_check_fields(&ctx, config, flow_fields);
		check_flow(config, &ctx);
		return;
	}
	if (kind == KCONF_ARBITRATION_PROFILE)
	{
		ctx.rule_type = NULL;
		kaireon_check_profile(config, &ctx);
		return;
	}
	if (kind == KCONF_RUN_VOLUME_CONSTRAINTS)
	{
		ctx.rule_type = NULL;
		kaireon_check_run_limits(config, &ctx);
		return;
	}
	else
	{
		const RuleSpec *spec = find_rule_spec(kind, rule_type);

		if (spec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown rule type \"%s\" for %s", rule_type ? rule_type : "(null)", where),
					 errhint("Valid rule types: %s.",
							 kind == KCONF_CONTACT_POLICY ? kaireon_choices_text(kaireon_policy_type_names)
							 : kind == KCONF_CROSS_OFFER_CONSTRAINT ? "channel_quota, portfolio_budget, category_cap"
							 : kaireon_choices_text(kaireon_qualification_type_names))));
		kaireon_check_fields(&ctx, config, spec->fields);
		if (spec->check)
			spec->check(config, &ctx);
	}
}

/*
 * Trigger kaireon.validate_config_trigger(kind, type_column, config_column):
 * validates NEW.config_column for the rule type in NEW.type_column (pass ''
 * for kinds without a type).  An unknown rule type is left to the table's
 * CHECK constraint, which names the allowed values.
 */
Datum
kaireon_validate_config_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	TupleDesc	tupdesc;
	HeapTuple	tuple;
	KaireonConfigKind kind;
	char	   *rule_type = NULL;
	int			attno;
	bool		isnull;
	Datum		d;
	char	   *where;
	MemoryContext tmp,
				old;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		elog(ERROR, "validate_config_trigger must be a BEFORE INSERT OR UPDATE row trigger");

	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs != 3)
		elog(ERROR, "validate_config_trigger takes (kind, type_column, config_column)");
	if (!kaireon_config_kind_from_name(trigger->tgargs[0], &kind))
		elog(ERROR, "validate_config_trigger: unknown kind \"%s\"", trigger->tgargs[0]);

	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	tupdesc = RelationGetDescr(trigdata->tg_relation);

	if (trigger->tgargs[1][0] != '\0')
	{
		attno = SPI_fnumber(tupdesc, trigger->tgargs[1]);
		if (attno <= 0)
			elog(ERROR, "validate_config_trigger: no column \"%s\"", trigger->tgargs[1]);
		d = heap_getattr(tuple, attno, tupdesc, &isnull);
		if (isnull)
			return PointerGetDatum(tuple);	/* NOT NULL constraint reports it */
		rule_type = TextDatumGetCString(d);
		if (!kaireon_config_rule_type_known(kind, rule_type))
			return PointerGetDatum(tuple);	/* CHECK constraint reports it */
	}

	attno = SPI_fnumber(tupdesc, trigger->tgargs[2]);
	if (attno <= 0)
		elog(ERROR, "validate_config_trigger: no column \"%s\"", trigger->tgargs[2]);
	d = heap_getattr(tuple, attno, tupdesc, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);

	where = psprintf("%s.%s", RelationGetRelationName(trigdata->tg_relation), trigger->tgargs[2]);
	tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon validate", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(tmp);
	kaireon_validate_config(kind, rule_type, kj_from_jsonb(DatumGetJsonbP(d), where), where);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);

	return PointerGetDatum(tuple);
}

/* kaireon.validate_config(kind, rule_type, config text): true, or 22023 naming the problem. */
Datum
kaireon_validate_config_sql(PG_FUNCTION_ARGS)
{
	KaireonConfigKind kind;
	char	   *kind_name;
	char	   *rule_type;
	text	   *config;
	MemoryContext tmp,
				old;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("kind and config must not be null"),
				 errhint("Call kaireon.validate_config('qualification_rule', 'attribute_condition', '{...}').")));
	kind_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!kaireon_config_kind_from_name(kind_name, &kind))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown configuration kind \"%s\"", kind_name),
				 errhint("Use qualification_rule, contact_policy, guardrail, decision_flow, offer_schedule, cross_offer_constraint, arbitration_profile or run_volume_constraints.")));
	rule_type = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	config = PG_GETARG_TEXT_PP(2);

	tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon validate", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(tmp);
	kaireon_validate_config(kind, rule_type,
							kj_parse(VARDATA_ANY(config), VARSIZE_ANY_EXHDR(config), "config"),
							"config");
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	PG_RETURN_BOOL(true);
}
