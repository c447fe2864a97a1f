-- kaireon install script, part 48: journeys (docs/journeys.md). Their tables are in
-- 30_operator.sql; here: the definition's validation when written (src/config/journey.c),
-- publishing a version, and enrolment. The engine that advances enrolments is
-- 49_journey_engine.sql.

CREATE FUNCTION kaireon_internal._validate_journey() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_journey'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_journey() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of journeys: the definition''s fields, step types and graph (one entry_trigger, every step reachable and reaching an exit, loops through a wait that takes time); the published versions (entry i is version i + 1 with a valid definition, published_version the last); 22023 naming the journey and the step (docs/journeys.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF definition, published_version, published_versions
    ON kaireon.journeys FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_journey();

-- Published versions never change, as for decision flows (the same trigger function).
CREATE TRIGGER published_versions_append_only BEFORE UPDATE OF published_versions ON kaireon.journeys
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._published_versions_append_only();

-- The event types the tenant's published journey versions wait for are part of its compiled
-- configuration (src/config/cache.c): an event of another type wakes no enrolment, so respond
-- and the other events skip the wake-up statement (src/decision/wake.c). A change of the
-- published versions renews the tenant's configuration version; editing a draft does not.
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF published_versions
    ON kaireon.journeys FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.journeys
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.journeys',
    'OLD.published_versions IS DISTINCT FROM NEW.published_versions');

CREATE FUNCTION kaireon.publish_journey(tenant_id text, journey_id text, notes text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    j           kaireon.journeys;
    v_version   integer;
    v_entry     jsonb;
BEGIN
    IF publish_journey.tenant_id IS NULL OR publish_journey.journey_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id and journey_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a journey.';
    END IF;
    PERFORM kaireon.assert_tenant_access(publish_journey.tenant_id);
    SELECT * INTO j FROM kaireon.journeys x
     WHERE x.tenant_id = publish_journey.tenant_id AND x.id = publish_journey.journey_id
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'journey "%" does not exist for tenant "%"', publish_journey.journey_id,
                        publish_journey.tenant_id
            USING ERRCODE = '42704', HINT = 'Create it in kaireon.journeys first.';
    END IF;
    IF j.definition = '{}'::jsonb THEN
        RAISE EXCEPTION 'journey "%" has no steps to publish', j.id
            USING ERRCODE = '22023', HINT = 'Write its definition first (docs/journeys.md).';
    END IF;
    IF j.status = 'archived' THEN
        RAISE EXCEPTION 'journey "%" is archived', j.id
            USING ERRCODE = '55000', HINT = 'Create a new journey instead of publishing an archived one.';
    END IF;
    -- written again, so that its validation trigger checks it now (a definition written
    -- before 0.2.0, or before the validator knew a rule, was never checked)
    UPDATE kaireon.journeys x SET definition = j.definition
     WHERE x.tenant_id = j.tenant_id AND x.id = j.id;
    v_version := coalesce(j.published_version, 0) + 1;
    v_entry := jsonb_build_array(jsonb_build_object(
                   'version', v_version,
                   'definition', j.definition,
                   'notes', notes,
                   'publishedAt', now(),
                   'publishedBy', coalesce(nullif(current_setting('kaireon.user_id', true), ''), session_user::text)));
    UPDATE kaireon.journeys x
       SET published_versions = x.published_versions || v_entry,
           published_version = v_version,
           published_at = now(),
           status = CASE WHEN x.status = 'draft' THEN 'active' ELSE x.status END,
           updated_at = now()
     WHERE x.tenant_id = j.tenant_id AND x.id = j.id;
    RETURN v_version;
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_journey(text, text, text) IS
    'Publishes a journey''s definition as a new immutable version (appended to published_versions); a draft journey becomes active. New enrolments enter the latest version; an enrolment keeps the version it entered with. Returns the version number. See docs/journeys.md.';

CREATE FUNCTION kaireon.enroll_in_journey(tenant_id text, journey_id text, customer_id text,
                                          reason jsonb DEFAULT '{"source": "manual"}', at timestamptz DEFAULT now())
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    j           kaireon.journeys;
    v_def       jsonb;
    v_entry     jsonb;
    v_id        text;
    v_result    jsonb := jsonb_build_object('journeyId', enroll_in_journey.journey_id);
BEGIN
    IF enroll_in_journey.tenant_id IS NULL OR enroll_in_journey.journey_id IS NULL
       OR enroll_in_journey.customer_id IS NULL OR enroll_in_journey.at IS NULL THEN
        RAISE EXCEPTION 'tenant_id, journey_id, customer_id and at must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant, the journey, the customer and the time of entry.';
    END IF;
    -- an enrolment at infinity is never due, and keeps the customer out of the journey for good
    IF NOT isfinite(enroll_in_journey.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', enroll_in_journey.at
            USING ERRCODE = '22023', HINT = 'Pass the time the customer enters the journey, or leave it out for now().';
    END IF;
    IF reason IS NOT NULL AND jsonb_typeof(reason) <> 'object' THEN
        RAISE EXCEPTION 'reason must be a JSON object, not %', jsonb_typeof(reason)
            USING ERRCODE = '22023', HINT = 'For example {"source": "manual"}.';
    END IF;
    PERFORM kaireon.assert_tenant_access(enroll_in_journey.tenant_id);
    SELECT * INTO j FROM kaireon.journeys x
     WHERE x.tenant_id = enroll_in_journey.tenant_id AND x.id = enroll_in_journey.journey_id;
    IF NOT FOUND THEN
        RETURN v_result || '{"enrolled": false, "reason": "no such journey"}';
    END IF;
    IF j.status <> 'active' THEN
        RETURN v_result || jsonb_build_object('enrolled', false, 'reason', 'journey is ' || j.status);
    END IF;
    IF j.published_version IS NULL THEN
        RETURN v_result || '{"enrolled": false, "reason": "journey is not published"}';
    END IF;
    SELECT e -> 'definition' INTO v_def FROM jsonb_array_elements(j.published_versions) e
     WHERE (e ->> 'version')::integer = j.published_version;
    SELECT s INTO v_entry FROM jsonb_array_elements(v_def -> 'steps') s WHERE s ->> 'type' = 'entry_trigger';
    IF v_entry IS NULL THEN
        -- the validation trigger keeps published versions in publish_journey's shape
        RAISE EXCEPTION 'version % of journey "%" has no entry step', j.published_version, j.id
            USING ERRCODE = '55000', HINT = 'Publish the journey again with kaireon.publish_journey.';
    END IF;
    -- without allowReentry a customer enters once; with it, again once the last enrolment ended
    IF NOT coalesce((v_def ->> 'allowReentry')::boolean, false)
       AND EXISTS (SELECT 1 FROM kaireon.journey_enrollments e
                    WHERE e.tenant_id = j.tenant_id AND e.journey_id = j.id
                      AND e.customer_id = enroll_in_journey.customer_id AND e.status <> 'active') THEN
        RETURN v_result || '{"enrolled": false, "reason": "already entered (the journey does not allow re-entry)"}';
    END IF;
    INSERT INTO kaireon.journey_enrollments AS e (tenant_id, journey_id, customer_id, journey_version, current_step_id,
                                                  status, entered_at, last_step_at, wait_until, history)
    VALUES (j.tenant_id, j.id, enroll_in_journey.customer_id, j.published_version, v_entry ->> 'id',
            'active', enroll_in_journey.at, enroll_in_journey.at, enroll_in_journey.at,
            jsonb_build_array(jsonb_build_object('at', enroll_in_journey.at, 'step', v_entry ->> 'id',
                                                 'type', 'entry_trigger', 'reason', reason)))
    ON CONFLICT (tenant_id, journey_id, customer_id) WHERE status = 'active' DO NOTHING
    RETURNING e.id INTO v_id;
    IF v_id IS NULL THEN
        RETURN v_result || '{"enrolled": false, "reason": "already enrolled"}';
    END IF;
    RETURN v_result || jsonb_build_object('enrolled', true, 'enrollmentId', v_id, 'version', j.published_version,
                                          'step', v_entry ->> 'id');
END
$fn$;
COMMENT ON FUNCTION kaireon.enroll_in_journey(text, text, text, jsonb, timestamptz) IS
    'Enrols a customer in a journey at time at: the latest published version, at its entry_trigger step, due at once, with reason in the history. At most one active enrolment per customer and journey; without allowReentry a customer enters only once. Returns {"journeyId", "enrolled": true, "enrollmentId", "version", "step"} or {"enrolled": false, "reason"} (no such journey, journey is draft/paused/archived, journey is not published, already enrolled, already entered). The trigger rules'' enroll_journey action calls it. See docs/journeys.md.';
