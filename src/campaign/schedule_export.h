/*
 * campaign/schedule_export.h
 *	  Private interface of scheduled runs (schedule.c) and their exports
 *	  (schedule_export.c): what schedule_export.c offers schedule.c (the
 *	  export settings it defines, which schedule.c registers, and the export
 *	  step), and the statements' helpers and the result rows of
 *	  kaireon.run_schedules that both files use, inline.  Serves only these
 *	  two files: not for use outside src/campaign/schedule*.c.
 */
#ifndef KAIREON_CAMPAIGN_SCHEDULE_EXPORT_H
#define KAIREON_CAMPAIGN_SCHEDULE_EXPORT_H

#include "postgres.h"

#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "util/spi.h"

/* Due runs (or pending exports) read per look-up. */
#define SCHEDULE_CANDIDATES 20

/* ---- the export settings (schedule_export.c; registered by schedule.c) ---- */

/* kaireon.export_directory: where file exports are written; empty: refused */
extern char *kaireon_export_directory;
/* kaireon.export_batch_size: decisions an export writes per batch */
extern int	kaireon_export_batch_size;
/* kaireon.export_fail_after (tests only): an export fails after this many rows; 0: never */
extern int	kaireon_export_fail_after;

/* ---- helpers ---- */

/* Column n (1-based) of row r of the last result as a palloc'd string, NULL for NULL. */
static inline char *
sched_col(int r, int n)
{
	return SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, n);
}

/* Column n of row r as a Datum (by-value types only), *isnull set. */
static inline Datum
sched_col_datum(int r, int n, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, n, isnull);
}

/* Run a statement; elog on an SPI failure (can't happen for kaireon's own statements). */
static inline void
sched_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, int expect)
{
	int			rc = kspi_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "kaireon: \"%s\" failed: %s", sql, SPI_result_code_string(rc));
}

/* The (tenant_id, id) rows the last statement returned, copied; their number. */
static inline int
sched_candidates(char ***tenants, char ***ids)
{
	int			n = (int) SPI_processed;

	*tenants = palloc(sizeof(char *) * Max(n, 1));
	*ids = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		(*tenants)[i] = sched_col(i, 1);
		(*ids)[i] = sched_col(i, 2);
	}
	return n;
}

/* The rows run_schedules returns (one per run and per export batch). */
typedef struct ScheduleOut
{
	ReturnSetInfo *rsinfo;
} ScheduleOut;

/* Append one result row. */
static inline void
sched_emit(ScheduleOut *out, const char *action, const char *tenant, const char *run_id, const char *campaign_run_id,
		   TimestampTz slot, const char *status, TimestampTz next, bool has_next, int64 rows, const char *detail)
{
	Datum		v[9];
	bool		n[9] = {false};

	v[0] = CStringGetTextDatum(action);
	v[1] = CStringGetTextDatum(tenant);
	v[2] = CStringGetTextDatum(run_id);
	n[3] = campaign_run_id == NULL;
	if (campaign_run_id)
		v[3] = CStringGetTextDatum(campaign_run_id);
	n[4] = slot == 0;
	v[4] = TimestampTzGetDatum(slot);
	v[5] = CStringGetTextDatum(status);
	n[6] = !has_next;
	v[6] = TimestampTzGetDatum(next);
	v[7] = Int64GetDatum(rows);
	n[8] = detail == NULL;
	if (detail)
		v[8] = CStringGetTextDatum(detail);
	tuplestore_putvalues(out->rsinfo->setResult, out->rsinfo->setDesc, v, n);
}

/* ---- schedule_export.c ---- */

/* Export one batch of one pending export; false when none is pending. */
extern bool kaireon_export_one(TimestampTz at, ScheduleOut *out);

#endif							/* KAIREON_CAMPAIGN_SCHEDULE_EXPORT_H */
