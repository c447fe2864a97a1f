-- The extension can be dropped with everything in it and created again; the module
-- reports its version. Runs last: it recreates the extension the other tests used.
\set VERBOSITY terse
SELECT kaireon.version();
SELECT extversion FROM pg_extension WHERE extname = 'kaireon';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('life', 'Lifecycle', 'life');
INSERT INTO kaireon.offers (tenant_id, name) VALUES ('life', 'An offer');
-- a tenant decided for, so this backend keeps its compiled configuration
CREATE FUNCTION pg_temp.life_tenant(offer_name text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('life_rec', 'Lifecycle decisions', 'life_rec');
    INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode)
        VALUES ('life_rec', 'web', 'Web', 'web', 'implicit');
    INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('life_rec', 'o1', offer_name, 'active');
    INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('life_rec', 'c1', 'o1', 'web', 'c');
    INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('life_rec', 'f', 'F', true, '{}');
    SELECT kaireon.publish_decision_flow('life_rec', 'f');
$$;
SELECT pg_temp.life_tenant('Before the drop');
SELECT offer_name, v.version AS version_before
  FROM kaireon.recommend('life_rec', 'c1', 'web', options => '{"dry_run": true}'),
       kaireon.config_versions v WHERE v.tenant_id = 'life_rec' \gset
SELECT :'offer_name' AS offer_name;
SET client_min_messages = warning;
DROP EXTENSION kaireon CASCADE;
RESET client_min_messages;
SELECT count(*) AS kaireon_schemas FROM pg_namespace WHERE nspname = 'kaireon';
CREATE EXTENSION kaireon;
SELECT count(*) AS tables FROM pg_tables WHERE schemaname = 'kaireon';
SELECT count(*) AS tenants_after_recreate FROM kaireon.tenants;
-- the tenant made again in the new extension, its configuration version set to the one this
-- backend compiled before the drop: that compiled configuration is not used (the drop of
-- config_version_seq and of config_versions both say so, config/cache.c)
SELECT pg_temp.life_tenant('After the drop');
UPDATE kaireon.config_versions SET version = :version_before WHERE tenant_id = 'life_rec';
SELECT offer_name FROM kaireon.recommend('life_rec', 'c1', 'web', options => '{"dry_run": true}');
-- and a change of the new extension's configuration is seen at once: the backend follows the
-- new config_versions (the OID it keeps of the old one was forgotten with the drop)
UPDATE kaireon.offers SET name = 'Renamed after the drop' WHERE tenant_id = 'life_rec' AND id = 'o1';
SELECT offer_name FROM kaireon.recommend('life_rec', 'c1', 'web', options => '{"dry_run": true}');
SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id = 'life_rec';
RESET client_min_messages;
SELECT kaireon.version();
-- the extension lives in schema kaireon and cannot be relocated
CREATE SCHEMA elsewhere;
ALTER EXTENSION kaireon SET SCHEMA elsewhere;
DROP SCHEMA elsewhere;
