/*
 * util/cron.c
 *	  Standard five-field cron expressions (docs/schedules.md): "minute hour
 *	  day-of-month month day-of-week", each field `*`, a number, a range
 *	  `a-b`, a step `*` + `/n` or `a-b/n`, or a comma list of these.  Nothing
 *	  else is accepted (no names, no `@daily` macros, no `?`, `L`, `W`, `#`,
 *	  no sixth field): a bad expression is refused with 22023 naming it and
 *	  its bad field.
 *
 * An expression is parsed once into a KCron (one bit per allowed value);
 * kcron_next() walks days forward from the given time, in UTC, and returns
 * the first matching minute.  Day matching follows Vixie cron, as pg_cron
 * and most crons do: when both day fields are restricted (neither starts
 * with `*`) a day matches if either matches; otherwise both must.
 */
#include "postgres.h"

#include <ctype.h>

#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "util/cron.h"

/* The five fields: name and bounds. */
typedef struct CronField
{
	const char *name;
	int			min;
	int			max;
} CronField;

static const CronField cron_fields[5] = {
	{"minute", 0, 59},
	{"hour", 0, 23},
	{"day-of-month", 1, 31},
	{"month", 1, 12},
	{"day-of-week", 0, 7},
};

/* Raise 22023 for a bad field of expr. */
static void
cron_bad_field(const char *expr, int field, const char *text, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid cron expression \"%s\": %s field \"%s\" %s",
					expr, cron_fields[field].name, text, why),
			 errhint("Five fields, minute (0-59) hour (0-23) day-of-month (1-31) month (1-12) day-of-week (0-7, 0 and 7 are Sunday); "
					 "each *, a number, a range a-b, a step */n or a-b/n, or a comma list of these.")));
}

/*
 * Read a decimal number at *p (advancing it) into *out (saturating at 1000,
 * out of every field's range); false when there is no digit.
 */
static bool
cron_number(const char **p, int *out)
{
	int			n = 0,
				digits = 0;

	while (isdigit((unsigned char) **p))
	{
		digits++;
		n = Min(n * 10 + (**p - '0'), 1000);
		(*p)++;
	}
	*out = n;
	return digits > 0;
}

/*
 * Parse one field's text into a bit set (bit v for each allowed value v).
 * Steps: for each comma item, its range (`*` is min-max), then its step.
 */
static uint64
cron_parse_field(const char *expr, int field, const char *text)
{
	const CronField *f = &cron_fields[field];
	uint64		bits = 0;
	const char *p = text;

	for (;;)
	{
		int			lo,
					hi,
					step = 1;
		bool		ranged = true;	/* `*` or a-b: a step may follow */

		if (*p == '*')
		{
			lo = f->min;
			hi = f->max;
			p++;
		}
		else
		{
			if (!cron_number(&p, &lo))
				cron_bad_field(expr, field, text, *p == '\0' || *p == ',' ? "has an empty item" :
							   "has a character that is not a digit, *, -, / or ,");
			hi = lo;
			ranged = *p == '-';
			if (*p == '-')
			{
				p++;
				if (!cron_number(&p, &hi))
					cron_bad_field(expr, field, text, "has a range without an end");
			}
			if (lo < f->min || hi > f->max)
				cron_bad_field(expr, field, text,
							   psprintf("is out of range (%d-%d)", f->min, f->max));
			if (lo > hi)
				cron_bad_field(expr, field, text, "has a range whose start is after its end");
		}
		if (*p == '/')
		{
			if (!ranged)
				cron_bad_field(expr, field, text, "has a step after a single value (write a-b/n or */n)");
			p++;
			if (!cron_number(&p, &step) || step == 0)
				cron_bad_field(expr, field, text, "has a step that is not a positive number");
		}
		if (*p != '\0' && *p != ',')
			cron_bad_field(expr, field, text, "has a character that is not a digit, *, -, / or ,");
		for (int v = lo; v <= hi; v += step)
			bits |= UINT64CONST(1) << v;
		if (*p == '\0')
			break;
		p++;					/* the comma */
		if (*p == '\0')
			cron_bad_field(expr, field, text, "has an empty item");
	}
	return bits;
}

/*
 * Parse a cron expression (see the file header) into *out.  Steps: split on
 * blanks into exactly five fields, parse each, fold day-of-week 7 into 0.
 */
void
kcron_parse(const char *expr, KCron *out)
{
	char	   *copy = pstrdup(expr);
	char	   *fields[5];
	int			n = 0;
	uint64		bits[5];
	char	   *p = copy;

	for (;;)
	{
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (n == 5)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid cron expression \"%s\": more than five fields", expr),
					 errhint("Five fields: minute hour day-of-month month day-of-week (no seconds, no year).")));
		fields[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	if (n < 5)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid cron expression \"%s\": %d field%s, not five", expr, n, n == 1 ? "" : "s"),
				 errhint("Five fields: minute hour day-of-month month day-of-week, e.g. \"30 6 * * 1-5\" (06:30 UTC on weekdays); macros such as @daily are not accepted.")));
	for (int i = 0; i < 5; i++)
		bits[i] = cron_parse_field(expr, i, fields[i]);
	memset(out, 0, sizeof(*out));
	out->minutes = bits[0];
	out->hours = (uint32) bits[1];
	out->days = (uint32) bits[2];
	out->months = (uint16) bits[3];
	out->weekdays = (uint8) ((bits[4] | (bits[4] >> 7)) & 0x7f);
	out->days_star = fields[2][0] == '*';
	out->weekdays_star = fields[4][0] == '*';
	pfree(copy);
}

/* Whether a day (Julian day number jd, day of month mday) matches the day fields. */
static bool
cron_day_matches(const KCron *c, int jd, int mday)
{
	bool		dom = (c->days >> mday) & 1;
	bool		dow = (c->weekdays >> j2day(jd)) & 1;

	if (c->days_star || c->weekdays_star)
		return dom && dow;
	return dom || dow;
}

/* The first allowed value >= from in bits (up to max), -1 if none. */
static int
cron_first(uint64 bits, int from, int max)
{
	for (int v = from; v <= max; v++)
		if ((bits >> v) & 1)
			return v;
	return -1;
}

/*
 * The first minute matching c strictly after `after`, in UTC; DT_NOEND when
 * none comes within ten years (e.g. "0 0 30 2 *").  Steps: start at the next
 * whole minute; per day (at most ten years of them), skip days whose month or
 * day does not match, else take the first matching hour and minute at or
 * after the start's (on the first day) or from midnight (later days).
 */
TimestampTz
kcron_next(const KCron *c, TimestampTz after)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			jd,
				last_jd,
				hour,
				minute;

	if (TIMESTAMP_NOT_FINITE(after) || timestamp2tm(after, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("cannot compute the next cron time after a time out of range"),
				 errhint("Pass a finite time.")));
	/* the next whole minute */
	hour = tm.tm_hour;
	minute = tm.tm_min + 1;
	if (minute == 60)
	{
		minute = 0;
		hour++;
	}
	jd = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	if (hour == 24)
	{
		hour = 0;
		jd++;
	}
	last_jd = jd + 366 * 10 + 3;
	for (; jd <= last_jd; jd++, hour = 0, minute = 0)
	{
		int			y,
					m,
					d,
					h;

		j2date(jd, &y, &m, &d);
		if (!((c->months >> m) & 1) || !cron_day_matches(c, jd, d))
			continue;
		for (h = cron_first(c->hours, hour, 23); h >= 0; h = cron_first(c->hours, h + 1, 23))
		{
			int			mi = cron_first(c->minutes, h == hour ? minute : 0, 59);

			if (mi >= 0)
			{
				struct pg_tm out = {0};
				Timestamp	result;

				out.tm_year = y;
				out.tm_mon = m;
				out.tm_mday = d;
				out.tm_hour = h;
				out.tm_min = mi;
				if (tm2timestamp(&out, 0, NULL, &result) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
							 errmsg("the next cron time is out of range"),
							 errhint("Pass an earlier time.")));
				return (TimestampTz) result;
			}
		}
	}
	return DT_NOEND;
}
