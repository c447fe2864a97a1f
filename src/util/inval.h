/*
 * util/inval.h
 *	  One relcache invalidation callback for all of kaireon's caches, and
 *	  one counter of the changes of rights (util/inval.c).
 */
#ifndef KAIREON_UTIL_INVAL_H
#define KAIREON_UTIL_INVAL_H

#include "postgres.h"

#include "utils/inval.h"

extern void kaireon_register_relcache_callback(RelcacheCallbackFunction func, Datum arg);
/* how many times a function, a role or a role membership changed (for caches of EXECUTE rights) */
extern uint64 kaireon_rights_changes(void);

#endif
