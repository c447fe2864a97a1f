-- Model documents that compiled but scored wrongly, or not at all, are refused when stored
-- (docs/models.md "Finite numbers", "gradient_boosted", "bayesian", "adaptive"):
--   1. a tree with a node no node points to (the batch scorer of a decision read zeroed
--      nodes as splits and past its leaf values: recommend said 0.5 where score said 0.401);
--   2. tree leaf values and baseMargin beyond the weights' bound, or beyond float for XGBoost
--      (1e39 leaves became Infinity, their sum NaN, and the score 3e-39);
--   3. a bayesian alpha or count out of range (alpha 1e308 made every score NaN);
--   4. an adaptive sketch section holding more entries than learning writes (60,000 symbols
--      kept a score busy, deaf to cancel, for half a minute).
-- Each refusal is 22023 naming the field, and nothing is stored.
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('mg', 'Model guards', 'mg', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('mg', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, value)
SELECT 'mg', 'o' || i, 'Offer ' || i, 'active', 50, i * 10 FROM generate_series(1, 4) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
SELECT 'mg', 'c' || i, 'o' || i, 'web', 'c' || i FROM generate_series(1, 4) i;

-- ---------------------------------------------------------------- 1. every node reachable
-- node 3 is no node's child: refused, naming the tree and the node
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'orphan', 'orphan', 'gradient_boosted',
  '{"format": "xgboost", "objective": "binary:logistic", "transform": "sigmoid", "baseMargin": 0,
    "features": ["offer.value", "x"],
    "trees": [{"split": [1, -1, -1], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
               "value": [0, -0.4, 0.3]},
              {"split": [1, -1, -1, -1], "threshold": [0.5, 0, 0, 0], "left": [1, -1, -1, -1], "right": [2, -1, -1, -1],
               "defaultLeft": [1, 1, 1, 1], "value": [0, -0.4, 0.3, 5]}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- the same in LightGBM's canonical form, with the orphan a split
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'orphan', 'orphan', 'gradient_boosted',
  '{"format": "lightgbm", "transform": "identity", "features": ["x"],
    "trees": [{"split": [0, -1, -1, 0, -1, -1], "threshold": [0.5, 0, 0, 1, 0, 0], "left": [1, -1, -1, 4, -1, -1],
               "right": [2, -1, -1, 5, -1, -1], "value": [0, 1, 2, 0, 3, 4]}]}');
-- a node that is the child of two nodes (before: "trees has a node with two parents", not which)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'orphan', 'orphan', 'gradient_boosted',
  '{"format": "xgboost", "features": ["x"],
    "trees": [{"split": [0, 0, -1, -1, -1], "threshold": [0.5, 0.2, 0, 0, 0], "left": [1, 2, -1, -1, -1],
               "right": [2, 3, -1, -1, -1], "value": [0, 0, 1, 2, 3]}]}');
-- an XGBoost file whose tree has an unreachable node is refused the same way on import
SELECT kaireon.import_model('mg', 'orphan', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1, -1],
  "right_children": [2, -1, -1, -1], "split_indices": [0, 0, 0, 0], "split_conditions": [0.5, -0.4, 0.3, 5],
  "default_left": [1, 0, 0, 0], "sum_hessian": [2, 1, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT count(*) AS stored FROM kaireon.algorithm_models WHERE tenant_id = 'mg' AND key = 'orphan';
-- the valid tree scores alike one row at a time (score) and all candidates at once (recommend):
-- x < 0.5 goes left to -0.4, else right to 0.3; sigmoid in float
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'tree', 'tree', 'gradient_boosted',
  '{"format": "xgboost", "objective": "binary:logistic", "transform": "sigmoid", "baseMargin": 0,
    "features": ["offer.value", "x"],
    "trees": [{"split": [1, -1, -1], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
               "defaultLeft": [1, 1, 1], "value": [0, -0.4, 0.3]}]}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
VALUES ('mg', 'f', 'f', 'f', true, '{"maxOffers": 10, "score": {"method": "propensity", "modelKey": "tree"}}');
SELECT kaireon.publish_decision_flow('mg', 'f') IS NOT NULL AS published;
SELECT x, kaireon.score('mg', 'tree', jsonb_build_object('offer.value', 10, 'x', x)) AS score,
       round((1 / (1 + exp(CASE x WHEN 0 THEN 0.4 ELSE -0.3 END)))::numeric, 6) AS by_hand
  FROM (VALUES (0), (1)) v(x);
SELECT c.x, r.offer_id, r.propensity = kaireon.score('mg', 'tree', jsonb_build_object('offer.value', 10, 'x', c.x)) AS same_as_score
  FROM (VALUES (0), (1)) c(x),
       LATERAL kaireon.recommend('mg', 'cust', 'web', context => jsonb_build_object('x', c.x),
                                 options => '{"dry_run": true}') r
 ORDER BY c.x, r.offer_id;

-- ---------------------------------------------------------------- 2. leaf values and baseMargin
-- XGBoost adds leaves in float: 1e39 is Infinity there (two such trees summed to NaN)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'big', 'big', 'gradient_boosted',
  '{"format": "xgboost", "transform": "sigmoid", "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [1e39]},
              {"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [-1e39]}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- LightGBM adds in double: leaves are bounded like other weights (at most 1e100)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'big', 'big', 'gradient_boosted',
  '{"format": "lightgbm", "transform": "identity", "features": ["x"],
    "trees": [{"split": [0, -1, -1], "threshold": [0.5, 0, 0], "left": [1, -1, -1], "right": [2, -1, -1],
               "value": [0, 1, -1e308]}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'big', 'big', 'gradient_boosted',
  '{"format": "lightgbm", "baseMargin": 1e101, "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [1]}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'big', 'big', 'gradient_boosted',
  '{"format": "xgboost", "baseMargin": -1e39, "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [1]}]}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'big', 'big', 'gradient_boosted',
  '{"format": "lightgbm", "transform": "sigmoid", "sigmoidScale": 1e200, "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [1]}]}');
-- imported: a leaf beyond float is named (before: json could not hold the rounded Infinity and
-- the tree lost the entry), a base score whose margin is beyond float too (before: read as 0)
SELECT kaireon.import_model('mg', 'big', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [1, -1, -1],
  "right_children": [2, -1, -1], "split_indices": [0, 0, 0], "split_conditions": [0.5, 1e39, 0.3],
  "default_left": [1, 0, 0], "sum_hessian": [2, 1, 1]}]}},
  "learner_model_param": {"base_score": "5E-1", "num_feature": "1"}, "objective": {"name": "binary:logistic"}}}
$doc$);
SELECT kaireon.import_model('mg', 'big', 'xgboost_json', $doc$
{"learner": {"gradient_booster": {"name": "gbtree", "model": {"trees": [{"left_children": [-1],
  "right_children": [-1], "split_indices": [0], "split_conditions": [0.5], "default_left": [0], "sum_hessian": [1]}]}},
  "learner_model_param": {"base_score": "1E39", "num_feature": "1"}, "objective": {"name": "reg:squarederror"}}}
$doc$);
SELECT count(*) AS stored FROM kaireon.algorithm_models WHERE tenant_id = 'mg' AND key = 'big';
-- at the bounds: float's largest leaves are kept; their float sum saturates as XGBoost's does
-- (sigmoid 1, identity Infinity refused by the score's finite check)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'edge', 'edge', 'gradient_boosted',
  '{"format": "xgboost", "transform": "sigmoid", "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [3e38]},
              {"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [3e38]}]}'),
 ('mg', 'edge-id', 'edge-id', 'gradient_boosted',
  '{"format": "xgboost", "transform": "identity", "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [3e38]},
              {"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [3e38]}]}'),
 ('mg', 'edge-lgb', 'edge-lgb', 'gradient_boosted',
  '{"format": "lightgbm", "transform": "identity", "baseMargin": -1e100, "features": ["x"],
    "trees": [{"split": [-1], "threshold": [0], "left": [-1], "right": [-1], "value": [1e100]}]}');
SELECT kaireon.score('mg', 'edge', '{}') AS saturated, kaireon.score('mg', 'edge-lgb', '{}') AS lgb_sum;
SELECT kaireon.score('mg', 'edge-id', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- 3. bayesian alpha and counts
-- alpha from 1e-6 to 1e6 (the adaptive model's range), counts at most 1e15
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian',
  '{"alpha": 1e308, "positives": 30, "negatives": 70,
    "predictors": {"device": {"categories": {"mobile": {"positive": 20, "negative": 20},
                                             "desktop": {"positive": 10, "negative": 50}}}}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian', '{"alpha": 1e-9, "predictors": {}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian', '{"positives": 1e300, "predictors": {}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian',
  '{"predictors": {"device": {"categories": {"mobile": {"positive": 1e16, "negative": 20}}}}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian',
  '{"predictors": {"age": {"binEdges": [30], "positive": [1, 2], "negative": [3, 1e308]}}}');
SELECT count(*) AS stored FROM kaireon.algorithm_models WHERE tenant_id = 'mg' AND key = 'nb';
-- the bounds themselves are accepted and score
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
 ('mg', 'nb', 'nb', 'bayesian',
  '{"alpha": 1e6, "positives": 1e15, "negatives": 1e15,
    "predictors": {"device": {"categories": {"mobile": {"positive": 1e15, "negative": 0}}}}}');
SELECT round(kaireon.score('mg', 'nb', '{"device": "mobile"}')::numeric, 6) AS score;
UPDATE kaireon.algorithm_models SET model_state = model_state || '{"alpha": 1e-6}' WHERE tenant_id = 'mg' AND key = 'nb';
SELECT round(kaireon.score('mg', 'nb', '{"device": "mobile"}')::numeric, 6) AS score;
UPDATE kaireon.algorithm_models SET model_state = model_state || '{"alpha": 2e6}' WHERE tenant_id = 'mg' AND key = 'nb';

-- ---------------------------------------------------------------- 4. adaptive sketch sections
-- A symbolic section: "KAS1", one section (kind 2, name "plan"), then per value its positives,
-- negatives (uint32), length (uint16) and bytes; learning keeps at most maxSymbols (<= 1000)
-- values per section and sketchBins (<= 200) bins, and a sketch holding more is refused when
-- read (a few entries of slack: 1016 and 216). Little-endian, as the sketch is native.
CREATE FUNCTION pg_temp.rev(b bytea) RETURNS bytea LANGUAGE sql AS
  $$ SELECT string_agg(substr(b, i, 1), ''::bytea ORDER BY i DESC) FROM generate_series(1, length(b)) i $$;
CREATE FUNCTION pg_temp.u32(n int) RETURNS bytea LANGUAGE sql AS $$ SELECT pg_temp.rev(int4send(n)) $$;
CREATE FUNCTION pg_temp.sym_sketch(n int) RETURNS bytea LANGUAGE sql AS $$
  SELECT 'KAS1'::bytea || pg_temp.u32(1) || '\x02000400'::bytea || pg_temp.u32(n) || 'plan'::bytea
         || coalesce((SELECT string_agg(pg_temp.u32(1) || pg_temp.u32(0) || '\x0800'::bytea
                                        || convert_to(lpad(i::text, 8, '0'), 'UTF8'), ''::bytea ORDER BY i)
                        FROM generate_series(1, n) i), ''::bytea) $$;
CREATE FUNCTION pg_temp.num_sketch(n int) RETURNS bytea LANGUAGE sql AS $$
  SELECT 'KAS1'::bytea || pg_temp.u32(1) || '\x01000300'::bytea || pg_temp.u32(n) || 'age'::bytea
         || coalesce((SELECT string_agg(pg_temp.rev(float8send(i::float8)) || pg_temp.u32(1) || pg_temp.u32(0), ''::bytea ORDER BY i)
                        FROM generate_series(1, n) i), ''::bytea) $$;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('mg', 'adm', 'ADM', 'adaptive', '[{"name": "plan", "type": "categorical"}, {"name": "age", "type": "numeric"}]',
   '{"minPositives": 1, "refreshMs": 0}');
-- what learning can write is read: 1016 values, 216 bins
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, shard, positives, negatives, sketch)
SELECT 'mg', id, 'offer', s.o, 0, 1000, 10, s.sketch
  FROM kaireon.algorithm_models,
       (VALUES ('o1', pg_temp.sym_sketch(1016)), ('o2', pg_temp.num_sketch(216))) s(o, sketch)
 WHERE tenant_id = 'mg' AND key = 'adm';
SELECT round(kaireon.score('mg', 'adm', '{"plan": "00000001", "age": 1}', arm => 'o1')::numeric, 6) AS o1,
       round(kaireon.score('mg', 'adm', '{"plan": "00000001", "age": 1}', arm => 'o2')::numeric, 6) AS o2;
-- one entry more is refused, naming the count (before: up to 1,000,000 were read, and a
-- section of 60,000 took ChiMerge half a minute); the model's rows are read together
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, shard, positives, negatives, sketch)
SELECT 'mg', id, 'offer', 'o3', 0, 1000, 10, pg_temp.sym_sketch(1017)
  FROM kaireon.algorithm_models WHERE tenant_id = 'mg' AND key = 'adm';
SELECT kaireon.score('mg', 'adm', '{"plan": "00000001"}', arm => 'o3');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.model_adaptations SET sketch = pg_temp.num_sketch(217) WHERE tenant_id = 'mg' AND scope_id = 'o3';
SELECT kaireon.score('mg', 'adm', '{"age": 1}', arm => 'o3');
-- a section of 10 values in no bytes: its count is checked against its bytes before anything
-- is allocated for it
UPDATE kaireon.model_adaptations SET sketch = substr(pg_temp.sym_sketch(10), 1, 20)
 WHERE tenant_id = 'mg' AND scope_id = 'o3';
SELECT kaireon.score('mg', 'adm', '{"age": 1}', arm => 'o3');
-- learning into such a row is refused the same, and learning never passes config's limits
SELECT kaireon_internal._adaptive_learn(pg_temp.sym_sketch(1017), pg_temp.sym_sketch(1), true, 20, 100);
SELECT kaireon_internal._adaptive_learn(NULL, pg_temp.sym_sketch(1), true, 20, 1001);
SELECT kaireon_internal._adaptive_learn(NULL, pg_temp.num_sketch(1), true, 201, 100);
SELECT octet_length(kaireon_internal._adaptive_learn(pg_temp.sym_sketch(1000), pg_temp.sym_sketch(1), true, 200, 1000)) AS learned;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id = 'mg';
