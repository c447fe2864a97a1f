/*
 * decision/ranking.c
 *	  The rank order of a placement's candidates and the selection of the best
 *	  of them (spec section 4, step 10): the pipeline's rank and response nodes
 *	  (pipeline.c) and its group node order by these.  Pure computation over
 *	  the compiled configuration and the scored candidates: no SPI, no catalog.
 *
 * The order is total: mandatory standing first, then the rank node's key
 * (score unless the node says otherwise), then score, priority and the offer
 * id, so that a selection step and a full sort agree.  A campaign (batch)
 * sorts every candidate with kaireon_rank_cmp; a decision needs only its
 * first few in rank order, so it selects them (kaireon_select_best for the
 * few a placement takes in one pass, kaireon_select_next one at a time),
 * O(n) a step, rather than sorting all.
 */
#include "postgres.h"

#include "decision/decision.h"

/*
 * The rank order of two candidates: mandatory first, then score, priority,
 * offer id.  Static so that rank_cmp_node, the selection steps' comparison,
 * has it inlined (an extern function of a shared library is not inlined).
 */
static inline int
rank_order(const KCandidate *x, const KCandidate *y, const KTenantConfig *cfg)
{
	if (x->mandatory != y->mandatory)
		return x->mandatory ? -1 : 1;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (cfg->offers[x->offer].priority != cfg->offers[y->offer].priority)
		return cfg->offers[x->offer].priority > cfg->offers[y->offer].priority ? -1 : 1;
	return strcmp(cfg->offers[x->offer].id, cfg->offers[y->offer].id);
}

/* Ranking order of two KCandidate pointers for qsort_arg (arg: the configuration): rank_order's. */
int
kaireon_rank_cmp(const void *a, const void *b, void *arg)
{
	return rank_order(*(KCandidate *const *) a, *(KCandidate *const *) b, (const KTenantConfig *) arg);
}

/* The value a rank node orders by (KRankBy other than score). */
static double
rank_key(const KTenantConfig *cfg, const KCandidate *c, KRankBy by)
{
	const KOffer *o = &cfg->offers[c->offer];

	switch (by)
	{
		case KRANK_PRIORITY:
			return o->priority;
		case KRANK_VALUE:
			return o->value;
		case KRANK_MARGIN:
			return o->margin;
		case KRANK_COST:
			return o->cost;
		case KRANK_SCORE:
			break;
	}
	return c->score;
}

/*
 * The order of a flow graph's rank node rn (NULL: rank_order's):
 * mandatory standing first, then its key, descending unless asked ascending,
 * then rank_order's.
 */
static int
rank_cmp_node(KCandidate *const *a, KCandidate *const *b, const KTenantConfig *cfg, const KNode *rn)
{
	const KCandidate *x = *a;
	const KCandidate *y = *b;

	if (rn != NULL && x->mandatory == y->mandatory && (rn->rank_by != KRANK_SCORE || rn->rank_asc))
	{
		double		kx = rank_key(cfg, x, rn->rank_by);
		double		ky = rank_key(cfg, y, rn->rank_by);

		if (kx != ky)
			return (kx > ky) == rn->rank_asc ? 1 : -1;
	}
	return rank_order(x, y, cfg);
}

/* Bring the best-ranked of ranked[i..n) to position i (the rank node's order: a selection step). */
void
kaireon_select_next(KCandidate **ranked, int i, int n, KTenantConfig *cfg, const KNode *rn)
{
	int			best = i;

	for (int j = i + 1; j < n; j++)
		if (rank_cmp_node(&ranked[j], &ranked[best], cfg, rn) < 0)
			best = j;
	if (best != i)
	{
		KCandidate *t = ranked[i];

		ranked[i] = ranked[best];
		ranked[best] = t;
	}
}

/*
 * Bring the best k of ranked[i..n) to positions i .. i+k-1 in the rank node's
 * order, as k kaireon_select_next steps would (the order is total: the offer
 * id breaks ties), in one pass: each candidate is compared with the worst of the best
 * found so far first, about n comparisons instead of k times n.  The others
 * follow in their order.  Returns how many were placed (fewer when n - i < k).
 */
int
kaireon_select_best(KCandidate **ranked, int i, int n, int k, KTenantConfig *cfg, const KNode *rn)
{
	int			best[KAIREON_SELECT_BEST_MAX];
	int			nb = 0;
	bool	   *in_best;
	KCandidate **rest;
	int			nrest = 0;

	Assert(k <= KAIREON_SELECT_BEST_MAX);
	for (int j = i; j < n; j++)
	{
		int			pos;

		if (nb == k && rank_cmp_node(&ranked[j], &ranked[best[nb - 1]], cfg, rn) >= 0)
			continue;
		pos = nb < k ? nb++ : k - 1;	/* full: the worst makes room */
		for (; pos > 0 && rank_cmp_node(&ranked[j], &ranked[best[pos - 1]], cfg, rn) < 0; pos--)
			best[pos] = best[pos - 1];
		best[pos] = j;
	}
	in_best = palloc0(sizeof(bool) * Max(n - i, 1));
	rest = palloc(sizeof(KCandidate *) * Max(n - i, 1));
	for (int b = 0; b < nb; b++)
		in_best[best[b] - i] = true;
	for (int j = i; j < n; j++)
		if (!in_best[j - i])
			rest[nrest++] = ranked[j];
	for (int b = 0; b < nb; b++)
		rest[nrest++] = ranked[best[b]];	/* collected after the rest, moved to the front below */
	memcpy(&ranked[i], &rest[nrest - nb], sizeof(KCandidate *) * nb);
	memcpy(&ranked[i + nb], rest, sizeof(KCandidate *) * (nrest - nb));
	pfree(in_best);
	pfree(rest);
	return nb;
}
