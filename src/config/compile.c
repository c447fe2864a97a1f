/*
 * config/compile.c
 *	  Compiling a tenant's configuration: the first recommend or respond for
 *	  a tenant (and the first after a committed change: the protocol in
 *	  cache.c) reads its configuration tables with SPI and compiles them into
 *	  the structs of config.h, in a memory context of their own under
 *	  CacheMemoryContext, so that later calls do no SPI work for
 *	  configuration.
 *
 * kaireon_config_compile runs the steps in order, each a table or a few
 * (one query each): channels, placements, offers (sorted by id, as the
 * lookups of lookup.c need) and their creatives; segments, qualification
 * rules, contact policies and guardrails (eligibility.c); trigger rules and
 * the event types journeys wait for; decision flows with their graphs
 * (flowgraph.c), routes and flow A/B tests; caps; outcome types and the
 * tenant's settings; customer data schemas; the policy snapshot; then what
 * is prepared over all of them: the segment membership query, the
 * per-request state queries (state_plan.c), the offers' category numbers and
 * the rules and policies bound to each offer (eligibility.c).  The plans it
 * keeps (SPI_keepplan) live outside the context: kaireon_config_free frees
 * them with it.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/relation.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "config/caps.h"
#include "config/compile.h"
#include "config/conditions.h"
#include "config/eligibility.h"
#include "config/rows.h"
#include "config/validate.h"

/* ---- loading each table ---- */

/* Parse a timestamp string of an offer schedule; false when absent. */
static bool
parse_ts(const char *s, TimestampTz *out)
{
	if (s == NULL)
		return false;
	*out = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	return true;
}

/* The tenant's channels (not deleted), sorted by id. */
static void
load_channels(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id COLLATE \"C\") FROM kaireon.channels c "
		"WHERE c.tenant_id = $1 AND c.deleted_at IS NULL", cfg->tenant_id, "channels");
	size_t		i;
	json_t	   *r;

	cfg->nchannels = json_array_size(rows);
	cfg->channels = palloc0(sizeof(KChannel) * Max(cfg->nchannels, 1));
	json_array_foreach(rows, i, r)
	{
		KChannel   *c = &cfg->channels[i];

		c->id = kcfg_str(r, "id");
		c->name = kcfg_str(r, "name");
		c->channel_type = kcfg_str(r, "channel_type");
		c->implicit_impressions = strcmp(kj_str(r, "impression_mode"), "implicit") == 0;
		c->consent_purpose = kcfg_str(r, "consent_purpose");
		c->active = strcmp(kj_str(r, "status"), "active") == 0;
		c->row = r;
	}
}

/* The tenant's placements (not deleted), sorted by id. */
static void
load_placements(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(p) ORDER BY p.id COLLATE \"C\") FROM kaireon.placements p "
		"WHERE p.tenant_id = $1 AND p.deleted_at IS NULL", cfg->tenant_id, "placements");
	size_t		i;
	json_t	   *r;

	cfg->nplacements = json_array_size(rows);
	cfg->placements = palloc0(sizeof(KPlacement) * Max(cfg->nplacements, 1));
	json_array_foreach(rows, i, r)
	{
		KPlacement *p = &cfg->placements[i];

		p->id = kcfg_str(r, "id");
		p->channel_id = kcfg_str(r, "channel_id");
		p->max_slots = (int) kj_num(r, "max_slots", 1);
		p->active = strcmp(kj_str(r, "status"), "active") == 0;
	}
}

/* strcmp order of two column names, for qsort. */
static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * An offer row's value as the compiled configuration keeps it: NULL for JSON null,
 * the shared empty object or array for an empty one, else a copy in the current
 * (the configuration's) context.
 */
static json_t *
offer_field(json_t *v, json_t *empty_object, json_t *empty_array)
{
	if (v == NULL || json_is_null(v))
		return NULL;
	if (json_is_object(v) && json_object_size(v) == 0)
		return empty_object;
	if (json_is_array(v) && json_array_size(v) == 0)
		return empty_array;
	return json_deep_copy(v);
}

/*
 * The tenant's offers (not deleted, nor in a deleted category or sub-category),
 * sorted by id.  The rows are read into a context of their own and dropped once
 * compiled: an offer keeps its values by column (KOffer.fields) and shares the
 * list of column names with the others (a jansson object per row cost about
 * 8.5 kB an offer, 86 MB at 10,000 offers; docs/performance.md).
 */
static void
load_offers(KTenantConfig *cfg)
{
	MemoryContext rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon offer rows",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(rows_cxt);

	/* offers whose category or sub-category is soft-deleted take no part either */
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(o) || jsonb_build_object('category_name', cat.name) ORDER BY o.id COLLATE \"C\") "
		"  FROM kaireon.offers o LEFT JOIN kaireon.categories cat ON cat.tenant_id = o.tenant_id AND cat.id = o.category_id "
		"WHERE o.tenant_id = $1 AND o.deleted_at IS NULL "
		"  AND NOT EXISTS (SELECT 1 FROM kaireon.categories c WHERE c.tenant_id = $1 "
		"                  AND c.id = o.category_id AND c.deleted_at IS NOT NULL) "
		"  AND NOT EXISTS (SELECT 1 FROM kaireon.sub_categories s WHERE s.tenant_id = $1 "
		"                  AND s.id = o.sub_category_id AND s.deleted_at IS NOT NULL)",
		cfg->tenant_id, "offers");
	size_t		i;
	json_t	   *r;
	KOfferShape *shape;
	json_t	   *empty_object;
	json_t	   *empty_array;

	MemoryContextSwitchTo(old);
	/* the column names, from the first row (every row has the same) */
	shape = palloc0(sizeof(KOfferShape));
	shape->names = palloc(sizeof(char *) * Max(json_object_size(json_array_get(rows, 0)), 1));
	{
		const char *key;
		json_t	   *v;

		json_object_foreach(json_array_get(rows, 0), key, v)
			shape->names[shape->ncolumns++] = pstrdup(key);
	}
	qsort(shape->names, shape->ncolumns, sizeof(char *), by_name);
	empty_object = json_object();
	empty_array = json_array();

	cfg->noffers = json_array_size(rows);
	cfg->offers = palloc0(sizeof(KOffer) * Max(cfg->noffers, 1));
	json_array_foreach(rows, i, r)
	{
		KOffer	   *o = &cfg->offers[i];
		json_t	   *sched = json_object_get(r, "schedule");
		json_t	   *hours;

		if (json_object_size(r) != (size_t) shape->ncolumns)
			elog(ERROR, "kaireon: offer rows of tenant \"%s\" differ in their columns", cfg->tenant_id);
		o->shape = shape;
		o->fields = palloc(sizeof(json_t *) * Max(shape->ncolumns, 1));
		for (int k = 0; k < shape->ncolumns; k++)
		{
			json_t	   *v = json_object_get(r, shape->names[k]);

			if (v == NULL)
				elog(ERROR, "kaireon: offer rows of tenant \"%s\" differ in their columns", cfg->tenant_id);
			o->fields[k] = offer_field(v, empty_object, empty_array);
		}

		o->id = kcfg_str(r, "id");
		o->name = kcfg_str(r, "name");
		o->category_id = kcfg_str(r, "category_id");
		o->category_name = kcfg_str(r, "category_name");
		o->sub_category_id = kcfg_str(r, "sub_category_id");
		o->active = strcmp(kj_str(r, "status"), "active") == 0;
		o->priority = (int) kj_num(r, "priority", 50);
		o->weight = kcfg_finite(cfg, r, "offers", "weight", 100);
		o->mandatory = kj_bool(r, "mandatory", false);
		o->value = kcfg_finite(cfg, r, "offers", "value", 0);
		o->margin = kcfg_finite(cfg, r, "offers", "margin", 0);
		o->cost = kcfg_finite(cfg, r, "offers", "cost", 0);
		o->holdout_percent = kcfg_finite(cfg, r, "offers", "holdout_percent", 0);
		o->has_start = parse_ts(kj_str(sched, "start"), &o->start);
		o->has_end = parse_ts(kj_str(sched, "end"), &o->end);
		o->days_mask = kcfg_days_mask(kj_array(sched, "days"));
		hours = json_object_get(sched, "hours");
		o->hour_start = hours ? (int) kj_num(hours, "start", -1) : -1;
		o->hour_end = hours ? (int) kj_num(hours, "end", -1) : -1;
		o->timezone = kcfg_str(sched, "timezone");
	}
	MemoryContextDelete(rows_cxt);
}

/*
 * The tenant's active creatives, by offer.  Their rows are read into a
 * context of their own and dropped once compiled: a creative keeps its
 * strings, its content (copied) and its compiled template, not the row
 * (which cost about 5 kB a creative as jansson objects).
 */
static void
load_creatives(KTenantConfig *cfg)
{
	MemoryContext rows_cxt = AllocSetContextCreate(CurrentMemoryContext, "kaireon creative rows",
												   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(rows_cxt);
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(jsonb_build_object('id', c.id, 'name', c.name, 'offer_id', c.offer_id, "
		"         'channel_id', c.channel_id, 'placement_id', c.placement_id, 'weight', c.weight, "
		"         'content', c.content, 'personalization', c.personalization) ORDER BY c.offer_id, c.id) "
		"  FROM kaireon.creatives c "
		"WHERE c.tenant_id = $1 AND c.deleted_at IS NULL AND c.status = 'active'",
		cfg->tenant_id, "creatives");
	size_t		i;
	json_t	   *r;
	int			n = 0;

	MemoryContextSwitchTo(old);

	cfg->creatives = palloc0(sizeof(KCreative) * Max(json_array_size(rows), 1));
	json_array_foreach(rows, i, r)
	{
		int			offer = kaireon_find_offer(cfg, kj_str(r, "offer_id"));
		KCreative  *c;

		if (offer < 0)
			continue;			/* its offer is soft-deleted */
		c = &cfg->creatives[n++];
		c->id = kcfg_str(r, "id");
		c->name = kcfg_str(r, "name");
		c->offer = offer;
		c->channel_id = kcfg_str(r, "channel_id");
		c->channel = kaireon_find_channel(cfg, c->channel_id);
		c->placement_id = kcfg_str(r, "placement_id");
		c->placement = c->placement_id == NULL ? -1 : kaireon_find_placement(cfg, c->placement_id);
		if (c->placement_id != NULL && c->placement < 0)
			c->placement = -2;	/* names a placement not loaded (soft-deleted): not a creative without one */
		c->weight = kcfg_finite(cfg, r, "creatives", "weight", 100);
		c->content = json_deep_copy(json_object_get(r, "content"));
		c->content_tpl = kaireon_template_compile(c->content, json_object_get(r, "personalization"));
	}
	MemoryContextDelete(rows_cxt);
	cfg->ncreatives = n;
	/* each offer's creatives (they are ordered by offer): counted, then listed */
	for (int k = 0; k < n; k++)
		cfg->offers[cfg->creatives[k].offer].ncreatives++;
	for (int o = 0; o < cfg->noffers; o++)
	{
		cfg->offers[o].creatives = palloc(sizeof(int) * Max(cfg->offers[o].ncreatives, 1));
		cfg->offers[o].ncreatives = 0;
	}
	for (int k = 0; k < n; k++)
	{
		KOffer	   *o = &cfg->offers[cfg->creatives[k].offer];

		o->creatives[o->ncreatives++] = k;
	}
}

/* The tenant's active trigger rules, their conditions compiled (docs/triggers.md). */
static void
load_trigger_rules(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(r) ORDER BY r.priority DESC, r.id) FROM kaireon.trigger_rules r "
		"WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND r.status = 'active'",
		cfg->tenant_id, "trigger rules");
	size_t		i;
	json_t	   *r;

	cfg->ntrigger_rules = json_array_size(rows);
	cfg->trigger_rules = palloc0(sizeof(KTriggerRule) * Max(cfg->ntrigger_rules, 1));
	json_array_foreach(rows, i, r)
	{
		KTriggerRule *t = &cfg->trigger_rules[i];
		json_t	   *cond = json_object_get(r, "condition");

		t->id = kcfg_str(r, "id");
		t->name = kcfg_str(r, "name");
		t->event_type = kcfg_str(r, "event_type");
		t->action_type = kcfg_str(r, "action_type");
		t->action_config = json_incref(json_object_get(r, "action_config"));
		t->priority = (int) kj_num(r, "priority", 0);
		/* bounded as the rule's check bounds it (rows from before the check: clamped, no overflow) */
		t->cooldown_ms = (int64) Max(0.0, Min(kj_num(r, "cooldown_ms", 0), (double) KAIREON_MAX_COOLDOWN_MS));
		t->cond = (json_is_object(cond) && json_object_size(cond) > 0) ? kaireon_parse_expr(cond, "field", "op", 0) : NULL;
	}
}

/*
 * The event types that the event waits of the tenant's published journey
 * versions (every version: an enrolment keeps the version it entered) wait
 * for.  An event of another type wakes nothing, so respond and the other
 * events skip the wake-up statement (decision/wake.c).  journeys has the
 * config_changed trigger on its published versions (48_journeys.sql).
 */
static void
load_journey_events(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(DISTINCT s.step -> 'event' ->> 'eventType') "
		"  FROM kaireon.journeys j "
		"  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(j.published_versions) = 'array' "
		"                                              THEN j.published_versions ELSE '[]' END) v (version) "
		"  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(v.version -> 'definition' -> 'steps') = 'array' "
		"                                              THEN v.version -> 'definition' -> 'steps' ELSE '[]' END) s (step) "
		" WHERE j.tenant_id = $1 AND s.step ->> 'type' = 'wait' AND s.step -> 'event' ->> 'eventType' IS NOT NULL",
		cfg->tenant_id, "journey event types");
	size_t		i;
	json_t	   *r;

	cfg->njourney_events = json_array_size(rows);
	cfg->journey_events = palloc0(sizeof(char *) * Max(cfg->njourney_events, 1));
	json_array_foreach(rows, i, r)
		cfg->journey_events[i] = pstrdup(json_string_value(r));
}

/*
 * The primary key index of a table as the catalog says now (the pg_index row
 * with indisprimary, a deferrable one too, which the lookup's SQL may use),
 * and in *second the attribute of its second key column; InvalidOid when it
 * has none.
 */
Oid
kaireon_primary_key(Relation rel, AttrNumber *second)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;

	*second = InvalidAttrNumber;
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index ix;

		if (!HeapTupleIsValid(tup))
			continue;
		ix = (Form_pg_index) GETSTRUCT(tup);
		if (ix->indisprimary)
		{
			found = ix->indexrelid;
			*second = ix->indnatts >= 2 ? ix->indkey.values[1] : InvalidAttrNumber;
		}
		ReleaseSysCache(tup);
		if (OidIsValid(found))
			break;
	}
	list_free(indexes);
	return found;
}

/* The tenant's published customer data tables, each with its kept lookup plan by key. */
static void
load_customer_schemas(KTenantConfig *cfg)
{
	/* the tenant's rows first, then the catalogs: Citus plans no query joining both */
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(jsonb_build_object('name', d.name, 'schema', 'kaireon_t_' || t.slug, "
		"         'table_name', d.table_name) ORDER BY d.name) "
		"  FROM kaireon.data_schemas d "
		"  JOIN kaireon.tenants t ON t.id = d.tenant_id "
		" WHERE d.tenant_id = $1 AND t.id = $1 AND d.status = 'published' AND d.entity_type = 'customer'",
		cfg->tenant_id, "customer data schemas");
	size_t		i;
	json_t	   *r;
	int			n = 0;

	cfg->customer_schemas = palloc0(sizeof(KCustomerSchema) * Max(json_array_size(rows), 1));
	json_array_foreach(rows, i, r)
	{
		KCustomerSchema *cs;
		Oid			nsp = get_namespace_oid(kcfg_str(r, "schema"), true);
		Oid			relid = OidIsValid(nsp) ? get_relname_relid(kcfg_str(r, "table_name"), nsp) : InvalidOid;
		Oid			types2[2] = {TEXTOID, TEXTOID};
		char	   *keytype;

		if (!OidIsValid(relid))
			continue;			/* published, but its table is not there (yet) */
		cs = &cfg->customer_schemas[n++];
		cs->name = kcfg_str(r, "name");
		cs->qualified_table = pstrdup(quote_qualified_identifier(kcfg_str(r, "schema"), kcfg_str(r, "table_name")));
		/* the key: the primary key's column after tenant_id, as the catalog says now (cache.c checks it again) */
		cs->table = relid;
		{
			Relation	rel = relation_open(relid, AccessShareLock);
			AttrNumber	keyatt;
			Form_pg_attribute att;

			cs->pk_index = kaireon_primary_key(rel, &keyatt);
			if (!OidIsValid(cs->pk_index) || keyatt <= 0)
			{
				relation_close(rel, AccessShareLock);
				continue;
			}
			att = TupleDescAttr(RelationGetDescr(rel), keyatt - 1);
			cs->key_column = pstrdup(NameStr(att->attname));
			keytype = format_type_with_typemod(att->atttypid, att->atttypmod);
			relation_close(rel, AccessShareLock);
		}
		/* the row of one customer, by primary key; the tenant condition keeps RLS honest */
		cs->plan = kspi_prepare_keep(psprintf("SELECT t.* FROM %s t WHERE t.tenant_id = $2 AND t.%s = $1::%s",
											  cs->qualified_table, quote_identifier(cs->key_column), keytype),
									 2, types2);
	}
	cfg->ncustomer_schemas = n;
}

/* Flow configuration: defaults documented in docs/recommend.md; then its graph (flowgraph.c). */
static void
compile_flow(KTenantConfig *cfg, KFlow *f)
{
	json_t	   *conf = f->config;
	json_t	   *inv = json_object_get(conf, "inventory");
	json_t	   *score = json_object_get(conf, "score");
	const char *pm = kj_str(conf, "placementMatchMode");

	f->inv_categories = kj_array(inv, "categories");
	f->inv_sub_categories = kj_array(inv, "subCategories");
	f->inv_offers = kj_array(inv, "offers");
	f->inv_exclude = kj_array(inv, "excludeOffers");
	f->placement_match = (pm == NULL || strcmp(pm, "fallback") == 0) ? KPM_FALLBACK :
		strcmp(pm, "strict") == 0 ? KPM_STRICT : KPM_ANY;
	kaireon_compile_flow_score(f, score);
	f->max_offers = (int) kj_num(conf, "maxOffers", 3);
	f->customer_schema = kcfg_str(conf, "customerSchema");
	f->control_percent = kj_num(conf, "controlGroupPercent", 0);
	f->control_answer = kj_array(conf, "controlAnswer");
	f->flow_experiment_key = kcfg_str(conf, "flowExperiment");
	f->flow_experiment = -1;
	kaireon_compile_flow_graph(cfg, f);
}

/* The tenant's decision flows with their published configuration. */
static void
load_flows(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(jsonb_build_object('id', f.id, 'key', f.key, 'status', f.status, "
		"         'is_default', f.is_default, 'version', f.published_version, "
		"         'config', (SELECT v -> 'config' FROM jsonb_array_elements(f.published_versions) v "
		"                     WHERE (v ->> 'version')::int = f.published_version)) ORDER BY f.key COLLATE \"C\") "
		"  FROM kaireon.decision_flows f WHERE f.tenant_id = $1 AND f.deleted_at IS NULL",
		cfg->tenant_id, "decision flows");
	size_t		i;
	json_t	   *r;

	cfg->nflows = json_array_size(rows);
	cfg->flows = palloc0(sizeof(KFlow) * Max(cfg->nflows, 1));
	cfg->default_flow = -1;
	json_array_foreach(rows, i, r)
	{
		KFlow	   *f = &cfg->flows[i];
		json_t	   *conf = json_object_get(r, "config");

		f->id = kcfg_str(r, "id");
		f->key = kcfg_str(r, "key");
		f->is_default = kj_bool(r, "is_default", false);
		f->version = (int) kj_num(r, "version", 0);
		f->runnable = strcmp(kj_str(r, "status"), "published") == 0 && conf != NULL && json_is_object(conf);
		f->config = (conf && json_is_object(conf)) ? conf : json_object();
		compile_flow(cfg, f);
		if (f->is_default)
			cfg->default_flow = i;
	}
	/* call_flow nodes' target flows, by key (-1: none; refused when run) */
	for (int k = 0; k < cfg->nflows; k++)
		for (int n = 0; n < cfg->flows[k].graph->nnodes; n++)
			if (cfg->flows[k].graph->nodes[n].type == KNODE_CALL_FLOW)
				cfg->flows[k].graph->nodes[n].flow = kaireon_find_flow(cfg, cfg->flows[k].graph->nodes[n].flow_key);
}

/*
 * The flow A/B tests the flows name (flowExperiment): one query, and none
 * when no flow names one.  An experiment that does not exist or has no flow
 * arms (traffic_split.flows) is left out: its flow runs itself.
 */
static void
load_flow_experiments(KTenantConfig *cfg)
{
	json_t	   *keys = json_array();
	json_t	   *rows;
	size_t		i;
	json_t	   *r;

	for (int f = 0; f < cfg->nflows; f++)
		if (cfg->flows[f].flow_experiment_key != NULL)
			json_array_append_new(keys, json_string(cfg->flows[f].flow_experiment_key));
	if (json_array_size(keys) == 0)
		return;
	rows = kcfg_rows(
		"SELECT jsonb_agg(jsonb_build_object('key', e.key, 'running', e.status = 'running', "
		"         'arms', (SELECT jsonb_agg(jsonb_build_array(a.key, a.value) ORDER BY a.key COLLATE \"C\") "
		"                    FROM jsonb_each(e.traffic_split -> 'flows') a)) ORDER BY e.key COLLATE \"C\") "
		"  FROM kaireon.experiments e "
		" WHERE e.tenant_id = $1 AND jsonb_typeof(e.traffic_split -> 'flows') = 'object'",
		cfg->tenant_id, "flow experiments");
	cfg->nflow_experiments = json_array_size(rows);
	cfg->flow_experiments = palloc0(sizeof(KFlowExperiment) * Max(cfg->nflow_experiments, 1));
	json_array_foreach(rows, i, r)
	{
		KFlowExperiment *e = &cfg->flow_experiments[i];
		json_t	   *arms = kj_array(r, "arms");
		size_t		k;
		json_t	   *a;

		e->key = kcfg_str(r, "key");
		e->running = kj_bool(r, "running", false);
		e->narms = json_array_size(arms);
		e->arms = palloc(sizeof(char *) * Max(e->narms, 1));
		e->arm_flows = palloc(sizeof(int) * Max(e->narms, 1));
		e->weights = palloc(sizeof(double) * Max(e->narms, 1));
		json_array_foreach(arms, k, a)
		{
			/* the weights were checked when written (kaireon_internal._check_flow_experiment) */
			e->arms[k] = pstrdup(json_string_value(json_array_get(a, 0)));
			e->arm_flows[k] = kaireon_find_flow(cfg, e->arms[k]);
			e->weights[k] = json_number_value(json_array_get(a, 1));
			e->total += e->weights[k];
		}
	}
	for (int f = 0; f < cfg->nflows; f++)
		for (int x = 0; x < cfg->nflow_experiments && cfg->flows[f].flow_experiment_key != NULL; x++)
			if (strcmp(cfg->flow_experiments[x].key, cfg->flows[f].flow_experiment_key) == 0)
				cfg->flows[f].flow_experiment = x;
}

/* The tenant's active flow routes (channel and placement to flow), by priority. */
static void
load_routes(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_agg(jsonb_build_object('channel_id', r.channel_id, 'placement_id', r.placement_id, "
		"         'flow_key', f.key, 'priority', r.priority) ORDER BY r.priority DESC, r.id) "
		"  FROM kaireon.flow_routes r JOIN kaireon.decision_flows f "
		"    ON f.tenant_id = $1 AND f.id = r.decision_flow_id AND f.deleted_at IS NULL "
		" WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND r.status = 'active'",
		cfg->tenant_id, "flow routes");
	size_t		i;
	json_t	   *r;

	cfg->nroutes = json_array_size(rows);
	cfg->routes = palloc0(sizeof(KRoute) * Max(cfg->nroutes, 1));
	json_array_foreach(rows, i, r)
	{
		cfg->routes[i].channel_id = kcfg_str(r, "channel_id");
		cfg->routes[i].placement_id = kcfg_str(r, "placement_id");
		cfg->routes[i].flow = kaireon_find_flow(cfg, kj_str(r, "flow_key"));
		cfg->routes[i].priority = (int) kj_num(r, "priority", 0);
	}
}

/* A cap's scope kind from its name. */
static KScopeKind
cap_scope(const char *s)
{
	return kcfg_scope_kind(s);
}

/* The tenant's volume constraints and budget allocations in force. */
static void
load_caps(KTenantConfig *cfg)
{
	json_t	   *vols = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id COLLATE \"C\") FROM kaireon.volume_constraints v "
		"WHERE " KCAPS_VOLUME_IN_FORCE, cfg->tenant_id, "volume constraints");
	json_t	   *buds = kcfg_rows(
		"SELECT jsonb_agg(to_jsonb(b) ORDER BY b.id COLLATE \"C\") FROM kaireon.budget_allocations b "
		"WHERE " KCAPS_BUDGET_IN_FORCE, cfg->tenant_id, "budgets");
	size_t		i;
	json_t	   *r;
	int			n = 0;

	cfg->ncaps = json_array_size(vols) + json_array_size(buds);
	cfg->caps = palloc0(sizeof(KCap) * Max(cfg->ncaps, 1));
	json_array_foreach(vols, i, r)
	{
		KCap	   *c = &cfg->caps[n++];

		c->kind = KCAP_VOLUME;
		c->id = kcfg_str(r, "id");
		c->name = kcfg_str(r, "name");
		c->scope = cap_scope(kj_str(r, "scope"));
		c->scope_id = kcfg_str(r, "scope_id");
		c->period = kcfg_str(r, "period");
		c->max_volume = (int64) kj_num(r, "max_volume", 0);
	}
	json_array_foreach(buds, i, r)
	{
		KCap	   *c = &cfg->caps[n++];

		c->kind = KCAP_BUDGET;
		c->id = kcfg_str(r, "id");
		c->name = kcfg_str(r, "name");
		c->scope = cap_scope(kj_str(r, "scope"));
		c->scope_id = kcfg_str(r, "scope_id");
		c->period = kcfg_str(r, "period_type");
		c->period_key = kcfg_str(r, "period_key");
		c->has_max_impressions = json_is_number(json_object_get(r, "max_impressions"));
		c->max_impressions = (int64) kj_num(r, "max_impressions", 0);
		c->max_spend = kcfg_finite(cfg, r, "budget_allocations", "max_spend", 0);
		c->has_max_spend = json_is_number(json_object_get(r, "max_spend"));
		c->has_max_conversions = json_is_number(json_object_get(r, "max_conversions"));
		c->max_conversions = (int64) kj_num(r, "max_conversions", 0);
	}
}

/* The tenant's outcome types and its decision settings (trace sample rate, control group, identity links). */
static void
load_outcomes_and_settings(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
		"SELECT jsonb_build_object('outcomes', coalesce((SELECT jsonb_agg(jsonb_build_object('key', o.key, "
		"           'classification', o.classification) ORDER BY o.key) FROM kaireon.outcome_types o "
		"           WHERE o.tenant_id = $1 AND o.deleted_at IS NULL), '[]'), "
		"         'sample_rate', coalesce((SELECT CASE WHEN jsonb_typeof(t.settings -> 'decisionTraceSampleRate') = 'number' "
		"                                   THEN least(greatest((t.settings ->> 'decisionTraceSampleRate')::float8, 0), 1) END "
		"                                   FROM kaireon.tenants t WHERE t.id = $1), "
		"                                  (SELECT s.decision_trace_sample_rate FROM kaireon.tenant_settings s "
		"                                    WHERE s.tenant_id = $1), 0.1), "
		"         'control_percent', (SELECT s.control_group_percent FROM kaireon.tenant_settings s "
		"                              WHERE s.tenant_id = $1), "
		/* sticky once a link was written (config/invalidate.c); the links too, after a restore */
		"         'identity_links', coalesce((SELECT v.identity_links FROM kaireon.config_versions v "
		"                                     WHERE v.tenant_id = $1), false) "
		"                           OR EXISTS (SELECT 1 FROM kaireon.identity_links l WHERE l.tenant_id = $1))",
		cfg->tenant_id, "outcome types");
	json_t	   *outs = kj_array(rows, "outcomes");
	size_t		i;
	json_t	   *r;

	cfg->trace_sample_rate = kj_num(rows, "sample_rate", 0.1);
	cfg->control_percent = kj_num(rows, "control_percent", 0);
	cfg->identity_links = kj_bool(rows, "identity_links", false);
	cfg->noutcomes = json_array_size(outs);
	cfg->outcomes = palloc0(sizeof(KOutcomeType) * Max(cfg->noutcomes, 1));
	json_array_foreach(outs, i, r)
	{
		const char *c = kj_str(r, "classification");

		cfg->outcomes[i].key = kcfg_str(r, "key");
		cfg->outcomes[i].classification = strcmp(c, "positive") == 0 ? KAIREON_OUTCOME_POSITIVE :
			strcmp(c, "negative") == 0 ? KAIREON_OUTCOME_NEGATIVE : KAIREON_OUTCOME_NEUTRAL;
	}
}

/* ---- the whole configuration ---- */

/* Free the plans a configuration kept (SPI_keepplan moved them out of its context). */
static void
free_plans(KTenantConfig *cfg)
{
	for (int i = 0; i < cfg->ncustomer_schemas; i++)
		if (cfg->customer_schemas != NULL && cfg->customer_schemas[i].plan != NULL)
			SPI_freeplan(cfg->customer_schemas[i].plan);
	if (cfg->segment_plan != NULL)
		SPI_freeplan(cfg->segment_plan);
	if (cfg->history_plan != NULL)
		SPI_freeplan(cfg->history_plan);
	if (cfg->suppression_plan != NULL)
		SPI_freeplan(cfg->suppression_plan);
	if (cfg->extras_plan != NULL)
		SPI_freeplan(cfg->extras_plan);
	if (cfg->adaptation_plan != NULL)
		SPI_freeplan(cfg->adaptation_plan);
}

/* qsort order of offer indexes by category id (arg: the offers). */
static int
by_category(const void *a, const void *b, void *arg)
{
	const KOffer *offers = arg;

	return strcmp(offers[*(const int *) a].category_id, offers[*(const int *) b].category_id);
}

/* Number the offers' distinct category ids (KOffer.category; -1 without a category). */
static void
number_categories(KTenantConfig *cfg)
{
	int		   *order = palloc(sizeof(int) * Max(cfg->noffers, 1));
	int			n = 0;

	for (int o = 0; o < cfg->noffers; o++)
	{
		cfg->offers[o].category = -1;
		if (cfg->offers[o].category_id != NULL)
			order[n++] = o;
	}
	qsort_arg(order, n, sizeof(int), by_category, cfg->offers);
	for (int k = 0; k < n; k++)
	{
		if (k > 0 && strcmp(cfg->offers[order[k]].category_id, cfg->offers[order[k - 1]].category_id) != 0)
			cfg->ncategories++;
		cfg->offers[order[k]].category = cfg->ncategories;
	}
	if (n > 0)
		cfg->ncategories++;
	pfree(order);
}

/* Compile a tenant's configuration into a new memory context (the steps: above). */
KTenantConfig *
kaireon_config_compile(const char *tenant_id, int64 version)
{
	MemoryContext mcxt = AllocSetContextCreate(CacheMemoryContext, "kaireon tenant config",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(mcxt);
	KTenantConfig *cfg = palloc0(sizeof(KTenantConfig));

	PG_TRY();
	{
		cfg->tenant_id = pstrdup(tenant_id);
		cfg->version = version;
		cfg->mcxt = mcxt;
		MemoryContextSetIdentifier(mcxt, cfg->tenant_id);
		load_channels(cfg);
		load_placements(cfg);
		load_offers(cfg);
		load_creatives(cfg);
		kaireon_load_segments(cfg);
		kaireon_load_rules(cfg);
		kaireon_load_policies(cfg);
		kaireon_load_guardrails(cfg);
		load_trigger_rules(cfg);
		load_journey_events(cfg);
		load_flows(cfg);
		load_routes(cfg);
		load_flow_experiments(cfg);
		load_caps(cfg);
		load_outcomes_and_settings(cfg);
		load_customer_schemas(cfg);
		kaireon_load_policy_snapshot(cfg);
		kaireon_prepare_segment_plan(cfg);
		for (int i = 0; i < cfg->nchannels; i++)
			if (cfg->channels[i].consent_purpose != NULL)
				cfg->needs_consent = true;
		kaireon_prepare_state_plan(cfg);
		number_categories(cfg);
		/* rules by stage, their and the policies' static applicability, what is bound to each offer */
		kaireon_bind_offers(cfg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		/* plans kept so far belong to the dropped config; free them with it */
		free_plans(cfg);
		MemoryContextDelete(mcxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	return cfg;
}

/* Free a compiled configuration and its saved plans. */
void
kaireon_config_free(KTenantConfig *cfg)
{
	free_plans(cfg);
	MemoryContextDelete(cfg->mcxt);
}
