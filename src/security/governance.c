/*
 * governance.c
 *	  The C side of four-eyes governance (sql/install/75_approvals.sql holds the
 *	  workflow): the setting that marks an approved change being applied, and
 *	  the trigger that refuses direct changes of governed tables.
 *
 * kaireon.approve_request applies an approved request's payload through the
 * action's apply function with kaireon.applying_approval set to the request
 * id.  The setting is superuser-only (PGC_SUSET) and the function is SECURITY
 * DEFINER with the setting in its SET clause, so the value is set only inside
 * that call and restored when it returns or fails; an application role can
 * neither set it nor see it set outside the call.  kaireon.four_eyes_guard()
 * lets a change of a governed table through only then (or when four-eyes is
 * off for the tenant, in a restore session, or when the tenant itself is being
 * deleted).  Being C, the guard loads the library first, so a placeholder value
 * set before the library was loaded is checked against the role that set it and
 * refused (a plpgsql guard reading current_setting would honour it).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/rel.h"

#include "util/spi.h"
#include "security/governance.h"
#include "audit/audit.h"

PG_FUNCTION_INFO_V1(kaireon_approval_in_progress);
PG_FUNCTION_INFO_V1(kaireon_four_eyes_guard);
PG_FUNCTION_INFO_V1(kaireon_in_restore_session);

static char *applying_approval = NULL;

/* Register kaireon.applying_approval. */
void
kaireon_governance_init(void)
{
	DefineCustomStringVariable("kaireon.applying_approval",
							   "Id of the approval request whose change kaireon.approve_request is applying.",
							   "Set only by kaireon.approve_request for the duration of the apply step.",
							   &applying_approval, "",
							   PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_NO_RESET_ALL,
							   NULL, NULL, NULL);
}

/* kaireon.approval_in_progress(): the request being applied, or NULL. */
Datum
kaireon_approval_in_progress(PG_FUNCTION_ARGS)
{
	if (applying_approval == NULL || applying_approval[0] == '\0')
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(applying_approval));
}

/* Run a one-row boolean query with text arguments (as the current user). */
static bool
query_bool(const char *sql, int nargs, const char **args)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		vals[2];
	bool		isnull;
	bool		result;
	int			i;

	Assert(nargs <= 2);
	for (i = 0; i < nargs; i++)
		vals[i] = CStringGetTextDatum(args[i]);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (kspi_execute_with_args(sql, nargs, types, vals, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "four-eyes guard query failed");
	result = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return !isnull && result;
}

/*
 * Whether an UPDATE of tenant_settings changes what governs four-eyes while it
 * is on: turning it off, or changing settings -> 'approvalStages'.
 */
static bool
governance_settings_changed(TriggerData *td)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	int			flag = SPI_fnumber(desc, "four_eyes_enabled");
	int			settings = SPI_fnumber(desc, "settings");
	bool		oldnull;
	bool		newnull;
	Datum		old_on = heap_getattr(td->tg_trigtuple, flag, desc, &oldnull);
	Datum		new_on = heap_getattr(td->tg_newtuple, flag, desc, &newnull);
	const char *args[2];

	if (oldnull || !DatumGetBool(old_on))
		return false;			/* four-eyes was off: turning it on needs no approval */
	if (newnull || !DatumGetBool(new_on))
		return true;
	args[0] = SPI_getvalue(td->tg_trigtuple, desc, settings);
	args[1] = SPI_getvalue(td->tg_newtuple, desc, settings);
	if (args[0] == NULL || args[1] == NULL)
		return args[0] != args[1];
	return !query_bool("SELECT ($1::pg_catalog.jsonb OPERATOR(pg_catalog.->) 'approvalStages')"
					   " IS NOT DISTINCT FROM ($2::pg_catalog.jsonb OPERATOR(pg_catalog.->) 'approvalStages')",
					   2, args);
}

/* kaireon.in_restore_session(): is this a pg_dump/pg_restore session (kaireon_audit_restore_session)? */
Datum
kaireon_in_restore_session(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(kaireon_audit_restore_session());
}

/*
 * BEFORE INSERT OR UPDATE OR DELETE row trigger of the tables four-eyes
 * governs (argument: the approval action that changes them).  Refuses a
 * direct change when four-eyes is on for the row's tenant.  On
 * tenant_settings it refuses only turning four-eyes off or changing the
 * approval stages while it is on.
 */
Datum
kaireon_four_eyes_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	row;
	TupleDesc	desc;
	const char *action;
	char	   *tenant_id;
	bool		on_settings;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 1)
		elog(ERROR, "four_eyes_guard must be a BEFORE row trigger with the approval action as argument");
	row = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	if (applying_approval != NULL && applying_approval[0] != '\0')
		return PointerGetDatum(row);
	if (kaireon_audit_restore_session())
		return PointerGetDatum(row);

	desc = RelationGetDescr(td->tg_relation);
	action = td->tg_trigger->tgargs[0];
	tenant_id = SPI_getvalue(td->tg_trigtuple, desc, SPI_fnumber(desc, "tenant_id"));
	on_settings = strcmp(RelationGetRelationName(td->tg_relation), "tenant_settings") == 0;
	if (tenant_id == NULL)
		return PointerGetDatum(row);
	if (on_settings && !TRIGGER_FIRED_BY_UPDATE(td->tg_event) && !TRIGGER_FIRED_BY_DELETE(td->tg_event))
		return PointerGetDatum(row);	/* a new settings row: four-eyes was off */
	if (on_settings && TRIGGER_FIRED_BY_UPDATE(td->tg_event) && !governance_settings_changed(td))
		return PointerGetDatum(row);
	/* the tenant itself is being deleted: its rows go with it */
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) &&
		!query_bool("SELECT EXISTS (SELECT 1 FROM kaireon.tenants WHERE id OPERATOR(pg_catalog.=) $1)",
					1, (const char **) &tenant_id))
		return PointerGetDatum(row);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		/* a row moved to another tenant is governed by either tenant */
		char	   *new_tenant = SPI_getvalue(td->tg_newtuple, desc, SPI_fnumber(desc, "tenant_id"));

		if (new_tenant != NULL && strcmp(new_tenant, tenant_id) != 0 &&
			query_bool("SELECT kaireon.four_eyes_required($1)", 1, (const char **) &new_tenant))
			tenant_id = new_tenant;
	}
	if (!query_bool("SELECT kaireon.four_eyes_required($1)", 1, (const char **) &tenant_id))
		return PointerGetDatum(row);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("four-eyes approval is required to change kaireon.%s of tenant \"%s\"",
					RelationGetRelationName(td->tg_relation), tenant_id),
			 errdetail("Tenant \"%s\" has four_eyes_enabled in kaireon.tenant_settings.", tenant_id),
			 errhint("File the change with kaireon.request_approval(tenant_id, '%s', ...); it is applied when approved.",
					 action)));
	return PointerGetDatum(NULL);
}
