-- examples/setup.sql: the database role the example clients (examples/python, examples/node)
-- connect as: "acme_app", an application role (kaireon.grant_app_role: not a superuser, not
-- BYPASSRLS) pinned to the demo tenant "acme" (kaireon.pin_role), so whatever the client sets
-- it acts only for acme (docs/security.md, "Tenant pins"). Run it as a superuser in a database
-- where the demo tenant is loaded (test/demo.sh, or test/fixtures/demo_tenant.sql after CREATE
-- EXTENSION kaireon); running it again changes nothing. Roles are cluster-wide: the role
-- stays when the database is dropped (DROP ROLE acme_app after kaireon.unpin_role).
-- The demo server trusts local connections; elsewhere give the role a password
-- (ALTER ROLE acme_app PASSWORD '...') and pass it to the clients in PGPASSWORD.
\set ON_ERROR_STOP on
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'acme_app') AS create_role \gset
\if :create_role
CREATE ROLE acme_app LOGIN;
\endif
SELECT kaireon.grant_app_role('acme_app');
SELECT kaireon.pin_role('acme_app', 'acme');
