/*
 * policies.c
 *	  Consent, suppressions, contact policies and caps for one candidate
 *	  (pipeline steps 6 to 8).  Pure computation over the compiled
 *	  configuration and the customer state read for the request.
 *
 * Counting.  A cap counts the customer's history rows in its window that
 * match the scope which brought the candidate under the policy (global: every
 * row; channel: rows on that channel; category / sub-category / offer: rows
 * about offers there), and whose type is in countTypes (default: the
 * recommendation rows recommend writes, one per decision served).  Calendar
 * periods (day, week from Monday, month) start at midnight UTC; lookbackHours
 * is a rolling window.  docs/recommend.md states every policy type's rule.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "datatype/timestamp.h"
#include "pgtime.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "config/caps.h"
#include "config/conditions.h"
#include "decision/decision.h"

/* Start of the calendar period (day, week, month, quarter; daily/weekly/... too) holding now, UTC. */
TimestampTz
kaireon_period_start(const char *period, TimestampTz now)
{
	struct pg_tm tm;
	fsec_t		fsec;
	Timestamp	result;

	if (timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL) != 0)
		return now;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	fsec = 0;
	if (period[0] == 'w')		/* week, weekly: back to Monday */
	{
		int			dow = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));	/* 0 = Sunday */
		int			back = (dow + 6) % 7;

		j2date(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) - back, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	}
	else if (period[0] == 'm')	/* month, monthly */
		tm.tm_mday = 1;
	else if (period[0] == 'q')	/* quarterly */
	{
		tm.tm_mday = 1;
		tm.tm_mon = ((tm.tm_mon - 1) / 3) * 3 + 1;
	}
	if (tm2timestamp(&tm, fsec, NULL, &result) != 0)
		return now;
	return result;
}

/* Local hour and weekday (0 = Sunday) of now in a time zone (NULL: UTC). */
static void
local_hour(TimestampTz now, const char *tzname, int *hour, int *dow)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	pg_tz	   *tz = tzname ? pg_tzset(tzname) : NULL;

	if (tz != NULL)
		timestamp2tm(now, &tzoff, &tm, &fsec, NULL, tz);
	else
		timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL);
	*hour = tm.tm_hour;
	*dow = j2day(date2j(tm.tm_year, tm.tm_mon, tm.tm_mday));
}

/* Is the offer (by id) in the sub-category? */
static bool
offer_in_sub_category(const KTenantConfig *cfg, const char *offer_id, const char *sub)
{
	int			o = kaireon_find_offer(cfg, offer_id);

	return o >= 0 && cfg->offers[o].sub_category_id && strcmp(cfg->offers[o].sub_category_id, sub) == 0;
}

/* Does a history row fall under the scope that brought the candidate under a policy? */
static bool
event_in_scope(const KRequest *req, const KScope *scope, const KEvent *ev)
{
	switch (scope->kind)
	{
		case KSCOPE_GLOBAL:
		case KSCOPE_SEGMENT:
			return true;
		case KSCOPE_CHANNEL:
			return ev->channel_id && scope->id && strcmp(ev->channel_id, scope->id) == 0;
		case KSCOPE_CATEGORY:
			return ev->category_id && scope->id && strcmp(ev->category_id, scope->id) == 0;
		case KSCOPE_SUB_CATEGORY:
			return ev->offer_id && scope->id && offer_in_sub_category(req->cfg, ev->offer_id, scope->id);
		case KSCOPE_OFFER:
			return ev->offer_id && scope->id && strcmp(ev->offer_id, scope->id) == 0;
	}
	return false;
}

/* Is a history row of one of the counted types (default: recommendations)? */
static bool
event_counted(const KPolicy *p, const KEvent *ev)
{
	static const char *const names[] = {"recommendation", "impression", "outcome"};

	if (p->count_types == NULL)
		return ev->type == KEV_RECOMMENDATION;
	return kj_array_has_string(p->count_types, names[ev->type]) ||
		(ev->type == KEV_OUTCOME && kj_array_has_string(p->count_types, ev->outcome));
}

/* Start of a cap's window. */
static TimestampTz
window_start(const KRequest *req, const KPolicy *p)
{
	if (p->period != NULL)
		return p->period[0] == 'd' ? req->day_start : p->period[0] == 'w' ? req->week_start : req->month_start;
	return req->now - (TimestampTz) (p->lookback_hours * USECS_PER_HOUR);
}

/* The cap after the engagement multiplier (min + (max - min) * engagement score). */
static int
effective_cap(const KRequest *req, const KPolicy *p)
{
	double		m;

	if (!p->engagement || !req->cust->has_engagement)
		return p->max_count;
	m = p->engagement_min + (p->engagement_max - p->engagement_min) * req->cust->engagement;
	return Max(1, (int) floor(p->max_count * m + 0.5));	/* half rounds up */
}

/* Human-readable name of a scope for reasons ("global", "category:loans"). */
static char *
scope_text(const KScope *s)
{
	if (s->kind == KSCOPE_GLOBAL)
		return "global";
	return psprintf("%s:%s", kaireon_scope_names[s->kind], s->id ? s->id : "");
}

/* The window of a cap as text ("day", "24h"). */
static char *
window_text(const KPolicy *p)
{
	return p->period ? (char *) p->period : psprintf("%gh", p->lookback_hours);
}

/* Count the history rows a cap counts within its window under a scope (and an extra filter). */
static int
count_events(const KRequest *req, const KPolicy *p, const KScope *scope,
			 bool (*extra) (const KRequest *, const KPolicy *, const KEvent *, const KOffer *),
			 const KOffer *offer)
{
	TimestampTz since = window_start(req, p);
	int			n = 0;

	for (int i = 0; i < req->cust->nevents; i++)
	{
		const KEvent *ev = &req->cust->events[i];

		if (ev->at < since)
			break;				/* newest first (KCustomer.events): the rest are older */
		if (!event_counted(p, ev) || !event_in_scope(req, scope, ev))
			continue;
		if (extra != NULL && !extra(req, p, ev, offer))
			continue;
		n++;
	}
	return n;
}

/* cross_channel_cap: rows on the listed channels (all channels when none listed). */
static bool
on_listed_channel(const KRequest *req, const KPolicy *p, const KEvent *ev, const KOffer *offer)
{
	return p->ids == NULL || kj_array_has_string(p->ids, ev->channel_id);
}

/* offer_category_cap: rows about offers of the candidate's category (or of a listed one). */
static bool
in_offer_category(const KRequest *req, const KPolicy *p, const KEvent *ev, const KOffer *offer)
{
	if (ev->category_id == NULL)
		return false;
	if (p->ids != NULL)
		return kj_array_has_string(p->ids, ev->category_id) &&
			offer->category_id && strcmp(ev->category_id, offer->category_id) == 0;
	return offer->category_id && strcmp(ev->category_id, offer->category_id) == 0;
}

/* The class recent negative outcomes are looked up by. */
static const KaireonOutcomeClass negative_class = KAIREON_OUTCOME_NEGATIVE;

/* A recent history row of the given kind: outcomes in list (or, with no list, the default kind and class, NULL: any). */
static bool
recent_event(const KRequest *req, double hours, json_t *outcomes, KEventType dflt_type,
			 const KaireonOutcomeClass *dflt_class,
			 bool (*match) (const KEvent *, const KOffer *, const KPolicy *), const KOffer *offer,
			 const KPolicy *p)
{
	TimestampTz since = req->now - (TimestampTz) (hours * USECS_PER_HOUR);

	for (int i = 0; i < req->cust->nevents; i++)
	{
		const KEvent *ev = &req->cust->events[i];

		if (ev->at < since)
			break;				/* newest first (KCustomer.events): the rest are older */
		if (!match(ev, offer, p))
			continue;
		if (outcomes != NULL)
		{
			if (ev->type == KEV_OUTCOME && kj_array_has_string(outcomes, ev->outcome))
				return true;
		}
		else if (ev->type == dflt_type && (dflt_class == NULL || ev->classification == *dflt_class))
			return true;
	}
	return false;
}

/* Event matchers of recent_event: an event naming the candidate's offer. */
static bool
same_offer(const KEvent *ev, const KOffer *offer, const KPolicy *p)
{
	return ev->offer_id && strcmp(ev->offer_id, offer->id) == 0;
}

/* An event of the candidate's offer's category. */
static bool
same_category(const KEvent *ev, const KOffer *offer, const KPolicy *p)
{
	return ev->category_id && offer->category_id && strcmp(ev->category_id, offer->category_id) == 0;
}

/* Any event. */
static bool
any_event(const KEvent *ev, const KOffer *offer, const KPolicy *p)
{
	return true;
}

/* An event naming another offer of the policy's group (mutual_exclusion). */
static bool
other_offer_of_group(const KEvent *ev, const KOffer *offer, const KPolicy *p)
{
	return ev->offer_id && strcmp(ev->offer_id, offer->id) != 0 && kj_array_has_string(p->ids, ev->offer_id);
}

/* Does an event of the customer's history name the candidate's offer (KCustomer.offer_seen; unknown: yes)? */
static inline bool
offer_in_history(const KCustomer *cust, const KCandidate *cand)
{
	return cust->offer_seen == NULL || cust->offer_seen[cand->offer];
}

/*
 * The first scope of a policy bound to the offer that covers the candidate, or
 * NULL: known at compile when no scope depending on the request comes first
 * (KPolicyBinding), else matched now.
 */
static inline const KScope *
covering_scope(const KRequest *req, const KPolicyBinding *b, const KOffer *offer)
{
	const KPolicy *p = &req->cfg->policies[b->policy];

	if (b->scope >= 0)
		return &p->scopes[b->scope];
	for (int i = 0; i < p->nscopes; i++)
		if (kaireon_scope_matches(req, &p->scopes[i], offer))
			return &p->scopes[i];
	return NULL;
}

/* Does a cap's scope cover the candidate in this request? */
bool
kaireon_cap_applies(const KRequest *req, const KCap *c, const KOffer *offer)
{
	KScope		s = {c->scope, c->scope_id, -1};

	if (c->kind == KCAP_BUDGET && !kaireon_budget_current(c, req->now))
		return false;
	return kaireon_scope_matches(req, &s, offer);
}

/* Is a budget exhausted (by metric, at threshold fraction)?  *why says which. */
static bool
budget_exhausted(const KRequest *req, const KCap *c, const char *metric, double threshold, char **why)
{
	json_t	   *u = req->cap_usage ? json_object_get(req->cap_usage, c->id) : NULL;

	if (u == NULL)
		return false;
	if ((metric == NULL || strcmp(metric, "impressions") == 0) && c->has_max_impressions &&
		kj_num(u, "impressions", 0) >= threshold * c->max_impressions)
	{
		*why = psprintf("budget \"%s\" impressions %.0f of %lld", c->name ? c->name : c->id,
						kj_num(u, "impressions", 0), (long long) c->max_impressions);
		return true;
	}
	if ((metric == NULL || strcmp(metric, "spend") == 0) && c->has_max_spend &&
		kj_num(u, "spend", 0) >= threshold * c->max_spend)
	{
		*why = psprintf("budget \"%s\" spend %g of %g", c->name ? c->name : c->id,
						kj_num(u, "spend", 0), c->max_spend);
		return true;
	}
	if ((metric == NULL || strcmp(metric, "conversions") == 0) && c->has_max_conversions &&
		kj_num(u, "conversions", 0) >= threshold * c->max_conversions)
	{
		*why = psprintf("budget \"%s\" conversions %.0f of %lld", c->name ? c->name : c->id,
						kj_num(u, "conversions", 0), (long long) c->max_conversions);
		return true;
	}
	return false;
}

/*
 * Evaluate one contact policy for a candidate under a scope; the reason when it
 * blocks.  Only for a policy bound to the offer (config/conditions.c,
 * kaireon_policy_may_act): an offer_category_cap or category_suppression of an
 * offer without a (listed) category, or a mutual_exclusion of an offer outside the
 * group, never gets here.
 */
static char *
policy_blocks(KRequest *req, const KCandidate *cand, const KPolicy *p, const KScope *scope)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];
	KCustomer  *cust = req->cust;
	int			n,
				cap;

	switch (p->type)
	{
		case KPOL_FREQUENCY_CAP:
		case KPOL_CUSTOMER_TOTAL_CAP:
		case KPOL_CROSS_CHANNEL_CAP:
		case KPOL_OFFER_CATEGORY_CAP:
			{
				KScope		global = {KSCOPE_GLOBAL, NULL, -1};
				const KScope *counting = p->type == KPOL_FREQUENCY_CAP ? scope : &global;

				n = count_events(req, p, counting,
								 p->type == KPOL_CROSS_CHANNEL_CAP ? on_listed_channel :
								 p->type == KPOL_OFFER_CATEGORY_CAP ? in_offer_category : NULL,
								 offer);
				cap = effective_cap(req, p);
				if (n >= cap)
					return psprintf("%s exceeded: %d/%s at scope=%s", p->type_name, cap, window_text(p),
									scope_text(counting));
				return NULL;
			}
		case KPOL_COOLDOWN:
			Assert(kaireon_policy_needs_offer_event(p));
			if (!offer_in_history(cust, cand))
				return NULL;	/* no event names the offer */
			if (recent_event(req, p->hours, p->outcomes, KEV_RECOMMENDATION, NULL, same_offer, offer, p))
				return psprintf("cooldown: offer %s within %gh", p->outcomes ? "had an outcome" : "was served", p->hours);
			return NULL;
		case KPOL_OUTCOME_BASED:
			{
				bool		(*match) (const KEvent *, const KOffer *, const KPolicy *) =
					p->level == 0 ? same_offer : p->level == 1 ? same_category : any_event;

				if (kaireon_policy_needs_offer_event(p) && !offer_in_history(cust, cand))
					return NULL;	/* no event names the offer */
				if (recent_event(req, p->hours, p->outcomes, KEV_OUTCOME, NULL, match, offer, p))
					return psprintf("outcome_based: suppressed %g days after outcome", p->hours / 24);
				return NULL;
			}
		case KPOL_CATEGORY_SUPPRESSION:
			if (recent_event(req, p->hours, p->outcomes, KEV_OUTCOME, &negative_class, same_category, offer, p))
				return psprintf("category_suppression: category %s suppressed for %g days", offer->category_id,
								p->hours / 24);
			return NULL;
		case KPOL_MUTUAL_EXCLUSION:
			if (recent_event(req, p->hours, NULL, KEV_RECOMMENDATION, NULL, other_offer_of_group, offer, p))
				return psprintf("mutual_exclusion: another offer of the group was served within %gh", p->hours);
			return NULL;
		case KPOL_SEGMENT_EXCLUSION:
			for (int i = 0; i < p->nsegments; i++)
				if (kaireon_in_segment(req, p->segments[i]))
					return psprintf("segment_exclusion: customer is in segment %s",
									req->cfg->segments[p->segments[i]].id);
			return NULL;
		case KPOL_TIME_WINDOW:
			{
				int			hour,
							dow;
				bool		inside;

				local_hour(req->now, p->timezone, &hour, &dow);
				inside = p->start_hour < p->end_hour ?
					(hour >= p->start_hour && hour < p->end_hour) :
					(hour >= p->start_hour || hour < p->end_hour);
				if (p->days_mask != 0 && !(p->days_mask & (1 << dow)))
					inside = false;
				if (!inside)
					return psprintf("time_window: outside %02d:00-%02d:00", p->start_hour, p->end_hour);
				return NULL;
			}
		case KPOL_METRIC_CONDITION:
			{
				json_t	   *v = NULL;

				if (cust->metrics != NULL)
					v = json_object_get(cust->metrics, p->dimension_key ?
										psprintf("%s|%s", p->metric_key, p->dimension_key) : p->metric_key);
				if (v != NULL && kaireon_cond_holds(&p->cond, v))
					return psprintf("metric_condition: metric %s meets the suppression condition", p->metric_key);
				return NULL;
			}
		case KPOL_BUDGET_EXHAUSTED:
			for (int i = 0; i < req->cfg->ncaps; i++)
			{
				const KCap *c = &req->cfg->caps[i];
				char	   *why;

				if (c->kind != KCAP_BUDGET)
					continue;
				if (p->budget_id ? (strcmp(p->budget_id, c->id) != 0 || !kaireon_budget_current(c, req->now)) :
					!kaireon_cap_applies(req, c, offer))
					continue;
				if (budget_exhausted(req, c, p->budget_metric, p->budget_threshold, &why))
					return psprintf("budget_exhausted: %s", why);
			}
			return NULL;
		case KPOL_ALLOW_OVERRIDE:
			return NULL;
	}
	return NULL;
}

/* Mandatory offers bypass a policy unless it is a frequency or cross-channel cap, or not bypassable. */
static bool
mandatory_bypasses(const KPolicy *p)
{
	return p->bypassable && p->type != KPOL_FREQUENCY_CAP && p->type != KPOL_CROSS_CHANNEL_CAP;
}

/*
 * The exemptions the allow_override policies covering the offer give (only: a
 * contact_policy node's policies, NULL: all): *all when one exempts from every
 * policy type, else *types lists the types exempted from (NULL: none).
 */
static void
exemptions(const KRequest *req, const KOffer *offer, const bool *only, json_t **types, bool *all)
{
	*types = NULL;
	*all = false;
	for (int k = 0; k < offer->nbound_overrides; k++)
	{
		const KPolicy *p = &req->cfg->policies[offer->bound_overrides[k].policy];

		if (only != NULL && !only[offer->bound_overrides[k].policy])
			continue;
		if (covering_scope(req, &offer->bound_overrides[k], offer) == NULL)
			continue;
		if (p->exempt_types == NULL)
			*all = true;
		else
		{
			if (*types == NULL)
				*types = json_array();
			json_array_extend(*types, p->exempt_types);
		}
	}
}

/* Does a bound policy not apply to the candidate here (not the node's, exempted, bypassed by a mandatory offer)? */
static inline bool
policy_skipped(const KPolicy *p, int i, const bool *only, json_t *exempt, bool mandatory)
{
	return (only != NULL && !only[i]) ||
		(exempt != NULL && kj_array_has_string(exempt, p->type_name)) ||
		(mandatory && mandatory_bypasses(p));
}

/*
 * Does the bound policy block the candidate under the scope covering it?  Its
 * reason, or NULL.  A verdict the same for every candidate (independent) or
 * every offer of the category (per_category) is evaluated once per request or
 * category and remembered.
 */
static inline char *
binding_blocks(KRequest *req, KCandidate *cand, const KPolicyBinding *b, const KPolicy *p, const KScope *scope)
{
	const int	i = b->policy;

	if (b->scope >= 0 ? b->independent : kaireon_policy_independent(p, scope))
	{
		/* the same for every candidate this scope covers: evaluate once per request */
		if (req->policy_memo[i] == 0)
		{
			req->policy_memo_why[i] = policy_blocks(req, cand, p, scope);
			req->policy_memo[i] = req->policy_memo_why[i] ? 2 : 1;
		}
		return req->policy_memo_why[i];
	}
	if (b->per_category)
	{
		/* the same for every offer of the category: evaluate once per category */
		int			slot = i * req->cfg->ncategories + req->cfg->offers[cand->offer].category;

		if (req->policy_cat_memo == NULL)
		{
			req->policy_cat_memo = palloc0(sizeof(int8) * req->cfg->npolicies * req->cfg->ncategories);
			req->policy_cat_memo_why = palloc0(sizeof(char *) * req->cfg->npolicies * req->cfg->ncategories);
		}
		if (req->policy_cat_memo[slot] == 0)
		{
			req->policy_cat_memo_why[slot] = policy_blocks(req, cand, p, scope);
			req->policy_cat_memo[slot] = req->policy_cat_memo_why[slot] ? 2 : 1;
		}
		return req->policy_cat_memo_why[slot];
	}
	return policy_blocks(req, cand, p, scope);
}

/* Drop the candidate at the contact policy stage: policy p blocks it (why). */
static void
drop_by_policy(const KRequest *req, KCandidate *cand, const KPolicy *p, const char *why)
{
	cand->dropped_stage = "contact_policy";
	cand->drop = KDROP_CONTACT_POLICY;
	cand->dropped_reason = !req->keep_reasons ? NULL : psprintf("%s (policy \"%s\")", why, p->name);
}

/*
 * What a policy class's bindings evaluated once per request or category give
 * its candidates in this request (KOffer.policy_class), for a contact_policy
 * node's policies (only): the allow_override exemptions, and the first of those
 * bindings that blocks.
 */
typedef struct KPolicyMemo
{
	const bool *only;			/* the policies it was found for (kaireon_apply_policies' only) */
	bool		exempt_all;
	json_t	   *exempt;			/* the policy types exempted from, NULL: none */
	int			blocking;		/* index into the offer's bound_policies, -1: none blocks */
	char	   *why;			/* its reason */
} KPolicyMemo;

/*
 * The contact policies for a candidate of a policy class, not mandatory: the
 * class's memo (made by its first candidate in the request) says which of the
 * bindings the same for the class blocks first; only the others, before it,
 * are evaluated for the candidate.  The first blocking binding is the one the
 * loop over all of them would find.
 */
static void
class_policies(KRequest *req, KCandidate *cand, const KOffer *offer, const bool *only)
{
	KPolicyMemo **slot = &req->policy_class_memo[offer->policy_class];
	KPolicyMemo *m = *slot;
	const KPolicy *policies = req->cfg->policies;
	const KPolicyBinding *bound = offer->bound_policies;
	int			end;

	if (m == NULL || m->only != only)
	{
		if (m == NULL)
			m = *slot = palloc(sizeof(KPolicyMemo));
		m->only = only;
		exemptions(req, offer, only, &m->exempt, &m->exempt_all);
		m->blocking = -1;
		m->why = NULL;
		for (int k = 0; k < offer->nbound_policies && !m->exempt_all; k++)
		{
			const KPolicy *p = &policies[bound[k].policy];

			if (!kaireon_binding_constant(&bound[k]) || policy_skipped(p, bound[k].policy, only, m->exempt, false))
				continue;
			m->why = binding_blocks(req, cand, &bound[k], p, &p->scopes[bound[k].scope]);
			if (m->why != NULL)
			{
				m->blocking = k;
				break;
			}
		}
	}
	if (m->exempt_all)
		return;
	end = m->blocking >= 0 ? m->blocking : offer->nbound_policies;
	/* none of the bindings evaluated per candidate can block an offer no event names */
	if (offer->own_need_offer_event && !offer_in_history(req->cust, cand))
		end = 0;
	/* the bindings evaluated per candidate (KOffer.own_policies), those before the class's blocking one */
	for (int j = 0; j < offer->nown_policies && offer->own_policies[j] < end; j++)
	{
		const KPolicyBinding b = bound[offer->own_policies[j]];
		const KPolicy *p = &policies[b.policy];
		char	   *why;

		if (policy_skipped(p, b.policy, only, m->exempt, false))
			continue;
		why = binding_blocks(req, cand, &b, p, &p->scopes[b.scope]);
		if (why != NULL)
		{
			drop_by_policy(req, cand, p, why);
			return;
		}
	}
	if (m->blocking >= 0)
		drop_by_policy(req, cand, &policies[bound[m->blocking].policy], m->why);
}

/*
 * Steps 6 and 7: consent, suppressions and contact policies, in priority
 * order; the first blocking one drops the candidate.  allow_override
 * policies covering the candidate exempt it from the others (or from the
 * types they list).  Only the policies bound to the offer at compile are
 * visited (KOffer.bound_policies, .bound_overrides); a candidate of a policy
 * class that is not mandatory goes through class_policies.  only: the policies
 * that apply at this point of a flow graph (a contact_policy node's, by policy
 * index, overrides included), NULL: every policy; consent and suppressions
 * always apply.
 */
void
kaireon_apply_policies(KRequest *req, KCandidate *cand, const bool *only)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];
	const KPolicy *policies = req->cfg->policies;
	const KPolicyBinding *bound = offer->bound_policies;
	const int	nbound = offer->nbound_policies;
	const bool	mandatory = cand->mandatory;
	json_t	   *exempt;
	bool		exempt_all;

	/* consent of the request's channel */
	if (req->channel >= 0 && req->cfg->channels[req->channel].consent_purpose != NULL &&
		req->cust->consent != NULL)
	{
		const char *purpose = req->cfg->channels[req->channel].consent_purpose;
		const char *status = kj_str(req->cust->consent, purpose);

		if (status != NULL && strcmp(status, "revoked") == 0)
		{
			cand->dropped_stage = "consent";
			cand->drop = KDROP_CONSENT;
			cand->dropped_reason = psprintf("consent for purpose \"%s\" is revoked", purpose);
			return;
		}
	}

	/* suppressions: mandatory offers are not held back by them */
	if (!cand->mandatory)
	{
		for (int i = 0; i < req->cust->nsuppressions; i++)
		{
			const KSuppression *s = &req->cust->suppressions[i];
			KScope		scope = {s->kind, s->id, -1};

			if (kaireon_scope_matches(req, &scope, offer))
			{
				cand->dropped_stage = "suppression";
				cand->drop = KDROP_SUPPRESSION;
				cand->dropped_reason = psprintf("suppressed at scope=%s%s%s", scope_text(&scope),
												s->reason ? ": " : "", s->reason ? s->reason : "");
				return;
			}
		}
	}

	if (!mandatory && offer->policy_class >= 0)
	{
		class_policies(req, cand, offer, only);
		return;
	}
	exemptions(req, offer, only, &exempt, &exempt_all);
	if (exempt_all)
		return;
	/* the loop's invariants are in locals, each binding copied: the compiler cannot keep them across the memos' stores */
	for (int k = 0; k < nbound; k++)
	{
		const KPolicyBinding b = bound[k];
		const KPolicy *p = &policies[b.policy];
		const KScope *scope;
		char	   *why;

		if (policy_skipped(p, b.policy, only, exempt, mandatory))
			continue;
		scope = covering_scope(req, &bound[k], offer);
		if (scope == NULL)
			continue;
		why = binding_blocks(req, cand, &b, p, scope);
		if (why != NULL)
		{
			drop_by_policy(req, cand, p, why);
			return;
		}
	}
}

/*
 * Step 8: volume constraints and budgets.  A cap whose scope covers the
 * candidate and that is used up removes it.  (Recording re-checks and takes
 * each unit atomically; see recommend.c.)
 */
void
kaireon_apply_caps(KRequest *req, KCandidate *cand)
{
	const KOffer *offer = &req->cfg->offers[cand->offer];

	for (int i = 0; i < req->cfg->ncaps; i++)
	{
		const KCap *c = &req->cfg->caps[i];
		char	   *why;

		if (!kaireon_cap_applies(req, c, offer))
			continue;
		if (c->kind == KCAP_VOLUME)
		{
			json_t	   *u = req->cap_usage ? json_object_get(req->cap_usage, c->id) : NULL;
			double		used = u ? kj_num(u, "used", 0) : 0;

			if (used >= c->max_volume)
			{
				cand->dropped_stage = "volume_constraint";
				cand->drop = KDROP_VOLUME;
				cand->dropped_reason = psprintf("volume constraint \"%s\" reached: %.0f/%lld %s",
												c->name ? c->name : c->id, used, (long long) c->max_volume, c->period);
				return;
			}
		}
		else if (budget_exhausted(req, c, NULL, 1.0, &why))
		{
			cand->dropped_stage = "budget";
			cand->drop = KDROP_BUDGET;
			cand->dropped_reason = psprintf("%s reached", why);
			return;
		}
	}
}
