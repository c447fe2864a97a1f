-- Segment entry of journeys (docs/journeys.md, "Enrolment"): kaireon.enroll_journey_segments
-- enrols the members of the segment an entry_trigger names who never entered the journey,
-- confined to the tenant, at most max_customers a call; an event-only entry enrols nobody; a
-- journey whose segment cannot be read is skipped with a warning, not the others. Times pinned.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('jsg', 'Segments', 'jsg', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('jsg', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('jsg', 'customers', 'customer_id', 'text', false, true, 1),
    ('jsg', 'customers', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('jsg', 'customers');
INSERT INTO kaireon_t_jsg.ds_customers (customer_id, tier) VALUES ('a', 'vip'), ('b', 'vip'), ('c', 'basic');
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('jsg', 'vip', 'VIP', 'customers', '[{"field": "tier", "operator": "eq", "value": "vip"}]');
SELECT kaireon.publish_segment('jsg', 'vip') IS NOT NULL AS segment_published;
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES
    ('jsg', 'by-segment', 'By segment', '{"steps": [
        {"id": "start", "type": "entry_trigger", "segmentId": "vip", "next": "w"},
        {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "x"},
        {"id": "x", "type": "exit"}]}'),
    ('jsg', 'by-event', 'By event', '{"steps": [
        {"id": "start", "type": "entry_trigger", "eventType": "signup", "next": "x"},
        {"id": "x", "type": "exit"}]}'),
    ('jsg', 'lost-segment', 'Lost segment', '{"steps": [
        {"id": "start", "type": "entry_trigger", "segmentId": "no-such", "next": "x"},
        {"id": "x", "type": "exit"}]}');
SELECT kaireon.publish_journey('jsg', id) IS NOT NULL AS published FROM kaireon.journeys WHERE tenant_id = 'jsg' ORDER BY id;

-- at most max_customers a call, members in id order; the journey with the lost segment warns
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-01 10:00+00', 1);
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-01 10:05+00', 10);
-- every member entered: nothing more; c (basic) never, and the event-only journey enrols nobody
SELECT count(*) AS more FROM kaireon.enroll_journey_segments('jsg', '2015-03-01 10:10+00');
SELECT journey_id, customer_id, status, entered_at, history -> 0 -> 'reason' AS reason
  FROM kaireon.journey_enrollments WHERE tenant_id = 'jsg' ORDER BY journey_id, customer_id;
-- a member who left is not enrolled again by its membership (once per member)
UPDATE kaireon.journey_enrollments SET status = 'completed' WHERE tenant_id = 'jsg' AND customer_id = 'a';
SELECT count(*) AS again FROM kaireon.enroll_journey_segments('jsg', '2015-03-02 10:00+00');
-- a new member enters at the next call; a paused journey enrols nobody
INSERT INTO kaireon_t_jsg.ds_customers (customer_id, tier) VALUES ('d', 'vip'), ('e', 'vip');
UPDATE kaireon.journeys SET status = 'paused' WHERE tenant_id = 'jsg' AND id = 'by-segment';
SELECT count(*) AS while_paused FROM kaireon.enroll_journey_segments('jsg', '2015-03-02 11:00+00');
UPDATE kaireon.journeys SET status = 'active' WHERE tenant_id = 'jsg' AND id = 'by-segment';
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-02 12:00+00');
-- the engine then takes the new enrolment from its entry
SELECT customer_id, step_id, step_type, outcome FROM kaireon.advance_journeys('jsg', '2015-03-02 12:00+00')
 WHERE customer_id IN ('d', 'e') ORDER BY customer_id, step_id;
-- an enrolment failing partway (a test trigger refuses member g after f entered) rolls the
-- journey's block back: f is neither enrolled nor reported (the job counts what is returned)
INSERT INTO kaireon_t_jsg.ds_customers (customer_id, tier) VALUES ('f', 'vip'), ('g', 'vip');
CREATE FUNCTION public.jsg_refuse_g() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'refused %', NEW.customer_id; END $$;
CREATE TRIGGER jsg_refuse_g BEFORE INSERT ON kaireon.journey_enrollments
    FOR EACH ROW WHEN (NEW.tenant_id = 'jsg' AND NEW.customer_id = 'g') EXECUTE FUNCTION public.jsg_refuse_g();
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-03 10:00+00', 10);
SELECT count(*) AS f_or_g FROM kaireon.journey_enrollments WHERE tenant_id = 'jsg' AND customer_id IN ('f', 'g');
DROP TRIGGER jsg_refuse_g ON kaireon.journey_enrollments;
DROP FUNCTION public.jsg_refuse_g();
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-03 11:00+00', 10);
-- bad arguments: 22023 / 22004 (an at more than 5 minutes ahead too: the enrolments would not
-- be due until then), nothing written
SELECT count(*) AS enrolments_before FROM kaireon.journey_enrollments WHERE tenant_id = 'jsg';
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2015-03-02 12:00+00', 0);
SELECT * FROM kaireon.enroll_journey_segments('jsg', 'infinity', 10);
SELECT * FROM kaireon.enroll_journey_segments('jsg', '2999-01-01 00:00+00', 10);
\set VERBOSITY sqlstate
SELECT * FROM kaireon.enroll_journey_segments('jsg', now() + interval '6 minutes', 10);
\set VERBOSITY terse
SELECT * FROM kaireon.enroll_journey_segments('jsg', NULL, 10);
SELECT count(*) AS enrolments_after FROM kaireon.journey_enrollments WHERE tenant_id = 'jsg';

DELETE FROM kaireon.journey_enrollments WHERE tenant_id = 'jsg';
DELETE FROM kaireon.journeys WHERE tenant_id = 'jsg';
