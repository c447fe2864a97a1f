-- Smaller defects of the hardening review (issue 11, item 6), each checked as the role that
-- tripped on it:
--   a. an application role writes summary_definitions with dimensions
--   b. four_eyes_required refuses a tenant other than the session's (42501)
--   c. recommend_json / respond_json take integral JSON numbers as ids (their decimal text)
--      and refuse other non-string ids (22023, naming the field)
--   d. the descriptions of the kaireon.*_schedule settings are readable in a new backend
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('hm', 'Misc', 'hm', '{"decisionTraceSampleRate": 0}'),
    ('hm2', 'Misc 2', 'hm2', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.tenant_settings (tenant_id, four_eyes_enabled) VALUES ('hm2', true);
CREATE ROLE regress_hm_app;
CREATE ROLE regress_hm_ro;
CREATE ROLE regress_hm_admin;
CREATE ROLE regress_hm_bypass;
SELECT kaireon.grant_app_role('regress_hm_app'), kaireon.grant_readonly_role('regress_hm_ro'),
       kaireon.grant_admin_role('regress_hm_admin', bypass_rls => false), kaireon.grant_admin_role('regress_hm_bypass');

-- a. An application role defines summaries with dimensions (the check trigger reads the list
--    of dimensions as the writing role); a bad dimension is still refused.
SET ROLE regress_hm_app;
SET kaireon.tenant_id = 'hm';
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, dimensions, windows)
    VALUES ('hm', 'by-offer', 'By offer', '["offer", "channel", "placement"]', '["day", "7d"]');
UPDATE kaireon.summary_definitions SET dimensions = '["customer", "outcome"]' WHERE key = 'by-offer';
INSERT INTO kaireon.summary_definitions (tenant_id, key, name, dimensions) VALUES ('hm', 'bad', 'Bad', '["colour"]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT key, dimensions, windows FROM kaireon.summary_definitions ORDER BY key;

-- b. four_eyes_required answers for the session's own tenant only, like other calls of an
--    application role; another tenant's (or one that does not exist) is refused, not false.
SELECT kaireon.four_eyes_required('hm') AS own;
SELECT kaireon.four_eyes_required('hm2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.four_eyes_required('no-such-tenant');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
SELECT kaireon.four_eyes_required('hm');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_hm_ro;
SET kaireon.tenant_id = 'hm2';
SELECT kaireon.four_eyes_required('hm2') AS own;
SELECT kaireon.four_eyes_required('hm');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
-- an admin without BYPASSRLS is limited to its tenant too; a BYPASSRLS admin and a superuser
-- answer for any tenant
SET ROLE regress_hm_admin;
SET kaireon.tenant_id = 'hm';
SELECT kaireon.four_eyes_required('hm2');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
SET ROLE regress_hm_bypass;
SELECT kaireon.four_eyes_required('hm') AS hm, kaireon.four_eyes_required('hm2') AS hm2;
RESET ROLE;
SELECT kaireon.four_eyes_required('hm') AS hm, kaireon.four_eyes_required('hm2') AS hm2,
       kaireon.four_eyes_required('no-such-tenant') AS unknown;
-- the governance triggers still decide for the writing role's own tenant
SET ROLE regress_hm_app;
SET kaireon.tenant_id = 'hm';
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('hm', 'web', 'Web', 'web');
RESET kaireon.tenant_id;
RESET ROLE;

-- c. Ids sent as JSON numbers (as JavaScript clients often do) are their decimal text.
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('hm', '7', 'Channel seven', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('hm', 'o1', 'Gold', 'active', 80), ('hm', '12', 'Offer twelve', 'active', 70);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('hm', 'o1-web', 'o1', 'web', 'o1 web'), ('hm', 'o12-web', '12', 'web', 'o12 web'),
    ('hm', 'o1-7', 'o1', '7', 'o1 on 7');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('hm', 'f-main', 'main', 'Main', true, '{"maxOffers": 3}'),
    ('hm', 'f-5', '5', 'Flow five', false, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('hm', 'main'), kaireon.publish_decision_flow('hm', '5');
SET ROLE regress_hm_app;
SET kaireon.tenant_id = 'hm';
SELECT r ->> 'customerId' AS customer, jsonb_typeof(r -> 'customerId') AS type, r ->> 'channel' AS channel,
       jsonb_path_query_array(r, '$.decisions[*].offerId') AS offers
  FROM kaireon.recommend_json('{"tenantId": "hm", "customerId": 42, "channel": "web", "dryRun": true}') r;
-- the same customer whether sent as 42 or "42" (or 42.0, or 4.2e1: the same JSON number)
SELECT r1 -> 'decisions' = r2 -> 'decisions' AS same, r1 ->> 'customerId' AS c1, r2 ->> 'customerId' AS c2,
       r3 ->> 'customerId' AS c3
  FROM kaireon.recommend_json('{"tenantId": "hm", "customerId": "42", "channel": "web", "dryRun": true}') r1,
       kaireon.recommend_json('{"tenantId": "hm", "customerId": 42.0, "channel": "web", "dryRun": true}') r2,
       kaireon.recommend_json('{"tenantId": "hm", "customerId": 4.2e1, "channel": "web", "dryRun": true}') r3;
-- channel and decision flow ids too; the largest integer a JSON number holds exactly, and 0
SELECT r ->> 'customerId' AS customer, r ->> 'channel' AS channel,
       jsonb_path_query_array(r, '$.decisions[*].creativeId') AS creatives
  FROM kaireon.recommend_json('{"tenantId": "hm", "customerId": 9007199254740991, "channel": 7, "decisionFlow": 5, "dryRun": true}') r;
SELECT r ->> 'customerId' AS customer
  FROM kaireon.recommend_json('{"tenantId": "hm", "customerId": -0, "channel": "web", "dryRun": true}') r;
-- other non-string ids are refused, naming the field
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": 4.5, "channel": "web", "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": 9007199254740993, "channel": "web", "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": true, "channel": "web", "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": {"id": 42}, "channel": "web", "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": "c", "channel": "web", "placement": false, "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": "c", "channel": ["web"], "dryRun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a null id is still missing
SELECT kaireon.recommend_json('{"tenantId": "hm", "customerId": null, "channel": "web"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- respond_json: an outcome for customer 42 on offer 12, both sent as numbers
SELECT r ->> 'offerId' AS offer, r ->> 'outcome' AS outcome
  FROM kaireon.respond_json('{"tenantId": "hm", "customerId": 42, "outcome": "click", "offerId": 12}') r;
SELECT customer_id, offer_id, outcome_type_key FROM kaireon.interaction_history WHERE tenant_id = 'hm';
-- refused, and nothing written
SELECT kaireon.respond_json('{"tenantId": "hm", "customerId": 42, "outcome": "click", "offerId": 1.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "hm", "customerId": [42], "outcome": "click", "offerId": "12"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_json('{"tenantId": "hm", "customerId": 42, "outcome": 3, "offerId": "12"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.respond_bulk('{"items": [{"tenantId": "hm", "customerId": 42, "outcome": "click", "creativeId": false}]}') -> 'results';
SELECT count(*) AS outcomes FROM kaireon.interaction_history WHERE tenant_id = 'hm';
RESET kaireon.tenant_id;
RESET ROLE;

-- d. The schedule settings' descriptions (this backend started after the server loaded kaireon).
SELECT name, short_desc FROM pg_settings WHERE name LIKE 'kaireon.%schedule%' ORDER BY name;

-- clean up
SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id IN ('hm', 'hm2');
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'kaireon'::regnamespace
                AND relname ~ '^interaction_history_p\d{4}_\d{2}$' LOOP
        EXECUTE format('DROP TABLE kaireon.%I', r.relname);
    END LOOP;
END $$;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_hm_app', 'regress_hm_ro', 'regress_hm_admin', 'regress_hm_bypass');
DROP OWNED BY regress_hm_app, regress_hm_ro, regress_hm_admin, regress_hm_bypass;
DROP ROLE regress_hm_app, regress_hm_ro, regress_hm_admin, regress_hm_bypass;
