-- Tenant isolation, generated from the catalog: for every table with a tenant_id column,
-- a non-owner role set to tenant A tries to read, update, delete and insert tenant B's rows
-- and to move its own rows to tenant B. Any success is a leak.
\set VERBOSITY terse
CREATE ROLE regress_kaireon_app LOGIN;
CREATE ROLE regress_kaireon_ro LOGIN;
SELECT kaireon.grant_app_role('regress_kaireon_app');
SELECT kaireon.grant_readonly_role('regress_kaireon_ro');

INSERT INTO kaireon.tenants (id, name, slug) VALUES ('tenant_a', 'A', 'tenant_a'), ('tenant_b', 'B', 'tenant_b');

-- Values for columns whose CHECK needs a special form; everything else is derived from the
-- column type and, for enumerations, the first value of the column's CHECK.
CREATE TABLE public.fill_overrides (column_ref text PRIMARY KEY, value_sql text NOT NULL);
INSERT INTO public.fill_overrides VALUES
    ('api_keys.prefix', '''krn_%s'''),
    ('oauth_clients.client_id', '''kci_%s'''),
    ('ai_attachments.sha256', 'repeat(''a'', 64)'),
    ('ai_import_token_ledgers.year_month', '''2026-11'''),
    ('qualification_rules.config', '''{"segmentIds": ["s1"]}'''),
    ('contact_policies.config', '''{"maxCount": 1, "period": "day"}'''),
    ('cross_offer_constraints.config', '''{"limit": 10, "period": "daily"}'''),
    ('guardrail_rules.expression_ast', '''{"field": "offer.priority", "op": "gte", "value": 1}'''),
    ('trigger_rules.event_type', '''outcome'''),
    ('trigger_rules.action_config', '''{"channel": "web"}'''),
    ('geofences.action', '''{"type": "notify"}'''),
    ('alert_rules.metric', '''decisions'''),
    ('policy_snapshots.policy_version_hash', '''0123456789abcdef'''),
    ('report_templates.narrative', '''{"enabled": false}'''),
    ('creative_performance.period_end', 'now() + interval ''1 day'''),
    ('audit_logs.entity_type', '''offer'''),
    ('audit_logs.entity_id', '''leak_%s'''),
    ('audit_logs.chain_seq', '1000'),
    ('audit_logs.prev_hash', 'repeat(''0'', 64)'),
    ('audit_logs.integrity_hash', 'repeat(''0'', 64)'),
    ('audit_chain_heads.last_hash', 'repeat(''0'', 64)');

-- The INSERT statement for one row of tbl owned by tenant.
CREATE FUNCTION public.fill_row_sql(tbl regclass, tenant text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    a record;
    cols text[] := '{}';
    vals text[] := '{}';
    v text;
    enum_value text;
BEGIN
    FOR a IN SELECT att.attname, att.atttypid, att.attnotnull,
                    EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = att.attrelid AND d.adnum = att.attnum) AS has_default,
                    att.attidentity, att.attgenerated
               FROM pg_attribute att
              WHERE att.attrelid = tbl AND att.attnum > 0 AND NOT att.attisdropped
              ORDER BY att.attnum LOOP
        SELECT format(o.value_sql, tenant) INTO v FROM public.fill_overrides o
         WHERE o.column_ref = (SELECT relname FROM pg_class WHERE oid = tbl) || '.' || a.attname
            OR o.column_ref = regexp_replace((SELECT relname FROM pg_class WHERE oid = tbl), '_(default|p\d{4}_\d{2})$', '') || '.' || a.attname;
        IF a.attname = 'tenant_id' THEN
            v := quote_literal(tenant);
        ELSIF v IS NULL THEN
            CONTINUE WHEN NOT a.attnotnull OR a.has_default OR a.attidentity <> '' OR a.attgenerated <> '';
            SELECT (regexp_match(pg_get_constraintdef(k.oid), '= ANY \(ARRAY\[''([^'']*)''|IN \(''([^'']*)''')) [1]
              INTO enum_value
              FROM pg_constraint k
             WHERE k.conrelid = tbl AND k.contype = 'c' AND k.conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = tbl AND attname = a.attname)]
               AND pg_get_constraintdef(k.oid) ~ '= ANY \(ARRAY\['
             LIMIT 1;
            v := CASE
                WHEN enum_value IS NOT NULL THEN quote_literal(enum_value)
                WHEN a.atttypid IN ('text'::regtype, 'varchar'::regtype, 'name'::regtype) THEN quote_literal('leak_' || tenant)
                WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype, 'float8'::regtype, 'float4'::regtype) THEN '1'
                WHEN a.atttypid = 'bool'::regtype THEN 'false'
                WHEN a.atttypid = 'timestamptz'::regtype THEN 'now()'
                WHEN a.atttypid = 'date'::regtype THEN 'current_date'
                WHEN a.atttypid = 'jsonb'::regtype THEN '''{}'''
                ELSE NULL END;
            IF v IS NULL THEN
                RAISE EXCEPTION 'fill_row_sql: no value for %.% of type %', tbl, a.attname, a.atttypid::regtype;
            END IF;
        END IF;
        cols := cols || quote_ident(a.attname);
        vals := vals || v;
    END LOOP;
    RETURN format('INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING', tbl, array_to_string(cols, ', '), array_to_string(vals, ', '));
END $$;

-- Every table with a tenant_id column, partitions included (they are tested directly: a
-- query on a partition does not go through the parent's policy).
SELECT kaireon.create_interaction_partitions(1) IS NOT NULL AS partitions_created;
CREATE VIEW public.tenant_tables AS
SELECT c.oid::regclass AS tbl, c.relname, c.relispartition
  FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped);

-- One row per tenant in every tenant table (foreign keys and triggers off while filling);
-- the audit log and chain head of each tenant have their row already (creating the tenants
-- was audited).
SET session_replication_role = replica;
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT * FROM public.tenant_tables WHERE NOT relispartition AND relname NOT IN ('audit_logs', 'audit_chain_heads') ORDER BY relname LOOP
        EXECUTE public.fill_row_sql(t.tbl, 'tenant_a');
        EXECUTE public.fill_row_sql(t.tbl, 'tenant_b');
    END LOOP;
END $$;
RESET session_replication_role;
-- the tenant-less tables (a platform administrator, a verification token) get a row too
INSERT INTO kaireon.platform_users (id, email) VALUES ('admin_user', 'admin@example.com');
INSERT INTO kaireon.verification_tokens (identifier, token, expires) VALUES ('a@example.com', 'vt', now());
SELECT count(*) FILTER (WHERE NOT relispartition) AS tenant_tables,
       count(*) FILTER (WHERE relispartition) AS partitions
  FROM public.tenant_tables;

-- How many rows of its own each table holds for tenant A (some tables get rows when a
-- tenant is created: default outcome types, the configuration version).
CREATE TABLE public.own_rows AS
SELECT t.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s WHERE tenant_id = %L', t.tbl, 'tenant_a'), false, true, '')))[1]::text::int AS n
  FROM public.tenant_tables t;
SELECT count(*) FILTER (WHERE n = 0 AND relname NOT LIKE 'interaction_history_%') AS tables_without_own_row FROM public.own_rows;

-- The attempts, as the application role acting for tenant A.
CREATE FUNCTION public.leak_attempts() RETURNS TABLE (relname name, problem text)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    n bigint;
BEGIN
    FOR t IN SELECT * FROM public.tenant_tables ORDER BY 2 LOOP
        relname := t.relname;
        EXECUTE format('SELECT count(*) FROM %s WHERE tenant_id IS DISTINCT FROM %L', t.tbl, 'tenant_a') INTO n;
        IF n <> 0 THEN problem := format('reads %s rows of other tenants', n); RETURN NEXT; END IF;
        EXECUTE format('SELECT count(*) FROM %s WHERE tenant_id = %L', t.tbl, 'tenant_a') INTO n;
        IF n <> (SELECT o.n FROM public.own_rows o WHERE o.relname = t.relname) THEN
            problem := format('sees %s of its own rows, not %s', n, (SELECT o.n FROM public.own_rows o WHERE o.relname = t.relname));
            RETURN NEXT;
        END IF;
        -- (a refused privilege, as on the append-only audit log, is no leak either)
        BEGIN
            EXECUTE format('UPDATE %s SET tenant_id = tenant_id WHERE tenant_id = %L', t.tbl, 'tenant_b');
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 0 THEN problem := format('updates %s rows of tenant B', n); RETURN NEXT; END IF;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
        BEGIN
            EXECUTE format('DELETE FROM %s WHERE tenant_id = %L', t.tbl, 'tenant_b');
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n <> 0 THEN problem := format('deletes %s rows of tenant B', n); RETURN NEXT; END IF;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
        BEGIN
            EXECUTE public.fill_row_sql(t.tbl, 'tenant_b');
            problem := 'inserts a row for tenant B'; RETURN NEXT;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
                  WHEN OTHERS THEN problem := 'insert for tenant B failed with ' || SQLSTATE || ' ' || SQLERRM; RETURN NEXT;
        END;
        BEGIN
            EXECUTE format('UPDATE %s SET tenant_id = %L WHERE tenant_id = %L', t.tbl, 'tenant_b', 'tenant_a');
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN problem := 'moves its row to tenant B'; RETURN NEXT; END IF;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
                  WHEN OTHERS THEN problem := 'move to tenant B failed with ' || SQLSTATE || ' ' || SQLERRM; RETURN NEXT;
        END;
    END LOOP;
END $$;

GRANT SELECT ON public.tenant_tables, public.fill_overrides, public.own_rows TO regress_kaireon_app;
SET ROLE regress_kaireon_app;
SET kaireon.tenant_id = 'tenant_a';
SELECT * FROM public.leak_attempts();
-- the login tables hold tenant A's rows only; the tenant-less ones show nothing and take
-- nothing (42501: no policy lets a row in)
SELECT (SELECT count(*) FROM kaireon.users) AS users,
       (SELECT count(*) FROM kaireon.sessions) AS sessions,
       (SELECT count(*) FROM kaireon.accounts) AS accounts,
       (SELECT count(*) FROM kaireon.webauthn_credentials) AS webauthn,
       (SELECT count(*) FROM kaireon.platform_users) AS platform_users,
       (SELECT count(*) FROM kaireon.verification_tokens) AS verification_tokens,
       (SELECT count(*) FROM kaireon.tenants) AS tenants;
INSERT INTO kaireon.platform_users (id, email) VALUES ('intruder', 'intruder@example.com');
UPDATE kaireon.platform_users SET role = 'admin' WHERE id = 'admin_user';
DELETE FROM kaireon.platform_users;
-- kaireon's own bookkeeping is out of reach, the audit log is append-only, and maintenance
-- functions are not the application's to call
SELECT * FROM kaireon.role_grants;
INSERT INTO kaireon.role_grants (role_name, access) VALUES ('regress_kaireon_app', 'admin');
SELECT * FROM kaireon.tenant_schemas;
UPDATE kaireon.audit_logs SET action = 'create';
DELETE FROM kaireon.audit_logs;
SELECT kaireon.create_interaction_partitions(1);
SELECT kaireon.grant_admin_role('regress_kaireon_app');
-- without a tenant the role sees nothing at all
RESET kaireon.tenant_id;
SELECT count(*) AS offers_without_tenant FROM kaireon.offers;
RESET ROLE;

-- The read-only role reads its tenant's rows and cannot write them.
SET ROLE regress_kaireon_ro;
SET kaireon.tenant_id = 'tenant_b';
SELECT count(*) AS ro_offers FROM kaireon.offers;
UPDATE kaireon.offers SET name = 'x';
SELECT kaireon.publish_segment('tenant_b', 'any-segment');
SELECT kaireon.publish_data_schema('tenant_b', 'any-schema');
RESET kaireon.tenant_id;
RESET ROLE;

-- tenant B's rows are all still there
SELECT count(*) FILTER (WHERE n >= 1) AS tables_with_b_row, count(*) AS tables
  FROM (SELECT t.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s WHERE tenant_id = %L', t.tbl, 'tenant_b'), false, true, '')))[1]::text::int AS n
          FROM public.tenant_tables t WHERE NOT t.relispartition) s;

-- Users belong to their tenant (docs/schema.md, "Users and platform users"): an email is
-- unique within a tenant, case-insensitively, and may sign up in several tenants; a login
-- row references a user of its own tenant; platform users are apart.
INSERT INTO kaireon.users (tenant_id, id, email) VALUES
    ('tenant_a', 'u_a', 'Same@Example.com'), ('tenant_b', 'u_b', 'same@example.com');
INSERT INTO kaireon.users (tenant_id, id, email) VALUES ('tenant_a', 'u_a2', 'SAME@example.com');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.users (tenant_id, id, email) VALUES ('tenant_b', 'u_a', 'other@example.com');
INSERT INTO kaireon.platform_users (id, email) VALUES ('u_a', 'same@example.com');
INSERT INTO kaireon.platform_users (id, email) VALUES ('root2', 'ADMIN@example.com');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.accounts (tenant_id, user_id, type, provider, provider_account_id) VALUES
    ('tenant_a', 'u_a', 'oauth', 'github', 'gh_same'), ('tenant_b', 'u_b', 'oauth', 'github', 'gh_same');
INSERT INTO kaireon.accounts (tenant_id, user_id, type, provider, provider_account_id)
    VALUES ('tenant_a', 'u_b', 'oauth', 'github', 'gh_other');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.sessions (tenant_id, user_id, session_token, expires) VALUES
    ('tenant_a', 'u_a', 'tok_u_a', now() + interval '1 day'), ('tenant_b', 'u_b', 'tok_u_b', now() + interval '1 day');
INSERT INTO kaireon.webauthn_credentials (tenant_id, user_id, credential_id, public_key) VALUES
    ('tenant_a', 'u_a', 'cred_u_a', 'pk'), ('tenant_b', 'u_b', 'cred_u_b', 'pk');
-- tenant A's role sees its users and their logins, and no platform user
SET ROLE regress_kaireon_app;
SET kaireon.tenant_id = 'tenant_a';
SELECT 'users' AS tbl, string_agg(id || ' ' || email, ', ' ORDER BY id) AS visible FROM kaireon.users WHERE id LIKE 'u\_%'
UNION ALL SELECT 'accounts', string_agg(user_id || ' ' || provider_account_id, ', ' ORDER BY user_id) FROM kaireon.accounts WHERE user_id LIKE 'u\_%'
UNION ALL SELECT 'sessions', string_agg(user_id || ' ' || session_token, ', ' ORDER BY user_id) FROM kaireon.sessions WHERE user_id LIKE 'u\_%'
UNION ALL SELECT 'webauthn_credentials', string_agg(user_id || ' ' || credential_id, ', ' ORDER BY user_id) FROM kaireon.webauthn_credentials WHERE user_id LIKE 'u\_%'
UNION ALL SELECT 'platform_users', string_agg(id, ', ') FROM kaireon.platform_users;
-- nor can it reach tenant B's session by its token
SELECT count(*) AS b_session FROM kaireon.sessions WHERE session_token = 'tok_u_b';
RESET kaireon.tenant_id;
RESET ROLE;
-- deleting a user deletes its logins, not those of the same id in another tenant; deleting a
-- tenant deletes its users and theirs
INSERT INTO kaireon.sessions (tenant_id, user_id, session_token, expires) VALUES ('tenant_b', 'u_a', 'tok_b_u_a', now());
CREATE TEMP VIEW u_a_logins AS
SELECT tenant_id, (SELECT count(*) FROM kaireon.accounts a WHERE a.tenant_id = t.tenant_id AND a.user_id = 'u_a') AS accounts,
       (SELECT count(*) FROM kaireon.sessions s WHERE s.tenant_id = t.tenant_id AND s.user_id = 'u_a') AS sessions,
       (SELECT count(*) FROM kaireon.webauthn_credentials w WHERE w.tenant_id = t.tenant_id AND w.user_id = 'u_a') AS webauthn
  FROM (VALUES ('tenant_a'), ('tenant_b')) AS t (tenant_id);
SELECT * FROM u_a_logins;
DELETE FROM kaireon.users WHERE tenant_id = 'tenant_a' AND id = 'u_a';
SELECT * FROM u_a_logins;
DROP VIEW u_a_logins;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('tenant_c', 'C', 'tenant_c');
INSERT INTO kaireon.users (tenant_id, id, email) VALUES ('tenant_c', 'u_c', 'same@example.com');
INSERT INTO kaireon.accounts (tenant_id, user_id, type, provider, provider_account_id)
    VALUES ('tenant_c', 'u_c', 'oauth', 'github', 'gh_same');
INSERT INTO kaireon.sessions (tenant_id, user_id, session_token, expires) VALUES ('tenant_c', 'u_c', 'tok_u_c', now());
INSERT INTO kaireon.webauthn_credentials (tenant_id, user_id, credential_id, public_key) VALUES ('tenant_c', 'u_c', 'cred_u_c', 'pk');
INSERT INTO kaireon.conversations (tenant_id, user_id) VALUES ('tenant_c', 'u_c');
INSERT INTO kaireon.custom_roles (tenant_id, id, name) VALUES ('tenant_c', 'cr_c', 'reviewer');
INSERT INTO kaireon.custom_role_assignments (tenant_id, user_id, role_id) VALUES ('tenant_c', 'u_c', 'cr_c');
DELETE FROM kaireon.tenants WHERE id = 'tenant_c';
SELECT (SELECT count(*) FROM kaireon.users WHERE tenant_id = 'tenant_c') AS users,
       (SELECT count(*) FROM kaireon.accounts WHERE tenant_id = 'tenant_c') AS accounts,
       (SELECT count(*) FROM kaireon.sessions WHERE tenant_id = 'tenant_c') AS sessions,
       (SELECT count(*) FROM kaireon.webauthn_credentials WHERE tenant_id = 'tenant_c') AS webauthn,
       (SELECT count(*) FROM kaireon.conversations WHERE tenant_id = 'tenant_c') AS conversations,
       (SELECT count(*) FROM kaireon.custom_role_assignments WHERE tenant_id = 'tenant_c') AS role_assignments,
       (SELECT count(*) FROM kaireon.users WHERE id = 'u_b') AS other_tenant_user,
       (SELECT count(*) FROM kaireon.platform_users WHERE id = 'u_a') AS platform_user,
       (SELECT role FROM kaireon.platform_users WHERE id = 'admin_user') AS untouched_admin_role;

-- A role pinned to tenant A cannot switch to tenant B.
CREATE ROLE regress_kaireon_pinned LOGIN;
SELECT kaireon.grant_app_role('regress_kaireon_pinned');
ALTER ROLE regress_kaireon_pinned SET kaireon.pinned_tenant_id = 'tenant_a';
\c - regress_kaireon_pinned
SHOW kaireon.pinned_tenant_id;
SELECT kaireon.current_tenant_id();
SET kaireon.tenant_id = 'tenant_b';
SET kaireon.pinned_tenant_id = 'tenant_b';
SET kaireon.tenant_id = 'tenant_a';
SELECT count(*) AS pinned_sees_offers, bool_and(tenant_id = 'tenant_a') AS only_a FROM kaireon.offers;
-- kaireon functions apply the same rule
SELECT kaireon.assert_tenant_access('tenant_a');
SELECT kaireon.assert_tenant_access('tenant_b');
\c - postgres

-- Only these functions are executable by every role (the policies call current_tenant_id;
-- recommend's and respond's queries call the two calendar helpers as the caller, the
-- summary_definitions check trigger the list of dimensions as the writer, the
-- <table>_<column>_finite CHECKs call _is_finite as the writer, the check triggers of
-- approval_actions and outbox_handlers _resolve_function as the writer, assign_variant and
-- the experiments' check trigger the two split helpers as the caller or writer, and the views
-- kaireon.stat_decisions and kaireon.progress the functions behind them, which filter by the caller).
SELECT p.oid::regprocedure AS public_function FROM pg_proc p
 WHERE p.pronamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace) AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;

-- The kaireon. prefix is reserved: unknown settings are refused.
SET kaireon.no_such_setting = 'x';

-- clean up
SET client_min_messages = warning;
-- (a DO block, not \gexec: the names depend on today's date and would be echoed)
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DROP FUNCTION public.leak_attempts();
DROP TABLE public.own_rows;
DROP VIEW public.tenant_tables;
DROP FUNCTION public.fill_row_sql(regclass, text);
DROP TABLE public.fill_overrides;
DELETE FROM kaireon.platform_users;
DELETE FROM kaireon.verification_tokens;
DELETE FROM kaireon.tenants;
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_kaireon_app, regress_kaireon_ro, regress_kaireon_pinned;
DROP ROLE regress_kaireon_app, regress_kaireon_ro, regress_kaireon_pinned;
-- the audit log is append-only: only with triggers off (a superuser) do its rows go
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
RESET session_replication_role;
