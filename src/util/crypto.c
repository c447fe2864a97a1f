/*
 * util/crypto.c
 *	  OpenSSL wrapper: SHA-256 (one-shot and incremental), HMAC-SHA256,
 *	  AES-256-GCM, constant-time comparison and hex helpers.  Only this file
 *	  includes OpenSSL headers.
 *
 *	  OpenSSL allocates with malloc, and an ereport(ERROR) longjmps past any
 *	  cleanup.  So nothing here raises an error while it holds an OpenSSL
 *	  object: the digest context of the incremental hash is created once per
 *	  backend and reused (EVP_DigestInit_ex resets it), and the cipher
 *	  context is freed before a failure is reported.  Failures of OpenSSL
 *	  itself are can't-happen cases (elog).
 */
#include "postgres.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "utils/builtins.h"

#include "util/crypto.h"

/* The digest algorithm, fetched once (an implicit fetch per hash is slow in OpenSSL 3). */
static EVP_MD *sha256_md = NULL;

/* The context of the incremental hash, reused for every hash of this backend. */
static EVP_MD_CTX *sha256_ctx = NULL;

/* Fetch SHA-256 and create the reusable context on first use. */
static void
kc_sha256_setup(void)
{
	if (sha256_md == NULL)
	{
		sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (sha256_md == NULL)
			elog(ERROR, "OpenSSL has no SHA-256 implementation");
	}
	if (sha256_ctx == NULL)
	{
		sha256_ctx = EVP_MD_CTX_new();
		if (sha256_ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory creating a SHA-256 context")));
	}
}

/* Start an incremental SHA-256 (any unfinished one is discarded). */
void
kc_sha256_begin(void)
{
	kc_sha256_setup();
	if (EVP_DigestInit_ex(sha256_ctx, sha256_md, NULL) != 1)
		elog(ERROR, "EVP_DigestInit_ex failed");
}

/* Feed bytes to the incremental SHA-256. */
void
kc_sha256_update(const void *data, size_t len)
{
	if (len > 0 && EVP_DigestUpdate(sha256_ctx, data, len) != 1)
		elog(ERROR, "EVP_DigestUpdate failed");
}

/* Finish the incremental SHA-256 and write its lower-case hex. */
void
kc_sha256_finish_hex(char out[KC_SHA256_HEX_LEN + 1])
{
	uint8		md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_DigestFinal_ex(sha256_ctx, md, &mdlen) != 1 || mdlen != KC_SHA256_LEN)
		elog(ERROR, "EVP_DigestFinal_ex failed");
	kc_hex(md, KC_SHA256_LEN, out);
}

/* SHA-256 of one buffer. */
void
kc_sha256(const void *data, size_t len, uint8 out[KC_SHA256_LEN])
{
	unsigned int mdlen = 0;

	kc_sha256_begin();
	kc_sha256_update(data, len);
	if (EVP_DigestFinal_ex(sha256_ctx, out, &mdlen) != 1 || mdlen != KC_SHA256_LEN)
		elog(ERROR, "EVP_DigestFinal_ex failed");
}

/* HMAC-SHA256 of one buffer under key. */
void
kc_hmac_sha256(const uint8 *key, size_t keylen, const void *data, size_t len,
			   uint8 out[KC_SHA256_LEN])
{
	unsigned int mdlen = 0;

	kc_sha256_setup();
	if (HMAC(sha256_md, key, (int) keylen, data, len, out, &mdlen) == NULL ||
		mdlen != KC_SHA256_LEN)
		elog(ERROR, "HMAC-SHA256 failed");
}

/* AES-256-GCM encryption of len bytes with additional authenticated data. */
void
kc_aes_gcm_encrypt(const uint8 key[KC_AES_KEY_LEN], const uint8 nonce[KC_GCM_NONCE_LEN],
				   const void *aad, size_t aadlen,
				   const void *plain, size_t len,
				   uint8 *cipher, uint8 tag[KC_GCM_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			outl = 0;
	bool		ok;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory creating a cipher context")));
	ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KC_GCM_NONCE_LEN, NULL) == 1 &&
		EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
		(aadlen == 0 || EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1) &&
		(len == 0 || EVP_EncryptUpdate(ctx, cipher, &outl, plain, (int) len) == 1) &&
		EVP_EncryptFinal_ex(ctx, cipher + (len == 0 ? 0 : outl), &outl) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, KC_GCM_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		elog(ERROR, "AES-256-GCM encryption failed");
}

/* AES-256-GCM decryption; false when the tag (key, nonce, data or AAD) does not match. */
bool
kc_aes_gcm_decrypt(const uint8 key[KC_AES_KEY_LEN], const uint8 nonce[KC_GCM_NONCE_LEN],
				   const void *aad, size_t aadlen,
				   const uint8 *cipher, size_t len,
				   const uint8 tag[KC_GCM_TAG_LEN], uint8 *plain)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int			outl = 0;
	uint8		tagcopy[KC_GCM_TAG_LEN];
	bool		setup;
	bool		ok;

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory creating a cipher context")));
	memcpy(tagcopy, tag, KC_GCM_TAG_LEN);
	setup = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, KC_GCM_NONCE_LEN, NULL) == 1 &&
		EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) == 1 &&
		(aadlen == 0 || EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int) aadlen) == 1) &&
		(len == 0 || EVP_DecryptUpdate(ctx, plain, &outl, cipher, (int) len) == 1) &&
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, KC_GCM_TAG_LEN, tagcopy) == 1;
	/* the final step is where a wrong tag shows */
	ok = setup && EVP_DecryptFinal_ex(ctx, plain + (len == 0 ? 0 : outl), &outl) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!setup)
		elog(ERROR, "AES-256-GCM decryption could not start");
	return ok;
}

/* Constant-time equality of two buffers of len bytes. */
bool
kc_equal_ct(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

/* Lower-case hex of len bytes (the server's hex_encode); out holds 2 * len + 1 bytes. */
void
kc_hex(const uint8 *data, size_t len, char *out)
{
	uint64		n = hex_encode((const char *) data, len, out);

	out[n] = '\0';
}

/* Decode exactly 2 * len hex digits; false (nothing raised) for any other input. */
bool
kc_unhex(const char *hex, size_t hexlen, uint8 *out, size_t len)
{
	if (hexlen != 2 * len || strspn(hex, "0123456789abcdefABCDEF") < hexlen)
		return false;
	/* validated above, so the server's hex_decode cannot raise */
	return hex_decode(hex, hexlen, (char *) out) == len;
}

/* Whether s is exactly len lower-case hex digits (as kc_hex writes them). */
bool
kc_is_lower_hex(const char *s, size_t len)
{
	return strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}
