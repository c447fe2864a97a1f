-- Flow A/B tests, a flow's control answer and campaigns' control rows (docs/lift.md):
-- write-time checks of a flow experiment, the decision run by the customer's arm (sticky,
-- recorded once in variant_assignments, not by a dry run, the split over many ids), the
-- control answer of a flow's control group, and the 'control' rows of a batch campaign.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('fx', 'Flow tests', 'fx', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('fx', 'web', 'Web', 'web');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES ('fx', 'hero', 'web', 'Hero', 1);
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('fx', 'o1', 'One', 'active', 90), ('fx', 'o2', 'Two', 'active', 80), ('fx', 'o3', 'Three', 'active', 70),
    ('fx', 'o4', 'Four', 'paused', 60);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
SELECT 'fx', o || '-web', o, 'web', o || ' web' FROM unnest(ARRAY['o1', 'o2', 'o3', 'o4']) o;
-- main (the default) names the experiment ab and offers o1; alt offers o2; draft is never published
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('fx', 'f-main', 'main', 'Main', true, '{"maxOffers": 1, "inventory": {"offers": ["o1"]}, "flowExperiment": "ab"}'),
    ('fx', 'f-alt', 'alt', 'Alt', false, '{"maxOffers": 1, "inventory": {"offers": ["o2"]}}'),
    ('fx', 'f-draft', 'draft', 'Draft', false, '{}');
SELECT kaireon.publish_decision_flow('fx', 'main') AS main, kaireon.publish_decision_flow('fx', 'alt') AS alt;

-- ---------------------------------------------------------------- write-time checks
-- flowExperiment is a key (a string)
UPDATE kaireon.decision_flows SET draft_config = '{"flowExperiment": 5}' WHERE tenant_id = 'fx' AND key = 'draft';
-- an arm naming an unpublished flow (55000), an unknown one (42704), bad weights and shapes (22023)
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": 50, "draft": 50}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": 50, "nope": 50}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": -1, "alt": 50}}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": 0, "alt": 0}}');
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": ["main", "alt"]}');
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": 50}, "other": 1}');
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split, holdout_percent) VALUES
    ('fx', 'ab', 'A/B', 'running', '{"flows": {"main": 50, "alt": 50}}', 10);
SELECT count(*) AS experiments_written FROM kaireon.experiments WHERE tenant_id = 'fx';

-- ---------------------------------------------------------------- before the experiment runs
-- no experiment ab yet: main decides itself; nothing assigned
SELECT offer_id, explanation ? 'flowExperiment' AS arm_noted FROM kaireon.recommend('fx', 'early', 'web');
INSERT INTO kaireon.experiments (tenant_id, key, name, status, traffic_split) VALUES
    ('fx', 'ab', 'A/B', 'draft', '{"flows": {"main": 50, "alt": 50}}');
-- a draft experiment assigns nobody
SELECT offer_id FROM kaireon.recommend('fx', 'early', 'web');
SELECT count(*) AS assignments FROM kaireon.variant_assignments WHERE tenant_id = 'fx';

-- ---------------------------------------------------------------- running
UPDATE kaireon.experiments SET status = 'running', started_at = now() WHERE tenant_id = 'fx' AND key = 'ab';
-- two customers, one in each arm (their buckets, by kaireon.assign_variant's rule: the arms
-- by key, alt first: below 50 alt, the rest main)
CREATE TEMP TABLE who AS
SELECT (SELECT 'cust-' || g FROM generate_series(1, 100) g WHERE kaireon.experiment_bucket('ab', 'cust-' || g) >= 50 ORDER BY g LIMIT 1) AS in_main,
       (SELECT 'cust-' || g FROM generate_series(1, 100) g WHERE kaireon.experiment_bucket('ab', 'cust-' || g) < 50 ORDER BY g LIMIT 1) AS in_alt;
SELECT in_main, in_alt FROM who;
-- the answer says which arm, and the arm's flow decided (o1 from main, o2 from alt)
SELECT r -> 'flowExperiments' AS arms, r -> 'decisions' -> 0 ->> 'offerId' AS offer,
       r -> 'decisions' -> 0 -> 'explanation' -> 'flowExperiment' AS explained
  FROM who, LATERAL (SELECT kaireon.recommend_json(jsonb_build_object('tenantId', 'fx', 'customerId', who.in_main,
                                                                      'channel', 'web'))) AS x (r);
SELECT r -> 'flowExperiments' AS arms, r -> 'decisions' -> 0 ->> 'offerId' AS offer
  FROM who, LATERAL (SELECT kaireon.recommend_json(jsonb_build_object('tenantId', 'fx', 'customerId', who.in_alt,
                                                                      'channel', 'web'))) AS x (r);
-- recorded: one assignment each; the decision's row names the arm's flow
SELECT a.customer_id = who.in_main AS is_main_customer, a.experiment_key, a.variant_name, a.expires_at
  FROM kaireon.variant_assignments a, who WHERE a.tenant_id = 'fx' ORDER BY a.variant_name;
SELECT h.offer_id, h.decision_flow_id FROM kaireon.interaction_history h, who
 WHERE h.tenant_id = 'fx' AND h.customer_id IN (who.in_main, who.in_alt) ORDER BY h.offer_id;
-- the arm in debug output (the placement's funnel) and in a decision trace
SELECT r -> 'debug' -> 'funnel' -> 0 -> 'flowExperiment' AS funnel_arm
  FROM who, LATERAL (SELECT kaireon.recommend_json(jsonb_build_object('tenantId', 'fx', 'customerId', who.in_main,
                                                                      'channel', 'web', 'debug', true, 'trace', true))) AS x (r);
SELECT DISTINCT jsonb_path_query_array(to_jsonb(t), '$.**.flowExperiment') AS traced_arm
  FROM kaireon.decision_traces t, who WHERE t.tenant_id = 'fx' AND t.customer_id = who.in_main;
-- sticky: the weights change to all alt; assigned customers keep their arm (one row each,
-- not rewritten), a new customer goes to alt
UPDATE kaireon.experiments SET traffic_split = '{"flows": {"main": 0, "alt": 100}}' WHERE tenant_id = 'fx' AND key = 'ab';
SELECT (SELECT offer_id FROM kaireon.recommend('fx', who.in_main, 'web')) AS main_customer,
       (SELECT offer_id FROM kaireon.recommend('fx', who.in_main, 'web', options => '{"dry_run": true}')) AS dry_run,
       (SELECT offer_id FROM kaireon.recommend('fx', who.in_alt, 'web')) AS alt_customer,
       (SELECT offer_id FROM kaireon.recommend('fx', 'newcomer', 'web')) AS newcomer
  FROM who;
SELECT count(*) AS assignments, count(DISTINCT customer_id) AS customers FROM kaireon.variant_assignments WHERE tenant_id = 'fx';
-- a dry run assigns without recording: its arm is the one the first recorded decision stores
SELECT kaireon.recommend_json('{"tenantId": "fx", "customerId": "dry", "channel": "web", "dryRun": true}') -> 'flowExperiments' AS dry_arms;
SELECT count(*) AS dry_assignments FROM kaireon.variant_assignments WHERE tenant_id = 'fx' AND customer_id = 'dry';
SELECT offer_id FROM kaireon.recommend('fx', 'dry', 'web');
SELECT variant_name FROM kaireon.variant_assignments WHERE tenant_id = 'fx' AND customer_id = 'dry';
-- an experiment paused: the flow naming it decides itself, for assigned customers too
UPDATE kaireon.experiments SET status = 'paused' WHERE tenant_id = 'fx' AND key = 'ab';
SELECT offer_id, explanation ? 'flowExperiment' AS arm_noted FROM kaireon.recommend('fx', 'newcomer', 'web');
-- a stored arm that is no longer a runnable flow: main decides (the answer still names the arm)
UPDATE kaireon.experiments SET status = 'running' WHERE tenant_id = 'fx' AND key = 'ab';
UPDATE kaireon.decision_flows SET status = 'paused' WHERE tenant_id = 'fx' AND key = 'alt';
SELECT r -> 'flowExperiments' AS arms, r -> 'decisions' -> 0 ->> 'offerId' AS offer
  FROM kaireon.recommend_json('{"tenantId": "fx", "customerId": "newcomer", "channel": "web"}') AS r;
-- and an experiment cannot be written (or started) with an arm that is not published
UPDATE kaireon.experiments SET status = 'running', traffic_split = '{"flows": {"main": 1, "alt": 1}}'
 WHERE tenant_id = 'fx' AND key = 'ab';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET status = 'published' WHERE tenant_id = 'fx' AND key = 'alt';

-- ---------------------------------------------------------------- the split over many ids
-- 30% main, 70% alt for 2000 new customers, by recorded decisions: every customer's arm is
-- the one its bucket gives (kaireon.assign_variant's rule: bucket * total / 100 against the
-- weights cumulated by key, alt first), and the share of main is within 2.5 points of 30
UPDATE kaireon.experiments SET traffic_split = '{"flows": {"main": 30, "alt": 70}}' WHERE tenant_id = 'fx' AND key = 'ab';
SELECT count(*) AS decided FROM generate_series(1, 2000) g, kaireon.recommend('fx', 'split-' || g, 'web') r;
SELECT count(*) AS assigned,
       count(*) FILTER (WHERE a.variant_name <> CASE WHEN kaireon.experiment_bucket('ab', a.customer_id) < 70
                                                     THEN 'alt' ELSE 'main' END) AS differ,
       abs(100.0 * count(*) FILTER (WHERE a.variant_name = 'main') / count(*) - 30) < 2.5 AS within,
       count(*) FILTER (WHERE h.offer_id <> CASE a.variant_name WHEN 'main' THEN 'o1' ELSE 'o2' END) AS wrong_flow
  FROM kaireon.variant_assignments a
  JOIN kaireon.interaction_history h ON h.tenant_id = a.tenant_id AND h.customer_id = a.customer_id
 WHERE a.tenant_id = 'fx' AND a.customer_id LIKE 'split-%';

-- a campaign through the test decides each customer by its stored arm (a dry run: nothing
-- more assigned) and labels each decision with the flow that made it
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('fx', 'r', 'Run', 'f-main', '["web"]', 'SELECT ''split-'' || g FROM generate_series(1, 40) g', 1, 'active');
SELECT status, total_customers FROM kaireon.run_campaign('fx', 'r');
SELECT count(*) AS decisions, count(DISTINCT d.decision_flow_id) AS flows,
       count(*) FILTER (WHERE d.decision_flow_id <> CASE a.variant_name WHEN 'main' THEN 'f-main' ELSE 'f-alt' END
                           OR d.offer_id <> CASE a.variant_name WHEN 'main' THEN 'o1' ELSE 'o2' END) AS wrong_flow
  FROM kaireon.campaign_decisions d
  JOIN kaireon.variant_assignments a ON a.tenant_id = d.tenant_id AND a.customer_id = d.customer_id
 WHERE d.tenant_id = 'fx';
SELECT count(*) AS assignments FROM kaireon.variant_assignments WHERE tenant_id = 'fx';

-- one rule (kaireon_internal._split_weights and _split_arm, src/scoring/experiment.c): for
-- 300 new customers, the arm a dry run of the flow A/B test computes (storing nothing) is the
-- variant kaireon.assign_variant gives them under the same key and weights; arms are ordered
-- by name in C collation whatever the database's (B before a)
SELECT count(*) AS customers, count(*) FILTER (WHERE s.arm = 'main') AS main,
       count(*) FILTER (WHERE s.arm IS DISTINCT FROM kaireon.assign_variant('fx', 'ab', s.c, '{"main": 30, "alt": 70}')) AS differ
  FROM (SELECT 'one-' || g AS c,
               kaireon.recommend_json(jsonb_build_object('tenantId', 'fx', 'customerId', 'one-' || g, 'channel', 'web', 'dryRun', true))
                   -> 'flowExperiments' -> 0 ->> 'arm' AS arm
          FROM generate_series(1, 300) g) s;
SELECT * FROM kaireon_internal._split_weights('e', '{"b": 1, "a": 0, "B": 2.5}');
SELECT kaireon_internal._split_arm('e', c, ARRAY[2.5, 0, 1]) AS arm, kaireon.experiment_bucket('e', c) AS bucket
  FROM unnest(ARRAY['c1', 'c2', 'c3', 'c4']) c ORDER BY bucket;
-- weights that are not a split (22023): NaN, negative, null, none, all 0
SELECT kaireon_internal._split_arm('e', 'c1', ARRAY[1, 'NaN'::float8]);
SELECT kaireon_internal._split_arm('e', 'c1', ARRAY[1, -1]);
SELECT kaireon_internal._split_arm('e', 'c1', ARRAY[1, NULL]);
SELECT kaireon_internal._split_arm('e', 'c1', '{}');
SELECT kaireon_internal._split_arm('e', 'c1', ARRAY[0, 0]);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- a flow's control answer
-- the flow ctl holds every customer in its control group (100%) and answers o3 (o4 is paused,
-- nope does not exist: left out); the hero placement has one slot
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('fx', 'f-ctl', 'ctl', 'Control answer', '{"controlGroupPercent": 100, "controlAnswer": ["nope", "o4", "o3", "o2"]}');
SELECT kaireon.publish_decision_flow('fx', 'ctl') AS ctl;
UPDATE kaireon.decision_flows SET draft_config = '{"controlAnswer": "o3"}' WHERE tenant_id = 'fx' AND key = 'ctl';
-- without placement: o3 and o2, ranked, each flagged as the control answer
SELECT rank, offer_id, creative_id, interaction_id IS NOT NULL AS recorded,
       explanation - 'interactionId' AS explanation
  FROM kaireon.recommend('fx', 'ctl-1', 'web', decision_flow => 'ctl');
SELECT interaction_type, offer_id, creative_id, rank, context -> 'controlGroup' AS control_group
  FROM kaireon.interaction_history WHERE tenant_id = 'fx' AND customer_id = 'ctl-1' ORDER BY rank;
-- the hero placement's single slot: o3 only; recommend_json answers no decisions, the
-- control group with its answer
SELECT r -> 'count' AS count, r -> 'controlGroup' AS control_group, r -> 'decisions' AS decisions,
       jsonb_path_query_array(r, '$.controlGroups[*].answer[*].offerId') AS answer,
       r -> 'controlGroups' -> 0 ->> 'placementId' AS placement
  FROM kaireon.recommend_json('{"tenantId": "fx", "customerId": "ctl-2", "channel": "web", "placement": "hero",
                                "decisionFlow": "ctl"}') AS r;
-- a dry run records nothing
SELECT rank, offer_id, interaction_id FROM kaireon.recommend('fx', 'ctl-3', 'web', decision_flow => 'ctl',
                                                             options => '{"dry_run": true}');
SELECT count(*) AS dry_rows FROM kaireon.interaction_history WHERE tenant_id = 'fx' AND customer_id = 'ctl-3';
-- lift counts the answered customers as control
SELECT group_name, customers FROM kaireon.lift('fx', now() - interval '1 hour', now() + interval '1 hour', 'ctl');

-- ---------------------------------------------------------------- campaigns record control rows
-- the tenant's universal control group (30%): a campaign over 40 customers sends nothing to
-- those in it and records a 'control' row for each, as recommend does; a simulation records none
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('fc', 'Campaign control', 'fc', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('fc', 30);
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('fc', 'email', 'E-mail', 'email');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('fc', 'o1', 'One', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('fc', 'o1-email', 'o1', 'email', 'o1 email');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('fc', 'f', 'f', 'F', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('fc', 'f') AS f;
INSERT INTO kaireon.runs (tenant_id, id, name, decision_flow_id, channel_ids, customer_query, max_offers, status) VALUES
    ('fc', 'r', 'Run', 'f', '["email"]', 'SELECT ''c-'' || g FROM generate_series(1, 40) g', 1, 'active');
SELECT status, total_customers FROM kaireon.run_campaign('fc', 'r', true);
SELECT count(*) AS simulated_rows FROM kaireon.interaction_history WHERE tenant_id = 'fc';
SELECT status, total_customers FROM kaireon.run_campaign('fc', 'r');
-- by hand: the customers whose bucket is below 30 get control rows, the others a decision
SELECT count(*) FILTER (WHERE kaireon.control_bucket('fc', 'c-' || g) < 30) AS in_group,
       (SELECT count(*) FROM kaireon.interaction_history h WHERE h.tenant_id = 'fc' AND h.interaction_type = 'control') AS control_rows,
       (SELECT count(*) FROM kaireon.interaction_history h WHERE h.tenant_id = 'fc' AND h.interaction_type = 'control'
           AND kaireon.control_bucket('fc', h.customer_id) >= 30) AS wrong_control,
       (SELECT count(*) FROM kaireon.campaign_decisions d WHERE d.tenant_id = 'fc'
           AND kaireon.control_bucket('fc', d.customer_id) < 30) AS sent_to_control,
       (SELECT count(DISTINCT d.customer_id) FROM kaireon.campaign_decisions d WHERE d.tenant_id = 'fc') AS decided
  FROM generate_series(1, 40) g;
SELECT DISTINCT h.offer_id, h.channel_id, h.decision_flow_id, h.campaign_id, h.context - 'campaignRunId' AS context,
       h.context ? 'campaignRunId' AS has_run
  FROM kaireon.interaction_history h WHERE h.tenant_id = 'fc' AND h.interaction_type = 'control';
SELECT group_name, customers FROM kaireon.lift('fc', now() - interval '1 hour', now() + interval '1 hour');
