/*
 * campaign/results.h
 *	  Writing a solved campaign's results (results.c), for campaign.c.
 */
#ifndef KAIREON_CAMPAIGN_RESULTS_H
#define KAIREON_CAMPAIGN_RESULTS_H

#include "campaign/customers.h"

extern void kcamp_write_decisions(Campaign *cp);
extern void kcamp_record_controls(Campaign *cp);
extern void kcamp_take_units(Campaign *cp);
extern json_t *kcamp_summary(Campaign *cp);

#endif							/* KAIREON_CAMPAIGN_RESULTS_H */
