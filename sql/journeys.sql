-- Journeys (docs/journeys.md), the part built so far: the definition validated when written
-- (every step type accepted; each bad definition refused with 22023 naming the journey and
-- the step, nothing written), published versions (immutable; enrolments keep theirs), and
-- enrolment (the entry step, at most one active enrolment, re-entry only when allowed, the
-- history). Times are explicit, never the clock.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug) VALUES ('jrn', 'Journeys', 'jrn');

-- ---------------------------------------------------------------------------------------
-- 1. A journey with every step type is accepted.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jrn', 'welcome', 'Welcome', $j$
{"allowReentry": false, "exitOnConversion": true, "steps": [
  {"id": "start", "type": "entry_trigger", "eventType": "signup", "next": "wait-1d"},
  {"id": "wait-1d", "type": "wait", "duration": {"days": 1}, "next": "decide"},
  {"id": "decide", "type": "nba_decision", "channelId": "email", "placementId": "hero",
   "onOffer": "send", "onNoOffer": "split"},
  {"id": "send", "type": "channel_action", "channelId": "email", "next": "wait-click"},
  {"id": "wait-click", "type": "wait", "event": {"eventType": "click"}, "timeout": {"hours": 48},
   "next": "done", "timeoutNext": "split"},
  {"id": "split", "type": "condition_split", "branches": [
     {"when": {"segmentId": "vip"}, "next": "until-sale"},
     {"when": {"attribute": "tier", "operator": "in", "value": ["gold", "silver"]}, "next": "until-sale"},
     {"when": {"outcome": "conversion", "withinDays": 7}, "next": "done"},
     {"when": {"experimentId": "exp-1", "arm": "B"}, "next": "done"}],
   "otherwise": "done"},
  {"id": "until-sale", "type": "wait", "until": "2026-12-24 09:00+00", "next": "done"},
  {"id": "done", "type": "exit", "reason": "finished"}]}
$j$);
SELECT id, status, published_version, jsonb_array_length(definition -> 'steps') AS steps
  FROM kaireon.journeys WHERE tenant_id = 'jrn';

-- ---------------------------------------------------------------------------------------
-- 2. Bad definitions: 22023 naming the journey and the step; nothing written.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.bad(id text, def text) RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('jrn', id, id, def::jsonb);
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$f$;
-- an unknown step type
SELECT pg_temp.bad('b1', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "t"}, {"id": "t", "type": "teleport", "next": "x"}, {"id": "x", "type": "exit"}]}');
-- an unreachable step
SELECT pg_temp.bad('b2', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "orphan", "type": "wait", "duration": {"hours": 1}, "next": "x"}, {"id": "x", "type": "exit"}]}');
-- a next naming no step
SELECT pg_temp.bad('b3', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "nowhere"}, {"id": "x", "type": "exit"}]}');
-- no entry; two entries
SELECT pg_temp.bad('b4', '{"steps": [{"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b5', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "s2", "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}]}');
-- a duplicate id
SELECT pg_temp.bad('b6', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}, {"id": "x", "type": "exit"}]}');
-- a loop without a wait; a step that never reaches an exit; a step going back to the entry
SELECT pg_temp.bad('b7', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "a"}, {"id": "a", "type": "channel_action", "channelId": "email", "next": "b"}, {"id": "b", "type": "condition_split", "branches": [{"when": {"segmentId": "v"}, "next": "a"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b8', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "w2"}, {"id": "w2", "type": "wait", "duration": {"days": 1}, "next": "w"}]}');
SELECT pg_temp.bad('b9', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"days": 1}, "next": "s"}, {"id": "x", "type": "exit"}]}');
-- waits: none of / two of duration, until, event; a zero, NaN-free but negative, or too long duration;
-- a bad timestamp; an event without a timeout
SELECT pg_temp.bad('b10', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b11', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"days": 1}, "until": "2026-12-24", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b12', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"hours": 0}, "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b13', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"minutes": -5}, "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b14', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "duration": {"days": 4000}, "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b15', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "until": "next tuesday-ish", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b16', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "event": {"eventType": "click"}, "next": "x"}, {"id": "x", "type": "exit"}]}');
-- a decision without its branches; a split condition of two kinds; an attribute without an operator;
-- "in" with a scalar; an unknown field (a misspelt key never falls back to a default)
SELECT pg_temp.bad('b17', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "d"}, {"id": "d", "type": "nba_decision", "channelId": "email", "onOffer": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b18', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "c"}, {"id": "c", "type": "condition_split", "branches": [{"when": {"segmentId": "v", "outcome": "click"}, "next": "x"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b19', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "c"}, {"id": "c", "type": "condition_split", "branches": [{"when": {"attribute": "tier"}, "next": "x"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b20', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "c"}, {"id": "c", "type": "condition_split", "branches": [{"when": {"attribute": "tier", "operator": "in", "value": "gold"}, "next": "x"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b21', '{"steps": [{"id": "s", "type": "entry_trigger", "nxt": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b22', '{"stepz": []}');
-- (found by review) a loop through an "until" wait (it passes at once once its time is past);
-- "until" words whose meaning moves (now, tomorrow, infinity) or a time without its offset;
-- value and arm without their condition; a type or an id that is not a string
SELECT pg_temp.bad('b23', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "d"}, {"id": "d", "type": "nba_decision", "channelId": "email", "onOffer": "x", "onNoOffer": "u"}, {"id": "u", "type": "wait", "until": "2026-12-24T09:00:00Z", "next": "d"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b24', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "until": "tomorrow", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b25', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "until": "infinity", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b26', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "w"}, {"id": "w", "type": "wait", "until": "2026-12-24 09:00", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b27', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "c"}, {"id": "c", "type": "condition_split", "branches": [{"when": {"segmentId": "v", "value": 3}, "next": "x"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b28', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "c"}, {"id": "c", "type": "condition_split", "branches": [{"when": {"segmentId": "v", "arm": "B"}, "next": "x"}], "otherwise": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b29', '{"steps": [{"id": "s", "type": 7, "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT pg_temp.bad('b30', '{"steps": [{"id": 5, "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}]}');
-- a loop through a duration wait is fine (a weekly reminder)
SELECT pg_temp.bad('ok-loop', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "d"}, {"id": "d", "type": "nba_decision", "channelId": "email", "onOffer": "x", "onNoOffer": "w"}, {"id": "w", "type": "wait", "duration": {"days": 7}, "next": "d"}, {"id": "x", "type": "exit"}]}');
-- published versions come only in publish_journey's shape: a row inserted with its own
-- versions (one refused by the validator, or numbered wrong) is refused
INSERT INTO kaireon.journeys (tenant_id, id, name, published_version, published_versions) VALUES ('jrn', 'b32', 'b32', 1,
    '[{"version": 1, "definition": {"steps": [{"id": "s", "type": "entry_trigger", "next": "s"}]}}]');
INSERT INTO kaireon.journeys (tenant_id, id, name, published_version, published_versions) VALUES ('jrn', 'b33', 'b33', 2,
    '[{"version": 2, "definition": {"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}]}}]');
INSERT INTO kaireon.journeys (tenant_id, id, name, published_version, published_versions) VALUES ('jrn', 'b34', 'b34', 5,
    '[{"version": 1, "definition": {"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}]}}]');
DELETE FROM kaireon.journeys WHERE tenant_id = 'jrn' AND id = 'ok-loop';
SELECT count(*) AS written FROM kaireon.journeys WHERE tenant_id = 'jrn' AND id LIKE 'b%';
-- an update is checked too; the row keeps its definition
UPDATE kaireon.journeys SET definition = '{"steps": [{"id": "x", "type": "exit"}]}' WHERE tenant_id = 'jrn' AND id = 'welcome';
SELECT jsonb_array_length(definition -> 'steps') AS steps FROM kaireon.journeys WHERE tenant_id = 'jrn' AND id = 'welcome';

-- ---------------------------------------------------------------------------------------
-- 3. Publishing: immutable versions; an empty draft or an archived journey refused.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.journeys (tenant_id, id, name) VALUES ('jrn', 'empty', 'Empty');
SELECT kaireon.publish_journey('jrn', 'empty');
SELECT kaireon.publish_journey('jrn', 'nope');
SELECT kaireon.publish_journey('jrn', 'welcome') AS version;
SELECT status, published_version, published_versions -> 0 ->> 'version' AS v1,
       published_versions -> 0 -> 'definition' = definition AS frozen
  FROM kaireon.journeys WHERE tenant_id = 'jrn' AND id = 'welcome';
UPDATE kaireon.journeys SET published_versions = '[]' WHERE tenant_id = 'jrn' AND id = 'welcome';
-- nor can the published version be pointed elsewhere (enrolment reads it)
UPDATE kaireon.journeys SET published_version = 5 WHERE tenant_id = 'jrn' AND id = 'welcome';

-- ---------------------------------------------------------------------------------------
-- 4. Enrolment.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c1', '{"source": "test"}', '2026-03-01 10:00+00') - 'enrollmentId' AS r;
SELECT journey_version, current_step_id, status, entered_at, wait_until, history
  FROM kaireon.journey_enrollments WHERE tenant_id = 'jrn' AND customer_id = 'c1';
-- a second enrolment while the first is active: refused
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c1', at => '2026-03-01 11:00+00') AS r;
-- version 2 is published: a new customer enters it, c1 keeps version 1
UPDATE kaireon.journeys SET definition = jsonb_set(definition, '{steps,1,duration}', '{"days": 2}')
 WHERE tenant_id = 'jrn' AND id = 'welcome';
SELECT kaireon.publish_journey('jrn', 'welcome', notes => 'wait two days') AS version;
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c2', at => '2026-03-02 10:00+00') -> 'version' AS c2_version;
SELECT customer_id, journey_version FROM kaireon.journey_enrollments WHERE tenant_id = 'jrn' ORDER BY customer_id;
-- once c1's enrolment ended, without allowReentry c1 does not enter again
UPDATE kaireon.journey_enrollments SET status = 'exited' WHERE tenant_id = 'jrn' AND customer_id = 'c1';
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c1', at => '2026-03-03 10:00+00') AS r;
-- with allowReentry (version 3) it does
UPDATE kaireon.journeys SET definition = jsonb_set(definition, '{allowReentry}', 'true')
 WHERE tenant_id = 'jrn' AND id = 'welcome';
SELECT kaireon.publish_journey('jrn', 'welcome') AS version;
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c1', at => '2026-03-03 10:00+00') ->> 'enrolled' AS reentered;
-- a paused journey, a journey never published, no journey, bad input
UPDATE kaireon.journeys SET status = 'paused' WHERE tenant_id = 'jrn' AND id = 'welcome';
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c3', at => '2026-03-03 10:00+00') AS r;
INSERT INTO kaireon.journeys (tenant_id, id, name, status, definition)
    VALUES ('jrn', 'unpub', 'Unpublished', 'active', '{"steps": [{"id": "s", "type": "entry_trigger", "next": "x"}, {"id": "x", "type": "exit"}]}');
SELECT kaireon.enroll_in_journey('jrn', 'unpub', 'c3', at => '2026-03-03 10:00+00') AS r;
SELECT kaireon.enroll_in_journey('jrn', 'nope', 'c3', at => '2026-03-03 10:00+00') AS r;
SELECT kaireon.enroll_in_journey('jrn', 'welcome', NULL);
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c3', '[1]');
-- an infinite time of entry: 22023 (an enrolment at infinity is never due, and keeps the
-- customer out of the journey for good)
UPDATE kaireon.journeys SET status = 'active' WHERE tenant_id = 'jrn' AND id = 'welcome';
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c3', at => 'infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c3', at => '-infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
\set SHOW_CONTEXT errors
UPDATE kaireon.journeys SET status = 'paused' WHERE tenant_id = 'jrn' AND id = 'welcome';
SELECT count(*) AS enrolments FROM kaireon.journey_enrollments WHERE tenant_id = 'jrn';

-- ---------------------------------------------------------------------------------------
-- 5. Tenancy: an application role acting for another tenant can neither publish nor enrol.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('jrn2', 'Other', 'jrn2');
SET client_min_messages = warning;
CREATE ROLE regress_jrn_app LOGIN;
SELECT kaireon.grant_app_role('regress_jrn_app');
RESET client_min_messages;
UPDATE kaireon.journeys SET status = 'active' WHERE tenant_id = 'jrn' AND id = 'welcome';
SET ROLE regress_jrn_app;
SET kaireon.tenant_id = 'jrn2';
SELECT kaireon.publish_journey('jrn', 'welcome');
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c9');
-- its own tenant has no such journey, and it cannot see the other tenant's
SELECT kaireon.enroll_in_journey('jrn2', 'welcome', 'c9') AS r;
SELECT count(*) AS visible FROM kaireon.journeys;
SET kaireon.tenant_id = 'jrn';
SELECT kaireon.enroll_in_journey('jrn', 'welcome', 'c9', at => '2026-03-04 10:00+00') ->> 'enrolled' AS own_tenant;
RESET kaireon.tenant_id;
RESET ROLE;
DELETE FROM kaireon.tenants WHERE id = 'jrn2';

DELETE FROM kaireon.tenants WHERE id = 'jrn';
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_jrn_app';
DROP OWNED BY regress_jrn_app;
DROP ROLE regress_jrn_app;
