-- recommend and respond as the roles a DBA sets up (docs/security.md): an application role
-- acting for its tenant decides and records under row level security; it cannot decide for
-- another tenant; a read-only role cannot call them.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE ROLE regress_rec_app LOGIN;
CREATE ROLE regress_rec_ro LOGIN;
SELECT kaireon.grant_app_role('regress_rec_app');
SELECT kaireon.grant_readonly_role('regress_rec_ro');
RESET client_min_messages;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('rr_a', 'A', 'rr_a'), ('rr_b', 'B', 'rr_b');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('rr_a', 'web', 'Web', 'web', 'implicit'), ('rr_b', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
    ('rr_a', 'a1', 'Offer of A', 'active'), ('rr_b', 'b1', 'Offer of B', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('rr_a', 'ca1', 'a1', 'web', 'c'), ('rr_b', 'cb1', 'b1', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES
    ('rr_a', 'f', 'F', true, '{}'), ('rr_b', 'f', 'F', true, '{}');
SELECT kaireon.publish_decision_flow('rr_a', 'f'), kaireon.publish_decision_flow('rr_b', 'f');
-- customer data, so the compile reads a published customer schema as the app role
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('rr_a', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('rr_a', 'customers', 'customer_id', 'text', false, true),
           ('rr_a', 'customers', 'age', 'integer', true, false);
SELECT kaireon.publish_data_schema('rr_a', 'customers');
INSERT INTO kaireon_t_rr_a.ds_customers VALUES ('rr_a', 'c1', 40);
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('rr_a', 'adults', 'attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18}');

SET ROLE regress_rec_app;
SET kaireon.tenant_id = 'rr_a';
SELECT rank, offer_id, creative_id, interaction_id IS NOT NULL AS recorded
  FROM kaireon.recommend('rr_a', 'c1', 'web');
SELECT kaireon.respond('rr_a', 'c1', 'click', offer_id => 'a1') ->> 'classification' AS classification;
SELECT count(*) AS rows_of_a FROM kaireon.interaction_history WHERE customer_id = 'c1';
-- another tenant: refused before anything is read or written
SELECT * FROM kaireon.recommend('rr_b', 'c1', 'web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rr_b', 'c1', 'click', offer_id => 'b1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS rows_of_b FROM kaireon.interaction_history WHERE tenant_id = 'rr_b';

SET ROLE regress_rec_ro;
SET kaireon.tenant_id = 'rr_a';
SELECT * FROM kaireon.recommend('rr_a', 'c1', 'web', options => '{"dry_run": true}');
SELECT kaireon.respond('rr_a', 'c1', 'click', offer_id => 'a1');
RESET kaireon.tenant_id;
RESET ROLE;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id IN ('rr_a', 'rr_b');
DROP SCHEMA kaireon_t_rr_a CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id = 'rr_a';
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_rec_app, regress_rec_ro;
DROP ROLE regress_rec_app, regress_rec_ro;
