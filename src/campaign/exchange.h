/*
 * exchange.h
 *	  Exchanges between customers (exchange.c): the last step of the batch
 *	  solver's primal recovery.
 */
#ifndef KAIREON_ARB_EXCHANGE_H
#define KAIREON_ARB_EXCHANGE_H

#include "campaign/store.h"

/*
 * Improve a feasible assignment by exchanges between customers (an upgrade of
 * one paid for by downgrades of others that free what it needs); returns the
 * moves applied.
 */
extern int64 karb_exchange(const KArbProblem *p, bool *selected, double *used);

#endif							/* KAIREON_ARB_EXCHANGE_H */
