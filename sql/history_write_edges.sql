-- The direct write of a recording's interaction_history rows (decision/history_write.c,
-- docs/recommend.md "Writing the decisions' rows") in the cases where it once differed from
-- the INSERT statement (kaireon.direct_history_writes off), each case run both ways: a column
-- default whose function records another decision (the nested recording takes the statement).
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('hwe', 'History write edges', 'hwe');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('hwe', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('hwe', 'o1', 'One', 'active', 10), ('hwe', 'o2', 'Two', 'active', 20);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('hwe', 'c1', 'o1', 'web', 'c'), ('hwe', 'c2', 'o2', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config)
    VALUES ('hwe', 'f', 'F', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('hwe', 'f');

-- a column default whose function records one other decision (once: regress_hwe.nest turns
-- itself off): the nested recording runs while the outer write evaluates its first row's
-- defaults, takes the statement, and both recordings' rows are written, either way
CREATE FUNCTION public.regress_hwe_nested() RETURNS text LANGUAGE sql VOLATILE AS $$
  WITH s AS MATERIALIZED (SELECT current_setting('regress_hwe.nest', true) = 'on' AS nest,
                                 set_config('regress_hwe.nest', 'off', false) AS turned_off)
  SELECT CASE WHEN (SELECT nest FROM s)
              THEN (SELECT 'nested:' || count(*) FROM kaireon.recommend('hwe', current_setting('regress_hwe.nested_customer'), 'web'))
              ELSE 'leaf' END $$;
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id SET DEFAULT public.regress_hwe_nested();
SELECT count(*) AS warmup FROM kaireon.recommend('hwe', 'nest-warm', 'web');
SET regress_hwe.nest = 'on';
SET regress_hwe.nested_customer = 'nested-direct';
SELECT count(*) AS offers FROM kaireon.recommend('hwe', 'outer-direct', 'web');
SET kaireon.direct_history_writes = off;
SET regress_hwe.nest = 'on';
SET regress_hwe.nested_customer = 'nested-statement';
SELECT count(*) AS offers FROM kaireon.recommend('hwe', 'outer-statement', 'web');
RESET kaireon.direct_history_writes;
SELECT customer_id, campaign_id, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'hwe' AND customer_id <> 'nest-warm' GROUP BY 1, 2 ORDER BY 1, 2;
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id DROP DEFAULT;
DROP FUNCTION public.regress_hwe_nested();

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'hwe';
DELETE FROM kaireon.tenants WHERE id = 'hwe';
