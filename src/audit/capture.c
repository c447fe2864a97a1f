/*
 * audit/capture.c
 *	  Capture of configuration changes into the audit hash chain, and the
 *	  guards that keep kaireon.audit_logs append-only and
 *	  kaireon.audit_chain_heads written by kaireon alone.
 *
 * kaireon.audit_capture() is an AFTER INSERT OR UPDATE OR DELETE row trigger
 * on every audited table (the list is kaireon.audited_tables(), in
 * sql/install/70_audit.sql), a constraint trigger DEFERRABLE INITIALLY
 * DEFERRED: the server queues each change with its row versions and fires the
 * trigger when the transaction commits (or at the end of the statement after
 * SET CONSTRAINTS ... IMMEDIATE), so the tenant's chain is locked only while
 * the transaction commits.  The session settings it records (kaireon.user_id,
 * kaireon.request_id) are those in force then.  For each changed row it writes
 * one audit row in the same transaction (chain.c appends it to the
 * tenant's chain): the
 * action (create, update, soft_delete when deleted_at becomes set, restore when
 * it is cleared, delete), the entity, the row before and after as JSON (the
 * server's row_to_json, secrets replaced by "[redacted]"; a create shows the
 * new row, a delete the old one, an update its changed columns before and
 * after), the changed column names, the entity version and who did it.  An UPDATE that changes nothing but
 * updated_at and the table's runtime columns (counters, last-used times) writes
 * nothing.  The trigger's arguments describe the table:
 *
 *	 tenant=<col>		the tenant column (default tenant_id; none: no-tenant chain)
 *	 id=<col>			the entity id column (default id)
 *	 version=<col>		an integer column recorded as entity_version
 *	 redact=<col>		a secret column, always redacted
 *	 redact=<col>:<flag> redacted when the boolean column <flag> is true
 *	 ignore=<col>		a runtime column: changing only such columns is not audited
 *
 * A restore (pg_restore, or a plain dump fed to psql) reloads rows that are
 * already in the dumped audit log, so capture is skipped in a restore session:
 * a superuser session with the settings every pg_dump/pg_restore script makes
 * (row_security off, check_function_bodies off, an empty search_path).  Under
 * session_replication_role = replica (logical replication, pg_restore
 * --disable-triggers) the triggers do not fire at all.  docs/audit.md explains
 * the choice.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "funcapi.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "util/version.h"

#include "audit/audit.h"

PG_FUNCTION_INFO_V1(kaireon_audit_capture);
PG_FUNCTION_INFO_V1(kaireon_audit_refuse_truncate);
PG_FUNCTION_INFO_V1(kaireon_audit_guard);
PG_FUNCTION_INFO_V1(kaireon_audit_heads_guard);

/* Set only while kaireon.purge_audit_chain deletes a chain's prefix. */
bool		kaireon_audit_purging = false;

#define REDACTED "[redacted]"

/* What the trigger arguments say about one audited table (attribute numbers, 0 = none). */
typedef struct AuditSpec
{
	int			tenant_att;
	int			id_att;
	int			version_att;
	int			deleted_att;
	int			updated_att;
	int			natts;
	bool	   *redact;			/* by attno - 1 */
	int		   *redact_if;		/* flag column's attno, 0 = always */
	bool	   *ignore;
	const char *entity;			/* entity_type: the audited table's name */
} AuditSpec;

/*
 * True in a restore session: a superuser whose session has the settings every
 * pg_dump and pg_restore script starts with.  Rows loaded there are already in
 * the dumped audit log.
 */
bool
kaireon_audit_restore_session(void)
{
	return !row_security && !check_function_bodies &&
		namespace_search_path != NULL && namespace_search_path[0] == '\0' &&
		superuser_arg(GetOuterUserId());
}

/* Attribute number of a named column of the audited table; a bad name is a setup bug. */
static int
spec_column(Relation rel, TupleDesc desc, const char *name)
{
	int			attno = SPI_fnumber(desc, name);

	if (attno <= 0)
		elog(ERROR, "audit trigger of table \"%s\" names column \"%s\", which does not exist",
			 RelationGetRelationName(rel), name);
	return attno;
}

/* Read the trigger's arguments (a handful of short strings) into a spec. */
static void
spec_parse(Relation rel, Trigger *trigger, AuditSpec *spec)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	memset(spec, 0, sizeof(*spec));
	spec->natts = desc->natts;
	spec->redact = palloc0(sizeof(bool) * desc->natts);
	spec->redact_if = palloc0(sizeof(int) * desc->natts);
	spec->ignore = palloc0(sizeof(bool) * desc->natts);
	spec->tenant_att = Max(SPI_fnumber(desc, "tenant_id"), 0);
	spec->id_att = Max(SPI_fnumber(desc, "id"), 0);
	spec->deleted_att = Max(SPI_fnumber(desc, "deleted_at"), 0);
	spec->updated_att = Max(SPI_fnumber(desc, "updated_at"), 0);
	spec->entity = RelationGetRelationName(rel);

	for (i = 0; i < trigger->tgnargs; i++)
	{
		char	   *arg = pstrdup(trigger->tgargs[i]);
		char	   *value = strchr(arg, '=');

		if (value == NULL)
			elog(ERROR, "audit trigger argument \"%s\" has no \"=\"", arg);
		*value++ = '\0';
		if (strcmp(arg, "tenant") == 0)
			spec->tenant_att = strcmp(value, "none") == 0 ? 0 : spec_column(rel, desc, value);
		else if (strcmp(arg, "id") == 0)
			spec->id_att = spec_column(rel, desc, value);
		else if (strcmp(arg, "version") == 0)
			spec->version_att = spec_column(rel, desc, value);
		else if (strcmp(arg, "entity") == 0)
			spec->entity = value;
		else if (strcmp(arg, "ignore") == 0)
			spec->ignore[spec_column(rel, desc, value) - 1] = true;
		else if (strcmp(arg, "redact") == 0)
		{
			char	   *flag = strchr(value, ':');
			int			attno;
			Oid			typid;

			if (flag != NULL)
				*flag++ = '\0';
			attno = spec_column(rel, desc, value);
			typid = TupleDescAttr(desc, attno - 1)->atttypid;
			if (typid != TEXTOID && typid != JSONBOID && typid != JSONOID)
				elog(ERROR, "audit trigger of table \"%s\" redacts column \"%s\", which is not text or JSON",
					 RelationGetRelationName(rel), value);
			spec->redact[attno - 1] = true;
			if (flag != NULL)
				spec->redact_if[attno - 1] = spec_column(rel, desc, flag);
		}
		else
			elog(ERROR, "unknown audit trigger argument \"%s\"", arg);
	}
	if (spec->id_att == 0)
		elog(ERROR, "audit trigger of table \"%s\" needs an id column (argument id=<column>)",
			 RelationGetRelationName(rel));
	if (spec->version_att != 0 && TupleDescAttr(desc, spec->version_att - 1)->atttypid != INT4OID)
		elog(ERROR, "audit trigger of table \"%s\": the version column must be integer",
			 RelationGetRelationName(rel));
}

/* Whether two non-null values of one column are the same bytes (after detoasting). */
static bool
values_equal(Datum a, Datum b, Form_pg_attribute att)
{
	struct varlena *va;
	struct varlena *vb;

	if (att->attlen != -1)
		return datumIsEqual(a, b, att->attbyval, att->attlen);
	va = (struct varlena *) DatumGetPointer(a);
	vb = (struct varlena *) DatumGetPointer(b);
	/* an unchanged out-of-line value keeps its toast pointer */
	if (VARATT_IS_EXTERNAL_ONDISK(va) && VARATT_IS_EXTERNAL_ONDISK(vb) &&
		VARSIZE_EXTERNAL(va) == VARSIZE_EXTERNAL(vb) &&
		memcmp(va, vb, VARSIZE_EXTERNAL(va)) == 0)
		return true;
	va = pg_detoast_datum_packed(va);
	vb = pg_detoast_datum_packed(vb);
	return VARSIZE_ANY_EXHDR(va) == VARSIZE_ANY_EXHDR(vb) &&
		memcmp(VARDATA_ANY(va), VARDATA_ANY(vb), VARSIZE_ANY_EXHDR(va)) == 0;
}

/* The "[redacted]" marker as a value of a text or JSON column. */
static Datum
redacted_value(Oid typid)
{
	if (typid == JSONBOID)
		return DirectFunctionCall1(jsonb_in, CStringGetDatum("\"" REDACTED "\""));
	if (typid == JSONOID)
		return DirectFunctionCall1(json_in, CStringGetDatum("\"" REDACTED "\""));
	return CStringGetTextDatum(REDACTED);
}

/* Whether column attno of a row is redacted (its value is a secret). */
static bool
is_redacted(const AuditSpec *spec, int attno, Datum *values, bool *nulls)
{
	int			flag = spec->redact_if[attno - 1];

	if (!spec->redact[attno - 1] || nulls[attno - 1])
		return false;
	return flag == 0 || (!nulls[flag - 1] && DatumGetBool(values[flag - 1]));
}

/*
 * A row as JSON text, its secrets redacted, printed by the server's
 * row_to_json.  keep (by attno - 1) selects the columns shown: an update shows
 * only its changed columns, as an anonymous record of just those.  NULL keeps
 * every column.
 */
static char *
row_json(TupleDesc desc, Datum *values, bool *nulls, const AuditSpec *spec, const bool *keep)
{
	Datum	   *shown = palloc(sizeof(Datum) * spec->natts);
	bool	   *shown_nulls = palloc(sizeof(bool) * spec->natts);
	TupleDesc	outdesc = desc;
	int			n = 0;
	int			attno;

	if (keep != NULL)
	{
		for (attno = 1; attno <= spec->natts; attno++)
			n += keep[attno - 1] ? 1 : 0;
		outdesc = CreateTemplateTupleDesc(n);
		n = 0;
	}
	for (attno = 1; attno <= spec->natts; attno++)
	{
		Datum		value = values[attno - 1];

		if (keep != NULL && !keep[attno - 1])
			continue;
		if (is_redacted(spec, attno, values, nulls))
			value = redacted_value(TupleDescAttr(desc, attno - 1)->atttypid);
		if (keep != NULL)
			TupleDescCopyEntry(outdesc, n + 1, desc, attno);
		shown[n] = value;
		shown_nulls[n] = nulls[attno - 1];
		n++;
	}
	if (keep != NULL)
		outdesc = BlessTupleDesc(outdesc);
	return TextDatumGetCString(DirectFunctionCall1(row_to_json,
												   heap_copy_tuple_as_datum(heap_form_tuple(outdesc, shown, shown_nulls),
																			outdesc)));
}

/* A column's value as text (the type's output function), or NULL. */
static const char *
column_text(TupleDesc desc, int attno, Datum *values, bool *nulls)
{
	Oid			typoutput;
	bool		varlena;

	if (attno == 0 || nulls[attno - 1])
		return NULL;
	getTypeOutputInfo(TupleDescAttr(desc, attno - 1)->atttypid, &typoutput, &varlena);
	return OidOutputFunctionCall(typoutput, values[attno - 1]);
}

/* AFTER INSERT OR UPDATE OR DELETE row trigger: record the change in the audit chain. */
Datum
kaireon_audit_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	TupleDesc	desc;
	AuditSpec	spec;
	AuditRecord rec;
	HeapTuple	oldt = NULL;
	HeapTuple	newt = NULL;
	Datum	   *ov = NULL,
			   *nv = NULL;
	bool	   *on = NULL,
			   *nn = NULL;
	bool		real_change = false;
	bool	   *changed;
	int			attno;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "audit_capture must be an AFTER ... FOR EACH ROW trigger");
	if (kaireon_audit_restore_session())
		return PointerGetDatum(NULL);
	/* the chains' tables are those of the SQL version this library serves */
	kaireon_require_sql_version();

	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	spec_parse(rel, td->tg_trigger, &spec);
	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		newt = td->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		oldt = td->tg_trigtuple;
	else
	{
		oldt = td->tg_trigtuple;
		newt = td->tg_newtuple;
	}
	if (oldt != NULL)
	{
		ov = palloc(sizeof(Datum) * desc->natts);
		on = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(oldt, desc, ov, on);
	}
	if (newt != NULL)
	{
		nv = palloc(sizeof(Datum) * desc->natts);
		nn = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(newt, desc, nv, nn);
	}

	/* changed columns: those whose value differs between before and after (absent = null) */
	memset(&rec, 0, sizeof(rec));
	rec.changed = palloc(sizeof(char *) * desc->natts);
	changed = palloc0(sizeof(bool) * desc->natts);
	for (attno = 1; attno <= desc->natts; attno++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
		bool		onull = on == NULL || on[attno - 1];
		bool		nnull = nn == NULL || nn[attno - 1];

		if (att->attisdropped)
			continue;
		if (attno == spec.updated_att || (onull && nnull) ||
			(!onull && !nnull && values_equal(ov[attno - 1], nv[attno - 1], att)))
			continue;
		changed[attno - 1] = true;
		rec.changed[rec.nchanged++] = NameStr(att->attname);
		if (!spec.ignore[attno - 1])
			real_change = true;
	}
	if (oldt != NULL && newt != NULL && !real_change)
		return PointerGetDatum(NULL);

	if (newt == NULL)
		rec.action = "delete";
	else if (oldt == NULL)
		rec.action = "create";
	else if (spec.deleted_att != 0 && on[spec.deleted_att - 1] && !nn[spec.deleted_att - 1])
		rec.action = "soft_delete";
	else if (spec.deleted_att != 0 && !on[spec.deleted_att - 1] && nn[spec.deleted_att - 1])
		rec.action = "restore";
	else
		rec.action = "update";

	rec.entity_type = spec.entity;
	rec.tenant_id = newt ? column_text(desc, spec.tenant_att, nv, nn) : column_text(desc, spec.tenant_att, ov, on);
	rec.entity_id = newt ? column_text(desc, spec.id_att, nv, nn) : column_text(desc, spec.id_att, ov, on);
	if (spec.version_att != 0)
	{
		Datum	   *v = newt ? nv : ov;
		bool	   *n = newt ? nn : on;

		rec.has_version = !n[spec.version_att - 1];
		if (rec.has_version)
			rec.entity_version = DatumGetInt32(v[spec.version_att - 1]);
	}
	/* a create or delete shows the whole row, an update only the changed columns */
	if (oldt != NULL && newt != NULL)
	{
		rec.before = row_json(desc, ov, on, &spec, changed);
		rec.after = row_json(desc, nv, nn, &spec, changed);
	}
	else if (oldt != NULL)
		rec.before = row_json(desc, ov, on, &spec, NULL);
	else
		rec.after = row_json(desc, nv, nn, &spec, NULL);
	kaireon_audit_fill_session(&rec);
	kaireon_audit_append(&rec);
	return PointerGetDatum(NULL);
}

/* BEFORE TRUNCATE statement trigger of audited tables: refused, as rows would vanish unaudited. */
Datum
kaireon_audit_refuse_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		elog(ERROR, "audit_refuse_truncate must be a BEFORE TRUNCATE trigger");
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("TRUNCATE of audited table kaireon.%s is refused",
					RelationGetRelationName(td->tg_relation)),
			 errdetail("Every row removed from an audited table is recorded in kaireon.audit_logs, and TRUNCATE fires no row triggers."),
			 errhint("Use DELETE.")));
	return PointerGetDatum(NULL);
}

/*
 * Trigger of kaireon.audit_logs and kaireon.platform_audit_logs (BEFORE INSERT
 * OR UPDATE OR DELETE per row, and BEFORE TRUNCATE): the log is append-only.  UPDATE and TRUNCATE are refused
 * for everyone; DELETE only while kaireon.purge_audit_chain removes a prefix;
 * INSERT only by the table's owner (kaireon's own appends run as the owner)
 * and superusers (a restore), never by application roles.
 */
Datum
kaireon_audit_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event))
		elog(ERROR, "audit_guard must be a BEFORE trigger");
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		what = "TRUNCATE";
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		what = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
	{
		if (kaireon_audit_purging)
			return PointerGetDatum(td->tg_trigtuple);
		what = "DELETE";
	}
	else
	{
		if (superuser() || GetUserId() == td->tg_relation->rd_rel->relowner)
			return PointerGetDatum(td->tg_trigtuple);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("rows of kaireon.%s are written only by kaireon's audit triggers",
						RelationGetRelationName(td->tg_relation)),
				 errhint("Change an audited table; its trigger appends the audit row to the chain.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("kaireon.%s is append-only: %s is refused", RelationGetRelationName(td->tg_relation), what),
			 errdetail("The audit log is a hash chain; changing or removing a row would break it."),
			 errhint("Old rows are removed only by kaireon.purge_audit_chain (retention), which records an anchor.")));
	return PointerGetDatum(NULL);
}

/*
 * Trigger of kaireon.audit_chain_heads and kaireon.platform_audit_chain_head
 * (BEFORE INSERT OR UPDATE OR DELETE per row, and BEFORE TRUNCATE): only
 * kaireon moves a chain's head, acting as the owner of the log (chain.c), which
 * owns the heads too.  Everyone else is refused, but superusers, who restore
 * the heads with the log (and who could switch the trigger off anyway: what
 * verification with a kept digest finds).
 */
Datum
kaireon_audit_heads_guard(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event))
		elog(ERROR, "audit_heads_guard must be a BEFORE trigger");
	if (superuser() || GetUserId() == td->tg_relation->rd_rel->relowner)
		return PointerGetDatum(TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple);
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
		what = "TRUNCATE";
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
		what = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		what = "DELETE";
	else
		what = "INSERT";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("kaireon.%s is written only by kaireon: %s is refused",
					RelationGetRelationName(td->tg_relation), what),
			 errdetail("A chain's head names its last row; moving it would break the tenant's later appends or hide removed rows."),
			 errhint("Change an audited table; kaireon moves the head when the transaction commits.")));
	return PointerGetDatum(NULL);
}
