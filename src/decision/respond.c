/*
 * respond.c
 *	  kaireon.respond / respond_json / respond_bulk (spec section 5): record
 *	  an outcome of a decision and learn from it, in the caller's transaction.
 *
 * An outcome is resolved to its decision by recommendation id and rank (or
 * by creative or offer id), checked against the tenant's registered outcome
 * types, and is idempotent on an idempotency key: the key's row in
 * kaireon.respond_idempotency is inserted first, so a concurrent duplicate
 * waits for the first and then returns the first's result, writing nothing.
 * Then, in one transaction: the interaction row, an outbox event (topic
 * interaction.recorded), adaptive propensity counts (offer, category,
 * channel, global), budget conversions for positive outcomes, the impression
 * mirror for impressions, suppressions from outcome_based policies, the
 * journey enrolments waiting for the outcome woken (decision/wake.c), and the
 * tenant's trigger rules on the outcome (decision/triggers.c).
 * respond_bulk runs each item in a subtransaction: a bad item is reported and
 * the good ones are kept.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "storage/backendid.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "util/ids.h"
#include "util/spi.h"
#include "util/subxact.h"
#include "arbitration/hooks.h"
#include "decision/decision.h"
#include "scoring/scoring.h"
#include "security/session.h"

/* The largest conversion value respond accepts (the interaction_history CHECK agrees). */
#define KAIREON_MAX_CONVERSION_VALUE 1e15

PG_FUNCTION_INFO_V1(kaireon_respond);
PG_FUNCTION_INFO_V1(kaireon_respond_json);
PG_FUNCTION_INFO_V1(kaireon_respond_bulk);

/* Most items of one respond_bulk call. */
#define KAIREON_BULK_MAX 1000

/* An idempotency key's length in characters (respond_idempotency's CHECK agrees). */
#define KAIREON_IDEMPOTENCY_KEY_MAX 200

/* The most characters of a value quoted in a message. */
#define KAIREON_SHOWN_MAX 40

typedef struct RespondArgs
{
	const char *json;			/* from respond_json / respond_bulk: the request's name ("request",
								 * "items[3]"), to name fields by their JSON keys; else NULL */
	const char *tenant_id;
	const char *customer_id;	/* as given; respond_one sets the canonical customer (identity.c) */
	const char *identifier_type;	/* JSON forms: what customer_id is (identifierType), or NULL: any */
	const char *customer_key;	/* JSON forms: the key the customer was given under (customerId, sessionId) */
	const char *outcome;
	const char *recommendation_id;
	bool		has_rank;
	int			rank;
	const char *placement_id;
	const char *creative_id;
	const char *offer_id;
	const char *idempotency_key;
	bool		has_value;
	double		conversion_value;
	json_t	   *context;
	bool		has_occurred_at;
	TimestampTz occurred_at;
	const char *occurred_key;	/* JSON forms: the key occurred_at came from (occurredAt, timestamp) */
	const char *channel_id;		/* JSON forms: the outcome's channel (checked against the decision's) */
	const char *direction;		/* JSON forms: "inbound" or "outbound" (NULL: outbound) */
} RespondArgs;

/* The decision an outcome belongs to. */
typedef struct Resolved
{
	const char *offer_id;
	const char *creative_id;
	const char *channel_id;
	const char *placement_id;
	const char *flow_id;
	int			rank;			/* 0: the outcome names no ranked decision */
	const char *category_id;
	const char *model_key;		/* the decision's model (learns from the outcome), or NULL */
	json_t	   *decision_context;	/* the decision's request context */
} Resolved;

/* Raise 22023 for a bad field of the request: what, the problem, a hint. */
static void
bad(const char *what, const char *problem, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s %s", what, problem),
			 errhint("%s", hint)));
}

/* Raise 22004 for a missing required value. */
static void
missing(const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", what),
			 errhint("%s", hint)));
}

/* A value as a message quotes it: its first KAIREON_SHOWN_MAX characters, "..." when cut. */
static const char *
shown(const char *s)
{
	int			len = strlen(s);
	int			cut = pg_mbcharcliplen(s, len, KAIREON_SHOWN_MAX);

	return cut < len ? psprintf("%.*s...", cut, s) : s;
}

/* Run a statement with text/other parameters; returns SPI_processed. */
static uint64
exec(const char *sql, int n, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = kspi_execute_with_args(sql, n, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "kaireon: respond statement failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* A text datum, or a null marker. */
static Datum
txt(const char *s, char *null)
{
	if (s == NULL)
	{
		*null = 'n';
		return (Datum) 0;
	}
	*null = ' ';
	return CStringGetTextDatum(s);
}

/* Column value of the first result row as a C string (NULL when null). */
static char *
col(int n)
{
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, n);
}

/* Find the decision: by recommendation id (and rank, offer or creative), else by creative or offer. */
static void
resolve(KTenantConfig *cfg, RespondArgs *a, Resolved *r)
{
	memset(r, 0, sizeof(Resolved));
	if (a->recommendation_id != NULL)
	{
		Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID};
		Datum		v[7];
		char		nulls[8] = "       ";
		uint64		n;

		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(a->recommendation_id);
		v[2] = CStringGetTextDatum(a->customer_id);
		v[3] = Int32GetDatum(a->rank);
		if (!a->has_rank)
			nulls[3] = 'n';
		v[4] = txt(a->offer_id, &nulls[4]);
		v[5] = txt(a->creative_id, &nulls[5]);
		v[6] = txt(a->placement_id, &nulls[6]);
		n = exec("SELECT offer_id, creative_id, channel_id, placement_id, decision_flow_id, rank, model_key, context "
				 "  FROM kaireon.interaction_history "
				 " WHERE tenant_id = $1 AND recommendation_id = $2 AND customer_id = $3 "
				 "   AND interaction_type = 'recommendation' "
				 "   AND ($4::int IS NULL OR rank = $4) AND ($5::text IS NULL OR offer_id = $5) "
				 "   AND ($6::text IS NULL OR creative_id = $6) AND ($7::text IS NULL OR placement_id = $7) "
				 " ORDER BY rank LIMIT 2",
				 7, types, v, nulls, SPI_OK_SELECT);
		if (n == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("recommendation \"%s\"%s%s has no decision for customer \"%s\" of tenant \"%s\"",
							a->recommendation_id, a->has_rank ? psprintf(" rank %d", a->rank) : "",
							a->placement_id ? psprintf(" in placement \"%s\"", a->placement_id) : "",
							a->customer_id, cfg->tenant_id),
					 errhint("Pass the recommendation_id and rank returned by kaireon.recommend (dry runs record nothing).")));
		if (n > 1)
			bad("recommendation_id", psprintf("\"%s\" has several decisions", a->recommendation_id),
				"Pass rank and, for a request with several placements, placement_id (or offer_id / creative_id) to say which one the outcome is for.");
		r->offer_id = col(1);
		r->creative_id = col(2);
		r->channel_id = col(3);
		r->placement_id = col(4);
		r->flow_id = col(5);
		r->rank = col(6) ? atoi(col(6)) : 0;	/* a row written by hand may lack its rank */
		r->model_key = col(7);
		r->decision_context = r->model_key ? kj_parse(col(8), strlen(col(8)), "interaction_history.context") : NULL;
	}
	else if (a->creative_id != NULL)
	{
		int			k = -1;

		for (int i = 0; i < cfg->ncreatives; i++)
			if (strcmp(cfg->creatives[i].id, a->creative_id) == 0)
				k = i;
		if (k < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("creative \"%s\" does not exist for tenant \"%s\"", a->creative_id, cfg->tenant_id),
					 errhint("Pass the id of an active creative.")));
		r->creative_id = cfg->creatives[k].id;
		r->offer_id = cfg->offers[cfg->creatives[k].offer].id;
		r->channel_id = cfg->creatives[k].channel_id;
		r->placement_id = cfg->creatives[k].placement_id;
		if (a->offer_id != NULL && strcmp(a->offer_id, r->offer_id) != 0)
			bad("offer_id", psprintf("\"%s\" is not the offer of creative \"%s\"", a->offer_id, a->creative_id),
				"Pass the creative's own offer, or only the creative.");
	}
	else if (a->offer_id != NULL)
	{
		if (kaireon_find_offer(cfg, a->offer_id) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("offer \"%s\" does not exist for tenant \"%s\"", a->offer_id, cfg->tenant_id),
					 errhint("Pass the id of an offer that is not deleted.")));
		r->offer_id = a->offer_id;
	}
	else
		bad("respond", "needs a recommendation_id, a creative_id or an offer_id",
			"Pass the recommendation_id and rank that kaireon.recommend returned.");
	/* channelId (JSON forms): the decision's channel, or the channel of an outcome without one */
	if (a->channel_id != NULL && r->channel_id != NULL && strcmp(a->channel_id, r->channel_id) != 0)
		bad(psprintf("%s.channelId", a->json),
			psprintf("\"%s\" is not the channel of the decision (\"%s\")", a->channel_id, r->channel_id),
			"Pass the channel the decision was made for, or leave channelId out.");
	if (a->channel_id != NULL && r->channel_id == NULL)
	{
		if (kaireon_find_channel(cfg, a->channel_id) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("channel \"%s\" does not exist for tenant \"%s\"", a->channel_id, cfg->tenant_id),
					 errhint("Pass the id of a kaireon.channels row of the tenant.")));
		r->channel_id = a->channel_id;
	}
	if (r->offer_id != NULL)
	{
		int			o = kaireon_find_offer(cfg, r->offer_id);

		if (o >= 0)
			r->category_id = cfg->offers[o].category_id;
	}
}

/* Suppressions an outcome_based policy prescribes for this outcome. */
static void
add_suppressions(KTenantConfig *cfg, RespondArgs *a, Resolved *r, const char *interaction_id)
{
	KRequest	req;
	KCustomer	cust;
	int			o = r->offer_id ? kaireon_find_offer(cfg, r->offer_id) : -1;

	memset(&req, 0, sizeof(req));
	memset(&cust, 0, sizeof(cust));
	req.cfg = cfg;
	req.cust = &cust;			/* no segment state: segment-scoped policies do not apply here */
	req.channel_id = r->channel_id;
	for (int i = 0; i < cfg->npolicies; i++)
	{
		const KPolicy *p = &cfg->policies[i];
		bool		covers = false;
		const char *scope = "global";
		const char *scope_id = NULL;
		Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, FLOAT8OID, TIMESTAMPTZOID};
		Datum		v[8];
		char		nulls[9] = "        ";

		if (p->type != KPOL_OUTCOME_BASED || !kj_array_has_string(p->outcomes, a->outcome))
			continue;
		for (int k = 0; k < p->nscopes && !covers; k++)
			covers = p->scopes[k].kind == KSCOPE_GLOBAL ||
				(o >= 0 && kaireon_scope_matches(&req, &p->scopes[k], &cfg->offers[o]));
		if (!covers)
			continue;
		if (p->level == 0 && r->offer_id)
		{
			scope = "offer";
			scope_id = r->offer_id;
		}
		else if (p->level == 1 && r->category_id)
		{
			scope = "category";
			scope_id = r->category_id;
		}
		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(a->customer_id);
		v[2] = CStringGetTextDatum(scope);
		v[3] = txt(scope_id, &nulls[3]);
		v[4] = CStringGetTextDatum(p->id);
		v[5] = CStringGetTextDatum(psprintf("outcome %s (interaction %s)", a->outcome, interaction_id));
		v[6] = Float8GetDatum(p->hours);
		v[7] = TimestampTzGetDatum(a->occurred_at);
		exec("INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, scope_id, policy_id, reason, expires_at) "
			 "VALUES ($1, $2, $3, $4, $5, $6, $8 + make_interval(secs => $7 * 3600))",
			 8, types, v, nulls, SPI_OK_INSERT);
	}
}

/* The name of an argument in messages: its JSON key within the request, or its SQL name. */
static const char *
field_name(const RespondArgs *a, const char *key, const char *arg)
{
	return a->json ? psprintf("%s.%s", a->json, key) : arg;
}

/* Record one outcome; the result as a JSON object. */
static json_t *
respond_one(RespondArgs *a)
{
	KTenantConfig *cfg;
	Resolved	r;
	bool		found;
	KaireonOutcomeClass cls;
	KIdentity	identity;
	char	   *interaction_id = kaireon_new_uuid();
	json_t	   *result;
	MemoryContext mcxt = CurrentMemoryContext;
	int			nest;
	static const char *const class_names[] = {"negative", "neutral", "positive"};	/* by cls + 1 */

	if (a->tenant_id == NULL)
		missing(field_name(a, "tenantId", "tenant_id"), "Pass the tenant id.");
	if (a->customer_id == NULL)
		missing(field_name(a, "customerId", "customer_id"), "Pass the customer id.");
	if (a->outcome == NULL)
		missing(field_name(a, "outcome", "outcome"), "Pass a registered outcome type key such as click.");
	if (a->has_rank && (a->rank < 1 || a->rank > 50))
		bad(field_name(a, "rank", "rank"), psprintf("must be from 1 to 50, not %d", a->rank),
			"Pass the rank kaireon.recommend returned.");
	/* NaN and Infinity would flow into budgets, summaries and CLV (docs/recommend.md) */
	if (a->has_value && !isfinite(a->conversion_value))
		bad(field_name(a, "conversionValue", "conversion_value"),
			psprintf("must be a finite number, not %s",
					 isnan(a->conversion_value) ? "NaN" : a->conversion_value > 0 ? "Infinity" : "-Infinity"),
			"Pass the value of the conversion as a finite number, or leave it null.");
	/* bounded too: sums of them (summaries, CLV) must stay finite numbers */
	if (a->has_value && fabs(a->conversion_value) > KAIREON_MAX_CONVERSION_VALUE)
		bad(field_name(a, "conversionValue", "conversion_value"),
			psprintf("must be between -1e15 and 1e15, not %g", a->conversion_value),
			"Pass the value of the conversion in the tenant's currency units.");
	if (a->context == NULL)
		a->context = json_object();
	if (!json_is_object(a->context))
		bad(field_name(a, "context", "context"), psprintf("must be a JSON object, not %s", kj_type_name(a->context)),
			"Pass the outcome context as a JSON object.");
	/* infinity would be recorded, and enrol a trigger rule's journey at a time never due */
	if (a->has_occurred_at && TIMESTAMP_NOT_FINITE(a->occurred_at))
		bad(field_name(a, a->occurred_key ? a->occurred_key : "occurredAt", "occurred_at"),
			psprintf("must be a finite time, not %s", TIMESTAMP_IS_NOBEGIN(a->occurred_at) ? "-infinity" : "infinity"),
			"Pass the time the outcome occurred, or leave it out for the transaction's time.");
	if (!a->has_occurred_at)
		a->occurred_at = GetCurrentTransactionStartTimestamp();
	/* checked here, not left to respond_idempotency's CHECK: the error names the field */
	if (a->idempotency_key != NULL &&
		(a->idempotency_key[0] == '\0' || pg_mbstrlen(a->idempotency_key) > KAIREON_IDEMPOTENCY_KEY_MAX))
		bad(field_name(a, "idempotencyKey", "idempotency_key"),
			psprintf("\"%s\" must be 1 to %d characters long, not %d", shown(a->idempotency_key),
					 KAIREON_IDEMPOTENCY_KEY_MAX, pg_mbstrlen(a->idempotency_key)),
			"Pass a key of 1 to 200 characters, the same one for every retry of the outcome, or leave it null.");

	kaireon_check_tenant_access(a->tenant_id);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	/* once for all of the outcome's statements, which then find it pinned (util/spi.c) */
	nest = kspi_pin_search_path();
	MemoryContextSwitchTo(mcxt);
	cfg = kaireon_config_get(a->tenant_id);
	/* the canonical customer of the identifier given, before anything reads it (identity.c) */
	kaireon_resolve_identity(cfg, a->customer_id, a->identifier_type,
							 field_name(a, a->customer_key ? a->customer_key : "customerId", "customer_id"), &identity);
	a->customer_id = identity.customer_id;
	kaireon_identity_note(a->context, &identity, field_name(a, "context", "context"));

	/* idempotency: the first writer of a key wins; a duplicate returns the first's result */
	if (a->idempotency_key != NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		v[3];

		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(a->idempotency_key);
		v[2] = CStringGetTextDatum(interaction_id);
		if (exec("INSERT INTO kaireon.respond_idempotency (tenant_id, idempotency_key, interaction_id) "
				 "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", 3, types, v, NULL, SPI_OK_INSERT) == 0)
		{
			bool		isnull;
			Datum		d;

			exec("SELECT result FROM kaireon.respond_idempotency WHERE tenant_id = $1 AND idempotency_key = $2",
				 2, types, v, NULL, SPI_OK_SELECT);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			result = kj_from_jsonb(DatumGetJsonbP(d), "recorded result");
			json_object_set_new(result, "duplicate", json_true());
			kspi_unpin_search_path(nest);
			SPI_finish();
			MemoryContextSwitchTo(mcxt);
			return result;
		}
	}

	/* checked after the idempotency key: a duplicate gets the first answer even if the
	 * decision or the outcome type changed since */
	cls = kaireon_outcome_class(cfg, a->outcome, &found);
	if (!found)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("outcome \"%s\" is not a registered outcome type of tenant \"%s\"", a->outcome, cfg->tenant_id),
				 errhint("Use a key of kaireon.outcome_types (impression, click, conversion, dismiss, ...).")));
	resolve(cfg, a, &r);

	/* the interaction row */
	{
		Oid			types[17] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID, JSONBOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
		Datum		v[17];
		char		nulls[18] = "                 ";

		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(interaction_id);
		v[2] = CStringGetTextDatum(a->customer_id);
		v[3] = CStringGetTextDatum(a->outcome);
		v[4] = txt(a->recommendation_id, &nulls[4]);
		v[5] = Int32GetDatum(r.rank);
		if (r.rank == 0)
			nulls[5] = 'n';
		v[6] = txt(r.offer_id, &nulls[6]);
		v[7] = txt(r.creative_id, &nulls[7]);
		v[8] = txt(r.channel_id, &nulls[8]);
		v[9] = txt(r.placement_id, &nulls[9]);
		v[10] = txt(r.flow_id, &nulls[10]);
		v[11] = txt(a->idempotency_key, &nulls[11]);
		if (a->has_value)
			v[12] = DirectFunctionCall1(float8_numeric, Float8GetDatum(a->conversion_value));
		else
			nulls[12] = 'n';
		v[13] = DirectFunctionCall1(jsonb_in, CStringGetDatum(kj_dump(a->context, JSON_COMPACT)));
		v[14] = TimestampTzGetDatum(a->occurred_at);
		v[15] = txt(r.model_key, &nulls[15]);
		v[16] = CStringGetTextDatum(a->direction ? a->direction : "outbound");
		exec("INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, "
			 "  outcome_type_key, recommendation_id, rank, offer_id, creative_id, channel_id, placement_id, "
			 "  decision_flow_id, deduplication_id, conversion_value, context, occurred_at, model_key, direction) "
			 "VALUES ($1, $2, $3, 'outcome', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
			 17, types, v, nulls, SPI_OK_INSERT);
	}

	result = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:s?,s:s?,s:s?,s:o,s:b}",
					   "interactionId", interaction_id,
					   "outcome", a->outcome,
					   "classification", class_names[cls + 1],
					   "recommendationId", a->recommendation_id,
					   "offerId", r.offer_id,
					   "creativeId", r.creative_id,
					   "channelId", r.channel_id,
					   "placementId", r.placement_id,
					   "rank", r.rank > 0 ? json_integer(r.rank) : json_null(),
					   "duplicate", false);
	if (a->idempotency_key)
		json_object_set_new(result, "idempotencyKey", json_string(a->idempotency_key));
	if (identity.resolved)
	{
		json_object_set_new(result, "customerId", json_string(identity.customer_id));
		json_object_set_new(result, "resolvedFrom", kaireon_identity_json(&identity));
	}

	/* the decision's model learns from the outcome (bandits, naive Bayes) */
	if (r.model_key != NULL)
	{
		json_object_set_new(result, "modelKey", json_string(r.model_key));
		json_object_set_new(result, "modelLearned",
							json_boolean(kaireon_learn_outcome(cfg, r.model_key, r.offer_id, r.channel_id, a->customer_id,
															   r.flow_id, r.decision_context, cls)));
	}

	/* EXP3-IX: a positive outcome rewards the decision's arm (arbitration/exp3.c) */
	karb_respond(cfg, a->recommendation_id, a->customer_id, r.offer_id, r.placement_id, cls, result);

	/* the outbox event, in the same transaction */
	{
		Oid			types[2] = {TEXTOID, JSONBOID};
		Datum		v[2];
		json_t	   *payload = json_deep_copy(result);

		json_object_set_new(payload, "tenantId", json_string(cfg->tenant_id));
		json_object_set_new(payload, "customerId", json_string(a->customer_id));
		json_object_set_new(payload, "occurredAt",
							json_string(timestamptz_to_str(a->occurred_at)));
		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = DirectFunctionCall1(jsonb_in, CStringGetDatum(kj_dump(payload, JSON_COMPACT | JSON_SORT_KEYS)));
		exec("INSERT INTO kaireon.outbox_events (tenant_id, topic, payload) VALUES ($1, 'interaction.recorded', $2)",
			 2, types, v, NULL, SPI_OK_INSERT);
	}

	/* adaptive propensity counts of the offer, its category, the channel and the tenant */
	if (cls != KAIREON_OUTCOME_NEUTRAL && r.offer_id != NULL)
	{
		Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, INT2OID, TIMESTAMPTZOID};
		Datum		v[7];
		char		nulls[8] = "       ";
		StringInfoData rows;

		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(r.offer_id);
		v[2] = txt(r.category_id, &nulls[2]);
		v[3] = txt(r.channel_id, &nulls[3]);
		v[4] = Int32GetDatum(cls == KAIREON_OUTCOME_POSITIVE ? 1 : 0);
		/* this backend's shard: concurrent responds update different rows of the hot scopes */
		v[5] = Int16GetDatum((int16) (MyBackendId % KAIREON_ADAPTATION_SHARDS));
		/* the time is a parameter: no function in the ON CONFLICT update (Citus needs that) */
		v[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		/* one row per scope the outcome has (plain VALUES: Citus sends it to the tenant's shard) */
		initStringInfo(&rows);
		appendStringInfoString(&rows, "($1, NULL, 'offer', $2, $6, $5, 1 - $5, $5, $7)");
		if (nulls[2] != 'n')
			appendStringInfoString(&rows, ", ($1, NULL, 'category', $3, $6, $5, 1 - $5, $5, $7)");
		if (nulls[3] != 'n')
			appendStringInfoString(&rows, ", ($1, NULL, 'channel', $4, $6, $5, 1 - $5, $5, $7)");
		appendStringInfoString(&rows, ", ($1, NULL, 'global', NULL, $6, $5, 1 - $5, $5, $7)");
		exec(psprintf("INSERT INTO kaireon.model_adaptations AS a (tenant_id, model_id, scope, scope_id, shard, positives, negatives, positive_rate, updated_at) "
			 "VALUES %s "
			 "ON CONFLICT (tenant_id, model_id, scope, scope_id, shard) DO UPDATE "
			 "   SET positives = a.positives + $5, negatives = a.negatives + 1 - $5, "
			 "       positive_rate = (a.positives + $5)::float8 / (a.positives + a.negatives + 1), "
			 "       updated_at = EXCLUDED.updated_at", rows.data),
			 7, types, v, nulls, SPI_OK_INSERT);
		cfg->adaptation = NULL;	/* this backend's next decision reads the new counts */
	}

	/* budget conversions for positive outcomes */
	if (cls == KAIREON_OUTCOME_POSITIVE && r.offer_id != NULL)
		kaireon_caps_count_conversion(cfg->tenant_id, r.offer_id, r.category_id, r.channel_id);

	/* the impression mirror */
	if (strcmp(a->outcome, "impression") == 0)
	{
		Oid			types[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
		Datum		v[8];
		char		nulls[9] = "        ";

		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = CStringGetTextDatum(a->customer_id);
		v[2] = txt(r.offer_id, &nulls[2]);
		v[3] = txt(r.creative_id, &nulls[3]);
		v[4] = txt(r.channel_id, &nulls[4]);
		v[5] = txt(r.placement_id, &nulls[5]);
		v[6] = txt(a->recommendation_id, &nulls[6]);
		v[7] = TimestampTzGetDatum(a->occurred_at);
		exec("INSERT INTO kaireon.impressions (tenant_id, customer_id, offer_id, creative_id, channel_id, "
			 "  placement_id, recommendation_id, occurred_at) "
			 "SELECT $1, $2, $3, $4, $5, $6, $7, $8",
			 8, types, v, nulls, SPI_OK_INSERT);
	}

	add_suppressions(cfg, a, &r, interaction_id);
	kaireon_stat_respond(cfg->tenant_id, r.channel_id, cls);

	/*
	 * the customer's journey enrolments waiting for this outcome wake up
	 * (decision/wake.c): no statement unless the tenant's journeys wait for
	 * this outcome type (the compiled configuration knows)
	 */
	{
		const char *event_types[1] = {a->outcome};
		int64		woken = kaireon_wake_journeys(cfg, a->customer_id, event_types, 1, a->occurred_at);

		if (woken > 0)
			json_object_set_new(result, "journeysWoken", json_integer((json_int_t) woken));
	}

	/* the trigger rules of the outcome (decision/triggers.c); cfg is not used after
	 * this: an action's decision may recompile the configuration */
	{
		json_t	   *event = json_deep_copy(result);
		json_t	   *fired;

		json_object_set_new(event, "interactionType", json_string("outcome"));
		json_object_set(event, "context", a->context);
		json_object_set_new(event, "occurredAt", json_string(timestamptz_to_str(a->occurred_at)));
		if (a->has_value)
			json_object_set_new(event, "conversionValue", json_real(a->conversion_value));
		json_object_del(event, "duplicate");
		json_object_del(event, "journeysWoken");
		fired = kaireon_fire_triggers(cfg, a->customer_id, a->outcome, event, a->occurred_at);
		if (json_array_size(fired) > 0)
			json_object_set_new(result, "triggers", fired);
	}

	/* what a duplicate of this key will answer */
	if (a->idempotency_key != NULL)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
		Datum		v[3];

		v[0] = CStringGetTextDatum(a->tenant_id);
		v[1] = CStringGetTextDatum(a->idempotency_key);
		v[2] = JsonbPGetDatum(kj_to_jsonb(result));
		exec("UPDATE kaireon.respond_idempotency SET result = $3 WHERE tenant_id = $1 AND idempotency_key = $2",
			 3, types, v, NULL, SPI_OK_UPDATE);
	}

	kspi_unpin_search_path(nest);
	SPI_finish();
	MemoryContextSwitchTo(mcxt);
	return result;
}

/*
 * A timestamptz from the text of the request field `what`, read by
 * timestamptz_in; its error is raised again naming the field, with its
 * SQLSTATE (22007 for text that is not a time, 22008 for a time out of range,
 * 22009 for an offset out of range) and a hint.  infinity is read
 * (respond_one refuses it).  Rethrowing at once is safe without a
 * subtransaction: timestamptz_in holds nothing the abort would not release.
 */
static TimestampTz
parse_timestamp(const char *text, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz result = 0;

	PG_TRY();
	{
		result = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(text),
														 ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(e->sqlerrcode),
				 errmsg("%s \"%s\" is not %s", what, shown(text),
						e->sqlerrcode == ERRCODE_INVALID_DATETIME_FORMAT ? "a time" : "a time in range"),
				 errdetail_internal("%s", e->message),
				 errhint("Send an ISO 8601 time with its offset, such as \"2026-03-01T09:30:00Z\".")));
	}
	PG_END_TRY();
	return result;
}

/*
 * Fill respond arguments from a JSON object (respond_json, respond_bulk
 * items).  KaireonAI's names are accepted too (docs/json-api.md): timestamp
 * (occurredAt), channelId, direction, outcomeDetails (kept in the recorded
 * context as its key outcomeDetails).
 */
static void
args_from_json(RespondArgs *a, json_t *obj, const char *what)
{
	static const char *const allowed[] = {
		"tenantId", "customerId", "sessionId", "identifierType", "outcome", "recommendationId", "rank", "placementId",
		"creativeId", "offerId", "idempotencyKey", "conversionValue", "context", "occurredAt", "timestamp",
		"channelId", "direction", "outcomeDetails", NULL
	};
	json_t	   *details;
	const char *key;
	json_t	   *v;

	if (!json_is_object(obj))
		bad(what, psprintf("must be a JSON object, not %s", kj_type_name(obj)),
			"Send {\"tenantId\": ..., \"customerId\": ..., \"outcome\": ..., \"recommendationId\": ..., \"rank\": ...}.");
	kj_known_keys(obj, allowed, what);
	json_object_foreach(obj, key, v)
	{
		if (strcmp(key, "rank") == 0 || strcmp(key, "conversionValue") == 0)
		{
			if (!json_is_number(v) && !json_is_null(v))
				bad(psprintf("%s.%s", what, key), psprintf("must be a number, not %s", kj_type_name(v)), "Use a JSON number.");
		}
		else if ((strcmp(key, "outcome") == 0 || strcmp(key, "occurredAt") == 0 || strcmp(key, "timestamp") == 0 ||
				  strcmp(key, "direction") == 0 || strcmp(key, "identifierType") == 0) &&
				 !json_is_string(v) && !json_is_null(v))
			bad(psprintf("%s.%s", what, key), psprintf("must be a string, not %s", kj_type_name(v)), "Use a JSON string.");
	}
	memset(a, 0, sizeof(RespondArgs));
	a->json = what;
	/* ids: strings, or integral JSON numbers taken as their decimal text (kj_id) */
	a->tenant_id = kj_id(obj, "tenantId", psprintf("%s.tenantId", what));
	a->customer_id = kj_id(obj, "customerId", psprintf("%s.customerId", what));
	a->identifier_type = kj_str(obj, "identifierType");
	{
		const char *session_id = kj_id(obj, "sessionId", psprintf("%s.sessionId", what));

		/* an anonymous visitor's session: the customer, or the customer it is linked to (identity.c) */
		if (a->customer_id == NULL && session_id != NULL)
		{
			if (a->identifier_type != NULL && strcmp(a->identifier_type, "session") != 0)
				bad(psprintf("%s.identifierType", what),
					psprintf("\"%s\" does not describe %s.sessionId", a->identifier_type, what),
					"identifierType says what customerId is; a sessionId given alone is of type session.");
			a->customer_id = session_id;
			a->identifier_type = "session";
			a->customer_key = "sessionId";
		}
	}
	a->outcome = kj_str(obj, "outcome");
	a->recommendation_id = kj_id(obj, "recommendationId", psprintf("%s.recommendationId", what));
	a->has_rank = json_is_number(json_object_get(obj, "rank"));
	a->rank = (int) kj_num(obj, "rank", 0);
	if (a->has_rank && kj_num(obj, "rank", 0) != a->rank)
		bad(psprintf("%s.rank", what), psprintf("must be an integer, not %g", kj_num(obj, "rank", 0)),
			"Pass the rank kaireon.recommend returned.");
	a->placement_id = kj_id(obj, "placementId", psprintf("%s.placementId", what));
	a->creative_id = kj_id(obj, "creativeId", psprintf("%s.creativeId", what));
	a->offer_id = kj_id(obj, "offerId", psprintf("%s.offerId", what));
	a->idempotency_key = kj_id(obj, "idempotencyKey", psprintf("%s.idempotencyKey", what));
	a->has_value = json_is_number(json_object_get(obj, "conversionValue"));
	a->conversion_value = kj_num(obj, "conversionValue", 0);
	a->context = json_object_get(obj, "context");
	if (kj_str(obj, "occurredAt"))
	{
		a->has_occurred_at = true;
		a->occurred_at = parse_timestamp(kj_str(obj, "occurredAt"), psprintf("%s.occurredAt", what));
		a->occurred_key = "occurredAt";
	}
	if (kj_str(obj, "timestamp"))
	{
		TimestampTz t = parse_timestamp(kj_str(obj, "timestamp"), psprintf("%s.timestamp", what));

		if (a->has_occurred_at && t != a->occurred_at)
			bad(psprintf("%s.occurredAt \"%s\" and %s.timestamp \"%s\"", what, kj_str(obj, "occurredAt"), what,
						 kj_str(obj, "timestamp")), "disagree",
				"They are aliases of one field: give one of them, or the same time in both.");
		if (!a->has_occurred_at)
			a->occurred_key = "timestamp";
		a->has_occurred_at = true;
		a->occurred_at = t;
	}
	a->channel_id = kj_id(obj, "channelId", psprintf("%s.channelId", what));
	a->direction = kj_str(obj, "direction");
	if (a->direction != NULL && strcmp(a->direction, "inbound") != 0 && strcmp(a->direction, "outbound") != 0)
		bad(psprintf("%s.direction", what), psprintf("must be \"inbound\" or \"outbound\", not \"%s\"", a->direction),
			"inbound: the customer reached out (a visit, a call); outbound: the outcome of a message sent.");
	details = json_object_get(obj, "outcomeDetails");
	if (details != NULL && !json_is_null(details))
	{
		if (!json_is_object(details))
			bad(psprintf("%s.outcomeDetails", what), psprintf("must be a JSON object, not %s", kj_type_name(details)),
				"Pass the outcome's details as {\"reason\": ..., ...}.");
		if (a->context == NULL || json_is_null(a->context))
			a->context = json_object();
		if (!json_is_object(a->context))
			bad(psprintf("%s.context", what), psprintf("must be a JSON object, not %s", kj_type_name(a->context)),
				"Pass the outcome context as a JSON object.");
		if (json_object_get(a->context, "outcomeDetails") != NULL &&
			!json_equal(json_object_get(a->context, "outcomeDetails"), details))
			bad(psprintf("%s.outcomeDetails and %s.context.outcomeDetails", what, what), "disagree",
				"Give the outcome's details once.");
		json_object_set(a->context, "outcomeDetails", details);
	}
}

/* A jsonb Datum in the caller's context from a JSON value. */
static Datum
to_jsonb_datum(json_t *v, MemoryContext target)
{
	char	   *text = kj_dump(v, JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
	MemoryContext old = MemoryContextSwitchTo(target);
	Datum		d = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));

	MemoryContextSwitchTo(old);
	return d;
}

/*
 * kaireon.respond(tenant_id, customer_id, outcome, recommendation_id, rank,
 * creative_id, offer_id, idempotency_key, conversion_value, context,
 * occurred_at, placement_id): record an outcome; returns what was recorded.
 */
Datum
kaireon_respond(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext callcxt = AllocSetContextCreate(outer, "kaireon respond", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(callcxt);
	RespondArgs a;
	Datum		result;

	memset(&a, 0, sizeof(a));
	a.tenant_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	a.customer_id = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	a.outcome = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	a.recommendation_id = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	a.has_rank = !PG_ARGISNULL(4);
	a.rank = a.has_rank ? PG_GETARG_INT32(4) : 0;
	a.creative_id = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	a.offer_id = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	a.idempotency_key = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
	a.has_value = !PG_ARGISNULL(8);
	if (a.has_value)
	{
		Numeric		n = PG_GETARG_NUMERIC(8);

		/* NaN and Infinity are refused in respond_one; so is what overflows a double */
		a.conversion_value = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, NumericGetDatum(n)));
		if (!isfinite(a.conversion_value) && !numeric_is_nan(n) && !numeric_is_inf(n))
			bad("conversion_value", "must be a finite number, not one beyond the range of double precision",
				"Pass the value of the conversion as a finite number, or leave it null.");
	}
	a.context = PG_ARGISNULL(9) ? NULL : kj_from_jsonb(PG_GETARG_JSONB_P(9), "context");
	a.has_occurred_at = !PG_ARGISNULL(10);
	if (a.has_occurred_at)
		a.occurred_at = PG_GETARG_TIMESTAMPTZ(10);
	a.placement_id = PG_ARGISNULL(11) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(11));

	result = to_jsonb_datum(respond_one(&a), outer);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	PG_RETURN_DATUM(result);
}

/*
 * The tenant_id argument of a tenant-first JSON entry point (NULL for the
 * request-only form, whose request names the tenant).
 */
static const char *
tenant_first_arg(FunctionCallInfo fcinfo)
{
	if (PG_NARGS() < 2)
		return NULL;
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be null"),
				 errhint("Pass the tenant id as the first argument.")));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*
 * kaireon.respond_json(request jsonb), and the tenant-first form
 * respond_json(tenant_id text, request jsonb): respond with a JSON request
 * (camelCase keys).
 */
Datum
kaireon_respond_json(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext callcxt;
	MemoryContext old;
	RespondArgs a;
	Datum		result;
	const char *tenant = tenant_first_arg(fcinfo);
	int			reqarg = PG_NARGS() - 1;
	json_t	   *req;

	if (PG_ARGISNULL(reqarg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("request must not be null"),
				 errhint("Send {\"tenantId\": ..., \"customerId\": ..., \"outcome\": ...}.")));
	callcxt = AllocSetContextCreate(outer, "kaireon respond_json", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);
	req = kj_from_jsonb(PG_GETARG_JSONB_P(reqarg), "request");
	if (tenant)
		kj_set_tenant(req, tenant, "request");
	args_from_json(&a, req, "request");
	result = to_jsonb_datum(respond_one(&a), outer);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	PG_RETURN_DATUM(result);
}

/* One respond_bulk item as a subtransaction's step. */
typedef struct BulkItem
{
	json_t	   *item;
	const char *tenant;			/* the tenant-first form's tenant, or NULL */
	size_t		index;
	json_t	   *result;
} BulkItem;

/* The step: the item's outcome recorded, its answer kept. */
static void
bulk_item_step(void *arg)
{
	BulkItem   *bi = (BulkItem *) arg;
	RespondArgs a;

	if (bi->tenant)
		kj_set_tenant(bi->item, bi->tenant, psprintf("items[%zu]", bi->index));
	args_from_json(&a, bi->item, psprintf("items[%zu]", bi->index));
	bi->result = respond_one(&a);
}

/*
 * kaireon.respond_bulk(request jsonb), and the tenant-first form
 * respond_bulk(tenant_id text, request jsonb), whose items all belong to
 * tenant_id: {"items": [...]} (or a bare array) of
 * 1 to 1000 respond_json requests.  Each item runs in a subtransaction: an
 * item that fails is reported with its SQLSTATE and message and leaves
 * nothing behind; the others are kept.
 */
Datum
kaireon_respond_bulk(PG_FUNCTION_ARGS)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext callcxt;
	MemoryContext old;
	json_t	   *req,
			   *items,
			   *results,
			   *item;
	size_t		i;
	int			ok = 0,
				failed = 0;
	Datum		result;

	const char *tenant = tenant_first_arg(fcinfo);
	int			reqarg = PG_NARGS() - 1;

	if (PG_ARGISNULL(reqarg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("request must not be null"),
				 errhint("Send {\"items\": [{...}, ...]}.")));
	callcxt = AllocSetContextCreate(outer, "kaireon respond_bulk", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);
	req = kj_from_jsonb(PG_GETARG_JSONB_P(reqarg), "request");
	if (json_is_object(req))
	{
		static const char *const allowed[] = {"items", NULL};

		kj_known_keys(req, allowed, "request");
	}
	items = json_is_array(req) ? req : json_object_get(req, "items");
	if (items == NULL || !json_is_array(items))
		bad("request", "must be an array of items or {\"items\": [...]}", "Send {\"items\": [{...}, ...]}.");
	if (json_array_size(items) < 1 || json_array_size(items) > KAIREON_BULK_MAX)
		bad("request.items", psprintf("must hold 1 to %d items, not %zu", KAIREON_BULK_MAX, json_array_size(items)),
			"Split larger batches.");

	results = json_array();
	json_array_foreach(items, i, item)
	{
		CHECK_FOR_INTERRUPTS();
		{
			BulkItem	bi = {item, tenant, i, NULL};
			ErrorData  *edata;

			MemoryContextSwitchTo(callcxt);
			edata = ksubxact_run(bulk_item_step, &bi);
			if (edata == NULL)
			{
				json_object_set_new(bi.result, "index", json_integer(i));
				json_object_set_new(bi.result, "ok", json_true());
				json_array_append_new(results, bi.result);
				ok++;
			}
			else
			{
				json_array_append_new(results, json_pack("{s:i,s:b,s:{s:s,s:s}}", "index", (int) i, "ok", false,
														 "error", "sqlstate", unpack_sql_state(edata->sqlerrcode),
														 "message", edata->message));
				FreeErrorData(edata);
				failed++;
			}
		}
	}
	result = to_jsonb_datum(json_pack("{s:i,s:i,s:o}", "accepted", ok, "failed", failed, "results", results), outer);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	PG_RETURN_DATUM(result);
}
