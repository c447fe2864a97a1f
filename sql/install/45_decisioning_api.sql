-- kaireon install script, part 45: the real-time decision (recommend, respond), the
-- configuration cache's invalidation, decision flow publishing, default outcome types, and
-- the records of decisions (policy_snapshots, decision_traces).
-- See docs/recommend.md.
-- It follows the tables it compiles and invalidates: 10_decisioning.sql, 20_customer.sql and
-- 25_data_schemas.sql (segments, data_schemas), 30_operator.sql (tenant_settings).

-- The configuration version of each tenant: renewed (from a sequence, so never reused) by
-- the trigger kaireon.config_changed in every transaction that changes the tenant's
-- configuration; the recommend cache of every backend compares it (src/config/cache.c).
CREATE SEQUENCE kaireon.config_version_seq;
COMMENT ON SEQUENCE kaireon.config_version_seq IS
    'kaireon''s marker of configuration changes that bypass the versions: a relcache invalidation of this sequence (logical replication''s apply, src/config/invalidate.c) makes every backend recompile every cached configuration. Configuration versions themselves are a per-tenant counter (kaireon.config_versions).';

CREATE TABLE kaireon.config_versions (
    tenant_id               text NOT NULL PRIMARY KEY REFERENCES kaireon.tenants (id) ON DELETE CASCADE,
    version                 bigint NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    -- set (with a new version) by the tenant's first identity link, never cleared: decisions
    -- resolve identifiers from then on (docs/identity.md, src/config/invalidate.c)
    identity_links          boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE kaireon.config_versions IS
    'kaireon''s own table: the current configuration version of each tenant, renewed whenever its decisioning configuration changes; a relcache invalidation on this table tells every backend to re-check its cached configurations.';
COMMENT ON COLUMN kaireon.config_versions.identity_links IS
    'Whether the tenant has written an identity link (set with a new version by the first one, never cleared): its decisions resolve identifiers through kaireon.identity_links (docs/identity.md).';

-- One row per customer that has had a recorded decision: recommend upserts it first and
-- holds its lock until commit, so decisions for one customer are serialised (per-customer
-- caps are exact) while different customers never wait for each other.
CREATE TABLE kaireon.decision_locks (
    tenant_id               text NOT NULL,  -- checked reference (20_customer.sql)
    customer_id             text NOT NULL,
    decisions               bigint NOT NULL DEFAULT 0 CHECK (decisions >= 0),
    last_decision_at        timestamptz NOT NULL DEFAULT now(),
    -- the customer kaireon.link_identity merged this identifier into (docs/identity.md)
    merged_into             text,
    PRIMARY KEY (tenant_id, customer_id)
);
CREATE INDEX ON kaireon.decision_locks (last_decision_at);
COMMENT ON TABLE kaireon.decision_locks IS
    'kaireon''s own table: one row per customer with a recorded decision (count and time of the last); recommend locks it for the rest of the transaction so that decisions for one customer are serialised and per-customer caps stay exact.';
COMMENT ON COLUMN kaireon.decision_locks.merged_into IS
    'The customer kaireon.link_identity merged this identifier into: a decision that locks this row resolves its identifier again and decides for that customer (docs/identity.md).';

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

CREATE FUNCTION kaireon_internal._period_end(period text, t timestamptz) RETURNS timestamptz
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
COMMENT ON FUNCTION kaireon_internal._period_end(text, timestamptz) IS
    'Internal: end of the calendar period (daily, weekly from Monday, monthly, quarterly; UTC) holding t.';

CREATE FUNCTION kaireon_internal._period_key(period_type text, t timestamptz) RETURNS text
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
COMMENT ON FUNCTION kaireon_internal._period_key(text, timestamptz) IS
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

-- The same signal where no statement trigger fires: logical replication's apply worker (and
-- any session with session_replication_role = replica) fires only row triggers enabled
-- REPLICA or ALWAYS. These row triggers are enabled REPLICA, so they never fire on the
-- primary's write path; they write nothing and make every backend recompile its cached
-- configurations at commit (src/config/invalidate.c, docs/recommend.md "Logical replication").
CREATE FUNCTION kaireon_internal._config_changed_replica() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_config_changed_replica'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._config_changed_replica() IS
    'Internal: AFTER row (and TRUNCATE) trigger enabled REPLICA on the decisioning configuration tables: in the logical replication apply worker (or under session_replication_role = replica) makes every backend recompile its cached configurations at commit; writes nothing.';

CREATE FUNCTION kaireon_internal._add_replica_invalidation(tbl regclass, update_when text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;
COMMENT ON FUNCTION kaireon_internal._add_replica_invalidation(regclass, text) IS
    'Internal (install scripts): adds the REPLICA-enabled invalidation triggers (kaireon_internal._config_changed_replica) to a configuration table; update_when limits the UPDATE trigger of a counter table to changes of its definition.';

SELECT kaireon_internal._add_replica_invalidation(format('kaireon.%I', t)::regclass)
  FROM unnest(ARRAY['tenants', 'tenant_settings', 'channels', 'placements', 'categories', 'sub_categories',
                    'offers', 'creatives', 'outcome_types', 'qualification_rules',
                    'qualification_rule_scopes', 'contact_policies', 'contact_policy_scopes',
                    'guardrail_rules', 'decision_flows', 'flow_routes', 'arbitration_profiles',
                    'segments', 'data_schemas']) AS t;
SELECT kaireon_internal._add_replica_invalidation('kaireon.volume_constraints',
    '(OLD.name, OLD.scope, OLD.scope_id, OLD.max_volume, OLD.period, OLD.status)'
    ' IS DISTINCT FROM (NEW.name, NEW.scope, NEW.scope_id, NEW.max_volume, NEW.period, NEW.status)');
SELECT kaireon_internal._add_replica_invalidation('kaireon.budget_allocations',
    '(OLD.name, OLD.scope, OLD.scope_id, OLD.period_type, OLD.period_key, OLD.max_impressions, OLD.max_spend,'
    ' OLD.max_conversions, OLD.status) IS DISTINCT FROM (NEW.name, NEW.scope, NEW.scope_id, NEW.period_type,'
    ' NEW.period_key, NEW.max_impressions, NEW.max_spend, NEW.max_conversions, NEW.status)');

-- Offer schedules are validated when written (a bad date would otherwise stop the tenant's
-- decisions when its configuration is compiled).
CREATE TRIGGER validate_schedule BEFORE INSERT OR UPDATE OF schedule ON kaireon.offers
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('offer_schedule', '', 'schedule');

-- Decision flows: drafts are validated when written; published versions never change.
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF draft_config ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon.validate_config_trigger('decision_flow', '', 'draft_config');

CREATE FUNCTION kaireon_internal._published_versions_append_only() RETURNS trigger
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
CREATE TRIGGER published_versions_append_only BEFORE UPDATE OF published_versions ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._published_versions_append_only();

-- Flow graphs (docs/flows.md): the published version's call_flow nodes name published flows of
-- the tenant, nest at most 8 deep and never call back; checked whoever writes a published version.
CREATE FUNCTION kaireon_internal._check_flow_calls() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_check_flow_calls'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._check_flow_calls() IS
    'Internal: BEFORE INSERT OR UPDATE trigger on decision_flows refusing (22023, naming the flow and node) a published version 2 flow whose call_flow names no published flow of the tenant, nests calls deeper than 8 flows, or closes a cycle of calls.';
CREATE TRIGGER check_flow_calls BEFORE INSERT OR UPDATE OF published_versions, published_version
    ON kaireon.decision_flows
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._check_flow_calls();

CREATE FUNCTION kaireon.publish_decision_flow(tenant_id text, key text, notes text DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;
COMMENT ON FUNCTION kaireon.publish_decision_flow(text, text, text) IS
    'Publishes a decision flow''s draft_config as a new immutable version (appended to published_versions) and makes it the one recommend runs; returns the version number. With four-eyes enabled it files an approval request (action decision_flow.publish) instead and returns NULL.';

-- The ten default outcome types of every new tenant (spec section 5). A row trigger writing
-- one tenant's rows with plain VALUES: on Citus it runs on the node holding the new tenant and
-- writes its co-located shard (a statement trigger's transition table cannot be read there).
CREATE FUNCTION kaireon_internal._seed_outcome_types() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
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
$fn$;
COMMENT ON FUNCTION kaireon_internal._seed_outcome_types() IS
    'Internal: AFTER INSERT row trigger on tenants giving each new tenant the ten default outcome types (system rows).';
CREATE TRIGGER seed_outcome_types AFTER INSERT ON kaireon.tenants
    FOR EACH ROW EXECUTE FUNCTION kaireon_internal._seed_outcome_types();

-- recommend's row is a named composite type rather than RETURNS TABLE: the parser, the planner
-- and the executor each ask for a set-returning function's row type, and a RETURNS TABLE
-- function's is rebuilt from its OUT parameters in pg_proc every time (three times a
-- statement, about 40k instructions), a composite type's is read from the type cache.
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
    AS 'MODULE_PATHNAME', 'kaireon_recommend'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.recommend(text, text, text, text, jsonb, integer, text, jsonb) IS
    'The real-time decision: ranked, policy-checked, scored offers for a customer on a channel (and placement), recorded in the caller''s transaction unless options.dry_run. Options: dry_run, debug (dropped candidates follow as rows without rank), trace, exclude_offers, exclude_creatives, placements, deduplicate, explain (false: the decisions'' explanation column is NULL, not built). See docs/recommend.md.';

CREATE FUNCTION kaireon.recommend_json(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_recommend_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.recommend_json(jsonb) IS
    'kaireon.recommend with a JSON request and response in the REST shape, kaireon''s names or KaireonAI''s (channelId, placementId, placements [{placementId, limit}], limit, decisionFlowKey / blueprintKey, sessionId, attributes, segments, locale, currency): {recommendationId, count, degradedScoring, decisions[] (with categoryName and the creative''s personalized content), degradedModels[] (when a model the decision names was missing or broken and scoring fell back), reason (when nothing qualifies), placements[], debug}. See docs/json-api.md.';

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
    'kaireon.respond with a JSON request (tenantId, customerId, outcome, recommendationId, rank, placementId, creativeId, offerId, idempotencyKey, conversionValue, context, occurredAt or timestamp, channelId, direction, outcomeDetails). See docs/json-api.md.';

CREATE FUNCTION kaireon.respond_bulk(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond_bulk'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond_bulk(jsonb) IS
    'Records 1 to 1000 outcomes ({"items": [...]} of respond_json requests); each item in a subtransaction, so a bad item is reported (index, SQLSTATE, message) and the good ones are kept.';

-- The tenant-first forms of the JSON entry points: the same calls with the tenant as their
-- first argument (the request's tenantId may be left out, or must name the same tenant), so
-- that Citus can delegate them to the node holding the tenant (kaireon.distribute()).
CREATE FUNCTION kaireon.recommend_json(tenant_id text, request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_recommend_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.recommend_json(text, jsonb) IS
    'kaireon.recommend_json for tenant_id: request.tenantId may be left out, or must equal tenant_id (22023). The form Citus delegates to the tenant''s node.';

CREATE FUNCTION kaireon.respond_json(tenant_id text, request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond_json'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond_json(text, jsonb) IS
    'kaireon.respond_json for tenant_id: request.tenantId may be left out, or must equal tenant_id (22023). The form Citus delegates to the tenant''s node.';

CREATE FUNCTION kaireon.respond_bulk(tenant_id text, request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'kaireon_respond_bulk'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.respond_bulk(text, jsonb) IS
    'kaireon.respond_bulk for tenant_id: every item is an outcome of tenant_id (an item naming another tenantId fails on its own, 22023). The form Citus delegates to the tenant''s node.';

-- ---------------------------------------------------------------------------------------
-- Decision records (written by recommend: src/decision/persist.c)
-- ---------------------------------------------------------------------------------------

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
