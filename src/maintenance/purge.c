/*
 * maintenance/purge.c
 *	  A retention run's report rows (a row per tenant and data class, its
 *	  tables' counts and notes) and the purge of one table in bounded
 *	  batches, for retention.c: by tenant, by block range (a TID range scan
 *	  of about kaireon.retention_batch_size rows per batch) or through an
 *	  index.  Each batch is one statement in a subtransaction (kjob_try):
 *	  its error is noted on the rows concerned and the run goes on.  Every
 *	  statement leaves out the tenants whose class got a legal hold since
 *	  the run began (kret_pairs_sql).
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/bufmgr.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "util/datum.h"
#include "util/spi.h"
#include "maintenance/maintenance.h"
#include "stats/stats.h"
#include "maintenance/purge.h"

/* kaireon.retention_batch_size (registered by kaireon_retention_init, retention.c). */
int			kaireon_retention_batch_size = 5000;

/* The data classes' names, by class. */
const char *const kret_class_names[RC_N] = {
	"interactions", "decisions", "metrics", "summaries", "audit", "suppressions", "outbox"
};

/* A table step for kjob_try: one statement, the counts it returns per tenant. */
typedef struct Step
{
	RetRun	   *run;
	int			cls;
	const char *label;
	const char *sql;
	int			nargs;
	Oid		   *types;
	Datum	   *values;
	int64		count;			/* rows counted by this step */
} Step;

/* The report row of a tenant (by index) and class. */
KRetentionRow *
kret_row_of(RetRun *run, int t, int cls)
{
	return &run->rows[t * RC_N + cls];
}

/* strcmp for qsort and bsearch over char *. */
int
kret_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The index of a tenant in the run, or -1. */
int
kret_tenant_index(RetRun *run, const char *tenant_id)
{
	char	  **hit = bsearch(&tenant_id, run->tenants, run->ntenants, sizeof(char *), kret_cmp_str);

	return hit ? (int) (hit - run->tenants) : -1;
}

/* Add n rows of a table to a report row, the table count and the run total. */
void
kret_add_rows(RetRun *run, KRetentionRow *r, const char *label, int64 n)
{
	json_t	   *cur = json_object_get(r->tables, label);

	json_object_set_new(r->tables, label, json_integer((cur ? json_integer_value(cur) : 0) + n));
	r->rows += n;
	run->total_rows += n;
}

/* A note on a report row (an error, a reason, a retry). */
void
kret_add_note(KRetentionRow *r, const char *fmt,...)
{
	va_list		ap;
	char		buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(r->notes, json_string(buf));
}

/* A note on every row of a class (an error of a statement covering all tenants). */
static void
note_class(RetRun *run, int cls, const char *label, const char *msg)
{
	for (int t = 0; t < run->ntenants; t++)
		if (!kret_row_of(run, t, cls)->held)
			kret_add_note(kret_row_of(run, t, cls), "%s: %s", label, msg);
	json_array_append_new(json_object_get(run->summary, "errors"),
						  json_pack("{s:s,s:s,s:s}", "class", kret_class_names[cls], "table", label, "error", msg));
}

/*
 * The tenants to purge for a class: those without a hold, with their cutoff,
 * or with now - window_days when window_days >= 0 (decision locks and
 * idempotency keys); only those in `only` (tenant ids) when given, and only
 * those whose cutoff is after `after` when given.
 */
Targets
kret_targets(RetRun *run, int cls, int window_days, List *only, TimestampTz *after)
{
	Targets		tg = {0};
	Datum	   *ts = palloc(sizeof(Datum) * Max(run->ntenants, 1));
	Datum	   *cs = palloc(sizeof(Datum) * Max(run->ntenants, 1));

	tg.max_cutoff = DT_NOBEGIN;
	for (int t = 0; t < run->ntenants; t++)
	{
		KRetentionRow *r = kret_row_of(run, t, cls);
		TimestampTz cutoff;

		if (r->held)
			continue;
		if (only != NIL)
		{
			ListCell   *lc;
			bool		found = false;

			foreach(lc, only)
				if (strcmp((char *) lfirst(lc), run->tenants[t]) == 0)
					found = true;
			if (!found)
				continue;
		}
		cutoff = window_days >= 0 ? run->as_of - (TimestampTz) window_days * USECS_PER_DAY : r->cutoff;
		if (after != NULL && cutoff <= *after)
			continue;
		ts[tg.n] = CStringGetTextDatum(run->tenants[t]);
		cs[tg.n] = TimestampTzGetDatum(cutoff);
		tg.max_cutoff = Max(tg.max_cutoff, cutoff);
		tg.n++;
	}
	tg.tenants = kd_array(ts, NULL, tg.n, TEXTOID);
	tg.cutoffs = kd_array(cs, NULL, tg.n, TIMESTAMPTZOID);
	tg.tenant_items = ts;
	tg.cutoff_items = cs;
	return tg;
}

/* kjob_try body: run a step's statement, adding its (tenant_id, count) rows to the report. */
static void
step_body(void *arg)
{
	Step	   *s = (Step *) arg;
	int			rc;

	rc = kspi_execute_with_args(s->sql, s->nargs, s->types, s->values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "kaireon: retention statement failed: %s", SPI_result_code_string(rc));
	s->count = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *tenant = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		int			t = tenant ? kret_tenant_index(s->run, tenant) : -1;

		s->count += n;
		if (t >= 0)
			kret_add_rows(s->run, kret_row_of(s->run, t, s->cls), s->label, n);
	}
	if (SPI_tuptable)
		SPI_freetuptable(SPI_tuptable);
}

/* Run a step in a subtransaction; on error note it for the class and return false. */
static bool
run_step(Step *s)
{
	char	   *msg = NULL;

	if (kjob_try(s->run->ctx, step_body, s, &msg, NULL))
		return true;
	note_class(s->run, s->cls, s->label, msg);
	return false;
}

/* The progress of the run, in its history row (worker and procedure). */
void
kret_progress(RetRun *run, const char *table)
{
	json_object_set_new(run->summary, "rowsDeleted", json_integer(run->total_rows));
	json_object_set_new(run->summary, "partitionsDropped", json_integer(run->total_partitions));
	json_object_set_new(run->summary, "current", table ? json_string(table) : json_null());
	kjob_history_progress(run->ctx, run->summary);
	kaireon_progress_update(table ? psprintf("retention: %s", table) : "retention", run->total_rows, -1);
}

/* An int64 from a one-row, one-column query (NULL -> dflt); it may change data. */
int64
kret_query_int(const char *sql, int nargs, Oid *types, Datum *values, int64 dflt)
{
	int			rc = kspi_execute_with_args(sql, nargs, types, values, NULL, false, 1);
	int64		v = dflt;
	bool		isnull;

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: retention query failed: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			v = DatumGetInt64(d);
	}
	return v;
}

/*
 * The (tenant_id, cutoff) pairs $1, $2 of a statement as a FROM item named
 * alias, less the tenants whose class got a legal hold after the run loaded
 * its policies (read again from kaireon.retention_policies, the one place a
 * hold is worked out): every batch is its own statement, so a hold set while
 * a long run goes on stops it from the next batch.
 */
char *
kret_pairs_sql(int cls, const char *alias)
{
	return psprintf("(SELECT u.tenant_id, u.cutoff FROM unnest($1, $2) AS u (tenant_id, cutoff) "
					"   JOIN kaireon.retention_policies() p ON p.tenant_id = u.tenant_id "
					"  WHERE p.data_class = %s AND NOT p.legal_hold) AS %s",
					quote_literal_cstr(kret_class_names[cls]), alias);
}

/* Context of find_range (kjob_try body). */
typedef struct RangeArg
{
	const char *sql;
	Datum		values[2];
	Oid			types[2];
	int64		first;
	int64		last;
} RangeArg;

/* kjob_try body: the first and last block holding expired rows (-1 when none). */
static void
range_body(void *arg)
{
	RangeArg   *a = (RangeArg *) arg;
	int			rc = kspi_execute_with_args(a->sql, 2, a->types, a->values, NULL, true, 1);
	bool		isnull;
	Datum		d;

	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "kaireon: retention block range query failed");
	a->first = a->last = -1;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
	{
		a->first = DatumGetInt64(d);
		a->last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
}

/*
 * Purge a Citus table (kaireon.distribute()) tenant by tenant: every
 * statement names its tenant, so Citus sends it to the tenant's shard, and
 * removes at most kaireon.retention_batch_size rows found through the
 * shard's indexes (interaction_history's by its primary key's tenant prefix,
 * occurred_at checked on the rows: no index of it leads with (tenant_id,
 * occurred_at), docs/schema.md).  pred_template is index_delete's
 * (%1$s the table's alias, %2$s the alias of the tenant's (tenant_id, cutoff)
 * pair).  The legal holds are the ones read when the run started (the
 * single-node statements read them again; Citus sends no statement joining
 * retention_policies() to a shard).
 */
static void
tenant_delete(RetRun *run, int cls, const char *table, const char *label, const char *index_col,
			  const char *pred_template, Targets tg)
{
	Step		s = {0};
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[3];
	char	   *pred = psprintf(pred_template, "x", "c");
	char	   *ypred = psprintf(pred_template, "y", "k");
	const char *pair = "WITH c AS (SELECT $1::text AS tenant_id, $2::timestamptz AS cutoff) ";

	s.run = run;
	s.cls = cls;
	s.label = label;
	s.types = types;
	s.values = values;
	s.nargs = 3;
	values[2] = Int32GetDatum(kaireon_retention_batch_size);
	if (run->dry_run)
		s.sql = psprintf("%sSELECT x.tenant_id, count(*) FROM %s x, c WHERE x.tenant_id = $1 AND %s GROUP BY 1",
						 pair, table, pred);
	else
		s.sql = psprintf("%1$s, d AS (DELETE FROM %2$s x USING c "
						 "  WHERE x.tenant_id = $1 AND %3$s "
						 "    AND x.ctid = ANY (ARRAY(SELECT y.ctid FROM %2$s y, c k "
						 "                             WHERE y.tenant_id = $1 AND y.%4$s < k.cutoff AND %5$s LIMIT $3)) "
						 "  RETURNING x.tenant_id) "
						 "SELECT tenant_id, count(*) FROM d GROUP BY 1",
						 pair, table, pred, quote_identifier(index_col), ypred);
	for (int i = 0; i < tg.n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		values[0] = tg.tenant_items[i];
		values[1] = tg.cutoff_items[i];
		for (;;)
		{
			if (!run_step(&s))
				return;
			kret_progress(run, label);
			kjob_boundary(run->ctx, s.count > 0);
			if (run->dry_run || s.count < kaireon_retention_batch_size)
				break;
		}
	}
}

/*
 * Purge a table without an index on its time column: find the block range
 * holding expired rows (one scan), then delete range by range, each batch a
 * TID range scan of about kaireon.retention_batch_size rows.  In a dry run,
 * one counting query.
 */
void
kret_walk_delete(RetRun *run, int cls, const char *table, const char *label, const char *time_col, Targets tg)
{
	char	   *pred;
	RangeArg	ra;
	Step		s = {0};
	Oid			types[4] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIDOID, TIDOID};
	Datum		values[4];
	int64		per_block;
	int64		blocks;

	if (tg.n == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	if (kspi_citus_table(table))
	{
		tenant_delete(run, cls, table, label, time_col,
					  psprintf("%%1$s.%s < %%2$s.cutoff", quote_identifier(time_col)), tg);
		return;
	}
	pred = psprintf("x.tenant_id = c.tenant_id AND x.%s < c.cutoff", quote_identifier(time_col));
	s.run = run;
	s.cls = cls;
	s.label = label;
	values[0] = tg.tenants;
	values[1] = tg.cutoffs;
	s.types = types;
	s.values = values;
	if (run->dry_run)
	{
		s.sql = psprintf("SELECT x.tenant_id, count(*) FROM %s x JOIN %s ON true WHERE %s GROUP BY 1",
						 table, kret_pairs_sql(cls, "c"), pred);
		s.nargs = 2;
		(void) run_step(&s);
		return;
	}
	ra.sql = psprintf("SELECT (min(x.ctid)::text::point)[0]::bigint, (max(x.ctid)::text::point)[0]::bigint "
					  "  FROM %s x JOIN %s ON true WHERE %s", table, kret_pairs_sql(cls, "c"), pred);
	ra.types[0] = TEXTARRAYOID;
	ra.types[1] = TIMESTAMPTZARRAYOID;
	ra.values[0] = tg.tenants;
	ra.values[1] = tg.cutoffs;
	{
		char	   *msg = NULL;

		if (!kjob_try(run->ctx, range_body, &ra, &msg, NULL))
		{
			note_class(run, cls, label, msg);
			return;
		}
	}
	if (ra.first < 0)
		return;
	/* rows per block from the statistics (default 50) */
	{
		Oid			t1[1] = {TEXTOID};
		Datum		v1[1] = {CStringGetTextDatum(table)};

		per_block = kret_query_int("SELECT CASE WHEN c.relpages > 0 AND c.reltuples > 0 "
							  "            THEN ceil(c.reltuples / c.relpages)::bigint END "
							  "  FROM pg_class c WHERE c.oid = $1::regclass", 1, t1, v1, 50);
	}
	blocks = Max(1, kaireon_retention_batch_size / Max(per_block, 1));
	s.sql = psprintf("WITH d AS (DELETE FROM %s x USING %s "
					 "  WHERE x.ctid >= $3 AND x.ctid < $4 AND %s RETURNING x.tenant_id) "
					 "SELECT tenant_id, count(*) FROM d GROUP BY 1", table, kret_pairs_sql(cls, "c"), pred);
	s.nargs = 4;
	for (int64 b = ra.first; b <= ra.last; b += blocks)
	{
		values[2] = DirectFunctionCall1(tidin, CStringGetDatum(psprintf("(%lld,0)", (long long) b)));
		values[3] = DirectFunctionCall1(tidin, CStringGetDatum(psprintf("(%lld,0)", (long long) Min(b + blocks, (int64) MaxBlockNumber))));
		if (!run_step(&s))
			return;
		kret_progress(run, label);
		kjob_boundary(run->ctx, s.count > 0);
	}
}

/*
 * Purge a table through an index on index_col: batches of at most
 * kaireon.retention_batch_size rows whose index_col is before the newest
 * cutoff and which match `pred`, a template in which %1$s is the table's
 * alias and %2$s the alias of the (tenant_id, cutoff) pairs.
 */
void
kret_index_delete(RetRun *run, int cls, const char *table, const char *label, const char *index_col,
			 const char *pred_template, Targets tg)
{
	Step		s = {0};
	Oid			types[4] = {TEXTARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZOID, INT4OID};
	Datum		values[4];
	char	   *pred = psprintf(pred_template, "x", "c");
	char	   *ypred = psprintf(pred_template, "y", "k");

	if (tg.n == 0)
		return;
	CHECK_FOR_INTERRUPTS();
	if (kspi_citus_table(table))
	{
		tenant_delete(run, cls, table, label, index_col, pred_template, tg);
		return;
	}
	s.run = run;
	s.cls = cls;
	s.label = label;
	s.types = types;
	s.values = values;
	values[0] = tg.tenants;
	values[1] = tg.cutoffs;
	values[2] = TimestampTzGetDatum(tg.max_cutoff);
	values[3] = Int32GetDatum(kaireon_retention_batch_size);
	if (run->dry_run)
	{
		s.sql = psprintf("SELECT x.tenant_id, count(*) FROM %s x JOIN %s "
						 "  ON x.tenant_id = c.tenant_id WHERE x.%s < $3 AND %s GROUP BY 1",
						 table, kret_pairs_sql(cls, "c"), quote_identifier(index_col), pred);
		s.nargs = 3;
		(void) run_step(&s);
		return;
	}
	s.sql = psprintf("WITH d AS (DELETE FROM %1$s x USING %5$s "
					 "  WHERE x.ctid = ANY (ARRAY(SELECT y.ctid FROM %1$s y "
					 "                              JOIN %6$s ON y.tenant_id = k.tenant_id "
					 "                             WHERE y.%2$s < $3 AND %3$s LIMIT $4)) "
					 "    AND x.tenant_id = c.tenant_id AND %4$s RETURNING x.tenant_id) "
					 "SELECT tenant_id, count(*) FROM d GROUP BY 1",
					 table, quote_identifier(index_col), ypred, pred, kret_pairs_sql(cls, "c"), kret_pairs_sql(cls, "k"));
	s.nargs = 4;
	for (;;)
	{
		if (!run_step(&s))
			return;
		kret_progress(run, label);
		kjob_boundary(run->ctx, s.count > 0);
		if (s.count < kaireon_retention_batch_size)
			break;
	}
}
