-- kaireon install script, part 85: the audit hash chain (docs/audit.md).
-- Every change of an audited table writes one row of kaireon.audit_logs in the same
-- transaction, chained per tenant by SHA-256; kaireon.verify_audit_chain recomputes a chain.
-- The tables audited, and how, are listed in one place: kaireon.audited_tables() below.
-- It comes after every audited table (the triggers are created from the list below), so
-- after all the domain parts; only the roles (90) and the uniform parts (99) follow.

-- Cross-tenant, append-only: one hash chain per tenant. tenant_id deliberately has NO foreign
-- key to kaireon.tenants: the chain must survive the deletion of its tenant unchanged (neither
-- CASCADE nor SET NULL may rewrite an immutable log). Every key begins with tenant_id, so a
-- chain lives in one shard when the table is distributed by tenant (docs/audit.md, "Appending").
-- Rows are written by the audit triggers (the functions below, src/audit/*.c); the format is
-- in docs/audit.md. before and after are json, not jsonb: they hold exactly the text that was
-- hashed. Changes without a tenant are chained apart, in kaireon.platform_audit_logs.
CREATE TABLE kaireon.audit_logs (
    id                      bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id               text NOT NULL,
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
    PRIMARY KEY (tenant_id, id),
    -- one row per position of a chain: a fork cannot be stored (and the chain's order)
    UNIQUE (tenant_id, chain_seq)
);
COMMENT ON TABLE kaireon.audit_logs IS
    'AuditLog: immutable, append-only audit chain of changes (create, update, soft_delete, restore, delete) plus retention anchors, one chain per tenant. integrity_hash is the hex SHA-256 of prev_hash followed by the canonical JSON of the row, prev_hash the integrity_hash of the previous row of the same chain (chain_seq - 1), 64 zeros for the first (docs/audit.md). The chain''s order is chain_seq; id identifies a row (unique with the tenant). Cross-tenant: tenant_id has no foreign key to tenants on purpose, so deleting a tenant neither deletes nor rewrites its audit rows. Changes without a tenant are in platform_audit_logs. Row level security with policy tenant_isolation. No updated_at.';

CREATE INDEX audit_logs_entity_idx
    ON kaireon.audit_logs (tenant_id, entity_type, entity_id, id);
-- the anchors retention leaves, found by verification
CREATE INDEX audit_logs_anchor_idx
    ON kaireon.audit_logs (tenant_id, chain_seq) WHERE action = 'anchor';

ALTER TABLE kaireon.audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.audit_logs
    USING (tenant_id = kaireon.current_tenant_id());

-- The chain of changes without a tenant (platform settings, role grants, platform users, ...):
-- the same row and canonical form as audit_logs (its tenant_id is null in the canonical form),
-- in a table of its own, not distributed: on a Citus cluster each node keeps the platform
-- changes it applied (docs/audit.md, "The platform chain"). Ids come from audit_logs' sequence,
-- so an id names one row of either table on a node.
CREATE TABLE kaireon.platform_audit_logs (
    id                      bigint PRIMARY KEY,
    chain_seq               bigint NOT NULL UNIQUE CHECK (chain_seq >= 1),
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
    CHECK (action = 'anchor' OR (entity_type IS NOT NULL AND entity_id IS NOT NULL))
);
COMMENT ON TABLE kaireon.platform_audit_logs IS
    'kaireon''s own table: the platform audit chain, immutable, append-only audit rows of changes without a tenant (tables audited with tenant=none: platform settings, role grants, tenant pins, platform users) plus retention anchors, chained like a tenant''s chain in audit_logs (same columns but tenant_id, same canonical form with a null tenant_id; docs/audit.md). Row level security without a policy: visible only to superusers and BYPASSRLS roles. Local to each node on a Citus cluster. No updated_at.';
CREATE INDEX platform_audit_logs_entity_idx
    ON kaireon.platform_audit_logs (entity_type, entity_id, id);
ALTER TABLE kaireon.platform_audit_logs ENABLE ROW LEVEL SECURITY;

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
    'Trigger of kaireon.audit_logs and kaireon.platform_audit_logs keeping them append-only: UPDATE and TRUNCATE refused for everyone, DELETE only through kaireon.purge_audit_chain, INSERT only by the table owner (kaireon''s appends) and superusers (restore).';

CREATE FUNCTION kaireon.verify_audit_chain(tenant_id text, from_id bigint DEFAULT NULL,
                                           max_rows bigint DEFAULT NULL, digest jsonb DEFAULT NULL)
    RETURNS TABLE (intact boolean, verified bigint, total bigint, scanned bigint,
                   broken_at_id bigint, broken_reason text, digest_status text)
    AS 'MODULE_PATHNAME', 'kaireon_verify_audit_chain_0_2'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.verify_audit_chain(text, bigint, bigint, jsonb) IS
    'Recomputes the audit hash chain of a tenant (NULL: the platform chain, platform_audit_logs) from the position of row from_id (NULL: its start, or the anchor retention left), in chain_seq order, reading at most max_rows rows (NULL: all). Returns whether it is intact, the rows verified, the rows of the chain from from_id, the rows read, and the first broken row with its reason (hash_mismatch, chain_link_mismatch, gap, digest_mismatch). With digest (a kept kaireon.audit_digest, signature checked: 22023 when altered), also whether the chain still extends it: digest_status matched, mismatch, predates_chain (retention removed its row) or not_reached. 42704 for a tenant with neither a row nor a chain.';

CREATE FUNCTION kaireon.audit_digest(tenant_id text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_audit_digest'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.audit_digest(text) IS
    'A signed digest of the current end of a tenant''s audit chain (NULL: the platform chain): format, tenant_id, id, chain_seq and hash of its last committed row, digest_time, key_id and an HMAC-SHA256 signature (docs/audit.md, "Digests"). Keep it outside the database; kaireon.verify_audit_chain(..., digest => ...) proves the chain still extends it.';

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
    'The canonical JSON of one audit row (of audit_logs, else of platform_audit_logs), exactly as hashed after its prev_hash (docs/audit.md); NULL for an unknown id.';

-- The head of every tenant's chain: its last row. An append locks the tenant's head row
-- (SELECT ... FOR UPDATE, or creates it) and moves it at commit; verification checks that the
-- chain ends where its head says. Keyed by tenant_id, like audit_logs (one shard per tenant).
CREATE TABLE kaireon.audit_chain_heads (
    tenant_id               text PRIMARY KEY,
    last_id                 bigint NOT NULL,
    last_seq                bigint NOT NULL CHECK (last_seq >= 0),
    last_hash               text NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.audit_chain_heads IS
    'kaireon''s own table: the head (last id, chain_seq and integrity_hash) of each tenant''s audit chain, and the row an append locks to keep the chain linear (docs/audit.md). last_seq 0 only while the first append of a chain has not committed. Written only by kaireon''s audit code; no foreign key to tenants, like audit_logs.';

-- The head of the platform chain: one row (platform_audit_logs).
CREATE TABLE kaireon.platform_audit_chain_head (
    chain                   text PRIMARY KEY DEFAULT 'platform' CHECK (chain = 'platform'),
    last_id                 bigint NOT NULL,
    last_seq                bigint NOT NULL CHECK (last_seq >= 0),
    last_hash               text NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE kaireon.platform_audit_chain_head IS
    'kaireon''s own table: the head of the platform audit chain (platform_audit_logs), one row, locked by an append like a tenant''s row of audit_chain_heads. Written only by kaireon''s audit code; row level security without a policy (superusers and BYPASSRLS roles read it).';
ALTER TABLE kaireon.platform_audit_chain_head ENABLE ROW LEVEL SECURITY;

-- Only kaireon writes the heads (as the owner of the log, which owns the heads too); no role
-- is granted a write on them (90_roles.sql), and this guard refuses writes by anyone but the
-- owner and superusers (a restore, or the tampering verification exists to find) even if one were.
CREATE FUNCTION kaireon.audit_heads_guard() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_audit_heads_guard'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.audit_heads_guard() IS
    'Trigger of kaireon.audit_chain_heads and kaireon.platform_audit_chain_head: INSERT, UPDATE, DELETE and TRUNCATE refused (42501) for everyone but the table owner (kaireon''s appends act as it) and superusers.';
CREATE TRIGGER audit_heads_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard_truncate BEFORE TRUNCATE ON kaireon.audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.platform_audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard_truncate BEFORE TRUNCATE ON kaireon.platform_audit_chain_head
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
--   tenant=<col> (default tenant_id; none = the platform chain), id=<col> (default id),
--   version=<col> (an integer recorded as entity_version), redact=<col>[:<flag>] (a secret,
--   shown as "[redacted]", when <flag> is true if given), ignore=<col> (a runtime column:
--   an update that changes only such columns and updated_at is not audited). Each trigger also
--   gets entity=<table> (the entity_type recorded: on a Citus worker the trigger fires on a
--   shard, whose relation name is not the table's).
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
        ('alert_rules',               ARRAY['ignore=last_fired_at', 'ignore=last_evaluated_at', 'ignore=last_value']),
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
        -- platform administrators (no tenant): like users, in the platform chain
        ('platform_users',            ARRAY['tenant=none', 'redact=password_hash', 'redact=mfa_secret',
                                            'redact=mfa_backup_codes', 'ignore=failed_login_attempts',
                                            'ignore=locked_until']),
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
        -- transaction holds its tenant's head row only while it commits
        EXECUTE format('CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON kaireon.%I'
                       ' DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture(%s)',
                       r.table_name,
                       (SELECT string_agg(quote_literal(o), ', ')
                          FROM unnest(r.options || ('entity=' || r.table_name)) AS o));
        EXECUTE format('CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON kaireon.%I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_refuse_truncate()',
                       r.table_name);
    END LOOP;
END
$audit$;

-- The logs themselves are append-only.
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.audit_logs
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON kaireon.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_guard BEFORE INSERT OR UPDATE OR DELETE ON kaireon.platform_audit_logs
    FOR EACH ROW EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON kaireon.platform_audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_guard();

-- pg_dump keeps the log's identity sequence too, so ids continue after a restore.
SELECT pg_catalog.pg_extension_config_dump('kaireon.audit_logs_id_seq', '');
