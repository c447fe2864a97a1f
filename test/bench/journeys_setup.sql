-- test/bench/journeys_setup.sql: the journeys of test/bench/journeys.sh and their enrolments,
-- in the benchmark tenant "bench" of gen_data.sql. psql variables: enrolments, due, customers.
--   light journeys jl2 .. jl9: wait w0 (7 days) -> split on the customer's country (an
--     attribute of the customer data row) -> channel action (an outbox event) -> wait w1
--   decision journey jd: wait w0 -> nba_decision (recommend web/hero, recorded) ->
--     channel action (a delivery of the decision and its event) -> wait w1
--   event journey jclick: an event wait for "click" (30 days), which respond wakes
-- Enrolment i (0 .. enrolments - 1) is in journey slot i % 10 (0: jclick, 1: jd, 2-9: jl2-jl9)
-- for customer c(1 + (i / 10) % customers); all active, waiting. public.jbench_due lists the
-- enrolments the benchmark makes due: "light" (:due of them, at w0 of the light journeys) and
-- "decision" (:due / 10, at w0 of jd); everything else waits for days. Set-based inserts.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

INSERT INTO kaireon.journeys (tenant_id, id, name, definition)
SELECT 'bench', 'jl' || k, 'Light ' || k, $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "w0"},
  {"id": "w0", "type": "wait", "duration": {"days": 7}, "next": "split"},
  {"id": "split", "type": "condition_split",
   "branches": [{"when": {"attribute": "country", "operator": "eq", "value": "DE"}, "next": "act"}],
   "otherwise": "act"},
  {"id": "act", "type": "channel_action", "channelId": "email", "template": "weekly", "next": "w1"},
  {"id": "w1", "type": "wait", "duration": {"days": 7}, "next": "done"},
  {"id": "done", "type": "exit"}]}
$j$::jsonb FROM generate_series(2, 9) k;
INSERT INTO kaireon.journeys (tenant_id, id, name, definition) VALUES ('bench', 'jd', 'Decision', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "w0"},
  {"id": "w0", "type": "wait", "duration": {"days": 7}, "next": "decide"},
  {"id": "decide", "type": "nba_decision", "channelId": "web", "placementId": "hero", "onOffer": "send", "onNoOffer": "w1"},
  {"id": "send", "type": "channel_action", "channelId": "web", "next": "w1"},
  {"id": "w1", "type": "wait", "duration": {"days": 7}, "next": "done"},
  {"id": "done", "type": "exit"}]}
$j$), ('bench', 'jclick', 'Click', $j$
{"steps": [
  {"id": "start", "type": "entry_trigger", "next": "wc"},
  {"id": "wc", "type": "wait", "event": {"eventType": "click"}, "timeout": {"days": 30}, "next": "done", "timeoutNext": "done"},
  {"id": "done", "type": "exit"}]}
$j$);
SELECT count(kaireon.publish_journey('bench', id)) AS journeys FROM kaireon.journeys WHERE tenant_id = 'bench';

CREATE TABLE public.jbench_due (id text PRIMARY KEY, kind text NOT NULL);
INSERT INTO public.jbench_due
SELECT 'e' || i, CASE WHEN i % 10 = 1 THEN 'decision' ELSE 'light' END
  FROM generate_series(0::bigint, :enrolments - 1) i
 WHERE (i % 10 >= 2 AND i / 10 < :due / 8) OR (i % 10 = 1 AND i / 10 < :due / 10);

-- The enrolments, as the engine leaves them when they wait (the history: entry, then the wait).
INSERT INTO kaireon.journey_enrollments (tenant_id, id, journey_id, customer_id, journey_version, current_step_id,
                                         status, entered_at, last_step_at, wait_until, wait_kind, wait_event_type,
                                         history)
SELECT 'bench', 'e' || i, j.journey, 'c' || (1 + (i / 10) % :customers), 1, j.step, 'active',
       now() - interval '3 days', now() - interval '3 days',
       CASE WHEN i % 10 = 0 THEN now() + interval '27 days'
            ELSE now() + interval '1 day' + make_interval(secs => (i * 7919) % 518400) END,
       CASE WHEN i % 10 = 0 THEN 'event' ELSE 'duration' END,
       CASE WHEN i % 10 = 0 THEN 'click' END,
       jsonb_build_array(jsonb_build_object('at', now() - interval '3 days', 'step', 'start', 'type', 'entry_trigger',
                                            'reason', jsonb_build_object('source', 'bench')),
                         jsonb_build_object('at', now() - interval '3 days', 'step', j.step, 'type', 'wait',
                                            'outcome', 'waiting'))
  FROM generate_series(0::bigint, :enrolments - 1) i
 CROSS JOIN LATERAL (SELECT CASE i % 10 WHEN 0 THEN 'jclick' WHEN 1 THEN 'jd' ELSE 'jl' || (i % 10) END AS journey,
                            CASE i % 10 WHEN 0 THEN 'wc' ELSE 'w0' END AS step) j;
VACUUM ANALYZE kaireon.journey_enrollments;
VACUUM ANALYZE public.jbench_due;
SELECT count(*) AS enrolments, count(*) FILTER (WHERE wait_kind = 'event') AS event_waits,
       (SELECT count(*) FROM public.jbench_due WHERE kind = 'light') AS light_due,
       (SELECT count(*) FROM public.jbench_due WHERE kind = 'decision') AS decision_due
  FROM kaireon.journey_enrollments WHERE tenant_id = 'bench';

-- jbench_reset(kind): the kind's enrolments back at w0, due (an hour ago, spread over it),
-- the rest untouched. The history is kept: a channel action's delivery key holds the step's
-- position in it, so a history cut back would repeat the keys of the previous run.
CREATE FUNCTION public.jbench_reset(p_kind text) RETURNS bigint LANGUAGE sql AS $f$
    UPDATE kaireon.journey_enrollments e
       SET current_step_id = 'w0', status = 'active', wait_until = now() - interval '1 hour'
                                                                   + make_interval(secs => abs(hashtext(e.id)) % 3600),
           wait_kind = 'duration', wait_event_type = NULL, wait_event_at = NULL
      FROM public.jbench_due d
     WHERE e.tenant_id = 'bench' AND e.id = d.id AND d.kind = p_kind;
    SELECT count(*) FROM public.jbench_due WHERE kind = p_kind;
$f$;
