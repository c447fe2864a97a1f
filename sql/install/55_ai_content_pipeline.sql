-- kaireon install script, part 55: AI assistant and document import, data pipelines,
-- content, reports, behavioral metrics and summary definitions.
-- Conventions are in docs/schema.md ("Conventions"); 99_finalize.sql adds the updated_at
-- triggers, row level security, soft-delete indexes and pg_dump registration.
-- Runs after 00_base (tenants), 10_decisioning (offers, channels, creatives),
-- 20_customer (data_schemas, interaction_summaries) and 30_operator (users).

-- ---------------------------------------------------------------------------------------
-- AI & imports
-- ---------------------------------------------------------------------------------------

CREATE TABLE kaireon.conversations (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    user_id                 text NOT NULL,
    title                   text NOT NULL DEFAULT 'New conversation',
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX ON kaireon.conversations (tenant_id, user_id);
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
        REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
        REFERENCES kaireon.conversations (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
        REFERENCES kaireon.conversations (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
        REFERENCES kaireon.connectors (tenant_id, id) ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, schema_id)
        REFERENCES kaireon.data_schemas (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
        REFERENCES kaireon.content_items (tenant_id, id) ON DELETE NO ACTION,  -- optional: NULL once the parent is deleted (99_finalize.sql)
    FOREIGN KEY (tenant_id, content_source_id)
        REFERENCES kaireon.content_sources (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
        REFERENCES kaireon.report_schedules (tenant_id, id) ON DELETE NO ACTION  -- optional: NULL once the parent is deleted (99_finalize.sql)
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
    REFERENCES kaireon.content_items (tenant_id, id) ON DELETE NO ACTION;  -- optional: NULL once the parent is deleted (99_finalize.sql)
CREATE INDEX ON kaireon.creatives (tenant_id, content_item_id);

ALTER TABLE kaireon.interaction_summaries ADD FOREIGN KEY (tenant_id, definition_id)
    REFERENCES kaireon.summary_definitions (tenant_id, id) ON DELETE CASCADE;
