-- No NaN or Infinity where money, counts or weights live (docs/schema.md "Finite numbers",
-- docs/models.md "Finite numbers"): every numeric and double precision column of kaireon's
-- tables refuses NaN, Infinity and -Infinity (and numerics beyond double precision) with
-- 23514 from a constraint named after the column; respond refuses a non-finite
-- conversion value with 22023; model documents refuse weights that overflow; score never
-- returns NaN.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('fin', 'Finite', 'fin', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('fin', 'web', 'Web', 'web');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('fin', 'cards', 'Cards');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, cost) VALUES
    ('fin', 'o1', 'Gold', 'cards', 'active', 2.5);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('fin', 'o1-web', 'o1', 'web', 'o1 web');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('fin', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('fin', 'main') IS NOT NULL AS published;

-- ---------------------------------------------------------------- the reported cases
-- offers.cost: NaN passed CHECK (cost >= 0) (NaN sorts above every number) and loaded as 0
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, cost) VALUES
    ('fin', 'o2', 'NaN cost', 'cards', 'active', 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, cost) VALUES
    ('fin', 'o3', 'Infinite cost', 'cards', 'active', 'Infinity');
UPDATE kaireon.offers SET cost = 'NaN' WHERE tenant_id = 'fin' AND id = 'o1';
UPDATE kaireon.offers SET cost = '1e400' WHERE tenant_id = 'fin' AND id = 'o1';
UPDATE kaireon.offers SET value = '-Infinity' WHERE tenant_id = 'fin' AND id = 'o1';
UPDATE kaireon.offers SET weight = 'NaN' WHERE tenant_id = 'fin' AND id = 'o1';
SELECT id, cost, value, weight FROM kaireon.offers WHERE tenant_id = 'fin' ORDER BY id;
-- budget_allocations.max_spend: a NaN budget never filled
INSERT INTO kaireon.budget_allocations (tenant_id, id, scope, period_type, max_spend) VALUES
    ('fin', 'b-nan', 'global', 'total', 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.budget_allocations (tenant_id, id, scope, period_type, max_spend) VALUES
    ('fin', 'b-inf', 'global', 'weekly', 'Infinity');
INSERT INTO kaireon.budget_allocations (tenant_id, id, scope, period_type, max_spend) VALUES
    ('fin', 'b-100', 'global', 'daily', 100);
UPDATE kaireon.budget_allocations SET used_spend = 'NaN' WHERE tenant_id = 'fin' AND id = 'b-100';
SELECT id, max_spend, used_spend FROM kaireon.budget_allocations WHERE tenant_id = 'fin';
-- respond(conversion_value => 'NaN') flowed into summaries and CLV
CREATE TEMP TABLE rec AS SELECT * FROM kaireon.recommend('fin', 'cu1', 'web');
SELECT rank, offer_id FROM rec;
SELECT kaireon.respond('fin', 'cu1', 'conversion', (SELECT recommendation_id FROM rec), 1, conversion_value => 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('fin', 'cu1', 'conversion', (SELECT recommendation_id FROM rec), 1, conversion_value => 'Infinity');
SELECT kaireon.respond('fin', 'cu1', 'conversion', (SELECT recommendation_id FROM rec), 1, conversion_value => '-Infinity');
SELECT kaireon.respond('fin', 'cu1', 'conversion', (SELECT recommendation_id FROM rec), 1, conversion_value => 1e400);
SELECT kaireon.respond_json(jsonb_build_object('tenantId', 'fin', 'customerId', 'cu1', 'outcome', 'conversion',
                                               'offerId', 'o1', 'conversionValue', 1e400));
SELECT kaireon.respond_bulk(jsonb_build_array(jsonb_build_object('tenantId', 'fin', 'customerId', 'cu1',
                                              'outcome', 'conversion', 'offerId', 'o1', 'conversionValue', 1e400)));
-- nothing was written; a finite value is recorded
SELECT count(*) AS outcomes FROM kaireon.interaction_history WHERE tenant_id = 'fin' AND interaction_type = 'outcome';
SELECT kaireon.respond('fin', 'cu1', 'conversion', (SELECT recommendation_id FROM rec), 1, conversion_value => 12.5) ->> 'outcome' AS finite_value;
SELECT conversion_value FROM kaireon.interaction_history WHERE tenant_id = 'fin' AND interaction_type = 'outcome';
-- the history itself refuses a non-finite value written directly
UPDATE kaireon.interaction_history SET conversion_value = 'NaN' WHERE tenant_id = 'fin' AND interaction_type = 'outcome';
UPDATE kaireon.interaction_history SET score = 'Infinity' WHERE tenant_id = 'fin' AND interaction_type = 'outcome';

-- a logistic model with 1e308 weights imported, and score returned NaN
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('fin', 'huge', 'Huge', 'logistic_regression', '{"bias": 0, "weights": {"a": 1e308, "b": 1e308}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('fin', 'huge', 'Huge', 'logistic_regression', '{"bias": -1e308, "weights": {"a": 1}}');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('fin', 'huge', 'Huge', 'logistic_regression', '{"bias": 0, "weights": {"c": {"x": 1e101}}}');
SELECT count(*) AS huge_models FROM kaireon.algorithm_models WHERE tenant_id = 'fin' AND key = 'huge';
-- weights within the bound, but feature values whose products overflow: no NaN, an error
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, model_state) VALUES
  ('fin', 'big', 'Big', 'logistic_regression', '{"bias": 0, "weights": {"a": 1e100, "b": -1e100, "z": 0}}');
SELECT round(kaireon.score('fin', 'big', '{"a": 2e-100, "b": 1e-100}')::numeric, 10) AS ordinary,
       round((1 / (1 + exp(-1.0)))::numeric, 10) AS by_hand;
SELECT kaireon.score('fin', 'big', '{"a": 1e300, "b": 1e300}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.score('fin', 'big', '{"z": 1e400}');
SELECT kaireon.score_vector('fin', 'big', ARRAY[1e300, 1e300, 0]::float8[]);
SELECT kaireon.score_vector('fin', 'big', ARRAY[0, 0, 'Infinity']::float8[]);
SELECT kaireon.explain_score('fin', 'big', '{"a": 1e300, "b": 1e300}');
-- an infinite feature value is missing, like NaN (before: it saturated, or with a zero weight
-- made the score NaN); contributions that overflow with one sign still saturate
SELECT kaireon.score_vector('fin', 'big', ARRAY['Infinity', 0, 0]::float8[]) AS infinite_is_missing;
SELECT kaireon.score_vector('fin', 'big', ARRAY[1e300, 0, 0]::float8[]) AS saturated;
SELECT kaireon.score_vector('fin', 'big', ARRAY['NaN', 'NaN', 'NaN']::float8[]) AS all_missing;

-- assign_variant's weights: one beyond double precision is refused naming the variant; a
-- total that overflows fails PostgreSQL's float8 addition (22003)
SELECT kaireon.assign_variant('fin', 'exp', 'cu1', '{"A": 1e400, "B": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.assign_variant('fin', 'exp', 'cu1', '{"A": 1e308, "B": 1e308}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.assign_variant('fin', 'exp', 'cu1', '{"A": 1e300, "B": 0}') AS finite_weights;

-- defensive: a non-finite number written around the constraint (dropped here, in a
-- transaction rolled back) stops the configuration load instead of reading as 0 or "no budget"
BEGIN;
ALTER TABLE kaireon.offers DROP CONSTRAINT offers_cost_finite;
UPDATE kaireon.offers SET cost = 'NaN' WHERE tenant_id = 'fin' AND id = 'o1';
SELECT count(*) FROM kaireon.recommend('fin', 'cu2', 'web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
ALTER TABLE kaireon.budget_allocations DROP CONSTRAINT budget_allocations_max_spend_finite;
UPDATE kaireon.budget_allocations SET max_spend = 'NaN' WHERE tenant_id = 'fin' AND id = 'b-100';
SELECT count(*) FROM kaireon.recommend('fin', 'cu2', 'web');
ROLLBACK;
SELECT count(*) AS constraints_back FROM pg_constraint
 WHERE conname IN ('offers_cost_finite', 'budget_allocations_max_spend_finite');

-- ---------------------------------------------------------------- every guarded column
-- Each numeric / double precision column of kaireon's tables, on a copy of its table with
-- its CHECK constraints (NOT NULL dropped, so the other columns may stay NULL): 1 must be
-- accepted; NaN, Infinity, -Infinity (and 1e400 for numeric) refused with 23514 by a
-- constraint whose name carries the column's.
CREATE TEMP TABLE sweep (tbl text, col text, tried text, outcome text, msg text);
DO $sweep$
DECLARE
    c       record;
    n       name;
    v       text;
    st      text;
    m       text;
BEGIN
    FOR c IN
        SELECT cl.relname, a.attname, a.atttypid = 'numeric'::regtype AS is_numeric
          FROM pg_attribute a JOIN pg_class cl ON cl.oid = a.attrelid
         WHERE cl.relnamespace = 'kaireon'::regnamespace AND cl.relkind IN ('r', 'p')
           AND NOT cl.relispartition AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid IN ('numeric'::regtype, 'double precision'::regtype, 'real'::regtype)
         ORDER BY 1, 2
    LOOP
        EXECUTE format('CREATE TEMP TABLE sweep_copy (LIKE kaireon.%I INCLUDING CONSTRAINTS)', c.relname);
        FOR n IN SELECT attname FROM pg_attribute WHERE attrelid = 'sweep_copy'::regclass AND attnum > 0 AND attnotnull LOOP
            EXECUTE format('ALTER TABLE sweep_copy ALTER COLUMN %I DROP NOT NULL', n);
        END LOOP;
        FOREACH v IN ARRAY ARRAY['1', 'NaN', 'Infinity', '-Infinity']
                           || CASE WHEN c.is_numeric THEN ARRAY['1e400'] ELSE ARRAY[]::text[] END LOOP
            BEGIN
                EXECUTE format('INSERT INTO sweep_copy (%I) VALUES (%L)', c.attname, v);
                INSERT INTO sweep VALUES (c.relname, c.attname, v, 'accepted', NULL);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
                INSERT INTO sweep VALUES (c.relname, c.attname, v, st, m);
            END;
        END LOOP;
        DROP TABLE sweep_copy;
    END LOOP;
END
$sweep$;
SELECT count(DISTINCT (tbl, col)) AS columns_swept, count(*) AS values_tried FROM sweep;
-- the finite control value is accepted everywhere
SELECT tbl, col, outcome, msg FROM sweep WHERE tried = '1' AND outcome <> 'accepted' ORDER BY 1, 2;
-- no non-finite value is accepted anywhere, and each refusal is a 23514 naming the column
SELECT tbl, col, tried, outcome, msg FROM sweep
 WHERE tried <> '1' AND (outcome <> '23514' OR msg NOT LIKE '%' || col || '%') ORDER BY 1, 2, 3;
-- each column has its named constraint
SELECT s.tbl, s.col FROM (SELECT DISTINCT tbl, col FROM sweep) s
 WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = format('kaireon.%I', s.tbl)::regclass
                     AND k.conname = format('%s_%s_finite', s.tbl, s.col) AND k.contype = 'c')
 ORDER BY 1, 2;
-- partitions of interaction_history carry the constraints too
SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = i.inhrelid
                                            AND k.conname = 'interaction_history_conversion_value_finite')) AS partitions_without
       , count(*) > 0 AS has_partitions
  FROM pg_inherits i WHERE i.inhparent = 'kaireon.interaction_history'::regclass;
-- an application role's writes are checked the same (the check function runs as the writer)
CREATE ROLE regress_fin_app;
SELECT kaireon.grant_app_role('regress_fin_app');
SET ROLE regress_fin_app;
SET kaireon.tenant_id = 'fin';
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, cost) VALUES
    ('fin', 'o4', 'App NaN', 'cards', 'active', 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, cost) VALUES
    ('fin', 'o4', 'App finite', 'cards', 'active', 4);
SELECT kaireon.respond('fin', 'cu1', 'conversion', offer_id => 'o1', conversion_value => 'NaN');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Review findings: a conversion value is bounded (sums of them in summaries and CLV must stay
-- finite: two respond calls of 1e308 made every tenant's rollup fail), and a feature value
-- beyond double precision is missing, not a score error.
SELECT kaireon.respond('fin', 'c1', 'conversion', offer_id => 'o1', conversion_value => 1e308);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('fin', 'c1', 'conversion', offer_id => 'o1', conversion_value => -2e15);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, conversion_value)
    VALUES ('fin', 'c1', 'outcome', 'conversion', 1e300);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
SELECT id, cost FROM kaireon.offers WHERE tenant_id = 'fin' ORDER BY id;

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id = 'fin';
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_fin_app';
DROP OWNED BY regress_fin_app;
DROP ROLE regress_fin_app;

