-- kaireon install script, part 46: trigger rules and geofences (docs/triggers.md). Their
-- tables are in 30_operator.sql; here: validation when written, the configuration cache's
-- invalidation for trigger rules (which it compiles), and kaireon.location_event.
-- Trigger rules fire from kaireon.respond (src/decision/triggers.c).

CREATE FUNCTION kaireon_internal._validate_trigger_rule() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_trigger_rule'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_trigger_rule() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of trigger_rules: the event type (outcome or an outcome type key of the tenant), the action type and its action_config, the condition (guardrail expression language over event.* and customer.*), and for update_attribute the attributes against the published customer data schema; 22023 naming the rule and the bad part (docs/triggers.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, event_type, condition, action_type, action_config, cooldown_ms
    ON kaireon.trigger_rules FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_trigger_rule();

CREATE FUNCTION kaireon_internal._validate_geofence() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_validate_geofence'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon_internal._validate_geofence() IS
    'Internal: BEFORE INSERT OR UPDATE trigger of geofences: the action ({"type": "recommend" | "notify", that action''s fields, dwellSeconds for trigger_on dwell}); 22023 naming the geofence and the field (docs/triggers.md).';
CREATE TRIGGER validate_config BEFORE INSERT OR UPDATE OF name, trigger_on, action
    ON kaireon.geofences FOR EACH ROW EXECUTE FUNCTION kaireon_internal._validate_geofence();

-- Trigger rules are part of the compiled configuration (src/config/cache.c): a change renews
-- the tenant's configuration version, as for the tables of 45_decisioning_api.sql.
CREATE TRIGGER config_changed_ins AFTER INSERT ON kaireon.trigger_rules
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_upd AFTER UPDATE ON kaireon.trigger_rules
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_del AFTER DELETE ON kaireon.trigger_rules
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
CREATE TRIGGER config_changed_trunc AFTER TRUNCATE ON kaireon.trigger_rules
    FOR EACH STATEMENT EXECUTE FUNCTION kaireon.config_changed();
SELECT kaireon_internal._add_replica_invalidation('kaireon.trigger_rules');

CREATE FUNCTION kaireon.location_event(tenant_id text, customer_id text, latitude double precision,
                                       longitude double precision, at timestamptz DEFAULT now())
    RETURNS TABLE (geofence_id text, transition text, fired boolean, result jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_location_event'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.location_event(text, text, double precision, double precision, timestamptz) IS
    'A location of a customer at time at: detects entering, leaving and dwelling in the tenant''s geofences (great-circle distance to the centre within radius_meters; candidates through the GiST index on their bounding boxes), keeps the customer''s presence per fence (geofence_presences) and runs the action of each fence whose trigger_on happened (recommend: a recorded decision; notify: an outbox event), with the caller''s rights. One row per transition. Latitude outside [-90, 90], longitude outside [-180, 180], NaN or Infinity: 22023, nothing written. See docs/triggers.md.';
