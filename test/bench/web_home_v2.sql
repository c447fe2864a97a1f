-- test/bench/web_home_v2.sql: the benchmark tenant's route flow web-home republished as the
-- version 2 graph of the fixed pipeline's steps (docs/flows.md), the same decisions as its
-- version 1 configuration. Used by test/bench/callgrind.sh (KAIREON_CALLGRIND_GRAPH=v2) and
-- test/t/062_flow_graph_equivalence.pl, after test/bench/gen_data.sql.
\set ON_ERROR_STOP 1
UPDATE kaireon.decision_flows SET draft_config = '{"version": 2,
    "nodes": [{"id": "inventory", "type": "inventory"}, {"id": "creatives", "type": "match_creatives"},
              {"id": "qualify", "type": "qualify"}, {"id": "policies", "type": "contact_policy"},
              {"id": "score", "type": "score", "config": {"method": "priority_weighted"}},
              {"id": "optimize", "type": "optimize"}, {"id": "rank", "type": "rank"},
              {"id": "response", "type": "response", "config": {"maxOffers": 3}}],
    "edges": [{"from": "inventory", "to": "creatives"}, {"from": "creatives", "to": "qualify"},
              {"from": "qualify", "to": "policies"}, {"from": "policies", "to": "score"},
              {"from": "score", "to": "optimize"}, {"from": "optimize", "to": "rank"},
              {"from": "rank", "to": "response"}]}'
 WHERE tenant_id = 'bench' AND key = 'web-home';
SELECT kaireon.publish_decision_flow('bench', 'web-home');
