-- kaireon install script, part 47: alert rules and channel deliveries (issue 15, items 5 and
-- 7; docs/orchestration.md). Their tables are in 30_operator.sql; here: the metrics an alert
-- rule may watch, the validation of a rule when written, kaireon.evaluate_alerts (run by the
-- maintenance job "alerts", src/maintenance/catalogue.c), and the deliveries:
-- kaireon.create_delivery (the one way to create a delivery row for a decision that is sent)
-- and kaireon.delivery_status (a provider's callback; opens and clicks become responses
-- through kaireon.respond).

COMMENT ON COLUMN kaireon.alert_rules.last_evaluated_at IS
    'When kaireon.evaluate_alerts last evaluated the rule (its at): the least recently evaluated rules go first, and a call at a time not after it skips the rule.';
COMMENT ON COLUMN kaireon.alert_rules.last_value IS
    'The metric''s value at the last evaluation (NULL: no value, e.g. a rate without decisions).';
COMMENT ON COLUMN kaireon.channel_deliveries.status_at IS
    'The time (the callback''s at) of the provider callback that set the current status; NULL while pending.';
-- A provider's message id names one delivery of the tenant and provider (a provider gives each
-- message its own id; two deliveries with one id would make its callbacks ambiguous):
-- kaireon.delivery_status refuses a second one (23505), and this index holds against any
-- writer. Deliveries without a provider count as one provider (NULLS NOT DISTINCT).
CREATE UNIQUE INDEX channel_deliveries_provider_message_idx
    ON kaireon.channel_deliveries (tenant_id, provider_name, provider_message_id) NULLS NOT DISTINCT
    WHERE provider_message_id IS NOT NULL;

-- The one list of the metrics an alert rule may watch; the validation and the documentation
-- follow it, and kaireon_internal._alert_metric_value computes each.
CREATE FUNCTION kaireon.alert_metrics()
    RETURNS TABLE (metric text, description text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT m.metric, m.description
      FROM (VALUES
        (1, 'decisions', 'recommendation rows (one per offer decided) recorded in the window'),
        (2, 'outcomes', 'outcomes recorded by respond in the window'),
        (3, 'conversions', 'outcomes in the window whose outcome type has category conversion'),
        (4, 'conversion_rate', 'conversions / decisions in the window; no value without decisions'),
        (5, 'cap_drops', 'candidates dropped by contact policies (caps) in the traced decisions of the window'),
        (6, 'caps_exhausted', 'active volume constraints and budgets at their limit at the evaluation time (the window is not used)'),
        (7, 'model_drift', 'the largest drift_score of the psi and feature_drift checks of the window; no value without checks'),
        (8, 'job_failures', 'campaign runs and pipeline runs of the tenant that failed in the window'),
        (9, 'dead_letters', 'outbox events of the tenant dead-lettered in the window'),
        (10, 'delivery_failures', 'channel deliveries that bounced or failed in the window')
      ) AS m (n, metric, description)
     ORDER BY m.n
$fn$;
COMMENT ON FUNCTION kaireon.alert_metrics() IS
    'The metrics an alert rule may watch (alert_rules.metric) and what each measures over the rule''s window [at - window_minutes, at) for the rule''s tenant. See docs/orchestration.md.';

CREATE FUNCTION kaireon_internal._validate_alert_rule() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_what      text := format('alert rule "%s" (id %s)', NEW.name, NEW.id);
    v_channel   jsonb;
    i           integer := 0;
BEGIN
    IF length(NEW.name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION '%: the name must have 1 to 200 characters', v_what
            USING ERRCODE = '22023', HINT = 'Give the rule a short name.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.alert_metrics() m WHERE m.metric = NEW.metric) THEN
        RAISE EXCEPTION '%: unknown metric "%"', v_what, NEW.metric
            USING ERRCODE = '22023',
                  HINT = 'Metrics: ' || (SELECT string_agg(m.metric, ', ') FROM kaireon.alert_metrics() m) || '.';
    END IF;
    IF NEW.operator IS NULL OR NEW.operator NOT IN ('gt', 'gte', 'lt', 'lte', 'eq', 'neq') THEN
        RAISE EXCEPTION '%: unknown operator "%"', v_what, NEW.operator
            USING ERRCODE = '22023', HINT = 'Operators: gt, gte, lt, lte, eq, neq.';
    END IF;
    IF NOT kaireon_internal._is_finite(NEW.threshold) THEN
        RAISE EXCEPTION '%: threshold must be a finite number, not %', v_what, NEW.threshold
            USING ERRCODE = '22023', HINT = 'NaN and Infinity are not thresholds.';
    END IF;
    IF NEW.window_minutes > 44640 THEN
        RAISE EXCEPTION '%: window_minutes must be at most 44640 (31 days), not %', v_what, NEW.window_minutes
            USING ERRCODE = '22023', HINT = 'A window is counted at every evaluation; keep it short.';
    END IF;
    IF jsonb_array_length(NEW.channels) > 20 THEN
        RAISE EXCEPTION '%: at most 20 channels, not %', v_what, jsonb_array_length(NEW.channels)
            USING ERRCODE = '22023', HINT = 'List where the alert goes, e.g. ["email:ops@example.com"].';
    END IF;
    FOR v_channel IN SELECT c FROM jsonb_array_elements(NEW.channels) c LOOP
        IF jsonb_typeof(v_channel) <> 'string' OR length(v_channel #>> '{}') NOT BETWEEN 1 AND 500 THEN
            RAISE EXCEPTION '%: channels[%] must be a non-empty string of at most 500 characters, not %', v_what, i, v_channel
                USING ERRCODE = '22023', HINT = 'List where the alert goes, e.g. ["email:ops@example.com"].';
        END IF;
        i := i + 1;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._validate_alert_rule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of alert_rules: the metric (one of kaireon.alert_metrics()), the operator, a finite threshold, window_minutes at most 31 days, channels an array of at most 20 non-empty strings, the name 1 to 200 characters; 22023 naming the rule and the bad value (docs/orchestration.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, metric, operator, threshold, window_minutes, channels
    ON kaireon.alert_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_alert_rule();

-- The value of one metric for one tenant over [p_from, p_to); NULL when it has none.
CREATE FUNCTION kaireon_internal._alert_metric_value(p_tenant text, p_metric text, p_from timestamptz, p_to timestamptz)
    RETURNS double precision
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_decisions double precision;
BEGIN
    CASE p_metric
    WHEN 'decisions' THEN
        RETURN (SELECT count(*) FROM kaireon.interaction_history ih
                 WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'recommendation'
                   AND ih.occurred_at >= p_from AND ih.occurred_at < p_to);
    WHEN 'outcomes' THEN
        RETURN (SELECT count(*) FROM kaireon.interaction_history ih
                 WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'outcome'
                   AND ih.occurred_at >= p_from AND ih.occurred_at < p_to);
    WHEN 'conversions' THEN
        RETURN kaireon_internal._alert_conversions(p_tenant, p_from, p_to);
    WHEN 'conversion_rate' THEN
        v_decisions := kaireon_internal._alert_metric_value(p_tenant, 'decisions', p_from, p_to);
        IF v_decisions = 0 THEN
            RETURN NULL;
        END IF;
        RETURN kaireon_internal._alert_conversions(p_tenant, p_from, p_to) / v_decisions;
    WHEN 'cap_drops' THEN
        RETURN (SELECT coalesce(sum(greatest(t.after_suppression - t.after_contact_policy, 0)), 0)
                  FROM kaireon.decision_traces t
                 WHERE t.tenant_id = p_tenant AND t.created_at >= p_from AND t.created_at < p_to);
    WHEN 'caps_exhausted' THEN
        RETURN (SELECT count(*) FROM kaireon.volume_constraints v
                 WHERE v.tenant_id = p_tenant AND v.status = 'active' AND v.current_count >= v.max_volume
                   AND (v.reset_at IS NULL OR v.reset_at > p_to))
             + (SELECT count(*) FROM kaireon.budget_allocations b
                 WHERE b.tenant_id = p_tenant
                   AND (b.status = 'exhausted'
                        OR (b.status = 'active' AND (b.used_impressions >= b.max_impressions
                                                     OR b.used_spend >= b.max_spend
                                                     OR b.used_conversions >= b.max_conversions))));
    WHEN 'model_drift' THEN
        RETURN (SELECT max(d.drift_score) FROM kaireon.model_drift_checks d
                 WHERE d.tenant_id = p_tenant AND d.check_type IN ('psi', 'feature_drift')
                   AND d.created_at >= p_from AND d.created_at < p_to);
    WHEN 'job_failures' THEN
        RETURN (SELECT count(*) FROM kaireon.campaign_runs r
                 WHERE r.tenant_id = p_tenant AND r.status = 'failed'
                   AND coalesce(r.completed_at, r.updated_at) >= p_from AND coalesce(r.completed_at, r.updated_at) < p_to)
             + (SELECT count(*) FROM kaireon.pipeline_runs r
                 WHERE r.tenant_id = p_tenant AND r.status = 'failed'
                   AND coalesce(r.completed_at, r.updated_at) >= p_from AND coalesce(r.completed_at, r.updated_at) < p_to);
    WHEN 'dead_letters' THEN
        RETURN (SELECT count(*) FROM kaireon.dead_letter_events d
                 WHERE d.tenant_id = p_tenant AND d.failed_at >= p_from AND d.failed_at < p_to);
    WHEN 'delivery_failures' THEN
        RETURN (SELECT count(*) FROM kaireon.channel_deliveries d
                 WHERE d.tenant_id = p_tenant AND d.status IN ('bounced', 'failed')
                   AND d.status_at >= p_from AND d.status_at < p_to);
    ELSE
        RAISE EXCEPTION 'unknown alert metric "%"', p_metric
            USING ERRCODE = '22023',
                  HINT = 'Metrics: ' || (SELECT string_agg(m.metric, ', ') FROM kaireon.alert_metrics() m) || '.';
    END CASE;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._alert_metric_value(text, text, timestamptz, timestamptz) IS
    'Internal: the value of an alert metric (kaireon.alert_metrics()) for one tenant over [p_from, p_to), NULL when it has none; 22023 for an unknown metric.';

CREATE FUNCTION kaireon_internal._alert_conversions(p_tenant text, p_from timestamptz, p_to timestamptz)
    RETURNS double precision
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN (SELECT count(*) FROM kaireon.interaction_history ih
             WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'outcome'
               AND ih.occurred_at >= p_from AND ih.occurred_at < p_to
               AND EXISTS (SELECT 1 FROM kaireon.outcome_types ot
                            WHERE ot.tenant_id = p_tenant AND ot.key = ih.outcome_type_key
                              AND ot.category = 'conversion' AND ot.deleted_at IS NULL));
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._alert_conversions(text, timestamptz, timestamptz) IS
    'Internal: the outcomes of a tenant in [p_from, p_to) whose outcome type has category conversion (alert metrics conversions and conversion_rate).';

CREATE FUNCTION kaireon.evaluate_alerts(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                        max_rules integer DEFAULT 100, alert_rule_id text DEFAULT NULL)
    RETURNS TABLE (rule_tenant_id text, rule_id text, rule_name text, metric text, value double precision,
                   fired boolean, reason text, event_id text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    c           record;
    r           kaireon.alert_rules;
    v_from      timestamptz;
    v_value     double precision;
    v_holds     boolean;
    v_event     text;
    v_err       text;
BEGIN
    IF evaluate_alerts.at IS NULL OR max_rules IS NULL THEN
        RAISE EXCEPTION 'at and max_rules must not be null'
            USING ERRCODE = '22004', HINT = 'Leave them out for now() and 100.';
    END IF;
    IF NOT isfinite(evaluate_alerts.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', evaluate_alerts.at
            USING ERRCODE = '22023', HINT = 'Pass the time to evaluate the rules at.';
    END IF;
    -- a rule is never evaluated again at a time not after its last evaluation, and its cooldown
    -- runs from when it fired: an evaluation in the future would silence it until then
    IF evaluate_alerts.at > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'at % is in the future (more than 5 minutes after the transaction''s time)', evaluate_alerts.at
            USING ERRCODE = '22023',
                  HINT = 'Pass the present or a past time: an evaluation at a later time would hold every rule it evaluates (and the cooldown of each that fires) until then.';
    END IF;
    IF max_rules NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_rules must be between 1 and 10000, not %', max_rules
            USING ERRCODE = '22023', HINT = 'Pass how many rules to evaluate in this call.';
    END IF;
    IF evaluate_alerts.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(evaluate_alerts.tenant_id);
    END IF;
    -- Steps: (1) the active rules not yet evaluated at this time, least recently evaluated
    -- first, at most max_rules; (2) each locked (one tenant per statement; a rule another
    -- evaluator holds is skipped) and checked again; (3) its metric over [at - window, at);
    -- (4) fired when the comparison holds and the cooldown has passed: an outbox event and
    -- last_fired_at; (5) last_evaluated_at and last_value in any case.
    FOR c IN
        SELECT a.tenant_id, a.id FROM kaireon.alert_rules a
         WHERE a.status = 'active'
           AND (evaluate_alerts.tenant_id IS NULL OR a.tenant_id = evaluate_alerts.tenant_id)
           AND (evaluate_alerts.alert_rule_id IS NULL OR a.id = evaluate_alerts.alert_rule_id)
           AND (a.last_evaluated_at IS NULL OR a.last_evaluated_at < evaluate_alerts.at)
         ORDER BY a.last_evaluated_at NULLS FIRST, a.tenant_id, a.id
         LIMIT max_rules
    LOOP
        SELECT * INTO r FROM kaireon.alert_rules a
         WHERE a.tenant_id = c.tenant_id AND a.id = c.id
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND OR r.status <> 'active'
                      OR (r.last_evaluated_at IS NOT NULL AND r.last_evaluated_at >= evaluate_alerts.at);
        rule_tenant_id := r.tenant_id;
        rule_id := r.id;
        rule_name := r.name;
        metric := r.metric;
        fired := false;
        event_id := NULL;
        v_from := evaluate_alerts.at - make_interval(mins => r.window_minutes);
        BEGIN
            v_value := kaireon_internal._alert_metric_value(r.tenant_id, r.metric, v_from, evaluate_alerts.at);
            v_err := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            v_value := NULL;
        END;
        value := v_value;
        v_holds := CASE r.operator
                       WHEN 'gt' THEN v_value > r.threshold
                       WHEN 'gte' THEN v_value >= r.threshold
                       WHEN 'lt' THEN v_value < r.threshold
                       WHEN 'lte' THEN v_value <= r.threshold
                       WHEN 'eq' THEN v_value = r.threshold
                       WHEN 'neq' THEN v_value <> r.threshold
                   END;
        IF v_err IS NOT NULL THEN
            reason := 'error: ' || v_err;
        ELSIF v_value IS NULL THEN
            reason := 'no value';
        ELSIF NOT v_holds THEN
            reason := 'condition not met';
        ELSIF r.last_fired_at IS NOT NULL
              AND evaluate_alerts.at < r.last_fired_at + make_interval(mins => r.cooldown_minutes) THEN
            reason := 'cooldown';
        ELSE
            INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
            VALUES (r.tenant_id, 'alert.fired',
                    jsonb_build_object('tenantId', r.tenant_id, 'alertRuleId', r.id, 'alertRuleName', r.name,
                                       'metric', r.metric, 'operator', r.operator, 'threshold', r.threshold,
                                       'value', v_value,
                                       'window', jsonb_build_object('from', v_from, 'to', evaluate_alerts.at,
                                                                    'minutes', r.window_minutes),
                                       'channels', r.channels, 'firedAt', evaluate_alerts.at))
            RETURNING id INTO v_event;
            fired := true;
            event_id := v_event;
            reason := 'fired';
        END IF;
        UPDATE kaireon.alert_rules a
           SET last_evaluated_at = evaluate_alerts.at, last_value = v_value,
               last_fired_at = CASE WHEN fired THEN evaluate_alerts.at ELSE a.last_fired_at END
         WHERE a.tenant_id = r.tenant_id AND a.id = r.id;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.evaluate_alerts(text, timestamptz, integer, text) IS
    'Evaluates the active alert rules (of tenant_id, or every tenant the caller sees; or the one alert_rule_id) at time at: each rule''s metric over [at - window_minutes, at) for its tenant, compared with operator and threshold; a rule that holds and whose last firing is at least cooldown_minutes before at fires: an outbox event alert.fired naming the rule, the value and the window, and last_fired_at = at. At most max_rules rules, least recently evaluated first; a rule already evaluated at or after at is skipped, one another session holds too. One row per rule evaluated; an at more than 5 minutes after now() is refused (22023: it would hold the rules until then). The maintenance job alerts runs it. See docs/orchestration.md.';

-------------------------------------------------------------------------------
-- Channel deliveries
-------------------------------------------------------------------------------

CREATE FUNCTION kaireon.create_delivery(tenant_id text, interaction_id text, channel_type text DEFAULT NULL,
                                        provider_name text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                        payload jsonb DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ih          record;
    v_key       text := coalesce(create_delivery.idempotency_key, create_delivery.interaction_id);
    v_type      text := create_delivery.channel_type;
    v_id        text;
    d           kaireon.channel_deliveries;
BEGIN
    IF create_delivery.tenant_id IS NULL OR create_delivery.interaction_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id and interaction_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant and the interaction id of the decision that is sent.';
    END IF;
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'payload must be a JSON object, not %', coalesce(payload::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass what the sender needs as an object, or leave it out.';
    END IF;
    IF v_key = '' OR length(v_key) > 500 THEN
        RAISE EXCEPTION 'idempotency_key must have 1 to 500 characters, not "%"', v_key
            USING ERRCODE = '22023', HINT = 'Leave it out to use the interaction id.';
    END IF;
    PERFORM kaireon.assert_tenant_access(create_delivery.tenant_id);
    SELECT h.id, h.interaction_type, h.customer_id, h.offer_id, h.creative_id, h.channel_id, h.recommendation_id,
           h.rank, h.placement_id, h.campaign_id
      INTO ih
      FROM kaireon.interaction_history h
     WHERE h.tenant_id = create_delivery.tenant_id AND h.id = create_delivery.interaction_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no interaction "%"', create_delivery.tenant_id, create_delivery.interaction_id
            USING ERRCODE = '42704', HINT = 'Pass the interaction_id of a recorded decision (recommend''s or a campaign''s).';
    END IF;
    IF ih.interaction_type <> 'recommendation' THEN
        RAISE EXCEPTION 'interaction "%" is a % row, not a decision', create_delivery.interaction_id, ih.interaction_type
            USING ERRCODE = '22023', HINT = 'A delivery sends a recorded decision (interaction type recommendation).';
    END IF;
    IF v_type IS NULL THEN
        SELECT ch.channel_type INTO v_type FROM kaireon.channels ch
         WHERE ch.tenant_id = create_delivery.tenant_id AND ch.id = ih.channel_id;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'interaction "%" names no channel of the tenant: channel_type is needed', create_delivery.interaction_id
                USING ERRCODE = '22023', HINT = 'Pass channel_type (email, sms, push, ...).';
        END IF;
    END IF;
    -- one row per idempotency key: the first call creates it (and asks for the send through the
    -- outbox), a repeated call returns it
    INSERT INTO kaireon.channel_deliveries AS cd (tenant_id, interaction_id, channel_type, provider_name, idempotency_key)
    VALUES (create_delivery.tenant_id, create_delivery.interaction_id, v_type, create_delivery.provider_name, v_key)
    ON CONFLICT ON CONSTRAINT channel_deliveries_tenant_id_idempotency_key_key DO NOTHING
    RETURNING cd.id INTO v_id;
    IF v_id IS NOT NULL THEN
        INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
        VALUES (create_delivery.tenant_id, 'channel.delivery',
                jsonb_build_object('tenantId', create_delivery.tenant_id, 'deliveryId', v_id,
                                   'idempotencyKey', v_key, 'channelType', v_type,
                                   'providerName', create_delivery.provider_name,
                                   'interactionId', ih.id, 'customerId', ih.customer_id,
                                   'recommendationId', ih.recommendation_id, 'rank', ih.rank,
                                   'offerId', ih.offer_id, 'creativeId', ih.creative_id,
                                   'channelId', ih.channel_id, 'placementId', ih.placement_id,
                                   'campaignId', ih.campaign_id, 'payload', payload));
        RETURN v_id;
    END IF;
    SELECT * INTO d FROM kaireon.channel_deliveries x
     WHERE x.tenant_id = create_delivery.tenant_id AND x.idempotency_key = v_key;
    IF d.interaction_id IS DISTINCT FROM create_delivery.interaction_id THEN
        RAISE EXCEPTION 'idempotency key "%" already names delivery "%" of interaction "%"', v_key, d.id,
                        coalesce(d.interaction_id, 'null')
            USING ERRCODE = '22023', HINT = 'Use one idempotency key per decision sent.';
    END IF;
    RETURN d.id;
END
$fn$;
COMMENT ON FUNCTION kaireon.create_delivery(text, text, text, text, text, jsonb) IS
    'The delivery of a recorded decision (interaction_id: a recommendation row of recommend or a campaign) through a channel: a channel_deliveries row in status pending with idempotency_key (default the interaction id) and an outbox event channel.delivery carrying the decision and payload for the sender; a repeated call with the same key returns the same delivery and writes nothing (the key naming another interaction: 22023). channel_type defaults to the type of the decision''s channel. Returns the delivery id. See docs/orchestration.md.';

-- The place of a status on the way a message goes (pending 0 ... clicked 4); NULL for the
-- terminal statuses bounced and failed.
CREATE FUNCTION kaireon_internal._delivery_rank(p_status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE p_status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                         WHEN 'opened' THEN 3 WHEN 'clicked' THEN 4 END
$fn$;
COMMENT ON FUNCTION kaireon_internal._delivery_rank(text) IS
    'Internal: the order of a delivery status on its way (pending 0, sent 1, delivered 2, opened 3, clicked 4); NULL for bounced and failed (terminal).';

CREATE FUNCTION kaireon.delivery_status(tenant_id text, status text, delivery_id text DEFAULT NULL,
                                        provider_message_id text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                        at timestamptz DEFAULT now(), error text DEFAULT NULL,
                                        provider_name text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d           kaireon.channel_deliveries;
    ih          record;
    v_new       text := delivery_status.status;
    v_cur       text;
    v_n         integer;
    v_outcomes  text[] := '{}';
    v_s         text;
    v_responses jsonb := '[]';
    v_result    jsonb;
BEGIN
    -- Steps: (1) arguments; (2) the delivery, locked (callbacks of one delivery run one after
    -- another); (3) the transition: a repeated status or an earlier one on the way writes
    -- nothing, a terminal status admits nothing else; (4) the row; (5) an open and a click
    -- become responses through kaireon.respond, once each (its idempotency key).
    IF delivery_status.tenant_id IS NULL OR v_new IS NULL OR delivery_status.at IS NULL THEN
        RAISE EXCEPTION 'tenant_id, status and at must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant, the provider''s status and the time of the event.';
    END IF;
    IF v_new NOT IN ('sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed') THEN
        RAISE EXCEPTION 'unknown delivery status "%"', v_new
            USING ERRCODE = '22023', HINT = 'Statuses: sent, delivered, opened, clicked, bounced, failed (pending is where a delivery starts).';
    END IF;
    IF NOT isfinite(delivery_status.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', delivery_status.at
            USING ERRCODE = '22023', HINT = 'Pass the time of the provider''s event.';
    END IF;
    IF delivery_status.delivery_id IS NULL AND delivery_status.idempotency_key IS NULL
       AND delivery_status.provider_message_id IS NULL THEN
        RAISE EXCEPTION 'one of delivery_id, idempotency_key and provider_message_id is needed'
            USING ERRCODE = '22004', HINT = 'Name the delivery the callback is about.';
    END IF;
    PERFORM kaireon.assert_tenant_access(delivery_status.tenant_id);
    IF delivery_status.delivery_id IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.id = delivery_status.delivery_id FOR UPDATE;
    ELSIF delivery_status.idempotency_key IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.idempotency_key = delivery_status.idempotency_key FOR UPDATE;
    ELSE
        SELECT count(*) INTO v_n FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name);
        IF v_n > 1 THEN
            RAISE EXCEPTION 'provider message id "%" names % deliveries of tenant "%"', delivery_status.provider_message_id,
                            v_n, delivery_status.tenant_id
                USING ERRCODE = '22023', HINT = 'Pass provider_name too, or the delivery_id.';
        END IF;
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name) FOR UPDATE;
    END IF;
    IF d.id IS NULL THEN
        RAISE EXCEPTION 'tenant "%" has no delivery %', delivery_status.tenant_id,
                        CASE WHEN delivery_status.delivery_id IS NOT NULL THEN format('"%s"', delivery_status.delivery_id)
                             WHEN delivery_status.idempotency_key IS NOT NULL THEN format('with idempotency key "%s"', delivery_status.idempotency_key)
                             ELSE format('with provider message id "%s"', delivery_status.provider_message_id) END
            USING ERRCODE = '42704', HINT = 'Deliveries are created by kaireon.create_delivery.';
    END IF;
    IF delivery_status.provider_message_id IS NOT NULL AND d.provider_message_id IS NOT NULL
       AND d.provider_message_id <> delivery_status.provider_message_id THEN
        RAISE EXCEPTION 'delivery "%" has provider message id "%", not "%"', d.id, d.provider_message_id,
                        delivery_status.provider_message_id
            USING ERRCODE = '22023', HINT = 'A delivery keeps the first provider message id it was given.';
    END IF;
    -- a provider's message id names one delivery of the tenant and provider (the unique index
    -- channel_deliveries_provider_message_idx): one already given to another delivery is refused
    IF delivery_status.provider_message_id IS NOT NULL AND d.provider_message_id IS NULL THEN
        SELECT x.id INTO v_s FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = d.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND x.provider_name IS NOT DISTINCT FROM coalesce(d.provider_name, delivery_status.provider_name)
           AND x.id <> d.id
         LIMIT 1;
        IF v_s IS NOT NULL THEN
            RAISE EXCEPTION 'provider message id "%" of provider % already names delivery "%"',
                            delivery_status.provider_message_id,
                            coalesce(format('"%s"', coalesce(d.provider_name, delivery_status.provider_name)), '(none)'), v_s
                USING ERRCODE = '23505',
                      HINT = 'A provider gives each message its own id: name this callback''s delivery by delivery_id or idempotency_key, and check the provider''s id.';
        END IF;
    END IF;
    v_cur := d.status;
    v_result := jsonb_build_object('deliveryId', d.id, 'previousStatus', v_cur);
    IF v_new = v_cur THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'duplicate', 'responses', v_responses);
    END IF;
    IF kaireon_internal._delivery_rank(v_cur) IS NULL
       OR (kaireon_internal._delivery_rank(v_new) IS NULL AND kaireon_internal._delivery_rank(v_cur) > 1) THEN
        RAISE EXCEPTION 'delivery "%" is %: it cannot become %', d.id, v_cur, v_new
            USING ERRCODE = '55000',
                  HINT = 'bounced and failed are final, and a delivery that reached its recipient (delivered, opened, clicked) can no longer bounce or fail.';
    END IF;
    IF kaireon_internal._delivery_rank(v_new) < kaireon_internal._delivery_rank(v_cur) THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'stale', 'responses', v_responses);
    END IF;
    UPDATE kaireon.channel_deliveries x
       SET status = v_new, status_at = delivery_status.at,
           attempts = CASE WHEN v_new = 'sent' OR v_cur = 'pending' THEN x.attempts + 1 ELSE x.attempts END,
           last_error = coalesce(delivery_status.error, x.last_error),
           provider_message_id = coalesce(x.provider_message_id, delivery_status.provider_message_id),
           provider_name = coalesce(x.provider_name, delivery_status.provider_name)
     WHERE x.tenant_id = d.tenant_id AND x.id = d.id;
    -- a click implies the open it came from: a click before any open records both
    IF v_new = 'clicked' AND kaireon_internal._delivery_rank(v_cur) < 3 THEN
        v_outcomes := ARRAY['opened', 'clicked'];
    ELSIF v_new IN ('opened', 'clicked') THEN
        v_outcomes := ARRAY[v_new];
    END IF;
    IF cardinality(v_outcomes) > 0 THEN
        SELECT h.customer_id, h.recommendation_id, h.rank, h.placement_id INTO ih
          FROM kaireon.interaction_history h
         WHERE h.tenant_id = d.tenant_id AND h.id = d.interaction_id AND h.interaction_type = 'recommendation';
        IF FOUND AND ih.recommendation_id IS NOT NULL THEN
            FOREACH v_s IN ARRAY v_outcomes LOOP
                v_responses := v_responses || jsonb_build_array(kaireon.respond(
                    tenant_id => d.tenant_id, customer_id => ih.customer_id,
                    outcome => CASE v_s WHEN 'opened' THEN 'impression' ELSE 'click' END,
                    recommendation_id => ih.recommendation_id, rank => ih.rank, placement_id => ih.placement_id,
                    idempotency_key => format('delivery:%s:%s', d.id, v_s),
                    occurred_at => delivery_status.at,
                    context => jsonb_build_object('source', 'delivery_status', 'deliveryId', d.id,
                                                  'deliveryStatus', v_s, 'channelType', d.channel_type)));
            END LOOP;
        END IF;
    END IF;
    RETURN v_result || jsonb_build_object('status', v_new, 'applied', true, 'responses', v_responses);
END
$fn$;
COMMENT ON FUNCTION kaireon.delivery_status(text, text, text, text, text, timestamptz, text, text) IS
    'Records a channel provider''s callback about a delivery (named by delivery_id, idempotency_key or provider_message_id): status sent, delivered, opened, clicked (forward on that way; skipping steps is allowed, an earlier status arriving late writes nothing), bounced or failed (only before delivered; final). A repeated callback writes nothing; an illegal transition is 55000 with nothing written. An open becomes an impression outcome and a click a click outcome of the decision through kaireon.respond, once each (a click before any open records both). Returns {deliveryId, previousStatus, status, applied, reason, responses}. See docs/orchestration.md.';
