-- test/bench/adaptive_setup.sql: the adaptive-model benchmark's additions to gen_data.sql
-- (test/bench/adaptive.sh). psql variables: offers, customers, per_offer (outcomes learned per
-- offer before the runs, enough for every offer's model to be mature), decisions (recorded
-- decisions per flow for the respond runs).

-- an adaptive model over the customer's four attributes, and a flow whose propensity it is
-- (the same as web-propensity otherwise)
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
    ('bench', 'adm', 'ADM', 'adaptive',
     '[{"name": "age", "type": "numeric"}, {"name": "income", "type": "numeric"},
       {"name": "tenure_months", "type": "numeric"}, {"name": "country", "type": "categorical"}]');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('bench', 'web-adm', 'web-adm', 'Web adaptive model', false,
     '{"score": {"method": "propensity", "modelKey": "adm"}, "maxOffers": 3}');
SELECT kaireon.publish_decision_flow('bench', 'web-adm') IS NOT NULL AS published;

-- every offer's model learns per_offer outcomes of customers' attributes (one transaction per
-- offer): positive when (age + offer number) % 3 = 0, and one in ten at random
CREATE PROCEDURE pg_temp.train(n_offers int, per_offer int, n_customers int) LANGUAGE plpgsql AS $$
BEGIN
    FOR o IN 1 .. n_offers LOOP
        PERFORM kaireon.model_learn('bench', 'adm', 'o' || o,
                    jsonb_build_object('age', c.age, 'income', c.income, 'tenure_months', c.tenure_months,
                                       'country', c.country),
                    CASE WHEN (c.age + o) % 3 = 0 OR random() < 0.1 THEN 'positive' ELSE 'negative' END)
           FROM generate_series(1, per_offer) i
           JOIN kaireon_t_bench.ds_customers c ON c.customer_id = 'c' || (1 + (o * per_offer + i) % n_customers);
        COMMIT;
    END LOOP;
END $$;
CALL pg_temp.train(:offers, :per_offer, :customers);
SELECT count(DISTINCT scope_id) AS offers_learned, min(p) AS least_positives
  FROM (SELECT scope_id, sum(positives) p FROM kaireon.model_adaptations
         WHERE tenant_id = 'bench' AND model_id = (SELECT id FROM kaireon.algorithm_models WHERE tenant_id = 'bench' AND key = 'adm')
         GROUP BY scope_id) s;

-- recorded decisions to respond to: decisions of web-adm (whose outcomes the model learns) and
-- of web-propensity (no model), decisions rank-1 rows for customers 1..decisions
CREATE TABLE public.bench_recs (flow text NOT NULL, i int NOT NULL, customer_id text NOT NULL,
                                recommendation_id text NOT NULL, rank int NOT NULL, PRIMARY KEY (flow, i));
INSERT INTO public.bench_recs
SELECT f, g, 'c' || g, r.recommendation_id, r.rank
  FROM unnest(ARRAY['web-adm', 'web-propensity']) f, generate_series(1, :decisions) g,
       LATERAL (SELECT * FROM kaireon.recommend('bench', 'c' || g, 'web', 'hero', decision_flow => f) r
                 ORDER BY r.rank LIMIT 1) r;
SELECT flow, count(*) AS decisions FROM public.bench_recs GROUP BY flow ORDER BY flow;

-- what one web-adm decision scores: the funnel (candidates reaching scoring = after the
-- contact policies), and that the propensities are the adaptive model's, one per offer
SELECT kaireon.recommend_json('{"tenantId": "bench", "customerId": "c42", "channel": "web", "placement": "hero",
                                "decisionFlow": "web-adm", "dryRun": true, "debug": true}') -> 'debug' -> 'funnel' AS funnel;
SELECT count(*) AS ranked, count(DISTINCT round(r.propensity::numeric, 9)) AS distinct_propensities,
       min(r.explanation -> 'model' ->> 'key') AS model,
       bool_and(abs(r.propensity - kaireon.score('bench', 'adm', jsonb_build_object('age', c.age, 'income', c.income,
                    'tenure_months', c.tenure_months, 'country', c.country), r.offer_id)) < 1e-12) AS adaptive_scores
  FROM kaireon.recommend('bench', 'c42', 'web', 'hero', decision_flow => 'web-adm', max_offers => 50,
                         options => '{"dry_run": true}') r,
       kaireon_t_bench.ds_customers c
 WHERE c.customer_id = 'c42';
