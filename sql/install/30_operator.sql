-- kaireon install script, part 30: operator and infrastructure tables (users and their
-- logins, API keys, OAuth clients, tenant settings, outbox, channel deliveries, alerts,
-- batch runs, triggers, simulations, attribution, geofences, regions) and journeys.
-- Conventions are in docs/schema.md; 99_finalize.sql adds the updated_at triggers, the
-- tenant row level security, the soft-delete indexes and the pg_dump registration.
-- Users and their logins are tenant tables (tenant_id first, row level security from
-- 99_finalize.sql); platform administrators, who belong to no tenant, are kaireon.platform_users,
-- and verification tokens are tenant-less: both get their row level security here.

-------------------------------------------------------------------------------
-- Operator accounts: the users of a tenant, and the platform administrators apart
-------------------------------------------------------------------------------

CREATE TABLE kaireon.users (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text,
    email                   text NOT NULL,
    email_verified          timestamptz,
    image                   text,
    password_hash           text,
    role                    text NOT NULL DEFAULT 'viewer'
                            CHECK (role IN ('admin', 'editor', 'viewer', 'analyst', 'approver')),
    mfa_secret              text,
    mfa_enabled             boolean NOT NULL DEFAULT false,
    mfa_backup_codes        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(mfa_backup_codes) = 'array'),
    locked_until            timestamptz,
    failed_login_attempts   integer NOT NULL DEFAULT 0 CHECK (failed_login_attempts >= 0),
    onboarding_progress     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(onboarding_progress) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_email_key ON kaireon.users (tenant_id, lower(email));
COMMENT ON TABLE kaireon.users IS
    'User: NextAuth v5 operator account of a tenant. Email is unique within the tenant case-insensitively (the same address may sign up in several tenants); password_hash holds only a hash; MFA secret and backup codes for TOTP. Platform administrators, who belong to no tenant, are kaireon.platform_users.';

-- The platform administrators: the account columns of users without a tenant. They sign in
-- with password and TOTP, so they have no accounts, sessions or WebAuthn rows
-- (docs/schema.md, "Users and platform users"). Row level security with no policy, below.
CREATE TABLE kaireon.platform_users (
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text,
    email                   text NOT NULL,
    email_verified          timestamptz,
    image                   text,
    password_hash           text,
    role                    text NOT NULL DEFAULT 'viewer'
                            CHECK (role IN ('admin', 'editor', 'viewer', 'analyst', 'approver')),
    mfa_secret              text,
    mfa_enabled             boolean NOT NULL DEFAULT false,
    mfa_backup_codes        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(mfa_backup_codes) = 'array'),
    locked_until            timestamptz,
    failed_login_attempts   integer NOT NULL DEFAULT 0 CHECK (failed_login_attempts >= 0),
    onboarding_progress     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(onboarding_progress) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX platform_users_email_key ON kaireon.platform_users (lower(email));
COMMENT ON TABLE kaireon.platform_users IS
    'kaireon''s own table: the platform administrators, operator accounts that belong to no tenant (the columns of kaireon.users without tenant_id). Email is unique case-insensitively; password_hash holds only a hash; MFA secret and backup codes for TOTP. They sign in with password and TOTP: no accounts, sessions or WebAuthn credentials. Audited in the chain without a tenant; visible only to superusers and BYPASSRLS roles.';

CREATE TABLE kaireon.accounts (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    user_id                 text NOT NULL,
    type                    text NOT NULL,
    provider                text NOT NULL,
    provider_account_id     text NOT NULL,
    refresh_token           text,
    access_token            text,
    expires_at              bigint,
    token_type              text,
    scope                   text,
    id_token                text,
    session_state           text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, provider, provider_account_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX accounts_user_id_idx ON kaireon.accounts (tenant_id, user_id);
COMMENT ON TABLE kaireon.accounts IS
    'Account: NextAuth OAuth account linked to a user of the tenant (provider, provider account id, OAuth tokens); a provider account is linked at most once per tenant.';

CREATE TABLE kaireon.sessions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    session_token           text NOT NULL,
    user_id                 text NOT NULL,
    expires                 timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, session_token),
    FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_id_idx ON kaireon.sessions (tenant_id, user_id);
COMMENT ON TABLE kaireon.sessions IS
    'Session: NextAuth database session of a user of the tenant, found by (tenant_id, session_token) until expires.';

CREATE TABLE kaireon.verification_tokens (
    identifier              text NOT NULL,
    token                   text NOT NULL,
    expires                 timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (identifier, token)
);
COMMENT ON TABLE kaireon.verification_tokens IS
    'VerificationToken: NextAuth one-time token (email sign-in, verification) for an identifier until expires. Cross-tenant; visible only to superusers and BYPASSRLS roles.';

-------------------------------------------------------------------------------
-- Programmatic access
-------------------------------------------------------------------------------

CREATE TABLE kaireon.api_keys (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    prefix                  text NOT NULL CHECK (prefix LIKE 'krn\_%'),
    hashed_key              text NOT NULL,
    scopes                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scopes) = 'array'),
    created_by              text,
    expires_at              timestamptz,
    last_used_at            timestamptz,
    revoked_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, hashed_key)
);
COMMENT ON TABLE kaireon.api_keys IS
    'ApiKey: long-lived API key of a tenant. The raw key starts with krn_ and is shown once; only its hash is stored, prefix holds the first 12 characters for display.';

CREATE TABLE kaireon.oauth_clients (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    client_id               text NOT NULL CHECK (client_id LIKE 'kci\_%'),
    hashed_secret           text NOT NULL,
    scopes                  jsonb NOT NULL DEFAULT '[]'
                            CHECK (jsonb_typeof(scopes) = 'array' AND scopes <@ '["read", "write", "admin"]'),
    revoked_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, client_id)
);
COMMENT ON TABLE kaireon.oauth_clients IS
    'OAuthClient: OAuth client-credentials client of a tenant. client_id starts with kci_; only the secret''s hash is stored; scopes are among read, write, admin.';

-------------------------------------------------------------------------------
-- Settings
-------------------------------------------------------------------------------

CREATE TABLE kaireon.tenant_settings (
    tenant_id                       text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                              text NOT NULL DEFAULT gen_random_uuid()::text,
    ml_worker_config                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ml_worker_config) = 'object'),
    ai_analyzer_settings            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ai_analyzer_settings) = 'object'),
    flow_ir_enabled                 boolean NOT NULL DEFAULT false,
    four_eyes_enabled               boolean NOT NULL DEFAULT false,
    decision_trace_sample_rate      double precision NOT NULL DEFAULT 0.1
                                    CHECK (decision_trace_sample_rate BETWEEN 0 AND 1),
    realtime_arbitration_enabled    boolean NOT NULL DEFAULT false,
    settings                        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at                      timestamptz NOT NULL DEFAULT now(),
    updated_at                      timestamptz NOT NULL DEFAULT now(),
    -- the tenant's universal control group (docs/lift.md); checked by a trigger (22023)
    control_group_percent           double precision NOT NULL DEFAULT 0
                                    CHECK (control_group_percent BETWEEN 0 AND 100),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id)
);
COMMENT ON TABLE kaireon.tenant_settings IS
    'TenantSettings: per-tenant operational toggles, one row per tenant (ML worker config, AI analyzer settings, flow IR, four-eyes approval, decision trace sampling, realtime arbitration, the universal control group''s percentage: docs/lift.md).';

CREATE TABLE kaireon.platform_settings (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    category                text NOT NULL,
    key                     text NOT NULL,
    value                   text,
    encrypted               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, category, key)
);
COMMENT ON TABLE kaireon.platform_settings IS
    'PlatformSetting: per-tenant key-value configuration grouped by category; value holds ciphertext when encrypted.';

-------------------------------------------------------------------------------
-- Eventing and delivery
-------------------------------------------------------------------------------

-- The order events were written in: the publisher sends them in seq order.
CREATE SEQUENCE kaireon.outbox_event_seq;
COMMENT ON SEQUENCE kaireon.outbox_event_seq IS
    'Source of outbox_events.seq, the order in which events are published.';
SELECT pg_catalog.pg_extension_config_dump('kaireon.outbox_event_seq', '');

CREATE TABLE kaireon.outbox_events (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    seq                     bigint NOT NULL DEFAULT nextval('kaireon.outbox_event_seq'),
    topic                   text NOT NULL,
    payload                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'published', 'failed', 'dead')),
    retry_count             integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    max_retries             integer NOT NULL DEFAULT 5 CHECK (max_retries >= 0),
    last_error              text,
    next_attempt_at         timestamptz NOT NULL DEFAULT now(),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX outbox_events_status_next_attempt_at_idx ON kaireon.outbox_events (status, next_attempt_at);
-- the publisher's queue: events still to send, in order
CREATE INDEX outbox_events_due_idx ON kaireon.outbox_events (seq) WHERE status IN ('pending', 'failed');
CREATE INDEX outbox_events_tenant_id_status_idx ON kaireon.outbox_events (tenant_id, status);
COMMENT ON TABLE kaireon.outbox_events IS
    'OutboxEvent: transactional outbox. Events written in the business transaction are published in seq order by kaireon.publish_outbox (NOTIFY kaireon_events, and the topic''s handler in outbox_handlers); failed ones are retried at next_attempt_at with exponential backoff up to max_retries, then marked dead and copied to dead_letter_events (docs/workers.md).';

CREATE TABLE kaireon.dead_letter_events (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    original_event_id       text,
    topic                   text NOT NULL,
    payload                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    failed_at               timestamptz NOT NULL DEFAULT now(),
    error_message           text,
    retry_count             integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    replayed_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX dead_letter_events_tenant_id_original_event_id_idx
    ON kaireon.dead_letter_events (tenant_id, original_event_id);
COMMENT ON TABLE kaireon.dead_letter_events IS
    'DeadLetterEvent: event that exhausted its retries, kept with its error for inspection and replay (replayed_at).';

CREATE TABLE kaireon.channel_deliveries (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    interaction_id          text,
    channel_type            text NOT NULL,
    provider_name           text,
    provider_message_id     text,
    idempotency_key         text,
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'sent', 'delivered', 'bounced', 'failed', 'opened', 'clicked')),
    attempts                integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    status_at               timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX channel_deliveries_tenant_id_interaction_id_idx
    ON kaireon.channel_deliveries (tenant_id, interaction_id);
CREATE INDEX channel_deliveries_tenant_id_provider_message_id_idx
    ON kaireon.channel_deliveries (tenant_id, provider_message_id);
COMMENT ON TABLE kaireon.channel_deliveries IS
    'ChannelDelivery: one send of an interaction through a channel provider, tracked from pending to delivered, opened, clicked, bounced or failed; idempotency_key prevents duplicate sends.';

CREATE TABLE kaireon.export_checkpoints (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    export_type             text NOT NULL,
    last_export_at          timestamptz,
    file_path               text,
    status                  text NOT NULL DEFAULT 'idle'
                            CHECK (status IN ('idle', 'running', 'completed', 'failed')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, export_type)
);
COMMENT ON TABLE kaireon.export_checkpoints IS
    'ExportCheckpoint: high-water mark of an incremental export per tenant and export type (last export time, file written, status).';

CREATE TABLE kaireon.alert_rules (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    metric                  text NOT NULL,
    operator                text NOT NULL
                            CHECK (operator IN ('gt', 'gte', 'lt', 'lte', 'eq', 'neq')),
    threshold               double precision NOT NULL,
    window_minutes          integer NOT NULL DEFAULT 5 CHECK (window_minutes > 0),
    cooldown_minutes        integer NOT NULL DEFAULT 60 CHECK (cooldown_minutes >= 0),
    channels                jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(channels) = 'array'),
    last_fired_at           timestamptz,
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'paused', 'disabled')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    last_evaluated_at       timestamptz,
    last_value              double precision,
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.alert_rules IS
    'AlertRule: fires to its channels when metric compared with threshold over window_minutes holds, at most once per cooldown_minutes.';

-------------------------------------------------------------------------------
-- Batch campaigns, triggers, simulation, attribution, location, regions
-------------------------------------------------------------------------------

CREATE TABLE kaireon.runs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    decision_flow_id        text,
    segment_id              text,
    schedule_type           text NOT NULL DEFAULT 'manual'
                            CHECK (schedule_type IN ('once', 'recurring', 'cron', 'manual')),
    cron_expression         text,
    volume_constraints      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(volume_constraints) = 'object'),
    file_config             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(file_config) = 'object'),
    channel_ids             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(channel_ids) = 'array'),
    customer_query          text,
    max_offers              integer NOT NULL DEFAULT 1 CHECK (max_offers BETWEEN 1 AND 50),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'active', 'paused', 'completed', 'archived')),
    last_run_at             timestamptz,
    next_run_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, decision_flow_id) REFERENCES kaireon.decision_flows (tenant_id, id)
        ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, segment_id) REFERENCES kaireon.segments (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX runs_tenant_id_decision_flow_id_idx ON kaireon.runs (tenant_id, decision_flow_id);
CREATE INDEX runs_tenant_id_segment_id_idx ON kaireon.runs (tenant_id, segment_id);
COMMENT ON TABLE kaireon.runs IS
    'Run: scheduled batch campaign configuration: decision flow (blueprint) applied to a segment on a schedule, with volume constraints, output file config, channels and up to max_offers offers per customer.';

CREATE TABLE kaireon.campaign_runs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    campaign_id             text NOT NULL,
    run_number              integer NOT NULL CHECK (run_number >= 1),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    is_simulation           boolean NOT NULL DEFAULT false,
    total_customers         bigint NOT NULL DEFAULT 0 CHECK (total_customers >= 0),
    processed               bigint NOT NULL DEFAULT 0 CHECK (processed >= 0),
    recommended             bigint NOT NULL DEFAULT 0 CHECK (recommended >= 0),
    summary                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(summary) = 'object'),
    primal_value            double precision,
    dual_bound              double precision,
    duality_gap             double precision,
    iterations              integer NOT NULL DEFAULT 0 CHECK (iterations >= 0),
    started_at              timestamptz,
    completed_at            timestamptz,
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, campaign_id, run_number),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES kaireon.runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.campaign_runs IS
    'CampaignRun: one execution of a batch campaign (run): progress counters, summary, and for optimised allocation the primal value, dual bound, duality gap and iterations.';

CREATE TABLE kaireon.trigger_rules (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    event_type              text NOT NULL,
    condition               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(condition) = 'object'),
    action_type             text NOT NULL
                            CHECK (action_type IN ('recommend', 'notify', 'enroll_journey', 'webhook', 'update_attribute')),
    action_config           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(action_config) = 'object'),
    priority                integer NOT NULL DEFAULT 0,
    cooldown_ms             bigint NOT NULL DEFAULT 0 CHECK (cooldown_ms >= 0),
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'paused')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX trigger_rules_tenant_id_event_type_idx ON kaireon.trigger_rules (tenant_id, event_type);
COMMENT ON TABLE kaireon.trigger_rules IS
    'TriggerRule: real-time event trigger: when an event of event_type matches condition, run the action (recommend, notify, enroll in a journey, webhook, update an attribute), at most once per cooldown_ms. Soft-deleted.';

-- Append-only: one row per firing of a trigger rule (src/decision/triggers.c); the rule's
-- cooldown per customer is read from the firings of the rule and customer (docs/triggers.md).
CREATE TABLE kaireon.trigger_rule_firings (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    trigger_rule_id         text NOT NULL,
    customer_id             text NOT NULL,
    event_type              text NOT NULL,
    fired_at                timestamptz NOT NULL,
    event                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(event) = 'object'),
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, trigger_rule_id) REFERENCES kaireon.trigger_rules (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX trigger_rule_firings_rule_customer_idx
    ON kaireon.trigger_rule_firings (tenant_id, trigger_rule_id, customer_id, fired_at);
COMMENT ON TABLE kaireon.trigger_rule_firings IS
    'TriggerRuleFiring: one firing of a trigger rule for a customer: the event that fired it (type, time, the event''s fields) and what its action did. Append-only; the cooldown_ms of the rule is measured from these rows.';

CREATE TABLE kaireon.simulation_runs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text,
    segment_id              text,
    decision_flow_key       text,
    sample_size             integer NOT NULL DEFAULT 1000 CHECK (sample_size > 0),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    results                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(results) = 'object'),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    started_at              timestamptz,
    completed_at            timestamptz,
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, segment_id) REFERENCES kaireon.segments (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX simulation_runs_tenant_id_segment_id_idx ON kaireon.simulation_runs (tenant_id, segment_id);
COMMENT ON TABLE kaireon.simulation_runs IS
    'SimulationRun: what-if run of a decision flow (by key) over a sample of a segment, with its configuration and aggregated results.';

-- Written by kaireon.attribute_conversions (87_lift.sql), which replaces a window's rows.
CREATE TABLE kaireon.attribution_results (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    conversion_id           text NOT NULL,
    model                   text NOT NULL
                            CHECK (model IN ('first_touch', 'last_touch', 'linear', 'time_decay', 'position_based', 'data_driven')),
    touchpoints             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(touchpoints) = 'array'),
    total_value             numeric NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX attribution_results_tenant_id_customer_id_idx
    ON kaireon.attribution_results (tenant_id, customer_id);
CREATE INDEX attribution_results_tenant_id_conversion_id_idx
    ON kaireon.attribution_results (tenant_id, conversion_id);
COMMENT ON TABLE kaireon.attribution_results IS
    'AttributionResult: credit of one conversion (conversion_id: the outcome''s interaction_history id) of a customer spread over its touchpoints (the earlier recommendations, each with weight and credit) by an attribution model; written by kaireon.attribute_conversions, which replaces a window''s rows. See docs/lift.md.';

CREATE TABLE kaireon.geofences (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    latitude                double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude               double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    radius_meters           double precision NOT NULL CHECK (radius_meters > 0),
    trigger_on              text NOT NULL DEFAULT 'enter'
                            CHECK (trigger_on IN ('enter', 'exit', 'dwell')),
    action                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(action) = 'object'),
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'paused')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.geofences IS
    'Geofence: circular area (centre, radius in metres) whose enter, exit or dwell events run an action.';
-- Great-circle geometry of geofences (docs/triggers.md): a sphere of the Earth's mean radius.
CREATE FUNCTION kaireon_internal._haversine_m(lat1 double precision, lon1 double precision,
                                              lat2 double precision, lon2 double precision)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT 2 * 6371008.8 * asin(least(1.0, sqrt(sin(radians(lat2 - lat1) / 2) ^ 2
               + cos(radians(lat1)) * cos(radians(lat2)) * sin(radians(lon2 - lon1) / 2) ^ 2)))
$fn$;
COMMENT ON FUNCTION kaireon_internal._haversine_m(double precision, double precision, double precision, double precision) IS
    'Internal: great-circle distance in metres between two points given in degrees (haversine formula, mean Earth radius 6371008.8 m).';

CREATE FUNCTION kaireon_internal._geofence_box(latitude double precision, longitude double precision,
                                               radius_meters double precision)
    RETURNS box
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    -- x = longitude, y = latitude, in degrees; a little wider than the circle (rounding).
    -- A fence reaching a pole or across the antimeridian spans every longitude.
    SELECT CASE
        WHEN d >= pi() / 2 OR abs(latitude) + degrees(d) >= 90
            THEN box(point(-180, greatest(-90, latitude - degrees(d) * 1.000001 - 1e-9)),
                     point(180, least(90, latitude + degrees(d) * 1.000001 + 1e-9)))
        ELSE (SELECT CASE
                  WHEN longitude - dlon < -180 OR longitude + dlon > 180
                      THEN box(point(-180, latitude - degrees(d) * 1.000001 - 1e-9),
                               point(180, latitude + degrees(d) * 1.000001 + 1e-9))
                  ELSE box(point(longitude - dlon, latitude - degrees(d) * 1.000001 - 1e-9),
                           point(longitude + dlon, latitude + degrees(d) * 1.000001 + 1e-9))
              END
                FROM (SELECT degrees(asin(least(1.0, sin(d) / cos(radians(latitude))))) * 1.000001 + 1e-9 AS dlon) l)
    END
      FROM (SELECT radius_meters / 6371008.8 AS d) a
$fn$;
COMMENT ON FUNCTION kaireon_internal._geofence_box(double precision, double precision, double precision) IS
    'Internal: the bounding box (x longitude, y latitude, degrees) of a geofence''s circle, for the GiST index geofences_box_idx: candidates of kaireon.location_event are the fences whose box holds the point, then tested by exact distance. A circle reaching a pole or crossing the antimeridian gets every longitude.';

-- Candidate fences of a location by bounding box (kaireon.location_event, docs/triggers.md).
CREATE INDEX geofences_box_idx ON kaireon.geofences
    USING gist (kaireon_internal._geofence_box(latitude, longitude, radius_meters));

-- One row per customer inside a fence: written and removed by kaireon.location_event.
CREATE TABLE kaireon.geofence_presences (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    customer_id             text NOT NULL,
    geofence_id             text NOT NULL,
    entered_at              timestamptz NOT NULL,
    last_seen_at            timestamptz NOT NULL,
    dwell_fired_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id, geofence_id),
    FOREIGN KEY (tenant_id, geofence_id) REFERENCES kaireon.geofences (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX geofence_presences_tenant_id_geofence_id_idx ON kaireon.geofence_presences (tenant_id, geofence_id);
COMMENT ON TABLE kaireon.geofence_presences IS
    'GeofencePresence: a customer last known inside a geofence: when the customer entered, was last seen there, and when the fence''s dwell action fired (NULL: not yet). kaireon.location_event writes it on enter and removes it on exit.';

-- One row per tenant: the tenant is the key, there is no id column.
CREATE TABLE kaireon.tenant_regions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    region                  text NOT NULL,
    is_primary              boolean NOT NULL DEFAULT true,
    failover_region         text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id)
);
COMMENT ON TABLE kaireon.tenant_regions IS
    'TenantRegion: region a tenant''s data lives in, whether that is its primary region, and the region to fail over to.';

-------------------------------------------------------------------------------
-- Journeys
-------------------------------------------------------------------------------

CREATE TABLE kaireon.journeys (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    description             text,
    definition              jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(definition) = 'object'),
    entry_condition         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(entry_condition) = 'object'),
    max_duration_days       integer CHECK (max_duration_days > 0),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    published_version       integer CHECK (published_version >= 1),
    published_versions      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(published_versions) = 'array'),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.journeys IS
    'Journey: multi-step customer journey: definition (JourneyDefinition JSON of steps and transitions), entry condition, and a maximum duration in days (NULL: unbounded).';

-- Re-entry is allowed: (tenant_id, journey_id, customer_id) is indexed, not unique.
CREATE TABLE kaireon.journey_enrollments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    journey_id              text NOT NULL,
    customer_id             text NOT NULL,
    current_step_id         text,
    journey_version         integer CHECK (journey_version >= 1),
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'completed', 'exited')),
    entered_at              timestamptz NOT NULL DEFAULT now(),
    last_step_at            timestamptz,
    wait_until              timestamptz,
    history                 jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(history) = 'array'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES kaireon.journeys (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_enrollments_tenant_id_journey_id_customer_id_idx
    ON kaireon.journey_enrollments (tenant_id, journey_id, customer_id);
-- At most one active enrolment of a customer in a journey (a customer may re-enter later).
CREATE UNIQUE INDEX journey_enrollments_one_active_idx
    ON kaireon.journey_enrollments (tenant_id, journey_id, customer_id) WHERE status = 'active';
COMMENT ON TABLE kaireon.journey_enrollments IS
    'JourneyEnrollment: one pass of a customer through a journey: current step, status, step history, and wait_until while the journey waits. A customer may re-enter.';

-------------------------------------------------------------------------------
-- Row level security of the tenant-less tables: platform users and verification tokens
-- have no policy, so only superusers and BYPASSRLS roles see them. (users, accounts and
-- sessions get the plain tenant_isolation policy from 99_finalize.sql.)
-------------------------------------------------------------------------------

ALTER TABLE kaireon.platform_users ENABLE ROW LEVEL SECURITY;
-- No policy: only superusers and BYPASSRLS roles see verification tokens.
ALTER TABLE kaireon.verification_tokens ENABLE ROW LEVEL SECURITY;
