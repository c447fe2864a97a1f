/*
 * audit/digest.c
 *	  Digests of audit chains (kaireon.audit_digest): a small signed record of
 *	  a chain's current end, for the operator to keep outside the database, and
 *	  the reading and checking of a kept digest for kaireon.verify_audit_chain.
 *
 * Recomputing a chain finds any change of a row, but someone who can write
 * the log and its head (a superuser with triggers off) can remove the chain's
 * last rows, or rewrite every row from some point on, and move the head to
 * match: the chain is keyed by nothing secret.  A digest names the chain's
 * last row at one moment (its id, chain_seq and integrity_hash); kept where
 * the database's superusers cannot write, it lets verification prove that the
 * chain still holds that row with that hash, which no rewrite can forge.
 *
 * A digest is a JSON object of eight members:
 *
 *	 format			"kaireon-audit-digest-v1"
 *	 tenant_id		the chain's tenant (null: the chain of rows without a tenant)
 *	 id				the last row's id
 *	 chain_seq		its chain_seq
 *	 hash			its integrity_hash (64 lower-case hex digits)
 *	 digest_time	when the digest was made, UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
 *	 key_id			the first 16 hex digits of SHA-256 of the signing key
 *	 signature		hex HMAC-SHA256 under that key of the canonical text: the
 *					other seven members as one JSON object, keys sorted, no
 *					whitespace, non-ASCII as is, in UTF-8 (the same rules as the
 *					canonical form of an audit row, chain.c)
 *
 * The keys are kaireon.audit_digest_keys, created here (32 bytes from
 * pg_strong_random) on the first digest; the newest signs and any verifies.
 * They are read and written only as the table's owner.  The signature tells a
 * digest this database made from one edited or invented elsewhere; it does
 * not stop a superuser, who can read the key, from signing a digest of a
 * rewritten chain.  That is why the operator keeps the digests: a kept digest
 * names a hash the rewritten chain no longer holds, whoever holds the key.
 * docs/audit.md ("Digests") states the format for verifiers outside the
 * database (test/verify_audit_chain.py is one).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "audit/audit.h"

PG_FUNCTION_INFO_V1(kaireon_audit_digest);

#define DIGEST_FORMAT		"kaireon-audit-digest-v1"
#define DIGEST_KEY_LEN		32
#define DIGEST_KEY_ID_LEN	16
#define DIGEST_TIME_LEN		27	/* YYYY-MM-DDTHH:MM:SS.ffffffZ */

/* Raise 22023 for a digest that is not what kaireon.audit_digest returns. */
static void
digest_invalid(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("audit digest is not valid: %s", what),
			 errhint("Pass the JSON object kaireon.audit_digest returned, unchanged.")));
}

/* The text signed: every member but the signature, keys sorted, no whitespace, UTF-8. */
static char *
digest_canonical(const AuditDigest *d)
{
	StringInfoData buf;
	char	   *utf8;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"chain_seq\":" INT64_FORMAT ",\"digest_time\":", d->chain_seq);
	escape_json(&buf, d->digest_time);
	appendStringInfoString(&buf, ",\"format\":");
	escape_json(&buf, DIGEST_FORMAT);
	appendStringInfo(&buf, ",\"hash\":\"%s\",\"id\":" INT64_FORMAT ",\"key_id\":\"%s\",\"tenant_id\":",
					 d->hash, d->id, d->key_id);
	if (d->tenant_id == NULL)
		appendStringInfoString(&buf, "null");
	else
		escape_json(&buf, d->tenant_id);
	appendStringInfoChar(&buf, '}');
	utf8 = pg_server_to_any(buf.data, buf.len, PG_UTF8);
	return utf8;
}

/* HMAC-SHA256 of the digest's canonical text under key. */
static void
digest_sign(const AuditDigest *d, const uint8 key[DIGEST_KEY_LEN], uint8 mac[KC_SHA256_LEN])
{
	char	   *text = digest_canonical(d);

	kc_hmac_sha256(key, DIGEST_KEY_LEN, text, strlen(text), mac);
	pfree(text);
}

/* Copy a bytea key of the right length; false for anything else. */
static bool
key_from_datum(Datum value, uint8 key[DIGEST_KEY_LEN])
{
	bytea	   *b = DatumGetByteaPP(value);

	if (VARSIZE_ANY_EXHDR(b) != DIGEST_KEY_LEN)
		return false;
	memcpy(key, VARDATA_ANY(b), DIGEST_KEY_LEN);
	return true;
}

/* The key named key_id (inside SPI, as the owner); false when this database does not hold it. */
static bool
digest_key_lookup(const char *key_id, uint8 key[DIGEST_KEY_LEN])
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	bool		isnull;
	Datum		value;

	vals[0] = CStringGetTextDatum(key_id);
	if (kspi_execute_with_args("SELECT key FROM kaireon.audit_digest_keys WHERE key_id OPERATOR(pg_catalog.=) $1",
							   1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit digest keys failed");
	if (SPI_processed != 1)
		return false;
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && key_from_datum(value, key);
}

/* The newest key (inside SPI, as the owner), created on first use. */
static void
digest_key_current(char key_id[DIGEST_KEY_ID_LEN + 1], uint8 key[DIGEST_KEY_LEN])
{
	Oid			types[2] = {TEXTOID, BYTEAOID};
	Datum		vals[2];
	bool		isnull;
	uint8		digest[KC_SHA256_LEN];
	char		digest_hex[KC_SHA256_HEX_LEN + 1];
	bytea	   *b;

	if (kspi_execute("SELECT key_id, key FROM kaireon.audit_digest_keys ORDER BY created_at DESC, key_id LIMIT 1",
					 true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit digest keys failed");
	if (SPI_processed == 1)
	{
		char	   *id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		Datum		value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (id == NULL || !kc_is_lower_hex(id, DIGEST_KEY_ID_LEN) || isnull || !key_from_datum(value, key))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the newest row of kaireon.audit_digest_keys holds no valid key"),
					 errhint("Delete that row; kaireon creates a new key on the next digest.")));
		strcpy(key_id, id);
		return;
	}

	/* the first digest of this database: a new random key */
	if (!pg_strong_random(key, DIGEST_KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for the audit digest key")));
	kc_sha256(key, DIGEST_KEY_LEN, digest);
	kc_hex(digest, KC_SHA256_LEN, digest_hex);
	memcpy(key_id, digest_hex, DIGEST_KEY_ID_LEN);
	key_id[DIGEST_KEY_ID_LEN] = '\0';
	b = palloc(VARHDRSZ + DIGEST_KEY_LEN);
	SET_VARSIZE(b, VARHDRSZ + DIGEST_KEY_LEN);
	memcpy(VARDATA(b), key, DIGEST_KEY_LEN);
	vals[0] = CStringGetTextDatum(key_id);
	vals[1] = PointerGetDatum(b);
	if (kspi_execute_with_args("INSERT INTO kaireon.audit_digest_keys (key_id, key) VALUES ($1, $2)",
							   2, types, vals, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "storing the audit digest key failed");
	explicit_bzero(VARDATA(b), DIGEST_KEY_LEN);
}

/* A jsonb string member as a C string; NULL for a JSON null when allowed. */
static const char *
member_string(JsonbValue *v, const char *name, bool null_ok)
{
	if (v->type == jbvNull && null_ok)
		return NULL;
	if (v->type != jbvString)
		digest_invalid(psprintf("%s must be a string", name));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A jsonb member holding a positive integer (written as plain digits). */
static int64
member_int(JsonbValue *v, const char *name)
{
	char	   *digits;
	size_t		n;

	if (v->type != jbvNumeric)
		digest_invalid(psprintf("%s must be a number", name));
	digits = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	n = strlen(digits);
	if (n == 0 || n > 18 || strspn(digits, "0123456789") != n || digits[0] == '0')
		digest_invalid(psprintf("%s must be a positive integer", name));
	return (int64) strtoll(digits, NULL, 10);
}

/*
 * Read a kept digest, check that it is of the chain of tenant_id and that its
 * signature is right under a key of this database (22023 otherwise).  Runs
 * inside SPI, as the owner of the keys.
 */
void
kaireon_audit_digest_read(Jsonb *jb, const char *tenant_id, AuditDigest *d)
{
	enum
	{
		M_FORMAT, M_TENANT, M_ID, M_SEQ, M_HASH, M_TIME, M_KEY, M_SIG, M_N
	};
	static const char *const names[M_N] = {
		"format", "tenant_id", "id", "chain_seq", "hash", "digest_time", "key_id", "signature"
	};
	bool		seen[M_N] = {false};
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			member = -1;
	const char *format = NULL;
	const char *hash = NULL;
	const char *time = NULL;
	const char *key_id = NULL;
	const char *sig = NULL;
	uint8		given[KC_SHA256_LEN];
	uint8		key[DIGEST_KEY_LEN];
	uint8		mac[KC_SHA256_LEN];
	int			i;

	memset(d, 0, sizeof(*d));
	if (!JB_ROOT_IS_OBJECT(jb))
		digest_invalid("it must be a JSON object");
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *name = pnstrdup(v.val.string.val, v.val.string.len);

			for (member = 0; member < M_N; member++)
				if (strcmp(name, names[member]) == 0)
					break;
			if (member == M_N)
				digest_invalid(psprintf("unknown member \"%s\"", name));
			seen[member] = true;
		}
		else if (tok == WJB_VALUE)
		{
			switch (member)
			{
				case M_FORMAT:
					format = member_string(&v, "format", false);
					break;
				case M_TENANT:
					d->tenant_id = member_string(&v, "tenant_id", true);
					break;
				case M_ID:
					d->id = member_int(&v, "id");
					break;
				case M_SEQ:
					d->chain_seq = member_int(&v, "chain_seq");
					break;
				case M_HASH:
					hash = member_string(&v, "hash", false);
					break;
				case M_TIME:
					time = member_string(&v, "digest_time", false);
					break;
				case M_KEY:
					key_id = member_string(&v, "key_id", false);
					break;
				case M_SIG:
					sig = member_string(&v, "signature", false);
					break;
			}
		}
	}
	for (i = 0; i < M_N; i++)
		if (!seen[i])
			digest_invalid(psprintf("member \"%s\" is missing", names[i]));
	if (strcmp(format, DIGEST_FORMAT) != 0)
		digest_invalid(psprintf("format must be \"%s\"", DIGEST_FORMAT));
	if (!kc_is_lower_hex(hash, KC_SHA256_HEX_LEN))
		digest_invalid("hash must be 64 lower-case hex digits");
	if (strlen(time) != DIGEST_TIME_LEN || time[DIGEST_TIME_LEN - 1] != 'Z')
		digest_invalid("digest_time must be a UTC time as YYYY-MM-DDTHH:MM:SS.ffffffZ");
	if (!kc_is_lower_hex(key_id, DIGEST_KEY_ID_LEN))
		digest_invalid("key_id must be 16 lower-case hex digits");
	if (!kc_is_lower_hex(sig, KC_SHA256_HEX_LEN) || !kc_unhex(sig, KC_SHA256_HEX_LEN, given, KC_SHA256_LEN))
		digest_invalid("signature must be 64 lower-case hex digits");
	strcpy(d->hash, hash);
	strlcpy(d->digest_time, time, sizeof(d->digest_time));
	strcpy(d->key_id, key_id);

	if ((d->tenant_id == NULL) != (tenant_id == NULL) ||
		(tenant_id != NULL && strcmp(d->tenant_id, tenant_id) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit digest is of the chain of %s%s%s, not of %s%s%s",
						d->tenant_id ? "tenant \"" : "rows without a tenant",
						d->tenant_id ? d->tenant_id : "", d->tenant_id ? "\"" : "",
						tenant_id ? "tenant \"" : "rows without a tenant",
						tenant_id ? tenant_id : "", tenant_id ? "\"" : ""),
				 errhint("Verify each chain with a digest of that chain.")));
	if (!digest_key_lookup(d->key_id, key))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit digest was signed with key %s, which this database does not hold", d->key_id),
				 errhint("A digest verifies in the database that made it, or in a restore of its dump. Outside the database, test/verify_audit_chain.py checks a chain against a digest without the key.")));
	digest_sign(d, key, mac);
	explicit_bzero(key, sizeof(key));
	if (!kc_equal_ct(mac, given, KC_SHA256_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("audit digest signature does not match: the digest was altered, or was not made by this database"),
				 errhint("Verify with the digest exactly as kaireon.audit_digest returned it.")));
}

/* The digest as the jsonb kaireon.audit_digest returns. */
static Datum
digest_jsonb(const AuditDigest *d, const char *signature)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"format\":\"%s\",\"tenant_id\":", DIGEST_FORMAT);
	if (d->tenant_id == NULL)
		appendStringInfoString(&buf, "null");
	else
		escape_json(&buf, d->tenant_id);
	appendStringInfo(&buf, ",\"id\":" INT64_FORMAT ",\"chain_seq\":" INT64_FORMAT
					 ",\"hash\":\"%s\",\"digest_time\":\"%s\",\"key_id\":\"%s\",\"signature\":\"%s\"}",
					 d->id, d->chain_seq, d->hash, d->digest_time, d->key_id, signature);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/*
 * kaireon.audit_digest(tenant_id): a signed digest of the chain's last
 * committed row, after checking that the chain head and that row agree.
 */
Datum
kaireon_audit_digest(PG_FUNCTION_ARGS)
{
	const char *tenant_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	AuditDigest d;
	int64		last_id;
	int64		last_seq;
	char		last_hash[KC_SHA256_HEX_LEN + 1];
	uint8		key[DIGEST_KEY_LEN];
	uint8		mac[KC_SHA256_LEN];
	char		signature[KC_SHA256_HEX_LEN + 1];
	Oid			save_userid;
	int			save_sec;
	Datum		result;

	kaireon_audit_check_chain_access(tenant_id);
	if (kaireon_audit_pending_head(tenant_id, &last_id, &last_seq, last_hash))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this transaction has appended to the audit chain of %s%s%s, which is not committed yet",
						tenant_id ? "tenant \"" : "rows without a tenant", tenant_id ? tenant_id : "",
						tenant_id ? "\"" : ""),
				 errhint("Take the digest after the transaction commits: a digest names committed rows only.")));

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kaireon_audit_require_chain(tenant_id);
	kaireon_audit_chain_end(tenant_id, &last_id, &last_seq, last_hash);

	memset(&d, 0, sizeof(d));
	d.tenant_id = tenant_id;
	d.id = last_id;
	d.chain_seq = last_seq;
	strcpy(d.hash, last_hash);
	strlcpy(d.digest_time, kaireon_audit_time_text(GetCurrentTimestamp()), sizeof(d.digest_time));
	digest_key_current(d.key_id, key);
	digest_sign(&d, key, mac);
	explicit_bzero(key, sizeof(key));
	kc_hex(mac, KC_SHA256_LEN, signature);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);

	result = digest_jsonb(&d, signature);
	PG_RETURN_DATUM(result);
}
