-- Trigger rules (docs/triggers.md): validation when written (22023 naming the rule and the
-- bad part), matching on kaireon.respond's outcomes (event type, condition over event.* and
-- customer.*, priority), each action (recommend, notify, webhook, enroll_journey,
-- update_attribute) in the respond's transaction, the cooldown per customer measured on the
-- events' times, the firings recorded; the compiled rules follow a change at once.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('trg', 'Triggers', 'trg', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('trg', 'web', 'Web', 'web'),
    ('trg', 'email', 'Email', 'email');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('trg', 'o1', 'Gold', 'active', 80), ('trg', 'o2', 'Silver', 'active', 70);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('trg', 'o1-web', 'o1', 'web', 'o1 web'), ('trg', 'o2-web', 'o2', 'web', 'o2 web'),
    ('trg', 'o1-mail', 'o1', 'email', 'o1 mail');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('trg', 'f-main', 'main', 'Main', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('trg', 'main');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('trg', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('trg', 'customers', 'customer_id', 'text', false, true, 1),
    ('trg', 'customers', 'tier', 'text', true, false, 2),
    ('trg', 'customers', 'clicks', 'integer', true, false, 3);
SELECT kaireon.publish_data_schema('trg', 'customers');
INSERT INTO kaireon_t_trg.ds_customers (customer_id, tier, clicks) VALUES ('c1', 'gold', 0), ('c2', 'silver', 0);
-- the welcome journey (published, re-entry allowed) and a draft (docs/journeys.md)
INSERT INTO kaireon.journeys (tenant_id, id, name, status, definition) VALUES
    ('trg', 'j-welcome', 'Welcome', 'draft',
     '{"allowReentry": true, "steps": [{"id": "start", "type": "entry_trigger", "next": "done"},
                                       {"id": "done", "type": "exit"}]}'),
    ('trg', 'j-draft', 'Draft', 'draft', '{}');
SELECT kaireon.publish_journey('trg', 'j-welcome');

-- ---------------------------------------------------------------------------------------
-- 1. Validation when written: 22023 naming the rule and the bad part; nothing written.
-- ---------------------------------------------------------------------------------------
-- an unknown action type (before the table's CHECK)
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type)
    VALUES ('trg', 'bad1', 'Teleport', 'click', 'teleport');
-- an event type that is neither outcome nor an outcome type key
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad2', 'Clik', 'clik', 'notify', '{}');
-- a condition outside the language: unknown field prefix, unknown operator, missing value
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, condition, action_type)
    VALUES ('trg', 'bad3', 'Offer field', 'click', '{"field": "offer.price", "op": "gt", "value": 1}', 'notify');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, condition, action_type)
    VALUES ('trg', 'bad4', 'Bad op', 'click', '{"all": [{"field": "event.offerId", "op": "like", "value": "o"}]}', 'notify');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, condition, action_type)
    VALUES ('trg', 'bad5', 'No value', 'click', '{"not": {"field": "customer.tier", "op": "eq"}}', 'notify');
-- action configurations: a missing required field, an unknown field, a bad type
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad6', 'No channel', 'click', 'recommend', '{"placement": "hero"}');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad7', 'Typo', 'click', 'enroll_journey', '{"journeyID": "j-welcome"}');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad8', 'No url', 'click', 'webhook', '{"topic": "x"}');
-- update_attribute against the data schema: an unknown field, the key, a value of the wrong type
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad9', 'Unknown field', 'click', 'update_attribute', '{"attributes": {"vip": true}}');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad10', 'The key', 'click', 'update_attribute', '{"attributes": {"customer_id": "x"}}');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad11', 'Not a number', 'click', 'update_attribute', '{"attributes": {"clicks": "many"}}');
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'bad12', 'No schema', 'click', 'update_attribute', '{"schema": "accounts", "attributes": {"tier": "x"}}');
-- an update of a good rule is checked too
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config, status)
    VALUES ('trg', 'good', 'Good', 'click', 'notify', '{}', 'paused');
UPDATE kaireon.trigger_rules SET condition = '{"field": "request.x", "op": "exists"}' WHERE tenant_id = 'trg' AND id = 'good';
DELETE FROM kaireon.trigger_rules WHERE tenant_id = 'trg' AND id = 'good';
SELECT count(*) AS rules_written FROM kaireon.trigger_rules WHERE tenant_id = 'trg';

-- ---------------------------------------------------------------------------------------
-- 2. The rules, and what a respond fires.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, condition, action_type, action_config,
                                   priority, cooldown_ms) VALUES
    -- every click of a gold customer on o1: a webhook, once an hour per customer
    ('trg', 'r-hook', 'Gold click hook', 'click',
     '{"all": [{"field": "event.offerId", "op": "eq", "value": "o1"}, {"field": "customer.tier", "op": "eq", "value": "gold"}]}',
     'webhook', '{"url": "https://example.com/hook", "payload": {"campaign": "gold"}}', 50, 3600000),
    -- any outcome with context.source = app: a notification (no cooldown)
    ('trg', 'r-notify', 'App outcome', 'outcome', '{"field": "event.context.source", "op": "eq", "value": "app"}',
     'notify', '{"topic": "app.outcome"}', 10, 0),
    -- a conversion: enrol in the welcome journey, and count the click on the customer's row
    ('trg', 'r-enrol', 'Enrol on conversion', 'conversion', '{}', 'enroll_journey', '{"journeyId": "j-welcome"}', 30, 0),
    ('trg', 'r-draft', 'Enrol in a draft', 'conversion', '{}', 'enroll_journey', '{"journeyId": "j-draft"}', 20, 0),
    ('trg', 'r-attr', 'Mark converted', 'conversion', '{}', 'update_attribute',
     '{"attributes": {"tier": "converted", "clicks": 1}}', 40, 0),
    -- a dismiss with a high value: a recorded decision on email
    ('trg', 'r-rec', 'Win back', 'dismiss', '{"field": "event.conversionValue", "op": "gte", "value": 10}',
     'recommend', '{"channel": "email", "maxOffers": 1}', 0, 0);
-- a paused and a deleted rule never fire
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config, status, deleted_at) VALUES
    ('trg', 'r-paused', 'Paused', 'outcome', 'notify', '{"topic": "paused"}', 'paused', NULL),
    ('trg', 'r-deleted', 'Deleted', 'outcome', 'notify', '{"topic": "deleted"}', 'active', '2026-01-01');

-- What a respond fired (without generated ids).
CREATE FUNCTION pg_temp.fired(r jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('rule', t ->> 'triggerRuleId', 'action', t ->> 'action',
                                                 'result', (t -> 'result') - 'outboxEventId' - 'enrollmentId' - 'recommendationId'))
                    , '[]')
      FROM jsonb_array_elements(coalesce(r -> 'triggers', '[]')) t
$$;

-- a click of gold customer c1 on o1 at 10:00: the webhook (condition on event and customer)
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'click', offer_id => 'o1', occurred_at => '2026-03-01 10:00+00'));
SELECT topic, payload - 'event' AS payload, payload -> 'event' ->> 'outcome' AS outcome
  FROM kaireon.outbox_events WHERE tenant_id = 'trg' AND topic = 'trigger.webhook';
-- silver c2: the condition on customer.tier does not hold; o2: nor does event.offerId
SELECT pg_temp.fired(kaireon.respond('trg', 'c2', 'click', offer_id => 'o1', occurred_at => '2026-03-01 10:00+00'));
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'click', offer_id => 'o2', occurred_at => '2026-03-01 10:00+00'));
-- the cooldown: again at 10:59:59 (within the hour) nothing, at 11:00 (an hour on) it fires
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'click', offer_id => 'o1', occurred_at => '2026-03-01 10:59:59+00'));
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'click', offer_id => 'o1', occurred_at => '2026-03-01 11:00+00'));
-- per customer: another gold customer is not cooling down
INSERT INTO kaireon_t_trg.ds_customers (customer_id, tier) VALUES ('c3', 'gold');
SELECT pg_temp.fired(kaireon.respond('trg', 'c3', 'click', offer_id => 'o1', occurred_at => '2026-03-01 11:00+00'));
-- an outcome from the app (event type outcome, condition on the context): notify and, for a
-- gold click on o1 within the cooldown, not the webhook; by priority
SELECT pg_temp.fired(kaireon.respond('trg', 'c3', 'click', offer_id => 'o1', context => '{"source": "app"}',
                                     occurred_at => '2026-03-01 11:30+00'));
SELECT pg_temp.fired(kaireon.respond('trg', 'c2', 'impression', offer_id => 'o2', context => '{"source": "app"}',
                                     occurred_at => '2026-03-01 11:30+00'));

-- a conversion of c1: the attribute update (priority 40), the enrolment (30), the draft
-- journey refused (20); the customer's row, the enrolment row
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'conversion', offer_id => 'o1', occurred_at => '2026-03-02 09:00+00'));
SELECT customer_id, tier, clicks FROM kaireon_t_trg.ds_customers ORDER BY customer_id;
SELECT journey_id, customer_id, status, entered_at, current_step_id, history -> 0 -> 'reason' ->> 'triggerRuleId' AS by_rule
  FROM kaireon.journey_enrollments WHERE tenant_id = 'trg' ORDER BY journey_id, customer_id;
-- a second conversion: no second active enrolment; a customer without a data row: no row updated
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'conversion', offer_id => 'o1', occurred_at => '2026-03-02 09:05+00'));
SELECT pg_temp.fired(kaireon.respond('trg', 'c9', 'conversion', offer_id => 'o1', occurred_at => '2026-03-02 09:05+00'));
SELECT count(*) AS active_enrolments FROM kaireon.journey_enrollments
 WHERE tenant_id = 'trg' AND journey_id = 'j-welcome' AND status = 'active';
-- once the enrolment is over, a conversion enrols again
UPDATE kaireon.journey_enrollments SET status = 'completed' WHERE tenant_id = 'trg' AND customer_id = 'c1';
SELECT pg_temp.fired(kaireon.respond('trg', 'c1', 'conversion', offer_id => 'o1', occurred_at => '2026-03-03 09:00+00'))
       -> 1 AS enrolled_again;

-- a dismiss of value 5: nothing; of value 12: a recorded decision on email for the customer
SELECT pg_temp.fired(kaireon.respond('trg', 'c2', 'dismiss', offer_id => 'o2', conversion_value => 5,
                                     occurred_at => '2026-03-04 09:00+00'));
CREATE TEMP TABLE dismissed AS
SELECT kaireon.respond('trg', 'c2', 'dismiss', offer_id => 'o2', conversion_value => 12,
                       occurred_at => '2026-03-04 09:00+00') AS r;
SELECT pg_temp.fired(r) FROM dismissed;
SELECT h.interaction_type, h.customer_id, h.channel_id, h.offer_id
  FROM kaireon.interaction_history h, dismissed d
 WHERE h.tenant_id = 'trg' AND h.recommendation_id = d.r -> 'triggers' -> 0 -> 'result' ->> 'recommendationId';

-- every firing recorded: rule, customer, event type and time, what it did
SELECT trigger_rule_id, customer_id, event_type, fired_at, event ->> 'offerId' AS offer,
       result ? 'outboxEventId' OR result ? 'enrolled' OR result ? 'updated' OR result ? 'offers' AS has_result
  FROM kaireon.trigger_rule_firings WHERE tenant_id = 'trg' ORDER BY fired_at, trigger_rule_id, customer_id;

-- the compiled rules follow a change at once: pausing the notification
UPDATE kaireon.trigger_rules SET status = 'paused' WHERE tenant_id = 'trg' AND id = 'r-notify';
SELECT pg_temp.fired(kaireon.respond('trg', 'c2', 'impression', offer_id => 'o2', context => '{"source": "app"}',
                                     occurred_at => '2026-03-05 11:30+00'));
-- respond_bulk: each item fires its rules in its own subtransaction; a single attribute
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'r-one', 'Deferred', 'defer', 'update_attribute', '{"attributes": {"clicks": 7}}');
SELECT i ->> 'outcome' AS outcome, pg_temp.fired(i) AS fired
  FROM jsonb_array_elements(kaireon.respond_bulk('{"items": [
          {"tenantId": "trg", "customerId": "c2", "outcome": "defer", "offerId": "o2", "occurredAt": "2026-03-05 12:00+00"},
          {"tenantId": "trg", "customerId": "c2", "outcome": "click", "offerId": "o2", "occurredAt": "2026-03-05 12:00+00"}]}'
       ) -> 'results') i;
SELECT customer_id, clicks FROM kaireon_t_trg.ds_customers WHERE customer_id = 'c2';
DELETE FROM kaireon.trigger_rules WHERE tenant_id = 'trg' AND id = 'r-one';

-- the actions run with the caller's rights: an application role acting for the tenant fires
-- the rules; without UPDATE on the customer data table the respond fails (42501) and rolls
-- back whole, the outcome included
SET client_min_messages = warning;
CREATE ROLE regress_trg_app LOGIN;
SELECT kaireon.grant_app_role('regress_trg_app');
RESET client_min_messages;
SET ROLE regress_trg_app;
SET kaireon.tenant_id = 'trg';
SELECT pg_temp.fired(kaireon.respond('trg', 'c3', 'conversion', offer_id => 'o1', occurred_at => '2026-03-06 09:00+00'));
RESET ROLE;
REVOKE UPDATE ON kaireon_t_trg.ds_customers FROM regress_trg_app;
SELECT count(*) AS history_before FROM kaireon.interaction_history WHERE tenant_id = 'trg';
SET ROLE regress_trg_app;
SELECT kaireon.respond('trg', 'c2', 'conversion', offer_id => 'o1', occurred_at => '2026-03-06 09:00+00');
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS history_after FROM kaireon.interaction_history WHERE tenant_id = 'trg';
SELECT customer_id, tier FROM kaireon_t_trg.ds_customers ORDER BY customer_id;

SET client_min_messages = warning;
-- rows written before the checks existed (0.1.0 kept trigger_rules without running them): a
-- stored action missing its fields answers 22023 naming the rule when it fires (it crashed)
ALTER TABLE kaireon.trigger_rules DISABLE TRIGGER validate_config;
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('trg', 'old1', 'From 0.1.0', 'outcome', 'recommend', '{}');
ALTER TABLE kaireon.trigger_rules ENABLE TRIGGER validate_config;
SELECT kaireon.respond('trg', 'c-old', 'click', offer_id => 'o1', occurred_at => '2026-03-02 10:00+00');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS recorded FROM kaireon.interaction_history WHERE tenant_id = 'trg' AND customer_id = 'c-old';
DELETE FROM kaireon.trigger_rules WHERE tenant_id = 'trg' AND id = 'old1';
-- a cooldown is at most 100 years (the largest bigint overflowed to a negative cooldown, which
-- never cooled down), when written and when changed
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config, cooldown_ms)
    VALUES ('trg', 'forever', 'Forever', 'outcome', 'notify', '{"topic": "x"}', 9223372036854775807);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config, cooldown_ms)
    VALUES ('trg', 'forever', 'Forever', 'outcome', 'notify', '{"topic": "x"}', 3153600000000);
UPDATE kaireon.trigger_rules SET cooldown_ms = 3153600000001 WHERE tenant_id = 'trg' AND id = 'forever';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM kaireon.trigger_rules WHERE tenant_id = 'trg' AND id = 'forever';
DELETE FROM kaireon.tenants WHERE id = 'trg';
DROP SCHEMA kaireon_t_trg CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id = 'trg';
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_trg_app;
DROP ROLE regress_trg_app;
