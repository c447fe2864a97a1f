/*
 * decision/state_read.c
 *	  Reads a customer's recent interaction history and active suppressions
 *	  straight through their B-tree indexes (index_beginscan on the known
 *	  indexes) instead of running the prepared SQL of config/state_plan.c
 *	  through SPI, whose executor start-up (a Limit, a Sort, an Append and a
 *	  scan per partition for the history) cost more than the reads
 *	  themselves.  decision/customer.c asks here first and runs the SQL when
 *	  this file says it cannot answer (returns false).
 *
 * Protocol: exactly what the SQL would return to the caller.
 *	1. The relations: a per-backend map of kaireon.interaction_history (its
 *	   leaf partitions, each with its upper bound and its (tenant_id,
 *	   customer_id, occurred_at DESC) index) and of kaireon.suppressions (its
 *	   (tenant_id, customer_id, ...) index), built on first use and rebuilt
 *	   after a relcache invalidation of any relation in it (a partition
 *	   created, attached, detached or dropped invalidates the parent; a new
 *	   or dropped index or policy invalidates its table).  A table that is
 *	   not a plain local table (a Citus installation, a foreign or
 *	   sub-partitioned partition, a missing index) is read by the SQL, as
 *	   is a table whose index was built over broken HOT chains (indcheckxmin)
 *	   while the transaction has a snapshot older than the index.
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
 *	   so rows the transaction wrote before are seen); the suppressions and
 *	   the data row with the caller's active snapshot, as a read-only
 *	   statement (with none active, the SQL runs).
 *	5. Keys: each scan key takes the operator of the index column's own
 *	   operator family and the column's collation, so text compares as the
 *	   index (and the SQL) compares it; a collation whose order is the
 *	   bytes' order by definition (glibc's C.UTF-8, see util/collation.c)
 *	   is named "C" instead, which orders and matches exactly the same but
 *	   compares with memcmp rather than through the locale machinery.  The history's partitions are those
 *	   whose upper bound is past the oldest time asked for (compared by the
 *	   partition key's support function) and the default partition; their
 *	   rows are merged newest first and cut at the limit, as ORDER BY
 *	   occurred_at DESC LIMIT does (rows at the same time in an unspecified
 *	   order, as there).
 *	6. Segment membership (kaireon_segment_member): a segment view is
 *	   answered from the customer's data row read above, without its SQL,
 *	   when the view is exactly what publish_segment makes of filters on the
 *	   data table alone (security_invoker; DISTINCT over that one table, no
 *	   join; customer_id is the table's text key; a WHERE clause of built-in,
 *	   non-volatile functions and operators over that table's columns, no
 *	   subquery or parameter) and that table is the one whose row was read
 *	   here: the customer is a member when the row exists and the WHERE
 *	   clause, compiled once per backend (forgotten with the map), holds on
 *	   it.  The caller's SELECT right on the view is checked as the executor
 *	   checks it; the table's rights and row level security were checked by
 *	   the row's read (every column).  Anything else runs the SQL.
 *	7. Empty tables: a history partition or the suppressions table (a heap)
 *	   whose size, read under its lock after the snapshot was taken, is no
 *	   page is not scanned, and its index is neither locked nor read.  A row
 *	   the snapshot sees was committed before the snapshot, into a page the
 *	   table had been extended by on disk before that; a page goes only by
 *	   VACUUM's truncation, which needs an AccessExclusiveLock (held off by
 *	   ours from before the size is read) and keeps every page with a row a
 *	   registered snapshot (ours) may see, or by TRUNCATE (AccessExclusiveLock,
 *	   a new empty file, which the SQL would read as well once it has its
 *	   lock).  So the table holds no row the SQL would return.
 */
#include "postgres.h"

#include "config/config.h"	/* first: util/json.h before utils/builtins.h */

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_database.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "optimizer/optimizer.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "parser/parse_coerce.h"
#include "parser/parse_func.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "rewrite/rewriteHandler.h"
#include "rewrite/rowsecurity.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/pg_locale.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "security/session.h"
#include "util/collation.h"
#include "util/spi.h"
#include "decision/state_read.h"

/* The columns the history SQL reads, in KHistoryRow's order after the keys. */
#define H_TYPE		0
#define H_OUTCOME	1
#define H_OFFER		2
#define H_CHANNEL	3
#define H_AT		4
#define H_NCOLS		5
static const char *const history_columns[H_NCOLS] = {
	"interaction_type", "outcome_type_key", "offer_id", "channel_id", "occurred_at"
};

#define S_SCOPE		0
#define S_SCOPE_ID	1
#define S_REASON	2
#define S_EXPIRES	3
#define S_NCOLS		4
static const char *const suppression_columns[S_NCOLS] = {"scope", "scope_id", "reason", "expires_at"};

/*
 * An index scanned by equality on (tenant_id, customer_id), its first two
 * columns in either order, and, for the history, a bound on the third column.
 */
typedef struct KIndexKeys
{
	Oid			index;
	bool		customer_first; /* its first two columns are (customer_id, tenant_id) */
	FmgrInfo	eq[2];			/* = of the index's operator family on its first two columns */
	Oid			coll[3];		/* the index columns' collations */
	FmgrInfo	ge;				/* >= on the third column (history only) */
	TransactionId checkxmin;	/* indcheckxmin: its pg_index xmin (older snapshots may miss rows), else invalid */
} KIndexKeys;

/* One leaf partition of the history. */
typedef struct KPart
{
	Oid			rel;
	KIndexKeys	keys;
	AttrNumber	att[H_NCOLS];
	Oid			type_coll;		/* interaction_type's collation */
	bool		bounded;		/* has an upper bound (not the default partition, nor MAXVALUE) */
	Datum		upper;			/* exclusive upper bound of occurred_at */
} KPart;

/* A table read here: whether it may be, and what its rights and policy checks need. */
typedef struct KTable
{
	bool		direct;			/* read here; else by the SQL */
	Oid			rel;
	RangeTblEntry *rte;			/* for ExecCheckRTPerms: SELECT on the columns the SQL names */
	bool		tenant_policy;	/* its policies are exactly kaireon's tenant_isolation */
} KTable;

/* The per-backend map of the relations (protocol step 1). */
typedef struct KStateMap
{
	bool		valid;
	MemoryContext mcxt;
	KTable		history;
	int			nparts;
	KPart	   *parts;
	FmgrInfo	partcmp;		/* the partition key's comparison (its support function) */
	Oid			partcoll;
	KTable		supp;
	KIndexKeys	supp_keys;
	AttrNumber	supp_att[S_NCOLS];
	int			ncustomer_tables;
	struct KCustomerTable *customer_tables;	/* the customer data tables read so far */
	int			nsegment_views;
	struct KSegmentView *segment_views;	/* the segment views asked about so far */
} KStateMap;

/* A segment view (protocol step 6): whether it is answered here, and how. */
typedef struct KSegmentView
{
	Oid			view;
	Oid			table;			/* its one data table */
	bool		direct;
	RangeTblEntry *rte;			/* SELECT on the view's customer_id, for ExecCheckRTPerms */
	ExprState  *qual;			/* its WHERE clause over the table's row (NULL: none) */
} KSegmentView;

/*
 * A tenant's customer data table (a published customer schema), read by its
 * primary key (tenant_id, key): the SQL is "SELECT t.* ... WHERE t.tenant_id
 * = $2 AND t.key = $1::keytype" (config/compile.c).
 */
typedef struct KCustomerTable
{
	KTable		table;
	KIndexKeys	keys;
	Oid			key_input;		/* the key type's input function: the cast from text is by I/O */
	Oid			key_ioparam;
	bool		key_is_text;	/* no cast at all */
} KCustomerTable;

static KStateMap map;

/*
 * Relcache invalidation (through the configuration cache's callback,
 * kaireon_relcache_listener: no slot of our own): forget the map when any
 * relation in it (or every relation) changes.
 */
static void
state_map_invalidate(Oid relid)
{
	if (!map.valid)
		return;
	if (relid == InvalidOid || relid == map.history.rel || relid == map.supp.rel ||
		relid == map.supp_keys.index)
	{
		map.valid = false;
		return;
	}
	for (int i = 0; i < map.nparts; i++)
		if (relid == map.parts[i].rel || relid == map.parts[i].keys.index)
		{
			map.valid = false;
			return;
		}
	for (int i = 0; i < map.ncustomer_tables; i++)
		if (relid == map.customer_tables[i].table.rel || relid == map.customer_tables[i].keys.index)
		{
			map.valid = false;
			return;
		}
	for (int i = 0; i < map.nsegment_views; i++)
		if (relid == map.segment_views[i].view || relid == map.segment_views[i].table)
		{
			map.valid = false;
			return;
		}
}

/*
 * One more entry of an array of the map (*arr of *n entries of size bytes,
 * grown by 8 in the map's context), zeroed; *n counts it from here, so the
 * invalidation callback watches what the caller puts in it.
 */
static void *
map_entry(void **arr, int *n, Size size)
{
	char	   *e;

	if (*arr == NULL)
		*arr = MemoryContextAllocZero(map.mcxt, size * 8);
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
	fmgr_info_cxt(get_opcode(op), finfo, map.mcxt);
	return true;
}

/*
 * The valid, non-partial B-tree index of rel whose first key columns are
 * exactly the named columns of the given types (no expressions), with
 * swapped the first two exchanged, the third (the history's time)
 * descending; fills keys.
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

			ok = ix->indkey.values[at] == atts[c] && index->rd_opcintype[at] == types[c];
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
static bool
find_index(Relation rel, const char *const *names, const Oid *types, int ncols, KIndexKeys *keys)
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
static void
table_entry(KTable *t, Relation rel, const char *const *names, int ncols)
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

	if (key->strategy != PARTITION_STRATEGY_RANGE || key->partnatts != 1 ||
		key->partattrs[0] != get_attnum(RelationGetRelid(parent), "occurred_at") ||
		key->parttypid[0] != TIMESTAMPTZOID)
		return false;
	fmgr_info_copy(&map.partcmp, &key->partsupfunc[0], map.mcxt);
	map.partcoll = key->partcollation[0];
	map.parts = MemoryContextAllocZero(map.mcxt, sizeof(KPart) * Max(pd->nparts, 1));
	for (int i = 0; i < pd->nparts; i++)
	{
		KPart	   *p = &map.parts[map.nparts];
		Relation	rel;
		bool		ok;

		if (!pd->is_leaf[i])
			return false;
		p->rel = pd->oids[i];
		rel = table_open(p->rel, AccessShareLock);
		map.nparts++;			/* the invalidation callback watches it from here */
		ok = rel->rd_rel->relkind == RELKIND_RELATION &&
			find_index(rel, keycols, keytypes, 3, &p->keys);
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
static void
build_map(void)
{
	Oid			nsp = get_namespace_oid("kaireon", false);
	Oid			history = get_relname_relid("interaction_history", nsp);
	Oid			supp = get_relname_relid("suppressions", nsp);
	bool		citus = kspi_citus_installed();
	const char *suppcols[2] = {"tenant_id", "customer_id"};
	Oid			supptypes[2] = {TEXTOID, TEXTOID};

	kaireon_relcache_listener = state_map_invalidate;
	if (map.mcxt == NULL)
		map.mcxt = AllocSetContextCreate(TopMemoryContext, "kaireon state read map", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(map.mcxt);
	memset(&map.history, 0, sizeof(map.history));
	memset(&map.supp, 0, sizeof(map.supp));
	memset(&map.supp_keys, 0, sizeof(map.supp_keys));
	map.nparts = 0;
	map.parts = NULL;
	map.ncustomer_tables = 0;
	map.customer_tables = NULL;
	map.nsegment_views = 0;
	map.segment_views = NULL;
	map.history.rel = history;
	map.supp.rel = supp;
	map.valid = true;			/* from here, an invalidation of what is read below clears it */

	if (!citus && OidIsValid(history))
	{
		Relation	parent = table_open(history, AccessShareLock);

		if (parent->rd_rel->relkind == RELKIND_PARTITIONED_TABLE && map_history(parent))
		{
			MemoryContext old = MemoryContextSwitchTo(map.mcxt);

			table_entry(&map.history, parent, history_columns, H_NCOLS);
			MemoryContextSwitchTo(old);
			map.history.direct = true;
		}
		table_close(parent, AccessShareLock);
	}
	if (!citus && OidIsValid(supp))
	{
		Relation	rel = table_open(supp, AccessShareLock);
		bool		ok = rel->rd_rel->relkind == RELKIND_RELATION &&
			find_index(rel, suppcols, supptypes, 2, &map.supp_keys);

		for (int c = 0; ok && c < S_NCOLS; c++)
			ok = (map.supp_att[c] = get_attnum(supp, suppression_columns[c])) > 0;
		if (ok)
		{
			MemoryContext old = MemoryContextSwitchTo(map.mcxt);

			table_entry(&map.supp, rel, suppression_columns, S_NCOLS);
			MemoryContextSwitchTo(old);
			map.supp.direct = true;
		}
		table_close(rel, AccessShareLock);
	}
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

		if (!map.valid)
			build_map();
		t = history ? &map.history : &map.supp;
		if (!t->direct)
			return NULL;
		/* takes in pending invalidations: a changed map is rebuilt once more */
		LockRelationOid(t->rel, AccessShareLock);
		if (map.valid)
			return t;
	}
	return NULL;
}

/*
 * Which of the table's rows the SQL would show the caller (protocol step 3):
 * -1 run the SQL (rights refused, or policies other than kaireon's), 0 none
 * (row level security hides the tenant), 1 all the tenant's rows.
 */
static int
visible_rows(KTable *t, const char *tenant_id)
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
			return current != NULL && strcmp(current, tenant_id) == 0 ? 1 : 0;
	}
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
static bool
index_usable(const KIndexKeys *k)
{
	return !TransactionIdIsValid(k->checkxmin) || TransactionIdPrecedes(k->checkxmin, TransactionXmin);
}

/*
 * Key an index scan on (tenant_id, customer_id), in the index's column order,
 * and, with since, the third column >= since.
 */
static int
scan_keys(ScanKey keys, const KIndexKeys *k, Datum tenant, Datum customer, const Datum *since)
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
 * then its index need not be opened, locked or descended.
 */
static bool
no_rows(Relation rel)
{
	return rel->rd_rel->relam == HEAP_TABLE_AM_OID && RelationGetNumberOfBlocks(rel) == 0;
}

/* Read one partition's rows of the customer since the given time, newest first, at most limit. */
static void
read_partition(const KPart *p, Snapshot snap, Datum tenant, Datum customer, Datum since, Datum control,
			   int limit, KHistoryRow **rows, int *nrows, int *cap)
{
	Relation	rel = table_open(p->rel, AccessShareLock);
	Relation	index;
	ScanKeyData keys[3];
	int			nkeys;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			taken = 0;

	if (no_rows(rel))
	{
		table_close(rel, NoLock);
		return;
	}
	index = index_open(p->keys.index, AccessShareLock);
	nkeys = scan_keys(keys, &p->keys, tenant, customer, &since);
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
	KTable	   *t = lock_table(true);
	int			visible;
	Datum		tenant,
				customer,
				control;
	int			cap = 16;
	int			nparts;
	KPart	   *parts;

	if (t == NULL || (visible = visible_rows(t, tenant_id)) < 0)
		return false;
	for (int i = 0; i < map.nparts; i++)
		if (!index_usable(&map.parts[i].keys))
			return false;
	*rows = palloc(sizeof(KHistoryRow) * cap);
	*nrows = 0;
	if (visible == 0)
		return true;
	tenant = CStringGetTextDatum(tenant_id);
	customer = CStringGetTextDatum(customer_id);
	control = CStringGetTextDatum("control");
	/* the partitions as mapped now: an invalidation while reading leaves these arrays in place */
	nparts = map.nparts;
	parts = map.parts;

	/* as SPI runs a statement that is not read-only: a new snapshot that sees this transaction's writes */
	PushActiveSnapshot(GetTransactionSnapshot());
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	for (int i = 0; i < nparts; i++)
	{
		const KPart *p = &parts[i];

		/* a partition whose (exclusive) upper bound is at or before since holds no row of the window */
		if (p->bounded &&
			DatumGetInt32(FunctionCall2Coll((FmgrInfo *) &map.partcmp, map.partcoll, p->upper,
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

	if (t == NULL || (visible = visible_rows(t, tenant_id)) < 0 || !index_usable(&map.supp_keys))
		return false;
	*rows = palloc(sizeof(KSuppressionRow) * cap);
	*nrows = 0;
	if (visible == 0)
		return true;
	rel = table_open(t->rel, AccessShareLock);
	if (no_rows(rel))
	{
		table_close(rel, NoLock);
		return true;
	}
	index = index_open(map.supp_keys.index, AccessShareLock);
	scan_keys(keys, &map.supp_keys, CStringGetTextDatum(tenant_id), CStringGetTextDatum(customer_id), NULL);
	/* a read-only statement: the caller's active snapshot */
	scan = index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
	slot = table_slot_create(rel, NULL);
	index_rescan(scan, keys, 2, NULL, 0);
	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		expires = slot_getattr(slot, map.supp_att[S_EXPIRES], &isnull);
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
		r->scope = slot_text(slot, map.supp_att[S_SCOPE]);
		r->scope_id = slot_text(slot, map.supp_att[S_SCOPE_ID]);
		r->reason = slot_text(slot, map.supp_att[S_REASON]);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}

/*
 * Map a customer data table (locked): its primary key (tenant_id, key) and
 * how the key's text becomes a key value.  NULL when the SQL must read it:
 * Citus, a key whose cast from text is not the plain input function (a type
 * modifier, a cast function), or no such primary key.
 */
static KCustomerTable *
map_customer_table(Relation rel)
{
	KCustomerTable *ct;
	Oid			relid = RelationGetRelid(rel);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	index;
	AttrNumber	keyatt;
	Form_pg_attribute att;
	Oid			castfunc;
	CoercionPathType path;
	const char *names[2];
	Oid			types[2];
	bool		ok;
	MemoryContext old;

	for (int i = 0; i < map.ncustomer_tables; i++)
		if (map.customer_tables[i].table.rel == relid)
			return map.customer_tables[i].table.direct ? &map.customer_tables[i] : NULL;
	ct = map_entry((void **) &map.customer_tables, &map.ncustomer_tables, sizeof(KCustomerTable));
	ct->table.rel = relid;

	if (kspi_citus_installed() || rel->rd_rel->relkind != RELKIND_RELATION || !OidIsValid(pk))
		return NULL;
	index = index_open(pk, AccessShareLock);
	ok = index->rd_index->indnkeyatts == 2 && index->rd_index->indkey.values[1] != 0;
	keyatt = ok ? index->rd_index->indkey.values[1] : InvalidAttrNumber;
	index_close(index, AccessShareLock);
	if (!ok)
		return NULL;
	att = TupleDescAttr(RelationGetDescr(rel), keyatt - 1);
	if (att->atttypmod >= 0)
		return NULL;
	path = att->atttypid == TEXTOID ? COERCION_PATH_RELABELTYPE :
		find_coercion_pathway(att->atttypid, TEXTOID, COERCION_EXPLICIT, &castfunc);
	if (path == COERCION_PATH_COERCEVIAIO)
		getTypeInputInfo(att->atttypid, &ct->key_input, &ct->key_ioparam);
	else if (att->atttypid != TEXTOID)
		return NULL;
	ct->key_is_text = att->atttypid == TEXTOID;
	names[0] = "tenant_id";
	names[1] = NameStr(att->attname);
	types[0] = TEXTOID;
	types[1] = att->atttypid;
	if (!find_index(rel, names, types, 2, &ct->keys) || ct->keys.index != pk)
		return NULL;
	old = MemoryContextSwitchTo(map.mcxt);
	table_entry(&ct->table, rel, NULL, 0);
	MemoryContextSwitchTo(old);
	ct->table.direct = true;
	return ct;
}

/* The qualified names parsed so far (qualified_rangevar), in their own context: a parse depends on the text alone. */
#define MAX_PARSED_NAMES 64
static struct
{
	MemoryContext mcxt;
	int			n;
	const char *text[MAX_PARSED_NAMES];
	RangeVar   *rv[MAX_PARSED_NAMES];
}			parsed_names;

/*
 * A qualified table or view name (as config/compile.c quotes it) as a RangeVar:
 * parsed once per backend (stringToQualifiedNameList is a function of the
 * text alone, nothing a catalog change can make stale) and looked up by the
 * caller on every read, as the query's parse would.
 */
static const RangeVar *
qualified_rangevar(const char *qualified)
{
	MemoryContext old;
	RangeVar   *rv;

	for (int i = 0; i < parsed_names.n; i++)
		if (strcmp(parsed_names.text[i], qualified) == 0)
			return parsed_names.rv[i];
	if (parsed_names.n == MAX_PARSED_NAMES)
		return makeRangeVarFromNameList(stringToQualifiedNameList(qualified));
	if (parsed_names.mcxt == NULL)
		parsed_names.mcxt = AllocSetContextCreate(TopMemoryContext, "kaireon parsed names", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(parsed_names.mcxt);
	rv = makeRangeVarFromNameList(stringToQualifiedNameList(qualified));
	parsed_names.text[parsed_names.n] = pstrdup(qualified);
	parsed_names.rv[parsed_names.n++] = rv;
	MemoryContextSwitchTo(old);
	return rv;
}

/*
 * The customer's row of a customer data table (qualified_table, as config/
 * compile.c quotes it), copied into the current memory context with its
 * descriptor, or NULL in *row when there is none: what the customer schema's
 * lookup query returns.  False when that query must run instead.  A key that
 * is no value of the key's type fails as the cast in the query fails.
 */
bool
kaireon_read_customer_row(const char *qualified_table, const char *tenant_id, const char *customer_id,
						  HeapTuple *row, TupleDesc *desc, Oid *table)
{
	const RangeVar *rv = qualified_rangevar(qualified_table);
	Oid			relid = RangeVarGetRelid(rv, AccessShareLock, true);
	KCustomerTable *ct;
	Relation	rel;
	Relation	index;
	ScanKeyData keys[2];
	IndexScanDesc scan;
	TupleTableSlot *slot;
	Datum		key;
	int			visible;

	if (!OidIsValid(relid) || !ActiveSnapshotSet())
		return false;
	if (!map.valid)
		build_map();
	rel = table_open(relid, NoLock);
	ct = map_customer_table(rel);
	if (ct == NULL || !map.valid || (visible = visible_rows(&ct->table, tenant_id)) < 0 ||
		!index_usable(&ct->keys))
	{
		table_close(rel, NoLock);
		return false;
	}
	/* the cast of $1 to the key's type comes before any row is read, as in the query */
	key = ct->key_is_text ? CStringGetTextDatum(customer_id) :
		OidInputFunctionCall(ct->key_input, (char *) customer_id, ct->key_ioparam, -1);
	*row = NULL;
	*table = relid;
	*desc = CreateTupleDescCopy(RelationGetDescr(rel));
	if (visible == 0)
	{
		table_close(rel, NoLock);
		return true;
	}
	index = index_open(ct->keys.index, AccessShareLock);
	scan_keys(keys, &ct->keys, CStringGetTextDatum(tenant_id), key, NULL);
	/* a read-only statement: the caller's active snapshot */
	scan = index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
	slot = table_slot_create(rel, NULL);
	index_rescan(scan, keys, 2, NULL, 0);
	if (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		/* every column, those added since the row was written with their default (a copy of the stored tuple lacks them) */
		slot_getallattrs(slot);
		*row = heap_form_tuple(*desc, slot->tts_values, slot->tts_isnull);
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}

/* Walker: does the expression hold anything but built-in, non-volatile functions over table rti's columns? */
static bool
foreign_to_row(Node *node, void *rti)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		return v->varno != *(int *) rti || v->varlevelsup != 0 || v->varattno <= 0;
	}
	if (IsA(node, Param) || IsA(node, SubLink) || IsA(node, SubPlan) || IsA(node, Aggref) ||
		IsA(node, WindowFunc) || IsA(node, GroupingFunc) || IsA(node, NextValueExpr) ||
		IsA(node, CurrentOfExpr) || IsA(node, SetToDefault) || IsA(node, RangeTblRef))
		return true;
	return expression_tree_walker(node, foreign_to_row, rti);
}

/* check_functions_in_node callback: a function of the user's (its OID not built in). */
static bool
user_function(Oid func, void *context)
{
	return func >= FirstNormalObjectId;
}

/* Walker: does the expression call a function that is not built in? */
static bool
calls_user_function(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, user_function, context))
		return true;
	return expression_tree_walker(node, calls_user_function, context);
}

/*
 * Map a segment view (locked): answered here when it has the shape of
 * protocol step 6 over a customer data table of the map with a text key,
 * its WHERE clause compiled in the map's context.
 */
static KSegmentView *
map_segment_view(Relation view)
{
	Oid			relid = RelationGetRelid(view);
	KSegmentView *sv;
	MemoryContext old;
	Query	   *q;
	RangeTblRef *ref;
	RangeTblEntry *base;
	KCustomerTable *ct = NULL;
	Node	   *quals;
	int			rti;
	AttrNumber	customer_att = InvalidAttrNumber;

	for (int i = 0; i < map.nsegment_views; i++)
		if (map.segment_views[i].view == relid)
			return &map.segment_views[i];
	sv = map_entry((void **) &map.segment_views, &map.nsegment_views, sizeof(KSegmentView));
	sv->view = relid;
	old = MemoryContextSwitchTo(map.mcxt);

	if (view->rd_rel->relkind != RELKIND_VIEW || !RelationHasSecurityInvoker(view))
		goto done;
	q = copyObject(get_view_query(view));
	if (q->commandType != CMD_SELECT || q->setOperations != NULL || q->hasAggs || q->hasWindowFuncs ||
		q->hasTargetSRFs || q->hasSubLinks || q->hasRecursive || q->hasModifyingCTE || q->hasRowSecurity ||
		q->cteList != NIL || q->groupClause != NIL || q->groupingSets != NIL || q->havingQual != NULL ||
		q->sortClause != NIL || q->limitCount != NULL || q->limitOffset != NULL || q->rowMarks != NIL ||
		q->jointree == NULL || list_length(q->jointree->fromlist) != 1 ||
		!IsA(linitial(q->jointree->fromlist), RangeTblRef))
		goto done;
	ref = linitial(q->jointree->fromlist);
	rti = ref->rtindex;
	base = rt_fetch(rti, q->rtable);
	if (base->rtekind != RTE_RELATION || base->relkind != RELKIND_RELATION || base->tablesample != NULL)
		goto done;
	for (int i = 0; i < map.ncustomer_tables; i++)
		if (map.customer_tables[i].table.rel == base->relid && map.customer_tables[i].table.direct)
			ct = &map.customer_tables[i];
	if (ct == NULL || !ct->key_is_text)
		goto done;
	/* customer_id is the table's key itself (text: its ::text is no cast) */
	{
		ListCell   *lc;

		foreach(lc, q->targetList)
		{
			TargetEntry *tle = lfirst(lc);

			if (tle->resname != NULL && strcmp(tle->resname, "customer_id") == 0 && IsA(tle->expr, Var) &&
				((Var *) tle->expr)->varno == rti && ((Var *) tle->expr)->varlevelsup == 0)
				customer_att = ((Var *) tle->expr)->varattno;
		}
	}
	{
		Relation	index = index_open(ct->keys.index, AccessShareLock);
		bool		is_key = customer_att != InvalidAttrNumber &&
			index->rd_index->indkey.values[1] == customer_att;

		index_close(index, AccessShareLock);
		if (!is_key)
			goto done;
	}
	quals = q->jointree->quals;
	if (quals != NULL &&
		(foreign_to_row(quals, &rti) || contain_volatile_functions(quals) || calls_user_function(quals, NULL)))
		goto done;
	sv->table = base->relid;
	sv->rte = makeNode(RangeTblEntry);
	sv->rte->rtekind = RTE_RELATION;
	sv->rte->relid = relid;
	sv->rte->relkind = RELKIND_VIEW;
	sv->rte->rellockmode = AccessShareLock;
	sv->rte->requiredPerms = ACL_SELECT;
	sv->rte->selectedCols = bms_make_singleton(get_attnum(relid, "customer_id") - FirstLowInvalidHeapAttributeNumber);
	if (quals != NULL)
		sv->qual = ExecInitQual(make_ands_implicit(expression_planner((Expr *) quals)), NULL);
	sv->direct = true;
done:
	MemoryContextSwitchTo(old);
	return sv;
}

/*
 * Whether the customer of row (of table, as kaireon_read_customer_row read
 * it; NULL: no row) is in the segment view; -1 when the view's SQL must
 * answer (protocol step 6).
 */
int
kaireon_segment_member(const char *view, Oid table, HeapTuple row, TupleDesc desc)
{
	const RangeVar *rv = qualified_rangevar(view);
	Oid			relid = RangeVarGetRelid(rv, AccessShareLock, true);	/* as the query locks it */
	Relation	rel;
	KSegmentView *sv;
	bool		member;

	if (!OidIsValid(relid))
		return -1;
	if (!map.valid)
		build_map();
	rel = relation_open(relid, NoLock);
	sv = map_segment_view(rel);
	relation_close(rel, NoLock);
	if (!map.valid || !sv->direct || sv->table != table || !ExecCheckRTPerms(list_make1(sv->rte), false))
		return -1;
	if (row == NULL)
		return 0;
	member = true;
	if (sv->qual != NULL)
	{
		ExprContext *econtext = CreateStandaloneExprContext();
		TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);

		ExecStoreHeapTuple(row, slot, false);
		econtext->ecxt_scantuple = slot;
		member = ExecQual(sv->qual, econtext);
		ExecDropSingleTupleTableSlot(slot);
		FreeExprContext(econtext, true);
	}
	return member ? 1 : 0;
}
