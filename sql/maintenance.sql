-- kaireon.run_maintenance (docs/workers.md): every job once, for pg_cron and servers without
-- the background workers; its run history, capped per job; the volume counter resets; the
-- schedule settings and their checks. The workers themselves are tested by TAP (030_workers).
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT job, schedule_setting, schedule FROM kaireon.maintenance_jobs();
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('mnt', 'Maintenance', 'mnt');
SELECT count(*) >= 0 AS partitions FROM kaireon.create_interaction_partitions(3);

-- Work for some jobs: an outbox event, an expired suppression, a volume constraint whose
-- period ended, a summary definition with history.
INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('mnt', 'ev1', 'x');
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope, expires_at) VALUES ('mnt', 's1', 'c1', 'global', now() - interval '1 hour');
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, max_volume, period, current_count, reset_at) VALUES
    ('mnt', 'v-ended', 'Ended', 'global', 10, 'daily', 7, now() - interval '1 hour'),
    ('mnt', 'v-running', 'Running', 'global', 10, 'daily', 3, now() + interval '1 hour'),
    ('mnt', 'v-unused', 'Unused', 'global', 10, 'monthly', 0, NULL);
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, dimensions, windows) VALUES ('mnt', 'all', 'All', '["customer"]', '["all"]');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('mnt', 'c1', 'impression');

SELECT job, status, detail - 'held' - 'partitionsCreated' - 'retiredPartitions' - 'created' AS detail, error
  FROM kaireon.run_maintenance();
SELECT id, current_count, reset_at = kaireon._period_end(period, now()) AS new_period, reset_at IS NULL AS never_counted
  FROM kaireon.volume_constraints WHERE tenant_id = 'mnt' ORDER BY id;
SELECT status FROM kaireon.outbox_events WHERE id = 'ev1';
SELECT count(*) AS suppressions_left FROM kaireon.suppressions WHERE tenant_id = 'mnt';
SELECT customer_id, impressions FROM kaireon.interaction_summaries WHERE tenant_id = 'mnt';
-- every run is recorded; a second run of the frequent jobs finds nothing to do and records nothing
SELECT job, source, trigger, status FROM kaireon.maintenance_runs ORDER BY id;
SELECT job, status FROM kaireon.run_maintenance(jobs => '{volume_reset,outbox}');
SELECT count(*) AS runs FROM kaireon.maintenance_runs;

-- A job that fails is reported and the others still run.
ALTER TABLE kaireon.volume_constraints RENAME COLUMN current_count TO current_count_x;
SELECT job, status, error FROM kaireon.run_maintenance(jobs => '{dual_prices,volume_reset,outbox}');
ALTER TABLE kaireon.volume_constraints RENAME COLUMN current_count_x TO current_count;
SELECT job, status, error FROM kaireon.maintenance_runs WHERE status = 'failed';

-- The history keeps kaireon.run_history_size rows per job.
SET kaireon.run_history_size = 2;
SELECT count(*) FROM generate_series(1, 4) i, LATERAL kaireon.run_maintenance(jobs => '{partitions}') r;
SELECT job, count(*) FROM kaireon.maintenance_runs GROUP BY 1 ORDER BY 1;
RESET kaireon.run_history_size;

-- The procedure commits job by job.
INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('mnt', 'ev2', 'x');
CALL kaireon.run_maintenance_batched(jobs => '{outbox}');
SELECT job, source, status, detail ->> 'events' AS events FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 1;

-- Checks: job names, schedules, databases, privileges.
SELECT * FROM kaireon.run_maintenance(jobs => '{retention,vacuum}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_maintenance(jobs => '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET kaireon.retention_schedule = '03:00';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET kaireon.retention_schedule = '25:00';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET kaireon.outbox_schedule = '5';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET kaireon.outbox_schedule = '10ms';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ALTER SYSTEM SET kaireon.databases = 'a,,b';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE ROLE regress_mnt_app;
SELECT kaireon.grant_app_role('regress_mnt_app');
SET ROLE regress_mnt_app;
SELECT * FROM kaireon.run_maintenance();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS runs_visible FROM kaireon.maintenance_runs;
RESET ROLE;
-- an admin role with BYPASSRLS may run maintenance
CREATE ROLE regress_mnt_admin;
SELECT kaireon.grant_admin_role('regress_mnt_admin');
SET ROLE regress_mnt_admin;
SELECT job, status FROM kaireon.run_maintenance(jobs => '{volume_reset}');
RESET ROLE;

-- clean up
DELETE FROM kaireon.tenants WHERE id = 'mnt';
DELETE FROM kaireon.maintenance_runs;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_mnt_app', 'regress_mnt_admin');
DROP OWNED BY regress_mnt_app, regress_mnt_admin;
DROP ROLE regress_mnt_app, regress_mnt_admin;
