-- Control groups, offer holdouts, lift and attribution (docs/lift.md): the sticky assignment
-- over 100k customer ids, the write-time checks of the percentages, recommend for customers
-- in and out of a control group (nothing offered, a 'control' row recorded, dry runs record
-- nothing, control rows are no contact for caps), kaireon.lift and
-- kaireon.attribute_conversions against numbers computed by hand in this file.
\set VERBOSITY terse
SET timezone = 'UTC';

-- ---------------------------------------------------------------- the assignment
-- over 100k ids, the share below p is within 0.5 points of p, for the tenant's group, a
-- flow's and an offer's holdout
SELECT p, scope,
       round(100.0 * count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g, scope) < p) / 100000, 2) AS share,
       abs(100.0 * count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g, scope) < p) / 100000 - p) < 0.5 AS within
  FROM generate_series(1, 100000) AS g, (VALUES (2.5), (10), (50)) AS ps (p), (VALUES (''), ('flow:main'), ('offer:o2')) AS s (scope)
 GROUP BY p, scope ORDER BY p, scope;
-- sticky: a second pass over the same ids puts every one in the same group; and the bucket
-- is the experiments' bucket of the salted key (one assignment scheme)
SELECT count(*) FILTER (WHERE (kaireon.control_bucket('cg', 'cust-' || g) < 10)
                           <> (kaireon.control_bucket('cg', 'cust-' || g) < 10)) AS moved,
       count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g)
                           <> kaireon.experiment_bucket('kaireon-control:cg:', 'cust-' || g)) AS differs
  FROM generate_series(1, 100000) AS g;
-- salted: independent of an experiment's assignment and of the flow's group (each quarter of
-- the 2x2 table within 0.5 points of 25%)
SELECT abs(100.0 * count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g) < 50
                                      AND kaireon.experiment_bucket('exp-1', 'cust-' || g) < 50) / 100000 - 25) < 0.5 AS exp_independent,
       abs(100.0 * count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g) < 50
                                      AND kaireon.control_bucket('cg', 'cust-' || g, 'flow:main') < 50) / 100000 - 25) < 0.5 AS flow_independent,
       abs(100.0 * count(*) FILTER (WHERE kaireon.control_bucket('cg', 'cust-' || g) < 50
                                      AND kaireon.control_bucket('cg2', 'cust-' || g) < 50) / 100000 - 25) < 0.5 AS tenant_independent
  FROM generate_series(1, 100000) AS g;

-- ---------------------------------------------------------------- set-up
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('cg', 'Control', 'cg', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('cg', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('cg', 'o1', 'One', 'active', 90), ('cg', 'o2', 'Two', 'active', 80);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('cg', 'o1-web', 'o1', 'web', 'o1 web'), ('cg', 'o2-web', 'o2', 'web', 'o2 web');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('cg', 'f-main', 'main', 'Main', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('cg', 'main') IS NOT NULL AS published;
-- the customers: the first ids in and out of the tenant's 20% group, in the flow's 30% group
-- (and not the tenant's), and in offer o2's 50% holdout (and no group)
CREATE TEMP TABLE who AS
SELECT (SELECT 'cust-' || g FROM generate_series(1, 1000) g WHERE kaireon.control_bucket('cg', 'cust-' || g) < 20 ORDER BY g LIMIT 1) AS ctl,
       (SELECT 'cust-' || g FROM generate_series(1, 1000) g WHERE kaireon.control_bucket('cg', 'cust-' || g) >= 20
           AND kaireon.control_bucket('cg', 'cust-' || g, 'flow:main') >= 30
           AND kaireon.control_bucket('cg', 'cust-' || g, 'offer:o2') >= 50 ORDER BY g LIMIT 1) AS treated,
       (SELECT 'cust-' || g FROM generate_series(1, 1000) g WHERE kaireon.control_bucket('cg', 'cust-' || g) >= 20
           AND kaireon.control_bucket('cg', 'cust-' || g, 'flow:main') < 30 ORDER BY g LIMIT 1) AS flow_ctl,
       (SELECT 'cust-' || g FROM generate_series(1, 1000) g WHERE kaireon.control_bucket('cg', 'cust-' || g) >= 20
           AND kaireon.control_bucket('cg', 'cust-' || g, 'flow:main') >= 30
           AND kaireon.control_bucket('cg', 'cust-' || g, 'offer:o2') < 50 ORDER BY g LIMIT 1) AS held_out;
SELECT ctl, treated, flow_ctl, held_out FROM who;

-- ---------------------------------------------------------------- write-time checks (22023 naming the value)
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('cg', 101);
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('cg', 'NaN');
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('cg', '-Infinity');
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('cg', -0.5);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.offers SET holdout_percent = 'Infinity' WHERE tenant_id = 'cg' AND id = 'o2';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 2, "controlGroupPercent": 150}' WHERE tenant_id = 'cg' AND key = 'main';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 2, "controlGroupPercent": "5"}' WHERE tenant_id = 'cg' AND key = 'main';
-- nothing was written
SELECT count(*) AS settings_rows FROM kaireon.tenant_settings WHERE tenant_id = 'cg';
SELECT holdout_percent FROM kaireon.offers WHERE tenant_id = 'cg' AND id = 'o2';

-- ---------------------------------------------------------------- the tenant's universal group (20%)
INSERT INTO kaireon.tenant_settings (tenant_id, control_group_percent) VALUES ('cg', 20);
-- in control: one row without rank or offer, flagged, with the recorded row's id
CREATE TEMP TABLE r1 AS SELECT r.* FROM who, kaireon.recommend('cg', who.ctl, 'web') r;
SELECT rank, offer_id, recommendation_id IS NOT NULL AS has_rec, interaction_id IS NOT NULL AS recorded,
       explanation - 'interactionId' AS explanation, explanation ->> 'interactionId' = interaction_id AS same_id FROM r1;
SELECT h.interaction_type, h.offer_id, h.rank, h.decision_flow_id, h.channel_id,
       h.recommendation_id = r1.recommendation_id AS same_rec, h.context -> 'controlGroup' AS control_group
  FROM kaireon.interaction_history h, r1 WHERE h.tenant_id = 'cg' AND h.id = r1.interaction_id;
-- sticky across calls: again in control, again recorded
SELECT r.rank, r.offer_id, r.explanation ->> 'scope' AS scope FROM who, kaireon.recommend('cg', who.ctl, 'web') r;
SELECT interaction_type, count(*) FROM kaireon.interaction_history h, who
 WHERE h.tenant_id = 'cg' AND h.customer_id = who.ctl GROUP BY 1;
-- recommend_json says controlGroup: true, with no decisions
SELECT j -> 'controlGroup' AS control_group, j -> 'decisions' AS decisions,
       (j #> '{controlGroups,0}') - 'interactionId' AS control_groups
  FROM who, kaireon.recommend_json(jsonb_build_object('tenantId', 'cg', 'customerId', who.ctl, 'channel', 'web')) j;
-- a dry run records nothing (and has no interaction id)
SELECT count(*) AS rows_before FROM kaireon.interaction_history WHERE tenant_id = 'cg';
SELECT r.rank, r.interaction_id, r.explanation ->> 'controlGroup' AS control_group
  FROM who, kaireon.recommend('cg', who.ctl, 'web', options => '{"dry_run": true}') r;
SELECT j -> 'controlGroup' AS control_group, j #> '{controlGroups,0,interactionId}' AS interaction_id
  FROM who, kaireon.recommend_json(jsonb_build_object('tenantId', 'cg', 'customerId', who.ctl, 'channel', 'web', 'dryRun', true)) j;
SELECT count(*) AS rows_after FROM kaireon.interaction_history WHERE tenant_id = 'cg';
-- out of the group: offers as usual, controlGroup false
SELECT r.rank, r.offer_id FROM who, kaireon.recommend('cg', who.treated, 'web') r ORDER BY r.rank;
SELECT j -> 'controlGroup' AS control_group, jsonb_array_length(j -> 'decisions') AS decisions, j ? 'controlGroups' AS listed
  FROM who, kaireon.recommend_json(jsonb_build_object('tenantId', 'cg', 'customerId', who.treated, 'channel', 'web', 'dryRun', true)) j;
-- a control row is no decision to respond to
\set VERBOSITY sqlstate
SELECT kaireon.respond('cg', who.ctl, 'conversion', r1.recommendation_id) FROM who, r1;
\set VERBOSITY terse

-- control rows are no contact: with a cap of one recommendation a day, the control customer
-- (two control rows today), once out of the group, still gets offers; its next call none
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('cg', 'p-total', 'One a day', 'customer_total_cap', 10, '{"maxCount": 1, "period": "day"}');
UPDATE kaireon.tenant_settings SET control_group_percent = 0 WHERE tenant_id = 'cg';
SELECT r.rank, r.offer_id FROM who, kaireon.recommend('cg', who.ctl, 'web') r ORDER BY r.rank;
SELECT count(*) AS second_call FROM who, kaireon.recommend('cg', who.ctl, 'web') r WHERE r.rank IS NOT NULL;
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'cg';

-- ---------------------------------------------------------------- a flow's group (30%)
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 2, "controlGroupPercent": 30}' WHERE tenant_id = 'cg' AND key = 'main';
SELECT kaireon.publish_decision_flow('cg', 'main') IS NOT NULL AS published;
SELECT r.rank, r.offer_id, r.explanation - 'interactionId' AS explanation FROM who, kaireon.recommend('cg', who.flow_ctl, 'web') r;
SELECT count(*) AS treated_offers FROM who, kaireon.recommend('cg', who.treated, 'web', options => '{"dry_run": true}') r WHERE r.rank IS NOT NULL;
-- debug names the control group in the funnel
SELECT j #> '{debug,funnel}' AS funnel
  FROM who, kaireon.recommend_json(jsonb_build_object('tenantId', 'cg', 'customerId', who.flow_ctl, 'channel', 'web', 'dryRun', true, 'debug', true)) j;

-- ---------------------------------------------------------------- an offer's holdout (50% of o2)
UPDATE kaireon.offers SET holdout_percent = 50 WHERE tenant_id = 'cg' AND id = 'o2';
-- held out of o2 only: o1 still offered; debug says why o2 is missing
SELECT r.rank, r.offer_id, r.explanation ->> 'droppedAt' AS dropped_at, r.explanation ->> 'reason' AS reason
  FROM who, kaireon.recommend('cg', who.held_out, 'web', options => '{"dry_run": true, "debug": true}') r
 ORDER BY r.rank NULLS LAST, r.offer_id;
-- a customer outside the holdout gets both
SELECT r.rank, r.offer_id FROM who, kaireon.recommend('cg', who.treated, 'web', options => '{"dry_run": true}') r ORDER BY r.rank;

-- end to end: the customer in the flow's control group converts on o1 (respond names the
-- offer: it had no recommendation); lift over today's decisions counts the customers whose
-- first decision was a control row (cust-3, cust-1) against the treated one (cust-6)
SELECT kaireon.respond('cg', who.flow_ctl, 'conversion', offer_id => 'o1', conversion_value => 7) ->> 'outcome' AS outcome FROM who;
SELECT group_name, customers, converters, conversion_rate, value_per_customer
  FROM kaireon.lift('cg', now() - interval '1 day', now() + interval '1 day');

-- ---------------------------------------------------------------- lift on a fixed data set
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('lf', 'Lift', 'lf');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('lf', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, value) VALUES ('lf', 'lo', 'Loan', 'active', 10);
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('lf', 'f-a', 'a', 'A', '{}'), ('lf', 'f-b', 'b', 'B', '{}');
-- treatment: t1..t10 recommended (flow a) on 5 January, m1 both in control and recommended
-- at the same moment (two placements: it got an offer, so treatment); control: k1..k8 (flow a);
-- x1 recommended after the window, y1 by flow b
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at, offer_id, rank, decision_flow_id)
SELECT 'lf', 't' || g, 'recommendation', '2026-01-05 10:00+00', 'lo', 1, 'f-a' FROM generate_series(1, 10) g;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at, decision_flow_id)
SELECT 'lf', 'k' || g, 'control', '2026-01-05 11:00+00', 'f-a' FROM generate_series(1, 8) g;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at, offer_id, rank, decision_flow_id) VALUES
    ('lf', 'm1', 'recommendation', '2026-01-06 09:00+00', 'lo', 1, 'f-a'),
    ('lf', 'x1', 'recommendation', '2026-02-10 09:00+00', 'lo', 1, 'f-a'),
    ('lf', 'y1', 'recommendation', '2026-01-06 09:00+00', 'lo', 1, 'f-b');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, occurred_at, decision_flow_id) VALUES
    ('lf', 'm1', 'control', '2026-01-06 09:00+00', 'f-a');
-- outcomes: t1 converts for 50, t2 for the offer's value (10), t3 for 20, t4 clicks (no value,
-- no offer: 0); t5 dismisses (negative); t6 converted before its decision; k1 converts for 30;
-- k2 converts after the window; y1 converts (flow b) for 5
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, occurred_at, offer_id, conversion_value) VALUES
    ('lf', 't1', 'outcome', 'conversion', '2026-01-07 00:00+00', 'lo', 50),
    ('lf', 't2', 'outcome', 'conversion', '2026-01-08 00:00+00', 'lo', NULL),
    ('lf', 't3', 'outcome', 'conversion', '2026-01-09 00:00+00', NULL, 20),
    ('lf', 't4', 'outcome', 'click', '2026-01-09 00:00+00', NULL, NULL),
    ('lf', 't5', 'outcome', 'dismiss', '2026-01-09 00:00+00', 'lo', 99),
    ('lf', 't6', 'outcome', 'conversion', '2026-01-04 00:00+00', 'lo', 70),
    ('lf', 'k1', 'outcome', 'conversion', '2026-01-10 00:00+00', NULL, 30),
    ('lf', 'k2', 'outcome', 'conversion', '2026-02-02 00:00+00', NULL, 40),
    ('lf', 'y1', 'outcome', 'conversion', '2026-01-10 00:00+00', NULL, 5);
-- by hand: treatment n = 11 (t1..t10, m1), x = 4, value 80; control n = 8, x = 1, value 30.
-- z = 1.959963984540054 (95%). Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
-- Newcombe: d -+ sqrt((p_t - l_t)^2 + (u_c - p_c)^2) / sqrt((u_t - p_t)^2 + (p_c - l_c)^2).
-- Relative: (p_t / p_c) exp(-+ z sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c)) - 1.
-- Value: per-customer values t: 50, 10, 20, 0 and seven 0; k: 30 and seven 0; Welch.
CREATE TEMP TABLE hand AS
WITH k AS (SELECT 1.959963984540054::float8 AS z),
     raw AS (SELECT 4.0::float8 / 11 AS pt, 11.0::float8 AS nt, 4.0::float8 AS xt,
                    1.0::float8 / 8 AS pc, 8.0::float8 AS nc, 1.0::float8 AS xc),
     w AS (SELECT raw.*, k.z,
                  (pt + z * z / (2 * nt) - z * sqrt(pt * (1 - pt) / nt + z * z / (4 * nt * nt))) / (1 + z * z / nt) AS lt,
                  (pt + z * z / (2 * nt) + z * sqrt(pt * (1 - pt) / nt + z * z / (4 * nt * nt))) / (1 + z * z / nt) AS ut,
                  (pc + z * z / (2 * nc) - z * sqrt(pc * (1 - pc) / nc + z * z / (4 * nc * nc))) / (1 + z * z / nc) AS lc,
                  (pc + z * z / (2 * nc) + z * sqrt(pc * (1 - pc) / nc + z * z / (4 * nc * nc))) / (1 + z * z / nc) AS uc
             FROM raw, k),
     v AS (SELECT 80.0::float8 / 11 AS mt, 30.0::float8 / 8 AS mc,
                  ((50 - 80.0 / 11) ^ 2 + (10 - 80.0 / 11) ^ 2 + (20 - 80.0 / 11) ^ 2 + 8 * (0 - 80.0 / 11) ^ 2)::float8 / 10 AS vt,
                  ((30 - 30.0 / 8) ^ 2 + 7 * (0 - 30.0 / 8) ^ 2)::float8 / 7 AS vc)
SELECT w.*, v.*,
       pt - pc AS d,
       pt - pc - sqrt((pt - lt) ^ 2 + (uc - pc) ^ 2) AS d_low,
       pt - pc + sqrt((ut - pt) ^ 2 + (pc - lc) ^ 2) AS d_high,
       pt / pc - 1 AS rel,
       pt / pc * exp(-z * sqrt(1 / xt - 1 / nt + 1 / xc - 1 / nc)) - 1 AS rel_low,
       pt / pc * exp(z * sqrt(1 / xt - 1 / nt + 1 / xc - 1 / nc)) - 1 AS rel_high,
       mt - mc AS vd,
       mt - mc - z * sqrt(vt / nt + vc / nc) AS vd_low,
       mt - mc + z * sqrt(vt / nt + vc / nc) AS vd_high
  FROM w, v;
SELECT group_name, customers, converters, round(conversion_rate::numeric, 6) AS rate,
       round(rate_low::numeric, 6) AS rate_low, round(rate_high::numeric, 6) AS rate_high,
       round(value_per_customer::numeric, 6) AS value_per_customer,
       round(absolute_lift::numeric, 6) AS abs_lift, round(absolute_lift_low::numeric, 6) AS abs_low,
       round(absolute_lift_high::numeric, 6) AS abs_high, round(relative_lift::numeric, 6) AS rel_lift,
       round(relative_lift_low::numeric, 6) AS rel_low, round(relative_lift_high::numeric, 6) AS rel_high,
       round(value_lift::numeric, 6) AS value_lift, round(value_lift_low::numeric, 6) AS value_low,
       round(value_lift_high::numeric, 6) AS value_high
  FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a');
-- every number equals the hand computation (to 1e-9: the quantile is found by bisection)
SELECT bool_and(abs(l.conversion_rate - h.pt) < 1e-12 AND abs(l.rate_low - h.lt) < 1e-9 AND abs(l.rate_high - h.ut) < 1e-9
                AND abs(l.value_per_customer - h.mt) < 1e-12
                AND abs(l.absolute_lift - h.d) < 1e-12 AND abs(l.absolute_lift_low - h.d_low) < 1e-9
                AND abs(l.absolute_lift_high - h.d_high) < 1e-9 AND abs(l.relative_lift - h.rel) < 1e-12
                AND abs(l.relative_lift_low - h.rel_low) < 1e-9 AND abs(l.relative_lift_high - h.rel_high) < 1e-9
                AND abs(l.value_lift - h.vd) < 1e-12 AND abs(l.value_lift_low - h.vd_low) < 1e-9
                AND abs(l.value_lift_high - h.vd_high) < 1e-9) AS treatment_matches
  FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a') l, hand h WHERE l.group_name = 'treatment';
SELECT bool_and(abs(l.conversion_rate - h.pc) < 1e-12 AND abs(l.rate_low - h.lc) < 1e-9 AND abs(l.rate_high - h.uc) < 1e-9
                AND abs(l.value_per_customer - h.mc) < 1e-12 AND l.absolute_lift IS NULL) AS control_matches
  FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a') l, hand h WHERE l.group_name = 'control';
-- every flow: y1 (flow b) joins the treatment; only conversions counts t1..t3, k1, y1
SELECT group_name, customers, converters FROM kaireon.lift('lf', '2026-01-01', '2026-02-01');
SELECT group_name, customers, converters, value_per_customer
  FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a', outcomes => ARRAY['conversion']);
-- a wider confidence widens the interval
SELECT l99.rate_low < l95.rate_low AND l99.rate_high > l95.rate_high AS wider
  FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a', 0.99) l99,
       kaireon.lift('lf', '2026-01-01', '2026-02-01', 'a') l95
 WHERE l99.group_name = 'treatment' AND l95.group_name = 'treatment';
-- an empty window: no customers, no rates
SELECT group_name, customers, converters, conversion_rate, absolute_lift FROM kaireon.lift('lf', '2025-01-01', '2025-02-01');
-- bad arguments
SELECT * FROM kaireon.lift('lf', '2026-02-01', '2026-01-01');
SELECT * FROM kaireon.lift('lf', NULL, '2026-01-01');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', 'nope');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.lift('lf', '2026-01-01', '2026-02-01', confidence => 1);
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------- attribution
-- a1: recommendations of o-A (1 Jan), o-B (3 Jan) and o-C (4 Jan) before its conversion (5 Jan,
-- value 100), one 40 days before (outside the 30-day lookback) and one after; a2 converts
-- with no recommendation before (no row)
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
    ('lf', 'o-A', 'A', 'active'), ('lf', 'o-B', 'B', 'active'), ('lf', 'o-C', 'C', 'active'),
    ('lf', 'o-old', 'Old', 'active'), ('lf', 'o-late', 'Late', 'active');
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, occurred_at, offer_id, rank) VALUES
    ('lf', 'r-old', 'a1', 'recommendation', '2026-02-24 00:00+00', 'o-old', 1),
    ('lf', 'r-A', 'a1', 'recommendation', '2026-04-01 00:00+00', 'o-A', 1),
    ('lf', 'r-B', 'a1', 'recommendation', '2026-04-03 00:00+00', 'o-B', 1),
    ('lf', 'r-C', 'a1', 'recommendation', '2026-04-04 00:00+00', 'o-C', 1),
    ('lf', 'r-late', 'a1', 'recommendation', '2026-04-06 00:00+00', 'o-late', 1);
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, outcome_type_key, occurred_at, conversion_value) VALUES
    ('lf', 'conv-a1', 'a1', 'outcome', 'conversion', '2026-04-05 00:00+00', 100),
    ('lf', 'conv-a2', 'a2', 'outcome', 'conversion', '2026-04-05 00:00+00', 60);
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01') AS last_touch_rows;
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'linear') AS linear_rows;
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'time_decay', half_life => '1 day') AS decay_rows;
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'first_touch') AS first_rows;
-- by hand: last touch r-C 1; first touch r-A 1; linear 1/3 each; time decay with ages 4, 2
-- and 1 days and a half-life of 1 day: 2^-4, 2^-2, 2^-1 over their sum 0.8125
SELECT a.model, a.conversion_id, a.total_value, t ->> 'interactionId' AS touch, t ->> 'offerId' AS offer,
       round((t ->> 'weight')::numeric, 6) AS weight, round((t ->> 'credit')::numeric, 4) AS credit
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'lf' ORDER BY a.model, t ->> 'occurredAt';
SELECT bool_and(abs((t ->> 'weight')::float8 - CASE t ->> 'interactionId' WHEN 'r-A' THEN 0.0625 WHEN 'r-B' THEN 0.25
                                                                         ELSE 0.5 END / 0.8125) < 1e-12) AS decay_matches
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'lf' AND a.model = 'time_decay';
-- a half-life far shorter than the touches' ages: no underflow error (2^-(1 day / 1 s) is
-- below the smallest double); the newest touch takes all the credit
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'time_decay', half_life => '1 second') AS decay_rows;
SELECT t ->> 'interactionId' AS touch, (t ->> 'weight')::float8 = 1 AS all_credit, (t ->> 'weight')::float8 < 1e-300 AS none
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'lf' AND a.model = 'time_decay' ORDER BY t ->> 'occurredAt';
-- idempotent: re-running the window replaces its rows
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01') AS again;
SELECT model, count(*) FROM kaireon.attribution_results WHERE tenant_id = 'lf' GROUP BY model ORDER BY model;
-- bad arguments
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'markov');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.attribute_conversions('lf', '2026-04-01', '2026-05-01', 'time_decay', half_life => '0 days');
SELECT kaireon.attribute_conversions('lf', '2026-05-01', '2026-04-01');
