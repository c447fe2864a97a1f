/*
 * decision/rules.c
 *	  Evaluation of scopes, qualification rules, guardrails and propensity
 *	  for one candidate in one request.  Pure computation over the compiled
 *	  configuration and the customer state read for the request: no SPI, no
 *	  catalog access, nothing allocated beyond small per-candidate notes and
 *	  the request's memos (a verdict per customer-only rule, a result per
 *	  qualification class).
 *	  The request-independent pieces (attribute paths, comparisons, offer-only
 *	  scopes) are config/conditions.c.
 *
 * Missing values.  For qualification rules a missing (absent or null)
 * attribute passes, unless the operator is exists / not_exists (spec section
 * 4).  In guardrail expressions a comparison with a missing value is false
 * (not_exists true), so a guardrail never holds by accident of missing data.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "utils/datetime.h"
#include "utils/memutils.h"

#include "config/conditions.h"
#include "decision/decision.h"

/* Is the customer in the segment (by index)?  Unknown or unpublished segments: no. */
bool
kaireon_in_segment(const KRequest *req, int segment)
{
	int			slot;

	if (segment < 0)
		return false;
	slot = req->cfg->segments[segment].slot;
	return slot >= 0 && req->cust->segments != NULL && req->cust->segments[slot];
}

/* Does a rule's or policy's scope cover this offer in this request? */
bool
kaireon_scope_matches(const KRequest *req, const KScope *scope, const KOffer *offer)
{
	switch (scope->kind)
	{
		case KSCOPE_SEGMENT:
			return kaireon_in_segment(req, scope->segment);
		case KSCOPE_CHANNEL:
			return scope->id && req->channel_id && strcmp(scope->id, req->channel_id) == 0;
		default:
			return kaireon_scope_covers_offer(scope, offer);
	}
}

/* Does any of the scopes cover the offer? */
static bool
any_scope(const KRequest *req, int n, const KScope *scopes, const KOffer *offer)
{
	for (int i = 0; i < n; i++)
		if (kaireon_scope_matches(req, &scopes[i], offer))
			return true;
	return false;
}

/* ---- propensity ---- */

/*
 * Adaptation counts (positives, negatives) of the offer, its category (of
 * scope_id '' when it has none) and the tenant, from the request's read (laid
 * out by index when it was read: decision/customer.c).
 */
static void
adaptation(KRequest *req, const KOffer *offer, int64 *op, int64 *on, int64 *cp, int64 *cn, int64 *gp, int64 *gn)
{
	KTenantConfig *cfg = req->cfg;
	int			o = offer - cfg->offers;
	int			c = offer->category >= 0 ? offer->category : cfg->ncategories;

	if (req->adaptation == NULL)
		req->adaptation = kaireon_tenant_adaptation(cfg);
	*op = cfg->adaptation_offers[2 * o];
	*on = cfg->adaptation_offers[2 * o + 1];
	*cp = cfg->adaptation_categories[2 * c];
	*cn = cfg->adaptation_categories[2 * c + 1];
	*gp = cfg->adaptation_global[0];
	*gn = cfg->adaptation_global[1];
}

/*
 * A model score used as a propensity: a probability, so a model whose scores
 * are not (a regression model) is clamped into [0, 1] (NaN counts as 0).
 */
static double
as_probability(double score)
{
	return score >= 1 ? 1 : score > 0 ? score : 0;
}

/*
 * The candidate's propensity (spec section 6, adaptive propensity): the
 * offer's own positive rate once it has 50 outcomes; below that its outcomes
 * blended with a prior (smoothing weight 10), the prior being the category's
 * rate (20 outcomes or more), else the tenant's (10 or more), else the
 * request's model score, else 0.5.  With score.propensitySource "model" the
 * model's score is the propensity outright.  Computed once per candidate.
 */
double
kaireon_propensity(KRequest *req, KCandidate *cand)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];
	const KFlow *flow = req->spec != NULL ? req->spec : req->flow >= 0 ? &req->cfg->flows[req->flow] : NULL;
	int64		op,
				on,
				cp,
				cn,
				gp,
				gn;
	double		prior;
	const char *prior_source;

	if (cand->propensity >= 0)
		return cand->propensity;
	adaptation(req, offer, &op, &on, &cp, &cn, &gp, &gn);
	cand->propensity_n = op + on;
	if (req->model != NULL && flow != NULL && flow->model_propensity)
	{
		/* the flow takes its propensity from the model, not from the counts */
		cand->propensity = as_probability(kaireon_candidate_model_score(req, req->model, offer));
		cand->propensity_source = "model";
		return cand->propensity;
	}

	if (offer->category_id != NULL && cp + cn >= 20)
	{
		prior = (double) cp / (cp + cn);
		prior_source = "category";
	}
	else if (gp + gn >= 10)
	{
		prior = (double) gp / (gp + gn);
		prior_source = "global";
	}
	else if (req->model != NULL)
	{
		prior = as_probability(kaireon_candidate_model_score(req, req->model, offer));
		prior_source = "model";
	}
	else
	{
		prior = 0.5;
		prior_source = "default";
	}
	if (op + on >= 50)
	{
		cand->propensity = (double) op / (op + on);
		cand->propensity_source = "offer";
	}
	else
	{
		cand->propensity = (op + 10.0 * prior) / (op + on + 10.0);
		cand->propensity_source = (op + on) == 0 ? prior_source :
			strcmp(prior_source, "category") == 0 ? "offer+category" :
			strcmp(prior_source, "global") == 0 ? "offer+global" :
			strcmp(prior_source, "model") == 0 ? "offer+model" : "offer+default";
	}
	return cand->propensity;
}

/* ---- qualification ---- */

/* Does an event match a recency rule's filters? */
static bool
recency_event_matches(const KRule *rule, const KEvent *ev, const KOffer *offer)
{
	static const char *const type_names[] = {"recommendation", "impression", "outcome"};

	if (rule->interaction_types && !kj_array_has_string(rule->interaction_types, type_names[ev->type]) &&
		!(ev->type == KEV_OUTCOME && kj_array_has_string(rule->interaction_types, ev->outcome)))
		return false;
	if (rule->outcomes && (ev->type != KEV_OUTCOME || !kj_array_has_string(rule->outcomes, ev->outcome)))
		return false;
	if (rule->level == 0)
		return ev->offer_id && strcmp(ev->offer_id, offer->id) == 0;
	if (rule->level == 1)
		return ev->category_id && offer->category_id && strcmp(ev->category_id, offer->category_id) == 0;
	return true;
}

/* Evaluate one rule for a candidate; *why gets a short description when it fails. */
static bool
rule_holds(KRequest *req, KCandidate *cand, const KRule *rule, char **why)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];
	KCustomer  *cust = req->cust;

	switch (rule->type)
	{
		case KRULE_SEGMENT_REQUIRED:
			{
				int			members = 0;

				for (int i = 0; i < rule->nsegments; i++)
					if (kaireon_in_segment(req, rule->segments[i]))
						members++;
				if (rule->match_all ? members == rule->nsegments && rule->nsegments > 0 : members > 0)
					return true;
				*why = !req->keep_reasons ? NULL : pstrdup("customer is not in the required segment(s)");
				return false;
			}
		case KRULE_ATTRIBUTE_CONDITION:
			{
				json_t	   *src = rule->attr_source == 1 ? cust->data :
					rule->attr_source == 2 ? cust->context : cust->attrs;
				json_t	   *actual = src ? kaireon_path(src, rule->cond.path) : NULL;

				if (kaireon_cond_passes(&rule->cond, actual))
					return true;
				*why = !req->keep_reasons ? NULL : psprintf("customer attribute \"%s\" does not satisfy the condition", rule->cond.path);
				return false;
			}
		case KRULE_OFFER_ATTRIBUTE:
			if (rule->offer_holds != NULL ? rule->offer_holds[cand->offer] :
				kaireon_cond_passes(&rule->cond, kaireon_offer_attribute(offer, rule->cond.path)))
				return true;
			*why = !req->keep_reasons ? NULL : psprintf("offer attribute \"%s\" does not satisfy the condition", rule->cond.path);
			return false;
		case KRULE_PROPENSITY_THRESHOLD:
			{
				struct KaireonModel *m = rule->model_key ? kaireon_rule_model(req, rule) : NULL;
				double		p = m ? kaireon_candidate_model_score(req, m, offer) : kaireon_propensity(req, cand);
				json_t	   *pv = json_real(p);
				KCond		c = {"", rule->threshold_op, json_real(rule->threshold)};

				if (kaireon_cond_holds(&c, pv))
					return true;
				*why = !req->keep_reasons ? NULL : psprintf("propensity %.4f does not satisfy the threshold %.4f", p, rule->threshold);
				return false;
			}
		case KRULE_RECENCY_CHECK:
			{
				bool		found = false;
				TimestampTz since = req->now - (TimestampTz) (rule->within_hours * USECS_PER_HOUR);

				for (int i = 0; i < cust->nevents && !found; i++)
					if (cust->events[i].at >= since && recency_event_matches(rule, &cust->events[i], offer))
						found = true;
				if (found != rule->require_recent)
				{
					*why = !req->keep_reasons ? NULL : pstrdup(found ? "a recent interaction excludes it" : "no recent interaction as required");
					return false;
				}
				return true;
			}
		case KRULE_METRIC_CONDITION:
			{
				json_t	   *v = NULL;

				if (cust->metrics != NULL)
				{
					char	   *key = rule->dimension_key ?
						psprintf("%s|%s", rule->metric_key, rule->dimension_key) : (char *) rule->metric_key;

					v = json_object_get(cust->metrics, key);
				}
				if (kaireon_cond_passes(&rule->cond, v))
					return true;
				*why = !req->keep_reasons ? NULL : psprintf("metric \"%s\" does not satisfy the condition", rule->metric_key);
				return false;
			}
	}
	return true;
}

/*
 * Make room for n more match rules in a candidate's list of those that held
 * (passed_room): the first room (the match rules bound to its offer, nmatch,
 * or n if more) is carved from blocks of the request rather than allocated one
 * by one; a list that outgrows it (qualify nodes of a flow graph running a
 * match rule again) moves to a room of its own twice as large.
 */
static void
passed_grow(KRequest *req, KCandidate *cand, int n, int nmatch)
{
	if (cand->passed == NULL)
	{
		int			room = Max(nmatch, n);

		if (req->nfree_slots < room)
		{
			req->nfree_slots = Max(room, 1024);
			req->free_slots = palloc(sizeof(int) * req->nfree_slots);
		}
		cand->passed = req->free_slots;
		cand->passed_room = room;
		req->free_slots += room;
		req->nfree_slots -= room;
	}
	else
	{
		int			room = Max(2 * cand->passed_room, cand->npassed + n);
		int		   *moved = palloc(sizeof(int) * room);

		memcpy(moved, cand->passed, sizeof(int) * cand->npassed);
		cand->passed = moved;
		cand->passed_room = room;
	}
}

/* Room for n more match rules in a candidate's list of those that held (passed_grow when it has none or too little). */
static inline void
passed_room(KRequest *req, KCandidate *cand, int n, int nmatch)
{
	if (cand->passed == NULL || cand->npassed + n > cand->passed_room)
		passed_grow(req, cand, n, nmatch);
}

/*
 * What qualification did to the first candidate of a qualification class in
 * this request (KOffer.qual_class), for a qualify node's rules (only): the
 * other candidates of the class get the same (replay_class).
 */
typedef struct KQualMemo
{
	const bool *only;			/* the rules it ran (kaireon_qualify's only) */
	int			nfailed;
	int		   *failed;			/* match rules that failed, in order: their multipliers */
	int			npassed;
	int		   *passed;			/* match rules that held, in order */
	const char *dropped_stage;	/* NULL: not dropped */
	KDropReason drop;
	char	   *dropped_reason;
} KQualMemo;

/* Give a candidate what qualification did to its class's first candidate (KQualMemo). */
static void
replay_class(KRequest *req, KCandidate *cand, const KOffer *offer, const KQualMemo *m)
{
	for (int k = 0; k < m->nfailed; k++)
		cand->match *= req->cfg->rules[m->failed[k]].multiplier;
	if (m->npassed > 0)
	{
		passed_room(req, cand, m->npassed, offer->nbound_rules[KSTAGE_MATCH]);
		memcpy(cand->passed + cand->npassed, m->passed, sizeof(int) * m->npassed);
		cand->npassed += m->npassed;
	}
	if (m->dropped_stage != NULL)
	{
		cand->dropped_stage = m->dropped_stage;
		cand->drop = m->drop;
		cand->dropped_reason = m->dropped_reason;
	}
}

/*
 * Run the qualification rules over a candidate, stage by stage (eligibility,
 * fit, match) and by priority within a stage.  A failing eligibility or fit
 * rule drops the candidate; a failing match rule multiplies its match factor.
 * Mandatory offers bypass qualification.  Only the rules bound to the offer at
 * compile are visited (those that can act on it: config/conditions.c,
 * kaireon_rule_may_act); a scope that depends on the request is matched here.
 * only: the rules that apply at this point of a flow graph (a qualify node's
 * rules, by rule index), NULL: every rule.
 *
 * The candidates of one qualification class (config/eligibility.c) qualify
 * alike: the first one runs the rules and what they did is kept (KQualMemo);
 * the others get it without visiting a rule, so the cost grows with the
 * classes, not with the offers times their rules.
 */
void
kaireon_qualify(KRequest *req, KCandidate *cand, const bool *only)
{
	const int	o = cand->offer;
	const KOffer *offer = &req->cfg->offers[o];
	const KRule *rules = req->cfg->rules;
	int8	   *memo = req->rule_memo;
	KQualMemo  *keep = NULL;
	const int	npassed0 = cand->npassed;
	static const char *const stage_names[] = {"eligibility", "fit", "match"};

	if (cand->mandatory)
		return;
	if (offer->qual_class >= 0)
	{
		KQualMemo **slot = &req->qual_memo[offer->qual_class];

		if (*slot != NULL && (*slot)->only == only)
		{
			replay_class(req, cand, offer, *slot);
			return;
		}
		if (*slot == NULL)
		{
			/* one chunk: the memo, then room for the failed and the passed match rules */
			const int	nmatch = offer->nbound_rules[KSTAGE_MATCH];

			*slot = palloc(sizeof(KQualMemo) + sizeof(int) * 2 * nmatch);
			(*slot)->failed = (int *) (*slot + 1);
			(*slot)->passed = (*slot)->failed + nmatch;
		}
		keep = *slot;
		keep->only = only;
		keep->nfailed = 0;
		keep->npassed = 0;
		keep->dropped_stage = NULL;
	}
	/* the loops' invariants are in locals: the compiler cannot keep them across the stores below */
	for (int stage = KSTAGE_ELIGIBILITY; stage <= KSTAGE_MATCH; stage++)
	{
		const int  *bound = offer->bound_rules[stage];
		const int	nbound = offer->nbound_rules[stage];

		for (int k = 0; k < nbound; k++)
		{
			const int	i = bound[k];
			const KRule *rule = &rules[i];
			char	   *why = NULL;
			bool		holds;

			if (only != NULL && !only[i])
				continue;
			if (rule->applies[o] < 0 && !any_scope(req, rule->nscopes, rule->scopes, offer))
				continue;
			if (kaireon_rule_customer_only(rule))
			{
				/* the same for every candidate: evaluate once per request */
				if (memo[i] == 0)
					memo[i] = rule_holds(req, cand, rule, &req->rule_memo_why[i]) ? 1 : 2;
				holds = memo[i] == 1;
				why = req->rule_memo_why[i];
			}
			else
				holds = rule_holds(req, cand, rule, &why);
			if (holds)
			{
				if (stage == KSTAGE_MATCH && req->list_matches)
				{
					passed_room(req, cand, 1, offer->nbound_rules[KSTAGE_MATCH]);
					cand->passed[cand->npassed++] = i;
				}
				continue;
			}
			if (stage == KSTAGE_MATCH)
			{
				cand->match *= rule->multiplier;
				if (keep != NULL)
					keep->failed[keep->nfailed++] = i;
				continue;
			}
			cand->dropped_stage = stage_names[stage];
			cand->drop = stage == KSTAGE_ELIGIBILITY ? KDROP_ELIGIBILITY : KDROP_FIT;
			cand->dropped_reason = !req->keep_reasons ? NULL :
				psprintf("%s rule \"%s\" failed: %s", stage_names[stage], rule->name, why);
			if (keep != NULL)
			{
				keep->dropped_stage = cand->dropped_stage;
				keep->drop = cand->drop;
				keep->dropped_reason = cand->dropped_reason;
			}
			return;
		}
	}
	if (keep != NULL && cand->npassed > npassed0)
	{
		keep->npassed = cand->npassed - npassed0;
		memcpy(keep->passed, cand->passed + npassed0, sizeof(int) * keep->npassed);
	}
}

/*
 * The customer's attributes changed during the request (a flow graph's enrich
 * node): forget the verdicts of the customer-only rules and the qualification
 * classes' results, so that the qualify nodes after it evaluate them again.
 */
void
kaireon_forget_customer_verdicts(KRequest *req)
{
	memset(req->rule_memo, 0, sizeof(int8) * Max(req->cfg->nrules, 1));
	memset(req->rule_memo_why, 0, sizeof(char *) * Max(req->cfg->nrules, 1));
	memset(req->qual_memo, 0, sizeof(struct KQualMemo *) * Max(req->cfg->nqual_classes, 1));
}

/* ---- guardrails ---- */

/* What a guardrail's fields are read from. */
typedef struct GuardrailSubject
{
	const KRequest *req;
	const KOffer *offer;
} GuardrailSubject;

/*
 * The request object guardrails see as request.* (channel, channel type, hour,
 * weekday, and the context's fields), built on its first read (most decisions
 * read none) in the request's own memory context: it depends on nothing that
 * changes during the request.
 */
static json_t *
request_object(const KRequest *req)
{
	KRequest   *r = (KRequest *) req;	/* the object is kept for the request's later reads */
	MemoryContext old;
	struct pg_tm tm;
	fsec_t		fsec;

	if (r->request != NULL)
		return r->request;
	old = MemoryContextSwitchTo(GetMemoryChunkContext(r));
	r->request = json_deep_copy(req->cust->context);
	timestamp2tm(req->now, NULL, &tm, &fsec, NULL, NULL);
	json_object_set_new(r->request, "channel", json_string(req->channel_id));
	if (req->channel >= 0)
		json_object_set_new(r->request, "channel_type", json_string(req->cfg->channels[req->channel].channel_type));
	json_object_set_new(r->request, "hour", json_integer(tm.tm_hour));
	json_object_set_new(r->request, "weekday", json_integer(j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday))));
	MemoryContextSwitchTo(old);
	return r->request;
}

/*
 * The value of an expression's field for an offer in a request (offer.*,
 * customer.*, request.*, channel.*; offer NULL: no offer.* fields), NULL when
 * missing: guardrails, and a flow graph's filter and conditional nodes.
 */
json_t *
kaireon_request_field(const KRequest *req, const KOffer *offer, const char *field)
{
	if (strncmp(field, "offer.", 6) == 0)
		return offer ? kaireon_offer_attribute(offer, field + 6) : NULL;
	if (strncmp(field, "customer.", 9) == 0)
		return kaireon_path(req->cust->attrs, field + 9);
	if (strncmp(field, "request.", 8) == 0)
		return kaireon_path(request_object(req), field + 8);
	if (strncmp(field, "channel.", 8) == 0 && req->channel >= 0)
		return kaireon_path(req->cfg->channels[req->channel].row, field + 8);
	return NULL;
}

/* Resolve a guardrail field (offer.*, customer.*, request.*, channel.*). */
static json_t *
guardrail_value(const char *field, void *arg)
{
	const GuardrailSubject *s = arg;

	return kaireon_request_field(s->req, s->offer, field);
}

/*
 * Guardrails state what must hold for a candidate.  A hard guardrail that
 * does not hold drops the candidate; a soft one adds a warning.
 */
void
kaireon_apply_guardrails(KRequest *req, KCandidate *cand)
{
	GuardrailSubject subject = {req, &req->cfg->offers[cand->offer]};

	for (int i = 0; i < req->cfg->nguardrails; i++)
	{
		const KGuardrail *g = &req->cfg->guardrails[i];

		if (kaireon_expr_holds(g->expr, guardrail_value, &subject))
			continue;
		if (g->hard)
		{
			cand->dropped_stage = "guardrail";
			cand->drop = KDROP_GUARDRAIL;
			cand->dropped_reason = !req->keep_reasons ? NULL : psprintf("guardrail \"%s\" does not hold", g->key);
			return;
		}
		if (cand->warnings == NULL)
			cand->warnings = json_array();
		json_array_append_new(cand->warnings, json_sprintf("soft guardrail \"%s\" does not hold", g->key));
	}
}
