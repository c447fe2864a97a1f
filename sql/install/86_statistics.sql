-- kaireon install script, part 86: decision statistics and the progress of long operations,
-- in shared memory (src/stats/, docs/statistics.md). Both need kaireon in
-- shared_preload_libraries; without it reading them raises 55000 with a hint.

CREATE FUNCTION kaireon_internal._stat_decisions()
    RETURNS TABLE (dbid oid, tenant_id text, channel_id text, decisions bigint, dry_runs bigint, errors bigint,
                   candidates bigint, drops jsonb, cap_refusals bigint,
                   latency_p50_ms double precision, latency_p95_ms double precision, latency_p99_ms double precision,
                   config_compiles bigint, config_cache_hits bigint,
                   responds_positive bigint, responds_neutral bigint, responds_negative bigint,
                   since timestamptz)
    AS 'MODULE_PATHNAME', 'kaireon_stat_decisions'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon_internal._stat_decisions() IS
    'Internal: the rows of kaireon.stat_decisions the caller may see (a session confined or pinned to a tenant: that tenant''s in this database; else superusers: all; BYPASSRLS roles and members of pg_read_all_stats: this database''s; others: their current tenant''s in this database). 55000 without shared_preload_libraries.';

CREATE VIEW kaireon.stat_decisions AS
    SELECT * FROM kaireon_internal._stat_decisions();
COMMENT ON VIEW kaireon.stat_decisions IS
    'Decision statistics since the last reset, one row per database, tenant and channel (channel NULL: the tenant''s configuration compiles and cache hits; database and tenant NULL: the overflow row, where calls count when kaireon.stat_max rows are in use or an id is longer than 127 bytes): recorded decisions, dry runs, errors, candidates considered, drops {stage: {reason: n}}, cap refusals, latency percentiles (upper bounds of quarter-octave buckets), responds by outcome class. A role sees its current tenant''s rows (a pinned or confined session: its tenant''s, whatever its rights); superusers see all, BYPASSRLS roles and pg_read_all_stats this database''s. Needs shared_preload_libraries (55000 otherwise). See docs/statistics.md.';

CREATE FUNCTION kaireon.stat_reset(tenant_id text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_stat_reset'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.stat_reset(text) IS
    'Resets the decision statistics: all of them (NULL; the caller must see every row: superuser, BYPASSRLS or pg_read_all_stats) or one tenant''s rows in this database (the caller must have access to the tenant). Superusers and admin roles only. Needs shared_preload_libraries (55000 otherwise).';

-- The memory of the compiled configurations this backend holds (src/config/cache.c): local to
-- the backend, so it needs no shared memory. Superusers and admin roles only.
CREATE FUNCTION kaireon.config_cache_stats()
    RETURNS TABLE (tenant_id text, version bigint, memory_bytes bigint, offers integer, creatives integer,
                   rules integer, policies integer)
    AS 'MODULE_PATHNAME', 'kaireon_config_cache_stats'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon.config_cache_stats() IS
    'One row per tenant configuration compiled and cached in this backend (each backend compiles its own on its first recommend or respond for the tenant): its version, the bytes of its memory context (MemoryContextMemAllocated: the compiled structs, bound rules and policies per offer, parsed JSON; not the kept query plans) and its counts of offers, creatives, qualification rules and contact policies. Shows the tenants the caller may see (as kaireon.stat_decisions). Superusers and admin roles only. See docs/performance.md.';

CREATE FUNCTION kaireon_internal._progress()
    RETURNS TABLE (pid integer, dbid oid, operation text, tenant_id text, phase text, done bigint, total bigint,
                   started timestamptz)
    AS 'MODULE_PATHNAME', 'kaireon_progress'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon_internal._progress() IS
    'Internal: the rows of kaireon.progress the caller may see (as kaireon_internal._stat_decisions). 55000 without shared_preload_libraries.';

CREATE VIEW kaireon.progress AS
    SELECT * FROM kaireon_internal._progress();
COMMENT ON VIEW kaireon.progress IS
    'One row per running long operation (run_campaign, simulate, train_model, run_retention, run_maintenance, distribute): backend pid, database, operation, tenant (NULL: every tenant), phase, done of total (NULL: unknown), start time. The row goes when the operation ends, fails or is cancelled. A role sees its current tenant''s rows (a pinned or confined session: its tenant''s, whatever its rights); superusers see all, BYPASSRLS roles and pg_read_all_stats this database''s. Needs shared_preload_libraries (55000 otherwise). See docs/statistics.md.';

-- For long operations written in PL/pgSQL (kaireon.distribute): superusers and admin roles only.
CREATE FUNCTION kaireon_internal._progress_start(operation text, tenant_id text, total bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_start_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_start(text, text, bigint) IS
    'Internal: this backend starts a long operation for kaireon.progress (tenant NULL: every tenant; total NULL: unknown). A call while one runs is nested: the row shows the outermost. Does nothing without shared_preload_libraries.';

CREATE FUNCTION kaireon_internal._progress_update(phase text, done bigint, total bigint DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_update_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_update(text, bigint, bigint) IS
    'Internal: the phase (NULL: unchanged), the work done and the total (NULL: unknown) of this backend''s running operation in kaireon.progress.';

CREATE FUNCTION kaireon_internal._progress_end() RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_end_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_end() IS
    'Internal: this backend''s operation started by _progress_start is over (an abort ends it too).';

-- Every role may read the two views: the functions behind them show each role only what it
-- may see. (99_finalize.sql revokes EXECUTE on every routine from PUBLIC after this part and
-- grants these two again; an upgrade script keeps this statement.)
GRANT EXECUTE ON FUNCTION kaireon_internal._stat_decisions(), kaireon_internal._progress() TO PUBLIC;
