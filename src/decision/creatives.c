/*
 * decision/creatives.c
 *	  The creative a candidate is shown with (spec section 4, step 2; docs/
 *	  recommend.md): the offer's creatives for the request's channel, minus
 *	  the excluded ones, by the flow's placementMatchMode, then drawn by
 *	  weight with a draw fixed by the recommendation id and the offer.  Each
 *	  offer keeps the creatives it draws among for its last channel, placement
 *	  and mode without exclusions (KOffer.creative_pool, in the compiled
 *	  configuration's memory), so a request for the same placement does not
 *	  look through them again.  Called by pipeline.c; pure computation over
 *	  the compiled configuration.
 */
#include "postgres.h"

#include "util/json.h"

#include "util/draw.h"

#include "decision/decision.h"

/*
 * The weighted creative choice's draw: a uniform number in [0, 1) fixed by two
 * strings, the first (the recommendation id) hashed once per placement
 * (kaireon_draw_seed), the second per offer.
 */
uint64
kaireon_draw_seed(const char *a)
{
	return kaireon_string_hash(a, 0x6b6169);
}

/* The draw of kaireon_draw_seed's string and b. */
static double
stable_uniform(uint64 seed, const char *b)
{
	return kaireon_unit_interval(kaireon_string_hash(b, seed));
}

/* Up to how many creatives of an offer one pick chooses among. */
#define KPOOL_MAX 64

/*
 * KOffer.creative_pool: the offer's creatives a pick without exclusions
 * chooses among for the last (channel, placement, mode) asked, made again
 * when another is asked (as costly as a pick was without it), in the
 * configuration's memory context (forgotten with it: a pool depends only on
 * the compiled creatives).
 */
typedef struct KOfferPool
{
	bool		valid;
	int			channel;
	int			placement;		/* -1: none, or mode any */
	KPlacementMatch mode;
	int			n;
	double		total;			/* the weights' sum */
	int			members[FLEXIBLE_ARRAY_MEMBER]; /* Min(ncreatives, KPOOL_MAX) slots */
} KOfferPool;

/*
 * The offer's creatives a pick chooses among (into pool, at most KPOOL_MAX;
 * their number returned, their weights' sum in *total): by the
 * placementMatchMode of the flow (its match_creatives node) (strict: the
 * placement's creatives of the channel; fallback: those, else the channel's
 * creatives without placement; any: every creative of the channel), none in
 * exclude.  placement: the requested placement's index, -1 for none.
 */
static int
creative_pool(const KTenantConfig *cfg, int channel, KPlacementMatch mode, const KOffer *o, int placement,
			  json_t *exclude, int *pool, double *total)
{
	int			npool = 0;

	*total = 0;
	for (int pass = 0; pass < 2 && npool == 0; pass++)
	{
		for (int i = 0; i < o->ncreatives && npool < KPOOL_MAX; i++)
		{
			const KCreative *c = &cfg->creatives[o->creatives[i]];
			bool		ok;

			if (c->channel != channel || (exclude != NULL && kj_array_has_string(exclude, c->id)))
				continue;
			if (placement < 0 || mode == KPM_ANY)
				ok = true;
			else if (pass == 0)
				ok = c->placement == placement;
			else
				ok = mode == KPM_FALLBACK && c->placement == -1;
			if (ok)
			{
				pool[npool++] = o->creatives[i];
				*total += c->weight;
			}
		}
	}
	return npool;
}

/*
 * Offer oi's pool for the channel, placement and mode, without exclusions:
 * its KOfferPool, made again when the key differs from the last one's.
 */
static const KOfferPool *
offer_pool(KTenantConfig *cfg, int oi, int channel, KPlacementMatch mode, int placement)
{
	KOffer	   *o = &cfg->offers[oi];
	KOfferPool *p = o->creative_pool;

	if (placement < 0 || mode == KPM_ANY)
	{
		placement = -1;			/* the same pool whatever the mode */
		mode = KPM_ANY;
	}
	if (p == NULL)
	{
		p = MemoryContextAllocZero(cfg->mcxt, offsetof(KOfferPool, members) +
								   sizeof(int) * Max(Min(o->ncreatives, KPOOL_MAX), 1));
		o->creative_pool = p;
	}
	if (!p->valid || p->channel != channel || p->placement != placement || p->mode != mode)
	{
		/* (creative_pool raises nothing without exclusions; valid only once it is filled) */
		p->valid = false;
		p->n = creative_pool(cfg, channel, mode, o, placement, NULL, p->members, &p->total);
		p->channel = channel;
		p->placement = placement;
		p->mode = mode;
		p->valid = true;
	}
	return p;
}

/*
 * Pick the offer's creative for the request's channel and the placement
 * (creative_pool; the offer's kept pool, offer_pool, without exclusions), then by
 * weight, with a draw fixed by the recommendation id (seed: kaireon_draw_seed of it).
 * placement: the requested placement's index, -1 for none.
 */
int
kaireon_pick_creative(const KRequest *req, KPlacementMatch mode, const KOffer *o, int placement,
			  json_t *exclude, uint64 seed)
{
	int			own[KPOOL_MAX];
	const int  *pool;
	int			npool;
	double		total,
				u,
				acc = 0;

	if (exclude == NULL)
	{
		const KOfferPool *p = offer_pool(req->cfg, o - req->cfg->offers, req->channel, mode, placement);

		pool = p->members;
		npool = p->n;
		total = p->total;
	}
	else
	{
		npool = creative_pool(req->cfg, req->channel, mode, o, placement, exclude, own, &total);
		pool = own;
	}
	if (npool == 0)
		return -1;
	if (npool == 1 || total <= 0)
		return pool[0];
	u = stable_uniform(seed, o->id) * total;
	for (int i = 0; i < npool; i++)
	{
		acc += req->cfg->creatives[pool[i]].weight;
		if (u < acc)
			return pool[i];
	}
	return pool[npool - 1];
}
