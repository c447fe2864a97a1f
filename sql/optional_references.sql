-- Optional references (docs/schema.md, "Optional references"): foreign keys
-- (tenant_id, col) -> (tenant_id, id) ON DELETE NO ACTION whose col the trigger
-- "On_delete_set_null" of the referenced table sets to NULL when the referenced row is
-- deleted, in that tenant's rows only. It stands in for ON DELETE SET NULL (col), which Citus
-- refuses between distributed tables.
\set VERBOSITY terse

-- No key of schema kaireon has a SET NULL or SET DEFAULT action (delete or update).
SELECT conrelid::regclass AS tbl, conname
  FROM pg_constraint
 WHERE contype = 'f' AND connamespace = 'kaireon'::regnamespace
   AND (confdeltype IN ('n', 'd') OR confupdtype IN ('n', 'd'));

-- The optional references (every ON DELETE NO ACTION key), each listed by the trigger of its
-- referenced table; the trigger sorts before the table's RI triggers, whose NO ACTION check
-- must come after it (AFTER triggers fire in name order).
CREATE VIEW public.optional_refs AS
SELECT row_number() OVER (ORDER BY fk.conname) AS n, fk.conname,
       fk.conrelid::regclass AS child, ca.attname AS col,
       fk.confrelid::regclass AS parent, pa.attname AS parent_col
  FROM pg_constraint fk
  JOIN pg_attribute ca ON ca.attrelid = fk.conrelid AND ca.attnum = fk.conkey[2]
  JOIN pg_attribute pa ON pa.attrelid = fk.confrelid AND pa.attnum = fk.confkey[2]
 WHERE fk.contype = 'f' AND fk.connamespace = 'kaireon'::regnamespace
   AND fk.conparentid = 0 AND fk.confdeltype = 'a';
SELECT count(*) AS optional_refs,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM pg_trigger t
            WHERE t.tgrelid = r.parent AND t.tgname = 'On_delete_set_null'
              AND t.tgtype = 1 + 8   -- ROW, DELETE, AFTER
              AND position(format(E'%s\\000%s\\000%s\\000', (SELECT relname FROM pg_class WHERE oid = r.child), r.col, r.parent_col)::bytea
                           IN t.tgargs) > 0)) AS without_trigger,
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM pg_trigger t
            WHERE t.tgrelid = r.parent AND t.tgname LIKE 'RI\_%' AND t.tgname COLLATE "C" < 'On_delete_set_null')) AS ri_trigger_first
  FROM public.optional_refs r;
SELECT count(*) AS triggers_without_optional_ref
  FROM pg_trigger t
 WHERE t.tgname = 'On_delete_set_null'
   AND NOT EXISTS (SELECT 1 FROM public.optional_refs r WHERE r.parent = t.tgrelid::regclass);

INSERT INTO kaireon.tenants (id, name, slug) VALUES ('optref_a', 'A', 'optref_a'), ('optref_b', 'B', 'optref_b');

-- Every optional reference, from the catalog: in both tenants, a parent row 'p<n>' and a child
-- row 'c<n>' referring to it (same ids in both tenants); deleting tenant A's parent must set
-- tenant A's child's column to NULL and leave tenant B's rows alone. The rows are bare (only
-- tenant_id, id and the reference), so inside this transaction, rolled back at the end, the
-- tables concerned accept NULL in their columns without a default (and generated ones), and
-- the rows are inserted with triggers off.
BEGIN;
DO $$
DECLARE
    t   regclass;
    a   name;
BEGIN
    FOR t IN SELECT child FROM public.optional_refs UNION SELECT parent FROM public.optional_refs LOOP
        FOR a IN SELECT att.attname FROM pg_attribute att
                  WHERE att.attrelid = t AND att.attnum > 0 AND NOT att.attisdropped AND att.attnotnull
                    AND att.attname NOT IN ('tenant_id', 'id')
                    AND (att.attgenerated <> ''
                         OR NOT EXISTS (SELECT 1 FROM pg_attrdef d WHERE d.adrelid = t AND d.adnum = att.attnum)) LOOP
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', t, a);
        END LOOP;
    END LOOP;
END $$;
SET session_replication_role = replica;
DO $$
DECLARE
    r       record;
    tenant  text;
BEGIN
    FOREACH tenant IN ARRAY ARRAY['optref_a', 'optref_b'] LOOP
        FOR r IN SELECT * FROM public.optional_refs ORDER BY n LOOP
            EXECUTE format('INSERT INTO %s (tenant_id, %I) VALUES ($1, $2)', r.parent, r.parent_col)
                USING tenant, 'p' || r.n;
            EXECUTE format('INSERT INTO %s (tenant_id, id, %I) VALUES ($1, $2, $3)', r.child, r.col)
                USING tenant, 'c' || r.n, 'p' || r.n;
        END LOOP;
    END LOOP;
END $$;
RESET session_replication_role;
CREATE TEMP TABLE optref_results (n bigint, conname name, parent_gone boolean, child_nulled boolean,
                                  other_tenant_kept boolean);
DO $$
DECLARE
    r       record;
    gone    boolean;
    nulled  boolean;
    kept    boolean;
BEGIN
    FOR r IN SELECT * FROM public.optional_refs ORDER BY n LOOP
        EXECUTE format('DELETE FROM %s WHERE tenant_id = $1 AND %I = $2', r.parent, r.parent_col)
            USING 'optref_a', 'p' || r.n;
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s WHERE tenant_id = $1 AND %I = $2)', r.parent, r.parent_col)
            INTO gone USING 'optref_a', 'p' || r.n;
        EXECUTE format('SELECT %I IS NULL FROM %s WHERE tenant_id = $1 AND id = $2', r.col, r.child)
            INTO nulled USING 'optref_a', 'c' || r.n;
        EXECUTE format('SELECT (SELECT %I FROM %s WHERE tenant_id = $1 AND id = $2) = $3
                           AND EXISTS (SELECT 1 FROM %s WHERE tenant_id = $1 AND %I = $3)',
                       r.col, r.child, r.parent, r.parent_col)
            INTO kept USING 'optref_b', 'c' || r.n, 'p' || r.n;
        INSERT INTO optref_results VALUES (r.n, r.conname, gone, nulled, kept);
    END LOOP;
END $$;
\pset format unaligned
SELECT conname, parent_gone, child_nulled, other_tenant_kept FROM optref_results ORDER BY n;
\pset format aligned
ROLLBACK;

-- The same with real rows, committed (so the audit capture runs), through the application:
-- a category, offers in both tenants, and content items referring to templates.
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES
    ('optref_a', 'cat', 'Cards'), ('optref_b', 'cat', 'Cards'), ('optref_b', 'cat_b', 'B only');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id) VALUES
    ('optref_a', 'gold', 'Gold', 'cat'), ('optref_b', 'gold', 'Gold', 'cat');
INSERT INTO kaireon.content_items (tenant_id, id, name, channel_type, parent_template_id) VALUES
    ('optref_a', 'tpl', 'Template', 'email', NULL),
    ('optref_a', 'mid', 'Middle', 'email', 'tpl'),
    ('optref_a', 'leaf', 'Leaf', 'email', 'mid'),
    ('optref_a', 'tpl2', 'Template 2', 'email', NULL),
    ('optref_a', 'child2', 'Child 2', 'email', 'tpl2'),
    ('optref_b', 'tpl', 'Template', 'email', NULL),
    ('optref_b', 'mid', 'Middle', 'email', 'tpl');

-- A child pointing to a missing parent is still refused (23503).
\set VERBOSITY sqlstate
INSERT INTO kaireon.offers (tenant_id, id, name, category_id) VALUES ('optref_a', 'bad', 'Bad', 'no_such_category');
-- ... also the parent of another tenant
INSERT INTO kaireon.offers (tenant_id, id, name, category_id) VALUES ('optref_a', 'bad', 'Bad', 'cat_b');
UPDATE kaireon.content_items SET parent_template_id = 'nothing' WHERE tenant_id = 'optref_a' AND id = 'leaf';
\set VERBOSITY terse

-- An application role that may delete categories but not update offers deletes one: the
-- reference is nulled as by a key action (as the offers' owner), in its tenant only.
CREATE ROLE regress_optref_deleter;
SELECT kaireon.grant_app_role('regress_optref_deleter');
REVOKE UPDATE ON kaireon.offers FROM regress_optref_deleter;
SET ROLE regress_optref_deleter;
SET kaireon.tenant_id = 'optref_a';
UPDATE kaireon.offers SET category_id = NULL;
DELETE FROM kaireon.categories WHERE id = 'cat';
RESET kaireon.tenant_id;
RESET ROLE;
SELECT tenant_id, id, category_id FROM kaireon.offers WHERE tenant_id LIKE 'optref_%' ORDER BY 1, 2;
SELECT tenant_id, id FROM kaireon.categories WHERE tenant_id LIKE 'optref_%' ORDER BY 1, 2;

-- The audit chain records the nulling as an update of the offer, as it did for the key action.
SELECT action, entity_type, entity_id, changed_fields, before ->> 'category_id' AS before_category,
       after ->> 'category_id' AS after_category
  FROM kaireon.audit_logs
 WHERE tenant_id = 'optref_a' AND entity_type IN ('offers', 'categories') AND action <> 'create'
 ORDER BY id;
SELECT intact, verified FROM kaireon.verify_audit_chain('optref_a');

-- A self-reference: deleting a template nulls its children's parent_template_id; deleting a
-- parent and its child in one statement (either order of the rows) works, and the
-- grandchild's reference is nulled.
DELETE FROM kaireon.content_items WHERE tenant_id = 'optref_a' AND id = 'tpl2';
DELETE FROM kaireon.content_items WHERE tenant_id = 'optref_a' AND id IN ('tpl', 'mid');
SELECT tenant_id, id, parent_template_id FROM kaireon.content_items WHERE tenant_id LIKE 'optref_%' ORDER BY 1, 2;
-- (here the child comes first in the table and last by id; above, the other way round)
INSERT INTO kaireon.content_items (tenant_id, id, name, channel_type, parent_template_id) VALUES
    ('optref_a', 'z3', 'Z3', 'email', 'a3'), ('optref_a', 'a3', 'A3', 'email', NULL),
    ('optref_a', 'g3', 'G3', 'email', 'z3');
DELETE FROM kaireon.content_items WHERE tenant_id = 'optref_a' AND id IN ('a3', 'z3');
SELECT id, parent_template_id FROM kaireon.content_items WHERE tenant_id = 'optref_a' ORDER BY id;

-- Deleting a tenant deletes its rows (parents and children at once, self-references
-- included) and leaves the other tenant's rows with the same ids alone.
INSERT INTO kaireon.content_items (tenant_id, id, name, channel_type, parent_template_id) VALUES
    ('optref_a', 'tpl', 'Template', 'email', NULL), ('optref_a', 'mid', 'Middle', 'email', 'tpl');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('optref_a', 'cat', 'Cards');
UPDATE kaireon.offers SET category_id = 'cat' WHERE tenant_id = 'optref_a';
DELETE FROM kaireon.tenants WHERE id = 'optref_a';
SELECT 'content_items' AS tbl, tenant_id, id, parent_template_id AS ref FROM kaireon.content_items WHERE tenant_id LIKE 'optref_%'
UNION ALL
SELECT 'offers', tenant_id, id, category_id FROM kaireon.offers WHERE tenant_id LIKE 'optref_%'
 ORDER BY 1, 2, 3;
SELECT intact FROM kaireon.verify_audit_chain('optref_a');

DELETE FROM kaireon.tenants WHERE id = 'optref_b';
DROP VIEW public.optional_refs;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_optref_deleter';
DROP OWNED BY regress_optref_deleter;
DROP ROLE regress_optref_deleter;
-- the audit log is append-only: only with triggers off (a superuser) do its rows go
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs WHERE tenant_id IN ('optref_a', 'optref_b');
DELETE FROM kaireon.audit_chain_heads WHERE tenant_id IN ('optref_a', 'optref_b');
RESET session_replication_role;
