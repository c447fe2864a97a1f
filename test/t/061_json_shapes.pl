# KaireonAI's request and response shapes (docs/json-api.md): a client written for them runs
# unchanged. test/json_shapes_replay.py, with Debian's /usr/bin/python3, psycopg2 and
# jsonschema (python3-jsonschema, KAIREON_PACKAGES), replays the KaireonAI-shaped requests of
# test/fixtures/kaireonai_requests.json as the demo tenant's application role (examples/setup.sql)
# against a throwaway server holding the demo tenant, validates every request and answer
# against docs/schemas/*.json (and the marked examples of docs/json-api.md), and checks each
# step's expected values; each of its "ok - " lines is a check here. Then, as the superuser:
# what the replay recorded (the session as the customer, the click's direction, details and time).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use KaireonOracle;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = demo_node('json_shapes');
# the hero's gold-card creatives, personalized
$node->safe_psql('kaireon_demo', q{
    UPDATE kaireon.creatives
       SET content = '{"headline": "{{customer.firstName}}, go gold", "apr": "{{offer.value}}"}',
           personalization = '{"defaults": {"customer.firstName": "Hello"}}'
     WHERE tenant_id = 'acme' AND id IN ('gold-hero', 'gold-hero-b')});

my ($stdout, $stderr) = ('', '');
my $ok = IPC::Run::run(
	[ '/usr/bin/python3', 'test/json_shapes_replay.py', 'test/fixtures/kaireonai_requests.json',
	  'docs/schemas', 'docs/json-api.md' ],
	'>', \$stdout, '2>', \$stderr,
	init => sub {
		$ENV{PGHOST} = $node->host;
		$ENV{PGPORT} = $node->port;
		$ENV{PGDATABASE} = 'kaireon_demo';
		$ENV{PGUSER} = 'acme_app';
	},
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
note($stdout);
diag("stderr:\n$stderr") if $stderr ne '';
my $checks = script_checks($stdout);
ok($ok, 'the replay exited with status 0');
like($stdout, qr/^all checks passed$/m, 'the replay ran to its end');
cmp_ok(scalar(@$checks), '>=', 60, 'the replay made all its checks');

# what the replay recorded, read as the superuser
is( $node->safe_psql('kaireon_demo', q{
    SELECT string_agg(interaction_type || ' ' || coalesce(outcome_type_key, '-') || ' ' || direction || ' '
                      || coalesce(context ->> 'outcomeDetails', '-') || ' '
                      || CASE WHEN interaction_type = 'outcome' THEN to_char(occurred_at AT TIME ZONE 'UTC', 'HH24:MI') ELSE 'now' END,
                      ', ' ORDER BY interaction_type DESC, occurred_at)
      FROM kaireon.interaction_history
     WHERE tenant_id = 'acme' AND customer_id = 'sess-replay-1' AND interaction_type IN ('outcome', 'recommendation')
       AND (interaction_type = 'outcome' OR rank = 1 AND placement_id = 'hero')}),
	'recommendation - outbound - now, outcome click inbound {"button": "learn-more"} 10:15, '
	  . 'outcome conversion outbound - 10:20',
	'the session was the customer; the click was recorded inbound with its details and time');
is( $node->safe_psql('kaireon_demo', q{
    SELECT count(*) FILTER (WHERE placement_id = 'hero') || ' hero decision, '
           || count(DISTINCT context ->> 'sessionId') || ' session'
      FROM kaireon.interaction_history
     WHERE tenant_id = 'acme' AND customer_id = 'sess-replay-1' AND interaction_type = 'recommendation'}),
	'1 hero decision, 1 session',
	'the hero, asked for 2, got 1 (its max_slots); the session is in the decisions\' context');

$node->stop;
done_testing();
