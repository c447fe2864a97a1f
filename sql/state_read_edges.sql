-- Where the customer's state read through the indexes (decision/state_read.c, state_row.c)
-- must leave the reading to the SQL, so both give the same answer: a table with inheritance
-- children (the SQL, without ONLY, reads their rows too: suppressions, a customer data table
-- and the segment over it), and an index whose collation is not the column's (a
-- case-insensitive one found before kaireon's own: the SQL compares by the column's).
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('sre', 'Read edges', 'sre');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('sre', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('sre', 'o1', 'One', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('sre', 'c1', 'o1', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('sre', 'f', 'F', true, '{}');
SELECT kaireon.publish_decision_flow('sre', 'f') IS NOT NULL AS published;
CREATE FUNCTION pg_temp.offers(customer text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM kaireon.recommend('sre', customer, 'web', options => '{"dry_run": true}') $$;
CREATE FUNCTION pg_temp.supp_sql(customer text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM kaireon.suppressions s WHERE s.tenant_id = 'sre' AND s.customer_id = customer
                 AND (s.expires_at IS NULL OR s.expires_at > now()) $$;

-- a case-insensitive index on (tenant_id, customer_id), first in the table's index list once
-- kaireon's own is rebuilt: 'BOB' does not suppress 'bob' (the column's collation decides)
SET client_min_messages = warning;
CREATE COLLATION public.regress_sre_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
RESET client_min_messages;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope) VALUES ('sre', 'BOB', 'global');
SELECT pg_temp.supp_sql('bob') AS sql_before, pg_temp.offers('bob') AS offers_before;
CREATE INDEX CONCURRENTLY regress_sre_supp_ci ON kaireon.suppressions (tenant_id, customer_id COLLATE public.regress_sre_ci);
SELECT format('%s', i.indexrelid::regclass) AS kaireon_index FROM pg_index i
 WHERE i.indrelid = 'kaireon.suppressions'::regclass AND i.indnatts = 3 \gset
REINDEX INDEX CONCURRENTLY :kaireon_index;
SELECT 'kaireon.regress_sre_supp_ci'::regclass::oid < :'kaireon_index'::regclass::oid AS found_first;
SELECT pg_temp.supp_sql('bob') AS sql_suppressions, pg_temp.offers('bob') AS offers_direct,
       pg_temp.supp_sql('BOB') AS sql_upper, pg_temp.offers('BOB') AS offers_upper;
DROP INDEX kaireon.regress_sre_supp_ci;
DROP COLLATION public.regress_sre_ci;
DELETE FROM kaireon.suppressions WHERE tenant_id = 'sre';

-- a suppression in an inheritance child of kaireon.suppressions suppresses, as the SQL says
SELECT pg_temp.offers('inh') AS offers_before;
CREATE TABLE public.regress_sre_supp_child () INHERITS (kaireon.suppressions);
INSERT INTO public.regress_sre_supp_child (tenant_id, customer_id, scope) VALUES ('sre', 'inh', 'global');
SELECT pg_temp.supp_sql('inh') AS sql_suppressions, pg_temp.offers('inh') AS offers_with_child_row;
DROP TABLE public.regress_sre_supp_child;
SELECT pg_temp.offers('inh') AS offers_child_dropped;
-- (the table keeps the mark of having had children, relhassubclass, until ANALYZE clears it)
ANALYZE kaireon.suppressions;
SELECT relhassubclass FROM pg_class WHERE oid = 'kaireon.suppressions'::regclass;

-- a customer data table with an inheritance child: the child's row is the customer's, for
-- a rule on the customer's attributes and for the segment over the table
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('sre', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('sre', 'customers', 'cid', 'text', false, true),
           ('sre', 'customers', 'age', 'integer', true, false);
SELECT kaireon.publish_data_schema('sre', 'customers') IS NOT NULL AS published;
INSERT INTO kaireon_t_sre.ds_customers (tenant_id, cid, age) VALUES ('sre', '7', 40), ('sre', '8', 12);
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('sre', 'adults', 'attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18}');
SELECT pg_temp.offers('7') AS adult, pg_temp.offers('8') AS minor, pg_temp.offers('9') AS no_row;
CREATE TABLE public.regress_sre_cust_child () INHERITS (kaireon_t_sre.ds_customers);
INSERT INTO public.regress_sre_cust_child (tenant_id, cid, age) VALUES ('sre', '9', 12);
SELECT t.age AS sql_age FROM kaireon_t_sre.ds_customers t WHERE t.tenant_id = 'sre' AND t.cid = '9';
SELECT pg_temp.offers('9') AS minor_in_child, pg_temp.offers('7') AS adult_in_parent;
UPDATE public.regress_sre_cust_child SET age = 40;
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('sre', 'grown', 'Grown', 'customers', '[{"field": "age", "operator": "gte", "value": 18}]');
SELECT kaireon.publish_segment('sre', 'grown') IS NOT NULL AS published;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'sre';
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, config)
    VALUES ('sre', 'r-grown', 'Grown only', 'segment_required', '{"segmentIds": ["grown"]}');
SELECT string_agg(customer_id, ',' ORDER BY customer_id) AS sql_members FROM kaireon_t_sre.seg_grown;
SELECT pg_temp.offers('7') AS member_in_parent, pg_temp.offers('9') AS member_in_child, pg_temp.offers('8') AS not_member;
DROP TABLE public.regress_sre_cust_child;
SELECT pg_temp.offers('9') AS child_dropped;
ANALYZE kaireon_t_sre.ds_customers;

-- the data table's primary key changed by hand (no configuration change): the next decision
-- looks customers up by the new key, directly and, with an (empty) inheritance child sending
-- the lookup to the SQL, through the SQL the configuration keeps (compiled again after the
-- table's invalidation, config/cache.c "Customer data tables")
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'sre';
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('sre', 'adults-again', 'attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18}');
ALTER TABLE kaireon_t_sre.ds_customers ADD COLUMN code text;
UPDATE kaireon_t_sre.ds_customers SET code = 'k' || cid;
SELECT pg_temp.offers('8') AS minor_by_cid, pg_temp.offers('k8') AS no_row_by_code;
SELECT conname AS pkey FROM pg_constraint WHERE conrelid = 'kaireon_t_sre.ds_customers'::regclass AND contype = 'p' \gset
ALTER TABLE kaireon_t_sre.ds_customers DROP CONSTRAINT :pkey;
-- (without a primary key there is no lookup: no row; the table is still watched)
SELECT pg_temp.offers('8') AS no_key_no_row;
ALTER TABLE kaireon_t_sre.ds_customers ADD PRIMARY KEY (tenant_id, code);
SELECT pg_temp.offers('8') AS no_row_by_cid, pg_temp.offers('k8') AS minor_by_code;
CREATE TABLE public.regress_sre_cust_child () INHERITS (kaireon_t_sre.ds_customers);
SELECT pg_temp.offers('8') AS no_row_by_cid_sql, pg_temp.offers('k8') AS minor_by_code_sql;
DROP TABLE public.regress_sre_cust_child;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id = 'sre';
DROP SCHEMA kaireon_t_sre CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id = 'sre';
