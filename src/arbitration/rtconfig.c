/*
 * rtconfig.c
 *	  Arbitration's compiled part of a tenant's configuration (rt.h): the
 *	  arbitration profiles (PRIE weights, EXP3-IX arms), which profile each
 *	  flow uses, the constraints recommend prices or caps per response with
 *	  their cost per offer, and whether real-time arbitration is on.  Compiled
 *	  on first use inside the configuration's own memory context, so it lives
 *	  and dies with the compiled configuration (a change to profiles,
 *	  cross-offer constraints, caps or tenant settings renews the configuration
 *	  version and therefore this too).
 *
 * The moving state, dual prices and EXP3-IX gains, is read by one query at
 * most once per kaireon.arbitration_refresh_ms per backend (like the adaptive
 * propensity counts): a price or a weight a second old is as good as a fresh
 * one, and not worth a query per decision.  A backend's own respond makes its
 * next decision read them again.
 */
#include "postgres.h"

#include "util/json.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "arbitration/arbitration.h"
#include "arbitration/constraints.h"
#include "arbitration/rt.h"

/* Default PRIE weights (spec section 7). */
static const double default_weights[4] = {0.4, 0.2, 0.3, 0.1};

/* Run a query with $1 = tenant id returning one jsonb; parse it (NULL stays NULL). */
static json_t *
tenant_json(const char *sql, const char *tenant_id, const char *what)
{
	return kj_query_tenant(sql, tenant_id, what, false);
}

/*
 * PRIE weights from a profile's weight object: propensity -> P, relevance ->
 * R, revenue (or impact) and margin -> I, emphasis and engagement -> E;
 * normalised to sum to 1.  An empty object gives the defaults.
 */
static void
parse_weights(json_t *obj, KArbWeights *w)
{
	double		p = kj_num(obj, "propensity", 0),
				r = kj_num(obj, "relevance", 0),
				rev = kj_num(obj, "revenue", 0) + kj_num(obj, "impact", 0),
				mar = kj_num(obj, "margin", 0),
				e = kj_num(obj, "emphasis", 0) + kj_num(obj, "engagement", 0),
				sum = p + r + rev + mar + e;

	if (!(sum > 0))
	{
		memcpy(w->w, default_weights, sizeof(w->w));
		w->revenue_share = 1;
		return;
	}
	w->w[0] = p / sum;
	w->w[1] = r / sum;
	w->w[2] = (rev + mar) / sum;
	w->w[3] = e / sum;
	w->revenue_share = (rev + mar) > 0 ? rev / (rev + mar) : 1;
}

/* The tenant's active profiles. */
static void
load_profiles(KTenantConfig *cfg, KArbConfig *ac)
{
	json_t	   *rows = tenant_json(
		"SELECT coalesce(jsonb_agg(jsonb_build_object('id', p.id, 'key', p.key, 'weights', p.weights) "
		"         ORDER BY p.key COLLATE \"C\"), '[]') "
		"  FROM kaireon.arbitration_profiles p "
		" WHERE p.tenant_id = $1 AND p.deleted_at IS NULL AND p.status = 'active'",
		cfg->tenant_id, "arbitration profiles");
	size_t		i;
	json_t	   *r;

	ac->nprofiles = json_array_size(rows);
	ac->profiles = palloc0(sizeof(KArbProfile) * Max(ac->nprofiles, 1));
	json_array_foreach(rows, i, r)
	{
		KArbProfile *p = &ac->profiles[i];
		json_t	   *w = json_object_get(r, "weights");
		json_t	   *arms = json_object_get(w, "arms");

		p->id = pstrdup(kj_str(r, "id"));
		p->key = pstrdup(kj_str(r, "key"));
		if (json_is_array(arms))
		{
			size_t		a;
			json_t	   *arm;

			p->narms = json_array_size(arms);
			p->arms = palloc0(sizeof(KArbWeights) * p->narms);
			json_array_foreach(arms, a, arm)
				parse_weights(arm, &p->arms[a]);
			p->gamma = kj_num(w, "gamma", 0.1);
			p->eta = kj_num(w, "eta", 0.05);
			p->beta = kj_num(w, "beta", 0.01);
			ac->any_bandit = true;
		}
		else
		{
			p->narms = 0;
			p->arms = palloc0(sizeof(KArbWeights));
			parse_weights(w, &p->arms[0]);
		}
	}
}

/* Index of a profile by key or id, or -1. */
static int
find_profile(const KArbConfig *ac, const char *key, const char *id)
{
	for (int i = 0; i < ac->nprofiles; i++)
		if ((key && strcmp(ac->profiles[i].key, key) == 0) || (id && strcmp(ac->profiles[i].id, id) == 0))
			return i;
	return -1;
}

/*
 * Each flow's profile: the published score.profileKey, else the flow's
 * arbitration_profile_id; a profile named but not active is remembered, and
 * recommend refuses the flow (42704).
 */
static void
resolve_flows(KTenantConfig *cfg, KArbConfig *ac)
{
	json_t	   *ids = tenant_json(
		"SELECT coalesce(jsonb_object_agg(f.id, f.arbitration_profile_id), '{}') FROM kaireon.decision_flows f "
		" WHERE f.tenant_id = $1 AND f.deleted_at IS NULL AND f.arbitration_profile_id IS NOT NULL",
		cfg->tenant_id, "flow profiles");

	ac->flow_profile = palloc(sizeof(int) * Max(cfg->nflows, 1));
	ac->flow_missing = palloc0(sizeof(char *) * Max(cfg->nflows, 1));
	for (int f = 0; f < cfg->nflows; f++)
	{
		const char *key = cfg->flows[f].profile_key;	/* score.profileKey (a graph's first score node's) */
		const char *id = kj_str(ids, cfg->flows[f].id);

		ac->flow_profile[f] = -1;
		if (key != NULL)
		{
			ac->flow_profile[f] = find_profile(ac, key, NULL);
			if (ac->flow_profile[f] < 0)
				ac->flow_missing[f] = pstrdup(key);
		}
		else if (id != NULL)
		{
			ac->flow_profile[f] = find_profile(ac, NULL, id);
			if (ac->flow_profile[f] < 0)
				ac->flow_missing[f] = psprintf("(id %s)", id);
		}
	}
}

/* The constraints recommend caps per response or prices, with their cost per offer. */
static void
load_constraints(KTenantConfig *cfg, KArbConfig *ac)
{
	KArbConstraintSet *set = karb_load_constraints(cfg, true, NULL, NULL);
	int			n = 0;

	ac->cons = palloc0(sizeof(KArbRtConstraint) * Max(set->n, 1));
	for (int i = 0; i < set->n; i++)
	{
		const KArbConstraint *k = &set->items[i];
		KArbRtConstraint *c;
		TimestampTz s,
					e;
		bool		priced = k->has_limit && k->source != KARB_SRC_RUN &&
			karb_period_bounds(k->period, GetCurrentTransactionStartTimestamp(), &s, &e);

		if (!priced && !(k->per_response > 0))
			continue;
		c = &ac->cons[n++];
		c->key = pstrdup(k->key);
		c->name = pstrdup(k->name ? k->name : k->id);
		c->channel_id = k->scope == KSCOPE_CHANNEL && k->scope_id ? pstrdup(k->scope_id) : NULL;
		c->per_response = k->per_response;
		c->priced = priced;
		c->cost = palloc0(sizeof(double) * Max(cfg->noffers, 1));
		for (int o = 0; o < cfg->noffers; o++)
			c->cost[o] = karb_offer_cost(k, &cfg->offers[o], c->channel_id);
		ac->any_priced |= priced;
		ac->any_per_response |= k->per_response > 0;
	}
	ac->ncons = n;
}

/* Arbitration's compiled part of the configuration, compiled on first use (inside an SPI connection). */
KArbConfig *
karb_config(KTenantConfig *cfg)
{
	MemoryContext old;
	KArbConfig *ac;
	json_t	   *settings;

	if (cfg->arb != NULL)
		return cfg->arb;
	old = MemoryContextSwitchTo(cfg->mcxt);
	ac = palloc0(sizeof(KArbConfig));
	load_profiles(cfg, ac);
	resolve_flows(cfg, ac);
	load_constraints(cfg, ac);
	settings = tenant_json(
		"SELECT jsonb_build_object('enabled', coalesce((SELECT s.realtime_arbitration_enabled "
		"  FROM kaireon.tenant_settings s WHERE s.tenant_id = $1), false))",
		cfg->tenant_id, "arbitration settings");
	ac->enabled = kj_bool(settings, "enabled", false);
	ac->lambda = palloc0(sizeof(double) * Max(ac->ncons, 1));
	ac->gains = palloc0(sizeof(double *) * Max(ac->nprofiles, 1));
	for (int p = 0; p < ac->nprofiles; p++)
		ac->gains[p] = palloc0(sizeof(double) * Max(ac->profiles[p].narms, 1));
	MemoryContextSwitchTo(old);
	cfg->arb = ac;
	return ac;
}

/*
 * Read the dual prices (with their version) and the EXP3-IX gains, unless
 * read less than kaireon.arbitration_refresh_ms ago (force: read anyway).
 */
void
karb_refresh_state(KTenantConfig *cfg, KArbConfig *ac, bool force)
{
	static SPIPlanPtr plan = NULL;
	TimestampTz now = GetCurrentTimestamp();
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	Datum		d;
	json_t	   *state,
			   *prices,
			   *gains;

	if (!force && ac->loaded && now - ac->loaded_at < (TimestampTz) karb_refresh_ms * 1000)
		return;
	if (plan == NULL)
		plan = kspi_prepare_keep(
			"SELECT jsonb_build_object("
			"  'version', (SELECT s.version FROM kaireon.dual_price_state s WHERE s.tenant_id = $1), "
			"  'prices', (SELECT jsonb_object_agg(p.constraint_key, p.lambda) FROM kaireon.dual_prices p "
			"             WHERE p.tenant_id = $1), "
			"  'gains', (SELECT jsonb_object_agg(g.profile_id, g.gains) FROM "
			"             (SELECT a.profile_id, jsonb_object_agg(a.arm, a.gain) AS gains FROM kaireon.exp3_arms a "
			"               WHERE a.tenant_id = $1 GROUP BY a.profile_id) g))",
			1, types);
	args[0] = CStringGetTextDatum(cfg->tenant_id);
	if (kspi_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: reading the dual prices failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	state = kj_from_jsonb(DatumGetJsonbP(d), "dual prices");
	prices = json_object_get(state, "prices");
	gains = json_object_get(state, "gains");
	ac->has_version = json_is_number(json_object_get(state, "version"));
	ac->lambda_version = ac->has_version ? (int64) json_number_value(json_object_get(state, "version")) : 0;
	for (int k = 0; k < ac->ncons; k++)
		ac->lambda[k] = Max(kj_num(prices, ac->cons[k].key, 0), 0);
	for (int p = 0; p < ac->nprofiles; p++)
	{
		json_t	   *g = json_object_get(gains, ac->profiles[p].id);

		for (int a = 0; a < ac->profiles[p].narms; a++)
		{
			char		name[16];

			snprintf(name, sizeof(name), "%d", a);
			ac->gains[p][a] = kj_num(g, name, 0);
		}
	}
	ac->loaded = true;
	ac->loaded_at = now;
}

/* Make the next decision of this backend read the state again (after its own respond). */
void
karb_forget_state(KTenantConfig *cfg)
{
	if (cfg->arb != NULL)
		cfg->arb->loaded = false;
}
