# Decisions on a Citus cluster (docs/scale-out.md): a coordinator and two workers, tenant acme
# loaded before kaireon.distribute() and globex after it, on different workers. Through the
# coordinator, recommend, respond, recommend_json(tenant, request), respond_json(tenant,
# request) and respond_bulk(tenant, request) are delegated to the tenant's worker: Citus's own
# plan (EXPLAIN) shows one task on that worker's port. They answer as one plain kaireon node
# with the same data does, call for call (ranks, offers, creatives, placements, scores, the
# outcomes recorded; generated ids aside), dry runs and recorded decisions alike, and they
# record the same interactions. A configuration change made through the coordinator is seen
# by the next decision of a session that decided before it (the worker's cached configuration
# is renewed). Identity links made through the coordinator move a visitor's history and are
# resolved by the delegated decisions.
# Skipped when the citus library is not installed (Citus is not in Debian's archive).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use KaireonCitus;

my $pkglibdir = pkglibdir();
plan skip_all => 'Citus is not installed (its library citus.so is not in ' . $pkglibdir . '); see docs/scale-out.md'
  unless citus_installed();

my ($coord, @workers) = start_cluster('decisions', 2);
my $plain = start_single('single');
is(load_tenant($coord, 'acme'), 0, 'acme loaded before distribute()');
my ($ret, $out, $err);
$ret = $coord->psql('postgres', 'SELECT count(*) FROM kaireon.distribute()', stderr => \$err);
is($ret, 0, 'distribute() succeeds') or diag($err);
is(load_tenant($coord, 'globex'), 0, 'globex loaded after distribute()');
is(load_tenant($plain, $_), 0, "$_ loaded on the plain node") for qw(acme globex);
place_apart($coord, 'acme', 'globex', @workers);
my %port = map { $_ => worker_of($coord, $_) } qw(acme globex);
isnt($port{acme}, $port{globex}, "acme (worker port $port{acme}) and globex (worker port $port{globex}) are on different workers");

# 1. Delegated: Citus's plan of each call through the coordinator is one task on the tenant's worker.
my @calls = (
	[ 'recommend', q{kaireon.recommend('%s', 'cust-42', 'web', 'hero')} ],
	[ 'respond', q{kaireon.respond('%s', 'cust-42', 'click', offer_id => 'gold-card')} ],
	[ 'recommend_json', q{kaireon.recommend_json('%s', '{"customerId": "cust-42", "channel": "web"}')} ],
	[ 'respond_json', q{kaireon.respond_json('%s', '{"customerId": "cust-42", "outcome": "click", "offerId": "gold-card"}')} ],
	[ 'respond_bulk', q{kaireon.respond_bulk('%s', '{"items": [{"customerId": "cust-42", "outcome": "click", "offerId": "gold-card"}]}')} ],
);
for my $tenant (qw(acme globex))
{
	for my $call (@calls)
	{
		my ($name, $sql) = @$call;
		($out, $err) = ('', '');
		$coord->psql('postgres', sprintf("EXPLAIN (VERBOSE OFF, COSTS OFF) SELECT $sql", $tenant),
			stdout => \$out, stderr => \$err);
		my @nodes = $out =~ /Node: host=\S+ port=(\d+)/g;
		is(join(',', ($out =~ /Task Count: (\d+)/), @nodes), "1,$port{$tenant}",
			"$name for $tenant: one task, on its worker (port $port{$tenant})") or diag($out . $err);
	}
}

# 2. The same answers as one plain node, call for call. What differs by nature is left out:
#    the ids each node generates (recommendation, interaction, and the policy snapshot's hash,
#    which covers the guardrail rules' generated ids), and which of gold-card's two weighted
#    web creatives is shown (gold-hero, gold-hero-b: drawn by the random recommendation id).
my $json = JSON::PP->new->canonical;
# The same creative for either of gold-card's weighted creatives.
sub same_creative
{
	my ($text) = @_;
	$text =~ s/gold-hero-b/gold-hero/g;
	return $text;
}
# A JSON answer without the ids each node generates.
sub without_ids
{
	my ($text) = @_;
	return "not JSON: $text" unless defined $text && $text =~ /^[\[{]/;
	my $v = $json->decode($text);
	my $strip;
	$strip = sub {
		my ($x) = @_;
		if (ref $x eq 'HASH')
		{
			delete @$x{qw(recommendationId interactionId policySnapshot)};
			$strip->($_) for values %$x;
		}
		elsif (ref $x eq 'ARRAY') { $strip->($_) for @$x; }
	};
	$strip->($v);
	return same_creative($json->encode($v));
}
# recommend's rows as rank|offer|creative|placement|score (6 decimals), and its recommendation id.
sub decisions
{
	my ($node, $sql) = @_;
	my ($o, $e) = ('', '');
	$node->psql('postgres', "SELECT $sql", stdout => \$o, stderr => \$e);
	return ("error: $e", undef) if $e ne '';
	my ($rid, @rows);
	for my $row (split /\n/, $o)
	{
		my @f = record_fields($row);
		$rid = $f[8];
		push @rows, join('|', map { $_ // '-' } $f[0], $f[1], $f[4], $f[5], sprintf('%.6f', $f[6]));
	}
	return (same_creative(join(';', @rows)), $rid);
}
# One call's answer (a JSON value), without generated ids.
sub answer
{
	my ($node, $sql) = @_;
	my ($o, $e) = ('', '');
	$node->psql('postgres', "SELECT $sql", stdout => \$o, stderr => \$e);
	return $e ne '' ? "error: $e" : without_ids($o);
}

for my $tenant (qw(acme globex))
{
	for my $customer (qw(cust-42 cust-7 cust-99 new-1))
	{
		for my $where ([ 'web', 'NULL' ], [ 'web', q{'hero'} ], [ 'email', 'NULL' ])
		{
			my ($channel, $placement) = @$where;
			my $dry = qq{kaireon.recommend('$tenant', '$customer', '$channel', $placement, options => '{"dry_run": true}')};
			my ($want) = decisions($plain, $dry);
			my ($got) = decisions($coord, $dry);
			is($got, $want, "recommend $tenant/$customer/$channel/$placement, dry run: as on one node ($want)");
		}
		# recorded, then an outcome of its first decision (each node its own recommendation id)
		my $rec = qq{kaireon.recommend('$tenant', '$customer', 'web')};
		my ($want, $want_rid) = decisions($plain, $rec);
		my ($got, $got_rid) = decisions($coord, $rec);
		is($got, $want, "recommend $tenant/$customer/web, recorded: as on one node ($want)");
		SKIP:
		{
			skip "no recorded decision for $tenant/$customer", 1 unless defined $want_rid && defined $got_rid && $want ne '';
			my $respond = q{kaireon.respond('%s', '%s', 'click', recommendation_id => '%s', rank => 1)};
			is(answer($coord, sprintf($respond, $tenant, $customer, $got_rid)),
				answer($plain, sprintf($respond, $tenant, $customer, $want_rid)),
				"respond $tenant/$customer by recommendation id and rank: as on one node");
		}
		for my $dry (qw(true false))
		{
			my $sql = qq{kaireon.recommend_json('$tenant', '{"customerId": "$customer", "channel": "web", "dryRun": $dry}')};
			my $w = answer($plain, $sql);
			is(answer($coord, $sql), $w, "recommend_json $tenant/$customer, dryRun $dry: as on one node");
		}
		my $rj = qq{kaireon.respond_json('$tenant', '{"customerId": "$customer", "outcome": "dismiss", "offerId": "travel-card", "idempotencyKey": "k-$customer"}')};
		my $w = answer($plain, $rj);
		like($w, qr/"outcome":"dismiss"/, "respond_json $tenant/$customer on one node records the dismissal");
		is(answer($coord, $rj), $w, "respond_json $tenant/$customer: as on one node");
		is(answer($coord, $rj), answer($plain, $rj), "respond_json $tenant/$customer again (a duplicate): as on one node");
	}
	my $bulk = qq{kaireon.respond_bulk('$tenant', '{"items": [
		{"customerId": "cust-42", "outcome": "impression", "offerId": "gold-card", "creativeId": "gold-hero"},
		{"customerId": "cust-99", "outcome": "conversion", "offerId": "mortgage", "conversionValue": 120},
		{"customerId": "cust-7", "outcome": "clicked", "offerId": "saver"},
		{"tenantId": "other", "customerId": "cust-7", "outcome": "click", "offerId": "saver"}]}')};
	my $w = answer($plain, $bulk);
	like($w, qr/"accepted":2.*"failed":2/s, "respond_bulk $tenant on one node: two accepted, two refused");
	is(answer($coord, $bulk), $w, "respond_bulk $tenant: as on one node");
}

# The interactions recorded are the same as on one node.
my $recorded = q{
    SELECT string_agg(format('%s %s %s %s %s %s %s: %s', tenant_id, customer_id, interaction_type, coalesce(outcome_type_key, '-'),
                             coalesce(offer_id, '-'), coalesce(creative_id, '-'), coalesce(placement_id, '-'), n), E'\n' ORDER BY tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, creative_id, placement_id)
      FROM (SELECT tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, creative_id, placement_id, count(*) AS n
              FROM (SELECT tenant_id, customer_id, interaction_type, outcome_type_key, offer_id,
                           CASE creative_id WHEN 'gold-hero-b' THEN 'gold-hero' ELSE creative_id END AS creative_id, placement_id
                      FROM kaireon.interaction_history) i
             GROUP BY 1, 2, 3, 4, 5, 6, 7) s};
my $want_rows = $plain->safe_psql('postgres', $recorded);
like($want_rows, qr/acme new-1 recommendation/, 'one node recorded the decisions');
is($coord->safe_psql('postgres', $recorded), $want_rows, 'the cluster recorded the same interactions as one node');
is($coord->safe_psql('postgres', q{SELECT string_agg(tenant_id || ':' || count, ',' ORDER BY tenant_id)
                                     FROM (SELECT tenant_id, count(*) FROM kaireon.suppressions GROUP BY 1) s}),
	$plain->safe_psql('postgres', q{SELECT string_agg(tenant_id || ':' || count, ',' ORDER BY tenant_id)
                                     FROM (SELECT tenant_id, count(*) FROM kaireon.suppressions GROUP BY 1) s}),
	'and the same suppressions');

# 3. A configuration change through the coordinator reaches the next decision of a session
#    that decided before it.
my $session = $coord->background_psql('postgres', on_error_stop => 0);
my $decide = q{SELECT kaireon.recommend_json('%s', '{"customerId": "new-2", "channel": "web", "dryRun": true}') -> 'decisions' @? '$[*] ? (@.offerId == "travel-card")';};
for my $tenant (qw(acme globex))
{
	is($session->query(sprintf($decide, $tenant)), 't', "$tenant: the session is offered travel-card");
	$coord->safe_psql('postgres', qq{UPDATE kaireon.offers SET status = 'paused' WHERE tenant_id = '$tenant' AND id = 'travel-card'});
	is($session->query(sprintf($decide, $tenant)), 'f', "$tenant: once paused through the coordinator, the same session's next decision does not offer it");
	$coord->safe_psql('postgres', qq{UPDATE kaireon.offers SET status = 'active' WHERE tenant_id = '$tenant' AND id = 'travel-card'});
	is($session->query(sprintf($decide, $tenant)), 't', "$tenant: active again, offered again");
}
my $first = q{SELECT kaireon.recommend_json('acme', '{"customerId": "new-2", "channel": "web", "dryRun": true}') #>> '{decisions,0,offerId}';};
is($session->query($first), 'gold-card', 'acme: gold-card comes first');
$coord->safe_psql('postgres', q{UPDATE kaireon.offers SET priority = 99 WHERE tenant_id = 'acme' AND id = 'personal-loan'});
is($session->query($first), 'personal-loan', 'acme: after a priority change through the coordinator, personal-loan does');

# 4. Identity resolution on the tenant's worker (docs/identity.md): kaireon.link_identity through
#    the coordinator moves a visitor's recorded decision to the customer on the tenant's shards,
#    and the next delegated decision of a session that decided before the tenant's first link
#    resolves the e-mail address and the session to the customer.
for my $tenant (qw(acme globex))
{
	is($coord->safe_psql('postgres', qq{SELECT kaireon.recommend_json('$tenant', '{"sessionId": "anon-1", "channel": "web"}') ->> 'customerId'}),
		'anon-1', "$tenant: a visitor's recorded decision");
	is($coord->safe_psql('postgres', qq{SELECT (kaireon.link_identity('$tenant', 'session', 'anon-1', 'cust-42') #>> '{moved,interaction_history}')::int > 0}),
		't', "$tenant: link_identity moves the visitor's history to cust-42");
	is($coord->safe_psql('postgres', qq{SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = '$tenant' AND customer_id = 'anon-1'}),
		'0', "$tenant: none of it is left under the session id");
	$coord->safe_psql('postgres', qq{SELECT kaireon.link_identity('$tenant', 'email', 'ann\@example.com', 'cust-42')});
	is($session->query(qq{SELECT kaireon.recommend_json('$tenant', '{"customerId": "ann\@example.com", "channel": "web", "dryRun": true}') #>> '{resolvedFrom,customerId}'}),
		'cust-42', "$tenant: the delegated decision resolves the e-mail address on the worker");
	is($session->query(qq{SELECT kaireon.recommend_json('$tenant', '{"sessionId": "anon-1", "channel": "web", "dryRun": true}') ->> 'customerId'}),
		'cust-42', "$tenant: and the session");
}
$session->quit;

$plain->stop;
$_->stop for ($coord, @workers);
done_testing();
