-- Data subject requests (docs/retention.md): kaireon.dsar_export returns every row of one
-- customer, and kaireon.dsar_delete erases them (except under a legal hold); both are recorded
-- in dsar_requests. Other customers and other tenants are untouched.
\set VERBOSITY terse
SET client_min_messages = warning;
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('dsar', 'DSAR', 'dsar', '{"decisionTraceSampleRate": 1}'), ('dsar_other', 'Other', 'dsar_other', '{}'),
    ('dsar_h', 'Held', 'dsar_h', '{}');
SELECT count(*) >= 0 AS partitions FROM kaireon.create_interaction_partitions(1);

-- The subject "cust-x" gets rows through recommend and respond (history, implicit impression,
-- decision lock, trace, outcome, outbox event, idempotency key) ...
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES ('dsar', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name) VALUES ('dsar', 'hero', 'web', 'Hero');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('dsar', 'o1', 'Offer 1', 'active', 50);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name) VALUES ('dsar', 'cr1', 'o1', 'web', 'hero', 'Cr 1');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('dsar', 'f', 'f', 'Flow', true, '{"score": {"method": "priority_weighted"}, "maxOffers": 1}');
SELECT kaireon.publish_decision_flow('dsar', 'f');
SELECT offer_id FROM kaireon.recommend('dsar', 'cust-x', 'web', 'hero') \gset rec_
SELECT recommendation_id AS rec_id FROM kaireon.interaction_history WHERE tenant_id = 'dsar' AND customer_id = 'cust-x' LIMIT 1 \gset
SELECT kaireon.respond('dsar', 'cust-x', 'click', recommendation_id => :'rec_id', rank => 1, idempotency_key => 'key-x') ->> 'outcome' AS responded;
-- ... and directly, a row in every other table that holds customer data.
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('dsar', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key) VALUES
    ('dsar', 'customers', 'customer_id', 'text', false, true), ('dsar', 'customers', 'email', 'text', true, false);
SELECT kaireon.publish_data_schema('dsar', 'customers');
INSERT INTO kaireon_t_dsar.ds_customers (customer_id, email) VALUES ('cust-x', 'x@example.com'), ('cust-y', 'y@example.com');
SET session_replication_role = replica;   -- (parents of the assignments and journeys are not needed here)
INSERT INTO kaireon.impressions (tenant_id, id, customer_id) VALUES ('dsar', 'imp-x', 'cust-x'), ('dsar', 'imp-y', 'cust-y');
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope) VALUES ('dsar', 'sup-x', 'cust-x', 'global'), ('dsar', 'sup-y', 'cust-y', 'global');
INSERT INTO kaireon.channel_deliveries (tenant_id, id, interaction_id, channel_type)
    SELECT 'dsar', 'del-x', id, 'email' FROM kaireon.interaction_history WHERE tenant_id = 'dsar' AND interaction_type = 'outcome';
INSERT INTO kaireon.channel_deliveries (tenant_id, id, interaction_id, channel_type) VALUES ('dsar', 'del-other', 'other-interaction', 'email');
INSERT INTO kaireon.interaction_summaries (tenant_id, id, period_type, period_key, customer_id) VALUES
    ('dsar', 'sum-x', 'all', 'all', 'cust-x'), ('dsar', 'sum-y', 'all', 'all', 'cust-y'), ('dsar', 'sum-all', 'day', '2026-01-01', NULL);
INSERT INTO kaireon.metric_values (tenant_id, id, metric_id, customer_id) VALUES ('dsar', 'mv-x', 'm', 'cust-x');
INSERT INTO kaireon.customer_engagement_health (tenant_id, id, customer_id, score) VALUES ('dsar', 'eh-x', 'cust-x', 0.5), ('dsar', 'eh-y', 'cust-y', 0.5);
INSERT INTO kaireon.customer_clv (tenant_id, id, customer_id) VALUES ('dsar', 'clv-x', 'cust-x');
INSERT INTO kaireon.consent_records (tenant_id, id, subject_id, purpose, status) VALUES
    ('dsar', 'cons-x', 'cust-x', 'marketing_email', 'granted'), ('dsar', 'cons-y', 'cust-y', 'marketing_email', 'granted');
INSERT INTO kaireon.identity_links (tenant_id, id, canonical_id, identifier_type, identifier_value) VALUES
    ('dsar', 'idl-email', 'cust-x', 'email', 'x@example.com'),
    ('dsar', 'idl-alias', 'cust-main', 'customer_id', 'cust-x'),
    ('dsar', 'idl-y', 'cust-y', 'email', 'y@example.com');
INSERT INTO kaireon.experiment_assignments (tenant_id, id, customer_id, experiment_id, variant) VALUES ('dsar', 'ea-x', 'cust-x', 'e', 'champion');
INSERT INTO kaireon.variant_assignments (tenant_id, id, customer_id, experiment_key, variant_name) VALUES ('dsar', 'va-x', 'cust-x', 'e', 'b');
INSERT INTO kaireon.attribution_results (tenant_id, id, customer_id, conversion_id, model) VALUES ('dsar', 'at-x', 'cust-x', 'conv', 'last_touch');
INSERT INTO kaireon.journey_enrollments (tenant_id, id, journey_id, customer_id) VALUES ('dsar', 'je-x', 'j', 'cust-x');
INSERT INTO kaireon.negotiation_sessions (tenant_id, id, customer_id, offer_id) VALUES ('dsar', 'ns-x', 'cust-x', 'o1');
INSERT INTO kaireon.trigger_rule_firings (tenant_id, id, trigger_rule_id, customer_id, event_type, fired_at) VALUES
    ('dsar', 'trf-x', 'r', 'cust-x', 'click', '2026-01-01'), ('dsar', 'trf-y', 'r', 'cust-y', 'click', '2026-01-01');
INSERT INTO kaireon.geofence_presences (tenant_id, customer_id, geofence_id, entered_at, last_seen_at) VALUES
    ('dsar', 'cust-x', 'g', '2026-01-01', '2026-01-01'), ('dsar', 'cust-y', 'g', '2026-01-01', '2026-01-01');
INSERT INTO kaireon.dead_letter_events (tenant_id, id, topic, payload) VALUES
    ('dsar', 'dl-x', 'interaction.recorded', '{"customerId": "cust-x"}'), ('dsar', 'dl-y', 'interaction.recorded', '{"customerId": "cust-y"}');
INSERT INTO kaireon.model_shadow_scores (tenant_id, id, model_id, customer_id, score) VALUES
    ('dsar', 'ss-x', 'm', 'cust-x', 0.5), ('dsar', 'ss-y', 'm', 'cust-y', 0.5);
INSERT INTO kaireon.campaign_decisions (tenant_id, campaign_run_id, customer_id, rank, offer_id, channel_id, score,
                                        arbitrated_value, recommendation_id) VALUES
    ('dsar', 'run', 'cust-x', 1, 'o1', 'web', 1, 1, 'rec-x'), ('dsar', 'run', 'cust-y', 1, 'o1', 'web', 1, 1, 'rec-y');
RESET session_replication_role;
-- the same customer id in another tenant is another person
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope) VALUES ('dsar_other', 'sup-other', 'cust-x', 'global');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('dsar_other', 'cust-x', 'impression');

-- Every kaireon table with a customer_id column is listed here: a new one must be added below
-- (and is then covered by dsar_export, which finds such tables from the catalog).
SELECT c.relname AS unlisted_customer_table FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'customer_id')
   AND c.relname NOT IN ('interaction_history', 'impressions', 'suppressions', 'decision_traces', 'decision_locks',
                         'interaction_summaries', 'metric_values', 'customer_engagement_health', 'customer_clv',
                         'experiment_assignments', 'variant_assignments', 'attribution_results',
                         'journey_enrollments', 'negotiation_sessions', 'model_shadow_scores', 'campaign_decisions',
                         'trigger_rule_firings', 'geofence_presences');

-- What the suite created for cust-x, table by table, with each row's key.
CREATE TEMP TABLE expected (t text, k text);
INSERT INTO expected
SELECT 'interaction_history', id FROM kaireon.interaction_history WHERE tenant_id = 'dsar' AND customer_id = 'cust-x'
UNION ALL SELECT 'decision_locks', customer_id FROM kaireon.decision_locks WHERE tenant_id = 'dsar' AND customer_id = 'cust-x'
UNION ALL SELECT 'decision_traces', id FROM kaireon.decision_traces WHERE tenant_id = 'dsar' AND customer_id = 'cust-x'
UNION ALL SELECT 'outbox_events', id FROM kaireon.outbox_events WHERE tenant_id = 'dsar'
UNION ALL SELECT 'respond_idempotency', 'key-x'
UNION ALL SELECT 'kaireon_t_dsar.ds_customers', 'cust-x'
UNION ALL VALUES ('impressions', 'imp-x'), ('suppressions', 'sup-x'), ('channel_deliveries', 'del-x'),
    ('interaction_summaries', 'sum-x'), ('metric_values', 'mv-x'), ('customer_engagement_health', 'eh-x'),
    ('customer_clv', 'clv-x'), ('consent_records', 'cons-x'), ('identity_links', 'idl-email'), ('identity_links', 'idl-alias'),
    ('experiment_assignments', 'ea-x'), ('variant_assignments', 'va-x'), ('attribution_results', 'at-x'),
    ('journey_enrollments', 'je-x'), ('negotiation_sessions', 'ns-x'), ('dead_letter_events', 'dl-x'),
    ('model_shadow_scores', 'ss-x'), ('campaign_decisions', 'cust-x'), ('trigger_rule_firings', 'trf-x'),
    ('geofence_presences', 'cust-x');
SELECT t, count(*) FROM expected GROUP BY 1 ORDER BY 1;

-- The export: one document, every row of the subject and no other.
SELECT kaireon.dsar_export('dsar', 'cust-x', requested_by => 'dpo@example.com', reason => 'access request') AS doc \gset
SELECT (:'doc'::jsonb) ->> 'tenantId' AS tenant, (:'doc'::jsonb) ->> 'subjectId' AS subject,
       (:'doc'::jsonb) ->> 'subjectType' AS subject_type, (:'doc'::jsonb) ? 'exportedAt' AS dated;
CREATE TEMP TABLE exported AS
SELECT e.key AS t, coalesce(r ->> 'id', r ->> 'idempotency_key', r ->> 'customer_id') AS k, r
  FROM jsonb_each((:'doc'::jsonb) -> 'data') e, jsonb_array_elements(e.value) r;
SELECT 'missing' AS problem, * FROM (SELECT * FROM expected EXCEPT SELECT t, k FROM exported) x
UNION ALL SELECT 'extra', * FROM (SELECT t, k FROM exported EXCEPT SELECT * FROM expected) y;
SELECT r ->> 'email' AS email FROM exported WHERE t = 'kaireon_t_dsar.ds_customers';
SELECT request_type, subject_id, status, requested_by, reason, result FROM kaireon.dsar_requests WHERE tenant_id = 'dsar';

-- The erasure: every one of those rows goes; cust-y and the other tenant keep theirs.
SELECT kaireon.dsar_delete('dsar', 'cust-x', requested_by => 'dpo@example.com') - 'requestId' AS result;
SELECT (kaireon.dsar_export('dsar', 'cust-x') -> 'data') AS data_after_delete;
SELECT t, k FROM expected e WHERE t NOT LIKE 'kaireon_t_%'
   AND (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM kaireon.%I x WHERE %s', e.t,
        CASE WHEN e.t IN ('decision_locks', 'campaign_decisions', 'geofence_presences') THEN format('x.customer_id = %L', e.k)
                 WHEN e.t = 'respond_idempotency' THEN format('x.idempotency_key = %L', e.k)
                 ELSE format('x.id = %L', e.k) END), false, true, '')))[1]::text::int > 0;
SELECT (SELECT count(*) FROM kaireon.suppressions WHERE tenant_id = 'dsar') AS other_subject_suppressions,
       (SELECT count(*) FROM kaireon.identity_links WHERE tenant_id = 'dsar') AS other_subject_links,
       (SELECT count(*) FROM kaireon.interaction_summaries WHERE tenant_id = 'dsar') AS summaries_left,
       (SELECT count(*) FROM kaireon.channel_deliveries WHERE tenant_id = 'dsar') AS deliveries_left,
       (SELECT count(*) FROM kaireon_t_dsar.ds_customers) AS customers_left,
       (SELECT count(*) FROM kaireon.model_shadow_scores WHERE tenant_id = 'dsar') AS other_subject_shadow_scores,
       (SELECT count(*) FROM kaireon.campaign_decisions WHERE tenant_id = 'dsar') AS other_subject_campaign_rows,
       (SELECT count(*) FROM kaireon.suppressions WHERE tenant_id = 'dsar_other') AS other_tenant_rows;
SELECT request_type, status, result -> 'rows' AS rows FROM kaireon.dsar_requests WHERE tenant_id = 'dsar' ORDER BY created_at, request_type DESC;
-- The audit chain still verifies: the erasure touched no audit row (audit rows hold
-- configuration changes, no customer data), and the audit rows of the requests themselves
-- carry the subject id redacted.
SELECT intact, broken_reason FROM kaireon.verify_audit_chain('dsar');
SELECT count(*) AS dsar_audit_rows,
       count(*) FILTER (WHERE a.after ->> 'subject_id' = '[redacted]') AS redacted,
       count(*) FILTER (WHERE a::text LIKE '%cust-x%') AS naming_subject
  FROM kaireon.audit_logs a WHERE tenant_id = 'dsar' AND entity_type = 'dsar_requests';

-- Under a legal hold on interactions, the interaction rows stay and are reported.
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days, legal_hold) VALUES ('dsar_h', 'interactions', 30, true);
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('dsar_h', 'cust-h', 'impression');
INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('dsar_h', 'cust-h');
INSERT INTO kaireon.consent_records (tenant_id, subject_id, purpose, status) VALUES ('dsar_h', 'cust-h', 'p', 'granted');
SELECT kaireon.dsar_delete('dsar_h', 'cust-h') - 'requestId' AS result;
SELECT (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'dsar_h') AS history_kept,
       (SELECT count(*) FROM kaireon.consent_records WHERE tenant_id = 'dsar_h') AS consent_left;

-- A customer data table whose schema went back to draft (to be edited) keeps its table and
-- rows: still covered, by the key column the table has.
INSERT INTO kaireon_t_dsar.ds_customers (customer_id, email) VALUES ('cust-z', 'z@example.com');
UPDATE kaireon.data_schemas SET status = 'draft' WHERE tenant_id = 'dsar' AND id = 'customers';
SELECT kaireon.dsar_export('dsar', 'cust-z') -> 'data' -> 'kaireon_t_dsar.ds_customers' -> 0 ->> 'email' AS exported_while_draft;
SELECT kaireon.dsar_delete('dsar', 'cust-z') -> 'deleted' AS deleted_while_draft;
SELECT count(*) AS cust_z_customers_left FROM kaireon_t_dsar.ds_customers WHERE customer_id = 'cust-z';
UPDATE kaireon.data_schemas SET status = 'published' WHERE tenant_id = 'dsar' AND id = 'customers';

-- An interaction in a monthly partition retention detached (an archive, no longer under
-- interaction_history): the deliveries and idempotency keys pointing at it are exported and
-- erased with it.
SELECT count(*) >= 0 AS old_partition FROM kaireon.create_interaction_partitions(0, ((now() - interval '400 days') AT TIME ZONE 'UTC')::date);
SELECT 'interaction_history_p' || to_char((now() - interval '400 days') AT TIME ZONE 'UTC', 'YYYY_MM') AS archive \gset
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, occurred_at)
    VALUES ('dsar', 'i-archived', 'cust-z', 'recommendation', now() - interval '400 days');
ALTER TABLE kaireon.interaction_history DETACH PARTITION kaireon.:"archive";
SET session_replication_role = replica;
INSERT INTO kaireon.channel_deliveries (tenant_id, id, interaction_id, channel_type, provider_message_id)
    VALUES ('dsar', 'del-archived', 'i-archived', 'email', 'msg-to-z@example.com');
INSERT INTO kaireon.respond_idempotency (tenant_id, idempotency_key, interaction_id) VALUES ('dsar', 'key-archived', 'i-archived');
RESET session_replication_role;
SELECT CASE e.key WHEN :'archive' THEN 'the archive' ELSE e.key END AS exported, jsonb_array_length(e.value) AS n
  FROM jsonb_each(kaireon.dsar_export('dsar', 'cust-z') -> 'data') e ORDER BY 1;
SELECT d - :'archive' AS deleted_with_archive, d -> :'archive' AS archive_rows
  FROM (SELECT kaireon.dsar_delete('dsar', 'cust-z') -> 'deleted' AS d) x;
SELECT (SELECT count(*) FROM kaireon.channel_deliveries WHERE tenant_id = 'dsar' AND id = 'del-archived') AS archived_deliveries_left,
       (SELECT count(*) FROM kaireon.respond_idempotency WHERE tenant_id = 'dsar' AND idempotency_key = 'key-archived') AS archived_keys_left;

-- Rows under an identifier linked to the subject: before signing in, a visitor known by its
-- e-mail got a trace, an interaction and an outbox event; link_identity moves the interaction
-- and marks the e-mail's decision lock merged into the customer. The export and the erasure
-- of the customer cover the rows under the e-mail too.
INSERT INTO kaireon.decision_traces (tenant_id, request_id, customer_id) VALUES ('dsar', 'r-w', 'w@example.com');
INSERT INTO kaireon.outbox_events (tenant_id, topic, payload) VALUES ('dsar', 'interaction.recorded', '{"customerId": "w@example.com"}');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('dsar', 'w@example.com', 'recommendation');
SELECT kaireon.link_identity('dsar', 'email', 'w@example.com', 'cust-w') -> 'moved' AS moved;
SELECT e.key AS exported, jsonb_array_length(e.value) AS n
  FROM jsonb_each(kaireon.dsar_export('dsar', 'cust-w') -> 'data') e ORDER BY 1;
SELECT kaireon.dsar_delete('dsar', 'cust-w') -> 'deleted' AS deleted_with_linked;
SELECT (SELECT count(*) FROM kaireon.decision_locks WHERE tenant_id = 'dsar' AND (customer_id IN ('cust-w', 'w@example.com') OR merged_into = 'cust-w')) AS locks_left,
       (SELECT count(*) FROM kaireon.decision_traces WHERE tenant_id = 'dsar' AND customer_id IN ('cust-w', 'w@example.com')) AS traces_left,
       (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'dsar' AND payload ->> 'customerId' IN ('cust-w', 'w@example.com')) AS events_left,
       (SELECT count(*) FROM kaireon.identity_links WHERE tenant_id = 'dsar' AND canonical_id = 'cust-w') AS links_left;

-- Checks: arguments, subject type, tenant, and the tenant a role acts for.
SELECT kaireon.dsar_export('dsar', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.dsar_export('dsar', 'cust-x', subject_type => 'account');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.dsar_delete('no-such-tenant', 'cust-x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
CREATE ROLE regress_dsar_app;
SELECT kaireon.grant_app_role('regress_dsar_app');
SET ROLE regress_dsar_app;
SET kaireon.tenant_id = 'dsar_other';
SELECT kaireon.dsar_delete('dsar', 'cust-y');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT jsonb_object_keys(kaireon.dsar_export('dsar_other', 'cust-x') -> 'data') AS own_tenant_tables;
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS cust_y_rows_kept FROM kaireon.suppressions WHERE tenant_id = 'dsar' AND customer_id = 'cust-y';

-- The consent recommend honours comes from consent_records: the latest row of the customer
-- for the channel's purpose (dry runs, so nothing is recorded).
UPDATE kaireon.channels SET consent_purpose = 'marketing_web' WHERE tenant_id = 'dsar' AND id = 'web';
SELECT count(*) AS offers_without_record FROM kaireon.recommend('dsar', 'cust-c', 'web', 'hero', options => '{"dry_run": true}');
INSERT INTO kaireon.consent_records (tenant_id, subject_id, purpose, status, revoked_at)
    VALUES ('dsar', 'cust-c', 'marketing_web', 'revoked', now());
SELECT count(*) AS offers_revoked FROM kaireon.recommend('dsar', 'cust-c', 'web', 'hero', options => '{"dry_run": true}');
SELECT explanation ->> 'reason' AS why FROM kaireon.recommend('dsar', 'cust-c', 'web', 'hero', options => '{"dry_run": true, "debug": true}');
INSERT INTO kaireon.consent_records (tenant_id, subject_id, purpose, status, granted_at)
    VALUES ('dsar', 'cust-c', 'marketing_web', 'granted', now());
SELECT count(*) AS offers_granted_again FROM kaireon.recommend('dsar', 'cust-c', 'web', 'hero', options => '{"dry_run": true}');

-- clean up
DELETE FROM kaireon.tenants WHERE id LIKE 'dsar%';
DROP SCHEMA kaireon_t_dsar CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE schema_name = 'kaireon_t_dsar';
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_dsar_app');
DROP OWNED BY regress_dsar_app;
DROP ROLE regress_dsar_app;
