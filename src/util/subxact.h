/*
 * util/subxact.h
 *	  Running a step in an internal subtransaction whose error is returned
 *	  rather than raised (util/subxact.c).
 */
#ifndef KAIREON_UTIL_SUBXACT_H
#define KAIREON_UTIL_SUBXACT_H

#include "postgres.h"

/* run fn(arg) in a subtransaction: NULL, or the error it raised (rolled back; cancels re-raised) */
extern ErrorData *ksubxact_run(void (*fn) (void *arg), void *arg);

#endif							/* KAIREON_UTIL_SUBXACT_H */
