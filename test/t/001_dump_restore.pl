# pg_dump of a database holding the demo tenant restores into a fresh database with
# identical row counts in every kaireon table and tenant data table, policies included.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonCensus;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION kaireon');
my ($rc, $out, $err) = $node->psql('src', undef,
    extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', 'test/fixtures/demo_tenant.sql' ]);
is($rc, 0, 'demo tenant loads') or diag($err);

# An outbox handler: stored as its signature text (docs/schema.md, "Functions named in
# tables"), which survives the restore though the restored function has another OID.
$node->safe_psql('src', q{
    CREATE TABLE public.hooked (event_id text);
    CREATE FUNCTION public.dump_hook(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
    LANGUAGE sql AS $$ INSERT INTO public.hooked VALUES (event_id) $$;
    INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('restored.topic', 'public.dump_hook(text,text,text,jsonb)');
});
my $hook_oid_before = $node->safe_psql('src', q{SELECT 'public.dump_hook(text,text,text,jsonb)'::regprocedure::oid});

# A decision lock row: decision_locks, like the history partitions, refers to its tenant by a
# checked reference (docs/schema.md), whose trigger checks each row as the restore loads it,
# so the tenant's row must be loaded first.
$node->safe_psql('src', q{INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('acme', 'cust-42')});

# Row counts of every table of schema kaireon and of the tenant data schemas, and the
# policies, as one text block to compare.
my $census = census_sql();
my $policies = policies_sql();
my $before = $node->safe_psql('src', $census);
my $policies_before = $node->safe_psql('src', $policies);
like($before, qr/kaireon\.offers=7/, 'offers counted before the dump');
like($before, qr/kaireon_t_acme\.ds_customers=3/, 'tenant data table counted before the dump');
# the demo's four history rows are in monthly partitions (two of them on a month's first day)
my $in_months = 0;
$in_months += $1 while $before =~ /kaireon\.interaction_history_p\d{4}_\d{2}=(\d+)/g;
is($in_months, 4, 'history is in monthly partitions');
like($before, qr/kaireon\.interaction_history_default=0/, 'nothing in the default partition');

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('dst'), $dump ], 'pg_restore');

my $after = $node->safe_psql('dst', $census);
is($after, $before, 'every table has the same row count after restore');
is($node->safe_psql('dst', $policies), $policies_before, 'row level security policies restored');
is($node->safe_psql('dst', q{SELECT kaireon.is_segment_member('acme', 'affluent', 'cust-42')}),
    't', 'restored segment view works');
is($node->safe_psql('dst', q{SELECT name FROM kaireon.offers WHERE tenant_id = 'acme' AND id = 'gold-card'}),
    'Gold Card', 'restored rows have their values');

is($node->safe_psql('dst', q{SELECT handler FROM kaireon.outbox_handlers WHERE topic = 'restored.topic'}),
    'public.dump_hook(text,text,text,jsonb)', 'outbox handler restored as its signature text');
isnt($node->safe_psql('dst', q{SELECT 'public.dump_hook(text,text,text,jsonb)'::regprocedure::oid}), $hook_oid_before,
    'the restored handler function has another OID');
$node->safe_psql('dst', q{INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('acme', 'ev-restored', 'restored.topic')});
$node->safe_psql('dst', q{SELECT kaireon.publish_outbox()});
is($node->safe_psql('dst', q{SELECT string_agg(event_id, ',') FROM public.hooked}), 'ev-restored',
    'the restored handler is found by its signature and called');

# The restored database is a working kaireon database: new partitions and new rows go in.
$node->safe_psql('dst', q{SELECT kaireon.create_interaction_partitions(3)});
$node->safe_psql('dst', q{INSERT INTO kaireon.offers (tenant_id, name, status) VALUES ('acme', 'After restore', 'active')});
is($node->safe_psql('dst', q{SELECT count(*) FROM kaireon.offers WHERE tenant_id = 'acme'}), '8', 'restored database accepts new rows');

$node->stop;
done_testing();
