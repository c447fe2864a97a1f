/*
 * decision/state_row.c
 *	  The customer's row of a customer data table read straight through its
 *	  primary key, and segment membership answered from that row, instead of
 *	  the customer schema's lookup query and the segment views' SQL
 *	  (decision/customer.c asks here first and runs the SQL when this file
 *	  says it cannot answer).
 *
 * Protocol: that of decision/state_read.c, whose map of the relations read
 * directly (kaireon_state_map: its validity, context and invalidation) also
 * holds the data tables and segment views read here.  The data row (steps
 * 2, 3, 4 and 5 there): the table locked by the name's lookup as the query's
 * parse locks it, its rights and row level security checked as for the
 * history, read with the caller's active snapshot as a read-only statement,
 * the key cast as the query casts it.  Segment membership is step 6 there.
 */
#include "postgres.h"

#include "config/config.h"	/* first: util/json.h before utils/builtins.h */

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_func.h"
#include "rewrite/rewriteHandler.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/snapmgr.h"

#include "util/inval.h"
#include "util/spi.h"
#include "decision/state_read.h"
#include "decision/state_row.h"

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

	for (int i = 0; i < kaireon_state_map.ncustomer_tables; i++)
		if (kaireon_state_map.customer_tables[i].table.rel == relid)
			return kaireon_state_map.customer_tables[i].table.direct ? &kaireon_state_map.customer_tables[i] : NULL;
	ct = kaireon_state_map_entry((void **) &kaireon_state_map.customer_tables, &kaireon_state_map.ncustomer_tables, sizeof(KCustomerTable));
	ct->table.rel = relid;

	if (kspi_citus_installed() || !kaireon_state_plain_table(rel) || !OidIsValid(pk))
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
	if (!kaireon_state_find_index(rel, names, types, 2, &ct->keys) || ct->keys.index != pk)
		return NULL;
	old = MemoryContextSwitchTo(kaireon_state_map.mcxt);
	kaireon_state_table_entry(&ct->table, rel, NULL, 0);
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
	if (!kaireon_state_map.valid)
		kaireon_state_build_map();
	rel = table_open(relid, NoLock);
	ct = map_customer_table(rel);
	if (ct == NULL || !kaireon_state_map.valid || (visible = kaireon_state_visible_rows(&ct->table, tenant_id)) < 0 ||
		!kaireon_state_index_usable(&ct->keys))
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
	kaireon_state_scan_keys(keys, &ct->keys, CStringGetTextDatum(tenant_id), key, NULL);
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
 * its WHERE clause planned in the map's context (compiled per user:
 * user_qual); NULL, and not kept, while its table is not in the map yet.
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

	for (int i = 0; i < kaireon_state_map.nsegment_views; i++)
		if (kaireon_state_map.segment_views[i].view == relid)
			return &kaireon_state_map.segment_views[i];
	sv = kaireon_state_map_entry((void **) &kaireon_state_map.segment_views, &kaireon_state_map.nsegment_views, sizeof(KSegmentView));
	sv->view = relid;
	old = MemoryContextSwitchTo(kaireon_state_map.mcxt);

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
	for (int i = 0; i < kaireon_state_map.ncustomer_tables; i++)
		if (kaireon_state_map.customer_tables[i].table.rel == base->relid)
			ct = &kaireon_state_map.customer_tables[i];
	if (ct == NULL)
	{
		/* its table not read yet since the map was made: asked again next time, not kept */
		MemoryContextSwitchTo(old);
		kaireon_state_map.nsegment_views--;
		return NULL;
	}
	if (!ct->table.direct || !ct->key_is_text)
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
		sv->where = make_ands_implicit(expression_planner((Expr *) quals));
	sv->direct = true;
done:
	MemoryContextSwitchTo(old);
	return sv;
}

/*
 * The view's WHERE clause compiled for the current user (ExecInitQual
 * checks the user's EXECUTE right on each function, raising as the view's
 * SQL would), kept per user until a function, a role's attributes or a
 * role membership change (kaireon_rights_changes(), util/inval.c); NULL
 * when KSEGMENT_QUAL_USERS others have theirs (the SQL answers).
 */
static ExprState *
user_qual(KSegmentView *sv)
{
	Oid			user = GetUserId();
	MemoryContext old;
	ExprState  *qual;

	if (sv->quals_made != kaireon_rights_changes())
	{
		/* a function, a role or a role membership changed since they were made: made again, as needed */
		if (sv->qual_cxt != NULL)
			MemoryContextReset(sv->qual_cxt);
		sv->nquals = 0;
		sv->quals_made = kaireon_rights_changes();
	}
	for (int i = 0; i < sv->nquals; i++)
		if (sv->qual_user[i] == user)
			return sv->qual[i];
	if (sv->nquals == KSEGMENT_QUAL_USERS)
		return NULL;
	if (sv->qual_cxt == NULL)
		sv->qual_cxt = AllocSetContextCreate(kaireon_state_map.mcxt, "kaireon segment view clauses",
											 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(sv->qual_cxt);
	qual = ExecInitQual(sv->where, NULL);
	MemoryContextSwitchTo(old);
	sv->qual_user[sv->nquals] = user;
	sv->qual[sv->nquals++] = qual;
	return qual;
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
	if (!kaireon_state_map.valid)
		kaireon_state_build_map();
	rel = relation_open(relid, NoLock);
	sv = map_segment_view(rel);
	relation_close(rel, NoLock);
	if (!kaireon_state_map.valid || sv == NULL || !sv->direct || sv->table != table ||
		!ExecCheckRTPerms(list_make1(sv->rte), false))
		return -1;
	if (row == NULL)
		return 0;
	member = true;
	if (sv->where != NIL)
	{
		ExprState  *qual = user_qual(sv);
		ExprContext *econtext;
		TupleTableSlot *slot;

		if (qual == NULL)
			return -1;
		econtext = CreateStandaloneExprContext();
		slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
		ExecStoreHeapTuple(row, slot, false);
		econtext->ecxt_scantuple = slot;
		member = ExecQual(qual, econtext);
		ExecDropSingleTupleTableSlot(slot);
		FreeExprContext(econtext, true);
	}
	return member ? 1 : 0;
}
