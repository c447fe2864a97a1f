/*
 * config/state_plan.c
 *	  Prepares, once per compiled configuration, the queries that read what
 *	  one request needs to know about its customer beyond the data row and
 *	  segments (eligibility.c prepares those): the recent interaction history,
 *	  active suppressions, and, only when the configuration reads them,
 *	  consent, engagement health, metric values and cap usage (one jsonb;
 *	  the counters' SQL pieces are caps.h).
 *	  decision/customer.c runs them per request and reads their columns in
 *	  the order written here; the history and suppressions only when
 *	  decision/state_read.c cannot read the same rows through the indexes
 *	  (its conditions must stay those written here).  The plans are kept (SPI_keepplan) and freed
 *	  with the configuration (compile.c, free_plans).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"

#include "util/spi.h"
#include "config/caps.h"
#include "config/config.h"

/*
 * Prepare the per-request queries of a tenant configuration.  All take $1
 * tenant id, $2 customer id; the history query also $3, the oldest time
 * needed.  History and suppressions come back as plain rows; consent,
 * engagement, metrics and cap usage (only the parts the configuration reads)
 * as one jsonb.
 */
void
kaireon_prepare_state_plan(KTenantConfig *cfg)
{
	StringInfoData sql;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	bool		extras = false;

	cfg->history_plan = kspi_prepare_keep(
		psprintf("SELECT h.interaction_type, h.outcome_type_key, h.offer_id, h.channel_id, h.occurred_at "
				 "  FROM kaireon.interaction_history h "
				 " WHERE h.tenant_id = $1 AND h.customer_id = $2 AND h.occurred_at >= $3 "
				 "   AND h.interaction_type <> 'control' "	/* a control group's decision is no contact */
				 " ORDER BY h.occurred_at DESC LIMIT %d", KAIREON_MAX_EVENTS),
		3, argtypes);
	cfg->suppression_plan = kspi_prepare_keep(
		"SELECT s.scope, s.scope_id, s.reason FROM kaireon.suppressions s "
		" WHERE s.tenant_id = $1 AND s.customer_id = $2 AND (s.expires_at IS NULL OR s.expires_at > now())",
		2, argtypes);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT jsonb_build_object('customer', $2::text");
	if (cfg->needs_consent)
	{
		appendStringInfoString(&sql,
							   ", 'consent', (SELECT jsonb_object_agg(c.purpose, c.status) FROM "
							   "  (SELECT DISTINCT ON (purpose) purpose, status FROM kaireon.consent_records "
							   "    WHERE tenant_id = $1 AND subject_id = $2 ORDER BY purpose, created_at DESC, id DESC) c)");
		extras = true;
	}
	if (cfg->has_engagement)
	{
		appendStringInfoString(&sql,
							   ", 'engagement', (SELECT e.score FROM kaireon.customer_engagement_health e "
							   "   WHERE e.tenant_id = $1 AND e.customer_id = $2)");
		extras = true;
	}
	if (cfg->needs_metrics)
	{
		appendStringInfoString(&sql,
							   ", 'metrics', (SELECT jsonb_object_agg(CASE WHEN v.dimension_key = '' THEN d.key "
							   "   ELSE d.key || '|' || v.dimension_key END, v.value) "
							   "   FROM kaireon.metric_values v JOIN kaireon.metric_definitions d "
							   "     ON d.tenant_id = $1 AND d.id = v.metric_id "
							   "  WHERE v.tenant_id = $1 AND v.customer_id = $2)");
		extras = true;
	}
	if (cfg->ncaps > 0)
	{
		appendStringInfoString(&sql,
							   ", 'caps', coalesce((SELECT jsonb_object_agg(v.id, jsonb_build_object('used', "
							   KCAPS_VOLUME_USED ")) "
							   "   FROM kaireon.volume_constraints v WHERE " KCAPS_VOLUME_IN_FORCE "), '{}') "
							   " || coalesce((SELECT jsonb_object_agg(b.id, jsonb_build_object('impressions', b.used_impressions, "
							   "   'spend', b.used_spend, 'conversions', b.used_conversions)) "
							   "   FROM kaireon.budget_allocations b WHERE " KCAPS_BUDGET_IN_FORCE "), '{}')");
		extras = true;
	}
	appendStringInfoChar(&sql, ')');
	if (extras)
		cfg->extras_plan = kspi_prepare_keep(sql.data, 2, argtypes);
}

