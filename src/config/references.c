/*
 * config/references.c
 *	  References between tenant tables that foreign keys do not serve alone:
 *	  optional references (kaireon.on_delete_set_null(), the AFTER DELETE row
 *	  trigger that stands in for ON DELETE SET NULL (col)) and checked
 *	  references (the references of interaction_history, checked by triggers
 *	  instead of foreign keys).
 *
 * An optional reference is a foreign key (tenant_id, x_id) -> parent
 * (tenant_id, id) declared ON DELETE NO ACTION; 99_finalize.sql reads them
 * from the catalog and gives each referenced table one trigger
 * "On_delete_set_null" whose arguments are the references, three per key:
 * the referencing table, its column, the referenced column.  Deleting a parent
 * row then runs, per key,
 *
 *	  UPDATE kaireon.<child> SET <col> = NULL WHERE tenant_id = $1 AND <col> = $2
 *
 * (its = written OPERATOR(pg_catalog.=), as in every statement of this file
 * that runs as a table's owner: an = of a schema ahead of pg_catalog in the
 * caller's search_path would run with the owner's rights), with the deleted
 * row's tenant and id, before the key's own NO ACTION check
 * (AFTER triggers fire in name order, and the capital O sorts before
 * PostgreSQL's RI_ConstraintTrigger_*), so the check finds nothing left
 * (docs/schema.md, "Optional references").  Why not SET NULL (col): Citus
 * refuses SET NULL and SET DEFAULT actions on keys between distributed tables,
 * and the explicit tenant filter keeps the statement on the tenant's own
 * co-located shard.  Like PostgreSQL's own key actions, the statement runs as
 * the owner of the referencing table (a role may delete a parent without
 * being allowed to update its children), it fires the children's row
 * triggers (updated_at, audit capture) as a key action does, and under
 * REPEATABLE READ or SERIALIZABLE it uses the key action's snapshots.
 *
 * A checked reference (kaireon_internal._checked_references(), docs/schema.md
 * "Checked references") has no foreign key: a foreign key checks each row with
 * an SPI query that takes a FOR KEY SHARE lock on the referenced row, which on
 * the hot tenant and offer rows turns into MultiXacts under concurrency.  Its
 * protocol instead, per tenant, with a lock of the lock manager (an advisory
 * lock tag of kaireon's own: no tuple lock, no MultiXact, no WAL):
 *
 *	  - writing a row (BEFORE INSERT OR UPDATE OF the columns, row trigger
 *		"Check_references" of the child, cloned to every partition) takes the
 *		tenant's reference lock in share mode, then finds every referenced row
 *		by its primary key with the latest snapshot (once per value and
 *		statement), or fails with 23503;
 *	  - deleting a referenced row, or changing its key (AFTER DELETE OR UPDATE
 *		row trigger "Checked_references" of the parent), takes the lock in
 *		exclusive mode before it sets the references to NULL, deletes them
 *		(the tenant's rows) or, for a key change, looks for them (23503).
 *
 * The lock is held to the end of the transaction, so a writer in flight is
 * either seen by the delete (it committed before the delete got the lock, and
 * the action's snapshot, taken after, sees its rows) or sees the delete (it
 * got the lock after the delete committed, and the latest snapshot shows the
 * row gone).  Under REPEATABLE READ the action uses the key action's
 * snapshots, so a referencing row the transaction cannot see is a
 * serialization failure, not an orphan.
 *
 * What a "Check_references" trigger's arguments name (its columns, the
 * referenced tables and their primary keys) is resolved once per backend and
 * trigger and forgotten on a relcache invalidation of any of those relations
 * (RefTrigger below); a primary key is resolved again under the referenced
 * table's lock whenever an invalidation came in since.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_collation.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "config/references.h"
#include "security/owner.h"
#include "security/session.h"
#include "util/collation.h"
#include "util/inval.h"
#include "util/spi.h"


PG_FUNCTION_INFO_V1(kaireon_on_delete_set_null);
PG_FUNCTION_INFO_V1(kaireon_check_references);
PG_FUNCTION_INFO_V1(kaireon_checked_reference_changed);

/* The fourth field of kaireon's advisory lock tags (PostgreSQL's advisory functions use 1 and 2). */
#define REFERENCE_LOCK_TAG 0x4B52
/* The number of reference locks the tenants share (lock_tenant_references). */
#define REFERENCE_LOCK_BUCKETS 256

/* One prepared statement per (trigger, key), kept for the backend. */
typedef struct ActionPlanKey
{
	Oid			tgoid;
	int			key;
} ActionPlanKey;

typedef struct ActionPlanEntry
{
	ActionPlanKey k;
	SPIPlanPtr	plan;
} ActionPlanEntry;

static HTAB *action_plans = NULL;

/*
 * The kept statement number `key` of trigger tgoid, prepared on first use from
 * sql (a format whose %s are schema, child, column and column again, each
 * quoted), with nargs arguments.
 */
static SPIPlanPtr
action_plan(Oid tgoid, int key, const char *sql, const char *schema, const char *child,
			const char *column, int nargs, Oid *argtypes)
{
	ActionPlanKey k;
	ActionPlanEntry *entry;
	bool		found;
	SPIPlanPtr	plan;

	if (action_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ActionPlanKey);
		ctl.entrysize = sizeof(ActionPlanEntry);
		ctl.hcxt = TopMemoryContext;
		action_plans = hash_create("kaireon reference action plans", 32, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&k, 0, sizeof(k));
	k.tgoid = tgoid;
	k.key = key;
	entry = hash_search(action_plans, &k, HASH_FIND, &found);
	if (found)
		return entry->plan;
	plan = kspi_prepare_keep(psprintf(sql, quote_identifier(schema), quote_identifier(child),
									  quote_identifier(column), quote_identifier(column)),
							 nargs, argtypes);
	entry = hash_search(action_plans, &k, HASH_ENTER, &found);
	entry->plan = plan;
	return plan;
}

/*
 * Run a key action (an UPDATE or DELETE of the referencing rows) as the owner
 * of the referencing table, like PostgreSQL's key actions; and like them
 * (ri_PerformCheck), under REPEATABLE READ or SERIALIZABLE the rows are found
 * with the latest snapshot and checked against the transaction's: a
 * referencing row committed after the transaction's snapshot is a
 * serialization failure (40001, retry), not a row left pointing to nothing.
 */
/*
 * Act as the owner of relation relid, with search_path pg_catalog, pg_temp
 * (so that no function or operator of a schema the caller put in its path,
 * in these statements or the triggers they fire, runs with the owner's
 * rights); returns the GUC nest level end_as_owner() takes.
 */
static int
act_as_owner(Oid relid, Oid *save_userid, int *save_sec)
{
	int			nest;

	kaireon_switch_to_owner(relid, save_userid, save_sec);
	nest = kspi_pin_search_path();
	return nest;
}

/* Back to the caller's user and search_path after act_as_owner(). */
static void
end_as_owner(int nest, Oid save_userid, int save_sec)
{
	kspi_unpin_search_path(nest);
	SetUserIdAndSecContext(save_userid, save_sec);
}

/* Run a key action's prepared statement on the child table as its owner (under serializable, against the latest snapshot); expected: its SPI result. */
static void
run_key_action(SPIPlanPtr plan, Datum *values, Oid childid, int expected, const char *child)
{
	Oid			save_userid;
	int			save_sec;
	Snapshot	snapshot = InvalidSnapshot;
	Snapshot	crosscheck = InvalidSnapshot;
	int			nest;
	int			rc;

	if (IsolationUsesXactSnapshot())
	{
		CommandCounterIncrement();
		snapshot = GetLatestSnapshot();
		crosscheck = GetTransactionSnapshot();
	}
	nest = act_as_owner(childid, &save_userid, &save_sec);
	rc = kspi_execute_snapshot(plan, values, NULL, snapshot, crosscheck, false, 0);
	end_as_owner(nest, save_userid, save_sec);
	if (rc != expected)
		elog(ERROR, "kaireon: key action on \"%s\" failed: %s", child, SPI_result_code_string(rc));
}

/* An operation's bit in reference_trigger's ops (op: TRIGGER_EVENT_INSERT, _DELETE or _UPDATE). */
#define FIRED_BY(op) (1 << (op))

/*
 * The trigger preamble of this file's triggers: the call's trigger data,
 * after checking that it was fired as a row trigger at timing
 * (TRIGGER_EVENT_BEFORE or TRIGGER_EVENT_AFTER) by one of the operations ops
 * (FIRED_BY bits), and that its arguments come in groups of group, at least
 * one (what: the groups, for the message).  name: the function, for the
 * messages.
 */
static TriggerData *
reference_trigger(FunctionCallInfo fcinfo, const char *name, TriggerEvent timing, int ops, int group,
				  const char *what)
{
	static const char *const op_names[] = {"INSERT", "DELETE", "UPDATE"};
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || (td->tg_event & TRIGGER_EVENT_TIMINGMASK) != timing ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !(ops & FIRED_BY(td->tg_event & TRIGGER_EVENT_OPMASK)))
	{
		StringInfoData fired;

		initStringInfo(&fired);
		for (int op = TRIGGER_EVENT_INSERT; op <= TRIGGER_EVENT_UPDATE; op++)
			if (ops & FIRED_BY(op))
				appendStringInfo(&fired, "%s%s", fired.len > 0 ? " OR " : "", op_names[op]);
		elog(ERROR, "%s must be %s %s row trigger", name, timing == TRIGGER_EVENT_BEFORE ? "a BEFORE" : "an AFTER",
			 fired.data);
	}
	if (td->tg_trigger->tgnargs == 0 || td->tg_trigger->tgnargs % group != 0)
		elog(ERROR, "%s on table \"%s\" needs %s", name, RelationGetRelationName(td->tg_relation), what);
	return td;
}

/*
 * AFTER DELETE row trigger of a referenced table: sets each optional reference
 * to the deleted row (trigger arguments: child table, column, referenced
 * column, repeated) to NULL in the rows of the deleted row's tenant.
 */
Datum
kaireon_on_delete_set_null(PG_FUNCTION_ARGS)
{
	TriggerData *td = reference_trigger(fcinfo, "on_delete_set_null", TRIGGER_EVENT_AFTER,
										FIRED_BY(TRIGGER_EVENT_DELETE),
										3, "(table, column, referenced column) triples");
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	TupleDesc	desc;
	HeapTuple	old;
	const char *schema;
	Oid			nsp;
	int			tenant_attno;
	Datum		values[2];
	Oid			argtypes[2];
	bool		isnull;
	int			i;

	desc = RelationGetDescr(rel);
	old = td->tg_trigtuple;
	nsp = RelationGetNamespace(rel);
	schema = get_namespace_name(nsp);
	tenant_attno = SPI_fnumber(desc, "tenant_id");
	if (tenant_attno <= 0)
		elog(ERROR, "on_delete_set_null: table \"%s\" has no tenant_id column",
			 RelationGetRelationName(rel));
	values[0] = heap_getattr(old, tenant_attno, desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);	/* no tenant, so no tenant row refers to it */
	argtypes[0] = SPI_gettypeid(desc, tenant_attno);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	for (i = 0; i < tg->tgnargs; i += 3)
	{
		const char *child = tg->tgargs[i];
		const char *column = tg->tgargs[i + 1];
		int			attno = SPI_fnumber(desc, tg->tgargs[i + 2]);
		Oid			childid = get_relname_relid(child, nsp);

		if (attno <= 0 || !OidIsValid(childid))
			elog(ERROR, "on_delete_set_null on table \"%s\": no column \"%s\" or no table \"%s\"",
				 RelationGetRelationName(rel), tg->tgargs[i + 2], child);
		values[1] = heap_getattr(old, attno, desc, &isnull);
		if (isnull)
			continue;
		argtypes[1] = SPI_gettypeid(desc, attno);
		run_key_action(action_plan(tg->tgoid, i / 3,
								   "UPDATE %s.%s SET %s = NULL WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND %s OPERATOR(pg_catalog.=) $2",
								   schema, child, column, 2, argtypes),
					   values, childid, SPI_OK_UPDATE, child);
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}

/*
 * Take the tenant's reference lock (share: writing checked references;
 * exclusive: deleting or re-keying what they point to) for the rest of the
 * transaction.  The tag is one of REFERENCE_LOCK_BUCKETS, by a hash of the
 * tenant id: a statement writing rows of many tenants (a COPY of a restored
 * partition) holds at most that many locks, where one per tenant would fill
 * the shared lock table; tenants sharing a bucket only wait for each other
 * when one of them deletes what rows refer to.
 */
static void
lock_tenant_references(Datum tenant, LOCKMODE mode)
{
	text	   *t = DatumGetTextPP(tenant);
	uint64		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(t),
										VARSIZE_ANY_EXHDR(t), 0);
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, 0, (uint32) (h % REFERENCE_LOCK_BUCKETS), REFERENCE_LOCK_TAG);
	(void) LockAcquire(&tag, mode, false, false);
}

/*
 * The values a statement has found already (per backend; valid for one
 * command of one (sub)transaction, since a later command of the same
 * transaction may have deleted the row): parent, tenant, key.  A few fixed
 * slots, reused in turn, so that a long COPY allocates nothing; ids longer
 * than a slot are not remembered.
 */
#define FOUND_SLOTS 16
#define FOUND_ID_LEN 64
typedef struct FoundKey
{
	char		parent[NAMEDATALEN];
	char		tenant[FOUND_ID_LEN];
	char		key[FOUND_ID_LEN];	/* "": the tenant row itself */
	bool		has_key;
} FoundKey;

static FoundKey found[FOUND_SLOTS];
static int	nfound = 0;
static int	next_slot = 0;
static LocalTransactionId found_lxid = InvalidLocalTransactionId;
static SubTransactionId found_subxid = InvalidSubTransactionId;
static CommandId found_cid = InvalidCommandId;

/* Whether (parent, tenant, key) was found in this command already; forgets older commands. */
static bool
found_before(const char *parent, const char *tenant, const char *key)
{
	if (found_lxid != MyProc->lxid || found_subxid != GetCurrentSubTransactionId() ||
		found_cid != GetCurrentCommandId(false))
	{
		nfound = next_slot = 0;
		found_lxid = MyProc->lxid;
		found_subxid = GetCurrentSubTransactionId();
		found_cid = GetCurrentCommandId(false);
		return false;
	}
	for (int i = 0; i < nfound; i++)
		if (found[i].has_key == (key != NULL) && strcmp(found[i].parent, parent) == 0 &&
			strcmp(found[i].tenant, tenant) == 0 && (key == NULL || strcmp(found[i].key, key) == 0))
			return true;
	return false;
}

/* Remember that (parent, tenant, key) was found in this command. */
static void
remember_found(const char *parent, const char *tenant, const char *key)
{
	FoundKey   *f;

	if (strlen(parent) >= NAMEDATALEN || strlen(tenant) >= FOUND_ID_LEN ||
		(key != NULL && strlen(key) >= FOUND_ID_LEN))
		return;
	f = &found[next_slot];
	next_slot = (next_slot + 1) % FOUND_SLOTS;
	if (nfound < FOUND_SLOTS)
		nfound++;
	strcpy(f->parent, parent);
	strcpy(f->tenant, tenant);
	strcpy(f->key, key ? key : "");
	f->has_key = key != NULL;
}

/*
 * A Check_references trigger's arguments resolved, per backend and per
 * trigger (a partition's clone of the trigger is one of its own): the
 * referencing columns' numbers, at the first call, and each referenced table
 * with its primary key, checked to be the referenced key, at the first check
 * of that reference (so a row whose references are all NULL opens no
 * referenced table, as before).  Resolving them on every row (column names,
 * the table's name, the key's columns) cost about as much as a probe.  All
 * are forgotten at the next call after a relcache invalidation of a table or
 * primary key one names (the trigger's table, whose trigger or columns
 * changed; a referenced table renamed, dropped or re-keyed) or of every
 * relation; a call works on its own copy, so a nested call that forgets
 * them takes nothing from under it.
 */
typedef struct RefCheck
{
	AttrNumber	attno;			/* the referencing column */
	Oid			parentid;		/* the referenced table (invalid: not resolved yet) */
	Oid			pkid;			/* its primary key (invalid: not resolved yet) */
	Oid			coll[2];		/* the key columns' collations for the scan keys */
} RefCheck;

typedef struct RefTrigger
{
	Oid			tgoid;			/* hash key */
	Oid			relid;			/* the table it fires on */
	AttrNumber	tenant_attno;
	int			nrefs;
	RefCheck   *refs;			/* in ref_cxt */
} RefTrigger;

static MemoryContext ref_cxt = NULL;
static HTAB *ref_triggers = NULL;
static bool ref_stale = false;

/* Relcache callback: forget the resolved triggers when a relation one names changed. */
static void
references_relcache_cb(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	RefTrigger *rt;

	if (ref_triggers == NULL || ref_stale)
		return;
	if (!OidIsValid(relid))
	{
		ref_stale = true;
		return;
	}
	hash_seq_init(&seq, ref_triggers);
	while ((rt = hash_seq_search(&seq)) != NULL)
	{
		bool		hit = rt->relid == relid;

		for (int i = 0; !hit && i < rt->nrefs; i++)
			hit = rt->refs[i].parentid == relid || rt->refs[i].pkid == relid;
		if (hit)
		{
			ref_stale = true;
			hash_seq_term(&seq);
			return;
		}
	}
}

/* Module init: the relcache callback (the cache is made on first use). */
void
kaireon_references_init(void)
{
	kaireon_register_relcache_callback(references_relcache_cb, (Datum) 0);
}

/*
 * The resolved entry of Check_references trigger tg on rel, made on first use
 * (its columns: tenant_id and each reference's); NULL arguments checked by the caller.
 */
static RefTrigger *
ref_trigger(Trigger *tg, Relation rel)
{
	RefTrigger *rt;
	bool		found;
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext old;

	if (ref_stale && ref_cxt != NULL)
	{
		MemoryContextReset(ref_cxt);
		ref_triggers = NULL;
	}
	ref_stale = false;
	if (ref_cxt == NULL)
		ref_cxt = AllocSetContextCreate(TopMemoryContext, "kaireon checked references", ALLOCSET_SMALL_SIZES);
	if (ref_triggers == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RefTrigger);
		ctl.hcxt = ref_cxt;
		ref_triggers = hash_create("kaireon checked reference triggers", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	rt = hash_search(ref_triggers, &tg->tgoid, HASH_FIND, &found);
	/* the arguments' count cannot change under the same entry (a change invalidates the table) */
	if (found && rt->relid == RelationGetRelid(rel) && rt->nrefs == tg->tgnargs / 3)
		return rt;

	{
		AttrNumber	tenant_attno = SPI_fnumber(desc, "tenant_id");
		int			nrefs = tg->tgnargs / 3;
		RefCheck   *refs;

		if (tenant_attno <= 0)
			elog(ERROR, "check_references: table \"%s\" has no tenant_id column", RelationGetRelationName(rel));
		for (int i = 0; i < nrefs; i++)
			if (SPI_fnumber(desc, tg->tgargs[3 * i]) <= 0)
				elog(ERROR, "check_references on table \"%s\": no column \"%s\"",
					 RelationGetRelationName(rel), tg->tgargs[3 * i]);
		old = MemoryContextSwitchTo(ref_cxt);
		refs = palloc0(sizeof(RefCheck) * nrefs);
		MemoryContextSwitchTo(old);
		for (int i = 0; i < nrefs; i++)
			refs[i].attno = SPI_fnumber(desc, tg->tgargs[3 * i]);
		rt = hash_search(ref_triggers, &tg->tgoid, HASH_ENTER, &found);
		rt->relid = RelationGetRelid(rel);
		rt->tenant_attno = tenant_attno;
		rt->nrefs = nrefs;
		rt->refs = refs;
	}
	return rt;
}

/* Keep reference i of trigger tg on rel as resolved in ref, unless its entry was forgotten or is stale. */
static void
keep_reference(Trigger *tg, Relation rel, int i, const RefCheck *ref)
{
	RefTrigger *rt;
	bool		found;

	if (!ref_stale && ref_triggers != NULL &&
		(rt = hash_search(ref_triggers, &tg->tgoid, HASH_FIND, &found)) != NULL &&
		rt->relid == RelationGetRelid(rel) && i < rt->nrefs)
		rt->refs[i] = *ref;
}

/*
 * The primary key of the referenced table heap (locked), which must be
 * (tenant_id, parent_column), or (parent_column) alone for the tenants
 * (nkeys), with its columns' collations for the scan keys, into ref.
 */
static void
resolve_key(Relation heap, RefCheck *ref, const char *parent_column, int nkeys)
{
	Oid			parentid = RelationGetRelid(heap);
	Oid			pkid = RelationGetPrimaryKeyIndex(heap);
	Relation	idx;

	if (!OidIsValid(pkid))
		elog(ERROR, "kaireon: table \"%s\" has no primary key", RelationGetRelationName(heap));
	idx = index_open(pkid, AccessShareLock);
	if (IndexRelationGetNumberOfKeyAttributes(idx) != nkeys ||
		strcmp(get_attname(parentid, idx->rd_index->indkey.values[nkeys - 1], false), parent_column) != 0 ||
		(nkeys == 2 && strcmp(get_attname(parentid, idx->rd_index->indkey.values[0], false), "tenant_id") != 0))
		elog(ERROR, "kaireon: the primary key of \"%s\" is not the referenced key", RelationGetRelationName(heap));
	ref->pkid = pkid;
	/* a collation ordering text as its bytes is named "C": memcmp, not the locale (util/collation.c) */
	for (int k = 0; k < nkeys; k++)
		ref->coll[k] = kaireon_bytewise_collation(idx->rd_indcollation[k]) ? C_COLLATION_OID :
			idx->rd_indcollation[k];
	/* the lock is kept to the end of the transaction, as the executor keeps it */
	index_close(idx, NoLock);
}

/*
 * Whether the table ref refers to (reference i of trigger tg on rel) has a
 * row with primary key (tenant) (nkeys 1, the tenants table) or (tenant, key)
 * (nkeys 2), in the latest snapshot: an index probe, as PostgreSQL's key check
 * does without its SPI query and row lock.  The key is resolved here, with the
 * table locked (so a change of its key that committed meanwhile is seen), the
 * first time and whenever an invalidation came in since it was kept.
 */
static bool
parent_row_exists(Trigger *tg, Relation rel, int i, RefCheck *ref, int nkeys, Datum tenant, Datum key)
{
	Relation	heap = table_open(ref->parentid, AccessShareLock);
	Relation	idx;
	ScanKeyData skeys[2];
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	bool		exists;

	if (!OidIsValid(ref->pkid) || ref_stale)
	{
		resolve_key(heap, ref, tg->tgargs[3 * i + 2], nkeys);

		/*
		 * Kept only when the name, looked up before the lock, still finds
		 * this table now that it is locked (a rename committed while we
		 * waited, whose invalidation matched nothing kept yet, would else
		 * keep the old table for later rows: they look the name up again).
		 */
		if (get_relname_relid(tg->tgargs[3 * i + 1], RelationGetNamespace(rel)) == ref->parentid)
			keep_reference(tg, rel, i, ref);
	}
	idx = index_open(ref->pkid, AccessShareLock);
	for (int k = 0; k < nkeys; k++)
		ScanKeyEntryInitialize(&skeys[k], 0, k + 1, BTEqualStrategyNumber, InvalidOid,
							   ref->coll[k], F_TEXTEQ, k == 0 ? tenant : key);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = index_beginscan(heap, idx, snapshot, nkeys, 0);
	index_rescan(scan, skeys, nkeys, NULL, 0);
	slot = table_slot_create(heap, NULL);
	exists = index_getnext_slot(scan, ForwardScanDirection, slot);
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	/* the locks are kept to the end of the transaction, as the executor keeps them */
	index_close(idx, NoLock);
	table_close(heap, NoLock);
	return exists;
}

/*
 * Whether parent has the referenced row as the current user sees it (row
 * level security applied), in the latest snapshot: the check of a writer
 * under row level security writing another tenant's row, which must not tell
 * that writer whether a row it cannot see exists.
 */
static bool
parent_row_visible(Oid tgoid, int key, const char *schema, const char *parent,
				   const char *parent_column, int nkeys, Datum tenant, Datum value)
{
	Datum		values[2] = {tenant, value};
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	SPIPlanPtr	plan;
	bool		exists;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	plan = nkeys == 1
		? action_plan(tgoid, key, "SELECT 1 FROM %s.%s WHERE %s OPERATOR(pg_catalog.=) $1", schema, parent, parent_column, 1, argtypes)
		: action_plan(tgoid, key, "SELECT 1 FROM %s.%s WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND %s OPERATOR(pg_catalog.=) $2",
					  schema, parent, parent_column, 2, argtypes);
	rc = kspi_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reference check on \"%s\" failed: %s", parent, SPI_result_code_string(rc));
	exists = SPI_processed > 0;
	SPI_finish();
	return exists;
}

/* The name of a table, or of the partitioned table a partition belongs to (at the top). */
static const char *
table_root_name(Relation rel)
{
	if (rel->rd_rel->relispartition)
		return get_rel_name(llast_oid(get_partition_ancestors(RelationGetRelid(rel))));
	return RelationGetRelationName(rel);
}

/*
 * BEFORE INSERT OR UPDATE row trigger "Check_references" of a table with
 * checked references (arguments: column, referenced table, referenced column,
 * per reference; the column tenant_id refers to the tenants' key alone, every
 * other column c to (tenant_id, c)).  Takes the tenant's reference lock in
 * share mode and fails with 23503 when a referenced row is missing.  An
 * UPDATE that changes none of the columns checks nothing.
 */
Datum
kaireon_check_references(PG_FUNCTION_ARGS)
{
	TriggerData *td = reference_trigger(fcinfo, "check_references", TRIGGER_EVENT_BEFORE,
										FIRED_BY(TRIGGER_EVENT_INSERT) | FIRED_BY(TRIGGER_EVENT_UPDATE),
										3, "(column, table, referenced column) triples");
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	HeapTuple	row;
	HeapTuple	old = NULL;
	TupleTableSlot *rowslot;	/* the row's columns, deformed once (the tuple's are slow past a null) */
	TupleTableSlot *oldslot = NULL;
	int			tenant_attno;
	Datum		tenant;
	bool		isnull;
	bool		tenant_changed = true;
	bool		locked = false;
	char	   *tenant_str = NULL;
	int			other_tenant = -1;	/* RLS applies and the row is another tenant's (-1: not known yet) */
	Oid			nsp;
	RefTrigger *cached;
	RefCheck   *refs;			/* the call's copy of the resolved references */

	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		row = td->tg_newtuple;
		old = td->tg_trigtuple;
		rowslot = td->tg_newslot;
		oldslot = td->tg_trigslot;
	}
	else
	{
		row = td->tg_trigtuple;
		rowslot = td->tg_trigslot;
	}
	cached = ref_trigger(tg, rel);
	tenant_attno = cached->tenant_attno;
	refs = palloc(sizeof(RefCheck) * cached->nrefs);
	memcpy(refs, cached->refs, sizeof(RefCheck) * cached->nrefs);
	if (rowslot == NULL || (old != NULL && oldslot == NULL))
		elog(ERROR, "check_references: fired without the row's slot");
	tenant = slot_getattr(rowslot, tenant_attno, &isnull);
	if (isnull)
		return PointerGetDatum(row);	/* NOT NULL says the rest */
	if (old != NULL)
	{
		bool		oldnull;
		Datum		was = slot_getattr(oldslot, tenant_attno, &oldnull);

		tenant_changed = oldnull || !datumIsEqual(was, tenant, false, -1);
	}
	nsp = RelationGetNamespace(rel);

	for (int i = 0; i < tg->tgnargs; i += 3)
	{
		const char *column = tg->tgargs[i];
		const char *parent = tg->tgargs[i + 1];
		RefCheck   *ref = &refs[i / 3];
		int			attno = ref->attno;
		bool		is_tenant = attno == tenant_attno;
		Datum		value;
		char	   *key_str;

		value = slot_getattr(rowslot, attno, &isnull);
		if (isnull)
			continue;
		if (old != NULL && !tenant_changed)
		{
			bool		oldnull;
			Datum		was;

			if (is_tenant)
				continue;		/* unchanged, and checked when it was written */
			was = slot_getattr(oldslot, attno, &oldnull);
			if (!oldnull && datumIsEqual(was, value, false, -1))
				continue;		/* the same */
		}

		if (!locked)
		{
			lock_tenant_references(tenant, ShareLock);
			tenant_str = TextDatumGetCString(tenant);
			locked = true;
		}
		key_str = is_tenant ? NULL : TextDatumGetCString(value);
		if (found_before(parent, tenant_str, key_str))
			continue;
		if (!OidIsValid(ref->parentid) || ref_stale)
		{
			ref->parentid = get_relname_relid(parent, nsp);
			if (!OidIsValid(ref->parentid))
				elog(ERROR, "check_references on table \"%s\": no table \"%s\"",
					 RelationGetRelationName(rel), parent);
			ref->pkid = InvalidOid;
		}
		/* a writer under row level security writing another tenant's row: as it sees the parent */
		if (other_tenant < 0)
		{
			const char *current = kaireon_current_tenant();

			other_tenant = check_enable_rls(RelationGetRelid(rel), InvalidOid, true) == RLS_ENABLED &&
				(current == NULL || strcmp(current, tenant_str) != 0);
		}
		if (other_tenant && !parent_row_visible(tg->tgoid, i / 3, get_namespace_name(nsp), parent,
												tg->tgargs[i + 2], is_tenant ? 1 : 2, tenant, value))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("new row violates row-level security policy for table \"%s\"", table_root_name(rel)),
					 errdetail("Row level security hides the row of table \"%s\" that column %s refers to, if there is one.",
							   parent, column),
					 errhint("Write rows of the tenant the session acts for (kaireon.tenant_id)."),
					 errtable(rel)));
		if (!other_tenant && !parent_row_exists(tg, rel, i / 3, ref, is_tenant ? 1 : 2, tenant, value))
			ereport(ERROR,
					(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
					 errmsg("insert or update on table \"%s\" violates the reference of %s to table \"%s\"",
							table_root_name(rel), column, parent),
					 is_tenant
					 ? errdetail("Key (%s)=(%s) is not present in table \"%s\".", column, tenant_str, parent)
					 : errdetail("Key (tenant_id, %s)=(%s, %s) is not present in table \"%s\".",
								 column, tenant_str, key_str, parent),
					 errhint("A row must refer to an existing row of table \"%s\"%s (docs/schema.md, \"Checked references\").",
							 parent, is_tenant ? "" : " of its own tenant"),
					 errtable(rel)));
		remember_found(parent, tenant_str, key_str);
	}
	return PointerGetDatum(row);
}

/*
 * AFTER DELETE OR UPDATE row trigger "Checked_references" of a table that
 * checked references point to (arguments: referencing table, its column,
 * referenced column, action 'cascade' or 'set null', per reference).  Takes
 * the tenant's reference lock in exclusive mode, then: a delete deletes the
 * tenant's referencing rows ('cascade', the reference from tenant_id to the
 * tenants) or sets their column to NULL ('set null'); a change of the key
 * fails with 23503 while a row refers to the old key.
 */
Datum
kaireon_checked_reference_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = reference_trigger(fcinfo, "checked_reference_changed", TRIGGER_EVENT_AFTER,
										FIRED_BY(TRIGGER_EVENT_DELETE) | FIRED_BY(TRIGGER_EVENT_UPDATE),
										4, "(table, column, referenced column, action) quadruples");
	Trigger    *tg = td->tg_trigger;
	Relation	rel = td->tg_relation;
	TupleDesc	desc;
	HeapTuple	old;
	const char *schema;
	Oid			nsp;
	int			tenant_attno;
	bool		deleted;
	bool		locked = false;
	int			i;

	desc = RelationGetDescr(rel);
	old = td->tg_trigtuple;
	deleted = TRIGGER_FIRED_BY_DELETE(td->tg_event);
	nsp = RelationGetNamespace(rel);
	schema = get_namespace_name(nsp);
	tenant_attno = SPI_fnumber(desc, "tenant_id");

	for (i = 0; i < tg->tgnargs; i += 4)
	{
		const char *child = tg->tgargs[i];
		const char *column = tg->tgargs[i + 1];
		int			attno = SPI_fnumber(desc, tg->tgargs[i + 2]);
		const char *action = tg->tgargs[i + 3];
		bool		whole_tenant = tenant_attno <= 0;	/* the tenants: their key is the tenant */
		Oid			childid = get_relname_relid(child, nsp);
		Datum		values[2];
		Oid			argtypes[2] = {TEXTOID, TEXTOID};
		bool		isnull;
		bool		tenant_null = false;

		if (attno <= 0 || !OidIsValid(childid))
			elog(ERROR, "checked_reference_changed on table \"%s\": no column \"%s\" or no table \"%s\"",
				 RelationGetRelationName(rel), tg->tgargs[i + 2], child);
		values[1] = heap_getattr(old, attno, desc, &isnull);
		values[0] = whole_tenant ? values[1] : heap_getattr(old, tenant_attno, desc, &tenant_null);
		if (isnull || tenant_null)
			continue;
		if (!deleted)
		{
			HeapTuple	new = td->tg_newtuple;
			bool		newnull;
			bool		same = datumIsEqual(values[1], heap_getattr(new, attno, desc, &newnull), false, -1) && !newnull;

			if (same && !whole_tenant)
				same = datumIsEqual(values[0], heap_getattr(new, tenant_attno, desc, &newnull), false, -1) && !newnull;
			if (same)
				continue;
		}
		if (!locked)
		{
			lock_tenant_references(values[0], ExclusiveLock);
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "kaireon: SPI_connect failed");
			locked = true;
		}
		if (deleted && strcmp(action, "cascade") == 0 && whole_tenant)
			run_key_action(action_plan(tg->tgoid, i / 4, "DELETE FROM %s.%s WHERE %s OPERATOR(pg_catalog.=) $1",
									   schema, child, column, 1, argtypes),
						   values, childid, SPI_OK_DELETE, child);
		else if (deleted && strcmp(action, "set null") == 0 && !whole_tenant)
			run_key_action(action_plan(tg->tgoid, i / 4,
									   "UPDATE %s.%s SET %s = NULL WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND %s OPERATOR(pg_catalog.=) $2",
									   schema, child, column, 2, argtypes),
						   values, childid, SPI_OK_UPDATE, child);
		else if (deleted)
			elog(ERROR, "checked_reference_changed on table \"%s\": action \"%s\" does not fit reference %s.%s",
				 RelationGetRelationName(rel), action, child, column);
		else
		{
			/* a key change: refused while a row refers to the old key (latest snapshot) */
			SPIPlanPtr	plan = whole_tenant
				? action_plan(tg->tgoid, 1000 + i / 4, "SELECT 1 FROM %s.%s WHERE %s OPERATOR(pg_catalog.=) $1 LIMIT 1",
							  schema, child, column, 1, argtypes)
				: action_plan(tg->tgoid, 1000 + i / 4, "SELECT 1 FROM %s.%s WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND %s OPERATOR(pg_catalog.=) $2 LIMIT 1",
							  schema, child, column, 2, argtypes);
			Oid			save_userid;
			int			save_sec;
			int			nest;
			int			rc;

			CommandCounterIncrement();
			nest = act_as_owner(childid, &save_userid, &save_sec);
			rc = kspi_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot, true, 1);
			end_as_owner(nest, save_userid, save_sec);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "kaireon: reference check on \"%s\" failed: %s", child, SPI_result_code_string(rc));
			if (SPI_processed > 0)
				ereport(ERROR,
						(errcode(ERRCODE_FOREIGN_KEY_VIOLATION),
						 errmsg("update on table \"%s\" changes a key that table \"%s\" refers to",
								RelationGetRelationName(rel), child),
						 errdetail("Rows of \"%s\" refer to it in column %s.", child, column),
						 errhint("Keys that interaction history refers to do not change; create a new row instead."),
						 errtable(rel)));
		}
	}
	if (locked)
		SPI_finish();
	return PointerGetDatum(NULL);
}
