/*
 * config/eligibility.c
 *	  Compiling what decides which offers a customer may get (compile.c
 *	  calls these in its steps): the tenant's segments and the membership
 *	  query of those referred to, its qualification rules, contact policies
 *	  and guardrails, the policy snapshot a decision trace names, and the
 *	  binding of rules and policies to each offer that the candidate loop
 *	  runs (decision/rules.c, policies.c).  Everything runs inside SPI, in
 *	  the configuration's memory context; conditions.c compiles the
 *	  conditions and scopes themselves.
 */
#include "postgres.h"

#include "util/json.h"

#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "util/spi.h"
#include "config/conditions.h"
#include "config/eligibility.h"
#include "config/rows.h"

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
			(*scopes)[i].kind = kcfg_scope_kind(kj_str(s, "scope"));
			(*scopes)[i].id = kcfg_str(s, "scope_id");
			(*scopes)[i].segment = -1;
		}
	}
	else
	{
		*nscopes = 1;
		*scopes = palloc0(sizeof(KScope));
		(*scopes)[0].kind = kcfg_scope_kind(kj_str(row, "scope"));
		(*scopes)[0].id = kcfg_str(row, "scope_id");
		(*scopes)[0].segment = -1;
	}
	/* segment scopes are resolved once segments are loaded */
	(void) cfg;
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

/* The tenant's segments (their filters, joins and published views). */
void
kaireon_load_segments(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
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

		s->id = kcfg_str(r, "id");
		s->name = kcfg_str(r, "name");
		s->published = strcmp(kj_str(r, "status"), "published") == 0;
		s->view = s->published ? kcfg_str(r, "view") : NULL;
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
void
kaireon_prepare_segment_plan(KTenantConfig *cfg)
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

/* The tenant's active qualification rules with their scopes, by priority. */
void
kaireon_load_rules(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
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

		rule->id = kcfg_str(r, "id");
		rule->name = kcfg_str(r, "name");
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
			rule->model_key = kcfg_str(conf, "modelKey");
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
			rule->metric_key = kcfg_str(conf, "metricKey");
			rule->dimension_key = kcfg_str(conf, "dimensionKey");
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
void
kaireon_load_policies(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
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
		p->id = kcfg_str(r, "id");
		p->name = kcfg_str(r, "name");
		p->priority = (int) kj_num(r, "priority", 0);
		parse_scopes(cfg, r, &p->nscopes, &p->scopes);
		p->bypassable = kj_bool(conf, "bypassable", true);
		p->engagement = em != NULL && (json_is_true(em) || (json_is_object(em) && kj_bool(em, "enabled", true)));
		p->engagement_min = json_is_object(em) ? kj_num(em, "min", 0.5) : 0.5;
		p->engagement_max = json_is_object(em) ? kj_num(em, "max", 1.5) : 1.5;
		if (p->engagement)
			cfg->has_engagement = true;
		p->max_count = (int) kj_num(conf, "maxCount", 0);
		p->period = kcfg_str(conf, "period");
		p->lookback_hours = kj_num(conf, "lookbackHours", 0);
		p->count_types = kj_array(conf, "countTypes");
		p->outcomes = kj_array(conf, json_object_get(conf, "afterOutcomes") ? "afterOutcomes" : "outcomes");
		p->exempt_types = kj_array(conf, "exemptRuleTypes");
		p->timezone = kcfg_str(conf, "timezone");
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
				p->days_mask = kcfg_days_mask(kj_array(conf, "days"));
				break;
			case KPOL_METRIC_CONDITION:
				p->metric_key = kcfg_str(conf, "metricKey");
				p->dimension_key = kcfg_str(conf, "dimensionKey");
				kaireon_parse_cond(conf, "metricKey", "operator", &p->cond);
				cfg->needs_metrics = true;
				break;
			case KPOL_BUDGET_EXHAUSTED:
				p->budget_id = kcfg_str(conf, "budgetId");
				p->budget_metric = kcfg_str(conf, "metric");
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
void
kaireon_load_guardrails(KTenantConfig *cfg)
{
	json_t	   *rows = kcfg_rows(
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

		g->id = kcfg_str(r, "id");
		g->key = kcfg_str(r, "key");
		g->name = kcfg_str(r, "name");
		g->hard = strcmp(kj_str(r, "severity"), "hard") == 0;
		g->expr = kaireon_parse_expr(json_object_get(r, "expression_ast"), "field", "op", 0);
	}
}

/*
 * The policy snapshot: the rules, policies and guardrails that decide
 * eligibility, as JSON, and the first 16 hex digits of its SHA-256.  A
 * decision trace names the hash; policy_snapshots keeps one row per hash.
 */
void
kaireon_load_policy_snapshot(KTenantConfig *cfg)
{
	json_t	   *snap = kcfg_rows(
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

/* A copy of n elements of size bytes in an array of their own (compile memory grows with what is bound). */
static void *
exact_copy(const void *from, int n, size_t size)
{
	void	   *to = palloc(size * Max(n, 1));

	memcpy(to, from, size * n);
	return to;
}

/*
 * Classes of offers being formed (bind_offer): offers with equal keys share a
 * class.  Each class's key, the first offer of the class (which owns the bound
 * lists the others share), and the classes of one key hash chained.  One table
 * for the qualification classes, one for the policy classes, in a scratch
 * context of the compile.
 */
typedef struct OfferClasses
{
	MemoryContext cxt;			/* the scratch context the keys are in */
	HTAB	   *by_hash;		/* key hash -> its last class (OfferClassSlot) */
	int			n;
	int		  **keys;			/* by class */
	int		   *keylen;
	int		   *owner;			/* the offer whose lists the class shares */
	int		   *next;			/* the class before it of the same hash, -1: none */
} OfferClasses;

/* An entry of OfferClasses.by_hash: the last class made of one key hash. */
typedef struct OfferClassSlot
{
	uint32		hash;
	int			cls;
} OfferClassSlot;

/* An empty table of classes for up to noffers classes, in scratch. */
static OfferClasses
offer_classes(MemoryContext scratch, int noffers)
{
	HASHCTL		ctl = {.keysize = sizeof(uint32), .entrysize = sizeof(OfferClassSlot), .hcxt = scratch};
	int			m = Max(noffers, 1);
	OfferClasses t = {
		.cxt = scratch,
		.by_hash = hash_create("kaireon offer classes", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT),
		.keys = MemoryContextAlloc(scratch, sizeof(int *) * m),
		.keylen = MemoryContextAlloc(scratch, sizeof(int) * m),
		.owner = MemoryContextAlloc(scratch, sizeof(int) * m),
		.next = MemoryContextAlloc(scratch, sizeof(int) * m),
	};

	return t;
}

/* The class of offer o's key (len ints, in t's scratch context): a new one, owned by o, for a key not seen before. */
static int
class_of(OfferClasses *t, int o, int *key, int len)
{
	uint32		hash = hash_bytes((const unsigned char *) key, sizeof(int) * len);
	bool		found;
	OfferClassSlot *slot = hash_search(t->by_hash, &hash, HASH_ENTER, &found);
	int			c;

	for (c = found ? slot->cls : -1; c >= 0; c = t->next[c])
		if (t->keylen[c] == len && memcmp(t->keys[c], key, sizeof(int) * len) == 0)
			return c;
	c = t->n++;
	t->keys[c] = key;
	t->keylen[c] = len;
	t->owner[c] = o;
	t->next[c] = found ? slot->cls : -1;
	slot->cls = c;
	return c;
}

/*
 * Does a bound rule give the same verdict for every offer of a class in one
 * request?  Customer-only rules do (decision/rules.c evaluates them once per
 * request), and offer_attribute rules whose verdict per offer was computed at
 * compile (the class key holds it); a scope known at compile (applies 1) or
 * one depending on the request alone (applies -1: no scope of the offer's
 * kinds covers it, so only its segment and channel scopes can) adds nothing
 * that differs between the offers of a class.
 */
static bool
rule_same_in_class(const KRule *rule)
{
	return kaireon_rule_customer_only(rule) ||
		(rule->type == KRULE_OFFER_ATTRIBUTE && rule->offer_holds != NULL);
}

/*
 * The offer's qualification class (KOffer.qual_class), or -1: offers whose
 * bound rules are the same, each applying to them the same way (its static
 * applicability and, for an offer_attribute rule, its verdict), qualify the
 * same in any request.  lists: the bound rules of the three stages, one after
 * the other (n[st] each).  A new class is made for a key not seen before.
 */
static int
qual_class(const KTenantConfig *cfg, OfferClasses *t, int o, const int *lists, const int *n)
{
	int			len = 3 + n[0] + n[1] + n[2];
	int		   *key;

	if (len == 3)
		return -1;				/* no rule bound: nothing to share */
	key = MemoryContextAlloc(t->cxt, sizeof(int) * len);
	memcpy(key, n, sizeof(int) * 3);
	for (int k = 0; k < len - 3; k++)
	{
		const KRule *rule = &cfg->rules[lists[k]];

		if (!rule_same_in_class(rule))
			return -1;
		key[3 + k] = lists[k] * 4 + (rule->applies[o] == 1 ? 2 : 0) +
			(rule->type == KRULE_OFFER_ATTRIBUTE && rule->offer_holds[o] ? 1 : 0);
	}
	return class_of(t, o, key, len);
}

/*
 * The offer's policy class (KOffer.policy_class), or -1: offers of one category
 * with the same policies bound, each under the same scope known at compile and
 * with the same evaluation (KPolicyBinding), of which at least one is evaluated
 * once per request or category (independent, per_category): for those the
 * offers of a class get the same verdicts, so decision/policies.c finds the
 * first of them that blocks once per class and request.  pols: the allow_override
 * bindings (nover), then the others (npols).
 */
static int
policy_class(const KOffer *offer, OfferClasses *t, int o, const KPolicyBinding *pols, int nover, int npols)
{
	int			len = 3 + 2 * nover + 3 * npols;
	int		   *key;
	int			at = 3;
	bool		any_constant = false;

	for (int k = 0; k < nover + npols; k++)
		if (pols[k].scope < 0)
			return -1;			/* the scope covering it is matched per request, maybe differently */
	key = MemoryContextAlloc(t->cxt, sizeof(int) * len);
	key[0] = offer->category;
	key[1] = nover;
	key[2] = npols;
	for (int k = 0; k < nover + npols; k++)
	{
		key[at++] = pols[k].policy;
		key[at++] = pols[k].scope;
		if (k >= nover)
		{
			key[at++] = (pols[k].independent ? 2 : 0) + (pols[k].per_category ? 1 : 0);
			any_constant |= kaireon_binding_constant(&pols[k]);
		}
	}
	return any_constant ? class_of(t, o, key, len) : -1;
}

/*
 * Bind to an offer the rules and policies that can act on it (config/conditions.c),
 * in the order the candidate loop runs them (decision/rules.c, policies.c), so that
 * its cost grows with what applies to a candidate, not with every rule and policy,
 * and give it its qualification and policy classes (qual_class, policy_class): an
 * offer of a class seen before shares that class's lists.  Part of the compiled
 * configuration: recompiled with it on every change.  rules and pols: scratch space
 * for every rule and policy (the lists are copied to their size).
 */
static void
bind_offer(KTenantConfig *cfg, OfferClasses *qc, OfferClasses *pc, int o, int *rules, KPolicyBinding *pols)
{
	KOffer	   *offer = &cfg->offers[o];
	int			n[3];
	int			npols[2];
	int			at = 0;
	const KOffer *owner;

	/* the rules of each stage that may act on it, the stages one after the other in rules */
	for (int st = 0; st < 3; st++)
	{
		n[st] = 0;
		for (int k = 0; k < cfg->nstage_rules[st]; k++)
			if (kaireon_rule_may_act(&cfg->rules[cfg->stage_rules[st][k]], o))
				rules[at + n[st]++] = cfg->stage_rules[st][k];
		at += n[st];
	}
	offer->qual_class = qual_class(cfg, qc, o, rules, n);
	owner = offer->qual_class >= 0 ? &cfg->offers[qc->owner[offer->qual_class]] : offer;
	at = 0;
	for (int st = 0; st < 3; st++)
	{
		offer->nbound_rules[st] = n[st];
		offer->bound_rules[st] = owner != offer ? owner->bound_rules[st] : exact_copy(rules + at, n[st], sizeof(int));
		at += n[st];
	}

	/* the allow_override policies, then the others after them in pols, each in priority order */
	at = 0;
	for (int pass = 0; pass < 2; pass++)
	{
		npols[pass] = 0;
		for (int i = 0; i < cfg->npolicies; i++)
		{
			const KPolicy *p = &cfg->policies[i];
			KPolicyBinding *b;

			if ((p->type == KPOL_ALLOW_OVERRIDE) != (pass == 0) || !kaireon_policy_may_act(cfg, p, o))
				continue;
			b = &pols[at + npols[pass]++];
			memset(b, 0, sizeof(KPolicyBinding));
			b->policy = i;
			b->scope = kaireon_static_scope(p, offer);
			b->independent = b->scope >= 0 && kaireon_policy_independent(p, &p->scopes[b->scope]);
			b->per_category = !b->independent && offer->category >= 0 && kaireon_policy_per_category(p);
		}
		at += npols[pass];
	}
	offer->policy_class = policy_class(offer, pc, o, pols, npols[0], npols[1]);
	owner = offer->policy_class >= 0 ? &cfg->offers[pc->owner[offer->policy_class]] : offer;
	offer->nbound_overrides = npols[0];
	offer->bound_overrides = owner != offer ? owner->bound_overrides : exact_copy(pols, npols[0], sizeof(KPolicyBinding));
	offer->nbound_policies = npols[1];
	offer->bound_policies = owner != offer ? owner->bound_policies :
		exact_copy(pols + npols[0], npols[1], sizeof(KPolicyBinding));
	/* a policy class's bindings evaluated per candidate, the ones its class path visits */
	if (offer->policy_class >= 0 && owner != offer)
	{
		offer->nown_policies = owner->nown_policies;
		offer->own_policies = owner->own_policies;
		offer->own_need_offer_event = owner->own_need_offer_event;
	}
	else if (offer->policy_class >= 0)
	{
		const KPolicyBinding *bound = offer->bound_policies;

		offer->own_policies = palloc(sizeof(int) * Max(npols[1], 1));
		offer->nown_policies = 0;
		offer->own_need_offer_event = true;
		for (int k = 0; k < npols[1]; k++)
			if (!kaireon_binding_constant(&bound[k]))
			{
				offer->own_policies[offer->nown_policies++] = k;
				offer->own_need_offer_event &= kaireon_policy_needs_offer_event(&cfg->policies[bound[k].policy]);
			}
	}
}

/*
 * The rules by stage, every rule's and policy's static applicability per
 * offer, then each offer's bound rules and policies and its qualification
 * and policy classes (bind_offer).  After the offers' categories are numbered and the
 * offer_attribute rules' verdicts computed (compile.c).
 */
void
kaireon_bind_offers(KTenantConfig *cfg)
{
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
	{
		int		   *rules = palloc(sizeof(int) * Max(cfg->nrules, 1));
		KPolicyBinding *pols = palloc(sizeof(KPolicyBinding) * Max(cfg->npolicies, 1));
		MemoryContext scratch = AllocSetContextCreate(CurrentMemoryContext, "kaireon offer classes",
													  ALLOCSET_DEFAULT_SIZES);
		OfferClasses qc = offer_classes(scratch, cfg->noffers);
		OfferClasses pc = offer_classes(scratch, cfg->noffers);

		for (int o = 0; o < cfg->noffers; o++)
			bind_offer(cfg, &qc, &pc, o, rules, pols);
		cfg->nqual_classes = qc.n;
		cfg->npolicy_classes = pc.n;
		MemoryContextDelete(scratch);
		pfree(rules);
		pfree(pols);
	}
}
