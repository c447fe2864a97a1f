/*
 * config/caps.c
 *	  The volume and budget counters in C: whether a budget allocation counts
 *	  at a given time, for the decision's policies (decision/policies.c) and
 *	  the constraints arbitration prices (arbitration/constraints.c), which
 *	  both read the caps the configuration cache loaded once (config/compile.c).
 *	  The SQL of the counters is in config/caps.h (reading) and
 *	  decision/caps.c (changing).
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "pgtime.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "config/caps.h"

/* Does a budget allocation count at now: its period key is the current one (UTC), or it stands for every period? */
bool
kaireon_budget_current(const KCap *c, TimestampTz now)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		key[32];

	if (c->period_key == NULL || strcmp(c->period_key, "current") == 0 || strcmp(c->period, "total") == 0)
		return true;
	if (timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL) != 0)
		return false;
	if (strcmp(c->period, "daily") == 0)
		snprintf(key, sizeof(key), "%04d-%02d-%02d", tm.tm_year, tm.tm_mon, tm.tm_mday);
	else if (strcmp(c->period, "monthly") == 0)
		snprintf(key, sizeof(key), "%04d-%02d", tm.tm_year, tm.tm_mon);
	else if (strcmp(c->period, "quarterly") == 0)
		snprintf(key, sizeof(key), "%04d-Q%d", tm.tm_year, (tm.tm_mon - 1) / 3 + 1);
	else
	{
		int			woy = date2isoweek(tm.tm_year, tm.tm_mon, tm.tm_mday);
		int			year = date2isoyear(tm.tm_year, tm.tm_mon, tm.tm_mday);

		snprintf(key, sizeof(key), "%04d-W%02d", year, woy);
	}
	return strcmp(key, c->period_key) == 0;
}
