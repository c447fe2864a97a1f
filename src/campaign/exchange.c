/*
 * exchange.c
 *	  The last step of the batch solver's primal recovery (solver.h): exchanges
 *	  between two customers that improve a feasible assignment when no move of
 *	  one customer alone can.
 *
 * Why.  At the optimal prices of a degenerate campaign (many customers alike,
 * several constraints at their limits) the LP optimum is a mix: some of the
 * alike customers take one option, others another, in proportions no price
 * can express.  The repair, fill and swaps of solver.c move one customer at a
 * time, and once the capacities are full every single move that gains value
 * needs capacity that is not there: the assignment stops a few customers'
 * worth of value short.  An exchange pairs such an upgrade of one customer
 * (a gain that needs capacity) with downgrades of others (smaller losses that
 * free it), and keeps them when together they fit and gain.  A budget full of
 * cheap offers, say, takes one more expensive and better one by dropping the
 * cheap offers of four customers.
 *
 * The neighbourhood, in rounds:
 *   1. For every customer, its moves: trade an assigned ordinary candidate
 *      (or a free slot) for an unassigned candidate (or nothing), within the
 *      customer's slots and per-response caps.  Kept: its best few upgrades
 *      (value gained > 0) and, per global constraint, the few downgrades
 *      (value lost >= 0) that free that constraint at the least loss per
 *      unit freed.
 *   2. Upgrades by gain, highest first: one that fits alone is applied; else,
 *      for its first constraint that would overflow, that constraint's
 *      downgrades are taken, least loss per unit first, one per customer and
 *      only those that overflow nothing, until the upgrade fits everywhere
 *      (at most EXCHANGE_PARTNERS of them); kept only if the gain exceeds the
 *      losses.
 *   3. A customer changed in a round takes no other move in it (its moves were
 *      computed before the change).  Rounds repeat while they gain, at most
 *      EXCHANGE_ROUNDS times.
 * Every applied exchange keeps every constraint, slot limit and per-response
 * cap, and raises the value: the result is feasible and never worse.
 *
 * Cost per round: the moves of each customer (assigned x candidates), a sort,
 * and at most EXCHANGE_SCAN downgrades looked at per upgrade (every entry
 * looked at counts, skipped ones too).  Memory: 40 bytes per kept move, so
 * per customer UPGRADES_PER_CUSTOMER moves plus DOWNGRADES_PER_CUSTOMER per
 * listed constraint (160 + 120 bytes each); a constraint is listed only when
 * one move could overflow it (its use plus its largest cost of one
 * candidate exceeds its capacity), which a binding constraint is.
 * Pure computation: no SPI, no catalog.  CHECK_FOR_INTERRUPTS in every pass.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "campaign/exchange.h"

#define EXCHANGE_ROUNDS 20		/* rounds at most */
#define EXCHANGE_SCAN 512		/* downgrades looked at per upgrade at most */
#define EXCHANGE_PARTNERS 16	/* downgrades in one exchange at most */
#define UPGRADES_PER_CUSTOMER 4	/* a customer's best upgrades kept */
#define DOWNGRADES_PER_CUSTOMER 3	/* per constraint, a customer's cheapest downgrades kept */

/* One move of one customer: out (or -1: a free slot) traded for in (or -1: nothing). */
typedef struct Move
{
	double		dv;				/* value gained (negative: lost) */
	double		key;			/* in a downgrade list: value lost per unit freed of its constraint */
	int64		out;
	int64		in;
	int32		cust;
} Move;

/* Tolerance of every capacity test, as in solver.c. */
static inline bool
within(double use, double cap)
{
	return use <= cap * (1 + 1e-12) + 1e-12;
}

/* Cost of candidate c (or nothing, c < 0) on global constraint k. */
static inline double
cand_cost(const KArbProblem *p, int64 c, int k)
{
	return c < 0 ? 0 : KARB_PAIR_COST(p, p->pair[c], k);
}

/* Value of candidate c (or nothing). */
static inline double
cand_value(const KArbProblem *p, int64 c)
{
	return c < 0 ? 0 : p->value[c];
}

/* Change of constraint k's use by move mv. */
static inline double
move_delta(const KArbProblem *p, const Move *mv, int k)
{
	return cand_cost(p, mv->in, k) - cand_cost(p, mv->out, k);
}

/* Does customer i, after trading out for in, keep its per-response caps? ruse: its use now. */
static bool
response_ok(const KArbProblem *p, const double *ruse, int64 out, int64 in)
{
	if (in < 0)
		return true;
	for (int r = 0; r < p->nr; r++)
	{
		double		a = KARB_PAIR_RCOST(p, p->pair[in], r);
		double		u = ruse[r] - (out < 0 ? 0 : KARB_PAIR_RCOST(p, p->pair[out], r));

		if (a > 0 && !within(u + a, p->rcap[r]))
			return false;
	}
	return true;
}

/* Apply move mv to the assignment. */
static void
apply_move(const KArbProblem *p, const Move *mv, bool *selected, double *used)
{
	for (int k = 0; k < p->nk; k++)
		used[k] += move_delta(p, mv, k);
	if (mv->out >= 0)
		selected[mv->out] = false;
	if (mv->in >= 0)
		selected[mv->in] = true;
}

/* Higher gain first; then customer and positions, for a fixed order. */
static int
upgrade_cmp(const void *a, const void *b)
{
	const Move *x = (const Move *) a;
	const Move *y = (const Move *) b;

	if (x->dv != y->dv)
		return x->dv > y->dv ? -1 : 1;
	if (x->cust != y->cust)
		return x->cust < y->cust ? -1 : 1;
	if (x->out != y->out)
		return x->out < y->out ? -1 : 1;
	return x->in < y->in ? -1 : x->in > y->in ? 1 : 0;
}

/* Least loss per unit freed first; then as upgrade_cmp (least loss, customer, positions). */
static int
downgrade_cmp(const void *a, const void *b)
{
	const Move *x = (const Move *) a;
	const Move *y = (const Move *) b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return upgrade_cmp(a, b);
}

/*
 * Collect customer i's moves: its best upgrades into ups, and per constraint
 * its most efficient downgrades freeing it into down[k] (DOWNGRADES_PER_CUSTOMER
 * slots per customer, dv = 1 marks an empty one).  Steps: the customer's
 * slots and per-response use; every (out, in) pair with out assigned and
 * ordinary (or a free slot) and in unassigned with a positive value (or
 * nothing).
 */
static void
customer_moves(const KArbProblem *p, int i, const bool *selected, double *ruse,
			   Move *ups, int64 *nups, Move **down, const bool *listed)
{
	int64		s = p->start[i],
				e = p->start[i + 1];
	int			slots = 0;
	Move		best[UPGRADES_PER_CUSTOMER];
	int			nbest = 0;

	memset(ruse, 0, sizeof(double) * Max(p->nr, 1));
	for (int64 c = s; c < e; c++)
		if (selected[c])
		{
			slots++;
			for (int r = 0; r < p->nr; r++)
				ruse[r] += KARB_PAIR_RCOST(p, p->pair[c], r);
		}
	for (int k = 0; k < p->nk; k++)
		if (listed[k])
			for (int q = 0; q < DOWNGRADES_PER_CUSTOMER; q++)
				down[k][(int64) i * DOWNGRADES_PER_CUSTOMER + q].dv = 1;

	for (int64 out = s - 1; out < e; out++)
	{
		if (out >= s && (!selected[out] || p->forced[out]))
			continue;
		if (out < s && slots >= p->m)
			continue;
		for (int64 in = s - 1; in < e; in++)
		{
			Move		mv;

			if (in >= s && (selected[in] || !(p->value[in] > 0)))
				continue;
			if (in < s && out < s)
				continue;
			mv.out = out < s ? -1 : out;
			mv.in = in < s ? -1 : in;
			mv.cust = i;
			mv.dv = cand_value(p, mv.in) - cand_value(p, mv.out);
			if (!response_ok(p, ruse, mv.out, mv.in))
				continue;
			if (mv.dv > 0)
			{
				/* keep the best UPGRADES_PER_CUSTOMER, by gain */
				int			w = nbest < UPGRADES_PER_CUSTOMER ? nbest++ : -1;

				if (w < 0)
				{
					w = 0;
					for (int q = 1; q < nbest; q++)
						if (best[q].dv < best[w].dv)
							w = q;
					if (best[w].dv >= mv.dv)
						continue;
				}
				best[w] = mv;
			}
			else
			{
				for (int k = 0; k < p->nk; k++)
				{
					double		d = move_delta(p, &mv, k);
					Move	   *mine = &down[k][(int64) i * DOWNGRADES_PER_CUSTOMER];
					int			w = 0;

					if (!listed[k] || !(d < 0))
						continue;
					mv.key = -mv.dv / -d;
					/* the slot to replace: an empty one, else the worst kept */
					for (int q = 1; q < DOWNGRADES_PER_CUSTOMER; q++)
					{
						if (mine[w].dv > 0)
							break;
						if (mine[q].dv > 0 || downgrade_cmp(&mine[q], &mine[w]) > 0)
							w = q;
					}
					if (mine[w].dv > 0 || downgrade_cmp(&mv, &mine[w]) < 0)
						mine[w] = mv;
				}
			}
		}
	}
	for (int q = 0; q < nbest; q++)
		ups[(*nups)++] = best[q];
}

/*
 * Try upgrade up with downgrades of list (n of them, in the order of
 * downgrade_cmp): take those of untouched customers other than up's that
 * overflow nothing, until everything fits, while the losses stay below the
 * gain.  Applied when it fits and gains: the customers are marked touched and
 * *applied counts the moves.  acc (nk) and partners (EXCHANGE_PARTNERS) are
 * scratch.
 */
static bool
try_exchange(const KArbProblem *p, const Move *up, const Move *list, int64 n,
			 bool *selected, double *used, bool *touched, double *acc, const Move **partners, int64 *applied)
{
	double		loss = 0;
	int			np = 0;
	bool		fits = false;

	for (int k = 0; k < p->nk; k++)
		acc[k] = used[k] + move_delta(p, up, k);
	for (int64 d = 0, seen = 0; d < n && seen < EXCHANGE_SCAN && np < EXCHANGE_PARTNERS && !fits; d++)
	{
		const Move *dn = &list[d];
		bool		ok = true;

		seen++;					/* every entry looked at counts, so the scan is bounded */
		if (touched[dn->cust] || dn->cust == up->cust)
			continue;
		if (!(up->dv + loss + dn->dv > 1e-12 * up->dv))
			continue;			/* too costly: a later, cheaper one may do */
		for (int q = 0; q < np && ok; q++)
			ok = partners[q]->cust != dn->cust;
		for (int k = 0; k < p->nk && ok; k++)
		{
			double		delta = move_delta(p, dn, k);

			ok = delta <= 0 || within(acc[k] + delta, p->cap[k]);
		}
		if (!ok)
			continue;
		partners[np++] = dn;
		loss += dn->dv;
		fits = true;
		for (int k = 0; k < p->nk; k++)
		{
			acc[k] += move_delta(p, dn, k);
			fits = fits && within(acc[k], p->cap[k]);
		}
	}
	if (!fits)
		return false;
	for (int q = 0; q < np; q++)
	{
		apply_move(p, partners[q], selected, used);
		touched[partners[q]->cust] = true;
	}
	apply_move(p, up, selected, used);
	touched[up->cust] = true;
	*applied += np + 1;
	return true;
}

/*
 * Improve a feasible assignment (selected, with used its consumption) by
 * exchanges (see the file's header).  Returns how many moves it applied.
 */
int64
karb_exchange(const KArbProblem *p, bool *selected, double *used)
{
	Move	   *ups;
	Move	  **down;
	int64	   *ndown;
	bool	   *touched;
	double	   *ruse;
	double	   *acc;
	const Move **partners;
	double	   *maxcost;
	bool	   *listed;
	int64		applied = 0;

	if (p->ncust < 2 || p->nk == 0)
		return 0;
	ups = karb_huge_alloc0(sizeof(Move) * (Size) p->ncust * UPGRADES_PER_CUSTOMER);
	/* a constraint's list only when one move could overflow it (allocated when first needed) */
	down = palloc0(sizeof(Move *) * p->nk);
	maxcost = palloc0(sizeof(double) * p->nk);
	listed = palloc0(sizeof(bool) * p->nk);
	for (int q = 0; q < p->npairs; q++)
		for (int k = 0; k < p->nk; k++)
			maxcost[k] = Max(maxcost[k], KARB_PAIR_COST(p, q, k));
	ndown = palloc0(sizeof(int64) * p->nk);
	touched = karb_huge_alloc0(sizeof(bool) * (Size) p->ncust);
	ruse = palloc0(sizeof(double) * Max(p->nr, 1));
	acc = palloc0(sizeof(double) * p->nk);
	partners = palloc(sizeof(Move *) * EXCHANGE_PARTNERS);

	for (int round = 0; round < EXCHANGE_ROUNDS; round++)
	{
		int64		nups = 0,
					before = applied;
		int64	   *head = palloc0(sizeof(int64) * p->nk);

		/* 1. every customer's moves */
		for (int k = 0; k < p->nk; k++)
		{
			listed[k] = !within(used[k] + maxcost[k], p->cap[k]);
			if (listed[k] && down[k] == NULL)
				down[k] = karb_huge_alloc0(sizeof(Move) * (Size) p->ncust * DOWNGRADES_PER_CUSTOMER);
		}
		for (int i = 0; i < p->ncust; i++)
		{
			if ((i & 8191) == 0)
				CHECK_FOR_INTERRUPTS();
			customer_moves(p, i, selected, ruse, ups, &nups, down, listed);
		}
		for (int k = 0; k < p->nk; k++)
		{
			int64		n = 0;

			ndown[k] = 0;
			if (!listed[k])
				continue;

			for (int64 q = 0; q < (int64) p->ncust * DOWNGRADES_PER_CUSTOMER; q++)
				if (down[k][q].dv <= 0)
					down[k][n++] = down[k][q];
			ndown[k] = n;
			qsort(down[k], n, sizeof(Move), downgrade_cmp);
		}
		qsort(ups, nups, sizeof(Move), upgrade_cmp);
		memset(touched, 0, sizeof(bool) * p->ncust);

		/* 2. upgrades, alone or with downgrades of others */
		for (int64 u = 0; u < nups; u++)
		{
			const Move *up = &ups[u];
			int			k0 = -1;

			if ((u & 8191) == 0)
				CHECK_FOR_INTERRUPTS();
			if (touched[up->cust])
				continue;
			for (int k = 0; k < p->nk && k0 < 0; k++)
				if (!within(used[k] + move_delta(p, up, k), p->cap[k]))
					k0 = k;
			if (k0 < 0)
			{
				apply_move(p, up, selected, used);
				touched[up->cust] = true;
				applied++;
				continue;
			}
			if (!listed[k0])
				continue;		/* it could not overflow when the round began: the next round lists it */
			/* the list's head past the customers already changed */
			while (head[k0] < ndown[k0] && touched[down[k0][head[k0]].cust])
				head[k0]++;
			(void) try_exchange(p, up, down[k0] + head[k0], ndown[k0] - head[k0], selected, used, touched, acc,
								partners, &applied);
		}
		pfree(head);
		if (applied == before)
			break;
	}
	pfree(ups);
	for (int k = 0; k < p->nk; k++)
		if (down[k] != NULL)
			pfree(down[k]);
	pfree(down);
	pfree(maxcost);
	pfree(listed);
	pfree(ndown);
	pfree(touched);
	pfree(ruse);
	pfree(acc);
	pfree(partners);
	return applied;
}
