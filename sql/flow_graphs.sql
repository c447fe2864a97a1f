-- Decision flows as graphs (draft_config version 2, docs/flows.md): validation when written
-- (22023 naming the node), call_flow checked at publish, a graph equal to the version 1
-- pipeline giving the same decisions as version 1 on the same data (compared inside this
-- test), and each node type with a case where it changes the result.  Dry runs throughout.
\set VERBOSITY terse
SET timezone = 'UTC';

-- ---------------------------------------------------------------- set-up
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('fg', 'Graphs', 'fg', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES
    ('fg', 'web', 'Web', 'web'), ('fg', 'app', 'App', 'mobile_app');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES
    ('fg', 'hero', 'web', 'Hero', 5), ('fg', 'side', 'web', 'Side', 5);
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('fg', 'cards', 'Cards'), ('fg', 'loans', 'Loans');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, weight, value, margin, mandatory, custom_fields) VALUES
    ('fg', 'gold', 'Gold card', 'cards', 'active', 80, 100, 100, 10, false, '{"tier": "gold"}'),
    ('fg', 'miles', 'Miles card', 'cards', 'active', 70, 100, 300, 30, false, '{"tier": "silver"}'),
    ('fg', 'loan', 'Personal loan', 'loans', 'active', 60, 50, 50, 40, false, '{}'),
    ('fg', 'auto', 'Auto loan', 'loans', 'active', 50, 100, 500, 5, false, '{"tier": "gold"}'),
    ('fg', 'must', 'Notice', NULL, 'active', 10, 100, 0, 0, true, '{}');
-- (gold-web weighs 0: without a placement the weighted draw always picks gold-hero)
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight) VALUES
    ('fg', 'gold-web', 'gold', 'web', NULL, 'g', 0), ('fg', 'gold-hero', 'gold', 'web', 'hero', 'g hero', 100);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name) VALUES
    ('fg', 'miles-web', 'miles', 'web', NULL, 'm'), ('fg', 'loan-web', 'loan', 'web', NULL, 'l'),
    ('fg', 'auto-web', 'auto', 'web', NULL, 'a'), ('fg', 'must-web', 'must', 'web', NULL, 'n'),
    ('fg', 'gold-app', 'gold', 'app', NULL, 'g app'), ('fg', 'loan-app', 'loan', 'app', NULL, 'l app');
-- rules, a guardrail and policies, so that screening decides something
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('fg', 'q-adult', 'Adults only', 'attribute_condition', 'eligibility', 'category', 'loans',
     '{"attribute": "age", "operator": "gte", "value": 18}'),
    ('fg', 'q-income', 'Income fit', 'attribute_condition', 'match', 'offer', 'miles',
     '{"attribute": "income", "operator": "gt", "value": 50000, "multiplier": 0.5}');
INSERT INTO kaireon.guardrail_rules (tenant_id, id, key, name, severity, expression_ast) VALUES
    ('fg', 'g-value', 'some-value', 'Some value', 'hard', '{"field": "offer.value", "op": "gte", "value": 0}');
-- (auto is outside one of the two windows whatever the hour)
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, scope, scope_id, config) VALUES
    ('fg', 'p-am', 'Mornings', 'time_window', 10, 'offer', 'auto', '{"startHour": 0, "endHour": 12}'),
    ('fg', 'p-pm', 'Afternoons', 'time_window', 5, 'offer', 'auto', '{"startHour": 12, "endHour": 24}');

-- the version 1 default pipeline, and a version 2 graph of the same steps
CREATE FUNCTION pg_temp.linear(inventory jsonb DEFAULT '{}', score jsonb DEFAULT '{}', response jsonb DEFAULT '{"maxOffers": 10}')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('version', 2,
        'nodes', jsonb_build_array(
            jsonb_build_object('id', 'inv', 'type', 'inventory', 'config', inventory),
            jsonb_build_object('id', 'creatives', 'type', 'match_creatives'),
            jsonb_build_object('id', 'qualify', 'type', 'qualify'),
            jsonb_build_object('id', 'policies', 'type', 'contact_policy'),
            jsonb_build_object('id', 'score', 'type', 'score', 'config', score),
            jsonb_build_object('id', 'arbitrate', 'type', 'optimize'),
            jsonb_build_object('id', 'rank', 'type', 'rank'),
            jsonb_build_object('id', 'answer', 'type', 'response', 'config', response)),
        'edges', '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
                   {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"},
                   {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"},
                   {"from": "rank", "to": "answer"}]'::jsonb)
$$;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('fg', 'f-v1', 'v1', 'Version 1', true, '{"maxOffers": 3}'),
    ('fg', 'f-v2', 'v2', 'Version 2', false, pg_temp.linear(response => '{"maxOffers": 3}')),
    ('fg', 'f-v1f', 'v1f', 'Version 1 formula', false, '{"maxOffers": 4, "score": {"method": "formula"}, "inventory": {"categories": ["cards", "loans"]}}'),
    ('fg', 'f-v2f', 'v2f', 'Version 2 formula', false,
     pg_temp.linear('{"categories": ["cards", "loans"]}', '{"method": "formula"}', '{"maxOffers": 4}')),
    ('fg', 'f-x', 'x', 'Scratch', false, '{}');
SELECT key, kaireon.publish_decision_flow('fg', key) AS version FROM kaireon.decision_flows
 WHERE tenant_id = 'fg' AND key <> 'x' ORDER BY key;

-- Helpers.  picks: the decisions of a dry run as "rank:offer/creative"; rows: every row of a
-- dry run with debug, the explanation without the flow's name (two flows' rows compare).
CREATE FUNCTION pg_temp.picks(flow text, context jsonb DEFAULT '{"age": 30}', channel text DEFAULT 'web',
                              placement text DEFAULT NULL, customer text DEFAULT 'c1') RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rank || ':' || r.offer_id || '/' || r.creative_id, ' ' ORDER BY r.rank), '(none)')
      FROM kaireon.recommend('fg', customer, channel, placement, context, NULL, flow, '{"dry_run": true}') r
     WHERE r.rank IS NOT NULL
$$;
CREATE FUNCTION pg_temp.rows(flow text, customer text, context jsonb, placement text DEFAULT NULL)
RETURNS TABLE (rank int, offer_id text, creative_id text, score double precision, explanation jsonb)
LANGUAGE sql AS $$
    SELECT r.rank, r.offer_id, r.creative_id, r.score,
           CASE WHEN r.explanation ? 'funnel'
                THEN jsonb_set(r.explanation, '{funnel}', (SELECT jsonb_agg(f - 'flow' - 'path') FROM jsonb_array_elements(r.explanation -> 'funnel') f))
                ELSE r.explanation - 'flow' - 'path' END
      FROM kaireon.recommend('fg', customer, 'web', placement, context, NULL, flow, '{"dry_run": true, "debug": true}') r
$$;

-- ---------------------------------------------------------------- version 2 reproduces version 1
-- the same rows (decisions and, with debug, every dropped candidate with its stage and reason)
-- for several customers and placements, compared both ways; and there are rows to compare
CREATE TEMP TABLE cases (customer text, context jsonb, placement text);
INSERT INTO cases VALUES ('c1', '{"age": 30, "income": 90000}', NULL), ('c2', '{"age": 12}', NULL),
    ('c3', '{"age": 40, "income": 10000}', 'hero'), ('c4', '{}', 'side'), ('c5', '{"age": 18}', 'hero');
SELECT pair,
       (SELECT count(*) FROM cases, pg_temp.rows(a, customer, context, placement)) AS v1_rows,
       (SELECT count(*) FROM cases, pg_temp.rows(a, customer, context, placement) WHERE rank IS NOT NULL) AS v1_decisions,
       (SELECT count(*) FROM ((SELECT x.* FROM cases, pg_temp.rows(a, customer, context, placement) x)
                              EXCEPT ALL (SELECT y.* FROM cases, pg_temp.rows(b, customer, context, placement) y)) d) AS only_v1,
       (SELECT count(*) FROM ((SELECT y.* FROM cases, pg_temp.rows(b, customer, context, placement) y)
                              EXCEPT ALL (SELECT x.* FROM cases, pg_temp.rows(a, customer, context, placement) x)) d) AS only_v2
  FROM (VALUES ('v1 = v2', 'v1', 'v2'), ('v1f = v2f', 'v1f', 'v2f')) AS p (pair, a, b)
 ORDER BY pair;
SELECT pg_temp.picks('v1') AS v1, pg_temp.picks('v2') AS v2, pg_temp.picks('v1f') AS v1f, pg_temp.picks('v2f') AS v2f;
-- explain and debug show the path: in each decision's explanation, and in the debug funnel
SELECT r.explanation -> 'path' AS path FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 1, 'v2', '{"dry_run": true}') r;
SELECT kaireon.recommend_json('{"tenantId": "fg", "customerId": "c1", "channel": "web", "decisionFlowKey": "v2", "context": {"age": 30},
                                "dryRun": true, "debug": true}'::jsonb) -> 'debug' -> 'funnel' -> 0 -> 'path' AS funnel_path;
-- a version 1 flow's answer has no path
SELECT r.explanation ? 'path' AS v1_has_path FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 1, 'v1', '{"dry_run": true}') r;

-- ---------------------------------------------------------------- validation when written (22023 naming the node)
CREATE FUNCTION pg_temp.try(doc jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kaireon.decision_flows SET draft_config = doc WHERE tenant_id = 'fg' AND key = 'x';
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- edit the linear graph: nodes replaced or added, edges replaced
CREATE FUNCTION pg_temp.edit(nodes jsonb DEFAULT '[]', edges jsonb DEFAULT NULL, drop_node text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_set(jsonb_set(g, '{nodes}',
                     (SELECT jsonb_agg(coalesce((SELECT m FROM jsonb_array_elements(nodes) m WHERE m ->> 'id' = n ->> 'id'), n))
                        FROM jsonb_array_elements(g -> 'nodes') n WHERE n ->> 'id' IS DISTINCT FROM drop_node)
                     || (SELECT coalesce(jsonb_agg(m), '[]') FROM jsonb_array_elements(nodes) m
                          WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(g -> 'nodes') n WHERE n ->> 'id' = m ->> 'id'))),
                     '{edges}', coalesce(edges, g -> 'edges'))
      FROM pg_temp.linear() g
$$;
SELECT pg_temp.try(pg_temp.linear()) AS linear;
-- the flow-wide settings of lift.md are version 2's too: a control answer and a flow A/B test
SELECT pg_temp.try(pg_temp.linear() || '{"controlGroupPercent": 5, "controlAnswer": ["o1"], "flowExperiment": "ab"}') AS flow_settings;
SELECT pg_temp.try(pg_temp.linear() || '{"controlAnswer": [1]}') AS bad_control_answer;
SELECT pg_temp.try(pg_temp.edit('[{"id": "score", "type": "scorer"}]')) AS unknown_type;
SELECT pg_temp.try(pg_temp.edit('[{"id": "score", "type": "score", "config": {"method": "formula", "bogus": 1}}]')) AS unknown_config_field;
SELECT pg_temp.try(pg_temp.edit('[{"id": "score", "type": "score", "colour": "red"}]')) AS unknown_node_field;
SELECT pg_temp.try(pg_temp.edit('[{"id": "score", "type": "score", "config": {"method": "formula", "weights": {"impact": 2}}}]')) AS bad_weight;
SELECT pg_temp.try(pg_temp.linear() || '{"edges": [{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
    {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
    {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}, {"from": "score", "to": "qualify"}]}') AS two_edges_out;
SELECT pg_temp.try(pg_temp.edit('[{"id": "check", "type": "filter", "config": {"conditions": [{"field": "offer.value", "op": "gt", "value": 1}]}}]',
    '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "check"},
      {"from": "check", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}, {"from": "policies", "to": "qualify"}]')) AS two_edges_out_too;
-- a cycle, named by its nodes
SELECT pg_temp.try(pg_temp.edit('[{"id": "back", "type": "conditional", "config": {"by": "channel", "branches": [{"name": "app", "channels": ["app"]}]}}]',
    '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "policies"},
      {"from": "policies", "to": "back"}, {"from": "back", "to": "qualify", "branch": "app"}, {"from": "back", "to": "score", "branch": "default"},
      {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS cycle;
SELECT pg_temp.try(pg_temp.linear() || '{"edges": [{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
    {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
    {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}, {"from": "answer", "to": "inv"}]}') AS edge_out_of_response;
-- entries: two, or one that is not an inventory node; an unreachable node is a second entry
SELECT pg_temp.try(pg_temp.edit('[{"id": "stray", "type": "rank"}]',
    '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "policies"},
      {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"},
      {"from": "rank", "to": "answer"}, {"from": "stray", "to": "answer"}]')) AS two_entries;
SELECT pg_temp.try(pg_temp.edit(edges => '[{"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "policies"},
      {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"},
      {"from": "rank", "to": "answer"}]', drop_node => 'inv')) AS entry_not_inventory;
SELECT pg_temp.try(pg_temp.edit('[{"id": "qualify", "type": "rank"}]')) AS duplicate_free_replace;
SELECT pg_temp.try(pg_temp.linear() || jsonb_build_object('nodes', (pg_temp.linear() -> 'nodes') || '[{"id": "rank", "type": "rank"}]')) AS duplicate_id;
SELECT pg_temp.try(pg_temp.edit(edges => '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "nowhere"}]')) AS edge_to_unknown;
SELECT pg_temp.try(pg_temp.edit(edges => '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}]')) AS dead_end;
SELECT pg_temp.try(pg_temp.edit(edges => '[{"from": "inv", "to": "creatives", "branch": "yes"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS branch_not_conditional;
SELECT pg_temp.try(pg_temp.edit('[{"id": "back", "type": "conditional", "config": {"by": "channel", "branches": [{"name": "app", "channels": ["app"]}]}}]',
    '[{"from": "inv", "to": "back"}, {"from": "back", "to": "creatives", "branch": "app"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS no_default_edge;
SELECT pg_temp.try(pg_temp.edit('[{"id": "back", "type": "conditional", "config": {"by": "channel", "branches": [{"name": "app", "segment": "s"}]}}]')) AS branch_wrong_test;
SELECT pg_temp.try(pg_temp.edit('[{"id": "check", "type": "filter", "config": {"conditions": [{"field": "offer.name", "op": "regex", "value": "(unclosed"}]}}]',
    '[{"from": "inv", "to": "check"}, {"from": "check", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS bad_regex;
SELECT pg_temp.try(pg_temp.edit('[{"id": "check", "type": "filter", "config": {"conditions": [{"field": "offer.tier", "op": "is_null", "value": 1}]}}]',
    '[{"from": "inv", "to": "check"}, {"from": "check", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS is_null_with_value;
SELECT pg_temp.try(pg_temp.edit('[{"id": "calc", "type": "compute", "config": {"name": "x y", "expression": 1}}]')) AS bad_compute_name;
SELECT pg_temp.try(pg_temp.edit('[{"id": "calc", "type": "compute", "config": {"name": "x", "expression": {"op": "^", "args": [1]}}}]')) AS bad_compute_op;
SELECT pg_temp.try('{"version": 3, "nodes": [], "edges": []}') AS version_3;
SELECT pg_temp.try('{"version": 2, "nodes": [{"id": "inv", "type": "inventory"}], "edges": [], "inventory": {}}') AS v1_field_in_v2;
SELECT pg_temp.try('{"version": 1, "maxOffers": 2}') AS version_1_explicit;
-- nothing was written by the refused ones
SELECT draft_config FROM kaireon.decision_flows WHERE tenant_id = 'fg' AND key = 'x';
-- the same checks through kaireon.validate_config
SELECT kaireon.validate_config('decision_flow', NULL, pg_temp.linear()::text) AS valid;
SELECT kaireon.validate_config('decision_flow', NULL, pg_temp.edit('[{"id": "rank", "type": "ranker"}]')::text);

-- ---------------------------------------------------------------- call_flow: checked at publish
CREATE FUNCTION pg_temp.caller(target text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.edit(jsonb_build_array(jsonb_build_object('id', 'call', 'type', 'call_flow', 'config', jsonb_build_object('flowKey', target))),
        '[{"from": "inv", "to": "call"}, {"from": "call", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
          {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
          {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')
$$;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('fg', 'f-a', 'a', 'A', pg_temp.caller('b')),
    ('fg', 'f-b', 'b', 'B', '{"version": 2, "nodes": [{"id": "cards", "type": "inventory", "config": {"categories": ["cards"]}},
        {"id": "done", "type": "response"}], "edges": [{"from": "cards", "to": "done"}]}'),
    ('fg', 'f-c', 'c', 'C', pg_temp.caller('nope'));
-- a calls b, which is not published yet: refused, naming the node
SELECT kaireon.publish_decision_flow('fg', 'a');
SELECT kaireon.publish_decision_flow('fg', 'c');
SELECT kaireon.publish_decision_flow('fg', 'b') AS b_version, kaireon.publish_decision_flow('fg', 'a') AS a_version;
-- b calling a back closes a cycle: refused at publish, b's published version is unchanged
UPDATE kaireon.decision_flows SET draft_config = pg_temp.caller('a') WHERE tenant_id = 'fg' AND key = 'b';
SELECT kaireon.publish_decision_flow('fg', 'b');
-- a flow calling itself
UPDATE kaireon.decision_flows SET draft_config = pg_temp.caller('c') WHERE tenant_id = 'fg' AND key = 'c';
SELECT kaireon.publish_decision_flow('fg', 'c');
-- whoever writes a published version: a direct write is checked too
UPDATE kaireon.decision_flows SET published_versions = published_versions || jsonb_build_array(jsonb_build_object('version', 2, 'config', pg_temp.caller('a'))),
       published_version = 2 WHERE tenant_id = 'fg' AND key = 'b';
SELECT key, published_version FROM kaireon.decision_flows WHERE tenant_id = 'fg' AND key IN ('a', 'b', 'c') ORDER BY key;
-- call_flow runs the called flow inline: b's inventory keeps the cards only; the path names b's nodes
SELECT pg_temp.picks('a') AS a, pg_temp.picks('v2') AS v2;
SELECT r.explanation -> 'path' AS path FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 1, 'a', '{"dry_run": true}') r;
-- depth: a chain of nine flows is refused at the ninth
DO $$
BEGIN
    FOR i IN 1..9 LOOP
        INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config)
        VALUES ('fg', 'f-d' || i, 'd' || i, 'D' || i,
                CASE WHEN i = 1 THEN pg_temp.linear() ELSE pg_temp.caller('d' || (i - 1)) END);
        PERFORM kaireon.publish_decision_flow('fg', 'd' || i);
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '% %', SQLSTATE, SQLERRM;
END
$$;

-- ---------------------------------------------------------------- each node type changes the result
CREATE FUNCTION pg_temp.run(doc jsonb, context jsonb DEFAULT '{"age": 30}', channel text DEFAULT 'web',
                            placement text DEFAULT NULL) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kaireon.decision_flows SET draft_config = doc WHERE tenant_id = 'fg' AND key = 'x';
    PERFORM kaireon.publish_decision_flow('fg', 'x');
    RETURN pg_temp.picks('x', context, channel, placement);
END
$$;
-- one node inserted between two of the linear graph (after: the node it follows)
CREATE FUNCTION pg_temp.insert(node jsonb, after text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('version', 2,
        'nodes', (SELECT jsonb_agg(n) FROM jsonb_array_elements(g -> 'nodes') n) || jsonb_build_array(node),
        'edges', (SELECT jsonb_agg(CASE WHEN e ->> 'from' = after THEN jsonb_build_object('from', after, 'to', node ->> 'id') ELSE e END)
                    FROM jsonb_array_elements(g -> 'edges') e)
                 || jsonb_build_array(jsonb_build_object('from', node ->> 'id',
                        'to', (SELECT e ->> 'to' FROM jsonb_array_elements(g -> 'edges') e WHERE e ->> 'from' = after))))
      FROM pg_temp.edit() g
$$;
SELECT 'baseline' AS node, pg_temp.run(pg_temp.linear()) AS picks;
-- inventory: the listed categories / offers only
SELECT 'inventory' AS node, pg_temp.run(pg_temp.linear('{"categories": ["loans"]}')) AS picks;
-- match_creatives: strict matching for the hero placement leaves gold's hero creative only
SELECT 'match_creatives fallback' AS node, pg_temp.run(pg_temp.linear(), placement => 'hero') AS picks;
SELECT 'match_creatives strict' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "creatives", "type": "match_creatives", "config": {"placementMatchMode": "strict"}}]'), placement => 'hero') AS picks;
-- without a match_creatives node the creatives are matched when ranking, by the fallback mode
SELECT 'no match_creatives' AS node,
       pg_temp.run(pg_temp.edit(edges => '[{"from": "inv", "to": "qualify"}, {"from": "qualify", "to": "policies"},
      {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"},
      {"from": "rank", "to": "answer"}]', drop_node => 'creatives'), placement => 'side') AS picks;
-- qualify: with no rules listed the under-age customer gets the loans too; the guardrail can be left out
SELECT 'qualify all' AS node, pg_temp.run(pg_temp.linear(), '{"age": 12}') AS picks;
SELECT 'qualify none' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "qualify", "type": "qualify", "config": {"rules": [], "guardrails": false}}]'), '{"age": 12}') AS picks;
SELECT 'qualify q-income' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "qualify", "type": "qualify", "config": {"rules": ["q-income"]}}]'), '{"age": 12}') AS picks;
-- two qualify nodes with different rules: the second one's rule holds the loans (loan and
-- auto qualify alike: one qualification class) whatever the first one did for them
SELECT 'qualify none, then q-adult' AS node,
       pg_temp.run(jsonb_set(pg_temp.insert('{"id": "q2", "type": "qualify", "config": {"rules": ["q-adult"], "guardrails": false}}', 'qualify'),
                             '{nodes,2,config}', '{"rules": []}'), '{"age": 12}') AS picks;
-- a match rule run by two qualify nodes is listed (and its factor applied) each time: the
-- list of the rules that held outgrows the room for the rules bound to the offer (two here)
-- and moves, each candidate keeping its own
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, config) VALUES
    ('fg', 'm-a', 'Match A', 'attribute_condition', 'match', 'global', '{"attribute": "age", "operator": "gte", "value": 18}'),
    ('fg', 'm-b', 'Match B', 'attribute_condition', 'match', 'global', '{"attribute": "age", "operator": "lt", "value": 99}');
SELECT 'qualify m-a, then m-a and m-b' AS node,
       pg_temp.run(jsonb_set(pg_temp.insert('{"id": "q2", "type": "qualify", "config": {"rules": ["m-a", "m-b"], "guardrails": false}}', 'qualify'),
                             '{nodes,2,config}', '{"rules": ["m-a"]}')) AS picks;
SELECT r.offer_id, r.explanation -> 'matchRules' AS match_rules
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', NULL, 'x', '{"dry_run": true}') r ORDER BY r.offer_id;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'fg' AND id IN ('m-a', 'm-b');
-- contact_policy: with no policy named (or the caps only), auto is no longer held back by the time windows
SELECT 'contact_policy none' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "policies", "type": "contact_policy", "config": {"policies": []}}]')) AS picks;
SELECT 'contact_policy p-am, p-pm' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "policies", "type": "contact_policy", "config": {"policies": ["p-am", "p-pm"], "caps": false}}]')) AS picks;
-- filter: offer fields with AND / OR, regex, is_null, customer and candidate fields
SELECT 'filter value and tier' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"field": "offer.value", "op": "gte", "value": 100},
                                                              {"field": "offer.tier", "op": "eq", "value": "gold"}]}}', 'creatives')) AS picks;
SELECT 'filter or' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"logic": "or", "conditions": [{"field": "offer.id", "op": "eq", "value": "loan"},
                                                              {"field": "offer.tier", "op": "eq", "value": "silver"}]}}', 'creatives')) AS picks;
SELECT 'filter regex' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"field": "offer.name", "op": "regex", "value": "^(Gold|Auto) "}]}}', 'creatives')) AS picks;
-- a regex that compiles but cannot run on a value is an error naming it (2201B), not "no
-- match": 2000 nested lookaheads (as "^Gold") run at the default max_stack_depth (2MB: some
-- 6000 run, 9000 do not compile); with the stack limited to 200kB (some 500 run), the
-- configuration compiled at the default and kept, pg_regexec fails (REG_ETOOBIG), which
-- the filter used to read as "does not hold", dropping every offer
SELECT 'filter deep regex' AS node, pg_temp.run(pg_temp.insert(jsonb_build_object('id', 'f', 'type', 'filter', 'config',
    jsonb_build_object('conditions', jsonb_build_array(jsonb_build_object('field', 'offer.name', 'op', 'regex',
        'value', '^' || repeat('(?=', 2000) || 'Gold' || repeat(')', 2000))))), 'creatives')) AS picks;
SET max_stack_depth = '200kB';
SELECT pg_temp.picks('x') AS picks;
RESET max_stack_depth;
SELECT 'filter is_null' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"field": "offer.tier", "op": "is_null"}]}}', 'creatives')) AS picks;
SELECT 'filter is_not_null' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"field": "offer.tier", "op": "is_not_null"}]}}', 'creatives')) AS picks;
SELECT 'filter customer' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"any": [{"field": "customer.vip", "op": "eq", "value": true},
                                                                       {"field": "offer.category_id", "op": "eq", "value": "loans"}]}]}}', 'creatives'),
    '{"age": 30, "vip": false}') AS picks;
SELECT 'filter candidate.score' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "f", "type": "filter", "config": {"conditions": [{"field": "candidate.score", "op": "gt", "value": 0.5}]}}', 'score')) AS picks;
-- debug names the filter node that dropped a candidate
UPDATE kaireon.decision_flows SET draft_config = pg_temp.insert(
    '{"id": "only-gold", "type": "filter", "config": {"conditions": [{"field": "offer.tier", "op": "eq", "value": "gold"}]}}', 'creatives')
 WHERE tenant_id = 'fg' AND key = 'x';
SELECT kaireon.publish_decision_flow('fg', 'x') > 0 AS published;
SELECT r.offer_id, r.explanation ->> 'droppedAt' AS stage, r.explanation ->> 'reason' AS reason
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', NULL, 'x', '{"dry_run": true, "debug": true}') r
 WHERE r.rank IS NULL AND r.explanation ->> 'droppedAt' = 'filter' ORDER BY r.offer_id;
-- conditional: by channel, by attribute, by segment (unknown segment: never holds)
CREATE FUNCTION pg_temp.branching(cond jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pg_temp.edit(jsonb_build_array(jsonb_build_object('id', 'which', 'type', 'conditional', 'config', cond),
            '{"id": "loans-only", "type": "inventory", "config": {"categories": ["loans"]}}'::jsonb),
        '[{"from": "inv", "to": "which"}, {"from": "which", "to": "loans-only", "branch": "b"}, {"from": "which", "to": "creatives", "branch": "default"},
          {"from": "loans-only", "to": "creatives"}, {"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "policies"},
          {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"},
          {"from": "rank", "to": "answer"}]')
$$;
SELECT 'conditional channel' AS node,
       pg_temp.run(pg_temp.branching('{"by": "channel", "branches": [{"name": "b", "channels": ["app"]}]}'), channel => 'app') AS app,
       pg_temp.picks('x', channel => 'web') AS web;
SELECT 'conditional attribute' AS node,
       pg_temp.run(pg_temp.branching('{"by": "attribute", "branches": [{"name": "b", "when": {"field": "customer.segment", "op": "eq", "value": "borrower"}}]}'),
                   '{"age": 30, "segment": "borrower"}') AS borrower,
       pg_temp.picks('x', '{"age": 30, "segment": "saver"}') AS saver;
SELECT r.explanation -> 'path' AS path
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30, "segment": "borrower"}', 1, 'x', '{"dry_run": true}') r;
SELECT 'conditional segment' AS node,
       pg_temp.run(pg_temp.branching('{"by": "segment", "branches": [{"name": "b", "segment": "no-such-segment"}]}')) AS picks;
-- score: formula instead of priority_weighted reorders
SELECT 'score formula' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "score", "type": "score", "config": {"method": "formula", "weights": {"propensity": 0, "relevance": 0, "impact": 1, "emphasis": 0}}}]')) AS picks;
-- optimize without prices (no dual prices here: the same answer)
SELECT 'optimize, no prices' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "arbitrate", "type": "optimize", "config": {"prices": false}}]')) AS picks;
-- (the optimize node's case with prices is in arbitration_realtime) rank: by an offer field
-- instead of the score, descending or ascending (the response selects in its order; the
-- mandatory notice still first); an unknown key refused naming the node
SELECT 'rank by value' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "rank", "type": "rank", "config": {"by": "value"}}]')) AS picks;
SELECT 'rank by value, ascending' AS node,
       pg_temp.run(pg_temp.edit('[{"id": "rank", "type": "rank", "config": {"by": "value", "order": "asc"}}]')) AS picks;
SELECT pg_temp.try(pg_temp.edit('[{"id": "rank", "type": "rank", "config": {"by": "colour"}}]')) AS bad_rank_by;
-- compute: the score from offer fields; a computed field filtered on and shown by the response
SELECT 'compute score' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "c", "type": "compute", "config": {"name": "score", "expression": {"op": "*", "args": ["offer.margin", 2]}}}', 'score')) AS picks;
-- compute: a field that is not a finite number ("Infinity", "-inf", "NaN", "1e400": strtod reads
-- them) counts as missing, as an arithmetic result out of range does: the score is left as it was
-- (as with null), never Infinity; "2.5" is read
SELECT 'compute score from request' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "c", "type": "compute", "config": {"name": "score", "expression": "request.boost"}}', 'score')) AS picks;
SELECT b.boost, string_agg(r.offer_id || '=' || round(r.score::numeric, 4), ' ' ORDER BY r.rank) AS scores
  FROM (VALUES ('"2.5"'), ('"Infinity"'), ('"-inf"'), ('"NaN"'), ('"1e400"'), ('null')) b(boost),
       kaireon.recommend('fg', 'c1', 'web', NULL, jsonb_build_object('age', 30, 'boost', b.boost::jsonb), NULL, 'x',
                         '{"dry_run": true}') r
 GROUP BY b.boost ORDER BY b.boost;
SELECT 'compute field' AS node, pg_temp.run(pg_temp.edit(
    '[{"id": "c", "type": "compute", "config": {"name": "ratio", "expression": {"op": "/", "args": ["offer.margin", "offer.value"]}}},
      {"id": "f", "type": "filter", "config": {"conditions": [{"field": "candidate.ratio", "op": "gte", "value": 0.1}]}},
      {"id": "answer", "type": "response", "config": {"fields": ["ratio"]}}]',
    '[{"from": "inv", "to": "c"}, {"from": "c", "to": "f"}, {"from": "f", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS picks;
SELECT r.offer_id, r.explanation -> 'fields' AS fields
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', NULL, 'x', '{"dry_run": true}') r ORDER BY r.rank;
-- set_properties: on each decision of the placement
SELECT 'set_properties' AS node, pg_temp.run(pg_temp.insert(
    '{"id": "props", "type": "set_properties", "config": {"properties": {"banner": "spring", "ttl": 60}}}', 'rank')) AS picks;
SELECT r.offer_id, r.explanation -> 'properties' AS properties
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', NULL, 'x', '{"dry_run": true}') r ORDER BY r.rank;
-- response: maxOffers 1 (a request's limit still wins)
SELECT 'response maxOffers 1' AS node, pg_temp.run(pg_temp.linear(response => '{"maxOffers": 1}')) AS picks,
       (SELECT count(*) FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 2, 'x', '{"dry_run": true}')) AS with_limit_2;

-- enrich: another customer data schema's row as customer.<as> (z_scores; a_profile, first by
-- name, stays the customer schema the flows read)
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES
    ('fg', 'a_profile', 'a_profile', 'customer'), ('fg', 'z_scores', 'z_scores', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('fg', 'a_profile', 'customer_id', 'text', false, true, 1),
    ('fg', 'z_scores', 'customer_id', 'text', false, true, 1), ('fg', 'z_scores', 'risk', 'integer', true, false, 2);
SELECT kaireon.publish_data_schema('fg', 'a_profile') IS NOT NULL AS a, kaireon.publish_data_schema('fg', 'z_scores') IS NOT NULL AS z;
INSERT INTO kaireon_t_fg.ds_z_scores (customer_id, risk) VALUES ('c1', 9), ('c2', 1);
SELECT 'enrich' AS node, pg_temp.run(pg_temp.edit(
    '[{"id": "more", "type": "enrich", "config": {"schema": "z_scores", "as": "scores"}},
      {"id": "f", "type": "filter", "config": {"logic": "or", "conditions": [{"field": "offer.category_id", "op": "eq", "value": "cards"},
                                                                           {"field": "customer.scores.risk", "op": "lt", "value": 5}]}}]',
    '[{"from": "inv", "to": "more"}, {"from": "more", "to": "f"}, {"from": "f", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
      {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"}, {"from": "score", "to": "arbitrate"},
      {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS risky_c1,
       pg_temp.picks('x', customer => 'c2') AS safe_c2, pg_temp.picks('x', customer => 'c3') AS unknown_c3;
-- a rule on the enriched row evaluated before the enrich node (missing: it passes) is
-- evaluated again after it: c1's risk 9 holds back the cards there, c2's risk 1 does not
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('fg', 'q-risk', 'Low risk for cards', 'attribute_condition', 'eligibility', 'category', 'cards',
     '{"attribute": "scores.risk", "operator": "lt", "value": 5}');
SELECT 'qualify, enrich, qualify' AS node, pg_temp.run(pg_temp.edit(
    '[{"id": "more", "type": "enrich", "config": {"schema": "z_scores", "as": "scores"}},
      {"id": "again", "type": "qualify", "config": {"rules": ["q-risk"], "guardrails": false}}]',
    '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "qualify"}, {"from": "qualify", "to": "more"},
      {"from": "more", "to": "again"}, {"from": "again", "to": "policies"}, {"from": "policies", "to": "score"},
      {"from": "score", "to": "arbitrate"}, {"from": "arbitrate", "to": "rank"}, {"from": "rank", "to": "answer"}]')) AS risky_c1,
       pg_temp.picks('x', customer => 'c2') AS safe_c2;
DELETE FROM kaireon.qualification_rules WHERE tenant_id = 'fg' AND id = 'q-risk';

-- ---------------------------------------------------------------- group: an optimal joint assignment
-- hero and side take one offer each; pa (score 0.95) has a creative for both, pb (0.9) for the
-- hero only (strict matching).  Best-first (a response per placement, deduplicated) gives the
-- hero pa and leaves the side empty: total 0.95.  The group node gives the hero pb and the side
-- pa: total 1.85, the optimum.
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, weight) VALUES
    ('fg', 'pa', 'Placed A', 'active', 95, 100), ('fg', 'pb', 'Placed B', 'active', 90, 100);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name) VALUES
    ('fg', 'pa-hero', 'pa', 'web', 'hero', 'a hero'), ('fg', 'pa-side', 'pa', 'web', 'side', 'a side'),
    ('fg', 'pb-hero', 'pb', 'web', 'hero', 'b hero');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('fg', 'f-greedy', 'greedy', 'Best first', pg_temp.edit('[{"id": "creatives", "type": "match_creatives", "config": {"placementMatchMode": "strict"}}]')),
    ('fg', 'f-joint', 'joint', 'Joint', pg_temp.edit('[{"id": "creatives", "type": "match_creatives", "config": {"placementMatchMode": "strict"}},
        {"id": "answer", "type": "group", "config": {"placements": ["hero", "side"]}}]'));
SELECT kaireon.publish_decision_flow('fg', 'greedy') AS greedy, kaireon.publish_decision_flow('fg', 'joint') AS joint;
CREATE FUNCTION pg_temp.placed(flow text) RETURNS TABLE (placements text, total numeric) LANGUAGE sql AS $$
    SELECT string_agg(r.placement_id || ':' || r.offer_id || '/' || r.creative_id, ' ' ORDER BY r.placement_id, r.rank),
           round(sum(r.score)::numeric, 4)
      FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 1, flow,
                             '{"dry_run": true, "placements": ["hero", "side"], "deduplicate": true}') r
     WHERE r.rank IS NOT NULL
$$;
SELECT 'best first' AS how, * FROM pg_temp.placed('greedy')
UNION ALL SELECT 'group', * FROM pg_temp.placed('joint');
-- the group's funnel names its placements; with two slots each the hero gets pb and gold, the
-- side pa (only pa has a side creative), each offer once
SELECT kaireon.recommend_json('{"tenantId": "fg", "customerId": "c1", "channel": "web", "decisionFlowKey": "joint", "context": {"age": 30},
                                "placements": [{"placementId": "hero", "limit": 2}, {"placementId": "side", "limit": 2}],
                                "dryRun": true, "debug": true}'::jsonb) -> 'debug' -> 'funnel' -> 0 -> 'group' AS group_placements;
SELECT r.placement_id, r.rank, r.offer_id, r.creative_id
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 2, 'joint', '{"dry_run": true, "placements": ["hero", "side"]}') r
 WHERE r.rank IS NOT NULL ORDER BY r.placement_id, r.rank;


-- ---------------------------------------------------------------- extension_point
-- the tenant's function, run confined: as kaireon_confined (must is dropped only when so), seeing
-- its tenant's rows only (gold's new score is the count of offers it sees: fg's 7); loan, pa
-- and pb dropped, miles re-scored
CREATE FUNCTION public.fg_rescore(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('loan', NULL, 'pa', NULL, 'pb', NULL, 'miles', 5,
                              'gold', (SELECT count(*) FROM kaireon.offers),
                              'must', CASE WHEN current_user::text = 'kaireon_confined' THEN NULL ELSE 100 END,
                              'unknown-offer', 1)
$$;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('fg-other', 'Other', 'fg_other');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('fg-other', 'theirs', 'Theirs', 'active');
SELECT count(*) AS fg_offers, (SELECT count(*) FROM kaireon.offers) > count(*) AS others_exist FROM kaireon.offers WHERE tenant_id = 'fg';
SELECT 'extension_point' AS node,
       pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_rescore"}}', 'score')) AS picks;
SELECT r.offer_id, r.score, r.explanation ->> 'droppedAt' AS stage, r.explanation ->> 'reason' AS reason
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', NULL, 'x', '{"dry_run": true, "debug": true}') r
 WHERE r.rank IS NOT NULL OR r.explanation ->> 'droppedAt' = 'extension_point' ORDER BY r.rank, r.offer_id;
-- its time budget: over it, 57014
CREATE FUNCTION public.fg_slow(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('slept', pg_sleep(0.5))
$$;
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_slow", "timeoutMs": 50}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a SECURITY DEFINER function (42501), a missing one (42883), a bad answer (22023)
CREATE FUNCTION public.fg_definer(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE sql SECURITY DEFINER AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION public.fg_bad(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"gold": "high"}'::jsonb $$;
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_definer"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_nope"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_bad"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.try(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.f; drop table x"}}', 'score')) AS bad_name;
-- no advisory lock while confined (42501, naming the function): taking one at session level (it
-- would outlive the call in the caller's session: kaireon's jobs lock (n, 0) so), at transaction
-- level in a PL/pgSQL assignment, or releasing the caller's; the caller's own lock is still held
-- after, and nothing is left behind; outside the confinement the functions work as ever
CREATE FUNCTION public.fg_lock(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('locked', pg_advisory_lock(4242, 0))
$$;
CREATE FUNCTION public.fg_xact_lock(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE got boolean;
BEGIN
    got := pg_try_advisory_xact_lock(4242);
    RETURN '{}';
END $$;
CREATE FUNCTION public.fg_unlock_all(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_unlock_all();
    RETURN '{}';
END $$;
SELECT pg_advisory_lock(4243) AS callers_lock;
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_lock"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_xact_lock"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_unlock_all"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1, 2, 3;
SELECT public.fg_lock('{}', '[]') AS unconfined, pg_advisory_unlock(4242, 0) AS released, pg_advisory_unlock(4243) AS callers_released;
-- a lock function prepared before the confinement is not refused when it runs (PL/pgSQL keeps a
-- simple expression prepared for its transaction: here the caller ran the tenant's function first,
-- and its own search_path keeps the plan valid): the advisory locks compared before and after
-- the confined call catch it (42501) and release the session lock it took, also when the
-- function fails after taking it (its own error is reported)
CREATE FUNCTION public.fg_prime(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE got boolean;
BEGIN
    got := CASE WHEN current_user = 'kaireon_confined' THEN pg_try_advisory_lock(4250) ELSE false END;
    RETURN '{}';
END $$;
CREATE FUNCTION public.fg_prime_fail(req jsonb, cands jsonb) RETURNS jsonb LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE got boolean;
BEGIN
    got := CASE WHEN current_user = 'kaireon_confined' THEN pg_try_advisory_lock(4251) ELSE false END;
    IF got THEN
        RAISE EXCEPTION 'failing after the lock';
    END IF;
    RETURN '{}';
END $$;
SELECT pg_advisory_lock(4243) AS callers_lock;
BEGIN;
SELECT public.fg_prime('{}', '[]') AS unconfined_first;
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_prime"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1, 2, 3;
BEGIN;
SELECT public.fg_prime_fail('{}', '[]') AS unconfined_first;
SELECT pg_temp.run(pg_temp.insert('{"id": "ext", "type": "extension_point", "config": {"function": "public.fg_prime_fail"}}', 'score'));
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT classid, objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() ORDER BY 1, 2, 3;
SELECT pg_advisory_unlock(4243) AS callers_released;
-- a name that is not exactly schema.name: refused when written (else it failed only when run,
-- 42602 or 0A000, and an unqualified name or pg_temp resolved in each caller's own search_path)
SELECT pg_temp.try(pg_temp.insert(jsonb_build_object('id', 'ext', 'type', 'extension_point', 'config', jsonb_build_object('function', f)), 'score')) AS bad_name
  FROM unnest(ARRAY['fg_rescore', 'a.b.c', '.', 'public.', '.fg_rescore', 'pg_temp.fg_rescore', 'PG_TEMP.f']) f;
-- a group node fills only the listed placements its own flow serves: side routed to a flow
-- whose control group holds everyone is left to that flow (held out), not filled by joint
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('fg', 'f-held', 'held', 'Held out', '{"controlGroupPercent": 100}');
SELECT kaireon.publish_decision_flow('fg', 'held') AS held;
INSERT INTO kaireon.flow_routes (tenant_id, id, channel_id, placement_id, decision_flow_id) VALUES
    ('fg', 'r-hero', 'web', 'hero', 'f-joint'), ('fg', 'r-side', 'web', 'side', 'f-held');
SELECT r.placement_id, r.rank, r.offer_id, r.explanation ->> 'controlGroup' AS control
  FROM kaireon.recommend('fg', 'c1', 'web', NULL, '{"age": 30}', 1, NULL, '{"dry_run": true, "placements": ["hero", "side"]}') r
 ORDER BY r.placement_id, r.rank;
DELETE FROM kaireon.flow_routes WHERE tenant_id = 'fg';
