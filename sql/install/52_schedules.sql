-- kaireon install script, part 52: scheduled campaign runs (docs/schedules.md). kaireon.runs
-- rows with schedule_type once, recurring or cron are run by kaireon.run_schedules (the
-- "schedules" maintenance job) when next_run_at is due; each run is a campaign_runs row, and
-- its decisions are exported as file_config asks (kaireon.campaign_exports or a file of
-- kaireon.export_directory), resumably through export_checkpoints (src/campaign/schedule.c).

-- recurring runs: the time between two runs
ALTER TABLE kaireon.runs ADD COLUMN repeat_interval interval
    CONSTRAINT runs_repeat_interval_check CHECK (repeat_interval >= interval '1 minute');
COMMENT ON COLUMN kaireon.runs.repeat_interval IS
    'schedule_type recurring: the time from one run''s slot to the next (at least 1 minute; a scheduler behind by more than one interval runs once and continues from then). See docs/schedules.md.';
COMMENT ON COLUMN kaireon.runs.cron_expression IS
    'schedule_type cron: five fields (minute hour day-of-month month day-of-week; *, numbers, ranges, lists, steps), in UTC, checked when written (22023 naming the bad field). See docs/schedules.md.';
COMMENT ON COLUMN kaireon.runs.next_run_at IS
    'The next slot of a scheduled run (once, recurring, cron): filled when the schedule is written (cron: its next minute; once and recurring: now() unless given), advanced by kaireon.run_schedules after each run, NULL when there is none.';
COMMENT ON COLUMN kaireon.runs.file_config IS
    'The export of each scheduled run''s decisions: {} (none) or {"format": "csv" | "json", "target": "table" (kaireon.campaign_exports, the default) | "file" (kaireon.export_directory)}. See docs/schedules.md.';
-- the scheduler reads only the due runs, through this index
CREATE INDEX runs_due_idx ON kaireon.runs (next_run_at)
    WHERE status = 'active' AND schedule_type IN ('once', 'recurring', 'cron');

CREATE FUNCTION kaireon_internal._check_run_schedule() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_run_schedule'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_run_schedule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of runs: the schedule (cron needs a cron_expression that parses and matches within ten years, recurring a repeat_interval) and file_config (22023 naming the run; 55000 for a file export while kaireon.export_directory is unset); fills next_run_at when the schedule is written (docs/schedules.md).';
CREATE TRIGGER check_schedule BEFORE INSERT OR UPDATE OF schedule_type, cron_expression, repeat_interval, file_config
    ON kaireon.runs FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_run_schedule();

-- an export's position: one checkpoint per exported campaign run
ALTER TABLE kaireon.export_checkpoints
    ADD COLUMN campaign_run_id text,
    ADD COLUMN format text CONSTRAINT export_checkpoints_format_check CHECK (format IN ('csv', 'json')),
    ADD COLUMN target text CONSTRAINT export_checkpoints_target_check CHECK (target IN ('table', 'file')),
    ADD COLUMN rows_exported bigint NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_rows_exported_check CHECK (rows_exported >= 0),
    ADD COLUMN bytes_written bigint NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_bytes_written_check CHECK (bytes_written >= 0),
    ADD COLUMN last_customer_id text,
    ADD COLUMN last_rank integer,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_attempts_check CHECK (attempts >= 0),
    ADD COLUMN error text,
    ADD CONSTRAINT export_checkpoints_campaign_run_fkey FOREIGN KEY (tenant_id, campaign_run_id)
        REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX export_checkpoints_tenant_id_campaign_run_id_idx
    ON kaireon.export_checkpoints (tenant_id, campaign_run_id);
-- the scheduler reads only the pending exports, through this index
CREATE INDEX export_checkpoints_pending_idx ON kaireon.export_checkpoints (created_at, id)
    WHERE status IN ('running', 'failed') AND campaign_run_id IS NOT NULL;
COMMENT ON COLUMN kaireon.export_checkpoints.campaign_run_id IS
    'The campaign run whose decisions this export writes (export_type ''campaign_run:<id>''); rows_exported, bytes_written and last_customer_id / last_rank are its committed position, from which an interrupted export resumes. See docs/schedules.md.';

-- An export's position is the scheduler's alone (docs/schedules.md, "Checkpoints"): it steers
-- where the scheduler (a superuser) truncates and writes a file of the directory every tenant
-- shares, and which decisions it writes out. A tenant's role that could move it would have the
-- server rewrite or resume a file with bytes it never wrote: a tenant created later under a
-- deleted tenant's slug, given the old file's size as its position, would deliver the other
-- tenant's decisions as its own export. So only the roles that may run the scheduler
-- (superusers, BYPASSRLS) create a campaign run's checkpoint or change it; a tenant may reset
-- attempts (to resume a failed export) and delete its checkpoints.
CREATE FUNCTION kaireon_internal._guard_export_checkpoint() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.campaign_run_id IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to create the export checkpoint of campaign run "%"', NEW.campaign_run_id
            USING ERRCODE = '42501', HINT = 'kaireon.run_schedules creates the checkpoint of a scheduled run it exports (docs/schedules.md).';
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.campaign_run_id IS NOT NULL OR NEW.campaign_run_id IS NOT NULL)
       AND (OLD.tenant_id, OLD.id, OLD.export_type, OLD.campaign_run_id, OLD.format, OLD.target, OLD.rows_exported,
            OLD.bytes_written, OLD.last_customer_id, OLD.last_rank, OLD.file_path, OLD.status, OLD.last_export_at,
            OLD.created_at)
           IS DISTINCT FROM
           (NEW.tenant_id, NEW.id, NEW.export_type, NEW.campaign_run_id, NEW.format, NEW.target, NEW.rows_exported,
            NEW.bytes_written, NEW.last_customer_id, NEW.last_rank, NEW.file_path, NEW.status, NEW.last_export_at,
            NEW.created_at) THEN
        RAISE EXCEPTION 'permission denied to change the position of export checkpoint "%"', OLD.id
            USING ERRCODE = '42501',
                  HINT = 'Only the scheduler moves an export; set attempts = 0 to let it resume a failed export (docs/schedules.md).';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._guard_export_checkpoint() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of export_checkpoints: a campaign run''s checkpoint is created and moved by the scheduler alone (superusers and BYPASSRLS roles); other roles may only change attempts and error (42501 otherwise). See docs/schedules.md.';
CREATE TRIGGER guard_position BEFORE INSERT OR UPDATE ON kaireon.export_checkpoints
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._guard_export_checkpoint();

-- No foreign key of its own to kaireon.tenants: the one to campaign_runs (which cascades from
-- the tenant) is enough.
CREATE TABLE kaireon.campaign_exports (
    tenant_id               text NOT NULL,
    campaign_run_id         text NOT NULL,
    line_number             bigint NOT NULL CHECK (line_number >= 0),
    line                    text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_run_id, line_number),
    FOREIGN KEY (tenant_id, campaign_run_id) REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.campaign_exports IS
    'kaireon''s own table: the exported decisions of scheduled campaign runs whose file_config target is table, one line each (line_number from 1 in customer and rank order; a CSV export''s header is line 0), written by kaireon.run_schedules. See docs/schedules.md.';

CREATE FUNCTION kaireon.cron_next(expression text, after timestamptz)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'kaireon_cron_next'
    LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION kaireon.cron_next(text, timestamptz) IS
    'The first minute strictly after after (UTC) that a five-field cron expression matches (minute hour day-of-month month day-of-week; *, numbers, ranges a-b, lists, steps */n and a-b/n; day-of-week 0-7, 0 and 7 Sunday; when both day fields are restricted either may match); NULL when none comes within ten years. A bad expression: 22023 naming it and the bad field. See docs/schedules.md.';

CREATE FUNCTION kaireon.run_schedules(at timestamptz DEFAULT NULL, max_runs integer DEFAULT 100,
                                      max_export_batches integer DEFAULT 1000)
    RETURNS TABLE (action text, tenant_id text, run_id text, campaign_run_id text, slot timestamptz,
                   status text, next_run_at timestamptz, rows bigint, detail text)
    AS 'MODULE_PATHNAME', 'kaireon_run_schedules'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_schedules(timestamptz, integer, integer) IS
    'The scheduler, as of at (default now; tests pin it): runs up to max_runs due scheduled runs (active, next_run_at <= at; each locked FOR UPDATE SKIP LOCKED, run by kaireon.run_campaign confined to its tenant, its next_run_at advanced in the same transaction), then up to max_export_batches batches of pending exports (kaireon.export_batch_size decisions each, checkpointed). One row per run (action run: the campaign run, its status, the slot and the next one) and per export batch (action export: rows written, the file name or the error). Superusers and BYPASSRLS roles only; the schedules maintenance job calls it. See docs/schedules.md.';
