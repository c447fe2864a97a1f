# A decision flow graph (draft_config version 2, docs/flows.md) of the fixed pipeline's steps
# gives the decisions of the version 1 flow on the benchmark's data: test/bench/gen_data.sql
# (scale S's offers, rules and contact policies; 2,000 customers and 20,000 history rows, so it
# loads in seconds), 500 customers decided by the route's flow web-home as version 1, then the
# same after the version 2 graph of test/bench/web_home_v2.sql is published over it (the one
# test/bench/callgrind.sh's KAIREON_CALLGRIND_GRAPH=v2 measures). Every rank, offer, score and placement equal, on the
# hero placement and on the channel without one (the creative is left out: half the offers have
# two weighted hero creatives, drawn by the recommendation id, which differs between the runs).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('flow_graph_equivalence');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'kaireon'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION kaireon');
my ($rc, $out, $err) = $node->psql('postgres', undef,
	extra_params => [ '-v', 'offers=100', '-v', 'rules=20', '-v', 'policies=8', '-v', 'customers=2000',
		'-v', 'interactions=20000', '-f', 'test/bench/gen_data.sql' ]);
is($rc, 0, 'the benchmark data loads') or diag($err);

# the decisions of 500 customers, with a placement and without, into a table named by $label
sub decide
{
	my ($label) = @_;
	$node->safe_psql('postgres', qq{
		CREATE TABLE $label AS
		SELECT c.i, p.placement, r.rank, r.offer_id, r.placement_id, r.score
		  FROM generate_series(1, 500) c(i)
		 CROSS JOIN (VALUES ('hero'), (NULL)) p(placement)
		 CROSS JOIN LATERAL kaireon.recommend('bench', 'c' || (1 + (c.i * 7919) % 2000), 'web', p.placement,
		                                      options => '{"dry_run": true}') r});
	return $node->safe_psql('postgres', "SELECT count(*) FROM $label");
}

my $v1 = decide('v1');
cmp_ok($v1, '>', 500, "version 1 decides ($v1 decisions)");
($rc, $out, $err) = $node->psql('postgres', undef, extra_params => [ '-f', 'test/bench/web_home_v2.sql' ]);
is($rc, 0, 'the version 2 graph of web-home is published (test/bench/web_home_v2.sql)') or diag($err);
is($node->safe_psql('postgres', q{
	SELECT (f.published_versions -> -1 -> 'config' ->> 'version') FROM kaireon.decision_flows f
	 WHERE tenant_id = 'bench' AND key = 'web-home'}), '2', 'web-home now runs its version 2 graph');
my $v2 = decide('v2');
is($v2, $v1, 'version 2 makes as many decisions');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ((TABLE v1 EXCEPT ALL TABLE v2) UNION ALL (TABLE v2 EXCEPT ALL TABLE v1)) d}),
	'0', 'every decision is the same: rank, offer, placement and score');
$node->stop;
done_testing();
