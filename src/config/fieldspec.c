/*
 * config/fieldspec.c
 *	  The checks every validator of configuration documents shares
 *	  (validate*.c, trigger_rules.c, journey.c, flowgraph.c): an object checked
 *	  against its FieldSpec table (known fields only, required ones present,
 *	  each of its allowed JSON types, choices and bounds), the 22023 report
 *	  naming where and the field, and the new row of a validating BEFORE row
 *	  trigger with its text and jsonb columns.  Calls nothing of the folder.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "config/fieldspec.h"

/* Report a bad field: 22023 naming the column, the field path and what was expected. */
void
kaireon_config_error(ValidateCtx *ctx, const char *path, const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s: field \"%s\" %s", ctx->where, path, problem),
			 ctx->rule_type ? errdetail("Rule type \"%s\".", ctx->rule_type) : 0,
			 ctx->doc ? errhint("See %s for the shape of this document.", ctx->doc) :
			 errhint("See docs/config.md for the shape of each rule type's configuration.")));
}

/* Describe a JT_* mask for messages ("string or number"). */
static char *
types_text(int types)
{
	StringInfoData buf;
	static const struct
	{
		int			bit;
		const char *name;
	}			names[] = {
		{JT_STRING, "string"}, {JT_NUMBER, "number"}, {JT_INTEGER, "integer"},
		{JT_BOOLEAN, "boolean"}, {JT_ARRAY, "array"}, {JT_OBJECT, "object"},
		{JT_NULL, "null"}
	};

	initStringInfo(&buf);
	for (size_t i = 0; i < lengthof(names); i++)
	{
		if (types & names[i].bit)
		{
			if (buf.len > 0)
				appendStringInfoString(&buf, " or ");
			appendStringInfoString(&buf, names[i].name);
		}
	}
	return buf.data;
}

/* Does a JSON value have one of the allowed types? */
bool
kaireon_type_matches(const json_t *v, int types)
{
	if ((types & JT_STRING) && json_is_string(v))
		return true;
	if ((types & JT_NUMBER) && json_is_number(v))
		return true;
	if ((types & JT_INTEGER) &&
		(json_is_integer(v) ||
		 (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)))))
		return true;
	if ((types & JT_BOOLEAN) && json_is_boolean(v))
		return true;
	if ((types & JT_ARRAY) && json_is_array(v))
		return true;
	if ((types & JT_OBJECT) && json_is_object(v))
		return true;
	if ((types & JT_NULL) && json_is_null(v))
		return true;
	return false;
}

/* Is s one of the NULL-terminated choices? */
bool
kaireon_in_choices(const char *s, const char *const *choices)
{
	for (int i = 0; choices[i] != NULL; i++)
		if (strcmp(s, choices[i]) == 0)
			return true;
	return false;
}

/* The choices as "a, b, c" for messages. */
char *
kaireon_choices_text(const char *const *choices)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; choices[i] != NULL; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", choices[i]);
	return buf.data;
}

/* Check a string value against its field's choices. */
static void
check_choice(ValidateCtx *ctx, const char *path, const json_t *v, const char *const *choices)
{
	if (choices != NULL && !kaireon_in_choices(json_string_value(v), choices))
		kaireon_config_error(ctx, path,
					 psprintf("must be one of %s, not \"%s\"",
							  kaireon_choices_text(choices), json_string_value(v)));
}

/* Check one field value against its spec. */
static void
check_field(ValidateCtx *ctx, const FieldSpec *f, json_t *v)
{
	if (!kaireon_type_matches(v, f->types))
		kaireon_config_error(ctx, f->name,
					 psprintf("must be %s, not %s", types_text(f->types), kj_type_name(v)));

	if (json_is_number(v))
	{
		double		d = json_number_value(v);

		if ((!isnan(f->min) && d < f->min) || (!isnan(f->max) && d > f->max))
			kaireon_config_error(ctx, f->name,
						 psprintf("must be between %g and %g, not %g", f->min, f->max, d));
	}
	else if (json_is_string(v))
	{
		size_t		len = json_string_length(v);

		check_choice(ctx, f->name, v, f->choices);
		if (f->choices == NULL &&
			((!isnan(f->min) && len < f->min) || (!isnan(f->max) && len > f->max)))
			kaireon_config_error(ctx, f->name,
						 psprintf("must be %g to %g characters long, not %zu", f->min, f->max, len));
	}
	else if (json_is_array(v))
	{
		size_t		n = json_array_size(v);
		size_t		i;
		json_t	   *e;

		if ((!isnan(f->min) && n < f->min) || (!isnan(f->max) && n > f->max))
			kaireon_config_error(ctx, f->name,
						 psprintf("must have %g to %g elements, not %zu", f->min, f->max, n));
		json_array_foreach(v, i, e)
		{
			char	   *epath = psprintf("%s[%zu]", f->name, i);

			if (f->elem_types != 0 && !kaireon_type_matches(e, f->elem_types))
				kaireon_config_error(ctx, epath,
							 psprintf("must be %s, not %s", types_text(f->elem_types), kj_type_name(e)));
			if (json_is_string(e))
				check_choice(ctx, epath, e, f->choices);
		}
	}
}

/* Check an object's fields against a spec table: known fields only, required ones present. */
void
kaireon_check_fields(ValidateCtx *ctx, json_t *config, const FieldSpec *fields)
{
	const char *key;
	json_t	   *value;

	if (!json_is_object(config))
		kaireon_config_error(ctx, "(root)", psprintf("must be an object, not %s", kj_type_name(config)));

	json_object_foreach(config, key, value)
	{
		const FieldSpec *f = NULL;

		for (int i = 0; fields[i].name != NULL; i++)
			if (strcmp(fields[i].name, key) == 0)
				f = &fields[i];
		if (f == NULL)
		{
			StringInfoData known;

			initStringInfo(&known);
			for (int i = 0; fields[i].name != NULL; i++)
				appendStringInfo(&known, "%s%s", i ? ", " : "", fields[i].name);
			kaireon_config_error(ctx, key, psprintf("is not a known field (known fields: %s)", known.data));
		}
		check_field(ctx, f, value);
	}
	for (int i = 0; fields[i].name != NULL; i++)
		if (fields[i].required && json_object_get(config, fields[i].name) == NULL)
			kaireon_config_error(ctx, fields[i].name, "is required");
}

/* A text column of the trigger's new row (NULL when null). */
char *
kaireon_trigger_text(TriggerData *td, HeapTuple tuple, const char *column)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, SPI_fnumber(RelationGetDescr(td->tg_relation), column),
								 RelationGetDescr(td->tg_relation), &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* A jsonb column of the trigger's new row (NULL when null). */
json_t *
kaireon_trigger_json(TriggerData *td, HeapTuple tuple, const char *column, const char *what)
{
	bool		isnull;
	Datum		d = heap_getattr(tuple, SPI_fnumber(RelationGetDescr(td->tg_relation), column),
								 RelationGetDescr(td->tg_relation), &isnull);

	return isnull ? NULL : kj_from_jsonb(DatumGetJsonbP(d), what);
}

/* The new row of a BEFORE INSERT OR UPDATE row trigger. */
HeapTuple
kaireon_trigger_new_row(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		elog(ERROR, "%s must be a BEFORE INSERT OR UPDATE row trigger", name);
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
}
