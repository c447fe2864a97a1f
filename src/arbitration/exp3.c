/*
 * exp3.c
 *	  EXP3-IX arbitration across arms, each arm a weight vector over the PRIE
 *	  factors (docs/arbitration.md, "EXP3-IX"): the arm probabilities from the
 *	  persisted gains, the draw, the reward update from respond, and
 *	  kaireon.exp3_state for inspection.
 *
 * Gains are kept per arm in kaireon.exp3_arms: G_a, the cumulative
 * importance-weighted reward estimate of arm a with implicit exploration,
 * G_a += r / (p_a + gamma) for the arm that was played.  Probabilities are
 *     w_a = exp(eta * (G_a - max_b G_b)),  p_a = (1 - beta) w_a / sum_b w_b + beta / K.
 * A reward is 1 for the first positive outcome of a decision (a later
 * positive outcome of the same decision adds nothing: kaireon.exp3_rewards
 * keeps one row per rewarded decision); other outcomes are reward 0, which
 * changes no gain.  The update is one statement: concurrent responds
 * serialise on the arm's row and lose nothing.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/memutils.h"

#include "util/spi.h"
#include "arbitration/hooks.h"
#include "arbitration/rt.h"
#include "security/session.h"

PG_FUNCTION_INFO_V1(kaireon_exp3_state);

/* The arm probabilities from the gains; see the file header. */
void
karb_exp3_probabilities(const KArbProfile *p, const double *gains, double *prob)
{
	double		top = -INFINITY,
				sum = 0;
	int			k = p->narms;

	for (int a = 0; a < k; a++)
		top = Max(top, gains[a]);
	for (int a = 0; a < k; a++)
	{
		prob[a] = exp(p->eta * (gains[a] - top));
		sum += prob[a];
	}
	for (int a = 0; a < k; a++)
		prob[a] = (1 - p->beta) * prob[a] / sum + p->beta / k;
}

/* The arm whose cumulative probability interval holds u in [0, 1). */
int
karb_exp3_draw(const double *prob, int n, double u)
{
	double		acc = 0;

	for (int a = 0; a < n; a++)
	{
		acc += prob[a];
		if (u < acc)
			return a;
	}
	return n - 1;
}

/* Reward the arm of the decision a positive outcome belongs to; see hooks.h. */
void
karb_respond(KTenantConfig *cfg, const char *recommendation_id, const char *customer_id,
			 const char *offer_id, const char *placement_id, KaireonOutcomeClass cls, json_t *result)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr reward_plan = NULL;
	KArbConfig *ac;
	Oid			ftypes[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Oid			rtypes[7] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT8OID, FLOAT8OID, TIMESTAMPTZOID};
	Datum		v[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char	   *interaction_id,
			   *profile_id;
	int			arm,
				p;
	double		prob,
				estimate;
	bool		isnull;
	const KArbProfile *prof;

	if (cls != KAIREON_OUTCOME_POSITIVE || recommendation_id == NULL || offer_id == NULL)
		return;
	ac = karb_config(cfg);
	if (!ac->any_bandit)
		return;
	if (find_plan == NULL)
		find_plan = kspi_prepare_keep(
			"SELECT h.id, h.arbitration_profile_id, h.arbitration_arm, h.selection_probability "
			"  FROM kaireon.interaction_history h "
			" WHERE h.tenant_id = $1 AND h.recommendation_id = $2 AND h.customer_id = $3 "
			"   AND h.interaction_type = 'recommendation' AND h.offer_id = $4 "
			"   AND h.placement_id IS NOT DISTINCT FROM $5 AND h.arbitration_arm IS NOT NULL LIMIT 1",
			5, ftypes);
	v[0] = CStringGetTextDatum(cfg->tenant_id);
	v[1] = CStringGetTextDatum(recommendation_id);
	v[2] = CStringGetTextDatum(customer_id);
	v[3] = CStringGetTextDatum(offer_id);
	if (placement_id)
		v[4] = CStringGetTextDatum(placement_id);
	else
		nulls[4] = 'n';
	if (kspi_execute_plan(find_plan, v, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the decision's arm failed");
	if (SPI_processed == 0)
		return;
	interaction_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	profile_id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	arm = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	prob = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	if (profile_id == NULL)
		return;
	for (p = 0; p < ac->nprofiles; p++)
		if (strcmp(ac->profiles[p].id, profile_id) == 0)
			break;
	/* the profile is gone or has other arms now: nothing to teach */
	if (p == ac->nprofiles || arm >= ac->profiles[p].narms || isnull || !(prob > 0))
		return;
	prof = &ac->profiles[p];
	estimate = 1.0 / (prob + prof->gamma);

	if (reward_plan == NULL)
		reward_plan = kspi_prepare_keep(
			"WITH first AS (INSERT INTO kaireon.exp3_rewards (tenant_id, interaction_id, profile_id, arm, "
			"                 selection_probability, reward, estimate) "
			"               VALUES ($1, $2, $3, $4, $5, 1, $6) ON CONFLICT DO NOTHING RETURNING 1) "
			"INSERT INTO kaireon.exp3_arms AS a (tenant_id, profile_id, arm, gain, rewards, updated_at) "
			"SELECT $1, $3, $4, $6, 1, $7 FROM first "
			"ON CONFLICT (tenant_id, profile_id, arm) DO UPDATE "
			"   SET gain = a.gain + EXCLUDED.gain, rewards = a.rewards + 1, updated_at = EXCLUDED.updated_at "
			"RETURNING a.gain",
			7, rtypes);
	memset(nulls, ' ', sizeof(nulls));
	v[1] = CStringGetTextDatum(interaction_id);
	v[2] = CStringGetTextDatum(profile_id);
	v[3] = Int32GetDatum(arm);
	v[4] = Float8GetDatum(prob);
	v[5] = Float8GetDatum(estimate);
	v[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());	/* no now() in ON CONFLICT */
	if (kspi_execute_plan(reward_plan, v, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "kaireon: rewarding the EXP3-IX arm failed");
	json_object_set_new(result, "exp3", json_pack("{s:s,s:i,s:b,s:f}", "profile", prof->key, "arm", arm,
												  "rewarded", SPI_processed > 0,
												  "estimate", SPI_processed > 0 ? estimate : 0.0));
	karb_forget_state(cfg);
}

/*
 * kaireon.exp3_state(tenant_id, profile_key): each arm of an EXP3-IX profile
 * with its weights, gain, rewards and current probability.
 */
Datum
kaireon_exp3_state(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant_id,
			   *key;
	KTenantConfig *cfg;
	KArbConfig *ac;
	const KArbProfile *p = NULL;
	int			pi;
	double	   *prob;
	MemoryContext mcxt;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	json_t	   *rewards = NULL;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and profile_key must not be null"),
				 errhint("Pass a tenant and the key of one of its arbitration profiles.")));
	tenant_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	InitMaterializedSRF(fcinfo, 0);
	mcxt = CurrentMemoryContext;
	kaireon_check_tenant_access(tenant_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(mcxt);
	cfg = kaireon_config_get(tenant_id);
	ac = karb_config(cfg);
	for (pi = 0; pi < ac->nprofiles; pi++)
		if (strcmp(ac->profiles[pi].key, key) == 0)
		{
			p = &ac->profiles[pi];
			break;
		}
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("arbitration profile \"%s\" does not exist or is not active for tenant \"%s\"", key, tenant_id),
				 errhint("Pass the key of an active kaireon.arbitration_profiles row.")));
	if (p->narms == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("arbitration profile \"%s\" has no EXP3-IX arms", key),
				 errhint("Give its weights an \"arms\" array to arbitrate across weight vectors.")));
	karb_refresh_state(cfg, ac, true);
	args[0] = CStringGetTextDatum(tenant_id);
	args[1] = CStringGetTextDatum(p->id);
	if (kspi_execute_with_args("SELECT jsonb_object_agg(arm, rewards) FROM kaireon.exp3_arms "
							   " WHERE tenant_id = $1 AND profile_id = $2", 2, types, args, NULL, true, 0)
		== SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			rewards = kj_from_jsonb(DatumGetJsonbP(d), "rewards");
	}
	prob = palloc(sizeof(double) * p->narms);
	karb_exp3_probabilities(p, ac->gains[pi], prob);
	for (int a = 0; a < p->narms; a++)
	{
		Datum		values[5];
		bool		nulls[5] = {0};
		char		name[16];
		const KArbWeights *w = &p->arms[a];

		snprintf(name, sizeof(name), "%d", a);
		values[0] = Int32GetDatum(a);
		values[1] = JsonbPGetDatum(kj_to_jsonb(json_pack("{s:f,s:f,s:f,s:f,s:f}", "P", w->w[0], "R", w->w[1],
														  "I", w->w[2], "E", w->w[3],
														  "impactRevenueShare", w->revenue_share)));
		values[2] = Float8GetDatum(ac->gains[pi][a]);
		values[3] = Int64GetDatum((int64) kj_num(rewards, name, 0));
		values[4] = Float8GetDatum(prob[a]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	return (Datum) 0;
}
