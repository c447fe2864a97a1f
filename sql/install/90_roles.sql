-- kaireon install script, part 90: the role setup a DBA uses (see docs/security.md).
-- Roles are cluster-wide, so the extension creates none; these functions grant an existing
-- role its access and record it in kaireon.role_grants for the tenant data schemas.

-- The functions each kind of role may call. Everything else (maintenance, internal helpers)
-- is for superusers and admin roles; EXECUTE is revoked from PUBLIC in 99_finalize.sql.
CREATE FUNCTION kaireon_internal._role_functions(p_access text) RETURNS SETOF regprocedure
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.version()', 'kaireon.current_tenant_id()', 'kaireon.assert_tenant_access(text)',
        'kaireon.set_tenant(text,text,text,boolean)',
        'kaireon.validate_config(text,text,text)', 'kaireon.segment_members(text,text)',
        'kaireon.is_segment_member(text,text,text)', 'kaireon_internal._segment_view(text,text)',
        'kaireon.score(text,text,jsonb,text)', 'kaireon.score_vector(text,text,double precision[],text)',
        'kaireon.explain_score(text,text,jsonb,text)', 'kaireon.model_features(text,text)',
        'kaireon.adaptive_report(text,text,text,text)',
        'kaireon.fnv1a(text)', 'kaireon.normal_cdf(double precision)',
        'kaireon.wilson_interval(double precision,double precision,double precision)',
        'kaireon.registry_transitions()', 'kaireon.experiment_bucket(text,text)',
        'kaireon.control_bucket(text,text,text)',
        'kaireon.lift(text,timestamptz,timestamptz,text,double precision,text[])',
        'kaireon.set_model_seed(bigint)',
        'kaireon.verify_audit_chain(text,bigint,bigint,jsonb)', 'kaireon.audit_canonical(bigint)',
        'kaireon.audit_digest(text)',
        'kaireon.four_eyes_required(text)', 'kaireon.approval_in_progress()', 'kaireon.in_restore_session()']) AS f
    UNION ALL
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.publish_data_schema(text,text)', 'kaireon.publish_segment(text,text)',
        'kaireon.recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'kaireon.recommend_json(jsonb)',
        'kaireon.respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamptz,text)',
        'kaireon.respond_json(jsonb)', 'kaireon.respond_bulk(jsonb)',
        'kaireon.recommend_json(text,jsonb)', 'kaireon.respond_json(text,jsonb)', 'kaireon.respond_bulk(text,jsonb)',
        'kaireon.publish_decision_flow(text,text,text)',
        'kaireon.model_learn(text,text,text,jsonb,text)', 'kaireon.import_model(text,text,text,text,jsonb)',
        'kaireon.train_model(text,text,timestamptz,timestamptz,jsonb)',
        'kaireon.check_drift(text,text,timestamptz,timestamptz,timestamptz,timestamptz,jsonb)',
        'kaireon.transition_model(text,text,text,text)',
        'kaireon.log_shadow_scores(text,text,text,jsonb,text[],text)',
        'kaireon.assign_experiment(text,text,text,boolean)', 'kaireon.assign_variant(text,text,text,jsonb,interval)',
        'kaireon.experiment_results(text,text)', 'kaireon.evaluate_experiment(text,text)',
        'kaireon.request_approval(text,text,text,jsonb,text)', 'kaireon.approve_request(text,text,text)',
        'kaireon.reject_request(text,text,text)', 'kaireon.cancel_request(text,text)',
        'kaireon.create_api_key(text,text,jsonb,timestamptz)', 'kaireon.authenticate_api_key(text)',
        'kaireon.revoke_api_key(text,text)', 'kaireon.create_oauth_client(text,text,jsonb)',
        'kaireon.authenticate_oauth_client(text,text)', 'kaireon.revoke_oauth_client(text,text)',
        'kaireon.get_setting(text,text,text)', 'kaireon.set_setting(text,text,text,text,boolean)',
        'kaireon.run_campaign(text,text,boolean)',
        'kaireon.simulate(text,text,text,text,integer,jsonb,text)', 'kaireon.exp3_state(text,text)',
        'kaireon.dsar_export(text,text,text,text,text)', 'kaireon.dsar_delete(text,text,text,text,text)',
        'kaireon.attribute_conversions(text,timestamptz,timestamptz,text,interval,interval,text[])',
        'kaireon.location_event(text,text,double precision,double precision,timestamptz)',
        'kaireon.publish_journey(text,text,text)',
        'kaireon.enroll_in_journey(text,text,text,jsonb,timestamptz)',
        'kaireon.create_delivery(text,text,text,text,text,jsonb)',
        'kaireon.delivery_status(text,text,text,text,text,timestamptz,text,text)',
        'kaireon.link_identity(text,text,text,text,double precision)',
        'kaireon_internal._customer_data_table(text,text)']) AS f
     WHERE p_access = 'app'
$fn$;
COMMENT ON FUNCTION kaireon_internal._role_functions(text) IS
    'Internal: the functions an app or readonly role may execute (admin roles may execute all).';

CREATE FUNCTION kaireon_internal._grant_role(p_role regrole, p_access text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role      name;
    v_nsp       text;
    v_fn        regprocedure;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004', HINT = 'Pass an existing role name.';
    END IF;
    SELECT rolname INTO v_role FROM pg_roles WHERE oid = p_role;
    -- on Citus, the grants (propagated to every node) and the role_grants row share one
    -- connection per node
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA kaireon TO %I', v_role);
    CASE p_access
        WHEN 'readonly' THEN
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
        WHEN 'app' THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA kaireon TO %I', v_role);
            -- the audit log is written by kaireon's audit triggers only (append-only, read here),
            -- approvals only through kaireon.request_approval / approve_request / ... (and the
            -- approved model promotions they record in model_approvals)
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON kaireon.audit_logs, kaireon.audit_chain_heads,'
                           ' kaireon.platform_audit_logs, kaireon.platform_audit_chain_head,'
                           ' kaireon.approval_requests, kaireon.approval_request_stages, kaireon.approval_actions,'
                           ' kaireon.model_approvals FROM %I', v_role);
        WHEN 'admin' THEN
            -- everything but TRIGGER: a trigger runs as whoever writes the row (a superuser,
            -- pg_cron, the maintenance worker), so a role able to create one on a kaireon
            -- table could act with their rights
            EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('REVOKE TRIGGER ON ALL TABLES IN SCHEMA kaireon FROM %I', v_role);
            EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA kaireon TO %I', v_role);
            -- as before the helpers had their own schema: an admin may run every function
            EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA kaireon_internal TO %I', v_role);
    END CASE;
    -- Whatever the access: the audit log and the chain heads are written by kaireon alone
    -- (an admin who could move a head could break every later append of a tenant, or hide
    -- a removed tail), and the keys that sign audit digests are read by kaireon alone.
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'
                   ' ON kaireon.audit_logs, kaireon.audit_chain_heads, kaireon.platform_audit_logs,'
                   ' kaireon.platform_audit_chain_head FROM %I', v_role);
    EXECUTE format('REVOKE ALL ON kaireon.audit_digest_keys FROM %I', v_role);
    IF p_access <> 'admin' THEN
        -- who has which access, which tenant owns which data schema and which roles are pinned
        -- are not theirs to see (nor to change: a pinned role must not unpin itself)
        EXECUTE format('REVOKE ALL ON kaireon.role_grants, kaireon.tenant_schemas, kaireon.tenant_pins FROM %I', v_role);
        FOR v_fn IN SELECT * FROM kaireon_internal._role_functions(p_access) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_role);
        END LOOP;
    END IF;
    -- (no function in the ON CONFLICT update: Citus, where role_grants is a reference table,
    -- refuses one that is not IMMUTABLE)
    INSERT INTO kaireon.role_grants (role_name, access, updated_at) VALUES (v_role, p_access, now())
        ON CONFLICT (role_name) DO UPDATE SET access = EXCLUDED.access, updated_at = EXCLUDED.updated_at;
    -- Tenant data schemas published before this call.
    FOR v_nsp IN SELECT schema_name FROM kaireon.tenant_schemas WHERE to_regnamespace(quote_ident(schema_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_nsp, v_role);
        EXECUTE format('GRANT %s ON ALL TABLES IN SCHEMA %I TO %I',
                       CASE p_access WHEN 'readonly' THEN 'SELECT' WHEN 'app' THEN 'SELECT, INSERT, UPDATE, DELETE'
                                     ELSE 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES' END, v_nsp, v_role);
    END LOOP;
    -- (after an extension upgrade, new tables for the stored-SQL role too)
    PERFORM kaireon_internal._grant_confined_role();
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._grant_role(regrole, text) IS
    'Internal: grants a role app, readonly or admin access to schema kaireon and the tenant data schemas, and records it.';

CREATE FUNCTION kaireon.grant_app_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT kaireon_internal._grant_role(role, 'app');
    END;
COMMENT ON FUNCTION kaireon.grant_app_role(regrole) IS
    'Grants a role what an application needs: read and write the kaireon tables (the audit log and the approval tables read-only: kaireon writes them) and call the application functions. Row level security still limits it to its tenant (kaireon.tenant_id).';

CREATE FUNCTION kaireon.grant_readonly_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT kaireon_internal._grant_role(role, 'readonly');
    END;
COMMENT ON FUNCTION kaireon.grant_readonly_role(regrole) IS
    'Grants a role read access to the kaireon tables and the read-only functions (for analysts and reporting); row level security limits it to its tenant.';

CREATE FUNCTION kaireon.grant_admin_role(role regrole, bypass_rls boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon_internal._grant_role(role, 'admin');
    IF bypass_rls THEN
        EXECUTE format('ALTER ROLE %I BYPASSRLS', (SELECT rolname FROM pg_roles WHERE oid = role));
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon.grant_admin_role(regrole, boolean) IS
    'Grants a role full access to every kaireon table and function; with bypass_rls (default, needs a superuser) it also sees and changes every tenant''s rows.';

-- Tenant pins (docs/security.md, "Tenant pins"): the rows of kaireon.tenant_pins, checked by
-- kaireon.current_tenant_id() against the session's current, outer and session user.
CREATE FUNCTION kaireon_internal._pin_role(p_role regrole, p_tenant_id text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role      pg_roles%ROWTYPE;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004', HINT = 'Pass an existing role name.';
    END IF;
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be null' USING ERRCODE = '22004', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;
    SELECT * INTO v_role FROM pg_roles WHERE oid = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role with OID % does not exist', p_role::oid USING ERRCODE = '42704', HINT = 'Pass an existing role name.';
    END IF;
    IF v_role.rolsuper OR v_role.rolbypassrls THEN
        RAISE EXCEPTION 'role "%" is a superuser or has BYPASSRLS: a tenant pin cannot limit it', v_role.rolname
            USING ERRCODE = '22023', HINT = 'Row level security does not apply to such a role; pin a role without BYPASSRLS (and let others SET ROLE to it).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants WHERE id = p_tenant_id) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant_id
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants (the caller must see every tenant: a superuser or BYPASSRLS role).';
    END IF;
    INSERT INTO kaireon.tenant_pins (role, pinned_tenant_id) VALUES (p_role, p_tenant_id)
        ON CONFLICT (role) DO UPDATE SET pinned_tenant_id = EXCLUDED.pinned_tenant_id
        WHERE kaireon.tenant_pins.pinned_tenant_id IS DISTINCT FROM EXCLUDED.pinned_tenant_id;
    -- On Citus, tenant_pins is local to each node (it names roles by OID) and a delegated
    -- call checks the tenant on the worker: the workers get the pin too (docs/scale-out.md).
    PERFORM kaireon_internal._pin_role_on_workers(v_role.rolname, p_tenant_id);
END
$fn$;

COMMENT ON FUNCTION kaireon_internal._pin_role(regrole, text) IS
    'Internal: validates and records a tenant pin (kaireon.pin_role), on every worker too on a Citus coordinator.';

-- On a Citus coordinator with kaireon distributed: the same pin (or unpin) on every worker, in
-- the worker's own kaireon.tenant_pins (a node-local table: it names roles by their OID on that
-- node), whose trigger makes the worker's running sessions reload their pins. A worker that
-- cannot take it fails the call. Nothing on one server.
CREATE FUNCTION kaireon_internal._pin_role_on_workers(p_role name, p_tenant_id text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_failed    text;
BEGIN
    IF NOT kaireon_internal._citus_coordinator()
       OR kaireon_internal._citus_table_type('kaireon.tenants') IS DISTINCT FROM 'distributed' THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT string_agg(format(''%%s:%%s: %%s'', nodename, nodeport, result), ''; '')
                      FROM pg_catalog.run_command_on_workers(%L) WHERE NOT success',
                   CASE WHEN p_tenant_id IS NULL THEN format('SELECT kaireon.unpin_role(%L)', p_role)
                        ELSE format('SELECT kaireon.pin_role(%L, %L)', p_role, p_tenant_id) END)
        INTO v_failed;
    IF v_failed IS NOT NULL THEN
        RAISE EXCEPTION 'the pin of role "%" could not be made on every worker: %', p_role, v_failed
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Make sure kaireon is installed on every worker and the role exists there (Citus propagates CREATE ROLE), then call it again.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._pin_role_on_workers(name, text) IS
    'Internal: on a Citus coordinator, pins (or, with a NULL tenant, unpins) a role on every worker too (docs/scale-out.md); nothing on one server.';

CREATE FUNCTION kaireon.pin_role(role regrole, tenant_id text) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT kaireon_internal._pin_role(role, tenant_id);
    END;
COMMENT ON FUNCTION kaireon.pin_role(regrole, text) IS
    'Pins a role to one tenant (superuser or BYPASSRLS admin): the role, and every role that is a member of it, may then act only for that tenant, whatever SET ROLE or SET SESSION AUTHORIZATION did (42501 otherwise). Replaces an earlier pin of the role; audited.';

CREATE FUNCTION kaireon.unpin_role(role regrole) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_had       boolean;
BEGIN
    DELETE FROM kaireon.tenant_pins p WHERE p.role = unpin_role.role;
    v_had := FOUND;
    IF v_had THEN
        PERFORM kaireon_internal._pin_role_on_workers((SELECT rolname FROM pg_roles WHERE oid = unpin_role.role), NULL);
    END IF;
    RETURN v_had;
END
$fn$;
COMMENT ON FUNCTION kaireon.unpin_role(regrole) IS
    'Removes the tenant pin of a role (superuser or BYPASSRLS admin); true if it had one. A pin set with ALTER ROLE ... SET kaireon.pinned_tenant_id is removed with ALTER ROLE ... RESET.';

-- The role a tenant's stored SQL runs as (a campaign's customer query, a segment's view), whoever
-- calls: src/security/confine.c switches to it with row level security pinned to the run's tenant
-- (docs/arbitration.md, "Stored SQL runs confined"). Roles are cluster-wide: every database
-- with kaireon shares it, each granting it its own tables.
CREATE FUNCTION kaireon_internal._confined_tables() RETURNS SETOF regclass
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    -- tenant tables under row level security, except those holding secrets or credentials
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND c.relrowsecurity
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
       AND c.relname NOT IN ('platform_settings', 'api_keys', 'oauth_clients', 'users', 'accounts', 'sessions',
                             'webauthn_credentials', 'connectors', 'content_sources',
                             'audit_logs', 'audit_chain_heads', 'role_grants', 'tenant_schemas', 'dsar_requests')
     ORDER BY 1
$fn$;
COMMENT ON FUNCTION kaireon_internal._confined_tables() IS
    'Internal: the kaireon tables the role kaireon_confined (a tenant''s stored SQL) may read: tenant tables under row level security, without those holding secrets, credentials, the audit log, data subject requests and kaireon''s bookkeeping.';

CREATE FUNCTION kaireon_internal._grant_confined_role() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel       regclass;
    v_nsp       text;
BEGIN
    IF to_regrole('kaireon_confined') IS NULL THEN
        BEGIN
            CREATE ROLE kaireon_confined NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;   -- created meanwhile by another database's CREATE EXTENSION
        END;
    END IF;
    COMMENT ON ROLE kaireon_confined IS
        'kaireon: the role a tenant''s stored SQL runs as (read-only, row level security pinned to the tenant); never grant it more, nor log in with it.';
    EXECUTE 'GRANT USAGE ON SCHEMA kaireon TO kaireon_confined';
    -- the campaign's sample order (a pure hash) is computed in the confined query
    EXECUTE 'GRANT EXECUTE ON FUNCTION kaireon.fnv1a(text) TO kaireon_confined';
    FOR v_rel IN SELECT * FROM kaireon_internal._confined_tables() LOOP
        EXECUTE format('GRANT SELECT ON %s TO kaireon_confined', v_rel);
    END LOOP;
    FOR v_nsp IN SELECT schema_name FROM kaireon.tenant_schemas WHERE to_regnamespace(quote_ident(schema_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO kaireon_confined', v_nsp);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO kaireon_confined', v_nsp);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._grant_confined_role() IS
    'Internal: creates the role kaireon_confined if missing (NOLOGIN, not superuser, not BYPASSRLS) and grants it SELECT on kaireon_internal._confined_tables() and the tenant data schemas and EXECUTE on kaireon.fnv1a (the sample order); run by CREATE EXTENSION and by every kaireon.grant_*_role.';
