# Oracle tests of the scoring models (test/oracle/models_oracle.py): XGBoost and LightGBM
# imports score exactly as the libraries predict, TreeSHAP matches XGBoost's pred_contribs,
# and in-database logistic regression matches scikit-learn. Needs Debian's python3-xgboost,
# python3-sklearn, python3-numpy and python3-psycopg2, run with /usr/bin/python3.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('oracle');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE oracle');
$node->safe_psql('oracle', 'CREATE EXTENSION kaireon');

local $ENV{PGHOST} = $node->host;
local $ENV{PGPORT} = $node->port;
local $ENV{PGDATABASE} = 'oracle';
my ($stdout, $stderr);
my $ok = IPC::Run::run([ '/usr/bin/python3', '-W', 'ignore', 'test/oracle/models_oracle.py' ],
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
cmp_ok($checks, '>=', 16, 'the oracle script ran all its checks');

$node->stop;
done_testing();
