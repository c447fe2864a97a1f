/*
 * decision/state_read.c
 *	  Reads a customer's recent interaction history and active suppressions
 *	  straight through their B-tree indexes (index_beginscan on the known
 *	  indexes) instead of running the prepared SQL of config/state_plan.c
 *	  through SPI, whose executor start-up (a Limit, a Sort, an Append and a
 *	  scan per partition for the history) cost more than the reads
 *	  themselves.  decision/customer.c asks here first and runs the SQL when
 *	  this file says it cannot answer (returns false).  The map of the
 *	  relations read directly (steps 1-3 and 5 below) is kept here and
 *	  shared with decision/state_row.c, which reads the customer's data row
 *	  and segment membership the same way.
 *
 * Protocol: exactly what the SQL would return to the caller.
 *	1. The relations: a per-backend map of kaireon.interaction_history (its
 *	   leaf partitions, each with its upper bound and its (tenant_id,
 *	   customer_id, occurred_at DESC) index) and of kaireon.suppressions (its
 *	   (tenant_id, customer_id, ...) index), built on first use and rebuilt
 *	   after a relcache invalidation of any relation in it (a partition
 *	   created, attached, detached or dropped invalidates the parent; a new
 *	   or dropped index or policy invalidates its table), or after an error
 *	   while building it.  A table that is not a plain local table (a Citus installation, a
 *	   foreign or sub-partitioned partition, a missing index, inheritance
 *	   children, whose rows the SQL without ONLY reads too) is read by the
 *	   SQL, as is the history while a partition's detach is pending (each
 *	   snapshot then has its own set of partitions), and a table whose index
 *	   was built over broken HOT chains (indcheckxmin) while the transaction
 *	   has a snapshot older than the index.
 *	2. Locks: AccessShareLock on the parent (which also takes in pending
 *	   invalidations, so the map is current) and on every partition and
 *	   index read, as the executor takes them; a read keeps them until the
 *	   transaction ends, as the executor does (a later read of the same
 *	   relation in the transaction finds its lock already held).
 *	3. Rights, per read: ExecCheckRTPerms on a range table entry of the
 *	   parent with the columns the SQL names (table or column privileges,
 *	   and any ExecutorCheckPerms_hook), as the executor checks them; when
 *	   it refuses, the SQL runs and raises the same error.  Row level
 *	   security: check_enable_rls (which raises as the executor would when
 *	   row_security is off and a policy applies); where it applies, the read
 *	   proceeds only when the table has exactly the policy kaireon installs
 *	   (permissive, for all commands or SELECT, TO PUBLIC, USING (tenant_id
 *	   = kaireon.current_tenant_id())) and no row security hook is set: the
 *	   rows the SQL keeps are then all of the request's tenant's rows when
 *	   the session's tenant is the request's tenant, else none.  Any other
 *	   policy set runs the SQL.  See docs/recommend.md.
 *	4. Visibility: the history is read as SPI runs a statement that is not
 *	   read-only (a new transaction snapshot, the command counter advanced,
 *	   so rows the transaction wrote before are seen), the snapshot taken
 *	   before the partitions are mapped and locked, as a statement's is
 *	   taken before it is planned; the suppressions and
 *	   the data row with the caller's active snapshot, as a read-only
 *	   statement (with none active, the SQL runs).
 *	5. Keys: an index is used only where the planner could use it for the
 *	   SQL's clauses: each key column's family holds the operator of the
 *	   column type's default operator class (= for the keys, >= for the
 *	   history's time) and the index column has the table column's
 *	   collation.  Each scan key takes that operator and the collation, so
 *	   text compares as the SQL compares it; a collation whose order is the
 *	   bytes' order by definition (glibc's C.UTF-8, see util/collation.c)
 *	   is named "C" instead, which orders and matches exactly the same but
 *	   compares with memcmp rather than through the locale machinery.  The history's partitions are those
 *	   whose upper bound is past the oldest time asked for (compared by the
 *	   partition key's support function) and the default partition; their
 *	   rows are merged newest first and cut at the limit, as ORDER BY
 *	   occurred_at DESC LIMIT does (rows at the same time in an unspecified
 *	   order, as there).
 *	6. Segment membership (kaireon_segment_member, decision/state_row.c,
 *	   which also reads the data row): a segment view is
 *	   answered from the customer's data row read above, without its SQL,
 *	   when the view is exactly what publish_segment makes of filters on the
 *	   data table alone (security_invoker; DISTINCT over that one table, no
 *	   join; customer_id is the table's text key; a WHERE clause of built-in,
 *	   non-volatile functions and operators over that table's columns, no
 *	   subquery or parameter) and that table is the one whose row was read
 *	   here: the customer is a member when the row exists and the WHERE
 *	   clause, compiled per user (ExecInitQual checks the user's EXECUTE
 *	   rights on its functions, as the view's SQL does for its invoker),
 *	   kept for a few users (others: the SQL) until a function or a role's
 *	   attributes or memberships change (util/inval.c,
 *	   kaireon_rights_changes), holds on it.  The caller's SELECT right on
 *	   the view is checked as the executor checks it; the table's rights
 *	   and row level security were checked by the row's read (every
 *	   column).  Anything else runs the SQL.
 *	7. Empty tables: a history partition or the suppressions table (a heap)
 *	   whose size, read under its lock after the snapshot was taken, is no
 *	   page is not scanned, and its index is neither locked nor read.  A row
 *	   the snapshot sees was committed before the snapshot, into a page the
 *	   table had been extended by on disk before that; a page goes only by
 *	   VACUUM's truncation, which needs an AccessExclusiveLock (held off by
 *	   ours from before the size is read) and keeps every page with a row a
 *	   registered snapshot (ours) may see, or by TRUNCATE (AccessExclusiveLock,
 *	   a new empty file, which the SQL would read as well once it has its
 *	   lock).  So the table holds no row the SQL would return.  A history
 *	   partition found with a page once is not measured again while the map
 *	   lasts (the size is a syscall; a partition that empties again is
 *	   scanned, which finds no row as well).  Under SERIALIZABLE a table not
 *	   scanned takes a predicate lock on itself, as the SQL's scan of its
 *	   empty index takes one on the index (any insert into the table checks
 *	   it), and rows row level security hides from the whole tenant are read
 *	   by the SQL (whose scan takes the predicate locks).
 */
#include "postgres.h"

#include "config/config.h"	/* first: util/json.h before utils/builtins.h */

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_opclass.h"
#include "catalog/pg_operator.h"
#include "commands/defrem.h"
#include "executor/executor.h"
#include "parser/parse_func.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "rewrite/rowsecurity.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/predicate.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "security/session.h"
#include "util/collation.h"
#include "util/spi.h"
#include "decision/state_read.h"

static const char *const history_columns[H_NCOLS] = {
	"interaction_type", "outcome_type_key", "offer_id", "channel_id", "occurred_at"
};
static const char *const suppression_columns[S_NCOLS] = {"scope", "scope_id", "reason", "expires_at"};

/* The per-backend map of the relations (protocol step 1), shared with state_row.c. */
KStateMap	kaireon_state_map;


/*
 * Relcache invalidation (through the configuration cache's callback,
 * kaireon_relcache_listener: no slot of our own): forget the map when any
 * relation in it (or every relation) changes.
 */
static void
state_map_invalidate(Oid relid)
{
	if (!kaireon_state_map.valid)
		return;
	if (relid == InvalidOid || relid == kaireon_state_map.history.rel || relid == kaireon_state_map.supp.rel ||
		relid == kaireon_state_map.supp_keys.index)
	{
		kaireon_state_map.valid = false;
		return;
	}
	for (int i = 0; i < kaireon_state_map.nparts; i++)
		if (relid == kaireon_state_map.parts[i].rel || relid == kaireon_state_map.parts[i].keys.index)
		{
			kaireon_state_map.valid = false;
			return;
		}
	for (int i = 0; i < kaireon_state_map.ncustomer_tables; i++)
		if (relid == kaireon_state_map.customer_tables[i].table.rel || relid == kaireon_state_map.customer_tables[i].keys.index)
		{
			kaireon_state_map.valid = false;
			return;
		}
	for (int i = 0; i < kaireon_state_map.nsegment_views; i++)
		if (relid == kaireon_state_map.segment_views[i].view || relid == kaireon_state_map.segment_views[i].table)
		{
			kaireon_state_map.valid = false;
			return;
		}
}

/*
 * One more entry of an array of the map (*arr of *n entries of size bytes,
 * grown by 8 in the map's context), zeroed; *n counts it from here, so the
 * invalidation callback watches what the caller puts in it.
 */
void *
kaireon_state_map_entry(void **arr, int *n, Size size)
{
	char	   *e;

	if (*arr == NULL)
		*arr = MemoryContextAllocZero(kaireon_state_map.mcxt, size * 8);
	else if (*n % 8 == 0)
		*arr = repalloc(*arr, size * (*n + 8));
	e = (char *) *arr + size * *n;
	memset(e, 0, size);
	(*n)++;
	return e;
}

/* An equality or comparison operator's function of an index column, in the map's context. */
static bool
column_operator(Relation index, int col, StrategyNumber strategy, FmgrInfo *finfo)
{
	Oid			type = index->rd_opcintype[col];
	Oid			op = get_opfamily_member(index->rd_opfamily[col], type, type, strategy);

	if (!OidIsValid(op))
		return false;
	fmgr_info_cxt(get_opcode(op), finfo, kaireon_state_map.mcxt);
	return true;
}

/*
 * Whether the SQL's clause on a column of this type (its default B-tree
 * operator class's operator of the strategy: = for the keys, >= for the
 * history's time) can be answered by index column at, as the planner decides
 * it: that operator is in the column's operator family with that strategy,
 * and the index column has the table column's collation.
 */
static bool
index_column_answers(Relation rel, Relation index, int at, AttrNumber att, Oid type, StrategyNumber strategy)
{
	Oid			opclass = GetDefaultOpClass(type, BTREE_AM_OID);
	Oid			op = OidIsValid(opclass) ?
		get_opfamily_member(get_opclass_family(opclass), type, type, strategy) : InvalidOid;

	return OidIsValid(op) && get_op_opfamily_strategy(op, index->rd_opfamily[at]) == strategy &&
		index->rd_indcollation[at] == TupleDescAttr(RelationGetDescr(rel), att - 1)->attcollation;
}

/*
 * The valid, non-partial B-tree index of rel whose first key columns are
 * exactly the named columns of the given types (no expressions), with
 * swapped the first two exchanged, the third (the history's time)
 * descending, each answering the SQL's clause on it (index_column_answers);
 * fills keys.
 */
static bool
find_index_ordered(Relation rel, const char *const *names, const Oid *types, int ncols, bool swapped,
				   KIndexKeys *keys)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		found = false;
	AttrNumber	atts[3];

	Assert(ncols >= 2 && ncols <= 3);
	for (int c = 0; c < ncols; c++)
		atts[c] = get_attnum(RelationGetRelid(rel), names[c]);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ix = index->rd_index;
		bool		ok = index->rd_rel->relam == BTREE_AM_OID && ix->indisvalid && ix->indisready &&
			ix->indislive && ix->indnkeyatts >= ncols &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL);

		/* column c of the names at index column c, or, swapped, with the first two exchanged */
		for (int c = 0; ok && c < ncols; c++)
		{
			int			at = swapped && c < 2 ? 1 - c : c;

			ok = ix->indkey.values[at] == atts[c] && index->rd_opcintype[at] == types[c] &&
				index_column_answers(rel, index, at, atts[c], types[c],
									 c < 2 ? BTEqualStrategyNumber : BTGreaterEqualStrategyNumber);
		}
		/* the history's rows are taken newest first in a forward scan: its time column DESC */
		if (ok && ncols == 3)
			ok = (index->rd_indoption[2] & INDOPTION_DESC) != 0;
		if (ok)
		{
			keys->index = RelationGetRelid(index);
			keys->customer_first = swapped;
			keys->checkxmin = ix->indcheckxmin ?
				HeapTupleHeaderGetXmin(index->rd_indextuple->t_data) : InvalidTransactionId;
			for (int c = 0; c < ncols; c++)
				keys->coll[c] = kaireon_bytewise_collation(index->rd_indcollation[c]) ? C_COLLATION_OID :
					index->rd_indcollation[c];
			ok = column_operator(index, 0, BTEqualStrategyNumber, &keys->eq[0]) &&
				column_operator(index, 1, BTEqualStrategyNumber, &keys->eq[1]) &&
				(ncols < 3 || column_operator(index, 2, BTGreaterEqualStrategyNumber, &keys->ge));
		}
		index_close(index, AccessShareLock);
		if (ok)
		{
			found = true;
			break;
		}
	}
	list_free(indexes);
	return found;
}

/*
 * find_index_ordered: the named columns in their order, else the first two
 * exchanged (equality on both serves either; the history's lookup index is
 * (customer_id, tenant_id, occurred_at DESC), 0.1.0's (tenant_id, customer_id,
 * occurred_at DESC)).  The order given is preferred, so a data table's primary
 * key (tenant_id, key) is found whatever other index it has.
 */
bool
kaireon_state_find_index(Relation rel, const char *const *names, const Oid *types, int ncols, KIndexKeys *keys)
{
	return find_index_ordered(rel, names, types, ncols, false, keys) ||
		find_index_ordered(rel, names, types, ncols, true, keys);
}

/*
 * Whether rel's row level security policies are exactly kaireon's
 * tenant_isolation for the command cmd (ACL_SELECT_CHR or ACL_INSERT_CHR):
 * one permissive policy for all commands (or for cmd), TO PUBLIC, USING
 * (tenant_id = kaireon.current_tenant_id()) and, for an insert, no WITH
 * CHECK of its own (the USING expression is then the check).  Also for
 * decision/history_write.c.
 */
bool
kaireon_only_tenant_policy(Relation rel, char cmd)
{
	RowSecurityPolicy *p;
	OpExpr	   *op;
	Var		   *var;
	FuncExpr   *fn;
	Oid			current_tenant_fn;
	Datum	   *roles;
	int			nroles;

	if (rel->rd_rsdesc == NULL || list_length(rel->rd_rsdesc->policies) != 1)
		return false;
	p = linitial(rel->rd_rsdesc->policies);
	if (!p->permissive || (p->polcmd != '*' && p->polcmd != cmd) || p->hassublinks ||
		p->roles == NULL || p->qual == NULL || !IsA(p->qual, OpExpr) ||
		(cmd == ACL_INSERT_CHR && p->with_check_qual != NULL && !equal(p->with_check_qual, p->qual)))
		return false;
	deconstruct_array(p->roles, OIDOID, sizeof(Oid), true, TYPALIGN_INT, &roles, NULL, &nroles);
	if (nroles != 1 || DatumGetObjectId(roles[0]) != ACL_ID_PUBLIC)
		return false;
	op = (OpExpr *) p->qual;
	if (op->opno != TextEqualOperator || list_length(op->args) != 2 ||
		!IsA(linitial(op->args), Var) || !IsA(lsecond(op->args), FuncExpr))
		return false;
	var = linitial(op->args);
	fn = lsecond(op->args);
	current_tenant_fn = LookupFuncName(list_make2(makeString("kaireon"), makeString("current_tenant_id")),
									   0, NULL, true);
	return var->varattno == get_attnum(RelationGetRelid(rel), "tenant_id") && var->varlevelsup == 0 &&
		fn->funcid == current_tenant_fn && OidIsValid(current_tenant_fn) && fn->args == NIL;
}

/* Fill a table's rights entry: SELECT on the key columns and the named ones. */
void
kaireon_state_table_entry(KTable *t, Relation rel, const char *const *names, int ncols)
{
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	const char *keys[3] = {"tenant_id", "customer_id", NULL};

	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = AccessShareLock;
	rte->inh = rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE;
	rte->requiredPerms = ACL_SELECT;
	for (int i = 0; keys[i] != NULL; i++)
		rte->selectedCols = bms_add_member(rte->selectedCols,
										   get_attnum(rte->relid, keys[i]) - FirstLowInvalidHeapAttributeNumber);
	for (int i = 0; i < ncols; i++)
		rte->selectedCols = bms_add_member(rte->selectedCols,
										   get_attnum(rte->relid, names[i]) - FirstLowInvalidHeapAttributeNumber);
	/* no names: every column (t.*) */
	for (int i = 0; names == NULL && i < RelationGetDescr(rel)->natts; i++)
		if (!TupleDescAttr(RelationGetDescr(rel), i)->attisdropped)
			rte->selectedCols = bms_add_member(rte->selectedCols, i + 1 - FirstLowInvalidHeapAttributeNumber);
	t->rel = RelationGetRelid(rel);
	t->rte = rte;
	t->tenant_policy = kaireon_only_tenant_policy(rel, ACL_SELECT_CHR);
}

/* Map the history's leaf partitions (the parent is locked); false when one cannot be read here. */
static bool
map_history(Relation parent)
{
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	PartitionBoundInfo bi = pd->boundinfo;
	const char *keycols[3] = {"tenant_id", "customer_id", "occurred_at"};
	Oid			keytypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};

	/*
	 * A partition being detached (DETACH ... CONCURRENTLY, pending) is in or
	 * out of the SQL's plan by each snapshot; the map is one for every
	 * snapshot, so the SQL reads until the detach ends (its invalidation).
	 */
	if (pd->detached_exist)
		return false;
	if (key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 ||
		key->partattrs[0] != get_attnum(RelationGetRelid(parent), "occurred_at") ||
		key->parttypid[0] != TIMESTAMPTZOID)
		return false;
	fmgr_info_copy(&kaireon_state_map.partcmp, &key->partsupfunc[0], kaireon_state_map.mcxt);
	kaireon_state_map.partcoll = key->partcollation[0];
	kaireon_state_map.parts = MemoryContextAllocZero(kaireon_state_map.mcxt, sizeof(KPart) * Max(pd->nparts, 1));
	for (int i = 0; i < pd->nparts; i++)
	{
		KPart	   *p = &kaireon_state_map.parts[kaireon_state_map.nparts];
		Relation	rel;
		bool		ok;

		if (!pd->is_leaf[i])
			return false;
		p->rel = pd->oids[i];
		rel = table_open(p->rel, AccessShareLock);
		kaireon_state_map.nparts++;			/* the invalidation callback watches it from here */
		ok = kaireon_state_plain_table(rel) && kaireon_state_find_index(rel, keycols, keytypes, 3, &p->keys);
		for (int c = 0; ok && c < H_NCOLS; c++)
			ok = (p->att[c] = get_attnum(p->rel, history_columns[c])) > 0;
		if (ok)
			p->type_coll = TupleDescAttr(RelationGetDescr(rel), p->att[H_TYPE] - 1)->attcollation;
		table_close(rel, AccessShareLock);
		if (!ok)
			return false;
		/* its upper bound: the range datum whose index is this partition (none for the default) */
		for (int j = 0; bi != NULL && j < bi->ndatums; j++)
			if (bi->indexes[j] == i)
			{
				p->bounded = bi->kind[j][0] == PARTITION_RANGE_DATUM_VALUE;
				p->upper = bi->datums[j][0];
				break;
			}
	}
	return true;
}

/* (Re)build the map (protocol step 1). */
void
kaireon_state_build_map(void)
{
	Oid			nsp = get_namespace_oid("kaireon", false);
	Oid			history = get_relname_relid("interaction_history", nsp);
	Oid			supp = get_relname_relid("suppressions", nsp);
	bool		citus = kspi_citus_installed();
	const char *suppcols[2] = {"tenant_id", "customer_id"};
	Oid			supptypes[2] = {TEXTOID, TEXTOID};

	kaireon_relcache_listener = state_map_invalidate;
	if (kaireon_state_map.mcxt == NULL)
		kaireon_state_map.mcxt = AllocSetContextCreate(TopMemoryContext, "kaireon state read map", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(kaireon_state_map.mcxt);
	memset(&kaireon_state_map.history, 0, sizeof(kaireon_state_map.history));
	memset(&kaireon_state_map.supp, 0, sizeof(kaireon_state_map.supp));
	memset(&kaireon_state_map.supp_keys, 0, sizeof(kaireon_state_map.supp_keys));
	kaireon_state_map.nparts = 0;
	kaireon_state_map.parts = NULL;
	kaireon_state_map.ncustomer_tables = 0;
	kaireon_state_map.customer_tables = NULL;
	kaireon_state_map.nsegment_views = 0;
	kaireon_state_map.segment_views = NULL;
	kaireon_state_map.history.rel = history;
	kaireon_state_map.supp.rel = supp;
	kaireon_state_map.valid = true;			/* from here, an invalidation of what is read below clears it */

	/* an error part way (a cancelled lock wait) leaves no half-built map marked valid */
	PG_TRY();
	{
		if (!citus && OidIsValid(history))
		{
			Relation	parent = table_open(history, AccessShareLock);

			if (parent->rd_rel->relkind == RELKIND_PARTITIONED_TABLE && map_history(parent))
			{
				MemoryContext old = MemoryContextSwitchTo(kaireon_state_map.mcxt);

				kaireon_state_table_entry(&kaireon_state_map.history, parent, history_columns, H_NCOLS);
				MemoryContextSwitchTo(old);
				kaireon_state_map.history.direct = true;
			}
			table_close(parent, AccessShareLock);
		}
		if (!citus && OidIsValid(supp))
		{
			Relation	rel = table_open(supp, AccessShareLock);

			bool		ok = kaireon_state_plain_table(rel) &&
				kaireon_state_find_index(rel, suppcols, supptypes, 2, &kaireon_state_map.supp_keys);

			for (int c = 0; ok && c < S_NCOLS; c++)
				ok = (kaireon_state_map.supp_att[c] = get_attnum(supp, suppression_columns[c])) > 0;
			if (ok)
			{
				MemoryContext old = MemoryContextSwitchTo(kaireon_state_map.mcxt);

				kaireon_state_table_entry(&kaireon_state_map.supp, rel, suppression_columns, S_NCOLS);
				MemoryContextSwitchTo(old);
				kaireon_state_map.supp.direct = true;
			}
			table_close(rel, AccessShareLock);
		}
	}
	PG_CATCH();
	{
		kaireon_state_map.valid = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
}

/*
 * Lock a table of the map and make sure the map is current; the table entry
 * to read it by, or NULL when the SQL must read it.  (Protocol steps 1-2.)
 */
static KTable *
lock_table(bool history)
{
	for (int attempt = 0; attempt < 2; attempt++)
	{
		KTable	   *t;

		if (!kaireon_state_map.valid)
			kaireon_state_build_map();
		t = history ? &kaireon_state_map.history : &kaireon_state_map.supp;
		if (!t->direct)
			return NULL;
		/* takes in pending invalidations: a changed map is rebuilt once more */
		LockRelationOid(t->rel, AccessShareLock);
		if (kaireon_state_map.valid)
			return t;
	}
	return NULL;
}

/*
 * Which of the table's rows the SQL would show the caller (protocol step 3):
 * -1 run the SQL (rights refused, or policies other than kaireon's), 0 none
 * (row level security hides the tenant), 1 all the tenant's rows.  Under
 * SERIALIZABLE, none is -1 as well: the SQL's scan takes the predicate locks
 * a read that looks at nothing would not (protocol step 7).
 */
int
kaireon_state_visible_rows(KTable *t, const char *tenant_id)
{
	const char *current;

	switch (kaireon_tenant_rls(t->rte, t->tenant_policy, &current))
	{
		case KRLS_SQL:
			return -1;
		case KRLS_OFF:
			return 1;
		default:
			/* tenant_id = current_tenant_id(): text equality under a deterministic collation is byte equality */
			if (current != NULL && strcmp(current, tenant_id) == 0)
				return 1;
			return IsolationIsSerializable() ? -1 : 0;
	}
}

/*
 * Whether rel is a plain local heap table the SQL reads alone: not Citus's,
 * foreign or partitioned, and without inheritance children (the SQL, without
 * ONLY, reads their rows too; PostgreSQL keeps the mark, relhassubclass,
 * until ANALYZE finds the last child gone).
 */
bool
kaireon_state_plain_table(Relation rel)
{
	return rel->rd_rel->relkind == RELKIND_RELATION && !rel->rd_rel->relhassubclass;
}

/*
 * The session's rights on a table as the executor would check them, for a
 * direct read or write (this file, history_write.c): KRLS_SQL when the SQL
 * must run instead (ExecCheckRTPerms refuses the range table entry, or row
 * level security applies with another policy set than kaireon's own, which
 * tenant_policy says, or with a row security hook), KRLS_OFF when row level
 * security does not apply, KRLS_TENANT when kaireon's tenant policy applies:
 * only rows whose tenant_id is *current pass (*current NULL: none).
 * check_enable_rls raises as the executor would when row_security is off and
 * a policy applies.
 */
KTenantRls
kaireon_tenant_rls(RangeTblEntry *rte, bool tenant_policy, const char **current)
{
	*current = NULL;
	if (!ExecCheckRTPerms(list_make1(rte), false))
		return KRLS_SQL;
	if (check_enable_rls(rte->relid, InvalidOid, false) != RLS_ENABLED)
		return KRLS_OFF;
	if (!tenant_policy || row_security_policy_hook_permissive != NULL ||
		row_security_policy_hook_restrictive != NULL)
		return KRLS_SQL;
	*current = kaireon_current_tenant();
	return KRLS_TENANT;
}

/*
 * Whether this transaction may read through the index: one built over broken
 * HOT chains (indcheckxmin) only once its pg_index row is older than every
 * snapshot of the transaction, as the planner decides (get_relation_info).
 */
bool
kaireon_state_index_usable(const KIndexKeys *k)
{
	return !TransactionIdIsValid(k->checkxmin) || TransactionIdPrecedes(k->checkxmin, TransactionXmin);
}

/*
 * Key an index scan on (tenant_id, customer_id), in the index's column order,
 * and, with since, the third column >= since.
 */
int
kaireon_state_scan_keys(ScanKey keys, const KIndexKeys *k, Datum tenant, Datum customer, const Datum *since)
{
	ScanKeyEntryInitializeWithInfo(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid, k->coll[0],
								   (FmgrInfo *) &k->eq[0], k->customer_first ? customer : tenant);
	ScanKeyEntryInitializeWithInfo(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid, k->coll[1],
								   (FmgrInfo *) &k->eq[1], k->customer_first ? tenant : customer);
	if (since == NULL)
		return 2;
	ScanKeyEntryInitializeWithInfo(&keys[2], 0, 3, BTGreaterEqualStrategyNumber, InvalidOid, k->coll[2],
								   (FmgrInfo *) &k->ge, *since);
	return 3;
}

/* A text column of the slot as a C string, NULL when null. */
static char *
slot_text(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* Newest first; the earlier read first among rows of one time. */
static int
history_row_cmp(const void *a, const void *b)
{
	const KHistoryRow *x = a;
	const KHistoryRow *y = b;

	if (x->at != y->at)
		return x->at > y->at ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Whether a table locked after the reader's snapshot was taken is a heap
 * without a page, and so holds no row that snapshot sees (protocol step 7):
 * then its index need not be opened, locked or descended.  Under
 * SERIALIZABLE the read is still one: the table takes the predicate lock
 * the SQL's scan of its empty index would take (on the whole table here,
 * which any insert into it checks).
 */
static bool
no_rows(Relation rel, Snapshot snap)
{
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID || RelationGetNumberOfBlocks(rel) != 0)
		return false;
	PredicateLockRelation(rel, snap);
	return true;
}

/* Read one partition's rows of the customer since the given time, newest first, at most limit. */
static void
read_partition(KPart *p, Snapshot snap, Datum tenant, Datum customer, Datum since, Datum control,
			   int limit, KHistoryRow **rows, int *nrows, int *cap)
{
	Relation	rel = table_open(p->rel, AccessShareLock);
	Relation	index;
	ScanKeyData keys[3];
	int			nkeys;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			taken = 0;

	/* measured until it has a page once (a syscall each time): partitions rarely empty again */
	if (!p->had_pages)
	{
		if (no_rows(rel, snap))
		{
			table_close(rel, NoLock);
			return;
		}
		p->had_pages = true;
	}
	index = index_open(p->keys.index, AccessShareLock);
	nkeys = kaireon_state_scan_keys(keys, &p->keys, tenant, customer, &since);
	scan = index_beginscan(rel, index, snap, nkeys, 0);
	slot = table_slot_create(rel, NULL);
	index_rescan(scan, keys, nkeys, NULL, 0);
	while (taken < limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		type = slot_getattr(slot, p->att[H_TYPE], &isnull);
		KHistoryRow *r;

		/* interaction_type <> 'control', by the column's own operator and collation */
		if (isnull || !DatumGetBool(DirectFunctionCall2Coll(textne, p->type_coll, type, control)))
			continue;
		if (*nrows == *cap)
		{
			*cap *= 2;
			*rows = repalloc(*rows, sizeof(KHistoryRow) * *cap);
		}
		r = &(*rows)[*nrows];
		r->type = TextDatumGetCString(type);
		r->outcome = slot_text(slot, p->att[H_OUTCOME]);
		r->offer_id = slot_text(slot, p->att[H_OFFER]);
		r->channel_id = slot_text(slot, p->att[H_CHANNEL]);
		r->at = DatumGetTimestampTz(slot_getattr(slot, p->att[H_AT], &isnull));
		r->seq = *nrows;
		(*nrows)++;
		taken++;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
}

/*
 * The customer's history rows at or after since, not of a control group,
 * newest first, at most limit: what config/state_plan.c's history query
 * returns.  False when that query must run instead.
 */
bool
kaireon_read_history(const char *tenant_id, const char *customer_id, TimestampTz since, int limit,
					 KHistoryRow **rows, int *nrows)
{
	KTable	   *t;
	int			visible;
	Datum		tenant,
				customer,
				control;
	int			cap = 16;
	int			nparts;
	KPart	   *parts;
	bool		usable;

	/*
	 * As SPI runs a statement that is not read-only: a new snapshot that sees
	 * this transaction's writes, taken before the partitions are mapped and
	 * locked, as a statement's is taken before it is planned (a partition
	 * attached in between is then read as the SQL would read it).
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	t = lock_table(true);
	usable = t != NULL && (visible = kaireon_state_visible_rows(t, tenant_id)) >= 0;
	for (int i = 0; usable && i < kaireon_state_map.nparts; i++)
		usable = kaireon_state_index_usable(&kaireon_state_map.parts[i].keys);
	if (!usable)
	{
		PopActiveSnapshot();
		return false;
	}
	*rows = palloc(sizeof(KHistoryRow) * cap);
	*nrows = 0;
	if (visible == 0)
	{
		PopActiveSnapshot();
		CommandCounterIncrement();
		return true;
	}
	tenant = CStringGetTextDatum(tenant_id);
	customer = CStringGetTextDatum(customer_id);
	control = CStringGetTextDatum("control");
	/* the partitions as mapped now: an invalidation while reading leaves these arrays in place */
	nparts = kaireon_state_map.nparts;
	parts = kaireon_state_map.parts;
	for (int i = 0; i < nparts; i++)
	{
		KPart	   *p = &parts[i];

		/* a partition whose (exclusive) upper bound is at or before since holds no row of the window */
		if (p->bounded &&
			DatumGetInt32(FunctionCall2Coll((FmgrInfo *) &kaireon_state_map.partcmp, kaireon_state_map.partcoll, p->upper,
											TimestampTzGetDatum(since))) <= 0)
			continue;
		read_partition(p, GetActiveSnapshot(), tenant, customer, TimestampTzGetDatum(since), control,
					   limit, rows, nrows, &cap);
	}
	PopActiveSnapshot();
	CommandCounterIncrement();
	if (*nrows > 1)
		qsort(*rows, *nrows, sizeof(KHistoryRow), history_row_cmp);
	if (*nrows > limit)
		*nrows = limit;
	return true;
}

/*
 * The customer's suppressions with no expiry or expiring after now, in the
 * index's order: what config/state_plan.c's suppression query returns.
 * False when that query must run instead.
 */
bool
kaireon_read_suppressions(const char *tenant_id, const char *customer_id, TimestampTz now,
						  KSuppressionRow **rows, int *nrows)
{
	KTable	   *t = ActiveSnapshotSet() ? lock_table(false) : NULL;	/* read-only: the statement's snapshot */
	int			visible;
	int			cap = 4;
	Relation	rel;
	Relation	index;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;

	if (t == NULL || (visible = kaireon_state_visible_rows(t, tenant_id)) < 0 ||
		!kaireon_state_index_usable(&kaireon_state_map.supp_keys))
		return false;
	*rows = palloc(sizeof(KSuppressionRow) * cap);
	*nrows = 0;
	if (visible == 0)
		return true;
	rel = table_open(t->rel, AccessShareLock);
	if (no_rows(rel, GetActiveSnapshot()))
	{
		table_close(rel, NoLock);
		return true;
	}
	index = index_open(kaireon_state_map.supp_keys.index, AccessShareLock);
	kaireon_state_scan_keys(keys, &kaireon_state_map.supp_keys, CStringGetTextDatum(tenant_id), CStringGetTextDatum(customer_id), NULL);
	/* a read-only statement: the caller's active snapshot */
	scan = index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
	slot = table_slot_create(rel, NULL);
	index_rescan(scan, keys, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		expires = slot_getattr(slot, kaireon_state_map.supp_att[S_EXPIRES], &isnull);
		KSuppressionRow *r;

		/* expires_at IS NULL OR expires_at > now() */
		if (!isnull && !DatumGetBool(DirectFunctionCall2(timestamp_gt, expires, TimestampTzGetDatum(now))))
			continue;
		if (*nrows == cap)
		{
			cap *= 2;
			*rows = repalloc(*rows, sizeof(KSuppressionRow) * cap);
		}
		r = &(*rows)[(*nrows)++];
		r->scope = slot_text(slot, kaireon_state_map.supp_att[S_SCOPE]);
		r->scope_id = slot_text(slot, kaireon_state_map.supp_att[S_SCOPE_ID]);
		r->reason = slot_text(slot, kaireon_state_map.supp_att[S_REASON]);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}
