-- The missing model types of issue 18 (docs/models.md): the online_learner (SGD on the log
-- loss with L2, learned by model_learn and respond, each step checked against the update
-- computed by hand), feature_drift checks (per-feature PSI against the training baseline,
-- checked against a PSI computed by hand in SQL), and degraded scoring (a decision whose
-- model was deleted while the compiled configuration still names it, or whose model no
-- longer compiles, falls back and says so in its explanation, its trace and recommend_json).
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ol', 'Online', 'ol', '{"decisionTraceSampleRate": 0}');

-- ---------------------------------------------------------------- online_learner: documents
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ol', 'sgd', 'SGD', 'online_learner', '[{"name": "x", "type": "numeric"}, {"name": "c", "type": "categorical"}]',
   '{"learningRate": "constant", "eta0": 0.1, "alpha": 0.01}');
-- a fresh learner scores 0.5 and reads its predictors
SELECT kaireon.score('ol', 'sgd', '{"x": 2, "c": "a"}') AS fresh, kaireon.model_features('ol', 'sgd') AS features;
-- malformed settings are refused when written (22023, nothing stored)
UPDATE kaireon.algorithm_models SET model_state = '{"learningRate": "adaptive"}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"learningRate": "constant", "eta0": 0}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"alpha": 0}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"alpha": -1, "learningRate": "invscaling"}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"fitIntercept": "yes"}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"updates": 1.5}' WHERE tenant_id = 'ol' AND key = 'sgd';
UPDATE kaireon.algorithm_models SET model_state = '{"training": {}}' WHERE tenant_id = 'ol' AND key = 'sgd';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT model_state FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'sgd';

-- ---------------------------------------------------------------- online_learner: two SGD steps
-- step 1, positive, from zero: margin 0, g = -1/(e^0 + 1) = -0.5, u = -eta g = 0.05;
-- the weights decay by 1 - eta alpha = 0.999 (nothing yet), then x += u * 2, c.a += u, bias += u
SELECT kaireon.model_learn('ol', 'sgd', features => '{"x": 2, "c": "a"}', outcome => 'positive') AS learned;
SELECT model_state, version FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'sgd';
-- step 2, negative: margin p = 0.05 + 0.1 * 1 = 0.15 (level b has no weight), y = -1,
-- g = 1 / (e^(-0.15) + 1), u = -0.1 g; decay 0.999 then the step
SELECT kaireon.model_learn('ol', 'sgd', features => '{"x": 1, "c": "b"}', outcome => 'negative') AS learned;
WITH h AS (SELECT -0.1 / (exp(-0.15) + 1) AS u),
     s AS (SELECT model_state AS st FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'sgd')
SELECT abs((st -> 'weights' ->> 'x')::float8 - (0.1 * 0.999 + u)) < 1e-15 AS x,
       abs((st -> 'weights' -> 'c' ->> 'a')::float8 - 0.05 * 0.999) < 1e-15 AS level_a,
       abs((st -> 'weights' -> 'c' ->> 'b')::float8 - u) < 1e-15 AS level_b,
       abs((st ->> 'bias')::float8 - (0.05 + u)) < 1e-15 AS bias,
       st -> 'updates' AS updates
  FROM h, s;
-- a neutral outcome teaches nothing; the score is the logistic of the learned margin
SELECT kaireon.model_learn('ol', 'sgd', features => '{"x": 1}', outcome => 'neutral') AS learned;
SELECT abs(kaireon.score('ol', 'sgd', '{"x": 3, "c": "a"}')
           - 1 / (1 + exp(-((st ->> 'bias')::float8 + 3 * (st -> 'weights' ->> 'x')::float8
                             + (st -> 'weights' -> 'c' ->> 'a')::float8)))) < 1e-15 AS score_is_logistic,
       kaireon.explain_score('ol', 'sgd', '{"x": 3, "c": "a"}') ->> 'modelType' AS explained
  FROM (SELECT model_state AS st FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'sgd') s;
-- invscaling: eta = eta0 / t^powerT with t the update number (here t = 4: eta = 1 / 2);
-- without an intercept the bias stays 0
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ol', 'inv', 'Inv', 'online_learner', '[{"name": "x", "type": "numeric"}]',
   '{"learningRate": "invscaling", "eta0": 1, "powerT": 0.5, "alpha": 0, "updates": 3, "fitIntercept": false}');
SELECT kaireon.model_learn('ol', 'inv', features => '{"x": 1}', outcome => 'positive') AS learned;
SELECT (model_state -> 'weights' ->> 'x')::float8 = 0.25 AS x_quarter, model_state ->> 'bias' AS bias,
       model_state -> 'updates' AS updates
  FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'inv';

-- a step that overflows is refused (22003 naming the weight and the rate), nothing stored: it was
-- dropped silently (json_real(Inf) is NULL) while updates still counted it
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ol', 'huge', 'Huge rate', 'online_learner', '[{"name": "x", "type": "numeric"}]',
   '{"learningRate": "constant", "eta0": 1e300, "alpha": 0, "fitIntercept": false, "weights": {"x": 0.5}}');
-- (a positive outcome at margin 5e9 has a zero gradient and changes nothing; a negative one moves x by -1e300 * 1e10)
SELECT kaireon.model_learn('ol', 'huge', features => '{"x": 1e10}', outcome => 'negative') AS learned;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT model_state->'weights'->'x' AS x, coalesce(model_state->'updates', '0') AS updates
  FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'huge';
DELETE FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'huge';

-- ---------------------------------------------------------------- online_learner: from respond
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('ol', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
  ('ol', 'o1', 'One', 'active', 60), ('ol', 'o2', 'Two', 'active', 40);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
  ('ol', 'c1', 'o1', 'web', 'c1'), ('ol', 'c2', 'o2', 'web', 'c2');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ol', 'live', 'Live', 'online_learner', '[{"name": "x", "type": "numeric"}]', '{}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
  ('ol', 'f-live', 'live', 'Live', true, '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "live"}}');
SELECT kaireon.publish_decision_flow('ol', 'live') IS NOT NULL AS published;
CREATE TEMP TABLE rec_live AS SELECT * FROM kaireon.recommend('ol', 'u1', 'web', context => '{"x": 2}');
SELECT offer_id, round(propensity::numeric, 6) AS propensity FROM rec_live;
SELECT r ->> 'modelKey' AS model_key, r -> 'modelLearned' AS learned
  FROM rec_live, kaireon.respond('ol', 'u1', 'click', recommendation_id => rec_live.recommendation_id, rank => 1) r;
-- the default schedule (optimal, alpha 0.0001): t0 = 1 / (alpha sqrt(1 / sqrt(alpha))) = 1000,
-- eta = 1 / (alpha t0) = 10 at the first update, u = 10 * 0.5 = 5: x = 5 * 2 = 10, bias = 5
SELECT model_state, version FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'live';
-- the next decision sees the learned model (the model cache was invalidated)
SELECT round(propensity::numeric, 6) = round((1 / (1 + exp(-(5 + 10 * 2))))::numeric, 6) AS learned_propensity
  FROM kaireon.recommend('ol', 'u2', 'web', context => '{"x": 2}', options => '{"dry_run": true}');

-- ---------------------------------------------------------------- feature_drift
-- training window: age uniform over 20..69, device mobile / desktop (every 10th missing);
-- current window: older customers, tablets appear, more devices missing
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('ol', 'fd', 'Feature drift', 'logistic_regression',
   '[{"name": "age", "type": "numeric"}, {"name": "device", "type": "categorical"}]');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
SELECT 'ol', 'f' || g, 'outcome', CASE WHEN g % 3 = 0 THEN 'click' ELSE 'dismiss' END,
       jsonb_strip_nulls(jsonb_build_object('age', 20 + g % 50,
                                            'device', CASE WHEN g % 10 = 0 THEN NULL WHEN g % 2 = 0 THEN 'mobile' ELSE 'desktop' END)),
       '2026-05-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 500) g;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
SELECT 'ol', 'g' || g, 'outcome', CASE WHEN g % 2 = 0 THEN 'click' ELSE 'dismiss' END,
       jsonb_strip_nulls(jsonb_build_object('age', 40 + g % 40,
                                            'device', CASE WHEN g % 5 = 0 THEN NULL WHEN g % 3 = 0 THEN 'tablet'
                                                           WHEN g % 3 = 1 THEN 'mobile' ELSE 'desktop' END)),
       '2026-06-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 300) g;
SELECT (kaireon.train_model('ol', 'fd', '2026-05-01', '2026-05-02') -> 'featureBaseline') - 'features' AS baseline;
-- the baseline: the training deciles of age and the shares of each bin, the device levels
SELECT b -> 'age' -> 'binEdges' AS age_edges,
       (SELECT array_agg(round(s::numeric, 4)) FROM jsonb_array_elements_text(b -> 'age' -> 'shares') s) AS age_shares,
       b -> 'age' -> 'missingShare' AS age_missing,
       (SELECT jsonb_object_agg(k, round(v::numeric, 4)) FROM jsonb_each_text(b -> 'device' -> 'shares') d(k, v)) AS device_shares,
       round((b -> 'device' ->> 'missingShare')::numeric, 4) AS device_missing
  FROM (SELECT metrics -> 'featureBaseline' -> 'features' AS b
          FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'fd') m;
SELECT check_type, round(drift_score::numeric, 6) AS drift_score, threshold, drifted
  FROM kaireon.check_drift('ol', 'fd', '2026-05-01', '2026-05-02', '2026-06-01', '2026-06-02',
                           thresholds => '{"feature_drift": 0.3}')
 ORDER BY check_type;
-- the same PSI by hand: each window's share of every bin (age: the baseline's decile edges,
-- with bin 0 below the first edge; device: each level, "other" for levels training never
-- saw; both a bin for missing values), floored at 1e-4, summed as (c - b) ln(c / b)
CREATE TEMP TABLE fd_rows AS
SELECT CASE WHEN occurred_at < '2026-06-01' THEN 'base' ELSE 'cur' END AS w,
       (context ->> 'age')::float8 AS age, context ->> 'device' AS device
  FROM kaireon.interaction_history
 WHERE tenant_id = 'ol' AND interaction_type = 'outcome' AND customer_id ~ '^[fg]'
   AND (occurred_at BETWEEN '2026-05-01' AND '2026-05-02' OR occurred_at BETWEEN '2026-06-01' AND '2026-06-02');
CREATE TEMP TABLE fd_edges AS
SELECT array_agg(e::float8 ORDER BY i) AS edges
  FROM kaireon.algorithm_models m,
       jsonb_array_elements_text(m.metrics -> 'featureBaseline' -> 'features' -> 'age' -> 'binEdges') WITH ORDINALITY AS a(e, i)
 WHERE m.tenant_id = 'ol' AND m.key = 'fd';
CREATE TEMP TABLE fd_bins AS
SELECT w, 'age' AS feature,
       CASE WHEN age IS NULL THEN 'missing'
            ELSE (SELECT count(*) FROM unnest(edges) e WHERE age >= e)::text END AS bin
  FROM fd_rows, fd_edges
UNION ALL
SELECT w, 'device', CASE WHEN device IS NULL THEN 'missing' WHEN device IN ('mobile', 'desktop') THEN device ELSE 'other' END
  FROM fd_rows;
CREATE TEMP TABLE fd_hand AS
WITH n AS (SELECT w, count(*) / 2.0 AS total FROM fd_bins GROUP BY w),
     bins AS (SELECT DISTINCT feature, bin FROM fd_bins
              UNION SELECT 'age', g::text FROM generate_series(0, 9) g
              UNION SELECT 'device', 'other'),
     shares AS (SELECT b.feature, b.bin,
                       greatest((SELECT count(*) FROM fd_bins x WHERE x.w = 'base' AND x.feature = b.feature AND x.bin = b.bin)
                                / (SELECT total FROM n WHERE w = 'base'), 1e-4)::float8 AS pb,
                       greatest((SELECT count(*) FROM fd_bins x WHERE x.w = 'cur' AND x.feature = b.feature AND x.bin = b.bin)
                                / (SELECT total FROM n WHERE w = 'cur'), 1e-4)::float8 AS pc
                  FROM bins b)
SELECT feature, sum((pc - pb) * ln(pc / pb)) AS psi FROM shares GROUP BY feature;
SELECT h.feature, round(h.psi::numeric, 6) AS hand_psi,
       abs(h.psi - (c.current -> 'features' -> h.feature ->> 'psi')::float8) < 1e-12 AS equal
  FROM fd_hand h, kaireon.model_drift_checks c
 WHERE c.tenant_id = 'ol' AND c.check_type = 'feature_drift'
 ORDER BY h.feature;
-- the row: the baseline it compared against, the current shares, the features over the threshold
SELECT abs(drift_score - (SELECT max(psi) FROM fd_hand)) < 1e-12 AS score_is_worst, drifted,
       current -> 'drifted' AS drifted_features, current -> 'samples' AS current_samples,
       baseline -> 'samples' AS training_samples,
       (SELECT jsonb_object_agg(k, round(v::numeric, 4)) FROM jsonb_each_text(current -> 'features' -> 'device' -> 'shares') d(k, v)) AS device_now,
       round((current -> 'features' -> 'device' ->> 'otherShare')::numeric, 4) AS device_other
  FROM kaireon.model_drift_checks WHERE tenant_id = 'ol' AND check_type = 'feature_drift';
-- a model trained before feature baselines existed (or never trained) has no feature_drift row
UPDATE kaireon.algorithm_models SET metrics = metrics - 'featureBaseline' WHERE tenant_id = 'ol' AND key = 'fd';
SELECT array_agg(check_type ORDER BY check_type) AS checks
  FROM kaireon.check_drift('ol', 'fd', '2026-05-01', '2026-05-02', '2026-06-01', '2026-06-02');
SELECT * FROM kaireon.check_drift('ol', 'fd', thresholds => '{"feature": 1}');

-- ---------------------------------------------------------------- online_learner: train_model
-- train_model replays the window's outcomes in time order through the same update, from no
-- weights, keeping the state's settings: the state equals model_learn called outcome by
-- outcome in that order; and the learner gets a feature baseline, so feature_drift checks it
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ol', 'replay', 'Replay', 'online_learner', '[{"name": "age", "type": "numeric"}, {"name": "device", "type": "categorical"}]',
   '{"learningRate": "constant", "eta0": 0.001, "alpha": 0.01, "bias": 7, "updates": 9}'),
  ('ol', 'stepwise', 'Stepwise', 'online_learner', '[{"name": "age", "type": "numeric"}, {"name": "device", "type": "categorical"}]',
   '{"learningRate": "constant", "eta0": 0.001, "alpha": 0.01}');
SELECT m ->> 'samples' AS samples, m ->> 'updates' AS updates, m ? 'featureBaseline' AS baseline,
       m ? 'auc' AND m ? 'logLoss' AS measured
  FROM kaireon.train_model('ol', 'replay', '2026-05-01', '2026-05-02') m;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT context, outcome_type_key FROM kaireon.interaction_history
            WHERE tenant_id = 'ol' AND interaction_type = 'outcome'
              AND occurred_at >= '2026-05-01' AND occurred_at < '2026-05-02' ORDER BY occurred_at, id
  LOOP
    PERFORM kaireon.model_learn('ol', 'stepwise', NULL, r.context,
                                CASE r.outcome_type_key WHEN 'click' THEN 'positive' ELSE 'negative' END);
  END LOOP;
END $$;
SELECT a.model_state = b.model_state AS same_state, a.model_state -> 'updates' AS updates, a.version AS replay_version
  FROM kaireon.algorithm_models a, kaireon.algorithm_models b
 WHERE a.tenant_id = 'ol' AND a.key = 'replay' AND b.tenant_id = 'ol' AND b.key = 'stepwise';
SELECT check_type, drifted FROM kaireon.check_drift('ol', 'replay', '2026-05-01', '2026-05-02', '2026-06-01', '2026-06-02')
 WHERE check_type = 'feature_drift';

-- ---------------------------------------------------------------- degraded scoring
-- a flow scores with model "gone"; the first decision uses it and compiles the configuration
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('ol', 'gone', 'Gone', 'logistic_regression', '{"bias": 3, "weights": {}}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
  ('ol', 'f-gone', 'gone', 'Gone', '{"maxOffers": 2, "score": {"method": "propensity", "modelKey": "gone"}}');
SELECT kaireon.publish_decision_flow('ol', 'gone') IS NOT NULL AS published;
SELECT offer_id, round(propensity::numeric, 6) AS propensity, explanation ? 'degradedScoring' AS degraded
  FROM kaireon.recommend('ol', 'd1', 'web', decision_flow => 'gone', options => '{"dry_run": true}') ORDER BY rank;
SELECT kaireon.recommend_json('{"tenantId": "ol", "customerId": "d1", "channel": "web", "decisionFlow": "gone", "dryRun": true}')
       -> 'degradedScoring' AS degraded;
-- the model is deleted mid-flight: the cached configuration still names it; the decision
-- falls back to the adaptive propensity (0.5 without counts), returns its offers, and says so
DELETE FROM kaireon.algorithm_models WHERE tenant_id = 'ol' AND key = 'gone';
CREATE TEMP TABLE rec_gone AS
SELECT * FROM kaireon.recommend('ol', 'd1', 'web', decision_flow => 'gone', options => '{"trace": true}');
SELECT rank, offer_id, round(propensity::numeric, 6) AS propensity, explanation -> 'propensity' ->> 'source' AS source,
       explanation -> 'degradedScoring' AS degraded
  FROM rec_gone ORDER BY rank;
SELECT t.degraded_scoring, t.final_count, jsonb_path_query_array(t.scoring_results, '$[*].degradedScoring[*].reason') AS reasons
  FROM kaireon.decision_traces t JOIN (SELECT DISTINCT recommendation_id FROM rec_gone) r USING (recommendation_id)
 WHERE t.tenant_id = 'ol';
SELECT r -> 'degradedScoring' AS degraded, r -> 'degradedModels' AS models, jsonb_array_length(r -> 'decisions') AS decisions
  FROM kaireon.recommend_json('{"tenantId": "ol", "customerId": "d2", "channel": "web", "decisionFlow": "gone", "dryRun": true}') r;
-- a decision that is not degraded says so too, and its trace is not flagged
SELECT r -> 'degradedScoring' AS degraded, r ? 'degradedModels' AS has_models
  FROM kaireon.recommend_json('{"tenantId": "ol", "customerId": "d3", "channel": "web", "decisionFlow": "live", "dryRun": true}') r;
CREATE TEMP TABLE rec_ok AS
SELECT * FROM kaireon.recommend('ol', 'd3', 'web', decision_flow => 'live', options => '{"trace": true}');
SELECT t.degraded_scoring FROM kaireon.decision_traces t
  JOIN (SELECT DISTINCT recommendation_id FROM rec_ok) r USING (recommendation_id) WHERE t.tenant_id = 'ol';
-- a model whose stored state no longer compiles (written here past the validation trigger, as
-- a state an older version accepted would be) is broken: the decision falls back and names
-- the error
SET session_replication_role = replica;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('ol', 'broken', 'Broken', 'online_learner', '{"learningRate": "adaptive"}');
RESET session_replication_role;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
  ('ol', 'f-broken', 'broken', 'Broken', '{"maxOffers": 1, "score": {"method": "propensity", "modelKey": "broken"}}');
SELECT kaireon.publish_decision_flow('ol', 'broken') IS NOT NULL AS published;
SELECT r -> 'degradedModels' AS models, jsonb_array_length(r -> 'decisions') AS decisions
  FROM kaireon.recommend_json('{"tenantId": "ol", "customerId": "d4", "channel": "web", "decisionFlow": "broken", "dryRun": true}') r;
-- scoring it directly is still an error
SELECT kaireon.score('ol', 'broken', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a propensity_threshold rule naming a missing model reads the candidate's propensity instead
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, config, scope) VALUES
  ('ol', 'r-gone', 'Needs a likely customer', 'propensity_threshold', '{"modelKey": "nothing", "operator": "gte", "threshold": 0.1}', 'global');
SELECT r -> 'degradedModels' AS models, jsonb_array_length(r -> 'decisions') AS decisions
  FROM kaireon.recommend_json('{"tenantId": "ol", "customerId": "d5", "channel": "web", "decisionFlow": "live", "dryRun": true}') r;

DELETE FROM kaireon.tenants WHERE id = 'ol';
