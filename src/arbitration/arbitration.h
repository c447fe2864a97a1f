/*
 * arbitration.h
 *	  The arbitration module's interface to the rest of kaireon: its init,
 *	  its settings, and the hooks the recommend pipeline and respond call
 *	  (docs/arbitration.md).
 */
#ifndef KAIREON_ARBITRATION_H
#define KAIREON_ARBITRATION_H

#include "postgres.h"

/* settings (arbitration.c) */
extern double karb_tolerance;		/* kaireon.arbitration_tolerance */
extern int	karb_max_iterations;	/* kaireon.arbitration_max_iterations */
extern int	karb_refresh_ms;		/* kaireon.arbitration_refresh_ms */

extern void kaireon_arbitration_init(void);

#endif							/* KAIREON_ARBITRATION_H */
