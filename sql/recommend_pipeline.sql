-- kaireon.recommend, the pipeline outside rules and policies (docs/recommend.md): flow
-- resolution and publishing, candidates (status, soft deletes, schedules, inventory,
-- exclusions, creatives), max_offers, mandatory offers, grouped placements, dry runs and
-- recording, the three scoring methods, recommend_json, and bad input.
-- Everything runs as dry runs (nothing written) unless a block says it records.
\set VERBOSITY terse
SET timezone = 'UTC';
-- the sample rate 0 keeps traces out of this test (recommend_traces covers them)
INSERT INTO kaireon.tenants (id, name, slug, settings)
    VALUES ('rp', 'Pipeline', 'rp', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, status) VALUES
    ('rp', 'web', 'Web', 'web', 'implicit', 'active'),
    ('rp', 'email', 'Email', 'email', 'explicit', 'active'),
    ('rp', 'kiosk', 'Kiosk', 'kiosk', 'explicit', 'inactive');
INSERT INTO kaireon.placements (tenant_id, id, channel_id, name, max_slots) VALUES
    ('rp', 'hero', 'web', 'Hero', 5), ('rp', 'side', 'web', 'Side', 5), ('rp', 'body', 'email', 'Body', 5);
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES
    ('rp', 'cards', 'Cards'), ('rp', 'loans', 'Loans');
INSERT INTO kaireon.sub_categories (tenant_id, id, category_id, name) VALUES
    ('rp', 'travel', 'cards', 'Travel');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, sub_category_id, status, priority, weight, value) VALUES
    ('rp', 'gold', 'Gold card', 'cards', NULL, 'active', 80, 100, 100),
    ('rp', 'miles', 'Miles card', 'cards', 'travel', 'active', 70, 100, 300),
    ('rp', 'loan', 'Loan', 'loans', NULL, 'active', 60, 50, 50),
    ('rp', 'paused', 'Paused offer', NULL, NULL, 'paused', 100, 100, 0);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight) VALUES
    ('rp', 'gold-web', 'gold', 'web', NULL, 'Gold web', 100),
    ('rp', 'miles-web', 'miles', 'web', NULL, 'Miles web', 100),
    ('rp', 'loan-web', 'loan', 'web', NULL, 'Loan web', 100),
    ('rp', 'paused-web', 'paused', 'web', NULL, 'Paused web', 100),
    ('rp', 'gold-mail', 'gold', 'email', NULL, 'Gold mail', 100),
    ('rp', 'miles-mail', 'miles', 'email', 'body', 'Miles mail', 100);

-- Flows: "main" is the default; "all" is named explicitly by most blocks below.
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config) VALUES
    ('rp', 'f-main', 'main', 'Main', true, '{"maxOffers": 2}'),
    ('rp', 'f-all', 'all', 'All offers', false, '{"maxOffers": 10}'),
    ('rp', 'f-hero', 'hero-flow', 'Hero', false, '{"maxOffers": 10}'),
    ('rp', 'f-hero-low', 'hero-low', 'Hero (low)', false, '{"maxOffers": 10}'),
    ('rp', 'f-chan', 'chan-flow', 'Whole web channel', false, '{"maxOffers": 10}'),
    ('rp', 'f-draft', 'draft-flow', 'Never published', false, '{}');
SELECT key, kaireon.publish_decision_flow('rp', key, 'first') AS version
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key <> 'draft-flow' ORDER BY key;
INSERT INTO kaireon.flow_routes (tenant_id, id, channel_id, placement_id, decision_flow_id, priority) VALUES
    ('rp', 'r-hero', 'web', 'hero', 'f-hero', 10),
    ('rp', 'r-hero-low', 'web', 'hero', 'f-hero-low', 1),
    ('rp', 'r-chan', 'web', NULL, 'f-chan', 5);

-- Helpers. picks: the decisions of a dry run as "rank:offer/creative"; dropped: the
-- candidates a dry run with debug dropped, with stage and reason; flow_of: the flow key the
-- decisions name.
CREATE FUNCTION pg_temp.picks(customer text, channel text, placement text DEFAULT NULL,
                              context jsonb DEFAULT '{}', max_offers int DEFAULT NULL,
                              flow text DEFAULT 'all', options jsonb DEFAULT '{}') RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.rank || ':' || r.offer_id || '/' || r.creative_id, ' ' ORDER BY r.placement_id, r.rank), '(none)')
      FROM kaireon.recommend('rp', customer, channel, placement, context, max_offers, flow,
                             options || '{"dry_run": true}') r
     WHERE r.rank IS NOT NULL
$$;
CREATE FUNCTION pg_temp.dropped(customer text, channel text, placement text DEFAULT NULL,
                                context jsonb DEFAULT '{}', flow text DEFAULT 'all',
                                options jsonb DEFAULT '{}')
    RETURNS TABLE (offer_id text, stage text, reason text)
LANGUAGE sql AS $$
    SELECT r.offer_id, r.explanation ->> 'droppedAt', r.explanation ->> 'reason'
      FROM kaireon.recommend('rp', customer, channel, placement, context, 50, flow,
                             options || '{"dry_run": true, "debug": true}') r
     WHERE r.rank IS NULL ORDER BY r.offer_id, r.placement_id
$$;
CREATE FUNCTION pg_temp.flow_of(channel text, placement text DEFAULT NULL, flow text DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT string_agg(DISTINCT (r.explanation -> 'flow' ->> 'key') || ' v' || (r.explanation -> 'flow' ->> 'version'), ',')
      FROM kaireon.recommend('rp', 'c1', channel, placement, '{}', NULL, flow, '{"dry_run": true}') r
$$;

-- ---------------------------------------------------------------------------------------
-- 1. Flow resolution: the named flow; else the highest-priority active route whose
--    placement is the requested one or empty; else the default flow.
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.flow_of('web', 'hero') AS web_hero,            -- r-hero (10) beats r-chan (5), r-hero-low (1)
       pg_temp.flow_of('web', 'side') AS web_side,            -- only the placement-less route serves side
       pg_temp.flow_of('web') AS web_no_placement,            -- a route with a placement needs that placement
       pg_temp.flow_of('email') AS email,                     -- no route: the default flow
       pg_temp.flow_of('web', 'hero', 'main') AS named;       -- a named flow wins over routes
-- an inactive or soft-deleted route no longer serves
UPDATE kaireon.flow_routes SET status = 'inactive' WHERE tenant_id = 'rp' AND id = 'r-hero';
SELECT pg_temp.flow_of('web', 'hero') AS hero_without_r_hero;
UPDATE kaireon.flow_routes SET deleted_at = now() WHERE tenant_id = 'rp' AND id = 'r-chan';
SELECT pg_temp.flow_of('web', 'hero') AS hero_without_r_chan, pg_temp.flow_of('web', 'side') AS side_falls_to_default;
UPDATE kaireon.flow_routes SET status = 'active', deleted_at = NULL WHERE tenant_id = 'rp';
SELECT pg_temp.flow_of('web', 'hero') AS hero_restored;
-- a route to a flow that is not published is passed over for the next one (docs: "the flow
-- must be published"; only a named or default flow that is not is an error)
INSERT INTO kaireon.flow_routes (tenant_id, id, channel_id, placement_id, decision_flow_id, priority)
    VALUES ('rp', 'r-draft', 'web', 'hero', 'f-draft', 100);
SELECT pg_temp.flow_of('web', 'hero') AS hero_with_draft_route;
DELETE FROM kaireon.flow_routes WHERE tenant_id = 'rp' AND id = 'r-draft';
-- a named flow that is not published: 55000; one that does not exist: 42704
SELECT pg_temp.flow_of('web', 'hero', 'draft-flow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.flow_of('web', 'hero', 'no-such-flow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a paused flow is not runnable either
UPDATE kaireon.decision_flows SET status = 'paused' WHERE tenant_id = 'rp' AND key = 'main';
SELECT pg_temp.flow_of('email');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET status = 'published' WHERE tenant_id = 'rp' AND key = 'main';
-- no default flow and no route: 55000
UPDATE kaireon.decision_flows SET is_default = false WHERE tenant_id = 'rp' AND key = 'main';
SELECT pg_temp.flow_of('email');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a default flow that was never published: 55000
UPDATE kaireon.decision_flows SET is_default = true WHERE tenant_id = 'rp' AND key = 'draft-flow';
SELECT pg_temp.flow_of('email');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET is_default = false WHERE tenant_id = 'rp';
UPDATE kaireon.decision_flows SET is_default = true WHERE tenant_id = 'rp' AND key = 'main';
SELECT pg_temp.flow_of('email') AS email_default_again;

-- ---------------------------------------------------------------------------------------
-- 2. publish_decision_flow: each publish appends an immutable version; recommend runs the
--    latest published version, never the draft.
-- ---------------------------------------------------------------------------------------
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 1}' WHERE tenant_id = 'rp' AND key = 'main';
SELECT pg_temp.picks('c1', 'email', flow => NULL) AS draft_not_used_yet;
SELECT kaireon.publish_decision_flow('rp', 'main', 'one offer') AS new_version;
SELECT pg_temp.picks('c1', 'email', flow => NULL) AS published_used, pg_temp.flow_of('email') AS flow;
SELECT status, published_version, jsonb_array_length(published_versions) AS versions,
       published_versions -> 0 -> 'config' AS v1_config, published_versions -> 1 -> 'config' AS v2_config,
       published_versions -> 1 ->> 'notes' AS v2_notes, published_versions -> 1 ->> 'publishedBy' = session_user AS v2_by_me,
       published_versions -> 1 ->> 'publishedAt' IS NOT NULL AS v2_dated
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key = 'main';
-- published versions cannot be changed or removed (55000)
UPDATE kaireon.decision_flows SET published_versions = '[]' WHERE tenant_id = 'rp' AND key = 'main';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET published_versions = jsonb_set(published_versions, '{0,config}', '{"maxOffers": 9}')
 WHERE tenant_id = 'rp' AND key = 'main';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a draft is validated when written (22023), so a bad one is never published
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 0}' WHERE tenant_id = 'rp' AND key = 'main';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET draft_config = '{"placementMatchMode": "loose"}' WHERE tenant_id = 'rp' AND key = 'main';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- publishing an unknown flow: 42704; NULL arguments: 22004
SELECT kaireon.publish_decision_flow('rp', 'no-such-flow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.publish_decision_flow('rp', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- Four-eyes (docs/security.md): with it on, a publish is filed as an approval request
-- (decision_flow.publish) and returns NULL, nothing published; another user's approval
-- publishes the draft as it was requested; a draft changed after the request is not
-- published (55000, the request stays pending).
INSERT INTO kaireon.users (tenant_id, id, email, role) VALUES
    ('rp', 'alice', 'alice@example.com', 'editor'), ('rp', 'bob', 'bob@example.com', 'approver');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-fe', 'fe', 'Four eyes', '{"maxOffers": 2}');
INSERT INTO kaireon.tenant_settings (tenant_id, four_eyes_enabled) VALUES ('rp', true);
SET kaireon.user_id = 'alice';
SET client_min_messages = warning;   -- the NOTICE names the generated request id
SELECT kaireon.publish_decision_flow('rp', 'fe', 'reviewed') IS NULL AS filed;
RESET client_min_messages;
SELECT status, published_version FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key = 'fe';
SELECT id AS req FROM kaireon.approval_requests WHERE tenant_id = 'rp' AND action = 'decision_flow.publish' AND status = 'pending' \gset
-- the requester cannot approve it
\set VERBOSITY sqlstate
SELECT kaireon.approve_request('rp', :'req');
\set VERBOSITY terse
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rp', :'req') AS approval;
SELECT status, published_version, published_versions -> 0 -> 'config' AS config, published_versions -> 0 ->> 'notes' AS notes
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key = 'fe';
SET kaireon.user_id = 'alice';
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 3}' WHERE tenant_id = 'rp' AND key = 'fe';
SET client_min_messages = warning;
SELECT kaireon.publish_decision_flow('rp', 'fe') IS NULL AS filed;
RESET client_min_messages;
SELECT id AS req FROM kaireon.approval_requests WHERE tenant_id = 'rp' AND action = 'decision_flow.publish' AND status = 'pending' \gset
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 4}' WHERE tenant_id = 'rp' AND key = 'fe';
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rp', :'req');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT published_version, (SELECT status FROM kaireon.approval_requests WHERE tenant_id = 'rp' AND id = :'req') AS request
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key = 'fe';
SELECT kaireon.reject_request('rp', :'req', reason => 'the draft changed');
-- nor by writing the table (42501): the published versions, the published version, a
-- published status; drafts stay free to edit
UPDATE kaireon.decision_flows SET published_version = NULL WHERE tenant_id = 'rp' AND key = 'fe';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET published_versions = published_versions || '[{"version": 2, "config": {"maxOffers": 9}}]',
       published_version = 2 WHERE tenant_id = 'rp' AND key = 'fe';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, status, draft_config)
    VALUES ('rp', 'f-sneaky', 'sneaky', 'Sneaky', 'published', '{}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 1}' WHERE tenant_id = 'rp' AND key = 'fe';
SELECT published_version, draft_config FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key = 'fe';
-- four-eyes off, itself approved
SET kaireon.user_id = 'alice';
SELECT kaireon.request_approval('rp', 'four_eyes.settings_change', NULL, '{"four_eyes_enabled": false}') AS req \gset
SET kaireon.user_id = 'bob';
SELECT kaireon.approve_request('rp', :'req') AS four_eyes_off;
RESET kaireon.user_id;
-- back to two offers for the rest of the test
UPDATE kaireon.decision_flows SET draft_config = '{"maxOffers": 2}' WHERE tenant_id = 'rp' AND key = 'main';
SELECT kaireon.publish_decision_flow('rp', 'main', 'two again') AS version;

-- ---------------------------------------------------------------------------------------
-- 3. Candidates. With no restriction every active offer with a creative for the channel is
--    one; "paused" is not (not even reported by debug: only active offers are candidates).
-- ---------------------------------------------------------------------------------------
SELECT pg_temp.picks('c1', 'web') AS all_active;
SELECT * FROM pg_temp.dropped('c1', 'web');
UPDATE kaireon.offers SET status = 'active' WHERE tenant_id = 'rp' AND id = 'paused';
SELECT pg_temp.picks('c1', 'web') AS paused_activated;
UPDATE kaireon.offers SET status = 'paused' WHERE tenant_id = 'rp' AND id = 'paused';
-- soft-deleted offers, and offers whose category or sub-category is soft-deleted, are gone
UPDATE kaireon.offers SET deleted_at = now() WHERE tenant_id = 'rp' AND id = 'gold';
SELECT pg_temp.picks('c1', 'web') AS gold_deleted;
UPDATE kaireon.offers SET deleted_at = NULL WHERE tenant_id = 'rp' AND id = 'gold';
UPDATE kaireon.categories SET deleted_at = now() WHERE tenant_id = 'rp' AND id = 'loans';
SELECT pg_temp.picks('c1', 'web') AS loans_category_deleted;
UPDATE kaireon.categories SET deleted_at = NULL WHERE tenant_id = 'rp' AND id = 'loans';
UPDATE kaireon.sub_categories SET deleted_at = now() WHERE tenant_id = 'rp' AND id = 'travel';
SELECT pg_temp.picks('c1', 'web') AS travel_sub_category_deleted;
UPDATE kaireon.sub_categories SET deleted_at = NULL WHERE tenant_id = 'rp' AND id = 'travel';
-- an offer without a creative for the channel (loan on email) is dropped, and so is one
-- whose creative is inactive or soft-deleted. A request without a placement may use a
-- creative of any placement of the channel (miles-mail belongs to body).
SELECT * FROM pg_temp.dropped('c1', 'email');
UPDATE kaireon.creatives SET status = 'inactive' WHERE tenant_id = 'rp' AND id = 'gold-web';
SELECT pg_temp.picks('c1', 'web') AS gold_creative_inactive;
UPDATE kaireon.creatives SET status = 'active', deleted_at = now() WHERE tenant_id = 'rp' AND id = 'gold-web';
SELECT pg_temp.picks('c1', 'web') AS gold_creative_deleted;
UPDATE kaireon.creatives SET deleted_at = NULL WHERE tenant_id = 'rp' AND id = 'gold-web';

-- Schedules: start and end (end exclusive).
UPDATE kaireon.offers SET schedule = jsonb_build_object('start', now() + interval '1 day') WHERE tenant_id = 'rp' AND id = 'gold';
SELECT * FROM pg_temp.dropped('c1', 'web');
UPDATE kaireon.offers SET schedule = jsonb_build_object('start', now() - interval '1 day', 'end', now() + interval '1 day')
 WHERE tenant_id = 'rp' AND id = 'gold';
SELECT pg_temp.picks('c1', 'web') AS within_start_end;
UPDATE kaireon.offers SET schedule = jsonb_build_object('end', now() - interval '1 minute') WHERE tenant_id = 'rp' AND id = 'gold';
SELECT * FROM pg_temp.dropped('c1', 'web');
-- Weekdays (0 = Sunday) and hours (end exclusive; start > end wraps midnight), computed from
-- the transaction's time so this holds at any hour. Each transaction sets the schedules and
-- decides at the same now().
BEGIN;
UPDATE kaireon.offers SET schedule = CASE id
        -- gold: today, this hour
        WHEN 'gold' THEN jsonb_build_object('days', jsonb_build_array(extract(dow FROM now() AT TIME ZONE 'UTC')::int),
                                            'hours', jsonb_build_object('start', extract(hour FROM now() AT TIME ZONE 'UTC')::int,
                                                                        'end', extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1))
        -- miles: every other weekday
        WHEN 'miles' THEN jsonb_build_object('days', (SELECT jsonb_agg(d) FROM generate_series(0, 6) d
                                                      WHERE d <> extract(dow FROM now() AT TIME ZONE 'UTC')::int))
        -- loan: the next hour only
        ELSE jsonb_build_object('hours', jsonb_build_object('start', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1) % 24,
                                                            'end', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1) % 24 + 1))
    END
 WHERE tenant_id = 'rp' AND id IN ('gold', 'miles', 'loan');
SELECT pg_temp.picks('c1', 'web') AS today_this_hour;
SELECT * FROM pg_temp.dropped('c1', 'web');
COMMIT;
BEGIN;
-- a window that wraps midnight and holds now (from this hour to the hour before it), and
-- one that wraps and does not (from the next hour to this one)
UPDATE kaireon.offers SET schedule = CASE id
        WHEN 'gold' THEN jsonb_build_object('hours', jsonb_build_object(
            'start', extract(hour FROM now() AT TIME ZONE 'UTC')::int,
            'end', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 22) % 24 + 1))
        ELSE jsonb_build_object('hours', jsonb_build_object(
            'start', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1) % 24,
            'end', (extract(hour FROM now() AT TIME ZONE 'UTC')::int + 23) % 24 + 1))
    END
 WHERE tenant_id = 'rp' AND id IN ('gold', 'miles');
UPDATE kaireon.offers SET schedule = '{}' WHERE tenant_id = 'rp' AND id = 'loan';
SELECT pg_temp.picks('c1', 'web') AS wrapping_windows;
COMMIT;
BEGIN;
-- time zones: the hour and weekday in the offer's time zone (Asia/Tokyo is UTC+9, no DST);
-- miles has the same local window without a time zone, so it is read in UTC and fails
UPDATE kaireon.offers SET schedule = CASE id
        WHEN 'gold' THEN jsonb_build_object('timezone', 'Asia/Tokyo',
            'days', jsonb_build_array(extract(dow FROM now() AT TIME ZONE 'Asia/Tokyo')::int),
            'hours', jsonb_build_object('start', extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::int,
                                        'end', extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::int + 1))
        ELSE jsonb_build_object(
            'hours', jsonb_build_object('start', extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::int,
                                        'end', extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::int + 1))
    END
 WHERE tenant_id = 'rp' AND id IN ('gold', 'miles');
SELECT pg_temp.picks('c1', 'web') AS tokyo_schedule;
COMMIT;
UPDATE kaireon.offers SET schedule = '{}' WHERE tenant_id = 'rp';

-- Inventory: an offer is in it when it matches any listed category, sub-category or offer.
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-inv-cat', 'inv-cat', 'Loans only', '{"inventory": {"categories": ["loans"]}}'),
    ('rp', 'f-inv-sub', 'inv-sub', 'Travel only', '{"inventory": {"subCategories": ["travel"]}}'),
    ('rp', 'f-inv-offer', 'inv-offer', 'Gold and loans', '{"inventory": {"offers": ["gold"], "categories": ["loans"]}}'),
    ('rp', 'f-inv-excl', 'inv-excl', 'Cards but not gold', '{"inventory": {"categories": ["cards"], "excludeOffers": ["gold"]}}');
SELECT count(kaireon.publish_decision_flow('rp', key)) AS published
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key LIKE 'inv-%';
SELECT pg_temp.picks('c1', 'web', flow => 'inv-cat') AS categories,
       pg_temp.picks('c1', 'web', flow => 'inv-sub') AS sub_categories,
       pg_temp.picks('c1', 'web', flow => 'inv-offer') AS offers_or_categories,
       pg_temp.picks('c1', 'web', flow => 'inv-excl') AS flow_exclude;
SELECT * FROM pg_temp.dropped('c1', 'web', flow => 'inv-cat');
SELECT * FROM pg_temp.dropped('c1', 'web', flow => 'inv-excl');
-- the request's exclude_offers
SELECT pg_temp.picks('c1', 'web', options => '{"exclude_offers": ["gold", "loan", "no-such-offer"]}') AS exclude_offers;
SELECT * FROM pg_temp.dropped('c1', 'web', options => '{"exclude_offers": ["gold"]}');

-- Creatives by the flow's placementMatchMode, for placement hero: pm-a has a hero creative
-- and one without placement (weight 0), pm-b only a side creative, pm-c only one without
-- placement.
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('rp', 'pm-a', 'PM a', 'active', 50), ('rp', 'pm-b', 'PM b', 'active', 40), ('rp', 'pm-c', 'PM c', 'active', 30);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, placement_id, name, weight) VALUES
    ('rp', 'pma-hero', 'pm-a', 'web', 'hero', 'PM a hero', 100),
    ('rp', 'pma-gen', 'pm-a', 'web', NULL, 'PM a generic', 0),
    ('rp', 'pmb-side', 'pm-b', 'web', 'side', 'PM b side', 100),
    ('rp', 'pmc-gen', 'pm-c', 'web', NULL, 'PM c generic', 100);
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-pm-strict', 'pm-strict', 'strict', '{"placementMatchMode": "strict", "inventory": {"offers": ["pm-a", "pm-b", "pm-c"]}}'),
    ('rp', 'f-pm-fallback', 'pm-fallback', 'fallback', '{"placementMatchMode": "fallback", "inventory": {"offers": ["pm-a", "pm-b", "pm-c"]}}'),
    ('rp', 'f-pm-any', 'pm-any', 'any', '{"placementMatchMode": "any", "inventory": {"offers": ["pm-a", "pm-b", "pm-c"]}}'),
    ('rp', 'f-pm-default', 'pm-default', 'default mode', '{"inventory": {"offers": ["pm-a", "pm-b", "pm-c"]}}');
SELECT count(kaireon.publish_decision_flow('rp', key)) AS published
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key LIKE 'pm-%';
SELECT pg_temp.picks('c1', 'web', 'hero', flow => 'pm-strict') AS strict,
       pg_temp.picks('c1', 'web', 'hero', flow => 'pm-fallback') AS fallback,
       pg_temp.picks('c1', 'web', 'hero', flow => 'pm-default') AS default_is_fallback,
       pg_temp.picks('c1', 'web', 'hero', flow => 'pm-any') AS any;
SELECT * FROM pg_temp.dropped('c1', 'web', 'hero', flow => 'pm-strict');
SELECT * FROM pg_temp.dropped('c1', 'web', 'hero', flow => 'pm-fallback');
-- exclude_creatives: without pma-hero, fallback takes pm-a's creative without placement
-- (the exclusion applies before the fallback); without pmc-gen, pm-c has none left
SELECT pg_temp.picks('c1', 'web', 'hero', flow => 'pm-fallback',
                     options => '{"exclude_creatives": ["pma-hero", "pmc-gen"]}') AS exclude_creatives;
SELECT * FROM pg_temp.dropped('c1', 'web', 'hero', flow => 'pm-fallback',
                              options => '{"exclude_creatives": ["pma-hero", "pmc-gen"]}');
-- a creative whose placement is soft-deleted is not one without placement: once side is
-- deleted, pm-b's side creative is still no fallback for hero
UPDATE kaireon.placements SET deleted_at = now() WHERE tenant_id = 'rp' AND id = 'side';
SELECT pg_temp.picks('c1', 'web', 'hero', flow => 'pm-fallback') AS fallback_side_deleted;
UPDATE kaireon.placements SET deleted_at = NULL WHERE tenant_id = 'rp' AND id = 'side';
-- the creatives a pick chooses among are kept per offer with the compiled configuration for
-- the last (channel, placement, mode) without exclusions (decision/pipeline.c); an empty
-- exclusion list takes the path that keeps none: the same picks for every key, in an order
-- that changes the key at each step and comes back to earlier ones
SELECT k, flow, channel, placement,
       pg_temp.picks('c1', channel, placement, flow => flow) =
       pg_temp.picks('c1', channel, placement, flow => flow, options => '{"exclude_creatives": []}') AS same,
       pg_temp.picks('c1', channel, placement, flow => flow) AS picks
  FROM (VALUES (1, 'pm-strict', 'web', 'hero'), (2, 'pm-fallback', 'web', 'hero'), (3, 'pm-any', 'web', 'hero'),
               (4, 'pm-strict', 'web', 'side'), (5, 'pm-fallback', 'web', 'side'), (6, 'pm-fallback', 'web', NULL),
               (7, 'pm-strict', 'web', 'hero'), (8, 'pm-fallback', 'email', 'body'), (9, 'pm-fallback', 'web', 'hero'),
               (10, 'pm-any', 'web', 'side')) AS v (k, flow, channel, placement)
 ORDER BY k;
UPDATE kaireon.offers SET status = 'paused' WHERE tenant_id = 'rp' AND id IN ('pm-a', 'pm-b', 'pm-c');

-- Weighted creative choice: ab has two creatives of weight 50 and one of weight 0. The draw is
-- fixed by the recommendation id and the offer: with two placements in one request (one
-- recommendation id) the offer gets the same creative in both; across requests both
-- weighted creatives come up and the weight-0 one never does.
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('rp', 'ab', 'A/B offer', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name, weight) VALUES
    ('rp', 'ab-0', 'ab', 'web', 'never', 0), ('rp', 'ab-1', 'ab', 'web', 'one', 50), ('rp', 'ab-2', 'ab', 'web', 'two', 50);
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-ab', 'ab', 'A/B', '{"placementMatchMode": "any", "inventory": {"offers": ["ab"]}}');
SELECT kaireon.publish_decision_flow('rp', 'ab');
CREATE TEMP TABLE ab_draws AS
SELECT i, r.recommendation_id, r.placement_id, r.creative_id
  FROM generate_series(1, 60) i,
       LATERAL kaireon.recommend('rp', 'c1', 'web', context => jsonb_build_object('i', i), decision_flow => 'ab',
                                 options => '{"dry_run": true, "placements": ["hero", "side"]}') r;
SELECT count(*) AS rows, count(DISTINCT recommendation_id) AS recommendations,
       count(DISTINCT i) FILTER (WHERE creative_id = 'ab-1') > 0 AS ab1_drawn,
       count(DISTINCT i) FILTER (WHERE creative_id = 'ab-2') > 0 AS ab2_drawn,
       count(*) FILTER (WHERE creative_id = 'ab-0') AS ab0_drawn
  FROM ab_draws;
SELECT count(*) AS requests_with_two_creatives
  FROM (SELECT recommendation_id FROM ab_draws GROUP BY 1 HAVING count(DISTINCT creative_id) > 1) x;
UPDATE kaireon.offers SET status = 'paused' WHERE tenant_id = 'rp' AND id = 'ab';

-- ---------------------------------------------------------------------------------------
-- 4. max_offers: the request's (1..50), else the flow's maxOffers, else 3.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-nomax', 'no-max', 'No maxOffers', '{}');
SELECT kaireon.publish_decision_flow('rp', 'no-max');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES ('rp', 'extra', 'Extra', 'active', 10);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rp', 'extra-web', 'extra', 'web', 'Extra web');
SELECT pg_temp.picks('c1', 'web', flow => 'main') AS flow_max_2,
       pg_temp.picks('c1', 'web', flow => 'no-max') AS default_3,
       pg_temp.picks('c1', 'web', flow => 'main', max_offers => 1) AS request_1,
       pg_temp.picks('c1', 'web', flow => 'main', max_offers => 50) AS request_50;
SELECT pg_temp.picks('c1', 'web', max_offers => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.picks('c1', 'web', max_offers => 51);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM kaireon.offers WHERE tenant_id = 'rp' AND id = 'extra';

-- ---------------------------------------------------------------------------------------
-- 5. Grouped placements (options.placements): each placement is decided in turn with its
--    own flow (here by the routes: hero-flow for hero, chan-flow for side); with
--    deduplicate an offer placed once is not a candidate again.
-- ---------------------------------------------------------------------------------------
UPDATE kaireon.decision_flows SET draft_config = '{"inventory": {"offers": ["gold", "miles"]}}'
 WHERE tenant_id = 'rp' AND key = 'hero-flow';
UPDATE kaireon.decision_flows SET draft_config = '{"inventory": {"offers": ["gold", "loan"]}}'
 WHERE tenant_id = 'rp' AND key = 'chan-flow';
SELECT kaireon.publish_decision_flow('rp', 'hero-flow') AS hero_v, kaireon.publish_decision_flow('rp', 'chan-flow') AS chan_v;
SELECT r.placement_id, r.rank, r.offer_id, r.explanation -> 'flow' ->> 'key' AS flow
  FROM kaireon.recommend('rp', 'c1', 'web', options => '{"dry_run": true, "placements": ["hero", "side"]}') r
 ORDER BY 1, 2;
CREATE TEMP TABLE dedup AS
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"dry_run": true, "placements": ["hero", "side"], "deduplicate": true}');
SELECT placement_id, rank, offer_id FROM dedup ORDER BY 1, 2;
SELECT count(DISTINCT recommendation_id) AS one_recommendation_id FROM dedup;
-- deduplicate: the side placement reports gold as already placed
SELECT * FROM pg_temp.dropped('c1', 'web', flow => NULL, options => '{"placements": ["hero", "side"], "deduplicate": true}');
-- a placement and options.placements together, a placement of another channel, an unknown
-- placement: refused before anything is decided
SELECT pg_temp.picks('c1', 'web', 'hero', options => '{"placements": ["hero", "side"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.picks('c1', 'web', options => '{"placements": ["hero", "body"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_temp.picks('c1', 'web', 'nowhere');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------
-- 6. Recording. A dry run writes nothing (and has no interaction ids); a recording call
--    writes one recommendation row per decision, plus one impression row each when the
--    channel's impression_mode is implicit (web), none when explicit (email).
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS history_before FROM kaireon.interaction_history WHERE tenant_id = 'rp';
SELECT count(*) AS dry_rows, count(interaction_id) AS interaction_ids
  FROM kaireon.recommend('rp', 'rec1', 'web', 'hero', options => '{"dry_run": true}');
SELECT count(*) AS history_after_dry_run FROM kaireon.interaction_history WHERE tenant_id = 'rp';
CREATE TEMP TABLE rec_web AS
SELECT * FROM kaireon.recommend('rp', 'rec1', 'web', 'hero', context => '{"device": "mobile"}');
SELECT rank, offer_id, creative_id, placement_id, interaction_id IS NOT NULL AS has_interaction FROM rec_web ORDER BY rank;
SELECT h.interaction_type, count(*) AS rows, count(DISTINCT h.rank) AS ranks,
       bool_and(h.recommendation_id = (SELECT DISTINCT recommendation_id FROM rec_web)) AS same_recommendation,
       bool_and(h.customer_id = 'rec1' AND h.channel_id = 'web' AND h.placement_id = 'hero') AS customer_channel_placement,
       bool_and(h.decision_flow_id = 'f-hero') AS flow_id,
       bool_and(h.context = '{"device": "mobile"}') AS context,
       bool_and(h.outcome_type_key IS NULL) AS no_outcome
  FROM kaireon.interaction_history h WHERE h.tenant_id = 'rp' AND h.customer_id = 'rec1'
 GROUP BY 1 ORDER BY 1;
-- each decision's interaction_id is its recommendation row, with its offer, creative, rank and score
SELECT count(*) AS matching_rows
  FROM rec_web r JOIN kaireon.interaction_history h
    ON h.tenant_id = 'rp' AND h.id = r.interaction_id AND h.interaction_type = 'recommendation'
   AND h.offer_id = r.offer_id AND h.creative_id = r.creative_id AND h.rank = r.rank AND h.score = r.score;
CREATE TEMP TABLE rec_mail AS SELECT * FROM kaireon.recommend('rp', 'rec2', 'email');
SELECT h.interaction_type, count(*) AS rows, bool_and(h.placement_id IS NULL) AS no_placement,
       bool_and(h.decision_flow_id = 'f-main') AS default_flow
  FROM kaireon.interaction_history h WHERE h.tenant_id = 'rp' AND h.customer_id = 'rec2' GROUP BY 1;
-- recording in a transaction that rolls back leaves nothing
BEGIN;
SELECT count(*) AS decided FROM kaireon.recommend('rp', 'rec3', 'web');
ROLLBACK;
SELECT count(*) AS rec3_rows FROM kaireon.interaction_history WHERE tenant_id = 'rp' AND customer_id = 'rec3';

-- ---------------------------------------------------------------------------------------
-- 7. Mandatory offers come first, at most 5 per customer per day; beyond that a mandatory
--    offer competes as an ordinary one.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority, mandatory)
    SELECT 'rp', 'must' || i, 'Must ' || i, CASE WHEN i = 1 THEN 'active' ELSE 'draft' END, 5, true
      FROM generate_series(1, 6) i;
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
    SELECT 'rp', 'must' || i || '-web', 'must' || i, 'web', 'Must ' || i FROM generate_series(1, 6) i;
-- must1 scores 0.05 and still comes first
SELECT rank, offer_id, round(score::numeric, 4) AS score, explanation -> 'mandatory' AS mandatory
  FROM kaireon.recommend('rp', 'm1', 'web', max_offers => 2, decision_flow => 'all', options => '{"dry_run": true}');
-- five recorded decisions serve must1 today ... (one transaction: one "today")
BEGIN;
SELECT i, r.offer_id
  FROM generate_series(1, 5) i,
       LATERAL kaireon.recommend('rp', 'm1', 'web', context => jsonb_build_object('i', i), max_offers => 1,
                                 decision_flow => 'all') r ORDER BY i;
-- ... so the sixth decision ranks it by its score, as an ordinary offer
SELECT rank, offer_id, round(score::numeric, 4) AS score, explanation -> 'mandatory' AS mandatory
  FROM kaireon.recommend('rp', 'm1', 'web', decision_flow => 'all', options => '{"dry_run": true}') ORDER BY rank;
-- another customer is not affected
SELECT pg_temp.picks('m2', 'web', max_offers => 1) AS other_customer;
COMMIT;
-- six mandatory offers in one request: five come first; the sixth competes by score
UPDATE kaireon.offers SET status = 'active' WHERE tenant_id = 'rp' AND id LIKE 'must%';
-- (regression: the sixth was once placed 6th, ahead of gold, miles and loan): the sixth
-- (must6, score 0.05) competes as an ordinary offer and ranks after loan, 9th.
SELECT rank, offer_id, explanation -> 'mandatory' AS mandatory
  FROM kaireon.recommend('rp', 'm3', 'web', max_offers => 9, decision_flow => 'all', options => '{"dry_run": true}')
 ORDER BY rank;
UPDATE kaireon.offers SET status = 'paused' WHERE tenant_id = 'rp' AND id LIKE 'must%';

-- ---------------------------------------------------------------------------------------
-- 8. Scores. priority_weighted (default): (priority/100) * (weight/100) * match.
-- ---------------------------------------------------------------------------------------
SELECT offer_id, round(score::numeric, 6) AS score, propensity, explanation ->> 'method' AS method,
       explanation -> 'factors' AS factors, explanation ? 'propensity' AS explains_propensity
  FROM kaireon.recommend('rp', 'c1', 'web', decision_flow => 'all', options => '{"dry_run": true}') ORDER BY rank;
-- propensity: propensity * match, the propensity adaptive (model_adaptations rows without a
-- model). With no counts at all every offer gets the default 0.5, "cold".
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-prop', 'prop', 'By propensity', '{"score": {"method": "propensity"}, "inventory": {"offers": ["gold", "miles", "loan"]}}'),
    ('rp', 'f-formula', 'formula', 'PRIE', '{"score": {"method": "formula"}, "inventory": {"offers": ["gold", "miles", "loan"]}}'),
    ('rp', 'f-formula-w', 'formula-w', 'PRIE weighted', '{"score": {"method": "formula", "weights": {"propensity": 1, "relevance": 0, "impact": 0, "emphasis": 0}}, "inventory": {"offers": ["gold", "miles", "loan"]}}');
SELECT count(kaireon.publish_decision_flow('rp', key)) AS published
  FROM kaireon.decision_flows WHERE tenant_id = 'rp' AND key IN ('prop', 'formula', 'formula-w');
CREATE FUNCTION pg_temp.scores(flow text)
    RETURNS TABLE (offer_id text, score numeric, propensity numeric, source text, outcomes int, maturity text, factors jsonb)
LANGUAGE sql AS $$
    SELECT r.offer_id, round(r.score::numeric, 6), round(r.propensity::numeric, 6),
           r.explanation -> 'propensity' ->> 'source', (r.explanation -> 'propensity' ->> 'outcomes')::int,
           r.explanation -> 'propensity' ->> 'maturity', r.explanation -> 'factors'
      FROM kaireon.recommend('rp', 'c1', 'web', decision_flow => flow, options => '{"dry_run": true}') r
     ORDER BY r.rank
$$;
SET kaireon.adaptation_refresh_ms = 3600000;
SELECT * FROM pg_temp.scores('prop');
-- Counts: gold has 50 outcomes of its own (30 positive): its own rate 0.6, "maturing".
-- miles has 5 (3 positive), blended with its category's rate (cards: 20 outcomes, 15
-- positive, 0.75): (3 + 10 * 0.75) / (5 + 10) = 0.7, "immature". loan has none and its
-- category none: the tenant's rate (10 outcomes, 4 positive) = 0.4, "cold".
INSERT INTO kaireon.model_adaptations (tenant_id, model_id, scope, scope_id, positives, negatives, positive_rate) VALUES
    ('rp', NULL, 'offer', 'gold', 30, 20, 0.6),
    ('rp', NULL, 'offer', 'miles', 3, 2, 0.6),
    ('rp', NULL, 'category', 'cards', 15, 5, 0.75),
    ('rp', NULL, 'global', NULL, 4, 6, 0.4);
-- the backend reads the counts at most once per kaireon.adaptation_refresh_ms: within the
-- hour set above it still has the empty ones; with 0 it reads them for every decision
SELECT offer_id, propensity, source FROM pg_temp.scores('prop') WHERE offer_id = 'gold';
SET kaireon.adaptation_refresh_ms = 0;
SELECT * FROM pg_temp.scores('prop');
-- below the thresholds the priors are not used: cards with 19 outcomes, the tenant with 9
UPDATE kaireon.model_adaptations SET negatives = 4 WHERE tenant_id = 'rp' AND scope = 'category';
UPDATE kaireon.model_adaptations SET negatives = 5 WHERE tenant_id = 'rp' AND scope = 'global';
SELECT * FROM pg_temp.scores('prop');
-- 200 outcomes or more: "mature"
UPDATE kaireon.model_adaptations SET positives = 150, negatives = 50 WHERE tenant_id = 'rp' AND scope_id = 'gold';
SELECT offer_id, propensity, source, outcomes, maturity FROM pg_temp.scores('prop') WHERE offer_id = 'gold';
UPDATE kaireon.model_adaptations SET negatives = 5 WHERE tenant_id = 'rp' AND scope = 'category';
UPDATE kaireon.model_adaptations SET negatives = 6 WHERE tenant_id = 'rp' AND scope = 'global';
UPDATE kaireon.model_adaptations SET positives = 30, negatives = 20 WHERE tenant_id = 'rp' AND scope_id = 'gold';
-- formula (PRIE): P^0.4 * R^0.2 * I^0.3 * E^0.1 with P the propensity, R the match factor,
-- I the offer's value over the largest value among the candidates (miles: 300), E
-- priority/100 times levers.emphasis (loan: 0.5).
UPDATE kaireon.offers SET levers = '{"emphasis": 0.5}' WHERE tenant_id = 'rp' AND id = 'loan';
CREATE TEMP TABLE prie AS SELECT * FROM pg_temp.scores('formula');
SELECT offer_id, score, propensity, factors FROM prie;
SELECT offer_id,
       abs(score - round((power((factors ->> 'P')::numeric, 0.4) * power((factors ->> 'R')::numeric, 0.2)
                          * power((factors ->> 'I')::numeric, 0.3) * power((factors ->> 'E')::numeric, 0.1)), 6)) <= 0.000001 AS score_is_prie,
       (factors ->> 'P')::numeric = propensity AS p_is_propensity
  FROM prie ORDER BY offer_id;
-- the flow's weights replace the defaults: with only the propensity weighted, score = P
SELECT offer_id, score, propensity, factors -> 'weights' AS weights FROM pg_temp.scores('formula-w');
UPDATE kaireon.offers SET levers = '{}' WHERE tenant_id = 'rp' AND id = 'loan';
DELETE FROM kaireon.model_adaptations WHERE tenant_id = 'rp';

-- ---------------------------------------------------------------------------------------
-- 9. recommend_json: the REST shape.
-- ---------------------------------------------------------------------------------------
CREATE TEMP TABLE rj AS SELECT kaireon.recommend_json(
    '{"tenantId": "rp", "customerId": "c1", "channel": "web", "placement": "hero", "maxOffers": 1,
      "decisionFlow": "all", "dryRun": true, "context": {"device": "tablet"}}') AS r;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r) k) AS keys,
       r ->> 'tenantId' AS tenant, r ->> 'customerId' AS customer, r ->> 'channel' AS channel,
       r -> 'dryRun' AS dry_run, jsonb_array_length(r -> 'decisions') AS decisions,
       r ->> 'recommendationId' ~ '^[0-9a-f-]{36}$' AS uuid
  FROM rj;
SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r -> 'decisions' -> 0) k) AS decision_keys,
       (r -> 'decisions' -> 0) - 'explanation' AS decision
  FROM rj;
-- several placements: the decisions, and the same grouped by placement
SELECT jsonb_array_length(r -> 'decisions') AS decisions,
       jsonb_path_query_array(r, '$.placements[*].placementId') AS placements,
       jsonb_path_query_array(r, '$.placements[*].decisions[*].offerId') AS grouped_offers
  FROM kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "placements": ["hero", "side"],
                                "maxOffers": 1, "decisionFlow": "all", "dryRun": true, "deduplicate": true}') r;
-- debug: the funnel per placement, the dropped candidates and the policy snapshot hash
SELECT r -> 'debug' -> 'funnel' AS funnel, r -> 'debug' -> 'dropped' AS dropped,
       r -> 'debug' ->> 'policySnapshot' ~ '^[0-9a-f]{16}$' AS snapshot_hash
  FROM kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "decisionFlow": "inv-cat",
                                "dryRun": true, "debug": true, "excludeOffers": ["loan"]}') r;
-- the debug rows of kaireon.recommend carry the same funnel
SELECT offer_id, rank, explanation -> 'funnel' AS funnel
  FROM kaireon.recommend('rp', 'c1', 'web', decision_flow => 'inv-cat', options => '{"dry_run": true, "debug": true}')
 ORDER BY offer_id;
-- recording through recommend_json gives interaction ids
SELECT jsonb_path_query_array(r, '$.decisions[*].interactionId') <> '[null, null]' AS has_ids, r -> 'dryRun' AS dry_run
  FROM kaireon.recommend_json('{"tenantId": "rp", "customerId": "rj1", "channel": "email"}') r;
SELECT count(*) AS rj1_rows FROM kaireon.interaction_history WHERE tenant_id = 'rp' AND customer_id = 'rj1';
-- bad requests
SELECT kaireon.recommend_json(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('[]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "dry_run": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "channel": "web"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "maxOffers": "3"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "maxOffers": 2.5}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "placement": "hero", "placements": ["side"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "dryRun": "yes"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "context": [1]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web", "excludeOffers": "gold"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- ---------------------------------------------------------------------------------------
-- 10. Bad input to kaireon.recommend: a specific SQLSTATE, and nothing written. None of
--     these calls is a dry run, so each would record if it got that far.
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS history_before_errors FROM kaireon.interaction_history WHERE tenant_id = 'rp';
SELECT * FROM kaireon.recommend(NULL, 'c1', 'web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', NULL, 'web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('no-such-tenant', 'c1', 'web');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'no-such-channel');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'kiosk');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', 'body');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', decision_flow => 'no-such-flow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', decision_flow => 'draft-flow');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', max_offers => 0);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', max_offers => -3);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', context => '[]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', context => '"mobile"');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '[]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"dryrun": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"debug": "yes"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"exclude_offers": "gold"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"exclude_creatives": [1]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"placements": "hero"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a placement listed twice would be decided twice, past its max_slots: 22023 naming it (both
-- entry points, the JSON one with a plain id and an object of one placement)
\set VERBOSITY default
SELECT * FROM kaireon.recommend('rp', 'c1', 'web', options => '{"placements": ["hero", "side", "hero"]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web",
                                "placements": ["side", {"placementId": "side", "limit": 1}]}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
\set VERBOSITY terse
SELECT count(*) AS history_after_errors FROM kaireon.interaction_history WHERE tenant_id = 'rp';
-- an SQL NULL or JSON null context is an empty one
SELECT count(*) AS decisions FROM kaireon.recommend('rp', 'c1', 'web', context => NULL, options => '{"dry_run": true}');
SELECT count(*) AS decisions FROM kaireon.recommend('rp', 'c1', 'web', context => 'null', options => '{"dry_run": true}');

-- A role that may not act for the tenant: 42501, nothing written.
CREATE ROLE regress_rp_app LOGIN;
SELECT kaireon.grant_app_role('regress_rp_app');
SET ROLE regress_rp_app;
SELECT * FROM kaireon.recommend('rp', 'c1', 'web');             -- no tenant set
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SET kaireon.tenant_id = 'rp-other';
SELECT * FROM kaireon.recommend('rp', 'c1', 'web');             -- acts for another tenant
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT kaireon.recommend_json('{"tenantId": "rp", "customerId": "c1", "channel": "web"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS history_after_denied FROM kaireon.interaction_history WHERE tenant_id = 'rp';
-- The application role, acting for its own tenant, decides even when its backend has to
-- (re)compile the tenant's configuration (regression: the compile once read
-- kaireon.tenant_schemas, which the app role may not read, and failed with 42501).
UPDATE kaireon.channels SET name = 'Web site' WHERE tenant_id = 'rp' AND id = 'web';  -- forces a recompile
SET ROLE regress_rp_app;
SET kaireon.tenant_id = 'rp';
SELECT count(*) AS app_role_decisions FROM kaireon.recommend('rp', 'c1', 'web', options => '{"dry_run": true}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET kaireon.tenant_id;
RESET ROLE;

-- ---------------------------------------------------------------------------------------
-- 11. Customer data: the customer's row of the tenant's published customer schema (the
--     flow's customerSchema, else the first by name), by its primary key, whatever the
--     key's type. An eligibility rule on gold needs the data row's "tier".
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('rp', 'members', 'members', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('rp', 'members', 'member_no', 'integer', false, true, 1), ('rp', 'members', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('rp', 'members');
INSERT INTO kaireon_t_rp.ds_members (member_no, tier) VALUES (42, 'gold');
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, scope, scope_id, config) VALUES
    ('rp', 'q-tier', 'Has a tier', 'attribute_condition', 'offer', 'gold', '{"attribute": "tier", "operator": "exists", "source": "customer"}');
SELECT pg_temp.picks('42', 'web') AS member_42, pg_temp.picks('43', 'web') AS no_member_43;
-- a flow naming a customer schema that is not a published one: 42704
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES
    ('rp', 'f-cs', 'cs-bad', 'Bad customer schema', '{"customerSchema": "nope"}');
SELECT kaireon.publish_decision_flow('rp', 'cs-bad');
SELECT pg_temp.picks('42', 'web', flow => 'cs-bad');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- A customer id that is not a value of the key's type is refused with the cast's error
-- (22P02), and the error's context names the customer, the key column and the table.
SELECT pg_temp.picks('cust-abc', 'web') AS non_numeric_customer;
\echo SQLSTATE :LAST_ERROR_SQLSTATE

-- options.explain false: the decisions' explanations are not built (a function returning
-- rows cannot see which columns its caller reads); debug rows keep theirs; it must be a
-- boolean. The explanation built straight as jsonb for kaireon.recommend equals the one
-- recommend_json returns, which is built as JSON and converted.
SELECT rank, offer_id, explanation IS NULL AS no_explanation
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true, "explain": false}')
 ORDER BY rank;
SELECT count(*) FILTER (WHERE rank IS NULL AND explanation ? 'droppedAt') AS debug_rows_explained,
       count(*) FILTER (WHERE rank IS NOT NULL AND explanation IS NULL) AS decisions_unexplained
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                         options => '{"dry_run": true, "explain": false, "debug": true}');
SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true, "explain": "no"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT (SELECT jsonb_agg(explanation ORDER BY rank)
          FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}'))
     = (SELECT jsonb_agg(d -> 'explanation' ORDER BY (d ->> 'rank')::int)
          FROM jsonb_array_elements(kaireon.recommend_json(
                   '{"tenantId": "rp", "customerId": "7001", "channel": "web", "decisionFlow": "all", "dryRun": true}')
                   -> 'decisions') d) AS same_explanations;

-- A query that reads no explanation gets none built: the planner marks its call with
-- options.explain false (decision/projection.c), shown by EXPLAIN VERBOSE; a query that reads
-- the column, the row, or a join's row, in any part of it, keeps them, and so does a call whose
-- options name explain or are an expression (docs/recommend.md#explanations-when-asked).
CREATE FUNCTION pg_temp.unexplained(q text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE line text; marked boolean := false;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        marked := marked OR line LIKE '%Function Call: kaireon.recommend(%"explain": false%';
    END LOOP;
    RETURN marked;
END $$;
SELECT pg_temp.unexplained($q$SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')$q$) AS count_only,
       pg_temp.unexplained($q$SELECT offer_id FROM kaireon.recommend('rp', '7001', 'web')$q$) AS options_left_out,
       pg_temp.unexplained($q$SELECT (SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', NULL, '{}', 3, NULL, '{"dry_run": true}'))$q$) AS in_a_sublink,
       pg_temp.unexplained($q$SELECT j.offer_id FROM (kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r CROSS JOIN (VALUES (1)) v (x)) j$q$) AS join_column,
       pg_temp.unexplained($q$SELECT offer_id, explanation FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')$q$) AS read,
       pg_temp.unexplained($q$SELECT offer_id FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') ORDER BY explanation::text$q$) AS ordered_by_it,
       pg_temp.unexplained($q$SELECT r FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r$q$) AS whole_row,
       pg_temp.unexplained($q$SELECT j FROM (kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r CROSS JOIN (VALUES (1)) v (x)) j$q$) AS join_row,
       pg_temp.unexplained($q$SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r WHERE EXISTS (SELECT 1 WHERE r.explanation IS NOT NULL)$q$) AS read_by_a_sublink,
       pg_temp.unexplained($q$SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true, "explain": true}')$q$) AS explain_given;
-- a join's merged column (USING) reads each side's
SELECT pg_temp.unexplained($q$SELECT count(*) FROM (kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r FULL JOIN (VALUES (NULL::jsonb)) v (explanation) USING (explanation)) j WHERE j.explanation IS NOT NULL$q$) AS merged_column,
       pg_temp.unexplained($q$SELECT count(*) FROM (kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') r FULL JOIN (VALUES (NULL::text)) v (offer_id) USING (offer_id)) j WHERE j.offer_id IS NOT NULL$q$) AS merged_other_column;
-- calls in nested queries (a subquery in FROM, a set operation's arms, a CTE; sublinks above):
-- each is marked as a query of its own (both arms of the UNION: two calls marked)
CREATE FUNCTION pg_temp.marked_calls(q text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE line text; n integer := 0;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || q LOOP
        n := n + (line LIKE '%Function Call: kaireon.recommend(%"explain": false%')::integer;
    END LOOP;
    RETURN n;
END $$;
SELECT pg_temp.unexplained($q$SELECT count(*) FROM (SELECT offer_id FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')) s$q$) AS in_a_subquery,
       pg_temp.marked_calls($q$SELECT offer_id FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}') UNION ALL SELECT offer_id FROM kaireon.recommend('rp', '7002', 'web', options => '{"dry_run": true}')$q$) AS marked_in_a_union,
       pg_temp.unexplained($q$WITH r AS MATERIALIZED (SELECT offer_id FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')) SELECT count(*) FROM r$q$) AS in_a_cte,
       pg_temp.unexplained($q$SELECT count(*) FROM (SELECT explanation FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')) s WHERE s.explanation IS NOT NULL$q$) AS read_through_a_subquery;
-- what the marked and unmarked calls return: every decision, each explained where read
SELECT (SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}')) AS decisions,
       (SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}') r
         WHERE EXISTS (SELECT 1 WHERE r.explanation IS NOT NULL)) AS explained_in_a_sublink,
       (SELECT count(*) FROM (kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}') r
                              CROSS JOIN (VALUES (1)) v (x)) j WHERE j.explanation IS NOT NULL) AS explained_through_a_join;
-- options as a parameter: marked in a custom plan (the value known) and in a generic one (a CASE
-- adds explain false to an object without it at each execution); any other value reaches
-- recommend as it was given: a non-object and an invalid explain are refused with the same
-- errors. An expression other than a parameter is left alone.
PREPARE rp_opts(jsonb) AS SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => $1);
SELECT pg_temp.unexplained($q$EXECUTE rp_opts('{"dry_run": true}')$q$) AS parameter_custom_plan;
SET plan_cache_mode = force_generic_plan;
SELECT pg_temp.unexplained($q$EXECUTE rp_opts('{"dry_run": true}')$q$) AS parameter_generic_plan;
EXECUTE rp_opts('{"dry_run": true}');
EXECUTE rp_opts('{"dry_run": true, "explain": true}');
EXECUTE rp_opts('[1]');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
EXECUTE rp_opts('{"dry_run": true, "explain": "no"}');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
PREPARE rp_opts_rows(jsonb) AS SELECT count(*) FILTER (WHERE explanation IS NOT NULL) AS explained
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => $1);
EXECUTE rp_opts_rows('{"dry_run": true}');
DEALLOCATE rp_opts_rows;
RESET plan_cache_mode;
DEALLOCATE rp_opts;
SELECT pg_temp.unexplained($q$SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => jsonb_build_object('dry_run', true))$q$) AS expression;
-- where a built-in function the CASE calls is not PUBLIC's to run, the parameter is left alone,
-- also in a plan kept from before the revoke (every kept plan is planned again)
SET plan_cache_mode = force_generic_plan;
PREPARE rp_opts_kept(jsonb) AS SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => $1);
SELECT pg_temp.unexplained($q$EXECUTE rp_opts_kept('{"dry_run": true}')$q$) AS kept_plan_before_revoke;
REVOKE EXECUTE ON FUNCTION jsonb_typeof(jsonb) FROM PUBLIC;
SELECT pg_temp.unexplained($q$EXECUTE rp_opts_kept('{"dry_run": true}')$q$) AS kept_plan_after_revoke;
DEALLOCATE rp_opts_kept;
RESET plan_cache_mode;
PREPARE rp_opts(jsonb) AS SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => $1);
SELECT pg_temp.unexplained($q$EXECUTE rp_opts('{"dry_run": true}')$q$) AS parameter_revoked_builtin;
DEALLOCATE rp_opts;
GRANT EXECUTE ON FUNCTION jsonb_typeof(jsonb) TO PUBLIC;
-- the setting off: no call marked
SET kaireon.unread_explanations = off;
SELECT pg_temp.unexplained($q$SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', options => '{"dry_run": true}')$q$) AS setting_off;
RESET kaireon.unread_explanations;
-- the last constant options merged with explain false are kept per backend for the next call
-- that sends the same ones: calls with other options in turn each keep their own
SELECT count(*) AS debug_rows FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                                                     options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL;
SELECT count(*) AS no_debug_rows FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                                                        options => '{"dry_run": true}') WHERE rank IS NULL;
SELECT count(*) AS debug_rows_again FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                                                           options => '{"dry_run": true, "debug": true}') WHERE rank IS NULL;
SELECT count(*) AS debug_rows_same_length FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                                                                 options => '{"dry_run": true, "debug": false}') WHERE rank IS NULL;
-- recommend keeps the last options object of flags alone per backend (decision/recommend.c,
-- last_options) and reuses what it set when the same bytes come again: objects of the same
-- length with other flags each give what they say (jsonb stores true and false without bytes),
-- and an object with exclusions (never kept) between two kept ones changes nothing kept
SET kaireon.unread_explanations = off;
SELECT count(*) FILTER (WHERE explanation IS NULL) AS unexplained, count(*) > 0 AS some
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true, "explain": false}');
SELECT count(*) FILTER (WHERE explanation IS NULL) AS unexplained_none, count(*) > 0 AS some
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true, "explain": true}');
SELECT count(*) FILTER (WHERE explanation IS NULL) AS unexplained_none_again
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true, "explain": true}');
SELECT offer_id AS rp_top_offer FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}')
 WHERE rank = 1 \gset
SELECT count(*) FILTER (WHERE offer_id = :'rp_top_offer') AS excluded_one_returned, count(*) > 0 AS some
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                         options => jsonb_build_object('dry_run', true, 'exclude_offers', jsonb_build_array(:'rp_top_offer'::text)));
SELECT count(*) FILTER (WHERE offer_id = :'rp_top_offer') AS excluded_one_returned_again, count(*) > 0 AS some
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all',
                         options => jsonb_build_object('dry_run', true, 'exclude_offers', jsonb_build_array(:'rp_top_offer'::text)));
-- a kept object's trace flag holds on its second call too
BEGIN;
SELECT count(*) AS rp_traces_before FROM kaireon.decision_traces WHERE tenant_id = 'rp' \gset
SELECT count(*) > 0 AS decided FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": false, "trace": true}');
SELECT count(*) > 0 AS decided_again FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": false, "trace": true}');
SELECT count(*) - :rp_traces_before AS traced FROM kaireon.decision_traces WHERE tenant_id = 'rp';
ROLLBACK;
BEGIN;
SELECT count(interaction_id) AS recorded, count(*) FILTER (WHERE rank IS NULL) AS debug_rows
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true, "debug": false}');
SELECT count(interaction_id) > 0 AS recorded_same_length, count(*) FILTER (WHERE rank IS NULL) > 0 AS debug_rows_same_length
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": false, "debug": true}');
ROLLBACK;
RESET kaireon.unread_explanations;
-- The planner hook also completes every call's arguments from recommend's defaults, read once
-- per backend (decision/projection.c, "Arguments completed"): named arguments in any order and
-- the ones left out give what the positional call gives, with the setting on or off; EXPLAIN
-- VERBOSE shows the eight in order, as the planner's own expansion would; a default changed by
-- CREATE OR REPLACE (a pg_proc invalidation) is used at once, and the old one again after ROLLBACK;
-- options left out are the default's, marked with explain false as given ones are (a default that
-- says dry_run records nothing, whether the query reads the explanation or not).
SELECT (SELECT array_agg(offer_id ORDER BY rank)
          FROM kaireon.recommend(options => '{"dry_run": true}', max_offers => 2, channel => 'web',
                                 customer_id => '7001', tenant_id => 'rp', decision_flow => 'all'))
     = (SELECT array_agg(offer_id ORDER BY rank)
          FROM kaireon.recommend('rp', '7001', 'web', NULL, '{}', 2, 'all', '{"dry_run": true}')) AS same_as_positional,
       (SELECT count(*) FROM kaireon.recommend(channel => 'web', customer_id => '7001', tenant_id => 'rp',
                                               max_offers => 2, decision_flow => 'all', options => '{"dry_run": true}')) AS two;
SET kaireon.unread_explanations = off;
SELECT count(*) AS two_setting_off FROM kaireon.recommend(channel => 'web', customer_id => '7001', tenant_id => 'rp',
                                                           max_offers => 2, decision_flow => 'all',
                                                           options => '{"dry_run": true}');
RESET kaireon.unread_explanations;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM kaireon.recommend(options => '{"dry_run": true}', customer_id => '7001', channel => 'web', tenant_id => 'rp');
BEGIN;
CREATE OR REPLACE FUNCTION kaireon.recommend(tenant_id text, customer_id text, channel text,
                                             placement text DEFAULT NULL, context jsonb DEFAULT '{}',
                                             max_offers integer DEFAULT 1, decision_flow text DEFAULT NULL,
                                             options jsonb DEFAULT '{"dry_run": true}')
    RETURNS SETOF kaireon.recommendation AS '$libdir/kaireon', 'kaireon_recommend' LANGUAGE C VOLATILE;
SELECT count(*) AS one_by_the_changed_default
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}');
SELECT count(*) AS decisions, count(interaction_id) AS recorded
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', max_offers => 2);
SELECT count(*) AS decisions, count(interaction_id) AS recorded, count(explanation) AS explained
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', max_offers => 2);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT count(*) FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', max_offers => 2);
ROLLBACK;
SELECT count(*) > 1 AS more_by_the_default_again
  FROM kaireon.recommend('rp', '7001', 'web', decision_flow => 'all', options => '{"dry_run": true}');
-- a role that may not use schema kaireon plans its queries of range table functions as before
-- (the hook finds recommend in the catalog, not by a lookup that checks the schema's USAGE)
CREATE ROLE regress_rp_nobody;
CREATE FUNCTION pg_temp.touch_pg_proc() RETURNS int LANGUAGE sql AS 'SELECT 1';  -- recommend is found again
SET ROLE regress_rp_nobody;
SELECT count(*) AS series FROM generate_series(1, 3);
RESET ROLE;
DROP ROLE regress_rp_nobody;

-- Numbers kaireon writes into jsonb (explanations, a recorded decision's context, every
-- response) have 15 significant digits, as jansson prints them ("%.15g"): taken from the
-- shortest decimal of the double where that tells them, printed where it cannot (ties of
-- 16 digits ending in 5, zero, subnormal numbers, integers past int64). float8 -> numeric
-- gives the same digits and display scale ("%.15g" too): every value of a context of
-- 2,000 numbers of many kinds, recorded by a decision, is the same, as jsonb and as text.
CREATE TEMP TABLE nums AS
SELECT 'n' || i AS k, (CASE i % 10
           WHEN 0 THEN (1.0::float8 / i)::text
           WHEN 1 THEN (i * 0.1::float8)::text
           WHEN 2 THEN (exp(i / 13.0::float8) * power(10::float8, i % 40 - 20))::text
           WHEN 3 THEN ((123456789012345 + i) * 10 + 5)::text || 'e' || (-(i % 25))::text
           WHEN 4 THEN (i * 12345678901234567.0::float8 * power(10::float8, i % 8))::text
           WHEN 5 THEN (-power(i / 7.0::float8, 3))::text
           WHEN 6 THEN ((i % 100) / 100.0::float8 * ((i * 7) % 100) / 100.0::float8 * 0.8::float8)::text
           WHEN 7 THEN (1.5::float8 * power(10::float8, i % 600 - 300))::text
           WHEN 8 THEN ((i * 37) % 1000)::text
           ELSE CASE i WHEN 9 THEN '0' WHEN 19 THEN '4.9406564584124654e-324' WHEN 29 THEN '2.2250738585072014e-308'
                       WHEN 39 THEN '1.7976931348623157e308' WHEN 49 THEN '-0.5'
                       ELSE power(2::float8, i % 1000 - 500)::text END
       END)::numeric AS v
  FROM generate_series(1, 2000) i;
SELECT count(*) AS decisions FROM kaireon.recommend('rp', '7002', 'web', decision_flow => 'all',
                                                    context => (SELECT jsonb_object_agg(k, v) FROM nums));
SELECT count(*) AS numbers,
       count(*) FILTER (WHERE h.context -> n.k = to_jsonb(n.v::float8::numeric)
                          AND h.context ->> n.k = n.v::float8::numeric::text) AS same_as_float8_numeric
  FROM nums n,
       (SELECT context FROM kaireon.interaction_history
         WHERE tenant_id = 'rp' AND customer_id = '7002' AND interaction_type = 'recommendation' LIMIT 1) h;

-- Clean up.
DROP OWNED BY regress_rp_app;
DROP ROLE regress_rp_app;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_rp_app';
DELETE FROM kaireon.tenants WHERE id = 'rp';
DROP SCHEMA kaireon_t_rp CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE schema_name = 'kaireon_t_rp';
SELECT count(*) AS rp_rows_left FROM kaireon.interaction_history WHERE tenant_id = 'rp';
