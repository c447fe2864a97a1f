/*
 * maintenance/partitions.c
 *	  The coming months' partitions of interaction_history: the partitions
 *	  job, also run at the end of retention.  (Retention retires the old ones:
 *	  retention.c.)
 *
 * kaireon.create_interaction_partitions takes a lock on the parent that
 * writers conflict with, so it runs with a short lock_timeout
 * (kaireon.retention_lock_timeout, also the wait of retention's partition
 * drops) and, while the locks are busy, is retried a few times outside any
 * transaction; beyond that it is left to the next run.
 */
#include "postgres.h"

#include "util/json.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/guc.h"

#include "util/spi.h"
#include "maintenance/maintenance.h"

int			kaireon_retention_lock_timeout = 100;
static int	kaireon_partition_months_ahead = 3;

/* Register the settings of partition creation (before the kaireon. prefix is reserved). */
void
kaireon_partitions_init(void)
{
	DefineCustomIntVariable("kaireon.retention_lock_timeout",
							"Longest wait for the locks of a partition retention drops, or of partition creation.",
							"Beyond it the step is retried a few times, then left to the next run.",
							&kaireon_retention_lock_timeout, 100, 1, 60000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.partition_months_ahead",
							"Months of interaction_history partitions created ahead of the current one.",
							NULL, &kaireon_partition_months_ahead, 3, 0, 120,
							PGC_SUSET, 0, NULL, NULL, NULL);
}

/* Context of the partition pre-creation (kjob_try body). */
typedef struct CreateArg
{
	json_t	   *created;
} CreateArg;

/* kjob_try body: kaireon.create_interaction_partitions with a short lock_timeout. */
static void
create_body(void *arg)
{
	CreateArg  *a = (CreateArg *) arg;
	int			nest = NewGUCNestLevel();
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(kaireon_partition_months_ahead)};
	int			rc;

	(void) set_config_option("lock_timeout", psprintf("%d", Max(kaireon_retention_lock_timeout, 1)),
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	rc = kspi_execute_with_args("SELECT p FROM kaireon.create_interaction_partitions($1) AS p", 1, types, values,
							    NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: create_interaction_partitions failed");
	for (uint64 i = 0; i < SPI_processed; i++)
		json_array_append_new(a->created, json_string(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	AtEOXact_GUC(true, nest);
}

/*
 * Create the coming months' partitions (kaireon.partition_months_ahead),
 * waiting at most kaireon.retention_lock_timeout for the locks (5 attempts,
 * 0.2 to 1 s apart, when they are busy); returns the names created (a JSON
 * array), or NULL with *error set.
 */
json_t *
kaireon_create_partitions(KJobCtx *ctx, char **error)
{
	CreateArg	a;
	int			code = 0;

	for (int attempt = 1; attempt <= 5; attempt++)
	{
		a.created = json_array();
		if (kjob_try(ctx, create_body, &a, error, &code))
			return a.created;
		if (code != ERRCODE_LOCK_NOT_AVAILABLE)
			break;
		/* writers hold the table: wait, outside any transaction, and try again */
		kjob_boundary(ctx, false);
		if (ctx->mode != KJOB_ATOMIC)
			kjob_sleep(200 * attempt);
	}
	return NULL;
}

/* partitions: the coming months' partitions of interaction_history. */
static void
job_partitions(KJobCtx *ctx, json_t *detail)
{
	char	   *err = NULL;
	json_t	   *created = kaireon_create_partitions(ctx, &err);

	if (created == NULL)
		json_object_set_new(detail, "error", json_string(err));
	else
		json_object_set_new(detail, "created", created);
}

const KJobDef kjob_partitions = {1, "partitions", "kaireon.partition_schedule", "1h", true, job_partitions};
