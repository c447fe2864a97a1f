/*
 * config/fieldspec.h
 *	  The field checks every validator of configuration documents shares
 *	  (fieldspec.c): a FieldSpec table (a field's allowed JSON types, choices
 *	  and bounds), the context its 22023 messages name, and the row a
 *	  validating trigger checks.  config/validate.h includes it; fieldspec.c
 *	  includes only this header, so that it stands below its callers.
 */
#ifndef KAIREON_FIELDSPEC_H
#define KAIREON_FIELDSPEC_H

#include <math.h>

#include "util/json.h"

#include "commands/trigger.h"

/* JSON types a field may take (a bit mask) */
#define JT_STRING	0x01
#define JT_NUMBER	0x02		/* integer or real */
#define JT_INTEGER	0x04		/* integer, or real with an integral value */
#define JT_BOOLEAN	0x08
#define JT_ARRAY	0x10
#define JT_OBJECT	0x20
#define JT_NULL		0x40
#define JT_SCALAR	(JT_STRING | JT_NUMBER | JT_BOOLEAN)
#define JT_ANY		(JT_SCALAR | JT_ARRAY | JT_OBJECT | JT_NULL)

#define NO_BOUND	NAN

/* One field of a configuration object. */
typedef struct FieldSpec
{
	const char *name;
	int			types;			/* JT_* mask */
	bool		required;
	const char *const *choices; /* allowed strings (for strings and string arrays) */
	int			elem_types;		/* for arrays: allowed element types, 0 = any */
	double		min;			/* numbers: lower bound; arrays: min length */
	double		max;			/* numbers: upper bound; arrays: max length */
} FieldSpec;

/* Where a document is validated, for messages. */
typedef struct ValidateCtx
{
	const char *where;			/* e.g. "qualification_rules.config" */
	const char *rule_type;
	const char *doc;			/* the page the hint cites; NULL: docs/config.md */
} ValidateCtx;

#define FIELD_END {NULL, 0, false, NULL, 0, NO_BOUND, NO_BOUND}

/* An object checked against its FieldSpec table; the 22023 report naming the field; pieces of the messages. */
extern void kaireon_check_fields(ValidateCtx *ctx, json_t *obj, const FieldSpec *fields);
extern void kaireon_config_error(ValidateCtx *ctx, const char *path, const char *problem) pg_attribute_noreturn();
extern bool kaireon_type_matches(const json_t *v, int types);
extern bool kaireon_in_choices(const char *s, const char *const *choices);
extern char *kaireon_choices_text(const char *const *choices);
/* The row a BEFORE INSERT OR UPDATE row trigger validates, and its text and jsonb columns. */
extern HeapTuple kaireon_trigger_new_row(FunctionCallInfo fcinfo, const char *name);
extern char *kaireon_trigger_text(TriggerData *td, HeapTuple tuple, const char *column);
extern json_t *kaireon_trigger_json(TriggerData *td, HeapTuple tuple, const char *column, const char *what);

#endif							/* KAIREON_FIELDSPEC_H */
