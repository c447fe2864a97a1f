-- The audit hash chain: capture of every kind of change of the audited tables, the chain
-- (sequence numbers, links, hashes recomputed from the canonical form), session fields,
-- redaction of secrets, runtime columns, rollbacks, immutability of the log, the list of
-- audited tables, access of application roles, and retention anchors. docs/audit.md.
\set VERBOSITY terse
SET kaireon.user_id = 'u-alice';
SET kaireon.request_id = 'req-1';
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('aud', 'Audit', 'aud');
-- fixed times, so rows can be shown (updated_at is kept current by its trigger on UPDATE)
INSERT INTO kaireon.offers (tenant_id, id, name, priority, created_at, updated_at)
    VALUES ('aud', 'o1', 'Gold', 10, '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');
UPDATE kaireon.offers SET name = 'Gold card', priority = 20 WHERE tenant_id = 'aud' AND id = 'o1';
-- a no-op update writes nothing
UPDATE kaireon.offers SET name = 'Gold card' WHERE tenant_id = 'aud' AND id = 'o1';
UPDATE kaireon.offers SET deleted_at = '2025-02-01 00:00:00+00' WHERE tenant_id = 'aud' AND id = 'o1';
UPDATE kaireon.offers SET deleted_at = NULL WHERE tenant_id = 'aud' AND id = 'o1';
SET kaireon.user_id = 'u-bob';
RESET kaireon.request_id;
DELETE FROM kaireon.offers WHERE tenant_id = 'aud' AND id = 'o1';

-- (creating the tenant also created its ten default outcome types, shown by key: their ids
-- are generated)
SELECT chain_seq, action, entity_type,
       CASE WHEN entity_type = 'outcome_types' THEN 'key ' || (after::jsonb ->> 'key') ELSE entity_id END AS entity_id,
       changed_fields, user_id, request_id,
       session_user_name = session_user AS session_user_recorded,
       CASE WHEN action IN ('create', 'delete') THEN NULL ELSE before END AS before,
       CASE WHEN action IN ('create', 'delete') THEN NULL ELSE after END AS after
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' ORDER BY id;
-- a create shows the whole new row, a delete the whole old row
SELECT after::jsonb ->> 'name' AS created_name, after::jsonb ->> 'created_at' AS created_at,
       (SELECT count(*) FROM json_object_keys(after)) AS columns_shown
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'create' AND entity_type = 'offers';
SELECT before::jsonb ->> 'name' AS deleted_name, after IS NULL AS no_after
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'delete';

-- The chain: sequence numbers 1..n in id order, each row linked to the previous one, the first
-- to 64 zeros; each integrity_hash is SHA-256 of prev_hash followed by the canonical form.
SELECT count(*) AS rows,
       bool_and(chain_seq = rn) AS seq_is_position,
       bool_and(prev_hash = coalesce(prev, repeat('0', 64))) AS linked,
       bool_and(integrity_hash = encode(sha256(convert_to(prev_hash || kaireon.audit_canonical(id), 'UTF8')), 'hex')) AS hashes_match
  FROM (SELECT *, row_number() OVER (ORDER BY id) AS rn, lag(integrity_hash) OVER (ORDER BY id) AS prev
          FROM kaireon.audit_logs WHERE tenant_id = 'aud') s;
SELECT * FROM kaireon.verify_audit_chain('aud');
SELECT last_seq, last_hash = (SELECT integrity_hash FROM kaireon.audit_logs WHERE tenant_id = 'aud' ORDER BY id DESC LIMIT 1) AS head_is_last
  FROM kaireon.audit_chain_heads WHERE tenant_id = 'aud';
-- the canonical form: sorted keys, no whitespace, created_at in UTC with microseconds
SELECT regexp_replace(regexp_replace(kaireon.audit_canonical(id), '"created_at":"[^"]*"', '"created_at":"<time>"'),
                      '"id":[0-9]+', '"id":<id>')
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'update';
SELECT kaireon.audit_canonical(id) ~ '"created_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"' AS utc_time
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'update';
SELECT kaireon.audit_canonical(-1) IS NULL AS unknown_id;

-- Text the canonical form must escape: quotes, backslashes, control characters, non-ASCII.
INSERT INTO kaireon.offers (tenant_id, id, name, description)
    VALUES ('aud', E'o-\u00e9\\"q', E'tab\there "quoted" \\ back', E'bell\u0007 nl\n \u00fc\u20ac\U0001F600 /');
SELECT substring(kaireon.audit_canonical(id) FROM '"entity_id":("(?:[^"\\]|\\.)*")') AS entity_id_json,
       kaireon.audit_canonical(id) LIKE '%bell\\\\u0007 nl\\\\n%' AS control_escaped_twice
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' ORDER BY id DESC LIMIT 1;
SELECT intact, verified FROM kaireon.verify_audit_chain('aud');

-- One statement changing many rows: one audit row each, in one chain, appended at commit.
INSERT INTO kaireon.offers (tenant_id, id, name) SELECT 'aud', 'm' || i, 'Many ' || i FROM generate_series(1, 50) i;
BEGIN;
UPDATE kaireon.offers SET priority = 60 WHERE tenant_id = 'aud' AND id LIKE 'm%';
-- deferred: nothing is written before the commit ...
SELECT count(*) AS before_commit FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'update' AND entity_id LIKE 'm%';
-- ... unless the constraint trigger is made immediate
SET CONSTRAINTS ALL IMMEDIATE;
UPDATE kaireon.offers SET priority = 61 WHERE tenant_id = 'aud' AND id = 'm1';
SELECT count(*) AS after_immediate FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'update' AND entity_id LIKE 'm%';
-- verification inside the appending transaction counts its own rows
SELECT intact, verified, total FROM kaireon.verify_audit_chain('aud');
COMMIT;
SELECT count(*) AS updates FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'update' AND entity_id LIKE 'm%';
SELECT intact, verified, total FROM kaireon.verify_audit_chain('aud');

-- A rolled-back transaction leaves nothing; a rolled-back savepoint leaves no gap.
SELECT last_seq AS seq_before FROM kaireon.audit_chain_heads WHERE tenant_id = 'aud' \gset
BEGIN;
UPDATE kaireon.offers SET priority = 1 WHERE tenant_id = 'aud' AND id = 'm2';
SET CONSTRAINTS ALL IMMEDIATE;
ROLLBACK;
SELECT last_seq - :seq_before AS added_by_rollback FROM kaireon.audit_chain_heads WHERE tenant_id = 'aud';
BEGIN;
SET CONSTRAINTS ALL IMMEDIATE;
UPDATE kaireon.offers SET priority = 2 WHERE tenant_id = 'aud' AND id = 'm2';
SAVEPOINT s;
UPDATE kaireon.offers SET priority = 3 WHERE tenant_id = 'aud' AND id = 'm3';
UPDATE kaireon.offers SET priority = 4 WHERE tenant_id = 'aud' AND id = 'm4';
ROLLBACK TO SAVEPOINT s;
UPDATE kaireon.offers SET priority = 5 WHERE tenant_id = 'aud' AND id = 'm5';
SAVEPOINT t;
UPDATE kaireon.offers SET priority = 6 WHERE tenant_id = 'aud' AND id = 'm6';
RELEASE SAVEPOINT t;
COMMIT;
SELECT array_agg(entity_id || ':' || (chain_seq - :seq_before) ORDER BY id) AS appended
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND chain_seq > :seq_before;
SELECT intact, verified, total FROM kaireon.verify_audit_chain('aud');

-- REPEATABLE READ and SERIALIZABLE transactions append too.
BEGIN ISOLATION LEVEL SERIALIZABLE;
UPDATE kaireon.offers SET priority = 7 WHERE tenant_id = 'aud' AND id = 'm7';
COMMIT;
SELECT intact FROM kaireon.verify_audit_chain('aud');

-- Runtime columns: an update of only counters (and updated_at) is not audited.
INSERT INTO kaireon.volume_constraints (tenant_id, id, name, scope, max_volume, period)
    VALUES ('aud', 'vc1', 'Cap', 'global', 100, 'daily');
SELECT count(*) AS vc_rows_before FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND entity_type = 'volume_constraints' \gset
UPDATE kaireon.volume_constraints SET current_count = current_count + 1 WHERE tenant_id = 'aud' AND id = 'vc1';
SELECT count(*) - :vc_rows_before AS counter_update_rows FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND entity_type = 'volume_constraints';
UPDATE kaireon.volume_constraints SET current_count = 5, max_volume = 200 WHERE tenant_id = 'aud' AND id = 'vc1';
SELECT changed_fields, before, after FROM kaireon.audit_logs
 WHERE tenant_id = 'aud' AND entity_type = 'volume_constraints' ORDER BY id DESC LIMIT 1;

-- Secrets are redacted, and changing one is still recorded.
INSERT INTO kaireon.users (tenant_id, id, email, password_hash, mfa_secret)
    VALUES ('aud', 'usr1', 'a@example.com', '$2b$12$secrethashvalue', 'JBSWY3DPEHPK3PXP');
UPDATE kaireon.users SET password_hash = '$2b$12$othersecrethash' WHERE id = 'usr1';
SELECT action, changed_fields, before, after FROM kaireon.audit_logs WHERE entity_type = 'users' AND action = 'update';
SELECT after::jsonb ->> 'password_hash' AS password_hash, after::jsonb ->> 'mfa_secret' AS mfa_secret
  FROM kaireon.audit_logs WHERE entity_type = 'users' AND action = 'create' ORDER BY id;
INSERT INTO kaireon.api_keys (tenant_id, id, name, prefix, hashed_key)
    VALUES ('aud', 'k1', 'key', 'krn_abcdefgh', 'deadbeefsecret');
SELECT after::jsonb ->> 'hashed_key' AS hashed_key FROM kaireon.audit_logs WHERE entity_type = 'api_keys';
-- a platform setting's value is a secret only when it is encrypted
SET kaireon.settings_encryption_key = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
INSERT INTO kaireon.platform_settings (tenant_id, category, key, value, encrypted)
    VALUES ('aud', 'mail', 'from', 'noreply@example.com', false),
           ('aud', 'sms', 'token', 'sms-secret-token', true);
SELECT after::jsonb ->> 'key' AS key, after::jsonb ->> 'value' AS value
  FROM kaireon.audit_logs WHERE entity_type = 'platform_settings' ORDER BY id;
SELECT count(*) AS rows_showing_a_secret FROM kaireon.audit_logs
 WHERE concat(before::text, after::text) ~ '(secrethashvalue|othersecrethash|JBSWY3DP|deadbeefsecret|sms-secret-token|kenc:)';
RESET kaireon.settings_encryption_key;

-- Rows without a tenant (platform users, role grants) form the platform chain, in a table of
-- its own (kaireon.platform_audit_logs and its head); tenants' chains hold only their tenant's
-- rows. A platform user's secrets are redacted like a tenant user's.
INSERT INTO kaireon.platform_users (id, email, password_hash, mfa_secret)
    VALUES ('platform-admin', 'root@example.com', '$2b$12$platformsecret', 'PLATFORMMFA');
UPDATE kaireon.platform_users SET failed_login_attempts = 1 WHERE id = 'platform-admin';
UPDATE kaireon.platform_users SET role = 'admin' WHERE id = 'platform-admin';
DELETE FROM kaireon.platform_users WHERE id = 'platform-admin';
SELECT action, entity_type, entity_id, changed_fields FROM kaireon.platform_audit_logs WHERE entity_id = 'platform-admin' ORDER BY chain_seq;
SELECT count(*) AS rows_showing_a_platform_secret FROM kaireon.platform_audit_logs
 WHERE concat(before::text, after::text) ~ '(platformsecret|PLATFORMMFA)';
SELECT count(*) AS platform_rows_in_tenant_log FROM kaireon.audit_logs WHERE entity_id = 'platform-admin';
SELECT a.attname, a.attnotnull FROM pg_attribute a
 WHERE a.attrelid IN ('kaireon.audit_logs'::regclass, 'kaireon.audit_chain_heads'::regclass) AND a.attname = 'tenant_id';
SELECT intact, verified = (SELECT count(*) FROM kaireon.platform_audit_logs) AS verified_all
  FROM kaireon.verify_audit_chain(NULL);
SELECT h.last_seq = (SELECT max(chain_seq) FROM kaireon.platform_audit_logs) AS head_is_last,
       h.last_hash = (SELECT integrity_hash FROM kaireon.platform_audit_logs ORDER BY chain_seq DESC LIMIT 1) AS hash_is_last
  FROM kaireon.platform_audit_chain_head h;
SELECT kaireon.audit_digest(NULL) AS platform_digest \gset
SELECT digest_status FROM kaireon.verify_audit_chain(NULL, digest => :'platform_digest');
SELECT min(id) AS platform_row FROM kaireon.platform_audit_logs WHERE entity_id = 'platform-admin' \gset
SELECT kaireon.audit_canonical(:platform_row) ~ '"entity_id":"platform-admin".*"tenant_id":null' AS platform_canonical;

-- The log is append-only, for its owner too.
UPDATE kaireon.audit_logs SET user_id = 'mallory' WHERE tenant_id = 'aud';
DELETE FROM kaireon.audit_logs WHERE tenant_id = 'aud';
TRUNCATE kaireon.audit_logs;
-- rows are written by kaireon's triggers; a direct insert by a role that is not the owner is refused
CREATE ROLE regress_audit_admin;
SELECT kaireon.grant_admin_role('regress_audit_admin', bypass_rls => false);
SET ROLE regress_audit_admin;
SET kaireon.tenant_id = 'aud';
INSERT INTO kaireon.audit_logs (tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)
    VALUES ('aud', 9999, 'create', 'offers', 'forged', repeat('0', 64), repeat('0', 64));
DELETE FROM kaireon.audit_logs WHERE tenant_id = 'aud';
RESET kaireon.tenant_id;
RESET ROLE;
-- TRUNCATE of an audited table would remove rows unaudited
TRUNCATE kaireon.alert_rules;

-- The audited tables are exactly kaireon.audited_tables(), each with its trigger and arguments.
CREATE TEMP VIEW audited AS
SELECT table_name::text, options FROM kaireon.audited_tables();
-- platform users are audited like users, in the platform chain
SELECT (SELECT options FROM audited WHERE table_name = 'platform_users')
     = ARRAY['tenant=none'] || (SELECT options FROM audited WHERE table_name = 'users') AS platform_users_like_users;
SELECT a.table_name AS missing_trigger FROM audited a
 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = format('kaireon.%I', a.table_name)::regclass
                    AND g.tgname = 'audit_capture' AND g.tgfoid = 'kaireon.audit_capture()'::regprocedure
                    AND g.tgdeferrable AND g.tginitdeferred
                    AND g.tgnargs = cardinality(a.options) + 1
                    AND g.tgargs = decode(array_to_string(a.options || ('entity=' || a.table_name), '\000') || '\000', 'escape'))
    OR NOT EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = format('kaireon.%I', a.table_name)::regclass
                    AND g.tgfoid = 'kaireon.audit_refuse_truncate()'::regprocedure);
SELECT g.tgrelid::regclass AS trigger_outside_list FROM pg_trigger g
 WHERE g.tgfoid = 'kaireon.audit_capture()'::regprocedure
   AND g.tgrelid::regclass::text NOT IN (SELECT 'kaireon.' || table_name FROM audited);
SELECT count(*) AS audited_tables FROM audited;
-- every other table of kaireon is a fact table, runtime state, a log or kaireon's bookkeeping
-- (docs/audit.md, "What is audited"); a new table shows up here until it is classified
SELECT c.relname AS not_audited FROM pg_class c
 WHERE c.relnamespace = 'kaireon'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND c.relname NOT IN (SELECT table_name FROM audited)
 ORDER BY 1;

-- Application roles read their tenant's rows and verify their chain; nothing else.
CREATE ROLE regress_audit_app;
SELECT kaireon.grant_app_role('regress_audit_app');
CREATE ROLE regress_audit_ro;
SELECT kaireon.grant_readonly_role('regress_audit_ro');
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('aud2', 'Other', 'aud2');
SET ROLE regress_audit_app;
SET kaireon.tenant_id = 'aud';
SELECT count(*) > 0 AS sees_own, bool_and(tenant_id = 'aud') AS only_own FROM kaireon.audit_logs;
SELECT intact FROM kaireon.verify_audit_chain('aud');
SELECT last_seq > 0 AS reads_own_head FROM kaireon.audit_chain_heads;
SELECT * FROM kaireon.verify_audit_chain('aud2');
SELECT * FROM kaireon.verify_audit_chain(NULL);
SELECT kaireon.audit_canonical(:platform_row);
INSERT INTO kaireon.audit_logs (tenant_id, chain_seq, action, entity_type, entity_id, prev_hash, integrity_hash)
    VALUES ('aud', 9999, 'create', 'offers', 'forged', repeat('0', 64), repeat('0', 64));
UPDATE kaireon.audit_chain_heads SET last_seq = 1;
SELECT kaireon.purge_audit_chain('aud', now());
-- its changes are audited with its application user
SET kaireon.user_id = 'u-app';
INSERT INTO kaireon.channels (tenant_id, id, name, channel_type) VALUES ('aud', 'web', 'Web', 'web');
RESET ROLE;
SET ROLE regress_audit_ro;
SET kaireon.tenant_id = 'aud';
SELECT intact FROM kaireon.verify_audit_chain('aud');
RESET ROLE;
SELECT user_id, session_user_name = session_user AS session_user_recorded
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND entity_type = 'channels';
RESET kaireon.tenant_id;

-- Bad arguments.
SELECT * FROM kaireon.verify_audit_chain('aud', -1);
SELECT * FROM kaireon.verify_audit_chain('aud', NULL, -5);
SELECT kaireon.purge_audit_chain('aud', NULL);
SELECT kaireon.purge_audit_chain('aud', now(), 0);
-- verification from an id, or of a number of rows
SELECT min(id) + 10 AS from_id FROM kaireon.audit_logs WHERE tenant_id = 'aud' \gset
SELECT intact, verified, total - (SELECT count(*) FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND id >= :from_id) AS total_minus_expected
  FROM kaireon.verify_audit_chain('aud', :from_id);
SELECT intact, verified, scanned FROM kaireon.verify_audit_chain('aud', NULL, 5);

-- Deleting a tenant records the removal of its rows; its chain stays.
DELETE FROM kaireon.tenants WHERE id = 'aud2';
SELECT action, entity_type, count(*) AS rows,
       string_agg(CASE WHEN entity_type = 'outcome_types' THEN coalesce(after, before)::jsonb ->> 'key' ELSE entity_id END, ' ' ORDER BY id) AS entities
  FROM kaireon.audit_logs WHERE tenant_id = 'aud2' GROUP BY 1, 2 ORDER BY min(id);
SELECT intact, verified FROM kaireon.verify_audit_chain('aud2');

-- Retention removes a prefix and leaves an anchor; the rest still verifies from it.
SELECT count(*) AS rows_before FROM kaireon.audit_logs WHERE tenant_id = 'aud' \gset
SELECT id AS cut_id, chain_seq AS cut_seq, integrity_hash AS cut_hash
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' ORDER BY id OFFSET 9 LIMIT 1 \gset
SELECT kaireon.purge_audit_chain('aud', now() + interval '1 day', 10) AS removed;
SELECT count(*) AS rows_after, :rows_before - count(*) AS net_removed FROM kaireon.audit_logs WHERE tenant_id = 'aud';
SELECT min(chain_seq) = :cut_seq + 1 AS starts_after_cut FROM kaireon.audit_logs WHERE tenant_id = 'aud';
SELECT action, entity_type, entity_id = :'cut_id' AS names_last_removed,
       after::jsonb ->> 'removed_through_hash' = :'cut_hash' AS records_its_hash,
       after::jsonb -> 'removed_rows' AS removed_rows, after::jsonb -> 'removed_through_seq' = to_jsonb(:cut_seq) AS records_seq
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'anchor';
SELECT intact, verified = total AS all_verified FROM kaireon.verify_audit_chain('aud');
-- a second purge: the first anchor stays (it is later in the chain), the new one names the new cut
SELECT kaireon.purge_audit_chain('aud', now() + interval '1 day', 15) AS removed;
SELECT count(*) AS anchors FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND action = 'anchor';
SELECT intact FROM kaireon.verify_audit_chain('aud');
-- nothing older than the cutoff: nothing removed, no anchor
SELECT kaireon.purge_audit_chain('aud', '2000-01-01') AS removed;
-- a legal hold stops retention
INSERT INTO kaireon.retention_configs (tenant_id, data_class, retention_days, legal_hold) VALUES ('aud', 'audit', 30, true);
SELECT kaireon.purge_audit_chain('aud', now() + interval '1 day');
DELETE FROM kaireon.retention_configs WHERE tenant_id = 'aud';
-- purging everything leaves the anchor alone, which verifies
SELECT kaireon.purge_audit_chain('aud', now() + interval '1 day', 100000) > 0 AS removed_all;
SELECT count(*) AS rows_left, min(action) AS action FROM kaireon.audit_logs WHERE tenant_id = 'aud';
SELECT intact, verified FROM kaireon.verify_audit_chain('aud');
-- and the chain continues after it
UPDATE kaireon.offers SET priority = 8 WHERE tenant_id = 'aud' AND id = 'm8';
SELECT intact, verified FROM kaireon.verify_audit_chain('aud');

-- Ids increase within a chain even when the sequence is behind the chain's last id (on a Citus
-- cluster: a tenant moved to a node whose sequence is behind): one more than the last id.
SELECT last_id AS aud_last_id FROM kaireon.audit_chain_heads WHERE tenant_id = 'aud' \gset
SELECT last_value AS seq_was FROM kaireon.audit_logs_id_seq \gset
SELECT setval('kaireon.audit_logs_id_seq', 1) AS sequence_behind;
UPDATE kaireon.offers SET priority = 9 WHERE tenant_id = 'aud' AND id = 'm8';
SELECT id - :aud_last_id AS after_last_id FROM kaireon.audit_logs WHERE tenant_id = 'aud' ORDER BY chain_seq DESC LIMIT 1;
SELECT setval('kaireon.audit_logs_id_seq', :seq_was + 1) > 0 AS sequence_restored;
SELECT intact FROM kaireon.verify_audit_chain('aud');

-- An append goes through the executor: its row is visible to a plain SELECT in the same
-- transaction, at the end of the chain, and the chain verifies before the commit too.
BEGIN;
INSERT INTO kaireon.offers (tenant_id, id, name) VALUES ('aud', 'seen-at-once', 'Seen');
SET CONSTRAINTS ALL IMMEDIATE;
SELECT action, entity_type, entity_id,
       chain_seq = (SELECT max(chain_seq) FROM kaireon.audit_logs WHERE tenant_id = 'aud') AS at_the_end
  FROM kaireon.audit_logs WHERE tenant_id = 'aud' AND entity_id = 'seen-at-once';
SELECT intact FROM kaireon.verify_audit_chain('aud');
COMMIT;
SELECT intact FROM kaireon.verify_audit_chain('aud');

-- clean up (the log's rows go only with triggers off, as a superuser)
DELETE FROM kaireon.tenants WHERE id IN ('aud', 'aud2');
DROP OWNED BY regress_audit_app, regress_audit_ro, regress_audit_admin;
DELETE FROM kaireon.role_grants WHERE role_name IN ('regress_audit_app', 'regress_audit_ro', 'regress_audit_admin');
DROP ROLE regress_audit_app, regress_audit_ro, regress_audit_admin;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
DELETE FROM kaireon.platform_audit_logs;
DELETE FROM kaireon.platform_audit_chain_head;
RESET session_replication_role;
