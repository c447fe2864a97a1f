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

#include "utils/memutils.h"

#include "kaireon.h"
#include "util/json.h"

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
								   JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
								   &err);

	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is not valid JSON: %s", what, err.text),
				 errdetail("Error at line %d, column %d.", err.line, err.column),
				 errhint("Check the JSON syntax of %s.", what)));
	return value;
}

/* Convert a jsonb value to a jansson tree (through its text form). */
json_t *
kj_from_jsonb(Jsonb *jb, const char *what)
{
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return kj_parse(text, strlen(text), what);
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

/*
 * A new empty JSON object.  Call this, never json_object(): the server exports
 * a SQL function of that name, and the dynamic linker binds the extension's
 * reference to the server's symbol.  Inside libjansson its own calls bind
 * locally, so json_pack builds a jansson object.
 */
json_t *
kj_object(void)
{
	json_t	   *obj = json_pack("{}");

	if (obj == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory creating a JSON object")));
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
