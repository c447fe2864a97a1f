# The audit chain under concurrency, checked twice: pgbench with 8 clients changes offers of
# one tenant, of eight tenants, and of two tenants in one transaction; afterwards every chain
# is intact and linear by kaireon.verify_audit_chain, and the independent verifier
# test/verify_audit_chain.py (Python standard library, written from docs/audit.md) agrees,
# on rows with escapes and non-ASCII text, the chain without a tenant and a retention anchor
# too. A tampered row is found by both, at the same row and for the same reason. Digests kept
# from kaireon.audit_digest are checked by both, signature included: a tail removed with the
# head moved to match is found by both only with the digest kept before.
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
# a digest of t2 taken now: retention removes its row below (it predates the retained chain)
my $digest_file = $node->basedir . '/digests.jsonl';
my $early_t2 = $node->safe_psql('postgres', q{SELECT kaireon.audit_digest('t2')});

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
          FROM kaireon.audit_logs WINDOW w AS (PARTITION BY tenant_id ORDER BY chain_seq)) s
     WHERE chain_seq <> pos OR prev_hash <> coalesce(prev, repeat('0', 64))}),
    '0', 'each chain is linear: positions 1..n, each row linked to the one before');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM kaireon.audit_chain_heads h
     WHERE h.last_hash <> (SELECT integrity_hash FROM kaireon.audit_logs l
                            WHERE l.tenant_id = h.tenant_id ORDER BY chain_seq DESC LIMIT 1)}),
    '0', 'every chain head names its last row');

# Rows the independent verifier must get right: escapes, control characters, non-ASCII, a
# row without a tenant, and a chain whose prefix retention removed.
$node->safe_psql('postgres', <<'SQL');
SET kaireon.user_id = E'user "quoted" \\ with\ttab';
SET kaireon.request_id = 'req-ünïcødé-€-😀';
INSERT INTO kaireon.offers (tenant_id, id, name, description)
    VALUES ('t1', E'odd "id" \\', E'line\nbreak\u0001ctl', E'emoji 😀 slash / del \u007f');
INSERT INTO kaireon.platform_users (id, email) VALUES ('platform', 'root@example.com');
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
          FROM (SELECT id, tenant_id, chain_seq, action, entity_type, entity_id, user_id, request_id,
                       session_user_name, before, after, changed_fields, entity_version, prev_hash,
                       integrity_hash, created_at FROM kaireon.audit_logs
                UNION ALL
                SELECT id, NULL, chain_seq, action, entity_type, entity_id, user_id, request_id,
                       session_user_name, before, after, changed_fields, entity_version, prev_hash,
                       integrity_hash, created_at FROM kaireon.platform_audit_logs) r
         ORDER BY tenant_id, chain_seq});
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

# Digests of every chain, kept outside (a file), with the database's key for the signatures.
sub write_file
{
    my ($path, $text) = @_;
    open(my $fh, '>:raw', $path) or die "cannot write $path: $!";
    print $fh $text, "\n";
    close($fh);
}
my $digests = $node->safe_psql('postgres', q{
    SELECT string_agg(kaireon.audit_digest(t.id)::text, E'\n' ORDER BY t.id) FROM kaireon.tenants t});
$digests .= "\n" . $node->safe_psql('postgres', q{SELECT kaireon.audit_digest(NULL)});
write_file($digest_file, "$digests\n$early_t2");
my $key = $node->safe_psql('postgres', q{SELECT encode(key, 'hex') FROM kaireon.audit_digest_keys});
like($key, qr/^[0-9a-f]{64}$/, 'the database made one digest key');
$ok = IPC::Run::run([ $python, $verifier, $export, '--digest', $digest_file, '--key', $key ], '>', \$stdout, '2>', \$stderr);
ok($ok, 'the independent verifier accepts every digest') or diag("$stdout\n$stderr");
is(scalar(() = $stdout =~ /: matched \(signature checked\)$/mg), 10, 'each chain holds its digest\'s row, signatures checked');
like($stdout, qr/^t2: digest at id \d+ \(chain_seq \d+\): predates_chain \(signature checked\)$/m,
    'the digest taken before retention removed its row predates the retained chain');
is($node->safe_psql('postgres', qq{SELECT digest_status FROM kaireon.verify_audit_chain('t2', digest => '$early_t2')}),
    'predates_chain', 'and kaireon says the same');

# An edited digest: refused by both, for its signature.
my ($t3_digest) = grep { /"tenant_id": "t3"/ } split /\n/, $digests;
(my $edited = $t3_digest) =~ s/"chain_seq": (\d+)/'"chain_seq": ' . ($1 - 1)/e;
write_file($node->basedir . '/edited.jsonl', $edited);
$ok = IPC::Run::run([ $python, $verifier, $export, '--digest', $node->basedir . '/edited.jsonl', '--key', $key ],
    '>', \$stdout, '2>', \$stderr);
ok(!$ok, 'the independent verifier refuses an edited digest');
like($stdout, qr/^t3: digest at id \d+ refused: signature does not match$/m, 'for its signature');
my ($rc, $out, $err) = $node->psql('postgres', qq{SELECT * FROM kaireon.verify_audit_chain('t3', digest => '$edited')});
like($err, qr/audit digest signature does not match/, 'and so does kaireon');

# The tail of t3 removed and its head moved to match (a superuser, triggers off): each
# verifier finds the chain intact alone, and the digest's row gone with the kept digest.
$node->safe_psql('postgres', q{
    SET session_replication_role = replica;
    DELETE FROM kaireon.audit_logs WHERE id IN (SELECT id FROM kaireon.audit_logs WHERE tenant_id = 't3' ORDER BY id DESC LIMIT 5);
    UPDATE kaireon.audit_chain_heads h SET (last_id, last_seq, last_hash) =
           (SELECT id, chain_seq, integrity_hash FROM kaireon.audit_logs WHERE tenant_id = 't3' ORDER BY id DESC LIMIT 1)
     WHERE h.tenant_id = 't3';
});
is($node->safe_psql('postgres', q{SELECT intact FROM kaireon.verify_audit_chain('t3')}), 't',
    'tail truncation with the head moved: intact without a digest');
is($node->safe_psql('postgres', qq{SELECT broken_reason || ' ' || digest_status FROM kaireon.verify_audit_chain('t3', digest => '$t3_digest')}),
    'digest_mismatch mismatch', 'found with the digest kept before');
export_rows();
$ok = IPC::Run::run([ $python, $verifier, $export ], '>', \$stdout, '2>', \$stderr);
like($stdout, qr/^t3: \d+ rows intact$/m, 'the independent verifier alone finds nothing either');
$ok = IPC::Run::run([ $python, $verifier, $export, '--digest', $digest_file, '--key', $key ], '>', \$stdout, '2>', \$stderr);
ok(!$ok, 'with the kept digests it fails');
like($stdout, qr/^t3: digest at id \d+ \(chain_seq \d+\): mismatch \(signature checked\)$/m, 'naming the chain that lost its tail');
is(scalar(() = $stdout =~ /: matched \(signature checked\)$/mg), 9, 'the other chains still hold their digests\' rows');
$ok = IPC::Run::run([ $python, $verifier, $export, '--digest', $digest_file ], '>', \$stdout, '2>', \$stderr);
like($stdout, qr/^t3: digest at id \d+ \(chain_seq \d+\): mismatch \(signature not checked\)$/m,
    'and without the key as well (the kept hash is what counts)');

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
