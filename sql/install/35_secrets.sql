-- kaireon install script, part 35: API keys, OAuth client secrets and encrypted platform
-- settings (docs/security.md). The server-side secrets are the superuser-only settings
-- kaireon.api_key_pepper and kaireon.settings_encryption_key (src/security/secrets.c).

CREATE FUNCTION kaireon.create_api_key(tenant_id text, name text, scopes jsonb DEFAULT '[]',
                                       expires_at timestamptz DEFAULT NULL)
    RETURNS TABLE (id text, api_key text, prefix text)
    AS 'MODULE_PATHNAME', 'kaireon_create_api_key'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.create_api_key(text, text, jsonb, timestamptz) IS
    'Creates an API key of a tenant and returns it once: (id, api_key "krn_" + 64 hex digits, prefix). The table keeps only its first 12 characters and its HMAC-SHA256 under kaireon.api_key_pepper.';

CREATE FUNCTION kaireon.authenticate_api_key(api_key text)
    RETURNS TABLE (tenant_id text, key_id text, scopes jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_authenticate_api_key'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.authenticate_api_key(text) IS
    'The tenant, id and scopes of an API key, or no row when the key is unknown, malformed, revoked or expired (HMAC compared in constant time; never an error about the key). Records last_used_at at most once a minute.';

CREATE FUNCTION kaireon.revoke_api_key(tenant_id text, key_id text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found     boolean;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    UPDATE kaireon.api_keys k SET revoked_at = now()
     WHERE k.tenant_id = revoke_api_key.tenant_id AND k.id = revoke_api_key.key_id AND k.revoked_at IS NULL;
    GET DIAGNOSTICS v_found = ROW_COUNT;
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION kaireon.revoke_api_key(text, text) IS
    'Revokes an API key of a tenant; true when a key was revoked, false when it is unknown or already revoked.';

CREATE FUNCTION kaireon.create_oauth_client(tenant_id text, name text, scopes jsonb DEFAULT '["read"]')
    RETURNS TABLE (id text, client_id text, client_secret text)
    AS 'MODULE_PATHNAME', 'kaireon_create_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.create_oauth_client(text, text, jsonb) IS
    'Creates an OAuth client-credentials client of a tenant and returns its secret once: (id, client_id "kci_" + 32 hex digits, client_secret "kcs_" + 64 hex digits). The table keeps only the secret''s HMAC-SHA256 under kaireon.api_key_pepper; scopes are among read, write, admin.';

CREATE FUNCTION kaireon.authenticate_oauth_client(client_id text, client_secret text)
    RETURNS TABLE (tenant_id text, oauth_client_id text, scopes jsonb)
    AS 'MODULE_PATHNAME', 'kaireon_authenticate_oauth_client'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.authenticate_oauth_client(text, text) IS
    'The tenant, id and scopes of an OAuth client, or no row for a wrong secret or an unknown, malformed or revoked client (constant-time comparison; never an error about the secret).';

CREATE FUNCTION kaireon.revoke_oauth_client(tenant_id text, oauth_client_id text) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_found     boolean;
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    UPDATE kaireon.oauth_clients c SET revoked_at = now()
     WHERE c.tenant_id = revoke_oauth_client.tenant_id AND c.id = revoke_oauth_client.oauth_client_id
       AND c.revoked_at IS NULL;
    GET DIAGNOSTICS v_found = ROW_COUNT;
    RETURN v_found;
END
$fn$;
COMMENT ON FUNCTION kaireon.revoke_oauth_client(text, text) IS
    'Revokes an OAuth client of a tenant; true when a client was revoked.';

-- authentication finds a key by its displayed prefix and a client by its id, across tenants
CREATE INDEX api_keys_prefix_idx ON kaireon.api_keys (prefix);
CREATE INDEX oauth_clients_client_id_idx ON kaireon.oauth_clients (client_id);

CREATE FUNCTION kaireon.settings_encrypt_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'kaireon_settings_encrypt_trigger'
    LANGUAGE C;
COMMENT ON FUNCTION kaireon.settings_encrypt_trigger() IS
    'BEFORE INSERT OR UPDATE trigger of platform_settings: stores a value written with encrypted = true as AES-256-GCM ciphertext under kaireon.settings_encryption_key (bound to its tenant, category and key), and decrypts one whose encryption is switched off.';
CREATE TRIGGER encrypt_value BEFORE INSERT OR UPDATE ON kaireon.platform_settings
    FOR EACH ROW EXECUTE FUNCTION kaireon.settings_encrypt_trigger();

CREATE FUNCTION kaireon.get_setting(tenant_id text, category text, key text) RETURNS text
    AS 'MODULE_PATHNAME', 'kaireon_get_setting'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION kaireon.get_setting(text, text, text) IS
    'The value of a platform setting of a tenant, decrypted when it is stored encrypted; NULL when there is none. Runs with the caller''s privileges (row level security applies).';

CREATE FUNCTION kaireon.set_setting(tenant_id text, category text, key text, value text,
                                    encrypted boolean DEFAULT false) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM kaireon.assert_tenant_access(tenant_id);
    INSERT INTO kaireon.platform_settings AS s (tenant_id, category, key, value, encrypted)
    VALUES (set_setting.tenant_id, set_setting.category, set_setting.key, set_setting.value, set_setting.encrypted)
    ON CONFLICT ON CONSTRAINT platform_settings_tenant_id_category_key_key
    DO UPDATE SET value = EXCLUDED.value, encrypted = EXCLUDED.encrypted;
END
$fn$;
COMMENT ON FUNCTION kaireon.set_setting(text, text, text, text, boolean) IS
    'Creates or replaces a platform setting of a tenant; with encrypted the value is stored as ciphertext. Pass secrets as bind parameters: a statement''s text can reach the server log.';

CREATE FUNCTION kaireon.reencrypt_settings(tenant_id text DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'kaireon_reencrypt_settings'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION kaireon.reencrypt_settings(text) IS
    'After a key rotation (new kaireon.settings_encryption_key, old one in kaireon.settings_encryption_key_previous): re-encrypts under the current key every encrypted setting of a tenant (NULL: all tenants, superuser or BYPASSRLS) that is not yet. Returns how many.';
