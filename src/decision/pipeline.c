/*
 * pipeline.c
 *	  The recommend pipeline (spec section 4): flow resolution, candidates,
 *	  customer state, qualification, guardrails, consent, suppressions,
 *	  contact policies, caps, scoring, ranking and selection.
 *
 * kaireon_decide runs inside its own SPI connection with every allocation of
 * its own in the caller's per-call memory context.  Configuration comes from
 * the per-backend cache (config/cache.c); the customer's state is read with
 * at most three prepared queries (customer.c); everything per candidate is
 * computation over those (rules.c, policies.c).
 *
 * Exactness under concurrency.  A recording decision first locks the
 * customer's row of kaireon.decision_locks until commit (identity.c, on the
 * canonical customer of the identifier given): two sessions deciding
 * for one customer run one after the other, and the second reads the history
 * the first wrote (or, under REPEATABLE READ, fails with a serialization
 * error), so per-customer caps never overshoot.  Volume
 * constraints and budgets are taken one unit at a time by a conditional
 * UPDATE when a candidate is selected (caps.c); the row lock serialises
 * racers and a rollback gives the unit back.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "access/xact.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "util/ids.h"
#include "util/spi.h"
#include "arbitration/hooks.h"
#include "decision/decision.h"
#include "scoring/scoring.h"
#include "security/session.h"

/* Mandatory offers placed first per customer per day (spec section 4, step 10). */
#define KAIREON_MANDATORY_PER_DAY 5

/*
 * The weighted creative choice's draw: a uniform number in [0, 1) fixed by two
 * strings, the first (the recommendation id) hashed once per placement
 * (draw_seed), the second per offer.
 */
static uint64
draw_seed(const char *a)
{
	return hash_bytes_extended((const unsigned char *) a, strlen(a), 0x6b6169);
}

/* The draw of draw_seed's string and b. */
static double
stable_uniform(uint64 seed, const char *b)
{
	uint64		h = hash_bytes_extended((const unsigned char *) b, strlen(b), seed);

	return (double) (h >> 11) / (double) (UINT64CONST(1) << 53);
}

/* ---- flow resolution (step 1) ---- */

/* Is a flow usable: published with a published version? */
static void
check_runnable(const KTenantConfig *cfg, int flow, const char *how)
{
	if (!cfg->flows[flow].runnable)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("decision flow \"%s\" (%s) is not published", cfg->flows[flow].key, how),
				 errhint("Publish it with kaireon.publish_decision_flow.")));
}

/*
 * The flow for a request: the explicit key, else the highest-priority route
 * of the channel and placement (a route without placement serves every
 * placement of its channel), else the tenant's default flow.
 */
static int
resolve_flow(const KTenantConfig *cfg, const char *flow_key, const char *channel_id, const char *placement_id)
{
	int			f;

	if (flow_key != NULL)
	{
		f = kaireon_find_flow(cfg, flow_key);
		if (f < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("decision flow \"%s\" does not exist for tenant \"%s\"", flow_key, cfg->tenant_id),
					 errhint("Pass the key of a kaireon.decision_flows row, or omit it to use the routes.")));
		check_runnable(cfg, f, "named by the request");
		return f;
	}
	for (int i = 0; i < cfg->nroutes; i++)
	{
		const KRoute *r = &cfg->routes[i];

		if (r->flow < 0 || strcmp(r->channel_id, channel_id) != 0)
			continue;
		if (r->placement_id != NULL && (placement_id == NULL || strcmp(r->placement_id, placement_id) != 0))
			continue;
		if (cfg->flows[r->flow].runnable)
			return r->flow;
	}
	if (cfg->default_flow >= 0)
	{
		check_runnable(cfg, cfg->default_flow, "the tenant's default");
		return cfg->default_flow;
	}
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("no decision flow serves channel \"%s\"%s%s for tenant \"%s\"", channel_id,
					placement_id ? " placement " : "", placement_id ? placement_id : "", cfg->tenant_id),
			 errhint("Add a flow route, mark a published flow as default, or name a flow in the request.")));
	return -1;
}

/* ---- candidates (step 2) ---- */

/* Is the offer within its schedule now (start, end, weekdays, hours, in its time zone)? */
static bool
in_schedule(const KOffer *o, TimestampTz now)
{
	if (o->has_start && now < o->start)
		return false;
	if (o->has_end && now >= o->end)
		return false;
	if (o->days_mask != 0 || o->hour_start >= 0)
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int			tzoff;
		pg_tz	   *tz = o->timezone ? pg_tzset(o->timezone) : NULL;
		int			dow;

		if (tz != NULL)
			timestamp2tm(now, &tzoff, &tm, &fsec, NULL, tz);
		else
			timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL);
		dow = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));
		if (o->days_mask != 0 && !(o->days_mask & (1 << dow)))
			return false;
		if (o->hour_start >= 0 && o->hour_end >= 0)
		{
			bool		inside = o->hour_start < o->hour_end ?
				(tm.tm_hour >= o->hour_start && tm.tm_hour < o->hour_end) :
				(tm.tm_hour >= o->hour_start || tm.tm_hour < o->hour_end);

			if (!inside)
				return false;
		}
	}
	return true;
}

/* Is the offer in the flow's inventory (any listed category, sub-category or offer; all when none)? */
static bool
in_inventory(const KFlow *f, const KOffer *o)
{
	if (f->inv_categories == NULL && f->inv_sub_categories == NULL && f->inv_offers == NULL)
		return true;
	return kj_array_has_string(f->inv_categories, o->category_id) ||
		kj_array_has_string(f->inv_sub_categories, o->sub_category_id) ||
		kj_array_has_string(f->inv_offers, o->id);
}

/*
 * Pick the offer's creative for the channel and placement: by the flow's
 * placementMatchMode (strict: the placement's creatives; fallback: those, else
 * the channel's creatives without placement; any: every creative of the
 * channel), then by weight, with a draw fixed by the recommendation id (seed:
 * draw_seed of it).  placement: the requested placement's index, -1 for none.
 */
static int
pick_creative(const KRequest *req, const KFlow *flow, const KOffer *o, int placement,
			  json_t *exclude, uint64 seed)
{
	int			pool[64];
	int			npool = 0;
	double		total = 0,
				u,
				acc = 0;

	for (int pass = 0; pass < 2 && npool == 0; pass++)
	{
		for (int i = 0; i < o->ncreatives && npool < (int) lengthof(pool); i++)
		{
			const KCreative *c = &req->cfg->creatives[o->creatives[i]];
			bool		ok;

			if (c->channel != req->channel || (exclude != NULL && kj_array_has_string(exclude, c->id)))
				continue;
			if (placement < 0 || flow->placement_match == KPM_ANY)
				ok = true;
			else if (pass == 0)
				ok = c->placement == placement;
			else
				ok = flow->placement_match == KPM_FALLBACK && c->placement == -1;
			if (ok)
			{
				pool[npool++] = o->creatives[i];
				total += req->cfg->creatives[o->creatives[i]].weight;
			}
		}
	}
	if (npool == 0)
		return -1;
	if (npool == 1 || total <= 0)
		return pool[0];
	u = stable_uniform(seed, o->id) * total;
	for (int i = 0; i < npool; i++)
	{
		acc += req->cfg->creatives[pool[i]].weight;
		if (u < acc)
			return pool[i];
	}
	return pool[npool - 1];
}

/* ---- scoring (step 9) ---- */

/* Clamp a PRIE factor into (0, 1]. */
static double
factor(double x)
{
	if (!(x > 1e-6))
		return 1e-6;
	return x > 1 ? 1 : x;
}

/*
 * Score the remaining candidates by the flow's method, times the match
 * multiplier.  The factors are kept as numbers (factors[]: priority, weight,
 * match for priority_weighted; propensity, match for propensity; P, R, I, E
 * for formula) and turned into JSON only for the decisions returned.
 */
static void
score_candidates(KRequest *req, const KFlow *flow, KCandidate *cands, int n)
{
	double		max_value = 0,
				max_margin = 0;

	/* a model over offer features scores all the candidates at once (model_scores.c) */
	if (flow->method != KSCORE_PRIORITY_WEIGHTED)
		kaireon_batch_model_scores(req, flow, cands, n);
	for (int i = 0; i < n; i++)
		if (!cands[i].dropped_stage)
		{
			max_value = Max(max_value, req->cfg->offers[cands[i].offer].value);
			max_margin = Max(max_margin, req->cfg->offers[cands[i].offer].margin);
		}

	for (int i = 0; i < n; i++)
	{
		KCandidate *c = &cands[i];
		const KOffer *o = &req->cfg->offers[c->offer];

		if (c->dropped_stage)
			continue;
		switch (flow->method)
		{
			case KSCORE_PRIORITY_WEIGHTED:
				c->factors[0] = o->priority / 100.0;
				c->factors[1] = o->weight / 100.0;
				c->factors[2] = c->match;
				c->score = c->factors[0] * c->factors[1] * c->factors[2];
				break;
			case KSCORE_PROPENSITY:
				c->factors[0] = kaireon_propensity(req, c);
				c->factors[1] = c->match;
				c->score = c->factors[0] * c->factors[1];
				break;
			case KSCORE_FORMULA:
				/* R, I, E and the weights (profile, EXP3-IX arm): arbitration/realtime.c */
				c->factors[0] = factor(kaireon_propensity(req, c));
				c->score = karb_prie(req, flow, c, max_value, max_margin);
				break;
		}
	}
}

/* Ranking order: mandatory first, then score, priority, offer id. */
static int
rank_cmp(const void *a, const void *b, void *arg)
{
	const KCandidate *x = *(KCandidate *const *) a;
	const KCandidate *y = *(KCandidate *const *) b;
	const KTenantConfig *cfg = (const KTenantConfig *) arg;

	if (x->mandatory != y->mandatory)
		return x->mandatory ? -1 : 1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (cfg->offers[x->offer].priority != cfg->offers[y->offer].priority)
		return cfg->offers[x->offer].priority > cfg->offers[y->offer].priority ? -1 : 1;
	return strcmp(cfg->offers[x->offer].id, cfg->offers[y->offer].id);
}

/* ---- one placement ---- */

/* Count of mandatory offers served to the customer today (UTC). */
static int
mandatory_served_today(const KRequest *req)
{
	TimestampTz day = req->day_start;
	int			n = 0;

	for (int i = 0; i < req->cust->nevents; i++)
		if (req->cust->events[i].type == KEV_RECOMMENDATION && req->cust->events[i].mandatory &&
			req->cust->events[i].at >= day)
			n++;
	return n;
}

/* Steps 4 to 8 for one candidate: qualification, guardrails, consent, suppressions, policies, caps. */
static void
screen_candidate(KRequest *req, KCandidate *c)
{
	kaireon_qualify(req, c);
	if (!c->dropped_stage)
		kaireon_apply_guardrails(req, c);
	if (!c->dropped_stage)
		kaireon_apply_policies(req, c);
	if (!c->dropped_stage)
		kaireon_apply_caps(req, c);
}

/*
 * Keep the mandatory standing of the best-scored mandatory candidates within
 * the allowance; screen the others again as ordinary candidates.  True when
 * any was demoted (their scores must be recomputed).
 */
static bool
demote_mandatory(KRequest *req, KCandidate *cands, int n, int allowance)
{
	KCandidate **m = palloc(sizeof(KCandidate *) * Max(n, 1));
	int			nm = 0;

	for (int i = 0; i < n; i++)
		if (cands[i].mandatory && !cands[i].dropped_stage)
			m[nm++] = &cands[i];
	if (nm <= Max(allowance, 0))
		return false;
	qsort_arg(m, nm, sizeof(KCandidate *), rank_cmp, req->cfg);	/* all mandatory: by score */
	for (int k = Max(allowance, 0); k < nm; k++)
	{
		KCandidate *c = m[k];

		c->mandatory = false;
		c->match = 1.0;
		c->npassed = 0;
		c->warnings = NULL;
		screen_candidate(req, c);
	}
	return true;
}

/* Append a dropped candidate to the result (for debug output). */
static void
note_dropped(KDecideResult *res, KCandidate *c, const char *placement)
{
	res->dropped = repalloc(res->dropped, sizeof(KCandidate *) * (res->ndropped + 1));
	res->dropped_placement = repalloc(res->dropped_placement, sizeof(char *) * (res->ndropped + 1));
	res->dropped[res->ndropped] = c;
	res->dropped_placement[res->ndropped] = placement;
	res->ndropped++;
}

/* Bring the best-ranked of ranked[i..n) to position i (rank_cmp's order: a selection step). */
static void
select_next(KCandidate **ranked, int i, int n, KTenantConfig *cfg)
{
	int			best = i;

	for (int j = i + 1; j < n; j++)
		if (rank_cmp(&ranked[j], &ranked[best], cfg) < 0)
			best = j;
	if (best != i)
	{
		KCandidate *t = ranked[i];

		ranked[i] = ranked[best];
		ranked[best] = t;
	}
}

/*
 * Is the customer in a control group of this placement's decision: the
 * tenant's universal group, else the flow's (docs/lift.md)?  Appends the
 * placement to res->controls and returns true when so.
 */
static bool
in_control_group(KDecideResult *res, KDecideArgs *args, const char *placement_id, int flow_idx)
{
	const KTenantConfig *cfg = res->req->cfg;
	const KFlow *flow = &cfg->flows[flow_idx];
	const char *scope = NULL;
	double		percent = 0;
	KControl   *c;

	if (cfg->control_percent > 0 &&
		kaireon_control_bucket(cfg->tenant_id, "", args->customer_id) < cfg->control_percent)
		scope = "tenant", percent = cfg->control_percent;
	else if (flow->control_percent > 0 &&
			 kaireon_control_bucket(cfg->tenant_id, psprintf("flow:%s", flow->key), args->customer_id) <
			 flow->control_percent)
		scope = "flow", percent = flow->control_percent;
	if (scope == NULL)
		return false;
	res->controls = repalloc(res->controls, sizeof(KControl) * (res->ncontrols + 1));
	c = &res->controls[res->ncontrols++];
	c->placement_id = placement_id;
	c->flow = flow_idx;
	c->scope = scope;
	c->percent = percent;
	c->interaction_id = args->dry_run ? NULL : kaireon_new_uuid();
	json_array_append_new(res->funnels, json_pack("{s:s?,s:s,s:s}", "placement", placement_id,
												  "flow", flow->key, "controlGroup", scope));
	return true;
}

/* Is the customer in the offer's holdout group (docs/lift.md)? */
static bool
in_offer_holdout(const KTenantConfig *cfg, const KOffer *o, const char *customer_id)
{
	return o->holdout_percent > 0 &&
		kaireon_control_bucket(cfg->tenant_id, psprintf("offer:%s", o->id), customer_id) < o->holdout_percent;
}

/*
 * Run steps 2 to 10 for one placement; append its decisions to the result.
 * limit: the request's limit for this placement (0: max_offers, else the
 * flow's); a placement never gets more decisions than its max_slots.
 */
static void
decide_placement(KDecideResult *res, KDecideArgs *args, const char *placement_id, int flow_idx,
				 json_t *taken, int mandatory_left, int limit)
{
	KRequest   *req = res->req;
	KTenantConfig *cfg = req->cfg;
	const KFlow *flow = &cfg->flows[flow_idx];
	KCandidate *cands = palloc(sizeof(KCandidate) * Max(cfg->noffers, 1));	/* each zeroed when used */
	KCandidate **ranked;
	int			n = 0,
				nranked = 0,
				selected = 0,
				max_offers = limit > 0 ? limit : args->max_offers > 0 ? args->max_offers : flow->max_offers;
	int			counts[6] = {0};	/* candidates, qualified, unsuppressed, policy, caps, final */
	static const char *const stage_names[] = {
		"candidates", "afterQualification", "afterSuppression", "afterContactPolicy", "afterCaps", "final"
	};
	json_t	   *funnel;
	uint64		seed = draw_seed(res->recommendation_id);
	int			placement = placement_id ? kaireon_find_placement(cfg, placement_id) : -1;

	req->placement_id = placement_id;
	req->flow = flow_idx;
	/* a customer in a control group gets nothing here (and no experiment variant) */
	if (in_control_group(res, args, placement_id, flow_idx))
		return;
	kaireon_request_model(req, flow, args->customer_id, args->dry_run);
	karb_placement(req, flow, args, res->recommendation_id);
	max_offers = Max(1, Min(max_offers, 50));
	if (placement >= 0)
		max_offers = Min(max_offers, cfg->placements[placement].max_slots);

	/* step 2: candidates */
	for (int i = 0; i < cfg->noffers; i++)
	{
		const KOffer *o = &cfg->offers[i];
		KCandidate *c = &cands[n];
		const char *why = NULL;
		KDropReason drop = KDROP_SCHEDULE;

		CHECK_FOR_INTERRUPTS();
		if (!o->active)
			continue;			/* not a candidate at all: drafts, paused and archived offers */
		memset(c, 0, sizeof(KCandidate));
		c->offer = i;
		c->creative = -1;
		c->match = 1.0;
		c->propensity = -1;
		res->stat.candidates++;
		if (!in_schedule(o, req->now))
			why = "outside its schedule";
		else if (!in_inventory(flow, o))
			why = "not in the flow's inventory", drop = KDROP_INVENTORY;
		else if (kj_array_has_string(flow->inv_exclude, o->id) || kj_array_has_string(args->exclude_offers, o->id))
			why = "excluded", drop = KDROP_EXCLUDED;
		else if (in_offer_holdout(cfg, o, args->customer_id))
			why = psprintf("in the offer's holdout group (%g%%)", o->holdout_percent), drop = KDROP_HOLDOUT;
		else if (taken != NULL && json_object_get(taken, o->id) != NULL)
			why = "already placed (deduplicate)", drop = KDROP_DEDUPLICATE;
		else if ((c->creative = pick_creative(req, flow, o, placement, args->exclude_creatives, seed)) < 0)
			why = "no creative for the channel and placement", drop = KDROP_NO_CREATIVE;
		if (why != NULL)
		{
			res->stat.drops[drop]++;
			if (args->debug || res->traced)
			{
				KCandidate *d = palloc(sizeof(KCandidate));

				*d = *c;
				d->dropped_stage = "candidates";
				d->drop = drop;
				d->dropped_reason = pstrdup(why);
				note_dropped(res, d, placement_id);
			}
			continue;
		}
		c->mandatory = o->mandatory && mandatory_left > 0;
		n++;
	}
	counts[0] = n;

	/* steps 4 to 8, in order, for every candidate */
	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		screen_candidate(req, &cands[i]);
	}
	score_candidates(req, flow, cands, n);

	/*
	 * The daily allowance of mandatory offers: only the best-scored ones within
	 * it keep their standing; the others become ordinary candidates and go
	 * through the steps a mandatory offer skips.
	 */
	if (demote_mandatory(req, cands, n, mandatory_left))
		score_candidates(req, flow, cands, n);

	/* the funnel, from the stage each candidate was dropped at */
	for (int i = 0; i < n; i++)
	{
		const char *st = cands[i].dropped_stage;

		if (st == NULL || (strcmp(st, "eligibility") != 0 && strcmp(st, "fit") != 0 &&
						   strcmp(st, "guardrail") != 0))
			counts[1]++;
		if (st == NULL || strcmp(st, "contact_policy") == 0 || strcmp(st, "volume_constraint") == 0 ||
			strcmp(st, "budget") == 0)
			counts[2]++;
		if (st == NULL || strcmp(st, "volume_constraint") == 0 || strcmp(st, "budget") == 0)
			counts[3]++;
		if (st == NULL)
			counts[4]++;
	}

	/* step 10: arbitration (real-time dual prices: arbitration/realtime.c), then rank */
	karb_price(req, args, cands, n);
	ranked = palloc(sizeof(KCandidate *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (cands[i].dropped_stage)
		{
			if (args->debug || res->traced)
				note_dropped(res, &cands[i], placement_id);
			continue;
		}
		ranked[nranked++] = &cands[i];
	}
	if (args->batch)
	{
		qsort_arg(ranked, nranked, sizeof(KCandidate *), rank_cmp, cfg);
		max_offers = nranked;	/* a campaign arbitrates among all of them */
	}

	/*
	 * select: mandatory within the daily allowance first, then by score, taking
	 * cap units.  A decision needs only its first few candidates in rank order,
	 * so each is selected from the rest (O(n) a step) rather than sorting all.
	 */
	for (int i = 0; i < nranked && selected < max_offers; i++)
	{
		KCandidate *c;
		KDecision  *d;

		if (!args->batch)
			select_next(ranked, i, nranked, cfg);
		c = ranked[i];

		if (!karb_admit(req, c))
		{
			/* a per-response cap of a cross-offer constraint is reached */
			if (args->debug || res->traced)
				note_dropped(res, c, placement_id);
			continue;
		}
		if (!args->dry_run && !kaireon_reserve_caps(req, c))
		{
			c->dropped_stage = "cap";
			c->drop = KDROP_CAP;
			c->dropped_reason = pstrdup("a volume constraint or budget covering it had no unit left when the decision was recorded");
			if (args->debug || res->traced)
				note_dropped(res, c, placement_id);
			continue;
		}
		res->decisions = repalloc(res->decisions, sizeof(KDecision) * (res->ndecisions + 1));
		d = &res->decisions[res->ndecisions++];
		memset(d, 0, sizeof(KDecision));
		d->cand = c;
		d->rank = ++selected;
		d->placement_id = placement_id;
		d->flow = flow_idx;
		d->interaction_id = args->dry_run ? NULL : kaireon_new_uuid();
		d->model = req->model;
		d->model_key = req->model_key;
		d->variant = req->variant;
		d->explanation = args->batch ? NULL : json_object();
		if (d->explanation != NULL && req->degraded != NULL)
			json_object_set(d->explanation, "degradedScoring", req->degraded);
		karb_decision(req, d);
		if (taken != NULL)
			json_object_set_new(taken, cfg->offers[c->offer].id, json_true());
	}
	counts[5] = selected;

	/* the statistics: every screened candidate that did not make it, by why */
	for (int i = 0; i < n; i++)
		if (cands[i].dropped_stage)
		{
			res->stat.drops[cands[i].drop]++;
			if (cands[i].drop == KDROP_VOLUME || cands[i].drop == KDROP_BUDGET || cands[i].drop == KDROP_CAP)
				res->stat.cap_refusals++;
		}

	funnel = json_object();
	json_object_set_new(funnel, "placement", placement_id ? json_string(placement_id) : json_null());
	json_object_set_new(funnel, "flow", json_string(flow->key));
	for (int i = 0; i < 6; i++)
		json_object_set_new(funnel, stage_names[i], json_integer(counts[i]));
	json_array_append_new(res->funnels, funnel);
}

/* The request object guardrails see as request.* (channel, placement, time, context). */
static json_t *
request_object(const KRequest *req, json_t *context)
{
	struct pg_tm tm;
	fsec_t		fsec;
	json_t	   *r = json_deep_copy(context);

	timestamp2tm(req->now, NULL, &tm, &fsec, NULL, NULL);
	json_object_set_new(r, "channel", json_string(req->channel_id));
	if (req->channel >= 0)
		json_object_set_new(r, "channel_type", json_string(req->cfg->channels[req->channel].channel_type));
	json_object_set_new(r, "hour", json_integer(tm.tm_hour));
	json_object_set_new(r, "weekday", json_integer(j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday))));
	return r;
}

/*
 * The whole pipeline for one request, across its placements, and, unless
 * dry_run, the recording of step 11, for a tenant the caller may act for.
 * Raises with a specific SQLSTATE on bad input before anything is written.
 */
static KDecideResult *
decide(KDecideArgs *args)
{
	MemoryContext mcxt = CurrentMemoryContext;
	KDecideResult *res = palloc0(sizeof(KDecideResult));
	KRequest   *req = palloc0(sizeof(KRequest));
	KTenantConfig *cfg;
	int			nplacements = json_array_size(args->placements);
	int		   *flows = palloc(sizeof(int) * Max(nplacements, 1));
	json_t	   *taken = NULL;
	int			mandatory_left;
	TimestampTz started = GetCurrentTimestamp();
	double		sample;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	MemoryContextSwitchTo(mcxt);

	cfg = kaireon_config_get(args->tenant_id);
	/* the canonical customer of the identifier given, before anything reads it (identity.c) */
	kaireon_decide_identity(cfg, args);
	req->cfg = cfg;
	req->now = GetCurrentTransactionStartTimestamp();
	req->day_start = kaireon_period_start("day", req->now);
	req->week_start = kaireon_period_start("week", req->now);
	req->month_start = kaireon_period_start("month", req->now);
	req->channel_id = args->channel_id;
	req->channel = kaireon_find_channel(cfg, args->channel_id);
	args->channel_known = req->channel >= 0;
	if (req->channel < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("channel \"%s\" does not exist for tenant \"%s\"", args->channel_id, cfg->tenant_id),
				 errhint("Pass the id of a kaireon.channels row of the tenant.")));
	if (!cfg->channels[req->channel].active)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("channel \"%s\" is inactive", args->channel_id),
				 errhint("Set its status to active to decide for it.")));
	for (int i = 0; i < nplacements; i++)
	{
		const char *pid = json_string_value(json_array_get(args->placements, i));
		int			p = kaireon_find_placement(cfg, pid);

		if (p < 0 || strcmp(cfg->placements[p].channel_id, args->channel_id) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("placement \"%s\" does not exist in channel \"%s\" of tenant \"%s\"",
							pid, args->channel_id, cfg->tenant_id),
					 errhint("Pass the id of a kaireon.placements row of that channel.")));
		if (!cfg->placements[p].active)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("placement \"%s\" is inactive", pid),
					 errhint("Set its status to active to decide for it.")));
		flows[i] = resolve_flow(cfg, args->flow_key, args->channel_id, pid);
	}
	if (nplacements == 0)
		flows[0] = resolve_flow(cfg, args->flow_key, args->channel_id, NULL);

	res->req = req;
	res->recommendation_id = kaireon_new_uuid();
	res->decisions = palloc(sizeof(KDecision));
	res->dropped = palloc(sizeof(KCandidate *));
	res->dropped_placement = palloc(sizeof(char *));
	res->controls = palloc(sizeof(KControl));
	res->funnels = json_array();

	/* whether this decision is traced is drawn first: a traced one keeps its dropped candidates */
	if (!args->dry_run)
	{
		sample = pg_prng_double(&pg_global_prng_state);
		res->traced = args->force_trace || sample < cfg->trace_sample_rate;
		kaireon_lock_customer(cfg->tenant_id, args);	/* on the canonical customer (identity.c) */
	}
	req->keep_reasons = args->debug || res->traced;
	req->cust = kaireon_load_customer(req, args->customer_id, args->context,
									  cfg->flows[flows[0]].customer_schema);
	req->request = request_object(req, req->cust->context);
	req->rule_memo = palloc0(sizeof(int8) * Max(cfg->nrules, 1));
	req->rule_memo_why = palloc0(sizeof(char *) * Max(cfg->nrules, 1));
	req->policy_memo = palloc0(sizeof(int8) * Max(cfg->npolicies, 1));
	req->policy_memo_why = palloc0(sizeof(char *) * Max(cfg->npolicies, 1));
	mandatory_left = KAIREON_MANDATORY_PER_DAY - mandatory_served_today(req);
	if (args->deduplicate)
		taken = json_object();

	if (nplacements == 0)
		decide_placement(res, args, NULL, flows[0], taken, mandatory_left, 0);
	for (int i = 0; i < nplacements; i++)
	{
		int			before = res->ndecisions;

		decide_placement(res, args, json_string_value(json_array_get(args->placements, i)), flows[i],
						 taken, mandatory_left, args->placement_limits ? args->placement_limits[i] : 0);
		for (int k = before; k < res->ndecisions; k++)
			if (res->decisions[k].cand->mandatory)
				mandatory_left--;
	}

	if (!args->dry_run)
	{
		kaireon_record_decisions(res, args);
		kaireon_record_controls(res, args);
		kaireon_log_shadow_scores(res, args->customer_id);
		if (res->traced)
			kaireon_record_trace(res, args, (double) (GetCurrentTimestamp() - started) / 1000.0);
	}

	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "kaireon: SPI_finish failed");
	MemoryContextSwitchTo(mcxt);
	return res;
}

/*
 * Decide (decide() above), counted by the statistics (stats/stats.h) unless
 * it is a campaign's: the decision, its drops and latency, or its error.  A
 * tenant the caller may not act for is refused first, and not counted (its
 * id is the caller's to make up).
 */
KDecideResult *
kaireon_decide(KDecideArgs *args)
{
	KDecideResult *res;
	instr_time	start,
				elapsed;

	kaireon_check_tenant_access(args->tenant_id);
	if (args->batch)
		return decide(args);
	INSTR_TIME_SET_CURRENT(start);
	PG_TRY();
	{
		res = decide(args);
	}
	PG_CATCH();
	{
		/* under its channel once the configuration knows it: made-up ids must not fill the table */
		kaireon_stat_error(args->tenant_id, args->channel_known ? args->channel_id : NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	kaireon_stat_decision(args->tenant_id, args->channel_id, args->dry_run, &res->stat,
						  (int64) INSTR_TIME_GET_MICROSEC(elapsed));
	return res;
}
