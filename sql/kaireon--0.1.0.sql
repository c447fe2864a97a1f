-- kaireon install script, part 00: C entry points used by the schema, and the tenant root.
-- The install script is assembled from sql/install/*.sql in file-name order (see Makefile).
-- Conventions every table follows are in docs/schema.md ("Conventions"); 99_finalize.sql
-- applies the uniform parts (updated_at trigger, row level security, soft-delete index,
-- pg_dump registration) to every table from the catalog.

\echo Use "CREATE EXTENSION kaireon" to load this file. \quit

CREATE FUNCTION kaireon.version() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.version() IS
    'Version of the loaded kaireon C module.';

CREATE FUNCTION kaireon.current_tenant_id() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_current_tenant_id'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.current_tenant_id() IS
    'Tenant the session acts for: kaireon.pinned_tenant_id when set, else kaireon.tenant_id, else NULL. Row level security compares tenant_id with it.';

CREATE FUNCTION kaireon.assert_tenant_access(tenant_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_assert_tenant_access'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.assert_tenant_access(text) IS
    'Raises 42501 unless the calling role (superuser, BYPASSRLS, or a session whose current tenant is tenant_id) may act for tenant_id. Used by SECURITY DEFINER functions.';

CREATE FUNCTION kaireon.touch_updated_at() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_touch_updated_at'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.touch_updated_at() IS
    'BEFORE UPDATE row trigger keeping updated_at at the transaction time.';

CREATE FUNCTION kaireon.validate_config_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_config_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.validate_config_trigger() IS
    'BEFORE INSERT OR UPDATE row trigger (kind, type_column, config_column) validating a JSON configuration column; raises 22023 naming the bad field.';

CREATE FUNCTION kaireon.validate_config(kind text, rule_type text DEFAULT NULL, config text DEFAULT '{}')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_validate_config_sql'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.validate_config(text, text, text) IS
    'Validates a configuration document (kind qualification_rule, contact_policy or guardrail) given as JSON text: true, or 22023 naming the bad field or the JSON syntax error.';

-- The tenant root. Every tenant-scoped table references it with ON DELETE CASCADE.
CREATE TABLE kaireon.tenants (
    id                      text NOT NULL DEFAULT gen_random_uuid()::text PRIMARY KEY
                            CHECK (length(id) BETWEEN 1 AND 200),
    name                    text NOT NULL,
    slug                    text NOT NULL UNIQUE
                            CHECK (slug ~ '^[a-z][a-z0-9_]{0,39}$'),
    settings                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    ai_analyzer_settings    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ai_analyzer_settings) = 'object'),
    is_playground           boolean NOT NULL DEFAULT false,
    -- the decision trace sample rate, when set, is a number from 0 to 1
    CONSTRAINT tenants_trace_sample_rate_check CHECK (
        CASE WHEN settings ? 'decisionTraceSampleRate'
             THEN CASE WHEN jsonb_typeof(settings -> 'decisionTraceSampleRate') = 'number'
                       THEN (settings ->> 'decisionTraceSampleRate')::float8 BETWEEN 0 AND 1
                       ELSE false END
             ELSE true END),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.tenants IS
    'Tenant: multi-tenant root; per-tenant feature flags in settings. slug names the tenant''s customer data schema kaireon_t_<slug>.';
-- A tenant-limited role sees only its own tenant row.
ALTER TABLE kaireon.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.tenants
    USING (id = kaireon.current_tenant_id()) WITH CHECK (id = kaireon.current_tenant_id());
-- kaireon install script, part 10: the decisioning core (offer catalog, rules, policies,
-- flows, arbitration settings, suppressions and caps). See docs/schema.md.

CREATE TABLE kaireon.categories (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    custom_fields           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    ordinal                 integer NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX categories_tenant_name_key ON kaireon.categories (tenant_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.categories IS
    'Category: top-level offer grouping (e.g. Cards, Loans); computed-field formulas live in custom_fields. Soft-deleted.';

CREATE TABLE kaireon.sub_categories (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    category_id             text NOT NULL,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    custom_fields           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    ordinal                 integer NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES kaireon.categories (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.sub_categories (tenant_id, category_id);
CREATE UNIQUE INDEX sub_categories_tenant_category_name_key
    ON kaireon.sub_categories (tenant_id, category_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.sub_categories IS
    'SubCategory: child grouping below a category (e.g. Travel under Cards). Soft-deleted.';

CREATE TABLE kaireon.channels (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    channel_type            text NOT NULL
                            CHECK (channel_type IN ('email', 'sms', 'push', 'web', 'mobile_app', 'in_app',
                                                    'whatsapp', 'call_center', 'direct_mail', 'social',
                                                    'kiosk', 'api', 'other')),
    delivery_mode           text NOT NULL DEFAULT 'realtime'
                            CHECK (delivery_mode IN ('realtime', 'batch', 'triggered')),
    impression_mode         text NOT NULL DEFAULT 'explicit'
                            CHECK (impression_mode IN ('implicit', 'explicit')),
    consent_purpose         text,
    provider_config         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(provider_config) = 'object'),
    file_config             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(file_config) = 'object'),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX channels_tenant_name_key ON kaireon.channels (tenant_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.channels IS
    'Channel: delivery channel (email, sms, push, web, ...). impression_mode implicit makes recommend record an impression with each decision; consent_purpose names the consent a customer must not have revoked. Soft-deleted.';

CREATE TABLE kaireon.placements (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    channel_id              text NOT NULL,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    slot_type               text NOT NULL DEFAULT 'inline'
                            CHECK (slot_type IN ('hero', 'banner', 'modal', 'inline', 'sidebar', 'carousel',
                                                 'feed', 'interstitial', 'notification', 'tile', 'other')),
    max_slots               integer NOT NULL DEFAULT 1 CHECK (max_slots BETWEEN 1 AND 50),
    targeting               jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(targeting) = 'object'),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES kaireon.channels (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.placements (tenant_id, channel_id);
CREATE UNIQUE INDEX placements_tenant_channel_name_key
    ON kaireon.placements (tenant_id, channel_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.placements IS
    'Placement: a targeted slot inside a channel (hero, banner, modal); used by flow route lookups. Soft-deleted.';

CREATE TABLE kaireon.arbitration_profiles (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    name                    text NOT NULL,
    description             text,
    weights                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(weights) = 'object'),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX arbitration_profiles_tenant_key_key
    ON kaireon.arbitration_profiles (tenant_id, key) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.arbitration_profiles IS
    'ArbitrationProfile: multi-objective ranking weights (propensity, relevance, revenue, margin, engagement) for the PRIE formula. Soft-deleted.';

CREATE TABLE kaireon.decision_flows (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    name                    text NOT NULL,
    description             text,
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'published', 'paused', 'archived')),
    draft_config            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(draft_config) = 'object'),
    published_versions      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(published_versions) = 'array'),
    published_version       integer CHECK (published_version >= 1),
    published_at            timestamptz,
    arbitration_profile_id  text,
    is_default              boolean NOT NULL DEFAULT false,
    is_protected            boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, arbitration_profile_id) REFERENCES kaireon.arbitration_profiles (tenant_id, id)
        ON DELETE SET NULL (arbitration_profile_id)
);
CREATE INDEX ON kaireon.decision_flows (tenant_id, arbitration_profile_id);
CREATE UNIQUE INDEX decision_flows_tenant_key_key
    ON kaireon.decision_flows (tenant_id, key) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX decision_flows_one_default
    ON kaireon.decision_flows (tenant_id) WHERE is_default AND deleted_at IS NULL;
COMMENT ON TABLE kaireon.decision_flows IS
    'DecisionFlow: a decisioning flow. draft_config is the working version; published_versions holds the immutable published snapshots, and recommend runs only the published one. At most one default flow per tenant. Soft-deleted.';

CREATE TABLE kaireon.flow_routes (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    channel_id              text NOT NULL,
    placement_id            text,
    decision_flow_id        text NOT NULL,
    priority                integer NOT NULL DEFAULT 0,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES kaireon.channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, placement_id) REFERENCES kaireon.placements (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, decision_flow_id) REFERENCES kaireon.decision_flows (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.flow_routes (tenant_id, channel_id, placement_id, priority DESC);
CREATE INDEX ON kaireon.flow_routes (tenant_id, placement_id);
CREATE INDEX ON kaireon.flow_routes (tenant_id, decision_flow_id);
COMMENT ON TABLE kaireon.flow_routes IS
    'FlowRoute: maps (channel, placement) to a decision flow; the highest priority active route wins. Soft-deleted.';

CREATE TABLE kaireon.offers (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    category_id             text,
    sub_category_id         text,
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'active', 'paused', 'expired', 'archived')),
    priority                integer NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    weight                  double precision NOT NULL DEFAULT 100 CHECK (weight >= 0 AND weight <= 100),
    mandatory               boolean NOT NULL DEFAULT false,
    eligibility             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(eligibility) = 'object'),
    budget                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(budget) = 'object'),
    schedule                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(schedule) = 'object'),
    value                   numeric NOT NULL DEFAULT 0 CHECK (value >= 0),
    margin                  numeric NOT NULL DEFAULT 0,
    cost                    numeric NOT NULL DEFAULT 0 CHECK (cost >= 0),
    currency                text CHECK (currency ~ '^[A-Z]{3}$'),
    levers                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(levers) = 'object'),
    tags                    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    custom_fields           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(custom_fields) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES kaireon.categories (tenant_id, id)
        ON DELETE SET NULL (category_id),
    FOREIGN KEY (tenant_id, sub_category_id) REFERENCES kaireon.sub_categories (tenant_id, id)
        ON DELETE SET NULL (sub_category_id)
);
CREATE INDEX ON kaireon.offers (tenant_id, category_id);
CREATE INDEX ON kaireon.offers (tenant_id, sub_category_id);
CREATE INDEX ON kaireon.offers (tenant_id, status) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.offers IS
    'Offer: what the platform recommends. priority 0..100 and weight 0..100 drive priority_weighted scoring; value, margin and cost feed arbitration; schedule holds start/end, days and hours; mandatory offers bypass qualification. Soft-deleted.';

CREATE TABLE kaireon.creatives (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    offer_id                text NOT NULL,
    channel_id              text NOT NULL,
    placement_id            text,
    content_item_id         text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    template_type           text NOT NULL DEFAULT 'default',
    content                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(content) = 'object'),
    personalization         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(personalization) = 'object'),
    weight                  double precision NOT NULL DEFAULT 100 CHECK (weight >= 0),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, offer_id) REFERENCES kaireon.offers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, channel_id) REFERENCES kaireon.channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, placement_id) REFERENCES kaireon.placements (tenant_id, id)
        ON DELETE SET NULL (placement_id)
);
CREATE INDEX ON kaireon.creatives (tenant_id, offer_id);
CREATE INDEX ON kaireon.creatives (tenant_id, channel_id);
CREATE INDEX ON kaireon.creatives (tenant_id, placement_id);
COMMENT ON TABLE kaireon.creatives IS
    'Creative: channel-specific rendering of an offer (optionally for one placement); weight drives the weighted creative choice. Soft-deleted.';

CREATE TABLE kaireon.outcome_types (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,63}$'),
    name                    text NOT NULL,
    description             text,
    classification          text NOT NULL CHECK (classification IN ('positive', 'negative', 'neutral')),
    category                text NOT NULL DEFAULT 'engagement'
                            CHECK (category IN ('exposure', 'engagement', 'conversion', 'feedback', 'other')),
    is_system               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX outcome_types_tenant_key_key
    ON kaireon.outcome_types (tenant_id, key) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.outcome_types IS
    'OutcomeType: the tenant''s taxonomy of outcomes (impression, click, conversion, dismiss, ...) with their classification; system rows cannot be deleted. Soft-deleted.';

CREATE TABLE kaireon.qualification_rules (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    rule_type               text NOT NULL
                            CHECK (rule_type IN ('segment_required', 'attribute_condition', 'propensity_threshold',
                                                 'recency_check', 'metric_condition', 'offer_attribute')),
    stage                   text NOT NULL DEFAULT 'eligibility' CHECK (stage IN ('eligibility', 'fit', 'match')),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    priority                integer NOT NULL DEFAULT 0,
    scope                   text NOT NULL DEFAULT 'global'
                            CHECK (scope IN ('global', 'segment', 'channel', 'category', 'sub_category', 'offer')),
    scope_id                text,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF rule_type, config ON kaireon.qualification_rules
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('qualification_rule', 'rule_type', 'config');
COMMENT ON TABLE kaireon.qualification_rules IS
    'QualificationRule: an eligibility or fit filter (hard) or a match multiplier (soft), evaluated in priority order; config is validated per rule_type (docs/config.md). scope/scope_id are the deprecated single scope; qualification_rule_scopes holds the scopes. Soft-deleted.';

CREATE TABLE kaireon.qualification_rule_scopes (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    qualification_rule_id   text NOT NULL,
    scope                   text NOT NULL
                            CHECK (scope IN ('global', 'segment', 'channel', 'category', 'sub_category', 'offer')),
    scope_id                text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, qualification_rule_id, scope, scope_id),
    CHECK ((scope = 'global') = (scope_id IS NULL)),
    FOREIGN KEY (tenant_id, qualification_rule_id) REFERENCES kaireon.qualification_rules (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.qualification_rule_scopes IS
    'QualificationRuleScope: one scope of a qualification rule (global, or a segment, channel, category, sub-category or offer id).';

CREATE TABLE kaireon.contact_policies (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    rule_type               text NOT NULL
                            CHECK (rule_type IN ('frequency_cap', 'cooldown', 'budget_exhausted', 'outcome_based',
                                                 'segment_exclusion', 'time_window', 'mutual_exclusion',
                                                 'category_suppression', 'cross_channel_cap', 'customer_total_cap',
                                                 'offer_category_cap', 'allow_override', 'metric_condition')),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    priority                integer NOT NULL DEFAULT 0,
    scope                   text NOT NULL DEFAULT 'global'
                            CHECK (scope IN ('global', 'segment', 'channel', 'category', 'sub_category', 'offer')),
    scope_id                text,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF rule_type, config ON kaireon.contact_policies
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('contact_policy', 'rule_type', 'config');
COMMENT ON TABLE kaireon.contact_policies IS
    'ContactPolicy: frequency caps, cooldowns, mutual exclusion and the other contact rules, evaluated in priority order; config is validated per rule_type (docs/config.md). Soft-deleted.';

CREATE TABLE kaireon.contact_policy_scopes (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    contact_policy_id       text NOT NULL,
    scope                   text NOT NULL
                            CHECK (scope IN ('global', 'segment', 'channel', 'category', 'sub_category', 'offer')),
    scope_id                text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, contact_policy_id, scope, scope_id),
    CHECK ((scope = 'global') = (scope_id IS NULL)),
    FOREIGN KEY (tenant_id, contact_policy_id) REFERENCES kaireon.contact_policies (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.contact_policy_scopes IS
    'ContactPolicyScope: one scope of a contact policy (global, or a segment, channel, category, sub-category or offer id).';

CREATE TABLE kaireon.cross_offer_constraints (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rule_type               text NOT NULL CHECK (rule_type IN ('channel_quota', 'portfolio_budget', 'category_cap')),
    scope                   text NOT NULL DEFAULT 'global'
                            CHECK (scope IN ('global', 'channel', 'category', 'offer')),
    scope_id                text,
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK ((scope = 'global') = (scope_id IS NULL))
);
COMMENT ON TABLE kaireon.cross_offer_constraints IS
    'CrossOfferConstraint: a global constraint across offers (channel quota, portfolio budget, category cap) priced by Lagrangian arbitration.';

CREATE TABLE kaireon.guardrail_rules (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL CHECK (key ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$'),
    name                    text NOT NULL,
    description             text,
    severity                text NOT NULL DEFAULT 'hard' CHECK (severity IN ('hard', 'soft')),
    expression_ast          jsonb NOT NULL,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('draft', 'active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX guardrail_rules_tenant_key_key
    ON kaireon.guardrail_rules (tenant_id, key) WHERE deleted_at IS NULL;
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF expression_ast ON kaireon.guardrail_rules
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('guardrail', '', 'expression_ast');
COMMENT ON TABLE kaireon.guardrail_rules IS
    'GuardrailRule: a boolean expression (all/any/not over comparisons on offer.*, customer.*, request.*, channel.*); hard severity removes a candidate, soft records a warning. Soft-deleted.';

CREATE TABLE kaireon.suppressions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    scope                   text NOT NULL
                            CHECK (scope IN ('global', 'channel', 'category', 'sub_category', 'offer')),
    scope_id                text,
    policy_id               text,
    reason                  text,
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK ((scope = 'global') = (scope_id IS NULL)),
    FOREIGN KEY (tenant_id, policy_id) REFERENCES kaireon.contact_policies (tenant_id, id)
        ON DELETE SET NULL (policy_id)
);
CREATE INDEX ON kaireon.suppressions (tenant_id, customer_id, expires_at);
CREATE INDEX ON kaireon.suppressions (tenant_id, policy_id);
CREATE INDEX ON kaireon.suppressions (expires_at);
COMMENT ON TABLE kaireon.suppressions IS
    'Suppression: a contact-policy block for one customer and scope until expires_at (NULL: no expiry); expired rows are removed by retention.';

CREATE TABLE kaireon.volume_constraints (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scope                   text NOT NULL CHECK (scope IN ('global', 'channel', 'category', 'offer')),
    scope_id                text,
    max_volume              bigint NOT NULL CHECK (max_volume > 0),
    period                  text NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'quarterly')),
    current_count           bigint NOT NULL DEFAULT 0 CHECK (current_count >= 0),
    reset_at                timestamptz,
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK ((scope = 'global') = (scope_id IS NULL))
);
CREATE INDEX ON kaireon.volume_constraints (tenant_id, scope, scope_id);
COMMENT ON TABLE kaireon.volume_constraints IS
    'VolumeConstraint: a delivery cap (max_volume per period) on an offer, category, channel or everything; current_count is the period''s count, reset at reset_at.';

CREATE TABLE kaireon.budget_allocations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text,
    scope                   text NOT NULL CHECK (scope IN ('global', 'channel', 'category', 'offer')),
    scope_id                text,
    period_type             text NOT NULL
                            CHECK (period_type IN ('daily', 'weekly', 'monthly', 'quarterly', 'total')),
    period_key              text NOT NULL DEFAULT 'current',
    max_impressions         bigint CHECK (max_impressions >= 0),
    max_spend               numeric CHECK (max_spend >= 0),
    max_conversions         bigint CHECK (max_conversions >= 0),
    used_impressions        bigint NOT NULL DEFAULT 0 CHECK (used_impressions >= 0),
    used_spend              numeric NOT NULL DEFAULT 0 CHECK (used_spend >= 0),
    used_conversions        bigint NOT NULL DEFAULT 0 CHECK (used_conversions >= 0),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'exhausted')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, scope, scope_id, period_type, period_key),
    CHECK ((scope = 'global') = (scope_id IS NULL))
);
COMMENT ON TABLE kaireon.budget_allocations IS
    'BudgetAllocation: a budget (impressions, spend, conversions) per scope and period window (period_key, e.g. 2026-11), with the counters used so far.';
-- kaireon install script, part 20: customer data schemas, segments, and the customer-scoped
-- fact tables (interaction history, summaries, impressions, scores, identity, consent).

CREATE TABLE kaireon.data_schemas (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,39}$'),
    description             text,
    table_name              text NOT NULL GENERATED ALWAYS AS ('ds_' || name) STORED,
    entity_type             text NOT NULL DEFAULT 'customer' CHECK (entity_type IN ('customer', 'account', 'custom')),
    schema_type             text NOT NULL DEFAULT 'entity' CHECK (schema_type IN ('entity', 'event', 'lookup')),
    linked_schema_id        text,
    join_mapping            jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(join_mapping) = 'object'),
    summary_columns         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(summary_columns) = 'array'),
    auto_enrich             boolean NOT NULL DEFAULT false,
    status                  text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, linked_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id)
        ON DELETE SET NULL (linked_schema_id)
);
CREATE INDEX ON kaireon.data_schemas (tenant_id, linked_schema_id);
COMMENT ON TABLE kaireon.data_schemas IS
    'DataSchema: an entity (customer, account, custom) whose rows live in the real table kaireon_t_<tenant slug>.ds_<name>, created by kaireon.publish_data_schema.';

CREATE TABLE kaireon.schema_fields (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    schema_id               text NOT NULL,
    name                    text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$' AND name <> 'tenant_id'),
    description             text,
    data_type               text NOT NULL
                            CHECK (data_type IN ('text', 'varchar', 'smallint', 'integer', 'bigint', 'numeric',
                                                 'real', 'double', 'boolean', 'date', 'timestamp',
                                                 'timestamptz', 'jsonb', 'uuid')),
    length                  integer CHECK (length BETWEEN 1 AND 10485760),
    precision               integer CHECK (precision BETWEEN 1 AND 1000),
    scale                   integer CHECK (scale BETWEEN 0 AND 1000),
    is_nullable             boolean NOT NULL DEFAULT true,
    is_primary_key          boolean NOT NULL DEFAULT false,
    is_unique               boolean NOT NULL DEFAULT false,
    is_predictor            boolean NOT NULL DEFAULT false,
    default_value           text,
    ordinal                 integer NOT NULL DEFAULT 0,
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, schema_id, name),
    FOREIGN KEY (tenant_id, schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE,
    CHECK (length IS NULL OR data_type = 'varchar'),
    CHECK ((precision IS NULL AND scale IS NULL) OR data_type = 'numeric'),
    CHECK (scale IS NULL OR (precision IS NOT NULL AND scale <= precision)),
    CHECK (NOT is_primary_key OR NOT is_nullable)
);
COMMENT ON TABLE kaireon.schema_fields IS
    'SchemaField: a typed column of a data schema; is_predictor exposes it to model training. Published fields become columns of the ds_ table.';

CREATE TABLE kaireon.schema_joins (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    primary_schema_id       text NOT NULL,
    primary_key             text NOT NULL,
    foreign_schema_id       text NOT NULL,
    foreign_key             text NOT NULL,
    join_type               text NOT NULL DEFAULT 'left' CHECK (join_type IN ('left', 'inner')),
    auto_enrich             boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, primary_schema_id, foreign_schema_id),
    FOREIGN KEY (tenant_id, primary_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, foreign_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.schema_joins (tenant_id, foreign_schema_id);
COMMENT ON TABLE kaireon.schema_joins IS
    'SchemaJoin: join between two data schemas (primary_key = foreign_key), used to widen customer rows and in segments.';

CREATE TABLE kaireon.segments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description             text,
    base_schema_id          text,
    joins                   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(joins) = 'array'),
    filters                 jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(filters) IN ('array', 'object')),
    view_name               text,
    customer_count          bigint CHECK (customer_count >= 0),
    status                  text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'archived')),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, base_schema_id) REFERENCES kaireon.data_schemas (tenant_id, id)
        ON DELETE SET NULL (base_schema_id)
);
CREATE INDEX ON kaireon.segments (tenant_id, base_schema_id);
COMMENT ON TABLE kaireon.segments IS
    'Segment: an audience over a data schema''s rows (filters and joins), materialised by kaireon.publish_segment as the view kaireon_t_<tenant slug>.seg_<id prefix>.';

-- The append-only interaction fact table, range-partitioned by month on occurred_at.
-- kaireon.create_interaction_partitions() creates monthly partitions ahead of time; the
-- default partition catches rows outside them.
--
-- The partitioned parent has no indexes of its own (so no primary key): each partition gets
-- its primary key (tenant_id, id) and indexes from kaireon._index_interaction_partition.
-- The parent belongs to the extension while the monthly partitions do not, and pg_dump
-- restores a partition by attaching it to the parent created by CREATE EXTENSION: indexes
-- on the parent would be cloned onto the partition at that moment and then collide with
-- the partition's own dumped indexes. Foreign keys and CHECKs live on the parent and are
-- cloned to every partition.
CREATE TABLE kaireon.interaction_history (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    occurred_at             timestamptz NOT NULL DEFAULT now(),
    customer_id             text NOT NULL,
    interaction_type        text NOT NULL CHECK (interaction_type IN ('recommendation', 'impression', 'outcome')),
    outcome_type_key        text,
    direction               text NOT NULL DEFAULT 'outbound' CHECK (direction IN ('inbound', 'outbound')),
    recommendation_id       text,
    rank                    integer CHECK (rank BETWEEN 1 AND 50),
    offer_id                text,
    creative_id             text,
    channel_id              text,
    placement_id            text,
    decision_flow_id        text,
    campaign_id             text,
    deduplication_id        text,
    score                   double precision,
    propensity              double precision CHECK (propensity BETWEEN 0 AND 1),
    model_key               text,
    conversion_value        numeric,
    context                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((interaction_type = 'outcome') = (outcome_type_key IS NOT NULL)),
    FOREIGN KEY (tenant_id, offer_id) REFERENCES kaireon.offers (tenant_id, id) ON DELETE SET NULL (offer_id),
    FOREIGN KEY (tenant_id, creative_id) REFERENCES kaireon.creatives (tenant_id, id) ON DELETE SET NULL (creative_id)
) PARTITION BY RANGE (occurred_at);
COMMENT ON TABLE kaireon.interaction_history IS
    'InteractionHistory: append-only fact table of recommendations, impressions and outcomes (outcome_type_key). Range-partitioned by month on occurred_at (midnight UTC boundaries); each partition has primary key (tenant_id, id). See kaireon.create_interaction_partitions.';

CREATE FUNCTION kaireon._index_interaction_partition(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE kaireon.%I ADD PRIMARY KEY (tenant_id, id)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, customer_id, occurred_at DESC)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, recommendation_id) WHERE recommendation_id IS NOT NULL', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, offer_id, occurred_at)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, creative_id)', part);
    -- rows are appended in creation order: a BRIN index finds the newest rows for the
    -- summary rollups (kaireon.rollup_summaries) at almost no cost to writers
    EXECUTE format('CREATE INDEX ON kaireon.%I USING brin (created_at)', part);
END
$fn$;
COMMENT ON FUNCTION kaireon._index_interaction_partition(text) IS
    'Internal: the primary key and indexes every interaction_history partition carries (lookups by customer, recommendation, offer and creative; a BRIN index on created_at for the summary rollups).';

CREATE TABLE kaireon.interaction_history_default PARTITION OF kaireon.interaction_history DEFAULT;
SELECT kaireon._index_interaction_partition('interaction_history_default');
COMMENT ON TABLE kaireon.interaction_history_default IS
    'InteractionHistory: default partition of interaction_history, for rows outside the monthly partitions.';

CREATE FUNCTION kaireon.create_interaction_partitions(months_ahead integer DEFAULT 3,
                                                      from_month date DEFAULT current_date)
    RETURNS SETOF text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    m           date;
    lo          timestamptz;
    hi          timestamptz;
    part        text;
BEGIN
    IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 120, not %', months_ahead
            USING ERRCODE = '22023', HINT = 'Pass how many months after from_month to create.';
    END IF;
    IF from_month IS NULL THEN
        RAISE EXCEPTION 'from_month must not be null'
            USING ERRCODE = '22004', HINT = 'Pass a date in the first month to create.';
    END IF;
    FOR i IN 0 .. months_ahead LOOP
        m := (date_trunc('month', from_month) + make_interval(months => i))::date;
        part := format('interaction_history_p%s', to_char(m, 'YYYY_MM'));
        CONTINUE WHEN to_regclass(format('kaireon.%I', part)) IS NOT NULL;
        -- Month boundaries are midnight UTC, whatever the session's time zone.
        lo := m::timestamp AT TIME ZONE 'UTC';
        hi := (m + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        -- Writers are kept out until commit: a writer that routed its row with the old
        -- partition layout would otherwise put it in the default partition after the new
        -- partition is attached, and fail its partition constraint. Readers of the parent
        -- wait too (the default partition is locked exclusively, as ATTACH needs). Rows of
        -- this month already in the default partition move into the new one.
        -- ONLY: writers and readers lock the parent first, so its lock is enough; locking
        -- every partition too would wait for autovacuum of any of them, holding the parent.
        LOCK TABLE ONLY kaireon.interaction_history IN SHARE ROW EXCLUSIVE MODE;
        LOCK TABLE kaireon.interaction_history_default IN ACCESS EXCLUSIVE MODE;
        -- A concurrent call may have created it while this one waited for the locks.
        CONTINUE WHEN to_regclass(format('kaireon.%I', part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE kaireon.%I (LIKE kaireon.interaction_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('WITH moved AS (DELETE FROM kaireon.interaction_history_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) INSERT INTO kaireon.%I SELECT * FROM moved',
                       lo, hi, part);
        EXECUTE format('ALTER TABLE kaireon.interaction_history ATTACH PARTITION kaireon.%I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
        PERFORM kaireon._index_interaction_partition(part);
        EXECUTE format('ALTER TABLE kaireon.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('CREATE POLICY tenant_isolation ON kaireon.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())', part);
        PERFORM kaireon._apply_role_grants('kaireon', part);
        EXECUTE format('COMMENT ON TABLE kaireon.%I IS %L', part,
                       format('InteractionHistory: partition of interaction_history for %s', to_char(m, 'YYYY-MM')));
        RETURN NEXT part;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.create_interaction_partitions(integer, date) IS
    'Creates the monthly partitions of interaction_history from from_month to months_ahead months later (skipping existing ones), moving matching rows out of the default partition; returns the names created.';

CREATE TABLE kaireon.interaction_summaries (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    definition_id           text,
    period_type             text NOT NULL
                            CHECK (period_type IN ('hour', 'day', 'week', 'month', '7d', '30d', '90d', 'all')),
    period_key              text NOT NULL,
    customer_id             text,
    offer_id                text,
    creative_id             text,
    channel_id              text,
    dimension_key           text NOT NULL DEFAULT '',
    impressions             bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    positive                bigint NOT NULL DEFAULT 0 CHECK (positive >= 0),
    negative                bigint NOT NULL DEFAULT 0 CHECK (negative >= 0),
    converts                bigint NOT NULL DEFAULT 0 CHECK (converts >= 0),
    total_value             numeric NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, definition_id, period_type, period_key, customer_id, offer_id,
                               creative_id, channel_id, dimension_key)
);
CREATE INDEX ON kaireon.interaction_summaries (tenant_id, customer_id, period_type);
COMMENT ON TABLE kaireon.interaction_summaries IS
    'InteractionSummary: pre-aggregated interaction counts by period and (customer, offer, creative, channel, dimension), driven by summary definitions.';

CREATE TABLE kaireon.impressions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    offer_id                text,
    creative_id             text,
    channel_id              text,
    placement_id            text,
    recommendation_id       text,
    interaction_id          text,
    context                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(context) = 'object'),
    occurred_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, offer_id) REFERENCES kaireon.offers (tenant_id, id) ON DELETE SET NULL (offer_id),
    FOREIGN KEY (tenant_id, creative_id) REFERENCES kaireon.creatives (tenant_id, id) ON DELETE SET NULL (creative_id),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES kaireon.channels (tenant_id, id) ON DELETE SET NULL (channel_id),
    FOREIGN KEY (tenant_id, placement_id) REFERENCES kaireon.placements (tenant_id, id) ON DELETE SET NULL (placement_id)
);
CREATE INDEX ON kaireon.impressions (tenant_id, customer_id, occurred_at DESC);
CREATE INDEX ON kaireon.impressions (tenant_id, offer_id);
CREATE INDEX ON kaireon.impressions (tenant_id, creative_id);
CREATE INDEX ON kaireon.impressions (tenant_id, channel_id);
CREATE INDEX ON kaireon.impressions (tenant_id, placement_id);
COMMENT ON TABLE kaireon.impressions IS
    'Impression: channel-level impression mirror (interaction_history is the canonical record).';

CREATE TABLE kaireon.customer_engagement_health (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    score                   double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    inputs                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    computed_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, customer_id)
);
COMMENT ON TABLE kaireon.customer_engagement_health IS
    'CustomerEngagementHealth: nightly engagement score (0..1) per customer from a 90-day rollup; scales engagement-aware contact-policy caps.';

CREATE TABLE kaireon.customer_clv (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    clv_score               double precision NOT NULL DEFAULT 0,
    predicted_revenue       numeric NOT NULL DEFAULT 0,
    churn_probability       double precision CHECK (churn_probability BETWEEN 0 AND 1),
    rfm_recency             integer CHECK (rfm_recency >= 0),
    rfm_frequency           integer CHECK (rfm_frequency >= 0),
    rfm_monetary            numeric,
    segment                 text CHECK (segment IN ('high', 'medium', 'low', 'at_risk')),
    computed_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, customer_id)
);
COMMENT ON TABLE kaireon.customer_clv IS
    'CustomerCLV: per-customer RFM and lifetime-value scores; segment high, medium, low or at_risk.';

CREATE TABLE kaireon.identity_links (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    canonical_id            text NOT NULL,
    identifier_type         text NOT NULL
                            CHECK (identifier_type IN ('email', 'phone', 'session', 'device', 'cookie',
                                                       'customer_id', 'external')),
    identifier_value        text NOT NULL,
    confidence              double precision NOT NULL DEFAULT 1 CHECK (confidence BETWEEN 0 AND 1),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, identifier_type, identifier_value)
);
CREATE INDEX ON kaireon.identity_links (tenant_id, canonical_id);
COMMENT ON TABLE kaireon.identity_links IS
    'IdentityLink: identity resolution graph mapping an email, phone, session or device to a canonical customer id.';

CREATE TABLE kaireon.consent_records (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    subject_id              text NOT NULL,
    purpose                 text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 200),
    status                  text NOT NULL CHECK (status IN ('granted', 'revoked', 'pending')),
    source                  text,
    granted_at              timestamptz,
    revoked_at              timestamptz,
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (status <> 'revoked' OR revoked_at IS NOT NULL)
);
CREATE INDEX ON kaireon.consent_records (tenant_id, subject_id, purpose, created_at DESC);
COMMENT ON TABLE kaireon.consent_records IS
    'ConsentRecord: consent ledger per customer and purpose; the latest row per (subject, purpose) is in force, and recommend drops channels whose purpose is revoked.';
-- kaireon install script, part 30: algorithm models and experiments, audit and compliance,
-- governance.
-- Conventions are in docs/schema.md ("Conventions"). 99_finalize.sql adds the updated_at
-- triggers, the tenant_isolation policies, soft-delete indexes and pg_dump registration from
-- the catalog; this file only enables row level security on the two cross-tenant tables
-- (audit_logs, webauthn_credentials), which 99_finalize.sql does not treat uniformly.
--
-- User ids (requested_by, reviewed_by, requester_id, approver_id, user_id, ...) are plain
-- text here: kaireon.users is created by a later install part, so no foreign key to it can
-- be declared in this file.

-- ---------------------------------------------------------------------------------------
-- Algorithm models
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.algorithm_models (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    model_type              text NOT NULL DEFAULT 'scorecard'
                            CHECK (model_type IN ('scorecard', 'bayesian', 'logistic_regression',
                                                  'gradient_boosted', 'thompson_bandit',
                                                  'epsilon_greedy')),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'training', 'active', 'archived')),
    target_field            text,
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    predictors              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(predictors) = 'array'),
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    model_state             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(model_state) = 'object'),
    outcome_weights         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(outcome_weights) = 'object'),
    version                 integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    registry_status         text NOT NULL DEFAULT 'draft'
                            CHECK (registry_status IN ('draft', 'shadow', 'challenger', 'champion',
                                                       'archived')),
    registry_family         text,
    last_trained_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key)
);
COMMENT ON TABLE kaireon.algorithm_models IS
    'AlgorithmModel: a scoring model (scorecard, bayesian, logistic_regression, gradient_boosted, thompson_bandit, epsilon_greedy) with its predictors, learned state (model_state), metrics and outcome weights. registry_status places it in the model registry; at most one champion per (tenant_id, registry_family); a model with a NULL registry_family belongs to no family.';

-- At most one champion per model family.
CREATE UNIQUE INDEX algorithm_models_one_champion_idx
    ON kaireon.algorithm_models (tenant_id, registry_family)
    WHERE registry_status = 'champion';

CREATE TABLE kaireon.model_versions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    model_state             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(model_state) = 'object'),
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    predictors              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(predictors) = 'array'),
    created_by              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, model_id, version),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_versions IS
    'ModelVersion: immutable historical snapshot of an AlgorithmModel''s configuration, learned state, metrics and predictors at one version (append-only).';

CREATE TABLE kaireon.model_adaptations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text,
    scope                   text NOT NULL DEFAULT 'global'
                            CHECK (scope IN ('global', 'category', 'offer', 'channel')),
    scope_id                text,
    positives               bigint NOT NULL DEFAULT 0 CHECK (positives >= 0),
    negatives               bigint NOT NULL DEFAULT 0 CHECK (negatives >= 0),
    positive_rate           double precision NOT NULL DEFAULT 0
                            CHECK (positive_rate >= 0 AND positive_rate <= 1),
    predictor_bins          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(predictor_bins) = 'object'),
    predictor_aucs          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(predictor_aucs) = 'object'),
    shard                   smallint NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < 64),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE NULLS NOT DISTINCT (tenant_id, model_id, scope, scope_id, shard),
    CHECK ((scope = 'global') = (scope_id IS NULL)),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_adaptations IS
    'ModelAdaptation: learned propensity for one scope (global, category, offer or channel; scope_id is NULL for global and otherwise the category, offer or channel id, not a foreign key because it is polymorphic): positive/negative counts, positive rate, per-predictor bins and AUCs. model_id NULL holds the tenant''s adaptive propensity counts, which respond updates for every outcome; rows with a model_id belong to that AlgorithmModel. A scope''s counts may be spread over several shard rows (respond writes the shard of its backend, so concurrent outcomes do not queue on one row): its totals are the sums over its shards, and positive_rate is each row''s own.';

CREATE TABLE kaireon.model_approvals (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    requested_by            text NOT NULL,
    reviewed_by             text,
    reviewed_at             timestamptz,
    comment                 text,
    metrics                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_approvals IS
    'ModelApproval: production-promotion governance ticket for one version of an AlgorithmModel, with the metrics it was judged on; at most one pending ticket per model version. requested_by/reviewed_by are user ids (no foreign key: kaireon.users is created later).';

CREATE INDEX model_approvals_model_version_idx
    ON kaireon.model_approvals (tenant_id, model_id, version);
-- At most one open ticket per model version.
CREATE UNIQUE INDEX model_approvals_one_pending_idx
    ON kaireon.model_approvals (tenant_id, model_id, version)
    WHERE status = 'pending';

CREATE TABLE kaireon.model_drift_checks (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    check_type              text NOT NULL
                            CHECK (check_type IN ('psi', 'ks_test', 'auc_decay', 'feature_drift')),
    baseline                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(baseline) = 'object'),
    current                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(current) = 'object'),
    drift_score             double precision NOT NULL DEFAULT 0,
    threshold               double precision,
    drifted                 boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_drift_checks IS
    'ModelDriftCheck: one drift check of an AlgorithmModel (psi, ks_test, auc_decay or feature_drift) comparing baseline and current distributions; drifted when drift_score crossed threshold (append-only).';

CREATE INDEX model_drift_checks_model_created_idx
    ON kaireon.model_drift_checks (tenant_id, model_id, created_at);

CREATE TABLE kaireon.experiments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'running', 'paused', 'completed', 'archived')),
    champion_model_id       text,
    traffic_split           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(traffic_split) = 'object'),
    auto_promote            boolean NOT NULL DEFAULT false,
    auto_promote_days       integer NOT NULL DEFAULT 14 CHECK (auto_promote_days > 0),
    auto_promote_threshold  double precision NOT NULL DEFAULT 0.95
                            CHECK (auto_promote_threshold >= 0 AND auto_promote_threshold <= 1),
    holdout_percent         double precision NOT NULL DEFAULT 0
                            CHECK (holdout_percent >= 0 AND holdout_percent <= 100),
    results                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(results) = 'object'),
    started_at              timestamptz,
    ended_at                timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key),
    CHECK (ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at),
    FOREIGN KEY (tenant_id, champion_model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE SET NULL (champion_model_id)
);
COMMENT ON TABLE kaireon.experiments IS
    'Experiment: champion/challenger experiment between an AlgorithmModel champion and its ExperimentChallengers, with traffic split, holdout percentage, results and optional auto-promotion of a challenger that beats the champion (auto_promote_threshold) after auto_promote_days.';

CREATE INDEX experiments_champion_model_idx
    ON kaireon.experiments (tenant_id, champion_model_id);

CREATE TABLE kaireon.experiment_challengers (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    experiment_id           text NOT NULL,
    model_id                text NOT NULL,
    traffic_pct             double precision NOT NULL DEFAULT 0
                            CHECK (traffic_pct >= 0 AND traffic_pct <= 100),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_id, model_id),
    FOREIGN KEY (tenant_id, experiment_id) REFERENCES kaireon.experiments (tenant_id, id)
        ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.experiment_challengers IS
    'ExperimentChallenger: an AlgorithmModel taking part in an Experiment as challenger, with its share of traffic in percent.';

CREATE INDEX experiment_challengers_model_idx
    ON kaireon.experiment_challengers (tenant_id, model_id);

CREATE TABLE kaireon.experiment_assignments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    experiment_id           text NOT NULL,
    variant                 text NOT NULL,
    assigned_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_id, customer_id),
    FOREIGN KEY (tenant_id, experiment_id) REFERENCES kaireon.experiments (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.experiment_assignments IS
    'ExperimentAssignment: sticky assignment of a customer to a variant (champion, challenger or holdout) of an Experiment, so the customer sees the same variant on every decision.';

CREATE INDEX experiment_assignments_customer_idx
    ON kaireon.experiment_assignments (tenant_id, customer_id);

CREATE TABLE kaireon.variant_assignments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    experiment_key          text NOT NULL,
    variant_name            text NOT NULL,
    assigned_at             timestamptz NOT NULL DEFAULT now(),
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, experiment_key, customer_id),
    CHECK (expires_at IS NULL OR expires_at > assigned_at)
);
COMMENT ON TABLE kaireon.variant_assignments IS
    'VariantAssignment: sticky assignment of a customer to a named variant of an experiment identified by key (content or flow A/B tests), optionally expiring at expires_at.';

CREATE INDEX variant_assignments_customer_idx
    ON kaireon.variant_assignments (tenant_id, customer_id);
CREATE INDEX variant_assignments_expires_idx
    ON kaireon.variant_assignments (tenant_id, expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE kaireon.ml_job_results (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    job_type                text NOT NULL
                            CHECK (job_type IN ('policy_analysis', 'segmentation', 'content_analysis',
                                                'training', 'drift_check')),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    input                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input) = 'object'),
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    error                   text,
    requested_by            text,
    started_at              timestamptz,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.ml_job_results IS
    'MlJobResult: an asynchronous ML job (policy_analysis, segmentation, content_analysis, training, drift_check) with its input, status, result and error.';

CREATE INDEX ml_job_results_status_idx
    ON kaireon.ml_job_results (tenant_id, status, created_at);
CREATE INDEX ml_job_results_type_idx
    ON kaireon.ml_job_results (tenant_id, job_type, created_at);

-- ---------------------------------------------------------------------------------------
-- Audit and compliance
-- ---------------------------------------------------------------------------------------

-- Cross-tenant, append-only. tenant_id is nullable and deliberately has NO foreign key to
-- kaireon.tenants: the chain must survive the deletion of its tenant unchanged (neither
-- CASCADE nor SET NULL may rewrite an immutable log). Rows are written by the audit triggers
-- (sql/install/70_audit.sql, src/audit*.c); the format is in docs/audit.md. before and after
-- are json, not jsonb: they hold exactly the text that was hashed.
CREATE TABLE kaireon.audit_logs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id               text,
    chain_seq               bigint NOT NULL CHECK (chain_seq >= 1),
    request_id              text,
    user_id                 text,
    session_user_name       text NOT NULL DEFAULT session_user,
    action                  text NOT NULL
                            CHECK (action IN ('create', 'update', 'soft_delete', 'restore', 'delete',
                                              'anchor')),
    entity_type             text,
    entity_id               text,
    before                  json CHECK (json_typeof(before) = 'object'),
    after                   json CHECK (json_typeof(after) = 'object'),
    changed_fields          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(changed_fields) = 'array'),
    entity_version          integer CHECK (entity_version >= 0),
    prev_hash               text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    integrity_hash          text NOT NULL CHECK (integrity_hash ~ '^[0-9a-f]{64}$'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (action = 'anchor' OR (entity_type IS NOT NULL AND entity_id IS NOT NULL)),
    -- one row per position of a chain: a fork cannot be stored
    UNIQUE NULLS NOT DISTINCT (tenant_id, chain_seq)
);
COMMENT ON TABLE kaireon.audit_logs IS
    'AuditLog: immutable, append-only audit chain of changes (create, update, soft_delete, restore, delete) plus retention anchors. integrity_hash is the hex SHA-256 of prev_hash followed by the canonical JSON of the row, prev_hash the integrity_hash of the previous row of the same chain (chain_seq - 1), 64 zeros for the first (docs/audit.md). Cross-tenant: one chain per tenant plus one for rows with a NULL tenant_id; tenant_id has no foreign key to tenants on purpose, so deleting a tenant neither deletes nor rewrites its audit rows. Row level security with policy tenant_isolation: rows with a NULL tenant_id are visible only to superusers and BYPASSRLS roles. No updated_at.';

CREATE INDEX audit_logs_tenant_id_idx
    ON kaireon.audit_logs (tenant_id, id);
CREATE INDEX audit_logs_entity_idx
    ON kaireon.audit_logs (tenant_id, entity_type, entity_id, id);
-- the anchors retention leaves, found by verification
CREATE INDEX audit_logs_anchor_idx
    ON kaireon.audit_logs (tenant_id, id) WHERE action = 'anchor';

ALTER TABLE kaireon.audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.audit_logs
    USING (tenant_id = kaireon.current_tenant_id());

CREATE TABLE kaireon.retention_configs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    data_class              text NOT NULL
                            CHECK (data_class IN ('interactions', 'decisions', 'metrics', 'audit',
                                                  'suppressions', 'outbox', 'summaries')),
    retention_days          integer NOT NULL CHECK (retention_days > 0),
    legal_hold              boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, data_class)
);
COMMENT ON TABLE kaireon.retention_configs IS
    'RetentionConfig: how many days a tenant keeps one class of data (interactions, decisions, metrics, audit, suppressions, outbox, summaries); a legal hold suspends purging of that class.';

CREATE TABLE kaireon.dsar_requests (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    request_type            text NOT NULL
                            CHECK (request_type IN ('export', 'delete', 'rectify')),
    subject_id              text NOT NULL,
    subject_type            text NOT NULL DEFAULT 'customer',
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'processing', 'completed', 'failed',
                                              'rejected')),
    requested_by            text NOT NULL,
    reason                  text,
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    error                   text,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.dsar_requests IS
    'DsarRequest: data-subject access request (export, delete or rectify the data of one subject, by default a customer) and its processing status and result.';

CREATE INDEX dsar_requests_subject_idx
    ON kaireon.dsar_requests (tenant_id, subject_type, subject_id);
CREATE INDEX dsar_requests_status_idx
    ON kaireon.dsar_requests (tenant_id, status, created_at);

CREATE TABLE kaireon.policy_snapshots (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    policy_version_hash     text NOT NULL CHECK (policy_version_hash ~ '^[0-9a-f]{16}$'),
    interaction_id          text,
    eligibility_policies    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(eligibility_policies) = 'array'),
    suppression_policies    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(suppression_policies) = 'array'),
    guardrail_rules         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(guardrail_rules) = 'array'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, policy_version_hash)
);
COMMENT ON TABLE kaireon.policy_snapshots IS
    'PolicySnapshot: the eligibility, suppression and guardrail policies in force for a decision, stored once per distinct 16-hex-digit policy_version_hash per tenant; interaction_id is the first interaction decided under it (no foreign key). Append-only.';

CREATE TABLE kaireon.decision_traces (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    request_id              text NOT NULL,
    recommendation_id       text,
    customer_id             text NOT NULL,
    channel_id              text,
    placement_id            text,
    decision_flow_id        text,
    candidate_count         bigint NOT NULL DEFAULT 0 CHECK (candidate_count >= 0),
    after_qualification     bigint NOT NULL DEFAULT 0 CHECK (after_qualification >= 0),
    after_contact_policy    bigint NOT NULL DEFAULT 0 CHECK (after_contact_policy >= 0),
    after_suppression       bigint NOT NULL DEFAULT 0 CHECK (after_suppression >= 0),
    final_count             bigint NOT NULL DEFAULT 0 CHECK (final_count >= 0),
    qualification_results   jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(qualification_results) = 'array'),
    scoring_results         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scoring_results) = 'array'),
    selected_offers         jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(selected_offers) = 'array'),
    funnel                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(funnel) = 'array'),
    policy_version_hash     text CHECK (policy_version_hash ~ '^[0-9a-f]{16}$'),
    degraded_scoring        boolean NOT NULL DEFAULT false,
    duration_ms             double precision CHECK (duration_ms >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.decision_traces IS
    'DecisionTrace: forensic trace of one decision: candidate counts after each funnel stage (qualification, contact policy, suppression, final), per-offer qualification and scoring results, selected offers, the policy_version_hash of the PolicySnapshot in force, whether scoring was degraded, and duration. Append-only; channel_id, placement_id, decision_flow_id and policy_version_hash are recorded values, not foreign keys, so later edits or deletions do not rewrite history.';

CREATE INDEX decision_traces_created_idx
    ON kaireon.decision_traces (tenant_id, created_at);
CREATE INDEX decision_traces_customer_created_idx
    ON kaireon.decision_traces (tenant_id, customer_id, created_at);
CREATE INDEX decision_traces_request_idx
    ON kaireon.decision_traces (tenant_id, request_id);

-- ---------------------------------------------------------------------------------------
-- Governance
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

-- user_id references kaireon.users (id), which a later install part creates; the integrator
-- adds that foreign key there. It stays plain text here.
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
    'CustomRoleAssignment: grants a CustomRole to a user within the tenant. user_id is a user id (foreign key to kaireon.users added by a later install part, which creates that table).';

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

-- Cross-tenant, scoped by user: no tenant_id. user_id references kaireon.users (id), which a
-- later install part creates; the integrator adds that foreign key there.
CREATE TABLE kaireon.webauthn_credentials (
    id                      text NOT NULL DEFAULT gen_random_uuid()::text PRIMARY KEY,
    user_id                 text NOT NULL,
    credential_id           text NOT NULL UNIQUE,
    public_key              text NOT NULL,
    counter                 bigint NOT NULL DEFAULT 0 CHECK (counter >= 0),
    transports              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(transports) = 'array'),
    device_label            text,
    last_used_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.webauthn_credentials IS
    'WebAuthnCredential: a user''s WebAuthn/passkey credential: credential id, COSE public key (CBOR, base64), signature counter, transports and device label. Cross-tenant, scoped by user_id (no tenant_id; foreign key to kaireon.users added by a later install part). Row level security is enabled with no policy, so only superusers and BYPASSRLS roles see or change rows.';

CREATE INDEX webauthn_credentials_user_idx
    ON kaireon.webauthn_credentials (user_id);

ALTER TABLE kaireon.webauthn_credentials ENABLE ROW LEVEL SECURITY;
-- kaireon install script, part 35: scoring models (docs/models.md).
--   * C entry points: score, explain_score, model_features, model_learn, import_model,
--     train_model, check_drift, and the triggers that validate models and invalidate the
--     per-backend model cache;
--   * the model registry (draft / shadow / challenger / champion / archived), model_versions
--     snapshots and four-eyes promotion approvals;
--   * shadow score logging;
--   * champion/challenger experiments and generic A/B variant assignment.

-- ---------------------------------------------------------------------------------------
-- Scoring (src/scoring.c, src/models/)
-- score, score_vector and explain_score are VOLATILE because bandit scores are random draws;
-- they are PARALLEL SAFE (each process draws from its own generator).
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.score(tenant_id text, model_key text, features jsonb, arm text DEFAULT NULL)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_score_jsonb'
    LANGUAGE C VOLATILE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION kaireon.score(text, text, jsonb, text) IS
    'Scores features (a JSON object of feature names and values; missing or null features are missing values) with the tenant''s model: a probability for classifiers and bandits (arm = the offer id), the raw prediction for regression models. 42704 when the model does not exist, 55000 when it has no learned state yet.';

CREATE FUNCTION kaireon.score_vector(tenant_id text, model_key text, features double precision[], arm text DEFAULT NULL)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_score_array'
    LANGUAGE C VOLATILE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION kaireon.score_vector(text, text, double precision[], text) IS
    'Scores numeric features given in the order of kaireon.model_features(tenant_id, model_key) (NULL or NaN elements are missing values); the fast form for scoring many rows.';

CREATE FUNCTION kaireon.explain_score(tenant_id text, model_key text, features jsonb, arm text DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_explain_score'
    LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.explain_score(text, text, jsonb, text) IS
    'The score with its factors: matched rules (scorecard), per-predictor log-odds (bayesian), per-feature logit contributions (logistic_regression), TreeSHAP contributions and expected value (gradient_boosted), arm state (bandits). See docs/models.md.';

CREATE FUNCTION kaireon.model_features(tenant_id text, model_key text)
    RETURNS text[]
    AS 'MODULE_PATHNAME', 'kaireon_model_features_sql'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.model_features(text, text) IS
    'The feature names a model reads, in the order kaireon.score_vector expects.';

CREATE FUNCTION kaireon.model_learn(tenant_id text, model_key text, arm text DEFAULT NULL,
                                    features jsonb DEFAULT NULL, outcome text DEFAULT 'positive')
    RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_model_learn_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.model_learn(text, text, text, jsonb, text) IS
    'Online learning from one outcome (classification positive, negative or neutral): bayesian models count the features'' bins, bandits the arm (offer id). Takes the model''s row lock; no new version. False when the model does not learn online or the outcome is neutral. Called by respond.';

CREATE FUNCTION kaireon.import_model(tenant_id text, model_key text, format text, document text,
                                     options jsonb DEFAULT '{}')
    RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_import_model'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.import_model(text, text, text, text, jsonb) IS
    'Imports a tree ensemble (format xgboost_json: Booster.save_model(''m.json''); lightgbm_json: Booster.dump_model()) as the gradient_boosted model model_key, creating it or replacing its state (a new version). options: featureNames, name, family. Returns the model id; 22023 for a malformed or unsupported document, nothing stored.';

CREATE FUNCTION kaireon.train_model(tenant_id text, model_key text, since timestamptz DEFAULT NULL,
                                    until timestamptz DEFAULT NULL, options jsonb DEFAULT '{}')
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_train_model'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.train_model(text, text, timestamptz, timestamptz, jsonb) IS
    'Trains a logistic_regression (L2-regularised, Newton/IRLS) or bayesian (naive Bayes counts) model from the tenant''s positive and negative outcomes in [since, until) joined to customer features; stores state and metrics (auc, logLoss, samples) as a new version. options: l2, maxIterations, alpha, offerId, dataSchemaId, minExamples.';

CREATE FUNCTION kaireon.check_drift(tenant_id text, model_key text,
                                    baseline_start timestamptz DEFAULT NULL, baseline_end timestamptz DEFAULT NULL,
                                    current_start timestamptz DEFAULT NULL, current_end timestamptz DEFAULT NULL,
                                    thresholds jsonb DEFAULT '{}')
    RETURNS TABLE (check_type text, drift_score double precision, threshold double precision, drifted boolean)
    AS 'MODULE_PATHNAME', 'kaireon_check_drift'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.check_drift(text, text, timestamptz, timestamptz, timestamptz, timestamptz, jsonb) IS
    'Drift of a model''s scores between a baseline window (default: the 30 days before the current one) and the current window (default: the last 7 days): PSI, KS statistic and AUC decay (baseline AUC minus current AUC); writes one model_drift_checks row per measure. thresholds: psi (0.2), ks_test (0.1), auc_decay (0.05).';

CREATE FUNCTION kaireon.set_model_seed(seed bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_set_model_seed'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon.set_model_seed(bigint) IS
    'Seeds this session''s random draws of bandit models (Thompson sampling, epsilon-greedy exploration), for reproducible tests.';

CREATE FUNCTION kaireon.fnv1a(value text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'kaireon_fnv1a'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.fnv1a(text) IS
    '32-bit FNV-1a hash of the text''s UTF-8 bytes, as a bigint in [0, 2^32); experiments assign customers by it.';

CREATE FUNCTION kaireon.normal_cdf(z double precision) RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_normal_cdf'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.normal_cdf(double precision) IS
    'Standard normal cumulative distribution function (for the experiments'' z-tests).';

CREATE FUNCTION kaireon._validate_model() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_model_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon._validate_model() IS
    'Internal: BEFORE INSERT OR UPDATE row trigger on algorithm_models compiling the model (22023 naming the field when malformed) and bumping version when its definition or registry place changes.';

CREATE FUNCTION kaireon._models_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_models_changed_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon._models_changed() IS
    'Internal: AFTER statement trigger on algorithm_models invalidating every backend''s model cache (relcache invalidation of the table).';

CREATE TRIGGER b_validate_model BEFORE INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon._validate_model();
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON kaireon.algorithm_models
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon._models_changed();

-- ---------------------------------------------------------------------------------------
-- Registry: allowed transitions, one champion per family, snapshots, four-eyes
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.registry_transitions()
    RETURNS TABLE (from_status text, to_status text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES ('draft', 'shadow'), ('draft', 'challenger'), ('draft', 'archived'),
           ('shadow', 'challenger'), ('shadow', 'draft'), ('shadow', 'archived'),
           ('challenger', 'champion'), ('challenger', 'shadow'), ('challenger', 'archived'),
           ('champion', 'archived'),
           ('archived', 'draft')
$fn$;
COMMENT ON FUNCTION kaireon.registry_transitions() IS
    'The model registry''s allowed transitions of registry_status; any other change is refused (55000). A champion leaves only by archiving, which promoting another model of its family does.';

CREATE FUNCTION kaireon._registry_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_allowed   text;
BEGIN
    IF NEW.registry_status NOT IN ('draft', 'shadow', 'challenger', 'champion', 'archived') THEN
        RETURN NEW;             -- the CHECK constraint reports it
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- creating a row is not a transition (pg_restore creates champions this way), but a
        -- champion needs a family
        IF NEW.registry_status = 'champion' AND NEW.registry_family IS NULL THEN
            RAISE EXCEPTION 'model "%" has no registry_family, so it cannot be a family''s champion', NEW.key
                USING ERRCODE = '22023', HINT = 'Set registry_family, or create the model as draft.';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.registry_family IS DISTINCT FROM OLD.registry_family AND OLD.registry_status = 'champion'
       AND NEW.registry_status = 'champion' THEN
        RAISE EXCEPTION 'champion model "%" cannot change family', OLD.key
            USING ERRCODE = '55000', HINT = 'Archive it first.';
    END IF;
    IF NEW.registry_status = OLD.registry_status THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.registry_transitions() t
                    WHERE t.from_status = OLD.registry_status AND t.to_status = NEW.registry_status) THEN
        SELECT string_agg(t.to_status, ', ') INTO v_allowed
          FROM kaireon.registry_transitions() t WHERE t.from_status = OLD.registry_status;
        RAISE EXCEPTION 'model "%": registry transition from % to % is not allowed', OLD.key,
                        OLD.registry_status, NEW.registry_status
            USING ERRCODE = '55000', HINT = format('From %s a model may move to: %s.', OLD.registry_status, v_allowed);
    END IF;
    IF NEW.registry_status = 'champion' THEN
        IF NEW.registry_family IS NULL THEN
            RAISE EXCEPTION 'model "%" has no registry_family, so it cannot be a family''s champion', NEW.key
                USING ERRCODE = '22023', HINT = 'Set registry_family first.';
        END IF;
        -- four-eyes: only an approved model.promote request may promote (80_governed_actions.sql)
        IF kaireon.four_eyes_required(NEW.tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
            RAISE EXCEPTION 'promoting model "%" (version %) to champion needs an approved request (four-eyes is enabled)',
                            NEW.key, OLD.version
                USING ERRCODE = '42501',
                      HINT = 'kaireon.transition_model(tenant_id, model_key, ''champion'') files one (action model.promote); another user approves it with kaireon.approve_request.';
        END IF;
        -- one champion per family: the promotion archives the current one in this transaction,
        -- with promotions of one family serialised
        PERFORM pg_advisory_xact_lock(hashtextextended('kaireon.champion:' || NEW.tenant_id || ':' || NEW.registry_family, 0));
        UPDATE kaireon.algorithm_models m SET registry_status = 'archived'
         WHERE m.tenant_id = NEW.tenant_id AND m.registry_family = NEW.registry_family
           AND m.registry_status = 'champion' AND m.id <> NEW.id;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._registry_check() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on algorithm_models enforcing the registry transitions, four-eyes approval of promotions and one champion per family (archiving the previous champion).';
CREATE TRIGGER a_registry_check BEFORE INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon._registry_check();

CREATE FUNCTION kaireon._snapshot_model() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.version <> OLD.version THEN
        INSERT INTO kaireon.model_versions (tenant_id, model_id, version, config, model_state, metrics,
                                            predictors, created_by)
        VALUES (NEW.tenant_id, NEW.id, NEW.version, NEW.config, NEW.model_state, NEW.metrics,
                NEW.predictors, nullif(current_setting('kaireon.user_id', true), ''))
        ON CONFLICT (tenant_id, model_id, version) DO NOTHING;
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION kaireon._snapshot_model() IS
    'Internal: AFTER INSERT OR UPDATE trigger on algorithm_models writing a model_versions snapshot of every new version.';
CREATE TRIGGER snapshot_model AFTER INSERT OR UPDATE ON kaireon.algorithm_models
    FOR EACH ROW EXECUTE FUNCTION kaireon._snapshot_model();

CREATE FUNCTION kaireon._model_version_restore() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Restoring a dump inserts each model (whose trigger snapshots its current row) before the
    -- dumped model_versions rows; the dumped snapshot of that version replaces the one the
    -- restore wrote, which is recognised as identical to the model's current row (online
    -- learning may have moved the row's counts since the version's original snapshot).
    -- Any other snapshot under an existing version is still refused by the unique key.
    DELETE FROM kaireon.model_versions v
     USING kaireon.algorithm_models m
     WHERE v.tenant_id = NEW.tenant_id AND v.model_id = NEW.model_id AND v.version = NEW.version
       AND v.id <> NEW.id AND m.tenant_id = v.tenant_id AND m.id = v.model_id AND m.version = v.version
       AND v.config = m.config AND v.model_state = m.model_state AND v.metrics = m.metrics
       AND v.predictors = m.predictors;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._model_version_restore() IS
    'Internal: BEFORE INSERT trigger on model_versions letting a restored snapshot replace the identical snapshot its model''s restore just wrote.';
CREATE TRIGGER model_version_restore BEFORE INSERT ON kaireon.model_versions
    FOR EACH ROW EXECUTE FUNCTION kaireon._model_version_restore();

CREATE FUNCTION kaireon.transition_model(tenant_id text, model_key text, to_status text,
                                         family text DEFAULT NULL)
    RETURNS kaireon.algorithm_models
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row   kaireon.algorithm_models;
    v_req   text;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF to_status IS NULL OR to_status NOT IN ('draft', 'shadow', 'challenger', 'champion', 'archived') THEN
        RAISE EXCEPTION 'unknown registry status "%"', to_status
            USING ERRCODE = '22023', HINT = 'Use draft, shadow, challenger, champion or archived.';
    END IF;
    -- four-eyes: a promotion is filed for approval (action model.promote) instead of made
    IF to_status = 'champion' AND kaireon.four_eyes_required(tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
        SELECT * INTO v_row FROM kaireon.algorithm_models m
         WHERE m.tenant_id = transition_model.tenant_id AND m.key = model_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
                USING ERRCODE = '42704', HINT = 'Check the model key.';
        END IF;
        v_req := kaireon.request_approval(tenant_id, 'model.promote', v_row.id,
                                          jsonb_build_object('modelKey', v_row.key, 'version', v_row.version,
                                                             'family', coalesce(family, v_row.registry_family)));
        RAISE NOTICE 'the promotion of model "%" (version %) to champion awaits approval: request %', v_row.key, v_row.version, v_req
            USING HINT = 'Another user approves it with kaireon.approve_request; the model is unchanged until then.';
        RETURN v_row;
    END IF;
    UPDATE kaireon.algorithm_models m
       SET registry_status = to_status, registry_family = coalesce(family, m.registry_family)
     WHERE m.tenant_id = transition_model.tenant_id AND m.key = model_key
    RETURNING * INTO v_row;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
            USING ERRCODE = '42704', HINT = 'Check the model key.';
    END IF;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION kaireon.transition_model(text, text, text, text) IS
    'Moves a model through the registry (kaireon.registry_transitions()); promoting to champion archives the family''s champion in the same transaction. With four-eyes enabled a promotion is filed as an approval request (action model.promote) and the row is returned unchanged. Returns the (updated) row.';


-- ---------------------------------------------------------------------------------------
-- Shadow scores
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.model_shadow_scores (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    model_id                text NOT NULL,
    customer_id             text NOT NULL,
    offer_id                text,
    recommendation_id       text,
    score                   double precision NOT NULL,
    ranking_model_id        text,
    ranking_score           double precision,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, model_id) REFERENCES kaireon.algorithm_models (tenant_id, id)
        ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.model_shadow_scores IS
    'kaireon''s own table: the score a shadow model gave a candidate (customer, offer) of a decision, beside the score of the model that ranked it; shadow models are scored and logged, never used to rank. Append-only.';
CREATE INDEX model_shadow_scores_model_idx ON kaireon.model_shadow_scores (tenant_id, model_id, created_at);

CREATE FUNCTION kaireon.log_shadow_scores(tenant_id text, model_key text, customer_id text,
                                          features jsonb, offer_ids text[] DEFAULT NULL,
                                          recommendation_id text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ranker    kaireon.algorithm_models;
    v_n         integer := 0;
    v_count     integer;
    s           record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_ranker FROM kaireon.algorithm_models m
     WHERE m.tenant_id = log_shadow_scores.tenant_id AND m.key = model_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no model "%"', tenant_id, model_key
            USING ERRCODE = '42704', HINT = 'Check the model key.';
    END IF;
    IF v_ranker.registry_family IS NULL THEN
        RETURN 0;
    END IF;
    FOR s IN SELECT m.id, m.key FROM kaireon.algorithm_models m
              WHERE m.tenant_id = log_shadow_scores.tenant_id AND m.registry_family = v_ranker.registry_family
                AND m.registry_status = 'shadow' AND m.id <> v_ranker.id AND m.model_state <> '{}'
    LOOP
        INSERT INTO kaireon.model_shadow_scores (tenant_id, model_id, customer_id, offer_id, recommendation_id,
                                                 score, ranking_model_id, ranking_score)
        SELECT log_shadow_scores.tenant_id, s.id, customer_id, o, recommendation_id,
               kaireon.score(log_shadow_scores.tenant_id, s.key, features, o),
               v_ranker.id,
               CASE WHEN v_ranker.model_state <> '{}' THEN kaireon.score(log_shadow_scores.tenant_id, model_key, features, o) END
          FROM unnest(coalesce(offer_ids, ARRAY[NULL::text])) AS o;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        v_n := v_n + v_count;
    END LOOP;
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION kaireon.log_shadow_scores(text, text, text, jsonb, text[], text) IS
    'Scores the candidates (offer_ids) of a decision with every shadow model of the ranking model''s family and logs the scores beside the ranking model''s in model_shadow_scores; returns the rows written.';

-- ---------------------------------------------------------------------------------------
-- Experiments
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon.experiment_bucket(experiment_key text, customer_id text)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN (kaireon.fnv1a(experiment_key || ':' || customer_id) % 10000) / 100.0;
COMMENT ON FUNCTION kaireon.experiment_bucket(text, text) IS
    'A customer''s position in [0, 100) for an experiment: FNV-1a of experimentKey:customerId modulo 10000, over 100.';

CREATE FUNCTION kaireon.assign_experiment(tenant_id text, experiment_key text, customer_id text,
                                          store boolean DEFAULT true)
    RETURNS TABLE (variant text, model_id text, model_key text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_bucket    double precision;
    v_cum       double precision;
    v_variant   text;
    c           record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF customer_id IS NULL OR customer_id = '' THEN
        RAISE EXCEPTION 'customer_id must not be empty' USING ERRCODE = '22023', HINT = 'Pass the customer id.';
    END IF;
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = assign_experiment.tenant_id AND e.key = experiment_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    SELECT a.variant INTO v_variant FROM kaireon.experiment_assignments a
     WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id AND a.customer_id = assign_experiment.customer_id;
    IF NOT FOUND THEN
        IF v_exp.status <> 'running' THEN
            RAISE EXCEPTION 'experiment "%" is %, not running', experiment_key, v_exp.status
                USING ERRCODE = '55000', HINT = 'Set its status to running to assign customers.';
        END IF;
        v_bucket := kaireon.experiment_bucket(experiment_key, customer_id);
        IF v_bucket < v_exp.holdout_percent THEN
            v_variant := 'holdout';
        ELSE
            v_cum := v_exp.holdout_percent;
            FOR c IN SELECT m.key, ch.traffic_pct FROM kaireon.experiment_challengers ch
                       JOIN kaireon.algorithm_models m ON m.tenant_id = ch.tenant_id AND m.id = ch.model_id
                      WHERE ch.tenant_id = v_exp.tenant_id AND ch.experiment_id = v_exp.id
                      ORDER BY m.key LOOP
                v_cum := v_cum + c.traffic_pct;
                IF v_bucket < v_cum THEN
                    v_variant := 'challenger:' || c.key;
                    EXIT;
                END IF;
            END LOOP;
            v_variant := coalesce(v_variant, 'champion');
        END IF;
        -- without store (a dry run): the variant the customer would get, not stored
        IF store THEN
            INSERT INTO kaireon.experiment_assignments AS a (tenant_id, customer_id, experiment_id, variant)
            VALUES (v_exp.tenant_id, customer_id, v_exp.id, v_variant)
            ON CONFLICT ON CONSTRAINT experiment_assignments_tenant_id_experiment_id_customer_id_key DO NOTHING
            RETURNING a.variant INTO v_variant;
            IF NOT FOUND THEN
                -- a concurrent call assigned the customer first: use its row
                SELECT a.variant INTO v_variant FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id
                   AND a.customer_id = assign_experiment.customer_id;
            END IF;
        END IF;
    END IF;
    variant := v_variant;
    IF v_variant = 'champion' THEN
        SELECT m.id, m.key INTO model_id, model_key FROM kaireon.algorithm_models m
         WHERE m.tenant_id = v_exp.tenant_id AND m.id = v_exp.champion_model_id;
    ELSIF v_variant LIKE 'challenger:%' THEN
        SELECT m.id, m.key INTO model_id, model_key FROM kaireon.algorithm_models m
         WHERE m.tenant_id = v_exp.tenant_id AND m.key = substr(v_variant, 12);
    END IF;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION kaireon.assign_experiment(text, text, text, boolean) IS
    'Sticky assignment of a customer to a running experiment: holdout (the first holdout_percent of FNV-1a buckets), a challenger (its traffic_pct, challengers by model key), else the champion; stored in experiment_assignments (unless store is false, as in a dry run), so later calls return the same variant. Holdout customers get the control treatment: no model (model_id NULL), recommend''s fallback scoring.';

CREATE FUNCTION kaireon.assign_variant(tenant_id text, experiment_key text, customer_id text,
                                       variants jsonb, ttl interval DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name      text;
    v_bucket    double precision;
    v_total     double precision := 0;
    v_cum       double precision := 0;
    r           record;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF variants IS NULL OR jsonb_typeof(variants) <> 'object' OR variants = '{}' THEN
        RAISE EXCEPTION 'variants must be a non-empty object of variant names and weights'
            USING ERRCODE = '22023', HINT = 'For example ''{"A": 50, "B": 50}''.';
    END IF;
    IF customer_id IS NULL OR customer_id = '' OR experiment_key IS NULL OR experiment_key = '' THEN
        RAISE EXCEPTION 'experiment_key and customer_id must not be empty' USING ERRCODE = '22023',
            HINT = 'Pass both.';
    END IF;
    FOR r IN SELECT key, value FROM jsonb_each(variants) LOOP
        IF jsonb_typeof(r.value) <> 'number' OR r.value::text::double precision < 0 THEN
            RAISE EXCEPTION 'variant "%" has weight %, not a non-negative number', r.key, r.value
                USING ERRCODE = '22023', HINT = 'Weights are non-negative numbers.';
        END IF;
        v_total := v_total + r.value::text::double precision;
    END LOOP;
    IF v_total <= 0 THEN
        RAISE EXCEPTION 'variant weights add up to 0' USING ERRCODE = '22023', HINT = 'Give some variant a weight.';
    END IF;
    SELECT a.variant_name INTO v_name FROM kaireon.variant_assignments a
     WHERE a.tenant_id = assign_variant.tenant_id AND a.experiment_key = assign_variant.experiment_key
       AND a.customer_id = assign_variant.customer_id AND (a.expires_at IS NULL OR a.expires_at > now());
    IF FOUND THEN
        RETURN v_name;
    END IF;
    v_bucket := kaireon.experiment_bucket(experiment_key, customer_id) * v_total / 100.0;
    FOR r IN SELECT key, value FROM jsonb_each(variants) ORDER BY key LOOP
        v_cum := v_cum + r.value::text::double precision;
        IF v_bucket < v_cum THEN
            v_name := r.key;
            EXIT;
        END IF;
    END LOOP;
    INSERT INTO kaireon.variant_assignments AS a (tenant_id, customer_id, experiment_key, variant_name, assigned_at, expires_at)
    VALUES (tenant_id, customer_id, experiment_key, v_name, now(), now() + ttl)
    ON CONFLICT ON CONSTRAINT variant_assignments_tenant_id_experiment_key_customer_id_key
    DO UPDATE SET variant_name = EXCLUDED.variant_name, assigned_at = EXCLUDED.assigned_at,
                  expires_at = EXCLUDED.expires_at
          WHERE a.expires_at IS NOT NULL AND a.expires_at <= now();
    SELECT a.variant_name INTO v_name FROM kaireon.variant_assignments a
     WHERE a.tenant_id = assign_variant.tenant_id AND a.experiment_key = assign_variant.experiment_key
       AND a.customer_id = assign_variant.customer_id;
    RETURN v_name;
END
$fn$;
COMMENT ON FUNCTION kaireon.assign_variant(text, text, text, jsonb, interval) IS
    'Sticky assignment of a customer to a named variant of an A/B test identified by key (variants: names and weights), by FNV-1a of experimentKey:customerId; stored in variant_assignments, expiring after ttl (then reassigned).';

CREATE FUNCTION kaireon.wilson_interval(successes double precision, trials double precision,
                                        z double precision DEFAULT 1.959963984540054)
    RETURNS double precision[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN CASE WHEN trials > 0 THEN ARRAY[
        ((successes / trials) + z * z / (2 * trials)
          - z * sqrt((successes / trials) * (1 - successes / trials) / trials + z * z / (4 * trials * trials)))
          / (1 + z * z / trials),
        ((successes / trials) + z * z / (2 * trials)
          + z * sqrt((successes / trials) * (1 - successes / trials) / trials + z * z / (4 * trials * trials)))
          / (1 + z * z / trials)] END;
COMMENT ON FUNCTION kaireon.wilson_interval(double precision, double precision, double precision) IS
    'Wilson score interval [low, high] of a proportion successes/trials (default 95%).';

CREATE FUNCTION kaireon.experiment_results(tenant_id text, experiment_key text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_variants  jsonb := '{}';
    v_tests     jsonb := '[]';
    v_result    jsonb;
    c           record;
    r           record;
    p_pool      double precision;
    se          double precision;
    z           double precision;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = experiment_results.tenant_id AND e.key = experiment_key;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    -- a variant's trials: its customers who had a positive or negative outcome after assignment;
    -- successes: those with a positive outcome
    FOR r IN
        WITH outcomes AS (
            SELECT a.variant, a.customer_id,
                   bool_or(coalesce(ot.classification, CASE WHEN ih.outcome_type_key IN ('click', 'conversion', 'share', 'save') THEN 'positive'
                                                            WHEN ih.outcome_type_key IN ('not_interested', 'opt_out', 'dismiss', 'complaint') THEN 'negative' END) = 'positive') AS converted,
                   bool_or(coalesce(ot.classification, CASE WHEN ih.outcome_type_key IN ('click', 'conversion', 'share', 'save') THEN 'positive'
                                                            WHEN ih.outcome_type_key IN ('not_interested', 'opt_out', 'dismiss', 'complaint') THEN 'negative' END) IN ('positive', 'negative')) AS reached
              FROM kaireon.experiment_assignments a
              JOIN kaireon.interaction_history ih
                ON ih.tenant_id = a.tenant_id AND ih.customer_id = a.customer_id
               AND ih.interaction_type = 'outcome' AND ih.occurred_at >= a.assigned_at
               AND (v_exp.ended_at IS NULL OR ih.occurred_at < v_exp.ended_at)
              LEFT JOIN kaireon.outcome_types ot
                ON ot.tenant_id = ih.tenant_id AND ot.key = ih.outcome_type_key AND ot.deleted_at IS NULL
             WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id
             GROUP BY a.variant, a.customer_id)
        SELECT v.variant,
               (SELECT count(*) FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id AND a.variant = v.variant) AS assigned,
               count(*) FILTER (WHERE o.reached) AS trials,
               count(*) FILTER (WHERE o.reached AND o.converted) AS successes
          FROM (SELECT DISTINCT a.variant FROM kaireon.experiment_assignments a
                 WHERE a.tenant_id = v_exp.tenant_id AND a.experiment_id = v_exp.id) v
          LEFT JOIN outcomes o ON o.variant = v.variant
         GROUP BY v.variant
    LOOP
        v_variants := v_variants || jsonb_build_object(r.variant, jsonb_build_object(
            'assigned', r.assigned, 'trials', r.trials, 'successes', r.successes,
            'rate', CASE WHEN r.trials > 0 THEN r.successes::double precision / r.trials END,
            'wilson95', to_jsonb(kaireon.wilson_interval(r.successes, r.trials))));
    END LOOP;
    -- two-proportion z-test of each challenger against the champion
    FOR c IN SELECT key AS variant, value FROM jsonb_each(v_variants) WHERE key LIKE 'challenger:%' ORDER BY key LOOP
        IF v_variants ? 'champion' AND (c.value->>'trials')::double precision > 0
           AND (v_variants->'champion'->>'trials')::double precision > 0 THEN
            p_pool := ((c.value->>'successes')::double precision + (v_variants->'champion'->>'successes')::double precision)
                      / ((c.value->>'trials')::double precision + (v_variants->'champion'->>'trials')::double precision);
            se := sqrt(p_pool * (1 - p_pool) * (1 / (c.value->>'trials')::double precision
                                               + 1 / (v_variants->'champion'->>'trials')::double precision));
            z := CASE WHEN se > 0 THEN ((c.value->>'rate')::double precision - (v_variants->'champion'->>'rate')::double precision) / se ELSE 0 END;
            v_tests := v_tests || jsonb_build_object(
                'challenger', substr(c.variant, 12), 'z', z,
                'pValue', 2 * (1 - kaireon.normal_cdf(abs(z))),
                'confidence', kaireon.normal_cdf(z),
                'lift', (c.value->>'rate')::double precision - (v_variants->'champion'->>'rate')::double precision);
        END IF;
    END LOOP;
    v_result := jsonb_build_object('variants', v_variants, 'tests', v_tests, 'computedAt', now());
    UPDATE kaireon.experiments e SET results = v_result WHERE e.tenant_id = v_exp.tenant_id AND e.id = v_exp.id;
    RETURN v_result;
END
$fn$;
COMMENT ON FUNCTION kaireon.experiment_results(text, text) IS
    'Per variant: customers assigned, customers with an outcome (trials), with a positive one (successes), rate and Wilson 95% interval; per challenger: two-proportion z-test against the champion (z, two-sided pValue, one-sided confidence that it is better, lift). Stored in experiments.results.';

CREATE FUNCTION kaireon.evaluate_experiment(tenant_id text, experiment_key text)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_exp       kaireon.experiments;
    v_results   jsonb;
    v_best      jsonb;
    t           jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    SELECT * INTO v_exp FROM kaireon.experiments e
     WHERE e.tenant_id = evaluate_experiment.tenant_id AND e.key = experiment_key FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no experiment "%"', tenant_id, experiment_key
            USING ERRCODE = '42704', HINT = 'Check the experiment key.';
    END IF;
    v_results := kaireon.experiment_results(tenant_id, experiment_key);
    IF NOT v_exp.auto_promote OR v_exp.status <> 'running' THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', 'auto-promotion is off or the experiment is not running', 'results', v_results);
    END IF;
    IF v_exp.started_at IS NULL OR v_exp.started_at + make_interval(days => v_exp.auto_promote_days) > now() THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', format('the experiment has not run %s days yet', v_exp.auto_promote_days), 'results', v_results);
    END IF;
    FOR t IN SELECT value FROM jsonb_array_elements(v_results->'tests') LOOP
        IF (t->>'lift')::double precision > 0 AND (t->>'confidence')::double precision >= v_exp.auto_promote_threshold
           AND (v_best IS NULL OR (t->>'confidence')::double precision > (v_best->>'confidence')::double precision) THEN
            v_best := t;
        END IF;
    END LOOP;
    IF v_best IS NULL THEN
        RETURN jsonb_build_object('promoted', NULL, 'reason', format('no challenger beats the champion with confidence >= %s', v_exp.auto_promote_threshold), 'results', v_results);
    END IF;
    IF kaireon.four_eyes_required(tenant_id) THEN
        -- the promotion is filed for approval (once; by kaireon.user_id, when set), and the
        -- experiment runs on until it is applied, which completes it
        IF EXISTS (SELECT 1 FROM kaireon.approval_requests r JOIN kaireon.algorithm_models m
                     ON m.tenant_id = r.tenant_id AND m.id = r.entity_id
                    WHERE r.tenant_id = v_exp.tenant_id AND r.action = 'model.promote' AND r.status = 'pending'
                      AND m.key = v_best->>'challenger') THEN
            RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; its promotion awaits approval (four-eyes)',
                                      'test', v_best, 'results', v_results);
        END IF;
        IF nullif(current_setting('kaireon.user_id', true), '') IS NULL THEN
            RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; with four-eyes on, set kaireon.user_id to file its promotion',
                                      'test', v_best, 'results', v_results);
        END IF;
        PERFORM kaireon.transition_model(tenant_id, v_best->>'challenger', 'champion');
        RETURN jsonb_build_object('promoted', NULL, 'reason', 'challenger beat the champion; its promotion awaits approval (four-eyes)',
                                  'test', v_best, 'results', v_results);
    END IF;
    PERFORM kaireon.transition_model(tenant_id, v_best->>'challenger', 'champion');
    UPDATE kaireon.experiments e SET status = 'completed', ended_at = now(),
           champion_model_id = (SELECT m.id FROM kaireon.algorithm_models m WHERE m.tenant_id = v_exp.tenant_id AND m.key = v_best->>'challenger')
     WHERE e.tenant_id = v_exp.tenant_id AND e.id = v_exp.id;
    RETURN jsonb_build_object('promoted', v_best->>'challenger', 'reason', 'challenger beat the champion', 'test', v_best, 'results', v_results);
END
$fn$;
COMMENT ON FUNCTION kaireon.evaluate_experiment(text, text) IS
    'Computes the results and, when auto_promote is on, the experiment has run auto_promote_days and a challenger beats the champion with one-sided confidence >= auto_promote_threshold, promotes the best one to champion (archiving the old champion) and completes the experiment.';
-- kaireon install script, part 40: operator and infrastructure tables (users and their
-- logins, API keys, OAuth clients, tenant settings, outbox, channel deliveries, alerts,
-- batch runs, triggers, simulations, attribution, geofences, regions) and journeys.
-- Conventions are in docs/schema.md; 99_finalize.sql adds the updated_at triggers, the
-- tenant row level security, the soft-delete indexes and the pg_dump registration.
-- The cross-tenant tables (users, accounts, sessions, verification_tokens) and the
-- user-scoped policy of webauthn_credentials get their row level security here.

-------------------------------------------------------------------------------
-- Operator accounts (cross-tenant)
-------------------------------------------------------------------------------

-- tenant_id is optional: platform admins belong to no tenant.
CREATE TABLE kaireon.users (
    tenant_id               text REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
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
CREATE UNIQUE INDEX users_email_key ON kaireon.users (lower(email));
CREATE INDEX users_tenant_id_idx ON kaireon.users (tenant_id);
COMMENT ON TABLE kaireon.users IS
    'User: NextAuth v5 operator account. Cross-tenant: tenant_id is NULL for platform admins. Email is unique case-insensitively; password_hash holds only a hash; MFA secret and backup codes for TOTP.';

CREATE TABLE kaireon.accounts (
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
    PRIMARY KEY (id),
    UNIQUE (provider, provider_account_id),
    FOREIGN KEY (user_id) REFERENCES kaireon.users (id) ON DELETE CASCADE
);
CREATE INDEX accounts_user_id_idx ON kaireon.accounts (user_id);
COMMENT ON TABLE kaireon.accounts IS
    'Account: NextAuth OAuth account linked to a user (provider, provider account id, OAuth tokens). Cross-tenant, scoped by its user.';

CREATE TABLE kaireon.sessions (
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    session_token           text NOT NULL,
    user_id                 text NOT NULL,
    expires                 timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id),
    UNIQUE (session_token),
    FOREIGN KEY (user_id) REFERENCES kaireon.users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_id_idx ON kaireon.sessions (user_id);
COMMENT ON TABLE kaireon.sessions IS
    'Session: NextAuth database session of a user, found by session_token until expires. Cross-tenant, scoped by its user.';

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
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id)
);
COMMENT ON TABLE kaireon.tenant_settings IS
    'TenantSettings: per-tenant operational toggles, one row per tenant (ML worker config, AI analyzer settings, flow IR, four-eyes approval, decision trace sampling, realtime arbitration).';

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
        ON DELETE SET NULL (decision_flow_id),
    FOREIGN KEY (tenant_id, segment_id) REFERENCES kaireon.segments (tenant_id, id)
        ON DELETE SET NULL (segment_id)
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
        ON DELETE SET NULL (segment_id)
);
CREATE INDEX simulation_runs_tenant_id_segment_id_idx ON kaireon.simulation_runs (tenant_id, segment_id);
COMMENT ON TABLE kaireon.simulation_runs IS
    'SimulationRun: what-if run of a decision flow (by key) over a sample of a segment, with its configuration and aggregated results.';

-- Append-only: results are recomputed into new rows.
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
    'AttributionResult: credit of one conversion of a customer spread over its touchpoints by an attribution model.';

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
COMMENT ON TABLE kaireon.journey_enrollments IS
    'JourneyEnrollment: one pass of a customer through a journey: current step, status, step history, and wait_until while the journey waits. A customer may re-enter.';

-------------------------------------------------------------------------------
-- User references from earlier files (users exists only now)
-------------------------------------------------------------------------------

ALTER TABLE kaireon.custom_role_assignments
    ADD FOREIGN KEY (user_id) REFERENCES kaireon.users (id) ON DELETE CASCADE;
CREATE INDEX ON kaireon.custom_role_assignments (user_id);
ALTER TABLE kaireon.webauthn_credentials
    ADD FOREIGN KEY (user_id) REFERENCES kaireon.users (id) ON DELETE CASCADE;

-------------------------------------------------------------------------------
-- Row level security of the cross-tenant tables. A user is visible in its tenant;
-- accounts, sessions and WebAuthn credentials through their user. Users without a
-- tenant (platform admins) and verification tokens are visible only to superusers and
-- BYPASSRLS roles.
-------------------------------------------------------------------------------

ALTER TABLE kaireon.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.users
    USING (tenant_id = kaireon.current_tenant_id())
    WITH CHECK (tenant_id = kaireon.current_tenant_id());

ALTER TABLE kaireon.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.accounts
    USING (EXISTS (SELECT 1 FROM kaireon.users u
                   WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()))
    WITH CHECK (EXISTS (SELECT 1 FROM kaireon.users u
                        WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()));

ALTER TABLE kaireon.sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.sessions
    USING (EXISTS (SELECT 1 FROM kaireon.users u
                   WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()))
    WITH CHECK (EXISTS (SELECT 1 FROM kaireon.users u
                        WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()));

ALTER TABLE kaireon.webauthn_credentials ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.webauthn_credentials
    USING (EXISTS (SELECT 1 FROM kaireon.users u
                   WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()))
    WITH CHECK (EXISTS (SELECT 1 FROM kaireon.users u
                        WHERE u.id = user_id AND u.tenant_id = kaireon.current_tenant_id()));

-- No policy: only superusers and BYPASSRLS roles see verification tokens.
ALTER TABLE kaireon.verification_tokens ENABLE ROW LEVEL SECURITY;
-- kaireon install script, part 50: AI assistant and document import, data pipelines,
-- content, reports, behavioral metrics and summary definitions.
-- Conventions are in docs/schema.md ("Conventions"); 99_finalize.sql adds the updated_at
-- triggers, row level security, soft-delete indexes and pg_dump registration.
-- Runs after 00_base (tenants), 10_decisioning (offers, channels, creatives),
-- 20_customer (data_schemas, interaction_summaries) and 40_operator (users).

-- ---------------------------------------------------------------------------------------
-- AI & imports
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.conversations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    user_id                 text NOT NULL REFERENCES kaireon.users (id) ON DELETE CASCADE,
    title                   text NOT NULL DEFAULT 'New conversation',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ON kaireon.conversations (tenant_id, user_id);
-- users is cross-tenant: deleting a user looks its conversations up by user_id alone.
CREATE INDEX ON kaireon.conversations (user_id);
COMMENT ON TABLE kaireon.conversations IS
    'Conversation: one AI assistant conversation of a user within a tenant; holds the conversation_messages.';

CREATE TABLE kaireon.conversation_messages (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    conversation_id         text NOT NULL,
    role                    text NOT NULL
                            CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content                 text NOT NULL DEFAULT '',
    tool_invocations        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tool_invocations) = 'array'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES kaireon.conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.conversation_messages (tenant_id, conversation_id, created_at);
COMMENT ON TABLE kaireon.conversation_messages IS
    'ConversationMessage: single message of a conversation (append-only); tool_invocations is the tool-call/result trace.';

CREATE TABLE kaireon.ai_recommendations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    type                    text NOT NULL
                            CHECK (type IN ('policy', 'rule', 'segment', 'content')),
    title                   text NOT NULL,
    description             text,
    payload                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    confidence              double precision NOT NULL DEFAULT 0
                            CHECK (confidence >= 0 AND confidence <= 1),
    source                  text NOT NULL DEFAULT 'llm'
                            CHECK (source IN ('llm', 'ml_worker')),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'applied', 'dismissed', 'expired')),
    applied_at              timestamptz,
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX ON kaireon.ai_recommendations (tenant_id, status, created_at);
COMMENT ON TABLE kaireon.ai_recommendations IS
    'AiRecommendation: pending AI suggestion (policy, rule, segment or content) that can be applied as an entity; payload is the proposed entity.';

CREATE TABLE kaireon.customer_segments_ai (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    filter_rules            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(filter_rules) = 'array'),
    schema_id               text,
    size                    bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    percentage              double precision NOT NULL DEFAULT 0
                            CHECK (percentage >= 0 AND percentage <= 100),
    characteristics         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(characteristics) = 'object'),
    suggested_use           text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, schema_id)
        REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE SET NULL (schema_id)
);
CREATE INDEX ON kaireon.customer_segments_ai (tenant_id, schema_id);
COMMENT ON TABLE kaireon.customer_segments_ai IS
    'CustomerSegmentAi: AI-generated customer segment proposal over a data schema, separate from the user-defined segments.';

CREATE TABLE kaireon.creative_performance (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    creative_id             text NOT NULL,
    channel_id              text NOT NULL,
    offer_id                text NOT NULL,
    impressions             bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    clicks                  bigint NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    conversions             bigint NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    revenue                 numeric NOT NULL DEFAULT 0,
    period_start            timestamptz NOT NULL,
    period_end              timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, creative_id, channel_id, period_start, period_end),
    CHECK (period_end > period_start),
    FOREIGN KEY (tenant_id, creative_id)
        REFERENCES kaireon.creatives (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, offer_id)
        REFERENCES kaireon.offers (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, channel_id)
        REFERENCES kaireon.channels (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.creative_performance (tenant_id, offer_id);
CREATE INDEX ON kaireon.creative_performance (tenant_id, channel_id);
COMMENT ON TABLE kaireon.creative_performance IS
    'CreativePerformance: pre-aggregated creative-level performance over [period_start, period_end) for AI content analysis.';

CREATE TABLE kaireon.ai_attachments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    conversation_id         text,
    original_filename       text NOT NULL,
    mime_type               text NOT NULL,
    size_bytes              bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    sha256                  text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key             text NOT NULL,
    page_count              integer NOT NULL DEFAULT 0 CHECK (page_count >= 0),
    tokens_used             bigint NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    estimated_tokens        bigint NOT NULL DEFAULT 0 CHECK (estimated_tokens >= 0),
    status                  text NOT NULL DEFAULT 'uploaded'
                            CHECK (status IN ('uploaded', 'processing', 'extracted', 'failed', 'applied')),
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, sha256),
    FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES kaireon.conversations (tenant_id, id) ON DELETE SET NULL (conversation_id)
);
CREATE INDEX ON kaireon.ai_attachments (tenant_id, conversation_id);
COMMENT ON TABLE kaireon.ai_attachments IS
    'AiAttachment: uploaded document (PDF/PPTX) for AI document import, deduplicated per tenant by sha256 (lowercase hex) of its bytes.';

CREATE TABLE kaireon.ai_import_proposals (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    attachment_id           text NOT NULL,
    entity_type             text NOT NULL,
    extracted_name          text NOT NULL,
    extracted_fields        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(extracted_fields) = 'object'),
    source_page_number      integer CHECK (source_page_number >= 1),
    source_quote            text,
    dedupe_match_id         text,
    dedupe_strategy         text NOT NULL DEFAULT 'create'
                            CHECK (dedupe_strategy IN ('create', 'merge', 'skip')),
    verdict                 text NOT NULL DEFAULT 'pending'
                            CHECK (verdict IN ('pending', 'accepted', 'rejected', 'skipped')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, attachment_id)
        REFERENCES kaireon.ai_attachments (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.ai_import_proposals (tenant_id, attachment_id);
COMMENT ON TABLE kaireon.ai_import_proposals IS
    'AiImportProposal: typed entity proposal extracted from an attachment, with page citation; dedupe_match_id names the existing entity of entity_type it matches.';

CREATE TABLE kaireon.ai_import_applies (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    attachment_id           text NOT NULL,
    conversation_id         text,
    applied_by_id           text,
    created_entity_ids      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(created_entity_ids) = 'array'),
    merged_entity_ids       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(merged_entity_ids) = 'array'),
    skipped_proposal_ids    jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skipped_proposal_ids) = 'array'),
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'applied', 'failed', 'reverted')),
    error                   text,
    reverted_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, attachment_id)
        REFERENCES kaireon.ai_attachments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, conversation_id)
        REFERENCES kaireon.conversations (tenant_id, id) ON DELETE SET NULL (conversation_id)
);
CREATE INDEX ON kaireon.ai_import_applies (tenant_id, attachment_id);
CREATE INDEX ON kaireon.ai_import_applies (tenant_id, conversation_id);
COMMENT ON TABLE kaireon.ai_import_applies IS
    'AiImportApply: atomic apply ledger of an AI import: what was created, merged and skipped; soft revert via reverted_at. applied_by_id is the user id, kept without a foreign key as an audit value.';

CREATE TABLE kaireon.ai_import_token_ledgers (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    year_month              text NOT NULL CHECK (year_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    tokens_used             bigint NOT NULL DEFAULT 0 CHECK (tokens_used >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, year_month)
);
COMMENT ON TABLE kaireon.ai_import_token_ledgers IS
    'AiImportTokenLedger: per-tenant, per-month (YYYY-MM) LLM token spend of AI document import.';

CREATE TABLE kaireon.ai_import_skip_digests (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    digest                  text NOT NULL,
    entity_type             text NOT NULL,
    extracted_name          text NOT NULL,
    skip_count              integer NOT NULL DEFAULT 1 CHECK (skip_count >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, digest)
);
COMMENT ON TABLE kaireon.ai_import_skip_digests IS
    'AiImportSkipDigest: skip tally of proposals the operator dismissed (by digest of entity type and name), so re-imports do not re-surface them.';

CREATE TABLE kaireon.negotiation_sessions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    customer_id             text NOT NULL,
    offer_id                text NOT NULL,
    state                   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(state) = 'object'),
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'accepted', 'rejected', 'expired')),
    expires_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, offer_id)
        REFERENCES kaireon.offers (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.negotiation_sessions (tenant_id, offer_id);
CREATE INDEX ON kaireon.negotiation_sessions (tenant_id, customer_id, status);
COMMENT ON TABLE kaireon.negotiation_sessions IS
    'NegotiationSession: multi-turn offer negotiation state of a customer; state is the serialized multi-turn session.';

-- ---------------------------------------------------------------------------------------
-- Flow & pipeline (data_schemas, schema_fields and schema_joins are in 20_customer.sql)
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.connectors (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    type                    text NOT NULL CHECK (type ~ '^[a-z][a-z0-9_]*$'),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    auth_method             text NOT NULL DEFAULT 'none'
                            CHECK (auth_method IN ('none', 'api_key', 'basic', 'oauth2', 'iam_role',
                                                   'service_account', 'connection_string', 'ssh_key')),
    auth_config             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(auth_config) = 'object'),
    status                  text NOT NULL DEFAULT 'untested'
                            CHECK (status IN ('active', 'inactive', 'error', 'untested')),
    last_tested_at          timestamptz,
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
COMMENT ON TABLE kaireon.connectors IS
    'Connector: external data source connection (S3, Snowflake, Kafka, Salesforce, ...); type is one of the registered connector types. Secrets in auth_config are stored encrypted by the application.';

CREATE TABLE kaireon.data_sources (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    connector_key           text NOT NULL,
    source_config           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(source_config) = 'object'),
    file_format             text
                            CHECK (file_format IN ('csv', 'json', 'jsonl', 'parquet', 'avro', 'xml', 'tsv')),
    sync_mode               text NOT NULL DEFAULT 'full_refresh'
                            CHECK (sync_mode IN ('full_refresh', 'incremental_append', 'incremental_dedupe', 'cdc')),
    schedule                text,
    schema_key              text,
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'inactive', 'error')),
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.data_sources IS
    'DataSource: logical source bound to a connector (connector_key) and a data schema (schema_key); sync_mode and schedule (cron expression) drive the pipeline runner.';

CREATE TABLE kaireon.pipelines (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    description             text,
    connector_id            text,
    schema_id               text,
    ir_version              text NOT NULL DEFAULT '1.0' CHECK (ir_version = '1.0'),
    execution_config        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(execution_config) = 'object'),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'active', 'paused')),
    last_run_status         text
                            CHECK (last_run_status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    last_run_at             timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, connector_id)
        REFERENCES kaireon.connectors (tenant_id, id) ON DELETE SET NULL (connector_id),
    FOREIGN KEY (tenant_id, schema_id)
        REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE SET NULL (schema_id)
);
CREATE INDEX ON kaireon.pipelines (tenant_id, connector_id);
CREATE INDEX ON kaireon.pipelines (tenant_id, schema_id);
COMMENT ON TABLE kaireon.pipelines IS
    'Pipeline: IR-native data pipeline from a connector into a data schema; the DAG is the latest pipeline_ir_versions.ir.';

CREATE TABLE kaireon.pipeline_ir_versions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    pipeline_id             text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    ir                      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(ir) = 'object'),
    authored_by             text NOT NULL,
    comment                 text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, pipeline_id, version),
    FOREIGN KEY (tenant_id, pipeline_id)
        REFERENCES kaireon.pipelines (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.pipeline_ir_versions IS
    'PipelineIrVersion: immutable version of a pipeline''s IR document (append-only); version increases per pipeline; authored_by is a user id or ''ai''.';

CREATE TABLE kaireon.pipeline_runs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    pipeline_id             text NOT NULL,
    status                  text NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    rows_processed          bigint NOT NULL DEFAULT 0 CHECK (rows_processed >= 0),
    rows_total              bigint NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
    rows_failed             bigint NOT NULL DEFAULT 0 CHECK (rows_failed >= 0),
    validation_errors       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(validation_errors) = 'array'),
    load_strategy           text NOT NULL DEFAULT 'append'
                            CHECK (load_strategy IN ('append', 'truncate', 'upsert', 'blue_green')),
    partitions              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(partitions) = 'array'),
    last_processed_row      bigint NOT NULL DEFAULT 0 CHECK (last_processed_row >= 0),
    error                   text,
    started_at              timestamptz,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (completed_at >= started_at),
    FOREIGN KEY (tenant_id, pipeline_id)
        REFERENCES kaireon.pipelines (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.pipeline_runs (tenant_id, pipeline_id, created_at);
COMMENT ON TABLE kaireon.pipeline_runs IS
    'PipelineRun: one pipeline execution with row counts and validation errors; last_processed_row is the resume checkpoint.';

-- ---------------------------------------------------------------------------------------
-- Content
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.templates (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    description             text,
    category                text NOT NULL
                            CHECK (category IN ('email', 'push', 'sms', 'blueprint', 'offer')),
    type                    text,
    content                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(content) = 'object'),
    variables               jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(variables) = 'array'),
    is_system               boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
COMMENT ON TABLE kaireon.templates IS
    'Template: reusable email, push, SMS, blueprint or offer template; is_system marks shipped seeds.';

CREATE TABLE kaireon.content_sources (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    provider                text NOT NULL
                            CHECK (provider IN ('wordpress', 'contentful', 'strapi', 'sanity')),
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    sync_mode               text NOT NULL DEFAULT 'polling'
                            CHECK (sync_mode IN ('webhook', 'polling')),
    auto_publish            boolean NOT NULL DEFAULT false,
    mappings                jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(mappings) = 'object'),
    webhook_secret          text,
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'inactive', 'error')),
    last_synced_at          timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.content_sources IS
    'ContentSource: external CMS connection pulling content into content_items. webhook_secret is stored encrypted or hashed by the application, never in clear.';

CREATE TABLE kaireon.content_items (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    channel_type            text NOT NULL,
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'in_review', 'approved', 'published', 'archived')),
    content                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(content) = 'object'),
    blocks                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(blocks) = 'array'),
    personalization         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(personalization) = 'object'),
    parent_template_id      text,
    source_type             text NOT NULL DEFAULT 'internal'
                            CHECK (source_type IN ('internal', 'wordpress', 'contentful', 'strapi', 'sanity')),
    content_source_id       text,
    external_id             text,
    version                 integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    published_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, content_source_id, external_id),
    CHECK (parent_template_id <> id),
    FOREIGN KEY (tenant_id, parent_template_id)
        REFERENCES kaireon.content_items (tenant_id, id) ON DELETE SET NULL (parent_template_id),
    FOREIGN KEY (tenant_id, content_source_id)
        REFERENCES kaireon.content_sources (tenant_id, id) ON DELETE SET NULL (content_source_id)
);
CREATE INDEX ON kaireon.content_items (tenant_id, parent_template_id);
COMMENT ON TABLE kaireon.content_items IS
    'ContentItem: channel-typed content payload, optionally inheriting from a parent template item; CMS-synced (content_source_id, external_id) when source_type is not internal.';

CREATE TABLE kaireon.content_versions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    content_item_id         text NOT NULL,
    version                 integer NOT NULL CHECK (version >= 1),
    content                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(content) = 'object'),
    blocks                  jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(blocks) = 'array'),
    personalization         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(personalization) = 'object'),
    changed_by              text,
    change_note             text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, content_item_id, version),
    FOREIGN KEY (tenant_id, content_item_id)
        REFERENCES kaireon.content_items (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.content_versions IS
    'ContentVersion: immutable snapshot of a content item at one version (append-only); changed_by is the user id.';

CREATE TABLE kaireon.treatments (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    channel                 text NOT NULL,
    subject                 text,
    headline                text,
    body                    text,
    config                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    status                  text NOT NULL DEFAULT 'draft'
                            CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    impressions             bigint NOT NULL DEFAULT 0 CHECK (impressions >= 0),
    clicks                  bigint NOT NULL DEFAULT 0 CHECK (clicks >= 0),
    conversions             bigint NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.treatments IS
    'Treatment: AI-generated content entity (subject, headline, body for a channel) with its own counters; separate from creatives.';

-- ---------------------------------------------------------------------------------------
-- Reports
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.report_templates (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    name                    text NOT NULL,
    description             text,
    data_sources            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(data_sources) = 'array'),
    sections                jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sections) = 'array'),
    formats                 jsonb NOT NULL DEFAULT '["pdf"]' CHECK (jsonb_typeof(formats) = 'array'),
    narrative               jsonb NOT NULL DEFAULT '{"enabled": false}'
                            CHECK (jsonb_typeof(narrative) = 'object' AND narrative ? 'enabled'
                                   AND jsonb_typeof(narrative -> 'enabled') = 'boolean'),
    filters                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(filters) = 'object'),
    enabled                 boolean NOT NULL DEFAULT true,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE kaireon.report_templates IS
    'ReportTemplate: composable report definition (data sources, sections, output formats, optional LLM narrative {enabled, prompt, modelOverride}), reusable across schedules.';

CREATE TABLE kaireon.report_schedules (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    template_id             text NOT NULL,
    cron_expression         text NOT NULL,
    timezone                text NOT NULL DEFAULT 'UTC',
    destinations            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(destinations) = 'array'),
    enabled                 boolean NOT NULL DEFAULT true,
    last_run_at             timestamptz,
    next_run_at             timestamptz,
    last_status             text
                            CHECK (last_status IN ('success', 'failed', 'partial')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, template_id)
        REFERENCES kaireon.report_templates (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.report_schedules (tenant_id, template_id);
-- The scheduler looks up due schedules across tenants.
CREATE INDEX ON kaireon.report_schedules (next_run_at) WHERE enabled;
COMMENT ON TABLE kaireon.report_schedules IS
    'ReportSchedule: cron schedule (in timezone) binding a report template to delivery destinations.';

CREATE TABLE kaireon.report_runs (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    template_id             text NOT NULL,
    schedule_id             text,
    triggered_by            text NOT NULL DEFAULT 'cron'
                            CHECK (triggered_by IN ('cron', 'manual', 'api')),
    status                  text NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'completed', 'failed')),
    sections_data           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(sections_data) = 'array'),
    narrative_output        text,
    artifact_payloads       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(artifact_payloads) = 'array'),
    delivery_results        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(delivery_results) = 'array'),
    error                   text,
    started_at              timestamptz NOT NULL DEFAULT now(),
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (completed_at >= started_at),
    FOREIGN KEY (tenant_id, template_id)
        REFERENCES kaireon.report_templates (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, schedule_id)
        REFERENCES kaireon.report_schedules (tenant_id, id) ON DELETE SET NULL (schedule_id)
);
CREATE INDEX ON kaireon.report_runs (tenant_id, template_id, created_at);
CREATE INDEX ON kaireon.report_runs (tenant_id, schedule_id);
COMMENT ON TABLE kaireon.report_runs IS
    'ReportRun: one report execution with its section data, narrative, inlined artifact payloads and delivery results.';

-- ---------------------------------------------------------------------------------------
-- Behavioral metrics & summaries
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.metric_definitions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    aggregate_function      text NOT NULL DEFAULT 'count'
                            CHECK (aggregate_function IN ('count', 'sum', 'avg', 'min', 'max', 'ratio')),
    source_field            text,
    window_days             integer NOT NULL DEFAULT 30 CHECK (window_days BETWEEN 1 AND 365),
    group_by_dimensions     jsonb NOT NULL DEFAULT '[]'
                            CHECK (jsonb_typeof(group_by_dimensions) = 'array'
                                   AND jsonb_array_length(group_by_dimensions) <= 2),
    filter_conditions       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(filter_conditions) = 'array'),
    sql_filter              text CHECK (length(sql_filter) <= 500),
    compute_mode            text NOT NULL DEFAULT 'batch'
                            CHECK (compute_mode IN ('realtime', 'batch')),
    batch_interval_min      integer NOT NULL DEFAULT 60 CHECK (batch_interval_min > 0),
    status                  text NOT NULL DEFAULT 'active'
                            CHECK (status IN ('active', 'inactive')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key)
);
COMMENT ON TABLE kaireon.metric_definitions IS
    'MetricDefinition: user-defined behavioral metric over a window of up to 365 days, grouped by at most 2 dimensions; compiled into a query against interaction_summaries.';

CREATE TABLE kaireon.metric_values (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    metric_id               text NOT NULL,
    customer_id             text NOT NULL,
    dimension_key           text NOT NULL DEFAULT '',
    value                   double precision NOT NULL DEFAULT 0,
    computed_at             timestamptz NOT NULL DEFAULT now(),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, metric_id, customer_id, dimension_key),
    FOREIGN KEY (tenant_id, metric_id)
        REFERENCES kaireon.metric_definitions (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.metric_values (tenant_id, customer_id);
COMMENT ON TABLE kaireon.metric_values IS
    'MetricValue: materialized value of a metric per customer and dimension key ('''' when ungrouped).';

CREATE TABLE kaireon.summary_definitions (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    key                     text NOT NULL,
    name                    text NOT NULL,
    description             text,
    dimensions              jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(dimensions) = 'array'),
    aggregates              jsonb NOT NULL DEFAULT '["count"]' CHECK (jsonb_typeof(aggregates) = 'array'),
    windows                 jsonb NOT NULL DEFAULT '["7d", "30d"]' CHECK (jsonb_typeof(windows) = 'array'),
    is_system               boolean NOT NULL DEFAULT false,
    deleted_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
-- Soft-deleted rows free their key and name, as for the soft-delete tables of 10_decisioning.
CREATE UNIQUE INDEX summary_definitions_tenant_key_key
    ON kaireon.summary_definitions (tenant_id, key) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX summary_definitions_tenant_name_key
    ON kaireon.summary_definitions (tenant_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.summary_definitions IS
    'SummaryDefinition: pluggable shape (dimensions, aggregates, windows) of interaction_summaries rollups; is_system rows are undeletable. Soft-deleted via deleted_at.';

-- ---------------------------------------------------------------------------------------
-- References from earlier parts into this one
-- ---------------------------------------------------------------------------------------

ALTER TABLE kaireon.creatives ADD FOREIGN KEY (tenant_id, content_item_id)
    REFERENCES kaireon.content_items (tenant_id, id) ON DELETE SET NULL (content_item_id);
CREATE INDEX ON kaireon.creatives (tenant_id, content_item_id);

ALTER TABLE kaireon.interaction_summaries ADD FOREIGN KEY (tenant_id, definition_id)
    REFERENCES kaireon.summary_definitions (tenant_id, id) ON DELETE CASCADE;
-- kaireon install script, part 60: customer data schemas and segments as real tables and views.
--
-- A tenant's data lives in its own schema kaireon_t_<tenant slug>: publish_data_schema creates
-- ds_<name> there from schema_fields (and adds columns for fields added later), publish_segment
-- compiles a segment's filters and joins into the view seg_<id prefix>. Every identifier is
-- validated against a strict pattern and quoted with format('%I'); every value is quoted with
-- format('%L') and cast to the column's type. See docs/data-schemas.md.

-- Privileges granted through kaireon.grant_*_role, re-applied to each tenant data schema.
CREATE TABLE kaireon.role_grants (
    role_name               name NOT NULL PRIMARY KEY,
    access                  text NOT NULL CHECK (access IN ('app', 'readonly', 'admin')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.role_grants IS
    'kaireon''s own table: roles given access with kaireon.grant_app_role / grant_readonly_role / grant_admin_role; publishing a data schema grants them the same access to the tenant''s ds_ tables and segment views. Written only by those functions: row level security with no policy hides it from every role but superusers and BYPASSRLS roles.';
ALTER TABLE kaireon.role_grants ENABLE ROW LEVEL SECURITY;

-- Which tenant owns each tenant data schema. No foreign key to tenants: the claim outlives a
-- deleted tenant, so a later tenant that reuses the slug cannot take over its tables.
CREATE TABLE kaireon.tenant_schemas (
    schema_name             name NOT NULL PRIMARY KEY,
    owner_tenant_id         text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.tenant_schemas IS
    'kaireon''s own table: the tenant that owns each kaireon_t_<slug> schema; kept after the tenant is deleted, so a reused slug cannot reach the old tables. Hidden from every role but superusers and BYPASSRLS roles.';
ALTER TABLE kaireon.tenant_schemas ENABLE ROW LEVEL SECURITY;

-- A tenant's slug names its data schema, so it cannot change once set.
CREATE FUNCTION kaireon._tenant_slug_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NEW.slug IS DISTINCT FROM OLD.slug THEN
        RAISE EXCEPTION 'the slug of tenant "%" cannot change (from "%" to "%")', OLD.id, OLD.slug, NEW.slug
            USING ERRCODE = '55000', HINT = 'The slug names the tenant''s data schema kaireon_t_<slug>; create a new tenant instead.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._tenant_slug_immutable() IS
    'Internal: BEFORE UPDATE trigger on tenants refusing a change of slug.';
CREATE TRIGGER slug_immutable BEFORE UPDATE OF slug ON kaireon.tenants
    FOR EACH ROW EXECUTE FUNCTION kaireon._tenant_slug_immutable();

CREATE FUNCTION kaireon._check_identifier(kind text, ident text, max_len integer DEFAULT 40)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF ident IS NULL OR ident !~ '^[a-z][a-z0-9_]*$' OR length(ident) > max_len THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, left(coalesce(ident, '(null)'), 100)
            USING ERRCODE = '42602',
                  HINT = format('A %s name starts with a lower-case letter, holds only a-z, 0-9 and _, and is at most %s characters.',
                                kind, max_len);
    END IF;
    RETURN ident;
END
$fn$;
COMMENT ON FUNCTION kaireon._check_identifier(text, text, integer) IS
    'Internal: returns ident if it is a safe identifier (^[a-z][a-z0-9_]*$, at most max_len characters), else raises 42602 naming it.';

CREATE FUNCTION kaireon._tenant_data_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_slug      text;
BEGIN
    SELECT slug INTO v_slug FROM kaireon.tenants WHERE id = p_tenant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant_id
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.tenants first.';
    END IF;
    RETURN 'kaireon_t_' || kaireon._check_identifier('tenant slug', v_slug);
END
$fn$;
COMMENT ON FUNCTION kaireon._tenant_data_schema(text) IS
    'Internal: name of the schema holding a tenant''s ds_ tables and segment views (kaireon_t_<slug>).';

CREATE FUNCTION kaireon._claim_tenant_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_nsp       text := kaireon._tenant_data_schema(p_tenant_id);
    v_owner     text;
BEGIN
    -- One claim at a time per schema name (two first publishes of a tenant would otherwise
    -- both try CREATE SCHEMA).
    PERFORM pg_advisory_xact_lock(hashtext('kaireon.tenant_schemas'), hashtext(v_nsp));
    SELECT owner_tenant_id INTO v_owner FROM kaireon.tenant_schemas WHERE schema_name = v_nsp;
    IF FOUND AND v_owner <> p_tenant_id THEN
        RAISE EXCEPTION 'schema "%" belongs to tenant "%", not to tenant "%"', v_nsp, v_owner, p_tenant_id
            USING ERRCODE = '42501',
                  HINT = 'A slug of a deleted tenant stays claimed by it; drop the schema and delete its kaireon.tenant_schemas row, or use another slug.';
    END IF;
    IF NOT FOUND THEN
        IF to_regnamespace(quote_ident(v_nsp)) IS NOT NULL THEN
            RAISE EXCEPTION 'schema "%" exists but was not created by kaireon', v_nsp
                USING ERRCODE = '55000', HINT = 'Rename or drop that schema, or use another tenant slug.';
        END IF;
        EXECUTE format('CREATE SCHEMA %I', v_nsp);
        INSERT INTO kaireon.tenant_schemas (schema_name, owner_tenant_id) VALUES (v_nsp, p_tenant_id);
    END IF;
    RETURN v_nsp;
END
$fn$;
COMMENT ON FUNCTION kaireon._claim_tenant_schema(text) IS
    'Internal: creates the tenant''s data schema on first use and records the claim; refuses a schema owned by another (possibly deleted) tenant or not created by kaireon.';

CREATE FUNCTION kaireon._field_sql_type(f kaireon.schema_fields) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE f.data_type
        WHEN 'varchar' THEN CASE WHEN f.length IS NULL THEN 'varchar' ELSE format('varchar(%s)', f.length) END
        WHEN 'numeric' THEN CASE WHEN f.precision IS NULL THEN 'numeric'
                                 ELSE format('numeric(%s,%s)', f.precision, coalesce(f.scale, 0)) END
        WHEN 'double' THEN 'double precision'
        WHEN 'timestamp' THEN 'timestamp without time zone'
        WHEN 'timestamptz' THEN 'timestamp with time zone'
        ELSE f.data_type
    END
$fn$;
COMMENT ON FUNCTION kaireon._field_sql_type(kaireon.schema_fields) IS
    'Internal: the PostgreSQL type of a schema field (data_type with length, precision and scale).';

CREATE FUNCTION kaireon._field_column_sql(f kaireon.schema_fields) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_type      text := kaireon._field_sql_type(f);
    v_sql       text;
BEGIN
    v_sql := format('%I %s', kaireon._check_identifier('field', f.name, 63), v_type);
    IF f.default_value IS NOT NULL THEN
        BEGIN
            EXECUTE format('SELECT %L::%s', f.default_value, v_type);
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'default value % of field "%" is not a valid %', quote_literal(f.default_value), f.name, v_type
                USING ERRCODE = '22023', DETAIL = SQLERRM,
                      HINT = 'Fix schema_fields.default_value, or set it to NULL.';
        END;
        v_sql := v_sql || format(' DEFAULT %L::%s', f.default_value, v_type);
    END IF;
    IF NOT f.is_nullable THEN
        v_sql := v_sql || ' NOT NULL';
    END IF;
    RETURN v_sql;
END
$fn$;
COMMENT ON FUNCTION kaireon._field_column_sql(kaireon.schema_fields) IS
    'Internal: the column definition of a schema field, with its default checked against its type.';

CREATE FUNCTION kaireon._apply_role_grants(p_schema text, p_relation text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    g           record;
BEGIN
    FOR g IN SELECT role_name, access FROM kaireon.role_grants
             WHERE EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = role_name) LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', p_schema, g.role_name);
        IF p_relation IS NOT NULL THEN
            EXECUTE format('GRANT %s ON %I.%I TO %I',
                           CASE g.access WHEN 'readonly' THEN 'SELECT'
                                         WHEN 'app' THEN 'SELECT, INSERT, UPDATE, DELETE'
                                         ELSE 'ALL' END,
                           p_schema, p_relation, g.role_name);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon._apply_role_grants(text, text) IS
    'Internal: grants the roles in kaireon.role_grants their access to a tenant data schema and one of its relations.';

CREATE FUNCTION kaireon.publish_data_schema(tenant_id text, schema_id text) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := publish_data_schema.tenant_id;
    p_schema    text := publish_data_schema.schema_id;
    ds          kaireon.data_schemas;
    f           kaireon.schema_fields;
    v_nsp       text;
    v_table     text;
    v_cols      text[] := '{}';
    v_pk        text[] := '{}';
    v_uniques   text[] := '{}';
    v_exists    boolean;
    v_has_rows  boolean;
BEGIN
    IF p_tenant IS NULL OR p_schema IS NULL THEN
        RAISE EXCEPTION 'tenant_id and schema_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a kaireon.data_schemas row.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);

    -- The row lock serialises concurrent publishes of the same schema.
    SELECT * INTO ds FROM kaireon.data_schemas d WHERE d.tenant_id = p_tenant AND d.id = p_schema FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'data schema "%" does not exist for tenant "%"', p_schema, p_tenant
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.data_schemas first.';
    END IF;
    v_table := 'ds_' || kaireon._check_identifier('data schema', ds.name);

    IF NOT EXISTS (SELECT 1 FROM kaireon.schema_fields sf WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema) THEN
        RAISE EXCEPTION 'data schema "%" has no fields', ds.name
            USING ERRCODE = '22023', HINT = 'Add rows to kaireon.schema_fields before publishing.';
    END IF;
    IF (SELECT count(*) FROM kaireon.schema_fields sf
        WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.is_primary_key) <> 1 THEN
        RAISE EXCEPTION 'data schema "%" must have exactly one primary key field', ds.name
            USING ERRCODE = '22023', HINT = 'Set is_primary_key on the field holding the entity id (for customers, the customer id).';
    END IF;

    v_nsp := kaireon._claim_tenant_schema(p_tenant);
    PERFORM kaireon._apply_role_grants(v_nsp, NULL);
    v_exists := to_regclass(format('%I.%I', v_nsp, v_table)) IS NOT NULL;

    IF NOT v_exists THEN
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema ORDER BY sf.ordinal, sf.name LOOP
            v_cols := v_cols || kaireon._field_column_sql(f);
            IF f.is_primary_key THEN
                v_pk := v_pk || format('%I', f.name);
            ELSIF f.is_unique THEN
                v_uniques := v_uniques || format('UNIQUE (tenant_id, %I)', f.name);
            END IF;
        END LOOP;
        EXECUTE format('CREATE TABLE %I.%I (tenant_id text NOT NULL DEFAULT %L CHECK (tenant_id = %L), %s, PRIMARY KEY (tenant_id, %s)%s)',
                       v_nsp, v_table, p_tenant, p_tenant,
                       array_to_string(v_cols, ', '), v_pk[1],
                       CASE WHEN cardinality(v_uniques) > 0 THEN ', ' || array_to_string(v_uniques, ', ') ELSE '' END);
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', v_nsp, v_table);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())',
                       v_nsp, v_table);
        EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_nsp, v_table,
                       format('kaireon data schema %s of tenant %s (published by kaireon.publish_data_schema)', ds.name, p_tenant));
    ELSE
        -- Fields added since the last publish become new columns.
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema
                   AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                   WHERE a.attrelid = format('%I.%I', v_nsp, v_table)::regclass
                                     AND a.attname = sf.name AND NOT a.attisdropped)
                 ORDER BY sf.ordinal, sf.name LOOP
            IF f.is_primary_key THEN
                RAISE EXCEPTION 'cannot change the primary key of published data schema "%" to field "%"', ds.name, f.name
                    USING ERRCODE = '22023', HINT = 'The primary key is fixed when a data schema is first published.';
            END IF;
            IF NOT f.is_nullable AND f.default_value IS NULL THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', v_nsp, v_table) INTO v_has_rows;
                IF v_has_rows THEN
                    RAISE EXCEPTION 'cannot add NOT NULL field "%" without a default to data schema "%", which has rows', f.name, ds.name
                        USING ERRCODE = '22023', HINT = 'Give the field a default_value or make it nullable.';
                END IF;
            END IF;
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %s', v_nsp, v_table, kaireon._field_column_sql(f));
            IF f.is_unique THEN
                EXECUTE format('ALTER TABLE %I.%I ADD UNIQUE (tenant_id, %I)', v_nsp, v_table, f.name);
            END IF;
        END LOOP;
    END IF;
    PERFORM kaireon._apply_role_grants(v_nsp, v_table);

    UPDATE kaireon.schema_fields sf SET published_at = now()
     WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.published_at IS NULL;
    UPDATE kaireon.data_schemas d SET status = 'published', published_at = now()
     WHERE d.tenant_id = p_tenant AND d.id = p_schema;
    RETURN format('%I.%I', v_nsp, v_table);
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_data_schema(text, text) IS
    'Creates (first call) or extends (later calls: one ADD COLUMN per new field) the table kaireon_t_<slug>.ds_<name> of a data schema from its schema_fields; returns the table name. Caller must act for the tenant.';

-- A filter value as a SQL literal of the column's type; a value the type refuses is reported
-- naming the field instead of failing later inside CREATE VIEW.
CREATE FUNCTION kaireon._segment_literal(field text, value text, sql_type text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    BEGIN
        EXECUTE format('SELECT %L::%s', value, sql_type);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'segment filter value % for field "%" is not a valid %', quote_literal(value), field, sql_type
            USING ERRCODE = '22023', DETAIL = SQLERRM, HINT = 'Compare the field with a value of its type.';
    END;
    RETURN format('%L::%s', value, sql_type);
END
$fn$;
COMMENT ON FUNCTION kaireon._segment_literal(text, text, text) IS
    'Internal: a segment filter value as a quoted literal cast to the column type, after checking the type accepts it.';

-- Compiles one segment filter node into a SQL boolean expression over the aliases in p_fields
-- (a jsonb object: field reference -> {"sql": qualified column, "type": SQL type}).
CREATE FUNCTION kaireon._segment_filter_sql(node jsonb, p_fields jsonb, depth integer DEFAULT 0) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_op        text;
    v_col       jsonb;
    v_parts     text[] := '{}';
    v_el        jsonb;
    v_value     jsonb;
    v_lit       text;
BEGIN
    IF depth > 32 THEN
        RAISE EXCEPTION 'segment filter nests deeper than 32 levels'
            USING ERRCODE = '22023', HINT = 'Flatten the filter.';
    END IF;
    IF jsonb_typeof(node) = 'array' THEN
        node := jsonb_build_object('all', node);
    END IF;
    IF jsonb_typeof(node) <> 'object' THEN
        RAISE EXCEPTION 'segment filter node must be an object, not %', jsonb_typeof(node)
            USING ERRCODE = '22023', HINT = 'Use {"field", "operator", "value"}, {"all": [...]}, {"any": [...]} or {"not": {...}}.';
    END IF;
    IF node ? 'all' OR node ? 'any' THEN
        v_op := CASE WHEN node ? 'all' THEN 'all' ELSE 'any' END;
        IF jsonb_typeof(node -> v_op) <> 'array' THEN
            RAISE EXCEPTION 'segment filter "%" must be an array', v_op USING ERRCODE = '22023',
                HINT = 'Write {"all": [filter, ...]}.';
        END IF;
        FOR v_el IN SELECT * FROM jsonb_array_elements(node -> v_op) LOOP
            v_parts := v_parts || kaireon._segment_filter_sql(v_el, p_fields, depth + 1);
        END LOOP;
        IF cardinality(v_parts) = 0 THEN
            RETURN CASE v_op WHEN 'all' THEN 'true' ELSE 'false' END;
        END IF;
        RETURN '(' || array_to_string(v_parts, CASE v_op WHEN 'all' THEN ' AND ' ELSE ' OR ' END) || ')';
    END IF;
    IF node ? 'not' THEN
        RETURN '(NOT ' || kaireon._segment_filter_sql(node -> 'not', p_fields, depth + 1) || ')';
    END IF;

    v_col := p_fields -> (node ->> 'field');
    IF v_col IS NULL THEN
        RAISE EXCEPTION 'segment filter field "%" is not a published field of the segment''s schemas', node ->> 'field'
            USING ERRCODE = '22023',
                  HINT = 'Use a field name of the base schema, or <schema name>.<field> for a joined schema.';
    END IF;
    v_op := node ->> 'operator';
    v_value := node -> 'value';
    IF v_op IN ('exists', 'not_exists') THEN
        RETURN format('(%s IS %sNULL)', v_col ->> 'sql', CASE v_op WHEN 'exists' THEN 'NOT ' ELSE '' END);
    END IF;
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RAISE EXCEPTION 'segment filter on "%" needs a value for operator "%"', node ->> 'field', coalesce(v_op, '(none)')
            USING ERRCODE = '22023', HINT = 'Add "value".';
    END IF;
    IF v_op IN ('in', 'not_in') THEN
        IF jsonb_typeof(v_value) <> 'array' OR jsonb_array_length(v_value) = 0 THEN
            RAISE EXCEPTION 'segment filter on "%" with operator "%" needs a non-empty array value', node ->> 'field', v_op
                USING ERRCODE = '22023', HINT = 'Write "value": ["a", "b"].';
        END IF;
        SELECT array_agg(kaireon._segment_literal(node ->> 'field', e, v_col ->> 'type')) INTO v_parts
          FROM jsonb_array_elements_text(v_value) AS e;
        RETURN format('(%s %sIN (%s))', v_col ->> 'sql', CASE v_op WHEN 'not_in' THEN 'NOT ' ELSE '' END,
                      array_to_string(v_parts, ', '));
    END IF;
    IF jsonb_typeof(v_value) IN ('object', 'array') AND v_col ->> 'type' <> 'jsonb' THEN
        RAISE EXCEPTION 'segment filter on "%" needs a scalar value, not %', node ->> 'field', jsonb_typeof(v_value)
            USING ERRCODE = '22023', HINT = 'Compare with a string, number or boolean.';
    END IF;
    v_lit := CASE WHEN jsonb_typeof(v_value) = 'string' THEN v_value #>> '{}' ELSE v_value::text END;
    RETURN CASE
        WHEN v_op IN ('eq', 'neq', 'gt', 'gte', 'lt', 'lte') THEN
            format('(%s %s %s)', v_col ->> 'sql',
                   CASE v_op WHEN 'eq' THEN '=' WHEN 'neq' THEN 'IS DISTINCT FROM' WHEN 'gt' THEN '>'
                             WHEN 'gte' THEN '>=' WHEN 'lt' THEN '<' ELSE '<=' END,
                   kaireon._segment_literal(node ->> 'field', v_lit, v_col ->> 'type'))
        WHEN v_op = 'contains' THEN
            CASE WHEN v_col ->> 'type' = 'jsonb' THEN format('(%s @> %L::jsonb)', v_col ->> 'sql', v_value::text)
                 ELSE format('(strpos(%s::text, %L) > 0)', v_col ->> 'sql', v_lit) END
        WHEN v_op = 'starts_with' THEN format('starts_with(%s::text, %L)', v_col ->> 'sql', v_lit)
        ELSE kaireon._segment_bad_operator(node ->> 'field', v_op)
    END;
END
$fn$;
COMMENT ON FUNCTION kaireon._segment_filter_sql(jsonb, jsonb, integer) IS
    'Internal: compiles a segment filter (array = all; {"all"|"any": [...]}, {"not": f}, {"field", "operator", "value"}) into SQL, quoting every value as a literal of the column''s type.';

CREATE FUNCTION kaireon._segment_bad_operator(field text, op text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION 'segment filter on "%" has unknown operator "%"', field, coalesce(op, '(none)')
        USING ERRCODE = '22023',
              HINT = 'Operators: eq, neq, gt, gte, lt, lte, in, not_in, contains, starts_with, exists, not_exists.';
END
$fn$;
COMMENT ON FUNCTION kaireon._segment_bad_operator(text, text) IS
    'Internal: raises the error for an unknown segment filter operator.';

CREATE FUNCTION kaireon.publish_segment(tenant_id text, segment_id text) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := publish_segment.tenant_id;
    p_segment   text := publish_segment.segment_id;
    seg         kaireon.segments;
    base        kaireon.data_schemas;
    v_nsp       text;
    v_view      text;
    v_pk_name   name;
    v_join_type text;
    v_fields    jsonb := '{}';
    v_from      text;
    v_join      jsonb;
    v_other     kaireon.data_schemas;
    v_sj        kaireon.schema_joins;
    v_alias     text;
    v_n         integer := 0;
    v_where     text;
    v_count     bigint;
BEGIN
    IF p_tenant IS NULL OR p_segment IS NULL THEN
        RAISE EXCEPTION 'tenant_id and segment_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the id of a kaireon.segments row.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);

    SELECT * INTO seg FROM kaireon.segments s WHERE s.tenant_id = p_tenant AND s.id = p_segment FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'segment "%" does not exist for tenant "%"', p_segment, p_tenant
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.segments first.';
    END IF;
    SELECT * INTO base FROM kaireon.data_schemas d WHERE d.tenant_id = p_tenant AND d.id = seg.base_schema_id;
    IF NOT FOUND OR base.status <> 'published' THEN
        RAISE EXCEPTION 'segment "%" needs a published base data schema', seg.name
            USING ERRCODE = '22023', HINT = 'Set segments.base_schema_id and call kaireon.publish_data_schema first.';
    END IF;
    v_nsp := kaireon._claim_tenant_schema(p_tenant);
    IF to_regclass(format('%I.%I', v_nsp, base.table_name)) IS NULL THEN
        RAISE EXCEPTION 'data schema "%" is marked published but its table %.% is missing', base.name, v_nsp, base.table_name
            USING ERRCODE = '55000', HINT = 'Call kaireon.publish_data_schema again.';
    END IF;
    v_view := 'seg_' || left(regexp_replace(lower(p_segment), '[^a-z0-9]', '_', 'g'), 40);
    IF EXISTS (SELECT 1 FROM kaireon.segments s
               WHERE s.tenant_id = p_tenant AND s.id <> p_segment AND s.view_name = v_view) THEN
        RAISE EXCEPTION 'segment view name "%" is already used by another segment', v_view
            USING ERRCODE = '23505', HINT = 'Segment ids must differ in their first 40 characters (after replacing non-alphanumerics with _).';
    END IF;

    -- The key column as the table has it (the primary key fixed at first publish).
    SELECT a.attname INTO v_pk_name FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1]
     WHERE i.indrelid = format('%I.%I', v_nsp, base.table_name)::regclass AND i.indisprimary;
    IF v_pk_name IS NULL THEN
        RAISE EXCEPTION 'table %.% has no primary key', v_nsp, base.table_name
            USING ERRCODE = '55000', HINT = 'Tables of data schemas are created by kaireon.publish_data_schema with one.';
    END IF;
    -- Field references: plain names for the base schema, <schema>.<field> for joined ones.
    SELECT v_fields || coalesce(jsonb_object_agg(sf.name, jsonb_build_object(
               'sql', format('b.%I', sf.name), 'type', kaireon._field_sql_type(sf))), '{}')
      INTO v_fields
      FROM kaireon.schema_fields sf
     WHERE sf.tenant_id = p_tenant AND sf.schema_id = base.id AND sf.published_at IS NOT NULL;
    v_from := format('%I.%I b', v_nsp, base.table_name);

    FOR v_join IN SELECT * FROM jsonb_array_elements(seg.joins) LOOP
        v_n := v_n + 1;
        v_alias := 'j' || v_n;
        SELECT * INTO v_other FROM kaireon.data_schemas d
         WHERE d.tenant_id = p_tenant AND d.id = v_join ->> 'schemaId' AND d.status = 'published';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'segment join % names no published data schema (%)', v_n, coalesce(v_join ->> 'schemaId', '(missing schemaId)')
                USING ERRCODE = '22023', HINT = 'Each join is {"schemaId": "<published data schema id>"}.';
        END IF;
        SELECT * INTO v_sj FROM kaireon.schema_joins j
         WHERE j.tenant_id = p_tenant AND j.primary_schema_id = base.id AND j.foreign_schema_id = v_other.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no schema join from "%" to "%"', base.name, v_other.name
                USING ERRCODE = '22023', HINT = 'Insert a kaireon.schema_joins row between the two schemas.';
        END IF;
        v_join_type := coalesce(v_join ->> 'type', v_sj.join_type);
        IF v_join_type NOT IN ('inner', 'left') THEN
            RAISE EXCEPTION 'segment join % has unknown type "%"', v_n, v_join_type
                USING ERRCODE = '22023', HINT = 'A join type is "left" or "inner".';
        END IF;
        v_from := v_from || format(' %s JOIN %I.%I %s ON %s.tenant_id = b.tenant_id AND %s.%I = b.%I',
                                   upper(v_join_type), v_nsp, v_other.table_name, v_alias,
                                   v_alias, v_alias, kaireon._check_identifier('join key', v_sj.foreign_key, 63),
                                   kaireon._check_identifier('join key', v_sj.primary_key, 63));
        SELECT v_fields || coalesce(jsonb_object_agg(v_other.name || '.' || sf.name, jsonb_build_object(
                   'sql', format('%s.%I', v_alias, sf.name), 'type', kaireon._field_sql_type(sf))), '{}')
          INTO v_fields
          FROM kaireon.schema_fields sf
         WHERE sf.tenant_id = p_tenant AND sf.schema_id = v_other.id AND sf.published_at IS NOT NULL;
    END LOOP;

    v_where := kaireon._segment_filter_sql(seg.filters, v_fields);
    IF to_regclass(format('%I.%I', v_nsp, v_view)) IS NOT NULL THEN
        EXECUTE format('DROP VIEW %I.%I', v_nsp, v_view);
    END IF;
    -- The view names its tenant, so rows of any other tenant never match whoever reads it.
    EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT DISTINCT b.tenant_id, b.%I::text AS customer_id, b.%I AS customer_key FROM %s WHERE b.tenant_id = %L AND %s',
                   v_nsp, v_view, v_pk_name, v_pk_name, v_from, p_tenant, v_where);
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', v_nsp, v_view,
                   format('kaireon segment %s (%s) of tenant %s', seg.name, p_segment, p_tenant));
    PERFORM kaireon._apply_role_grants(v_nsp, v_view);
    EXECUTE format('SELECT count(*) FROM %I.%I', v_nsp, v_view) INTO v_count;

    UPDATE kaireon.segments s
       SET view_name = v_view, status = 'published', published_at = now(), customer_count = v_count
     WHERE s.tenant_id = p_tenant AND s.id = p_segment;
    RETURN format('%I.%I', v_nsp, v_view);
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_segment(text, text) IS
    'Compiles a segment''s filters and joins into the view kaireon_t_<slug>.seg_<id prefix> (columns tenant_id, customer_id, customer_key), records its size, and returns the view name. Caller must act for the tenant.';

CREATE FUNCTION kaireon._segment_view(p_tenant text, p_segment text) RETURNS text
    LANGUAGE plpgsql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_view      text;
BEGIN
    IF p_tenant IS NULL OR p_segment IS NULL THEN
        RAISE EXCEPTION 'tenant_id and segment_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and a segment id.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.view_name INTO v_view FROM kaireon.segments s
     WHERE s.tenant_id = p_tenant AND s.id = p_segment AND s.status = 'published';
    IF v_view IS NULL THEN
        RAISE EXCEPTION 'segment "%" of tenant "%" is not published', p_segment, p_tenant
            USING ERRCODE = '42704', HINT = 'Call kaireon.publish_segment first.';
    END IF;
    RETURN format('%I.%I', kaireon._tenant_data_schema(p_tenant), kaireon._check_identifier('segment view', v_view, 63));
END
$fn$;
COMMENT ON FUNCTION kaireon._segment_view(text, text) IS
    'Internal: the qualified view name of a published segment, after checking the caller may act for the tenant (runs as owner to read the segment and tenant rows; the caller then reads the view with its own privileges).';

CREATE FUNCTION kaireon.segment_members(tenant_id text, segment_id text) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format('SELECT customer_id FROM %s ORDER BY customer_id',
                                kaireon._segment_view(segment_members.tenant_id, segment_members.segment_id));
END
$fn$;
COMMENT ON FUNCTION kaireon.segment_members(text, text) IS
    'Customer ids in a published segment, in order. Runs with the caller''s privileges (row level security applies); the caller must act for the tenant.';

CREATE FUNCTION kaireon.is_segment_member(tenant_id text, segment_id text, customer_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_member    boolean;
BEGIN
    IF is_segment_member.customer_id IS NULL THEN
        RAISE EXCEPTION 'customer_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the customer id to test.';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE customer_id = $1)',
                   kaireon._segment_view(is_segment_member.tenant_id, is_segment_member.segment_id))
       INTO v_member USING is_segment_member.customer_id;
    RETURN v_member;
END
$fn$;
COMMENT ON FUNCTION kaireon.is_segment_member(text, text, text) IS
    'True when the customer is in the published segment. Runs with the caller''s privileges (row level security applies); the caller must act for the tenant.';
-- kaireon install script, part 70: the audit hash chain (docs/audit.md).
-- Every change of an audited table writes one row of kaireon.audit_logs in the same
-- transaction, chained per tenant by SHA-256; kaireon.verify_audit_chain recomputes a chain.
-- The tables audited, and how, are listed in one place: kaireon.audited_tables() below.

CREATE FUNCTION kaireon.audit_capture() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_audit_capture'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.audit_capture() IS
    'Deferred AFTER INSERT OR UPDATE OR DELETE row constraint trigger of the audited tables (kaireon.audited_tables()): at commit, appends one audit_logs row per changed row to the tenant''s hash chain. Arguments: tenant=, id=, version=, redact=col[:flag], ignore= (docs/audit.md).';

CREATE FUNCTION kaireon.audit_refuse_truncate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_audit_refuse_truncate'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.audit_refuse_truncate() IS
    'BEFORE TRUNCATE trigger of the audited tables: refuses TRUNCATE, which would remove rows without audit rows (use DELETE).';

CREATE FUNCTION kaireon.audit_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_audit_guard'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.audit_guard() IS
    'Trigger of kaireon.audit_logs keeping it append-only: UPDATE and TRUNCATE refused for everyone, DELETE only through kaireon.purge_audit_chain, INSERT only by the table owner (kaireon''s appends) and superusers (restore).';

CREATE FUNCTION kaireon.verify_audit_chain(tenant_id text, from_id bigint DEFAULT NULL,
                                           max_rows bigint DEFAULT NULL)
    RETURNS TABLE (intact boolean, verified bigint, total bigint, scanned bigint,
                   broken_at_id bigint, broken_reason text)
    AS 'MODULE_PATHNAME', 'kaireon_verify_audit_chain'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.verify_audit_chain(text, bigint, bigint) IS
    'Recomputes the audit hash chain of a tenant (NULL: the chain of rows without a tenant) from from_id (NULL: its start, or the anchor retention left), reading at most max_rows rows (NULL: all). Returns whether it is intact, the rows verified, the rows of the chain from from_id, the rows read, and the first broken row with its reason (hash_mismatch, chain_link_mismatch, gap).';

CREATE FUNCTION kaireon.purge_audit_chain(tenant_id text, older_than timestamptz,
                                          max_rows bigint DEFAULT 10000)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'kaireon_purge_audit_chain'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.purge_audit_chain(text, timestamptz, bigint) IS
    'Retention of an audit chain: verifies and removes its oldest rows (at most max_rows, all older than older_than), then appends an anchor row naming the last removed row''s id, chain_seq and hash, so the rest still verifies. Refused under legal hold and for a broken chain. Returns the rows removed.';

CREATE FUNCTION kaireon.audit_canonical(audit_id bigint) RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_audit_canonical_sql'
    LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION kaireon.audit_canonical(bigint) IS
    'The canonical JSON of one audit row, exactly as hashed after its prev_hash (docs/audit.md); NULL for an unknown id.';

-- The head of every chain: its last row. Appends lock the chain and move the head in the same
-- transaction; verification checks that the chain ends where its head says.
CREATE TABLE kaireon.audit_chain_heads (
    tenant_id               text,
    last_id                 bigint NOT NULL,
    last_seq                bigint NOT NULL CHECK (last_seq >= 1),
    last_hash               text NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id)
);
COMMENT ON TABLE kaireon.audit_chain_heads IS
    'kaireon''s own table: the head (last id, chain_seq and integrity_hash) of each audit chain, one per tenant plus one (tenant_id NULL) for rows without a tenant. Written only by kaireon''s audit code; no foreign key to tenants, like audit_logs.';

-- The audited tables, in one place. options are the trigger arguments (src/audit.c):
--   tenant=<col> (default tenant_id; none = the chain without a tenant), id=<col> (default id),
--   version=<col> (an integer recorded as entity_version), redact=<col>[:<flag>] (a secret,
--   shown as "[redacted]", when <flag> is true if given), ignore=<col> (a runtime column:
--   an update that changes only such columns and updated_at is not audited).
-- The tables not listed are facts, runtime state or logs; docs/audit.md lists them with reasons.
CREATE FUNCTION kaireon.audited_tables()
    RETURNS TABLE (table_name name, options text[])
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t.table_name::name, t.options FROM (VALUES
        -- decisioning
        ('tenants',                   ARRAY['tenant=id']),
        ('categories',                ARRAY[]::text[]),
        ('sub_categories',            ARRAY[]::text[]),
        ('channels',                  ARRAY[]::text[]),
        ('placements',                ARRAY[]::text[]),
        ('flow_routes',               ARRAY[]::text[]),
        ('offers',                    ARRAY[]::text[]),
        ('creatives',                 ARRAY[]::text[]),
        ('outcome_types',             ARRAY[]::text[]),
        ('qualification_rules',       ARRAY[]::text[]),
        ('qualification_rule_scopes', ARRAY[]::text[]),
        ('contact_policies',          ARRAY[]::text[]),
        ('contact_policy_scopes',     ARRAY[]::text[]),
        ('decision_flows',            ARRAY['version=published_version']),
        ('arbitration_profiles',      ARRAY[]::text[]),
        ('cross_offer_constraints',   ARRAY[]::text[]),
        ('guardrail_rules',           ARRAY[]::text[]),
        ('volume_constraints',        ARRAY['ignore=current_count', 'ignore=reset_at']),
        ('budget_allocations',        ARRAY['ignore=used_impressions', 'ignore=used_spend', 'ignore=used_conversions']),
        ('runs',                      ARRAY['ignore=last_run_at', 'ignore=next_run_at']),
        -- customer data definitions
        ('data_schemas',              ARRAY[]::text[]),
        ('schema_fields',             ARRAY[]::text[]),
        ('schema_joins',              ARRAY[]::text[]),
        ('segments',                  ARRAY['ignore=customer_count']),
        -- models and experiments
        ('algorithm_models',          ARRAY['version=version', 'ignore=model_state', 'ignore=metrics', 'ignore=last_trained_at']),
        ('model_approvals',           ARRAY['version=version']),
        ('experiments',               ARRAY['ignore=results']),
        ('experiment_challengers',    ARRAY[]::text[]),
        -- compliance and governance
        ('retention_configs',         ARRAY[]::text[]),
        ('dsar_requests',             ARRAY['redact=subject_id', 'redact=reason']),
        ('approval_requests',         ARRAY[]::text[]),
        ('approval_request_stages',   ARRAY[]::text[]),
        ('custom_roles',              ARRAY[]::text[]),
        ('custom_role_assignments',   ARRAY[]::text[]),
        ('sso_configs',               ARRAY[]::text[]),
        -- operators, access and settings
        ('users',                     ARRAY['redact=password_hash', 'redact=mfa_secret', 'redact=mfa_backup_codes',
                                            'ignore=failed_login_attempts', 'ignore=locked_until']),
        ('api_keys',                  ARRAY['redact=hashed_key', 'ignore=last_used_at']),
        ('oauth_clients',             ARRAY['redact=hashed_secret']),
        ('tenant_settings',           ARRAY[]::text[]),
        ('platform_settings',         ARRAY['redact=value:encrypted']),
        ('tenant_regions',            ARRAY['id=region']),
        ('alert_rules',               ARRAY['ignore=last_fired_at']),
        ('trigger_rules',             ARRAY[]::text[]),
        ('geofences',                 ARRAY[]::text[]),
        ('journeys',                  ARRAY[]::text[]),
        -- content, pipelines, reporting
        ('connectors',                ARRAY['redact=auth_config', 'ignore=last_tested_at', 'ignore=last_error']),
        ('data_sources',              ARRAY['ignore=last_synced_at']),
        ('pipelines',                 ARRAY['ignore=last_run_status', 'ignore=last_run_at']),
        ('templates',                 ARRAY[]::text[]),
        ('content_sources',           ARRAY['redact=webhook_secret', 'ignore=last_synced_at']),
        ('content_items',             ARRAY['version=version']),
        ('treatments',                ARRAY['ignore=impressions', 'ignore=clicks', 'ignore=conversions']),
        ('report_templates',          ARRAY[]::text[]),
        ('report_schedules',          ARRAY['ignore=last_run_at', 'ignore=next_run_at', 'ignore=last_status']),
        ('metric_definitions',        ARRAY[]::text[]),
        ('summary_definitions',       ARRAY[]::text[]),
        -- kaireon's own: who was granted access
        ('role_grants',               ARRAY['tenant=none', 'id=role_name'])
    ) AS t (table_name, options)
$fn$;
COMMENT ON FUNCTION kaireon.audited_tables() IS
    'The tables whose changes are recorded in the audit chain, with the arguments of their audit_capture trigger (docs/audit.md). The one list: 70_audit.sql creates the triggers from it and the audit tests check them against it.';

DO $audit$
DECLARE
    r           record;
BEGIN
    FOR r IN SELECT * FROM kaireon.audited_tables() LOOP
        -- deferred: the row images are queued with the change and appended at commit, so a
        -- transaction holds its tenant's chain lock only while it commits
        EXECUTE format('CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON kaireon.%I'
                       ' DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture(%s)',
                       r.table_name,
                       (SELECT string_agg(quote_literal(o), ', ') FROM unnest(r.options) AS o));
        EXECUTE format('CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON kaireon.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_refuse_truncate()',
                       r.table_name);
    END LOOP;
END
$audit$;

-- The log itself is append-only.
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.audit_logs
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON kaireon.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_guard();

-- pg_dump keeps the log's identity sequence too, so ids continue after a restore.
SELECT pg_catalog.pg_extension_config_dump('kaireon.audit_logs_id_seq', '');
-- kaireon install script, part 70: the real-time decision (recommend, respond), the
-- configuration cache's invalidation, decision flow publishing, and default outcome types.
-- See docs/recommend.md.

-- The configuration version of each tenant: renewed (from a sequence, so never reused) by
-- the trigger kaireon.config_changed in every transaction that changes the tenant's
-- configuration; the recommend cache of every backend compares it (config_cache.c).
CREATE SEQUENCE kaireon.config_version_seq;
COMMENT ON SEQUENCE kaireon.config_version_seq IS
    'Source of configuration versions (kaireon.config_versions).';

CREATE TABLE kaireon.config_versions (
    tenant_id               text NOT NULL PRIMARY KEY REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    version                 bigint NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.config_versions IS
    'kaireon''s own table: the current configuration version of each tenant, renewed whenever its decisioning configuration changes; a relcache invalidation on this table tells every backend to re-check its cached configurations.';

-- One row per customer that has had a recorded decision: recommend upserts it first and
-- holds its lock until commit, so decisions for one customer are serialised (per-customer
-- caps are exact) while different customers never wait for each other.
CREATE TABLE kaireon.decision_locks (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    customer_id             text NOT NULL,
    decisions               bigint NOT NULL DEFAULT 0 CHECK (decisions >= 0),
    last_decision_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX ON kaireon.decision_locks (last_decision_at);
COMMENT ON TABLE kaireon.decision_locks IS
    'kaireon''s own table: one row per customer with a recorded decision (count and time of the last); recommend locks it for the rest of the transaction so that decisions for one customer are serialised and per-customer caps stay exact.';

-- Idempotency keys of respond: the first outcome with a key wins, duplicates return it.
CREATE TABLE kaireon.respond_idempotency (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    idempotency_key         text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    interaction_id          text NOT NULL,
    result                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(result) = 'object'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX ON kaireon.respond_idempotency (created_at);
COMMENT ON TABLE kaireon.respond_idempotency IS
    'kaireon''s own table: idempotency keys of kaireon.respond, the interaction each one recorded and the answer a duplicate gets; retention removes old keys.';

CREATE FUNCTION kaireon._period_end(period text, t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT (CASE
        WHEN period IN ('day', 'daily') THEN date_trunc('day', t AT TIME ZONE 'UTC') + interval '1 day'
        WHEN period IN ('week', 'weekly') THEN date_trunc('week', t AT TIME ZONE 'UTC') + interval '1 week'
        WHEN period IN ('month', 'monthly') THEN date_trunc('month', t AT TIME ZONE 'UTC') + interval '1 month'
        WHEN period IN ('quarter', 'quarterly') THEN date_trunc('quarter', t AT TIME ZONE 'UTC') + interval '3 months'
    END) AT TIME ZONE 'UTC'
$fn$;
COMMENT ON FUNCTION kaireon._period_end(text, timestamptz) IS
    'Internal: end of the calendar period (daily, weekly from Monday, monthly, quarterly; UTC) holding t.';

CREATE FUNCTION kaireon._period_key(period_type text, t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE period_type
        WHEN 'daily' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        WHEN 'weekly' THEN to_char(t AT TIME ZONE 'UTC', 'IYYY-"W"IW')
        WHEN 'monthly' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM')
        WHEN 'quarterly' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-"Q"Q')
        ELSE 'total'
    END
$fn$;
COMMENT ON FUNCTION kaireon._period_key(text, timestamptz) IS
    'Internal: the budget period key (2026-11-25, 2026-W48, 2026-11, 2026-Q4) of the period of that type holding t, UTC.';

CREATE FUNCTION kaireon.config_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_config_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.config_changed() IS
    'AFTER trigger on the decisioning configuration tables: renews the configuration version of the tenants whose rows changed and invalidates every backend''s cached configuration at commit.';

-- The tables the recommend cache compiles; each gets the invalidation triggers. The counter
-- tables (volume_constraints, budget_allocations) fire only when their definition changes,
-- not when recommend counts a unit.
DO $triggers$
DECLARE
    t           text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_settings', 'channels', 'placements', 'categories', 'sub_categories',
                             'offers', 'creatives', 'outcome_types', 'qualification_rules',
                             'qualification_rule_scopes', 'contact_policies', 'contact_policy_scopes',
                             'guardrail_rules', 'decision_flows', 'flow_routes', 'arbitration_profiles',
                             'segments', 'data_schemas'] LOOP
        EXECUTE format('CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.%I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed()', t);
        EXECUTE format('CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.%I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed()', t);
        EXECUTE format('CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.%I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed()', t);
        EXECUTE format('CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.%I FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed()', t);
    END LOOP;
END
$triggers$;
CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.tenants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed('id');
CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed('id');
CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.tenants
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed('id');
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF name, scope, scope_id, max_volume, period, status
    ON kaireon.volume_constraints FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF name, scope, scope_id, period_type, period_key,
    max_impressions, max_spend, max_conversions, status
    ON kaireon.budget_allocations FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();

-- Offer schedules are validated when written (a bad date would otherwise stop the tenant's
-- decisions when its configuration is compiled).
CREATE TRIGGER validate_schedule BEFORE INSERT OR UPDATE OF schedule ON kaireon.offers
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('offer_schedule', '', 'schedule');

-- Decision flows: drafts are validated when written; published versions never change.
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF draft_config ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('decision_flow', '', 'draft_config');

CREATE FUNCTION kaireon._published_versions_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF jsonb_array_length(NEW.published_versions) < jsonb_array_length(OLD.published_versions)
       OR (SELECT coalesce(jsonb_agg(e ORDER BY i), '[]'::jsonb)
             FROM jsonb_array_elements(NEW.published_versions) WITH ORDINALITY AS x(e, i)
            WHERE i <= jsonb_array_length(OLD.published_versions)) IS DISTINCT FROM OLD.published_versions THEN
        RAISE EXCEPTION 'published versions of decision flow "%" cannot be changed or removed', OLD.key
            USING ERRCODE = '55000', HINT = 'Publish a new version with kaireon.publish_decision_flow.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._published_versions_append_only() IS
    'Internal: BEFORE UPDATE trigger keeping decision_flows.published_versions append-only.';
CREATE TRIGGER published_versions_append_only BEFORE UPDATE OF published_versions ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon._published_versions_append_only();

CREATE FUNCTION kaireon.publish_decision_flow(tenant_id text, key text, notes text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    f           kaireon.decision_flows;
    v_version   integer;
    v_req       text;
BEGIN
    IF publish_decision_flow.tenant_id IS NULL OR publish_decision_flow.key IS NULL THEN
        RAISE EXCEPTION 'tenant_id and key must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the key of a decision flow.';
    END IF;
    PERFORM kaireon.assert_tenant_access(publish_decision_flow.tenant_id);
    SELECT * INTO f FROM kaireon.decision_flows d
     WHERE d.tenant_id = publish_decision_flow.tenant_id AND d.key = publish_decision_flow.key
       AND d.deleted_at IS NULL
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'decision flow "%" does not exist for tenant "%"', publish_decision_flow.key,
                        publish_decision_flow.tenant_id
            USING ERRCODE = '42704', HINT = 'Create it in kaireon.decision_flows first.';
    END IF;
    -- four-eyes: the publish is filed for approval (action decision_flow.publish, with the
    -- draft as it is now: 80_governed_actions.sql) instead of made
    IF kaireon.four_eyes_required(publish_decision_flow.tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
        v_req := kaireon.request_approval(publish_decision_flow.tenant_id, 'decision_flow.publish', f.id,
                                          jsonb_build_object('key', f.key, 'notes', notes, 'draft', f.draft_config));
        RAISE NOTICE 'publishing decision flow "%" awaits approval: request %', f.key, v_req
            USING HINT = 'Another user approves it with kaireon.approve_request; recommend runs the published version until then.';
        RETURN NULL;
    END IF;
    -- the draft is valid: its validation trigger ran when it was written
    v_version := coalesce(f.published_version, 0) + 1;
    UPDATE kaireon.decision_flows d
       SET published_versions = d.published_versions || jsonb_build_array(jsonb_build_object(
               'version', v_version,
               'config', d.draft_config,
               'notes', notes,
               'publishedAt', now(),
               'publishedBy', coalesce(nullif(current_setting('kaireon.user_id', true), ''), session_user::text))),
           published_version = v_version,
           published_at = now(),
           status = 'published'
     WHERE d.tenant_id = f.tenant_id AND d.id = f.id;
    RETURN v_version;
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_decision_flow(text, text, text) IS
    'Publishes a decision flow''s draft_config as a new immutable version (appended to published_versions) and makes it the one recommend runs; returns the version number. With four-eyes enabled it files an approval request (action decision_flow.publish) instead and returns NULL.';

-- The ten default outcome types of every new tenant (spec section 5).
CREATE FUNCTION kaireon._seed_outcome_types() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification, category, is_system)
    SELECT n.id, d.key, d.name, d.classification, d.category, true
      FROM new_rows n
     CROSS JOIN (VALUES ('impression', 'Impression', 'neutral', 'exposure'),
                        ('click', 'Click', 'positive', 'engagement'),
                        ('conversion', 'Conversion', 'positive', 'conversion'),
                        ('share', 'Share', 'positive', 'engagement'),
                        ('save', 'Save', 'positive', 'engagement'),
                        ('not_interested', 'Not interested', 'negative', 'feedback'),
                        ('opt_out', 'Opt out', 'negative', 'feedback'),
                        ('dismiss', 'Dismiss', 'negative', 'feedback'),
                        ('complaint', 'Complaint', 'negative', 'feedback'),
                        ('defer', 'Defer', 'neutral', 'feedback')) AS d(key, name, classification, category)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION kaireon._seed_outcome_types() IS
    'Internal: AFTER INSERT trigger on tenants giving each new tenant the ten default outcome types (system rows).';
CREATE TRIGGER seed_outcome_types AFTER INSERT ON kaireon.tenants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon._seed_outcome_types();

CREATE FUNCTION kaireon.recommend(tenant_id text, customer_id text, channel text,
                                  placement text DEFAULT NULL, context jsonb DEFAULT '{}',
                                  max_offers integer DEFAULT NULL, decision_flow text DEFAULT NULL,
                                  options jsonb DEFAULT '{}')
    RETURNS TABLE (rank integer, offer_id text, offer_name text, category_id text, creative_id text,
                   placement_id text, score double precision, propensity double precision,
                   recommendation_id text, interaction_id text, explanation jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_recommend'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb) IS
    'The real-time decision: ranked, policy-checked, scored offers for a customer on a channel (and placement), recorded in the caller''s transaction unless options.dry_run. Options: dry_run, debug (dropped candidates follow as rows without rank), trace, exclude_offers, exclude_creatives, placements, deduplicate. See docs/recommend.md.';

CREATE FUNCTION kaireon.recommend_json(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_recommend_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.recommend_json(jsonb) IS
    'kaireon.recommend with a JSON request and response in the REST shape: {recommendationId, decisions[], placements[], debug}. See docs/recommend.md.';

CREATE FUNCTION kaireon.respond(tenant_id text, customer_id text, outcome text,
                                recommendation_id text DEFAULT NULL, rank integer DEFAULT NULL,
                                creative_id text DEFAULT NULL, offer_id text DEFAULT NULL,
                                idempotency_key text DEFAULT NULL, conversion_value numeric DEFAULT NULL,
                                context jsonb DEFAULT '{}', occurred_at timestamptz DEFAULT NULL,
                                placement_id text DEFAULT NULL)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond(text, text, text, text, integer, text, text, text, numeric, jsonb, timestamptz, text) IS
    'Records an outcome of a decision (by recommendation id and rank, with placement_id for a request of several placements, or creative / offer id) and learns from it: interaction row, outbox event, adaptation counts, budget conversions, suppressions; idempotent on idempotency_key. Returns what was recorded.';

CREATE FUNCTION kaireon.respond_json(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond_json(jsonb) IS
    'kaireon.respond with a JSON request (tenantId, customerId, outcome, recommendationId, rank, placementId, creativeId, offerId, idempotencyKey, conversionValue, context, occurredAt).';

CREATE FUNCTION kaireon.respond_bulk(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond_bulk'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond_bulk(jsonb) IS
    'Records 1 to 1000 outcomes ({"items": [...]} of respond_json requests); each item in a subtransaction, so a bad item is reported (index, SQLSTATE, message) and the good ones are kept.';
-- kaireon install script, part 72: API keys, OAuth client secrets and encrypted platform
-- settings (docs/security.md). The server-side secrets are the superuser-only settings
-- kaireon.api_key_pepper and kaireon.settings_encryption_key (src/secrets.c).

CREATE FUNCTION kaireon.create_api_key(tenant_id text, name text, scopes jsonb DEFAULT '[]',
                                       expires_at timestamptz DEFAULT NULL)
    RETURNS TABLE (id text, api_key text, prefix text)
    AS 'MODULE_PATHNAME', 'kaireon_create_api_key'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.create_api_key(text, text, jsonb, timestamptz) IS
    'Creates an API key of a tenant and returns it once: (id, api_key "krn_" + 64 hex digits, prefix). The table keeps only its first 12 characters and its HMAC-SHA256 under kaireon.api_key_pepper.';

CREATE FUNCTION kaireon.authenticate_api_key(api_key text)
    RETURNS TABLE (tenant_id text, key_id text, scopes jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_authenticate_api_key'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.authenticate_api_key(text) IS
    'The tenant, id and scopes of an API key, or no row when the key is unknown, malformed, revoked or expired (HMAC compared in constant time; never an error about the key). Records last_used_at at most once a minute.';

CREATE FUNCTION kaireon.revoke_api_key(tenant_id text, key_id text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found     boolean;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    UPDATE kaireon.api_keys k SET revoked_at = now()
     WHERE k.tenant_id = revoke_api_key.tenant_id AND k.id = revoke_api_key.key_id AND k.revoked_at IS NULL;
    GET DIAGNOSTICS v_found = ROW_COUNT;
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION kaireon.revoke_api_key(text, text) IS
    'Revokes an API key of a tenant; true when a key was revoked, false when it is unknown or already revoked.';

CREATE FUNCTION kaireon.create_oauth_client(tenant_id text, name text, scopes jsonb DEFAULT '["read"]')
    RETURNS TABLE (id text, client_id text, client_secret text)
    AS 'MODULE_PATHNAME', 'kaireon_create_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.create_oauth_client(text, text, jsonb) IS
    'Creates an OAuth client-credentials client of a tenant and returns its secret once: (id, client_id "kci_" + 32 hex digits, client_secret "kcs_" + 64 hex digits). The table keeps only the secret''s HMAC-SHA256 under kaireon.api_key_pepper; scopes are among read, write, admin.';

CREATE FUNCTION kaireon.authenticate_oauth_client(client_id text, client_secret text)
    RETURNS TABLE (tenant_id text, oauth_client_id text, scopes jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_authenticate_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.authenticate_oauth_client(text, text) IS
    'The tenant, id and scopes of an OAuth client, or no row for a wrong secret or an unknown, malformed or revoked client (constant-time comparison; never an error about the secret).';

CREATE FUNCTION kaireon.revoke_oauth_client(tenant_id text, oauth_client_id text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found     boolean;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    UPDATE kaireon.oauth_clients c SET revoked_at = now()
     WHERE c.tenant_id = revoke_oauth_client.tenant_id AND c.id = revoke_oauth_client.oauth_client_id
       AND c.revoked_at IS NULL;
    GET DIAGNOSTICS v_found = ROW_COUNT;
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION kaireon.revoke_oauth_client(text, text) IS
    'Revokes an OAuth client of a tenant; true when a client was revoked.';

-- authentication finds a key by its displayed prefix and a client by its id, across tenants
CREATE INDEX api_keys_prefix_idx ON kaireon.api_keys (prefix);
CREATE INDEX oauth_clients_client_id_idx ON kaireon.oauth_clients (client_id);

CREATE FUNCTION kaireon.settings_encrypt_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_settings_encrypt_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.settings_encrypt_trigger() IS
    'BEFORE INSERT OR UPDATE trigger of platform_settings: stores a value written with encrypted = true as AES-256-GCM ciphertext under kaireon.settings_encryption_key (bound to its tenant, category and key), and decrypts one whose encryption is switched off.';
CREATE TRIGGER encrypt_value BEFORE INSERT OR UPDATE ON kaireon.platform_settings
    FOR EACH ROW EXECUTE FUNCTION kaireon.settings_encrypt_trigger();

CREATE FUNCTION kaireon.get_setting(tenant_id text, category text, key text) RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_get_setting'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.get_setting(text, text, text) IS
    'The value of a platform setting of a tenant, decrypted when it is stored encrypted; NULL when there is none. Runs with the caller''s privileges (row level security applies).';

CREATE FUNCTION kaireon.set_setting(tenant_id text, category text, key text, value text,
                                    encrypted boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    INSERT INTO kaireon.platform_settings AS s (tenant_id, category, key, value, encrypted)
    VALUES (set_setting.tenant_id, set_setting.category, set_setting.key, set_setting.value, set_setting.encrypted)
    ON CONFLICT ON CONSTRAINT platform_settings_tenant_id_category_key_key
    DO UPDATE SET value = EXCLUDED.value, encrypted = EXCLUDED.encrypted;
END
$fn$;
COMMENT ON FUNCTION kaireon.set_setting(text, text, text, text, boolean) IS
    'Creates or replaces a platform setting of a tenant; with encrypted the value is stored as ciphertext. Pass secrets as bind parameters: a statement''s text can reach the server log.';

CREATE FUNCTION kaireon.reencrypt_settings(tenant_id text DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'kaireon_reencrypt_settings'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.reencrypt_settings(text) IS
    'After a key rotation (new kaireon.settings_encryption_key, old one in kaireon.settings_encryption_key_previous): re-encrypts under the current key every encrypted setting of a tenant (NULL: all tenants, superuser or BYPASSRLS) that is not yet. Returns how many.';
-- kaireon install script, part 75: four-eyes governance (docs/security.md, "Four-eyes").
-- When a tenant has tenant_settings.four_eyes_enabled, governed changes go through
-- approval_requests: a requester files the change (an action with a payload), approvers
-- holding each stage's required_role approve the stages in order, and the last approval
-- applies the payload through the action's apply function, in the same transaction, with
-- kaireon.applying_approval set (src/governance.c). Every step is audited (the approval
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

CREATE FUNCTION kaireon.four_eyes_required(tenant_id text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT coalesce((SELECT s.four_eyes_enabled FROM kaireon.tenant_settings s
                          WHERE s.tenant_id = four_eyes_required.tenant_id), false);
    END;
COMMENT ON FUNCTION kaireon.four_eyes_required(text) IS
    'Whether four-eyes governance is on for a tenant (tenant_settings.four_eyes_enabled; false without a settings row).';

-- The registry of approval actions: what each one changes and the functions that check its
-- payload when it is filed and apply it when it is approved. Rows are installed by the
-- extension's install scripts (other modules add theirs); pg_dump does not dump them, so a
-- restore gets them from CREATE EXTENSION.
CREATE TABLE kaireon.approval_actions (
    action                  text PRIMARY KEY CHECK (action ~ '^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$'),
    entity_type             text NOT NULL,
    apply_function          regprocedure NOT NULL,
    validate_function       regprocedure,
    description             text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.approval_actions IS
    'kaireon''s own table: the approval actions of four-eyes governance. apply_function(tenant_id text, entity_id text, payload jsonb) carries out an approved request; validate_function (same arguments, optional) refuses a bad payload when the request is filed. Installed with the extension; not dumped.';

CREATE FUNCTION kaireon._approval_action_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_fn        regprocedure;
BEGIN
    FOREACH v_fn IN ARRAY ARRAY[NEW.apply_function, NEW.validate_function] LOOP
        CONTINUE WHEN v_fn IS NULL;
        IF NOT EXISTS (SELECT 1 FROM pg_proc p
                        WHERE p.oid = v_fn AND p.pronargs = 3 AND p.proargtypes[0] = 'text'::regtype
                          AND p.proargtypes[1] = 'text'::regtype AND p.proargtypes[2] = 'jsonb'::regtype) THEN
            RAISE EXCEPTION 'function % of approval action "%" must take (tenant_id text, entity_id text, payload jsonb)',
                v_fn, NEW.action
                USING ERRCODE = '42P13', HINT = 'Declare it as f(tenant_id text, entity_id text, payload jsonb).';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._approval_action_check() IS
    'Internal: trigger refusing an approval action whose apply or validate function does not take (text, text, jsonb).';
CREATE TRIGGER check_functions BEFORE INSERT OR UPDATE ON kaireon.approval_actions
    FOR EACH ROW EXECUTE FUNCTION kaireon._approval_action_check();

-- The stages a new request of a tenant gets: tenant_settings.settings -> 'approvalStages' ->
-- <action>, else -> 'default', else one stage "review" needing role approver.
CREATE FUNCTION kaireon._approval_stages(p_tenant_id text, p_action text) RETURNS jsonb
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
COMMENT ON FUNCTION kaireon._approval_stages(text, text) IS
    'Internal: the approval stages ({name, requiredRole} in order) a new request of the action gets for the tenant.';

-- Whether a user may decide a stage that requires p_role: its kaireon.users role is p_role,
-- or it is assigned a custom role of that name; the user belongs to the tenant (or to none,
-- a platform user).
CREATE FUNCTION kaireon._user_holds_role(p_tenant_id text, p_user_id text, p_role text) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT EXISTS (
            SELECT 1 FROM kaireon.users u
             WHERE u.id = p_user_id AND (u.tenant_id = p_tenant_id OR u.tenant_id IS NULL)
               AND (u.role = p_role
                    OR EXISTS (SELECT 1 FROM kaireon.custom_role_assignments a
                                 JOIN kaireon.custom_roles r ON r.tenant_id = a.tenant_id AND r.id = a.role_id
                                WHERE a.tenant_id = p_tenant_id AND a.user_id = u.id AND r.name = p_role)));
    END;
COMMENT ON FUNCTION kaireon._user_holds_role(text, text, text) IS
    'Internal: whether a user of the tenant (or a platform user) holds a role, as its users.role or a custom role assignment.';

-- The application user acting (kaireon.user_id), required by the approval functions.
CREATE FUNCTION kaireon._acting_user() RETURNS text
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
COMMENT ON FUNCTION kaireon._acting_user() IS
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
    v_user := kaireon._acting_user();
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
        EXECUTE format('SELECT %s($1, $2, $3)', v_action.validate_function::regproc)
            USING tenant_id, entity_id, payload;
    END IF;
    INSERT INTO kaireon.approval_requests (tenant_id, entity_type, entity_id, action, payload, requester_id, reason)
    VALUES (tenant_id, v_action.entity_type, entity_id, action, payload, v_user, reason)
    RETURNING id INTO v_id;
    FOR v_stage IN SELECT s.value AS stage, s.ordinality AS ord
                     FROM jsonb_array_elements(kaireon._approval_stages(tenant_id, action)) WITH ORDINALITY s LOOP
        INSERT INTO kaireon.approval_request_stages (tenant_id, approval_request_id, stage_name, ordinal, required_role)
        VALUES (tenant_id, v_id, v_stage.stage ->> 'name', v_stage.ord, v_stage.stage ->> 'requiredRole');
    END LOOP;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION kaireon.request_approval(text, text, text, jsonb, text) IS
    'Files a change for four-eyes approval: the registered action (kaireon.approval_actions) with its payload, checked by the action''s validate function. The requester is kaireon.user_id. The request gets the tenant''s approval stages; returns its id.';

-- Lock a request of a tenant and check it is pending.
CREATE FUNCTION kaireon._pending_request(p_tenant_id text, p_request_id text) RETURNS kaireon.approval_requests
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
COMMENT ON FUNCTION kaireon._pending_request(text, text) IS
    'Internal: locks a pending approval request of a tenant, or raises 42704 (unknown) or 55000 (not pending).';

-- The stage a decision applies to, checked against the deciding user.
CREATE FUNCTION kaireon._current_stage(p_req kaireon.approval_requests, p_user text)
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
    IF NOT kaireon._user_holds_role(p_req.tenant_id, p_user, v_stage.required_role) THEN
        RAISE EXCEPTION 'user "%" does not hold role "%" required by stage % ("%") of approval request "%"',
            p_user, v_stage.required_role, v_stage.ordinal, v_stage.stage_name, p_req.id
            USING ERRCODE = '42501', HINT = 'Stages are decided in order; this one needs a user with that role.';
    END IF;
    RETURN v_stage;
END
$fn$;
COMMENT ON FUNCTION kaireon._current_stage(kaireon.approval_requests, text) IS
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
    v_apply     regprocedure;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    v_user := kaireon._acting_user();
    v_req := kaireon._pending_request(tenant_id, request_id);
    v_stage := kaireon._current_stage(v_req, v_user);
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
    EXECUTE format('SELECT %s($1, $2, $3)', v_apply::regproc) USING v_req.tenant_id, v_req.entity_id, v_req.payload;
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
    v_user := kaireon._acting_user();
    v_req := kaireon._pending_request(tenant_id, request_id);
    v_stage := kaireon._current_stage(v_req, v_user);
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
    v_user := kaireon._acting_user();
    v_req := kaireon._pending_request(tenant_id, request_id);
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

CREATE FUNCTION kaireon._validate_contact_policy_change(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon._validate_contact_policy_change(text, text, jsonb) IS
    'Internal: validate function of approval action contact_policy.change (operation, settable columns, the policy exists, config valid for its rule_type, scopes shape).';

CREATE FUNCTION kaireon._apply_contact_policy_change(tenant_id text, entity_id text, payload jsonb)
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
    PERFORM kaireon._validate_contact_policy_change(tenant_id, entity_id, payload);
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
COMMENT ON FUNCTION kaireon._apply_contact_policy_change(text, text, jsonb) IS
    'Internal: apply function of approval action contact_policy.change; runs inside kaireon.approve_request.';

-- ---------------------------------------------------------------------------------------
-- Action four_eyes.settings_change: while four-eyes is on, turning it off or changing the
-- approval stages needs approval too. Payload: {"four_eyes_enabled": false} and/or
-- {"approval_stages": {...}} (the new settings -> 'approvalStages'; null removes it).
-- ---------------------------------------------------------------------------------------

CREATE FUNCTION kaireon._validate_four_eyes_settings(tenant_id text, entity_id text, payload jsonb)
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
COMMENT ON FUNCTION kaireon._validate_four_eyes_settings(text, text, jsonb) IS
    'Internal: validate function of approval action four_eyes.settings_change.';

CREATE FUNCTION kaireon._apply_four_eyes_settings(tenant_id text, entity_id text, payload jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon._validate_four_eyes_settings(tenant_id, entity_id, payload);
    UPDATE kaireon.tenant_settings s
       SET four_eyes_enabled = CASE WHEN payload ? 'four_eyes_enabled' THEN (payload ->> 'four_eyes_enabled')::boolean
                                    ELSE s.four_eyes_enabled END,
           settings = CASE WHEN NOT payload ? 'approval_stages' THEN s.settings
                           WHEN jsonb_typeof(payload -> 'approval_stages') = 'null' THEN s.settings - 'approvalStages'
                           ELSE jsonb_set(s.settings, '{approvalStages}', payload -> 'approval_stages') END
     WHERE s.tenant_id = _apply_four_eyes_settings.tenant_id;
END
$fn$;
COMMENT ON FUNCTION kaireon._apply_four_eyes_settings(text, text, jsonb) IS
    'Internal: apply function of approval action four_eyes.settings_change.';

INSERT INTO kaireon.approval_actions (action, entity_type, apply_function, validate_function, description) VALUES
    ('contact_policy.change', 'contact_policies',
     'kaireon._apply_contact_policy_change(text,text,jsonb)', 'kaireon._validate_contact_policy_change(text,text,jsonb)',
     'Create, update, delete, soft-delete or restore a contact policy and replace its scopes.'),
    ('four_eyes.settings_change', 'tenant_settings',
     'kaireon._apply_four_eyes_settings(text,text,jsonb)', 'kaireon._validate_four_eyes_settings(text,text,jsonb)',
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
-- kaireon install script, part 75: arbitration (docs/arbitration.md): validation of
-- cross-offer constraints, arbitration profiles and run limits; batch campaigns
-- (run_campaign, simulate) and their result table; real-time dual prices and their update;
-- EXP3-IX state.

-- Cross-offer constraints are validated when written: the config by the C validator, the
-- scope by type (a channel quota counts channels, a category cap categories).
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF rule_type, config ON kaireon.cross_offer_constraints
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('cross_offer_constraint', 'rule_type', 'config');
ALTER TABLE kaireon.cross_offer_constraints
    ADD CONSTRAINT cross_offer_constraints_scope_fits_type CHECK (
        (rule_type <> 'channel_quota' OR scope IN ('global', 'channel'))
        AND (rule_type <> 'category_cap' OR scope IN ('global', 'category')));
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF weights ON kaireon.arbitration_profiles
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('arbitration_profile', '', 'weights');
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF volume_constraints ON kaireon.runs
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('run_volume_constraints', '', 'volume_constraints');

-- recommend compiles the active cross-offer constraints (per-response caps, dual prices):
-- a change renews the tenant's configuration version like every other configuration table.
CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.cross_offer_constraints
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.cross_offer_constraints
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.cross_offer_constraints
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.cross_offer_constraints
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();

-------------------------------------------------------------------------------
-- Batch campaigns
-------------------------------------------------------------------------------

-- No foreign key of its own to kaireon.tenants: the one to campaign_runs (which cascades from
-- the tenant) is enough, and every foreign key costs a check per written row.
CREATE TABLE kaireon.campaign_decisions (
    tenant_id               text NOT NULL,
    campaign_run_id         text NOT NULL,
    customer_id             text NOT NULL,
    rank                    integer NOT NULL CHECK (rank BETWEEN 1 AND 50),
    offer_id                text NOT NULL,
    creative_id             text,
    channel_id              text NOT NULL,
    decision_flow_id        text,
    score                   double precision NOT NULL,
    arbitrated_value        double precision NOT NULL,
    mandatory               boolean NOT NULL DEFAULT false,
    recommendation_id       text NOT NULL,
    interaction_id          text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_run_id, customer_id, rank),
    FOREIGN KEY (tenant_id, campaign_run_id) REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.campaign_decisions IS
    'kaireon''s own table: the per-customer decisions of a batch campaign run (kaireon.run_campaign), ranked per customer, with the score the pipeline gave, the value net of the dual prices (arbitrated_value) and, unless the run was a simulation, the interaction_history row that records it.';

CREATE FUNCTION kaireon.run_campaign(tenant_id text, run_id text, simulation boolean DEFAULT false)
    RETURNS kaireon.campaign_runs
    AS 'MODULE_PATHNAME', 'kaireon_run_campaign'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_campaign(text, text, boolean) IS
    'Runs a batch campaign (a kaireon.runs row) over its segment or customer query: candidates and scores per customer through the recommend pipeline (dry run), dual prices of every global constraint by Lagrangian relaxation, at most max_offers per customer, written to kaireon.campaign_decisions; unless simulation, also records the interactions and takes the budget and volume units. Returns the kaireon.campaign_runs row (status completed, or failed with the error and no decisions). See docs/arbitration.md.';

CREATE FUNCTION kaireon.simulate(tenant_id text, run_id text DEFAULT NULL, decision_flow_key text DEFAULT NULL,
                                 segment_id text DEFAULT NULL, sample_size integer DEFAULT 1000,
                                 config jsonb DEFAULT '{}', name text DEFAULT NULL)
    RETURNS kaireon.simulation_runs
    AS 'MODULE_PATHNAME', 'kaireon_simulate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.simulate(text, text, text, text, integer, jsonb, text) IS
    'A what-if batch campaign over a sample of customers (first sample_size by FNV-1a hash of the id): the same pipeline and Lagrangian arbitration as run_campaign, from a run definition and/or the arguments (config: channelIds, maxOffers, customerQuery, volumeConstraints, tolerance, maxIterations); writes nothing but its kaireon.simulation_runs row, which it returns. See docs/arbitration.md.';

-------------------------------------------------------------------------------
-- Logging for off-policy evaluation: what each recorded decision was decided with
-------------------------------------------------------------------------------

ALTER TABLE kaireon.interaction_history
    ADD COLUMN selection_probability double precision CHECK (selection_probability > 0 AND selection_probability <= 1),
    ADD COLUMN arbitration_arm integer CHECK (arbitration_arm >= 0),
    ADD COLUMN arbitration_profile_id text,
    ADD COLUMN lambda_version bigint,
    ADD COLUMN policy_version_hash text,
    ADD COLUMN model_version integer;
COMMENT ON COLUMN kaireon.interaction_history.selection_probability IS
    'Recorded decisions of a stochastic policy: the probability with which the policy chose what decided it (the EXP3-IX arm), for off-policy evaluation; NULL for deterministic decisions.';
COMMENT ON COLUMN kaireon.interaction_history.arbitration_arm IS
    'Recorded decisions scored by an EXP3-IX arbitration profile: the arm (index into its weights.arms) drawn.';
COMMENT ON COLUMN kaireon.interaction_history.arbitration_profile_id IS
    'Recorded decisions: the arbitration profile whose PRIE weights scored them.';
COMMENT ON COLUMN kaireon.interaction_history.lambda_version IS
    'Recorded decisions: the version of the real-time dual prices subtracted in ranking (kaireon.dual_price_state.version); NULL when real-time arbitration did not price the decision.';
COMMENT ON COLUMN kaireon.interaction_history.policy_version_hash IS
    'Recorded decisions: the policy snapshot hash (kaireon.policy_snapshots) of the rules, policies and guardrails that decided eligibility.';
COMMENT ON COLUMN kaireon.interaction_history.model_version IS
    'Recorded decisions with a model: algorithm_models.version of model_key when the decision was made.';

-------------------------------------------------------------------------------
-- Real-time dual prices
-------------------------------------------------------------------------------

CREATE TABLE kaireon.dual_prices (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    constraint_key          text NOT NULL,
    constraint_name         text,
    constraint_type         text NOT NULL,
    lambda                  double precision NOT NULL DEFAULT 0 CHECK (lambda >= 0),
    pacing_multiplier       double precision NOT NULL DEFAULT 1 CHECK (pacing_multiplier BETWEEN 0.5 AND 2),
    capacity                double precision NOT NULL,
    consumed                double precision NOT NULL DEFAULT 0,
    target_rate             double precision,
    observed_rate           double precision,
    period_start            timestamptz NOT NULL,
    period_end              timestamptz NOT NULL,
    as_of                   timestamptz NOT NULL,
    version                 bigint NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, constraint_key)
);
COMMENT ON TABLE kaireon.dual_prices IS
    'kaireon''s own table: the real-time dual price (lambda) of each constraint with a limit over a calendar period (cross-offer constraints, budgets, volume constraints), kept by kaireon.update_dual_prices by online dual descent towards the paced target (pacing multiplier in [0.5, 2], rates per hour); recommend subtracts lambda * cost in ranking when the tenant''s realtime_arbitration_enabled is on.';

CREATE TABLE kaireon.dual_price_state (
    tenant_id               text NOT NULL PRIMARY KEY REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    version                 bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
    attempted               bigint NOT NULL DEFAULT 0 CHECK (attempted >= 0),
    noops                   bigint NOT NULL DEFAULT 0 CHECK (noops >= 0),
    solver_failed           bigint NOT NULL DEFAULT 0 CHECK (solver_failed >= 0),
    not_converged           bigint NOT NULL DEFAULT 0 CHECK (not_converged >= 0),
    last_run_at             timestamptz,
    last_error              text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.dual_price_state IS
    'kaireon''s own table: per tenant, the version of its dual prices (recorded on every decision they priced) and the counters of kaireon.update_dual_prices: updates attempted, no-ops (no price moved), solver failures (the error is in last_error) and updates after which a constraint was still consumed faster than its paced target.';

CREATE FUNCTION kaireon.update_dual_prices()
    RETURNS TABLE (tenant_id text, constraint_key text, lambda double precision, previous_lambda double precision,
                   pacing_multiplier double precision, target_rate double precision, observed_rate double precision,
                   consumed double precision, capacity double precision, version bigint)
    AS 'MODULE_PATHNAME', 'kaireon_update_dual_prices_all'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.update_dual_prices() IS
    'The maintenance step of real-time Lagrangian arbitration: updates the dual prices of every tenant with realtime_arbitration_enabled (that the caller may act for), each in a subtransaction (a failure is counted in dual_price_state.solver_failed and leaves the prices as they were). Run by the maintenance worker, or schedule it with pg_cron. See docs/arbitration.md.';

CREATE FUNCTION kaireon.update_dual_prices(tenant_id text, as_of timestamptz DEFAULT NULL)
    RETURNS TABLE (tenant_id text, constraint_key text, lambda double precision, previous_lambda double precision,
                   pacing_multiplier double precision, target_rate double precision, observed_rate double precision,
                   consumed double precision, capacity double precision, version bigint)
    AS 'MODULE_PATHNAME', 'kaireon_update_dual_prices'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.update_dual_prices(text, timestamptz) IS
    'Updates one tenant''s dual prices by online dual descent as of a time (default the transaction''s start), whether or not its real-time arbitration is on; returns each constraint''s new and previous price, pacing multiplier, target and observed rates (per hour), consumption, capacity and the new version.';

-------------------------------------------------------------------------------
-- EXP3-IX
-------------------------------------------------------------------------------

CREATE TABLE kaireon.exp3_arms (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    profile_id              text NOT NULL,
    arm                     integer NOT NULL CHECK (arm >= 0),
    gain                    double precision NOT NULL DEFAULT 0 CHECK (gain >= 0),
    rewards                 bigint NOT NULL DEFAULT 0 CHECK (rewards >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, profile_id, arm),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES kaireon.arbitration_profiles (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.exp3_arms IS
    'kaireon''s own table: the EXP3-IX state of an arbitration profile with arms: per arm the cumulative importance-weighted reward estimate (gain, sum of 1 / (p + gamma) over rewarded decisions) and the rewards counted; reset when the profile''s weights change.';

CREATE TABLE kaireon.exp3_rewards (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    interaction_id          text NOT NULL,
    profile_id              text NOT NULL,
    arm                     integer NOT NULL CHECK (arm >= 0),
    selection_probability   double precision NOT NULL CHECK (selection_probability > 0 AND selection_probability <= 1),
    reward                  double precision NOT NULL CHECK (reward BETWEEN 0 AND 1),
    estimate                double precision NOT NULL CHECK (estimate >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, interaction_id),
    FOREIGN KEY (tenant_id, profile_id) REFERENCES kaireon.arbitration_profiles (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.exp3_rewards (tenant_id, profile_id);
COMMENT ON TABLE kaireon.exp3_rewards IS
    'kaireon''s own table: the decisions (interaction ids) whose EXP3-IX arm a positive outcome rewarded, with the arm, its probability and the estimate added to its gain; one row per decision, so a decision is rewarded once.';

CREATE FUNCTION kaireon._exp3_reset() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NEW.weights IS DISTINCT FROM OLD.weights THEN
        DELETE FROM kaireon.exp3_arms a WHERE a.tenant_id = NEW.tenant_id AND a.profile_id = NEW.id;
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._exp3_reset() IS
    'Internal: AFTER UPDATE trigger on arbitration_profiles: new weights (other arms) start the profile''s EXP3-IX state afresh.';
CREATE TRIGGER exp3_reset AFTER UPDATE OF weights ON kaireon.arbitration_profiles
    FOR EACH ROW EXECUTE FUNCTION kaireon._exp3_reset();

CREATE FUNCTION kaireon.exp3_state(tenant_id text, profile_key text)
    RETURNS TABLE (arm integer, weights jsonb, gain double precision, rewards bigint, probability double precision)
    AS 'MODULE_PATHNAME', 'kaireon_exp3_state'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.exp3_state(text, text) IS
    'The arms of an EXP3-IX arbitration profile: each arm''s normalised PRIE weights, gain, rewards and the probability recommend now draws it with.';
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
-- kaireon install script, part 80: retention and the maintenance run history.
-- kaireon.run_retention (C, src/retention.c) removes what each tenant's retention_configs
-- (or the defaults below) say has expired, in bounded batches; whole monthly partitions of
-- interaction_history go in one step when every tenant's cutoff has passed them. The
-- background workers (src/worker.c) and kaireon.run_maintenance record their runs in
-- kaireon.maintenance_runs. See docs/retention.md and docs/workers.md.

-- The run history of the maintenance jobs: one row per run of a job by a worker, by
-- kaireon.run_maintenance or by a retention call; kept to kaireon.run_history_size rows per
-- job. A row still 'running' whose process is gone was interrupted (crash, SIGTERM); the
-- worker marks it so when it starts and runs the job again.
CREATE TABLE kaireon.maintenance_runs (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job                     text NOT NULL
                            CHECK (job IN ('retention', 'partitions', 'outbox', 'summaries', 'volume_reset',
                                           'suppressions', 'scores', 'dual_prices')),
    source                  text NOT NULL CHECK (source IN ('worker', 'function', 'procedure')),
    trigger                 text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('schedule', 'recovery', 'manual')),
    status                  text NOT NULL DEFAULT 'running'
                            -- skipped: a worker found the job running elsewhere (src/jobs.c)
                            CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    pid                     integer NOT NULL DEFAULT pg_backend_pid(),
    database_name           name NOT NULL DEFAULT current_database(),
    started_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at             timestamptz,
    detail                  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maintenance_runs_job_id_idx ON kaireon.maintenance_runs (job, id);
CREATE INDEX maintenance_runs_running_idx ON kaireon.maintenance_runs (id) WHERE status = 'running';
COMMENT ON TABLE kaireon.maintenance_runs IS
    'kaireon''s own table: the run history of the maintenance jobs (retention, partitions, outbox, summaries, volume_reset, suppressions, scores, dual_prices), like pg_cron''s job_run_details but capped at kaireon.run_history_size rows per job. detail holds what the run did (and, while it runs, its progress). Row level security with no policy: only superusers and BYPASSRLS roles see it.';
ALTER TABLE kaireon.maintenance_runs ENABLE ROW LEVEL SECURITY;

-- The default retention of every data class, and the tables each covers: the one list.
CREATE FUNCTION kaireon.retention_defaults()
    RETURNS TABLE (data_class text, retention_days integer, covers text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT * FROM (VALUES
        ('interactions', 730, 'interaction_history (whole monthly partitions when every tenant''s cutoff has passed them), impressions, decision_locks (after kaireon.retention_decision_lock_days), respond_idempotency (after kaireon.retention_idempotency_days)'),
        ('decisions', 365, 'decision_traces, model_shadow_scores, campaign_decisions, and policy_snapshots no remaining trace refers to'),
        ('metrics', 2555, 'metric_values, creative_performance; interaction_summaries too when the tenant has no summaries row'),
        ('summaries', 2555, 'interaction_summaries (by updated_at)'),
        ('audit', 2555, 'audit_logs, through kaireon.purge_audit_chain, which leaves an anchor so the rest of the chain still verifies'),
        ('suppressions', 0, 'suppressions whose expires_at is older than the cutoff (0 days: as soon as they expire)'),
        ('outbox', 30, 'published and dead outbox_events, dead_letter_events')
    ) AS d (data_class, retention_days, covers)
$fn$;
COMMENT ON FUNCTION kaireon.retention_defaults() IS
    'The retention of each data class when a tenant has no retention_configs row for it (days), and the tables each class covers (docs/retention.md).';

-- What retention applies to every tenant and class: the tenant's row, else (for summaries)
-- its metrics row, else the default.
CREATE FUNCTION kaireon.retention_policies(as_of timestamptz DEFAULT now())
    RETURNS TABLE (tenant_id text, data_class text, retention_days integer, legal_hold boolean,
                   configured boolean, cutoff timestamptz)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t.id, d.data_class,
           coalesce(c.retention_days, m.retention_days, d.retention_days),
           coalesce(c.legal_hold, m.legal_hold, false),
           c.id IS NOT NULL OR m.id IS NOT NULL,
           as_of - make_interval(days => coalesce(c.retention_days, m.retention_days, d.retention_days))
      FROM kaireon.tenants t
     CROSS JOIN kaireon.retention_defaults() d
      LEFT JOIN kaireon.retention_configs c ON c.tenant_id = t.id AND c.data_class = d.data_class
      LEFT JOIN kaireon.retention_configs m ON d.data_class = 'summaries' AND c.id IS NULL
                                           AND m.tenant_id = t.id AND m.data_class = 'metrics'
     ORDER BY t.id, d.data_class
$fn$;
COMMENT ON FUNCTION kaireon.retention_policies(timestamptz) IS
    'The retention each tenant gets for each data class as of a time: its retention_configs row, else (for summaries) its metrics row, else kaireon.retention_defaults(); with the legal hold and the cutoff (rows older than it are removed). Shows the tenants the caller may see.';

-- The bounds of a range partition of a timestamptz column: NULL for MINVALUE / MAXVALUE and
-- for the default partition.
-- pg_get_expr prints the bounds in the session's DateStyle and TimeZone; both are pinned so
-- the text reads back as the same instant (zone abbreviations such as IST are ambiguous).
CREATE FUNCTION kaireon._partition_bounds(part regclass, OUT lower_bound timestamptz, OUT upper_bound timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    SET datestyle = 'ISO, YMD'
    SET timezone = 'UTC'
AS $fn$
DECLARE
    b           text := pg_get_expr((SELECT relpartbound FROM pg_class WHERE oid = part), part);
    m           text[];
BEGIN
    m := regexp_match(b, '^FOR VALUES FROM \((.*)\) TO \((.*)\)$');
    IF m IS NULL THEN
        RETURN;
    END IF;
    IF m[1] <> 'MINVALUE' THEN
        lower_bound := trim(both '''' from m[1])::timestamptz;
    END IF;
    IF m[2] <> 'MAXVALUE' THEN
        upper_bound := trim(both '''' from m[2])::timestamptz;
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon._partition_bounds(regclass) IS
    'Internal: the lower and upper bound of a range partition on a timestamptz column (NULL for MINVALUE, MAXVALUE and the default partition).';

-- The tenants with rows in a table, by skipping through its (tenant_id, ...) index.
CREATE FUNCTION kaireon._tenants_in(tbl regclass) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH RECURSIVE t (tenant_id) AS ('
        '  (SELECT tenant_id FROM %1$s ORDER BY tenant_id LIMIT 1)'
        '  UNION ALL'
        '  SELECT (SELECT x.tenant_id FROM %1$s x WHERE x.tenant_id > t.tenant_id ORDER BY x.tenant_id LIMIT 1)'
        '    FROM t WHERE t.tenant_id IS NOT NULL)'
        ' SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL', tbl);
END
$fn$;
COMMENT ON FUNCTION kaireon._tenants_in(regclass) IS
    'Internal: the distinct tenant_id values of a table, found by skipping through its index on tenant_id (a few index probes per tenant, not a scan).';

-- Drops (or detaches) one monthly partition of interaction_history for retention. Runs as
-- the extension owner, who owns the partitions. The locks are taken in the order DROP takes
-- them (the parent, then the partition), each waiting at most lock_timeout_ms, and the
-- tenants with rows in the partition are checked again under the locks: every one must be in
-- allowed_tenants and, by its retention policy now, have no hold on interactions and a cutoff
-- past the partition's upper bound. The function trusts no caller with the second check: it is
-- SECURITY DEFINER, and an admin role without BYPASSRLS may call it.
CREATE FUNCTION kaireon._retire_interaction_partition(part text, allowed_tenants text[],
                                                      detach boolean DEFAULT false,
                                                      lock_timeout_ms integer DEFAULT 100)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel       regclass := to_regclass(format('kaireon.%I', part));
    v_old       text := current_setting('lock_timeout');
    v_other     text;
    v_upper     timestamptz;
BEGIN
    IF v_rel IS NULL THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'kaireon.interaction_history'::regclass AND i.inhrelid = v_rel
                      AND NOT c.relpartbound IS NULL
                      AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') THEN
        RAISE EXCEPTION '"%" is not a monthly partition of kaireon.interaction_history', part
            USING ERRCODE = '22023', HINT = 'Only monthly partitions are retired; the default partition is purged row by row.';
    END IF;
    PERFORM set_config('lock_timeout', greatest(lock_timeout_ms, 1)::text, true);
    LOCK TABLE ONLY kaireon.interaction_history IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('LOCK TABLE kaireon.%I IN ACCESS EXCLUSIVE MODE', part);
    PERFORM set_config('lock_timeout', v_old, true);
    v_upper := (SELECT b.upper_bound FROM kaireon._partition_bounds(v_rel) b);
    IF v_upper IS NULL THEN
        RETURN false;
    END IF;
    SELECT t INTO v_other FROM kaireon._tenants_in(v_rel) AS t
     WHERE t <> ALL (allowed_tenants)
        OR NOT EXISTS (SELECT 1 FROM kaireon.retention_policies(now()) p
                        WHERE p.tenant_id = t AND p.data_class = 'interactions'
                          AND NOT p.legal_hold AND p.cutoff >= v_upper)
     LIMIT 1;
    IF FOUND THEN
        RETURN false;
    END IF;
    IF detach THEN
        EXECUTE format('ALTER TABLE kaireon.interaction_history DETACH PARTITION kaireon.%I', part);
        EXECUTE format('COMMENT ON TABLE kaireon.%I IS %L', part,
                       format('InteractionHistory: detached from interaction_history by retention on %s; archive it, then drop it',
                              to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')));
    ELSE
        EXECUTE format('DROP TABLE kaireon.%I', part);
    END IF;
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION kaireon._retire_interaction_partition(text, text[], boolean, integer) IS
    'Internal (retention): drops or detaches a monthly partition of interaction_history once its locks are held (waiting at most lock_timeout_ms for each) and every tenant with rows in it is among allowed_tenants, has no legal hold on interactions and a cutoff past the partition''s upper bound; false when it is gone or holds rows that must stay.';

CREATE FUNCTION kaireon.run_retention(dry_run boolean DEFAULT false, data_classes text[] DEFAULT NULL)
    RETURNS TABLE (tenant_id text, data_class text, retention_days integer, cutoff timestamptz,
                   held boolean, rows_deleted bigint, partitions_dropped integer, detail jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_run_retention'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_retention(boolean, text[]) IS
    'Retention (docs/retention.md): for every tenant and data class (all, or those in data_classes), removes the rows older than the cutoff unless a legal hold applies, in bounded batches, dropping whole monthly partitions of interaction_history when every tenant''s cutoff has passed them, then creates the coming months'' partitions. Returns one row per tenant and class (and rows with a NULL tenant for the partitions), with what was (or, with dry_run, would be) removed. Runs in the caller''s transaction; CALL kaireon.run_retention_batched() commits after every batch.';

CREATE PROCEDURE kaireon.run_retention_batched(dry_run boolean DEFAULT false, data_classes text[] DEFAULT NULL,
                                               INOUT run_id bigint DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'kaireon_run_retention_batched'
    LANGUAGE C;
COMMENT ON PROCEDURE kaireon.run_retention_batched(boolean, text[], bigint) IS
    'kaireon.run_retention committing after every batch (each a short transaction, pausing kaireon.retention_batch_delay between them); for large purges from pg_cron or a script. Call it outside a transaction block. Returns the id of its kaireon.maintenance_runs row, whose detail holds the report.';
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
CREATE TABLE kaireon.outbox_handlers (
    topic                   text NOT NULL PRIMARY KEY CHECK (length(topic) BETWEEN 1 AND 200),
    handler                 regprocedure NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.outbox_handlers IS
    'kaireon''s own table: the delivery function of an outbox topic (''*'': every topic without its own), called by kaireon.publish_outbox as handler(tenant_id text, event_id text, topic text, payload jsonb) before the NOTIFY; an error it raises is a failed delivery (retried, then dead-lettered). Written only by superusers and BYPASSRLS roles: handlers run with the publisher''s privileges.';
ALTER TABLE kaireon.outbox_handlers ENABLE ROW LEVEL SECURITY;

CREATE FUNCTION kaireon._check_outbox_handler() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (SELECT array_agg(a.t::regtype::text ORDER BY a.n) FROM pg_proc p, unnest(p.proargtypes) WITH ORDINALITY AS a (t, n)
         WHERE p.oid = NEW.handler) IS DISTINCT FROM ARRAY['text', 'text', 'text', 'jsonb']
       OR (SELECT p.prokind FROM pg_proc p WHERE p.oid = NEW.handler) <> 'f' THEN
        RAISE EXCEPTION 'outbox handler % of topic "%" must be a function taking (text, text, text, jsonb)',
                        NEW.handler, NEW.topic
            USING ERRCODE = '22023',
                  HINT = 'Declare it as handler(tenant_id text, event_id text, topic text, payload jsonb); raise an error to fail the delivery.';
    END IF;
    IF NOT (SELECT r.rolsuper FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE p.oid = NEW.handler) THEN
        RAISE EXCEPTION 'outbox handler % of topic "%" is not owned by a superuser', NEW.handler, NEW.topic
            USING ERRCODE = '42501',
                  HINT = 'Handlers run with the publisher''s privileges: a superuser must create (or own) the function.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._check_outbox_handler() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of outbox_handlers refusing a handler without the signature (text, text, text, jsonb) or not owned by a superuser.';
CREATE TRIGGER check_handler BEFORE INSERT OR UPDATE ON kaireon.outbox_handlers
    FOR EACH ROW EXECUTE FUNCTION kaireon._check_outbox_handler();

-- The delay before retry n (1, 2, ...): kaireon.outbox_retry_base * 2^(n-1), at most
-- kaireon.outbox_retry_max.
CREATE FUNCTION kaireon._outbox_backoff(retry integer) RETURNS interval
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT least(coalesce(nullif(current_setting('kaireon.outbox_retry_base', true), '')::interval, interval '1 second')
                 * power(2, greatest(retry, 1) - 1)::double precision,
                 coalesce(nullif(current_setting('kaireon.outbox_retry_max', true), '')::interval, interval '1 hour'))
$fn$;
COMMENT ON FUNCTION kaireon._outbox_backoff(integer) IS
    'Internal: the wait before the n-th retry of an outbox event: kaireon.outbox_retry_base doubled per retry, capped at kaireon.outbox_retry_max.';

CREATE FUNCTION kaireon.publish_outbox(max_events integer DEFAULT 100) RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev          record;
    v_nsp       name;
    v_fn        name;
    v_super     boolean;
    v_handler   text;
    v_found     boolean;
    v_err       text;
    n           integer := 0;
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000, not %', coalesce(max_events::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how many due events to handle in this call.';
    END IF;
    -- Due events in the order they were written; events another publisher holds are skipped.
    FOR ev IN SELECT o.tenant_id, o.id, o.seq, o.topic, o.payload, o.retry_count, o.max_retries
                FROM kaireon.outbox_events o
               WHERE o.status IN ('pending', 'failed') AND o.next_attempt_at <= now()
               ORDER BY o.seq
               LIMIT max_events
                 FOR UPDATE SKIP LOCKED
    LOOP
        -- (a regprocedure column does not keep its function from being dropped: a handler
        -- gone, or no longer owned by a superuser, fails the delivery instead of skipping it)
        SELECT n2.nspname, p.proname, r.rolsuper, h.handler::oid::text INTO v_nsp, v_fn, v_super, v_handler
          FROM kaireon.outbox_handlers h
          LEFT JOIN pg_proc p ON p.oid = h.handler
          LEFT JOIN pg_namespace n2 ON n2.oid = p.pronamespace
          LEFT JOIN pg_roles r ON r.oid = p.proowner
         WHERE h.topic IN (ev.topic, '*')
         ORDER BY h.topic = '*'
         LIMIT 1;
        v_found := FOUND;
        BEGIN
            IF v_found AND v_fn IS NULL THEN
                RAISE EXCEPTION 'the handler of topic "%" (function oid %) no longer exists', ev.topic, v_handler
                    USING ERRCODE = '42883';
            ELSIF v_found AND NOT v_super THEN
                RAISE EXCEPTION 'the handler %.% of topic "%" is not owned by a superuser', v_nsp, v_fn, ev.topic
                    USING ERRCODE = '42501';
            ELSIF v_found THEN
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
                       next_attempt_at = now() + kaireon._outbox_backoff(ev.retry_count + 1)
                 WHERE tenant_id = ev.tenant_id AND id = ev.id;
            END IF;
        END;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION kaireon.publish_outbox(integer) IS
    'Publishes up to max_events due outbox events in seq order (FOR UPDATE SKIP LOCKED, so publishers never wait for each other): calls the topic''s handler (kaireon.outbox_handlers), then NOTIFY kaireon_events with {"id", "tenantId", "topic"} (delivered at commit), and marks the event published. A failed delivery is retried after kaireon._outbox_backoff(n); after max_retries retries the event is dead and copied to dead_letter_events. Returns how many events it handled. The maintenance worker calls it on kaireon.outbox_schedule.';

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
-- kaireon install script, part 82: interaction summaries, metrics and customer scores
-- (docs/workers.md, "Summaries, metrics and scores").
--
-- kaireon.rollup_summaries adds the interaction_history rows written since its watermark
-- (by created_at, which a BRIN index on every partition makes cheap to find) to the
-- interaction_summaries rows each summary definition asks for; kaireon.compute_metrics
-- compiles each metric definition into one query over those summaries and writes
-- metric_values; kaireon.compute_engagement_health and kaireon.compute_customer_clv score
-- customers from their recent history. The maintenance worker runs them on schedule.

-- Where each summary definition's rollup has got to.
CREATE TABLE kaireon.summary_state (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    definition_id           text NOT NULL,
    watermark               timestamptz,
    rolling_as_of           date,
    rows_summarised         bigint NOT NULL DEFAULT 0 CHECK (rows_summarised >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, definition_id),
    FOREIGN KEY (tenant_id, definition_id) REFERENCES kaireon.summary_definitions (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.summary_state IS
    'kaireon''s own table: the rollup state of each summary definition: every interaction_history row created before watermark is counted in its summaries; rolling_as_of is the day its rolling windows (7d, 30d, 90d) end on.';

-- When each metric definition was last computed.
CREATE TABLE kaireon.metric_state (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    metric_id               text NOT NULL,
    summary_definition_id   text,
    computed_at             timestamptz,
    customers               bigint NOT NULL DEFAULT 0 CHECK (customers >= 0),
    error                   text,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric_id),
    FOREIGN KEY (tenant_id, metric_id) REFERENCES kaireon.metric_definitions (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.metric_state IS
    'kaireon''s own table: when each metric definition was last computed, from which summary definition, for how many customers, or why it could not be.';

-- What summary definitions and metric definitions may name.
CREATE FUNCTION kaireon._summary_dimensions() RETURNS TABLE (name text, column_name text, expr text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT * FROM (VALUES
        ('customer', 'customer_id', 'h.customer_id'),
        ('offer', 'offer_id', 'h.offer_id'),
        ('creative', 'creative_id', 'h.creative_id'),
        ('channel', 'channel_id', 'h.channel_id'),
        ('placement', NULL, 'h.placement_id'),
        ('decision_flow', NULL, 'h.decision_flow_id'),
        ('campaign', NULL, 'h.campaign_id'),
        ('interaction_type', NULL, 'h.interaction_type'),
        ('outcome', NULL, 'h.outcome_type_key'),
        ('direction', NULL, 'h.direction')
    ) AS d (name, column_name, expr)
$fn$;
COMMENT ON FUNCTION kaireon._summary_dimensions() IS
    'Internal: the dimensions a summary definition may name: customer, offer, creative and channel fill their interaction_summaries columns; the others are joined into dimension_key as name=value|name=value.';

CREATE FUNCTION kaireon._check_summary_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v           jsonb;
BEGIN
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.dimensions) e LOOP
        IF jsonb_typeof(v) <> 'string' OR NOT EXISTS (SELECT 1 FROM kaireon._summary_dimensions() d WHERE d.name = v #>> '{}') THEN
            RAISE EXCEPTION 'invalid summary_definitions.dimensions: % is not a dimension', v
                USING ERRCODE = '22023',
                      HINT = 'Dimensions: customer, offer, creative, channel, placement, decision_flow, campaign, interaction_type, outcome, direction.';
        END IF;
    END LOOP;
    IF (SELECT count(*) <> count(DISTINCT e) FROM jsonb_array_elements(NEW.dimensions) e) THEN
        RAISE EXCEPTION 'invalid summary_definitions.dimensions: % names a dimension twice', NEW.dimensions
            USING ERRCODE = '22023', HINT = 'List each dimension once.';
    END IF;
    IF jsonb_array_length(NEW.aggregates) = 0 THEN
        RAISE EXCEPTION 'invalid summary_definitions.aggregates: at least one aggregate is needed'
            USING ERRCODE = '22023', HINT = 'Aggregates: count (all counters), impressions, positive, negative, converts, sum (total_value).';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.aggregates) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('count', 'impressions', 'positive', 'negative', 'converts', 'sum') THEN
            RAISE EXCEPTION 'invalid summary_definitions.aggregates: % is not an aggregate', v
                USING ERRCODE = '22023', HINT = 'Aggregates: count (all counters), impressions, positive, negative, converts, sum (total_value).';
        END IF;
    END LOOP;
    IF jsonb_array_length(NEW.windows) = 0 THEN
        RAISE EXCEPTION 'invalid summary_definitions.windows: at least one window is needed'
            USING ERRCODE = '22023', HINT = 'Windows: hour, day, week, month, all, 7d, 30d, 90d.';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.windows) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('hour', 'day', 'week', 'month', 'all', '7d', '30d', '90d') THEN
            RAISE EXCEPTION 'invalid summary_definitions.windows: % is not a window', v
                USING ERRCODE = '22023', HINT = 'Windows: hour, day, week, month, all, 7d, 30d, 90d.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._check_summary_definition() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of summary_definitions refusing unknown dimensions, aggregates and windows (22023, naming the value).';
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF dimensions, aggregates, windows ON kaireon.summary_definitions
    FOR EACH ROW EXECUTE FUNCTION kaireon._check_summary_definition();

CREATE FUNCTION kaireon._check_metric_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v           jsonb;
BEGIN
    IF NEW.source_field IS NOT NULL
       AND NEW.source_field NOT IN ('impressions', 'positive', 'negative', 'converts', 'total_value') THEN
        RAISE EXCEPTION 'invalid metric_definitions.source_field "%"', NEW.source_field
            USING ERRCODE = '22023', HINT = 'Source fields (interaction_summaries counters): impressions, positive, negative, converts, total_value.';
    END IF;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.group_by_dimensions) e LOOP
        IF jsonb_typeof(v) <> 'string' OR (v #>> '{}') NOT IN ('offer', 'creative', 'channel') THEN
            RAISE EXCEPTION 'invalid metric_definitions.group_by_dimensions: % is not a dimension', v
                USING ERRCODE = '22023', HINT = 'Metrics group by offer, creative or channel (at most two).';
        END IF;
    END LOOP;
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.filter_conditions) e LOOP
        IF jsonb_typeof(v) <> 'object' OR (v ->> 'field') IS NULL OR (v ->> 'field') NOT IN ('offer', 'creative', 'channel')
           OR (v ->> 'operator') IS NULL OR (v ->> 'operator') NOT IN ('eq', 'neq', 'in', 'not_in')
           OR NOT v ? 'value'
           OR ((v ->> 'operator') IN ('in', 'not_in')) <> (jsonb_typeof(v -> 'value') = 'array') THEN
            RAISE EXCEPTION 'invalid metric_definitions.filter_conditions: %', v
                USING ERRCODE = '22023',
                      HINT = 'Each condition is {"field": offer|creative|channel, "operator": eq|neq|in|not_in, "value": ...}, with an array value for in and not_in.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon._check_metric_definition() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of metric_definitions refusing source fields, dimensions and filter conditions compute_metrics cannot compile (22023).';
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF source_field, group_by_dimensions, filter_conditions
    ON kaireon.metric_definitions FOR EACH ROW EXECUTE FUNCTION kaireon._check_metric_definition();

-- The time before which every interaction_history row that will ever be visible already is:
-- the start of the oldest open transaction of this database (a row's created_at is its
-- transaction's start; autovacuum writes no rows), or now. Runs as the extension owner so it sees every session's transaction start. Read it
-- in an earlier statement than the history (READ COMMITTED), so the history's snapshot is
-- taken after it.
CREATE FUNCTION kaireon._summary_horizon() RETURNS timestamptz
    LANGUAGE sql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT least(now(), (SELECT min(a.xact_start) FROM pg_stat_activity a
                          WHERE a.xact_start IS NOT NULL AND a.datname = current_database()
                            AND a.backend_type <> 'autovacuum worker'))
$fn$;
COMMENT ON FUNCTION kaireon._summary_horizon() IS
    'Internal: the start of the oldest open transaction of the server (or now()): interaction_history rows created before it are all committed or gone, so rollups may count up to it.';

-- One rollup step of one summary definition: the history rows created in [lo, hi).
CREATE FUNCTION kaireon._rollup_step(d kaireon.summary_definitions, lo timestamptz, hi timestamptz, as_of date)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_windows   text[] := ARRAY(SELECT jsonb_array_elements_text(d.windows));
    v_aggs      text[] := ARRAY(SELECT jsonb_array_elements_text(d.aggregates));
    v_dims      text[] := ARRAY(SELECT jsonb_array_elements_text(d.dimensions));
    v_cols      text := '';
    v_key       text;
    v_counters  text[] := '{}';
    v_ctes      text := '';
    v_w         text;
    v_period    text;
    v_where     text;
    v_n         bigint;
    i           integer := 0;
BEGIN
    -- rolling windows are sums of day rows, which are kept too
    IF v_windows && ARRAY['7d', '30d', '90d'] AND NOT v_windows @> ARRAY['day'] THEN
        v_windows := v_windows || 'day'::text;
    END IF;
    -- the interaction_summaries columns the dimensions fill, and the dimension key
    SELECT string_agg(format('%s AS %I', CASE WHEN x.name = ANY (v_dims) THEN x.expr ELSE 'NULL::text' END, x.column_name), ', ')
      INTO v_cols FROM kaireon._summary_dimensions() x WHERE x.column_name IS NOT NULL;
    SELECT coalesce(string_agg(format('%L || coalesce(%s, '''')', x.name || '=', x.expr), ' || ''|'' || ' ORDER BY o.n), '''''')
      INTO v_key
      FROM unnest(v_dims) WITH ORDINALITY AS o (dim, n) JOIN kaireon._summary_dimensions() x ON x.name = o.dim
     WHERE x.column_name IS NULL;
    -- the counters the aggregates ask for (the others stay 0)
    v_counters := ARRAY[
        CASE WHEN v_aggs && ARRAY['count', 'impressions'] THEN 'count(*) FILTER (WHERE h.interaction_type = ''impression'' OR h.outcome_type_key = ''impression'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'positive'] THEN 'count(*) FILTER (WHERE ot.classification = ''positive'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'negative'] THEN 'count(*) FILTER (WHERE ot.classification = ''negative'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['count', 'converts'] THEN 'count(*) FILTER (WHERE ot.category = ''conversion'')' ELSE '0' END,
        CASE WHEN v_aggs && ARRAY['sum'] THEN 'coalesce(sum(h.conversion_value), 0)' ELSE '0' END];
    FOREACH v_w IN ARRAY v_windows LOOP
        i := i + 1;
        v_period := CASE v_w
            WHEN 'hour' THEN 'to_char(s.hour, ''YYYY-MM-DD"T"HH24'')'
            WHEN 'day' THEN 'to_char(s.hour, ''YYYY-MM-DD'')'
            WHEN 'week' THEN 'to_char(s.hour, ''IYYY-"W"IW'')'
            WHEN 'month' THEN 'to_char(s.hour, ''YYYY-MM'')'
            WHEN 'all' THEN '''all'''
            ELSE format('%L', to_char(as_of, 'YYYY-MM-DD')) END;
        v_where := CASE v_w
            WHEN '7d' THEN format('WHERE s.hour >= %L', as_of - 6)
            WHEN '30d' THEN format('WHERE s.hour >= %L', as_of - 29)
            WHEN '90d' THEN format('WHERE s.hour >= %L', as_of - 89)
            ELSE '' END;
        v_ctes := v_ctes || format(
            ', w%s AS (INSERT INTO kaireon.interaction_summaries AS x (tenant_id, definition_id, period_type, period_key, '
            '    customer_id, offer_id, creative_id, channel_id, dimension_key, impressions, positive, negative, converts, total_value) '
            '  SELECT $1, $4, %L, %s, s.customer_id, s.offer_id, s.creative_id, s.channel_id, s.dimension_key, '
            '         sum(s.impressions), sum(s.positive), sum(s.negative), sum(s.converts), sum(s.total_value) '
            '    FROM src s %s GROUP BY 4, 5, 6, 7, 8, 9 '
            '  ON CONFLICT (tenant_id, definition_id, period_type, period_key, customer_id, offer_id, creative_id, channel_id, dimension_key) '
            '  DO UPDATE SET impressions = x.impressions + EXCLUDED.impressions, positive = x.positive + EXCLUDED.positive, '
            '                negative = x.negative + EXCLUDED.negative, converts = x.converts + EXCLUDED.converts, '
            '                total_value = x.total_value + EXCLUDED.total_value '
            '  RETURNING 1)', i, v_w, v_period, v_where);
    END LOOP;
    -- one statement: src is read once; every data-modifying CTE runs, read or not
    EXECUTE format(
        'WITH src AS ('
        '  SELECT %s, %s AS dimension_key, date_trunc(''hour'', h.occurred_at AT TIME ZONE ''UTC'') AS hour, '
        '         count(*) AS n, %s AS impressions, %s AS positive, %s AS negative, %s AS converts, %s AS total_value '
        '    FROM kaireon.interaction_history h '
        '    LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key '
        '                                      AND ot.deleted_at IS NULL '
        '   WHERE h.tenant_id = $1 AND h.created_at >= $2 AND h.created_at < $3 '
        '   GROUP BY 1, 2, 3, 4, 5, 6) %s '
        'SELECT coalesce((SELECT sum(n) FROM src), 0)::bigint',
        v_cols, v_key, v_counters[1], v_counters[2], v_counters[3], v_counters[4], v_counters[5], v_ctes)
        INTO v_n USING d.tenant_id, lo, hi, d.id;
    RETURN v_n;
END
$fn$;
COMMENT ON FUNCTION kaireon._rollup_step(kaireon.summary_definitions, timestamptz, timestamptz, date) IS
    'Internal: adds the interaction_history rows of one tenant created in [lo, hi) to the interaction_summaries rows of one summary definition, for each of its windows (rolling windows as of as_of), in one statement; returns the rows read.';

-- Rebuilds a definition's rolling windows (7d, 30d, 90d) as of a new day, from its day rows.
CREATE FUNCTION kaireon._rollup_rolling(d kaireon.summary_definitions, as_of date) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_w         text;
BEGIN
    DELETE FROM kaireon.interaction_summaries s
     WHERE s.tenant_id = d.tenant_id AND s.definition_id = d.id AND s.period_type IN ('7d', '30d', '90d');
    FOR v_w IN SELECT jsonb_array_elements_text(d.windows) INTERSECT SELECT unnest(ARRAY['7d', '30d', '90d']) LOOP
        INSERT INTO kaireon.interaction_summaries (tenant_id, definition_id, period_type, period_key, customer_id,
                                                   offer_id, creative_id, channel_id, dimension_key, impressions,
                                                   positive, negative, converts, total_value)
        SELECT d.tenant_id, d.id, v_w, to_char(as_of, 'YYYY-MM-DD'), s.customer_id, s.offer_id, s.creative_id,
               s.channel_id, s.dimension_key, sum(s.impressions), sum(s.positive), sum(s.negative),
               sum(s.converts), sum(s.total_value)
          FROM kaireon.interaction_summaries s
         WHERE s.tenant_id = d.tenant_id AND s.definition_id = d.id AND s.period_type = 'day'
           AND s.period_key >= to_char(as_of - (rtrim(v_w, 'd')::integer - 1), 'YYYY-MM-DD')
           AND s.period_key <= to_char(as_of, 'YYYY-MM-DD')
         GROUP BY s.customer_id, s.offer_id, s.creative_id, s.channel_id, s.dimension_key;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon._rollup_rolling(kaireon.summary_definitions, date) IS
    'Internal: recomputes the rolling-window rows (7d, 30d, 90d; period_key = the last day) of a summary definition from its day rows, when the day they end on changes.';

CREATE FUNCTION kaireon.rollup_summaries(tenant_id text DEFAULT NULL, max_span interval DEFAULT '1 day')
    RETURNS TABLE (tenant text, definition_key text, rows_read bigint, watermark timestamptz, caught_up boolean)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    d           kaireon.summary_definitions;
    st          kaireon.summary_state;
    v_horizon   timestamptz;
    v_as_of     date;
    v_lo        timestamptz;
    v_hi        timestamptz;
BEGIN
    IF max_span IS NULL OR max_span <= interval '0' THEN
        RAISE EXCEPTION 'max_span must be a positive interval, not %', coalesce(max_span::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how much history (by creation time) one call may add, e.g. ''1 day''.';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'kaireon.rollup_summaries needs READ COMMITTED, not %', current_setting('transaction_isolation')
            USING ERRCODE = '25000',
                  HINT = 'Its watermark is only safe when the history is read with a snapshot taken after the horizon.';
    END IF;
    IF rollup_summaries.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(rollup_summaries.tenant_id);
    END IF;
    v_horizon := kaireon._summary_horizon();
    v_as_of := (v_horizon AT TIME ZONE 'UTC')::date;
    FOR d IN SELECT * FROM kaireon.summary_definitions s
              WHERE s.deleted_at IS NULL
                AND (rollup_summaries.tenant_id IS NULL OR s.tenant_id = rollup_summaries.tenant_id)
              ORDER BY s.tenant_id, s.key LOOP
        INSERT INTO kaireon.summary_state (tenant_id, definition_id) VALUES (d.tenant_id, d.id)
            ON CONFLICT DO NOTHING;
        -- one rollup of a definition at a time: a concurrent one waits, then starts from here
        SELECT * INTO st FROM kaireon.summary_state x
         WHERE x.tenant_id = d.tenant_id AND x.definition_id = d.id FOR UPDATE;
        v_lo := st.watermark;
        IF v_lo IS NULL THEN
            -- from the oldest row, or the horizon if earlier: rows of transactions still open
            -- (created at or after it) are not visible yet
            SELECT min(h.created_at) INTO v_lo FROM kaireon.interaction_history h WHERE h.tenant_id = d.tenant_id;
            v_lo := least(coalesce(v_lo, v_horizon), v_horizon);
        END IF;
        v_hi := greatest(v_lo, least(v_lo + max_span, v_horizon));
        IF d.windows ?| ARRAY['7d', '30d', '90d'] AND st.rolling_as_of IS DISTINCT FROM v_as_of THEN
            PERFORM kaireon._rollup_rolling(d, v_as_of);
        END IF;
        rows_read := CASE WHEN v_hi > v_lo THEN kaireon._rollup_step(d, v_lo, v_hi, v_as_of) ELSE 0 END;
        UPDATE kaireon.summary_state x
           SET watermark = v_hi, rolling_as_of = v_as_of, rows_summarised = x.rows_summarised + rows_read
         WHERE x.tenant_id = d.tenant_id AND x.definition_id = d.id;
        tenant := d.tenant_id;
        definition_key := d.key;
        watermark := v_hi;
        caught_up := v_hi >= v_horizon;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.rollup_summaries(text, interval) IS
    'Adds the interaction_history rows created since each summary definition''s watermark (at most max_span of creation time per definition and call) to its interaction_summaries rows, for every window it lists; rolling windows (7d, 30d, 90d) end on the current UTC day and are rebuilt from day rows when the day changes. Returns, per definition, the rows read, the new watermark and whether it has caught up. READ COMMITTED only. Rows inserted with an explicit created_at older than the watermark are not counted.';

-- Compiles one metric definition into a query over the day rows of a summary definition.
CREATE FUNCTION kaireon._metric_sql(m kaireon.metric_definitions, summary_definition_id text, as_of date)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_field     text := format('%I', coalesce(m.source_field, 'impressions'));
    v_groups    text[] := ARRAY(SELECT jsonb_array_elements_text(m.group_by_dimensions));
    v_key       text;
    v_filter    text := '';
    v_value     text;
    c           jsonb;
    v_col       text;
BEGIN
    SELECT coalesce(string_agg(format('%L || coalesce(s.%I, '''')', g || '=', g || '_id'), ' || ''|'' || ' ORDER BY n), '''''')
      INTO v_key FROM unnest(v_groups) WITH ORDINALITY AS u (g, n);
    FOR c IN SELECT jsonb_array_elements(m.filter_conditions) LOOP
        v_col := format('s.%I', (c ->> 'field') || '_id');
        v_filter := v_filter || CASE c ->> 'operator'
            WHEN 'eq' THEN format(' AND %s = %L', v_col, c ->> 'value')
            WHEN 'neq' THEN format(' AND %s IS DISTINCT FROM %L', v_col, c ->> 'value')
            WHEN 'in' THEN format(' AND %s = ANY (%L::text[])', v_col, ARRAY(SELECT jsonb_array_elements_text(c -> 'value')))
            WHEN 'not_in' THEN format(' AND %s IS DISTINCT FROM ALL (%L::text[])', v_col, ARRAY(SELECT jsonb_array_elements_text(c -> 'value')))
        END;
    END LOOP;
    v_value := CASE m.aggregate_function
        WHEN 'count' THEN 'sum(daily)'
        WHEN 'sum' THEN 'sum(daily)'
        WHEN 'avg' THEN 'avg(daily)'
        WHEN 'min' THEN 'min(daily)'
        WHEN 'max' THEN 'max(daily)'
        WHEN 'ratio' THEN 'coalesce(sum(daily) / nullif(sum(daily_impressions), 0), 0)'
    END;
    RETURN format(
        'SELECT customer_id, dimension_key, (%s)::double precision AS value FROM ('
        '  SELECT s.customer_id, %s AS dimension_key, s.period_key, sum(s.%s)::double precision AS daily, '
        '         sum(s.impressions)::double precision AS daily_impressions '
        '    FROM kaireon.interaction_summaries s '
        '   WHERE s.tenant_id = %L AND s.definition_id = %L AND s.period_type = ''day'' '
        '     AND s.period_key >= %L AND s.period_key <= %L AND s.customer_id IS NOT NULL %s '
        '   GROUP BY 1, 2, 3) d GROUP BY 1, 2',
        v_value, v_key, v_field, m.tenant_id, summary_definition_id,
        to_char(as_of - (m.window_days - 1), 'YYYY-MM-DD'), to_char(as_of, 'YYYY-MM-DD'), v_filter);
END
$fn$;
COMMENT ON FUNCTION kaireon._metric_sql(kaireon.metric_definitions, text, date) IS
    'Internal: the query (customer_id, dimension_key, value) a metric definition compiles to: its aggregate over the daily values of its source field in the window_days days up to as_of, grouped by customer and its group_by_dimensions, filtered by its filter_conditions, from the day rows of a summary definition.';

CREATE FUNCTION kaireon.compute_metrics(tenant_id text DEFAULT NULL, force boolean DEFAULT false)
    RETURNS TABLE (tenant text, metric_key text, customers bigint, status text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    m           kaireon.metric_definitions;
    v_summary   text;
    v_now       timestamptz := clock_timestamp();
    v_as_of     date := (now() AT TIME ZONE 'UTC')::date;
    v_err       text;
BEGIN
    IF compute_metrics.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_metrics.tenant_id);
    END IF;
    FOR m IN SELECT md.* FROM kaireon.metric_definitions md
              LEFT JOIN kaireon.metric_state ms ON ms.tenant_id = md.tenant_id AND ms.metric_id = md.id
              WHERE md.status = 'active'
                AND (compute_metrics.tenant_id IS NULL OR md.tenant_id = compute_metrics.tenant_id)
                AND (force OR ms.computed_at IS NULL
                     OR ms.computed_at <= v_now - make_interval(mins => md.batch_interval_min))
              ORDER BY md.tenant_id, md.key LOOP
        tenant := m.tenant_id;
        metric_key := m.key;
        customers := 0;
        v_err := NULL;
        v_summary := NULL;
        IF m.sql_filter IS NOT NULL THEN
            v_err := 'sql_filter is not supported: it would run arbitrary SQL with the maintenance role''s privileges; use filter_conditions';
        ELSE
            -- the smallest summary definition with the customer, the grouped and the filtered
            -- dimensions, that keeps day rows
            SELECT s.id INTO v_summary FROM kaireon.summary_definitions s
             WHERE s.tenant_id = m.tenant_id AND s.deleted_at IS NULL
               AND s.dimensions @> '["customer"]'
               AND s.dimensions @> m.group_by_dimensions
               AND s.dimensions @> coalesce((SELECT jsonb_agg(DISTINCT c -> 'field') FROM jsonb_array_elements(m.filter_conditions) c), '[]')
               AND s.windows ?| ARRAY['day', '7d', '30d', '90d']
             ORDER BY jsonb_array_length(s.dimensions), s.key
             LIMIT 1;
            IF v_summary IS NULL THEN
                v_err := format('no summary definition keeps day rows with the dimensions customer%s',
                                (SELECT string_agg(', ' || d, '') FROM (SELECT jsonb_array_elements_text(m.group_by_dimensions) AS d
                                     UNION SELECT c ->> 'field' FROM jsonb_array_elements(m.filter_conditions) c) x));
            ELSE
                EXECUTE format('WITH v AS (%s), up AS ('
                               '  INSERT INTO kaireon.metric_values AS x (tenant_id, metric_id, customer_id, dimension_key, value, computed_at) '
                               '  SELECT %L, %L, v.customer_id, v.dimension_key, v.value, %L FROM v '
                               '  ON CONFLICT (tenant_id, metric_id, customer_id, dimension_key) '
                               '  DO UPDATE SET value = EXCLUDED.value, computed_at = EXCLUDED.computed_at RETURNING 1) '
                               'SELECT count(*) FROM up',
                               kaireon._metric_sql(m, v_summary, v_as_of), m.tenant_id, m.id, v_now)
                    INTO customers;
                -- customers without activity in the window have no value any more
                DELETE FROM kaireon.metric_values x
                 WHERE x.tenant_id = m.tenant_id AND x.metric_id = m.id AND x.computed_at < v_now;
            END IF;
        END IF;
        INSERT INTO kaireon.metric_state AS s (tenant_id, metric_id, summary_definition_id, computed_at, customers, error)
        VALUES (m.tenant_id, m.id, v_summary, v_now, customers, v_err)
        ON CONFLICT (tenant_id, metric_id) DO UPDATE
           SET summary_definition_id = EXCLUDED.summary_definition_id, computed_at = EXCLUDED.computed_at,
               customers = EXCLUDED.customers, error = EXCLUDED.error;
        status := coalesce('error: ' || v_err, 'computed');
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_metrics(text, boolean) IS
    'Computes the active metric definitions that are due (last computed batch_interval_min ago or more; all with force): each compiles into one query over the day rows of the smallest summary definition holding the customer and the metric''s dimensions, and its metric_values are replaced. A definition that cannot be compiled (sql_filter, no matching summary definition) is reported and recorded in metric_state.error. Returns one row per metric computed.';

CREATE FUNCTION kaireon.compute_engagement_health(tenant_id text DEFAULT NULL, as_of timestamptz DEFAULT now())
    RETURNS TABLE (tenant text, customers bigint, removed bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    t           text;
    v_now       timestamptz := clock_timestamp();
BEGIN
    IF compute_engagement_health.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_engagement_health.tenant_id);
    END IF;
    FOR t IN SELECT x.id FROM kaireon.tenants x
              WHERE compute_engagement_health.tenant_id IS NULL OR x.id = compute_engagement_health.tenant_id
              ORDER BY x.id LOOP
        WITH h AS (
            SELECT h.customer_id,
                   count(*) FILTER (WHERE h.interaction_type = 'impression' OR h.outcome_type_key = 'impression') AS impressions,
                   count(*) FILTER (WHERE h.interaction_type = 'recommendation') AS recommendations,
                   count(*) FILTER (WHERE ot.classification = 'positive') AS positive,
                   count(*) FILTER (WHERE ot.classification = 'negative') AS negative,
                   max(h.occurred_at) FILTER (WHERE ot.classification = 'positive') AS last_positive
              FROM kaireon.interaction_history h
              LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key
                                                AND ot.deleted_at IS NULL
             WHERE h.tenant_id = t AND h.occurred_at > as_of - interval '90 days' AND h.occurred_at <= as_of
             GROUP BY h.customer_id),
        s AS (
            SELECT h.*, greatest(h.impressions, h.recommendations) AS exposures,
                   least(1.0, (h.positive + 1.0) / (greatest(h.impressions, h.recommendations) + 2.0)) AS rate,
                   coalesce(exp(-extract(epoch FROM as_of - h.last_positive) / (30 * 86400.0)), 0) AS recency,
                   h.negative::double precision / greatest(h.positive + h.negative, 1) AS negative_share
              FROM h),
        up AS (
            INSERT INTO kaireon.customer_engagement_health AS e (tenant_id, customer_id, score, inputs, computed_at)
            SELECT t, s.customer_id,
                   least(1.0, greatest(0.0, 0.5 * s.rate + 0.3 * s.recency + 0.2 * (1 - s.negative_share))),
                   jsonb_build_object('exposures', s.exposures, 'positive', s.positive, 'negative', s.negative,
                                      'rate', round(s.rate::numeric, 6), 'recency', round(s.recency::numeric, 6),
                                      'negativeShare', round(s.negative_share::numeric, 6),
                                      'lastPositiveAt', s.last_positive, 'windowDays', 90),
                   v_now
              FROM s
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET score = EXCLUDED.score, inputs = EXCLUDED.inputs, computed_at = EXCLUDED.computed_at
            RETURNING 1)
        SELECT count(*) INTO customers FROM up;
        DELETE FROM kaireon.customer_engagement_health e WHERE e.tenant_id = t AND e.computed_at < v_now;
        GET DIAGNOSTICS removed = ROW_COUNT;
        tenant := t;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_engagement_health(text, timestamptz) IS
    'Scores every customer with history in the 90 days before as_of: score = 0.5 * rate + 0.3 * recency + 0.2 * (1 - negative share), in [0, 1], where rate = (positive + 1) / (exposures + 2), recency = exp(-days since the last positive outcome / 30) (0 without one), negative share = negative / (positive + negative); the inputs are kept in inputs. Customers without history in the window lose their row. The worker runs it nightly (kaireon.score_schedule).';

CREATE FUNCTION kaireon.compute_customer_clv(tenant_id text DEFAULT NULL, as_of timestamptz DEFAULT now(),
                                             horizon_days integer DEFAULT 365)
    RETURNS TABLE (tenant text, customers bigint, removed bigint)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    t           text;
    v_now       timestamptz := clock_timestamp();
BEGIN
    IF horizon_days IS NULL OR horizon_days < 1 OR horizon_days > 3650 THEN
        RAISE EXCEPTION 'horizon_days must be between 1 and 3650, not %', coalesce(horizon_days::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how many days of history the RFM scores look at (default 365).';
    END IF;
    IF compute_customer_clv.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(compute_customer_clv.tenant_id);
    END IF;
    FOR t IN SELECT x.id FROM kaireon.tenants x
              WHERE compute_customer_clv.tenant_id IS NULL OR x.id = compute_customer_clv.tenant_id
              ORDER BY x.id LOOP
        WITH h AS (
            SELECT h.customer_id,
                   count(*) FILTER (WHERE ot.classification = 'positive') AS frequency,
                   coalesce(sum(h.conversion_value) FILTER (WHERE ot.classification = 'positive'), 0) AS monetary,
                   max(h.occurred_at) FILTER (WHERE ot.classification = 'positive') AS last_positive,
                   max(h.occurred_at) AS last_seen
              FROM kaireon.interaction_history h
              LEFT JOIN kaireon.outcome_types ot ON ot.tenant_id = h.tenant_id AND ot.key = h.outcome_type_key
                                                AND ot.deleted_at IS NULL
             WHERE h.tenant_id = t AND h.occurred_at > as_of - make_interval(days => horizon_days)
               AND h.occurred_at <= as_of
             GROUP BY h.customer_id),
        r AS (
            SELECT h.*, floor(extract(epoch FROM as_of - coalesce(h.last_positive, h.last_seen)) / 86400)::integer AS recency
              FROM h),
        q AS (
            SELECT r.*,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.recency DESC)))::integer AS r_score,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.frequency)))::integer AS f_score,
                   1 + least(4, floor(5 * percent_rank() OVER (ORDER BY r.monetary)))::integer AS m_score,
                   1 - exp(-r.recency / 90.0) AS churn
              FROM r),
        up AS (
            INSERT INTO kaireon.customer_clv AS c (tenant_id, customer_id, clv_score, predicted_revenue, churn_probability,
                                                   rfm_recency, rfm_frequency, rfm_monetary, segment, computed_at)
            SELECT t, q.customer_id, (q.r_score + q.f_score + q.m_score) / 15.0,
                   round(q.monetary * (1 - q.churn)::numeric, 2), q.churn, q.recency, q.frequency, q.monetary,
                   CASE WHEN q.r_score <= 2 AND q.f_score + q.m_score >= 7 THEN 'at_risk'
                        WHEN (q.r_score + q.f_score + q.m_score) / 15.0 >= 0.7 THEN 'high'
                        WHEN (q.r_score + q.f_score + q.m_score) / 15.0 >= 0.4 THEN 'medium'
                        ELSE 'low' END,
                   v_now
              FROM q
            ON CONFLICT (tenant_id, customer_id) DO UPDATE
               SET clv_score = EXCLUDED.clv_score, predicted_revenue = EXCLUDED.predicted_revenue,
                   churn_probability = EXCLUDED.churn_probability, rfm_recency = EXCLUDED.rfm_recency,
                   rfm_frequency = EXCLUDED.rfm_frequency, rfm_monetary = EXCLUDED.rfm_monetary,
                   segment = EXCLUDED.segment, computed_at = EXCLUDED.computed_at
            RETURNING 1)
        SELECT count(*) INTO customers FROM up;
        DELETE FROM kaireon.customer_clv c WHERE c.tenant_id = t AND c.computed_at < v_now;
        GET DIAGNOSTICS removed = ROW_COUNT;
        tenant := t;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.compute_customer_clv(text, timestamptz, integer) IS
    'RFM and lifetime-value scores of every customer with history in the horizon_days before as_of: recency (days since the last positive outcome, else the last interaction), frequency (positive outcomes), monetary (their conversion_value); each scored 1..5 by percent rank within the tenant (recent, frequent, valuable = 5); clv_score = (R + F + M) / 15; churn_probability = 1 - exp(-recency / 90); predicted_revenue = monetary * (1 - churn); segment at_risk (R <= 2 with F + M >= 7), else high (clv >= 0.7), medium (>= 0.4), low. Customers without history in the horizon lose their row. The worker runs it nightly.';
-- kaireon install script, part 83: data subject requests (docs/retention.md, "Data subject
-- requests"). kaireon.dsar_export returns every row of one subject (a customer of a tenant)
-- as one jsonb document; kaireon.dsar_delete erases them, except the data classes under a
-- legal hold. Both are recorded in kaireon.dsar_requests. The tables are found from the
-- catalog, so a table added later with a customer_id column is covered without a change here.
-- Audit rows are not touched: the audit chain records configuration changes, which carry no
-- customer data, so it still verifies after an erasure.

-- Where one tenant's subject rows are: a label, the relation, the predicate (with $1 the
-- subject id, $2 the ids of the subject's interactions) and the retention data class whose
-- legal hold keeps them.
CREATE FUNCTION kaireon._dsar_targets(p_tenant text)
    RETURNS TABLE (label text, relation text, predicate text, data_class text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    -- kaireon tables with a customer_id column (partitioned tables as a whole)
    SELECT c.relname::text, format('kaireon.%I', c.relname), 'x.customer_id = $1',
           CASE c.relname WHEN 'interaction_history' THEN 'interactions' WHEN 'impressions' THEN 'interactions'
                          WHEN 'decision_locks' THEN 'interactions' WHEN 'decision_traces' THEN 'decisions'
                          WHEN 'model_shadow_scores' THEN 'decisions' WHEN 'campaign_decisions' THEN 'decisions'
                          WHEN 'interaction_summaries' THEN 'summaries' WHEN 'metric_values' THEN 'metrics'
                          WHEN 'suppressions' THEN 'suppressions'
                          -- a monthly partition retention detached (an archive): still interactions
                          ELSE CASE WHEN c.relname ~ '^interaction_history_p\d{4}_\d{2}$' THEN 'interactions' END END
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped)
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    UNION ALL
    -- kaireon tables that point at the subject's interactions (idempotency keys, deliveries);
    -- policy_snapshots only names the first interaction decided under a policy version
    SELECT c.relname::text, format('kaireon.%I', c.relname), 'x.interaction_id = ANY ($2)',
           CASE c.relname WHEN 'respond_idempotency' THEN 'interactions' END
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname <> 'policy_snapshots'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'interaction_id' AND NOT a.attisdropped)
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped)
    UNION ALL
    SELECT * FROM (VALUES
        ('consent_records', 'kaireon.consent_records', 'x.subject_id = $1', NULL),
        ('identity_links', 'kaireon.identity_links',
         '(x.canonical_id = $1 OR (x.identifier_type = ''customer_id'' AND x.identifier_value = $1))', NULL),
        ('outbox_events', 'kaireon.outbox_events', 'x.payload ->> ''customerId'' = $1', 'outbox'),
        ('dead_letter_events', 'kaireon.dead_letter_events', 'x.payload ->> ''customerId'' = $1', 'outbox')
    ) AS v (label, relation, predicate, data_class)
    UNION ALL
    -- the tenant's published customer data tables, by their primary key
    SELECT format('%s.%s', s.schema_name, d.table_name), format('%I.%I', s.schema_name, d.table_name),
           format('x.%I::text = $1', f.name), NULL
      FROM kaireon.data_schemas d
      JOIN kaireon.tenants t ON t.id = d.tenant_id
      JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
      JOIN kaireon.schema_fields f ON f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key
     WHERE d.tenant_id = p_tenant AND d.entity_type = 'customer' AND d.status = 'published'
       AND to_regclass(format('%I.%I', s.schema_name, d.table_name)) IS NOT NULL
     ORDER BY 1
$fn$;
COMMENT ON FUNCTION kaireon._dsar_targets(text) IS
    'Internal: where a tenant''s data subject (customer) rows are: every kaireon table with a customer_id column, the tables pointing at the subject''s interactions, consent records, identity links, outbox events and dead letters about the subject, and the tenant''s published customer data tables; with the retention data class whose legal hold keeps them.';

-- How both requests start: the checks, then the dsar_requests row (processing); returns its id
-- and the ids of the subject's interactions.
CREATE FUNCTION kaireon._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text,
                                    p_requested_by text, p_reason text,
                                    OUT request_id text, OUT interaction_ids text[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_tenant IS NULL OR p_subject IS NULL THEN
        RAISE EXCEPTION 'tenant_id and subject_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant id and the customer id of the data subject.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    IF p_subject_type IS DISTINCT FROM 'customer' THEN
        RAISE EXCEPTION 'subject_type "%" is not supported', coalesce(p_subject_type, 'null')
            USING ERRCODE = '22023', HINT = 'Data subject requests are about customers (subject_type => ''customer'').';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants t WHERE t.id = p_tenant) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;
    interaction_ids := ARRAY(SELECT h.id FROM kaireon.interaction_history h
                              WHERE h.tenant_id = p_tenant AND h.customer_id = p_subject);
    INSERT INTO kaireon.dsar_requests (tenant_id, request_type, subject_id, subject_type, status, requested_by, reason)
    VALUES (p_tenant, p_request_type, p_subject, p_subject_type, 'processing',
            coalesce(p_requested_by, nullif(current_setting('kaireon.user_id', true), ''), session_user::text), p_reason)
    RETURNING id INTO request_id;
END
$fn$;
COMMENT ON FUNCTION kaireon._dsar_start(text, text, text, text, text, text) IS
    'Internal: checks a data subject request (arguments, tenant access, subject type, tenant), records it in dsar_requests as processing, and returns its id and the ids of the subject''s interactions.';

CREATE FUNCTION kaireon.dsar_export(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_export.tenant_id;
    v_ids       text[];
    v_request   text;
    t           record;
    v_rows      jsonb;
    v_n         bigint;
    v_data      jsonb := '{}';
    v_counts    jsonb := '{}';
BEGIN
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.request_id, s.interaction_ids INTO v_request, v_ids
      FROM kaireon._dsar_start(p_tenant, subject_id, subject_type, 'export', requested_by, reason) s;
    FOR t IN SELECT * FROM kaireon._dsar_targets(p_tenant) LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), ''[]''), count(*) '
                       '  FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
            INTO v_rows, v_n USING subject_id, v_ids, p_tenant;
        IF v_n > 0 THEN
            v_data := v_data || jsonb_build_object(t.label, v_rows);
            v_counts := v_counts || jsonb_build_object(t.label, v_n);
        END IF;
    END LOOP;
    UPDATE kaireon.dsar_requests r
       SET status = 'completed', completed_at = now(),
           result = jsonb_build_object('tables', v_counts,
                                       'rows', (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(v_counts)))
     WHERE r.tenant_id = p_tenant AND r.id = v_request;
    RETURN jsonb_build_object('requestId', v_request, 'tenantId', p_tenant, 'subjectId', subject_id,
                              'subjectType', subject_type, 'exportedAt', now(), 'data', v_data);
END
$fn$;
COMMENT ON FUNCTION kaireon.dsar_export(text, text, text, text, text) IS
    'Data subject access / portability: every row of one customer of a tenant (kaireon._dsar_targets: interactions, impressions, traces, summaries, metric values, scores, suppressions, consent, identity links, assignments, journeys, outbox events, the customer data tables, ...) as one document {requestId, tenantId, subjectId, subjectType, exportedAt, data: {table: [rows]}}; recorded in dsar_requests with the row counts.';

CREATE FUNCTION kaireon.dsar_delete(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_delete.tenant_id;
    v_ids       text[];
    v_request   text;
    v_held      text[];
    t           record;
    v_n         bigint;
    v_deleted   jsonb := '{}';
    v_kept      jsonb := '{}';
    v_result    jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.request_id, s.interaction_ids INTO v_request, v_ids
      FROM kaireon._dsar_start(p_tenant, subject_id, subject_type, 'delete', requested_by, reason) s;
    v_held := ARRAY(SELECT p.data_class FROM kaireon.retention_policies() p
                     WHERE p.tenant_id = p_tenant AND p.legal_hold ORDER BY 1);
    FOR t IN SELECT * FROM kaireon._dsar_targets(p_tenant) LOOP
        IF t.data_class = ANY (v_held) THEN
            EXECUTE format('SELECT count(*) FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                INTO v_n USING subject_id, v_ids, p_tenant;
            IF v_n > 0 THEN
                v_kept := v_kept || jsonb_build_object(t.label, v_n);
            END IF;
        ELSE
            EXECUTE format('DELETE FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                USING subject_id, v_ids, p_tenant;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            IF v_n > 0 THEN
                v_deleted := v_deleted || jsonb_build_object(t.label, v_n);
            END IF;
        END IF;
    END LOOP;
    v_result := jsonb_build_object('deleted', v_deleted, 'keptUnderLegalHold', v_kept, 'legalHold', to_jsonb(v_held),
                                   'rows', (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(v_deleted)));
    UPDATE kaireon.dsar_requests r
       SET status = 'completed', completed_at = now(), result = v_result
     WHERE r.tenant_id = p_tenant AND r.id = v_request;
    RETURN v_result || jsonb_build_object('requestId', v_request);
END
$fn$;
COMMENT ON FUNCTION kaireon.dsar_delete(text, text, text, text, text) IS
    'Data subject erasure: deletes every row of one customer of a tenant that kaireon.dsar_export would return, except those of data classes under a legal hold for the tenant (reported as keptUnderLegalHold); audit rows are not touched (they hold no customer data), so the audit chain still verifies. Recorded in dsar_requests; returns {deleted: {table: rows}, keptUnderLegalHold, legalHold, rows, requestId}.';
-- kaireon install script, part 84: the periodic jobs as plain functions, and
-- kaireon.run_maintenance, which runs every job once (for pg_cron users and servers without
-- shared_preload_libraries). The background workers run the same jobs on their schedules
-- (src/worker.c, docs/workers.md).

CREATE FUNCTION kaireon.reset_volume_counters() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n           integer;
BEGIN
    -- recommend restarts a counter lazily when its reset_at has passed; this makes the reset
    -- visible to readers of the table too (the row lock orders it against recommend)
    UPDATE kaireon.volume_constraints v
       SET current_count = 0, reset_at = kaireon._period_end(v.period, now())
     WHERE v.reset_at IS NOT NULL AND v.reset_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
COMMENT ON FUNCTION kaireon.reset_volume_counters() IS
    'Starts the new period of every volume constraint whose reset_at has passed: current_count 0, reset_at the end of the current period (UTC). recommend does the same lazily when it next counts; returns the constraints reset.';

-- The jobs, their schedule settings and what each does: the one list the documentation and
-- the workers follow (src/worker.c has the same names).
CREATE FUNCTION kaireon.maintenance_jobs()
    RETURNS TABLE (job text, schedule_setting text, schedule text, does text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT j.job, j.setting, coalesce(current_setting(j.setting, true), '(library not loaded)'), j.does
      FROM (VALUES
        (1, 'retention', 'kaireon.retention_schedule', 'kaireon.run_retention: every data class of every tenant, then the coming months'' partitions'),
        (2, 'partitions', 'kaireon.partition_schedule', 'kaireon.create_interaction_partitions(kaireon.partition_months_ahead)'),
        (3, 'outbox', 'kaireon.outbox_schedule', 'kaireon.publish_outbox until no due event is left'),
        (4, 'summaries', 'kaireon.summary_schedule', 'kaireon.rollup_summaries until caught up, then kaireon.compute_metrics'),
        (5, 'volume_reset', 'kaireon.volume_reset_schedule', 'kaireon.reset_volume_counters'),
        (6, 'suppressions', 'kaireon.suppression_schedule', 'kaireon.run_retention for the suppressions class (expired suppressions)'),
        (7, 'scores', 'kaireon.score_schedule', 'kaireon.compute_engagement_health and kaireon.compute_customer_clv'),
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;
COMMENT ON FUNCTION kaireon.maintenance_jobs() IS
    'The maintenance jobs: name, the setting holding its schedule (''HH:MM'' daily in UTC, an interval such as ''5min'', or ''off''), its current value, and what it runs.';

CREATE FUNCTION kaireon.run_maintenance(jobs text[] DEFAULT NULL)
    RETURNS TABLE (job text, status text, started_at timestamptz, finished_at timestamptz, detail jsonb, error text)
    AS 'MODULE_PATHNAME', 'kaireon_run_maintenance'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_maintenance(text[]) IS
    'Runs every maintenance job (or those named in jobs) once, in the order of kaireon.maintenance_jobs(), each in a subtransaction so one failing job does not stop the others; returns what each did. For pg_cron and servers without the background workers. Runs in the caller''s transaction; CALL kaireon.run_maintenance_batched() commits as it goes.';

CREATE PROCEDURE kaireon.run_maintenance_batched(jobs text[] DEFAULT NULL)
    AS 'MODULE_PATHNAME', 'kaireon_run_maintenance_batched'
    LANGUAGE C;
COMMENT ON PROCEDURE kaireon.run_maintenance_batched(text[]) IS
    'kaireon.run_maintenance committing after every batch of every job (short transactions; the outbox''s notifications go out as it runs). Call it outside a transaction block; each run is recorded in kaireon.maintenance_runs.';
-- kaireon install script, part 90: the role setup a DBA uses (see docs/security.md).
-- Roles are cluster-wide, so the extension creates none; these functions grant an existing
-- role its access and record it in kaireon.role_grants for the tenant data schemas.

-- The functions each kind of role may call. Everything else (maintenance, internal helpers)
-- is for superusers and admin roles; EXECUTE is revoked from PUBLIC in 99_finalize.sql.
CREATE FUNCTION kaireon._role_functions(p_access text) RETURNS SETOF regprocedure
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.version()', 'kaireon.current_tenant_id()', 'kaireon.assert_tenant_access(text)',
        'kaireon.validate_config(text,text,text)', 'kaireon.segment_members(text,text)',
        'kaireon.is_segment_member(text,text,text)', 'kaireon._segment_view(text,text)',
        'kaireon.score(text,text,jsonb,text)', 'kaireon.score_vector(text,text,double precision[],text)',
        'kaireon.explain_score(text,text,jsonb,text)', 'kaireon.model_features(text,text)',
        'kaireon.fnv1a(text)', 'kaireon.normal_cdf(double precision)',
        'kaireon.wilson_interval(double precision,double precision,double precision)',
        'kaireon.registry_transitions()', 'kaireon.experiment_bucket(text,text)',
        'kaireon.set_model_seed(bigint)',
        'kaireon.verify_audit_chain(text,bigint,bigint)', 'kaireon.audit_canonical(bigint)',
        'kaireon.four_eyes_required(text)', 'kaireon.approval_in_progress()', 'kaireon.in_restore_session()']) AS f
    UNION ALL
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.publish_data_schema(text,text)', 'kaireon.publish_segment(text,text)',
        'kaireon.recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'kaireon.recommend_json(jsonb)',
        'kaireon.respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamptz,text)',
        'kaireon.respond_json(jsonb)', 'kaireon.respond_bulk(jsonb)',
        'kaireon.publish_decision_flow(text,text,text)',
        'kaireon.model_learn(text,text,text,jsonb,text)', 'kaireon.import_model(text,text,text,text,jsonb)',
        'kaireon.train_model(text,text,timestamptz,timestamptz,jsonb)',
        'kaireon.check_drift(text,text,timestamptz,timestamptz,timestamptz,timestamptz,jsonb)',
        'kaireon.transition_model(text,text,text,text)',
        'kaireon.log_shadow_scores(text,text,text,jsonb,text[],text)',
        'kaireon.assign_experiment(text,text,text,boolean)', 'kaireon.assign_variant(text,text,text,jsonb,interval)',
        'kaireon.experiment_results(text,text)', 'kaireon.evaluate_experiment(text,text)',
        'kaireon.request_approval(text,text,text,jsonb,text)', 'kaireon.approve_request(text,text,text)',
        'kaireon.reject_request(text,text,text)', 'kaireon.cancel_request(text,text)',
        'kaireon.create_api_key(text,text,jsonb,timestamptz)', 'kaireon.authenticate_api_key(text)',
        'kaireon.revoke_api_key(text,text)', 'kaireon.create_oauth_client(text,text,jsonb)',
        'kaireon.authenticate_oauth_client(text,text)', 'kaireon.revoke_oauth_client(text,text)',
        'kaireon.get_setting(text,text,text)', 'kaireon.set_setting(text,text,text,text,boolean)',
        'kaireon.run_campaign(text,text,boolean)',
        'kaireon.simulate(text,text,text,text,integer,jsonb,text)', 'kaireon.exp3_state(text,text)',
        'kaireon.dsar_export(text,text,text,text,text)', 'kaireon.dsar_delete(text,text,text,text,text)']) AS f
     WHERE p_access = 'app'
$fn$;
COMMENT ON FUNCTION kaireon._role_functions(text) IS
    'Internal: the functions an app or readonly role may execute (admin roles may execute all).';

CREATE FUNCTION kaireon._grant_role(p_role regrole, p_access text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role      name;
    v_nsp       text;
    v_fn        regprocedure;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004', HINT = 'Pass an existing role name.';
    END IF;
    SELECT rolname INTO v_role FROM pg_roles WHERE oid = p_role;
    EXECUTE format('GRANT USAGE ON SCHEMA kaireon TO %I', v_role);
    CASE p_access
        WHEN 'readonly' THEN
            EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
        WHEN 'app' THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA kaireon TO %I', v_role);
            -- the audit log is written by kaireon's audit triggers only (append-only, read here),
            -- approvals only through kaireon.request_approval / approve_request / ... (and the
            -- approved model promotions they record in model_approvals)
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON kaireon.audit_logs, kaireon.audit_chain_heads,'
                           ' kaireon.approval_requests, kaireon.approval_request_stages, kaireon.approval_actions,'
                           ' kaireon.model_approvals FROM %I', v_role);
        WHEN 'admin' THEN
            EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA kaireon TO %I', v_role);
    END CASE;
    IF p_access <> 'admin' THEN
        -- who has which access, and which tenant owns which data schema, are not theirs to see
        EXECUTE format('REVOKE ALL ON kaireon.role_grants, kaireon.tenant_schemas FROM %I', v_role);
        FOR v_fn IN SELECT * FROM kaireon._role_functions(p_access) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_role);
        END LOOP;
    END IF;
    INSERT INTO kaireon.role_grants (role_name, access) VALUES (v_role, p_access)
        ON CONFLICT (role_name) DO UPDATE SET access = EXCLUDED.access, updated_at = now();
    -- Tenant data schemas published before this call.
    FOR v_nsp IN SELECT schema_name FROM kaireon.tenant_schemas WHERE to_regnamespace(quote_ident(schema_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_nsp, v_role);
        EXECUTE format('GRANT %s ON ALL TABLES IN SCHEMA %I TO %I',
                       CASE p_access WHEN 'readonly' THEN 'SELECT' WHEN 'app' THEN 'SELECT, INSERT, UPDATE, DELETE'
                                     ELSE 'ALL' END, v_nsp, v_role);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon._grant_role(regrole, text) IS
    'Internal: grants a role app, readonly or admin access to schema kaireon and the tenant data schemas, and records it.';

CREATE FUNCTION kaireon.grant_app_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT kaireon._grant_role(role, 'app');
    END;
COMMENT ON FUNCTION kaireon.grant_app_role(regrole) IS
    'Grants a role what an application needs: read and write the kaireon tables (the audit log and the approval tables read-only: kaireon writes them) and call the application functions. Row level security still limits it to its tenant (kaireon.tenant_id).';

CREATE FUNCTION kaireon.grant_readonly_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    BEGIN ATOMIC
        SELECT kaireon._grant_role(role, 'readonly');
    END;
COMMENT ON FUNCTION kaireon.grant_readonly_role(regrole) IS
    'Grants a role read access to the kaireon tables and the read-only functions (for analysts and reporting); row level security limits it to its tenant.';

CREATE FUNCTION kaireon.grant_admin_role(role regrole, bypass_rls boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon._grant_role(role, 'admin');
    IF bypass_rls THEN
        EXECUTE format('ALTER ROLE %I BYPASSRLS', (SELECT rolname FROM pg_roles WHERE oid = role));
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon.grant_admin_role(regrole, boolean) IS
    'Grants a role full access to every kaireon table and function; with bypass_rls (default, needs a superuser) it also sees and changes every tenant''s rows.';
-- kaireon install script, part 99: the uniform parts of every table, applied from the catalog
-- so no table can miss them (docs/schema.md, "Conventions"):
--   * updated_at column           -> BEFORE UPDATE trigger kaireon.touch_updated_at()
--   * tenant_id column            -> row level security + policy tenant_isolation
--                                    (unless the table defines its own policies)
--   * deleted_at column           -> index (tenant_id, deleted_at)
--   * every table holding rows    -> pg_extension_config_dump, so pg_dump keeps its rows;
--                                    rows that triggers recreate on restore are filtered out
--                                    (see the filters below and docs/schema.md), and a table
--                                    registered earlier with a filter of its own keeps it
DO $finalize$
DECLARE
    r           record;
BEGIN
    FOR r IN
        SELECT c.oid, c.relname, c.relkind, c.relispartition,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped) AS has_updated_at,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS has_tenant,
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'deleted_at' AND NOT a.attisdropped) AS has_deleted_at,
               EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
          FROM pg_class c
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY c.relname
    LOOP
        IF r.has_updated_at AND NOT r.relispartition THEN
            EXECUTE format('CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.%I FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at()', r.relname);
        END IF;
        IF r.has_tenant AND NOT r.has_policy THEN
            EXECUTE format('ALTER TABLE kaireon.%I ENABLE ROW LEVEL SECURITY', r.relname);
            EXECUTE format('CREATE POLICY tenant_isolation ON kaireon.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())', r.relname);
        END IF;
        IF r.has_deleted_at AND NOT r.relispartition THEN
            EXECUTE format('CREATE INDEX ON kaireon.%I (tenant_id, deleted_at)', r.relname);
        END IF;
        -- (a table registered earlier with a filter of its own keeps it)
        IF r.relkind = 'r' AND r.oid <> ALL (coalesce((SELECT extconfig FROM pg_extension WHERE extname = 'kaireon'), '{}')) THEN
            PERFORM pg_catalog.pg_extension_config_dump(format('kaireon.%I', r.relname)::regclass,
                CASE r.relname
                    -- a restored tenant gets its system outcome types from the seeding trigger
                    WHEN 'outcome_types' THEN 'WHERE NOT is_system'
                    -- configuration versions are renewed by the triggers as the rows come back
                    WHEN 'config_versions' THEN 'WHERE false'
                    -- the run history belongs to the server that ran the jobs
                    WHEN 'maintenance_runs' THEN 'WHERE false'
                    ELSE '' END);
        END IF;
    END LOOP;
END
$finalize$;

-- Functions and procedures are not callable by everyone: kaireon.grant_*_role grants each kind of role the
-- functions it needs. Row level security policies call kaireon.current_tenant_id() as the
-- querying role, so that one (and version(), and two pure calendar helpers) stay public. Trigger functions need no EXECUTE
-- privilege to fire.
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA kaireon FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon.current_tenant_id(), kaireon.version() TO PUBLIC;
-- pure calendar helpers that recommend's and respond's queries call as the caller
GRANT EXECUTE ON FUNCTION kaireon._period_end(text, timestamptz), kaireon._period_key(text, timestamptz) TO PUBLIC;
