/*
 * secrets.c
 *	  API keys, OAuth client secrets and encrypted platform settings.
 *
 * Two superuser-only settings hold the server-side secrets, set in
 * postgresql.conf (or an included file) and never shown to other roles:
 *
 *	 kaireon.api_key_pepper			  64-128 hex digits: the HMAC-SHA256 key under
 *									  which API keys and OAuth client secrets are
 *									  stored
 *	 kaireon.settings_encryption_key  64 hex digits: the AES-256-GCM key of
 *									  encrypted platform_settings values
 *	 kaireon.settings_encryption_key_previous  the key before a rotation (read only)
 *
 * Their check hooks parse the hex once (the value is kept decoded in the
 * hook's "extra"), and their error messages never repeat the value.
 *
 * An API key is "krn_" and 64 hex digits from pg_strong_random, returned once
 * by kaireon.create_api_key; the table keeps its first 12 characters (prefix,
 * for display and lookup) and hex(HMAC-SHA256(pepper, key)).  Authentication
 * looks the key up by prefix and compares the HMAC in constant time.  OAuth
 * clients are the same with a client id "kci_..." and a secret "kcs_...".
 *
 * An encrypted setting value is stored as
 *	 kenc:v1:<key id>:<base64(nonce[12] || ciphertext || tag[16])>
 * where the key id is the first 8 hex digits of SHA-256(key) and the
 * additional authenticated data binds the ciphertext to its tenant, category
 * and key, so it cannot be moved to another setting.  A BEFORE trigger on
 * platform_settings encrypts plaintext written with encrypted = true, so the
 * plaintext never reaches the table; kaireon.get_setting decrypts.
 *
 * No secret appears in an error message, and errors raised while a secret
 * may be in the statement text hide the statement from the server log
 * (errhidestmt).  Lookups that must cross tenants (authentication) run as the
 * owner of the table, like a SECURITY DEFINER function.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "security/owner.h"
#include "security/secrets.h"
#include "security/session.h"
#include "audit/audit.h"
#include "util/crypto.h"

PG_FUNCTION_INFO_V1(kaireon_create_api_key);
PG_FUNCTION_INFO_V1(kaireon_authenticate_api_key);
PG_FUNCTION_INFO_V1(kaireon_create_oauth_client);
PG_FUNCTION_INFO_V1(kaireon_authenticate_oauth_client);
PG_FUNCTION_INFO_V1(kaireon_settings_encrypt_trigger);
PG_FUNCTION_INFO_V1(kaireon_get_setting);
PG_FUNCTION_INFO_V1(kaireon_reencrypt_settings);

#define API_KEY_PREFIX		"krn_"
#define CLIENT_ID_PREFIX	"kci_"
#define CLIENT_SECRET_PREFIX "kcs_"
#define SECRET_RANDOM_BYTES 32		/* 64 hex digits after the prefix */
#define CLIENT_ID_BYTES		16
#define DISPLAY_PREFIX_LEN	12
#define ENVELOPE_TAG		"kenc:v1:"
#define KEY_ID_LEN			8
#define PEPPER_MIN_BYTES	32
#define PEPPER_MAX_BYTES	64
#define LAST_USED_GRANULARITY_SECS 60

/* A decoded secret setting (the hook's "extra", malloc'd as GUC requires). */
typedef struct SecretBytes
{
	int			len;
	uint8		bytes[PEPPER_MAX_BYTES];
	char		key_id[KEY_ID_LEN + 1];
} SecretBytes;

static char *pepper_hex = NULL;
static char *enc_key_hex = NULL;
static char *enc_key_prev_hex = NULL;
static SecretBytes *pepper = NULL;
static SecretBytes *enc_key = NULL;
static SecretBytes *enc_key_prev = NULL;

/* Decode a hex secret of min..max bytes into a malloc'd SecretBytes; NULL with a GUC message. */
static SecretBytes *
parse_secret(const char *hex, int min_bytes, int max_bytes, const char *name)
{
	size_t		hexlen = strlen(hex);
	SecretBytes *s;
	uint8		digest[KC_SHA256_LEN];
	char		digest_hex[KC_SHA256_HEX_LEN + 1];

	if (hexlen % 2 != 0 || hexlen < (size_t) (2 * min_bytes) || hexlen > (size_t) (2 * max_bytes))
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		if (min_bytes == max_bytes)
			GUC_check_errmsg("%s must be exactly %d hex digits", name, 2 * min_bytes);
		else
			GUC_check_errmsg("%s must be %d to %d hex digits", name, 2 * min_bytes, 2 * max_bytes);
		GUC_check_errhint("Generate one with: openssl rand -hex %d", max_bytes == min_bytes ? min_bytes : 32);
		return NULL;
	}
	s = malloc(sizeof(SecretBytes));
	if (s == NULL)
	{
		GUC_check_errcode(ERRCODE_OUT_OF_MEMORY);
		GUC_check_errmsg("out of memory");
		return NULL;
	}
	s->len = (int) (hexlen / 2);
	if (!kc_unhex(hex, hexlen, s->bytes, s->len))
	{
		free(s);
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("%s must consist of hex digits only", name);
		return NULL;
	}
	/* kc_sha256 cannot raise here in practice; the key id names which key encrypted a value */
	kc_sha256(s->bytes, s->len, digest);
	kc_hex(digest, KC_SHA256_LEN, digest_hex);
	memcpy(s->key_id, digest_hex, KEY_ID_LEN);
	s->key_id[KEY_ID_LEN] = '\0';
	return s;
}

/* Check hook of kaireon.api_key_pepper: empty (unset) or 64-128 hex digits. */
static bool
check_pepper(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	*extra = parse_secret(*newval, PEPPER_MIN_BYTES, PEPPER_MAX_BYTES, "kaireon.api_key_pepper");
	return *extra != NULL;
}

/* Check hook of the encryption keys: empty (unset) or exactly 64 hex digits. */
static bool
check_enc_key(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	*extra = parse_secret(*newval, KC_AES_KEY_LEN, KC_AES_KEY_LEN, "kaireon.settings_encryption_key");
	return *extra != NULL;
}

/* Assign hooks: keep the decoded value. */
static void
assign_pepper(const char *newval, void *extra)
{
	pepper = (SecretBytes *) extra;
}

/* Assign hook of kaireon.settings_encryption_key. */
static void
assign_enc_key(const char *newval, void *extra)
{
	enc_key = (SecretBytes *) extra;
}

/* Assign hook of the previous settings encryption key. */
static void
assign_enc_key_prev(const char *newval, void *extra)
{
	enc_key_prev = (SecretBytes *) extra;
}

/* Register the secret settings (superuser-only, hidden from SHOW ALL and non-superusers). */
void
kaireon_secrets_init(void)
{
	int			flags = GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE;

	DefineCustomStringVariable("kaireon.api_key_pepper",
							   "Server-side key (64-128 hex digits) of the HMAC under which API keys and OAuth client secrets are stored.",
							   "Set it in postgresql.conf; changing it invalidates every stored key.",
							   &pepper_hex, "", PGC_SUSET, flags,
							   check_pepper, assign_pepper, NULL);
	DefineCustomStringVariable("kaireon.settings_encryption_key",
							   "AES-256-GCM key (64 hex digits) of encrypted platform settings.",
							   "Set it in postgresql.conf; see kaireon.reencrypt_settings for rotation.",
							   &enc_key_hex, "", PGC_SUSET, flags,
							   check_enc_key, assign_enc_key, NULL);
	DefineCustomStringVariable("kaireon.settings_encryption_key_previous",
							   "The encryption key before a rotation, used only to read values not yet re-encrypted.",
							   NULL,
							   &enc_key_prev_hex, "", PGC_SUSET, flags,
							   check_enc_key, assign_enc_key_prev, NULL);
}

/*
 * A secret setting's value, or 55000 naming the setting to configure
 * (statement hidden: it may hold a secret or a plaintext).
 */
static const SecretBytes *
require_secret(const SecretBytes *value, const char *setting)
{
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not set", setting),
				 errhint("A superuser sets it in postgresql.conf: %s = '<64 hex digits>' (openssl rand -hex 32), then reloads.",
						 setting),
				 errhidestmt(true)));
	return value;
}

/* The pepper, or 55000 naming the setting to configure. */
static const SecretBytes *
require_pepper(void)
{
	return require_secret(pepper, "kaireon.api_key_pepper");
}

/* prefix followed by nbytes random bytes in hex. */
static char *
random_token(const char *prefix, int nbytes)
{
	uint8		raw[SECRET_RANDOM_BYTES];
	char	   *out = palloc(strlen(prefix) + 2 * nbytes + 1);

	Assert(nbytes <= SECRET_RANDOM_BYTES);
	if (!pg_strong_random(raw, nbytes))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
	strcpy(out, prefix);
	kc_hex(raw, nbytes, out + strlen(prefix));
	explicit_bzero(raw, sizeof(raw));
	return out;
}

/* hex(HMAC-SHA256(pepper, secret)). */
static char *
secret_hash(const char *secret)
{
	const SecretBytes *p = require_pepper();
	uint8		mac[KC_SHA256_LEN];
	char	   *hex = palloc(KC_SHA256_HEX_LEN + 1);

	kc_hmac_sha256(p->bytes, p->len, secret, strlen(secret), mac);
	kc_hex(mac, KC_SHA256_LEN, hex);
	return hex;
}

/* Whether s is prefix followed by exactly 2 * nbytes lower-case hex digits. */
static bool
token_well_formed(const char *s, const char *prefix, int nbytes)
{
	size_t		plen = strlen(prefix);

	return strncmp(s, prefix, plen) == 0 && kc_is_lower_hex(s + plen, 2 * (size_t) nbytes);
}

/* Check a scopes argument: a JSON array of short lower-case strings. */
static void
check_scopes(Jsonb *scopes, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (!JB_ROOT_IS_ARRAY(scopes) || JB_ROOT_IS_SCALAR(scopes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s scopes must be a JSON array of strings", what),
				 errhint("For example '[\"read\", \"write\"]'.")));
	it = JsonbIteratorInit(&scopes->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvString || v.val.string.len == 0 || v.val.string.len > 64)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s scopes must be non-empty strings of at most 64 characters", what),
					 errhint("For example '[\"read\", \"write\"]'.")));
	}
}

/* Text argument n, or 22004 naming it when null. */
static char *
required_text(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name),
				 errhint("Pass a value for %s.", name)));
	return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* Act as the owner of a kaireon table (for lookups across tenants). */
static void
switch_to_table_owner(const char *table, Oid *save_userid, int *save_sec)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("kaireon", false));

	if (!OidIsValid(relid))
		elog(ERROR, "table kaireon.%s does not exist", table);
	kaireon_switch_to_owner(relid, save_userid, save_sec);
}

/* One row (as a composite datum) of a function returning TABLE (...). */
static Datum
result_row(FunctionCallInfo fcinfo, Datum *values, bool *nulls)
{
	TupleDesc	tupdesc;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "function must return a row");
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
}

/*
 * kaireon.create_api_key(tenant_id, name, scopes, expires_at): a new API key
 * of a tenant.  Returns (id, api_key, prefix); the key itself is shown only
 * here, the table keeps its HMAC.
 */
Datum
kaireon_create_api_key(PG_FUNCTION_ARGS)
{
	MemoryContext caller;
	char	   *tenant_id = required_text(fcinfo, 0, "tenant_id");
	char	   *name = required_text(fcinfo, 1, "name");
	Jsonb	   *scopes = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	bool		has_expiry = !PG_ARGISNULL(3);
	TimestampTz expires_at = has_expiry ? PG_GETARG_TIMESTAMPTZ(3) : 0;
	const char *user_id = GetConfigOption("kaireon.user_id", true, false);
	char	   *key;
	char	   *prefix;
	Oid			types[7] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, TIMESTAMPTZOID, TEXTOID};
	Datum		vals[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Datum		out[3];
	bool		outnulls[3] = {false, false, false};
	char	   *id;

	kaireon_check_tenant_access(tenant_id);
	if (name[0] == '\0' || strlen(name) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("API key name must be 1 to 200 characters"),
				 errhint("Name the key after its user, e.g. 'checkout service'.")));
	if (scopes != NULL)
		check_scopes(scopes, "API key");
	if (has_expiry && expires_at <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at %s is not in the future", timestamptz_to_str(expires_at)),
				 errhint("Pass a later time, or NULL for a key that does not expire.")));

	key = random_token(API_KEY_PREFIX, SECRET_RANDOM_BYTES);
	prefix = pnstrdup(key, DISPLAY_PREFIX_LEN);
	vals[0] = CStringGetTextDatum(tenant_id);
	vals[1] = CStringGetTextDatum(name);
	vals[2] = CStringGetTextDatum(prefix);
	vals[3] = CStringGetTextDatum(secret_hash(key));
	vals[4] = scopes ? JsonbPGetDatum(scopes) : DirectFunctionCall1(jsonb_in, CStringGetDatum("[]"));
	vals[5] = TimestampTzGetDatum(expires_at);
	nulls[5] = has_expiry ? ' ' : 'n';
	vals[6] = user_id && user_id[0] ? CStringGetTextDatum(user_id) : (Datum) 0;
	nulls[6] = user_id && user_id[0] ? ' ' : 'n';
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(caller);	/* the result row outlives SPI_finish */
	if (kspi_execute_with_args("INSERT INTO kaireon.api_keys (tenant_id, name, prefix, hashed_key, scopes, expires_at, created_by)"
							   " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
							   7, types, vals, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting the API key failed");
	id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	out[0] = CStringGetTextDatum(id);
	out[1] = CStringGetTextDatum(key);
	out[2] = CStringGetTextDatum(prefix);
	SPI_finish();
	PG_RETURN_DATUM(result_row(fcinfo, out, outnulls));
}

/*
 * The shared part of authenticate_api_key and authenticate_oauth_client: as
 * the owner of table, look up the candidates of a token (sql, with the
 * token's lookup text as $1, returns tenant_id, id, the stored hash, scopes,
 * whether the row is usable, and for API keys whether last_used_at is due),
 * compare each stored hash with mac in full and in constant time, and return
 * the first usable match as a row (tenant_id, id, scopes), running touch_sql
 * ($1 tenant_id, $2 id) when its use is due and the transaction may write.
 * Never raises about the secret.
 */
static void
authenticate(FunctionCallInfo fcinfo, const char *table, const char *sql, const char *lookup,
			 const char *mac, const char *what, const char *touch_sql)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller;
	Oid			save_userid;
	int			save_sec;
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	uint64		i;
	Datum		out[3];
	bool		outnulls[3] = {false, false, false};
	bool		found = false;

	switch_to_table_owner(table, &save_userid, &save_sec);
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(caller);	/* the result row outlives SPI_finish */
	vals[0] = CStringGetTextDatum(lookup);
	if (kspi_execute_with_args(sql, 1, types, vals, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "looking up the %s failed", what);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *stored = SPI_getvalue(tup, desc, 3);
		bool		isnull;

		/* every candidate is compared in full, in constant time */
		if (stored == NULL || strlen(stored) != KC_SHA256_HEX_LEN ||
			!kc_equal_ct(stored, mac, KC_SHA256_HEX_LEN))
			continue;
		if (!DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull)))
			continue;			/* revoked or expired */
		found = true;
		out[0] = CStringGetTextDatum(SPI_getvalue(tup, desc, 1));
		out[1] = CStringGetTextDatum(SPI_getvalue(tup, desc, 2));
		out[2] = DirectFunctionCall1(jsonb_in, CStringGetDatum(SPI_getvalue(tup, desc, 4)));
		if (touch_sql != NULL && DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull)) && !XactReadOnly)
		{
			Oid			utypes[2] = {TEXTOID, TEXTOID};
			Datum		uvals[2] = {out[0], out[1]};

			if (kspi_execute_with_args(touch_sql, 2, utypes, uvals, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "recording the %s's use failed", what);
		}
		break;
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	if (found)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnulls);
}

/*
 * kaireon.authenticate_api_key(api_key): the key's (tenant_id, key_id, scopes),
 * or no row for an unknown, malformed, revoked or expired key.  Never raises an
 * error about the key (the statement holding it would be logged); records
 * last_used_at at most once a minute per key.
 */
Datum
kaireon_authenticate_api_key(PG_FUNCTION_ARGS)
{
	char	   *key;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0))
		return (Datum) 0;
	key = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!token_well_formed(key, API_KEY_PREFIX, SECRET_RANDOM_BYTES))
		return (Datum) 0;
	authenticate(fcinfo, "api_keys",
				 "SELECT tenant_id, id, hashed_key, scopes,"
				 " revoked_at IS NULL AND (expires_at IS NULL OR expires_at OPERATOR(pg_catalog.>) pg_catalog.now()),"
				 " last_used_at IS NULL OR last_used_at OPERATOR(pg_catalog.<) (pg_catalog.now()"
				 " OPERATOR(pg_catalog.-) '" CppAsString2(LAST_USED_GRANULARITY_SECS) " s'::pg_catalog.interval)"
				 " FROM kaireon.api_keys WHERE prefix OPERATOR(pg_catalog.=) $1",
				 pnstrdup(key, DISPLAY_PREFIX_LEN), secret_hash(key), "API key",
				 "UPDATE kaireon.api_keys SET last_used_at = pg_catalog.now()"
				 " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2");
	return (Datum) 0;
}

/*
 * kaireon.create_oauth_client(tenant_id, name, scopes): a new OAuth
 * client-credentials client.  Returns (id, client_id, client_secret); the
 * secret is shown only here, the table keeps its HMAC.
 */
Datum
kaireon_create_oauth_client(PG_FUNCTION_ARGS)
{
	MemoryContext caller;
	char	   *tenant_id = required_text(fcinfo, 0, "tenant_id");
	char	   *name = required_text(fcinfo, 1, "name");
	Jsonb	   *scopes = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	char	   *client_id;
	char	   *secret;
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		vals[5];
	Datum		out[3];
	bool		outnulls[3] = {false, false, false};

	kaireon_check_tenant_access(tenant_id);
	if (name[0] == '\0' || strlen(name) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("OAuth client name must be 1 to 200 characters"),
				 errhint("Name the client after the application that uses it.")));
	if (scopes != NULL)
		check_scopes(scopes, "OAuth client");
	client_id = random_token(CLIENT_ID_PREFIX, CLIENT_ID_BYTES);
	secret = random_token(CLIENT_SECRET_PREFIX, SECRET_RANDOM_BYTES);
	vals[0] = CStringGetTextDatum(tenant_id);
	vals[1] = CStringGetTextDatum(name);
	vals[2] = CStringGetTextDatum(client_id);
	vals[3] = CStringGetTextDatum(secret_hash(secret));
	vals[4] = scopes ? JsonbPGetDatum(scopes) : DirectFunctionCall1(jsonb_in, CStringGetDatum("[\"read\"]"));
	caller = CurrentMemoryContext;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(caller);	/* the result row outlives SPI_finish */
	/* the scopes CHECK of oauth_clients refuses anything but read, write, admin */
	if (kspi_execute_with_args("INSERT INTO kaireon.oauth_clients (tenant_id, name, client_id, hashed_secret, scopes)"
							   " VALUES ($1, $2, $3, $4, $5) RETURNING id",
							   5, types, vals, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting the OAuth client failed");
	out[0] = CStringGetTextDatum(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	out[1] = CStringGetTextDatum(client_id);
	out[2] = CStringGetTextDatum(secret);
	SPI_finish();
	PG_RETURN_DATUM(result_row(fcinfo, out, outnulls));
}

/*
 * kaireon.authenticate_oauth_client(client_id, client_secret): the client's
 * (tenant_id, oauth_client_id, scopes), or no row for a wrong, malformed or
 * revoked client.  Like authenticate_api_key, it never raises about the secret.
 */
Datum
kaireon_authenticate_oauth_client(PG_FUNCTION_ARGS)
{
	char	   *client_id;
	char	   *secret;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return (Datum) 0;
	client_id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	secret = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!token_well_formed(client_id, CLIENT_ID_PREFIX, CLIENT_ID_BYTES) ||
		!token_well_formed(secret, CLIENT_SECRET_PREFIX, SECRET_RANDOM_BYTES))
		return (Datum) 0;
	authenticate(fcinfo, "oauth_clients",
				 "SELECT tenant_id, id, hashed_secret, scopes, revoked_at IS NULL"
				 " FROM kaireon.oauth_clients WHERE client_id OPERATOR(pg_catalog.=) $1",
				 client_id, secret_hash(secret), "OAuth client", NULL);
	return (Datum) 0;
}

/* The additional authenticated data binding a ciphertext to its setting. */
static StringInfo
setting_aad(const char *tenant_id, const char *category, const char *key)
{
	StringInfo	aad = makeStringInfo();

	appendStringInfoString(aad, "kaireon.platform_settings");
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, tenant_id);
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, category);
	appendStringInfoChar(aad, '\0');
	appendStringInfoString(aad, key);
	return aad;
}

/* The current encryption key, or 55000 (statement hidden: it may hold the plaintext). */
static const SecretBytes *
require_enc_key(void)
{
	return require_secret(enc_key, "kaireon.settings_encryption_key");
}

/* Encrypt a setting value under the current key into the stored envelope. */
static char *
encrypt_value(const char *plain, const char *tenant_id, const char *category, const char *key)
{
	const SecretBytes *k = require_enc_key();
	StringInfo	aad = setting_aad(tenant_id, category, key);
	size_t		len = strlen(plain);
	int			rawlen = KC_GCM_NONCE_LEN + (int) len + KC_GCM_TAG_LEN;
	uint8	   *raw = palloc(rawlen);
	int			b64len = pg_b64_enc_len(rawlen);
	char	   *out = palloc(strlen(ENVELOPE_TAG) + KEY_ID_LEN + 1 + b64len + 1);
	char	   *p;
	int			n;

	if (!pg_strong_random(raw, KC_GCM_NONCE_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
	kc_aes_gcm_encrypt(k->bytes, raw, aad->data, aad->len, plain, len,
					   raw + KC_GCM_NONCE_LEN, raw + KC_GCM_NONCE_LEN + len);
	p = out + sprintf(out, "%s%s:", ENVELOPE_TAG, k->key_id);
	n = pg_b64_encode((const char *) raw, rawlen, p, b64len);
	if (n < 0)
		elog(ERROR, "base64 encoding failed");
	p[n] = '\0';
	return out;
}

/* Whether a value has the shape of an encrypted envelope. */
static bool
is_envelope(const char *value)
{
	return strncmp(value, ENVELOPE_TAG, strlen(ENVELOPE_TAG)) == 0;
}

/*
 * Decrypt a stored envelope; NULL when it does not authenticate (wrong key,
 * other setting, altered).  *no_key is set when no configured key has its id.
 */
static char *
decrypt_value(const char *stored, const char *tenant_id, const char *category, const char *key,
			  bool *no_key)
{
	const char *keyid = stored + strlen(ENVELOPE_TAG);
	const char *b64;
	const SecretBytes *k = NULL;
	StringInfo	aad;
	uint8	   *raw;
	int			rawlen;
	char	   *plain;
	int			len;

	*no_key = false;
	if (!is_envelope(stored) || strlen(keyid) < KEY_ID_LEN + 1 || keyid[KEY_ID_LEN] != ':')
		return NULL;
	if (enc_key != NULL && strncmp(enc_key->key_id, keyid, KEY_ID_LEN) == 0)
		k = enc_key;
	else if (enc_key_prev != NULL && strncmp(enc_key_prev->key_id, keyid, KEY_ID_LEN) == 0)
		k = enc_key_prev;
	if (k == NULL)
	{
		*no_key = true;
		return NULL;
	}
	b64 = keyid + KEY_ID_LEN + 1;
	raw = palloc(pg_b64_dec_len(strlen(b64)) + 1);
	rawlen = pg_b64_decode(b64, strlen(b64), (char *) raw, pg_b64_dec_len(strlen(b64)));
	if (rawlen < KC_GCM_NONCE_LEN + KC_GCM_TAG_LEN)
		return NULL;
	len = rawlen - KC_GCM_NONCE_LEN - KC_GCM_TAG_LEN;
	aad = setting_aad(tenant_id, category, key);
	plain = palloc(len + 1);
	if (!kc_aes_gcm_decrypt(k->bytes, raw, aad->data, aad->len, raw + KC_GCM_NONCE_LEN, len,
							raw + KC_GCM_NONCE_LEN + len, (uint8 *) plain))
		return NULL;
	plain[len] = '\0';
	if (strlen(plain) != (size_t) len)
		return NULL;			/* a NUL inside cannot be text */
	return plain;
}

/* Decrypt or raise (no secret in the message, statement hidden). */
static char *
decrypt_or_error(const char *stored, const char *tenant_id, const char *category, const char *key)
{
	bool		no_key;
	char	   *plain = decrypt_value(stored, tenant_id, category, key, &no_key);

	if (plain != NULL)
		return plain;
	if (no_key || (enc_key == NULL && enc_key_prev == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("setting %s.%s of tenant \"%s\" is encrypted under a key that is not configured",
						category, key, tenant_id),
				 errhint("Set kaireon.settings_encryption_key (or kaireon.settings_encryption_key_previous) to the key that encrypted it."),
				 errhidestmt(true)));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("encrypted setting %s.%s of tenant \"%s\" does not authenticate", category, key, tenant_id),
			 errdetail("The stored ciphertext was altered, or copied from another setting."),
			 errhint("Write the setting again."),
			 errhidestmt(true)));
	return NULL;
}

/* A text column of a trigger tuple, or NULL. */
static char *
tuple_text(HeapTuple tup, TupleDesc desc, const char *col)
{
	int			attno = SPI_fnumber(desc, col);

	if (attno <= 0)
		elog(ERROR, "platform_settings has no column \"%s\"", col);
	return SPI_getvalue(tup, desc, attno);
}

/*
 * BEFORE INSERT OR UPDATE trigger of platform_settings: a value written with
 * encrypted = true is stored encrypted (plaintext is encrypted; a ciphertext
 * of this very setting is kept), one whose encryption is switched off is
 * decrypted.  A restore session (audit/capture.c) keeps rows as dumped.
 */
Datum
kaireon_settings_encrypt_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	newt;
	HeapTuple	oldt = NULL;
	bool		isnull;
	bool		encrypted;
	bool		was_encrypted = false;
	char	   *value;
	char	   *tenant_id;
	char	   *category;
	char	   *key;
	char	   *stored;
	int			attno;
	Datum		newval;
	bool		newnull = false;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		elog(ERROR, "settings_encrypt_trigger must be a BEFORE INSERT OR UPDATE row trigger");
	desc = RelationGetDescr(td->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		oldt = td->tg_trigtuple;
		newt = td->tg_newtuple;
	}
	else
		newt = td->tg_trigtuple;
	if (kaireon_audit_restore_session())
		return PointerGetDatum(newt);

	attno = SPI_fnumber(desc, "encrypted");
	encrypted = DatumGetBool(heap_getattr(newt, attno, desc, &isnull));
	if (oldt != NULL)
		was_encrypted = DatumGetBool(heap_getattr(oldt, attno, desc, &isnull));
	value = tuple_text(newt, desc, "value");
	tenant_id = tuple_text(newt, desc, "tenant_id");
	category = tuple_text(newt, desc, "category");
	key = tuple_text(newt, desc, "key");
	if (value == NULL || tenant_id == NULL || category == NULL || key == NULL)
		return PointerGetDatum(newt);	/* nothing to protect, or NOT NULL refuses it */

	if (oldt != NULL && was_encrypted)
	{
		char	   *oldvalue = tuple_text(oldt, desc, "value");
		char	   *old_tenant = tuple_text(oldt, desc, "tenant_id");
		char	   *old_category = tuple_text(oldt, desc, "category");
		char	   *old_key = tuple_text(oldt, desc, "key");

		if (oldvalue != NULL && strcmp(oldvalue, value) == 0)
		{
			/* the value is untouched: keep it, re-encrypt it for its new place, or decrypt it */
			bool		same_place = strcmp(old_tenant, tenant_id) == 0 &&
				strcmp(old_category, category) == 0 && strcmp(old_key, key) == 0;
			char	   *plain;

			if (encrypted && same_place)
				return PointerGetDatum(newt);
			plain = decrypt_or_error(oldvalue, old_tenant, old_category, old_key);
			stored = encrypted ? encrypt_value(plain, tenant_id, category, key) : plain;
			goto store;
		}
	}
	if (!encrypted)
		return PointerGetDatum(newt);
	if (is_envelope(value))
	{
		bool		no_key;

		/* a ciphertext of this setting (a copy of the row) is kept as it is */
		if (decrypt_value(value, tenant_id, category, key, &no_key) != NULL)
			return PointerGetDatum(newt);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the value of setting %s.%s has the form of a kaireon ciphertext that does not decrypt for this setting",
						category, key),
				 errhint("Write the plaintext with encrypted = true; kaireon encrypts it."),
				 errhidestmt(true)));
	}
	stored = encrypt_value(value, tenant_id, category, key);

store:
	attno = SPI_fnumber(desc, "value");
	newval = CStringGetTextDatum(stored);
	return PointerGetDatum(heap_modify_tuple_by_cols(newt, desc, 1, &attno, &newval, &newnull));
}

/*
 * kaireon.get_setting(tenant_id, category, key): a platform setting's value,
 * decrypted when it is stored encrypted; NULL when there is no such setting.
 * Runs as the caller, so row level security applies.
 */
Datum
kaireon_get_setting(PG_FUNCTION_ARGS)
{
	char	   *tenant_id = required_text(fcinfo, 0, "tenant_id");
	char	   *category = required_text(fcinfo, 1, "category");
	char	   *key = required_text(fcinfo, 2, "key");
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		vals[3];
	char	   *value = NULL;
	bool		encrypted = false;
	bool		found;
	bool		isnull;

	kaireon_check_tenant_access(tenant_id);
	vals[0] = CStringGetTextDatum(tenant_id);
	vals[1] = CStringGetTextDatum(category);
	vals[2] = CStringGetTextDatum(key);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT value, encrypted FROM kaireon.platform_settings"
							   " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND category OPERATOR(pg_catalog.=) $2"
							   " AND key OPERATOR(pg_catalog.=) $3",
							   3, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the setting failed");
	found = SPI_processed == 1;
	if (found)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		value = v ? MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, v) : NULL;
		encrypted = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	if (!found || value == NULL)
		PG_RETURN_NULL();
	if (encrypted)
		value = decrypt_or_error(value, tenant_id, category, key);
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

/*
 * kaireon.reencrypt_settings(tenant_id): re-encrypt under the current key every
 * encrypted setting (of one tenant, or all) not yet under it, after a key
 * rotation.  Returns the number re-encrypted.
 */
Datum
kaireon_reencrypt_settings(PG_FUNCTION_ARGS)
{
	char	   *tenant_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	const SecretBytes *k = require_enc_key();
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	int64		done = 0;
	uint64		i;
	SPITupleTable *rows;
	uint64		nrows;

	if (tenant_id != NULL)
		kaireon_check_tenant_access(tenant_id);
	else if (!superuser() && !has_bypassrls_privilege(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to re-encrypt the settings of every tenant"),
				 errhint("Pass a tenant_id, or use a superuser or BYPASSRLS role.")));
	vals[0] = tenant_id ? CStringGetTextDatum(tenant_id) : (Datum) 0;
	nulls[0] = tenant_id ? ' ' : 'n';
	vals[1] = CStringGetTextDatum(psprintf("%s%s:%%", ENVELOPE_TAG, k->key_id));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args("SELECT tenant_id, id, category, key, value FROM kaireon.platform_settings"
							   " WHERE encrypted AND value IS NOT NULL AND ($1 IS NULL OR tenant_id OPERATOR(pg_catalog.=) $1)"
							   " AND value NOT LIKE $2 FOR UPDATE",
							   2, types, vals, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading the encrypted settings failed");
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (i = 0; i < nrows; i++)
	{
		HeapTuple	tup = rows->vals[i];
		char	   *t = SPI_getvalue(tup, rows->tupdesc, 1);
		char	   *c = SPI_getvalue(tup, rows->tupdesc, 3);
		char	   *kk = SPI_getvalue(tup, rows->tupdesc, 4);
		char	   *plain = decrypt_or_error(SPI_getvalue(tup, rows->tupdesc, 5), t, c, kk);
		Oid			utypes[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		uvals[3];

		uvals[0] = CStringGetTextDatum(t);
		uvals[1] = CStringGetTextDatum(SPI_getvalue(tup, rows->tupdesc, 2));
		uvals[2] = CStringGetTextDatum(encrypt_value(plain, t, c, kk));
		if (kspi_execute_with_args("UPDATE kaireon.platform_settings SET value = $3"
								   " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND id OPERATOR(pg_catalog.=) $2",
								   3, utypes, uvals, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "re-encrypting a setting failed");
		done++;
	}
	SPI_finish();
	PG_RETURN_INT64(done);
}
