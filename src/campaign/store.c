/*
 * store.c
 *	  The batch solver's candidate store (solver.h): customers' candidates
 *	  added one customer at a time, pruned of those no prices can make worth
 *	  assigning, and the check that the forced ones fit.  campaign.c fills it;
 *	  solver.c and exchange.c read it.
 *
 * Pure computation: no SPI, no catalog.
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "campaign/store.h"

/* A huge (> 1 GB allowed) zeroed allocation in the current context. */
void *
karb_huge_alloc0(Size size)
{
	return MemoryContextAllocExtended(CurrentMemoryContext, Max(size, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

/* Grow a huge array to hold at least n elements of a size. */
static void *
huge_grow(void *ptr, Size elem, int64 n)
{
	return repalloc_huge(ptr, Max((Size) n * elem, 1));
}

/* Set up an empty problem; cost, cap, rcost and rcap are filled by the caller. */
void
karb_problem_init(KArbProblem *p, int m, int npairs, int nk, int nr)
{
	memset(p, 0, sizeof(KArbProblem));
	p->m = m;
	p->npairs = npairs;
	p->nk = nk;
	p->nr = nr;
	p->cost = karb_huge_alloc0(sizeof(double) * (Size) npairs * Max(nk, 1));
	p->cap = palloc0(sizeof(double) * Max(nk, 1));
	p->rcost = karb_huge_alloc0(sizeof(double) * (Size) npairs * Max(nr, 1));
	p->rcap = palloc0(sizeof(double) * Max(nr, 1));
	p->cust_alloc = 1024;
	p->cand_alloc = 16384;
	p->start = karb_huge_alloc0(sizeof(int64) * (p->cust_alloc + 1));
	p->pair = karb_huge_alloc0(sizeof(int32) * p->cand_alloc);
	p->value = karb_huge_alloc0(sizeof(double) * p->cand_alloc);
	p->forced = karb_huge_alloc0(sizeof(bool) * p->cand_alloc);
	p->tag = karb_huge_alloc0(sizeof(int32) * p->cand_alloc);
}

/* Sorting context: candidates of one customer by value (desc), total cost (asc), position. */
typedef struct PruneSort
{
	const KArbProblem *p;
	const int32 *pair;
	const double *value;
	const double *costsum;
} PruneSort;

/* Order for pruning: higher value first; then cheaper; then earlier. */
static int
prune_cmp(const void *a, const void *b, void *arg)
{
	const PruneSort *ps = (const PruneSort *) arg;
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	if (ps->value[x] != ps->value[y])
		return ps->value[x] > ps->value[y] ? -1 : 1;
	if (ps->costsum[x] != ps->costsum[y])
		return ps->costsum[x] < ps->costsum[y] ? -1 : 1;
	return x - y;
}

/* Does pair d cost no more than pair c on every global constraint and per-response cap? */
static bool
costs_dominate(const KArbProblem *p, int32 d, int32 c)
{
	for (int k = 0; k < p->nk; k++)
		if (KARB_PAIR_COST(p, d, k) > KARB_PAIR_COST(p, c, k))
			return false;
	for (int r = 0; r < p->nr; r++)
		if (KARB_PAIR_RCOST(p, d, r) > KARB_PAIR_RCOST(p, c, r))
			return false;
	return true;
}

/*
 * Add one customer's candidates.  Forced candidates are kept (at most m, the
 * best by value; the others become ordinary).  An ordinary candidate is
 * dropped when its value is not positive, or when at least as many kept
 * candidates as there are free slots dominate it (value at least as high,
 * every cost at most as high): at any prices those are at least as good, so
 * some optimal assignment never uses it.  Counting only kept dominators is
 * enough, since dominance is transitive.
 */
void
karb_add_customer(KArbProblem *p, int n, const int32 *pair, const double *value, const bool *forced,
				  const int32 *tag)
{
	int		   *order = palloc(sizeof(int) * Max(n, 1));
	double	   *costsum = palloc(sizeof(double) * Max(n, 1));
	int		   *kept = palloc(sizeof(int) * Max(n, 1));
	bool	   *is_forced = palloc0(sizeof(bool) * Max(n, 1));
	int			nkept = 0,
				nforced = 0,
				free_slots;
	PruneSort	ps = {p, pair, value, costsum};

	p->offered += n;
	for (int j = 0; j < n; j++)
	{
		order[j] = j;
		costsum[j] = 0;
		for (int k = 0; k < p->nk; k++)
			costsum[j] += KARB_PAIR_COST(p, pair[j], k);
		for (int r = 0; r < p->nr; r++)
			costsum[j] += KARB_PAIR_RCOST(p, pair[j], r);
	}
	qsort_arg(order, n, sizeof(int), prune_cmp, &ps);
	/* the best m forced candidates stay forced */
	for (int t = 0; t < n; t++)
		if (forced[order[t]] && nforced < p->m)
		{
			is_forced[order[t]] = true;
			nforced++;
		}
	free_slots = p->m - nforced;

	if (p->ncust + 1 > p->cust_alloc)
	{
		p->cust_alloc *= 2;
		p->start = huge_grow(p->start, sizeof(int64), p->cust_alloc + 1);
	}
	if (p->ncand + n > p->cand_alloc)
	{
		while (p->ncand + n > p->cand_alloc)
			p->cand_alloc *= 2;
		p->pair = huge_grow(p->pair, sizeof(int32), p->cand_alloc);
		p->value = huge_grow(p->value, sizeof(double), p->cand_alloc);
		p->forced = huge_grow(p->forced, sizeof(bool), p->cand_alloc);
		p->tag = huge_grow(p->tag, sizeof(int32), p->cand_alloc);
	}

	for (int t = 0; t < n; t++)
	{
		int			c = order[t];
		int			dominators = 0;

		if (is_forced[c])
		{
			p->pair[p->ncand] = pair[c];
			p->value[p->ncand] = value[c];
			p->forced[p->ncand] = true;
			p->tag[p->ncand] = tag[c];
			p->ncand++;
			continue;
		}
		if (!(value[c] > 0) || free_slots <= 0)
			continue;
		for (int q = 0; q < nkept && dominators < free_slots; q++)
			if (value[kept[q]] >= value[c] && costs_dominate(p, pair[kept[q]], pair[c]))
				dominators++;
		if (dominators >= free_slots)
			continue;
		kept[nkept++] = c;
		p->pair[p->ncand] = pair[c];
		p->value[p->ncand] = value[c];
		p->forced[p->ncand] = false;
		p->tag[p->ncand] = tag[c];
		p->ncand++;
	}
	p->ncust++;
	p->start[p->ncust] = p->ncand;
	pfree(order);
	pfree(costsum);
	pfree(kept);
	pfree(is_forced);
}

/* Are the forced candidates alone within the global capacities? */
bool
karb_forced_feasible(const KArbProblem *p, int *kout, double *need)
{
	double	   *use = palloc0(sizeof(double) * Max(p->nk, 1));

	for (int64 c = 0; c < p->ncand; c++)
		if (p->forced[c])
			for (int k = 0; k < p->nk; k++)
				use[k] += KARB_PAIR_COST(p, p->pair[c], k);
	for (int k = 0; k < p->nk; k++)
		if (use[k] > p->cap[k] * (1 + 1e-12) + 1e-9)
		{
			*kout = k;
			*need = use[k];
			return false;
		}
	return true;
}

