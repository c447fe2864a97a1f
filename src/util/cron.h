/*
 * util/cron.h
 *	  Standard five-field cron expressions: parsed once into bit sets, and the
 *	  next matching minute computed in UTC (util/cron.c; docs/schedules.md).
 */
#ifndef KAIREON_UTIL_CRON_H
#define KAIREON_UTIL_CRON_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* A parsed cron expression: one bit per allowed value of each field. */
typedef struct KCron
{
	uint64		minutes;		/* bits 0..59 */
	uint32		hours;			/* bits 0..23 */
	uint32		days;			/* bits 1..31 (day of month) */
	uint16		months;			/* bits 1..12 */
	uint8		weekdays;		/* bits 0..6, 0 = Sunday (7 is folded into 0) */
	bool		days_star;		/* the day-of-month field starts with '*' */
	bool		weekdays_star;	/* the day-of-week field starts with '*' */
} KCron;

/* Parse expr into *out; 22023 naming the expression and the bad field otherwise. */
extern void kcron_parse(const char *expr, KCron *out);

/* The first minute matching c strictly after after (UTC), or DT_NOEND if none within 10 years. */
extern TimestampTz kcron_next(const KCron *c, TimestampTz after);

#endif							/* KAIREON_UTIL_CRON_H */
