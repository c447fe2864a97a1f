/*
 * config/flowcompile.c
 *	  Decision flows compiled into the node array the executor
 *	  (decision/pipeline.c, kaireon_decide_placement) runs (docs/flows.md);
 *	  their validation and the call_flow checks are in flowgraph.c.
 *
 * Protocol.  The configuration's compile (compile.c) calls kaireon_compile_flow_graph
 * for every flow once per compiled configuration: a version 1 flow becomes the
 * linear graph inventory -> match_creatives -> qualify -> contact_policy ->
 * score -> optimize -> rank -> response (one executor for both), a version 2
 * flow its nodes with per-type parameters and successors as indexes; then
 * compile.c resolves call_flow targets, and eligibility.c conditional segments, by their ids.
 * No JSON is walked per request or per candidate.
 */
#include "postgres.h"

#include "util/json.h"

#include "utils/builtins.h"

#include "config/conditions.h"
#include "config/config.h"
#include "config/flowgraph.h"

/* Copy a JSON string field into the current (cache) context; NULL stays NULL. */
static const char *
str_copy(const json_t *obj, const char *key)
{
	const char *s = kj_str(obj, key);

	return s ? pstrdup(s) : NULL;
}

/*
 * A flow's score object into its KFlow (method, model, experiment, propensity
 * source, formula weights): the flow's own (version 1) and each score node's spec.
 */
void
kaireon_compile_flow_score(KFlow *f, json_t *score)
{
	const char *method = kj_str(score, "method");
	json_t	   *w = json_object_get(score, "weights");

	f->method = (method == NULL || strcmp(method, "priority_weighted") == 0) ? KSCORE_PRIORITY_WEIGHTED :
		strcmp(method, "propensity") == 0 ? KSCORE_PROPENSITY : KSCORE_FORMULA;
	f->model_key = str_copy(score, "modelKey");
	f->experiment_key = str_copy(score, "experimentKey");
	f->profile_key = str_copy(score, "profileKey");
	f->model_propensity = kj_str(score, "propensitySource") == NULL ?
		(f->model_key != NULL || f->experiment_key != NULL) :
		strcmp(kj_str(score, "propensitySource"), "model") == 0;
	f->w_p = kj_num(w, "propensity", 0.4);
	f->w_r = kj_num(w, "relevance", 0.2);
	f->w_i = kj_num(w, "impact", 0.3);
	f->w_e = kj_num(w, "emphasis", 0.1);
}

/* The index of a computed field name, or -1. */
int
kaireon_graph_computed_index(const KGraph *g, const char *name)
{
	for (int i = 0; i < g->ncomputed; i++)
		if (strcmp(g->computed[i], name) == 0)
			return i;
	return -1;
}

/* Compile a compute expression (validated when written). */
static KCalc *
compile_calc(KGraph *g, json_t *e)
{
	KCalc	   *c = palloc0(sizeof(KCalc));

	c->computed = -1;
	if (json_is_number(e))
	{
		c->kind = KCALC_NUMBER;
		c->number = json_number_value(e);
	}
	else if (json_is_string(e))
	{
		c->kind = KCALC_FIELD;
		c->field = pstrdup(json_string_value(e));
		if (strncmp(c->field, "candidate.", 10) == 0)
			c->computed = kaireon_graph_computed_index(g, c->field + 10);
	}
	else
	{
		const char *op = kj_str(e, "op");
		json_t	   *args = json_object_get(e, "args");
		size_t		i;
		json_t	   *a;

		c->kind = strcmp(op, "+") == 0 ? KCALC_ADD : strcmp(op, "-") == 0 ? KCALC_SUB :
			strcmp(op, "*") == 0 ? KCALC_MUL : strcmp(op, "/") == 0 ? KCALC_DIV :
			strcmp(op, "min") == 0 ? KCALC_MIN : KCALC_MAX;
		c->nargs = json_array_size(args);
		c->args = palloc(sizeof(KCalc *) * Max(c->nargs, 1));
		json_array_foreach(args, i, a)
			c->args[i] = compile_calc(g, a);
	}
	return c;
}

/* A per-index mask of the rules (or policies) whose ids are listed; NULL when no list. */
static bool *
id_mask(json_t *ids, int n, const char *(*id_of) (const KTenantConfig *, int), const KTenantConfig *cfg)
{
	bool	   *mask;

	if (ids == NULL)
		return NULL;
	mask = palloc0(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
		mask[i] = kj_array_has_string(ids, id_of(cfg, i));
	return mask;
}

/* The id of rule i. */
static const char *
rule_id(const KTenantConfig *cfg, int i)
{
	return cfg->rules[i].id;
}

/* The id of policy i. */
static const char *
policy_id(const KTenantConfig *cfg, int i)
{
	return cfg->policies[i].id;
}

/* A node of the linear graph of a version 1 flow. */
static void
linear_node(KGraph *g, int i, const char *id, KNodeType type)
{
	KNode	   *n = &g->nodes[i];

	n->id = id;
	n->type = type;
	n->next = type == KNODE_RESPONSE ? -1 : i + 1;
	n->flow = -1;
	n->computed = -1;
	n->guardrails = true;
	n->caps = true;
	n->prices = true;
}

/* A version 1 flow's graph: the fixed pipeline's steps as nodes, parameters from the flow. */
static KGraph *
linear_graph(KFlow *f)
{
	static const KNodeType steps[] = {
		KNODE_INVENTORY, KNODE_MATCH_CREATIVES, KNODE_QUALIFY, KNODE_CONTACT_POLICY,
		KNODE_SCORE, KNODE_OPTIMIZE, KNODE_RANK, KNODE_RESPONSE
	};
	KGraph	   *g = palloc0(sizeof(KGraph));

	g->version = 1;
	g->nnodes = lengthof(steps);
	g->nodes = palloc0(sizeof(KNode) * g->nnodes);
	for (int i = 0; i < g->nnodes; i++)
		linear_node(g, i, kaireon_node_type_names[steps[i]], steps[i]);
	g->nodes[0].inv_categories = f->inv_categories;
	g->nodes[0].inv_sub_categories = f->inv_sub_categories;
	g->nodes[0].inv_offers = f->inv_offers;
	g->nodes[0].inv_exclude = f->inv_exclude;
	g->nodes[0].fuse_creatives = true;
	g->nodes[0].placement_match = g->nodes[1].placement_match = f->placement_match;
	g->nodes[4].spec = f;
	return g;
}

/* Compile one node of a version 2 flow (its successors are set by the caller). */
static void
compile_node(KTenantConfig *cfg, KFlow *f, KGraph *g, KNode *n, json_t *conf)
{
	switch (n->type)
	{
		case KNODE_INVENTORY:
			n->inv_categories = kj_array(conf, "categories");
			n->inv_sub_categories = kj_array(conf, "subCategories");
			n->inv_offers = kj_array(conf, "offers");
			n->inv_exclude = kj_array(conf, "excludeOffers");
			break;
		case KNODE_MATCH_CREATIVES:
			{
				const char *pm = kj_str(conf, "placementMatchMode");

				n->placement_match = (pm == NULL || strcmp(pm, "fallback") == 0) ? KPM_FALLBACK :
					strcmp(pm, "strict") == 0 ? KPM_STRICT : KPM_ANY;
				break;
			}
		case KNODE_ENRICH:
			n->schema = str_copy(conf, "schema");
			n->as = kj_str(conf, "as") ? str_copy(conf, "as") : n->schema;
			break;
		case KNODE_QUALIFY:
			n->only = id_mask(kj_array(conf, "rules"), cfg->nrules, rule_id, cfg);
			n->guardrails = kj_bool(conf, "guardrails", true);
			break;
		case KNODE_CONTACT_POLICY:
			n->only = id_mask(kj_array(conf, "policies"), cfg->npolicies, policy_id, cfg);
			n->caps = kj_bool(conf, "caps", true);
			break;
		case KNODE_FILTER:
			{
				json_t	   *e = json_object();

				json_object_set(e, strcmp(kj_str(conf, "logic") ? kj_str(conf, "logic") : "and", "or") == 0 ?
								"any" : "all", json_object_get(conf, "conditions"));
				n->expr = kaireon_parse_expr(e, "field", "op", 0);
				break;
			}
		case KNODE_CONDITIONAL:
			{
				const char *by = kj_str(conf, "by");
				json_t	   *branches = json_object_get(conf, "branches");
				size_t		i;
				json_t	   *b;

				n->by = strcmp(by, "segment") == 0 ? KBRANCH_SEGMENT : strcmp(by, "attribute") == 0 ?
					KBRANCH_ATTRIBUTE : strcmp(by, "experiment") == 0 ? KBRANCH_EXPERIMENT : KBRANCH_CHANNEL;
				n->nbranches = json_array_size(branches);
				n->branches = palloc0(sizeof(KBranch) * Max(n->nbranches, 1));
				json_array_foreach(branches, i, b)
				{
					KBranch    *br = &n->branches[i];

					br->name = str_copy(b, "name");
					br->next = -1;
					br->segment_id = str_copy(b, "segment");
					br->segment = -1;	/* resolved with the segment plan (eligibility.c) */
					br->when = json_object_get(b, "when") ? kaireon_parse_expr(json_object_get(b, "when"), "field", "op", 0) : NULL;
					br->arm = str_copy(b, "arm");
					br->channels = kj_array(b, "channels");
				}
				break;
			}
		case KNODE_CALL_FLOW:
			n->flow_key = str_copy(conf, "flowKey");
			break;
		case KNODE_SCORE:
			n->spec = palloc(sizeof(KFlow));
			*n->spec = *f;
			n->spec->graph = NULL;
			kaireon_compile_flow_score(n->spec, conf);
			break;
		case KNODE_OPTIMIZE:
			n->prices = kj_bool(conf, "prices", true);
			break;
		case KNODE_COMPUTE:
			{
				const char *name = kj_str(conf, "name");

				n->calc = compile_calc(g, json_object_get(conf, "expression"));
				if (strcmp(name, "score") == 0)
					n->computed = -1;
				else
				{
					n->computed = kaireon_graph_computed_index(g, name);
					if (n->computed < 0)
					{
						n->computed = g->ncomputed;
						g->computed = g->ncomputed == 0 ? palloc(sizeof(char *) * GRAPH_MAX_NODES) : g->computed;
						g->computed[g->ncomputed++] = pstrdup(name);
					}
				}
				break;
			}
		case KNODE_SET_PROPERTIES:
			n->properties = json_object_get(conf, "properties");
			break;
		case KNODE_RESPONSE:
			n->max_offers = (int) kj_num(conf, "maxOffers", 0);
			n->fields = kj_array(conf, "fields");
			break;
		case KNODE_EXTENSION_POINT:
			n->function = str_copy(conf, "function");
			n->timeout_ms = (int) kj_num(conf, "timeoutMs", 200);
			break;
		case KNODE_GROUP:
			n->placements = kj_array(conf, "placements");
			n->max_offers = (int) kj_num(conf, "maxOffers", 0);
			n->fields = kj_array(conf, "fields");
			break;
		case KNODE_RANK:
			{
				const char *by = kj_str(conf, "by");
				const char *order = kj_str(conf, "order");

				n->rank_by = KRANK_SCORE;
				for (int k = 0; by != NULL && kflow_rank_by_names[k] != NULL; k++)
					if (strcmp(by, kflow_rank_by_names[k]) == 0)
						n->rank_by = (KRankBy) k;
				n->rank_asc = order != NULL && strcmp(order, "asc") == 0;
				break;
			}
		case KNODE_NTYPES:
			break;
	}
}

/* The node index of an id in a compiled graph, or -1. */
static int
graph_index(const KGraph *g, const char *id)
{
	for (int i = 0; i < g->nnodes; i++)
		if (strcmp(g->nodes[i].id, id) == 0)
			return i;
	return -1;
}

/*
 * A version 2 flow's graph (validated when written): its nodes in document
 * order, successors as indexes; the flow's own settings (inventory, creative
 * matching, score, maxOffers: what explanations, models and campaigns read)
 * are taken from the entry, the first match_creatives, score and response
 * nodes.
 */
static KGraph *
node_graph(KTenantConfig *cfg, KFlow *f)
{
	json_t	   *nodes = json_object_get(f->config, "nodes");
	json_t	   *edges = json_object_get(f->config, "edges");
	KGraph	   *g = palloc0(sizeof(KGraph));
	size_t		i;
	json_t	   *n,
			   *e;
	bool		have_score = false,
				have_match = false,
				have_response = false;
	int		   *indeg;

	g->version = 2;
	g->nnodes = json_array_size(nodes);
	g->nodes = palloc0(sizeof(KNode) * Max(g->nnodes, 1));
	indeg = palloc0(sizeof(int) * Max(g->nnodes, 1));
	/* compute nodes first, so a candidate.<name> reference finds the name whatever the order */
	json_array_foreach(nodes, i, n)
	{
		if (strcmp(kj_str(n, "type"), "compute") == 0 &&
			strcmp(kj_str(json_object_get(n, "config"), "name"), "score") != 0 &&
			kaireon_graph_computed_index(g, kj_str(json_object_get(n, "config"), "name")) < 0)
		{
			g->computed = g->ncomputed == 0 ? palloc(sizeof(char *) * GRAPH_MAX_NODES) : g->computed;
			g->computed[g->ncomputed++] = pstrdup(kj_str(json_object_get(n, "config"), "name"));
		}
	}
	json_array_foreach(nodes, i, n)
	{
		KNode	   *node = &g->nodes[i];
		json_t	   *conf = json_object_get(n, "config");

		node->id = str_copy(n, "id");
		node->type = (KNodeType) kflow_node_type(kj_str(n, "type"));
		node->next = -1;
		node->otherwise = -1;
		node->flow = -1;
		node->computed = -1;
		node->guardrails = node->caps = node->prices = true;
		compile_node(cfg, f, g, node, conf ? conf : json_object());
	}
	json_array_foreach(edges, i, e)
	{
		int			a = graph_index(g, kj_str(e, "from"));
		int			b = graph_index(g, kj_str(e, "to"));
		const char *branch = kj_str(e, "branch");
		KNode	   *from = &g->nodes[a];

		indeg[b]++;
		if (from->type != KNODE_CONDITIONAL)
			from->next = b;
		else if (strcmp(branch, "default") == 0)
			from->otherwise = b;
		else
			for (int k = 0; k < from->nbranches; k++)
				if (strcmp(from->branches[k].name, branch) == 0)
					from->branches[k].next = b;
	}
	for (int k = 0; k < g->nnodes; k++)
	{
		KNode	   *node = &g->nodes[k];

		if (indeg[k] == 0)
			g->entry = k;
		/* an inventory node followed by match_creatives picks the creatives in its own pass */
		if (node->type == KNODE_INVENTORY && node->next >= 0 && g->nodes[node->next].type == KNODE_MATCH_CREATIVES)
		{
			node->fuse_creatives = true;
			node->placement_match = g->nodes[node->next].placement_match;
		}
		else if (node->type == KNODE_INVENTORY)
			node->placement_match = KPM_FALLBACK;
		if (node->type == KNODE_MATCH_CREATIVES && !have_match)
			f->placement_match = node->placement_match, have_match = true;
		if (node->type == KNODE_SCORE && !have_score)
		{
			kaireon_compile_flow_score(f, json_object_get(json_array_get(nodes, k), "config"));
			have_score = true;
		}
		if (node->type == KNODE_RESPONSE && !have_response && node->max_offers > 0)
			f->max_offers = node->max_offers, have_response = true;
	}
	f->inv_categories = g->nodes[g->entry].inv_categories;
	f->inv_sub_categories = g->nodes[g->entry].inv_sub_categories;
	f->inv_offers = g->nodes[g->entry].inv_offers;
	f->inv_exclude = g->nodes[g->entry].inv_exclude;
	/* the score nodes' specs: the flow as now settled, with their own score object */
	json_array_foreach(nodes, i, n)
		if (g->nodes[i].type == KNODE_SCORE)
	{
		json_t	   *conf = json_object_get(n, "config");

		*g->nodes[i].spec = *f;
		g->nodes[i].spec->graph = NULL;
		kaireon_compile_flow_score(g->nodes[i].spec, conf ? conf : json_object());
	}
	return g;
}

/*
 * Compile a flow's graph once per compiled configuration (compile.c, after the
 * flow's version 1 fields): version 2 from its nodes, version 1 as the linear
 * graph of the fixed pipeline.
 */
void
kaireon_compile_flow_graph(KTenantConfig *cfg, KFlow *f)
{
	if (kj_num(f->config, "version", 1) == 2 && json_is_array(json_object_get(f->config, "nodes")))
		f->graph = node_graph(cfg, f);
	else
		f->graph = linear_graph(f);
}
