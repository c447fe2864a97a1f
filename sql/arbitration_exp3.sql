-- EXP3-IX arbitration across weight vectors (docs/arbitration.md): arm probabilities from
-- the persisted gains, the arm drawn per recommendation and its probability recorded on the
-- decision (with the model version and the policy snapshot, for off-policy evaluation), the
-- reward from respond (once per decision, positive outcomes only), state reset when the arms
-- change, and the draw frequencies following the probabilities.
\set VERBOSITY terse
SET timezone = 'UTC';
SET kaireon.arbitration_refresh_ms = 0;
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ax', 'EXP3', 'ax', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('ax', 'web', 'Web', 'web', 'explicit', 'active');
-- o1: much revenue, little margin; o2 the reverse
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, weight, value, margin) VALUES
    ('ax', 'o1', 'O1', 'active', 50, 100, 100, 10),
    ('ax', 'o2', 'O2', 'active', 50, 100, 10, 90);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight) VALUES
    ('ax', 'cr1', 'o1', 'web', 'C1', 100), ('ax', 'cr2', 'o2', 'web', 'C2', 100);
-- arm 0 ranks by revenue, arm 1 by margin; gamma 0.1, eta 0.5, beta 0.2
INSERT INTO kaireon.arbitration_profiles (tenant_id, id, key, name, weights) VALUES
    ('ax', 'bandit', 'bandit', 'Revenue or margin',
     '{"arms": [{"revenue": 1}, {"margin": 1}], "gamma": 0.1, "eta": 0.5, "beta": 0.2}'),
    ('ax', 'plain', 'plain', 'No arms', '{"revenue": 1}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('ax', 'f', 'f', 'F', true, '{"score": {"method": "formula", "profileKey": "bandit"}, "maxOffers": 1}');
SELECT kaireon.publish_decision_flow('ax', 'f');

-- p_a = (1 - beta) exp(eta (G_a - max G)) / sum + beta / K, by hand
CREATE FUNCTION pg_temp.expected(g0 float8, g1 float8) RETURNS TABLE (p0 numeric, p1 numeric) LANGUAGE sql AS $$
    SELECT round((0.8 * exp(0.5 * (g0 - greatest(g0, g1))) / (exp(0.5 * (g0 - greatest(g0, g1))) + exp(0.5 * (g1 - greatest(g0, g1)))) + 0.1)::numeric, 9),
           round((0.8 * exp(0.5 * (g1 - greatest(g0, g1))) / (exp(0.5 * (g0 - greatest(g0, g1))) + exp(0.5 * (g1 - greatest(g0, g1)))) + 0.1)::numeric, 9)
$$;
CREATE FUNCTION pg_temp.state() RETURNS TABLE (arm int, gain numeric, rewards bigint, probability numeric, weights jsonb)
LANGUAGE sql AS $$
    SELECT s.arm, round(s.gain::numeric, 9), s.rewards, round(s.probability::numeric, 9), s.weights
      FROM kaireon.exp3_state('ax', 'bandit') s ORDER BY s.arm
$$;

-- 1. No rewards yet: both arms equally likely
SELECT * FROM pg_temp.state();

-- 2. A recorded decision: the drawn arm's weights ranked it (revenue arm: o1, margin arm: o2),
--    and the decision records the arm, its probability, the profile and the policy snapshot
CREATE TEMP TABLE d1 AS SELECT * FROM kaireon.recommend('ax', 'cust-1', 'web');
SELECT (explanation -> 'arbitration' ->> 'arm')::int AS arm, explanation -> 'arbitration' ->> 'policy' AS policy,
       (explanation -> 'arbitration' ->> 'selectionProbability')::float8 AS probability,
       offer_id = CASE (explanation -> 'arbitration' ->> 'arm')::int WHEN 0 THEN 'o1' ELSE 'o2' END AS arm_ranked_it
  FROM d1 \gset
SELECT :arm IN (0, 1) AS arm_drawn, :'policy' AS policy, :probability AS probability, :'arm_ranked_it' AS arm_ranked_it;
SELECT h.arbitration_arm = :arm AS arm_recorded, h.selection_probability = :probability AS probability_recorded,
       h.arbitration_profile_id AS profile, h.policy_version_hash = d1.explanation ->> 'policySnapshot' AS policy_recorded,
       h.lambda_version IS NULL AS unpriced
  FROM d1 JOIN kaireon.interaction_history h ON h.tenant_id = 'ax' AND h.id = d1.interaction_id;

-- 3. A click rewards the arm: G += 1 / (p + gamma) = 1 / 0.6
SELECT (r -> 'exp3' ->> 'arm')::int = :arm AS arm_rewarded, r -> 'exp3' ->> 'profile' AS profile,
       r -> 'exp3' ->> 'rewarded' AS rewarded, round((r -> 'exp3' ->> 'estimate')::numeric, 9) AS estimate
  FROM kaireon.respond('ax', 'cust-1', 'click', recommendation_id => (SELECT recommendation_id FROM d1), rank => 1) r;
SELECT arm = :arm AS rewarded_arm, gain, rewards FROM pg_temp.state() WHERE gain > 0;
-- the probabilities follow the gains
SELECT s.arm = :arm AS rewarded_arm, s.probability, s.probability = CASE s.arm WHEN 0 THEN e.p0 ELSE e.p1 END AS as_by_hand
  FROM pg_temp.state() s,
       pg_temp.expected(CASE WHEN :arm = 0 THEN 1 / 0.6 ELSE 0 END, CASE WHEN :arm = 1 THEN 1 / 0.6 ELSE 0 END) e
 ORDER BY s.arm = :arm DESC;
-- a second positive outcome of the same decision adds nothing; negative and neutral ones never do
SELECT r -> 'exp3' ->> 'rewarded' AS second_positive FROM kaireon.respond('ax', 'cust-1', 'conversion',
       recommendation_id => (SELECT recommendation_id FROM d1), rank => 1) r;
CREATE TEMP TABLE d2 AS SELECT * FROM kaireon.recommend('ax', 'cust-2', 'web');
SELECT r ? 'exp3' AS negative_touches_it FROM kaireon.respond('ax', 'cust-2', 'dismiss',
       recommendation_id => (SELECT recommendation_id FROM d2), rank => 1) r;
SELECT r ? 'exp3' AS neutral_touches_it FROM kaireon.respond('ax', 'cust-2', 'impression',
       recommendation_id => (SELECT recommendation_id FROM d2), rank => 1) r;
SELECT sum(gain) = round(1 / 0.6, 9) AS one_reward, sum(rewards) AS rewards FROM pg_temp.state();
SELECT count(*) AS rewarded_decisions, bool_and(reward = 1 AND round(estimate::numeric, 9) = round(1 / 0.6, 9)) AS estimates
  FROM kaireon.exp3_rewards WHERE tenant_id = 'ax';

-- 4. Rewards move the draws: after 12 rewards of the margin arm it is drawn with probability
--    0.8 * e^(0.5 G1) / (e^(0.5 G0) + e^(0.5 G1)) + 0.1; 3000 dry runs draw it about that often
UPDATE kaireon.exp3_arms SET gain = 0, rewards = 0 WHERE tenant_id = 'ax';
INSERT INTO kaireon.exp3_arms (tenant_id, profile_id, arm, gain, rewards) VALUES ('ax', 'bandit', 1, 4, 12)
    ON CONFLICT (tenant_id, profile_id, arm) DO UPDATE SET gain = 4, rewards = 12;
SELECT * FROM pg_temp.state();
SELECT * FROM pg_temp.expected(0, 4);
SELECT abs(avg((r.explanation -> 'arbitration' ->> 'arm')::int) - 0.8 * exp(2) / (1 + exp(2)) - 0.1) < 0.03 AS frequency_as_probability,
       count(DISTINCT r.explanation -> 'arbitration' ->> 'selectionProbability') AS probabilities_seen
  FROM generate_series(1, 3000) i,
       LATERAL kaireon.recommend('ax', 'cust-' || i, 'web', NULL, '{}', NULL, NULL, '{"dry_run": true}') r;

-- 5. New arms start afresh
UPDATE kaireon.arbitration_profiles SET weights = '{"arms": [{"revenue": 1}, {"margin": 1}, {"propensity": 1}], "eta": 0.5, "beta": 0.2}'
 WHERE tenant_id = 'ax' AND key = 'bandit';
SELECT arm, gain, rewards, round(probability, 6) AS probability FROM pg_temp.state();
SELECT count(*) AS arm_rows FROM kaireon.exp3_arms WHERE tenant_id = 'ax';

-- 6. Errors
SELECT * FROM kaireon.exp3_state('ax', 'no-such-profile');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.exp3_state('ax', 'plain');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.exp3_state(NULL, 'bandit');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'ax';
DELETE FROM kaireon.tenants WHERE id = 'ax';
