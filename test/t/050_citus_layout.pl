# kaireon.distribute() on a Citus cluster (docs/scale-out.md): a coordinator and two workers,
# two tenants loaded before the call (test/fixtures/demo_tenant.sql). distribute() places every
# table: kaireon.tenants distributed by id, every table with a tenant_id distributed by it and
# co-located with tenants, the tenant-less tables reference tables except the node-local ones
# (kaireon_internal._node_local_tables()), the tenants' ds_* tables distributed next to their
# tenant; it delegates the entry points; the rows are all still there, read through the
# coordinator, and the audit chains verify. A second call changes nothing, and a tenant
# published afterwards has its data table distributed too. On a plain kaireon node the call
# fails with 0A000 and a hint, and nothing changes.
# Skipped when the citus library is not installed (Citus is not in Debian's archive).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use KaireonCitus;

my $pkglibdir = pkglibdir();
plan skip_all => 'Citus is not installed (its library citus.so is not in ' . $pkglibdir . '); see docs/scale-out.md'
  unless citus_installed();

my ($coord, @workers) = start_cluster('layout', 2);
is(load_tenant($coord, 'acme'), 0, 'tenant acme loaded on the coordinator');
is(load_tenant($coord, 'globex'), 0, 'tenant globex loaded on the coordinator');
my $before = census($coord);
like($before, qr/^kaireon\.offers=14$/m, 'the census counts both tenants\' offers');
my $chains = q{SELECT string_agg(format('%s:%s:%s', t, v.intact, v.total), ',' ORDER BY t)
                 FROM unnest(ARRAY['acme', 'globex']) t, LATERAL kaireon.verify_audit_chain(t) v};
my $chains_before = $coord->safe_psql('postgres', $chains);
like($chains_before, qr/^acme:t:\d+,globex:t:\d+$/, 'both audit chains verify before distribute()');

# The first call: every table placed.
my ($ret, $layout, $err) = (undef, '', '');
$ret = $coord->psql('postgres',
	q{SELECT table_name, placement, coalesce(distribution_column, '-'), coalesce(colocated_with, '-'), shards, changed
        FROM kaireon.distribute(8)},
	stdout => \$layout, stderr => \$err);
is($ret, 0, 'distribute() succeeds') or diag($err);
my %placed = map { my @f = split /\|/; ($f[0] => [ @f[1 .. 5] ]) } split /\n/, $layout;

# What the layout must be, from the catalogs of the coordinator.
my $tables = $coord->safe_psql('postgres', q{
    SELECT c.relname, EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1});
my @local = split /\n/, $coord->safe_psql('postgres', 'SELECT * FROM kaireon_internal._node_local_tables() ORDER BY 1');
my %is_local = map { $_ => 1 } @local;
my @wrong;
my $nkaireon = 0;
for my $line (split /\n/, $tables)
{
	my ($t, $has_tenant) = split /\|/, $line;
	$nkaireon++;
	my $want = $t eq 'tenants' ? 'distributed|id|-|8'
	  : $has_tenant eq 't' ? 'distributed|tenant_id|tenants|8'
	  : $is_local{$t} ? 'local|-|-|0'
	  : 'reference|-|-|1';
	my $got = $placed{$t} ? join('|', @{ $placed{$t} }[ 0 .. 3 ]) : 'missing';
	push @wrong, "$t: $got (want $want)" if $got ne $want;
}
is(join("\n", @wrong), '', "every one of the $nkaireon kaireon tables is placed as it should be");
is(join(',', sort grep { $placed{$_}[0] eq 'local' } keys %placed), join(',', sort @local),
	'only the node-local tables stay local: ' . join(', ', @local));
is(join(',', map { "$_=" . join('|', @{ $placed{$_} }[ 0 .. 3 ]) } sort grep { /\.ds_/ } keys %placed),
	'kaireon_t_acme.ds_customers=distributed|tenant_id|tenants|8,kaireon_t_globex.ds_customers=distributed|tenant_id|tenants|8',
	'the tenants\' ds_ tables are distributed by tenant_id next to their tenant');
is(scalar(grep { $_->[4] ne 't' && $_->[0] ne 'local' } values %placed), 0, 'the first call reports every table it placed as changed');

# Citus's own metadata agrees: one co-location group for all distributed tables.
is($coord->safe_psql('postgres', q{
    SELECT count(DISTINCT p.colocationid) || ':' || count(*) FILTER (WHERE column_to_column_name(p.logicalrelid, p.partkey) = 'tenant_id')
      FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE p.partmethod = 'h' AND NOT c.relispartition}),
	'1:' . (scalar(grep { $_->[0] eq 'distributed' } values %placed) - 1),
	'pg_dist_partition: every distributed table in the co-location group of kaireon.tenants, by tenant_id');
my $delegated = $coord->safe_psql('postgres', q{
    SELECT string_agg(format('%s:%s:%s', o.objid::regprocedure, o.distribution_argument_index, o.force_delegation), E'\n' ORDER BY o.objid::regprocedure::text)
      FROM pg_dist_object o
     WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index IS NOT NULL});
is($delegated, $coord->safe_psql('postgres', q{
    SELECT string_agg(format('%s:%s:t', d.fn::regprocedure, array_position(p.proargnames, d.tenant_arg) - 1), E'\n' ORDER BY d.fn::regprocedure::text)
      FROM kaireon_internal._delegated_functions() d JOIN pg_proc p ON p.oid = d.fn::regprocedure}),
	'the functions of kaireon_internal._delegated_functions() are delegated by their tenant argument, forced');
for my $fn ('recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamp with time zone,text)',
	'recommend_json(text,jsonb)', 'respond_json(text,jsonb)', 'respond_bulk(text,jsonb)')
{
	like($delegated, qr/^kaireon\.\Q$fn\E:0:t$/m, "kaireon.$fn is delegated by its tenant argument (the first)");
}

# The rows are all there, read through the coordinator, and the chains still verify.
same_rows(census($coord), $before, 'every table holds the same rows after distribute()');
is($coord->safe_psql('postgres', $chains), $chains_before, 'both audit chains verify after distribute(), as long as before');
# (the coordinator's own copy of a distributed table is emptied: its rows are in the shards)
is($coord->safe_psql('postgres', q{
    SELECT string_agg(c.oid::regclass::text, ',' ORDER BY 1)
      FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
     WHERE p.partmethod = 'h' AND c.relkind = 'r' AND pg_relation_size(c.oid) > 0}),
	'', 'the coordinator keeps no rows of its own in the distributed tables');

# The two tenants end on different workers (moving one when they share one).
place_apart($coord, 'acme', 'globex', @workers);
isnt(worker_of($coord, 'acme'), worker_of($coord, 'globex'), 'acme and globex are on different workers');
same_rows(census($coord), $before, 'every table holds the same rows after the move');

# The second call changes nothing and reports the same layout.
my $again = $coord->safe_psql('postgres',
	q{SELECT table_name, placement, coalesce(distribution_column, '-'), coalesce(colocated_with, '-'), shards, changed
        FROM kaireon.distribute(8)});
is(scalar(grep { /\|t$/ } split /\n/, $again), 0, 'a second call reports no table changed');
(my $first = $layout) =~ s/\|[tf]$//mg;
(my $second = $again) =~ s/\|[tf]$//mg;
is($second, $first, 'and the same layout');
same_rows(census($coord), $before, 'and the rows are the same');

# A tenant published after distribute() gets its data table distributed next to it.
is(load_tenant($coord, 'initech'), 0, 'tenant initech loaded after distribute()');
is($coord->safe_psql('postgres', q{
    SELECT format('%s|%s|%s', partmethod, column_to_column_name(logicalrelid, partkey),
                  colocationid = (SELECT colocationid FROM pg_dist_partition WHERE logicalrelid = 'kaireon.tenants'::regclass))
      FROM pg_dist_partition WHERE logicalrelid = 'kaireon_t_initech.ds_customers'::regclass}),
	'h|tenant_id|t', 'publish_data_schema distributes the new tenant\'s ds_customers next to it');
is($coord->safe_psql('postgres', q{SELECT count(*) FROM kaireon_t_initech.ds_customers}), '3',
	'its customers are there');
is($coord->safe_psql('postgres', q{SELECT intact FROM kaireon.verify_audit_chain('initech')}), 't',
	'its audit chain verifies');

# A cluster where kaireon was in service before distribute(): an application role granted and
# pinned (platform audit rows), then distribute(); the role still reads its tenant's rows.
my ($coord2, $worker2) = start_cluster('inservice', 1);
is(load_tenant($coord2, 'acme'), 0, 'in service: tenant acme loaded');
$ret = $coord2->psql('postgres', q{
    CREATE ROLE app LOGIN; SELECT kaireon.grant_app_role('app');
    ALTER ROLE app SET kaireon.pinned_tenant_id = 'acme';}, stderr => \$err);
is($ret, 0, 'in service: an application role granted and pinned to acme') or diag($err);
my $platform = $coord2->safe_psql('postgres', q{SELECT intact || ':' || total FROM kaireon.verify_audit_chain(NULL)});
like($platform, qr/^true:[1-9]\d*$/, 'in service: the platform audit chain holds rows and verifies');
$ret = $coord2->psql('postgres', 'SELECT count(*) FROM kaireon.distribute()', stderr => \$err);
is($ret, 0, 'in service: distribute() succeeds') or diag($err);
is($coord2->safe_psql('postgres', q{SELECT intact || ':' || total FROM kaireon.verify_audit_chain(NULL)}), $platform,
	'in service: the platform audit chain verifies after distribute(), as long as before');
my $out = '';
$err = '';
$coord2->psql('postgres', 'SELECT count(*) FROM kaireon.offers', stdout => \$out, stderr => \$err,
	extra_params => [ '-U', 'app' ]);
is($out . $err, '7', 'in service: the pinned application role reads its tenant\'s offers through the coordinator');
$_->stop for ($coord2, $worker2);

# Without Citus: an error with a hint, and nothing changed.
my $plain = start_single('plain');
is(load_tenant($plain, 'acme'), 0, 'tenant acme loaded on a plain kaireon node');
my $plain_before = census($plain);
my $constraints = q{SELECT count(*) FROM pg_constraint WHERE connamespace = 'kaireon'::regnamespace};
my $plain_constraints = $plain->safe_psql('postgres', $constraints);
$ret = $plain->psql('postgres', qq{\\set VERBOSITY verbose\nSELECT * FROM kaireon.distribute();},
	stdout => \$out, stderr => \$err);
isnt($ret, 0, 'distribute() fails without Citus');
like($err, qr/ERROR:  0A000: kaireon\.distribute\(\) needs the Citus extension, which is not installed in database postgres/,
	'with 0A000 (feature_not_supported), naming the database');
like($err, qr/HINT:  kaireon runs on one server as it is; to scale out, install Citus .* See docs\/scale-out\.md\./,
	'and a hint saying what to do');
same_rows(census($plain), $plain_before, 'no row changed');
is($plain->safe_psql('postgres', $constraints), $plain_constraints, 'no constraint changed (the slug stays unique)');
is($plain->safe_psql('postgres', q{SELECT intact FROM kaireon.verify_audit_chain('acme')}), 't',
	'the plain node\'s audit chain verifies');

$plain->stop;
$_->stop for ($coord, @workers);
done_testing();
