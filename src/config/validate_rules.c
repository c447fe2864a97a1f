/*
 * config/validate_rules.c
 *	  Qualification rules and contact policies checked when written: the
 *	  FieldSpec table of each rule type and policy type, the checks that
 *	  span fields, and the specs by KRuleType and KPolicyType in which
 *	  validate.c's dispatch looks a rule type up (validate_internal.h).  The
 *	  shapes are documented in docs/config.md; keep the two in step.
 */
#include "postgres.h"

#include "util/json.h"

#include "config/types.h"
#include "config/validate_internal.h"

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
static void check_recency(json_t *config, ValidateCtx *ctx);
static void check_cap_window(json_t *config, ValidateCtx *ctx);
static void check_cooldown(json_t *config, ValidateCtx *ctx);
static void check_time_window(json_t *config, ValidateCtx *ctx);
static void check_engagement(json_t *config, ValidateCtx *ctx);

/* By KRuleType and KPolicyType (the names are the lists of config/types.h). */
const RuleSpec kaireon_qualification_specs[KRULE_NTYPES] = {
	[KRULE_SEGMENT_REQUIRED] = {.fields = qual_segment_required, .check = NULL},
	[KRULE_ATTRIBUTE_CONDITION] = {.fields = qual_attribute_condition, .check = check_condition_value},
	[KRULE_PROPENSITY_THRESHOLD] = {.fields = qual_propensity_threshold, .check = NULL},
	[KRULE_RECENCY_CHECK] = {.fields = qual_recency_check, .check = check_recency},
	[KRULE_METRIC_CONDITION] = {.fields = qual_metric_condition, .check = NULL},
	[KRULE_OFFER_ATTRIBUTE] = {.fields = qual_offer_attribute, .check = check_condition_value},
};

const RuleSpec kaireon_contact_specs[KPOL_NTYPES] = {
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
