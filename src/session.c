/*
 * session.c
 *	  The session context settings (kaireon.tenant_id, kaireon.pinned_tenant_id,
 *	  kaireon.user_id, kaireon.request_id) and the tenant access checks built
 *	  on them.
 *
 * Row level security on every tenant table compares tenant_id with
 * kaireon.current_tenant_id().  A DBA may pin a role to one tenant with
 * ALTER ROLE r SET kaireon.pinned_tenant_id = 't' (superuser-only setting): the
 * pinned tenant then wins over kaireon.tenant_id, and the check hook refuses
 * to set kaireon.tenant_id to any other tenant.  Functions that run as their
 * owner (SECURITY DEFINER) call kaireon_check_tenant_access() so they apply
 * the same rule to the calling role.
 *
 * While a tenant's stored SQL runs (confine.c), the session is confined to
 * that tenant: kaireon.current_tenant_id() answers it whatever the settings
 * say, kaireon.tenant_id cannot be changed, and kaireon_check_tenant_access()
 * refuses every other tenant whoever the outer user is (a superuser's
 * campaign must not lend its rights to the tenant's query).
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "kaireon.h"

static char *kaireon_tenant_id = NULL;
static char *kaireon_pinned_tenant_id = NULL;
static char *kaireon_user_id = NULL;
static char *kaireon_request_id = NULL;

/* The tenant a running stored query is confined to (confine.c), or NULL. */
static const char *kaireon_confined_tenant = NULL;

PG_FUNCTION_INFO_V1(kaireon_current_tenant_id);
PG_FUNCTION_INFO_V1(kaireon_assert_tenant_access);

/* Check hook for kaireon.tenant_id: a pinned role may only name its own tenant. */
static bool
check_tenant_id(char **newval, void **extra, GucSource source)
{
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
	if (kaireon_pinned_tenant_id != NULL && kaireon_pinned_tenant_id[0] != '\0' &&
		strcmp(*newval, kaireon_pinned_tenant_id) != 0)
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("this role is pinned to tenant \"%s\" and cannot act for tenant \"%s\"",
						 kaireon_pinned_tenant_id, *newval);
		GUC_check_errhint("kaireon.pinned_tenant_id is set for the role by a superuser.");
		return false;
	}
	return true;
}

/* Register the session settings. */
void
kaireon_session_init(void)
{
	DefineCustomStringVariable("kaireon.pinned_tenant_id",
							   "Tenant a role is limited to (set with ALTER ROLE by a superuser).",
							   "When set, row level security and kaireon functions use this tenant and kaireon.tenant_id cannot name another.",
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
 * The tenant this session acts for: the tenant of a running stored query,
 * else the pinned tenant, else kaireon.tenant_id, else NULL.
 */
const char *
kaireon_current_tenant(void)
{
	if (kaireon_confined_tenant != NULL)
		return kaireon_confined_tenant;
	if (kaireon_pinned_tenant_id != NULL && kaireon_pinned_tenant_id[0] != '\0')
		return kaireon_pinned_tenant_id;
	if (kaireon_tenant_id != NULL && kaireon_tenant_id[0] != '\0')
		return kaireon_tenant_id;
	return NULL;
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
