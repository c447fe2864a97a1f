-- Checked references (docs/schema.md, "Checked references"): interaction_history refers to its
-- tenant, offer and creative, decision_locks to its tenant, without foreign keys. The row
-- trigger "Check_references" (cloned to every partition) refuses a missing referenced row with
-- 23503; the trigger
-- "Checked_references" of tenants, offers and creatives deletes (tenant) or sets to NULL
-- (offer, creative) what refers to a deleted row, and refuses to change a key rows refer to.
\set VERBOSITY terse

-- The references, their triggers, and no foreign key left on their tables.
SELECT * FROM kaireon_internal._checked_references() ORDER BY 1, 2;
SELECT conrelid::regclass AS tbl, count(*) AS foreign_keys FROM pg_constraint
 WHERE contype = 'f' AND conrelid IN ('kaireon.interaction_history'::regclass, 'kaireon.decision_locks'::regclass)
 GROUP BY 1;
SELECT c.relname, t.tgname, regexp_replace(pg_get_triggerdef(t.oid), '^.*(BEFORE [A-Z ,_a-z]+) ON .*EXECUTE FUNCTION (.*)$', '\1 -> \2') AS def
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE t.tgname = 'Check_references' AND c.relname IN ('interaction_history', 'interaction_history_default', 'decision_locks')
 ORDER BY 1;
-- every partition has it, one attached later too
CREATE TABLE kaireon.chkref_part PARTITION OF kaireon.interaction_history FOR VALUES FROM ('2001-01-01') TO ('2001-02-01');
SELECT count(*) AS partitions_without_check
  FROM pg_inherits i
 WHERE i.inhparent = 'kaireon.interaction_history'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = i.inhrelid AND t.tgname = 'Check_references');
SELECT c.relname, regexp_replace(pg_get_triggerdef(t.oid), '^.*(AFTER [A-Z ,_a-z]+) ON .*EXECUTE FUNCTION (.*)$', '\1 -> \2') AS def
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE t.tgname = 'Checked_references' ORDER BY 1;
-- the optional references of offers and creatives no longer list interaction_history
SELECT count(*) AS set_null_listing_history FROM pg_trigger t
 WHERE t.tgname = 'On_delete_set_null' AND position('interaction_history'::bytea IN t.tgargs) > 0;

INSERT INTO kaireon.tenants (id, name, slug) VALUES ('chkref_a', 'A', 'chkref_a'), ('chkref_b', 'B', 'chkref_b');
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('chkref_a', 'web', 'Web', 'web'), ('chkref_b', 'web', 'Web', 'web');
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES
    ('chkref_a', 'o1', 'One'), ('chkref_a', 'o2', 'Two'), ('chkref_a', 'o3', 'Three'), ('chkref_b', 'o1', 'One'), ('chkref_b', 'ob', 'B only');
INSERT INTO kaireon.creatives (tenant_id, id, offer_id, channel_id, name) VALUES
    ('chkref_a', 'c1', 'o1', 'web', 'c1'), ('chkref_a', 'c2', 'o2', 'web', 'c2'), ('chkref_b', 'c1', 'o1', 'web', 'c1');

-- Good rows: with references, and without offer or creative; a decision lock row.
INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('chkref_a', 'alice'), ('chkref_b', 'alice');
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, offer_id, creative_id) VALUES
    ('chkref_a', 'h1', 'alice', 'impression', 'o1', 'c1'),
    ('chkref_a', 'h2', 'alice', 'impression', 'o2', 'c2'),
    ('chkref_a', 'h3', 'alice', 'impression', 'o1', 'c1'),
    ('chkref_a', 'h4', 'alice', 'control', NULL, NULL),
    ('chkref_b', 'h1', 'alice', 'impression', 'o1', 'c1');

-- A missing referenced row: 23503 with the message and key, nothing written.
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'bob', 'impression', 'nope');
\set VERBOSITY default
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, creative_id) VALUES ('chkref_a', 'bob', 'impression', 'o1', 'nope');
\set VERBOSITY sqlstate
-- a missing tenant
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type) VALUES ('chkref_none', 'bob', 'impression');
-- another tenant's offer
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'bob', 'impression', 'ob');
-- one bad row among good ones: the statement writes nothing
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES
    ('chkref_a', 'bob', 'impression', 'o1'), ('chkref_a', 'bob', 'impression', 'o2'), ('chkref_a', 'bob', 'impression', 'ob');
-- straight into a partition
INSERT INTO kaireon.interaction_history_default (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'bob', 'impression', 'nope');
INSERT INTO kaireon.chkref_part (tenant_id, customer_id, interaction_type, offer_id, occurred_at) VALUES ('chkref_a', 'bob', 'impression', 'nope', '2001-01-02');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, occurred_at) VALUES ('chkref_a', 'bob', 'impression', 'nope', '2001-01-02');
-- a decision lock row of a missing tenant
INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('chkref_none', 'bob');
-- an UPDATE to a missing row, and of the tenant
UPDATE kaireon.interaction_history SET offer_id = 'nope' WHERE tenant_id = 'chkref_a' AND id = 'h1';
UPDATE kaireon.interaction_history SET creative_id = 'nope' WHERE tenant_id = 'chkref_a' AND id = 'h1';
UPDATE kaireon.interaction_history SET tenant_id = 'chkref_b' WHERE tenant_id = 'chkref_a' AND id = 'h2';
\set VERBOSITY terse
SELECT count(*) AS bob_rows FROM kaireon.interaction_history WHERE customer_id = 'bob';
-- UPDATEs to existing rows, and of other columns, pass
UPDATE kaireon.interaction_history SET offer_id = 'o2', creative_id = 'c2' WHERE tenant_id = 'chkref_a' AND id = 'h3';
UPDATE kaireon.interaction_history SET customer_id = 'alicia' WHERE tenant_id = 'chkref_a' AND customer_id = 'alice';
UPDATE kaireon.interaction_history SET tenant_id = 'chkref_b', id = 'h4b' WHERE tenant_id = 'chkref_a' AND id = 'h4';

-- A writer under row level security learns nothing of another tenant's rows: writing a row of
-- tenant chkref_b while acting for chkref_a fails with 42501 whether chkref_b's offer (or a
-- tenant) exists or not (the check sees the referenced tables as the writer does); its own
-- tenant's rows are checked and written as usual.
SET client_min_messages = warning;
CREATE ROLE regress_chkref_app;
SELECT kaireon.grant_app_role('regress_chkref_app');
RESET client_min_messages;
SET ROLE regress_chkref_app;
SET kaireon.tenant_id = 'chkref_a';
\set VERBOSITY sqlstate
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_b', 'eve', 'impression', 'ob');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_b', 'eve', 'impression', 'nope');
INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('chkref_b', 'eve');
INSERT INTO kaireon.decision_locks (tenant_id, customer_id) VALUES ('chkref_none', 'eve');
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'eve', 'impression', 'nope');
\set VERBOSITY terse
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'eve', 'impression', 'o2');
RESET ROLE;
RESET kaireon.tenant_id;
SELECT tenant_id, offer_id FROM kaireon.interaction_history WHERE customer_id = 'eve';
DELETE FROM kaireon.interaction_history WHERE customer_id = 'eve';
-- The key actions run as the referencing table's owner with search_path pg_catalog, pg_temp:
-- an = of a schema ahead of pg_catalog in the deleter's search_path is not called (it would
-- run with the owner's rights).
CREATE SCHEMA regress_chkref_evil;
CREATE FUNCTION regress_chkref_evil.eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'the deleter''s = ran, as the table owner: %', current_user::text <> 'regress_chkref_app';
    RETURN pg_catalog.texteq(a, b);
END $$;
CREATE OPERATOR regress_chkref_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_chkref_evil.eq);
GRANT USAGE ON SCHEMA regress_chkref_evil TO regress_chkref_app;
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('chkref_a', 'o4', 'Four');
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'h5', 'eve', 'impression', 'o4');
SET ROLE regress_chkref_app;
SET kaireon.tenant_id = 'chkref_a';
SET search_path = regress_chkref_evil, pg_catalog;
DELETE FROM kaireon.offers WHERE tenant_id OPERATOR(pg_catalog.=) 'chkref_a' AND id OPERATOR(pg_catalog.=) 'o4';
RESET search_path;
RESET ROLE;
RESET kaireon.tenant_id;
SELECT id, offer_id FROM kaireon.interaction_history WHERE customer_id = 'eve';
DELETE FROM kaireon.interaction_history WHERE customer_id = 'eve';
DROP SCHEMA regress_chkref_evil CASCADE;
SET client_min_messages = warning;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_chkref_app';
DROP OWNED BY regress_chkref_app;
DROP ROLE regress_chkref_app;
RESET client_min_messages;

-- A writer holds the tenant's reference lock in share mode to the end of its transaction (an
-- advisory lock tag of kaireon's own, field 4 = 0x4B52): no row lock on the tenant or offer.
BEGIN;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'carol', 'impression', 'o1');
SELECT locktype, mode, granted FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 19282;
SELECT count(*) AS row_locks FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'tuple';
ROLLBACK;

-- One statement writing rows of many tenants holds at most 256 reference locks (buckets of
-- tenants), not one per tenant, which would fill the shared lock table with enough tenants.
-- (Under session_replication_role = replica the trigger does not fire, as a key's would not.)
BEGIN;
INSERT INTO kaireon.tenants (id, name, slug)
SELECT 'chkref_m' || i, 'M', 'chkref_m' || i FROM generate_series(1, 300) i;
SET LOCAL session_replication_role = replica;
INSERT INTO kaireon.decision_locks (tenant_id, customer_id)
SELECT 'chkref_m' || i, 'alice' FROM generate_series(1, 300) i;
SELECT count(*) AS reference_locks FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 19282;
SET LOCAL session_replication_role = origin;
INSERT INTO kaireon.decision_locks (tenant_id, customer_id)
SELECT 'chkref_m' || i, 'bob' FROM generate_series(1, 300) i;
SELECT count(*) BETWEEN 100 AND 256 AS reference_locks_bounded FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND objsubid = 19282;
ROLLBACK;

-- The same transaction deletes an offer, then writes a row referring to it: refused.
BEGIN;
DELETE FROM kaireon.offers WHERE tenant_id = 'chkref_a' AND id = 'o3';
\set VERBOSITY sqlstate
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id) VALUES ('chkref_a', 'carol', 'impression', 'o3');
\set VERBOSITY terse
ROLLBACK;

-- The trigger resolves its columns, referenced tables and their keys once per backend (per
-- trigger) and forgets them when one of those relations changes: a row written after the change
-- is checked against the tables and keys as they are now, not as they were first resolved.
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'cache1', 'dave', 'impression', 'o2', 'c2', '2001-01-03');
-- a referenced table renamed away: no such table
BEGIN;
ALTER TABLE kaireon.creatives RENAME TO chkref_creatives_away;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'dave', 'impression', 'o2', 'c2', '2001-01-03');
ROLLBACK;
-- its primary key replaced by one that is not the referenced key
BEGIN;
ALTER TABLE kaireon.creatives DROP CONSTRAINT creatives_pkey CASCADE;
ALTER TABLE kaireon.creatives ADD PRIMARY KEY (id, tenant_id);
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'dave', 'impression', 'o2', 'c2', '2001-01-03');
ROLLBACK;
-- and by the same key again (a new index): probed through the new one
BEGIN;
ALTER TABLE kaireon.creatives DROP CONSTRAINT creatives_pkey CASCADE;
ALTER TABLE kaireon.creatives ADD PRIMARY KEY (tenant_id, id);
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'cache2', 'dave', 'impression', 'o2', 'c2', '2001-01-03');
\set VERBOSITY sqlstate
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'dave', 'impression', 'o2', 'nope', '2001-01-03');
\set VERBOSITY terse
ROLLBACK;
-- the trigger's own column renamed: no such column
BEGIN;
ALTER TABLE kaireon.interaction_history RENAME COLUMN creative_id TO chkref_creative;
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, occurred_at)
VALUES ('chkref_a', 'dave', 'impression', 'o2', '2001-01-03');
ROLLBACK;
-- everything back as it was: checked as before
INSERT INTO kaireon.interaction_history (tenant_id, id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'cache3', 'dave', 'impression', 'o2', 'c2', '2001-01-03');
\set VERBOSITY sqlstate
INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, offer_id, creative_id, occurred_at)
VALUES ('chkref_a', 'dave', 'impression', 'o2', 'nope', '2001-01-03');
\set VERBOSITY terse
SELECT id FROM kaireon.interaction_history WHERE tenant_id = 'chkref_a' AND customer_id = 'dave' ORDER BY id;
DELETE FROM kaireon.interaction_history WHERE tenant_id = 'chkref_a' AND customer_id = 'dave';

-- A key that rows refer to does not change (23503); one no row refers to does.
\set VERBOSITY sqlstate
UPDATE kaireon.offers SET id = 'o1_new' WHERE tenant_id = 'chkref_a' AND id = 'o1';
\set VERBOSITY terse
UPDATE kaireon.offers SET id = 'o3_new' WHERE tenant_id = 'chkref_a' AND id = 'o3';
UPDATE kaireon.offers SET name = 'One again' WHERE tenant_id = 'chkref_a' AND id = 'o1';

-- Deleting an offer sets offer_id to NULL in its tenant's rows (its creative goes with it,
-- so creative_id too); the other tenant's rows with the same ids are left alone.
DELETE FROM kaireon.offers WHERE tenant_id = 'chkref_a' AND id = 'o1';
SELECT tenant_id, id, customer_id, offer_id, creative_id FROM kaireon.interaction_history
 WHERE tenant_id LIKE 'chkref_%' ORDER BY 1, 2;
-- deleting a creative alone
DELETE FROM kaireon.creatives WHERE tenant_id = 'chkref_a' AND id = 'c2';
SELECT tenant_id, id, offer_id, creative_id FROM kaireon.interaction_history
 WHERE tenant_id = 'chkref_a' ORDER BY 1, 2;

-- Deleting a tenant deletes its rows, not the other tenant's.
DELETE FROM kaireon.tenants WHERE id = 'chkref_a';
SELECT tenant_id, count(*) FROM kaireon.interaction_history WHERE tenant_id LIKE 'chkref_%' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS decision_locks_left FROM kaireon.decision_locks WHERE tenant_id = 'chkref_a';
-- TRUNCATE of a referenced table is refused (they are audited: DELETE)
\set VERBOSITY sqlstate
TRUNCATE kaireon.offers CASCADE;
\set VERBOSITY terse

DROP TABLE kaireon.chkref_part;
DELETE FROM kaireon.tenants WHERE id = 'chkref_b';
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs WHERE tenant_id LIKE 'chkref_%';
DELETE FROM kaireon.audit_chain_heads WHERE tenant_id LIKE 'chkref_%';
RESET session_replication_role;
