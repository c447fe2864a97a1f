/*
 * config/compile.h
 *	  Compiling a tenant's configuration, for the files of config/ that take
 *	  part: the cache (cache.c) calls compile.c; compile.c runs the steps of
 *	  eligibility.c among its own; both read rows with rows.c.  Calls run
 *	  downward only:
 *
 *	    cache.c -> compile.c -> eligibility.c -> rows.c, lookup.c
 *	                         -> rows.c, lookup.c
 *
 * Nothing outside config/ includes this header: the compiled structs and
 * kaireon_config_get are in config.h.
 */
#ifndef KAIREON_CONFIG_COMPILE_H
#define KAIREON_CONFIG_COMPILE_H

#include "config/config.h"

/* compile.c: a tenant's configuration compiled into a memory context of its own, and freed */
extern KTenantConfig *kaireon_config_compile(const char *tenant_id, int64 version);
extern void kaireon_config_free(KTenantConfig *cfg);

/* eligibility.c: segments, qualification rules, contact policies, guardrails, their binding per offer */
extern void kaireon_load_segments(KTenantConfig *cfg);
extern void kaireon_load_rules(KTenantConfig *cfg);
extern void kaireon_load_policies(KTenantConfig *cfg);
extern void kaireon_load_guardrails(KTenantConfig *cfg);
extern void kaireon_load_policy_snapshot(KTenantConfig *cfg);
extern void kaireon_prepare_segment_plan(KTenantConfig *cfg);
extern void kaireon_bind_offers(KTenantConfig *cfg);

/* rows.c: reading configuration rows (inside SPI, into the configuration's context) */
extern json_t *kcfg_rows(const char *sql, const char *tenant_id, const char *what);
extern const char *kcfg_str(const json_t *obj, const char *key);
extern double kcfg_finite(const KTenantConfig *cfg, const json_t *row, const char *table, const char *key,
						  double dflt);
extern KScopeKind kcfg_scope_kind(const char *s);
extern int	kcfg_days_mask(json_t *days);

#endif							/* KAIREON_CONFIG_COMPILE_H */
