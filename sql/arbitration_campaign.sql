-- Batch arbitration (docs/arbitration.md): kaireon.run_campaign and kaireon.simulate over
-- a run definition: bad input refused before anything is written; candidates from the
-- recommend pipeline; each cross-offer constraint type, budgets, volume constraints and the
-- run's own limits holding for the assignment; per-response caps per customer; decisions,
-- interactions and counters written (or not, for simulations); an infeasible campaign and
-- one that fails part way leave a failed run with the reason and nothing else.
-- (The GLPK oracle test, test/t/020_arbitration_oracle.pl, checks optimality.)
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ac', 'Campaigns', 'ac', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('ac', 'email', 'Email', 'email', 'explicit', 'active'),
    ('ac', 'sms', 'SMS', 'sms', 'explicit', 'active'),
    ('ac', 'push', 'Push', 'push', 'explicit', 'inactive');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('ac', 'c1', 'C1'), ('ac', 'c2', 'C2');
-- priority_weighted scores 0.9, 0.8, 0.7, 0.6; costs 5, 2, 1, 0
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, cost) VALUES
    ('ac', 'o1', 'O1', 'c1', 'active', 90, 100, 100, 5),
    ('ac', 'o2', 'O2', 'c1', 'active', 80, 100, 50, 2),
    ('ac', 'o3', 'O3', 'c2', 'active', 70, 100, 20, 1),
    ('ac', 'o4', 'O4', 'c2', 'active', 60, 100, 10, 0);
-- every offer by email, o1 and o3 by SMS too
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight)
    SELECT 'ac', 'cr-' || o.id || '-' || c.ch, o.id, c.ch, 'Creative', 100
      FROM kaireon.offers o, (VALUES ('email'), ('sms')) c(ch)
     WHERE o.tenant_id = 'ac' AND (c.ch = 'email' OR o.id IN ('o1', 'o3'));
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('ac', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}}');
SELECT kaireon.publish_decision_flow('ac', 'f');
CREATE TABLE public.ac_customers AS SELECT 'cust' || lpad(i::text, 2, '0') AS id FROM generate_series(1, 20) i;
GRANT SELECT ON public.ac_customers TO PUBLIC;
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('ac', 'r', 'Run', 'f', '["email"]', 'SELECT id FROM public.ac_customers', 2, 'active');

-- a run's outcome in one line: the dual bound is at least the primal value, and the gap
-- within the default tolerance (kaireon.arbitration_tolerance, 0.001)
CREATE FUNCTION pg_temp.run(run text, simulation boolean DEFAULT false)
    RETURNS TABLE (status text, customers bigint, recommended bigint, primal numeric, bounded boolean, gap_ok boolean, error text)
LANGUAGE sql AS $$
    SELECT r.status, r.total_customers, r.recommended, round(r.primal_value::numeric, 6),
           r.dual_bound >= r.primal_value AND abs(r.duality_gap - (r.dual_bound - r.primal_value) / r.dual_bound) < 1e-12,
           r.duality_gap <= 0.001, r.error
      FROM kaireon.run_campaign('ac', run, simulation) r
$$;
-- the latest run's decisions per offer and channel
CREATE FUNCTION pg_temp.assigned() RETURNS TABLE (offer_id text, channel_id text, decisions bigint)
LANGUAGE sql AS $$
    SELECT d.offer_id, d.channel_id, count(*) FROM kaireon.campaign_decisions d
     WHERE d.campaign_run_id = (SELECT id FROM kaireon.campaign_runs WHERE tenant_id = 'ac' ORDER BY created_at DESC, run_number DESC LIMIT 1)
     GROUP BY 1, 2 ORDER BY 1, 2
$$;
-- the latest run's constraints: limit, use, price
CREATE FUNCTION pg_temp.constraints() RETURNS TABLE (key text, limit_ numeric, used numeric, binding boolean)
LANGUAGE sql AS $$
    SELECT c ->> 'key', (c ->> 'limit')::numeric, round((c ->> 'used')::numeric, 4), (c ->> 'binding')::boolean
      FROM kaireon.campaign_runs r, jsonb_array_elements(r.summary -> 'constraints') c
     WHERE r.id = (SELECT id FROM kaireon.campaign_runs WHERE tenant_id = 'ac' ORDER BY created_at DESC, run_number DESC LIMIT 1)
       AND c ? 'limit'
     ORDER BY 1
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Bad input: refused before anything is written
-- ---------------------------------------------------------------------------------------
SELECT * FROM kaireon.run_campaign(NULL, 'r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_campaign('ac', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_campaign('no-such-tenant', 'r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.run_campaign('ac', 'no-such-run');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET status = 'draft' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET status = 'archived' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r', true);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET status = 'active', channel_ids = '[]' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET channel_ids = '["email", "pager"]' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET channel_ids = '["push"]' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET channel_ids = '["email", "email"]' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET channel_ids = '["email"]', customer_query = NULL WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET customer_query = 'SELECT id FROM public.ac_customers; SELECT 1' WHERE tenant_id = 'ac' AND id = 'r';
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET customer_query = 'SELECT id FROM public.ac_customers' WHERE tenant_id = 'ac' AND id = 'r';
-- a constraint naming a category that does not exist
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('ac', 'k-bad', 'bad scope', 'category_cap', 'category', 'nope', '{"limit": 5, "period": "run"}');
SELECT * FROM pg_temp.run('r');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ac';
-- run limits are validated when written
UPDATE kaireon.runs SET volume_constraints = '{"maxTotal": -1}' WHERE tenant_id = 'ac' AND id = 'r';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET volume_constraints = '{"perOffer": {"o1": "ten"}}' WHERE tenant_id = 'ac' AND id = 'r';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.runs SET volume_constraints = '{"perOfer": {"o1": 1}}' WHERE tenant_id = 'ac' AND id = 'r';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT (SELECT count(*) FROM kaireon.campaign_runs WHERE tenant_id = 'ac') AS runs_written,
       (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'ac') AS interactions;

-- ---------------------------------------------------------------------------------------
-- 2. Nothing binds: every customer gets its two best offers; decisions, interactions
-- ---------------------------------------------------------------------------------------
SELECT * FROM pg_temp.run('r');
SELECT * FROM pg_temp.assigned();
SELECT run_number, status, is_simulation, processed, iterations, summary ->> 'method' AS method,
       summary ->> 'converged' AS converged, summary -> 'offers' AS offers
  FROM kaireon.campaign_runs WHERE tenant_id = 'ac';
-- ranked per customer, one recommendation id per customer, an interaction per decision
SELECT customer_id, string_agg(rank || ':' || offer_id, ' ' ORDER BY rank) AS decisions,
       count(DISTINCT recommendation_id) AS recommendation_ids
  FROM kaireon.campaign_decisions WHERE tenant_id = 'ac' AND customer_id IN ('cust01', 'cust20') GROUP BY 1 ORDER BY 1;
SELECT count(*) AS interactions, count(DISTINCT h.customer_id) AS customers,
       bool_and(h.campaign_id = 'r' AND h.interaction_type = 'recommendation') AS campaign_recorded,
       bool_and(h.id = d.interaction_id AND h.rank = d.rank AND h.score = d.score) AS same_as_decisions
  FROM kaireon.interaction_history h
  JOIN kaireon.campaign_decisions d ON d.tenant_id = h.tenant_id AND d.interaction_id = h.id
 WHERE h.tenant_id = 'ac';
SELECT last_run_at IS NOT NULL AS last_run_at_set FROM kaireon.runs WHERE tenant_id = 'ac' AND id = 'r';

-- ---------------------------------------------------------------------------------------
-- 3. Each cross-offer constraint type binding over the run (period "run"); simulations from
--    here on (decisions but no interactions)
-- ---------------------------------------------------------------------------------------
-- category_cap: at most 10 decisions of c1 (natural demand 40): o1 keeps 10 (worth more)
-- and the other slots go to c2
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('ac', 'k', 'c1 cap', 'category_cap', 'category', 'c1', '{"limit": 10, "period": "run"}');
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
SELECT * FROM pg_temp.constraints();
-- a global category_cap: each category at most 15
UPDATE kaireon.cross_offer_constraints SET scope = 'global', scope_id = NULL, config = '{"limit": 15, "period": "run"}'
 WHERE tenant_id = 'ac' AND id = 'k';
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.constraints();
-- channel_quota: two channels, at most 8 by SMS and 25 by email
UPDATE kaireon.runs SET channel_ids = '["email", "sms"]' WHERE tenant_id = 'ac' AND id = 'r';
UPDATE kaireon.cross_offer_constraints SET rule_type = 'channel_quota', scope = 'channel', scope_id = 'sms',
       name = 'sms quota', config = '{"limit": 8, "period": "run"}' WHERE tenant_id = 'ac' AND id = 'k';
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('ac', 'k2', 'email quota', 'channel_quota', 'channel', 'email', '{"limit": 25, "period": "run"}');
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
SELECT * FROM pg_temp.constraints();
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ac' AND id = 'k2';
UPDATE kaireon.runs SET channel_ids = '["email"]' WHERE tenant_id = 'ac' AND id = 'r';
-- portfolio_budget: cost at most 50 (unconstrained: 20 * (5 + 2) = 140)
UPDATE kaireon.cross_offer_constraints SET rule_type = 'portfolio_budget', scope = 'global', scope_id = NULL,
       name = 'budget', config = '{"limit": 50, "period": "run"}' WHERE tenant_id = 'ac' AND id = 'k';
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
SELECT * FROM pg_temp.constraints();
-- with the cost field "value" (100, 50, 20, 10) at most 600
UPDATE kaireon.cross_offer_constraints SET config = '{"limit": 600, "period": "run", "costField": "value"}' WHERE tenant_id = 'ac' AND id = 'k';
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.constraints();
-- a limit no assignment fills (every value is a multiple of 10): the budget has a price
-- (lambda > 0) but a unit is left, so it is not "binding" (binding = the run took all of it)
UPDATE kaireon.cross_offer_constraints SET config = '{"limit": 601, "period": "run", "costField": "value"}' WHERE tenant_id = 'ac' AND id = 'k';
SELECT status, recommended, bounded FROM pg_temp.run('r', true);
SELECT c ->> 'key' AS key, (c ->> 'limit')::numeric AS limit_, (c ->> 'used')::numeric AS used,
       (c ->> 'lambda')::float8 > 0 AS priced, (c ->> 'binding')::boolean AS binding
  FROM kaireon.campaign_runs r, jsonb_array_elements(r.summary -> 'constraints') c
 WHERE r.id = (SELECT id FROM kaireon.campaign_runs WHERE tenant_id = 'ac' ORDER BY created_at DESC, run_number DESC LIMIT 1);
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ac';
-- the run's own limits: at most 25 decisions, o1 at most 5
UPDATE kaireon.runs SET volume_constraints = '{"maxTotal": 25, "perOffer": {"o1": 5}}' WHERE tenant_id = 'ac' AND id = 'r';
SELECT status, recommended, primal, bounded, gap_ok FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
SELECT * FROM pg_temp.constraints();
UPDATE kaireon.runs SET volume_constraints = '{}' WHERE tenant_id = 'ac' AND id = 'r';

-- ---------------------------------------------------------------------------------------
-- 4. Per-response caps per customer: at most one offer of each category
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, config) VALUES
    ('ac', 'k', 'one per category', 'category_cap', 'global', '{"maxPerResponse": 1}');
SELECT status, recommended, primal FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ac';

-- ---------------------------------------------------------------------------------------
-- 5. Budgets and volume constraints: their room left is a capacity, and a real run takes
--    its units (a simulation does not)
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, max_impressions, max_spend, used_spend) VALUES
    ('ac', 'bud', 'C1 budget', 'category', 'c1', 'total', 12, 40, 10);
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, scope_id, max_volume, period) VALUES
    ('ac', 'vol', 'O3 volume', 'offer', 'o3', 6, 'weekly');
SELECT status, recommended, primal FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.constraints();
SELECT used_impressions, used_spend, (SELECT current_count FROM kaireon.volume_constraints WHERE tenant_id = 'ac') AS volume_count
  FROM kaireon.budget_allocations WHERE tenant_id = 'ac';
SELECT status, recommended, primal FROM pg_temp.run('r');
SELECT used_impressions, used_spend, (SELECT current_count FROM kaireon.volume_constraints WHERE tenant_id = 'ac') AS volume_count
  FROM kaireon.budget_allocations WHERE tenant_id = 'ac';
-- a second run has only what is left
SELECT status, recommended FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'ac';
DELETE FROM kaireon.volume_constraints WHERE tenant_id = 'ac';

-- ---------------------------------------------------------------------------------------
-- 6. Infeasible: mandatory offers alone exceed a constraint -> the run fails with the
--    reason and writes no decisions
-- ---------------------------------------------------------------------------------------
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'ac' AND id = 'o4';
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('ac', 'k', 'c2 cap', 'category_cap', 'category', 'c2', '{"limit": 5, "period": "run"}');
SELECT * FROM pg_temp.run('r');
SELECT count(*) AS decisions_of_failed_run FROM kaireon.campaign_decisions d
  JOIN kaireon.campaign_runs r ON r.tenant_id = d.tenant_id AND r.id = d.campaign_run_id WHERE r.status = 'failed';
-- with room for them, mandatory offers are placed first for everyone
UPDATE kaireon.cross_offer_constraints SET config = '{"limit": 30, "period": "run"}' WHERE tenant_id = 'ac' AND id = 'k';
SELECT status, recommended, primal FROM pg_temp.run('r', true);
SELECT * FROM pg_temp.assigned();
SELECT count(*) FILTER (WHERE rank = 1 AND offer_id = 'o4' AND mandatory) AS mandatory_first
  FROM kaireon.campaign_decisions WHERE campaign_run_id = (SELECT id FROM kaireon.campaign_runs WHERE tenant_id = 'ac'
                                                          ORDER BY created_at DESC, run_number DESC LIMIT 1);
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'ac' AND id = 'o4';
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ac';

-- ---------------------------------------------------------------------------------------
-- 7. A run that fails part way (the customer query fails as it is read; recording the
--    interactions fails after the decisions were written): failed with the reason, nothing
--    of it left
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS interactions_before FROM kaireon.interaction_history WHERE tenant_id = 'ac' \gset
UPDATE kaireon.runs SET customer_query = 'SELECT id FROM public.ac_customers WHERE 1 / (20 - substr(id, 5)::int) >= 0'
 WHERE tenant_id = 'ac' AND id = 'r';
SELECT status, customers, recommended, error FROM pg_temp.run('r');
UPDATE kaireon.runs SET customer_query = 'SELECT id FROM public.ac_customers' WHERE tenant_id = 'ac' AND id = 'r';
CREATE FUNCTION public.ac_fail_interactions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'interaction store unavailable for %', NEW.customer_id;
END
$$;
CREATE TRIGGER ac_fail BEFORE INSERT ON kaireon.interaction_history_default
    FOR EACH ROW WHEN (NEW.tenant_id = 'ac') EXECUTE FUNCTION public.ac_fail_interactions();
SELECT status, customers, recommended, error FROM pg_temp.run('r');
DROP TRIGGER ac_fail ON kaireon.interaction_history_default;
DROP FUNCTION public.ac_fail_interactions();
SELECT r.run_number, r.status, (SELECT count(*) FROM kaireon.campaign_decisions d WHERE d.campaign_run_id = r.id) AS decisions,
       r.completed_at IS NOT NULL AS completed_at_set
  FROM kaireon.campaign_runs r WHERE r.tenant_id = 'ac' AND r.status = 'failed' ORDER BY r.run_number;
SELECT count(*) = :interactions_before AS no_interactions_left FROM kaireon.interaction_history WHERE tenant_id = 'ac';

-- ---------------------------------------------------------------------------------------
-- 8. A large campaign returns its row intact (regression: the row was returned from memory
--    the function had freed, which crashed the backend once the campaign's memory was large)
-- ---------------------------------------------------------------------------------------
UPDATE kaireon.runs SET customer_query = 'SELECT ''big'' || i FROM generate_series(1, 30000) i', max_offers = 1
 WHERE tenant_id = 'ac' AND id = 'r';
SELECT status, total_customers, recommended, round(primal_value::numeric, 6) AS primal
  FROM kaireon.run_campaign('ac', 'r', simulation => true);
UPDATE kaireon.runs SET customer_query = 'SELECT id FROM public.ac_customers', max_offers = 2 WHERE tenant_id = 'ac' AND id = 'r';

-- ---------------------------------------------------------------------------------------
-- 9. kaireon.simulate: writes only its simulation_runs row
-- ---------------------------------------------------------------------------------------
SELECT (SELECT count(*) FROM kaireon.campaign_runs WHERE tenant_id = 'ac') AS runs_before,
       (SELECT count(*) FROM kaireon.campaign_decisions WHERE tenant_id = 'ac') AS decisions_before \gset
SELECT status, sample_size, decision_flow_key, results ->> 'customers' AS customers, results ->> 'recommended' AS recommended,
       round((results ->> 'primalValue')::numeric, 6) AS primal, results -> 'offers' AS offers, error
  FROM kaireon.simulate('ac', run_id => 'r', sample_size => 5,
                        config => '{"maxOffers": 1, "volumeConstraints": {"perOffer": {"o1": 2}}}');
-- without a run: flow, channels and customers from the arguments
SELECT status, results ->> 'customers' AS customers, results -> 'offers' AS offers
  FROM kaireon.simulate('ac', decision_flow_key => 'f', sample_size => 100,
                        config => '{"channelIds": ["sms"], "customerQuery": "SELECT id FROM public.ac_customers", "maxOffers": 2}');
SELECT (SELECT count(*) FROM kaireon.campaign_runs WHERE tenant_id = 'ac') = :runs_before AS no_campaign_runs,
       (SELECT count(*) FROM kaireon.campaign_decisions WHERE tenant_id = 'ac') = :decisions_before AS no_decisions,
       (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'ac') = :interactions_before AS no_interactions,
       (SELECT count(*) FROM kaireon.simulation_runs WHERE tenant_id = 'ac') AS simulation_runs;
SELECT * FROM kaireon.simulate('ac', sample_size => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.simulate('ac', config => '{"channels": ["email"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.simulate('ac', run_id => 'r', config => '{"volumeConstraints": {"maxTotal": "x"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.simulate('ac', run_id => 'r', config => '{"tolerance": 2}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Decisions are written in batches of 1,000 rows: a batch may end within a customer's decisions
-- (700 customers, 3 offers each). Every customer's decisions of a run still share one
-- recommendation id, a UUID (regression: it was read from memory the batch had released).
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('ac', 'rbatch', 'Batches', 'f', '["email"]', 'SELECT ''b'' || lpad(i::text, 3, ''0'') FROM generate_series(1, 700) i', 3, 'active');
SELECT status, total_customers, recommended > 1000 AS over_a_batch, error FROM kaireon.run_campaign('ac', 'rbatch', simulation => true);
SELECT count(DISTINCT d.customer_id) AS customers,
       count(*) FILTER (WHERE d.recommendation_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') AS not_uuids,
       (SELECT count(*) FROM (SELECT customer_id FROM kaireon.campaign_decisions x
                               WHERE x.tenant_id = 'ac' AND x.campaign_run_id = r.id
                               GROUP BY customer_id HAVING count(DISTINCT recommendation_id) > 1) s) AS customers_with_two_ids
  FROM kaireon.campaign_runs r JOIN kaireon.campaign_decisions d ON d.tenant_id = r.tenant_id AND d.campaign_run_id = r.id
 WHERE r.tenant_id = 'ac' AND r.campaign_id = 'rbatch'
 GROUP BY r.id;

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'ac';
DELETE FROM kaireon.tenants WHERE id = 'ac';
DROP TABLE public.ac_customers;
