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
 * A module must include this header before utils/builtins.h.
 */
#define json_object pg_sql_json_object
#include "utils/builtins.h"
#undef json_object

#include <jansson.h>

/*
 * Calls of jansson's json_object() from kaireon.so bind to the server's SQL
 * function of that name at run time; use kj_object().  This makes such a call
 * a compile error.
 */
#define json_object(...) json_object_binds_to_the_server_use_kj_object

#include "utils/jsonb.h"

extern json_t *kj_parse(const char *text, size_t len, const char *what);
extern json_t *kj_from_jsonb(Jsonb *jb, const char *what);
extern json_t *kj_object(void);
extern char *kj_dump(const json_t *value, size_t flags);
extern const char *kj_type_name(const json_t *value);

#endif							/* KAIREON_UTIL_JSON_H */
