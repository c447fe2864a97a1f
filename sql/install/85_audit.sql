-- kaireon install script, part 85: the audit hash chain (docs/audit.md).
-- Every change of an audited table writes one row of kaireon.audit_logs in the same
-- transaction, chained per tenant by SHA-256; kaireon.verify_audit_chain recomputes a chain.
-- The tables audited, and how, are listed in one place: kaireon.audited_tables() below.
-- It comes after every audited table (the triggers are created from the list below), so
-- after all the domain parts; only the roles (90) and the uniform parts (99) follow.

-- Cross-tenant, append-only. tenant_id is nullable and deliberately has NO foreign key to
-- kaireon.tenants: the chain must survive the deletion of its tenant unchanged (neither
-- CASCADE nor SET NULL may rewrite an immutable log). Rows are written by the audit triggers
-- (the functions below, src/audit/*.c); the format is in docs/audit.md. before and after
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
                                           max_rows bigint DEFAULT NULL, digest jsonb DEFAULT NULL)
    RETURNS TABLE (intact boolean, verified bigint, total bigint, scanned bigint,
                   broken_at_id bigint, broken_reason text, digest_status text)
    AS 'MODULE_PATHNAME', 'kaireon_verify_audit_chain'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.verify_audit_chain(text, bigint, bigint, jsonb) IS
    'Recomputes the audit hash chain of a tenant (NULL: the chain of rows without a tenant) from from_id (NULL: its start, or the anchor retention left), reading at most max_rows rows (NULL: all). Returns whether it is intact, the rows verified, the rows of the chain from from_id, the rows read, and the first broken row with its reason (hash_mismatch, chain_link_mismatch, gap, digest_mismatch). With digest (a kept kaireon.audit_digest, signature checked: 22023 when altered), also whether the chain still extends it: digest_status matched, mismatch, predates_chain (retention removed its row) or not_reached. 42704 for a tenant with neither a row nor a chain.';

CREATE FUNCTION kaireon.audit_digest(tenant_id text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_audit_digest'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.audit_digest(text) IS
    'A signed digest of the current end of a tenant''s audit chain (NULL: the chain without a tenant): format, tenant_id, id, chain_seq and hash of its last committed row, digest_time, key_id and an HMAC-SHA256 signature (docs/audit.md, "Digests"). Keep it outside the database; kaireon.verify_audit_chain(..., digest => ...) proves the chain still extends it.';

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

-- Only kaireon writes the heads (directly, as the table owner, with no trigger firing); no
-- role is granted a write on them (90_roles.sql), and this guard refuses writes by anyone but
-- a superuser (a restore, or the tampering verification exists to find) even if one were.
CREATE FUNCTION kaireon.audit_heads_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_audit_heads_guard'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.audit_heads_guard() IS
    'Trigger of kaireon.audit_chain_heads: INSERT, UPDATE, DELETE and TRUNCATE refused (42501) for everyone but superusers; kaireon moves the heads itself without firing triggers.';
CREATE TRIGGER audit_heads_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard_truncate BEFORE TRUNCATE ON kaireon.audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_heads_guard();

-- The keys that sign audit digests (kaireon.audit_digest): created by kaireon on the first
-- digest, read and written only by the table owner (kaireon's code acting as it). Dumped with
-- the database, so digests kept before a restore still verify after it.
CREATE TABLE kaireon.audit_digest_keys (
    key_id                  text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    key                     bytea NOT NULL CHECK (octet_length(key) = 32),
    created_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.audit_digest_keys IS
    'kaireon''s own table: the HMAC-SHA256 keys of audit digests (key_id is the first 16 hex digits of SHA-256(key)); the newest signs, any verifies. No role but the owner may read it (docs/audit.md, "Digests").';
REVOKE ALL ON kaireon.audit_digest_keys FROM PUBLIC;
-- row security on and no policy: a role that were granted the table would still read nothing
ALTER TABLE kaireon.audit_digest_keys ENABLE ROW LEVEL SECURITY;

-- The audited tables, in one place. options are the trigger arguments (src/audit/capture.c):
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
        -- kaireon's own: who was granted access, and which roles are pinned to a tenant
        ('role_grants',               ARRAY['tenant=none', 'id=role_name']),
        ('tenant_pins',               ARRAY['tenant=none', 'id=role'])
    ) AS t (table_name, options)
$fn$;
COMMENT ON FUNCTION kaireon.audited_tables() IS
    'The tables whose changes are recorded in the audit chain, with the arguments of their audit_capture trigger (docs/audit.md). The one list: 85_audit.sql creates the triggers from it and the audit tests check them against it.';

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
