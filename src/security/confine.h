/*
 * security/confine.h
 *	  Running a tenant's stored SQL with no more rights than the tenant
 *	  (security/confine.c; docs/arbitration.md#stored-sql-runs-confined).
 */
#ifndef KAIREON_SECURITY_CONFINE_H
#define KAIREON_SECURITY_CONFINE_H

#include "postgres.h"

typedef void (*KConfinedFn) (void *arg);
extern void kaireon_confine_init(void);
extern void kaireon_check_stored_select(const char *sql, const char *what);
extern void kaireon_run_confined(const char *tenant_id, KConfinedFn fn, void *arg);
extern struct PortalData *kaireon_confined_cursor(const char *name, const char *sql);

#endif							/* KAIREON_SECURITY_CONFINE_H */
