-- Every model of the platform's data model (docs/schema.md, from the seed data model
-- document: 101 models) has its table in schema kaireon, and docs/schema.md names every table.
CREATE TEMP TABLE models (model text PRIMARY KEY, table_name text NOT NULL UNIQUE);
INSERT INTO models VALUES
    ('Tenant', 'tenants'),
    ('Category', 'categories'),
    ('SubCategory', 'sub_categories'),
    ('Channel', 'channels'),
    ('Placement', 'placements'),
    ('FlowRoute', 'flow_routes'),
    ('Offer', 'offers'),
    ('Creative', 'creatives'),
    ('OutcomeType', 'outcome_types'),
    ('QualificationRule', 'qualification_rules'),
    ('QualificationRuleScope', 'qualification_rule_scopes'),
    ('ContactPolicy', 'contact_policies'),
    ('ContactPolicyScope', 'contact_policy_scopes'),
    ('DecisionFlow', 'decision_flows'),
    ('ArbitrationProfile', 'arbitration_profiles'),
    ('CrossOfferConstraint', 'cross_offer_constraints'),
    ('GuardrailRule', 'guardrail_rules'),
    ('Suppression', 'suppressions'),
    ('VolumeConstraint', 'volume_constraints'),
    ('BudgetAllocation', 'budget_allocations'),
    ('InteractionHistory', 'interaction_history'),
    ('InteractionSummary', 'interaction_summaries'),
    ('Impression', 'impressions'),
    ('CustomerEngagementHealth', 'customer_engagement_health'),
    ('CustomerCLV', 'customer_clv'),
    ('IdentityLink', 'identity_links'),
    ('Segment', 'segments'),
    ('ConsentRecord', 'consent_records'),
    ('AlgorithmModel', 'algorithm_models'),
    ('ModelVersion', 'model_versions'),
    ('ModelAdaptation', 'model_adaptations'),
    ('ModelApproval', 'model_approvals'),
    ('ModelDriftCheck', 'model_drift_checks'),
    ('Experiment', 'experiments'),
    ('ExperimentChallenger', 'experiment_challengers'),
    ('ExperimentAssignment', 'experiment_assignments'),
    ('VariantAssignment', 'variant_assignments'),
    ('MlJobResult', 'ml_job_results'),
    ('AuditLog', 'audit_logs'),
    ('RetentionConfig', 'retention_configs'),
    ('DsarRequest', 'dsar_requests'),
    ('PolicySnapshot', 'policy_snapshots'),
    ('DecisionTrace', 'decision_traces'),
    ('ApprovalRequest', 'approval_requests'),
    ('ApprovalRequestStage', 'approval_request_stages'),
    ('CustomRole', 'custom_roles'),
    ('CustomRoleAssignment', 'custom_role_assignments'),
    ('SsoConfig', 'sso_configs'),
    ('WebAuthnCredential', 'webauthn_credentials'),
    ('User', 'users'),
    ('Account', 'accounts'),
    ('Session', 'sessions'),
    ('VerificationToken', 'verification_tokens'),
    ('ApiKey', 'api_keys'),
    ('OAuthClient', 'oauth_clients'),
    ('TenantSettings', 'tenant_settings'),
    ('PlatformSetting', 'platform_settings'),
    ('OutboxEvent', 'outbox_events'),
    ('DeadLetterEvent', 'dead_letter_events'),
    ('ChannelDelivery', 'channel_deliveries'),
    ('ExportCheckpoint', 'export_checkpoints'),
    ('AlertRule', 'alert_rules'),
    ('Run', 'runs'),
    ('CampaignRun', 'campaign_runs'),
    ('TriggerRule', 'trigger_rules'),
    ('SimulationRun', 'simulation_runs'),
    ('AttributionResult', 'attribution_results'),
    ('Geofence', 'geofences'),
    ('TenantRegion', 'tenant_regions'),
    ('Conversation', 'conversations'),
    ('ConversationMessage', 'conversation_messages'),
    ('AiRecommendation', 'ai_recommendations'),
    ('CustomerSegmentAi', 'customer_segments_ai'),
    ('CreativePerformance', 'creative_performance'),
    ('AiAttachment', 'ai_attachments'),
    ('AiImportProposal', 'ai_import_proposals'),
    ('AiImportApply', 'ai_import_applies'),
    ('AiImportTokenLedger', 'ai_import_token_ledgers'),
    ('AiImportSkipDigest', 'ai_import_skip_digests'),
    ('NegotiationSession', 'negotiation_sessions'),
    ('Journey', 'journeys'),
    ('JourneyEnrollment', 'journey_enrollments'),
    ('Connector', 'connectors'),
    ('DataSchema', 'data_schemas'),
    ('SchemaField', 'schema_fields'),
    ('SchemaJoin', 'schema_joins'),
    ('DataSource', 'data_sources'),
    ('Pipeline', 'pipelines'),
    ('PipelineIrVersion', 'pipeline_ir_versions'),
    ('PipelineRun', 'pipeline_runs'),
    ('Template', 'templates'),
    ('ContentItem', 'content_items'),
    ('ContentVersion', 'content_versions'),
    ('ContentSource', 'content_sources'),
    ('Treatment', 'treatments'),
    ('ReportTemplate', 'report_templates'),
    ('ReportSchedule', 'report_schedules'),
    ('ReportRun', 'report_runs'),
    ('MetricDefinition', 'metric_definitions'),
    ('MetricValue', 'metric_values'),
    ('SummaryDefinition', 'summary_definitions');
SELECT count(*) AS models FROM models;

-- models without a table: none
SELECT model, table_name FROM models
 WHERE to_regclass(format('kaireon.%I', table_name)) IS NULL ORDER BY model;

-- tables that are not a model (kaireon's own tables and interaction_history partitions)
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relname NOT IN (SELECT table_name FROM models)
 ORDER BY 1;

-- docs/schema.md names every table: none missing
\set schema_doc `cat docs/schema.md`
SELECT c.relname AS undocumented_table FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p')
   AND strpos(:'schema_doc', '`' || c.relname || '`') = 0
 ORDER BY 1;
-- and every model by name
SELECT model AS undocumented_model FROM models
 WHERE strpos(:'schema_doc', '| ' || model || ' |') = 0 ORDER BY 1;
