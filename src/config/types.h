/*
 * config/types.h
 *	  The one list of each kind of type name: qualification rule types,
 *	  contact policy types, scope kinds and identifier types, as X-macros,
 *	  and the outcome classes.  Each list makes the C enum (config.h), the names the loader
 *	  (compile.c, eligibility.c) and the validator (validate_rules.c) match, and what the SQL
 *	  function kaireon_internal._type_names(kind) returns (types.c); the regress test
 *	  type_lists checks that the tables' CHECK constraints name exactly these.
 *
 * Adding a type: add its line here (the enum order is the list order), its
 * field table in validate_rules.c, its compilation in eligibility.c, its evaluation in
 * decision/rules.c or decision/policies.c, and the value to the table's
 * CHECK constraint in sql/install/ (the test fails until they agree).
 */
#ifndef KAIREON_CONFIG_TYPES_H
#define KAIREON_CONFIG_TYPES_H

#include "postgres.h"

/* Qualification rule types (qualification_rules.rule_type). */
#define KAIREON_QUALIFICATION_TYPES(X) \
	X(KRULE_SEGMENT_REQUIRED, "segment_required") \
	X(KRULE_ATTRIBUTE_CONDITION, "attribute_condition") \
	X(KRULE_PROPENSITY_THRESHOLD, "propensity_threshold") \
	X(KRULE_RECENCY_CHECK, "recency_check") \
	X(KRULE_METRIC_CONDITION, "metric_condition") \
	X(KRULE_OFFER_ATTRIBUTE, "offer_attribute")

/* Contact policy types (contact_policies.rule_type). */
#define KAIREON_POLICY_TYPES(X) \
	X(KPOL_FREQUENCY_CAP, "frequency_cap") \
	X(KPOL_COOLDOWN, "cooldown") \
	X(KPOL_BUDGET_EXHAUSTED, "budget_exhausted") \
	X(KPOL_OUTCOME_BASED, "outcome_based") \
	X(KPOL_SEGMENT_EXCLUSION, "segment_exclusion") \
	X(KPOL_TIME_WINDOW, "time_window") \
	X(KPOL_MUTUAL_EXCLUSION, "mutual_exclusion") \
	X(KPOL_CATEGORY_SUPPRESSION, "category_suppression") \
	X(KPOL_CROSS_CHANNEL_CAP, "cross_channel_cap") \
	X(KPOL_CUSTOMER_TOTAL_CAP, "customer_total_cap") \
	X(KPOL_OFFER_CATEGORY_CAP, "offer_category_cap") \
	X(KPOL_ALLOW_OVERRIDE, "allow_override") \
	X(KPOL_METRIC_CONDITION, "metric_condition")

/*
 * Scope kinds of rules and policies (the scope columns of qualification_rules,
 * qualification_rule_scopes, contact_policies, contact_policy_scopes; the
 * scope columns of suppressions, caps and constraints allow a subset).
 */
#define KAIREON_SCOPE_KINDS(X) \
	X(KSCOPE_GLOBAL, "global") \
	X(KSCOPE_SEGMENT, "segment") \
	X(KSCOPE_CHANNEL, "channel") \
	X(KSCOPE_CATEGORY, "category") \
	X(KSCOPE_SUB_CATEGORY, "sub_category") \
	X(KSCOPE_OFFER, "offer")

/*
 * Identifier types of identity links (identity_links.identifier_type): what a
 * request's identifierType names (decision/identity.c, docs/identity.md).
 */
#define KAIREON_IDENTIFIER_TYPES(X) \
	X(KIDENT_EMAIL, "email") \
	X(KIDENT_PHONE, "phone") \
	X(KIDENT_SESSION, "session") \
	X(KIDENT_DEVICE, "device") \
	X(KIDENT_COOKIE, "cookie") \
	X(KIDENT_CUSTOMER_ID, "customer_id") \
	X(KIDENT_EXTERNAL, "external")

#define KAIREON_TYPE_ENUM(e, name) e,
#define KAIREON_TYPE_COUNT(e, name) + 1

typedef enum KRuleType
{
	KAIREON_QUALIFICATION_TYPES(KAIREON_TYPE_ENUM)
} KRuleType;

typedef enum KPolicyType
{
	KAIREON_POLICY_TYPES(KAIREON_TYPE_ENUM)
} KPolicyType;

typedef enum KScopeKind
{
	KAIREON_SCOPE_KINDS(KAIREON_TYPE_ENUM)
} KScopeKind;

/* The length of each list (not enumerators, so that switches need not name them). */
#define KRULE_NTYPES (0 KAIREON_QUALIFICATION_TYPES(KAIREON_TYPE_COUNT))
#define KPOL_NTYPES (0 KAIREON_POLICY_TYPES(KAIREON_TYPE_COUNT))
#define KSCOPE_NKINDS (0 KAIREON_SCOPE_KINDS(KAIREON_TYPE_COUNT))
#define KIDENT_NTYPES (0 KAIREON_IDENTIFIER_TYPES(KAIREON_TYPE_COUNT))

/* The names of each list, by enum value, NULL-terminated (types.c). */
extern const char *const kaireon_qualification_type_names[];
extern const char *const kaireon_policy_type_names[];
extern const char *const kaireon_scope_names[];
extern const char *const kaireon_identifier_type_names[];

/* The position of name in a NULL-terminated list of names, or -1 (also for NULL). */
extern int	kaireon_type_index(const char *const *names, const char *name);

/*
 * The classification of an outcome type (outcome_types.classification):
 * the sign is the class, so it can be compared and used as an index offset.
 */
typedef enum KaireonOutcomeClass
{
	KAIREON_OUTCOME_NEGATIVE = -1,
	KAIREON_OUTCOME_NEUTRAL = 0,
	KAIREON_OUTCOME_POSITIVE = 1
} KaireonOutcomeClass;

#endif							/* KAIREON_CONFIG_TYPES_H */
