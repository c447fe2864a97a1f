-- The outbox (docs/workers.md, "The outbox"): events go out in the order they were written,
-- through the topic's handler and NOTIFY kaireon_events; a failing delivery is retried with
-- exponential backoff, then dead-lettered, and a dead letter can be replayed. The order of
-- the notifications and SKIP LOCKED between publishers are in the isolation test
-- outbox_publish.
\set VERBOSITY terse
SET client_min_messages = warning;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('obx', 'Outbox', 'obx');

-- A delivery hook that records what it is given, and fails for one topic while a flag says so.
CREATE TABLE public.deliveries (n serial, event_id text, topic text, payload jsonb);
CREATE TABLE public.endpoint_down (topic text PRIMARY KEY);
CREATE FUNCTION public.deliver(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.endpoint_down d WHERE d.topic = deliver.topic) THEN
        RAISE EXCEPTION 'endpoint for % is down', topic;
    END IF;
    INSERT INTO public.deliveries (event_id, topic, payload) VALUES (event_id, topic, payload);
END $$;
-- A handler is named by its signature text, not by OID (docs/schema.md, "Functions named in
-- tables"): stored in canonical form (regprocedure's text with search_path pg_catalog).
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('*', 'public.deliver(text, text, pg_catalog.text, jsonb)');
SELECT topic, handler, pg_typeof(handler) AS stored_as FROM kaireon.outbox_handlers;
-- a handler must take (tenant_id, event_id, topic, payload)
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'kaireon.version()');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- and exist, named with its schema (it is looked up with search_path pg_catalog), as a
-- signature, returning void; nothing is written
\set VERBOSITY default
\set SHOW_CONTEXT never
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'public.no_such_deliver(text,text,text,jsonb)');
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'deliver(text,text,text,jsonb)');
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'public.deliver(text,text,text,jsonb');
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'public.deliver(text,text,text,nosuchtype)');
CREATE FUNCTION public.deliver_count(tenant_id text, event_id text, topic text, payload jsonb) RETURNS integer
LANGUAGE sql AS $$ SELECT 1 $$;
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('x', 'public.deliver_count(text,text,text,jsonb)');
UPDATE kaireon.outbox_handlers SET handler = 'public.no_such_deliver(text,text,text,jsonb)' WHERE topic = '*';
\set VERBOSITY terse
DROP FUNCTION public.deliver_count(text, text, text, jsonb);
SELECT topic, handler FROM kaireon.outbox_handlers;

-- Events are published in the order they were written (seq), not by id or time.
INSERT INTO kaireon.outbox_events (tenant_id, id, topic, payload) VALUES
    ('obx', 'z-first', 'order.placed', '{"n": 1}'), ('obx', 'a-second', 'order.placed', '{"n": 2}');
INSERT INTO kaireon.outbox_events (tenant_id, id, topic, payload) VALUES ('obx', 'm-third', 'order.shipped', '{"n": 3}');
SELECT kaireon.publish_outbox();
SELECT n, event_id, topic, payload FROM public.deliveries ORDER BY n;
SELECT id, status, published_at IS NOT NULL AS published, retry_count FROM kaireon.outbox_events ORDER BY seq;
-- nothing is due any more
SELECT kaireon.publish_outbox();
-- max_events bounds a call
INSERT INTO kaireon.outbox_events (tenant_id, id, topic) SELECT 'obx', 'bulk-' || i, 'bulk' FROM generate_series(1, 5) i;
SELECT kaireon.publish_outbox(max_events => 2) AS first_call;
SELECT kaireon.publish_outbox(max_events => 10) AS second_call;

-- respond writes interaction.recorded in its own transaction; the publisher sends it.
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('obx', 'o1', 'Offer 1');
SELECT kaireon.respond('obx', 'cust-1', 'click', offer_id => 'o1') ->> 'outcome' AS recorded;
SELECT kaireon.publish_outbox();
SELECT topic, payload ->> 'customerId' AS customer, payload ->> 'outcome' AS outcome FROM public.deliveries
 WHERE topic = 'interaction.recorded';

-- A failing delivery path: retried after 1 s, 2 s, 4 s (kaireon.outbox_retry_base doubled),
-- then, after max_retries retries, dead and copied to dead_letter_events.
TRUNCATE public.deliveries;
INSERT INTO public.endpoint_down VALUES ('payment.failed');
INSERT INTO kaireon.outbox_events (tenant_id, id, topic, payload, max_retries) VALUES
    ('obx', 'flaky', 'payment.failed', '{"amount": 12}', 3),
    ('obx', 'fine', 'payment.ok', '{}', 3);
CREATE TEMP TABLE attempts (attempt int, status text, retry_count int, backoff interval, last_error text);
DO $$
BEGIN
    FOR i IN 1 .. 5 LOOP
        -- the retry is due (as if its backoff had passed)
        UPDATE kaireon.outbox_events SET next_attempt_at = now() WHERE id = 'flaky' AND status = 'failed';
        PERFORM kaireon.publish_outbox();
        INSERT INTO attempts SELECT i, status, retry_count, next_attempt_at - now(), last_error
          FROM kaireon.outbox_events WHERE id = 'flaky';
    END LOOP;
END $$;
SELECT * FROM attempts ORDER BY attempt;
SELECT event_id FROM public.deliveries;
SELECT original_event_id, topic, payload, error_message, retry_count, replayed_at IS NULL AS not_replayed
  FROM kaireon.dead_letter_events WHERE tenant_id = 'obx';
-- the backoff is capped by kaireon.outbox_retry_max
SET kaireon.outbox_retry_base = '10min';
SET kaireon.outbox_retry_max = '30min';
SELECT r, kaireon_internal._outbox_backoff(r) FROM generate_series(1, 4) r;
RESET kaireon.outbox_retry_base;
RESET kaireon.outbox_retry_max;

-- Replay: the event goes back to the queue and, with the endpoint up again, out.
DELETE FROM public.endpoint_down;
SELECT kaireon.replay_dead_letter('obx', (SELECT id FROM kaireon.dead_letter_events WHERE original_event_id = 'flaky'));
SELECT id, status, retry_count, last_error FROM kaireon.outbox_events WHERE id = 'flaky';
SELECT kaireon.publish_outbox();
SELECT event_id, payload FROM public.deliveries;
SELECT id, status FROM kaireon.outbox_events WHERE id = 'flaky';
-- a dead letter is replayed once (the message names it and when it was replayed)
\set VERBOSITY sqlstate
SELECT kaireon.replay_dead_letter('obx', (SELECT id FROM kaireon.dead_letter_events WHERE original_event_id = 'flaky'));
\set VERBOSITY terse
-- a dead letter whose event retention removed is written again under its old id
INSERT INTO kaireon.dead_letter_events (tenant_id, id, original_event_id, topic, payload)
    VALUES ('obx', 'dl-orphan', 'gone-event', 'order.placed', '{"n": 9}');
SELECT kaireon.replay_dead_letter('obx', 'dl-orphan');
SELECT id, topic, status, payload FROM kaireon.outbox_events WHERE id = 'gone-event';

-- bad arguments
SELECT kaireon.publish_outbox(0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.publish_outbox(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.replay_dead_letter('obx', 'no-such-letter');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.replay_dead_letter('obx', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- handlers and the publisher are not the application's: an app role can neither register a
-- handler (it would run with the publisher's privileges) nor publish
CREATE ROLE regress_obx_app;
SELECT kaireon.grant_app_role('regress_obx_app');
SET ROLE regress_obx_app;
SET kaireon.tenant_id = 'obx';
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('mine', 'public.deliver(text,text,text,jsonb)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS handlers_seen FROM kaireon.outbox_handlers;
SELECT kaireon.publish_outbox();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
-- nor can an admin role with BYPASSRLS register a function of its own: handlers run as the
-- publisher (a superuser), so they must be owned by a superuser
CREATE ROLE regress_obx_admin;
SELECT kaireon.grant_admin_role('regress_obx_admin');
GRANT CREATE ON SCHEMA public TO regress_obx_admin;
SET ROLE regress_obx_admin;
CREATE FUNCTION public.admin_hook(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('mine', 'public.admin_hook(text,text,text,jsonb)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
-- a handler whose owner changed after it was registered fails the delivery at call time
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('owned', 'public.deliver(text,text,text,jsonb)');
ALTER FUNCTION public.deliver(text, text, text, jsonb) OWNER TO regress_obx_admin;
INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('obx', 'ev-owned', 'owned');
SELECT kaireon.publish_outbox();
SELECT id, status, retry_count, last_error FROM kaireon.outbox_events WHERE id = 'ev-owned';
ALTER FUNCTION public.deliver(text, text, text, jsonb) OWNER TO CURRENT_USER;
DELETE FROM kaireon.outbox_events WHERE id = 'ev-owned';
-- a handler whose function was dropped fails the delivery (retried, then dead-lettered)
-- instead of the event being marked published without it
CREATE FUNCTION public.gone(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ SELECT $$;
INSERT INTO kaireon.outbox_handlers (topic, handler) VALUES ('gone', 'public.gone(text,text,text,jsonb)');
DROP FUNCTION public.gone(text, text, text, jsonb);
INSERT INTO kaireon.outbox_events (tenant_id, id, topic) VALUES ('obx', 'ev-gone', 'gone');
SELECT kaireon.publish_outbox();
SELECT id, status, retry_count, last_error FROM kaireon.outbox_events WHERE id = 'ev-gone';
-- the handler is looked up by name at every delivery: created again with the same
-- signature, it is found again (an OID would have named the dropped function for ever)
CREATE FUNCTION public.gone(tenant_id text, event_id text, topic text, payload jsonb) RETURNS void
LANGUAGE sql AS $$ INSERT INTO public.deliveries (event_id, topic, payload) VALUES (event_id, topic, payload) $$;
UPDATE kaireon.outbox_events SET next_attempt_at = now() WHERE id = 'ev-gone';
SELECT kaireon.publish_outbox();
SELECT id, status, retry_count, last_error FROM kaireon.outbox_events WHERE id = 'ev-gone';
SELECT event_id, topic FROM public.deliveries WHERE event_id = 'ev-gone';
DROP FUNCTION public.gone(text, text, text, jsonb);

-- clean up
DELETE FROM kaireon.outbox_handlers;
DELETE FROM kaireon.tenants WHERE id = 'obx';
DROP FUNCTION public.deliver(text, text, text, jsonb);
DROP TABLE public.deliveries, public.endpoint_down;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_obx_app', 'regress_obx_admin');
DROP OWNED BY regress_obx_app, regress_obx_admin;
DROP ROLE regress_obx_app, regress_obx_admin;
