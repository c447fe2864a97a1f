-- The direct write of a recording's interaction_history rows (decision/history_write.c,
-- docs/recommend.md "Writing the decisions' rows") in the cases where it once differed from
-- the INSERT statement (kaireon.direct_history_writes off), each case run both ways: a column
-- default whose function records another decision (the nested recording takes the statement);
-- EXECUTE on a CHECK's function lost with a role membership or with superuser (the CHECK is
-- compiled again, and refused, as the statement); a volatile default or CHECK reading the
-- table (each row sees the rows before it, as in the statement); a STABLE default reading what
-- the calling statement wrote (the write's own snapshot, taken after the command counter
-- advanced, as the statement's); SELECT on algorithm_models, which the statement needs even
-- for rows without a model, revoked.
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

-- a recording's outcome: its rows, or its error (the partition's name left out) and whether
-- the INSERT statement raised it
CREATE FUNCTION pg_temp.outcome(customer text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    ctx text;
    msg text;
    state text;
BEGIN
    PERFORM * FROM kaireon.recommend('hwe', customer, 'web');
    RETURN format('%s rows', (SELECT count(*) FROM kaireon.interaction_history h
                               WHERE h.tenant_id = 'hwe' AND h.customer_id = customer));
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT, msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
    RETURN format('%s %s, raised by the INSERT statement: %s', state,
                  regexp_replace(msg, 'relation "interaction_history_[^"]*"', 'relation "<partition>"'),
                  ctx LIKE '%SQL statement "INSERT INTO kaireon.interaction_history%');
END $$;

-- EXECUTE on a CHECK's function held through a role membership, then revoked: the CHECK
-- compiled for the role at its first recording is compiled again (and refused), as the
-- statement checks the right again; the same for a role that was a superuser, then is not
SET client_min_messages = warning;
CREATE ROLE regress_hwe_group NOLOGIN;
CREATE ROLE regress_hwe_app LOGIN;
CREATE ROLE regress_hwe_super LOGIN SUPERUSER;
SELECT kaireon.grant_app_role('regress_hwe_app'), kaireon.grant_app_role('regress_hwe_super');
RESET client_min_messages;
CREATE FUNCTION public.regress_hwe_ok(text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN RETURN $1 IS NOT NULL; END $$;
REVOKE EXECUTE ON FUNCTION public.regress_hwe_ok(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.regress_hwe_ok(text) TO regress_hwe_group;
GRANT regress_hwe_group TO regress_hwe_app;
ALTER TABLE kaireon.interaction_history ADD CONSTRAINT regress_hwe_ok CHECK (public.regress_hwe_ok(customer_id));
SET kaireon.tenant_id = 'hwe';
SET ROLE regress_hwe_app;
SELECT pg_temp.outcome('member') AS member, pg_temp.outcome('member-again') AS member_again;
RESET ROLE;
REVOKE regress_hwe_group FROM regress_hwe_app;
SET ROLE regress_hwe_app;
SELECT pg_temp.outcome('revoked-direct') AS revoked_direct;
RESET ROLE;
SET kaireon.direct_history_writes = off;
SET ROLE regress_hwe_app;
SELECT pg_temp.outcome('revoked-statement') AS revoked_statement;
RESET ROLE;
RESET kaireon.direct_history_writes;
SET ROLE regress_hwe_super;
SELECT pg_temp.outcome('super') AS super;
RESET ROLE;
ALTER ROLE regress_hwe_super NOSUPERUSER;
SET ROLE regress_hwe_super;
SELECT pg_temp.outcome('no-longer-super-direct') AS no_longer_super_direct;
RESET ROLE;
SET kaireon.direct_history_writes = off;
SET ROLE regress_hwe_super;
SELECT pg_temp.outcome('no-longer-super-statement') AS no_longer_super_statement;
RESET ROLE;
RESET kaireon.direct_history_writes;
RESET kaireon.tenant_id;
ALTER TABLE kaireon.interaction_history DROP CONSTRAINT regress_hwe_ok;
DROP FUNCTION public.regress_hwe_ok(text);

-- a volatile column default reading the table: each row's default sees the rows written before
-- it, as in the statement (the rows then go in one at a time, not as one batch)
CREATE FUNCTION public.regress_hwe_count() RETURNS text LANGUAGE sql VOLATILE AS
  $$ SELECT count(*)::text FROM kaireon.interaction_history WHERE tenant_id = 'hwe' AND customer_id LIKE 'counted-%' $$;
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id SET DEFAULT public.regress_hwe_count();
SELECT pg_temp.outcome('counted-direct') AS direct;
SELECT array_agg(campaign_id ORDER BY campaign_id) AS rows_seen_before_each FROM kaireon.interaction_history
 WHERE tenant_id = 'hwe' AND customer_id = 'counted-direct';
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'hwe' AND customer_id LIKE 'counted-%';
SET kaireon.direct_history_writes = off;
SELECT pg_temp.outcome('counted-statement') AS statement;
RESET kaireon.direct_history_writes;
SELECT array_agg(campaign_id ORDER BY campaign_id) AS rows_seen_before_each FROM kaireon.interaction_history
 WHERE tenant_id = 'hwe' AND customer_id = 'counted-statement';
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id DROP DEFAULT;
DROP FUNCTION public.regress_hwe_count();
-- a volatile CHECK reading the table (at most two rows of a 'capped-' customer): the third row
-- is checked after the first two are in, and refused, as by the statement
CREATE FUNCTION public.regress_hwe_below_two(c text) RETURNS boolean LANGUAGE sql VOLATILE AS
  $$ SELECT count(*) < 2 FROM kaireon.interaction_history WHERE tenant_id = 'hwe' AND customer_id = c $$;
ALTER TABLE kaireon.interaction_history ADD CONSTRAINT regress_hwe_capped
    CHECK (customer_id NOT LIKE 'capped-%' OR public.regress_hwe_below_two(customer_id));
SELECT pg_temp.outcome('capped-direct') AS direct;
SET kaireon.direct_history_writes = off;
SELECT pg_temp.outcome('capped-statement') AS statement;
RESET kaireon.direct_history_writes;
ALTER TABLE kaireon.interaction_history DROP CONSTRAINT regress_hwe_capped;
DROP FUNCTION public.regress_hwe_below_two(text);

-- a STABLE column default reading a table the calling statement wrote just before the
-- recording: it sees the row, as the statement (run under a new snapshot after the command
-- counter advanced) does
CREATE TABLE public.regress_hwe_marks (mark text);
CREATE FUNCTION public.regress_hwe_mark() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT max(mark) FROM public.regress_hwe_marks $$;
CREATE FUNCTION public.regress_hwe_write_mark(text) RETURNS text LANGUAGE plpgsql VOLATILE AS
  $$ BEGIN INSERT INTO public.regress_hwe_marks VALUES ($1); RETURN $1; END $$;
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id SET DEFAULT public.regress_hwe_mark();
SELECT public.regress_hwe_write_mark('written-before-direct') AS mark,
       (SELECT count(*) FROM kaireon.recommend('hwe', 'marked-direct', 'web')) AS offers;
SET kaireon.direct_history_writes = off;
SELECT public.regress_hwe_write_mark('written-before-statement') AS mark,
       (SELECT count(*) FROM kaireon.recommend('hwe', 'marked-statement', 'web')) AS offers;
RESET kaireon.direct_history_writes;
SELECT customer_id, campaign_id, count(*) FROM kaireon.interaction_history
 WHERE tenant_id = 'hwe' AND customer_id LIKE 'marked-%' GROUP BY 1, 2 ORDER BY 1;
ALTER TABLE kaireon.interaction_history ALTER COLUMN campaign_id DROP DEFAULT;
DROP FUNCTION public.regress_hwe_mark();
DROP FUNCTION public.regress_hwe_write_mark(text);
DROP TABLE public.regress_hwe_marks;

-- SELECT on algorithm_models revoked: the statement's lookup of a model's version needs it even
-- for rows without a model (the executor checks it), so the recording is refused either way
REVOKE SELECT ON kaireon.algorithm_models FROM regress_hwe_app;
SET kaireon.tenant_id = 'hwe';
SET ROLE regress_hwe_app;
SELECT pg_temp.outcome('no-models-direct') AS direct;
RESET ROLE;
SET kaireon.direct_history_writes = off;
SET ROLE regress_hwe_app;
SELECT pg_temp.outcome('no-models-statement') AS statement;
RESET ROLE;
RESET kaireon.direct_history_writes;
RESET kaireon.tenant_id;

DELETE FROM kaireon.interaction_history WHERE tenant_id = 'hwe';
DELETE FROM kaireon.tenants WHERE id = 'hwe';
SET client_min_messages = warning;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_hwe_app', 'regress_hwe_super');
DROP OWNED BY regress_hwe_app, regress_hwe_super;
DROP ROLE regress_hwe_app, regress_hwe_super, regress_hwe_group;
RESET client_min_messages;
