/*
 * scoring/experiment.c
 *	  The numeric helpers of champion/challenger experiments and control
 *	  groups (sql/install/40_models.sql holds the rest): the 32-bit FNV-1a
 *	  hash and the sticky bucket in [0, 100) built on it, which assigns a
 *	  customer to an experiment's variant, a control group or an offer's
 *	  holdout (docs/lift.md), the arm a bucket gives under weights (the one
 *	  rule of kaireon.assign_variant and of flow A/B tests), and the standard
 *	  normal CDF for the two-proportion z-test (PostgreSQL 15 has no erf in SQL).
 *
 * Assignment protocol: bucket(key, customer) = FNV-1a("key:customer") mod
 * 10000, over 100.  An experiment's key is its experiment key; a control
 * group's key is "kaireon-control:<tenant>:<scope>" (scope "" for the
 * tenant's group, "flow:<key>" for a flow's, "offer:<id>" for an offer's
 * holdout), so the groups are independent of each other and of experiments.
 *
 * Split protocol: an experiment's arms (variants) are ordered by name in C
 * collation, with non-negative finite weights not all 0 (checked by
 * kaireon_internal._split_weights, sql/install/40_models.sql, when written or
 * passed); the customer's arm is the first whose cumulated weight exceeds
 * bucket * total / 100, the last one if rounding leaves none.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "scoring/scoring.h"

PG_FUNCTION_INFO_V1(kaireon_fnv1a);
PG_FUNCTION_INFO_V1(kaireon_experiment_bucket);
PG_FUNCTION_INFO_V1(kaireon_control_bucket_sql);
PG_FUNCTION_INFO_V1(kaireon_normal_cdf);
PG_FUNCTION_INFO_V1(kaireon_split_arm_sql);

/* Continue a 32-bit FNV-1a hash h over len bytes. */
static uint32
fnv1a_continue(uint32 h, const char *bytes, size_t len)
{
	const unsigned char *p = (const unsigned char *) bytes;

	for (size_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

/* kaireon.fnv1a(text): 32-bit FNV-1a of the text's bytes, as a bigint in [0, 2^32). */
Datum
kaireon_fnv1a(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);

	PG_RETURN_INT64((int64) fnv1a_continue(2166136261u, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

/* The sticky bucket in [0, 100) of a customer under an assignment key (the protocol above). */
double
kaireon_assignment_bucket(const char *key, const char *customer_id)
{
	uint32		h = fnv1a_continue(2166136261u, key, strlen(key));

	h = fnv1a_continue(h, ":", 1);
	h = fnv1a_continue(h, customer_id, strlen(customer_id));
	return (double) (h % 10000) / 100.0;
}

/*
 * The arm (index into weights, n >= 1, in the split's order) a customer gets
 * in the experiment key: the split protocol above.  total is the weights' sum.
 */
int
kaireon_split_arm(const char *key, const char *customer_id, const double *weights, int n, double total)
{
	double		u = kaireon_assignment_bucket(key, customer_id) * total / 100.0;
	double		cum = 0;

	for (int k = 0; k < n; k++)
	{
		cum += weights[k];
		if (u < cum)
			return k;
	}
	return n - 1;
}

/*
 * kaireon_internal._split_arm(experiment_key, customer_id, weights): the
 * 1-based position of the customer's arm among weights, ordered and checked
 * by kaireon_internal._split_weights (kaireon.assign_variant's call); weights
 * that are null, negative, not finite or add up to 0 are refused (22023).
 */
Datum
kaireon_split_arm_sql(PG_FUNCTION_ARGS)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	double	   *weights;
	double		total = 0;

	deconstruct_array(a, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	weights = palloc(sizeof(double) * Max(n, 1));
	for (int k = 0; k < n; k++)
	{
		weights[k] = nulls[k] ? NAN : DatumGetFloat8(elems[k]);
		if (!isfinite(weights[k]) || weights[k] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("weight %d of the split is %s, not a non-negative finite number",
							k + 1, nulls[k] ? "null" : psprintf("%g", weights[k])),
					 errhint("Pass the weights kaireon_internal._split_weights returns.")));
		total += weights[k];
	}
	if (!(total > 0) || !isfinite(total))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the split's %d weights add up to %g, not a positive finite number", n, total),
				 errhint("Pass the weights kaireon_internal._split_weights returns.")));
	PG_RETURN_INT32(kaireon_split_arm(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)),
									  weights, n, total) + 1);
}

/* A control group's bucket: scope "" (the tenant's), "flow:<key>" or "offer:<id>". */
double
kaireon_control_bucket(const char *tenant_id, const char *scope, const char *customer_id)
{
	return kaireon_assignment_bucket(psprintf("kaireon-control:%s:%s", tenant_id, scope), customer_id);
}

/* kaireon.experiment_bucket(experiment_key, customer_id): the customer's bucket for an experiment. */
Datum
kaireon_experiment_bucket(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(kaireon_assignment_bucket(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											   text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/* kaireon.control_bucket(tenant_id, customer_id, scope): the customer's bucket for a control group. */
Datum
kaireon_control_bucket_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(kaireon_control_bucket(text_to_cstring(PG_GETARG_TEXT_PP(0)),
											text_to_cstring(PG_GETARG_TEXT_PP(2)),
											text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/* kaireon.normal_cdf(z): P(Z <= z) for a standard normal Z. */
Datum
kaireon_normal_cdf(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(0.5 * erfc(-PG_GETARG_FLOAT8(0) / M_SQRT2));
}
