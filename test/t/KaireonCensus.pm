# KaireonCensus: what the dump and restore TAP tests compare before and after. census_sql
# counts the rows of every table and view of schema kaireon and of the tenant data schemas
# (one "schema.table=n" line each); policies_sql lists every row security policy.
package KaireonCensus;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT = qw(census_sql policies_sql);

# The query counting every kaireon and tenant data table's rows, as one text block.
sub census_sql
{
	return q{
    SELECT string_agg(format('%s.%s=%s', n.nspname, c.relname,
               (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM ONLY %I.%I', n.nspname, c.relname), false, true, '')))[1]::text),
           E'\n' ORDER BY n.nspname, c.relname)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE (n.nspname = 'kaireon' OR n.nspname LIKE 'kaireon\_t\_%') AND c.relkind IN ('r', 'v')
	};
}

# The query listing every row security policy (table.policy), as one text block.
sub policies_sql
{
	return q{
    SELECT string_agg(format('%s.%s', polrelid::regclass, polname), E'\n' ORDER BY polrelid::regclass::text, polname)
      FROM pg_policy
	};
}

1;
