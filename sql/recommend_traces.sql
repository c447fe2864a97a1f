-- Decision traces and policy snapshots (docs/recommend.md step 11): a forced trace
-- (options.trace) writes a decision_traces row with the funnel counts, the dropped
-- candidates, the selected offers and the policy snapshot hash, and the hash's
-- policy_snapshots row once; the sample rate decides otherwise (tenants.settings, else
-- tenant_settings, else 0.1); dry runs write none. Also the debug rows of recommend.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('rtr', 'Traces', 'rtr', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('rtr', 'web', 'Web', 'web');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name) VALUES ('rtr', 'hero', 'web', 'Hero'), ('rtr', 'side', 'web', 'Side');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('rtr', 'cards', 'Cards');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority) VALUES
    ('rtr', 'o1', 'One', 'cards', 'active', 90), ('rtr', 'o2', 'Two', 'cards', 'active', 80),
    ('rtr', 'o3', 'Three', NULL, 'active', 70), ('rtr', 'o4', 'Four', NULL, 'active', 60),
    ('rtr', 'o5', 'Five', NULL, 'active', 50);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
    SELECT 'rtr', o || '-web', o, 'web', o FROM unnest(ARRAY['o1', 'o2', 'o3', 'o4', 'o5']) o;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('rtr', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('rtr', 'main');
-- one drop at each stage: o2 fails a qualification rule, o3 is suppressed, o4 is held by a
-- contact policy; o1 and o5 remain and o1 is selected (maxOffers 1)
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('rtr', 'q-adults', 'Adults', 'attribute_condition', 'offer', 'o2', '{"attribute": "age", "operator": "gte", "value": 18}');
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, scope_id, reason) VALUES ('rtr', 'c1', 'offer', 'o3', 'asked');
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('rtr', 'p-seg', 'Not for anyone', 'segment_exclusion', 'offer', 'o4', '{"segmentIds": ["nobody"]}'),
    ('rtr', 'p-cool', 'Cool o4', 'cooldown', 'offer', 'o4', '{"hours": 24}');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    VALUES ('rtr', 'c1', 'recommendation', 'o4', 'web', now() - interval '1 hour');
INSERT INTO kaireon.guardrail_rules (tenant_id, id, key, name, severity, expression_ast) VALUES
    ('rtr', 'g1', 'some-priority', 'Some priority', 'soft', '{"field": "offer.priority", "op": "gte", "value": 1}');

-- ---------------------------------------------------------------------------------------
-- 1. With the sample rate 0, a recording decision writes no trace; options.trace forces one.
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS decisions FROM kaireon.recommend('rtr', 'c1', 'web', context => '{"age": 12}');
SELECT count(*) AS traces FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
CREATE TEMP TABLE t1 AS
SELECT * FROM kaireon.recommend('rtr', 'c1', 'web', 'hero', context => '{"age": 12}', options => '{"trace": true}');
SELECT rank, offer_id FROM t1;
SELECT count(*) AS traces FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
-- the trace: request and recommendation ids (the request id is the recommendation id when
-- kaireon.request_id is not set), customer, channel, placement, flow, the funnel counts,
-- and the policy snapshot hash the decisions name
SELECT d.request_id = t1.recommendation_id AS request_id, d.recommendation_id = t1.recommendation_id AS recommendation_id,
       d.customer_id, d.channel_id, d.placement_id, d.decision_flow_id,
       d.candidate_count, d.after_qualification, d.after_suppression, d.after_contact_policy, d.final_count,
       d.policy_version_hash = t1.explanation ->> 'policySnapshot' AS same_hash, d.duration_ms >= 0 AS duration,
       d.degraded_scoring
  FROM kaireon.decision_traces d JOIN t1 ON d.tenant_id = 'rtr' AND d.recommendation_id = t1.recommendation_id;
-- each dropped candidate with its stage and reason; the scores; the funnel; the selection
SELECT e ->> 'offerId' AS offer, e ->> 'placementId' AS placement, e ->> 'stage' AS stage, e ->> 'reason' AS reason
  FROM kaireon.decision_traces d, jsonb_array_elements(d.qualification_results) e
 WHERE d.tenant_id = 'rtr' ORDER BY 1;
SELECT e ->> 'offerId' AS offer, round((e ->> 'score')::numeric, 4) AS score,
       (SELECT string_agg(k || '=' || round(v::numeric, 4), ' ' ORDER BY k) FROM jsonb_each_text(e -> 'factors') f(k, v)) AS factors
  FROM kaireon.decision_traces d, jsonb_array_elements(d.scoring_results) e WHERE d.tenant_id = 'rtr';
SELECT funnel, selected_offers FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
-- the same drops as the debug rows of a dry run show them
SELECT offer_id, placement_id, explanation ->> 'droppedAt' AS stage, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rtr', 'c1', 'web', 'hero', context => '{"age": 12}', options => '{"dry_run": true, "debug": true}')
 WHERE rank IS NULL ORDER BY offer_id;
-- the policy snapshot of the hash: the active rules, policies and guardrails, once
SELECT s.policy_version_hash = d.policy_version_hash AS same_hash, s.policy_version_hash ~ '^[0-9a-f]{16}$' AS hex16,
       jsonb_path_query_array(s.eligibility_policies, '$[*].id') AS rules,
       jsonb_path_query_array(s.suppression_policies, '$[*].id') AS policies,
       jsonb_path_query_array(s.guardrail_rules, '$[*].key') AS guardrails,
       s.eligibility_policies -> 0 -> 'config' AS rule_config
  FROM kaireon.policy_snapshots s JOIN kaireon.decision_traces d ON d.tenant_id = s.tenant_id
 WHERE s.tenant_id = 'rtr';

-- ---------------------------------------------------------------------------------------
-- 2. One snapshot row per hash: another traced decision under the same configuration adds
--    a trace but no snapshot; an inactive rule does not change the hash; an active one does.
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS decisions FROM kaireon.recommend('rtr', 'c2', 'web', options => '{"trace": true}');
SELECT (SELECT count(*) FROM kaireon.decision_traces WHERE tenant_id = 'rtr') AS traces,
       (SELECT count(*) FROM kaireon.policy_snapshots WHERE tenant_id = 'rtr') AS snapshots,
       (SELECT count(DISTINCT policy_version_hash) FROM kaireon.decision_traces WHERE tenant_id = 'rtr') AS hashes;
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, status, config) VALUES
    ('rtr', 'q-off', 'Inactive', 'attribute_condition', 'inactive', '{"attribute": "x", "operator": "exists"}');
SELECT count(*) AS decisions FROM kaireon.recommend('rtr', 'c2', 'web', options => '{"trace": true}');
SELECT (SELECT count(*) FROM kaireon.policy_snapshots WHERE tenant_id = 'rtr') AS snapshots_after_inactive_rule,
       (SELECT count(DISTINCT policy_version_hash) FROM kaireon.decision_traces WHERE tenant_id = 'rtr') AS hashes;
UPDATE kaireon.qualification_rules SET status = 'active' WHERE tenant_id = 'rtr' AND id = 'q-off';
CREATE TEMP TABLE t2 AS SELECT * FROM kaireon.recommend('rtr', 'c2', 'web', context => '{"x": 1}', options => '{"trace": true}');
SELECT (SELECT count(*) FROM kaireon.policy_snapshots WHERE tenant_id = 'rtr') AS snapshots_after_active_rule,
       (SELECT count(DISTINCT policy_version_hash) FROM kaireon.decision_traces WHERE tenant_id = 'rtr') AS hashes,
       (SELECT jsonb_path_query_array(s.eligibility_policies, '$[*].id') FROM kaireon.policy_snapshots s
         WHERE s.tenant_id = 'rtr' AND s.policy_version_hash = (SELECT DISTINCT explanation ->> 'policySnapshot' FROM t2)) AS new_rules;
-- a policy change gives a new hash too; changing it back gives the old hash again
CREATE FUNCTION pg_temp.hash() RETURNS text
LANGUAGE sql AS $$
    SELECT DISTINCT r.explanation ->> 'policySnapshot'
      FROM kaireon.recommend('rtr', 'c2', 'web', context => '{"x": 1}', options => '{"dry_run": true}') r
$$;
CREATE TEMP TABLE h AS SELECT pg_temp.hash() AS before;
UPDATE kaireon.contact_policies SET config = '{"hours": 48}' WHERE tenant_id = 'rtr' AND id = 'p-cool';
SELECT pg_temp.hash() <> before AS policy_change_changes_hash FROM h;
UPDATE kaireon.contact_policies SET config = '{"hours": 24}' WHERE tenant_id = 'rtr' AND id = 'p-cool';
SELECT pg_temp.hash() = before AS same_again FROM h;
UPDATE kaireon.guardrail_rules SET severity = 'hard' WHERE tenant_id = 'rtr';
SELECT pg_temp.hash() <> before AS guardrail_change_changes_hash FROM h;
UPDATE kaireon.guardrail_rules SET severity = 'soft' WHERE tenant_id = 'rtr';
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rtr' AND id = 'q-off';

-- ---------------------------------------------------------------------------------------
-- 3. Dry runs write no trace, even with trace; the request id comes from kaireon.request_id;
--    several placements give one trace with the funnel of each and their summed counts.
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS traces_before FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
SELECT count(*) AS decisions FROM kaireon.recommend('rtr', 'c3', 'web', options => '{"trace": true, "dry_run": true}');
SELECT count(*) AS traces_after_dry_run FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
SET kaireon.request_id = 'req-42';
SELECT count(*) AS decisions FROM kaireon.recommend('rtr', 'c3', 'web', options => '{"trace": true, "placements": ["hero", "side"]}');
RESET kaireon.request_id;
SELECT request_id, placement_id, candidate_count, after_qualification, after_suppression, after_contact_policy, final_count,
       jsonb_array_length(funnel) AS funnels, jsonb_path_query_array(funnel, '$[*].placement') AS funnel_placements,
       jsonb_path_query_array(selected_offers, '$[*].placementId') AS selected_placements
  FROM kaireon.decision_traces WHERE tenant_id = 'rtr' AND customer_id = 'c3';

-- ---------------------------------------------------------------------------------------
-- 4. The sample rate: tenants.settings.decisionTraceSampleRate, else
--    tenant_settings.decision_trace_sample_rate, else 0.1.
-- ---------------------------------------------------------------------------------------
DELETE FROM kaireon.decision_traces WHERE tenant_id = 'rtr';
CREATE FUNCTION pg_temp.traced_of(n int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    before bigint := (SELECT count(*) FROM kaireon.decision_traces WHERE tenant_id = 'rtr');
BEGIN
    PERFORM count(*) FROM generate_series(1, n) i,
                          LATERAL kaireon.recommend('rtr', 'rate', 'web', context => jsonb_build_object('i', i)) r;
    RETURN (SELECT count(*) FROM kaireon.decision_traces WHERE tenant_id = 'rtr') - before;
END
$$;
-- tenants.settings says 1: every decision
UPDATE kaireon.tenants SET settings = '{"decisionTraceSampleRate": 1}' WHERE id = 'rtr';
SELECT pg_temp.traced_of(20) AS traced_of_20_at_rate_1;
-- tenants.settings wins over tenant_settings
INSERT INTO kaireon.tenant_settings (tenant_id, decision_trace_sample_rate) VALUES ('rtr', 1);
UPDATE kaireon.tenants SET settings = '{"decisionTraceSampleRate": 0}' WHERE id = 'rtr';
SELECT pg_temp.traced_of(20) AS traced_of_20_tenant_says_0;
-- without the tenant's setting, tenant_settings decides
UPDATE kaireon.tenants SET settings = '{}' WHERE id = 'rtr';
SELECT pg_temp.traced_of(20) AS traced_of_20_settings_say_1;
UPDATE kaireon.tenant_settings SET decision_trace_sample_rate = 0 WHERE tenant_id = 'rtr';
SELECT pg_temp.traced_of(20) AS traced_of_20_settings_say_0;
-- neither: 0.1, so of 300 decisions some are traced and most are not (the chance of none
-- is 0.9^300, about 2e-14)
DELETE FROM kaireon.tenant_settings WHERE tenant_id = 'rtr';
SELECT n > 0 AND n < 150 AS some_but_not_most FROM (SELECT pg_temp.traced_of(300) AS n) x;
-- every trace names a snapshot that exists
SELECT count(*) AS traces_without_snapshot FROM kaireon.decision_traces d
 WHERE d.tenant_id = 'rtr' AND NOT EXISTS (SELECT 1 FROM kaireon.policy_snapshots s
                                           WHERE s.tenant_id = d.tenant_id AND s.policy_version_hash = d.policy_version_hash);
-- a failed request writes no trace
SELECT count(*) AS traces_before_error FROM kaireon.decision_traces WHERE tenant_id = 'rtr' \gset
SELECT * FROM kaireon.recommend('rtr', 'c4', 'web', 'nowhere', options => '{"trace": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) = :traces_before_error AS no_trace_written FROM kaireon.decision_traces WHERE tenant_id = 'rtr';

-- A decisionTraceSampleRate that is not a number from 0 to 1 is refused when written
-- (23514), so the tenant's decisions go on (regression: it once failed every decision with
-- 22P02 while the configuration was compiled).
UPDATE kaireon.tenants SET settings = '{"decisionTraceSampleRate": "often"}' WHERE id = 'rtr';
SELECT count(*) FROM kaireon.recommend('rtr', 'c5', 'web', options => '{"dry_run": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Clean up.
DELETE FROM kaireon.tenants WHERE id = 'rtr';
