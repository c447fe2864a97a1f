# The journey engine survives a kill -9 of the background worker in the middle of a batch
# (docs/journeys.md, "The engine"; issue 15's acceptance): after the crash restart every
# enrolment has each step exactly once, with each step's effects once, and nothing is lost.
#
# The crash is made deterministic, not timing-lucky: the worker advances due enrolments in
# batches of 10, earliest first. 40 enrolments of tenant "jt" (journey: decision, channel
# action with its delivery, a one-day wait) and, 25th in the order, one enrolment of tenant
# "jg" whose journey's condition_split reads an attribute of the tenant's customer data table,
# which this test has locked (ACCESS EXCLUSIVE). So the worker commits batches 1 and 2
# (20 enrolments), advances four enrolments of batch 3 in its open transaction, and then waits
# for the lock inside the fifth enrolment's pass. The test sees it there (the lock wait; the
# row locks of the five enrolments), then kills it. The postmaster restarts the server and
# the launcher the worker, whose first run of the job (an interval job runs when the worker
# starts) advances the 21 enrolments left due. The journeys job needs no recovery of its own
# (it is a frequent job: no 'running' history row): what is left to do is the enrolments
# still due, and the killed transaction left them as they were.
# Times are relative to now(); nothing waits for the clock to reach a moment.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('journey_crash');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'kaireon'
max_worker_processes = 16
restart_after_crash = on
kaireon.databases = 'jdb'
kaireon.worker_restart_delay = 1
kaireon.retention_schedule = 'off'
kaireon.partition_schedule = 'off'
kaireon.outbox_schedule = 'off'
kaireon.summary_schedule = 'off'
kaireon.volume_reset_schedule = 'off'
kaireon.suppression_schedule = 'off'
kaireon.score_schedule = 'off'
kaireon.dual_price_schedule = 'off'
kaireon.alert_schedule = 'off'
kaireon.campaign_schedule = 'off'
kaireon.journey_schedule = 'off'
kaireon.journey_batch_size = 10
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE jdb');
$node->safe_psql('jdb', 'CREATE EXTENSION kaireon');
ok( $node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'jdb'}),
	'the worker of jdb runs');

# Tenant jt: an offer on email, so each decision returns it and the channel action sends it
# (a delivery row and its outbox event). 40 enrolments, due one second apart an hour ago.
$node->safe_psql('jdb', q{
    INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('jt', 'JT', 'jt', '{"decisionTraceSampleRate": 0}');
    INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('jt', 'email', 'Email', 'email');
    INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('jt', 'o1', 'Gold', 'active', 80);
    INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('jt', 'o1-mail', 'o1', 'email', 'o1 mail');
    INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
        VALUES ('jt', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
    SELECT kaireon.publish_decision_flow('jt', 'main');
    INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jt', 'welcome', 'Welcome', $j$
    {"steps": [
      {"id": "start", "type": "entry_trigger", "next": "decide"},
      {"id": "decide", "type": "nba_decision", "channelId": "email", "onOffer": "send", "onNoOffer": "w"},
      {"id": "send", "type": "channel_action", "channelId": "email", "next": "w"},
      {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "done"},
      {"id": "done", "type": "exit"}]}
    $j$);
    SELECT kaireon.publish_journey('jt', 'welcome');
    CREATE TABLE public.base AS SELECT now() - interval '1 hour' AS at;
    SELECT count(*) FROM generate_series(1, 40) i, public.base b
     WHERE (kaireon.enroll_in_journey('jt', 'welcome', 'c' || lpad(i::text, 2, '0'),
                                      at => b.at + make_interval(secs => i)) ->> 'enrolled')::boolean;
});
# Tenant jg: a customer data table whose row the gate split reads; one enrolment, 25th due.
$node->safe_psql('jdb', q{
    INSERT INTO kaireon.tenants (id, name, slug) VALUES ('jg', 'JG', 'jg');
    INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('jg', 'sms', 'SMS', 'sms');
    INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('jg', 'customers', 'customers');
    INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
        ('jg', 'customers', 'customer_id', 'text', false, true, 1),
        ('jg', 'customers', 'tier', 'text', true, false, 2);
    SELECT kaireon.publish_data_schema('jg', 'customers');
    INSERT INTO kaireon_t_jg.ds_customers (customer_id, tier) VALUES ('g1', 'gold');
    INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jg', 'gated', 'Gated', $j$
    {"steps": [
      {"id": "start", "type": "entry_trigger", "next": "note"},
      {"id": "note", "type": "channel_action", "channelId": "sms", "next": "gate"},
      {"id": "gate", "type": "condition_split",
       "branches": [{"when": {"attribute": "tier", "operator": "eq", "value": "gold"}, "next": "w"}],
       "otherwise": "done"},
      {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "done"},
      {"id": "done", "type": "exit"}]}
    $j$);
    SELECT kaireon.publish_journey('jg', 'gated');
    SELECT kaireon.enroll_in_journey('jg', 'gated', 'g1', at => b.at + interval '24.5 seconds') ->> 'enrolled'
      FROM public.base b;
});
is( $node->safe_psql('jdb',
		q{SELECT string_agg(customer_id, ',' ORDER BY wait_until)
            FROM (SELECT customer_id, wait_until FROM kaireon.journey_enrollments ORDER BY wait_until OFFSET 20 LIMIT 10) x}),
	'c21,c22,c23,c24,g1,c25,c26,c27,c28,c29',
	'the third batch of 10: four enrolments of jt, the gated one, five more');

# The test holds the gate table; the journeys job runs every second from now on.
my $holder = $node->background_psql('jdb');
$holder->query_safe('BEGIN; LOCK TABLE kaireon_t_jg.ds_customers IN ACCESS EXCLUSIVE MODE');
$node->safe_psql('postgres', q{ALTER SYSTEM SET kaireon.journey_schedule = '1s'; SELECT pg_reload_conf()});
my $worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'jdb'});
ok( $node->poll_query_until('jdb',
		qq{SELECT count(*) = 1 FROM pg_locks WHERE pid = $worker AND NOT granted
             AND relation = 'kaireon_t_jg.ds_customers'::regclass}),
	'the worker waits for the gate table inside the pass of the gated enrolment');

# Where the worker is: batches 1 and 2 committed (20 enrolments waiting, their decisions and
# deliveries); in its open transaction it holds the rows of c21..c24 (advanced) and g1 (in
# its pass), and has written (a transaction id).
is( $node->safe_psql('jdb',
		q{SELECT count(*) || ' ' || min(customer_id) || '-' || max(customer_id) FROM kaireon.journey_enrollments WHERE current_step_id = 'w'}),
	'20 c01-c20', 'before the kill: the first two batches committed');
is( $node->safe_psql('jdb',
		q{SELECT (SELECT count(*) FROM kaireon.channel_deliveries WHERE tenant_id = 'jt') || ' '
              || (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'jt' AND topic = 'channel.delivery')}),
	'20 20', 'and their deliveries and delivery events');
is( $node->safe_psql('jdb', q{
        BEGIN;
        SELECT string_agg(customer_id, ',' ORDER BY customer_id) FROM kaireon.journey_enrollments
         WHERE status = 'active' AND customer_id NOT IN
               (SELECT customer_id FROM kaireon.journey_enrollments FOR UPDATE SKIP LOCKED);
        ROLLBACK;}),
	'c21,c22,c23,c24,g1', 'the worker holds the four enrolments of batch 3 it advanced and the gated one');
is($node->safe_psql('postgres', qq{SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = $worker}),
	't', 'its open transaction has written');
is($node->safe_psql('jdb', q{SELECT count(*) FROM kaireon.maintenance_runs WHERE job = 'journeys'}),
	'0', 'the run has no history row yet (a frequent job writes it when it ends)');

my $log_offset = -s $node->logfile;
kill 'KILL', $worker;
$node->wait_for_log(qr/terminating any other active server processes/, $log_offset);
eval { $holder->quit };    # its server process went with the crash restart
ok($node->poll_query_until('jdb', 'SELECT 1', '1'), 'the server is back after the crash restart');
ok( $node->poll_query_until('postgres',
		qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'jdb' AND pid <> $worker}),
	'the launcher started the worker again');
my $new_worker = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kaireon maintenance' AND datname = 'jdb'});
ok( $node->poll_query_until('jdb',
		qq{SELECT count(*) = 1 FROM kaireon.maintenance_runs WHERE job = 'journeys' AND status = 'succeeded' AND pid = $new_worker}),
	'the restarted worker ran the journeys job (an interval job runs when the worker starts)');
is( $node->safe_psql('jdb',
		q{SELECT string_agg(source || ' ' || trigger || ' ' || (detail ->> 'enrollments') || ' ' || (detail ->> 'steps') || ' ' || (detail ->> 'errors'), '; ')
            FROM kaireon.maintenance_runs WHERE job = 'journeys'}),
	'worker schedule 21 63 0',
	'one run: it advanced the 21 enrolments left (3 steps each) without error; the killed run left nothing');

# Each enrolment: each step exactly once, in order, and now waiting a day; nothing lost.
is( $node->safe_psql('jdb', q{
        SELECT string_agg(steps || ' x' || n, '; ' ORDER BY steps) FROM (
            SELECT steps, count(*) AS n FROM (
                SELECT e.journey_id || ': ' || string_agg(h ->> 'step' || coalesce('/' || (h ->> 'outcome'), ''), ' ' ORDER BY k) AS steps
                  FROM kaireon.journey_enrollments e, jsonb_array_elements(e.history) WITH ORDINALITY x (h, k)
                 GROUP BY e.tenant_id, e.id, e.journey_id) p
             GROUP BY steps) q}),
	'gated: start note/event gate/branch 1 w/waiting x1; welcome: start decide/offer send/delivery w/waiting x40',
	'every enrolment took each step exactly once');
is( $node->safe_psql('jdb',
		q{SELECT count(*) FROM kaireon.journey_enrollments
           WHERE status = 'active' AND current_step_id = 'w' AND wait_kind = 'duration'
             AND wait_until > now() + interval '23 hours'}),
	'41', 'all 41 wait at w, due in a day');
# The effects, once per enrolment: one recorded decision (its interaction id in the history),
# one delivery of it with one delivery event; the gated one's outbox event.
is( $node->safe_psql('jdb', q{
        SELECT count(*) || ' ' || count(DISTINCT e.id) || ' ' || count(*) FILTER (WHERE i.n = 1 AND d.n = 1 AND o.n = 1)
          FROM kaireon.journey_enrollments e
          CROSS JOIN LATERAL (SELECT h -> 'reason' ->> 'interactionId' AS interaction_id
                                FROM jsonb_array_elements(e.history) h WHERE h ->> 'step' = 'decide') dec
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM kaireon.interaction_history ih
                               WHERE ih.tenant_id = 'jt' AND ih.customer_id = e.customer_id
                                 AND ih.interaction_type = 'recommendation') i
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM kaireon.channel_deliveries cd
                               WHERE cd.tenant_id = 'jt' AND cd.interaction_id = dec.interaction_id) d
          CROSS JOIN LATERAL (SELECT count(*) AS n FROM kaireon.outbox_events ob
                               WHERE ob.tenant_id = 'jt' AND ob.topic = 'channel.delivery'
                                 AND ob.payload -> 'payload' ->> 'enrollmentId' = e.id) o
         WHERE e.tenant_id = 'jt'}),
	'40 40 40', 'each of the 40 has one decision, one delivery and one delivery event');
is( $node->safe_psql('jdb',
		q{SELECT (SELECT count(*) FROM kaireon.channel_deliveries WHERE tenant_id = 'jt') || ' '
              || (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'jt' AND interaction_type = 'recommendation') || ' '
              || (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'jt') || ' '
              || (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'jg' AND topic = 'journey.channel_action')}),
	'40 40 40 1', 'in all: no decision, delivery or event of the killed batch was left behind or doubled');

# A further run finds nothing due.
is( $node->safe_psql('jdb',
		q{SELECT count(*) FROM kaireon.advance_journeys(NULL, now(), 100)}),
	'0', 'nothing is left due');

done_testing();
