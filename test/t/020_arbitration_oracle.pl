# Oracle test of batch arbitration (test/oracle/arbitration_oracle.py): generated campaign
# instances solved by kaireon.run_campaign and, as LP relaxations, by GLPK's glpsol; every
# constraint holds for kaireon's assignment, its value is within 1% of the LP optimum and its
# dual bound is at least that optimum. Needs Debian's glpk-utils, python3-numpy and
# python3-psycopg2, run with /usr/bin/python3.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('arbitration_oracle');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE oracle');
$node->safe_psql('oracle', 'CREATE EXTENSION kaireon');

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'oracle';
my ($stdout, $stderr);
my $ok = IPC::Run::run([ '/usr/bin/python3', '-W', 'ignore', 'test/oracle/arbitration_oracle.py' ],
    '>', \$stdout, '2>', \$stderr);
diag($stderr) if $stderr ne '';

# every line of the script is one check
my $checks = 0;
for my $line (split /\n/, $stdout) {
    if ($line =~ /^ok - (.*)$/) {
        pass($1);
        $checks++;
    } elsif ($line =~ /^not ok - (.*)$/) {
        fail($1);
        $checks++;
    }
}
ok($ok, 'the oracle script exited with status 0');
cmp_ok($checks, '>=', 60, 'the oracle script ran all its checks');

$node->stop;
done_testing();
