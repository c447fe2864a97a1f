-- Model registry (allowed transitions, one champion per family, atomic promotion, snapshots,
-- four-eyes approvals), shadow scores, naive Bayes training, drift checks and experiments
-- (sticky FNV-1a assignment and its split over 100k customers, variants with TTL, results,
-- auto-promotion).
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('rg', 'Registry', 'rg');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, registry_family, model_state) VALUES
  ('rg', 'm1', 'M1', 'logistic_regression', 'churn', '{"bias": 0, "weights": {"x": 1}}'),
  ('rg', 'm2', 'M2', 'logistic_regression', 'churn', '{"bias": 0, "weights": {"x": 2}}'),
  ('rg', 'm3', 'M3', 'logistic_regression', 'churn', '{"bias": 0, "weights": {"x": 3}}'),
  ('rg', 'solo', 'Solo', 'logistic_regression', NULL, '{"bias": 0, "weights": {"x": 3}}');
SELECT * FROM kaireon.registry_transitions() ORDER BY 1, 2;

-- creating a row is not a transition (a restore creates champions), but a champion needs a family
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, registry_status) VALUES ('rg', 'x', 'X', 'champion');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- transitions outside the table are refused, whatever the path
SELECT kaireon.transition_model('rg', 'm1', 'champion');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.algorithm_models SET registry_status = 'champion' WHERE tenant_id = 'rg' AND key = 'm1';
SELECT kaireon.transition_model('rg', 'm1', 'winner');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.transition_model('rg', 'nope', 'shadow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT (kaireon.transition_model('rg', 'm1', 'challenger')).registry_status;
SELECT (kaireon.transition_model('rg', 'm1', 'champion')).registry_status;
-- a champion leaves only by archiving
SELECT kaireon.transition_model('rg', 'm1', 'draft');
SELECT (kaireon.transition_model('rg', 'solo', 'challenger')).registry_status;
SELECT kaireon.transition_model('rg', 'solo', 'champion');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- promotion archives the family's champion in the same statement
SELECT (kaireon.transition_model('rg', 'm2', 'challenger')).registry_status;
SELECT (kaireon.transition_model('rg', 'm2', 'champion')).registry_status;
SELECT key, registry_status, version FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'churn' ORDER BY key;
-- ... atomically: when the transaction rolls back, the old champion is champion again
BEGIN;
SELECT (kaireon.transition_model('rg', 'm3', 'challenger')).registry_status;
SELECT (kaireon.transition_model('rg', 'm3', 'champion')).registry_status;
SELECT key, registry_status FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'churn' ORDER BY key;
ROLLBACK;
SELECT key, registry_status FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'churn' ORDER BY key;
-- ... and when the promotion fails after archiving, nothing happened either
UPDATE kaireon.algorithm_models SET registry_status = 'challenger' WHERE tenant_id = 'rg' AND key = 'm3';
UPDATE kaireon.algorithm_models SET registry_status = 'champion', model_state = '{"bias": "broken"}'
 WHERE tenant_id = 'rg' AND key = 'm3';
SELECT key, registry_status FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'churn' ORDER BY key;
-- one champion per family is also a unique index
SELECT count(*) AS champions FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_status = 'champion';
-- every change is a version with its snapshot
SELECT m.key, v.version, v.model_state->'weights' AS weights
  FROM kaireon.model_versions v JOIN kaireon.algorithm_models m ON m.tenant_id = v.tenant_id AND m.id = v.model_id
 WHERE m.tenant_id = 'rg' AND m.key IN ('m1', 'm2') ORDER BY 1, 2;
-- snapshots record kaireon.user_id
SET kaireon.user_id = 'alice';
UPDATE kaireon.algorithm_models SET description = 'no new version' WHERE tenant_id = 'rg' AND key = 'm3';
UPDATE kaireon.algorithm_models SET config = '{"note": 1}' WHERE tenant_id = 'rg' AND key = 'm3';
SELECT v.version, v.created_by, v.config FROM kaireon.model_versions v JOIN kaireon.algorithm_models m ON m.tenant_id = v.tenant_id AND m.id = v.model_id
 WHERE m.tenant_id = 'rg' AND m.key = 'm3' ORDER BY 1;

-- four-eyes: a promotion goes through an approval request (action model.promote, the
-- generic four-eyes governance of docs/security.md) for the model's current version,
-- approved by another user holding the approver role
INSERT INTO kaireon.users (tenant_id, id, email, role) VALUES
    ('rg', 'alice', 'alice@example.com', 'editor'), ('rg', 'bob', 'bob@example.com', 'approver');
INSERT INTO kaireon.tenant_settings (tenant_id, four_eyes_enabled) VALUES ('rg', true);
-- a direct change of the status is refused
UPDATE kaireon.algorithm_models SET registry_status = 'champion' WHERE tenant_id = 'rg' AND key = 'm3';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- transition_model files the request (as alice, kaireon.user_id above) and changes nothing
-- yet (its NOTICE names the request id)
SET client_min_messages = warning;
SELECT (kaireon.transition_model('rg', 'm3', 'champion')).registry_status AS unchanged;
RESET client_min_messages;
SELECT id AS req FROM kaireon.approval_requests WHERE tenant_id = 'rg' AND action = 'model.promote' AND status = 'pending' \gset
SELECT r.action, r.entity_type, r.entity_id = m.id AS the_model, r.payload ->> 'modelKey' AS model_key,
       (r.payload ->> 'version')::int = m.version AS current_version, r.requester_id, r.status
  FROM kaireon.approval_requests r JOIN kaireon.algorithm_models m ON m.tenant_id = r.tenant_id AND m.key = 'm3'
 WHERE r.tenant_id = 'rg' AND r.id = :'req';
-- the requester cannot approve it
\set VERBOSITY sqlstate
SELECT kaireon.approve_request('rg', :'req');
\set VERBOSITY terse
-- an approval is for one version: after a change of the model, it cannot be applied (and
-- nothing of the approval stays)
UPDATE kaireon.algorithm_models SET config = '{"note": 2}' WHERE tenant_id = 'rg' AND key = 'm3';
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rg', :'req');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT status FROM kaireon.approval_requests WHERE tenant_id = 'rg' AND id = :'req';
SELECT kaireon.reject_request('rg', :'req', reason => 'the model changed');
-- a request for the current version, approved by bob: m3 is champion, m2 archived, and
-- model_approvals records the approved version
SET kaireon.user_id = 'alice';
SET client_min_messages = warning;
SELECT (kaireon.transition_model('rg', 'm3', 'champion')).registry_status AS unchanged;
RESET client_min_messages;
SELECT id AS req FROM kaireon.approval_requests WHERE tenant_id = 'rg' AND action = 'model.promote' AND status = 'pending' \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rg', :'req', comment => 'better AUC') AS approval;
SELECT key, registry_status FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'churn' ORDER BY key;
SELECT status, requested_by, reviewed_by, version, comment FROM kaireon.model_approvals WHERE tenant_id = 'rg';
-- a model that cannot become champion is refused when the request is filed, and so is a
-- promotion request without the version it promotes
SET kaireon.user_id = 'alice';
SELECT kaireon.transition_model('rg', 'm1', 'champion');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.request_approval('rg', 'model.promote', (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'm2'), '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- no way around it by writing the table: a champion is not created, nor deleted, and the
-- version is kaireon's (writing it back does not make a changed model the approved version)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, registry_family, registry_status, model_state)
    VALUES ('rg', 'sneaky', 'Sneaky', 'logistic_regression', 'other', 'champion', '{"bias": 9, "weights": {}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'm3';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT version AS before FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'm3' \gset
UPDATE kaireon.algorithm_models SET version = version - 1 WHERE tenant_id = 'rg' AND key = 'm3';
UPDATE kaireon.algorithm_models SET version = 1, config = '{"note": 3}' WHERE tenant_id = 'rg' AND key = 'm3';
SELECT version - :before AS versions_added FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'm3';
-- application roles cannot write approval records
CREATE ROLE regress_rg_app;
SELECT kaireon.grant_app_role('regress_rg_app');
SELECT has_table_privilege('regress_rg_app', 'kaireon.model_approvals', 'INSERT') AS app_inserts,
       has_table_privilege('regress_rg_app', 'kaireon.model_approvals', 'UPDATE') AS app_updates,
       has_table_privilege('regress_rg_app', 'kaireon.model_approvals', 'SELECT') AS app_reads;
DROP OWNED BY regress_rg_app;
DROP ROLE regress_rg_app;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_rg_app';
-- back to a challenger; turning four-eyes off is itself an approved change
UPDATE kaireon.algorithm_models SET registry_status = 'archived' WHERE tenant_id = 'rg' AND key = 'm3';
UPDATE kaireon.algorithm_models SET registry_status = 'draft' WHERE tenant_id = 'rg' AND key = 'm3';
UPDATE kaireon.algorithm_models SET registry_status = 'challenger' WHERE tenant_id = 'rg' AND key = 'm3';
SELECT kaireon.request_approval('rg', 'four_eyes.settings_change', NULL, '{"four_eyes_enabled": false}') AS req \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rg', :'req') AS four_eyes_off;
RESET kaireon.user_id;

-- ---------------------------------------------------------------- shadow models
SELECT (kaireon.transition_model('rg', 'm1', 'draft')).registry_status;
SELECT (kaireon.transition_model('rg', 'm1', 'shadow')).registry_status;
SELECT (kaireon.transition_model('rg', 'm3', 'champion')).registry_status;
SELECT kaireon.log_shadow_scores('rg', 'm3', 'cust-1', '{"x": 0.5}', ARRAY['o1', 'o2'], 'rec-1') AS logged;
SELECT m.key, s.customer_id, s.offer_id, s.recommendation_id, round(s.score::numeric, 6) AS shadow_score,
       round(s.ranking_score::numeric, 6) AS ranking_score
  FROM kaireon.model_shadow_scores s JOIN kaireon.algorithm_models m ON m.tenant_id = s.tenant_id AND m.id = s.model_id
 ORDER BY s.offer_id;
SELECT kaireon.log_shadow_scores('rg', 'solo', 'cust-1', '{"x": 0.5}') AS no_family;

-- ---------------------------------------------------------------- naive Bayes training
-- click (positive) is one of the outcome types every tenant gets; two of the tenant's own
INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification) VALUES
  ('rg', 'ignore', 'Ignore', 'negative'), ('rg', 'view', 'View', 'neutral');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
  ('rg', 'nb', 'NB', 'bayesian', '[{"name": "age", "type": "numeric", "binEdges": [40]}, {"name": "device", "type": "categorical"}]');
-- context-only features (no customer data schema is published); 'view' is neutral and left out,
-- 'purchase' is not registered and has no default classification either
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
SELECT 'rg', 'c' || g, 'outcome', CASE WHEN g % 4 = 0 THEN 'click' WHEN g % 4 = 3 THEN 'view' ELSE 'ignore' END,
       jsonb_build_object('age', 20 + g % 50, 'device', CASE WHEN g % 3 = 0 THEN 'mobile' ELSE 'desktop' END),
       '2026-01-15'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 400) g;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, occurred_at)
VALUES ('rg', 'c1', 'outcome', 'purchase', '2026-01-15'), ('rg', 'c1', 'outcome', 'dismiss', '2026-01-15');
SELECT kaireon.train_model('rg', 'nb', '2026-01-01', '2026-02-01') - 'trainedAt' - 'featureBaseline' AS metrics;
SELECT model_state->'positives' AS positives, model_state->'negatives' AS negatives,
       model_state->'predictors' AS predictors, version, status
  FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'nb';
-- the counts, recomputed in SQL
SELECT count(*) FILTER (WHERE outcome_type_key = 'click') AS positives,
       count(*) FILTER (WHERE outcome_type_key IN ('ignore', 'dismiss')) AS negatives,
       count(*) FILTER (WHERE outcome_type_key = 'click' AND (context->>'age')::int < 40) AS pos_young,
       count(*) FILTER (WHERE outcome_type_key = 'click' AND context->>'device' = 'mobile') AS pos_mobile
  FROM kaireon.interaction_history WHERE tenant_id = 'rg' AND interaction_type = 'outcome';
-- training errors
SELECT kaireon.train_model('rg', 'nb', '2030-01-01', '2030-02-01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.train_model('rg', 'm1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.train_model('rg', 'nb', options => '{"alpha": -1}');
SELECT kaireon.train_model('rg', 'nb', options => '{"learningRate": 1}');
SELECT kaireon.train_model('rg', 'nope');
SELECT kaireon.train_model('rg', 'nb', options => '{"dataSchemaId": "customers"}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type) VALUES ('rg', 'lr0', 'LR0', 'logistic_regression');
SELECT kaireon.train_model('rg', 'lr0');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT model_state, version FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'lr0';

-- ---------------------------------------------------------------- drift
-- scores of a logistic model on "age": the recent window is older customers and the
-- model's ranking no longer matches the outcomes
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('rg', 'dm', 'Drift', 'logistic_regression', '{"bias": -3, "weights": {"age": 0.05}}');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
SELECT 'rg', 'd' || g, 'outcome', CASE WHEN g % 100 >= 50 THEN 'click' ELSE 'ignore' END,
       jsonb_build_object('age', 20 + g % 100 * 0.5), '2026-03-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 1000) g;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
SELECT 'rg', 'e' || g, 'outcome', CASE WHEN g % 2 = 0 THEN 'click' ELSE 'ignore' END,
       jsonb_build_object('age', 50 + g % 100 * 0.5), '2026-04-01'::timestamptz + g * interval '1 minute'
  FROM generate_series(1, 1000) g;
SELECT check_type, round(drift_score::numeric, 4) AS drift_score, threshold, drifted
  FROM kaireon.check_drift('rg', 'dm', '2026-03-01', '2026-03-02', '2026-04-01', '2026-04-02');
-- the same population in both windows does not drift
SELECT check_type, round(drift_score::numeric, 4) AS drift_score, drifted
  FROM kaireon.check_drift('rg', 'dm', '2026-03-01', '2026-03-01 08:20', '2026-03-01 08:20', '2026-03-01 16:41',
                           '{"psi": 0.1}');
SELECT c.check_type, c.drifted, c.baseline->>'samples' AS baseline_n, c.current->>'samples' AS current_n,
       c.baseline ? 'binEdges' AS has_bins
  FROM kaireon.model_drift_checks c JOIN kaireon.algorithm_models m ON m.tenant_id = c.tenant_id AND m.id = c.model_id
 WHERE m.key = 'dm' ORDER BY c.created_at, c.check_type;
SELECT * FROM kaireon.check_drift('rg', 'dm', '2026-03-02', '2026-03-01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.check_drift('rg', 'dm', '2020-01-01', '2020-01-02', '2026-04-01', '2026-04-02');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.check_drift('rg', 'dm', thresholds => '{"kl": 1}');

-- ---------------------------------------------------------------- experiments
SELECT kaireon.fnv1a('') AS empty, kaireon.fnv1a('a') AS a, kaireon.fnv1a('foobar') AS foobar;
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, registry_family, model_state) VALUES
  ('rg', 'champ', 'Champion', 'offers', '{"rules": []}'), ('rg', 'ch-a', 'Challenger A', 'offers', '{"rules": []}'),
  ('rg', 'ch-b', 'Challenger B', 'offers', '{"rules": []}');
SELECT (kaireon.transition_model('rg', k, 'challenger')).registry_status FROM unnest(ARRAY['champ', 'ch-a', 'ch-b']) k;
SELECT (kaireon.transition_model('rg', 'champ', 'champion')).registry_status;
INSERT INTO kaireon.experiments (tenant_id, id, key, name, status, champion_model_id, holdout_percent, started_at)
SELECT 'rg', 'exp1', 'offers-test', 'Offers test', 'running', id, 5, now() - interval '30 days'
  FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'champ';
INSERT INTO kaireon.experiment_challengers (tenant_id, experiment_id, model_id, traffic_pct)
SELECT 'rg', 'exp1', id, CASE key WHEN 'ch-a' THEN 20 ELSE 10 END
  FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key IN ('ch-a', 'ch-b');
-- 100k customers: each variant within 1 point of its configured share (holdout 5, ch-a 20, ch-b 10, champion 65)
SELECT a.variant, a.model_key, round(100.0 * count(*) / 100000, 2) AS percent
  FROM generate_series(1, 100000) g, kaireon.assign_experiment('rg', 'offers-test', 'cust-' || g) a
 GROUP BY 1, 2 ORDER BY 1;
SELECT bool_and(abs(p - CASE variant WHEN 'holdout' THEN 5 WHEN 'challenger:ch-a' THEN 20 WHEN 'challenger:ch-b' THEN 10 ELSE 65 END) <= 1) AS within_one_point
  FROM (SELECT variant, 100.0 * count(*) / 100000 AS p FROM kaireon.experiment_assignments WHERE tenant_id = 'rg' GROUP BY 1) s;
-- the assignment is the FNV-1a bucket of experimentKey:customerId
SELECT count(*) AS mismatches FROM kaireon.experiment_assignments a
 WHERE a.tenant_id = 'rg' AND a.variant <> CASE
       WHEN kaireon.experiment_bucket('offers-test', a.customer_id) < 5 THEN 'holdout'
       WHEN kaireon.experiment_bucket('offers-test', a.customer_id) < 25 THEN 'challenger:ch-a'
       WHEN kaireon.experiment_bucket('offers-test', a.customer_id) < 35 THEN 'challenger:ch-b'
       ELSE 'champion' END;
-- sticky: changing the split does not move assigned customers, new customers follow the new split
UPDATE kaireon.experiment_challengers SET traffic_pct = 90 WHERE tenant_id = 'rg' AND experiment_id = 'exp1'
   AND model_id = (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'ch-a');
SELECT count(*) AS moved FROM kaireon.experiment_assignments a, kaireon.assign_experiment('rg', 'offers-test', a.customer_id) b
 WHERE a.tenant_id = 'rg' AND a.customer_id LIKE 'cust-12%' AND b.variant <> a.variant;
SELECT variant, model_key FROM kaireon.assign_experiment('rg', 'offers-test', 'new-customer-7');
-- holdout customers get the control treatment: no model
SELECT a.variant, a.model_id IS NULL AS no_model
  FROM (SELECT customer_id FROM kaireon.experiment_assignments WHERE tenant_id = 'rg' AND variant = 'holdout' LIMIT 1) e,
       kaireon.assign_experiment('rg', 'offers-test', e.customer_id) a;
SELECT * FROM kaireon.assign_experiment('rg', 'nope', 'c1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- results: ch-a converts 30%, the champion 20%, ch-b 20% of the customers who had an outcome
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, occurred_at)
SELECT 'rg', a.customer_id, 'outcome',
       CASE WHEN (kaireon.fnv1a(a.customer_id) % 100) < CASE a.variant WHEN 'challenger:ch-a' THEN 30 ELSE 20 END
            THEN 'click' ELSE 'ignore' END, now()
  FROM kaireon.experiment_assignments a WHERE a.tenant_id = 'rg' AND (kaireon.fnv1a(a.customer_id || 'x') % 10) = 0;
SELECT v.key AS variant, v.value->'trials' AS trials, v.value->'successes' AS successes,
       round((v.value->>'rate')::numeric, 4) AS rate,
       round((v.value->'wilson95'->>0)::numeric, 4) AS low, round((v.value->'wilson95'->>1)::numeric, 4) AS high
  FROM jsonb_each(kaireon.experiment_results('rg', 'offers-test')->'variants') v ORDER BY 1;
SELECT t->>'challenger' AS challenger, round((t->>'z')::numeric, 3) AS z, round((t->>'pValue')::numeric, 4) AS p_value,
       round((t->>'confidence')::numeric, 4) AS confidence
  FROM jsonb_array_elements((SELECT results->'tests' FROM kaireon.experiments WHERE tenant_id = 'rg' AND key = 'offers-test')) t;
-- the Wilson interval and the z-test, recomputed from the counts
SELECT round(w[1]::numeric, 4) AS low, round(w[2]::numeric, 4) AS high FROM kaireon.wilson_interval(30, 100) w;
SELECT round(kaireon.normal_cdf(1.959963984540054)::numeric, 6) AS p975, kaireon.normal_cdf(0) AS half;
-- auto-promotion: off, then too early, then the best challenger wins
SELECT e->>'promoted' AS promoted, e->>'reason' AS reason FROM kaireon.evaluate_experiment('rg', 'offers-test') e;
UPDATE kaireon.experiments SET auto_promote = true, auto_promote_days = 60 WHERE tenant_id = 'rg' AND key = 'offers-test';
SELECT e->>'promoted' AS promoted, e->>'reason' AS reason FROM kaireon.evaluate_experiment('rg', 'offers-test') e;
UPDATE kaireon.experiments SET auto_promote_days = 14 WHERE tenant_id = 'rg' AND key = 'offers-test';
-- With four-eyes on, the winner's promotion is filed for approval: not without kaireon.user_id
-- (a scheduled run), once (not again on every run), and its approval promotes the challenger
-- and completes the experiment.
UPDATE kaireon.tenant_settings SET four_eyes_enabled = true WHERE tenant_id = 'rg';
SELECT e->>'promoted' AS promoted, e->>'reason' AS reason FROM kaireon.evaluate_experiment('rg', 'offers-test') e;
SET kaireon.user_id = 'alice';
SET client_min_messages = warning;
SELECT e->>'promoted' AS promoted, e->>'reason' AS reason FROM kaireon.evaluate_experiment('rg', 'offers-test') e;
SELECT e->>'promoted' AS promoted, e->>'reason' AS reason FROM kaireon.evaluate_experiment('rg', 'offers-test') e;
RESET client_min_messages;
SELECT count(*) AS pending_promotions FROM kaireon.approval_requests
 WHERE tenant_id = 'rg' AND action = 'model.promote' AND status = 'pending';
SELECT id AS req FROM kaireon.approval_requests WHERE tenant_id = 'rg' AND action = 'model.promote' AND status = 'pending' \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rg', :'req') AS approval;
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('rg', 'four_eyes.settings_change', NULL, '{"four_eyes_enabled": false}') AS req \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rg', :'req') AS four_eyes_off;
RESET kaireon.user_id;
SELECT key, registry_status FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND registry_family = 'offers' ORDER BY key;
SELECT status, ended_at IS NOT NULL AS ended, champion_model_id = (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'rg' AND key = 'ch-a') AS new_champion
  FROM kaireon.experiments WHERE tenant_id = 'rg' AND key = 'offers-test';
SELECT * FROM kaireon.assign_experiment('rg', 'offers-test', 'brand-new');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- generic A/B variants: sticky, with a TTL after which the customer is assigned again
SELECT v, count(*) FROM generate_series(1, 10000) g, kaireon.assign_variant('rg', 'hero-copy', 'u' || g, '{"A": 70, "B": 30}') v
 GROUP BY 1 ORDER BY 1;
SELECT kaireon.assign_variant('rg', 'hero-copy', 'u1', '{"A": 0, "B": 100}') = variant_name AS sticky
  FROM kaireon.variant_assignments WHERE tenant_id = 'rg' AND experiment_key = 'hero-copy' AND customer_id = 'u1';
SELECT kaireon.assign_variant('rg', 'ttl-test', 'u1', '{"A": 100, "B": 0}', interval '1 hour') AS first;
UPDATE kaireon.variant_assignments SET assigned_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'
 WHERE tenant_id = 'rg' AND experiment_key = 'ttl-test';
SELECT kaireon.assign_variant('rg', 'ttl-test', 'u1', '{"A": 0, "B": 100}', interval '1 hour') AS after_expiry;
SELECT kaireon.assign_variant('rg', 'ttl-test', 'u1', '{"A": 0}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.assign_variant('rg', 'ttl-test', 'u1', '{"A": "half"}');
SELECT kaireon.assign_variant('rg', 'ttl-test', 'u1', '[]');

DELETE FROM kaireon.tenants WHERE id = 'rg';
