/*
 * util/crypto.h
 *	  The only doorway to OpenSSL: SHA-256, HMAC-SHA256, AES-256-GCM and a
 *	  constant-time comparison, with every buffer the caller sees palloc'd.
 */
#ifndef KAIREON_UTIL_CRYPTO_H
#define KAIREON_UTIL_CRYPTO_H

#include "postgres.h"

#define KC_SHA256_LEN		32
#define KC_SHA256_HEX_LEN	64
#define KC_AES_KEY_LEN		32
#define KC_GCM_NONCE_LEN	12
#define KC_GCM_TAG_LEN		16

/* Incremental SHA-256 over several pieces (one hash at a time per backend). */
extern void kc_sha256_begin(void);
extern void kc_sha256_update(const void *data, size_t len);
extern void kc_sha256_finish_hex(char out[KC_SHA256_HEX_LEN + 1]);

/* One-shot digests. */
extern void kc_sha256(const void *data, size_t len, uint8 out[KC_SHA256_LEN]);
extern void kc_hmac_sha256(const uint8 *key, size_t keylen, const void *data, size_t len,
						   uint8 out[KC_SHA256_LEN]);

/* AES-256-GCM; ciphertext has the plaintext's length.  decrypt returns false on a bad tag. */
extern void kc_aes_gcm_encrypt(const uint8 key[KC_AES_KEY_LEN], const uint8 nonce[KC_GCM_NONCE_LEN],
							   const void *aad, size_t aadlen,
							   const void *plain, size_t len,
							   uint8 *cipher, uint8 tag[KC_GCM_TAG_LEN]);
extern bool kc_aes_gcm_decrypt(const uint8 key[KC_AES_KEY_LEN], const uint8 nonce[KC_GCM_NONCE_LEN],
							   const void *aad, size_t aadlen,
							   const uint8 *cipher, size_t len,
							   const uint8 tag[KC_GCM_TAG_LEN], uint8 *plain);

/* Comparison whose time does not depend on where the buffers differ. */
extern bool kc_equal_ct(const void *a, const void *b, size_t len);

/* Lower-case hex of len bytes into out (2 * len + 1 bytes). */
extern void kc_hex(const uint8 *data, size_t len, char *out);

/* Whether s is exactly len lower-case hex digits (as kc_hex writes them). */
extern bool kc_is_lower_hex(const char *s, size_t len);

/* Decode exactly 2 * len hex digits into out; false (nothing raised) on bad input. */
extern bool kc_unhex(const char *hex, size_t hexlen, uint8 *out, size_t len);

#endif							/* KAIREON_UTIL_CRYPTO_H */
