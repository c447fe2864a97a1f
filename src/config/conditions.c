/*
 * config/conditions.c
 *	  Conditions and scopes over the compiled configuration that need no
 *	  request: following an attribute path, comparing a value with a
 *	  condition's constant, an offer's attributes, and what the cache
 *	  precomputes once per compiled configuration (offer_attribute rules for
 *	  every offer, each rule's and policy's static applicability per offer).
 *	  Pure computation: no SPI, no catalog access.  The request-dependent
 *	  evaluation (rules, guardrails, propensity) is decision/rules.c.
 *
 * Missing values.  A missing (absent or JSON null) value satisfies no
 * comparison (kaireon_cond_holds), only not_exists; the qualification rules'
 * rule that a missing attribute passes is kaireon_cond_passes (conditions.h).
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "regex/regex.h"
#include "utils/memutils.h"

#include "config/conditions.h"

/* Follow a dotted path through nested objects; NULL when absent or JSON null. */
json_t *
kaireon_path(json_t *root, const char *path)
{
	const char *p = path;
	json_t	   *cur = root;
	char		part[256];

	while (cur != NULL && *p != '\0')
	{
		const char *dot = strchr(p, '.');
		size_t		len = dot ? (size_t) (dot - p) : strlen(p);

		if (!json_is_object(cur) || len >= sizeof(part))
			return NULL;
		memcpy(part, p, len);
		part[len] = '\0';
		cur = json_object_get(cur, part);
		p = dot ? dot + 1 : p + len;
	}
	return (cur == NULL || json_is_null(cur)) ? NULL : cur;
}

/*
 * A number from a JSON number, boolean or numeric string; a string strtod
 * reads as NaN or an infinity ("NaN", "inf", "1e400") is no number (a NaN
 * compared equal to every number).
 */
static bool
as_number(json_t *v, double *out)
{
	char	   *end;

	if (json_is_number(v))
	{
		*out = json_number_value(v);
		return true;
	}
	if (json_is_boolean(v))
	{
		*out = json_is_true(v) ? 1.0 : 0.0;
		return true;
	}
	if (json_is_string(v) && json_string_length(v) > 0)
	{
		*out = strtod(json_string_value(v), &end);
		return *end == '\0' && isfinite(*out);
	}
	return false;
}

/*
 * Compare two scalars: numbers numerically (a numeric string counts as a
 * number when the other side is a number), strings by bytes (ISO dates order
 * correctly), booleans as booleans.  *ok is false when they cannot be compared.
 */
static int
compare_scalars(json_t *a, json_t *b, bool *ok)
{
	double		x,
				y;

	*ok = true;
	if (json_is_string(a) && json_is_string(b))
		return strcmp(json_string_value(a), json_string_value(b));
	if ((json_is_number(a) || json_is_number(b)) && as_number(a, &x) && as_number(b, &y))
		return (x > y) - (x < y);
	if (json_is_boolean(a) && json_is_boolean(b))
		return (int) json_is_true(a) - (int) json_is_true(b);
	*ok = false;
	return 0;
}

/* Are two scalars equal under compare_scalars? */
static bool
scalars_equal(json_t *a, json_t *b)
{
	bool		ok;
	int			c = compare_scalars(a, b, &ok);

	return ok && c == 0;
}

/* Is v equal to an element of array (or, when actual is an array, do they share one)? */
static bool
in_array(json_t *actual, json_t *array)
{
	size_t		i,
				k;
	json_t	   *e,
			   *a;

	if (!json_is_array(array))
		return false;
	json_array_foreach(array, i, e)
	{
		if (json_is_array(actual))
		{
			json_array_foreach(actual, k, a)
				if (scalars_equal(a, e))
				return true;
		}
		else if (scalars_equal(actual, e))
			return true;
	}
	return false;
}

/* ---- compiling conditions and expressions (the configuration cache, flow graphs) ---- */

/* Operator name to KOp; false when unknown.  regex, is_null, is_not_null: filter nodes only. */
bool
kaireon_parse_op(const char *name, KOp *op)
{
	static const char *const names[] = {
		"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in",
		"contains", "starts_with", "exists", "not_exists", "regex"
	};

	if (name == NULL)
		return false;
	for (int i = 0; i < (int) lengthof(names); i++)
	{
		if (strcmp(name, names[i]) == 0)
		{
			*op = (KOp) i;
			return true;
		}
	}
	/* a missing value is a null one (kaireon_path): is_null is not_exists */
	if (strcmp(name, "is_null") == 0)
		*op = KOP_NOT_EXISTS;
	else if (strcmp(name, "is_not_null") == 0)
		*op = KOP_EXISTS;
	else
		return false;
	return true;
}

/* A pattern as messages name it: a long one by its first 64 characters. */
static const char *
pattern_name(const char *pattern)
{
	if (strlen(pattern) <= 64)
		return pattern;
	return psprintf("%s...", pnstrdup(pattern, pg_mbcliplen(pattern, strlen(pattern), 64)));
}

/* Memory context callback: free a compiled regex (the regex library allocates with malloc). */
static void
free_regex(void *arg)
{
	pg_regfree((regex_t *) arg);
	free(arg);
}

/*
 * Compile a regular expression (PostgreSQL's advanced syntax, as ~) once, for the
 * life of the current memory context; 22023 (2201B) naming it when malformed.
 */
void *
kaireon_compile_regex(const char *pattern)
{
	regex_t    *re = malloc(sizeof(regex_t));
	size_t		len = strlen(pattern);
	pg_wchar   *w = palloc(sizeof(pg_wchar) * (len + 1));
	int			wlen = pg_mb2wchar_with_len(pattern, w, len);
	int			rc;
	MemoryContextCallback *cb;

	if (re == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	rc = pg_regcomp(re, w, wlen, REG_ADVANCED, DEFAULT_COLLATION_OID);
	pfree(w);
	if (rc != REG_OKAY)
	{
		char		msg[256];

		pg_regerror(rc, re, msg, sizeof(msg));
		free(re);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
				 errmsg("invalid regular expression \"%s\": %s", pattern_name(pattern), msg),
				 errhint("Use PostgreSQL's regular expression syntax (the ~ operator's).")));
	}
	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	cb->func = free_regex;
	cb->arg = re;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return re;
}

/*
 * Does the condition's compiled regex match somewhere in s?  The protocol of
 * pg_regexec's result (as PostgreSQL's own ~): REG_OKAY a match, REG_NOMATCH
 * none; REG_CANCEL means a cancel or statement_timeout is pending, honoured
 * at once (CHECK_FOR_INTERRUPTS) rather than read as "no match"; any other
 * code (the pattern too complex to run on this value, out of memory, or a
 * cancel while interrupts are held off) is an error, 2201B naming the pattern.
 */
static bool
regex_matches(const KCond *cond, const char *s)
{
	size_t		len = strlen(s);
	pg_wchar   *w = palloc(sizeof(pg_wchar) * (len + 1));
	int			wlen = pg_mb2wchar_with_len(s, w, len);
	int			rc = pg_regexec((regex_t *) cond->regex, w, wlen, 0, NULL, 0, NULL, 0);
	char		msg[256];

	pfree(w);
	if (rc == REG_OKAY || rc == REG_NOMATCH)
		return rc == REG_OKAY;
	if (rc == REG_CANCEL)
		CHECK_FOR_INTERRUPTS();
	pg_regerror(rc, (regex_t *) cond->regex, msg, sizeof(msg));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_REGULAR_EXPRESSION),
			 errmsg("regular expression \"%s\" of field \"%s\" failed: %s",
					pattern_name(json_string_value(cond->value)), cond->path, msg),
			 errhint("Simplify the pattern: it compiled, but could not be run on this value.")));
	return false;				/* not reached */
}

/* Compile a condition from a config object with the given field names (validated when written). */
void
kaireon_parse_cond(json_t *conf, const char *path_key, const char *op_key, KCond *cond)
{
	const char *path = kj_str(conf, path_key);
	KOp			op = KOP_EQ;

	cond->path = path ? pstrdup(path) : "";
	(void) kaireon_parse_op(kj_str(conf, op_key), &op);
	cond->op = op;
	cond->value = json_object_get(conf, "value");
	cond->regex = NULL;
	if (op == KOP_REGEX && json_is_string(cond->value))
		cond->regex = kaireon_compile_regex(json_string_value(cond->value));
}

/*
 * Compile an expression node (guardrails, trigger rules, filter nodes: validated
 * when written): all / any / not over comparisons, an array meaning all.
 */
KExpr *
kaireon_parse_expr(json_t *node, const char *cmp_field, const char *cmp_op, int depth)
{
	KExpr	   *e = palloc0(sizeof(KExpr));
	json_t	   *sub;

	if (depth > 64)
		elog(ERROR, "kaireon: expression nests too deep");
	if (json_is_array(node))
	{
		sub = node;
		e->kind = KEXPR_ALL;
		goto list;
	}
	if ((sub = json_object_get(node, "all")) != NULL)
		e->kind = KEXPR_ALL;
	else if ((sub = json_object_get(node, "any")) != NULL)
		e->kind = KEXPR_ANY;
	else if ((sub = json_object_get(node, "not")) != NULL)
	{
		e->kind = KEXPR_NOT;
		e->nchildren = 1;
		e->children = palloc(sizeof(KExpr *));
		e->children[0] = kaireon_parse_expr(sub, cmp_field, cmp_op, depth + 1);
		return e;
	}
	else
	{
		e->kind = KEXPR_CMP;
		kaireon_parse_cond(node, cmp_field, cmp_op, &e->cond);
		return e;
	}
list:
	{
		size_t		i;
		json_t	   *c;

		e->nchildren = json_is_array(sub) ? json_array_size(sub) : 0;
		e->children = palloc0(sizeof(KExpr *) * Max(e->nchildren, 1));
		json_array_foreach(sub, i, c)
			e->children[i] = kaireon_parse_expr(c, cmp_field, cmp_op, depth + 1);
	}
	return e;
}

/* Does a condition hold for a present (non-null) actual value? */
bool
kaireon_cond_holds(const KCond *cond, json_t *actual)
{
	bool		ok;
	int			c;

	switch (cond->op)
	{
		case KOP_EXISTS:
			return actual != NULL;
		case KOP_NOT_EXISTS:
			return actual == NULL;
		default:
			break;
	}
	if (actual == NULL || cond->value == NULL)
		return false;
	switch (cond->op)
	{
		case KOP_EQ:
			return json_is_array(actual) ? in_array(actual, cond->value) : scalars_equal(actual, cond->value);
		case KOP_NEQ:
			return !(json_is_array(actual) ? in_array(actual, cond->value) : scalars_equal(actual, cond->value));
		case KOP_IN:
			return in_array(actual, cond->value);
		case KOP_NOT_IN:
			return !in_array(actual, cond->value);
		case KOP_CONTAINS:
			if (json_is_array(actual))
			{
				size_t		i;
				json_t	   *e;

				json_array_foreach(actual, i, e)
					if (scalars_equal(e, cond->value))
					return true;
				return false;
			}
			if (json_is_string(actual) && json_is_string(cond->value))
				return strstr(json_string_value(actual), json_string_value(cond->value)) != NULL;
			return false;
		case KOP_STARTS_WITH:
			return json_is_string(actual) && json_is_string(cond->value) &&
				strncmp(json_string_value(actual), json_string_value(cond->value),
						json_string_length(cond->value)) == 0;
		case KOP_REGEX:
			if (cond->regex == NULL)
				return false;
			if (json_is_string(actual))
				return regex_matches(cond, json_string_value(actual));
			if (json_is_number(actual))
				return regex_matches(cond, json_is_integer(actual) ?
									 psprintf(INT64_FORMAT, (int64) json_integer_value(actual)) :
									 psprintf("%g", json_real_value(actual)));
			return false;
		default:
			c = compare_scalars(actual, cond->value, &ok);
			if (!ok)
				return false;
			switch (cond->op)
			{
				case KOP_GT:
					return c > 0;
				case KOP_GTE:
					return c >= 0;
				case KOP_LT:
					return c < 0;
				default:
					return c <= 0;
			}
	}
}

/*
 * For each offer, whether a rule's or policy's scopes cover it whatever the
 * request (1), can never cover it (0), or depend on the request's channel or
 * the customer's segments (-1).  Computed once per compiled configuration so
 * the candidate loop skips scope matching for the common cases.
 */
int8 *
kaireon_static_applicability(KTenantConfig *cfg, int nscopes, const KScope *scopes)
{
	int8	   *a = palloc(sizeof(int8) * Max(cfg->noffers, 1));

	for (int o = 0; o < cfg->noffers; o++)
	{
		a[o] = 0;
		for (int i = 0; i < nscopes; i++)
		{
			if (scopes[i].kind == KSCOPE_SEGMENT || scopes[i].kind == KSCOPE_CHANNEL)
				a[o] = -1;
			else if (kaireon_scope_covers_offer(&scopes[i], &cfg->offers[o]))
			{
				a[o] = 1;
				break;
			}
		}
	}
	return a;
}

/*
 * Can a qualification rule change anything for the offer?  Not when no scope can cover
 * it, nor when it is an offer_attribute rule of the eligibility or fit stage that holds
 * for the offer (computed at compile: such a rule neither drops it nor notes anything;
 * a match rule that holds is listed in the explanation, so it stays).
 */
bool
kaireon_rule_may_act(const KRule *rule, int offer)
{
	if (rule->applies[offer] == 0)
		return false;
	return !(rule->type == KRULE_OFFER_ATTRIBUTE && rule->stage != KSTAGE_MATCH &&
			 rule->offer_holds != NULL && rule->offer_holds[offer]);
}

/*
 * Can a contact policy act on the offer: block it, or for allow_override exempt it?
 * Not when no scope can cover it, nor for the types whose verdict is decided by the
 * offer's own listing whatever the customer: mutual_exclusion for an offer not in
 * offerIds, category_suppression and offer_category_cap for an offer without a
 * category or not of a listed one, allow_override for an offer not in its offerIds.
 * decision/policies.c evaluates only the policies that can (bound per offer, eligibility.c).
 */
bool
kaireon_policy_may_act(const KTenantConfig *cfg, const KPolicy *p, int o)
{
	const KOffer *offer = &cfg->offers[o];

	if (p->applies[o] == 0)
		return false;
	switch (p->type)
	{
		case KPOL_MUTUAL_EXCLUSION:
			return kj_array_has_string(p->ids, offer->id);
		case KPOL_CATEGORY_SUPPRESSION:
		case KPOL_OFFER_CATEGORY_CAP:
			return offer->category_id != NULL && (p->ids == NULL || kj_array_has_string(p->ids, offer->category_id));
		case KPOL_ALLOW_OVERRIDE:
			return p->ids == NULL || kj_array_has_string(p->ids, offer->id);
		default:
			return true;
	}
}

/*
 * The index of the policy's scope that covers the offer whatever the request: the
 * first scope that covers it, when no scope before it depends on the request; -1
 * otherwise (the request decides which scope, if any, covers it).
 */
int
kaireon_static_scope(const KPolicy *p, const KOffer *offer)
{
	for (int i = 0; i < p->nscopes; i++)
	{
		if (p->scopes[i].kind == KSCOPE_SEGMENT || p->scopes[i].kind == KSCOPE_CHANNEL)
			return -1;
		if (kaireon_scope_covers_offer(&p->scopes[i], offer))
			return i;
	}
	return -1;
}

/*
 * Is a policy's verdict the same for every candidate under this scope?
 * True for scopes that do not name an offer, category or sub-category, with
 * policy types that look only at the customer and the request (decision/policies.c
 * evaluates such a policy once per request; eligibility.c binds the answer where the scope
 * is known at compile).
 */
bool
kaireon_policy_independent(const KPolicy *p, const KScope *scope)
{
	if (scope->kind != KSCOPE_GLOBAL && scope->kind != KSCOPE_SEGMENT && scope->kind != KSCOPE_CHANNEL)
		return false;
	switch (p->type)
	{
		case KPOL_FREQUENCY_CAP:
		case KPOL_CUSTOMER_TOTAL_CAP:
		case KPOL_CROSS_CHANNEL_CAP:
		case KPOL_SEGMENT_EXCLUSION:
		case KPOL_TIME_WINDOW:
		case KPOL_METRIC_CONDITION:
			return true;
		case KPOL_OUTCOME_BASED:
			return p->level == 2;
		default:
			return false;
	}
}

/*
 * Is a policy's verdict on a candidate the same for every offer of its category,
 * whatever the scope that covers it?  True for the types that look at the offer only
 * through its category: category_suppression, offer_category_cap and outcome_based
 * at the category level (decision/policies.c evaluates them once per category and
 * request).
 */
bool
kaireon_policy_per_category(const KPolicy *p)
{
	return p->type == KPOL_CATEGORY_SUPPRESSION || p->type == KPOL_OFFER_CATEGORY_CAP ||
		(p->type == KPOL_OUTCOME_BASED && p->level == 1);
}

/* The value of a column (name: len bytes) of an offer's row; NULL when null or not a column. */
json_t *
kaireon_offer_column(const KOffer *offer, const char *name, size_t len)
{
	int			lo = 0,
				hi = offer->shape->ncolumns - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		const char *col = offer->shape->names[mid];
		int			c = strncmp(col, name, len);

		if (c == 0 && col[len] != '\0')
			c = 1;
		if (c == 0)
			return offer->fields[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/*
 * An offer attribute: a column of the offer row (followed by the rest of the dotted
 * path), else a key of its custom_fields; NULL when absent or JSON null.
 */
json_t *
kaireon_offer_attribute(const KOffer *offer, const char *path)
{
	const char *dot = strchr(path, '.');
	json_t	   *v = kaireon_offer_column(offer, path, dot ? (size_t) (dot - path) : strlen(path));

	if (v != NULL && dot != NULL)
		v = kaireon_path(v, dot + 1);
	if (v == NULL)
		v = kaireon_path(kaireon_offer_column(offer, "custom_fields", strlen("custom_fields")), path);
	return v;
}

/* Precompute an offer_attribute rule for every offer (called once per compiled configuration). */
void
kaireon_precompute_offer_rule(KTenantConfig *cfg, KRule *rule)
{
	rule->offer_holds = palloc(sizeof(bool) * Max(cfg->noffers, 1));
	for (int o = 0; o < cfg->noffers; o++)
		rule->offer_holds[o] = kaireon_cond_passes(&rule->cond,
												   kaireon_offer_attribute(&cfg->offers[o], rule->cond.path));
}

/*
 * Evaluate an expression of the guardrail expression language (all / any /
 * not / comparisons), the fields' values given by value(field, arg); a
 * comparison with a missing value is false.  Guardrails (decision/rules.c)
 * and trigger rules (decision/triggers.c) share it.
 */
bool
kaireon_expr_holds(const KExpr *e, KFieldValue value, void *arg)
{
	switch (e->kind)
	{
		case KEXPR_ALL:
			for (int i = 0; i < e->nchildren; i++)
				if (!kaireon_expr_holds(e->children[i], value, arg))
					return false;
			return true;
		case KEXPR_ANY:
			for (int i = 0; i < e->nchildren; i++)
				if (kaireon_expr_holds(e->children[i], value, arg))
					return true;
			return false;
		case KEXPR_NOT:
			return !kaireon_expr_holds(e->children[0], value, arg);
		case KEXPR_CMP:
			return kaireon_cond_holds(&e->cond, value(e->cond.path, arg));
	}
	return false;
}
