/*
 * decision/history_write.c
 *	  A recording's rows written into interaction_history without an SQL
 *	  statement: the executor's own insert routines (tuple routing, BEFORE
 *	  ROW triggers, constraints, index entries) called as COPY FROM calls
 *	  them, with each partition's CHECK expressions compiled once per backend
 *	  instead of once per statement.  For decision/persist.c.
 *
 * Why: of a recording's INSERT ... SELECT FROM unnest(), a large share went
 * to the statement rather than its rows: parsing and planning the
 * partition's thirteen CHECK constraints (stringToNode of each conbin) and
 * starting the executor, every call (docs/performance.md).
 *
 * Protocol.  Where a step does not hold, kaireon_history_insert writes
 * nothing and returns false; the caller then runs its statement, which
 * raises whatever error applies, so both ways end alike.
 *	1. When: kaireon.direct_history_writes is on; Citus is not installed
 *	   (its tables take the statement); the transaction may write and is
 *	   not in parallel mode; not nested in a write of this module (a
 *	   default, CHECK or trigger function recording again: the guard is
 *	   raised before anything that can run user code, constant folding
 *	   included, so such a recording takes the statement, and neither runs
 *	   this write's compiled expressions again nor frees them while they
 *	   run); interaction_history is a partitioned table whose partitions
 *	   are all leaves, without rules, without statement, AFTER, INSTEAD OF
 *	   or transition-table insert triggers, without stored generated or
 *	   identity columns or a column left out whose type is a domain; the
 *	   named columns have the caller's types, without a typmod; its
 *	   partition key is plain columns the caller names, equal in every row
 *	   (so the first row's partition is every row's); the partition is a
 *	   plain table with no such triggers either.
 *	2. Locks: RowExclusiveLock on the parent, and, by ExecFindPartition, on
 *	   the partition and its indexes, kept to the end of the transaction,
 *	   as the executor takes them.
 *	3. Rights: ExecCheckRTPerms on a range table entry of the parent with
 *	   INSERT on the columns named, as the executor checks them (when it
 *	   refuses, the statement raises the error).  The table the statement
 *	   also reads (KHistoryRows.read_table: algorithm_models, whose lookup
 *	   of a model's version the executor checks even for rows without a
 *	   model, the only ones written here): ExecCheckRTPerms with SELECT on
 *	   the columns it reads, and, when row level security applies to it, not
 *	   with row_security off (the statement raises then).  Row level
 *	   security on the parent: check_enable_rls (which raises as the
 *	   executor would when row_security is off and a policy applies); where
 *	   it applies, only kaireon's tenant_isolation policy (state_read.c)
 *	   with no row security hook, and every row of the session's tenant, and
 *	   no BEFORE ROW insert trigger but kaireon's Check_references (which
 *	   changes no row): the policy's WITH CHECK, which the statement applies
 *	   after the triggers, then holds for every row.  Anything else takes
 *	   the statement.
 *	4. Rows, as COPY FROM writes them: the command counter advances first,
 *	   as SPI advances it before a statement that writes, and the write
 *	   runs under a new snapshot (GetTransactionSnapshot, its command id the
 *	   new one, as SPI's for a statement that writes), popped after the
 *	   write or its error; the named columns take the caller's values, the
 *	   others their defaults (evaluated per row); then ExecFindPartition,
 *	   the root-to-partition map, the partition's tableoid on the row,
 *	   ExecBRInsertTriggers (the checked references' trigger among them; a
 *	   trigger returning NULL skips the row), ExecConstraints,
 *	   ExecPartitionCheck (a BEFORE ROW trigger may have changed the row),
 *	   each row into a slot of its own; then table_multi_insert of them all
 *	   (one WAL record for the heap, as COPY's batches) and
 *	   ExecInsertIndexTuples of each, all under one command id.  With a
 *	   BEFORE ROW trigger other than Check_references, a volatile default
 *	   (nextval aside, as COPY tells them) or a volatile CHECK, any of which
 *	   may read the table, each row's table_tuple_insert and index entries
 *	   go before the next row's defaults, triggers and checks, as COPY does
 *	   then (and as the statement writes its rows).  Then the command
 *	   counter advances, as after a statement.  One difference is left: in
 *	   a batch every row's constraints are checked before any row's index
 *	   entries, so when one row breaks a unique index and a later row a
 *	   CHECK or NOT NULL constraint, the later row's error is raised, where
 *	   the statement (row by row) raises the unique violation; either way
 *	   the recording fails and nothing is written (docs/recommend.md).
 *	5. Cache: per partition, its CHECK expressions (and whether one is
 *	   volatile) compiled (as ExecPrepareExpr compiles them:
 *	   expression_planner, then ExecInitExpr with no parent, so no JIT and
 *	   nothing of a statement) in a memory context of their own, and placed
 *	   into the partition's ResultRelInfo before its first row, where
 *	   ExecRelCheck finds them and compiles nothing; per column array of the
 *	   caller, the parent's column numbers, default expressions (and whether
 *	   one is volatile), whether its row level security policy is kaireon's
 *	   own, and the range table entry of the table the statement also
 *	   reads.  Each for the user it was compiled for (ExecInitExpr checks
 *	   the EXECUTE right of each function, once), and compiled again for
 *	   another user, or when a function, a role's attributes or a role
 *	   membership changed since (kaireon_rights_changes, util/inval.c: the
 *	   right may have gone with a revoked membership or superuser; and
 *	   expression_planner inlines SQL functions, as the plan cache does).
 *	   A relcache invalidation of the relation (or of all, or of the table
 *	   the statement also reads) marks its entry stale.  A stale or evicted
 *	   entry's context is moved aside and freed at the start of the next
 *	   write (never a nested one, see 1), never during one: an invalidation
 *	   can arrive while rows are written (a trigger opening a relation), and
 *	   the ResultRelInfo still points at the expressions.  An invalidation
 *	   during a write changes nothing that write may see: its locks keep
 *	   the relations' definitions.  The rights themselves (step 3) are
 *	   checked at every write.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/tupconvert.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "partitioning/partdesc.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "util/inval.h"
#include "util/spi.h"
#include "decision/history_write.h"
#include "decision/state_read.h"

#define PART_SLOTS 4
#define MAX_COLUMNS 64

/* A partition's CHECK expressions, compiled once. */
typedef struct PartChecks
{
	Oid			relid;
	Oid			userid;			/* compiled for (ExecInitExpr checks EXECUTE rights) */
	uint64		rights;			/* kaireon_rights_changes() when compiled */
	bool		stale;
	MemoryContext cxt;
	int			ncheck;
	ExprState **checks;
	bool		volatile_checks;	/* one calls a volatile function (which may read the table) */
} PartChecks;

/* The parent's columns for one column array of a caller: numbers, defaults. */
typedef struct ParentColumns
{
	Oid			relid;
	Oid			userid;			/* compiled for (ExecInitExpr checks EXECUTE rights) */
	uint64		rights;			/* kaireon_rights_changes() when compiled */
	bool		stale;
	const char *const *names;
	int			ncols;
	MemoryContext cxt;
	bool		usable;			/* no generated or identity column, every name a column */
	AttrNumber	attno[MAX_COLUMNS];
	int			ndefaults;
	AttrNumber *default_attno;
	ExprState **default_expr;
	bool		volatile_defaults;	/* one calls a volatile function but nextval, as COPY tells */
	int			tenant_col;		/* index of tenant_id among the names */
	bool		tenant_policy;	/* the only policy is kaireon's tenant_isolation, for inserts */
	int			nkeys;			/* partition key columns, as indexes among the names */
	int			key_col[PARTITION_MAX_KEYS];
	const char *read_table;		/* the caller's KHistoryRows.read_table */
	Oid			read_relid;		/* it, in kaireon */
	RangeTblEntry *read_rte;	/* SELECT on its columns the statement reads (NULL: none) */
} ParentColumns;

static bool direct_history_writes = true;
static PartChecks parts[PART_SLOTS];
static int	next_part = 0;
static ParentColumns columns;
static MemoryContext cache_cxt = NULL;	/* parent of the entries' contexts */
static MemoryContext retired_cxt = NULL;	/* contexts to free at the next write */
static int	depth = 0;
static Snapshot write_snapshot = NULL;	/* the snapshot the running write pushed */

/* Relcache callback: the relation's entries (all for InvalidOid) are stale. */
static void
history_write_relcache_cb(Datum arg, Oid relid)
{
	for (int i = 0; i < PART_SLOTS; i++)
		if (parts[i].relid != InvalidOid && (relid == InvalidOid || parts[i].relid == relid))
			parts[i].stale = true;
	if (columns.relid != InvalidOid &&
		(relid == InvalidOid || columns.relid == relid || columns.read_relid == relid))
		columns.stale = true;
}

/* Module start: the setting and the invalidation callbacks. */
void
kaireon_history_write_init(void)
{
	DefineCustomBoolVariable("kaireon.direct_history_writes",
							 "Write a recording's interaction_history rows through the executor's insert routines, without a statement.",
							 "Off: every recording runs its INSERT statement (docs/recommend.md).",
							 &direct_history_writes, true, PGC_SUSET, 0, NULL, NULL, NULL);
	kaireon_register_relcache_callback(history_write_relcache_cb, (Datum) 0);
}

/* Move a context aside, to be freed at the start of the next write. */
static void
retire(MemoryContext cxt)
{
	if (cxt != NULL)
		MemoryContextSetParent(cxt, retired_cxt);
}

/* The compiled CHECK expressions of a partition (compiled now when missing or stale). */
static PartChecks *
part_checks(Relation part)
{
	Oid			relid = RelationGetRelid(part);
	TupleConstr *constr = RelationGetDescr(part)->constr;
	PartChecks *e = NULL;
	MemoryContext old;

	for (int i = 0; i < PART_SLOTS; i++)
		if (parts[i].relid == relid)
			e = &parts[i];
	if (e != NULL && !e->stale && e->userid == GetUserId() && e->rights == kaireon_rights_changes() &&
		e->ncheck == (constr != NULL ? constr->num_check : 0))
		return e;
	if (e == NULL)
	{
		e = &parts[next_part];
		next_part = (next_part + 1) % PART_SLOTS;
	}
	retire(e->cxt);
	e->relid = InvalidOid;
	e->rights = kaireon_rights_changes();	/* before compiling: a change meanwhile makes it stale */
	e->cxt = AllocSetContextCreate(cache_cxt, "kaireon history checks", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(e->cxt);
	e->ncheck = constr != NULL ? constr->num_check : 0;
	e->checks = palloc0(sizeof(ExprState *) * Max(e->ncheck, 1));
	e->volatile_checks = false;
	for (int i = 0; i < e->ncheck; i++)
	{
		Expr	   *check = expression_planner(stringToNode(constr->check[i].ccbin));

		e->volatile_checks = e->volatile_checks || contain_volatile_functions((Node *) check);
		e->checks[i] = ExecInitExpr(check, NULL);
	}
	MemoryContextSwitchTo(old);
	e->relid = relid;
	e->userid = GetUserId();
	e->stale = false;
	return e;
}

/* Whether triggers allow the direct write: BEFORE ROW insert triggers at most. */
static bool
triggers_allow(TriggerDesc *td)
{
	return td == NULL ||
		!(td->trig_insert_after_row || td->trig_insert_instead_row ||
		  td->trig_insert_before_statement || td->trig_insert_after_statement ||
		  td->trig_insert_new_table);
}

/*
 * Whether the only BEFORE ROW insert triggers are kaireon's Check_references
 * (which changes no row): under row level security the policy's WITH CHECK,
 * which the statement applies after the triggers, then sees the rows
 * rights_allow saw.
 */
static bool
only_reference_triggers(TriggerDesc *td)
{
	Oid			check_fn;

	if (td == NULL || !td->trig_insert_before_row)
		return true;
	check_fn = LookupFuncName(list_make2(makeString("kaireon_internal"), makeString("_check_references")),
							  0, NULL, true);
	for (int i = 0; i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (TRIGGER_FOR_ROW(t->tgtype) && TRIGGER_FOR_BEFORE(t->tgtype) && TRIGGER_FOR_INSERT(t->tgtype) &&
			(t->tgfoid != check_fn || !OidIsValid(check_fn)))
			return false;
	}
	return true;
}

/* Whether every partition of the parent is a leaf (a sub-partitioned one takes the statement). */
static bool
leaf_partitions_only(Relation parent)
{
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);

	for (int i = 0; i < pd->nparts; i++)
		if (!pd->is_leaf[i])
			return false;
	return true;
}

/*
 * The parent's columns for the caller's column array (computed now when
 * missing, stale, or for another array): their numbers, the other columns'
 * defaults, tenant_id and the partition key among the names.
 */
static ParentColumns *
parent_columns(Relation parent, const KHistoryRows *rows)
{
	ParentColumns *pc = &columns;
	TupleDesc	desc = RelationGetDescr(parent);
	PartitionKey key = RelationGetPartitionKey(parent);
	MemoryContext old;

	if (pc->relid == RelationGetRelid(parent) && !pc->stale && pc->userid == GetUserId() &&
		pc->rights == kaireon_rights_changes() && pc->names == rows->names && pc->ncols == rows->ncols &&
		pc->read_table == rows->read_table)
		return pc;
	retire(pc->cxt);
	pc->relid = InvalidOid;
	pc->rights = kaireon_rights_changes();	/* before compiling: a change meanwhile makes it stale */
	pc->cxt = AllocSetContextCreate(cache_cxt, "kaireon history columns", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(pc->cxt);
	pc->usable = rows->ncols <= MAX_COLUMNS && key != NULL;
	pc->tenant_col = -1;
	for (int c = 0; pc->usable && c < rows->ncols; c++)
	{
		pc->attno[c] = get_attnum(RelationGetRelid(parent), rows->names[c]);
		pc->usable = pc->attno[c] > 0 && TupleDescAttr(desc, pc->attno[c] - 1)->atttypid == rows->types[c] &&
			TupleDescAttr(desc, pc->attno[c] - 1)->atttypmod == -1;
		if (strcmp(rows->names[c], "tenant_id") == 0)
			pc->tenant_col = c;
	}
	pc->usable = pc->usable && pc->tenant_col >= 0;
	pc->tenant_policy = kaireon_only_tenant_policy(parent, ACL_INSERT_CHR);
	/* the table the statement also reads: SELECT on its columns read (protocol, 3) */
	pc->read_relid = InvalidOid;
	pc->read_rte = NULL;
	if (rows->read_table != NULL)
	{
		pc->read_relid = get_relname_relid(rows->read_table, RelationGetNamespace(parent));
		pc->usable = pc->usable && OidIsValid(pc->read_relid);
		if (OidIsValid(pc->read_relid))
		{
			pc->read_rte = makeNode(RangeTblEntry);
			pc->read_rte->rtekind = RTE_RELATION;
			pc->read_rte->relid = pc->read_relid;
			pc->read_rte->relkind = get_rel_relkind(pc->read_relid);
			pc->read_rte->rellockmode = AccessShareLock;
			pc->read_rte->requiredPerms = ACL_SELECT;
		}
		for (int c = 0; pc->usable && c < rows->nread_columns; c++)
		{
			AttrNumber	a = get_attnum(pc->read_relid, rows->read_columns[c]);

			pc->usable = a > 0;
			pc->read_rte->selectedCols = bms_add_member(pc->read_rte->selectedCols,
														a - FirstLowInvalidHeapAttributeNumber);
		}
	}
	/* the partition key: plain columns among the names */
	pc->nkeys = 0;
	for (int k = 0; pc->usable && k < key->partnatts; k++)
	{
		int			found = -1;

		for (int c = 0; c < rows->ncols; c++)
			if (pc->attno[c] == key->partattrs[k])
				found = c;
		pc->usable = found >= 0;
		pc->key_col[pc->nkeys++] = found;
	}
	/* the other columns: their defaults; none generated or an identity */
	pc->ndefaults = 0;
	pc->volatile_defaults = false;
	pc->default_attno = palloc(sizeof(AttrNumber) * Max(desc->natts, 1));
	pc->default_expr = palloc(sizeof(ExprState *) * Max(desc->natts, 1));
	for (int a = 0; pc->usable && a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		bool		named = false;
		Node	   *def;

		if (att->attisdropped)
			continue;
		if (att->attgenerated || att->attidentity)
			pc->usable = false;
		for (int c = 0; c < rows->ncols; c++)
			named = named || pc->attno[c] == att->attnum;
		/* a domain's default and constraints apply to a column left out: the statement's */
		if (!named && get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			pc->usable = false;
		if (named || !att->atthasdef)
			continue;
		def = build_column_default(parent, att->attnum);
		if (def == NULL)
			continue;
		def = (Node *) expression_planner((Expr *) def);
		pc->volatile_defaults = pc->volatile_defaults || contain_volatile_functions_not_nextval(def);
		pc->default_attno[pc->ndefaults] = att->attnum;
		pc->default_expr[pc->ndefaults++] = ExecInitExpr((Expr *) def, NULL);
	}
	MemoryContextSwitchTo(old);
	pc->names = rows->names;
	pc->ncols = rows->ncols;
	pc->read_table = rows->read_table;
	pc->relid = RelationGetRelid(parent);
	pc->userid = GetUserId();
	pc->stale = false;
	return pc;
}

/* Whether every row has the first row's partition key, so that all go to one partition. */
static bool
one_partition(const ParentColumns *pc, const KHistoryRows *rows, TupleDesc desc)
{
	for (int k = 0; k < pc->nkeys; k++)
	{
		int			c = pc->key_col[k];
		Form_pg_attribute att = TupleDescAttr(desc, pc->attno[c] - 1);

		for (int r = 0; r < rows->nrows; r++)
			if (rows->nulls[c][r] ||
				!datumIsEqual(rows->values[c][0], rows->values[c][r], att->attbyval, att->attlen))
				return false;
	}
	return true;
}

/*
 * Whether the session may write the rows as the statement would, without an
 * error: INSERT rights on the columns named, and row level security that
 * lets every row through (protocol, 3).  *rls: row level security applies
 * (then only kaireon's reference trigger may run before the rows' check).
 */
static bool
rights_allow(const ParentColumns *pc, const KHistoryRows *rows, RangeTblEntry *rte,
			 bool *rls)
{
	const char *current;
	KTenantRls	access = kaireon_tenant_rls(rte, pc->tenant_policy, &current);

	*rls = access == KRLS_TENANT;
	if (access != KRLS_TENANT)
		return access == KRLS_OFF;
	if (current == NULL)
		return false;
	/* tenant_id = current_tenant_id(): text equality under a deterministic collation is byte equality */
	for (int r = 0; r < rows->nrows; r++)
	{
		text	   *t;

		if (rows->nulls[pc->tenant_col][r])
			return false;
		t = DatumGetTextPP(rows->values[pc->tenant_col][r]);
		if (VARSIZE_ANY_EXHDR(t) != strlen(current) || memcmp(VARDATA_ANY(t), current, strlen(current)) != 0)
			return false;
	}
	return true;
}

/*
 * Whether the session may read the table the statement also reads, as the
 * statement would without an error: SELECT on the columns it reads, and
 * not row level security with row_security off (the statement's rewriter
 * raises then, before the rest).  The rows written here read no row of it.
 */
static bool
read_rights_allow(const ParentColumns *pc)
{
	if (pc->read_rte == NULL)
		return true;
	if (!ExecCheckRTPerms(list_make1(pc->read_rte), false))
		return false;
	return row_security || check_enable_rls(pc->read_relid, InvalidOid, true) != RLS_ENABLED;
}

/* Fill the root slot with row r: the named columns, then the defaults. */
static void
fill_row(TupleTableSlot *slot, const ParentColumns *pc, const KHistoryRows *rows, int r, EState *estate)
{
	ExprContext *econtext = GetPerTupleExprContext(estate);
	MemoryContext old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	for (int c = 0; c < rows->ncols; c++)
	{
		slot->tts_values[pc->attno[c] - 1] = rows->values[c][r];
		slot->tts_isnull[pc->attno[c] - 1] = rows->nulls[c][r];
	}
	for (int d = 0; d < pc->ndefaults; d++)
	{
		AttrNumber a = pc->default_attno[d];

		slot->tts_values[a - 1] = ExecEvalExpr(pc->default_expr[d], econtext, &slot->tts_isnull[a - 1]);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
}

/*
 * Pop the snapshot the write pushed, when it is still the active one (after
 * an error, the abort pops what user code left above it, and it).
 */
static void
pop_write_snapshot(void)
{
	if (write_snapshot != NULL && ActiveSnapshotSet() && GetActiveSnapshot() == write_snapshot)
		PopActiveSnapshot();
	write_snapshot = NULL;
}

/* Close what a write opened, as COPY FROM closes it (the locks stay to the transaction's end). */
static void
end_write(EState *estate, ModifyTableState *mtstate, PartitionTupleRouting *proute, Relation parent)
{
	ExecResetTupleTable(estate->es_tupleTable, false);
	ExecCleanupTupleRouting(mtstate, proute);
	ExecCloseResultRelations(estate);
	ExecCloseRangeTableRelations(estate);
	FreeExecutorState(estate);
	table_close(parent, NoLock);
}

/*
 * The write itself (protocol, 1-4), under kaireon_history_insert's nesting
 * guard; false when the direct write does not apply and nothing was written.
 */
static bool
write_rows(const KHistoryRows *rows, uint64 *inserted)
{
	Oid			relid;
	Relation	parent;
	ParentColumns *pc;
	RangeTblEntry *rte;
	EState	   *estate;
	ResultRelInfo *root;
	ResultRelInfo *part;
	ModifyTableState *mtstate;
	PartitionTupleRouting *proute;
	TupleTableSlot *slot;
	bool		has_br;
	bool		rls;
	bool		batch;
	bool		volatile_checks = false;
	MemoryContext oldcxt;
	TupleTableSlot **slots;
	uint64		n = 0;

	relid = get_relname_relid("interaction_history", get_namespace_oid("kaireon", false));
	if (!OidIsValid(relid))
		return false;

	/* steps 1-3: the parent, its columns, rights */
	parent = table_open(relid, RowExclusiveLock);
	if (cache_cxt == NULL)
	{
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "kaireon history write", ALLOCSET_SMALL_SIZES);
		retired_cxt = AllocSetContextCreate(TopMemoryContext, "kaireon history write (retired)",
											ALLOCSET_SMALL_SIZES);
	}
	MemoryContextDeleteChildren(retired_cxt);
	if (parent->rd_rel->relkind != RELKIND_PARTITIONED_TABLE || parent->rd_rules != NULL ||
		!triggers_allow(parent->trigdesc) || !leaf_partitions_only(parent))
	{
		table_close(parent, NoLock);
		return false;
	}
	pc = parent_columns(parent, rows);
	if (!pc->usable || !one_partition(pc, rows, RelationGetDescr(parent)))
	{
		table_close(parent, NoLock);
		return false;
	}
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = parent->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	for (int c = 0; c < rows->ncols; c++)
		rte->insertedCols = bms_add_member(rte->insertedCols, pc->attno[c] - FirstLowInvalidHeapAttributeNumber);
	if (!read_rights_allow(pc) || !rights_allow(pc, rows, rte, &rls))
	{
		table_close(parent, NoLock);
		return false;
	}

	/* step 4: the executor's state as COPY FROM sets it up, and the first row's partition */
	estate = CreateExecutorState();
	ExecInitRangeTable(estate, list_make1(rte));
	root = makeNode(ResultRelInfo);
	ExecInitResultRelation(estate, root, 1);
	/*
	 * As SPI before a statement that writes: the commands before are seen (by
	 * the defaults, triggers and checks), under a new snapshot (in READ
	 * COMMITTED, what other transactions committed since the caller's
	 * statement began), its command id the new one.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	UpdateActiveSnapshotCommandId();
	write_snapshot = GetActiveSnapshot();
	estate->es_snapshot = write_snapshot;
	estate->es_output_cid = GetCurrentCommandId(true);
	mtstate = makeNode(ModifyTableState);
	mtstate->ps.plan = NULL;
	mtstate->ps.state = estate;
	mtstate->operation = CMD_INSERT;
	mtstate->mt_nrels = 1;
	mtstate->resultRelInfo = root;
	mtstate->rootResultRelInfo = root;
	proute = ExecSetupPartitionTupleRouting(estate, parent);
	/* a heap tuple slot: the tuple formed for the triggers is the one inserted */
	slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(parent), &TTSOpsHeapTuple);

	fill_row(slot, pc, rows, 0, estate);
	part = ExecFindPartition(mtstate, root, proute, slot, estate);
	if (part->ri_RelationDesc->rd_rel->relkind != RELKIND_RELATION || part->ri_FdwRoutine != NULL ||
		!triggers_allow(part->ri_TrigDesc) || (rls && !only_reference_triggers(part->ri_TrigDesc)))
	{
		end_write(estate, mtstate, proute, parent);
		pop_write_snapshot();
		return false;
	}
	if (part->ri_ConstraintExprs == NULL && RelationGetDescr(part->ri_RelationDesc)->constr != NULL)
	{
		PartChecks *pchecks = part_checks(part->ri_RelationDesc);

		if (pchecks->ncheck > 0)
			part->ri_ConstraintExprs = pchecks->checks;
		volatile_checks = pchecks->volatile_checks;
	}
	has_br = part->ri_TrigDesc != NULL && part->ri_TrigDesc->trig_insert_before_row;

	/*
	 * The rows, as COPY FROM writes a batch: each row routed, through the
	 * BEFORE ROW triggers and the constraints into a slot of its own, then
	 * all of them in one multi-insert (one WAL record for the heap), then
	 * each row's index entries.
	 */
	/*
	 * A BEFORE ROW trigger other than kaireon's, a volatile default or a
	 * volatile CHECK may read the table: then, as COPY does (for triggers and
	 * defaults), each row goes in before the next row's defaults, triggers
	 * and checks run, as the statement writes them.
	 */
	batch = !pc->volatile_defaults && !volatile_checks &&
		(!has_br || only_reference_triggers(part->ri_TrigDesc));
	oldcxt = MemoryContextSwitchTo(estate->es_query_cxt);
	slots = palloc(sizeof(TupleTableSlot *) * rows->nrows);
	for (int r = 0; r < rows->nrows; r++)
	{
		TupleTableSlot *rslot = slot;
		TupleTableSlot *pslot;
		TupleConversionMap *map;

		CHECK_FOR_INTERRUPTS();
		if (r > 0)
		{
			ResetPerTupleExprContext(estate);
			rslot = ExecInitExtraTupleSlot(estate, RelationGetDescr(parent), &TTSOpsHeapTuple);
			fill_row(rslot, pc, rows, r, estate);
			if (ExecFindPartition(mtstate, root, proute, rslot, estate) != part)
				elog(ERROR, "kaireon: rows of equal partition keys went to different partitions");
		}
		pslot = rslot;
		map = part->ri_RootToPartitionMap;
		if (map != NULL)
			pslot = execute_attr_map_slot(map->attrMap, rslot,
										  table_slot_create(part->ri_RelationDesc, &estate->es_tupleTable));
		/* as COPY: the triggers and constraints see the partition's tableoid */
		pslot->tts_tableOid = RelationGetRelid(part->ri_RelationDesc);
		if (has_br && !ExecBRInsertTriggers(estate, part, pslot))
			continue;		/* a trigger skipped the row */
		if (RelationGetDescr(part->ri_RelationDesc)->constr != NULL)
			ExecConstraints(part, pslot, estate);
		if (has_br)
			ExecPartitionCheck(part, pslot, estate, true);
		if (!batch)
		{
			table_tuple_insert(part->ri_RelationDesc, pslot, estate->es_output_cid, 0, NULL);
			if (part->ri_NumIndices > 0)
				list_free(ExecInsertIndexTuples(part, pslot, estate, false, false, NULL, NIL));
			n++;
			continue;
		}
		/* the row's own copy: the next row's defaults reuse the per-row memory */
		ExecMaterializeSlot(pslot);
		slots[n++] = pslot;
	}
	if (batch && n > 0)
	{
		/* table_multi_insert leaves memory in the current context: the per-row one */
		MemoryContext batchcxt = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));

		table_multi_insert(part->ri_RelationDesc, slots, (int) n, estate->es_output_cid, 0, NULL);
		MemoryContextSwitchTo(batchcxt);
		for (int i = 0; i < (int) n && part->ri_NumIndices > 0; i++)
			list_free(ExecInsertIndexTuples(part, slots[i], estate, false, false, NULL, NIL));
	}
	MemoryContextSwitchTo(oldcxt);

	end_write(estate, mtstate, proute, parent);
	/* as after a statement: later commands of the transaction see the rows */
	CommandCounterIncrement();
	pop_write_snapshot();
	*inserted = n;
	return true;
}

/*
 * Write the rows into interaction_history (protocol above); false when the
 * direct write does not apply and nothing was written.  *inserted: the rows
 * written (fewer when a BEFORE ROW trigger skipped some).
 */
bool
kaireon_history_insert(const KHistoryRows *rows, uint64 *inserted)
{
	volatile bool done = false;

	*inserted = 0;
	if (!direct_history_writes || depth > 0 || rows->nrows <= 0 || XactReadOnly || IsInParallelMode() ||
		kspi_citus_installed())
		return false;

	/*
	 * Raised before anything that can run user code (constant folding of the
	 * defaults and CHECKs, the defaults, triggers, constraints): a recording
	 * that code makes takes the statement, and neither evaluates this write's
	 * expressions again nor frees the retired contexts while they run.
	 */
	depth++;
	PG_TRY();
	{
		done = write_rows(rows, inserted);
	}
	PG_FINALLY();
	{
		depth--;
		pop_write_snapshot();	/* after an error: popped here, not left to the abort */
	}
	PG_END_TRY();
	return done;
}
