/*
 * config/conditions.h
 *	  Conditions and scopes over the compiled configuration, without a
 *	  request: attribute paths, comparisons, the scope kinds that depend only
 *	  on the offer, and what eligibility.c precomputes per offer (conditions.c).
 *	  The request-dependent parts (segments, channel, customer attributes) are
 *	  in decision/rules.c.
 */
#ifndef KAIREON_CONFIG_CONDITIONS_H
#define KAIREON_CONFIG_CONDITIONS_H

#include "config/config.h"

extern json_t *kaireon_path(json_t *root, const char *path);
extern json_t *kaireon_offer_column(const KOffer *offer, const char *name, size_t len);
extern json_t *kaireon_offer_attribute(const KOffer *offer, const char *path);
extern bool kaireon_cond_holds(const KCond *cond, json_t *actual);
extern bool kaireon_parse_op(const char *name, KOp *op);
extern void *kaireon_compile_regex(const char *pattern);
extern void kaireon_parse_cond(json_t *conf, const char *path_key, const char *op_key, KCond *cond);
extern KExpr *kaireon_parse_expr(json_t *node, const char *cmp_field, const char *cmp_op, int depth);
extern void kaireon_precompute_offer_rule(KTenantConfig *cfg, KRule *rule);

/* The value of an expression's field (guardrails: offer.*, customer.*, ...; trigger rules: event.*, customer.*). */
typedef json_t *(*KFieldValue) (const char *field, void *arg);
extern bool kaireon_expr_holds(const KExpr *e, KFieldValue value, void *arg);
extern int8 *kaireon_static_applicability(KTenantConfig *cfg, int nscopes, const KScope *scopes);
extern bool kaireon_rule_may_act(const KRule *rule, int offer);
extern bool kaireon_policy_may_act(const KTenantConfig *cfg, const KPolicy *p, int offer);
extern int	kaireon_static_scope(const KPolicy *p, const KOffer *offer);
extern bool kaireon_policy_independent(const KPolicy *p, const KScope *scope);
extern bool kaireon_policy_per_category(const KPolicy *p);

/* A condition with the qualification rules' missing-value rule: missing passes. */
static inline bool
kaireon_cond_passes(const KCond *cond, json_t *actual)
{
	if (actual == NULL && cond->op != KOP_EXISTS && cond->op != KOP_NOT_EXISTS)
		return true;
	return kaireon_cond_holds(cond, actual);
}

/* Is a policy binding evaluated once per request or category (so the same for an offer's policy class)? */
static inline bool
kaireon_binding_constant(const KPolicyBinding *b)
{
	return b->independent || b->per_category;
}

/*
 * Does a policy block only a candidate whose offer an event of the customer
 * names (a cooldown; an outcome_based policy at offer level)?  Its verdict is
 * then "does not block" for every other offer (decision/policies.c).
 */
static inline bool
kaireon_policy_needs_offer_event(const KPolicy *p)
{
	return p->type == KPOL_COOLDOWN || (p->type == KPOL_OUTCOME_BASED && p->level == 0);
}

/* Does a rule's verdict depend only on the customer and the request (not on the candidate)? */
static inline bool
kaireon_rule_customer_only(const KRule *rule)
{
	return rule->type == KRULE_SEGMENT_REQUIRED || rule->type == KRULE_ATTRIBUTE_CONDITION ||
		rule->type == KRULE_METRIC_CONDITION;
}

/*
 * Does a scope of a kind that depends only on the offer (global, category,
 * sub-category, offer) cover it?  False for segment and channel scopes, which
 * depend on the request (decision/rules.c, kaireon_scope_matches).
 */
static inline bool
kaireon_scope_covers_offer(const KScope *scope, const KOffer *offer)
{
	switch (scope->kind)
	{
		case KSCOPE_GLOBAL:
			return true;
		case KSCOPE_CATEGORY:
			return scope->id && offer->category_id && strcmp(scope->id, offer->category_id) == 0;
		case KSCOPE_SUB_CATEGORY:
			return scope->id && offer->sub_category_id && strcmp(scope->id, offer->sub_category_id) == 0;
		case KSCOPE_OFFER:
			return scope->id && strcmp(scope->id, offer->id) == 0;
		default:
			return false;
	}
}

#endif							/* KAIREON_CONFIG_CONDITIONS_H */
