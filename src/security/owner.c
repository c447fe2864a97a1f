/*
 * security/owner.c
 *	  Acting as the owner of one of kaireon's tables, like a SECURITY DEFINER
 *	  function: the lookups that must cross tenants (authentication,
 *	  secrets.c) and the audit chain, which application roles may neither read
 *	  nor write directly (audit/chain.c).
 *
 * Protocol: the caller saves the current user with this call and restores it
 * (SetUserIdAndSecContext(save_userid, save_sec)) when done; an error
 * restores it too, as the abort of the (sub)transaction resets the user.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/syscache.h"

#include "security/owner.h"

/* Act as the owner of relation relid until the caller restores the saved user. */
void
kaireon_switch_to_owner(Oid relid, Oid *save_userid, int *save_sec)
{
	HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tp))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(owner, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
}
