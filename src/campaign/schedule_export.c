/*
 * campaign/schedule_export.c
 *	  The exports of scheduled campaign runs (docs/schedules.md): the
 *	  decisions of a completed run whose file_config asks for it, written
 *	  batch by batch as CSV or JSON lines into kaireon.campaign_exports or a
 *	  file of kaireon.export_directory, for kaireon.run_schedules
 *	  (schedule.c, which also registers the export settings defined here).
 *
 * Export protocol.  An export is a kaireon.export_checkpoints row (one per
 * campaign run: export_type 'campaign_run:<id>') holding the position of the
 * last decision written (customer, rank, in key order), the rows and bytes
 * written.  Each batch is locked (FOR UPDATE SKIP LOCKED), written and
 * checkpointed in one subtransaction (one transaction in the worker).  A file
 * is first truncated to the checkpointed size, so bytes a failed or crashed
 * batch appended are dropped before the batch is written again: no
 * duplicates, nothing lost.  A batch that fails marks the checkpoint failed
 * with the error and one more attempt; it is retried until
 * EXPORT_MAX_ATTEMPTS.  The file's directory is the superuser setting
 * kaireon.export_directory; its name is derived from the tenant's slug and
 * the campaign run's generated id only (never from text a tenant chose).
 */
#include "postgres.h"

#include <ctype.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "util/subxact.h"
#include "campaign/schedule_export.h"

/* Attempts of an export batch before the export is left failed. */
#define EXPORT_MAX_ATTEMPTS 5
/*
 * An export is due: running, or failed less than EXPORT_MAX_ATTEMPTS times
 * and not in the last minute before $3 (its failure stamped last_export_at).
 */
#define EXPORT_DUE "(status = 'running' OR (attempts < " CppAsString2(EXPORT_MAX_ATTEMPTS) \
	" AND (last_export_at IS NULL OR last_export_at <= $3::timestamptz - interval '1 minute')))"

/* The export settings (registered by kaireon_schedule_init, schedule.c). */
char	   *kaireon_export_directory = NULL;
int			kaireon_export_batch_size = 10000;
int			kaireon_export_fail_after = 0;

/* ---- exports ---- */

/* A claimed export checkpoint and the batch being written. */
typedef struct Export
{
	char	   *tenant_id;
	char	   *id;
	char	   *campaign_run_id;
	char	   *run_id;			/* the kaireon.runs row */
	char	   *format;			/* csv, json */
	char	   *target;			/* file, table */
	char	   *slug;
	int64		rows;			/* rows_exported */
	int64		bytes;			/* bytes_written */
	char	   *last_customer;	/* NULL: from the start */
	int			last_rank;
	TimestampTz at;
	/* the batch's result */
	int64		written;
	bool		done;
	char	   *file_name;
} Export;

/* Claim one pending export (same two steps as claim_run); false when none. */
static bool
claim_export(TimestampTz at, Export *e)
{
	int			n;
	char	  **tenants,
			  **ids;
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		atarg = TimestampTzGetDatum(at);

	if (kspi_execute_with_args("SELECT tenant_id, id FROM kaireon.export_checkpoints "
							   " WHERE status IN ('running', 'failed') AND campaign_run_id IS NOT NULL AND " EXPORT_DUE
							   " ORDER BY created_at, id LIMIT " CppAsString2(SCHEDULE_CANDIDATES),
							   3, (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID}, (Datum[]) {0, 0, atarg}, "nn ", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the pending exports failed");
	n = sched_candidates(&tenants, &ids);
	for (int i = 0; i < n; i++)
	{
		Datum		args[3] = {CStringGetTextDatum(tenants[i]), CStringGetTextDatum(ids[i]), atarg};
		bool		isnull;
		char	   *rank;

		if (kspi_execute_with_args("SELECT x.campaign_run_id, x.format, x.target, t.slug, x.rows_exported, "
								   "       x.bytes_written, x.last_customer_id, x.last_rank, "
								   "       (SELECT c.campaign_id FROM kaireon.campaign_runs c "
								   "         WHERE c.tenant_id = x.tenant_id AND c.id = x.campaign_run_id) "
								   "  FROM kaireon.export_checkpoints x JOIN kaireon.tenants t ON t.id = x.tenant_id "
								   " WHERE x.tenant_id = $1 AND x.id = $2 AND x.status IN ('running', 'failed') AND " EXPORT_DUE
								   "   FOR UPDATE OF x SKIP LOCKED", 3, types, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "kaireon: locking an export failed");
		if (SPI_processed == 0)
			continue;
		e->tenant_id = tenants[i];
		e->id = ids[i];
		e->campaign_run_id = sched_col(0, 1);
		e->format = sched_col(0, 2);
		e->target = sched_col(0, 3);
		e->slug = sched_col(0, 4);
		e->rows = DatumGetInt64(sched_col_datum(0, 5, &isnull));
		e->bytes = DatumGetInt64(sched_col_datum(0, 6, &isnull));
		e->last_customer = sched_col(0, 7);
		rank = sched_col(0, 8);
		e->last_rank = rank ? atoi(rank) : 0;
		e->run_id = sched_col(0, 9);
		return true;
	}
	return false;
}

/* The columns of an export, in order (CSV header; JSON keys). */
static const char *const export_columns =
"customer_id,rank,offer_id,creative_id,channel_id,decision_flow_id,score,arbitrated_value,mandatory,"
"recommendation_id,interaction_id";

/* A CSV field of a text expression: NULL empty, else quoted with quotes doubled (RFC 4180). */
#define CSV_TEXT(x) "CASE WHEN " x " IS NULL THEN '' ELSE '\"' || replace(" x ", '\"', '\"\"') || '\"' END"

/* The file an export writes: the directory's path and a name from the slug and the campaign run's id. */
static char *
export_file_name(const Export *e)
{
	/* the campaign run id is generated (gen_random_uuid); anything else is refused */
	for (const char *p = e->campaign_run_id; *p; p++)
		if (!(isxdigit((unsigned char) *p) || *p == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("campaign run id \"%s\" cannot name an export file", e->campaign_run_id),
					 errhint("File exports name their file after the generated id of the campaign run.")));
	for (const char *p = e->slug; *p; p++)
		if (!(islower((unsigned char) *p) || isdigit((unsigned char) *p) || *p == '_'))
			elog(ERROR, "kaireon: tenant slug \"%s\" is not [a-z0-9_]", e->slug);
	return psprintf("kaireon_%s_%s.%s", e->slug, e->campaign_run_id, strcmp(e->format, "json") == 0 ? "jsonl" : "csv");
}

/* The export directory, checked: 55000 when unset, 58P01 when it is not a directory. */
static const char *
export_directory(void)
{
	struct stat st;

	if (kaireon_export_directory == NULL || kaireon_export_directory[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("file export is not enabled: kaireon.export_directory is not set"),
				 errhint("A superuser sets kaireon.export_directory to a directory the server may write (postgresql.conf), or use file_config target \"table\".")));
	if (stat(kaireon_export_directory, &st) != 0 || !S_ISDIR(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FILE),
				 errmsg("kaireon.export_directory \"%s\" is not a directory", kaireon_export_directory),
				 errhint("Create it, writable by the server's OS user, or point the setting at one.")));
	return kaireon_export_directory;
}

/* The test-only interruption (kaireon.export_fail_after): after that many rows of an export. */
static void
maybe_fail(const Export *e, int64 rows_so_far)
{
	if (kaireon_export_fail_after > 0 && rows_so_far >= kaireon_export_fail_after)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("export %s interrupted after %lld rows (kaireon.export_fail_after)", e->id,
						(long long) rows_so_far),
				 errhint("A test setting: reset kaireon.export_fail_after.")));
}

/*
 * One batch of an export (a subtransaction step).  Steps: read the next
 * decisions after the checkpoint's position as lines; write them (a file:
 * truncated to the checkpointed size first, the CSV header at the start;
 * the table: one row per line); move the checkpoint.
 */
static void
export_batch(void *arg)
{
	Export	   *e = (Export *) arg;
	bool		json = strcmp(e->format, "json") == 0;
	bool		file = strcmp(e->target, "file") == 0;
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTOID, INT4OID, INT4OID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			n;
	char	  **lines;
	char	   *last_customer = NULL;
	int			last_rank = 0;
	int64		bytes = e->bytes;
	bool		header = !json && e->rows == 0 && e->bytes == 0;

	args[0] = CStringGetTextDatum(e->tenant_id);
	args[1] = CStringGetTextDatum(e->campaign_run_id);
	args[2] = e->last_customer ? CStringGetTextDatum(e->last_customer) : (Datum) 0;
	nulls[2] = e->last_customer ? ' ' : 'n';
	args[3] = Int32GetDatum(e->last_rank);
	args[4] = Int32GetDatum(kaireon_export_batch_size);
	sched_exec(json ?
			   "SELECT d.customer_id, d.rank, jsonb_build_object('customer_id', d.customer_id, 'rank', d.rank, "
			   "       'offer_id', d.offer_id, 'creative_id', d.creative_id, 'channel_id', d.channel_id, "
			   "       'decision_flow_id', d.decision_flow_id, 'score', d.score, 'arbitrated_value', d.arbitrated_value, "
			   "       'mandatory', d.mandatory, 'recommendation_id', d.recommendation_id, "
			   "       'interaction_id', d.interaction_id)::text "
			   "  FROM kaireon.campaign_decisions d WHERE d.tenant_id = $1 AND d.campaign_run_id = $2 "
			   "   AND ($3::text IS NULL OR (d.customer_id, d.rank) > ($3, $4)) ORDER BY d.customer_id, d.rank LIMIT $5" :
			   "SELECT d.customer_id, d.rank, concat_ws(',', " CSV_TEXT("d.customer_id") ", d.rank, " CSV_TEXT("d.offer_id") ", "
			   CSV_TEXT("d.creative_id") ", " CSV_TEXT("d.channel_id") ", " CSV_TEXT("d.decision_flow_id") ", d.score, "
			   "       d.arbitrated_value, d.mandatory, " CSV_TEXT("d.recommendation_id") ", " CSV_TEXT("d.interaction_id") ") "
			   "  FROM kaireon.campaign_decisions d WHERE d.tenant_id = $1 AND d.campaign_run_id = $2 "
			   "   AND ($3::text IS NULL OR (d.customer_id, d.rank) > ($3, $4)) ORDER BY d.customer_id, d.rank LIMIT $5",
			   5, types, args, nulls, SPI_OK_SELECT);
	n = (int) SPI_processed;
	lines = palloc(sizeof(char *) * (n + 1));
	for (int i = 0; i < n; i++)
		lines[i] = sched_col(i, 3);
	if (n > 0)
	{
		last_customer = sched_col(n - 1, 1);
		last_rank = atoi(sched_col(n - 1, 2));
	}
	e->done = n < kaireon_export_batch_size;
	if (file)
	{
		char	   *path;
		int			fd;
		struct stat st;

		e->file_name = export_file_name(e);
		path = psprintf("%s/%s", export_directory(), e->file_name);
		/*
		 * never through a symbolic link, nor into a file with another name (a
		 * hard link), a FIFO (O_NONBLOCK: opening one does not wait) or a file
		 * someone else created (they could read it)
		 */
		fd = OpenTransientFilePerm(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | PG_BINARY, S_IRUSR | S_IWUSR | S_IRGRP);
		if (fd < 0 && errno == ELOOP)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("export file \"%s\" is a symbolic link", path),
					 errhint("Remove it from kaireon.export_directory; only the server creates the export files there.")));
		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open export file \"%s\": %m", path),
					 errhint("The server's OS user must be able to write kaireon.export_directory.")));
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("export file \"%s\" is not a regular file with one link owned by the server", path),
					 errhint("Remove it from kaireon.export_directory; only the server creates the export files there.")));
		/* the checkpointed bytes were written before it committed: a shorter file was changed meanwhile */
		if ((off_t) bytes > st.st_size)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("export file \"%s\" has %lld bytes, fewer than the %lld its checkpoint has written", path,
							(long long) st.st_size, (long long) bytes),
					 errhint("The file was truncated or removed; export the campaign run again with a new checkpoint.")));
		/* drop what a failed batch appended after the checkpoint */
		if (ftruncate(fd, (off_t) bytes) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not truncate export file \"%s\": %m", path)));
		for (int i = -1; i < n; i++)
		{
			char	   *line;
			size_t		len;

			if (i < 0 && !header)
				continue;
			line = psprintf("%s\n", i < 0 ? export_columns : lines[i]);
			len = strlen(line);
			if (pg_pwrite(fd, line, len, (off_t) bytes) != (ssize_t) len)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not write export file \"%s\": %m", path)));
			bytes += len;
			if (i >= 0)
				maybe_fail(e, e->rows + i + 1);
		}
		if (pg_fsync(fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not fsync export file \"%s\": %m", path)));
		CloseTransientFile(fd);
	}
	else
	{
		Oid			ttypes[4] = {TEXTOID, TEXTOID, INT8OID, TEXTOID};
		Datum		targs[4];

		targs[0] = args[0];
		targs[1] = args[1];
		for (int i = -1; i < n; i++)
		{
			if (i < 0 && !header)
				continue;
			targs[2] = Int64GetDatum(e->rows + i + 1);	/* the header is line 0 */
			targs[3] = CStringGetTextDatum(i < 0 ? export_columns : lines[i]);
			sched_exec("INSERT INTO kaireon.campaign_exports (tenant_id, campaign_run_id, line_number, line) "
					   "VALUES ($1, $2, $3, $4)", 4, ttypes, targs, NULL, SPI_OK_INSERT);
			if (i >= 0)
				maybe_fail(e, e->rows + i + 1);
		}
	}
	/* the checkpoint, in the same subtransaction as the lines */
	{
		Oid			ctypes[8] = {TEXTOID, TEXTOID, INT8OID, INT8OID, TEXTOID, INT4OID, TIMESTAMPTZOID, BOOLOID};
		Datum		cargs[8];
		char		cnulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		cargs[0] = CStringGetTextDatum(e->tenant_id);
		cargs[1] = CStringGetTextDatum(e->id);
		cargs[2] = Int64GetDatum(e->rows + n);
		cargs[3] = Int64GetDatum(bytes);
		cargs[4] = last_customer ? CStringGetTextDatum(last_customer) : (Datum) 0;
		cnulls[4] = last_customer ? ' ' : 'n';
		cargs[5] = Int32GetDatum(last_rank);
		cargs[6] = TimestampTzGetDatum(e->at);
		cargs[7] = BoolGetDatum(e->done);
		if (e->file_name)
		{
			sched_exec("UPDATE kaireon.export_checkpoints SET file_path = $2 WHERE tenant_id = $1 AND id = $3",
					   3, (Oid[]) {TEXTOID, TEXTOID, TEXTOID},
					   (Datum[]) {cargs[0], CStringGetTextDatum(e->file_name), cargs[1]}, NULL, SPI_OK_UPDATE);
		}
		sched_exec("UPDATE kaireon.export_checkpoints SET rows_exported = $3, bytes_written = $4, "
				   "       last_customer_id = coalesce($5, last_customer_id), last_rank = CASE WHEN $5 IS NULL THEN last_rank ELSE $6 END, "
				   "       last_export_at = $7, status = CASE WHEN $8 THEN 'completed' ELSE 'running' END, error = NULL "
				   " WHERE tenant_id = $1 AND id = $2", 8, ctypes, cargs, cnulls, SPI_OK_UPDATE);
	}
	e->written = n;
}

/* Export one batch of one pending export; false when none is pending. */
bool
kaireon_export_one(TimestampTz at, ScheduleOut *out)
{
	Export		e = {0};
	ErrorData  *edata;

	if (!claim_export(at, &e))
		return false;
	e.at = at;
	edata = ksubxact_run(export_batch, &e);
	if (edata != NULL)
	{
		char	   *msg = psprintf("%s (SQLSTATE %s)", edata->message, unpack_sql_state(edata->sqlerrcode));

		FreeErrorData(edata);
		sched_exec("UPDATE kaireon.export_checkpoints SET status = 'failed', error = $3, attempts = attempts + 1, "
				   "       last_export_at = $4 WHERE tenant_id = $1 AND id = $2", 4,
				   (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID},
				   (Datum[]) {CStringGetTextDatum(e.tenant_id), CStringGetTextDatum(e.id), CStringGetTextDatum(msg),
				  TimestampTzGetDatum(at)}, NULL, SPI_OK_UPDATE);
		sched_emit(out, "export", e.tenant_id, e.run_id, e.campaign_run_id, 0, "failed", 0, false, 0, msg);
		return true;
	}
	sched_emit(out, "export", e.tenant_id, e.run_id, e.campaign_run_id, 0, e.done ? "completed" : "running", 0, false,
			   e.written, e.file_name);
	return true;
}
