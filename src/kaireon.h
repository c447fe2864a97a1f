/*
 * kaireon.h
 *	  Declarations shared between kaireon's modules: each module's init
 *	  function (called once from _PG_init) and the small cross-module helpers.
 */
#ifndef KAIREON_H
#define KAIREON_H

#include "postgres.h"

#define KAIREON_VERSION "0.1.0"

/* module init functions, called in this order by _PG_init */
extern void kaireon_session_init(void);
extern void kaireon_json_init(void);
extern void kaireon_config_cache_init(void);
extern void kaireon_scoring_init(void);
extern void kaireon_audit_init(void);
extern void kaireon_secrets_init(void);
extern void kaireon_governance_init(void);
extern void kaireon_jobs_init(void);
extern void kaireon_worker_init(void);
extern void kaireon_session_reserve_prefix(void);

/* session.c: the tenant a session acts for */
extern const char *kaireon_current_tenant(void);
extern void kaireon_check_tenant_access(const char *tenant_id);
extern const char *kaireon_confine_tenant(const char *tenant_id);

/* confine.c: running a tenant's stored SQL with no more rights than the tenant */
typedef void (*KConfinedFn) (void *arg);
extern void kaireon_check_stored_select(const char *sql, const char *what);
extern void kaireon_run_confined(const char *tenant_id, KConfinedFn fn, void *arg);
extern struct PortalData *kaireon_confined_cursor(const char *name, const char *sql);

#endif							/* KAIREON_H */
