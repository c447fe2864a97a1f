/*
 * config/cache.c
 *	  Per-backend cache of each tenant's compiled decisioning configuration.
 *
 * The first recommend or respond for a tenant reads its configuration tables
 * with SPI and compiles them into the structs of config.h, in a memory
 * context of their own under CacheMemoryContext.  Later calls reuse them and
 * do no SPI work for configuration.
 *
 * Invalidation protocol.  Every configuration table has a trigger
 * (kaireon.config_changed, see invalidate.c) that, in the writing
 * transaction, sets the tenant's row of kaireon.config_versions to a fresh
 * value of a sequence and calls CacheInvalidateRelcache on config_versions.
 * At commit every backend receives that relcache invalidation; our callback
 * only counts it (callbacks must not do catalog or SPI work): every cached
 * tenant is then "to check".  The next kaireon_config_get for such a tenant
 * reads the tenant's version (one indexed lookup) and recompiles only when
 * it changed.  A cached config also remembers the OID of config_versions, so
 * a dropped and recreated extension never reuses configurations compiled
 * before.  Entries are replaced only at the start of a call, never while a
 * pipeline holds a pointer into them.
 *
 * Changes that fire no statement trigger.  Logical replication's apply
 * worker (and any session with session_replication_role = replica) fires
 * only triggers enabled REPLICA or ALWAYS, and row triggers only (statement
 * triggers at the initial table copy).  Each configuration table therefore
 * also has a row trigger enabled REPLICA (kaireon_internal._config_changed_replica)
 * that writes nothing, so that a subscriber whose config_versions is not
 * replicated (or is) never conflicts with the publisher: it sends a relcache
 * invalidation of the sequence kaireon.config_version_seq, which tells every
 * backend to recompile every cached tenant whatever its version.  So does a
 * full reset of the caches (the backend may have missed such a message).
 * The triggers enabled REPLICA do not fire on the primary's write path.
 *
 * The callback bumps counters rather than flags on the entries, and a
 * lookup records the counters as they were before it read the version, so an
 * invalidation that arrives while a configuration is being compiled is not
 * lost.
 *
 * On Citus (kaireon.distribute()), a configuration change runs on the node
 * holding the tenant's shards, and relcache invalidations reach only that
 * node's backends; a backend elsewhere (the coordinator, or the old node of
 * a moved tenant) would keep a stale configuration.  So when
 * kaireon.config_versions is a distributed table, every call reads the
 * tenant's version (one indexed lookup on the tenant's own row, local in a
 * delegated call) and recompiles when it changed.  Whether it is distributed
 * is looked up again after every invalidation of config_versions (Citus's
 * create_distributed_table sends one).
 */
#include "postgres.h"

#include "util/json.h"
#include "util/version.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "common/cryptohash.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "config/caps.h"
#include "config/conditions.h"
#include "config/config.h"
#include "config/validate.h"
#include "stats/stats.h"

typedef struct CacheEntry
{
	char		tenant_id[NAMEDATALEN * 4]; /* hash key */
	KTenantConfig *config;
	uint64		checked;		/* check_count when its version was last read */
	uint64		compiled;		/* recompile_count when it was compiled */
	Oid			marker;			/* config_versions OID it was compiled under */
} CacheEntry;

static HTAB *config_cache = NULL;

/* The relations whose invalidations concern the cache (as last looked up). */
static Oid	version_marker = InvalidOid;	/* kaireon.config_versions */
static Oid	recompile_marker = InvalidOid;	/* kaireon.config_version_seq */

/* Whether config_versions is a Citus distributed table: -1 not known, else 0 / 1. */
static int	versions_distributed = -1;

/* Invalidations received: every tenant is to check / to recompile since. */
static uint64 check_count = 1;
static uint64 recompile_count = 1;

/*
 * Relcache callback: a change to config_versions makes every tenant "to check"; one to
 * config_version_seq (sent by the replica-mode trigger) or a full reset "to recompile".
 * Every invalidation also goes to kaireon_relcache_listener (config.h).
 */
void		(*kaireon_relcache_listener) (Oid relid) = NULL;

static void
config_cache_invalidate(Datum arg, Oid relid)
{
	if (kaireon_relcache_listener != NULL)
		kaireon_relcache_listener(relid);
	if (relid == InvalidOid || (OidIsValid(recompile_marker) && relid == recompile_marker))
	{
		check_count++;
		recompile_count++;
	}
	else if (OidIsValid(version_marker) && relid == version_marker)
		check_count++;
	if (relid == InvalidOid || relid == version_marker)
		versions_distributed = -1;
}

/*
 * Whether every call must read the tenant's version (config_versions is a
 * Citus distributed table, see the protocol above).  Runs inside SPI.
 */
static bool
check_every_call(Oid marker)
{
	if (versions_distributed < 0)
		versions_distributed = OidIsValid(marker) && kspi_citus_table("kaireon.config_versions") ? 1 : 0;
	return versions_distributed == 1;
}

int			kaireon_adaptation_refresh_ms = 1000;

/* Module init: the relcache callback (the hash table is made on first use) and settings. */
void
kaireon_config_cache_init(void)
{
	CacheRegisterRelcacheCallback(config_cache_invalidate, (Datum) 0);
	DefineCustomIntVariable("kaireon.adaptation_refresh_ms",
							"How old the adaptive propensity counts a backend uses may be, in milliseconds.",
							"0 reads them for every decision.",
							&kaireon_adaptation_refresh_ms, 1000, 0, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* OID of kaireon.config_versions, or InvalidOid when the extension is not there. */
static Oid
config_marker_oid(void)
{
	Oid			nsp = get_namespace_oid("kaireon", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid("config_versions", nsp);
}

/* ---- small SPI helpers (all run inside an SPI connection) ---- */

/* Run a query with the tenant id as $1 that returns one jsonb array (NULL: empty); parse it. */
static json_t *
spi_json(const char *sql, const char *tenant_id, const char *what)
{
	json_t	   *rows = kj_query_tenant(sql, tenant_id, what, true);

	return rows ? rows : json_array();
}

/* Copy a JSON string field into the cache context (NULL stays NULL). */
static const char *
str_field(const json_t *obj, const char *key)
{
	const char *s = kj_str(obj, key);

	return s ? pstrdup(s) : NULL;
}

/*
 * A numeric column of a configuration row, or dflt when NULL.  to_jsonb writes NaN and
 * Infinity as strings, which kj_num would read as dflt (a NaN cost as 0, a NaN budget as no
 * budget); every such column has a <table>_<column>_finite CHECK, so this is a defensive
 * check only (docs/schema.md, "Finite numbers").
 */
static double
finite_field(const KTenantConfig *cfg, const json_t *row, const char *table, const char *key, double dflt)
{
	json_t	   *v = json_object_get(row, key);

	if (v == NULL || json_is_null(v))
		return dflt;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s.%s of tenant \"%s\" (row \"%s\") is not a finite number: %s",
						table, key, cfg->tenant_id, kj_str(row, "id") ? kj_str(row, "id") : "?",
						json_is_string(v) ? json_string_value(v) : kj_type_name(v)),
				 errhint("Set the column to a finite number; kaireon refuses NaN and Infinity.")));
	return json_number_value(v);
}

/* ---- parsing pieces of configuration ---- */

/* Scope name to kind (NULL: global; the tables' CHECKs admit no other names than the list's). */
static KScopeKind
parse_scope_kind(const char *s)
{
	int			k;

	if (s == NULL)
		return KSCOPE_GLOBAL;
	k = kaireon_type_index(kaireon_scope_names, s);
	return k >= 0 ? (KScopeKind) k : KSCOPE_OFFER;
}

/* The scopes of a rule or policy: its scope rows, else its deprecated single scope. */
static void
parse_scopes(KTenantConfig *cfg, json_t *row, int *nscopes, KScope **scopes)
{
	json_t	   *rows = kj_array(row, "scopes");
	size_t		i;
	json_t	   *s;

	if (rows != NULL && json_array_size(rows) > 0)
	{
		*nscopes = json_array_size(rows);
		*scopes = palloc0(sizeof(KScope) * *nscopes);
		json_array_foreach(rows, i, s)
		{
			(*scopes)[i].kind = parse_scope_kind(kj_str(s, "scope"));
			(*scopes)[i].id = str_field(s, "scope_id");
			(*scopes)[i].segment = -1;
		}
	}
	else
	{
		*nscopes = 1;
		*scopes = palloc0(sizeof(KScope));
		(*scopes)[0].kind = parse_scope_kind(kj_str(row, "scope"));
		(*scopes)[0].id = str_field(row, "scope_id");
		(*scopes)[0].segment = -1;
	}
	/* segment scopes are resolved once segments are loaded */
	(void) cfg;
}

/* Bitmask of weekdays from an array of 0..6. */
static int
days_mask(json_t *days)
{
	int			mask = 0;
	size_t		i;
	json_t	   *d;

	if (days == NULL)
		return 0;
	json_array_foreach(days, i, d)
	{
		if (json_is_number(d))
		{
			int			day = (int) json_number_value(d);

			if (day >= 0 && day <= 6)
				mask |= 1 << day;
		}
	}
	return mask;
}

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

/* ---- loading each table ---- */

static void
load_channels(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id COLLATE \"C\") FROM kaireon.channels c "
		"WHERE c.tenant_id = $1 AND c.deleted_at IS NULL", cfg->tenant_id, "channels");
	size_t		i;
	json_t	   *r;

	cfg->nchannels = json_array_size(rows);
	cfg->channels = palloc0(sizeof(KChannel) * Max(cfg->nchannels, 1));
	json_array_foreach(rows, i, r)
	{
		KChannel   *c = &cfg->channels[i];

		c->id = str_field(r, "id");
		c->name = str_field(r, "name");
		c->channel_type = str_field(r, "channel_type");
		c->implicit_impressions = strcmp(kj_str(r, "impression_mode"), "implicit") == 0;
		c->consent_purpose = str_field(r, "consent_purpose");
		c->active = strcmp(kj_str(r, "status"), "active") == 0;
		c->row = r;
	}
}

/* The tenant's placements (not deleted), sorted by id. */
static void
load_placements(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(to_jsonb(p) ORDER BY p.id COLLATE \"C\") FROM kaireon.placements p "
		"WHERE p.tenant_id = $1 AND p.deleted_at IS NULL", cfg->tenant_id, "placements");
	size_t		i;
	json_t	   *r;

	cfg->nplacements = json_array_size(rows);
	cfg->placements = palloc0(sizeof(KPlacement) * Max(cfg->nplacements, 1));
	json_array_foreach(rows, i, r)
	{
		KPlacement *p = &cfg->placements[i];

		p->id = str_field(r, "id");
		p->channel_id = str_field(r, "channel_id");
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
	json_t	   *rows = spi_json(
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

		o->id = str_field(r, "id");
		o->name = str_field(r, "name");
		o->category_id = str_field(r, "category_id");
		o->category_name = str_field(r, "category_name");
		o->sub_category_id = str_field(r, "sub_category_id");
		o->active = strcmp(kj_str(r, "status"), "active") == 0;
		o->priority = (int) kj_num(r, "priority", 50);
		o->weight = finite_field(cfg, r, "offers", "weight", 100);
		o->mandatory = kj_bool(r, "mandatory", false);
		o->value = finite_field(cfg, r, "offers", "value", 0);
		o->margin = finite_field(cfg, r, "offers", "margin", 0);
		o->cost = finite_field(cfg, r, "offers", "cost", 0);
		o->holdout_percent = finite_field(cfg, r, "offers", "holdout_percent", 0);
		o->has_start = parse_ts(kj_str(sched, "start"), &o->start);
		o->has_end = parse_ts(kj_str(sched, "end"), &o->end);
		o->days_mask = days_mask(kj_array(sched, "days"));
		hours = json_object_get(sched, "hours");
		o->hour_start = hours ? (int) kj_num(hours, "start", -1) : -1;
		o->hour_end = hours ? (int) kj_num(hours, "end", -1) : -1;
		o->timezone = str_field(sched, "timezone");
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
	json_t	   *rows = spi_json(
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
		c->id = str_field(r, "id");
		c->name = str_field(r, "name");
		c->offer = offer;
		c->channel_id = str_field(r, "channel_id");
		c->channel = kaireon_find_channel(cfg, c->channel_id);
		c->placement_id = str_field(r, "placement_id");
		c->placement = c->placement_id == NULL ? -1 : kaireon_find_placement(cfg, c->placement_id);
		if (c->placement_id != NULL && c->placement < 0)
			c->placement = -2;	/* names a placement not loaded (soft-deleted): not a creative without one */
		c->weight = finite_field(cfg, r, "creatives", "weight", 100);
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

/* Resolve the segment indexes of segment scopes and segment lists. */
static int *
resolve_segments(KTenantConfig *cfg, json_t *ids, int *n)
{
	size_t		i;
	json_t	   *id;
	int		   *out;

	*n = ids ? json_array_size(ids) : 0;
	out = palloc(sizeof(int) * Max(*n, 1));
	json_array_foreach(ids, i, id)
		out[i] = kaireon_find_segment(cfg, json_string_value(id));
	return out;
}

/* The tenant's active qualification rules with their scopes, by priority. */
static void
load_rules(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(to_jsonb(r) || jsonb_build_object('scopes', "
		"         (SELECT coalesce(jsonb_agg(jsonb_build_object('scope', s.scope, 'scope_id', s.scope_id) "
		"                                    ORDER BY s.scope, s.scope_id), '[]') "
		"            FROM kaireon.qualification_rule_scopes s "
		"           WHERE s.tenant_id = $1 AND s.qualification_rule_id = r.id)) "
		"       ORDER BY r.priority DESC, r.id) "
		"  FROM kaireon.qualification_rules r "
		" WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND r.status = 'active'",
		cfg->tenant_id, "qualification rules");
	size_t		i;
	json_t	   *r;

	cfg->nrules = json_array_size(rows);
	cfg->rules = palloc0(sizeof(KRule) * Max(cfg->nrules, 1));
	json_array_foreach(rows, i, r)
	{
		KRule	   *rule = &cfg->rules[i];
		json_t	   *conf = json_object_get(r, "config");
		const char *type = kj_str(r, "rule_type");
		const char *stage = kj_str(r, "stage");
		const char *lvl;

		rule->id = str_field(r, "id");
		rule->name = str_field(r, "name");
		rule->priority = (int) kj_num(r, "priority", 0);
		rule->stage = strcmp(stage, "match") == 0 ? KSTAGE_MATCH :
			strcmp(stage, "fit") == 0 ? KSTAGE_FIT : KSTAGE_ELIGIBILITY;
		rule->multiplier = kj_num(conf, "multiplier", 0.5);
		parse_scopes(cfg, r, &rule->nscopes, &rule->scopes);
		/* the table's CHECK admits only the listed types; metric_condition is the last resort */
		rule->type = (KRuleType) kaireon_type_index(kaireon_qualification_type_names, type);
		if (rule->type == KRULE_SEGMENT_REQUIRED)
		{
			rule->segments = resolve_segments(cfg, kj_array(conf, "segmentIds"), &rule->nsegments);
			rule->match_all = kj_str(conf, "match") && strcmp(kj_str(conf, "match"), "all") == 0;
		}
		else if (rule->type == KRULE_ATTRIBUTE_CONDITION)
		{
			const char *src = kj_str(conf, "source");

			kaireon_parse_cond(conf, "attribute", "operator", &rule->cond);
			rule->attr_source = (src == NULL || strcmp(src, "any") == 0) ? 0 : strcmp(src, "customer") == 0 ? 1 : 2;
		}
		else if (rule->type == KRULE_OFFER_ATTRIBUTE)
		{
			kaireon_parse_cond(conf, "attribute", "operator", &rule->cond);
			kaireon_precompute_offer_rule(cfg, rule);
		}
		else if (rule->type == KRULE_PROPENSITY_THRESHOLD)
		{
			rule->threshold = kj_num(conf, "threshold", 0);
			rule->threshold_op = KOP_GTE;
			(void) kaireon_parse_op(kj_str(conf, "operator"), &rule->threshold_op);
			rule->model_key = str_field(conf, "modelKey");
		}
		else if (rule->type == KRULE_RECENCY_CHECK)
		{
			rule->within_hours = json_object_get(conf, "withinDays") ?
				kj_num(conf, "withinDays", 0) * 24 : kj_num(conf, "withinHours", 0);
			rule->require_recent = kj_str(conf, "mode") && strcmp(kj_str(conf, "mode"), "require") == 0;
			lvl = kj_str(conf, "level");
			rule->level = (lvl == NULL || strcmp(lvl, "offer") == 0) ? 0 : strcmp(lvl, "category") == 0 ? 1 : 2;
			rule->interaction_types = kj_array(conf, "interactionTypes");
			rule->outcomes = kj_array(conf, "outcomes");
			cfg->max_lookback_hours = Max(cfg->max_lookback_hours, rule->within_hours);
		}
		else
		{
			rule->type = KRULE_METRIC_CONDITION;
			rule->metric_key = str_field(conf, "metricKey");
			rule->dimension_key = str_field(conf, "dimensionKey");
			kaireon_parse_cond(conf, "metricKey", "operator", &rule->cond);
			cfg->needs_metrics = true;
		}
	}
}

/* Hours of a cap's window: its lookbackHours, or the calendar period's length at most. */
static double
window_hours(const KPolicy *p)
{
	if (p->period == NULL)
		return p->lookback_hours;
	if (strcmp(p->period, "day") == 0)
		return 24;
	if (strcmp(p->period, "week") == 0)
		return 24 * 7;
	return 24 * 31;
}

/* The tenant's active contact policies with their scopes, by priority. */
static void
load_policies(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(to_jsonb(p) || jsonb_build_object('scopes', "
		"         (SELECT coalesce(jsonb_agg(jsonb_build_object('scope', s.scope, 'scope_id', s.scope_id) "
		"                                    ORDER BY s.scope, s.scope_id), '[]') "
		"            FROM kaireon.contact_policy_scopes s "
		"           WHERE s.tenant_id = $1 AND s.contact_policy_id = p.id)) "
		"       ORDER BY p.priority DESC, p.id) "
		"  FROM kaireon.contact_policies p "
		" WHERE p.tenant_id = $1 AND p.deleted_at IS NULL AND p.status = 'active'",
		cfg->tenant_id, "contact policies");
	size_t		i;
	json_t	   *r;

	cfg->npolicies = json_array_size(rows);
	cfg->policies = palloc0(sizeof(KPolicy) * Max(cfg->npolicies, 1));
	json_array_foreach(rows, i, r)
	{
		KPolicy    *p = &cfg->policies[i];
		json_t	   *conf = json_object_get(r, "config");
		const char *type = kj_str(r, "rule_type");
		json_t	   *em = json_object_get(conf, "engagementMultiplier");

		int			t = kaireon_type_index(kaireon_policy_type_names, type);

		p->type = t >= 0 ? (KPolicyType) t : KPOL_FREQUENCY_CAP;
		p->type_name = kaireon_policy_type_names[p->type];
		p->id = str_field(r, "id");
		p->name = str_field(r, "name");
		p->priority = (int) kj_num(r, "priority", 0);
		parse_scopes(cfg, r, &p->nscopes, &p->scopes);
		p->bypassable = kj_bool(conf, "bypassable", true);
		p->engagement = em != NULL && (json_is_true(em) || (json_is_object(em) && kj_bool(em, "enabled", true)));
		p->engagement_min = json_is_object(em) ? kj_num(em, "min", 0.5) : 0.5;
		p->engagement_max = json_is_object(em) ? kj_num(em, "max", 1.5) : 1.5;
		if (p->engagement)
			cfg->has_engagement = true;
		p->max_count = (int) kj_num(conf, "maxCount", 0);
		p->period = str_field(conf, "period");
		p->lookback_hours = kj_num(conf, "lookbackHours", 0);
		p->count_types = kj_array(conf, "countTypes");
		p->outcomes = kj_array(conf, json_object_get(conf, "afterOutcomes") ? "afterOutcomes" : "outcomes");
		p->exempt_types = kj_array(conf, "exemptRuleTypes");
		p->timezone = str_field(conf, "timezone");
		switch (p->type)
		{
			case KPOL_COOLDOWN:
				p->hours = json_object_get(conf, "days") ? kj_num(conf, "days", 0) * 24 : kj_num(conf, "hours", 0);
				break;
			case KPOL_OUTCOME_BASED:
				{
					const char *lvl = kj_str(conf, "level");

					p->hours = kj_num(conf, "suppressDays", 0) * 24;
					p->level = (lvl == NULL || strcmp(lvl, "any") == 0) ? 2 : strcmp(lvl, "category") == 0 ? 1 : 0;
				}
				break;
			case KPOL_CATEGORY_SUPPRESSION:
				p->hours = kj_num(conf, "days", 0) * 24;
				p->ids = kj_array(conf, "categoryIds");
				break;
			case KPOL_MUTUAL_EXCLUSION:
				p->hours = kj_num(conf, "lookbackHours", 24 * 30);
				p->ids = kj_array(conf, "offerIds");
				break;
			case KPOL_SEGMENT_EXCLUSION:
				p->segments = resolve_segments(cfg, kj_array(conf, "segmentIds"), &p->nsegments);
				break;
			case KPOL_CROSS_CHANNEL_CAP:
				p->ids = kj_array(conf, "channelIds");
				break;
			case KPOL_OFFER_CATEGORY_CAP:
				p->ids = kj_array(conf, "categoryIds");
				break;
			case KPOL_ALLOW_OVERRIDE:
				p->ids = kj_array(conf, "offerIds");
				break;
			case KPOL_TIME_WINDOW:
				p->start_hour = (int) kj_num(conf, "startHour", 0);
				p->end_hour = (int) kj_num(conf, "endHour", 24);
				p->days_mask = days_mask(kj_array(conf, "days"));
				break;
			case KPOL_METRIC_CONDITION:
				p->metric_key = str_field(conf, "metricKey");
				p->dimension_key = str_field(conf, "dimensionKey");
				kaireon_parse_cond(conf, "metricKey", "operator", &p->cond);
				cfg->needs_metrics = true;
				break;
			case KPOL_BUDGET_EXHAUSTED:
				p->budget_id = str_field(conf, "budgetId");
				p->budget_metric = str_field(conf, "metric");
				p->budget_threshold = kj_num(conf, "threshold", 1.0);
				break;
			default:
				break;
		}
		switch (p->type)
		{
			case KPOL_FREQUENCY_CAP:
			case KPOL_CROSS_CHANNEL_CAP:
			case KPOL_CUSTOMER_TOTAL_CAP:
			case KPOL_OFFER_CATEGORY_CAP:
				cfg->max_lookback_hours = Max(cfg->max_lookback_hours, window_hours(p));
				break;
			case KPOL_COOLDOWN:
			case KPOL_OUTCOME_BASED:
			case KPOL_CATEGORY_SUPPRESSION:
			case KPOL_MUTUAL_EXCLUSION:
				cfg->max_lookback_hours = Max(cfg->max_lookback_hours, p->hours);
				break;
			default:
				break;
		}
	}
}

/* The tenant's active guardrail rules. */
static void
load_guardrails(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(to_jsonb(g) ORDER BY g.key) FROM kaireon.guardrail_rules g "
		"WHERE g.tenant_id = $1 AND g.deleted_at IS NULL AND g.status = 'active'",
		cfg->tenant_id, "guardrails");
	size_t		i;
	json_t	   *r;

	cfg->nguardrails = json_array_size(rows);
	cfg->guardrails = palloc0(sizeof(KGuardrail) * Max(cfg->nguardrails, 1));
	json_array_foreach(rows, i, r)
	{
		KGuardrail *g = &cfg->guardrails[i];

		g->id = str_field(r, "id");
		g->key = str_field(r, "key");
		g->name = str_field(r, "name");
		g->hard = strcmp(kj_str(r, "severity"), "hard") == 0;
		g->expr = kaireon_parse_expr(json_object_get(r, "expression_ast"), "field", "op", 0);
	}
}

/* The tenant's active trigger rules, their conditions compiled (docs/triggers.md). */
static void
load_trigger_rules(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
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

		t->id = str_field(r, "id");
		t->name = str_field(r, "name");
		t->event_type = str_field(r, "event_type");
		t->action_type = str_field(r, "action_type");
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
	json_t	   *rows = spi_json(
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

/* The tenant's published customer data tables, each with its kept lookup plan by key. */
static void
load_customer_schemas(KTenantConfig *cfg)
{
	/* the tenant's rows first, then the catalogs: Citus plans no query joining both */
	json_t	   *rows = spi_json(
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
		Oid			nsp = get_namespace_oid(str_field(r, "schema"), true);
		Oid			relid = OidIsValid(nsp) ? get_relname_relid(str_field(r, "table_name"), nsp) : InvalidOid;
		Oid			keytypes[1] = {OIDOID};
		Datum		keyargs[1];
		Oid			types2[2] = {TEXTOID, TEXTOID};

		if (!OidIsValid(relid))
			continue;			/* published, but its table is not there (yet) */
		cs = &cfg->customer_schemas[n++];
		cs->name = str_field(r, "name");
		cs->qualified_table = pstrdup(quote_qualified_identifier(str_field(r, "schema"), str_field(r, "table_name")));
		/* the key: the primary key's column after tenant_id */
		keyargs[0] = ObjectIdGetDatum(relid);
		if (kspi_execute_with_args("SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) "
								   "  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a "
								   "    ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1] "
								   " WHERE i.indrelid = $1 AND i.indisprimary",
								   1, keytypes, keyargs, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: could not read the key of %s", cs->qualified_table);
		if (SPI_processed == 0)
			continue;
		cs->key_column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		/* the row of one customer, by primary key; the tenant condition keeps RLS honest */
		cs->plan = kspi_prepare_keep(psprintf("SELECT t.* FROM %s t WHERE t.tenant_id = $2 AND t.%s = $1::%s",
											  cs->qualified_table, quote_identifier(cs->key_column),
											  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2)),
									 2, types2);
	}
	cfg->ncustomer_schemas = n;
}

/* The tenant's segments (their filters, joins and published views). */
static void
load_segments(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
		"SELECT jsonb_agg(jsonb_build_object('id', s.id, 'name', s.name, 'status', s.status, "
		"         'filters', s.filters, 'joins', s.joins, 'view', "
		"         CASE WHEN s.view_name IS NOT NULL THEN format('%I.%I', 'kaireon_t_' || t.slug, s.view_name) END) "
		"       ORDER BY s.id COLLATE \"C\") "
		"  FROM kaireon.segments s JOIN kaireon.tenants t ON t.id = s.tenant_id "
		" WHERE s.tenant_id = $1 AND t.id = $1",
		cfg->tenant_id, "segments");
	size_t		i;
	json_t	   *r;

	cfg->nsegments = json_array_size(rows);
	cfg->segments = palloc0(sizeof(KSegment) * Max(cfg->nsegments, 1));
	json_array_foreach(rows, i, r)
	{
		KSegment   *s = &cfg->segments[i];

		s->id = str_field(r, "id");
		s->name = str_field(r, "name");
		s->published = strcmp(kj_str(r, "status"), "published") == 0;
		s->view = s->published ? str_field(r, "view") : NULL;
		s->slot = -1;
	}
}

/* Give a referenced, published segment a slot in the membership query. */
static int
use_segment(KTenantConfig *cfg, int seg)
{
	if (seg < 0 || cfg->segments[seg].view == NULL)
		return -1;
	if (cfg->segments[seg].slot < 0)
		cfg->segments[seg].slot = cfg->nsegment_slots++;
	return seg;
}

/* The membership query of every segment the rules and policies refer to. */
static void
prepare_segment_plan(KTenantConfig *cfg)
{
	StringInfoData sql;
	Oid			argtypes[1] = {TEXTOID};

	for (int i = 0; i < cfg->nrules; i++)
	{
		for (int k = 0; k < cfg->rules[i].nscopes; k++)
			if (cfg->rules[i].scopes[k].kind == KSCOPE_SEGMENT)
				cfg->rules[i].scopes[k].segment = use_segment(cfg, kaireon_find_segment(cfg, cfg->rules[i].scopes[k].id));
		for (int k = 0; k < cfg->rules[i].nsegments; k++)
			use_segment(cfg, cfg->rules[i].segments[k]);
	}
	for (int i = 0; i < cfg->npolicies; i++)
	{
		for (int k = 0; k < cfg->policies[i].nscopes; k++)
			if (cfg->policies[i].scopes[k].kind == KSCOPE_SEGMENT)
				cfg->policies[i].scopes[k].segment = use_segment(cfg, kaireon_find_segment(cfg, cfg->policies[i].scopes[k].id));
		for (int k = 0; k < cfg->policies[i].nsegments; k++)
			use_segment(cfg, cfg->policies[i].segments[k]);
	}
	/* segments a flow graph's conditional branches on */
	for (int i = 0; i < cfg->nflows; i++)
		for (int k = 0; cfg->flows[i].graph != NULL && k < cfg->flows[i].graph->nnodes; k++)
		{
			KNode	   *n = &cfg->flows[i].graph->nodes[k];

			for (int b = 0; n->type == KNODE_CONDITIONAL && n->by == KBRANCH_SEGMENT && b < n->nbranches; b++)
				n->branches[b].segment = use_segment(cfg, kaireon_find_segment(cfg, n->branches[b].segment_id));
		}
	if (cfg->nsegment_slots == 0)
		return;
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ARRAY[");
	for (int slot = 0; slot < cfg->nsegment_slots; slot++)
	{
		for (int i = 0; i < cfg->nsegments; i++)
		{
			if (cfg->segments[i].slot != slot)
				continue;
			appendStringInfo(&sql, "%sEXISTS (SELECT 1 FROM %s WHERE customer_id = $1)",
							 slot > 0 ? ", " : "", cfg->segments[i].view);
		}
	}
	appendStringInfoString(&sql, "]::boolean[]");
	cfg->segment_plan = kspi_prepare_keep(sql.data, 1, argtypes);
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
	f->customer_schema = str_field(conf, "customerSchema");
	f->control_percent = kj_num(conf, "controlGroupPercent", 0);
	f->control_answer = kj_array(conf, "controlAnswer");
	f->flow_experiment_key = str_field(conf, "flowExperiment");
	f->flow_experiment = -1;
	kaireon_compile_flow_graph(cfg, f);
}

/* The tenant's decision flows with their published configuration. */
static void
load_flows(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
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

		f->id = str_field(r, "id");
		f->key = str_field(r, "key");
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
	rows = spi_json(
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

		e->key = str_field(r, "key");
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
	json_t	   *rows = spi_json(
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
		cfg->routes[i].channel_id = str_field(r, "channel_id");
		cfg->routes[i].placement_id = str_field(r, "placement_id");
		cfg->routes[i].flow = kaireon_find_flow(cfg, kj_str(r, "flow_key"));
		cfg->routes[i].priority = (int) kj_num(r, "priority", 0);
	}
}

/* A cap's scope kind from its name. */
static KScopeKind
cap_scope(const char *s)
{
	return parse_scope_kind(s);
}

/* The tenant's volume constraints and budget allocations in force. */
static void
load_caps(KTenantConfig *cfg)
{
	json_t	   *vols = spi_json(
		"SELECT jsonb_agg(to_jsonb(v) ORDER BY v.id COLLATE \"C\") FROM kaireon.volume_constraints v "
		"WHERE " KCAPS_VOLUME_IN_FORCE, cfg->tenant_id, "volume constraints");
	json_t	   *buds = spi_json(
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
		c->id = str_field(r, "id");
		c->name = str_field(r, "name");
		c->scope = cap_scope(kj_str(r, "scope"));
		c->scope_id = str_field(r, "scope_id");
		c->period = str_field(r, "period");
		c->max_volume = (int64) kj_num(r, "max_volume", 0);
	}
	json_array_foreach(buds, i, r)
	{
		KCap	   *c = &cfg->caps[n++];

		c->kind = KCAP_BUDGET;
		c->id = str_field(r, "id");
		c->name = str_field(r, "name");
		c->scope = cap_scope(kj_str(r, "scope"));
		c->scope_id = str_field(r, "scope_id");
		c->period = str_field(r, "period_type");
		c->period_key = str_field(r, "period_key");
		c->has_max_impressions = json_is_number(json_object_get(r, "max_impressions"));
		c->max_impressions = (int64) kj_num(r, "max_impressions", 0);
		c->max_spend = finite_field(cfg, r, "budget_allocations", "max_spend", 0);
		c->has_max_spend = json_is_number(json_object_get(r, "max_spend"));
		c->has_max_conversions = json_is_number(json_object_get(r, "max_conversions"));
		c->max_conversions = (int64) kj_num(r, "max_conversions", 0);
	}
}

/* The tenant's outcome types and its decision settings (trace sample rate, control group, identity links). */
static void
load_outcomes_and_settings(KTenantConfig *cfg)
{
	json_t	   *rows = spi_json(
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

		cfg->outcomes[i].key = str_field(r, "key");
		cfg->outcomes[i].classification = strcmp(c, "positive") == 0 ? KAIREON_OUTCOME_POSITIVE :
			strcmp(c, "negative") == 0 ? KAIREON_OUTCOME_NEGATIVE : KAIREON_OUTCOME_NEUTRAL;
	}
}

/*
 * The policy snapshot: the rules, policies and guardrails that decide
 * eligibility, as JSON, and the first 16 hex digits of its SHA-256.  A
 * decision trace names the hash; policy_snapshots keeps one row per hash.
 */
static void
load_policy_snapshot(KTenantConfig *cfg)
{
	json_t	   *snap = spi_json(
		"SELECT jsonb_build_object("
		" 'eligibilityPolicies', coalesce((SELECT jsonb_agg(jsonb_build_object('id', r.id, 'ruleType', r.rule_type, "
		"      'stage', r.stage, 'priority', r.priority, 'scope', r.scope, 'scopeId', r.scope_id, 'config', r.config) "
		"      ORDER BY r.id) FROM kaireon.qualification_rules r "
		"      WHERE r.tenant_id = $1 AND r.deleted_at IS NULL AND r.status = 'active'), '[]'), "
		" 'suppressionPolicies', coalesce((SELECT jsonb_agg(jsonb_build_object('id', p.id, 'ruleType', p.rule_type, "
		"      'priority', p.priority, 'scope', p.scope, 'scopeId', p.scope_id, 'config', p.config) "
		"      ORDER BY p.id) FROM kaireon.contact_policies p "
		"      WHERE p.tenant_id = $1 AND p.deleted_at IS NULL AND p.status = 'active'), '[]'), "
		" 'guardrailRules', coalesce((SELECT jsonb_agg(jsonb_build_object('id', g.id, 'key', g.key, "
		"      'severity', g.severity, 'expressionAst', g.expression_ast) ORDER BY g.id) "
		"      FROM kaireon.guardrail_rules g "
		"      WHERE g.tenant_id = $1 AND g.deleted_at IS NULL AND g.status = 'active'), '[]'))",
		cfg->tenant_id, "policy snapshot");
	char	   *text = kj_dump(snap, JSON_SORT_KEYS | JSON_COMPACT);
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[32];

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) text, strlen(text)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "kaireon: could not hash the policy snapshot");
	pg_cryptohash_free(ctx);
	for (int i = 0; i < 8; i++)
		snprintf(cfg->policy_hash + 2 * i, 3, "%02x", digest[i]);
	cfg->policy_snapshot = text;
}

/* Read the tenant's configuration version; -1 when the tenant does not exist. */
static int64
read_version(const char *tenant_id)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	int64		v;

	args[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args(
		"SELECT coalesce((SELECT version FROM kaireon.config_versions WHERE tenant_id = $1), 0) "
		"  FROM kaireon.tenants t WHERE t.id = $1", 1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not read the configuration version");
	if (SPI_processed == 0)
		return -1;
	v = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	return v;
}

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

/* A copy of n elements of size bytes in an array of their own (compile memory grows with what is bound). */
static void *
exact_copy(const void *from, int n, size_t size)
{
	void	   *to = palloc(size * Max(n, 1));

	memcpy(to, from, size * n);
	return to;
}

/*
 * Bind to an offer the rules and policies that can act on it (config/conditions.c),
 * in the order the candidate loop runs them (decision/rules.c, policies.c), so that
 * its cost grows with what applies to a candidate, not with every rule and policy.
 * Part of the compiled configuration: recompiled with it on every change.  rules and
 * pols: scratch space for every rule and policy (the lists are copied to their size).
 */
static void
bind_offer(KTenantConfig *cfg, int o, int *rules, KPolicyBinding *pols)
{
	KOffer	   *offer = &cfg->offers[o];
	int			npols = 0;

	for (int st = 0; st < 3; st++)
	{
		int			n = 0;

		for (int k = 0; k < cfg->nstage_rules[st]; k++)
			if (kaireon_rule_may_act(&cfg->rules[cfg->stage_rules[st][k]], o))
				rules[n++] = cfg->stage_rules[st][k];
		offer->nbound_rules[st] = n;
		offer->bound_rules[st] = exact_copy(rules, n, sizeof(int));
	}
	/* the allow_override policies, then the others, each in priority order */
	for (int pass = 0; pass < 2; pass++)
	{
		npols = 0;
		for (int i = 0; i < cfg->npolicies; i++)
		{
			const KPolicy *p = &cfg->policies[i];
			KPolicyBinding *b;

			if ((p->type == KPOL_ALLOW_OVERRIDE) != (pass == 0) || !kaireon_policy_may_act(cfg, p, o))
				continue;
			b = &pols[npols++];
			b->policy = i;
			b->scope = kaireon_static_scope(p, offer);
			b->independent = b->scope >= 0 && kaireon_policy_independent(p, &p->scopes[b->scope]);
			b->per_category = !b->independent && offer->category >= 0 && kaireon_policy_per_category(p);
		}
		if (pass == 0)
		{
			offer->nbound_overrides = npols;
			offer->bound_overrides = exact_copy(pols, npols, sizeof(KPolicyBinding));
		}
		else
		{
			offer->nbound_policies = npols;
			offer->bound_policies = exact_copy(pols, npols, sizeof(KPolicyBinding));
		}
	}
}

/* Compile a tenant's configuration into a new memory context. */
static KTenantConfig *
compile_config(const char *tenant_id, int64 version)
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
		load_segments(cfg);
		load_rules(cfg);
		load_policies(cfg);
		load_guardrails(cfg);
		load_trigger_rules(cfg);
		load_journey_events(cfg);
		load_flows(cfg);
		load_routes(cfg);
		load_flow_experiments(cfg);
		load_caps(cfg);
		load_outcomes_and_settings(cfg);
		load_customer_schemas(cfg);
		load_policy_snapshot(cfg);
		prepare_segment_plan(cfg);
		for (int i = 0; i < cfg->nchannels; i++)
			if (cfg->channels[i].consent_purpose != NULL)
				cfg->needs_consent = true;
		kaireon_prepare_state_plan(cfg);
		/* rules by stage, and every rule's and policy's static applicability per offer */
		for (int st = 0; st < 3; st++)
			cfg->stage_rules[st] = palloc(sizeof(int) * Max(cfg->nrules, 1));
		for (int i = 0; i < cfg->nrules; i++)
		{
			int			st = (int) cfg->rules[i].stage;

			cfg->stage_rules[st][cfg->nstage_rules[st]++] = i;
			cfg->rules[i].applies = kaireon_static_applicability(cfg, cfg->rules[i].nscopes, cfg->rules[i].scopes);
		}
		for (int i = 0; i < cfg->npolicies; i++)
			cfg->policies[i].applies = kaireon_static_applicability(cfg, cfg->policies[i].nscopes,
																	 cfg->policies[i].scopes);
		number_categories(cfg);
		{
			int		   *rules = palloc(sizeof(int) * Max(cfg->nrules, 1));
			KPolicyBinding *pols = palloc(sizeof(KPolicyBinding) * Max(cfg->npolicies, 1));

			for (int o = 0; o < cfg->noffers; o++)
				bind_offer(cfg, o, rules, pols);
			pfree(rules);
			pfree(pols);
		}
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
static void
free_config(KTenantConfig *cfg)
{
	free_plans(cfg);
	MemoryContextDelete(cfg->mcxt);
}

/*
 * The tenant's compiled configuration, compiling it on first use or after a
 * committed change.  Must be called inside an SPI connection.  Raises 42704
 * for an unknown tenant.
 */
KTenantConfig *
kaireon_config_get(const char *tenant_id)
{
	CacheEntry *e;
	bool		found;
	Oid			marker = config_marker_oid();
	int64		version;
	uint64		checked;
	uint64		compiled;

	kaireon_require_sql_version();
	if (strlen(tenant_id) >= sizeof(((CacheEntry *) 0)->tenant_id))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant id \"%.40s...\" is too long", tenant_id),
				 errhint("Tenant ids are at most 200 characters.")));
	if (config_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(((CacheEntry *) 0)->tenant_id);
		ctl.entrysize = sizeof(CacheEntry);
		ctl.hcxt = CacheMemoryContext;
		config_cache = hash_create("kaireon tenant configs", 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (marker != version_marker || !OidIsValid(recompile_marker))
	{
		version_marker = marker;
		recompile_marker = OidIsValid(marker) ?
			get_relname_relid("config_version_seq", get_rel_namespace(marker)) : InvalidOid;
	}
	e = hash_search(config_cache, tenant_id, HASH_ENTER, &found);
	if (!found)
	{
		e->config = NULL;
		e->checked = 0;
		e->compiled = 0;
		e->marker = InvalidOid;
	}
	if (e->config != NULL && e->checked == check_count && e->compiled == recompile_count && e->marker == marker &&
		!check_every_call(marker))
	{
		kaireon_stat_config(tenant_id, false);
		return e->config;
	}

	/* invalidations arriving from here on are for the next call */
	checked = check_count;
	compiled = recompile_count;
	version = read_version(tenant_id);
	if (version < 0)
	{
		if (e->config)
			free_config(e->config);
		hash_search(config_cache, tenant_id, HASH_REMOVE, NULL);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant_id),
				 errhint("Create it in kaireon.tenants, and check kaireon.tenant_id for row level security.")));
	}
	if (e->config != NULL && e->marker == marker && e->config->version == version && e->compiled == compiled)
	{
		e->checked = checked;
		kaireon_stat_config(tenant_id, false);
		return e->config;
	}
	{
		KTenantConfig *fresh = compile_config(tenant_id, version);

		if (e->config)
			free_config(e->config);
		e->config = fresh;
		e->marker = marker;
		e->checked = checked;
		e->compiled = compiled;
	}
	kaireon_stat_config(tenant_id, true);
	return e->config;
}

/*
 * kaireon.config_cache_stats(): one row per configuration compiled in this
 * backend (tenant, version, bytes of its memory context and what it holds),
 * for the tenants the caller may see (the rule of kaireon.stat_decisions).
 * Reads only this backend's cache: no SPI, no compile.
 */
PG_FUNCTION_INFO_V1(kaireon_config_cache_stats);
Datum
kaireon_config_cache_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const char *tenant = NULL;
	KStatScope	scope;
	HASH_SEQ_STATUS seq;
	CacheEntry *e;

	InitMaterializedSRF(fcinfo, 0);
	scope = kaireon_stat_scope(&tenant);
	if (config_cache == NULL || (scope == KSTAT_SEE_TENANT && tenant == NULL))
		return (Datum) 0;
	hash_seq_init(&seq, config_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		const KTenantConfig *cfg = e->config;
		Datum		v[7];
		bool		n[7] = {0};

		if (cfg == NULL || !kaireon_stat_visible(scope, tenant, MyDatabaseId, cfg->tenant_id))
			continue;
		v[0] = CStringGetTextDatum(cfg->tenant_id);
		v[1] = Int64GetDatum(cfg->version);
		v[2] = Int64GetDatum((int64) MemoryContextMemAllocated(cfg->mcxt, true));
		v[3] = Int32GetDatum(cfg->noffers);
		v[4] = Int32GetDatum(cfg->ncreatives);
		v[5] = Int32GetDatum(cfg->nrules);
		v[6] = Int32GetDatum(cfg->npolicies);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	return (Datum) 0;
}

/* ---- lookups ---- */

/* Binary search over an array of structs sorted by a const char *id at offset 0. */
#define BSEARCH_BY_ID(arr, n, key) \
	do { \
		int lo = 0, hi = (n) - 1; \
		if ((key) == NULL) return -1; \
		while (lo <= hi) \
		{ \
			int mid = (lo + hi) / 2; \
			int c = strcmp((arr)[mid].id, (key)); \
			if (c == 0) return mid; \
			if (c < 0) lo = mid + 1; else hi = mid - 1; \
		} \
		return -1; \
	} while (0)

/* Index of an offer by id (offers are sorted by id), or -1. */
int
kaireon_find_offer(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->offers, cfg->noffers, id);
}

/* Index of a channel by id, or -1. */
int
kaireon_find_channel(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->channels, cfg->nchannels, id);
}

/* Index of a placement by id, or -1. */
int
kaireon_find_placement(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->placements, cfg->nplacements, id);
}

/* Index of a segment by id, or -1. */
int
kaireon_find_segment(const KTenantConfig *cfg, const char *id)
{
	BSEARCH_BY_ID(cfg->segments, cfg->nsegments, id);
}

/* Index of a flow by key (flows are sorted by key), or -1. */
int
kaireon_find_flow(const KTenantConfig *cfg, const char *key)
{
	int			lo = 0,
				hi = cfg->nflows - 1;

	if (key == NULL)
		return -1;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(cfg->flows[mid].key, key);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Classification of an outcome key (neutral when unknown, with *found false). */
KaireonOutcomeClass
kaireon_outcome_class(const KTenantConfig *cfg, const char *key, bool *found)
{
	for (int i = 0; i < cfg->noutcomes; i++)
	{
		if (strcmp(cfg->outcomes[i].key, key) == 0)
		{
			*found = true;
			return cfg->outcomes[i].classification;
		}
	}
	*found = false;
	return KAIREON_OUTCOME_NEUTRAL;
}
