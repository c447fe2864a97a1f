-- test/bench/gen_data.sql: the benchmark tenant "bench" at a given scale (spec section 13).
-- psql variables: offers, rules, policies, customers, interactions.
--   S: 100 offers, 20 rules, 8 contact policies, 100k customers, 1M interaction rows
--   L: 1000 offers, 100 rules, 12 contact policies, 1M customers, 10M interaction rows
--   XL: 10000 offers, 200 rules, 16 contact policies, 1M customers, 10M interaction rows
-- Loaded with set functions; foreign key triggers are off while the history is loaded (the
-- rows are consistent by construction) and its partitions are indexed after the load, which
-- keeps scales L and XL to minutes.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

INSERT INTO kaireon.tenants (id, name, slug, settings)
    VALUES ('bench', 'Benchmark', 'bench', '{"decisionTraceSampleRate": 0.01}');

INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('bench', 'web', 'Web', 'web', 'implicit'),
    ('bench', 'email', 'Email', 'email', 'explicit'),
    ('bench', 'push', 'Push', 'push', 'explicit');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, slot_type, max_slots) VALUES
    ('bench', 'hero', 'web', 'Hero', 'hero', 3),
    ('bench', 'sidebar', 'web', 'Sidebar', 'sidebar', 3);
INSERT INTO kaireon.categories (tenant_id, id, name)
    SELECT 'bench', 'cat' || i, 'Category ' || i FROM generate_series(1, 10) i;

-- offers: every tenth one is mandatory-free, priorities and values spread out
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, margin, cost, custom_fields)
    SELECT 'bench', 'o' || i, 'Offer ' || i, 'cat' || (1 + i % 10), 'active',
           10 + (i * 37) % 90, 50 + (i * 13) % 50, (i * 7) % 500, (i * 3) % 100, (i % 5),
           jsonb_build_object('tier', CASE WHEN i % 3 = 0 THEN 'premium' ELSE 'standard' END)
      FROM generate_series(1, :offers) i;
-- creatives: web hero for every offer, web without placement for half, email for a third
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight)
    SELECT 'bench', 'cw' || i, 'o' || i, 'web', 'hero', 'Web ' || i, 100 FROM generate_series(1, :offers) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight)
    SELECT 'bench', 'cwb' || i, 'o' || i, 'web', 'hero', 'Web B ' || i, 50 FROM generate_series(1, :offers, 2) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight)
    SELECT 'bench', 'ce' || i, 'o' || i, 'email', NULL, 'Email ' || i, 100 FROM generate_series(1, :offers, 3) i;

-- customer data and a segment
INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES ('bench', 'customers', 'customers');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('bench', 'customers', 'customer_id', 'text', false, true, 1),
    ('bench', 'customers', 'age', 'integer', true, false, 2),
    ('bench', 'customers', 'income', 'numeric', true, false, 3),
    ('bench', 'customers', 'country', 'text', true, false, 4),
    ('bench', 'customers', 'tenure_months', 'integer', true, false, 5);
SELECT kaireon.publish_data_schema('bench', 'customers');
INSERT INTO kaireon_t_bench.ds_customers (customer_id, age, income, country, tenure_months)
    SELECT 'c' || i, 16 + i % 70, (i::bigint * 7919) % 150000, (ARRAY['DE', 'FR', 'NL', 'ES', 'IT'])[1 + i % 5], i % 120
      FROM generate_series(1, :customers) i;
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('bench', 'adults', 'Adults', 'customers', '[{"field": "age", "operator": "gte", "value": 18}]');
SELECT kaireon.publish_segment('bench', 'adults');

-- qualification rules: a mix of every stage and several types, scoped to categories/offers
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, priority, scope, scope_id, config)
    SELECT 'bench', 'r' || i, 'Rule ' || i,
           CASE i % 5 WHEN 0 THEN 'attribute_condition' WHEN 1 THEN 'attribute_condition'
                      WHEN 2 THEN 'offer_attribute' WHEN 3 THEN 'segment_required' ELSE 'attribute_condition' END,
           CASE i % 4 WHEN 0 THEN 'eligibility' WHEN 1 THEN 'fit' WHEN 2 THEN 'match' ELSE 'eligibility' END,
           100 - i,
           CASE WHEN i % 3 = 0 THEN 'global' ELSE 'category' END,
           CASE WHEN i % 3 = 0 THEN NULL ELSE 'cat' || (1 + i % 10) END,
           CASE i % 5
               WHEN 0 THEN jsonb_build_object('attribute', 'age', 'operator', 'gte', 'value', 16 + i % 10)
               WHEN 1 THEN jsonb_build_object('attribute', 'income', 'operator', 'lt', 'value', 140000 - i * 100)
               WHEN 2 THEN jsonb_build_object('attribute', 'tier', 'operator', 'in', 'value', jsonb_build_array('premium', 'standard'))
               WHEN 3 THEN jsonb_build_object('segmentIds', jsonb_build_array('adults'))
               ELSE jsonb_build_object('attribute', 'country', 'operator', 'neq', 'value', 'XX')
           END
           || CASE WHEN i % 4 = 2 THEN '{"multiplier": 0.8}'::jsonb ELSE '{}'::jsonb END
      FROM generate_series(1, :rules) i;

-- contact policies (the first :policies of this list, cycling with different parameters)
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, scope, scope_id, config)
    SELECT 'bench', 'p' || i, 'Policy ' || i, t.rule_type, 100 - i, t.scope, t.scope_id, t.config
      FROM generate_series(1, :policies) i
      JOIN LATERAL (SELECT * FROM (VALUES
            (1, 'frequency_cap', 'global', NULL, '{"maxCount": 20, "period": "day"}'::jsonb),
            (2, 'cooldown', 'global', NULL, '{"hours": 1, "afterOutcomes": ["dismiss"]}'),
            (3, 'outcome_based', 'global', NULL, '{"outcomes": ["complaint"], "suppressDays": 30}'),
            (4, 'customer_total_cap', 'global', NULL, '{"maxCount": 50, "period": "week"}'),
            (5, 'category_suppression', 'global', NULL, '{"days": 7}'),
            (6, 'mutual_exclusion', 'global', NULL, '{"offerIds": ["o1", "o2"], "lookbackHours": 24}'),
            (7, 'offer_category_cap', 'global', NULL, '{"maxCount": 10, "period": "week"}'),
            (0, 'frequency_cap', 'category', 'cat3', '{"maxCount": 5, "lookbackHours": 48}'))
           AS v(k, rule_type, scope, scope_id, config) WHERE v.k = i % 8) t ON true;

INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('bench', 'web-home', 'web-home', 'Web home', true,
     '{"score": {"method": "priority_weighted"}, "maxOffers": 3}'),
    ('bench', 'web-propensity', 'web-propensity', 'Web propensity', false,
     '{"score": {"method": "propensity"}, "maxOffers": 3}');
SELECT kaireon.publish_decision_flow('bench', 'web-home');
SELECT kaireon.publish_decision_flow('bench', 'web-propensity');
-- Models for the scoring-in-recommend benchmark: gradient-boosted models of 100 trees of
-- depth 6 (127 nodes each, breadth first) with deterministic pseudo-random splits and leaves.
-- gbt100 reads the customer's age, income and tenure and the offer's priority and value, so
-- every candidate is scored on its own; gbt100c reads only the customer's three features, so
-- one score serves every candidate of a request.
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state)
SELECT 'bench', 'gbt100', 'GBT 100 trees', 'gradient_boosted',
       '[{"name": "age", "type": "numeric"}, {"name": "income", "type": "numeric"},
         {"name": "tenure_months", "type": "numeric"}, {"name": "offer.priority", "type": "numeric"},
         {"name": "offer.value", "type": "numeric"}]',
       jsonb_build_object('format', 'xgboost', 'objective', 'binary:logistic', 'transform', 'sigmoid',
                          'baseMargin', -1.0,
                          'features', '["age", "income", "tenure_months", "offer.priority", "offer.value"]'::jsonb,
                          'trees', (SELECT jsonb_agg(tree ORDER BY t) FROM (
           SELECT t, jsonb_build_object(
               'split', jsonb_agg(CASE WHEN n < 63 THEN (t + n) % 5 ELSE -1 END ORDER BY n),
               'threshold', jsonb_agg(CASE WHEN n < 63 THEN
                   CASE (t + n) % 5 WHEN 0 THEN 16 + (t * 7 + n * 13) % 70 WHEN 1 THEN (t * 7919 + n * 104729) % 150000
                                    WHEN 2 THEN (t * 3 + n * 11) % 120 WHEN 3 THEN (t + n * 7) % 100
                                    ELSE (t * 5 + n * 3) % 1000 END
                   ELSE 0 END ORDER BY n),
               'left', jsonb_agg(CASE WHEN n < 63 THEN 2 * n + 1 ELSE -1 END ORDER BY n),
               'right', jsonb_agg(CASE WHEN n < 63 THEN 2 * n + 2 ELSE -1 END ORDER BY n),
               'defaultLeft', jsonb_agg((n % 2) ORDER BY n),
               'value', jsonb_agg(CASE WHEN n < 63 THEN 0 ELSE round((((t * 31 + n * 17) % 200) - 100) / 2000.0, 4) END ORDER BY n),
               'cover', jsonb_agg(CASE WHEN n < 63 THEN 2 ^ (6 - floor(log(2, n + 1))) ELSE 1 END ORDER BY n)) AS tree
             FROM generate_series(0, 99) t, generate_series(0, 126) n GROUP BY t) trees));
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state)
SELECT 'bench', 'gbt100c', 'GBT 100 trees, customer features', 'gradient_boosted',
       '[{"name": "age", "type": "numeric"}, {"name": "income", "type": "numeric"},
         {"name": "tenure_months", "type": "numeric"}]',
       jsonb_set(jsonb_set(model_state, '{features}', '["age", "income", "tenure_months"]'),
                 '{trees}', (SELECT jsonb_agg(jsonb_set(t, '{split}',
                                 (SELECT jsonb_agg(CASE WHEN sp::int < 0 THEN -1 ELSE sp::int % 3 END ORDER BY o)
                                    FROM jsonb_array_elements_text(t -> 'split') WITH ORDINALITY x(sp, o))) ORDER BY n)
                               FROM jsonb_array_elements(model_state -> 'trees') WITH ORDINALITY y(t, n)))
  FROM kaireon.algorithm_models WHERE tenant_id = 'bench' AND key = 'gbt100';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('bench', 'web-model', 'web-model', 'Web model', false,
     '{"score": {"method": "propensity", "modelKey": "gbt100"}, "maxOffers": 3}'),
    ('bench', 'web-model-c', 'web-model-c', 'Web customer model', false,
     '{"score": {"method": "propensity", "modelKey": "gbt100c"}, "maxOffers": 3}');
SELECT kaireon.publish_decision_flow('bench', 'web-model'), kaireon.publish_decision_flow('bench', 'web-model-c');
INSERT INTO kaireon.flow_routes (tenant_id, channel_id, placement_id, decision_flow_id, priority)
    VALUES ('bench', 'web', 'hero', 'web-home', 10);

-- history: spread over the last 90 days, partitions for those months first. Their indexes
-- are dropped for the load and built after it (kaireon_internal._index_interaction_partition,
-- the one list of them), which is several times faster than maintaining them row by row.
SELECT count(*) AS partitions FROM kaireon.create_interaction_partitions(4, (now() - interval '92 days')::date);
DO $drop$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.relname, i.indexrelid::regclass AS idx, con.conname
               FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
               JOIN pg_index i ON i.indrelid = c.oid
               LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = c.oid
              WHERE h.inhparent = 'kaireon.interaction_history'::regclass LOOP
        IF r.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE kaireon.%I DROP CONSTRAINT %I', r.relname, r.conname);
        ELSE
            EXECUTE format('DROP INDEX %s', r.idx);
        END IF;
    END LOOP;
END
$drop$;
SET session_replication_role = replica;
INSERT INTO kaireon.interaction_history (tenant_id, id, occurred_at, customer_id, interaction_type, outcome_type_key,
                                         recommendation_id, rank, offer_id, creative_id, channel_id, placement_id)
    SELECT 'bench', 'h' || i,
           now() - make_interval(secs => (i * 7919) % (90 * 86400)),
           'c' || (1 + (i * 104729) % :customers),
           CASE i % 10 WHEN 0 THEN 'outcome' WHEN 1 THEN 'impression' ELSE 'recommendation' END,
           CASE i % 10 WHEN 0 THEN (ARRAY['click', 'dismiss', 'conversion', 'not_interested'])[1 + i % 4] END,
           'rec' || (i / 3), 1 + i % 3,
           'o' || (1 + i % :offers), 'cw' || (1 + i % :offers), 'web', 'hero'
      FROM generate_series(1::bigint, :interactions) i;
RESET session_replication_role;
SET maintenance_work_mem = '512MB';
SELECT count(kaireon_internal._index_interaction_partition(c.relname))
  FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
 WHERE h.inhparent = 'kaireon.interaction_history'::regclass;
RESET maintenance_work_mem;

-- adaptive propensity counts as respond would have kept them
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, positives, negatives, positive_rate)
    SELECT 'bench', NULL, 'offer', 'o' || i, 5 + i % 60, 40 + i % 90, (5 + i % 60)::float8 / (45 + i % 60 + i % 90)
      FROM generate_series(1, :offers) i;
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, positives, negatives, positive_rate)
    VALUES ('bench', NULL, 'global', NULL, 5000, 45000, 0.1);

-- a plain table for the one-row INSERT baseline
CREATE TABLE IF NOT EXISTS public.bench_insert (id bigserial PRIMARY KEY, customer_id text NOT NULL,
                                                at timestamptz NOT NULL DEFAULT now());
ANALYZE;
SELECT (SELECT count(*) FROM kaireon.offers WHERE tenant_id = 'bench') AS offers,
       (SELECT count(*) FROM kaireon.qualification_rules WHERE tenant_id = 'bench') AS rules,
       (SELECT count(*) FROM kaireon.contact_policies WHERE tenant_id = 'bench') AS policies,
       (SELECT count(*) FROM kaireon_t_bench.ds_customers) AS customers,
       (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'bench') AS interactions;
