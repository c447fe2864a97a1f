/*
 * arbitration/arbitration.c
 *	  Module entry of arbitration: its settings.  The work is in
 *	  constraints.c (the cross-offer constraints and the capacities they
 *	  price), duals.c (the dual prices and their update), rtconfig.c (the
 *	  per-tenant arbitration configuration: PRIE weights of the arbitration
 *	  profiles, prices), realtime.c (prices and PRIE in recommend, through
 *	  hooks.h) and exp3.c (EXP3-IX across weight vectors); batch campaigns and
 *	  their Lagrangian solve are one layer up, in campaign/.  See
 *	  docs/arbitration.md.
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
