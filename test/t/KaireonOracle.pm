# KaireonOracle: what the oracle TAP tests share. run_oracle starts a throwaway server with a
# database "oracle" holding the extension, runs a Python oracle script of test/oracle/ against
# it with Debian's /usr/bin/python3 (where python3-xgboost, -sklearn, -numpy and -psycopg2
# import), and turns every "ok - ..." / "not ok - ..." line it prints into one TAP check
# (script_checks, which test/t/060_examples.pl uses for the example clients too). demo_node
# starts a throwaway server holding the demo tenant and its application role (the example
# clients' and the KaireonAI replay's, test/t/060 and 061).
package KaireonOracle;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(run_oracle script_checks demo_node);

# script_checks(output): one TAP check per "ok - name" (passed) or "not ok - name" (failed)
# line of a script's output; returns the names, in order. The example clients print the same
# lines (test/t/060_examples.pl).
sub script_checks
{
	my ($stdout) = @_;
	my @names;
	for my $line (split /\n/, $stdout)
	{
		if ($line =~ /^(not )?ok - (.*)$/)
		{
			ok(!defined $1, $2);
			push @names, $2;
		}
	}
	return \@names;
}

# run_oracle(node name, script path, least number of checks the script must make)
sub run_oracle
{
	my ($name, $script, $min_checks) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE oracle');
	$node->safe_psql('oracle', 'CREATE EXTENSION kaireon');

	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'oracle';
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ '/usr/bin/python3', '-W', 'ignore', $script ],
		'>', \$stdout, '2>', \$stderr);
	diag($stderr) if $stderr ne '';

	my $checks = script_checks($stdout);
	ok($ok, 'the oracle script exited with status 0');
	cmp_ok(scalar(@$checks), '>=', $min_checks, 'the oracle script ran all its checks');
	$node->stop;
	return;
}

# demo_node(node name): a started server whose database kaireon_demo holds the extension, the
# demo tenant (test/fixtures/demo_tenant.sql) and its application role acme_app
# (examples/setup.sql); one check per file loaded.
sub demo_node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE kaireon_demo');
	$node->safe_psql('kaireon_demo', 'CREATE EXTENSION kaireon');
	for my $file ('test/fixtures/demo_tenant.sql', 'examples/setup.sql')
	{
		my ($rc, $out, $err) = $node->psql('kaireon_demo', undef,
			extra_params => [ '-v', 'ON_ERROR_STOP=1', '-f', $file ]);
		is($rc, 0, "$file loads") or diag($err);
	}
	return $node;
}

1;
