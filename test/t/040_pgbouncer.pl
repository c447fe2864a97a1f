# Tenant context behind a transaction-pooling connection pooler (docs/security.md, "Connection
# poolers"): a real PgBouncer in pool_mode = transaction with one server connection serves two
# clients of two tenants, interleaved. With the documented way (kaireon.set_tenant, or SET
# LOCAL, inside each transaction) neither client ever sees the other's rows, a statement that
# sets no tenant sees no rows at all, and the audit log records each transaction's own
# kaireon.user_id (never the previous client's). The counter-example the documentation warns
# about is shown too: a session-level SET stays on the server connection and the next client
# of the pool acts for that tenant. A pool that connects as a role pinned to a tenant
# (kaireon.pin_role) stays limited to it whatever a client sets.
# Skipped when pgbouncer is not installed (Debian package pgbouncer).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my ($pgbouncer) = grep { -x $_ } (map({ "$_/pgbouncer" } split(/:/, $ENV{PATH} // '')),
	'/usr/sbin/pgbouncer', '/usr/bin/pgbouncer');
plan skip_all => 'pgbouncer is not installed (Debian package pgbouncer; test/scripts/lib.sh installs it)'
  unless defined $pgbouncer;

my $node = PostgreSQL::Test::Cluster->new('pooled');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'kaireon'
});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION kaireon;
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('acme', 'Acme', 'acme'), ('globex', 'Globex', 'globex');
    INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
        ('acme', 'a1', 'acme-1', 'active'), ('acme', 'a2', 'acme-2', 'active'),
        ('globex', 'g1', 'globex-1', 'active');
    CREATE ROLE app LOGIN;
    SELECT kaireon.grant_app_role('app');
    CREATE ROLE acme_app LOGIN;
    SELECT kaireon.grant_app_role('acme_app');
    SELECT kaireon.pin_role('acme_app', 'acme');
});

# PgBouncer: transaction pooling, one server connection per database/user pair, trust.
my $dir = PostgreSQL::Test::Utils::tempdir();
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my ($host, $port) = ($node->host, $node->port);
PostgreSQL::Test::Utils::append_to_file("$dir/userlist.txt", qq{"app" ""\n"acme_app" ""\n});
PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", qq{
[databases]
db = host=$host port=$port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
	'>', "$dir/pgbouncer.out", '2>&1');
END { $bouncer->kill_kill if $bouncer; }

my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# A client of the pool: a psql process kept open, fed one statement batch at a time.
sub client
{
	my ($user) = @_;
	my %c = (in => '', out => '', err => '');
	$c{timer} = IPC::Run::timer($timeout);
	$c{h} = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-q', '-h', '127.0.0.1', '-p', $bport, '-U', $user, '-d', 'db' ],
		'<', \$c{in}, '>', \$c{out}, '2>', \$c{err}, $c{timer});
	return \%c;
}

# Run SQL in a client; returns its output (rows joined by newlines) and its errors.
sub run
{
	my ($c, $sql) = @_;
	$c->{out} = '';
	$c->{err} = '';
	$c->{timer}->start($timeout);
	$c->{in} .= "$sql\n\\echo __done__\n";
	$c->{h}->pump until $c->{out} =~ /__done__\n/;
	$c->{out} =~ s/__done__\n//;
	chomp(my $out = $c->{out});
	chomp(my $err = $c->{err});
	return wantarray ? ($out, $err) : $out;
}

# Wait until PgBouncer accepts connections.
my $ready = 0;
for (1 .. 10 * $timeout)
{
	my ($stdout, $stderr);
	IPC::Run::run([ 'psql', '-X', '-A', '-t', '-h', '127.0.0.1', '-p', $bport, '-U', 'app', '-d', 'db',
		'-c', 'SELECT 1' ], '>', \$stdout, '2>', \$stderr);
	if (($stdout // '') =~ /^1$/m) { $ready = 1; last; }
	select(undef, undef, undef, 0.1);
}
ok($ready, 'PgBouncer accepts connections') or BAIL_OUT('pgbouncer did not start: ' . slurp_file("$dir/pgbouncer.out"));

my $alice = client('app');
my $bob = client('app');
my $pid = run($alice, 'BEGIN; SELECT pg_backend_pid(); COMMIT;');
is(run($bob, 'BEGIN; SELECT pg_backend_pid(); COMMIT;'), $pid,
	'both clients are served by the same server connection');

# The documented way, interleaved: each transaction sets its tenant and user itself.
for my $round (1 .. 2)
{
	is(run($alice, q{BEGIN; SELECT kaireon.set_tenant('acme', user_id => 'alice') IS NOT NULL;
		SELECT string_agg(name, ',' ORDER BY name) FROM kaireon.offers;
		UPDATE kaireon.offers SET description = 'by alice' WHERE id = 'a1'; COMMIT;}),
		"t\nacme-1,acme-2", "round $round: the acme client sees acme's offers only");
	is(run($bob, q{BEGIN; SET LOCAL kaireon.tenant_id = 'globex'; SET LOCAL kaireon.user_id = 'bob';
		SELECT string_agg(name, ',' ORDER BY name) FROM kaireon.offers;
		UPDATE kaireon.offers SET description = 'by bob' WHERE id = 'g1'; COMMIT;}),
		'globex-1', "round $round: the globex client (SET LOCAL) sees globex's offers only");
	is(run($alice, q{SELECT count(*) FROM kaireon.offers;
		SELECT current_setting('kaireon.tenant_id') || '|' || current_setting('kaireon.user_id');}),
		"0\n|", "round $round: a statement that sets no tenant sees no rows and no leftover context");
	is(run($bob, q{UPDATE kaireon.offers SET description = 'nobody' RETURNING id;}),
		'', "round $round: nor can it change any");
}
is(run($bob, 'BEGIN; SELECT pg_backend_pid(); COMMIT;'), $pid, 'still one server connection');
is($node->safe_psql('postgres', q{
    SELECT string_agg(tenant_id || ':' || entity_id || ':' || coalesce(user_id, '-'), ',' ORDER BY id)
      FROM kaireon.audit_logs WHERE entity_type = 'offers' AND action = 'update'}),
	'acme:a1:alice,globex:g1:bob',
	'the audit log names the user of each transaction (and no change of the later rounds, which changed nothing)');

# kaireon.set_tenant refuses to run outside a transaction block, where it would do nothing.
my ($out, $err) = run($alice, q{SELECT kaireon.set_tenant('acme');});
like($err, qr/outside a transaction block would have no effect/, 'set_tenant outside a transaction is refused');

# The counter-example: a session-level SET stays on the server connection, and the next
# client of the pool acts for that tenant without having set anything.
run($alice, q{SET kaireon.tenant_id = 'acme';});
is(run($bob, q{SELECT string_agg(name, ',' ORDER BY name) FROM kaireon.offers;}), 'acme-1,acme-2',
	'a session-level SET leaks to the next client of the pool (why docs/security.md forbids it)');
run($bob, q{RESET kaireon.tenant_id;});
is(run($alice, q{SELECT count(*) FROM kaireon.offers;}), '0', 'reset again');

# A pool that connects as a pinned role: whatever a client sets, only the pinned tenant.
my $pinned = client('acme_app');
($out, $err) = run($pinned, q{BEGIN; SELECT kaireon.set_tenant('globex'); ROLLBACK;});
like($err, qr/role "acme_app" is pinned to tenant "acme" and cannot act for tenant "globex"/,
	'a client of a pinned pool cannot choose another tenant');
is(run($pinned, q{SELECT string_agg(name, ',' ORDER BY name) FROM kaireon.offers;}), 'acme-1,acme-2',
	'and sees its pinned tenant without setting one');
# A pin or unpin reaches a running session of the pool at its next transaction.
$node->safe_psql('postgres', q{SELECT kaireon.unpin_role('acme_app')});
is(run($pinned, q{BEGIN; SELECT kaireon.set_tenant('globex'); ROLLBACK;}), 'globex',
	'once unpinned, the running session may choose another tenant');
$node->safe_psql('postgres', q{SELECT kaireon.pin_role('acme_app', 'acme')});
($out, $err) = run($pinned, q{BEGIN; SELECT kaireon.set_tenant('globex'); ROLLBACK;});
like($err, qr/pinned to tenant "acme"/, 'pinned again, it may not');

for my $c ($alice, $bob, $pinned)
{
	$c->{in} .= "\\q\n";
	$c->{h}->finish;
}
$bouncer->kill_kill;
undef $bouncer;
$node->stop;
done_testing();
