/*
 * util/ids.h
 *	  Identifiers kaireon generates (recommendation and interaction ids).
 */
#ifndef KAIREON_UTIL_IDS_H
#define KAIREON_UTIL_IDS_H

#include "postgres.h"

/* A random (version 4) UUID as text, palloc'd. */
extern char *kaireon_new_uuid(void);

#endif							/* KAIREON_UTIL_IDS_H */
