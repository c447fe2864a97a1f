-- The customer's history and suppressions read through their indexes (decision/state_read.c,
-- docs/recommend.md "Reading the customer's state"): the same rows the SQL would return.
-- A history row written earlier in the same transaction counts; a partition created after the
-- first decision of the session is read; an ascending index keeps the newest rows at the
-- limit; suppressions by expiry; under row level security an
-- application role sees its tenant's rows, and a policy other than kaireon's own is honoured
-- (the SQL runs); a role without SELECT on the history is refused as by the SQL.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE ROLE regress_csr_app LOGIN;
SELECT kaireon.grant_app_role('regress_csr_app');
RESET client_min_messages;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('csr', 'State reads', 'csr');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('csr', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('csr', 'o1', 'One', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('csr', 'c1', 'o1', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('csr', 'f', 'F', true, '{}');
SELECT kaireon.publish_decision_flow('csr', 'f');
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('csr', 'p-one', 'One a day', 'frequency_cap', 10, '{"maxCount": 1, "period": "day"}'),
    ('csr', 'p-out', 'One outcome a day', 'frequency_cap', 5, '{"maxCount": 1, "period": "day", "countTypes": ["outcome"]}');
CREATE FUNCTION pg_temp.offers(customer text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM kaireon.recommend('csr', customer, 'web', options => '{"dry_run": true}') $$;
CREATE FUNCTION pg_temp.seen(customer text) RETURNS void LANGUAGE sql
    AS $$ INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id)
          VALUES ('csr', customer, 'recommendation', 'o1', 'web') $$;

-- recording, then deciding, in one transaction: the recorded rows count
BEGIN;
SELECT pg_temp.offers('tx') AS before_recording;
SELECT count(*) AS recorded FROM kaireon.recommend('csr', 'tx', 'web');
SELECT pg_temp.offers('tx') AS after_recording_same_transaction;
ROLLBACK;
-- a row inserted earlier in the transaction counts; a control row is no contact (nor an
-- outcome, which "One outcome a day" counts)
BEGIN;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('csr', 'tx', 'control');
SELECT pg_temp.offers('tx') AS after_control_row;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, channel_id)
    VALUES ('csr', 'tx', 'outcome', 'click', 'o1', 'web');
SELECT pg_temp.offers('tx') AS after_outcome_row;
ROLLBACK;
BEGIN;
SELECT pg_temp.seen('tx');
SELECT pg_temp.offers('tx') AS after_insert_same_transaction;
ROLLBACK;
SELECT pg_temp.offers('tx') AS after_rollback;
-- rows older than the window are not read
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('csr', 'old', 'recommendation', 'o1', 'web', now() - interval '3 days');
SELECT pg_temp.offers('old') AS only_an_old_row;

-- suppressions: an active one blocks, an expired one does not, in the same transaction too
BEGIN;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, expires_at) VALUES ('csr', 'sup', 'global', now() - interval '1 second');
SELECT pg_temp.offers('sup') AS expired_suppression;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, scope_id, expires_at) VALUES ('csr', 'sup', 'offer', 'o1', now() + interval '1 hour');
SELECT pg_temp.offers('sup') AS active_suppression;
ROLLBACK;
BEGIN;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope) VALUES ('csr', 'sup', 'global');
SELECT pg_temp.offers('sup') AS suppression_without_expiry;
ROLLBACK;

-- an empty table (no page) is not scanned: the suppressions table emptied by TRUNCATE in this
-- transaction, then a row written to it is read
BEGIN;
TRUNCATE kaireon.suppressions;
SELECT pg_relation_size('kaireon.suppressions') = 0 AS suppressions_table_empty;
SELECT pg_temp.offers('sup') AS no_suppression;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope) VALUES ('csr', 'sup', 'global');
SELECT pg_temp.offers('sup') AS suppression_in_emptied_table;
ROLLBACK;
-- an empty partition (no page) is not scanned; a row written to it in the transaction, or
-- committed before the decision, is read
CREATE TABLE kaireon.interaction_history_p2100_01 PARTITION OF kaireon.interaction_history
    FOR VALUES FROM ('2100-01-01 00:00+00') TO ('2100-02-01 00:00+00');
SELECT kaireon_internal._index_interaction_partition('interaction_history_p2100_01');
SELECT pg_relation_size('kaireon.interaction_history_p2100_01') = 0 AS new_partition_empty;
BEGIN;
SELECT pg_temp.offers('far') AS before_row_in_empty_partition;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('csr', 'far', 'recommendation', 'o1', 'web', '2100-01-15 12:00+00');
SELECT tableoid::regclass AS partition FROM kaireon.interaction_history WHERE tenant_id = 'csr' AND customer_id = 'far';
SELECT pg_temp.offers('far') AS row_in_empty_partition_same_transaction;
ROLLBACK;
SELECT pg_temp.offers('far') AS after_rollback;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('csr', 'far', 'recommendation', 'o1', 'web', '2100-01-15 12:00+00');
SELECT pg_temp.offers('far') AS committed_row_in_empty_partition;
-- a partition read with a page is not measured again: its row deleted (the page stays) is not
-- read, nor after TRUNCATE (a new empty file), nor a row written again after it
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'csr' AND customer_id = 'far';
SELECT pg_temp.offers('far') AS deleted_row_not_read;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('csr', 'far', 'recommendation', 'o1', 'web', '2100-01-16 12:00+00');
SELECT pg_temp.offers('far') AS row_written_again;
TRUNCATE kaireon.interaction_history_p2100_01;
SELECT pg_temp.offers('far') AS truncated_partition;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('csr', 'far', 'recommendation', 'o1', 'web', '2100-01-17 12:00+00');
SELECT pg_temp.offers('far') AS row_after_truncate;
DROP TABLE kaireon.interaction_history_p2100_01;

-- a partition created after this session read the history: its rows are read. This month's
-- partition is set aside (renamed and detached) so that the row goes to the default partition,
-- then create_interaction_partitions creates the month again and moves the row into it.
SELECT format('interaction_history_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')) AS part \gset
SELECT to_regclass('kaireon.' || :'part') IS NOT NULL AS had_part \gset
SELECT pg_temp.offers('np') AS before_new_partition;
SET client_min_messages = warning;
DO $$
DECLARE
    part text := format('interaction_history_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'));
BEGIN
    IF to_regclass('kaireon.' || part) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE kaireon.interaction_history DETACH PARTITION kaireon.%I', part);
        EXECUTE format('ALTER TABLE kaireon.%I RENAME TO csr_set_aside', part);
    END IF;
END
$$;
RESET client_min_messages;
SELECT pg_temp.offers('np') AS without_this_months_partition;
SELECT pg_temp.seen('np');
SELECT tableoid::regclass AS row_in FROM kaireon.interaction_history WHERE tenant_id = 'csr' AND customer_id = 'np';
SELECT count(*) AS created FROM kaireon.create_interaction_partitions(0);
SELECT tableoid::regclass::text = 'kaireon.' || :'part' AS row_moved_to_new_partition
  FROM kaireon.interaction_history WHERE tenant_id = 'csr' AND customer_id = 'np';
SELECT pg_temp.offers('np') AS row_in_new_partition;
-- put back what was there (the set-aside partition, or no partition for this month)
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'csr';
SET client_min_messages = warning;
DO $$
DECLARE
    part text := format('interaction_history_p%s', to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM'));
    m date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    IF to_regclass('kaireon.csr_set_aside') IS NOT NULL THEN
        EXECUTE format('DROP TABLE kaireon.%I', part);
        EXECUTE format('ALTER TABLE kaireon.csr_set_aside RENAME TO %I', part);
        EXECUTE format('ALTER TABLE kaireon.interaction_history ATTACH PARTITION kaireon.%I FOR VALUES FROM (%L) TO (%L)',
                       part, (m::timestamp AT TIME ZONE 'UTC'), ((m + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    ELSE
        EXECUTE format('DROP TABLE kaireon.%I', part);
    END IF;
END
$$;
RESET client_min_messages;
SELECT (to_regclass('kaireon.' || :'part') IS NOT NULL) = :'had_part'::boolean AS partitions_as_before;

-- a partition whose customer index is ascending (a DBA's own partition): the newest rows
-- are the ones kept at the limit (10000), as ORDER BY occurred_at DESC LIMIT keeps them (the
-- SQL reads it). 10000 recommendations, then one outcome that "One outcome a day" counts.
BEGIN;
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'csr' AND id = 'p-one';
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, channel_id, occurred_at)
    SELECT 'csr', 'asc', 'recommendation', 'web', now() - interval '1 microsecond' FROM generate_series(1, 10000);
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, channel_id)
    VALUES ('csr', 'asc', 'outcome', 'click', 'o1', 'web');
SELECT pg_temp.offers('asc') AS newest_outcome_counts;
SET client_min_messages = warning;
DO $$
DECLARE
    parts regclass[];
    part regclass;
    ix regclass;
BEGIN
    SELECT array_agg(DISTINCT tableoid::regclass) INTO parts FROM kaireon.interaction_history
     WHERE tenant_id = 'csr' AND customer_id = 'asc';
    FOREACH part IN ARRAY parts LOOP
        EXECUTE format('CREATE INDEX ON %s (tenant_id, customer_id, occurred_at)', part);
        FOR ix IN SELECT i.indexrelid::regclass FROM pg_index i
                   WHERE i.indrelid = part AND i.indoption[2] = 3 AND i.indnatts = 3 LOOP
            EXECUTE format('DROP INDEX %s', ix);
        END LOOP;
    END LOOP;
END
$$;
RESET client_min_messages;
SELECT pg_temp.offers('asc') AS newest_outcome_counts_ascending_index;
ROLLBACK;

-- an application role under row level security sees its tenant's rows
GRANT EXECUTE ON FUNCTION pg_temp.offers(text) TO regress_csr_app;
SELECT pg_temp.seen('rls');
SET ROLE regress_csr_app;
SET kaireon.tenant_id = 'csr';
SELECT pg_temp.offers('rls') AS app_role_sees_the_row;
RESET ROLE;
-- a policy of the DBA's beside kaireon's (hiding web rows from the role): the SQL reads, so the
-- row is hidden as the policy says
CREATE POLICY regress_csr_no_web ON kaireon.interaction_history AS RESTRICTIVE TO regress_csr_app
    USING (channel_id IS DISTINCT FROM 'web');
SET ROLE regress_csr_app;
SELECT pg_temp.offers('rls') AS row_hidden_by_the_dbas_policy;
RESET ROLE;
DROP POLICY regress_csr_no_web ON kaireon.interaction_history;
SET ROLE regress_csr_app;
SELECT pg_temp.offers('rls') AS policy_dropped;
RESET ROLE;
-- the session acting for no tenant cannot decide (refused before anything is read)
RESET kaireon.tenant_id;
SET ROLE regress_csr_app;
SELECT pg_temp.offers('rls');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- without SELECT on the history, the read is refused as the SQL refuses it
REVOKE SELECT ON kaireon.interaction_history FROM regress_csr_app;
SELECT has_table_privilege('regress_csr_app', 'kaireon.interaction_history', 'SELECT') AS can_select;
SET ROLE regress_csr_app;
SET kaireon.tenant_id = 'csr';
SELECT pg_temp.offers('rls');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET kaireon.tenant_id;
GRANT SELECT ON kaireon.interaction_history TO regress_csr_app;

-- the customer data row, by its primary key (an integer key: the customer id is cast to it)
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('csr', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('csr', 'customers', 'cid', 'integer', false, true),
           ('csr', 'customers', 'age', 'integer', true, false);
SELECT kaireon.publish_data_schema('csr', 'customers');
INSERT INTO kaireon_t_csr.ds_customers (tenant_id, cid, age) VALUES ('csr', 7, 40), ('csr', 8, 12);
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('csr', 'adults', 'attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18}');
SELECT pg_temp.offers('7') AS adult, pg_temp.offers('8') AS minor, pg_temp.offers('9') AS no_row;
-- a row written in the transaction is read
BEGIN;
UPDATE kaireon_t_csr.ds_customers SET age = 18 WHERE cid = 8;
SELECT pg_temp.offers('8') AS minor_now_adult;
ROLLBACK;
-- a column added with a default after the rows were written (no rewrite: the rows miss it
-- and read the default), the old one dropped: both customers are 12 now
BEGIN;
ALTER TABLE kaireon_t_csr.ds_customers DROP COLUMN age;
ALTER TABLE kaireon_t_csr.ds_customers ADD COLUMN age integer DEFAULT 12;
SELECT pg_temp.offers('7') AS minor_by_default, pg_temp.offers('8') AS minor_by_default_too;
ROLLBACK;
-- a customer id that is no integer fails as the cast fails, saying where
\set VERBOSITY default
SELECT pg_temp.offers('x');
\set VERBOSITY terse
SET ROLE regress_csr_app;
SET kaireon.tenant_id = 'csr';
SELECT pg_temp.offers('7') AS adult_as_app_role, pg_temp.offers('8') AS minor_as_app_role;
RESET ROLE;
RESET kaireon.tenant_id;

-- segment membership answered from the data row (a text key, filters on that table alone):
-- the same answers as the segment view's SQL, in and out of a transaction, after the segment
-- is published again with another filter, and through the SQL for a segment over another
-- schema's table; a role without SELECT on the view is refused as by the SQL
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'csr';
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('csr', 'people', 'people');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key)
    VALUES ('csr', 'people', 'pid', 'text', false, true),
           ('csr', 'people', 'age', 'integer', true, false),
           ('csr', 'people', 'country', 'text', true, false);
SELECT kaireon.publish_data_schema('csr', 'people');
INSERT INTO kaireon_t_csr.ds_people (tenant_id, pid, age, country) VALUES
    ('csr', 'p1', 40, 'NL'), ('csr', 'p2', 12, 'DE'), ('csr', 'p4', NULL, 'NL'), ('csr', '7', 10, 'FR');
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('csr', 'grown', 'Grown', 'people', '[{"field": "age", "operator": "gte", "value": 18}, {"field": "country", "operator": "in", "value": ["NL", "BE"]}]'),
    ('csr', 'cust-adults', 'Customer adults', 'customers', '[{"field": "age", "operator": "gte", "value": 18}]');
SELECT kaireon.publish_segment('csr', 'grown'), kaireon.publish_segment('csr', 'cust-adults');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, draft_config) VALUES ('csr', 'fp', 'People', '{"customerSchema": "people"}');
SELECT kaireon.publish_decision_flow('csr', 'fp') IS NOT NULL AS published;
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, config)
    VALUES ('csr', 'r-grown', 'Grown only', 'segment_required', '{"segmentIds": ["grown"]}');
CREATE FUNCTION pg_temp.people_offers(customer text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(*) FROM kaireon.recommend('csr', customer, 'web', decision_flow => 'fp', options => '{"dry_run": true}') $$;
GRANT EXECUTE ON FUNCTION pg_temp.people_offers(text) TO regress_csr_app;
CREATE FUNCTION pg_temp.members() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(customer_id, ',' ORDER BY customer_id) FROM kaireon_t_csr.seg_grown $$;
SELECT pg_temp.members() AS sql_members, pg_temp.people_offers('p1') AS p1, pg_temp.people_offers('p2') AS p2,
       pg_temp.people_offers('p3') AS p3_no_row, pg_temp.people_offers('p4') AS p4_no_age;
BEGIN;
UPDATE kaireon_t_csr.ds_people SET age = 20 WHERE pid = 'p2';
UPDATE kaireon_t_csr.ds_people SET country = 'BE' WHERE pid = 'p2';
SELECT pg_temp.members() AS sql_members, pg_temp.people_offers('p2') AS p2_grown_in_transaction;
ROLLBACK;
UPDATE kaireon.segments SET filters = '[{"field": "age", "operator": "gte", "value": 50}]' WHERE tenant_id = 'csr' AND id = 'grown';
SELECT kaireon.publish_segment('csr', 'grown') IS NOT NULL AS republished;
SELECT pg_temp.members() AS sql_members, pg_temp.people_offers('p1') AS p1_after_republish;
UPDATE kaireon.qualification_rules SET config = '{"segmentIds": ["cust-adults"]}' WHERE tenant_id = 'csr' AND id = 'r-grown';
SELECT pg_temp.people_offers('7') AS adult_in_customers_young_in_people, pg_temp.people_offers('8') AS minor;
UPDATE kaireon.qualification_rules SET config = '{"segmentIds": ["grown"]}' WHERE tenant_id = 'csr' AND id = 'r-grown';
UPDATE kaireon.segments SET filters = '[{"field": "age", "operator": "gte", "value": 18}]' WHERE tenant_id = 'csr' AND id = 'grown';
SELECT kaireon.publish_segment('csr', 'grown') IS NOT NULL AS republished;
SET ROLE regress_csr_app;
SET kaireon.tenant_id = 'csr';
SELECT pg_temp.people_offers('p1') AS p1_as_app_role, pg_temp.people_offers('p2') AS p2_as_app_role;
RESET ROLE;
-- the segment's WHERE clause calls int4ge (age >= 18): once EXECUTE on it is revoked from
-- PUBLIC, the application role is refused as by the view's SQL, although it read the segment
-- before and the superuser reads it after the revoke
REVOKE EXECUTE ON FUNCTION int4ge(integer, integer) FROM PUBLIC;
SELECT pg_temp.people_offers('p1') AS p1_superuser_after_revoke;
SET ROLE regress_csr_app;
SELECT pg_temp.people_offers('p1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- EXECUTE through a role's membership: allowed while the membership lasts, refused after
SET client_min_messages = warning;
CREATE ROLE regress_csr_analysts;
RESET client_min_messages;
GRANT EXECUTE ON FUNCTION int4ge(integer, integer) TO regress_csr_analysts;
GRANT regress_csr_analysts TO regress_csr_app;
SET ROLE regress_csr_app;
SELECT pg_temp.people_offers('p1') AS p1_through_membership;
RESET ROLE;
REVOKE regress_csr_analysts FROM regress_csr_app;
SET ROLE regress_csr_app;
SELECT pg_temp.people_offers('p1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
REVOKE EXECUTE ON FUNCTION int4ge(integer, integer) FROM regress_csr_analysts;
DROP ROLE regress_csr_analysts;
GRANT EXECUTE ON FUNCTION int4ge(integer, integer) TO PUBLIC;
REVOKE SELECT ON kaireon_t_csr.seg_grown FROM regress_csr_app;
SET ROLE regress_csr_app;
SELECT pg_temp.people_offers('p1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
RESET kaireon.tenant_id;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id = 'csr';
DROP SCHEMA kaireon_t_csr CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id = 'csr';
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_csr_app;
DROP ROLE regress_csr_app;
