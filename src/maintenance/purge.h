/*
 * maintenance/purge.h
 *	  A retention run with its report rows, and the purge of one table in
 *	  bounded batches (purge.c), for retention.c.
 */
#ifndef KAIREON_MAINTENANCE_PURGE_H
#define KAIREON_MAINTENANCE_PURGE_H

#include "maintenance/maintenance.h"

/* The data classes, in the order of the report. */
enum
{
	RC_INTERACTIONS,
	RC_DECISIONS,
	RC_METRICS,
	RC_SUMMARIES,
	RC_AUDIT,
	RC_SUPPRESSIONS,
	RC_OUTBOX,
	RC_N
};

/* The data classes' names (kaireon.retention_policies.data_class), by class. */
extern const char *const kret_class_names[RC_N];

/* One row of the report: a tenant and class, or (tenant NULL) the partitions. */
struct KRetentionRow
{
	char	   *tenant_id;
	int			cls;
	int			days;
	bool		hold;			/* legal hold */
	bool		held;			/* nothing removed: hold, or the class cannot be purged */
	bool		has_cutoff;
	TimestampTz cutoff;
	int64		rows;
	int			partitions;
	json_t	   *tables;			/* {"table": rows} */
	json_t	   *notes;			/* ["..."] */
};

/* One run of retention. */
typedef struct RetRun
{
	KJobCtx    *ctx;
	bool		dry_run;
	bool		want[RC_N];
	int			ntenants;
	char	  **tenants;		/* sorted by strcmp */
	KRetentionRow *rows;		/* ntenants * RC_N, then the partitions row */
	KRetentionRow *global;
	json_t	   *summary;
	int64		total_rows;
	int			total_partitions;
	TimestampTz as_of;
} RetRun;

/* The tenants and cutoffs a statement purges for (text[] and timestamptz[] datums). */
typedef struct Targets
{
	int			n;
	Datum		tenants;
	Datum		cutoffs;
	Datum	   *tenant_items;	/* the same, one by one (the per-tenant path on Citus) */
	Datum	   *cutoff_items;
	TimestampTz max_cutoff;
} Targets;

/* kaireon.retention_batch_size: rows retention removes per batch. */
extern int	kaireon_retention_batch_size;

extern KRetentionRow *kret_row_of(RetRun *run, int t, int cls);
extern int	kret_cmp_str(const void *a, const void *b);
extern int	kret_tenant_index(RetRun *run, const char *tenant_id);
extern void kret_add_rows(RetRun *run, KRetentionRow *r, const char *label, int64 n);
extern void kret_add_note(KRetentionRow *r, const char *fmt,...) pg_attribute_printf(2, 3);
extern Targets kret_targets(RetRun *run, int cls, int window_days, List *only, TimestampTz *after);
extern void kret_progress(RetRun *run, const char *table);
extern int64 kret_query_int(const char *sql, int nargs, Oid *types, Datum *values, int64 dflt);
extern char *kret_pairs_sql(int cls, const char *alias);
extern void kret_walk_delete(RetRun *run, int cls, const char *table, const char *label, const char *time_col,
							 Targets tg);
extern void kret_index_delete(RetRun *run, int cls, const char *table, const char *label, const char *index_col,
							  const char *pred_template, Targets tg);

#endif							/* KAIREON_MAINTENANCE_PURGE_H */
