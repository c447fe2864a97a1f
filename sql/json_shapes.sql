-- KaireonAI's request and response shapes of recommend_json, respond_json and respond_bulk
-- (docs/json-api.md): the aliases (alone, together and agreeing, together and disagreeing),
-- placements with their own limits, placements.max_slots, sessionId, segments, attributes,
-- locale and currency in the decision context (read by a rule), the answer's count,
-- categoryName and personalized creative content, the reason when nothing qualifies; respond's
-- channelId, direction, outcomeDetails and timestamp; every bad value with its SQLSTATE and
-- nothing written.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings)
    VALUES ('js', 'Shapes', 'js', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('js', 'web', 'Web', 'web', 'implicit'), ('js', 'app', 'App', 'mobile_app', 'explicit');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES
    ('js', 'hero', 'web', 'Hero', 1), ('js', 'side', 'web', 'Side', 3);
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('js', 'cards', 'Cards');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, custom_fields) VALUES
    ('js', 'gold', 'Gold card', 'cards', 'active', 90, '{"apr": 19.9, "perks": {"lounge": true}}'),
    ('js', 'miles', 'Miles card', 'cards', 'active', 80, '{}'),
    ('js', 'saver', 'Saver', NULL, 'active', 70, '{}'),
    ('js', 'euro', 'Euro account', NULL, 'active', 60, '{}');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, content, personalization) VALUES
    ('js', 'gold-web', 'gold', 'web', NULL, 'Gold web',
     '{"headline": "Hi {{customer.firstName}}, {{ offer.name }} at {{offer.apr}}%",
       "body": ["{{customer.missing}}|{{customer.tier}}", 5, {"perks": "{{offer.perks}}", "seg": "{{customer.segments}}"}],
       "priority": "{{offer.priority}}",
       "raw": "{{unknown.x}} {{customer.}} {{customer.a..b}} {{offer.name", "html": "<b>{{customer.nickname}}</b>"}',
     '{"defaults": {"customer.firstName": "there", "customer.missing": "n/a"}}'),
    ('js', 'miles-web', 'miles', 'web', NULL, 'Miles web', '{"headline": "Fly more"}', '{}'),
    ('js', 'saver-web', 'saver', 'web', NULL, 'Saver web', '{}', '{}'),
    ('js', 'euro-web', 'euro', 'web', NULL, 'Euro web', '{"headline": "{{customer.locale}} {{customer.currency}}"}', '{}');
-- euro qualifies only for currency EUR (a request field read as a customer attribute)
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, priority, scope, scope_id, config) VALUES
    ('js', 'eur-only', 'EUR only', 'attribute_condition', 'eligibility', 100, 'offer', 'euro',
     '{"attribute": "currency", "operator": "eq", "value": "EUR"}');
INSERT INTO kaireon.qualification_rule_scopes (tenant_id, qualification_rule_id, scope, scope_id)
    SELECT tenant_id, id, scope, scope_id FROM kaireon.qualification_rules WHERE tenant_id = 'js';
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('js', 'f-main', 'main', 'Main', true, '{"maxOffers": 3}'),
    ('js', 'f-two', 'two', 'Two', false, '{"maxOffers": 2}');
SELECT key, kaireon.publish_decision_flow('js', key, 'first') AS version
  FROM kaireon.decision_flows WHERE tenant_id = 'js' ORDER BY key;

-- picks: the decisions of a dry run as "placement:rank:offer"
CREATE FUNCTION pg_temp.picks(r jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(coalesce(d ->> 'placementId', '-') || ':' || (d ->> 'rank') || ':' || (d ->> 'offerId'), ' '
                               ORDER BY d ->> 'placementId', (d ->> 'rank')::int), '(none)')
      FROM jsonb_array_elements(r -> 'decisions') d
$$;
CREATE FUNCTION pg_temp.rec(req jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT kaireon.recommend_json('{"tenantId": "js", "customerId": "c1", "dryRun": true}'::jsonb || req)
$$;
CREATE FUNCTION pg_temp.history() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM kaireon.interaction_history WHERE tenant_id = 'js'
$$;

-- 1. Aliases: KaireonAI's names decide as kaireon's do.
SELECT pg_temp.picks(pg_temp.rec('{"channel": "web", "placement": "side", "maxOffers": 2, "decisionFlow": "main"}')) AS kaireon,
       pg_temp.picks(pg_temp.rec('{"channelId": "web", "placementId": "side", "limit": 2, "decisionFlowKey": "main"}')) AS kaireonai,
       pg_temp.picks(pg_temp.rec('{"channelId": "web", "placementId": "side", "limit": 2, "blueprintKey": "main"}')) AS blueprint,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "channelId": "web", "placement": "side", "placementId": "side",
                                   "maxOffers": 2, "limit": 2, "decisionFlow": "main", "decisionFlowKey": "main"}')) AS both_agreeing;
-- the flow named by decisionFlowKey is the one that decides (flow two: 2 offers)
SELECT pg_temp.picks(pg_temp.rec('{"channelId": "web", "decisionFlowKey": "two"}')) AS flow_two;
-- aliases that disagree: 22023 naming both
SELECT pg_temp.rec('{"channel": "web", "channelId": "app"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placement": "hero", "placementId": "side"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "maxOffers": 1, "limit": 2}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "decisionFlowKey": "main", "blueprintKey": "two"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placementId": "hero", "placements": ["side"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 2. placements.max_slots: hero has one slot, whatever the limit; side three.
SELECT pg_temp.picks(pg_temp.rec('{"channel": "web", "placement": "hero"}')) AS hero_flow_default,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "placement": "hero", "limit": 3}')) AS hero_limit_3,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "placement": "side", "limit": 10}')) AS side_limit_10,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 4}')) AS no_placement_limit_4;
-- KaireonAI's placements [{placementId, limit}], mixed with a plain id; a placement's own
-- limit wins over the request's; max_slots caps both
SELECT pg_temp.picks(r) AS picks, r -> 'count' AS count,
       (SELECT jsonb_agg(jsonb_build_object(p ->> 'placementId', jsonb_array_length(p -> 'decisions'))) FROM jsonb_array_elements(r -> 'placements') p) AS grouped
  FROM pg_temp.rec('{"channel": "web", "limit": 3, "deduplicate": true,
                     "placements": [{"placementId": "hero", "limit": 2}, {"placementId": "side", "limit": 1}]}') r;
SELECT pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 2, "placements": ["side", {"placementId": "hero"}]}')) AS mixed;
-- the recorded decision of the demo's case: one row for a one-slot hero asked for three
BEGIN;
SELECT jsonb_array_length(kaireon.recommend_json('{"tenantId": "js", "customerId": "slots", "channelId": "web",
                                                   "placementId": "hero", "limit": 3}') -> 'decisions') AS decisions;
SELECT count(*) AS recorded FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND customer_id = 'slots' AND interaction_type = 'recommendation';
ROLLBACK;
SELECT pg_temp.rec('{"channel": "web", "placements": [{"limit": 1}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placements": [{"placementId": "hero", "slots": 1}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placements": [{"placementId": "hero", "limit": 0}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placements": [true]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "placements": "hero"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "limit": 51}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "limit": "3"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- explain: false answers "explanation": null (nothing else changes); true or absent builds them
SELECT count(*) AS decisions,
       count(*) FILTER (WHERE d -> 'explanation' = 'null'::jsonb) AS without_explanation
  FROM jsonb_array_elements(pg_temp.rec('{"channel": "web", "explain": false}') -> 'decisions') d;
SELECT count(*) AS decisions,
       count(*) FILTER (WHERE jsonb_typeof(d -> 'explanation') = 'object') AS with_explanation
  FROM jsonb_array_elements(pg_temp.rec('{"channel": "web", "explain": true}') -> 'decisions') d;
SELECT (SELECT jsonb_agg(jsonb_build_array(d -> 'rank', d -> 'offerId', d -> 'score')) FROM jsonb_array_elements(pg_temp.rec('{"channel": "web", "explain": false}') -> 'decisions') d)
     = (SELECT jsonb_agg(jsonb_build_array(d -> 'rank', d -> 'offerId', d -> 'score')) FROM jsonb_array_elements(pg_temp.rec('{"channel": "web"}') -> 'decisions') d)
       AS same_decisions;
SELECT pg_temp.rec('{"channel": "web", "explain": "no"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 3. sessionId: the customer when there is no customerId; always in the context.
SELECT r ->> 'customerId' AS customer, r ->> 'sessionId' AS session
  FROM kaireon.recommend_json('{"tenantId": "js", "sessionId": "s-1", "channel": "web", "dryRun": true}') r;
SELECT r ->> 'customerId' AS customer, r ->> 'sessionId' AS session
  FROM kaireon.recommend_json('{"tenantId": "js", "customerId": "c9", "sessionId": "s-1", "channel": "web", "dryRun": true}') r;
BEGIN;
SELECT kaireon.recommend_json('{"tenantId": "js", "sessionId": "s-2", "channelId": "web", "placementId": "hero"}') ->> 'count' AS count;
SELECT customer_id, context FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND interaction_type = 'recommendation' AND customer_id = 's-2';
ROLLBACK;
SELECT kaireon.recommend_json('{"tenantId": "js", "channel": "web"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "js", "sessionId": "s-1", "channel": "web", "context": {"sessionId": "other"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 4. segments, attributes, locale, currency: in the decision context, read by rules and
-- templates; euro qualifies for currency EUR only (a missing attribute passes a
-- qualification rule, as ever)
SELECT pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 4}')) AS without_currency,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 4, "currency": "USD"}')) AS usd,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 4, "currency": "EUR"}')) AS eur,
       pg_temp.picks(pg_temp.rec('{"channel": "web", "limit": 4, "attributes": {"currency": "EUR"}}')) AS eur_attribute;
SELECT d -> 'content' AS content
  FROM jsonb_array_elements(pg_temp.rec('{"channel": "web", "limit": 4, "currency": "EUR", "locale": "de-DE"}') -> 'decisions') d
 WHERE d ->> 'offerId' = 'euro';
BEGIN;
SELECT kaireon.recommend_json('{"tenantId": "js", "customerId": "ctx", "channel": "web", "placement": "hero",
                                "segments": ["vip", "new"], "attributes": {"tier": "gold", "score": 7.5},
                                "locale": "en_GB", "currency": "GBP", "context": {"device": "mobile"}}') ->> 'count' AS count;
SELECT context FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND interaction_type = 'recommendation' AND customer_id = 'ctx';
ROLLBACK;
-- a key given twice must agree
SELECT pg_temp.picks(pg_temp.rec('{"channel": "web", "attributes": {"device": "mobile"}, "context": {"device": "mobile"}}')) AS agreeing;
SELECT pg_temp.rec('{"channel": "web", "attributes": {"device": "mobile"}, "context": {"device": "desktop"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "currency": "EUR", "attributes": {"currency": "USD"}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "attributes": ["tier"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "attributes": {"big": 1e400}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "segments": ["vip", 3]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "segments": "vip"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "locale": "e"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "locale": "en GB"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "locale": 44}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "currency": "eur"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "currency": "EURO"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "colour": "red"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- 5. The answer: count, categoryName, the creative's content personalized. Placeholders
-- are filled from the customer's attributes and the offer's fields (columns, then
-- custom_fields); a missing value takes personalization.defaults, else ""; a number or an
-- object is inserted as its JSON text; no HTML escaping; anything else stays as written.
SELECT r -> 'count' AS count, d ->> 'categoryName' AS category_name, d -> 'content' AS content
  FROM pg_temp.rec('{"channel": "web", "placement": "hero", "segments": ["vip"],
                     "attributes": {"firstName": "Ada", "tier": "gold", "nickname": "\"A\" & <co>"}}') r,
       jsonb_array_elements(r -> 'decisions') d;
SELECT d -> 'content' ->> 'headline' AS defaulted, d -> 'content' -> 'body' -> 0 AS missing_both
  FROM pg_temp.rec('{"channel": "web", "placement": "hero"}') r, jsonb_array_elements(r -> 'decisions') d;
SELECT d ->> 'offerId' AS offer, d ->> 'categoryName' AS category_name, d -> 'content' AS content
  FROM jsonb_array_elements(pg_temp.rec('{"channel": "web", "limit": 3, "excludeOffers": ["gold"]}') -> 'decisions') d;
-- the content follows the creative's row: a change recompiles it
UPDATE kaireon.creatives SET content = '{"headline": "Now {{customer.firstName}}"}' WHERE tenant_id = 'js' AND id = 'gold-web';
SELECT d -> 'content' AS content
  FROM pg_temp.rec('{"channel": "web", "placement": "hero", "attributes": {"firstName": "Bo"}}') r, jsonb_array_elements(r -> 'decisions') d;
-- a renamed category is renamed in the answer
UPDATE kaireon.categories SET name = 'Credit cards' WHERE tenant_id = 'js' AND id = 'cards';
SELECT d ->> 'categoryName' AS category_name
  FROM pg_temp.rec('{"channel": "web", "placement": "hero"}') r, jsonb_array_elements(r -> 'decisions') d;

-- 6. Nothing qualifies: an empty answer, count 0, and the stage the candidates ran out at.
SELECT r -> 'count' AS count, r -> 'decisions' AS decisions, r -> 'reason' AS reason
  FROM pg_temp.rec('{"channel": "web", "excludeOffers": ["gold", "miles", "saver", "euro"]}') r;
-- (euro is left, and fails its rule for USD)
SELECT r -> 'reason' AS reason
  FROM pg_temp.rec('{"channel": "web", "currency": "USD", "excludeOffers": ["gold", "miles", "saver"]}') r;
SELECT r ? 'reason' AS reason_when_decided FROM pg_temp.rec('{"channel": "web"}') r;

-- 7. respond_json: channelId, direction, outcomeDetails, timestamp.
BEGIN;
CREATE TEMP TABLE rj AS
SELECT kaireon.recommend_json('{"tenantId": "js", "customerId": "r1", "channelId": "web", "placementId": "hero"}') AS r;
SELECT pg_temp.picks(r) FROM rj;
SELECT kaireon.respond_json(jsonb_build_object('tenantId', 'js', 'customerId', 'r1', 'outcome', 'click',
         'recommendationId', r ->> 'recommendationId', 'rank', 1, 'channelId', 'web', 'direction', 'inbound',
         'outcomeDetails', jsonb_build_object('button', 'learn-more', 'ms', 1200),
         'timestamp', '2026-03-01T10:00:00Z')) - 'interactionId' - 'recommendationId' AS answer
  FROM rj;
SELECT outcome_type_key, channel_id, direction, context, occurred_at FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND customer_id = 'r1' AND interaction_type = 'outcome';
-- an outcome without a decision takes its channel from channelId
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "impression", "offerId": "saver",
                              "channelId": "app", "occurredAt": "2026-03-01T10:00:00Z",
                              "timestamp": "2026-03-01T11:00:00+01:00"}') ->> 'channelId' AS channel;
SELECT channel_id, direction, occurred_at FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND customer_id = 'r2';
-- respond_bulk items take the same names
SELECT b -> 'accepted' AS accepted, b -> 'failed' AS failed, b -> 'results' -> 1 -> 'error' ->> 'sqlstate' AS second_error
  FROM kaireon.respond_bulk('{"items": [
    {"tenantId": "js", "customerId": "r3", "outcome": "click", "offerId": "miles", "channelId": "web", "direction": "outbound",
     "outcomeDetails": {"via": "bulk"}, "timestamp": "2026-03-02T00:00:00Z"},
    {"tenantId": "js", "customerId": "r3", "outcome": "click", "offerId": "miles", "direction": "sideways"}]}') b;
SELECT channel_id, direction, context, occurred_at FROM kaireon.interaction_history
 WHERE tenant_id = 'js' AND customer_id = 'r3';
SELECT pg_temp.history() AS history_before_errors \gset
SELECT kaireon.respond_json(jsonb_build_object('tenantId', 'js', 'customerId', 'r1', 'outcome', 'click',
         'recommendationId', r ->> 'recommendationId', 'rank', 1, 'channelId', 'app')) FROM rj;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT pg_temp.history() AS history_before_errors \gset
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver", "channelId": "tv"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver", "direction": "in"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver", "direction": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver", "outcomeDetails": "x"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver",
                              "outcomeDetails": {"a": 1}, "context": {"outcomeDetails": {"a": 2}}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver",
                              "occurredAt": "2026-03-01T10:00:00Z", "timestamp": "2026-03-01T10:00:01Z"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "js", "customerId": "r2", "outcome": "click", "offerId": "saver", "timestamp": "soon"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.history() = :history_before_errors AS nothing_written;

-- 9. The request is read from jsonb into the decision's JSON by walking it (no text in between):
-- non-ASCII and escaped text, numbers and nested values reach the creative's content as the
-- text's parse gave them; a request nested deeper than the JSON reader allows is refused as before.
UPDATE kaireon.creatives SET content = '{"headline": "{{customer.firstName}}|{{customer.n}}|{{customer.small}}|{{customer.t}}", "body": "{{customer.deep}}"}'
 WHERE tenant_id = 'js' AND id = 'gold-web';
SELECT d -> 'content' AS content
  FROM pg_temp.rec('{"channel": "web", "placement": "hero", "attributes": {"firstName": "Zoë \"Q\" \\ \u00e9\n", "n": 1.50e2,
                     "small": -0.000123, "t": true, "deep": {"a": [1, "x", null, true, 2.5, {}], "ü": 12345678901234567890}}}') r,
       jsonb_array_elements(r -> 'decisions') d
 WHERE d ->> 'offerId' = 'gold';
SELECT pg_temp.rec(('{"channel": "web", "attributes": {"deep": ' || repeat('[', 2100) || repeat(']', 2100) || '}}')::jsonb);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.rec('{"channel": "web", "attributes": {"deep": [[[[[[[[[[1]]]]]]]]]]}}') -> 'count' AS count;
