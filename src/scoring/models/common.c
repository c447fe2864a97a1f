/*
 * models/common.c
 *	  Helpers shared by the model types: reading and checking model documents
 *	  (every problem is SQLSTATE 22023 naming the field), the feature list of
 *	  a compiled model, feature value conversions (from jsonb, to a number, to
 *	  JSON), the logistic function and the random numbers of the bandits.
 */
#include "postgres.h"

#include <math.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "scoring/models/model.h"

/* Raise 22023 for a malformed model document, naming the field. */
void
model_error(const char *where, const char *path, const char *fmt,...)
{
	char		buf[1024];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s: %s%s%s", where, path ? path : "", path && path[0] ? " " : "", buf),
			 errhint("The model document formats are described in docs/models.md.")));
	pg_unreachable();
}

/* JSON type name of a jansson type code, for messages. */
static const char *
json_type_word(int json_type)
{
	switch (json_type)
	{
		case JSON_OBJECT:
			return "an object";
		case JSON_ARRAY:
			return "an array";
		case JSON_STRING:
			return "a string";
		case JSON_REAL:
		case JSON_INTEGER:
			return "a number";
		case JSON_TRUE:
		case JSON_FALSE:
			return "a boolean";
		default:
			return "a value";
	}
}

/*
 * Member key of object obj (at path) of the given JSON type (JSON_REAL means any
 * number, JSON_TRUE any boolean, -1 any type); NULL when absent and not required.
 */
json_t *
model_get(const char *where, json_t *obj, const char *path, const char *key,
		  int json_type, bool required)
{
	json_t	   *v = json_object_get(obj, key);
	bool		ok;

	if (v == NULL || (json_is_null(v) && !required))
	{
		if (required)
			model_error(where, path, "lacks the required field \"%s\"", key);
		return NULL;
	}
	switch (json_type)
	{
		case -1:
			ok = true;
			break;
		case JSON_REAL:
		case JSON_INTEGER:
			ok = json_is_number(v);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			ok = json_is_boolean(v);
			break;
		default:
			ok = (int) json_typeof(v) == json_type;
	}
	if (!ok)
		model_error(where, path, "field \"%s\" must be %s, not %s",
					key, json_type_word(json_type), kj_type_name(v));
	return v;
}

/* A JSON number as a finite double, or 22023. */
double
model_number(const char *where, json_t *v, const char *path)
{
	double		d;

	if (!json_is_number(v))
		model_error(where, path, "must be a number, not %s", kj_type_name(v));
	d = json_number_value(v);
	if (isnan(d) || isinf(d))
		model_error(where, path, "must be a finite number");
	return d;
}

/*
 * A JSON number that enters sums and products with feature values (logistic weights and
 * bias, scorecard points): finite and at most KAIREON_MODEL_MAX_WEIGHT in magnitude, or
 * 22023.  Such a parameter cannot overflow double precision with any ordinary feature value.
 */
double
model_weight(const char *where, json_t *v, const char *path)
{
	double		d = model_number(where, v, path);

	if (fabs(d) > KAIREON_MODEL_MAX_WEIGHT)
		model_error(where, path, "must be at most %g in magnitude, not %g", KAIREON_MODEL_MAX_WEIGHT, d);
	return d;
}

/* Numeric member key of obj read by convert (model_number or model_weight), or dflt when absent and not required. */
static double
get_numeric_member(const char *where, json_t *obj, const char *path, const char *key,
				   bool required, double dflt,
				   double (*convert) (const char *, json_t *, const char *))
{
	json_t	   *v = model_get(where, obj, path, key, JSON_REAL, required);
	char		sub[512];

	if (v == NULL)
		return dflt;
	snprintf(sub, sizeof(sub), "%s%s\"%s\"", path ? path : "", path && path[0] ? "." : "", key);
	return convert(where, v, sub);
}

/* Numeric member key of obj, or dflt when absent and not required. */
double
model_get_number(const char *where, json_t *obj, const char *path, const char *key,
				 bool required, double dflt)
{
	return get_numeric_member(where, obj, path, key, required, dflt, model_number);
}

/* Weight member key of obj (see model_weight), or dflt when absent and not required. */
double
model_get_weight(const char *where, json_t *obj, const char *path, const char *key,
				 bool required, double dflt)
{
	return get_numeric_member(where, obj, path, key, required, dflt, model_weight);
}

/* Refuse members of obj that are not in the NULL-terminated list allowed. */
void
model_check_keys(const char *where, json_t *obj, const char *path, const char *const *allowed)
{
	const char *key;
	json_t	   *v;

	json_object_foreach(obj, key, v)
	{
		const char *const *a;
		bool		found = false;

		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, key) == 0)
			{
				found = true;
				break;
			}
		if (!found)
			model_error(where, path, "has an unknown field \"%s\"", key);
	}
}

/* Index of feature name in impl's list, appending it when new. */
int
model_feature_index(ModelImpl *impl, const char *name)
{
	int			i;

	for (i = 0; i < impl->nfeatures; i++)
		if (strcmp(impl->feature_names[i], name) == 0)
			return i;
	if (impl->nfeatures == 0)
		impl->feature_names = palloc(sizeof(char *) * 8);
	else if ((impl->nfeatures & (impl->nfeatures - 1)) == 0 && impl->nfeatures >= 8)
		impl->feature_names = repalloc(impl->feature_names, sizeof(char *) * impl->nfeatures * 2);
	impl->feature_names[impl->nfeatures] = pstrdup(name);
	return impl->nfeatures++;
}

/* A feature value as a number: NaN when missing, null or a string. */
double
kv_number(const KaireonValue *v)
{
	switch (v->kind)
	{
		case KV_NUMBER:
		case KV_BOOL:
			return v->num;
		default:
			return NAN;
	}
}

/*
 * The text of a categorical value: a string itself, a boolean "true" / "false", a number
 * printed %.15g into buf; NULL when missing.
 */
const char *
kv_category_text(const KaireonValue *v, char *buf, size_t len)
{
	if (v->kind == KV_STRING)
		return v->str;
	if (v->kind == KV_BOOL)
		return v->num != 0 ? "true" : "false";
	if (v->kind == KV_NUMBER)
	{
		snprintf(buf, len, "%.15g", v->num);
		return buf;
	}
	return NULL;
}

/* A feature value as JSON, for explanations. */
json_t *
kv_to_json(const KaireonValue *v)
{
	switch (v->kind)
	{
		case KV_NUMBER:
			return isfinite(v->num) ? json_real(v->num) : json_null();
		case KV_BOOL:
			return json_boolean(v->num != 0);
		case KV_STRING:
			return json_string(v->str);
		default:
			return json_null();
	}
}

/* A jsonb value as a KaireonValue (strings copied; NULL, null, arrays and objects: KV_NULL). */
void
kaireon_value_from_jsonb(const JsonbValue *v, KaireonValue *out)
{
	out->kind = KV_NULL;
	out->num = 0;
	out->str = NULL;
	if (v == NULL)
		return;
	switch (v->type)
	{
		case jbvNumeric:
			out->num = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
														  NumericGetDatum(v->val.numeric)));
			/* beyond double precision (or NaN): missing, as a NaN feature is */
			out->kind = isfinite(out->num) ? KV_NUMBER : KV_NULL;
			if (out->kind == KV_NULL)
				out->num = 0;
			break;
		case jbvString:
			out->kind = KV_STRING;
			out->str = pnstrdup(v->val.string.val, v->val.string.len);
			break;
		case jbvBool:
			out->kind = KV_BOOL;
			out->num = v->val.boolean ? 1 : 0;
			break;
		default:
			break;
	}
}

/* 1 / (1 + e^-x), without overflow for large |x|. */
double
kaireon_sigmoid(double x)
{
	if (x >= 0)
		return 1.0 / (1.0 + exp(-x));
	else
	{
		double		e = exp(x);

		return e / (1.0 + e);
	}
}

static pg_prng_state model_prng;
static bool model_prng_seeded = false;

/* Uniform [0, 1) numbers for bandits, seeded from a strong source unless set. */
double
model_random(void)
{
	if (!model_prng_seeded)
	{
		if (!pg_prng_strong_seed(&model_prng))
			pg_prng_seed(&model_prng, (uint64) MyProcPid ^ (uint64) GetCurrentTimestamp());
		model_prng_seeded = true;
	}
	return pg_prng_double(&model_prng);
}

/* Seed model_random's generator (kaireon.set_model_seed: reproducible bandit draws). */
void
model_random_seed(uint64 seed)
{
	pg_prng_seed(&model_prng, seed);
	model_prng_seeded = true;
}
