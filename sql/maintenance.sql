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
SELECT id, current_count, reset_at = kaireon_internal._period_end(period, now()) AS new_period, reset_at IS NULL AS never_counted
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

-- An error escaping a job of a procedure (not one of its statements: those are recorded and
-- the run goes on) marks the committed 'running' row failed with the error, releases the job's
-- lock, and is returned to the caller. Here the progress update of summaries is refused.
CREATE FUNCTION pg_temp.refuse_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'progress update refused (test)'; END $$;
CREATE TRIGGER refuse_progress BEFORE UPDATE ON kaireon.maintenance_runs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status = 'running') EXECUTE FUNCTION pg_temp.refuse_progress();
CALL kaireon.run_maintenance_batched(jobs => '{summaries}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT job, source, status, error, finished_at IS NOT NULL AS finished FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 1;
-- the same through run_retention_batched
CALL kaireon.run_retention_batched(false);
SELECT job, source, status, error FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 1;
DROP TRIGGER refuse_progress ON kaireon.maintenance_runs;
-- a statement timeout in the middle of a purge (a statement of the job: re-thrown)
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope, expires_at) VALUES ('mnt', 's2', 'c1', 'global', now() - interval '1 hour');
CREATE FUNCTION pg_temp.slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN OLD; END $$;
CREATE TRIGGER slow_delete BEFORE DELETE ON kaireon.suppressions FOR EACH ROW EXECUTE FUNCTION pg_temp.slow_delete();
SET statement_timeout = '300ms';
CALL kaireon.run_retention_batched(false, '{suppressions}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT job, source, status, error FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 1;
DROP TRIGGER slow_delete ON kaireon.suppressions;
-- no job lock is left behind (kaireon's advisory locks: classid 1801546098), and the jobs run again
SELECT count(*) AS kaireon_locks FROM pg_locks WHERE locktype = 'advisory' AND classid = 1801546098;
CALL kaireon.run_maintenance_batched(jobs => '{summaries,suppressions}');
SELECT job, status FROM kaireon.maintenance_runs ORDER BY id DESC LIMIT 2;
SELECT count(*) AS suppressions_left FROM kaireon.suppressions WHERE tenant_id = 'mnt';
-- a manual run holds the job's lock while it runs (in the caller's transaction: until it ends)
BEGIN;
SELECT job, status FROM kaireon.run_maintenance(jobs => '{volume_reset}');
SELECT objid AS job_lock FROM pg_locks WHERE locktype = 'advisory' AND classid = 1801546098 AND pid = pg_backend_pid();
COMMIT;
SELECT count(*) AS kaireon_locks FROM pg_locks WHERE locktype = 'advisory' AND classid = 1801546098;

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
