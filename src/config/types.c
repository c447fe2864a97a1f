/*
 * config/types.c
 *	  The name arrays of the type lists in types.h, the lookup by name, and
 *	  kaireon_internal._type_names(kind), which gives SQL the same lists (the regress
 *	  test type_lists compares them with the tables' CHECK constraints).
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "config/types.h"

PG_FUNCTION_INFO_V1(kaireon_type_names);

#define KAIREON_TYPE_NAME(e, name) name,

const char *const kaireon_qualification_type_names[] = {KAIREON_QUALIFICATION_TYPES(KAIREON_TYPE_NAME) NULL};
const char *const kaireon_policy_type_names[] = {KAIREON_POLICY_TYPES(KAIREON_TYPE_NAME) NULL};
const char *const kaireon_scope_names[] = {KAIREON_SCOPE_KINDS(KAIREON_TYPE_NAME) NULL};
const char *const kaireon_identifier_type_names[] = {KAIREON_IDENTIFIER_TYPES(KAIREON_TYPE_NAME) NULL};

StaticAssertDecl(lengthof(kaireon_qualification_type_names) == KRULE_NTYPES + 1, "one name per rule type");
StaticAssertDecl(lengthof(kaireon_policy_type_names) == KPOL_NTYPES + 1, "one name per policy type");
StaticAssertDecl(lengthof(kaireon_scope_names) == KSCOPE_NKINDS + 1, "one name per scope kind");
StaticAssertDecl(lengthof(kaireon_identifier_type_names) == KIDENT_NTYPES + 1, "one name per identifier type");

/* The position of name in a NULL-terminated list of names, or -1 (also for NULL). */
int
kaireon_type_index(const char *const *names, const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

/*
 * kaireon_internal._type_names(kind text) RETURNS SETOF text: the names of one list,
 * in list order; kind is qualification_rule, contact_policy, scope or identifier.
 */
Datum
kaireon_type_names(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *const *names;

	if (strcmp(kind, "qualification_rule") == 0)
		names = kaireon_qualification_type_names;
	else if (strcmp(kind, "contact_policy") == 0)
		names = kaireon_policy_type_names;
	else if (strcmp(kind, "scope") == 0)
		names = kaireon_scope_names;
	else if (strcmp(kind, "identifier") == 0)
		names = kaireon_identifier_type_names;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown type list \"%s\"", kind),
				 errhint("Valid lists: qualification_rule, contact_policy, scope, identifier.")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	for (int i = 0; names[i] != NULL; i++)
	{
		Datum		value = CStringGetTextDatum(names[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
