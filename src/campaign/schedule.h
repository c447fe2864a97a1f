/*
 * campaign/schedule.h
 *	  Scheduled campaign runs (campaign/schedule.c) and their exports
 *	  (campaign/schedule_export.c; docs/schedules.md).
 */
#ifndef KAIREON_CAMPAIGN_SCHEDULE_H
#define KAIREON_CAMPAIGN_SCHEDULE_H

#include "postgres.h"

/* module init (kaireon.c): the export settings */
extern void kaireon_schedule_init(void);

#endif							/* KAIREON_CAMPAIGN_SCHEDULE_H */
