-- kaireon install script, part 49: the journey engine (docs/journeys.md, "The engine").
-- kaireon.advance_journeys (src/campaign/journeys.c) takes due active enrolments through
-- journey_enrollments_due_idx (and those with a pending wake, journey_pending_wakes), locks each
-- alone (FOR NO KEY UPDATE SKIP LOCKED) and, confined to the
-- enrolment's tenant, runs kaireon_internal._journey_advance, which takes the enrolment through
-- its frozen version's steps until a wait or an exit; the steps' effects and the enrolment's
-- move commit together. The maintenance job "journeys" calls it in batches.

-- the wait an active enrolment is in (NULL: due at a step that is not a wait)
ALTER TABLE kaireon.journey_enrollments
    ADD COLUMN wait_kind text CONSTRAINT journey_enrollments_wait_kind_check CHECK (wait_kind IN ('duration', 'until', 'event')),
    ADD COLUMN wait_event_type text,
    ADD COLUMN wait_event_at timestamptz;
COMMENT ON COLUMN kaireon.journey_enrollments.wait_kind IS
    'The kind of wait the enrolment is in at current_step_id (duration, until, event), set by the journey engine; NULL when it is not waiting. wait_until is when the wait ends (for an event wait: its timeout; NULL without one). See docs/journeys.md.';
COMMENT ON COLUMN kaireon.journey_enrollments.wait_event_type IS
    'For an event wait: the event type awaited (NULL otherwise). See docs/journeys.md.';
COMMENT ON COLUMN kaireon.journey_enrollments.wait_event_at IS
    'For an event wait: when the awaited event came (NULL: not yet; the wait then ends by its timeout and goes to timeoutNext). See docs/journeys.md.';
-- the engine reads only the due enrolments, through this index (never all enrolments)
CREATE INDEX journey_enrollments_due_idx ON kaireon.journey_enrollments (wait_until) WHERE status = 'active';
-- a respond wakes the customer's enrolments waiting for its event through this index
-- (src/decision/respond.c)
CREATE INDEX journey_enrollments_event_wait_idx ON kaireon.journey_enrollments (tenant_id, customer_id, wait_event_type)
    WHERE status = 'active' AND wait_event_type IS NOT NULL;

-- An event's wake of an enrolment another transaction held (src/decision/wake.c): recorded here
-- in the event's transaction, taken by the enrolment's next pass (docs/journeys.md, "Events").
-- Rows go with their enrolment.
CREATE TABLE kaireon.journey_pending_wakes (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    enrollment_id           text NOT NULL,
    event_type              text NOT NULL,
    event_at                timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, enrollment_id) REFERENCES kaireon.journey_enrollments (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_pending_wakes_tenant_id_enrollment_id_idx ON kaireon.journey_pending_wakes (tenant_id, enrollment_id);
-- the engine reads the wakes due as of its time through this index
CREATE INDEX journey_pending_wakes_event_at_idx ON kaireon.journey_pending_wakes (event_at);
COMMENT ON TABLE kaireon.journey_pending_wakes IS
    'JourneyPendingWake: an event of event_type at event_at that came while another transaction held the enrolment waiting for it (so the event could not set its wait_event_at without waiting); the enrolment''s next pass of kaireon.advance_journeys takes the earliest one inside the wait as the event, then removes them. Written by the events (respond, location_event, update_attribute). See docs/journeys.md.';

-- A split's condition (docs/journeys.md): segment, attribute of the customer's data row,
-- outcome within n days before p_at, experiment arm.
CREATE FUNCTION kaireon_internal._journey_condition(p_tenant text, p_customer text, p_when jsonb, p_at timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table     text;
    v_key       text;
    v_key_type  text;
    v_key_text  boolean;
    v_value     jsonb;
    v_want      jsonb := p_when -> 'value';
    v_cmp       integer;
BEGIN
    IF p_when ? 'segmentId' THEN
        RETURN kaireon.is_segment_member(p_tenant, p_when ->> 'segmentId', p_customer);
    ELSIF p_when ? 'outcome' THEN
        RETURN EXISTS (SELECT 1 FROM kaireon.interaction_history ih
                        WHERE ih.tenant_id = p_tenant AND ih.customer_id = p_customer
                          AND ih.interaction_type = 'outcome' AND ih.outcome_type_key = p_when ->> 'outcome'
                          AND ih.occurred_at <= p_at
                          AND (NOT p_when ? 'withinDays'
                               OR ih.occurred_at >= p_at - make_interval(days => (p_when ->> 'withinDays')::integer)));
    ELSIF p_when ? 'experimentId' THEN
        RETURN (SELECT a.variant FROM kaireon.assign_experiment(p_tenant, p_when ->> 'experimentId', p_customer) a)
               = p_when ->> 'arm';
    END IF;
    -- an attribute of the customer's row in the tenant's first published customer data schema,
    -- read through its primary key (tenant_id, key): the key compared in its own type (compared
    -- as text it would read the whole table); an id that is no value of that type has no row
    SELECT c.table_name, c.key_column INTO v_table, v_key FROM kaireon_internal._customer_data_table(p_tenant) c;
    SELECT a.atttypid IN ('text'::regtype, 'varchar'::regtype), format_type(a.atttypid, NULL)
      INTO v_key_text, v_key_type
      FROM pg_attribute a
     WHERE a.attrelid = to_regclass(v_table) AND quote_ident(a.attname) = v_key AND NOT a.attisdropped;
    IF v_table IS NULL OR v_key IS NULL OR v_key_type IS NULL THEN
        RETURN false;
    END IF;
    IF v_key_text THEN
        EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%s = $1', v_table, v_key)
           INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
    ELSE
        BEGIN
            EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%s = $1::%s',
                           v_table, v_key, v_key_type)
               INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
        EXCEPTION WHEN data_exception THEN
            RETURN false;   -- the id is no value of the key's type: no row
        END;
    END IF;
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN false;       -- no row, or no value: no condition holds
    END IF;
    CASE p_when ->> 'operator'
        WHEN 'eq' THEN RETURN v_value = v_want;
        WHEN 'neq' THEN RETURN v_value <> v_want;
        WHEN 'in' THEN RETURN v_want @> jsonb_build_array(v_value);
        WHEN 'not_in' THEN RETURN NOT v_want @> jsonb_build_array(v_value);
        ELSE
            IF jsonb_typeof(v_value) = 'number' AND jsonb_typeof(v_want) = 'number' THEN
                v_cmp := sign((v_value #>> '{}')::numeric - (v_want #>> '{}')::numeric);
            ELSIF jsonb_typeof(v_value) = 'string' AND jsonb_typeof(v_want) = 'string' THEN
                v_cmp := CASE WHEN (v_value #>> '{}') COLLATE "C" < (v_want #>> '{}') COLLATE "C" THEN -1
                              WHEN (v_value #>> '{}') = (v_want #>> '{}') THEN 0 ELSE 1 END;
            ELSE
                RETURN false;   -- a number and a string do not compare
            END IF;
            RETURN CASE p_when ->> 'operator' WHEN 'gt' THEN v_cmp > 0 WHEN 'gte' THEN v_cmp >= 0
                                              WHEN 'lt' THEN v_cmp < 0 WHEN 'lte' THEN v_cmp <= 0 END;
    END CASE;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_condition(text, text, jsonb, timestamptz) IS
    'Internal: whether a condition_split condition holds for a customer at p_at: segmentId (kaireon.is_segment_member), attribute (the customer''s row of the tenant''s first published customer data schema; no row or no value: false; gt/gte/lt/lte compare numbers with numbers and strings with strings), outcome (an outcome of that type at or before p_at, within withinDays days), experimentId and arm (kaireon.assign_experiment: the stored assignment, else a new one). See docs/journeys.md.';

-- One enrolment's pass (docs/journeys.md, "The engine"): its locked row is taken through its
-- version's steps from current_step_id until a wait that has not ended, or an exit.
CREATE FUNCTION kaireon_internal._journey_advance(p_tenant text, p_id text, p_at timestamptz)
    RETURNS TABLE (step_id text, step_type text, outcome text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e               kaireon.journey_enrollments;
    v_def           jsonb;
    v_max_days      integer;
    v_steps         jsonb;
    v_deadline      timestamptz;
    v_step          jsonb;
    v_cur           text;
    v_type          text;
    v_next          text;
    v_out           text;
    v_reason        jsonb;
    v_hist          jsonb := '[]';
    v_status        text := 'active';
    v_wait_until    timestamptz;
    v_wait_kind     text;
    v_wait_event    text;
    v_decision      jsonb;
    v_n             integer := 0;
    v_d             jsonb;
    v_until         timestamptz;
    v_branch        jsonb;
    v_i             integer;
    v_id            text;
    v_conversion    jsonb;
    v_wake_at       timestamptz;
BEGIN
    -- locked alone (a router query on Citus), skipped when another runner holds it; its
    -- latest version checked: one another runner has moved meanwhile is no longer due. FOR NO
    -- KEY UPDATE: an event that finds it held records its wake under a key share lock, which
    -- this lock does not block (src/decision/wake.c)
    SELECT * INTO e FROM kaireon.journey_enrollments x
     WHERE x.tenant_id = p_tenant AND x.id = p_id FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- the earliest pending wake inside the event wait (at or after it began, before its end),
    -- as of p_at: an event that came while another transaction held the enrolment
    IF e.status = 'active' AND e.wait_kind = 'event' THEN
        SELECT p.event_at INTO v_wake_at FROM kaireon.journey_pending_wakes p
         WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id AND p.event_type = e.wait_event_type
           AND p.event_at >= e.last_step_at AND (e.wait_until IS NULL OR p.event_at < e.wait_until)
           AND p.event_at <= p_at
         ORDER BY p.event_at LIMIT 1;
    END IF;
    IF v_wake_at IS NULL AND (e.status <> 'active' OR e.wait_until IS NULL OR e.wait_until > p_at) THEN
        -- not due: the pending wakes that can no longer count (the wait they came in is over)
        -- are removed; one of this wait from after p_at stays
        DELETE FROM kaireon.journey_pending_wakes p
         WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id
           AND NOT coalesce(e.status = 'active' AND e.wait_kind = 'event'
                            AND p.event_type = e.wait_event_type AND p.event_at >= e.last_step_at, false);
        RETURN;
    END IF;
    -- due: the pass takes the wait's pending wakes (any left are from before it: none counts
    -- after this pass); the earliest event of the wait wakes it
    DELETE FROM kaireon.journey_pending_wakes p WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id;
    IF v_wake_at IS NOT NULL AND (e.wait_event_at IS NULL OR v_wake_at < e.wait_event_at) THEN
        e.wait_event_at := v_wake_at;
    END IF;
    SELECT v -> 'definition', j.max_duration_days INTO v_def, v_max_days
      FROM kaireon.journeys j CROSS JOIN LATERAL jsonb_array_elements(j.published_versions) v
     WHERE j.tenant_id = e.tenant_id AND j.id = e.journey_id AND (v ->> 'version')::integer = e.journey_version;
    IF v_def IS NULL THEN
        RAISE EXCEPTION 'journey "%" has no version %', e.journey_id, e.journey_version
            USING ERRCODE = '55000', HINT = 'Published versions are never removed; was the journey rewritten by hand?';
    END IF;
    SELECT jsonb_object_agg(s ->> 'id', s) INTO v_steps FROM jsonb_array_elements(v_def -> 'steps') s;
    v_deadline := e.entered_at + make_interval(days => v_max_days);    -- NULL: unbounded
    -- the last decision recorded for this enrolment (a channel_action sends it)
    SELECT h -> 'reason' INTO v_decision FROM jsonb_array_elements(e.history) WITH ORDINALITY AS x (h, n)
     WHERE h ->> 'type' = 'nba_decision' ORDER BY x.n DESC LIMIT 1;
    -- exitOnConversion: a conversion of the customer since entry ends the enrolment at its next pass
    IF coalesce((v_def ->> 'exitOnConversion')::boolean, false) THEN
        SELECT jsonb_build_object('outcomeType', ih.outcome_type_key, 'occurredAt', ih.occurred_at) INTO v_conversion
          FROM kaireon.interaction_history ih
         WHERE ih.tenant_id = e.tenant_id AND ih.customer_id = e.customer_id AND ih.interaction_type = 'outcome'
           AND ih.occurred_at >= e.entered_at AND ih.occurred_at <= p_at
           AND EXISTS (SELECT 1 FROM kaireon.outcome_types ot
                        WHERE ot.tenant_id = e.tenant_id AND ot.key = ih.outcome_type_key
                          AND ot.category = 'conversion' AND ot.deleted_at IS NULL)
         ORDER BY ih.occurred_at LIMIT 1;
    END IF;
    v_cur := e.current_step_id;
    LOOP
        v_n := v_n + 1;
        IF v_n > 1000 THEN
            -- can't happen: the validator requires every loop to pass through a wait that takes time
            RAISE EXCEPTION 'enrolment "%" took more than 1000 steps in one pass', e.id
                USING ERRCODE = '54000', HINT = 'Check the journey''s loops (docs/journeys.md).';
        END IF;
        v_step := v_steps -> v_cur;
        IF v_step IS NULL THEN
            RAISE EXCEPTION 'version % of journey "%" has no step "%"', e.journey_version, e.journey_id, v_cur
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the enrolment rewritten by hand?';
        END IF;
        v_type := v_step ->> 'type';
        v_reason := NULL;
        v_next := NULL;
        IF v_n = 1 AND v_conversion IS NOT NULL THEN
            v_out := 'converted';
            v_reason := v_conversion;
            v_status := 'exited';
        ELSIF v_deadline IS NOT NULL AND p_at >= v_deadline THEN
            v_out := 'max_duration';
            v_reason := jsonb_build_object('maxDurationDays', v_max_days, 'deadline', v_deadline);
            v_status := 'exited';
        ELSIF v_type = 'entry_trigger' THEN
            -- recorded at enrolment (kaireon.enroll_in_journey): the engine only goes on
            v_cur := v_step ->> 'next';
            CONTINUE;
        ELSIF v_type = 'wait' AND v_n = 1 AND e.wait_kind IS NOT NULL THEN
            -- the wait the enrolment was in has ended
            IF e.wait_kind = 'event' AND e.wait_event_at IS NULL THEN
                v_out := 'timeout';
                v_next := coalesce(v_step ->> 'timeoutNext', v_step ->> 'next');
            ELSE
                v_out := CASE e.wait_kind WHEN 'event' THEN 'event' ELSE 'elapsed' END;
                v_next := v_step ->> 'next';
                IF e.wait_kind = 'event' THEN
                    v_reason := jsonb_build_object('eventType', e.wait_event_type, 'eventAt', e.wait_event_at);
                END IF;
            END IF;
        ELSIF v_type = 'wait' THEN
            -- a wait begins
            v_d := coalesce(v_step -> 'duration', v_step -> 'timeout');
            IF v_step ? 'until' THEN
                v_wait_kind := 'until';
                v_until := (v_step ->> 'until')::timestamptz;
            ELSE
                v_wait_kind := CASE WHEN v_step ? 'event' THEN 'event' ELSE 'duration' END;
                v_until := p_at + CASE WHEN v_d IS NULL THEN NULL ELSE
                           coalesce((v_d ->> 'days')::numeric, 0) * interval '1 day'
                           + coalesce((v_d ->> 'hours')::numeric, 0) * interval '1 hour'
                           + coalesce((v_d ->> 'minutes')::numeric, 0) * interval '1 minute'
                           + coalesce((v_d ->> 'seconds')::numeric, 0) * interval '1 second' END;
            END IF;
            v_wait_event := v_step -> 'event' ->> 'eventType';
            v_reason := jsonb_strip_nulls(jsonb_build_object('kind', v_wait_kind, 'until', v_until,
                                                             'eventType', v_wait_event));
            IF v_wait_kind = 'until' AND v_until <= p_at THEN
                v_out := 'elapsed';         -- its time is past: it passes at once
                v_next := v_step ->> 'next';
                v_wait_kind := NULL;
                v_wait_event := NULL;
            ELSE
                v_out := 'waiting';
                v_wait_until := CASE WHEN v_deadline IS NULL THEN v_until
                                     WHEN v_until IS NULL THEN v_deadline
                                     ELSE least(v_until, v_deadline) END;
            END IF;
        ELSIF v_type = 'nba_decision' THEN
            SELECT jsonb_build_object('offerId', r.offer_id, 'creativeId', r.creative_id,
                                      'interactionId', r.interaction_id, 'recommendationId', r.recommendation_id,
                                      'channelId', v_step ->> 'channelId')
              INTO v_decision
              FROM kaireon.recommend(e.tenant_id, e.customer_id, v_step ->> 'channelId', v_step ->> 'placementId',
                                     '{}', 1, v_step ->> 'flowKey') r
             WHERE r.rank IS NOT NULL ORDER BY r.rank LIMIT 1;
            IF v_decision IS NULL THEN
                v_out := 'no_offer';
                v_reason := jsonb_build_object('channelId', v_step ->> 'channelId');
                v_next := v_step ->> 'onNoOffer';
            ELSE
                v_out := 'offer';
                v_reason := v_decision;
                v_next := v_step ->> 'onOffer';
            END IF;
        ELSIF v_type = 'condition_split' THEN
            v_i := 0;
            FOR v_branch IN SELECT b FROM jsonb_array_elements(v_step -> 'branches') b LOOP
                v_i := v_i + 1;
                IF kaireon_internal._journey_condition(e.tenant_id, e.customer_id, v_branch -> 'when', p_at) THEN
                    v_out := 'branch ' || v_i;
                    v_reason := jsonb_build_object('branch', v_i, 'when', v_branch -> 'when');
                    v_next := v_branch ->> 'next';
                    EXIT;
                END IF;
            END LOOP;
            IF v_next IS NULL THEN
                v_out := 'otherwise';
                v_next := v_step ->> 'otherwise';
            END IF;
        ELSIF v_type = 'channel_action' THEN
            IF v_decision ? 'interactionId' AND v_decision ->> 'interactionId' IS NOT NULL
               AND (NOT v_step ? 'offerId' OR v_step ->> 'offerId' = v_decision ->> 'offerId') THEN
                -- the enrolment's recorded decision is sent: its delivery (and the delivery's
                -- outbox event); the key makes each pass through the step its own delivery
                v_id := kaireon.create_delivery(e.tenant_id, v_decision ->> 'interactionId', NULL, NULL,
                                                'journey:' || e.id || ':' || v_cur || ':'
                                                || (jsonb_array_length(e.history) + jsonb_array_length(v_hist)),
                                                jsonb_strip_nulls(jsonb_build_object(
                                                    'journeyId', e.journey_id, 'enrollmentId', e.id, 'stepId', v_cur,
                                                    'channelId', v_step ->> 'channelId', 'template', v_step -> 'template')));
                v_out := 'delivery';
                v_reason := jsonb_build_object('deliveryId', v_id, 'interactionId', v_decision ->> 'interactionId');
            ELSE
                INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
                VALUES (e.tenant_id, 'journey.channel_action',
                        jsonb_strip_nulls(jsonb_build_object(
                            'tenantId', e.tenant_id, 'journeyId', e.journey_id, 'journeyVersion', e.journey_version,
                            'enrollmentId', e.id, 'customerId', e.customer_id, 'stepId', v_cur,
                            'channelId', v_step ->> 'channelId', 'offerId', v_step ->> 'offerId',
                            'creativeId', v_step ->> 'creativeId', 'template', v_step -> 'template', 'at', p_at)))
                RETURNING id INTO v_id;
                v_out := 'event';
                v_reason := jsonb_build_object('eventId', v_id);
            END IF;
            v_next := v_step ->> 'next';
        ELSIF v_type = 'exit' THEN
            v_out := 'completed';
            v_reason := v_step -> 'reason';
            v_status := 'completed';
        ELSE
            RAISE EXCEPTION 'step "%" of journey "%" has the unknown type "%"', v_cur, e.journey_id, v_type
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the journey rewritten by hand?';
        END IF;
        v_hist := v_hist || jsonb_build_array(jsonb_build_object('at', p_at, 'step', v_cur, 'type', v_type,
                                                                 'outcome', v_out)
                                              || CASE WHEN v_reason IS NULL THEN '{}'::jsonb
                                                      ELSE jsonb_build_object('reason', v_reason) END);
        step_id := v_cur;
        step_type := v_type;
        outcome := v_out;
        RETURN NEXT;
        EXIT WHEN v_status <> 'active' OR v_out = 'waiting';
        v_cur := v_next;
    END LOOP;
    UPDATE kaireon.journey_enrollments x
       SET current_step_id = v_cur, status = v_status,
           wait_until = CASE WHEN v_status = 'active' THEN v_wait_until END,
           wait_kind = CASE WHEN v_status = 'active' THEN v_wait_kind END,
           wait_event_type = CASE WHEN v_status = 'active' THEN v_wait_event END,
           wait_event_at = NULL,
           last_step_at = p_at, history = x.history || v_hist, updated_at = now()
     WHERE x.tenant_id = e.tenant_id AND x.id = e.id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_advance(text, text, timestamptz) IS
    'Internal: one pass of kaireon.advance_journeys over one due active enrolment at p_at (locked FOR NO KEY UPDATE SKIP LOCKED: nothing when another runner holds it or it is no longer due; due also by the earliest pending wake of its event wait in journey_pending_wakes, taken as the event; the enrolment''s pending wakes are removed, those of a wait that is over also when it is not due): from current_step_id through the steps of its frozen version until a wait that has not ended (wait_until, wait_kind, wait_event_type set) or an exit (status completed; exited at max_duration_days, or with exitOnConversion after a conversion since entry), each step appended to history ({at, step, type, outcome, reason}) and returned. Runs in the caller''s transaction, confined to the tenant (src/campaign/journeys.c). See docs/journeys.md.';

-- An error in a pass: rolled back by the caller; recorded here, retried later.
CREATE FUNCTION kaireon_internal._journey_failed(p_tenant text, p_id text, p_at timestamptz, p_error text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- the wait's earliest pending wake (as the pass would have taken it) moves into the row, so
    -- the retry 5 minutes later takes the event and the wake does not make it due before then
    UPDATE kaireon.journey_enrollments x
       SET wait_until = p_at + interval '5 minutes', updated_at = now(),
           wait_event_at = CASE WHEN x.wait_kind = 'event' THEN
                                least(x.wait_event_at,
                                      (SELECT min(p.event_at) FROM kaireon.journey_pending_wakes p
                                        WHERE p.tenant_id = x.tenant_id AND p.enrollment_id = x.id
                                          AND p.event_type = x.wait_event_type AND p.event_at >= x.last_step_at
                                          AND (x.wait_until IS NULL OR p.event_at < x.wait_until)
                                          AND p.event_at <= p_at))
                                ELSE x.wait_event_at END,
           history = x.history || jsonb_build_array(jsonb_build_object('at', p_at, 'step', x.current_step_id,
                                                                        'type', 'error', 'outcome', 'error',
                                                                        'reason', p_error))
     WHERE x.tenant_id = p_tenant AND x.id = p_id AND x.status = 'active';
    DELETE FROM kaireon.journey_pending_wakes p
     WHERE p.tenant_id = p_tenant AND p.enrollment_id = p_id AND p.event_at <= p_at;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_failed(text, text, timestamptz, text) IS
    'Internal: records a pass of kaireon.advance_journeys that failed (rolled back) in the enrolment''s history (type error, the message) and makes it due again 5 minutes after p_at, at the step it was at; the earliest pending wake of its event wait (journey_pending_wakes) becomes its wait_event_at, and its pending wakes up to p_at are removed. See docs/journeys.md.';

CREATE FUNCTION kaireon.advance_journeys(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                         max_enrollments integer DEFAULT 100)
    RETURNS TABLE (enrollment_tenant_id text, enrollment_id text, journey_id text, customer_id text,
                   step_id text, step_type text, outcome text)
    AS 'MODULE_PATHNAME', 'kaireon_advance_journeys'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.advance_journeys(text, timestamptz, integer) IS
    'The journey engine, as of at (default now; tests pin it): takes up to max_enrollments due active enrolments (wait_until <= at, or a pending wake of its event wait at or before at in journey_pending_wakes; of tenant_id, or every tenant the caller sees), earliest first, each locked FOR NO KEY UPDATE SKIP LOCKED (one another runner holds is skipped), and advances each through its frozen version''s steps until a wait or an exit, confined to its tenant; a step''s effects and the enrolment''s move commit together. A failing enrolment is rolled back, its error recorded in its history, and retried 5 minutes later. One row per step taken (outcome: next step''s reason, such as offer, no_offer, branch 1, otherwise, waiting, elapsed, event, timeout, delivery, completed, max_duration, converted, error). The maintenance job journeys calls it. See docs/journeys.md.';

-- Segment entry (docs/journeys.md, "Enrolment"): the members of the segment named by the
-- entry_trigger of a journey's latest published version who never entered it, enrolled.
CREATE FUNCTION kaireon_internal._journey_segment_entries(p_tenant text, p_at timestamptz, p_max integer)
    RETURNS TABLE (journey_id text, customer_id text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    j           record;
    v_left      integer := p_max;
    v_customer  text;
    v_result    jsonb;
    v_entered   text[];
BEGIN
    -- (JSON paths, not joins to jsonb_array_elements: Citus plans the statement on the shards)
    FOR j IN SELECT x.id,
                    jsonb_path_query_first(x.published_versions,
                        '$[*] ? (@.version == $v).definition.steps[*] ? (@.type == "entry_trigger").segmentId',
                        jsonb_build_object('v', x.published_version)) #>> '{}' AS segment_id
               FROM kaireon.journeys x
              WHERE x.tenant_id = p_tenant AND x.status = 'active' AND x.published_version IS NOT NULL
                AND jsonb_path_exists(x.published_versions,
                        '$[*] ? (@.version == $v).definition.steps[*] ? (@.type == "entry_trigger" && exists(@.segmentId))',
                        jsonb_build_object('v', x.published_version))
              ORDER BY x.id
    LOOP
        EXIT WHEN v_left <= 0;
        -- a member enters once by its membership (re-entry, where allowed, is an event's);
        -- the enrolments are read through (tenant_id, journey_id, customer_id). A journey's
        -- rows are returned once its block has committed: a failure rolls its enrolments back,
        -- and they must not be reported
        v_entered := '{}';
        BEGIN
        FOR v_customer IN EXECUTE format(
            'SELECT m.customer_id FROM %s m
              WHERE NOT EXISTS (SELECT 1 FROM kaireon.journey_enrollments n
                                 WHERE n.tenant_id = $1 AND n.journey_id = $2 AND n.customer_id = m.customer_id)
              ORDER BY m.customer_id LIMIT $3',
            kaireon_internal._segment_view(p_tenant, j.segment_id)) USING p_tenant, j.id, v_left
        LOOP
            v_result := kaireon.enroll_in_journey(p_tenant, j.id, v_customer,
                                                  jsonb_build_object('source', 'segment', 'segmentId', j.segment_id), p_at);
            IF (v_result ->> 'enrolled')::boolean THEN
                v_entered := v_entered || v_customer;
            END IF;
        END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- a segment no longer published (or unreadable), or an enrolment that fails, skips
            -- its journey (rolled back), not the others
            v_entered := '{}';
            RAISE WARNING 'journey "%" of tenant "%": its segment entries (segment "%") failed: %',
                j.id, p_tenant, j.segment_id, SQLERRM;
        END;
        FOREACH v_customer IN ARRAY v_entered LOOP
            journey_id := j.id;
            customer_id := v_customer;
            RETURN NEXT;
        END LOOP;
        v_left := v_left - cardinality(v_entered);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_segment_entries(text, timestamptz, integer) IS
    'Internal: enrols at p_at, through kaireon.enroll_in_journey (reason {"source": "segment", "segmentId"}), up to p_max members of the segment named by the entry_trigger of each active journey''s latest published version who never entered that journey; one row per enrolment. Run confined to the tenant by kaireon.enroll_journey_segments. See docs/journeys.md.';

CREATE FUNCTION kaireon.enroll_journey_segments(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                                max_customers integer DEFAULT 1000)
    RETURNS TABLE (journey_tenant_id text, journey_id text, customer_id text)
    AS 'MODULE_PATHNAME', 'kaireon_enroll_journey_segments'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.enroll_journey_segments(text, timestamptz, integer) IS
    'Segment entry of journeys, as of at (default now; tests pin it): for each tenant (tenant_id, or every tenant the caller sees) with active published journeys whose entry_trigger names a segmentId, confined to that tenant, enrols up to max_customers members of those segments who never entered the journey (kaireon.enroll_in_journey); a journey whose segment cannot be read (say, unpublished) is skipped with a warning, the others go on. One row per enrolment. The maintenance job journeys calls it before advancing. See docs/journeys.md.';
