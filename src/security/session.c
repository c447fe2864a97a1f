/*
 * session.c
 *	  The session context settings (kaireon.tenant_id, kaireon.pinned_tenant_id,
 *	  kaireon.user_id, kaireon.request_id), the tenant pins, and the tenant
 *	  access checks built on them.
 *
 * Row level security on every tenant table compares tenant_id with
 * kaireon.current_tenant_id(), which resolves the tenant here on every call.
 *
 * Tenant pins.  A role pinned to a tenant (a row of kaireon.tenant_pins, made
 * with kaireon.pin_role; or, the older way, ALTER ROLE r SET
 * kaireon.pinned_tenant_id = 't') may only act for that tenant, and so may
 * every role that is a member of it (directly or not, whatever INHERIT says).
 * The pin is checked against the roles the session acts as at the moment of
 * each resolution: the current user (SECURITY DEFINER changes it), the outer
 * user (SET ROLE) and the session user (SET SESSION AUTHORIZATION), so neither
 * SET ROLE, SET SESSION AUTHORIZATION, a login role that is a member of a
 * pinned role nor a pooled connection escapes it.  A pinned session's tenant
 * is the pinned tenant; kaireon.tenant_id naming another one is refused (when
 * it is SET, and again when the tenant is resolved, since SET ROLE may come
 * later); a session pinned to two different tenants is refused everything.
 * Superusers and BYPASSRLS roles are never limited by a pin (row level
 * security does not apply to them); a SET ROLE from them to a pinned role is.
 * The session value of kaireon.pinned_tenant_id (superuser-only) still pins
 * the session, as it always did.
 *
 * Protocol of the caches (per backend): the pins (kaireon.tenant_pins plus the
 * kaireon.pinned_tenant_id entries of pg_db_role_setting for this database)
 * are read once and kept until a relcache invalidation of kaireon.tenant_pins
 * (its trigger kaireon_internal._tenant_pins_changed sends one at commit of every
 * change); the pin of each role is resolved once and kept until the pins are
 * reloaded or a role or membership changes (syscache callbacks on pg_authid
 * and pg_auth_members).  A resolution is then a few OID comparisons.  Changes
 * of pg_db_role_setting send no invalidation: an ALTER ROLE ... SET
 * kaireon.pinned_tenant_id reaches running sessions with the next reload
 * (new sessions at once).
 *
 * Functions that run as their owner (SECURITY DEFINER) call
 * kaireon_check_tenant_access() so they apply the same rule to the calling
 * role.
 *
 * While a tenant's stored SQL runs (confine.c), the session is confined to
 * that tenant, before any pin: kaireon.current_tenant_id() answers it whatever
 * the settings say, kaireon.tenant_id cannot be changed, and
 * kaireon_check_tenant_access() refuses every other tenant whoever the outer
 * user is (a superuser's campaign must not lend its rights to the tenant's
 * query).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_db_role_setting.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "util/inval.h"
#include "util/spi.h"
#include "security/session.h"

static char *kaireon_tenant_id = NULL;
static char *kaireon_pinned_tenant_id = NULL;
static char *kaireon_user_id = NULL;
static char *kaireon_request_id = NULL;

/* The tenant a running stored query is confined to (confine.c), or NULL. */
static const char *kaireon_confined_tenant = NULL;

PG_FUNCTION_INFO_V1(kaireon_current_tenant_id);
PG_FUNCTION_INFO_V1(kaireon_assert_tenant_access);
PG_FUNCTION_INFO_V1(kaireon_set_tenant);
PG_FUNCTION_INFO_V1(kaireon_tenant_pins_changed);

/* One pin: a role and its tenant (legacy: from ALTER ROLE ... SET kaireon.pinned_tenant_id). */
typedef struct TenantPin
{
	Oid			role;
	const char *tenant;			/* interned: never freed */
	bool		legacy;
} TenantPin;

/* The resolved pin of one role (pin NULL: not pinned), valid for one generation. */
typedef struct RolePin
{
	Oid			role;
	uint64		generation;
	const TenantPin *pin;
	const TenantPin *conflict;	/* a second pin to another tenant */
} RolePin;

/* Where a session's pin comes from. */
typedef enum PinKind
{
	PIN_TABLE,					/* a row of kaireon.tenant_pins */
	PIN_ROLE_SETTING,			/* ALTER ROLE ... SET kaireon.pinned_tenant_id */
	PIN_SESSION_SETTING			/* the session's value of kaireon.pinned_tenant_id */
} PinKind;

/* The pin of the session at one moment. */
typedef struct SessionPin
{
	const char *tenant;			/* NULL: not pinned */
	Oid			role;			/* the session's role the pin limits */
	Oid			via;			/* the pinned role (role itself or one it is a member of) */
	PinKind		kind;
	const char *other_tenant;	/* a conflicting pin, or NULL */
	Oid			other_role;
	Oid			other_via;
	PinKind		other_kind;
} SessionPin;

#define ROLE_PIN_SLOTS 8

static MemoryContext pins_cxt = NULL;
static List *interned_tenants = NIL;
static TenantPin *pins = NULL;
static int	npins = 0;
static bool pins_stale = true;
static uint64 pins_invalidations = 0;
static bool pins_loaded_in_parallel = false;
static Oid	pins_relid = InvalidOid;
static uint64 pin_generation = 1;
static RolePin role_pins[ROLE_PIN_SLOTS];
static int	role_pins_next = 0;
static bool session_ready = false;

/* Relcache callback: reload the pins when kaireon.tenant_pins changed (or may exist now). */
static void
pins_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || !OidIsValid(pins_relid) || relid == pins_relid)
	{
		pins_stale = true;
		pins_invalidations++;
		pin_generation++;
	}
}

/* Syscache callback (pg_authid, pg_auth_members): resolve every role's pin again. */
static void
pins_role_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	pin_generation++;
}

/* Transaction callback: pins read with a parallel query's snapshot are reread afterwards. */
static void
pins_xact_cb(XactEvent event, void *arg)
{
	if (pins_loaded_in_parallel &&
		(event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT))
	{
		pins_loaded_in_parallel = false;
		pins_stale = true;
		pins_invalidations++;
		pin_generation++;
	}
}

/* A tenant id kept for the life of the backend (pointers to it outlive reloads). */
static const char *
intern_tenant(const char *tenant)
{
	ListCell   *lc;
	MemoryContext old;
	char	   *copy;

	foreach(lc, interned_tenants)
		if (strcmp((const char *) lfirst(lc), tenant) == 0)
		return (const char *) lfirst(lc);
	old = MemoryContextSwitchTo(TopMemoryContext);
	copy = pstrdup(tenant);
	interned_tenants = lappend(interned_tenants, copy);
	MemoryContextSwitchTo(old);
	return copy;
}

/* Append a pin to the list being loaded. */
static List *
add_pin(List *list, Oid role, const char *tenant, bool legacy)
{
	TenantPin  *p;

	if (!OidIsValid(role) || tenant == NULL || tenant[0] == '\0')
		return list;
	p = MemoryContextAlloc(pins_cxt, sizeof(TenantPin));
	p->role = role;
	p->tenant = intern_tenant(tenant);
	p->legacy = legacy;
	return lappend(list, p);
}

/* The rows of kaireon.tenant_pins (none when the extension is not in this database). */
static List *
load_table_pins(List *list)
{
	Oid			nsp = get_namespace_oid("kaireon", true);
	Relation	rel;
	TupleDesc	desc;
	AttrNumber	att_role;
	AttrNumber	att_tenant;
	Snapshot	snap;
	TableScanDesc scan;
	TupleTableSlot *slot;

	pins_relid = OidIsValid(nsp) ? get_relname_relid("tenant_pins", nsp) : InvalidOid;
	if (!OidIsValid(pins_relid))
		return list;
	rel = table_open(pins_relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	att_role = SPI_fnumber(desc, "role");
	att_tenant = SPI_fnumber(desc, "pinned_tenant_id");
	if (att_role <= 0 || att_tenant <= 0)
		elog(ERROR, "kaireon.tenant_pins lacks its columns role and pinned_tenant_id");

	/*
	 * The latest committed pins (invalidations are sent after commit, so a
	 * reload after one sees the change); a parallel query may not take a new
	 * snapshot, so it reads with its own and the pins are reread after it.
	 */
	if (IsInParallelMode())
	{
		snap = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetCatalogSnapshot(pins_relid));
		pins_loaded_in_parallel = true;
	}
	else
		snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		rnull;
		bool		tnull;
		Datum		r = slot_getattr(slot, att_role, &rnull);
		Datum		t = slot_getattr(slot, att_tenant, &tnull);

		if (!rnull && !tnull)
			list = add_pin(list, DatumGetObjectId(r), TextDatumGetCString(t), false);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return list;
}

/* The ALTER ROLE r [IN DATABASE this one] SET kaireon.pinned_tenant_id entries. */
static List *
load_setting_pins(List *list)
{
	Relation	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;
	static const char prefix[] = "kaireon.pinned_tenant_id=";

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_db_role_setting s = (Form_pg_db_role_setting) GETSTRUCT(tup);
		bool		isnull;
		Datum		d;
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		if (!OidIsValid(s->setrole) ||
			(OidIsValid(s->setdatabase) && s->setdatabase != MyDatabaseId))
			continue;
		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig, RelationGetDescr(rel), &isnull);
		if (isnull)
			continue;
		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *item;

			if (nulls[i])
				continue;
			item = TextDatumGetCString(elems[i]);
			if (pg_strncasecmp(item, prefix, sizeof(prefix) - 1) == 0)
				list = add_pin(list, s->setrole, item + sizeof(prefix) - 1, true);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return list;
}

/* Read the pins again when they may have changed. */
static void
ensure_pins(void)
{
	List	   *list = NIL;
	ListCell   *lc;
	int			i = 0;
	uint64		invalidations = pins_invalidations;

	if (!pins_stale)
		return;
	if (pins_cxt == NULL)
		pins_cxt = AllocSetContextCreate(TopMemoryContext, "kaireon tenant pins", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(pins_cxt);
	pins = NULL;
	npins = 0;
	pin_generation++;
	/* pins_stale stays set if the load fails: no call ever uses a partial list */
	list = load_table_pins(list);
	list = load_setting_pins(list);
	pins = MemoryContextAlloc(pins_cxt, sizeof(TenantPin) * Max(list_length(list), 1));
	foreach(lc, list)
		pins[i++] = *(TenantPin *) lfirst(lc);
	npins = i;
	list_free(list);
	/* an invalidation that arrived during the load makes the next call reload */
	pins_stale = (pins_invalidations != invalidations);
}

/* The pin of one role: the pins of every role it is a member of (itself included). */
static const RolePin *
role_pin(Oid role)
{
	RolePin    *e;
	uint64		generation = pin_generation;

	for (int i = 0; i < ROLE_PIN_SLOTS; i++)
		if (role_pins[i].role == role && role_pins[i].generation == generation && OidIsValid(role))
			return &role_pins[i];
	e = &role_pins[role_pins_next];
	role_pins_next = (role_pins_next + 1) % ROLE_PIN_SLOTS;
	e->role = role;
	e->generation = 0;
	e->pin = NULL;
	e->conflict = NULL;
	if (npins > 0 && !superuser_arg(role) && !has_bypassrls_privilege(role))
	{
		for (int i = 0; i < npins; i++)
		{
			if (pins[i].role != role && !is_member_of_role_nosuper(role, pins[i].role))
				continue;
			if (e->pin == NULL)
				e->pin = &pins[i];
			else if (e->conflict == NULL && strcmp(e->pin->tenant, pins[i].tenant) != 0)
				e->conflict = &pins[i];
		}
	}
	/* valid only if no invalidation arrived meanwhile */
	e->generation = generation;
	return e;
}

/* Merge one pin into the session's pin (the first one found wins; another tenant is a conflict). */
static void
merge_pin(SessionPin *sp, const char *tenant, Oid role, Oid via, PinKind kind)
{
	if (tenant == NULL)
		return;
	if (sp->tenant == NULL)
	{
		sp->tenant = tenant;
		sp->role = role;
		sp->via = via;
		sp->kind = kind;
	}
	else if (sp->other_tenant == NULL && strcmp(sp->tenant, tenant) != 0)
	{
		sp->other_tenant = tenant;
		sp->other_role = role;
		sp->other_via = via;
		sp->other_kind = kind;
	}
}

/* The session's pin now: of its current, outer and session user, and the pinned_tenant_id setting. */
static void
session_pin(SessionPin *sp)
{
	Oid			roles[3];

	memset(sp, 0, sizeof(*sp));
	if (IsTransactionState())
	{
		roles[0] = GetUserId();
		roles[1] = GetOuterUserId();
		roles[2] = GetSessionUserId();
		ensure_pins();
		for (int i = 0; i < 3; i++)
		{
			const RolePin *rp;

			if (!OidIsValid(roles[i]) || (i > 0 && roles[i] == roles[i - 1]) || (i == 2 && roles[2] == roles[0]))
				continue;
			rp = role_pin(roles[i]);
			if (rp->pin != NULL)
				merge_pin(sp, rp->pin->tenant, roles[i], rp->pin->role,
						  rp->pin->legacy ? PIN_ROLE_SETTING : PIN_TABLE);
			if (rp->conflict != NULL)
				merge_pin(sp, rp->conflict->tenant, roles[i], rp->conflict->role,
						  rp->conflict->legacy ? PIN_ROLE_SETTING : PIN_TABLE);
		}
	}
	if (kaireon_pinned_tenant_id != NULL && kaireon_pinned_tenant_id[0] != '\0')
		merge_pin(sp, kaireon_pinned_tenant_id, GetUserId(), InvalidOid, PIN_SESSION_SETTING);
}

/* Name of a role for a message (its OID if it is gone). */
static const char *
role_name(Oid role)
{
	char	   *name = OidIsValid(role) ? GetUserNameFromId(role, true) : NULL;

	return name ? name : psprintf("%u", role);
}

/* Where a pin comes from, for a message (a sentence). */
static const char *
pin_source(Oid role, Oid via, PinKind kind)
{
	const char *how = kind == PIN_TABLE ? "kaireon.pin_role" : "ALTER ROLE ... SET kaireon.pinned_tenant_id";

	if (kind == PIN_SESSION_SETTING)
		return "The session sets kaireon.pinned_tenant_id.";
	if (via == role)
		return psprintf("Role \"%s\" is pinned by %s.", role_name(via), how);
	return psprintf("Role \"%s\" is a member of role \"%s\", which is pinned by %s.",
					role_name(role), role_name(via), how);
}

/* The message of a session pinned to two tenants. */
static const char *
conflict_message(const SessionPin *sp)
{
	if (sp->role == sp->other_role)
		return psprintf("role \"%s\" is pinned to two tenants, \"%s\" and \"%s\", and may act for neither",
						role_name(sp->role), sp->tenant, sp->other_tenant);
	return psprintf("role \"%s\" is pinned to tenant \"%s\" and role \"%s\" to tenant \"%s\": the session may act for neither",
					role_name(sp->role), sp->tenant, role_name(sp->other_role), sp->other_tenant);
}

#define PIN_CONFLICT_HINT "A session may be pinned to one tenant only: remove one of the pins (kaireon.unpin_role) or the role membership that brings it."
#define PIN_MISMATCH_MSG "role \"%s\" is pinned to tenant \"%s\" and cannot act for tenant \"%s\""
#define PIN_MISMATCH_HINT "Set kaireon.tenant_id to '%s' or reset it; a superuser or BYPASSRLS role changes pins with kaireon.pin_role and kaireon.unpin_role."

/* Raise 42501 if the session is pinned to two tenants, or to another one than requested. */
static void
enforce_pin(const SessionPin *sp, const char *requested)
{
	if (sp->tenant == NULL)
		return;
	if (sp->other_tenant != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg_internal("%s", conflict_message(sp)),
				 errdetail_internal("%s %s", pin_source(sp->role, sp->via, sp->kind),
									pin_source(sp->other_role, sp->other_via, sp->other_kind)),
				 errhint(PIN_CONFLICT_HINT)));
	if (requested != NULL && strcmp(requested, sp->tenant) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg(PIN_MISMATCH_MSG, role_name(sp->role), sp->tenant, requested),
				 errdetail_internal("%s", pin_source(sp->role, sp->via, sp->kind)),
				 errhint(PIN_MISMATCH_HINT, sp->tenant)));
}

/* Check hook for kaireon.tenant_id: a pinned session may only name its own tenant. */
static bool
check_tenant_id(char **newval, void **extra, GucSource source)
{
	SessionPin	sp;

	if (kaireon_confined_tenant != NULL)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("kaireon.tenant_id cannot change while the stored SQL of tenant \"%s\" runs",
						 kaireon_confined_tenant);
		GUC_check_errhint("A tenant's stored query runs confined to its tenant.");
		return false;
	}
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (strlen(*newval) > 200)
	{
		GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
		GUC_check_errmsg("kaireon.tenant_id is longer than 200 characters");
		return false;
	}

	/*
	 * Only a SET in a running transaction looks the pins up (not the values
	 * of the configuration files or of ALTER ROLE at login, nor a parallel
	 * worker restoring the leader's settings, nor a value SET before the
	 * library was loaded, checked while _PG_init defines the setting); the
	 * resolution checks again
	 * anyway, since the roles may change after the SET.
	 */
	if (session_ready && source == PGC_S_SESSION && IsTransactionState() && !IsParallelWorker())
		session_pin(&sp);
	else
	{
		memset(&sp, 0, sizeof(sp));
		if (kaireon_pinned_tenant_id != NULL && kaireon_pinned_tenant_id[0] != '\0')
			merge_pin(&sp, kaireon_pinned_tenant_id, GetUserId(), InvalidOid, PIN_SESSION_SETTING);
	}
	if (sp.tenant != NULL && sp.other_tenant != NULL)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("%s", conflict_message(&sp));
		GUC_check_errdetail("%s %s", pin_source(sp.role, sp.via, sp.kind),
							pin_source(sp.other_role, sp.other_via, sp.other_kind));
		GUC_check_errhint(PIN_CONFLICT_HINT);
		return false;
	}
	if (sp.tenant != NULL && strcmp(*newval, sp.tenant) != 0)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg(PIN_MISMATCH_MSG, role_name(sp.role), sp.tenant, *newval);
		GUC_check_errdetail("%s", pin_source(sp.role, sp.via, sp.kind));
		GUC_check_errhint(PIN_MISMATCH_HINT, sp.tenant);
		return false;
	}
	return true;
}

/* Register the session settings. */
void
kaireon_session_init(void)
{
	kaireon_register_relcache_callback(pins_relcache_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, pins_role_cb, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, pins_role_cb, (Datum) 0);
	RegisterXactCallback(pins_xact_cb, NULL);
	DefineCustomStringVariable("kaireon.pinned_tenant_id",
							   "Tenant the session is limited to (superuser-only; prefer kaireon.pin_role).",
							   "When set, row level security and kaireon functions use this tenant and kaireon.tenant_id cannot name another. ALTER ROLE r SET kaireon.pinned_tenant_id also pins r like kaireon.pin_role does.",
							   &kaireon_pinned_tenant_id, "",
							   PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("kaireon.tenant_id",
							   "Tenant the session acts for; row level security shows only this tenant's rows.",
							   NULL,
							   &kaireon_tenant_id, "",
							   PGC_USERSET, 0, check_tenant_id, NULL, NULL);
	DefineCustomStringVariable("kaireon.user_id",
							   "Application user on whose behalf the session acts (recorded in audit rows).",
							   NULL,
							   &kaireon_user_id, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("kaireon.request_id",
							   "Request id of the current application request (recorded in audit rows).",
							   NULL,
							   &kaireon_request_id, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	session_ready = true;
}

/*
 * Reserve the kaireon. prefix: unknown kaireon.* settings are refused from now
 * on.  Called by _PG_init after every module has defined its settings, since
 * reserving removes the placeholders of settings not yet defined (and with
 * them the values postgresql.conf gave them).
 */
void
kaireon_session_reserve_prefix(void)
{
	MarkGUCPrefixReserved("kaireon");
}

/*
 * Confine the session to tenant_id while a tenant's stored SQL runs (NULL:
 * end it).  Returns the previous confinement, for nesting.
 */
const char *
kaireon_confine_tenant(const char *tenant_id)
{
	const char *prev = kaireon_confined_tenant;

	kaireon_confined_tenant = tenant_id;
	return prev;
}

/*
 * The tenant the session is held to: the one a running stored query is confined
 * to, else the pinned one (42501 on conflicting pins, or when requested, if not
 * NULL, names another tenant); NULL when neither holds the session.
 */
static const char *
held_tenant(const char *requested)
{
	SessionPin	sp;

	if (kaireon_confined_tenant != NULL)
		return kaireon_confined_tenant;
	session_pin(&sp);
	if (sp.tenant == NULL)
		return NULL;
	enforce_pin(&sp, requested);
	return sp.tenant;
}

/*
 * The tenant this session acts for: the tenant of a running stored query,
 * else its pinned tenant, else kaireon.tenant_id, else NULL.  Raises 42501
 * when the session is pinned to two tenants, or when kaireon.tenant_id names
 * another tenant than the pinned one (it was set before a SET ROLE or SET
 * SESSION AUTHORIZATION to a pinned role).  The result stays valid until the
 * settings change.
 */
const char *
kaireon_current_tenant(void)
{
	const char *requested = (kaireon_tenant_id != NULL && kaireon_tenant_id[0] != '\0') ? kaireon_tenant_id : NULL;
	const char *held = held_tenant(requested);

	return held != NULL ? held : requested;
}

/*
 * The one tenant the session is held to, whatever the role's other rights: the
 * tenant a running stored query is confined to, else the pinned tenant; NULL
 * when neither holds it.
 */
const char *
kaireon_restricted_tenant(void)
{
	return held_tenant(NULL);
}

/*
 * Raise 42501 unless the calling role may act for tenant_id: superusers and
 * BYPASSRLS roles may act for any tenant, others only for their current one.
 * The calling role is the outer user, so SECURITY DEFINER does not hide it.
 */
void
kaireon_check_tenant_access(const char *tenant_id)
{
	Oid			caller = GetOuterUserId();
	const char *current;

	if (kaireon_confined_tenant != NULL)
	{
		if (strcmp(kaireon_confined_tenant, tenant_id) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied for tenant \"%s\": the stored SQL of tenant \"%s\" is running",
							tenant_id, kaireon_confined_tenant),
					 errhint("A tenant's stored query runs confined to its tenant.")));
		return;
	}
	if (superuser_arg(caller) || has_bypassrls_privilege(caller))
		return;
	current = kaireon_current_tenant();
	if (current == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for tenant \"%s\": the session has no tenant", tenant_id),
				 errhint("SET kaireon.tenant_id = '%s' first, or use a role with BYPASSRLS.", tenant_id)));
	if (strcmp(current, tenant_id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for tenant \"%s\": the session acts for tenant \"%s\"",
						tenant_id, current),
				 errhint("A role may only act for the tenant in kaireon.tenant_id.")));
}

/* kaireon.current_tenant_id(): the tenant row level security shows, or NULL. */
Datum
kaireon_current_tenant_id(PG_FUNCTION_ARGS)
{
	const char *t = kaireon_current_tenant();

	if (t == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(t));
}

/* kaireon.assert_tenant_access(tenant_id): the check above, for SQL-language functions. */
Datum
kaireon_assert_tenant_access(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be null"),
				 errhint("Pass the id of a row of kaireon.tenants.")));
	kaireon_check_tenant_access(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/*
 * With Citus: the same settings as SET LOCAL statements, which Citus sends to
 * the workers of the transaction (citus.propagate_set_commands = 'local', for
 * this transaction too: a session opened before kaireon.distribute() made it
 * the database's default has it off), so a call delegated to a worker acts for
 * the tenant too (docs/scale-out.md).
 */
static void
propagate_local_settings(const char *tenant, const char *user, const char *request)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "kaireon: SPI_connect failed");
	if (kspi_execute(psprintf("SET LOCAL citus.propagate_set_commands = 'local'; "
							  "SET LOCAL kaireon.tenant_id = %s; SET LOCAL kaireon.user_id = %s; "
							  "SET LOCAL kaireon.request_id = %s",
							  quote_literal_cstr(tenant), quote_literal_cstr(user), quote_literal_cstr(request)),
					 false, 0) < 0)
		elog(ERROR, "kaireon: could not set the tenant for the workers");
	SPI_finish();
}

/*
 * kaireon.set_tenant(tenant_id, user_id, request_id, local): set the whole
 * session context at once, for this transaction only by default (the way that
 * is safe behind a transaction-pooling connection pooler).  user_id and
 * request_id are set too, to '' when not given, so that no value of an
 * earlier request survives.  Returns the tenant now in effect.
 */
Datum
kaireon_set_tenant(PG_FUNCTION_ARGS)
{
	char	   *tenant;
	bool		local = PG_ARGISNULL(3) ? true : PG_GETARG_BOOL(3);
	GucAction	action = local ? GUC_ACTION_LOCAL : GUC_ACTION_SET;
	GucContext	context = superuser() ? PGC_SUSET : PGC_USERSET;
	const char *current;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be null"),
				 errhint("Pass the id of a row of kaireon.tenants.")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (tenant[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_id must not be empty"),
				 errhint("Pass the id of a row of kaireon.tenants; to act for no tenant, end the transaction (local) or RESET kaireon.tenant_id.")));
	if (local && !IsTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
				 errmsg("kaireon.set_tenant('%s', local => true) outside a transaction block would have no effect", tenant),
				 errhint("Call it after BEGIN, in the transaction that uses the tenant; local => false sets it for the session (not safe behind a transaction-pooling pooler).")));
	(void) set_config_option("kaireon.tenant_id", tenant, context, PGC_S_SESSION, action, true, 0, false);
	(void) set_config_option("kaireon.user_id", PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1)),
							 context, PGC_S_SESSION, action, true, 0, false);
	(void) set_config_option("kaireon.request_id", PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2)),
							 context, PGC_S_SESSION, action, true, 0, false);
	if (local && kspi_citus_installed())
		propagate_local_settings(tenant, PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1)),
								 PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2)));
	current = kaireon_current_tenant();
	if (current == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(current));
}

/* AFTER trigger on kaireon.tenant_pins: every backend reloads the pins once this commits. */
Datum
kaireon_tenant_pins_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "kaireon_internal._tenant_pins_changed must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
