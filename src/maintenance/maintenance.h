/*
 * maintenance/maintenance.h
 *	  The maintenance jobs (retention, partitions, outbox, summaries, volume
 *	  resets, suppressions, scores, dual prices) and the context they run in:
 *	  a caller's transaction (SQL functions), a procedure that commits between
 *	  batches, or a background worker that runs its own transactions.  Shared
 *	  by the files of maintenance/, layered bottom-up: jobs.c (the framework)
 *	  < partitions.c < purge.c < retention.c < catalogue.c (the list of
 *	  jobs) < worker.c; see docs/workers.md.
 */
#ifndef KAIREON_MAINT_H
#define KAIREON_MAINT_H

#include "util/json.h"

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

/* Where a job runs, and so what happens between two of its batches. */
typedef enum KJobMode
{
	KJOB_ATOMIC,				/* in the caller's transaction: nothing */
	KJOB_PROCEDURE,				/* a CALLed procedure: SPI_commit() */
	KJOB_WORKER					/* the worker: commit and start a transaction */
} KJobMode;

/* One run of one or more jobs. */
typedef struct KJobCtx
{
	KJobMode	mode;
	MemoryContext mcxt;			/* lives across the commits of the run */
	const char *source;			/* maintenance_runs.source: worker, function, procedure */
	const char *trigger;		/* maintenance_runs.trigger: schedule, recovery, manual */
	int64		run_id;			/* the current job's maintenance_runs row, 0 if none */
	int64		batches;		/* batches done (progress) */
	/* retention: its arguments and report */
	bool		dry_run;
	List	   *classes;		/* names of data classes, NIL for all */
	struct KRetentionRow *report;
	int			nreport;
} KJobCtx;

/* A step run in a subtransaction by kjob_try. */
typedef void (*KStepFn) (void *arg);

/* A job: its name (maintenance_runs.job) and body, which fills detail. */
typedef struct KJobDef
{
	int			number;			/* its place in kaireon_jobs[]; its lock is (KJOB_LOCK_KEY, number + 1) */
	const char *name;
	const char *setting;		/* the GUC holding its schedule */
	const char *schedule;		/* that GUC's default */
	bool		record_start;	/* history row written when it starts (long jobs) */
	void		(*run) (KJobCtx *ctx, json_t *detail);
} KJobDef;

/* jobs.c: the framework; the run context */
extern void kaireon_jobs_init(void);
extern void kjob_boundary(KJobCtx *ctx, bool pause);
extern void kjob_sleep(int ms);
extern bool kjob_try(KJobCtx *ctx, KStepFn fn, void *arg, char **errmsg, int *sqlerrcode);
extern void kjob_require_maintainer(const char *what);
extern const char *kjob_run(KJobCtx *ctx, const KJobDef *job, json_t **detail, char **error);
extern int	kjob_status_errcode(const char *status);
extern void kjob_history_progress(KJobCtx *ctx, json_t *detail);
extern void kjob_mark_failed(int64 run_id, const char *message);

/*
 * kaireon's advisory locks (jobs.c): (KJOB_LOCK_KEY, 0) is held by the
 * maintenance worker of a database for its life, (KJOB_LOCK_KEY, n + 1) by
 * whoever runs job n of kaireon_jobs[] (as pg_advisory_lock(int4, int4)).
 */
#define KJOB_LOCK_KEY 1801546098	/* 'kair' */
extern bool kjob_lock_database(void);
extern int	kjob_lock_holder(int key2);
extern void kjob_release_lock(void);

/* small SPI helpers for the jobs (jobs.c) */
extern int64 kjob_exec_int(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls);
extern void kjob_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls);

/* partitions.c: the coming partitions of interaction_history, and the lock wait of partition DDL */
extern int	kaireon_retention_lock_timeout;
extern void kaireon_partitions_init(void);
extern json_t *kaireon_create_partitions(KJobCtx *ctx, char **error);
extern const KJobDef kjob_partitions;

/* retention.c */
typedef struct KRetentionRow KRetentionRow;
extern void kaireon_retention_init(void);
extern KRetentionRow *kaireon_retention(KJobCtx *ctx, bool dry_run, List *classes, int *nrows, json_t *summary);
extern const KJobDef kjob_retention;
extern const KJobDef kjob_suppressions;

/* catalogue.c: the jobs, in the order run_maintenance runs them */
extern void kaireon_catalogue_init(void);
extern const KJobDef *const kaireon_jobs[];
extern const int kaireon_njobs;

/* worker.c */
extern void kaireon_worker_init(void);

#endif							/* KAIREON_MAINT_H */
