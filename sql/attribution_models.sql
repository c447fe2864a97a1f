-- Attribution models position_based and data_driven of kaireon.attribute_conversions
-- (docs/lift.md), each against weights computed by hand on a fixed data set in this file.
\set VERBOSITY terse
SET timezone = 'UTC';

INSERT INTO kaireon.tenants (id, name, slug) VALUES ('am', 'Attribution', 'am');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
    ('am', 'A', 'A', 'active'), ('am', 'B', 'B', 'active'), ('am', 'C', 'C', 'active'), ('am', 'D', 'D', 'active');

-- ---------------------------------------------------------------- position_based
-- p1: one touch before its conversion; p2: two; p4: four (A, B, C, D on days 1 to 4)
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, occurred_at, offer_id, rank) VALUES
    ('am', 'p1-A', 'p1', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('am', 'p2-A', 'p2', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('am', 'p2-B', 'p2', 'recommendation', '2026-04-02 00:00+00', 'B', 1),
    ('am', 'p4-A', 'p4', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('am', 'p4-B', 'p4', 'recommendation', '2026-04-02 00:00+00', 'B', 1),
    ('am', 'p4-C', 'p4', 'recommendation', '2026-04-03 00:00+00', 'C', 1),
    ('am', 'p4-D', 'p4', 'recommendation', '2026-04-04 00:00+00', 'D', 1);
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, outcome_type_key, occurred_at, conversion_value) VALUES
    ('am', 'conv-p1', 'p1', 'outcome', 'conversion', '2026-04-05 00:00+00', 10),
    ('am', 'conv-p2', 'p2', 'outcome', 'conversion', '2026-04-05 00:00+00', 10),
    ('am', 'conv-p4', 'p4', 'outcome', 'conversion', '2026-04-05 00:00+00', 100);
SELECT kaireon.attribute_conversions('am', '2026-04-01', '2026-05-01', 'position_based') AS rows;
-- by hand: one touch 1; two touches 0.5 each; four touches 0.4, 0.1, 0.1, 0.4 (credits of 100:
-- 40, 10, 10, 40)
SELECT a.conversion_id, t ->> 'interactionId' AS touch, round((t ->> 'weight')::numeric, 6) AS weight,
       round((t ->> 'credit')::numeric, 4) AS credit
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'am' AND a.model = 'position_based' ORDER BY a.conversion_id, t ->> 'occurredAt';
SELECT bool_and(abs((t ->> 'weight')::float8 - CASE t ->> 'interactionId' WHEN 'p1-A' THEN 1 WHEN 'p2-A' THEN 0.5
                                                   WHEN 'p2-B' THEN 0.5 WHEN 'p4-A' THEN 0.4 WHEN 'p4-D' THEN 0.4
                                                   ELSE 0.1 END) < 1e-12) AS matches
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'am' AND a.model = 'position_based';

-- ---------------------------------------------------------------- data_driven
-- A tenant of its own, the paths of the window (offers recommended in [since - lookback, until)):
--   c1 {A, B} converts (touches A, B, A before it); c2 {A} converts; c3 {B} does not;
--   c4 {A, B} does not; c5 {B, C} converts; c6's only touch is 40 days before the window
--   (outside every path); c7 converts with no touch (no path, no row)
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('dd', 'Data driven', 'dd');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES
    ('dd', 'A', 'A', 'active'), ('dd', 'B', 'B', 'active'), ('dd', 'C', 'C', 'active');
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, occurred_at, offer_id, rank) VALUES
    ('dd', 'c1-A1', 'c1', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('dd', 'c1-B', 'c1', 'recommendation', '2026-04-02 00:00+00', 'B', 1),
    ('dd', 'c1-A2', 'c1', 'recommendation', '2026-04-03 00:00+00', 'A', 1),
    ('dd', 'c2-A', 'c2', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('dd', 'c3-B', 'c3', 'recommendation', '2026-04-01 00:00+00', 'B', 1),
    ('dd', 'c4-A', 'c4', 'recommendation', '2026-04-01 00:00+00', 'A', 1),
    ('dd', 'c4-B', 'c4', 'recommendation', '2026-04-02 00:00+00', 'B', 1),
    ('dd', 'c5-B', 'c5', 'recommendation', '2026-04-01 00:00+00', 'B', 1),
    ('dd', 'c5-C', 'c5', 'recommendation', '2026-04-02 00:00+00', 'C', 1),
    ('dd', 'c6-C', 'c6', 'recommendation', '2026-01-01 00:00+00', 'C', 1);
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, outcome_type_key, occurred_at, conversion_value) VALUES
    ('dd', 'conv-c1', 'c1', 'outcome', 'conversion', '2026-04-05 00:00+00', 100),
    ('dd', 'conv-c2', 'c2', 'outcome', 'conversion', '2026-04-05 00:00+00', 50),
    ('dd', 'conv-c5', 'c5', 'outcome', 'conversion', '2026-04-05 00:00+00', 230),
    ('dd', 'conv-c7', 'c7', 'outcome', 'conversion', '2026-04-05 00:00+00', 10);
SELECT kaireon.attribute_conversions('dd', '2026-04-01', '2026-05-01', 'data_driven') AS rows;
-- by hand: P(y | A) = 2/3 (c1, c2 of c1, c2, c4), P(y | B) = 1/2 (c1, c5 of c1, c3, c4, c5),
-- P(y | C) = 1 (c5); P(y | A, B) = 1/2 (c1 of c1, c4), P(y | B, C) = 1 (c5).
--   C(A) = 2/3 + (1/2 - 2/3 - 1/2) / 2                            = 1/3
--   C(B) = 1/2 + ((1/2 - 1/2 - 2/3) + (1 - 1/2 - 1)) / (2 * 2)    = 5/24
--   C(C) = 1 + (1 - 1 - 1/2) / 2                                  = 3/4
-- conv-c1: A's 1/3 shared by its two touches (1/6 each), B 5/24: weights 4/13, 5/13, 4/13;
-- conv-c2: A alone, 1; conv-c5: B 5/24 and C 18/24: 5/23 and 18/23 (credits of 230: 50, 180)
SELECT a.conversion_id, t ->> 'interactionId' AS touch, round((t ->> 'weight')::numeric, 6) AS weight,
       round((t ->> 'credit')::numeric, 4) AS credit
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'dd' AND a.model = 'data_driven' ORDER BY a.conversion_id, t ->> 'occurredAt';
SELECT bool_and(abs((t ->> 'weight')::float8 - CASE t ->> 'interactionId' WHEN 'c1-A1' THEN 4.0 / 13 WHEN 'c1-B' THEN 5.0 / 13
                                                   WHEN 'c1-A2' THEN 4.0 / 13 WHEN 'c2-A' THEN 1
                                                   WHEN 'c5-B' THEN 5.0 / 23 WHEN 'c5-C' THEN 18.0 / 23 END) < 1e-12) AS matches,
       count(*) AS touches
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'dd' AND a.model = 'data_driven';
-- re-running the window replaces the rows (3 conversions with touches)
SELECT kaireon.attribute_conversions('dd', '2026-04-01', '2026-05-01', 'data_driven') AS again;
SELECT model, count(*) FROM kaireon.attribution_results WHERE tenant_id = 'dd' GROUP BY model;
-- no touch of a conversion with a contribution above 0: linear, not a division by zero.
-- z1 {H} converts (touched twice); z2..z10 {H, X} do not; z11..z19 {X} convert.
-- By hand: P(y | H) = 1/10, P(y | X) = 9/18 = 1/2, P(y | H, X) = 0:
--   C(H) = 1/10 + (0 - 1/10 - 1/2) / 2 = -1/5, taken as 0: z1's two touches 1/2 each
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('dz', 'No contribution', 'dz');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('dz', 'H', 'H', 'active'), ('dz', 'X', 'X', 'active');
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, occurred_at, offer_id, rank)
SELECT 'dz', 'z' || g || '-' || o, 'z' || g, 'recommendation', '2026-04-01 00:00+00'::timestamptz, o, 1
  FROM generate_series(1, 19) g, unnest(ARRAY['H', 'X']) o
 WHERE (o = 'H' AND g <= 10) OR (o = 'X' AND g >= 2)
UNION ALL SELECT 'dz', 'z1-H2', 'z1', 'recommendation', '2026-04-02 00:00+00', 'H', 1;
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, outcome_type_key, occurred_at)
SELECT 'dz', 'conv-z' || g, 'z' || g, 'outcome', 'conversion', '2026-04-03 00:00+00'
  FROM generate_series(1, 19) g WHERE g = 1 OR g >= 11;
SELECT kaireon.attribute_conversions('dz', '2026-04-01', '2026-05-01', 'data_driven') AS rows;
SELECT t ->> 'interactionId' AS touch, round((t ->> 'weight')::numeric, 6) AS weight
  FROM kaireon.attribution_results a, jsonb_array_elements(a.touchpoints) t
 WHERE a.tenant_id = 'dz' AND a.conversion_id = 'conv-z1' ORDER BY t ->> 'interactionId';

-- an unknown model is refused, naming it
SELECT kaireon.attribute_conversions('dd', '2026-04-01', '2026-05-01', 'markov');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
