# The extension works when kaireon is not in shared_preload_libraries: the library loads on
# first use, settings set before the load keep their values, and the prefix is reserved after.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'), '', 'nothing preloaded');
$node->safe_psql('postgres', 'CREATE EXTENSION kaireon');
is($node->safe_psql('postgres', 'SELECT kaireon.version()'), '0.2.0', 'version() loads the module');

$node->safe_psql('postgres', q{
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('a', 'A', 'a'), ('b', 'B', 'b');
    INSERT INTO kaireon.offers (tenant_id, name) VALUES ('a', 'offer of a'), ('b', 'offer of b');
    CREATE ROLE app LOGIN;
    SELECT kaireon.grant_app_role('app');
});

# A fresh session sets kaireon.tenant_id before the library is loaded (a placeholder);
# the row level security policy then loads the library, which keeps the value.
is($node->safe_psql('postgres', q{SET kaireon.tenant_id = 'a'; SELECT string_agg(name, ',') FROM kaireon.offers},
    extra_params => [ '-U', 'app' ]), 'offer of a', 'placeholder setting drives row level security');

# Validation triggers work without preload.
my ($rc, $out, $err) = $node->psql('postgres', q{
    INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('a', 'bad', 'frequency_cap', '{"maxCount": "x", "period": "day"}')});
isnt($rc, 0, 'bad config refused');
like($err, qr/field "maxCount" must be integer, not string/, 'with the field named');

# Once loaded, the kaireon. prefix is reserved.
($rc, $out, $err) = $node->psql('postgres', q{SELECT kaireon.version(); SET kaireon.bogus = 1});
isnt($rc, 0, 'unknown kaireon. setting refused after load');
like($err, qr/invalid configuration parameter name "kaireon\.bogus"/, 'with a clear message');

# A pinned role keeps its tenant even without preload: the superuser-only setting comes from
# the role, and an attempt to set another tenant is refused once the library is loaded.
$node->safe_psql('postgres', q{CREATE ROLE pinned LOGIN; SELECT kaireon.grant_app_role('pinned');
    ALTER ROLE pinned SET kaireon.pinned_tenant_id = 'a'});
is($node->safe_psql('postgres', q{SELECT string_agg(name, ',') FROM kaireon.offers},
    extra_params => [ '-U', 'pinned' ]), 'offer of a', 'pinned role sees its tenant');
($rc, $out, $err) = $node->psql('postgres', q{SELECT kaireon.version(); SET kaireon.tenant_id = 'b'},
    extra_params => [ '-U', 'pinned' ]);
isnt($rc, 0, 'pinned role cannot switch tenant');

# Setting the superuser-only pin (or another tenant) before the library is loaded does not
# get around it: the values are refused when the library loads.
($rc, $out, $err) = $node->psql('postgres',
    q{SET kaireon.pinned_tenant_id = 'b'; SET kaireon.tenant_id = 'b'; SELECT string_agg(name, ',') FROM kaireon.offers},
    extra_params => [ '-U', 'pinned' ]);
is($out, 'offer of a', 'settings made before the load cannot move a pinned role to another tenant');

# The statistics and the progress live in shared memory, made at server start: without
# preload, reading them (or resetting) raises 55000 naming shared_preload_libraries.
for my $sql ('SELECT * FROM kaireon.stat_decisions', 'SELECT kaireon.stat_reset()', 'SELECT * FROM kaireon.progress') {
    ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
    isnt($rc, 0, "$sql: refused without preload");
    like($err, qr/ERROR:  55000: kaireon must be loaded via "shared_preload_libraries" to use kaireon\.(stat_decisions|stat_reset\(\)|progress)\n/,
        "$sql: 55000 naming shared_preload_libraries");
    like($err, qr/HINT:  Add kaireon to shared_preload_libraries in postgresql\.conf and restart the server\./, "$sql: with the hint");
}
# ... while the internal progress helpers (distribute's) do nothing
is($node->safe_psql('postgres', q{SELECT kaireon_internal._progress_start('distribute', NULL, 1);
    SELECT kaireon_internal._progress_end(); SELECT 'ok'}), "\n\nok", 'progress helpers are no-ops without preload');

$node->stop;
done_testing();
