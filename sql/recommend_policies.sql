-- kaireon.recommend, steps 6 to 8 (docs/recommend.md): consent, suppressions, the 13
-- contact policy types (each with a case that passes and one that blocks), their scopes,
-- priority order, allow_override, mandatory exceptions, the engagement multiplier, and
-- volume constraints and budgets; with the reasons reported for each drop.
\set VERBOSITY terse
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings)
    VALUES ('rpol', 'Policies', 'rpol', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode, consent_purpose) VALUES
    ('rpol', 'web', 'Web', 'web', 'explicit', NULL),
    ('rpol', 'email', 'Email', 'email', 'explicit', 'marketing_email'),
    ('rpol', 'sms', 'SMS', 'sms', 'explicit', NULL);
INSERT INTO kaireon.categories (tenant_id, id, name) VALUES ('rpol', 'cards', 'Cards'), ('rpol', 'loans', 'Loans');
INSERT INTO kaireon.sub_categories (tenant_id, id, category_id, name) VALUES ('rpol', 'travel', 'cards', 'Travel');
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, sub_category_id, status, priority, cost) VALUES
    ('rpol', 'o1', 'Travel card', 'cards', 'travel', 'active', 80, 2),
    ('rpol', 'o2', 'Plain card', 'cards', NULL, 'active', 70, 1),
    ('rpol', 'o3', 'Loan', 'loans', NULL, 'active', 60, 5);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name)
    SELECT 'rpol', o || '-' || c, o, c, o || ' on ' || c
      FROM unnest(ARRAY['o1', 'o2', 'o3']) o, unnest(ARRAY['web', 'email', 'sms']) c;
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('rpol', 'f-main', 'main', 'Main', true, '{"maxOffers": 10}');
SELECT kaireon.publish_decision_flow('rpol', 'main');
-- customer data: one minor, for the segment "minors"
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('rpol', 'customers', 'customers', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('rpol', 'customers', 'customer_id', 'text', false, true, 1), ('rpol', 'customers', 'age', 'integer', true, false, 2);
SELECT kaireon.publish_data_schema('rpol', 'customers');
INSERT INTO kaireon_t_rpol.ds_customers (customer_id, age) VALUES ('minor', 15), ('fresh', 40), ('two-today', 40);
INSERT INTO kaireon.segments (tenant_id, id, name, base_schema_id, filters)
    VALUES ('rpol', 'minors', 'Minors', 'customers', '[{"field": "age", "operator": "lt", "value": 18}]');
SELECT kaireon.publish_segment('rpol', 'minors');

-- decide: a dry run with debug, as "selected offers | dropped offers (stage): reason of the
-- first one dropped". with_policy: the same with one more active contact policy (id
-- "probe", name "probe", of the given type, config and scope), added and removed around the
-- decision in one statement.
CREATE FUNCTION pg_temp.decide(customer text, channel text DEFAULT 'web') RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(r.offer_id, ' ' ORDER BY r.offer_id) FILTER (WHERE r.rank IS NOT NULL), '-')
           || ' | ' || coalesce(string_agg(r.offer_id || ' (' || (r.explanation ->> 'droppedAt') || ')', ' ' ORDER BY r.offer_id)
                                FILTER (WHERE r.rank IS NULL) || ': ' ||
                                (array_agg(r.explanation ->> 'reason' ORDER BY r.offer_id) FILTER (WHERE r.rank IS NULL))[1], '-')
      FROM kaireon.recommend('rpol', customer, channel, options => '{"dry_run": true, "debug": true}') r
$$;
CREATE FUNCTION pg_temp.with_policy(rule_type text, config jsonb, customer text, channel text DEFAULT 'web',
                                    scope text DEFAULT 'global', scope_id text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, scope, scope_id, config)
        VALUES ('rpol', 'probe', 'probe', rule_type, scope, scope_id, config);
    result := pg_temp.decide(customer, channel);
    DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol' AND id = 'probe';
    RETURN result;
END
$$;
-- history rows: (customer, type, outcome, offer, channel, how long ago)
CREATE FUNCTION pg_temp.hist(customer text, itype text, outcome text, offer text, channel text, ago interval) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, offer_id, channel_id, occurred_at)
        VALUES ('rpol', customer, itype, outcome, offer, channel, now() - ago)
$$;

-- Everything from here to the end of section 4 runs in one transaction, so "today",
-- "this week" and "this month" are the same instant for the history and the decisions.
BEGIN;
SELECT count(*) AS history_rows FROM (
    SELECT pg_temp.hist(c, t, o, f, ch, a::interval) FROM (VALUES
        ('two-today', 'recommendation', NULL, 'o2', 'web', '0'),
        ('two-today', 'recommendation', NULL, 'o2', 'web', '0'),
        ('one-today', 'recommendation', NULL, 'o2', 'web', '0'),
        ('two-o1', 'recommendation', NULL, 'o1', 'web', '0'),
        ('two-o1', 'recommendation', NULL, 'o1', 'web', '0'),
        ('minor', 'recommendation', NULL, 'o2', 'web', '0'),
        ('minor', 'recommendation', NULL, 'o2', 'web', '0'),
        ('two-email', 'recommendation', NULL, 'o2', 'email', '0'),
        ('two-email', 'recommendation', NULL, 'o2', 'email', '0'),
        ('web-email', 'recommendation', NULL, 'o2', 'web', '0'),
        ('web-email', 'recommendation', NULL, 'o2', 'email', '0'),
        ('three-mixed', 'recommendation', NULL, 'o1', 'web', '0'),
        ('three-mixed', 'recommendation', NULL, 'o2', 'email', '0'),
        ('three-mixed', 'recommendation', NULL, 'o3', 'sms', '0'),
        ('old', 'recommendation', NULL, 'o2', 'web', '40 days'),
        ('old', 'recommendation', NULL, 'o2', 'web', '40 days'),
        ('lookback', 'recommendation', NULL, 'o2', 'web', '1 hour'),
        ('lookback', 'recommendation', NULL, 'o2', 'web', '2 hours'),
        ('lookback-old', 'recommendation', NULL, 'o2', 'web', '5 hours'),
        ('lookback-old', 'recommendation', NULL, 'o2', 'web', '6 hours'),
        ('impressed', 'impression', NULL, 'o2', 'web', '0'),
        ('impressed', 'impression', NULL, 'o2', 'web', '0'),
        ('clicker', 'outcome', 'click', 'o2', 'web', '1 hour'),
        ('clicker', 'outcome', 'click', 'o2', 'web', '2 hours'),
        ('recent-o1', 'recommendation', NULL, 'o1', 'web', '2 hours'),
        ('dismiss-o1', 'recommendation', NULL, 'o1', 'web', '6 hours'),
        ('dismiss-o1', 'outcome', 'dismiss', 'o1', 'web', '5 hours'),
        ('dismiss-o2', 'outcome', 'dismiss', 'o2', 'web', '2 days'),
        ('click-o2', 'outcome', 'click', 'o2', 'web', '2 days'),
        ('complaint-o2', 'outcome', 'complaint', 'o2', 'web', '3 days'),
        ('complaint-old', 'outcome', 'complaint', 'o2', 'web', '10 days')
    ) AS h(c, t, o, f, ch, a)) x;

-- ---------------------------------------------------------------------------------------
-- 1. Caps count the customer's rows in their window (period day / week / month, or a
--    rolling lookbackHours) of the countTypes (default: recommendation rows).
-- ---------------------------------------------------------------------------------------
-- frequency_cap, under the covering scope: global counts every row; channel, category,
-- sub-category and offer scopes count the rows about them; a segment scope counts all.
SELECT n, what, pg_temp.with_policy('frequency_cap', config, customer, channel, scope, scope_id) AS outcome
  FROM (VALUES
    (1, 'global 2/day, one row today: passes', '{"maxCount": 2, "period": "day"}'::jsonb, 'one-today', 'web', 'global', NULL),
    (2, 'global 2/day, two rows today: blocks', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'global', NULL),
    (3, 'global 2/day, two rows 40 days ago: passes', '{"maxCount": 2, "period": "day"}', 'old', 'web', 'global', NULL),
    (4, 'global 2/week, two rows today: blocks', '{"maxCount": 2, "period": "week"}', 'two-today', 'web', 'global', NULL),
    (5, 'global 2/week, two rows 40 days ago: passes', '{"maxCount": 2, "period": "week"}', 'old', 'web', 'global', NULL),
    (6, 'global 2/month, two rows today: blocks', '{"maxCount": 2, "period": "month"}', 'two-today', 'web', 'global', NULL),
    (7, 'global 2/month, two rows 40 days ago: passes', '{"maxCount": 2, "period": "month"}', 'old', 'web', 'global', NULL),
    (8, 'global 2 per 3h, rows 1h and 2h ago: blocks', '{"maxCount": 2, "lookbackHours": 3}', 'lookback', 'web', 'global', NULL),
    (9, 'global 2 per 3h, rows 5h and 6h ago: passes', '{"maxCount": 2, "lookbackHours": 3}', 'lookback-old', 'web', 'global', NULL),
    (10, 'channel email 2/day, two email rows, on email: blocks', '{"maxCount": 2, "period": "day"}', 'two-email', 'email', 'channel', 'email'),
    (11, 'channel email 2/day, two email rows, on web: not covered', '{"maxCount": 2, "period": "day"}', 'two-email', 'web', 'channel', 'email'),
    (12, 'channel email 2/day, two web rows, on email: passes', '{"maxCount": 2, "period": "day"}', 'two-today', 'email', 'channel', 'email'),
    (13, 'category cards 2/day, two o2 rows: blocks o1 and o2', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'category', 'cards'),
    (14, 'category loans 2/day, two o2 rows: passes', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'category', 'loans'),
    (15, 'sub-category travel 2/day, two o1 rows: blocks o1', '{"maxCount": 2, "period": "day"}', 'two-o1', 'web', 'sub_category', 'travel'),
    (16, 'sub-category travel 2/day, two o2 rows: passes', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'sub_category', 'travel'),
    (17, 'offer o2 2/day, two o2 rows: blocks o2', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'offer', 'o2'),
    (18, 'offer o1 2/day, two o2 rows: passes', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'offer', 'o1'),
    (19, 'segment minors 2/day, a minor with two rows: blocks', '{"maxCount": 2, "period": "day"}', 'minor', 'web', 'segment', 'minors'),
    (20, 'segment minors 2/day, an adult with two rows: not covered', '{"maxCount": 2, "period": "day"}', 'two-today', 'web', 'segment', 'minors'),
    (21, 'countTypes impression, two recommendation rows: passes', '{"maxCount": 2, "period": "day", "countTypes": ["impression"]}', 'two-today', 'web', 'global', NULL),
    (22, 'countTypes impression, two impression rows: blocks', '{"maxCount": 2, "period": "day", "countTypes": ["impression"]}', 'impressed', 'web', 'global', NULL),
    (23, 'countTypes click (an outcome key), two clicks in 3h: blocks', '{"maxCount": 2, "lookbackHours": 3, "countTypes": ["click"]}', 'clicker', 'web', 'global', NULL),
    (24, 'default countTypes ignore outcome rows: passes', '{"maxCount": 2, "lookbackHours": 3}', 'clicker', 'web', 'global', NULL)
  ) AS t(n, what, config, customer, channel, scope, scope_id)
 ORDER BY n;

-- cross_channel_cap: the rows on the listed channels (all when none listed), whatever the
-- policy's scope
SELECT n, what, pg_temp.with_policy('cross_channel_cap', config, customer, channel) AS outcome
  FROM (VALUES
    (1, 'web+email 2/day, one web and one email row: blocks', '{"maxCount": 2, "period": "day", "channelIds": ["web", "email"]}'::jsonb, 'web-email', 'sms'),
    (2, 'sms 2/day, web and email rows: passes', '{"maxCount": 2, "period": "day", "channelIds": ["sms"]}', 'web-email', 'web'),
    (3, 'all channels 2/day: blocks', '{"maxCount": 2, "period": "day"}', 'web-email', 'web'),
    (4, 'all channels 3/day: passes', '{"maxCount": 3, "period": "day"}', 'web-email', 'web')
  ) AS t(n, what, config, customer, channel)
 ORDER BY n;

-- customer_total_cap: all the customer's rows
SELECT pg_temp.with_policy('customer_total_cap', '{"maxCount": 3, "period": "day"}', 'three-mixed') AS three_of_3_blocks,
       pg_temp.with_policy('customer_total_cap', '{"maxCount": 4, "period": "day"}', 'three-mixed') AS three_of_4_passes;

-- offer_category_cap: the rows about offers of the candidate's category (when it is listed
-- in categoryIds, or any category when none are)
SELECT n, what, pg_temp.with_policy('offer_category_cap', config, 'two-today') AS outcome
  FROM (VALUES
    (1, 'any category 2/day, two cards rows: blocks o1 and o2', '{"maxCount": 2, "period": "day"}'::jsonb),
    (2, 'categories [cards] 2/day: blocks o1 and o2', '{"maxCount": 2, "period": "day", "categoryIds": ["cards"]}'),
    (3, 'categories [loans] 2/day: passes', '{"maxCount": 2, "period": "day", "categoryIds": ["loans"]}'),
    (4, 'any category 3/day: passes', '{"maxCount": 3, "period": "day"}')
  ) AS t(n, what, config)
 ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 2. The other policy types.
-- ---------------------------------------------------------------------------------------
-- cooldown: the same offer was served (or with afterOutcomes had one of them) recently
SELECT n, what, pg_temp.with_policy('cooldown', config, customer) AS outcome
  FROM (VALUES
    (1, 'o1 served 2h ago, 24h cooldown: blocks o1', '{"hours": 24}'::jsonb, 'recent-o1'),
    (2, 'o1 served 2h ago, 1h cooldown: passes', '{"hours": 1}', 'recent-o1'),
    (3, 'o1 served 2h ago, 1 day cooldown: blocks o1', '{"days": 1}', 'recent-o1'),
    (4, 'o1 dismissed 5h ago, after dismiss 24h: blocks o1', '{"hours": 24, "afterOutcomes": ["dismiss"]}', 'dismiss-o1'),
    (5, 'o1 only served 2h ago, after dismiss 24h: passes', '{"hours": 24, "afterOutcomes": ["dismiss"]}', 'recent-o1'),
    (6, 'o1 dismissed 5h ago, after dismiss 4h: passes', '{"hours": 4, "afterOutcomes": ["dismiss"]}', 'dismiss-o1')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- outcome_based: one of the outcomes within suppressDays, on any offer (default), the same
-- category or the same offer
SELECT n, what, pg_temp.with_policy('outcome_based', config, customer) AS outcome
  FROM (VALUES
    (1, 'complaint 3 days ago, 7 days, any offer: blocks all', '{"outcomes": ["complaint"], "suppressDays": 7}'::jsonb, 'complaint-o2'),
    (2, 'complaint on o2, level category: blocks the cards', '{"outcomes": ["complaint"], "suppressDays": 7, "level": "category"}', 'complaint-o2'),
    (3, 'complaint on o2, level offer: blocks o2', '{"outcomes": ["complaint"], "suppressDays": 7, "level": "offer"}', 'complaint-o2'),
    (4, 'complaint 10 days ago, 7 days: passes', '{"outcomes": ["complaint"], "suppressDays": 7}', 'complaint-old'),
    (5, 'a click is not listed: passes', '{"outcomes": ["complaint"], "suppressDays": 7}', 'click-o2')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- category_suppression: a negative outcome (or one of afterOutcomes) on an offer of the
-- candidate's category within days (only for categoryIds, when listed)
SELECT n, what, pg_temp.with_policy('category_suppression', config, customer) AS outcome
  FROM (VALUES
    (1, 'dismiss (negative) on o2 2 days ago, 7 days: blocks the cards', '{"days": 7}'::jsonb, 'dismiss-o2'),
    (2, 'click (positive) on o2: passes', '{"days": 7}', 'click-o2'),
    (3, 'dismiss on o2, 1 day: passes', '{"days": 1}', 'dismiss-o2'),
    (4, 'dismiss on o2, only for loans: passes', '{"days": 7, "categoryIds": ["loans"]}', 'dismiss-o2'),
    (5, 'click on o2 with afterOutcomes [click]: blocks the cards', '{"days": 7, "afterOutcomes": ["click"]}', 'click-o2')
  ) AS t(n, what, config, customer)
 ORDER BY n;

-- mutual_exclusion: the candidate is in offerIds and another offer of the group was served
-- within lookbackHours (default 720); o1 was served 2h ago
SELECT n, what, pg_temp.with_policy('mutual_exclusion', config, 'recent-o1') AS outcome
  FROM (VALUES
    (1, 'group o1, o3: blocks o3 (o1 itself and o2 pass)', '{"offerIds": ["o1", "o3"]}'::jsonb),
    (2, 'group o1, o3 within 1h: passes', '{"offerIds": ["o1", "o3"], "lookbackHours": 1}'),
    (3, 'group o2, o3: passes', '{"offerIds": ["o2", "o3"]}')
  ) AS t(n, what, config)
 ORDER BY n;

-- segment_exclusion: the customer is in one of the segments
SELECT pg_temp.with_policy('segment_exclusion', '{"segmentIds": ["minors"]}', 'minor') AS minor_blocks,
       pg_temp.with_policy('segment_exclusion', '{"segmentIds": ["minors"]}', 'fresh') AS adult_passes;

-- metric_condition: the customer's metric satisfies the condition (a missing one does not block)
INSERT INTO kaireon.metric_definitions (tenant_id, id, key, name) VALUES ('rpol', 'm-complaints', 'complaints', 'Complaints');
INSERT INTO kaireon.metric_values (tenant_id, metric_id, customer_id, dimension_key, value) VALUES
    ('rpol', 'm-complaints', 'two-today', '', 2), ('rpol', 'm-complaints', 'one-today', '', 0);
SELECT pg_temp.with_policy('metric_condition', '{"metricKey": "complaints", "operator": "gte", "value": 1}', 'two-today') AS two_complaints_block,
       pg_temp.with_policy('metric_condition', '{"metricKey": "complaints", "operator": "gte", "value": 1}', 'one-today') AS none_passes,
       pg_temp.with_policy('metric_condition', '{"metricKey": "complaints", "operator": "gte", "value": 1}', 'fresh') AS missing_passes;

-- time_window: the current hour (in timezone, default UTC) must be within startHour..endHour
-- (end exclusive; wraps midnight when start > end) and the weekday in days
-- (the reason names the window, which depends on the hour: it is masked)
SELECT n, what, regexp_replace(pg_temp.with_policy('time_window', config, 'fresh'), '\d\d:00-\d\d:00', 'hh:00-hh:00') AS outcome
  FROM (SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int AS h,
               extract(dow FROM now() AT TIME ZONE 'UTC')::int AS d,
               extract(hour FROM now() AT TIME ZONE 'Asia/Tokyo')::int AS th) now_utc,
       LATERAL (VALUES
    (1, 'this hour: passes', jsonb_build_object('startHour', h, 'endHour', h + 1)),
    (2, 'from the next hour for two hours: blocks', jsonb_build_object('startHour', (h + 1) % 24, 'endHour', (h + 3) % 24)),
    (3, 'wrapping, from this hour to the one before: passes', jsonb_build_object('startHour', h, 'endHour', (h + 23) % 24)),
    (4, 'wrapping, from the next hour to this one: blocks', jsonb_build_object('startHour', (h + 1) % 24, 'endHour', h)),
    (5, 'this hour, today: passes', jsonb_build_object('startHour', h, 'endHour', h + 1, 'days', jsonb_build_array(d))),
    (6, 'this hour, another day: blocks', jsonb_build_object('startHour', h, 'endHour', h + 1, 'days', jsonb_build_array((d + 1) % 7))),
    (7, 'this Tokyo hour in Asia/Tokyo: passes', jsonb_build_object('startHour', th, 'endHour', th + 1, 'timezone', 'Asia/Tokyo')),
    (8, 'this Tokyo hour in UTC: blocks', jsonb_build_object('startHour', th, 'endHour', th + 1))
  ) AS t(n, what, config)
 ORDER BY n;

-- ---------------------------------------------------------------------------------------
-- 3. Scopes, priority order, allow_override, mandatory offers, engagement.
-- ---------------------------------------------------------------------------------------
-- A policy covers a candidate when one of its scope rows (contact_policy_scopes), else its
-- own scope / scope_id, covers it. customer_total_cap 1/day blocks every covered candidate
-- of "two-today" (two rows today).
SELECT pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', scope => 'offer', scope_id => 'o1') AS scope_offer_o1,
       pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', scope => 'sub_category', scope_id => 'travel') AS scope_sub_category_travel,
       pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', scope => 'category', scope_id => 'loans') AS scope_category_loans;
SELECT pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', 'web', 'channel', 'email') AS scope_channel_email_on_web,
       pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', 'email', 'channel', 'email') AS scope_channel_email_on_email;
SELECT pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'minor', scope => 'segment', scope_id => 'minors') AS scope_segment_minor,
       pg_temp.with_policy('customer_total_cap', '{"maxCount": 1, "period": "day"}', 'two-today', scope => 'segment', scope_id => 'minors') AS scope_segment_adult;
-- scope rows replace the policy's own (global) scope
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-total', 'One a day', 'customer_total_cap', 10, '{"maxCount": 1, "period": "day"}');
INSERT INTO kaireon.contact_policy_scopes (tenant_id, contact_policy_id, scope, scope_id) VALUES
    ('rpol', 'p-total', 'offer', 'o1'), ('rpol', 'p-total', 'category', 'loans');
SELECT pg_temp.decide('two-today') AS scope_rows_o1_and_loans;
DELETE FROM kaireon.contact_policy_scopes WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('two-today') AS no_scope_rows_global;
-- priority order: the first blocking policy by priority (highest first) is the reason
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-freq', 'Two a day', 'frequency_cap', 20, '{"maxCount": 2, "period": "day"}');
SELECT pg_temp.decide('two-today') AS two_a_day_first;
UPDATE kaireon.contact_policies SET priority = 30 WHERE tenant_id = 'rpol' AND id = 'p-total';
SELECT pg_temp.decide('two-today') AS one_a_day_first;
-- an inactive, draft or soft-deleted policy does not apply
UPDATE kaireon.contact_policies SET status = 'inactive' WHERE tenant_id = 'rpol' AND id = 'p-total';
UPDATE kaireon.contact_policies SET status = 'draft' WHERE tenant_id = 'rpol' AND id = 'p-freq';
SELECT pg_temp.decide('two-today') AS inactive_and_draft;
UPDATE kaireon.contact_policies SET status = 'active', deleted_at = now() WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('two-today') AS soft_deleted;
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';

-- allow_override: policies covering the candidate (and listing it in offerIds, when given)
-- exempt it from all other policies, or from the exemptRuleTypes they list. "two-o1" has
-- two o1 rows today: "Two a day" blocks everything, "Cool o1" (cooldown) blocks o1.
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-freq', 'Two a day', 'frequency_cap', 20, '{"maxCount": 2, "period": "day"}'),
    ('rpol', 'p-cool', 'Cool o1', 'cooldown', 10, '{"hours": 24}');
SELECT pg_temp.decide('two-o1') AS without_override;
SELECT n, what, pg_temp.with_policy('allow_override', config, 'two-o1', scope => scope, scope_id => scope_id) AS outcome
  FROM (VALUES
    (1, 'global, no offerIds: everything exempt', '{}'::jsonb, 'global', NULL),
    (2, 'offerIds [o1]: o1 exempt', '{"offerIds": ["o1"], "reason": "VIP"}', 'global', NULL),
    (3, 'offerIds [o1], exempt from cooldown only: o1 still capped', '{"offerIds": ["o1"], "exemptRuleTypes": ["cooldown"]}', 'global', NULL),
    (4, 'offerIds [o1], exempt from frequency_cap only: o1 now cooled', '{"offerIds": ["o1"], "exemptRuleTypes": ["frequency_cap"]}', 'global', NULL),
    (5, 'offerIds [o1], exempt from both', '{"offerIds": ["o1"], "exemptRuleTypes": ["frequency_cap", "cooldown"]}', 'global', NULL),
    (6, 'scoped to offer o2 (no offerIds): o2 exempt', '{}', 'offer', 'o2'),
    (7, 'scoped to loans, offerIds [o1]: o1 not covered, nothing exempt', '{"offerIds": ["o1"]}', 'category', 'loans')
  ) AS t(n, what, config, scope, scope_id)
 ORDER BY n;

-- Mandatory offers bypass every policy except frequency_cap, cross_channel_cap and those
-- with bypassable false. o3 is made mandatory; "two-today" has two rows today.
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rpol' AND id = 'o3';
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
SELECT n, what, pg_temp.with_policy(rule_type, config, 'two-today') AS outcome
  FROM (VALUES
    (1, 'customer_total_cap: o3 bypasses', 'customer_total_cap', '{"maxCount": 2, "period": "day"}'::jsonb),
    (2, 'offer_category_cap on loans: o3 bypasses', 'offer_category_cap', '{"maxCount": 1, "period": "day", "categoryIds": ["cards", "loans"]}'),
    (3, 'customer_total_cap with bypassable false: o3 held', 'customer_total_cap', '{"maxCount": 2, "period": "day", "bypassable": false}'),
    (4, 'frequency_cap: o3 held', 'frequency_cap', '{"maxCount": 2, "period": "day"}'),
    (5, 'cross_channel_cap: o3 held', 'cross_channel_cap', '{"maxCount": 2, "period": "day"}'),
    (6, 'frequency_cap bypassable true (the default) is still not bypassed', 'frequency_cap', '{"maxCount": 2, "period": "day", "bypassable": true}')
  ) AS t(n, what, rule_type, config)
 ORDER BY n;
SELECT rank, offer_id, explanation -> 'mandatory' AS mandatory
  FROM kaireon.recommend('rpol', 'two-today', 'web', options => '{"dry_run": true}') ORDER BY rank;

-- Engagement multiplier: the cap becomes max(1, round(maxCount * (min + (max - min) *
-- engagement))) (defaults min 0.5, max 1.5) when the customer has an engagement health
-- score. "two-today" has two rows today; "fresh" none.
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config) VALUES
    ('rpol', 'p-eng', 'Two a day, by engagement', 'frequency_cap', '{"maxCount": 2, "period": "day", "engagementMultiplier": true}');
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rpol' AND id = 'o3';
SELECT pg_temp.decide('two-today') AS no_engagement_score_cap_2;
INSERT INTO kaireon.customer_engagement_health (tenant_id, customer_id, score) VALUES ('rpol', 'two-today', 1.0);
SELECT pg_temp.decide('two-today') AS engaged_cap_3;
UPDATE kaireon.customer_engagement_health SET score = 0 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('two-today') AS disengaged_cap_1;
UPDATE kaireon.contact_policies SET config = '{"maxCount": 2, "period": "day", "engagementMultiplier": {"enabled": true, "min": 1, "max": 3}}'
 WHERE tenant_id = 'rpol' AND id = 'p-eng';
UPDATE kaireon.customer_engagement_health SET score = 0.5 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('two-today') AS min1_max3_half_cap_4;
UPDATE kaireon.contact_policies SET config = '{"maxCount": 2, "period": "day", "engagementMultiplier": {"enabled": false}}'
 WHERE tenant_id = 'rpol' AND id = 'p-eng';
SELECT pg_temp.decide('two-today') AS disabled_cap_2;
-- maxCount 5 at engagement 0 gives 5 * 0.5 = 2.5, which rounds half up to 3, so two rows
-- pass (regression: half to even once gave 2 and blocked).
UPDATE kaireon.contact_policies SET config = '{"maxCount": 5, "period": "day", "engagementMultiplier": true}'
 WHERE tenant_id = 'rpol' AND id = 'p-eng';
UPDATE kaireon.customer_engagement_health SET score = 0 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('two-today') AS max5_disengaged_half_rounding;
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
DELETE FROM kaireon.customer_engagement_health WHERE tenant_id = 'rpol';

-- ---------------------------------------------------------------------------------------
-- 3a. Offers of one category under the same policies (a policy class): the policies
--     evaluated once per request or category are found blocking once for the class; each
--     offer's own policies (cooldown: its own rows) still come first when their priority
--     is higher. o4 is a second plain card; "one-today" has one o2 row today.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority, cost) VALUES
    ('rpol', 'o4', 'Second plain card', 'cards', 'active', 65, 1);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rpol', 'o4-web', 'o4', 'web', 'o4 on web');
CREATE FUNCTION pg_temp.each(customer text, flow text DEFAULT NULL) RETURNS TABLE (offer_id text, outcome text)
LANGUAGE sql AS $$
    SELECT r.offer_id, coalesce((r.explanation ->> 'droppedAt') || ': ' || (r.explanation ->> 'reason'), 'selected')
      FROM kaireon.recommend('rpol', customer, 'web', decision_flow => flow, options => '{"dry_run": true, "debug": true}') r
     ORDER BY r.offer_id
$$;
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-cool', 'Cool a day', 'cooldown', 30, '{"hours": 24}'),
    ('rpol', 'p-total', 'One a day', 'customer_total_cap', 20, '{"maxCount": 1, "period": "day"}');
-- o2 is cooled first (its own row, the higher priority); the others are capped
SELECT 'cooldown first' AS case, * FROM pg_temp.each('one-today');
UPDATE kaireon.contact_policies SET priority = 40 WHERE tenant_id = 'rpol' AND id = 'p-total';
SELECT 'cap first' AS case, * FROM pg_temp.each('one-today');
-- exempt from the cap in cards: o2 is still cooled, o3 (loans) still capped
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, scope, scope_id, config) VALUES
    ('rpol', 'p-cards', 'Cards may exceed', 'allow_override', 50, 'category', 'cards', '{"exemptRuleTypes": ["customer_total_cap"]}');
SELECT 'cards exempt from the cap' AS case, * FROM pg_temp.each('one-today');
-- a mandatory o4 bypasses the cap; o1 (same policies) is held
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol' AND id = 'p-cards';
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rpol' AND id = 'o4';
SELECT 'o4 mandatory' AS case, * FROM pg_temp.each('one-today');
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rpol' AND id = 'o4';
-- per category: one cards row today caps the cards, not the loan
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-cat', 'One a day per category', 'offer_category_cap', 20, '{"maxCount": 1, "period": "day"}'),
    ('rpol', 'p-cool', 'Cool a day', 'cooldown', 10, '{"hours": 24}');
SELECT 'per category' AS case, * FROM pg_temp.each('one-today');
-- an own policy of a class that blocks an offer no event names still does (mutual_exclusion:
-- o4 of the group {o2, o4}, o2 served today), beside a cooldown (which blocks only an offer
-- an event names) and a per-category cap that holds no offer; without the group, o4 passes
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-cat', 'Five a day per category', 'offer_category_cap', 20, '{"maxCount": 5, "period": "day"}'),
    ('rpol', 'p-cool', 'Cool a day', 'cooldown', 10, '{"hours": 24}'),
    ('rpol', 'p-group', 'o2 or o4', 'mutual_exclusion', 5, '{"offerIds": ["o2", "o4"], "lookbackHours": 24}');
SELECT 'own policy, no event names the offer' AS case, * FROM pg_temp.each('one-today');
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol' AND id = 'p-group';
SELECT 'cooldown only' AS case, * FROM pg_temp.each('one-today');
-- two contact_policy nodes with different policies: the cap named by the second one holds
-- whatever the first one found
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, priority, config) VALUES
    ('rpol', 'p-total', 'One a day', 'customer_total_cap', 20, '{"maxCount": 1, "period": "day"}');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, draft_config) VALUES ('rpol', 'f-two', 'two', 'Two screens', jsonb_build_object(
    'version', 2,
    'nodes', '[{"id": "inv", "type": "inventory"}, {"id": "creatives", "type": "match_creatives"},
               {"id": "first", "type": "contact_policy", "config": {"policies": [], "caps": false}},
               {"id": "second", "type": "contact_policy", "config": {"policies": ["p-total"], "caps": false}},
               {"id": "score", "type": "score"}, {"id": "rank", "type": "rank"},
               {"id": "answer", "type": "response", "config": {"maxOffers": 10}}]'::jsonb,
    'edges', '[{"from": "inv", "to": "creatives"}, {"from": "creatives", "to": "first"}, {"from": "first", "to": "second"},
               {"from": "second", "to": "score"}, {"from": "score", "to": "rank"}, {"from": "rank", "to": "answer"}]'::jsonb));
SELECT kaireon.publish_decision_flow('rpol', 'two') IS NOT NULL AS published;
SELECT 'none, then the cap' AS case, * FROM pg_temp.each('one-today', 'two');
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol';
DELETE FROM kaireon.offers WHERE tenant_id = 'rpol' AND id = 'o4';

-- ---------------------------------------------------------------------------------------
-- 4. Suppressions and consent.
-- ---------------------------------------------------------------------------------------
-- An active suppressions row (expires_at NULL or in the future) whose scope covers the
-- candidate drops it; mandatory offers are not held by suppressions.
INSERT INTO kaireon.suppressions (tenant_id, id, customer_id, scope, scope_id, reason, expires_at) VALUES
    ('rpol', 's1', 'fresh', 'global', NULL, 'asked for a break', now() + interval '1 day');
SELECT pg_temp.decide('fresh') AS global_active, pg_temp.decide('two-today') AS other_customer;
UPDATE kaireon.suppressions SET expires_at = now() - interval '1 second' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS global_expired;
UPDATE kaireon.suppressions SET expires_at = NULL WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS global_no_expiry;
UPDATE kaireon.suppressions SET scope = 'channel', scope_id = 'email', reason = NULL WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh', 'web') AS channel_email_on_web, pg_temp.decide('fresh', 'email') AS channel_email_on_email;
UPDATE kaireon.suppressions SET scope = 'category', scope_id = 'cards' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS category_cards;
UPDATE kaireon.suppressions SET scope = 'sub_category', scope_id = 'travel' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS sub_category_travel;
UPDATE kaireon.suppressions SET scope = 'offer', scope_id = 'o3' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS offer_o3;
UPDATE kaireon.suppressions SET scope = 'global', scope_id = NULL WHERE tenant_id = 'rpol';
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rpol' AND id = 'o3';
SELECT pg_temp.decide('fresh') AS global_mandatory_o3;
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rpol' AND id = 'o3';
DELETE FROM kaireon.suppressions WHERE tenant_id = 'rpol';

-- Consent: email needs marketing_email; the customer's latest record for it decides.
SELECT pg_temp.decide('fresh', 'email') AS no_record;
INSERT INTO kaireon.consent_records (tenant_id, id, subject_id, purpose, status, granted_at, revoked_at, created_at) VALUES
    ('rpol', 'c1', 'fresh', 'marketing_email', 'granted', now() - interval '30 days', NULL, now() - interval '30 days'),
    ('rpol', 'c2', 'fresh', 'marketing_email', 'revoked', NULL, now() - interval '3 days', now() - interval '3 days');
SELECT pg_temp.decide('fresh', 'email') AS revoked_latest, pg_temp.decide('fresh', 'web') AS web_needs_no_consent;
-- consent is checked before everything else: a mandatory offer is dropped too
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rpol' AND id = 'o3';
SELECT pg_temp.decide('fresh', 'email') AS revoked_mandatory;
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rpol' AND id = 'o3';
INSERT INTO kaireon.consent_records (tenant_id, id, subject_id, purpose, status, granted_at, created_at) VALUES
    ('rpol', 'c3', 'fresh', 'marketing_email', 'granted', now() - interval '1 day', now() - interval '1 day');
SELECT pg_temp.decide('fresh', 'email') AS granted_again;
INSERT INTO kaireon.consent_records (tenant_id, id, subject_id, purpose, status, created_at) VALUES
    ('rpol', 'c4', 'fresh', 'marketing_email', 'pending', now() - interval '1 hour');
SELECT pg_temp.decide('fresh', 'email') AS pending_latest;
-- another purpose, or another customer's record, does not count
INSERT INTO kaireon.consent_records (tenant_id, id, subject_id, purpose, status, revoked_at, created_at) VALUES
    ('rpol', 'c5', 'fresh', 'marketing_sms', 'revoked', now(), now()),
    ('rpol', 'c6', 'two-today', 'marketing_email', 'revoked', now(), now());
SELECT pg_temp.decide('fresh', 'email') AS other_purpose_revoked, pg_temp.decide('two-today', 'email') AS other_customer_revoked;
COMMIT;

-- ---------------------------------------------------------------------------------------
-- 5. Caps (step 8): an active volume constraint or budget whose scope covers the candidate
--    and that is used up drops it. Each block runs in one transaction (one now()).
-- ---------------------------------------------------------------------------------------
-- Volume constraints count decisions per calendar period; the counter read is 0 once its
-- reset_at (the end of the period it counts) has passed.
BEGIN;
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, scope_id, max_volume, period, current_count, reset_at) VALUES
    ('rpol', 'v1', 'o1 daily', 'offer', 'o1', 2, 'daily', 2, now() + interval '1 hour');
SELECT pg_temp.decide('fresh') AS o1_used_up;
UPDATE kaireon.volume_constraints SET current_count = 1 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS o1_one_left;
UPDATE kaireon.volume_constraints SET current_count = 5, reset_at = now() - interval '1 second' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS o1_period_over;
-- A counter whose period never started (reset_at NULL) starts a new period when taken,
-- whatever its current_count, so it is read as empty too and o1 is offered (regression:
-- reading and taking once disagreed).
UPDATE kaireon.volume_constraints SET current_count = 2, reset_at = NULL WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS o1_never_started_at_cap;
UPDATE kaireon.volume_constraints SET current_count = 2, reset_at = now() + interval '1 hour', status = 'inactive' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS inactive;
UPDATE kaireon.volume_constraints SET status = 'active', scope = 'category', scope_id = 'cards', name = 'cards weekly', period = 'weekly'
 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS scope_category;
UPDATE kaireon.volume_constraints SET scope = 'channel', scope_id = 'email' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh', 'web') AS scope_channel_email_on_web, pg_temp.decide('fresh', 'email') AS scope_channel_email_on_email;
UPDATE kaireon.volume_constraints SET scope = 'global', scope_id = NULL, name = 'all monthly', period = 'monthly' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS scope_global;
-- mandatory offers are not exempt from caps
UPDATE kaireon.offers SET mandatory = true WHERE tenant_id = 'rpol' AND id = 'o3';
SELECT pg_temp.decide('fresh') AS scope_global_mandatory;
UPDATE kaireon.offers SET mandatory = false WHERE tenant_id = 'rpol' AND id = 'o3';
DELETE FROM kaireon.volume_constraints WHERE tenant_id = 'rpol';
COMMIT;

-- Recording takes one unit of every cap covering each selected offer; a new counter
-- starts its period (reset_at = end of today, UTC). Once used up, the offer is dropped and
-- no further unit is taken.
BEGIN;
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, scope_id, max_volume, period) VALUES
    ('rpol', 'v2', 'o2 twice a day', 'offer', 'o2', 2, 'daily'),
    ('rpol', 'v3', 'o1 or o2 monthly', 'category', 'cards', 100, 'monthly');
SELECT i, string_agg(r.offer_id, ' ' ORDER BY r.offer_id) AS recorded
  FROM generate_series(1, 3) i,
       LATERAL kaireon.recommend('rpol', 'taker', 'web', context => jsonb_build_object('i', i)) r
 GROUP BY i ORDER BY i;
-- (each resets at the end of its own UTC period; on a month's last day both ends are one)
SELECT id, period, current_count,
       reset_at = (CASE period WHEN 'daily' THEN date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day'
                               WHEN 'monthly' THEN date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month'
                   END) AT TIME ZONE 'UTC' AS resets_at_end_of_period
  FROM kaireon.volume_constraints WHERE tenant_id = 'rpol' ORDER BY id;
-- a dry run takes nothing
SELECT count(*) AS dry_run_decisions FROM kaireon.recommend('rpol', 'taker', 'web', options => '{"dry_run": true}');
SELECT id, current_count FROM kaireon.volume_constraints WHERE tenant_id = 'rpol' ORDER BY id;
DELETE FROM kaireon.volume_constraints WHERE tenant_id = 'rpol';
COMMIT;

-- Budgets apply when their period_key is the current one (or "current", or period_type
-- "total") and are used up when a used counter reaches its maximum.
BEGIN;
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, period_key, max_impressions, used_impressions) VALUES
    ('rpol', 'b1', 'o1 budget', 'offer', 'o1', 'monthly', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'), 3, 3);
SELECT pg_temp.decide('fresh') AS this_month_used_up;
UPDATE kaireon.budget_allocations SET used_impressions = 2 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS this_month_one_left;
UPDATE kaireon.budget_allocations SET used_impressions = 3,
       period_key = to_char((now() - interval '1 month') AT TIME ZONE 'UTC', 'YYYY-MM') WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS last_month_does_not_apply;
-- period keys of each period type (the budget b1, used up, under each in turn)
CREATE FUNCTION pg_temp.with_budget_period(ptype text, pkey text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kaireon.budget_allocations SET period_type = ptype, period_key = pkey WHERE tenant_id = 'rpol' AND id = 'b1';
    RETURN pg_temp.decide('fresh');
END
$$;
SELECT ptype, pkey_kind, pg_temp.with_budget_period(ptype, pkey) AS outcome
  FROM (VALUES (1, 'daily', 'today', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
               (2, 'daily', 'yesterday', to_char((now() - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
               (3, 'weekly', 'this ISO week', to_char(now() AT TIME ZONE 'UTC', 'IYYY-"W"IW')),
               (4, 'weekly', 'last ISO week', to_char((now() - interval '7 days') AT TIME ZONE 'UTC', 'IYYY-"W"IW')),
               (5, 'quarterly', 'this quarter', to_char(now() AT TIME ZONE 'UTC', 'YYYY-"Q"Q')),
               (6, 'quarterly', 'last quarter', to_char((now() - interval '3 months') AT TIME ZONE 'UTC', 'YYYY-"Q"Q')),
               (7, 'monthly', 'current', 'current'),
               (8, 'total', 'any key', '2001')) AS k(n, ptype, pkey_kind, pkey)
 ORDER BY n;
-- spend and conversions: used up at their maximum too; an inactive budget does not apply
UPDATE kaireon.budget_allocations SET period_type = 'total', max_impressions = NULL, max_spend = 10, used_spend = 10
 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS spend_used_up;
UPDATE kaireon.budget_allocations SET max_spend = NULL, max_conversions = 1, used_conversions = 1 WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS conversions_used_up;
UPDATE kaireon.budget_allocations SET status = 'inactive' WHERE tenant_id = 'rpol';
SELECT pg_temp.decide('fresh') AS inactive;
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'rpol';
COMMIT;

-- Recording takes one impression (and the offer's cost as spend) of every budget covering
-- a selected offer; a budget that cannot take it drops the offer.
BEGIN;
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, period_key, max_impressions, max_spend) VALUES
    ('rpol', 'b-loans', 'loans', 'category', 'loans', 'monthly', 'current', 2, 100),
    ('rpol', 'b-all', 'everything', 'global', NULL, 'total', 'current', NULL, 7);
-- o1 costs 2, o2 1, o3 5. Each decision takes o1 and o2 from b-all's spend of 7 (3 each
-- time, 6 in all); o3, last by rank, never fits and is skipped, and b-loans, which o3 would
-- also take, is left untouched (a failed reservation gives back what it took).
SELECT i, string_agg(r.offer_id, ' ' ORDER BY r.rank) AS recorded
  FROM generate_series(1, 2) i,
       LATERAL kaireon.recommend('rpol', 'spender', 'web', context => jsonb_build_object('i', i)) r
 GROUP BY i ORDER BY i;
SELECT id, used_impressions, used_spend FROM kaireon.budget_allocations WHERE tenant_id = 'rpol' ORDER BY id;
-- the skipped offer, as debug reports it (the spend left, 1, passes step 8's "used up"
-- test, so it is the reservation that refuses it)
SELECT offer_id, explanation ->> 'droppedAt' AS stage, explanation ->> 'reason' AS reason
  FROM kaireon.recommend('rpol', 'spender', 'web', options => '{"debug": true}') WHERE rank IS NULL;
SELECT id, used_impressions, used_spend FROM kaireon.budget_allocations WHERE tenant_id = 'rpol' ORDER BY id;
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'rpol';
COMMIT;

-- The budget_exhausted policy: the budget budgetId (or any budget covering the candidate)
-- has used threshold (default 1) of its metric (default any). o1's budget has used 8 of
-- 10 impressions: not used up as a cap, but past a threshold of 0.8.
INSERT INTO kaireon.budget_allocations (tenant_id, id, name, scope, scope_id, period_type, max_impressions, used_impressions, max_spend, used_spend) VALUES
    ('rpol', 'b-o1', 'o1 budget', 'offer', 'o1', 'total', 10, 8, 100, 10);
SELECT pg_temp.decide('fresh') AS no_policy;
SELECT n, what, pg_temp.with_policy('budget_exhausted', config, 'fresh') AS outcome
  FROM (VALUES
    (1, 'budget b-o1 at threshold 0.8: blocks o1', '{"budgetId": "b-o1", "threshold": 0.8}'::jsonb),
    (2, 'budget b-o1 at threshold 0.9: passes', '{"budgetId": "b-o1", "threshold": 0.9}'),
    (3, 'budget b-o1, default threshold 1: passes', '{"budgetId": "b-o1"}'),
    (4, 'any covering budget at 0.8: blocks o1', '{"threshold": 0.8}'),
    (5, 'spend (10 of 100) at 0.8: passes', '{"budgetId": "b-o1", "metric": "spend", "threshold": 0.8}'),
    (6, 'spend at 0.1: blocks o1', '{"budgetId": "b-o1", "metric": "spend", "threshold": 0.1}'),
    (7, 'conversions (no maximum) at 0.1: passes', '{"budgetId": "b-o1", "metric": "conversions", "threshold": 0.1}'),
    (8, 'an unknown budget: passes', '{"budgetId": "no-such-budget", "threshold": 0.1}')
  ) AS t(n, what, config)
 ORDER BY n;
-- Cases 1 and 6 hold every offer, not only o1: a policy naming budgetId holds whatever its
-- own scope covers (here global), whatever the budget's scope; docs/recommend.md reads "the
-- budget budgetId (or any budget covering the candidate)", so this is what it says.
-- A budget named by budgetId applies only in its current period, like every other use of
-- budgets: last month's (used 8 of 10) holds nothing (regression: it once did).
UPDATE kaireon.budget_allocations SET period_type = 'monthly',
       period_key = to_char((now() - interval '1 month') AT TIME ZONE 'UTC', 'YYYY-MM') WHERE tenant_id = 'rpol';
SELECT pg_temp.with_policy('budget_exhausted', '{"budgetId": "b-o1", "threshold": 0.8}', 'fresh') AS named_budget_of_last_month,
       pg_temp.with_policy('budget_exhausted', '{"threshold": 0.8}', 'fresh') AS covering_budget_of_last_month;
DELETE FROM kaireon.budget_allocations WHERE tenant_id = 'rpol';

-- Contact policies are bound to the offers they can act on when the configuration is
-- compiled: an offer added later is bound by the recompile its insertion triggers (o4 of
-- loans is blocked like o3), a scope moved later binds the policy to the offers it covers
-- now, and an offer joining a mutual_exclusion group is bound to it then.
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, scope, scope_id, config)
    VALUES ('rpol', 'bound', 'bound', 'segment_exclusion', 'category', 'loans', '{"segmentIds": ["minors"]}');
SELECT pg_temp.decide('minor') AS before_offer_added;
INSERT INTO kaireon.offers (tenant_id, id, name, category_id, status, priority) VALUES
    ('rpol', 'o4', 'Second loan', 'loans', 'active', 50);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('rpol', 'o4-web', 'o4', 'web', 'o4 on web');
SELECT pg_temp.decide('minor') AS offer_added, pg_temp.decide('fresh') AS offer_added_adult;
UPDATE kaireon.contact_policies SET scope_id = 'cards' WHERE tenant_id = 'rpol' AND id = 'bound';
SELECT pg_temp.decide('minor') AS scope_moved_to_cards;
UPDATE kaireon.contact_policies SET rule_type = 'mutual_exclusion', scope = 'global', scope_id = NULL,
       config = '{"offerIds": ["o1", "o3"], "lookbackHours": 24}' WHERE tenant_id = 'rpol' AND id = 'bound';
SELECT pg_temp.decide('recent-o1') AS group_o1_o3;
UPDATE kaireon.contact_policies SET config = '{"offerIds": ["o1", "o3", "o4"], "lookbackHours": 24}'
 WHERE tenant_id = 'rpol' AND id = 'bound';
SELECT pg_temp.decide('recent-o1') AS group_o1_o3_o4;
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'rpol' AND id = 'bound';
DELETE FROM kaireon.offers WHERE tenant_id = 'rpol' AND id = 'o4';

-- Funnel counts of a decision with one drop at each stage: a suppression (o2), a contact
-- policy (o1 cooled down) and a volume constraint (o3).
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, scope_id) VALUES ('rpol', 'recent-o1', 'offer', 'o2');
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config) VALUES
    ('rpol', 'p-cool', 'Cool', 'cooldown', '{"hours": 24}');
INSERT INTO kaireon.volume_constraints (tenant_id, name, scope, scope_id, max_volume, period, current_count, reset_at)
    VALUES ('rpol', 'o3 used up', 'offer', 'o3', 1, 'monthly', 1, now() + interval '1 day');
SELECT offer_id, explanation ->> 'droppedAt' AS stage, (explanation -> 'funnel' -> 0) - 'flow' - 'placement' AS funnel
  FROM kaireon.recommend('rpol', 'recent-o1', 'web', options => '{"dry_run": true, "debug": true}') ORDER BY offer_id;

-- Clean up.
DELETE FROM kaireon.tenants WHERE id = 'rpol';
DROP SCHEMA kaireon_t_rpol CASCADE;
DELETE FROM kaireon.tenant_schemas WHERE schema_name = 'kaireon_t_rpol';
