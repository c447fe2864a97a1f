# pg_dump and parallel pg_restore (docs/schema.md, "Dump and restore").
#
# A plain `pg_restore -j N` cannot restore kaireon's tables: CREATE EXTENSION makes them with
# their foreign keys, pg_dump puts their data in foreign-key order in the archive, but a
# parallel restore follows only the archive's dependency list, where a table's data depends on
# nothing but its table, so child rows are loaded before their parents (23503). Checked here:
# pg_dump warns only about the two self-referencing foreign keys (harmless: a table's rows are
# loaded by one COPY, whose foreign-key checks run at its end); the documented restore (the
# extension's own tables serially, then the partitions, tenant data tables, indexes and
# constraints with -j 2) restores every row and policy, and the restored database works.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonCensus;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('parallel_restore');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION kaireon');
my ($rc, $out, $err) = $node->psql('src', undef,
    extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', 'test/fixtures/demo_tenant.sql' ]);
is($rc, 0, 'demo tenant loads') or diag($err);
# a second month of history, so that two partitions are loaded in parallel
$node->safe_psql('src', q{
    SELECT kaireon.create_interaction_partitions(1, (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '2 months')::date);
    INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, offer_id,
                                             creative_id, channel_id, placement_id, occurred_at)
    SELECT tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, creative_id, channel_id, placement_id,
           occurred_at - interval '1 month'
      FROM kaireon.interaction_history;
});

my $census = census_sql();
my $policies = policies_sql();
my $before = $node->safe_psql('src', $census);
my $policies_before = $node->safe_psql('src', $policies);
is($node->safe_psql('src', q{SELECT count(DISTINCT tableoid) >= 2 AND bool_and(tableoid::regclass::text ~ '_p\d{4}_\d{2}$')
                                FROM kaireon.interaction_history}),
    't', 'history in two or more monthly partitions');

# pg_dump: the only warnings are the two self-references (a table referencing itself).
my $dump = $node->basedir . '/kaireon.dump';
my ($stdout, $stderr) = ('', '');
ok(IPC::Run::run([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], '>', \$stdout, '2>', \$stderr),
    'pg_dump');
my @warned = sort ($stderr =~ /circular foreign-key constraints on this table:\npg_dump: detail: (\w+)/g);
is_deeply(\@warned, [ 'content_items', 'data_schemas' ], 'pg_dump warns only about the two self-referencing tables');
my $other = $stderr =~ s/pg_dump: warning: there are circular foreign-key constraints on this table:\npg_dump: detail: \w+\n(pg_dump: hint: .*\n)*//gr;
is($other, '', 'pg_dump prints nothing else');

# The documented parallel restore (docs/schema.md), run as written.
$node->safe_psql('postgres', 'CREATE DATABASE dst');
my $dir = $node->basedir;
my $script = <<'EOS';
set -eu
cd "$DIR"
pg_restore -l kaireon.dump > toc.list
grep -E '^[0-9]+; [0-9]+ [0-9]+ TABLE DATA kaireon ' toc.list \
    | grep -vE ' TABLE DATA kaireon interaction_history_p[0-9]{4}_[0-9]{2} ' > kaireon_data.list
grep -vxF -f kaireon_data.list toc.list > rest.list
pg_restore --exit-on-error -d "$DB" --section=pre-data kaireon.dump
pg_restore --exit-on-error -d "$DB" -L kaireon_data.list kaireon.dump
pg_restore --exit-on-error -d "$DB" -j 2 --section=data --section=post-data -L rest.list kaireon.dump
EOS
($stdout, $stderr) = ('', '');
ok(IPC::Run::run([ 'bash', '-c', $script ], '>', \$stdout, '2>', \$stderr,
        init => sub { $ENV{DIR} = $dir; $ENV{DB} = $node->connstr('dst'); }),
    'the documented restore with pg_restore -j 2 succeeds') or diag($stderr);
is($stderr, '', 'and prints nothing');
like(slurp_file("$dir/kaireon_data.list"), qr/TABLE DATA kaireon tenants /, 'kaireon\'s own tables are restored first');
like(slurp_file("$dir/rest.list"), qr/TABLE DATA kaireon interaction_history_p\d{4}_\d{2} /,
    'the partitions are restored in parallel');

my $after = $node->safe_psql('dst', $census);
is($after, $before, 'every table has the same row count after the restore');
is($node->safe_psql('dst', $policies), $policies_before, 'row level security policies restored');
is($node->safe_psql('dst', q{SELECT kaireon.is_segment_member('acme', 'affluent', 'cust-42')}),
    't', 'restored segment view works');
is($node->safe_psql('dst', q{SELECT count(*) FROM kaireon.outcome_types WHERE tenant_id = 'acme' AND is_system}),
    $node->safe_psql('src', q{SELECT count(*) FROM kaireon.outcome_types WHERE tenant_id = 'acme' AND is_system}),
    'the system outcome types are seeded again');
$node->safe_psql('dst', q{SELECT kaireon.create_interaction_partitions(3)});
$node->safe_psql('dst', q{INSERT INTO kaireon.offers (tenant_id, name, status) VALUES ('acme', 'After restore', 'active')});
is($node->safe_psql('dst', q{SELECT count(*) FROM kaireon.offers WHERE tenant_id = 'acme'}), '8',
    'the restored database accepts new rows');

$node->stop;
done_testing();
