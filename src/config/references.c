/*
 * config/references.c
 *	  Optional references between tenant tables: kaireon.on_delete_set_null(),
 *	  the AFTER DELETE row trigger that stands in for ON DELETE SET NULL (col).
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
 * with the deleted row's tenant and id, before the key's own NO ACTION check
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
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "security/owner.h"
#include "util/spi.h"


PG_FUNCTION_INFO_V1(kaireon_on_delete_set_null);

/* One prepared UPDATE per (trigger, key), kept for the backend. */
typedef struct NullPlanKey
{
	Oid			tgoid;
	int			key;
} NullPlanKey;

typedef struct NullPlanEntry
{
	NullPlanKey k;
	SPIPlanPtr	plan;
} NullPlanEntry;

static HTAB *null_plans = NULL;

/* The kept UPDATE of key number `key` of trigger tgoid, prepared on first use. */
static SPIPlanPtr
null_plan(Oid tgoid, int key, const char *schema, const char *child, const char *column,
		  Oid *argtypes)
{
	NullPlanKey k;
	NullPlanEntry *entry;
	bool		found;

	if (null_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(NullPlanKey);
		ctl.entrysize = sizeof(NullPlanEntry);
		ctl.hcxt = TopMemoryContext;
		null_plans = hash_create("kaireon on_delete_set_null plans", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&k, 0, sizeof(k));
	k.tgoid = tgoid;
	k.key = key;
	entry = hash_search(null_plans, &k, HASH_FIND, &found);
	if (found)
		return entry->plan;

	{
		SPIPlanPtr	plan = kspi_prepare_keep(
			psprintf("UPDATE %s.%s SET %s = NULL WHERE tenant_id = $1 AND %s = $2",
					 quote_identifier(schema), quote_identifier(child),
					 quote_identifier(column), quote_identifier(column)),
			2, argtypes);

		entry = hash_search(null_plans, &k, HASH_ENTER, &found);
		entry->plan = plan;
		return plan;
	}
}

/*
 * AFTER DELETE row trigger of a referenced table: sets each optional reference
 * to the deleted row (trigger arguments: child table, column, referenced
 * column, repeated) to NULL in the rows of the deleted row's tenant.
 */
Datum
kaireon_on_delete_set_null(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Trigger    *tg;
	Relation	rel;
	TupleDesc	desc;
	HeapTuple	old;
	const char *schema;
	Oid			nsp;
	int			tenant_attno;
	Datum		values[2];
	Oid			argtypes[2];
	bool		isnull;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_DELETE(td->tg_event))
		elog(ERROR, "on_delete_set_null must be an AFTER DELETE row trigger");
	tg = td->tg_trigger;
	rel = td->tg_relation;
	if (tg->tgnargs == 0 || tg->tgnargs % 3 != 0)
		elog(ERROR, "on_delete_set_null on table \"%s\" needs (table, column, referenced column) triples",
			 RelationGetRelationName(rel));

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
		Oid			save_userid;
		int			save_sec;
		Snapshot	snapshot = InvalidSnapshot;
		Snapshot	crosscheck = InvalidSnapshot;
		int			rc;

		if (attno <= 0 || !OidIsValid(childid))
			elog(ERROR, "on_delete_set_null on table \"%s\": no column \"%s\" or no table \"%s\"",
				 RelationGetRelationName(rel), tg->tgargs[i + 2], child);
		values[1] = heap_getattr(old, attno, desc, &isnull);
		if (isnull)
			continue;
		argtypes[1] = SPI_gettypeid(desc, attno);

		/*
		 * As the referencing table's owner, like PostgreSQL's key actions; and
		 * like them (ri_PerformCheck), under REPEATABLE READ or SERIALIZABLE
		 * the rows are found with the latest snapshot and checked against the
		 * transaction's: a referencing row committed after the transaction's
		 * snapshot is a serialization failure (40001, retry), not a key
		 * violation of the NO ACTION check that follows.
		 */
		if (IsolationUsesXactSnapshot())
		{
			CommandCounterIncrement();
			snapshot = GetLatestSnapshot();
			crosscheck = GetTransactionSnapshot();
		}
		kaireon_switch_to_owner(childid, &save_userid, &save_sec);
		rc = kspi_execute_snapshot(null_plan(tg->tgoid, i / 3, schema, child, column, argtypes),
								   values, NULL, snapshot, crosscheck, false, 0);
		SetUserIdAndSecContext(save_userid, save_sec);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "on_delete_set_null: UPDATE of \"%s\" failed: %s", child,
				 SPI_result_code_string(rc));
	}
	SPI_finish();
	return PointerGetDatum(NULL);
}
