-- Customer data schemas become real tables, segments become views; names are validated.
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('ds', 'Data schemas', 'ds_tenant'), ('other', 'Other', 'other');

-- A schema with every supported field type.
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('ds', 'customers', 'customers', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, length, precision, scale,
                                   is_nullable, is_primary_key, is_unique, default_value, ordinal) VALUES
    ('ds', 'customers', 'customer_id', 'text', NULL, NULL, NULL, false, true, false, NULL, 1),
    ('ds', 'customers', 'email', 'varchar', 120, NULL, NULL, true, false, true, NULL, 2),
    ('ds', 'customers', 'age', 'smallint', NULL, NULL, NULL, true, false, false, NULL, 3),
    ('ds', 'customers', 'visits', 'integer', NULL, NULL, NULL, false, false, false, '0', 4),
    ('ds', 'customers', 'lifetime_events', 'bigint', NULL, NULL, NULL, true, false, false, NULL, 5),
    ('ds', 'customers', 'balance', 'numeric', NULL, 12, 2, true, false, false, '0.00', 6),
    ('ds', 'customers', 'score', 'real', NULL, NULL, NULL, true, false, false, NULL, 7),
    ('ds', 'customers', 'income', 'double', NULL, NULL, NULL, true, false, false, NULL, 8),
    ('ds', 'customers', 'is_member', 'boolean', NULL, NULL, NULL, false, false, false, 'false', 9),
    ('ds', 'customers', 'birth_date', 'date', NULL, NULL, NULL, true, false, false, NULL, 10),
    ('ds', 'customers', 'last_seen_local', 'timestamp', NULL, NULL, NULL, true, false, false, NULL, 11),
    ('ds', 'customers', 'last_seen', 'timestamptz', NULL, NULL, NULL, true, false, false, NULL, 12),
    ('ds', 'customers', 'prefs', 'jsonb', NULL, NULL, NULL, true, false, false, '{"news": true}', 13),
    ('ds', 'customers', 'device_id', 'uuid', NULL, NULL, NULL, true, false, false, NULL, 14),
    ('ds', 'customers', 'select', 'text', NULL, NULL, NULL, true, false, false, NULL, 15);
SELECT kaireon.publish_data_schema('ds', 'customers');
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default_value
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'kaireon_t_ds_tenant.ds_customers'::regclass AND a.attnum > 0 ORDER BY a.attnum;
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = 'kaireon_t_ds_tenant.ds_customers'::regclass ORDER BY conname;
SELECT status, published_at IS NOT NULL AS published FROM kaireon.data_schemas WHERE id = 'customers';

INSERT INTO kaireon_t_ds_tenant.ds_customers (customer_id, email, age, balance, is_member, prefs, "select") VALUES
    ('c1', 'ann@example.com', 34, 1200.50, true, '{"news": true}', 'x'),
    ('c2', 'bob@example.com', 17, 10, false, '{"news": false}', 'y'),
    ('c3', 'cy@example.org', 52, 99000, true, '{}', NULL);
SELECT customer_id, visits, balance, is_member, prefs FROM kaireon_t_ds_tenant.ds_customers ORDER BY 1;
-- the tenant column is pinned to the schema's tenant
INSERT INTO kaireon_t_ds_tenant.ds_customers (tenant_id, customer_id) VALUES ('other', 'c9');

-- Adding a field later adds a column; publishing again is idempotent.
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, default_value, ordinal)
    VALUES ('ds', 'customers', 'tier', 'text', false, 'bronze', 16);
SELECT kaireon.publish_data_schema('ds', 'customers');
SELECT kaireon.publish_data_schema('ds', 'customers');
SELECT customer_id, tier FROM kaireon_t_ds_tenant.ds_customers ORDER BY 1;
-- a NOT NULL field without a default cannot be added once the table has rows
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, ordinal)
    VALUES ('ds', 'customers', 'required_later', 'text', false, 17);
SELECT kaireon.publish_data_schema('ds', 'customers');
DELETE FROM kaireon.schema_fields WHERE name = 'required_later';
-- a bad default is reported naming the field, and nothing is created
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, default_value, ordinal)
    VALUES ('ds', 'customers', 'signup_day', 'date', 'yesterday-ish', 18);
SELECT kaireon.publish_data_schema('ds', 'customers');
SELECT count(*) AS signup_day_columns FROM pg_attribute
 WHERE attrelid = 'kaireon_t_ds_tenant.ds_customers'::regclass AND attname = 'signup_day';
DELETE FROM kaireon.schema_fields WHERE name = 'signup_day';

-- A second schema joined to the first, and a segment over both.
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('ds', 'accounts', 'accounts', 'account');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('ds', 'accounts', 'account_id', 'text', false, true, 1),
    ('ds', 'accounts', 'owner_id', 'text', false, false, 2),
    ('ds', 'accounts', 'product', 'text', true, false, 3);
SELECT kaireon.publish_data_schema('ds', 'accounts');
INSERT INTO kaireon_t_ds_tenant.ds_accounts (account_id, owner_id, product) VALUES
    ('a1', 'c1', 'mortgage'), ('a2', 'c1', 'card'), ('a3', 'c3', 'card');
INSERT INTO kaireon.schema_joins (tenant_id, primary_schema_id, primary_key, foreign_schema_id, foreign_key, join_type)
    VALUES ('ds', 'customers', 'customer_id', 'accounts', 'owner_id', 'left');

INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, joins, filters) VALUES
    ('ds', 'seg-adult-members', 'Adult members', 'customers', '[]',
     '[{"field": "age", "operator": "gte", "value": 18}, {"field": "is_member", "operator": "eq", "value": true}]'),
    ('ds', 'seg-card-holders', 'Card holders', 'customers', '[{"schemaId": "accounts"}]',
     '{"any": [{"field": "accounts.product", "operator": "eq", "value": "card"}, {"field": "email", "operator": "starts_with", "value": "bob"}]}'),
    ('ds', 'seg-not-org', 'Not .org', 'customers', '[]',
     '{"not": {"field": "email", "operator": "contains", "value": ".org"}}'),
    ('ds', 'seg-news', 'News readers', 'customers', '[]',
     '[{"field": "prefs", "operator": "contains", "value": {"news": true}}, {"field": "customer_id", "operator": "in", "value": ["c1", "c2", "c3"]}]');
SELECT kaireon.publish_segment('ds', 'seg-adult-members');
SELECT kaireon.publish_segment('ds', 'seg-card-holders');
SELECT kaireon.publish_segment('ds', 'seg-not-org');
SELECT kaireon.publish_segment('ds', 'seg-news');
SELECT id, view_name, customer_count, status FROM kaireon.segments WHERE tenant_id = 'ds' ORDER BY id;
SELECT array_agg(m) AS adult_members FROM kaireon.segment_members('ds', 'seg-adult-members') m;
SELECT array_agg(m) AS card_holders FROM kaireon.segment_members('ds', 'seg-card-holders') m;
SELECT array_agg(m) AS not_org FROM kaireon.segment_members('ds', 'seg-not-org') m;
SELECT array_agg(m) AS news FROM kaireon.segment_members('ds', 'seg-news') m;
SELECT kaireon.is_segment_member('ds', 'seg-adult-members', 'c1') AS c1,
       kaireon.is_segment_member('ds', 'seg-adult-members', 'c2') AS c2,
       kaireon.is_segment_member('ds', 'seg-adult-members', 'nobody') AS nobody;
-- membership follows the data
UPDATE kaireon_t_ds_tenant.ds_customers SET age = 18 WHERE customer_id = 'c2';
UPDATE kaireon_t_ds_tenant.ds_customers SET is_member = true WHERE customer_id = 'c2';
SELECT kaireon.is_segment_member('ds', 'seg-adult-members', 'c2') AS c2_now;

-- Bad segments are refused with the reason, and values cannot inject SQL.
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('ds', 'seg-bad-field', 'bad', 'customers', '[{"field": "salary", "operator": "gt", "value": 1}]'),
    ('ds', 'seg-bad-op', 'bad', 'customers', '[{"field": "age", "operator": "like", "value": 1}]'),
    ('ds', 'seg-bad-value', 'bad', 'customers', '[{"field": "age", "operator": "gt", "value": "old"}]'),
    ('ds', 'seg-inject', 'inject', 'customers', '[{"field": "email", "operator": "eq", "value": "x''; DROP TABLE kaireon.offers; --"}]'),
    ('ds', 'seg-inject-field', 'inject', 'customers', '[{"field": "age; DROP TABLE kaireon.offers", "operator": "eq", "value": 1}]');
SELECT kaireon.publish_segment('ds', 'seg-bad-field');
SELECT kaireon.publish_segment('ds', 'seg-bad-op');
SELECT kaireon.publish_segment('ds', 'seg-bad-value');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.publish_segment('ds', 'seg-inject');
SELECT array_agg(m) AS injected_members FROM kaireon.segment_members('ds', 'seg-inject') m;
SELECT kaireon.publish_segment('ds', 'seg-inject-field');
SELECT to_regclass('kaireon.offers') IS NOT NULL AS offers_still_there;
SELECT kaireon.segment_members('ds', 'seg-bad-field');
SELECT kaireon.publish_segment('ds', 'no-such-segment');
SELECT kaireon.publish_data_schema('ds', 'no-such-schema');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.publish_data_schema('nobody', 'customers');

-- Hostile names are rejected when written, before any DDL could see them.
INSERT INTO kaireon.data_schemas (tenant_id, name) VALUES ('ds', 'x"; DROP TABLE kaireon.offers; --');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.data_schemas (tenant_id, name) VALUES ('ds', 'semi;colon');
INSERT INTO kaireon.data_schemas (tenant_id, name) VALUES ('ds', 'Upper');
INSERT INTO kaireon.data_schemas (tenant_id, name) VALUES ('ds', repeat('a', 41));
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'customers', 'a''quote', 'text');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'customers', 'drop table x', 'text');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'customers', repeat('b', 64), 'text');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'customers', 'tenant_id', 'text');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'customers', 'blob', 'bytea');
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('evil', 'Evil', 'evil"; drop schema kaireon; --');
-- and the identifier check in the publishing code refuses them even if a row got in
SELECT kaireon_internal._check_identifier('field', 'a"b');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon_internal._check_identifier('field', repeat('c', 64), 63);
SELECT kaireon_internal._check_identifier('field', 'fine_name', 63);

-- A schema needs exactly one primary key field.
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('ds', 'nokey', 'nokey');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type) VALUES ('ds', 'nokey', 'v', 'text');
SELECT kaireon.publish_data_schema('ds', 'nokey');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT to_regclass('kaireon_t_ds_tenant.ds_nokey') AS not_created;

-- A tenant's slug names its data schema: it cannot change, and a deleted tenant's schema
-- stays claimed, so a new tenant reusing the slug cannot reach the old rows.
UPDATE kaireon.tenants SET slug = 'renamed' WHERE id = 'ds';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('gone', 'Gone', 'gone');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('gone', 'c', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('gone', 'c', 'customer_id', 'text', false, true);
SELECT kaireon.publish_data_schema('gone', 'c');
INSERT INTO kaireon_t_gone.ds_customers (customer_id) VALUES ('old-secret');
DELETE FROM kaireon.tenants WHERE id = 'gone';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('newco', 'New', 'gone');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('newco', 'c', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('newco', 'c', 'customer_id', 'text', false, true);
SELECT kaireon.publish_data_schema('newco', 'c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a schema of that name that kaireon did not create is refused too
CREATE SCHEMA kaireon_t_squat;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('squat', 'Squat', 'squat');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('squat', 'c', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('squat', 'c', 'customer_id', 'text', false, true);
SELECT kaireon.publish_data_schema('squat', 'c');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT schema_name, owner_tenant_id FROM kaireon.tenant_schemas ORDER BY 1;

-- Another tenant's role cannot publish or read this tenant's schemas and segments.
CREATE ROLE regress_ds_other LOGIN;
SELECT kaireon.grant_app_role('regress_ds_other');
SET ROLE regress_ds_other;
SET kaireon.tenant_id = 'other';
SELECT kaireon.publish_data_schema('ds', 'customers');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.segment_members('ds', 'seg-adult-members');
SELECT count(*) AS other_sees_rows FROM kaireon_t_ds_tenant.ds_customers;
SET kaireon.tenant_id = 'ds';
SELECT count(*) AS ds_role_sees_rows FROM kaireon_t_ds_tenant.ds_customers;
SELECT array_agg(m) AS ds_role_members FROM kaireon.segment_members('ds', 'seg-adult-members') m;
RESET kaireon.tenant_id;
RESET ROLE;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id IN ('ds', 'other', 'newco', 'squat');
DROP SCHEMA kaireon_t_ds_tenant, kaireon_t_gone, kaireon_t_squat CASCADE;
DELETE FROM kaireon.tenant_schemas;
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_ds_other;
DROP ROLE regress_ds_other;
