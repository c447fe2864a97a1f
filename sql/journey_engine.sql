-- The journey engine (docs/journeys.md, "The engine"): kaireon.advance_journeys takes due
-- enrolments through their frozen version's steps. Every step type with each branch, waits
-- of each kind, max_duration_days, the history, the journeys job. Times are pinned.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('jen', 'Engine', 'jen', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES
    ('jen', 'email', 'Email', 'email'), ('jen', 'sms', 'SMS', 'sms');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('jen', 'o1', 'Gold', 'active', 80);
-- o1 has a creative on email only: sms decisions have no offer
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('jen', 'o1-mail', 'o1', 'email', 'o1 mail');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('jen', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('jen', 'main');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('jen', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('jen', 'customers', 'customer_id', 'text', false, true, 1),
    ('jen', 'customers', 'tier', 'text', true, false, 2),
    ('jen', 'customers', 'score', 'integer', true, false, 3);
SELECT kaireon.publish_data_schema('jen', 'customers');
INSERT INTO kaireon_t_jen.ds_customers (customer_id, tier, score) VALUES
    ('seg', 'vip', 1), ('attr', 'gold', 50), ('out', 'basic', 1), ('exp', 'basic', 1), ('none', 'basic', 1), ('big', 'basic', 90);
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('jen', 'vip', 'VIP', 'customers', '[{"field": "tier", "operator": "eq", "value": "vip"}]');
SELECT kaireon.publish_segment('jen', 'vip') IS NOT NULL AS segment_published;
-- an experiment whose new assignments are all holdout; 'exp' was assigned champion before
INSERT INTO kaireon.experiments (tenant_id, id, key, name, status, holdout_percent, started_at)
    VALUES ('jen', 'e1', 'exp-1', 'Exp', 'running', 100, '2015-01-01');
INSERT INTO kaireon.experiment_assignments (tenant_id, customer_id, experiment_id, variant)
    VALUES ('jen', 'exp', 'e1', 'champion');
-- 'out' converted two days before the split runs; 'none' converted 30 days before
SELECT kaireon.respond('jen', 'out', 'conversion', offer_id => 'o1', occurred_at => '2015-03-08 10:00+00') ? 'interactionId' AS responded;
SELECT kaireon.respond('jen', 'none', 'conversion', offer_id => 'o1', occurred_at => '2015-02-08 10:00+00') ? 'interactionId' AS responded;

CREATE FUNCTION pg_temp.steps(p_at timestamptz, p_max integer DEFAULT 100)
    RETURNS TABLE (customer text, step text, type text, outcome text) LANGUAGE sql AS $f$
    SELECT customer_id, step_id, step_type, outcome FROM kaireon.advance_journeys('jen', p_at, p_max)
$f$;
CREATE FUNCTION pg_temp.state(p_journey text)
    RETURNS TABLE (customer text, status text, step text, wait_until timestamptz, wait_kind text, wait_event text)
    LANGUAGE sql AS $f$
    SELECT customer_id, status, current_step_id, wait_until, wait_kind, wait_event_type
      FROM kaireon.journey_enrollments WHERE tenant_id = 'jen' AND journey_id = p_journey ORDER BY customer_id
$f$;

-- ---------------------------------------------------------------------------------------
-- 1. Decision, action, split (each branch), exit.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jen', 'flow', 'Flow', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "decide"},
  {"id": "decide", "type": "nba_decision", "channelId": "email", "onOffer": "send", "onNoOffer": "split"},
  {"id": "send", "type": "channel_action", "channelId": "email", "template": "t1", "next": "split"},
  {"id": "split", "type": "condition_split", "branches": [
     {"when": {"segmentId": "vip"}, "next": "x-seg"},
     {"when": {"attribute": "score", "operator": "gte", "value": 50}, "next": "x-attr"},
     {"when": {"outcome": "conversion", "withinDays": 7}, "next": "x-out"},
     {"when": {"experimentId": "exp-1", "arm": "champion"}, "next": "x-exp"}],
   "otherwise": "x-none"},
  {"id": "x-seg", "type": "exit", "reason": "segment"},
  {"id": "x-attr", "type": "exit", "reason": "attribute"},
  {"id": "x-out", "type": "exit", "reason": "outcome"},
  {"id": "x-exp", "type": "exit", "reason": "experiment"},
  {"id": "x-none", "type": "exit", "reason": "otherwise"}]}
$j$);
SELECT kaireon.publish_journey('jen', 'flow');
-- one journey with an sms decision (no offer) and an action without a decision
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jen', 'nooffer', 'No offer', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "decide"},
  {"id": "decide", "type": "nba_decision", "channelId": "sms", "onOffer": "x", "onNoOffer": "notify"},
  {"id": "notify", "type": "channel_action", "channelId": "sms", "offerId": "o1", "next": "x"},
  {"id": "x", "type": "exit"}]}
$j$);
SELECT kaireon.publish_journey('jen', 'nooffer');
SELECT c, kaireon.enroll_in_journey('jen', 'flow', c, at => '2015-03-10 09:00+00') ->> 'enrolled' AS enrolled
  FROM unnest(ARRAY['seg', 'attr', 'out', 'exp', 'none', 'big']) c;
SELECT kaireon.enroll_in_journey('jen', 'nooffer', 'seg', at => '2015-03-10 09:00+00') ->> 'enrolled' AS enrolled;
-- nothing is due before the entry time
SELECT count(*) AS steps_before FROM pg_temp.steps('2015-03-10 08:59+00');
-- each customer takes its branch (the first that holds: 'big' scores 90, 'none' converted too long ago)
SELECT * FROM pg_temp.steps('2015-03-10 10:00+00') ORDER BY customer, step;
SELECT * FROM pg_temp.state('flow');
SELECT * FROM pg_temp.state('nooffer');
-- a second run finds nothing due: each step ran once
SELECT count(*) AS steps_again FROM pg_temp.steps('2015-03-10 10:00+00');
-- the history: entry, then one entry per step with its time, outcome and reason
SELECT h ->> 'step' AS step, h ->> 'type' AS type, h ->> 'outcome' AS outcome, h ->> 'at' AS at,
       h -> 'reason' ? 'interactionId' AS has_decision
  FROM kaireon.journey_enrollments e, jsonb_array_elements(e.history) WITH ORDINALITY h (h, n)
 WHERE e.tenant_id = 'jen' AND e.journey_id = 'flow' AND e.customer_id = 'attr' ORDER BY n;
SELECT e.history -> -1 -> 'reason' AS exit_reason FROM kaireon.journey_enrollments e
 WHERE e.tenant_id = 'jen' AND e.journey_id = 'flow' AND e.customer_id = 'attr';
-- the decisions were recorded; each offer's action made one delivery of it (and its event)
SELECT count(*) AS deliveries,
       count(*) FILTER (WHERE d.interaction_id IN (SELECT (h -> 'reason' ->> 'interactionId')
                                                     FROM kaireon.journey_enrollments e, jsonb_array_elements(e.history) h
                                                    WHERE e.tenant_id = 'jen' AND h ->> 'type' = 'nba_decision')) AS of_the_decisions
  FROM kaireon.channel_deliveries d WHERE d.tenant_id = 'jen';
SELECT count(*) AS delivery_events, count(*) FILTER (WHERE payload -> 'payload' ->> 'template' = 't1') AS with_template
  FROM kaireon.outbox_events WHERE tenant_id = 'jen' AND topic = 'channel.delivery';
-- without a decision, the action is an outbox event only
SELECT payload ->> 'customerId' AS customer, payload ->> 'stepId' AS step, payload ->> 'offerId' AS offer,
       payload ->> 'at' AS at
  FROM kaireon.outbox_events WHERE tenant_id = 'jen' AND topic = 'journey.channel_action';

-- ---------------------------------------------------------------------------------------
-- 2. Waits: duration, until (future and past), event with its timeout; max_duration_days.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.journeys (tenant_id, id, name, max_duration_days, definition) VALUES ('jen', 'waits', 'Waits', 30, $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "w-dur"},
  {"id": "w-dur", "type": "wait", "duration": {"days": 1, "hours": 2}, "next": "w-until"},
  {"id": "w-until", "type": "wait", "until": "2015-03-20T12:00:00Z", "next": "w-past"},
  {"id": "w-past", "type": "wait", "until": "2015-01-01T00:00:00Z", "next": "w-event"},
  {"id": "w-event", "type": "wait", "event": {"eventType": "click"}, "timeout": {"hours": 48},
   "next": "x-event", "timeoutNext": "w-long"},
  {"id": "w-long", "type": "wait", "duration": {"days": 100}, "next": "x-event"},
  {"id": "x-event", "type": "exit", "reason": "clicked"}]}
$j$);
SELECT kaireon.publish_journey('jen', 'waits');
SELECT kaireon.enroll_in_journey('jen', 'waits', c, at => '2015-03-10 09:00+00') ->> 'enrolled' AS enrolled
  FROM unnest(ARRAY['w1', 'w2']) c;
-- entry, then the duration wait begins: due 26 hours later
SELECT * FROM pg_temp.steps('2015-03-10 09:00+00') ORDER BY customer, step;
SELECT * FROM pg_temp.state('waits');
SELECT count(*) AS not_yet FROM pg_temp.steps('2015-03-11 10:59+00');
-- the duration ends; the until wait begins (its fixed time)
SELECT * FROM pg_temp.steps('2015-03-11 11:00+00') ORDER BY customer, step;
SELECT * FROM pg_temp.state('waits');
-- the until wait ends; the past until passes at once; the event wait begins with its timeout
SELECT * FROM pg_temp.steps('2015-03-20 12:00+00') ORDER BY customer, step;
SELECT * FROM pg_temp.state('waits');
-- events: another type, or one from before the wait began, wakes nobody; w1's click wakes it
-- (due at the click's time: it goes to next), w2 times out
SELECT kaireon.respond('jen', 'w1', 'conversion', offer_id => 'o1', occurred_at => '2015-03-21 07:00+00') ->> 'journeysWoken' AS woken;
SELECT kaireon.respond('jen', 'w2', 'click', offer_id => 'o1', occurred_at => '2015-03-20 11:00+00') ->> 'journeysWoken' AS woken;
SELECT kaireon.respond('jen', 'w1', 'click', offer_id => 'o1', occurred_at => '2015-03-21 08:00+00') ->> 'journeysWoken' AS woken;
SELECT kaireon.respond('jen', 'w1', 'click', offer_id => 'o1', occurred_at => '2015-03-21 08:30+00') ->> 'journeysWoken' AS woken_again;
SELECT * FROM pg_temp.state('waits');
SELECT * FROM pg_temp.steps('2015-03-21 08:00+00') ORDER BY customer, step;
SELECT * FROM pg_temp.steps('2015-03-22 12:00+00') ORDER BY customer, step;
-- w2's long wait is cut at max_duration_days (30 days after entry): it exits there
SELECT * FROM pg_temp.state('waits');
SELECT * FROM pg_temp.steps('2015-04-09 09:00+00') ORDER BY customer, step;
SELECT customer_id, status, current_step_id, history -> -1 ->> 'outcome' AS outcome, history -> -1 -> 'reason' AS reason,
       jsonb_array_length(history) AS entries
  FROM kaireon.journey_enrollments WHERE tenant_id = 'jen' AND journey_id = 'waits' ORDER BY customer_id;
SELECT h ->> 'step' AS step, h ->> 'outcome' AS outcome, h ->> 'at' AS at, h -> 'reason' AS reason
  FROM kaireon.journey_enrollments e, jsonb_array_elements(e.history) WITH ORDINALITY h (h, n)
 WHERE e.tenant_id = 'jen' AND e.journey_id = 'waits' AND e.customer_id = 'w1' ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 3. Batches, errors, bad calls, the index, the job.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.enroll_in_journey('jen', 'waits', c, at => '2015-05-01 09:00+00') ->> 'enrolled' AS enrolled
  FROM unnest(ARRAY['b1', 'b2', 'b3']) c;
-- at most max_enrollments per call, earliest first
SELECT count(DISTINCT customer) AS enrolments FROM pg_temp.steps('2015-05-01 09:00+00', 2);
SELECT count(DISTINCT customer) AS enrolments FROM pg_temp.steps('2015-05-01 09:00+00', 2);
-- a failing pass is rolled back alone, recorded, and due again 5 minutes later
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jen', 'bad', 'Bad', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "split"},
  {"id": "split", "type": "condition_split", "branches": [{"when": {"segmentId": "no-such"}, "next": "x"}], "otherwise": "x"},
  {"id": "x", "type": "exit"}]}
$j$);
SELECT kaireon.publish_journey('jen', 'bad');
SELECT kaireon.enroll_in_journey('jen', 'bad', 'e1', at => '2015-05-02 09:00+00') ->> 'enrolled' AS enrolled;
SELECT * FROM pg_temp.steps('2015-05-02 09:00+00');
SELECT status, current_step_id, wait_until, history -> -1 ->> 'type' AS type, jsonb_array_length(history) AS entries
  FROM kaireon.journey_enrollments WHERE tenant_id = 'jen' AND journey_id = 'bad';
SELECT kaireon.advance_journeys('jen', '2015-05-02 09:00+00', 0);
SELECT kaireon.advance_journeys('jen', 'infinity', 10);
SELECT kaireon.advance_journeys('jen', NULL, 10);
-- an at more than 5 minutes after the transaction's time: 22023 (the waits it would start
-- would hold the enrolments until then), nothing advanced; 4 minutes ahead is accepted
CREATE TEMP TABLE before_future AS
    SELECT id, status, current_step_id, wait_until, jsonb_array_length(history) AS entries
      FROM kaireon.journey_enrollments WHERE tenant_id = 'jen';
\set VERBOSITY default
SELECT kaireon.advance_journeys('jen', '2999-01-01 00:00+00', 10);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY sqlstate
SELECT kaireon.advance_journeys('jen', now() + interval '6 minutes', 10);
SELECT kaireon.advance_journeys(NULL, now() + interval '6 minutes');
\set VERBOSITY terse
SELECT count(*) AS changed
  FROM (SELECT * FROM kaireon.journey_enrollments WHERE tenant_id = 'jen') e FULL JOIN before_future b USING (id)
 WHERE (e.status, e.current_step_id, e.wait_until, jsonb_array_length(e.history))
       IS DISTINCT FROM (b.status, b.current_step_id, b.wait_until, b.entries);
BEGIN;
SELECT count(*) >= 0 AS accepted FROM kaireon.advance_journeys('jen', now() + interval '4 minutes', 1);
ROLLBACK;
DROP TABLE before_future;
-- the due enrolments are read through the partial index
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM kaireon.journey_enrollments WHERE status = 'active' AND wait_until <= '2015-05-01' ORDER BY wait_until LIMIT 10;
RESET enable_seqscan;
-- the job: listed, and runs the due enrolments at now() (e1 made due a minute before). The
-- job's time is the wall clock's, so every other active enrolment is held (not due) while it
-- runs and e1 is set aside after it: what the job finds never depends on the date the suite
-- runs (CI runs it under faketime at several dates)
SELECT job, schedule_setting FROM kaireon.maintenance_jobs() WHERE job = 'journeys';
CREATE TEMP TABLE held AS
    SELECT id, wait_until FROM kaireon.journey_enrollments
     WHERE status = 'active' AND NOT (tenant_id = 'jen' AND journey_id = 'bad');
UPDATE kaireon.journey_enrollments x SET wait_until = NULL FROM held h WHERE x.id = h.id;
UPDATE kaireon.journey_enrollments SET wait_until = now() - interval '1 minute' WHERE tenant_id = 'jen' AND journey_id = 'bad';
SELECT job, status, detail ? 'enrollments' AS counted FROM kaireon.run_maintenance(ARRAY['journeys']);
SELECT count(*) AS e1_retried FROM kaireon.journey_enrollments
 WHERE tenant_id = 'jen' AND journey_id = 'bad' AND jsonb_array_length(history) = 3;
UPDATE kaireon.journey_enrollments x SET wait_until = h.wait_until FROM held h WHERE x.id = h.id;
UPDATE kaireon.journey_enrollments SET status = 'exited' WHERE tenant_id = 'jen' AND journey_id = 'bad';
DROP TABLE held;

-- the attribute operators (a condition on the customer's data row; no row or value: false)
SELECT op, v, kaireon_internal._journey_condition('jen', c, jsonb_build_object('attribute', a, 'operator', op, 'value', v), '2015-05-01') AS holds
  FROM (VALUES ('attr', 'tier', 'eq', '"gold"'::jsonb), ('attr', 'tier', 'neq', '"gold"'), ('attr', 'tier', 'in', '["gold", "vip"]'),
               ('attr', 'tier', 'not_in', '["gold"]'), ('attr', 'score', 'lt', '51'), ('attr', 'score', 'gt', '50'),
               ('attr', 'tier', 'gt', '"basic"'), ('attr', 'tier', 'lte', '"basic"'), ('attr', 'score', 'gt', '"10"'),
               ('nobody', 'tier', 'neq', '"x"'), ('attr', 'nothing', 'neq', '"x"')) AS t (c, a, op, v);

-- exitOnConversion: a conversion since entry ends the enrolment at its next pass (one before
-- entry does not count)
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jen', 'conv', 'Conv', $j$
{"exitOnConversion": true, "steps": [
  {"id": "start", "type": "entry_trigger", "next": "w"},
  {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "x"},
  {"id": "x", "type": "exit"}]}
$j$);
SELECT kaireon.publish_journey('jen', 'conv');
SELECT kaireon.respond('jen', 'cv2', 'conversion', offer_id => 'o1', occurred_at => '2015-05-31 09:00+00') ? 'interactionId' AS responded;
SELECT kaireon.enroll_in_journey('jen', 'conv', c, at => '2015-06-01 09:00+00') ->> 'enrolled' AS enrolled
  FROM unnest(ARRAY['cv1', 'cv2']) c;
SELECT * FROM pg_temp.steps('2015-06-01 09:00+00') ORDER BY customer, step;
SELECT kaireon.respond('jen', 'cv1', 'conversion', offer_id => 'o1', occurred_at => '2015-06-01 12:00+00') ? 'interactionId' AS responded;
SELECT * FROM pg_temp.steps('2015-06-02 09:00+00') ORDER BY customer, step;
SELECT customer_id, status, current_step_id, history -> -1 -> 'reason' AS reason
  FROM kaireon.journey_enrollments WHERE tenant_id = 'jen' AND journey_id = 'conv' ORDER BY customer_id;

-- an attribute condition reads the customer's row through the table's primary key (tenant_id,
-- key), never the whole table: it compared the key as text and without the tenant, a full scan
-- of the customer data table at every split (found by test/bench/journeys.sh). With 5,000 more
-- customers (a primary key of many leaf pages) and sequential scans disabled, the condition
-- reads a few index blocks (one descent), not the whole index.
INSERT INTO kaireon_t_jen.ds_customers (customer_id, tier, score) SELECT 'bulk' || i, 'basic', i FROM generate_series(1, 5000) i;
ANALYZE kaireon_t_jen.ds_customers;
SET enable_seqscan = off;
SELECT pg_stat_force_next_flush();
SELECT idx_blks_hit + idx_blks_read AS b0, pg_relation_size('kaireon_t_jen.ds_customers_pkey') / 8192 > 10 AS big_index
  FROM pg_statio_user_indexes WHERE indexrelid = 'kaireon_t_jen.ds_customers_pkey'::regclass \gset
\echo :big_index
SELECT kaireon_internal._journey_condition('jen', 'attr', '{"attribute": "tier", "operator": "eq", "value": "gold"}', '2015-05-01') AS holds;
SELECT pg_stat_force_next_flush();
SELECT idx_blks_hit + idx_blks_read - :b0 <= 3 AS one_descent
  FROM pg_statio_user_indexes WHERE indexrelid = 'kaireon_t_jen.ds_customers_pkey'::regclass;
-- a key of another type (bigint) is compared in its type; an id that is no value of it has no row
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('jnum', 'Num', 'jnum');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('jnum', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('jnum', 'customers', 'customer_no', 'bigint', false, true, 1),
    ('jnum', 'customers', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('jnum', 'customers') IS NOT NULL AS published;
INSERT INTO kaireon_t_jnum.ds_customers (customer_no, tier) VALUES (7, 'gold'), (8, 'basic');
BEGIN;
SELECT seq_scan AS s0, idx_scan AS i0 FROM pg_stat_xact_user_tables WHERE relid = 'kaireon_t_jnum.ds_customers'::regclass \gset
SELECT c, kaireon_internal._journey_condition('jnum', c, '{"attribute": "tier", "operator": "eq", "value": "gold"}', '2015-05-01') AS holds
  FROM unnest(ARRAY['7', '8', '9']) c;
SELECT seq_scan - :s0 AS seq_scans, idx_scan - :i0 AS index_scans
  FROM pg_stat_xact_user_tables WHERE relid = 'kaireon_t_jnum.ds_customers'::regclass;
COMMIT;
SELECT c, kaireon_internal._journey_condition('jnum', c, '{"attribute": "tier", "operator": "eq", "value": "gold"}', '2015-05-01') AS holds
  FROM unnest(ARRAY['x7', '99999999999999999999', '']) c;
RESET enable_seqscan;

-- the tenants of this file go, as the other journey files' do
DELETE FROM kaireon.tenants WHERE id IN ('jen', 'jnum');
DROP SCHEMA kaireon_t_jen CASCADE;
DROP SCHEMA kaireon_t_jnum CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id IN ('jen', 'jnum');
SELECT count(*) AS left_behind FROM kaireon.tenants WHERE id IN ('jen', 'jnum');
