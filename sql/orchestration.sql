-- Alert rules and channel deliveries (docs/orchestration.md): alert rules validated when
-- written (22023 naming the rule and the value), every metric with a case that fires and one
-- that does not, operators, the cooldown exactly, paused rules skipped, the tenant confined,
-- bounded calls, the maintenance job; deliveries created once per idempotency key, every
-- transition kind of kaireon.delivery_status (forward, skipped steps, late, duplicate,
-- terminal, illegal with nothing written), and opens and clicks recorded once as responses
-- (outcome rows, the impression mirror, a trigger rule firing once). Times are pinned.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('alr', 'Alerts', 'alr', '{"decisionTraceSampleRate": 0}'),
    ('alr2', 'Alerts two', 'alr2', '{"decisionTraceSampleRate": 0}'),
    ('alr3', 'Alerts three', 'alr3', '{}');
-- runs a statement expected to fail: its SQLSTATE and message, generated ids masked
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>', 'g');
END $$;

-- ---------------------------------------------------------------------------------------
-- 1. Validation when written: 22023 naming the rule and the value; nothing written.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr', 'bad1', 'Typo', 'decisons', 'gt', 1);
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr', 'bad2', 'NaN', 'decisions', 'gt', 'NaN');
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr', 'bad3', 'Inf', 'decisions', 'gt', '-Infinity');
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold, window_minutes)
    VALUES ('alr', 'bad4', 'Long', 'decisions', 'gt', 1, 50000);
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold, channels)
    VALUES ('alr', 'bad5', 'Channels', 'decisions', 'gt', 1, '["email:ops@example.com", 7]');
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr', 'bad6', '', 'decisions', 'gt', 1);
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr', 'bad7', 'Operator', 'decisions', 'above', 1);
-- an update is checked too
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold, status)
    VALUES ('alr', 'good', 'Good', 'decisions', 'gt', 1, 'paused');
UPDATE kaireon.alert_rules SET metric = 'latency' WHERE tenant_id = 'alr' AND id = 'good';
UPDATE kaireon.alert_rules SET threshold = 'Infinity' WHERE tenant_id = 'alr' AND id = 'good';
DELETE FROM kaireon.alert_rules WHERE tenant_id = 'alr' AND id = 'good';
SELECT count(*) AS rules_written FROM kaireon.alert_rules WHERE tenant_id = 'alr';
SELECT string_agg(metric, ', ') AS metrics FROM kaireon.alert_metrics();

-- bad calls
SELECT * FROM kaireon.evaluate_alerts(at => NULL);
SELECT * FROM kaireon.evaluate_alerts(at => 'infinity');
SELECT * FROM kaireon.evaluate_alerts(max_rules => 0);
-- a time in the future would hold the rules until then (their last evaluation and cooldown):
-- refused beyond 5 minutes after now, nothing evaluated; a minute ahead is accepted
SELECT * FROM kaireon.evaluate_alerts(at => '2999-01-01 00:00+00');
SELECT count(*) AS evaluated FROM kaireon.evaluate_alerts('alr', now() + interval '1 minute', alert_rule_id => 'no-such-rule');

-- ---------------------------------------------------------------------------------------
-- 2. Every metric: data at pinned times, one rule that fires and one that does not.
--    The window is [at - window_minutes, at); at = 2001-03-01 12:00.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('alr', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('alr', 'o1', 'Gold', 'active', 80);
-- decisions: 3 in the window (one at its start), one just after it, one before it
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, recommendation_id, rank, offer_id)
SELECT 'alr', 'd' || i, t, 'c' || i, 'recommendation', 'rec' || i, 1, 'o1'
  FROM (VALUES (1, timestamptz '2001-03-01 11:55'), (2, '2001-03-01 11:58'), (3, '2001-03-01 11:59:59'),
               (4, '2001-03-01 12:00'), (5, '2001-03-01 11:54:59')) AS v (i, t);
-- outcomes: a conversion and a click in the window, a conversion before it
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, outcome_type_key, recommendation_id, rank, offer_id)
VALUES ('alr', 'x1', '2001-03-01 11:57', 'c1', 'outcome', 'conversion', 'rec1', 1, 'o1'),
       ('alr', 'x2', '2001-03-01 11:58', 'c2', 'outcome', 'click', 'rec2', 1, 'o1'),
       ('alr', 'x3', '2001-03-01 11:00', 'c3', 'outcome', 'conversion', 'rec3', 1, 'o1');
-- traced decisions: 2 + 1 candidates dropped by contact policies in the window, 5 before it
INSERT INTO kaireon.decision_traces (tenant_id, request_id, customer_id, candidate_count, after_qualification,
                                     after_suppression, after_contact_policy, final_count, created_at)
VALUES ('alr', 'q1', 'c1', 5, 5, 4, 2, 1, '2001-03-01 11:56'),
       ('alr', 'q2', 'c2', 3, 3, 3, 2, 1, '2001-03-01 11:57'),
       ('alr', 'q3', 'c3', 9, 9, 9, 4, 1, '2001-03-01 10:00');
-- caps: one volume constraint at its limit, one below; one budget used up
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, max_volume, period, current_count, reset_at) VALUES
    ('alr', 'v-full', 'Full', 'global', 10, 'daily', 10, '2001-03-02'),
    ('alr', 'v-room', 'Room', 'global', 10, 'daily', 3, '2001-03-02'),
    ('alr', 'v-past', 'Reset due', 'global', 10, 'daily', 10, '2001-03-01 06:00');
INSERT INTO kaireon.budget_allocations (tenant_id, id, scope, period_type, max_impressions, used_impressions) VALUES
    ('alr', 'b-used', 'global', 'total', 100, 100);
-- model drift: a feature_drift check of 0.31 in the window, a psi of 0.9 before it, a ks_test (not PSI)
INSERT INTO kaireon.algorithm_models (tenant_id, id, key, name, model_type) VALUES ('alr', 'm1', 'm1', 'M1', 'scorecard');
INSERT INTO kaireon.model_drift_checks (tenant_id, model_id, check_type, drift_score, created_at) VALUES
    ('alr', 'm1', 'feature_drift', 0.31, '2001-03-01 11:50'),
    ('alr', 'm1', 'psi', 0.12, '2001-03-01 11:51'),
    ('alr', 'm1', 'ks_test', 0.95, '2001-03-01 11:52'),
    ('alr', 'm1', 'psi', 0.9, '2001-03-01 09:00');
-- job failures: a failed campaign run and a failed pipeline run in the window, a completed one
INSERT INTO kaireon.runs (tenant_id, id, name) VALUES ('alr', 'camp', 'Campaign');
INSERT INTO kaireon.campaign_runs (tenant_id, campaign_id, run_number, status, completed_at) VALUES
    ('alr', 'camp', 1, 'failed', '2001-03-01 11:40'), ('alr', 'camp', 2, 'completed', '2001-03-01 11:41'),
    ('alr', 'camp', 3, 'failed', '2001-02-28 11:41');
INSERT INTO kaireon.pipelines (tenant_id, id, name) VALUES ('alr', 'p1', 'Pipeline');
INSERT INTO kaireon.pipeline_runs (tenant_id, pipeline_id, status, completed_at) VALUES
    ('alr', 'p1', 'failed', '2001-03-01 11:45');
-- dead letters: one in the window
INSERT INTO kaireon.dead_letter_events (tenant_id, topic, failed_at) VALUES
    ('alr', 'x', '2001-03-01 11:59'), ('alr', 'x', '2001-03-01 08:00');
-- delivery failures: a bounce in the window, a failure before it, a delivered one
INSERT INTO kaireon.channel_deliveries (tenant_id, channel_type, status, status_at) VALUES
    ('alr', 'email', 'bounced', '2001-03-01 11:30'), ('alr', 'email', 'failed', '2001-03-01 09:00'),
    ('alr', 'email', 'delivered', '2001-03-01 11:31');
-- the other tenant has plenty of everything: none of it counts for alr
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, outcome_type_key)
SELECT 'alr2', 'z' || i, '2001-03-01 11:58', 'c', CASE WHEN i % 2 = 0 THEN 'recommendation' ELSE 'outcome' END,
       CASE WHEN i % 2 = 0 THEN NULL ELSE 'conversion' END
  FROM generate_series(1, 40) i;
INSERT INTO kaireon.dead_letter_events (tenant_id, topic, failed_at) SELECT 'alr2', 'x', '2001-03-01 11:59' FROM generate_series(1, 9);

-- the rules: for each metric one that fires (-y) and one that does not (-n); windows of 5
-- minutes unless a longer one is needed
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold, window_minutes, cooldown_minutes, channels) VALUES
    ('alr', 'decisions-y', 'Decisions y', 'decisions', 'gte', 3, 5, 60, '["email:ops@example.com"]'),
    ('alr', 'decisions-n', 'Decisions n', 'decisions', 'gt', 3, 5, 60, '[]'),
    ('alr', 'outcomes-y', 'Outcomes y', 'outcomes', 'eq', 2, 5, 60, '[]'),
    ('alr', 'outcomes-n', 'Outcomes n', 'outcomes', 'neq', 2, 5, 60, '[]'),
    ('alr', 'conversions-y', 'Conversions y', 'conversions', 'lt', 2, 5, 60, '[]'),
    ('alr', 'conversions-n', 'Conversions n', 'conversions', 'lt', 1, 5, 60, '[]'),
    ('alr', 'rate-y', 'Rate y', 'conversion_rate', 'lte', 0.34, 5, 60, '[]'),
    ('alr', 'rate-n', 'Rate n', 'conversion_rate', 'lt', 0.33, 5, 60, '[]'),
    ('alr', 'drops-y', 'Drops y', 'cap_drops', 'gte', 3, 5, 60, '[]'),
    ('alr', 'drops-n', 'Drops n', 'cap_drops', 'gt', 3, 5, 60, '[]'),
    ('alr', 'caps-y', 'Caps y', 'caps_exhausted', 'gte', 2, 5, 60, '[]'),
    ('alr', 'caps-n', 'Caps n', 'caps_exhausted', 'gt', 2, 5, 60, '[]'),
    ('alr', 'drift-y', 'Drift y', 'model_drift', 'gt', 0.3, 15, 60, '[]'),
    ('alr', 'drift-n', 'Drift n', 'model_drift', 'gt', 0.32, 15, 60, '[]'),
    ('alr', 'drift-none', 'Drift none', 'model_drift', 'gt', 0, 5, 60, '[]'),
    ('alr', 'jobs-y', 'Jobs y', 'job_failures', 'gte', 2, 30, 60, '[]'),
    ('alr', 'jobs-n', 'Jobs n', 'job_failures', 'gte', 2, 17, 60, '[]'),
    ('alr', 'dead-y', 'Dead y', 'dead_letters', 'eq', 1, 5, 60, '[]'),
    ('alr', 'dead-n', 'Dead n', 'dead_letters', 'gt', 1, 5, 60, '[]'),
    ('alr', 'deliv-y', 'Deliveries y', 'delivery_failures', 'eq', 1, 60, 60, '[]'),
    ('alr', 'deliv-n', 'Deliveries n', 'delivery_failures', 'gt', 1, 60, 60, '[]'),
    ('alr', 'paused', 'Paused', 'decisions', 'gt', 0, 5, 0, '[]'),
    ('alr2', 'dead-other', 'Dead other', 'dead_letters', 'gt', 5, 5, 60, '[]'),
    ('alr3', 'rate-none', 'Rate none', 'conversion_rate', 'lt', 1, 5, 60, '[]');
UPDATE kaireon.alert_rules SET status = 'paused' WHERE tenant_id = 'alr' AND id = 'paused';

-- every listed metric has a rule here
SELECT m.metric FROM kaireon.alert_metrics() m
 WHERE NOT EXISTS (SELECT 1 FROM kaireon.alert_rules r WHERE r.tenant_id = 'alr' AND r.metric = m.metric);

SELECT rule_id, metric, round(value::numeric, 4) AS value, fired, reason, event_id IS NOT NULL AS has_event
  FROM kaireon.evaluate_alerts('alr', '2001-03-01 12:00') ORDER BY rule_id;
-- each firing is one outbox event naming the rule, the value and the window
SELECT payload->>'alertRuleId' AS rule, payload->>'metric' AS metric, payload->'value' AS value,
       payload->'window' AS "window", payload->'channels' AS channels, payload->>'firedAt' AS fired_at
  FROM kaireon.outbox_events WHERE tenant_id = 'alr' AND topic = 'alert.fired' ORDER BY payload->>'alertRuleId';
SELECT id, last_fired_at, last_evaluated_at, last_value FROM kaireon.alert_rules
 WHERE tenant_id = 'alr' AND id IN ('decisions-y', 'decisions-n', 'paused') ORDER BY id;
-- alr2's rule was not evaluated by a call for alr
SELECT last_evaluated_at FROM kaireon.alert_rules WHERE tenant_id = 'alr2';
-- a rate without decisions has no value and never fires
SELECT rule_id, value, fired, reason FROM kaireon.evaluate_alerts('alr3', '2001-03-01 12:00');

-- ---------------------------------------------------------------------------------------
-- 3. The cooldown, exactly: decisions-y (60 minutes) fired at 12:00.
-- ---------------------------------------------------------------------------------------
-- a call at the same time evaluates nothing again
SELECT count(*) AS evaluated_again FROM kaireon.evaluate_alerts('alr', '2001-03-01 12:00');
-- new decisions keep the condition true; 12:59:59.999999 is within the cooldown
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, recommendation_id, rank, offer_id)
SELECT 'alr', 'e' || i, timestamptz '2001-03-01 12:55' + i * interval '10 seconds', 'c', 'recommendation', 're' || i, 1, 'o1'
  FROM generate_series(1, 60) i;
SELECT rule_id, value, fired, reason FROM kaireon.evaluate_alerts('alr', '2001-03-01 12:59:59.999999', alert_rule_id => 'decisions-y');
-- at exactly 13:00 it fires again
SELECT rule_id, value, fired, reason FROM kaireon.evaluate_alerts('alr', '2001-03-01 13:00', alert_rule_id => 'decisions-y');
SELECT last_fired_at FROM kaireon.alert_rules WHERE tenant_id = 'alr' AND id = 'decisions-y';
-- a cooldown of 0 fires at every evaluation while the condition holds
UPDATE kaireon.alert_rules SET cooldown_minutes = 0 WHERE tenant_id = 'alr' AND id = 'decisions-y';
SELECT rule_id, fired FROM kaireon.evaluate_alerts('alr', '2001-03-01 13:00:01', alert_rule_id => 'decisions-y');
-- an earlier time than the last evaluation is skipped (never fires backwards)
SELECT count(*) AS evaluated FROM kaireon.evaluate_alerts('alr', '2001-03-01 12:30', alert_rule_id => 'decisions-y');
SELECT count(*) AS alert_events FROM kaireon.outbox_events WHERE tenant_id = 'alr' AND topic = 'alert.fired'
   AND payload->>'alertRuleId' = 'decisions-y';

-- ---------------------------------------------------------------------------------------
-- 4. Bounded calls, least recently evaluated first; the tenant's role; the job.
-- ---------------------------------------------------------------------------------------
SELECT rule_tenant_id, rule_id FROM kaireon.evaluate_alerts(at => '2001-03-01 14:00', max_rules => 2);
SELECT count(*) AS next_batch FROM kaireon.evaluate_alerts(at => '2001-03-01 14:00', max_rules => 100);
SELECT count(*) AS none_left FROM kaireon.evaluate_alerts(at => '2001-03-01 14:00', max_rules => 100);
-- evaluating is for operators (admin roles, the worker); an application role writes its
-- tenant's rules, checked as any
SET client_min_messages = warning;
CREATE ROLE regress_orch_app LOGIN;
SELECT kaireon.grant_app_role('regress_orch_app');
RESET client_min_messages;
SET ROLE regress_orch_app;
SET kaireon.tenant_id = 'alr2';
SELECT * FROM kaireon.evaluate_alerts('alr2', '2001-03-01 15:00');
INSERT INTO kaireon.alert_rules (tenant_id, id, name, metric, operator, threshold)
    VALUES ('alr2', 'bad-app', 'Bad', 'revenue', 'gt', 1);
RESET kaireon.tenant_id;
RESET ROLE;
-- the maintenance job evaluates every active rule at the run's time
SELECT job, status, (detail->>'rules')::int >= 23 AS all_rules, detail->'errors' AS errors
  FROM kaireon.run_maintenance(ARRAY['alerts']);
SELECT count(*) FILTER (WHERE last_evaluated_at > '2001-03-02') AS evaluated_by_job,
       count(*) FILTER (WHERE status = 'active') AS active
  FROM kaireon.alert_rules WHERE tenant_id IN ('alr', 'alr2');
SELECT job, schedule_setting FROM kaireon.maintenance_jobs() WHERE job = 'alerts';

-- ---------------------------------------------------------------------------------------
-- 5. Deliveries: created once per idempotency key for a recorded decision.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('dlv', 'Deliveries', 'dlv', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('dlv', 'email', 'Email', 'email');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('dlv', 'o1', 'Gold', 'active', 80), ('dlv', 'o2', 'Silver', 'active', 70);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('dlv', 'o1-mail', 'o1', 'email', 'o1 mail'), ('dlv', 'o2-mail', 'o2', 'email', 'o2 mail');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('dlv', 'f-main', 'main', 'Main', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('dlv', 'main');
-- a click of this tenant fires a notify rule: the click must fire it once
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('dlv', 'on-click', 'On click', 'click', 'notify', '{"topic": "dlv.click"}');
CREATE TEMP TABLE decided AS
SELECT customer_id, r.rank, r.offer_id, r.interaction_id
  FROM (VALUES ('c1'), ('c2'), ('c3'), ('c4')) AS c (customer_id),
       LATERAL kaireon.recommend('dlv', c.customer_id, 'email') r;
SELECT customer_id, rank, offer_id FROM decided ORDER BY customer_id, rank;
CREATE TEMP TABLE dl AS
SELECT customer_id, rank, kaireon.create_delivery('dlv', interaction_id, provider_name => 'mailer',
                                                  payload => '{"subject": "Hello"}') AS id
  FROM decided;
-- the same key again: the same delivery, nothing new
SELECT count(*) AS same FROM decided d JOIN dl USING (customer_id, rank)
 WHERE kaireon.create_delivery('dlv', d.interaction_id) = dl.id;
SELECT count(*) AS deliveries, count(*) FILTER (WHERE status = 'pending' AND attempts = 0 AND channel_type = 'email') AS pending
  FROM kaireon.channel_deliveries WHERE tenant_id = 'dlv';
SELECT count(*) AS send_events, count(*) FILTER (WHERE payload->'payload'->>'subject' = 'Hello' AND payload ? 'recommendationId') AS complete
  FROM kaireon.outbox_events WHERE tenant_id = 'dlv' AND topic = 'channel.delivery';
-- an explicit key, bad calls
SELECT kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided WHERE customer_id = 'c1' AND rank = 1),
                               idempotency_key => 'camp-7:c1') IS NOT NULL AS created;
SELECT pg_temp.try($q$SELECT kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided WHERE customer_id = 'c2' AND rank = 1),
                               idempotency_key => 'camp-7:c1')$q$);
SELECT kaireon.create_delivery('dlv', 'no-such-interaction');
SELECT kaireon.create_delivery('dlv', NULL);
SELECT kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided LIMIT 1), payload => '[]');
SELECT kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided LIMIT 1), idempotency_key => '');

-- ---------------------------------------------------------------------------------------
-- 6. Callbacks: every transition kind.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dl(c text, r integer) RETURNS text LANGUAGE sql
    AS $$ SELECT id FROM dl WHERE customer_id = c AND rank = r $$;
CREATE FUNCTION pg_temp.brief(j jsonb) RETURNS jsonb LANGUAGE sql
    AS $$ SELECT (j - 'deliveryId' - 'responses') || jsonb_build_object('responses', jsonb_array_length(j->'responses')) $$;
-- c1 rank 1: pending -> sent (with the provider's message id) -> delivered -> opened -> clicked
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'sent', delivery_id => pg_temp.dl('c1', 1),
                                             provider_message_id => 'msg-1', at => '2001-03-02 09:00'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'delivered', provider_message_id => 'msg-1', at => '2001-03-02 09:01'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'opened', provider_message_id => 'msg-1', provider_name => 'mailer',
                                             at => '2001-03-02 10:00'));
-- a repeated open: nothing written, no second response
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'opened', provider_message_id => 'msg-1', at => '2001-03-02 10:05'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'clicked', idempotency_key => (SELECT interaction_id FROM decided WHERE customer_id = 'c1' AND rank = 1),
                                             at => '2001-03-02 10:10'));
-- a late delivered after the click: stale, nothing written
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'delivered', delivery_id => pg_temp.dl('c1', 1), at => '2001-03-02 09:01'));
SELECT status, status_at, attempts, provider_message_id FROM kaireon.channel_deliveries WHERE tenant_id = 'dlv' AND id = pg_temp.dl('c1', 1);
-- c2 rank 1: a click before any open (skipping sent and delivered) records the open too;
-- the open arriving afterwards is stale
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'clicked', delivery_id => pg_temp.dl('c2', 1), at => '2001-03-02 11:00'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'opened', delivery_id => pg_temp.dl('c2', 1), at => '2001-03-02 10:59'));
-- c3 rank 1: sent, then a bounce with its error; bounced is final
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'sent', delivery_id => pg_temp.dl('c3', 1), at => '2001-03-02 09:00'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'bounced', delivery_id => pg_temp.dl('c3', 1), at => '2001-03-02 09:02',
                                             error => '550 mailbox unavailable'));
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'bounced', delivery_id => pg_temp.dl('c3', 1), at => '2001-03-02 09:03'));
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'opened', delivery_id => pg_temp.dl('c3', 1), at => '2001-03-02 09:04')$q$);
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'sent', delivery_id => pg_temp.dl('c3', 1), at => '2001-03-02 09:04')$q$);
SELECT status, status_at, attempts, last_error FROM kaireon.channel_deliveries WHERE tenant_id = 'dlv' AND id = pg_temp.dl('c3', 1);
-- c4 rank 1: a failure straight from pending; failed is final
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'failed', delivery_id => pg_temp.dl('c4', 1), at => '2001-03-02 09:00',
                                             error => 'provider timeout'));
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'bounced', delivery_id => pg_temp.dl('c4', 1), at => '2001-03-02 09:01')$q$);
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'clicked', delivery_id => pg_temp.dl('c4', 1), at => '2001-03-02 09:01')$q$);
-- a delivered message can no longer bounce or fail (c1 rank 1 is clicked)
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'bounced', delivery_id => pg_temp.dl('c1', 1), at => '2001-03-02 12:00')$q$);
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'failed', delivery_id => pg_temp.dl('c1', 1), at => '2001-03-02 12:00')$q$);
-- c1 rank 2: delivered without a sent
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'delivered', delivery_id => pg_temp.dl('c1', 2), at => '2001-03-02 09:00'));
SELECT status, attempts FROM kaireon.channel_deliveries WHERE tenant_id = 'dlv' AND id = pg_temp.dl('c1', 2);
-- bad callbacks: nothing written
SELECT kaireon.delivery_status('dlv', 'pending', delivery_id => pg_temp.dl('c2', 2));
SELECT kaireon.delivery_status('dlv', 'read', delivery_id => pg_temp.dl('c2', 2));
SELECT kaireon.delivery_status('dlv', 'sent');
SELECT kaireon.delivery_status('dlv', 'sent', delivery_id => 'nope');
SELECT kaireon.delivery_status('dlv', 'sent', provider_message_id => 'msg-unknown');
SELECT kaireon.delivery_status('dlv', 'sent', delivery_id => pg_temp.dl('c2', 2), at => 'infinity');
SELECT kaireon.delivery_status('dlv', NULL, delivery_id => pg_temp.dl('c2', 2));
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'delivered', delivery_id => pg_temp.dl('c1', 1), provider_message_id => 'msg-other')$q$);
-- two deliveries with one provider message id: the provider name tells them apart
UPDATE kaireon.channel_deliveries SET provider_message_id = 'msg-dup', provider_name = CASE WHEN id = pg_temp.dl('c2', 2) THEN 'sms-co' ELSE 'mailer' END
 WHERE tenant_id = 'dlv' AND id IN (pg_temp.dl('c2', 2), pg_temp.dl('c3', 2));
SELECT kaireon.delivery_status('dlv', 'sent', provider_message_id => 'msg-dup');
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'sent', provider_message_id => 'msg-dup', provider_name => 'sms-co'));
SELECT id = pg_temp.dl('c2', 2) AS the_sms_one FROM kaireon.channel_deliveries
 WHERE tenant_id = 'dlv' AND provider_message_id = 'msg-dup' AND status = 'sent';
-- but one provider's message id names one delivery: a callback giving it to a second delivery
-- of the same provider is refused (23505, nothing written), and so is a direct write (the
-- unique index); another provider may use it
SELECT pg_temp.try($q$SELECT kaireon.delivery_status('dlv', 'sent', delivery_id => pg_temp.dl('c4', 2),
                                                    provider_message_id => 'msg-dup', provider_name => 'mailer')$q$);
SELECT pg_temp.try($q$UPDATE kaireon.channel_deliveries SET provider_message_id = 'msg-dup', provider_name = 'mailer'
                       WHERE tenant_id = 'dlv' AND id = pg_temp.dl('c4', 2)$q$);
SELECT status, provider_message_id FROM kaireon.channel_deliveries WHERE tenant_id = 'dlv' AND id = pg_temp.dl('c4', 2);
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'sent',
           delivery_id => kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided WHERE customer_id = 'c4' AND rank = 2),
                                                  idempotency_key => 'push:c4'),
           provider_message_id => 'msg-dup', provider_name => 'push-co', at => '2001-03-02 09:00'));

-- ---------------------------------------------------------------------------------------
-- 7. Opens and clicks are responses, once each, through respond.
-- ---------------------------------------------------------------------------------------
SELECT customer_id, outcome_type_key, occurred_at, rank, context->>'deliveryStatus' AS delivery_status
  FROM kaireon.interaction_history WHERE tenant_id = 'dlv' AND interaction_type = 'outcome'
 ORDER BY customer_id, occurred_at, outcome_type_key;
-- the open is an impression: its mirror row
SELECT customer_id, offer_id FROM kaireon.impressions WHERE tenant_id = 'dlv' ORDER BY customer_id;
-- each click fired the trigger rule once
SELECT customer_id, count(*) FROM kaireon.trigger_rule_firings WHERE tenant_id = 'dlv' GROUP BY customer_id ORDER BY 1;
-- and an application role records callbacks for its tenant only
GRANT SELECT ON dl, decided TO regress_orch_app;
SET ROLE regress_orch_app;
SET kaireon.tenant_id = 'dlv';
SELECT pg_temp.brief(kaireon.delivery_status('dlv', 'opened', delivery_id => pg_temp.dl('c1', 2), at => '2001-03-02 13:00'));
SELECT kaireon.delivery_status('alr', 'opened', delivery_id => pg_temp.dl('c1', 2));
SELECT kaireon.create_delivery('dlv', (SELECT interaction_id FROM decided WHERE customer_id = 'c4' AND rank = 2),
                               idempotency_key => 'app:c4') IS NOT NULL AS app_created;
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS outcomes FROM kaireon.interaction_history WHERE tenant_id = 'dlv' AND interaction_type = 'outcome';
-- the delivery metric sees the bounce and the failure of dlv
SELECT kaireon_internal._alert_metric_value('dlv', 'delivery_failures', '2001-03-02 08:00', '2001-03-02 10:00') AS failures;

DROP OWNED BY regress_orch_app;
DROP ROLE regress_orch_app;
