-- A recording's interaction_history rows written without a statement (decision/history_write.c,
-- docs/recommend.md "Writing the decisions' rows"): the same rows as the INSERT statement
-- writes (kaireon.direct_history_writes off); a CHECK constraint added to the table after the
-- first recording of the session is enforced (the compiled checks are dropped with the relcache
-- entry), and its error is the statement's, without the statement in its context; a BEFORE ROW
-- trigger runs and may change the row, and one reading the table sees the rows written before;
-- with an AFTER trigger, or in a read-only transaction, the statement runs instead (the trigger
-- fires; the error is the statement's); an application role under row level security writes
-- directly for its own tenant, and through the statement (whose policy check applies after the
-- triggers) when a trigger of its own could change a row.
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('hw', 'History writes', 'hw');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type, impression_mode) VALUES
    ('hw', 'web', 'Web', 'web', 'implicit');
INSERT INTO kaireon.offers (tenant_id, id, name, status, priority) VALUES
    ('hw', 'o1', 'One', 'active', 10), ('hw', 'o2', 'Two', 'active', 20);
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('hw', 'c1', 'o1', 'web', 'c'), ('hw', 'c2', 'o2', 'web', 'c');
INSERT INTO kaireon.decision_flows (tenant_id, key, name, is_default, draft_config) VALUES ('hw', 'f', 'F', true, '{"maxOffers": 2}');
SELECT kaireon.publish_decision_flow('hw', 'f');
-- the rows of one recording, without what differs between customers and calls
CREATE FUNCTION pg_temp.rows_of(customer text) RETURNS TABLE (interaction_type text, rank int, offer_id text,
        creative_id text, channel_id text, placement_id text, decision_flow_id text, score float8,
        propensity float8, model_key text, selection_probability float8, arbitration_arm int,
        arbitration_profile_id text, lambda_version bigint, policy_version_hash text,
        model_version int, direction text, context jsonb, campaign_id text, outcome_type_key text,
        same_recommendation boolean, created_at_occurred boolean, id_is_uuid boolean)
    LANGUAGE sql AS $$
    SELECT h.interaction_type, h.rank, h.offer_id, h.creative_id, h.channel_id, h.placement_id,
           h.decision_flow_id, h.score, h.propensity, h.model_key, h.selection_probability,
           h.arbitration_arm, h.arbitration_profile_id, h.lambda_version, h.policy_version_hash,
           h.model_version, h.direction, h.context, h.campaign_id, h.outcome_type_key,
           (SELECT count(DISTINCT x.recommendation_id) FROM kaireon.interaction_history x
             WHERE x.tenant_id = 'hw' AND x.customer_id = customer) = 1, h.occurred_at = h.created_at,
           h.id ~ '^[0-9a-f-]{36}$'
      FROM kaireon.interaction_history h WHERE h.tenant_id = 'hw' AND h.customer_id = customer $$;
-- a recording's check_violation: its constraint, and whether a statement raised it
CREATE FUNCTION pg_temp.blocked(customer text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    ctx text;
    con text;
BEGIN
    PERFORM * FROM kaireon.recommend('hw', customer, 'web');
    RETURN 'recorded';
EXCEPTION WHEN check_violation THEN
    GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT, con = CONSTRAINT_NAME;
    RETURN format('check_violation of %s, raised by the INSERT statement: %s', con,
                  ctx LIKE '%SQL statement "INSERT INTO kaireon.interaction_history%');
END $$;

SHOW kaireon.direct_history_writes;
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'direct', 'web');
SET kaireon.direct_history_writes = off;
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'statement', 'web');
RESET kaireon.direct_history_writes;
-- two decisions, each with its implicit impression: the same rows either way
SELECT count(*) AS direct_rows FROM pg_temp.rows_of('direct');
SELECT count(*) AS statement_rows FROM pg_temp.rows_of('statement');
(SELECT * FROM pg_temp.rows_of('direct') EXCEPT ALL SELECT * FROM pg_temp.rows_of('statement'))
UNION ALL
(SELECT * FROM pg_temp.rows_of('statement') EXCEPT ALL SELECT * FROM pg_temp.rows_of('direct'));
SELECT interaction_type, rank, offer_id, creative_id, same_recommendation, created_at_occurred, id_is_uuid
  FROM pg_temp.rows_of('direct') ORDER BY rank, interaction_type;

-- a CHECK constraint added after the session's first recording is enforced, as by the statement
ALTER TABLE kaireon.interaction_history ADD CONSTRAINT regress_hw_blocked CHECK (customer_id <> 'blocked');
SELECT pg_temp.blocked('blocked') AS direct;
SET kaireon.direct_history_writes = off;
SELECT pg_temp.blocked('blocked') AS statement;
RESET kaireon.direct_history_writes;
SELECT count(*) AS rows_of_blocked FROM kaireon.interaction_history WHERE tenant_id = 'hw' AND customer_id = 'blocked';
ALTER TABLE kaireon.interaction_history DROP CONSTRAINT regress_hw_blocked;
SELECT pg_temp.blocked('blocked') AS after_drop;

-- a BEFORE ROW trigger runs, and its change is written and checked
CREATE FUNCTION pg_temp.placement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id = 'trig' THEN NEW.placement_id := 'from-trigger'; END IF;
    IF NEW.customer_id = 'trig-bad' THEN NEW.rank := 99; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER regress_hw_placement BEFORE INSERT ON kaireon.interaction_history
    FOR EACH ROW EXECUTE FUNCTION pg_temp.placement();
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'trig', 'web');
SELECT placement_id, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'hw' AND customer_id = 'trig' GROUP BY 1;
SELECT pg_temp.blocked('trig-bad') AS rank_out_of_range;
DROP TRIGGER regress_hw_placement ON kaireon.interaction_history;
-- a BEFORE ROW trigger reading the table sees the recording's earlier rows, as with the
-- statement (the rows then go in one at a time, not as one batch)
CREATE FUNCTION pg_temp.earlier() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id = 'reads' THEN
        NEW.placement_id := (SELECT count(*) FROM kaireon.interaction_history h
                              WHERE h.tenant_id = NEW.tenant_id AND h.recommendation_id = NEW.recommendation_id)::text;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER regress_hw_earlier BEFORE INSERT ON kaireon.interaction_history
    FOR EACH ROW EXECUTE FUNCTION pg_temp.earlier();
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'reads', 'web');
SELECT array_agg(placement_id ORDER BY placement_id) AS rows_seen_before_each FROM kaireon.interaction_history
 WHERE tenant_id = 'hw' AND customer_id = 'reads';
DROP TRIGGER regress_hw_earlier ON kaireon.interaction_history;

-- an AFTER trigger: the statement runs, and the trigger fires for each row
CREATE TEMP TABLE seen_rows (customer_id text);
CREATE FUNCTION pg_temp.seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seen_rows VALUES (NEW.customer_id);
    RETURN NULL;
END $$;
CREATE TRIGGER regress_hw_seen AFTER INSERT ON kaireon.interaction_history
    FOR EACH ROW EXECUTE FUNCTION pg_temp.seen();
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'after', 'web');
SELECT customer_id, count(*) FROM seen_rows GROUP BY 1;
DROP TRIGGER regress_hw_seen ON kaireon.interaction_history;

-- an application role under row level security, recording for its own tenant: written directly
-- (a CHECK violation's error comes without the statement); a BEFORE ROW trigger of its own
-- (here changing the row's tenant) makes the statement run, whose policy check refuses the row
SET client_min_messages = warning;
CREATE ROLE regress_hw_app LOGIN;
SELECT kaireon.grant_app_role('regress_hw_app');
RESET client_min_messages;
ALTER TABLE kaireon.interaction_history ADD CONSTRAINT regress_hw_blocked CHECK (customer_id <> 'blocked-app');
SET ROLE regress_hw_app;
SET kaireon.tenant_id = 'hw';
SELECT count(*) AS offers FROM kaireon.recommend('hw', 'app', 'web');
SELECT pg_temp.blocked('blocked-app') AS app_role;
RESET ROLE;
ALTER TABLE kaireon.interaction_history DROP CONSTRAINT regress_hw_blocked;
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('hw2', 'Other tenant', 'hw2');
CREATE FUNCTION pg_temp.move_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.customer_id = 'moved' THEN NEW.tenant_id := 'hw2'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER regress_hw_move BEFORE INSERT ON kaireon.interaction_history
    FOR EACH ROW EXECUTE FUNCTION pg_temp.move_tenant();
SET ROLE regress_hw_app;
SELECT count(*) FROM kaireon.recommend('hw', 'moved', 'web');
RESET ROLE;
SELECT count(*) AS rows_of_moved FROM kaireon.interaction_history WHERE customer_id = 'moved';
DROP TRIGGER regress_hw_move ON kaireon.interaction_history;
RESET kaireon.tenant_id;

-- a BEFORE ROW trigger that skips a row: the recording fails, as with the statement
CREATE FUNCTION pg_temp.skip() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END $$;
CREATE TRIGGER regress_hw_skip BEFORE INSERT ON kaireon.interaction_history
    FOR EACH ROW EXECUTE FUNCTION pg_temp.skip();
SELECT count(*) FROM kaireon.recommend('hw', 'skipped', 'web');
DROP TRIGGER regress_hw_skip ON kaireon.interaction_history;

-- a read-only transaction: the statement's error
BEGIN READ ONLY;
SELECT count(*) FROM kaireon.recommend('hw', 'read-only', 'web');
ROLLBACK;

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'hw';
DELETE FROM kaireon.tenants WHERE id IN ('hw', 'hw2');
SET client_min_messages = warning;
DELETE FROM kaireon.role_grants;
DROP OWNED BY regress_hw_app;
DROP ROLE regress_hw_app;
RESET client_min_messages;
