/*
 * util/collation.h
 *	  Collations that order text as its bytes (collation.c).
 */
#ifndef KAIREON_UTIL_COLLATION_H
#define KAIREON_UTIL_COLLATION_H

#include "postgres.h"

/* Whether coll orders and matches text exactly as "C" does (its bytes). */
extern bool kaireon_bytewise_collation(Oid coll);

#endif							/* KAIREON_UTIL_COLLATION_H */
