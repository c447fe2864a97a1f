# The example clients (examples/README.md) against a throwaway server holding the demo tenant
# (test/fixtures/demo_tenant.sql) and their application role pinned to it (examples/setup.sql):
# examples/python/example.py with Debian's /usr/bin/python3 and psycopg2, and
# examples/node/example.js with the npm "pg" client, installed by `npm ci` from
# examples/node/package-lock.json into a temporary copy (npm's cache there too). Each example
# checks what it observes (decisions, the rendered creatives, the recorded click, a duplicate
# respond, the SQLSTATE of each mistake, a retried 40001) and prints "ok - ..." per check; each
# line is a check here, the script must exit 0, and both examples must make the same checks.
# Then, as the superuser: exactly one click per example was recorded, for a visitor of its own.
# Needs Debian's nodejs, npm and python3-psycopg2 (KAIREON_PACKAGES) and the npm registry: when
# `npm ci` cannot install the client the test fails, saying so.
use strict;
use warnings;
use File::Copy;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = demo_node('examples');

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'kaireon_demo';
local $ENV{PGUSER} = 'acme_app';
my $timeout = $PostgreSQL::Test::Utils::timeout_default;

# run_example(name, command, directory): runs it, one check per "ok - " line; returns the names.
sub run_example
{
	my ($name, $cmd, $dir) = @_;
	my ($stdout, $stderr) = ('', '');
	my $ok = IPC::Run::run($cmd, '>', \$stdout, '2>', \$stderr,
		init => sub { chdir $dir or die "chdir $dir: $!" },
		IPC::Run::timeout($timeout));
	note("$name:\n$stdout");
	diag("$name (stderr):\n$stderr") if $stderr ne '';
	my $checks = script_checks($stdout);
	ok($ok, "the $name example exited with status 0");
	like($stdout, qr/^all checks passed$/m, "the $name example ran to its end");
	return $checks;
}

my $python = run_example('python', [ '/usr/bin/python3', 'example.py' ], 'examples/python');

# The node example: a copy without node_modules, the locked versions installed by npm ci.
my $dir = PostgreSQL::Test::Utils::tempdir();
copy("examples/node/$_", "$dir/$_") or die "copy $_: $!"
  for ('package.json', 'package-lock.json', 'example.js');
my ($npm_out, $npm_err) = ('', '');
my $npm = eval {
	IPC::Run::run(
		[ 'npm', 'ci', '--no-audit', '--no-fund', '--no-update-notifier', '--cache', "$dir/npm-cache" ],
		'>', \$npm_out, '2>', \$npm_err,
		init => sub { chdir $dir or die "chdir $dir: $!" },
		IPC::Run::timeout($timeout));
};
ok($npm, 'npm ci installs the pg client of examples/node/package-lock.json')
  or diag("npm ci failed: cannot install the npm package pg (is npm installed, "
	  . "Debian package npm, and the npm registry reachable?)\n"
	  . ($@ || '') . $npm_out . $npm_err);
my $nodejs = $npm ? run_example('node', [ 'node', 'example.js' ], $dir) : [];

cmp_ok(scalar(@$python), '>=', 17, 'the python example made all its checks');
is_deeply($nodejs, $python, 'the node example makes the same checks as the python example');

# What they left: per example one visitor with one click (the second respond was a
# duplicate) and its decisions; the refused calls wrote nothing.
is( $node->safe_psql('kaireon_demo', q{
    SELECT count(DISTINCT customer_id) || ' visitors, '
           || count(*) FILTER (WHERE interaction_type = 'outcome') || ' clicks, '
           || count(*) FILTER (WHERE interaction_type = 'recommendation' AND rank = 1) || ' first decisions'
      FROM kaireon.interaction_history WHERE customer_id LIKE 'visitor-%'}),
	'2 visitors, 2 clicks, 2 first decisions',
	'each example recorded one recommendation and one click');

$node->stop;
done_testing();
