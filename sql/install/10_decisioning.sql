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
    'Placement: a targeted slot inside a channel (hero, banner, modal); used by flow route lookups; a request never gets more decisions for it than max_slots. Soft-deleted.';

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
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
    -- the share of customers held out of this offer (docs/lift.md); checked by a trigger (22023)
    holdout_percent         double precision NOT NULL DEFAULT 0 CHECK (holdout_percent BETWEEN 0 AND 100),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES kaireon.categories (tenant_id, id)
        ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, sub_category_id) REFERENCES kaireon.sub_categories (tenant_id, id)
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX ON kaireon.offers (tenant_id, category_id);
CREATE INDEX ON kaireon.offers (tenant_id, sub_category_id);
CREATE INDEX ON kaireon.offers (tenant_id, status) WHERE deleted_at IS NULL;
COMMENT ON TABLE kaireon.offers IS
    'Offer: what the platform recommends. priority 0..100 and weight 0..100 drive priority_weighted scoring; value, margin and cost feed arbitration; schedule holds start/end, days and hours; mandatory offers bypass qualification; holdout_percent (0..100) holds that share of customers out of the offer (docs/lift.md). Soft-deleted.';

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
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
);
CREATE INDEX ON kaireon.creatives (tenant_id, offer_id);
CREATE INDEX ON kaireon.creatives (tenant_id, channel_id);
CREATE INDEX ON kaireon.creatives (tenant_id, placement_id);
COMMENT ON TABLE kaireon.creatives IS
    'Creative: channel-specific rendering of an offer (optionally for one placement); weight drives the weighted creative choice; content is returned with each decision of recommend_json, its {{customer.x}} / {{offer.y}} placeholders filled (personalization.defaults for missing values; docs/json-api.md). Soft-deleted.';

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
        ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
