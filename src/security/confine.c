/*
 * confine.c
 *	  Running SQL a tenant stored (a campaign's customer query, the view of a
 *	  published segment) with no more rights than that tenant, whoever calls
 *	  (docs/arbitration.md, "Stored SQL runs confined").
 *
 * Protocol.  kaireon_check_stored_select() parses the text alone and accepts
 * exactly one plain SELECT (no INTO, no FOR UPDATE/SHARE, no data-modifying
 * WITH), when the text is written (kaireon_internal._stored_select_trigger on
 * runs.customer_query) and again before it runs; the caller then splices it
 * into its own query.  Inside fn, kaireon_confined_cursor() opens that query
 * as a read-only cursor after refusing any relation of another tenant's data
 * schema (directly or through views).
 * kaireon_run_confined(tenant, fn, arg) runs fn the way PostgreSQL runs index
 * expressions and ANALYZE functions of another role's table:
 *
 *	 - as the role kaireon_confined (created by the extension: NOLOGIN, not a
 *	   superuser, not BYPASSRLS, member of no role, SELECT on the tenant tables
 *	   that row level security covers except those holding secrets, EXECUTE on
 *	   no kaireon function but the public ones), switched with
 *	   SetUserIdAndSecContext and SECURITY_RESTRICTED_OPERATION (no SET ROLE,
 *	   no SET SESSION AUTHORIZATION, no temporary objects);
 *	 - with the session confined to the tenant (session.c):
 *	   kaireon.current_tenant_id() answers it, so row level security shows
 *	   that tenant's rows only; kaireon.tenant_id cannot change; kaireon
 *	   functions refuse every other tenant;
 *	 - in a new GUC nesting level with search_path pinned to
 *	   pg_catalog, kaireon_t_<slug>, pg_temp and row_security on; every
 *	   setting the stored SQL changes is rolled back when fn returns;
 *	 - with no advisory lock function (taking, trying, releasing one, at
 *	   session or transaction level, or all of them): a session lock would
 *	   outlive the stored SQL in the session that ran it (a maintenance
 *	   worker, an operator's session), hold up kaireon's own jobs (their
 *	   lock is pg_advisory_lock(n, 0)) or another tenant's keys, and the
 *	   releases would drop the caller's; the object access hook refuses
 *	   (42501) each call of one that the executor prepares while confined
 *	   (OAT_FUNCTION_EXECUTE, which it raises for every function it
 *	   prepares, built-in ones too, beside its own permission check).  A
 *	   call prepared before the confinement is not seen there (PL/pgSQL
 *	   keeps a simple expression prepared for the rest of its transaction:
 *	   a tenant's function with its own search_path that the caller ran
 *	   unconfined earlier in the same transaction can reuse one), so the
 *	   backend's advisory locks of the SQL functions are also compared
 *	   before and after fn (its own entries of the shared lock table, each
 *	   partition's lock held shared while read): a session hold of a mode
 *	   it did not hold before is released (also when fn fails, after the
 *	   lock it was waiting for is settled), and any lock taken or released
 *	   is refused (42501) once the caller's state is back.  A mode the
 *	   backend held before is not looked into (the table counts no holds).
 *
 * The role is checked on every use: if someone made it a superuser,
 * BYPASSRLS, CREATEROLE, REPLICATION or LOGIN, granted it membership in
 * another role or another role membership in it, nothing runs (42501).
 * fn must run its queries read-only (SPI read_only) and finish them before it
 * returns (no cursor may outlive the confinement).  On error the transaction
 * or subtransaction abort restores the user id and the settings; the
 * confinement of the session is ended here.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/plancache.h"
#include "utils/syscache.h"

#include "util/spi.h"
#include "security/confine.h"
#include "security/session.h"

PG_FUNCTION_INFO_V1(kaireon_stored_select_trigger);

/* The role stored SQL runs as. */
#define CONFINED_ROLE "kaireon_confined"

/* While confined: the tenant and its data schema (kaireon_t_<slug>). */
static const char *confined_tenant = NULL;
static const char *confined_schema = NULL;

static object_access_hook_type prev_object_access_hook = NULL;

/* The advisory lock functions (pg_catalog's, by their fixed oids): none may run while confined. */
static const Oid advisory_lock_functions[] = {
	F_PG_ADVISORY_LOCK_INT8, F_PG_ADVISORY_LOCK_SHARED_INT8, F_PG_TRY_ADVISORY_LOCK_INT8,
	F_PG_TRY_ADVISORY_LOCK_SHARED_INT8, F_PG_ADVISORY_UNLOCK_INT8, F_PG_ADVISORY_UNLOCK_SHARED_INT8,
	F_PG_ADVISORY_LOCK_INT4_INT4, F_PG_ADVISORY_LOCK_SHARED_INT4_INT4, F_PG_TRY_ADVISORY_LOCK_INT4_INT4,
	F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4, F_PG_ADVISORY_UNLOCK_INT4_INT4, F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4,
	F_PG_ADVISORY_UNLOCK_ALL,
	F_PG_ADVISORY_XACT_LOCK_INT8, F_PG_ADVISORY_XACT_LOCK_SHARED_INT8, F_PG_TRY_ADVISORY_XACT_LOCK_INT8,
	F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT8, F_PG_ADVISORY_XACT_LOCK_INT4_INT4,
	F_PG_ADVISORY_XACT_LOCK_SHARED_INT4_INT4, F_PG_TRY_ADVISORY_XACT_LOCK_INT4_INT4,
	F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT4_INT4
};

/*
 * object_access_hook: while confined, refuse (42501) a call of an advisory
 * lock function as the executor prepares it (see the file header).
 */
static void
confine_object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);
	if (access != OAT_FUNCTION_EXECUTE || confined_schema == NULL || classId != ProcedureRelationId)
		return;
	for (int i = 0; i < (int) lengthof(advisory_lock_functions); i++)
		if (objectId == advisory_lock_functions[i])
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("stored SQL of tenant \"%s\" may not use advisory locks: it calls %s",
							confined_tenant, format_procedure(objectId)),
					 errdetail("A lock taken there would outlive the tenant's SQL in the session that runs it, and a release would drop the caller's locks."),
					 errhint("Remove the call from the segment's view, the campaign's customer query or the extension point's function.")));
}

/* Load-time initialisation: the object access hook. */
void
kaireon_confine_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = confine_object_access;
}

/*
 * Refuse (22023) unless sql is exactly one plain SELECT: what stores it is
 * named by what ("the campaign's customer query").  A syntax error is
 * reported as the parser's (42601).
 */
void
kaireon_check_stored_select(const char *sql, const char *what)
{
	List	   *stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	SelectStmt *sel;
	ListCell   *lc;

	if (list_length(stmts) != 1 || !IsA(((RawStmt *) linitial(stmts))->stmt, SelectStmt))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be one SELECT statement, not %d statement%s%s", what, list_length(stmts),
						list_length(stmts) == 1 ? "" : "s",
						list_length(stmts) == 1 ? " of another kind" : ""),
				 errhint("Write a single SELECT whose first column is the customer id.")));
	sel = (SelectStmt *) ((RawStmt *) linitial(stmts))->stmt;
	if (sel->intoClause != NULL || sel->lockingClause != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a plain SELECT, without %s", what,
						sel->intoClause != NULL ? "INTO" : "FOR UPDATE or FOR SHARE"),
				 errhint("Stored SQL only reads.")));
	if (sel->withClause != NULL)
		foreach(lc, sel->withClause->ctes)
		{
			CommonTableExpr *cte = lfirst_node(CommonTableExpr, lc);

			if (!IsA(cte->ctequery, SelectStmt))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must be a plain SELECT: its WITH query \"%s\" modifies data", what, cte->ctename),
						 errhint("Stored SQL only reads.")));
		}
}

/*
 * kaireon_internal._stored_select_trigger(column): BEFORE INSERT OR UPDATE row trigger
 * refusing a value of the text column that is not one plain SELECT, when it
 * is written rather than when it runs.
 */
Datum
kaireon_stored_select_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	int			attno;
	bool		isnull;
	Datum		value;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || td->tg_trigger->tgnargs != 1)
		elog(ERROR, "kaireon: _stored_select_trigger must be a BEFORE row trigger with the column as argument");
	desc = RelationGetDescr(td->tg_relation);
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	attno = SPI_fnumber(desc, td->tg_trigger->tgargs[0]);
	if (attno <= 0)
		elog(ERROR, "kaireon: _stored_select_trigger: no column \"%s\"", td->tg_trigger->tgargs[0]);
	value = SPI_getbinval(tup, desc, attno, &isnull);
	if (!isnull)
		kaireon_check_stored_select(TextDatumGetCString(value),
									psprintf("%s.%s", RelationGetRelationName(td->tg_relation),
											 td->tg_trigger->tgargs[0]));
	return PointerGetDatum(tup);
}

/* The confined role's oid, after checking it has no more rights than it was created with. */
static Oid
confined_role(void)
{
	Oid			role = get_role_oid(CONFINED_ROLE, true);
	HeapTuple	tup;
	Form_pg_authid form;
	bool		risky;
	CatCList   *memberships;

	if (!OidIsValid(role))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("role \"%s\" does not exist, so a tenant's stored SQL cannot run", CONFINED_ROLE),
				 errhint("As a superuser, run SELECT kaireon_internal._grant_confined_role() (CREATE EXTENSION creates it).")));
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "kaireon: cache lookup failed for role %u", role);
	form = (Form_pg_authid) GETSTRUCT(tup);
	risky = form->rolsuper || form->rolbypassrls || form->rolcreaterole || form->rolreplication ||
		form->rolcanlogin;
	ReleaseSysCache(tup);
	/* member of no role (it would inherit more), and no role a member of it (could SET ROLE to it) */
	memberships = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(role));
	if (memberships->n_members > 0)
		risky = true;
	ReleaseSysCacheList(memberships);
	memberships = SearchSysCacheList1(AUTHMEMROLEMEM, ObjectIdGetDatum(role));
	if (memberships->n_members > 0)
		risky = true;
	ReleaseSysCacheList(memberships);
	if (risky)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" has more rights than a tenant's stored SQL may run with", CONFINED_ROLE),
				 errhint("It must be NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOREPLICATION, a member of no role "
						 "and have no members; fix it with ALTER ROLE and REVOKE.")));
	return role;
}

/* The name of a tenant's data schema, kaireon_t_<slug> (42704 for an unknown tenant). */
static char *
tenant_schema(const char *tenant_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	char	   *slug = NULL;

	args[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args("SELECT t.slug FROM kaireon.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1",
							   1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "kaireon: reading the tenant failed");
	if (SPI_processed == 1)
		slug = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (slug == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant_id),
				 errhint("Insert it into kaireon.tenants first.")));
	return psprintf("kaireon_t_%s", slug);
}

/* An advisory lock this backend holds: its tag and the modes it holds it in. */
typedef struct HeldAdvisory
{
	LOCKTAG		tag;
	LOCKMASK	modes;
} HeldAdvisory;

/* Is proclock an advisory lock the SQL functions take (field4: 1 for a bigint key, 2 for two int4s)? */
static inline bool
sql_advisory_lock(const PROCLOCK *proclock)
{
	const LOCKTAG *tag = &proclock->tag.myLock->tag;

	return tag->locktag_type == LOCKTAG_ADVISORY && tag->locktag_lockmethodid == USER_LOCKMETHOD &&
		(tag->locktag_field4 == 1 || tag->locktag_field4 == 2) && proclock->holdMask != 0;
}

/*
 * The advisory locks of the SQL functions this backend holds now, from its
 * own entries of the shared lock table: each partition with entries read
 * under its lock, shared, first counted, then copied once there is room (no
 * allocation under the lock; only this backend adds its advisory entries, so
 * the count holds).  A partition whose lock this backend already holds, as
 * an error may leave it, is skipped rather than waited for.  *n gets their
 * number.
 */
static HeldAdvisory *
held_advisory_locks(int *n)
{
	int			cap = 8;
	HeldAdvisory *held = palloc(sizeof(HeldAdvisory) * cap);

	*n = 0;
	for (int p = 0; p < NUM_LOCK_PARTITIONS; p++)
	{
		LWLock	   *partition = LockHashPartitionLockByIndex(p);
		SHM_QUEUE  *head = &MyProc->myProcLocks[p];
		PROCLOCK   *proclock;
		int			count = 0;

		/* an empty list needs no lock: only a lock this backend takes adds an advisory entry */
		if (SHMQueueNext(head, head, offsetof(PROCLOCK, procLink)) == NULL || LWLockHeldByMe(partition))
			continue;
		LWLockAcquire(partition, LW_SHARED);
		for (proclock = (PROCLOCK *) SHMQueueNext(head, head, offsetof(PROCLOCK, procLink));
			 proclock != NULL;
			 proclock = (PROCLOCK *) SHMQueueNext(head, &proclock->procLink, offsetof(PROCLOCK, procLink)))
			count += sql_advisory_lock(proclock);
		LWLockRelease(partition);
		if (count == 0)
			continue;
		if (*n + count > cap)
		{
			cap = *n + count;
			held = repalloc(held, sizeof(HeldAdvisory) * cap);
		}
		LWLockAcquire(partition, LW_SHARED);
		for (proclock = (PROCLOCK *) SHMQueueNext(head, head, offsetof(PROCLOCK, procLink));
			 proclock != NULL && *n < cap;
			 proclock = (PROCLOCK *) SHMQueueNext(head, &proclock->procLink, offsetof(PROCLOCK, procLink)))
			if (sql_advisory_lock(proclock))
			{
				held[*n].tag = proclock->tag.myLock->tag;
				held[*n].modes = proclock->holdMask;
				(*n)++;
			}
		LWLockRelease(partition);
	}
	return held;
}

/* The modes of lock tag in held (0: not held). */
static LOCKMASK
held_modes(const HeldAdvisory *held, int n, const LOCKTAG *tag)
{
	for (int i = 0; i < n; i++)
		if (memcmp(&held[i].tag, tag, sizeof(LOCKTAG)) == 0)
			return held[i].modes;
	return 0;
}

/*
 * Compare the backend's advisory locks with those it held before fn ran:
 * release the session-level holds of the modes it did not hold before, and
 * say whether any lock was taken or released meanwhile.  (A mode it held
 * before, at either level, is not looked into: the lock table keeps no count
 * of holds that could tell one more.)
 */
static bool
advisory_locks_changed(const HeldAdvisory *before, int nbefore)
{
	int			nafter;
	HeldAdvisory *after = held_advisory_locks(&nafter);
	bool		changed = false;

	for (int i = 0; i < nafter; i++)
	{
		LOCKMASK	added = after[i].modes & ~held_modes(before, nbefore, &after[i].tag);

		for (LOCKMODE mode = 1; mode <= MaxLockMode; mode++)
			if (added & LOCKBIT_ON(mode))
			{
				changed = true;
				/* a session hold is released; one of the transaction goes with its abort */
				while (LockHeldByMe(&after[i].tag, mode) && LockRelease(&after[i].tag, mode, true))
					;
			}
	}
	for (int i = 0; i < nbefore && !changed; i++)
		changed = (before[i].modes & ~held_modes(after, nafter, &before[i].tag)) != 0;
	pfree(after);
	return changed;
}

/* Refuse (42501) stored SQL of tenant_id that took or released an advisory lock (advisory_locks_changed). */
static void
refuse_advisory_change(const char *tenant_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("stored SQL of tenant \"%s\" took or released an advisory lock", tenant_id),
			 errdetail("A lock function prepared before the confinement (a PL/pgSQL expression the caller ran earlier in this transaction) was not refused when it ran; a session lock it took has been released."),
			 errhint("Remove the call from the segment's view, the campaign's customer query or the extension point's function.")));
}

/* Does this backend hold a lock partition's LWLock (as an error may leave one)? */
static bool
holds_partition_lock(void)
{
	for (int p = 0; p < NUM_LOCK_PARTITIONS; p++)
		if (LWLockHeldByMe(LockHashPartitionLockByIndex(p)))
			return true;
	return false;
}

/*
 * Run fn(arg) as kaireon_confined, confined to tenant_id (see the file
 * header).  Must be called inside an SPI connection.
 */
void
kaireon_run_confined(const char *tenant_id, KConfinedFn fn, void *arg)
{
	Oid			role = confined_role();
	char	   *schema = tenant_schema(tenant_id);
	char	   *path = psprintf("pg_catalog, %s, pg_temp", quote_identifier(schema));
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	const char *volatile prev_tenant;
	const char *volatile prev_ctenant = confined_tenant;
	const char *volatile prev_cschema = confined_schema;
	int			nheld;
	HeldAdvisory *held = held_advisory_locks(&nheld);	/* before any state is changed */
	volatile bool changed = false;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", path, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("row_security", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	prev_tenant = kaireon_confine_tenant(tenant_id);
	confined_tenant = tenant_id;
	confined_schema = schema;
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		fn(arg);
		changed = advisory_locks_changed(held, nheld);
	}
	PG_CATCH();
	{
		/* the caller again first: nothing below may leave the session confined */
		SetUserIdAndSecContext(save_userid, save_sec_context);
		kaireon_confine_tenant(prev_tenant);
		confined_tenant = prev_ctenant;
		confined_schema = prev_cschema;

		/*
		 * fn failed: a session lock it took is released all the same (its own
		 * error is the one reported); a lock granted while it waited is made
		 * its own first (LockErrorCleanup, which the abort would run later),
		 * interrupts held off meanwhile
		 */
		HOLD_INTERRUPTS();
		if (!holds_partition_lock())
		{
			LockErrorCleanup();
			(void) advisory_locks_changed(held, nheld);
		}
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	/* roll back every setting the stored SQL changed, then become the caller again */
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	kaireon_confine_tenant(prev_tenant);
	confined_tenant = prev_ctenant;
	confined_schema = prev_cschema;
	if (changed)
		refuse_advisory_change(tenant_id);
}

/*
 * Open a read-only cursor on sql inside kaireon_run_confined, after refusing
 * (42501) a query that names a relation of another tenant's data schema
 * (directly or through a view; row level security would show it no rows
 * anyway).
 */
Portal
kaireon_confined_cursor(const char *name, const char *sql)
{
	SPIPlanPtr	plan;
	ListCell   *lc,
			   *lr;

	if (confined_schema == NULL)
		elog(ERROR, "kaireon: kaireon_confined_cursor called outside kaireon_run_confined");
	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "kaireon: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);

		foreach(lr, ps->relationOids)
		{
			Oid			rel = lfirst_oid(lr);
			char	   *nsp = get_namespace_name(get_rel_namespace(rel));

			if (nsp != NULL && strncmp(nsp, "kaireon_t_", 10) == 0 && strcmp(nsp, confined_schema) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("the stored SQL of tenant \"%s\" may not read %s.%s, another tenant's data",
								confined_tenant, nsp, get_rel_name(rel)),
						 errhint("Stored SQL reads its own tenant's data schema %s and kaireon tables only.",
								 confined_schema)));
		}
	}
	return SPI_cursor_open(name, plan, NULL, NULL, true);
}
