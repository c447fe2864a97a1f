-- type_lists: the CHECK constraints of the tables name exactly the C module's type lists
-- (src/config/types.h, one X-macro list per kind, given to SQL by kaireon_internal._type_names): the
-- qualification rule types, the contact policy types, the scope kinds of rules and
-- policies, and the identifier types of identity links; every other scope column allows a
-- subset of the scope kinds.
\pset format unaligned

-- The names each single-column "col IN (...)" CHECK of kaireon's tables allows.
CREATE TEMP VIEW type_checks AS
SELECT c.conrelid::regclass::text AS tbl, a.attname::text AS col,
       ARRAY(SELECT m[1] FROM regexp_matches(pg_get_constraintdef(c.oid), '''([^'']*)''::text', 'g') AS m
              ORDER BY 1) AS names
  FROM pg_constraint c
  JOIN pg_class r ON r.oid = c.conrelid
  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
 WHERE c.contype = 'c' AND cardinality(c.conkey) = 1 AND NOT r.relispartition
   AND r.relnamespace = 'kaireon'::regnamespace
   AND pg_get_constraintdef(c.oid) LIKE '%= ANY (ARRAY[%';

CREATE TEMP VIEW type_lists AS
SELECT k AS kind, ARRAY(SELECT n FROM kaireon_internal._type_names(k) AS n ORDER BY 1) AS names
  FROM unnest(ARRAY['qualification_rule', 'contact_policy', 'scope', 'identifier']) AS k;

-- the lists themselves, in list order (the C enum order)
SELECT k, string_agg(n, ', ' ORDER BY o)
  FROM unnest(ARRAY['qualification_rule', 'contact_policy', 'scope', 'identifier']) AS k,
       kaireon_internal._type_names(k) WITH ORDINALITY AS t(n, o)
 GROUP BY k ORDER BY k;

-- exactly the list: the type columns of rules and policies, the scope columns of rules, policies and their scopes
SELECT t.tbl, t.col, l.kind, t.names = l.names AS same
  FROM type_checks t
  JOIN type_lists l ON l.kind = CASE WHEN t.col = 'scope' THEN 'scope'
                                    WHEN t.col = 'identifier_type' THEN 'identifier'
                                    WHEN t.tbl = 'kaireon.qualification_rules' THEN 'qualification_rule'
                                    ELSE 'contact_policy' END
 WHERE (t.col = 'rule_type' AND t.tbl IN ('kaireon.qualification_rules', 'kaireon.contact_policies'))
    OR (t.col = 'scope' AND t.tbl IN ('kaireon.qualification_rules', 'kaireon.qualification_rule_scopes',
                                      'kaireon.contact_policies', 'kaireon.contact_policy_scopes'))
    OR (t.col = 'identifier_type' AND t.tbl = 'kaireon.identity_links')
 ORDER BY 1, 2;

-- a subset of the scope kinds: every other scope column
SELECT t.tbl, t.names <@ l.names AS subset
  FROM type_checks t JOIN type_lists l ON l.kind = 'scope'
 WHERE t.col = 'scope'
   AND t.tbl NOT IN ('kaireon.qualification_rules', 'kaireon.qualification_rule_scopes',
                     'kaireon.contact_policies', 'kaireon.contact_policy_scopes')
 ORDER BY 1;

-- another kind: 22023
\set VERBOSITY default
SELECT * FROM kaireon_internal._type_names('offer_type');
DO $$
BEGIN
    PERFORM kaireon_internal._type_names('offer_type');
EXCEPTION WHEN invalid_parameter_value THEN
    RAISE NOTICE 'SQLSTATE %', SQLSTATE;
END $$;
