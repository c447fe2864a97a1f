-- Beyond one machine (docs/scale-out.md), what one server can show: kaireon.distribute()
-- without Citus explains itself and changes nothing; the schema keeps the rules that make the
-- Citus layout legal (checked from the catalogs, so a new table or key breaking one shows up
-- here); the tenant-first forms of the JSON entry points.
\set VERBOSITY terse
SET timezone = 'UTC';

-- 1. Without Citus: 0A000 with a hint, nothing changed.
SELECT count(*) AS tables_before FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace AND relkind IN ('r', 'p') \gset
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT * FROM kaireon.distribute();
SELECT * FROM kaireon.distribute(shard_count => 8);
\set VERBOSITY terse
SELECT count(*) = :tables_before AS same_tables,
       (SELECT count(*) FROM pg_constraint WHERE conrelid = 'kaireon.tenants'::regclass AND conname = 'tenants_slug_key') AS slug_key_kept
  FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace AND relkind IN ('r', 'p');
-- not for applications, nor for admin roles (which may execute every function): a superuser's
CREATE ROLE regress_so_admin;
SELECT kaireon.grant_admin_role('regress_so_admin');
SET ROLE regress_so_admin;
SELECT * FROM kaireon.distribute();
RESET ROLE;
SELECT has_function_privilege('public', 'kaireon.distribute(integer)', 'EXECUTE') AS public_may_distribute;
-- on one server: no coordinator, no table placed (a pin stays in this server's tenant_pins)
SELECT kaireon_internal._citus_coordinator() AS coordinator, kaireon_internal._citus_table_type('kaireon.tenants') AS tenants_placed;

-- 2. The rules of the layout, from the catalogs.
-- every tenant table's primary key and unique keys include tenant_id (Citus distributes by it);
-- the tenants' slug is the one exception on one server (distribute() drops that key)
SELECT c.relname, i.indexrelid::regclass AS key_without_tenant
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'kaireon'::regnamespace AND i.indisunique
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
   AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                      AND a.attnum = ANY (i.indkey::int2[]))
   AND NOT c.relispartition
 ORDER BY 1, 2;
-- tenant_id is NOT NULL wherever it is a column
SELECT c.relname AS nullable_tenant_id FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id' AND NOT a.attnotnull
 ORDER BY 1;
-- a foreign key between two tenant tables pairs tenant_id with tenant_id (co-located rows);
-- no key from a tenant-less table to a tenant table (a reference table may not reference a
-- distributed one); no SET NULL / SET DEFAULT action (Citus refuses them on distributed keys)
SELECT con.conrelid::regclass AS tbl, con.conname AS bad_key
  FROM pg_constraint con
 WHERE con.contype = 'f' AND con.connamespace = 'kaireon'::regnamespace AND con.conparentid = 0
   AND (con.confdeltype IN ('n', 'd') OR con.confupdtype IN ('n', 'd')
        OR (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attname IN ('tenant_id') AND NOT a.attisdropped)
            AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.conrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
        OR (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.conrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
            AND con.confrelid <> 'kaireon.tenants'::regclass
            AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
            AND NOT ((SELECT attnum FROM pg_attribute WHERE attrelid = con.conrelid AND attname = 'tenant_id') = con.conkey[1]
                     AND (SELECT attnum FROM pg_attribute WHERE attrelid = con.confrelid AND attname = 'tenant_id') = con.confkey[1])))
 ORDER BY 1, 2;
-- no row security policy with a subquery
SELECT p.polrelid::regclass AS tbl, p.polname AS policy_with_subquery FROM pg_policy p
 WHERE p.polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace)
   AND (pg_get_expr(p.polqual, p.polrelid) ~* '\mselect\M' OR pg_get_expr(p.polwithcheck, p.polrelid) ~* '\mselect\M')
 ORDER BY 1, 2;
-- no SQL-language function reads or writes a kaireon table with parameters (Citus plans none
-- of their queries); PL/pgSQL and C functions do
SELECT p.oid::regprocedure AS sql_function_on_tables FROM pg_proc p
 WHERE p.pronamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace)
   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql') AND p.pronargs > 0
   AND coalesce(p.prosrc, '') || coalesce(pg_get_function_sqlbody(p.oid), '') ~ 'kaireon\.[a-z_]+ [a-z]'
   AND coalesce(p.prosrc, '') || coalesce(pg_get_function_sqlbody(p.oid), '') ~* '\m(from|update|into)\M\s+kaireon\.'
 ORDER BY 1;
-- the node-local tables and the delegated functions exist; each delegated function has the
-- tenant argument named
SELECT t AS node_local_table, to_regclass('kaireon.' || t) IS NOT NULL AS present,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('kaireon.' || t) AND a.attname = 'tenant_id') AS has_tenant
  FROM kaireon_internal._node_local_tables() t ORDER BY 1;
SELECT d.fn::regprocedure AS delegated, d.tenant_arg = ANY (p.proargnames) AS names_tenant_arg
  FROM kaireon_internal._delegated_functions() d JOIN pg_proc p ON p.oid = d.fn::regprocedure ORDER BY 1;

-- 3. The tenant-first forms: the same answers as the request-only forms; a request naming
-- another tenant is refused (22023); respond_bulk fails only such an item.
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('so', 'Scale out', 'so', '{"decisionTraceSampleRate": 0}'), ('so2', 'Other', 'so2', '{}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('so', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('so', 'o1', 'One', 'active', 80), ('so', 'o2', 'Two', 'active', 70);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('so', 'c1', 'o1', 'web', 'c1'), ('so', 'c2', 'o2', 'web', 'c2');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('so', 'f-main', 'main', 'Main', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('so', 'main');
SELECT jsonb_path_query_array(kaireon.recommend_json('so', '{"customerId": "k1", "channel": "web", "dryRun": true}'), '$.decisions[*].offerId')
     = jsonb_path_query_array(kaireon.recommend_json('{"tenantId": "so", "customerId": "k1", "channel": "web", "dryRun": true}'), '$.decisions[*].offerId')
       AS same_decisions,
       kaireon.recommend_json('so', '{"tenantId": "so", "customerId": "k1", "channel": "web", "dryRun": true}') ->> 'tenantId' AS tenant;
SELECT kaireon.recommend_json('so', '{"tenantId": "so2", "customerId": "k1", "channel": "web"}');
SELECT kaireon.recommend_json(NULL, '{"customerId": "k1", "channel": "web"}');
SELECT kaireon.recommend_json('so', NULL);
SELECT kaireon.recommend_json('so', '{"customerId": "k2", "channel": "web"}') ->> 'recommendationId' AS rec \gset
SELECT r - 'interactionId' - 'recommendationId' AS responded
  FROM kaireon.respond_json('so', jsonb_build_object('customerId', 'k2', 'outcome', 'click', 'recommendationId', :'rec', 'rank', 1)) r;
SELECT kaireon.respond_json('so', jsonb_build_object('tenantId', 'so2', 'customerId', 'k2', 'outcome', 'click', 'offerId', 'o1'));
SELECT r -> 'accepted' AS accepted, r -> 'failed' AS failed,
       jsonb_path_query_array(r, '$.results[*].ok') AS oks, r #>> '{results,1,error,sqlstate}' AS item1_sqlstate
  FROM kaireon.respond_bulk('so', jsonb_build_object('items', jsonb_build_array(
           jsonb_build_object('customerId', 'k2', 'outcome', 'dismiss', 'offerId', 'o2'),
           jsonb_build_object('tenantId', 'so2', 'customerId', 'k2', 'outcome', 'dismiss', 'offerId', 'o2'),
           jsonb_build_object('tenantId', 'so', 'customerId', 'k3', 'outcome', 'click', 'offerId', 'o1')))) r;
SELECT count(*) AS so_outcomes FROM kaireon.interaction_history WHERE tenant_id = 'so' AND interaction_type = 'outcome';
-- an application role may call them, for its tenant only
CREATE ROLE regress_so_app;
SELECT kaireon.grant_app_role('regress_so_app');
SET ROLE regress_so_app;
BEGIN;
SELECT kaireon.set_tenant('so');
SELECT jsonb_array_length(kaireon.recommend_json('so', '{"customerId": "k4", "channel": "web", "dryRun": true}') -> 'decisions') AS app_decisions;
SELECT kaireon.recommend_json('so2', '{"customerId": "k4", "channel": "web", "dryRun": true}');
ROLLBACK;
RESET ROLE;

-- clean up
DELETE FROM kaireon.tenants WHERE id IN ('so', 'so2');
DROP OWNED BY regress_so_app, regress_so_admin;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_so_app', 'regress_so_admin');
DROP ROLE regress_so_app, regress_so_admin;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
RESET session_replication_role;
