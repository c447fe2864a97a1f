-- kaireon.stat_decisions, kaireon.stat_reset and kaireon.progress (docs/statistics.md): exact
-- counts after known calls (dry runs, a recorded decision, drops by stage and reason, an
-- error, responds by class, configuration compiles and cache hits), the latency percentiles
-- in order, a reset, who sees which rows, and the progress slot of this backend: filled and
-- emptied by the internal helpers, emptied by a rolled back subtransaction; and a full table
-- (the overflow row). The test server
-- preloads kaireon; test/t/002_without_preload.pl checks the error without it, and the
-- isolation spec progress_campaign a campaign's row seen from another session.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('sts', 'Stats', 'sts', '{"decisionTraceSampleRate": 0}'),
    ('sts2', 'Stats 2', 'sts2', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES
    ('sts', 'web', 'Web', 'web'), ('sts', 'email', 'Email', 'email'), ('sts2', 'web', 'Web', 'web');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES ('sts', 'hero', 'web', 'Hero', 5);
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('sts', 'o1', 'One', 'active', 80), ('sts', 'o2', 'Two', 'active', 70),
    ('sts', 'o3', 'Three (email only)', 'active', 60), ('sts', 'o4', 'Four (draft)', 'draft', 90),
    ('sts2', 'o1', 'One', 'active', 80);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name) VALUES
    ('sts', 'o1-hero', 'o1', 'web', 'hero', 'o1 hero'), ('sts', 'o2-hero', 'o2', 'web', 'hero', 'o2 hero'),
    ('sts', 'o3-mail', 'o3', 'email', NULL, 'o3 mail'), ('sts', 'o4-web', 'o4', 'web', NULL, 'o4 web'),
    ('sts2', 'x1', 'o1', 'web', NULL, 'x1');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('sts', 'f-main', 'main', 'Main', true, '{"maxOffers": 3}'),
    ('sts2', 'f-main', 'main', 'Main', true, '{"maxOffers": 3}');
SELECT kaireon.publish_decision_flow('sts', 'main'), kaireon.publish_decision_flow('sts2', 'main');
-- customer c3 is suppressed everywhere
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope) VALUES ('sts', 'sup-c3', 'c3', 'global');

-- The rows of tenant sts, without the times (the latency percentiles: only their order).
CREATE FUNCTION pg_temp.stats(p_tenant text) RETURNS TABLE (channel_id text, counts text, drops jsonb, latency text, config text, responds text)
LANGUAGE sql AS $$
    SELECT channel_id,
           format('decisions=%s dry_runs=%s errors=%s candidates=%s cap_refusals=%s',
                  decisions, dry_runs, errors, candidates, cap_refusals),
           drops,
           CASE WHEN latency_p50_ms IS NULL THEN 'none'
                WHEN 0 < latency_p50_ms AND latency_p50_ms <= latency_p95_ms AND latency_p95_ms <= latency_p99_ms
                THEN 'ordered' ELSE format('%s %s %s', latency_p50_ms, latency_p95_ms, latency_p99_ms) END,
           format('compiles=%s hits=%s', config_compiles, config_cache_hits),
           format('positive=%s neutral=%s negative=%s', responds_positive, responds_neutral, responds_negative)
      FROM kaireon.stat_decisions WHERE tenant_id = p_tenant ORDER BY channel_id NULLS FIRST
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Counts after known calls.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.stat_reset();
SELECT count(*) AS rows_after_reset FROM kaireon.stat_decisions WHERE tenant_id IS NOT NULL;
-- the overflow row is always there for a superuser, empty
SELECT decisions, dry_runs, errors, drops FROM kaireon.stat_decisions WHERE tenant_id IS NULL;

-- dry runs: 3 candidates each (the draft o4 is none); o3 has no creative on web
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true, "exclude_offers": ["o1"]}');
-- the suppressed customer: o1 and o2 dropped at the suppression stage
SELECT count(*) FROM kaireon.recommend('sts', 'c3', 'web', 'hero', options => '{"dry_run": true}');
-- a recorded decision (recommend_json counts too)
CREATE TEMP TABLE rec AS SELECT * FROM kaireon.recommend('sts', 'c2', 'web', 'hero');
SELECT jsonb_array_length(kaireon.recommend_json('{"tenantId": "sts", "customerId": "c4", "channel": "email", "dryRun": true}') -> 'decisions') AS email_decisions;
-- an error inside the decision: an unknown placement
SELECT * FROM kaireon.recommend('sts', 'c1', 'web', 'nowhere');
-- two outcomes of the recorded decision: a click (positive) and a dismiss (negative)
SELECT kaireon.respond('sts', 'c2', 'click', recommendation_id => (SELECT DISTINCT recommendation_id FROM rec), rank => 1) ->> 'classification' AS first;
SELECT kaireon.respond('sts', 'c2', 'dismiss', recommendation_id => (SELECT DISTINCT recommendation_id FROM rec), rank => 2) ->> 'classification' AS second;
SELECT * FROM pg_temp.stats('sts');
-- another tenant's rows are apart
SELECT count(*) FROM kaireon.recommend('sts2', 'c1', 'web', options => '{"dry_run": true}');
SELECT * FROM pg_temp.stats('sts2');

-- The compiled configurations this backend holds (kaireon.config_cache_stats): one per tenant,
-- with its memory and what it holds; a change is compiled into a new version at the next call.
SELECT tenant_id, memory_bytes BETWEEN 8192 AND 4194304 AS sized, offers, creatives, rules, policies
  FROM kaireon.config_cache_stats() ORDER BY tenant_id;
CREATE TEMP TABLE cfg_before AS SELECT version, memory_bytes FROM kaireon.config_cache_stats() WHERE tenant_id = 'sts';
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('sts', 'o5', 'Five', 'active', 10);
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT s.offers, s.version > b.version AS newer, s.memory_bytes >= b.memory_bytes AS not_smaller
  FROM kaireon.config_cache_stats() s, cfg_before b WHERE s.tenant_id = 'sts';
DELETE FROM kaireon.offers WHERE tenant_id = 'sts' AND id = 'o5';
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT offers FROM kaireon.config_cache_stats() WHERE tenant_id = 'sts';

-- ---------------------------------------------------------------------------------------
-- 2. Reset: one tenant's rows, then all.
-- ---------------------------------------------------------------------------------------
SELECT kaireon.stat_reset('sts');
SELECT count(*) AS sts_rows FROM kaireon.stat_decisions WHERE tenant_id = 'sts';
SELECT count(*) AS sts2_rows FROM kaireon.stat_decisions WHERE tenant_id = 'sts2';
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT * FROM pg_temp.stats('sts');
SELECT kaireon.stat_reset();
SELECT count(*) AS rows_after_reset FROM kaireon.stat_decisions WHERE tenant_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------
-- 3. Who sees what: a role sees its current tenant's rows only, and may not reset.
-- ---------------------------------------------------------------------------------------
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT count(*) FROM kaireon.recommend('sts2', 'c1', 'web', options => '{"dry_run": true}');
CREATE ROLE regress_stat_app;
SELECT kaireon.grant_app_role('regress_stat_app');
SET ROLE regress_stat_app;
SELECT tenant_id, channel_id FROM kaireon.stat_decisions ORDER BY 1, 2 NULLS FIRST;  -- no tenant: nothing
SET kaireon.tenant_id = 'sts2';
SELECT tenant_id, channel_id, dry_runs FROM kaireon.stat_decisions ORDER BY 1, 2 NULLS FIRST;
-- the compiled configurations are an admin's: an app role may not read them
SELECT tenant_id FROM kaireon.config_cache_stats();
SELECT kaireon.stat_reset('sts2');
SELECT kaireon_internal._progress_start('fake', 'sts2', 1);
RESET kaireon.tenant_id;
RESET ROLE;
DROP OWNED BY regress_stat_app;
DROP ROLE regress_stat_app;
-- a role pinned to a tenant sees that tenant's rows only, even as a member of
-- pg_read_all_stats, and may not reset every tenant's
CREATE ROLE regress_stat_pinned;
SELECT kaireon.grant_app_role('regress_stat_pinned');
SELECT kaireon.pin_role('regress_stat_pinned', 'sts2');
GRANT pg_read_all_stats TO regress_stat_pinned;
SET ROLE regress_stat_pinned;
SELECT tenant_id, channel_id, dry_runs FROM kaireon.stat_decisions ORDER BY 1, 2 NULLS FIRST;
-- given the function, a pinned role sees its tenant's compiled configuration only
RESET ROLE;
GRANT EXECUTE ON FUNCTION kaireon.config_cache_stats() TO regress_stat_pinned;
SET ROLE regress_stat_pinned;
SELECT tenant_id, offers FROM kaireon.config_cache_stats() ORDER BY tenant_id;
SELECT kaireon.stat_reset();
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT kaireon.unpin_role('regress_stat_pinned');
DROP OWNED BY regress_stat_pinned;
DROP ROLE regress_stat_pinned;
-- an error for a channel the tenant does not have counts in the tenant's row (channel NULL):
-- made-up channel ids do not take entries of the table
SELECT kaireon.stat_reset('sts2');
SELECT * FROM kaireon.recommend('sts2', 'c1', 'no-such-channel', options => '{"dry_run": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT tenant_id, channel_id, errors FROM kaireon.stat_decisions WHERE tenant_id = 'sts2' ORDER BY 2 NULLS FIRST;

-- ---------------------------------------------------------------------------------------
-- 4. This backend's progress slot (the helpers kaireon.distribute uses).
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS running FROM kaireon.progress WHERE pid = pg_backend_pid();
SELECT kaireon_internal._progress_start('distribute', NULL, 10);
SELECT kaireon_internal._progress_update('tables', 3, 10);
SELECT operation, tenant_id, phase, done, total, dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AS here
  FROM kaireon.progress WHERE pid = pg_backend_pid();
-- a nested operation does not replace the row; its end does not end the outer one
SELECT kaireon_internal._progress_start('inner', 'sts', NULL);
SELECT kaireon_internal._progress_update('inner phase', 1);
SELECT kaireon_internal._progress_end();
SELECT kaireon_internal._progress_update('tables', 7, 12);
SELECT operation, phase, done, total FROM kaireon.progress WHERE pid = pg_backend_pid();
SELECT kaireon_internal._progress_end();
SELECT count(*) AS running FROM kaireon.progress WHERE pid = pg_backend_pid();
-- an operation started in a subtransaction that rolls back is over
BEGIN;
SAVEPOINT s;
SELECT kaireon_internal._progress_start('distribute', NULL, NULL);
SELECT count(*) AS running FROM kaireon.progress WHERE pid = pg_backend_pid();
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS running FROM kaireon.progress WHERE pid = pg_backend_pid();
COMMIT;
-- and one whose transaction fails
BEGIN;
SELECT kaireon_internal._progress_start('distribute', NULL, NULL);
SELECT 1 / 0;
ROLLBACK;
SELECT count(*) AS running FROM kaireon.progress WHERE pid = pg_backend_pid();

-- ---------------------------------------------------------------------------------------
-- 5. A full table (kaireon.stat_max, 1000 here): nothing is evicted, new keys count in the
--    overflow row; a reset frees the table.
-- ---------------------------------------------------------------------------------------
SHOW kaireon.stat_max;
SELECT kaireon.stat_reset();
-- 1001 made-up tenants, each an error ("does not exist") in a key of its own
DO $$
BEGIN
    FOR i IN 1 .. 1001 LOOP
        BEGIN
            PERFORM * FROM kaireon.recommend('sts-made-up-' || i, 'c1', 'web', options => '{"dry_run": true}');
        EXCEPTION WHEN undefined_object THEN NULL;
        END;
    END LOOP;
END $$;
-- a real tenant's decision finds the table full too
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT count(*) AS keyed_rows, sum(errors) AS keyed_errors, count(*) FILTER (WHERE tenant_id = 'sts') AS sts_rows
  FROM kaireon.stat_decisions WHERE tenant_id IS NOT NULL;
SELECT decisions, dry_runs, errors, candidates, drops, config_compiles + config_cache_hits AS config_lookups FROM kaireon.stat_decisions WHERE tenant_id IS NULL;
SELECT kaireon.stat_reset();
SELECT count(*) FROM kaireon.recommend('sts', 'c1', 'web', 'hero', options => '{"dry_run": true}');
SELECT tenant_id, channel_id, dry_runs FROM kaireon.stat_decisions ORDER BY tenant_id NULLS FIRST, channel_id NULLS FIRST;
