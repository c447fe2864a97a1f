-- The compiled configuration handed to a call stays usable to the call's end (config/cache.c,
-- "Pins"): a decision runs SQL the tenant's database holds (here an AFTER INSERT trigger on
-- the history its recording writes) which changes the configuration and decides again for
-- the same tenant; the nested call compiles the new configuration, and the outer call goes
-- on with the one it started with (it used to be freed under it: a crash or garbage).
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('ccn', 'Nested calls', 'ccn');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('ccn', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('ccn', 'o1', 'One', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('ccn', 'c1', 'o1', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('ccn', 'f', 'F', true, '{}');
SELECT kaireon.publish_decision_flow('ccn', 'f') IS NOT NULL AS published;
-- the configuration compiled and kept
SELECT offer_name AS compiled FROM kaireon.recommend('ccn', 'n1', 'web', options => '{"dry_run": true}');

-- a trigger on the history renames the offer and decides again (once: a setting guards the
-- depth; the nested decision is a dry run, which writes no history)
CREATE FUNCTION public.regress_ccn_nested() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('regress.ccn_nested', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('regress.ccn_nested', 'on', true);
        UPDATE kaireon.offers SET name = name || '+' WHERE tenant_id = 'ccn' AND id = 'o1';
        RAISE NOTICE 'nested call: %', (SELECT string_agg(offer_name, ',')
            FROM kaireon.recommend('ccn', 'n1', 'web', options => '{"dry_run": true}'));
        PERFORM set_config('regress.ccn_nested', 'off', true);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER regress_ccn_nested AFTER INSERT ON kaireon.interaction_history
    FOR EACH STATEMENT EXECUTE FUNCTION public.regress_ccn_nested();
-- the outer call (recording) returns the name it started with, the nested one the new name
SELECT offer_id, offer_name AS outer_call, creative_id FROM kaireon.recommend('ccn', 'n1', 'web');
-- the next call starts with the configuration the nested call compiled
SELECT offer_name AS next_dry_run FROM kaireon.recommend('ccn', 'n1', 'web', options => '{"dry_run": true}');
-- in one transaction: the outer call again keeps its own, and the change is seen after it
BEGIN;
SELECT offer_name AS outer_in_transaction FROM kaireon.recommend('ccn', 'n2', 'web');
SELECT offer_name AS after_in_transaction FROM kaireon.recommend('ccn', 'n2', 'web', options => '{"dry_run": true}');
ROLLBACK;
-- the rolled-back change is gone from the configuration too
SELECT offer_name AS after_rollback FROM kaireon.recommend('ccn', 'n2', 'web', options => '{"dry_run": true}');
SELECT name FROM kaireon.offers WHERE tenant_id = 'ccn';
SELECT count(*) AS configurations_kept FROM kaireon.config_cache_stats() WHERE tenant_id = 'ccn';

SET client_min_messages = warning;
DROP TRIGGER regress_ccn_nested ON kaireon.interaction_history;
DROP FUNCTION public.regress_ccn_nested();
DELETE FROM kaireon.tenants WHERE id = 'ccn';
