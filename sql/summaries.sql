-- Summaries, metrics and customer scores (docs/workers.md): summary definitions are validated,
-- rollups add new history incrementally for every window, metric definitions compile into
-- queries over the summaries, and the engagement and CLV / RFM scores follow their formulas.
-- That a rollup never loses rows of transactions still open is the isolation test
-- summary_watermark.
\set VERBOSITY terse
SET client_min_messages = warning;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('sum', 'Summaries', 'sum'), ('sum_other', 'Other', 'sum_other');
SELECT count(*) >= 0 AS partitions FROM kaireon.create_interaction_partitions(3, (now() - interval '100 days')::date);
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('sum', 'o1', 'O1'), ('sum', 'o2', 'O2');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('sum', 'web', 'Web', 'web');

-- Definitions name known dimensions, aggregates and windows.
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, dimensions) VALUES ('sum', 'bad', 'Bad', '["customer", "colour"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, dimensions) VALUES ('sum', 'bad', 'Bad', '["offer", "offer"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, aggregates) VALUES ('sum', 'bad', 'Bad', '["median"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, aggregates) VALUES ('sum', 'bad', 'Bad', '[]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, windows) VALUES ('sum', 'bad', 'Bad', '["14d"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, windows) VALUES ('sum', 'bad', 'Bad', '[7]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.summary_definitions (tenant_id, id, key, name, dimensions, aggregates, windows) VALUES
    ('sum', 'by-cust-offer', 'by-cust-offer', 'Customer x offer', '["customer", "offer"]', '["count", "sum"]',
     '["7d", "30d", "all"]'),
    ('sum', 'by-placement', 'by-placement', 'Channel x placement', '["channel", "placement", "outcome"]',
     '["positive"]', '["month", "hour"]');

-- History: customer c1 clicks o1 every day for 10 days, with conversions worth 5 every other
-- day; c2 sees o2 and dismisses it on days 20 and 40; an outcome the tenant does not know
-- counts as neither positive nor negative. All on web / hero, d days ago at half the time
-- elapsed today (UTC): in the past, and on the UTC day d days back.
CREATE TEMP TABLE days AS SELECT d, now() - make_interval(days => d) - (now() - date_trunc('day', now(), 'UTC')) / 2 AS at
  FROM generate_series(0, 40) d;
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type, outcome_type_key,
                                         offer_id, channel_id, placement_id, conversion_value)
SELECT 'sum', at, 'c1', 'impression', NULL, 'o1', 'web', 'hero', NULL::numeric FROM days WHERE d < 10
UNION ALL SELECT 'sum', at, 'c1', 'outcome', 'click', 'o1', 'web', 'hero', NULL FROM days WHERE d < 10
UNION ALL SELECT 'sum', at, 'c1', 'outcome', 'conversion', 'o1', 'web', 'hero', 5 FROM days WHERE d < 10 AND d % 2 = 0
UNION ALL SELECT 'sum', at, 'c2', 'impression', NULL, 'o2', 'web', 'hero', NULL FROM days WHERE d IN (20, 40)
UNION ALL SELECT 'sum', at, 'c2', 'outcome', 'dismiss', 'o2', 'web', 'hero', NULL FROM days WHERE d IN (20, 40)
UNION ALL SELECT 'sum', at, 'c2', 'outcome', 'mystery', 'o2', 'web', 'hero', NULL FROM days WHERE d = 20;

SELECT tenant, definition_key, rows_read, watermark <= now() AS watermark_ok, caught_up FROM kaireon.rollup_summaries();
-- rolling windows end today; day rows are kept for them; "all" has one key
CREATE TEMP VIEW s AS
SELECT definition_id, period_type,
       CASE WHEN period_type IN ('7d', '30d') AND period_key = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD') THEN 'today'
            WHEN period_type = 'day' THEN 'day' WHEN period_type = 'hour' THEN 'hour'
            WHEN period_type = 'month' THEN 'month' ELSE period_key END AS period,
       customer_id, offer_id, channel_id, dimension_key, impressions, positive, negative, converts, total_value
  FROM kaireon.interaction_summaries WHERE tenant_id = 'sum';
-- (how many month keys the last 10 days span depends on today's date: checked below, not printed)
SELECT definition_id, period_type, period, customer_id, offer_id, channel_id, dimension_key,
       CASE WHEN period_type = 'month' THEN NULL ELSE count(*) END AS keys,
       sum(impressions) AS impressions, sum(positive) AS positive, sum(negative) AS negative,
       sum(converts) AS converts, sum(total_value) AS total_value
  FROM s GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7;
-- one month row per (dimension, UTC month) the history of that dimension falls in
SELECT dimension_key, count(*) = (SELECT count(DISTINCT to_char(h.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM'))
                                    FROM kaireon.interaction_history h
                                   WHERE h.tenant_id = 'sum'
                                     AND 'placement=' || h.placement_id || '|outcome=' || coalesce(h.outcome_type_key, '') = dimension_key)
       AS one_row_per_month
  FROM kaireon.interaction_summaries WHERE tenant_id = 'sum' AND period_type = 'month'
 GROUP BY 1 ORDER BY 1;

-- Incremental: a second rollup reads nothing; new history is added to the same rows.
SELECT definition_key, rows_read FROM kaireon.rollup_summaries(tenant_id => 'sum');
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type, outcome_type_key, offer_id, channel_id, placement_id, conversion_value)
VALUES ('sum', now(), 'c1', 'outcome', 'conversion', 'o1', 'web', 'hero', 100);
SELECT definition_key, rows_read FROM kaireon.rollup_summaries(tenant_id => 'sum');
SELECT period_type, period, impressions, positive, converts, total_value FROM s
 WHERE definition_id = 'by-cust-offer' AND customer_id = 'c1' AND period_type <> 'day' ORDER BY 1;
-- max_span bounds how much creation time one call adds (the worker calls it until caught up)
UPDATE kaireon.summary_state SET watermark = NULL, rolling_as_of = NULL WHERE tenant_id = 'sum';
DELETE FROM kaireon.interaction_summaries WHERE tenant_id = 'sum';
SELECT definition_key, rows_read > 0 AS read, caught_up FROM kaireon.rollup_summaries('sum', max_span => interval '1 microsecond');
SELECT count(*) AS calls_to_catch_up FROM generate_series(1, 10) i, LATERAL (SELECT bool_and(caught_up) AS c FROM kaireon.rollup_summaries('sum')) r
 WHERE NOT r.c;
SELECT period_type, impressions, positive, converts, total_value FROM s
 WHERE definition_id = 'by-cust-offer' AND customer_id = 'c1' AND period_type = 'all';
-- a soft-deleted definition is not rolled up; a deleted one takes its state along
UPDATE kaireon.summary_definitions SET deleted_at = now() WHERE id = 'by-placement';
SELECT definition_key FROM kaireon.rollup_summaries('sum');
SELECT kaireon.rollup_summaries('sum', max_span => interval '-1 day');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the watermark is only safe in READ COMMITTED
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT kaireon.rollup_summaries('sum');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;

-- Metrics compile into queries over the day rows of the smallest fitting summary definition.
INSERT INTO kaireon.metric_definitions (tenant_id, id, key, name, aggregate_function, source_field, window_days,
                                        group_by_dimensions, filter_conditions) VALUES
    ('sum', 'clicks7', 'clicks7', 'Positive outcomes, 7 days', 'sum', 'positive', 7, '[]', '[]'),
    ('sum', 'value30', 'value30', 'Value by offer, 30 days', 'sum', 'total_value', 30, '["offer"]', '[]'),
    ('sum', 'ctr30', 'ctr30', 'Positive rate, 30 days', 'ratio', 'positive', 30, '[]', '[]'),
    ('sum', 'maxday', 'maxday', 'Best day', 'max', 'positive', 30, '[]', '[]'),
    ('sum', 'avgday', 'avgday', 'Average active day', 'avg', 'impressions', 60, '[]', '[]'),
    ('sum', 'o2only', 'o2only', 'Impressions of o2', 'count', NULL, 60, '[]',
     '[{"field": "offer", "operator": "eq", "value": "o2"}]'),
    ('sum', 'by-channel', 'by-channel', 'Needs a channel summary', 'count', NULL, 30, '["channel"]', '[]');
INSERT INTO kaireon.metric_definitions (tenant_id, id, key, name, sql_filter) VALUES ('sum', 'raw', 'raw', 'Raw SQL', 'true; DROP TABLE x');
-- definitions compute_metrics cannot compile are refused when written
INSERT INTO kaireon.metric_definitions (tenant_id, key, name, source_field) VALUES ('sum', 'bad', 'Bad', 'score');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.metric_definitions (tenant_id, key, name, group_by_dimensions) VALUES ('sum', 'bad', 'Bad', '["placement"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.metric_definitions (tenant_id, key, name, filter_conditions) VALUES ('sum', 'bad', 'Bad', '[{"field": "offer", "operator": "in", "value": "o1"}]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.compute_metrics('sum');
SELECT metric_id, customer_id, dimension_key, round(value::numeric, 4) AS value FROM kaireon.metric_values
 WHERE tenant_id = 'sum' ORDER BY 1, 2, 3;
SELECT metric_id, summary_definition_id, customers, error FROM kaireon.metric_state WHERE tenant_id = 'sum' ORDER BY 1;
-- not due again before batch_interval_min, unless forced; a customer without activity in the
-- window loses its value
SELECT count(*) AS due FROM kaireon.compute_metrics('sum');
UPDATE kaireon.metric_definitions SET window_days = 1 WHERE id = 'value30';
SELECT metric_key, customers FROM kaireon.compute_metrics('sum', force => true) WHERE metric_key = 'value30';
SELECT customer_id, dimension_key, value FROM kaireon.metric_values WHERE metric_id = 'value30';

-- Engagement health from the last 90 days, as of c1's last conversion (recency 1: a default
-- as_of of now() would make it depend on how long the statements in between took).
SELECT * FROM kaireon.compute_engagement_health('sum',
    as_of => (SELECT max(occurred_at) FROM kaireon.interaction_history WHERE tenant_id = 'sum'));
SELECT customer_id, round(score::numeric, 4) AS score, inputs - 'lastPositiveAt' AS inputs
  FROM kaireon.customer_engagement_health WHERE tenant_id = 'sum' ORDER BY 1;
-- CLV / RFM from the last 365 days (scores are ranks within the tenant)
SELECT * FROM kaireon.compute_customer_clv('sum');
SELECT customer_id, round(clv_score::numeric, 4) AS clv, predicted_revenue, round(churn_probability::numeric, 4) AS churn,
       rfm_recency, rfm_frequency, rfm_monetary, segment
  FROM kaireon.customer_clv WHERE tenant_id = 'sum' ORDER BY 1;
-- a customer without history in the window loses its scores
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'sum' AND customer_id = 'c2';
SELECT customers, removed FROM kaireon.compute_engagement_health('sum');
SELECT customers, removed FROM kaireon.compute_customer_clv('sum', horizon_days => 30);
SELECT kaireon.compute_customer_clv('sum', horizon_days => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- A role limited to its tenant computes only its own tenant's.
CREATE ROLE regress_sum_admin BYPASSRLS;
CREATE ROLE regress_sum_app;
SELECT kaireon.grant_app_role('regress_sum_app');
GRANT EXECUTE ON FUNCTION kaireon.compute_metrics(text, boolean) TO regress_sum_app;
SET ROLE regress_sum_app;
SET kaireon.tenant_id = 'sum';
SELECT * FROM kaireon.compute_metrics('sum_other');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;

-- clean up
DELETE FROM kaireon.tenants WHERE id LIKE 'sum%';
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_sum_app');
DROP OWNED BY regress_sum_app;
DROP ROLE regress_sum_app, regress_sum_admin;
