/*
 * solver.c
 *	  Lagrangian relaxation of the batch assignment problem (solver.h): the
 *	  dual function over the candidate store (store.c), the dual solve
 *	  (coordinate bisection, then projected subgradient steps with Polyak's
 *	  step size), and the greedy repair and fill that turn the assignment at
 *	  the dual prices into a feasible one, polished at the end by exchanges
 *	  between customers (exchange.c).  docs/arbitration.md gives the
 *	  formulas; this file follows its notation.
 *
 * The dual function.  For lambda >= 0,
 *     L(lambda) = sum_k lambda_k b_k + sum_i max_{S_i} sum_{j in S_i} (v_ij - lambda . a_ij)
 * where S_i ranges over the customer's feasible sets (every forced candidate,
 * at most m in all, within the per-response caps).  Without per-response caps,
 * or with caps whose covered sets are nested or disjoint (one category per
 * offer), the greedy choice below is that maximum, so L(lambda) is exactly the
 * Lagrangian dual of the LP relaxation and bounds its optimum from above.
 *
 * Pure computation: no SPI, no catalog.  CHECK_FOR_INTERRUPTS in every pass.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "util/draw.h"

#include "campaign/exchange.h"
#include "campaign/solver.h"

/*
 * Tie-breaking.  Scores computed by rules take few distinct values, so many
 * customers are exactly alike and, at the optimal prices, indifferent between
 * the same options: the assignment at those prices then moves whole blocks of
 * customers at once and no price splits them as the LP optimum does.  The
 * solver therefore works with values raised by a tiny deterministic amount per
 * candidate, v' = v (1 + PERTURB u(c)) with u in [0, 1) from a hash of the
 * candidate's position: ties become rare and prices can split a block one
 * customer at a time.  Since v' >= v, the dual function of v' still bounds the
 * LP optimum of v from above; primal values are reported with v.
 */
#define PERTURB 1e-7

/* A uniform number in [0, 1) fixed by a candidate position (splitmix64). */
static inline double
unit_hash(int64 c)
{
	uint64		z = (uint64) c + UINT64CONST(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64CONST(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64CONST(0x94d049bb133111eb);
	z ^= z >> 31;
	return kaireon_unit_interval(z);
}

/* The value the solver works with (see "Tie-breaking"). */
static inline double
work_value(const KArbProblem *p, int64 c)
{
	return p->value[c] * (1 + PERTURB * unit_hash(c));
}

/* ---- the per-customer subproblem ---- */

/* Scratch space for one pass. */
typedef struct Pass
{
	const KArbProblem *p;
	double	   *pen;			/* npairs: lambda . a of each pair */
	double	   *r;				/* reduced values of the current customer */
	int		   *idx;			/* candidate positions of the current customer */
	double	   *ruse;			/* nr: per-response usage of the current customer */
	int			maxn;			/* largest customer */
} Pass;

/* Sorting: by reduced value, highest first, then position. */
static int
reduced_cmp(const void *a, const void *b, void *arg)
{
	const double *r = (const double *) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	if (r[x] != r[y])
		return r[x] > r[y] ? -1 : 1;
	return x - y;
}

/* Would the candidate (position c) fit the customer's per-response caps? */
static bool
fits_response(const Pass *ps, int64 c)
{
	const KArbProblem *p = ps->p;

	for (int r = 0; r < p->nr; r++)
	{
		double		a = KARB_PAIR_RCOST(p, p->pair[c], r);

		if (a > 0 && ps->ruse[r] + a > p->rcap[r] * (1 + 1e-12) + 1e-12)
			return false;
	}
	return true;
}

/* Count the candidate in the customer's per-response usage. */
static void
use_response(Pass *ps, int64 c)
{
	for (int r = 0; r < ps->p->nr; r++)
		ps->ruse[r] += KARB_PAIR_RCOST(ps->p, ps->p->pair[c], r);
}

/*
 * Choose customer i's candidates at the current prices: every forced one,
 * then the best by reduced value among those above zero, up to m in all and
 * within the per-response caps.  Writes the chosen positions to out; returns
 * how many, and adds their reduced values to *lsum.
 */
static int
choose(Pass *ps, int i, int64 *out, double *lsum)
{
	const KArbProblem *p = ps->p;
	int64		s = p->start[i],
				e = p->start[i + 1];
	int			n = (int) (e - s);
	int			nsel = 0,
				nopen = 0;

	if (p->nr > 0)
		memset(ps->ruse, 0, sizeof(double) * p->nr);
	for (int t = 0; t < n; t++)
	{
		int64		c = s + t;
		double		r = work_value(p, c) - ps->pen[p->pair[c]];

		if (p->forced[c])
		{
			out[nsel++] = c;
			*lsum += r;
			if (p->nr > 0)
				use_response(ps, c);
		}
		else if (r > 0)
		{
			ps->r[t] = r;
			ps->idx[nopen++] = t;
		}
	}
	if (nopen == 0 || nsel >= p->m)
		return nsel;
	if (p->nr == 0 && nopen <= p->m - nsel)
	{
		for (int q = 0; q < nopen; q++)
		{
			out[nsel++] = s + ps->idx[q];
			*lsum += ps->r[ps->idx[q]];
		}
		return nsel;
	}
	if (p->nr == 0 && p->m - nsel == 1)
	{
		int			best = ps->idx[0];

		for (int q = 1; q < nopen; q++)
			if (ps->r[ps->idx[q]] > ps->r[best] ||
				(ps->r[ps->idx[q]] == ps->r[best] && ps->idx[q] < best))
				best = ps->idx[q];
		out[nsel++] = s + best;
		*lsum += ps->r[best];
		return nsel;
	}
	qsort_arg(ps->idx, nopen, sizeof(int), reduced_cmp, ps->r);
	for (int q = 0; q < nopen && nsel < p->m; q++)
	{
		int64		c = s + ps->idx[q];

		if (p->nr > 0)
		{
			if (!fits_response(ps, c))
				continue;
			use_response(ps, c);
		}
		out[nsel++] = c;
		*lsum += ps->r[ps->idx[q]];
	}
	return nsel;
}

/* Scratch for passes, sized for the largest customer. */
static void
pass_init(Pass *ps, const KArbProblem *p)
{
	ps->p = p;
	ps->maxn = 1;
	for (int i = 0; i < p->ncust; i++)
		ps->maxn = Max(ps->maxn, (int) (p->start[i + 1] - p->start[i]));
	ps->pen = palloc0(sizeof(double) * Max(p->npairs, 1));
	ps->r = palloc0(sizeof(double) * ps->maxn);
	ps->idx = palloc0(sizeof(int) * ps->maxn);
	ps->ruse = palloc0(sizeof(double) * Max(p->nr, 1));
}

/* Price of each pair at lambda. */
static void
set_prices(Pass *ps, const double *lambda)
{
	const KArbProblem *p = ps->p;

	for (int q = 0; q < p->npairs; q++)
	{
		double		x = 0;

		for (int k = 0; k < p->nk; k++)
			x += lambda[k] * KARB_PAIR_COST(p, q, k);
		ps->pen[q] = x;
	}
}

/*
 * One pass: the dual function at lambda and the consumption g of the
 * customers' choices; with selected, also marks the choices.
 */
static double
evaluate(Pass *ps, const double *lambda, double *g, bool *selected)
{
	const KArbProblem *p = ps->p;
	int64	   *out = palloc(sizeof(int64) * Max(ps->maxn, 1));
	double		l = 0;

	set_prices(ps, lambda);
	for (int k = 0; k < p->nk; k++)
	{
		l += lambda[k] * p->cap[k];
		g[k] = 0;
	}
	if (selected)
		memset(selected, 0, sizeof(bool) * p->ncand);
	for (int i = 0; i < p->ncust; i++)
	{
		int			nsel;

		if ((i & 8191) == 0)
			CHECK_FOR_INTERRUPTS();
		nsel = choose(ps, i, out, &l);
		for (int q = 0; q < nsel; q++)
		{
			int32		pr = p->pair[out[q]];

			for (int k = 0; k < p->nk; k++)
				g[k] += KARB_PAIR_COST(p, pr, k);
			if (selected)
				selected[out[q]] = true;
		}
	}
	pfree(out);
	return l;
}

/* ---- repair and fill ---- */

typedef struct Ranked
{
	double		key;
	int64		c;
} Ranked;

/* Ascending by key, then position. */
static int
ranked_asc(const void *a, const void *b)
{
	const Ranked *x = (const Ranked *) a;
	const Ranked *y = (const Ranked *) b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->c < y->c ? -1 : x->c > y->c ? 1 : 0;
}

/* Descending by key, then position. */
static int
ranked_desc(const void *a, const void *b)
{
	const Ranked *x = (const Ranked *) a;
	const Ranked *y = (const Ranked *) b;

	if (x->key != y->key)
		return x->key > y->key ? -1 : 1;
	return x->c < y->c ? -1 : x->c > y->c ? 1 : 0;
}

/* The customer of a candidate position (binary search over start). */
static int
customer_of(const KArbProblem *p, int64 c)
{
	int			lo = 0,
				hi = p->ncust - 1;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo + 1) / 2;

		if (p->start[mid] <= c)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Per-response usage of customer i's current assignment, into ps->ruse. */
static void
customer_response_use(Pass *ps, int i, const bool *selected)
{
	const KArbProblem *p = ps->p;

	memset(ps->ruse, 0, sizeof(double) * Max(p->nr, 1));
	for (int64 c = p->start[i]; c < p->start[i + 1]; c++)
		if (selected[c])
			use_response(ps, c);
}

/*
 * Add moves: walk the unassigned candidates with a positive value, the
 * highest reduced value first, and assign each that still fits (a free slot,
 * the per-response caps, every capacity).  Returns how many it assigned.
 */
static int64
fill(Pass *ps, bool *selected, double *used, int16 *slots, Ranked *list)
{
	const KArbProblem *p = ps->p;
	int64		nlist = 0,
				added = 0;

	for (int i = 0; i < p->ncust; i++)
	{
		if (slots[i] >= p->m)
			continue;
		for (int64 c = p->start[i]; c < p->start[i + 1]; c++)
			if (!selected[c] && p->value[c] > 0)
			{
				list[nlist].key = work_value(p, c) - ps->pen[p->pair[c]];
				list[nlist].c = c;
				nlist++;
			}
	}
	qsort(list, nlist, sizeof(Ranked), ranked_desc);
	for (int64 q = 0; q < nlist; q++)
	{
		int64		c = list[q].c;
		int			i = customer_of(p, c);
		bool		fits = slots[i] < p->m;

		if ((q & 8191) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int k = 0; k < p->nk && fits; k++)
		{
			double		a = KARB_PAIR_COST(p, p->pair[c], k);

			if (a > 0 && used[k] + a > p->cap[k] * (1 + 1e-12) + 1e-12)
				fits = false;
		}
		if (fits && p->nr > 0)
		{
			customer_response_use(ps, i, selected);
			fits = fits_response(ps, c);
		}
		if (!fits)
			continue;
		selected[c] = true;
		slots[i]++;
		for (int k = 0; k < p->nk; k++)
			used[k] += KARB_PAIR_COST(p, p->pair[c], k);
		added++;
	}
	return added;
}

/*
 * Would trading assigned candidate out for unassigned candidate in (of the
 * same customer) keep every capacity and per-response cap?  Returns the
 * trade's priority: the value gained per share of the capacity left that it
 * uses (the "effective gradient" of multi-dimensional knapsack heuristics),
 * huge when it uses none; 0 when it does not fit or gains nothing.
 */
static double
swap_key(Pass *ps, int i, int64 out, int64 in, const bool *selected, const double *used)
{
	const KArbProblem *p = ps->p;
	double		gain = p->value[in] - p->value[out];
	double		share = 0;

	if (!(gain > 0))
		return 0;
	for (int k = 0; k < p->nk; k++)
	{
		double		d = KARB_PAIR_COST(p, p->pair[in], k) - KARB_PAIR_COST(p, p->pair[out], k);

		if (d > 0)
		{
			double		left = p->cap[k] * (1 + 1e-12) + 1e-12 - used[k];

			if (d > left)
				return 0;
			share += d / Max(left, 1e-12);
		}
	}
	if (p->nr > 0)
	{
		customer_response_use(ps, i, selected);
		for (int r = 0; r < p->nr; r++)
			ps->ruse[r] -= KARB_PAIR_RCOST(p, p->pair[out], r);
		if (!fits_response(ps, in))
			return 0;
	}
	return share > 0 ? gain / share : gain * 1e12;
}

/*
 * Swap moves: each customer's best trade of an assigned ordinary candidate
 * for a more valuable unassigned one that fits; trades applied in order of
 * priority while they still fit.  Returns how many were applied.
 */
static int64
swaps(Pass *ps, bool *selected, double *used, Ranked *list, int64 *outs, int64 *ins)
{
	const KArbProblem *p = ps->p;
	int64		nlist = 0,
				done = 0;

	for (int i = 0; i < p->ncust; i++)
	{
		double		best = 0;

		if ((i & 8191) == 0)
			CHECK_FOR_INTERRUPTS();
		for (int64 out = p->start[i]; out < p->start[i + 1]; out++)
		{
			if (!selected[out] || p->forced[out])
				continue;
			for (int64 in = p->start[i]; in < p->start[i + 1]; in++)
			{
				double		key;

				if (selected[in] || p->value[in] <= p->value[out])
					continue;
				key = swap_key(ps, i, out, in, selected, used);
				if (key > best)
				{
					best = key;
					outs[i] = out;
					ins[i] = in;
				}
			}
		}
		if (best > 0)
		{
			list[nlist].key = best;
			list[nlist].c = i;
			nlist++;
		}
	}
	qsort(list, nlist, sizeof(Ranked), ranked_desc);
	for (int64 q = 0; q < nlist; q++)
	{
		int			i = (int) list[q].c;

		if (swap_key(ps, i, outs[i], ins[i], selected, used) <= 0)
			continue;
		selected[outs[i]] = false;
		selected[ins[i]] = true;
		for (int k = 0; k < p->nk; k++)
			used[k] += KARB_PAIR_COST(p, p->pair[ins[i]], k) - KARB_PAIR_COST(p, p->pair[outs[i]], k);
		done++;
	}
	return done;
}

/* Scratch of the repair, fill, swaps and exchanges, sized for the problem. */
typedef struct Scratch
{
	int16	   *slots;			/* ncust: assigned candidates per customer */
	int64	   *outs;			/* ncust: swaps' candidate out */
	int64	   *ins;			/* ncust: swaps' candidate in */
	Ranked	   *list;			/* max(ncand, ncust) */
} Scratch;

/* Allocate the scratch; slots counted from selected. */
static void
scratch_init(Scratch *sc, const KArbProblem *p, const bool *selected)
{
	sc->slots = karb_huge_alloc0(sizeof(int16) * (Size) Max(p->ncust, 1));
	sc->outs = karb_huge_alloc0(sizeof(int64) * (Size) Max(p->ncust, 1));
	sc->ins = karb_huge_alloc0(sizeof(int64) * (Size) Max(p->ncust, 1));
	sc->list = karb_huge_alloc0(sizeof(Ranked) * (Size) Max(Max(p->ncand, p->ncust), 1));
	for (int i = 0; i < p->ncust; i++)
		for (int64 c = p->start[i]; c < p->start[i + 1]; c++)
			if (selected[c])
				sc->slots[i]++;
}

/* Free the scratch. */
static void
scratch_free(Scratch *sc)
{
	pfree(sc->slots);
	pfree(sc->outs);
	pfree(sc->ins);
	pfree(sc->list);
}

/* Value of an assignment (the real scores). */
static double
assignment_value(const KArbProblem *p, const bool *selected)
{
	double		v = 0;

	for (int64 c = 0; c < p->ncand; c++)
		if (selected[c])
			v += p->value[c];
	return v;
}

/*
 * Make the assignment at lambda feasible and then greedily better: (1) for
 * each violated constraint, unassign the ordinary candidates it covers, the
 * lowest reduced value first, until it holds; (2) alternately add what still
 * fits (fill) and trade assigned candidates for better ones that fit (swaps),
 * until neither changes anything (at most four times).  Returns the primal
 * value; selected and used describe the result.
 */
static double
repair_and_fill(Pass *ps, const double *lambda, bool *selected, double *used, int64 *removed, int64 *filled)
{
	const KArbProblem *p = ps->p;
	Scratch		sc;
	Ranked	   *list;
	int64		nlist = 0;

	(void) evaluate(ps, lambda, used, selected);
	scratch_init(&sc, p, selected);
	list = sc.list;

	/* (1) repair */
	for (int k = 0; k < p->nk; k++)
	{
		if (used[k] <= p->cap[k] * (1 + 1e-12) + 1e-12)
			continue;
		nlist = 0;
		for (int64 c = 0; c < p->ncand; c++)
			if (selected[c] && !p->forced[c] && KARB_PAIR_COST(p, p->pair[c], k) > 0)
			{
				list[nlist].key = work_value(p, c) - ps->pen[p->pair[c]];
				list[nlist].c = c;
				nlist++;
			}
		qsort(list, nlist, sizeof(Ranked), ranked_asc);
		for (int64 q = 0; q < nlist && used[k] > p->cap[k] * (1 + 1e-12) + 1e-12; q++)
		{
			int64		c = list[q].c;

			CHECK_FOR_INTERRUPTS();
			selected[c] = false;
			sc.slots[customer_of(p, c)]--;
			for (int kk = 0; kk < p->nk; kk++)
				used[kk] -= KARB_PAIR_COST(p, p->pair[c], kk);
			(*removed)++;
		}
	}

	/* (2) fill and swaps */
	for (int round = 0; round < 4; round++)
	{
		int64		added = fill(ps, selected, used, sc.slots, list);
		int64		traded = swaps(ps, selected, used, list, sc.outs, sc.ins);

		*filled += added + traded;
		if (added == 0 && traded == 0)
			break;
	}
	scratch_free(&sc);
	return assignment_value(p, selected);
}

/*
 * Polish the best assignment (feasible, with used its consumption): exchanges
 * between customers (exchange.c), then fill and swaps at the prices lambda
 * for what the exchanges freed, while the exchanges change anything (at most
 * four times).  Run once, at the end: an exchange pass costs a few dual
 * evaluations, too much for every repair inside the dual solve.  Returns the
 * primal value; *moves counts the exchanges' moves.
 */
static double
polish(Pass *ps, const double *lambda, bool *selected, double *used, int64 *moves, int64 *filled)
{
	const KArbProblem *p = ps->p;

	set_prices(ps, lambda);
	for (int round = 0; round < 4; round++)
	{
		int64		exchanged = karb_exchange(p, selected, used);
		Scratch		sc;

		if (exchanged == 0)
			break;
		*moves += exchanged;
		scratch_init(&sc, p, selected);
		*filled += fill(ps, selected, used, sc.slots, sc.list);
		*filled += swaps(ps, selected, used, sc.list, sc.outs, sc.ins);
		scratch_free(&sc);
	}
	return assignment_value(p, selected);
}

/* ---- the dual solve ---- */

/* Relative gap between a dual bound and a primal value. */
static double
rel_gap(double dual, double primal)
{
	return (dual - primal) / Max(fabs(dual), 1e-12);
}

/* The solver's running state. */
typedef struct Solve
{
	Pass		ps;
	const KArbOptions *opt;
	double	   *lambda;			/* current prices */
	double	   *g;				/* consumption at the current prices */
	double	   *hi;				/* an upper bound of each price: no covered ordinary candidate is worth it */
	double	   *step;			/* per price: the size of its last move (the next bracket's width) */
	double	   *best_lambda;	/* prices of the best dual bound */
	double		best_dual;
	int			iterations;
} Solve;

/* Evaluate at the current prices, counting the iteration and keeping the best bound. */
static double
eval_current(Solve *sv)
{
	double		l = evaluate(&sv->ps, sv->lambda, sv->g, NULL);

	sv->iterations++;
	if (l < sv->best_dual)
	{
		sv->best_dual = l;
		memcpy(sv->best_lambda, sv->lambda, sizeof(double) * Max(sv->ps.p->nk, 1));
	}
	return l;
}

/* Does constraint k hold at the current evaluation? */
static bool
holds(const Solve *sv, int k)
{
	return sv->g[k] <= sv->ps.p->cap[k] * (1 + 1e-12) + 1e-12;
}

/*
 * Minimise the dual function along lambda_k: the smallest lambda_k at which
 * constraint k holds (0 when it holds at 0).  Brackets from the current value
 * outwards, then bisects; stops when the constraint holds and is used to
 * within 1e-4 of its capacity, or when the bracket is 1e-9 of the price range.
 */
static void
line_search(Solve *sv, int k)
{
	const KArbProblem *p = sv->ps.p;
	double		cur = sv->lambda[k],
				lo,
				hi,
				step;
	double		eps = sv->hi[k] * 1e-9 + 1e-15;
	int			guard = 0;

	if (sv->iterations >= sv->opt->max_iterations)
		return;
	(void) eval_current(sv);
	if (holds(sv, k))
	{
		if (cur == 0)
			return;
		hi = cur;
		step = Max(Min(sv->step[k], cur * 0.05), eps);
		for (;;)
		{
			lo = Max(hi - step, 0);
			sv->lambda[k] = lo;
			(void) eval_current(sv);
			if (!holds(sv, k))
				break;
			hi = lo;
			if (lo == 0 || sv->iterations >= sv->opt->max_iterations)
			{
				sv->lambda[k] = hi;
				return;
			}
			step *= 4;
		}
	}
	else
	{
		lo = cur;
		step = cur > 0 ? Max(Min(sv->step[k], cur * 0.05), eps) : sv->hi[k] * 1e-3;
		for (;;)
		{
			hi = Min(lo + step, sv->hi[k]);
			sv->lambda[k] = hi;
			(void) eval_current(sv);
			if (holds(sv, k) || hi >= sv->hi[k] || sv->iterations >= sv->opt->max_iterations)
				break;
			lo = hi;
			step *= 4;
		}
	}
	/* now lo fails, hi holds (or the iterations are spent); bisect */
	while (hi - lo > eps && sv->iterations < sv->opt->max_iterations && guard++ < 100)
	{
		double		mid = 0.5 * (lo + hi);

		sv->lambda[k] = mid;
		(void) eval_current(sv);
		if (holds(sv, k))
		{
			hi = mid;
			if (sv->g[k] >= p->cap[k] * (1 - 1e-4))
				break;
		}
		else
			lo = mid;
	}
	sv->lambda[k] = hi;
	sv->step[k] = Max(2 * fabs(hi - cur), eps);
}

/*
 * Solve: lambda = 0 first (often nothing binds); else rounds of coordinate
 * line searches until the prices settle, then projected subgradient steps
 * with Polyak's step size towards the best primal value while the gap is
 * above the tolerance; then the assignment at the best prices, repaired
 * and filled; finally the best assignment polished by exchanges between
 * customers (exchange.c).
 */
void
karb_solve(const KArbProblem *p, const KArbOptions *opt, KArbSolution *s)
{
	Solve		sv;
	bool	   *sel_try;
	double	   *used_try;
	double		best_primal = -INFINITY;
	int64		removed = 0,
				filled = 0;
	bool		all_hold = true;
	double		theta = 1.0;
	int			stall = 0;

	memset(s, 0, sizeof(KArbSolution));
	memset(&sv, 0, sizeof(sv));
	pass_init(&sv.ps, p);
	sv.opt = opt;
	sv.lambda = palloc0(sizeof(double) * Max(p->nk, 1));
	sv.g = palloc0(sizeof(double) * Max(p->nk, 1));
	sv.hi = palloc0(sizeof(double) * Max(p->nk, 1));
	sv.step = palloc0(sizeof(double) * Max(p->nk, 1));
	sv.best_lambda = palloc0(sizeof(double) * Max(p->nk, 1));
	sv.best_dual = INFINITY;
	s->lambda = palloc0(sizeof(double) * Max(p->nk, 1));
	s->used = palloc0(sizeof(double) * Max(p->nk, 1));
	s->selected = karb_huge_alloc0(sizeof(bool) * (Size) Max(p->ncand, 1));
	sel_try = karb_huge_alloc0(sizeof(bool) * (Size) Max(p->ncand, 1));
	used_try = palloc0(sizeof(double) * Max(p->nk, 1));

	/* price ranges: above v / a_k no ordinary candidate covered by k is worth taking */
	for (int64 c = 0; c < p->ncand; c++)
		for (int k = 0; k < p->nk; k++)
		{
			double		a = KARB_PAIR_COST(p, p->pair[c], k);

			if (a > 0 && !p->forced[c])
				sv.hi[k] = Max(sv.hi[k], work_value(p, c) / a * (1 + 1e-9));
		}

	for (int k = 0; k < p->nk; k++)
		sv.step[k] = sv.hi[k] * 0.05;
	(void) eval_current(&sv);
	for (int k = 0; k < p->nk; k++)
		if (!holds(&sv, k))
			all_hold = false;
	s->method = "none";
	if (!all_hold)
	{
		s->method = "bisection";
		/* coordinate rounds */
		for (int round = 0; round < 50 && sv.iterations < opt->max_iterations; round++)
		{
			double		change = 0;
			double		primal;
			double		dual_start = sv.best_dual,
						primal_start = best_primal;

			for (int k = 0; k < p->nk; k++)
			{
				double		before = sv.lambda[k];

				line_search(&sv, k);
				change = Max(change, fabs(sv.lambda[k] - before) / Max(sv.hi[k], 1e-15));
			}
			primal = repair_and_fill(&sv.ps, sv.lambda, sel_try, used_try, &removed, &filled);
			if (primal > best_primal)
			{
				best_primal = primal;
				memcpy(s->selected, sel_try, sizeof(bool) * p->ncand);
				memcpy(s->used, used_try, sizeof(double) * Max(p->nk, 1));
				s->removed = removed;
				s->filled = filled;
			}
			if (rel_gap(sv.best_dual, best_primal) <= opt->tolerance || change < 1e-12)
				break;
			/*
			 * Stalled: a round that improves the primal value not at all and the
			 * dual bound by less than 1% of the gap is stuck at a kink where no
			 * single price can move (constraints that trade off against each
			 * other); the subgradient steps below move all prices at once.
			 */
			if (round > 0 && dual_start - sv.best_dual < 0.01 * (sv.best_dual - Max(best_primal, primal_start)) &&
				best_primal <= primal_start)
				break;
		}
		/* subgradient steps while the gap is too wide */
		if (rel_gap(sv.best_dual, best_primal) > opt->tolerance && sv.iterations < opt->max_iterations)
		{
			double	   *dir = palloc0(sizeof(double) * Max(p->nk, 1));

			s->method = "bisection+subgradient";
			memcpy(sv.lambda, sv.best_lambda, sizeof(double) * Max(p->nk, 1));
			while (sv.iterations < opt->max_iterations && theta > 1e-6 &&
				   rel_gap(sv.best_dual, best_primal) > opt->tolerance)
			{
				double		before = sv.best_dual;
				double		l = eval_current(&sv);
				double		norm = 0,
							dot = 0,
							prev = 0,
							beta = 0;

				/*
				 * The direction: the (projected) subgradient g - b, deflected
				 * by the previous direction when they point against each other
				 * (Camerini, Fratta and Maffioli), which damps the zig-zag
				 * between constraints that trade off.
				 */
				for (int k = 0; k < p->nk; k++)
				{
					double		d = sv.g[k] - p->cap[k];

					if (sv.lambda[k] <= 0 && d < 0)
						d = 0;	/* projected: a price at zero cannot fall */
					dot += d * dir[k];
					prev += dir[k] * dir[k];
				}
				if (dot < 0 && prev > 0)
					beta = -1.5 * dot / prev;
				for (int k = 0; k < p->nk; k++)
				{
					double		d = sv.g[k] - p->cap[k];

					if (sv.lambda[k] <= 0 && d < 0)
						d = 0;
					dir[k] = d + beta * dir[k];
					norm += dir[k] * dir[k];
				}
				if (norm <= 0)
					break;		/* a subgradient of zero: lambda is optimal */
				for (int k = 0; k < p->nk; k++)
					sv.lambda[k] = Max(0, sv.lambda[k] + theta * (l - best_primal) / norm * dir[k]);
				if (sv.best_dual < before - 1e-12 * fabs(before))
					stall = 0;
				else if (++stall >= 20)
				{
					theta /= 2;
					stall = 0;
					memcpy(sv.lambda, sv.best_lambda, sizeof(double) * Max(p->nk, 1));
					memset(dir, 0, sizeof(double) * Max(p->nk, 1));
				}
				if (sv.iterations % 5 == 0)
				{
					double		primal = repair_and_fill(&sv.ps, sv.lambda, sel_try, used_try, &removed, &filled);

					if (primal > best_primal)
					{
						best_primal = primal;
						memcpy(s->selected, sel_try, sizeof(bool) * p->ncand);
						memcpy(s->used, used_try, sizeof(double) * Max(p->nk, 1));
						s->removed = removed;
						s->filled = filled;
					}
				}
			}
		}
	}
	/* a last coordinate round from the best prices: lowers the bound or keeps it, splits ties finer */
	if (!all_hold && rel_gap(sv.best_dual, best_primal) > opt->tolerance && sv.iterations < opt->max_iterations)
	{
		memcpy(sv.lambda, sv.best_lambda, sizeof(double) * Max(p->nk, 1));
		for (int k = 0; k < p->nk; k++)
		{
			sv.step[k] = Max(sv.lambda[k] * 1e-3, sv.hi[k] * 1e-9);
			line_search(&sv, k);
		}
		{
			double		primal = repair_and_fill(&sv.ps, sv.lambda, sel_try, used_try, &removed, &filled);

			if (primal > best_primal)
			{
				best_primal = primal;
				memcpy(s->selected, sel_try, sizeof(bool) * p->ncand);
				memcpy(s->used, used_try, sizeof(double) * Max(p->nk, 1));
				s->removed = removed;
				s->filled = filled;
			}
		}
	}
	/* the assignment at the best prices */
	{
		double		primal = repair_and_fill(&sv.ps, sv.best_lambda, sel_try, used_try, &removed, &filled);

		if (primal > best_primal)
		{
			best_primal = primal;
			memcpy(s->selected, sel_try, sizeof(bool) * p->ncand);
			memcpy(s->used, used_try, sizeof(double) * Max(p->nk, 1));
			s->removed = removed;
			s->filled = filled;
		}
	}
	/* exchanges between customers, when a constraint binds */
	if (!all_hold)
		best_primal = polish(&sv.ps, sv.best_lambda, s->selected, s->used, &s->exchanged, &s->filled);
	memcpy(s->lambda, sv.best_lambda, sizeof(double) * Max(p->nk, 1));
	s->primal = best_primal;
	s->dual = sv.best_dual;
	s->gap = Max(rel_gap(s->dual, s->primal), 0);
	s->iterations = sv.iterations;
	s->converged = s->gap <= opt->tolerance;
	for (int64 c = 0; c < p->ncand; c++)
		if (s->selected[c])
			s->nselected++;
	pfree(sel_try);
}
