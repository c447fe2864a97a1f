/*
 * scoring/experiment.c
 *	  The numeric helpers of champion/challenger experiments and control
 *	  groups (sql/install/40_models.sql holds the rest): the 32-bit FNV-1a
 *	  hash and the sticky bucket in [0, 100) built on it, which assigns a
 *	  customer to an experiment's variant, a control group or an offer's
 *	  holdout (docs/lift.md), and the standard normal CDF for the
 *	  two-proportion z-test (PostgreSQL 15 has no erf in SQL).
 *
 * Assignment protocol: bucket(key, customer) = FNV-1a("key:customer") mod
 * 10000, over 100.  An experiment's key is its experiment key; a control
 * group's key is "kaireon-control:<tenant>:<scope>" (scope "" for the
 * tenant's group, "flow:<key>" for a flow's, "offer:<id>" for an offer's
 * holdout), so the groups are independent of each other and of experiments.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "scoring/scoring.h"

PG_FUNCTION_INFO_V1(kaireon_fnv1a);
PG_FUNCTION_INFO_V1(kaireon_experiment_bucket);
PG_FUNCTION_INFO_V1(kaireon_control_bucket_sql);
PG_FUNCTION_INFO_V1(kaireon_normal_cdf);

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
