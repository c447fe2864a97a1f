-- kaireon.recommend, qualification rules and guardrails (docs/recommend.md steps 4 and 5,
-- docs/config.md): every rule type and operator with a case that passes and one that
-- blocks, missing attributes, attribute sources, match-stage multipliers, every scope kind,
-- priority and stage order, mandatory offers; guardrails hard and soft, nested, on every
-- field family, with missing values. Every decision here is a dry run.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings)
    VALUES ('rr', 'Rules', 'rr', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('rr', 'web', 'Web', 'web', 'implicit'), ('rr', 'email', 'Email', 'email', 'explicit');
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('rr', 'cards', 'Cards'), ('rr', 'loans', 'Loans');
INSERT INTO kaireon.sub_categories (tenant_id, id, category_id, name) VALUES ('rr', 'travel', 'cards', 'Travel');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, sub_category_id, status, priority, weight, value, custom_fields) VALUES
    ('rr', 'o1', 'Travel card', 'cards', 'travel', 'active', 80, 100, 100, '{"risk": "low", "tier": 2}'),
    ('rr', 'o2', 'Plain card', 'cards', NULL, 'active', 70, 100, 100, '{"risk": "high"}'),
    ('rr', 'o3', 'Loan', 'loans', NULL, 'active', 60, 100, 100, '{}');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
    SELECT 'rr', o || '-' || c, o, c, o || ' on ' || c
      FROM unnest(ARRAY['o1', 'o2', 'o3']) o, unnest(ARRAY['web', 'email']) c;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('rr', 'f-main', 'main', 'Main', true, '{"maxOffers": 10}');
SELECT kaireon.publish_decision_flow('rr', 'main');

-- Customer data (the published customer schema) and two segments over it.
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('rr', 'customers', 'customers', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('rr', 'customers', 'customer_id', 'text', false, true, 1),
    ('rr', 'customers', 'age', 'integer', true, false, 2),
    ('rr', 'customers', 'tier', 'text', true, false, 3),
    ('rr', 'customers', 'vip', 'boolean', true, false, 4),
    ('rr', 'customers', 'country', 'text', true, false, 5);
SELECT kaireon.publish_data_schema('rr', 'customers');
INSERT INTO kaireon_t_rr.ds_customers (customer_id, age, tier, vip, country) VALUES
    ('ann', 34, 'gold', true, 'DE'),       -- adult VIP
    ('bob', 17, 'basic', false, 'FR'),     -- minor
    ('dan', 40, 'basic', false, 'DE'),     -- adult, not VIP
    ('eve', 16, 'gold', true, 'DE');       -- minor VIP
-- cy has no data row: only what the request's context says
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters) VALUES
    ('rr', 'adults', 'Adults', 'customers', '[{"field": "age", "operator": "gte", "value": 18}]'),
    ('rr', 'vips', 'VIPs', 'customers', '[{"field": "vip", "operator": "eq", "value": true}]'),
    ('rr', 'unpublished', 'Never published', 'customers', '[{"field": "age", "operator": "gte", "value": 0}]');
SELECT kaireon.publish_segment('rr', 'adults'), kaireon.publish_segment('rr', 'vips');

-- probe: add one active rule (id "probe") of the given type, stage and config, scoped to
-- one offer (default o1), decide for the customer with the context, remove the rule, and
-- report what became of that offer: "selected" (with its score when a match rule is
-- probed), or the stage and reason it was dropped at. The configuration change is seen by
-- the decision in the same transaction.
CREATE FUNCTION pg_temp.probe(rule_type text, config jsonb, customer text, context jsonb DEFAULT '{}',
                              stage text DEFAULT 'eligibility', offer text DEFAULT 'o1',
                              channel text DEFAULT 'web') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config)
        VALUES ('rr', 'probe', 'probe', rule_type, stage, 'offer', offer, config);
    SELECT CASE WHEN r.rank IS NOT NULL THEN 'selected' || CASE WHEN stage = 'match' THEN
                    format(' score=%s matchRules=%s', round(r.score::numeric, 4), coalesce(r.explanation -> 'matchRules', '[]')) ELSE '' END
                ELSE (r.explanation ->> 'droppedAt') || ': ' || (r.explanation ->> 'reason') END
      INTO result
      FROM kaireon.recommend('rr', customer, channel, context => context,
                             options => '{"dry_run": true, "debug": true}') r
     WHERE r.offer_id = offer;
    DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr' AND id = 'probe';
    RETURN coalesce(result, '(not a candidate)');
END
$$;

-- ---------------------------------------------------------------------------------------
-- 1. attribute_condition, every operator, pass and block. Numbers compare numerically (a
--    numeric string counts as a number against a number), strings byte-wise (ISO dates
--    order), booleans as booleans; in/not_in test membership (an array attribute: any
--    shared element); contains is substring or array element; starts_with a prefix.
-- ---------------------------------------------------------------------------------------
SELECT n, what, pg_temp.probe('attribute_condition', config, customer, context) AS outcome
  FROM (VALUES
    (1, 'eq number, passes', '{"attribute": "age", "operator": "eq", "value": 34}'::jsonb, 'ann', '{}'::jsonb),
    (2, 'eq number, blocks', '{"attribute": "age", "operator": "eq", "value": 35}', 'ann', '{}'),
    (3, 'eq numeric string vs number, passes', '{"attribute": "age", "operator": "eq", "value": 34}', 'cy', '{"age": "34"}'),
    (4, 'eq boolean, passes', '{"attribute": "vip", "operator": "eq", "value": true}', 'ann', '{}'),
    (5, 'eq boolean, blocks', '{"attribute": "vip", "operator": "eq", "value": true}', 'bob', '{}'),
    (6, 'neq, passes', '{"attribute": "tier", "operator": "neq", "value": "basic"}', 'ann', '{}'),
    (7, 'neq, blocks', '{"attribute": "tier", "operator": "neq", "value": "basic"}', 'bob', '{}'),
    (8, 'gt, passes', '{"attribute": "age", "operator": "gt", "value": 18}', 'ann', '{}'),
    (9, 'gt, blocks', '{"attribute": "age", "operator": "gt", "value": 18}', 'bob', '{}'),
    (10, 'gt numeric, not lexical (9 > 10 is false)', '{"attribute": "n", "operator": "gt", "value": 10}', 'cy', '{"n": 9}'),
    (11, 'gte equal, passes', '{"attribute": "age", "operator": "gte", "value": 34}', 'ann', '{}'),
    (12, 'gte, blocks', '{"attribute": "age", "operator": "gte", "value": 35}', 'ann', '{}'),
    (13, 'lt, passes', '{"attribute": "age", "operator": "lt", "value": 18}', 'bob', '{}'),
    (14, 'lt, blocks', '{"attribute": "age", "operator": "lt", "value": 18}', 'ann', '{}'),
    (15, 'lte equal, passes', '{"attribute": "age", "operator": "lte", "value": 17}', 'bob', '{}'),
    (16, 'lte, blocks', '{"attribute": "age", "operator": "lte", "value": 17}', 'ann', '{}'),
    (17, 'gt ISO date string, passes', '{"attribute": "since", "operator": "gt", "value": "2024-01-31"}', 'cy', '{"since": "2024-05-01"}'),
    (18, 'lt ISO date string, blocks', '{"attribute": "since", "operator": "lt", "value": "2024-01-31"}', 'cy', '{"since": "2024-05-01"}'),
    (19, 'in, passes', '{"attribute": "tier", "operator": "in", "value": ["gold", "silver"]}', 'ann', '{}'),
    (20, 'in, blocks', '{"attribute": "tier", "operator": "in", "value": ["gold", "silver"]}', 'bob', '{}'),
    (21, 'in with an array attribute, shared element', '{"attribute": "interests", "operator": "in", "value": ["travel"]}', 'cy', '{"interests": ["golf", "travel"]}'),
    (22, 'in with an array attribute, none shared', '{"attribute": "interests", "operator": "in", "value": ["chess"]}', 'cy', '{"interests": ["golf", "travel"]}'),
    (23, 'not_in, passes', '{"attribute": "country", "operator": "not_in", "value": ["FR"]}', 'ann', '{}'),
    (24, 'not_in, blocks', '{"attribute": "country", "operator": "not_in", "value": ["FR"]}', 'bob', '{}'),
    (25, 'contains substring, passes', '{"attribute": "email", "operator": "contains", "value": "example"}', 'cy', '{"email": "cy@example.com"}'),
    (26, 'contains substring, blocks', '{"attribute": "email", "operator": "contains", "value": "gmail"}', 'cy', '{"email": "cy@example.com"}'),
    (27, 'contains array element, passes', '{"attribute": "interests", "operator": "contains", "value": "golf"}', 'cy', '{"interests": ["golf", "travel"]}'),
    (28, 'contains array element, blocks', '{"attribute": "interests", "operator": "contains", "value": "chess"}', 'cy', '{"interests": ["golf", "travel"]}'),
    (29, 'starts_with, passes', '{"attribute": "email", "operator": "starts_with", "value": "cy@"}', 'cy', '{"email": "cy@example.com"}'),
    (30, 'starts_with, blocks', '{"attribute": "email", "operator": "starts_with", "value": "ann@"}', 'cy', '{"email": "cy@example.com"}'),
    (31, 'exists, passes', '{"attribute": "device", "operator": "exists"}', 'cy', '{"device": "mobile"}'),
    (32, 'exists, blocks when missing', '{"attribute": "device", "operator": "exists"}', 'cy', '{}'),
    (33, 'exists, blocks when null', '{"attribute": "device", "operator": "exists"}', 'cy', '{"device": null}'),
    (34, 'not_exists, passes when missing', '{"attribute": "device", "operator": "not_exists"}', 'cy', '{}'),
    (35, 'not_exists, blocks', '{"attribute": "device", "operator": "not_exists"}', 'cy', '{"device": "mobile"}'),
    (36, 'nested attribute path, passes', '{"attribute": "geo.country", "operator": "eq", "value": "DE"}', 'cy', '{"geo": {"country": "DE"}}'),
    (37, 'nested attribute path, blocks', '{"attribute": "geo.country", "operator": "eq", "value": "DE"}', 'cy', '{"geo": {"country": "FR"}}')
  ) AS t(n, what, config, customer, context)
 ORDER BY n;

-- A missing attribute passes every operator but exists / not_exists: cy has no data row.
SELECT op, pg_temp.probe('attribute_condition', jsonb_build_object('attribute', 'age', 'operator', op, 'value', v), 'cy') AS outcome
  FROM (VALUES ('eq', '1'::jsonb), ('neq', '1'), ('gt', '1'), ('gte', '1'), ('lt', '1'), ('lte', '1'),
               ('in', '[1]'), ('not_in', '[1]'), ('contains', '"1"'), ('starts_with', '"1"')) AS t(op, v)
 ORDER BY op;
-- A JSON null in the context replaces the data row's value (the context wins) and counts as
-- missing: ann's age 34 becomes null, and "age lt 18" passes.
SELECT pg_temp.probe('attribute_condition', '{"attribute": "age", "operator": "lt", "value": 18}', 'ann', '{"age": null}') AS null_context;

-- Sources: customer (the data row), context (the request), any (merged, context wins).
SELECT src, pg_temp.probe('attribute_condition',
                          jsonb_build_object('attribute', 'age', 'operator', 'gte', 'value', 18) ||
                          CASE WHEN src = 'default' THEN '{}'::jsonb ELSE jsonb_build_object('source', src) END,
                          'ann', '{"age": 10}') AS ann_34_context_10
  FROM unnest(ARRAY['customer', 'context', 'any', 'default']) src;
-- with source context, the data row's value is not consulted: no age in the context passes
SELECT pg_temp.probe('attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18, "source": "context"}', 'bob') AS bob_no_context;
SELECT pg_temp.probe('attribute_condition', '{"attribute": "age", "operator": "gte", "value": 18, "source": "customer"}', 'bob', '{"age": 40}') AS bob_customer_source;
-- a string strtod reads as NaN or an infinity is no number: it compares with no number, as
-- any other text (a NaN equalled every number: "NaN" eq 34 passed)
SELECT v, pg_temp.probe('attribute_condition', jsonb_build_object('attribute', 'score', 'operator', op, 'value', 34), 'ann',
                        jsonb_build_object('score', v)) AS outcome
  FROM (VALUES ('NaN', 'eq'), ('nan', 'lte'), ('Infinity', 'gt'), ('-inf', 'lt'), ('1e400', 'gte'), ('34', 'eq'), ('abc', 'eq')) x (v, op);

-- ---------------------------------------------------------------------------------------
-- 2. offer_attribute: an offer column, or a key of its custom_fields; missing passes.
-- ---------------------------------------------------------------------------------------
SELECT n, what, pg_temp.probe('offer_attribute', config, 'ann') AS outcome
  FROM (VALUES
    (1, 'column priority gte 80, passes', '{"attribute": "priority", "operator": "gte", "value": 80}'::jsonb),
    (2, 'column priority gt 80, blocks', '{"attribute": "priority", "operator": "gt", "value": 80}'),
    (3, 'column category_id eq cards, passes', '{"attribute": "category_id", "operator": "eq", "value": "cards"}'),
    (4, 'custom field risk eq low, passes', '{"attribute": "risk", "operator": "eq", "value": "low"}'),
    (5, 'custom field risk in [high], blocks', '{"attribute": "risk", "operator": "in", "value": ["high"]}'),
    (6, 'custom field tier lt 2, blocks', '{"attribute": "tier", "operator": "lt", "value": 2}'),
    (7, 'missing field, passes', '{"attribute": "colour", "operator": "eq", "value": "red"}'),
    (8, 'missing field with exists, blocks', '{"attribute": "colour", "operator": "exists"}'),
    (9, 'a path into a column (custom_fields.risk), passes', '{"attribute": "custom_fields.risk", "operator": "eq", "value": "low"}'),
    (10, 'a null column (description) with exists, blocks', '{"attribute": "description", "operator": "exists"}'),
    (11, 'the added column category_name, passes', '{"attribute": "category_name", "operator": "eq", "value": "Cards"}')
  ) AS t(n, what, config)
 ORDER BY n;
-- The compiled configuration keeps an offer's columns as values by column, a null one as
-- none (cache.c, load_offers): a null column falls through to a custom field of its name, a
-- set one wins over it, as when the whole row was kept (a missing attribute would pass: each
-- block shows which value was read).
BEGIN;
UPDATE kaireon.offers SET custom_fields = custom_fields || '{"description": "promo", "priority": 1}'
 WHERE tenant_id = 'rr' AND id = 'o1';
SELECT pg_temp.probe('offer_attribute', '{"attribute": "description", "operator": "eq", "value": "other"}', 'ann') AS null_column_reads_custom_field,
       pg_temp.probe('offer_attribute', '{"attribute": "description", "operator": "eq", "value": "promo"}', 'ann') AS custom_field_value,
       pg_temp.probe('offer_attribute', '{"attribute": "priority", "operator": "eq", "value": 1}', 'ann') AS column_wins;
ROLLBACK;

-- ---------------------------------------------------------------------------------------
-- 3. segment_required: in any listed segment, or with match all in every one. A segment
--    that does not exist or is not published has no members.
-- ---------------------------------------------------------------------------------------
SELECT n, what, pg_temp.probe('segment_required', config, customer) AS outcome
  FROM (VALUES
    (1, 'adults: ann passes', '{"segmentIds": ["adults"]}'::jsonb, 'ann'),
    (2, 'adults: bob blocks', '{"segmentIds": ["adults"]}', 'bob'),
    (3, 'any of adults, vips: eve (VIP) passes', '{"segmentIds": ["adults", "vips"]}', 'eve'),
    (4, 'any of adults, vips: bob blocks', '{"segmentIds": ["adults", "vips"], "match": "any"}', 'bob'),
    (5, 'all of adults, vips: ann passes', '{"segmentIds": ["adults", "vips"], "match": "all"}', 'ann'),
    (6, 'all of adults, vips: dan blocks', '{"segmentIds": ["adults", "vips"], "match": "all"}', 'dan'),
    (7, 'unknown segment blocks', '{"segmentIds": ["no-such-segment"]}', 'ann'),
    (8, 'unpublished segment blocks', '{"segmentIds": ["unpublished"]}', 'ann'),
    (9, 'a customer without a data row is in no segment', '{"segmentIds": ["adults"]}', 'cy')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 4. propensity_threshold: the candidate's propensity against the threshold (operator
--    default gte). No counts: the default 0.5; then o1 gets its own rate 0.6 (50 outcomes).
-- ---------------------------------------------------------------------------------------
SELECT n, what, pg_temp.probe('propensity_threshold', config, 'ann') AS outcome
  FROM (VALUES
    (1, '0.5 gte 0.4 (default operator), passes', '{"threshold": 0.4}'::jsonb),
    (2, '0.5 gte 0.6, blocks', '{"threshold": 0.6}'),
    (3, '0.5 lt 0.6, passes', '{"threshold": 0.6, "operator": "lt"}'),
    (4, '0.5 gt 0.5, blocks', '{"threshold": 0.5, "operator": "gt"}')
  ) AS t(n, what, config)
 ORDER BY n;
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, positives, negatives, positive_rate)
    VALUES ('rr', NULL, 'offer', 'o1', 30, 20, 0.6);
SELECT pg_temp.probe('propensity_threshold', '{"threshold": 0.6}', 'ann') AS rate_06_gte_06,
       pg_temp.probe('propensity_threshold', '{"threshold": 0.61}', 'ann') AS rate_06_gte_061;
-- The flow scores by priority_weighted: although a propensity_threshold rule computed the
-- propensity, the decision does not report it (column propensity NULL, no explanation
-- "propensity"), as the score did not use it (regression: it once was reported).
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, scope, scope_id, config)
    VALUES ('rr', 'p-any', 'Some propensity', 'propensity_threshold', 'offer', 'o1', '{"threshold": 0.1}');
SELECT offer_id, r.explanation ->> 'method' AS method, round(r.score::numeric, 4) AS score,
       round(r.propensity::numeric, 4) AS propensity, r.explanation ? 'propensity' AS explains_propensity
  FROM kaireon.recommend('rr', 'ann', 'web', options => '{"dry_run": true}') r ORDER BY offer_id;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';
DELETE FROM kaireon.model_adaptations WHERE tenant_id = 'rr';

-- ---------------------------------------------------------------------------------------
-- 5. recency_check: history rows of the listed types / outcomes within the window about the
--    same offer (default), its category, or any offer; mode exclude (default) fails when
--    there are, require when there are not. Customer hist was recommended o1 two hours ago
--    and clicked o2 (same category) three days ago.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, outcome_type_key, offer_id, channel_id, occurred_at) VALUES
    ('rr', 'h1', 'hist', 'recommendation', NULL, 'o1', 'web', now() - interval '2 hours'),
    ('rr', 'h2', 'hist', 'outcome', 'click', 'o2', 'web', now() - interval '3 days');
SELECT n, what, pg_temp.probe('recency_check', config, customer) AS outcome
  FROM (VALUES
    (1, 'recommended within 24h, exclude: blocks', '{"withinHours": 24, "interactionTypes": ["recommendation"]}'::jsonb, 'hist'),
    (2, 'recommended within 1h: passes', '{"withinHours": 1, "interactionTypes": ["recommendation"]}', 'hist'),
    (3, 'any type within 1 day, same offer: blocks', '{"withinDays": 1}', 'hist'),
    (4, 'impressions within 1 day: passes (none)', '{"withinDays": 1, "interactionTypes": ["impression"]}', 'hist'),
    (5, 'require a recommendation within 1 day: passes', '{"withinDays": 1, "mode": "require", "interactionTypes": ["recommendation"]}', 'hist'),
    (6, 'require, customer without history: blocks', '{"withinDays": 1, "mode": "require"}', 'ann'),
    (7, 'click within 7 days, same offer: passes (the click was on o2)', '{"withinDays": 7, "outcomes": ["click"]}', 'hist'),
    (8, 'click within 7 days, same category: blocks', '{"withinDays": 7, "outcomes": ["click"], "level": "category"}', 'hist'),
    (9, 'click within 2 days, same category: passes', '{"withinDays": 2, "outcomes": ["click"], "level": "category"}', 'hist'),
    (10, 'outcome key as interaction type, any offer: blocks', '{"withinDays": 7, "interactionTypes": ["click"], "level": "any"}', 'hist'),
    (11, 'outcome type "outcome", any offer: blocks', '{"withinDays": 7, "interactionTypes": ["outcome"], "level": "any"}', 'hist'),
    (12, 'dismiss within 7 days, any offer: passes', '{"withinDays": 7, "outcomes": ["dismiss"], "level": "any"}', 'hist'),
    (13, 'require a click on the category within 7 days: passes', '{"withinDays": 7, "outcomes": ["click"], "level": "category", "mode": "require"}', 'hist')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 6. metric_condition: the customer's metric value (optionally of one dimension); a
--    missing metric passes.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.metric_definitions (tenant_id, id, key, name) VALUES
    ('rr', 'm-spend', 'spend_30d', 'Spend'), ('rr', 'm-visits', 'visits', 'Visits');
INSERT INTO kaireon.metric_values (tenant_id, metric_id, customer_id, dimension_key, value) VALUES
    ('rr', 'm-spend', 'ann', '', 250), ('rr', 'm-visits', 'ann', 'web', 3), ('rr', 'm-visits', 'ann', 'email', 9);
SELECT n, what, pg_temp.probe('metric_condition', config, customer) AS outcome
  FROM (VALUES
    (1, 'spend 250 gte 100: passes', '{"metricKey": "spend_30d", "operator": "gte", "value": 100}'::jsonb, 'ann'),
    (2, 'spend 250 gt 300: blocks', '{"metricKey": "spend_30d", "operator": "gt", "value": 300}', 'ann'),
    (3, 'spend 250 eq 250: passes', '{"metricKey": "spend_30d", "operator": "eq", "value": 250}', 'ann'),
    (4, 'no metric value for bob: passes', '{"metricKey": "spend_30d", "operator": "gt", "value": 300}', 'bob'),
    (5, 'visits on web 3 lt 5: passes', '{"metricKey": "visits", "dimensionKey": "web", "operator": "lt", "value": 5}', 'ann'),
    (6, 'visits on email 9 lt 5: blocks', '{"metricKey": "visits", "dimensionKey": "email", "operator": "lt", "value": 5}', 'ann'),
    (7, 'unknown dimension: passes', '{"metricKey": "visits", "dimensionKey": "sms", "operator": "lt", "value": 5}', 'ann')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 7. Match stage: a failing match rule multiplies the match factor by its multiplier
--    (default 0.5); a holding one is listed in the explanation's matchRules. o1 scores 0.8.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.probe('attribute_condition', '{"attribute": "vip", "operator": "eq", "value": true}', 'ann', stage => 'match') AS holds,
       pg_temp.probe('attribute_condition', '{"attribute": "vip", "operator": "eq", "value": true}', 'bob', stage => 'match') AS fails_default_half,
       pg_temp.probe('attribute_condition', '{"attribute": "vip", "operator": "eq", "value": true, "multiplier": 0.25}', 'bob', stage => 'match') AS fails_quarter,
       pg_temp.probe('attribute_condition', '{"attribute": "vip", "operator": "eq", "value": true, "multiplier": 0}', 'bob', stage => 'match') AS fails_zero;
-- two failing match rules multiply; the factor shows in the explanation
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('rr', 'm1', 'VIPs like it', 'attribute_condition', 'match', 'offer', 'o1', '{"attribute": "vip", "operator": "eq", "value": true, "multiplier": 0.5}'),
    ('rr', 'm2', 'Germans like it', 'attribute_condition', 'match', 'offer', 'o1', '{"attribute": "country", "operator": "eq", "value": "DE", "multiplier": 0.5}');
SELECT customer, round(r.score::numeric, 4) AS score, r.explanation -> 'factors' -> 'match' AS match,
       r.explanation -> 'matchRules' AS match_rules
  FROM unnest(ARRAY['ann', 'dan', 'bob']) customer,
       LATERAL kaireon.recommend('rr', customer, 'web', options => '{"dry_run": true}') r
 WHERE r.offer_id = 'o1' ORDER BY customer;
-- recommend_json lists them the same (its explanations are built unless the request says
-- "explain": false, which answers none)
SELECT customer, (SELECT d -> 'explanation' -> 'matchRules'
                    FROM jsonb_array_elements(kaireon.recommend_json(jsonb_build_object(
                             'tenantId', 'rr', 'customerId', customer, 'channel', 'web', 'dryRun', true)) -> 'decisions') d
                   WHERE d ->> 'offerId' = 'o1') AS json_match_rules,
       (SELECT count(*) FILTER (WHERE d -> 'explanation' <> 'null')
          FROM jsonb_array_elements(kaireon.recommend_json(jsonb_build_object(
                   'tenantId', 'rr', 'customerId', customer, 'channel', 'web', 'dryRun', true, 'explain', false)) -> 'decisions') d) AS unexplained_json
  FROM unnest(ARRAY['ann', 'dan', 'bob']) customer ORDER BY customer;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';

-- ---------------------------------------------------------------------------------------
-- 8. Scopes. One eligibility rule "adults only" (age gte 18) that bob fails, scoped in
--    turn to each kind; the offers bob is still offered show what the rule covers.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.offered(customer text, channel text DEFAULT 'web') RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.offer_id, ' ' ORDER BY r.offer_id), '(none)')
      FROM kaireon.recommend('rr', customer, channel, options => '{"dry_run": true}') r
$$;
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('rr', 'adults', 'Adults only', 'attribute_condition', 'eligibility', 'global', NULL,
     '{"attribute": "age", "operator": "gte", "value": 18}');
SELECT pg_temp.offered('bob') AS global_bob, pg_temp.offered('ann') AS global_ann;
UPDATE kaireon.qualification_rules SET scope = 'channel', scope_id = 'email' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob', 'web') AS channel_email_on_web, pg_temp.offered('bob', 'email') AS channel_email_on_email;
UPDATE kaireon.qualification_rules SET scope = 'category', scope_id = 'loans' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS category_loans;
-- Rules are bound to the offers they can act on when the configuration is compiled: an
-- offer added later is bound by the recompile its insertion triggers (o4 of loans is held
-- like o3), and an offer_attribute rule of the eligibility stage left out of an offer it
-- holds for (o1: risk low) is bound again once the offer changes so that it fails
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value) VALUES
    ('rr', 'o4', 'Second loan', 'loans', 'active', 50, 100, 100);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rr', 'o4-web', 'o4', 'web', 'o4 on web');
SELECT pg_temp.offered('bob') AS category_loans_offer_added, pg_temp.offered('ann') AS category_loans_offer_added_ann;
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('rr', 'low-risk', 'Low risk', 'offer_attribute', 'eligibility', 'global', NULL,
     '{"attribute": "risk", "operator": "eq", "value": "low"}');
SELECT pg_temp.offered('ann') AS low_risk;
UPDATE kaireon.offers SET custom_fields = '{"risk": "high", "tier": 2}' WHERE tenant_id = 'rr' AND id = 'o1';
SELECT pg_temp.offered('ann') AS low_risk_o1_now_high;
UPDATE kaireon.offers SET custom_fields = '{"risk": "low", "tier": 2}' WHERE tenant_id = 'rr' AND id = 'o1';
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr' AND id = 'low-risk';
DELETE FROM kaireon.offers WHERE tenant_id = 'rr' AND id = 'o4';
UPDATE kaireon.qualification_rules SET scope = 'sub_category', scope_id = 'travel' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS sub_category_travel;
UPDATE kaireon.qualification_rules SET scope = 'offer', scope_id = 'o2' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS offer_o2;
-- segment scope: the rule applies to members of the segment only (VIPs): eve (minor VIP)
-- is held by it, bob (minor, not VIP) is not covered
UPDATE kaireon.qualification_rules SET scope = 'segment', scope_id = 'vips' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('eve') AS segment_vips_eve, pg_temp.offered('bob') AS segment_vips_bob;
-- qualification_rule_scopes rows replace the rule's own scope column; any of them covers
UPDATE kaireon.qualification_rules SET scope = 'global', scope_id = NULL WHERE tenant_id = 'rr' AND id = 'adults';
INSERT INTO kaireon.qualification_rule_scopes (tenant_id, qualification_rule_id, scope, scope_id) VALUES
    ('rr', 'adults', 'offer', 'o1'), ('rr', 'adults', 'category', 'loans');
SELECT pg_temp.offered('bob') AS scope_rows_o1_and_loans;
DELETE FROM kaireon.qualification_rule_scopes WHERE tenant_id = 'rr';
SELECT pg_temp.offered('bob') AS scope_rows_removed_global_again;
-- a rule that is inactive, a draft or soft-deleted does not apply
UPDATE kaireon.qualification_rules SET status = 'inactive' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS inactive;
UPDATE kaireon.qualification_rules SET status = 'draft' WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS draft;
UPDATE kaireon.qualification_rules SET status = 'active', deleted_at = now() WHERE tenant_id = 'rr' AND id = 'adults';
SELECT pg_temp.offered('bob') AS soft_deleted;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';

-- ---------------------------------------------------------------------------------------
-- 9. Order: stage by stage (eligibility, fit, match), by priority within a stage; the
--    first failing rule is the one reported.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, priority, scope, scope_id, config) VALUES
    ('rr', 'q-low', 'low priority eligibility', 'attribute_condition', 'eligibility', 10, 'offer', 'o1', '{"attribute": "age", "operator": "gte", "value": 18}'),
    ('rr', 'q-high', 'high priority eligibility', 'attribute_condition', 'eligibility', 90, 'offer', 'o1', '{"attribute": "vip", "operator": "eq", "value": true}'),
    ('rr', 'q-fit', 'fit rule', 'attribute_condition', 'fit', 1000, 'offer', 'o1', '{"attribute": "tier", "operator": "eq", "value": "gold"}');
SELECT offer_id, explanation ->> 'droppedAt' AS stage, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rr', 'bob', 'web', options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL;
-- with the vip rule's priority lowered below the age rule's, the age rule comes first;
-- when the eligibility rules hold (ann), the fit rule decides despite its higher priority
UPDATE kaireon.qualification_rules SET priority = 5 WHERE tenant_id = 'rr' AND id = 'q-high';
SELECT offer_id, explanation ->> 'reason' AS reason_after_swap
  FROM kaireon.recommend('rr', 'bob', 'web', options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL;
SELECT offer_id, explanation ->> 'droppedAt' AS stage, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rr', 'ann', 'web', context => '{"tier": "silver"}', options => '{"dry_run": true, "debug": true}')
 WHERE rank IS NULL;

-- ---------------------------------------------------------------------------------------
-- 10. Mandatory offers skip qualification: o3 made mandatory is offered to bob despite the
--     global eligibility rule, and explained as mandatory.
-- ---------------------------------------------------------------------------------------
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, config) VALUES
    ('rr', 'adults', 'Adults only', 'attribute_condition', 'eligibility', 'global', '{"attribute": "age", "operator": "gte", "value": 18}');
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rr' AND id = 'o3';
SELECT rank, offer_id, explanation -> 'mandatory' AS mandatory, explanation ->> 'droppedAt' AS dropped_at
  FROM kaireon.recommend('rr', 'bob', 'web', options => '{"dry_run": true, "debug": true}') ORDER BY rank, offer_id;
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rr' AND id = 'o3';
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';

-- ---------------------------------------------------------------------------------------
-- 10a. Offers that qualify alike. The offers whose bound rules give one verdict in any
--      request form a qualification class; a decision runs the rules for one candidate
--      of a class and gives the others what it got. o4 is a second plain card: o2 and o4
--      have the same rules bound, and each must still get its own verdict where an
--      offer_attribute rule or a scope covers them differently.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, custom_fields) VALUES
    ('rr', 'o4', 'Second plain card', 'cards', 'active', 65, 100, 100, '{"risk": "low", "tier": 3}');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rr', 'o4-web', 'o4', 'web', 'o4 on web');
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, priority, scope, scope_id, config) VALUES
    ('rr', 'c-adults', 'Cards for adults', 'attribute_condition', 'eligibility', 50, 'category', 'cards',
     '{"attribute": "age", "operator": "gte", "value": 18}'),
    ('rr', 'c-vip', 'VIPs like cards', 'attribute_condition', 'match', 40, 'category', 'cards',
     '{"attribute": "vip", "operator": "eq", "value": true, "multiplier": 0.5}'),
    ('rr', 'c-de', 'Germans like cards', 'attribute_condition', 'match', 30, 'category', 'cards',
     '{"attribute": "country", "operator": "eq", "value": "DE", "multiplier": 0.5}'),
    ('rr', 'c-tier', 'Tier 2 cards', 'offer_attribute', 'match', 20, 'category', 'cards',
     '{"attribute": "tier", "operator": "eq", "value": 2, "multiplier": 0.25}');
-- bob (a minor) loses every card to the same rule; dan (adult, not VIP, German) keeps them,
-- each card with its own match factor and match rules. o1 (tier 2) and o2 (no tier: a
-- missing attribute passes) both hold the tier rule and share a class, o1 first: o2 gets
-- o1's result; o4 (tier 3) fails it, so it has a class of its own
SELECT customer, r.offer_id, r.explanation ->> 'droppedAt' AS dropped_at, r.explanation ->> 'reason' AS reason,
       r.explanation -> 'factors' -> 'match' AS match, r.explanation -> 'matchRules' AS match_rules
  FROM unnest(ARRAY['bob', 'dan']) customer,
       LATERAL kaireon.recommend('rr', customer, 'web', options => '{"dry_run": true, "debug": true}') r
 WHERE r.offer_id IN ('o1', 'o2', 'o4') ORDER BY customer, r.offer_id;
-- each card decided without the other gets the same
SELECT r.offer_id, r.explanation -> 'factors' -> 'match' AS match, r.explanation -> 'matchRules' AS match_rules
  FROM kaireon.recommend('rr', 'dan', 'web', options => '{"dry_run": true, "exclude_offers": ["o1", "o2"]}') r
 WHERE r.offer_id = 'o4'
UNION ALL
SELECT r.offer_id, r.explanation -> 'factors' -> 'match', r.explanation -> 'matchRules'
  FROM kaireon.recommend('rr', 'dan', 'web', options => '{"dry_run": true, "exclude_offers": ["o1", "o4"]}') r
 WHERE r.offer_id = 'o2';
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';
-- a rule whose scope covers o4 by name and o2 only through a segment (VIPs): bound to
-- both, it holds dan (not a VIP) from o4 only; eve (a VIP) from both
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('rr', 'over-50', 'Over 50', 'attribute_condition', 'eligibility', 'global', NULL, '{"attribute": "age", "operator": "gte", "value": 50}');
INSERT INTO kaireon.qualification_rule_scopes (tenant_id, qualification_rule_id, scope, scope_id) VALUES
    ('rr', 'over-50', 'offer', 'o4'), ('rr', 'over-50', 'segment', 'vips');
SELECT pg_temp.offered('dan') AS over_50_dan, pg_temp.offered('eve') AS over_50_eve;
DELETE FROM kaireon.qualification_rule_scopes WHERE tenant_id = 'rr';
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'rr';
DELETE FROM kaireon.offers WHERE tenant_id = 'rr' AND id = 'o4';

-- ---------------------------------------------------------------------------------------
-- 11. Guardrails: the expression must hold for the candidate. A hard one that does not
--     hold drops it; a soft one adds a warning. Fields: offer.<column or custom field>,
--     customer.<attribute>, request.<channel, channel_type, hour, weekday or context key>,
--     channel.<column>. A comparison with a missing value is false (not_exists true).
-- ---------------------------------------------------------------------------------------
-- guard: add one active guardrail (key "probe"), decide, remove it; the offers selected
-- (with "!" when they carry a warning) and those dropped, with the first drop's reason.
CREATE FUNCTION pg_temp.guard(expr jsonb, customer text DEFAULT 'ann', context jsonb DEFAULT '{}',
                              channel text DEFAULT 'web', severity text DEFAULT 'hard') RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    INSERT INTO kaireon.guardrail_rules (tenant_id, id, key, name, severity, expression_ast)
        VALUES ('rr', 'g-probe', 'probe', 'probe', severity, expr);
    SELECT coalesce(string_agg(r.offer_id || CASE WHEN r.explanation ? 'warnings' THEN '!' ELSE '' END, ' ' ORDER BY r.offer_id)
                        FILTER (WHERE r.rank IS NOT NULL), '-')
           || ' | dropped: ' || coalesce(string_agg(r.offer_id, ' ' ORDER BY r.offer_id) FILTER (WHERE r.rank IS NULL), '-')
      INTO result
      FROM kaireon.recommend('rr', customer, channel, context => context,
                             options => '{"dry_run": true, "debug": true}') r;
    DELETE FROM kaireon.guardrail_rules WHERE tenant_id = 'rr' AND id = 'g-probe';
    RETURN result;
END
$$;
SELECT n, what, pg_temp.guard(expr, customer, context, channel) AS outcome
  FROM (VALUES
    (1, 'offer column: priority gte 75', '{"field": "offer.priority", "op": "gte", "value": 75}'::jsonb, 'ann', '{}'::jsonb, 'web'),
    (2, 'offer custom field: risk neq high (o3 has none: dropped)', '{"field": "offer.risk", "op": "neq", "value": "high"}', 'ann', '{}', 'web'),
    (3, 'not (risk eq high): o3 missing makes the comparison false, the not true', '{"not": {"field": "offer.risk", "op": "eq", "value": "high"}}', 'ann', '{}', 'web'),
    (4, 'customer attribute: age gte 18, ann', '{"field": "customer.age", "op": "gte", "value": 18}', 'ann', '{}', 'web'),
    (5, 'customer attribute: age gte 18, bob', '{"field": "customer.age", "op": "gte", "value": 18}', 'bob', '{}', 'web'),
    (6, 'customer attribute missing (cy): gte is false', '{"field": "customer.age", "op": "gte", "value": 18}', 'cy', '{}', 'web'),
    (7, 'customer attribute missing (cy): lt is false too', '{"field": "customer.age", "op": "lt", "value": 18}', 'cy', '{}', 'web'),
    (8, 'customer attribute missing (cy): not_exists is true', '{"field": "customer.age", "op": "not_exists"}', 'cy', '{}', 'web'),
    (9, 'customer attribute from the context wins', '{"field": "customer.age", "op": "gte", "value": 18}', 'bob', '{"age": 21}', 'web'),
    (10, 'request.channel eq web, on web', '{"field": "request.channel", "op": "eq", "value": "web"}', 'ann', '{}', 'web'),
    (11, 'request.channel eq web, on email', '{"field": "request.channel", "op": "eq", "value": "web"}', 'ann', '{}', 'email'),
    (12, 'request.channel_type in [email, sms], on email', '{"field": "request.channel_type", "op": "in", "value": ["email", "sms"]}', 'ann', '{}', 'email'),
    (13, 'request context key device eq mobile, given', '{"field": "request.device", "op": "eq", "value": "mobile"}', 'ann', '{"device": "mobile"}', 'web'),
    (14, 'request context key device eq mobile, absent', '{"field": "request.device", "op": "eq", "value": "mobile"}', 'ann', '{}', 'web'),
    (15, 'channel column impression_mode eq implicit, web', '{"field": "channel.impression_mode", "op": "eq", "value": "implicit"}', 'ann', '{}', 'web'),
    (16, 'channel column impression_mode eq implicit, email', '{"field": "channel.impression_mode", "op": "eq", "value": "implicit"}', 'ann', '{}', 'email'),
    (17, 'all: cards and low risk', '{"all": [{"field": "offer.category_id", "op": "eq", "value": "cards"}, {"field": "offer.risk", "op": "eq", "value": "low"}]}', 'ann', '{}', 'web'),
    (18, 'any: loans or low risk', '{"any": [{"field": "offer.category_id", "op": "eq", "value": "loans"}, {"field": "offer.risk", "op": "eq", "value": "low"}]}', 'ann', '{}', 'web'),
    (19, 'nested: (cards or VIP) and not high risk, ann (VIP)', '{"all": [{"any": [{"field": "offer.category_id", "op": "eq", "value": "cards"}, {"field": "customer.vip", "op": "eq", "value": true}]}, {"not": {"field": "offer.risk", "op": "eq", "value": "high"}}]}', 'ann', '{}', 'web'),
    (20, 'nested: (cards or VIP) and not high risk, dan (not VIP)', '{"all": [{"any": [{"field": "offer.category_id", "op": "eq", "value": "cards"}, {"field": "customer.vip", "op": "eq", "value": true}]}, {"not": {"field": "offer.risk", "op": "eq", "value": "high"}}]}', 'dan', '{}', 'web'),
    (21, 'unknown field family member (offer.nothing exists) drops all', '{"field": "offer.nothing", "op": "exists"}', 'ann', '{}', 'web')
  ) AS t(n, what, expr, customer, context, channel)
 ORDER BY n;
-- the reason of a hard guardrail's drop
INSERT INTO kaireon.guardrail_rules (tenant_id, id, key, name, severity, expression_ast)
    VALUES ('rr', 'g-prio', 'high-priority-only', 'High priority only', 'hard', '{"field": "offer.priority", "op": "gte", "value": 75}');
SELECT offer_id, explanation ->> 'droppedAt' AS stage, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rr', 'ann', 'web', options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL ORDER BY offer_id;
-- soft: nothing is dropped, the offers it does not hold for carry a warning
UPDATE kaireon.guardrail_rules SET severity = 'soft' WHERE tenant_id = 'rr' AND id = 'g-prio';
SELECT offer_id, explanation -> 'warnings' AS warnings
  FROM kaireon.recommend('rr', 'ann', 'web', options => '{"dry_run": true, "debug": true}') ORDER BY offer_id;
-- an inactive guardrail does not apply
UPDATE kaireon.guardrail_rules SET severity = 'hard', status = 'inactive' WHERE tenant_id = 'rr' AND id = 'g-prio';
SELECT string_agg(offer_id, ' ' ORDER BY offer_id) AS inactive_guardrail
  FROM kaireon.recommend('rr', 'ann', 'web', options => '{"dry_run": true}');
-- guardrails are not qualification: a mandatory offer is still held by a hard one
UPDATE kaireon.guardrail_rules SET status = 'active' WHERE tenant_id = 'rr' AND id = 'g-prio';
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rr' AND id = 'o3';
SELECT offer_id, explanation ->> 'droppedAt' AS stage
  FROM kaireon.recommend('rr', 'ann', 'web', options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL;
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rr' AND id = 'o3';
DELETE FROM kaireon.guardrail_rules WHERE tenant_id = 'rr';
-- request.hour and request.weekday are the decision's UTC hour and weekday (0 = Sunday):
-- the guardrail and the decision share one transaction, so one now()
BEGIN;
SELECT pg_temp.guard(jsonb_build_object('all', jsonb_build_array(
           jsonb_build_object('field', 'request.hour', 'op', 'eq', 'value', extract(hour FROM now() AT TIME ZONE 'UTC')::int),
           jsonb_build_object('field', 'request.weekday', 'op', 'eq', 'value', extract(dow FROM now() AT TIME ZONE 'UTC')::int)))) AS this_hour_today,
       pg_temp.guard(jsonb_build_object('field', 'request.hour', 'op', 'eq',
                                        'value', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1) % 24)) AS next_hour,
       pg_temp.guard(jsonb_build_object('field', 'request.weekday', 'op', 'neq',
                                        'value', extract(dow FROM now() AT TIME ZONE 'UTC')::int)) AS not_today;
COMMIT;
-- soft guardrails in the table driver: warnings, no drops
SELECT pg_temp.guard('{"field": "offer.risk", "op": "eq", "value": "low"}', severity => 'soft') AS soft_risk_low;

-- Clean up.
DELETE FROM kaireon.tenants WHERE id = 'rr';
DROP SCHEMA kaireon_t_rr CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE schema_name = 'kaireon_t_rr';
