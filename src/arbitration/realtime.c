/*
 * realtime.c
 *	  Arbitration inside recommend (hooks.h): the PRIE weights of a placement
 *	  (its flow's arbitration profile, or an EXP3-IX arm), the formula score,
 *	  the dual prices subtracted in ranking when real-time Lagrangian
 *	  arbitration is on, the exact per-response caps, and what each decision
 *	  records for off-policy evaluation (docs/arbitration.md).
 *
 * No SPI per candidate: the compiled part (rtconfig.c) holds every
 * constraint's cost per offer; the prices and gains are read at most once per
 * kaireon.arbitration_refresh_ms.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "util/draw.h"

#include "arbitration/arbitration.h"
#include "arbitration/hooks.h"
#include "arbitration/rt.h"
#include "config/conditions.h"

/* A uniform number in [0, 1) fixed by two strings (the arm drawn for a recommendation). */
static double
stable_uniform(const char *a, const char *b)
{
	return kaireon_unit_interval(kaireon_string_hash(b, kaireon_string_hash(a, 0x657870)));
}

/* Clamp a PRIE factor into (0, 1]. */
static double
factor(double x)
{
	if (!(x > 1e-6))
		return 1e-6;
	return x > 1 ? 1 : x;
}

/* The request's arbitration state, made on its first placement. */
static KArbRequest *
request_state(KRequest *req, const KDecideArgs *args)
{
	if (req->arb == NULL)
	{
		KArbRequest *ar = palloc0(sizeof(KArbRequest));

		ar->ac = karb_config(req->cfg);
		ar->resp_used = palloc0(sizeof(double) * Max(ar->ac->ncons, 1));
		ar->batch = args->batch;
		req->arb = ar;
	}
	return req->arb;
}

/* Choose the placement's weights and read the prices when they apply; see hooks.h. */
void
karb_placement(KRequest *req, const KFlow *flow, const KDecideArgs *args, const char *recommendation_id)
{
	KArbRequest *ar = request_state(req, args);
	KArbConfig *ac = ar->ac;
	int			f = req->flow;

	ar->profile = -1;
	ar->arm = -1;
	ar->arm_probability = 0;
	ar->weights.w[0] = flow->w_p;
	ar->weights.w[1] = flow->w_r;
	ar->weights.w[2] = flow->w_i;
	ar->weights.w[3] = flow->w_e;
	ar->weights.revenue_share = 1;
	if (flow->method == KSCORE_FORMULA && f >= 0)
	{
		if (ac->flow_missing[f] != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("arbitration profile \"%s\" of decision flow \"%s\" does not exist or is not active",
							ac->flow_missing[f], flow->key),
					 errhint("Create or activate the kaireon.arbitration_profiles row, or change the flow's score.profileKey.")));
		ar->profile = ac->flow_profile[f];
	}
	if (ar->profile >= 0)
	{
		const KArbProfile *p = &ac->profiles[ar->profile];

		if (p->narms == 0)
			ar->weights = p->arms[0];
		else
		{
			double	   *prob = palloc(sizeof(double) * p->narms);

			karb_refresh_state(req->cfg, ac, false);
			karb_exp3_probabilities(p, ac->gains[ar->profile], prob);
			if (ar->batch)
			{
				/* a campaign exploits: the most probable arm */
				ar->arm = 0;
				for (int a = 1; a < p->narms; a++)
					if (prob[a] > prob[ar->arm])
						ar->arm = a;
			}
			else
				ar->arm = karb_exp3_draw(prob, p->narms, stable_uniform(recommendation_id, flow->key));
			ar->arm_probability = prob[ar->arm];
			ar->weights = p->arms[ar->arm];
		}
	}
	/* candidates keep pointing at their placement's weights after the next placement's draw */
	ar->placement_w = palloc(sizeof(double) * 4);
	memcpy(ar->placement_w, ar->weights.w, sizeof(double) * 4);
	ar->priced = ac->enabled && ac->any_priced && !ar->batch;
	if (ar->priced)
		karb_refresh_state(req->cfg, ac, false);
}

/* The formula score; see hooks.h. */
double
karb_prie(KRequest *req, const KFlow *flow, KCandidate *c, double max_value, double max_margin)
{
	const KArbRequest *ar = req->arb;
	const KOffer *o = &req->cfg->offers[c->offer];
	const KArbWeights *w = &ar->weights;
	double		v = factor(max_value > 0 ? o->value / max_value : 1.0);

	c->factors[1] = factor(c->match);
	if (w->revenue_share >= 1)
		c->factors[2] = v;
	else
	{
		double		m = factor(max_margin > 0 ? o->margin / max_margin : 1.0);

		c->factors[2] = factor(pow(v, w->revenue_share) * pow(m, 1 - w->revenue_share));
	}
	c->factors[3] = factor(o->priority / 100.0 * kj_num(kaireon_offer_column(o, "levers", strlen("levers")), "emphasis", 1.0));
	c->weights = ar->placement_w;
	return pow(c->factors[0], w->w[0]) * pow(c->factors[1], w->w[1]) *
		pow(c->factors[2], w->w[2]) * pow(c->factors[3], w->w[3]);
}

/* Does real-time constraint k cover the offer on the request's channel?  Its cost, or 0. */
static double
rt_cost(const KRequest *req, const KArbRtConstraint *k, int offer)
{
	if (k->channel_id != NULL && (req->channel_id == NULL || strcmp(k->channel_id, req->channel_id) != 0))
		return 0;
	return k->cost[offer];
}

/* Subtract the dual prices; see hooks.h. */
void
karb_price(KRequest *req, const KDecideArgs *args, KCandidate *cands, int n)
{
	KArbRequest *ar = req->arb;
	KArbConfig *ac;

	if (ar == NULL || !ar->priced)
		return;
	ac = ar->ac;
	for (int i = 0; i < n; i++)
	{
		KCandidate *c = &cands[i];
		double		price = 0;
		int			top = -1;
		double		top_price = 0;

		if (c->dropped_stage)
			continue;
		for (int k = 0; k < ac->ncons; k++)
		{
			double		a;

			if (!ac->cons[k].priced || !(ac->lambda[k] > 0))
				continue;
			a = rt_cost(req, &ac->cons[k], c->offer);
			if (!(a > 0))
				continue;
			price += ac->lambda[k] * a;
			if (ac->lambda[k] * a > top_price)
			{
				top_price = ac->lambda[k] * a;
				top = k;
			}
		}
		if (price <= 0)
			continue;
		/* a price or value out of range: an ordinary candidate is not worth it, a mandatory one is an error */
		if (!isfinite(price) || !isfinite(c->score - price))
		{
			if (c->mandatory)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("the arbitrated value of mandatory offer \"%s\" is out of range: score %g less dual price %g "
								"(largest: constraint \"%s\", lambda %g, cost %g)",
								req->cfg->offers[c->offer].id, c->score, price, ac->cons[top].name, ac->lambda[top],
								rt_cost(req, &ac->cons[top], c->offer)),
						 errhint("Lower the offer's cost for that constraint (the offer column or custom field its "
								 "costField names) to a realistic amount, or turn real-time arbitration off "
								 "(tenant_settings.realtime_arbitration_enabled).")));
			c->dropped_stage = "arbitration";
			c->drop = KDROP_DUAL_PRICE;
			c->dropped_reason = psprintf("value %.6g less its dual price %.6g is out of range (largest: constraint \"%s\", lambda %.6g, cost %.6g)",
										 c->score, price, ac->cons[top].name, ac->lambda[top],
										 rt_cost(req, &ac->cons[top], c->offer));
			continue;
		}
		c->price = price;
		c->score -= price;
		if (c->score <= 0 && !c->mandatory)
		{
			c->dropped_stage = "arbitration";
			c->drop = KDROP_DUAL_PRICE;
			c->dropped_reason = psprintf("value %.6g is not above its dual price %.6g (largest: constraint \"%s\", lambda %.6g)",
										 c->score + price, price, ac->cons[top].name, ac->lambda[top]);
		}
	}
}

/* The per-response caps; see hooks.h. */
bool
karb_admit(KRequest *req, KCandidate *c)
{
	KArbRequest *ar = req->arb;
	KArbConfig *ac;

	if (ar == NULL || ar->batch || !ar->ac->any_per_response)
		return true;
	ac = ar->ac;
	if (!c->mandatory)
		for (int k = 0; k < ac->ncons; k++)
		{
			double		a = ac->cons[k].per_response > 0 ? rt_cost(req, &ac->cons[k], c->offer) : 0;

			if (a > 0 && ar->resp_used[k] + a > ac->cons[k].per_response * (1 + 1e-12))
			{
				c->dropped_stage = "arbitration";
				c->drop = KDROP_RESPONSE_CAP;
				c->dropped_reason = psprintf("per-response cap of constraint \"%s\" reached: %g of %g",
											 ac->cons[k].name, ar->resp_used[k], ac->cons[k].per_response);
				return false;
			}
		}
	return true;
}

/* Record the decision's arbitration facts and explain them; see hooks.h. */
void
karb_decision(KRequest *req, KDecision *d)
{
	KArbRequest *ar = req->arb;
	json_t	   *e;

	d->arm = -1;
	d->selection_probability = 0;
	d->profile_id = NULL;
	if (ar == NULL)
		return;
	d->arm = ar->arm;
	d->selection_probability = ar->arm >= 0 ? ar->arm_probability : 0;
	d->profile_id = ar->profile >= 0 ? ar->ac->profiles[ar->profile].id : NULL;
	/* the decision counts against the per-response caps (karb_admit checked them) */
	if (!ar->batch)
		for (int k = 0; k < ar->ac->ncons; k++)
			if (ar->ac->cons[k].per_response > 0)
				ar->resp_used[k] += rt_cost(req, &ar->ac->cons[k], d->cand->offer);
	if (d->explanation == NULL || (ar->profile < 0 && !ar->priced))
		return;
	e = json_object();
	if (ar->profile >= 0)
	{
		json_object_set_new(e, "profile", json_string(ar->ac->profiles[ar->profile].key));
		json_object_set_new(e, "weights", json_pack("{s:f,s:f,s:f,s:f}", "P", ar->weights.w[0],
													"R", ar->weights.w[1], "I", ar->weights.w[2],
													"E", ar->weights.w[3]));
		if (ar->weights.revenue_share < 1)
			json_object_set_new(e, "impactRevenueShare", json_real(ar->weights.revenue_share));
	}
	if (ar->arm >= 0)
	{
		json_object_set_new(e, "policy", json_string("exp3ix"));
		json_object_set_new(e, "arm", json_integer(ar->arm));
		json_object_set_new(e, "selectionProbability", json_real(ar->arm_probability));
	}
	if (ar->priced)
	{
		json_object_set_new(e, "lambdaVersion", ar->ac->has_version ? json_integer(ar->ac->lambda_version) : json_null());
		json_object_set_new(e, "price", json_real(d->cand->price));
		json_object_set_new(e, "valueBeforePrices", json_real(d->cand->score + d->cand->price));
	}
	json_object_set_new(d->explanation, "arbitration", e);
}

/* The dual prices' version the request used; see hooks.h. */
bool
karb_lambda_version(const KRequest *req, int64 *version)
{
	const KArbRequest *ar = req->arb;

	if (ar == NULL || !ar->priced || !ar->ac->has_version)
		return false;
	*version = ar->ac->lambda_version;
	return true;
}
