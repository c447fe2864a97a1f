# KaireonOracle: what the oracle TAP tests share. run_oracle starts a throwaway server with a
# database "oracle" holding the extension, runs a Python oracle script of test/oracle/ against
# it with Debian's /usr/bin/python3 (where python3-xgboost, -sklearn, -numpy and -psycopg2
# import), and turns every "ok - ..." / "not ok - ..." line it prints into one TAP check.
package KaireonOracle;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(run_oracle);

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

	my $checks = 0;
	for my $line (split /\n/, $stdout)
	{
		if ($line =~ /^ok - (.*)$/)
		{
			pass($1);
			$checks++;
		}
		elsif ($line =~ /^not ok - (.*)$/)
		{
			fail($1);
			$checks++;
		}
	}
	ok($ok, 'the oracle script exited with status 0');
	cmp_ok($checks, '>=', $min_checks, 'the oracle script ran all its checks');
	$node->stop;
	return;
}

1;
