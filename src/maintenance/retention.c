/*
 * maintenance/retention.c
 *	  kaireon.run_retention and the retention and suppressions jobs of the
 *	  maintenance workers: for every tenant and data class, remove the rows
 *	  older than the class's cutoff unless a legal hold applies
 *	  (docs/retention.md); then create the coming partitions (partitions.c).
 *
 * Work comes in bounded batches, and the run context (maintenance.h,
 * jobs.c) decides what happens between two batches: nothing in the caller's
 * transaction (run_retention), a commit in a procedure
 * (run_retention_batched) or in the worker, with a pause of
 * kaireon.retention_batch_delay after each batch that removed rows.  Every
 * delete is a predicate on the cutoff, so a run that stops half way (crash,
 * SIGTERM, error) is resumed by running again.
 *
 * How each table is purged:
 *	- interaction_history: a monthly partition whose every tenant has a
 *	  cutoff past its upper bound (and no hold) is dropped or detached in one
 *	  step (kaireon_internal._retire_interaction_partition, which takes the parent's
 *	  and the partition's locks with a short lock_timeout and checks the
 *	  tenants' policies again under them; retried a few times when the locks
 *	  are busy);
 *	  other partitions with expired rows are walked block range by block
 *	  range (a TID range scan of about kaireon.retention_batch_size rows per
 *	  batch), deleting the expired rows of every tenant in one statement;
 *	- tables without an index on their time column (impressions, traces,
 *	  shadow model scores, campaign decisions, summaries, metric values,
 *	  creative performance, dead letters): the same
 *	  block walk, over the block range that holds expired rows;
 *	- tables with one (suppressions, outbox events, decision locks,
 *	  idempotency keys, unreferenced policy snapshots): batches of at most
 *	  kaireon.retention_batch_size rows picked through the index;
 *	- audit_logs: kaireon.purge_audit_chain(tenant, cutoff, batch), which
 *	  removes a prefix of the tenant's chain and leaves an anchor.
 * Every batch statement leaves out the tenants whose class got a legal hold
 * since the run began (kret_pairs_sql), so a hold takes effect at the next batch.
 * Errors of one table are caught (subtransaction), reported in the detail of
 * the rows concerned, and the run goes on.
 *
 * The report rows and the batched purge of one table (by tenant, by block
 * range, through an index) are in purge.c; this file has the settings, the
 * partitions of interaction_history, audit_logs, the policies, the run, its
 * SQL functions and its jobs.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "util/datum.h"
#include "util/spi.h"
#include "maintenance/maintenance.h"
#include "stats/stats.h"
#include "maintenance/purge.h"

PG_FUNCTION_INFO_V1(kaireon_run_retention);
PG_FUNCTION_INFO_V1(kaireon_run_retention_batched);

#define KRET_PARTITION_DROP 0
#define KRET_PARTITION_DETACH 1

static int	kaireon_retention_partition_action = KRET_PARTITION_DROP;
static int	kaireon_retention_decision_lock_days = 100;
static int	kaireon_retention_idempotency_days = 30;

static const struct config_enum_entry partition_actions[] = {
	{"drop", KRET_PARTITION_DROP, false},
	{"detach", KRET_PARTITION_DETACH, false},
	{NULL, 0, false}
};

/* Register the settings of retention (before the kaireon. prefix is reserved). */
void
kaireon_retention_init(void)
{
	DefineCustomIntVariable("kaireon.retention_batch_size",
							"Rows retention removes per batch (each batch is one short transaction in the worker).",
							NULL, &kaireon_retention_batch_size, 5000, 100, 1000000,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable("kaireon.retention_partition_action",
							 "What retention does with a monthly partition of interaction_history every tenant has passed: drop or detach.",
							 NULL, &kaireon_retention_partition_action, KRET_PARTITION_DROP, partition_actions,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_decision_lock_days",
							"Days after a customer's last recorded decision before retention removes its decision_locks row.",
							NULL, &kaireon_retention_decision_lock_days, 100, 1, 36500,
							PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kaireon.retention_idempotency_days",
							"Days retention keeps the idempotency keys of kaireon.respond.",
							NULL, &kaireon_retention_idempotency_days, 30, 1, 36500,
							PGC_SUSET, 0, NULL, NULL, NULL);
}


/* Context of a partition retirement (kjob_try body). */
typedef struct RetireArg
{
	const char *part;
	Datum		allowed;
	bool		done;
} RetireArg;

/* kjob_try body: kaireon_internal._retire_interaction_partition. */
static void
retire_body(void *arg)
{
	RetireArg  *a = (RetireArg *) arg;
	Oid			types[4] = {TEXTOID, TEXTARRAYOID, BOOLOID, INT4OID};
	Datum		values[4];

	values[0] = CStringGetTextDatum(a->part);
	values[1] = a->allowed;
	values[2] = BoolGetDatum(kaireon_retention_partition_action == KRET_PARTITION_DETACH);
	values[3] = Int32GetDatum(kaireon_retention_lock_timeout);
	a->done = kret_query_int("SELECT kaireon_internal._retire_interaction_partition($1, $2, $3, $4)::int", 4, types, values, 0) == 1;
}

/* Rows of a partition per tenant (tenant ids and counts), in the run's memory. */
static List *
partition_counts(const char *part, List **counts)
{
	List	   *tenants = NIL;
	int			rc = kspi_execute(psprintf("SELECT tenant_id, count(*) FROM kaireon.%s GROUP BY 1 ORDER BY 1",
										   quote_identifier(part)), true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not count the rows of %s", part);
	*counts = NIL;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64	   *n = palloc(sizeof(int64));

		tenants = lappend(tenants, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		*n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		*counts = lappend(*counts, n);
	}
	return tenants;
}

/* The tenants with rows in a partition (kaireon_internal._tenants_in), in the run's memory. */
static List *
tenants_in(const char *part)
{
	List	   *out = NIL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(psprintf("kaireon.%s", quote_identifier(part)))};
	int			rc = kspi_execute_with_args("SELECT t FROM kaireon_internal._tenants_in($1::regclass) AS t ORDER BY 1",
										    1, types, values, NULL, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not list the tenants of %s", part);
	for (uint64 i = 0; i < SPI_processed; i++)
		out = lappend(out, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return out;
}

/* A monthly partition of interaction_history. */
typedef struct Part
{
	char	   *name;
	bool		has_lower;
	bool		has_upper;
	TimestampTz lower;
	TimestampTz upper;
} Part;

/* The leaf partitions of interaction_history, oldest first (default last). */
static List *
list_partitions(void)
{
	List	   *out = NIL;
	int			rc = kspi_execute("SELECT c.relname, b.lower_bound, b.upper_bound "
								  "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
								  " CROSS JOIN LATERAL kaireon_internal._partition_bounds(c.oid) b "
								  " WHERE i.inhparent = 'kaireon.interaction_history'::regclass "
								  " ORDER BY b.lower_bound NULLS LAST, c.relname", true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not list the partitions of interaction_history");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Part	   *p = palloc0(sizeof(Part));
		bool		isnull;
		Datum		d;

		p->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		p->has_lower = !isnull;
		if (!isnull)
			p->lower = DatumGetTimestampTz(d);
		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull);
		p->has_upper = !isnull;
		if (!isnull)
			p->upper = DatumGetTimestampTz(d);
		out = lappend(out, p);
	}
	return out;
}

/*
 * Retire one partition every tenant of which has passed it: count its rows
 * per tenant, then drop or detach it, retrying a few times while its locks
 * are busy.  True when it went (or, in a dry run, would go).
 */
static bool
retire_partition(RetRun *run, Part *p, List *tenants)
{
	List	   *counts;
	List	   *with_rows;
	RetireArg	a;
	Datum	   *ds;
	int			i = 0;
	ListCell   *lc;
	ListCell   *lc2;
	char	   *msg = NULL;
	int			code = 0;
	bool		ok = false;

	with_rows = partition_counts(p->name, &counts);
	ds = palloc(sizeof(Datum) * Max(list_length(tenants), 1));
	foreach(lc, tenants)
		ds[i++] = CStringGetTextDatum((char *) lfirst(lc));
	a.part = p->name;
	a.allowed = kd_array(ds, NULL, i, TEXTOID);
	a.done = false;
	if (run->dry_run)
		ok = a.done = true;
	else
	{
		for (int attempt = 1; attempt <= 5 && !ok; attempt++)
		{
			ok = kjob_try(run->ctx, retire_body, &a, &msg, &code);
			if (ok || code != ERRCODE_LOCK_NOT_AVAILABLE)
				break;
			/* the locks are busy (a long query on the parent): wait, outside any transaction */
			kjob_boundary(run->ctx, false);
			if (run->ctx->mode != KJOB_ATOMIC)
				kjob_sleep(200 * attempt);
		}
	}
	if (!ok)
	{
		json_array_append_new(json_object_get(run->summary, "errors"),
							  json_pack("{s:s,s:s,s:s}", "class", "interactions", "table", p->name,
										"error", msg ? msg : "unknown error"));
		kret_add_note(run->global, "%s not retired: %s (retried next run)", p->name, msg ? msg : "");
		return false;
	}
	if (!a.done)
	{
		kret_add_note(run->global, "%s kept: it holds rows that must stay (another tenant's, or under a hold set since the run began); purged row by row", p->name);
		return false;
	}
	forboth(lc, with_rows, lc2, counts)
	{
		int			t = kret_tenant_index(run, (char *) lfirst(lc));

		if (t >= 0)
		{
			kret_add_rows(run, kret_row_of(run, t, RC_INTERACTIONS), "interaction_history", *(int64 *) lfirst(lc2));
			kret_row_of(run, t, RC_INTERACTIONS)->partitions++;
		}
	}
	run->global->partitions++;
	run->total_partitions++;
	json_array_append_new(json_object_get(run->summary, "retiredPartitions"), json_string(p->name));
	json_array_append_new(json_object_get(run->global->tables, "retired"), json_string(p->name));
	return true;
}

/* The interactions class: interaction_history by partition, impressions, locks, keys. */
static void
purge_interactions(RetRun *run)
{
	List	   *parts = list_partitions();
	ListCell   *lc;
	TimestampTz min_cutoff = DT_NOEND;
	bool		any_hold = false;

	for (int t = 0; t < run->ntenants; t++)
	{
		KRetentionRow *r = kret_row_of(run, t, RC_INTERACTIONS);

		if (r->held)
			any_hold = true;
		else
			min_cutoff = Min(min_cutoff, r->cutoff);
	}
	foreach(lc, parts)
	{
		Part	   *p = (Part *) lfirst(lc);
		List	   *in = tenants_in(p->name);
		bool		all_past = p->has_upper;
		ListCell   *lt;

		CHECK_FOR_INTERRUPTS();
		/* every tenant with rows here has no hold and a cutoff past the upper bound */
		foreach(lt, in)
		{
			int			t = kret_tenant_index(run, (char *) lfirst(lt));
			KRetentionRow *r = t >= 0 ? kret_row_of(run, t, RC_INTERACTIONS) : NULL;

			if (r == NULL || r->held || r->cutoff < p->upper)
				all_past = false;
		}
		/* an empty partition goes once every tenant's cutoff has passed it */
		if (in == NIL && (run->ntenants == 0 || any_hold || min_cutoff < p->upper))
			all_past = false;
		if (all_past && retire_partition(run, p, in))
		{
			kret_progress(run, p->name);
			kjob_boundary(run->ctx, false);
			continue;
		}
		if (in != NIL)
		{
			Targets		tg = kret_targets(run, RC_INTERACTIONS, -1, in, p->has_lower ? &p->lower : NULL);

			kret_walk_delete(run, RC_INTERACTIONS, psprintf("kaireon.%s", quote_identifier(p->name)),
						"interaction_history", "occurred_at", tg);
		}
	}
	kret_walk_delete(run, RC_INTERACTIONS, "kaireon.impressions", "impressions", "occurred_at",
				kret_targets(run, RC_INTERACTIONS, -1, NIL, NULL));
	kret_index_delete(run, RC_INTERACTIONS, "kaireon.decision_locks", "decision_locks", "last_decision_at",
				 "%1$s.last_decision_at < %2$s.cutoff",
				 kret_targets(run, RC_INTERACTIONS, kaireon_retention_decision_lock_days, NIL, NULL));
	kret_index_delete(run, RC_INTERACTIONS, "kaireon.respond_idempotency", "respond_idempotency", "created_at",
				 "%1$s.created_at < %2$s.cutoff",
				 kret_targets(run, RC_INTERACTIONS, kaireon_retention_idempotency_days, NIL, NULL));
}

/* Context of an audit purge (kjob_try body). */
typedef struct AuditArg
{
	const char *tenant;
	TimestampTz cutoff;
	int64		removed;
} AuditArg;

/* kjob_try body: one call of kaireon.purge_audit_chain. */
static void
audit_body(void *arg)
{
	AuditArg   *a = (AuditArg *) arg;
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, INT8OID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(a->tenant);
	values[1] = TimestampTzGetDatum(a->cutoff);
	values[2] = Int64GetDatum(kaireon_retention_batch_size);
	/* a hold set since the run began stops it here too */
	if (kret_query_int("SELECT count(*) FROM kaireon.retention_policies() p "
				  " WHERE p.tenant_id = $1 AND p.data_class = 'audit' AND p.legal_hold", 1, types, values, 0) > 0)
	{
		a->removed = 0;
		return;
	}
	/* a call of its own: on Citus it runs on the tenant's node (kaireon.distribute()) */
	a->removed = kret_query_int("SELECT kaireon.purge_audit_chain($1, $2, $3)", 3, types, values, 0);
}

/* The audit class, through kaireon.purge_audit_chain (an anchor keeps the rest verifiable). */
static void
purge_audit(RetRun *run)
{
	for (int t = 0; t < run->ntenants; t++)
	{
		KRetentionRow *r = kret_row_of(run, t, RC_AUDIT);
		AuditArg	a;

		if (r->held)
			continue;
		if (run->dry_run)
		{
			Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
			Datum		values[2] = {CStringGetTextDatum(run->tenants[t]), TimestampTzGetDatum(r->cutoff)};

			kret_add_rows(run, r, "audit_logs",
					 kret_query_int("SELECT count(*) FROM kaireon.audit_logs WHERE tenant_id = $1 AND created_at < $2 "
							   "AND action <> 'anchor'", 2, types, values, 0));
			continue;
		}
		a.tenant = run->tenants[t];
		a.cutoff = r->cutoff;
		for (;;)
		{
			char	   *msg = NULL;

			if (!kjob_try(run->ctx, audit_body, &a, &msg, NULL))
			{
				kret_add_note(r, "audit_logs: %s", msg);
				break;
			}
			kret_add_rows(run, r, "audit_logs", a.removed);
			kret_progress(run, "audit_logs");
			kjob_boundary(run->ctx, a.removed > 0);
			if (a.removed < kaireon_retention_batch_size)
				break;
		}
	}
}

/* Load the tenants and their policies; fills run->tenants and run->rows. */
static void
load_policies(RetRun *run)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(run->as_of)};
	int			rc = kspi_execute_with_args("SELECT tenant_id, data_class, retention_days, legal_hold, cutoff "
										    "  FROM kaireon.retention_policies($1)", 1, types, values, NULL, true, 0);
	uint64		n;

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: could not read the retention policies");
	n = SPI_processed;
	/* the distinct tenants, sorted */
	run->tenants = palloc(sizeof(char *) * Max(n, 1));
	run->ntenants = 0;
	for (uint64 i = 0; i < n; i++)
	{
		char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (run->ntenants == 0 || strcmp(run->tenants[run->ntenants - 1], t) != 0)
			run->tenants[run->ntenants++] = t;
	}
	qsort(run->tenants, run->ntenants, sizeof(char *), kret_cmp_str);
	run->rows = palloc0(sizeof(KRetentionRow) * (run->ntenants * RC_N + 1));
	for (int t = 0; t < run->ntenants; t++)
		for (int c = 0; c < RC_N; c++)
		{
			KRetentionRow *r = kret_row_of(run, t, c);

			r->tenant_id = run->tenants[t];
			r->cls = c;
			r->tables = json_object();
			r->notes = json_array();
		}
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *cls = SPI_getvalue(tup, desc, 2);
		int			t = kret_tenant_index(run, SPI_getvalue(tup, desc, 1));
		bool		isnull;

		for (int c = 0; c < RC_N; c++)
			if (t >= 0 && strcmp(kret_class_names[c], cls) == 0)
			{
				KRetentionRow *r = kret_row_of(run, t, c);

				r->days = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
				r->hold = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
				r->cutoff = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
				r->has_cutoff = true;
				r->held = r->hold;
				if (r->hold)
					kret_add_note(r, "legal hold: nothing removed");
			}
	}
	run->global = &run->rows[run->ntenants * RC_N];
	run->global->cls = RC_INTERACTIONS;
	run->global->tables = json_pack("{s:s,s:[],s:[]}", "action",
									kaireon_retention_partition_action == KRET_PARTITION_DETACH ? "detach" : "drop",
									"retired", "created");
	run->global->notes = json_array();
}

/* A data class name's index, or an error naming it. */
static int
class_index(const char *name)
{
	for (int c = 0; c < RC_N; c++)
		if (strcmp(kret_class_names[c], name) == 0)
			return c;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown data class \"%s\"", name),
			 errhint("Data classes: interactions, decisions, metrics, summaries, audit, suppressions, outbox.")));
	return -1;
}

/*
 * Run retention: every class (or those in `classes`, a list of names) of
 * every tenant.  Returns the report rows (tenants x classes, then the
 * partitions row) and fills `summary` (the run history detail).  SPI must be
 * connected; allocations go to the current memory context, which must live
 * across the run's commits.
 */
KRetentionRow *
kaireon_retention(KJobCtx *ctx, bool dry_run, List *classes, int *nrows, json_t *summary)
{
	RetRun		run = {0};
	ListCell   *lc;

	run.ctx = ctx;
	run.dry_run = dry_run;
	run.summary = summary;
	run.as_of = GetCurrentTransactionStartTimestamp();
	for (int c = 0; c < RC_N; c++)
		run.want[c] = classes == NIL;
	foreach(lc, classes)
		run.want[class_index((char *) lfirst(lc))] = true;
	json_object_set_new(summary, "dryRun", json_boolean(dry_run));
	json_object_set_new(summary, "errors", json_array());
	json_object_set_new(summary, "partitionAction",
						json_string(kaireon_retention_partition_action == KRET_PARTITION_DETACH ? "detach" : "drop"));
	json_object_set_new(summary, "retiredPartitions", json_array());
	load_policies(&run);

	if (run.want[RC_DECISIONS])
	{
		/* traces first: a snapshot goes once no remaining trace refers to it */
		kret_walk_delete(&run, RC_DECISIONS, "kaireon.decision_traces", "decision_traces", "created_at",
					kret_targets(&run, RC_DECISIONS, -1, NIL, NULL));
		/* the per-decision logs beside the traces: shadow model scores, campaign decisions */
		kret_walk_delete(&run, RC_DECISIONS, "kaireon.model_shadow_scores", "model_shadow_scores", "created_at",
					kret_targets(&run, RC_DECISIONS, -1, NIL, NULL));
		kret_walk_delete(&run, RC_DECISIONS, "kaireon.campaign_decisions", "campaign_decisions", "created_at",
					kret_targets(&run, RC_DECISIONS, -1, NIL, NULL));
		/* (a dry run removed no trace: it counts against the traces that would stay) */
		kret_index_delete(&run, RC_DECISIONS, "kaireon.policy_snapshots", "policy_snapshots", "created_at",
					 dry_run ?
					 "%1$s.created_at < %2$s.cutoff AND NOT EXISTS (SELECT 1 FROM kaireon.decision_traces dt "
					 "  WHERE dt.tenant_id = %1$s.tenant_id AND dt.policy_version_hash = %1$s.policy_version_hash "
					 "    AND dt.created_at >= %2$s.cutoff)" :
					 "%1$s.created_at < %2$s.cutoff AND NOT EXISTS (SELECT 1 FROM kaireon.decision_traces dt "
					 "  WHERE dt.tenant_id = %1$s.tenant_id AND dt.policy_version_hash = %1$s.policy_version_hash)",
					 kret_targets(&run, RC_DECISIONS, -1, NIL, NULL));
	}
	if (run.want[RC_INTERACTIONS])
		purge_interactions(&run);
	if (run.want[RC_METRICS])
	{
		kret_walk_delete(&run, RC_METRICS, "kaireon.metric_values", "metric_values", "computed_at",
					kret_targets(&run, RC_METRICS, -1, NIL, NULL));
		kret_walk_delete(&run, RC_METRICS, "kaireon.creative_performance", "creative_performance", "period_end",
					kret_targets(&run, RC_METRICS, -1, NIL, NULL));
	}
	if (run.want[RC_SUMMARIES])
		kret_walk_delete(&run, RC_SUMMARIES, "kaireon.interaction_summaries", "interaction_summaries", "updated_at",
					kret_targets(&run, RC_SUMMARIES, -1, NIL, NULL));
	if (run.want[RC_AUDIT])
		purge_audit(&run);
	if (run.want[RC_SUPPRESSIONS])
		kret_index_delete(&run, RC_SUPPRESSIONS, "kaireon.suppressions", "suppressions", "expires_at",
					 "%1$s.expires_at < %2$s.cutoff", kret_targets(&run, RC_SUPPRESSIONS, -1, NIL, NULL));
	if (run.want[RC_OUTBOX])
	{
		/* published events by published_at, dead ones by their last change; both have
		 * next_attempt_at at or before that time, which the index finds */
		kret_index_delete(&run, RC_OUTBOX, "kaireon.outbox_events", "outbox_events", "next_attempt_at",
					 "%1$s.status IN ('published', 'dead') AND ((%1$s.status = 'published' AND %1$s.published_at < %2$s.cutoff) "
					 "  OR (%1$s.status = 'dead' AND %1$s.updated_at < %2$s.cutoff))",
					 kret_targets(&run, RC_OUTBOX, -1, NIL, NULL));
		kret_walk_delete(&run, RC_OUTBOX, "kaireon.dead_letter_events", "dead_letter_events", "failed_at",
					kret_targets(&run, RC_OUTBOX, -1, NIL, NULL));
	}
	/* the coming months' partitions */
	if (run.want[RC_INTERACTIONS] && !dry_run)
	{
		char	   *err = NULL;
		json_t	   *created = kaireon_create_partitions(ctx, &err);

		if (created == NULL)
		{
			kret_add_note(run.global, "partitions not created: %s", err);
			json_array_append_new(json_object_get(summary, "errors"),
								  json_pack("{s:s,s:s,s:s}", "class", "interactions", "table", "interaction_history",
											"error", psprintf("partitions not created: %s", err)));
		}
		else
		{
			json_object_set_new(summary, "partitionsCreated", json_copy(created));
			json_object_set_new(run.global->tables, "created", created);
		}
		kjob_boundary(ctx, false);
	}
	/* the summary: totals, and the classes held */
	{
		json_t	   *held = json_array();

		for (int t = 0; t < run.ntenants; t++)
			for (int c = 0; c < RC_N; c++)
				if (run.want[c] && kret_row_of(&run, t, c)->held)
					json_array_append_new(held, json_pack("{s:s,s:s}", "tenant", run.tenants[t], "class", kret_class_names[c]));
		json_object_set_new(summary, "held", held);
	}
	json_object_set_new(summary, "rowsDeleted", json_integer(run.total_rows));
	json_object_set_new(summary, "partitionsDropped", json_integer(run.total_partitions));
	json_object_del(summary, "current");

	/* keep the rows of the classes asked for, then the partitions row */
	{
		int			n = 0;

		for (int i = 0; i < run.ntenants * RC_N; i++)
			if (run.want[run.rows[i].cls])
				run.rows[n++] = run.rows[i];
		if (run.want[RC_INTERACTIONS])
			run.rows[n++] = *run.global;
		*nrows = n;
	}
	return run.rows;
}

/* retention: every data class of every tenant, then the coming partitions. */
static void
job_retention(KJobCtx *ctx, json_t *detail)
{
	ctx->report = kaireon_retention(ctx, ctx->dry_run, ctx->classes, &ctx->nreport, detail);
	if (json_array_size(json_object_get(detail, "errors")) > 0)
		json_object_set_new(detail, "error", json_string("some tables could not be purged (see errors)"));
}

/* suppressions: retention of the suppressions class (expired suppressions). */
static void
job_suppressions(KJobCtx *ctx, json_t *detail)
{
	ctx->report = kaireon_retention(ctx, false, list_make1("suppressions"), &ctx->nreport, detail);
	if (json_integer_value(json_object_get(detail, "rowsDeleted")) == 0 &&
		json_array_size(json_object_get(detail, "errors")) == 0)
		json_object_set_new(detail, "idle", json_true());
	if (json_array_size(json_object_get(detail, "errors")) > 0)
		json_object_set_new(detail, "error", json_string("some suppressions could not be removed (see errors)"));
}

const KJobDef kjob_retention = {0, "retention", "kaireon.retention_schedule", "03:00", true, job_retention};
const KJobDef kjob_suppressions = {5, "suppressions", "kaireon.suppression_schedule", "1h", false, job_suppressions};

/* The output columns of one report row (kaireon.run_retention). */
static void
row_values(const KRetentionRow *rows, int i, Datum *values, bool *nulls)
{
	const KRetentionRow *r = &rows[i];
	json_t	   *detail = json_object();

	memset(nulls, false, sizeof(bool) * 8);
	if (r->tenant_id)
		values[0] = CStringGetTextDatum(r->tenant_id);
	else
		nulls[0] = true;
	values[1] = CStringGetTextDatum(kret_class_names[r->cls]);
	if (r->tenant_id && r->has_cutoff)
	{
		values[2] = Int32GetDatum(r->days);
		values[3] = TimestampTzGetDatum(r->cutoff);
	}
	else
		nulls[2] = nulls[3] = true;
	values[4] = BoolGetDatum(r->held);
	values[5] = Int64GetDatum(r->rows);
	values[6] = Int32GetDatum(r->partitions);
	if (r->tenant_id)
		json_object_set(detail, "tables", r->tables);
	else
		json_object_update(detail, r->tables);
	if (json_array_size(r->notes) > 0)
		json_object_set(detail, "notes", r->notes);
	if (r->tenant_id)
		json_object_set_new(detail, "legalHold", json_boolean(r->hold));
	values[7] = PointerGetDatum(kj_to_jsonb(detail));
}

/* The data_classes argument as a list of names (NIL for all). */
static List *
classes_arg(FunctionCallInfo fcinfo, int argno)
{
	List	   *out = NIL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (PG_ARGISNULL(argno))
		return NIL;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(argno), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("data_classes must not contain null"),
					 errhint("Pass names of data classes, or NULL for all.")));
		out = lappend(out, TextDatumGetCString(elems[i]));
		(void) class_index(llast(out));
	}
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("data_classes must not be empty"),
				 errhint("Pass NULL for every data class.")));
	return out;
}

/*
 * kaireon.run_retention(dry_run, data_classes): retention in the caller's
 * transaction; one row per tenant and class, and the partitions row.
 */
Datum
kaireon_run_retention(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KJobCtx		ctx = {0};
	json_t	   *detail;
	char	   *error;

	kjob_require_maintainer("kaireon.run_retention");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be null"),
				 errhint("Pass true to only report what would be removed.")));
	ctx.dry_run = PG_GETARG_BOOL(0);
	ctx.classes = classes_arg(fcinfo, 1);
	InitMaterializedSRF(fcinfo, 0);
	ctx.mode = KJOB_ATOMIC;
	ctx.mcxt = CurrentMemoryContext;
	ctx.source = "function";
	ctx.trigger = "manual";
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	kaireon_progress_start("run_retention", NULL, -1);
	(void) kjob_run(&ctx, &kjob_retention, &detail, &error);
	kaireon_progress_end();
	SPI_finish();
	for (int i = 0; i < ctx.nreport; i++)
	{
		Datum		values[8];
		bool		nulls[8];

		row_values(ctx.report, i, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * CALL kaireon.run_retention_batched(dry_run, data_classes, run_id):
 * retention committing after every batch (in a transaction block, it runs
 * in that transaction instead).  Returns the id of its run history row.
 */
Datum
kaireon_run_retention_batched(PG_FUNCTION_ARGS)
{
	bool		atomic = !(fcinfo->context && IsA(fcinfo->context, CallContext) &&
						   !castNode(CallContext, fcinfo->context)->atomic);
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext run_cxt;
	KJobCtx		ctx = {0};
	json_t	   *detail;
	char	   *error;
	const char *status;
	TupleDesc	desc;
	Datum		result[1];
	bool		rnull[1] = {false};
	HeapTuple	tuple;

	kjob_require_maintainer("kaireon.run_retention_batched");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("dry_run must not be null"),
				 errhint("Pass true to only report what would be removed.")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "kaireon: run_retention_batched must return a record");
	/* everything the run keeps lives in a context that outlasts its commits */
	run_cxt = AllocSetContextCreate(atomic ? CurrentMemoryContext : PortalContext,
									"kaireon retention run", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(run_cxt);
	desc = CreateTupleDescCopy(desc);
	ctx.dry_run = PG_GETARG_BOOL(0);
	ctx.classes = classes_arg(fcinfo, 1);
	ctx.mode = atomic ? KJOB_ATOMIC : KJOB_PROCEDURE;
	ctx.mcxt = run_cxt;
	ctx.source = "procedure";
	ctx.trigger = "manual";
	if (SPI_connect_ext(atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	kaireon_progress_start("run_retention", NULL, -1);
	status = kjob_run(&ctx, &kjob_retention, &detail, &error);
	kaireon_progress_end();
	SPI_finish();
	if (strcmp(status, "succeeded") != 0)
		ereport(WARNING,
				(errcode(kjob_status_errcode(status)),
				 errmsg("kaireon retention run %lld %s: %s", (long long) ctx.run_id, status, error ? error : ""),
				 errhint("See its row of kaireon.maintenance_runs.")));
	MemoryContextSwitchTo(caller);
	result[0] = Int64GetDatum(ctx.run_id);
	tuple = heap_form_tuple(desc, result, rnull);
	MemoryContextDelete(run_cxt);
	PG_RETURN_DATUM(HeapTupleGetDatum(tuple));
}
