/*
 * solver.h
 *	  The Lagrangian assignment solver of batch arbitration (docs/arbitration.md).
 *
 * The problem: customers i, each with candidates j (an offer on a channel,
 * with a value v_ij > 0, some of them forced: mandatory offers); choose at
 * most m candidates per customer, every forced one included, maximising the
 * total value, subject to global constraints sum_ij a_kij x_ij <= b_k and,
 * per customer, per-response caps sum_j c_rj x_ij <= d_r.  Costs depend only
 * on the candidate's "pair" (offer x channel), so they are a small dense
 * table.  The solver prices the global constraints with dual prices lambda_k
 * (found by coordinate bisection, then projected subgradient steps), assigns
 * each customer its best candidates by v - lambda . a, repairs any remaining
 * violation greedily and fills what capacity is left, and reports the primal
 * value, the dual bound (the Lagrangian dual function at the best lambda, an
 * upper bound of the LP relaxation's optimum) and the relative gap.
 *
 * Pure computation over arrays: no SPI, no catalog access.  Large arrays are
 * allocated with MemoryContextAllocHuge in the current memory context.
 */
#ifndef KAIREON_ARB_SOLVER_H
#define KAIREON_ARB_SOLVER_H

#include "postgres.h"

#include "campaign/store.h"

/* How hard to try. */
typedef struct KArbOptions
{
	double		tolerance;		/* stop when the relative duality gap is at most this */
	int			max_iterations; /* dual function evaluations */
} KArbOptions;

/* What the solver found. */
typedef struct KArbSolution
{
	double	   *lambda;			/* nk dual prices of the best dual bound */
	double	   *used;			/* nk: consumption of the assignment */
	bool	   *selected;		/* ncand: assigned */
	double		primal;			/* value of the assignment */
	double		dual;			/* best (lowest) dual bound found */
	double		gap;			/* (dual - primal) / max(|dual|, 1e-12) */
	int			iterations;		/* dual function evaluations */
	bool		converged;		/* gap within tolerance */
	int64		nselected;
	int64		removed;		/* assignments removed by the repair */
	int64		filled;			/* assignments added by the fill */
	int64		exchanged;		/* moves applied by exchanges between customers (exchange.c) */
	const char *method;			/* "none", "bisection", "bisection+subgradient" */
} KArbSolution;

extern void karb_solve(const KArbProblem *p, const KArbOptions *opt, KArbSolution *s);

#endif							/* KAIREON_ARB_SOLVER_H */
