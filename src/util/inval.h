/*
 * util/inval.h
 *	  One relcache invalidation callback for all of kaireon's caches
 *	  (util/inval.c).
 */
#ifndef KAIREON_UTIL_INVAL_H
#define KAIREON_UTIL_INVAL_H

#include "postgres.h"

#include "utils/inval.h"

extern void kaireon_register_relcache_callback(RelcacheCallbackFunction func, Datum arg);

#endif
