/*
 * util/json.c
 *	  jansson wrapper.  jansson's allocator is pointed at palloc in the
 *	  current memory context, so a json_t tree lives in the context that was
 *	  current when it was built and an ereport(ERROR) leaks nothing: the
 *	  context reset frees it.  Callers must not json_decref a tree after its
 *	  context is gone; letting the context free it is always correct.
 *
 *	  json_set_alloc_funcs is process-wide: no other code in the backend may
 *	  use jansson with malloc'd memory.  kaireon is its only user, and only
 *	  this file calls jansson's allocating entry points (parse, dump).
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/int.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "util/json.h"
#include "util/spi.h"

/*
 * jansson's malloc: palloc in the current context; NULL (which jansson reports as out of
 * memory) rather than an ERROR for requests palloc refuses.
 */
static void *
kj_malloc(size_t size)
{
	if (size > MaxAllocSize)
		return NULL;
	return MemoryContextAllocExtended(CurrentMemoryContext, size, MCXT_ALLOC_NO_OOM);
}

/* jansson's free: pfree, tolerating NULL. */
static void
kj_free(void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

/* Route jansson's allocations into memory contexts (called once from _PG_init). */
void
kaireon_json_init(void)
{
	json_set_alloc_funcs(kj_malloc, kj_free);
}

/* How kaireon decodes JSON: any value at the top, no duplicate keys, every number a double. */
#define KJ_DECODE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL)

/*
 * Parse JSON text; malformed input raises 22023 naming `what` and the position.  Every
 * number is decoded as a double (as jsonb keeps any size of number, an integer too big for
 * jansson's integer type must not make valid JSON "invalid").
 */
json_t *
kj_parse(const char *text, size_t len, const char *what)
{
	json_error_t err;
	json_t	   *value = json_loadb(text, len,
								   KJ_DECODE_FLAGS,
								   &err);

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not valid JSON: %s", what, err.text),
				 errdetail("Error at line %d, column %d.", err.line, err.column),
				 errhint("Check the JSON syntax of %s.", what)));
	return value;
}

/*
 * Parse JSON text that may hold the bare tokens NaN, Infinity and -Infinity (outside
 * strings), as Python's json module and XGBoost write them: each becomes null, so the
 * caller's type checks name the field; anything else malformed raises as kj_parse does.
 */
json_t *
kj_parse_nonfinite(const char *text, size_t len, const char *what)
{
	StringInfoData buf;
	bool		in_string = false;
	bool		changed = false;
	size_t		i = 0;

	initStringInfo(&buf);
	while (i < len)
	{
		char		c = text[i];

		if (in_string)
		{
			appendStringInfoChar(&buf, c);
			if (c == '\\' && i + 1 < len)
				appendStringInfoChar(&buf, text[++i]);
			else if (c == '"')
				in_string = false;
			i++;
			continue;
		}
		if (c == '"')
			in_string = true;
		else if (c == 'N' && len - i >= 3 && strncmp(text + i, "NaN", 3) == 0)
		{
			appendStringInfoString(&buf, "null");
			changed = true;
			i += 3;
			continue;
		}
		else if ((c == 'I' || c == '-') && len - i >= 8 + (c == '-') &&
				 strncmp(text + i + (c == '-'), "Infinity", 8) == 0)
		{
			appendStringInfoString(&buf, "null");
			changed = true;
			i += 8 + (c == '-');
			continue;
		}
		appendStringInfoChar(&buf, c);
		i++;
	}
	if (changed)
	{
		json_error_t err;
		json_t	   *value = json_loadb(buf.data, buf.len,
									   KJ_DECODE_FLAGS,
									   &err);

		if (value != NULL)
			return value;
	}
	/* as written (malformed input is reported at its own position, not the rewritten one's) */
	pfree(buf.data);
	return kj_parse(text, len, what);
}

/*
 * A jsonb scalar as the jansson value kj_parse gives for its text (numbers:
 * strtod of numeric_out's text, as jansson reads every number under
 * JSON_DECODE_INT_AS_REAL), or NULL where that parse would fail: a number past
 * a double's range, a string that is not UTF-8 (a database of another encoding).
 */
static json_t *
jsonb_scalar(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return json_null();
		case jbvBool:
			return json_boolean(v->val.boolean);
		case jbvString:
			return json_stringn(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			{
				char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
				double		d = strtod(s, NULL);

				pfree(s);
				return isinf(d) ? NULL : json_real(d);
			}
		default:
			return NULL;
	}
}

/*
 * A jsonb value as the jansson tree kj_parse gives for its text, built by
 * walking it (no text in between): keys in jsonb's order, which is the order
 * its text has them in.  NULL when the parse of the text would not succeed
 * (jsonb_scalar's cases, a key that is not UTF-8, nesting past jansson's
 * depth limit): the caller then parses the text, which raises its error.
 */
static json_t *
jsonb_tree(JsonbContainer *root)
{
	JsonbIterator *it = JsonbIteratorInit(root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	json_t	   *stack[JSON_PARSER_MAX_DEPTH];
	int			depth = 0;
	json_t	   *result = NULL;
	const char *key = NULL;
	int			keylen = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		json_t	   *x;

		switch (tok)
		{
			case WJB_KEY:
				key = v.val.string.val;
				keylen = v.val.string.len;
				continue;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				if (depth > 0)
					depth--;
				continue;
			case WJB_BEGIN_ARRAY:
				if (v.val.array.rawScalar)
					continue;	/* a scalar at the top: its one element is the value */
				x = json_array();
				break;
			case WJB_BEGIN_OBJECT:
				x = json_object();
				break;
			default:
				x = jsonb_scalar(&v);
				break;
		}
		if (x == NULL)
			return NULL;
		if (depth == 0)
			result = x;
		else if (json_is_object(stack[depth - 1]) ? json_object_setn_new(stack[depth - 1], key, keylen, x) != 0 :
				 json_array_append_new(stack[depth - 1], x) != 0)
			return NULL;		/* a key that is not UTF-8, or out of memory: as the parse reports it */
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		{
			if (depth == JSON_PARSER_MAX_DEPTH - 1)
				return NULL;
			stack[depth++] = x;
		}
	}
	return result;
}

/*
 * Convert a jsonb value to a jansson tree: walked straight (jsonb_tree), else
 * through its text form, which raises as kj_parse does.
 */
json_t *
kj_from_jsonb(Jsonb *jb, const char *what)
{
	json_t	   *value = jsonb_tree(&jb->root);
	char	   *text;

	if (value != NULL)
		return value;
	text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	value = kj_parse(text, strlen(text), what);
	pfree(text);
	return value;
}

/* ---- numbers: a double as the numeric its 15-significant-digit text gives ---- */

/*
 * The decimal digits of d rounded to 15 significant digits, as d = *mant * 10^*exp10
 * with no trailing zero in *mant, found from the shortest decimal that reads back as d
 * (Ryu, common/shortest_dec.h) instead of printf's exact arithmetic; false when that
 * cannot be told this way (the caller then prints "%.15g").  Why it equals "%.15g":
 * for a normal double the shortest decimal S lies within half a binary ulp (at most
 * 1.2e-16 of |d|) of d, and 15-digit decimals are at least 1e-15 of |d| apart, so
 * when S has at most 15 digits it is the 15-digit decimal nearest d, which is what
 * "%.15g" prints.  When S has 16 or 17 digits, rounding S to 15 digits gives the
 * same result as rounding d unless a midpoint of two 15-digit decimals (a 16-digit
 * decimal ending in 5) lies between d and S, or equals S: it cannot lie strictly
 * between them (it would be a decimal as short as S and nearer d, and S is the
 * nearest of the shortest), so only S being such a midpoint (a tie) is refused.
 * Zero, subnormal (fewer significant bits) and non-finite values are refused too.
 */
static bool
real_decimal(double d, int64 *mant, int *exp10)
{
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];
	int			len;
	int64		m = 0;
	int			e = 0;
	int			ndigits = 0;
	bool		point = false;
	int			i = 0;

	if (!isfinite(d) || fabs(d) < DBL_MIN)
		return false;
	len = double_to_shortest_decimal_bufn(d, buf);
	if (buf[0] == '-')
		i++;
	for (; i < len && buf[i] != 'e'; i++)
	{
		if (buf[i] == '.')
			point = true;
		else if (ndigits == 0 && buf[i] == '0')
			e -= point;			/* a leading zero: after the point, it shifts the digits */
		else
		{
			if (ndigits == 18)
				return false;	/* cannot happen: at most 17 digits */
			m = m * 10 + (buf[i] - '0');
			ndigits++;
			e -= point;
		}
	}
	if (i < len)
	{
		/* the exponent: e, a sign, digits (the buffer is not NUL-terminated) */
		int			x = 0;
		bool		negexp = buf[++i] == '-';

		for (i += (buf[i] == '-' || buf[i] == '+'); i < len; i++)
			x = x * 10 + (buf[i] - '0');
		e += negexp ? -x : x;
	}
	if (m == 0)
		return false;			/* cannot happen for a normal double */
	for (; m % 10 == 0; m /= 10)
		e++, ndigits--;
	if (ndigits > 15)
	{
		int64		p = ndigits == 16 ? 10 : 100;
		int64		r = m % p;

		if (r * 2 == p)
			return false;		/* a tie: the exact value decides */
		m = m / p + (r * 2 > p);
		e += ndigits - 15;
		for (; m % 10 == 0; m /= 10)
			e++;
	}
	*mant = d < 0 ? -m : m;
	*exp10 = e;
	return true;
}

/*
 * A double as a numeric equal to numeric_in("%.15g" of it), jansson's
 * JSON_REAL_PRECISION(15) printing: the same digits and the same display scale (the
 * decimals of the printed number).  Built from real_decimal's digits with the
 * server's numeric constructors where it can; printed and parsed where it cannot
 * (ties, zero, subnormals, non-finite values, integers beyond int64).
 */
Numeric
kj_real_numeric(double d)
{
	char		buf[64];
	int64		mant;
	int			exp10;

	/* an integer of at most 15 digits (zero too): "%.15g" prints it whole, without decimals */
	if (fabs(d) < 1e15 && d == (double) (int64) d)
		return int64_to_numeric((int64) d);
	if (real_decimal(d, &mant, &exp10))
	{
		if (exp10 < 0)
			return int64_div_fast_to_numeric(mant, -exp10);	/* |mant| < 10^15: no overflow */
		for (; exp10 > 0; exp10--)
			if (pg_mul_s64_overflow(mant, 10, &mant))
				break;
		if (exp10 == 0)
			return int64_to_numeric(mant);
	}
	snprintf(buf, sizeof(buf), "%.15g", d);
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(buf), ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/* Push one jansson value onto a jsonb parse state (recursive). */
static JsonbValue *
push_value(JsonbParseState **state, const json_t *value, JsonbIteratorToken token)
{
	JsonbValue	v;

	switch (json_typeof(value))
	{
		case JSON_OBJECT:
			{
				const char *key;
				json_t	   *member;
				JsonbValue *res;

				pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
				json_object_foreach((json_t *) value, key, member)
				{
					JsonbValue	k;

					k.type = jbvString;
					k.val.string.val = (char *) key;
					k.val.string.len = strlen(key);
					pushJsonbValue(state, WJB_KEY, &k);
					push_value(state, member, WJB_VALUE);
				}
				res = pushJsonbValue(state, WJB_END_OBJECT, NULL);
				return res;
			}
		case JSON_ARRAY:
			{
				size_t		i;
				json_t	   *e;

				pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
				json_array_foreach((json_t *) value, i, e)
					push_value(state, e, WJB_ELEM);
				return pushJsonbValue(state, WJB_END_ARRAY, NULL);
			}
		case JSON_STRING:
			v.type = jbvString;
			v.val.string.val = (char *) json_string_value(value);
			v.val.string.len = json_string_length(value);
			break;
		case JSON_INTEGER:
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(json_integer_value(value));
			break;
		case JSON_REAL:
			v.type = jbvNumeric;
			v.val.numeric = kj_real_numeric(json_real_value(value));
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			v.type = jbvBool;
			v.val.boolean = json_is_true(value);
			break;
		case JSON_NULL:
			v.type = jbvNull;
			break;
	}
	if (*state == NULL)
	{
		/* a scalar at the top level is a one-element raw-scalar array in jsonb */
		JsonbValue	arr;

		arr.type = jbvArray;
		arr.val.array.rawScalar = true;
		arr.val.array.nElems = 1;
		pushJsonbValue(state, WJB_BEGIN_ARRAY, &arr);
		pushJsonbValue(state, WJB_ELEM, &v);
		return pushJsonbValue(state, WJB_END_ARRAY, NULL);
	}
	return pushJsonbValue(state, token, &v);
}

/* A jsonb value built straight from a jansson tree (no text round trip). */
Jsonb *
kj_to_jsonb(const json_t *value)
{
	JsonbParseState *state = NULL;

	return JsonbValueToJsonb(push_value(&state, value, WJB_ELEM));
}

/* ---- building a JSON value once, as a jansson tree or straight as jsonb ---- */

/* Start building (KjBuild in util/json.h): jsonb straight from the values, else a jansson tree. */
void
kjb_init(KjBuild *b, bool jsonb)
{
	memset(b, 0, sizeof(KjBuild));
	b->jsonb = jsonb;
}

/* jsonb: push the key of the next member when inside an object; the token for its value. */
static JsonbIteratorToken
kjb_key(KjBuild *b, const char *key)
{
	JsonbValue	k;

	if (b->depth == 0 || !b->is_object[b->depth - 1])
		return WJB_ELEM;
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&b->state, WJB_KEY, &k);
	return WJB_VALUE;
}

/* jansson: add a new value as the next member or element, or as the whole value. */
static void
kjb_add(KjBuild *b, const char *key, json_t *v)
{
	json_t	   *top;

	if (b->depth == 0)
	{
		b->root = v;
		return;
	}
	top = b->stack[b->depth - 1];
	if (json_is_object(top))
		json_object_set_new(top, key, v);
	else
		json_array_append_new(top, v);
}

/* jsonb: push one scalar as the next member or element. */
static void
kjb_scalar(KjBuild *b, const char *key, JsonbValue *v)
{
	if (b->depth == 0)
		elog(ERROR, "kaireon: a JSON value built by kjb_* must be an object or an array");
	pushJsonbValue(&b->state, kjb_key(b, key), v);
}

/* Open an object or array (key: its member name inside an object, else ignored). */
static void
kjb_open(KjBuild *b, const char *key, bool object)
{
	if (b->depth == KJB_MAX_DEPTH)
		elog(ERROR, "kaireon: JSON built too deep");
	if (b->jsonb)
	{
		if (b->depth > 0)
			kjb_key(b, key);
		pushJsonbValue(&b->state, object ? WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY, NULL);
	}
	else
	{
		json_t	   *c = object ? json_object() : json_array();

		kjb_add(b, key, c);
		b->stack[b->depth] = c;
	}
	b->is_object[b->depth++] = object;
}

/* Open an object. */
void
kjb_object(KjBuild *b, const char *key)
{
	kjb_open(b, key, true);
}

/* Open an array. */
void
kjb_array(KjBuild *b, const char *key)
{
	kjb_open(b, key, false);
}

/* Close the innermost open object or array. */
void
kjb_end(KjBuild *b)
{
	JsonbValue *v;

	Assert(b->depth > 0);
	b->depth--;
	if (!b->jsonb)
		return;
	v = pushJsonbValue(&b->state, b->is_object[b->depth] ? WJB_END_OBJECT : WJB_END_ARRAY, NULL);
	if (b->depth == 0)
		b->result = v;
}

/* A string member or element (NULL: null). */
void
kjb_string(KjBuild *b, const char *key, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
	{
		kjb_null(b, key);
		return;
	}
	if (!b->jsonb)
	{
		kjb_add(b, key, json_string(s));
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	kjb_scalar(b, key, &v);
}

/* A number member or element; null when not finite (JSON has no NaN or Infinity). */
void
kjb_real(KjBuild *b, const char *key, double d)
{
	JsonbValue	v;

	if (!isfinite(d))
	{
		kjb_null(b, key);
		return;
	}
	if (!b->jsonb)
	{
		kjb_add(b, key, json_real(d));
		return;
	}
	v.type = jbvNumeric;
	v.val.numeric = kj_real_numeric(d);
	kjb_scalar(b, key, &v);
}

/* An integer member or element. */
void
kjb_int(KjBuild *b, const char *key, int64 i)
{
	JsonbValue	v;

	if (!b->jsonb)
	{
		kjb_add(b, key, json_integer((json_int_t) i));
		return;
	}
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(i);
	kjb_scalar(b, key, &v);
}

/* A boolean member or element. */
void
kjb_bool(KjBuild *b, const char *key, bool value)
{
	JsonbValue	v;

	if (!b->jsonb)
	{
		kjb_add(b, key, json_boolean(value));
		return;
	}
	v.type = jbvBool;
	v.val.boolean = value;
	kjb_scalar(b, key, &v);
}

/* A null member or element. */
void
kjb_null(KjBuild *b, const char *key)
{
	JsonbValue	v;

	if (!b->jsonb)
	{
		kjb_add(b, key, json_null());
		return;
	}
	v.type = jbvNull;
	kjb_scalar(b, key, &v);
}

/* A jansson value as a member or element (shared, not copied, in a jansson tree). */
void
kjb_json(KjBuild *b, const char *key, json_t *value)
{
	if (!b->jsonb)
	{
		kjb_add(b, key, json_incref(value));
		return;
	}
	if (b->depth == 0)
		elog(ERROR, "kaireon: a JSON value built by kjb_* must be an object or an array");
	push_value(&b->state, value, kjb_key(b, key));
}

/* The value built as jsonb (kjb_init with jsonb). */
Jsonb *
kjb_jsonb(KjBuild *b)
{
	Assert(b->jsonb && b->depth == 0 && b->result != NULL);
	return JsonbValueToJsonb(b->result);
}

/* The value built as a jansson tree (kjb_init without jsonb). */
json_t *
kjb_tree(KjBuild *b)
{
	Assert(!b->jsonb && b->depth == 0 && b->root != NULL);
	return b->root;
}

/*
 * The members of a table in the order jsonb keeps an object's keys, as indexes
 * into the table: pushJsonbValue sorts the keys itself and numbers each pair
 * with its place in the input (JsonbPair.order).  Kept for the backend's life.
 */
static int *
members_jsonb_order(const KjMembers *m)
{
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "kaireon jsonb key order",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *obj;
	int		   *order;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < m->n; i++)
	{
		v.type = jbvString;
		v.val.string.val = (char *) m->members[i].key;
		v.val.string.len = strlen(m->members[i].key);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.type = jbvNull;
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	obj = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	if (obj->val.object.nPairs != m->n)
		elog(ERROR, "kaireon: a JSON member table names a key twice");
	order = MemoryContextAlloc(TopMemoryContext, sizeof(int) * m->n);
	for (int j = 0; j < m->n; j++)
		order[j] = obj->val.object.pairs[j].order;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	return order;
}

/* Write a table's members into the open object: in the table's order, or jsonb's (KjMembers in util/json.h). */
void
kjb_members(KjBuild *b, KjMembers *m, const void *arg)
{
	if (b->jsonb && m->jsonb_order == NULL)
		m->jsonb_order = members_jsonb_order(m);
	for (int j = 0; j < m->n; j++)
	{
		const KjMember *member = &m->members[b->jsonb ? m->jsonb_order[j] : j];

		member->write(b, member->key, arg, member->index);
	}
}

/* Print a jansson tree; the result is palloc'd in the current context. */
char *
kj_dump(const json_t *value, size_t flags)
{
	char	   *s = json_dumps(value, flags | JSON_ENCODE_ANY);
	char	   *result;

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while printing JSON")));
	result = pstrdup(s);
	kj_free(s);
	return result;
}

/* A new empty JSON object (see util/json.h: jansson's json_object() is shadowed). */
json_t *
kj_object(void)
{
	json_t	   *obj = json_pack("{}");

	if (obj == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while building JSON")));
	return obj;
}

/* A JSON type name for error messages. */
const char *
kj_type_name(const json_t *value)
{
	switch (json_typeof(value))
	{
		case JSON_OBJECT:
			return "object";
		case JSON_ARRAY:
			return "array";
		case JSON_STRING:
			return "string";
		case JSON_INTEGER:
		case JSON_REAL:
			return "number";
		case JSON_TRUE:
		case JSON_FALSE:
			return "boolean";
		case JSON_NULL:
			return "null";
	}
	return "unknown";
}

/* A string field of an object, or NULL when absent, null or not a string. */
const char *
kj_str(const json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return (v != NULL && json_is_string(v)) ? json_string_value(v) : NULL;
}

/*
 * An id field of a request object (tenantId, customerId, offerId, ...), or NULL when absent
 * or JSON null.  JSON clients often send numeric ids as numbers ({"customerId": 42}), so an
 * integral number of at most 2^53 - 1 in magnitude (the integers a JSON number, a double,
 * holds exactly: JavaScript's Number.MAX_SAFE_INTEGER) is taken as its decimal text ("42").
 * Anything else raises 22023 naming `what` (the request's name for the field).
 */
const char *
kj_id(const json_t *obj, const char *key, const char *what)
{
	json_t	   *v = json_object_get(obj, key);
	double		d;

	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_string(v))
		return json_string_value(v);
	if (!json_is_number(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a string, not %s", what, kj_type_name(v)),
				 errhint("Send ids as JSON strings (integers are accepted as their decimal text).")));
	d = json_number_value(v);
	if (d != floor(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a string or an integer, not the number %g", what, d),
				 errhint("Send ids as JSON strings (integers are accepted as their decimal text).")));
	if (fabs(d) > 9007199254740991.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is a number beyond 2^53 - 1, which JSON numbers do not hold exactly", what),
				 errhint("Send ids this large as JSON strings.")));
	if (d == 0)
		d = 0;					/* -0 is "0" */
	return psprintf("%.0f", d);
}

/*
 * The tenant-first JSON entry points (recommend_json(tenant_id, request) and
 * the like, which Citus delegates by their first argument): the request's
 * tenantId becomes tenant_id when absent and must equal it when present
 * (22023 otherwise), so one request names one tenant.  Not an object: left
 * for the caller to refuse.
 */
void
kj_set_tenant(json_t *obj, const char *tenant_id, const char *what)
{
	const char *given;

	if (!json_is_object(obj))
		return;
	given = kj_id(obj, "tenantId", psprintf("%s.tenantId", what));
	if (given != NULL && strcmp(given, tenant_id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.tenantId \"%s\" is not the tenant_id argument \"%s\"", what, given, tenant_id),
				 errhint("Leave tenantId out of the request, or pass the same tenant in both.")));
	json_object_set_new(obj, "tenantId", json_string(tenant_id));
}

/*
 * Refuse a key of a request object that is not in allowed (a NULL-terminated
 * list): 22023 naming the key and `what` (the request's name for the object),
 * the known keys as the hint.
 */
void
kj_known_keys(const json_t *obj, const char *const *allowed, const char *what)
{
	const char *key;
	json_t	   *v;

	json_object_foreach((json_t *) obj, key, v)
	{
		bool		ok = false;

		for (int i = 0; allowed[i] != NULL && !ok; i++)
			ok = strcmp(allowed[i], key) == 0;
		if (!ok)
		{
			StringInfoData list;

			initStringInfo(&list);
			for (int i = 0; allowed[i] != NULL; i++)
				appendStringInfo(&list, "%s%s", i ? ", " : "", allowed[i]);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s has an unknown key \"%s\"", what, key),
					 errhint("Known keys: %s.", list.data)));
		}
	}
}

/* A number field of an object (booleans count as 0/1), or dflt. */
double
kj_num(const json_t *obj, const char *key, double dflt)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL)
		return dflt;
	if (json_is_number(v))
		return json_number_value(v);
	if (json_is_boolean(v))
		return json_is_true(v) ? 1.0 : 0.0;
	return dflt;
}

/* A boolean field of an object, or dflt. */
bool
kj_bool(const json_t *obj, const char *key, bool dflt)
{
	json_t	   *v = json_object_get(obj, key);

	return (v != NULL && json_is_boolean(v)) ? json_is_true(v) : dflt;
}

/* An array field of an object, or NULL. */
json_t *
kj_array(const json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return (v != NULL && json_is_array(v)) ? v : NULL;
}

/* Does a JSON array (or NULL) contain the string s? */
bool
kj_array_has_string(const json_t *array, const char *s)
{
	size_t		i;
	json_t	   *e;

	if (array == NULL || s == NULL)
		return false;
	json_array_foreach(array, i, e)
	{
		if (json_is_string(e) && strcmp(json_string_value(e), s) == 0)
			return true;
	}
	return false;
}

/*
 * Run sql, which takes the tenant id as $1 and returns one row of one jsonb
 * column, inside the caller's SPI connection; the parsed value, or NULL for
 * SQL NULL.  The loaders of the compiled configuration and of arbitration use
 * it: one query per table, no SPI per candidate.
 */
json_t *
kj_query_tenant(const char *sql, const char *tenant_id, const char *what, bool read_only)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;
	int			rc;

	args[0] = CStringGetTextDatum(tenant_id);
	rc = kspi_execute_with_args(sql, 1, types, args, NULL, read_only, 0);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading %s returned %d (%lu rows)", what, rc, (unsigned long) SPI_processed);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? NULL : kj_from_jsonb(DatumGetJsonbP(d), what);
}
