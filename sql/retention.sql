-- Retention (docs/retention.md): every data class, defaults and per-tenant overrides, legal
-- holds, dry runs, whole partitions dropped or detached versus rows deleted, the batched
-- procedure, and the argument and privilege checks.
\set VERBOSITY terse
SET client_min_messages = warning;

-- Three tenants: ret_a keeps the defaults; ret_b keeps interactions 10 years, metrics (and so
-- summaries) 30 days and expired suppressions 7 days; ret_h has legal holds on interactions
-- and decisions.
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('ret_a', 'A', 'ret_a'), ('ret_b', 'B', 'ret_b'), ('ret_h', 'H', 'ret_h');
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days, legal_hold) VALUES
    ('ret_b', 'interactions', 3650, false),
    ('ret_b', 'metrics', 30, false),
    ('ret_b', 'suppressions', 7, false),
    ('ret_h', 'interactions', 1, true),
    ('ret_h', 'decisions', 1, true);
SELECT data_class, retention_days, covers IS NOT NULL AS documented FROM kaireon.retention_defaults();
SELECT tenant_id, data_class, retention_days, legal_hold, configured,
       cutoff = now() - make_interval(hours => 24 * retention_days) AS cutoff_ok
  FROM kaireon.retention_policies() WHERE tenant_id LIKE 'ret_%' ORDER BY 1, 2;

-- retention_days is 1 to 36500 days (23514, nothing written): 2147483647 days put every tenant's
-- cutoff out of range, and retention_policies() failed for all of them; 36500 is accepted
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('ret_a', 'outbox', 2147483647);
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('ret_a', 'outbox', 36501);
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('ret_a', 'outbox', 0);
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('ret_a', 'outbox', 36500);
SELECT tenant_id, retention_days, cutoff = now() - make_interval(hours => 24 * 36500) AS cutoff_ok
  FROM kaireon.retention_policies() WHERE tenant_id = 'ret_a' AND data_class = 'outbox';
SELECT count(*) AS policies FROM kaireon.retention_policies() WHERE tenant_id LIKE 'ret_%';
DELETE FROM kaireon.retention_configs WHERE tenant_id = 'ret_a' AND data_class = 'outbox';

-- interaction_history: partitions 30, 29 and 28 UTC months back (month arithmetic in UTC: in the
-- session's zone two of them can land in one UTC month at a month end), and the coming months (so the
-- run creates none). The month 30 back holds only ret_a's rows: it goes in one step. Month 29
-- also holds ret_b's rows (10 years) and month 28 ret_h's (held): ret_a's rows there are
-- deleted row by row. ret_a also has a row in the default partition and recent rows.
CREATE TEMP TABLE months AS
SELECT m, at, 'interaction_history_p' || to_char(at AT TIME ZONE 'UTC', 'YYYY_MM') AS part
  FROM (SELECT m, (date_trunc('month', (now() AT TIME ZONE 'UTC') - make_interval(months => m)) + interval '10 days') AT TIME ZONE 'UTC' AS at
          FROM unnest(ARRAY[30, 29, 28]) AS m) x;
SELECT count(*) FROM kaireon.create_interaction_partitions(2, (SELECT (at AT TIME ZONE 'UTC')::date FROM months WHERE m = 30));
SELECT count(*) >= 0 AS current_partitions FROM kaireon.create_interaction_partitions(3);
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
SELECT 'ret_a', m.at + make_interval(secs => i), 'c' || (i % 7), 'recommendation'
  FROM months m, generate_series(1, 300) i;
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
SELECT 'ret_b', m.at + make_interval(secs => i), 'b' || i, 'recommendation'
  FROM months m, generate_series(1, 20) i WHERE m.m = 29;
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type)
SELECT 'ret_h', m.at + make_interval(secs => i), 'h' || i, 'recommendation'
  FROM months m, generate_series(1, 20) i WHERE m.m = 28;
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type) VALUES
    ('ret_a', now() - interval '40 months', 'c-default', 'recommendation'),
    -- (c-recent now, not a day ago: on a month's first day that is last month, which has no
    -- partition; h-recent 25 hours ago: older than ret_h's one day of 24 hours, even on the
    -- day a DST change makes one day ago 23 hours)
    ('ret_a', now(), 'c-recent', 'recommendation'),
    ('ret_h', now() - interval '25 hours', 'h-recent', 'recommendation');
SELECT c.relname = 'interaction_history_default' AS in_default FROM kaireon.interaction_history h
  JOIN pg_class c ON c.oid = h.tableoid WHERE h.customer_id = 'c-default';
-- impressions, decision locks (removed after 100 days) and idempotency keys (after 30 days)
INSERT INTO kaireon.impressions (tenant_id, customer_id, occurred_at) VALUES
    ('ret_a', 'c1', now() - interval '800 days'), ('ret_a', 'c1', now() - interval '1 day'),
    ('ret_h', 'h1', now() - interval '800 days');
INSERT INTO kaireon.decision_locks (tenant_id, customer_id, last_decision_at) VALUES
    ('ret_a', 'c-old', now() - interval '200 days'), ('ret_a', 'c-new', now() - interval '1 day'),
    ('ret_h', 'h-old', now() - interval '200 days');
INSERT INTO kaireon.respond_idempotency (tenant_id, idempotency_key, interaction_id, created_at) VALUES
    ('ret_a', 'k-old', 'i1', now() - interval '40 days'), ('ret_a', 'k-new', 'i2', now() - interval '1 day');

-- decisions: traces older than 365 days go, then the snapshots no remaining trace refers to
INSERT INTO kaireon.decision_traces (tenant_id, id, request_id, customer_id, policy_version_hash, created_at) VALUES
    ('ret_a', 't-old', 'r', 'c1', '000000000000000a', now() - interval '400 days'),
    ('ret_a', 't-old2', 'r', 'c1', '000000000000000b', now() - interval '400 days'),
    ('ret_a', 't-new', 'r', 'c1', '000000000000000b', now() - interval '1 day'),
    ('ret_h', 't-held', 'r', 'h1', '000000000000000a', now() - interval '400 days');
-- and the per-decision logs beside them: shadow model scores and campaign decisions
SET session_replication_role = replica;   -- (their models and campaign runs are not needed here)
INSERT INTO kaireon.model_shadow_scores (tenant_id, id, model_id, customer_id, score, created_at) VALUES
    ('ret_a', 'ss-old', 'm', 'c1', 0.5, now() - interval '400 days'), ('ret_a', 'ss-new', 'm', 'c1', 0.5, now() - interval '1 day'),
    ('ret_h', 'ss-held', 'm', 'h1', 0.5, now() - interval '400 days');
INSERT INTO kaireon.campaign_decisions (tenant_id, campaign_run_id, customer_id, rank, offer_id, channel_id, score,
                                        arbitrated_value, recommendation_id, created_at) VALUES
    ('ret_a', 'run-old', 'c1', 1, 'o', 'web', 1, 1, 'r1', now() - interval '400 days'),
    ('ret_a', 'run-new', 'c1', 1, 'o', 'web', 1, 1, 'r2', now() - interval '1 day');
RESET session_replication_role;
INSERT INTO kaireon.policy_snapshots (tenant_id, id, policy_version_hash, created_at) VALUES
    ('ret_a', 's-only-old-trace', '000000000000000a', now() - interval '400 days'),
    ('ret_a', 's-new-trace', '000000000000000b', now() - interval '400 days'),
    ('ret_a', 's-unreferenced', '000000000000000c', now() - interval '400 days'),
    ('ret_a', 's-recent', '000000000000000d', now() - interval '1 day');

-- metrics and summaries: ret_a keeps 2555 days, ret_b 30 (its metrics row covers summaries)
INSERT INTO kaireon.metric_definitions (tenant_id, id, key, name) VALUES ('ret_a', 'm', 'm', 'M'), ('ret_b', 'm', 'm', 'M');
INSERT INTO kaireon.metric_values (tenant_id, metric_id, customer_id, computed_at) VALUES
    ('ret_a', 'm', 'c-old', now() - interval '3000 days'), ('ret_a', 'm', 'c-mid', now() - interval '40 days'),
    ('ret_b', 'm', 'b-mid', now() - interval '40 days'), ('ret_b', 'm', 'b-new', now() - interval '1 day');
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('ret_a', 'o', 'O');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('ret_a', 'web', 'Web', 'web');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('ret_a', 'cr', 'o', 'web', 'Cr');
INSERT INTO kaireon.creative_performance (tenant_id, creative_id, channel_id, offer_id, period_start, period_end) VALUES
    ('ret_a', 'cr', 'web', 'o', now() - interval '3000 days', now() - interval '2999 days'),
    ('ret_a', 'cr', 'web', 'o', now() - interval '2 days', now() - interval '1 day');
INSERT INTO kaireon.interaction_summaries (tenant_id, period_type, period_key, customer_id, updated_at) VALUES
    ('ret_a', 'day', '2018-01-01', 'c-old', now() - interval '3000 days'),
    ('ret_a', 'day', '2026-01-01', 'c-mid', now() - interval '40 days'),
    ('ret_b', 'day', '2026-01-01', 'b-mid', now() - interval '40 days'),
    ('ret_b', 'day', '2026-02-01', 'b-new', now() - interval '1 day');

-- suppressions: removed once expired (ret_b keeps expired ones 7 days); no expiry stays
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope, expires_at) VALUES
    ('ret_a', 'expired', 'c1', 'global', now() - interval '1 hour'),
    ('ret_a', 'active', 'c1', 'global', now() + interval '1 day'),
    ('ret_a', 'forever', 'c1', 'global', NULL),
    ('ret_b', 'expired-1d', 'b1', 'global', now() - interval '1 day'),
    ('ret_b', 'expired-10d', 'b1', 'global', now() - interval '10 days');

-- outbox: published and dead events and dead letters after 30 days; pending ones stay
INSERT INTO kaireon.outbox_events (tenant_id, id, topic, status, published_at, next_attempt_at, updated_at) VALUES
    ('ret_a', 'pub-old', 't', 'published', now() - interval '40 days', now() - interval '41 days', now()),
    ('ret_a', 'pub-new', 't', 'published', now() - interval '1 day', now() - interval '1 day', now()),
    ('ret_a', 'pending-old', 't', 'pending', NULL, now() - interval '41 days', now());
INSERT INTO kaireon.outbox_events (tenant_id, id, topic, status, next_attempt_at, updated_at) VALUES
    ('ret_a', 'dead-old', 't', 'dead', now() - interval '41 days', now() - interval '40 days');
INSERT INTO kaireon.dead_letter_events (tenant_id, id, topic, failed_at) VALUES
    ('ret_a', 'dl-old', 't', now() - interval '40 days'), ('ret_a', 'dl-new', 't', now() - interval '1 day');

CREATE TEMP VIEW counts AS
SELECT 'interaction_history' AS t, tenant_id, count(*) AS n FROM kaireon.interaction_history WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'impressions', tenant_id, count(*) FROM kaireon.impressions WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'decision_locks', tenant_id, count(*) FROM kaireon.decision_locks WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'respond_idempotency', tenant_id, count(*) FROM kaireon.respond_idempotency WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'decision_traces', tenant_id, count(*) FROM kaireon.decision_traces WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'policy_snapshots', tenant_id, count(*) FROM kaireon.policy_snapshots WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'model_shadow_scores', tenant_id, count(*) FROM kaireon.model_shadow_scores WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'campaign_decisions', tenant_id, count(*) FROM kaireon.campaign_decisions WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'metric_values', tenant_id, count(*) FROM kaireon.metric_values WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'creative_performance', tenant_id, count(*) FROM kaireon.creative_performance WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'interaction_summaries', tenant_id, count(*) FROM kaireon.interaction_summaries WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'suppressions', tenant_id, count(*) FROM kaireon.suppressions WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'outbox_events', tenant_id, count(*) FROM kaireon.outbox_events WHERE tenant_id LIKE 'ret_%' GROUP BY 2
UNION ALL SELECT 'dead_letter_events', tenant_id, count(*) FROM kaireon.dead_letter_events WHERE tenant_id LIKE 'ret_%' GROUP BY 2;
CREATE TEMP TABLE before AS SELECT * FROM counts;

-- A dry run reports what would go and removes nothing.
SELECT tenant_id, data_class, retention_days, held, rows_deleted, partitions_dropped, detail
  FROM kaireon.run_retention(dry_run => true) WHERE tenant_id LIKE 'ret_%' ORDER BY 1, 2;
SELECT tenant_id IS NULL AS partitions_row, partitions_dropped,
       detail -> 'retired' = (SELECT jsonb_agg(part) FROM months WHERE m = 30) AS retires_month_30
  FROM kaireon.run_retention(dry_run => true) WHERE tenant_id IS NULL;
SELECT count(*) AS changed_by_dry_run FROM (SELECT * FROM counts EXCEPT SELECT * FROM before) x;
SELECT count(*) AS months_kept FROM months WHERE to_regclass('kaireon.' || part) IS NOT NULL;

-- The run: the same numbers, removed (the retired partition's name depends on today's date:
-- it is compared with month 30's, not printed).
SELECT tenant_id, data_class, retention_days, cutoff = now() - make_interval(hours => 24 * retention_days) AS cutoff_ok,
       held, rows_deleted, partitions_dropped,
       CASE WHEN tenant_id IS NULL
            THEN (detail - 'retired') || jsonb_build_object('retiredIsMonth30',
                     detail -> 'retired' = (SELECT jsonb_agg(part) FROM months WHERE m = 30))
            ELSE detail END AS detail
  FROM kaireon.run_retention() WHERE tenant_id LIKE 'ret_%' OR tenant_id IS NULL ORDER BY 1, 2;
-- month 30 went as a whole; months 29 and 28 stay with the rows that must stay
SELECT m, to_regclass('kaireon.' || part) IS NOT NULL AS partition_exists FROM months ORDER BY m DESC;
SELECT b.t, b.tenant_id, b.n AS before, coalesce(c.n, 0) AS after
  FROM before b LEFT JOIN counts c USING (t, tenant_id) ORDER BY 1, 2;
SELECT customer_id FROM kaireon.interaction_history WHERE tenant_id = 'ret_a' ORDER BY 1;
SELECT id FROM kaireon.policy_snapshots WHERE tenant_id = 'ret_a' ORDER BY 1;
SELECT id FROM kaireon.suppressions WHERE tenant_id LIKE 'ret_%' ORDER BY 1;
SELECT id, status FROM kaireon.outbox_events WHERE tenant_id LIKE 'ret_%' ORDER BY 1;
SELECT customer_id FROM kaireon.decision_locks WHERE tenant_id LIKE 'ret_%' ORDER BY 1;
-- a second run finds nothing left to do
SELECT sum(rows_deleted) AS rows_deleted, sum(partitions_dropped) AS partitions_dropped
  FROM kaireon.run_retention() WHERE tenant_id LIKE 'ret_%' OR tenant_id IS NULL;
-- the runs are in the history (the dry runs too)
SELECT job, source, trigger, status, detail -> 'dryRun' AS dry_run, (detail ->> 'rowsDeleted')::bigint > 0 AS removed
  FROM kaireon.maintenance_runs ORDER BY id;

-- Lifting a hold: ret_h's rows go, and month 28 can now be dropped whole.
UPDATE kaireon.retention_configs SET legal_hold = false WHERE tenant_id = 'ret_h';
SELECT tenant_id, data_class, held, rows_deleted, partitions_dropped, detail -> 'tables' AS tables
  FROM kaireon.run_retention(data_classes => '{interactions,decisions}')
 WHERE tenant_id = 'ret_h' OR tenant_id IS NULL ORDER BY 1, 2;
SELECT m, to_regclass('kaireon.' || part) IS NOT NULL AS partition_exists FROM months ORDER BY m DESC;

-- Detach instead of drop: month 29 leaves interaction_history but stays as a table.
DELETE FROM kaireon.retention_configs WHERE tenant_id = 'ret_b' AND data_class = 'interactions';
SET kaireon.retention_partition_action = 'detach';
SELECT tenant_id, rows_deleted, partitions_dropped, detail -> 'action' AS action
  FROM kaireon.run_retention(data_classes => '{interactions}') WHERE tenant_id = 'ret_b' OR tenant_id IS NULL ORDER BY 1;
RESET kaireon.retention_partition_action;
SELECT c.relispartition, (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'ret_b') AS ret_b_rows_attached
  FROM months m JOIN pg_class c ON c.oid = to_regclass('kaireon.' || m.part) WHERE m.m = 29;
SELECT (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM kaireon.%I', part), false, true, '')))[1]::text
       AS detached_rows FROM months WHERE m = 29;

-- The procedure commits after every batch; its report is its history row.
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, expires_at)
SELECT 'ret_a', 'c' || i, 'global', now() - interval '1 hour' FROM generate_series(1, 250) i;
SET kaireon.retention_batch_size = 100;
CALL kaireon.run_retention_batched(data_classes => '{suppressions}') \gset
RESET kaireon.retention_batch_size;
SELECT id = :run_id AS its_row, source, status, detail -> 'rowsDeleted' AS rows_deleted
  FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 1;
SELECT count(*) AS expired_left FROM kaireon.suppressions WHERE tenant_id = 'ret_a' AND expires_at < now();
-- inside a transaction block it cannot commit: it runs in that transaction
BEGIN;
CALL kaireon.run_retention_batched(dry_run => true) \gset
SELECT status, detail -> 'dryRun' AS dry_run FROM kaireon.maintenance_runs WHERE id = :run_id;
ROLLBACK;

-- A legal hold set while a run goes on stops it from the next batch: here a trigger puts
-- ret_m's interactions on hold when the run deletes decision traces (the decisions class
-- comes first), and ret_m's expired interactions stay.
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('ret_m', 'M', 'ret_m');
INSERT INTO kaireon.decision_traces (tenant_id, id, request_id, customer_id, policy_version_hash, created_at) VALUES
    ('ret_m', 't-m', 'r', 'm1', '00000000000000aa', now() - interval '400 days');
INSERT INTO kaireon.interaction_history (tenant_id, occurred_at, customer_id, interaction_type) VALUES
    ('ret_m', now() - interval '40 months', 'm1', 'recommendation');
INSERT INTO kaireon.impressions (tenant_id, customer_id, occurred_at) VALUES ('ret_m', 'm1', now() - interval '800 days');
CREATE FUNCTION public.hold_mid_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days, legal_hold)
    VALUES ('ret_m', 'interactions', 730, true) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER hold_mid_run AFTER DELETE ON kaireon.decision_traces FOR EACH STATEMENT EXECUTE FUNCTION public.hold_mid_run();
SELECT tenant_id, data_class, held AS held_at_start, rows_deleted
  FROM kaireon.run_retention(data_classes => '{decisions,interactions}') WHERE tenant_id = 'ret_m' ORDER BY 2;
DROP TRIGGER hold_mid_run ON kaireon.decision_traces;
DROP FUNCTION public.hold_mid_run();
SELECT (SELECT count(*) FROM kaireon.decision_traces WHERE tenant_id = 'ret_m') AS traces_left,
       (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'ret_m') AS history_kept,
       (SELECT count(*) FROM kaireon.impressions WHERE tenant_id = 'ret_m') AS impressions_kept;

-- The partition retirement checks every tenant's policy itself, whoever calls it: the
-- partition holding ret_a's recent row is not dropped even when the caller allows ret_a.
SELECT c.relname AS recent_part FROM kaireon.interaction_history h JOIN pg_class c ON c.oid = h.tableoid
 WHERE h.customer_id = 'c-recent' \gset
SELECT kaireon_internal._retire_interaction_partition(:'recent_part', ARRAY['ret_a', 'ret_b', 'ret_h', 'ret_m']) AS retired;
SELECT to_regclass('kaireon.' || :'recent_part') IS NOT NULL AS still_there;

-- Bad arguments are refused before anything is done.
SELECT * FROM kaireon.run_retention(dry_run => NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_retention(data_classes => '{interactions,bogus}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_retention(data_classes => '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_retention(data_classes => ARRAY[NULL]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET kaireon.retention_partition_action = 'truncate';
SELECT kaireon_internal._retire_interaction_partition('interaction_history_default', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Retention acts on every tenant: not for a role limited by row level security.
CREATE ROLE regress_ret_app;
SELECT kaireon.grant_app_role('regress_ret_app');
SET ROLE regress_ret_app;
SET kaireon.tenant_id = 'ret_a';
SELECT * FROM kaireon.run_retention();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CALL kaireon.run_retention_batched();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
-- nor for an admin role without BYPASSRLS: row level security would hide other tenants' rows
CREATE ROLE regress_ret_admin;
SELECT kaireon.grant_admin_role('regress_ret_admin', bypass_rls => false);
SET ROLE regress_ret_admin;
SELECT * FROM kaireon.run_retention();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;

-- clean up
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DELETE FROM kaireon.tenants WHERE id LIKE 'ret_%';
DELETE FROM kaireon.maintenance_runs;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_ret_app', 'regress_ret_admin');
DROP OWNED BY regress_ret_app, regress_ret_admin;
DROP ROLE regress_ret_app, regress_ret_admin;
