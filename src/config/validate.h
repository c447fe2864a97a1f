/*
 * validate.h
 *	  Validation of JSON configuration columns (qualification rules, contact
 *	  policies, guardrail expressions, trigger rules, geofences) against the
 *	  shapes in docs/config.md and docs/triggers.md: the shared field checks
 *	  (fieldspec.c; its header fieldspec.h is included here), the documents
 *	  by kind (validate.c and its family validate_*.c), trigger rules and
 *	  geofences (trigger_rules.c), journeys (journey.c).
 */
#ifndef KAIREON_VALIDATE_H
#define KAIREON_VALIDATE_H

#include "config/fieldspec.h"

/* validate_expr.c: the guardrail expression language */
extern const char *const kaireon_expression_operators[];	/* every operator of the expression language */
extern void kaireon_check_expression(ValidateCtx *ctx, json_t *node, const char *const *prefixes,
									 const char *const *operators);
/* validate.c: decision flows' version 1 pieces, reused by the version 2 nodes (flowgraph.c) */
extern const FieldSpec kaireon_flow_inventory_fields[];
extern const FieldSpec kaireon_flow_score_fields[];
extern const FieldSpec kaireon_flow_weight_fields[];
/* set by flowgraph.c: validates a version 2 decision flow (a graph) */
extern void (*kaireon_flow_graph_validator) (json_t *config, ValidateCtx *ctx);

/* journey.c: a journey's definition (22023 naming the journey and the step). */
extern void kaireon_validate_journey_definition(const char *journey, json_t *def);

/* validate.c: which configuration document is being checked, and its check by kind */
typedef enum KaireonConfigKind
{
	KCONF_QUALIFICATION_RULE,
	KCONF_CONTACT_POLICY,
	KCONF_GUARDRAIL,
	KCONF_DECISION_FLOW,
	KCONF_OFFER_SCHEDULE,
	KCONF_CROSS_OFFER_CONSTRAINT,
	KCONF_ARBITRATION_PROFILE,
	KCONF_RUN_VOLUME_CONSTRAINTS
} KaireonConfigKind;

extern bool kaireon_config_kind_from_name(const char *name, KaireonConfigKind *kind);
extern bool kaireon_config_rule_type_known(KaireonConfigKind kind, const char *rule_type);
extern void kaireon_validate_config(KaireonConfigKind kind, const char *rule_type,
									json_t *config, const char *where);
/* trigger_rules.c: a stored trigger rule's or geofence's action checked as when written (22023 naming where) */
extern void kaireon_check_stored_action(const char *where, const char *action_type, json_t *config);
/* the longest cooldown of a trigger rule: 100 years of 365 days, in milliseconds */
#define KAIREON_MAX_COOLDOWN_MS INT64CONST(3153600000000)
extern void kaireon_customer_update_target(const char *tenant_id, const char *schema_name, json_t *attributes,
										   const char *where, char **table, char **key);

#endif							/* KAIREON_VALIDATE_H */
