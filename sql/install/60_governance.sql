-- kaireon install script, part 60: governance and four-eyes (docs/security.md, "Four-eyes").
--   * the tables: approval_requests and their stages, custom_roles and their assignments,
--     sso_configs, webauthn_credentials (cross-tenant, scoped by user);
--   * four-eyes approvals (from "Four-eyes approvals" below);
--   * the four-eyes actions of decisioning (from "Governed actions" below).
-- Runs after 10_decisioning (contact_policies, decision_flows), 30_operator (users,
-- tenant_settings) and 40_models (algorithm_models). Conventions are in docs/schema.md;
-- 99_finalize.sql adds the updated_at triggers, the tenant_isolation policies, soft-delete
-- indexes and pg_dump registration.

-- ---------------------------------------------------------------------------------------
-- Governance tables
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.approval_requests (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    entity_type             text NOT NULL,
    entity_id               text,
    action                  text NOT NULL,
    payload                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    requester_id            text NOT NULL,
    approver_id             text,
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled',
                                              'applied')),
    reason                  text,
    decided_at              timestamptz,
    applied_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.approval_requests IS
    'ApprovalRequest: a proposed change (action with payload on an entity; entity_id is NULL for a create) waiting for approval under maker-checker governance; applied once approved and carried out. requester_id/approver_id are user ids (no foreign key: kaireon.users is created later).';

CREATE INDEX approval_requests_status_idx
    ON kaireon.approval_requests (tenant_id, status, created_at);
CREATE INDEX approval_requests_entity_idx
    ON kaireon.approval_requests (tenant_id, entity_type, entity_id);

CREATE TABLE kaireon.approval_request_stages (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    approval_request_id     text NOT NULL,
    stage_name              text NOT NULL,
    ordinal                 integer NOT NULL CHECK (ordinal >= 0),
    required_role           text NOT NULL,
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected', 'skipped')),
    approver_id             text,
    comment                 text,
    decided_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, approval_request_id, ordinal),
    FOREIGN KEY (tenant_id, approval_request_id) REFERENCES kaireon.approval_requests (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.approval_request_stages IS
    'ApprovalRequestStage: one stage of a multi-stage ApprovalRequest, decided in ordinal order by an approver holding required_role. approver_id is a user id (no foreign key: kaireon.users is created later).';

CREATE TABLE kaireon.custom_roles (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    description             text,
    permissions             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(permissions) = 'array'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
COMMENT ON TABLE kaireon.custom_roles IS
    'CustomRole: tenant-defined role granting a JSON array of permission strings; given to users by CustomRoleAssignment.';

-- (tenant_id, user_id) references kaireon.users: the foreign key is added after the tables, below.
CREATE TABLE kaireon.custom_role_assignments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    user_id                 text NOT NULL,
    role_id                 text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, user_id, role_id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES kaireon.custom_roles (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.custom_role_assignments IS
    'CustomRoleAssignment: grants a CustomRole to a user within the tenant. user_id is the id of one of the tenant''s users (foreign key (tenant_id, user_id) to kaireon.users).';

CREATE INDEX custom_role_assignments_role_idx
    ON kaireon.custom_role_assignments (tenant_id, role_id);

CREATE TABLE kaireon.sso_configs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    provider                text NOT NULL DEFAULT 'none'
                            CHECK (provider IN ('saml', 'oidc', 'none')),
    saml_entity_id          text,
    saml_sso_url            text,
    saml_certificate        text,
    oidc_issuer             text,
    oidc_client_id          text,
    default_role            text NOT NULL DEFAULT 'viewer',
    allowed_domains         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(allowed_domains) = 'array'),
    auto_provision          boolean NOT NULL DEFAULT false,
    enforce_for_all_users   boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id)
);
COMMENT ON TABLE kaireon.sso_configs IS
    'SsoConfig: the tenant''s single sign-on setup (saml, oidc or none): identity-provider identifiers, role given to provisioned users, allowed e-mail domains, just-in-time provisioning and whether SSO is mandatory. One row per tenant; no client secrets are stored here.';

-- A credential of a user of the tenant; (tenant_id, user_id) references kaireon.users: the
-- foreign key is added after the tables, below.
CREATE TABLE kaireon.webauthn_credentials (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    user_id                 text NOT NULL,
    credential_id           text NOT NULL,
    public_key              text NOT NULL,
    counter                 bigint NOT NULL DEFAULT 0 CHECK (counter >= 0),
    transports              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(transports) = 'array'),
    device_label            text,
    last_used_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, credential_id)
);
COMMENT ON TABLE kaireon.webauthn_credentials IS
    'WebAuthnCredential: a user''s WebAuthn/passkey credential: credential id, COSE public key (CBOR, base64), signature counter, transports and device label. Belongs to a user of the tenant (foreign key (tenant_id, user_id) to kaireon.users); a credential id is unique within the tenant.';

CREATE INDEX webauthn_credentials_user_idx
    ON kaireon.webauthn_credentials (tenant_id, user_id);

-- User references (kaireon.users: 30_operator.sql), within the tenant. Row level security is
-- the plain tenant_isolation policy of 99_finalize.sql.
ALTER TABLE kaireon.custom_role_assignments
    ADD FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE kaireon.webauthn_credentials
    ADD FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;

-- ---------------------------------------------------------------------------------------
-- Four-eyes approvals
-- ---------------------------------------------------------------------------------------

-- Four-eyes governance (docs/security.md, "Four-eyes").
-- When a tenant has tenant_settings.four_eyes_enabled, governed changes go through
-- approval_requests: a requester files the change (an action with a payload), approvers
-- holding each stage's required_role approve the stages in order, and the last approval
-- applies the payload through the action's apply function, in the same transaction, with
-- kaireon.applying_approval set (src/security/governance.c). Every step is audited (the approval
-- tables and the changed tables are audited tables).

CREATE FUNCTION kaireon.approval_in_progress() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_approval_in_progress'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.approval_in_progress() IS
    'Id of the approval request whose change kaireon.approve_request is applying right now, else NULL. Functions that check four-eyes themselves (publish_decision_flow, model promotion) proceed when it is set.';

CREATE FUNCTION kaireon.in_restore_session() RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_in_restore_session'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.in_restore_session() IS
    'Whether this session is a pg_dump/pg_restore load (a superuser with the settings every dump script sets): guards let the dumped rows back in as they were.';

CREATE FUNCTION kaireon.four_eyes_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_four_eyes_guard'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.four_eyes_guard() IS
    'BEFORE row trigger of the tables four-eyes governs (argument: the approval action that changes them): refuses a direct change (42501) while four-eyes is on for the tenant, unless an approved request is being applied.';

-- (PL/pgSQL, not SQL: Citus cannot plan a SQL function's parameterised queries on its tables)
CREATE FUNCTION kaireon.four_eyes_required(tenant_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- another tenant's answer is not the caller's to know (row level security would
    -- hide its settings row and answer a wrong false): refuse it like other calls (42501)
    PERFORM kaireon.assert_tenant_access(four_eyes_required.tenant_id);
    RETURN coalesce((SELECT s.four_eyes_enabled FROM kaireon.tenant_settings s
                      WHERE s.tenant_id = four_eyes_required.tenant_id), false);
END
$fn$;
COMMENT ON FUNCTION kaireon.four_eyes_required(text) IS
    'Whether four-eyes governance is on for a tenant (tenant_settings.four_eyes_enabled; false without a settings row). Raises 42501 unless the caller may act for the tenant (kaireon.assert_tenant_access).';

-- The registry of approval actions: what each one changes and the functions that check its
-- payload when it is filed and apply it when it is approved. Rows are installed by the
-- extension's install scripts (other modules add theirs); pg_dump does not dump them, so a
-- restore gets them from CREATE EXTENSION. The functions are named by their signature text,
-- not by OID (kaireon_internal._resolve_function, 00_base.sql): checked when a row is written
-- and looked up again at every call.
CREATE TABLE kaireon.approval_actions (
    action                  text PRIMARY KEY CHECK (action ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
    entity_type             text NOT NULL,
    apply_function          text NOT NULL,
    validate_function       text,
    description             text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.approval_actions IS
    'kaireon''s own table: the approval actions of four-eyes governance. apply_function(tenant_id text, entity_id text, payload jsonb) carries out an approved request; validate_function (same arguments, optional) refuses a bad payload when the request is filed. Both are signatures as text (''kaireon_internal._apply_x(text,text,jsonb)''), stored in canonical form, looked up by name at every call; the functions return void and are owned by a superuser. Installed with the extension; not dumped.';

CREATE FUNCTION kaireon_internal._approval_action_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_of        text := format('approval action "%s"', NEW.action);
BEGIN
    -- stored in canonical form (the text of the regprocedure, search_path pg_catalog)
    NEW.apply_function := kaireon_internal._resolve_function(NEW.apply_function, '{text,text,jsonb}',
                                                             'apply function', v_of, true)::text;
    IF NEW.validate_function IS NOT NULL THEN
        NEW.validate_function := kaireon_internal._resolve_function(NEW.validate_function, '{text,text,jsonb}',
                                                                    'validate function', v_of, true)::text;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._approval_action_check() IS
    'Internal: trigger checking an approval action''s apply and validate functions (kaireon_internal._resolve_function: they exist, take (text, text, jsonb), return void, are owned by a superuser) and storing their signatures in canonical form.';
CREATE TRIGGER check_functions BEFORE INSERT OR UPDATE ON kaireon.approval_actions
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._approval_action_check();

-- The stages a new request of a tenant gets: tenant_settings.settings -> 'approvalStages' ->
-- <action>, else -> 'default', else one stage "review" needing role approver.
CREATE FUNCTION kaireon_internal._approval_stages(p_tenant_id text, p_action text) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_cfg       jsonb;
    v_stage     jsonb;
BEGIN
    SELECT coalesce(s.settings -> 'approvalStages' -> p_action, s.settings -> 'approvalStages' -> 'default')
      INTO v_cfg FROM kaireon.tenant_settings s WHERE s.tenant_id = p_tenant_id;
    IF v_cfg IS NULL THEN
        RETURN '[{"name": "review", "requiredRole": "approver"}]';
    END IF;
    IF jsonb_typeof(v_cfg) <> 'array' OR jsonb_array_length(v_cfg) NOT BETWEEN 1 AND 10 THEN
        RAISE EXCEPTION 'approval stages of tenant "%" for action "%" must be an array of 1 to 10 stages', p_tenant_id, p_action
            USING ERRCODE = '22023',
                  HINT = 'tenant_settings.settings -> ''approvalStages'' holds e.g. {"default": [{"name": "review", "requiredRole": "approver"}]}.';
    END IF;
    FOR v_stage IN SELECT * FROM jsonb_array_elements(v_cfg) LOOP
        IF jsonb_typeof(v_stage -> 'name') IS DISTINCT FROM 'string'
           OR jsonb_typeof(v_stage -> 'requiredRole') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'approval stage % of tenant "%" needs string fields "name" and "requiredRole"', v_stage, p_tenant_id
                USING ERRCODE = '22023', HINT = 'For example {"name": "compliance", "requiredRole": "approver"}.';
        END IF;
    END LOOP;
    RETURN v_cfg;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._approval_stages(text, text) IS
    'Internal: the approval stages ({name, requiredRole} in order) a new request of the action gets for the tenant.';

-- Whether a user may decide a stage that requires p_role: the user of that id in the tenant
-- (kaireon.users), or, if the tenant has none, the platform user of that id
-- (kaireon.platform_users); its role is p_role, or (a tenant's user) it is assigned a custom
-- role of that name.
-- (PL/pgSQL, each query naming the tenant: Citus plans no parameterised query of a SQL
-- function, and the platform users are a reference table apart from the tenant's rows)
CREATE FUNCTION kaireon_internal._user_holds_role(p_tenant_id text, p_user_id text, p_role text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role      text;
BEGIN
    SELECT u.role INTO v_role FROM kaireon.users u WHERE u.tenant_id = p_tenant_id AND u.id = p_user_id;
    IF FOUND THEN
        RETURN v_role = p_role
            OR EXISTS (SELECT 1 FROM kaireon.custom_role_assignments a
                         JOIN kaireon.custom_roles r ON r.tenant_id = a.tenant_id AND r.id = a.role_id
                        WHERE a.tenant_id = p_tenant_id AND r.tenant_id = p_tenant_id
                          AND a.user_id = p_user_id AND r.name = p_role);
    END IF;
    RETURN EXISTS (SELECT 1 FROM kaireon.platform_users p WHERE p.id = p_user_id AND p.role = p_role);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._user_holds_role(text, text, text) IS
    'Internal: whether a user holds a role in a tenant: the tenant''s user of that id (its users.role or a custom role assignment), or, if the tenant has none of that id, the platform user of that id (its platform_users.role).';

-- The application user acting (kaireon.user_id), required by the approval functions.
CREATE FUNCTION kaireon_internal._acting_user() RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user      text := nullif(current_setting('kaireon.user_id', true), '');
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'kaireon.user_id is not set: approvals need to know which user acts'
            USING ERRCODE = '42501', HINT = 'SET kaireon.user_id to the application user''s id first.';
    END IF;
    RETURN v_user;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._acting_user() IS
    'Internal: kaireon.user_id, or 42501 when it is not set.';

CREATE FUNCTION kaireon.request_approval(tenant_id text, action text, entity_id text DEFAULT NULL,
                                         payload jsonb DEFAULT '{}', reason text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user      text;
    v_action    kaireon.approval_actions%ROWTYPE;
    v_id        text;
    v_stage     record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    v_user := kaireon_internal._acting_user();
    SELECT * INTO v_action FROM kaireon.approval_actions a WHERE a.action = request_approval.action;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown approval action "%"', action
            USING ERRCODE = '22023',
                  HINT = format('Registered actions: %s.', (SELECT string_agg(a.action, ', ' ORDER BY a.action) FROM kaireon.approval_actions a));
    END IF;
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'payload of approval action "%" must be a JSON object', action
            USING ERRCODE = '22023', HINT = 'docs/security.md describes each action''s payload.';
    END IF;
    IF v_action.validate_function IS NOT NULL THEN
        EXECUTE format('SELECT %s($1, $2, $3)',
                       kaireon_internal._resolve_function(v_action.validate_function, '{text,text,jsonb}',
                                                          'validate function', format('approval action "%s"', action))::regproc)
            USING tenant_id, entity_id, payload;
    END IF;
    INSERT INTO kaireon.approval_requests (tenant_id, entity_type, entity_id, action, payload, requester_id, reason)
    VALUES (tenant_id, v_action.entity_type, entity_id, action, payload, v_user, reason)
    RETURNING id INTO v_id;
    FOR v_stage IN SELECT s.value AS stage, s.ordinality AS ord
                     FROM jsonb_array_elements(kaireon_internal._approval_stages(tenant_id, action)) WITH ORDINALITY s LOOP
        INSERT INTO kaireon.approval_request_stages (tenant_id, approval_request_id, stage_name, ordinal, required_role)
        VALUES (tenant_id, v_id, v_stage.stage ->> 'name', v_stage.ord, v_stage.stage ->> 'requiredRole');
    END LOOP;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION kaireon.request_approval(text, text, text, jsonb, text) IS
    'Files a change for four-eyes approval: the registered action (kaireon.approval_actions) with its payload, checked by the action''s validate function. The requester is kaireon.user_id. The request gets the tenant''s approval stages; returns its id.';

-- Lock a request of a tenant and check it is pending.
CREATE FUNCTION kaireon_internal._pending_request(p_tenant_id text, p_request_id text) RETURNS kaireon.approval_requests
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_req       kaireon.approval_requests%ROWTYPE;
BEGIN
    SELECT * INTO v_req FROM kaireon.approval_requests r
     WHERE r.tenant_id = p_tenant_id AND r.id = p_request_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'approval request "%" of tenant "%" does not exist', p_request_id, p_tenant_id
            USING ERRCODE = '42704', HINT = 'Pass the id kaireon.request_approval returned.';
    END IF;
    IF v_req.status <> 'pending' THEN
        RAISE EXCEPTION 'approval request "%" is %, not pending', p_request_id, v_req.status
            USING ERRCODE = '55000', HINT = 'Only a pending request can be approved, rejected or cancelled.';
    END IF;
    RETURN v_req;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._pending_request(text, text) IS
    'Internal: locks a pending approval request of a tenant, or raises 42704 (unknown) or 55000 (not pending).';

-- The stage a decision applies to, checked against the deciding user.
CREATE FUNCTION kaireon_internal._current_stage(p_req kaireon.approval_requests, p_user text)
    RETURNS kaireon.approval_request_stages
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_stage     kaireon.approval_request_stages%ROWTYPE;
BEGIN
    IF p_user = p_req.requester_id THEN
        RAISE EXCEPTION 'user "%" requested approval request "%" and cannot decide it', p_user, p_req.id
            USING ERRCODE = '42501', HINT = 'Four-eyes: another user must approve or reject it; the requester may cancel it.';
    END IF;
    SELECT * INTO v_stage FROM kaireon.approval_request_stages s
     WHERE s.tenant_id = p_req.tenant_id AND s.approval_request_id = p_req.id AND s.status = 'pending'
     ORDER BY s.ordinal LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'approval request "%" has no pending stage', p_req.id
            USING ERRCODE = '55000', HINT = 'Its stages were decided already.';
    END IF;
    IF EXISTS (SELECT 1 FROM kaireon.approval_request_stages s
                WHERE s.tenant_id = p_req.tenant_id AND s.approval_request_id = p_req.id
                  AND s.status = 'approved' AND s.approver_id = p_user) THEN
        RAISE EXCEPTION 'user "%" approved an earlier stage of approval request "%"', p_user, p_req.id
            USING ERRCODE = '42501', HINT = 'Each stage needs a different approver.';
    END IF;
    IF NOT kaireon_internal._user_holds_role(p_req.tenant_id, p_user, v_stage.required_role) THEN
        RAISE EXCEPTION 'user "%" does not hold role "%" required by stage % ("%") of approval request "%"',
            p_user, v_stage.required_role, v_stage.ordinal, v_stage.stage_name, p_req.id
            USING ERRCODE = '42501', HINT = 'Stages are decided in order; this one needs a user with that role.';
    END IF;
    RETURN v_stage;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._current_stage(kaireon.approval_requests, text) IS
    'Internal: the first pending stage of a request, locked, after checking the deciding user is not the requester, did not approve an earlier stage and holds the stage''s role.';

CREATE FUNCTION kaireon.approve_request(tenant_id text, request_id text, comment text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET kaireon.applying_approval = ''
AS $fn$
DECLARE
    v_user      text;
    v_req       kaireon.approval_requests%ROWTYPE;
    v_stage     kaireon.approval_request_stages%ROWTYPE;
    v_apply     text;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    v_user := kaireon_internal._acting_user();
    v_req := kaireon_internal._pending_request(tenant_id, request_id);
    v_stage := kaireon_internal._current_stage(v_req, v_user);
    UPDATE kaireon.approval_request_stages s
       SET status = 'approved', approver_id = v_user, comment = approve_request.comment, decided_at = now()
     WHERE s.tenant_id = v_stage.tenant_id AND s.id = v_stage.id;
    IF EXISTS (SELECT 1 FROM kaireon.approval_request_stages s
                WHERE s.tenant_id = v_req.tenant_id AND s.approval_request_id = v_req.id AND s.status = 'pending') THEN
        RETURN 'pending';
    END IF;

    -- the last stage: apply the change, atomically with the approval
    UPDATE kaireon.approval_requests r SET status = 'approved', approver_id = v_user, decided_at = now()
     WHERE r.tenant_id = v_req.tenant_id AND r.id = v_req.id;
    SELECT a.apply_function INTO v_apply FROM kaireon.approval_actions a WHERE a.action = v_req.action;
    IF v_apply IS NULL THEN
        RAISE EXCEPTION 'approval action "%" of request "%" is no longer registered', v_req.action, v_req.id
            USING ERRCODE = '55000', HINT = 'Reject the request.';
    END IF;
    PERFORM set_config('kaireon.applying_approval', v_req.id, true);
    EXECUTE format('SELECT %s($1, $2, $3)',
                   kaireon_internal._resolve_function(v_apply, '{text,text,jsonb}', 'apply function',
                                                      format('approval action "%s"', v_req.action))::regproc)
        USING v_req.tenant_id, v_req.entity_id, v_req.payload;
    PERFORM set_config('kaireon.applying_approval', '', true);
    UPDATE kaireon.approval_requests r SET status = 'applied', applied_at = now()
     WHERE r.tenant_id = v_req.tenant_id AND r.id = v_req.id;
    RETURN 'applied';
END
$fn$;
COMMENT ON FUNCTION kaireon.approve_request(text, text, text) IS
    'Approves the current stage of a pending request as kaireon.user_id (not the requester, not an earlier stage''s approver, holding the stage''s required_role). After the last stage the change is applied through the action''s apply function in the same transaction. Returns pending or applied.';

CREATE FUNCTION kaireon.reject_request(tenant_id text, request_id text, reason text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user      text;
    v_req       kaireon.approval_requests%ROWTYPE;
    v_stage     kaireon.approval_request_stages%ROWTYPE;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    v_user := kaireon_internal._acting_user();
    v_req := kaireon_internal._pending_request(tenant_id, request_id);
    v_stage := kaireon_internal._current_stage(v_req, v_user);
    UPDATE kaireon.approval_request_stages s
       SET status = 'rejected', approver_id = v_user, comment = reject_request.reason, decided_at = now()
     WHERE s.tenant_id = v_stage.tenant_id AND s.id = v_stage.id;
    UPDATE kaireon.approval_request_stages s SET status = 'skipped'
     WHERE s.tenant_id = v_req.tenant_id AND s.approval_request_id = v_req.id AND s.status = 'pending';
    UPDATE kaireon.approval_requests r
       SET status = 'rejected', approver_id = v_user, reason = coalesce(reject_request.reason, r.reason), decided_at = now()
     WHERE r.tenant_id = v_req.tenant_id AND r.id = v_req.id;
    RETURN 'rejected';
END
$fn$;
COMMENT ON FUNCTION kaireon.reject_request(text, text, text) IS
    'Rejects a pending request at its current stage as kaireon.user_id (same checks as approve_request); the change is never applied.';

CREATE FUNCTION kaireon.cancel_request(tenant_id text, request_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user      text;
    v_req       kaireon.approval_requests%ROWTYPE;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    v_user := kaireon_internal._acting_user();
    v_req := kaireon_internal._pending_request(tenant_id, request_id);
    IF v_user <> v_req.requester_id THEN
        RAISE EXCEPTION 'only the requester "%" may cancel approval request "%"', v_req.requester_id, v_req.id
            USING ERRCODE = '42501', HINT = 'Approvers reject a request with kaireon.reject_request.';
    END IF;
    UPDATE kaireon.approval_request_stages s SET status = 'skipped'
     WHERE s.tenant_id = v_req.tenant_id AND s.approval_request_id = v_req.id AND s.status = 'pending';
    UPDATE kaireon.approval_requests r SET status = 'cancelled', decided_at = now()
     WHERE r.tenant_id = v_req.tenant_id AND r.id = v_req.id;
    RETURN 'cancelled';
END
$fn$;
COMMENT ON FUNCTION kaireon.cancel_request(text, text) IS
    'Cancels a pending request; only its requester (kaireon.user_id) may.';

-- ---------------------------------------------------------------------------------------
-- Action contact_policy.change: create, update, delete, soft-delete or restore a contact
-- policy, optionally replacing its scopes. Payload:
--   {"operation": "create" | "update" | "delete" | "soft_delete" | "restore",
--    "values": {"name": ..., "rule_type": ..., "config": {...}, "priority": ..., ...},
--    "scopes": [{"scope": "global"}, {"scope": "channel", "scopeId": "email"}]}
-- entity_id is the policy id (for create: the new policy's id, or NULL for a generated one).
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon_internal._validate_contact_policy_change(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_op        text := payload ->> 'operation';
    v_values    jsonb := coalesce(payload -> 'values', '{}');
    v_key       text;
    v_rule_type text;
    v_config    jsonb;
    v_scope     jsonb;
BEGIN
    IF v_op IS NULL OR v_op NOT IN ('create', 'update', 'delete', 'soft_delete', 'restore') THEN
        RAISE EXCEPTION 'contact_policy.change payload field "operation" must be one of create, update, delete, soft_delete, restore, not %',
            coalesce(payload -> 'operation', 'null')
            USING ERRCODE = '22023', HINT = 'For example {"operation": "update", "values": {"priority": 5}}.';
    END IF;
    IF jsonb_typeof(v_values) <> 'object' THEN
        RAISE EXCEPTION 'contact_policy.change payload field "values" must be an object'
            USING ERRCODE = '22023', HINT = 'It maps contact_policies columns to their new values.';
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(v_values) LOOP
        IF v_key NOT IN ('name', 'description', 'rule_type', 'config', 'priority', 'scope', 'scope_id', 'status') THEN
            RAISE EXCEPTION 'contact_policy.change cannot set column "%"', v_key
                USING ERRCODE = '22023', HINT = 'Settable: name, description, rule_type, config, priority, scope, scope_id, status.';
        END IF;
    END LOOP;
    IF v_op <> 'create' AND entity_id IS NULL THEN
        RAISE EXCEPTION 'contact_policy.change % needs the policy id as entity_id', v_op
            USING ERRCODE = '22023', HINT = 'Pass entity_id => ''<contact policy id>''.';
    END IF;
    IF v_op <> 'create' AND NOT EXISTS (SELECT 1 FROM kaireon.contact_policies p
                                         WHERE p.tenant_id = _validate_contact_policy_change.tenant_id
                                           AND p.id = entity_id) THEN
        RAISE EXCEPTION 'contact policy "%" of tenant "%" does not exist', entity_id, tenant_id
            USING ERRCODE = '42704', HINT = 'Pass the id of an existing contact policy.';
    END IF;
    IF v_op = 'create' AND (v_values ->> 'name' IS NULL OR v_values ->> 'rule_type' IS NULL) THEN
        RAISE EXCEPTION 'contact_policy.change create needs values "name" and "rule_type"'
            USING ERRCODE = '22023', HINT = 'For example {"name": "Three a day", "rule_type": "frequency_cap", "config": {...}}.';
    END IF;
    IF v_values ? 'config' OR v_values ? 'rule_type' THEN
        SELECT coalesce(v_values ->> 'rule_type', p.rule_type), coalesce(v_values -> 'config', p.config)
          INTO v_rule_type, v_config
          FROM (SELECT NULL) AS one
          LEFT JOIN kaireon.contact_policies p
            ON p.tenant_id = _validate_contact_policy_change.tenant_id AND p.id = entity_id;
        PERFORM kaireon.validate_config('contact_policy', v_rule_type, coalesce(v_config, '{}')::text);
    END IF;
    IF payload ? 'scopes' THEN
        IF jsonb_typeof(payload -> 'scopes') <> 'array' THEN
            RAISE EXCEPTION 'contact_policy.change payload field "scopes" must be an array'
                USING ERRCODE = '22023', HINT = 'For example [{"scope": "channel", "scopeId": "email"}].';
        END IF;
        FOR v_scope IN SELECT * FROM jsonb_array_elements(payload -> 'scopes') LOOP
            IF jsonb_typeof(v_scope -> 'scope') IS DISTINCT FROM 'string' THEN
                RAISE EXCEPTION 'contact_policy.change scope % needs a string field "scope"', v_scope
                    USING ERRCODE = '22023', HINT = 'For example {"scope": "global"}.';
            END IF;
        END LOOP;
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._validate_contact_policy_change(text, text, jsonb) IS
    'Internal: validate function of approval action contact_policy.change (operation, settable columns, the policy exists, config valid for its rule_type, scopes shape).';

CREATE FUNCTION kaireon_internal._apply_contact_policy_change(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_op        text := payload ->> 'operation';
    v_values    jsonb := coalesce(payload -> 'values', '{}');
    v_cols      text;
    v_id        text := entity_id;
    v_count     bigint;
BEGIN
    PERFORM kaireon_internal._validate_contact_policy_change(tenant_id, entity_id, payload);
    SELECT string_agg(quote_ident(k), ', ') INTO v_cols FROM jsonb_object_keys(v_values) AS k;
    CASE v_op
        WHEN 'create' THEN
            v_id := coalesce(v_id, gen_random_uuid()::text);
            EXECUTE format('INSERT INTO kaireon.contact_policies (tenant_id, id, %s) SELECT $1, $2, %s'
                           ' FROM jsonb_populate_record(NULL::kaireon.contact_policies, $3)', v_cols, v_cols)
                USING tenant_id, v_id, v_values;
        WHEN 'update' THEN
            IF v_cols IS NOT NULL THEN
                EXECUTE format('UPDATE kaireon.contact_policies SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::kaireon.contact_policies, $3))'
                               ' WHERE tenant_id = $1 AND id = $2', v_cols, v_cols)
                    USING tenant_id, v_id, v_values;
            END IF;
        WHEN 'delete' THEN
            DELETE FROM kaireon.contact_policies p WHERE p.tenant_id = _apply_contact_policy_change.tenant_id AND p.id = v_id;
        WHEN 'soft_delete' THEN
            UPDATE kaireon.contact_policies p SET deleted_at = now()
             WHERE p.tenant_id = _apply_contact_policy_change.tenant_id AND p.id = v_id AND p.deleted_at IS NULL;
        WHEN 'restore' THEN
            UPDATE kaireon.contact_policies p SET deleted_at = NULL
             WHERE p.tenant_id = _apply_contact_policy_change.tenant_id AND p.id = v_id AND p.deleted_at IS NOT NULL;
    END CASE;
    IF v_op IN ('create', 'update') AND payload ? 'scopes' THEN
        DELETE FROM kaireon.contact_policy_scopes s
         WHERE s.tenant_id = _apply_contact_policy_change.tenant_id AND s.contact_policy_id = v_id;
        INSERT INTO kaireon.contact_policy_scopes (tenant_id, contact_policy_id, scope, scope_id)
        SELECT _apply_contact_policy_change.tenant_id, v_id, e ->> 'scope', e ->> 'scopeId'
          FROM jsonb_array_elements(payload -> 'scopes') AS e;
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._apply_contact_policy_change(text, text, jsonb) IS
    'Internal: apply function of approval action contact_policy.change; runs inside kaireon.approve_request.';

-- ---------------------------------------------------------------------------------------
-- Action four_eyes.settings_change: while four-eyes is on, turning it off or changing the
-- approval stages needs approval too. Payload: {"four_eyes_enabled": false} and/or
-- {"approval_stages": {...}} (the new settings -> 'approvalStages'; null removes it).
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon_internal._validate_four_eyes_settings(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT (payload ? 'four_eyes_enabled' OR payload ? 'approval_stages')
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(payload) k WHERE k NOT IN ('four_eyes_enabled', 'approval_stages')) THEN
        RAISE EXCEPTION 'four_eyes.settings_change payload must hold "four_eyes_enabled" and/or "approval_stages" and nothing else'
            USING ERRCODE = '22023', HINT = 'For example {"four_eyes_enabled": false}.';
    END IF;
    IF payload ? 'four_eyes_enabled' AND jsonb_typeof(payload -> 'four_eyes_enabled') <> 'boolean' THEN
        RAISE EXCEPTION 'four_eyes.settings_change field "four_eyes_enabled" must be a boolean'
            USING ERRCODE = '22023', HINT = 'For example {"four_eyes_enabled": false}.';
    END IF;
    IF payload ? 'approval_stages' AND jsonb_typeof(payload -> 'approval_stages') NOT IN ('object', 'null') THEN
        RAISE EXCEPTION 'four_eyes.settings_change field "approval_stages" must be an object or null'
            USING ERRCODE = '22023', HINT = 'It maps an action (or "default") to its stages.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._validate_four_eyes_settings(text, text, jsonb) IS
    'Internal: validate function of approval action four_eyes.settings_change.';

CREATE FUNCTION kaireon_internal._apply_four_eyes_settings(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon_internal._validate_four_eyes_settings(tenant_id, entity_id, payload);
    UPDATE kaireon.tenant_settings s
       SET four_eyes_enabled = CASE WHEN payload ? 'four_eyes_enabled' THEN (payload ->> 'four_eyes_enabled')::boolean
                                    ELSE s.four_eyes_enabled END,
           settings = CASE WHEN NOT payload ? 'approval_stages' THEN s.settings
                           WHEN jsonb_typeof(payload -> 'approval_stages') = 'null' THEN s.settings - 'approvalStages'
                           ELSE jsonb_set(s.settings, '{approvalStages}', payload -> 'approval_stages') END
     WHERE s.tenant_id = _apply_four_eyes_settings.tenant_id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._apply_four_eyes_settings(text, text, jsonb) IS
    'Internal: apply function of approval action four_eyes.settings_change.';

INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description) VALUES
    ('contact_policy.change', 'contact_policies',
     'kaireon_internal._apply_contact_policy_change(text,text,jsonb)', 'kaireon_internal._validate_contact_policy_change(text,text,jsonb)',
     'Create, update, delete, soft-delete or restore a contact policy and replace its scopes.'),
    ('four_eyes.settings_change', 'tenant_settings',
     'kaireon_internal._apply_four_eyes_settings(text,text,jsonb)', 'kaireon_internal._validate_four_eyes_settings(text,text,jsonb)',
     'Turn four-eyes off or change the approval stages of a tenant where it is on.');

-- Registered here with a filter that dumps nothing: the rows come with CREATE EXTENSION.
SELECT pg_catalog.pg_extension_config_dump('kaireon.approval_actions', 'WHERE false');

-- The governed tables.
CREATE TRIGGER four_eyes_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.contact_policies
    FOR EACH ROW EXECUTE FUNCTION kaireon.four_eyes_guard('contact_policy.change');
CREATE TRIGGER four_eyes_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.contact_policy_scopes
    FOR EACH ROW EXECUTE FUNCTION kaireon.four_eyes_guard('contact_policy.change');
CREATE TRIGGER four_eyes_guard BEFORE UPDATE OR DELETE ON kaireon.tenant_settings
    FOR EACH ROW EXECUTE FUNCTION kaireon.four_eyes_guard('four_eyes.settings_change');

-- ---------------------------------------------------------------------------------------
-- Governed actions
-- ---------------------------------------------------------------------------------------

-- Governed actions: the four-eyes actions of decisioning (docs/security.md,
-- "Four-eyes governance"): publishing a decision flow and promoting a model. With four-eyes
-- on, kaireon.publish_decision_flow and kaireon.transition_model(..., 'champion') file these
-- requests; the last approval applies them through the functions below, which check that
-- what was approved is still what would be applied. The guards below refuse the same
-- changes made by writing the tables directly.

-- With four-eyes on (and no approval being applied, outside a restore), the published side
-- of a decision flow changes only through an approved decision_flow.publish: drafts stay free.
CREATE FUNCTION kaireon_internal._flow_publish_guard() RETURNS trigger
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
COMMENT ON FUNCTION kaireon_internal._flow_publish_guard() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on decision_flows: with four-eyes on, published versions, the published version and the published status change only through an approved decision_flow.publish request (42501).';
CREATE TRIGGER flow_publish_guard BEFORE INSERT OR UPDATE ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._flow_publish_guard();

-- With four-eyes on, a champion is made only by an approved model.promote (the UPDATE path is
-- checked by _registry_check): not created as one, nor deleted.
CREATE FUNCTION kaireon_internal._champion_guard() RETURNS trigger
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
COMMENT ON FUNCTION kaireon_internal._champion_guard() IS
    'Internal: BEFORE INSERT OR DELETE trigger on algorithm_models: with four-eyes on, a champion is neither created directly nor deleted (42501).';
CREATE TRIGGER champion_guard BEFORE INSERT OR DELETE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._champion_guard();

CREATE FUNCTION kaireon_internal._validate_flow_publish(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon_internal._validate_flow_publish(text, text, jsonb) IS
    'Internal: checks a decision_flow.publish request (the flow exists; the payload holds its key and draft).';

CREATE FUNCTION kaireon_internal._apply_flow_publish(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon_internal._apply_flow_publish(text, text, jsonb) IS
    'Internal: applies an approved decision_flow.publish request: publishes the flow''s draft, which must be the one approved.';

CREATE FUNCTION kaireon_internal._validate_model_promotion(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon_internal._validate_model_promotion(text, text, jsonb) IS
    'Internal: checks a model.promote request (the model exists and may become champion).';

CREATE FUNCTION kaireon_internal._apply_model_promotion(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon_internal._apply_model_promotion(text, text, jsonb) IS
    'Internal: applies an approved model.promote request: promotes the model (whose version must be the one approved) to champion and records the approval in model_approvals.';

INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description) VALUES
    ('decision_flow.publish', 'decision_flows',
     'kaireon_internal._apply_flow_publish(text,text,jsonb)', 'kaireon_internal._validate_flow_publish(text,text,jsonb)',
     'Publish the draft of a decision flow (as it was when requested) as a new immutable version.'),
    ('model.promote', 'algorithm_models',
     'kaireon_internal._apply_model_promotion(text,text,jsonb)', 'kaireon_internal._validate_model_promotion(text,text,jsonb)',
     'Promote a version of a model to champion of its registry family (the old champion is archived).');
