# Operations on a Citus cluster (docs/scale-out.md): a coordinator and two workers, tenants
# acme and globex (test/fixtures/demo_tenant.sql) distributed on different workers. Shown:
# caps stay exact with 16 clients deciding at once through the coordinator (a volume cap
# grants exactly its units; a frequency cap grants a customer deciding from 16 clients at once
# what it grants one deciding 16 times in a row); an application role acting for one tenant
# (SET LOCAL with citus.propagate_set_commands, or a role pinned by ALTER ROLE ... SET
# kaireon.pinned_tenant_id) sees none of the other tenant's rows and cannot decide for it
# (42501), wherever its shards are; the audit chains verify after distribute(), after a
# tenant's shards move to the other worker and back, after it is isolated on shards of its
# own (isolate_tenant_to_new_shard), and after 16 concurrent writers; the
# retention, a DSAR export and erasure, a campaign and the maintenance jobs run for tenants on
# different workers; no node's server process crashes.
# Skipped when the citus library is not installed (Citus is not in Debian's archive).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use KaireonCitus;

my $pkglibdir = pkglibdir();
plan skip_all => 'Citus is not installed (its library citus.so is not in ' . $pkglibdir . '); see docs/scale-out.md'
  unless citus_installed();

my ($coord, @workers) = start_cluster('operations', 2);
my @tenants = qw(acme globex);
is(load_tenant($coord, $_), 0, "$_ loaded") for @tenants;
my ($ret, $out, $err);
$ret = $coord->psql('postgres', 'SELECT count(*) FROM kaireon.distribute()', stderr => \$err);
is($ret, 0, 'distribute() succeeds') or diag($err);
place_apart($coord, @tenants, @workers);
my %port = map { $_ => worker_of($coord, $_) } @tenants;
isnt($port{acme}, $port{globex}, "acme (worker port $port{acme}) and globex (worker port $port{globex}) are on different workers");

# Runs SQL through the coordinator (as $user when given); returns its output, or its first
# error ("error: SQLSTATE: message") when it fails.
sub try_sql
{
	my ($sql, $user) = @_;
	my ($o, $e) = ('', '');
	$coord->psql('postgres', "\\set VERBOSITY verbose\n$sql", stdout => \$o, stderr => \$e,
		extra_params => [ defined $user ? ('-U', $user) : () ]);
	return $o if $e !~ /ERROR|FATAL|error:/;
	return "error: $1" if $e =~ /(?:ERROR|FATAL):  (\w{5}: .*)/;
	return "error: $e";
}

my $chains = q{SELECT string_agg(format('%s:%s', t, v.intact), ',' ORDER BY t)
                 FROM unnest(ARRAY['acme', 'globex']) t, LATERAL kaireon.verify_audit_chain(t) v};
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after distribute()');

# 1. Caps under 16 concurrent clients through the coordinator. Each tenant caps travel-card
#    at 20 a day; one customer decides 16 times in a row; then 8 clients per tenant decide for
#    8 new customers each (64 decisions, every one offering travel-card while units are left)
#    and once for one shared customer.
my $cap = 20;
for my $t (@tenants)
{
	is(try_sql(qq{INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, scope_id, max_volume, period)
                  VALUES ('$t', 'travel-cap', 'Travel cap', 'offer', 'travel-card', $cap, 'daily')}), '',
		"$t: a volume cap of $cap on travel-card, set through the coordinator");
	like(try_sql(qq{SELECT kaireon.recommend_json('$t', '{"customerId": "cap-0", "channel": "web", "dryRun": true}')}),
		qr/"offerId": "travel-card"/, "$t: a new customer is offered travel-card");
	# the frequency cap's answer for a customer deciding 16 times in a row
	try_sql(join("\n", map { qq{SELECT kaireon.recommend('$t', 'seq', 'web');} } 1 .. 16));
}
my @scripts;
for my $i (1 .. 16)
{
	my $t = $tenants[ $i % 2 ];
	push @scripts, join("\n",
		(map { qq{SELECT kaireon.recommend('$t', 'cap-$i-$_', 'web');} } 1 .. 8),
		qq{SELECT kaireon.recommend('$t', 'shared', 'web');}) . "\n";
}
my @results = run_clients($coord, @scripts);
is(client_errors(@results), '', 'the 16 clients decided without an error');
for my $t (@tenants)
{
	is(try_sql(qq{SELECT count(DISTINCT customer_id) FILTER (WHERE customer_id LIKE 'cap-%') || ' customers, '
                         || count(*) FILTER (WHERE offer_id = 'travel-card') || ' travel-card'
                    FROM kaireon.interaction_history
                   WHERE tenant_id = '$t' AND interaction_type = 'recommendation' AND (customer_id LIKE 'cap-%' OR customer_id IN ('seq', 'shared'))}),
		"64 customers, $cap travel-card", "$t: 64 new customers decided for, and exactly $cap decisions offered the capped travel-card");
	is(try_sql(qq{SELECT current_count FROM kaireon.volume_constraints WHERE tenant_id = '$t' AND id = 'travel-cap'}),
		$cap, "$t: the cap's counter says $cap");
	# (decisions that served offers: the cap counts a customer's recommendation rows)
	my $per = qq{SELECT count(DISTINCT recommendation_id) FROM kaireon.interaction_history
                  WHERE tenant_id = '$t' AND interaction_type = 'recommendation' AND customer_id = '%s'};
	my $seq = try_sql(sprintf($per, 'seq'));
	cmp_ok($seq, '>', 0, "$t: a customer deciding 16 times in a row is served");
	cmp_ok($seq, '<', 16, "$t: the frequency cap limits the decisions that serve it ($seq of 16)");
	is(try_sql(sprintf($per, 'shared')), $seq, "$t: a customer deciding from 8 clients at once is served no more often");
}

# 2. Tenant isolation for application roles, across nodes.
is(try_sql(q{CREATE ROLE app LOGIN; CREATE ROLE app_acme LOGIN; ALTER ROLE app_acme SET kaireon.pinned_tenant_id = 'acme';}), '',
	'application roles made on the coordinator: app, and app_acme pinned to acme by ALTER ROLE ... SET');
is(try_sql(qq{SELECT kaireon.grant_app_role('$_')}), '', "kaireon.grant_app_role('$_') through the coordinator") for qw(app app_acme);
my $as_acme = q{BEGIN; SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL kaireon.tenant_id = 'acme';
%s
COMMIT;};
my %ways = (
	'app with SET LOCAL' => [ 'app', $as_acme ],
	'app_acme (pinned)' => [ 'app_acme', "%s" ],
);
for my $way (sort keys %ways)
{
	my ($user, $wrap) = @{ $ways{$way} };
	my $as = sub { try_sql(sprintf($wrap, $_[0]), $user) };
	my $acme_offers = try_sql(q{SELECT count(*) FROM kaireon.offers WHERE tenant_id = 'acme'});
	my $acme_history = try_sql(q{SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'acme'});
	is($as->(q{SELECT count(*) FROM kaireon.offers;}), $acme_offers, "$way: sees acme's $acme_offers offers");
	is($as->(q{SELECT count(*) FROM kaireon.interaction_history;}), $acme_history, "$way: sees acme's $acme_history interactions");
	is($as->(q{SELECT count(*) FROM kaireon.offers WHERE tenant_id = 'globex';}), '0', "$way: sees none of globex's offers");
	is($as->(q{SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'globex';}), '0',
		"$way: sees none of globex's interactions");
	is($as->(q{SELECT count(*) FROM kaireon.tenants WHERE id = 'globex';}), '0', "$way: does not see tenant globex");
	is($as->(q{UPDATE kaireon.offers SET description = 'taken' WHERE tenant_id = 'globex' RETURNING id;}), '',
		"$way: changes none of globex's offers");
	# (a customer of its own per way: the demo's contact policies cap what cust-42 was shown)
	like($as->(qq{SELECT kaireon.recommend('acme', 'iso-$user', 'web', options => '{"dry_run": true}');}),
		qr/^\(1,/, "$way: decides for acme (delegated to acme's worker)");
	like($as->(q{SELECT kaireon.recommend_json('acme', '{"customerId": "cust-42", "channel": "web"}');}),
		qr/"tenantId": "acme"/, "$way: records a decision for acme");
	like($as->(q{SELECT kaireon.recommend('globex', 'cust-42', 'web', options => '{"dry_run": true}');}),
		qr/^error: 42501: /, "$way: may not decide for globex (42501)");
	like($as->(q{SELECT kaireon.respond_json('globex', '{"customerId": "cust-42", "outcome": "click", "offerId": "gold-card"}');}),
		qr/^error: 42501: /, "$way: may not record an outcome for globex (42501)");
}
like(try_sql(q{BEGIN; SET LOCAL citus.propagate_set_commands = 'local'; SET LOCAL kaireon.tenant_id = 'globex';
               SELECT count(*) FROM kaireon.offers; COMMIT;}, 'app_acme'),
	qr/^error: 42501: .*pinned to tenant "acme"|^0$/s, 'the pinned role acting for globex is refused or sees nothing');
is(try_sql(q{SELECT count(*) FROM kaireon.offers;}, 'app'), '0', 'app without a tenant sees no offers');
like(try_sql(q{SELECT kaireon.recommend('acme', 'cust-42', 'web', options => '{"dry_run": true}');}, 'app'),
	qr/^error: 42501: /, 'nor may it decide for acme (42501)');

# kaireon.pin_role on the coordinator pins the role on the workers too (their own tenant_pins),
# at once, where the delegated calls check the tenant; unpin_role removes it everywhere.
is(try_sql(q{CREATE ROLE app_pin LOGIN; SELECT kaireon.grant_app_role('app_pin'); SELECT kaireon.pin_role('app_pin', 'acme');}),
	"\n", 'app_pin pinned to acme with kaireon.pin_role on the coordinator');
is(try_sql(q{SELECT string_agg(result, ',') FROM run_command_on_workers(
               $$SELECT p.pinned_tenant_id FROM kaireon.tenant_pins p WHERE p.role = 'app_pin'::regrole$$)}),
	'acme,acme', 'every worker holds the pin');
my $as_globex = q{BEGIN; SET LOCAL kaireon.tenant_id = 'globex';
%s
COMMIT;};
like(try_sql(sprintf($as_globex, q{SELECT kaireon.recommend('globex', 'pin-1', 'web', options => '{"dry_run": true}');}), 'app_pin'),
	qr/^error: 42501: /, 'the pinned role may not decide for globex, on globex\'s worker (42501)');
like(try_sql(q{SELECT kaireon.recommend('acme', 'pin-1', 'web', options => '{"dry_run": true}');}, 'app_pin'),
	qr/^\(1,/, 'it decides for acme without setting a tenant');
is(try_sql(q{SELECT kaireon.unpin_role('app_pin')}), 't', 'unpinned on the coordinator');
is(try_sql(q{SELECT string_agg(result, ',') FROM run_command_on_workers(
               $$SELECT count(*) FROM kaireon.tenant_pins p WHERE p.role = 'app_pin'::regrole$$)}),
	'0,0', 'and on every worker');
like(try_sql(sprintf($as_globex, q{SELECT kaireon.recommend('globex', 'pin-2', 'web', options => '{"dry_run": true}');}), 'app_pin'),
	qr/^\(1,/, 'unpinned, it may act for the tenant it sets');

# 3. Audit chains: after a tenant's shards move to the other worker and back, and under 16
#    concurrent writers.
my $before = census($coord);
my $home = node_by_port($port{acme}, @workers);
my $away = node_by_port($port{globex}, @workers);
($ret, $out, $err) = move_tenant($coord, 'acme', $away);
is($ret, 0, 'acme\'s shards move to globex\'s worker') or diag($err);
is(worker_of($coord, 'acme'), $away->port, 'acme is on the other worker');
same_rows(census($coord), $before, 'every table holds the same rows after the move');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the move');
is(try_sql(q{UPDATE kaireon.offers SET description = 'moved' WHERE tenant_id = 'acme' AND id = 'saver' RETURNING id}), 'saver',
	'an audited change to acme after the move');
like(try_sql(q{SELECT kaireon.recommend_json('acme', '{"customerId": "cust-42", "channel": "web"}')}), qr/"tenantId": "acme"/,
	'a recorded decision for acme after the move');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after a change on the new worker');
($ret, $out, $err) = move_tenant($coord, 'acme', $home);
is($ret, 0, 'acme\'s shards move back') or diag($err);
is(worker_of($coord, 'acme'), $home->port, 'acme is on its first worker again');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the move back');

# A big tenant isolated on shards of its own (every co-located table), where it was.
$before = census($coord);
like(try_sql(q{SELECT isolate_tenant_to_new_shard('kaireon.tenants', 'acme', 'CASCADE', shard_transfer_mode => 'block_writes')}),
	qr/^\d+$/, 'acme is isolated on a shard of its own');
is(try_sql(q{SELECT shardminvalue = shardmaxvalue FROM pg_dist_shard
              WHERE shardid = get_shard_id_for_distribution_column('kaireon.tenants', 'acme')}), 't',
	'its shard holds one hash value');
is(worker_of($coord, 'acme'), $home->port, 'on the same worker');
same_rows(census($coord), $before, 'every table holds the same rows after the isolation');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the isolation');
is(try_sql(q{UPDATE kaireon.offers SET description = 'isolated' WHERE tenant_id = 'acme' AND id = 'saver' RETURNING id}), 'saver',
	'an audited change to the isolated acme');
like(try_sql(q{SELECT kaireon.recommend('acme', 'isolated-1', 'web', options => '{"dry_run": true}')}), qr/^\(1,/,
	'a decision for the isolated acme');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after a change to the isolated tenant');

my $updates = q{SELECT string_agg(tenant_id || ':' || n, ',' ORDER BY tenant_id) FROM (
                  SELECT tenant_id, count(*) AS n FROM kaireon.audit_logs
                   WHERE entity_type = 'offers' AND action = 'update' GROUP BY 1) s};
my %was = map { split /:/ } split /,/, try_sql($updates);
@scripts = ();
for my $i (1 .. 16)
{
	my $t = $tenants[ $i % 2 ];
	push @scripts, join("\n", map {
		my $offer = (qw(gold-card travel-card personal-loan mortgage saver))[ ($i + $_) % 5 ];
		qq{UPDATE kaireon.offers SET description = 'writer $i, change $_' WHERE tenant_id = '$t' AND id = '$offer';}
	} 1 .. 5) . "\n";
}
@results = run_clients($coord, @scripts);
is(client_errors(@results), '', '16 concurrent writers changed offers without an error');
is(try_sql($updates), join(',', map { "$_:" . (($was{$_} // 0) + 40) } @tenants),
	'each change is audited once (40 more update rows per tenant)');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the concurrent writers');

# 4. Retention, DSAR, a campaign and the maintenance jobs, tenants on different workers.
is(try_sql(q{SELECT string_agg(DISTINCT tenant_id, ',') FROM kaireon.run_retention() WHERE tenant_id IS NOT NULL}),
	'acme,globex', 'run_retention() runs for both tenants');
like(try_sql(q{CALL kaireon.run_retention_batched()}), qr/^\d+$/, 'run_retention_batched() runs (its run id)');
for my $t (@tenants)
{
	is(try_sql(qq{INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, segment_id, channel_ids, max_offers, status)
                  VALUES ('$t', 'camp', 'Campaign', 'web-home', 'affluent', '["email"]', 1, 'active')}), '',
		"$t: a campaign over segment affluent");
	# (called as Citus delegates it: the call alone, with the tenant as its argument)
	my $call = qq{SELECT kaireon.run_campaign('$t', 'camp')};
	like(try_sql("EXPLAIN (VERBOSE OFF, COSTS OFF) $call"), qr/Task Count: 1.*Node: host=\S+ port=$port{$t}/s,
		"$t: run_campaign is delegated to the tenant's worker");
	like(try_sql($call), qr/^\(/, "$t: run_campaign returns its run");
	is(try_sql(qq{SELECT format('%s|%s|%s', status, total_customers, error) FROM kaireon.campaign_runs
                   WHERE tenant_id = '$t' ORDER BY created_at DESC, run_number DESC LIMIT 1}),
		'completed|2|', "$t: the run completed for the segment's two customers");
	is(try_sql(qq{SELECT count(*) > 0 FROM kaireon.campaign_decisions WHERE tenant_id = '$t'}), 't',
		"$t: and writes its decisions");
}
for my $t (@tenants)
{
	my $export = try_sql(qq{SELECT kaireon.dsar_export('$t', 'cust-42', requested_by => 'dpo')});
	like($export, qr/"cust-42"/, "$t: dsar_export returns cust-42's data");
	unlike($export, qr/"cust-99"/, "$t: and no other customer's");
	like(try_sql(qq{SELECT kaireon.dsar_delete('$t', 'cust-42', requested_by => 'dpo')}), qr/^\{/, "$t: dsar_delete runs");
	is(try_sql(qq{SELECT (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = '$t' AND customer_id = 'cust-42')
                       + (SELECT count(*) FROM kaireon_t_$t.ds_customers WHERE customer_id = 'cust-42')}), '0',
		"$t: cust-42's interactions and customer row are gone");
}
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the DSAR erasures');
my $jobs = try_sql(q{SELECT count(*) FROM kaireon.maintenance_jobs()});
# The outbox on a cluster: a tenant's events go out in the order they were written (their
# transactions' time, then seq), also when a tenant moved to a node whose sequence range is below
# its old one (simulated: the later event has the smaller seq).
is(try_sql(q{CREATE TABLE public.delivered (n serial PRIMARY KEY, tenant text, event text);
             CREATE FUNCTION public.deliver_in_order(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
             LANGUAGE sql AS $$ INSERT INTO public.delivered (tenant, event) VALUES (tenant_id, event_id) $$;
             INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('order.test', 'public.deliver_in_order(text,text,text,jsonb)');}),
	'', 'an outbox handler recording the delivery order');
is(try_sql(q{INSERT INTO kaireon.outbox_events (tenant_id, id, seq, topic, created_at, next_attempt_at) VALUES
                 ('acme', 'ev-earlier', 900000000000, 'order.test', now() - interval '2 minutes', now() - interval '2 minutes'),
                 ('acme', 'ev-later', 7, 'order.test', now() - interval '1 minute', now() - interval '1 minute'),
                 ('globex', 'ev-globex', 8, 'order.test', now() - interval '1 minute', now() - interval '1 minute');}),
	'', 'events of two tenants, the later with a smaller seq');
like(try_sql(q{SELECT kaireon.publish_outbox(100)}), qr/^\d+$/, 'publish_outbox runs on the cluster');
is(try_sql(q{SELECT string_agg(event, ',' ORDER BY n) FROM public.delivered WHERE tenant = 'acme'}), 'ev-earlier,ev-later',
	"acme's events go out in the order they were written");
is(try_sql(q{SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM kaireon.outbox_events WHERE id LIKE 'ev-%'}),
	'ev-earlier:published,ev-globex:published,ev-later:published', "both tenants' events are published");
is(try_sql(q{SELECT count(*) || ' jobs; ' || coalesce(string_agg(format('%s %s: %s %s', job, status, error, left(detail::text, 300)), '; ' ORDER BY job)
                                                 FILTER (WHERE status <> 'succeeded'), 'all succeeded')
               FROM kaireon.run_maintenance()}),
	"$jobs jobs; all succeeded", 'run_maintenance() runs every job without an error');
is(try_sql(q{CALL kaireon.run_maintenance_batched()}), '', 'run_maintenance_batched() runs');
is(try_sql(q{SELECT coalesce(string_agg(format('%s %s: %s', job, status, error), '; ' ORDER BY job), 'all succeeded')
               FROM kaireon.maintenance_runs WHERE status <> 'succeeded'}),
	'all succeeded', 'and every job it ran succeeded');
is(try_sql($chains), 'acme:t,globex:t', 'both audit chains verify after the maintenance jobs');

# No node's server process crashed (the background workers run on every node).
for my $node ($coord, @workers)
{
	unlike(slurp_file($node->logfile), qr/terminated by signal|was terminated by exception/,
		$node->name . ': no server process crashed');
}

$_->stop for ($coord, @workers);
done_testing();
