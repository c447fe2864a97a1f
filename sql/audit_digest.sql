-- Audit digests and the chain heads (docs/audit.md, "Digests"): only kaireon writes the chain
-- heads, an admin included; kaireon.audit_digest signs the chain's end for the operator to
-- keep outside the database; verify_audit_chain(..., digest => ...) finds what recomputation
-- alone cannot (a tail removed, or a chain rewritten, with the head moved to match), refuses a
-- digest that was altered, and tells a digest older than retention's cut from tampering.
-- verify_audit_chain of an unknown tenant is refused.
\set VERBOSITY terse
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('dig', 'Digest', 'dig'), ('dig2', 'Other', 'dig2');
INSERT INTO kaireon.offers (tenant_id, id, name) SELECT 'dig', 'o' || i, 'Offer ' || i FROM generate_series(1, 6) i;
-- SQLSTATE and message of a statement (as the current role), or 'no error'
CREATE FUNCTION pg_temp.error_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- 1. Nobody but kaireon writes the chain heads: an admin (BYPASSRLS, granted every table)
-- may read them, not insert, update, delete or truncate them, nor read the digest keys.
CREATE ROLE regress_digest_admin;
SELECT kaireon.grant_admin_role('regress_digest_admin');
SET ROLE regress_digest_admin;
SELECT last_seq > 0 AS reads_heads FROM kaireon.audit_chain_heads WHERE tenant_id = 'dig';
SELECT s.stmt, pg_temp.error_of(s.sql) AS result
  FROM (VALUES ('insert', $$INSERT INTO kaireon.audit_chain_heads (tenant_id, last_id, last_seq, last_hash) VALUES ('new', 1, 1, repeat('0', 64))$$),
               ('update', $$UPDATE kaireon.audit_chain_heads SET last_hash = repeat('3', 64) WHERE tenant_id = 'dig'$$),
               ('delete', $$DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = 'dig'$$),
               ('truncate', $$TRUNCATE kaireon.audit_chain_heads$$),
               ('read keys', $$SELECT count(*) FROM kaireon.audit_digest_keys$$),
               ('insert log', $$INSERT INTO kaireon.audit_logs (tenant_id, chain_seq, action, prev_hash, integrity_hash) VALUES ('dig', 99, 'create', repeat('0', 64), repeat('0', 64))$$),
               ('truncate log', $$TRUNCATE kaireon.audit_logs$$)) AS s (stmt, sql);
RESET ROLE;
-- so the tenant's changes keep appending, and the chain verifies
UPDATE kaireon.offers SET priority = 7 WHERE tenant_id = 'dig' AND id = 'o1';
SELECT intact, broken_reason FROM kaireon.verify_audit_chain('dig');
-- even a role that was later granted writes by hand is refused by the heads' guard
GRANT INSERT, UPDATE, DELETE, TRUNCATE ON kaireon.audit_chain_heads TO regress_digest_admin;
SET ROLE regress_digest_admin;
SELECT s.stmt, pg_temp.error_of(s.sql) AS result
  FROM (VALUES ('update', $$UPDATE kaireon.audit_chain_heads SET last_hash = repeat('3', 64) WHERE tenant_id = 'dig'$$),
               ('delete', $$DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = 'dig'$$),
               ('truncate', $$TRUNCATE kaireon.audit_chain_heads$$)) AS s (stmt, sql);
RESET ROLE;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON kaireon.audit_chain_heads FROM regress_digest_admin;
-- a head removed anyway (a superuser, triggers off): the next append says so, instead of a
-- unique violation on the chain's first position
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = 'dig';
SET LOCAL session_replication_role = origin;
SET CONSTRAINTS ALL IMMEDIATE;
SELECT pg_temp.error_of($$UPDATE kaireon.offers SET priority = 8 WHERE tenant_id = 'dig' AND id = 'o1'$$);
SELECT pg_temp.error_of($$SELECT kaireon.audit_digest('dig')$$);
ROLLBACK;

-- 2. A digest: the chain's last row (id, chain_seq, hash), when, the key and the signature.
-- (made_after and made_before bracket the time the digest was made)
CREATE TEMP TABLE kept (name text PRIMARY KEY, digest jsonb, made_after timestamptz DEFAULT statement_timestamp(),
                        made_before timestamptz DEFAULT clock_timestamp());
INSERT INTO kept SELECT 'd0', kaireon.audit_digest('dig');
SELECT jsonb_object_keys(digest) AS member FROM kept WHERE name = 'd0' ORDER BY 1;
SELECT k.digest ->> 'format' AS format, k.digest ->> 'tenant_id' AS tenant_id,
       (k.digest ->> 'id')::bigint = h.last_id AS id_is_head, (k.digest ->> 'chain_seq')::bigint = h.last_seq AS seq_is_head,
       k.digest ->> 'hash' = h.last_hash AS hash_is_head,
       k.digest ->> 'digest_time' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$' AS utc_time,
       (k.digest ->> 'digest_time')::timestamptz BETWEEN k.made_after AND k.made_before AS made_then,
       k.digest ->> 'signature' ~ '^[0-9a-f]{64}$' AS hex_signature
  FROM kept k, kaireon.audit_chain_heads h WHERE k.name = 'd0' AND h.tenant_id = 'dig';
-- the key: made on the first digest, 32 bytes, named by the start of its SHA-256
SELECT count(*) AS keys, bool_and(octet_length(key) = 32) AS key_32_bytes,
       bool_and(key_id = left(encode(sha256(key), 'hex'), 16)) AS key_id_is_sha256_prefix,
       bool_and(key_id = (SELECT digest ->> 'key_id' FROM kept WHERE name = 'd0')) AS signs
  FROM kaireon.audit_digest_keys;
-- the signature is HMAC-SHA256 of the canonical text (as docs/audit.md spells it); SQL has no
-- HMAC, so here built from SHA-256 by its definition (RFC 2104), with the key
CREATE FUNCTION pg_temp.hmac_sha256(key bytea, msg bytea) RETURNS text LANGUAGE sql AS $$
    SELECT encode(sha256(okey || sha256(ikey || msg)), 'hex')
      FROM (SELECT string_agg(set_byte('\x00'::bytea, 0, get_byte(k, i) # 54), ''::bytea ORDER BY i) AS ikey,
                   string_agg(set_byte('\x00'::bytea, 0, get_byte(k, i) # 92), ''::bytea ORDER BY i) AS okey
              FROM (SELECT key || decode(repeat('00', 32), 'hex') AS k) p, generate_series(0, 63) i) pads
$$;
CREATE FUNCTION pg_temp.canonical(d jsonb) RETURNS text LANGUAGE sql AS $$
    SELECT format('{"chain_seq":%s,"digest_time":%s,"format":%s,"hash":%s,"id":%s,"key_id":%s,"tenant_id":%s}',
                  d -> 'chain_seq', d -> 'digest_time', d -> 'format', d -> 'hash', d -> 'id', d -> 'key_id',
                  d -> 'tenant_id')
$$;
SELECT pg_temp.canonical(digest) ~ '^\{"chain_seq":\d+,"digest_time":"[^"]+","format":"kaireon-audit-digest-v1","hash":"[0-9a-f]{64}","id":\d+,"key_id":"[0-9a-f]{16}","tenant_id":"dig"\}$' AS canonical_shape,
       pg_temp.hmac_sha256(k.key, convert_to(pg_temp.canonical(digest), 'UTF8')) = digest ->> 'signature' AS signature_is_hmac
  FROM kept, kaireon.audit_digest_keys k WHERE name = 'd0' AND k.key_id = digest ->> 'key_id';

-- The chain extends a digest: with more changes after it, and with the newest.
UPDATE kaireon.offers SET priority = 9 WHERE tenant_id = 'dig' AND id IN ('o2', 'o3', 'o4');
INSERT INTO kept SELECT 'd1', kaireon.audit_digest('dig');
SELECT k.name, v.intact, v.broken_reason, v.digest_status
  FROM kept k, kaireon.verify_audit_chain('dig', digest => k.digest) v ORDER BY k.name;
SELECT (SELECT digest ->> 'id' FROM kept WHERE name = 'd0') AS d0_id, (SELECT digest ->> 'id' FROM kept WHERE name = 'd1') AS d1_id,
       (SELECT digest FROM kept WHERE name = 'd0') AS d0, (SELECT digest FROM kept WHERE name = 'd1') AS d1 \gset
-- from an id at or before the digest's row
SELECT intact, digest_status FROM kaireon.verify_audit_chain('dig', from_id => :d0_id, digest => :'d1');

-- 3. Tampering that also moves the head (a superuser, triggers off), in transactions rolled back.
-- Recompute a row's integrity_hash from its fields (the documented formula).
CREATE FUNCTION pg_temp.rehash(p_id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE kaireon.audit_logs SET integrity_hash = encode(sha256(convert_to(prev_hash || kaireon.audit_canonical(id), 'UTF8')), 'hex')
     WHERE id = p_id
$$;
-- Move the chain's head to its last row, as a forger covering the tracks would.
CREATE FUNCTION pg_temp.move_head() RETURNS void LANGUAGE sql AS $$
    UPDATE kaireon.audit_chain_heads h SET (last_id, last_seq, last_hash) =
           (SELECT id, chain_seq, integrity_hash FROM kaireon.audit_logs WHERE tenant_id = 'dig' ORDER BY id DESC LIMIT 1)
     WHERE h.tenant_id = 'dig'
$$;
-- Tail truncation: the last three rows removed and the head moved to the row before them.
-- Recomputation alone finds nothing; the digest kept before finds its row gone. (A digest
-- made before the removed rows were written cannot know of them: d0 still matches.)
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM kaireon.audit_logs WHERE id IN (SELECT id FROM kaireon.audit_logs WHERE tenant_id = 'dig' ORDER BY id DESC LIMIT 3);
SELECT pg_temp.move_head();
SELECT intact, broken_reason, digest_status FROM kaireon.verify_audit_chain('dig');
SELECT intact, broken_at_id = :d1_id AS at_the_digest_row, broken_reason, digest_status
  FROM kaireon.verify_audit_chain('dig', digest => :'d1');
SELECT intact, digest_status FROM kaireon.verify_audit_chain('dig', digest => :'d0');
ROLLBACK;
-- Head rewrite: the last row's event changed, its hash recomputed and the head moved to it.
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE kaireon.audit_logs SET user_id = 'mallory' WHERE id = :d1_id;
SELECT pg_temp.rehash(:d1_id);
SELECT pg_temp.move_head();
SELECT intact, broken_reason, digest_status FROM kaireon.verify_audit_chain('dig');
SELECT intact, broken_at_id = :d1_id AS at_the_digest_row, broken_reason, digest_status
  FROM kaireon.verify_audit_chain('dig', digest => :'d1');
-- and a digest of the rewritten chain, signed now, is a different digest
SELECT kaireon.audit_digest('dig') ->> 'hash' <> :'d1'::jsonb ->> 'hash' AS new_hash;
ROLLBACK;
-- The whole chain and its head removed: without a digest, an empty chain; with one, its row is gone.
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM kaireon.audit_logs WHERE tenant_id = 'dig';
DELETE FROM kaireon.audit_chain_heads WHERE tenant_id = 'dig';
SELECT intact, verified, broken_reason FROM kaireon.verify_audit_chain('dig');
SELECT intact, broken_at_id = :d0_id AS at_the_digest_row, broken_reason, digest_status
  FROM kaireon.verify_audit_chain('dig', digest => :'d0');
ROLLBACK;
SELECT intact, digest_status FROM kaireon.verify_audit_chain('dig', digest => :'d1');

-- 4. A digest that was altered, or is not one, is refused (22023); so are arguments that do not fit.
SELECT c.what, pg_temp.error_of(format('SELECT * FROM kaireon.verify_audit_chain(%L, digest => %L)', c.tenant, c.digest)) AS result
  FROM (VALUES ('id moved back', 'dig', jsonb_set(:'d1', '{id}', to_jsonb(:d0_id::bigint))),
               ('hash of another row', 'dig', jsonb_set(:'d1', '{hash}', :'d0'::jsonb -> 'hash')),
               ('chain_seq', 'dig', jsonb_set(:'d1', '{chain_seq}', '1')),
               ('digest_time', 'dig', jsonb_set(:'d1', '{digest_time}', '"2020-01-01T00:00:00.000000Z"')),
               ('signature', 'dig', jsonb_set(:'d1', '{signature}', to_jsonb(repeat('0', 64)))),
               ('unknown key', 'dig', jsonb_set(:'d1', '{key_id}', '"0123456789abcdef"')),
               ('another tenant', 'dig2', :'d1'::jsonb),
               ('tenant renamed', 'dig2', jsonb_set(:'d1', '{tenant_id}', '"dig2"')),
               ('member missing', 'dig', :'d1'::jsonb - 'digest_time'),
               ('member added', 'dig', :'d1'::jsonb || '{"note": "x"}'),
               ('id as text', 'dig', jsonb_set(:'d1', '{id}', to_jsonb(:'d1_id'::text))),
               ('fractional id', 'dig', jsonb_set(:'d1', '{id}', '1.5')),
               ('format', 'dig', jsonb_set(:'d1', '{format}', '"kaireon-audit-digest-v9"')),
               ('not an object', 'dig', '[1, 2]'::jsonb)) AS c (what, tenant, digest);
SELECT pg_temp.error_of(format('SELECT * FROM kaireon.verify_audit_chain(%L, max_rows => 5, digest => %L)', 'dig', :'d1'));
SELECT regexp_replace(pg_temp.error_of(format('SELECT * FROM kaireon.verify_audit_chain(%L, from_id => %s, digest => %L)', 'dig', :d1_id + 1, :'d0')),
                      '\d+', 'N', 'g');

-- 5. An unknown tenant is refused, not found intact (42704, with a hint); a deleted tenant's
-- chain stays and verifies.
\set VERBOSITY default
SELECT * FROM kaireon.verify_audit_chain('no-such-tenant');
SELECT kaireon.audit_digest('no-such-tenant');
\set VERBOSITY terse
INSERT INTO kept SELECT 'dig2', kaireon.audit_digest('dig2');
DELETE FROM kaireon.tenants WHERE id = 'dig2';
SELECT intact, verified, digest_status FROM kaireon.verify_audit_chain('dig2', digest => (SELECT digest FROM kept WHERE name = 'dig2'));
-- the chain without a tenant has digests too (superusers and BYPASSRLS roles)
INSERT INTO kaireon.platform_users (id, email) VALUES ('dig-user', 'dig@example.com');
SELECT intact, digest_status FROM kaireon.verify_audit_chain(NULL, digest => kaireon.audit_digest(NULL));
SELECT pg_temp.error_of(format('SELECT * FROM kaireon.verify_audit_chain(NULL, digest => %L)', :'d1'));
-- inside the transaction that appended, a digest would name uncommitted rows
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
UPDATE kaireon.offers SET priority = 11 WHERE tenant_id = 'dig' AND id = 'o5';
SELECT pg_temp.error_of($$SELECT kaireon.audit_digest('dig')$$);
ROLLBACK;

-- 6. A tenant's own roles take and check digests of their chain, and of no other.
CREATE ROLE regress_digest_app;
SELECT kaireon.grant_app_role('regress_digest_app');
CREATE ROLE regress_digest_ro;
SELECT kaireon.grant_readonly_role('regress_digest_ro');
SET ROLE regress_digest_app;
SET kaireon.tenant_id = 'dig';
SELECT kaireon.audit_digest('dig') ->> 'hash' = (SELECT last_hash FROM kaireon.audit_chain_heads) AS own_digest;
SELECT pg_temp.error_of($$SELECT kaireon.audit_digest('dig2')$$);
SELECT pg_temp.error_of($$SELECT kaireon.audit_digest(NULL)$$);
SELECT pg_temp.error_of($$SELECT count(*) FROM kaireon.audit_digest_keys$$);
SELECT pg_temp.error_of($$UPDATE kaireon.audit_chain_heads SET last_seq = 1$$);
RESET ROLE;
SET ROLE regress_digest_ro;
SELECT intact, digest_status FROM kaireon.verify_audit_chain('dig', digest => :'d1');
RESET ROLE;
RESET kaireon.tenant_id;

-- 7. Retention: a digest whose row retention removed. The digest of the last removed row is
-- checked against the anchor's record of it (matched); an older one predates the retained
-- chain (not a finding of tampering: the chain from the anchor on is intact).
SELECT chain_seq AS d1_seq FROM kaireon.audit_logs WHERE id = :d1_id \gset
SELECT kaireon.purge_audit_chain('dig', now() + interval '1 day', :d1_seq) = :d1_seq AS removed_through_d1;
SELECT k.name, v.intact, v.broken_reason, v.digest_status
  FROM kept k, kaireon.verify_audit_chain('dig', digest => k.digest) v WHERE k.name IN ('d0', 'd1') ORDER BY k.name;
-- the anchor's record must be the digest's row: a digest naming it with another hash does not match
BEGIN;
SET LOCAL session_replication_role = replica;
UPDATE kaireon.audit_logs SET after = jsonb_set(after::jsonb, '{removed_through_hash}', to_jsonb(repeat('4', 64)))::json
 WHERE tenant_id = 'dig' AND action = 'anchor';
SELECT intact, broken_reason, digest_status FROM kaireon.verify_audit_chain('dig', digest => :'d1');
ROLLBACK;
-- a digest taken after the purge, and the chain going on after it
INSERT INTO kept SELECT 'd2', kaireon.audit_digest('dig');
UPDATE kaireon.offers SET priority = 12 WHERE tenant_id = 'dig' AND id = 'o6';
SELECT intact, digest_status FROM kaireon.verify_audit_chain('dig', digest => (SELECT digest FROM kept WHERE name = 'd2'));

-- clean up (the log's rows and the keys go only with triggers off, as a superuser)
DELETE FROM kaireon.tenants WHERE id = 'dig';
DELETE FROM kaireon.platform_users WHERE id = 'dig-user';
DROP OWNED BY regress_digest_admin, regress_digest_app, regress_digest_ro;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_digest_admin', 'regress_digest_app', 'regress_digest_ro');
DROP ROLE regress_digest_admin, regress_digest_app, regress_digest_ro;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
DELETE FROM kaireon.audit_digest_keys;
RESET session_replication_role;
