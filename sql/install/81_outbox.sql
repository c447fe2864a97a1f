-- kaireon install script, part 81: the outbox publisher (docs/workers.md, "The outbox").
-- Events written to kaireon.outbox_events in a business transaction (respond writes
-- interaction.recorded) are published in seq order by kaireon.publish_outbox: the topic's
-- handler (kaireon.outbox_handlers), if any, is called, then NOTIFY kaireon_events carries
-- the event id and topic. A failed delivery is retried with exponential backoff up to the
-- event's max_retries, then the event is dead and copied to kaireon.dead_letter_events, from
-- where kaireon.replay_dead_letter sends it again.

-- Delivery hooks: a function per topic ('*' for every topic without its own), called with
-- (tenant_id, event_id, topic, payload) before the NOTIFY. It runs with the privileges of the
-- role that publishes (the maintenance worker's, by default a superuser), so only superusers
-- and BYPASSRLS roles may register one (row level security with no policy), and the function
-- must be owned by a superuser: checked when it is registered and again at every call, so
-- neither an admin role's own function nor one whose owner changed later runs as the publisher.
-- The handler is named by its signature text, not by OID (kaireon_internal._resolve_function,
-- 00_base.sql): stored in canonical form and looked up by name at every delivery.
CREATE TABLE kaireon.outbox_handlers (
    topic                   text NOT NULL PRIMARY KEY CHECK (length(topic) BETWEEN 1 AND 200),
    handler                 text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.outbox_handlers IS
    'kaireon''s own table: the delivery function of an outbox topic (''*'': every topic without its own), called by kaireon.publish_outbox as handler(tenant_id text, event_id text, topic text, payload jsonb) before the NOTIFY; an error it raises is a failed delivery (retried, then dead-lettered). handler is the function''s signature as text (''public.deliver(text,text,text,jsonb)''), stored in canonical form and looked up by name at every delivery; it returns void and is owned by a superuser. Written only by superusers and BYPASSRLS roles: handlers run with the publisher''s privileges.';
ALTER TABLE kaireon.outbox_handlers ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION kaireon_internal._check_outbox_handler() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- stored in canonical form (the text of the regprocedure, search_path pg_catalog)
    NEW.handler := kaireon_internal._resolve_function(NEW.handler, '{text,text,text,jsonb}', 'outbox handler',
                                                      format('topic "%s"', NEW.topic), true)::text;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_outbox_handler() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of outbox_handlers checking the handler (kaireon_internal._resolve_function: it exists, takes (text, text, text, jsonb), returns void, is owned by a superuser) and storing its signature in canonical form.';
CREATE TRIGGER check_handler BEFORE INSERT OR UPDATE ON kaireon.outbox_handlers
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_outbox_handler();

-- The delay before retry n (1, 2, ...): kaireon.outbox_retry_base * 2^(n-1), at most
-- kaireon.outbox_retry_max.
CREATE FUNCTION kaireon_internal._outbox_backoff(retry integer) RETURNS interval
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT least(coalesce(nullif(current_setting('kaireon.outbox_retry_base', true), '')::interval, interval '1 second')
                 * power(2, greatest(retry, 1) - 1)::double precision,
                 coalesce(nullif(current_setting('kaireon.outbox_retry_max', true), '')::interval, interval '1 hour'))
$fn$;
COMMENT ON FUNCTION kaireon_internal._outbox_backoff(integer) IS
    'Internal: the wait before the n-th retry of an outbox event: kaireon.outbox_retry_base doubled per retry, capped at kaireon.outbox_retry_max.';

CREATE FUNCTION kaireon.publish_outbox(max_events integer DEFAULT 100) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev          record;
    v_nsp       name;
    v_fn        name;
    v_topic     text;
    v_handler   text;
    v_proc      regprocedure;
    v_found     boolean;
    v_err       text;
    n           integer := 0;
    v_tenants   text[];
    v_tenant    text;
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000, not %', coalesce(max_events::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how many due events to handle in this call.';
    END IF;
    -- On Citus (kaireon.distribute()) a statement locking rows names one tenant (Citus locks
    -- no rows of several shards at once): the tenants are served one after the other, each in
    -- the order its events were written: their transactions' time, then seq (seq comes from the
    -- sequence of the node that wrote the event, and a tenant moved to another node continues
    -- from that node's range, which may be below its old one; the time continues). On one
    -- node, one pass in seq order.
    IF kaireon_internal._citus_table_type('kaireon.outbox_events') IS NOT NULL THEN
        v_tenants := ARRAY(SELECT t.id FROM kaireon.tenants t ORDER BY t.id);
    ELSE
        v_tenants := ARRAY[NULL::text];
    END IF;
    FOREACH v_tenant IN ARRAY v_tenants LOOP
    EXIT WHEN n >= max_events;
    -- Due events in the order they were written; events another publisher holds are skipped.
    FOR ev IN EXECUTE format(
              'SELECT o.tenant_id, o.id, o.seq, o.topic, o.payload, o.retry_count, o.max_retries
                FROM kaireon.outbox_events o
               WHERE %s o.status IN (''pending'', ''failed'') AND o.next_attempt_at <= now()
               ORDER BY %s
               LIMIT $1
                 FOR UPDATE SKIP LOCKED', CASE WHEN v_tenant IS NULL THEN '' ELSE 'o.tenant_id = $2 AND' END,
                                          CASE WHEN v_tenant IS NULL THEN 'o.seq' ELSE 'o.created_at, o.seq' END)
              USING max_events - n, v_tenant
    LOOP
        -- The handler is looked up by name for each event: one dropped (nothing keeps it from
        -- being dropped), renamed, no longer returning void or no longer owned by a superuser
        -- fails the delivery (retried, then dead-lettered) instead of being skipped.
        SELECT h.topic, h.handler INTO v_topic, v_handler
          FROM kaireon.outbox_handlers h
         WHERE h.topic IN (ev.topic, '*')
         ORDER BY h.topic = '*'
         LIMIT 1;
        v_found := FOUND;
        BEGIN
            IF v_found THEN
                v_proc := kaireon_internal._resolve_function(v_handler, '{text,text,text,jsonb}', 'outbox handler',
                                                             format('topic "%s"', v_topic));
                SELECT n2.nspname, p.proname INTO v_nsp, v_fn
                  FROM pg_proc p JOIN pg_namespace n2 ON n2.oid = p.pronamespace WHERE p.oid = v_proc;
                EXECUTE format('SELECT %I.%I($1, $2, $3, $4)', v_nsp, v_fn)
                    USING ev.tenant_id, ev.id, ev.topic, ev.payload;
            END IF;
            PERFORM pg_notify('kaireon_events',
                              jsonb_build_object('id', ev.id, 'tenantId', ev.tenant_id, 'topic', ev.topic)::text);
            UPDATE kaireon.outbox_events
               SET status = 'published', published_at = now(), last_error = NULL
             WHERE tenant_id = ev.tenant_id AND id = ev.id;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            IF ev.retry_count >= ev.max_retries THEN
                UPDATE kaireon.outbox_events
                   SET status = 'dead', last_error = v_err, next_attempt_at = least(next_attempt_at, now())
                 WHERE tenant_id = ev.tenant_id AND id = ev.id;
                INSERT INTO kaireon.dead_letter_events (tenant_id, original_event_id, topic, payload, error_message,
                                                        retry_count)
                VALUES (ev.tenant_id, ev.id, ev.topic, ev.payload, v_err, ev.retry_count);
            ELSE
                UPDATE kaireon.outbox_events
                   SET status = 'failed', retry_count = ev.retry_count + 1, last_error = v_err,
                       next_attempt_at = now() + kaireon_internal._outbox_backoff(ev.retry_count + 1)
                 WHERE tenant_id = ev.tenant_id AND id = ev.id;
            END IF;
        END;
        n := n + 1;
    END LOOP;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_outbox(integer) IS
    'Publishes up to max_events due outbox events in seq order (FOR UPDATE SKIP LOCKED, so publishers never wait for each other): calls the topic''s handler (kaireon.outbox_handlers), then NOTIFY kaireon_events with {"id", "tenantId", "topic"} (delivered at commit), and marks the event published. A failed delivery is retried after kaireon_internal._outbox_backoff(n); after max_retries retries the event is dead and copied to dead_letter_events. Returns how many events it handled. The maintenance worker calls it on kaireon.outbox_schedule.';

CREATE FUNCTION kaireon.replay_dead_letter(tenant_id text, dead_letter_id text) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d           kaireon.dead_letter_events;
    v_event     text;
BEGIN
    IF replay_dead_letter.tenant_id IS NULL OR dead_letter_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id and dead_letter_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a row of kaireon.dead_letter_events.';
    END IF;
    PERFORM kaireon.assert_tenant_access(replay_dead_letter.tenant_id);
    SELECT * INTO d FROM kaireon.dead_letter_events x
     WHERE x.tenant_id = replay_dead_letter.tenant_id AND x.id = dead_letter_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'dead letter "%" does not exist for tenant "%"', dead_letter_id, replay_dead_letter.tenant_id
            USING ERRCODE = '42704', HINT = 'Look it up in kaireon.dead_letter_events.';
    END IF;
    IF d.replayed_at IS NOT NULL THEN
        RAISE EXCEPTION 'dead letter "%" was already replayed at %', dead_letter_id, d.replayed_at
            USING ERRCODE = '55000',
                  HINT = 'A replayed event that fails again gets a new dead letter; replay that one.';
    END IF;
    -- The original event goes back to the queue (with its retries reset); if retention has
    -- removed it, it is written again under its old id.
    UPDATE kaireon.outbox_events o
       SET status = 'pending', retry_count = 0, next_attempt_at = now(), last_error = NULL, published_at = NULL
     WHERE o.tenant_id = d.tenant_id AND o.id = d.original_event_id
    RETURNING o.id INTO v_event;
    IF v_event IS NULL THEN
        INSERT INTO kaireon.outbox_events (tenant_id, id, topic, payload)
        VALUES (d.tenant_id, coalesce(d.original_event_id, gen_random_uuid()::text), d.topic, d.payload)
        RETURNING id INTO v_event;
    END IF;
    UPDATE kaireon.dead_letter_events x SET replayed_at = now() WHERE x.tenant_id = d.tenant_id AND x.id = d.id;
    RETURN v_event;
END
$fn$;
COMMENT ON FUNCTION kaireon.replay_dead_letter(text, text) IS
    'Sends a dead-lettered event again: its outbox event goes back to pending with its retries reset (or is written again if retention removed it), and the dead letter is marked replayed. Returns the event id. A dead letter is replayed once; if the event fails again it gets a new dead letter.';
