/*
 * config/validate_internal.h
 *	  Private interface of the validators of configuration documents by
 *	  kind: a rule type's spec, and what validate.c (the entry points and the
 *	  dispatch by kind) takes from validate_rules.c (the specs of
 *	  qualification rules and contact policies), validate_arbitration.c (the
 *	  specs of cross-offer constraints, the checks of arbitration profiles and
 *	  run volume constraints) and validate_expr.c (the guardrail expression
 *	  check and its prefixes).  Not for use outside src/config/validate*.c.
 */
#ifndef KAIREON_CONFIG_VALIDATE_INTERNAL_H
#define KAIREON_CONFIG_VALIDATE_INTERNAL_H

#include "config/types.h"
#include "config/validate.h"

/* A check over several fields of one rule type. */
typedef void (*CrossCheck) (json_t *config, ValidateCtx *ctx);

typedef struct RuleSpec
{
	const char *rule_type;
	const FieldSpec *fields;
	CrossCheck	check;
} RuleSpec;

/* ---- validate_rules.c ---- */

/* By KRuleType and KPolicyType (the names are the lists of config/types.h). */
extern const RuleSpec kaireon_qualification_specs[KRULE_NTYPES];
extern const RuleSpec kaireon_contact_specs[KPOL_NTYPES];

/* ---- validate_arbitration.c ---- */

/* Cross-offer constraints by rule type (channel_quota, category_cap, portfolio_budget; NULL-terminated). */
extern const RuleSpec kaireon_cross_offer_specs[];
/* Arbitration profile weights: PRIE weights, or EXP3-IX arms with gamma, eta and beta. */
extern void kaireon_check_profile(json_t *config, ValidateCtx *ctx);
/* runs.volume_constraints: maxTotal and per-offer, per-category, per-channel limits. */
extern void kaireon_check_run_limits(json_t *config, ValidateCtx *ctx);

/* ---- validate_expr.c ---- */

/* The field prefixes of a guardrail expression. */
extern const char *const kaireon_guardrail_prefixes[];
/* An expression node at path, depth levels down: all / any / not, or a comparison. */
extern void kaireon_check_guardrail_node(ValidateCtx *ctx, json_t *node, const char *path, int depth,
										 const char *const *prefixes, const char *const *operators);

#endif							/* KAIREON_CONFIG_VALIDATE_INTERNAL_H */
