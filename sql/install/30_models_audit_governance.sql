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
