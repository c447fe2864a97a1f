-- Scoring models: each model type's scores and explanations against values computed by hand,
-- malformed model documents (22023 naming the field, nothing stored), online learning,
-- imports of hand-made XGBoost / LightGBM documents, errors of the SQL functions.
-- (The libraries themselves are the oracle in test/t/010_models_oracle.pl.)
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('mt', 'Models', 'mt'), ('mt2', 'Other', 'mt2');

-- ---------------------------------------------------------------- scorecard
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'card', 'Card', 'scorecard', '{
     "baseScore": 10,
     "rules": [
       {"name": "adult", "feature": "age", "operator": "gte", "value": 30, "points": 20},
       {"feature": "device", "operator": "in", "value": ["mobile", "tablet"], "points": -5},
       {"feature": "email", "operator": "contains", "value": "@acme", "points": 7},
       {"feature": "phone", "operator": "not_exists", "points": -3},
       {"feature": "vip", "operator": "eq", "value": true, "points": 15}]}');
-- min = 10 - 5 - 3 = 2, max = 10 + 20 + 7 + 15 = 52: sigmoid(((raw - 27) / 50) * 6)
SELECT f, round(kaireon.score('mt', 'card', f::jsonb)::numeric, 10) AS score,
       round((1 / (1 + exp(-((raw - 27) / 50.0) * 6)))::numeric, 10) AS by_hand
  FROM (VALUES ('{"age": 35, "phone": "1"}', 30), ('{"age": 20, "device": "tablet"}', 2),
               ('{"age": 40, "email": "x@acme.com", "vip": true, "phone": "1"}', 52),
               ('{"vip": false, "age": "old", "phone": null}', 7)) AS t(f, raw);
SELECT kaireon.explain_score('mt', 'card', '{"age": 35, "device": "mobile", "phone": "1"}')
       - 'score' AS explanation;
-- linear normalisation with an explicit range, clamped
UPDATE kaireon.algorithm_models SET model_state = model_state || '{"normalization": "linear", "minScore": 0, "maxScore": 40}'
 WHERE tenant_id = 'mt' AND key = 'card';
SELECT kaireon.score('mt', 'card', '{"age": 35, "phone": "1"}') AS linear_30_of_40,
       kaireon.score('mt', 'card', '{"age": 40, "email": "x@acme.com", "vip": true, "phone": "1"}') AS clamped;
-- every UPDATE of the definition is a new version with its snapshot
SELECT version, (SELECT count(*) FROM kaireon.model_versions v WHERE v.tenant_id = m.tenant_id AND v.model_id = m.id) AS snapshots
  FROM kaireon.algorithm_models m WHERE tenant_id = 'mt' AND key = 'card';

-- malformed scorecards: 22023 naming the field, nothing stored
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [{"feature": "age", "operator": "bigger", "value": 1, "points": 1}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [{"feature": "age", "operator": "gt", "points": 1}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [{"feature": "age", "operator": "gt", "value": "x", "points": 1}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [{"feature": "age", "operator": "in", "value": 3, "points": 1}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [{"feature": "age", "operator": "eq", "value": 3, "points": "ten"}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [], "minScore": 5, "maxScore": 5}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": {}, "colour": 1}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '{"rules": [], "normalization": "cubic"}');
UPDATE kaireon.algorithm_models SET model_state = '{"rules": [{"feature": "", "operator": "eq", "value": 1, "points": 1}]}'
 WHERE tenant_id = 'mt' AND key = 'card';
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('mt', 'bad', 'Bad', 'scorecard', '[{"name": "age", "type": "float"}]');
SELECT count(*) AS bad_models FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'bad';
SELECT version FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'card';

-- ---------------------------------------------------------------- bayesian
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'nb', 'NB', 'bayesian', '{
     "alpha": 1, "positives": 30, "negatives": 70,
     "predictors": {
       "age": {"binEdges": [30, 50], "positive": [5, 15, 10], "negative": [40, 20, 10]},
       "device": {"categories": {"mobile": {"positive": 20, "negative": 20}, "desktop": {"positive": 10, "negative": 50}}}}}');
-- age 40 is bin 1; mobile; 3 age bins, 3 device bins (2 categories + unseen)
SELECT round(kaireon.score('mt', 'nb', '{"age": 40, "device": "mobile"}')::numeric, 10) AS score,
       round((1 / (1 + exp(-(ln(31 / 71.0) + ln(16 / 33.0) - ln(21 / 73.0) + ln(21 / 33.0) - ln(21 / 73.0)))))::numeric, 10) AS by_hand;
-- missing predictors are left out; an unseen category gets the smoothed empty bin
SELECT round(kaireon.score('mt', 'nb', '{"device": "watch"}')::numeric, 10) AS score,
       round((1 / (1 + exp(-(ln(31 / 71.0) + ln(1 / 33.0) - ln(1 / 73.0)))))::numeric, 10) AS by_hand;
SELECT key, round(value::text::numeric, 10) AS log_odds
  FROM jsonb_each(kaireon.explain_score('mt', 'nb', '{"age": 29.9, "device": "desktop"}')->'contributions') ORDER BY key;
SELECT kaireon.explain_score('mt', 'nb', '{"age": 29.9}')->'bins' AS bins;
-- online learning from respond: class and bin counts
SELECT kaireon.model_learn('mt', 'nb', NULL, '{"age": 55, "device": "watch"}', 'positive') AS learned,
       kaireon.model_learn('mt', 'nb', NULL, '{"age": 10}', 'negative') AS learned,
       kaireon.model_learn('mt', 'nb', NULL, '{"age": 10}', 'neutral') AS neutral;
SELECT model_state->'positives' AS positives, model_state->'negatives' AS negatives,
       model_state->'predictors'->'age' AS age, model_state->'predictors'->'device'->'categories'->'watch' AS watch, version
  FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'nb';
-- an untrained bayesian model (state {}) learns from its predictors
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('mt', 'nb0', 'NB0', 'bayesian', '[{"name": "age", "type": "numeric", "binEdges": [18, 65]}, {"name": "plan", "type": "categorical"}]');
SELECT kaireon.score('mt', 'nb0', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.model_learn('mt', 'nb0', NULL, '{"age": 30, "plan": "gold"}', 'positive');
SELECT model_state FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'nb0';
SELECT round(kaireon.score('mt', 'nb0', '{"age": 30, "plan": "gold"}')::numeric, 10) AS score,
       round((1 / (1 + exp(-(ln(2 / 1.0) + ln(2 / 4.0) - ln(1 / 3.0) + ln(2 / 3.0) - ln(1 / 2.0)))))::numeric, 10) AS by_hand;
-- malformed
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '{"predictors": {"age": {"binEdges": [50, 30], "positive": [1, 1, 1], "negative": [1, 1, 1]}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '{"predictors": {"age": {"binEdges": [30], "positive": [1, 1, 1], "negative": [1, 1]}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '{"alpha": 0, "predictors": {}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '{"predictors": {"d": {"categories": {"a": {"positive": -1}}}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '{"predictors": {"d": 3}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('mt', 'bad', 'Bad', 'bayesian', '[{"name": "age", "type": "numeric", "binEdges": [3, 3]}]');
SELECT count(*) AS bad_models FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'bad';

-- ---------------------------------------------------------------- logistic_regression
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'lr', 'LR', 'logistic_regression',
   '{"bias": -1.5, "weights": {"age": 0.04, "premium": 0.8, "device": {"mobile": 0.6, "desktop": -0.2}}}');
SELECT f, round(kaireon.score('mt', 'lr', f::jsonb)::numeric, 10) AS score,
       round((1 / (1 + exp(-z)))::numeric, 10) AS by_hand
  FROM (VALUES ('{"age": 30, "premium": true, "device": "mobile"}', -1.5 + 1.2 + 0.8 + 0.6),
               ('{"age": 50, "premium": false, "device": "tv"}', -1.5 + 2.0),
               ('{}', -1.5), ('{"age": "x", "device": 7}', -1.5)) AS t(f, z);
SELECT kaireon.explain_score('mt', 'lr', '{"age": 30, "device": "desktop"}') - 'score' AS explanation;
SELECT kaireon.model_features('mt', 'lr') AS features;
SELECT kaireon.model_learn('mt', 'lr', NULL, '{}', 'positive') AS logistic_does_not_learn_online;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'logistic_regression', '{"weights": {"age": 1}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'logistic_regression', '{"bias": 0, "weights": {"age": "heavy"}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'logistic_regression', '{"bias": 0, "weights": [1, 2]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'logistic_regression', '{"bias": 0, "weights": {"d": {"a": null}}}');
SELECT count(*) AS bad_models FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'bad';

-- ---------------------------------------------------------------- gradient_boosted
-- A hand-made XGBoost file: two trees on f0, f1; f0 < 0.5 (missing goes right), f1 < 2 (missing left).
SELECT kaireon.import_model('mt', 'xgb', 'xgboost_json', $doc$
{"learner": {"feature_names": ["f0", "f1"], "feature_types": ["float", "float"],
  "gradient_booster": {"model": {"gbtree_model_param": {"num_parallel_tree": "1", "num_trees": "2"},
    "tree_info": [0, 0],
    "trees": [
      {"id": 0, "left_children": [1, -1, -1], "right_children": [2, -1, -1], "split_indices": [0, 0, 0],
       "split_conditions": [0.5, -0.4, 0.3], "default_left": [0, 0, 0], "sum_hessian": [10, 4, 6], "split_type": [0, 0, 0]},
      {"id": 1, "left_children": [1, -1, -1], "right_children": [2, -1, -1], "split_indices": [1, 0, 0],
       "split_conditions": [2, 0.1, -0.2], "default_left": [1, 0, 0], "sum_hessian": [10, 5, 5], "split_type": [0, 0, 0]}]},
   "name": "gbtree"},
  "learner_model_param": {"base_score": "5E-1", "num_class": "0", "num_feature": "2", "num_target": "1"},
  "objective": {"name": "binary:logistic", "reg_loss_param": {"scale_pos_weight": "1"}}},
 "version": [1, 7, 4]}
$doc$) IS NOT NULL AS imported;
SELECT f, round(kaireon.score('mt', 'xgb', f::jsonb)::numeric, 6) AS score, round((1 / (1 + exp(-m)))::numeric, 6) AS by_hand
  FROM (VALUES ('{"f0": 0.2, "f1": 1}', -0.4 + 0.1), ('{"f0": 0.5, "f1": 3}', 0.3 - 0.2),
               ('{}', 0.3 + 0.1), ('{"f0": null, "f1": "x"}', 0.3 + 0.1)) AS t(f, m);
SELECT round(kaireon.score_vector('mt', 'xgb', ARRAY[0.2, NULL]::float8[])::numeric, 6) AS with_null,
       round(kaireon.score_vector('mt', 'xgb', ARRAY['NaN', 1]::float8[])::numeric, 6) AS with_nan;
-- TreeSHAP of a two-leaf tree: phi = value - expected value; they add up to the margin
SELECT c.key, round(c.value::text::numeric, 6) AS phi, round((e->>'expectedValue')::numeric, 6) AS expected,
       round((e->>'margin')::numeric, 6) AS margin
  FROM kaireon.explain_score('mt', 'xgb', '{"f0": 0.2, "f1": 1}') AS e, jsonb_each(e->'contributions') AS c ORDER BY c.key;
SELECT model_type, registry_status, version, predictors, metrics FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'xgb';
-- A hand-made LightGBM dump exercising the missing types: Zero (0 and missing take the default),
-- None (missing counts as 0), NaN (missing takes the default); regression output.
SELECT kaireon.import_model('mt', 'lgb', 'lightgbm_json', $doc$
{"name": "tree", "version": "v4", "num_class": 1, "num_tree_per_iteration": 1, "max_feature_idx": 1,
 "objective": "regression", "feature_names": ["a", "b"],
 "tree_info": [
  {"tree_index": 0, "num_cat": 0, "tree_structure": {"split_feature": 0, "threshold": 1.5, "decision_type": "<=",
     "default_left": false, "missing_type": "Zero", "internal_count": 10,
     "left_child": {"leaf_value": 1, "leaf_count": 6}, "right_child": {"leaf_value": 2, "leaf_count": 4}}},
  {"tree_index": 1, "num_cat": 0, "tree_structure": {"split_feature": 1, "threshold": -1, "decision_type": "<=",
     "default_left": false, "missing_type": "None", "internal_count": 10,
     "left_child": {"leaf_value": 10, "leaf_count": 5},
     "right_child": {"split_feature": 0, "threshold": 3, "decision_type": "<=", "default_left": true,
        "missing_type": "NaN", "internal_count": 5,
        "left_child": {"leaf_value": 20, "leaf_count": 2}, "right_child": {"leaf_value": 30, "leaf_count": 3}}}}]}
$doc$, '{"name": "LightGBM example", "family": "lgb"}') IS NOT NULL AS imported;
SELECT f, kaireon.score('mt', 'lgb', f::jsonb) AS score, expected
  FROM (VALUES ('{"a": 1, "b": -2}', 11), ('{"a": 0, "b": -2}', 12), ('{"b": -2}', 12),
               ('{"a": 2, "b": 0}', 22), ('{"a": 2}', 22), ('{"a": 4}', 32), ('{}', 22)) AS t(f, expected);
SELECT name, registry_family FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'lgb';
-- re-importing replaces the state: a new version
SELECT kaireon.import_model('mt', 'lgb', 'lightgbm_json', $doc$
{"max_feature_idx": 0, "objective": "binary sigmoid:2",
 "tree_info": [{"tree_structure": {"leaf_value": 0.5}}]}
$doc$) IS NOT NULL AS reimported;
SELECT round(kaireon.score('mt', 'lgb', '{}')::numeric, 10) AS score, round((1 / (1 + exp(-1.0)))::numeric, 10) AS by_hand,
       kaireon.model_features('mt', 'lgb') AS features, version, name
  FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'lgb';

-- malformed imports: 22023 naming the problem, nothing stored
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', '{"learner": ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.import_model('mt', 'bad', 'onnx', '{}');
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', '[]');
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', '{"learner": {}}');
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', '{"learner": {"gradient_booster": {"name": "dart", "model": {}}}}');
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
  "split_indices": [0, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_class": "3", "num_feature": "1"}, "objective": {"name": "multi:softprob"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
  "split_indices": [0, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "rank:pairwise"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
  "split_indices": [0, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1], "split_type": [1, 0, 0]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [0, -1, -1], "right_children": [2, -1, -1],
  "split_indices": [0, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1], "right_children": [2, -1, -1],
  "split_indices": [5, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1], "right_children": [2, -1, -1],
  "split_indices": [0, 0, 0], "split_conditions": [1, 1, 1], "default_left": [0, 0, 0], "sum_hessian": [1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [-1], "right_children": [-1],
  "split_indices": [0], "split_conditions": [1], "default_left": [0], "sum_hessian": [1]}]}},
  "learner_model_param": {"base_score": "2", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', '{"max_feature_idx": 0, "objective": "multiclass num_class:3", "tree_info": []}');
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', $doc$
{"max_feature_idx": 0, "objective": "binary sigmoid:1", "tree_info": [{"tree_structure": {"split_feature": 0, "threshold": "1||2",
  "decision_type": "==", "left_child": {"leaf_value": 1}, "right_child": {"leaf_value": 2}}}]}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', $doc$
{"max_feature_idx": 0, "objective": "binary sigmoid:1", "tree_info": [{"tree_structure": {"split_feature": 0, "threshold": 1,
  "decision_type": "<=", "missing_type": "Sometimes", "left_child": {"leaf_value": 1}, "right_child": {"leaf_value": 2}}}]}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', $doc$
{"max_feature_idx": 0, "objective": "binary sigmoid:1", "tree_info": [{"tree_structure": {"split_feature": 0, "threshold": 1,
  "decision_type": "<=", "left_child": {"leaf_value": 1}}}]}
$doc$);
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', '{"max_feature_idx": 1, "objective": "regression", "tree_info": [{"tree_structure": {"leaf_value": 1}}]}',
                            '{"featureNames": ["only_one"]}');
SELECT kaireon.import_model('mt', 'bad', 'lightgbm_json', '{"max_feature_idx": 0, "objective": "regression", "tree_info": [{"tree_structure": {"leaf_value": 1}}]}',
                            '{"colour": "red"}');
SELECT count(*) AS bad_models FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'bad';
-- a canonical state written directly is checked as well
UPDATE kaireon.algorithm_models SET model_state = jsonb_set(model_state, '{trees,0,left}', '[0, -1, -1]')
 WHERE tenant_id = 'mt' AND key = 'xgb';
UPDATE kaireon.algorithm_models SET model_state = jsonb_set(model_state, '{trees,0,cover}', '[1, 2]')
 WHERE tenant_id = 'mt' AND key = 'xgb';
UPDATE kaireon.algorithm_models SET model_state = model_state - 'features' WHERE tenant_id = 'mt' AND key = 'xgb';
UPDATE kaireon.algorithm_models SET model_state = jsonb_set(model_state, '{format}', '"catboost"') WHERE tenant_id = 'mt' AND key = 'xgb';
UPDATE kaireon.algorithm_models SET model_type = 'gradient_boosted' WHERE tenant_id = 'mt' AND key = 'lr';

-- ---------------------------------------------------------------- bandits
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'ts', 'TS', 'thompson_bandit', '{"prior": {"alpha": 1, "beta": 1}, "arms": {"o1": {"alpha": 30, "beta": 10}}}'),
  ('mt', 'eg', 'EG', 'epsilon_greedy', '{"epsilon": 0, "initialValue": 0.25, "arms": {"o1": {"pulls": 10, "rewards": 4}}}');
-- Thompson draws of Beta(30, 10): mean 0.75, sd 0.068; new arms draw from Beta(1, 1)
SELECT kaireon.set_model_seed(7);
SELECT round(avg(s)::numeric, 2) AS mean_o1, round(stddev(s)::numeric, 2) AS sd_o1,
       min(s) > 0 AND max(s) < 1 AS in_range
  FROM (SELECT kaireon.score('mt', 'ts', '{}', 'o1') AS s FROM generate_series(1, 4000)) d;
SELECT round(avg(s)::numeric, 1) AS mean_new, round(stddev(s)::numeric, 2) AS sd_new
  FROM (SELECT kaireon.score('mt', 'ts', '{}', 'new') AS s FROM generate_series(1, 4000)) d;
-- the same seed gives the same draws
SELECT kaireon.set_model_seed(99);
CREATE TEMP TABLE draws AS SELECT kaireon.score('mt', 'ts', '{}', 'o1') AS s FROM generate_series(1, 5);
SELECT kaireon.set_model_seed(99);
SELECT count(*) AS same_draws FROM (SELECT row_number() OVER () AS i, s FROM draws) a
  JOIN (SELECT row_number() OVER () AS i, kaireon.score('mt', 'ts', '{}', 'o1') AS s FROM generate_series(1, 5)) b USING (i)
 WHERE a.s = b.s;
SELECT kaireon.model_learn('mt', 'ts', 'o1', NULL, 'positive'), kaireon.model_learn('mt', 'ts', 'o2', NULL, 'negative'),
       kaireon.model_learn('mt', 'ts', 'o2', NULL, 'neutral');
SELECT model_state->'arms' AS arms, version FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'ts';
SELECT kaireon.explain_score('mt', 'ts', '{}', 'o2') - 'score' AS explanation;
SELECT kaireon.model_learn('mt', 'ts', NULL, NULL, 'positive');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- epsilon 0: the greedy mean; an unpulled arm scores initialValue
SELECT kaireon.score('mt', 'eg', '{}', 'o1') AS o1, kaireon.score('mt', 'eg', '{}', 'o9') AS unseen;
SELECT kaireon.model_learn('mt', 'eg', 'o1', NULL, 'positive'), kaireon.model_learn('mt', 'eg', 'o9', NULL, 'negative');
SELECT kaireon.score('mt', 'eg', '{}', 'o1') AS o1, kaireon.score('mt', 'eg', '{}', 'o9') AS o9;
-- epsilon 1: always exploring, uniform draws
UPDATE kaireon.algorithm_models SET model_state = model_state || '{"epsilon": 1}' WHERE tenant_id = 'mt' AND key = 'eg';
SELECT round(avg(s)::numeric, 1) AS mean_explore, count(DISTINCT s) > 1900 AS varied
  FROM (SELECT kaireon.score('mt', 'eg', '{}', 'o1') AS s FROM generate_series(1, 2000)) d;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'epsilon_greedy', '{"epsilon": 2}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'epsilon_greedy', '{"arms": {"o1": {"pulls": 1, "rewards": 2}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'thompson_bandit', '{"arms": {"o1": {"alpha": 0, "beta": 1}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('mt', 'bad', 'Bad', 'thompson_bandit', '{"prior": {"alpha": 1}, "arms": {"o1": 3}}');
SELECT count(*) AS bad_models FROM kaireon.algorithm_models WHERE tenant_id = 'mt' AND key = 'bad';

-- ---------------------------------------------------------------- errors of the SQL functions
SELECT kaireon.score('mt', 'nope', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type) VALUES ('mt', 'empty', 'Empty', 'logistic_regression');
SELECT kaireon.score('mt', 'empty', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.score('mt', 'lr', '[1, 2]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.score('mt', 'lr', NULL::jsonb);
SELECT kaireon.score(NULL, 'lr', '{}');
SELECT kaireon.score_vector('mt', 'xgb', ARRAY[1]::float8[]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.score_vector('mt', 'xgb', ARRAY[[1, 2], [3, 4]]::float8[]);
SELECT kaireon.model_learn('mt', 'nb', NULL, '{}', 'great');
SELECT kaireon.score('mt2', 'lr', '{}');
-- a role limited to tenant mt2 cannot score with tenant mt's models
CREATE ROLE regress_models_app LOGIN;
SELECT kaireon.grant_app_role('regress_models_app');
SET ROLE regress_models_app;
SET kaireon.tenant_id = 'mt2';
SELECT kaireon.score('mt', 'lr', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.model_learn('mt', 'ts', 'o1', NULL, 'positive');
SELECT kaireon.import_model('mt', 'x', 'lightgbm_json', '{}');
SET kaireon.tenant_id = 'mt';
SELECT round(kaireon.score('mt', 'lr', '{}')::numeric, 6) AS own_tenant;
RESET ROLE;
RESET kaireon.tenant_id;

DELETE FROM kaireon.role_grants WHERE role_name = 'regress_models_app';
DROP OWNED BY regress_models_app;
DROP ROLE regress_models_app;
DELETE FROM kaireon.tenants WHERE id IN ('mt', 'mt2');
