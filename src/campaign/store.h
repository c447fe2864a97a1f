/*
 * store.h
 *	  The candidate store of the batch solver (store.c): customers' candidates
 *	  with their values and the offer x channel pairs' costs, added customer
 *	  by customer and pruned; solver.c and exchange.c read it.
 *
 * Pure computation over arrays: no SPI, no catalog access.  Large arrays are
 * allocated with MemoryContextAllocHuge in the current memory context.
 */
#ifndef KAIREON_ARB_STORE_H
#define KAIREON_ARB_STORE_H

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

#endif							/* KAIREON_ARB_STORE_H */
