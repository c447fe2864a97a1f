/*
 * util/kept.h
 *	  The last bytes kept per backend with what they became (util/kept.c):
 *	  for arguments a client sends unchanged call after call, so that what
 *	  was made of them once is reused while the bytes are the same.
 */
#ifndef KAIREON_UTIL_KEPT_H
#define KAIREON_UTIL_KEPT_H

#include "postgres.h"

/* The largest key kept (larger keys are never kept). */
#define KAIREON_KEPT_MAX 1024

/* One slot: a key and its value in one TopMemoryContext chunk (zero-initialized: nothing kept). */
typedef struct KKept
{
	char	   *chunk;			/* the key, then the value at MAXALIGN(keylen); NULL: nothing kept */
	Size		keylen;
} KKept;

/* The value kept for exactly these key bytes (keylen of them), else NULL. */
extern const void *kaireon_kept_get(const KKept *kept, const void *key, Size keylen);

/* Keep value (valuelen bytes, MAXALIGNed in the chunk) for key, replacing what was kept; a key over KAIREON_KEPT_MAX is not kept. */
extern void kaireon_kept_put(KKept *kept, const void *key, Size keylen, const void *value, Size valuelen);

#endif							/* KAIREON_UTIL_KEPT_H */
