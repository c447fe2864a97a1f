/*
 * validate.c
 *	  Validates JSON configuration documents when they are written, so that a
 *	  malformed rule is refused with SQLSTATE 22023 and a message naming the
 *	  field instead of failing at decision time.
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
 * Calls run validate.c -> fieldspec.c and trigger_rules.c -> validate.c
 * (kaireon_check_expression), fieldspec.c; flowgraph.c calls validate.c and
 * fieldspec.c, journey.c fieldspec.c; validate.c reaches flowgraph.c only
 * through the hook kaireon_flow_graph_validator that flowgraph.c sets.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "pgtime.h"

#include "config/conditions.h"
#include "config/types.h"
#include "config/validate.h"

PG_FUNCTION_INFO_V1(kaireon_validate_config_trigger);
PG_FUNCTION_INFO_V1(kaireon_validate_config_sql);

/* A check over several fields of one rule type. */
typedef void (*CrossCheck) (json_t *config, ValidateCtx *ctx);

typedef struct RuleSpec
{
	const char *rule_type;
	const FieldSpec *fields;
	CrossCheck	check;
} RuleSpec;


const char *const kaireon_expression_operators[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in",
	"contains", "starts_with", "exists", "not_exists", NULL
};
static const char *const numeric_operators[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", NULL
};
static const char *const periods[] = {"day", "week", "month", NULL};
static const char *const any_all[] = {"any", "all", NULL};
static const char *const attribute_sources[] = {"any", "customer", "context", NULL};
static const char *const recency_modes[] = {"exclude", "require", NULL};
static const char *const history_levels[] = {"offer", "category", "any", NULL};
static const char *const budget_metrics[] = {"impressions", "spend", "conversions", NULL};

/* ---- qualification rules ---- */

#define QUAL_COMMON \
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND}, \
	{"multiplier", JT_NUMBER, false, NULL, 0, 0, 1}

static const FieldSpec qual_segment_required[] = {
	{"segmentIds", JT_ARRAY, true, NULL, JT_STRING, 1, 1000},
	{"match", JT_STRING, false, any_all, 0, NO_BOUND, NO_BOUND},
	QUAL_COMMON, FIELD_END
};
static const FieldSpec qual_attribute_condition[] = {
	{"attribute", JT_STRING, true, NULL, 0, 1, 200},
	{"operator", JT_STRING, true, kaireon_expression_operators, 0, NO_BOUND, NO_BOUND},
	{"value", JT_ANY, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"source", JT_STRING, false, attribute_sources, 0, NO_BOUND, NO_BOUND},
	QUAL_COMMON, FIELD_END
};
static const FieldSpec qual_propensity_threshold[] = {
	{"threshold", JT_NUMBER, true, NULL, 0, 0, 1},
	{"operator", JT_STRING, false, numeric_operators, 0, NO_BOUND, NO_BOUND},
	{"modelKey", JT_STRING, false, NULL, 0, 1, 200},
	QUAL_COMMON, FIELD_END
};
static const FieldSpec qual_recency_check[] = {
	{"interactionTypes", JT_ARRAY, false, NULL, JT_STRING, 1, 100},
	{"outcomes", JT_ARRAY, false, NULL, JT_STRING, 1, 100},
	{"withinDays", JT_NUMBER, false, NULL, 0, 0.000001, 3650},
	{"withinHours", JT_NUMBER, false, NULL, 0, 0.000001, 87600},
	{"mode", JT_STRING, false, recency_modes, 0, NO_BOUND, NO_BOUND},
	{"level", JT_STRING, false, history_levels, 0, NO_BOUND, NO_BOUND},
	QUAL_COMMON, FIELD_END
};
static const FieldSpec qual_metric_condition[] = {
	{"metricKey", JT_STRING, true, NULL, 0, 1, 200},
	{"operator", JT_STRING, true, numeric_operators, 0, NO_BOUND, NO_BOUND},
	{"value", JT_NUMBER, true, NULL, 0, NO_BOUND, NO_BOUND},
	{"dimensionKey", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	QUAL_COMMON, FIELD_END
};
static const FieldSpec qual_offer_attribute[] = {
	{"attribute", JT_STRING, true, NULL, 0, 1, 200},
	{"operator", JT_STRING, true, kaireon_expression_operators, 0, NO_BOUND, NO_BOUND},
	{"value", JT_ANY, false, NULL, 0, NO_BOUND, NO_BOUND},
	QUAL_COMMON, FIELD_END
};

/* ---- contact policies ---- */

#define POLICY_COMMON \
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND}, \
	{"bypassable", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND}, \
	{"engagementMultiplier", JT_BOOLEAN | JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND}

#define CAP_FIELDS \
	{"maxCount", JT_INTEGER, true, NULL, 0, 1, 1000000}, \
	{"period", JT_STRING, false, periods, 0, NO_BOUND, NO_BOUND}, \
	{"lookbackHours", JT_NUMBER, false, NULL, 0, 0.000001, 87600}, \
	{"countTypes", JT_ARRAY, false, NULL, JT_STRING, 1, 100}

static const FieldSpec pol_frequency_cap[] = {CAP_FIELDS, POLICY_COMMON, FIELD_END};
static const FieldSpec pol_cooldown[] = {
	{"hours", JT_NUMBER, false, NULL, 0, 0.000001, 87600},
	{"days", JT_NUMBER, false, NULL, 0, 0.000001, 3650},
	{"afterOutcomes", JT_ARRAY, false, NULL, JT_STRING, 1, 100},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_budget_exhausted[] = {
	{"budgetId", JT_STRING, false, NULL, 0, 1, 200},
	{"metric", JT_STRING, false, budget_metrics, 0, NO_BOUND, NO_BOUND},
	{"threshold", JT_NUMBER, false, NULL, 0, 0.000001, 1},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_outcome_based[] = {
	{"outcomes", JT_ARRAY, true, NULL, JT_STRING, 1, 100},
	{"suppressDays", JT_NUMBER, true, NULL, 0, 0.000001, 3650},
	{"level", JT_STRING, false, history_levels, 0, NO_BOUND, NO_BOUND},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_segment_exclusion[] = {
	{"segmentIds", JT_ARRAY, true, NULL, JT_STRING, 1, 1000},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_time_window[] = {
	{"startHour", JT_INTEGER, true, NULL, 0, 0, 23},
	{"endHour", JT_INTEGER, true, NULL, 0, 0, 24},
	{"days", JT_ARRAY, false, NULL, JT_INTEGER, 1, 7},
	{"timezone", JT_STRING, false, NULL, 0, 1, 64},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_mutual_exclusion[] = {
	{"offerIds", JT_ARRAY, true, NULL, JT_STRING, 2, 1000},
	{"lookbackHours", JT_NUMBER, false, NULL, 0, 0.000001, 87600},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_category_suppression[] = {
	{"categoryIds", JT_ARRAY, false, NULL, JT_STRING, 1, 1000},
	{"days", JT_NUMBER, true, NULL, 0, 0.000001, 3650},
	{"afterOutcomes", JT_ARRAY, false, NULL, JT_STRING, 1, 100},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_cross_channel_cap[] = {
	CAP_FIELDS,
	{"channelIds", JT_ARRAY, false, NULL, JT_STRING, 1, 1000},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_customer_total_cap[] = {CAP_FIELDS, POLICY_COMMON, FIELD_END};
static const FieldSpec pol_offer_category_cap[] = {
	CAP_FIELDS,
	{"categoryIds", JT_ARRAY, false, NULL, JT_STRING, 1, 1000},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_allow_override[] = {
	{"offerIds", JT_ARRAY, false, NULL, JT_STRING, 1, 1000},
	{"exemptRuleTypes", JT_ARRAY, false, kaireon_policy_type_names, JT_STRING, 1, KPOL_NTYPES},
	{"reason", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	POLICY_COMMON, FIELD_END
};
static const FieldSpec pol_metric_condition[] = {
	{"metricKey", JT_STRING, true, NULL, 0, 1, 200},
	{"operator", JT_STRING, true, numeric_operators, 0, NO_BOUND, NO_BOUND},
	{"value", JT_NUMBER, true, NULL, 0, NO_BOUND, NO_BOUND},
	{"dimensionKey", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	POLICY_COMMON, FIELD_END
};

static void check_condition_value(json_t *config, ValidateCtx *ctx);
static void check_flow(json_t *config, ValidateCtx *ctx);
static void check_recency(json_t *config, ValidateCtx *ctx);
static void check_cap_window(json_t *config, ValidateCtx *ctx);
static void check_cooldown(json_t *config, ValidateCtx *ctx);
static void check_time_window(json_t *config, ValidateCtx *ctx);
static void check_engagement(json_t *config, ValidateCtx *ctx);
static void check_cross_offer(json_t *config, ValidateCtx *ctx);

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

/* ---- arbitration (docs/arbitration.md) ---- */

static const char *const cross_offer_periods[] = {"daily", "weekly", "monthly", "quarterly", "run", NULL};

static const FieldSpec coc_count[] = {
	{"limit", JT_INTEGER, false, NULL, 0, 1, 1e15},
	{"period", JT_STRING, false, cross_offer_periods, 0, NO_BOUND, NO_BOUND},
	{"maxPerResponse", JT_INTEGER, false, NULL, 0, 1, 50},
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec coc_budget[] = {
	{"limit", JT_NUMBER, false, NULL, 0, 0, 1e15},
	{"period", JT_STRING, false, cross_offer_periods, 0, NO_BOUND, NO_BOUND},
	{"maxPerResponse", JT_NUMBER, false, NULL, 0, 0, 1e15},
	{"costField", JT_STRING, false, NULL, 0, 1, 200},
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};

static const RuleSpec cross_offer_specs[] = {
	{"channel_quota", coc_count, check_cross_offer},
	{"category_cap", coc_count, check_cross_offer},
	{"portfolio_budget", coc_budget, check_cross_offer},
	{NULL, NULL, NULL}
};

/* The PRIE weights of an arbitration profile (or of one EXP3-IX arm). */
static const FieldSpec profile_weight_fields[] = {
	{"propensity", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"relevance", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"impact", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"revenue", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"margin", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"emphasis", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"engagement", JT_NUMBER, false, NULL, 0, 0, 1000},
	FIELD_END
};
static const FieldSpec profile_bandit_fields[] = {
	{"arms", JT_ARRAY, true, NULL, JT_OBJECT, 2, 32},
	{"gamma", JT_NUMBER, false, NULL, 0, 0, 1},
	{"eta", JT_NUMBER, false, NULL, 0, 0.000001, 100},
	{"beta", JT_NUMBER, false, NULL, 0, 0, 1},
	FIELD_END
};

/* runs.volume_constraints */
static const FieldSpec run_limit_fields[] = {
	{"maxTotal", JT_INTEGER, false, NULL, 0, 0, 1e15},
	{"perOffer", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"perCategory", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"perChannel", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};

/* By KRuleType and KPolicyType (the names are the lists of config/types.h). */
static const RuleSpec qualification_specs[KRULE_NTYPES] = {
	[KRULE_SEGMENT_REQUIRED] = {.fields = qual_segment_required, .check = NULL},
	[KRULE_ATTRIBUTE_CONDITION] = {.fields = qual_attribute_condition, .check = check_condition_value},
	[KRULE_PROPENSITY_THRESHOLD] = {.fields = qual_propensity_threshold, .check = NULL},
	[KRULE_RECENCY_CHECK] = {.fields = qual_recency_check, .check = check_recency},
	[KRULE_METRIC_CONDITION] = {.fields = qual_metric_condition, .check = NULL},
	[KRULE_OFFER_ATTRIBUTE] = {.fields = qual_offer_attribute, .check = check_condition_value},
};

static const RuleSpec contact_specs[KPOL_NTYPES] = {
	[KPOL_FREQUENCY_CAP] = {.fields = pol_frequency_cap, .check = check_cap_window},
	[KPOL_COOLDOWN] = {.fields = pol_cooldown, .check = check_cooldown},
	[KPOL_BUDGET_EXHAUSTED] = {.fields = pol_budget_exhausted, .check = check_engagement},
	[KPOL_OUTCOME_BASED] = {.fields = pol_outcome_based, .check = check_engagement},
	[KPOL_SEGMENT_EXCLUSION] = {.fields = pol_segment_exclusion, .check = check_engagement},
	[KPOL_TIME_WINDOW] = {.fields = pol_time_window, .check = check_time_window},
	[KPOL_MUTUAL_EXCLUSION] = {.fields = pol_mutual_exclusion, .check = check_engagement},
	[KPOL_CATEGORY_SUPPRESSION] = {.fields = pol_category_suppression, .check = check_engagement},
	[KPOL_CROSS_CHANNEL_CAP] = {.fields = pol_cross_channel_cap, .check = check_cap_window},
	[KPOL_CUSTOMER_TOTAL_CAP] = {.fields = pol_customer_total_cap, .check = check_cap_window},
	[KPOL_OFFER_CATEGORY_CAP] = {.fields = pol_offer_category_cap, .check = check_cap_window},
	[KPOL_ALLOW_OVERRIDE] = {.fields = pol_allow_override, .check = check_engagement},
	[KPOL_METRIC_CONDITION] = {.fields = pol_metric_condition, .check = check_engagement},
};

/* attribute_condition / offer_attribute: the value must suit the operator. */
static void
check_condition_value(json_t *config, ValidateCtx *ctx)
{
	const char *op = json_string_value(json_object_get(config, "operator"));
	json_t	   *value = json_object_get(config, "value");

	if (strcmp(op, "exists") == 0 || strcmp(op, "not_exists") == 0)
	{
		if (value != NULL)
			kaireon_config_error(ctx, "value", psprintf("must be absent for operator \"%s\"", op));
		return;
	}
	if (value == NULL)
		kaireon_config_error(ctx, "value", psprintf("is required for operator \"%s\"", op));
	if (strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0)
	{
		if (!json_is_array(value) || json_array_size(value) == 0)
			kaireon_config_error(ctx, "value",
						 psprintf("must be a non-empty array for operator \"%s\", not %s",
								  op, kj_type_name(value)));
	}
	else if (strcmp(op, "starts_with") == 0)
	{
		if (!json_is_string(value))
			kaireon_config_error(ctx, "value",
						 psprintf("must be a string for operator \"starts_with\", not %s", kj_type_name(value)));
	}
	else if (strcmp(op, "eq") == 0 || strcmp(op, "neq") == 0 || strcmp(op, "contains") == 0)
	{
		if (!kaireon_type_matches(value, JT_SCALAR))
			kaireon_config_error(ctx, "value",
						 psprintf("must be a string, number or boolean for operator \"%s\", not %s",
								  op, kj_type_name(value)));
	}
	else if (!kaireon_type_matches(value, JT_STRING | JT_NUMBER))
		kaireon_config_error(ctx, "value",
					 psprintf("must be a number or string for operator \"%s\", not %s",
							  op, kj_type_name(value)));
}

/* recency_check: exactly one of withinDays / withinHours. */
static void
check_recency(json_t *config, ValidateCtx *ctx)
{
	bool		days = json_object_get(config, "withinDays") != NULL;
	bool		hours = json_object_get(config, "withinHours") != NULL;

	if (days == hours)
		kaireon_config_error(ctx, "withinDays", "or \"withinHours\" must be given, and not both");
}

/* Caps: exactly one window (period or lookbackHours), then the common checks. */
static void
check_cap_window(json_t *config, ValidateCtx *ctx)
{
	bool		period = json_object_get(config, "period") != NULL;
	bool		lookback = json_object_get(config, "lookbackHours") != NULL;

	if (period == lookback)
		kaireon_config_error(ctx, "period", "or \"lookbackHours\" must be given, and not both");
	check_engagement(config, ctx);
}

/* cooldown: exactly one of hours / days. */
static void
check_cooldown(json_t *config, ValidateCtx *ctx)
{
	bool		hours = json_object_get(config, "hours") != NULL;
	bool		days = json_object_get(config, "days") != NULL;

	if (hours == days)
		kaireon_config_error(ctx, "hours", "or \"days\" must be given, and not both");
	check_engagement(config, ctx);
}

/* time_window: a non-empty window and weekdays 0 (Sunday) to 6. */
static void
check_time_window(json_t *config, ValidateCtx *ctx)
{
	json_t	   *days = json_object_get(config, "days");
	size_t		i;
	json_t	   *d;

	if (json_number_value(json_object_get(config, "startHour")) ==
		json_number_value(json_object_get(config, "endHour")))
		kaireon_config_error(ctx, "endHour", "must differ from \"startHour\" (the window would be empty)");
	if (days != NULL)
		json_array_foreach(days, i, d)
		{
		if (json_number_value(d) < 0 || json_number_value(d) > 6)
			kaireon_config_error(ctx, psprintf("days[%zu]", i),
						 psprintf("must be a weekday from 0 (Sunday) to 6, not %g", json_number_value(d)));
		}
	check_engagement(config, ctx);
}

/* engagementMultiplier: true/false or {"enabled", "min", "max"} with 0 < min <= max. */
static void
check_engagement(json_t *config, ValidateCtx *ctx)
{
	static const FieldSpec fields[] = {
		{"enabled", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
		{"min", JT_NUMBER, false, NULL, 0, 0.000001, 100},
		{"max", JT_NUMBER, false, NULL, 0, 0.000001, 100},
		FIELD_END
	};
	json_t	   *em = json_object_get(config, "engagementMultiplier");
	ValidateCtx sub = {0};

	if (em == NULL || !json_is_object(em))
		return;
	sub.where = psprintf("%s.engagementMultiplier", ctx->where);
	sub.rule_type = ctx->rule_type;
	kaireon_check_fields(&sub, em, fields);
	if (json_object_get(em, "min") && json_object_get(em, "max") &&
		json_number_value(json_object_get(em, "min")) > json_number_value(json_object_get(em, "max")))
		kaireon_config_error(&sub, "min", "must not exceed \"max\"");
}

/*
 * Cross-offer constraints: a global limit needs its period and must be
 * positive; at least one of limit and maxPerResponse; a per-response budget
 * must be positive.
 */
static void
check_cross_offer(json_t *config, ValidateCtx *ctx)
{
	json_t	   *limit = json_object_get(config, "limit");
	json_t	   *per = json_object_get(config, "maxPerResponse");

	if (limit == NULL && per == NULL)
		kaireon_config_error(ctx, "limit", "or \"maxPerResponse\" is required (a constraint must limit something)");
	if (limit != NULL && json_number_value(limit) <= 0)
		kaireon_config_error(ctx, "limit", psprintf("must be greater than 0, not %g", json_number_value(limit)));
	if (limit != NULL && json_object_get(config, "period") == NULL)
		kaireon_config_error(ctx, "period", "is required with \"limit\" (daily, weekly, monthly, quarterly or run)");
	if (limit == NULL && json_object_get(config, "period") != NULL)
		kaireon_config_error(ctx, "period", "is only meaningful with \"limit\"");
	if (per != NULL && json_number_value(per) <= 0)
		kaireon_config_error(ctx, "maxPerResponse", psprintf("must be greater than 0, not %g", json_number_value(per)));
}

/* One set of PRIE weights: known keys, not all zero. */
static void
check_profile_weights(json_t *w, ValidateCtx *ctx)
{
	const char *key;
	json_t	   *v;
	double		sum = 0;

	kaireon_check_fields(ctx, w, profile_weight_fields);
	json_object_foreach(w, key, v)
		sum += json_number_value(v);
	if (json_object_size(w) > 0 && !(sum > 0))
		kaireon_config_error(ctx, "(root)", "must give some factor a positive weight");
}

/*
 * Arbitration profile weights: either PRIE weights, or EXP3-IX arms (each a
 * set of PRIE weights) with gamma, eta and beta.
 */
static void
check_profile(json_t *config, ValidateCtx *ctx)
{
	if (!json_is_object(config))
		kaireon_config_error(ctx, "(root)", psprintf("must be an object, not %s", kj_type_name(config)));
	if (json_object_get(config, "arms") != NULL)
	{
		json_t	   *arms = json_object_get(config, "arms");
		size_t		i;
		json_t	   *arm;

		kaireon_check_fields(ctx, config, profile_bandit_fields);
		json_array_foreach(arms, i, arm)
		{
			ValidateCtx sub = {psprintf("%s.arms[%zu]", ctx->where, i), NULL};

			check_profile_weights(arm, &sub);
			if (json_object_size(arm) == 0)
				kaireon_config_error(&sub, "(root)", "must give some factor a positive weight");
		}
		return;
	}
	check_profile_weights(config, ctx);
}

/* runs.volume_constraints: maxTotal and per-offer, per-category, per-channel limits (integers >= 0). */
static void
check_run_limits(json_t *config, ValidateCtx *ctx)
{
	static const char *const maps[] = {"perOffer", "perCategory", "perChannel", NULL};

	kaireon_check_fields(ctx, config, run_limit_fields);
	for (int m = 0; maps[m]; m++)
	{
		json_t	   *obj = json_object_get(config, maps[m]);
		const char *id;
		json_t	   *v;

		if (obj == NULL)
			continue;
		json_object_foreach(obj, id, v)
		{
			if (!kaireon_type_matches(v, JT_INTEGER) || json_number_value(v) < 0)
				kaireon_config_error(ctx, psprintf("%s.%s", maps[m], id),
							 psprintf("must be an integer of at least 0, not %s",
									  json_is_number(v) ? psprintf("%g", json_number_value(v)) : kj_type_name(v)));
		}
	}
}

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

/* ---- guardrail expressions ---- */

#define GUARDRAIL_MAX_DEPTH 32

/* The field prefixes of a guardrail expression (a trigger rule's condition: trigger_rules.c). */
static const char *const guardrail_prefixes[] = {"offer.", "customer.", "request.", "channel.", NULL};

/*
 * Validate an expression node of the guardrail expression language: all /
 * any / not, or a comparison whose field starts with one of prefixes.
 */
static void
check_guardrail_node(ValidateCtx *ctx, json_t *node, const char *path, int depth,
					 const char *const *prefixes, const char *const *operators)
{
	json_t	   *sub;

	if (depth > GUARDRAIL_MAX_DEPTH)
		kaireon_config_error(ctx, path, psprintf("nests deeper than %d levels", GUARDRAIL_MAX_DEPTH));
	if (!json_is_object(node))
		kaireon_config_error(ctx, path, psprintf("must be an object, not %s", kj_type_name(node)));

	if ((sub = json_object_get(node, "all")) != NULL || (sub = json_object_get(node, "any")) != NULL)
	{
		const char *op = json_object_get(node, "all") ? "all" : "any";
		size_t		i;
		json_t	   *e;

		if (json_object_size(node) != 1)
			kaireon_config_error(ctx, path, psprintf("must hold only \"%s\"", op));
		if (!json_is_array(sub) || json_array_size(sub) == 0)
			kaireon_config_error(ctx, psprintf("%s.%s", path, op), "must be a non-empty array");
		json_array_foreach(sub, i, e)
			check_guardrail_node(ctx, e, psprintf("%s.%s[%zu]", path, op, i), depth + 1, prefixes, operators);
	}
	else if ((sub = json_object_get(node, "not")) != NULL)
	{
		if (json_object_size(node) != 1)
			kaireon_config_error(ctx, path, "must hold only \"not\"");
		check_guardrail_node(ctx, sub, psprintf("%s.not", path), depth + 1, prefixes, operators);
	}
	else
	{
		const FieldSpec cmp[] = {
			{"field", JT_STRING, true, NULL, 0, 1, 200},
			{"op", JT_STRING, true, operators, 0, NO_BOUND, NO_BOUND},
			{"value", JT_ANY, false, NULL, 0, NO_BOUND, NO_BOUND},
			FIELD_END
		};
		bool		no_value;
		ValidateCtx sub_ctx = {0};
		const char *field;
		bool		ok = false;
		json_t	   *value;
		const char *op;

		sub_ctx.where = psprintf("%s at %s", ctx->where, path);
		sub_ctx.rule_type = NULL;
		kaireon_check_fields(&sub_ctx, node, cmp);
		field = json_string_value(json_object_get(node, "field"));
		for (int i = 0; prefixes[i] != NULL; i++)
			if (strncmp(field, prefixes[i], strlen(prefixes[i])) == 0 &&
				field[strlen(prefixes[i])] != '\0')
				ok = true;
		if (!ok)
		{
			StringInfoData names;

			initStringInfo(&names);
			for (int i = 0; prefixes[i] != NULL; i++)
				appendStringInfo(&names, "%s%s", i == 0 ? "" : prefixes[i + 1] ? ", " : " or ", prefixes[i]);
			kaireon_config_error(&sub_ctx, "field", psprintf("must start with %s, not \"%s\"", names.data, field));
		}
		op = json_string_value(json_object_get(node, "op"));
		value = json_object_get(node, "value");
		no_value = strcmp(op, "exists") == 0 || strcmp(op, "not_exists") == 0 ||
			strcmp(op, "is_null") == 0 || strcmp(op, "is_not_null") == 0;
		if (no_value != (value == NULL))
			kaireon_config_error(&sub_ctx, "value",
						 value ? psprintf("must be absent for op \"%s\"", op)
						 : psprintf("is required for op \"%s\"", op));
		if ((strcmp(op, "in") == 0 || strcmp(op, "not_in") == 0) && !json_is_array(value))
			kaireon_config_error(&sub_ctx, "value", psprintf("must be an array for op \"%s\"", op));
		if (strcmp(op, "regex") == 0)
		{
			if (!json_is_string(value))
				kaireon_config_error(&sub_ctx, "value", "must be a string (a regular expression) for op \"regex\"");
			(void) kaireon_compile_regex(json_string_value(value));	/* 2201B when malformed */
		}
	}
}

/*
 * Check an expression (all / any / not over comparisons of fields with one of
 * prefixes, by one of operators): for the validators of other files (flowgraph.c).
 */
void
kaireon_check_expression(ValidateCtx *ctx, json_t *node, const char *const *prefixes,
						 const char *const *operators)
{
	check_guardrail_node(ctx, node, "$", 0, prefixes, operators);
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
			return qualification_specs;
		case KCONF_CONTACT_POLICY:
			return contact_specs;
		case KCONF_CROSS_OFFER_CONSTRAINT:
			return cross_offer_specs;
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
		return t >= 0 ? &qualification_specs[t] : NULL;
	}
	if (kind == KCONF_CONTACT_POLICY)
	{
		t = kaireon_type_index(kaireon_policy_type_names, rule_type);
		return t >= 0 ? &contact_specs[t] : NULL;
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
		check_guardrail_node(&ctx, config, "$", 0, guardrail_prefixes, kaireon_expression_operators);
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
		check_profile(config, &ctx);
		return;
	}
	if (kind == KCONF_RUN_VOLUME_CONSTRAINTS)
	{
		ctx.rule_type = NULL;
		check_run_limits(config, &ctx);
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
