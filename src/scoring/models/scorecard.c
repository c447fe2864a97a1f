/*
 * models/scorecard.c
 *	  scorecard: raw = baseScore + the points of every matching rule, then
 *	  normalised into [0, 1]: sigmoid x = ((raw - (max+min)/2) / (max-min)) * 6,
 *	  score = 1 / (1 + e^-x); or linear, (raw - min) / (max - min) clamped.
 *	  min and max default to baseScore plus all negative / all positive points.
 */
#include "postgres.h"

#include <math.h>

#include "scoring/models/model.h"

typedef enum ScOp
{
	OP_EQ, OP_NEQ, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NOT_IN,
	OP_CONTAINS, OP_STARTS_WITH, OP_EXISTS, OP_NOT_EXISTS
} ScOp;

static const char *const op_names[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in",
	"contains", "starts_with", "exists", "not_exists", NULL
};

/* A rule's comparison value: a scalar, or for in/not_in a list of scalars. */
typedef struct ScRule
{
	char	   *name;
	int			feature;
	ScOp		op;
	KaireonValue value;
	int			nlist;
	KaireonValue *list;
	double		points;
} ScRule;

typedef struct Scorecard
{
	double		base;
	double		min;
	double		max;
	bool		linear;
	int			nrules;
	ScRule	   *rules;
} Scorecard;

/* A JSON scalar as a KaireonValue (strings copied into the current context). */
static void
scalar_value(const char *where, const char *path, json_t *v, KaireonValue *out)
{
	memset(out, 0, sizeof(*out));
	if (json_is_number(v))
	{
		out->kind = KV_NUMBER;
		out->num = json_number_value(v);
	}
	else if (json_is_string(v))
	{
		out->kind = KV_STRING;
		out->str = pstrdup(json_string_value(v));
	}
	else if (json_is_boolean(v))
	{
		out->kind = KV_BOOL;
		out->num = json_is_true(v) ? 1 : 0;
	}
	else
		model_error(where, path, "field \"value\" must be a string, number or boolean, not %s",
					kj_type_name(v));
}

/* Compile a scorecard model_state. */
static void
scorecard_compile(const ModelSource *src, ModelImpl *impl)
{
	const char *where = src->where;
	Scorecard  *sc = palloc0(sizeof(Scorecard));
	json_t	   *rules,
			   *r,
			   *v;
	size_t		i;
	double		lo,
				hi;
	static const char *const keys[] = {"baseScore", "normalization", "minScore", "maxScore", "rules", NULL};
	static const char *const rule_keys[] = {"name", "feature", "operator", "value", "points", NULL};

	model_check_keys(where, src->state, "", keys);
	sc->base = model_get_weight(where, src->state, "", "baseScore", false, 0);
	v = model_get(where, src->state, "", "normalization", JSON_STRING, false);
	if (v && strcmp(json_string_value(v), "linear") == 0)
		sc->linear = true;
	else if (v && strcmp(json_string_value(v), "sigmoid") != 0)
		model_error(where, "", "field \"normalization\" must be \"sigmoid\" or \"linear\", not \"%s\"",
					json_string_value(v));
	rules = model_get(where, src->state, "", "rules", JSON_ARRAY, true);
	sc->nrules = (int) json_array_size(rules);
	sc->rules = palloc0(sizeof(ScRule) * Max(sc->nrules, 1));
	lo = hi = sc->base;
	json_array_foreach(rules, i, r)
	{
		ScRule	   *rule = &sc->rules[i];
		char		path[64];
		const char *op;
		int			k;

		snprintf(path, sizeof(path), "rules[%zu]", i);
		if (!json_is_object(r))
			model_error(where, path, "must be an object, not %s", kj_type_name(r));
		model_check_keys(where, r, path, rule_keys);
		v = model_get(where, r, path, "name", JSON_STRING, false);
		rule->name = v ? pstrdup(json_string_value(v)) : psprintf("rule %zu", i);
		v = model_get(where, r, path, "feature", JSON_STRING, true);
		if (json_string_length(v) == 0)
			model_error(where, path, "field \"feature\" must not be empty");
		rule->feature = model_feature_index(impl, json_string_value(v));
		op = json_string_value(model_get(where, r, path, "operator", JSON_STRING, true));
		for (k = 0; op_names[k] != NULL; k++)
			if (strcmp(op_names[k], op) == 0)
				break;
		if (op_names[k] == NULL)
			model_error(where, path, "field \"operator\" must be one of eq, neq, gt, gte, lt, lte, in, not_in, contains, starts_with, exists, not_exists, not \"%s\"", op);
		rule->op = (ScOp) k;
		rule->points = model_get_weight(where, r, path, "points", true, 0);
		v = json_object_get(r, "value");
		if (rule->op == OP_EXISTS || rule->op == OP_NOT_EXISTS)
			;
		else if (v == NULL)
			model_error(where, path, "operator \"%s\" needs a field \"value\"", op);
		else if (rule->op == OP_IN || rule->op == OP_NOT_IN)
		{
			json_t	   *e;
			size_t		j;

			if (!json_is_array(v) || json_array_size(v) == 0)
				model_error(where, path, "operator \"%s\" needs a non-empty array \"value\"", op);
			rule->nlist = (int) json_array_size(v);
			rule->list = palloc(sizeof(KaireonValue) * rule->nlist);
			json_array_foreach(v, j, e)
				scalar_value(where, path, e, &rule->list[j]);
		}
		else
		{
			scalar_value(where, path, v, &rule->value);
			if ((rule->op == OP_GT || rule->op == OP_GTE || rule->op == OP_LT || rule->op == OP_LTE) &&
				rule->value.kind != KV_NUMBER)
				model_error(where, path, "operator \"%s\" needs a number \"value\"", op);
			if ((rule->op == OP_CONTAINS || rule->op == OP_STARTS_WITH) && rule->value.kind != KV_STRING)
				model_error(where, path, "operator \"%s\" needs a string \"value\"", op);
		}
		if (rule->points < 0)
			lo += rule->points;
		else
			hi += rule->points;
	}
	sc->min = model_get_number(where, src->state, "", "minScore", false, lo);
	sc->max = model_get_number(where, src->state, "", "maxScore", false, hi);
	if ((json_object_get(src->state, "minScore") || json_object_get(src->state, "maxScore")) &&
		!(sc->max > sc->min))
		model_error(where, "", "field \"maxScore\" (%g) must be above \"minScore\" (%g)", sc->max, sc->min);
	impl->data = sc;
}

/* Do two scalars compare equal (numbers and booleans by value, strings by text)? */
static bool
values_equal(const KaireonValue *a, const KaireonValue *b)
{
	if (a->kind == KV_STRING || b->kind == KV_STRING)
		return a->kind == b->kind && strcmp(a->str, b->str) == 0;
	if (a->kind == KV_NULL || b->kind == KV_NULL)
		return false;
	return a->num == b->num;
}

/* Does the rule match the value? A missing value matches only not_exists. */
static bool
rule_matches(const ScRule *r, const KaireonValue *v)
{
	int			i;

	if (r->op == OP_EXISTS)
		return v->kind != KV_NULL;
	if (r->op == OP_NOT_EXISTS)
		return v->kind == KV_NULL;
	if (v->kind == KV_NULL)
		return false;
	switch (r->op)
	{
		case OP_EQ:
			return values_equal(v, &r->value);
		case OP_NEQ:
			return !values_equal(v, &r->value);
		case OP_GT:
			return v->kind == KV_NUMBER && v->num > r->value.num;
		case OP_GTE:
			return v->kind == KV_NUMBER && v->num >= r->value.num;
		case OP_LT:
			return v->kind == KV_NUMBER && v->num < r->value.num;
		case OP_LTE:
			return v->kind == KV_NUMBER && v->num <= r->value.num;
		case OP_IN:
		case OP_NOT_IN:
			for (i = 0; i < r->nlist; i++)
				if (values_equal(v, &r->list[i]))
					return r->op == OP_IN;
			return r->op == OP_NOT_IN;
		case OP_CONTAINS:
			return v->kind == KV_STRING && strstr(v->str, r->value.str) != NULL;
		case OP_STARTS_WITH:
			return v->kind == KV_STRING && strncmp(v->str, r->value.str, strlen(r->value.str)) == 0;
		default:
			return false;
	}
}

/* The raw score and its normalisation. */
static double
normalise(const Scorecard *sc, double raw)
{
	double		range = sc->max - sc->min;

	if (!(range > 0))
		return 0.5;
	if (sc->linear)
		return Min(1.0, Max(0.0, (raw - sc->min) / range));
	return kaireon_sigmoid(((raw - (sc->max + sc->min) / 2) / range) * 6);
}

/* Score: the normalised sum of points. */
static double
scorecard_score(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Scorecard *sc = impl->data;
	double		raw = sc->base;
	int			i;

	for (i = 0; i < sc->nrules; i++)
		if (rule_matches(&sc->rules[i], &values[sc->rules[i].feature]))
			raw += sc->rules[i].points;
	return normalise(sc, raw);
}

/* Explanation: raw score, range, and the rules that matched with their points. */
static json_t *
scorecard_explain(const ModelImpl *impl, const KaireonValue *values, const char *arm)
{
	const Scorecard *sc = impl->data;
	double		raw = sc->base;
	json_t	   *matched = json_array();
	json_t	   *out = json_object();
	int			i;

	for (i = 0; i < sc->nrules; i++)
	{
		const ScRule *r = &sc->rules[i];

		if (rule_matches(r, &values[r->feature]))
		{
			json_t	   *m = json_object();

			raw += r->points;
			json_object_set_new(m, "rule", json_string(r->name));
			json_object_set_new(m, "feature", json_string(impl->feature_names[r->feature]));
			json_object_set_new(m, "value", kv_to_json(&values[r->feature]));
			json_object_set_new(m, "points", json_real(r->points));
			json_array_append_new(matched, m);
		}
	}
	json_object_set_new(out, "score", json_real(normalise(sc, raw)));
	json_object_set_new(out, "rawScore", json_real(raw));
	json_object_set_new(out, "baseScore", json_real(sc->base));
	json_object_set_new(out, "minScore", json_real(sc->min));
	json_object_set_new(out, "maxScore", json_real(sc->max));
	json_object_set_new(out, "normalization", json_string(sc->linear ? "linear" : "sigmoid"));
	json_object_set_new(out, "matchedRules", matched);
	return out;
}

const ModelOps kaireon_scorecard_ops = {
	.type_name = "scorecard",
	.compile = scorecard_compile,
	.score = scorecard_score,
	.explain = scorecard_explain,
	.learns_online = false,
	.learn = NULL,
};
