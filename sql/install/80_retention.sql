-- kaireon install script, part 80: retention and the maintenance run history.
-- kaireon.run_retention (C, src/maintenance/retention.c) removes what each tenant's retention_configs
-- (or the defaults below) say has expired, in bounded batches; whole monthly partitions of
-- interaction_history go in one step when every tenant's cutoff has passed them. The
-- background workers (src/maintenance/worker.c) and kaireon.run_maintenance record their runs in
-- kaireon.maintenance_runs. See docs/retention.md and docs/workers.md.

CREATE TABLE kaireon.retention_configs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    data_class              text NOT NULL
                            CHECK (data_class IN ('interactions', 'decisions', 'metrics', 'audit',
                                                  'suppressions', 'outbox', 'summaries')),
    -- 1 to 36500 days (100 years), like kaireon.retention_decision_lock_days: a longer one would
    -- put the cutoff out of timestamptz's range (docs/retention.md)
    retention_days          integer NOT NULL CHECK (retention_days BETWEEN 1 AND 36500),
    legal_hold              boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, data_class)
);
COMMENT ON TABLE kaireon.retention_configs IS
    'RetentionConfig: how many days a tenant keeps one class of data (interactions, decisions, metrics, audit, suppressions, outbox, summaries); a legal hold suspends purging of that class.';

-- The run history of the maintenance jobs: one row per run of a job by a worker, by
-- kaireon.run_maintenance or by a retention call; kept to kaireon.run_history_size rows per
-- job. A row still 'running' whose process is gone was interrupted (crash, SIGTERM); the
-- worker marks it so when it starts and runs the job again.
CREATE TABLE kaireon.maintenance_runs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job                     text NOT NULL
                            CHECK (job IN ('retention', 'partitions', 'outbox', 'summaries', 'volume_reset',
                                           'suppressions', 'scores', 'dual_prices', 'alerts',
                                           'schedules', 'journeys')),
    source                  text NOT NULL CHECK (source IN ('worker', 'function', 'procedure')),
    trigger                 text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('schedule', 'recovery', 'manual')),
    status                  text NOT NULL DEFAULT 'running'
                            -- skipped: a worker found the job running elsewhere (src/maintenance/jobs.c)
                            CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    pid                     integer NOT NULL DEFAULT pg_backend_pid(),
    database_name           name NOT NULL DEFAULT current_database(),
    started_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at             timestamptz,
    detail                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_runs_job_id_idx ON kaireon.maintenance_runs (job, id);
CREATE INDEX maintenance_runs_running_idx ON kaireon.maintenance_runs (id) WHERE status = 'running';
COMMENT ON TABLE kaireon.maintenance_runs IS
    'kaireon''s own table: the run history of the maintenance jobs (retention, partitions, outbox, summaries, volume_reset, suppressions, scores, dual_prices, alerts, schedules, journeys), like pg_cron''s job_run_details but capped at kaireon.run_history_size rows per job. detail holds what the run did (and, while it runs, its progress). Row level security with no policy: only superusers and BYPASSRLS roles see it.';
ALTER TABLE kaireon.maintenance_runs ENABLE ROW LEVEL SECURITY;

-- The default retention of every data class, and the tables each covers: the one list.
CREATE FUNCTION kaireon.retention_defaults()
    RETURNS TABLE (data_class text, retention_days integer, covers text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT * FROM (VALUES
        ('interactions', 730, 'interaction_history (whole monthly partitions when every tenant''s cutoff has passed them), impressions, decision_locks (after kaireon.retention_decision_lock_days), respond_idempotency (after kaireon.retention_idempotency_days)'),
        ('decisions', 365, 'decision_traces, model_shadow_scores, campaign_decisions, and policy_snapshots no remaining trace refers to'),
        ('metrics', 2555, 'metric_values, creative_performance; interaction_summaries too when the tenant has no summaries row'),
        ('summaries', 2555, 'interaction_summaries (by updated_at)'),
        ('audit', 2555, 'audit_logs, through kaireon.purge_audit_chain, which leaves an anchor so the rest of the chain still verifies'),
        ('suppressions', 0, 'suppressions whose expires_at is older than the cutoff (0 days: as soon as they expire)'),
        ('outbox', 30, 'published and dead outbox_events, dead_letter_events')
    ) AS d (data_class, retention_days, covers)
$fn$;
COMMENT ON FUNCTION kaireon.retention_defaults() IS
    'The retention of each data class when a tenant has no retention_configs row for it (days), and the tables each class covers (docs/retention.md).';

-- What retention applies to every tenant and class: the tenant's row, else (for summaries)
-- its metrics row, else the default.
CREATE FUNCTION kaireon.retention_policies(as_of timestamptz DEFAULT now())
    RETURNS TABLE (tenant_id text, data_class text, retention_days integer, legal_hold boolean,
                   configured boolean, cutoff timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function)
    RETURN QUERY
    SELECT t.id, d.data_class,
           coalesce(c.retention_days, m.retention_days, d.retention_days),
           coalesce(c.legal_hold, m.legal_hold, false),
           c.id IS NOT NULL OR m.id IS NOT NULL,
           -- days of 24 hours (UTC days), whatever the session's time zone and its DST changes;
           -- at most 36500 days (the CHECK of retention_configs), so no row makes the query fail
           as_of - least(coalesce(c.retention_days, m.retention_days, d.retention_days), 36500) * interval '24 hours'
      FROM kaireon.tenants t
     CROSS JOIN kaireon.retention_defaults() d
      LEFT JOIN kaireon.retention_configs c ON c.tenant_id = t.id AND c.data_class = d.data_class
      LEFT JOIN kaireon.retention_configs m ON d.data_class = 'summaries' AND c.id IS NULL
                                           AND m.tenant_id = t.id AND m.data_class = 'metrics'
     ORDER BY t.id, d.data_class;
END
$fn$;
COMMENT ON FUNCTION kaireon.retention_policies(timestamptz) IS
    'The retention each tenant gets for each data class as of a time: its retention_configs row, else (for summaries) its metrics row, else kaireon.retention_defaults(); with the legal hold and the cutoff (as_of minus retention_days days of 24 hours, at most 36500; rows older than it are removed). Shows the tenants the caller may see.';

-- The bounds of a range partition of a timestamptz column: NULL for MINVALUE / MAXVALUE and
-- for the default partition.
-- pg_get_expr prints the bounds in the session's DateStyle and TimeZone; both are pinned so
-- the text reads back as the same instant (zone abbreviations such as IST are ambiguous).
CREATE FUNCTION kaireon_internal._partition_bounds(part regclass, OUT lower_bound timestamptz, OUT upper_bound timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET datestyle = 'ISO, YMD'
    SET timezone = 'UTC'
AS $fn$
DECLARE
    b           text := pg_get_expr((SELECT relpartbound FROM pg_class WHERE oid = part), part);
    m           text[];
BEGIN
    m := regexp_match(b, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$');
    IF m IS NULL THEN
        RETURN;
    END IF;
    IF m[1] <> 'MINVALUE' THEN
        lower_bound := trim(both '''' from m[1])::timestamptz;
    END IF;
    IF m[2] <> 'MAXVALUE' THEN
        upper_bound := trim(both '''' from m[2])::timestamptz;
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._partition_bounds(regclass) IS
    'Internal: the lower and upper bound of a range partition on a timestamptz column (NULL for MINVALUE, MAXVALUE and the default partition).';

-- The tenants with rows in a table, by skipping through its (tenant_id, ...) index.
CREATE FUNCTION kaireon_internal._tenants_in(tbl regclass) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- On Citus (kaireon.distribute()) a distributed table's shards answer a plain DISTINCT
    -- each (the skipping recursive query is not one Citus can send to the shards).
    IF kaireon_internal._citus_table_type(tbl) IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT DISTINCT tenant_id FROM %s', tbl);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'WITH RECURSIVE t (tenant_id) AS ('
        '  (SELECT tenant_id FROM %1$s ORDER BY tenant_id LIMIT 1)'
        '  UNION ALL'
        '  SELECT (SELECT x.tenant_id FROM %1$s x WHERE x.tenant_id > t.tenant_id ORDER BY x.tenant_id LIMIT 1)'
        '    FROM t WHERE t.tenant_id IS NOT NULL)'
        ' SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL', tbl);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._tenants_in(regclass) IS
    'Internal: the distinct tenant_id values of a table, found by skipping through its index on tenant_id (a few index probes per tenant, not a scan); on Citus, by each shard.';

-- Drops (or detaches) one monthly partition of interaction_history for retention. Runs as
-- the extension owner, who owns the partitions. The locks are taken in the order DROP takes
-- them (the parent, then the partition), each waiting at most lock_timeout_ms, and the
-- tenants with rows in the partition are checked again under the locks: every one must be in
-- allowed_tenants and, by its retention policy now, have no hold on interactions and a cutoff
-- past the partition's upper bound. The function trusts no caller with the second check: it is
-- SECURITY DEFINER, and an admin role without BYPASSRLS may call it.
CREATE FUNCTION kaireon_internal._retire_interaction_partition(part text, allowed_tenants text[],
                                                      detach boolean DEFAULT false,
                                                      lock_timeout_ms integer DEFAULT 100)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel       regclass := to_regclass(format('kaireon.%I', part));
    v_old       text := current_setting('lock_timeout');
    v_other     text;
    v_upper     timestamptz;
BEGIN
    IF v_rel IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'kaireon.interaction_history'::regclass AND i.inhrelid = v_rel
                      AND NOT c.relpartbound IS NULL
                      AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') THEN
        RAISE EXCEPTION '"%" is not a monthly partition of kaireon.interaction_history', part
            USING ERRCODE = '22023', HINT = 'Only monthly partitions are retired; the default partition is purged row by row.';
    END IF;
    PERFORM set_config('lock_timeout', greatest(lock_timeout_ms, 1)::text, true);
    LOCK TABLE ONLY kaireon.interaction_history IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('LOCK TABLE kaireon.%I IN ACCESS EXCLUSIVE MODE', part);
    PERFORM set_config('lock_timeout', v_old, true);
    v_upper := (SELECT b.upper_bound FROM kaireon_internal._partition_bounds(v_rel) b);
    IF v_upper IS NULL THEN
        RETURN false;
    END IF;
    SELECT t INTO v_other FROM kaireon_internal._tenants_in(v_rel) AS t
     WHERE t <> ALL (allowed_tenants)
        OR NOT EXISTS (SELECT 1 FROM kaireon.retention_policies(now()) p
                        WHERE p.tenant_id = t AND p.data_class = 'interactions'
                          AND NOT p.legal_hold AND p.cutoff >= v_upper)
     LIMIT 1;
    IF FOUND THEN
        RETURN false;
    END IF;
    IF detach THEN
        EXECUTE format('ALTER TABLE kaireon.interaction_history DETACH PARTITION kaireon.%I', part);
        EXECUTE format('COMMENT ON TABLE kaireon.%I IS %L', part,
                       format('InteractionHistory: detached from interaction_history by retention on %s; archive it, then drop it',
                              to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')));
    ELSE
        EXECUTE format('DROP TABLE kaireon.%I', part);
    END IF;
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._retire_interaction_partition(text, text[], boolean, integer) IS
    'Internal (retention): drops or detaches a monthly partition of interaction_history once its locks are held (waiting at most lock_timeout_ms for each) and every tenant with rows in it is among allowed_tenants, has no legal hold on interactions and a cutoff past the partition''s upper bound; false when it is gone or holds rows that must stay.';

CREATE FUNCTION kaireon.run_retention(dry_run boolean DEFAULT false, data_classes text[] DEFAULT NULL)
    RETURNS TABLE (tenant_id text, data_class text, retention_days integer, cutoff timestamptz,
                   held boolean, rows_deleted bigint, partitions_dropped integer, detail jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_run_retention'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_retention(boolean, text[]) IS
    'Retention (docs/retention.md): for every tenant and data class (all, or those in data_classes), removes the rows older than the cutoff unless a legal hold applies, in bounded batches, dropping whole monthly partitions of interaction_history when every tenant''s cutoff has passed them, then creates the coming months'' partitions. Returns one row per tenant and class (and rows with a NULL tenant for the partitions), with what was (or, with dry_run, would be) removed. Runs in the caller''s transaction; CALL kaireon.run_retention_batched() commits after every batch.';

CREATE PROCEDURE kaireon.run_retention_batched(dry_run boolean DEFAULT false, data_classes text[] DEFAULT NULL,
                                               INOUT run_id bigint DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'kaireon_run_retention_batched'
    LANGUAGE C;
COMMENT ON PROCEDURE kaireon.run_retention_batched(boolean, text[], bigint) IS
    'kaireon.run_retention committing after every batch (each a short transaction, pausing kaireon.retention_batch_delay between them); for large purges from pg_cron or a script. Call it outside a transaction block. Returns the id of its kaireon.maintenance_runs row, whose detail holds the report.';
