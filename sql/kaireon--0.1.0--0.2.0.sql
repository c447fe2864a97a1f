-- kaireon upgrade script 0.1.0 -> 0.2.0 (ALTER EXTENSION kaireon UPDATE; docs/upgrades.md).
--
-- Turns the catalog of 0.1.0 (sql/kaireon--0.1.0.sql, frozen) with its data into exactly the
-- catalog of a fresh 0.2.0 install (sql/install/*.sql); test/scripts/upgrade.sh compares the
-- two (pg_dump --schema-only, normalised) and checks the data. Every schema change made while
-- 0.2.0 is the version under development goes into this file too, at the end (part 7).
--
-- Parts, in the order they must run:
--   1. the new schema kaireon_internal; triggers and policies that change are dropped, and the
--      columns that stored functions by OID become signature text, before
--   2. every function 0.2.0 added or changed, as CREATE OR REPLACE (the definitions of
--      sql/install/*.sql, as pg_dump prints them);
--   3. the functions 0.2.0 dropped or moved to kaireon_internal are dropped (after 2: the
--      new definitions no longer depend on them);
--   4. tables: new tables, users and their logins made tenant-scoped (platform
--      administrators move to platform_users), the platform audit chain moved out of
--      audit_logs with its hashes, ON DELETE SET NULL (col) keys become NO ACTION keys served
--      by the trigger kaireon.on_delete_set_null, the finite-number checks;
--   5. triggers, policies, row level security, pg_dump registration;
--   6. grants and comments;
--   7. objects added to 0.2.0 later (append here), then, last, the access of the roles granted
--      under 0.1.0 renewed for 0.2.0.
\echo Use "ALTER EXTENSION kaireon UPDATE TO '0.2.0'" to load this file. \quit

-- the bodies below name every object with its schema; some refer to tables created in part 4
SET LOCAL check_function_bodies = off;
SET LOCAL search_path = pg_catalog, pg_temp;

-------------------------------------------------------------------------------
-- Part 1: the internal schema; what depends on functions about to be dropped
-------------------------------------------------------------------------------

-- Every upgrade script re-creates kaireon.version(): the change of a function makes every
-- backend check the installed SQL version again (src/util/version.c).
CREATE OR REPLACE FUNCTION kaireon.version() RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE SCHEMA kaireon_internal;

-- the functions of approval actions and outbox handlers were regprocedure (an OID, which a
-- dump and restore or a dropped function breaks); 0.2.0 keeps their signatures as text
-- (with search_path pg_catalog, regprocedure's text names the schema)
ALTER TABLE kaireon.approval_actions
    ALTER COLUMN apply_function TYPE text USING apply_function::text,
    ALTER COLUMN validate_function TYPE text USING validate_function::text;
ALTER TABLE kaireon.outbox_handlers ALTER COLUMN handler TYPE text USING handler::text;

-- policies that read kaireon.users, which becomes tenant-scoped (part 4)
DROP POLICY tenant_isolation ON kaireon.accounts;
DROP POLICY tenant_isolation ON kaireon.sessions;
DROP POLICY tenant_isolation ON kaireon.webauthn_credentials;

-- triggers whose definition changes (most now call kaireon_internal's functions); part 5
-- creates them again
DROP TRIGGER a_registry_check ON kaireon.algorithm_models;
DROP TRIGGER audit_capture ON kaireon.alert_rules;
DROP TRIGGER audit_capture ON kaireon.algorithm_models;
DROP TRIGGER audit_capture ON kaireon.api_keys;
DROP TRIGGER audit_capture ON kaireon.approval_request_stages;
DROP TRIGGER audit_capture ON kaireon.approval_requests;
DROP TRIGGER audit_capture ON kaireon.arbitration_profiles;
DROP TRIGGER audit_capture ON kaireon.budget_allocations;
DROP TRIGGER audit_capture ON kaireon.categories;
DROP TRIGGER audit_capture ON kaireon.channels;
DROP TRIGGER audit_capture ON kaireon.connectors;
DROP TRIGGER audit_capture ON kaireon.contact_policies;
DROP TRIGGER audit_capture ON kaireon.contact_policy_scopes;
DROP TRIGGER audit_capture ON kaireon.content_items;
DROP TRIGGER audit_capture ON kaireon.content_sources;
DROP TRIGGER audit_capture ON kaireon.creatives;
DROP TRIGGER audit_capture ON kaireon.cross_offer_constraints;
DROP TRIGGER audit_capture ON kaireon.custom_role_assignments;
DROP TRIGGER audit_capture ON kaireon.custom_roles;
DROP TRIGGER audit_capture ON kaireon.data_schemas;
DROP TRIGGER audit_capture ON kaireon.data_sources;
DROP TRIGGER audit_capture ON kaireon.decision_flows;
DROP TRIGGER audit_capture ON kaireon.dsar_requests;
DROP TRIGGER audit_capture ON kaireon.experiment_challengers;
DROP TRIGGER audit_capture ON kaireon.experiments;
DROP TRIGGER audit_capture ON kaireon.flow_routes;
DROP TRIGGER audit_capture ON kaireon.geofences;
DROP TRIGGER audit_capture ON kaireon.guardrail_rules;
DROP TRIGGER audit_capture ON kaireon.journeys;
DROP TRIGGER audit_capture ON kaireon.metric_definitions;
DROP TRIGGER audit_capture ON kaireon.model_approvals;
DROP TRIGGER audit_capture ON kaireon.oauth_clients;
DROP TRIGGER audit_capture ON kaireon.offers;
DROP TRIGGER audit_capture ON kaireon.outcome_types;
DROP TRIGGER audit_capture ON kaireon.pipelines;
DROP TRIGGER audit_capture ON kaireon.placements;
DROP TRIGGER audit_capture ON kaireon.platform_settings;
DROP TRIGGER audit_capture ON kaireon.qualification_rule_scopes;
DROP TRIGGER audit_capture ON kaireon.qualification_rules;
DROP TRIGGER audit_capture ON kaireon.report_schedules;
DROP TRIGGER audit_capture ON kaireon.report_templates;
DROP TRIGGER audit_capture ON kaireon.retention_configs;
DROP TRIGGER audit_capture ON kaireon.role_grants;
DROP TRIGGER audit_capture ON kaireon.runs;
DROP TRIGGER audit_capture ON kaireon.schema_fields;
DROP TRIGGER audit_capture ON kaireon.schema_joins;
DROP TRIGGER audit_capture ON kaireon.segments;
DROP TRIGGER audit_capture ON kaireon.sso_configs;
DROP TRIGGER audit_capture ON kaireon.sub_categories;
DROP TRIGGER audit_capture ON kaireon.summary_definitions;
DROP TRIGGER audit_capture ON kaireon.templates;
DROP TRIGGER audit_capture ON kaireon.tenant_regions;
DROP TRIGGER audit_capture ON kaireon.tenant_settings;
DROP TRIGGER audit_capture ON kaireon.tenants;
DROP TRIGGER audit_capture ON kaireon.treatments;
DROP TRIGGER audit_capture ON kaireon.trigger_rules;
DROP TRIGGER audit_capture ON kaireon.users;
DROP TRIGGER audit_capture ON kaireon.volume_constraints;
DROP TRIGGER b_validate_model ON kaireon.algorithm_models;
DROP TRIGGER champion_guard ON kaireon.algorithm_models;
DROP TRIGGER check_definition ON kaireon.metric_definitions;
DROP TRIGGER check_definition ON kaireon.summary_definitions;
DROP TRIGGER check_functions ON kaireon.approval_actions;
DROP TRIGGER check_handler ON kaireon.outbox_handlers;
DROP TRIGGER exp3_reset ON kaireon.arbitration_profiles;
DROP TRIGGER flow_publish_guard ON kaireon.decision_flows;
DROP TRIGGER model_version_restore ON kaireon.model_versions;
DROP TRIGGER models_changed ON kaireon.algorithm_models;
DROP TRIGGER published_versions_append_only ON kaireon.decision_flows;
DROP TRIGGER seed_outcome_types ON kaireon.tenants;
DROP TRIGGER slug_immutable ON kaireon.tenants;
DROP TRIGGER snapshot_model ON kaireon.algorithm_models;

-------------------------------------------------------------------------------
-- Part 2: functions 0.2.0 added or changed
-------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION kaireon.approve_request(tenant_id text, request_id text, comment text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "kaireon.applying_approval" TO ''
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION kaireon.assign_variant(tenant_id text, experiment_key text, customer_id text, variants jsonb, ttl interval DEFAULT NULL::interval) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
        -- a weight beyond double precision (1e400) is refused by name here; a total that
        -- overflows (two of 1e308) fails the float8 addition below with 22003
        IF (CASE WHEN jsonb_typeof(r.value) <> 'number' THEN true
                 ELSE r.value::text::numeric < 0 OR NOT kaireon_internal._is_finite(r.value::text::numeric) END) THEN
            RAISE EXCEPTION 'variant "%" has weight %, not a non-negative finite number', r.key,
                CASE WHEN length(r.value::text) > 32 THEN left(r.value::text, 32) || '...' ELSE r.value::text END
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
$$;

CREATE OR REPLACE FUNCTION kaireon.audit_digest(tenant_id text) RETURNS jsonb
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_audit_digest';

CREATE OR REPLACE FUNCTION kaireon.audit_heads_guard() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_audit_heads_guard';

CREATE OR REPLACE FUNCTION kaireon.audited_tables() RETURNS TABLE(table_name name, options text[])
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon.cancel_request(tenant_id text, request_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon.compute_customer_clv(tenant_id text DEFAULT NULL::text, as_of timestamp with time zone DEFAULT now(), horizon_days integer DEFAULT 365) RETURNS TABLE(tenant text, customers bigint, removed bigint)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
             WHERE h.tenant_id = t AND h.occurred_at > as_of - horizon_days * interval '24 hours'
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
$$;

CREATE OR REPLACE FUNCTION kaireon.compute_metrics(tenant_id text DEFAULT NULL::text, force boolean DEFAULT false) RETURNS TABLE(tenant text, metric_key text, customers bigint, status text)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
                               kaireon_internal._metric_sql(m, v_summary, v_as_of), m.tenant_id, m.id, v_now)
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
$$;

CREATE OR REPLACE FUNCTION kaireon.create_interaction_partitions(months_ahead integer DEFAULT 3, from_month date DEFAULT ((now() AT TIME ZONE 'UTC'::text))::date) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
        PERFORM kaireon_internal._index_interaction_partition(part);
        EXECUTE format('ALTER TABLE kaireon.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('CREATE POLICY tenant_isolation ON kaireon.%I USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id())', part);
        PERFORM kaireon_internal._apply_role_grants('kaireon', part);
        EXECUTE format('COMMENT ON TABLE kaireon.%I IS %L', part,
                       format('InteractionHistory: partition of interaction_history for %s', to_char(m, 'YYYY-MM')));
        RETURN NEXT part;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION kaireon.current_tenant_id() RETURNS text
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS '$libdir/kaireon', 'kaireon_current_tenant_id';

CREATE OR REPLACE FUNCTION kaireon.distribute(shard_count integer DEFAULT NULL)
    RETURNS TABLE (table_name text, placement text, distribution_column text, colocated_with text,
                   shards integer, changed boolean)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_version   text;
    v_bad       text;               -- what a check found wrong
    v_table     text;
    v_stmt      text;
    v_tables    text[] := '{}';
    v_tenant_tables text[] := '{}';     -- those of v_tables with a tenant_id column
    r           record;
    i           integer;
    v_changed   text[] := '{}';
    v_local_rows text[] := '{}';
    v_has_rows  boolean;
    v_schemas   text[];
    v_triggers  text[] := '{}';
    v_done      integer := 0;       -- tables placed (kaireon.progress)
BEGIN
    -- 0. A superuser's operation (it changes every table, the database's settings and roles).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'kaireon.distribute() must be run by a superuser, not by role "%"', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect to the coordinator as a superuser (it places every table and changes the database''s settings).';
    END IF;
    -- 1. Citus, on its coordinator, with kaireon of this version on every worker.
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'kaireon.distribute() needs the Citus extension, which is not installed in database %', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'kaireon runs on one server as it is; to scale out, install Citus (its own packages) on every node, CREATE EXTENSION citus and kaireon on each, add the workers, then call kaireon.distribute() on the coordinator. See docs/scale-out.md.';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count % is out of range', shard_count
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass 1 to 64000, or NULL for citus.shard_count.';
    END IF;
    IF NOT kaireon_internal._citus_coordinator() THEN
        RAISE EXCEPTION 'kaireon.distribute() runs on the Citus coordinator, and this node is not it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator (citus_set_coordinator_host) and call it there.';
    END IF;
    SELECT extversion INTO v_version FROM pg_extension WHERE extname = 'kaireon';
    EXECUTE format($q$SELECT string_agg(format('%%s:%%s (%%s)', nodename, nodeport, coalesce(nullif(result, ''), 'no kaireon')), ', ')
                        FROM pg_catalog.run_command_on_workers(%L)
                       WHERE NOT success OR result IS DISTINCT FROM %L$q$,
                   'SELECT extversion FROM pg_extension WHERE extname = ''kaireon''', v_version)
        INTO v_bad;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'kaireon % is not installed on every worker: %', v_version, v_bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the same kaireon package on every node and run CREATE EXTENSION kaireon in this database on each worker, before kaireon.distribute().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive AND groupid <> 0) THEN
        RAISE EXCEPTION 'the Citus cluster has no worker'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the workers with citus_add_node first.';
    END IF;

    -- kaireon.progress shows the placement as it goes (the row goes at the end, or with an error)
    PERFORM kaireon_internal._progress_start('distribute', NULL, NULL);
    PERFORM kaireon_internal._progress_update('listing tables', 0, NULL);

    -- Triggers on distributed tables (kaireon's validation, audit and invalidation triggers
    -- run on the shards, and touch only the tenant's co-located shards); one connection per
    -- node, as Citus needs when a transaction distributes tables with foreign keys.
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- (Citus's notices about each table it copies: the layout is the answer)
    PERFORM set_config('client_min_messages', 'warning', true);
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    IF shard_count IS NOT NULL THEN
        PERFORM set_config('citus.shard_count', shard_count::text, true);
    END IF;

    -- 2. The tables to place: tenants first, then every table of schema kaireon.
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relname,
               CASE WHEN c.relname = 'tenants' THEN 'id'
                    WHEN a.attname IS NOT NULL THEN 'tenant_id' END AS dist_col,
               kaireon_internal._citus_table_type(c.oid) AS now_type
          FROM pg_class c
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relname <> 'tenants', c.relname
    LOOP
        IF r.now_type IS NULL AND (r.dist_col IS NOT NULL OR r.relname <> ALL (ARRAY(SELECT kaireon_internal._node_local_tables()))) THEN
            v_tables := v_tables || r.relname::text;
            IF r.dist_col = 'tenant_id' THEN
                v_tenant_tables := v_tenant_tables || r.relname::text;
            END IF;
        END IF;
    END LOOP;

    IF cardinality(v_tables) > 0 THEN
        -- 3. The order: Citus places a table only after every table it references, so the
        --    tables go by the depth of their foreign keys (reference tables first: a
        --    reference table may not reference a distributed one).
        SELECT array_agg(t ORDER BY lvl, t) INTO v_tables
          FROM (SELECT t, CASE WHEN t = 'tenants' THEN 999
                          ELSE kaireon_internal._fkey_depth(format('kaireon.%I', t)::regclass)
                               + CASE WHEN t = ANY (v_tenant_tables) THEN 1000 ELSE 0 END END AS lvl
                  FROM unnest(v_tables) t) o;
        FOREACH v_table IN ARRAY v_tables LOOP
            EXECUTE format('SELECT EXISTS (SELECT FROM ONLY kaireon.%I)', v_table) INTO v_has_rows;
            IF v_has_rows THEN
                v_local_rows := v_local_rows || v_table;
            END IF;
        END LOOP;

        -- A distributed table's unique keys include its distribution column: the tenants' slug
        -- stays unique where it is used, the registry of tenant schemas (a reference table keyed
        -- by schema name, which publish_data_schema writes).
        IF 'tenants' = ANY (v_tables) AND EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'kaireon.tenants'::regclass
                                                                           AND conname = 'tenants_slug_key') THEN
            ALTER TABLE kaireon.tenants DROP CONSTRAINT tenants_slug_key;
        END IF;

        -- 4. Place them: tenant tables distributed by tenant_id next to kaireon.tenants, the
        --    tenant-less ones as reference tables; the rows move to the shards. The rows are
        --    moved, not written: the triggers checking and auditing writes sleep while Citus
        --    copies them (a check's subtransaction would break Citus's copy to the workers).
        -- Here (session_replication_role) and on the workers, where Citus copies the rows into
        -- the shards: the INSERT triggers of a table holding rows are disabled for the copy and get
        -- their state back after (ALTER TABLE ... ENABLE [REPLICA | ALWAYS] TRIGGER, which Citus
        -- applies to the shards).
        SET LOCAL session_replication_role = 'replica';
        FOR r IN
            SELECT format('kaireon.%I', c.relname) AS rel, t.tgname, t.tgenabled
              FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relname::text = ANY (v_local_rows)
               AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND (t.tgtype & 4) <> 0      -- the INSERT triggers (TRIGGER_TYPE_INSERT): the copy inserts
             ORDER BY 1, 2
        LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', r.rel, r.tgname);
            v_triggers := v_triggers || format('ALTER TABLE %s ENABLE %s TRIGGER %I', r.rel,
                                               CASE r.tgenabled WHEN 'R' THEN 'REPLICA' WHEN 'A' THEN 'ALWAYS' ELSE '' END,
                                               r.tgname);
        END LOOP;
        FOREACH v_table IN ARRAY v_tables LOOP
            PERFORM kaireon_internal._progress_update('placing tables', v_done, cardinality(v_tables));
            v_done := v_done + 1;
            IF v_table = 'tenants' THEN
                PERFORM pg_catalog.create_distributed_table('kaireon.tenants', 'id', colocate_with => 'none');
            ELSIF v_table = ANY (v_tenant_tables) THEN
                PERFORM pg_catalog.create_distributed_table(format('kaireon.%I', v_table), 'tenant_id',
                                                            colocate_with => 'kaireon.tenants');
            ELSE
                PERFORM pg_catalog.create_reference_table(format('kaireon.%I', v_table));
            END IF;
            v_changed := v_changed || v_table;
        END LOOP;
        -- the coordinator's own copy of the rows (now in the shards) is emptied, once no local
        -- table references them any more, the referencing tables first
        FOR i IN REVERSE cardinality(v_tables) .. 1 LOOP
            IF v_tables[i] = ANY (v_local_rows) THEN
                PERFORM kaireon_internal._drop_local_copy(format('kaireon.%I', v_tables[i])::regclass);
            END IF;
        END LOOP;
        SET LOCAL session_replication_role = 'origin';
        FOREACH v_stmt IN ARRAY v_triggers LOOP
            EXECUTE v_stmt;
        END LOOP;
    END IF;

    -- The tenants' customer data tables (kaireon_t_<slug>.ds_*: a tenant_id column holding
    -- their tenant, their keys beginning with it) go next to their tenant's rows.
    PERFORM kaireon_internal._progress_update('placing tenant data tables', 0, NULL);
    v_schemas := ARRAY(SELECT ts.schema_name::text FROM kaireon.tenant_schemas ts);
    FOR r IN
        SELECT c.oid::regclass AS rel
          FROM pg_namespace n
          JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND NOT c.relispartition
         WHERE n.nspname::text = ANY (v_schemas)
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1
    LOOP
        IF kaireon_internal._citus_table_type(r.rel) IS NULL THEN
            SET LOCAL session_replication_role = 'replica';
            PERFORM kaireon_internal._distribute_tenant_table(r.rel);
            SET LOCAL session_replication_role = 'origin';
            v_changed := v_changed || r.rel::text;
        END IF;
    END LOOP;

    -- The grants on the tenants' data tables and segment views, made on this node before
    -- they were distributed, again: Citus copies them to the workers now.
    FOR r IN
        SELECT n.nspname::text AS nsp, c.relname::text AS rel
          FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v')
         WHERE n.nspname::text = ANY (v_schemas) AND NOT c.relispartition
         ORDER BY 1, 2
    LOOP
        PERFORM kaireon_internal._apply_role_grants(r.nsp, r.rel);
    END LOOP;

    -- The tenant a session acts for reaches the workers: SET LOCAL kaireon.tenant_id travels
    -- with the transaction's commands to every node (citus.propagate_set_commands, this
    -- database's default from now on), and the tenant pins are made on every worker too
    -- (tenant_pins is node-local: it names roles by OID).
    EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', current_database(), 'local');
    FOR r IN SELECT a.rolname, p.pinned_tenant_id FROM kaireon.tenant_pins p JOIN pg_roles a ON a.oid = p.role LOOP
        PERFORM kaireon_internal._pin_role_on_workers(r.rolname, r.pinned_tenant_id);
    END LOOP;

    -- 5. The entry points run on the node holding their tenant.
    PERFORM kaireon_internal._progress_update('delegating functions', 0, NULL);
    FOR r IN SELECT d.fn, d.tenant_arg FROM kaireon_internal._delegated_functions() d LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
                        WHERE o.classid = 'pg_proc'::regclass AND o.objid = r.fn::regprocedure
                          AND o.distribution_argument_index IS NOT NULL) THEN
            PERFORM pg_catalog.create_distributed_function(r.fn::regprocedure, r.tenant_arg,
                                                           colocate_with => 'kaireon.tenants',
                                                           force_delegation => true);
        END IF;
    END LOOP;

    -- 6. The layout.
    PERFORM kaireon_internal._progress_end();
    RETURN QUERY
        SELECT CASE WHEN c.relnamespace = 'kaireon'::regnamespace THEN c.relname::text ELSE c.oid::regclass::text END,
               coalesce(p.placement, 'local'),
               CASE WHEN p.placement = 'distributed'
                    THEN (SELECT column_to_column_name(d.logicalrelid, d.partkey) FROM pg_dist_partition d WHERE d.logicalrelid = c.oid) END,
               CASE WHEN p.placement = 'distributed' AND c.relname <> 'tenants' THEN 'tenants' END,
               (SELECT count(*)::integer FROM pg_dist_shard s WHERE s.logicalrelid = c.oid),
               c.relname::text = ANY (v_changed) OR c.oid::regclass::text = ANY (v_changed)
          FROM pg_class c
          CROSS JOIN LATERAL (SELECT kaireon_internal._citus_table_type(c.oid) AS placement) p
         WHERE (c.relnamespace = 'kaireon'::regnamespace
                OR c.relnamespace IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname::text = ANY (v_schemas)))
           AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relnamespace <> 'kaireon'::regnamespace, 1;
END
$fn$;

CREATE OR REPLACE FUNCTION kaireon.dsar_delete(tenant_id text, subject_id text, requested_by text DEFAULT NULL::text, reason text DEFAULT NULL::text, subject_type text DEFAULT 'customer'::text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'delete', requested_by, reason) s;
    v_held := ARRAY(SELECT p.data_class FROM kaireon.retention_policies() p
                     WHERE p.tenant_id = p_tenant AND p.legal_hold ORDER BY 1);
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
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
$_$;

CREATE OR REPLACE FUNCTION kaireon.dsar_export(tenant_id text, subject_id text, requested_by text DEFAULT NULL::text, reason text DEFAULT NULL::text, subject_type text DEFAULT 'customer'::text) RETURNS jsonb
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'export', requested_by, reason) s;
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
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
$_$;

CREATE OR REPLACE FUNCTION kaireon.evaluate_experiment(tenant_id text, experiment_key text) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    IF v_exp.started_at IS NULL OR v_exp.started_at + v_exp.auto_promote_days * interval '24 hours' > now() THEN
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
$$;

CREATE OR REPLACE FUNCTION kaireon.four_eyes_required(tenant_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- another tenant's answer is not the caller's to know (row level security would
    -- hide its settings row and answer a wrong false): refuse it like other calls (42501)
    PERFORM kaireon.assert_tenant_access(four_eyes_required.tenant_id);
    RETURN coalesce((SELECT s.four_eyes_enabled FROM kaireon.tenant_settings s
                      WHERE s.tenant_id = four_eyes_required.tenant_id), false);
END
$$;

CREATE OR REPLACE FUNCTION kaireon.grant_admin_role(role regrole, bypass_rls boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM kaireon_internal._grant_role(role, 'admin');
    IF bypass_rls THEN
        EXECUTE format('ALTER ROLE %I BYPASSRLS', (SELECT rolname FROM pg_roles WHERE oid = role));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._grant_role(p_role regrole, p_access text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_role      name;
    v_nsp       text;
    v_fn        regprocedure;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004', HINT = 'Pass an existing role name.';
    END IF;
    SELECT rolname INTO v_role FROM pg_roles WHERE oid = p_role;
    -- on Citus, the grants (propagated to every node) and the role_grants row share one
    -- connection per node
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
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
                           ' kaireon.platform_audit_logs, kaireon.platform_audit_chain_head,'
                           ' kaireon.approval_requests, kaireon.approval_request_stages, kaireon.approval_actions,'
                           ' kaireon.model_approvals FROM %I', v_role);
        WHEN 'admin' THEN
            -- everything but TRIGGER: a trigger runs as whoever writes the row (a superuser,
            -- pg_cron, the maintenance worker), so a role able to create one on a kaireon
            -- table could act with their rights
            EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('REVOKE TRIGGER ON ALL TABLES IN SCHEMA kaireon FROM %I', v_role);
            EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA kaireon TO %I', v_role);
            EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA kaireon TO %I', v_role);
            -- as before the helpers had their own schema: an admin may run every function
            EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA kaireon_internal TO %I', v_role);
    END CASE;
    -- Whatever the access: the audit log and the chain heads are written by kaireon alone
    -- (an admin who could move a head could break every later append of a tenant, or hide
    -- a removed tail), and the keys that sign audit digests are read by kaireon alone.
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'
                   ' ON kaireon.audit_logs, kaireon.audit_chain_heads, kaireon.platform_audit_logs,'
                   ' kaireon.platform_audit_chain_head FROM %I', v_role);
    EXECUTE format('REVOKE ALL ON kaireon.audit_digest_keys FROM %I', v_role);
    IF p_access <> 'admin' THEN
        -- who has which access, which tenant owns which data schema and which roles are pinned
        -- are not theirs to see (nor to change: a pinned role must not unpin itself)
        EXECUTE format('REVOKE ALL ON kaireon.role_grants, kaireon.tenant_schemas, kaireon.tenant_pins FROM %I', v_role);
        FOR v_fn IN SELECT * FROM kaireon_internal._role_functions(p_access) LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_role);
        END LOOP;
    END IF;
    -- (no function in the ON CONFLICT update: Citus, where role_grants is a reference table,
    -- refuses one that is not IMMUTABLE)
    INSERT INTO kaireon.role_grants (role_name, access, updated_at) VALUES (v_role, p_access, now())
        ON CONFLICT (role_name) DO UPDATE SET access = EXCLUDED.access, updated_at = EXCLUDED.updated_at;
    -- Tenant data schemas published before this call.
    FOR v_nsp IN SELECT schema_name FROM kaireon.tenant_schemas WHERE to_regnamespace(quote_ident(schema_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_nsp, v_role);
        EXECUTE format('GRANT %s ON ALL TABLES IN SCHEMA %I TO %I',
                       CASE p_access WHEN 'readonly' THEN 'SELECT' WHEN 'app' THEN 'SELECT, INSERT, UPDATE, DELETE'
                                     ELSE 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES' END, v_nsp, v_role);
    END LOOP;
    -- (after an extension upgrade, new tables for the stored-SQL role too)
    PERFORM kaireon_internal._grant_confined_role();
END
$$;

CREATE OR REPLACE FUNCTION kaireon.grant_app_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    BEGIN ATOMIC
 SELECT kaireon_internal._grant_role(role, 'app'::text) AS _grant_role;
END;

CREATE OR REPLACE FUNCTION kaireon.grant_readonly_role(role regrole) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    BEGIN ATOMIC
 SELECT kaireon_internal._grant_role(role, 'readonly'::text) AS _grant_role;
END;

CREATE OR REPLACE FUNCTION kaireon.is_segment_member(tenant_id text, segment_id text, customer_id text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_member    boolean;
BEGIN
    IF is_segment_member.customer_id IS NULL THEN
        RAISE EXCEPTION 'customer_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the customer id to test.';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE customer_id = $1)',
                   kaireon_internal._segment_view(is_segment_member.tenant_id, is_segment_member.segment_id))
       INTO v_member USING is_segment_member.customer_id;
    RETURN v_member;
END
$_$;

CREATE OR REPLACE FUNCTION kaireon.on_delete_set_null() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_on_delete_set_null';

CREATE OR REPLACE FUNCTION kaireon_internal._pin_role(p_role regrole, p_tenant_id text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_role      pg_roles%ROWTYPE;
BEGIN
    IF p_role IS NULL THEN
        RAISE EXCEPTION 'role must not be null' USING ERRCODE = '22004', HINT = 'Pass an existing role name.';
    END IF;
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be null' USING ERRCODE = '22004', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;
    SELECT * INTO v_role FROM pg_roles WHERE oid = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role with OID % does not exist', p_role::oid USING ERRCODE = '42704', HINT = 'Pass an existing role name.';
    END IF;
    IF v_role.rolsuper OR v_role.rolbypassrls THEN
        RAISE EXCEPTION 'role "%" is a superuser or has BYPASSRLS: a tenant pin cannot limit it', v_role.rolname
            USING ERRCODE = '22023', HINT = 'Row level security does not apply to such a role; pin a role without BYPASSRLS (and let others SET ROLE to it).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants WHERE id = p_tenant_id) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant_id
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants (the caller must see every tenant: a superuser or BYPASSRLS role).';
    END IF;
    INSERT INTO kaireon.tenant_pins (role, pinned_tenant_id) VALUES (p_role, p_tenant_id)
        ON CONFLICT (role) DO UPDATE SET pinned_tenant_id = EXCLUDED.pinned_tenant_id
        WHERE kaireon.tenant_pins.pinned_tenant_id IS DISTINCT FROM EXCLUDED.pinned_tenant_id;
    -- On Citus, tenant_pins is local to each node (it names roles by OID) and a delegated
    -- call checks the tenant on the worker: the workers get the pin too (docs/scale-out.md).
    PERFORM kaireon_internal._pin_role_on_workers(v_role.rolname, p_tenant_id);
END
$$;

CREATE OR REPLACE FUNCTION kaireon.pin_role(role regrole, tenant_id text) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    BEGIN ATOMIC
 SELECT kaireon_internal._pin_role(role, tenant_id) AS _pin_role;
END;

CREATE OR REPLACE FUNCTION kaireon.publish_data_schema(tenant_id text, schema_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    v_columns   text[];
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
    v_table := 'ds_' || kaireon_internal._check_identifier('data schema', ds.name);

    IF NOT EXISTS (SELECT 1 FROM kaireon.schema_fields sf WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema) THEN
        RAISE EXCEPTION 'data schema "%" has no fields', ds.name
            USING ERRCODE = '22023', HINT = 'Add rows to kaireon.schema_fields before publishing.';
    END IF;
    IF (SELECT count(*) FROM kaireon.schema_fields sf
        WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.is_primary_key) <> 1 THEN
        RAISE EXCEPTION 'data schema "%" must have exactly one primary key field', ds.name
            USING ERRCODE = '22023', HINT = 'Set is_primary_key on the field holding the entity id (for customers, the customer id).';
    END IF;

    v_nsp := kaireon_internal._claim_tenant_schema(p_tenant);
    PERFORM kaireon_internal._apply_role_grants(v_nsp, NULL);
    v_exists := to_regclass(format('%I.%I', v_nsp, v_table)) IS NOT NULL;

    IF NOT v_exists THEN
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema ORDER BY sf.ordinal, sf.name LOOP
            v_cols := v_cols || kaireon_internal._field_column_sql(f);
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
        -- on Citus (kaireon.distribute()), next to the tenant's other rows
        IF kaireon_internal._citus_table_type('kaireon.tenants') = 'distributed' THEN
            PERFORM kaireon_internal._distribute_tenant_table(format('%I.%I', v_nsp, v_table)::regclass);
        END IF;
    ELSE
        -- Fields added since the last publish become new columns.
        -- (the table's columns first: Citus plans no query joining a catalog with its tables)
        v_columns := ARRAY(SELECT a.attname::text FROM pg_attribute a
                            WHERE a.attrelid = format('%I.%I', v_nsp, v_table)::regclass
                              AND a.attnum > 0 AND NOT a.attisdropped);
        FOR f IN SELECT * FROM kaireon.schema_fields sf
                 WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema
                   AND sf.name <> ALL (v_columns)
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
            EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %s', v_nsp, v_table, kaireon_internal._field_column_sql(f));
            IF f.is_unique THEN
                EXECUTE format('ALTER TABLE %I.%I ADD UNIQUE (tenant_id, %I)', v_nsp, v_table, f.name);
            END IF;
        END LOOP;
    END IF;
    PERFORM kaireon_internal._apply_role_grants(v_nsp, v_table);

    UPDATE kaireon.schema_fields sf SET published_at = now()
     WHERE sf.tenant_id = p_tenant AND sf.schema_id = p_schema AND sf.published_at IS NULL;
    UPDATE kaireon.data_schemas d SET status = 'published', published_at = now()
     WHERE d.tenant_id = p_tenant AND d.id = p_schema;
    RETURN format('%I.%I', v_nsp, v_table);
END
$$;

CREATE OR REPLACE FUNCTION kaireon.publish_decision_flow(tenant_id text, key text, notes text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    f           kaireon.decision_flows;
    v_version   integer;
    v_req       text;
    v_entry     jsonb;
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
    -- draft as it is now: 60_governance.sql) instead of made
    IF kaireon.four_eyes_required(publish_decision_flow.tenant_id) AND kaireon.approval_in_progress() IS NULL THEN
        v_req := kaireon.request_approval(publish_decision_flow.tenant_id, 'decision_flow.publish', f.id,
                                          jsonb_build_object('key', f.key, 'notes', notes, 'draft', f.draft_config));
        RAISE NOTICE 'publishing decision flow "%" awaits approval: request %', f.key, v_req
            USING HINT = 'Another user approves it with kaireon.approve_request; recommend runs the published version until then.';
        RETURN NULL;
    END IF;
    -- the draft is valid: its validation trigger ran when it was written
    v_version := coalesce(f.published_version, 0) + 1;
    -- the new version is built first: the UPDATE calls no STABLE function on a column (the
    -- draft, locked above, is the one written), which Citus could not send to the shard
    v_entry := jsonb_build_array(jsonb_build_object(
                   'version', v_version,
                   'config', f.draft_config,
                   'notes', notes,
                   'publishedAt', now(),
                   'publishedBy', coalesce(nullif(current_setting('kaireon.user_id', true), ''), session_user::text)));
    UPDATE kaireon.decision_flows d
       SET published_versions = d.published_versions || v_entry,
           published_version = v_version,
           published_at = now(),
           status = 'published'
     WHERE d.tenant_id = f.tenant_id AND d.id = f.id;
    RETURN v_version;
END
$$;

CREATE OR REPLACE FUNCTION kaireon.publish_outbox(max_events integer DEFAULT 100) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    ev          record;
    v_nsp       name;
    v_fn        name;
    v_topic     text;
    v_handler   text;
    v_proc      regprocedure;
    v_found     boolean;
    v_err       text;
    n           integer := 0;
    v_tenants   text[];
    v_tenant    text;
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000, not %', coalesce(max_events::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass how many due events to handle in this call.';
    END IF;
    -- On Citus (kaireon.distribute()) a statement locking rows names one tenant (Citus locks
    -- no rows of several shards at once): the tenants are served one after the other, each in
    -- the order its events were written: their transactions' time, then seq (seq comes from the
    -- sequence of the node that wrote the event, and a tenant moved to another node continues
    -- from that node's range, which may be below its old one; the time continues). On one
    -- node, one pass in seq order.
    IF kaireon_internal._citus_table_type('kaireon.outbox_events') IS NOT NULL THEN
        v_tenants := ARRAY(SELECT t.id FROM kaireon.tenants t ORDER BY t.id);
    ELSE
        v_tenants := ARRAY[NULL::text];
    END IF;
    FOREACH v_tenant IN ARRAY v_tenants LOOP
    EXIT WHEN n >= max_events;
    -- Due events in the order they were written; events another publisher holds are skipped.
    FOR ev IN EXECUTE format(
              'SELECT o.tenant_id, o.id, o.seq, o.topic, o.payload, o.retry_count, o.max_retries
                FROM kaireon.outbox_events o
               WHERE %s o.status IN (''pending'', ''failed'') AND o.next_attempt_at <= now()
               ORDER BY %s
               LIMIT $1
                 FOR UPDATE SKIP LOCKED', CASE WHEN v_tenant IS NULL THEN '' ELSE 'o.tenant_id = $2 AND' END,
                                          CASE WHEN v_tenant IS NULL THEN 'o.seq' ELSE 'o.created_at, o.seq' END)
              USING max_events - n, v_tenant
    LOOP
        -- The handler is looked up by name for each event: one dropped (nothing keeps it from
        -- being dropped), renamed, no longer returning void or no longer owned by a superuser
        -- fails the delivery (retried, then dead-lettered) instead of being skipped.
        SELECT h.topic, h.handler INTO v_topic, v_handler
          FROM kaireon.outbox_handlers h
         WHERE h.topic IN (ev.topic, '*')
         ORDER BY h.topic = '*'
         LIMIT 1;
        v_found := FOUND;
        BEGIN
            IF v_found THEN
                v_proc := kaireon_internal._resolve_function(v_handler, '{text,text,text,jsonb}', 'outbox handler',
                                                             format('topic "%s"', v_topic));
                SELECT n2.nspname, p.proname INTO v_nsp, v_fn
                  FROM pg_proc p JOIN pg_namespace n2 ON n2.oid = p.pronamespace WHERE p.oid = v_proc;
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
                       next_attempt_at = now() + kaireon_internal._outbox_backoff(ev.retry_count + 1)
                 WHERE tenant_id = ev.tenant_id AND id = ev.id;
            END IF;
        END;
        n := n + 1;
    END LOOP;
    END LOOP;
    RETURN n;
END
$_$;

CREATE OR REPLACE FUNCTION kaireon.publish_segment(tenant_id text, segment_id text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    v_nsp := kaireon_internal._claim_tenant_schema(p_tenant);
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
               'sql', format('b.%I', sf.name), 'type', kaireon_internal._field_sql_type(sf.data_type, sf.length, sf.precision, sf.scale))), '{}')
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
                                   v_alias, v_alias, kaireon_internal._check_identifier('join key', v_sj.foreign_key, 63),
                                   kaireon_internal._check_identifier('join key', v_sj.primary_key, 63));
        SELECT v_fields || coalesce(jsonb_object_agg(v_other.name || '.' || sf.name, jsonb_build_object(
                   'sql', format('%s.%I', v_alias, sf.name), 'type', kaireon_internal._field_sql_type(sf.data_type, sf.length, sf.precision, sf.scale))), '{}')
          INTO v_fields
          FROM kaireon.schema_fields sf
         WHERE sf.tenant_id = p_tenant AND sf.schema_id = v_other.id AND sf.published_at IS NOT NULL;
    END LOOP;

    v_where := kaireon_internal._segment_filter_sql(seg.filters, v_fields);
    IF to_regclass(format('%I.%I', v_nsp, v_view)) IS NOT NULL THEN
        EXECUTE format('DROP VIEW %I.%I', v_nsp, v_view);
    END IF;
    -- The view names its tenant, so rows of any other tenant never match whoever reads it.
    EXECUTE format('CREATE VIEW %I.%I WITH (security_invoker = true) AS SELECT DISTINCT b.tenant_id, b.%I::text AS customer_id, b.%I AS customer_key FROM %s WHERE b.tenant_id = %L AND %s',
                   v_nsp, v_view, v_pk_name, v_pk_name, v_from, p_tenant, v_where);
    EXECUTE format('COMMENT ON VIEW %I.%I IS %L', v_nsp, v_view,
                   format('kaireon segment %s (%s) of tenant %s', seg.name, p_segment, p_tenant));
    PERFORM kaireon_internal._apply_role_grants(v_nsp, v_view);
    EXECUTE format('SELECT count(*) FROM %I.%I', v_nsp, v_view) INTO v_count;

    UPDATE kaireon.segments s
       SET view_name = v_view, status = 'published', published_at = now(), customer_count = v_count
     WHERE s.tenant_id = p_tenant AND s.id = p_segment;
    RETURN format('%I.%I', v_nsp, v_view);
END
$$;

CREATE OR REPLACE FUNCTION kaireon.recommend_json(tenant_id text, request jsonb) RETURNS jsonb
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_recommend_json';

CREATE OR REPLACE FUNCTION kaireon.reject_request(tenant_id text, request_id text, reason text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon.request_approval(tenant_id text, action text, entity_id text DEFAULT NULL::text, payload jsonb DEFAULT '{}'::jsonb, reason text DEFAULT NULL::text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION kaireon.reset_volume_counters() RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    n           integer;
BEGIN
    -- recommend restarts a counter lazily when its reset_at has passed; this makes the reset
    -- visible to readers of the table too (the row lock orders it against recommend)
    UPDATE kaireon.volume_constraints v
       SET current_count = 0, reset_at = kaireon_internal._period_end(v.period, now())
     WHERE v.reset_at IS NOT NULL AND v.reset_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION kaireon.respond_bulk(tenant_id text, request jsonb) RETURNS jsonb
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_respond_bulk';

CREATE OR REPLACE FUNCTION kaireon.respond_json(tenant_id text, request jsonb) RETURNS jsonb
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_respond_json';

CREATE OR REPLACE FUNCTION kaireon.retention_policies(as_of timestamp with time zone DEFAULT now()) RETURNS TABLE(tenant_id text, data_class text, retention_days integer, legal_hold boolean, configured boolean, cutoff timestamp with time zone)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function)
    RETURN QUERY
    SELECT t.id, d.data_class,
           coalesce(c.retention_days, m.retention_days, d.retention_days),
           coalesce(c.legal_hold, m.legal_hold, false),
           c.id IS NOT NULL OR m.id IS NOT NULL,
           -- days of 24 hours (UTC days), whatever the session's time zone and its DST changes
           as_of - coalesce(c.retention_days, m.retention_days, d.retention_days) * interval '24 hours'
      FROM kaireon.tenants t
     CROSS JOIN kaireon.retention_defaults() d
      LEFT JOIN kaireon.retention_configs c ON c.tenant_id = t.id AND c.data_class = d.data_class
      LEFT JOIN kaireon.retention_configs m ON d.data_class = 'summaries' AND c.id IS NULL
                                           AND m.tenant_id = t.id AND m.data_class = 'metrics'
     ORDER BY t.id, d.data_class;
END
$$;

CREATE OR REPLACE FUNCTION kaireon.rollup_summaries(tenant_id text DEFAULT NULL::text, max_span interval DEFAULT '1 day'::interval) RETURNS TABLE(tenant text, definition_key text, rows_read bigint, watermark timestamp with time zone, caught_up boolean)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    v_horizon := kaireon_internal._summary_horizon();
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
            PERFORM kaireon_internal._rollup_rolling(d, v_as_of);
        END IF;
        rows_read := CASE WHEN v_hi > v_lo THEN kaireon_internal._rollup_step(d, v_lo, v_hi, v_as_of) ELSE 0 END;
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._is_finite(value double precision) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (abs(value) < 'Infinity'::double precision);

CREATE OR REPLACE FUNCTION kaireon.segment_members(tenant_id text, segment_id text) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT customer_id FROM %s ORDER BY customer_id',
                                kaireon_internal._segment_view(segment_members.tenant_id, segment_members.segment_id));
END
$$;

CREATE OR REPLACE FUNCTION kaireon.set_tenant(tenant_id text, user_id text DEFAULT NULL::text, request_id text DEFAULT NULL::text, local boolean DEFAULT true) RETURNS text
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_set_tenant';

CREATE OR REPLACE FUNCTION kaireon.unpin_role(role regrole) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_had       boolean;
BEGIN
    DELETE FROM kaireon.tenant_pins p WHERE p.role = unpin_role.role;
    v_had := FOUND;
    IF v_had THEN
        PERFORM kaireon_internal._pin_role_on_workers((SELECT rolname FROM pg_roles WHERE oid = unpin_role.role), NULL);
    END IF;
    RETURN v_had;
END
$$;

CREATE OR REPLACE FUNCTION kaireon.verify_audit_chain(tenant_id text, from_id bigint DEFAULT NULL::bigint, max_rows bigint DEFAULT NULL::bigint, digest jsonb DEFAULT NULL::jsonb) RETURNS TABLE(intact boolean, verified bigint, total bigint, scanned bigint, broken_at_id bigint, broken_reason text, digest_status text)
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_verify_audit_chain_0_2';

CREATE OR REPLACE FUNCTION kaireon_internal._acting_user() RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_user      text := nullif(current_setting('kaireon.user_id', true), '');
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'kaireon.user_id is not set: approvals need to know which user acts'
            USING ERRCODE = '42501', HINT = 'SET kaireon.user_id to the application user''s id first.';
    END IF;
    RETURN v_user;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._add_replica_invalidation(tbl regclass, update_when text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF update_when IS NULL THEN
        EXECUTE format('CREATE TRIGGER config_changed_replica AFTER INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica()', tbl);
    ELSE
        -- a counter table: only a change of its definition, not a counted unit
        EXECUTE format('CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica()', tbl);
        EXECUTE format('CREATE TRIGGER config_changed_replica_upd AFTER UPDATE ON %s FOR EACH ROW WHEN (%s)'
                       ' EXECUTE FUNCTION kaireon_internal._config_changed_replica()', tbl, update_when);
        EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER config_changed_replica_upd', tbl);
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER config_changed_replica', tbl);
    EXECUTE format('CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON %s'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica()', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER config_changed_replica_trunc', tbl);
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._apply_contact_policy_change(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._apply_flow_publish(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._apply_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._apply_model_promotion(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._apply_role_grants(p_schema text, p_relation text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
                                         -- not TRIGGER (see kaireon_internal._grant_role)
                                         ELSE 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES' END,
                           p_schema, p_relation, g.role_name);
        END IF;
    END LOOP;
    -- a tenant's stored SQL reads its data tables and segment views (docs/arbitration.md)
    IF to_regrole('kaireon_confined') IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO kaireon_confined', p_schema);
        IF p_relation IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I.%I TO kaireon_confined', p_schema, p_relation);
        END IF;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._approval_action_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._approval_stages(p_tenant_id text, p_action text) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._champion_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._check_identifier(kind text, ident text, max_len integer DEFAULT 40) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    IF ident IS NULL OR ident !~ '^[a-z][a-z0-9_]*$' OR length(ident) > max_len THEN
        RAISE EXCEPTION 'invalid % name "%"', kind, left(coalesce(ident, '(null)'), 100)
            USING ERRCODE = '42602',
                  HINT = format('A %s name starts with a lower-case letter, holds only a-z, 0-9 and _, and is at most %s characters.',
                                kind, max_len);
    END IF;
    RETURN ident;
END
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._check_metric_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._check_outbox_handler() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    -- stored in canonical form (the text of the regprocedure, search_path pg_catalog)
    NEW.handler := kaireon_internal._resolve_function(NEW.handler, '{text,text,text,jsonb}', 'outbox handler',
                                                      format('topic "%s"', NEW.topic), true)::text;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._check_summary_definition() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v           jsonb;
BEGIN
    FOR v IN SELECT e FROM jsonb_array_elements(NEW.dimensions) e LOOP
        IF jsonb_typeof(v) <> 'string' OR NOT EXISTS (SELECT 1 FROM kaireon_internal._summary_dimensions() d WHERE d.name = v #>> '{}') THEN
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._citus_coordinator() RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_group     integer;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
    RETURN v_group = 0;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._citus_table_type(p_table regclass) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_type  text;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT CASE partmethod WHEN ''h'' THEN ''distributed'' WHEN ''n'' THEN
                 CASE WHEN repmodel = ''t'' THEN ''reference'' ELSE ''citus local'' END
                 ELSE partmethod::text END
               FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1'
        INTO v_type USING p_table;
    RETURN v_type;
END
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._claim_tenant_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_nsp       text := kaireon_internal._tenant_data_schema(p_tenant_id);
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._config_changed_replica() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_config_changed_replica';

CREATE OR REPLACE FUNCTION kaireon_internal._confined_tables() RETURNS SETOF regclass
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- tenant tables under row level security, except those holding secrets or credentials
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND c.relrowsecurity
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
       AND c.relname NOT IN ('platform_settings', 'api_keys', 'oauth_clients', 'users', 'accounts', 'sessions',
                             'webauthn_credentials', 'connectors', 'content_sources',
                             'audit_logs', 'audit_chain_heads', 'role_grants', 'tenant_schemas', 'dsar_requests')
     ORDER BY 1
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._current_stage(p_req kaireon.approval_requests, p_user text) RETURNS kaireon.approval_request_stages
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._delegated_functions() RETURNS TABLE(fn text, tenant_arg text)
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    VALUES ('kaireon.recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'tenant_id'),
           ('kaireon.respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamptz,text)', 'tenant_id'),
           ('kaireon.recommend_json(text,jsonb)', 'tenant_id'),
           ('kaireon.respond_json(text,jsonb)', 'tenant_id'),
           ('kaireon.respond_bulk(text,jsonb)', 'tenant_id'),
           -- campaigns and simulations run the tenant's stored customer query as the confined
           -- role, which may not log in to a worker: on the tenant's node it reads locally
           ('kaireon.run_campaign(text,text,boolean)', 'tenant_id'),
           ('kaireon.simulate(text,text,text,text,integer,jsonb,text)', 'tenant_id'),
           -- the audit log's retention deletes on the tenant's node (docs/audit.md)
           ('kaireon.purge_audit_chain(text,timestamptz,bigint)', 'tenant_id')
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._distribute_tenant_table(p_table regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_has_rows  boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', p_table) INTO v_has_rows;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM pg_catalog.create_distributed_table(p_table, 'tenant_id', colocate_with => 'kaireon.tenants');
    IF v_has_rows THEN
        PERFORM kaireon_internal._drop_local_copy(p_table);
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._drop_local_copy(p_table regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_role      text;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = p_table) <> 'r' THEN
        RETURN;
    END IF;
    v_role := current_setting('session_replication_role');
    PERFORM set_config('session_replication_role', 'replica', true);
    PERFORM pg_catalog.truncate_local_data_after_distributing_table(p_table);
    PERFORM set_config('session_replication_role', v_role, true);
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text, p_requested_by text, p_reason text, OUT request_id text, OUT interaction_ids text[]) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._dsar_targets(p_tenant text) RETURNS TABLE(label text, relation text, predicate text, data_class text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function; the catalogs and the
    -- tenant's rows are read by separate queries, as Citus joins no catalog with its tables)
    RETURN QUERY
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
    SELECT format('%s.%s', ds.schema_name, ds.table_name), format('%I.%I', ds.schema_name, ds.table_name),
           format('x.%I::text = $1', ds.key_name), NULL::text
      FROM (SELECT s.schema_name::text AS schema_name, d.table_name, f.name AS key_name
              FROM kaireon.data_schemas d
              JOIN kaireon.tenants t ON t.id = d.tenant_id
              JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
              JOIN kaireon.schema_fields f ON f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key
             WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND f.tenant_id = p_tenant
               AND d.entity_type = 'customer' AND d.status = 'published') ds
     WHERE to_regclass(format('%I.%I', ds.schema_name, ds.table_name)) IS NOT NULL
     ORDER BY 1;
END
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._exp3_reset() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF NEW.weights IS DISTINCT FROM OLD.weights THEN
        DELETE FROM kaireon.exp3_arms a WHERE a.tenant_id = NEW.tenant_id AND a.profile_id = NEW.id;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._field_column_sql(f kaireon.schema_fields) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_type      text := kaireon_internal._field_sql_type(f.data_type, f.length, f.precision, f.scale);
    v_sql       text;
BEGIN
    v_sql := format('%I %s', kaireon_internal._check_identifier('field', f.name, 63), v_type);
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._field_sql_type(p_data_type text, p_length integer, p_precision integer, p_scale integer) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE p_data_type
        WHEN 'varchar' THEN CASE WHEN p_length IS NULL THEN 'varchar' ELSE format('varchar(%s)', p_length) END
        WHEN 'numeric' THEN CASE WHEN p_precision IS NULL THEN 'numeric'
                                 ELSE format('numeric(%s,%s)', p_precision, coalesce(p_scale, 0)) END
        WHEN 'double' THEN 'double precision'
        WHEN 'timestamp' THEN 'timestamp without time zone'
        WHEN 'timestamptz' THEN 'timestamp with time zone'
        ELSE p_data_type
    END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._fkey_depth(p_table regclass) RETURNS integer
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH RECURSIVE up (rel, depth, path) AS (
        SELECT p_table::oid, 0, ARRAY[p_table::oid]
        UNION ALL
        SELECT c.confrelid, up.depth + 1, up.path || c.confrelid
          FROM up JOIN pg_constraint c ON c.conrelid = up.rel AND c.contype = 'f' AND c.conparentid = 0
         WHERE c.confrelid <> ALL (up.path)
    )
    SELECT max(depth) FROM up
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._flow_publish_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._grant_confined_role() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_rel       regclass;
    v_nsp       text;
BEGIN
    IF to_regrole('kaireon_confined') IS NULL THEN
        BEGIN
            CREATE ROLE kaireon_confined NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;   -- created meanwhile by another database's CREATE EXTENSION
        END;
    END IF;
    COMMENT ON ROLE kaireon_confined IS
        'kaireon: the role a tenant''s stored SQL runs as (read-only, row level security pinned to the tenant); never grant it more, nor log in with it.';
    EXECUTE 'GRANT USAGE ON SCHEMA kaireon TO kaireon_confined';
    -- the campaign's sample order (a pure hash) is computed in the confined query
    EXECUTE 'GRANT EXECUTE ON FUNCTION kaireon.fnv1a(text) TO kaireon_confined';
    FOR v_rel IN SELECT * FROM kaireon_internal._confined_tables() LOOP
        EXECUTE format('GRANT SELECT ON %s TO kaireon_confined', v_rel);
    END LOOP;
    FOR v_nsp IN SELECT schema_name FROM kaireon.tenant_schemas WHERE to_regnamespace(quote_ident(schema_name)) IS NOT NULL LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO kaireon_confined', v_nsp);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO kaireon_confined', v_nsp);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._index_interaction_partition(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._is_finite(value numeric) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (abs(value) <= '179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000'::numeric);

CREATE OR REPLACE FUNCTION kaireon_internal._metric_sql(m kaireon.metric_definitions, summary_definition_id text, as_of date) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._model_version_restore() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._models_changed() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_models_changed_trigger';

CREATE OR REPLACE FUNCTION kaireon_internal._node_local_tables() RETURNS SETOF name
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT t::name FROM unnest(ARRAY['maintenance_runs', 'platform_audit_chain_head', 'platform_audit_logs',
                                     'tenant_pins']) AS t
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._outbox_backoff(retry integer) RETURNS interval
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT least(coalesce(nullif(current_setting('kaireon.outbox_retry_base', true), '')::interval, interval '1 second')
                 * power(2, greatest(retry, 1) - 1)::double precision,
                 coalesce(nullif(current_setting('kaireon.outbox_retry_max', true), '')::interval, interval '1 hour'))
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._partition_bounds(part regclass, OUT lower_bound timestamp with time zone, OUT upper_bound timestamp with time zone) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET "DateStyle" TO 'ISO, YMD'
    SET "TimeZone" TO 'UTC'
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._pending_request(p_tenant_id text, p_request_id text) RETURNS kaireon.approval_requests
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._period_end(period text, t timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT (CASE
        WHEN period IN ('day', 'daily') THEN date_trunc('day', t AT TIME ZONE 'UTC') + interval '1 day'
        WHEN period IN ('week', 'weekly') THEN date_trunc('week', t AT TIME ZONE 'UTC') + interval '1 week'
        WHEN period IN ('month', 'monthly') THEN date_trunc('month', t AT TIME ZONE 'UTC') + interval '1 month'
        WHEN period IN ('quarter', 'quarterly') THEN date_trunc('quarter', t AT TIME ZONE 'UTC') + interval '3 months'
    END) AT TIME ZONE 'UTC'
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._period_key(period_type text, t timestamp with time zone) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE period_type
        WHEN 'daily' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD')
        WHEN 'weekly' THEN to_char(t AT TIME ZONE 'UTC', 'IYYY-"W"IW')
        WHEN 'monthly' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM')
        WHEN 'quarterly' THEN to_char(t AT TIME ZONE 'UTC', 'YYYY-"Q"Q')
        ELSE 'total'
    END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._pin_role_on_workers(p_role name, p_tenant_id text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_failed    text;
BEGIN
    IF NOT kaireon_internal._citus_coordinator()
       OR kaireon_internal._citus_table_type('kaireon.tenants') IS DISTINCT FROM 'distributed' THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT string_agg(format(''%%s:%%s: %%s'', nodename, nodeport, result), ''; '')
                      FROM pg_catalog.run_command_on_workers(%L) WHERE NOT success',
                   CASE WHEN p_tenant_id IS NULL THEN format('SELECT kaireon.unpin_role(%L)', p_role)
                        ELSE format('SELECT kaireon.pin_role(%L, %L)', p_role, p_tenant_id) END)
        INTO v_failed;
    IF v_failed IS NOT NULL THEN
        RAISE EXCEPTION 'the pin of role "%" could not be made on every worker: %', p_role, v_failed
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Make sure kaireon is installed on every worker and the role exists there (Citus propagates CREATE ROLE), then call it again.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._published_versions_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._registry_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
        -- four-eyes: only an approved model.promote request may promote (60_governance.sql)
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._resolve_function(signature text, arg_types regtype[], what text, of_what text, registering boolean DEFAULT false) RETURNS regprocedure
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_fn        regprocedure;
    v_proc      pg_proc%ROWTYPE;
    v_state     text;
    v_args      text := array_to_string(arg_types::text[], ', ');
BEGIN
    IF signature IS NULL THEN
        RAISE EXCEPTION 'the % of % must not be null', what, of_what
            USING ERRCODE = '22004', HINT = format('Name a function by its signature, as in public.f(%s).', v_args);
    END IF;
    -- resolved with search_path pg_catalog only: the same text finds the same function for
    -- every session, node and restore, so a name outside pg_catalog needs its schema
    BEGIN
        v_fn := to_regprocedure(signature);
    EXCEPTION WHEN invalid_text_representation OR invalid_name OR syntax_error OR undefined_object THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
        IF v_state <> '42704' THEN          -- (42704, an argument type that does not exist: no such function)
            RAISE EXCEPTION '% "%" of % is not a function signature', what, signature, of_what
                USING ERRCODE = '22023', HINT = format('Write schema.name(argument types), as in public.f(%s).', v_args);
        END IF;
    END;
    IF v_fn IS NULL THEN
        RAISE EXCEPTION '% "%" of % %', what, signature, of_what,
                        CASE WHEN registering THEN 'does not exist' ELSE 'no longer exists' END
            USING ERRCODE = '42883',
                  HINT = CASE WHEN NOT registering
                              THEN 'It was dropped, renamed or moved, or its argument types changed, since it was registered: create it again with this signature, or register another function.'
                              WHEN split_part(signature, '(', 1) !~ '[.]'
                              THEN 'Name the function with its schema, as in public.f(...): the name is looked up with search_path pg_catalog.'
                              ELSE 'Create the function first: it is looked up by its schema, name and argument types.' END;
    END IF;
    SELECT * INTO v_proc FROM pg_proc p WHERE p.oid = v_fn;
    IF v_proc.pronamespace = pg_my_temp_schema() OR pg_is_other_temp_schema(v_proc.pronamespace) THEN
        RAISE EXCEPTION '% "%" of % is a temporary function', what, signature, of_what
            USING ERRCODE = '42P13', HINT = 'Name a function of a permanent schema: it is looked up again at every use.';
    END IF;
    IF v_proc.prokind <> 'f' OR v_proc.proretset OR v_proc.prorettype <> 'void'::regtype
       OR ARRAY(SELECT unnest(v_proc.proargtypes)) IS DISTINCT FROM arg_types::oid[] THEN
        RAISE EXCEPTION '% "%" of % must be a function taking (%) and returning void', what, signature, of_what, v_args
            USING ERRCODE = '42P13',
                  HINT = format('Declare it as f(%s) RETURNS void; it signals a failure by raising an error.', v_args);
    END IF;
    -- it runs with the rights of the kaireon function that calls it (a superuser's)
    IF NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = v_proc.proowner) THEN
        RAISE EXCEPTION '% "%" of % is not owned by a superuser', what, signature, of_what
            USING ERRCODE = '42501',
                  HINT = 'It runs with the privileges of the kaireon function that calls it: a superuser must create (or own) it.';
    END IF;
    RETURN v_fn;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._retire_interaction_partition(part text, allowed_tenants text[], detach boolean DEFAULT false, lock_timeout_ms integer DEFAULT 100) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    v_upper := (SELECT b.upper_bound FROM kaireon_internal._partition_bounds(v_rel) b);
    IF v_upper IS NULL THEN
        RETURN false;
    END IF;
    SELECT t INTO v_other FROM kaireon_internal._tenants_in(v_rel) AS t
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._role_functions(p_access text) RETURNS SETOF regprocedure
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.version()', 'kaireon.current_tenant_id()', 'kaireon.assert_tenant_access(text)',
        'kaireon.set_tenant(text,text,text,boolean)',
        'kaireon.validate_config(text,text,text)', 'kaireon.segment_members(text,text)',
        'kaireon.is_segment_member(text,text,text)', 'kaireon_internal._segment_view(text,text)',
        'kaireon.score(text,text,jsonb,text)', 'kaireon.score_vector(text,text,double precision[],text)',
        'kaireon.explain_score(text,text,jsonb,text)', 'kaireon.model_features(text,text)',
        'kaireon.adaptive_report(text,text,text,text)',
        'kaireon.fnv1a(text)', 'kaireon.normal_cdf(double precision)',
        'kaireon.wilson_interval(double precision,double precision,double precision)',
        'kaireon.registry_transitions()', 'kaireon.experiment_bucket(text,text)',
        'kaireon.control_bucket(text,text,text)',
        'kaireon.lift(text,timestamptz,timestamptz,text,double precision,text[])',
        'kaireon.set_model_seed(bigint)',
        'kaireon.verify_audit_chain(text,bigint,bigint,jsonb)', 'kaireon.audit_canonical(bigint)',
        'kaireon.audit_digest(text)',
        'kaireon.four_eyes_required(text)', 'kaireon.approval_in_progress()', 'kaireon.in_restore_session()']) AS f
    UNION ALL
    SELECT f::regprocedure FROM unnest(ARRAY[
        'kaireon.publish_data_schema(text,text)', 'kaireon.publish_segment(text,text)',
        'kaireon.recommend(text,text,text,text,jsonb,integer,text,jsonb)', 'kaireon.recommend_json(jsonb)',
        'kaireon.respond(text,text,text,text,integer,text,text,text,numeric,jsonb,timestamptz,text)',
        'kaireon.respond_json(jsonb)', 'kaireon.respond_bulk(jsonb)',
        'kaireon.recommend_json(text,jsonb)', 'kaireon.respond_json(text,jsonb)', 'kaireon.respond_bulk(text,jsonb)',
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
        'kaireon.dsar_export(text,text,text,text,text)', 'kaireon.dsar_delete(text,text,text,text,text)',
        'kaireon.attribute_conversions(text,timestamptz,timestamptz,text,interval,interval,text[])',
        'kaireon.location_event(text,text,double precision,double precision,timestamptz)',
        'kaireon.publish_journey(text,text,text)',
        'kaireon.enroll_in_journey(text,text,text,jsonb,timestamptz)',
        'kaireon.create_delivery(text,text,text,text,text,jsonb)',
        'kaireon.delivery_status(text,text,text,text,text,timestamptz,text,text)',
        'kaireon.link_identity(text,text,text,text,double precision)',
        'kaireon_internal._customer_data_table(text,text)']) AS f
     WHERE p_access = 'app'
$fn$;

CREATE OR REPLACE FUNCTION kaireon_internal._rollup_rolling(d kaireon.summary_definitions, as_of date) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._rollup_step(d kaireon.summary_definitions, lo timestamp with time zone, hi timestamp with time zone, as_of date) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
      INTO v_cols FROM kaireon_internal._summary_dimensions() x WHERE x.column_name IS NOT NULL;
    SELECT coalesce(string_agg(format('%L || coalesce(%s, '''')', x.name || '=', x.expr), ' || ''|'' || ' ORDER BY o.n), '''''')
      INTO v_key
      FROM unnest(v_dims) WITH ORDINALITY AS o (dim, n) JOIN kaireon_internal._summary_dimensions() x ON x.name = o.dim
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
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._seed_outcome_types() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification, category, is_system)
    VALUES (NEW.id, 'impression', 'Impression', 'neutral', 'exposure', true),
           (NEW.id, 'click', 'Click', 'positive', 'engagement', true),
           (NEW.id, 'conversion', 'Conversion', 'positive', 'conversion', true),
           (NEW.id, 'share', 'Share', 'positive', 'engagement', true),
           (NEW.id, 'save', 'Save', 'positive', 'engagement', true),
           (NEW.id, 'not_interested', 'Not interested', 'negative', 'feedback', true),
           (NEW.id, 'opt_out', 'Opt out', 'negative', 'feedback', true),
           (NEW.id, 'dismiss', 'Dismiss', 'negative', 'feedback', true),
           (NEW.id, 'complaint', 'Complaint', 'negative', 'feedback', true),
           (NEW.id, 'defer', 'Defer', 'neutral', 'feedback', true)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._segment_bad_operator(field text, op text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RAISE EXCEPTION 'segment filter on "%" has unknown operator "%"', field, coalesce(op, '(none)')
        USING ERRCODE = '22023',
              HINT = 'Operators: eq, neq, gt, gte, lt, lte, in, not_in, contains, starts_with, exists, not_exists.';
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._segment_filter_sql(node jsonb, p_fields jsonb, depth integer DEFAULT 0) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
            v_parts := v_parts || kaireon_internal._segment_filter_sql(v_el, p_fields, depth + 1);
        END LOOP;
        IF cardinality(v_parts) = 0 THEN
            RETURN CASE v_op WHEN 'all' THEN 'true' ELSE 'false' END;
        END IF;
        RETURN '(' || array_to_string(v_parts, CASE v_op WHEN 'all' THEN ' AND ' ELSE ' OR ' END) || ')';
    END IF;
    IF node ? 'not' THEN
        RETURN '(NOT ' || kaireon_internal._segment_filter_sql(node -> 'not', p_fields, depth + 1) || ')';
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
        SELECT array_agg(kaireon_internal._segment_literal(node ->> 'field', e, v_col ->> 'type')) INTO v_parts
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
                   kaireon_internal._segment_literal(node ->> 'field', v_lit, v_col ->> 'type'))
        WHEN v_op = 'contains' THEN
            CASE WHEN v_col ->> 'type' = 'jsonb' THEN format('(%s @> %L::jsonb)', v_col ->> 'sql', v_value::text)
                 ELSE format('(strpos(%s::text, %L) > 0)', v_col ->> 'sql', v_lit) END
        WHEN v_op = 'starts_with' THEN format('starts_with(%s::text, %L)', v_col ->> 'sql', v_lit)
        ELSE kaireon_internal._segment_bad_operator(node ->> 'field', v_op)
    END;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._segment_literal(field text, value text, sql_type text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    BEGIN
        EXECUTE format('SELECT %L::%s', value, sql_type);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'segment filter value % for field "%" is not a valid %', quote_literal(value), field, sql_type
            USING ERRCODE = '22023', DETAIL = SQLERRM, HINT = 'Compare the field with a value of its type.';
    END;
    RETURN format('%L::%s', value, sql_type);
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._segment_view(p_tenant text, p_segment text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
    RETURN format('%I.%I', kaireon_internal._tenant_data_schema(p_tenant), kaireon_internal._check_identifier('segment view', v_view, 63));
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._snapshot_model() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._stored_select_trigger() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_stored_select_trigger';

CREATE OR REPLACE FUNCTION kaireon_internal._summary_dimensions() RETURNS TABLE(name text, column_name text, expr text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._summary_horizon() RETURNS timestamp with time zone
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT least(now(), (SELECT min(a.xact_start) FROM pg_stat_activity a
                          WHERE a.xact_start IS NOT NULL AND a.datname = current_database()
                            AND a.backend_type <> 'autovacuum worker'))
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._tenant_data_schema(p_tenant_id text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_slug      text;
BEGIN
    SELECT slug INTO v_slug FROM kaireon.tenants WHERE id = p_tenant_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant_id
            USING ERRCODE = '42704', HINT = 'Insert it into kaireon.tenants first.';
    END IF;
    RETURN 'kaireon_t_' || kaireon_internal._check_identifier('tenant slug', v_slug);
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._tenant_pins_changed() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_tenant_pins_changed';

CREATE OR REPLACE FUNCTION kaireon_internal._tenant_slug_immutable() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF NEW.slug IS DISTINCT FROM OLD.slug THEN
        RAISE EXCEPTION 'the slug of tenant "%" cannot change (from "%" to "%")', OLD.id, OLD.slug, NEW.slug
            USING ERRCODE = '55000', HINT = 'The slug names the tenant''s data schema kaireon_t_<slug>; create a new tenant instead.';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._tenants_in(tbl regclass) RETURNS SETOF text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    -- On Citus (kaireon.distribute()) a distributed table's shards answer a plain DISTINCT
    -- each (the skipping recursive query is not one Citus can send to the shards).
    IF kaireon_internal._citus_table_type(tbl) IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT DISTINCT tenant_id FROM %s', tbl);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'WITH RECURSIVE t (tenant_id) AS ('
        '  (SELECT tenant_id FROM %1$s ORDER BY tenant_id LIMIT 1)'
        '  UNION ALL'
        '  SELECT (SELECT x.tenant_id FROM %1$s x WHERE x.tenant_id > t.tenant_id ORDER BY x.tenant_id LIMIT 1)'
        '    FROM t WHERE t.tenant_id IS NOT NULL)'
        ' SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL', tbl);
END
$_$;

CREATE OR REPLACE FUNCTION kaireon_internal._type_names(kind text) RETURNS SETOF text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS '$libdir/kaireon', 'kaireon_type_names';

CREATE OR REPLACE FUNCTION kaireon_internal._user_holds_role(p_tenant_id text, p_user_id text, p_role text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._validate_contact_policy_change(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._validate_flow_publish(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._validate_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;

CREATE OR REPLACE FUNCTION kaireon_internal._validate_model() RETURNS trigger
    LANGUAGE c
    AS '$libdir/kaireon', 'kaireon_validate_model_trigger';

CREATE OR REPLACE FUNCTION kaireon_internal._validate_model_promotion(tenant_id text, entity_id text, payload jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
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
$$;


-- (added while 0.2.0 is developed: the adaptive model's functions)
-- ---- adaptive models (src/scoring/models/adaptive.c) ----

CREATE FUNCTION kaireon_internal._adaptive_learn(sketch bytea, observation bytea, positive boolean,
                                                 sketch_bins integer, max_symbols integer)
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'kaireon_adaptive_learn_sql'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._adaptive_learn(bytea, bytea, boolean, integer, integer) IS
    'Internal: the sketch of an adaptive model''s model_adaptations shard row (NULL: empty) after one outcome (the observation''s numeric values into bin sketches of at most sketch_bins bins, symbolic values counted, at most max_symbols per predictor). Pure; used by the upsert of adaptive learning.';

CREATE FUNCTION kaireon.adaptive_report(tenant_id text, model_key text, offer_id text,
                                        channel_id text DEFAULT NULL)
    RETURNS TABLE (predictor text, predictor_type text, auc double precision, active boolean, bins jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_adaptive_report_sql'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.adaptive_report(text, text, text, text) IS
    'The predictors of an adaptive model''s model for one offer (and channel_id, for a model with config perChannel), highest AUC first: type (numeric or symbolic), AUC of its bins, whether it is active (AUC above aucThreshold), and its bins (interval lower/upper or values, the missing bin, positives, negatives, log-odds contribution), as the backend compiled them (refreshed per config refreshMs). No rows when the offer has learned nothing; 22023 for a model that is not adaptive.';

-------------------------------------------------------------------------------
-- Part 3: functions 0.2.0 dropped, moved to kaireon_internal or changed the signature of
-------------------------------------------------------------------------------

DROP FUNCTION kaireon._acting_user();
DROP FUNCTION kaireon._apply_contact_policy_change(text, text, jsonb);
DROP FUNCTION kaireon._apply_flow_publish(text, text, jsonb);
DROP FUNCTION kaireon._apply_four_eyes_settings(text, text, jsonb);
DROP FUNCTION kaireon._apply_model_promotion(text, text, jsonb);
DROP FUNCTION kaireon._apply_role_grants(text, text);
DROP FUNCTION kaireon._approval_action_check();
DROP FUNCTION kaireon._approval_stages(text, text);
DROP FUNCTION kaireon._champion_guard();
DROP FUNCTION kaireon._check_identifier(text, text, integer);
DROP FUNCTION kaireon._check_metric_definition();
DROP FUNCTION kaireon._check_outbox_handler();
DROP FUNCTION kaireon._check_summary_definition();
DROP FUNCTION kaireon._claim_tenant_schema(text);
DROP FUNCTION kaireon._current_stage(kaireon.approval_requests, text);
DROP FUNCTION kaireon._dsar_start(text, text, text, text, text, text);
DROP FUNCTION kaireon._dsar_targets(text);
DROP FUNCTION kaireon._exp3_reset();
DROP FUNCTION kaireon._field_column_sql(kaireon.schema_fields);
DROP FUNCTION kaireon._field_sql_type(kaireon.schema_fields);
DROP FUNCTION kaireon._flow_publish_guard();
DROP FUNCTION kaireon._grant_role(regrole, text);
DROP FUNCTION kaireon._index_interaction_partition(text);
DROP FUNCTION kaireon._metric_sql(kaireon.metric_definitions, text, date);
DROP FUNCTION kaireon._model_version_restore();
DROP FUNCTION kaireon._models_changed();
DROP FUNCTION kaireon._outbox_backoff(integer);
DROP FUNCTION kaireon._partition_bounds(regclass);
DROP FUNCTION kaireon._pending_request(text, text);
DROP FUNCTION kaireon._period_end(text, timestamp with time zone);
DROP FUNCTION kaireon._period_key(text, timestamp with time zone);
DROP FUNCTION kaireon._published_versions_append_only();
DROP FUNCTION kaireon._registry_check();
DROP FUNCTION kaireon._retire_interaction_partition(text, text[], boolean, integer);
DROP FUNCTION kaireon._role_functions(text);
DROP FUNCTION kaireon._rollup_rolling(kaireon.summary_definitions, date);
DROP FUNCTION kaireon._rollup_step(kaireon.summary_definitions, timestamp with time zone, timestamp with time zone, date);
DROP FUNCTION kaireon._seed_outcome_types();
DROP FUNCTION kaireon._segment_bad_operator(text, text);
DROP FUNCTION kaireon._segment_filter_sql(jsonb, jsonb, integer);
DROP FUNCTION kaireon._segment_literal(text, text, text);
DROP FUNCTION kaireon._segment_view(text, text);
DROP FUNCTION kaireon._snapshot_model();
DROP FUNCTION kaireon._summary_dimensions();
DROP FUNCTION kaireon._summary_horizon();
DROP FUNCTION kaireon._tenant_data_schema(text);
DROP FUNCTION kaireon._tenant_slug_immutable();
DROP FUNCTION kaireon._tenants_in(regclass);
DROP FUNCTION kaireon._user_holds_role(text, text, text);
DROP FUNCTION kaireon._validate_contact_policy_change(text, text, jsonb);
DROP FUNCTION kaireon._validate_flow_publish(text, text, jsonb);
DROP FUNCTION kaireon._validate_four_eyes_settings(text, text, jsonb);
DROP FUNCTION kaireon._validate_model();
DROP FUNCTION kaireon._validate_model_promotion(text, text, jsonb);
DROP FUNCTION kaireon.verify_audit_chain(text, bigint, bigint);

-------------------------------------------------------------------------------
-- Part 4: tables
-------------------------------------------------------------------------------

-- The appends of the audit chain and the guards of the log refuse what follows (moving rows
-- between the log's tables, rewriting keys); none of it is a change to audit: the rows, their
-- ids and hashes move unchanged.
ALTER TABLE kaireon.audit_logs DISABLE TRIGGER USER;
ALTER TABLE kaireon.audit_chain_heads DISABLE TRIGGER USER;

-- the built-in approval actions' functions moved to kaireon_internal
-- (only those: a tenant's own function named kaireon._something stays where it is)
UPDATE kaireon.approval_actions
   SET apply_function = CASE WHEN to_regprocedure(replace(apply_function, 'kaireon._', 'kaireon_internal._')) IS NOT NULL
                             AND apply_function LIKE 'kaireon.\_%'
                             THEN replace(apply_function, 'kaireon._', 'kaireon_internal._') ELSE apply_function END,
       validate_function = CASE WHEN to_regprocedure(replace(validate_function, 'kaireon._', 'kaireon_internal._')) IS NOT NULL
                                AND validate_function LIKE 'kaireon.\_%'
                                THEN replace(validate_function, 'kaireon._', 'kaireon_internal._') ELSE validate_function END
 WHERE apply_function LIKE 'kaireon.\_%' OR validate_function LIKE 'kaireon.\_%';

-- New tables (their comments, grants and triggers come in parts 5 and 6).
CREATE TABLE kaireon.tenant_pins (
    role                    regrole NOT NULL,
    pinned_tenant_id        text NOT NULL CHECK (length(pinned_tenant_id) BETWEEN 1 AND 200),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE kaireon.tenant_pins ENABLE ROW LEVEL SECURITY;

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
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX platform_users_email_key ON kaireon.platform_users (lower(email));

CREATE TABLE kaireon.platform_audit_logs (
    id                      bigint NOT NULL,
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
    CHECK (action = 'anchor' OR (entity_type IS NOT NULL AND entity_id IS NOT NULL))
);
CREATE INDEX platform_audit_logs_entity_idx
    ON kaireon.platform_audit_logs (entity_type, entity_id, id);
ALTER TABLE kaireon.platform_audit_logs ENABLE ROW LEVEL SECURITY;

CREATE TABLE kaireon.platform_audit_chain_head (
    chain                   text NOT NULL DEFAULT 'platform' CHECK (chain = 'platform'),
    last_id                 bigint NOT NULL,
    last_seq                bigint NOT NULL CHECK (last_seq >= 0),
    last_hash               text NOT NULL CHECK (last_hash ~ '^[0-9a-f]{64}$'),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE kaireon.platform_audit_chain_head ENABLE ROW LEVEL SECURITY;

CREATE TABLE kaireon.audit_digest_keys (
    key_id                  text NOT NULL CHECK (key_id ~ '^[0-9a-f]{16}$'),
    key                     bytea NOT NULL CHECK (octet_length(key) = 32),
    created_at              timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON kaireon.audit_digest_keys FROM PUBLIC;
ALTER TABLE kaireon.audit_digest_keys ENABLE ROW LEVEL SECURITY;

-- The platform audit chain (rows without a tenant) moves from audit_logs to
-- platform_audit_logs, ids, positions and hashes unchanged (the canonical form of a row has a
-- null tenant_id in both), and its head to platform_audit_chain_head.
INSERT INTO kaireon.platform_audit_logs
       (id, chain_seq, request_id, user_id, session_user_name, action, entity_type, entity_id,
        before, after, changed_fields, entity_version, prev_hash, integrity_hash, created_at)
SELECT id, chain_seq, request_id, user_id, session_user_name, action, entity_type, entity_id,
       before, after, changed_fields, entity_version, prev_hash, integrity_hash, created_at
  FROM kaireon.audit_logs WHERE tenant_id IS NULL;
DELETE FROM kaireon.audit_logs WHERE tenant_id IS NULL;
INSERT INTO kaireon.platform_audit_chain_head (chain, last_id, last_seq, last_hash, created_at, updated_at)
SELECT 'platform', last_id, last_seq, last_hash, created_at, updated_at
  FROM kaireon.audit_chain_heads WHERE tenant_id IS NULL;
DELETE FROM kaireon.audit_chain_heads WHERE tenant_id IS NULL;

ALTER TABLE kaireon.audit_logs ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.audit_logs DROP CONSTRAINT audit_logs_pkey;
ALTER TABLE kaireon.audit_logs ADD CONSTRAINT audit_logs_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE kaireon.audit_logs DROP CONSTRAINT audit_logs_tenant_id_chain_seq_key;
ALTER TABLE kaireon.audit_logs ADD CONSTRAINT audit_logs_tenant_id_chain_seq_key UNIQUE (tenant_id, chain_seq);
DROP INDEX kaireon.audit_logs_tenant_id_idx;
DROP INDEX kaireon.audit_logs_anchor_idx;
CREATE INDEX audit_logs_anchor_idx ON kaireon.audit_logs (tenant_id, chain_seq) WHERE action = 'anchor';

ALTER TABLE kaireon.audit_chain_heads DROP CONSTRAINT audit_chain_heads_tenant_id_key;
ALTER TABLE kaireon.audit_chain_heads ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.audit_chain_heads ADD CONSTRAINT audit_chain_heads_pkey PRIMARY KEY (tenant_id);
ALTER TABLE kaireon.audit_chain_heads DROP CONSTRAINT audit_chain_heads_last_seq_check;
ALTER TABLE kaireon.audit_chain_heads ADD CONSTRAINT audit_chain_heads_last_seq_check CHECK (last_seq >= 0);

ALTER TABLE kaireon.audit_logs ENABLE TRIGGER USER;
ALTER TABLE kaireon.audit_chain_heads ENABLE TRIGGER USER;

-- Users become tenant-scoped. A user without a tenant (a platform administrator) moves to
-- platform_users; 0.2.0 gives platform administrators no OAuth accounts, sessions or WebAuthn
-- credentials (they sign in with password and TOTP), so those of 0.1.0 are removed, and their
-- conversations and custom role assignments, which need a user of the tenant, too.
ALTER TABLE kaireon.accounts DROP CONSTRAINT accounts_user_id_fkey;
ALTER TABLE kaireon.sessions DROP CONSTRAINT sessions_user_id_fkey;
ALTER TABLE kaireon.webauthn_credentials DROP CONSTRAINT webauthn_credentials_user_id_fkey;
ALTER TABLE kaireon.conversations DROP CONSTRAINT conversations_user_id_fkey;
ALTER TABLE kaireon.custom_role_assignments DROP CONSTRAINT custom_role_assignments_user_id_fkey;

INSERT INTO kaireon.platform_users
       (id, name, email, email_verified, image, password_hash, role, mfa_secret, mfa_enabled,
        mfa_backup_codes, locked_until, failed_login_attempts, onboarding_progress, created_at, updated_at)
SELECT id, name, email, email_verified, image, password_hash, role, mfa_secret, mfa_enabled,
       mfa_backup_codes, locked_until, failed_login_attempts, onboarding_progress, created_at, updated_at
  FROM kaireon.users WHERE tenant_id IS NULL;

ALTER TABLE kaireon.accounts ADD COLUMN tenant_id text;
ALTER TABLE kaireon.sessions ADD COLUMN tenant_id text;
ALTER TABLE kaireon.webauthn_credentials ADD COLUMN tenant_id text;
UPDATE kaireon.accounts x SET tenant_id = u.tenant_id FROM kaireon.users u WHERE u.id = x.user_id;
UPDATE kaireon.sessions x SET tenant_id = u.tenant_id FROM kaireon.users u WHERE u.id = x.user_id;
UPDATE kaireon.webauthn_credentials x SET tenant_id = u.tenant_id FROM kaireon.users u WHERE u.id = x.user_id;
-- What 0.2.0 cannot hold goes, and the upgrade says how much (a WARNING per kind): the OAuth
-- accounts, sessions and WebAuthn credentials of platform administrators (they sign in with
-- password and TOTP), and conversations and custom role assignments of a user of no tenant or
-- of another tenant than theirs. (A WARNING: an extension script hides NOTICEs.)
DO $removed$
DECLARE
    n           bigint;
BEGIN
    DELETE FROM kaireon.accounts WHERE tenant_id IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RAISE WARNING 'kaireon 0.2.0: % OAuth account link(s) of platform administrators removed (they sign in with password and TOTP)', n; END IF;
    DELETE FROM kaireon.sessions WHERE tenant_id IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RAISE WARNING 'kaireon 0.2.0: % session(s) of platform administrators removed (they sign in again)', n; END IF;
    DELETE FROM kaireon.webauthn_credentials WHERE tenant_id IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RAISE WARNING 'kaireon 0.2.0: % WebAuthn credential(s) of platform administrators removed', n; END IF;
    DELETE FROM kaireon.conversations c
     WHERE NOT EXISTS (SELECT 1 FROM kaireon.users u WHERE u.id = c.user_id AND u.tenant_id = c.tenant_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RAISE WARNING 'kaireon 0.2.0: % conversation(s) of users outside their tenant removed', n; END IF;
    DELETE FROM kaireon.custom_role_assignments a
     WHERE NOT EXISTS (SELECT 1 FROM kaireon.users u WHERE u.id = a.user_id AND u.tenant_id = a.tenant_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN RAISE WARNING 'kaireon 0.2.0: % custom role assignment(s) of users outside their tenant removed', n; END IF;
END
$removed$;
DELETE FROM kaireon.users WHERE tenant_id IS NULL;

ALTER TABLE kaireon.users ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.users DROP CONSTRAINT users_pkey;
ALTER TABLE kaireon.users ADD CONSTRAINT users_pkey PRIMARY KEY (tenant_id, id);
DROP INDEX kaireon.users_tenant_id_idx;
DROP INDEX kaireon.users_email_key;
CREATE UNIQUE INDEX users_email_key ON kaireon.users (tenant_id, lower(email));

ALTER TABLE kaireon.accounts ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE kaireon.accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE kaireon.accounts DROP CONSTRAINT accounts_provider_provider_account_id_key;
ALTER TABLE kaireon.accounts ADD CONSTRAINT accounts_tenant_id_provider_provider_account_id_key UNIQUE (tenant_id, provider, provider_account_id);
ALTER TABLE kaireon.accounts ADD CONSTRAINT accounts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES kaireon.tenants (id) ON DELETE CASCADE;
ALTER TABLE kaireon.accounts ADD CONSTRAINT accounts_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX kaireon.accounts_user_id_idx;
CREATE INDEX accounts_user_id_idx ON kaireon.accounts (tenant_id, user_id);

ALTER TABLE kaireon.sessions ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE kaireon.sessions ADD CONSTRAINT sessions_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE kaireon.sessions DROP CONSTRAINT sessions_session_token_key;
ALTER TABLE kaireon.sessions ADD CONSTRAINT sessions_tenant_id_session_token_key UNIQUE (tenant_id, session_token);
ALTER TABLE kaireon.sessions ADD CONSTRAINT sessions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES kaireon.tenants (id) ON DELETE CASCADE;
ALTER TABLE kaireon.sessions ADD CONSTRAINT sessions_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX kaireon.sessions_user_id_idx;
CREATE INDEX sessions_user_id_idx ON kaireon.sessions (tenant_id, user_id);

ALTER TABLE kaireon.webauthn_credentials ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE kaireon.webauthn_credentials DROP CONSTRAINT webauthn_credentials_pkey;
ALTER TABLE kaireon.webauthn_credentials ADD CONSTRAINT webauthn_credentials_pkey PRIMARY KEY (tenant_id, id);
ALTER TABLE kaireon.webauthn_credentials DROP CONSTRAINT webauthn_credentials_credential_id_key;
ALTER TABLE kaireon.webauthn_credentials ADD CONSTRAINT webauthn_credentials_tenant_id_credential_id_key UNIQUE (tenant_id, credential_id);
ALTER TABLE kaireon.webauthn_credentials ADD CONSTRAINT webauthn_credentials_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES kaireon.tenants (id) ON DELETE CASCADE;
ALTER TABLE kaireon.webauthn_credentials ADD CONSTRAINT webauthn_credentials_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX kaireon.webauthn_credentials_user_idx;
CREATE INDEX webauthn_credentials_user_idx ON kaireon.webauthn_credentials (tenant_id, user_id);

DROP INDEX kaireon.conversations_user_id_idx;
ALTER TABLE kaireon.conversations ADD CONSTRAINT conversations_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;
DROP INDEX kaireon.custom_role_assignments_user_id_idx;
ALTER TABLE kaireon.custom_role_assignments ADD CONSTRAINT custom_role_assignments_tenant_id_user_id_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES kaireon.users (tenant_id, id) ON DELETE CASCADE;

-- Optional references: every ON DELETE SET NULL (col) key becomes ON DELETE NO ACTION (Citus
-- refuses SET NULL between distributed tables); the trigger "On_delete_set_null" of each
-- referenced table (part 5) sets the references to NULL instead.
DO $optional_references$
DECLARE
    r           record;
BEGIN
    FOR r IN
        SELECT fk.conname, fk.conrelid::regclass AS child,
               pg_get_constraintdef(fk.oid) AS def
          FROM pg_constraint fk
         WHERE fk.contype = 'f' AND fk.connamespace = 'kaireon'::regnamespace
           AND fk.conparentid = 0 AND fk.confdeltype = 'n'
         ORDER BY fk.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.child, r.conname);
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.child, r.conname,
                       regexp_replace(r.def, ' ON DELETE SET NULL \([^)]*\)$', ''));
    END LOOP;
END
$optional_references$;

-- No NaN, no Infinity: CONSTRAINT <table>_<column>_finite on every numeric / double precision
-- column (as 99_finalize.sql adds them; partitions inherit them from their parent).
DO $finite$
DECLARE
    r           record;
    v_bad       text;
BEGIN
    -- one ALTER TABLE per table: its checks are validated in one scan
    FOR r IN
        SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) AS cols
          FROM pg_class c
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND a.atttypid IN ('numeric'::regtype, 'double precision'::regtype, 'real'::regtype)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                            WHERE k.conrelid = c.oid AND k.conname = format('%s_%s_finite', c.relname, a.attname))
         GROUP BY c.relname
         ORDER BY c.relname
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE kaireon.%I ', r.relname) ||
                    (SELECT string_agg(format('ADD CONSTRAINT %I CHECK (kaireon_internal._is_finite(%I))',
                                              format('%s_%s_finite', r.relname, col), col), ', ')
                       FROM unnest(r.cols) col);
        EXCEPTION WHEN check_violation THEN
            -- which columns hold what 0.2.0 refuses: named, and nothing changed
            EXECUTE 'SELECT string_agg(format(''%s (%s rows)'', col, n), '', '') FROM (SELECT col, n FROM (VALUES ' ||
                    (SELECT string_agg(format('(%L, (SELECT count(*) FROM kaireon.%I WHERE NOT kaireon_internal._is_finite(%I)))',
                                              col, r.relname, col), ', ')
                       FROM unnest(r.cols) col) ||
                    ') v (col, n) WHERE n > 0) s'
               INTO v_bad;
            RAISE EXCEPTION 'kaireon 0.2.0 refuses NaN and Infinity in kaireon.%: %', r.relname, v_bad
                USING ERRCODE = 'check_violation',
                      HINT = format('Set those values to a finite number or NULL (e.g. UPDATE kaireon.%I SET <column> = NULL WHERE <column> IN (''NaN'', ''Infinity'', ''-Infinity'')), then run ALTER EXTENSION kaireon UPDATE again.', r.relname);
        END;
    END LOOP;
    -- 0.1.0 stored any conversion value respond was given
    BEGIN
        ALTER TABLE kaireon.interaction_history ADD CONSTRAINT interaction_history_conversion_value_range
            CHECK (conversion_value >= -1e15 AND conversion_value <= 1e15);
    EXCEPTION WHEN check_violation THEN
        RAISE EXCEPTION 'kaireon 0.2.0 refuses conversion values beyond 1e15 in magnitude: kaireon.interaction_history holds % of them',
            (SELECT count(*) FROM kaireon.interaction_history WHERE abs(conversion_value) > 1e15)
            USING ERRCODE = 'check_violation',
                  HINT = 'Correct or clear them (UPDATE kaireon.interaction_history SET conversion_value = NULL WHERE abs(conversion_value) > 1e15), then run ALTER EXTENSION kaireon UPDATE again.';
    END;
END
$finite$;

-- The primary keys of the new tables, last, as a fresh install has them.
ALTER TABLE kaireon.tenant_pins ADD CONSTRAINT tenant_pins_pkey PRIMARY KEY (role);
ALTER TABLE kaireon.platform_users ADD CONSTRAINT platform_users_pkey PRIMARY KEY (id);
ALTER TABLE kaireon.platform_audit_logs ADD CONSTRAINT platform_audit_logs_pkey PRIMARY KEY (id);
ALTER TABLE kaireon.platform_audit_logs ADD CONSTRAINT platform_audit_logs_chain_seq_key UNIQUE (chain_seq);
ALTER TABLE kaireon.platform_audit_chain_head ADD CONSTRAINT platform_audit_chain_head_pkey PRIMARY KEY (chain);
ALTER TABLE kaireon.audit_digest_keys ADD CONSTRAINT audit_digest_keys_pkey PRIMARY KEY (key_id);

-------------------------------------------------------------------------------
-- Part 5: triggers, policies, pg_dump registration
-------------------------------------------------------------------------------

CREATE POLICY tenant_isolation ON kaireon.accounts
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
CREATE POLICY tenant_isolation ON kaireon.sessions
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
CREATE POLICY tenant_isolation ON kaireon.webauthn_credentials
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());

SELECT pg_catalog.pg_extension_config_dump('kaireon.tenant_pins', '');
SELECT pg_catalog.pg_extension_config_dump('kaireon.platform_users', '');
SELECT pg_catalog.pg_extension_config_dump('kaireon.platform_audit_logs', '');
SELECT pg_catalog.pg_extension_config_dump('kaireon.platform_audit_chain_head', '');
SELECT pg_catalog.pg_extension_config_dump('kaireon.audit_digest_keys', '');

ALTER TABLE kaireon.platform_users ENABLE ROW LEVEL SECURITY;

-- the counter tables' replica invalidation fires on a change of the definition only (as
-- 45_decisioning_api.sql creates it; its WHEN is a row comparison, which pg_dump prints as ORs)
SELECT kaireon_internal._add_replica_invalidation('kaireon.volume_constraints',
    '(OLD.name, OLD.scope, OLD.scope_id, OLD.max_volume, OLD.period, OLD.status)'
    ' IS DISTINCT FROM (NEW.name, NEW.scope, NEW.scope_id, NEW.max_volume, NEW.period, NEW.status)');
SELECT kaireon_internal._add_replica_invalidation('kaireon.budget_allocations',
    '(OLD.name, OLD.scope, OLD.scope_id, OLD.period_type, OLD.period_key, OLD.max_impressions, OLD.max_spend,'
    ' OLD.max_conversions, OLD.status) IS DISTINCT FROM (NEW.name, NEW.scope, NEW.scope_id, NEW.period_type,'
    ' NEW.period_key, NEW.max_impressions, NEW.max_spend, NEW.max_conversions, NEW.status)');

CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.algorithm_models FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('experiments', 'champion_model_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.arbitration_profiles FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('decision_flows', 'arbitration_profile_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.categories FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('offers', 'category_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.channels FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('impressions', 'channel_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.connectors FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('pipelines', 'connector_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.contact_policies FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('suppressions', 'policy_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.content_items FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('content_items', 'parent_template_id', 'id', 'creatives', 'content_item_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.content_sources FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('content_items', 'content_source_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.conversations FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('ai_attachments', 'conversation_id', 'id', 'ai_import_applies', 'conversation_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.creatives FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('impressions', 'creative_id', 'id', 'interaction_history', 'creative_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.data_schemas FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('customer_segments_ai', 'schema_id', 'id', 'data_schemas', 'linked_schema_id', 'id', 'pipelines', 'schema_id', 'id', 'segments', 'base_schema_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.decision_flows FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('runs', 'decision_flow_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.offers FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('impressions', 'offer_id', 'id', 'interaction_history', 'offer_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.placements FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('creatives', 'placement_id', 'id', 'impressions', 'placement_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.report_schedules FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('report_runs', 'schedule_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.segments FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('runs', 'segment_id', 'id', 'simulation_runs', 'segment_id', 'id');
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.sub_categories FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('offers', 'sub_category_id', 'id');
CREATE TRIGGER a_registry_check BEFORE INSERT OR UPDATE ON kaireon.algorithm_models FOR EACH ROW EXECUTE FUNCTION kaireon_internal._registry_check();
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.alert_rules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=last_fired_at', 'ignore=last_evaluated_at', 'ignore=last_value', 'entity=alert_rules');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.algorithm_models DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('version=version', 'ignore=model_state', 'ignore=metrics', 'ignore=last_trained_at', 'entity=algorithm_models');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.api_keys DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=hashed_key', 'ignore=last_used_at', 'entity=api_keys');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.approval_request_stages DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=approval_request_stages');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.approval_requests DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=approval_requests');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.arbitration_profiles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=arbitration_profiles');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.budget_allocations DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=used_impressions', 'ignore=used_spend', 'ignore=used_conversions', 'entity=budget_allocations');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.categories DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=categories');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.channels DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=channels');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.connectors DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=auth_config', 'ignore=last_tested_at', 'ignore=last_error', 'entity=connectors');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.contact_policies DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=contact_policies');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.contact_policy_scopes DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=contact_policy_scopes');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.content_items DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('version=version', 'entity=content_items');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.content_sources DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=webhook_secret', 'ignore=last_synced_at', 'entity=content_sources');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.creatives DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=creatives');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.cross_offer_constraints DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=cross_offer_constraints');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.custom_role_assignments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=custom_role_assignments');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.custom_roles DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=custom_roles');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.data_schemas DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=data_schemas');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.data_sources DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=last_synced_at', 'entity=data_sources');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.decision_flows DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('version=published_version', 'entity=decision_flows');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.dsar_requests DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=subject_id', 'redact=reason', 'entity=dsar_requests');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.experiment_challengers DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=experiment_challengers');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.experiments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=results', 'entity=experiments');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.flow_routes DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=flow_routes');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.geofences DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=geofences');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.guardrail_rules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=guardrail_rules');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.journeys DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=journeys');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.metric_definitions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=metric_definitions');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.model_approvals DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('version=version', 'entity=model_approvals');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.oauth_clients DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=hashed_secret', 'entity=oauth_clients');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.offers DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=offers');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.outcome_types DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=outcome_types');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.pipelines DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=last_run_status', 'ignore=last_run_at', 'entity=pipelines');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.placements DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=placements');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.platform_settings DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=value:encrypted', 'entity=platform_settings');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.platform_users DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('tenant=none', 'redact=password_hash', 'redact=mfa_secret', 'redact=mfa_backup_codes', 'ignore=failed_login_attempts', 'ignore=locked_until', 'entity=platform_users');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.qualification_rule_scopes DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=qualification_rule_scopes');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.qualification_rules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=qualification_rules');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.report_schedules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=last_run_at', 'ignore=next_run_at', 'ignore=last_status', 'entity=report_schedules');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.report_templates DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=report_templates');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.retention_configs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=retention_configs');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.role_grants DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('tenant=none', 'id=role_name', 'entity=role_grants');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.runs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=last_run_at', 'ignore=next_run_at', 'entity=runs');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.schema_fields DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=schema_fields');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.schema_joins DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=schema_joins');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.segments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=customer_count', 'entity=segments');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.sso_configs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=sso_configs');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.sub_categories DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=sub_categories');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.summary_definitions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=summary_definitions');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.templates DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=templates');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenant_pins DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('tenant=none', 'id=role', 'entity=tenant_pins');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenant_regions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('id=region', 'entity=tenant_regions');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenant_settings DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=tenant_settings');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenants DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('tenant=id', 'entity=tenants');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.treatments DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=impressions', 'ignore=clicks', 'ignore=conversions', 'entity=treatments');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.trigger_rules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('entity=trigger_rules');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.users DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('redact=password_hash', 'redact=mfa_secret', 'redact=mfa_backup_codes', 'ignore=failed_login_attempts', 'ignore=locked_until', 'entity=users');
CREATE CONSTRAINT TRIGGER audit_capture AFTER INSERT OR DELETE OR UPDATE ON kaireon.volume_constraints DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kaireon.audit_capture('ignore=current_count', 'ignore=reset_at', 'entity=volume_constraints');
CREATE TRIGGER audit_guard BEFORE INSERT OR DELETE OR UPDATE ON kaireon.platform_audit_logs FOR EACH ROW EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_guard_truncate BEFORE TRUNCATE ON kaireon.platform_audit_logs FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_guard();
CREATE TRIGGER audit_heads_guard BEFORE INSERT OR DELETE OR UPDATE ON kaireon.audit_chain_heads FOR EACH ROW EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard BEFORE INSERT OR DELETE OR UPDATE ON kaireon.platform_audit_chain_head FOR EACH ROW EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard_truncate BEFORE TRUNCATE ON kaireon.audit_chain_heads FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_heads_guard_truncate BEFORE TRUNCATE ON kaireon.platform_audit_chain_head FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_heads_guard();
CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON kaireon.platform_users FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_refuse_truncate();
CREATE TRIGGER audit_refuse_truncate BEFORE TRUNCATE ON kaireon.tenant_pins FOR EACH STATEMENT EXECUTE FUNCTION kaireon.audit_refuse_truncate();
CREATE TRIGGER b_validate_model BEFORE INSERT OR UPDATE ON kaireon.algorithm_models FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_model();
CREATE TRIGGER champion_guard BEFORE INSERT OR DELETE ON kaireon.algorithm_models FOR EACH ROW EXECUTE FUNCTION kaireon_internal._champion_guard();
CREATE TRIGGER check_customer_query BEFORE INSERT OR UPDATE OF customer_query ON kaireon.runs FOR EACH ROW EXECUTE FUNCTION kaireon_internal._stored_select_trigger('customer_query');
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF source_field, group_by_dimensions, filter_conditions ON kaireon.metric_definitions FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_metric_definition();
CREATE TRIGGER check_definition BEFORE INSERT OR UPDATE OF dimensions, aggregates, windows ON kaireon.summary_definitions FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_summary_definition();
CREATE TRIGGER check_functions BEFORE INSERT OR UPDATE ON kaireon.approval_actions FOR EACH ROW EXECUTE FUNCTION kaireon_internal._approval_action_check();
CREATE TRIGGER check_handler BEFORE INSERT OR UPDATE ON kaireon.outbox_handlers FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_outbox_handler();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.arbitration_profiles FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.arbitration_profiles ENABLE REPLICA TRIGGER config_changed_replica;

CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.categories FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.categories ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.channels FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.channels ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.contact_policies FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.contact_policies ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.contact_policy_scopes FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.contact_policy_scopes ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.creatives FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.creatives ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.cross_offer_constraints FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.cross_offer_constraints ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.data_schemas FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.data_schemas ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.decision_flows FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.decision_flows ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.flow_routes FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.flow_routes ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.guardrail_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.guardrail_rules ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.offers FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.offers ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.outcome_types FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.outcome_types ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.placements FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.placements ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.qualification_rule_scopes FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.qualification_rule_scopes ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.qualification_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.qualification_rules ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.segments FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.segments ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.sub_categories FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.sub_categories ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenant_settings FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.tenant_settings ENABLE REPLICA TRIGGER config_changed_replica;
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenants FOR EACH ROW EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.tenants ENABLE REPLICA TRIGGER config_changed_replica;

CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.arbitration_profiles FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.arbitration_profiles ENABLE REPLICA TRIGGER config_changed_replica_trunc;

CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.categories FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.categories ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.channels FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.channels ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.contact_policies FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.contact_policies ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.contact_policy_scopes FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.contact_policy_scopes ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.creatives FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.creatives ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.cross_offer_constraints FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.cross_offer_constraints ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.data_schemas FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.data_schemas ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.decision_flows FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.decision_flows ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.flow_routes FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.flow_routes ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.guardrail_rules FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.guardrail_rules ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.offers FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.offers ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.outcome_types FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.outcome_types ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.placements FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.placements ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.qualification_rule_scopes FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.qualification_rule_scopes ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.qualification_rules FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.qualification_rules ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.segments FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.segments ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.sub_categories FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.sub_categories ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.tenant_settings FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.tenant_settings ENABLE REPLICA TRIGGER config_changed_replica_trunc;
CREATE TRIGGER config_changed_replica_trunc AFTER TRUNCATE ON kaireon.tenants FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._config_changed_replica();

ALTER TABLE kaireon.tenants ENABLE REPLICA TRIGGER config_changed_replica_trunc;



CREATE TRIGGER exp3_reset AFTER UPDATE OF weights ON kaireon.arbitration_profiles FOR EACH ROW EXECUTE FUNCTION kaireon_internal._exp3_reset();
CREATE TRIGGER flow_publish_guard BEFORE INSERT OR UPDATE ON kaireon.decision_flows FOR EACH ROW EXECUTE FUNCTION kaireon_internal._flow_publish_guard();
CREATE TRIGGER model_version_restore BEFORE INSERT ON kaireon.model_versions FOR EACH ROW EXECUTE FUNCTION kaireon_internal._model_version_restore();
CREATE TRIGGER models_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON kaireon.algorithm_models FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._models_changed();
CREATE TRIGGER published_versions_append_only BEFORE UPDATE OF published_versions ON kaireon.decision_flows FOR EACH ROW EXECUTE FUNCTION kaireon_internal._published_versions_append_only();
CREATE TRIGGER seed_outcome_types AFTER INSERT ON kaireon.tenants FOR EACH ROW EXECUTE FUNCTION kaireon_internal._seed_outcome_types();
CREATE TRIGGER slug_immutable BEFORE UPDATE OF slug ON kaireon.tenants FOR EACH ROW EXECUTE FUNCTION kaireon_internal._tenant_slug_immutable();
CREATE TRIGGER snapshot_model AFTER INSERT OR UPDATE ON kaireon.algorithm_models FOR EACH ROW EXECUTE FUNCTION kaireon_internal._snapshot_model();
CREATE TRIGGER tenant_pins_changed AFTER INSERT OR DELETE OR UPDATE ON kaireon.tenant_pins FOR EACH ROW EXECUTE FUNCTION kaireon_internal._tenant_pins_changed();

ALTER TABLE kaireon.tenant_pins ENABLE ALWAYS TRIGGER tenant_pins_changed;
CREATE TRIGGER tenant_pins_truncated AFTER TRUNCATE ON kaireon.tenant_pins FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._tenant_pins_changed();

ALTER TABLE kaireon.tenant_pins ENABLE ALWAYS TRIGGER tenant_pins_truncated;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.platform_audit_chain_head FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.platform_users FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at();
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.tenant_pins FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at();

-------------------------------------------------------------------------------
-- Part 6: grants and comments
-------------------------------------------------------------------------------

-- the role a tenant's stored SQL runs as (new in 0.2.0): created, and granted the tables and
-- the data schemas of the tenants
SELECT kaireon_internal._grant_confined_role();

-- (the roles given access under 0.1.0 get 0.2.0's access at the end of the script)

GRANT USAGE ON SCHEMA kaireon TO kaireon_confined;
GRANT USAGE ON SCHEMA kaireon_internal TO PUBLIC;
REVOKE ALL ON FUNCTION kaireon.audit_digest(tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.audit_heads_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.distribute(shard_count integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.fnv1a(value text) FROM PUBLIC;
GRANT ALL ON FUNCTION kaireon.fnv1a(value text) TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon_internal._grant_role(p_role regrole, p_access text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.on_delete_set_null() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._pin_role(p_role regrole, p_tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.pin_role(role regrole, tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.recommend_json(tenant_id text, request jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.respond_bulk(tenant_id text, request jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.respond_json(tenant_id text, request jsonb) FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.campaign_runs TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon.set_tenant(tenant_id text, user_id text, request_id text, local boolean) FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.simulation_runs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.algorithm_models TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon.unpin_role(role regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.verify_audit_chain(tenant_id text, from_id bigint, max_rows bigint, digest jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon.wilson_interval(successes double precision, trials double precision, z double precision) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._acting_user() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._add_replica_invalidation(tbl regclass, update_when text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._apply_contact_policy_change(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._apply_flow_publish(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._apply_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._apply_model_promotion(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._apply_role_grants(p_schema text, p_relation text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._approval_action_check() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._approval_stages(p_tenant_id text, p_action text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._champion_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._check_identifier(kind text, ident text, max_len integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._check_metric_definition() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._check_outbox_handler() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._check_summary_definition() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._citus_coordinator() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._citus_table_type(p_table regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._claim_tenant_schema(p_tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._config_changed_replica() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._confined_tables() FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.approval_request_stages TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.approval_requests TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon_internal._current_stage(p_req kaireon.approval_requests, p_user text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._delegated_functions() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._distribute_tenant_table(p_table regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._drop_local_copy(p_table regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text, p_requested_by text, p_reason text, OUT request_id text, OUT interaction_ids text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._dsar_targets(p_tenant text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._exp3_reset() FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.schema_fields TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon_internal._field_column_sql(f kaireon.schema_fields) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._field_sql_type(p_data_type text, p_length integer, p_precision integer, p_scale integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._fkey_depth(p_table regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._flow_publish_guard() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._grant_confined_role() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._index_interaction_partition(part text) FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.metric_definitions TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon_internal._metric_sql(m kaireon.metric_definitions, summary_definition_id text, as_of date) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._model_version_restore() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._models_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._node_local_tables() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._outbox_backoff(retry integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._partition_bounds(part regclass, OUT lower_bound timestamp with time zone, OUT upper_bound timestamp with time zone) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._pending_request(p_tenant_id text, p_request_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._pin_role_on_workers(p_role name, p_tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._published_versions_append_only() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._registry_check() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._retire_interaction_partition(part text, allowed_tenants text[], detach boolean, lock_timeout_ms integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._role_functions(p_access text) FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.summary_definitions TO kaireon_confined;
REVOKE ALL ON FUNCTION kaireon_internal._rollup_rolling(d kaireon.summary_definitions, as_of date) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._rollup_step(d kaireon.summary_definitions, lo timestamp with time zone, hi timestamp with time zone, as_of date) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._seed_outcome_types() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._segment_bad_operator(field text, op text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._segment_filter_sql(node jsonb, p_fields jsonb, depth integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._segment_literal(field text, value text, sql_type text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._segment_view(p_tenant text, p_segment text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._snapshot_model() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._stored_select_trigger() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._summary_horizon() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._tenant_data_schema(p_tenant_id text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._tenant_pins_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._tenant_slug_immutable() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._tenants_in(tbl regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._type_names(kind text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._user_holds_role(p_tenant_id text, p_user_id text, p_role text) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._validate_contact_policy_change(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._validate_flow_publish(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._validate_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._validate_model() FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._validate_model_promotion(tenant_id text, entity_id text, payload jsonb) FROM PUBLIC;
GRANT SELECT ON TABLE kaireon.ai_attachments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ai_import_applies TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ai_import_proposals TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ai_import_skip_digests TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ai_import_token_ledgers TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ai_recommendations TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.alert_rules TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.arbitration_profiles TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.attribution_results TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.budget_allocations TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.campaign_decisions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.categories TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.channel_deliveries TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.channels TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.config_versions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.consent_records TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.contact_policies TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.contact_policy_scopes TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.content_items TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.content_versions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.conversation_messages TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.conversations TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.creative_performance TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.creatives TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.cross_offer_constraints TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.custom_role_assignments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.custom_roles TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.customer_clv TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.customer_engagement_health TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.customer_segments_ai TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.data_schemas TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.data_sources TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.dead_letter_events TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.decision_flows TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.decision_locks TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.decision_traces TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.dual_price_state TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.dual_prices TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.exp3_arms TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.exp3_rewards TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.experiment_assignments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.experiment_challengers TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.experiments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.export_checkpoints TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.flow_routes TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.geofences TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.guardrail_rules TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.identity_links TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.impressions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.interaction_history TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.interaction_history_default TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.interaction_summaries TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.journey_enrollments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.journeys TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.metric_state TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.metric_values TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.ml_job_results TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.model_adaptations TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.model_approvals TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.model_drift_checks TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.model_shadow_scores TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.model_versions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.negotiation_sessions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.offers TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.outbox_events TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.outcome_types TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.pipeline_ir_versions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.pipeline_runs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.pipelines TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.placements TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.policy_snapshots TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.qualification_rule_scopes TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.qualification_rules TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.report_runs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.report_schedules TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.report_templates TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.respond_idempotency TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.retention_configs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.runs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.schema_joins TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.segments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.sso_configs TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.sub_categories TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.summary_state TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.suppressions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.templates TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.tenant_regions TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.tenant_settings TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.treatments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.trigger_rules TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.variant_assignments TO kaireon_confined;
GRANT SELECT ON TABLE kaireon.volume_constraints TO kaireon_confined;

COMMENT ON SCHEMA kaireon_internal IS 'kaireon''s internal helper functions (implementation details of the kaireon API; not for direct use).';
COMMENT ON FUNCTION kaireon.audit_canonical(audit_id bigint) IS 'The canonical JSON of one audit row (of audit_logs, else of platform_audit_logs), exactly as hashed after its prev_hash (docs/audit.md); NULL for an unknown id.';
COMMENT ON FUNCTION kaireon.audit_digest(tenant_id text) IS 'A signed digest of the current end of a tenant''s audit chain (NULL: the platform chain): format, tenant_id, id, chain_seq and hash of its last committed row, digest_time, key_id and an HMAC-SHA256 signature (docs/audit.md, "Digests"). Keep it outside the database; kaireon.verify_audit_chain(..., digest => ...) proves the chain still extends it.';
COMMENT ON FUNCTION kaireon.audit_guard() IS 'Trigger of kaireon.audit_logs and kaireon.platform_audit_logs keeping them append-only: UPDATE and TRUNCATE refused for everyone, DELETE only through kaireon.purge_audit_chain, INSERT only by the table owner (kaireon''s appends) and superusers (restore).';
COMMENT ON FUNCTION kaireon.audit_heads_guard() IS 'Trigger of kaireon.audit_chain_heads and kaireon.platform_audit_chain_head: INSERT, UPDATE, DELETE and TRUNCATE refused (42501) for everyone but the table owner (kaireon''s appends act as it) and superusers.';
COMMENT ON FUNCTION kaireon.audited_tables() IS 'The tables whose changes are recorded in the audit chain, with the arguments of their audit_capture trigger (docs/audit.md). The one list: 85_audit.sql creates the triggers from it and the audit tests check them against it.';
COMMENT ON FUNCTION kaireon.create_interaction_partitions(months_ahead integer, from_month date) IS 'Creates the monthly partitions of interaction_history from from_month (default: today''s UTC date, the month boundaries being UTC) to months_ahead months later (skipping existing ones), moving matching rows out of the default partition; returns the names created.';
COMMENT ON FUNCTION kaireon.current_tenant_id() IS 'Tenant the session acts for: the tenant its roles are pinned to (kaireon.pin_role, kaireon.pinned_tenant_id), else kaireon.tenant_id, else NULL; 42501 when kaireon.tenant_id names another tenant than the pinned one. Row level security compares tenant_id with it.';
COMMENT ON FUNCTION kaireon.distribute(shard_count integer) IS 'On a Citus coordinator with kaireon on every node: distributes every tenant table by tenant_id, co-located with kaireon.tenants (distributed by id), makes the tenant-less tables reference tables (node-local ones aside), moves the rows to the shards and delegates to the node holding the tenant the functions of kaireon_internal._delegated_functions() (recommend, respond, the tenant-first JSON entry points, run_campaign, simulate, purge_audit_chain). Superusers only. Idempotent; returns the layout (changed: placed by this call). Without Citus: 0A000 with a hint. See docs/scale-out.md.';
COMMENT ON FUNCTION kaireon.dsar_export(tenant_id text, subject_id text, requested_by text, reason text, subject_type text) IS 'Data subject access / portability: every row of one customer of a tenant (kaireon_internal._dsar_targets: interactions, impressions, traces, summaries, metric values, scores, suppressions, consent, identity links, assignments, journeys, outbox events, the customer data tables, ...) as one document {requestId, tenantId, subjectId, subjectType, exportedAt, data: {table: [rows]}}; recorded in dsar_requests with the row counts.';
COMMENT ON FUNCTION kaireon.four_eyes_required(tenant_id text) IS 'Whether four-eyes governance is on for a tenant (tenant_settings.four_eyes_enabled; false without a settings row). Raises 42501 unless the caller may act for the tenant (kaireon.assert_tenant_access).';
COMMENT ON FUNCTION kaireon_internal._grant_role(p_role regrole, p_access text) IS 'Internal: grants a role app, readonly or admin access to schema kaireon and the tenant data schemas, and records it.';
COMMENT ON FUNCTION kaireon.on_delete_set_null() IS 'AFTER DELETE row trigger "On_delete_set_null" of a table referenced by optional references (foreign keys (tenant_id, col) ON DELETE NO ACTION): sets col to NULL in the deleted row''s tenant''s rows that referred to it, as the referencing table''s owner. Arguments: (table, column, referenced column) per key; created by the install script from the catalog.';
COMMENT ON FUNCTION kaireon_internal._pin_role(p_role regrole, p_tenant_id text) IS 'Internal: validates and records a tenant pin (kaireon.pin_role), on every worker too on a Citus coordinator.';
COMMENT ON FUNCTION kaireon.pin_role(role regrole, tenant_id text) IS 'Pins a role to one tenant (superuser or BYPASSRLS admin): the role, and every role that is a member of it, may then act only for that tenant, whatever SET ROLE or SET SESSION AUTHORIZATION did (42501 otherwise). Replaces an earlier pin of the role; audited.';
COMMENT ON FUNCTION kaireon.publish_outbox(max_events integer) IS 'Publishes up to max_events due outbox events in seq order (FOR UPDATE SKIP LOCKED, so publishers never wait for each other): calls the topic''s handler (kaireon.outbox_handlers), then NOTIFY kaireon_events with {"id", "tenantId", "topic"} (delivered at commit), and marks the event published. A failed delivery is retried after kaireon_internal._outbox_backoff(n); after max_retries retries the event is dead and copied to dead_letter_events. Returns how many events it handled. The maintenance worker calls it on kaireon.outbox_schedule.';
COMMENT ON FUNCTION kaireon.recommend_json(tenant_id text, request jsonb) IS 'kaireon.recommend_json for tenant_id: request.tenantId may be left out, or must equal tenant_id (22023). The form Citus delegates to the tenant''s node.';
COMMENT ON FUNCTION kaireon.respond_bulk(tenant_id text, request jsonb) IS 'kaireon.respond_bulk for tenant_id: every item is an outcome of tenant_id (an item naming another tenantId fails on its own, 22023). The form Citus delegates to the tenant''s node.';
COMMENT ON FUNCTION kaireon.respond_json(tenant_id text, request jsonb) IS 'kaireon.respond_json for tenant_id: request.tenantId may be left out, or must equal tenant_id (22023). The form Citus delegates to the tenant''s node.';
COMMENT ON FUNCTION kaireon.retention_policies(as_of timestamp with time zone) IS 'The retention each tenant gets for each data class as of a time: its retention_configs row, else (for summaries) its metrics row, else kaireon.retention_defaults(); with the legal hold and the cutoff (as_of minus retention_days days of 24 hours; rows older than it are removed). Shows the tenants the caller may see.';
COMMENT ON FUNCTION kaireon_internal._is_finite(value double precision) IS 'Is the value a finite number (not NaN, Infinity or -Infinity)? NULL for NULL. The check of every double precision column of kaireon''s tables.';
COMMENT ON FUNCTION kaireon.set_tenant(tenant_id text, user_id text, request_id text, local boolean) IS 'Sets kaireon.tenant_id, kaireon.user_id and kaireon.request_id together (the last two to '''''' when not given), for the current transaction (local, the default: safe behind a transaction-pooling pooler; 25P01 outside a transaction block) or the session. Returns the tenant now in effect; 42501 for a tenant the session''s pin forbids.';
COMMENT ON FUNCTION kaireon.unpin_role(role regrole) IS 'Removes the tenant pin of a role (superuser or BYPASSRLS admin); true if it had one. A pin set with ALTER ROLE ... SET kaireon.pinned_tenant_id is removed with ALTER ROLE ... RESET.';
COMMENT ON FUNCTION kaireon.verify_audit_chain(tenant_id text, from_id bigint, max_rows bigint, digest jsonb) IS 'Recomputes the audit hash chain of a tenant (NULL: the platform chain, platform_audit_logs) from the position of row from_id (NULL: its start, or the anchor retention left), in chain_seq order, reading at most max_rows rows (NULL: all). Returns whether it is intact, the rows verified, the rows of the chain from from_id, the rows read, and the first broken row with its reason (hash_mismatch, chain_link_mismatch, gap, digest_mismatch). With digest (a kept kaireon.audit_digest, signature checked: 22023 when altered), also whether the chain still extends it: digest_status matched, mismatch, predates_chain (retention removed its row) or not_reached. 42704 for a tenant with neither a row nor a chain.';
COMMENT ON FUNCTION kaireon_internal._acting_user() IS 'Internal: kaireon.user_id, or 42501 when it is not set.';
COMMENT ON FUNCTION kaireon_internal._add_replica_invalidation(tbl regclass, update_when text) IS 'Internal (install scripts): adds the REPLICA-enabled invalidation triggers (kaireon_internal._config_changed_replica) to a configuration table; update_when limits the UPDATE trigger of a counter table to changes of its definition.';
COMMENT ON FUNCTION kaireon_internal._apply_contact_policy_change(tenant_id text, entity_id text, payload jsonb) IS 'Internal: apply function of approval action contact_policy.change; runs inside kaireon.approve_request.';
COMMENT ON FUNCTION kaireon_internal._apply_flow_publish(tenant_id text, entity_id text, payload jsonb) IS 'Internal: applies an approved decision_flow.publish request: publishes the flow''s draft, which must be the one approved.';
COMMENT ON FUNCTION kaireon_internal._apply_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) IS 'Internal: apply function of approval action four_eyes.settings_change.';
COMMENT ON FUNCTION kaireon_internal._apply_model_promotion(tenant_id text, entity_id text, payload jsonb) IS 'Internal: applies an approved model.promote request: promotes the model (whose version must be the one approved) to champion and records the approval in model_approvals.';
COMMENT ON FUNCTION kaireon_internal._apply_role_grants(p_schema text, p_relation text) IS 'Internal: grants the roles in kaireon.role_grants their access to a tenant data schema and one of its relations, and kaireon_confined (a tenant''s stored SQL) SELECT on it.';
COMMENT ON FUNCTION kaireon_internal._approval_action_check() IS 'Internal: trigger checking an approval action''s apply and validate functions (kaireon_internal._resolve_function: they exist, take (text, text, jsonb), return void, are owned by a superuser) and storing their signatures in canonical form.';
COMMENT ON FUNCTION kaireon_internal._approval_stages(p_tenant_id text, p_action text) IS 'Internal: the approval stages ({name, requiredRole} in order) a new request of the action gets for the tenant.';
COMMENT ON FUNCTION kaireon_internal._champion_guard() IS 'Internal: BEFORE INSERT OR DELETE trigger on algorithm_models: with four-eyes on, a champion is neither created directly nor deleted (42501).';
COMMENT ON FUNCTION kaireon_internal._check_identifier(kind text, ident text, max_len integer) IS 'Internal: returns ident if it is a safe identifier (^[a-z][a-z0-9_]*$, at most max_len characters), else raises 42602 naming it.';
COMMENT ON FUNCTION kaireon_internal._check_metric_definition() IS 'Internal: BEFORE INSERT OR UPDATE trigger of metric_definitions refusing source fields, dimensions and filter conditions compute_metrics cannot compile (22023).';
COMMENT ON FUNCTION kaireon_internal._check_outbox_handler() IS 'Internal: BEFORE INSERT OR UPDATE trigger of outbox_handlers checking the handler (kaireon_internal._resolve_function: it exists, takes (text, text, text, jsonb), returns void, is owned by a superuser) and storing its signature in canonical form.';
COMMENT ON FUNCTION kaireon_internal._check_summary_definition() IS 'Internal: BEFORE INSERT OR UPDATE trigger of summary_definitions refusing unknown dimensions, aggregates and windows (22023, naming the value).';
COMMENT ON FUNCTION kaireon_internal._citus_coordinator() IS 'Internal: whether Citus is installed and this node is its coordinator (group 0).';
COMMENT ON FUNCTION kaireon_internal._citus_table_type(p_table regclass) IS 'Internal: ''distributed'', ''reference'' or ''citus local'' for a table in Citus''s metadata; NULL otherwise (or without Citus).';
COMMENT ON FUNCTION kaireon_internal._claim_tenant_schema(p_tenant_id text) IS 'Internal: creates the tenant''s data schema on first use and records the claim; refuses a schema owned by another (possibly deleted) tenant or not created by kaireon.';
COMMENT ON FUNCTION kaireon_internal._config_changed_replica() IS 'Internal: AFTER row (and TRUNCATE) trigger enabled REPLICA on the decisioning configuration tables: in the logical replication apply worker (or under session_replication_role = replica) makes every backend recompile its cached configurations at commit; writes nothing.';
COMMENT ON FUNCTION kaireon_internal._confined_tables() IS 'Internal: the kaireon tables the role kaireon_confined (a tenant''s stored SQL) may read: tenant tables under row level security, without those holding secrets, credentials, the audit log, data subject requests and kaireon''s bookkeeping.';
COMMENT ON FUNCTION kaireon_internal._current_stage(p_req kaireon.approval_requests, p_user text) IS 'Internal: the first pending stage of a request, locked, after checking the deciding user is not the requester, did not approve an earlier stage and holds the stage''s role.';
COMMENT ON FUNCTION kaireon_internal._delegated_functions() IS 'Internal: the functions kaireon.distribute() delegates to the node holding the tenant, and their tenant argument.';
COMMENT ON FUNCTION kaireon_internal._distribute_tenant_table(p_table regclass) IS 'Internal: create_distributed_table by tenant_id co-located with kaireon.tenants, moving the rows (kaireon.distribute(), publish_data_schema on Citus).';
COMMENT ON FUNCTION kaireon_internal._drop_local_copy(p_table regclass) IS 'Internal: truncate_local_data_after_distributing_table without firing the triggers that refuse TRUNCATE of audited tables.';
COMMENT ON FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text, p_requested_by text, p_reason text, OUT request_id text, OUT interaction_ids text[]) IS 'Internal: checks a data subject request (arguments, tenant access, subject type, tenant), records it in dsar_requests as processing, and returns its id and the ids of the subject''s interactions.';
COMMENT ON FUNCTION kaireon_internal._dsar_targets(p_tenant text) IS 'Internal: where a tenant''s data subject (customer) rows are: every kaireon table with a customer_id column, the tables pointing at the subject''s interactions, consent records, identity links, outbox events and dead letters about the subject, and the tenant''s published customer data tables; with the retention data class whose legal hold keeps them.';
COMMENT ON FUNCTION kaireon_internal._exp3_reset() IS 'Internal: AFTER UPDATE trigger on arbitration_profiles: new weights (other arms) start the profile''s EXP3-IX state afresh.';
COMMENT ON FUNCTION kaireon_internal._field_column_sql(f kaireon.schema_fields) IS 'Internal: the column definition of a schema field, with its default checked against its type.';
COMMENT ON FUNCTION kaireon_internal._field_sql_type(p_data_type text, p_length integer, p_precision integer, p_scale integer) IS 'Internal: the PostgreSQL type of a schema field (data_type with length, precision and scale).';
COMMENT ON FUNCTION kaireon_internal._fkey_depth(p_table regclass) IS 'Internal: the length of the longest chain of foreign keys from a table (cycles cut), the order kaireon.distribute() places tables in.';
COMMENT ON FUNCTION kaireon_internal._flow_publish_guard() IS 'Internal: BEFORE INSERT OR UPDATE trigger on decision_flows: with four-eyes on, published versions, the published version and the published status change only through an approved decision_flow.publish request (42501).';
COMMENT ON FUNCTION kaireon_internal._grant_confined_role() IS 'Internal: creates the role kaireon_confined if missing (NOLOGIN, not superuser, not BYPASSRLS) and grants it SELECT on kaireon_internal._confined_tables() and the tenant data schemas and EXECUTE on kaireon.fnv1a (the sample order); run by CREATE EXTENSION and by every kaireon.grant_*_role.';
COMMENT ON FUNCTION kaireon_internal._index_interaction_partition(part text) IS 'Internal: the primary key and indexes every interaction_history partition carries (lookups by customer, recommendation, offer and creative; a BRIN index on created_at for the summary rollups).';
COMMENT ON FUNCTION kaireon_internal._is_finite(value numeric) IS 'Is the value a finite number that a double precision can hold (not NaN, Infinity, -Infinity, nor beyond 1.7976931348623157e308 in magnitude)? NULL for NULL. The check of every numeric column of kaireon''s tables.';
COMMENT ON FUNCTION kaireon_internal._metric_sql(m kaireon.metric_definitions, summary_definition_id text, as_of date) IS 'Internal: the query (customer_id, dimension_key, value) a metric definition compiles to: its aggregate over the daily values of its source field in the window_days days up to as_of, grouped by customer and its group_by_dimensions, filtered by its filter_conditions, from the day rows of a summary definition.';
COMMENT ON FUNCTION kaireon_internal._model_version_restore() IS 'Internal: BEFORE INSERT trigger on model_versions letting a restored snapshot replace the identical snapshot its model''s restore just wrote.';
COMMENT ON FUNCTION kaireon_internal._models_changed() IS 'Internal: AFTER statement trigger on algorithm_models invalidating every backend''s model cache (relcache invalidation of the table).';
COMMENT ON FUNCTION kaireon_internal._node_local_tables() IS 'Internal: the tenant-less kaireon tables kaireon.distribute() leaves as plain tables of each node (docs/scale-out.md).';
COMMENT ON FUNCTION kaireon_internal._outbox_backoff(retry integer) IS 'Internal: the wait before the n-th retry of an outbox event: kaireon.outbox_retry_base doubled per retry, capped at kaireon.outbox_retry_max.';
COMMENT ON FUNCTION kaireon_internal._partition_bounds(part regclass, OUT lower_bound timestamp with time zone, OUT upper_bound timestamp with time zone) IS 'Internal: the lower and upper bound of a range partition on a timestamptz column (NULL for MINVALUE, MAXVALUE and the default partition).';
COMMENT ON FUNCTION kaireon_internal._pending_request(p_tenant_id text, p_request_id text) IS 'Internal: locks a pending approval request of a tenant, or raises 42704 (unknown) or 55000 (not pending).';
COMMENT ON FUNCTION kaireon_internal._period_end(period text, t timestamp with time zone) IS 'Internal: end of the calendar period (daily, weekly from Monday, monthly, quarterly; UTC) holding t.';
COMMENT ON FUNCTION kaireon_internal._period_key(period_type text, t timestamp with time zone) IS 'Internal: the budget period key (2026-11-25, 2026-W48, 2026-11, 2026-Q4) of the period of that type holding t, UTC.';
COMMENT ON FUNCTION kaireon_internal._pin_role_on_workers(p_role name, p_tenant_id text) IS 'Internal: on a Citus coordinator, pins (or, with a NULL tenant, unpins) a role on every worker too (docs/scale-out.md); nothing on one server.';
COMMENT ON FUNCTION kaireon_internal._published_versions_append_only() IS 'Internal: BEFORE UPDATE trigger keeping decision_flows.published_versions append-only.';
COMMENT ON FUNCTION kaireon_internal._registry_check() IS 'Internal: BEFORE INSERT OR UPDATE trigger on algorithm_models enforcing the registry transitions, four-eyes approval of promotions and one champion per family (archiving the previous champion).';
COMMENT ON FUNCTION kaireon_internal._resolve_function(signature text, arg_types regtype[], what text, of_what text, registering boolean) IS 'Internal: the function a stored signature text names (approval_actions, outbox_handlers), looked up with search_path pg_catalog; errors name it as "<what> <signature> of <of_what>": 22023 for text that is no signature, 42883 when no such function exists (worded for a new row when registering), 42P13 for a temporary function or one that does not take arg_types and return void, 42501 when no superuser owns it. Its ::text with search_path pg_catalog is the canonical form stored.';
COMMENT ON FUNCTION kaireon_internal._retire_interaction_partition(part text, allowed_tenants text[], detach boolean, lock_timeout_ms integer) IS 'Internal (retention): drops or detaches a monthly partition of interaction_history once its locks are held (waiting at most lock_timeout_ms for each) and every tenant with rows in it is among allowed_tenants, has no legal hold on interactions and a cutoff past the partition''s upper bound; false when it is gone or holds rows that must stay.';
COMMENT ON FUNCTION kaireon_internal._role_functions(p_access text) IS 'Internal: the functions an app or readonly role may execute (admin roles may execute all).';
COMMENT ON FUNCTION kaireon_internal._rollup_rolling(d kaireon.summary_definitions, as_of date) IS 'Internal: recomputes the rolling-window rows (7d, 30d, 90d; period_key = the last day) of a summary definition from its day rows, when the day they end on changes.';
COMMENT ON FUNCTION kaireon_internal._rollup_step(d kaireon.summary_definitions, lo timestamp with time zone, hi timestamp with time zone, as_of date) IS 'Internal: adds the interaction_history rows of one tenant created in [lo, hi) to the interaction_summaries rows of one summary definition, for each of its windows (rolling windows as of as_of), in one statement; returns the rows read.';
COMMENT ON FUNCTION kaireon_internal._seed_outcome_types() IS 'Internal: AFTER INSERT row trigger on tenants giving each new tenant the ten default outcome types (system rows).';
COMMENT ON FUNCTION kaireon_internal._segment_bad_operator(field text, op text) IS 'Internal: raises the error for an unknown segment filter operator.';
COMMENT ON FUNCTION kaireon_internal._segment_filter_sql(node jsonb, p_fields jsonb, depth integer) IS 'Internal: compiles a segment filter (array = all; {"all"|"any": [...]}, {"not": f}, {"field", "operator", "value"}) into SQL, quoting every value as a literal of the column''s type.';
COMMENT ON FUNCTION kaireon_internal._segment_literal(field text, value text, sql_type text) IS 'Internal: a segment filter value as a quoted literal cast to the column type, after checking the type accepts it.';
COMMENT ON FUNCTION kaireon_internal._segment_view(p_tenant text, p_segment text) IS 'Internal: the qualified view name of a published segment, after checking the caller may act for the tenant (runs as owner to read the segment and tenant rows; the caller then reads the view with its own privileges).';
COMMENT ON FUNCTION kaireon_internal._snapshot_model() IS 'Internal: AFTER INSERT OR UPDATE trigger on algorithm_models writing a model_versions snapshot of every new version.';
COMMENT ON FUNCTION kaireon_internal._stored_select_trigger() IS 'Internal: BEFORE INSERT OR UPDATE row trigger refusing (22023) a value of the column named by its argument that is not exactly one plain SELECT (no INTO, FOR UPDATE/SHARE or data-modifying WITH); a syntax error is 42601.';
COMMENT ON FUNCTION kaireon_internal._summary_dimensions() IS 'Internal: the dimensions a summary definition may name: customer, offer, creative and channel fill their interaction_summaries columns; the others are joined into dimension_key as name=value|name=value.';
COMMENT ON FUNCTION kaireon_internal._summary_horizon() IS 'Internal: the start of the oldest open transaction of the server (or now()): interaction_history rows created before it are all committed or gone, so rollups may count up to it.';
COMMENT ON FUNCTION kaireon_internal._tenant_data_schema(p_tenant_id text) IS 'Internal: name of the schema holding a tenant''s ds_ tables and segment views (kaireon_t_<slug>).';
COMMENT ON FUNCTION kaireon_internal._tenant_pins_changed() IS 'Internal: AFTER trigger of kaireon.tenant_pins; makes every backend reload the tenant pins once the change commits.';
COMMENT ON FUNCTION kaireon_internal._tenant_slug_immutable() IS 'Internal: BEFORE UPDATE trigger on tenants refusing a change of slug.';
COMMENT ON FUNCTION kaireon_internal._tenants_in(tbl regclass) IS 'Internal: the distinct tenant_id values of a table, found by skipping through its index on tenant_id (a few index probes per tenant, not a scan); on Citus, by each shard.';
COMMENT ON FUNCTION kaireon_internal._type_names(kind text) IS 'Internal: the names of one type list of the C module (kind qualification_rule, contact_policy or scope), in list order; 22023 for another kind.';
COMMENT ON FUNCTION kaireon_internal._user_holds_role(p_tenant_id text, p_user_id text, p_role text) IS 'Internal: whether a user holds a role in a tenant: the tenant''s user of that id (its users.role or a custom role assignment), or, if the tenant has none of that id, the platform user of that id (its platform_users.role).';
COMMENT ON FUNCTION kaireon_internal._validate_contact_policy_change(tenant_id text, entity_id text, payload jsonb) IS 'Internal: validate function of approval action contact_policy.change (operation, settable columns, the policy exists, config valid for its rule_type, scopes shape).';
COMMENT ON FUNCTION kaireon_internal._validate_flow_publish(tenant_id text, entity_id text, payload jsonb) IS 'Internal: checks a decision_flow.publish request (the flow exists; the payload holds its key and draft).';
COMMENT ON FUNCTION kaireon_internal._validate_four_eyes_settings(tenant_id text, entity_id text, payload jsonb) IS 'Internal: validate function of approval action four_eyes.settings_change.';
COMMENT ON FUNCTION kaireon_internal._validate_model() IS 'Internal: BEFORE INSERT OR UPDATE row trigger on algorithm_models compiling the model (22023 naming the field when malformed) and bumping version when its definition or registry place changes.';
COMMENT ON FUNCTION kaireon_internal._validate_model_promotion(tenant_id text, entity_id text, payload jsonb) IS 'Internal: checks a model.promote request (the model exists and may become champion).';
COMMENT ON TABLE kaireon.accounts IS 'Account: NextAuth OAuth account linked to a user of the tenant (provider, provider account id, OAuth tokens); a provider account is linked at most once per tenant.';
COMMENT ON TABLE kaireon.approval_actions IS 'kaireon''s own table: the approval actions of four-eyes governance. apply_function(tenant_id text, entity_id text, payload jsonb) carries out an approved request; validate_function (same arguments, optional) refuses a bad payload when the request is filed. Both are signatures as text (''kaireon_internal._apply_x(text,text,jsonb)''), stored in canonical form, looked up by name at every call; the functions return void and are owned by a superuser. Installed with the extension; not dumped.';
COMMENT ON TABLE kaireon.audit_chain_heads IS 'kaireon''s own table: the head (last id, chain_seq and integrity_hash) of each tenant''s audit chain, and the row an append locks to keep the chain linear (docs/audit.md). last_seq 0 only while the first append of a chain has not committed. Written only by kaireon''s audit code; no foreign key to tenants, like audit_logs.';
COMMENT ON TABLE kaireon.audit_digest_keys IS 'kaireon''s own table: the HMAC-SHA256 keys of audit digests (key_id is the first 16 hex digits of SHA-256(key)); the newest signs, any verifies. No role but the owner may read it (docs/audit.md, "Digests").';
COMMENT ON TABLE kaireon.audit_logs IS 'AuditLog: immutable, append-only audit chain of changes (create, update, soft_delete, restore, delete) plus retention anchors, one chain per tenant. integrity_hash is the hex SHA-256 of prev_hash followed by the canonical JSON of the row, prev_hash the integrity_hash of the previous row of the same chain (chain_seq - 1), 64 zeros for the first (docs/audit.md). The chain''s order is chain_seq; id identifies a row (unique with the tenant). Cross-tenant: tenant_id has no foreign key to tenants on purpose, so deleting a tenant neither deletes nor rewrites its audit rows. Changes without a tenant are in platform_audit_logs. Row level security with policy tenant_isolation. No updated_at.';
COMMENT ON SEQUENCE kaireon.config_version_seq IS 'kaireon''s marker of configuration changes that bypass the versions: a relcache invalidation of this sequence (logical replication''s apply, src/config/invalidate.c) makes every backend recompile every cached configuration. Configuration versions themselves are a per-tenant counter (kaireon.config_versions).';
COMMENT ON TABLE kaireon.custom_role_assignments IS 'CustomRoleAssignment: grants a CustomRole to a user within the tenant. user_id is the id of one of the tenant''s users (foreign key (tenant_id, user_id) to kaireon.users).';
COMMENT ON TABLE kaireon.outbox_handlers IS 'kaireon''s own table: the delivery function of an outbox topic (''*'': every topic without its own), called by kaireon.publish_outbox as handler(tenant_id text, event_id text, topic text, payload jsonb) before the NOTIFY; an error it raises is a failed delivery (retried, then dead-lettered). handler is the function''s signature as text (''public.deliver(text,text,text,jsonb)''), stored in canonical form and looked up by name at every delivery; it returns void and is owned by a superuser. Written only by superusers and BYPASSRLS roles: handlers run with the publisher''s privileges.';
COMMENT ON TABLE kaireon.platform_audit_chain_head IS 'kaireon''s own table: the head of the platform audit chain (platform_audit_logs), one row, locked by an append like a tenant''s row of audit_chain_heads. Written only by kaireon''s audit code; row level security without a policy (superusers and BYPASSRLS roles read it).';
COMMENT ON TABLE kaireon.platform_audit_logs IS 'kaireon''s own table: the platform audit chain, immutable, append-only audit rows of changes without a tenant (tables audited with tenant=none: platform settings, role grants, tenant pins, platform users) plus retention anchors, chained like a tenant''s chain in audit_logs (same columns but tenant_id, same canonical form with a null tenant_id; docs/audit.md). Row level security without a policy: visible only to superusers and BYPASSRLS roles. Local to each node on a Citus cluster. No updated_at.';
COMMENT ON TABLE kaireon.platform_users IS 'kaireon''s own table: the platform administrators, operator accounts that belong to no tenant (the columns of kaireon.users without tenant_id). Email is unique case-insensitively; password_hash holds only a hash; MFA secret and backup codes for TOTP. They sign in with password and TOTP: no accounts, sessions or WebAuthn credentials. Audited in the chain without a tenant; visible only to superusers and BYPASSRLS roles.';
COMMENT ON TABLE kaireon.sessions IS 'Session: NextAuth database session of a user of the tenant, found by (tenant_id, session_token) until expires.';
COMMENT ON TABLE kaireon.tenant_pins IS 'kaireon''s own table: roles pinned to one tenant with kaireon.pin_role. A pinned role, and every role that is a member of it, may act only for its tenant, whatever SET ROLE or SET SESSION AUTHORIZATION did. Hidden from every role but superusers and BYPASSRLS roles.';
COMMENT ON TABLE kaireon.users IS 'User: NextAuth v5 operator account of a tenant. Email is unique within the tenant case-insensitively (the same address may sign up in several tenants); password_hash holds only a hash; MFA secret and backup codes for TOTP. Platform administrators, who belong to no tenant, are kaireon.platform_users.';
COMMENT ON TABLE kaireon.webauthn_credentials IS 'WebAuthnCredential: a user''s WebAuthn/passkey credential: credential id, COSE public key (CBOR, base64), signature counter, transports and device label. Belongs to a user of the tenant (foreign key (tenant_id, user_id) to kaireon.users); a credential id is unique within the tenant.';

-------------------------------------------------------------------------------
-- Part 7: objects added to 0.2.0 later (append here)
-------------------------------------------------------------------------------

-- issue 18 (models): the experiment's pValue as 2 normal_cdf(-|z|) (no underflow in the tail)
CREATE OR REPLACE FUNCTION kaireon.experiment_results(tenant_id text, experiment_key text)
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
                -- the upper tail as normal_cdf(-|z|) (an erfc): 1 - cdf(|z|) would round to 0 past |z| = 8.3
                'pValue', 2 * kaireon.normal_cdf(-abs(z)),
                'confidence', kaireon.normal_cdf(z),
                'lift', (c.value->>'rate')::double precision - (v_variants->'champion'->>'rate')::double precision);
        END IF;
    END LOOP;
    v_result := jsonb_build_object('variants', v_variants, 'tests', v_tests, 'computedAt', now());
    UPDATE kaireon.experiments e SET results = v_result WHERE e.tenant_id = v_exp.tenant_id AND e.id = v_exp.id;
    RETURN v_result;
END
$fn$;

-- issue 18: model types online_learner (SGD) and adaptive (per-offer naive Bayes, as Pega's
-- ADM: its bin sketches in model_adaptations.sketch), and the comments of what learns, trains
-- and explains them, the feature baseline and feature_drift (recommend_json's comment, with degradedScoring: below)
ALTER TABLE kaireon.algorithm_models DROP CONSTRAINT algorithm_models_model_type_check;
ALTER TABLE kaireon.algorithm_models ADD CONSTRAINT algorithm_models_model_type_check
    CHECK (model_type IN ('scorecard', 'bayesian', 'logistic_regression', 'gradient_boosted', 'thompson_bandit', 'epsilon_greedy', 'online_learner', 'adaptive'));
ALTER TABLE kaireon.model_adaptations ADD COLUMN sketch bytea;
ALTER TABLE kaireon.model_adaptations ALTER COLUMN sketch SET STORAGE MAIN;
ALTER TABLE kaireon.model_adaptations SET (toast_tuple_target = 8160);
-- (99_finalize.sql: no routine is PUBLIC's but the pure helpers every role runs)
REVOKE ALL ON FUNCTION kaireon.adaptive_report(text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon_internal._adaptive_learn(bytea, bytea, boolean, integer, integer) TO PUBLIC;
COMMENT ON TABLE kaireon.algorithm_models IS
    'AlgorithmModel: a scoring model (scorecard, bayesian, logistic_regression, gradient_boosted, thompson_bandit, epsilon_greedy, online_learner, adaptive) with its predictors, learned state (model_state), metrics and outcome weights. registry_status places it in the model registry; at most one champion per (tenant_id, registry_family); a model with a NULL registry_family belongs to no family.';
COMMENT ON TABLE kaireon.model_adaptations IS
    'ModelAdaptation: learned propensity for one scope (global, category, offer or channel; scope_id is NULL for global and otherwise the category, offer or channel id (an adaptive model per offer and channel: the JSON array [offer id, channel id]), not a foreign key because it is polymorphic): positive/negative counts, positive rate, per-predictor bins and AUCs. model_id NULL holds the tenant''s adaptive propensity counts, which respond updates for every outcome; rows with a model_id belong to that AlgorithmModel: an adaptive model keeps one scope offer row per offer (and channel, with perChannel) and shard, whose sketch (binary, written by kaireon only) holds the shard''s bin sketches (docs/models.md, adaptive). A scope''s counts may be spread over several shard rows (respond writes the shard of its backend, so concurrent outcomes do not queue on one row): its totals are the sums over its shards, and positive_rate is each row''s own.';
COMMENT ON FUNCTION kaireon.explain_score(text, text, jsonb, text) IS
    'The score with its factors: matched rules (scorecard), per-predictor log-odds (bayesian), per-feature logit contributions (logistic_regression, online_learner), TreeSHAP contributions and expected value (gradient_boosted), arm state (bandits), the offer''s bins, AUCs, active predictors and log-odds contributions, raw and calibrated score (adaptive). See docs/models.md.';
COMMENT ON FUNCTION kaireon.model_learn(text, text, text, jsonb, text) IS
    'Online learning from one outcome (classification positive, negative or neutral): bayesian models count the features'' bins, bandits the arm (offer id), online_learner models take one SGD step (scikit-learn''s SGDClassifier update), adaptive models the offer''s (arm''s) counts and bin sketches in this backend''s model_adaptations shard row (no model row lock). Bayesian, online_learner models and bandits take the model''s row lock; no new version. False when the model does not learn online or the outcome is neutral. Called by respond.';
COMMENT ON FUNCTION kaireon.train_model(text, text, timestamptz, timestamptz, jsonb) IS
    'Trains a logistic_regression (L2-regularised, Newton/IRLS), bayesian (naive Bayes counts) or online_learner (the outcomes replayed in time order through its SGD update) model from the tenant''s positive and negative outcomes in [since, until) joined to customer features; stores state and metrics (auc, logLoss, samples, featureBaseline: each predictor''s training distribution for feature_drift) as a new version. options: l2, maxIterations, alpha, offerId, dataSchemaId, minExamples.';
COMMENT ON FUNCTION kaireon.check_drift(text, text, timestamptz, timestamptz, timestamptz, timestamptz, jsonb) IS
    'Drift of a model''s scores between a baseline window (default: the 30 days before the current one) and the current window (default: the last 7 days): PSI, KS statistic and AUC decay (baseline AUC minus current AUC); and, for a model train_model recorded a feature baseline for, feature_drift: each predictor''s PSI in the current window against its training distribution (drift_score the largest). Writes one model_drift_checks row per measure. thresholds: psi (0.2), ks_test (0.1), auc_decay (0.05), feature_drift (0.2).';

-- issue 16: decision statistics and the progress of long operations (86_statistics.sql;
-- kaireon.distribute above reports its progress)

CREATE FUNCTION kaireon_internal._stat_decisions()
    RETURNS TABLE (dbid oid, tenant_id text, channel_id text, decisions bigint, dry_runs bigint, errors bigint,
                   candidates bigint, drops jsonb, cap_refusals bigint,
                   latency_p50_ms double precision, latency_p95_ms double precision, latency_p99_ms double precision,
                   config_compiles bigint, config_cache_hits bigint,
                   responds_positive bigint, responds_neutral bigint, responds_negative bigint,
                   since timestamptz)
    AS 'MODULE_PATHNAME', 'kaireon_stat_decisions'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon_internal._stat_decisions() IS
    'Internal: the rows of kaireon.stat_decisions the caller may see (a session confined or pinned to a tenant: that tenant''s in this database; else superusers: all; BYPASSRLS roles and members of pg_read_all_stats: this database''s; others: their current tenant''s in this database). 55000 without shared_preload_libraries.';

CREATE VIEW kaireon.stat_decisions AS
    SELECT * FROM kaireon_internal._stat_decisions();
COMMENT ON VIEW kaireon.stat_decisions IS
    'Decision statistics since the last reset, one row per database, tenant and channel (channel NULL: the tenant''s configuration compiles and cache hits; database and tenant NULL: the overflow row, where calls count when kaireon.stat_max rows are in use or an id is longer than 127 bytes): recorded decisions, dry runs, errors, candidates considered, drops {stage: {reason: n}}, cap refusals, latency percentiles (upper bounds of quarter-octave buckets), responds by outcome class. A role sees its current tenant''s rows (a pinned or confined session: its tenant''s, whatever its rights); superusers see all, BYPASSRLS roles and pg_read_all_stats this database''s. Needs shared_preload_libraries (55000 otherwise). See docs/statistics.md.';

CREATE FUNCTION kaireon.stat_reset(tenant_id text DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_stat_reset'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.stat_reset(text) IS
    'Resets the decision statistics: all of them (NULL; the caller must see every row: superuser, BYPASSRLS or pg_read_all_stats) or one tenant''s rows in this database (the caller must have access to the tenant). Superusers and admin roles only. Needs shared_preload_libraries (55000 otherwise).';

CREATE FUNCTION kaireon_internal._progress()
    RETURNS TABLE (pid integer, dbid oid, operation text, tenant_id text, phase text, done bigint, total bigint,
                   started timestamptz)
    AS 'MODULE_PATHNAME', 'kaireon_progress'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon_internal._progress() IS
    'Internal: the rows of kaireon.progress the caller may see (as kaireon_internal._stat_decisions). 55000 without shared_preload_libraries.';

CREATE VIEW kaireon.progress AS
    SELECT * FROM kaireon_internal._progress();
COMMENT ON VIEW kaireon.progress IS
    'One row per running long operation (run_campaign, simulate, train_model, run_retention, run_maintenance, distribute): backend pid, database, operation, tenant (NULL: every tenant), phase, done of total (NULL: unknown), start time. The row goes when the operation ends, fails or is cancelled. A role sees its current tenant''s rows (a pinned or confined session: its tenant''s, whatever its rights); superusers see all, BYPASSRLS roles and pg_read_all_stats this database''s. Needs shared_preload_libraries (55000 otherwise). See docs/statistics.md.';

-- For long operations written in PL/pgSQL (kaireon.distribute): superusers and admin roles only.
CREATE FUNCTION kaireon_internal._progress_start(operation text, tenant_id text, total bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_start_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_start(text, text, bigint) IS
    'Internal: this backend starts a long operation for kaireon.progress (tenant NULL: every tenant; total NULL: unknown). A call while one runs is nested: the row shows the outermost. Does nothing without shared_preload_libraries.';

CREATE FUNCTION kaireon_internal._progress_update(phase text, done bigint, total bigint DEFAULT NULL) RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_update_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_update(text, bigint, bigint) IS
    'Internal: the phase (NULL: unchanged), the work done and the total (NULL: unknown) of this backend''s running operation in kaireon.progress.';

CREATE FUNCTION kaireon_internal._progress_end() RETURNS void
    AS 'MODULE_PATHNAME', 'kaireon_progress_end_sql'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon_internal._progress_end() IS
    'Internal: this backend''s operation started by _progress_start is over (an abort ends it too).';

-- Every role may read the two views: the functions behind them show each role only what it
-- may see. (99_finalize.sql revokes EXECUTE on every routine from PUBLIC after this part and
-- grants these two again; an upgrade script keeps this statement.)
GRANT EXECUTE ON FUNCTION kaireon_internal._stat_decisions(), kaireon_internal._progress() TO PUBLIC;
-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon.stat_reset(text), kaireon_internal._progress_start(text, text, bigint),
    kaireon_internal._progress_update(text, bigint, bigint), kaireon_internal._progress_end() FROM PUBLIC;

-- Issue 14, KaireonAI's request and response shapes (docs/json-api.md): recommend_json and
-- respond_json take KaireonAI's names (no signature changes: the C functions changed); the
-- comments that describe them, placements.max_slots enforced and creative content returned.
COMMENT ON TABLE kaireon.placements IS
    'Placement: a targeted slot inside a channel (hero, banner, modal); used by flow route lookups; a request never gets more decisions for it than max_slots. Soft-deleted.';
COMMENT ON TABLE kaireon.creatives IS
    'Creative: channel-specific rendering of an offer (optionally for one placement); weight drives the weighted creative choice; content is returned with each decision of recommend_json, its {{customer.x}} / {{offer.y}} placeholders filled (personalization.defaults for missing values; docs/json-api.md). Soft-deleted.';
COMMENT ON FUNCTION kaireon.recommend_json(jsonb) IS
    'kaireon.recommend with a JSON request and response in the REST shape, kaireon''s names or KaireonAI''s (channelId, placementId, placements [{placementId, limit}], limit, decisionFlowKey / blueprintKey, sessionId, attributes, segments, locale, currency): {recommendationId, count, degradedScoring, decisions[] (with categoryName and the creative''s personalized content), degradedModels[] (when a model the decision names was missing or broken and scoring fell back), reason (when nothing qualifies), placements[], debug}. See docs/json-api.md.';
COMMENT ON FUNCTION kaireon.respond_json(jsonb) IS
    'kaireon.respond with a JSON request (tenantId, customerId, outcome, recommendationId, rank, placementId, creativeId, offerId, idempotencyKey, conversionValue, context, occurredAt or timestamp, channelId, direction, outcomeDetails). See docs/json-api.md.';

-- issue 14 (control groups and lift, docs/lift.md): the 'control' interaction type, the
-- percentages of the tenant's control group and of an offer's holdout (with the finite
-- constraints 99_finalize.sql gives a fresh install), the assignment bucket in C, kaireon.lift
-- and kaireon.attribute_conversions
ALTER TABLE kaireon.interaction_history
    DROP CONSTRAINT interaction_history_interaction_type_check,
    ADD CONSTRAINT interaction_history_interaction_type_check
        CHECK (interaction_type IN ('recommendation', 'impression', 'outcome', 'control'));
COMMENT ON TABLE kaireon.interaction_history IS
    'InteractionHistory: append-only fact table of recommendations, impressions, outcomes (outcome_type_key) and control rows (a decision a control group left empty: no offer; docs/lift.md). Range-partitioned by month on occurred_at (midnight UTC boundaries); each partition has primary key (tenant_id, id). See kaireon.create_interaction_partitions.';

ALTER TABLE kaireon.offers
    ADD COLUMN holdout_percent double precision NOT NULL DEFAULT 0 CHECK (holdout_percent BETWEEN 0 AND 100),
    ADD CONSTRAINT offers_holdout_percent_finite CHECK (kaireon_internal._is_finite(holdout_percent));
COMMENT ON TABLE kaireon.offers IS
    'Offer: what the platform recommends. priority 0..100 and weight 0..100 drive priority_weighted scoring; value, margin and cost feed arbitration; schedule holds start/end, days and hours; mandatory offers bypass qualification; holdout_percent (0..100) holds that share of customers out of the offer (docs/lift.md). Soft-deleted.';

ALTER TABLE kaireon.tenant_settings
    ADD COLUMN control_group_percent double precision NOT NULL DEFAULT 0
        CHECK (control_group_percent BETWEEN 0 AND 100),
    ADD CONSTRAINT tenant_settings_control_group_percent_finite CHECK (kaireon_internal._is_finite(control_group_percent));
COMMENT ON TABLE kaireon.tenant_settings IS
    'TenantSettings: per-tenant operational toggles, one row per tenant (ML worker config, AI analyzer settings, flow IR, four-eyes approval, decision trace sampling, realtime arbitration, the universal control group''s percentage: docs/lift.md).';

COMMENT ON TABLE kaireon.attribution_results IS
    'AttributionResult: credit of one conversion (conversion_id: the outcome''s interaction_history id) of a customer spread over its touchpoints (the earlier recommendations, each with weight and credit) by an attribution model; written by kaireon.attribute_conversions, which replaces a window''s rows. See docs/lift.md.';

CREATE OR REPLACE FUNCTION kaireon.experiment_bucket(experiment_key text, customer_id text)
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_experiment_bucket'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.experiment_bucket(text, text) IS
    'A customer''s position in [0, 100) for an experiment: FNV-1a of experimentKey:customerId modulo 10000, over 100.';

CREATE FUNCTION kaireon.control_bucket(tenant_id text, customer_id text, scope text DEFAULT '')
    RETURNS double precision
    AS 'MODULE_PATHNAME', 'kaireon_control_bucket_sql'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon.control_bucket(text, text, text) IS
    'A customer''s position in [0, 100) for a control group: the experiment bucket (FNV-1a modulo 10000, over 100) of the key kaireon-control:<tenant>:<scope>, scope empty for the tenant''s universal group, flow:<key> for a decision flow''s, offer:<id> for an offer''s holdout. The customer is in the group when the bucket is below its percentage. See docs/lift.md.';

CREATE FUNCTION kaireon_internal._check_percent() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_value     text := to_jsonb(NEW) ->> TG_ARGV[0];
BEGIN
    -- NaN sorts above every number: NaN >= 0 holds and NaN <= 100 does not
    IF v_value IS NOT NULL AND NOT (v_value::float8 >= 0 AND v_value::float8 <= 100) THEN
        RAISE EXCEPTION '%.% must be a finite number from 0 to 100, not %', TG_TABLE_NAME, TG_ARGV[0], v_value
            USING ERRCODE = '22023', HINT = 'Give the percentage of customers in the group, from 0 (none) to 100; see docs/lift.md.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_percent() IS
    'Internal: BEFORE trigger refusing with 22023 a percentage column (TG_ARGV[0]) that is not a finite number from 0 to 100, naming the value (tenant_settings.control_group_percent, offers.holdout_percent).';

CREATE TRIGGER check_control_group_percent
    BEFORE INSERT OR UPDATE OF control_group_percent ON kaireon.tenant_settings
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_percent('control_group_percent');
CREATE TRIGGER check_holdout_percent
    BEFORE INSERT OR UPDATE OF holdout_percent ON kaireon.offers
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_percent('holdout_percent');

CREATE FUNCTION kaireon_internal._normal_quantile(p double precision) RETURNS double precision
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    lo          double precision := -40;
    hi          double precision := 40;
    mid         double precision;
BEGIN
    -- bisection on kaireon.normal_cdf: 100 halvings of [-40, 40] reach double precision
    FOR i IN 1 .. 100 LOOP
        mid := (lo + hi) / 2;
        IF kaireon.normal_cdf(mid) < p THEN
            lo := mid;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN (lo + hi) / 2;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._normal_quantile(double precision) IS
    'Internal: the standard normal quantile z with P(Z <= z) = p, by bisection on kaireon.normal_cdf.';

CREATE FUNCTION kaireon_internal._check_window(since timestamptz, until timestamptz) RETURNS void
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'since and until must not be null' USING ERRCODE = '22004',
            HINT = 'Pass the window [since, until) to look at.';
    END IF;
    IF since >= until THEN
        RAISE EXCEPTION 'since (%) must be before until (%)', since, until USING ERRCODE = '22023',
            HINT = 'Pass a window [since, until) with since < until.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_window(timestamptz, timestamptz) IS
    'Internal: refuses a window [since, until) of kaireon.lift or kaireon.attribute_conversions that is NULL (22004) or empty (22023).';

CREATE FUNCTION kaireon.lift(tenant_id text, since timestamptz, until timestamptz,
                             flow_key text DEFAULT NULL, confidence double precision DEFAULT 0.95,
                             outcomes text[] DEFAULT NULL)
    RETURNS TABLE (group_name text, customers bigint, converters bigint, conversion_rate double precision,
                   rate_low double precision, rate_high double precision, value_per_customer double precision,
                   absolute_lift double precision, absolute_lift_low double precision,
                   absolute_lift_high double precision, relative_lift double precision,
                   relative_lift_low double precision, relative_lift_high double precision,
                   value_lift double precision, value_lift_low double precision, value_lift_high double precision)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_flow_id   text;
    z           double precision;
    t           record;
    c           record;
    g           record;
    wt          double precision[];
    wc          double precision[];
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    PERFORM kaireon_internal._check_window(since, until);
    IF confidence IS NULL OR NOT (confidence > 0 AND confidence < 1) THEN
        RAISE EXCEPTION 'confidence must be a number between 0 and 1 (exclusive), not %', confidence
            USING ERRCODE = '22023', HINT = 'Pass e.g. 0.95 for 95% intervals.';
    END IF;
    IF flow_key IS NOT NULL THEN
        SELECT f.id INTO v_flow_id FROM kaireon.decision_flows f
         WHERE f.tenant_id = lift.tenant_id AND f.key = flow_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'tenant "%" has no decision flow "%"', tenant_id, flow_key USING ERRCODE = '42704',
                HINT = 'Pass the key of a kaireon.decision_flows row, or NULL for every flow.';
        END IF;
    END IF;
    z := kaireon_internal._normal_quantile(1 - (1 - confidence) / 2);

    FOR g IN
    WITH decisions AS (
        -- each customer's first decision in the window decides the group (on a tie, an offer
        -- made in the same request puts the customer in treatment)
        SELECT DISTINCT ON (h.customer_id) h.customer_id, h.occurred_at AS entered,
               CASE h.interaction_type WHEN 'control' THEN 'control' ELSE 'treatment' END AS grp
          FROM kaireon.interaction_history h
         WHERE h.tenant_id = lift.tenant_id AND h.interaction_type IN ('recommendation', 'control')
           AND h.occurred_at >= since AND h.occurred_at < until
           AND (v_flow_id IS NULL OR h.decision_flow_id = v_flow_id)
         ORDER BY h.customer_id, h.occurred_at, h.interaction_type = 'control'
    ), per_customer AS (
        SELECT d.grp, d.customer_id,
               count(o.id) > 0 AS converted,
               coalesce(sum(coalesce(o.conversion_value, off.value, 0)), 0)::float8 AS value
          FROM decisions d
          LEFT JOIN kaireon.interaction_history o
            ON o.tenant_id = lift.tenant_id AND o.customer_id = d.customer_id
           AND o.interaction_type = 'outcome' AND o.occurred_at >= d.entered AND o.occurred_at < until
           AND CASE WHEN outcomes IS NULL
                    THEN o.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                 WHERE ot.tenant_id = lift.tenant_id
                                                   AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                    ELSE o.outcome_type_key = ANY (outcomes) END
          LEFT JOIN kaireon.offers off ON off.tenant_id = lift.tenant_id AND off.id = o.offer_id
         GROUP BY d.grp, d.customer_id
    )
    SELECT k.grp, count(p.customer_id) AS customers, count(*) FILTER (WHERE p.converted) AS converters,
           coalesce(sum(p.value), 0) AS value_sum, var_samp(p.value) AS value_var
      FROM (VALUES ('treatment'), ('control')) AS k (grp)
      LEFT JOIN per_customer p ON p.grp = k.grp
     GROUP BY k.grp
    LOOP
        IF g.grp = 'treatment' THEN
            t := g;
        ELSE
            c := g;
        END IF;
    END LOOP;

    wt := kaireon.wilson_interval(t.converters, t.customers, z);
    wc := kaireon.wilson_interval(c.converters, c.customers, z);

    group_name := 'treatment';
    customers := t.customers;
    converters := t.converters;
    conversion_rate := t.converters::float8 / nullif(t.customers, 0);
    rate_low := wt[1];
    rate_high := wt[2];
    value_per_customer := t.value_sum / nullif(t.customers, 0);
    IF t.customers > 0 AND c.customers > 0 THEN
        -- Newcombe's hybrid score interval (his method 10) for the difference of two rates
        absolute_lift := conversion_rate - c.converters::float8 / c.customers;
        absolute_lift_low := absolute_lift - sqrt((conversion_rate - wt[1]) ^ 2
                                                  + (wc[2] - c.converters::float8 / c.customers) ^ 2);
        absolute_lift_high := absolute_lift + sqrt((wt[2] - conversion_rate) ^ 2
                                                   + (c.converters::float8 / c.customers - wc[1]) ^ 2);
        value_lift := value_per_customer - c.value_sum / c.customers;
    END IF;
    IF t.converters > 0 AND c.converters > 0 THEN
        -- the rate ratio minus 1, with the log-normal (Katz) interval of the ratio
        relative_lift := conversion_rate / (c.converters::float8 / c.customers) - 1;
        relative_lift_low := (relative_lift + 1) * exp(-z * sqrt(1.0 / t.converters - 1.0 / t.customers
                                                                  + 1.0 / c.converters - 1.0 / c.customers)) - 1;
        relative_lift_high := (relative_lift + 1) * exp(z * sqrt(1.0 / t.converters - 1.0 / t.customers
                                                                 + 1.0 / c.converters - 1.0 / c.customers)) - 1;
    END IF;
    IF t.customers > 1 AND c.customers > 1 THEN
        -- Welch: the normal interval of a difference of means with unequal variances
        value_lift_low := value_lift - z * sqrt(t.value_var / t.customers + c.value_var / c.customers);
        value_lift_high := value_lift + z * sqrt(t.value_var / t.customers + c.value_var / c.customers);
    END IF;
    RETURN NEXT;

    group_name := 'control';
    customers := c.customers;
    converters := c.converters;
    conversion_rate := c.converters::float8 / nullif(c.customers, 0);
    rate_low := wc[1];
    rate_high := wc[2];
    value_per_customer := c.value_sum / nullif(c.customers, 0);
    absolute_lift := NULL; absolute_lift_low := NULL; absolute_lift_high := NULL;
    relative_lift := NULL; relative_lift_low := NULL; relative_lift_high := NULL;
    value_lift := NULL; value_lift_low := NULL; value_lift_high := NULL;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION kaireon.lift(text, timestamptz, timestamptz, text, double precision, text[]) IS
    'Treatment against control over the decisions in [since, until) (of one decision flow, or all): per group its customers (a customer''s first decision in the window puts it in control when it was a control row), converters (an outcome of the given keys, default the positive ones, from that decision until until), conversion rate with its Wilson interval and value per customer (conversion_value, else the offer''s value); on the treatment row the absolute lift (Newcombe''s hybrid score interval), relative lift (log rate-ratio interval) and value-per-customer lift (Welch normal interval), at the given confidence. See docs/lift.md.';

CREATE FUNCTION kaireon.attribute_conversions(tenant_id text, since timestamptz, until timestamptz,
                                              model text DEFAULT 'last_touch',
                                              half_life interval DEFAULT '7 days',
                                              lookback interval DEFAULT '30 days',
                                              outcomes text[] DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rows      integer;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    PERFORM kaireon_internal._check_window(since, until);
    IF model IS NULL OR model NOT IN ('last_touch', 'first_touch', 'linear', 'time_decay') THEN
        RAISE EXCEPTION 'attribution model "%" is not supported', model USING ERRCODE = '22023',
            HINT = 'Use last_touch, first_touch, linear or time_decay.';
    END IF;
    IF half_life IS NULL OR half_life <= interval '0' THEN
        RAISE EXCEPTION 'half_life must be a positive interval, not %', half_life USING ERRCODE = '22023',
            HINT = 'Pass e.g. interval ''7 days''.';
    END IF;
    IF lookback IS NULL OR lookback <= interval '0' THEN
        RAISE EXCEPTION 'lookback must be a positive interval, not %', lookback USING ERRCODE = '22023',
            HINT = 'Pass how far before a conversion a recommendation counts, e.g. interval ''30 days''.';
    END IF;

    -- idempotent: the window's conversions lose their earlier results of this model
    DELETE FROM kaireon.attribution_results a
     WHERE a.tenant_id = attribute_conversions.tenant_id AND a.model = attribute_conversions.model
       AND a.conversion_id IN (SELECT h.id FROM kaireon.interaction_history h
                                WHERE h.tenant_id = attribute_conversions.tenant_id
                                  AND h.interaction_type = 'outcome'
                                  AND h.occurred_at >= since AND h.occurred_at < until);

    INSERT INTO kaireon.attribution_results (tenant_id, customer_id, conversion_id, model, touchpoints, total_value)
    WITH conversions AS (
        SELECT h.id, h.customer_id, h.occurred_at,
               coalesce(h.conversion_value, off.value, 0) AS value
          FROM kaireon.interaction_history h
          LEFT JOIN kaireon.offers off ON off.tenant_id = h.tenant_id AND off.id = h.offer_id
         WHERE h.tenant_id = attribute_conversions.tenant_id AND h.interaction_type = 'outcome'
           AND h.occurred_at >= since AND h.occurred_at < until
           AND CASE WHEN outcomes IS NULL
                    THEN h.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                 WHERE ot.tenant_id = attribute_conversions.tenant_id
                                                   AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                    ELSE h.outcome_type_key = ANY (outcomes) END
    ), touches AS (
        SELECT cv.id AS conversion_id, r.id, r.recommendation_id, r.offer_id, r.occurred_at,
               row_number() OVER w_last AS from_last,
               row_number() OVER w_first AS from_first,
               count(*) OVER (PARTITION BY cv.id) AS n,
               -- halved per half_life of age, counted from the newest touch (weight 1): the
               -- weights' ratios are those of the age from the conversion, and none underflows
               power(2::float8, greatest(-extract(epoch FROM max(r.occurred_at) OVER (PARTITION BY cv.id) - r.occurred_at)
                                         / extract(epoch FROM half_life), -1000)) AS decay
          FROM conversions cv
          JOIN kaireon.interaction_history r
            ON r.tenant_id = attribute_conversions.tenant_id AND r.customer_id = cv.customer_id
           AND r.interaction_type = 'recommendation'
           AND r.occurred_at <= cv.occurred_at AND r.occurred_at >= cv.occurred_at - lookback
        WINDOW w_last AS (PARTITION BY cv.id ORDER BY r.occurred_at DESC, r.id DESC),
               w_first AS (PARTITION BY cv.id ORDER BY r.occurred_at, r.id)
    ), weighted AS (
        SELECT t.*, CASE model
                        WHEN 'last_touch' THEN CASE WHEN t.from_last = 1 THEN 1 ELSE 0 END
                        WHEN 'first_touch' THEN CASE WHEN t.from_first = 1 THEN 1 ELSE 0 END
                        WHEN 'linear' THEN 1.0 / t.n
                        ELSE t.decay / sum(t.decay) OVER (PARTITION BY t.conversion_id) END::float8 AS weight
          FROM touches t
    )
    SELECT attribute_conversions.tenant_id, cv.customer_id, cv.id, model,
           jsonb_agg(jsonb_build_object('interactionId', w.id, 'recommendationId', w.recommendation_id,
                                        'offerId', w.offer_id, 'occurredAt', w.occurred_at,
                                        'weight', w.weight, 'credit', w.weight * cv.value::float8)
                     ORDER BY w.occurred_at, w.id),
           cv.value
      FROM conversions cv
      JOIN weighted w ON w.conversion_id = cv.id
     GROUP BY cv.id, cv.customer_id, cv.value;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$fn$;
COMMENT ON FUNCTION kaireon.attribute_conversions(text, timestamptz, timestamptz, text, interval, interval, text[]) IS
    'Credits each conversion (an outcome of the given keys, default the positive ones) in [since, until) to the customer''s recommendations in the lookback before it, by model last_touch, first_touch, linear or time_decay (weight 2^(-age/half_life), normalised), into attribution_results: one row per conversion with touchpoints [{interactionId, recommendationId, offerId, occurredAt, weight, credit}] and total_value (conversion_value, else the offer''s value). Re-running a window replaces its rows of that model. Returns the rows written. See docs/lift.md.';

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon.control_bucket(text, text, text), kaireon_internal._check_percent(),
    kaireon_internal._normal_quantile(double precision), kaireon_internal._check_window(timestamptz, timestamptz),
    kaireon.lift(text, timestamptz, timestamptz, text, double precision, text[]),
    kaireon.attribute_conversions(text, timestamptz, timestamptz, text, interval, interval, text[]) FROM PUBLIC;

-- The roles' function lists name kaireon.control_bucket, kaireon.lift and
-- kaireon.attribute_conversions. Replaced here, not in part 2: part 6 grants the recorded
-- roles again through this list before part 7 creates the three functions.

-- Issue 15, trigger rules and geofences (docs/triggers.md; sql/install/30_operator.sql and
-- 46_triggers.sql): the firings of trigger rules, the customers' presence in geofences, the
-- geofences' bounding-box index and geometry, one active enrolment per customer and journey,
-- validation when written, trigger rules in the compiled configuration, kaireon.location_event.
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

CREATE UNIQUE INDEX journey_enrollments_one_active_idx
    ON kaireon.journey_enrollments (tenant_id, journey_id, customer_id) WHERE status = 'active';

-- what 99_finalize.sql gives a new table: updated_at trigger, row level security, pg_dump
ALTER TABLE kaireon.trigger_rule_firings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.trigger_rule_firings
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
ALTER TABLE kaireon.geofence_presences ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.geofence_presences
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON kaireon.geofence_presences
    FOR EACH ROW EXECUTE FUNCTION kaireon.touch_updated_at();
SELECT pg_catalog.pg_extension_config_dump('kaireon.trigger_rule_firings', '');
SELECT pg_catalog.pg_extension_config_dump('kaireon.geofence_presences', '');

CREATE FUNCTION kaireon_internal._validate_trigger_rule() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_trigger_rule'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_trigger_rule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of trigger_rules: the event type (outcome or an outcome type key of the tenant), the action type and its action_config, the condition (guardrail expression language over event.* and customer.*), and for update_attribute the attributes against the published customer data schema; 22023 naming the rule and the bad part (docs/triggers.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, event_type, condition, action_type, action_config, cooldown_ms
    ON kaireon.trigger_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_trigger_rule();

CREATE FUNCTION kaireon_internal._validate_geofence() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_geofence'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_geofence() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of geofences: the action ({"type": "recommend" | "notify", that action''s fields, dwellSeconds for trigger_on dwell}); 22023 naming the geofence and the field (docs/triggers.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, trigger_on, action
    ON kaireon.geofences FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_geofence();

-- Trigger rules are part of the compiled configuration (src/config/cache.c): a change renews
-- the tenant's configuration version, as for the tables of 45_decisioning_api.sql.
CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.trigger_rules
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.trigger_rules
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.trigger_rules
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.trigger_rules
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.trigger_rules');

CREATE FUNCTION kaireon.location_event(tenant_id text, customer_id text, latitude double precision,
                                       longitude double precision, at timestamptz DEFAULT now())
    RETURNS TABLE (geofence_id text, transition text, fired boolean, result jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_location_event'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.location_event(text, text, double precision, double precision, timestamptz) IS
    'A location of a customer at time at: detects entering, leaving and dwelling in the tenant''s geofences (great-circle distance to the centre within radius_meters; candidates through the GiST index on their bounding boxes), keeps the customer''s presence per fence (geofence_presences) and runs the action of each fence whose trigger_on happened (recommend: a recorded decision; notify: an outbox event), with the caller''s rights. One row per transition. Latitude outside [-90, 90], longitude outside [-180, 180], NaN or Infinity: 22023, nothing written. See docs/triggers.md.';

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC, and gives
-- the geometry of geofences back to every role)
REVOKE ALL ON FUNCTION kaireon_internal._validate_trigger_rule(), kaireon_internal._validate_geofence(),
    kaireon.location_event(text, text, double precision, double precision, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION kaireon_internal._haversine_m(double precision, double precision, double precision, double precision),
    kaireon_internal._geofence_box(double precision, double precision, double precision) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon_internal._haversine_m(double precision, double precision, double precision, double precision),
    kaireon_internal._geofence_box(double precision, double precision, double precision) TO PUBLIC;

-- ---------------------------------------------------------------------------------------
-- Journeys (issue 15, part 1; sql/install/48_journeys.sql, docs/journeys.md): published
-- versions and the version of each enrolment, validation when written, publish, enrolment.
-- Definitions written under 0.1.0 are checked when next written or published.
ALTER TABLE kaireon.journeys
    ADD COLUMN published_version integer CHECK (published_version >= 1),
    ADD COLUMN published_versions jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(published_versions) = 'array'),
    ADD COLUMN published_at timestamptz;
ALTER TABLE kaireon.journey_enrollments
    ADD COLUMN journey_version integer CHECK (journey_version >= 1);

CREATE FUNCTION kaireon_internal._validate_journey() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_journey'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_journey() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of journeys: the definition''s fields, step types and graph (one entry_trigger, every step reachable and reaching an exit, loops through a wait that takes time); the published versions (entry i is version i + 1 with a valid definition, published_version the last); 22023 naming the journey and the step (docs/journeys.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF definition, published_version, published_versions
    ON kaireon.journeys FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_journey();

CREATE OR REPLACE FUNCTION kaireon_internal._published_versions_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- decision flows (named by key) and journeys (by id, 48_journeys.sql)
    v_journey   boolean := TG_TABLE_NAME = 'journeys';
BEGIN
    IF jsonb_array_length(NEW.published_versions) < jsonb_array_length(OLD.published_versions)
       OR (SELECT coalesce(jsonb_agg(e ORDER BY i), '[]'::jsonb)
             FROM jsonb_array_elements(NEW.published_versions) WITH ORDINALITY AS x(e, i)
            WHERE i <= jsonb_array_length(OLD.published_versions)) IS DISTINCT FROM OLD.published_versions THEN
        RAISE EXCEPTION 'published versions of % "%" cannot be changed or removed',
                        CASE WHEN v_journey THEN 'journey' ELSE 'decision flow' END,
                        to_jsonb(OLD) ->> CASE WHEN v_journey THEN 'id' ELSE 'key' END
            USING ERRCODE = '55000',
                  HINT = format('Publish a new version with kaireon.%s.',
                                CASE WHEN v_journey THEN 'publish_journey' ELSE 'publish_decision_flow' END);
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._published_versions_append_only() IS
    'Internal: BEFORE UPDATE trigger keeping published_versions append-only, of decision_flows and of journeys.';
-- Published versions never change, as for decision flows (the same trigger function).
CREATE TRIGGER published_versions_append_only BEFORE UPDATE OF published_versions ON kaireon.journeys
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._published_versions_append_only();

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

REVOKE ALL ON FUNCTION kaireon_internal._validate_journey(),
    kaireon.publish_journey(text, text, text),
    kaireon.enroll_in_journey(text, text, text, jsonb, timestamptz) FROM PUBLIC;

-- ===== issue 15, items 5 and 7 (alert rules and channel deliveries): begin =====
-- the evaluation state of alert rules (not audited: audited_tables and the alert_rules audit
-- trigger above list them as ignored) and the time of a delivery's status
ALTER TABLE kaireon.alert_rules ADD COLUMN last_evaluated_at timestamptz, ADD COLUMN last_value double precision;
ALTER TABLE kaireon.alert_rules ADD CONSTRAINT alert_rules_last_value_finite CHECK (kaireon_internal._is_finite(last_value));
ALTER TABLE kaireon.channel_deliveries ADD COLUMN status_at timestamptz;
-- the maintenance job alerts
ALTER TABLE kaireon.maintenance_runs DROP CONSTRAINT maintenance_runs_job_check,
    ADD CONSTRAINT maintenance_runs_job_check
    CHECK (job IN ('retention', 'partitions', 'outbox', 'summaries', 'volume_reset',
                   'suppressions', 'scores', 'dual_prices', 'alerts'));
CREATE OR REPLACE FUNCTION kaireon.maintenance_jobs()
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
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)'),
        (9, 'alerts', 'kaireon.alert_schedule', 'kaireon.evaluate_alerts in batches of kaireon.alert_batch_size until every active rule was evaluated')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;
COMMENT ON FUNCTION kaireon.maintenance_jobs() IS
    'The maintenance jobs: name, the setting holding its schedule (''HH:MM'' daily in UTC, an interval such as ''5min'', or ''off''), its current value, and what it runs.';

-- kaireon install script, part 47: alert rules and channel deliveries (issue 15, items 5 and
-- 7; docs/orchestration.md). Their tables are in 30_operator.sql; here: the metrics an alert
-- rule may watch, the validation of a rule when written, kaireon.evaluate_alerts (run by the
-- maintenance job "alerts", src/maintenance/catalogue.c), and the deliveries:
-- kaireon.create_delivery (the one way to create a delivery row for a decision that is sent)
-- and kaireon.delivery_status (a provider's callback; opens and clicks become responses
-- through kaireon.respond).

COMMENT ON COLUMN kaireon.alert_rules.last_evaluated_at IS
    'When kaireon.evaluate_alerts last evaluated the rule (its at): the least recently evaluated rules go first, and a call at a time not after it skips the rule.';
COMMENT ON COLUMN kaireon.alert_rules.last_value IS
    'The metric''s value at the last evaluation (NULL: no value, e.g. a rate without decisions).';
COMMENT ON COLUMN kaireon.channel_deliveries.status_at IS
    'The time (the callback''s at) of the provider callback that set the current status; NULL while pending.';

-- The one list of the metrics an alert rule may watch; the validation and the documentation
-- follow it, and kaireon_internal._alert_metric_value computes each.
CREATE FUNCTION kaireon.alert_metrics()
    RETURNS TABLE (metric text, description text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT m.metric, m.description
      FROM (VALUES
        (1, 'decisions', 'recommendation rows (one per offer decided) recorded in the window'),
        (2, 'outcomes', 'outcomes recorded by respond in the window'),
        (3, 'conversions', 'outcomes in the window whose outcome type has category conversion'),
        (4, 'conversion_rate', 'conversions / decisions in the window; no value without decisions'),
        (5, 'cap_drops', 'candidates dropped by contact policies (caps) in the traced decisions of the window'),
        (6, 'caps_exhausted', 'active volume constraints and budgets at their limit at the evaluation time (the window is not used)'),
        (7, 'model_drift', 'the largest drift_score of the psi and feature_drift checks of the window; no value without checks'),
        (8, 'job_failures', 'campaign runs and pipeline runs of the tenant that failed in the window'),
        (9, 'dead_letters', 'outbox events of the tenant dead-lettered in the window'),
        (10, 'delivery_failures', 'channel deliveries that bounced or failed in the window')
      ) AS m (n, metric, description)
     ORDER BY m.n
$fn$;
COMMENT ON FUNCTION kaireon.alert_metrics() IS
    'The metrics an alert rule may watch (alert_rules.metric) and what each measures over the rule''s window [at - window_minutes, at) for the rule''s tenant. See docs/orchestration.md.';

CREATE FUNCTION kaireon_internal._validate_alert_rule() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_what      text := format('alert rule "%s" (id %s)', NEW.name, NEW.id);
    v_channel   jsonb;
    i           integer := 0;
BEGIN
    IF length(NEW.name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION '%: the name must have 1 to 200 characters', v_what
            USING ERRCODE = '22023', HINT = 'Give the rule a short name.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.alert_metrics() m WHERE m.metric = NEW.metric) THEN
        RAISE EXCEPTION '%: unknown metric "%"', v_what, NEW.metric
            USING ERRCODE = '22023',
                  HINT = 'Metrics: ' || (SELECT string_agg(m.metric, ', ') FROM kaireon.alert_metrics() m) || '.';
    END IF;
    IF NEW.operator IS NULL OR NEW.operator NOT IN ('gt', 'gte', 'lt', 'lte', 'eq', 'neq') THEN
        RAISE EXCEPTION '%: unknown operator "%"', v_what, NEW.operator
            USING ERRCODE = '22023', HINT = 'Operators: gt, gte, lt, lte, eq, neq.';
    END IF;
    IF NOT kaireon_internal._is_finite(NEW.threshold) THEN
        RAISE EXCEPTION '%: threshold must be a finite number, not %', v_what, NEW.threshold
            USING ERRCODE = '22023', HINT = 'NaN and Infinity are not thresholds.';
    END IF;
    IF NEW.window_minutes > 44640 THEN
        RAISE EXCEPTION '%: window_minutes must be at most 44640 (31 days), not %', v_what, NEW.window_minutes
            USING ERRCODE = '22023', HINT = 'A window is counted at every evaluation; keep it short.';
    END IF;
    IF jsonb_array_length(NEW.channels) > 20 THEN
        RAISE EXCEPTION '%: at most 20 channels, not %', v_what, jsonb_array_length(NEW.channels)
            USING ERRCODE = '22023', HINT = 'List where the alert goes, e.g. ["email:ops@example.com"].';
    END IF;
    FOR v_channel IN SELECT c FROM jsonb_array_elements(NEW.channels) c LOOP
        IF jsonb_typeof(v_channel) <> 'string' OR length(v_channel #>> '{}') NOT BETWEEN 1 AND 500 THEN
            RAISE EXCEPTION '%: channels[%] must be a non-empty string of at most 500 characters, not %', v_what, i, v_channel
                USING ERRCODE = '22023', HINT = 'List where the alert goes, e.g. ["email:ops@example.com"].';
        END IF;
        i := i + 1;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._validate_alert_rule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of alert_rules: the metric (one of kaireon.alert_metrics()), the operator, a finite threshold, window_minutes at most 31 days, channels an array of at most 20 non-empty strings, the name 1 to 200 characters; 22023 naming the rule and the bad value (docs/orchestration.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, metric, operator, threshold, window_minutes, channels
    ON kaireon.alert_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_alert_rule();

-- The value of one metric for one tenant over [p_from, p_to); NULL when it has none.
CREATE FUNCTION kaireon_internal._alert_metric_value(p_tenant text, p_metric text, p_from timestamptz, p_to timestamptz)
    RETURNS double precision
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_decisions double precision;
BEGIN
    CASE p_metric
    WHEN 'decisions' THEN
        RETURN (SELECT count(*) FROM kaireon.interaction_history ih
                 WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'recommendation'
                   AND ih.occurred_at >= p_from AND ih.occurred_at < p_to);
    WHEN 'outcomes' THEN
        RETURN (SELECT count(*) FROM kaireon.interaction_history ih
                 WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'outcome'
                   AND ih.occurred_at >= p_from AND ih.occurred_at < p_to);
    WHEN 'conversions' THEN
        RETURN kaireon_internal._alert_conversions(p_tenant, p_from, p_to);
    WHEN 'conversion_rate' THEN
        v_decisions := kaireon_internal._alert_metric_value(p_tenant, 'decisions', p_from, p_to);
        IF v_decisions = 0 THEN
            RETURN NULL;
        END IF;
        RETURN kaireon_internal._alert_conversions(p_tenant, p_from, p_to) / v_decisions;
    WHEN 'cap_drops' THEN
        RETURN (SELECT coalesce(sum(greatest(t.after_suppression - t.after_contact_policy, 0)), 0)
                  FROM kaireon.decision_traces t
                 WHERE t.tenant_id = p_tenant AND t.created_at >= p_from AND t.created_at < p_to);
    WHEN 'caps_exhausted' THEN
        RETURN (SELECT count(*) FROM kaireon.volume_constraints v
                 WHERE v.tenant_id = p_tenant AND v.status = 'active' AND v.current_count >= v.max_volume
                   AND (v.reset_at IS NULL OR v.reset_at > p_to))
             + (SELECT count(*) FROM kaireon.budget_allocations b
                 WHERE b.tenant_id = p_tenant
                   AND (b.status = 'exhausted'
                        OR (b.status = 'active' AND (b.used_impressions >= b.max_impressions
                                                     OR b.used_spend >= b.max_spend
                                                     OR b.used_conversions >= b.max_conversions))));
    WHEN 'model_drift' THEN
        RETURN (SELECT max(d.drift_score) FROM kaireon.model_drift_checks d
                 WHERE d.tenant_id = p_tenant AND d.check_type IN ('psi', 'feature_drift')
                   AND d.created_at >= p_from AND d.created_at < p_to);
    WHEN 'job_failures' THEN
        RETURN (SELECT count(*) FROM kaireon.campaign_runs r
                 WHERE r.tenant_id = p_tenant AND r.status = 'failed'
                   AND coalesce(r.completed_at, r.updated_at) >= p_from AND coalesce(r.completed_at, r.updated_at) < p_to)
             + (SELECT count(*) FROM kaireon.pipeline_runs r
                 WHERE r.tenant_id = p_tenant AND r.status = 'failed'
                   AND coalesce(r.completed_at, r.updated_at) >= p_from AND coalesce(r.completed_at, r.updated_at) < p_to);
    WHEN 'dead_letters' THEN
        RETURN (SELECT count(*) FROM kaireon.dead_letter_events d
                 WHERE d.tenant_id = p_tenant AND d.failed_at >= p_from AND d.failed_at < p_to);
    WHEN 'delivery_failures' THEN
        RETURN (SELECT count(*) FROM kaireon.channel_deliveries d
                 WHERE d.tenant_id = p_tenant AND d.status IN ('bounced', 'failed')
                   AND d.status_at >= p_from AND d.status_at < p_to);
    ELSE
        RAISE EXCEPTION 'unknown alert metric "%"', p_metric
            USING ERRCODE = '22023',
                  HINT = 'Metrics: ' || (SELECT string_agg(m.metric, ', ') FROM kaireon.alert_metrics() m) || '.';
    END CASE;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._alert_metric_value(text, text, timestamptz, timestamptz) IS
    'Internal: the value of an alert metric (kaireon.alert_metrics()) for one tenant over [p_from, p_to), NULL when it has none; 22023 for an unknown metric.';

CREATE FUNCTION kaireon_internal._alert_conversions(p_tenant text, p_from timestamptz, p_to timestamptz)
    RETURNS double precision
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN (SELECT count(*) FROM kaireon.interaction_history ih
             WHERE ih.tenant_id = p_tenant AND ih.interaction_type = 'outcome'
               AND ih.occurred_at >= p_from AND ih.occurred_at < p_to
               AND EXISTS (SELECT 1 FROM kaireon.outcome_types ot
                            WHERE ot.tenant_id = p_tenant AND ot.key = ih.outcome_type_key
                              AND ot.category = 'conversion' AND ot.deleted_at IS NULL));
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._alert_conversions(text, timestamptz, timestamptz) IS
    'Internal: the outcomes of a tenant in [p_from, p_to) whose outcome type has category conversion (alert metrics conversions and conversion_rate).';

CREATE FUNCTION kaireon.evaluate_alerts(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                        max_rules integer DEFAULT 100, alert_rule_id text DEFAULT NULL)
    RETURNS TABLE (rule_tenant_id text, rule_id text, rule_name text, metric text, value double precision,
                   fired boolean, reason text, event_id text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    c           record;
    r           kaireon.alert_rules;
    v_from      timestamptz;
    v_value     double precision;
    v_holds     boolean;
    v_event     text;
    v_err       text;
BEGIN
    IF evaluate_alerts.at IS NULL OR max_rules IS NULL THEN
        RAISE EXCEPTION 'at and max_rules must not be null'
            USING ERRCODE = '22004', HINT = 'Leave them out for now() and 100.';
    END IF;
    IF NOT isfinite(evaluate_alerts.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', evaluate_alerts.at
            USING ERRCODE = '22023', HINT = 'Pass the time to evaluate the rules at.';
    END IF;
    IF max_rules NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_rules must be between 1 and 10000, not %', max_rules
            USING ERRCODE = '22023', HINT = 'Pass how many rules to evaluate in this call.';
    END IF;
    IF evaluate_alerts.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(evaluate_alerts.tenant_id);
    END IF;
    -- Steps: (1) the active rules not yet evaluated at this time, least recently evaluated
    -- first, at most max_rules; (2) each locked (one tenant per statement; a rule another
    -- evaluator holds is skipped) and checked again; (3) its metric over [at - window, at);
    -- (4) fired when the comparison holds and the cooldown has passed: an outbox event and
    -- last_fired_at; (5) last_evaluated_at and last_value in any case.
    FOR c IN
        SELECT a.tenant_id, a.id FROM kaireon.alert_rules a
         WHERE a.status = 'active'
           AND (evaluate_alerts.tenant_id IS NULL OR a.tenant_id = evaluate_alerts.tenant_id)
           AND (evaluate_alerts.alert_rule_id IS NULL OR a.id = evaluate_alerts.alert_rule_id)
           AND (a.last_evaluated_at IS NULL OR a.last_evaluated_at < evaluate_alerts.at)
         ORDER BY a.last_evaluated_at NULLS FIRST, a.tenant_id, a.id
         LIMIT max_rules
    LOOP
        SELECT * INTO r FROM kaireon.alert_rules a
         WHERE a.tenant_id = c.tenant_id AND a.id = c.id
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND OR r.status <> 'active'
                      OR (r.last_evaluated_at IS NOT NULL AND r.last_evaluated_at >= evaluate_alerts.at);
        rule_tenant_id := r.tenant_id;
        rule_id := r.id;
        rule_name := r.name;
        metric := r.metric;
        fired := false;
        event_id := NULL;
        v_from := evaluate_alerts.at - make_interval(mins => r.window_minutes);
        BEGIN
            v_value := kaireon_internal._alert_metric_value(r.tenant_id, r.metric, v_from, evaluate_alerts.at);
            v_err := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            v_value := NULL;
        END;
        value := v_value;
        v_holds := CASE r.operator
                       WHEN 'gt' THEN v_value > r.threshold
                       WHEN 'gte' THEN v_value >= r.threshold
                       WHEN 'lt' THEN v_value < r.threshold
                       WHEN 'lte' THEN v_value <= r.threshold
                       WHEN 'eq' THEN v_value = r.threshold
                       WHEN 'neq' THEN v_value <> r.threshold
                   END;
        IF v_err IS NOT NULL THEN
            reason := 'error: ' || v_err;
        ELSIF v_value IS NULL THEN
            reason := 'no value';
        ELSIF NOT v_holds THEN
            reason := 'condition not met';
        ELSIF r.last_fired_at IS NOT NULL
              AND evaluate_alerts.at < r.last_fired_at + make_interval(mins => r.cooldown_minutes) THEN
            reason := 'cooldown';
        ELSE
            INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
            VALUES (r.tenant_id, 'alert.fired',
                    jsonb_build_object('tenantId', r.tenant_id, 'alertRuleId', r.id, 'alertRuleName', r.name,
                                       'metric', r.metric, 'operator', r.operator, 'threshold', r.threshold,
                                       'value', v_value,
                                       'window', jsonb_build_object('from', v_from, 'to', evaluate_alerts.at,
                                                                    'minutes', r.window_minutes),
                                       'channels', r.channels, 'firedAt', evaluate_alerts.at))
            RETURNING id INTO v_event;
            fired := true;
            event_id := v_event;
            reason := 'fired';
        END IF;
        UPDATE kaireon.alert_rules a
           SET last_evaluated_at = evaluate_alerts.at, last_value = v_value,
               last_fired_at = CASE WHEN fired THEN evaluate_alerts.at ELSE a.last_fired_at END
         WHERE a.tenant_id = r.tenant_id AND a.id = r.id;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon.evaluate_alerts(text, timestamptz, integer, text) IS
    'Evaluates the active alert rules (of tenant_id, or every tenant the caller sees; or the one alert_rule_id) at time at: each rule''s metric over [at - window_minutes, at) for its tenant, compared with operator and threshold; a rule that holds and whose last firing is at least cooldown_minutes before at fires: an outbox event alert.fired naming the rule, the value and the window, and last_fired_at = at. At most max_rules rules, least recently evaluated first; a rule already evaluated at or after at is skipped, one another session holds too. One row per rule evaluated. The maintenance job alerts runs it. See docs/orchestration.md.';

-------------------------------------------------------------------------------
-- Channel deliveries
-------------------------------------------------------------------------------

CREATE FUNCTION kaireon.create_delivery(tenant_id text, interaction_id text, channel_type text DEFAULT NULL,
                                        provider_name text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                        payload jsonb DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ih          record;
    v_key       text := coalesce(create_delivery.idempotency_key, create_delivery.interaction_id);
    v_type      text := create_delivery.channel_type;
    v_id        text;
    d           kaireon.channel_deliveries;
BEGIN
    IF create_delivery.tenant_id IS NULL OR create_delivery.interaction_id IS NULL THEN
        RAISE EXCEPTION 'tenant_id and interaction_id must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant and the interaction id of the decision that is sent.';
    END IF;
    IF payload IS NULL OR jsonb_typeof(payload) <> 'object' THEN
        RAISE EXCEPTION 'payload must be a JSON object, not %', coalesce(payload::text, 'null')
            USING ERRCODE = '22023', HINT = 'Pass what the sender needs as an object, or leave it out.';
    END IF;
    IF v_key = '' OR length(v_key) > 500 THEN
        RAISE EXCEPTION 'idempotency_key must have 1 to 500 characters, not "%"', v_key
            USING ERRCODE = '22023', HINT = 'Leave it out to use the interaction id.';
    END IF;
    PERFORM kaireon.assert_tenant_access(create_delivery.tenant_id);
    SELECT h.id, h.interaction_type, h.customer_id, h.offer_id, h.creative_id, h.channel_id, h.recommendation_id,
           h.rank, h.placement_id, h.campaign_id
      INTO ih
      FROM kaireon.interaction_history h
     WHERE h.tenant_id = create_delivery.tenant_id AND h.id = create_delivery.interaction_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no interaction "%"', create_delivery.tenant_id, create_delivery.interaction_id
            USING ERRCODE = '42704', HINT = 'Pass the interaction_id of a recorded decision (recommend''s or a campaign''s).';
    END IF;
    IF ih.interaction_type <> 'recommendation' THEN
        RAISE EXCEPTION 'interaction "%" is a % row, not a decision', create_delivery.interaction_id, ih.interaction_type
            USING ERRCODE = '22023', HINT = 'A delivery sends a recorded decision (interaction type recommendation).';
    END IF;
    IF v_type IS NULL THEN
        SELECT ch.channel_type INTO v_type FROM kaireon.channels ch
         WHERE ch.tenant_id = create_delivery.tenant_id AND ch.id = ih.channel_id;
        IF v_type IS NULL THEN
            RAISE EXCEPTION 'interaction "%" names no channel of the tenant: channel_type is needed', create_delivery.interaction_id
                USING ERRCODE = '22023', HINT = 'Pass channel_type (email, sms, push, ...).';
        END IF;
    END IF;
    -- one row per idempotency key: the first call creates it (and asks for the send through the
    -- outbox), a repeated call returns it
    INSERT INTO kaireon.channel_deliveries AS cd (tenant_id, interaction_id, channel_type, provider_name, idempotency_key)
    VALUES (create_delivery.tenant_id, create_delivery.interaction_id, v_type, create_delivery.provider_name, v_key)
    ON CONFLICT ON CONSTRAINT channel_deliveries_tenant_id_idempotency_key_key DO NOTHING
    RETURNING cd.id INTO v_id;
    IF v_id IS NOT NULL THEN
        INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
        VALUES (create_delivery.tenant_id, 'channel.delivery',
                jsonb_build_object('tenantId', create_delivery.tenant_id, 'deliveryId', v_id,
                                   'idempotencyKey', v_key, 'channelType', v_type,
                                   'providerName', create_delivery.provider_name,
                                   'interactionId', ih.id, 'customerId', ih.customer_id,
                                   'recommendationId', ih.recommendation_id, 'rank', ih.rank,
                                   'offerId', ih.offer_id, 'creativeId', ih.creative_id,
                                   'channelId', ih.channel_id, 'placementId', ih.placement_id,
                                   'campaignId', ih.campaign_id, 'payload', payload));
        RETURN v_id;
    END IF;
    SELECT * INTO d FROM kaireon.channel_deliveries x
     WHERE x.tenant_id = create_delivery.tenant_id AND x.idempotency_key = v_key;
    IF d.interaction_id IS DISTINCT FROM create_delivery.interaction_id THEN
        RAISE EXCEPTION 'idempotency key "%" already names delivery "%" of interaction "%"', v_key, d.id,
                        coalesce(d.interaction_id, 'null')
            USING ERRCODE = '22023', HINT = 'Use one idempotency key per decision sent.';
    END IF;
    RETURN d.id;
END
$fn$;
COMMENT ON FUNCTION kaireon.create_delivery(text, text, text, text, text, jsonb) IS
    'The delivery of a recorded decision (interaction_id: a recommendation row of recommend or a campaign) through a channel: a channel_deliveries row in status pending with idempotency_key (default the interaction id) and an outbox event channel.delivery carrying the decision and payload for the sender; a repeated call with the same key returns the same delivery and writes nothing (the key naming another interaction: 22023). channel_type defaults to the type of the decision''s channel. Returns the delivery id. See docs/orchestration.md.';

-- The place of a status on the way a message goes (pending 0 ... clicked 4); NULL for the
-- terminal statuses bounced and failed.
CREATE FUNCTION kaireon_internal._delivery_rank(p_status text) RETURNS integer
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE p_status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                         WHEN 'opened' THEN 3 WHEN 'clicked' THEN 4 END
$fn$;
COMMENT ON FUNCTION kaireon_internal._delivery_rank(text) IS
    'Internal: the order of a delivery status on its way (pending 0, sent 1, delivered 2, opened 3, clicked 4); NULL for bounced and failed (terminal).';

CREATE FUNCTION kaireon.delivery_status(tenant_id text, status text, delivery_id text DEFAULT NULL,
                                        provider_message_id text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                        at timestamptz DEFAULT now(), error text DEFAULT NULL,
                                        provider_name text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d           kaireon.channel_deliveries;
    ih          record;
    v_new       text := delivery_status.status;
    v_cur       text;
    v_n         integer;
    v_outcomes  text[] := '{}';
    v_s         text;
    v_responses jsonb := '[]';
    v_result    jsonb;
BEGIN
    -- Steps: (1) arguments; (2) the delivery, locked (callbacks of one delivery run one after
    -- another); (3) the transition: a repeated status or an earlier one on the way writes
    -- nothing, a terminal status admits nothing else; (4) the row; (5) an open and a click
    -- become responses through kaireon.respond, once each (its idempotency key).
    IF delivery_status.tenant_id IS NULL OR v_new IS NULL OR delivery_status.at IS NULL THEN
        RAISE EXCEPTION 'tenant_id, status and at must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant, the provider''s status and the time of the event.';
    END IF;
    IF v_new NOT IN ('sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed') THEN
        RAISE EXCEPTION 'unknown delivery status "%"', v_new
            USING ERRCODE = '22023', HINT = 'Statuses: sent, delivered, opened, clicked, bounced, failed (pending is where a delivery starts).';
    END IF;
    IF NOT isfinite(delivery_status.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', delivery_status.at
            USING ERRCODE = '22023', HINT = 'Pass the time of the provider''s event.';
    END IF;
    IF delivery_status.delivery_id IS NULL AND delivery_status.idempotency_key IS NULL
       AND delivery_status.provider_message_id IS NULL THEN
        RAISE EXCEPTION 'one of delivery_id, idempotency_key and provider_message_id is needed'
            USING ERRCODE = '22004', HINT = 'Name the delivery the callback is about.';
    END IF;
    PERFORM kaireon.assert_tenant_access(delivery_status.tenant_id);
    IF delivery_status.delivery_id IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.id = delivery_status.delivery_id FOR UPDATE;
    ELSIF delivery_status.idempotency_key IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.idempotency_key = delivery_status.idempotency_key FOR UPDATE;
    ELSE
        SELECT count(*) INTO v_n FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name);
        IF v_n > 1 THEN
            RAISE EXCEPTION 'provider message id "%" names % deliveries of tenant "%"', delivery_status.provider_message_id,
                            v_n, delivery_status.tenant_id
                USING ERRCODE = '22023', HINT = 'Pass provider_name too, or the delivery_id.';
        END IF;
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name) FOR UPDATE;
    END IF;
    IF d.id IS NULL THEN
        RAISE EXCEPTION 'tenant "%" has no delivery %', delivery_status.tenant_id,
                        CASE WHEN delivery_status.delivery_id IS NOT NULL THEN format('"%s"', delivery_status.delivery_id)
                             WHEN delivery_status.idempotency_key IS NOT NULL THEN format('with idempotency key "%s"', delivery_status.idempotency_key)
                             ELSE format('with provider message id "%s"', delivery_status.provider_message_id) END
            USING ERRCODE = '42704', HINT = 'Deliveries are created by kaireon.create_delivery.';
    END IF;
    IF delivery_status.provider_message_id IS NOT NULL AND d.provider_message_id IS NOT NULL
       AND d.provider_message_id <> delivery_status.provider_message_id THEN
        RAISE EXCEPTION 'delivery "%" has provider message id "%", not "%"', d.id, d.provider_message_id,
                        delivery_status.provider_message_id
            USING ERRCODE = '22023', HINT = 'A delivery keeps the first provider message id it was given.';
    END IF;
    v_cur := d.status;
    v_result := jsonb_build_object('deliveryId', d.id, 'previousStatus', v_cur);
    IF v_new = v_cur THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'duplicate', 'responses', v_responses);
    END IF;
    IF kaireon_internal._delivery_rank(v_cur) IS NULL
       OR (kaireon_internal._delivery_rank(v_new) IS NULL AND kaireon_internal._delivery_rank(v_cur) > 1) THEN
        RAISE EXCEPTION 'delivery "%" is %: it cannot become %', d.id, v_cur, v_new
            USING ERRCODE = '55000',
                  HINT = 'bounced and failed are final, and a delivery that reached its recipient (delivered, opened, clicked) can no longer bounce or fail.';
    END IF;
    IF kaireon_internal._delivery_rank(v_new) < kaireon_internal._delivery_rank(v_cur) THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'stale', 'responses', v_responses);
    END IF;
    UPDATE kaireon.channel_deliveries x
       SET status = v_new, status_at = delivery_status.at,
           attempts = CASE WHEN v_new = 'sent' OR v_cur = 'pending' THEN x.attempts + 1 ELSE x.attempts END,
           last_error = coalesce(delivery_status.error, x.last_error),
           provider_message_id = coalesce(x.provider_message_id, delivery_status.provider_message_id),
           provider_name = coalesce(x.provider_name, delivery_status.provider_name)
     WHERE x.tenant_id = d.tenant_id AND x.id = d.id;
    -- a click implies the open it came from: a click before any open records both
    IF v_new = 'clicked' AND kaireon_internal._delivery_rank(v_cur) < 3 THEN
        v_outcomes := ARRAY['opened', 'clicked'];
    ELSIF v_new IN ('opened', 'clicked') THEN
        v_outcomes := ARRAY[v_new];
    END IF;
    IF cardinality(v_outcomes) > 0 THEN
        SELECT h.customer_id, h.recommendation_id, h.rank, h.placement_id INTO ih
          FROM kaireon.interaction_history h
         WHERE h.tenant_id = d.tenant_id AND h.id = d.interaction_id AND h.interaction_type = 'recommendation';
        IF FOUND AND ih.recommendation_id IS NOT NULL THEN
            FOREACH v_s IN ARRAY v_outcomes LOOP
                v_responses := v_responses || jsonb_build_array(kaireon.respond(
                    tenant_id => d.tenant_id, customer_id => ih.customer_id,
                    outcome => CASE v_s WHEN 'opened' THEN 'impression' ELSE 'click' END,
                    recommendation_id => ih.recommendation_id, rank => ih.rank, placement_id => ih.placement_id,
                    idempotency_key => format('delivery:%s:%s', d.id, v_s),
                    occurred_at => delivery_status.at,
                    context => jsonb_build_object('source', 'delivery_status', 'deliveryId', d.id,
                                                  'deliveryStatus', v_s, 'channelType', d.channel_type)));
            END LOOP;
        END IF;
    END IF;
    RETURN v_result || jsonb_build_object('status', v_new, 'applied', true, 'responses', v_responses);
END
$fn$;
COMMENT ON FUNCTION kaireon.delivery_status(text, text, text, text, text, timestamptz, text, text) IS
    'Records a channel provider''s callback about a delivery (named by delivery_id, idempotency_key or provider_message_id): status sent, delivered, opened, clicked (forward on that way; skipping steps is allowed, an earlier status arriving late writes nothing), bounced or failed (only before delivered; final). A repeated callback writes nothing; an illegal transition is 55000 with nothing written. An open becomes an impression outcome and a click a click outcome of the decision through kaireon.respond, once each (a click before any open records both). Returns {deliveryId, previousStatus, status, applied, reason, responses}. See docs/orchestration.md.';

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC, and gives
-- the list of alert metrics and the order of delivery statuses back to every role)
REVOKE ALL ON FUNCTION kaireon.alert_metrics(), kaireon_internal._validate_alert_rule(),
    kaireon_internal._alert_metric_value(text, text, timestamptz, timestamptz),
    kaireon_internal._alert_conversions(text, timestamptz, timestamptz),
    kaireon.evaluate_alerts(text, timestamptz, integer, text),
    kaireon.create_delivery(text, text, text, text, text, jsonb), kaireon_internal._delivery_rank(text),
    kaireon.delivery_status(text, text, text, text, text, timestamptz, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon.alert_metrics(), kaireon_internal._delivery_rank(text) TO PUBLIC;
-- ===== issue 15, items 5 and 7: end =====

-- ==== identity (issue 14, item 3: docs/identity.md; sql/install/45_decisioning_api.sql,
-- 47_identity.sql, 83_dsar.sql): recommend and respond resolve identifiers through
-- identity_links (a sticky flag in config_versions turns it on with the first link), the
-- decision lock names the customer an identifier was merged into, kaireon.link_identity, and
-- the tables of a customer's rows found in one place (_customer_tables, also for DSAR).
ALTER TABLE kaireon.config_versions ADD COLUMN identity_links boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN kaireon.config_versions.identity_links IS
    'Whether the tenant has written an identity link (set with a new version by the first one, never cleared): its decisions resolve identifiers through kaireon.identity_links (docs/identity.md).';
ALTER TABLE kaireon.decision_locks ADD COLUMN merged_into text;
COMMENT ON COLUMN kaireon.decision_locks.merged_into IS
    'The customer kaireon.link_identity merged this identifier into: a decision that locks this row resolves its identifier again and decides for that customer (docs/identity.md).';

-- A decision looks an identifier up by its value under any type: one probe of this index.
CREATE INDEX identity_links_value_idx ON kaireon.identity_links (tenant_id, identifier_value);

-- The first link of a tenant turns identity resolution on for its decisions (a flag of the
-- compiled configuration: the trigger renews the tenant's configuration version only then).
CREATE FUNCTION kaireon_internal._identity_links_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_identity_links_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._identity_links_changed() IS
    'Internal: AFTER INSERT and UPDATE statement trigger of identity_links: a tenant''s first link sets config_versions.identity_links and renews its configuration version, so that its decisions resolve identifiers; later links change nothing (src/config/invalidate.c).';
CREATE TRIGGER identity_links_changed_ins AFTER INSERT ON kaireon.identity_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._identity_links_changed();
CREATE TRIGGER identity_links_changed_upd AFTER UPDATE ON kaireon.identity_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon_internal._identity_links_changed();

-- The kaireon tables that hold a customer's rows, found from the catalog (a table added later
-- with a customer_id column is covered without a change here): every table with tenant_id and
-- customer_id (partitioned tables as a whole, detached partitions on their own), and
-- consent_records, whose customer is subject_id. Data subject requests and link_identity read
-- it. (PL/pgSQL: Citus plans no parameterised query of a SQL function.)
CREATE FUNCTION kaireon_internal._customer_tables()
    RETURNS TABLE (label text, relation text, key_column text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY
    SELECT c.relname::text, format('kaireon.%I', c.relname), 'customer_id'
      FROM pg_class c
     WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id' AND NOT a.attisdropped)
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
    UNION ALL
    SELECT 'consent_records', 'kaireon.consent_records', 'subject_id'
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._customer_tables() IS
    'Internal: the kaireon tables holding a customer''s rows (every table with tenant_id and customer_id, and consent_records by subject_id): label, relation and the column naming the customer.';

-- Moves the rows of one identifier to a customer in every table of _customer_tables but
-- decision_locks (link_identity marks those) and the records found by another key, which keep
-- the id they were made for: decision_traces, model_shadow_scores and campaign_decisions
-- (records of decisions), journey_enrollments (by journey), and geofence_presences
-- (location_event keeps presence per the id it is given: moved, the identifier's next location
-- would enter its fences again). Trigger rule firings move: a rule's cooldown per customer
-- counts the person's firings under either id.
-- Where a unique key would make the identifier's row collide with one of the customer's, the
-- customer's row is kept (its experiment arm, its scores) and the identifier's is dropped;
-- interaction summaries are added up first. Returns the rows moved per table (tables without
-- any left out).
CREATE FUNCTION kaireon_internal._move_customer_rows(p_tenant text, p_from text, p_to text) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    t           record;
    u           record;
    v_match     text;
    v_n         bigint;
    v_now       timestamptz := now();
    v_moved     jsonb := '{}';
BEGIN
    -- the identifier's summary counts added to the customer's rows of the same key
    UPDATE kaireon.interaction_summaries c
       SET impressions = c.impressions + x.impressions, positive = c.positive + x.positive,
           negative = c.negative + x.negative, converts = c.converts + x.converts,
           total_value = c.total_value + x.total_value, updated_at = v_now
      FROM kaireon.interaction_summaries x
     WHERE c.tenant_id = p_tenant AND x.tenant_id = p_tenant AND c.customer_id = p_to AND x.customer_id = p_from
       AND c.definition_id IS NOT DISTINCT FROM x.definition_id AND c.period_type = x.period_type
       AND c.period_key = x.period_key AND c.offer_id IS NOT DISTINCT FROM x.offer_id
       AND c.creative_id IS NOT DISTINCT FROM x.creative_id AND c.channel_id IS NOT DISTINCT FROM x.channel_id
       AND c.dimension_key = x.dimension_key;
    FOR t IN SELECT * FROM kaireon_internal._customer_tables() c
              WHERE c.label NOT IN ('decision_locks', 'decision_traces', 'model_shadow_scores', 'campaign_decisions',
                                    'journey_enrollments', 'geofence_presences') LOOP
        -- the unique keys naming the customer (read apart: Citus joins no catalog with its tables);
        -- a partial one's predicate, unqualified, names x outside the EXISTS and y inside it
        FOR u IN SELECT i.indnullsnotdistinct AS nulls_equal,
                        coalesce(pg_get_expr(i.indpred, i.indrelid), 'true') AS pred,
                        ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS k (attnum)
                                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                               WHERE a.attname NOT IN ('tenant_id', t.key_column)) AS cols
                   FROM pg_index i
                  WHERE i.indrelid = t.relation::regclass AND i.indisunique
                    AND (SELECT a.attnum FROM pg_attribute a
                          WHERE a.attrelid = i.indrelid AND a.attname = t.key_column) = ANY (i.indkey::int2[]) LOOP
            SELECT coalesce(string_agg(format('y.%1$I %2$s x.%1$I', col,
                                              CASE WHEN u.nulls_equal THEN 'IS NOT DISTINCT FROM' ELSE '=' END),
                                       ' AND '), 'true')
              INTO v_match FROM unnest(u.cols) AS col;
            EXECUTE format('DELETE FROM %1$s x WHERE x.tenant_id = $1 AND x.%2$I = $2 AND (%4$s) AND EXISTS '
                           '(SELECT 1 FROM %1$s y WHERE y.tenant_id = $1 AND y.%2$I = $3 AND %3$s AND (%4$s))',
                           t.relation, t.key_column, v_match, u.pred)
                USING p_tenant, p_from, p_to;
        END LOOP;
        EXECUTE format('UPDATE %s x SET %I = $3 WHERE x.tenant_id = $1 AND x.%I = $2',
                       t.relation, t.key_column, t.key_column)
            USING p_tenant, p_from, p_to;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n > 0 THEN
            v_moved := v_moved || jsonb_build_object(t.label, v_n);
        END IF;
    END LOOP;
    RETURN v_moved;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._move_customer_rows(text, text, text) IS
    'Internal (kaireon.link_identity): moves one tenant''s rows of an identifier to a customer in every table of _customer_tables but decision_locks; on a unique key the customer''s row wins, summaries are added up; returns the rows moved per table.';

CREATE FUNCTION kaireon.link_identity(tenant_id text, identifier_type text, identifier_value text,
                                      canonical_id text, confidence double precision DEFAULT 1)
    RETURNS jsonb
    LANGUAGE plpgsql
    -- (as the data subject requests: it rewrites facts of the tenant, which it names everywhere)
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    p_tenant    text := link_identity.tenant_id;
    p_type      text := link_identity.identifier_type;
    p_value     text := link_identity.identifier_value;
    p_canonical text := link_identity.canonical_id;
    v_types     text[] := ARRAY(SELECT kaireon_internal._type_names('identifier'));
    v_roots     text[];
    v_root      text;
    v_other     text;
    v_link      text;
    v_relinked  bigint;
    v_moved     jsonb;
    v_now       timestamptz := now();
    v_id        text;
BEGIN
    IF p_tenant IS NULL OR p_type IS NULL OR p_value IS NULL OR p_canonical IS NULL OR confidence IS NULL THEN
        RAISE EXCEPTION '% must not be null',
              CASE WHEN p_tenant IS NULL THEN 'tenant_id' WHEN p_type IS NULL THEN 'identifier_type'
                   WHEN p_value IS NULL THEN 'identifier_value' WHEN p_canonical IS NULL THEN 'canonical_id'
                   ELSE 'confidence' END
            USING ERRCODE = '22004',
                  HINT = 'Pass the tenant, the identifier''s type and value, and the id of the customer it belongs to.';
    END IF;
    PERFORM kaireon.assert_tenant_access(p_tenant);
    IF NOT p_type = ANY (v_types) THEN
        RAISE EXCEPTION 'identifier_type "%" is not an identifier type', p_type
            USING ERRCODE = '22023', HINT = format('Identifier types: %s.', array_to_string(v_types, ', '));
    END IF;
    IF p_value !~ '\S' OR length(p_value) > 500 THEN
        RAISE EXCEPTION 'identifier_value "%" must be 1 to 500 characters, not blank', left(p_value, 100)
            USING ERRCODE = '22023', HINT = 'Pass the identifier as the requests give it (an e-mail address, a session id, ...).';
    END IF;
    IF p_canonical !~ '\S' OR length(p_canonical) > 500 THEN
        RAISE EXCEPTION 'canonical_id "%" must be 1 to 500 characters, not blank', left(p_canonical, 100)
            USING ERRCODE = '22023', HINT = 'Pass the id of the known customer.';
    END IF;
    IF NOT (confidence BETWEEN 0 AND 1) THEN
        RAISE EXCEPTION 'confidence % must be between 0 and 1', confidence
            USING ERRCODE = '22023', HINT = 'Pass how sure the link is, from 0 to 1 (1 for a sign-in).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM kaireon.tenants t WHERE t.id = p_tenant) THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = '42704', HINT = 'Pass the id of a row of kaireon.tenants.';
    END IF;

    -- no chains: a canonical id that is itself a linked identifier stands for its customer
    v_roots := ARRAY(SELECT DISTINCT l.canonical_id FROM kaireon.identity_links l
                      WHERE l.tenant_id = p_tenant AND l.identifier_value = p_canonical ORDER BY 1);
    IF cardinality(v_roots) > 1 THEN
        RAISE EXCEPTION 'canonical_id "%" is itself linked to more than one customer', p_canonical
            USING ERRCODE = '22023', HINT = 'Link to one of those customers instead.';
    END IF;
    v_root := coalesce(v_roots[1], p_canonical);
    IF v_root = p_value THEN
        RAISE EXCEPTION 'identifier "%" would be linked to itself%', p_value,
              CASE WHEN v_root <> p_canonical THEN format(' (canonical_id "%s" is linked to it)', p_canonical) ELSE '' END
            USING ERRCODE = '22023', HINT = 'A customer id is its own canonical id: link another identifier to it.';
    END IF;
    -- an identifier belongs to one customer: its history went to the first one it was linked to
    SELECT l.canonical_id INTO v_other FROM kaireon.identity_links l
     WHERE l.tenant_id = p_tenant AND l.identifier_value = p_value AND l.canonical_id <> v_root LIMIT 1;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'identifier "%" is already linked to customer "%"', p_value, v_other
            USING ERRCODE = '22023',
                  HINT = 'An identifier belongs to one customer. To merge the two customers, link the other customer''s id to this one.';
    END IF;

    -- the decision locks of both, in id order: decisions for either wait until commit, and the
    -- identifier's row names its customer (a decision that resolved it before the link
    -- committed looks it up again: src/decision/identity.c)
    FOREACH v_id IN ARRAY ARRAY(SELECT x FROM unnest(ARRAY[p_value, v_root]) AS x ORDER BY x) LOOP
        IF v_id = p_value THEN
            INSERT INTO kaireon.decision_locks AS l (tenant_id, customer_id, decisions, last_decision_at, merged_into)
            VALUES (p_tenant, p_value, 0, v_now, v_root)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE SET merged_into = EXCLUDED.merged_into;
        ELSE
            INSERT INTO kaireon.decision_locks AS l (tenant_id, customer_id, decisions, last_decision_at)
            VALUES (p_tenant, v_root, 0, v_now)
            ON CONFLICT (tenant_id, customer_id) DO UPDATE SET decisions = l.decisions;
        END IF;
    END LOOP;
    -- a concurrent link of either committed while this one waited for their locks (READ
    -- COMMITTED: the checks above did not see it): the root or the identifier's customer may
    -- have changed, and going on would store a chain or a second customer for the identifier
    -- and move the rows under a merged id. Checked again with a fresh snapshot: refused as a
    -- serialization failure, which the caller retries.
    IF ARRAY(SELECT DISTINCT l.canonical_id FROM kaireon.identity_links l
              WHERE l.tenant_id = p_tenant AND l.identifier_value = p_canonical ORDER BY 1) IS DISTINCT FROM v_roots
       OR EXISTS (SELECT 1 FROM kaireon.identity_links l
                   WHERE l.tenant_id = p_tenant AND l.identifier_value = p_value AND l.canonical_id <> v_root) THEN
        RAISE EXCEPTION 'a link of "%" or "%" of tenant "%" committed while this one waited for it', p_value, p_canonical, p_tenant
            USING ERRCODE = '40001', HINT = 'Call kaireon.link_identity again: it links to the customer as it is now.';
    END IF;

    SELECT l.id INTO v_link FROM kaireon.identity_links l
     WHERE l.tenant_id = p_tenant AND l.identifier_type = p_type AND l.identifier_value = p_value;
    IF v_link IS NULL THEN
        INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value, confidence)
        VALUES (p_tenant, v_root, p_type, p_value, confidence)
        RETURNING id INTO v_id;
    END IF;
    -- an identifier that was a customer itself: its own links name the customer now (no chains)
    UPDATE kaireon.identity_links l SET canonical_id = v_root, updated_at = v_now
     WHERE l.tenant_id = p_tenant AND l.canonical_id = p_value;
    GET DIAGNOSTICS v_relinked = ROW_COUNT;
    -- its history, caps' units, suppressions, consent, ... go to the customer
    v_moved := kaireon_internal._move_customer_rows(p_tenant, p_value, v_root);
    RETURN jsonb_build_object('linkId', coalesce(v_link, v_id), 'tenantId', p_tenant, 'identifierType', p_type,
                              'identifierValue', p_value, 'canonicalId', v_root, 'created', v_link IS NULL,
                              'relinked', v_relinked, 'moved', v_moved);
END
$fn$;
COMMENT ON FUNCTION kaireon.link_identity(text, text, text, text, double precision) IS
    'Links an identifier (identifier_type: email, phone, session, device, cookie, customer_id or external) to a known customer and, in the same transaction, moves the identifier''s rows (interaction history, impressions, suppressions, consent, trigger firings, summaries, assignments, ...) to the customer (decision traces, shadow scores, campaign decisions, journey enrolments and geofence presences keep the id they were made for), holding both customers'' decision locks, so caps stay exact across the merge; a canonical id that is itself linked stands for its customer (no chains), the links of an identifier that was a customer name the new one. Again with the same link: moves what is left, creates nothing. Bad input, a self link or an identifier linked to another customer: 22023, nothing written; a concurrent link of either that committed while it waited: 40001 (call it again). Returns {linkId, tenantId, identifierType, identifierValue, canonicalId, created, relinked, moved: {table: rows}}. See docs/identity.md.';

CREATE OR REPLACE FUNCTION kaireon_internal._dsar_targets(p_tenant text)
    RETURNS TABLE (label text, relation text, predicate text, data_class text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function; the catalogs and the
    -- tenant's rows are read by separate queries, as Citus joins no catalog with its tables)
    RETURN QUERY
    -- kaireon tables with the customer's rows (partitioned tables as a whole; consent_records
    -- by subject_id: kaireon_internal._customer_tables)
    SELECT c.label, c.relation, format('x.%I = $1', c.key_column),
           CASE c.label WHEN 'interaction_history' THEN 'interactions' WHEN 'impressions' THEN 'interactions'
                        WHEN 'decision_locks' THEN 'interactions' WHEN 'decision_traces' THEN 'decisions'
                        WHEN 'model_shadow_scores' THEN 'decisions' WHEN 'campaign_decisions' THEN 'decisions'
                        WHEN 'interaction_summaries' THEN 'summaries' WHEN 'metric_values' THEN 'metrics'
                        WHEN 'suppressions' THEN 'suppressions'
                        -- a monthly partition retention detached (an archive): still interactions
                        ELSE CASE WHEN c.label ~ '^interaction_history_p\d{4}_\d{2}$' THEN 'interactions' END END
      FROM kaireon_internal._customer_tables() c
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
        ('identity_links', 'kaireon.identity_links',
         '(x.canonical_id = $1 OR (x.identifier_type = ''customer_id'' AND x.identifier_value = $1))', NULL),
        ('outbox_events', 'kaireon.outbox_events', 'x.payload ->> ''customerId'' = $1', 'outbox'),
        ('dead_letter_events', 'kaireon.dead_letter_events', 'x.payload ->> ''customerId'' = $1', 'outbox')
    ) AS v (label, relation, predicate, data_class)
    UNION ALL
    -- the tenant's published customer data tables, by their primary key
    SELECT format('%s.%s', ds.schema_name, ds.table_name), format('%I.%I', ds.schema_name, ds.table_name),
           format('x.%I::text = $1', ds.key_name), NULL::text
      FROM (SELECT s.schema_name::text AS schema_name, d.table_name, f.name AS key_name
              FROM kaireon.data_schemas d
              JOIN kaireon.tenants t ON t.id = d.tenant_id
              JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
              JOIN kaireon.schema_fields f ON f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key
             WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND f.tenant_id = p_tenant
               AND d.entity_type = 'customer' AND d.status = 'published') ds
     WHERE to_regclass(format('%I.%I', ds.schema_name, ds.table_name)) IS NOT NULL
     ORDER BY 1;
END
$fn$;

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._identity_links_changed(), kaireon_internal._customer_tables(),
    kaireon_internal._move_customer_rows(text, text, text),
    kaireon.link_identity(text, text, text, text, double precision) FROM PUBLIC;
-- ==== end of identity

-- ==== Issue 15 item 6, scheduled campaigns (docs/schedules.md; sql/install/52_schedules.sql and
-- 84_maintenance.sql): runs.repeat_interval, the due-runs index, the schedule trigger, the
-- export position of export_checkpoints, kaireon.campaign_exports, kaireon.cron_next,
-- kaireon.run_schedules, and the schedules job in kaireon.maintenance_jobs(). ====
-- recurring runs: the time between two runs
ALTER TABLE kaireon.runs ADD COLUMN repeat_interval interval
    CONSTRAINT runs_repeat_interval_check CHECK (repeat_interval >= interval '1 minute');
COMMENT ON COLUMN kaireon.runs.repeat_interval IS
    'schedule_type recurring: the time from one run''s slot to the next (at least 1 minute; a scheduler behind by more than one interval runs once and continues from then). See docs/schedules.md.';
COMMENT ON COLUMN kaireon.runs.cron_expression IS
    'schedule_type cron: five fields (minute hour day-of-month month day-of-week; *, numbers, ranges, lists, steps), in UTC, checked when written (22023 naming the bad field). See docs/schedules.md.';
COMMENT ON COLUMN kaireon.runs.next_run_at IS
    'The next slot of a scheduled run (once, recurring, cron): filled when the schedule is written (cron: its next minute; once and recurring: now() unless given), advanced by kaireon.run_schedules after each run, NULL when there is none.';
COMMENT ON COLUMN kaireon.runs.file_config IS
    'The export of each scheduled run''s decisions: {} (none) or {"format": "csv" | "json", "target": "table" (kaireon.campaign_exports, the default) | "file" (kaireon.export_directory)}. See docs/schedules.md.';
-- the scheduler reads only the due runs, through this index
CREATE INDEX runs_due_idx ON kaireon.runs (next_run_at)
    WHERE status = 'active' AND schedule_type IN ('once', 'recurring', 'cron');

CREATE FUNCTION kaireon_internal._check_run_schedule() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_run_schedule'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_run_schedule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of runs: the schedule (cron needs a cron_expression that parses and matches within ten years, recurring a repeat_interval) and file_config (22023 naming the run; 55000 for a file export while kaireon.export_directory is unset); fills next_run_at when the schedule is written (docs/schedules.md).';
CREATE TRIGGER check_schedule BEFORE INSERT OR UPDATE OF schedule_type, cron_expression, repeat_interval, file_config
    ON kaireon.runs FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_run_schedule();

-- an export's position: one checkpoint per exported campaign run
ALTER TABLE kaireon.export_checkpoints
    ADD COLUMN campaign_run_id text,
    ADD COLUMN format text CONSTRAINT export_checkpoints_format_check CHECK (format IN ('csv', 'json')),
    ADD COLUMN target text CONSTRAINT export_checkpoints_target_check CHECK (target IN ('table', 'file')),
    ADD COLUMN rows_exported bigint NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_rows_exported_check CHECK (rows_exported >= 0),
    ADD COLUMN bytes_written bigint NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_bytes_written_check CHECK (bytes_written >= 0),
    ADD COLUMN last_customer_id text,
    ADD COLUMN last_rank integer,
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CONSTRAINT export_checkpoints_attempts_check CHECK (attempts >= 0),
    ADD COLUMN error text,
    ADD CONSTRAINT export_checkpoints_campaign_run_fkey FOREIGN KEY (tenant_id, campaign_run_id)
        REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE;
CREATE INDEX export_checkpoints_tenant_id_campaign_run_id_idx
    ON kaireon.export_checkpoints (tenant_id, campaign_run_id);
-- the scheduler reads only the pending exports, through this index
CREATE INDEX export_checkpoints_pending_idx ON kaireon.export_checkpoints (created_at, id)
    WHERE status IN ('running', 'failed') AND campaign_run_id IS NOT NULL;
COMMENT ON COLUMN kaireon.export_checkpoints.campaign_run_id IS
    'The campaign run whose decisions this export writes (export_type ''campaign_run:<id>''); rows_exported, bytes_written and last_customer_id / last_rank are its committed position, from which an interrupted export resumes. See docs/schedules.md.';

-- No foreign key of its own to kaireon.tenants: the one to campaign_runs (which cascades from
-- the tenant) is enough.
CREATE TABLE kaireon.campaign_exports (
    tenant_id               text NOT NULL,
    campaign_run_id         text NOT NULL,
    line_number             bigint NOT NULL CHECK (line_number >= 0),
    line                    text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, campaign_run_id, line_number),
    FOREIGN KEY (tenant_id, campaign_run_id) REFERENCES kaireon.campaign_runs (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE kaireon.campaign_exports IS
    'kaireon''s own table: the exported decisions of scheduled campaign runs whose file_config target is table, one line each (line_number from 1 in customer and rank order; a CSV export''s header is line 0), written by kaireon.run_schedules. See docs/schedules.md.';

CREATE FUNCTION kaireon.cron_next(expression text, after timestamptz)
    RETURNS timestamptz
    AS 'MODULE_PATHNAME', 'kaireon_cron_next'
    LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION kaireon.cron_next(text, timestamptz) IS
    'The first minute strictly after after (UTC) that a five-field cron expression matches (minute hour day-of-month month day-of-week; *, numbers, ranges a-b, lists, steps */n and a-b/n; day-of-week 0-7, 0 and 7 Sunday; when both day fields are restricted either may match); NULL when none comes within ten years. A bad expression: 22023 naming it and the bad field. See docs/schedules.md.';

CREATE FUNCTION kaireon.run_schedules(at timestamptz DEFAULT NULL, max_runs integer DEFAULT 100,
                                      max_export_batches integer DEFAULT 1000)
    RETURNS TABLE (action text, tenant_id text, run_id text, campaign_run_id text, slot timestamptz,
                   status text, next_run_at timestamptz, rows bigint, detail text)
    AS 'MODULE_PATHNAME', 'kaireon_run_schedules'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.run_schedules(timestamptz, integer, integer) IS
    'The scheduler, as of at (default now; tests pin it): runs up to max_runs due scheduled runs (active, next_run_at <= at; each locked FOR UPDATE SKIP LOCKED, run by kaireon.run_campaign confined to its tenant, its next_run_at advanced in the same transaction), then up to max_export_batches batches of pending exports (kaireon.export_batch_size decisions each, checkpointed). One row per run (action run: the campaign run, its status, the slot and the next one) and per export batch (action export: rows written, the file name or the error). Superusers and BYPASSRLS roles only; the schedules maintenance job calls it. See docs/schedules.md.';

-- 99_finalize.sql on a fresh install: row level security, pg_dump registration
ALTER TABLE kaireon.campaign_exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.campaign_exports
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
SELECT pg_catalog.pg_extension_config_dump('kaireon.campaign_exports', '');

CREATE OR REPLACE FUNCTION kaireon.maintenance_jobs()
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
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)'),
        (9, 'alerts', 'kaireon.alert_schedule', 'kaireon.evaluate_alerts in batches of kaireon.alert_batch_size until every active rule was evaluated'),
        (10, 'schedules', 'kaireon.campaign_schedule', 'kaireon.run_schedules: due scheduled campaign runs, then their pending export batches, one per transaction')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;

-- the run history of the new job (sql/install/80_retention.sql)
ALTER TABLE kaireon.maintenance_runs DROP CONSTRAINT maintenance_runs_job_check,
    ADD CONSTRAINT maintenance_runs_job_check CHECK (job IN ('retention', 'partitions', 'outbox', 'summaries', 'volume_reset',
                                                            'suppressions', 'scores', 'dual_prices', 'alerts',
                                                            'schedules'));
COMMENT ON TABLE kaireon.maintenance_runs IS
    'kaireon''s own table: the run history of the maintenance jobs (retention, partitions, outbox, summaries, volume_reset, suppressions, scores, dual_prices, alerts, schedules), like pg_cron''s job_run_details but capped at kaireon.run_history_size rows per job. detail holds what the run did (and, while it runs, its progress). Row level security with no policy: only superusers and BYPASSRLS roles see it.';

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._check_run_schedule(), kaireon.cron_next(text, timestamptz),
    kaireon.run_schedules(timestamptz, integer, integer) FROM PUBLIC;
-- ==== end of issue 15 item 6, scheduled campaigns ====

-- ---- perf-explain (issue 17: explanations when asked): options.explain of kaireon.recommend ----
COMMENT ON FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb) IS
'The real-time decision: ranked, policy-checked, scored offers for a customer on a channel (and placement), recorded in the caller''s transaction unless options.dry_run. Options: dry_run, debug (dropped candidates follow as rows without rank), trace, exclude_offers, exclude_creatives, placements, deduplicate, explain (false: the decisions'' explanation column is NULL, not built). See docs/recommend.md.';
-- ---- end perf-explain ----

-- ==== journey engine (issue 15, item 2: docs/journeys.md "The engine"; sql/install/49_journey_engine.sql,
-- src/campaign/journeys.c), the journeys job in kaireon.maintenance_jobs() and maintenance_runs ====
-- kaireon install script, part 49: the journey engine (docs/journeys.md, "The engine").
-- kaireon.advance_journeys (src/campaign/journeys.c) takes due active enrolments through
-- journey_enrollments_due_idx, locks each alone (FOR UPDATE SKIP LOCKED) and, confined to the
-- enrolment's tenant, runs kaireon_internal._journey_advance, which takes the enrolment through
-- its frozen version's steps until a wait or an exit; the steps' effects and the enrolment's
-- move commit together. The maintenance job "journeys" calls it in batches.

-- the wait an active enrolment is in (NULL: due at a step that is not a wait)
ALTER TABLE kaireon.journey_enrollments
    ADD COLUMN wait_kind text CONSTRAINT journey_enrollments_wait_kind_check CHECK (wait_kind IN ('duration', 'until', 'event')),
    ADD COLUMN wait_event_type text,
    ADD COLUMN wait_event_at timestamptz;
COMMENT ON COLUMN kaireon.journey_enrollments.wait_kind IS
    'The kind of wait the enrolment is in at current_step_id (duration, until, event), set by the journey engine; NULL when it is not waiting. wait_until is when the wait ends (for an event wait: its timeout; NULL without one). See docs/journeys.md.';
COMMENT ON COLUMN kaireon.journey_enrollments.wait_event_type IS
    'For an event wait: the event type awaited (NULL otherwise). See docs/journeys.md.';
COMMENT ON COLUMN kaireon.journey_enrollments.wait_event_at IS
    'For an event wait: when the awaited event came (NULL: not yet; the wait then ends by its timeout and goes to timeoutNext). See docs/journeys.md.';
-- the engine reads only the due enrolments, through this index (never all enrolments)
CREATE INDEX journey_enrollments_due_idx ON kaireon.journey_enrollments (wait_until) WHERE status = 'active';
-- a respond wakes the customer's enrolments waiting for its event through this index
-- (src/decision/respond.c)
CREATE INDEX journey_enrollments_event_wait_idx ON kaireon.journey_enrollments (tenant_id, customer_id, wait_event_type)
    WHERE status = 'active' AND wait_event_type IS NOT NULL;

-- A split's condition (docs/journeys.md): segment, attribute of the customer's data row,
-- outcome within n days before p_at, experiment arm.
CREATE FUNCTION kaireon_internal._journey_condition(p_tenant text, p_customer text, p_when jsonb, p_at timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table     text;
    v_key       text;
    v_value     jsonb;
    v_want      jsonb := p_when -> 'value';
    v_cmp       integer;
BEGIN
    IF p_when ? 'segmentId' THEN
        RETURN kaireon.is_segment_member(p_tenant, p_when ->> 'segmentId', p_customer);
    ELSIF p_when ? 'outcome' THEN
        RETURN EXISTS (SELECT 1 FROM kaireon.interaction_history ih
                        WHERE ih.tenant_id = p_tenant AND ih.customer_id = p_customer
                          AND ih.interaction_type = 'outcome' AND ih.outcome_type_key = p_when ->> 'outcome'
                          AND ih.occurred_at <= p_at
                          AND (NOT p_when ? 'withinDays'
                               OR ih.occurred_at >= p_at - make_interval(days => (p_when ->> 'withinDays')::integer)));
    ELSIF p_when ? 'experimentId' THEN
        RETURN (SELECT a.variant FROM kaireon.assign_experiment(p_tenant, p_when ->> 'experimentId', p_customer) a)
               = p_when ->> 'arm';
    END IF;
    -- an attribute of the customer's row in the tenant's first published customer data schema
    SELECT quote_ident('kaireon_t_' || t.slug) || '.' || quote_ident(d.table_name),
           (SELECT quote_ident(f.name) FROM kaireon.schema_fields f
             WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key)
      INTO v_table, v_key
      FROM kaireon.data_schemas d JOIN kaireon.tenants t ON t.id = d.tenant_id
     WHERE d.tenant_id = p_tenant AND d.status = 'published' AND d.entity_type = 'customer'
     ORDER BY d.name LIMIT 1;
    IF v_table IS NULL OR v_key IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.%s::text = $1', v_table, v_key)
       INTO v_value USING p_customer, p_when ->> 'attribute';
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN false;       -- no row, or no value: no condition holds
    END IF;
    CASE p_when ->> 'operator'
        WHEN 'eq' THEN RETURN v_value = v_want;
        WHEN 'neq' THEN RETURN v_value <> v_want;
        WHEN 'in' THEN RETURN v_want @> jsonb_build_array(v_value);
        WHEN 'not_in' THEN RETURN NOT v_want @> jsonb_build_array(v_value);
        ELSE
            IF jsonb_typeof(v_value) = 'number' AND jsonb_typeof(v_want) = 'number' THEN
                v_cmp := sign((v_value #>> '{}')::numeric - (v_want #>> '{}')::numeric);
            ELSIF jsonb_typeof(v_value) = 'string' AND jsonb_typeof(v_want) = 'string' THEN
                v_cmp := CASE WHEN (v_value #>> '{}') COLLATE "C" < (v_want #>> '{}') COLLATE "C" THEN -1
                              WHEN (v_value #>> '{}') = (v_want #>> '{}') THEN 0 ELSE 1 END;
            ELSE
                RETURN false;   -- a number and a string do not compare
            END IF;
            RETURN CASE p_when ->> 'operator' WHEN 'gt' THEN v_cmp > 0 WHEN 'gte' THEN v_cmp >= 0
                                              WHEN 'lt' THEN v_cmp < 0 WHEN 'lte' THEN v_cmp <= 0 END;
    END CASE;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_condition(text, text, jsonb, timestamptz) IS
    'Internal: whether a condition_split condition holds for a customer at p_at: segmentId (kaireon.is_segment_member), attribute (the customer''s row of the tenant''s first published customer data schema; no row or no value: false; gt/gte/lt/lte compare numbers with numbers and strings with strings), outcome (an outcome of that type at or before p_at, within withinDays days), experimentId and arm (kaireon.assign_experiment: the stored assignment, else a new one). See docs/journeys.md.';

-- One enrolment's pass (docs/journeys.md, "The engine"): its locked row is taken through its
-- version's steps from current_step_id until a wait that has not ended, or an exit.
CREATE FUNCTION kaireon_internal._journey_advance(p_tenant text, p_id text, p_at timestamptz)
    RETURNS TABLE (step_id text, step_type text, outcome text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e               kaireon.journey_enrollments;
    v_def           jsonb;
    v_max_days      integer;
    v_steps         jsonb;
    v_deadline      timestamptz;
    v_step          jsonb;
    v_cur           text;
    v_type          text;
    v_next          text;
    v_out           text;
    v_reason        jsonb;
    v_hist          jsonb := '[]';
    v_status        text := 'active';
    v_wait_until    timestamptz;
    v_wait_kind     text;
    v_wait_event    text;
    v_decision      jsonb;
    v_n             integer := 0;
    v_d             jsonb;
    v_until         timestamptz;
    v_branch        jsonb;
    v_i             integer;
    v_id            text;
    v_conversion    jsonb;
BEGIN
    -- locked alone (a router query on Citus), skipped when another runner holds it; its
    -- latest version checked: one another runner has moved meanwhile is no longer due
    SELECT * INTO e FROM kaireon.journey_enrollments x
     WHERE x.tenant_id = p_tenant AND x.id = p_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND OR e.status <> 'active' OR e.wait_until IS NULL OR e.wait_until > p_at THEN
        RETURN;
    END IF;
    SELECT v -> 'definition', j.max_duration_days INTO v_def, v_max_days
      FROM kaireon.journeys j CROSS JOIN LATERAL jsonb_array_elements(j.published_versions) v
     WHERE j.tenant_id = e.tenant_id AND j.id = e.journey_id AND (v ->> 'version')::integer = e.journey_version;
    IF v_def IS NULL THEN
        RAISE EXCEPTION 'journey "%" has no version %', e.journey_id, e.journey_version
            USING ERRCODE = '55000', HINT = 'Published versions are never removed; was the journey rewritten by hand?';
    END IF;
    SELECT jsonb_object_agg(s ->> 'id', s) INTO v_steps FROM jsonb_array_elements(v_def -> 'steps') s;
    v_deadline := e.entered_at + make_interval(days => v_max_days);    -- NULL: unbounded
    -- the last decision recorded for this enrolment (a channel_action sends it)
    SELECT h -> 'reason' INTO v_decision FROM jsonb_array_elements(e.history) WITH ORDINALITY AS x (h, n)
     WHERE h ->> 'type' = 'nba_decision' ORDER BY x.n DESC LIMIT 1;
    -- exitOnConversion: a conversion of the customer since entry ends the enrolment at its next pass
    IF coalesce((v_def ->> 'exitOnConversion')::boolean, false) THEN
        SELECT jsonb_build_object('outcomeType', ih.outcome_type_key, 'occurredAt', ih.occurred_at) INTO v_conversion
          FROM kaireon.interaction_history ih
         WHERE ih.tenant_id = e.tenant_id AND ih.customer_id = e.customer_id AND ih.interaction_type = 'outcome'
           AND ih.occurred_at >= e.entered_at AND ih.occurred_at <= p_at
           AND EXISTS (SELECT 1 FROM kaireon.outcome_types ot
                        WHERE ot.tenant_id = e.tenant_id AND ot.key = ih.outcome_type_key
                          AND ot.category = 'conversion' AND ot.deleted_at IS NULL)
         ORDER BY ih.occurred_at LIMIT 1;
    END IF;
    v_cur := e.current_step_id;
    LOOP
        v_n := v_n + 1;
        IF v_n > 1000 THEN
            -- can't happen: the validator requires every loop to pass through a wait that takes time
            RAISE EXCEPTION 'enrolment "%" took more than 1000 steps in one pass', e.id
                USING ERRCODE = '54000', HINT = 'Check the journey''s loops (docs/journeys.md).';
        END IF;
        v_step := v_steps -> v_cur;
        IF v_step IS NULL THEN
            RAISE EXCEPTION 'version % of journey "%" has no step "%"', e.journey_version, e.journey_id, v_cur
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the enrolment rewritten by hand?';
        END IF;
        v_type := v_step ->> 'type';
        v_reason := NULL;
        v_next := NULL;
        IF v_n = 1 AND v_conversion IS NOT NULL THEN
            v_out := 'converted';
            v_reason := v_conversion;
            v_status := 'exited';
        ELSIF v_deadline IS NOT NULL AND p_at >= v_deadline THEN
            v_out := 'max_duration';
            v_reason := jsonb_build_object('maxDurationDays', v_max_days, 'deadline', v_deadline);
            v_status := 'exited';
        ELSIF v_type = 'entry_trigger' THEN
            -- recorded at enrolment (kaireon.enroll_in_journey): the engine only goes on
            v_cur := v_step ->> 'next';
            CONTINUE;
        ELSIF v_type = 'wait' AND v_n = 1 AND e.wait_kind IS NOT NULL THEN
            -- the wait the enrolment was in has ended
            IF e.wait_kind = 'event' AND e.wait_event_at IS NULL THEN
                v_out := 'timeout';
                v_next := coalesce(v_step ->> 'timeoutNext', v_step ->> 'next');
            ELSE
                v_out := CASE e.wait_kind WHEN 'event' THEN 'event' ELSE 'elapsed' END;
                v_next := v_step ->> 'next';
                IF e.wait_kind = 'event' THEN
                    v_reason := jsonb_build_object('eventType', e.wait_event_type, 'eventAt', e.wait_event_at);
                END IF;
            END IF;
        ELSIF v_type = 'wait' THEN
            -- a wait begins
            v_d := coalesce(v_step -> 'duration', v_step -> 'timeout');
            IF v_step ? 'until' THEN
                v_wait_kind := 'until';
                v_until := (v_step ->> 'until')::timestamptz;
            ELSE
                v_wait_kind := CASE WHEN v_step ? 'event' THEN 'event' ELSE 'duration' END;
                v_until := p_at + CASE WHEN v_d IS NULL THEN NULL ELSE
                           coalesce((v_d ->> 'days')::numeric, 0) * interval '1 day'
                           + coalesce((v_d ->> 'hours')::numeric, 0) * interval '1 hour'
                           + coalesce((v_d ->> 'minutes')::numeric, 0) * interval '1 minute'
                           + coalesce((v_d ->> 'seconds')::numeric, 0) * interval '1 second' END;
            END IF;
            v_wait_event := v_step -> 'event' ->> 'eventType';
            v_reason := jsonb_strip_nulls(jsonb_build_object('kind', v_wait_kind, 'until', v_until,
                                                             'eventType', v_wait_event));
            IF v_wait_kind = 'until' AND v_until <= p_at THEN
                v_out := 'elapsed';         -- its time is past: it passes at once
                v_next := v_step ->> 'next';
                v_wait_kind := NULL;
                v_wait_event := NULL;
            ELSE
                v_out := 'waiting';
                v_wait_until := CASE WHEN v_deadline IS NULL THEN v_until
                                     WHEN v_until IS NULL THEN v_deadline
                                     ELSE least(v_until, v_deadline) END;
            END IF;
        ELSIF v_type = 'nba_decision' THEN
            SELECT jsonb_build_object('offerId', r.offer_id, 'creativeId', r.creative_id,
                                      'interactionId', r.interaction_id, 'recommendationId', r.recommendation_id,
                                      'channelId', v_step ->> 'channelId')
              INTO v_decision
              FROM kaireon.recommend(e.tenant_id, e.customer_id, v_step ->> 'channelId', v_step ->> 'placementId',
                                     '{}', 1, v_step ->> 'flowKey') r
             WHERE r.rank IS NOT NULL ORDER BY r.rank LIMIT 1;
            IF v_decision IS NULL THEN
                v_out := 'no_offer';
                v_reason := jsonb_build_object('channelId', v_step ->> 'channelId');
                v_next := v_step ->> 'onNoOffer';
            ELSE
                v_out := 'offer';
                v_reason := v_decision;
                v_next := v_step ->> 'onOffer';
            END IF;
        ELSIF v_type = 'condition_split' THEN
            v_i := 0;
            FOR v_branch IN SELECT b FROM jsonb_array_elements(v_step -> 'branches') b LOOP
                v_i := v_i + 1;
                IF kaireon_internal._journey_condition(e.tenant_id, e.customer_id, v_branch -> 'when', p_at) THEN
                    v_out := 'branch ' || v_i;
                    v_reason := jsonb_build_object('branch', v_i, 'when', v_branch -> 'when');
                    v_next := v_branch ->> 'next';
                    EXIT;
                END IF;
            END LOOP;
            IF v_next IS NULL THEN
                v_out := 'otherwise';
                v_next := v_step ->> 'otherwise';
            END IF;
        ELSIF v_type = 'channel_action' THEN
            IF v_decision ? 'interactionId' AND v_decision ->> 'interactionId' IS NOT NULL
               AND (NOT v_step ? 'offerId' OR v_step ->> 'offerId' = v_decision ->> 'offerId') THEN
                -- the enrolment's recorded decision is sent: its delivery (and the delivery's
                -- outbox event); the key makes each pass through the step its own delivery
                v_id := kaireon.create_delivery(e.tenant_id, v_decision ->> 'interactionId', NULL, NULL,
                                                'journey:' || e.id || ':' || v_cur || ':'
                                                || (jsonb_array_length(e.history) + jsonb_array_length(v_hist)),
                                                jsonb_strip_nulls(jsonb_build_object(
                                                    'journeyId', e.journey_id, 'enrollmentId', e.id, 'stepId', v_cur,
                                                    'channelId', v_step ->> 'channelId', 'template', v_step -> 'template')));
                v_out := 'delivery';
                v_reason := jsonb_build_object('deliveryId', v_id, 'interactionId', v_decision ->> 'interactionId');
            ELSE
                INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
                VALUES (e.tenant_id, 'journey.channel_action',
                        jsonb_strip_nulls(jsonb_build_object(
                            'tenantId', e.tenant_id, 'journeyId', e.journey_id, 'journeyVersion', e.journey_version,
                            'enrollmentId', e.id, 'customerId', e.customer_id, 'stepId', v_cur,
                            'channelId', v_step ->> 'channelId', 'offerId', v_step ->> 'offerId',
                            'creativeId', v_step ->> 'creativeId', 'template', v_step -> 'template', 'at', p_at)))
                RETURNING id INTO v_id;
                v_out := 'event';
                v_reason := jsonb_build_object('eventId', v_id);
            END IF;
            v_next := v_step ->> 'next';
        ELSIF v_type = 'exit' THEN
            v_out := 'completed';
            v_reason := v_step -> 'reason';
            v_status := 'completed';
        ELSE
            RAISE EXCEPTION 'step "%" of journey "%" has the unknown type "%"', v_cur, e.journey_id, v_type
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the journey rewritten by hand?';
        END IF;
        v_hist := v_hist || jsonb_build_array(jsonb_build_object('at', p_at, 'step', v_cur, 'type', v_type,
                                                                 'outcome', v_out)
                                              || CASE WHEN v_reason IS NULL THEN '{}'::jsonb
                                                      ELSE jsonb_build_object('reason', v_reason) END);
        step_id := v_cur;
        step_type := v_type;
        outcome := v_out;
        RETURN NEXT;
        EXIT WHEN v_status <> 'active' OR v_out = 'waiting';
        v_cur := v_next;
    END LOOP;
    UPDATE kaireon.journey_enrollments x
       SET current_step_id = v_cur, status = v_status,
           wait_until = CASE WHEN v_status = 'active' THEN v_wait_until END,
           wait_kind = CASE WHEN v_status = 'active' THEN v_wait_kind END,
           wait_event_type = CASE WHEN v_status = 'active' THEN v_wait_event END,
           wait_event_at = NULL,
           last_step_at = p_at, history = x.history || v_hist, updated_at = now()
     WHERE x.tenant_id = e.tenant_id AND x.id = e.id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_advance(text, text, timestamptz) IS
    'Internal: one pass of kaireon.advance_journeys over one due active enrolment at p_at (locked FOR UPDATE SKIP LOCKED: nothing when another runner holds it or it is no longer due): from current_step_id through the steps of its frozen version until a wait that has not ended (wait_until, wait_kind, wait_event_type set) or an exit (status completed; exited at max_duration_days, or with exitOnConversion after a conversion since entry), each step appended to history ({at, step, type, outcome, reason}) and returned. Runs in the caller''s transaction, confined to the tenant (src/campaign/journeys.c). See docs/journeys.md.';

-- An error in a pass: rolled back by the caller; recorded here, retried later.
CREATE FUNCTION kaireon_internal._journey_failed(p_tenant text, p_id text, p_at timestamptz, p_error text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE kaireon.journey_enrollments x
       SET wait_until = p_at + interval '5 minutes', updated_at = now(),
           history = x.history || jsonb_build_array(jsonb_build_object('at', p_at, 'step', x.current_step_id,
                                                                        'type', 'error', 'outcome', 'error',
                                                                        'reason', p_error))
     WHERE x.tenant_id = p_tenant AND x.id = p_id AND x.status = 'active';
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_failed(text, text, timestamptz, text) IS
    'Internal: records a pass of kaireon.advance_journeys that failed (rolled back) in the enrolment''s history (type error, the message) and makes it due again 5 minutes after p_at, at the step it was at. See docs/journeys.md.';

CREATE FUNCTION kaireon.advance_journeys(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                         max_enrollments integer DEFAULT 100)
    RETURNS TABLE (enrollment_tenant_id text, enrollment_id text, journey_id text, customer_id text,
                   step_id text, step_type text, outcome text)
    AS 'MODULE_PATHNAME', 'kaireon_advance_journeys'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.advance_journeys(text, timestamptz, integer) IS
    'The journey engine, as of at (default now; tests pin it): takes up to max_enrollments due active enrolments (wait_until <= at; of tenant_id, or every tenant the caller sees), earliest first, each locked FOR UPDATE SKIP LOCKED (one another runner holds is skipped), and advances each through its frozen version''s steps until a wait or an exit, confined to its tenant; a step''s effects and the enrolment''s move commit together. A failing enrolment is rolled back, its error recorded in its history, and retried 5 minutes later. One row per step taken (outcome: next step''s reason, such as offer, no_offer, branch 1, otherwise, waiting, elapsed, event, timeout, delivery, completed, max_duration, converted, error). The maintenance job journeys calls it. See docs/journeys.md.';

-- the run history of the new job (sql/install/80_retention.sql)
ALTER TABLE kaireon.maintenance_runs DROP CONSTRAINT maintenance_runs_job_check,
    ADD CONSTRAINT maintenance_runs_job_check CHECK (job IN ('retention', 'partitions', 'outbox', 'summaries', 'volume_reset',
                                                            'suppressions', 'scores', 'dual_prices', 'alerts',
                                                            'schedules', 'journeys'));
COMMENT ON TABLE kaireon.maintenance_runs IS
    'kaireon''s own table: the run history of the maintenance jobs (retention, partitions, outbox, summaries, volume_reset, suppressions, scores, dual_prices, alerts, schedules, journeys), like pg_cron''s job_run_details but capped at kaireon.run_history_size rows per job. detail holds what the run did (and, while it runs, its progress). Row level security with no policy: only superusers and BYPASSRLS roles see it.';

CREATE OR REPLACE FUNCTION kaireon.maintenance_jobs()
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
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)'),
        (9, 'alerts', 'kaireon.alert_schedule', 'kaireon.evaluate_alerts in batches of kaireon.alert_batch_size until every active rule was evaluated'),
        (10, 'schedules', 'kaireon.campaign_schedule', 'kaireon.run_schedules: due scheduled campaign runs, then their pending export batches, one per transaction'),
        (11, 'journeys', 'kaireon.journey_schedule', 'kaireon.advance_journeys in batches of kaireon.journey_batch_size due enrolments, one transaction per batch, until fewer are due')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._journey_condition(text, text, jsonb, timestamptz),
    kaireon_internal._journey_advance(text, text, timestamptz),
    kaireon_internal._journey_failed(text, text, timestamptz, text),
    kaireon.advance_journeys(text, timestamptz, integer) FROM PUBLIC;
-- ==== end of journey engine ====

-- ==== joint assignment (issue 14, item 1: the group node's solver; sql/install/50_arbitration.sql) ====
CREATE FUNCTION kaireon_internal._assign(score double precision[], nplace integer, slots integer[])
    RETURNS integer[]
    AS 'MODULE_PATHNAME', 'kaireon_assign'
    LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION kaireon_internal._assign(double precision[], integer, integer[]) IS
    'Internal: the optimal joint assignment of a flow graph''s group node (src/arbitration/assign.c) from SQL, for the tests: score holds nplace values per candidate (NULL: not allowed there), slots one count per placement; returns each candidate''s placement (1-based) or 0.';
REVOKE ALL ON FUNCTION kaireon_internal._assign(double precision[], integer, integer[]) FROM PUBLIC;
-- ==== end of joint assignment ====

-- ==== jengine (issue 15, journey engine crash test and benchmark; sql/install/49_journey_engine.sql):
-- a split's attribute condition reads the customer's row through the primary key (tenant_id,
-- key), the key compared in its own type (it read the whole customer data table).
CREATE OR REPLACE FUNCTION kaireon_internal._journey_condition(p_tenant text, p_customer text, p_when jsonb, p_at timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table     text;
    v_key       text;
    v_key_type  text;
    v_value     jsonb;
    v_want      jsonb := p_when -> 'value';
    v_cmp       integer;
BEGIN
    IF p_when ? 'segmentId' THEN
        RETURN kaireon.is_segment_member(p_tenant, p_when ->> 'segmentId', p_customer);
    ELSIF p_when ? 'outcome' THEN
        RETURN EXISTS (SELECT 1 FROM kaireon.interaction_history ih
                        WHERE ih.tenant_id = p_tenant AND ih.customer_id = p_customer
                          AND ih.interaction_type = 'outcome' AND ih.outcome_type_key = p_when ->> 'outcome'
                          AND ih.occurred_at <= p_at
                          AND (NOT p_when ? 'withinDays'
                               OR ih.occurred_at >= p_at - make_interval(days => (p_when ->> 'withinDays')::integer)));
    ELSIF p_when ? 'experimentId' THEN
        RETURN (SELECT a.variant FROM kaireon.assign_experiment(p_tenant, p_when ->> 'experimentId', p_customer) a)
               = p_when ->> 'arm';
    END IF;
    -- an attribute of the customer's row in the tenant's first published customer data schema,
    -- read through its primary key (tenant_id, key): the key compared in its own type (compared
    -- as text it would read the whole table); an id that is no value of that type has no row
    SELECT quote_ident('kaireon_t_' || t.slug) || '.' || quote_ident(d.table_name), k.name, k.data_type
      INTO v_table, v_key, v_key_type
      FROM kaireon.data_schemas d JOIN kaireon.tenants t ON t.id = d.tenant_id
      LEFT JOIN LATERAL (SELECT f.name, f.data_type FROM kaireon.schema_fields f
                          WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key) k ON true
     WHERE d.tenant_id = p_tenant AND d.status = 'published' AND d.entity_type = 'customer'
     ORDER BY d.name LIMIT 1;
    IF v_table IS NULL OR v_key IS NULL THEN
        RETURN false;
    END IF;
    IF v_key_type IN ('text', 'varchar') THEN
        EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%I = $1', v_table, v_key)
           INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
    ELSE
        SELECT format_type(a.atttypid, NULL) INTO v_key_type FROM pg_attribute a
         WHERE a.attrelid = to_regclass(v_table) AND a.attname = v_key AND NOT a.attisdropped;
        BEGIN
            EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%I = $1::%s',
                           v_table, v_key, v_key_type)
               INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
        EXCEPTION WHEN data_exception THEN
            RETURN false;   -- the id is no value of the key's type: no row
        END;
    END IF;
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN false;       -- no row, or no value: no condition holds
    END IF;
    CASE p_when ->> 'operator'
        WHEN 'eq' THEN RETURN v_value = v_want;
        WHEN 'neq' THEN RETURN v_value <> v_want;
        WHEN 'in' THEN RETURN v_want @> jsonb_build_array(v_value);
        WHEN 'not_in' THEN RETURN NOT v_want @> jsonb_build_array(v_value);
        ELSE
            IF jsonb_typeof(v_value) = 'number' AND jsonb_typeof(v_want) = 'number' THEN
                v_cmp := sign((v_value #>> '{}')::numeric - (v_want #>> '{}')::numeric);
            ELSIF jsonb_typeof(v_value) = 'string' AND jsonb_typeof(v_want) = 'string' THEN
                v_cmp := CASE WHEN (v_value #>> '{}') COLLATE "C" < (v_want #>> '{}') COLLATE "C" THEN -1
                              WHEN (v_value #>> '{}') = (v_want #>> '{}') THEN 0 ELSE 1 END;
            ELSE
                RETURN false;   -- a number and a string do not compare
            END IF;
            RETURN CASE p_when ->> 'operator' WHEN 'gt' THEN v_cmp > 0 WHEN 'gte' THEN v_cmp >= 0
                                              WHEN 'lt' THEN v_cmp < 0 WHEN 'lte' THEN v_cmp <= 0 END;
    END CASE;
END
$fn$;
-- ==== end of jengine ====

-- ==== jevents (issue 15: journey wake-ups by events, campaign deliveries, review findings;
-- docs/journeys.md "Events", docs/orchestration.md, docs/schedules.md; sql/install/25, 47, 48,
-- 49, 52): begin ====

CREATE FUNCTION kaireon_internal._customer_data_table(p_tenant text, p_schema text DEFAULT NULL)
    RETURNS TABLE (table_name text, key_column text, fields jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN QUERY
    SELECT quote_ident('kaireon_t_' || t.slug) || '.' || quote_ident(d.table_name),
           (SELECT quote_ident(f.name) FROM kaireon.schema_fields f
             WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id AND f.is_primary_key),
           (SELECT jsonb_object_agg(f.name, f.is_primary_key) FROM kaireon.schema_fields f
             WHERE f.tenant_id = d.tenant_id AND f.schema_id = d.id)
      FROM kaireon.data_schemas d JOIN kaireon.tenants t ON t.id = d.tenant_id
     WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND d.status = 'published' AND d.entity_type = 'customer'
       AND (p_schema IS NULL OR d.name = p_schema)
     ORDER BY d.name LIMIT 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._customer_data_table(text, text) IS
    'Internal: the tenant''s customer data table (its published customer data schema named p_schema, else the first by name): quoted table name, quoted key column and {field: is_primary_key}; no row when there is none. Used by trigger rules'' update_attribute and journeys'' attribute conditions.';

CREATE OR REPLACE FUNCTION kaireon_internal._journey_condition(p_tenant text, p_customer text, p_when jsonb, p_at timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table     text;
    v_key       text;
    v_value     jsonb;
    v_want      jsonb := p_when -> 'value';
    v_cmp       integer;
BEGIN
    IF p_when ? 'segmentId' THEN
        RETURN kaireon.is_segment_member(p_tenant, p_when ->> 'segmentId', p_customer);
    ELSIF p_when ? 'outcome' THEN
        RETURN EXISTS (SELECT 1 FROM kaireon.interaction_history ih
                        WHERE ih.tenant_id = p_tenant AND ih.customer_id = p_customer
                          AND ih.interaction_type = 'outcome' AND ih.outcome_type_key = p_when ->> 'outcome'
                          AND ih.occurred_at <= p_at
                          AND (NOT p_when ? 'withinDays'
                               OR ih.occurred_at >= p_at - make_interval(days => (p_when ->> 'withinDays')::integer)));
    ELSIF p_when ? 'experimentId' THEN
        RETURN (SELECT a.variant FROM kaireon.assign_experiment(p_tenant, p_when ->> 'experimentId', p_customer) a)
               = p_when ->> 'arm';
    END IF;
    -- an attribute of the customer's row in the tenant's first published customer data schema
    SELECT c.table_name, c.key_column INTO v_table, v_key FROM kaireon_internal._customer_data_table(p_tenant) c;
    IF v_table IS NULL OR v_key IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.%s::text = $1', v_table, v_key)
       INTO v_value USING p_customer, p_when ->> 'attribute';
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN false;       -- no row, or no value: no condition holds
    END IF;
    CASE p_when ->> 'operator'
        WHEN 'eq' THEN RETURN v_value = v_want;
        WHEN 'neq' THEN RETURN v_value <> v_want;
        WHEN 'in' THEN RETURN v_want @> jsonb_build_array(v_value);
        WHEN 'not_in' THEN RETURN NOT v_want @> jsonb_build_array(v_value);
        ELSE
            IF jsonb_typeof(v_value) = 'number' AND jsonb_typeof(v_want) = 'number' THEN
                v_cmp := sign((v_value #>> '{}')::numeric - (v_want #>> '{}')::numeric);
            ELSIF jsonb_typeof(v_value) = 'string' AND jsonb_typeof(v_want) = 'string' THEN
                v_cmp := CASE WHEN (v_value #>> '{}') COLLATE "C" < (v_want #>> '{}') COLLATE "C" THEN -1
                              WHEN (v_value #>> '{}') = (v_want #>> '{}') THEN 0 ELSE 1 END;
            ELSE
                RETURN false;   -- a number and a string do not compare
            END IF;
            RETURN CASE p_when ->> 'operator' WHEN 'gt' THEN v_cmp > 0 WHEN 'gte' THEN v_cmp >= 0
                                              WHEN 'lt' THEN v_cmp < 0 WHEN 'lte' THEN v_cmp <= 0 END;
    END CASE;
END
$fn$;

CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF published_versions
    ON kaireon.journeys FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.journeys
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.journeys',
    'OLD.published_versions IS DISTINCT FROM NEW.published_versions');

CREATE UNIQUE INDEX channel_deliveries_provider_message_idx
    ON kaireon.channel_deliveries (tenant_id, provider_name, provider_message_id) NULLS NOT DISTINCT
    WHERE provider_message_id IS NOT NULL;

CREATE OR REPLACE FUNCTION kaireon.evaluate_alerts(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                        max_rules integer DEFAULT 100, alert_rule_id text DEFAULT NULL)
    RETURNS TABLE (rule_tenant_id text, rule_id text, rule_name text, metric text, value double precision,
                   fired boolean, reason text, event_id text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    c           record;
    r           kaireon.alert_rules;
    v_from      timestamptz;
    v_value     double precision;
    v_holds     boolean;
    v_event     text;
    v_err       text;
BEGIN
    IF evaluate_alerts.at IS NULL OR max_rules IS NULL THEN
        RAISE EXCEPTION 'at and max_rules must not be null'
            USING ERRCODE = '22004', HINT = 'Leave them out for now() and 100.';
    END IF;
    IF NOT isfinite(evaluate_alerts.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', evaluate_alerts.at
            USING ERRCODE = '22023', HINT = 'Pass the time to evaluate the rules at.';
    END IF;
    -- a rule is never evaluated again at a time not after its last evaluation, and its cooldown
    -- runs from when it fired: an evaluation in the future would silence it until then
    IF evaluate_alerts.at > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'at % is in the future (more than 5 minutes after the transaction''s time)', evaluate_alerts.at
            USING ERRCODE = '22023',
                  HINT = 'Pass the present or a past time: an evaluation at a later time would hold every rule it evaluates (and the cooldown of each that fires) until then.';
    END IF;
    IF max_rules NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'max_rules must be between 1 and 10000, not %', max_rules
            USING ERRCODE = '22023', HINT = 'Pass how many rules to evaluate in this call.';
    END IF;
    IF evaluate_alerts.tenant_id IS NOT NULL THEN
        PERFORM kaireon.assert_tenant_access(evaluate_alerts.tenant_id);
    END IF;
    -- Steps: (1) the active rules not yet evaluated at this time, least recently evaluated
    -- first, at most max_rules; (2) each locked (one tenant per statement; a rule another
    -- evaluator holds is skipped) and checked again; (3) its metric over [at - window, at);
    -- (4) fired when the comparison holds and the cooldown has passed: an outbox event and
    -- last_fired_at; (5) last_evaluated_at and last_value in any case.
    FOR c IN
        SELECT a.tenant_id, a.id FROM kaireon.alert_rules a
         WHERE a.status = 'active'
           AND (evaluate_alerts.tenant_id IS NULL OR a.tenant_id = evaluate_alerts.tenant_id)
           AND (evaluate_alerts.alert_rule_id IS NULL OR a.id = evaluate_alerts.alert_rule_id)
           AND (a.last_evaluated_at IS NULL OR a.last_evaluated_at < evaluate_alerts.at)
         ORDER BY a.last_evaluated_at NULLS FIRST, a.tenant_id, a.id
         LIMIT max_rules
    LOOP
        SELECT * INTO r FROM kaireon.alert_rules a
         WHERE a.tenant_id = c.tenant_id AND a.id = c.id
           FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND OR r.status <> 'active'
                      OR (r.last_evaluated_at IS NOT NULL AND r.last_evaluated_at >= evaluate_alerts.at);
        rule_tenant_id := r.tenant_id;
        rule_id := r.id;
        rule_name := r.name;
        metric := r.metric;
        fired := false;
        event_id := NULL;
        v_from := evaluate_alerts.at - make_interval(mins => r.window_minutes);
        BEGIN
            v_value := kaireon_internal._alert_metric_value(r.tenant_id, r.metric, v_from, evaluate_alerts.at);
            v_err := NULL;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_err = MESSAGE_TEXT;
            v_value := NULL;
        END;
        value := v_value;
        v_holds := CASE r.operator
                       WHEN 'gt' THEN v_value > r.threshold
                       WHEN 'gte' THEN v_value >= r.threshold
                       WHEN 'lt' THEN v_value < r.threshold
                       WHEN 'lte' THEN v_value <= r.threshold
                       WHEN 'eq' THEN v_value = r.threshold
                       WHEN 'neq' THEN v_value <> r.threshold
                   END;
        IF v_err IS NOT NULL THEN
            reason := 'error: ' || v_err;
        ELSIF v_value IS NULL THEN
            reason := 'no value';
        ELSIF NOT v_holds THEN
            reason := 'condition not met';
        ELSIF r.last_fired_at IS NOT NULL
              AND evaluate_alerts.at < r.last_fired_at + make_interval(mins => r.cooldown_minutes) THEN
            reason := 'cooldown';
        ELSE
            INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
            VALUES (r.tenant_id, 'alert.fired',
                    jsonb_build_object('tenantId', r.tenant_id, 'alertRuleId', r.id, 'alertRuleName', r.name,
                                       'metric', r.metric, 'operator', r.operator, 'threshold', r.threshold,
                                       'value', v_value,
                                       'window', jsonb_build_object('from', v_from, 'to', evaluate_alerts.at,
                                                                    'minutes', r.window_minutes),
                                       'channels', r.channels, 'firedAt', evaluate_alerts.at))
            RETURNING id INTO v_event;
            fired := true;
            event_id := v_event;
            reason := 'fired';
        END IF;
        UPDATE kaireon.alert_rules a
           SET last_evaluated_at = evaluate_alerts.at, last_value = v_value,
               last_fired_at = CASE WHEN fired THEN evaluate_alerts.at ELSE a.last_fired_at END
         WHERE a.tenant_id = r.tenant_id AND a.id = r.id;
        RETURN NEXT;
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION kaireon.evaluate_alerts(text, timestamptz, integer, text) IS
    'Evaluates the active alert rules (of tenant_id, or every tenant the caller sees; or the one alert_rule_id) at time at: each rule''s metric over [at - window_minutes, at) for its tenant, compared with operator and threshold; a rule that holds and whose last firing is at least cooldown_minutes before at fires: an outbox event alert.fired naming the rule, the value and the window, and last_fired_at = at. At most max_rules rules, least recently evaluated first; a rule already evaluated at or after at is skipped, one another session holds too. One row per rule evaluated; an at more than 5 minutes after now() is refused (22023: it would hold the rules until then). The maintenance job alerts runs it. See docs/orchestration.md.';

CREATE OR REPLACE FUNCTION kaireon.delivery_status(tenant_id text, status text, delivery_id text DEFAULT NULL,
                                        provider_message_id text DEFAULT NULL, idempotency_key text DEFAULT NULL,
                                        at timestamptz DEFAULT now(), error text DEFAULT NULL,
                                        provider_name text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d           kaireon.channel_deliveries;
    ih          record;
    v_new       text := delivery_status.status;
    v_cur       text;
    v_n         integer;
    v_outcomes  text[] := '{}';
    v_s         text;
    v_responses jsonb := '[]';
    v_result    jsonb;
BEGIN
    -- Steps: (1) arguments; (2) the delivery, locked (callbacks of one delivery run one after
    -- another); (3) the transition: a repeated status or an earlier one on the way writes
    -- nothing, a terminal status admits nothing else; (4) the row; (5) an open and a click
    -- become responses through kaireon.respond, once each (its idempotency key).
    IF delivery_status.tenant_id IS NULL OR v_new IS NULL OR delivery_status.at IS NULL THEN
        RAISE EXCEPTION 'tenant_id, status and at must not be null'
            USING ERRCODE = '22004', HINT = 'Pass the tenant, the provider''s status and the time of the event.';
    END IF;
    IF v_new NOT IN ('sent', 'delivered', 'opened', 'clicked', 'bounced', 'failed') THEN
        RAISE EXCEPTION 'unknown delivery status "%"', v_new
            USING ERRCODE = '22023', HINT = 'Statuses: sent, delivered, opened, clicked, bounced, failed (pending is where a delivery starts).';
    END IF;
    IF NOT isfinite(delivery_status.at) THEN
        RAISE EXCEPTION 'at must be a finite time, not %', delivery_status.at
            USING ERRCODE = '22023', HINT = 'Pass the time of the provider''s event.';
    END IF;
    IF delivery_status.delivery_id IS NULL AND delivery_status.idempotency_key IS NULL
       AND delivery_status.provider_message_id IS NULL THEN
        RAISE EXCEPTION 'one of delivery_id, idempotency_key and provider_message_id is needed'
            USING ERRCODE = '22004', HINT = 'Name the delivery the callback is about.';
    END IF;
    PERFORM kaireon.assert_tenant_access(delivery_status.tenant_id);
    IF delivery_status.delivery_id IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.id = delivery_status.delivery_id FOR UPDATE;
    ELSIF delivery_status.idempotency_key IS NOT NULL THEN
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.idempotency_key = delivery_status.idempotency_key FOR UPDATE;
    ELSE
        SELECT count(*) INTO v_n FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name);
        IF v_n > 1 THEN
            RAISE EXCEPTION 'provider message id "%" names % deliveries of tenant "%"', delivery_status.provider_message_id,
                            v_n, delivery_status.tenant_id
                USING ERRCODE = '22023', HINT = 'Pass provider_name too, or the delivery_id.';
        END IF;
        SELECT * INTO d FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = delivery_status.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND (delivery_status.provider_name IS NULL OR x.provider_name = delivery_status.provider_name) FOR UPDATE;
    END IF;
    IF d.id IS NULL THEN
        RAISE EXCEPTION 'tenant "%" has no delivery %', delivery_status.tenant_id,
                        CASE WHEN delivery_status.delivery_id IS NOT NULL THEN format('"%s"', delivery_status.delivery_id)
                             WHEN delivery_status.idempotency_key IS NOT NULL THEN format('with idempotency key "%s"', delivery_status.idempotency_key)
                             ELSE format('with provider message id "%s"', delivery_status.provider_message_id) END
            USING ERRCODE = '42704', HINT = 'Deliveries are created by kaireon.create_delivery.';
    END IF;
    IF delivery_status.provider_message_id IS NOT NULL AND d.provider_message_id IS NOT NULL
       AND d.provider_message_id <> delivery_status.provider_message_id THEN
        RAISE EXCEPTION 'delivery "%" has provider message id "%", not "%"', d.id, d.provider_message_id,
                        delivery_status.provider_message_id
            USING ERRCODE = '22023', HINT = 'A delivery keeps the first provider message id it was given.';
    END IF;
    -- a provider's message id names one delivery of the tenant and provider (the unique index
    -- channel_deliveries_provider_message_idx): one already given to another delivery is refused
    IF delivery_status.provider_message_id IS NOT NULL AND d.provider_message_id IS NULL THEN
        SELECT x.id INTO v_s FROM kaireon.channel_deliveries x
         WHERE x.tenant_id = d.tenant_id AND x.provider_message_id = delivery_status.provider_message_id
           AND x.provider_name IS NOT DISTINCT FROM coalesce(d.provider_name, delivery_status.provider_name)
           AND x.id <> d.id
         LIMIT 1;
        IF v_s IS NOT NULL THEN
            RAISE EXCEPTION 'provider message id "%" of provider % already names delivery "%"',
                            delivery_status.provider_message_id,
                            coalesce(format('"%s"', coalesce(d.provider_name, delivery_status.provider_name)), '(none)'), v_s
                USING ERRCODE = '23505',
                      HINT = 'A provider gives each message its own id: name this callback''s delivery by delivery_id or idempotency_key, and check the provider''s id.';
        END IF;
    END IF;
    v_cur := d.status;
    v_result := jsonb_build_object('deliveryId', d.id, 'previousStatus', v_cur);
    IF v_new = v_cur THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'duplicate', 'responses', v_responses);
    END IF;
    IF kaireon_internal._delivery_rank(v_cur) IS NULL
       OR (kaireon_internal._delivery_rank(v_new) IS NULL AND kaireon_internal._delivery_rank(v_cur) > 1) THEN
        RAISE EXCEPTION 'delivery "%" is %: it cannot become %', d.id, v_cur, v_new
            USING ERRCODE = '55000',
                  HINT = 'bounced and failed are final, and a delivery that reached its recipient (delivered, opened, clicked) can no longer bounce or fail.';
    END IF;
    IF kaireon_internal._delivery_rank(v_new) < kaireon_internal._delivery_rank(v_cur) THEN
        RETURN v_result || jsonb_build_object('status', v_cur, 'applied', false, 'reason', 'stale', 'responses', v_responses);
    END IF;
    UPDATE kaireon.channel_deliveries x
       SET status = v_new, status_at = delivery_status.at,
           attempts = CASE WHEN v_new = 'sent' OR v_cur = 'pending' THEN x.attempts + 1 ELSE x.attempts END,
           last_error = coalesce(delivery_status.error, x.last_error),
           provider_message_id = coalesce(x.provider_message_id, delivery_status.provider_message_id),
           provider_name = coalesce(x.provider_name, delivery_status.provider_name)
     WHERE x.tenant_id = d.tenant_id AND x.id = d.id;
    -- a click implies the open it came from: a click before any open records both
    IF v_new = 'clicked' AND kaireon_internal._delivery_rank(v_cur) < 3 THEN
        v_outcomes := ARRAY['opened', 'clicked'];
    ELSIF v_new IN ('opened', 'clicked') THEN
        v_outcomes := ARRAY[v_new];
    END IF;
    IF cardinality(v_outcomes) > 0 THEN
        SELECT h.customer_id, h.recommendation_id, h.rank, h.placement_id INTO ih
          FROM kaireon.interaction_history h
         WHERE h.tenant_id = d.tenant_id AND h.id = d.interaction_id AND h.interaction_type = 'recommendation';
        IF FOUND AND ih.recommendation_id IS NOT NULL THEN
            FOREACH v_s IN ARRAY v_outcomes LOOP
                v_responses := v_responses || jsonb_build_array(kaireon.respond(
                    tenant_id => d.tenant_id, customer_id => ih.customer_id,
                    outcome => CASE v_s WHEN 'opened' THEN 'impression' ELSE 'click' END,
                    recommendation_id => ih.recommendation_id, rank => ih.rank, placement_id => ih.placement_id,
                    idempotency_key => format('delivery:%s:%s', d.id, v_s),
                    occurred_at => delivery_status.at,
                    context => jsonb_build_object('source', 'delivery_status', 'deliveryId', d.id,
                                                  'deliveryStatus', v_s, 'channelType', d.channel_type)));
            END LOOP;
        END IF;
    END IF;
    RETURN v_result || jsonb_build_object('status', v_new, 'applied', true, 'responses', v_responses);
END
$fn$;

COMMENT ON FUNCTION kaireon.delivery_status(text, text, text, text, text, timestamptz, text, text) IS
    'Records a channel provider''s callback about a delivery (named by delivery_id, idempotency_key or provider_message_id): status sent, delivered, opened, clicked (forward on that way; skipping steps is allowed, an earlier status arriving late writes nothing), bounced or failed (only before delivered; final). A repeated callback writes nothing; an illegal transition is 55000 with nothing written. An open becomes an impression outcome and a click a click outcome of the decision through kaireon.respond, once each (a click before any open records both). Returns {deliveryId, previousStatus, status, applied, reason, responses}. See docs/orchestration.md.';

CREATE FUNCTION kaireon_internal._guard_export_checkpoint() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' AND NEW.campaign_run_id IS NOT NULL THEN
        RAISE EXCEPTION 'permission denied to create the export checkpoint of campaign run "%"', NEW.campaign_run_id
            USING ERRCODE = '42501', HINT = 'kaireon.run_schedules creates the checkpoint of a scheduled run it exports (docs/schedules.md).';
    END IF;
    IF TG_OP = 'UPDATE' AND (OLD.campaign_run_id IS NOT NULL OR NEW.campaign_run_id IS NOT NULL)
       AND (OLD.tenant_id, OLD.id, OLD.export_type, OLD.campaign_run_id, OLD.format, OLD.target, OLD.rows_exported,
            OLD.bytes_written, OLD.last_customer_id, OLD.last_rank, OLD.file_path, OLD.status, OLD.last_export_at,
            OLD.created_at)
           IS DISTINCT FROM
           (NEW.tenant_id, NEW.id, NEW.export_type, NEW.campaign_run_id, NEW.format, NEW.target, NEW.rows_exported,
            NEW.bytes_written, NEW.last_customer_id, NEW.last_rank, NEW.file_path, NEW.status, NEW.last_export_at,
            NEW.created_at) THEN
        RAISE EXCEPTION 'permission denied to change the position of export checkpoint "%"', OLD.id
            USING ERRCODE = '42501',
                  HINT = 'Only the scheduler moves an export; set attempts = 0 to let it resume a failed export (docs/schedules.md).';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._guard_export_checkpoint() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of export_checkpoints: a campaign run''s checkpoint is created and moved by the scheduler alone (superusers and BYPASSRLS roles); other roles may only change attempts and error (42501 otherwise). See docs/schedules.md.';
CREATE TRIGGER guard_position BEFORE INSERT OR UPDATE ON kaireon.export_checkpoints
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._guard_export_checkpoint();

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._customer_data_table(text, text),
    kaireon_internal._guard_export_checkpoint() FROM PUBLIC;
-- ==== jevents: end ====

-- ==== flowrest (issue 14: flow A/B tests, a flow's control answer, campaigns' control rows,
-- attribution models position_based and data_driven; docs/lift.md; sql/install/87_lift.sql) ====
CREATE OR REPLACE FUNCTION kaireon.attribute_conversions(tenant_id text, since timestamptz, until timestamptz,
                                              model text DEFAULT 'last_touch',
                                              half_life interval DEFAULT '7 days',
                                              lookback interval DEFAULT '30 days',
                                              outcomes text[] DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rows      integer;
    v_contribution jsonb;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    PERFORM kaireon_internal._check_window(since, until);
    IF model IS NULL OR model NOT IN ('last_touch', 'first_touch', 'linear', 'time_decay', 'position_based',
                                      'data_driven') THEN
        RAISE EXCEPTION 'attribution model "%" is not supported', model USING ERRCODE = '22023',
            HINT = 'Use last_touch, first_touch, linear, time_decay, position_based or data_driven.';
    END IF;
    IF half_life IS NULL OR half_life <= interval '0' THEN
        RAISE EXCEPTION 'half_life must be a positive interval, not %', half_life USING ERRCODE = '22023',
            HINT = 'Pass e.g. interval ''7 days''.';
    END IF;
    IF lookback IS NULL OR lookback <= interval '0' THEN
        RAISE EXCEPTION 'lookback must be a positive interval, not %', lookback USING ERRCODE = '22023',
            HINT = 'Pass how far before a conversion a recommendation counts, e.g. interval ''30 days''.';
    END IF;

    IF model = 'data_driven' THEN
        -- each offer's contribution by Shao and Li's probabilistic model over the window's
        -- paths (docs/lift.md): a path is a customer's set of offers recommended in
        -- [since - lookback, until), converted when the customer has a conversion in the window;
        -- C(i) = P(y | i) + sum over the offers j seen with i of (P(y | i, j) - P(y | i) - P(y | j))
        -- / (2 * their number)
        WITH paths AS (
            SELECT r.customer_id, array_agg(DISTINCT r.offer_id) AS offers
              FROM kaireon.interaction_history r
             WHERE r.tenant_id = attribute_conversions.tenant_id AND r.interaction_type = 'recommendation'
               AND r.offer_id IS NOT NULL
               AND r.occurred_at >= since - lookback AND r.occurred_at < until
             GROUP BY r.customer_id
        ), converted AS (
            SELECT p.offers, EXISTS (
                       SELECT 1 FROM kaireon.interaction_history h
                        WHERE h.tenant_id = attribute_conversions.tenant_id AND h.customer_id = p.customer_id
                          AND h.interaction_type = 'outcome' AND h.occurred_at >= since AND h.occurred_at < until
                          AND CASE WHEN outcomes IS NULL
                                   THEN h.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                                WHERE ot.tenant_id = attribute_conversions.tenant_id
                                                                  AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                                   ELSE h.outcome_type_key = ANY (outcomes) END)::int::float8 AS y
              FROM paths p
        ), singles AS (
            SELECT i.offer, avg(c.y) AS p1 FROM converted c, unnest(c.offers) AS i (offer) GROUP BY i.offer
        ), pairs AS (
            SELECT i.offer AS i, j.offer AS j, avg(c.y) AS p2
              FROM converted c, unnest(c.offers) AS i (offer), unnest(c.offers) AS j (offer)
             WHERE i.offer <> j.offer
             GROUP BY i.offer, j.offer
        )
        SELECT coalesce(jsonb_object_agg(s.offer, s.p1 + coalesce(
                   (SELECT sum(pr.p2 - s.p1 - sj.p1) / (2 * count(*))
                      FROM pairs pr JOIN singles sj ON sj.offer = pr.j
                     WHERE pr.i = s.offer), 0)), '{}')
          INTO v_contribution
          FROM singles s;
    END IF;

    -- idempotent: the window's conversions lose their earlier results of this model
    DELETE FROM kaireon.attribution_results a
     WHERE a.tenant_id = attribute_conversions.tenant_id AND a.model = attribute_conversions.model
       AND a.conversion_id IN (SELECT h.id FROM kaireon.interaction_history h
                                WHERE h.tenant_id = attribute_conversions.tenant_id
                                  AND h.interaction_type = 'outcome'
                                  AND h.occurred_at >= since AND h.occurred_at < until);

    INSERT INTO kaireon.attribution_results (tenant_id, customer_id, conversion_id, model, touchpoints, total_value)
    WITH conversions AS (
        SELECT h.id, h.customer_id, h.occurred_at,
               coalesce(h.conversion_value, off.value, 0) AS value
          FROM kaireon.interaction_history h
          LEFT JOIN kaireon.offers off ON off.tenant_id = h.tenant_id AND off.id = h.offer_id
         WHERE h.tenant_id = attribute_conversions.tenant_id AND h.interaction_type = 'outcome'
           AND h.occurred_at >= since AND h.occurred_at < until
           AND CASE WHEN outcomes IS NULL
                    THEN h.outcome_type_key IN (SELECT ot.key FROM kaireon.outcome_types ot
                                                 WHERE ot.tenant_id = attribute_conversions.tenant_id
                                                   AND ot.classification = 'positive' AND ot.deleted_at IS NULL)
                    ELSE h.outcome_type_key = ANY (outcomes) END
    ), touches AS (
        SELECT cv.id AS conversion_id, r.id, r.recommendation_id, r.offer_id, r.occurred_at,
               row_number() OVER w_last AS from_last,
               row_number() OVER w_first AS from_first,
               count(*) OVER (PARTITION BY cv.id) AS n,
               -- data_driven: the offer's contribution (at least 0), shared by its touches here
               greatest(coalesce((v_contribution ->> r.offer_id)::float8, 0), 0)
                   / count(*) OVER (PARTITION BY cv.id, r.offer_id) AS contribution,
               -- halved per half_life of age, counted from the newest touch (weight 1): the
               -- weights' ratios are those of the age from the conversion, and none underflows
               power(2::float8, greatest(-extract(epoch FROM max(r.occurred_at) OVER (PARTITION BY cv.id) - r.occurred_at)
                                         / extract(epoch FROM half_life), -1000)) AS decay
          FROM conversions cv
          JOIN kaireon.interaction_history r
            ON r.tenant_id = attribute_conversions.tenant_id AND r.customer_id = cv.customer_id
           AND r.interaction_type = 'recommendation'
           AND r.occurred_at <= cv.occurred_at AND r.occurred_at >= cv.occurred_at - lookback
        WINDOW w_last AS (PARTITION BY cv.id ORDER BY r.occurred_at DESC, r.id DESC),
               w_first AS (PARTITION BY cv.id ORDER BY r.occurred_at, r.id)
    ), weighted AS (
        SELECT t.*, CASE model
                        WHEN 'last_touch' THEN CASE WHEN t.from_last = 1 THEN 1 ELSE 0 END
                        WHEN 'first_touch' THEN CASE WHEN t.from_first = 1 THEN 1 ELSE 0 END
                        WHEN 'linear' THEN 1.0 / t.n
                        -- U-shaped: 40% each to the first and the last, 20% shared by the others
                        -- (one touch: all; two: half each)
                        WHEN 'position_based' THEN CASE WHEN t.n = 1 THEN 1
                                                        WHEN t.n = 2 THEN 0.5
                                                        WHEN t.from_first = 1 OR t.from_last = 1 THEN 0.4
                                                        ELSE 0.2 / (t.n - 2) END
                        -- by contribution; linear when no touch has any
                        WHEN 'data_driven' THEN coalesce(t.contribution / nullif(sum(t.contribution) OVER (PARTITION BY t.conversion_id), 0),
                                                         1.0 / t.n)
                        ELSE t.decay / sum(t.decay) OVER (PARTITION BY t.conversion_id) END::float8 AS weight
          FROM touches t
    )
    SELECT attribute_conversions.tenant_id, cv.customer_id, cv.id, model,
           jsonb_agg(jsonb_build_object('interactionId', w.id, 'recommendationId', w.recommendation_id,
                                        'offerId', w.offer_id, 'occurredAt', w.occurred_at,
                                        'weight', w.weight, 'credit', w.weight * cv.value::float8)
                     ORDER BY w.occurred_at, w.id),
           cv.value
      FROM conversions cv
      JOIN weighted w ON w.conversion_id = cv.id
     GROUP BY cv.id, cv.customer_id, cv.value;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END
$fn$;
COMMENT ON FUNCTION kaireon.attribute_conversions(text, timestamptz, timestamptz, text, interval, interval, text[]) IS
    'Credits each conversion (an outcome of the given keys, default the positive ones) in [since, until) to the customer''s recommendations in the lookback before it, by model last_touch, first_touch, linear, time_decay (weight 2^(-age/half_life), normalised), position_based (40% first, 40% last, 20% shared by the others) or data_driven (each offer''s contribution by Shao and Li''s probabilistic model over the window''s paths), into attribution_results: one row per conversion with touchpoints [{interactionId, recommendationId, offerId, occurredAt, weight, credit}] and total_value (conversion_value, else the offer''s value). Re-running a window replaces its rows of that model. Returns the rows written. See docs/lift.md.';

-- Flow A/B tests (docs/lift.md, "Flow A/B tests"): an experiment whose traffic_split is
-- {"flows": {flowKey: weight}} splits the customers of a decision flow naming it
-- (flowExperiment) between those flows; recommend assigns each customer once, in
-- variant_assignments (src/decision/flow_experiments.c), from the arms compiled with the
-- configuration (src/config/cache.c).

CREATE FUNCTION kaireon_internal._check_flow_experiment() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_arms      jsonb := NEW.traffic_split -> 'flows';
    v_total     double precision := 0;
    v_flow      record;
    r           record;
BEGIN
    IF v_arms IS NULL THEN
        RETURN NEW;             -- a champion/challenger experiment of models
    END IF;
    IF jsonb_typeof(v_arms) <> 'object' OR v_arms = '{}' OR (SELECT count(*) FROM jsonb_object_keys(NEW.traffic_split)) > 1 THEN
        RAISE EXCEPTION 'experiment "%": traffic_split must be {"flows": {flowKey: weight, ...}} with at least one flow, not %',
                        NEW.key, NEW.traffic_split
            USING ERRCODE = '22023', HINT = 'For example {"flows": {"main": 50, "main-v2": 50}}; see docs/lift.md.';
    END IF;
    IF NEW.champion_model_id IS NOT NULL OR NEW.holdout_percent <> 0 THEN
        RAISE EXCEPTION 'experiment "%" splits traffic between decision flows: it takes no champion model and no holdout_percent', NEW.key
            USING ERRCODE = '22023',
                  HINT = 'Hold customers out with the flows'' controlGroupPercent; compare models in an experiment of its own.';
    END IF;
    FOR r IN SELECT a.key, a.value FROM jsonb_each(v_arms) a ORDER BY a.key LOOP
        IF (CASE WHEN jsonb_typeof(r.value) <> 'number' THEN true
                 ELSE r.value::text::numeric < 0 OR NOT kaireon_internal._is_finite(r.value::text::numeric) END) THEN
            RAISE EXCEPTION 'experiment "%": arm "%" has weight %, not a non-negative finite number', NEW.key, r.key,
                CASE WHEN length(r.value::text) > 32 THEN left(r.value::text, 32) || '...' ELSE r.value::text END
                USING ERRCODE = '22023', HINT = 'Weights are non-negative numbers, in any unit (shares of their sum).';
        END IF;
        v_total := v_total + r.value::text::double precision;
        SELECT f.status, f.published_version INTO v_flow FROM kaireon.decision_flows f
         WHERE f.tenant_id = NEW.tenant_id AND f.key = r.key AND f.deleted_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names no decision flow of tenant "%"', NEW.key, r.key, NEW.tenant_id
                USING ERRCODE = '42704', HINT = 'Each key of traffic_split.flows is the key of a published decision flow.';
        END IF;
        IF v_flow.status <> 'published' OR v_flow.published_version IS NULL THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names decision flow "%", which is not published (status %)',
                            NEW.key, r.key, r.key, v_flow.status
                USING ERRCODE = '55000', HINT = 'Publish it with kaireon.publish_decision_flow first.';
        END IF;
    END LOOP;
    IF v_total <= 0 THEN
        RAISE EXCEPTION 'experiment "%": the arms'' weights add up to 0', NEW.key
            USING ERRCODE = '22023', HINT = 'Give some arm a weight.';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_flow_experiment() IS
    'Internal: BEFORE trigger on experiments refusing a flow A/B test (traffic_split {"flows": {flowKey: weight}}) whose split is malformed, whose weights are negative, not finite or all 0 (22023), that names a champion model or a holdout (22023), or whose arm names no decision flow of the tenant (42704) or an unpublished one (55000). See docs/lift.md.';
CREATE TRIGGER check_flow_experiment
    BEFORE INSERT OR UPDATE OF traffic_split, status, champion_model_id, holdout_percent ON kaireon.experiments
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_flow_experiment();

-- the configuration cache compiles the flow experiments: their key, status and split
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OF key, status, traffic_split
    ON kaireon.experiments FOR EACH ROW EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.experiments',
    '(OLD.key, OLD.status, OLD.traffic_split) IS DISTINCT FROM (NEW.key, NEW.status, NEW.traffic_split)');

-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._check_flow_experiment() FROM PUBLIC;
-- ==== end of flowrest ====

-- ==== perfscale (issue 17: scale XL, memory of the compiled configuration, recording costs;
-- docs/performance.md; sql/install/86_statistics.sql) ====
CREATE FUNCTION kaireon.config_cache_stats()
    RETURNS TABLE (tenant_id text, version bigint, memory_bytes bigint, offers integer, creatives integer,
                   rules integer, policies integer)
    AS 'MODULE_PATHNAME', 'kaireon_config_cache_stats'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION kaireon.config_cache_stats() IS
    'One row per tenant configuration compiled and cached in this backend (each backend compiles its own on its first recommend or respond for the tenant): its version, the bytes of its memory context (MemoryContextMemAllocated: the compiled structs, bound rules and policies per offer, parsed JSON; not the kept query plans) and its counts of offers, creatives, qualification rules and contact policies. Shows the tenants the caller may see (as kaireon.stat_decisions). Superusers and admin roles only. See docs/performance.md.';
-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon.config_cache_stats() FROM PUBLIC;
-- the finite-number checks of every numeric and double precision column in C (src/util/finite.c):
-- a SQL function in a CHECK is inlined again by every statement that prepares the constraints
CREATE OR REPLACE FUNCTION kaireon_internal._is_finite(value double precision) RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_is_finite_float8'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION kaireon_internal._is_finite(value numeric) RETURNS boolean
    AS 'MODULE_PATHNAME', 'kaireon_is_finite_numeric'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- ==== end of perfscale ====

-- ==== flow graphs (issue 14 item 1: draft_config version 2, docs/flows.md) ====
CREATE FUNCTION kaireon_internal._check_flow_calls() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_flow_calls'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_flow_calls() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on decision_flows refusing (22023, naming the flow and node) a published version 2 flow whose call_flow names no published flow of the tenant, nests calls deeper than 8 flows, or closes a cycle of calls.';
CREATE TRIGGER check_flow_calls BEFORE INSERT OR UPDATE OF published_versions, published_version
    ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_flow_calls();
-- (a fresh install's 99_finalize.sql takes EXECUTE on every routine from PUBLIC)
REVOKE ALL ON FUNCTION kaireon_internal._check_flow_calls() FROM PUBLIC;
-- ==== end of flow graphs ====

-- ==== merge of the journey engine's fix (jengine: the key in its own type) and jevents' one home
-- for the customer data table: _journey_condition as sql/install/49_journey_engine.sql has it ====
CREATE OR REPLACE FUNCTION kaireon_internal._journey_condition(p_tenant text, p_customer text, p_when jsonb, p_at timestamptz)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_table     text;
    v_key       text;
    v_key_type  text;
    v_key_text  boolean;
    v_value     jsonb;
    v_want      jsonb := p_when -> 'value';
    v_cmp       integer;
BEGIN
    IF p_when ? 'segmentId' THEN
        RETURN kaireon.is_segment_member(p_tenant, p_when ->> 'segmentId', p_customer);
    ELSIF p_when ? 'outcome' THEN
        RETURN EXISTS (SELECT 1 FROM kaireon.interaction_history ih
                        WHERE ih.tenant_id = p_tenant AND ih.customer_id = p_customer
                          AND ih.interaction_type = 'outcome' AND ih.outcome_type_key = p_when ->> 'outcome'
                          AND ih.occurred_at <= p_at
                          AND (NOT p_when ? 'withinDays'
                               OR ih.occurred_at >= p_at - make_interval(days => (p_when ->> 'withinDays')::integer)));
    ELSIF p_when ? 'experimentId' THEN
        RETURN (SELECT a.variant FROM kaireon.assign_experiment(p_tenant, p_when ->> 'experimentId', p_customer) a)
               = p_when ->> 'arm';
    END IF;
    -- an attribute of the customer's row in the tenant's first published customer data schema,
    -- read through its primary key (tenant_id, key): the key compared in its own type (compared
    -- as text it would read the whole table); an id that is no value of that type has no row
    SELECT c.table_name, c.key_column INTO v_table, v_key FROM kaireon_internal._customer_data_table(p_tenant) c;
    SELECT a.atttypid IN ('text'::regtype, 'varchar'::regtype), format_type(a.atttypid, NULL)
      INTO v_key_text, v_key_type
      FROM pg_attribute a
     WHERE a.attrelid = to_regclass(v_table) AND quote_ident(a.attname) = v_key AND NOT a.attisdropped;
    IF v_table IS NULL OR v_key IS NULL OR v_key_type IS NULL THEN
        RETURN false;
    END IF;
    IF v_key_text THEN
        EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%s = $1', v_table, v_key)
           INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
    ELSE
        BEGIN
            EXECUTE format('SELECT to_jsonb(x) -> $2 FROM %s x WHERE x.tenant_id = $3 AND x.%s = $1::%s',
                           v_table, v_key, v_key_type)
               INTO v_value USING p_customer, p_when ->> 'attribute', p_tenant;
        EXCEPTION WHEN data_exception THEN
            RETURN false;   -- the id is no value of the key's type: no row
        END;
    END IF;
    IF v_value IS NULL OR jsonb_typeof(v_value) = 'null' THEN
        RETURN false;       -- no row, or no value: no condition holds
    END IF;
    CASE p_when ->> 'operator'
        WHEN 'eq' THEN RETURN v_value = v_want;
        WHEN 'neq' THEN RETURN v_value <> v_want;
        WHEN 'in' THEN RETURN v_want @> jsonb_build_array(v_value);
        WHEN 'not_in' THEN RETURN NOT v_want @> jsonb_build_array(v_value);
        ELSE
            IF jsonb_typeof(v_value) = 'number' AND jsonb_typeof(v_want) = 'number' THEN
                v_cmp := sign((v_value #>> '{}')::numeric - (v_want #>> '{}')::numeric);
            ELSIF jsonb_typeof(v_value) = 'string' AND jsonb_typeof(v_want) = 'string' THEN
                v_cmp := CASE WHEN (v_value #>> '{}') COLLATE "C" < (v_want #>> '{}') COLLATE "C" THEN -1
                              WHEN (v_value #>> '{}') = (v_want #>> '{}') THEN 0 ELSE 1 END;
            ELSE
                RETURN false;   -- a number and a string do not compare
            END IF;
            RETURN CASE p_when ->> 'operator' WHEN 'gt' THEN v_cmp > 0 WHEN 'gte' THEN v_cmp >= 0
                                              WHEN 'lt' THEN v_cmp < 0 WHEN 'lte' THEN v_cmp <= 0 END;
    END CASE;
END
$fn$;
-- ==== end of the merge of _journey_condition ====

-- ==== segment entry of journeys (issue 15 item 1: sql/install/49_journey_engine.sql, the journeys job) ====
-- Segment entry (docs/journeys.md, "Enrolment"): the members of the segment named by the
-- entry_trigger of a journey's latest published version who never entered it, enrolled.
CREATE FUNCTION kaireon_internal._journey_segment_entries(p_tenant text, p_at timestamptz, p_max integer)
    RETURNS TABLE (journey_id text, customer_id text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    j           record;
    v_left      integer := p_max;
    v_customer  text;
    v_result    jsonb;
    v_entered   text[];
BEGIN
    -- (JSON paths, not joins to jsonb_array_elements: Citus plans the statement on the shards)
    FOR j IN SELECT x.id,
                    jsonb_path_query_first(x.published_versions,
                        '$[*] ? (@.version == $v).definition.steps[*] ? (@.type == "entry_trigger").segmentId',
                        jsonb_build_object('v', x.published_version)) #>> '{}' AS segment_id
               FROM kaireon.journeys x
              WHERE x.tenant_id = p_tenant AND x.status = 'active' AND x.published_version IS NOT NULL
                AND jsonb_path_exists(x.published_versions,
                        '$[*] ? (@.version == $v).definition.steps[*] ? (@.type == "entry_trigger" && exists(@.segmentId))',
                        jsonb_build_object('v', x.published_version))
              ORDER BY x.id
    LOOP
        EXIT WHEN v_left <= 0;
        -- a member enters once by its membership (re-entry, where allowed, is an event's);
        -- the enrolments are read through (tenant_id, journey_id, customer_id). A journey's
        -- rows are returned once its block has committed: a failure rolls its enrolments back,
        -- and they must not be reported
        v_entered := '{}';
        BEGIN
        FOR v_customer IN EXECUTE format(
            'SELECT m.customer_id FROM %s m
              WHERE NOT EXISTS (SELECT 1 FROM kaireon.journey_enrollments n
                                 WHERE n.tenant_id = $1 AND n.journey_id = $2 AND n.customer_id = m.customer_id)
              ORDER BY m.customer_id LIMIT $3',
            kaireon_internal._segment_view(p_tenant, j.segment_id)) USING p_tenant, j.id, v_left
        LOOP
            v_result := kaireon.enroll_in_journey(p_tenant, j.id, v_customer,
                                                  jsonb_build_object('source', 'segment', 'segmentId', j.segment_id), p_at);
            IF (v_result ->> 'enrolled')::boolean THEN
                v_entered := v_entered || v_customer;
            END IF;
        END LOOP;
        EXCEPTION WHEN OTHERS THEN
            -- a segment no longer published (or unreadable), or an enrolment that fails, skips
            -- its journey (rolled back), not the others
            v_entered := '{}';
            RAISE WARNING 'journey "%" of tenant "%": its segment entries (segment "%") failed: %',
                j.id, p_tenant, j.segment_id, SQLERRM;
        END;
        FOREACH v_customer IN ARRAY v_entered LOOP
            journey_id := j.id;
            customer_id := v_customer;
            RETURN NEXT;
        END LOOP;
        v_left := v_left - cardinality(v_entered);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_segment_entries(text, timestamptz, integer) IS
    'Internal: enrols at p_at, through kaireon.enroll_in_journey (reason {"source": "segment", "segmentId"}), up to p_max members of the segment named by the entry_trigger of each active journey''s latest published version who never entered that journey; one row per enrolment. Run confined to the tenant by kaireon.enroll_journey_segments. See docs/journeys.md.';

CREATE FUNCTION kaireon.enroll_journey_segments(tenant_id text DEFAULT NULL, at timestamptz DEFAULT now(),
                                                max_customers integer DEFAULT 1000)
    RETURNS TABLE (journey_tenant_id text, journey_id text, customer_id text)
    AS 'MODULE_PATHNAME', 'kaireon_enroll_journey_segments'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.enroll_journey_segments(text, timestamptz, integer) IS
    'Segment entry of journeys, as of at (default now; tests pin it): for each tenant (tenant_id, or every tenant the caller sees) with active published journeys whose entry_trigger names a segmentId, confined to that tenant, enrols up to max_customers members of those segments who never entered the journey (kaireon.enroll_in_journey); a journey whose segment cannot be read (say, unpublished) is skipped with a warning, the others go on. One row per enrolment. The maintenance job journeys calls it before advancing. See docs/journeys.md.';
REVOKE ALL ON FUNCTION kaireon_internal._journey_segment_entries(text, timestamptz, integer),
    kaireon.enroll_journey_segments(text, timestamptz, integer) FROM PUBLIC;
CREATE OR REPLACE FUNCTION kaireon.maintenance_jobs()
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
        (8, 'dual_prices', 'kaireon.dual_price_schedule', 'kaireon.update_dual_prices(), when installed (real-time Lagrangian arbitration)'),
        (9, 'alerts', 'kaireon.alert_schedule', 'kaireon.evaluate_alerts in batches of kaireon.alert_batch_size until every active rule was evaluated'),
        (10, 'schedules', 'kaireon.campaign_schedule', 'kaireon.run_schedules: due scheduled campaign runs, then their pending export batches, one per transaction'),
        (11, 'journeys', 'kaireon.journey_schedule', 'segment entries (kaireon.enroll_journey_segments), then kaireon.advance_journeys in batches of kaireon.journey_batch_size due enrolments, one transaction per batch, until fewer are due')
      ) AS j (n, job, setting, does)
     ORDER BY j.n
$fn$;
-- ==== end of segment entry ====

-- ==== recommend's row type (issue 17: the statement's cost outside recommend;
-- sql/install/45_decisioning_api.sql, docs/performance.md) ====
-- RETURNS TABLE becomes RETURNS SETOF kaireon.recommendation (the same columns): the row type
-- of a RETURNS TABLE function is rebuilt from pg_proc three times a statement. A return type
-- cannot be changed in place, so the function is dropped and created again; on a Citus
-- coordinator, kaireon.distribute() run again delegates it again (docs/scale-out.md).
DROP FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb);
CREATE TYPE kaireon.recommendation AS (rank integer, offer_id text, offer_name text, category_id text,
                                       creative_id text, placement_id text, score double precision,
                                       propensity double precision, recommendation_id text,
                                       interaction_id text, explanation jsonb);
COMMENT ON TYPE kaireon.recommendation IS
    'A row of kaireon.recommend: one decision (rank 1..n; with options.debug, dropped candidates follow with NULL rank). See docs/recommend.md.';
CREATE FUNCTION kaireon.recommend(tenant_id text, customer_id text, channel text,
                                  placement text DEFAULT NULL, context jsonb DEFAULT '{}',
                                  max_offers integer DEFAULT NULL, decision_flow text DEFAULT NULL,
                                  options jsonb DEFAULT '{}')
    RETURNS SETOF kaireon.recommendation
    AS '$libdir/kaireon', 'kaireon_recommend'
    LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb) FROM PUBLIC;
COMMENT ON FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb) IS
    'The real-time decision: ranked, policy-checked, scored offers for a customer on a channel (and placement), recorded in the caller''s transaction unless options.dry_run. Options: dry_run, debug (dropped candidates follow as rows without rank), trace, exclude_offers, exclude_creatives, placements, deduplicate, explain (false: the decisions'' explanation column is NULL, not built). See docs/recommend.md.';
-- ==== end of recommend's row type ====

-- ==== recording (s7-rec; issue 17: checked references instead of interaction_history's foreign
-- keys; sql/install/20_customer.sql, 95_distribute.sql, src/config/references.c;
-- docs/schema.md "Checked references") ====
CREATE FUNCTION kaireon_internal._checked_references()
    RETURNS TABLE (child name, child_column name, parent name, parent_column name, on_delete text)
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES ('decision_locks'::name, 'tenant_id'::name, 'tenants'::name, 'id'::name, 'cascade'),
           ('interaction_history', 'tenant_id', 'tenants', 'id', 'cascade'),
           ('interaction_history', 'offer_id', 'offers', 'id', 'set null'),
           ('interaction_history', 'creative_id', 'creatives', 'id', 'set null')
$fn$;
COMMENT ON FUNCTION kaireon_internal._checked_references() IS
    'Internal: the checked references (docs/schema.md): references of a kaireon table served by the triggers "Check_references" and "Checked_references" instead of a foreign key; child_column tenant_id refers to the tenant, any other to (tenant_id, parent_column) of its parent; on_delete says what deleting the parent does (cascade: the tenant''s rows go; set null).';

CREATE FUNCTION kaireon_internal._check_references() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_references'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_references() IS
    'BEFORE INSERT OR UPDATE row trigger "Check_references" of a table with checked references (arguments: column, referenced table, referenced column, per reference): takes the tenant''s reference lock in share mode and raises 23503 when a referenced row does not exist (latest snapshot).';

CREATE FUNCTION kaireon_internal._checked_reference_changed() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_checked_reference_changed'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._checked_reference_changed() IS
    'AFTER DELETE OR UPDATE row trigger "Checked_references" of a table checked references point to (arguments: table, column, referenced column, action per reference): takes the tenant''s reference lock in exclusive mode, then on delete deletes (cascade) or sets to NULL (set null) the tenant''s referencing rows, as their table''s owner; a key change that rows refer to raises 23503.';

CREATE FUNCTION kaireon_internal._create_checked_reference_triggers() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r           record;
BEGIN
    -- checked in the list's order (the tenant first: a row of a missing tenant says so)
    FOR r IN
        SELECT c.child,
               string_agg(quote_ident(c.child_column), ', ' ORDER BY c.n) AS cols,
               string_agg(format('%L, %L, %L', c.child_column, c.parent, c.parent_column), ', ' ORDER BY c.n) AS args
          FROM kaireon_internal._checked_references() WITH ORDINALITY
               AS c (child, child_column, parent, parent_column, on_delete, n)
         GROUP BY c.child
         ORDER BY c.child
    LOOP
        EXECUTE format('CREATE TRIGGER "Check_references" BEFORE INSERT OR UPDATE OF %s ON kaireon.%I'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_references(%s)',
                       r.cols, r.child, r.args);
    END LOOP;
    -- (a referenced row's key: (tenant_id, parent_column), or the tenants' parent_column)
    FOR r IN
        SELECT c.parent,
               CASE WHEN c.parent = 'tenants' THEN '' ELSE 'tenant_id, ' END
                   || string_agg(DISTINCT quote_ident(c.parent_column), ', ') AS keys,
               string_agg(format('%L, %L, %L, %L', c.child, c.child_column, c.parent_column, c.on_delete), ', '
                          ORDER BY c.n) AS args
          FROM kaireon_internal._checked_references() WITH ORDINALITY
               AS c (child, child_column, parent, parent_column, on_delete, n)
         GROUP BY c.parent
         ORDER BY c.parent
    LOOP
        EXECUTE format('CREATE TRIGGER "Checked_references" AFTER DELETE OR UPDATE OF %s ON kaireon.%I'
                       ' FOR EACH ROW EXECUTE FUNCTION kaireon_internal._checked_reference_changed(%s)',
                       r.keys, r.parent, r.args);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._create_checked_reference_triggers() IS
    'Internal: creates the triggers of kaireon_internal._checked_references(): "Check_references" on each referencing table, "Checked_references" on each referenced one (install and upgrade).';
REVOKE ALL ON FUNCTION kaireon_internal._checked_references(), kaireon_internal._check_references(),
    kaireon_internal._checked_reference_changed(), kaireon_internal._create_checked_reference_triggers() FROM PUBLIC;
-- the optional references of offers and creatives no longer list interaction_history (its
-- references are checked ones: the trigger "Checked_references" sets them to NULL)
DROP TRIGGER "On_delete_set_null" ON kaireon.offers;
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.offers FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('impressions', 'offer_id', 'id');
DROP TRIGGER "On_delete_set_null" ON kaireon.creatives;
CREATE TRIGGER "On_delete_set_null" AFTER DELETE ON kaireon.creatives FOR EACH ROW EXECUTE FUNCTION kaireon.on_delete_set_null('impressions', 'creative_id', 'id');
SELECT kaireon_internal._create_checked_reference_triggers();
-- the foreign keys the checked references replace go (their clones on partitions with them),
-- except on a Citus cluster where kaireon.distribute() placed the table: there they stay, as
-- distribute() leaves them, without the trigger "Check_references" (docs/scale-out.md)
DO $checked_references$
DECLARE
    r           record;
BEGIN
    FOR r IN
        SELECT DISTINCT c.child, fk.conname, kaireon_internal._citus_table_type(fk.conrelid) IS NOT NULL AS on_citus
          FROM kaireon_internal._checked_references() c
          JOIN pg_constraint fk ON fk.conrelid = format('kaireon.%I', c.child)::regclass AND fk.contype = 'f'
                               AND fk.conparentid = 0 AND fk.confrelid = format('kaireon.%I', c.parent)::regclass
                               AND (SELECT attname FROM pg_attribute WHERE attrelid = fk.conrelid
                                       AND attnum = fk.conkey[cardinality(fk.conkey)]) = c.child_column
         ORDER BY 1, 2
    LOOP
        IF r.on_citus THEN
            EXECUTE format('DROP TRIGGER IF EXISTS "Check_references" ON kaireon.%I', r.child);
        ELSE
            EXECUTE format('ALTER TABLE kaireon.%I DROP CONSTRAINT %I', r.child, r.conname);
        END IF;
    END LOOP;
END
$checked_references$;
-- kaireon.distribute() makes the checked references foreign keys on Citus
CREATE OR REPLACE FUNCTION kaireon.distribute(shard_count integer DEFAULT NULL)
    RETURNS TABLE (table_name text, placement text, distribution_column text, colocated_with text,
                   shards integer, changed boolean)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_version   text;
    v_bad       text;               -- what a check found wrong
    v_table     text;
    v_stmt      text;
    v_tables    text[] := '{}';
    v_tenant_tables text[] := '{}';     -- those of v_tables with a tenant_id column
    r           record;
    i           integer;
    v_changed   text[] := '{}';
    v_local_rows text[] := '{}';
    v_has_rows  boolean;
    v_schemas   text[];
    v_triggers  text[] := '{}';
    v_done      integer := 0;       -- tables placed (kaireon.progress)
BEGIN
    -- 0. A superuser's operation (it changes every table, the database's settings and roles).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'kaireon.distribute() must be run by a superuser, not by role "%"', current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Connect to the coordinator as a superuser (it places every table and changes the database''s settings).';
    END IF;
    -- 1. Citus, on its coordinator, with kaireon of this version on every worker.
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'kaireon.distribute() needs the Citus extension, which is not installed in database %', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'kaireon runs on one server as it is; to scale out, install Citus (its own packages) on every node, CREATE EXTENSION citus and kaireon on each, add the workers, then call kaireon.distribute() on the coordinator. See docs/scale-out.md.';
    END IF;
    IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
        RAISE EXCEPTION 'shard_count % is out of range', shard_count
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass 1 to 64000, or NULL for citus.shard_count.';
    END IF;
    IF NOT kaireon_internal._citus_coordinator() THEN
        RAISE EXCEPTION 'kaireon.distribute() runs on the Citus coordinator, and this node is not it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Connect to the coordinator (citus_set_coordinator_host) and call it there.';
    END IF;
    SELECT extversion INTO v_version FROM pg_extension WHERE extname = 'kaireon';
    EXECUTE format($q$SELECT string_agg(format('%%s:%%s (%%s)', nodename, nodeport, coalesce(nullif(result, ''), 'no kaireon')), ', ')
                        FROM pg_catalog.run_command_on_workers(%L)
                       WHERE NOT success OR result IS DISTINCT FROM %L$q$,
                   'SELECT extversion FROM pg_extension WHERE extname = ''kaireon''', v_version)
        INTO v_bad;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'kaireon % is not installed on every worker: %', v_version, v_bad
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Install the same kaireon package on every node and run CREATE EXTENSION kaireon in this database on each worker, before kaireon.distribute().';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' AND isactive AND groupid <> 0) THEN
        RAISE EXCEPTION 'the Citus cluster has no worker'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Add the workers with citus_add_node first.';
    END IF;

    -- kaireon.progress shows the placement as it goes (the row goes at the end, or with an error)
    PERFORM kaireon_internal._progress_start('distribute', NULL, NULL);
    PERFORM kaireon_internal._progress_update('listing tables', 0, NULL);

    -- Triggers on distributed tables (kaireon's validation, audit and invalidation triggers
    -- run on the shards, and touch only the tenant's co-located shards); one connection per
    -- node, as Citus needs when a transaction distributes tables with foreign keys.
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- (Citus's notices about each table it copies: the layout is the answer)
    PERFORM set_config('client_min_messages', 'warning', true);
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    IF shard_count IS NOT NULL THEN
        PERFORM set_config('citus.shard_count', shard_count::text, true);
    END IF;

    -- 2. The tables to place: tenants first, then every table of schema kaireon.
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relname,
               CASE WHEN c.relname = 'tenants' THEN 'id'
                    WHEN a.attname IS NOT NULL THEN 'tenant_id' END AS dist_col,
               kaireon_internal._citus_table_type(c.oid) AS now_type
          FROM pg_class c
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relname <> 'tenants', c.relname
    LOOP
        IF r.now_type IS NULL AND (r.dist_col IS NOT NULL OR r.relname <> ALL (ARRAY(SELECT kaireon_internal._node_local_tables()))) THEN
            v_tables := v_tables || r.relname::text;
            IF r.dist_col = 'tenant_id' THEN
                v_tenant_tables := v_tenant_tables || r.relname::text;
            END IF;
        END IF;
    END LOOP;

    -- The checked references (docs/schema.md) become foreign keys: their trigger finds the
    -- referenced rows in the referenced table's own storage, which on a Citus node is not
    -- where its shards' rows are. (The referenced tables' trigger "Checked_references" stays:
    -- it deletes or sets to NULL what refers to a deleted row, on the tenant's shards.)
    FOR r IN
        SELECT c.child, c.child_column, c.parent, c.parent_column, c.on_delete
          FROM kaireon_internal._checked_references() c
         WHERE c.child::text = ANY (v_tables)
         ORDER BY c.child, c.child_column
    LOOP
        EXECUTE format('ALTER TABLE kaireon.%I ADD FOREIGN KEY (%s) REFERENCES kaireon.%I (%s) ON DELETE %s',
                       r.child,
                       CASE WHEN r.child_column = 'tenant_id' THEN 'tenant_id' ELSE format('tenant_id, %I', r.child_column) END,
                       r.parent,
                       CASE WHEN r.child_column = 'tenant_id' THEN quote_ident(r.parent_column) ELSE format('tenant_id, %I', r.parent_column) END,
                       CASE r.on_delete WHEN 'cascade' THEN 'CASCADE' ELSE 'NO ACTION' END);
        EXECUTE format('DROP TRIGGER IF EXISTS "Check_references" ON kaireon.%I', r.child);
    END LOOP;

    IF cardinality(v_tables) > 0 THEN
        -- 3. The order: Citus places a table only after every table it references, so the
        --    tables go by the depth of their foreign keys (reference tables first: a
        --    reference table may not reference a distributed one).
        SELECT array_agg(t ORDER BY lvl, t) INTO v_tables
          FROM (SELECT t, CASE WHEN t = 'tenants' THEN 999
                          ELSE kaireon_internal._fkey_depth(format('kaireon.%I', t)::regclass)
                               + CASE WHEN t = ANY (v_tenant_tables) THEN 1000 ELSE 0 END END AS lvl
                  FROM unnest(v_tables) t) o;
        FOREACH v_table IN ARRAY v_tables LOOP
            EXECUTE format('SELECT EXISTS (SELECT FROM ONLY kaireon.%I)', v_table) INTO v_has_rows;
            IF v_has_rows THEN
                v_local_rows := v_local_rows || v_table;
            END IF;
        END LOOP;

        -- A distributed table's unique keys include its distribution column: the tenants' slug
        -- stays unique where it is used, the registry of tenant schemas (a reference table keyed
        -- by schema name, which publish_data_schema writes).
        IF 'tenants' = ANY (v_tables) AND EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'kaireon.tenants'::regclass
                                                                           AND conname = 'tenants_slug_key') THEN
            ALTER TABLE kaireon.tenants DROP CONSTRAINT tenants_slug_key;
        END IF;

        -- 4. Place them: tenant tables distributed by tenant_id next to kaireon.tenants, the
        --    tenant-less ones as reference tables; the rows move to the shards. The rows are
        --    moved, not written: the triggers checking and auditing writes sleep while Citus
        --    copies them (a check's subtransaction would break Citus's copy to the workers).
        -- Here (session_replication_role) and on the workers, where Citus copies the rows into
        -- the shards: the INSERT triggers of a table holding rows are disabled for the copy and get
        -- their state back after (ALTER TABLE ... ENABLE [REPLICA | ALWAYS] TRIGGER, which Citus
        -- applies to the shards).
        SET LOCAL session_replication_role = 'replica';
        FOR r IN
            SELECT format('kaireon.%I', c.relname) AS rel, t.tgname, t.tgenabled
              FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relname::text = ANY (v_local_rows)
               AND NOT t.tgisinternal AND t.tgenabled <> 'D'
               AND (t.tgtype & 4) <> 0      -- the INSERT triggers (TRIGGER_TYPE_INSERT): the copy inserts
             ORDER BY 1, 2
        LOOP
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', r.rel, r.tgname);
            v_triggers := v_triggers || format('ALTER TABLE %s ENABLE %s TRIGGER %I', r.rel,
                                               CASE r.tgenabled WHEN 'R' THEN 'REPLICA' WHEN 'A' THEN 'ALWAYS' ELSE '' END,
                                               r.tgname);
        END LOOP;
        FOREACH v_table IN ARRAY v_tables LOOP
            PERFORM kaireon_internal._progress_update('placing tables', v_done, cardinality(v_tables));
            v_done := v_done + 1;
            IF v_table = 'tenants' THEN
                PERFORM pg_catalog.create_distributed_table('kaireon.tenants', 'id', colocate_with => 'none');
            ELSIF v_table = ANY (v_tenant_tables) THEN
                PERFORM pg_catalog.create_distributed_table(format('kaireon.%I', v_table), 'tenant_id',
                                                            colocate_with => 'kaireon.tenants');
            ELSE
                PERFORM pg_catalog.create_reference_table(format('kaireon.%I', v_table));
            END IF;
            v_changed := v_changed || v_table;
        END LOOP;
        -- the coordinator's own copy of the rows (now in the shards) is emptied, once no local
        -- table references them any more, the referencing tables first
        FOR i IN REVERSE cardinality(v_tables) .. 1 LOOP
            IF v_tables[i] = ANY (v_local_rows) THEN
                PERFORM kaireon_internal._drop_local_copy(format('kaireon.%I', v_tables[i])::regclass);
            END IF;
        END LOOP;
        SET LOCAL session_replication_role = 'origin';
        FOREACH v_stmt IN ARRAY v_triggers LOOP
            EXECUTE v_stmt;
        END LOOP;
    END IF;

    -- The tenants' customer data tables (kaireon_t_<slug>.ds_*: a tenant_id column holding
    -- their tenant, their keys beginning with it) go next to their tenant's rows.
    PERFORM kaireon_internal._progress_update('placing tenant data tables', 0, NULL);
    v_schemas := ARRAY(SELECT ts.schema_name::text FROM kaireon.tenant_schemas ts);
    FOR r IN
        SELECT c.oid::regclass AS rel
          FROM pg_namespace n
          JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND NOT c.relispartition
         WHERE n.nspname::text = ANY (v_schemas)
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1
    LOOP
        IF kaireon_internal._citus_table_type(r.rel) IS NULL THEN
            SET LOCAL session_replication_role = 'replica';
            PERFORM kaireon_internal._distribute_tenant_table(r.rel);
            SET LOCAL session_replication_role = 'origin';
            v_changed := v_changed || r.rel::text;
        END IF;
    END LOOP;

    -- The grants on the tenants' data tables and segment views, made on this node before
    -- they were distributed, again: Citus copies them to the workers now.
    FOR r IN
        SELECT n.nspname::text AS nsp, c.relname::text AS rel
          FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'v')
         WHERE n.nspname::text = ANY (v_schemas) AND NOT c.relispartition
         ORDER BY 1, 2
    LOOP
        PERFORM kaireon_internal._apply_role_grants(r.nsp, r.rel);
    END LOOP;

    -- The tenant a session acts for reaches the workers: SET LOCAL kaireon.tenant_id travels
    -- with the transaction's commands to every node (citus.propagate_set_commands, this
    -- database's default from now on), and the tenant pins are made on every worker too
    -- (tenant_pins is node-local: it names roles by OID).
    EXECUTE format('ALTER DATABASE %I SET citus.propagate_set_commands = %L', current_database(), 'local');
    FOR r IN SELECT a.rolname, p.pinned_tenant_id FROM kaireon.tenant_pins p JOIN pg_roles a ON a.oid = p.role LOOP
        PERFORM kaireon_internal._pin_role_on_workers(r.rolname, r.pinned_tenant_id);
    END LOOP;

    -- 5. The entry points run on the node holding their tenant.
    PERFORM kaireon_internal._progress_update('delegating functions', 0, NULL);
    FOR r IN SELECT d.fn, d.tenant_arg FROM kaireon_internal._delegated_functions() d LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_object o
                        WHERE o.classid = 'pg_proc'::regclass AND o.objid = r.fn::regprocedure
                          AND o.distribution_argument_index IS NOT NULL) THEN
            PERFORM pg_catalog.create_distributed_function(r.fn::regprocedure, r.tenant_arg,
                                                           colocate_with => 'kaireon.tenants',
                                                           force_delegation => true);
        END IF;
    END LOOP;

    -- 6. The layout.
    PERFORM kaireon_internal._progress_end();
    RETURN QUERY
        SELECT CASE WHEN c.relnamespace = 'kaireon'::regnamespace THEN c.relname::text ELSE c.oid::regclass::text END,
               coalesce(p.placement, 'local'),
               CASE WHEN p.placement = 'distributed'
                    THEN (SELECT column_to_column_name(d.logicalrelid, d.partkey) FROM pg_dist_partition d WHERE d.logicalrelid = c.oid) END,
               CASE WHEN p.placement = 'distributed' AND c.relname <> 'tenants' THEN 'tenants' END,
               (SELECT count(*)::integer FROM pg_dist_shard s WHERE s.logicalrelid = c.oid),
               c.relname::text = ANY (v_changed) OR c.oid::regclass::text = ANY (v_changed)
          FROM pg_class c
          CROSS JOIN LATERAL (SELECT kaireon_internal._citus_table_type(c.oid) AS placement) p
         WHERE (c.relnamespace = 'kaireon'::regnamespace
                OR c.relnamespace IN (SELECT n.oid FROM pg_namespace n WHERE n.nspname::text = ANY (v_schemas)))
           AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.relnamespace <> 'kaireon'::regnamespace, 1;
END
$fn$;
-- ==== end of recording (s7-rec) ====

-- ==== s8-regex: one home for an experiment's split (kaireon_internal._split_weights checks it,
-- kaireon_internal._split_arm applies the C rule of flow A/B tests; assign_variant and the
-- flow A/B test check call them) ====
CREATE FUNCTION kaireon_internal._split_weights(experiment_key text, split jsonb)
    RETURNS TABLE (arm text, weight double precision)
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_total     double precision := 0;
    r           record;
BEGIN
    IF split IS NULL OR jsonb_typeof(split) <> 'object' OR split = '{}' THEN
        RAISE EXCEPTION 'experiment "%": the split must be a non-empty object of arm names and weights, not %',
                        experiment_key, coalesce(split::text, 'null')
            USING ERRCODE = '22023', HINT = 'For example {"A": 50, "B": 50}.';
    END IF;
    FOR r IN SELECT a.key, a.value FROM jsonb_each(split) a ORDER BY a.key COLLATE "C" LOOP
        -- a weight beyond double precision (1e400) is refused by name here; a total that
        -- overflows (two of 1e308) fails the float8 addition below with 22003
        IF (CASE WHEN jsonb_typeof(r.value) <> 'number' THEN true
                 ELSE r.value::text::numeric < 0 OR NOT kaireon_internal._is_finite(r.value::text::numeric) END) THEN
            RAISE EXCEPTION 'experiment "%": arm "%" has weight %, not a non-negative finite number', experiment_key, r.key,
                CASE WHEN length(r.value::text) > 32 THEN left(r.value::text, 32) || '...' ELSE r.value::text END
                USING ERRCODE = '22023', HINT = 'Weights are non-negative numbers, in any unit (shares of their sum).';
        END IF;
        arm := r.key;
        weight := r.value::text::double precision;
        v_total := v_total + weight;
        RETURN NEXT;
    END LOOP;
    IF v_total <= 0 THEN
        RAISE EXCEPTION 'experiment "%": the arms'' weights add up to 0', experiment_key
            USING ERRCODE = '22023', HINT = 'Give some arm a weight.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._split_weights(text, jsonb) IS
    'Internal: the arms of an experiment''s split {name: weight} by name in C collation, with their weights; refuses (22023, naming the experiment and arm) a split that is not a non-empty object, a weight that is not a non-negative finite number, and weights adding up to 0. Used by kaireon.assign_variant and the flow A/B test check.';

CREATE FUNCTION kaireon_internal._split_arm(experiment_key text, customer_id text, weights double precision[])
    RETURNS integer
    AS 'MODULE_PATHNAME', 'kaireon_split_arm_sql'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION kaireon_internal._split_arm(text, text, double precision[]) IS
    'Internal: the 1-based position of a customer''s arm among the weights _split_weights gives: the first whose cumulated weight exceeds experiment_bucket * total / 100 (the rule recommend uses for flow A/B tests).';

CREATE OR REPLACE FUNCTION kaireon.assign_variant(tenant_id text, experiment_key text, customer_id text,
                                       variants jsonb, ttl interval DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name      text;
    v_arms      text[];
    v_weights   double precision[];
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    IF customer_id IS NULL OR customer_id = '' OR experiment_key IS NULL OR experiment_key = '' THEN
        RAISE EXCEPTION 'experiment_key and customer_id must not be empty' USING ERRCODE = '22023',
            HINT = 'Pass both.';
    END IF;
    SELECT array_agg(s.arm ORDER BY s.n), array_agg(s.weight ORDER BY s.n) INTO v_arms, v_weights
      FROM kaireon_internal._split_weights(experiment_key, variants) WITH ORDINALITY AS s (arm, weight, n);
    SELECT a.variant_name INTO v_name FROM kaireon.variant_assignments a
     WHERE a.tenant_id = assign_variant.tenant_id AND a.experiment_key = assign_variant.experiment_key
       AND a.customer_id = assign_variant.customer_id AND (a.expires_at IS NULL OR a.expires_at > now());
    IF FOUND THEN
        RETURN v_name;
    END IF;
    v_name := v_arms[kaireon_internal._split_arm(experiment_key, customer_id, v_weights)];
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
    'Sticky assignment of a customer to a named variant of an A/B test identified by key (variants: names and non-negative weights, checked by kaireon_internal._split_weights), by FNV-1a of experimentKey:customerId and the rule flow A/B tests use (kaireon_internal._split_arm: variants by name in C collation); stored in variant_assignments, expiring after ttl (then reassigned).';
-- as 99_finalize.sql leaves them: pure, called by assign_variant as its caller and by the
-- experiments' check trigger as the writing role
REVOKE ALL ON FUNCTION kaireon_internal._split_weights(text, jsonb),
    kaireon_internal._split_arm(text, text, double precision[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION kaireon_internal._split_weights(text, jsonb),
    kaireon_internal._split_arm(text, text, double precision[]) TO PUBLIC;

CREATE OR REPLACE FUNCTION kaireon_internal._check_flow_experiment() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_arms      jsonb := NEW.traffic_split -> 'flows';
    v_flow      record;
    r           record;
BEGIN
    IF v_arms IS NULL THEN
        RETURN NEW;             -- a champion/challenger experiment of models
    END IF;
    IF jsonb_typeof(v_arms) <> 'object' OR v_arms = '{}' OR (SELECT count(*) FROM jsonb_object_keys(NEW.traffic_split)) > 1 THEN
        RAISE EXCEPTION 'experiment "%": traffic_split must be {"flows": {flowKey: weight, ...}} with at least one flow, not %',
                        NEW.key, NEW.traffic_split
            USING ERRCODE = '22023', HINT = 'For example {"flows": {"main": 50, "main-v2": 50}}; see docs/lift.md.';
    END IF;
    IF NEW.champion_model_id IS NOT NULL OR NEW.holdout_percent <> 0 THEN
        RAISE EXCEPTION 'experiment "%" splits traffic between decision flows: it takes no champion model and no holdout_percent', NEW.key
            USING ERRCODE = '22023',
                  HINT = 'Hold customers out with the flows'' controlGroupPercent; compare models in an experiment of its own.';
    END IF;
    -- the weights (22023): kaireon_internal._split_weights, assign_variant's check too
    FOR r IN SELECT s.arm FROM kaireon_internal._split_weights(NEW.key, v_arms) s LOOP
        SELECT f.status, f.published_version INTO v_flow FROM kaireon.decision_flows f
         WHERE f.tenant_id = NEW.tenant_id AND f.key = r.arm AND f.deleted_at IS NULL;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names no decision flow of tenant "%"', NEW.key, r.arm, NEW.tenant_id
                USING ERRCODE = '42704', HINT = 'Each key of traffic_split.flows is the key of a published decision flow.';
        END IF;
        IF v_flow.status <> 'published' OR v_flow.published_version IS NULL THEN
            RAISE EXCEPTION 'experiment "%": arm "%" names decision flow "%", which is not published (status %)',
                            NEW.key, r.arm, r.arm, v_flow.status
                USING ERRCODE = '55000', HINT = 'Publish it with kaireon.publish_decision_flow first.';
        END IF;
    END LOOP;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._check_flow_experiment() IS
    'Internal: BEFORE trigger on experiments refusing a flow A/B test (traffic_split {"flows": {flowKey: weight}}) whose split is malformed, whose weights are negative, not finite or all 0 (22023), that names a champion model or a holdout (22023), or whose arm names no decision flow of the tenant (42704) or an unpublished one (55000). See docs/lift.md.';
-- ==== end of s8-regex ====

-- ==== s9-history-indexes: the lookup indexes of interaction_history's partitions lead with the
-- looked-up column, then tenant_id, and compare their text columns bytewise (text_pattern_ops;
-- docs/upgrades.md): rebuilt on every partition.
CREATE FUNCTION kaireon_internal._index_interaction_lookups(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('CREATE INDEX ON kaireon.%I (customer_id text_pattern_ops, tenant_id text_pattern_ops, occurred_at DESC)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (recommendation_id text_pattern_ops, tenant_id text_pattern_ops) WHERE recommendation_id IS NOT NULL', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (offer_id text_pattern_ops, tenant_id text_pattern_ops, occurred_at)', part);
    EXECUTE format('CREATE INDEX ON kaireon.%I (creative_id text_pattern_ops, tenant_id text_pattern_ops)', part);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._index_interaction_lookups(text) IS
    'Internal: the lookup indexes of an interaction_history partition (by customer, recommendation, offer and creative; text columns compared bytewise, text_pattern_ops: their lookups are by equality).';
REVOKE ALL ON FUNCTION kaireon_internal._index_interaction_lookups(text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION kaireon_internal._index_interaction_partition(part text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE kaireon.%I ADD PRIMARY KEY (tenant_id, id)', part);
    PERFORM kaireon_internal._index_interaction_lookups(part);
    -- rows are appended in creation order: a BRIN index finds the newest rows for the
    -- summary rollups (kaireon.rollup_summaries) at almost no cost to writers
    EXECUTE format('CREATE INDEX ON kaireon.%I USING brin (created_at)', part);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._index_interaction_partition(text) IS
    'Internal: the primary key and indexes every interaction_history partition carries (the lookups of kaireon_internal._index_interaction_lookups; a BRIN index on created_at for the summary rollups).';

-- every plain partition in schema kaireon (the default one, the monthly ones) that has 0.1.0's
-- four lookup indexes, exactly as 0.1.0 made them (no constraint, no parent index): they are
-- renamed aside, the bytewise ones built under the names a fresh install gives (CREATE INDEX
-- lets readers go on), and the old ones dropped at the end (their exclusive locks held only
-- from there to the commit). Writers wait for the update from the start (the parent's SHARE
-- lock, taken first, as create_interaction_partitions takes the parent first). Any other
-- index (a DBA's), and a partition without the four (another schema, a foreign table), are
-- left as they are: the old indexes serve every lookup as well (docs/upgrades.md).
DO $$
DECLARE
    p record;
    v_four oid[];
    v_old oid[] := '{}';
    v_ix oid;
BEGIN
    LOCK TABLE ONLY kaireon.interaction_history IN SHARE MODE;
    FOR p IN SELECT c.oid, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'kaireon.interaction_history'::regclass AND c.relkind = 'r'
                AND c.relnamespace = 'kaireon'::regnamespace
              ORDER BY c.oid LOOP
        SELECT array_agg(x.indexrelid) INTO v_four FROM pg_index x
         WHERE x.indrelid = p.oid AND NOT x.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
           AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid)
           AND regexp_replace(pg_get_indexdef(x.indexrelid), '^.* USING ', '') IN (
               'btree (tenant_id, customer_id, occurred_at DESC)',
               'btree (tenant_id, recommendation_id) WHERE (recommendation_id IS NOT NULL)',
               'btree (tenant_id, offer_id, occurred_at)',
               'btree (tenant_id, creative_id)');
        CONTINUE WHEN coalesce(cardinality(v_four), 0) <> 4;
        FOREACH v_ix IN ARRAY v_four LOOP
            EXECUTE format('ALTER INDEX %s RENAME TO %I', v_ix::regclass, 'kaireon_old_lookup_' || v_ix);
        END LOOP;
        v_old := v_old || v_four;
        PERFORM kaireon_internal._index_interaction_lookups(p.relname);
    END LOOP;
    FOREACH v_ix IN ARRAY v_old LOOP
        EXECUTE format('DROP INDEX %s', v_ix::regclass);
    END LOOP;
END
$$;
-- ==== end of s9-history-indexes ====

-- ==== rj-finite-times: kaireon.enroll_in_journey refuses an infinite at (22023): an enrolment
-- at infinity is never due and keeps the customer out of the journey for good ====
CREATE OR REPLACE FUNCTION kaireon.enroll_in_journey(tenant_id text, journey_id text, customer_id text,
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
-- ==== end of rj-finite-times ====

-- ==== wake (a committed event's wake of a journey enrolment another transaction held is no
-- longer lost: src/decision/wake.c records it in journey_pending_wakes, the engine takes it;
-- sql/install/49_journey_engine.sql, docs/journeys.md "Events") ====
-- An event's wake of an enrolment another transaction held (src/decision/wake.c): recorded here
-- in the event's transaction, taken by the enrolment's next pass (docs/journeys.md, "Events").
-- Rows go with their enrolment.
CREATE TABLE kaireon.journey_pending_wakes (
    tenant_id               text NOT NULL REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    id                      text NOT NULL DEFAULT gen_random_uuid()::text,
    enrollment_id           text NOT NULL,
    event_type              text NOT NULL,
    event_at                timestamptz NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, enrollment_id) REFERENCES kaireon.journey_enrollments (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX journey_pending_wakes_tenant_id_enrollment_id_idx ON kaireon.journey_pending_wakes (tenant_id, enrollment_id);
-- the engine reads the wakes due as of its time through this index
CREATE INDEX journey_pending_wakes_event_at_idx ON kaireon.journey_pending_wakes (event_at);
COMMENT ON TABLE kaireon.journey_pending_wakes IS
    'JourneyPendingWake: an event of event_type at event_at that came while another transaction held the enrolment waiting for it (so the event could not set its wait_event_at without waiting); the enrolment''s next pass of kaireon.advance_journeys takes the earliest one inside the wait as the event, then removes them. Written by the events (respond, location_event, update_attribute). See docs/journeys.md.';
-- what 99_finalize.sql gives a new table: row level security, pg_dump
ALTER TABLE kaireon.journey_pending_wakes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kaireon.journey_pending_wakes
    USING (tenant_id = kaireon.current_tenant_id()) WITH CHECK (tenant_id = kaireon.current_tenant_id());
SELECT pg_catalog.pg_extension_config_dump('kaireon.journey_pending_wakes', '');

-- the pass locks FOR NO KEY UPDATE and takes the pending wakes; a failed pass keeps them
CREATE OR REPLACE FUNCTION kaireon_internal._journey_advance(p_tenant text, p_id text, p_at timestamptz)
    RETURNS TABLE (step_id text, step_type text, outcome text)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    e               kaireon.journey_enrollments;
    v_def           jsonb;
    v_max_days      integer;
    v_steps         jsonb;
    v_deadline      timestamptz;
    v_step          jsonb;
    v_cur           text;
    v_type          text;
    v_next          text;
    v_out           text;
    v_reason        jsonb;
    v_hist          jsonb := '[]';
    v_status        text := 'active';
    v_wait_until    timestamptz;
    v_wait_kind     text;
    v_wait_event    text;
    v_decision      jsonb;
    v_n             integer := 0;
    v_d             jsonb;
    v_until         timestamptz;
    v_branch        jsonb;
    v_i             integer;
    v_id            text;
    v_conversion    jsonb;
    v_wake_at       timestamptz;
BEGIN
    -- locked alone (a router query on Citus), skipped when another runner holds it; its
    -- latest version checked: one another runner has moved meanwhile is no longer due. FOR NO
    -- KEY UPDATE: an event that finds it held records its wake under a key share lock, which
    -- this lock does not block (src/decision/wake.c)
    SELECT * INTO e FROM kaireon.journey_enrollments x
     WHERE x.tenant_id = p_tenant AND x.id = p_id FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- the earliest pending wake inside the event wait (at or after it began, before its end),
    -- as of p_at: an event that came while another transaction held the enrolment
    IF e.status = 'active' AND e.wait_kind = 'event' THEN
        SELECT p.event_at INTO v_wake_at FROM kaireon.journey_pending_wakes p
         WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id AND p.event_type = e.wait_event_type
           AND p.event_at >= e.last_step_at AND (e.wait_until IS NULL OR p.event_at < e.wait_until)
           AND p.event_at <= p_at
         ORDER BY p.event_at LIMIT 1;
    END IF;
    IF v_wake_at IS NULL AND (e.status <> 'active' OR e.wait_until IS NULL OR e.wait_until > p_at) THEN
        -- not due: the pending wakes that can no longer count (the wait they came in is over)
        -- are removed; one of this wait from after p_at stays
        DELETE FROM kaireon.journey_pending_wakes p
         WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id
           AND NOT coalesce(e.status = 'active' AND e.wait_kind = 'event'
                            AND p.event_type = e.wait_event_type AND p.event_at >= e.last_step_at, false);
        RETURN;
    END IF;
    -- due: the pass takes the wait's pending wakes (any left are from before it: none counts
    -- after this pass); the earliest event of the wait wakes it
    DELETE FROM kaireon.journey_pending_wakes p WHERE p.tenant_id = e.tenant_id AND p.enrollment_id = e.id;
    IF v_wake_at IS NOT NULL AND (e.wait_event_at IS NULL OR v_wake_at < e.wait_event_at) THEN
        e.wait_event_at := v_wake_at;
    END IF;
    SELECT v -> 'definition', j.max_duration_days INTO v_def, v_max_days
      FROM kaireon.journeys j CROSS JOIN LATERAL jsonb_array_elements(j.published_versions) v
     WHERE j.tenant_id = e.tenant_id AND j.id = e.journey_id AND (v ->> 'version')::integer = e.journey_version;
    IF v_def IS NULL THEN
        RAISE EXCEPTION 'journey "%" has no version %', e.journey_id, e.journey_version
            USING ERRCODE = '55000', HINT = 'Published versions are never removed; was the journey rewritten by hand?';
    END IF;
    SELECT jsonb_object_agg(s ->> 'id', s) INTO v_steps FROM jsonb_array_elements(v_def -> 'steps') s;
    v_deadline := e.entered_at + make_interval(days => v_max_days);    -- NULL: unbounded
    -- the last decision recorded for this enrolment (a channel_action sends it)
    SELECT h -> 'reason' INTO v_decision FROM jsonb_array_elements(e.history) WITH ORDINALITY AS x (h, n)
     WHERE h ->> 'type' = 'nba_decision' ORDER BY x.n DESC LIMIT 1;
    -- exitOnConversion: a conversion of the customer since entry ends the enrolment at its next pass
    IF coalesce((v_def ->> 'exitOnConversion')::boolean, false) THEN
        SELECT jsonb_build_object('outcomeType', ih.outcome_type_key, 'occurredAt', ih.occurred_at) INTO v_conversion
          FROM kaireon.interaction_history ih
         WHERE ih.tenant_id = e.tenant_id AND ih.customer_id = e.customer_id AND ih.interaction_type = 'outcome'
           AND ih.occurred_at >= e.entered_at AND ih.occurred_at <= p_at
           AND EXISTS (SELECT 1 FROM kaireon.outcome_types ot
                        WHERE ot.tenant_id = e.tenant_id AND ot.key = ih.outcome_type_key
                          AND ot.category = 'conversion' AND ot.deleted_at IS NULL)
         ORDER BY ih.occurred_at LIMIT 1;
    END IF;
    v_cur := e.current_step_id;
    LOOP
        v_n := v_n + 1;
        IF v_n > 1000 THEN
            -- can't happen: the validator requires every loop to pass through a wait that takes time
            RAISE EXCEPTION 'enrolment "%" took more than 1000 steps in one pass', e.id
                USING ERRCODE = '54000', HINT = 'Check the journey''s loops (docs/journeys.md).';
        END IF;
        v_step := v_steps -> v_cur;
        IF v_step IS NULL THEN
            RAISE EXCEPTION 'version % of journey "%" has no step "%"', e.journey_version, e.journey_id, v_cur
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the enrolment rewritten by hand?';
        END IF;
        v_type := v_step ->> 'type';
        v_reason := NULL;
        v_next := NULL;
        IF v_n = 1 AND v_conversion IS NOT NULL THEN
            v_out := 'converted';
            v_reason := v_conversion;
            v_status := 'exited';
        ELSIF v_deadline IS NOT NULL AND p_at >= v_deadline THEN
            v_out := 'max_duration';
            v_reason := jsonb_build_object('maxDurationDays', v_max_days, 'deadline', v_deadline);
            v_status := 'exited';
        ELSIF v_type = 'entry_trigger' THEN
            -- recorded at enrolment (kaireon.enroll_in_journey): the engine only goes on
            v_cur := v_step ->> 'next';
            CONTINUE;
        ELSIF v_type = 'wait' AND v_n = 1 AND e.wait_kind IS NOT NULL THEN
            -- the wait the enrolment was in has ended
            IF e.wait_kind = 'event' AND e.wait_event_at IS NULL THEN
                v_out := 'timeout';
                v_next := coalesce(v_step ->> 'timeoutNext', v_step ->> 'next');
            ELSE
                v_out := CASE e.wait_kind WHEN 'event' THEN 'event' ELSE 'elapsed' END;
                v_next := v_step ->> 'next';
                IF e.wait_kind = 'event' THEN
                    v_reason := jsonb_build_object('eventType', e.wait_event_type, 'eventAt', e.wait_event_at);
                END IF;
            END IF;
        ELSIF v_type = 'wait' THEN
            -- a wait begins
            v_d := coalesce(v_step -> 'duration', v_step -> 'timeout');
            IF v_step ? 'until' THEN
                v_wait_kind := 'until';
                v_until := (v_step ->> 'until')::timestamptz;
            ELSE
                v_wait_kind := CASE WHEN v_step ? 'event' THEN 'event' ELSE 'duration' END;
                v_until := p_at + CASE WHEN v_d IS NULL THEN NULL ELSE
                           coalesce((v_d ->> 'days')::numeric, 0) * interval '1 day'
                           + coalesce((v_d ->> 'hours')::numeric, 0) * interval '1 hour'
                           + coalesce((v_d ->> 'minutes')::numeric, 0) * interval '1 minute'
                           + coalesce((v_d ->> 'seconds')::numeric, 0) * interval '1 second' END;
            END IF;
            v_wait_event := v_step -> 'event' ->> 'eventType';
            v_reason := jsonb_strip_nulls(jsonb_build_object('kind', v_wait_kind, 'until', v_until,
                                                             'eventType', v_wait_event));
            IF v_wait_kind = 'until' AND v_until <= p_at THEN
                v_out := 'elapsed';         -- its time is past: it passes at once
                v_next := v_step ->> 'next';
                v_wait_kind := NULL;
                v_wait_event := NULL;
            ELSE
                v_out := 'waiting';
                v_wait_until := CASE WHEN v_deadline IS NULL THEN v_until
                                     WHEN v_until IS NULL THEN v_deadline
                                     ELSE least(v_until, v_deadline) END;
            END IF;
        ELSIF v_type = 'nba_decision' THEN
            SELECT jsonb_build_object('offerId', r.offer_id, 'creativeId', r.creative_id,
                                      'interactionId', r.interaction_id, 'recommendationId', r.recommendation_id,
                                      'channelId', v_step ->> 'channelId')
              INTO v_decision
              FROM kaireon.recommend(e.tenant_id, e.customer_id, v_step ->> 'channelId', v_step ->> 'placementId',
                                     '{}', 1, v_step ->> 'flowKey') r
             WHERE r.rank IS NOT NULL ORDER BY r.rank LIMIT 1;
            IF v_decision IS NULL THEN
                v_out := 'no_offer';
                v_reason := jsonb_build_object('channelId', v_step ->> 'channelId');
                v_next := v_step ->> 'onNoOffer';
            ELSE
                v_out := 'offer';
                v_reason := v_decision;
                v_next := v_step ->> 'onOffer';
            END IF;
        ELSIF v_type = 'condition_split' THEN
            v_i := 0;
            FOR v_branch IN SELECT b FROM jsonb_array_elements(v_step -> 'branches') b LOOP
                v_i := v_i + 1;
                IF kaireon_internal._journey_condition(e.tenant_id, e.customer_id, v_branch -> 'when', p_at) THEN
                    v_out := 'branch ' || v_i;
                    v_reason := jsonb_build_object('branch', v_i, 'when', v_branch -> 'when');
                    v_next := v_branch ->> 'next';
                    EXIT;
                END IF;
            END LOOP;
            IF v_next IS NULL THEN
                v_out := 'otherwise';
                v_next := v_step ->> 'otherwise';
            END IF;
        ELSIF v_type = 'channel_action' THEN
            IF v_decision ? 'interactionId' AND v_decision ->> 'interactionId' IS NOT NULL
               AND (NOT v_step ? 'offerId' OR v_step ->> 'offerId' = v_decision ->> 'offerId') THEN
                -- the enrolment's recorded decision is sent: its delivery (and the delivery's
                -- outbox event); the key makes each pass through the step its own delivery
                v_id := kaireon.create_delivery(e.tenant_id, v_decision ->> 'interactionId', NULL, NULL,
                                                'journey:' || e.id || ':' || v_cur || ':'
                                                || (jsonb_array_length(e.history) + jsonb_array_length(v_hist)),
                                                jsonb_strip_nulls(jsonb_build_object(
                                                    'journeyId', e.journey_id, 'enrollmentId', e.id, 'stepId', v_cur,
                                                    'channelId', v_step ->> 'channelId', 'template', v_step -> 'template')));
                v_out := 'delivery';
                v_reason := jsonb_build_object('deliveryId', v_id, 'interactionId', v_decision ->> 'interactionId');
            ELSE
                INSERT INTO kaireon.outbox_events (tenant_id, topic, payload)
                VALUES (e.tenant_id, 'journey.channel_action',
                        jsonb_strip_nulls(jsonb_build_object(
                            'tenantId', e.tenant_id, 'journeyId', e.journey_id, 'journeyVersion', e.journey_version,
                            'enrollmentId', e.id, 'customerId', e.customer_id, 'stepId', v_cur,
                            'channelId', v_step ->> 'channelId', 'offerId', v_step ->> 'offerId',
                            'creativeId', v_step ->> 'creativeId', 'template', v_step -> 'template', 'at', p_at)))
                RETURNING id INTO v_id;
                v_out := 'event';
                v_reason := jsonb_build_object('eventId', v_id);
            END IF;
            v_next := v_step ->> 'next';
        ELSIF v_type = 'exit' THEN
            v_out := 'completed';
            v_reason := v_step -> 'reason';
            v_status := 'completed';
        ELSE
            RAISE EXCEPTION 'step "%" of journey "%" has the unknown type "%"', v_cur, e.journey_id, v_type
                USING ERRCODE = '55000', HINT = 'Published versions are validated; was the journey rewritten by hand?';
        END IF;
        v_hist := v_hist || jsonb_build_array(jsonb_build_object('at', p_at, 'step', v_cur, 'type', v_type,
                                                                 'outcome', v_out)
                                              || CASE WHEN v_reason IS NULL THEN '{}'::jsonb
                                                      ELSE jsonb_build_object('reason', v_reason) END);
        step_id := v_cur;
        step_type := v_type;
        outcome := v_out;
        RETURN NEXT;
        EXIT WHEN v_status <> 'active' OR v_out = 'waiting';
        v_cur := v_next;
    END LOOP;
    UPDATE kaireon.journey_enrollments x
       SET current_step_id = v_cur, status = v_status,
           wait_until = CASE WHEN v_status = 'active' THEN v_wait_until END,
           wait_kind = CASE WHEN v_status = 'active' THEN v_wait_kind END,
           wait_event_type = CASE WHEN v_status = 'active' THEN v_wait_event END,
           wait_event_at = NULL,
           last_step_at = p_at, history = x.history || v_hist, updated_at = now()
     WHERE x.tenant_id = e.tenant_id AND x.id = e.id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_advance(text, text, timestamptz) IS
    'Internal: one pass of kaireon.advance_journeys over one due active enrolment at p_at (locked FOR NO KEY UPDATE SKIP LOCKED: nothing when another runner holds it or it is no longer due; due also by the earliest pending wake of its event wait in journey_pending_wakes, taken as the event; the enrolment''s pending wakes are removed, those of a wait that is over also when it is not due): from current_step_id through the steps of its frozen version until a wait that has not ended (wait_until, wait_kind, wait_event_type set) or an exit (status completed; exited at max_duration_days, or with exitOnConversion after a conversion since entry), each step appended to history ({at, step, type, outcome, reason}) and returned. Runs in the caller''s transaction, confined to the tenant (src/campaign/journeys.c). See docs/journeys.md.';

CREATE OR REPLACE FUNCTION kaireon_internal._journey_failed(p_tenant text, p_id text, p_at timestamptz, p_error text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- the wait's earliest pending wake (as the pass would have taken it) moves into the row, so
    -- the retry 5 minutes later takes the event and the wake does not make it due before then
    UPDATE kaireon.journey_enrollments x
       SET wait_until = p_at + interval '5 minutes', updated_at = now(),
           wait_event_at = CASE WHEN x.wait_kind = 'event' THEN
                                least(x.wait_event_at,
                                      (SELECT min(p.event_at) FROM kaireon.journey_pending_wakes p
                                        WHERE p.tenant_id = x.tenant_id AND p.enrollment_id = x.id
                                          AND p.event_type = x.wait_event_type AND p.event_at >= x.last_step_at
                                          AND (x.wait_until IS NULL OR p.event_at < x.wait_until)
                                          AND p.event_at <= p_at))
                                ELSE x.wait_event_at END,
           history = x.history || jsonb_build_array(jsonb_build_object('at', p_at, 'step', x.current_step_id,
                                                                        'type', 'error', 'outcome', 'error',
                                                                        'reason', p_error))
     WHERE x.tenant_id = p_tenant AND x.id = p_id AND x.status = 'active';
    DELETE FROM kaireon.journey_pending_wakes p
     WHERE p.tenant_id = p_tenant AND p.enrollment_id = p_id AND p.event_at <= p_at;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._journey_failed(text, text, timestamptz, text) IS
    'Internal: records a pass of kaireon.advance_journeys that failed (rolled back) in the enrolment''s history (type error, the message) and makes it due again 5 minutes after p_at, at the step it was at; the earliest pending wake of its event wait (journey_pending_wakes) becomes its wait_event_at, and its pending wakes up to p_at are removed. See docs/journeys.md.';

COMMENT ON FUNCTION kaireon.advance_journeys(text, timestamptz, integer) IS
    'The journey engine, as of at (default now; tests pin it): takes up to max_enrollments due active enrolments (wait_until <= at, or a pending wake of its event wait at or before at in journey_pending_wakes; of tenant_id, or every tenant the caller sees), earliest first, each locked FOR NO KEY UPDATE SKIP LOCKED (one another runner holds is skipped), and advances each through its frozen version''s steps until a wait or an exit, confined to its tenant; a step''s effects and the enrolment''s move commit together. A failing enrolment is rolled back, its error recorded in its history, and retried 5 minutes later. One row per step taken (outcome: next step''s reason, such as offer, no_offer, branch 1, otherwise, waiting, elapsed, event, timeout, delivery, completed, max_duration, converted, error). The maintenance job journeys calls it. See docs/journeys.md.';
-- ==== end of wake ====

-- ==== retention-days-bound (retention_configs.retention_days is 1 to 36500 days: a longer one put
-- the cutoff out of timestamptz's range, and retention_policies(), run_retention and dsar_delete
-- failed for every tenant; retention_policies clamps the cutoff too; sql/install/80_retention.sql,
-- docs/retention.md) ====
-- A row above the bound (it could only make the queries fail) is clamped to 36500 days, which
-- keeps its rows as long in practice (100 years); the change is audited like any other. The
-- audit trigger is deferred: its events are fired here, as ALTER TABLE refuses a table with
-- pending trigger events, and it is deferred again.
UPDATE kaireon.retention_configs SET retention_days = 36500, updated_at = now() WHERE retention_days > 36500;
SET CONSTRAINTS kaireon.audit_capture IMMEDIATE;
SET CONSTRAINTS kaireon.audit_capture DEFERRED;
ALTER TABLE kaireon.retention_configs DROP CONSTRAINT retention_configs_retention_days_check;
ALTER TABLE kaireon.retention_configs ADD CONSTRAINT retention_configs_retention_days_check
    CHECK (retention_days BETWEEN 1 AND 36500);
CREATE OR REPLACE FUNCTION kaireon.retention_policies(as_of timestamptz DEFAULT now())
    RETURNS TABLE (tenant_id text, data_class text, retention_days integer, legal_hold boolean,
                   configured boolean, cutoff timestamptz)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function)
    RETURN QUERY
    SELECT t.id, d.data_class,
           coalesce(c.retention_days, m.retention_days, d.retention_days),
           coalesce(c.legal_hold, m.legal_hold, false),
           c.id IS NOT NULL OR m.id IS NOT NULL,
           -- days of 24 hours (UTC days), whatever the session's time zone and its DST changes;
           -- at most 36500 days (the CHECK of retention_configs), so no row makes the query fail
           as_of - least(coalesce(c.retention_days, m.retention_days, d.retention_days), 36500) * interval '24 hours'
      FROM kaireon.tenants t
     CROSS JOIN kaireon.retention_defaults() d
      LEFT JOIN kaireon.retention_configs c ON c.tenant_id = t.id AND c.data_class = d.data_class
      LEFT JOIN kaireon.retention_configs m ON d.data_class = 'summaries' AND c.id IS NULL
                                           AND m.tenant_id = t.id AND m.data_class = 'metrics'
     ORDER BY t.id, d.data_class;
END
$fn$;
COMMENT ON FUNCTION kaireon.retention_policies(timestamptz) IS
    'The retention each tenant gets for each data class as of a time: its retention_configs row, else (for summaries) its metrics row, else kaireon.retention_defaults(); with the legal hold and the cutoff (as_of minus retention_days days of 24 hours, at most 36500; rows older than it are removed). Shows the tenants the caller may see.';
-- ==== end of retention-days-bound ====

-- ==== dsar-data-tables (kaireon_internal._dsar_targets covers every existing customer data table
-- of the tenant, not only those whose data schema is published: one back in draft kept its
-- rows, and an erasure left them; sql/install/83_dsar.sql, docs/retention.md) ====
CREATE OR REPLACE FUNCTION kaireon_internal._dsar_targets(p_tenant text)
    RETURNS TABLE (label text, relation text, predicate text, data_class text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_nsp       text[];
    v_table     text[];
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function; the catalogs and the
    -- tenant's rows are read by separate queries, as Citus joins no catalog with its tables)
    -- The tenant's customer data tables: every schema of entity type customer, whatever its
    -- status (one back in draft, or archived, keeps its table and its rows); the ones with a
    -- table are kept below.
    SELECT coalesce(array_agg(s.schema_name::text ORDER BY d.table_name), '{}'),
           coalesce(array_agg(d.table_name ORDER BY d.table_name), '{}')
      INTO v_nsp, v_table
      FROM kaireon.data_schemas d
      JOIN kaireon.tenants t ON t.id = d.tenant_id
      JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
     WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND d.entity_type = 'customer';
    RETURN QUERY
    -- kaireon tables with the customer's rows (partitioned tables as a whole; consent_records
    -- by subject_id: kaireon_internal._customer_tables)
    SELECT c.label, c.relation, format('x.%I = $1', c.key_column),
           CASE c.label WHEN 'interaction_history' THEN 'interactions' WHEN 'impressions' THEN 'interactions'
                        WHEN 'decision_locks' THEN 'interactions' WHEN 'decision_traces' THEN 'decisions'
                        WHEN 'model_shadow_scores' THEN 'decisions' WHEN 'campaign_decisions' THEN 'decisions'
                        WHEN 'interaction_summaries' THEN 'summaries' WHEN 'metric_values' THEN 'metrics'
                        WHEN 'suppressions' THEN 'suppressions'
                        -- a monthly partition retention detached (an archive): still interactions
                        ELSE CASE WHEN c.label ~ '^interaction_history_p\d{4}_\d{2}$' THEN 'interactions' END END
      FROM kaireon_internal._customer_tables() c
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
        ('identity_links', 'kaireon.identity_links',
         '(x.canonical_id = $1 OR (x.identifier_type = ''customer_id'' AND x.identifier_value = $1))', NULL),
        ('outbox_events', 'kaireon.outbox_events', 'x.payload ->> ''customerId'' = $1', 'outbox'),
        ('dead_letter_events', 'kaireon.dead_letter_events', 'x.payload ->> ''customerId'' = $1', 'outbox')
    ) AS v (label, relation, predicate, data_class)
    UNION ALL
    -- the tenant's customer data tables that exist, by the key column as the table has it (the
    -- primary key (tenant_id, key) fixed at first publish; a draft may rename the field)
    SELECT format('%s.%s', ds.nsp, ds.tbl), format('%I.%I', ds.nsp, ds.tbl),
           format('x.%I::text = $1', a.attname::text), NULL::text
      FROM (SELECT DISTINCT u.nsp, u.tbl FROM unnest(v_nsp, v_table) AS u (nsp, tbl)) ds
      JOIN pg_index i ON i.indrelid = to_regclass(format('%I.%I', ds.nsp, ds.tbl)) AND i.indisprimary
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1]
     WHERE to_regclass(format('%I.%I', ds.nsp, ds.tbl)) IS NOT NULL
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_targets(text) IS
    'Internal: where a tenant''s data subject (customer) rows are: every kaireon table with a customer_id column, the tables pointing at the subject''s interactions, consent records, identity links, outbox events and dead letters about the subject, and every existing customer data table of the tenant (whatever its schema''s status; by the table''s key column); with the retention data class whose legal hold keeps them.';
-- ==== end of dsar-data-tables ====

-- ==== dsar-archives (kaireon_internal._dsar_start also gathers the subject's interaction ids from
-- the monthly partitions retention detached, so the deliveries and idempotency keys of archived
-- interactions are exported and erased; sql/install/83_dsar.sql, docs/retention.md) ====
CREATE OR REPLACE FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text,
                                    p_requested_by text, p_reason text,
                                    OUT request_id text, OUT interaction_ids text[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_archive   text;
    v_ids       text[];
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
    -- and those of the monthly partitions retention detached (archives, no longer under
    -- interaction_history), so the rows pointing at them (deliveries, idempotency keys) go too
    FOR v_archive IN SELECT c.relation FROM kaireon_internal._customer_tables() c
                      WHERE c.label ~ '^interaction_history_p\d{4}_\d{2}$' ORDER BY c.label LOOP
        EXECUTE format('SELECT coalesce(array_agg(x.id ORDER BY x.id), ''{}'') FROM %s x '
                       ' WHERE x.tenant_id = $1 AND x.customer_id = $2', v_archive)
            INTO v_ids USING p_tenant, p_subject;
        interaction_ids := interaction_ids || v_ids;
    END LOOP;
    INSERT INTO kaireon.dsar_requests (tenant_id, request_type, subject_id, subject_type, status, requested_by, reason)
    VALUES (p_tenant, p_request_type, p_subject, p_subject_type, 'processing',
            coalesce(p_requested_by, nullif(current_setting('kaireon.user_id', true), ''), session_user::text), p_reason)
    RETURNING id INTO request_id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_start(text, text, text, text, text, text) IS
    'Internal: checks a data subject request (arguments, tenant access, subject type, tenant), records it in dsar_requests as processing, and returns its id and the ids of the subject''s interactions (in interaction_history and in the monthly partitions retention detached).';
-- ==== end of dsar-archives ====

-- ==== dsar-linked-ids (dsar_export and dsar_delete cover the rows under the identifiers linked to
-- the subject (identity_links) and under the ids whose decision lock was merged into it:
-- link_identity leaves traces, outbox events and the like under the identifier; new
-- kaireon_internal._dsar_subject_ids; sql/install/83_dsar.sql, docs/retention.md,
-- docs/identity.md) ====
CREATE FUNCTION kaireon_internal._dsar_subject_ids(p_tenant text, p_subject text) RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function)
    RETURN ARRAY(SELECT DISTINCT i FROM (
                     SELECT p_subject AS i
                     UNION ALL
                     SELECT l.identifier_value FROM kaireon.identity_links l
                      WHERE l.tenant_id = p_tenant AND l.canonical_id = p_subject
                     UNION ALL
                     SELECT d.customer_id FROM kaireon.decision_locks d
                      WHERE d.tenant_id = p_tenant AND d.merged_into = p_subject) x
                  WHERE i IS NOT NULL ORDER BY i);
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_subject_ids(text, text) IS
    'Internal: the ids a data subject''s rows are under in a tenant: the subject id, the identifier values linked to it (identity_links.canonical_id) and the customer ids whose decision lock was merged into it (decision_locks.merged_into).';
REVOKE ALL ON FUNCTION kaireon_internal._dsar_subject_ids(text, text) FROM PUBLIC;
CREATE OR REPLACE FUNCTION kaireon_internal._dsar_targets(p_tenant text)
    RETURNS TABLE (label text, relation text, predicate text, data_class text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_nsp       text[];
    v_table     text[];
BEGIN
    -- (PL/pgSQL: Citus plans no parameterised query of a SQL function; the catalogs and the
    -- tenant's rows are read by separate queries, as Citus joins no catalog with its tables)
    -- The tenant's customer data tables: every schema of entity type customer, whatever its
    -- status (one back in draft, or archived, keeps its table and its rows); the ones with a
    -- table are kept below.
    SELECT coalesce(array_agg(s.schema_name::text ORDER BY d.table_name), '{}'),
           coalesce(array_agg(d.table_name ORDER BY d.table_name), '{}')
      INTO v_nsp, v_table
      FROM kaireon.data_schemas d
      JOIN kaireon.tenants t ON t.id = d.tenant_id
      JOIN kaireon.tenant_schemas s ON s.schema_name = 'kaireon_t_' || t.slug AND s.owner_tenant_id = t.id
     WHERE d.tenant_id = p_tenant AND t.id = p_tenant AND d.entity_type = 'customer';
    RETURN QUERY
    -- kaireon tables with the customer's rows (partitioned tables as a whole; consent_records
    -- by subject_id: kaireon_internal._customer_tables)
    SELECT c.label, c.relation, format('x.%I = ANY ($1)', c.key_column),
           CASE c.label WHEN 'interaction_history' THEN 'interactions' WHEN 'impressions' THEN 'interactions'
                        WHEN 'decision_locks' THEN 'interactions' WHEN 'decision_traces' THEN 'decisions'
                        WHEN 'model_shadow_scores' THEN 'decisions' WHEN 'campaign_decisions' THEN 'decisions'
                        WHEN 'interaction_summaries' THEN 'summaries' WHEN 'metric_values' THEN 'metrics'
                        WHEN 'suppressions' THEN 'suppressions'
                        -- a monthly partition retention detached (an archive): still interactions
                        ELSE CASE WHEN c.label ~ '^interaction_history_p\d{4}_\d{2}$' THEN 'interactions' END END
      FROM kaireon_internal._customer_tables() c
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
        ('identity_links', 'kaireon.identity_links',
         '(x.canonical_id = ANY ($1) OR (x.identifier_type = ''customer_id'' AND x.identifier_value = ANY ($1)))', NULL),
        ('outbox_events', 'kaireon.outbox_events', 'x.payload ->> ''customerId'' = ANY ($1)', 'outbox'),
        ('dead_letter_events', 'kaireon.dead_letter_events', 'x.payload ->> ''customerId'' = ANY ($1)', 'outbox')
    ) AS v (label, relation, predicate, data_class)
    UNION ALL
    -- the tenant's customer data tables that exist, by the key column as the table has it (the
    -- primary key (tenant_id, key) fixed at first publish; a draft may rename the field)
    SELECT format('%s.%s', ds.nsp, ds.tbl), format('%I.%I', ds.nsp, ds.tbl),
           format('x.%I::text = ANY ($1)', a.attname::text), NULL::text
      FROM (SELECT DISTINCT u.nsp, u.tbl FROM unnest(v_nsp, v_table) AS u (nsp, tbl)) ds
      JOIN pg_index i ON i.indrelid = to_regclass(format('%I.%I', ds.nsp, ds.tbl)) AND i.indisprimary
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[1]
     WHERE to_regclass(format('%I.%I', ds.nsp, ds.tbl)) IS NOT NULL
     ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_targets(text) IS
    'Internal: where a tenant''s data subject (customer) rows are: every kaireon table with a customer_id column, the tables pointing at the subject''s interactions, consent records, identity links, outbox events and dead letters about the subject, and every existing customer data table of the tenant (whatever its schema''s status; by the table''s key column); with the retention data class whose legal hold keeps them.';
CREATE OR REPLACE FUNCTION kaireon_internal._dsar_start(p_tenant text, p_subject text, p_subject_type text, p_request_type text,
                                    p_requested_by text, p_reason text,
                                    OUT request_id text, OUT interaction_ids text[])
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_archive   text;
    v_ids       text[];
    v_subjects  text[];
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
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, p_subject);
    interaction_ids := ARRAY(SELECT h.id FROM kaireon.interaction_history h
                              WHERE h.tenant_id = p_tenant AND h.customer_id = ANY (v_subjects));
    -- and those of the monthly partitions retention detached (archives, no longer under
    -- interaction_history), so the rows pointing at them (deliveries, idempotency keys) go too
    FOR v_archive IN SELECT c.relation FROM kaireon_internal._customer_tables() c
                      WHERE c.label ~ '^interaction_history_p\d{4}_\d{2}$' ORDER BY c.label LOOP
        EXECUTE format('SELECT coalesce(array_agg(x.id ORDER BY x.id), ''{}'') FROM %s x '
                       ' WHERE x.tenant_id = $1 AND x.customer_id = ANY ($2)', v_archive)
            INTO v_ids USING p_tenant, v_subjects;
        interaction_ids := interaction_ids || v_ids;
    END LOOP;
    INSERT INTO kaireon.dsar_requests (tenant_id, request_type, subject_id, subject_type, status, requested_by, reason)
    VALUES (p_tenant, p_request_type, p_subject, p_subject_type, 'processing',
            coalesce(p_requested_by, nullif(current_setting('kaireon.user_id', true), ''), session_user::text), p_reason)
    RETURNING id INTO request_id;
END
$fn$;
COMMENT ON FUNCTION kaireon_internal._dsar_start(text, text, text, text, text, text) IS
    'Internal: checks a data subject request (arguments, tenant access, subject type, tenant), records it in dsar_requests as processing, and returns its id and the ids of the subject''s interactions (under any id of kaireon_internal._dsar_subject_ids; in interaction_history and in the monthly partitions retention detached).';
CREATE OR REPLACE FUNCTION kaireon.dsar_export(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_export.tenant_id;
    v_ids       text[];
    v_subjects  text[];
    v_request   text;
    t           record;
    v_rows      jsonb;
    v_n         bigint;
    v_data      jsonb := '{}';
    v_counts    jsonb := '{}';
BEGIN
    PERFORM kaireon.assert_tenant_access(p_tenant);
    SELECT s.request_id, s.interaction_ids INTO v_request, v_ids
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'export', requested_by, reason) s;
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, subject_id);
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
        EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY to_jsonb(x)::text), ''[]''), count(*) '
                       '  FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
            INTO v_rows, v_n USING v_subjects, v_ids, p_tenant;
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
    'Data subject access / portability: every row of one customer of a tenant (kaireon_internal._dsar_targets: interactions, impressions, traces, summaries, metric values, scores, suppressions, consent, identity links, assignments, journeys, outbox events, the customer data tables, ...) as one document {requestId, tenantId, subjectId, subjectType, exportedAt, data: {table: [rows]}}; recorded in dsar_requests with the row counts.';
CREATE OR REPLACE FUNCTION kaireon.dsar_delete(tenant_id text, subject_id text, requested_by text DEFAULT NULL,
                                    reason text DEFAULT NULL, subject_type text DEFAULT 'customer')
    RETURNS jsonb
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p_tenant    text := dsar_delete.tenant_id;
    v_ids       text[];
    v_subjects  text[];
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
      FROM kaireon_internal._dsar_start(p_tenant, subject_id, subject_type, 'delete', requested_by, reason) s;
    v_subjects := kaireon_internal._dsar_subject_ids(p_tenant, subject_id);
    v_held := ARRAY(SELECT p.data_class FROM kaireon.retention_policies() p
                     WHERE p.tenant_id = p_tenant AND p.legal_hold ORDER BY 1);
    FOR t IN SELECT * FROM kaireon_internal._dsar_targets(p_tenant) LOOP
        IF t.data_class = ANY (v_held) THEN
            EXECUTE format('SELECT count(*) FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                INTO v_n USING v_subjects, v_ids, p_tenant;
            IF v_n > 0 THEN
                v_kept := v_kept || jsonb_build_object(t.label, v_n);
            END IF;
        ELSE
            EXECUTE format('DELETE FROM %s x WHERE x.tenant_id = $3 AND %s', t.relation, t.predicate)
                USING v_subjects, v_ids, p_tenant;
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
-- ==== end of dsar-linked-ids ====

-- Last, once every object exists: the roles given access under 0.1.0 (kaireon.grant_*_role) get
-- the access of 0.2.0 (the new functions of their kind, as kaireon_internal._role_functions
-- lists them; the new tables and views, part 7's included; kaireon_internal for admins).
-- Keep this at the end.
SELECT kaireon_internal._grant_role(to_regrole(quote_ident(role_name)), access)
  FROM kaireon.role_grants WHERE to_regrole(quote_ident(role_name)) IS NOT NULL ORDER BY role_name;
