/*
 * assign.c
 *	  The optimal joint assignment of candidates to the slots of several
 *	  placements (assign.h; docs/arbitration.md, "Joint placement").
 *
 * The problem is a transportation problem: a source gives each candidate one
 * unit, candidate c sends it to placement p at cost -score(c, p), placement p
 * passes at most slots[p] units to the sink.  Successive shortest paths solve
 * it exactly: each augmentation moves one more unit along a cheapest path of
 * the residual graph, and after k augmentations the flow is a cheapest flow of
 * value k, so the last one fills as many slots as possible at the largest
 * total score.  Augmenting paths never unassign a candidate, so at most
 * min(ncand, sum of slots) augmentations run.
 *
 * The residual graph is not built.  An unassigned candidate has one incoming
 * edge (from the source), so its distance is 0 and the best it offers each
 * placement is one pass over the score matrix.  What remains is small: the
 * placements, the assigned candidates and the sink, at most
 * nplace + sum(slots) + 1 nodes, where Bellman-Ford (residual costs may be
 * negative, and no cycle is, since the flow is always cheapest for its value)
 * finds the shortest path.  Cost per augmentation: O(ncand * nplace) for the
 * pass plus O((nplace + assigned) * assigned * nplace) for the rest.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "util/datum.h"
#include "arbitration/assign.h"

PG_FUNCTION_INFO_V1(kaireon_assign);

/* Does moving to distance nd improve on d (beyond rounding)? */
static inline bool
improves(double nd, double d)
{
	if (isinf(d))
		return !isinf(nd);
	return nd < d - 1e-12 * (1.0 + fabs(d));
}

/* Check the arguments: counts >= 0 and no infinite score. */
static void
check_input(const double *score, int ncand, int nplace, const int *slots)
{
	if (ncand < 0 || nplace < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid assignment size: %d candidates, %d placements", ncand, nplace),
				 errhint("Both counts must be zero or more.")));
	for (int p = 0; p < nplace; p++)
		if (slots[p] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid slot count %d for placement %d", slots[p], p + 1),
					 errhint("A placement takes zero or more candidates.")));
	for (int i = 0; i < ncand * nplace; i++)
		if (isinf(score[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid score %g for candidate %d in placement %d",
							score[i], i / nplace + 1, i % nplace + 1),
					 errhint("Scores are finite numbers; NaN marks a placement the candidate may not take.")));
}

/*
 * The assignment (assign.h).  Steps per augmentation: (1) the best unassigned
 * candidate of each placement; (2) Bellman-Ford over placements, assigned
 * candidates and the sink; (3) shift the candidates along the path found.
 */
double
karb_assign(const double *score, int ncand, int nplace, const int *slots, int *out)
{
	int			total_slots = 0;
	int			nassigned = 0;
	int		   *used;
	int		   *assigned;		/* candidate of each assigned node, in order */
	int		   *best;			/* per placement: its best unassigned candidate */
	double	   *dist;			/* placements, then assigned candidates, then the sink */
	int		   *prev;			/* per node: the node before it (-1: from best[]) */
	double		total = 0;

	check_input(score, ncand, nplace, slots);
	for (int c = 0; c < ncand; c++)
		out[c] = -1;
	for (int p = 0; p < nplace; p++)
		total_slots += slots[p];
	total_slots = Min(total_slots, ncand);
	if (total_slots == 0)
		return 0;

	used = palloc0(sizeof(int) * nplace);
	assigned = palloc(sizeof(int) * total_slots);
	best = palloc(sizeof(int) * nplace);
	dist = palloc(sizeof(double) * (nplace + total_slots + 1));
	prev = palloc(sizeof(int) * (nplace + total_slots + 1));

	for (int round = 0; round < total_slots; round++)
	{
		int			sink = nplace + nassigned;
		int			nnodes = sink + 1;
		int			node;
		int			steps = 0;

		CHECK_FOR_INTERRUPTS();

		/* (1) distances of the placements through an unassigned candidate */
		for (int p = 0; p < nplace; p++)
		{
			best[p] = -1;
			dist[p] = INFINITY;
			prev[p] = -1;
		}
		for (int c = 0; c < ncand; c++)
		{
			if (out[c] >= 0)
				continue;
			for (int p = 0; p < nplace; p++)
			{
				double		s = score[(Size) c * nplace + p];

				if (!isnan(s) && improves(-s, dist[p]))
				{
					dist[p] = -s;
					best[p] = c;
				}
			}
		}
		for (int v = nplace; v < nnodes; v++)
		{
			dist[v] = INFINITY;
			prev[v] = -1;
		}

		/* (2) Bellman-Ford over the rest; at most nnodes rounds */
		for (int it = 0; it < nnodes; it++)
		{
			bool		changed = false;

			for (int k = 0; k < nassigned; k++)
			{
				int			c = assigned[k];
				int			p = out[c];
				double		nd;

				/* p -> c: take c out of p (gives back its score) */
				if (isfinite(dist[p]) && improves(nd = dist[p] + score[(Size) c * nplace + p], dist[nplace + k]))
				{
					dist[nplace + k] = nd;
					prev[nplace + k] = p;
					changed = true;
				}
			}
			for (int k = 0; k < nassigned; k++)
			{
				int			c = assigned[k];

				if (!isfinite(dist[nplace + k]))
					continue;
				/* c -> q: put c in another placement */
				for (int q = 0; q < nplace; q++)
				{
					double		s = score[(Size) c * nplace + q];
					double		nd = dist[nplace + k] - s;

					if (q != out[c] && !isnan(s) && improves(nd, dist[q]))
					{
						dist[q] = nd;
						prev[q] = nplace + k;
						changed = true;
					}
				}
			}
			for (int p = 0; p < nplace; p++)
				if (used[p] < slots[p] && isfinite(dist[p]) && improves(dist[p], dist[sink]))
				{
					dist[sink] = dist[p];
					prev[sink] = p;
					changed = true;
				}
			if (!changed)
				break;
		}
		if (!isfinite(dist[sink]))
			break;				/* no slot can take one more candidate */

		/* (3) shift along the path: sink <- p <- c <- q <- ... <- best[first] */
		node = prev[sink];
		used[node]++;
		for (;;)
		{
			int			from = prev[node];

			if (++steps > nnodes)
				elog(ERROR, "karb_assign: the shortest path has a cycle");
			if (from < 0)
			{
				int			c = best[node];

				out[c] = node;
				assigned[nassigned++] = c;
				break;
			}
			else
			{
				int			c = assigned[from - nplace];
				int			was = out[c];

				out[c] = node;
				node = was;
			}
		}
	}

	for (int c = 0; c < ncand; c++)
		if (out[c] >= 0)
			total += score[(Size) c * nplace + out[c]];
	pfree(used);
	pfree(assigned);
	pfree(best);
	pfree(dist);
	pfree(prev);
	return total;
}

/*
 * kaireon_internal._assign(score float8[], nplace int, slots int[]) -> int[]:
 * karb_assign from SQL (the oracle test's doorway).  score is the candidates'
 * rows of nplace values each (NULL: not allowed), slots one count per
 * placement; the answer gives each candidate its placement (1-based) or 0.
 */
Datum
kaireon_assign(PG_FUNCTION_ARGS)
{
	ArrayType  *sa = PG_GETARG_ARRAYTYPE_P(0);
	int			nplace = PG_GETARG_INT32(1);
	ArrayType  *la = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *sv,
			   *lv;
	bool	   *sn,
			   *ln;
	int			ns,
				nl,
				ncand;
	double	   *score;
	int		   *slots,
			   *out;
	Datum	   *res;

	deconstruct_array(sa, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &sv, &sn, &ns);
	deconstruct_array(la, INT4OID, 4, true, TYPALIGN_INT, &lv, &ln, &nl);
	if (nplace < 1 || nl != nplace || ns % nplace != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid assignment shape: %d scores, %d placements, %d slot counts", ns, nplace, nl),
				 errhint("Give one slot count per placement and nplace scores per candidate.")));
	ncand = ns / nplace;
	score = palloc(sizeof(double) * Max(ns, 1));
	slots = palloc(sizeof(int) * nplace);
	out = palloc(sizeof(int) * Max(ncand, 1));
	for (int i = 0; i < ns; i++)
		score[i] = sn[i] ? NAN : DatumGetFloat8(sv[i]);
	for (int p = 0; p < nplace; p++)
	{
		if (ln[p])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("slot count of placement %d is null", p + 1),
					 errhint("Give every placement a slot count.")));
		slots[p] = DatumGetInt32(lv[p]);
	}
	for (int i = 0; i < ns; i++)
		if (isnan(score[i]) && !sn[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid score NaN for candidate %d in placement %d", i / nplace + 1, i % nplace + 1),
					 errhint("Use NULL for a placement the candidate may not take.")));
	karb_assign(score, ncand, nplace, slots, out);
	res = palloc(sizeof(Datum) * Max(ncand, 1));
	for (int c = 0; c < ncand; c++)
		res[c] = Int32GetDatum(out[c] + 1);
	PG_RETURN_DATUM(kd_array(res, NULL, ncand, INT4OID));
}
