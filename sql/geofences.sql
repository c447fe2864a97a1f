-- Geofences (docs/triggers.md): great-circle distances at known points, validation of the
-- fences' actions, kaireon.location_event's enter / exit / dwell sequences at explicit times
-- (never the clock), the actions fired (recommend: a recorded decision; notify: an outbox
-- event), bad input refused with nothing written, fences across the antimeridian and at a
-- pole, and the GiST index on the fences' bounding boxes for a tenant with 100k fences.
\set VERBOSITY terse
SET timezone = 'UTC';

-- ---------------------------------------------------------------------------------------
-- 1. Distances, computed by hand on a sphere of radius R = 6371008.8 m.
-- ---------------------------------------------------------------------------------------
-- 0.001 degree of the equator: R * pi / 180 * 0.001 = 111.195 m; one degree of latitude:
-- 111195.080 m; a pole to the equator: R * pi / 2 = 10007557.221 m; antipodes: R * pi =
-- 20015114.442 m; one degree of longitude at 60 N along the great circle: 55597.011 m (the
-- parallel's arc, R * cos 60 * pi / 180 = 55597.540 m, is longer); across the antimeridian
-- and across the north pole, the short way round.
SELECT round(kaireon_internal._haversine_m(0, 0, 0, 0.001)::numeric, 3) AS equator_millidegree,
       round(kaireon_internal._haversine_m(0, 0, 1, 0)::numeric, 3) AS one_degree_latitude,
       round(kaireon_internal._haversine_m(90, 0, 0, 0)::numeric, 3) AS pole_to_equator,
       round(kaireon_internal._haversine_m(0, 0, 0, 180)::numeric, 3) AS antipodes,
       round(kaireon_internal._haversine_m(60, 0, 60, 1)::numeric, 3) AS one_degree_at_60n,
       round(kaireon_internal._haversine_m(0, 179.9995, 0, -179.9995)::numeric, 3) AS across_antimeridian,
       round(kaireon_internal._haversine_m(89.9999, 0, 89.9999, 180)::numeric, 3) AS across_pole,
       kaireon_internal._haversine_m(48.8584, 2.2945, 48.8584, 2.2945) AS same_point;
-- bounding boxes: a small fence; one across the antimeridian and one at a pole span every longitude
SELECT kaireon_internal._geofence_box(0, 0, 111.19508023353292) @> box(point(0.001, 0), point(0.001, 0)) AS small_holds_edge,
       kaireon_internal._geofence_box(0, 0, 111.19508023353292) @> box(point(0.0011, 0), point(0.0011, 0)) AS small_not_beyond,
       kaireon_internal._geofence_box(0, 179.9995, 200) @> box(point(-179.9995, 0), point(-179.9995, 0)) AS antimeridian,
       kaireon_internal._geofence_box(89.9999, 0, 100) @> box(point(180, 89.9999), point(180, 89.9999)) AS pole;

-- ---------------------------------------------------------------------------------------
-- 2. A tenant, its fences; bad actions refused with 22023 naming the fence.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.tenants (id, name, slug, settings) VALUES ('geo', 'Geo', 'geo', '{"decisionTraceSampleRate": 0}');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('geo', 'push', 'Push', 'push');
INSERT INTO kaireon.offers (tenant_id, id, name, status) VALUES ('geo', 'coffee', 'Coffee', 'active');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES ('geo', 'coffee-push', 'coffee', 'push', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('geo', 'f', 'F', true, '{}');
SELECT kaireon.publish_decision_flow('geo', 'f');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'No type', 48.8584, 2.2945, 100, 'enter', '{"topic": "x"}');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'Webhook', 48.8584, 2.2945, 100, 'enter', '{"type": "webhook", "url": "https://x"}');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'Dwell', 48.8584, 2.2945, 100, 'dwell', '{"type": "notify"}');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'Enter dwell', 48.8584, 2.2945, 100, 'enter', '{"type": "notify", "dwellSeconds": 60}');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'No channel', 48.8584, 2.2945, 100, 'enter', '{"type": "recommend", "placement": "p"}');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'bad', 'Zero dwell', 48.8584, 2.2945, 100, 'dwell', '{"type": "notify", "dwellSeconds": 0}');
SELECT count(*) AS fences_written FROM kaireon.geofences WHERE tenant_id = 'geo';

INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action) VALUES
    -- around the Eiffel tower: 100 m notifies on enter; 500 m recommends after 10 minutes inside
    ('geo', 'a-tower', 'Tower', 48.8584, 2.2945, 100, 'enter', '{"type": "notify", "topic": "geo.tower", "payload": {"msg": "hi"}}'),
    ('geo', 'b-park', 'Park', 48.8584, 2.2945, 500, 'dwell', '{"type": "recommend", "channel": "push", "dwellSeconds": 600}'),
    -- the Louvre, 3162.5 m east: notifies on exit
    ('geo', 'c-museum', 'Museum', 48.8606, 2.3376, 200, 'exit', '{"type": "notify"}'),
    -- across the antimeridian and at the north pole
    ('geo', 'd-dateline', 'Dateline', 0, 179.9995, 200, 'enter', '{"type": "notify", "topic": "geo.dateline"}'),
    ('geo', 'e-pole', 'Pole', 89.9999, 0, 100, 'enter', '{"type": "notify", "topic": "geo.pole"}');

-- ---------------------------------------------------------------------------------------
-- 3. Enter, dwell, exit for customer u1, at explicit times.
-- ---------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.loc(lat double precision, lon double precision, at timestamptz)
RETURNS TABLE (geofence_id text, transition text, fired boolean, result jsonb)
LANGUAGE sql AS $$
    SELECT l.geofence_id, l.transition, l.fired, l.result - 'outboxEventId' - 'recommendationId'
      FROM kaireon.location_event('geo', 'u1', lat, lon, at) l
$$;
CREATE FUNCTION pg_temp.presence() RETURNS text
LANGUAGE sql AS $$
    SELECT coalesce(string_agg(format('%s entered %s seen %s dwell %s', geofence_id, to_char(entered_at, 'HH24:MI'),
                                      to_char(last_seen_at, 'HH24:MI'), coalesce(to_char(dwell_fired_at, 'HH24:MI'), '-')),
                               '; ' ORDER BY geofence_id), 'nowhere')
      FROM kaireon.geofence_presences WHERE tenant_id = 'geo' AND customer_id = 'u1'
$$;
-- 10:00, 50 m north of the tower (50 / 111195.080 degree): enters both; the tower notifies
SELECT * FROM pg_temp.loc(48.8584 + 50 / 111195.08, 2.2945, '2026-05-01 10:00+00');
SELECT topic, payload -> 'source' AS source, payload -> 'payload' AS payload,
       round((payload -> 'event' ->> 'distanceMeters')::numeric, 3) AS distance
  FROM kaireon.outbox_events WHERE tenant_id = 'geo' ORDER BY seq;
SELECT pg_temp.presence();
-- 10:05: still inside, nothing (5 of 10 minutes); 10:10: the park's dwell, a recorded decision
SELECT * FROM pg_temp.loc(48.8584 + 50 / 111195.08, 2.2945, '2026-05-01 10:05+00');
SELECT * FROM pg_temp.loc(48.8584, 2.2945, '2026-05-01 10:10+00');
SELECT interaction_type, customer_id, channel_id, offer_id
  FROM kaireon.interaction_history WHERE tenant_id = 'geo';
-- 10:11: dwell fires once per stay
SELECT * FROM pg_temp.loc(48.8584, 2.2945, '2026-05-01 10:11+00');
SELECT pg_temp.presence();
-- 10:12, 300 m north: leaves the tower (its trigger is enter: no action), stays in the park
SELECT * FROM pg_temp.loc(48.8584 + 300 / 111195.08, 2.2945, '2026-05-01 10:12+00');
-- a location older than the last one at the park does not move the park's state
SELECT * FROM pg_temp.loc(0, 0, '2026-05-01 10:11:30+00');
SELECT pg_temp.presence();
-- 10:20 at the museum: leaves the park, enters the museum (whose trigger is exit)
SELECT * FROM pg_temp.loc(48.8606, 2.3376, '2026-05-01 10:20+00');
-- 10:30, 150 m from the museum's centre: still inside; 10:40, 250 m: leaves, and it notifies
SELECT * FROM pg_temp.loc(48.8606 + 150 / 111195.08, 2.3376, '2026-05-01 10:30+00');
SELECT * FROM pg_temp.loc(48.8606 + 250 / 111195.08, 2.3376, '2026-05-01 10:40+00');
SELECT pg_temp.presence();
-- the park again: a new stay, whose dwell fires again after 10 minutes
SELECT * FROM pg_temp.loc(48.8584, 2.2945 + 0.005, '2026-05-01 11:00+00');
SELECT * FROM pg_temp.loc(48.8584, 2.2945 + 0.005, '2026-05-01 11:10+00');
-- a paused fence: the customer inside it leaves it at the next location
UPDATE kaireon.geofences SET status = 'paused' WHERE tenant_id = 'geo' AND id = 'b-park';
SELECT * FROM pg_temp.loc(48.8584, 2.2945 + 0.005, '2026-05-01 11:11+00');
UPDATE kaireon.geofences SET status = 'active' WHERE tenant_id = 'geo' AND id = 'b-park';
-- across the antimeridian (111.2 m from the centre) and across the pole (22.2 m)
SELECT * FROM pg_temp.loc(0, -179.9995, '2026-05-01 12:00+00');
SELECT * FROM pg_temp.loc(89.9999, 180, '2026-05-01 12:05+00');
-- just outside: 0.0025 degree of the equator west of the dateline fence's centre, 277.988 m
SELECT * FROM kaireon.location_event('geo', 'u2', 0, 179.9995 - 0.0025, '2026-05-01 12:00+00');

-- ---------------------------------------------------------------------------------------
-- 4. Bad input: 22023 (22004 for a null) naming the value, nothing written.
-- ---------------------------------------------------------------------------------------
SELECT count(*) AS presences_before FROM kaireon.geofence_presences WHERE tenant_id = 'geo';
SELECT * FROM kaireon.location_event('geo', 'u3', 90.5, 0, '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', -91, 0, '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', 'NaN', 0, '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', 'Infinity', 0, '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', 0, 180.5, '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', 0, '-Infinity', '2026-05-01 12:00+00');
SELECT * FROM kaireon.location_event('geo', 'u3', 48.8584, 2.2945, 'infinity');
SELECT * FROM kaireon.location_event('geo', 'u3', 48.8584, 2.2945, NULL);
SELECT * FROM kaireon.location_event('geo', NULL, 48.8584, 2.2945, '2026-05-01 12:00+00');
SELECT count(*) AS presences_after FROM kaireon.geofence_presences WHERE tenant_id = 'geo';

-- ---------------------------------------------------------------------------------------
-- 5. 100k fences: the candidates come from the GiST index on the bounding boxes.
-- ---------------------------------------------------------------------------------------
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('geobig', 'Geo big', 'geobig');
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
SELECT 'geobig', 'g' || i, 'Fence ' || i, -60 + (i % 400) * 0.3, -170 + (i / 400) * 1.36, 1000, 'enter',
       '{"type": "notify"}'
  FROM generate_series(0, 99999) i;
ANALYZE kaireon.geofences;
-- the candidate query of kaireon.location_event (src/decision/geofences.c), its first branch
EXPLAIN (COSTS OFF)
SELECT g.id FROM kaireon.geofences g
 WHERE g.tenant_id = 'geobig' AND g.status = 'active'
   AND kaireon_internal._geofence_box(g.latitude, g.longitude, g.radius_meters)
       @> box(point(10.2, 30.0), point(10.2, 30.0));
-- the fence g12345 (latitude -60 + 345 * 0.3 = 43.5, longitude -170 + 30 * 1.36 = -129.2),
-- 500 m north of its centre: entered; 1500 m north: left
SELECT geofence_id, transition, fired
  FROM kaireon.location_event('geobig', 'u1', 43.5 + 500 / 111195.08, -129.2, '2026-05-01 10:00+00');
SELECT geofence_id, transition, fired
  FROM kaireon.location_event('geobig', 'u1', 43.5 + 1500 / 111195.08, -129.2, '2026-05-01 10:01+00');

-- a fence written before the checks existed (0.1.0 kept geofences, action '{}' by default):
-- its action answers 22023 naming the fence when it fires (it crashed), nothing written
ALTER TABLE kaireon.geofences DISABLE TRIGGER validate_config;
INSERT INTO kaireon.geofences (tenant_id, id, name, latitude, longitude, radius_meters, trigger_on, action)
    VALUES ('geo', 'old', 'From 0.1.0', 10, 10, 100, 'enter', '{}');
ALTER TABLE kaireon.geofences ENABLE TRIGGER validate_config;
SELECT * FROM kaireon.location_event('geo', 'u9', 10, 10, '2026-05-02 10:00+00');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS u9_presences FROM kaireon.geofence_presences WHERE tenant_id = 'geo' AND customer_id = 'u9';
DELETE FROM kaireon.geofences WHERE tenant_id = 'geo' AND id = 'old';

SET client_min_messages = warning;
DELETE FROM kaireon.tenants WHERE id IN ('geo', 'geobig');
