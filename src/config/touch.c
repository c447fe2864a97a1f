/*
 * config/touch.c
 *	  Generic row triggers shared by the schema: kaireon.touch_updated_at()
 *	  keeps updated_at current on every UPDATE.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/rel.h"
#include "utils/timestamp.h"


PG_FUNCTION_INFO_V1(kaireon_touch_updated_at);

/* BEFORE UPDATE row trigger: set NEW.updated_at to the transaction timestamp. */
Datum
kaireon_touch_updated_at(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	tupdesc;
	int			attno;
	Datum		value;
	bool		isnull = false;
	HeapTuple	newtuple;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || !TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		elog(ERROR, "touch_updated_at must be a BEFORE UPDATE row trigger");

	tupdesc = RelationGetDescr(trigdata->tg_relation);
	attno = SPI_fnumber(tupdesc, "updated_at");
	if (attno <= 0)
		elog(ERROR, "touch_updated_at: table \"%s\" has no updated_at column",
			 RelationGetRelationName(trigdata->tg_relation));

	value = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	newtuple = heap_modify_tuple_by_cols(trigdata->tg_newtuple, tupdesc, 1, &attno, &value, &isnull);
	return PointerGetDatum(newtuple);
}
