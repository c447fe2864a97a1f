-- Pins the schema: every table of schema kaireon with its columns, then every constraint,
-- read from the catalog. A change to the schema changes this output on purpose.
\pset format unaligned
\pset footer off
SELECT c.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type,
       CASE WHEN a.attnotnull THEN 'not null' ELSE '' END AS nullable,
       coalesce(pg_get_expr(d.adbin, d.adrelid), '') AS default_value
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.relname, a.attnum;
SELECT c.relname AS table_name, k.conname AS constraint_name, pg_get_constraintdef(k.oid) AS definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
 ORDER BY c.relname, k.conname;
SELECT count(*) AS tables FROM pg_class
 WHERE relnamespace = 'kaireon'::regnamespace AND relkind IN ('r', 'p');
