-- Secrets: API keys and OAuth client secrets stored only as HMAC-SHA256 under the server-side
-- pepper, authenticated in constant time; platform settings encrypted with AES-256-GCM; the
-- superuser-only settings that hold the server-side keys. docs/security.md, "Secrets".
\set VERBOSITY terse
CREATE ROLE regress_sec_app;
SELECT kaireon.grant_app_role('regress_sec_app');
INSERT INTO kaireon.tenants (id, name, slug) VALUES ('sec', 'Secrets', 'sec'), ('sec2', 'Other', 'sec2');

-- The server-side secrets: superuser-only, parsed when set, never repeated in a message.
SET kaireon.api_key_pepper = 'zz00000000000000000000000000000000000000000000000000000000000000';
SET kaireon.api_key_pepper = 'abcd';
SET kaireon.settings_encryption_key = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
SET kaireon.api_key_pepper = '5f0e8a1c9b2d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f';
SET ROLE regress_sec_app;
SHOW kaireon.api_key_pepper;
SELECT current_setting('kaireon.api_key_pepper');
SET kaireon.api_key_pepper = '0000000000000000000000000000000000000000000000000000000000000000';
SET kaireon.tenant_id = 'sec';
SET kaireon.user_id = 'u-admin';

-- API keys: krn_ and 64 hex digits, returned once; the table keeps the prefix and the HMAC.
SELECT id AS key_id, api_key, prefix FROM kaireon.create_api_key('sec', 'checkout', '["read", "write"]') \gset
SELECT :'api_key' ~ '^krn_[0-9a-f]{64}$' AS key_shape, :'prefix' = left(:'api_key', 12) AS prefix_shape;
SELECT name, prefix = :'prefix' AS prefix_kept, hashed_key ~ '^[0-9a-f]{64}$' AS hmac_kept,
       hashed_key <> :'api_key' AND strpos(hashed_key, substr(:'api_key', 5)) = 0 AS key_not_stored,
       scopes, created_by, last_used_at IS NULL AS unused
  FROM kaireon.api_keys WHERE id = :'key_id';
SELECT tenant_id, key_id = :'key_id' AS right_key, scopes FROM kaireon.authenticate_api_key(:'api_key');
SELECT last_used_at IS NOT NULL AS used FROM kaireon.api_keys WHERE id = :'key_id';
-- any tenant's application may authenticate a key (it is how it learns the tenant)
SET kaireon.tenant_id = 'sec2';
SELECT tenant_id, scopes FROM kaireon.authenticate_api_key(:'api_key');
SET kaireon.tenant_id = 'sec';
-- wrong, malformed, empty or null keys: no row, no error
SELECT count(*) AS wrong FROM kaireon.authenticate_api_key(left(:'api_key', 67) || CASE right(:'api_key', 1) WHEN '0' THEN '1' ELSE '0' END);
SELECT count(*) AS malformed FROM kaireon.authenticate_api_key('krn_' || repeat('z', 64));
SELECT count(*) AS short FROM kaireon.authenticate_api_key(left(:'api_key', 20));
SELECT count(*) AS empty FROM kaireon.authenticate_api_key('');
SELECT count(*) AS null_key FROM kaireon.authenticate_api_key(NULL);
-- a key with the same prefix but another secret is compared in full, not by prefix
SELECT count(*) AS same_prefix FROM kaireon.authenticate_api_key(left(:'api_key', 12) || repeat('0', 56));
-- revoked keys and expired keys are refused
SELECT id AS key2 FROM kaireon.create_api_key('sec', 'batch', expires_at => now() + interval '1 hour') \gset
SELECT kaireon.revoke_api_key('sec', :'key_id') AS revoked, kaireon.revoke_api_key('sec', :'key_id') AS again;
SELECT count(*) AS after_revoke FROM kaireon.authenticate_api_key(:'api_key');
RESET ROLE;
SELECT api_key AS expiring FROM kaireon.create_api_key('sec', 'short-lived', expires_at => now() + interval '1 hour') \gset
UPDATE kaireon.api_keys SET expires_at = now() - interval '1 second' WHERE name = 'short-lived';
SELECT count(*) AS after_expiry FROM kaireon.authenticate_api_key(:'expiring');
SET ROLE regress_sec_app;
SET kaireon.tenant_id = 'sec';
-- bad arguments
SELECT * FROM kaireon.create_api_key('sec', '');
SELECT * FROM kaireon.create_api_key('sec', 'x', '{"read": true}');
SELECT * FROM kaireon.create_api_key('sec', 'x', '["read", 7]');
SELECT * FROM kaireon.create_api_key('sec', 'x', expires_at => '2000-01-01');
SELECT * FROM kaireon.create_api_key('sec2', 'x');
SELECT * FROM kaireon.create_api_key(NULL, 'x');

-- OAuth clients: kci_ client ids, secrets stored as HMAC, authenticated the same way.
SELECT id AS client_row, client_id, client_secret FROM kaireon.create_oauth_client('sec', 'partner', '["read", "write"]') \gset
SELECT :'client_id' ~ '^kci_[0-9a-f]{32}$' AS client_id_shape, :'client_secret' ~ '^kcs_[0-9a-f]{64}$' AS secret_shape;
SELECT hashed_secret ~ '^[0-9a-f]{64}$' AS hmac_kept, strpos(hashed_secret, substr(:'client_secret', 5)) = 0 AS secret_not_stored
  FROM kaireon.oauth_clients WHERE id = :'client_row';
SELECT tenant_id, oauth_client_id = :'client_row' AS right_client, scopes FROM kaireon.authenticate_oauth_client(:'client_id', :'client_secret');
SELECT count(*) AS wrong_secret FROM kaireon.authenticate_oauth_client(:'client_id', 'kcs_' || repeat('0', 64));
SELECT count(*) AS unknown_client FROM kaireon.authenticate_oauth_client('kci_' || repeat('0', 32), :'client_secret');
SELECT kaireon.revoke_oauth_client('sec', :'client_row') AS revoked;
SELECT count(*) AS after_revoke FROM kaireon.authenticate_oauth_client(:'client_id', :'client_secret');
SELECT * FROM kaireon.create_oauth_client('sec', 'x', '["superuser"]');

-- Encrypted settings: stored as AES-256-GCM ciphertext, read back decrypted.
SELECT kaireon.set_setting('sec', 'twilio', 'auth_token', 'tw-secret-token-123', encrypted => true);
SELECT kaireon.set_setting('sec', 'mail', 'from', 'noreply@example.com');
SELECT category, key, encrypted, value ~ '^kenc:v1:[0-9a-f]{8}:[A-Za-z0-9+/=]+$' AS ciphertext,
       strpos(value, 'tw-secret') = 0 AS plaintext_absent
  FROM kaireon.platform_settings WHERE tenant_id = 'sec' ORDER BY category;
SELECT kaireon.get_setting('sec', 'twilio', 'auth_token') AS token, kaireon.get_setting('sec', 'mail', 'from') AS sender,
       kaireon.get_setting('sec', 'mail', 'nothing') AS missing;
-- a direct INSERT is encrypted too, and an update of the value re-encrypts it
INSERT INTO kaireon.platform_settings (tenant_id, category, key, value, encrypted) VALUES ('sec', 'ses', 'secret', 'ses-secret-1', true);
UPDATE kaireon.platform_settings SET value = 'ses-secret-2' WHERE tenant_id = 'sec' AND key = 'secret';
SELECT kaireon.get_setting('sec', 'ses', 'secret') AS ses, (SELECT value FROM kaireon.platform_settings WHERE key = 'secret') LIKE 'kenc:v1:%' AS stored_encrypted;
-- each write uses a fresh nonce
SELECT value AS first_cipher FROM kaireon.platform_settings WHERE key = 'secret' \gset
UPDATE kaireon.platform_settings SET value = 'ses-secret-2' WHERE tenant_id = 'sec' AND key = 'secret';
SELECT value <> :'first_cipher' AS new_nonce FROM kaireon.platform_settings WHERE key = 'secret';
-- renaming an encrypted setting re-encrypts it for its new name; switching encryption off decrypts it
UPDATE kaireon.platform_settings SET key = 'secret2' WHERE tenant_id = 'sec' AND key = 'secret';
SELECT kaireon.get_setting('sec', 'ses', 'secret2') AS renamed;
UPDATE kaireon.platform_settings SET encrypted = false WHERE tenant_id = 'sec' AND key = 'secret2';
SELECT value, encrypted FROM kaireon.platform_settings WHERE key = 'secret2';
-- a ciphertext copied to another setting does not decrypt there
RESET ROLE;
UPDATE kaireon.platform_settings SET value = (SELECT value FROM kaireon.platform_settings WHERE key = 'auth_token'), encrypted = true
 WHERE key = 'secret2';
SET session_replication_role = replica;
UPDATE kaireon.platform_settings SET value = (SELECT value FROM kaireon.platform_settings WHERE key = 'auth_token'), encrypted = true
 WHERE key = 'secret2';
RESET session_replication_role;
SELECT kaireon.get_setting('sec', 'ses', 'secret2');
-- nor under another key
SET kaireon.settings_encryption_key = 'ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100';
SELECT kaireon.get_setting('sec', 'twilio', 'auth_token');
-- (the tampered copy goes)
DELETE FROM kaireon.platform_settings WHERE key = 'secret2';
-- rotation: the old key as the previous one still reads; re-encryption moves values to the new key
SET kaireon.settings_encryption_key_previous = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
SELECT kaireon.get_setting('sec', 'twilio', 'auth_token') AS with_previous_key;
SELECT kaireon.reencrypt_settings('sec') AS reencrypted;
RESET kaireon.settings_encryption_key_previous;
SELECT kaireon.get_setting('sec', 'twilio', 'auth_token') AS after_rotation;
-- without a key, encrypted settings can be neither written nor read
RESET kaireon.settings_encryption_key;
SELECT kaireon.get_setting('sec', 'twilio', 'auth_token');
SELECT kaireon.set_setting('sec', 'x', 'y', 'plain-secret', encrypted => true);
SELECT kaireon.set_setting('sec', 'x', 'y', 'not a secret');
SELECT kaireon.get_setting('sec', 'x', 'y') AS plain_without_key;
RESET kaireon.api_key_pepper;
SELECT * FROM kaireon.create_api_key('sec', 'no pepper');
SELECT * FROM kaireon.authenticate_api_key(:'api_key');

-- No secret is in the audit log: no key, no hash of one, no encrypted value or its plaintext.
SELECT count(*) AS audit_rows_with_a_secret FROM kaireon.audit_logs
 WHERE concat(before::text, after::text) LIKE ANY (ARRAY['%' || substr(:'api_key', 5) || '%', '%' || substr(:'client_secret', 5) || '%',
                                                      '%tw-secret-token%', '%ses-secret-1%', '%kenc:%'])
    OR concat(before::text, after::text) ~ '"(hashed_key|hashed_secret)":"[0-9a-f]';
-- (a value whose encryption was switched off is an ordinary setting from then on)
SELECT action, changed_fields, after FROM kaireon.audit_logs
 WHERE entity_type = 'platform_settings' AND after::text LIKE '%ses-secret-2%';
SELECT entity_type, action, after::jsonb ->> 'hashed_key' AS hashed_key, after::jsonb ->> 'hashed_secret' AS hashed_secret
  FROM kaireon.audit_logs WHERE tenant_id = 'sec' AND entity_type IN ('api_keys', 'oauth_clients') AND action = 'create' ORDER BY id;

-- clean up
DELETE FROM kaireon.tenants WHERE id IN ('sec', 'sec2');
DROP OWNED BY regress_sec_app;
DELETE FROM kaireon.role_grants WHERE role_name = 'regress_sec_app';
DROP ROLE regress_sec_app;
SET session_replication_role = replica;
DELETE FROM kaireon.audit_logs;
DELETE FROM kaireon.audit_chain_heads;
RESET session_replication_role;
