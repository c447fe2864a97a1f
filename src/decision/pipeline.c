/*
 * pipeline.c
 *	  One placement's decision (spec section 4, steps 2 to 10): its flow's
 *	  compiled graph walked node by node (run_graph) with the handlers of the
 *	  nodes the fixed pipeline has steps for: candidates, creatives,
 *	  qualification, guardrails, consent, suppressions, contact policies,
 *	  caps, scoring, ranking and selection (the rank order and the selection
 *	  steps: ranking.c; the other nodes: graph.c).  The request around it
 *	  (flow resolution, the customer's state, recording) is decide.c's, which
 *	  calls kaireon_decide_placement once per placement.
 *
 * Runs inside decide.c's SPI connection and memory context.  Everything per
 * candidate is computation over the compiled configuration and the state
 * read once per request (rules.c, policies.c); volume constraints and
 * budgets are taken by caps.c when a candidate is selected.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "util/ids.h"
#include "arbitration/assign.h"
#include "arbitration/hooks.h"
#include "decision/decision.h"
#include "scoring/scoring.h"

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

/* Is the offer in an inventory node's inventory (any listed category, sub-category or offer; all when none)? */
static bool
in_inventory(const KNode *f, const KOffer *o)
{
	if (f->inv_categories == NULL && f->inv_sub_categories == NULL && f->inv_offers == NULL)
		return true;
	return kj_array_has_string(f->inv_categories, o->category_id) ||
		kj_array_has_string(f->inv_sub_categories, o->sub_category_id) ||
		kj_array_has_string(f->inv_offers, o->id);
}

/* ---- one placement ---- */

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

/*
 * Is the customer in a control group of this placement's decision: the
 * tenant's universal group, else the flow's (docs/lift.md)?  Appends the
 * placement to res->controls and returns true when so; the flow's control
 * answer (controlAnswer: offer ids) is what the placement then shows, each
 * offer active with a creative for the channel and placement, at most
 * max_slots of them.
 */
static bool
in_control_group(KDecideResult *res, KDecideArgs *args, const char *placement_id, int flow_idx)
{
	const KTenantConfig *cfg = res->req->cfg;
	const KFlow *flow = &cfg->flows[flow_idx];
	const char *scope = NULL;
	double		percent = 0;
	KControl   *c;
	int			placement = placement_id ? kaireon_find_placement(cfg, placement_id) : -1;
	int			slots = placement >= 0 ? cfg->placements[placement].max_slots : INT_MAX;
	size_t		i;
	json_t	   *id;

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
	c->nanswer = 0;
	c->answer_offers = palloc(sizeof(int) * Max(json_array_size(flow->control_answer), 1));
	c->answer_creatives = palloc(sizeof(int) * Max(json_array_size(flow->control_answer), 1));
	c->answer_ids = palloc0(sizeof(char *) * Max(json_array_size(flow->control_answer), 1));
	json_array_foreach(flow->control_answer, i, id)
	{
		int			o = kaireon_find_offer(cfg, json_string_value(id));
		int			cr;

		if (c->nanswer >= slots || o < 0 || !cfg->offers[o].active ||
			(cr = kaireon_pick_creative(res->req, flow->placement_match, &cfg->offers[o], placement, args->exclude_creatives,
								kaireon_draw_seed(res->recommendation_id))) < 0)
			continue;
		c->answer_offers[c->nanswer] = o;
		c->answer_creatives[c->nanswer] = cr;
		c->answer_ids[c->nanswer] = args->dry_run ? NULL : kaireon_new_uuid();
		c->nanswer++;
	}
	c->interaction_id = args->dry_run || c->nanswer > 0 ? NULL : kaireon_new_uuid();
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

/* ---- the flow graph's executor ---- */

/* Most qualify and contact_policy nodes one placement's path runs (demotions run them again). */
#define GRAPH_MAX_SCREENS 64

/* One placement's run through its flow's graph (kaireon_decide_placement). */
typedef struct GraphRun
{
	KDecideResult *res;
	KDecideArgs *args;
	KRequest   *req;
	const char *placement_id;
	int			placement;		/* index, -1: none */
	int			flow_idx;
	json_t	   *taken;
	int			mandatory_left;
	int			limit;
	uint64		seed;
	KCandidate *cands;			/* the candidates (inventory), each zeroed when made */
	int			n;
	bool		built;			/* the first inventory node ran */
	int			counts[6];		/* candidates, qualified, unsuppressed, policy, caps, final */
	bool		counted;		/* the funnel counts of the screening steps are taken */
	KCandidate **ranked;
	int			nranked;		/* -1: not ranked yet */
	const KGraph *graph;		/* the graph being run (a called flow's inside call_flow) */
	const KNode *rank_node;		/* the last rank node passed (its order selects), or NULL */
	const KNode *screens[GRAPH_MAX_SCREENS];	/* qualify and contact_policy nodes run, in order */
	int			nscreens;
	json_t	   *path;			/* version 2: the node ids the request took, in order */
	json_t	   *properties;		/* set_properties: on each decision of the placement */
	const KNode *response;		/* the response (or group) node that answered */
	KPlacementMatch match_mode; /* the creative matching in force (the last match_creatives node's) */
	bool		matched;		/* every remaining candidate has its creative */
	int			selected;		/* decisions made for the placement */
	json_t	   *group_placements;	/* a group node's placements, in its funnel */
} GraphRun;

/* Note a candidate dropped at the candidates stage, as the pipeline always has (debug, traces). */
static void
drop_at_candidates(GraphRun *run, KCandidate *c, KDropReason drop, const char *why)
{
	run->res->stat.drops[drop]++;
	if (run->args->debug || run->res->traced)
	{
		KCandidate *d = palloc(sizeof(KCandidate));

		*d = *c;
		d->dropped_stage = "candidates";
		d->drop = drop;
		d->dropped_reason = pstrdup(why);
		note_dropped(run->res, d, run->placement_id);
	}
}

/*
 * inventory: the candidates, every active offer within its schedule that is in
 * the node's inventory, not excluded, not in its holdout group, not already
 * placed; with the creative picked in the same pass when match_creatives follows
 * (fuse_creatives).  A later inventory node (or a called flow's) narrows the
 * candidates to its inventory.
 */
static void
node_inventory(GraphRun *run, const KNode *node)
{
	KRequest   *req = run->req;
	KTenantConfig *cfg = req->cfg;
	KDecideArgs *args = run->args;

	if (run->built)
	{
		for (int i = 0; i < run->n; i++)
		{
			KCandidate *c = &run->cands[i];
			const KOffer *o = &cfg->offers[c->offer];

			if (c->dropped_stage != NULL)
				continue;
			if (!in_inventory(node, o))
				c->drop = KDROP_INVENTORY, c->dropped_reason = pstrdup("not in the flow's inventory");
			else if (kj_array_has_string(node->inv_exclude, o->id))
				c->drop = KDROP_EXCLUDED, c->dropped_reason = pstrdup("excluded");
			else
				continue;
			c->dropped_stage = "candidates";
		}
		return;
	}
	run->built = true;
	if (node->fuse_creatives)
		run->match_mode = node->placement_match;
	for (int i = 0; i < cfg->noffers; i++)
	{
		const KOffer *o = &cfg->offers[i];
		KCandidate *c = &run->cands[run->n];
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
		run->res->stat.candidates++;
		if (!in_schedule(o, req->now))
			why = "outside its schedule";
		else if (!in_inventory(node, o))
			why = "not in the flow's inventory", drop = KDROP_INVENTORY;
		else if ((node->inv_exclude != NULL && kj_array_has_string(node->inv_exclude, o->id)) ||
				 (args->exclude_offers != NULL && kj_array_has_string(args->exclude_offers, o->id)))
			why = "excluded", drop = KDROP_EXCLUDED;
		else if (in_offer_holdout(cfg, o, args->customer_id))
			why = psprintf("in the offer's holdout group (%g%%)", o->holdout_percent), drop = KDROP_HOLDOUT;
		else if (run->taken != NULL && json_object_get(run->taken, o->id) != NULL)
			why = "already placed (deduplicate)", drop = KDROP_DEDUPLICATE;
		else if (node->fuse_creatives &&
				 (c->creative = kaireon_pick_creative(req, node->placement_match, o, run->placement,
											  args->exclude_creatives, run->seed)) < 0)
			why = "no creative for the channel and placement", drop = KDROP_NO_CREATIVE;
		if (why != NULL)
		{
			drop_at_candidates(run, c, drop, why);
			continue;
		}
		c->mandatory = o->mandatory && run->mandatory_left > 0;
		run->n++;
	}
	run->counts[0] = run->n;
	run->matched = node->fuse_creatives;
}

/* match_creatives: a creative for each remaining candidate that has none yet (mode: the node's); none: dropped. */
static void
node_match_creatives(GraphRun *run, KPlacementMatch mode)
{
	if (run->matched)
		return;
	run->matched = true;
	for (int i = 0; i < run->n; i++)
	{
		KCandidate *c = &run->cands[i];

		if (c->dropped_stage != NULL || c->creative >= 0)
			continue;
		c->creative = kaireon_pick_creative(run->req, mode, &run->req->cfg->offers[c->offer], run->placement,
									run->args->exclude_creatives, run->seed);
		if (c->creative < 0)
		{
			c->dropped_stage = "candidates";
			c->drop = KDROP_NO_CREATIVE;
			c->dropped_reason = pstrdup("no creative for the channel and placement");
		}
	}
}

/* A qualify node (qualification rules, guardrails) or contact_policy node (consent, suppressions, policies, caps) on one candidate. */
static void
screen(GraphRun *run, const KNode *node, KCandidate *c)
{
	if (node->type == KNODE_QUALIFY)
	{
		kaireon_qualify(run->req, c, node->only);
		if (!c->dropped_stage && node->guardrails)
			kaireon_apply_guardrails(run->req, c);
	}
	else
	{
		kaireon_apply_policies(run->req, c, node->only);
		if (!c->dropped_stage && node->caps)
			kaireon_apply_caps(run->req, c);
	}
}

/* A qualify or contact_policy node on every remaining candidate; remembered for demotions. */
static void
node_screen(GraphRun *run, const KNode *node)
{
	if (run->nscreens >= GRAPH_MAX_SCREENS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("decision flow \"%s\" runs more than %d qualify and contact_policy nodes for one placement",
						run->req->cfg->flows[run->flow_idx].key, GRAPH_MAX_SCREENS),
				 errhint("Merge them (docs/flows.md).")));
	run->screens[run->nscreens++] = node;
	for (int i = 0; i < run->n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (!run->cands[i].dropped_stage)
			screen(run, node, &run->cands[i]);
	}
}

/*
 * Keep the mandatory standing of the best-scored mandatory candidates within
 * the allowance; the others go again, as ordinary candidates, through the
 * qualify and contact_policy nodes run so far.  True when any was demoted
 * (their scores must be recomputed).
 */
static bool
demote_mandatory(GraphRun *run, int allowance)
{
	KCandidate *cands = run->cands;
	int			n = run->n;
	KCandidate **m = palloc(sizeof(KCandidate *) * Max(n, 1));
	int			nm = 0;

	for (int i = 0; i < n; i++)
		if (cands[i].mandatory && !cands[i].dropped_stage)
			m[nm++] = &cands[i];
	if (nm <= Max(allowance, 0))
		return false;
	qsort_arg(m, nm, sizeof(KCandidate *), kaireon_rank_cmp, run->req->cfg);	/* all mandatory: by score */
	for (int k = Max(allowance, 0); k < nm; k++)
	{
		KCandidate *c = m[k];

		c->mandatory = false;
		c->match = 1.0;
		c->npassed = 0;
		c->warnings = NULL;
		for (int s = 0; s < run->nscreens && !c->dropped_stage; s++)
			screen(run, run->screens[s], c);
	}
	return true;
}

/* The same model for two score parameter sets (key and experiment)? */
static bool
same_model(const KFlow *a, const KFlow *b)
{
	return (a->model_key == NULL ? b->model_key == NULL : b->model_key != NULL && strcmp(a->model_key, b->model_key) == 0) &&
		(a->experiment_key == NULL ? b->experiment_key == NULL :
		 b->experiment_key != NULL && strcmp(a->experiment_key, b->experiment_key) == 0);
}

/*
 * score: the node's method, model, formula weights (the flow's own for a
 * version 1 flow); the daily allowance of mandatory offers: only the
 * best-scored ones within it keep their standing, the others are screened
 * again as ordinary candidates and rescored.
 */
static void
node_score(GraphRun *run, const KNode *node)
{
	KRequest   *req = run->req;
	const KFlow *spec = node->spec;

	if (!same_model(spec, req->spec))
		kaireon_request_model(req, spec, run->args->customer_id, run->args->dry_run);
	req->spec = spec;
	kaireon_score_candidates(req, spec, run->cands, run->n);
	if (demote_mandatory(run, run->mandatory_left))
		kaireon_score_candidates(req, spec, run->cands, run->n);
}

/* Does anyone read this decision's funnel (debug output, recommend_json's answer, a trace)? */
static inline bool
funnel_read(const KDecideArgs *args, const KDecideResult *res)
{
	return !args->funnels_unread || res->traced;
}

/* The funnel counts of the screening steps, from the stage each candidate was dropped at (once, before arbitration). */
static void
count_funnel(GraphRun *run)
{
	/* only the funnel reads them */
	if (run->counted || !funnel_read(run->args, run->res))
		return;
	run->counted = true;
	for (int i = 0; i < run->n; i++)
	{
		const char *st = run->cands[i].dropped_stage;

		KDropReason drop = run->cands[i].drop;

		/* (a graph's filter, extension point and narrowing inventory drop before qualification too) */
		if (st == NULL || (strcmp(st, "eligibility") != 0 && strcmp(st, "fit") != 0 &&
						   strcmp(st, "guardrail") != 0 && drop != KDROP_FILTER && drop != KDROP_EXTENSION &&
						   drop != KDROP_INVENTORY && drop != KDROP_EXCLUDED && drop != KDROP_NO_CREATIVE))
			run->counts[1]++;
		if (st == NULL || strcmp(st, "contact_policy") == 0 || strcmp(st, "volume_constraint") == 0 ||
			strcmp(st, "budget") == 0)
			run->counts[2]++;
		if (st == NULL || strcmp(st, "volume_constraint") == 0 || strcmp(st, "budget") == 0)
			run->counts[3]++;
		if (st == NULL)
			run->counts[4]++;
	}
}

/*
 * rank: the remaining candidates in rank order (a campaign's all sorted; a
 * decision's selected one by one at the response), the others noted as
 * dropped.  A candidate without a creative yet (no match_creatives on the
 * path) gets one here by the fallback mode.
 */
static void
node_rank(GraphRun *run, const KNode *node)
{
	run->rank_node = node;
	count_funnel(run);
	node_match_creatives(run, KPM_FALLBACK);
	run->ranked = palloc(sizeof(KCandidate *) * Max(run->n, 1));
	run->nranked = 0;
	for (int i = 0; i < run->n; i++)
	{
		if (run->cands[i].dropped_stage)
		{
			if (run->args->debug || run->res->traced)
				note_dropped(run->res, &run->cands[i], run->placement_id);
			continue;
		}
		run->ranked[run->nranked++] = &run->cands[i];
	}
	if (run->args->batch)
		qsort_arg(run->ranked, run->nranked, sizeof(KCandidate *), kaireon_rank_cmp, run->req->cfg);
}

/*
 * Append a decision for a selected candidate (its cap units taken) in a
 * placement at a rank: its explanation (version 2: the path, the properties,
 * the response node's fields), and the offer marked as placed.
 */
static void
emit_decision(GraphRun *run, const KNode *node, KCandidate *c, const char *placement_id, int rank)
{
	KRequest   *req = run->req;
	KTenantConfig *cfg = req->cfg;
	KDecideArgs *args = run->args;
	KDecideResult *res = run->res;
	const KFlow *flow = &cfg->flows[run->flow_idx];
	KDecision  *d;

	res->decisions = repalloc(res->decisions, sizeof(KDecision) * (res->ndecisions + 1));
	d = &res->decisions[res->ndecisions++];
	memset(d, 0, sizeof(KDecision));
	d->cand = c;
	d->rank = rank;
	d->placement_id = placement_id;
	d->flow = run->flow_idx;
	d->spec = req->spec != flow ? req->spec : NULL;
	d->interaction_id = args->dry_run ? NULL : kaireon_new_uuid();
	d->model = req->model;
	d->model_key = req->model_key;
	d->variant = req->variant;
	d->explanation = args->batch ? NULL : json_object();
	if (d->explanation != NULL && req->degraded != NULL)
		json_object_set(d->explanation, "degradedScoring", req->degraded);
	karb_decision(req, d);
	if (d->explanation != NULL && run->path != NULL)
	{
		json_object_set(d->explanation, "path", run->path);
		if (json_object_size(run->properties) > 0)
			json_object_set(d->explanation, "properties", run->properties);
		if (node->fields != NULL)
			json_object_set_new(d->explanation, "fields", kaireon_graph_fields(run->graph, node, c));
	}
	if (run->taken != NULL)
		json_object_set_new(run->taken, cfg->offers[c->offer].id, json_true());
}

/*
 * May the candidate be placed: within the per-response caps of cross-offer
 * constraints, and (recording) with a unit of every volume constraint and
 * budget covering it taken?  When not, it is dropped and noted.
 */
static bool
take_candidate(GraphRun *run, KCandidate *c, const char *placement_id)
{
	if (!karb_admit(run->req, c))
	{
		/* a per-response cap of a cross-offer constraint is reached */
		if (run->args->debug || run->res->traced)
			note_dropped(run->res, c, placement_id);
		return false;
	}
	if (!run->args->dry_run && !kaireon_reserve_caps(run->req, c))
	{
		c->dropped_stage = "cap";
		c->drop = KDROP_CAP;
		c->dropped_reason = pstrdup("a volume constraint or budget covering it had no unit left when the decision was recorded");
		if (run->args->debug || run->res->traced)
			note_dropped(run->res, c, placement_id);
		return false;
	}
	return true;
}

/*
 * How many decisions a placement takes: the request's limit for it (else its
 * max_offers, else the node's maxOffers, else the flow's), 1 to 50, at most
 * the placement's max_slots (placement: its index, -1: none).
 */
static int
placement_room(GraphRun *run, const KNode *node, int placement, int limit)
{
	const KFlow *flow = &run->req->cfg->flows[run->flow_idx];
	int			n = limit > 0 ? limit : run->args->max_offers > 0 ? run->args->max_offers :
		node->max_offers > 0 ? node->max_offers : flow->max_offers;

	n = Max(1, Min(n, 50));
	if (placement >= 0)
		n = Min(n, run->req->cfg->placements[placement].max_slots);
	return n;
}

/*
 * response: select, mandatory within the daily allowance first, then by
 * score, taking cap units, up to placement_room.  A decision needs only its
 * first few candidates in rank order, so each is selected from the rest
 * (O(n) a step) rather than sorting all.
 */
static void
node_response(GraphRun *run, const KNode *node)
{
	int			max_offers = placement_room(run, node, run->placement, run->limit);

	if (run->nranked < 0)
		node_rank(run, NULL);
	if (run->args->batch)
		max_offers = run->nranked;	/* a campaign arbitrates among all of them */
	run->response = node;

	for (int i = 0, ordered = 0; i < run->nranked && run->selected < max_offers; i++)
	{
		KCandidate *c;

		/* the next best (a campaign's are ranked in full): the few a placement takes in one pass, then one at a time */
		if (run->args->batch)
			;
		else if (i == 0 && max_offers - run->selected <= KAIREON_SELECT_BEST_MAX)
			ordered = kaireon_select_best(run->ranked, 0, run->nranked, max_offers - run->selected, run->req->cfg,
										  run->rank_node);
		else if (i >= ordered)
			kaireon_select_next(run->ranked, i, run->nranked, run->req->cfg, run->rank_node);
		c = run->ranked[i];
		if (take_candidate(run, c, run->placement_id))
			emit_decision(run, node, c, run->placement_id, ++run->selected);
	}
	run->counts[5] = run->selected;
}

/*
 * group: the placement being decided and the request's other placements the
 * node lists are filled jointly: each remaining candidate goes to at most one
 * of them, a placement takes at most its room (placement_room), a candidate
 * may go where it has a creative (the matching in force), and the total score
 * is the largest (arbitration/assign.h, karb_assign: an optimal assignment,
 * not best-first).  Within a placement the candidates are ranked as
 * response ranks them.  The other placements are then answered (decide
 * skips them: res->grouped).  A campaign (batch) is answered as by response.
 */
static void
node_group(GraphRun *run, const KNode *node)
{
	KRequest   *req = run->req;
	KTenantConfig *cfg = req->cfg;
	KDecideArgs *args = run->args;
	int			nreq = json_array_size(args->placements);
	int			np = 1,
				nc;
	const char **pids = palloc(sizeof(char *) * (nreq + 1));
	int		   *pidx = palloc(sizeof(int) * (nreq + 1));
	int		   *slots = palloc(sizeof(int) * (nreq + 1));
	double	   *score;
	int		   *creative,
			   *out;

	if (run->nranked < 0)
		node_rank(run, NULL);
	if (args->batch || run->placement_id == NULL || !kj_array_has_string(node->placements, run->placement_id))
	{
		node_response(run, node);
		return;
	}
	run->response = node;
	pids[0] = run->placement_id;
	pidx[0] = run->placement;
	slots[0] = placement_room(run, node, run->placement, run->limit);
	for (int i = 0; i < nreq; i++)
	{
		const char *pid = json_string_value(json_array_get(args->placements, i));
		bool		seen = false;

		for (int k = 0; k < np; k++)
			seen |= strcmp(pids[k], pid) == 0;
		/* only the placements this flow serves: another flow's control group and arms stay its own */
		if (seen || !kj_array_has_string(node->placements, pid) || json_object_get(run->res->grouped, pid) ||
			(run->res->placement_flows != NULL && run->res->placement_flows[i] != run->flow_idx))
			continue;
		pids[np] = pid;
		pidx[np] = kaireon_find_placement(cfg, pid);
		slots[np] = placement_room(run, node, pidx[np], args->placement_limits ? args->placement_limits[i] : 0);
		np++;
	}

	/* each candidate's value in each placement: its score where it has a creative */
	nc = run->nranked;
	score = palloc(sizeof(double) * Max(nc * np, 1));
	creative = palloc(sizeof(int) * Max(nc * np, 1));
	out = palloc(sizeof(int) * Max(nc, 1));
	for (int c = 0; c < nc; c++)
	{
		KCandidate *cand = run->ranked[c];

		for (int p = 0; p < np; p++)
		{
			int			cr = p == 0 ? cand->creative :
				kaireon_pick_creative(req, run->match_mode, &cfg->offers[cand->offer], pidx[p], args->exclude_creatives, run->seed);

			creative[c * np + p] = cr;
			score[c * np + p] = cr >= 0 ? cand->score : NAN;
		}
	}
	(void) karb_assign(score, nc, np, slots, out);

	/* the decisions, placement by placement, in rank order */
	for (int p = 0; p < np; p++)
	{
		KCandidate **placed = palloc(sizeof(KCandidate *) * Max(nc, 1));
		int			n = 0,
					rank = 0;

		for (int c = 0; c < nc; c++)
			if (out[c] == p)
			{
				KCandidate *copy = run->ranked[c];

				if (p > 0)
				{
					copy = palloc(sizeof(KCandidate));
					*copy = *run->ranked[c];
					copy->creative = creative[c * np + p];
				}
				placed[n++] = copy;
			}
		qsort_arg(placed, n, sizeof(KCandidate *), kaireon_rank_cmp, cfg);
		for (int k = 0; k < n; k++)
			if (take_candidate(run, placed[k], pids[p]))
				emit_decision(run, node, placed[k], pids[p], ++rank);
		if (p == 0)
			run->selected = rank;
		else
		{
			if (run->res->grouped == NULL)
				run->res->grouped = json_object();
			json_object_set_new(run->res->grouped, pids[p], json_integer(rank));
		}
	}
	run->counts[5] = run->selected;
	run->group_placements = json_array();
	for (int p = 0; p < np; p++)
		json_array_append_new(run->group_placements, json_string(pids[p]));
}

/* The node a path leaves a node by (a conditional's branch), noted in the path. */
static int
next_node(GraphRun *run, const KNode *node, const char *prefix)
{
	const char *branch;
	int			next;

	if (node->type != KNODE_CONDITIONAL)
		return node->next;
	next = kaireon_graph_branch(run->req, node, &branch);
	if (run->path != NULL)
		json_array_append_new(run->path, json_sprintf("%s%s[%s]", prefix, node->id, branch));
	return next;
}

/*
 * Run a flow's graph from its entry to a response node: the top-level flow's
 * response answers; a called flow's (call_flow) returns to the caller, whose
 * path goes on (depth: the calls above).
 */
static void
run_graph(GraphRun *run, const KGraph *g, int flow_idx, int depth)
{
	KTenantConfig *cfg = run->req->cfg;
	const char *prefix = depth == 0 ? "" : psprintf("%s/", cfg->flows[flow_idx].key);
	int			k = g->entry;

	while (k >= 0)
	{
		const KNode *node = &g->nodes[k];

		CHECK_FOR_INTERRUPTS();
		run->graph = g;
		if (run->path != NULL && node->type != KNODE_CONDITIONAL)
			json_array_append_new(run->path, depth == 0 ? json_string(node->id) :
								  json_sprintf("%s%s", prefix, node->id));
		switch (node->type)
		{
			case KNODE_INVENTORY:
				node_inventory(run, node);
				break;
			case KNODE_MATCH_CREATIVES:
				run->match_mode = node->placement_match;
				node_match_creatives(run, node->placement_match);
				break;
			case KNODE_ENRICH:
				kaireon_graph_enrich(run->req, node);
				break;
			case KNODE_QUALIFY:
			case KNODE_CONTACT_POLICY:
				node_screen(run, node);
				break;
			case KNODE_FILTER:
				kaireon_graph_filter(run->req, g, node, run->cands, run->n);
				break;
			case KNODE_CONDITIONAL:
				break;
			case KNODE_CALL_FLOW:
				{
					int			f = node->flow;

					if (f < 0 || !cfg->flows[f].runnable || cfg->flows[f].graph == NULL)
						ereport(ERROR,
								(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
								 errmsg("decision flow \"%s\" node \"%s\" calls flow \"%s\", which is not published",
										cfg->flows[flow_idx].key, node->id, node->flow_key),
								 errhint("Publish flow \"%s\", or change the call.", node->flow_key)));
					if (depth + 1 >= KAIREON_FLOW_CALL_DEPTH)
						ereport(ERROR,
								(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
								 errmsg("decision flow \"%s\" node \"%s\": calls nest deeper than %d flows",
										cfg->flows[flow_idx].key, node->id, KAIREON_FLOW_CALL_DEPTH),
								 errhint("Flatten the calls (docs/flows.md).")));
					run_graph(run, cfg->flows[f].graph, f, depth + 1);
					run->graph = g;
					break;
				}
			case KNODE_SCORE:
				node_score(run, node);
				break;
			case KNODE_OPTIMIZE:
				count_funnel(run);
				/* real-time arbitration: dual prices (arbitration/realtime.c) */
				if (node->prices)
					karb_price(run->req, run->args, run->cands, run->n);
				break;
			case KNODE_RANK:
				node_rank(run, node);
				break;
			case KNODE_COMPUTE:
				kaireon_graph_compute(run->req, g, node, run->cands, run->n);
				break;
			case KNODE_SET_PROPERTIES:
				json_object_update(run->properties, node->properties);
				break;
			case KNODE_RESPONSE:
				if (depth == 0)
					node_response(run, node);
				return;
			case KNODE_GROUP:
				if (depth == 0)
					node_group(run, node);
				return;
			case KNODE_EXTENSION_POINT:
				kaireon_graph_extension(run->req, node, run->cands, run->n);
				break;
			case KNODE_NTYPES:
				break;
		}
		k = next_node(run, node, prefix);
	}
}

/*
 * Decide one placement: its flow's graph (config/flowgraph.c: a version 1
 * flow is the linear graph inventory -> match_creatives -> qualify ->
 * contact_policy -> score -> optimize -> rank -> response, the steps 2 to 10
 * of the pipeline), run by run_graph; append its decisions and funnel to the
 * result.  limit: the request's limit for this placement (0: max_offers, else
 * the flow's); a placement never gets more decisions than its max_slots.
 * Called by decide.c once per placement of the request, in their order.
 */
void
kaireon_decide_placement(KDecideResult *res, KDecideArgs *args, const char *placement_id, int flow_idx,
						 json_t *taken, int mandatory_left, int limit)
{
	KRequest   *req = res->req;
	KTenantConfig *cfg = req->cfg;
	const KFlow *flow = &cfg->flows[flow_idx];
	GraphRun	run = {0};
	static const char *const stage_names[] = {
		"candidates", "afterQualification", "afterSuppression", "afterContactPolicy", "afterCaps", "final"
	};
	json_t	   *funnel;

	/* a placement a group node of an earlier placement filled with it */
	if (res->grouped != NULL && placement_id != NULL && json_object_get(res->grouped, placement_id) != NULL)
		return;
	req->placement_id = placement_id;
	req->flow = flow_idx;
	req->spec = flow;
	/* a customer in a control group gets nothing here (and no experiment variant) */
	if (in_control_group(res, args, placement_id, flow_idx))
		return;
	kaireon_request_model(req, flow, args->customer_id, args->dry_run);
	karb_placement(req, flow, args, res->recommendation_id);

	run.res = res;
	run.args = args;
	run.req = req;
	run.placement_id = placement_id;
	run.placement = placement_id ? kaireon_find_placement(cfg, placement_id) : -1;
	run.flow_idx = flow_idx;
	run.taken = taken;
	run.mandatory_left = mandatory_left;
	run.limit = limit;
	run.seed = kaireon_draw_seed(res->recommendation_id);
	run.cands = palloc(sizeof(KCandidate) * Max(cfg->noffers, 1));
	run.nranked = -1;
	run.match_mode = KPM_FALLBACK;
	if (flow->graph->version == 2)
	{
		run.path = json_array();
		run.properties = json_object();
	}
	run_graph(&run, flow->graph, flow_idx, 0);

	/* the statistics: every screened candidate that did not make it, by why */
	for (int i = 0; i < run.n; i++)
		if (run.cands[i].dropped_stage)
		{
			res->stat.drops[run.cands[i].drop]++;
			if (run.cands[i].drop == KDROP_VOLUME || run.cands[i].drop == KDROP_BUDGET || run.cands[i].drop == KDROP_CAP)
				res->stat.cap_refusals++;
		}

	/* the funnel, for those who read it: debug output, recommend_json's answer, a trace */
	if (!funnel_read(args, res))
		return;
	funnel = json_object();
	json_object_set_new(funnel, "placement", placement_id ? json_string(placement_id) : json_null());
	json_object_set_new(funnel, "flow", json_string(flow->key));
	for (int i = 0; i < 6; i++)
		json_object_set_new(funnel, stage_names[i], json_integer(run.counts[i]));
	if (run.path != NULL)
		json_object_set(funnel, "path", run.path);
	if (run.group_placements != NULL)
		json_object_set_new(funnel, "group", run.group_placements);
	json_array_append_new(res->funnels, funnel);
}
