-- Arbitration, scoring (docs/arbitration.md): the PRIE formula with its factors and the
-- flow's weights, arbitration profiles (keys mapped to the factors, normalised, margin in
-- the impact factor, by score.profileKey or decision_flows.arbitration_profile_id), the
-- priority_weighted method, and validation of profile weights.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ap', 'PRIE', 'ap', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('ap', 'web', 'Web', 'web', 'explicit', 'active');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('ap', 'c1', 'C1'), ('ap', 'c2', 'C2');
-- value: o1 100, o2 50, o3 20 (impact V = value / 100); margin: 10, 40, 30 (M = margin / 40);
-- priority 90, 80, 70 and o3 has an emphasis lever of 0.5 (E = priority / 100 * emphasis)
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, margin, cost, levers) VALUES
    ('ap', 'o1', 'O1', 'c1', 'active', 90, 100, 100, 10, 5, '{}'),
    ('ap', 'o2', 'O2', 'c1', 'active', 80, 50, 50, 40, 2, '{}'),
    ('ap', 'o3', 'O3', 'c2', 'active', 70, 100, 20, 30, 1, '{"emphasis": 0.5}');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight)
    SELECT 'ap', 'cr-' || id, id, 'web', 'Creative', 100 FROM kaireon.offers WHERE tenant_id = 'ap';
-- a match rule: customers whose tier is not gold get R = 0.5 for o2
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('ap', 'm-o2', 'Gold o2', 'attribute_condition', 'match', 'offer', 'o2',
     '{"attribute": "tier", "operator": "eq", "value": "gold", "multiplier": 0.5}');
INSERT INTO kaireon.arbitration_profiles (tenant_id, id, key, name, weights) VALUES
    ('ap', 'p-margin', 'margin-first', 'Margin first', '{"propensity": 1, "relevance": 1, "margin": 6, "engagement": 2}'),
    ('ap', 'p-mix', 'mix', 'Revenue and margin', '{"propensity": 2, "revenue": 3, "margin": 1, "emphasis": 2, "relevance": 2}'),
    ('ap', 'p-impact', 'impact', 'Impact only', '{"impact": 5}'),
    ('ap', 'p-empty', 'defaults', 'Defaults', '{}'),
    ('ap', 'p-off', 'inactive', 'Inactive', '{"revenue": 1}');
UPDATE kaireon.arbitration_profiles SET status = 'inactive' WHERE tenant_id = 'ap' AND key = 'inactive';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config, arbitration_profile_id) VALUES
    ('ap', 'f-plain', 'plain', 'Formula with default weights', true, '{"score": {"method": "formula"}, "maxOffers": 3}', NULL),
    ('ap', 'f-inline', 'inline', 'Inline weights', false,
     '{"score": {"method": "formula", "weights": {"propensity": 0, "relevance": 0, "impact": 1, "emphasis": 0}}, "maxOffers": 3}', NULL),
    ('ap', 'f-margin', 'margin', 'Profile by key', false, '{"score": {"method": "formula", "profileKey": "margin-first"}, "maxOffers": 3}', NULL),
    ('ap', 'f-mix', 'mix', 'Profile mix', false, '{"score": {"method": "formula", "profileKey": "mix"}, "maxOffers": 3}', NULL),
    ('ap', 'f-column', 'column', 'Profile by column', false, '{"score": {"method": "formula"}, "maxOffers": 3}', 'p-impact'),
    ('ap', 'f-both', 'both', 'Key wins over column', false, '{"score": {"method": "formula", "profileKey": "margin-first"}, "maxOffers": 3}', 'p-impact'),
    ('ap', 'f-defaults', 'defaults', 'Empty profile', false, '{"score": {"method": "formula", "profileKey": "defaults"}, "maxOffers": 3}', NULL),
    ('ap', 'f-missing', 'missing', 'Unknown profile', false, '{"score": {"method": "formula", "profileKey": "no-such-profile"}, "maxOffers": 3}', NULL),
    ('ap', 'f-inactive', 'inactive', 'Inactive profile', false, '{"score": {"method": "formula", "profileKey": "inactive"}, "maxOffers": 3}', NULL),
    ('ap', 'f-pw', 'pw', 'Priority weighted', false, '{"score": {"method": "priority_weighted", "profileKey": "margin-first"}, "maxOffers": 3}', NULL);
SELECT count(*) AS published FROM (SELECT kaireon.publish_decision_flow('ap', key) FROM kaireon.decision_flows WHERE tenant_id = 'ap') s;

-- decisions of a dry run with the factors, the weights and the profile
CREATE FUNCTION pg_temp.prie(flow text, context jsonb DEFAULT '{"tier": "silver"}')
    RETURNS TABLE (rank int, offer_id text, score numeric, factors jsonb, profile text)
LANGUAGE sql AS $$
    SELECT r.rank, r.offer_id, round(r.score::numeric, 6), r.explanation -> 'factors',
           r.explanation -> 'arbitration' ->> 'profile'
      FROM kaireon.recommend('ap', 'c1', 'web', NULL, context, NULL, flow, '{"dry_run": true}') r
     ORDER BY r.rank
$$;
-- the same score computed by hand from the factors and weights the explanation shows
CREATE FUNCTION pg_temp.by_hand(f jsonb) RETURNS numeric LANGUAGE sql AS $$
    SELECT round((power((f ->> 'P')::float8, (f -> 'weights' ->> 'P')::float8)
                * power((f ->> 'R')::float8, (f -> 'weights' ->> 'R')::float8)
                * power((f ->> 'I')::float8, (f -> 'weights' ->> 'I')::float8)
                * power((f ->> 'E')::float8, (f -> 'weights' ->> 'E')::float8))::numeric, 6)
$$;

-- 1. PRIE with the default weights 0.4, 0.2, 0.3, 0.1: P = 0.5 (no history, no model),
--    R = match, I = value / max value, E = priority / 100 * emphasis lever
SELECT * FROM pg_temp.prie('plain');
SELECT offer_id, score = pg_temp.by_hand(factors) AS score_is_the_product FROM pg_temp.prie('plain');
-- a gold customer has R = 1 for o2
SELECT offer_id, factors ->> 'R' AS r FROM pg_temp.prie('plain', '{"tier": "gold"}') WHERE offer_id = 'o2';
-- inline weights of the flow: impact only ranks by value
SELECT rank, offer_id, score, factors -> 'weights' AS weights FROM pg_temp.prie('inline');

-- 2. Profiles by key: margin-first = propensity 1, relevance 1, margin 6, engagement 2, so
--    weights P 0.1, R 0.1, I 0.6 (all margin: I = margin / max margin), E 0.2
SELECT * FROM pg_temp.prie('margin');
SELECT offer_id, score = pg_temp.by_hand(factors) AS score_is_the_product FROM pg_temp.prie('margin');
-- revenue 3 and margin 1 make I = V^0.75 * M^0.25, with weight 4/10
SELECT offer_id, factors ->> 'I' AS i,
       round((power(v, 0.75) * power(m, 0.25))::numeric, 6) AS v075_m025, factors -> 'weights' AS weights
  FROM pg_temp.prie('mix') p
  JOIN (VALUES ('o1', 1.0, 0.25), ('o2', 0.5, 1.0), ('o3', 0.2, 0.75)) AS x(o, v, m) ON x.o = p.offer_id
 ORDER BY offer_id;
SELECT DISTINCT explanation -> 'arbitration' AS arbitration
  FROM kaireon.recommend('ap', 'c1', 'web', NULL, '{}', NULL, 'mix', '{"dry_run": true}');
-- "impact" is revenue: the impact-only profile attached by decision_flows.arbitration_profile_id
SELECT rank, offer_id, score, profile FROM pg_temp.prie('column');
-- score.profileKey wins over the column
SELECT DISTINCT profile FROM pg_temp.prie('both');
-- an empty profile gives the default weights
SELECT DISTINCT factors -> 'weights' AS weights, profile FROM pg_temp.prie('defaults');
-- a flow naming a profile that does not exist, or is inactive or soft-deleted: 42704
SELECT * FROM pg_temp.prie('missing');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM pg_temp.prie('inactive');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.arbitration_profiles SET deleted_at = now() WHERE tenant_id = 'ap' AND key = 'margin-first';
SELECT * FROM pg_temp.prie('margin');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.arbitration_profiles SET deleted_at = NULL WHERE tenant_id = 'ap' AND key = 'margin-first';
-- a profile's new weights apply at once (the configuration is recompiled)
UPDATE kaireon.arbitration_profiles SET weights = '{"revenue": 1}' WHERE tenant_id = 'ap' AND key = 'margin-first';
SELECT rank, offer_id, score, factors -> 'weights' AS weights FROM pg_temp.prie('margin');

-- several placements with different flows keep their own weights in the decision trace
-- (regression: every candidate pointed at the weights of the request's last placement)
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name) VALUES ('ap', 'hero', 'web', 'Hero'), ('ap', 'side', 'web', 'Side');
INSERT INTO kaireon.flow_routes (tenant_id, id, channel_id, placement_id, decision_flow_id, priority) VALUES
    ('ap', 'r-hero', 'web', 'hero', 'f-margin', 10), ('ap', 'r-side', 'web', 'side', 'f-plain', 10);
CREATE TEMP TABLE placed AS
    SELECT * FROM kaireon.recommend('ap', 'c-trace', 'web', NULL, '{"tier": "silver"}', 1, NULL,
                                    '{"placements": ["hero", "side"], "trace": true}');
SELECT placement_id, offer_id, explanation -> 'factors' -> 'weights' AS explained FROM placed ORDER BY placement_id;
SELECT count(DISTINCT s -> 'factors' -> 'weights') AS distinct_weights_in_trace,
       jsonb_agg(DISTINCT s -> 'factors' -> 'weights') AS weights
  FROM kaireon.decision_traces t, jsonb_array_elements(t.scoring_results) s
 WHERE t.tenant_id = 'ap' AND t.recommendation_id = (SELECT DISTINCT recommendation_id FROM placed);

-- 3. priority_weighted: (priority / 100) * (weight / 100) * match, factors explained; a
--    profile does not apply to it
SELECT * FROM pg_temp.prie('pw');
SELECT * FROM pg_temp.prie('pw', '{"tier": "gold"}');

-- 4. Profile weights are validated when written (22023, naming the field; nothing stored)
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad1', 'x', '{"revenu": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad2', 'x', '{"margin": -1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad3', 'x', '{"margin": 0, "revenue": 0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad4', 'x', '{"margin": "high"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad5', 'x', '{"arms": [{"revenue": 1}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad6', 'x', '{"arms": [{"revenue": 1}, {"margin": 1}], "gamma": 2}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad7', 'x', '{"arms": [{"revenue": 1}, {"margin": 1}], "margin": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.arbitration_profiles (tenant_id, key, name, weights) VALUES ('ap', 'bad8', 'x', '{"arms": [{"revenue": 1}, {}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.arbitration_profiles SET weights = '{"relevance": "x"}' WHERE tenant_id = 'ap' AND key = 'mix';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS profiles, bool_and(key NOT LIKE 'bad%') AS none_stored,
       (SELECT weights FROM kaireon.arbitration_profiles WHERE tenant_id = 'ap' AND key = 'mix') AS mix_unchanged
  FROM kaireon.arbitration_profiles WHERE tenant_id = 'ap';
SELECT kaireon.validate_config('arbitration_profile', NULL, '{"propensity": 0.5, "relevance": 0.5}') AS valid;

DELETE FROM kaireon.tenants WHERE id = 'ap';
