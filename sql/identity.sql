-- identity: recommend and respond decide for the canonical customer of the identifier they are
-- given (kaireon.identity_links; docs/identity.md): resolution by each identifier type, with and
-- without identifierType, sessionId, an unknown id (a customer of its own, as without links),
-- another tenant's link ignored, an ambiguous identifier refused; the customer's attributes,
-- history and caps follow the canonical id; the answers and the recorded rows say which
-- customer and which identifier; kaireon.link_identity moves a session's history to the
-- customer so that a cap stays exact across the merge, refuses self links and conflicting
-- links, resolves chains to the root and merges two customers; bad input refused (22023 or
-- 22004 with a hint), nothing written.
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET timezone = 'UTC';
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES
    ('idn', 'Identity', 'idn', '{"decisionTraceSampleRate": 0}'),
    ('idx', 'Other', 'idx', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode)
    VALUES ('idn', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('idn', 'gold', 'Gold card', 'active', 90), ('idn', 'plain', 'Plain card', 'active', 80);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('idn', 'gold-web', 'gold', 'web', 'Gold'), ('idn', 'plain-web', 'plain', 'web', 'Plain');
INSERT INTO kaireon.decision_flows (tenant_id, id, key, name, is_default, draft_config)
    VALUES ('idn', 'f-main', 'main', 'Main', true, '{"maxOffers": 1}');
SELECT kaireon.publish_decision_flow('idn', 'main') IS NOT NULL AS published;
-- attributes: gold is for known gold-tier customers (the customer data row of the canonical id)
INSERT INTO kaireon.data_schemas (tenant_id, id, name, entity_type) VALUES ('idn', 'customers', 'customers', 'customer');
INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
    ('idn', 'customers', 'customer_id', 'text', false, true, 1),
    ('idn', 'customers', 'tier', 'text', true, false, 2);
SELECT kaireon.publish_data_schema('idn', 'customers') IS NOT NULL AS published;
INSERT INTO kaireon_t_idn.ds_customers (customer_id, tier) VALUES ('ann', 'gold'), ('carl', 'gold'), ('bob', 'basic');
INSERT INTO kaireon.qualification_rules (tenant_id, id, name, rule_type, stage, scope, scope_id, config) VALUES
    ('idn', 'gold-tier', 'Gold tier', 'attribute_condition', 'eligibility', 'offer', 'gold',
     '{"attribute": "tier", "operator": "eq", "value": "gold"}'),
    ('idn', 'known', 'Known customers', 'attribute_condition', 'eligibility', 'offer', 'gold',
     '{"attribute": "tier", "operator": "exists"}');
INSERT INTO kaireon.qualification_rule_scopes (tenant_id, qualification_rule_id, scope, scope_id)
    SELECT tenant_id, id, scope, scope_id FROM kaireon.qualification_rules WHERE tenant_id = 'idn';
-- caps: two decisions a day per customer
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('idn', 'two-a-day', 'Two a day', 'frequency_cap', '{"maxCount": 2, "period": "day"}');

-- dec: a decision in the REST shape, summed up as "customer offer resolvedFrom"
CREATE FUNCTION pg_temp.dec(req jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT r ->> 'customerId' || ' ' || coalesce(r #>> '{decisions,0,offerId}', '(none: ' || (r #>> '{reason,stage}') || ')')
           || coalesce(' from ' || (r -> 'resolvedFrom')::text, '')
      FROM kaireon.recommend_json('{"tenantId": "idn", "channel": "web"}'::jsonb || req) r
$$;
CREATE FUNCTION pg_temp.rows_of(customer text) RETURNS text LANGUAGE sql AS $$
    SELECT count(*) FILTER (WHERE interaction_type = 'recommendation') || ' decisions, '
           || count(*) FILTER (WHERE interaction_type = 'outcome') || ' outcomes'
      FROM kaireon.interaction_history WHERE tenant_id = 'idn' AND customer_id = customer
$$;

-- 1. No links yet: the tenant's flag is off, every id is a customer of its own (as before).
SELECT pg_temp.dec('{"customerId": "ann@example.com", "dryRun": true}') AS by_email,
       pg_temp.dec('{"customerId": "ann", "dryRun": true}') AS by_id;
SELECT count(*) AS flagged FROM kaireon.config_versions WHERE tenant_id = 'idn' AND identity_links;

-- 2. The first link turns resolution on (config_versions.identity_links, a new version);
--    later links renew no version.
INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value) VALUES
    ('idn', 'ann', 'email', 'ann@example.com');
SELECT identity_links AS flagged, version AS v1 FROM kaireon.config_versions WHERE tenant_id = 'idn' \gset
SELECT :'flagged' AS flagged;
INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value) VALUES
    ('idn', 'ann', 'phone', '+4930123'), ('idn', 'ann', 'session', 's-ann'), ('idn', 'ann', 'device', 'dev-ann'),
    ('idn', 'ann', 'cookie', 'ck-ann'), ('idn', 'ann', 'customer_id', 'ann-old'), ('idn', 'ann', 'external', 'crm-17');
SELECT version = :v1 AS same_version FROM kaireon.config_versions WHERE tenant_id = 'idn';
-- another tenant's link of the same identifier (to its own customer): never seen by idn
INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value) VALUES
    ('idx', 'zed', 'email', 'bob@example.com');

-- 3. Resolution by each identifier type, without and with identifierType: the decision is for
--    ann (gold: her tier is read from her row), resolvedFrom names the identifier and its type.
SELECT l.identifier_type, pg_temp.dec(jsonb_build_object('customerId', l.identifier_value, 'dryRun', true)) AS any_type,
       pg_temp.dec(jsonb_build_object('customerId', l.identifier_value, 'identifierType', l.identifier_type,
                                      'dryRun', true)) AS typed
  FROM kaireon.identity_links l WHERE l.tenant_id = 'idn' ORDER BY 1;
-- a type that does not match the link: no link, the identifier is a customer of its own
SELECT pg_temp.dec('{"customerId": "ann@example.com", "identifierType": "phone", "dryRun": true}') AS wrong_type;
-- sessionId alone is a session identifier; with customerId it stays in the context only
SELECT pg_temp.dec('{"sessionId": "s-ann", "dryRun": true}') AS session,
       pg_temp.dec('{"sessionId": "s-ann", "identifierType": "session", "dryRun": true}') AS session_typed,
       pg_temp.dec('{"sessionId": "s-new", "dryRun": true}') AS new_session,
       pg_temp.dec('{"customerId": "bob", "sessionId": "s-ann", "dryRun": true}') AS customer_wins;
-- unknown ids, and idn's view of another tenant's link: customers of their own
SELECT pg_temp.dec('{"customerId": "nobody@example.com", "dryRun": true}') AS unknown,
       pg_temp.dec('{"customerId": "bob@example.com", "dryRun": true}') AS other_tenants_link;
-- kaireon.recommend: options.identifier_type; each decision's explanation says resolvedFrom
SELECT offer_id, explanation -> 'resolvedFrom' AS resolved_from
  FROM kaireon.recommend('idn', 'dev-ann', 'web', options => '{"dry_run": true, "identifier_type": "device"}');
SELECT offer_id, explanation -> 'resolvedFrom' AS resolved_from
  FROM kaireon.recommend('idn', 'bob', 'web', options => '{"dry_run": true}');

-- 4. An identifier linked to two customers (written straight into the table: link_identity
--    refuses it) is refused unless its type says which link is meant.
INSERT INTO kaireon.identity_links (tenant_id, canonical_id, identifier_type, identifier_value) VALUES
    ('idn', 'bob', 'cookie', 'shared-1'), ('idn', 'ann', 'external', 'shared-1');
SELECT pg_temp.dec('{"customerId": "shared-1", "dryRun": true}');
SELECT pg_temp.dec('{"customerId": "shared-1", "identifierType": "cookie", "dryRun": true}') AS cookie,
       pg_temp.dec('{"customerId": "shared-1", "identifierType": "external", "dryRun": true}') AS external;
DELETE FROM kaireon.identity_links WHERE tenant_id = 'idn' AND identifier_value = 'shared-1';

-- 5. Bad input: 22023 with a hint, nothing written.
SELECT count(*) AS history_before FROM kaireon.interaction_history WHERE tenant_id = 'idn';
\set VERBOSITY default
SELECT pg_temp.dec('{"customerId": "ann@example.com", "identifierType": "fax"}');
SELECT pg_temp.dec('{"customerId": "ann@example.com", "identifierType": 3}');
SELECT pg_temp.dec('{"sessionId": "s-ann", "identifierType": "email"}');
SELECT pg_temp.dec('{"customerId": "ann@example.com", "context": {"resolvedFrom": "me"}}');
SELECT * FROM kaireon.recommend('idn', 'ann@example.com', 'web', options => '{"identifier_type": "fax"}');
SELECT * FROM kaireon.recommend('idn', 'ann@example.com', 'web', options => '{"identifier_type": ["email"]}');
SELECT kaireon.respond_json('{"tenantId": "idn", "customerId": "ann@example.com", "identifierType": "fax", "outcome": "click", "offerId": "gold"}');
SELECT kaireon.respond_json('{"tenantId": "idn", "sessionId": "s-ann", "identifierType": "device", "outcome": "click", "offerId": "gold"}');
\set VERBOSITY terse
SELECT count(*) AS history_after FROM kaireon.interaction_history WHERE tenant_id = 'idn';

-- 6. Recorded: the decision is ann's (her history, her cap), its context says from which
--    identifier; respond by another identifier finds it and records the outcome as ann's.
SELECT r ->> 'recommendationId' AS rec, r ->> 'customerId' AS customer
  FROM kaireon.recommend_json('{"tenantId": "idn", "customerId": "ann@example.com", "channel": "web"}') r \gset
SELECT :'customer' AS customer, pg_temp.rows_of('ann') AS ann, pg_temp.rows_of('ann@example.com') AS by_email;
SELECT interaction_type, customer_id, offer_id, context -> 'resolvedFrom' AS resolved_from
  FROM kaireon.interaction_history WHERE tenant_id = 'idn' AND recommendation_id = :'rec' ORDER BY 1;
SELECT r ->> 'customerId' AS customer, r -> 'resolvedFrom' AS resolved_from, r ->> 'offerId' AS offer
  FROM kaireon.respond_json(jsonb_build_object('tenantId', 'idn', 'customerId', 'dev-ann', 'outcome', 'click',
                                               'recommendationId', :'rec', 'rank', 1)) r;
SELECT r ->> 'customerId' AS customer, r -> 'resolvedFrom' AS resolved_from
  FROM kaireon.respond(tenant_id => 'idn', customer_id => 'ck-ann', outcome => 'dismiss', recommendation_id => :'rec',
                       rank => 1) r;
SELECT pg_temp.rows_of('ann') AS ann, pg_temp.rows_of('dev-ann') AS by_device;

-- 7. One frequency cap for every identifier of the person: the e-mail decision above was the
--    first of two a day, the device id gets the second, the phone number nothing.
SELECT pg_temp.dec('{"customerId": "dev-ann"}') AS second, pg_temp.dec('{"customerId": "+4930123"}') AS third,
       pg_temp.rows_of('ann') AS ann;

-- 8. kaireon.link_identity: an anonymous session decided for twice, with a suppression, a
--    consent row and experiment arms, then linked to carl after one decision as carl: the
--    session's rows become carl's (his own arm of an experiment wins), and a cap of four a day
--    allows one more decision, by either id.
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('idn', 'four-a-day', 'Four a day', 'frequency_cap', '{"maxCount": 4, "period": "day"}');
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'idn' AND id = 'two-a-day';
SELECT pg_temp.dec('{"sessionId": "anon-7"}') AS as_session_1, pg_temp.dec('{"sessionId": "anon-7"}') AS as_session_2,
       pg_temp.dec('{"customerId": "carl"}') AS as_carl;
INSERT INTO kaireon.suppressions (tenant_id, customer_id, scope, scope_id, reason)
    VALUES ('idn', 'anon-7', 'offer', 'plain', 'dismissed as a visitor');
INSERT INTO kaireon.consent_records (tenant_id, subject_id, purpose, status, granted_at)
    VALUES ('idn', 'anon-7', 'marketing', 'granted', now());
INSERT INTO kaireon.variant_assignments (tenant_id, customer_id, experiment_key, variant_name) VALUES
    ('idn', 'anon-7', 'hero-test', 'B'), ('idn', 'carl', 'hero-test', 'A'), ('idn', 'anon-7', 'menu-test', 'B');
SELECT kaireon.link_identity('idn', 'session', 'anon-7', 'carl') - 'linkId' AS linked;
SELECT pg_temp.rows_of('carl') AS carl, pg_temp.rows_of('anon-7') AS session;
SELECT customer_id, scope_id FROM kaireon.suppressions WHERE tenant_id = 'idn' ORDER BY 1, 2;
SELECT subject_id, purpose FROM kaireon.consent_records WHERE tenant_id = 'idn';
-- carl keeps his own arm of hero-test and gets the session's arm of menu-test
SELECT customer_id, experiment_key, variant_name FROM kaireon.variant_assignments WHERE tenant_id = 'idn' ORDER BY 2;
SELECT customer_id, merged_into FROM kaireon.decision_locks WHERE tenant_id = 'idn' AND customer_id IN ('anon-7', 'carl') ORDER BY 1;
-- the fourth decision is carl's, by the session id or his own: the cap of four refuses a fifth
SELECT pg_temp.dec('{"sessionId": "anon-7"}') AS fourth, pg_temp.dec('{"customerId": "carl"}') AS fifth;

-- 9. The merge regression of the acceptance: a cap of 2 hit once as a session and once as the
--    customer after the link refuses the third.
DELETE FROM kaireon.contact_policies WHERE tenant_id = 'idn' AND id = 'four-a-day';
INSERT INTO kaireon.contact_policies (tenant_id, id, name, rule_type, config)
    VALUES ('idn', 'two-a-day', 'Two a day', 'frequency_cap', '{"maxCount": 2, "period": "day"}');
SELECT pg_temp.dec('{"sessionId": "anon-8"}') AS as_session;
SELECT kaireon.link_identity('idn', 'session', 'anon-8', 'bob') -> 'moved' AS moved;
SELECT pg_temp.dec('{"customerId": "bob"}') AS as_bob, pg_temp.dec('{"customerId": "bob"}') AS third,
       pg_temp.dec('{"sessionId": "anon-8"}') AS third_as_session;

-- 10. link_identity's cases.
-- the same link again: nothing created, nothing left to move
SELECT kaireon.link_identity('idn', 'session', 'anon-8', 'bob') - 'linkId' AS again;
-- a chain: linking to a linked identifier links to its customer (the root)
SELECT kaireon.link_identity('idn', 'cookie', 'ck-9', 'anon-8') ->> 'canonicalId' AS root;
-- merging two customers: bob becomes ann's, and bob's links follow (no chains)
SELECT kaireon.link_identity('idn', 'customer_id', 'bob', 'ann') - 'linkId' AS merged;
SELECT identifier_type, identifier_value, canonical_id FROM kaireon.identity_links
 WHERE tenant_id = 'idn' AND identifier_value IN ('anon-8', 'ck-9', 'bob') ORDER BY 2;
SELECT pg_temp.dec('{"sessionId": "anon-8", "dryRun": true}') AS session_of_bob;
-- a link deleted: the identifier is a customer of its own again (its history stays with carl;
-- its decision lock still names carl, and a recording decision looks the link up again)
DELETE FROM kaireon.identity_links WHERE tenant_id = 'idn' AND identifier_value = 'anon-7';
SELECT pg_temp.dec('{"sessionId": "anon-7"}') AS unlinked, pg_temp.rows_of('anon-7') AS session;
-- another tenant's link never conflicts
SELECT kaireon.link_identity('idx', 'email', 'ann@example.com', 'zed') ->> 'canonicalId' AS other_tenant;
SELECT pg_temp.dec('{"customerId": "ann@example.com", "dryRun": true}') AS still_ann;
\set VERBOSITY default
-- a self link, directly or through a link; a cycle
SELECT kaireon.link_identity('idn', 'customer_id', 'carl', 'carl');
SELECT kaireon.link_identity('idn', 'customer_id', 'ann', 'bob');
-- an identifier linked to another customer (under its type or another)
SELECT kaireon.link_identity('idn', 'cookie', 'ck-9', 'carl');
SELECT kaireon.link_identity('idn', 'device', 'ck-9', 'carl');
-- bad input
SELECT kaireon.link_identity('idn', 'fax', 'x', 'ann');
SELECT kaireon.link_identity('idn', 'email', ' ', 'ann');
SELECT kaireon.link_identity('idn', 'email', 'x@example.com', '');
SELECT kaireon.link_identity('idn', 'email', 'x@example.com', 'ann', 2);
SELECT kaireon.link_identity('idn', 'email', 'x@example.com', 'ann', 'NaN');
SELECT kaireon.link_identity('idn', 'email', NULL, 'ann');
SELECT kaireon.link_identity('nope', 'email', 'x@example.com', 'ann');
\set VERBOSITY terse
SELECT count(*) AS links FROM kaireon.identity_links WHERE identifier_value = 'x@example.com';

-- a device's geofence presence stays with the device, which location_event is given (moved,
-- the device's next location inside the fence would enter it again and fire the fence)
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('idn', 'shop', 'Shop', 48.8584, 2.2945, 100, 'enter', '{"type": "notify", "topic": "idn.shop"}');
SELECT geofence_id, transition, fired FROM kaireon.location_event('idn', 'dev-77', 48.8584, 2.2945, now() - interval '2 minutes');
SELECT kaireon.link_identity('idn', 'device', 'dev-77', 'carl') -> 'moved' AS moved;
SELECT count(*) AS transitions_inside_still FROM kaireon.location_event('idn', 'dev-77', 48.8584, 2.2945, now() - interval '1 minute');

-- a trigger rule's cooldown counts what it fired for the session before the link: carl's click
-- within the hour fires nothing
INSERT INTO kaireon.trigger_rules (tenant_id, id, name, event_type, action_type, action_config, cooldown_ms)
    VALUES ('idn', 'r-click', 'Click', 'click', 'notify', '{"topic": "idn.click"}', 3600000);
SELECT jsonb_array_length(r -> 'triggers') AS fired_for_session
  FROM kaireon.respond('idn', 'anon-t', 'click', offer_id => 'plain', occurred_at => now() - interval '10 minutes') r;
SELECT kaireon.link_identity('idn', 'session', 'anon-t', 'carl') -> 'moved' -> 'trigger_rule_firings' AS firings_moved;
SELECT coalesce(jsonb_array_length(r -> 'triggers'), 0) AS fired_for_carl_within_the_hour
  FROM kaireon.respond('idn', 'carl', 'click', offer_id => 'plain', occurred_at => now() - interval '5 minutes') r;
DELETE FROM kaireon.trigger_rules WHERE tenant_id = 'idn';

-- 11. A tenant's role sees only its links and cannot link for another tenant.
CREATE ROLE regress_identity_app;
SELECT kaireon.grant_app_role('regress_identity_app');
SET ROLE regress_identity_app;
SET kaireon.tenant_id = 'idx';
SELECT tenant_id, identifier_value, canonical_id FROM kaireon.identity_links ORDER BY 2;
SELECT kaireon.link_identity('idn', 'email', 'spy@example.com', 'ann');
SELECT kaireon.link_identity('idx', 'email', 'eve@example.com', 'zed') ->> 'canonicalId' AS own_tenant;
RESET kaireon.tenant_id;
RESET ROLE;
SELECT count(*) AS spy_links FROM kaireon.identity_links WHERE identifier_value = 'spy@example.com';

DELETE FROM kaireon.tenants WHERE id IN ('idn', 'idx');
DROP OWNED BY regress_identity_app;
DROP ROLE regress_identity_app;
