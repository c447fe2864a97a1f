-- Tenant pins hold whatever the login role, SET ROLE, SET SESSION AUTHORIZATION or pooled
-- connection: a role pinned to a tenant (kaireon.pin_role, or ALTER ROLE ... SET
-- kaireon.pinned_tenant_id), and every role that is a member of it, acts only for that tenant.
-- The pooler-safe setter kaireon.set_tenant. docs/security.md, "Tenant pins".
SET kaireon.settings_encryption_key = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('pin_a', 'Pin A', 'pin_a'), ('pin_b', 'Pin B', 'pin_b');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
    ('pin_a', 'offer-a', 'A offer', 'active'), ('pin_b', 'offer-b', 'B offer', 'active');
SELECT kaireon.set_setting('pin_b', 'sms', 'token', 'B-SECRET-TOKEN', encrypted => true);
-- the application's group role holds the grants; people and services log in as its members
CREATE ROLE regress_pin_app;
SELECT kaireon.grant_app_role('regress_pin_app');
CREATE ROLE regress_pin_login LOGIN IN ROLE regress_pin_app;
ALTER ROLE regress_pin_login SET kaireon.settings_encryption_key = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';

-- 1. The pin of the issue: ALTER ROLE app SET kaireon.pinned_tenant_id, and a login role
-- that is a member of app. It used to apply only when app itself logged in.
ALTER ROLE regress_pin_app SET kaireon.pinned_tenant_id = 'pin_a';
\c - regress_pin_login
SET ROLE regress_pin_app;
SET kaireon.tenant_id = 'pin_b';
SELECT kaireon.current_tenant_id();
SELECT name FROM kaireon.offers ORDER BY name;
SELECT kaireon.get_setting('pin_b', 'sms', 'token');
RESET ROLE;
-- the login role itself is limited too (it is a member of the pinned role)
SET kaireon.tenant_id = 'pin_b';
SELECT kaireon.set_setting('pin_b', 'sms', 'token', 'overwritten', encrypted => true);
SET kaireon.tenant_id = 'pin_a';
SELECT name FROM kaireon.offers ORDER BY name;
\c - postgres
-- a superuser session that becomes the pinned role with SET SESSION AUTHORIZATION
SET kaireon.tenant_id = 'pin_b';
SET SESSION AUTHORIZATION regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
RESET SESSION AUTHORIZATION;
RESET kaireon.tenant_id;
ALTER ROLE regress_pin_app RESET kaireon.pinned_tenant_id;

-- 2. kaireon.pin_role: for superusers and BYPASSRLS admins, audited, hidden from the roles.
SELECT kaireon.pin_role('regress_pin_app', 'pin_a');
SELECT role, pinned_tenant_id FROM kaireon.tenant_pins;
SELECT action, entity_type, entity_id, after->>'pinned_tenant_id' AS pinned
  FROM kaireon.platform_audit_logs WHERE entity_type = 'tenant_pins' ORDER BY chain_seq;
SELECT kaireon.pin_role('regress_pin_app', 'pin_a');   -- unchanged: nothing audited
SELECT count(*) AS audit_rows FROM kaireon.platform_audit_logs WHERE entity_type = 'tenant_pins';
SELECT kaireon.pin_role(NULL, 'pin_a');
SELECT kaireon.pin_role('regress_pin_app', NULL);
SELECT kaireon.pin_role('regress_pin_app', 'no_such_tenant');
SELECT kaireon.pin_role('postgres', 'pin_a');
CREATE ROLE regress_pin_admin BYPASSRLS;
SELECT kaireon.grant_admin_role('regress_pin_admin');
SELECT kaireon.pin_role('regress_pin_admin', 'pin_a');

-- 3. SET ROLE to the pinned role (from a login role that is a member of it).
\c - regress_pin_login
SELECT kaireon.current_tenant_id();
SET kaireon.tenant_id = 'pin_b';
SET ROLE regress_pin_app;
SET kaireon.tenant_id = 'pin_b';
SELECT name FROM kaireon.offers ORDER BY name;
SELECT kaireon.get_setting('pin_b', 'sms', 'token');
SELECT kaireon.assert_tenant_access('pin_b');
SET kaireon.tenant_id = 'pin_a';
SELECT name FROM kaireon.offers ORDER BY name;
-- the pins are neither visible nor changeable by the pinned role, nor the setting resettable
SELECT * FROM kaireon.tenant_pins;
DELETE FROM kaireon.tenant_pins;
SELECT kaireon.unpin_role('regress_pin_app');
SET kaireon.pinned_tenant_id = '';
RESET ROLE;
\c - postgres

-- 4. A tenant chosen before SET ROLE / SET SESSION AUTHORIZATION is refused once the session
-- acts as the pinned role (checked where the tenant is resolved, not only when it is set).
SET kaireon.tenant_id = 'pin_b';
SET ROLE regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
SELECT kaireon.get_setting('pin_b', 'sms', 'token');
SELECT kaireon.current_tenant_id();
RESET ROLE;
SET SESSION AUTHORIZATION regress_pin_app;
SELECT current_user, session_user;
SELECT name FROM kaireon.offers ORDER BY name;
SELECT kaireon.get_setting('pin_b', 'sms', 'token');
RESET kaireon.tenant_id;
SELECT kaireon.current_tenant_id();
SELECT name FROM kaireon.offers ORDER BY name;
SET kaireon.tenant_id = 'pin_b';
-- the same in a parallel query (the policy runs in the workers)
SET force_parallel_mode = regress;
SELECT name FROM kaireon.offers ORDER BY name;
RESET force_parallel_mode;
RESET SESSION AUTHORIZATION;
SET force_parallel_mode = regress;
SET kaireon.tenant_id = 'pin_b';
SET ROLE regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
RESET ROLE;
RESET force_parallel_mode;
-- the superuser itself is not limited
SET kaireon.tenant_id = 'pin_b';
SELECT kaireon.current_tenant_id();

-- 5. Nor does a SET ROLE from the pinned login role to an unpinned role escape: the session
-- user stays pinned.
CREATE ROLE regress_pin_other;
SELECT kaireon.grant_app_role('regress_pin_other');
GRANT regress_pin_other TO regress_pin_login;
\c - regress_pin_login
SET ROLE regress_pin_other;
SET kaireon.tenant_id = 'pin_b';
SELECT kaireon.current_tenant_id();
SELECT name FROM kaireon.offers ORDER BY name;
\c - postgres

-- 6. A BYPASSRLS admin that is a member of the pinned role is not limited (row level security
-- does not apply to it); a SET ROLE from it to the pinned role is.
GRANT regress_pin_app TO regress_pin_admin;
SET ROLE regress_pin_admin;
SET kaireon.tenant_id = 'pin_b';
SELECT kaireon.current_tenant_id();
SET ROLE regress_pin_app;
SELECT kaireon.current_tenant_id();
RESET ROLE;
RESET kaireon.tenant_id;

-- 7. A session pinned to two tenants may act for neither.
CREATE ROLE regress_pin_app_b;
SELECT kaireon.grant_app_role('regress_pin_app_b');
SELECT kaireon.pin_role('regress_pin_app_b', 'pin_b');
GRANT regress_pin_app_b TO regress_pin_login;
\c - regress_pin_login
SET kaireon.tenant_id = 'pin_a';
SELECT name FROM kaireon.offers ORDER BY name;
SELECT kaireon.current_tenant_id();
\c - postgres
REVOKE regress_pin_app_b FROM regress_pin_login;

-- 8. Changes apply to running sessions at once (the backend's cache is invalidated).
SET kaireon.tenant_id = 'pin_a';
SET ROLE regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
RESET ROLE;
SELECT kaireon.pin_role('regress_pin_app', 'pin_b');
SET ROLE regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
RESET ROLE;
SELECT kaireon.unpin_role('regress_pin_app');
SELECT kaireon.unpin_role('regress_pin_app');
SET ROLE regress_pin_app;
SELECT name FROM kaireon.offers ORDER BY name;
RESET ROLE;
SELECT kaireon.pin_role('regress_pin_app', 'pin_a');
SELECT action, entity_id, before->>'pinned_tenant_id' AS was, after->>'pinned_tenant_id' AS now
  FROM kaireon.platform_audit_logs WHERE entity_type = 'tenant_pins' ORDER BY chain_seq;
-- the pins are dumped with the database
SELECT 'kaireon.tenant_pins'::regclass = ANY (extconfig) AS pins_dumped FROM pg_extension WHERE extname = 'kaireon';

-- 9. kaireon.set_tenant: the context for one transaction (the pooler-safe way), or the session.
RESET kaireon.tenant_id;
\c - regress_pin_login
SELECT kaireon.set_tenant('pin_a');
BEGIN;
SELECT kaireon.set_tenant('pin_a', user_id => 'u-1', request_id => 'r-1');
SELECT current_setting('kaireon.tenant_id') AS tenant, current_setting('kaireon.user_id') AS user_id,
       current_setting('kaireon.request_id') AS request_id;
SELECT name FROM kaireon.offers ORDER BY name;
COMMIT;
SELECT current_setting('kaireon.tenant_id') AS tenant, current_setting('kaireon.user_id') AS user_id;
BEGIN;
SELECT kaireon.set_tenant('pin_b');
ROLLBACK;
SELECT kaireon.set_tenant('pin_a', user_id => 'u-2', local => false);
-- a later transaction-scoped call clears the user id the session had
BEGIN;
SELECT kaireon.set_tenant('pin_a');
SELECT current_setting('kaireon.user_id') = '' AS user_cleared;
COMMIT;
SELECT current_setting('kaireon.user_id') AS session_user_id;
SELECT kaireon.set_tenant(NULL);
SELECT kaireon.set_tenant('', local => false);
\c - postgres

-- clean up
SELECT kaireon.unpin_role(r) FROM unnest(ARRAY['regress_pin_app', 'regress_pin_app_b']::regrole[]) AS r;
DELETE FROM kaireon.tenants WHERE id IN ('pin_a', 'pin_b');
DELETE FROM kaireon.role_grants WHERE role_name::text LIKE 'regress_pin%';
ALTER ROLE regress_pin_login RESET ALL;
DROP OWNED BY regress_pin_app, regress_pin_app_b, regress_pin_other, regress_pin_admin, regress_pin_login;
DROP ROLE regress_pin_login, regress_pin_app, regress_pin_app_b, regress_pin_other, regress_pin_admin;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
DELETE FROM kaireon.platform_audit_logs;
DELETE FROM kaireon.platform_audit_chain_head;
RESET session_replication_role;
