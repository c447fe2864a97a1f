/*
 * decision/graph.c
 *	  The node types of flow graphs (docs/flows.md) that the fixed pipeline
 *	  has no step for: filter, conditional, compute, enrich, set_properties'
 *	  values and extension_point.  The executor is kaireon_decide_placement
 *	  (pipeline.c), which walks the compiled graph (config/flowgraph.c) and
 *	  calls these; the nodes the fixed pipeline has (inventory, qualify,
 *	  contact_policy, score, optimize, rank, response) run its own steps.
 *	  Computation over the compiled configuration and the request's state: no
 *	  JSON walked but the customer's and offers' values, no SPI but enrich's
 *	  one read and the extension point's call.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "config/conditions.h"
#include "decision/decision.h"
#include "security/confine.h"

/* What a filter's fields are read from: the request and one candidate. */
typedef struct FieldSubject
{
	const KRequest *req;
	const KGraph *graph;
	const KCandidate *cand;		/* NULL: no offer.* or candidate.* fields */
} FieldSubject;

/* A candidate.* field: score, propensity, or a computed field; NULL when missing. */
static json_t *
candidate_field(const KGraph *g, const KCandidate *c, const char *name)
{
	int			k;

	if (strcmp(name, "score") == 0)
		return json_real(c->score);
	if (strcmp(name, "propensity") == 0)
		return c->propensity >= 0 ? json_real(c->propensity) : NULL;
	k = g ? kaireon_graph_computed_index(g, name) : -1;
	if (k >= 0 && c->computed != NULL && !isnan(c->computed[k]))
		return json_real(c->computed[k]);
	return NULL;
}

/* Resolve a filter's or branch's field (offer.*, customer.*, request.*, channel.*, candidate.*). */
static json_t *
subject_field(const char *field, void *arg)
{
	const FieldSubject *s = arg;

	if (strncmp(field, "candidate.", 10) == 0)
		return s->cand ? candidate_field(s->graph, s->cand, field + 10) : NULL;
	return kaireon_request_field(s->req, s->cand ? &s->req->cfg->offers[s->cand->offer] : NULL, field);
}

/*
 * A filter node: drop every remaining candidate for which the node's
 * conditions do not hold (a missing value satisfies no comparison but
 * not_exists / is_null, as in guardrails).
 */
void
kaireon_graph_filter(KRequest *req, const KGraph *g, const KNode *node, KCandidate *cands, int n)
{
	for (int i = 0; i < n; i++)
	{
		KCandidate *c = &cands[i];
		FieldSubject s = {req, g, c};

		if (c->dropped_stage != NULL || kaireon_expr_holds(node->expr, subject_field, &s))
			continue;
		c->dropped_stage = "filter";
		c->drop = KDROP_FILTER;
		c->dropped_reason = !req->keep_reasons ? NULL :
			psprintf("filter node \"%s\" does not hold", node->id);
	}
}

/*
 * A conditional node: the first branch whose test holds for the request (by
 * segment membership, a customer / request / channel expression, the
 * placement's experiment variant, or the channel), else the default edge.
 * Returns the next node's index; *branch gets the branch's name.
 */
int
kaireon_graph_branch(KRequest *req, const KNode *node, const char **branch)
{
	for (int b = 0; b < node->nbranches; b++)
	{
		const KBranch *br = &node->branches[b];
		bool		holds = false;

		switch (node->by)
		{
			case KBRANCH_SEGMENT:
				holds = kaireon_in_segment(req, br->segment);
				break;
			case KBRANCH_ATTRIBUTE:
				{
					FieldSubject s = {req, NULL, NULL};

					holds = kaireon_expr_holds(br->when, subject_field, &s);
					break;
				}
			case KBRANCH_EXPERIMENT:
				holds = req->variant != NULL && strcmp(req->variant, br->arm) == 0;
				break;
			case KBRANCH_CHANNEL:
				holds = kj_array_has_string(br->channels, req->channel_id);
				break;
		}
		if (holds)
		{
			*branch = br->name;
			return br->next;
		}
	}
	*branch = "default";
	return node->otherwise;
}

/*
 * A number from a JSON value (number, boolean, numeric string); NaN when none
 * or not finite: strtod reads "Infinity", "-inf", "nan" and "1e400" (as
 * infinity), which count as missing like an arithmetic result out of range.
 */
static double
json_number(json_t *v)
{
	char	   *end;
	double		d;

	if (v == NULL)
		return NAN;
	if (json_is_number(v))
		d = json_number_value(v);
	else if (json_is_boolean(v))
		d = json_is_true(v) ? 1 : 0;
	else if (json_is_string(v) && json_string_length(v) > 0)
	{
		d = strtod(json_string_value(v), &end);
		if (*end != '\0')
			return NAN;
	}
	else
		return NAN;
	return isfinite(d) ? d : NAN;
}

/* Evaluate a compute expression for a candidate; NaN when a field is missing or a division is by zero. */
static double
calc(const KRequest *req, const KGraph *g, const KCandidate *c, const KCalc *e)
{
	double		r;

	switch (e->kind)
	{
		case KCALC_NUMBER:
			return e->number;
		case KCALC_FIELD:
			{
				FieldSubject s = {req, g, c};

				return json_number(subject_field(e->field, &s));
			}
		default:
			break;
	}
	r = calc(req, g, c, e->args[0]);
	for (int i = 1; i < e->nargs; i++)
	{
		double		x = calc(req, g, c, e->args[i]);

		switch (e->kind)
		{
			case KCALC_ADD:
				r += x;
				break;
			case KCALC_SUB:
				r -= x;
				break;
			case KCALC_MUL:
				r *= x;
				break;
			case KCALC_DIV:
				r = x == 0 ? NAN : r / x;
				break;
			case KCALC_MIN:
				r = isnan(x) || isnan(r) ? NAN : Min(r, x);
				break;
			default:
				r = isnan(x) || isnan(r) ? NAN : Max(r, x);
				break;
		}
	}
	return isfinite(r) ? r : NAN;
}

/*
 * A compute node: set its field on every remaining candidate (NaN: missing),
 * or, for the name "score", the candidate's score (left as it was when the
 * value is missing).
 */
void
kaireon_graph_compute(KRequest *req, const KGraph *g, const KNode *node, KCandidate *cands, int n)
{
	for (int i = 0; i < n; i++)
	{
		KCandidate *c = &cands[i];
		double		v;

		if (c->dropped_stage != NULL)
			continue;
		v = calc(req, g, c, node->calc);
		if (node->computed < 0)
		{
			if (!isnan(v))
				c->score = v;
			continue;
		}
		if (c->computed == NULL)
		{
			c->computed = palloc(sizeof(double) * g->ncomputed);
			for (int k = 0; k < g->ncomputed; k++)
				c->computed[k] = NAN;
		}
		c->computed[node->computed] = v;
	}
}

/* An enrich node: the customer's row of another customer data schema, as customer.<as> (rules read it afresh). */
void
kaireon_graph_enrich(KRequest *req, const KNode *node)
{
	json_t	   *row = kaireon_customer_attributes(req->cfg, req->cust->id, NULL, node->schema);

	if (req->cust->attrs == NULL)
		req->cust->attrs = json_object();
	json_object_set_new(req->cust->attrs, node->as, row);
	kaireon_forget_customer_verdicts(req);
}

/* The computed fields a response node lists, for a decision's explanation ({name: value}). */
json_t *
kaireon_graph_fields(const KGraph *g, const KNode *node, const KCandidate *c)
{
	json_t	   *out = json_object();
	size_t		i;
	json_t	   *f;

	json_array_foreach(node->fields, i, f)
	{
		json_t	   *v = candidate_field(g, c, json_string_value(f));

		json_object_set_new(out, json_string_value(f), v ? v : json_null());
	}
	return out;
}

/* ---- extension points ---- */

/* What an extension point's confined call needs and returns. */
typedef struct ExtensionCall
{
	const KNode *node;
	const char *sql;			/* SELECT <function>($1, $2) */
	Jsonb	   *request;
	Jsonb	   *candidates;
	int			timeout_ms;
	json_t	   *result;			/* the function's answer, in the caller's context */
	MemoryContext mcxt;
} ExtensionCall;

/* Error context: the extension point being run. */
static void
extension_errcontext(void *arg)
{
	const ExtensionCall *call = arg;

	errcontext("extension point \"%s\" (function %s)", call->node->id, call->node->function);
}

/*
 * The confined part (kaireon_run_confined): call the function read-only
 * under the node's time budget, the statement timeout armed for it (and the
 * caller's own statement timeout, when one runs, given back after).
 */
static void
extension_run(void *arg)
{
	ExtensionCall *call = arg;
	bool		outer = get_timeout_active(STATEMENT_TIMEOUT);
	TimestampTz outer_end = outer ? get_timeout_finish_time(STATEMENT_TIMEOUT) : 0;
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) call->timeout_ms * 1000;
	Oid			types[2] = {JSONBOID, JSONBOID};
	Datum		args[2] = {JsonbPGetDatum(call->request), JsonbPGetDatum(call->candidates)};

	if (!outer || end < outer_end)
		enable_timeout_at(STATEMENT_TIMEOUT, end);
	PG_TRY();
	{
		bool		isnull;
		Datum		d;

		if (kspi_execute_with_args(call->sql, 2, types, args, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "kaireon: the extension point's call returned no row");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContextSwitchTo(call->mcxt);
		call->result = isnull ? NULL : kj_from_jsonb(DatumGetJsonbP(d), "the extension point's answer");
	}
	PG_FINALLY();
	{
		if (outer)
			enable_timeout_at(STATEMENT_TIMEOUT, outer_end);
		else
			disable_timeout(STATEMENT_TIMEOUT, false);
	}
	PG_END_TRY();
}

/*
 * An extension_point node: the tenant's SQL function named by the node,
 * function(request jsonb, candidates jsonb) returns jsonb, called once per
 * placement with the remaining candidates, confined to the tenant
 * (security/confine.c: its role, its rows, read-only) and within the node's
 * time budget (timeoutMs; over it: 57014).  Its answer is an object of offer
 * id to a new score (a number) or null (drop the candidate); offers it does
 * not name are left as they are.  A SECURITY DEFINER function is refused
 * (42501): it would run with its owner's rights.
 */
void
kaireon_graph_extension(KRequest *req, const KNode *node, KCandidate *cands, int n)
{
	ExtensionCall call = {0};
	ErrorContextCallback cb;
	Oid			fn;
	HeapTuple	tup;
	bool		definer;
	json_t	   *list = json_array();
	const char *key;
	json_t	   *v;

	cb.callback = extension_errcontext;
	cb.arg = &call;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	call.node = node;
	call.mcxt = CurrentMemoryContext;
	call.timeout_ms = node->timeout_ms;

	/* the function: name(jsonb, jsonb), not SECURITY DEFINER */
	{
		Oid			argtypes[2] = {JSONBOID, JSONBOID};

		fn = LookupFuncName(stringToQualifiedNameList(node->function), 2, argtypes, true);
	}
	if (!OidIsValid(fn) || get_func_rettype(fn) != JSONBOID)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("extension point \"%s\": no function %s(jsonb, jsonb) returning jsonb", node->id, node->function),
				 errhint("Create it (docs/flows.md, \"extension_point\"), or fix the node's function.")));
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "kaireon: cache lookup failed for function %u", fn);
	definer = ((Form_pg_proc) GETSTRUCT(tup))->prosecdef;
	ReleaseSysCache(tup);
	if (definer)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("extension point \"%s\": function %s is SECURITY DEFINER", node->id, node->function),
				 errhint("An extension point runs with the tenant's rights only: make it SECURITY INVOKER.")));
	call.sql = psprintf("SELECT %s($1, $2)",
						quote_qualified_identifier(get_namespace_name(get_func_namespace(fn)), get_func_name(fn)));

	/* what it is given: the request, the remaining candidates */
	for (int i = 0; i < n; i++)
	{
		const KCandidate *c = &cands[i];
		const KOffer *o = &req->cfg->offers[c->offer];

		if (c->dropped_stage != NULL)
			continue;
		json_array_append_new(list, json_pack("{s:s,s:s?,s:f,s:b,s:s?}", "offerId", o->id, "categoryId", o->category_id,
											  "score", c->score, "mandatory", c->mandatory,
											  "creativeId", c->creative >= 0 ? req->cfg->creatives[c->creative].id : NULL));
	}
	call.candidates = kj_to_jsonb(list);
	call.request = kj_to_jsonb(json_pack("{s:s,s:s,s:s?,s:s}", "customerId", req->cust->id, "channel", req->channel_id,
										 "placement", req->placement_id, "flow", req->cfg->flows[req->flow].key));
	kaireon_run_confined(req->cfg->tenant_id, extension_run, &call);
	MemoryContextSwitchTo(call.mcxt);

	/* its answer: offer id -> new score, or null to drop */
	if (call.result != NULL && !json_is_object(call.result))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("extension point \"%s\": function %s answered %s, not an object", node->id, node->function,
						kj_type_name(call.result)),
				 errhint("Answer {\"<offer id>\": <new score> or null (drop), ...}.")));
	json_object_foreach(call.result, key, v)
	{
		if (!json_is_null(v) && !json_is_number(v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("extension point \"%s\": the answer for offer \"%s\" is %s, not a number or null",
							node->id, key, kj_type_name(v)),
					 errhint("Answer {\"<offer id>\": <new score> or null (drop), ...}.")));
		for (int i = 0; i < n; i++)
		{
			KCandidate *c = &cands[i];

			if (c->dropped_stage != NULL || strcmp(req->cfg->offers[c->offer].id, key) != 0)
				continue;
			if (json_is_null(v))
			{
				c->dropped_stage = "extension_point";
				c->drop = KDROP_EXTENSION;
				c->dropped_reason = psprintf("extension point \"%s\" dropped it", node->id);
			}
			else
				c->score = json_number_value(v);
		}
	}
	error_context_stack = cb.previous;
}
