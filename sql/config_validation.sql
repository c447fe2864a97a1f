-- JSON configuration is validated when written (SQLSTATE 22023 naming the field), enum
-- columns reject values outside their CHECK (23514), and nothing is written on error.
\set VERBOSITY default
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('cv', 'Config validation', 'cv');

-- Well-formed rules of every type are accepted.
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, config) VALUES
    ('cv', 'q1', 'Gold segment', 'segment_required', 'eligibility', '{"segmentIds": ["gold"], "match": "any"}'),
    ('cv', 'q2', 'Adults', 'attribute_condition', 'eligibility', '{"attribute": "age", "operator": "gte", "value": 18}'),
    ('cv', 'q3', 'Country', 'attribute_condition', 'fit', '{"attribute": "country", "operator": "in", "value": ["DE", "FR"]}'),
    ('cv', 'q4', 'Has email', 'attribute_condition', 'fit', '{"attribute": "email", "operator": "exists"}'),
    ('cv', 'q5', 'Likely', 'propensity_threshold', 'fit', '{"threshold": 0.2, "modelKey": "m1"}'),
    ('cv', 'q6', 'Not recently', 'recency_check', 'eligibility', '{"withinDays": 7, "interactionTypes": ["impression"], "mode": "exclude"}'),
    ('cv', 'q7', 'Active', 'metric_condition', 'match', '{"metricKey": "visits_30d", "operator": "gt", "value": 3, "multiplier": 0.5}'),
    ('cv', 'q8', 'Premium offers', 'offer_attribute', 'fit', '{"attribute": "tier", "operator": "starts_with", "value": "prem"}');
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config) VALUES
    ('cv', 'p1', '3 a day', 'frequency_cap', '{"maxCount": 3, "period": "day"}'),
    ('cv', 'p2', 'cooldown', 'cooldown', '{"hours": 12, "afterOutcomes": ["dismiss"]}'),
    ('cv', 'p3', 'budget', 'budget_exhausted', '{"metric": "spend"}'),
    ('cv', 'p4', 'complaints', 'outcome_based', '{"outcomes": ["complaint"], "suppressDays": 30}'),
    ('cv', 'p5', 'vip out', 'segment_exclusion', '{"segmentIds": ["vip"]}'),
    ('cv', 'p6', 'daytime', 'time_window', '{"startHour": 8, "endHour": 20, "days": [1, 2, 3, 4, 5], "timezone": "Europe/Berlin"}'),
    ('cv', 'p7', 'one card', 'mutual_exclusion', '{"offerIds": ["gold", "platinum"], "lookbackHours": 168}'),
    ('cv', 'p8', 'loans pause', 'category_suppression', '{"categoryIds": ["loans"], "days": 14}'),
    ('cv', 'p9', 'all channels', 'cross_channel_cap', '{"maxCount": 5, "lookbackHours": 24}'),
    ('cv', 'p10', 'total', 'customer_total_cap', '{"maxCount": 10, "period": "week", "engagementMultiplier": {"enabled": true, "min": 0.5, "max": 2}}'),
    ('cv', 'p11', 'per category', 'offer_category_cap', '{"maxCount": 2, "period": "month"}'),
    ('cv', 'p12', 'override', 'allow_override', '{"offerIds": ["service-notice"], "exemptRuleTypes": ["frequency_cap"]}'),
    ('cv', 'p13', 'engaged', 'metric_condition', '{"metricKey": "opens_7d", "operator": "gte", "value": 1, "bypassable": false}');
INSERT INTO kaireon.guardrail_rules (tenant_id, id, key, name, expression_ast) VALUES
    ('cv', 'g1', 'no-loans-minors', 'No loans for minors',
     '{"not": {"all": [{"field": "offer.category", "op": "eq", "value": "loans"}, {"field": "customer.age", "op": "lt", "value": 18}]}}');
SELECT (SELECT count(*) FROM kaireon.qualification_rules) AS rules,
       (SELECT count(*) FROM kaireon.contact_policies) AS policies,
       (SELECT count(*) FROM kaireon.guardrail_rules) AS guardrails;

-- Wrong-typed and missing fields name the field.
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": 42, "operator": "eq", "value": 1}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": "age", "operator": "bigger", "value": 1}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": "age", "operator": "in", "value": 3}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": "age", "operator": "eq"}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": "age", "opertor": "eq", "value": 1}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'segment_required', '{"segmentIds": []}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'propensity_threshold', '{"threshold": 1.5}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'recency_check', '{"withinDays": 3, "withinHours": 4}');
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'metric_condition', '{"metricKey": "m", "operator": "eq", "value": "high"}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'frequency_cap', '{"maxCount": "3", "period": "day"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'frequency_cap', '{"maxCount": 2.5, "period": "day"}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'frequency_cap', '{"maxCount": 3}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'frequency_cap', '{"maxCount": 3, "period": "fortnight"}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'time_window', '{"startHour": 8, "endHour": 8}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'time_window', '{"startHour": 8, "endHour": 20, "days": [1, 9]}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'outcome_based', '{"outcomes": ["complaint", 7], "suppressDays": 30}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'allow_override', '{"exemptRuleTypes": ["everything"]}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'customer_total_cap', '{"maxCount": 3, "period": "day", "engagementMultiplier": {"min": 2, "max": 1}}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'mutual_exclusion', '{"offerIds": ["only-one"]}');
INSERT INTO kaireon.guardrail_rules (tenant_id, key, name, expression_ast)
    VALUES ('cv', 'bad', 'bad', '{"all": [{"field": "offer.priority", "op": "gte", "value": 1}, {"field": "priority", "op": "gte", "value": 1}]}');
INSERT INTO kaireon.guardrail_rules (tenant_id, key, name, expression_ast)
    VALUES ('cv', 'bad', 'bad', '{"any": []}');
INSERT INTO kaireon.guardrail_rules (tenant_id, key, name, expression_ast)
    VALUES ('cv', 'bad', 'bad', '{"not": {"field": "customer.age", "op": "exists", "value": 1}}');
INSERT INTO kaireon.guardrail_rules (tenant_id, key, name, expression_ast)
    VALUES ('cv', 'bad', 'bad', '[1, 2]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- Numbers of any size are numbers (jsonb keeps them; so must the validator).
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'frequency_cap', '{"maxCount": 1e30, "period": "day"}');
SELECT kaireon.validate_config('qualification_rule', 'attribute_condition',
    '{"attribute": "balance", "operator": "gt", "value": 123456789012345678901234567890}');

-- An UPDATE is validated too, and a failed one changes nothing.
UPDATE kaireon.contact_policies SET config = '{"maxCount": 0, "period": "day"}' WHERE id = 'p1';
SELECT config FROM kaireon.contact_policies WHERE id = 'p1';
-- Changing the rule type re-validates the config against the new type.
UPDATE kaireon.contact_policies SET rule_type = 'cooldown' WHERE id = 'p1';

-- Malformed JSON: jsonb refuses it (22P02) before any trigger runs...
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'attribute_condition', '{"attribute": "age", ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- ...and kaireon.validate_config, which takes JSON text, reports it as 22023 with the position.
SELECT kaireon.validate_config('qualification_rule', 'attribute_condition', '{"attribute": "age", ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.validate_config('qualification_rule', 'attribute_condition', '{"attribute": "age", "attribute": "x", "operator": "exists"}');
SELECT kaireon.validate_config('contact_policy', 'cooldown', '{"days": 2}');
SELECT kaireon.validate_config('contact_policy', 'no_such_type', '{}');
SELECT kaireon.validate_config('no_such_kind', 'x', '{}');
SELECT kaireon.validate_config('guardrail', NULL, '{"field": "request.hour", "op": "in", "value": [1, 2]}');

-- Enumerations are CHECK constraints: values outside the set fail with 23514 naming the
-- constraint (<table>_<column>_check). Terse: the failing row's generated id varies.
\set VERBOSITY terse
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, config)
    VALUES ('cv', 'bad', 'magic', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.qualification_rules (tenant_id, name, rule_type, stage, config)
    VALUES ('cv', 'bad', 'segment_required', 'final', '{"segmentIds": ["a"]}');
INSERT INTO kaireon.contact_policies (tenant_id, name, rule_type, scope, config)
    VALUES ('cv', 'bad', 'frequency_cap', 'planet', '{"maxCount": 1, "period": "day"}');
INSERT INTO kaireon.offers (tenant_id, name, status) VALUES ('cv', 'bad', 'live');
INSERT INTO kaireon.channels (tenant_id, name, channel_type) VALUES ('cv', 'bad', 'pigeon');
INSERT INTO kaireon.channels (tenant_id, name, channel_type, impression_mode) VALUES ('cv', 'bad', 'web', 'sometimes');
INSERT INTO kaireon.outcome_types (tenant_id, key, name, classification) VALUES ('cv', 'meh', 'Meh', 'lukewarm');
INSERT INTO kaireon.guardrail_rules (tenant_id, key, name, severity, expression_ast)
    VALUES ('cv', 'sev', 'sev', 'medium', '{"field": "offer.priority", "op": "gte", "value": 1}');
INSERT INTO kaireon.volume_constraints (tenant_id, name, scope, max_volume, period)
    VALUES ('cv', 'bad', 'global', 10, 'hourly');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type) VALUES ('cv', 'm', 'm', 'neural_net');
INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, registry_status)
    VALUES ('cv', 'm', 'm', 'bayesian', 'king');
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days) VALUES ('cv', 'everything', 30);
INSERT INTO kaireon.offers (tenant_id, name, priority) VALUES ('cv', 'bad', 101);

-- Nothing of the above was written.
SELECT (SELECT count(*) FROM kaireon.qualification_rules) AS rules,
       (SELECT count(*) FROM kaireon.contact_policies) AS policies,
       (SELECT count(*) FROM kaireon.guardrail_rules) AS guardrails,
       (SELECT count(*) FROM kaireon.offers) AS offers,
       (SELECT count(*) FROM kaireon.channels) AS channels,
       (SELECT count(*) FROM kaireon.algorithm_models) AS models;

-- Offer schedules: dates must parse (the parser's error names the value, the context the
-- field), end after start, hours a non-empty window, a known time zone.
\set VERBOSITY default
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"start": "not a date"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"start": "2026-01-01", "end": "2025-01-01"}');
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"timezone": "Mars/Base"}');
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"hours": {"start": 9, "end": 9}}');
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"days": [7]}');
INSERT INTO kaireon.offers (tenant_id, name, schedule) VALUES ('cv', 'bad', '{"from": "2026-01-01"}');
INSERT INTO kaireon.offers (tenant_id, id, name, schedule) VALUES ('cv', 'scheduled', 'ok',
    '{"start": "2026-01-01", "end": "2027-01-01", "days": [1, 2, 3, 4, 5], "hours": {"start": 9, "end": 17}, "timezone": "Europe/Berlin"}');
SELECT id FROM kaireon.offers WHERE tenant_id = 'cv';
-- decision flow drafts
INSERT INTO kaireon.decision_flows (tenant_id, key, name, draft_config) VALUES ('cv', 'f', 'f', '{"maxOffers": 99}');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, draft_config) VALUES ('cv', 'f', 'f', '{"score": {"method": "magic"}}');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, draft_config) VALUES ('cv', 'f', 'f', '{"inventory": {"categories": "cards"}}');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, draft_config) VALUES ('cv', 'f', 'f', '{"score": {"weights": {"propensity": 2}}}');
SELECT count(*) AS flows FROM kaireon.decision_flows WHERE tenant_id = 'cv';

DELETE FROM kaireon.tenants WHERE id = 'cv';
