-- kaireon install script, part 80: the four-eyes actions of decisioning (docs/security.md,
-- "Four-eyes governance"): publishing a decision flow and promoting a model. With four-eyes
-- on, kaireon.publish_decision_flow and kaireon.transition_model(..., 'champion') file these
-- requests; the last approval applies them through the functions below, which check that
-- what was approved is still what would be applied. The guards below refuse the same
-- changes made by writing the tables directly.

-- With four-eyes on (and no approval being applied, outside a restore), the published side
-- of a decision flow changes only through an approved decision_flow.publish: drafts stay free.
CREATE FUNCTION kaireon._flow_publish_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF kaireon.approval_in_progress() IS NOT NULL OR kaireon.in_restore_session()
       OR NOT kaireon.four_eyes_required(NEW.tenant_id) THEN
        RETURN NEW;
    END IF;
    IF (TG_OP = 'INSERT' AND (NEW.published_version IS NOT NULL OR NEW.published_versions <> '[]'
                              OR NEW.status = 'published'))
       OR (TG_OP = 'UPDATE' AND (NEW.published_versions IS DISTINCT FROM OLD.published_versions
                                 OR NEW.published_version IS DISTINCT FROM OLD.published_version
                                 OR (NEW.status = 'published' AND OLD.status IS DISTINCT FROM 'published'))) THEN
        RAISE EXCEPTION 'four-eyes approval is required to publish decision flow "%" of tenant "%"', NEW.key, NEW.tenant_id
            USING ERRCODE = '42501',
                  HINT = 'kaireon.publish_decision_flow(tenant_id, key) files the request; another user approves it.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._flow_publish_guard() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on decision_flows: with four-eyes on, published versions, the published version and the published status change only through an approved decision_flow.publish request (42501).';
CREATE TRIGGER flow_publish_guard BEFORE INSERT OR UPDATE ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon._flow_publish_guard();

-- With four-eyes on, a champion is made only by an approved model.promote (the UPDATE path is
-- checked by _registry_check): not created as one, nor deleted.
CREATE FUNCTION kaireon._champion_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r   kaireon.algorithm_models := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    IF r.registry_status <> 'champion' OR kaireon.approval_in_progress() IS NOT NULL
       OR kaireon.in_restore_session() OR NOT kaireon.four_eyes_required(r.tenant_id) THEN
        RETURN r;
    END IF;
    -- the tenant itself is being deleted: its models go with it
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM kaireon.tenants t WHERE t.id = r.tenant_id) THEN
        RETURN r;
    END IF;
    RAISE EXCEPTION 'four-eyes approval is required to % champion model "%" of tenant "%"',
                    CASE TG_OP WHEN 'INSERT' THEN 'create a' ELSE 'delete the' END, r.key, r.tenant_id
        USING ERRCODE = '42501',
              HINT = 'Create the model as a challenger and promote it with kaireon.transition_model; archive a champion before deleting it.';
END
$fn$;
COMMENT ON FUNCTION kaireon._champion_guard() IS
    'Internal: BEFORE INSERT OR DELETE trigger on algorithm_models: with four-eyes on, a champion is neither created directly nor deleted (42501).';
CREATE TRIGGER champion_guard BEFORE INSERT OR DELETE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon._champion_guard();

CREATE FUNCTION kaireon._validate_flow_publish(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF jsonb_typeof(payload -> 'draft') IS DISTINCT FROM 'object' OR jsonb_typeof(payload -> 'key') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'payload of decision_flow.publish must hold the flow''s "key" and its "draft" object'
            USING ERRCODE = '22023', HINT = 'kaireon.publish_decision_flow files this request itself.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.decision_flows d
                    WHERE d.tenant_id = _validate_flow_publish.tenant_id AND d.id = entity_id
                      AND d.key = payload ->> 'key' AND d.deleted_at IS NULL) THEN
        RAISE EXCEPTION 'decision flow "%" does not exist for tenant "%"', payload ->> 'key', tenant_id
            USING ERRCODE = '42704', HINT = 'Request the publish of an existing flow.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon._validate_flow_publish(text, text, jsonb) IS
    'Internal: checks a decision_flow.publish request (the flow exists; the payload holds its key and draft).';

CREATE FUNCTION kaireon._apply_flow_publish(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    f   kaireon.decision_flows;
BEGIN
    SELECT * INTO f FROM kaireon.decision_flows d
     WHERE d.tenant_id = _apply_flow_publish.tenant_id AND d.id = entity_id AND d.deleted_at IS NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'decision flow "%" of tenant "%" no longer exists', payload ->> 'key', tenant_id
            USING ERRCODE = '42704', HINT = 'Reject the request.';
    END IF;
    -- what was approved is the draft as it was when the publish was requested
    IF f.draft_config IS DISTINCT FROM payload -> 'draft' THEN
        RAISE EXCEPTION 'the draft of decision flow "%" changed after its publish was requested', f.key
            USING ERRCODE = '55000', HINT = 'Reject this request and request the publish of the new draft.';
    END IF;
    PERFORM kaireon.publish_decision_flow(tenant_id, f.key, payload ->> 'notes');
END
$fn$;
COMMENT ON FUNCTION kaireon._apply_flow_publish(text, text, jsonb) IS
    'Internal: applies an approved decision_flow.publish request: publishes the flow''s draft, which must be the one approved.';

CREATE FUNCTION kaireon._validate_model_promotion(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    m   kaireon.algorithm_models;
BEGIN
    IF jsonb_typeof(payload -> 'version') IS DISTINCT FROM 'number' THEN
        RAISE EXCEPTION 'payload of model.promote must hold the "version" of the model to promote'
            USING ERRCODE = '22023', HINT = 'kaireon.transition_model(tenant_id, model_key, ''champion'') files this request itself.';
    END IF;
    SELECT * INTO m FROM kaireon.algorithm_models a
     WHERE a.tenant_id = _validate_model_promotion.tenant_id AND a.id = entity_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no model with id "%"', tenant_id, entity_id
            USING ERRCODE = '42704', HINT = 'Request the promotion of an existing model.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.registry_transitions() t
                    WHERE t.from_status = m.registry_status AND t.to_status = 'champion') THEN
        RAISE EXCEPTION 'model "%" cannot become champion from registry status %', m.key, m.registry_status
            USING ERRCODE = '55000', HINT = 'Make it a challenger first.';
    END IF;
    IF coalesce(payload ->> 'family', m.registry_family) IS NULL THEN
        RAISE EXCEPTION 'model "%" has no registry_family, so it cannot be a family''s champion', m.key
            USING ERRCODE = '22023', HINT = 'Set registry_family first.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon._validate_model_promotion(text, text, jsonb) IS
    'Internal: checks a model.promote request (the model exists and may become champion).';

CREATE FUNCTION kaireon._apply_model_promotion(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    m       kaireon.algorithm_models;
    r       kaireon.approval_requests;
BEGIN
    SELECT * INTO m FROM kaireon.algorithm_models a
     WHERE a.tenant_id = _apply_model_promotion.tenant_id AND a.id = entity_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model "%" of tenant "%" no longer exists', payload ->> 'modelKey', tenant_id
            USING ERRCODE = '42704', HINT = 'Reject the request.';
    END IF;
    -- an approval is for one version of the model
    IF m.version IS DISTINCT FROM (payload ->> 'version')::integer THEN
        RAISE EXCEPTION 'model "%" is at version % now, but version % was approved', m.key, m.version, payload ->> 'version'
            USING ERRCODE = '55000', HINT = 'Reject this request and request the promotion of the current version.';
    END IF;
    PERFORM kaireon.transition_model(tenant_id, m.key, 'champion', payload ->> 'family');
    -- the running experiments this challenger won are over: it is their champion now
    UPDATE kaireon.experiments e SET status = 'completed', ended_at = now(), champion_model_id = m.id
     WHERE e.tenant_id = m.tenant_id AND e.status = 'running'
       AND EXISTS (SELECT 1 FROM kaireon.experiment_challengers c
                    WHERE c.tenant_id = e.tenant_id AND c.experiment_id = e.id AND c.model_id = m.id);
    -- model_approvals keeps the approved promotions of the model's versions
    SELECT * INTO r FROM kaireon.approval_requests q
     WHERE q.tenant_id = _apply_model_promotion.tenant_id AND q.id = kaireon.approval_in_progress();
    INSERT INTO kaireon.model_approvals (tenant_id, model_id, version, status, requested_by, reviewed_by, reviewed_at,
                                         comment, metrics)
    VALUES (tenant_id, m.id, m.version, 'approved', r.requester_id, nullif(current_setting('kaireon.user_id', true), ''),
            now(),
            coalesce((SELECT s.comment FROM kaireon.approval_request_stages s
                       WHERE s.tenant_id = r.tenant_id AND s.approval_request_id = r.id AND s.status = 'approved'
                       ORDER BY s.ordinal DESC LIMIT 1), r.reason),
            m.metrics);
END
$fn$;
COMMENT ON FUNCTION kaireon._apply_model_promotion(text, text, jsonb) IS
    'Internal: applies an approved model.promote request: promotes the model (whose version must be the one approved) to champion and records the approval in model_approvals.';

INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description) VALUES
    ('decision_flow.publish', 'decision_flows',
     'kaireon._apply_flow_publish(text,text,jsonb)', 'kaireon._validate_flow_publish(text,text,jsonb)',
     'Publish the draft of a decision flow (as it was when requested) as a new immutable version.'),
    ('model.promote', 'algorithm_models',
     'kaireon._apply_model_promotion(text,text,jsonb)', 'kaireon._validate_model_promotion(text,text,jsonb)',
     'Promote a version of a model to champion of its registry family (the old champion is archived).');
