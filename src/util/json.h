/*
 * util/json.h
 *	  The only doorway to jansson: parsing and printing JSON with every
 *	  allocation in the current memory context.
 */
#ifndef KAIREON_UTIL_JSON_H
#define KAIREON_UTIL_JSON_H

#include "postgres.h"

/*
 * fmgrprotos.h (via utils/builtins.h) declares the SQL function json_object(),
 * and jansson has a C function of the same name.  Include the PostgreSQL
 * header first with its declaration renamed, so both can be used in one file.
 * A module includes postgres.h first, as every module does, then this header
 * before any header that brings utils/builtins.h or utils/fmgrprotos.h.
 */
#define json_object pg_sql_json_object
#include "utils/builtins.h"
#undef json_object

#include <jansson.h>

/*
 * The server binary exports its SQL function json_object() under the same
 * symbol name as jansson's constructor, and a call from kaireon.so binds to the
 * server's.  New empty objects therefore come from kj_object(), which builds
 * them inside jansson; this macro makes json_object() mean that.
 */
extern json_t *kj_object(void);
#define json_object() kj_object()

#include "utils/jsonb.h"

/* module init (kaireon.c): jansson's allocator */
extern void kaireon_json_init(void);

extern json_t *kj_parse(const char *text, size_t len, const char *what);
/* kj_parse, reading bare NaN / Infinity / -Infinity tokens as null */
extern json_t *kj_parse_nonfinite(const char *text, size_t len, const char *what);
extern json_t *kj_from_jsonb(Jsonb *jb, const char *what);
extern char *kj_dump(const json_t *value, size_t flags);
extern Jsonb *kj_to_jsonb(const json_t *value);
extern Numeric kj_real_numeric(double d);
extern const char *kj_type_name(const json_t *value);
extern json_t *kj_query_tenant(const char *sql, const char *tenant_id, const char *what, bool read_only);

/*
 * Building a JSON value once for two consumers: as a jansson tree (kjb_init with
 * jsonb false) or straight as jsonb with pushJsonbValue (true), without a jansson
 * tree or text in between.  Open objects and arrays with kjb_object / kjb_array and
 * close them with kjb_end; inside an object every value names its key, inside an
 * array the key is ignored (NULL).  Both forms give the same value: numbers as
 * kj_to_jsonb gives them (reals to 15 significant digits, kj_real_numeric).
 */
#define KJB_MAX_DEPTH 8
typedef struct KjBuild
{
	bool		jsonb;			/* building jsonb, else a jansson tree */
	int			depth;			/* open containers */
	bool		is_object[KJB_MAX_DEPTH];	/* each open container: an object, else an array */
	JsonbParseState *state;		/* jsonb */
	JsonbValue *result;			/* jsonb: the value once complete */
	json_t	   *stack[KJB_MAX_DEPTH];	/* jansson: the open containers */
	json_t	   *root;			/* jansson: the value */
} KjBuild;

extern void kjb_init(KjBuild *b, bool jsonb);
extern void kjb_object(KjBuild *b, const char *key);
extern void kjb_array(KjBuild *b, const char *key);
extern void kjb_end(KjBuild *b);
extern void kjb_string(KjBuild *b, const char *key, const char *s);
extern void kjb_real(KjBuild *b, const char *key, double d);
extern void kjb_int(KjBuild *b, const char *key, int64 i);
extern void kjb_bool(KjBuild *b, const char *key, bool value);
extern void kjb_null(KjBuild *b, const char *key);
extern void kjb_json(KjBuild *b, const char *key, json_t *value);
extern Jsonb *kjb_jsonb(KjBuild *b);
extern json_t *kjb_tree(KjBuild *b);

/*
 * An object's members described once, as a table in the order the jansson tree
 * shows them (and so the text printed from it): kjb_members writes them in that
 * order into a jansson tree, and into jsonb in jsonb's own order of keys, which
 * pushJsonbValue itself finds once per backend from the table's keys; the sort
 * at the object's end then finds the members in order (one comparison each, no
 * moves) instead of reordering them.  A member's write may write nothing (the
 * member is absent); index is the member's number for a write several members
 * share.  The keys of a table are distinct.
 */
typedef void (*KjWrite) (KjBuild *b, const char *key, const void *arg, int index);
typedef struct KjMember
{
	const char *key;
	KjWrite		write;
	int			index;
} KjMember;
typedef struct KjMembers
{
	const KjMember *members;
	int			n;
	int		   *jsonb_order;	/* the members in jsonb's key order (found on first use) */
} KjMembers;
#define KJ_MEMBERS(table) {(table), lengthof(table), NULL}
extern void kjb_members(KjBuild *b, KjMembers *m, const void *arg);

/* Field accessors for JSON objects: NULL / the default when absent or JSON null. */
extern const char *kj_str(const json_t *obj, const char *key);
extern const char *kj_id(const json_t *obj, const char *key, const char *what);
extern double kj_num(const json_t *obj, const char *key, double dflt);
extern bool kj_bool(const json_t *obj, const char *key, bool dflt);
extern json_t *kj_array(const json_t *obj, const char *key);
extern bool kj_array_has_string(const json_t *array, const char *s);
extern void kj_set_tenant(json_t *obj, const char *tenant_id, const char *what);
/* 22023 for a key of obj not in allowed (NULL-terminated), naming it and what */
extern void kj_known_keys(const json_t *obj, const char *const *allowed, const char *what);

#endif							/* KAIREON_UTIL_JSON_H */
