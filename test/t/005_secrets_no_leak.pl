# Secrets never reach the server log, error messages or audit rows: API keys, OAuth client
# secrets, their HMACs, the plaintext of encrypted settings and the server-side pepper and
# encryption key, while keys are created and authenticated (rightly and wrongly), settings
# are written and read, and the operations that fail while holding a secret fail. The
# server-side secrets come from postgresql.conf, as docs/security.md recommends.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $pepper = '5f0e8a1c9b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f';
my $enckey = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
my $node = PostgreSQL::Test::Cluster->new('secrets');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'kaireon'
kaireon.api_key_pepper = '$pepper'
kaireon.settings_encryption_key = '$enckey'
log_min_messages = info
log_min_error_statement = error
log_statement = 'ddl'
log_error_verbosity = verbose
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION kaireon;
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('acme', 'Acme', 'acme');
    CREATE ROLE app LOGIN;
    SELECT kaireon.grant_app_role('app');
});
my @app = (extra_params => [ '-U', 'app' ]);
my $as_app = "SET kaireon.tenant_id = 'acme'; SET kaireon.user_id = 'u1';";

my @secrets = ($pepper, $enckey);
my ($key, $prefix) = split /\|/, $node->safe_psql('postgres',
    "$as_app SELECT api_key || '|' || prefix FROM kaireon.create_api_key('acme', 'svc')", @app);
like($key, qr/^krn_[0-9a-f]{64}$/, 'an API key is created');
my ($client, $secret) = split /\|/, $node->safe_psql('postgres',
    "$as_app SELECT client_id || '|' || client_secret FROM kaireon.create_oauth_client('acme', 'partner')", @app);
like($secret, qr/^kcs_[0-9a-f]{64}$/, 'an OAuth client is created');
push @secrets, $key, substr($key, 4), $secret, substr($secret, 4);
push @secrets, split /\n/, $node->safe_psql('postgres', q{
    SELECT hashed_key FROM kaireon.api_keys UNION ALL SELECT hashed_secret FROM kaireon.oauth_clients});

is($node->safe_psql('postgres', "$as_app SELECT tenant_id FROM kaireon.authenticate_api_key('$key')", @app),
    'acme', 'the key authenticates');
my $wrong = substr($key, 0, 20) . ('e' x 48);
push @secrets, substr($wrong, 4);
is($node->safe_psql('postgres', "SELECT count(*) FROM kaireon.authenticate_api_key('$wrong')", @app),
    '0', 'a wrong key does not');
is($node->safe_psql('postgres', "SELECT count(*) FROM kaireon.authenticate_oauth_client('$client', 'kcs_' || repeat('1', 64))", @app),
    '0', 'a wrong client secret does not');

my $plain = 'PLAINTEXT-token-8c1f';
push @secrets, $plain;
$node->safe_psql('postgres', "$as_app SELECT kaireon.set_setting('acme', 'sms', 'token', '$plain', encrypted => true)", @app);
is($node->safe_psql('postgres', "$as_app SELECT kaireon.get_setting('acme', 'sms', 'token')", @app),
    $plain, 'an encrypted setting reads back');

# Operations that fail while their statement holds a secret.
my $plain2 = 'PLAINTEXT-never-stored-41d2';
push @secrets, $plain2;
my ($rc, $out, $err) = $node->psql('postgres', qq{SET kaireon.settings_encryption_key = '';
    INSERT INTO kaireon.platform_settings (tenant_id, category, key, value, encrypted) VALUES ('acme', 'x', 'y', '$plain2', true)});
isnt($rc, 0, 'writing an encrypted setting without a key fails');
like($err, qr/kaireon\.settings_encryption_key is not set/, 'naming the missing setting');
# (a SET in a session is a statement, and a failing statement is logged: set the server-side
# secrets in postgresql.conf, as docs/security.md says; the message itself never repeats them)
my $badpepper = 'feedface' x 7 . 'zz';
($rc, $out, $err) = $node->psql('postgres', "SELECT 1; SET kaireon.api_key_pepper = '$badpepper'");
isnt($rc, 0, 'a malformed pepper is refused');
like($err, qr/kaireon\.api_key_pepper must/, 'with a message about its form');
unlike($err, qr/feedface/, 'that does not repeat the value');
($rc, $out, $err) = $node->psql('postgres', qq{SET kaireon.api_key_pepper = '';
    SELECT * FROM kaireon.authenticate_api_key('$key')});
isnt($rc, 0, 'authentication without a pepper fails');
unlike($err, qr/\Q$key\E/, 'without the key in the message');
# a bad value in postgresql.conf is reported without the value
$node->append_conf('postgresql.conf', "kaireon.settings_encryption_key = 'deadbeef$enckey'");
$node->reload;
$node->poll_query_until('postgres', q{SELECT true}) or die;
sleep 1;

# Nothing secret anywhere in the server log, nor in the audit rows.
my $log = slurp_file($node->logfile);
like($log, qr/settings_encryption_key must be exactly 64 hex digits/, 'the bad configuration value was reported');
my @found = grep { index($log, $_) >= 0 } @secrets;
is_deeply(\@found, [], 'no secret in the server log');
my $audit = $node->safe_psql('postgres', q{SELECT string_agg(concat(before::text, after::text), ' ') FROM kaireon.audit_logs});
@found = grep { index($audit, $_) >= 0 } @secrets;
is_deeply(\@found, [], 'no secret in the audit rows');
like($audit, qr/\[redacted\]/, 'where secrets show as [redacted]');

$node->stop;
done_testing();
