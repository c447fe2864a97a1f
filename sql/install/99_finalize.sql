-- kaireon install script, part 99: the uniform parts of every table, applied from the catalog
-- so no table can miss them (docs/schema.md, "Conventions"):
--   * updated_at column           -> BEFORE UPDATE trigger kaireon.touch_updated_at()
--   * tenant_id column            -> row level security + policy tenant_isolation
--                                    (unless the table defines its own policies)
--   * deleted_at column           -> index (tenant_id, deleted_at)
--   * every table holding rows    -> pg_extension_config_dump, so pg_dump keeps its rows;
--                                    rows that triggers recreate on restore are filtered out
--                                    (see the filters below and docs/schema.md), and a table
--                                    registered earlier with a filter of its own keeps it
--   * numeric / double precision  -> CONSTRAINT <table>_<column>_finite
--     column                         CHECK (kaireon_internal._is_finite(<column>)): no NaN, no Infinity
--                                    (partitions inherit it from their parent)
--   * foreign key ON DELETE       -> AFTER DELETE trigger "On_delete_set_null" on the referenced
--     NO ACTION (optional reference)  table, setting the reference to NULL (below)
DO $finalize$
DECLARE
    r           record;
    col         name;
BEGIN
    FOR r IN
        SELECT c.oid, c.relname, c.relkind, c.relispartition,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped) AS has_updated_at,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'deleted_at' AND NOT a.attisdropped) AS has_deleted_at,
               EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
          FROM pg_class c
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY c.relname
    LOOP
        IF r.has_updated_at AND NOT r.relispartition THEN
            EXECUTE format('CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.%I FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at()', r.relname);
        END IF;
        IF r.has_tenant AND NOT r.has_policy THEN
            EXECUTE format('ALTER TABLE kaireon.%I ENABLE ROW LEVEL SECURITY', r.relname);
            EXECUTE format('CREATE POLICY tenant_isolation ON kaireon.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())', r.relname);
        END IF;
        IF NOT r.relispartition THEN
            FOR col IN
                SELECT a.attname FROM pg_attribute a
                 WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND a.atttypid IN ('numeric'::regtype, 'double precision'::regtype, 'real'::regtype)
                 ORDER BY a.attnum
            LOOP
                IF octet_length(format('%s_%s_finite', r.relname, col)) > 63 THEN
                    RAISE EXCEPTION 'constraint name %_%_finite is longer than 63 bytes', r.relname, col;
                END IF;
                EXECUTE format('ALTER TABLE kaireon.%I ADD CONSTRAINT %I CHECK (kaireon_internal._is_finite(%I))',
                               r.relname, format('%s_%s_finite', r.relname, col), col);
            END LOOP;
        END IF;
        IF r.has_deleted_at AND NOT r.relispartition THEN
            EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, deleted_at)', r.relname);
        END IF;
        -- (a table registered earlier with a filter of its own keeps it)
        IF r.relkind = 'r' AND r.oid <> ALL (coalesce((SELECT extconfig FROM pg_extension WHERE extname = 'kaireon'), '{}')) THEN
            PERFORM pg_catalog.pg_extension_config_dump(format('kaireon.%I', r.relname)::regclass,
                CASE r.relname
                    -- a restored tenant gets its system outcome types from the seeding trigger
                    WHEN 'outcome_types' THEN 'WHERE NOT is_system'
                    -- configuration versions are renewed by the triggers as the rows come back
                    WHEN 'config_versions' THEN 'WHERE false'
                    -- the run history belongs to the server that ran the jobs
                    WHEN 'maintenance_runs' THEN 'WHERE false'
                    ELSE '' END);
        END IF;
    END LOOP;
END
$finalize$;

-- Checked references (docs/schema.md, "Checked references"): the triggers of the references
-- kaireon_internal._checked_references() lists (20_customer.sql), once their tables exist.
SELECT kaireon_internal._create_checked_reference_triggers();

-- Optional references (docs/schema.md, "Optional references"). A foreign key of schema kaireon
-- declared ON DELETE NO ACTION is an optional reference (tenant_id, col) -> (tenant_id, id):
-- deleting the referenced row sets col to NULL in the same tenant's rows, as ON DELETE SET NULL
-- (col) would (which Citus refuses between distributed tables). Each referenced table gets one
-- AFTER DELETE row trigger "On_delete_set_null" listing its references, (table, column,
-- referenced column) each; its capital O sorts it before PostgreSQL's RI_ConstraintTrigger_*
-- (AFTER triggers fire in name order), so the key's NO ACTION check finds the references
-- already NULL. A key that must refuse the delete of a referenced row says ON DELETE RESTRICT;
-- a NO ACTION key of another shape stops the install.
DO $optional_references$
DECLARE
    r           record;
BEGIN
    FOR r IN
        SELECT fk.conname, fk.conrelid::regclass AS child, fk.confrelid::regclass AS parent,
               fk.conrelid, fk.confrelid, fk.conkey, fk.confkey
          FROM pg_constraint fk
         WHERE fk.contype = 'f' AND fk.connamespace = 'kaireon'::regnamespace
           AND fk.conparentid = 0 AND fk.confdeltype = 'a'
         ORDER BY fk.conname
    LOOP
        IF cardinality(r.conkey) <> 2
           OR (SELECT attname FROM pg_attribute WHERE attrelid = r.conrelid AND attnum = r.conkey[1]) <> 'tenant_id'
           OR (SELECT attname FROM pg_attribute WHERE attrelid = r.confrelid AND attnum = r.confkey[1]) <> 'tenant_id'
           OR (SELECT attnotnull FROM pg_attribute WHERE attrelid = r.conrelid AND attnum = r.conkey[2])
           OR (SELECT relnamespace FROM pg_class WHERE oid = r.confrelid) <> 'kaireon'::regnamespace THEN
            RAISE EXCEPTION 'foreign key % of % is ON DELETE NO ACTION but not an optional reference', r.conname, r.child
                USING ERRCODE = 'invalid_foreign_key',
                      HINT = 'ON DELETE NO ACTION marks an optional reference (tenant_id, col) -> (tenant_id, id) with a nullable col, set to NULL when its row is deleted; to refuse the delete, say ON DELETE RESTRICT.';
        END IF;
    END LOOP;
    FOR r IN
        SELECT fk.confrelid::regclass AS parent,
               array_agg(ARRAY[c.relname::text, ca.attname::text, pa.attname::text]
                         ORDER BY c.relname, ca.attname) AS refs
          FROM pg_constraint fk
          JOIN pg_class c ON c.oid = fk.conrelid
          JOIN pg_attribute ca ON ca.attrelid = fk.conrelid AND ca.attnum = fk.conkey[2]
          JOIN pg_attribute pa ON pa.attrelid = fk.confrelid AND pa.attnum = fk.confkey[2]
         WHERE fk.contype = 'f' AND fk.connamespace = 'kaireon'::regnamespace
           AND fk.conparentid = 0 AND fk.confdeltype = 'a'
         GROUP BY fk.confrelid
         ORDER BY fk.confrelid::regclass::text
    LOOP
        EXECUTE format('CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null(%s)',
                       r.parent, (SELECT string_agg(quote_literal(a), ', ') FROM unnest(r.refs) a));
    END LOOP;
END
$optional_references$;

-- Functions and procedures are not callable by everyone: kaireon.grant_*_role grants each kind of role the
-- functions it needs. Row level security policies call kaireon.current_tenant_id() as the
-- querying role, so that one (and version(), two pure calendar helpers and the list of summary dimensions) stay public. Trigger functions need no EXECUTE
-- privilege to fire.
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA kaireon FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA kaireon_internal FROM PUBLIC;
-- every role may name the internal schema (the public helpers below, the CHECKs and triggers
-- that call its functions as the writing role); it may execute only what is granted
GRANT USAGE ON SCHEMA kaireon_internal TO PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon.current_tenant_id(), kaireon.version() TO PUBLIC;
-- pure calendar helpers that recommend's and respond's queries call as the caller
GRANT EXECUTE ON FUNCTION kaireon_internal._period_end(text, timestamptz), kaireon_internal._period_key(text, timestamptz) TO PUBLIC;
-- the list of summary dimensions (constants), which the BEFORE trigger of summary_definitions
-- checks a definition against as the writing role
GRANT EXECUTE ON FUNCTION kaireon_internal._summary_dimensions() TO PUBLIC;
-- the list of alert metrics (constants), which the BEFORE trigger of alert_rules checks a rule
-- against as the writing role, and the order of delivery statuses, which
-- kaireon.delivery_status reads as its caller
GRANT EXECUTE ON FUNCTION kaireon.alert_metrics(), kaireon_internal._delivery_rank(text) TO PUBLIC;
-- the finite-number checks of every numeric column run as the writing role
GRANT EXECUTE ON FUNCTION kaireon_internal._is_finite(double precision), kaireon_internal._is_finite(numeric) TO PUBLIC;
-- adaptive learning (respond, model_learn) computes a shard row's new bins with it, as the caller: a pure function
GRANT EXECUTE ON FUNCTION kaireon_internal._adaptive_learn(bytea, bytea, boolean, integer, integer) TO PUBLIC;
-- the geometry of geofences: in their index expression, and read by kaireon.location_event as its caller
GRANT EXECUTE ON FUNCTION kaireon_internal._haversine_m(double precision, double precision, double precision, double precision),
    kaireon_internal._geofence_box(double precision, double precision, double precision) TO PUBLIC;
-- the lookup of a function named by its signature text (a catalog read), which the BEFORE
-- triggers of approval_actions and outbox_handlers run as the writing role
GRANT EXECUTE ON FUNCTION kaireon_internal._resolve_function(text, regtype[], text, text, boolean) TO PUBLIC;
-- an experiment's split (pure functions): kaireon.assign_variant checks and applies its
-- variants with them as its caller, the BEFORE trigger of experiments checks a flow A/B
-- test's arms as the writing role
GRANT EXECUTE ON FUNCTION kaireon_internal._split_weights(text, jsonb),
    kaireon_internal._split_arm(text, text, double precision[]) TO PUBLIC;
-- the rows behind kaireon.stat_decisions and kaireon.progress, which filter by the caller
-- (86_statistics.sql)
GRANT EXECUTE ON FUNCTION kaireon_internal._stat_decisions(), kaireon_internal._progress() TO PUBLIC;

-- The role a tenant's stored SQL runs as, and its read access (90_roles.sql, src/security/confine.c).
SELECT kaireon_internal._grant_confined_role();
