/*
 * campaign/customers.h
 *	  A campaign in progress (the state campaign.c, customers.c and
 *	  results.c share) and its customers and candidates (customers.c): used
 *	  only by the files of src/campaign/.
 */
#ifndef KAIREON_CAMPAIGN_CUSTOMERS_H
#define KAIREON_CAMPAIGN_CUSTOMERS_H

#include "util/json.h"
#include "arbitration/arbitration.h"
#include "arbitration/constraints.h"
#include "campaign/solver.h"
#include "config/config.h"

/* What a campaign runs. */
typedef struct CampaignSpec
{
	const char *tenant_id;
	const char *run_id;			/* NULL: an ad-hoc simulation */
	const char *flow_key;		/* NULL: the channel's route or the default flow */
	const char *segment_id;
	const char *customer_query;
	json_t	   *channels;		/* channel ids */
	int			max_offers;
	json_t	   *limits;			/* the run's own volume limits, or NULL */
	int64		sample_size;	/* 0: every customer */
	bool		simulation;		/* record nothing but the run row */
	bool		write_decisions;	/* campaign_decisions rows */
	KArbOptions opt;
} CampaignSpec;

/* A campaign in progress. */
typedef struct Campaign
{
	CampaignSpec *spec;
	KTenantConfig *cfg;
	int64		cfg_version;	/* the configuration the candidates are indexed by */
	int			nch;
	int		   *channel;		/* channel indexes */
	KArbConstraintSet *set;
	int		   *global;			/* constraint indexes with a global limit */
	int			nglobal;
	int		   *resp;			/* constraint indexes with a per-response cap */
	int			nresp;
	KArbProblem prob;
	char	  **customers;
	int64		ncustomers;
	int64		customers_alloc;
	KArbSolution sol;
	double		ms_scoring,
				ms_solve,
				ms_write;
	int64		decisions;
	int64		selected;		/* decisions to write (kaireon.progress) */
	int64		written;		/* decisions written so far */
	char	   *campaign_run_id;
	char	   *customers_query;	/* the SQL listing the customers */
	bool		listed;			/* customers listed (before the call's first write) */
	bool		distributed;	/* the tenant's tables are Citus shards (kaireon.distribute()) */
	int		   *customer_flow;	/* per customer and channel (customer * nch + ch): the flow that
								 * decided (a flow A/B test's arm: docs/lift.md), -1: none */
	int64		ncontrols;		/* (customer, channel) pairs a control group held back: */
	int64		controls_alloc;
	struct CampaignControl *controls;	/* recorded as 'control' rows unless a simulation */
} Campaign;

/* A customer a control group held back on a channel (docs/lift.md). */
typedef struct CampaignControl
{
	int64		customer;		/* index into customers */
	int			ch;
	int			flow;
	const char *scope;			/* "tenant" or "flow" */
	double		percent;
} CampaignControl;

extern char *kcamp_customers_sql(const Campaign *cp);
extern void kcamp_list_customers(void *arg);
extern void kcamp_collect(Campaign *cp);

#endif							/* KAIREON_CAMPAIGN_CUSTOMERS_H */
