-- Tampering with the audit log as a superuser with triggers off (session_replication_role =
-- replica): every change is found by kaireon.verify_audit_chain, at the right row and for the
-- right reason (docs/audit.md, "What verification finds"); the changes that also move the chain
-- head to match, with a digest kept from before. Each case runs in a subtransaction that is
-- rolled back, so every case starts from the intact chain.
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('tmp', 'Tamper', 'tmp'), ('tmp2', 'Other', 'tmp2');
-- two tenants written alternately, with unused ids between (as rolled-back appends leave),
-- so the ids of one chain have gaps. (Each chain starts with the tenant's row and its ten
-- seeded outcome types: positions 1 to 11; the offers follow from position 12.)
DO $$
BEGIN
    FOR i IN 1..6 LOOP
        INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('tmp', 'o' || i, 'Offer ' || i);
        INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('tmp2', 'o' || i, 'Offer ' || i);
        SET CONSTRAINTS ALL IMMEDIATE;   -- append now, so the two chains interleave
        SET CONSTRAINTS ALL DEFERRED;
        PERFORM nextval('kaireon.audit_logs_id_seq');
    END LOOP;
END $$;
UPDATE kaireon.offers SET priority = 90 WHERE tenant_id = 'tmp' AND id = 'o2';
SELECT intact, verified, total FROM kaireon.verify_audit_chain('tmp');
CREATE TEMP VIEW chain AS
    SELECT id, chain_seq, row_number() OVER (ORDER BY id) AS pos FROM kaireon.audit_logs WHERE tenant_id = 'tmp';
SELECT (SELECT id FROM chain WHERE pos = 14) AS r4, (SELECT id FROM chain WHERE pos = 15) AS r5,
       (SELECT id FROM chain WHERE pos = 16) AS r6,
       (SELECT max(id) FROM chain) AS rlast, (SELECT min(id) FROM chain) AS rfirst \gset
SELECT min(n) AS free_id FROM generate_series(:r4 + 1, :r5 - 1) n
 WHERE n NOT IN (SELECT id FROM kaireon.audit_logs) \gset
SELECT count(*) AS rows, :free_id > :r4 AND :free_id < :r5 AS free_id_between FROM chain;

-- Recompute a row's integrity_hash from its fields as they are now (the documented formula).
CREATE FUNCTION pg_temp.rehash(p_id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE kaireon.audit_logs SET integrity_hash = encode(sha256(convert_to(prev_hash || kaireon.audit_canonical(id), 'UTF8')), 'hex')
     WHERE id = p_id
$$;
-- Relink and rehash every row of the chain after p_id, as a forger rewriting the rest would.
CREATE FUNCTION pg_temp.rewrite_after(p_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; prev text;
BEGIN
    SELECT integrity_hash INTO prev FROM kaireon.audit_logs WHERE id = p_id;
    FOR r IN SELECT id FROM kaireon.audit_logs WHERE tenant_id = 'tmp' AND id > p_id ORDER BY id LOOP
        UPDATE kaireon.audit_logs SET prev_hash = prev WHERE id = r.id;
        PERFORM pg_temp.rehash(r.id);
        SELECT integrity_hash INTO prev FROM kaireon.audit_logs WHERE id = r.id;
    END LOOP;
END $$;
-- Exchange the events (what happened, to what, by whom, when) of two rows; ids, positions
-- and hashes stay.
CREATE FUNCTION pg_temp.swap_events(a bigint, b bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE o ON COMMIT DROP AS SELECT * FROM kaireon.audit_logs WHERE id IN (a, b);
    UPDATE kaireon.audit_logs l
       SET (request_id, user_id, session_user_name, action, entity_type, entity_id, before, after,
            changed_fields, entity_version, created_at)
         = (SELECT o.request_id, o.user_id, o.session_user_name, o.action, o.entity_type, o.entity_id,
                   o.before, o.after, o.changed_fields, o.entity_version, o.created_at
              FROM o WHERE o.id = CASE l.id WHEN a THEN b ELSE a END)
     WHERE l.id IN (a, b);
    DROP TABLE o;
END $$;

-- Run a tampering statement, verify, and roll the tampering back.
CREATE FUNCTION pg_temp.tampered(sql text) RETURNS TABLE (broken_at_id bigint, broken_reason text, intact boolean)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config('session_replication_role', 'replica', true);
        EXECUTE sql;
        SELECT v.broken_at_id, v.broken_reason, v.intact INTO broken_at_id, broken_reason, intact
          FROM kaireon.verify_audit_chain('tmp') v;
        RAISE EXCEPTION 'roll back the tampering' USING ERRCODE = 'P0001';
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
    RETURN NEXT;
END $$;

-- Altering any field of a row: hash_mismatch at that row.
SELECT f.field, t.broken_at_id = :r4 AS at_the_row, t.broken_reason
  FROM (VALUES ('action', 'action = CASE action WHEN ''update'' THEN ''create'' ELSE ''update'' END'),
               ('entity_type', 'entity_type = entity_type || ''x'''),
               ('entity_id', 'entity_id = entity_id || ''x'''),
               ('before', 'before = ''{"name": "x"}'''),
               ('after', 'after = ''{"name": "x"}'''),
               ('after (whitespace only)', 'after = regexp_replace(after::text, '':'', '': '')::json'),
               ('changed_fields', 'changed_fields = ''["x"]'''),
               ('entity_version', 'entity_version = coalesce(entity_version, 0) + 1'),
               ('user_id', 'user_id = ''mallory'''),
               ('request_id', 'request_id = ''req-x'''),
               ('session_user_name', 'session_user_name = ''mallory'''),
               ('created_at', 'created_at = created_at + interval ''1 microsecond'''),
               ('prev_hash', 'prev_hash = repeat(''1'', 64)'),
               ('integrity_hash', 'integrity_hash = repeat(''1'', 64)')) AS f (field, assignment),
       LATERAL pg_temp.tampered(format('UPDATE kaireon.audit_logs SET %s WHERE id = %s', f.assignment, :r4)) t;
-- Moving a row to another position (its chain_seq changed): the chain is walked in chain_seq
-- order, so its position is empty, a gap at the next row (the moved row no longer hashes).
SELECT t.broken_at_id = :r5 AS at_the_next_row, t.broken_reason
  FROM pg_temp.tampered(format('UPDATE kaireon.audit_logs SET chain_seq = chain_seq + 1000 WHERE id = %s', :r4)) t;
-- (an id cannot be changed at all: it is an identity column GENERATED ALWAYS)
UPDATE kaireon.audit_logs SET id = id + 1000000 WHERE id = :r4;
-- moving a row to another tenant's chain: this chain has a gap there
SELECT t.broken_at_id = :r5 AS at_the_next_row, t.broken_reason
  FROM pg_temp.tampered(format('UPDATE kaireon.audit_logs SET tenant_id = ''tmp2'', chain_seq = chain_seq + 1000 WHERE id = %s', :r4)) t;

-- Deleting a row: a gap at the next row; the first row: a gap at the new first row; the last
-- row: a gap at the id the chain head names.
SELECT t.broken_at_id = :r5 AS at_the_next_row, t.broken_reason
  FROM pg_temp.tampered(format('DELETE FROM kaireon.audit_logs WHERE id = %s', :r4)) t;
SELECT t.broken_at_id = (SELECT id FROM chain WHERE pos = 2) AS at_the_new_first, t.broken_reason
  FROM pg_temp.tampered(format('DELETE FROM kaireon.audit_logs WHERE id = %s', :rfirst)) t;
SELECT t.broken_at_id = :rlast AS at_the_deleted_last, t.broken_reason
  FROM pg_temp.tampered(format('DELETE FROM kaireon.audit_logs WHERE id = %s', :rlast)) t;
-- a prefix removed without retention's anchor
SELECT t.broken_at_id = :r4 AS at_the_first_kept, t.broken_reason
  FROM pg_temp.tampered(format('DELETE FROM kaireon.audit_logs WHERE tenant_id = ''tmp'' AND id < %s', :r4)) t;

-- Inserting a forged row between two rows (in a gap of the ids): hash_mismatch at the forgery.
SELECT t.broken_at_id = :free_id AS at_the_forgery, t.broken_reason
  FROM pg_temp.tampered(format(
        'INSERT INTO kaireon.audit_logs (id, tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)'
        ' OVERRIDING SYSTEM VALUE SELECT %s, ''tmp'', 1000, ''delete'', ''offers'', ''o1'', integrity_hash, repeat(''2'', 64)'
        ' FROM kaireon.audit_logs WHERE id = %s', :free_id, :r4)) t;
-- The same with a correct hash, linked to the row before it, and the later rows renumbered
-- and rehashed: the next row no longer links, chain_link_mismatch.
SELECT t.broken_at_id = :r5 AS at_the_next_row, t.broken_reason
  FROM pg_temp.tampered(format(
        'UPDATE kaireon.audit_logs SET chain_seq = chain_seq + 1000 WHERE tenant_id = ''tmp'' AND id > %2$s;'
        ' UPDATE kaireon.audit_logs SET chain_seq = chain_seq - 999 WHERE tenant_id = ''tmp'' AND id > %2$s;'
        ' INSERT INTO kaireon.audit_logs (id, tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)'
        ' OVERRIDING SYSTEM VALUE SELECT %1$s, ''tmp'', chain_seq + 1, ''delete'', ''offers'', ''o1'', integrity_hash, repeat(''2'', 64)'
        ' FROM kaireon.audit_logs WHERE id = %2$s;'
        ' SELECT pg_temp.rehash(id) FROM kaireon.audit_logs WHERE tenant_id = ''tmp'' AND id > %2$s',
        :free_id, :r4)) t;
-- A forgery with a correct hash and link appended after the last row: it lies beyond the
-- chain head, chain_link_mismatch.
SELECT t.broken_at_id = :rlast + 1000 AS at_the_forgery, t.broken_reason
  FROM pg_temp.tampered(format(
        'INSERT INTO kaireon.audit_logs (id, tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)'
        ' OVERRIDING SYSTEM VALUE SELECT %1$s, ''tmp'', chain_seq + 1, ''delete'', ''offers'', ''o1'', integrity_hash, repeat(''0'', 64)'
        ' FROM kaireon.audit_logs WHERE id = %2$s;'
        ' SELECT pg_temp.rehash(%1$s)', :rlast + 1000, :rlast)) t;

-- Swapping two rows' order. Exchanging the rows whole (all but the id): hash_mismatch at the
-- first position, now held by the second row's id (the id is part of the hash).
SELECT t.broken_at_id = :r5 AS at_the_first_position, t.broken_reason
  FROM pg_temp.tampered(format(
        'CREATE TEMP TABLE o ON COMMIT DROP AS SELECT * FROM kaireon.audit_logs WHERE id IN (%1$s, %2$s);'
        ' UPDATE kaireon.audit_logs SET chain_seq = chain_seq + 1000 WHERE id IN (%1$s, %2$s);'
        ' UPDATE kaireon.audit_logs l SET (chain_seq, action, entity_id, before, after, changed_fields, created_at, prev_hash, integrity_hash)'
        '   = (SELECT o.chain_seq, o.action, o.entity_id, o.before, o.after, o.changed_fields, o.created_at, o.prev_hash, o.integrity_hash'
        '        FROM o WHERE o.id = CASE l.id WHEN %1$s THEN %2$s ELSE %1$s END) WHERE l.id IN (%1$s, %2$s);'
        ' DROP TABLE o', :r4, :r5)) t;
-- Exchanging their events and recomputing both hashes, so each row is consistent in itself:
-- the second no longer links to the first, chain_link_mismatch.
SELECT t.broken_at_id = :r5 AS at_the_second, t.broken_reason
  FROM pg_temp.tampered(format('SELECT pg_temp.swap_events(%1$s, %2$s); SELECT pg_temp.rehash(%1$s); SELECT pg_temp.rehash(%2$s)',
                               :r4, :r5)) t;
-- Rewriting every later row as well (relinked and rehashed): only the chain head disagrees,
-- chain_link_mismatch at the last row.
SELECT t.broken_at_id = :rlast AS at_the_last, t.broken_reason
  FROM pg_temp.tampered(format('SELECT pg_temp.swap_events(%1$s, %2$s); SELECT pg_temp.rehash(%1$s); SELECT pg_temp.rewrite_after(%1$s)',
                               :r4, :r5)) t;

-- The chain head: its hash altered, or the head removed: chain_link_mismatch at the last row.
SELECT t.broken_at_id = :rlast AS at_the_last, t.broken_reason
  FROM pg_temp.tampered('UPDATE kaireon.audit_chain_heads SET last_hash = repeat(''3'', 64) WHERE tenant_id = ''tmp''') t;
SELECT t.broken_at_id = :rlast AS at_the_last, t.broken_reason
  FROM pg_temp.tampered('DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = ''tmp''') t;

-- Tampering that also moves the chain head to match (or removes it) leaves a chain that
-- recomputes intact: found with a digest kept from before (docs/audit.md, "Digests"), as
-- digest_mismatch at the digest's row (gone, or with another hash).
SELECT kaireon.audit_digest('tmp') AS kept \gset
CREATE FUNCTION pg_temp.move_head() RETURNS void LANGUAGE sql AS $$
    UPDATE kaireon.audit_chain_heads h SET (last_id, last_seq, last_hash) =
           (SELECT id, chain_seq, integrity_hash FROM kaireon.audit_logs WHERE tenant_id = 'tmp' ORDER BY id DESC LIMIT 1)
     WHERE h.tenant_id = 'tmp'
$$;
CREATE FUNCTION pg_temp.tampered_digest(sql text, digest jsonb)
    RETURNS TABLE (intact_alone boolean, broken_at_id bigint, broken_reason text, digest_status text)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config('session_replication_role', 'replica', true);
        EXECUTE sql;
        SELECT v.intact INTO intact_alone FROM kaireon.verify_audit_chain('tmp') v;
        SELECT v.broken_at_id, v.broken_reason, v.digest_status INTO broken_at_id, broken_reason, digest_status
          FROM kaireon.verify_audit_chain('tmp', digest => digest) v;
        RAISE EXCEPTION 'roll back the tampering' USING ERRCODE = 'P0001';
    EXCEPTION WHEN raise_exception THEN NULL;
    END;
    RETURN NEXT;
END $$;
SELECT c.tampering, t.intact_alone, t.broken_at_id = :rlast AS at_the_digest_row, t.broken_reason, t.digest_status
  FROM (VALUES (1, 'the last row removed, the head moved to the row before',
                format('DELETE FROM kaireon.audit_logs WHERE id = %s; SELECT pg_temp.move_head()', :rlast)),
               (2, 'the tail (last three rows) removed, the head moved',
                format('DELETE FROM kaireon.audit_logs WHERE id IN (SELECT id FROM kaireon.audit_logs WHERE tenant_id = ''tmp'' ORDER BY id DESC LIMIT 3);'
                       ' SELECT pg_temp.move_head()')),
               (3, 'the last row changed and rehashed, the head moved to it',
                format('UPDATE kaireon.audit_logs SET user_id = ''mallory'' WHERE id = %1$s; SELECT pg_temp.rehash(%1$s); SELECT pg_temp.move_head()', :rlast)),
               (4, 'two rows'' events exchanged, every later row rewritten, the head moved',
                format('SELECT pg_temp.swap_events(%1$s, %2$s); SELECT pg_temp.rehash(%1$s); SELECT pg_temp.rewrite_after(%1$s); SELECT pg_temp.move_head()',
                       :r4, :r5)),
               (5, 'a row removed, the later rows renumbered and rewritten, the head moved',
                format('DELETE FROM kaireon.audit_logs WHERE id = %1$s;'
                       ' UPDATE kaireon.audit_logs SET chain_seq = chain_seq + 1000 WHERE tenant_id = ''tmp'' AND id > %1$s;'
                       ' UPDATE kaireon.audit_logs SET chain_seq = chain_seq - 1001 WHERE tenant_id = ''tmp'' AND id > %1$s;'
                       ' SELECT pg_temp.rewrite_after(%2$s); SELECT pg_temp.move_head()', :r5, :r4)),
               (6, 'the whole chain and its head removed',
                'DELETE FROM kaireon.audit_logs WHERE tenant_id = ''tmp''; DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = ''tmp''')
       ) AS c (n, tampering, sql),
       LATERAL pg_temp.tampered_digest(c.sql, :'kept') t
 ORDER BY c.n;
-- The limit: a digest covers the chain up to its row. A forged row appended after it (linked,
-- hashed, the head moved to it) looks like a later change to it (docs/audit.md, "Limits").
SELECT t.intact_alone, t.broken_reason, t.digest_status
  FROM pg_temp.tampered_digest(format(
        'INSERT INTO kaireon.audit_logs (id, tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)'
        ' OVERRIDING SYSTEM VALUE SELECT %1$s, ''tmp'', chain_seq + 1, ''delete'', ''offers'', ''o1'', integrity_hash, repeat(''0'', 64)'
        ' FROM kaireon.audit_logs WHERE id = %2$s;'
        ' SELECT pg_temp.rehash(%1$s); SELECT pg_temp.move_head()', :rlast + 1000, :rlast), :'kept') t;

-- After all that (rolled back), the chain is intact, and the other tenant's chain was never touched.
SELECT intact, verified FROM kaireon.verify_audit_chain('tmp');
SELECT intact, verified FROM kaireon.verify_audit_chain('tmp2');

-- Retention keeps a broken chain as evidence.
CREATE FUNCTION pg_temp.error_of(sql text, r4 bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || replace(SQLERRM, r4::text, '<r4>');
END $$;
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE kaireon.audit_logs SET user_id = 'mallory' WHERE id = :r4;
SELECT pg_temp.error_of($$SELECT kaireon.purge_audit_chain('tmp', now() + interval '1 day')$$, :r4);
ROLLBACK;
SELECT count(*) = 18 AS nothing_removed FROM kaireon.audit_logs WHERE tenant_id = 'tmp';

-- clean up
DELETE FROM kaireon.tenants WHERE id IN ('tmp', 'tmp2');
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
DELETE FROM kaireon.audit_digest_keys;
RESET session_replication_role;
