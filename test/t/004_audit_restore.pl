# A dump restores the audit log exactly: pg_restore (custom format) and a plain SQL dump fed
# to psql load the rows of the audited tables without appending to the
# audit chains (a restore session is recognised, docs/audit.md), the audit rows and chain
# heads come back byte for byte, every chain verifies, and the restored database appends to
# the restored chains (ids and positions continue). Encrypted settings come back readable.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $key = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
my $node = PostgreSQL::Test::Cluster->new('restore');
$node->init(extra => [ '--encoding=UTF8', '--locale=C' ]);
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'\nkaireon.settings_encryption_key = '$key'");
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION kaireon');
my ($rc, $out, $err) = $node->psql('src', undef,
    extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', 'test/fixtures/demo_tenant.sql' ]);
is($rc, 0, 'demo tenant loads') or diag($err);
$node->safe_psql('src', q{
    SET kaireon.user_id = 'u-1';
    UPDATE kaireon.offers SET priority = (priority + 1) % 100 WHERE tenant_id = 'acme';
    UPDATE kaireon.offers SET deleted_at = now() WHERE tenant_id = 'acme' AND id = 'gold-card';
    INSERT INTO kaireon.platform_users (id, email) VALUES ('platform', 'root@example.com');
    SELECT kaireon.set_setting('acme', 'sms', 'token', 'sms-secret', encrypted => true);
    SELECT kaireon.purge_audit_chain('acme', now() + interval '1 day', 5);
});

# The audit log and heads, as one text block to compare; and every chain's verification.
my $log = q{
    SELECT md5(string_agg(concat_ws('|', id, tenant_id, chain_seq, action, entity_type, entity_id, user_id,
                                    before::text, after::text, changed_fields::text, prev_hash, integrity_hash,
                                    created_at), E'\n' ORDER BY id)) || ' ' || count(*) || ' ' || max(id)
      FROM kaireon.audit_logs
};
my $heads = q{
    SELECT string_agg(concat_ws('|', tenant_id, last_id, last_seq, last_hash), E'\n' ORDER BY tenant_id NULLS FIRST)
      FROM kaireon.audit_chain_heads
};
my $verify = q{
    SELECT string_agg(coalesce(c.tenant_id, '-') || ':' || v.intact || ':' || (v.verified = v.total), ' ' ORDER BY c.tenant_id NULLS FIRST)
      FROM (SELECT DISTINCT tenant_id FROM kaireon.audit_logs) c, kaireon.verify_audit_chain(c.tenant_id) v
};
my $log_before = $node->safe_psql('src', $log);
my $heads_before = $node->safe_psql('src', $heads);
my $verify_before = $node->safe_psql('src', $verify);
unlike($verify_before, qr/:f/, 'the source chains are intact');
like($node->safe_psql('src', q{SELECT count(*) FROM kaireon.audit_logs WHERE action = 'anchor'}), qr/^1$/, 'with a retention anchor');

my $dump = $node->basedir . '/src.dump';
my $sql = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump -Fc');
$node->command_ok([ 'pg_dump', '-Fp', '-d', $node->connstr('src'), '-f', $sql ], 'pg_dump -Fp');

my %restore = (
    serial   => [ 'pg_restore', '--exit-on-error', '-d', undef, $dump ],
    plain    => [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', undef, '-f', $sql ]);
for my $how (sort keys %restore)
{
    my $db = "dst_$how";
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    my @cmd = map { defined $_ ? $_ : $node->connstr($db) } @{ $restore{$how} };
    $node->command_ok(\@cmd, "restore ($how)");
    is($node->safe_psql($db, $log), $log_before, "$how: the audit log is restored exactly, nothing appended");
    is($node->safe_psql($db, $heads), $heads_before, "$how: the chain heads are restored");
    is($node->safe_psql($db, $verify), $verify_before, "$how: every chain verifies");
    is($node->safe_psql($db, q{SELECT kaireon.get_setting('acme', 'sms', 'token')}), 'sms-secret',
        "$how: the encrypted setting is restored as ciphertext and reads back");

    # the restored database goes on appending to the restored chains
    my $state = q{SELECT (SELECT last_seq FROM kaireon.audit_chain_heads WHERE tenant_id = 'acme') || ' ' || (SELECT max(id) FROM kaireon.audit_logs)};
    my ($seq0, $id0) = split / /, $node->safe_psql($db, $state);
    $node->safe_psql($db, q{UPDATE kaireon.offers SET priority = 1 WHERE tenant_id = 'acme' AND id = 'gold-card'});
    my ($seq1, $id1) = split / /, $node->safe_psql($db, $state);
    ok($seq1 == $seq0 + 1 && $id1 > $id0, "$how: a new change continues the chain ($seq0 -> $seq1) with a new id ($id0 -> $id1)");
    is($node->safe_psql($db, q{SELECT intact FROM kaireon.verify_audit_chain('acme')}), 't', "$how: and it verifies");
}

# A superuser session that is not a restore is audited as usual.
$node->safe_psql('src', q{SET row_security = off; UPDATE kaireon.offers SET priority = 2 WHERE tenant_id = 'acme' AND id = 'gold-card'});
is($node->safe_psql('src', q{SELECT count(*) FROM kaireon.audit_logs WHERE entity_id = 'gold-card' AND after::jsonb ->> 'priority' = '2'}),
    '1', 'row_security = off alone does not make a restore session');

$node->stop;
done_testing();
