-- kaireon install script, part 84: the periodic jobs as plain functions, and
-- kaireon.run_maintenance, which runs every job once (for pg_cron users and servers without
-- shared_preload_libraries). The background workers run the same jobs on their schedules
-- (src/maintenance/worker.c, docs/workers.md).

CREATE FUNCTION kaireon.reset_volume_counters() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n           integer;
BEGIN
    -- recommend restarts a counter lazily when its reset_at has passed; this makes the reset
    -- visible to readers of the table too (the row lock orders it against recommend)
    UPDATE kaireon.volume_constraints v
       SET current_count = 0, reset_at = kaireon_internal._period_end(v.period, now())
     WHERE v.reset_at IS NOT NULL AND v.reset_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION kaireon.reset_volume_counters() IS
    'Starts the new period of every volume constraint whose reset_at has passed: current_count 0, reset_at the end of the current period (UTC). recommend does the same lazily when it next counts; returns the constraints reset.';

-- The jobs, their schedule settings and what each does: the one list the documentation and
-- the workers follow (src/maintenance/catalogue.c has the same names).
CREATE FUNCTION kaireon.maintenance_jobs()
    RETURNS TABLE (job text, schedule_setting text, schedule text, does text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT j.job, j.setting, coalesce(current_setting(j.setting, true), '(library not loaded)'), j.does
      FROM (VALUES
        (1, 'retention', 'kaireon.retention_schedule', 'kaireon.run_retention: every data class of every tenant, then the coming months'' partitions'),
        (2, 'partitions', 'kaireon.partition_schedule', 'kaireon.create_interaction_partitions(kaireon.partition_months_ahead)'),
        (3, 'outbox', 'kaireon.outbox_schedule', 'kaireon.publish_outbox until no due event is left'),
        (4, 'summaries', 'kaireon.summary_schedule', 'kaireon.rollup_summaries until caught up, then kaireon.compute_metrics'),
        (5, 'volume_reset', 'kaireon.volume_reset_schedule', 'kaireon.reset_volume_counters'),
        (6, 'suppressions', 'kaireon.suppression_schedule', 'kaireon.run_retention for the suppressions class (expired suppressions)'),
        (7, 'scores', 'kaireon.score_schedule', 'kaireon.compute_engagement_health and kaireon.compute_customer_clv'),
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)'),
        (9, 'alerts', 'kaireon.alert_schedule', 'kaireon.evaluate_alerts in batches of kaireon.alert_batch_size until every active rule was evaluated'),
        (10, 'schedules', 'kaireon.campaign_schedule', 'kaireon.run_schedules: due scheduled campaign runs, then their pending export batches, one per transaction'),
        (11, 'journeys', 'kaireon.journey_schedule', 'segment entries (kaireon.enroll_journey_segments), then kaireon.advance_journeys in batches of kaireon.journey_batch_size due enrolments, one transaction per batch, until fewer are due')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;
COMMENT ON FUNCTION kaireon.maintenance_jobs() IS
    'The maintenance jobs: name, the setting holding its schedule (''HH:MM'' daily in UTC, an interval such as ''5min'', or ''off''), its current value, and what it runs.';

CREATE FUNCTION kaireon.run_maintenance(jobs text[] DEFAULT NULL)
    RETURNS TABLE (job text, status text, started_at timestamptz, finished_at timestamptz, detail jsonb, error text)
    AS 'MODULE_PATHNAME', 'kaireon_run_maintenance'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_maintenance(text[]) IS
    'Runs every maintenance job (or those named in jobs) once, in the order of kaireon.maintenance_jobs(), each in a subtransaction so one failing job does not stop the others; returns what each did. For pg_cron and servers without the background workers. Runs in the caller''s transaction; CALL kaireon.run_maintenance_batched() commits as it goes.';

CREATE PROCEDURE kaireon.run_maintenance_batched(jobs text[] DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'kaireon_run_maintenance_batched'
    LANGUAGE C;
COMMENT ON PROCEDURE kaireon.run_maintenance_batched(text[]) IS
    'kaireon.run_maintenance committing after every batch of every job (short transactions; the outbox''s notifications go out as it runs). Call it outside a transaction block; each run is recorded in kaireon.maintenance_runs.';
