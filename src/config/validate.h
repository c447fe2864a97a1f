/*
 * validate.h
 *	  Validation of JSON configuration columns (qualification rules, contact
 *	  policies, guardrail expressions, trigger rules, geofences) against the
 *	  shapes in docs/config.md and docs/triggers.md.
 */
#ifndef KAIREON_VALIDATE_H
#define KAIREON_VALIDATE_H

#include <math.h>

#include "util/json.h"

#include "commands/trigger.h"

/* JSON types a field may take (a bit mask) */
#define JT_STRING	0x01
#define JT_NUMBER	0x02		/* integer or real */
#define JT_INTEGER	0x04		/* integer, or real with an integral value */
#define JT_BOOLEAN	0x08
#define JT_ARRAY	0x10
#define JT_OBJECT	0x20
#define JT_NULL		0x40
#define JT_SCALAR	(JT_STRING | JT_NUMBER | JT_BOOLEAN)
#define JT_ANY		(JT_SCALAR | JT_ARRAY | JT_OBJECT | JT_NULL)

#define NO_BOUND	NAN

/* One field of a configuration object. */
typedef struct FieldSpec
{
	const char *name;
	int			types;			/* JT_* mask */
	bool		required;
	const char *const *choices; /* allowed strings (for strings and string arrays) */
	int			elem_types;		/* for arrays: allowed element types, 0 = any */
	double		min;			/* numbers: lower bound; arrays: min length */
	double		max;			/* numbers: upper bound; arrays: max length */
} FieldSpec;

/* Where a document is validated, for messages. */
typedef struct ValidateCtx
{
	const char *where;			/* e.g. "qualification_rules.config" */
	const char *rule_type;
	const char *doc;			/* the page the hint cites; NULL: docs/config.md */
} ValidateCtx;

#define FIELD_END {NULL, 0, false, NULL, 0, NO_BOUND, NO_BOUND}

extern void kaireon_check_fields(ValidateCtx *ctx, json_t *obj, const FieldSpec *fields);
extern void kaireon_check_expression(ValidateCtx *ctx, json_t *node, const char *const *prefixes,
									 const char *const *operators);
/* decision flows' version 1 pieces, reused by the version 2 nodes (flowgraph.c) */
extern const FieldSpec kaireon_flow_inventory_fields[];
extern const FieldSpec kaireon_flow_score_fields[];
extern const FieldSpec kaireon_flow_weight_fields[];
/* set by flowgraph.c: validates a version 2 decision flow (a graph) */
extern void (*kaireon_flow_graph_validator) (json_t *config, ValidateCtx *ctx);
extern void kaireon_config_error(ValidateCtx *ctx, const char *path, const char *problem) pg_attribute_noreturn();

/* The row a BEFORE INSERT OR UPDATE row trigger validates, and its text and jsonb columns. */
extern HeapTuple kaireon_trigger_new_row(FunctionCallInfo fcinfo, const char *name);
extern char *kaireon_trigger_text(TriggerData *td, HeapTuple tuple, const char *column);
extern json_t *kaireon_trigger_json(TriggerData *td, HeapTuple tuple, const char *column, const char *what);

/* journey.c: a journey's definition (22023 naming the journey and the step). */
extern void kaireon_validate_journey_definition(const char *journey, json_t *def);

/* Which configuration document is being checked. */
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
/* a stored trigger rule's or geofence's action checked as when written (22023 naming where) */
extern void kaireon_check_stored_action(const char *where, const char *action_type, json_t *config);
/* the longest cooldown of a trigger rule: 100 years of 365 days, in milliseconds */
#define KAIREON_MAX_COOLDOWN_MS INT64CONST(3153600000000)
extern void kaireon_customer_update_target(const char *tenant_id, const char *schema_name, json_t *attributes,
										   const char *where, char **table, char **key);

#endif							/* KAIREON_VALIDATE_H */
