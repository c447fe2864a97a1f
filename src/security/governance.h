/*
 * security/governance.h
 *	  The C side of four-eyes governance (security/governance.c): SQL
 *	  functions and triggers only, and the module init.
 */
#ifndef KAIREON_SECURITY_GOVERNANCE_H
#define KAIREON_SECURITY_GOVERNANCE_H

#include "postgres.h"

/* module init (kaireon.c): kaireon.applying_approval */
extern void kaireon_governance_init(void);

#endif							/* KAIREON_SECURITY_GOVERNANCE_H */
