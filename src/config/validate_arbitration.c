/*
 * config/validate_arbitration.c
 *	  The arbitration documents checked when written (docs/arbitration.md):
 *	  cross-offer constraints by rule type (their specs, in which validate.c's
 *	  dispatch looks a rule type up), arbitration profile weights (PRIE
 *	  weights, or EXP3-IX arms) and runs.volume_constraints, for validate.c
 *	  (validate_internal.h).
 */
#include "postgres.h"

#include "util/json.h"

#include "config/validate_internal.h"

/* ---- arbitration (docs/arbitration.md) ---- */

static void check_cross_offer(json_t *config, ValidateCtx *ctx);

static const char *const cross_offer_periods[] = {"daily", "weekly", "monthly", "quarterly", "run", NULL};

static const FieldSpec coc_count[] = {
	{"limit", JT_INTEGER, false, NULL, 0, 1, 1e15},
	{"period", JT_STRING, false, cross_offer_periods, 0, NO_BOUND, NO_BOUND},
	{"maxPerResponse", JT_INTEGER, false, NULL, 0, 1, 50},
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec coc_budget[] = {
	{"limit", JT_NUMBER, false, NULL, 0, 0, 1e15},
	{"period", JT_STRING, false, cross_offer_periods, 0, NO_BOUND, NO_BOUND},
	{"maxPerResponse", JT_NUMBER, false, NULL, 0, 0, 1e15},
	{"costField", JT_STRING, false, NULL, 0, 1, 200},
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};

const RuleSpec kaireon_cross_offer_specs[] = {
	{"channel_quota", coc_count, check_cross_offer},
	{"category_cap", coc_count, check_cross_offer},
	{"portfolio_budget", coc_budget, check_cross_offer},
	{NULL, NULL, NULL}
};

/* The PRIE weights of an arbitration profile (or of one EXP3-IX arm). */
static const FieldSpec profile_weight_fields[] = {
	{"propensity", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"relevance", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"impact", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"revenue", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"margin", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"emphasis", JT_NUMBER, false, NULL, 0, 0, 1000},
	{"engagement", JT_NUMBER, false, NULL, 0, 0, 1000},
	FIELD_END
};
static const FieldSpec profile_bandit_fields[] = {
	{"arms", JT_ARRAY, true, NULL, JT_OBJECT, 2, 32},
	{"gamma", JT_NUMBER, false, NULL, 0, 0, 1},
	{"eta", JT_NUMBER, false, NULL, 0, 0.000001, 100},
	{"beta", JT_NUMBER, false, NULL, 0, 0, 1},
	FIELD_END
};

/* runs.volume_constraints */
static const FieldSpec run_limit_fields[] = {
	{"maxTotal", JT_INTEGER, false, NULL, 0, 0, 1e15},
	{"perOffer", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"perCategory", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"perChannel", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};

/*
 * Cross-offer constraints: a global limit needs its period and must be
 * positive; at least one of limit and maxPerResponse; a per-response budget
 * must be positive.
 */
static void
check_cross_offer(json_t *config, ValidateCtx *ctx)
{
	json_t	   *limit = json_object_get(config, "limit");
	json_t	   *per = json_object_get(config, "maxPerResponse");

	if (limit == NULL && per == NULL)
		kaireon_config_error(ctx, "limit", "or \"maxPerResponse\" is required (a constraint must limit something)");
	if (limit != NULL && json_number_value(limit) <= 0)
		kaireon_config_error(ctx, "limit", psprintf("must be greater than 0, not %g", json_number_value(limit)));
	if (limit != NULL && json_object_get(config, "period") == NULL)
		kaireon_config_error(ctx, "period", "is required with \"limit\" (daily, weekly, monthly, quarterly or run)");
	if (limit == NULL && json_object_get(config, "period") != NULL)
		kaireon_config_error(ctx, "period", "is only meaningful with \"limit\"");
	if (per != NULL && json_number_value(per) <= 0)
		kaireon_config_error(ctx, "maxPerResponse", psprintf("must be greater than 0, not %g", json_number_value(per)));
}

/* One set of PRIE weights: known keys, not all zero. */
static void
check_profile_weights(json_t *w, ValidateCtx *ctx)
{
	const char *key;
	json_t	   *v;
	double		sum = 0;

	kaireon_check_fields(ctx, w, profile_weight_fields);
	json_object_foreach(w, key, v)
		sum += json_number_value(v);
	if (json_object_size(w) > 0 && !(sum > 0))
		kaireon_config_error(ctx, "(root)", "must give some factor a positive weight");
}

/*
 * Arbitration profile weights: either PRIE weights, or EXP3-IX arms (each a
 * set of PRIE weights) with gamma, eta and beta.
 */
void
kaireon_check_profile(json_t *config, ValidateCtx *ctx)
{
	if (!json_is_object(config))
		kaireon_config_error(ctx, "(root)", psprintf("must be an object, not %s", kj_type_name(config)));
	if (json_object_get(config, "arms") != NULL)
	{
		json_t	   *arms = json_object_get(config, "arms");
		size_t		i;
		json_t	   *arm;

		kaireon_check_fields(ctx, config, profile_bandit_fields);
		json_array_foreach(arms, i, arm)
		{
			ValidateCtx sub = {psprintf("%s.arms[%zu]", ctx->where, i), NULL};

			check_profile_weights(arm, &sub);
			if (json_object_size(arm) == 0)
				kaireon_config_error(&sub, "(root)", "must give some factor a positive weight");
		}
		return;
	}
	check_profile_weights(config, ctx);
}

/* runs.volume_constraints: maxTotal and per-offer, per-category, per-channel limits (integers >= 0). */
void
kaireon_check_run_limits(json_t *config, ValidateCtx *ctx)
{
	static const char *const maps[] = {"perOffer", "perCategory", "perChannel", NULL};

	kaireon_check_fields(ctx, config, run_limit_fields);
	for (int m = 0; maps[m]; m++)
	{
		json_t	   *obj = json_object_get(config, maps[m]);
		const char *id;
		json_t	   *v;

		if (obj == NULL)
			continue;
		json_object_foreach(obj, id, v)
		{
			if (!kaireon_type_matches(v, JT_INTEGER) || json_number_value(v) < 0)
				kaireon_config_error(ctx, psprintf("%s.%s", maps[m], id),
							 psprintf("must be an integer of at least 0, not %s",
									  json_is_number(v) ? psprintf("%g", json_number_value(v)) : kj_type_name(v)));
		}
	}
}
