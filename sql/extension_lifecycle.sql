-- The extension can be dropped with everything in it and created again; the module
-- reports its version. Runs last: it recreates the extension the other tests used.
\set VERBOSITY terse
SELECT kaireon.version();
SELECT extversion FROM pg_extension WHERE extname = 'kaireon';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('life', 'Lifecycle', 'life');
INSERT INTO kaireon.offers (tenant_id, name) VALUES ('life', 'An offer');
SET client_min_messages = warning;
DROP EXTENSION kaireon CASCADE;
RESET client_min_messages;
SELECT count(*) AS kaireon_schemas FROM pg_namespace WHERE nspname = 'kaireon';
CREATE EXTENSION kaireon;
SELECT count(*) AS tables FROM pg_tables WHERE schemaname = 'kaireon';
SELECT count(*) AS tenants_after_recreate FROM kaireon.tenants;
SELECT kaireon.version();
-- the extension lives in schema kaireon and cannot be relocated
CREATE SCHEMA elsewhere;
ALTER EXTENSION kaireon SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
