-- The adaptive model (docs/models.md, "adaptive"): one naive-Bayes model per offer learning
-- online into sharded model_adaptations rows. Exact small cases computed by hand: the bin
-- sketch (merging the pair with the fewest responses), ChiMerge, per-predictor AUC and
-- activity, log-odds contributions, maturity (base rate), pool-adjacent-violators
-- calibration, explain_score, adaptive_report; respond and recommend with a flow whose model
-- is adaptive; malformed definitions refused with 22023 and nothing stored.
-- (scikit-learn is the oracle of the statistical behaviour: test/t/012_adaptive_oracle.pl.)
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ad', 'Adaptive', 'ad', '{"decisionTraceSampleRate": 0}');

-- ---------------------------------------------------------------- malformed definitions: 22023
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}]', '{"sketchBin": 4}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}]', '{"sketchBins": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}]', '{"aucThreshold": 0.4}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}]', '{"minPositives": "many"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age"}]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}, {"name": "age", "type": "categorical"}]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) VALUES
  ('ad', 'bad', 'Bad', 'adaptive', '[{"name": "age", "type": "numeric"}]', '{"positives": 3}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS nothing_stored FROM kaireon.algorithm_models WHERE tenant_id = 'ad';

-- ---------------------------------------------------------------- the sketch, bins, AUC, log-odds
-- mergeChiSquare 0 keeps every sketch bin, so the report shows the sketch itself.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'sk', 'Sketch', 'adaptive', '[{"name": "age", "type": "numeric"}, {"name": "plan", "type": "categorical"}]',
   '{"sketchBins": 4, "mergeChiSquare": 0, "minPositives": 3, "refreshMs": 0}');
-- nothing learned: 0.5, immature
SELECT kaireon.score('ad', 'sk', '{"age": 22}', 'o1') AS no_data,
       kaireon.explain_score('ad', 'sk', '{"age": 22}', 'o1') - 'model' - 'registryStatus' AS explained;
-- an adaptive model learns per offer: the arm is required
SELECT kaireon.model_learn('ad', 'sk', NULL, '{"age": 20}', 'positive');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- 20+ 25+ 30- 35-: four bins. 40-: a fifth, so the pair with the fewest responses merges
-- (all pairs 2; equal gaps: the leftmost) into 22.5 (2, 0). 20+: a new bin again; pairs
-- (20,22.5) 3, (22.5,30) 3, (30,35) 2, (35,40) 2: the leftmost narrowest of the 2s, 30 and 35,
-- merge into 32.5 (0, 2). Bins: 20 (1,0), 22.5 (2,0), 32.5 (0,2), 40 (0,1); "plan" counts per value.
SELECT kaireon.model_learn('ad', 'sk', 'o1', f::jsonb, o) AS learned FROM (VALUES
 (1, '{"age": 20, "plan": "gold"}', 'positive'), (2, '{"age": 25, "plan": "gold"}', 'positive'),
 (3, '{"age": 30, "plan": "basic"}', 'negative'), (4, '{"age": 35}', 'negative'),
 (5, '{"age": 40, "plan": "basic"}', 'negative'), (6, '{"age": 20, "plan": "silver"}', 'positive')) t(i, f, o)
 ORDER BY i;
-- one shard row per offer (this backend's), counts and a binary sketch
SELECT scope, scope_id, positives, negatives, positive_rate, octet_length(sketch) > 0 AS has_sketch
  FROM kaireon.model_adaptations WHERE tenant_id = 'ad';
-- interval bounds are the midpoints between centroids; a missing bin last. P = N = 3, B = 5
-- bins with the missing one, alpha 1: the bin (1, 0) has log((1+1)/(3+5)) - log((0+1)/(3+5))
-- = log 2; (2, 0): log 3; (0, 2): -log 3; (0, 1): -log 2; missing (0, 0): 0. AUC 1 (the bins
-- rank every positive above every negative). plan: (2, 0) gold, (1, 0) silver, (0, 2) basic,
-- missing (0, 1); B = 4: gold log(3/7) - log(1/7) = log 3, basic -log 3, silver log 2,
-- missing -log 2.
SELECT predictor, predictor_type, auc, active, jsonb_pretty(bins) FROM kaireon.adaptive_report('ad', 'sk', 'o1');
SELECT round(ln(2)::numeric, 12) AS log2, round(ln(3)::numeric, 12) AS log3;
-- mature (3 positives): the score is sigmoid(prior + contributions) (no calibration data yet:
-- the responses were learned in one transaction, before the offer was mature).
-- age 21 is in (-inf, 21.25): log 2; gold: log 3; prior log(4/4) = 0: sigmoid(log 6) = 6/7.
SELECT round(kaireon.score('ad', 'sk', '{"age": 21, "plan": "gold"}', 'o1')::numeric, 12) AS score,
       round(6 / 7.0, 12) AS by_hand;
SELECT jsonb_pretty(kaireon.explain_score('ad', 'sk', '{"age": 21, "plan": "gold"}', 'o1') - 'model' - 'registryStatus');
-- an unseen symbol contributes nothing; a missing value the missing bin's log-odds
SELECT round(kaireon.score('ad', 'sk', '{"age": 21, "plan": "platinum"}', 'o1')::numeric, 12) AS unseen,
       round((2 / 3.0)::numeric, 12) AS sigmoid_log2,
       round(kaireon.score('ad', 'sk', '{"age": 21}', 'o1')::numeric, 12) AS missing_plan,
       round((1 / 2.0)::numeric, 12) AS sigmoid_0;
-- another offer learned nothing: 0.5
SELECT kaireon.score('ad', 'sk', '{"age": 21, "plan": "gold"}', 'o2') AS other_offer;

-- ---------------------------------------------------------------- ChiMerge and activity
-- The default mergeChiSquare 3.84: (20: 1,0) and (22.5: 2,0) have chi-square 0 (no negatives):
-- merged, so are (32.5: 0,2) and (40: 0,1); (3,0) against (0,3) has chi-square 6: kept.
UPDATE kaireon.algorithm_models SET config = '{"sketchBins": 4, "minPositives": 3, "refreshMs": 0}'
 WHERE tenant_id = 'ad' AND key = 'sk';
SELECT predictor, auc, active, bins -> 0 -> 'upper' AS first_upper, jsonb_array_length(bins) AS bins
  FROM kaireon.adaptive_report('ad', 'sk', 'o1');
-- a predictor whose bins do not separate the outcomes (AUC 0.5, one bin) is inactive and contributes nothing
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'flat', 'Flat', 'adaptive', '[{"name": "x", "type": "numeric"}, {"name": "y", "type": "numeric"}]',
   '{"minPositives": 1, "refreshMs": 0}');
SELECT count(*) FILTER (WHERE kaireon.model_learn('ad', 'flat', 'o1', jsonb_build_object('x', g % 2, 'y', g % 3), CASE WHEN g % 2 = 0 THEN 'positive' ELSE 'negative' END)) AS learned
  FROM generate_series(1, 12) g;
SELECT predictor, auc, active, jsonb_array_length(bins) AS bins FROM kaireon.adaptive_report('ad', 'flat', 'o1');
SELECT kaireon.explain_score('ad', 'flat', '{"x": 0, "y": 1}', 'o1') -> 'predictors' -> 'y' ->> 'contribution' AS inactive_contribution;

-- ---------------------------------------------------------------- maturity and calibration
-- no predictors: the raw log-odds is the prior log((P + 1) / (N + 1)) of the state read at the
-- start of each transaction (refreshMs 0: each statement here). minPositives 2.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, config) VALUES
  ('ad', 'cal', 'Calibration', 'adaptive', '{"minPositives": 2, "refreshMs": 0}');
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'positive');
-- immature (1 positive of 2): the base rate (P + 1) / (P + N + 2) = 2/3
SELECT round(kaireon.score('ad', 'cal', '{}', 'o1')::numeric, 12) AS base_rate,
       kaireon.explain_score('ad', 'cal', '{}', 'o1') -> 'mature' AS mature;
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'positive');
-- mature from now on: each outcome records the raw log-odds it was learned at:
-- - at log(3/1), + at log(3/2), - at log(4/2), + at log(4/3); P = 4, N = 2
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'negative');
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'positive');
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'negative');
SELECT kaireon.model_learn('ad', 'cal', 'o1', '{}', 'positive');
-- raw: sigmoid(log(5/3)) = 5/8. PAV on the smoothed rates (p + r0) / (t + 1), r0 = (4 + 1) / (6 + 2) = 5/8, weights t + 1,
-- in raw log-odds order: log(4/3) (1,0) 13/16, log(3/2) (1,0) 13/16, log 2 (0,1) 5/16,
-- log 3 (0,1) 5/16: 13/16 >= 5/16 violates, all pool: (13/16*4 + 5/16*4) / 8 = 9/16.
SELECT round(kaireon.score('ad', 'cal', '{}', 'o1')::numeric, 8) AS calibrated, round(9 / 16.0, 8) AS by_hand,
       kaireon.explain_score('ad', 'cal', '{}', 'o1') ->> 'calibrated' AS calibrated_flag,
       round((kaireon.explain_score('ad', 'cal', '{}', 'o1') ->> 'rawScore')::numeric, 12) AS raw,
       round(5 / 8.0, 12) AS raw_by_hand;

-- two PAV blocks and the interpolation between them: one symbolic predictor g, every bin kept.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'cal2', 'Calibration 2', 'adaptive', '[{"name": "g", "type": "categorical"}]',
   '{"minPositives": 1, "mergeChiSquare": 0, "aucThreshold": 0.5, "refreshMs": 0}');
-- one transaction (read empty at its start: nothing recorded for calibration): a + + -, b - - +
SELECT count(*) FILTER (WHERE kaireon.model_learn('ad', 'cal2', 'o1', jsonb_build_object('g', g), o)) AS learned
  FROM (VALUES ('a', 'positive'), ('a', 'positive'), ('a', 'negative'),
               ('b', 'negative'), ('b', 'negative'), ('b', 'positive')) t(g, o);
-- P = N = 3, B = 3 (a, b, missing): a's log((2+1)/6) - log((1+1)/6) = log(3/2), prior 0:
-- a + recorded at z1 = log(3/2). Then P = 4, N = 3, a (3,1): b's log(2/7) - log(3/6),
-- prior log(5/4): b - recorded at z2 = log(5/7).
SELECT kaireon.model_learn('ad', 'cal2', 'o1', '{"g": "a"}', 'positive');
SELECT kaireon.model_learn('ad', 'cal2', 'o1', '{"g": "b"}', 'negative');
-- P = N = 4, r0 = 1/2: z2 (0,1) 0.5/2 = 1/4, z1 (1,0) 1.5/2 = 3/4: in order, two blocks.
-- a: z = log(4/7) - log(2/7) = log 2 > z1: 3/4; b: z = -log 2 < z2: 1/4; g missing (the
-- missing bin's 0) and an unseen value (nothing): z = 0, interpolated between the blocks:
-- 1/4 + (3/4 - 1/4) (0 - log(5/7)) / (log(3/2) - log(5/7)).
SELECT round(kaireon.score('ad', 'cal2', '{"g": "a"}', 'o1')::numeric, 8) AS a,
       round(kaireon.score('ad', 'cal2', '{"g": "b"}', 'o1')::numeric, 8) AS b,
       round(kaireon.score('ad', 'cal2', '{}', 'o1')::numeric, 12) AS missing,
       round(kaireon.score('ad', 'cal2', '{"g": "z"}', 'o1')::numeric, 12) AS unseen,
       round((0.25 + 0.5 * ln(7 / 5.0) / (ln(1.5) - ln(5 / 7.0)))::numeric, 12) AS by_hand;

-- ---------------------------------------------------------------- respond and recommend
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('ad', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('ad', 'o1', 'One', 'active', 50), ('ad', 'o2', 'Two', 'active', 50);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('ad', 'c1', 'o1', 'web', 'c1'), ('ad', 'c2', 'o2', 'web', 'c2');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('ad', 'f-adm', 'adm', 'ADM', true, '{"maxOffers": 2, "score": {"method": "propensity", "modelKey": "sk"}}');
SELECT kaireon.publish_decision_flow('ad', 'adm') IS NOT NULL AS published;
-- each candidate's propensity is its offer's model's score: o1's (learned above), o2's 0.5
SELECT r.offer_id, round(r.propensity::numeric, 12) AS propensity,
       round(kaireon.score('ad', 'sk', '{"age": 21, "plan": "gold"}', r.offer_id)::numeric, 12) AS model_score,
       r.explanation -> 'model' ->> 'key' AS model
  FROM kaireon.recommend('ad', 'cust1', 'web', context => '{"age": 21, "plan": "gold"}', options => '{"dry_run": true}') r
 ORDER BY r.rank;
-- a recorded decision, then respond: the decision's offer learns in the same transaction
CREATE TEMP TABLE rec AS SELECT * FROM kaireon.recommend('ad', 'cust1', 'web', context => '{"age": 50, "plan": "basic"}');
SELECT r.offer_id, x.result ->> 'modelKey' AS model, x.result ->> 'modelLearned' AS learned
  FROM rec r, LATERAL (SELECT kaireon.respond('ad', 'cust1', 'dismiss', recommendation_id => r.recommendation_id,
                                              rank => r.rank) AS result) x
 WHERE r.rank = 1;
SELECT scope_id, sum(positives) AS positives, sum(negatives) AS negatives
  FROM kaireon.model_adaptations WHERE tenant_id = 'ad' AND model_id = (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'ad' AND key = 'sk')
 GROUP BY scope_id ORDER BY scope_id;
-- the dismissed offer's report counts the new negative in age's bin of 50 and plan's basic
SELECT predictor, (SELECT sum((b ->> 'negatives')::numeric) FROM jsonb_array_elements(bins) b) AS negatives
  FROM kaireon.adaptive_report('ad', 'sk', (SELECT offer_id FROM rec WHERE rank = 1));

-- ---------------------------------------------------------------- one model per offer and channel
-- perChannel: the feature decision.channel (the decision's channel in recommend and respond)
-- picks the model; its rows have scope_id [offer, channel].
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'pc', 'Per channel', 'adaptive', '[{"name": "plan", "type": "categorical"}]',
   '{"perChannel": true, "minPositives": 1, "mergeChiSquare": 0, "refreshMs": 0}');
SELECT kaireon.model_learn('ad', 'pc', 'o1', f::jsonb, o) AS learned FROM (VALUES
 (1, '{"plan": "gold", "decision.channel": "web"}', 'positive'), (2, '{"plan": "basic", "decision.channel": "web"}', 'negative'),
 (3, '{"plan": "gold", "decision.channel": "email"}', 'negative'), (4, '{"plan": "gold"}', 'negative')) t(i, f, o)
 ORDER BY i;
SELECT scope, scope_id, positives, negatives FROM kaireon.model_adaptations
 WHERE tenant_id = 'ad' AND model_id = (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'ad' AND key = 'pc')
 ORDER BY scope_id;
-- web: P = N = 1, plan gold (1,0), basic (0,1), missing (0,0), B = 3: gold contributes
-- log(2/4) - log(1/4) = log 2, the prior log(2/2) = 0: sigmoid(log 2) = 2/3. email and no
-- channel: no positive yet, immature: (0 + 1) / (0 + 1 + 2) = 1/3.
SELECT round(kaireon.score('ad', 'pc', '{"plan": "gold", "decision.channel": "web"}', 'o1')::numeric, 12) AS web,
       round(kaireon.score('ad', 'pc', '{"plan": "gold", "decision.channel": "email"}', 'o1')::numeric, 12) AS email,
       round(kaireon.score('ad', 'pc', '{"plan": "gold"}', 'o1')::numeric, 12) AS no_channel;
SELECT predictor, auc, active, jsonb_array_length(bins) AS bins FROM kaireon.adaptive_report('ad', 'pc', 'o1', 'web');
-- in a decision on channel web, o1's propensity is its web model's score
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('ad', 'f-pc', 'pc', 'Per channel', '{"maxOffers": 2, "score": {"method": "propensity", "modelKey": "pc"}}');
SELECT kaireon.publish_decision_flow('ad', 'pc') IS NOT NULL AS published;
SELECT r.offer_id, round(r.propensity::numeric, 12) AS propensity
  FROM kaireon.recommend('ad', 'cust2', 'web', decision_flow => 'pc', context => '{"plan": "gold"}', options => '{"dry_run": true}') r
 ORDER BY r.rank;

-- ---------------------------------------------------------------- errors of the SQL functions
SELECT * FROM kaireon.adaptive_report('ad', 'nope', 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('ad', 'lr', 'LR', 'logistic_regression', '{"bias": 0, "weights": {}}');
SELECT * FROM kaireon.adaptive_report('ad', 'lr', 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.adaptive_report('ad', 'sk', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon_internal._adaptive_learn('\x00'::bytea, '\x4b41533100000000'::bytea, true, 4, 4);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon_internal._adaptive_learn(NULL, '\x4b41533100000000'::bytea, true, 1, 4);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- a symbolic value longer than 1024 bytes counts as missing (its length is stored in 16 bits:
-- a 65536-byte value was kept as '' and a 70000-byte one as its first 4464 bytes)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) VALUES
  ('ad', 'long', 'Long values', 'adaptive', '[{"name": "g", "type": "categorical"}]', '{"refreshMs": 0}');
SELECT kaireon.model_learn('ad', 'long', 'o1', jsonb_build_object('g', repeat('v', 70000)), 'positive') AS learned;
SELECT kaireon.model_learn('ad', 'long', 'o1', jsonb_build_object('g', 'short'), 'positive') AS learned;
SELECT predictor, jsonb_path_query_array(bins, '$[*].values') AS values_kept
  FROM kaireon.adaptive_report('ad', 'long', 'o1');
-- a crafted sketch: its counts are checked against its bytes before anything is allocated for
-- them (one section claiming 1,000,000 entries in 8 bytes), and a centroid must be finite
SELECT kaireon_internal._adaptive_learn('\x4b41533101000000010001004042' || '\x0f0078'::bytea, '\x4b41533100000000', true, 20, 100);
SELECT kaireon_internal._adaptive_learn('\x4b41533101000000010001000100000078' || '\x000000000000f87f0000000000000000'::bytea,
                                        '\x4b41533100000000', true, 20, 100);
DELETE FROM kaireon.tenants WHERE id = 'ad';
