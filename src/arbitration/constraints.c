/*
 * constraints.c
 *	  Loads the constraints arbitration prices into one form (constraints.h):
 *	  cross-offer constraints, budget allocations, volume constraints and a
 *	  campaign run's own limits; what a decision costs each; their periods and
 *	  what those periods have consumed so far.  Runs inside the caller's SPI
 *	  connection; used by the batch solve (campaign.c) and by the real-time
 *	  dual price update (realtime.c), never per candidate.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "config/caps.h"
#include "config/conditions.h"
#include "arbitration/constraints.h"

/* Scope name (global, channel, category, offer) to kind. */
static KScopeKind
scope_kind(const char *s)
{
	int			k = kaireon_type_index(kaireon_scope_names, s);

	if (s == NULL)
		return KSCOPE_GLOBAL;
	return k >= 0 ? (KScopeKind) k : KSCOPE_OFFER;
}

/* A palloc'd copy of a JSON string field, or NULL. */
static char *
dup_str(const json_t *obj, const char *key)
{
	const char *s = kj_str(obj, key);

	return s ? pstrdup(s) : NULL;
}

/* Run a query with $1 = tenant id returning one jsonb array (NULL -> empty). */
static json_t *
query_array(const char *sql, const char *tenant_id, const char *what)
{
	json_t	   *rows = kj_query_tenant(sql, tenant_id, what, false);

	return rows ? rows : json_array();
}

/* Append a constraint to a set (amortised growth). */
static KArbConstraint *
add(KArbConstraintSet *set, int *alloc)
{
	if (set->n >= *alloc)
	{
		*alloc = Max(8, *alloc * 2);
		set->items = set->items ? repalloc(set->items, sizeof(KArbConstraint) * *alloc) :
			palloc(sizeof(KArbConstraint) * *alloc);
	}
	memset(&set->items[set->n], 0, sizeof(KArbConstraint));
	set->items[set->n].scope_known = true;
	return &set->items[set->n++];
}

/* The cross-offer constraints (a global category_cap: one per category of the tenant's offers). */
static void
load_cross_offer(const KTenantConfig *cfg, KArbConstraintSet *set, int *alloc)
{
	json_t	   *rows = query_array(
		"SELECT coalesce(jsonb_agg(to_jsonb(c) || jsonb_build_object('scope_known', CASE c.scope "
		"    WHEN 'global' THEN true "
		"    WHEN 'channel' THEN EXISTS (SELECT 1 FROM kaireon.channels x WHERE x.tenant_id = $1 "
		"                                AND x.id = c.scope_id AND x.deleted_at IS NULL) "
		"    WHEN 'category' THEN EXISTS (SELECT 1 FROM kaireon.categories x WHERE x.tenant_id = $1 "
		"                                 AND x.id = c.scope_id AND x.deleted_at IS NULL) "
		"    ELSE EXISTS (SELECT 1 FROM kaireon.offers x WHERE x.tenant_id = $1 "
		"                 AND x.id = c.scope_id AND x.deleted_at IS NULL) END) ORDER BY c.id COLLATE \"C\"), '[]') "
		"  FROM kaireon.cross_offer_constraints c WHERE c.tenant_id = $1 AND c.status = 'active'",
		cfg->tenant_id, "cross-offer constraints");
	size_t		i;
	json_t	   *r;

	json_array_foreach(rows, i, r)
	{
		json_t	   *conf = json_object_get(r, "config");
		const char *type = kj_str(r, "rule_type");
		KArbConstraint base;

		memset(&base, 0, sizeof(base));
		base.id = dup_str(r, "id");
		base.name = dup_str(r, "name");
		base.source = KARB_SRC_CROSS_OFFER;
		base.type = strcmp(type, "channel_quota") == 0 ? "channel_quota" :
			strcmp(type, "portfolio_budget") == 0 ? "portfolio_budget" : "category_cap";
		base.scope = scope_kind(kj_str(r, "scope"));
		base.scope_id = dup_str(r, "scope_id");
		base.has_limit = json_is_number(json_object_get(conf, "limit"));
		base.limit = kj_num(conf, "limit", 0);
		base.period = dup_str(conf, "period");
		base.per_response = kj_num(conf, "maxPerResponse", 0);
		base.scope_known = kj_bool(r, "scope_known", false);
		if (strcmp(base.type, "portfolio_budget") == 0)
			base.cost_field = pstrdup(kj_str(conf, "costField") ? kj_str(conf, "costField") : "cost");

		if (strcmp(base.type, "category_cap") == 0 && base.scope == KSCOPE_GLOBAL)
		{
			/* one constraint per category that has offers, in category order */
			json_t	   *seen = json_object();
			const char **cats = palloc(sizeof(char *) * Max(cfg->noffers, 1));
			int			ncats = 0;

			for (int o = 0; o < cfg->noffers; o++)
			{
				const char *cat = cfg->offers[o].category_id;

				if (cat == NULL || json_object_get(seen, cat) != NULL)
					continue;
				json_object_set_new(seen, cat, json_true());
				cats[ncats++] = cat;
			}
			for (int q = 0; q < ncats; q++)
			{
				KArbConstraint *k = add(set, alloc);

				*k = base;
				k->scope = KSCOPE_CATEGORY;
				k->scope_id = pstrdup(cats[q]);
				k->key = psprintf("cross_offer:%s:%s", base.id, cats[q]);
			}
		}
		else
		{
			KArbConstraint *k = add(set, alloc);

			*k = base;
			k->key = psprintf("cross_offer:%s", base.id);
		}
	}
}

/*
 * The budget allocations of the current period (impressions and spend) and the
 * volume constraints in force, from the caps the configuration cache loaded
 * (config/compile.c: the rows are read once, for the decision and for this).
 */
static void
load_caps(const KTenantConfig *cfg, KArbConstraintSet *set, int *alloc)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	for (int pass = 0; pass < 2; pass++)	/* budgets first, then volumes */
		for (int i = 0; i < cfg->ncaps; i++)
		{
			const KCap *c = &cfg->caps[i];

			if (pass == 0 && c->kind == KCAP_BUDGET && kaireon_budget_current(c, now))
			{
				for (int metric = 0; metric < 2; metric++)
				{
					KArbConstraint *k;

					if (!(metric == 0 ? c->has_max_impressions : c->has_max_spend))
						continue;
					k = add(set, alloc);
					k->id = pstrdup(c->id);
					k->name = pstrdup(c->name ? c->name : c->id);
					k->source = KARB_SRC_BUDGET;
					k->type = metric == 0 ? "budget_impressions" : "budget_spend";
					k->key = psprintf("budget:%s:%s", k->id, metric == 0 ? "impressions" : "spend");
					k->scope = c->scope;
					k->scope_id = c->scope_id ? pstrdup(c->scope_id) : NULL;
					k->cost_field = metric == 0 ? NULL : pstrdup("cost");
					k->has_limit = true;
					k->limit = metric == 0 ? (double) c->max_impressions : c->max_spend;
					k->period = c->period ? pstrdup(c->period) : NULL;
				}
			}
			else if (pass == 1 && c->kind == KCAP_VOLUME)
			{
				KArbConstraint *k = add(set, alloc);

				k->id = pstrdup(c->id);
				k->name = c->name ? pstrdup(c->name) : NULL;
				k->source = KARB_SRC_VOLUME;
				k->type = "volume";
				k->key = psprintf("volume:%s", k->id);
				k->scope = c->scope;
				k->scope_id = c->scope_id ? pstrdup(c->scope_id) : NULL;
				k->has_limit = true;
				k->limit = (double) c->max_volume;
				k->period = c->period ? pstrdup(c->period) : NULL;
			}
		}
}

/* A campaign run's own limits (runs.volume_constraints, docs/arbitration.md). */
static void
load_run_limits(const KTenantConfig *cfg, KArbConstraintSet *set, int *alloc, json_t *limits,
				const char *run_id)
{
	static const struct
	{
		const char *field;
		const char *type;
		KScopeKind	scope;
	}			maps[] = {
		{"perOffer", "run_offer", KSCOPE_OFFER},
		{"perCategory", "run_category", KSCOPE_CATEGORY},
		{"perChannel", "run_channel", KSCOPE_CHANNEL}
	};

	if (limits == NULL)
		return;
	if (json_is_number(json_object_get(limits, "maxTotal")))
	{
		KArbConstraint *k = add(set, alloc);

		k->id = pstrdup(run_id);
		k->name = pstrdup("maxTotal");
		k->source = KARB_SRC_RUN;
		k->type = "run_total";
		k->key = pstrdup("run:maxTotal");
		k->scope = KSCOPE_GLOBAL;
		k->has_limit = true;
		k->limit = kj_num(limits, "maxTotal", 0);
		k->period = pstrdup("run");
	}
	for (int m = 0; m < (int) lengthof(maps); m++)
	{
		json_t	   *obj = json_object_get(limits, maps[m].field);
		const char *id;
		json_t	   *v;

		if (!json_is_object(obj))
			continue;
		json_object_foreach(obj, id, v)
		{
			KArbConstraint *k = add(set, alloc);

			k->id = pstrdup(run_id);
			k->name = psprintf("%s.%s", maps[m].field, id);
			k->source = KARB_SRC_RUN;
			k->type = maps[m].type;
			k->key = psprintf("run:%s:%s", maps[m].field, id);
			k->scope = maps[m].scope;
			k->scope_id = pstrdup(id);
			k->has_limit = true;
			k->limit = json_number_value(v);
			k->period = pstrdup("run");
			if (maps[m].scope == KSCOPE_CHANNEL)
				k->scope_known = kaireon_find_channel(cfg, id) >= 0;
			else if (maps[m].scope == KSCOPE_OFFER)
				k->scope_known = kaireon_find_offer(cfg, id) >= 0;
			else
			{
				k->scope_known = false;
				for (int o = 0; o < cfg->noffers && !k->scope_known; o++)
					if (cfg->offers[o].category_id && strcmp(cfg->offers[o].category_id, id) == 0)
						k->scope_known = true;
			}
		}
	}
}

/* The tenant's active constraints; see constraints.h. */
KArbConstraintSet *
karb_load_constraints(const KTenantConfig *cfg, bool with_caps, json_t *run_limits, const char *run_id)
{
	KArbConstraintSet *set = palloc0(sizeof(KArbConstraintSet));
	int			alloc = 0;

	load_cross_offer(cfg, set, &alloc);
	if (with_caps)
	{
		load_caps(cfg, set, &alloc);
		load_run_limits(cfg, set, &alloc, run_limits, run_id);
	}
	if (set->items == NULL)
		set->items = palloc0(sizeof(KArbConstraint));
	return set;
}

/* What a decision of offer o on the channel costs constraint k (0 when k does not cover it). */
double
karb_offer_cost(const KArbConstraint *k, const KOffer *o, const char *channel_id)
{
	switch (k->scope)
	{
		case KSCOPE_GLOBAL:
			break;
		case KSCOPE_CHANNEL:
			if (channel_id == NULL || k->scope_id == NULL || strcmp(channel_id, k->scope_id) != 0)
				return 0;
			break;
		case KSCOPE_CATEGORY:
			if (o->category_id == NULL || k->scope_id == NULL || strcmp(o->category_id, k->scope_id) != 0)
				return 0;
			break;
		case KSCOPE_OFFER:
			if (k->scope_id == NULL || strcmp(o->id, k->scope_id) != 0)
				return 0;
			break;
		default:
			return 0;
	}
	if (k->cost_field == NULL)
		return 1;
	if (strcmp(k->cost_field, "cost") == 0)
		return Max(o->cost, 0);
	if (strcmp(k->cost_field, "value") == 0)
		return Max(o->value, 0);
	if (strcmp(k->cost_field, "margin") == 0)
		return Max(o->margin, 0);
	return Max(kj_num(kaireon_offer_column(o, "custom_fields", strlen("custom_fields")), k->cost_field, 0), 0);
}

/* Start and end (UTC) of the calendar period holding t; false for run and total. */
bool
karb_period_bounds(const char *period, TimestampTz t, TimestampTz *start, TimestampTz *end)
{
	struct pg_tm tm;
	fsec_t		fsec;
	Timestamp	s;
	int			jd;

	if (period == NULL || strcmp(period, "run") == 0 || strcmp(period, "total") == 0)
		return false;
	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return false;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	fsec = 0;
	jd = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	if (period[0] == 'd')
	{
		if (tm2timestamp(&tm, fsec, NULL, &s) != 0)
			return false;
		*start = s;
		*end = s + USECS_PER_DAY;
		return true;
	}
	if (period[0] == 'w')
	{
		int			back = (j2day(jd) + 6) % 7;	/* back to Monday */

		j2date(jd - back, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
		if (tm2timestamp(&tm, fsec, NULL, &s) != 0)
			return false;
		*start = s;
		*end = s + 7 * USECS_PER_DAY;
		return true;
	}
	/* monthly, quarterly */
	tm.tm_mday = 1;
	if (period[0] == 'q')
		tm.tm_mon = ((tm.tm_mon - 1) / 3) * 3 + 1;
	if (tm2timestamp(&tm, fsec, NULL, &s) != 0)
		return false;
	*start = s;
	tm.tm_mon += period[0] == 'q' ? 3 : 1;
	if (tm.tm_mon > 12)
	{
		tm.tm_mon -= 12;
		tm.tm_year++;
	}
	if (tm2timestamp(&tm, fsec, NULL, &s) != 0)
		return false;
	*end = s;
	return true;
}

/* Consumption of a cross-offer constraint in [start, t]: its cost over the recorded recommendations. */
static double
cross_offer_usage(const KTenantConfig *cfg, const KArbConstraint *k, TimestampTz start, TimestampTz t)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[6] = {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;

	if (plan == NULL)
		plan = kspi_prepare_keep(
			"SELECT coalesce(sum(CASE WHEN $6 IS NULL THEN 1 "
			"                         WHEN $6 = 'cost' THEN greatest(o.cost, 0) "
			"                         WHEN $6 = 'value' THEN greatest(o.value, 0) "
			"                         WHEN $6 = 'margin' THEN greatest(o.margin, 0) "
			"                         WHEN jsonb_typeof(o.custom_fields -> $6) = 'number' "
			"                         THEN greatest((o.custom_fields ->> $6)::numeric, 0) ELSE 0 END), 0)::float8 "
			"  FROM kaireon.interaction_history h "
			"  JOIN kaireon.offers o ON o.tenant_id = $1 AND o.id = h.offer_id "
			" WHERE h.tenant_id = $1 AND h.interaction_type = 'recommendation' "
			"   AND h.occurred_at >= $2 AND h.occurred_at <= $3 "
			"   AND ($4 = 'global' OR ($4 = 'channel' AND h.channel_id = $5) "
			"        OR ($4 = 'category' AND o.category_id = $5) OR ($4 = 'offer' AND h.offer_id = $5))",
			6, types);
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = TimestampTzGetDatum(start);
	args[2] = TimestampTzGetDatum(t);
	args[3] = CStringGetTextDatum(kaireon_scope_names[k->scope]);
	if (k->scope_id)
		args[4] = CStringGetTextDatum(k->scope_id);
	else
		nulls[4] = 'n';
	if (k->cost_field)
		args[5] = CStringGetTextDatum(k->cost_field);
	else
		nulls[5] = 'n';
	if (kspi_execute_plan(plan, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading the consumption of constraint %s failed", k->key);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetFloat8(d);
}

/* The counter of a budget or volume constraint (0 when a volume period has ended). */
static double
counter_usage(const KTenantConfig *cfg, const KArbConstraint *k)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		args[2];
	const char *sql;
	bool		isnull;
	Datum		d;

	if (k->source == KARB_SRC_VOLUME)
		sql = "SELECT (" KCAPS_VOLUME_USED ")::float8 "
			"  FROM kaireon.volume_constraints v WHERE v.tenant_id = $1 AND v.id = $2";
	else if (strcmp(k->type, "budget_spend") == 0)
		sql = "SELECT b.used_spend::float8 FROM kaireon.budget_allocations b WHERE b.tenant_id = $1 AND b.id = $2";
	else
		sql = "SELECT b.used_impressions::float8 FROM kaireon.budget_allocations b WHERE b.tenant_id = $1 AND b.id = $2";
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	args[1] = CStringGetTextDatum(k->id);
	if (kspi_execute_with_args(sql, 2, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the counter of constraint %s failed", k->key);
	if (SPI_processed == 0)
		return 0;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetFloat8(d);
}

/* Fill each constraint's consumption in its current period up to t. */
void
karb_read_usage(const KTenantConfig *cfg, KArbConstraintSet *set, TimestampTz t)
{
	for (int i = 0; i < set->n; i++)
	{
		KArbConstraint *k = &set->items[i];
		TimestampTz start,
					end;

		k->used = 0;
		if (!k->has_limit)
			continue;
		if (k->source == KARB_SRC_CROSS_OFFER)
		{
			if (karb_period_bounds(k->period, t, &start, &end))
				k->used = cross_offer_usage(cfg, k, start, t);
		}
		else if (k->source == KARB_SRC_BUDGET || k->source == KARB_SRC_VOLUME)
			k->used = counter_usage(cfg, k);
	}
}
