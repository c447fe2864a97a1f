/*
 * kaireon.h
 *	  The module inits _PG_init calls (kaireon.c) that no header of their own
 *	  declares; every other module declares its init in its header (util/json.h,
 *	  security/session.h, security/secrets.h, security/governance.h,
 *	  audit/audit.h, scoring/scoring.h, arbitration/arbitration.h,
 *	  maintenance/maintenance.h).
 *
 * Compatibility: it still includes security/session.h (the tenant a session
 * acts for) and security/confine.h (running a tenant's stored SQL) for the
 * files that include kaireon.h for those; new code includes them directly.
 */
#ifndef KAIREON_H
#define KAIREON_H

#include "postgres.h"

#define KAIREON_VERSION "0.1.0"

/* config/cache.c */
extern void kaireon_config_cache_init(void);

/* compatibility includes (to go once no file relies on them) */
#include "security/session.h"
#include "security/confine.h"

#endif							/* KAIREON_H */
