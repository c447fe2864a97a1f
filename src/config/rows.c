/*
 * config/rows.c
 *	  Reading a tenant's configuration rows while compiling them (compile.c,
 *	  eligibility.c): the rows of a query as one JSON array, their string
 *	  and numeric columns as the compiled configuration keeps them, and the
 *	  pieces several tables share (scope kinds, weekday lists).  All run
 *	  inside an SPI connection, in the configuration's memory context.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "config/rows.h"

/* Run a query with the tenant id as $1 that returns one jsonb array (NULL: empty); parse it. */
json_t *
kcfg_rows(const char *sql, const char *tenant_id, const char *what)
{
	json_t	   *rows = kj_query_tenant(sql, tenant_id, what, true);

	return rows ? rows : json_array();
}

/* Copy a JSON string field into the cache context (NULL stays NULL). */
const char *
kcfg_str(const json_t *obj, const char *key)
{
	const char *s = kj_str(obj, key);

	return s ? pstrdup(s) : NULL;
}

/*
 * A numeric column of a configuration row, or dflt when NULL.  to_jsonb writes NaN and
 * Infinity as strings, which kj_num would read as dflt (a NaN cost as 0, a NaN budget as no
 * budget); every such column has a <table>_<column>_finite CHECK, so this is a defensive
 * check only (docs/schema.md, "Finite numbers").
 */
double
kcfg_finite(const KTenantConfig *cfg, const json_t *row, const char *table, const char *key, double dflt)
{
	json_t	   *v = json_object_get(row, key);

	if (v == NULL || json_is_null(v))
		return dflt;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.%s of tenant \"%s\" (row \"%s\") is not a finite number: %s",
						table, key, cfg->tenant_id, kj_str(row, "id") ? kj_str(row, "id") : "?",
						json_is_string(v) ? json_string_value(v) : kj_type_name(v)),
				 errhint("Set the column to a finite number; kaireon refuses NaN and Infinity.")));
	return json_number_value(v);
}

/* Scope name to kind (NULL: global; the tables' CHECKs admit no other names than the list's). */
KScopeKind
kcfg_scope_kind(const char *s)
{
	int			k;

	if (s == NULL)
		return KSCOPE_GLOBAL;
	k = kaireon_type_index(kaireon_scope_names, s);
	return k >= 0 ? (KScopeKind) k : KSCOPE_OFFER;
}

/* Bitmask of weekdays from an array of 0..6. */
int
kcfg_days_mask(json_t *days)
{
	int			mask = 0;
	size_t		i;
	json_t	   *d;

	if (days == NULL)
		return 0;
	json_array_foreach(days, i, d)
	{
		if (json_is_number(d))
		{
			int			day = (int) json_number_value(d);

			if (day >= 0 && day <= 6)
				mask |= 1 << day;
		}
	}
	return mask;
}
