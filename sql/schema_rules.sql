-- The conventions of docs/schema.md hold for every table, checked from the catalog.
-- Each query lists the violations: the expected output is empty result sets.
CREATE TEMP VIEW ktables AS
SELECT c.oid, c.relname, c.relkind, c.relispartition, c.relrowsecurity,
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                AND a.attnotnull AND NOT a.attisdropped) AS tenant_scoped
  FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p');

SELECT count(*) FILTER (WHERE tenant_scoped) AS tenant_tables,
       count(*) FILTER (WHERE NOT tenant_scoped) AS other_tables
  FROM ktables WHERE NOT relispartition;

-- tenant tables whose primary key does not begin with tenant_id (a partitioned table has
-- none of its own: its partitions carry theirs, see docs/schema.md)
SELECT t.relname FROM ktables t
  LEFT JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'p'
 WHERE t.tenant_scoped AND t.relkind = 'r'
   AND (k.oid IS NULL OR (SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = k.conkey[1]) <> 'tenant_id')
 ORDER BY 1;

-- unique indexes of tenant tables that do not begin with tenant_id
SELECT t.relname, i.indexrelid::regclass AS index_name FROM ktables t
  JOIN pg_index i ON i.indrelid = t.oid AND i.indisunique
 WHERE t.tenant_scoped
   AND (SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = i.indkey[0]) IS DISTINCT FROM 'tenant_id'
 ORDER BY 1, 2;

-- foreign keys between tenant tables that do not begin with tenant_id
SELECT t.relname, k.conname FROM ktables t
  JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f'
  JOIN ktables r ON r.oid = k.confrelid
 WHERE t.tenant_scoped AND r.tenant_scoped AND NOT t.relispartition
   AND (SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = k.conkey[1]) <> 'tenant_id'
 ORDER BY 1, 2;

-- foreign keys whose columns do not lead some index of the referencing table (partitions
-- stand for their partitioned parent, which has no indexes)
SELECT t.relname, k.conname FROM ktables t
  JOIN pg_constraint k ON k.conrelid = t.oid AND k.contype = 'f'
 WHERE t.relkind = 'r'
   AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid
                    AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey)
 ORDER BY 1, 2;

-- tenant tables without row level security or without a policy
SELECT t.relname FROM ktables t
 WHERE t.tenant_scoped
   AND (NOT t.relrowsecurity OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid))
 ORDER BY 1;

-- every policy of a tenant table compares tenant_id with kaireon.current_tenant_id()
SELECT t.relname, p.polname FROM ktables t JOIN pg_policy p ON p.polrelid = t.oid
 WHERE t.tenant_scoped
   AND (pg_get_expr(p.polqual, p.polrelid) <> '(tenant_id = kaireon.current_tenant_id())'
        OR pg_get_expr(p.polwithcheck, p.polrelid) <> '(tenant_id = kaireon.current_tenant_id())')
 ORDER BY 1, 2;

-- the cross-tenant tables: RLS on, with the policies listed
SELECT t.relname, t.relrowsecurity, string_agg(p.polname, ', ') AS policies
  FROM ktables t LEFT JOIN pg_policy p ON p.polrelid = t.oid
 WHERE NOT t.tenant_scoped
 GROUP BY 1, 2 ORDER BY 1;

-- tables with updated_at but no touch_updated_at trigger
SELECT t.relname FROM ktables t
 WHERE NOT t.relispartition
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'updated_at')
   AND NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = t.oid
                    AND g.tgfoid = 'kaireon.touch_updated_at()'::regprocedure)
 ORDER BY 1;

-- the soft-delete models of the data model carry deleted_at and an index (tenant_id, deleted_at)
SELECT m AS soft_delete_table_missing_rules
  FROM unnest(ARRAY['categories', 'sub_categories', 'channels', 'placements', 'flow_routes', 'offers',
                    'creatives', 'outcome_types', 'qualification_rules', 'contact_policies',
                    'decision_flows', 'trigger_rules', 'guardrail_rules', 'arbitration_profiles',
                    'summary_definitions']) AS m
 WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = format('kaireon.%I', m)::regclass AND a.attname = 'deleted_at'
                      AND a.atttypid = 'timestamptz'::regtype)
    OR NOT EXISTS (SELECT 1 FROM pg_index i
                    WHERE i.indrelid = format('kaireon.%I', m)::regclass
                      AND pg_get_indexdef(i.indexrelid) LIKE '%(tenant_id, deleted_at)')
 ORDER BY 1;

-- tables holding rows that pg_dump would not dump (not registered with pg_extension_config_dump)
SELECT t.relname FROM ktables t
 WHERE t.relkind = 'r'
   AND t.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'kaireon')::oid[])
 ORDER BY 1;

-- tables, views and functions without a comment
SELECT t.relname AS uncommented_table FROM ktables t
 WHERE obj_description(t.oid, 'pg_class') IS NULL ORDER BY 1;
SELECT p.oid::regprocedure AS uncommented_function FROM pg_proc p
 WHERE p.pronamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace) AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1;

-- comments of model tables start with the model name (kaireon's own tables say so instead)
SELECT t.relname FROM ktables t
 WHERE obj_description(t.oid, 'pg_class') !~ '^([A-Z][A-Za-z]+: |kaireon''s own table: )'
 ORDER BY 1;

-- internal helpers (named _...) live in kaireon_internal, out of \df kaireon.*; nothing else does
SELECT p.oid::regprocedure AS internal_helper_in_api FROM pg_proc p
 WHERE p.pronamespace = 'kaireon'::regnamespace AND p.proname LIKE '\_%' ORDER BY 1;
SELECT p.oid::regprocedure AS api_function_in_internal FROM pg_proc p
 WHERE p.pronamespace = 'kaireon_internal'::regnamespace AND p.proname NOT LIKE '\_%' ORDER BY 1;
SELECT count(*) > 50 AS internal_helpers FROM pg_proc WHERE pronamespace = 'kaireon_internal'::regnamespace;

-- SECURITY DEFINER functions pin search_path
SELECT p.oid::regprocedure AS definer_without_search_path FROM pg_proc p
 WHERE p.pronamespace IN ('kaireon'::regnamespace, 'kaireon_internal'::regnamespace) AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
 ORDER BY 1;

-- list and object fields are jsonb, never json or text[] (except the audit log's before and
-- after: json keeps exactly the text that was hashed, docs/audit.md)
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM ktables c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE a.atttypid IN ('json'::regtype, 'text[]'::regtype, 'timestamp'::regtype)
   AND (c.relname, a.attname) NOT IN (('audit_logs', 'before'), ('audit_logs', 'after'),
                                      ('platform_audit_logs', 'before'), ('platform_audit_logs', 'after'))
 ORDER BY 1, 2;

-- updated_at is maintained by the trigger
INSERT INTO kaireon.tenants (id, name, slug, created_at, updated_at)
    VALUES ('t_touch', 'Touch', 't_touch', '2000-01-01', '2000-01-01');
UPDATE kaireon.tenants SET name = 'Touched' WHERE id = 't_touch';
SELECT name, created_at = '2000-01-01' AS created_kept, updated_at > '2020-01-01' AS updated_moved
  FROM kaireon.tenants WHERE id = 't_touch';
DELETE FROM kaireon.tenants WHERE id = 't_touch';
