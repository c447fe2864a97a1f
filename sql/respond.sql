-- kaireon.respond, respond_json and respond_bulk (docs/recommend.md "respond"): finding the
-- decision (recommendation id and rank, offer or creative; or an offer or creative
-- directly), bad input with its SQLSTATE and nothing written, idempotency, and what an
-- outcome writes: the interaction row, the outbox event, adaptive propensity counts,
-- budget conversions, the impression mirror, outcome_based suppressions; and how the
-- propensity scoring of recommend follows the counts.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('rsp', 'Respond', 'rsp', '{"decisionTraceSampleRate": 0}'),
    ('rsp2', 'Respond 2', 'rsp2', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES
    ('rsp', 'web', 'Web', 'web'), ('rsp', 'email', 'Email', 'email'), ('rsp2', 'web', 'Web', 'web');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES ('rsp', 'hero', 'web', 'Hero', 5), ('rsp', 'side', 'web', 'Side', 5);
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES
    ('rsp', 'cards', 'Cards'), ('rsp', 'loans', 'Loans'), ('rsp2', 'cards', 'Cards'), ('rsp2', 'loans', 'Loans');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority) VALUES
    ('rsp', 'o1', 'Gold', 'cards', 'active', 80), ('rsp', 'o2', 'Silver', 'cards', 'active', 70),
    ('rsp', 'o3', 'Loan', 'loans', 'active', 60), ('rsp', 'o4', 'Savings', NULL, 'draft', 90),
    ('rsp2', 'o1', 'Gold', 'cards', 'active', 80), ('rsp2', 'o2', 'Silver', 'cards', 'active', 70),
    ('rsp2', 'o3', 'Loan', 'loans', 'active', 60);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name) VALUES
    ('rsp', 'o1-hero', 'o1', 'web', 'hero', 'o1 hero'), ('rsp', 'o2-hero', 'o2', 'web', 'hero', 'o2 hero'),
    ('rsp', 'o3-hero', 'o3', 'web', 'hero', 'o3 hero'), ('rsp', 'o1-mail', 'o1', 'email', NULL, 'o1 mail'),
    ('rsp', 'o4-web', 'o4', 'web', NULL, 'o4 web'),
    ('rsp2', 'x1', 'o1', 'web', NULL, 'x1'), ('rsp2', 'x2', 'o2', 'web', NULL, 'x2'), ('rsp2', 'x3', 'o3', 'web', NULL, 'x3');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('rsp', 'f-main', 'main', 'Main', true, '{"maxOffers": 3}'),
    ('rsp2', 'f-prop', 'prop', 'By propensity', true, '{"maxOffers": 3, "score": {"method": "propensity"}}');
SELECT kaireon.publish_decision_flow('rsp', 'main'), kaireon.publish_decision_flow('rsp2', 'prop');
-- the ten default outcome types, and one of the tenant's own
SELECT classification, string_agg(key, ' ' ORDER BY key) AS keys
  FROM kaireon.outcome_types WHERE tenant_id = 'rsp' GROUP BY 1 ORDER BY 1;
INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification, category)
    VALUES ('rsp', 'applied', 'Applied', 'positive', 'conversion');

-- What each respond call may write, counted.
CREATE FUNCTION pg_temp.written() RETURNS text
LANGUAGE sql AS $$
    SELECT format('history=%s outbox=%s adaptations=%s suppressions=%s impressions=%s keys=%s conversions=%s',
                  (SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND interaction_type = 'outcome'),
                  (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'rsp'),
                  (SELECT coalesce(sum(positives + negatives), 0) FROM kaireon.model_adaptations WHERE tenant_id = 'rsp'),
                  (SELECT count(*) FROM kaireon.suppressions WHERE tenant_id = 'rsp'),
                  (SELECT count(*) FROM kaireon.impressions WHERE tenant_id = 'rsp'),
                  (SELECT count(*) FROM kaireon.respond_idempotency WHERE tenant_id = 'rsp'),
                  -- standing budgets only: a monthly one stops counting when the month ends,
                  -- which may happen between two steps of this test (the clock runs cross it)
                  (SELECT coalesce(sum(used_conversions), 0) FROM kaireon.budget_allocations
                    WHERE tenant_id = 'rsp' AND period_type = 'total'))
$$;
-- A respond result without its generated ids (they are checked separately).
CREATE FUNCTION pg_temp.shown(r jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT r - 'interactionId' - 'recommendationId'
           || jsonb_build_object('hasInteractionId', r ->> 'interactionId' ~ '^[0-9a-f-]{36}$',
                                 'hasRecommendationId', jsonb_typeof(r -> 'recommendationId') = 'string')
$$;

-- A recorded decision of three offers for customer cu1, and one of a single offer for cu2.
CREATE TEMP TABLE rec AS SELECT * FROM kaireon.recommend('rsp', 'cu1', 'web', 'hero', context => '{"page": "home"}');
CREATE TEMP TABLE rec1 AS SELECT * FROM kaireon.recommend('rsp', 'cu2', 'web', 'hero', max_offers => 1);
SELECT rank, offer_id, creative_id FROM rec ORDER BY rank;
SELECT pg_temp.written() AS before_any_outcome;

-- ---------------------------------------------------------------------------------------
-- 1. Finding the decision.
-- ---------------------------------------------------------------------------------------
-- by recommendation id and rank (in a transaction, to compare occurred_at with now())
BEGIN;
CREATE TEMP TABLE r1 AS
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM rec), rank => 2,
                       context => '{"where": "hero"}') AS r;
SELECT pg_temp.shown(r) AS by_rank, r ->> 'recommendationId' = (SELECT DISTINCT recommendation_id FROM rec) AS same_recommendation
  FROM r1;
-- the outcome row: type outcome, the outcome key, and the decision's rank, offer, creative,
-- channel, placement and flow; the request's context; the transaction's time
SELECT h.interaction_type, h.outcome_type_key, h.rank, h.offer_id, h.creative_id, h.channel_id, h.placement_id,
       h.decision_flow_id, h.context, h.occurred_at = now() AS now, h.customer_id,
       h.recommendation_id = (SELECT DISTINCT recommendation_id FROM rec) AS same_recommendation
  FROM kaireon.interaction_history h JOIN r1 ON h.tenant_id = 'rsp' AND h.id = r1.r ->> 'interactionId';
COMMIT;
-- by recommendation id and offer, or creative, instead of rank
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu1', 'impression', recommendation_id => recommendation_id, offer_id => 'o3')) AS by_offer
  FROM rec WHERE rank = 1;
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu1', 'impression', recommendation_id => recommendation_id, creative_id => 'o1-hero')) AS by_creative
  FROM rec WHERE rank = 1;
-- a recommendation of one decision needs nothing more
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu2', 'defer', recommendation_id => recommendation_id)) AS single_decision
  FROM rec1;
-- without a recommendation: the creative names its offer, channel and placement; an offer
-- alone names only the offer.
-- Without a rank the result (and its outbox event) says "rank": null (regression: it once
-- said 0).
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu3', 'impression', creative_id => 'o1-mail')) AS by_creative_only;
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu3', 'defer', offer_id => 'o2')) AS by_offer_only;
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu3', 'defer', creative_id => 'o1-mail', offer_id => 'o1')) AS creative_and_its_offer;
-- the tenant's own outcome type
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu3', 'applied', offer_id => 'o3')) AS own_outcome_type;
-- Grouped placements: ranks restart in each placement, so a rank can name two decisions.
-- o4 (priority 90, only the creative o4-web, without placement) is decided first in both
-- hero and side.
UPDATE kaireon.offers SET status = 'active' WHERE tenant_id = 'rsp' AND id = 'o4';
CREATE TEMP TABLE recg AS
SELECT * FROM kaireon.recommend('rsp', 'cu14', 'web', max_offers => 1, options => '{"placements": ["hero", "side"]}');
SELECT placement_id, rank, offer_id, creative_id FROM recg ORDER BY placement_id;
UPDATE kaireon.offers SET status = 'draft' WHERE tenant_id = 'rsp' AND id = 'o4';
\set VERBOSITY sqlstate
SELECT kaireon.respond('rsp', 'cu14', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM recg), rank => 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- rank, offer and creative are the same in both placements, so they are still ambiguous;
-- placement_id singles out one decision (regression: there was once no way to).
SELECT kaireon.respond('rsp', 'cu14', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM recg),
                       rank => 1, offer_id => 'o4', creative_id => 'o4-web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu14', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM recg),
                                     rank => 1, placement_id => 'side')) AS by_placement;
SELECT placement_id, rank, offer_id, outcome_type_key FROM kaireon.interaction_history
 WHERE tenant_id = 'rsp' AND customer_id = 'cu14' AND interaction_type = 'outcome';
-- a placement that none of the recommendation's decisions has: 42704, like any decision not found
\set VERBOSITY sqlstate
SELECT kaireon.respond('rsp', 'cu14', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM recg),
                       rank => 1, placement_id => 'footer');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse

-- ---------------------------------------------------------------------------------------
-- 2. Bad input: a specific SQLSTATE, and nothing written.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.written() AS before_errors;
-- (messages that name the generated recommendation id show their SQLSTATE only)
\set VERBOSITY sqlstate
-- several decisions and nothing to choose one: 22023
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id) FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- unknown recommendation, one of another customer, a rank it does not have, an offer or
-- creative not in it: 42704
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => 'no-such-recommendation', rank => 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu2', 'click', recommendation_id => recommendation_id, rank => 1) FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id, rank => 9) FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id, creative_id => 'o1-mail') FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a dry run's recommendation id was never recorded: 42704
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id, rank => 1)
  FROM kaireon.recommend('rsp', 'cu1', 'web', 'hero', options => '{"dry_run": true}') WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
-- rank outside 1..50: 22023.
-- The message names the value passed (regression: rank 0 was once reported as -1).
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id, rank => 0) FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', recommendation_id => recommendation_id, rank => 51) FROM rec WHERE rank = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- unknown creative or offer: 42704; a creative with another offer, or nothing to find: 22023
SELECT kaireon.respond('rsp', 'cu1', 'click', creative_id => 'no-such-creative');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'no-such-offer');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', creative_id => 'o1-mail', offer_id => 'o2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- unknown outcome: 22023 (a key is case-sensitive)
SELECT kaireon.respond('rsp', 'cu1', 'clicked', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'Click', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an outcome type of another tenant is not one of this tenant's
INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification) VALUES ('rsp2', 'rsp2_only', 'Other tenant', 'positive');
SELECT kaireon.respond('rsp', 'cu1', 'rsp2_only', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a soft-deleted outcome type is no longer registered
UPDATE kaireon.outcome_types SET deleted_at = now() WHERE tenant_id = 'rsp' AND key = 'applied';
SELECT kaireon.respond('rsp', 'cu1', 'applied', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- unknown tenant: 42704; missing arguments; a context that is not an object: 22023.
-- (respond reports a NULL tenant, customer or outcome as 22023, where recommend uses 22004
-- for its NULL arguments; docs/recommend.md gives no SQLSTATE for respond's.)
SELECT kaireon.respond('no-such-tenant', 'cu1', 'click', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond(NULL, 'cu1', 'click', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', NULL, 'click', offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', NULL, offer_id => 'o1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', context => '[1]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.written() AS after_errors;

-- ---------------------------------------------------------------------------------------
-- 3. Idempotency: the first call with a key records; later calls return its interaction
--    id with duplicate true and write nothing, whatever they say.
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE k1 AS SELECT kaireon.respond('rsp', 'cu4', 'click', offer_id => 'o2', idempotency_key => 'k-1') AS r;
SELECT pg_temp.shown(r) AS first FROM k1;
SELECT pg_temp.written() AS after_first;
-- The duplicate's answer is the first call's, with duplicate true: it describes the outcome
-- recorded ("click"), not the one passed again (regression: it once echoed "dismiss").
CREATE TEMP TABLE k2 AS SELECT kaireon.respond('rsp', 'cu4', 'dismiss', offer_id => 'o3', idempotency_key => 'k-1') AS r;
SELECT pg_temp.shown(k2.r) AS duplicate, k2.r ->> 'interactionId' = k1.r ->> 'interactionId' AS same_interaction
  FROM k1, k2;
SELECT pg_temp.written() AS after_duplicate;
-- the key is recorded on the outcome row (deduplication_id)
SELECT h.deduplication_id FROM kaireon.interaction_history h JOIN k1 ON h.tenant_id = 'rsp' AND h.id = k1.r ->> 'interactionId';
-- keys are per tenant: the same key in another tenant records
SELECT pg_temp.shown(kaireon.respond('rsp2', 'cu4', 'click', offer_id => 'o2', idempotency_key => 'k-1')) AS other_tenant_same_key;
-- a duplicate of a key whose first call failed is no duplicate: nothing was kept
SELECT kaireon.respond('rsp', 'cu4', 'click', offer_id => 'no-such-offer', idempotency_key => 'k-2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT (kaireon.respond('rsp', 'cu4', 'defer', offer_id => 'o2', idempotency_key => 'k-2')) -> 'duplicate' AS k2_duplicate;
-- a recommendation row without a rank (written by hand) is found by its recommendation id,
-- and the outcome has no rank (regression: respond once crashed the server on it)
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, recommendation_id, offer_id, channel_id)
    VALUES ('rsp', 'cu15', 'recommendation', 'rec-by-hand', 'o1', 'web');
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu15', 'defer', recommendation_id => 'rec-by-hand')) AS rankless_decision;
-- a duplicate gets the first answer even when what it names is no longer valid (regression:
-- the outcome and the decision were once checked before the key)
SELECT pg_temp.shown(kaireon.respond('rsp', 'cu4', 'no-such-outcome', offer_id => 'no-such-offer', idempotency_key => 'k-1')) ->> 'outcome' AS first_outcome;

-- ---------------------------------------------------------------------------------------
-- 4. What an outcome writes.
-- ---------------------------------------------------------------------------------------
-- The outbox event of each outcome: topic interaction.recorded, pending, with the result
-- plus tenant, customer and time.
SELECT e.topic, e.status, e.payload - 'interactionId' - 'occurredAt' AS payload,
       e.payload ->> 'interactionId' = k1.r ->> 'interactionId' AS same_interaction, e.payload ? 'occurredAt' AS has_time
  FROM kaireon.outbox_events e JOIN k1 ON e.tenant_id = 'rsp' AND e.payload ->> 'interactionId' = k1.r ->> 'interactionId';
SELECT count(*) AS outcome_rows, (SELECT count(*) FROM kaireon.outbox_events WHERE tenant_id = 'rsp') AS events,
       (SELECT count(*) FROM kaireon.outbox_events e WHERE e.tenant_id = 'rsp'
           AND NOT EXISTS (SELECT 1 FROM kaireon.interaction_history h WHERE h.tenant_id = 'rsp' AND h.id = e.payload ->> 'interactionId')) AS events_without_row
  FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND interaction_type = 'outcome';

-- Adaptive propensity counts (model_adaptations without a model) of the offer, its category,
-- the channel (when known) and the tenant, for positive and negative outcomes only. So far:
-- click on the rank-2 offer (web), click on o2 (k-1, no channel); the impressions and
-- defers did not count; "applied" on o3 did.
SELECT scope, scope_id, positives, negatives, round(positive_rate::numeric, 4) AS rate, model_id
  FROM kaireon.model_adaptations WHERE tenant_id = 'rsp' ORDER BY scope, scope_id;
-- a negative outcome on o2 through the web decision
SELECT (kaireon.respond('rsp', 'cu1', 'dismiss', recommendation_id => recommendation_id, offer_id => 'o2')) ->> 'classification' AS classification
  FROM rec WHERE rank = 1;
SELECT scope, scope_id, positives, negatives, round(positive_rate::numeric, 4) AS rate
  FROM kaireon.model_adaptations WHERE tenant_id = 'rsp' AND (scope_id IN ('o2', 'cards', 'web') OR scope = 'global')
 ORDER BY scope, scope_id;

-- Budget conversions: a positive outcome adds one to used_conversions of every active
-- budget covering the offer (offer, category, channel, global) in its current period.
BEGIN;
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, period_key, status) VALUES
    ('rsp', 'b-o1', 'o1', 'offer', 'o1', 'total', 'current', 'active'),
    ('rsp', 'b-cards', 'cards this month', 'category', 'cards', 'monthly', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), 'active'),
    ('rsp', 'b-cards-old', 'cards last month', 'category', 'cards', 'monthly', to_char((now() - interval '1 month') AT TIME ZONE 'UTC', 'YYYY-MM'), 'active'),
    ('rsp', 'b-web', 'web', 'channel', 'web', 'total', 'current', 'active'),
    ('rsp', 'b-all', 'all', 'global', NULL, 'total', 'current', 'active'),
    ('rsp', 'b-loans', 'loans', 'category', 'loans', 'total', 'current', 'active'),
    ('rsp', 'b-o1-off', 'o1 inactive', 'offer', 'o1', 'daily', 'current', 'inactive');
SELECT (kaireon.respond('rsp', 'cu5', 'conversion', creative_id => 'o1-hero', conversion_value => 49.90)) ->> 'classification' AS conversion;
SELECT (kaireon.respond('rsp', 'cu5', 'complaint', creative_id => 'o1-hero')) ->> 'classification' AS complaint;
SELECT (kaireon.respond('rsp', 'cu5', 'click', offer_id => 'o1')) ->> 'classification' AS click_without_channel;
SELECT id, used_conversions FROM kaireon.budget_allocations WHERE tenant_id = 'rsp' ORDER BY id;
COMMIT;
SELECT conversion_value FROM kaireon.interaction_history
 WHERE tenant_id = 'rsp' AND customer_id = 'cu5' AND outcome_type_key = 'conversion';

-- The impression mirror: an impression outcome also writes an impressions row.
SELECT customer_id, offer_id, creative_id, channel_id, placement_id, recommendation_id IS NOT NULL AS has_recommendation
  FROM kaireon.impressions WHERE tenant_id = 'rsp' ORDER BY customer_id, offer_id;

-- outcome_based policies listing the outcome add a suppression (scope by the policy's
-- level) expiring suppressDays after the outcome; a policy not covering the offer, or
-- scoped to a segment (no segment state at respond time), adds none.
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('rsp', 'p-offer', 'Complaint: pause the offer', 'outcome_based', 'global', NULL, '{"outcomes": ["complaint"], "suppressDays": 30, "level": "offer"}'),
    ('rsp', 'p-category', 'Dismiss: pause the category', 'outcome_based', 'global', NULL, '{"outcomes": ["dismiss", "complaint"], "suppressDays": 2, "level": "category"}'),
    ('rsp', 'p-any', 'Opt out: pause everything', 'outcome_based', 'global', NULL, '{"outcomes": ["opt_out"], "suppressDays": 365}'),
    ('rsp', 'p-loans', 'Complaint on loans', 'outcome_based', 'category', 'loans', '{"outcomes": ["complaint"], "suppressDays": 10, "level": "offer"}'),
    ('rsp', 'p-segment', 'Segment-scoped', 'outcome_based', 'segment', 'anyone', '{"outcomes": ["complaint"], "suppressDays": 10}');
CREATE TEMP TABLE c1 AS SELECT kaireon.respond('rsp', 'cu6', 'complaint', offer_id => 'o1') AS r;
SELECT s.scope, s.scope_id, s.policy_id, s.reason = format('outcome complaint (interaction %s)', c1.r ->> 'interactionId') AS reason,
       round(extract(epoch FROM s.expires_at - h.occurred_at) / 86400, 6) AS expires_after_days
  FROM kaireon.suppressions s, c1, kaireon.interaction_history h
 WHERE s.tenant_id = 'rsp' AND s.customer_id = 'cu6' AND h.tenant_id = 'rsp' AND h.id = c1.r ->> 'interactionId'
 ORDER BY s.policy_id;
-- with occurred_at in the past, the suppression expires counting from then
BEGIN;
SELECT (kaireon.respond('rsp', 'cu7', 'opt_out', offer_id => 'o3', occurred_at => now() - interval '364 days')) ->> 'outcome' AS opt_out;
SELECT scope, scope_id, policy_id, expires_at = now() - interval '364 days' + interval '365 days' AS expires_one_day_ahead
  FROM kaireon.suppressions WHERE tenant_id = 'rsp' AND customer_id = 'cu7';
SELECT occurred_at = now() - interval '364 days' AS occurred_then
  FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND customer_id = 'cu7';
COMMIT;
-- recommend sees the suppressions: cu6 loses o1 (offer) and the cards (category); cu7 everything
SELECT customer, string_agg(r.offer_id || ' ' || coalesce(regexp_replace(r.explanation ->> 'reason', '[0-9a-f-]{36}', '<id>'), 'selected'),
                             '; ' ORDER BY r.offer_id) AS decision
  FROM unnest(ARRAY['cu6', 'cu7']) customer,
       LATERAL kaireon.recommend('rsp', customer, 'web', 'hero', options => '{"dry_run": true, "debug": true}') r
 GROUP BY customer ORDER BY customer;
-- an outcome no policy lists adds none
SELECT count(*) AS suppressions_before FROM kaireon.suppressions WHERE tenant_id = 'rsp';
SELECT (kaireon.respond('rsp', 'cu8', 'share', offer_id => 'o1')) ->> 'outcome' AS share;
SELECT count(*) AS suppressions_after FROM kaireon.suppressions WHERE tenant_id = 'rsp';

-- ---------------------------------------------------------------------------------------
-- 5. respond_json: the same with a JSON request.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.shown(kaireon.respond_json(jsonb_build_object(
           'tenantId', 'rsp', 'customerId', 'cu1', 'outcome', 'save', 'recommendationId', recommendation_id, 'rank', 3,
           'context', jsonb_build_object('via', 'json'), 'conversionValue', 12.5))) AS by_json
  FROM rec WHERE rank = 1;
SELECT context, conversion_value FROM kaireon.interaction_history
 WHERE tenant_id = 'rsp' AND customer_id = 'cu1' AND outcome_type_key = 'save';
BEGIN;
SELECT (kaireon.respond_json(jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu9', 'outcome', 'click', 'offerId', 'o3',
                                                'idempotencyKey', 'j-1', 'occurredAt', now() - interval '1 day'))) -> 'duplicate' AS first,
       (kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu9", "outcome": "click", "offerId": "o3", "idempotencyKey": "j-1"}')) -> 'duplicate' AS again;
SELECT occurred_at = now() - interval '1 day' AS occurred_at_from_request
  FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND customer_id = 'cu9';
COMMIT;
SELECT pg_temp.written() AS before_json_errors;
SELECT kaireon.respond_json(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('[]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offer_id": "o1"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "rank": "1"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "rank": 1.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- (an integral number is an id's decimal text: hardening_misc.sql; a fraction is not an id)
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": 7.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "clicked", "offerId": "o1"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "context": "x"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "outcome": "click", "offerId": "o1"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an infinite time (22023: it would be recorded, and a trigger rule's enrolment at it never
-- be due), one that is not a time (22007) or out of range (22008), an idempotency key empty or
-- longer than 200 characters (22023, a long one cut in the message): each names its field
\set VERBOSITY default
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', occurred_at => 'infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', occurred_at => '-infinity');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "occurredAt": "infinity"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "timestamp": "-infinity"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "occurredAt": "garbage"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "timestamp": "2026-02-30T10:00:00Z"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "occurredAt": "300000-01-01T00:00:00Z"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- an offset out of range keeps timestamptz_in's own SQLSTATE (22009), the field named
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "occurredAt": "2024-01-01 00:00+16:00"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', idempotency_key => '');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', idempotency_key => repeat('k', 201));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "rsp", "customerId": "cu1", "outcome": "click", "offerId": "o1", "idempotencyKey": ""}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT pg_temp.written() AS after_json_errors;
-- 200 characters (of two bytes each) are a key
BEGIN;
SELECT (kaireon.respond('rsp', 'cu1', 'click', offer_id => 'o1', idempotency_key => repeat('é', 200))) ->> 'idempotencyKey' = repeat('é', 200) AS long_key;
ROLLBACK;

-- ---------------------------------------------------------------------------------------
-- 6. respond_bulk: 1 to 1000 requests, each in its own subtransaction; good items are kept,
--    bad ones reported with their SQLSTATE and leave nothing.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.written() AS before_bulk;
CREATE TEMP TABLE bulk AS SELECT kaireon.respond_bulk(jsonb_build_object('items', jsonb_build_array(
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'click', 'offerId', 'o1'),
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'clicked', 'offerId', 'o1'),
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'click', 'recommendationId', 'no-such-recommendation', 'rank', 1),
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'dismiss', 'offerId', 'o2', 'idempotencyKey', 'b-1'),
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'dismiss', 'offerId', 'o2', 'idempotencyKey', 'b-1'),
    jsonb_build_object('tenantId', 'rsp', 'customerId', 'cu10', 'outcome', 'click', 'offerId', 'o1', 'extra', 1),
    '"not an object"'::jsonb,
    jsonb_build_object('tenantId', 'no-such-tenant', 'customerId', 'cu10', 'outcome', 'click', 'offerId', 'o1'),
    jsonb_build_object('tenantId', 'rsp', 'outcome', 'click', 'offerId', 'o1')))) AS r;  -- named items[8].customerId
SELECT r -> 'accepted' AS accepted, r -> 'failed' AS failed FROM bulk;
SELECT (e -> 'index')::int AS index, e -> 'ok' AS ok, e -> 'duplicate' AS duplicate, e ->> 'outcome' AS outcome,
       e -> 'error' ->> 'sqlstate' AS sqlstate, e -> 'error' ->> 'message' AS message
  FROM bulk, jsonb_array_elements(r -> 'results') e ORDER BY 1;
SELECT pg_temp.written() AS after_bulk;
SELECT outcome_type_key, offer_id, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'rsp' AND customer_id = 'cu10' GROUP BY 1, 2 ORDER BY 1, 2;
-- a bare array works too
SELECT r -> 'accepted' AS accepted, r -> 'failed' AS failed
  FROM kaireon.respond_bulk('[{"tenantId": "rsp", "customerId": "cu11", "outcome": "defer", "offerId": "o3"}]') r;
-- 0 or 1001 items, or no array: refused as a whole (22023), nothing written
SELECT pg_temp.written() AS before_refused_bulk;
SELECT kaireon.respond_bulk('{"items": []}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_bulk(jsonb_build_object('items', (SELECT jsonb_agg(jsonb_build_object(
           'tenantId', 'rsp', 'customerId', 'cu12', 'outcome', 'click', 'offerId', 'o1')) FROM generate_series(1, 1001))));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_bulk('{"items": {"tenantId": "rsp"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_bulk('{"rows": []}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_bulk(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a key beside items (docs/schemas/respond-bulk-request.json: none), here a misspelling
\set VERBOSITY default
SELECT kaireon.respond_bulk('{"itens": [], "items": [{"tenantId": "rsp", "customerId": "cu12", "outcome": "click", "offerId": "o1"}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
-- items with an infinite, a bad or an out-of-range time, or a bad idempotency key: each
-- refused with its SQLSTATE, naming its field, nothing written
SELECT (e -> 'index')::int AS index, e -> 'ok' AS ok, e -> 'error' ->> 'sqlstate' AS sqlstate, e -> 'error' ->> 'message' AS message
  FROM kaireon.respond_bulk('[{"tenantId": "rsp", "customerId": "cu12", "outcome": "click", "offerId": "o1", "timestamp": "infinity"},
                              {"tenantId": "rsp", "customerId": "cu12", "outcome": "click", "offerId": "o1", "timestamp": "yesterdayish"},
                              {"tenantId": "rsp", "customerId": "cu12", "outcome": "click", "offerId": "o1", "occurredAt": "2026-13-01"},
                              {"tenantId": "rsp", "customerId": "cu12", "outcome": "click", "offerId": "o1", "idempotencyKey": ""}]') r,
       jsonb_array_elements(r -> 'results') e ORDER BY 1;
SELECT pg_temp.written() AS after_refused_bulk;
-- 1000 items are accepted
SELECT r -> 'accepted' AS accepted, r -> 'failed' AS failed
  FROM kaireon.respond_bulk(jsonb_build_object('items', (SELECT jsonb_agg(jsonb_build_object(
           'tenantId', 'rsp', 'customerId', 'cu12', 'outcome', 'impression', 'offerId', 'o1')) FROM generate_series(1, 1000)))) r;
SELECT count(*) AS cu12_rows FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND customer_id = 'cu12';
-- a bulk call that rolls back keeps nothing, its good items included
BEGIN;
SELECT r -> 'accepted' AS accepted
  FROM kaireon.respond_bulk('[{"tenantId": "rsp", "customerId": "cu13", "outcome": "click", "offerId": "o1"}]') r;
ROLLBACK;
SELECT count(*) AS cu13_rows FROM kaireon.interaction_history WHERE tenant_id = 'rsp' AND customer_id = 'cu13';

-- ---------------------------------------------------------------------------------------
-- 7. Propensity scoring follows the counts respond keeps. Tenant rsp2 scores by
--    propensity; with no counts every offer has the default 0.5 and the ties go by
--    priority (o1, o2, o3).
-- ---------------------------------------------------------------------------------------
DELETE FROM kaireon.model_adaptations WHERE tenant_id = 'rsp2';
SELECT rank, offer_id, round(propensity::numeric, 4) AS propensity, explanation -> 'propensity' ->> 'source' AS source
  FROM kaireon.recommend('rsp2', 'p1', 'web', options => '{"dry_run": true}') ORDER BY rank;
-- o3: 3 clicks and 2 dismisses; o1: 1 click and 6 dismisses. The tenant then has 12
-- outcomes (4 positive): its rate 1/3 is the prior (10 or more outcomes; neither category
-- has 20). o3: (3 + 10/3) / (5 + 10) = 0.4222; o1: (1 + 10/3) / (7 + 10) = 0.2549; o2 has
-- no outcomes: the prior, 0.3333.
SELECT r -> 'accepted' AS accepted
  FROM kaireon.respond_bulk((SELECT jsonb_agg(jsonb_build_object('tenantId', 'rsp2', 'customerId', 'p' || i, 'outcome', outcome, 'offerId', offer))
                               FROM (SELECT i, CASE WHEN i <= 5 THEN 'o3' ELSE 'o1' END AS offer,
                                            CASE WHEN i <= 3 OR i = 6 THEN 'click' ELSE 'dismiss' END AS outcome
                                       FROM generate_series(1, 12) i) x)) r;
SELECT scope, scope_id, positives, negatives FROM kaireon.model_adaptations WHERE tenant_id = 'rsp2' ORDER BY scope, scope_id;
SELECT rank, offer_id, round(propensity::numeric, 4) AS propensity, round(score::numeric, 4) AS score,
       explanation -> 'propensity' ->> 'source' AS source, explanation -> 'propensity' ->> 'maturity' AS maturity,
       (explanation -> 'propensity' ->> 'outcomes')::int AS outcomes
  FROM kaireon.recommend('rsp2', 'p1', 'web', options => '{"dry_run": true}') ORDER BY rank;
-- neutral outcomes change nothing
SELECT r -> 'accepted' AS accepted
  FROM kaireon.respond_bulk('[{"tenantId": "rsp2", "customerId": "p1", "outcome": "impression", "offerId": "o2"},
                              {"tenantId": "rsp2", "customerId": "p1", "outcome": "defer", "offerId": "o2"}]') r;
SELECT string_agg(offer_id || '=' || round(propensity::numeric, 4), ' ' ORDER BY rank) AS unchanged
  FROM kaireon.recommend('rsp2', 'p1', 'web', options => '{"dry_run": true}');

-- Clean up.
DELETE FROM kaireon.tenants WHERE id IN ('rsp', 'rsp2');
