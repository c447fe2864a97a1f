/*
 * config/flowgraph.c
 *	  Decision flows as graphs (draft_config version 2, docs/flows.md): their
 *	  validation when written and the checks of call_flow across flows when a
 *	  version is published (their compilation is in flowcompile.c).
 *
 * Protocol.  Validation: validate.c checks every decision flow document; a
 * document with "version": 2 is handed to kaireon_flow_graph_validator, which
 * this file sets at load (kaireon_flowgraph_init), so that this file calls
 * validate_expr.c's expression check and fieldspec.c's FieldSpec helpers
 * (and reads validate.c's version 1 tables) and validate.c never calls back
 * (no file cycle).  Publishing: the trigger kaireon_internal._check_flow_calls on
 * decision_flows checks, whoever writes a published version, that every
 * call_flow names a published flow of the tenant, that calls nest at most
 * KAIREON_FLOW_CALL_DEPTH deep and that no flow calls itself through others.
 * Compiling is in flowcompile.c.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "util/spi.h"
#include "config/conditions.h"
#include "config/config.h"
#include "config/validate.h"
#include "config/flowgraph.h"

PG_FUNCTION_INFO_V1(kaireon_check_flow_calls);

#define KNODE_NAME(e, name) name,
const char *const kaireon_node_type_names[] = {KNODE_TYPE_LIST(KNODE_NAME) NULL};
#undef KNODE_NAME

#define GRAPH_MAX_EDGES 1000

/* ---- the document's shape ---- */

static const FieldSpec graph_fields[] = {
	{"version", JT_INTEGER, true, NULL, 0, 2, 2},
	{"description", JT_STRING, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"customerSchema", JT_STRING, false, NULL, 0, 1, 40},
	{"controlGroupPercent", JT_NUMBER, false, NULL, 0, 0, 100},
	{"controlAnswer", JT_ARRAY, false, NULL, JT_STRING, 0, 50},
	{"flowExperiment", JT_STRING, false, NULL, 0, 1, 200},
	{"nodes", JT_ARRAY, true, NULL, JT_OBJECT, 1, GRAPH_MAX_NODES},
	{"edges", JT_ARRAY, true, NULL, JT_OBJECT, 0, GRAPH_MAX_EDGES},
	FIELD_END
};
static const FieldSpec node_fields[] = {
	{"id", JT_STRING, true, NULL, 0, 1, 100},
	{"type", JT_STRING, true, kaireon_node_type_names, 0, NO_BOUND, NO_BOUND},
	{"config", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"label", JT_STRING, false, NULL, 0, 0, 200},
	{"position", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec edge_fields[] = {
	{"from", JT_STRING, true, NULL, 0, 1, 100},
	{"to", JT_STRING, true, NULL, 0, 1, 100},
	{"branch", JT_STRING, false, NULL, 0, 1, 100},
	FIELD_END
};

static const char *const placement_modes[] = {"strict", "fallback", "any", NULL};
static const char *const branch_kinds[] = {"segment", "attribute", "experiment", "channel", NULL};
static const char *const logic_names[] = {"and", "or", NULL};
static const char *const calc_ops[] = {"+", "-", "*", "/", "min", "max", NULL};

/* filter nodes: the qualification operators plus regex, is_null, is_not_null */
static const char *const filter_operators[] = {
	"eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "starts_with",
	"exists", "not_exists", "regex", "is_null", "is_not_null", NULL
};
static const char *const filter_prefixes[] = {"offer.", "customer.", "request.", "channel.", "candidate.", NULL};
static const char *const branch_prefixes[] = {"customer.", "request.", "channel.", NULL};

static const FieldSpec cfg_match_creatives[] = {
	{"placementMatchMode", JT_STRING, false, placement_modes, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_enrich[] = {
	{"schema", JT_STRING, true, NULL, 0, 1, 40},
	{"as", JT_STRING, false, NULL, 0, 1, 100},
	FIELD_END
};
static const FieldSpec cfg_qualify[] = {
	{"rules", JT_ARRAY, false, NULL, JT_STRING, 0, 10000},
	{"guardrails", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_contact_policy[] = {
	{"policies", JT_ARRAY, false, NULL, JT_STRING, 0, 10000},
	{"caps", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_filter[] = {
	{"conditions", JT_ARRAY, true, NULL, JT_OBJECT, 1, 100},
	{"logic", JT_STRING, false, logic_names, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_conditional[] = {
	{"by", JT_STRING, true, branch_kinds, 0, NO_BOUND, NO_BOUND},
	{"branches", JT_ARRAY, true, NULL, JT_OBJECT, 1, 32},
	FIELD_END
};
static const FieldSpec cfg_branch[] = {
	{"name", JT_STRING, true, NULL, 0, 1, 100},
	{"segment", JT_STRING, false, NULL, 0, 1, 200},
	{"when", JT_OBJECT, false, NULL, 0, NO_BOUND, NO_BOUND},
	{"arm", JT_STRING, false, NULL, 0, 1, 200},
	{"channels", JT_ARRAY, false, NULL, JT_STRING, 1, 100},
	FIELD_END
};
static const FieldSpec cfg_call_flow[] = {
	{"flowKey", JT_STRING, true, NULL, 0, 1, 200},
	FIELD_END
};
const char *const kflow_rank_by_names[] = {"score", "priority", "value", "margin", "cost", NULL};	/* KRankBy */
static const char *const rank_orders[] = {"desc", "asc", NULL};
static const FieldSpec cfg_rank[] = {
	{"by", JT_STRING, false, kflow_rank_by_names, 0, NO_BOUND, NO_BOUND},
	{"order", JT_STRING, false, rank_orders, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_optimize[] = {
	{"prices", JT_BOOLEAN, false, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_group[] = {
	{"placements", JT_ARRAY, true, NULL, JT_STRING, 2, 16},
	{"maxOffers", JT_INTEGER, false, NULL, 0, 1, 50},
	{"fields", JT_ARRAY, false, NULL, JT_STRING, 0, 64},
	FIELD_END
};
static const FieldSpec cfg_compute[] = {
	{"name", JT_STRING, true, NULL, 0, 1, 64},
	{"expression", JT_NUMBER | JT_STRING | JT_OBJECT, true, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_calc[] = {
	{"op", JT_STRING, true, calc_ops, 0, NO_BOUND, NO_BOUND},
	{"args", JT_ARRAY, true, NULL, 0, 1, 16},
	FIELD_END
};
static const FieldSpec cfg_set_properties[] = {
	{"properties", JT_OBJECT, true, NULL, 0, NO_BOUND, NO_BOUND},
	FIELD_END
};
static const FieldSpec cfg_response[] = {
	{"maxOffers", JT_INTEGER, false, NULL, 0, 1, 50},
	{"fields", JT_ARRAY, false, NULL, JT_STRING, 0, 64},
	FIELD_END
};
static const FieldSpec cfg_extension_point[] = {
	{"function", JT_STRING, true, NULL, 0, 1, 200},
	{"timeoutMs", JT_INTEGER, false, NULL, 0, 1, 10000},
	FIELD_END
};

/* Each node type's config fields, by KNodeType. */
static const FieldSpec *const node_config_fields[KNODE_NTYPES] = {
	[KNODE_INVENTORY] = kaireon_flow_inventory_fields,
	[KNODE_MATCH_CREATIVES] = cfg_match_creatives,
	[KNODE_ENRICH] = cfg_enrich,
	[KNODE_QUALIFY] = cfg_qualify,
	[KNODE_CONTACT_POLICY] = cfg_contact_policy,
	[KNODE_FILTER] = cfg_filter,
	[KNODE_CONDITIONAL] = cfg_conditional,
	[KNODE_CALL_FLOW] = cfg_call_flow,
	[KNODE_SCORE] = kaireon_flow_score_fields,
	[KNODE_OPTIMIZE] = cfg_optimize,
	[KNODE_RANK] = cfg_rank,
	[KNODE_GROUP] = cfg_group,
	[KNODE_COMPUTE] = cfg_compute,
	[KNODE_SET_PROPERTIES] = cfg_set_properties,
	[KNODE_RESPONSE] = cfg_response,
	[KNODE_EXTENSION_POINT] = cfg_extension_point,
};

/* A node type by name, or -1. */
int
kflow_node_type(const char *name)
{
	for (int t = 0; t < KNODE_NTYPES; t++)
		if (strcmp(kaireon_node_type_names[t], name) == 0)
			return t;
	return -1;
}

/* Is s a plain identifier (letters, digits, underscores; not starting with a digit)? */
static bool
is_identifier(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Check a compute expression: a number, a field reference, or {op, args}. */
static void
check_calc(ValidateCtx *ctx, json_t *e, const char *path, int depth)
{
	if (depth > 16)
		kaireon_config_error(ctx, path, "nests deeper than 16 levels");
	if (json_is_number(e))
		return;
	if (json_is_string(e))
	{
		const char *f = json_string_value(e);

		if (strncmp(f, "offer.", 6) != 0 && strncmp(f, "customer.", 9) != 0 &&
			strncmp(f, "request.", 8) != 0 && strncmp(f, "candidate.", 10) != 0)
			kaireon_config_error(ctx, path,
								 psprintf("must name a field starting with offer., customer., request. or candidate., not \"%s\"", f));
		if (strchr(f, '.')[1] == '\0')
			kaireon_config_error(ctx, path, psprintf("names no field after its prefix: \"%s\"", f));
		return;
	}
	if (json_is_object(e))
	{
		ValidateCtx sub = *ctx;
		size_t		i;
		json_t	   *a;

		sub.where = psprintf("%s at %s", ctx->where, path);
		kaireon_check_fields(&sub, e, cfg_calc);
		json_array_foreach(json_object_get(e, "args"), i, a)
			check_calc(ctx, a, psprintf("%s.args[%zu]", path, i), depth + 1);
		return;
	}
	kaireon_config_error(ctx, path, psprintf("must be a number, a field name or an object {op, args}, not %s",
											 kj_type_name(e)));
}

/* Check one node's config against its type (ctx names the node). */
static void
check_node_config(ValidateCtx *ctx, int type, json_t *conf)
{
	size_t		i;
	json_t	   *e;

	kaireon_check_fields(ctx, conf, node_config_fields[type]);
	switch ((KNodeType) type)
	{
		case KNODE_SCORE:
			if (json_object_get(conf, "weights") != NULL)
			{
				ValidateCtx sub = *ctx;

				sub.where = psprintf("%s config.weights", ctx->where);
				kaireon_check_fields(&sub, json_object_get(conf, "weights"), kaireon_flow_weight_fields);
			}
			break;
		case KNODE_FILTER:
			json_array_foreach(json_object_get(conf, "conditions"), i, e)
			{
				ValidateCtx sub = *ctx;

				sub.where = psprintf("%s conditions[%zu]", ctx->where, i);
				kaireon_check_expression(&sub, e, filter_prefixes, filter_operators);
			}
			break;
		case KNODE_CONDITIONAL:
			{
				const char *by = kj_str(conf, "by");
				static const char *const needs[] = {"segment", "when", "arm", "channels"};
				int			k = strcmp(by, "segment") == 0 ? 0 : strcmp(by, "attribute") == 0 ? 1 :
					strcmp(by, "experiment") == 0 ? 2 : 3;

				json_array_foreach(json_object_get(conf, "branches"), i, e)
				{
					ValidateCtx sub = *ctx;
					const char *name;

					sub.where = psprintf("%s branches[%zu]", ctx->where, i);
					kaireon_check_fields(&sub, e, cfg_branch);
					name = kj_str(e, "name");
					if (strcmp(name, "default") == 0)
						kaireon_config_error(&sub, "name", "must not be \"default\" (the edge taken when no branch holds)");
					for (size_t j = 0; j < i; j++)
						if (strcmp(kj_str(json_array_get(json_object_get(conf, "branches"), j), "name"), name) == 0)
							kaireon_config_error(&sub, "name", psprintf("repeats the branch \"%s\"", name));
					for (int n = 0; n < 4; n++)
						if ((n == k) != (json_object_get(e, needs[n]) != NULL))
							kaireon_config_error(&sub, needs[n],
												 n == k ? psprintf("is required for by \"%s\"", by) :
												 psprintf("does not apply to by \"%s\"", by));
					if (k == 1)
					{
						sub.where = psprintf("%s branches[%zu].when", ctx->where, i);
						kaireon_check_expression(&sub, json_object_get(e, "when"), branch_prefixes, filter_operators);
					}
				}
				break;
			}
		case KNODE_COMPUTE:
			if (!is_identifier(kj_str(conf, "name")))
				kaireon_config_error(ctx, "name",
									 psprintf("must be an identifier (letters, digits, _), not \"%s\"", kj_str(conf, "name")));
			check_calc(ctx, json_object_get(conf, "expression"), "expression", 0);
			break;
		case KNODE_SET_PROPERTIES:
			{
				const char *key;

				json_object_foreach(json_object_get(conf, "properties"), key, e)
					if (!json_is_string(e) && !json_is_number(e) && !json_is_boolean(e) && !json_is_null(e))
					kaireon_config_error(ctx, psprintf("properties.%s", key),
										 psprintf("must be a string, number, boolean or null, not %s", kj_type_name(e)));
				break;
			}
		case KNODE_EXTENSION_POINT:
			{
				const char *fn = kj_str(conf, "function");
				const char *dot = strchr(fn, '.');
				bool		ok = dot != NULL && dot != fn && dot[1] != '\0' && strchr(dot + 1, '.') == NULL &&
					pg_strncasecmp(fn, "pg_temp", 7) != 0;

				/*
				 * Exactly schema.name, the schema not a temporary one: an
				 * unqualified name or pg_temp would resolve in each caller's
				 * own search_path, another dot fails only when run.
				 */
				for (const char *p = fn; *p; p++)
					if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
						  *p == '_' || *p == '.'))
						ok = false;
				if (!ok)
					kaireon_config_error(ctx, "function",
										 psprintf("must be a function name (schema.name: letters, digits, _; not a pg_temp schema), not \"%s\"", fn));
				break;
			}
		default:
			break;
	}
}

/* The index of a node id among the document's nodes, or -1. */
static int
node_index(json_t *nodes, const char *id)
{
	size_t		i;
	json_t	   *n;

	json_array_foreach(nodes, i, n)
		if (strcmp(kj_str(n, "id"), id) == 0)
		return (int) i;
	return -1;
}

/* Is a branch name one of a conditional node's branches (or "default")? */
static bool
has_branch(json_t *node, const char *name)
{
	size_t		i;
	json_t	   *b;

	if (strcmp(name, "default") == 0)
		return true;
	json_array_foreach(json_object_get(json_object_get(node, "config"), "branches"), i, b)
		if (strcmp(kj_str(b, "name"), name) == 0)
		return true;
	return false;
}

/* Depth-first search for a cycle from node v (0 unseen, 1 on the path, 2 done); its node, or -1. */
static int
find_cycle(int v, int nnodes, const int *adj_from, const int *adj_to, int nedges, char *state, int *stack, int depth,
		   int *cycle_len)
{
	state[v] = 1;
	stack[depth] = v;
	for (int e = 0; e < nedges; e++)
	{
		int			w;

		if (adj_from[e] != v)
			continue;
		w = adj_to[e];
		if (state[w] == 1)
		{
			int			k = depth;

			while (stack[k] != w)
				k--;
			*cycle_len = depth - k + 1;
			memmove(stack, stack + k, sizeof(int) * *cycle_len);
			return w;
		}
		if (state[w] == 0)
		{
			int			c = find_cycle(w, nnodes, adj_from, adj_to, nedges, state, stack, depth + 1, cycle_len);

			if (c >= 0)
				return c;
		}
	}
	state[v] = 2;
	return -1;
}

/*
 * Validate a version 2 decision flow (the hook of validate.c): the shape of
 * the document, of each node's config by type, of each edge, then the graph:
 * one entry (an inventory node), no cycle, every node reachable, one edge
 * out of each node (a conditional's: one per branch, by name), none out of a
 * response node, every other node with one.  22023 naming the node.
 */
static void
validate_graph(json_t *config, ValidateCtx *ctx)
{
	json_t	   *nodes,
			   *edges,
			   *n,
			   *e;
	size_t		i;
	int			nnodes,
				nedges,
				entry = -1;
	int		   *from,
			   *to,
			   *indeg,
			   *outdeg,
			   *stack,
				cycle_len = 0;
	char	   *state;

	kaireon_check_fields(ctx, config, graph_fields);
	nodes = json_object_get(config, "nodes");
	edges = json_object_get(config, "edges");
	nnodes = json_array_size(nodes);
	nedges = json_array_size(edges);

	/* the nodes: shape, unique ids, config by type */
	json_array_foreach(nodes, i, n)
	{
		ValidateCtx sub = *ctx;
		const char *id = kj_str(n, "id");
		int			t;

		sub.where = id ? psprintf("%s node \"%s\"", ctx->where, id) : psprintf("%s nodes[%zu]", ctx->where, i);
		if (id != NULL && json_is_string(json_object_get(n, "type")) &&
			kflow_node_type(kj_str(n, "type")) < 0)
			kaireon_config_error(&sub, "type",
								 psprintf("is not a known node type: \"%s\" (known types: %s)", kj_str(n, "type"),
										  "inventory, match_creatives, enrich, qualify, contact_policy, filter, "
										  "conditional, call_flow, score, optimize, rank, group, compute, "
										  "set_properties, response, extension_point"));
		kaireon_check_fields(&sub, n, node_fields);
		if (node_index(nodes, id) != (int) i)
			kaireon_config_error(&sub, "id", psprintf("repeats the node id \"%s\"", id));
		t = kflow_node_type(kj_str(n, "type"));
		sub.where = psprintf("%s node \"%s\" (%s) config", ctx->where, id, kaireon_node_type_names[t]);
		check_node_config(&sub, t, json_object_get(n, "config") ? json_object_get(n, "config") : json_object());
	}

	/* the edges: known ends, branches only out of conditionals */
	from = palloc(sizeof(int) * Max(nedges, 1));
	to = palloc(sizeof(int) * Max(nedges, 1));
	indeg = palloc0(sizeof(int) * nnodes);
	outdeg = palloc0(sizeof(int) * nnodes);
	json_array_foreach(edges, i, e)
	{
		ValidateCtx sub = *ctx;
		json_t	   *fn;
		const char *branch;

		sub.where = psprintf("%s edges[%zu]", ctx->where, i);
		kaireon_check_fields(&sub, e, edge_fields);
		from[i] = node_index(nodes, kj_str(e, "from"));
		to[i] = node_index(nodes, kj_str(e, "to"));
		if (from[i] < 0)
			kaireon_config_error(&sub, "from", psprintf("names no node: \"%s\"", kj_str(e, "from")));
		if (to[i] < 0)
			kaireon_config_error(&sub, "to", psprintf("names no node: \"%s\"", kj_str(e, "to")));
		fn = json_array_get(nodes, from[i]);
		sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(fn, "id"));
		branch = kj_str(e, "branch");
		if (kflow_node_type(kj_str(fn, "type")) == KNODE_CONDITIONAL)
		{
			if (branch == NULL)
				kaireon_config_error(&sub, "edges",
									 psprintf("has an edge to \"%s\" without a branch (a conditional's edges name theirs)",
											  kj_str(e, "to")));
			if (!has_branch(fn, branch))
				kaireon_config_error(&sub, "edges", psprintf("has an edge for branch \"%s\", which it does not have", branch));
			for (size_t j = 0; j < i; j++)
				if (from[j] == from[i] && kj_str(json_array_get(edges, j), "branch") &&
					strcmp(kj_str(json_array_get(edges, j), "branch"), branch) == 0)
					kaireon_config_error(&sub, "edges", psprintf("has two edges for branch \"%s\"", branch));
		}
		else
		{
			if (branch != NULL)
				kaireon_config_error(&sub, "edges",
									 psprintf("has an edge with branch \"%s\", but only conditional nodes branch", branch));
			if (outdeg[from[i]] > 0)
				kaireon_config_error(&sub, "edges", "has two outgoing edges (only a conditional node branches)");
		}
		if (kflow_node_type(kj_str(fn, "type")) == KNODE_RESPONSE || kflow_node_type(kj_str(fn, "type")) == KNODE_GROUP)
			kaireon_config_error(&sub, "edges", psprintf("has an edge to \"%s\", but a %s node ends its path",
														 kj_str(e, "to"), kj_str(fn, "type")));
		outdeg[from[i]]++;
		indeg[to[i]]++;
	}

	/* every path ends at a response node; every branch has its edge */
	json_array_foreach(nodes, i, n)
	{
		ValidateCtx sub = *ctx;
		int			t = kflow_node_type(kj_str(n, "type"));

		sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(n, "id"));
		if (t != KNODE_RESPONSE && t != KNODE_GROUP && outdeg[i] == 0)
			kaireon_config_error(&sub, "edges", "has no outgoing edge (every path ends at a response or group node)");
		if (t == KNODE_CONDITIONAL)
		{
			size_t		b;
			json_t	   *br;

			bool		otherwise = false;

			for (int k = 0; k < nedges; k++)
				if (from[k] == (int) i && strcmp(kj_str(json_array_get(edges, k), "branch"), "default") == 0)
					otherwise = true;
			if (!otherwise)
				kaireon_config_error(&sub, "edges", "has no edge for branch \"default\" (taken when no branch holds)");
			json_array_foreach(json_object_get(json_object_get(n, "config"), "branches"), b, br)
			{
				bool		found = false;

				for (int k = 0; k < nedges; k++)
					if (from[k] == (int) i && strcmp(kj_str(json_array_get(edges, k), "branch"), kj_str(br, "name")) == 0)
						found = true;
				if (!found)
					kaireon_config_error(&sub, "edges", psprintf("has no edge for branch \"%s\"", kj_str(br, "name")));
			}
		}
	}

	/* a cycle, named by its nodes */
	state = palloc0(nnodes);
	stack = palloc(sizeof(int) * (nnodes + 1));
	for (int v = 0; v < nnodes; v++)
	{
		int			c;

		if (state[v] != 0)
			continue;
		c = find_cycle(v, nnodes, from, to, nedges, state, stack, 0, &cycle_len);
		if (c >= 0)
		{
			StringInfoData path;
			ValidateCtx sub = *ctx;

			initStringInfo(&path);
			for (int k = 0; k < cycle_len; k++)
				appendStringInfo(&path, "%s -> ", kj_str(json_array_get(nodes, stack[k]), "id"));
			appendStringInfoString(&path, kj_str(json_array_get(nodes, c), "id"));
			sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(json_array_get(nodes, c), "id"));
			kaireon_config_error(&sub, "edges", psprintf("closes a cycle: %s", path.data));
		}
	}

	/* one entry: the only node without an incoming edge, an inventory node */
	for (int v = 0; v < nnodes; v++)
	{
		if (indeg[v] > 0)
			continue;
		if (entry >= 0)
		{
			ValidateCtx sub = *ctx;

			sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(json_array_get(nodes, v), "id"));
			kaireon_config_error(&sub, "edges",
								 psprintf("has no incoming edge, and neither has \"%s\": a flow has one entry node",
										  kj_str(json_array_get(nodes, entry), "id")));
		}
		entry = v;
	}
	if (entry < 0)
		kaireon_config_error(ctx, "nodes", "have no entry node (one without an incoming edge)");
	if (kflow_node_type(kj_str(json_array_get(nodes, entry), "type")) != KNODE_INVENTORY)
	{
		ValidateCtx sub = *ctx;

		sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(json_array_get(nodes, entry), "id"));
		kaireon_config_error(&sub, "type", psprintf("is \"%s\", but the entry node must be an inventory node",
													kj_str(json_array_get(nodes, entry), "type")));
	}

	/* every node reachable from the entry */
	memset(state, 0, nnodes);
	stack[0] = entry;
	state[entry] = 1;
	{
		int			top = 1;

		while (top > 0)
		{
			int			v = stack[--top];

			for (int k = 0; k < nedges; k++)
				if (from[k] == v && !state[to[k]])
				{
					state[to[k]] = 1;
					stack[top++] = to[k];
				}
		}
	}
	for (int v = 0; v < nnodes; v++)
		if (!state[v])
		{
			ValidateCtx sub = *ctx;

			sub.where = psprintf("%s node \"%s\"", ctx->where, kj_str(json_array_get(nodes, v), "id"));
			kaireon_config_error(&sub, "edges", "is not reachable from the entry node");
		}
}

/* Module init (kaireon.c): hand validate.c the version 2 validator. */
void
kaireon_flowgraph_init(void)
{
	kaireon_flow_graph_validator = validate_graph;
}

/* ---- call_flow across flows, checked when a version is published ---- */

/* The call_flow targets of a version 2 config: pairs of node id and flow key. */
static void
walk_calls(json_t *flows, const char *key, json_t *config, const char **path, int depth, const char *root)
{
	size_t		i;
	json_t	   *n;

	if (kj_num(config, "version", 1) != 2)
		return;
	json_array_foreach(json_object_get(config, "nodes"), i, n)
	{
		const char *target;
		json_t	   *tconf;
		StringInfoData chain;

		if (strcmp(kj_str(n, "type"), "call_flow") != 0)
			continue;
		target = kj_str(json_object_get(n, "config"), "flowKey");
		initStringInfo(&chain);
		for (int k = 0; k < depth; k++)
			appendStringInfo(&chain, "%s -> ", path[k]);
		appendStringInfo(&chain, "%s -> %s", key, target);
		for (int k = 0; k < depth; k++)
			if (strcmp(path[k], target) == 0)
				goto cycle;
		if (strcmp(key, target) == 0)
			goto cycle;
		if (!json_object_get(flows, target))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("decision flow \"%s\" node \"%s\": call_flow names flow \"%s\", which is not a published flow of the tenant",
							key, kj_str(n, "id"), target),
					 depth > 0 ? errdetail("Called through %s.", chain.data) : 0,
					 errhint("Publish flow \"%s\" first, or name a published flow (docs/flows.md).", target)));
		if (depth + 1 >= KAIREON_FLOW_CALL_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("decision flow \"%s\" node \"%s\": calls nest deeper than %d flows: %s",
							root, kj_str(n, "id"), KAIREON_FLOW_CALL_DEPTH, chain.data),
					 errhint("Flatten the calls (docs/flows.md).")));
		tconf = json_object_get(flows, target);
		path[depth] = key;
		walk_calls(flows, target, tconf, path, depth + 1, root);
		continue;
cycle:
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("decision flow \"%s\" node \"%s\": call_flow \"%s\" closes a cycle of calls: %s",
						key, kj_str(n, "id"), target, chain.data),
				 errhint("A flow may not call itself, directly or through other flows (docs/flows.md).")));
	}
}

/*
 * Trigger kaireon_internal._check_flow_calls: BEFORE INSERT OR UPDATE of a
 * decision flow's published version.  The version being published (the row's
 * published_version) is walked through the tenant's other published flows:
 * every call_flow must name one, calls nest at most KAIREON_FLOW_CALL_DEPTH
 * deep, and none comes back to a flow on its own path.  22023 naming the flow
 * and the node.
 */
Datum
kaireon_check_flow_calls(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tuple = kaireon_trigger_new_row(fcinfo, "_check_flow_calls");
	char	   *tenant = kaireon_trigger_text(td, tuple, "tenant_id");
	char	   *key = kaireon_trigger_text(td, tuple, "key");
	json_t	   *versions = kaireon_trigger_json(td, tuple, "published_versions", "published_versions");
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	bool		isnull;
	Datum		pv = heap_getattr(tuple, SPI_fnumber(desc, "published_version"), desc, &isnull);
	json_t	   *config = NULL,
			   *flows;
	size_t		i;
	json_t	   *v;
	const char *path[KAIREON_FLOW_CALL_DEPTH + 1];
	MemoryContext mcxt = CurrentMemoryContext;

	if (isnull || versions == NULL)
		return PointerGetDatum(tuple);
	json_array_foreach(versions, i, v)
		if (kj_num(v, "version", -1) == DatumGetInt32(pv))
		config = json_object_get(v, "config");
	if (config == NULL || kj_num(config, "version", 1) != 2)
		return PointerGetDatum(tuple);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");

	/*
	 * One check at a time per tenant, each reading the others' committed
	 * versions (a fresh snapshot: not read-only): two publishes at once, a
	 * calling b and b calling a, would otherwise each read the other's old
	 * version and publish a cycle.
	 */
	{
		Oid			types[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(tenant)};

		if (kspi_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended("
								   "'kaireon flow calls ' OPERATOR(pg_catalog.||) $1, 0))",
								   1, types, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: locking the tenant's flow calls failed");
	}
	MemoryContextSwitchTo(mcxt);	/* the flows outlive SPI_finish */
	flows = kj_query_tenant(
		"SELECT coalesce(jsonb_object_agg(f.key, (SELECT v -> 'config' FROM jsonb_array_elements(f.published_versions) v "
		"                                           WHERE (v ->> 'version')::int = f.published_version)), '{}') "
		"  FROM kaireon.decision_flows f "
		" WHERE f.tenant_id = $1 AND f.deleted_at IS NULL AND f.status = 'published' "
		"   AND f.published_version IS NOT NULL",
		tenant, "published decision flows", false);
	SPI_finish();
	MemoryContextSwitchTo(mcxt);
	json_object_set(flows, key, config);
	walk_calls(flows, key, config, path, 0, key);
	return PointerGetDatum(tuple);
}
