-- A tree model over offer features scores all of a decision's candidates at once (docs/models.md
-- "Scoring a decision's candidates at once"): every candidate's propensity equals kaireon.score
-- of that candidate, bit for bit, for XGBoost and LightGBM models, trees of at most 64 leaves
-- (the leaves each side allows), of more (trees reduced by the customer's features, or walked
-- whole for few candidates), missing values on the customer's and the offer's side, the
-- cache of the offers' leaves across decisions, and after the model changes.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('tb', 'Tree batch', 'tb', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('tb', 'web', 'Web', 'web');
-- 12 offers; the custom field z is missing on every third, a string on o7
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, value, custom_fields)
SELECT 'tb', 'o' || i, 'Offer ' || i, 'active', 10 + (i * 37) % 80, (i * 53) % 97,
       CASE WHEN i % 3 = 0 THEN '{}'::jsonb WHEN i = 7 THEN '{"z": "high"}' ELSE jsonb_build_object('z', (i * 29) % 11 - 5) END
  FROM generate_series(1, 12) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
SELECT 'tb', 'c' || i, 'o' || i, 'web', 'c' || i FROM generate_series(1, 12) i;

-- A forest of complete trees (breadth first: node n splits into 2n+1 and 2n+2) over the
-- customer's x and y and the offer's value, priority and z, thresholds inside each feature's
-- range; LightGBM nodes take every missing type in turn. Layered: the customer's x and y on
-- alternate levels and the offer's value on the last level of splits (the customer's leaves are
-- then found by a walk of one path; otherwise mostly by the splits grouped by feature).
CREATE FUNCTION pg_temp.forest(format text, ntrees int, depth int, salt int, layered boolean DEFAULT false)
    RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('format', format, 'objective', 'binary:logistic', 'transform', 'sigmoid',
                              'baseMargin', -0.5 + salt / 10.0,
                              'features', '["x", "y", "offer.value", "offer.priority", "offer.z"]'::jsonb,
                              'trees', jsonb_agg(tree ORDER BY t))
      FROM (SELECT t, jsonb_build_object(
                 'split', jsonb_agg(CASE WHEN n < internal THEN f ELSE -1 END ORDER BY n),
                 'threshold', jsonb_agg(CASE WHEN n >= internal THEN 0
                     ELSE CASE f WHEN 0 THEN ((t * 7 + n * 13) % 7) - 3 + 0.5
                                                  WHEN 1 THEN (t * 3 + n * 11 + salt) % 10
                                                  WHEN 2 THEN (t + n * 7) % 97
                                                  WHEN 3 THEN 10 + (t * 5 + n * 3) % 80
                                                  ELSE ((t + n) % 11) - 5 + 0.25 END END ORDER BY n),
                 'left', jsonb_agg(CASE WHEN n < internal THEN 2 * n + 1 ELSE -1 END ORDER BY n),
                 'right', jsonb_agg(CASE WHEN n < internal THEN 2 * n + 2 ELSE -1 END ORDER BY n),
                 'defaultLeft', jsonb_agg((n + t) % 2 ORDER BY n),
                 'missingType', jsonb_agg(CASE WHEN n < internal THEN (n + t) % 3 ELSE 0 END ORDER BY n),
                 'value', jsonb_agg(CASE WHEN n < internal THEN 0
                                         ELSE round((((t * 31 + n * 17 + salt) % 200) - 100) / 1000.0, 4) END ORDER BY n)) AS tree
              FROM (SELECT (2 ^ depth)::int - 1 AS internal) d,
                   generate_series(0, ntrees - 1) t, generate_series(0, (2 ^ (depth + 1))::int - 2) n,
                   LATERAL (SELECT CASE WHEN NOT layered THEN (t + n + salt) % 5
                                        WHEN n >= internal / 2 THEN 2
                                        ELSE (32 - strpos((n + 1)::bit(32)::text, '1')) % 2 END AS f) s
             GROUP BY t) trees
$$;
CREATE FUNCTION pg_temp.without_missing_type(state jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_set(state, '{trees}', (SELECT jsonb_agg(t - 'missingType' ORDER BY o)
                                          FROM jsonb_array_elements(state -> 'trees') WITH ORDINALITY e(t, o)))
$$;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
    ('tb', 'xgb6', 'XGBoost depth 6', 'gradient_boosted', pg_temp.without_missing_type(pg_temp.forest('xgboost', 20, 6, 0))),
    ('tb', 'xgb7', 'XGBoost depth 7', 'gradient_boosted', pg_temp.without_missing_type(pg_temp.forest('xgboost', 6, 7, 1))),
    ('tb', 'lgb6', 'LightGBM depth 6', 'gradient_boosted', pg_temp.forest('lightgbm', 20, 6, 2)),
    ('tb', 'lgb7', 'LightGBM depth 7', 'gradient_boosted', pg_temp.forest('lightgbm', 6, 7, 3)),
    ('tb', 'xgb6l', 'XGBoost depth 6, layered', 'gradient_boosted', pg_temp.without_missing_type(pg_temp.forest('xgboost', 20, 6, 4, true))),
    ('tb', 'lgb6l', 'LightGBM depth 6, layered', 'gradient_boosted', pg_temp.forest('lightgbm', 20, 6, 6, true));
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
SELECT 'tb', 'f-' || k, k, k, k = 'xgb6', jsonb_build_object('maxOffers', 12, 'score', jsonb_build_object('method', 'propensity', 'modelKey', k))
  FROM unnest(ARRAY['xgb6', 'xgb7', 'lgb6', 'lgb7', 'xgb6l', 'lgb6l']) k;
-- five candidates only: too few to reduce the trees of more than 64 leaves, walked whole
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config)
SELECT 'tb', 'f-' || k || '-few', k || '-few', k || ' few',
       jsonb_build_object('maxOffers', 12, 'inventory', '{"offers": ["o1", "o2", "o3", "o4", "o7"]}'::jsonb,
                          'score', jsonb_build_object('method', 'propensity', 'modelKey', k))
  FROM unnest(ARRAY['xgb7', 'lgb7']) k;
SELECT count(kaireon.publish_decision_flow('tb', key)) AS published FROM kaireon.decision_flows WHERE tenant_id = 'tb';

-- The decision's propensities against kaireon.score of each candidate (a sigmoid: no clamping).
CREATE FUNCTION pg_temp.check(flow text, model text, ctx jsonb)
    RETURNS TABLE (flow text, context jsonb, candidates bigint, equal bigint, distinct_scores bigint)
LANGUAGE sql AS $$
    SELECT flow, ctx, count(*),
           count(*) FILTER (WHERE r.propensity = kaireon.score('tb', model, ctx || jsonb_build_object(
               'offer.value', o.value, 'offer.priority', o.priority, 'offer.z', o.custom_fields -> 'z'))),
           count(DISTINCT r.propensity)
      FROM kaireon.recommend('tb', 'cust', 'web', decision_flow => flow, context => ctx, options => '{"dry_run": true}') r
      JOIN kaireon.offers o ON o.tenant_id = 'tb' AND o.id = r.offer_id
$$;
SELECT c.* FROM unnest(ARRAY['xgb6', 'xgb7', 'lgb6', 'lgb7', 'xgb7-few', 'lgb7-few', 'xgb6l', 'lgb6l']) f,
                unnest(ARRAY['{"x": 1.5, "y": 4}', '{"x": -2, "y": 9}', '{"y": 0}', '{"x": 0}', '{}']::jsonb[]) ctx,
                LATERAL pg_temp.check(f, split_part(f, '-', 1), ctx) c
 ORDER BY c.flow, c.context::text;

-- the same decisions again (the offers' leaves now come from the model's cache)
SELECT bool_and(c.candidates = c.equal) AS all_equal, sum(c.candidates) AS candidates
  FROM unnest(ARRAY['xgb6', 'lgb6']) f, unnest(ARRAY['{"x": 1.5, "y": 4}', '{"x": 3, "y": 2}']::jsonb[]) ctx,
       LATERAL pg_temp.check(f, f, ctx) c;

-- an offer's value changes: its new value keys its leaves (nothing stale)
UPDATE kaireon.offers SET value = value + 40 WHERE tenant_id = 'tb' AND id IN ('o1', 'o2', 'o5');
SELECT bool_and(c.candidates = c.equal) AS all_equal, sum(c.candidates) AS candidates
  FROM unnest(ARRAY['xgb6', 'lgb6']) f, LATERAL pg_temp.check(f, f, '{"x": 1.5, "y": 4}') c;

-- The offers' places in the configuration move (o0 sorts first: every offer's index, which
-- names its row to the model, is one more) and o4 and o8 swap their values: an index now
-- names another offer's values, and each score follows the values (nothing stale).
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, value, custom_fields)
VALUES ('tb', 'o0', 'Offer 0', 'active', 33, 21, '{"z": 2}');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('tb', 'c0', 'o0', 'web', 'c0');
UPDATE kaireon.offers o SET value = s.value
  FROM kaireon.offers s
 WHERE o.tenant_id = 'tb' AND s.tenant_id = 'tb'
   AND (o.id, s.id) IN (('o4', 'o8'), ('o8', 'o4'));
SELECT bool_and(c.candidates = c.equal) AS all_equal, sum(c.candidates) AS candidates
  FROM unnest(ARRAY['xgb6', 'lgb6']) f, unnest(ARRAY['{"x": 1.5, "y": 4}', '{"x": 3, "y": 2}']::jsonb[]) ctx,
       LATERAL pg_temp.check(f, f, ctx) c;
-- the same decisions once more, by the ids now bound to the new places
SELECT bool_and(c.candidates = c.equal) AS all_equal, sum(c.candidates) AS candidates
  FROM unnest(ARRAY['xgb6', 'lgb6']) f, unnest(ARRAY['{"x": 1.5, "y": 4}', '{"x": 3, "y": 2}']::jsonb[]) ctx,
       LATERAL pg_temp.check(f, f, ctx) c;

-- the model changes: compiled anew, with its own cache
UPDATE kaireon.algorithm_models SET model_state = pg_temp.without_missing_type(pg_temp.forest('xgboost', 20, 6, 5))
 WHERE tenant_id = 'tb' AND key = 'xgb6';
SELECT bool_and(c.candidates = c.equal) AS all_equal, sum(c.candidates) AS candidates
  FROM LATERAL pg_temp.check('xgb6', 'xgb6', '{"x": 1.5, "y": 4}') c;

-- A decision whose offers' leaves fill the model's cache past its size (16 MB) half way: the
-- cache is emptied between decisions, never under the leaves a decision still reads (8000
-- stumps on offer.value: 64 kB of leaves per offer, 300 offers of distinct values).
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('tc', 'Tree cache', 'tc', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('tc', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, value)
SELECT 'tc', 'o' || i, 'Offer ' || i, 'active', 50, i FROM generate_series(1, 300) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
SELECT 'tc', 'c' || i, 'o' || i, 'web', 'c' || i FROM generate_series(1, 300) i;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state)
SELECT 'tc', 'stumps', 'Stumps', 'gradient_boosted',
       jsonb_build_object('format', 'xgboost', 'objective', 'binary:logistic', 'transform', 'sigmoid', 'baseMargin', 0,
                          'features', '["x", "offer.value"]'::jsonb,
                          'trees', jsonb_agg(jsonb_build_object(
                              'split', '[1, -1, -1]'::jsonb, 'threshold', jsonb_build_array((t * 37) % 300 + 0.5, 0, 0),
                              'left', '[1, -1, -1]'::jsonb, 'right', '[2, -1, -1]'::jsonb, 'defaultLeft', '[1, 1, 1]'::jsonb,
                              'value', jsonb_build_array(0, ((t % 7) - 3) / 1000.0, (((t * 3) % 5) - 2) / 1000.0)) ORDER BY t))
  FROM generate_series(0, 7999) t;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
VALUES ('tc', 'f-stumps', 'stumps', 'stumps', true,
        '{"maxOffers": 50, "score": {"method": "propensity", "modelKey": "stumps"}}');
SELECT count(kaireon.publish_decision_flow('tc', 'stumps')) AS published;
SELECT count(*) AS candidates,
       count(*) FILTER (WHERE r.propensity = kaireon.score('tc', 'stumps', jsonb_build_object('x', 1, 'offer.value', o.value))) AS equal
  FROM kaireon.recommend('tc', 'cust', 'web', decision_flow => 'stumps', context => '{"x": 1}', options => '{"dry_run": true}') r
  JOIN kaireon.offers o ON o.tenant_id = 'tc' AND o.id = r.offer_id;

-- The result's row type is the caller's (recommend's OUT columns): in FROM with renamed
-- columns, through a view, and in the target list the same rows.
CREATE TEMP VIEW tc_recommend AS
SELECT r.the_rank, r.the_offer, r.propensity
  FROM kaireon.recommend('tc', 'cust', 'web', decision_flow => 'stumps', context => '{"x": 1}', options => '{"dry_run": true}')
       AS r(the_rank, the_offer);
SELECT count(*) AS rows, count(*) FILTER (WHERE v.the_offer = t.offer_id AND v.propensity = t.propensity) AS same
  FROM tc_recommend v
  JOIN (SELECT (x).rank, (x).offer_id, (x).propensity
          FROM (SELECT kaireon.recommend('tc', 'cust', 'web', decision_flow => 'stumps', context => '{"x": 1}',
                                         options => '{"dry_run": true}') AS x) s) t ON t.rank = v.the_rank;
