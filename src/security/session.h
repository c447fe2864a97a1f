/*
 * security/session.h
 *	  The tenant a session acts for, and the tenant access checks
 *	  (security/session.c; the pins and the protocol of their caches are
 *	  described at the top of that file).
 */
#ifndef KAIREON_SECURITY_SESSION_H
#define KAIREON_SECURITY_SESSION_H

#include "postgres.h"

/* module init (kaireon.c): the session settings; the prefix is reserved last */
extern void kaireon_session_init(void);
extern void kaireon_session_reserve_prefix(void);

/* the tenant a session acts for */
extern const char *kaireon_current_tenant(void);
extern void kaireon_check_tenant_access(const char *tenant_id);
/* the tenant a confined or pinned session is held to whatever its rights, else NULL */
extern const char *kaireon_restricted_tenant(void);

/* while a tenant's stored SQL runs (confine.c): confine the session to tenant_id, NULL to end */
extern const char *kaireon_confine_tenant(const char *tenant_id);

#endif							/* KAIREON_SECURITY_SESSION_H */
