/*
 * arbitration.c
 *	  Module entry of arbitration: its settings.  The work is in campaign.c
 *	  (batch campaigns), solver.c (the Lagrangian solve), constraints.c (the
 *	  constraints it prices), realtime.c (dual prices in recommend and their
 *	  update), profiles.c (PRIE weights, arbitration profiles) and exp3.c
 *	  (EXP3-IX across weight vectors).  See docs/arbitration.md.
 */
#include "postgres.h"

#include "utils/guc.h"

#include "arbitration/arbitration.h"

/* The settings (GUCs, docs/arbitration.md); the campaign solve reads the first two. */
double		karb_tolerance = 0.001;
int			karb_max_iterations = 500;
int			karb_refresh_ms = 1000;

/* Register the module's settings. */
void
kaireon_arbitration_init(void)
{
	DefineCustomRealVariable("kaireon.arbitration_tolerance",
							 "Relative duality gap at which a campaign's dual solve stops.",
							 "run_campaign and simulate stop when (dual bound - primal value) / dual bound is at most this.",
							 &karb_tolerance, 0.001, 0.0, 0.5,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.arbitration_max_iterations",
							"Most dual function evaluations of a campaign's dual solve.",
							NULL,
							&karb_max_iterations, 500, 1, 100000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.arbitration_refresh_ms",
							"How old the dual prices and EXP3-IX weights a backend uses may be, in milliseconds.",
							"0 reads them for every decision.",
							&karb_refresh_ms, 1000, 0, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
}
