/*
 * config/validate_expr.c
 *	  The guardrail expression language checked when written: all / any /
 *	  not over comparisons of a field with a value, each field starting with
 *	  one of the allowed prefixes and compared by one of the allowed
 *	  operators (a regular expression compiled when the operator is regex).
 *	  Guardrails are checked with their prefixes by validate.c; trigger
 *	  rules' conditions (trigger_rules.c) and flow graphs' filters and
 *	  branches (flowgraph.c) with theirs through kaireon_check_expression.
 *	  Calls only fieldspec.c and conditions.c.
 */
#include "postgres.h"

#include "util/json.h"

#include "lib/stringinfo.h"

#include "config/conditions.h"
#include "config/validate_internal.h"

/* ---- guardrail expressions ---- */

#define GUARDRAIL_MAX_DEPTH 32

const char *const kaireon_expression_operators[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in",
	"contains", "starts_with", "exists", "not_exists", NULL
};

/* The field prefixes of a guardrail expression (a trigger rule's condition: trigger_rules.c). */
const char *const kaireon_guardrail_prefixes[] = {"offer.", "customer.", "request.", "channel.", NULL};

/*
 * Validate an expression node of the guardrail expression language: all /
 * any / not, or a comparison whose field starts with one of prefixes.
 */
void
kaireon_check_guardrail_node(ValidateCtx *ctx, json_t *node, const char *path, int depth,
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
			kaireon_check_guardrail_node(ctx, e, psprintf("%s.%s[%zu]", path, op, i), depth + 1, prefixes, operators);
	}
	else if ((sub = json_object_get(node, "not")) != NULL)
	{
		if (json_object_size(node) != 1)
			kaireon_config_error(ctx, path, "must hold only \"not\"");
		kaireon_check_guardrail_node(ctx, sub, psprintf("%s.not", path), depth + 1, prefixes, operators);
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
	kaireon_check_guardrail_node(ctx, node, "$", 0, prefixes, operators);
}
