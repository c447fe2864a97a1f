/*
 * util/draw.h
 *	  Deterministic draws: a string's 64-bit hash under a seed, and a 64-bit
 *	  value's top 53 bits as a double uniform in [0, 1).  The one home of the
 *	  arithmetic behind every draw kaireon fixes by its inputs instead of a
 *	  random source (a creative per recommendation, decision/creatives.c; an
 *	  arbitration arm per recommendation, arbitration/realtime.c; the solver's
 *	  tie-breaking perturbation, campaign/solver.c), so a draw repeats exactly
 *	  for the same inputs on every node and in every release.
 */
#ifndef KAIREON_UTIL_DRAW_H
#define KAIREON_UTIL_DRAW_H

#include "postgres.h"

#include "common/hashfn.h"

/* The 64-bit hash of a NUL-terminated string under a seed (hash_bytes_extended over its bytes). */
static inline uint64
kaireon_string_hash(const char *s, uint64 seed)
{
	return hash_bytes_extended((const unsigned char *) s, strlen(s), seed);
}

/* A 64-bit value as a double uniform in [0, 1): its top 53 bits over 2^53 (exact in a double). */
static inline double
kaireon_unit_interval(uint64 h)
{
	return (double) (h >> 11) / (double) (UINT64CONST(1) << 53);
}

#endif							/* KAIREON_UTIL_DRAW_H */
