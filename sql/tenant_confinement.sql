-- A tenant's stored SQL never runs with more rights than that tenant (docs/arbitration.md,
-- "Stored SQL runs confined"). Tenant cfa's application role stores customer queries in
-- kaireon.runs; three callers run the campaign: that application role, a BYPASSRLS admin and
-- a superuser. Whoever calls, the stored query runs as kaireon_confined with row security
-- pinned to cfa: it cannot read tenant cfb's customers, settings or secrets, cannot call
-- privileged kaireon functions, cannot write or grant, cannot change its tenant or role.
-- Legitimate queries (own data schema, own kaireon rows, a published segment) still work.
\set VERBOSITY terse
SET timezone = 'UTC';
SET kaireon.settings_encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
CREATE ROLE regress_cf_app;
CREATE ROLE regress_cf_admin;
SELECT kaireon.grant_app_role('regress_cf_app');
SELECT kaireon.grant_admin_role('regress_cf_admin');

INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('cfa', 'Confined A', 'cfa', '{"decisionTraceSampleRate": 0}'),
    ('cfb', 'Confined B', 'cfb', '{"decisionTraceSampleRate": 0}');
-- each tenant: a customer data table (kaireon_t_<slug>.ds_people) and an offer
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES
    ('cfa', 'people', 'people', 'customer'), ('cfb', 'people', 'people', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('cfa', 'people', 'customer_id', 'text', false, true, 1), ('cfa', 'people', 'tier', 'text', true, false, 2),
    ('cfb', 'people', 'customer_id', 'text', false, true, 1), ('cfb', 'people', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('cfa', 'people'), kaireon.publish_data_schema('cfb', 'people');
INSERT INTO kaireon_t_cfa.ds_people (customer_id, tier) VALUES ('a-1', 'gold'), ('a-2', 'basic');
INSERT INTO kaireon_t_cfb.ds_people (customer_id, tier) VALUES ('b-secret-customer', 'gold');
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('cfa', 'gold', 'Gold', 'people', '[{"field": "tier", "operator": "eq", "value": "gold"}]');
SELECT kaireon.publish_segment('cfa', 'gold');
SELECT kaireon.set_setting('cfb', 'twilio', 'auth_token', 'B-DECRYPTED-TOKEN', encrypted => true);
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('cfa', 'email', 'Email', 'email', 'explicit', 'active'), ('cfb', 'email', 'Email', 'email', 'explicit', 'active');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, weight, value, cost) VALUES
    ('cfa', 'a-offer', 'A offer', 'active', 50, 100, 10, 0), ('cfb', 'b-offer', 'B offer', 'active', 50, 100, 10, 0);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight) VALUES
    ('cfa', 'cr-a', 'a-offer', 'email', 'Creative', 100);
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('cfa', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}}');
SELECT kaireon.publish_decision_flow('cfa', 'f');
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('cfa', 'cr', 'Run', 'f', '["email"]', 'SELECT customer_id FROM kaireon_t_cfa.ds_people', 1, 'active');

-- The application role of cfa stores a customer query.
CREATE FUNCTION public.cf_store(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'regress_cf_app', true);
    PERFORM set_config('kaireon.tenant_id', 'cfa', true);
    UPDATE kaireon.runs SET customer_query = q, segment_id = NULL WHERE tenant_id = 'cfa' AND id = 'cr';
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('kaireon.tenant_id', '', true);
END $$;
-- One caller (app, admin or superuser) runs the campaign: the run's status or the error it
-- raised, and the customer ids that landed in campaign_decisions.
CREATE FUNCTION public.cf_try(caller text, sim boolean DEFAULT false, q text DEFAULT NULL)
    RETURNS TABLE (who text, outcome text, customers text) LANGUAGE plpgsql AS $$
DECLARE
    r           kaireon.campaign_runs;
    s           kaireon.simulation_runs;
BEGIN
    who := caller;
    BEGIN
        IF caller <> 'superuser' THEN
            PERFORM set_config('role', 'regress_cf_' || caller, true);
        END IF;
        PERFORM set_config('kaireon.tenant_id', CASE caller WHEN 'app' THEN 'cfa' ELSE '' END, true);
        IF sim THEN
            SELECT * INTO s FROM kaireon.simulate('cfa', 'cr', sample_size => 100,
                                                  config => coalesce(jsonb_build_object('customerQuery', q), '{}'));
            outcome := s.status || coalesce(': ' || s.error, '');
            customers := s.results ->> 'customers';
        ELSE
            SELECT * INTO r FROM kaireon.run_campaign('cfa', 'cr', simulation => true);
            outcome := r.status || coalesce(': ' || r.error, '');
        END IF;
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('kaireon.tenant_id', '', true);
    EXCEPTION WHEN OTHERS THEN
        outcome := 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
    END;
    IF NOT sim THEN
        SELECT string_agg(d.customer_id, ', ' ORDER BY d.customer_id) INTO customers
          FROM kaireon.campaign_decisions d WHERE d.tenant_id = 'cfa' AND d.campaign_run_id = r.id;
    END IF;
    RETURN NEXT;
END $$;
CREATE VIEW public.cf_callers AS SELECT * FROM (VALUES (1, 'app'), (2, 'admin'), (3, 'superuser')) c (n, caller);
-- what a stored query could have changed
CREATE FUNCTION public.cf_damage() RETURNS TABLE (app_bypassrls boolean, app_superuser boolean, offers text, settings bigint)
    LANGUAGE sql AS $$
    SELECT r.rolbypassrls, r.rolsuper,
           (SELECT string_agg(o.tenant_id || '/' || o.id || '/' || o.status, ', ' ORDER BY o.tenant_id, o.id) FROM kaireon.offers o),
           (SELECT count(*) FROM kaireon.platform_settings)
      FROM pg_roles r WHERE r.rolname = 'regress_cf_app'
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Legitimate stored queries work for every caller, and see only tenant cfa
-- ---------------------------------------------------------------------------------------
-- its own data schema, qualified and (search_path is pinned to it) unqualified
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfa.ds_people');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT customer_id FROM ds_people WHERE tier = ''gold''');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- its own kaireon rows (row security: never cfb's), a ";" inside a literal, and a CTE
SELECT public.cf_store('SELECT ''offer:'' || id FROM kaireon.offers');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('WITH x AS (SELECT ''semi;colon'' AS c) SELECT c FROM x');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- the decision statistics and the progress rows a stored query reads are its tenant's only,
-- whoever runs the campaign (cfb has statistics rows: a dry run, or its error)
DO $$ BEGIN PERFORM * FROM kaireon.recommend('cfb', 'b-1', 'email', options => '{"dry_run": true}');
EXCEPTION WHEN OTHERS THEN NULL; END $$;
SELECT count(*) > 0 AS cfb_has_rows FROM kaireon.stat_decisions WHERE tenant_id = 'cfb';
SELECT public.cf_store('SELECT DISTINCT ''seen:'' || coalesce(tenant_id, ''<none>'') FROM (SELECT tenant_id FROM kaireon_internal._stat_decisions() UNION ALL SELECT tenant_id FROM kaireon_internal._progress()) s');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- a published segment instead of a query
UPDATE kaireon.runs SET customer_query = NULL, segment_id = 'gold' WHERE tenant_id = 'cfa' AND id = 'cr';
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- simulate too
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfa.ds_people');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller, sim => true) t ORDER BY c.n;

-- ---------------------------------------------------------------------------------------
-- 2. Reading tenant cfb: its data schema, its kaireon rows, its settings and secret
-- ---------------------------------------------------------------------------------------
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfb.ds_people');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller, sim => true) t ORDER BY c.n;
-- also through a view that an administrator made readable to everyone
CREATE VIEW public.cf_b_people AS SELECT customer_id FROM kaireon_t_cfb.ds_people;
GRANT SELECT ON public.cf_b_people TO PUBLIC;
SELECT public.cf_store('SELECT customer_id FROM public.cf_b_people');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT id FROM kaireon.offers WHERE tenant_id = ''cfb''');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT tenant_id || '':'' || key FROM kaireon.platform_settings WHERE tenant_id = ''cfb''');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT kaireon.get_setting(''cfb'', ''twilio'', ''auth_token'')');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- not even its own tenant's secret: decryption is not for stored SQL
SELECT public.cf_store('SELECT kaireon.get_setting(''cfa'', ''twilio'', ''auth_token'')');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- a SECURITY DEFINER helper of kaireon
SELECT public.cf_store('SELECT x ->> ''subjectId'' FROM kaireon.dsar_export(''cfb'', ''b-secret-customer'') x');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;

-- through a parallel worker: the stored query forces a parallel plan for a query it runs
-- by text (query_to_xml), while the caller's own session acts for cfb. Before the fix the
-- worker evaluated row security without the confinement, as the caller's tenant, and cfb's
-- customer and offer came back (kaireon.current_tenant_id() is now PARALLEL RESTRICTED).
CREATE FUNCTION public.cf_parallel(caller text) RETURNS TABLE (who text, outcome text, cfb_rows bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    r           kaireon.campaign_runs;
BEGIN
    who := caller;
    IF caller <> 'superuser' THEN
        PERFORM set_config('role', 'regress_cf_' || caller, true);
    END IF;
    PERFORM set_config('kaireon.tenant_id', 'cfb', true);
    SELECT * INTO r FROM kaireon.run_campaign('cfa', 'cr', simulation => true);
    outcome := r.status || coalesce(': ' || r.error, '');
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('kaireon.tenant_id', '', true);
    SELECT count(*) INTO cfb_rows FROM kaireon.campaign_decisions d
     WHERE d.tenant_id = 'cfa' AND d.campaign_run_id = r.id AND d.customer_id IN ('b-secret-customer', 'b-offer');
    RETURN NEXT;
END $$;
SELECT public.cf_store($q$SELECT unnest(xpath('//c/text()', query_to_xml('SELECT customer_id AS c FROM kaireon_t_cfb.ds_people', false, false, '')))::text FROM (SELECT set_config('force_parallel_mode', 'on', false) AS p OFFSET 0) s$q$);
SELECT t.* FROM public.cf_callers c, public.cf_parallel(c.caller) t WHERE c.caller <> 'app' ORDER BY c.n;
SELECT public.cf_store($q$SELECT unnest(xpath('//c/text()', query_to_xml('SELECT id AS c FROM kaireon.offers', false, false, '')))::text FROM (SELECT set_config('force_parallel_mode', 'on', false) AS p OFFSET 0) s$q$);
SELECT t.* FROM public.cf_callers c, public.cf_parallel(c.caller) t WHERE c.caller <> 'app' ORDER BY c.n;
RESET force_parallel_mode;
SELECT p.proparallel AS current_tenant_id_parallel FROM pg_proc p WHERE p.oid = 'kaireon.current_tenant_id()'::regprocedure;

-- ---------------------------------------------------------------------------------------
-- 3. Writing and granting
-- ---------------------------------------------------------------------------------------
SELECT public.cf_store('SELECT kaireon.grant_admin_role(''regress_cf_app'')::text');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT kaireon.set_setting(''cfb'', ''x'', ''y'', ''planted'')::text');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
-- refused when written (the trigger on runs.customer_query), and when run (simulate's own query)
SELECT public.cf_store('WITH d AS (UPDATE kaireon.offers SET status = ''inactive'' RETURNING id) SELECT id FROM d');
SELECT t.* FROM public.cf_callers c,
       public.cf_try(c.caller, sim => true, q => 'WITH d AS (UPDATE kaireon.offers SET status = ''inactive'' RETURNING id) SELECT id FROM d') t
 ORDER BY c.n;
SELECT public.cf_store('SELECT id FROM kaireon.offers FOR UPDATE');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller, sim => true, q => 'SELECT id FROM kaireon.offers FOR UPDATE') t ORDER BY c.n;
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfa.ds_people; UPDATE kaireon.offers SET status = ''inactive''');
SELECT t.* FROM public.cf_callers c,
       public.cf_try(c.caller, sim => true, q => 'SELECT ''x''; UPDATE kaireon.offers SET status = ''inactive''') t ORDER BY c.n;
SELECT public.cf_store('SELECT id INTO public.cf_copy FROM kaireon.offers');
SELECT public.cf_store('UPDATE kaireon.offers SET status = ''inactive'' RETURNING id');
SELECT public.cf_store('SELECT id FROM kaireon.offers WHERE');
-- a ")" cannot close the wrapping subquery early
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfa.ds_people) x(c) UNION SELECT id FROM kaireon.offers o WHERE (true');
-- functions that write, or that the query has no right to call
SELECT t.* FROM public.cf_callers c,
       public.cf_try(c.caller, sim => true, q => 'SELECT nextval(''kaireon.config_version_seq'')::text') t ORDER BY c.n;
SELECT t.* FROM public.cf_callers c,
       public.cf_try(c.caller, sim => true, q => 'SELECT pg_catalog.pg_read_file(''postgresql.conf'')') t ORDER BY c.n;
-- switching the tenant or the role from inside the query
SELECT public.cf_store('SELECT o.id FROM (SELECT set_config(''kaireon.tenant_id'', ''cfb'', false)) s, kaireon.offers o');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT public.cf_store('SELECT set_config(''role'', ''regress_cf_admin'', false)');
SELECT t.* FROM public.cf_callers c, public.cf_try(c.caller) t ORDER BY c.n;
SELECT current_setting('kaireon.tenant_id') AS tenant_after, current_user = session_user AS role_unchanged;
SELECT * FROM public.cf_damage();

-- ---------------------------------------------------------------------------------------
-- 4. The confined role itself: no login, no superuser, no BYPASSRLS, member of nothing,
--    no kaireon function beyond the public ones, and no secret-bearing table
-- ---------------------------------------------------------------------------------------
SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit, rolcreaterole, rolcreatedb, rolreplication,
       (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) AS memberships
  FROM pg_roles r WHERE rolname = 'kaireon_confined';
SELECT p.oid::regprocedure AS executable
  FROM pg_proc p WHERE p.pronamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace)
   AND has_function_privilege('kaireon_confined', p.oid, 'EXECUTE') ORDER BY p.oid::regprocedure::text;
SELECT c.relname AS secret_table, has_table_privilege('kaireon_confined', c.oid, 'SELECT') AS readable
  FROM pg_class c WHERE c.relnamespace = 'kaireon'::regnamespace
   AND c.relname IN ('platform_settings', 'api_keys', 'oauth_clients', 'users', 'platform_users', 'accounts',
                     'sessions', 'webauthn_credentials', 'verification_tokens', 'connectors', 'content_sources',
                     'role_grants', 'tenant_schemas', 'audit_logs')
 ORDER BY 1;
-- every table it may read is a tenant table under row level security
SELECT count(*) AS readable_without_rls FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p', 'v')
   AND has_table_privilege('kaireon_confined', c.oid, 'SELECT') AND NOT c.relrowsecurity;
-- a confined role that has been given more is refused rather than used
ALTER ROLE kaireon_confined BYPASSRLS;
SELECT public.cf_store('SELECT customer_id FROM kaireon_t_cfa.ds_people');
SELECT t.* FROM public.cf_try('superuser') t;
ALTER ROLE kaireon_confined NOBYPASSRLS;
GRANT regress_cf_admin TO kaireon_confined;
SELECT t.* FROM public.cf_try('superuser') t;
REVOKE regress_cf_admin FROM kaireon_confined;
GRANT kaireon_confined TO regress_cf_app;
SELECT t.* FROM public.cf_try('superuser') t;
REVOKE kaireon_confined FROM regress_cf_app;
ALTER ROLE kaireon_confined LOGIN;
SELECT t.* FROM public.cf_try('superuser') t;
ALTER ROLE kaireon_confined NOLOGIN;
SELECT t.* FROM public.cf_try('superuser') t;
-- were EXECUTE on a privileged kaireon function ever granted to it, kaireon's tenant check
-- still refuses any tenant but the run's (the outer user, a superuser here, does not count)
GRANT EXECUTE ON FUNCTION kaireon.get_setting(text, text, text) TO kaireon_confined;
SELECT public.cf_store('SELECT kaireon.get_setting(''cfb'', ''twilio'', ''auth_token'')');
SELECT t.* FROM public.cf_try('superuser') t;
REVOKE EXECUTE ON FUNCTION kaireon.get_setting(text, text, text) FROM kaireon_confined;

-- An admin role holds no TRIGGER privilege on kaireon's tables nor on the tenant data tables:
-- a trigger runs as whoever writes the row (a superuser, pg_cron, the worker), so before the
-- fix an admin without BYPASSRLS could make itself superuser with a trigger on tenant_pins.
SELECT count(*) AS kaireon_tables_admin_may_trigger FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
   AND has_table_privilege('regress_cf_admin', c.oid, 'TRIGGER');
SELECT has_table_privilege('regress_cf_admin', 'kaireon_t_cfa.ds_people', 'TRIGGER') AS data_table_trigger,
       has_table_privilege('regress_cf_admin', 'kaireon_t_cfa.ds_people', 'INSERT') AS data_table_insert,
       has_table_privilege('regress_cf_admin', 'kaireon.offers', 'TRUNCATE') AS offers_truncate;

-- kaireon's own statements run with search_path pinned to pg_catalog, pg_temp (util/spi.c): a
-- function a tenant's role creates in public (where a pre-15 database or a DBA lets it create),
-- closer to an argument's type than pg_catalog's, is never chosen by them, so it never runs
-- with the rights of whoever asked for the decision (here a superuser). Before the fix the
-- configuration's load (to_jsonb of each channel row) ran it as the superuser.
CREATE TABLE public.cf_hijack (who text, at_super boolean);
GRANT INSERT ON public.cf_hijack TO PUBLIC;
GRANT CREATE ON SCHEMA public TO regress_cf_app;
SET ROLE regress_cf_app;
SET kaireon.tenant_id = 'cfa';
CREATE FUNCTION public.to_jsonb(c kaireon.channels) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.cf_hijack VALUES (current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user));
    RETURN pg_catalog.to_jsonb(c);
END $$;
RESET kaireon.tenant_id;
RESET ROLE;
-- under the caller's path the planted function is the one PostgreSQL picks (the control)
SELECT count(*) AS picked_by_callers_path FROM (SELECT to_jsonb(c) FROM kaireon.channels c WHERE c.tenant_id = 'cfa') x;
DELETE FROM public.cf_hijack;
-- a channel changed: the next decision loads the tenant's configuration again
UPDATE kaireon.channels SET name = 'Email' WHERE tenant_id = 'cfa' AND id = 'email';
SHOW search_path;
SELECT offer_id FROM kaireon.recommend('cfa', 'a-1', 'email', options => '{"dry_run": true}');
SET search_path = public, pg_catalog;
UPDATE kaireon.channels SET name = 'Email' WHERE tenant_id = 'cfa' AND id = 'email';
SELECT offer_id FROM kaireon.recommend('cfa', 'a-1', 'email', options => '{"dry_run": true}');
-- and the caller's path is its own again afterwards
SHOW search_path;
RESET search_path;
SELECT count(*) AS ran_planted_function FROM public.cf_hijack;
DROP FUNCTION public.to_jsonb(kaireon.channels);
REVOKE CREATE ON SCHEMA public FROM regress_cf_app;
DROP TABLE public.cf_hijack;

DROP FUNCTION public.cf_store(text), public.cf_try(text, boolean, text), public.cf_damage(), public.cf_parallel(text);
DROP VIEW public.cf_b_people;
DROP VIEW public.cf_callers;
DELETE FROM kaireon.tenants WHERE id IN ('cfa', 'cfb');
DROP SCHEMA kaireon_t_cfa, kaireon_t_cfb CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE schema_name IN ('kaireon_t_cfa', 'kaireon_t_cfb');
DROP OWNED BY regress_cf_app, regress_cf_admin;
DROP ROLE regress_cf_app, regress_cf_admin;
RESET kaireon.settings_encryption_key;
