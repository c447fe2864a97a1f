/*
 * config/rows.h
 *	  Reading configuration rows while compiling them (rows.c), for
 *	  compile.c and eligibility.c: inside SPI, into the configuration's
 *	  memory context.
 */
#ifndef KAIREON_CONFIG_ROWS_H
#define KAIREON_CONFIG_ROWS_H

#include "config/config.h"

extern json_t *kcfg_rows(const char *sql, const char *tenant_id, const char *what);
extern const char *kcfg_str(const json_t *obj, const char *key);
extern double kcfg_finite(const KTenantConfig *cfg, const json_t *row, const char *table, const char *key,
						  double dflt);
extern KScopeKind kcfg_scope_kind(const char *s);
extern int	kcfg_days_mask(json_t *days);

#endif							/* KAIREON_CONFIG_ROWS_H */
