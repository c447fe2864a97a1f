/*
 * config/compile.h
 *	  Compiling a tenant's configuration (compile.c), for the configuration
 *	  cache (cache.c).  Calls run downward only:
 *
 *	    cache.c -> compile.c -> eligibility.c -> rows.c, lookup.c
 *	                         -> rows.c, lookup.c
 *
 * Nothing outside config/ includes this header: the compiled structs and
 * kaireon_config_get are in config.h.
 */
#ifndef KAIREON_CONFIG_COMPILE_H
#define KAIREON_CONFIG_COMPILE_H

#include "utils/relcache.h"

#include "config/config.h"

/* A tenant's configuration compiled into a memory context of its own, and freed. */
extern KTenantConfig *kaireon_config_compile(const char *tenant_id, int64 version);
extern void kaireon_config_free(KTenantConfig *cfg);
extern Oid	kaireon_primary_key(Relation rel, AttrNumber *second);

#endif							/* KAIREON_CONFIG_COMPILE_H */
