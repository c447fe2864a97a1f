-- Events wake waiting journey enrolments (docs/journeys.md, "Events"): a location event
-- ("location", "geofence_enter" / "geofence_exit" / "geofence_dwell") and a trigger rule's
-- update_attribute ("attribute_change"), each with a case that wakes and one that does not
-- (another event type, another customer); the compiled flag that lets a tenant without event
-- waits skip the wake-up (and its renewal when a journey is published); a campaign's recorded
-- decisions each get a delivery. Times are pinned.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('jev', 'Events', 'jev', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('jev', 'email', 'Email', 'email');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('jev', 'o1', 'Gold', 'active', 80);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('jev', 'o1-mail', 'o1', 'email', 'o1 mail');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('jev', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('jev', 'main');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('jev', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('jev', 'customers', 'customer_id', 'text', false, true, 1),
    ('jev', 'customers', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('jev', 'customers');
INSERT INTO kaireon_t_jev.ds_customers (customer_id, tier) VALUES ('c1', 'basic'), ('c2', 'basic');
-- a fence around the Eiffel tower (no action on enter: its trigger is exit)
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('jev', 'tower', 'Tower', 48.8584, 2.2945, 200, 'exit', '{"type": "notify"}');
-- a click makes the customer gold: an update_attribute
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config)
    VALUES ('jev', 'gold', 'Gold on click', 'click', 'update_attribute', '{"attributes": {"tier": "gold"}}');

CREATE FUNCTION pg_temp.state()
    RETURNS TABLE (journey text, customer text, status text, step text, wait_event text, woken_at timestamptz)
    LANGUAGE sql AS $f$
    SELECT journey_id, customer_id, status, current_step_id, wait_event_type, wait_event_at
      FROM kaireon.journey_enrollments WHERE tenant_id = 'jev' ORDER BY journey_id, customer_id
$f$;

-- ---------------------------------------------------------------------------------------
-- 1. A tenant whose journeys wait for no event: respond skips the wake-up. Its configuration
--    is compiled here (before any journey), so the wake-ups below also show that publishing
--    a journey renews it.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.respond('jev', 'c1', 'impression', offer_id => 'o1', occurred_at => '2015-04-01 08:00+00') ? 'journeysWoken' AS woke;
-- four journeys, each waiting for one kind of event (the first one's copies)
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jev', 'j-loc', 'Any location', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "w"},
  {"id": "w", "type": "wait", "event": {"eventType": "location"}, "timeout": {"hours": 48}, "next": "x-event", "timeoutNext": "x-timeout"},
  {"id": "x-event", "type": "exit"}, {"id": "x-timeout", "type": "exit"}]}
$j$);
INSERT INTO kaireon.journeys (tenant_id, id, name, definition)
SELECT 'jev', j.id, j.id, replace(d.definition::text, '"location"', format('"%s"', j.event))::jsonb
  FROM kaireon.journeys d,
       (VALUES ('j-enter', 'geofence_enter'), ('j-exit', 'geofence_exit'), ('j-attr', 'attribute_change')) j (id, event)
 WHERE d.tenant_id = 'jev' AND d.id = 'j-loc';
SELECT kaireon.publish_journey('jev', j) FROM unnest(ARRAY['j-loc', 'j-enter', 'j-exit', 'j-attr']) j;
SELECT count(*) AS enrolled FROM unnest(ARRAY['j-loc', 'j-enter', 'j-exit', 'j-attr']) j, unnest(ARRAY['c1', 'c2']) c
 WHERE (kaireon.enroll_in_journey('jev', j, c, at => '2015-04-01 09:00+00') ->> 'enrolled')::boolean;
SELECT count(*) AS waits_begun FROM kaireon.advance_journeys('jev', '2015-04-01 09:00+00') WHERE outcome = 'waiting';

-- ---------------------------------------------------------------------------------------
-- 2. Location events. c1 far from the fence: "location" only (no transition); then inside
--    it: "location" again (its wait is already woken) and "geofence_enter". c2 is not woken.
-- ---------------------------------------------------------------------------------------
SELECT * FROM kaireon.location_event('jev', 'c1', 48.8738, 2.2950, '2015-04-01 10:00+00');
SELECT * FROM pg_temp.state() WHERE woken_at IS NOT NULL;
SELECT * FROM kaireon.location_event('jev', 'c1', 48.8584, 2.2945, '2015-04-01 11:00+00');
SELECT * FROM pg_temp.state() WHERE woken_at IS NOT NULL;
-- a location from before the wait began wakes nothing (c2 left at 08:00, before 09:00)
SELECT * FROM kaireon.location_event('jev', 'c2', 48.8584, 2.2945, '2015-04-01 08:00+00');
SELECT count(*) AS c2_woken FROM pg_temp.state() WHERE customer = 'c2' AND woken_at IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- 3. Attribute changes: a click's update_attribute wakes c1's "attribute_change" wait; an
--    impression (no rule fires, nothing changes) wakes nothing, nor does the update of a
--    customer without a data row.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.respond('jev', 'c2', 'impression', offer_id => 'o1', occurred_at => '2015-04-01 12:00+00') ? 'journeysWoken' AS c2_woke;
SELECT r -> 'triggers' -> 0 -> 'result' AS update_result
  FROM kaireon.respond('jev', 'c1', 'click', offer_id => 'o1', occurred_at => '2015-04-01 12:30+00') r;
DELETE FROM kaireon_t_jev.ds_customers WHERE customer_id = 'c2';
SELECT r -> 'triggers' -> 0 -> 'result' AS update_result
  FROM kaireon.respond('jev', 'c2', 'click', offer_id => 'o1', occurred_at => '2015-04-01 12:40+00') r;
SELECT * FROM pg_temp.state() WHERE woken_at IS NOT NULL;
-- the engine's next pass takes the woken waits' next branch; the others wait for their timeout
SELECT customer, step, type, outcome FROM (
    SELECT customer_id AS customer, step_id AS step, step_type AS type, outcome, journey_id
      FROM kaireon.advance_journeys('jev', '2015-04-01 13:00+00')) a ORDER BY journey_id, customer, step;
SELECT journey, customer, status, step FROM pg_temp.state();

-- ---------------------------------------------------------------------------------------
-- 4. Campaigns: each recorded decision is sent, one delivery (kaireon.create_delivery, keyed
--    by the decision's interaction id) with its channel.delivery event; a simulation none.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('jev', 'r', 'Run', 'f-main', '["email"]', 'SELECT ''k'' || i FROM generate_series(1, 3) i', 1, 'active');
SELECT status, recommended FROM kaireon.run_campaign('jev', 'r', true);
SELECT count(*) AS deliveries FROM kaireon.channel_deliveries WHERE tenant_id = 'jev';
SELECT status, recommended FROM kaireon.run_campaign('jev', 'r');
SELECT count(*) AS decisions, count(dl.id) AS delivered,
       count(*) FILTER (WHERE dl.idempotency_key = d.interaction_id AND dl.status = 'pending' AND dl.channel_type = 'email') AS keyed
  FROM kaireon.campaign_decisions d
  JOIN kaireon.campaign_runs c ON c.tenant_id = d.tenant_id AND c.id = d.campaign_run_id AND NOT c.is_simulation
  LEFT JOIN kaireon.channel_deliveries dl ON dl.tenant_id = d.tenant_id AND dl.interaction_id = d.interaction_id
 WHERE d.tenant_id = 'jev';
SELECT count(*) AS send_events, count(DISTINCT e.payload ->> 'campaignId') AS campaigns,
       count(*) FILTER (WHERE e.payload -> 'payload' ->> 'campaignRunId' = c.id) AS with_run
  FROM kaireon.outbox_events e JOIN kaireon.campaign_runs c ON c.tenant_id = e.tenant_id AND NOT c.is_simulation
 WHERE e.tenant_id = 'jev' AND e.topic = 'channel.delivery';

DELETE FROM kaireon.tenants WHERE id = 'jev';
DROP SCHEMA kaireon_t_jev CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE owner_tenant_id = 'jev';
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
RESET session_replication_role;
