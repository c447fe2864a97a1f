# The audit chain under concurrency, checked twice: pgbench with 8 clients changes offers of
# one tenant, of eight tenants, and of two tenants in one transaction; afterwards every chain
# is intact and linear by kaireon.verify_audit_chain, and the independent verifier
# test/verify_audit_chain.py (Python standard library, written from docs/audit.md) agrees,
# on rows with escapes and non-ASCII text, the chain without a tenant and a retention anchor
# too. A tampered row is found by both, at the same row and for the same reason.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $python = '/usr/bin/python3';
my $verifier = 'test/verify_audit_chain.py';

my $node = PostgreSQL::Test::Cluster->new('audit');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'\nmax_connections = 30");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION kaireon;
    INSERT INTO kaireon.tenants (id, name, slug) SELECT 't' || i, 'Tenant ' || i, 't' || i FROM generate_series(0, 8) i;
    INSERT INTO kaireon.offers (tenant_id, id, name)
        SELECT 't' || t, 'o' || i, 'Offer ' || i FROM generate_series(0, 8) t, generate_series(1, 20) i;
});

# 8 clients, one tenant: every change waits for the chain of t0
$node->pgbench('-n -c 8 -j 2 -t 150', 0, [qr{processed: 1200/1200}], [qr{^$}],
    'pgbench: 8 clients change one tenant',
    { 'one_tenant' => q{
\set i random(1, 20)
UPDATE kaireon.offers SET priority = (priority + 1) % 100, name = 'Offer ' || :client_id WHERE tenant_id = 't0' AND id = 'o' || :i;
} });
# 8 clients, each its own tenant, and transactions changing two tenants (in tenant order)
$node->pgbench('-n -c 8 -j 2 -t 100', 0, [qr{processed: 800/800}], [qr{^$}],
    'pgbench: 8 clients, eight tenants and two-tenant transactions',
    { 'own_tenant@3' => q{
\set i random(1, 20)
UPDATE kaireon.offers SET priority = (priority + 1) % 100 WHERE tenant_id = 't' || (:client_id % 8 + 1) AND id = 'o' || :i;
},
      'two_tenants@1' => q{
\set i random(1, 20)
\set a random(1, 4)
BEGIN;
UPDATE kaireon.offers SET value = value + 1 WHERE tenant_id = 't' || :a AND id = 'o' || :i;
UPDATE kaireon.offers SET value = value + 1 WHERE tenant_id = 't' || (:a + 4) AND id = 'o' || :i;
COMMIT;
} });

is($node->safe_psql('postgres', q{SELECT count(*) FROM kaireon.audit_logs WHERE tenant_id = 't0' AND action = 'update'}),
    '1200', 'one audit row per change of the shared tenant');
my $chains = q{
    SELECT string_agg(format('%s:%s:%s', t.id, v.intact, v.verified = v.total), ' ' ORDER BY t.id)
      FROM kaireon.tenants t, kaireon.verify_audit_chain(t.id) v
};
my $expect = join(' ', map { "t$_:t:t" } 0 .. 8);
is($node->safe_psql('postgres', $chains), $expect, 'every chain is intact after concurrent writers');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM (
        SELECT tenant_id, chain_seq, row_number() OVER w AS pos, prev_hash,
               lag(integrity_hash) OVER w AS prev
          FROM kaireon.audit_logs WINDOW w AS (PARTITION BY tenant_id ORDER BY id)) s
     WHERE chain_seq <> pos OR prev_hash <> coalesce(prev, repeat('0', 64))}),
    '0', 'each chain is linear: positions 1..n in id order, each row linked to the one before');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM kaireon.audit_chain_heads h
     WHERE h.last_hash <> (SELECT integrity_hash FROM kaireon.audit_logs l
                            WHERE l.tenant_id IS NOT DISTINCT FROM h.tenant_id ORDER BY id DESC LIMIT 1)}),
    '0', 'every chain head names its last row');

# Rows the independent verifier must get right: escapes, control characters, non-ASCII, a
# row without a tenant, and a chain whose prefix retention removed.
$node->safe_psql('postgres', <<'SQL');
SET kaireon.user_id = E'user "quoted" \\ with\ttab';
SET kaireon.request_id = 'req-ünïcødé-€-😀';
INSERT INTO kaireon.offers (tenant_id, id, name, description)
    VALUES ('t1', E'odd "id" \\', E'line\nbreak\u0001ctl', E'emoji 😀 slash / del \u007f');
INSERT INTO kaireon.users (id, email) VALUES ('platform', 'root@example.com');
SELECT kaireon.purge_audit_chain('t2', now() + interval '1 day', 50);
SQL

my $export = $node->basedir . '/audit_rows.jsonl';
sub export_rows
{
    my $rows = $node->safe_psql('postgres', q{
        SELECT json_build_object('id', id, 'tenant_id', tenant_id, 'chain_seq', chain_seq, 'action', action,
                   'entity_type', entity_type, 'entity_id', entity_id, 'user_id', user_id,
                   'request_id', request_id, 'session_user_name', session_user_name,
                   'before', before::text, 'after', after::text, 'changed_fields', changed_fields,
                   'entity_version', entity_version, 'prev_hash', prev_hash,
                   'integrity_hash', integrity_hash, 'created_at', created_at)
          FROM kaireon.audit_logs ORDER BY id});
    open(my $fh, '>:raw', $export) or die "cannot write $export: $!";
    print $fh $rows, "\n";
    close($fh);
}

export_rows();
my ($stdout, $stderr);
my $ok = IPC::Run::run([ $python, $verifier, $export ], '>', \$stdout, '2>', \$stderr);
ok($ok, 'the independent verifier accepts every chain') or diag("$stdout\n$stderr");
like($stdout, qr/^\(no tenant\): \d+ rows intact$/m, 'including the chain without a tenant');
like($stdout, qr/^t1: \d+ rows intact$/m, 'and the rows with escapes and non-ASCII text');
like($stdout, qr/^t2: \d+ rows intact$/m, 'and the chain that starts at a retention anchor');
is(scalar(() = $stdout =~ /rows intact/g), 10, 'ten chains (nine tenants and the one without)');
is($node->safe_psql('postgres', q{SELECT min(chain_seq) > 1 FROM kaireon.audit_logs WHERE tenant_id = 't2'}),
    't', 't2 really starts after a removed prefix');

# Tamper with one row (triggers off, as a superuser): both verifiers name it.
my $victim = $node->safe_psql('postgres',
    q{SELECT id FROM kaireon.audit_logs WHERE tenant_id = 't0' AND action = 'update' ORDER BY id OFFSET 500 LIMIT 1});
$node->safe_psql('postgres', qq{
    SET session_replication_role = replica;
    UPDATE kaireon.audit_logs SET after = '{"priority": 1}' WHERE id = $victim;
});
is($node->safe_psql('postgres', q{SELECT broken_at_id || ' ' || broken_reason FROM kaireon.verify_audit_chain('t0')}),
    "$victim hash_mismatch", 'kaireon finds the tampered row');
export_rows();
$ok = IPC::Run::run([ $python, $verifier, $export ], '>', \$stdout, '2>', \$stderr);
ok(!$ok, 'the independent verifier fails on the tampered chain');
like($stdout, qr/^t0: broken at id $victim \(hash_mismatch\)/m, 'and names the same row and reason');
like($stdout, qr/^t1: \d+ rows intact$/m, 'other chains are still intact');

$node->stop;
done_testing();
