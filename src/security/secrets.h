/*
 * security/secrets.h
 *	  API keys, OAuth client secrets and encrypted platform settings
 *	  (security/secrets.c): SQL functions and triggers only, and the module init.
 */
#ifndef KAIREON_SECURITY_SECRETS_H
#define KAIREON_SECURITY_SECRETS_H

#include "postgres.h"

/* module init (kaireon.c): the secret settings (pepper, encryption key) */
extern void kaireon_secrets_init(void);

#endif							/* KAIREON_SECURITY_SECRETS_H */
