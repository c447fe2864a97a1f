/*
 * security/owner.h
 *	  Acting as the owner of one of kaireon's tables (security/owner.c).
 */
#ifndef KAIREON_SECURITY_OWNER_H
#define KAIREON_SECURITY_OWNER_H

#include "postgres.h"

extern void kaireon_switch_to_owner(Oid relid, Oid *save_userid, int *save_sec);

#endif							/* KAIREON_SECURITY_OWNER_H */
