/*
 * recommend.c
 *	  SQL entry points of the decision: kaireon.recommend(...) returning rows,
 *	  and kaireon.recommend_json(request) in the REST shape of the source
 *	  system.  Both check their input first (SQLSTATE 22004 for a missing
 *	  argument, 22023 for a bad value, naming it), then run the pipeline
 *	  (kaireon_decide, decide.c) in a per-call memory context.
 */
#include "postgres.h"

#include <math.h>

#include "util/json.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "util/kept.h"
#include "decision/decision.h"

PG_FUNCTION_INFO_V1(kaireon_recommend);
PG_FUNCTION_INFO_V1(kaireon_recommend_json);

/* Raise 22023 for a bad request value. */
static void
bad_value(const char *what, const char *problem, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s %s", what, problem),
			 errhint("%s", hint)));
}

/* Raise 22004 for a missing required value. */
static void
missing(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", what),
			 errhint("kaireon.recommend needs a tenant, a customer and a channel.")));
}

/* A request field that must be a JSON array of strings (or absent). */
static json_t *
string_array(json_t *obj, const char *key, const char *what)
{
	json_t	   *v = json_object_get(obj, key);
	size_t		i;
	json_t	   *e;

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_array(v))
		bad_value(what, psprintf("must be an array of strings, not %s", kj_type_name(v)),
				  "Write it as [\"id-1\", \"id-2\"].");
	json_array_foreach(v, i, e)
		if (!json_is_string(e))
		bad_value(what, psprintf("must hold only strings, not %s", kj_type_name(e)),
				  "Write it as [\"id-1\", \"id-2\"].");
	return v;
}

/* A request field that must be a string (or absent). */
static const char *
string_field(json_t *obj, const char *key, const char *what)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v))
		bad_value(what, psprintf("must be a string, not %s", kj_type_name(v)), "Use a JSON string.");
	return json_string_value(v);
}

/* A request field that must be a boolean (or absent). */
static bool
bool_field(json_t *obj, const char *key, const char *what)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return false;
	if (!json_is_boolean(v))
		bad_value(what, psprintf("must be true or false, not %s", kj_type_name(v)), "Use a JSON boolean.");
	return json_is_true(v);
}

/* Check max_offers (1..50; 0 means the flow's default). */
static int
check_max_offers(double v, bool given)
{
	if (!given)
		return 0;
	if (v < 1 || v > 50 || v != (int) v)
		bad_value("max_offers", psprintf("must be an integer from 1 to 50, not %g", v),
				  "Ask for between 1 and 50 offers.");
	return (int) v;
}

/*
 * A request id given under one of several names (kaireon's first, then
 * KaireonAI's aliases): the value, or NULL; 22023 naming both when two of
 * them are given and disagree.
 */
static const char *
alias_id(json_t *req, const char *const *names)
{
	const char *val = NULL;
	const char *from = NULL;

	for (int i = 0; names[i] != NULL; i++)
	{
		const char *what = psprintf("request.%s", names[i]);
		const char *v = kj_id(req, names[i], what);

		if (v == NULL)
			continue;
		if (val != NULL && strcmp(val, v) != 0)
			bad_value(psprintf("request.%s \"%s\" and request.%s \"%s\"", from, val, names[i], v), "disagree",
					  "They are aliases of one field: give one of them, or the same value in both.");
		val = v;
		from = names[i];
	}
	return val;
}

/* A limit (1..50) given under a name: the limit, or 0 when absent. */
static int
limit_field(json_t *obj, const char *key, const char *what)
{
	json_t	   *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		bad_value(what, psprintf("must be a number, not %s", kj_type_name(v)), "Ask for 1 to 50 offers.");
	if (!isfinite(json_number_value(v)) || json_number_value(v) < 1 || json_number_value(v) > 50 ||
		json_number_value(v) != (int) json_number_value(v))
		bad_value(what, psprintf("must be an integer from 1 to 50, not %g", json_number_value(v)),
				  "Ask for between 1 and 50 offers.");
	return (int) json_number_value(v);
}

/* The request's limit: maxOffers or its alias limit (0: the flow's default). */
static int
request_limit(json_t *req)
{
	int			a = limit_field(req, "maxOffers", "request.maxOffers");
	int			b = limit_field(req, "limit", "request.limit");

	if (a > 0 && b > 0 && a != b)
		bad_value(psprintf("request.maxOffers %d and request.limit %d", a, b), "disagree",
				  "They are aliases of one field: give one of them, or the same value in both.");
	return a > 0 ? a : b;
}

/*
 * request.placements: placement ids, or KaireonAI's objects {placementId,
 * limit} (both forms may be mixed); fills args->placements and, when any
 * object gives a limit, args->placement_limits.
 */
static void
request_placements(KDecideArgs *args, json_t *v)
{
	static const char *const allowed[] = {"placementId", "limit", NULL};
	size_t		i;
	json_t	   *e;

	if (!json_is_array(v))
		bad_value("request.placements", psprintf("must be an array, not %s", kj_type_name(v)),
				  "Write it as [\"hero\", \"sidebar\"] or [{\"placementId\": \"hero\", \"limit\": 1}].");
	args->placement_limits = palloc0(sizeof(int) * Max(json_array_size(v), 1));
	json_array_foreach(v, i, e)
	{
		const char *what = psprintf("request.placements[%zu]", i);

		if (json_is_string(e))
			json_array_append(args->placements, e);
		else if (json_is_object(e))
		{
			const char *id;

			kj_known_keys(e, allowed, what);
			id = kj_id(e, "placementId", psprintf("%s.placementId", what));
			if (id == NULL)
				missing(psprintf("%s.placementId", what));
			json_array_append_new(args->placements, json_string(id));
			args->placement_limits[i] = limit_field(e, "limit", psprintf("%s.limit", what));
		}
		else
			bad_value(what, psprintf("must be a placement id or {\"placementId\": ..., \"limit\": ...}, not %s",
									 kj_type_name(e)),
					  "Write it as \"hero\" or {\"placementId\": \"hero\", \"limit\": 1}.");
	}
}

/* Set a key of the decision context from a request field; 22023 when the context gives it otherwise. */
static void
context_set(json_t *ctx, const char *key, json_t *value, const char *what)
{
	json_t	   *old = json_object_get(ctx, key);

	if (old != NULL && !json_equal(old, value))
		bad_value(psprintf("%s and request.context.%s", what, key), "disagree",
				  psprintf("Give %s once: in the request or in its context.", key));
	json_object_set(ctx, key, value);
}

/* Every number of a JSON value is finite (no NaN or Infinity). */
static void
finite_numbers(json_t *v, const char *what)
{
	size_t		i;
	const char *key;
	json_t	   *e;

	if (json_is_number(v) && !isfinite(json_number_value(v)))
		bad_value(what, "must be a finite number", "NaN and Infinity are not JSON numbers.");
	if (json_is_object(v))
		json_object_foreach(v, key, e)
			finite_numbers(e, psprintf("%s.%s", what, key));
	if (json_is_array(v))
		json_array_foreach(v, i, e)
			finite_numbers(e, psprintf("%s[%zu]", what, i));
}

/*
 * KaireonAI's request-context fields: segments (ids), attributes (an
 * object), locale, currency and sessionId, each checked and set in the
 * decision context (where rules and guardrails read them as customer.* and
 * request.* fields); attributes' keys become context keys.
 */
static void
request_context_fields(json_t *req, json_t *ctx, const char *session_id)
{
	json_t	   *v;
	const char *key;
	json_t	   *e;

	if ((v = string_array(req, "segments", "request.segments")) != NULL)
		context_set(ctx, "segments", v, "request.segments");
	v = json_object_get(req, "attributes");
	if (v != NULL && !json_is_null(v))
	{
		if (!json_is_object(v))
			bad_value("request.attributes", psprintf("must be a JSON object, not %s", kj_type_name(v)),
					  "Pass the visitor's attributes as {\"tier\": \"gold\", ...}.");
		finite_numbers(v, "request.attributes");
		json_object_foreach(v, key, e)
			context_set(ctx, key, e, psprintf("request.attributes.%s", key));
	}
	v = json_object_get(req, "locale");
	if (v != NULL && !json_is_null(v))
	{
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;
		size_t		n = s ? strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") : 0;

		if (s == NULL || n != strlen(s) || n < 2 || n > 35 || !isalpha((unsigned char) s[0]) ||
			!isalpha((unsigned char) s[1]))
			bad_value("request.locale", psprintf("must be a language tag such as \"en-GB\", not %s",
												 s ? psprintf("\"%s\"", s) : kj_type_name(v)),
					  "Use a BCP 47 tag: a language code, then optional subtags joined by - or _.");
		context_set(ctx, "locale", v, "request.locale");
	}
	v = json_object_get(req, "currency");
	if (v != NULL && !json_is_null(v))
	{
		const char *s = json_is_string(v) ? json_string_value(v) : NULL;

		if (s == NULL || strlen(s) != 3 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
			bad_value("request.currency", psprintf("must be an ISO 4217 code such as \"EUR\", not %s",
												   s ? psprintf("\"%s\"", s) : kj_type_name(v)),
					  "Use three capital letters.");
		context_set(ctx, "currency", v, "request.currency");
	}
	if (session_id != NULL)
		context_set(ctx, "sessionId", json_string(session_id), "request.sessionId");
}

/*
 * Parse kaireon.recommend's options object into the decide arguments; *explain:
 * options.explain (default true: the decisions' explanations are built).
 */
static void
parse_options(KDecideArgs *args, json_t *opts, bool *explain)
{
	static const char *const allowed[] = {
		"dry_run", "debug", "trace", "exclude_offers", "exclude_creatives", "placements", "deduplicate",
		"identifier_type", "explain", NULL
	};

	if (!json_is_object(opts))
		bad_value("options", psprintf("must be a JSON object, not %s", kj_type_name(opts)),
				  "Pass options as {\"dry_run\": true, ...}.");
	kj_known_keys(opts, allowed, "options");
	args->dry_run = bool_field(opts, "dry_run", "options.dry_run");
	args->debug = bool_field(opts, "debug", "options.debug");
	args->force_trace = bool_field(opts, "trace", "options.trace");
	args->deduplicate = bool_field(opts, "deduplicate", "options.deduplicate");
	args->identifier_type = string_field(opts, "identifier_type", "options.identifier_type");
	*explain = json_object_get(opts, "explain") == NULL || json_is_null(json_object_get(opts, "explain")) ||
		bool_field(opts, "explain", "options.explain");
	args->exclude_offers = string_array(opts, "exclude_offers", "options.exclude_offers");
	args->exclude_creatives = string_array(opts, "exclude_creatives", "options.exclude_creatives");
	if (string_array(opts, "placements", "options.placements"))
		json_array_extend(args->placements, json_object_get(opts, "placements"));
}

/*
 * The last options object of kaireon.recommend parsed in this backend: its
 * bytes and the flags it set, kept in a util/kept.h slot.  Callers pass the
 * same constant options call after call (the planner hook even merges
 * "explain": false into them once, decision/projection.c), and what
 * parse_options makes of an object depends on its bytes alone, so equal
 * bytes set equal flags without building the object again.  Kept only for
 * an object of flags (no identifier_type, exclusions or placements, whose
 * values live in the call's memory) of at most KAIREON_KEPT_MAX bytes.
 */
typedef struct KOptionFlags
{
	bool		dry_run;
	bool		debug;
	bool		force_trace;
	bool		deduplicate;
	bool		explain;
} KOptionFlags;
static KKept last_options;

/* The options argument into the decide arguments: from last_options when its bytes are the same, else parsed (and kept when only flags). */
static void
options_arg(KDecideArgs *args, Jsonb *opts, bool *explain)
{
	static const char *const flags[] = {"dry_run", "debug", "trace", "deduplicate", "explain", NULL};
	Size		len = VARSIZE(opts);
	const KOptionFlags *kept = kaireon_kept_get(&last_options, opts, len);
	KOptionFlags set;
	json_t	   *obj;

	if (kept != NULL)
	{
		args->dry_run = kept->dry_run;
		args->debug = kept->debug;
		args->force_trace = kept->force_trace;
		args->deduplicate = kept->deduplicate;
		*explain = kept->explain;
		return;
	}
	obj = kj_from_jsonb(opts, "options");
	parse_options(args, obj, explain);
	if (len > KAIREON_KEPT_MAX)
		return;
	{
		const char *key;
		json_t	   *v;

		json_object_foreach(obj, key, v)
		{
			int			i = 0;

			while (flags[i] != NULL && strcmp(flags[i], key) != 0)
				i++;
			if (flags[i] == NULL)
				return;
		}
	}
	set.dry_run = args->dry_run;
	set.debug = args->debug;
	set.force_trace = args->force_trace;
	set.deduplicate = args->deduplicate;
	set.explain = *explain;
	kaireon_kept_put(&last_options, opts, len, &set, sizeof(set));
}

/* The context argument: a JSON object. */
static json_t *
parse_context(json_t *ctx)
{
	if (ctx == NULL || json_is_null(ctx))
		return json_object();
	if (!json_is_object(ctx))
		bad_value("context", psprintf("must be a JSON object, not %s", kj_type_name(ctx)),
				  "Pass the request context as {\"device\": \"mobile\", ...}.");
	return ctx;
}

/* The context argument as JSON: an empty object (the default) without a walk through it. */
static json_t *
context_arg(Jsonb *ctx)
{
	if (JB_ROOT_IS_OBJECT(ctx) && JB_ROOT_COUNT(ctx) == 0)
		return json_object();
	return kj_from_jsonb(ctx, "context");
}

/* A text argument, or NULL. */
static char *
text_arg(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/*
 * A placement a control group left empty: {controlGroup: true, scope,
 * percent, flow, placementId, interactionId}, with answer: [{rank, offerId,
 * offerName, creativeId, interactionId}] when the flow's control answer
 * filled it instead.
 */
static json_t *
control_json(const KDecideResult *res, const KControl *c)
{
	const KTenantConfig *cfg = res->req->cfg;
	json_t	   *out = json_pack("{s:b,s:s,s:f,s:s,s:s?,s:s?}", "controlGroup", true, "scope", c->scope,
								"percent", c->percent, "flow", cfg->flows[c->flow].key,
								"placementId", c->placement_id, "interactionId", c->interaction_id);

	if (c->nanswer > 0)
	{
		json_t	   *answer = json_array();

		for (int k = 0; k < c->nanswer; k++)
			json_array_append_new(answer, json_pack("{s:i,s:s,s:s,s:s,s:s?}", "rank", k + 1,
													"offerId", cfg->offers[c->answer_offers[k]].id,
													"offerName", cfg->offers[c->answer_offers[k]].name,
													"creativeId", cfg->creatives[c->answer_creatives[k]].id,
													"interactionId", c->answer_ids[k]));
		json_object_set_new(out, "answer", answer);
	}
	return out;
}

/*
 * kaireon.recommend(tenant_id, customer_id, channel, placement, context,
 * max_offers, decision_flow, options): the decisions as rows; a placement
 * a control group left empty is one row without rank or offer whose
 * explanation is {"controlGroup": true, ...}.  A customer_id (of the type
 * options.identifier_type, or any) linked to another customer is decided
 * for as that customer; each decision's explanation then has resolvedFrom.  With
 * options.debug, each dropped candidate follows as a row without rank whose
 * explanation says at which stage and why.  With options.explain false the
 * decisions' explanations are not built (their column is NULL): a function
 * returning rows cannot see which columns its caller reads, so the caller
 * says so.
 */
Datum
kaireon_recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callcxt,
				old;
	KDecideArgs args;
	KDecideResult *res;
	char	   *placement;
	bool		explain = true;

	/* the caller's row type when it gives one: no rebuilding of the OUT parameters' descriptor per call */
	InitMaterializedSRF(fcinfo, rsinfo != NULL && IsA(rsinfo, ReturnSetInfo) && rsinfo->expectedDesc != NULL ?
						MAT_SRF_USE_EXPECTED_DESC : 0);
	callcxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon recommend", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);

	memset(&args, 0, sizeof(args));
	if (PG_ARGISNULL(0))
		missing("tenant_id");
	if (PG_ARGISNULL(1))
		missing("customer_id");
	if (PG_ARGISNULL(2))
		missing("channel");
	args.tenant_id = text_arg(fcinfo, 0);
	args.customer_id = text_arg(fcinfo, 1);
	args.channel_id = text_arg(fcinfo, 2);
	placement = text_arg(fcinfo, 3);
	args.placements = json_array();
	if (placement != NULL)
		json_array_append_new(args.placements, json_string(placement));
	args.context = parse_context(PG_ARGISNULL(4) ? NULL : context_arg(PG_GETARG_JSONB_P(4)));
	args.max_offers = check_max_offers(PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5), !PG_ARGISNULL(5));
	args.flow_key = text_arg(fcinfo, 6);
	if (!PG_ARGISNULL(7))
		options_arg(&args, PG_GETARG_JSONB_P(7), &explain);
	if (placement != NULL && json_array_size(args.placements) > 1)
		bad_value("placement", "and options.placements are both given", "Use one or the other.");
	args.funnels_unread = !args.debug;	/* only the debug rows show them */
	args.matches_unread = !explain; /* only the decisions' explanations list them */

	res = kaireon_decide(&args);

	for (int i = 0; i < res->ndecisions; i++)
	{
		const KDecision *d = &res->decisions[i];

		/* an identifier resolved to another customer: which one (decision/identity.c) */
		if (args.identity.resolved && d->explanation != NULL)
			json_object_set_new(d->explanation, "resolvedFrom", kaireon_identity_json(&args.identity));
	}
	for (int i = 0; i < res->ndecisions; i++)
	{
		const KDecision *d = &res->decisions[i];
		const KTenantConfig *cfg = res->req->cfg;
		const KOffer *o = &cfg->offers[d->cand->offer];
		Datum		values[11];
		bool		nulls[11] = {0};

		values[0] = Int32GetDatum(d->rank);
		values[1] = CStringGetTextDatum(o->id);
		values[2] = CStringGetTextDatum(o->name);
		if (o->category_id)
			values[3] = CStringGetTextDatum(o->category_id);
		else
			nulls[3] = true;
		values[4] = CStringGetTextDatum(cfg->creatives[d->cand->creative].id);
		if (d->placement_id)
			values[5] = CStringGetTextDatum(d->placement_id);
		else
			nulls[5] = true;
		values[6] = Float8GetDatum(d->cand->score);
		if (kaireon_scored_by_propensity(&cfg->flows[d->flow], d->cand))
			values[7] = Float8GetDatum(d->cand->propensity);
		else
			nulls[7] = true;
		values[8] = CStringGetTextDatum(res->recommendation_id);
		if (args.dry_run)
			nulls[9] = true;
		else
			values[9] = CStringGetTextDatum(d->interaction_id);
		if (explain)
			values[10] = JsonbPGetDatum(kaireon_explanation_jsonb(res, d));
		else
			nulls[10] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	/*
	 * a placement a control group left empty: a row without rank or offer, or
	 * a row per offer of the flow's control answer (docs/lift.md)
	 */
	for (int i = 0; i < res->ncontrols; i++)
	{
		const KControl *c = &res->controls[i];
		const KTenantConfig *cfg = res->req->cfg;

		for (int k = c->nanswer > 0 ? 0 : -1; k < c->nanswer; k++)
		{
			Datum		values[11];
			bool		nulls[11];
			json_t	   *expl = control_json(res, c);
			const char *iid = k < 0 ? c->interaction_id : c->answer_ids[k];

			memset(nulls, true, sizeof(nulls));
			if (k >= 0)
			{
				const KOffer *o = &cfg->offers[c->answer_offers[k]];

				values[0] = Int32GetDatum(k + 1);
				values[1] = CStringGetTextDatum(o->id);
				values[2] = CStringGetTextDatum(o->name);
				values[4] = CStringGetTextDatum(cfg->creatives[c->answer_creatives[k]].id);
				nulls[0] = nulls[1] = nulls[2] = nulls[4] = false;
				if (o->category_id)
				{
					values[3] = CStringGetTextDatum(o->category_id);
					nulls[3] = false;
				}
				/* the row's own explanation: the group, flagged as its control answer */
				json_object_del(expl, "answer");
				json_object_set_new(expl, "controlAnswer", json_true());
				json_object_set_new(expl, "interactionId", iid ? json_string(iid) : json_null());
			}
			if (c->placement_id)
			{
				values[5] = CStringGetTextDatum(c->placement_id);
				nulls[5] = false;
			}
			values[8] = CStringGetTextDatum(res->recommendation_id);
			nulls[8] = false;
			if (iid)
			{
				values[9] = CStringGetTextDatum(iid);
				nulls[9] = false;
			}
			values[10] = JsonbPGetDatum(kj_to_jsonb(expl));
			nulls[10] = false;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	if (args.debug)
	{
		for (int i = 0; i < res->ndropped; i++)
		{
			const KCandidate *c = res->dropped[i];
			const KOffer *o = &res->req->cfg->offers[c->offer];
			Datum		values[11];
			bool		nulls[11];
			json_t	   *e = json_pack("{s:s,s:s,s:o}", "droppedAt", c->dropped_stage, "reason", c->dropped_reason,
									  "funnel", json_incref(res->funnels));

			memset(nulls, true, sizeof(nulls));
			values[1] = CStringGetTextDatum(o->id);
			nulls[1] = false;
			values[2] = CStringGetTextDatum(o->name);
			nulls[2] = false;
			if (res->dropped_placement[i])
			{
				values[5] = CStringGetTextDatum(res->dropped_placement[i]);
				nulls[5] = false;
			}
			values[8] = CStringGetTextDatum(res->recommendation_id);
			nulls[8] = false;
			values[10] = JsonbPGetDatum(kj_to_jsonb(e));
			nulls[10] = false;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(callcxt);
	return (Datum) 0;
}

/* One decision in the REST shape, with the creative's content personalized (config/template.c). */
static json_t *
decision_json(const KDecideResult *res, const KDecision *d, bool dry_run, bool explain)
{
	const KTenantConfig *cfg = res->req->cfg;
	const KOffer *o = &cfg->offers[d->cand->offer];
	const KCreative *cr = &cfg->creatives[d->cand->creative];

	return json_pack("{s:i,s:s,s:s,s:s?,s:o,s:s,s:s?,s:o,s:s?,s:f,s:o,s:s?,s:o}",
					 "rank", d->rank,
					 "offerId", o->id,
					 "offerName", o->name,
					 "categoryId", o->category_id,
					 "categoryName", o->category_name ? json_string(o->category_name) : json_null(),
					 "creativeId", cr->id,
					 "creativeName", cr->name,
					 "content", kaireon_creative_content(cr, o, res->req->cust->attrs),
					 "placementId", d->placement_id,
					 "score", d->cand->score,
					 "propensity", kaireon_scored_by_propensity(&cfg->flows[d->flow], d->cand) ?
					 json_real(d->cand->propensity) : json_null(),
					 "interactionId", dry_run ? NULL : d->interaction_id,
					 "explanation", explain ? kaireon_explanation_json(res, d) : json_null());
}

/*
 * Why a request got no decision: the first stage of its first placement's
 * funnel that no candidate reached, as {stage, message}.
 */
static json_t *
no_decision_reason(const KDecideResult *res)
{
	static const char *const stages[] = {
		"candidates", "afterQualification", "afterSuppression", "afterContactPolicy", "afterCaps", "final", NULL
	};
	static const char *const messages[] = {
		"no active offer of the flow's inventory has a creative for the channel and placement",
		"no candidate passed the qualification rules",
		"every qualified candidate is suppressed",
		"the contact policies blocked every remaining candidate",
		"volume constraints or budgets left no candidate",
		"no candidate could be selected (its caps ran out when the decision was recorded)",
	};
	json_t	   *funnel = json_array_get(res->funnels, 0);

	for (int i = 0; stages[i] != NULL; i++)
		if (kj_num(funnel, stages[i], 0) == 0)
			return json_pack("{s:s,s:s}", "stage", stages[i], "message", messages[i]);
	return json_pack("{s:s,s:s}", "stage", "final", "message", messages[5]);
}

/*
 * kaireon.recommend_json(request jsonb), and the tenant-first form
 * recommend_json(tenant_id text, request jsonb): the decision in the REST
 * shape: {recommendationId, customerId (the canonical customer), resolvedFrom
 * (when the identifier given resolved to it), count, degradedScoring, controlGroup, decisions[],
 * controlGroups[] (placements a control group left empty), degradedModels[]
 * (when scoring fell back), reason (when there is no decision), placements[]
 * (when several placements were asked for), debug (with debug: true)}.
 * KaireonAI's names are accepted beside kaireon's (docs/json-api.md); request
 * parsing stays here, out of the pipeline.
 */
Datum
kaireon_recommend_json(PG_FUNCTION_ARGS)
{
	static const char *const allowed[] = {
		"tenantId", "customerId", "sessionId", "identifierType", "channel", "channelId", "placement", "placementId", "placements",
		"context", "attributes", "segments", "locale", "currency", "maxOffers", "limit", "decisionFlow",
		"decisionFlowKey", "blueprintKey", "dryRun", "debug", "trace", "excludeOffers", "excludeCreatives",
		"deduplicate", "explain", NULL
	};
	static const char *const channel_names[] = {"channel", "channelId", NULL};
	static const char *const placement_names[] = {"placement", "placementId", NULL};
	static const char *const flow_names[] = {"decisionFlow", "decisionFlowKey", "blueprintKey", NULL};
	MemoryContext callcxt,
				old;
	KDecideArgs args;
	KDecideResult *res;
	json_t	   *req,
			   *out,
			   *decisions;
	json_t	   *v;
	const char *placement;
	const char *session_id;
	bool		explain;
	Datum		result;

	int			reqarg = PG_NARGS() - 1;	/* the tenant-first form has tenant_id first */

	if (reqarg > 0 && PG_ARGISNULL(0))
		missing("tenant_id");
	if (PG_ARGISNULL(reqarg))
		missing("request");
	callcxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon recommend_json", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(callcxt);

	req = kj_from_jsonb(PG_GETARG_JSONB_P(reqarg), "request");
	if (reqarg > 0)
		kj_set_tenant(req, text_to_cstring(PG_GETARG_TEXT_PP(0)), "request");
	if (!json_is_object(req))
		bad_value("request", psprintf("must be a JSON object, not %s", kj_type_name(req)),
				  "Send {\"tenantId\": ..., \"customerId\": ..., \"channel\": ...}.");
	kj_known_keys(req, allowed, "request");
	memset(&args, 0, sizeof(args));
	/* ids: strings, or integral JSON numbers taken as their decimal text (kj_id) */
	args.tenant_id = kj_id(req, "tenantId", "request.tenantId");
	session_id = kj_id(req, "sessionId", "request.sessionId");
	args.customer_id = kj_id(req, "customerId", "request.customerId");
	/* the identifier resolves to its canonical customer in the pipeline (decision/identity.c) */
	args.identifier_type = string_field(req, "identifierType", "request.identifierType");
	args.identifier_what = "request.customerId";
	if (args.customer_id == NULL && session_id != NULL)
	{
		/* an anonymous visitor: its session is the customer, or the customer the session is linked to */
		if (args.identifier_type != NULL && strcmp(args.identifier_type, "session") != 0)
			bad_value("request.identifierType", psprintf("\"%s\" does not describe request.sessionId", args.identifier_type),
					  "identifierType says what customerId is; a sessionId given alone is of type session.");
		args.customer_id = session_id;
		args.identifier_type = "session";
		args.identifier_what = "request.sessionId";
	}
	args.channel_id = alias_id(req, channel_names);
	if (args.tenant_id == NULL)
		missing("request.tenantId");
	if (args.customer_id == NULL)
		missing("request.customerId");
	if (args.channel_id == NULL)
		missing("request.channel");
	args.placements = json_array();
	placement = alias_id(req, placement_names);
	if (placement != NULL)
		json_array_append_new(args.placements, json_string(placement));
	v = json_object_get(req, "placements");
	if (v != NULL && !json_is_null(v))
	{
		if (placement != NULL)
			bad_value("request.placement", "and request.placements are both given", "Use one or the other.");
		request_placements(&args, v);
	}
	args.context = parse_context(json_object_get(req, "context"));
	request_context_fields(req, args.context, session_id);
	args.max_offers = request_limit(req);
	args.flow_key = alias_id(req, flow_names);
	args.dry_run = bool_field(req, "dryRun", "request.dryRun");
	args.debug = bool_field(req, "debug", "request.debug");
	args.force_trace = bool_field(req, "trace", "request.trace");
	args.deduplicate = bool_field(req, "deduplicate", "request.deduplicate");
	/* explain: the decisions' explanations (default true; false answers "explanation": null) */
	explain = json_object_get(req, "explain") == NULL || json_is_null(json_object_get(req, "explain")) ||
		bool_field(req, "explain", "request.explain");
	args.matches_unread = !explain; /* only the decisions' explanations list them */
	args.exclude_offers = string_array(req, "excludeOffers", "request.excludeOffers");
	args.exclude_creatives = string_array(req, "excludeCreatives", "request.excludeCreatives");

	res = kaireon_decide(&args);

	decisions = json_array();
	for (int i = 0; i < res->ndecisions; i++)
		json_array_append_new(decisions, decision_json(res, &res->decisions[i], args.dry_run, explain));
	out = json_pack("{s:s,s:s,s:s,s:s,s:b,s:i,s:b,s:b,s:O}", "recommendationId", res->recommendation_id,
					"tenantId", args.tenant_id, "customerId", args.customer_id, "channel", args.channel_id,
					"dryRun", args.dry_run, "count", res->ndecisions,
					"degradedScoring", res->req->degraded != NULL,
					"controlGroup", res->ncontrols > 0, "decisions", decisions);
	if (session_id != NULL)
		json_object_set_new(out, "sessionId", json_string(session_id));
	/* customerId is the canonical customer; resolvedFrom says from which identifier */
	if (args.identity.resolved)
		json_object_set_new(out, "resolvedFrom", kaireon_identity_json(&args.identity));
	/* which placements a control group left empty (docs/lift.md) */
	if (res->ncontrols > 0)
	{
		json_t	   *list = json_array();

		for (int i = 0; i < res->ncontrols; i++)
			json_array_append_new(list, control_json(res, &res->controls[i]));
		json_object_set_new(out, "controlGroups", list);
	}
	/* which arm of a flow A/B test each placement took (decision/flow_experiments.c) */
	if (json_array_size(res->flow_arms) > 0)
		json_object_set(out, "flowExperiments", res->flow_arms);
	/* which models fell back and why (decision/model_scores.c) */
	if (res->req->degraded != NULL)
		json_object_set(out, "degradedModels", res->req->degraded);
	/* no offer qualified: an empty answer that says at which stage the candidates ran out */
	if (res->ndecisions == 0)
		json_object_set_new(out, "reason", no_decision_reason(res));
	if (json_array_size(args.placements) > 1)
	{
		json_t	   *groups = json_array();
		size_t		i;
		json_t	   *p;

		json_array_foreach(args.placements, i, p)
		{
			json_t	   *list = json_array();

			for (int k = 0; k < res->ndecisions; k++)
				if (res->decisions[k].placement_id && strcmp(res->decisions[k].placement_id, json_string_value(p)) == 0)
					json_array_append_new(list, decision_json(res, &res->decisions[k], args.dry_run, explain));
			json_array_append_new(groups, json_pack("{s:O,s:o}", "placementId", p, "decisions", list));
		}
		json_object_set_new(out, "placements", groups);
	}
	if (args.debug)
	{
		json_t	   *dropped = json_array();

		for (int i = 0; i < res->ndropped; i++)
			json_array_append_new(dropped, json_pack("{s:s,s:s?,s:s,s:s}",
													 "offerId", res->req->cfg->offers[res->dropped[i]->offer].id,
													 "placementId", res->dropped_placement[i],
													 "stage", res->dropped[i]->dropped_stage,
													 "reason", res->dropped[i]->dropped_reason));
		json_object_set_new(out, "debug", json_pack("{s:O,s:o,s:s}", "funnel", res->funnels,
													"dropped", dropped, "policySnapshot",
													res->req->cfg->policy_hash));
	}
	/* the result is built in the caller's context, to outlive the call context */
	MemoryContextSwitchTo(old);
	result = JsonbPGetDatum(kj_to_jsonb(out));
	MemoryContextDelete(callcxt);
	PG_RETURN_DATUM(result);
}
