/*
 * audit/access.c
 *	  Reading one audit chain: who may read it, whether it exists, its
 *	  committed end (for a digest), and the SQL pieces that select one chain.
 *	  Shared by verify.c and digest.c, below both.
 *
 * A tenant's chain may be read by whoever may act for the tenant
 * (kaireon_check_tenant_access); the chain of rows without a tenant only by
 * superusers and BYPASSRLS roles.  The functions that run SQL do so inside
 * SPI, as the owner of the log (kaireon_audit_switch_to_owner, chain.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "util/spi.h"
#include "security/session.h"
#include "audit/audit.h"

/* Raise 42501 unless the caller may see the chain (a tenant's, or the tenant-less one). */
void
kaireon_audit_check_chain_access(const char *tenant_id)
{
	Oid			caller = GetOuterUserId();

	if (tenant_id != NULL)
		kaireon_check_tenant_access(tenant_id);
	else if (!superuser_arg(caller) && !has_bypassrls_privilege(caller))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for the audit chain of rows without a tenant"),
				 errhint("Only superusers and BYPASSRLS roles may read it.")));
}

/* A text datum, or NULL, for SPI arguments. */
Datum
kaireon_audit_arg_text(const char *s, char *nulls, int i)
{
	nulls[i] = s == NULL ? 'n' : ' ';
	return s == NULL ? (Datum) 0 : CStringGetTextDatum(s);
}

/*
 * The condition selecting one chain in SPI queries of its log or head table
 * ($1 is the tenant id, null for the platform chain, whose tables hold it alone).
 */
const char *
kaireon_audit_chain_condition(const char *tenant_id)
{
	return tenant_id != NULL ? "tenant_id OPERATOR(pg_catalog.=) $1" : "$1::pg_catalog.text IS NULL";
}

/* The log table of a chain: kaireon.audit_logs, or kaireon.platform_audit_logs for the platform chain. */
const char *
kaireon_audit_log_table(const char *tenant_id)
{
	return tenant_id != NULL ? "kaireon.audit_logs" : "kaireon.platform_audit_logs";
}

/* The head table of a chain: kaireon.audit_chain_heads, or kaireon.platform_audit_chain_head. */
const char *
kaireon_audit_head_table(const char *tenant_id)
{
	return tenant_id != NULL ? "kaireon.audit_chain_heads" : "kaireon.platform_audit_chain_head";
}

/* The chain's name in messages: tenant "x", or the rows without a tenant. */
char *
kaireon_audit_chain_name(const char *tenant_id)
{
	return tenant_id ? psprintf("tenant \"%s\"", tenant_id) : pstrdup("rows without a tenant");
}

/*
 * Raise 42704 for a tenant with neither a row in kaireon.tenants nor an audit
 * chain (a deleted tenant keeps its chain, which still verifies).  Inside SPI,
 * as the owner of the log.
 */
void
kaireon_audit_require_chain(const char *tenant_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	bool		isnull;

	if (tenant_id == NULL)
		return;
	vals[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args("SELECT EXISTS (SELECT 1 FROM kaireon.tenants WHERE id OPERATOR(pg_catalog.=) $1)"
							   " OR EXISTS (SELECT 1 FROM kaireon.audit_chain_heads WHERE tenant_id OPERATOR(pg_catalog.=) $1)"
							   " OR EXISTS (SELECT 1 FROM kaireon.audit_logs WHERE tenant_id OPERATOR(pg_catalog.=) $1)",
							   1, types, vals, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up tenant \"%s\" failed", tenant_id);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist and has no audit chain", tenant_id),
				 errhint("Pass the id of a row of kaireon.tenants (a deleted tenant's chain stays and can be verified).")));
}

/*
 * The committed end of a chain for a digest: its head, after checking that the
 * chain's last row is the row the head names (XX001 otherwise, 55000 for a
 * chain without rows).  Inside SPI, as the owner of the log.
 */
void
kaireon_audit_chain_end(const char *tenant_id, int64 *last_id, int64 *last_seq, char *last_hash)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	char		nulls[1];
	char	   *sql;
	bool		isnull;
	bool		have_head;
	int64		head_id = 0;
	int64		head_seq = 0;
	char	   *head_hash = NULL;
	char	   *row_hash;

	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	sql = psprintf("SELECT last_id, last_seq, last_hash FROM %s WHERE %s",
				   kaireon_audit_head_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	if (kspi_execute_with_args(sql, 1, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit chain head failed");
	/* a head at 0 is a first append not committed yet: no rows */
	have_head = SPI_processed == 1 &&
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)) > 0;
	if (have_head)
	{
		head_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		head_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		head_hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	}
	sql = psprintf("SELECT id, chain_seq, integrity_hash FROM %s WHERE %s ORDER BY chain_seq DESC LIMIT 1",
				   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	if (kspi_execute_with_args(sql, 1, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit chain's last row failed");
	if (SPI_processed == 0 && !have_head)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the audit chain of %s has no rows yet", kaireon_audit_chain_name(tenant_id)),
				 errhint("A digest names a chain's last row; take one after the first audited change.")));
	if (SPI_processed == 1)
	{
		*last_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		*last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		row_hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	}
	else
		row_hash = NULL;
	if (!have_head || row_hash == NULL || head_hash == NULL || *last_id != head_id ||
		*last_seq != head_seq || strcmp(row_hash, head_hash) != 0 || strlen(row_hash) != KC_SHA256_HEX_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit chain of %s does not end where its head says; no digest was made",
						kaireon_audit_chain_name(tenant_id)),
				 errhint("Investigate with kaireon.verify_audit_chain (and a digest kept before, if any).")));
	strcpy(last_hash, row_hash);
}
