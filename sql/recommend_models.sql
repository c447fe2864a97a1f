-- How recommend and respond use the scoring models (docs/recommend.md "Models in decisions"):
-- a flow's score.modelKey as the propensity (propensitySource "model") or as the adaptive
-- fallback ("adaptive"), the PRIE P factor, untrained / shadow models that do not rank, a
-- propensity_threshold rule naming a model, experiments (sticky variants, holdout, dry runs
-- store nothing), shadow scores logged beside recorded decisions, and online learning of
-- bandits and naive Bayes from respond.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('rm', 'Models', 'rm', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('rm', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, value) VALUES
    ('rm', 'o1', 'One', 'active', 50, 10), ('rm', 'o2', 'Two', 'active', 50, 20), ('rm', 'o3', 'Three', 'active', 50, 40);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('rm', 'c1', 'o1', 'web', 'c1'), ('rm', 'c2', 'o2', 'web', 'c2'), ('rm', 'c3', 'o3', 'web', 'c3');
-- A logistic regression over a context feature x and the offer's value: the score differs per
-- offer and per customer.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
    ('rm', 'lr', 'LR', 'logistic_regression', '{"bias": -1, "weights": {"x": 0.5, "offer.value": 0.05}}'),
    ('rm', 'empty', 'Untrained', 'logistic_regression', '{}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('rm', 'f-model', 'model', 'Model', true, '{"maxOffers": 3, "score": {"method": "propensity", "modelKey": "lr"}}'),
    ('rm', 'f-adaptive', 'adaptive', 'Adaptive', false,
     '{"maxOffers": 3, "score": {"method": "propensity", "modelKey": "lr", "propensitySource": "adaptive"}}'),
    ('rm', 'f-prie', 'prie', 'PRIE', false, '{"maxOffers": 3, "score": {"method": "formula", "modelKey": "lr"}}'),
    ('rm', 'f-empty', 'empty', 'Untrained', false, '{"maxOffers": 3, "score": {"method": "propensity", "modelKey": "empty"}}');
SELECT count(kaireon.publish_decision_flow('rm', key)) AS published FROM kaireon.decision_flows WHERE tenant_id = 'rm';
-- a bad propensitySource is refused when written
UPDATE kaireon.decision_flows SET draft_config = '{"score": {"modelKey": "lr", "propensitySource": "magic"}}'
 WHERE tenant_id = 'rm' AND key = 'adaptive';
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- The decisions of a dry run with the model's own score beside them.
CREATE FUNCTION pg_temp.scored(flow text, customer text, x numeric)
    RETURNS TABLE (offer_id text, propensity numeric, model_score numeric, source text, model jsonb)
LANGUAGE sql AS $$
    SELECT r.offer_id, round(r.propensity::numeric, 6),
           round(kaireon.score('rm', 'lr', jsonb_build_object('x', x, 'offer.value', o.value))::numeric, 6),
           r.explanation -> 'propensity' ->> 'source', r.explanation -> 'model'
      FROM kaireon.recommend('rm', customer, 'web', decision_flow => flow, context => jsonb_build_object('x', x),
                             options => '{"dry_run": true}') r
      JOIN kaireon.offers o ON o.tenant_id = 'rm' AND o.id = r.offer_id
     ORDER BY r.rank
$$;

-- 1. propensitySource "model" (the default with a modelKey): the propensity is the model's
--    score of the customer's attributes (context x) and the offer (offer.value), so o3 ranks
--    first; it differs per customer.
SELECT * FROM pg_temp.scored('model', 'a', 1);
SELECT * FROM pg_temp.scored('model', 'b', -4);
-- counts do not change a model propensity
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, positives, negatives, positive_rate)
    VALUES ('rm', NULL, 'offer', 'o1', 60, 40, 0.6);
SET kaireon.adaptation_refresh_ms = 0;
SELECT offer_id, propensity = model_score AS model_propensity FROM pg_temp.scored('model', 'a', 1);

-- a model that reads no offer feature scores every candidate alike (scored once per placement)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
    ('rm', 'cust', 'Customer only', 'logistic_regression', '{"bias": 0.5, "weights": {"x": -0.25}}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rm', 'f-cust', 'cust', 'Customer model', '{"maxOffers": 3, "score": {"method": "propensity", "modelKey": "cust"}}');
SELECT kaireon.publish_decision_flow('rm', 'cust') IS NOT NULL AS published;
SELECT r.offer_id, round(r.propensity::numeric, 6) AS propensity,
       round(kaireon.score('rm', 'cust', '{"x": 3}')::numeric, 6) AS model_score
  FROM kaireon.recommend('rm', 'a', 'web', decision_flow => 'cust', context => '{"x": 3}', options => '{"dry_run": true}') r
 ORDER BY r.rank;

-- a model whose scores are not probabilities (a regression tree: 3.5 for x >= 0, else -2)
-- gives a propensity clamped into [0, 1] (regression: 3.5 once failed the recording, and a
-- negative score was reported as no propensity)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state, predictors) VALUES
    ('rm', 'reg', 'Regression', 'gradient_boosted',
     '{"format": "xgboost", "objective": "reg:squarederror", "transform": "identity", "baseMargin": 0, "features": ["x"],
       "trees": [{"split": [0, -1, -1], "threshold": [0, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
                  "defaultLeft": [1, 0, 0], "value": [0, -2, 3.5], "cover": [2, 1, 1]}]}',
     '[{"name": "x", "type": "numeric"}]');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rm', 'f-reg', 'reg', 'Regression model', '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "reg"}}');
SELECT kaireon.publish_decision_flow('rm', 'reg') IS NOT NULL AS published;
SELECT round(kaireon.score('rm', 'reg', '{"x": 1}')::numeric, 2) AS raw_high, round(kaireon.score('rm', 'reg', '{"x": -1}')::numeric, 2) AS raw_low;
CREATE TEMP TABLE rec_reg AS SELECT * FROM kaireon.recommend('rm', 'g1', 'web', decision_flow => 'reg', context => '{"x": 1}');
SELECT r.propensity, r.explanation -> 'propensity' ->> 'source' AS source, h.propensity AS recorded
  FROM rec_reg r JOIN kaireon.interaction_history h ON h.tenant_id = 'rm' AND h.id = r.interaction_id;
SELECT propensity, explanation -> 'propensity' ->> 'source' AS source
  FROM kaireon.recommend('rm', 'g2', 'web', decision_flow => 'reg', context => '{"x": -1}', options => '{"dry_run": true}');

-- 2. propensitySource "adaptive": the model is only the fallback prior. o1 has 100 outcomes of
--    its own (rate 0.6); o2 and o3 have none, the tenant none either: the model's score.
SELECT offer_id, propensity, model_score, source FROM pg_temp.scored('adaptive', 'a', 1);
DELETE FROM kaireon.model_adaptations WHERE tenant_id = 'rm';

-- 3. PRIE: P is the model's score
SELECT r.offer_id, round((r.explanation -> 'factors' ->> 'P')::numeric, 6) AS p,
       round(kaireon.score('rm', 'lr', jsonb_build_object('x', 1, 'offer.value', o.value))::numeric, 6) AS model_score
  FROM kaireon.recommend('rm', 'a', 'web', decision_flow => 'prie', context => '{"x": 1}', options => '{"dry_run": true}') r
  JOIN kaireon.offers o ON o.tenant_id = 'rm' AND o.id = r.offer_id ORDER BY r.rank;

-- 4. A model that cannot rank: untrained (state {}), then the same as a shadow of a family.
--    The propensity falls back to the adaptive default 0.5 and the explanation says so.
SELECT offer_id, propensity, source, model FROM pg_temp.scored('empty', 'a', 1);
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state, registry_family) VALUES
    ('rm', 'lr-shadow', 'LR shadow', 'logistic_regression', '{"bias": 2, "weights": {"x": -1}}', 'fam');
SELECT (kaireon.transition_model('rm', 'lr-shadow', 'shadow')).registry_status;
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 3, "score": {"method": "propensity", "modelKey": "lr-shadow"}}'
 WHERE tenant_id = 'rm' AND key = 'empty';
SELECT kaireon.publish_decision_flow('rm', 'empty') IS NOT NULL AS republished;
SELECT offer_id, propensity, source, model FROM pg_temp.scored('empty', 'a', 1);

-- 5. A propensity_threshold rule with a modelKey compares that model's score (o1 0.5, o2
--    0.622459, o3 0.817574 for x = 1), whatever the flow scores by: o1 fails 0.6.
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, scope, config)
    VALUES ('rm', 'r-lr', 'Likely enough', 'propensity_threshold', 'global', '{"threshold": 0.6, "modelKey": "lr"}');
SELECT offer_id, explanation ->> 'droppedAt' AS dropped_at, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rm', 'a', 'web', decision_flow => 'adaptive', context => '{"x": 1}',
                         options => '{"dry_run": true, "debug": true}') ORDER BY offer_id;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rm';

-- 6. Shadow scores: lr becomes the champion of family fam, whose shadow lr-shadow is scored
--    beside it for every recorded decision (never in a dry run) and never ranks.
UPDATE kaireon.algorithm_models SET registry_family = 'fam' WHERE tenant_id = 'rm' AND key = 'lr';
SELECT (kaireon.transition_model('rm', 'lr', 'challenger')).registry_status,
       (kaireon.transition_model('rm', 'lr', 'champion')).registry_status;
SELECT count(*) AS dry_run_rows FROM kaireon.recommend('rm', 'a', 'web', context => '{"x": 1}', options => '{"dry_run": true}');
SELECT count(*) AS shadow_rows_after_dry_run FROM kaireon.model_shadow_scores WHERE tenant_id = 'rm';
CREATE TEMP TABLE rec_a AS SELECT * FROM kaireon.recommend('rm', 'a', 'web', context => '{"x": 1}');
SELECT s.offer_id, m.key AS shadow, round(s.score::numeric, 6) AS shadow_score,
       round(kaireon.score('rm', 'lr-shadow', '{"x": 1}')::numeric, 6) AS expected_shadow,
       round(s.ranking_score::numeric, 6) AS ranking_score, round(r.propensity::numeric, 6) AS decision_propensity,
       s.recommendation_id = r.recommendation_id AS same_recommendation, s.customer_id
  FROM kaireon.model_shadow_scores s
  JOIN kaireon.algorithm_models m ON m.tenant_id = s.tenant_id AND m.id = s.model_id
  JOIN rec_a r ON r.offer_id = s.offer_id
 WHERE s.tenant_id = 'rm' ORDER BY s.offer_id;
-- the recommendation rows name the model that scored them
SELECT h.offer_id, h.model_key FROM kaireon.interaction_history h
  JOIN rec_a r ON h.tenant_id = 'rm' AND h.id = r.interaction_id ORDER BY h.offer_id;

-- 7. Experiments: the flow's experimentKey picks the model per customer. With a 100% holdout
--    every customer is in the control group: no model, adaptive propensity.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state, registry_family) VALUES
    ('rm', 'lr-ch', 'LR challenger', 'logistic_regression', '{"bias": 0, "weights": {"x": 1}}', 'fam');
INSERT INTO kaireon.experiments (tenant_id, id, key, name, status, champion_model_id, holdout_percent, started_at)
    SELECT 'rm', 'e1', 'exp', 'Experiment', 'running', id, 100, now() FROM kaireon.algorithm_models WHERE tenant_id = 'rm' AND key = 'lr';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rm', 'f-exp', 'exp', 'Experiment', '{"maxOffers": 1, "score": {"method": "propensity", "experimentKey": "exp"}}');
SELECT kaireon.publish_decision_flow('rm', 'exp') IS NOT NULL AS published;
SELECT offer_id, propensity, source, model FROM pg_temp.scored('exp', 'h1', 1);
-- a dry run stores no assignment; a recorded decision does, and it sticks
SELECT count(*) AS assignments_after_dry_run FROM kaireon.experiment_assignments WHERE tenant_id = 'rm';
SELECT offer_id, explanation -> 'model' AS model FROM kaireon.recommend('rm', 'h1', 'web', decision_flow => 'exp', context => '{"x": 1}');
SELECT customer_id, variant FROM kaireon.experiment_assignments WHERE tenant_id = 'rm';
-- no holdout any more: a new customer gets the champion; h1 stays in the holdout
UPDATE kaireon.experiments SET holdout_percent = 0 WHERE tenant_id = 'rm';
SELECT offer_id, propensity, model_score, source, model FROM pg_temp.scored('exp', 'n1', 1);
SELECT offer_id, source, model FROM pg_temp.scored('exp', 'h1', 1);
-- all traffic to the challenger: a new customer gets lr-ch (score sigmoid(x) = 0.731059 for x 1)
INSERT INTO kaireon.experiment_challengers (tenant_id, experiment_id, model_id, traffic_pct)
    SELECT 'rm', 'e1', id, 100 FROM kaireon.algorithm_models WHERE tenant_id = 'rm' AND key = 'lr-ch';
SELECT offer_id, propensity, source, model FROM pg_temp.scored('exp', 'n2', 1);
-- An experiment that has ended assigns nobody new: a new customer gets its champion's model
-- (lr), an assigned one keeps its variant; one that does not exist gives no model. Neither
-- fails the decision (regression: both once failed every decision of new customers).
UPDATE kaireon.experiments SET status = 'completed', ended_at = now() WHERE tenant_id = 'rm';
SELECT offer_id, source, model FROM pg_temp.scored('exp', 'n9', 1);
SELECT offer_id, source, model FROM pg_temp.scored('exp', 'h1', 1);
UPDATE kaireon.decision_flows SET draft_config = '{"score": {"method": "propensity", "experimentKey": "nope"}}'
 WHERE tenant_id = 'rm' AND key = 'exp';
SELECT kaireon.publish_decision_flow('rm', 'exp') IS NOT NULL AS republished;
SELECT offer_id, source, model FROM pg_temp.scored('exp', 'n3', 1) LIMIT 1;

-- Shadow scores name the model that ranked each decision: two placements decided by two flows
-- (lr and lr-ch, both of family fam, whose shadow is lr-shadow) give rows naming their own
-- ranking model (regression: every row once named the last placement's).
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name) VALUES ('rm', 'p1', 'web', 'P1'), ('rm', 'p2', 'web', 'P2');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rm', 'f-ch', 'ch', 'Challenger', '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "lr-ch"}}');
SELECT kaireon.publish_decision_flow('rm', 'ch') IS NOT NULL AS published;
INSERT INTO kaireon.flow_routes (tenant_id, channel_id, placement_id, decision_flow_id, priority)
    VALUES ('rm', 'web', 'p1', 'f-model', 10), ('rm', 'web', 'p2', 'f-ch', 10);
CREATE TEMP TABLE rec_pp AS
    SELECT * FROM kaireon.recommend('rm', 'pp', 'web', context => '{"x": 1}', max_offers => 1,
                                    options => '{"placements": ["p1", "p2"], "deduplicate": true}');
SELECT r.placement_id, r.offer_id, m.key AS ranking_model, round(s.ranking_score::numeric, 6) AS ranking_score,
       round(r.propensity::numeric, 6) AS decision_propensity
  FROM kaireon.model_shadow_scores s
  JOIN rec_pp r ON r.recommendation_id = s.recommendation_id AND r.offer_id = s.offer_id
  JOIN kaireon.algorithm_models m ON m.tenant_id = s.tenant_id AND m.id = s.ranking_model_id
 ORDER BY r.placement_id;

-- 8. Learning from outcomes. A Thompson bandit ranks (its draws seeded), and respond teaches
--    the decision's model: a click adds 1 to the arm's alpha, a dismiss 1 to its beta, an
--    impression (neutral) nothing.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
    ('rm', 'ts', 'Thompson', 'thompson_bandit', '{"prior": {"alpha": 1, "beta": 1}, "arms": {}}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rm', 'f-ts', 'ts', 'Bandit', '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "ts"}}');
SELECT kaireon.publish_decision_flow('rm', 'ts') IS NOT NULL AS published;
SELECT kaireon.set_model_seed(42);
CREATE TEMP TABLE rec_ts AS SELECT * FROM kaireon.recommend('rm', 't1', 'web', decision_flow => 'ts');
SELECT r ->> 'modelKey' AS model_key, r -> 'modelLearned' AS learned
  FROM rec_ts, kaireon.respond('rm', 't1', 'click', recommendation_id => rec_ts.recommendation_id, rank => 1) r;
SELECT r -> 'modelLearned' AS learned
  FROM rec_ts, kaireon.respond('rm', 't1', 'dismiss', recommendation_id => rec_ts.recommendation_id, rank => 1) r;
SELECT r -> 'modelLearned' AS learned
  FROM rec_ts, kaireon.respond('rm', 't1', 'impression', recommendation_id => rec_ts.recommendation_id, rank => 1) r;
SELECT a.key = rec_ts.offer_id AS the_decided_arm, a.value AS counts
  FROM kaireon.algorithm_models m, jsonb_each(m.model_state -> 'arms') a, rec_ts
 WHERE m.tenant_id = 'rm' AND m.key = 'ts';
-- the outcome rows name the model too
SELECT outcome_type_key, model_key FROM kaireon.interaction_history
 WHERE tenant_id = 'rm' AND customer_id = 't1' AND interaction_type = 'outcome' ORDER BY outcome_type_key;
-- an outcome of a decision made without a model teaches nothing and says nothing of models
SELECT r ? 'modelKey' AS mentions_model
  FROM kaireon.respond('rm', 't1', 'click', offer_id => 'o1') r;

-- Naive Bayes learns the features of the decision: the customer's attributes with the
-- decision's request context (device), read only for models that use features.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state, predictors) VALUES
    ('rm', 'nb', 'Bayes', 'bayesian', '{}', '[{"name": "device", "type": "categorical"}]');
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "nb"}}'
 WHERE tenant_id = 'rm' AND key = 'ts';
SELECT kaireon.publish_decision_flow('rm', 'ts') IS NOT NULL AS republished;
-- untrained: it does not rank yet (default propensity), but it is recorded and learns
CREATE TEMP TABLE rec_nb AS SELECT * FROM kaireon.recommend('rm', 't2', 'web', decision_flow => 'ts', context => '{"device": "mobile"}');
SELECT round(propensity::numeric, 4) AS propensity, explanation -> 'model' AS model FROM rec_nb;
SELECT r -> 'modelLearned' AS learned
  FROM rec_nb, kaireon.respond('rm', 't2', 'conversion', recommendation_id => rec_nb.recommendation_id, rank => 1) r;
SELECT model_state -> 'positives' AS positives, model_state -> 'negatives' AS negatives,
       model_state -> 'predictors' -> 'device' -> 'categories' AS device
  FROM kaireon.algorithm_models WHERE tenant_id = 'rm' AND key = 'nb';
-- now trained, it ranks
SELECT explanation -> 'model' AS model, explanation -> 'propensity' ->> 'source' AS source
  FROM kaireon.recommend('rm', 't3', 'web', decision_flow => 'ts', context => '{"device": "mobile"}', options => '{"dry_run": true}');

-- Clean up.
RESET kaireon.adaptation_refresh_ms;
DELETE FROM kaireon.tenants WHERE id = 'rm';
