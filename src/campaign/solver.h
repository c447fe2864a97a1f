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

/* Cost of pair pr on global constraint k, and on per-response cap r. */
#define KARB_PAIR_COST(p, pr, k) ((p)->cost[(int64) (pr) * (p)->nk + (k)])
#define KARB_PAIR_RCOST(p, pr, r) ((p)->rcost[(int64) (pr) * (p)->nr + (r)])

/* A candidate store that grows customer by customer (campaign.c fills it). */
typedef struct KArbProblem
{
	int			m;				/* at most m candidates per customer */
	int			npairs;			/* offer x channel pairs */
	int			nk;				/* global constraints */
	double	   *cost;			/* npairs * nk: cost of a pair on constraint k */
	double	   *cap;			/* nk: capacity left for this run */
	int			nr;				/* per-response caps */
	double	   *rcost;			/* npairs * nr */
	double	   *rcap;			/* nr */

	int			ncust;
	int64		ncand;
	int64	   *start;			/* ncust + 1 offsets into the candidate arrays */
	int32	   *pair;			/* candidate's pair */
	double	   *value;			/* candidate's value (the flow's score) */
	bool	   *forced;			/* mandatory: always assigned */
	int32	   *tag;			/* the caller's note (campaign.c: the creative) */

	/* growth bookkeeping */
	int			cust_alloc;
	int64		cand_alloc;
	int64		offered;		/* candidates offered to karb_add_customer before pruning */
} KArbProblem;

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

/* A huge (> 1 GB allowed) zeroed allocation in the current context (store.c). */
extern void *karb_huge_alloc0(Size size);

extern void karb_problem_init(KArbProblem *p, int m, int npairs, int nk, int nr);

/*
 * Add one customer's candidates (pair, value, forced), pruning those that can
 * never be assigned at any prices (docs/arbitration.md, "Pruning").
 */
extern void karb_add_customer(KArbProblem *p, int n, const int32 *pair, const double *value,
							  const bool *forced, const int32 *tag);

/*
 * Are the forced assignments alone within every global capacity?  When not,
 * *k is the first constraint they exceed and *need what they use of it.
 */
extern bool karb_forced_feasible(const KArbProblem *p, int *k, double *need);

/*
 * Improve a feasible assignment by exchanges between two customers (an upgrade
 * paired with a downgrade that frees what it needs); returns the moves applied.
 */
extern int64 karb_exchange(const KArbProblem *p, bool *selected, double *used);

extern void karb_solve(const KArbProblem *p, const KArbOptions *opt, KArbSolution *s);

#endif							/* KAIREON_ARB_SOLVER_H */
