-- kaireon install script, part 95: kaireon.distribute(), the layout of kaireon on a Citus
-- cluster (docs/scale-out.md). Nothing here runs at install time: on one server the function
-- explains itself and changes nothing.

-- The tenant-less tables that stay a plain table of each node instead of becoming a reference
-- table: what they hold belongs to the node (its maintenance run history, its chain of platform
-- audit rows: docs/audit.md) or names the node's own objects by OID (role pins).
CREATE FUNCTION kaireon_internal._node_local_tables() RETURNS SETOF name
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t::name FROM unnest(ARRAY['maintenance_runs', 'platform_audit_chain_head', 'platform_audit_logs',
                                     'tenant_pins']) AS t
$fn$;
COMMENT ON FUNCTION kaireon_internal._node_local_tables() IS
    'Internal: the tenant-less kaireon tables kaireon.distribute() leaves as plain tables of each node (docs/scale-out.md).';

-- The entry points delegated to the node holding the tenant, with the argument naming it.
CREATE FUNCTION kaireon_internal._delegated_functions() RETURNS TABLE (fn text, tenant_arg text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES ('kaireon.recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'tenant_id'),
           ('kaireon.respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamptz,text)', 'tenant_id'),
           ('kaireon.recommend_json(text,jsonb)', 'tenant_id'),
           ('kaireon.respond_json(text,jsonb)', 'tenant_id'),
           ('kaireon.respond_bulk(text,jsonb)', 'tenant_id'),
           -- campaigns and simulations run the tenant's stored customer query as the confined
           -- role, which may not log in to a worker: on the tenant's node it reads locally
           ('kaireon.run_campaign(text,text,boolean)', 'tenant_id'),
           ('kaireon.simulate(text,text,text,text,integer,jsonb,text)', 'tenant_id'),
           -- the audit log's retention deletes on the tenant's node (docs/audit.md)
           ('kaireon.purge_audit_chain(text,timestamptz,bigint)', 'tenant_id')
$fn$;
COMMENT ON FUNCTION kaireon_internal._delegated_functions() IS
    'Internal: the functions kaireon.distribute() delegates to the node holding the tenant, and their tenant argument.';

-- Whether this node is a Citus coordinator (Citus installed and this node's group 0); false
-- without Citus. (citus_is_coordinator() is false on a coordinator without workers.)
CREATE FUNCTION kaireon_internal._citus_coordinator() RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_group     integer;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
    RETURN v_group = 0;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._citus_coordinator() IS
    'Internal: whether Citus is installed and this node is its coordinator (group 0).';

-- Whether a table is already in Citus's metadata.
CREATE FUNCTION kaireon_internal._citus_table_type(p_table regclass) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_type  text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT CASE partmethod WHEN ''h'' THEN ''distributed'' WHEN ''n'' THEN
                 CASE WHEN repmodel = ''t'' THEN ''reference'' ELSE ''citus local'' END
                 ELSE partmethod::text END
               FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1'
        INTO v_type USING p_table;
    RETURN v_type;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._citus_table_type(regclass) IS
    'Internal: ''distributed'', ''reference'' or ''citus local'' for a table in Citus''s metadata; NULL otherwise (or without Citus).';

-- Distributes one tenant table by tenant_id next to kaireon.tenants (its triggers run on the
-- shards); the rows it holds move to the shards and the node's own copy is emptied.
CREATE FUNCTION kaireon_internal._distribute_tenant_table(p_table regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_has_rows  boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', p_table) INTO v_has_rows;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM pg_catalog.create_distributed_table(p_table, 'tenant_id', colocate_with => 'kaireon.tenants');
    IF v_has_rows THEN
        PERFORM kaireon_internal._drop_local_copy(p_table);
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._distribute_tenant_table(regclass) IS
    'Internal: create_distributed_table by tenant_id co-located with kaireon.tenants, moving the rows (kaireon.distribute(), publish_data_schema on Citus).';

-- Empties a node's own copy of a table whose rows Citus copied to the shards, with the triggers
-- refusing TRUNCATE of audited tables asleep: the rows were not removed, they moved.
CREATE FUNCTION kaireon_internal._drop_local_copy(p_table regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role      text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = p_table) <> 'r' THEN
        RETURN;
    END IF;
    v_role := current_setting('session_replication_role');
    PERFORM set_config('session_replication_role', 'replica', true);
    PERFORM pg_catalog.truncate_local_data_after_distributing_table(p_table);
    PERFORM set_config('session_replication_role', v_role, true);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._drop_local_copy(regclass) IS
    'Internal: truncate_local_data_after_distributing_table without firing the triggers that refuse TRUNCATE of audited tables.';

-- How deep a table's chain of foreign keys to other kaireon tables goes (0: it references none).
CREATE FUNCTION kaireon_internal._fkey_depth(p_table regclass) RETURNS integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE up (rel, depth, path) AS (
        SELECT p_table::oid, 0, ARRAY[p_table::oid]
        UNION ALL
        SELECT c.confrelid, up.depth + 1, up.path || c.confrelid
          FROM up JOIN pg_constraint c ON c.conrelid = up.rel AND c.contype = 'f' AND c.conparentid = 0
         WHERE c.confrelid <> ALL (up.path)
    )
    SELECT max(depth) FROM up
$fn$;
COMMENT ON FUNCTION kaireon_internal._fkey_depth(regclass) IS
    'Internal: the length of the longest chain of foreign keys from a table (cycles cut), the order kaireon.distribute() places tables in.';

CREATE FUNCTION kaireon.distribute(shard_count integer DEFAULT NULL)
    RETURNS TABLE (table_name text, placement text, distribution_column text, colocated_with text,
                   shards integer, changed boolean)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_version   text;
    v_bad       text;               -- what a check found wrong
    v_table     text;
    v_stmt      text;
    v_tables    text[] := '{}';
    v_tenant_tables text[] := '{}';     -- those of v_tables with a tenant_id column
    r           record;
    i           integer;
    v_changed   text[] := '{}';
    v_local_rows text[] := '{}';
    v_has_rows  boolean;
    v_schemas   text[];
    v_triggers  text[] := '{}';
    v_done      integer := 0;       -- tables placed (kaireon.progress)
BEGIN
    -- 0. A superuser's operation (it changes every table, the database's settings and roles).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'kaireon.distribute() must be run by a superuser, not by role "%"', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect to the coordinator as a superuser (it places every table and changes the database''s settings).';
    END IF;
    -- 1. Citus, on its coordinator, with kaireon of this version on every worker.
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'kaireon.distribute() needs the Citus extension, which is not installed in database %', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'kaireon runs on one server as it is; to scale out, install Citus (its own packages) on every node, CREATE EXTENSION citus and kaireon on each, add the workers, then call kaireon.distribute() on the coordinator. See docs/scale-out.md.';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count % is out of range', shard_count
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass 1 to 64000, or NULL for citus.shard_count.';
    END IF;
    IF NOT kaireon_internal._citus_coordinator() THEN
        RAISE EXCEPTION 'kaireon.distribute() runs on the Citus coordinator, and this node is not it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator (citus_set_coordinator_host) and call it there.';
    END IF;
    SELECT extversion INTO v_version FROM pg_extension WHERE extname = 'kaireon';
    EXECUTE format($q$SELECT string_agg(format('%%s:%%s (%%s)', nodename, nodeport, coalesce(nullif(result, ''), 'no kaireon')), ', ')
                        FROM pg_catalog.run_command_on_workers(%L)
                       WHERE NOT success OR result IS DISTINCT FROM %L$q$,
                   'SELECT extversion FROM pg_extension WHERE extname = ''kaireon''', v_version)
        INTO v_bad;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'kaireon % is not installed on every worker: %', v_version, v_bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the same kaireon package on every node and run CREATE EXTENSION kaireon in this database on each worker, before kaireon.distribute().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive AND groupid <> 0) THEN
        RAISE EXCEPTION 'the Citus cluster has no worker'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the workers with citus_add_node first.';
    END IF;

    -- kaireon.progress shows the placement as it goes (the row goes at the end, or with an error)
    PERFORM kaireon_internal._progress_start('distribute', NULL, NULL);
    PERFORM kaireon_internal._progress_update('listing tables', 0, NULL);

    -- Triggers on distributed tables (kaireon's validation, audit and invalidation triggers
    -- run on the shards, and touch only the tenant's co-located shards); one connection per
    -- node, as Citus needs when a transaction distributes tables with foreign keys.
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- (Citus's notices about each table it copies: the layout is the answer)
    PERFORM set_config('client_min_messages', 'warning', true);
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    IF shard_count IS NOT NULL THEN
        PERFORM set_config('citus.shard_count', shard_count::text, true);
    END IF;

    -- 2. The tables to place: tenants first, then every table of schema kaireon.
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relname,
               CASE WHEN c.relname = 'tenants' THEN 'id'
                    WHEN a.attname IS NOT NULL THEN 'tenant_id' END AS dist_col,
               kaireon_internal._citus_table_type(c.oid) AS now_type
          FROM pg_class c
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relname <> 'tenants', c.relname
    LOOP
        IF r.now_type IS NULL AND (r.dist_col IS NOT NULL OR r.relname <> ALL (ARRAY(SELECT kaireon_internal._node_local_tables()))) THEN
            v_tables := v_tables || r.relname::text;
            IF r.dist_col = 'tenant_id' THEN
                v_tenant_tables := v_tenant_tables || r.relname::text;
            END IF;
        END IF;
    END LOOP;

    -- The checked references (docs/schema.md) become foreign keys: their trigger finds the
    -- referenced rows in the referenced table's own storage, which on a Citus node is not
    -- where its shards' rows are. (The referenced tables' trigger "Checked_references" stays:
    -- it deletes or sets to NULL what refers to a deleted row, on the tenant's shards.)
    FOR r IN
        SELECT c.child, c.child_column, c.parent, c.parent_column, c.on_delete
          FROM kaireon_internal._checked_references() c
         WHERE c.child::text = ANY (v_tables)
         ORDER BY c.child, c.child_column
    LOOP
        EXECUTE format('ALTER TABLE kaireon.%I ADD FOREIGN KEY (%s) REFERENCES kaireon.%I (%s) ON DELETE %s',
                       r.child,
                       CASE WHEN r.child_column = 'tenant_id' THEN 'tenant_id' ELSE format('tenant_id, %I', r.child_column) END,
                       r.parent,
                       CASE WHEN r.child_column = 'tenant_id' THEN quote_ident(r.parent_column) ELSE format('tenant_id, %I', r.parent_column) END,
                       CASE r.on_delete WHEN 'cascade' THEN 'CASCADE' ELSE 'NO ACTION' END);
        EXECUTE format('DROP TRIGGER IF EXISTS "Check_references" ON kaireon.%I', r.child);
    END LOOP;

    IF cardinality(v_tables) > 0 THEN
        -- 3. The order: Citus places a table only after every table it references, so the
        --    tables go by the depth of their foreign keys (reference tables first: a
        --    reference table may not reference a distributed one).
        SELECT array_agg(t ORDER BY lvl, t) INTO v_tables
          FROM (SELECT t, CASE WHEN t = 'tenants' THEN 999
                          ELSE kaireon_internal._fkey_depth(format('kaireon.%I', t)::regclass)
                               + CASE WHEN t = ANY (v_tenant_tables) THEN 1000 ELSE 0 END END AS lvl
                  FROM unnest(v_tables) t) o;
        FOREACH v_table IN ARRAY v_tables LOOP
            EXECUTE format('SELECT EXISTS (SELECT FROM ONLY kaireon.%I)', v_table) INTO v_has_rows;
            IF v_has_rows THEN
                v_local_rows := v_local_rows || v_table;
            END IF;
        END LOOP;

        -- A distributed table's unique keys include its distribution column: the tenants' slug
        -- stays unique where it is used, the registry of tenant schemas (a reference table keyed
        -- by schema name, which publish_data_schema writes).
        IF 'tenants' = ANY (v_tables) AND EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'kaireon.tenants'::regclass
                                                                           AND conname = 'tenants_slug_key') THEN
            ALTER TABLE kaireon.tenants DROP CONSTRAINT tenants_slug_key;
        END IF;

        -- 4. Place them: tenant tables distributed by tenant_id next to kaireon.tenants, the
        --    tenant-less ones as reference tables; the rows move to the shards. The rows are
        --    moved, not written: the triggers checking and auditing writes sleep while Citus
        --    copies them (a check's subtransaction would break Citus's copy to the workers).
        -- Here (session_replication_role) and on the workers, where Citus copies the rows into
        -- the shards: the INSERT triggers of a table holding rows are disabled for the copy and get
        -- their state back after (ALTER TABLE ... ENABLE [REPLICA | ALWAYS] TRIGGER, which Citus
        -- applies to the shards).
        SET LOCAL session_replication_role = 'replica';
        FOR r IN
            SELECT format('kaireon.%I', c.relname) AS rel, t.tgname, t.tgenabled
              FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relname::text = ANY (v_local_rows)
               AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND (t.tgtype & 4) <> 0      -- the INSERT triggers (TRIGGER_TYPE_INSERT): the copy inserts
             ORDER BY 1, 2
        LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', r.rel, r.tgname);
            v_triggers := v_triggers || format('ALTER TABLE %s ENABLE %s TRIGGER %I', r.rel,
                                               CASE r.tgenabled WHEN 'R' THEN 'REPLICA' WHEN 'A' THEN 'ALWAYS' ELSE '' END,
                                               r.tgname);
        END LOOP;
        FOREACH v_table IN ARRAY v_tables LOOP
            PERFORM kaireon_internal._progress_update('placing tables', v_done, cardinality(v_tables));
            v_done := v_done + 1;
            IF v_table = 'tenants' THEN
                PERFORM pg_catalog.create_distributed_table('kaireon.tenants', 'id', colocate_with => 'none');
            ELSIF v_table = ANY (v_tenant_tables) THEN
                PERFORM pg_catalog.create_distributed_table(format('kaireon.%I', v_table), 'tenant_id',
                                                            colocate_with => 'kaireon.tenants');
            ELSE
                PERFORM pg_catalog.create_reference_table(format('kaireon.%I', v_table));
            END IF;
            v_changed := v_changed || v_table;
        END LOOP;
        -- the coordinator's own copy of the rows (now in the shards) is emptied, once no local
        -- table references them any more, the referencing tables first
        FOR i IN REVERSE cardinality(v_tables) .. 1 LOOP
            IF v_tables[i] = ANY (v_local_rows) THEN
                PERFORM kaireon_internal._drop_local_copy(format('kaireon.%I', v_tables[i])::regclass);
            END IF;
        END LOOP;
        SET LOCAL session_replication_role = 'origin';
        FOREACH v_stmt IN ARRAY v_triggers LOOP
            EXECUTE v_stmt;
        END LOOP;
    END IF;

    -- The tenants' customer data tables (kaireon_t_<slug>.ds_*: a tenant_id column holding
    -- their tenant, their keys beginning with it) go next to their tenant's rows.
    PERFORM kaireon_internal._progress_update('placing tenant data tables', 0, NULL);
    v_schemas := ARRAY(SELECT ts.schema_name::text FROM kaireon.tenant_schemas ts);
    FOR r IN
        SELECT c.oid::regclass AS rel
          FROM pg_namespace n
          JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND NOT c.relispartition
         WHERE n.nspname::text = ANY (v_schemas)
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1
    LOOP
        IF kaireon_internal._citus_table_type(r.rel) IS NULL THEN
            SET LOCAL session_replication_role = 'replica';
            PERFORM kaireon_internal._distribute_tenant_table(r.rel);
            SET LOCAL session_replication_role = 'origin';
            v_changed := v_changed || r.rel::text;
        END IF;
    END LOOP;

    -- The grants on the tenants' data tables and segment views, made on this node before
    -- they were distributed, again: Citus copies them to the workers now.
    FOR r IN
        SELECT n.nspname::text AS nsp, c.relname::text AS rel
          FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v')
         WHERE n.nspname::text = ANY (v_schemas) AND NOT c.relispartition
         ORDER BY 1, 2
    LOOP
        PERFORM kaireon_internal._apply_role_grants(r.nsp, r.rel);
    END LOOP;

    -- The tenant a session acts for reaches the workers: SET LOCAL kaireon.tenant_id travels
    -- with the transaction's commands to every node (citus.propagate_set_commands, this
    -- database's default from now on), and the tenant pins are made on every worker too
    -- (tenant_pins is node-local: it names roles by OID).
    EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', current_database(), 'local');
    FOR r IN SELECT a.rolname, p.pinned_tenant_id FROM kaireon.tenant_pins p JOIN pg_roles a ON a.oid = p.role LOOP
        PERFORM kaireon_internal._pin_role_on_workers(r.rolname, r.pinned_tenant_id);
    END LOOP;

    -- 5. The entry points run on the node holding their tenant.
    PERFORM kaireon_internal._progress_update('delegating functions', 0, NULL);
    FOR r IN SELECT d.fn, d.tenant_arg FROM kaireon_internal._delegated_functions() d LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
                        WHERE o.classid = 'pg_proc'::regclass AND o.objid = r.fn::regprocedure
                          AND o.distribution_argument_index IS NOT NULL) THEN
            PERFORM pg_catalog.create_distributed_function(r.fn::regprocedure, r.tenant_arg,
                                                           colocate_with => 'kaireon.tenants',
                                                           force_delegation => true);
        END IF;
    END LOOP;

    -- 6. The layout.
    PERFORM kaireon_internal._progress_end();
    RETURN QUERY
        SELECT CASE WHEN c.relnamespace = 'kaireon'::regnamespace THEN c.relname::text ELSE c.oid::regclass::text END,
               coalesce(p.placement, 'local'),
               CASE WHEN p.placement = 'distributed'
                    THEN (SELECT column_to_column_name(d.logicalrelid, d.partkey) FROM pg_dist_partition d WHERE d.logicalrelid = c.oid) END,
               CASE WHEN p.placement = 'distributed' AND c.relname <> 'tenants' THEN 'tenants' END,
               (SELECT count(*)::integer FROM pg_dist_shard s WHERE s.logicalrelid = c.oid),
               c.relname::text = ANY (v_changed) OR c.oid::regclass::text = ANY (v_changed)
          FROM pg_class c
          CROSS JOIN LATERAL (SELECT kaireon_internal._citus_table_type(c.oid) AS placement) p
         WHERE (c.relnamespace = 'kaireon'::regnamespace
                OR c.relnamespace IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname::text = ANY (v_schemas)))
           AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relnamespace <> 'kaireon'::regnamespace, 1;
END
$fn$;
COMMENT ON FUNCTION kaireon.distribute(integer) IS
    'On a Citus coordinator with kaireon on every node: distributes every tenant table by tenant_id, co-located with kaireon.tenants (distributed by id), makes the tenant-less tables reference tables (node-local ones aside), moves the rows to the shards and delegates to the node holding the tenant the functions of kaireon_internal._delegated_functions() (recommend, respond, the tenant-first JSON entry points, run_campaign, simulate, purge_audit_chain). Superusers only. Idempotent; returns the layout (changed: placed by this call). Without Citus: 0A000 with a hint. See docs/scale-out.md.';
