-- Arbitration in real time (docs/arbitration.md): cross-offer constraints validated when
-- written; per-response caps of each constraint type, exact in every response; dual prices
-- kept by kaireon.update_dual_prices (online dual descent towards the paced target, pacing
-- multipliers bounded to [0.5, 2], a used-up constraint at its highest price, counters);
-- recommend subtracting lambda * cost when the tenant's real-time arbitration is on, dropping
-- what is not worth its price, and recording the prices' version; prices kept finite.
\set VERBOSITY terse
SET timezone = 'UTC';
SET kaireon.arbitration_refresh_ms = 0;     -- read the prices for every decision
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ar', 'Real time', 'ar', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('ar', 'web', 'Web', 'web', 'explicit', 'active'),
    ('ar', 'email', 'Email', 'email', 'explicit', 'active');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('ar', 'c1', 'C1'), ('ar', 'c2', 'C2');
-- priority_weighted scores 0.9, 0.8, 0.7, 0.6; costs 5, 2, 1, 0
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, cost) VALUES
    ('ar', 'o1', 'O1', 'c1', 'active', 90, 100, 100, 5),
    ('ar', 'o2', 'O2', 'c1', 'active', 80, 100, 50, 2),
    ('ar', 'o3', 'O3', 'c2', 'active', 70, 100, 20, 1),
    ('ar', 'o4', 'O4', 'c2', 'active', 60, 100, 10, 0);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight)
    SELECT 'ar', 'cr-' || o.id || '-' || c.ch, o.id, c.ch, 'Creative', 100
      FROM kaireon.offers o, (VALUES ('web'), ('email')) c(ch) WHERE o.tenant_id = 'ar';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('ar', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}, "maxOffers": 4}');
SELECT kaireon.publish_decision_flow('ar', 'f');

CREATE FUNCTION pg_temp.picks(channel text DEFAULT 'web') RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rank || ':' || r.offer_id, ' ' ORDER BY r.rank), '(none)')
      FROM kaireon.recommend('ar', 'c1', channel, NULL, '{}', NULL, NULL, '{"dry_run": true}') r
$$;
CREATE FUNCTION pg_temp.dropped(channel text DEFAULT 'web') RETURNS TABLE (offer_id text, stage text, reason text)
LANGUAGE sql AS $$
    SELECT r.offer_id, r.explanation ->> 'droppedAt', r.explanation ->> 'reason'
      FROM kaireon.recommend('ar', 'c1', channel, NULL, '{}', NULL, NULL, '{"dry_run": true, "debug": true}') r
     WHERE r.rank IS NULL ORDER BY r.offer_id
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Cross-offer constraints are validated when written (22023 naming the field, or the
--    CHECK of scope by type, 23514); nothing is stored
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config, status) VALUES
    ('ar', 'v1', 'quota', 'channel_quota', 'channel', 'web', '{"limit": 100, "period": "daily", "maxPerResponse": 2}', 'draft'),
    ('ar', 'v2', 'cap', 'category_cap', 'global', NULL, '{"maxPerResponse": 1}', 'draft'),
    ('ar', 'v3', 'budget', 'portfolio_budget', 'offer', 'o1', '{"limit": 12.5, "period": "run", "costField": "value"}', 'draft');
SELECT count(*) AS valid_stored FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ar';
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'channel_quota', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'channel_quota', '{"limit": 0, "period": "daily"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'channel_quota', '{"limit": 10}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'category_cap', '{"maxPerResponse": 1, "period": "daily"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'category_cap', '{"limit": 10, "period": "hourly"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'category_cap', '{"limit": 2.5, "period": "daily"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'channel_quota', '{"maxPerResponse": 1, "costField": "cost"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'portfolio_budget', '{"maxPerResponse": -3}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, scope, scope_id, config) VALUES ('ar', 'x', 'channel_quota', 'category', 'c1', '{"maxPerResponse": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, scope, scope_id, config) VALUES ('ar', 'x', 'category_cap', 'channel', 'web', '{"maxPerResponse": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.cross_offer_constraints (tenant_id, name, rule_type, config) VALUES ('ar', 'x', 'offer_cap', '{"maxPerResponse": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.cross_offer_constraints SET config = '{"limit": -1, "period": "daily"}' WHERE tenant_id = 'ar' AND id = 'v1';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS still_stored, (SELECT config FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ar' AND id = 'v1') AS v1_unchanged
  FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ar';
-- draft and inactive constraints take no part
SELECT pg_temp.picks() AS drafts_ignored;
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ar';

-- ---------------------------------------------------------------------------------------
-- 2. Per-response caps: exact in every response (dropped at stage "arbitration")
-- ---------------------------------------------------------------------------------------
-- category_cap on one category: at most one offer of c1
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('ar', 'k-c1', 'one of c1', 'category_cap', 'category', 'c1', '{"maxPerResponse": 1}');
SELECT pg_temp.picks() AS category_c1;
SELECT * FROM pg_temp.dropped();
-- a global category_cap caps each category
UPDATE kaireon.cross_offer_constraints SET scope = 'global', scope_id = NULL WHERE tenant_id = 'ar' AND id = 'k-c1';
SELECT pg_temp.picks() AS each_category;
-- channel_quota: at most two offers on web; email is not covered
UPDATE kaireon.cross_offer_constraints SET rule_type = 'channel_quota', scope = 'channel', scope_id = 'web', name = 'two on web',
       config = '{"maxPerResponse": 2}' WHERE tenant_id = 'ar' AND id = 'k-c1';
SELECT pg_temp.picks('web') AS web, pg_temp.picks('email') AS email;
-- portfolio_budget: cost at most 6 per response (o1 5 + o3 1; o2 would make 7; o4 costs nothing)
UPDATE kaireon.cross_offer_constraints SET rule_type = 'portfolio_budget', scope = 'global', scope_id = NULL,
       name = 'six per response', config = '{"maxPerResponse": 6}' WHERE tenant_id = 'ar' AND id = 'k-c1';
SELECT pg_temp.picks() AS budget_six;
SELECT * FROM pg_temp.dropped();
-- the cost field: value (100, 50, 20, 10) at most 70 per response: o2 + o3
UPDATE kaireon.cross_offer_constraints SET config = '{"maxPerResponse": 70, "costField": "value"}' WHERE tenant_id = 'ar' AND id = 'k-c1';
SELECT pg_temp.picks() AS value_seventy;
-- a mandatory offer is never refused, but counts: o4 (value 60) mandatory, within 85 only o3 (20) more
UPDATE kaireon.cross_offer_constraints SET config = '{"maxPerResponse": 85, "costField": "value"}' WHERE tenant_id = 'ar' AND id = 'k-c1';
UPDATE kaireon.offers SET mandatory = true, value = 60 WHERE tenant_id = 'ar' AND id = 'o4';
SELECT pg_temp.picks() AS with_mandatory;
UPDATE kaireon.offers SET mandatory = false, value = 10 WHERE tenant_id = 'ar' AND id = 'o4';
-- recorded decisions keep the caps too
UPDATE kaireon.cross_offer_constraints SET config = '{"maxPerResponse": 6}' WHERE tenant_id = 'ar' AND id = 'k-c1';
SELECT string_agg(r.rank || ':' || r.offer_id, ' ' ORDER BY r.rank) AS recorded
  FROM kaireon.recommend('ar', 'rec-1', 'web') r;
DELETE FROM kaireon.cross_offer_constraints WHERE tenant_id = 'ar';
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'ar';

-- ---------------------------------------------------------------------------------------
-- 3. Dual prices: online dual descent towards the paced target
-- ---------------------------------------------------------------------------------------
-- a daily portfolio budget of 100 (cost: o1 5, o2 2, o3 1; mean cost 8/3, smallest 1)
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, config) VALUES
    ('ar', 'k-b', 'daily budget', 'portfolio_budget', 'global', '{"limit": 100, "period": "daily"}');
CREATE FUNCTION pg_temp.spend(n int, at timestamptz) RETURNS void LANGUAGE sql AS $$
    INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
    SELECT 'ar', 'x', 'recommendation', 'o1', 'web', at + i * interval '1 second' FROM generate_series(1, n) i
$$;
CREATE FUNCTION pg_temp.step(as_of timestamptz)
    RETURNS TABLE (lambda numeric, previous numeric, pacing numeric, target numeric, observed numeric, consumed numeric, version bigint)
LANGUAGE sql AS $$
    SELECT round(u.lambda::numeric, 6), round(u.previous_lambda::numeric, 6), round(u.pacing_multiplier::numeric, 4),
           round(u.target_rate::numeric, 4), round(u.observed_rate::numeric, 4), round(u.consumed::numeric, 2), u.version
      FROM kaireon.update_dual_prices('ar', as_of) u WHERE u.constraint_key = 'cross_offer:k-b'
$$;
-- 06:00: 60 spent (12 decisions of o1) in a quarter of the day, pace 25: lambda rises
SELECT pg_temp.spend(12, '2026-01-15 01:00+00');
SELECT * FROM pg_temp.step('2026-01-15 06:00+00');
-- lambda = 0 + 0.1 * (observed 10 - target 2.2222) / (uniform 4.1667 * mean cost 8/3) = 0.07
SELECT round((0.1 * (10 - (40.0 / 18)) / ((100.0 / 24) * (8.0 / 3)))::numeric, 6) AS by_hand;
-- 08:00: 20 more in two hours, still faster than the pace: it rises again
SELECT pg_temp.spend(4, '2026-01-15 07:00+00');
SELECT * FROM pg_temp.step('2026-01-15 08:00+00');
-- nothing more is spent: it falls back, step by step, and stops at 0
SELECT * FROM pg_temp.step('2026-01-15 12:00+00');
SELECT * FROM pg_temp.step('2026-01-15 16:00+00');
SELECT * FROM pg_temp.step('2026-01-15 20:00+00');
SELECT * FROM pg_temp.step('2026-01-15 22:00+00');
SELECT * FROM pg_temp.step('2026-01-15 23:00+00');
-- pacing multipliers are bounded: late in the day with most of the budget left, 2 (not
-- 20 / 1h / 4.17 = 4.8); nearly used up early, 0.5
SELECT round(pacing_multiplier::numeric, 4) AS late_and_unspent FROM kaireon.update_dual_prices('ar', '2026-01-16 23:00+00')
 WHERE constraint_key = 'cross_offer:k-b';
SELECT pg_temp.spend(19, '2026-01-17 00:10+00');
SELECT round(pacing_multiplier::numeric, 4) AS early_and_spent FROM kaireon.update_dual_prices('ar', '2026-01-17 01:00+00')
 WHERE constraint_key = 'cross_offer:k-b';
-- used up: the highest price, 1 / smallest cost (no candidate with a score up to 1 is worth it)
SELECT pg_temp.spend(1, '2026-01-17 01:30+00');
SELECT lambda AS used_up FROM pg_temp.step('2026-01-17 02:00+00');
-- a budget allocation's spend (its counter) the same way: 60 of 100 spent by 06:00, then none
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, period_type, max_spend, used_spend) VALUES
    ('ar', 'spend', 'Daily spend', 'global', 'daily', 100, 60);
CREATE FUNCTION pg_temp.spend_step(as_of timestamptz)
    RETURNS TABLE (lambda numeric, previous numeric, observed numeric, target numeric)
LANGUAGE sql AS $$
    SELECT round(u.lambda::numeric, 6), round(u.previous_lambda::numeric, 6), round(u.observed_rate::numeric, 4),
           round(u.target_rate::numeric, 4)
      FROM kaireon.update_dual_prices('ar', as_of) u WHERE u.constraint_key = 'budget:spend:spend'
$$;
SELECT * FROM pg_temp.spend_step('2026-01-18 06:00+00');
UPDATE kaireon.budget_allocations SET used_spend = 90 WHERE tenant_id = 'ar' AND id = 'spend';
SELECT * FROM pg_temp.spend_step('2026-01-18 08:00+00');
SELECT * FROM pg_temp.spend_step('2026-01-18 14:00+00');
SELECT * FROM pg_temp.spend_step('2026-01-18 20:00+00');
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'ar';
-- the counters: updates attempted, no-ops (no price moved), not converged (still faster
-- than the pace after the update)
SELECT version, attempted, noops, solver_failed, not_converged, last_error FROM kaireon.dual_price_state WHERE tenant_id = 'ar';
-- budgets and volume constraints are priced too (impressions and spend, volume counts)
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, max_impressions, max_spend) VALUES
    ('ar', 'bud', 'Budget', 'category', 'c1', 'daily', 1000, 500);
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, scope_id, max_volume, period) VALUES
    ('ar', 'vol', 'Volume', 'offer', 'o2', 50, 'weekly');
SELECT constraint_key, round(lambda::numeric, 6) AS lambda, pacing_multiplier, capacity
  FROM kaireon.update_dual_prices('ar', '2026-01-17 03:00+00') ORDER BY constraint_key;
-- a constraint that is gone loses its price
DELETE FROM kaireon.volume_constraints WHERE tenant_id = 'ar';
SELECT string_agg(constraint_key, ', ' ORDER BY constraint_key) AS priced
  FROM kaireon.update_dual_prices('ar', '2026-01-17 04:00+00');
SELECT string_agg(constraint_key, ', ' ORDER BY constraint_key) AS stored FROM kaireon.dual_prices WHERE tenant_id = 'ar';

-- ---------------------------------------------------------------------------------------
-- 4. Prices in recommend: only when the tenant's real-time arbitration is on
-- ---------------------------------------------------------------------------------------
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'ar';
UPDATE kaireon.dual_prices SET lambda = 0.1 WHERE tenant_id = 'ar' AND constraint_key = 'cross_offer:k-b';
-- off (the default): scores untouched, no price explained or recorded
SELECT r.offer_id, r.score, r.explanation -> 'arbitration' AS arbitration
  FROM kaireon.recommend('ar', 'c1', 'web', NULL, '{}', NULL, NULL, '{"dry_run": true}') r ORDER BY r.rank;
INSERT INTO kaireon.tenant_settings (tenant_id, realtime_arbitration_enabled) VALUES ('ar', true);
-- on: score - lambda * cost: o1 0.9 - 0.5 = 0.4, o2 0.8 - 0.2, o3 0.7 - 0.1, o4 0.6 (costs nothing)
SELECT r.rank, r.offer_id, round(r.score::numeric, 6) AS score, r.explanation -> 'arbitration' AS arbitration
  FROM kaireon.recommend('ar', 'c1', 'web', NULL, '{}', NULL, NULL, '{"dry_run": true}') r ORDER BY r.rank;
-- a candidate not worth its price is dropped: lambda 0.2 prices o1 at 1.0 > 0.9
UPDATE kaireon.dual_prices SET lambda = 0.2 WHERE tenant_id = 'ar' AND constraint_key = 'cross_offer:k-b';
SELECT pg_temp.picks() AS priced;
SELECT * FROM pg_temp.dropped();
-- a flow graph (docs/flows.md): its optimize node subtracts the prices as the fixed pipeline does
-- (o1 dropped), and with "prices": false it does not (o1 kept, unpriced scores)
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config)
SELECT 'ar', 'g-' || p, 'g-' || p, 'Graph ' || p, jsonb_build_object('version', 2,
       'nodes', jsonb_build_array(
           '{"id": "inv", "type": "inventory"}'::jsonb, '{"id": "cr", "type": "match_creatives"}'::jsonb,
           '{"id": "q", "type": "qualify"}'::jsonb, '{"id": "cp", "type": "contact_policy"}'::jsonb,
           '{"id": "s", "type": "score", "config": {"method": "priority_weighted"}}'::jsonb,
           jsonb_build_object('id', 'opt', 'type', 'optimize', 'config', jsonb_build_object('prices', p = 'priced')),
           '{"id": "out", "type": "response", "config": {"maxOffers": 4}}'::jsonb),
       'edges', '[{"from": "inv", "to": "cr"}, {"from": "cr", "to": "q"}, {"from": "q", "to": "cp"},
                  {"from": "cp", "to": "s"}, {"from": "s", "to": "opt"}, {"from": "opt", "to": "out"}]'::jsonb)
  FROM unnest(ARRAY['priced', 'unpriced']) p;
SELECT kaireon.publish_decision_flow('ar', key) IS NOT NULL AS published FROM kaireon.decision_flows
 WHERE tenant_id = 'ar' AND key LIKE 'g-%' ORDER BY key;
SELECT f AS flow, (SELECT string_agg(r.rank || ':' || r.offer_id || '=' || round(r.score::numeric, 2), ' ' ORDER BY r.rank)
                     FROM kaireon.recommend('ar', 'c1', 'web', NULL, '{}', NULL, f, '{"dry_run": true}') r) AS picks
  FROM unnest(ARRAY['f', 'g-priced', 'g-unpriced']) f;
-- recorded decisions name the prices' version and the policy snapshot; the explanation too
CREATE TEMP TABLE rec2 AS SELECT * FROM kaireon.recommend('ar', 'rec-2', 'web');
SELECT count(*) AS decisions,
       bool_and(h.lambda_version = (SELECT version FROM kaireon.dual_price_state WHERE tenant_id = 'ar')) AS version_recorded,
       bool_and(h.lambda_version = (r.explanation -> 'arbitration' ->> 'lambdaVersion')::bigint) AS version_explained,
       bool_and(h.policy_version_hash = r.explanation ->> 'policySnapshot') AS policy_hash_recorded,
       bool_and(h.selection_probability IS NULL AND h.arbitration_arm IS NULL) AS deterministic
  FROM rec2 r JOIN kaireon.interaction_history h ON h.tenant_id = 'ar' AND h.id = r.interaction_id;
-- turned off again: no prices
UPDATE kaireon.tenant_settings SET realtime_arbitration_enabled = false WHERE tenant_id = 'ar';
SELECT pg_temp.picks() AS off_again;

-- ---------------------------------------------------------------------------------------
-- 5. kaireon.update_dual_prices() updates every tenant with real-time arbitration on; a
--    tenant whose update fails keeps its prices and counts a solver failure
-- ---------------------------------------------------------------------------------------
UPDATE kaireon.tenant_settings SET realtime_arbitration_enabled = true WHERE tenant_id = 'ar';
SELECT count(*) > 0 AS updated FROM kaireon.update_dual_prices() WHERE tenant_id = 'ar';
SELECT lambda AS lambda_before, version AS version_before FROM kaireon.dual_prices
 WHERE tenant_id = 'ar' AND constraint_key = 'cross_offer:k-b' \gset
UPDATE kaireon.tenant_settings SET settings = '{"lagrangian": {"stepSize": -1}}' WHERE tenant_id = 'ar';
SELECT count(*) AS rows_for_ar FROM kaireon.update_dual_prices() WHERE tenant_id = 'ar';
SELECT solver_failed, last_error,
       (SELECT lambda = :lambda_before AND version = :version_before FROM kaireon.dual_prices
         WHERE tenant_id = 'ar' AND constraint_key = 'cross_offer:k-b') AS price_kept
  FROM kaireon.dual_price_state WHERE tenant_id = 'ar';
-- the one-tenant form raises it
SELECT * FROM kaireon.update_dual_prices('ar');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.update_dual_prices(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------
-- 6. Prices stay finite: lambda_max = 1 / max(smallest cost, 1e-12), at most 1e12 (a cost of
--    1e-300 gave 1e300); a price or arbitrated value still out of range (cost 1e300) drops an
--    ordinary candidate and fails a decision with a mandatory one (22003, nothing recorded)
--    instead of scoring it -Infinity
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('ao', 'Overflow', 'ao', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('ao', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, weight, value, cost) VALUES
    ('ao', 'tiny', 'Tiny', 'active', 90, 100, 10, 1e-300),
    ('ao', 'huge', 'Huge', 'active', 80, 100, 10, 1e300),
    ('ao', 'free', 'Free', 'active', 70, 100, 10, 0);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
    SELECT 'ao', 'cr-' || id, id, 'web', id FROM kaireon.offers WHERE tenant_id = 'ao';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('ao', 'f', 'f', 'F', true, '{"score": {"method": "priority_weighted"}, "maxOffers": 4}');
SELECT kaireon.publish_decision_flow('ao', 'f') IS NOT NULL AS published;
INSERT INTO kaireon.cross_offer_constraints (tenant_id, id, name, rule_type, scope, config) VALUES
    ('ao', 'k', 'daily budget', 'portfolio_budget', 'global', '{"limit": 100, "period": "daily"}');
INSERT INTO kaireon.tenant_settings (tenant_id, realtime_arbitration_enabled) VALUES ('ao', true);
-- one decision of huge uses the budget up: the highest price, 1e12 (not 1 / 1e-300)
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, channel_id, occurred_at)
VALUES ('ao', 'x', 'recommendation', 'huge', 'web', '2026-01-17 00:10+00');
SELECT constraint_key, lambda, consumed FROM kaireon.update_dual_prices('ao', '2026-01-17 01:00+00');
-- tiny pays 1e12 * 1e-300 and stays; huge's price, 1e12 * 1e300, is out of range: dropped
SELECT r.rank, r.offer_id, round(r.score::numeric, 6) AS score, r.explanation ->> 'droppedAt' AS stage,
       r.explanation ->> 'reason' AS reason
  FROM kaireon.recommend('ao', 'c1', 'web', NULL, '{}', NULL, NULL, '{"dry_run": true, "debug": true}') r
 ORDER BY r.rank, r.offer_id;
-- mandatory, huge cannot be dropped: the decision fails naming it, and records nothing
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'ao' AND id = 'huge';
\set VERBOSITY default
SELECT r.offer_id, r.score FROM kaireon.recommend('ao', 'c1', 'web', NULL, '{}', NULL, NULL, '{"dry_run": true}') r;
\set VERBOSITY terse
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT r.offer_id, r.score FROM kaireon.recommend('ao', 'c1', 'web') r;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS recorded FROM kaireon.interaction_history WHERE tenant_id = 'ao' AND customer_id = 'c1';
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'ao';
DELETE FROM kaireon.tenants WHERE id = 'ao';

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'ar';
DELETE FROM kaireon.tenants WHERE id = 'ar';
