/*
 * audit/verify.c
 *	  Verification of an audit chain (kaireon.verify_audit_chain), removal of
 *	  a chain's oldest rows by retention (kaireon.purge_audit_chain) and the
 *	  canonical form of one row (kaireon.audit_canonical).
 *
 * Verification walks the chain's rows in chain_seq order (the chain's order;
 * ids only name rows) through a cursor of its log table (audit_logs with
 * tenant_id = $1, so that on a Citus cluster it reads the tenant's shard, or
 * platform_audit_logs), under the statement's snapshot, recomputing each row's
 * hash (chain.c) and checking, in this order:
 *
 *	 hash_mismatch		  the row's fields do not hash to its integrity_hash
 *	 gap				  its chain_seq skips numbers: rows before it are missing
 *	 chain_link_mismatch  its prev_hash is not the previous row's integrity_hash,
 *						  or it lies beyond the chain head
 *
 * and at the end of the chain that the head (kaireon.audit_chain_heads) agrees
 * with the last row (a missing last row is a gap at the head's last_id).  The
 * first row of a chain links to 64 zeros, or, after retention removed a prefix,
 * to the hash recorded by the anchor row that retention appended.
 *
 * With a kept digest (digest.c) it also checks that the chain still holds
 * the digest's row: the row at the digest's chain_seq, with its id and hash
 * (digest_mismatch when it is gone or differs: a removed tail, a rewritten
 * chain, whatever the head says).  When retention removed the digest's row, the
 * anchor's record of the last removed row stands in for it if it is that row;
 * an older digest predates the retained chain and cannot be checked (a status
 * of its own, not a finding of tampering).  A tenant with neither a row in
 * kaireon.tenants nor a chain is refused (42704), rather than found intact.
 *
 * Purging locks the chain's head row as an append does (chain.c), verifies the prefix it
 * is about to remove (a broken chain is kept as evidence), deletes it and
 * appends an anchor row naming the last removed row's id, sequence number and
 * hash.  The guard trigger of audit_logs lets a DELETE through only while
 * kaireon_audit_purging is set here.
 */
#include "postgres.h"

#include "util/json.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "util/spi.h"
#include "audit/audit.h"

PG_FUNCTION_INFO_V1(kaireon_verify_audit_chain);
PG_FUNCTION_INFO_V1(kaireon_verify_audit_chain_0_2);

/*
 * The SQL signatures of kaireon.verify_audit_chain, one C symbol each (as
 * pg_stat_statements versions its functions): an older release's SQL names
 * its own symbol, which keeps reading its own arguments and returning its own
 * columns until ALTER EXTENSION kaireon UPDATE points the SQL at the new one.
 */
typedef enum VerifyApi
{
	VERIFY_API_0_1,				/* (tenant_id, from_id, max_rows): 6 columns */
	VERIFY_API_0_2				/* ... digest jsonb: 7 columns, digest_status */
} VerifyApi;

static Datum verify_audit_chain_api(FunctionCallInfo fcinfo, VerifyApi api);
PG_FUNCTION_INFO_V1(kaireon_purge_audit_chain);
PG_FUNCTION_INFO_V1(kaireon_audit_canonical_sql);

/* The columns of audit_logs the verifier reads, by name. */
enum
{
	AC_ID, AC_TENANT, AC_SEQ, AC_ACTION, AC_ETYPE, AC_EID, AC_USER, AC_REQUEST,
	AC_SESSION_USER, AC_BEFORE, AC_AFTER, AC_CHANGED, AC_VERSION, AC_PREV, AC_HASH,
	AC_CREATED, AC_NCOLS
};
static const char *const audit_columns[AC_NCOLS] = {
	"id", "tenant_id", "chain_seq", "action", "entity_type", "entity_id", "user_id",
	"request_id", "session_user_name", "before", "after", "changed_fields",
	"entity_version", "prev_hash", "integrity_hash", "created_at"
};

/* The outcome of a verification. */
typedef struct VerifyResult
{
	bool		intact;
	int64		verified;
	int64		total;
	int64		scanned;
	int64		broken_at;		/* 0: none */
	const char *reason;			/* NULL: none */
	const char *digest_status;	/* NULL: no digest, or not decided yet */
} VerifyResult;

/* The head of a chain, as kaireon.audit_chain_heads holds it. */
typedef struct ChainHead
{
	bool		found;
	int64		last_id;
	int64		last_seq;
	char	   *last_hash;
} ChainHead;

/* Read a chain's head under the current snapshot (or as this transaction moved it). */
static ChainHead
read_head(const char *tenant_id)
{
	ChainHead	head = {0};
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	char		nulls[1];
	char	   *sql = psprintf("SELECT last_id, last_seq, last_hash FROM %s WHERE %s",
							   kaireon_audit_head_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	bool		isnull;

	/* this transaction's own appends move the head row only at commit */
	head.last_hash = palloc(KC_SHA256_HEX_LEN + 1);
	if (kaireon_audit_pending_head(tenant_id, &head.last_id, &head.last_seq, head.last_hash))
	{
		head.found = true;
		return head;
	}
	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	if (kspi_execute_with_args(sql, 1, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit chain head failed");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		head.last_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		head.last_seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		head.last_hash = SPI_getvalue(tup, desc, 3);
		/* a head at 0: the chain's first append has not committed (no rows) */
		head.found = head.last_seq > 0;
	}
	return head;
}

/*
 * The link a chain's first remaining row must have: 64 zeros when it is the
 * chain's first row, else the hash recorded by the anchor of the prefix
 * removed before it (and the id of the last removed row, in *removed_id).
 * False when there is no such anchor.
 */
static bool
start_link(const char *tenant_id, int64 first_seq, char *prev_out, int64 *removed_id)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql;
	char	   *hash;
	char	   *id;

	*removed_id = 0;
	if (first_seq == 1)
	{
		strcpy(prev_out, KAIREON_AUDIT_GENESIS_HASH);
		return true;
	}
	sql = psprintf("SELECT after::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'removed_through_hash',"
				   " after::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'removed_through_id'"
				   " FROM %s WHERE %s AND action OPERATOR(pg_catalog.=) 'anchor'"
				   " AND after::pg_catalog.jsonb OPERATOR(pg_catalog.->>) 'removed_through_seq'"
				   " OPERATOR(pg_catalog.=) $2 ORDER BY chain_seq DESC LIMIT 1",
				   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = CStringGetTextDatum(psprintf(INT64_FORMAT, first_seq - 1));
	if (kspi_execute_with_args(sql, 2, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up the audit chain anchor failed");
	if (SPI_processed != 1)
		return false;
	hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	id = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (hash == NULL || strlen(hash) != KC_SHA256_HEX_LEN)
		return false;
	strcpy(prev_out, hash);
	if (id != NULL && strlen(id) > 0 && strlen(id) <= 18 && strspn(id, "0123456789") == strlen(id))
		*removed_id = (int64) strtoll(id, NULL, 10);
	return true;
}

/*
 * The chain position verification from row from_id starts at: that row's
 * chain_seq, or when it is not a row of the chain, the first position after it
 * (the smallest chain_seq of a later id; past the end when there is none).
 */
static int64
start_position(const char *tenant_id, int64 from_id)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql = psprintf("SELECT COALESCE(pg_catalog.min(chain_seq) FILTER (WHERE id OPERATOR(pg_catalog.>=) $2),"
							   " pg_catalog.max(chain_seq) OPERATOR(pg_catalog.+) 1, 1) FROM %s WHERE %s",
							   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	bool		isnull;

	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = Int64GetDatum(from_id);
	if (kspi_execute_with_args(sql, 2, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up audit row " INT64_FORMAT " failed", from_id);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The row of the chain just before position from_seq (its id, sequence number and hash); false when none. */
static bool
predecessor(const char *tenant_id, int64 from_seq, int64 *id, int64 *seq, char *hash_out)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql = psprintf("SELECT chain_seq, integrity_hash, id FROM %s WHERE %s"
							   " AND chain_seq OPERATOR(pg_catalog.<) $2 ORDER BY chain_seq DESC LIMIT 1",
							   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	char	   *hash;
	bool		isnull;

	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = Int64GetDatum(from_seq);
	if (kspi_execute_with_args(sql, 2, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "looking up the audit row before position " INT64_FORMAT " failed", from_seq);
	if (SPI_processed != 1)
		return false;
	*seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	strlcpy(hash_out, hash ? hash : "", KC_SHA256_HEX_LEN + 1);
	return true;
}

/* Number of the chain's rows from position from_seq. */
static int64
count_rows(const char *tenant_id, int64 from_seq)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		vals[2];
	char		nulls[2] = {' ', ' '};
	char	   *sql = psprintf("SELECT pg_catalog.count(*) FROM %s WHERE %s"
							   " AND chain_seq OPERATOR(pg_catalog.>=) $2",
							   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	bool		isnull;

	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = Int64GetDatum(from_seq);
	if (kspi_execute_with_args(sql, 2, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "counting audit rows failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The select list of the verifier's columns (audit_columns, in that order) from
 * a chain's log table; the platform chain's rows have a null tenant_id.
 */
static char *
audit_select_list(const char *tenant_id)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < AC_NCOLS; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, ", ");
		if (i == AC_TENANT && tenant_id == NULL)
			appendStringInfoString(&buf, "NULL::pg_catalog.text");
		else
			appendStringInfoString(&buf, audit_columns[i]);
	}
	return buf.data;
}

/* A text column of a slot as a C string, or NULL. */
static const char *
slot_text(Datum *values, bool *nulls, int col)
{
	return nulls[col] ? NULL : TextDatumGetCString(values[col]);
}

/*
 * Load an audit row, a tuple of audit_select_list's columns, into rec (strings
 * palloc'd in the current context).  False when changed_fields holds
 * something other than strings, which the canonical form cannot hold: the row
 * cannot match its hash.
 */
static bool
record_from_tuple(HeapTuple tuple, TupleDesc desc, AuditRecord *rec)
{
	Datum		values[AC_NCOLS];
	bool		nulls[AC_NCOLS];
	const char *prev;
	const char *hash;

	if (desc->natts != AC_NCOLS)
		elog(ERROR, "an audit row was read with %d columns", desc->natts);
	heap_deform_tuple(tuple, desc, values, nulls);
	memset(rec, 0, sizeof(*rec));
	rec->id = DatumGetInt64(values[AC_ID]);
	rec->tenant_id = slot_text(values, nulls, AC_TENANT);
	rec->chain_seq = nulls[AC_SEQ] ? 0 : DatumGetInt64(values[AC_SEQ]);
	rec->action = slot_text(values, nulls, AC_ACTION);
	rec->entity_type = slot_text(values, nulls, AC_ETYPE);
	rec->entity_id = slot_text(values, nulls, AC_EID);
	rec->user_id = slot_text(values, nulls, AC_USER);
	rec->request_id = slot_text(values, nulls, AC_REQUEST);
	rec->session_user_name = slot_text(values, nulls, AC_SESSION_USER);
	rec->before = slot_text(values, nulls, AC_BEFORE);
	rec->after = slot_text(values, nulls, AC_AFTER);
	rec->has_version = !nulls[AC_VERSION];
	rec->entity_version = rec->has_version ? DatumGetInt32(values[AC_VERSION]) : 0;
	rec->created_at = nulls[AC_CREATED] ? 0 : DatumGetTimestampTz(values[AC_CREATED]);
	prev = slot_text(values, nulls, AC_PREV);
	hash = slot_text(values, nulls, AC_HASH);
	if (nulls[AC_CHANGED] || prev == NULL || hash == NULL ||
		strlen(prev) != KC_SHA256_HEX_LEN || strlen(hash) != KC_SHA256_HEX_LEN)
		return false;
	memcpy(rec->prev_hash, prev, KC_SHA256_HEX_LEN + 1);
	memcpy(rec->integrity_hash, hash, KC_SHA256_HEX_LEN + 1);
	{
		Jsonb	   *jb = DatumGetJsonbP(values[AC_CHANGED]);
		JsonbIterator *it = JsonbIteratorInit(&jb->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		int			n = JB_ROOT_COUNT(jb);
		bool		ok = JB_ROOT_IS_ARRAY(jb) && !JB_ROOT_IS_SCALAR(jb);

		rec->changed = palloc(sizeof(char *) * Max(n, 1));
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok != WJB_ELEM)
				continue;
			if (v.type != jbvString || rec->nchanged >= n)
				ok = false;
			else
				rec->changed[rec->nchanged++] = pnstrdup(v.val.string.val, v.val.string.len);
		}
		return ok;
	}
}

/* Whether an audit row is the one a digest names (its id, chain_seq and hash). */
static bool
digest_names(const AuditDigest *digest, int64 id, int64 seq, const char *hash)
{
	return id == digest->id && seq == digest->chain_seq && strcmp(hash, digest->hash) == 0;
}

/* Rows a verification reads from its cursor at a time. */
#define VERIFY_BATCH 1000

/*
 * Verify one chain from the position of row from_id (0: its start), reading
 * at most max_rows rows (0: all) and none after position through_seq (0: no
 * limit); with a digest (NULL: none), also whether the chain still holds the
 * digest's row.  Must run inside SPI, as a role that can read the log and the
 * heads.
 */
static void
verify_chain(const char *tenant_id, int64 from_id, int64 max_rows, int64 through_seq,
			 const AuditDigest *digest, VerifyResult *res)
{
	Oid			types[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		vals[3];
	char		nulls[3] = {' ', ' ', ' '};
	Portal		portal;
	ChainHead	head;
	char		expect_prev[KC_SHA256_HEX_LEN + 1] = "";
	int64		expect_seq = 0;
	int64		last_id = 0;
	int64		from_seq = 1;
	bool		started = false;
	bool		reached_end = true;
	bool		stop = false;
	int64		removed_id;
	MemoryContext rowcxt;
	MemoryContext oldcxt;

	memset(res, 0, sizeof(*res));
	head = read_head(tenant_id);
	if (from_id > 0)
	{
		from_seq = start_position(tenant_id, from_id);
		if (digest != NULL && from_seq > digest->chain_seq)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("from_id " INT64_FORMAT " is after the digest's row " INT64_FORMAT, from_id, digest->id),
					 errhint("Start at or before the digest's id, or pass NULL.")));
		if (predecessor(tenant_id, from_seq, &last_id, &expect_seq, expect_prev))
		{
			expect_seq++;
			started = true;
		}
	}

	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = Int64GetDatum(from_seq);
	vals[2] = Int64GetDatum(through_seq > 0 ? through_seq : PG_INT64_MAX);
	portal = SPI_cursor_open_with_args(NULL,
									   psprintf("SELECT %s FROM %s WHERE %s AND chain_seq OPERATOR(pg_catalog.>=) $2"
												" AND chain_seq OPERATOR(pg_catalog.<=) $3 ORDER BY chain_seq",
												audit_select_list(tenant_id), kaireon_audit_log_table(tenant_id),
												kaireon_audit_chain_condition(tenant_id)),
									   3, types, vals, nulls, true, CURSOR_OPT_NO_SCROLL);
	if (portal == NULL)
		elog(ERROR, "opening the audit chain failed: %s", SPI_result_code_string(SPI_result));
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "audit verification row",
								   ALLOCSET_DEFAULT_SIZES);

	while (!stop)
	{
		SPITupleTable *batch;
		uint64		nrows;
		uint64		r;

		SPI_cursor_fetch(portal, true, VERIFY_BATCH);
		batch = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		for (r = 0; r < nrows; r++)
		{
			AuditRecord rec;
			char		hash[KC_SHA256_HEX_LEN + 1];
			bool		loadable;

			CHECK_FOR_INTERRUPTS();
			if (max_rows > 0 && res->scanned >= max_rows)
			{
				reached_end = false;
				stop = true;
				break;
			}
			MemoryContextReset(rowcxt);
			oldcxt = MemoryContextSwitchTo(rowcxt);
			loadable = record_from_tuple(batch->vals[r], batch->tupdesc, &rec);
			res->scanned++;
			if (loadable)
				kaireon_audit_hash(&rec, hash);
			MemoryContextSwitchTo(oldcxt);

			if (!started)
			{
				/* the chain's first remaining row: genesis or the anchor of a removed prefix */
				started = true;
				expect_seq = rec.chain_seq;
				if (!start_link(tenant_id, rec.chain_seq, expect_prev, &removed_id))
				{
					res->broken_at = rec.id;
					res->reason = "gap";
					stop = true;
					break;
				}
				/* retention removed the digest's row: the anchor's record of the last removed row */
				if (digest != NULL && digest->chain_seq < rec.chain_seq)
				{
					if (digest->chain_seq < rec.chain_seq - 1)
						res->digest_status = "predates_chain";
					else if (digest_names(digest, removed_id, rec.chain_seq - 1, expect_prev))
						res->digest_status = "matched";
					else
					{
						res->digest_status = "mismatch";
						res->broken_at = digest->id;
						res->reason = "digest_mismatch";
						stop = true;
						break;
					}
				}
			}
			/* past the digest's position without meeting its row: the row is gone */
			if (digest != NULL && res->digest_status == NULL && rec.chain_seq > digest->chain_seq)
			{
				res->digest_status = "mismatch";
				res->broken_at = digest->id;
				res->reason = "digest_mismatch";
				stop = true;
				break;
			}
			if (!loadable || strcmp(hash, rec.integrity_hash) != 0)
				res->reason = "hash_mismatch";
			else if (rec.chain_seq > expect_seq)
				res->reason = "gap";
			else if (rec.chain_seq < expect_seq || strcmp(rec.prev_hash, expect_prev) != 0 ||
					 (head.found && rec.chain_seq > head.last_seq))
				res->reason = "chain_link_mismatch";
			if (digest != NULL && rec.chain_seq == digest->chain_seq)
				res->digest_status = digest_names(digest, rec.id, rec.chain_seq, rec.integrity_hash) ? "matched" : "mismatch";
			if (res->reason == NULL && digest != NULL && rec.chain_seq == digest->chain_seq &&
				strcmp(res->digest_status, "mismatch") == 0)
				res->reason = "digest_mismatch";
			if (res->reason != NULL)
			{
				res->broken_at = rec.id;
				stop = true;
				break;
			}
			res->verified++;
			expect_seq++;
			strcpy(expect_prev, hash);
			last_id = rec.id;
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(rowcxt);
	/* a limit on positions: the chain goes on after through_seq */
	if (through_seq > 0)
		reached_end = false;

	/* at the end of the chain, the digest's row must have been met (else the tail is gone) */
	if (res->reason == NULL && reached_end && digest != NULL && res->digest_status == NULL)
	{
		res->digest_status = "mismatch";
		res->broken_at = digest->id;
		res->reason = "digest_mismatch";
	}
	if (digest != NULL && res->digest_status == NULL)
		res->digest_status = "not_reached";
	/* at the end of the chain, the head must name its last row */
	if (res->reason == NULL && reached_end)
	{
		int64		seen_seq = started ? expect_seq - 1 : 0;

		if (!head.found)
		{
			if (started)
			{
				res->reason = "chain_link_mismatch";	/* rows but no head */
				res->broken_at = last_id;
			}
		}
		else if (seen_seq < head.last_seq)
		{
			res->reason = "gap";	/* the chain's last rows are missing */
			res->broken_at = head.last_id;
		}
		else if (head.last_hash == NULL || strcmp(head.last_hash, expect_prev) != 0)
		{
			res->reason = "chain_link_mismatch";
			res->broken_at = last_id;
		}
	}
	res->intact = res->reason == NULL;
	/* the rows of the chain from from_id: all were read, unless the scan stopped early */
	res->total = res->intact && reached_end ? res->scanned : count_rows(tenant_id, from_seq);
}

/* kaireon.verify_audit_chain(tenant_id, from_id, max_rows) of the 0.1.0 SQL. */
Datum
kaireon_verify_audit_chain(PG_FUNCTION_ARGS)
{
	return verify_audit_chain_api(fcinfo, VERIFY_API_0_1);
}

/* kaireon.verify_audit_chain(tenant_id, from_id, max_rows, digest) of the 0.2.0 SQL. */
Datum
kaireon_verify_audit_chain_0_2(PG_FUNCTION_ARGS)
{
	return verify_audit_chain_api(fcinfo, VERIFY_API_0_2);
}

/*
 * Recompute a chain and report (intact, verified, total, scanned, broken_at_id,
 * broken_reason[, digest_status]), reading the arguments and returning the
 * columns of the SQL signature api.
 */
static Datum
verify_audit_chain_api(FunctionCallInfo fcinfo, VerifyApi api)
{
	const char *tenant_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		from_id = PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1);
	int64		max_rows = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
	Jsonb	   *digest_arg = api < VERIFY_API_0_2 || PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	AuditDigest digest;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	VerifyResult res;
	Oid			save_userid;
	int			save_sec;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "verify_audit_chain must return a row");
	if (from_id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_id must not be negative: " INT64_FORMAT, from_id),
				 errhint("Pass the id of an audit row, or NULL to start at the chain's beginning.")));
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must not be negative: " INT64_FORMAT, max_rows),
				 errhint("Pass NULL or 0 to verify every row.")));
	if (digest_arg != NULL && max_rows > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be NULL when a digest is given: " INT64_FORMAT, max_rows),
				 errhint("Verification with a digest reads the chain to its end.")));
	kaireon_audit_check_chain_access(tenant_id);

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	kaireon_audit_require_chain(tenant_id);
	if (digest_arg != NULL)
	{
		kaireon_audit_digest_read(digest_arg, tenant_id, &digest);
	}
	verify_chain(tenant_id, from_id, max_rows, 0, digest_arg ? &digest : NULL, &res);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);

	values[0] = BoolGetDatum(res.intact);
	values[1] = Int64GetDatum(res.verified);
	values[2] = Int64GetDatum(res.total);
	values[3] = Int64GetDatum(res.scanned);
	values[4] = Int64GetDatum(res.broken_at);
	nulls[4] = res.broken_at == 0;
	values[5] = res.reason ? CStringGetTextDatum(res.reason) : (Datum) 0;
	nulls[5] = res.reason == NULL;
	values[6] = res.digest_status ? CStringGetTextDatum(res.digest_status) : (Datum) 0;
	nulls[6] = res.digest_status == NULL;
	if (tupdesc->natts != (api < VERIFY_API_0_2 ? 6 : 7))
		elog(ERROR, "verify_audit_chain returns %d columns, not %d", tupdesc->natts, api < VERIFY_API_0_2 ? 6 : 7);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls)));
}

/* The anchor's record of the removed prefix, as JSON text. */
static char *
anchor_json(int64 last_id, int64 last_seq, const char *last_hash, int64 removed, TimestampTz older_than)
{
	json_t	   *o = kj_object();

	json_object_set_new(o, "older_than", json_string(timestamptz_to_str(older_than)));
	json_object_set_new(o, "removed_rows", json_integer(removed));
	json_object_set_new(o, "removed_through_hash", json_string(last_hash));
	json_object_set_new(o, "removed_through_id", json_integer(last_id));
	json_object_set_new(o, "removed_through_seq", json_integer(last_seq));
	return kj_dump(o, JSON_COMPACT | JSON_SORT_KEYS);
}

/* Whether the tenant's audit log is under a legal hold (retention_configs). */
static bool
under_legal_hold(const char *tenant_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		vals[1];
	char		nulls[1] = {' '};

	if (tenant_id == NULL)
		return false;
	vals[0] = CStringGetTextDatum(tenant_id);
	if (kspi_execute_with_args("SELECT 1 FROM kaireon.retention_configs WHERE tenant_id OPERATOR(pg_catalog.=) $1"
							   " AND data_class OPERATOR(pg_catalog.=) 'audit' AND legal_hold",
							   1, types, vals, nulls, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading the retention configuration failed");
	return SPI_processed > 0;
}

/*
 * kaireon.purge_audit_chain(tenant_id, older_than, max_rows): retention of an
 * audit chain.  Removes the longest prefix (at most max_rows rows) whose rows
 * are all older than older_than, after verifying it, and appends an anchor
 * naming the last removed row.  Returns the number of rows removed.
 */
Datum
kaireon_purge_audit_chain(PG_FUNCTION_ARGS)
{
	const char *tenant_id = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz older_than;
	int64		max_rows = PG_ARGISNULL(2) ? 10000 : PG_GETARG_INT64(2);
	Oid			save_userid;
	int			save_sec;
	Oid			types[3] = {TEXTOID, TIMESTAMPTZOID, INT8OID};
	Datum		vals[3];
	char		nulls[3] = {' ', ' ', ' '};
	char	   *sql;
	int64		removed;
	int64		last_id;
	int64		last_seq;
	char	   *last_hash;
	bool		isnull;
	VerifyResult res;
	AuditRecord anchor;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("older_than must not be null"),
				 errhint("Pass the time before which audit rows may be removed.")));
	older_than = PG_GETARG_TIMESTAMPTZ(1);
	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be at least 1: " INT64_FORMAT, max_rows),
				 errhint("Retention removes a chain's oldest rows in batches of max_rows.")));
	kaireon_audit_check_chain_access(tenant_id);

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (under_legal_hold(tenant_id))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the audit log of tenant \"%s\" is under legal hold", tenant_id),
				 errhint("Clear legal_hold of its retention_configs row for data class audit first.")));
	kaireon_audit_lock_chain(tenant_id);

	/* the prefix: the chain's first rows, up to max_rows, all older than older_than */
	sql = psprintf("WITH prefix AS (SELECT id, chain_seq, integrity_hash, created_at,"
				   " pg_catalog.bool_and(created_at OPERATOR(pg_catalog.<) $2) OVER (ORDER BY chain_seq) AS old"
				   " FROM (SELECT id, chain_seq, integrity_hash, created_at FROM %s WHERE %s"
				   " ORDER BY chain_seq LIMIT $3) s)"
				   " SELECT id, chain_seq, integrity_hash, pg_catalog.count(*) OVER ()"
				   " FROM prefix WHERE old ORDER BY chain_seq DESC LIMIT 1",
				   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	vals[0] = kaireon_audit_arg_text(tenant_id, nulls, 0);
	vals[1] = TimestampTzGetDatum(older_than);
	vals[2] = Int64GetDatum(max_rows);
	if (kspi_execute_with_args(sql, 3, types, vals, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "finding the audit rows to remove failed");
	if (SPI_processed == 0)
	{
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
		PG_RETURN_INT64(0);
	}
	last_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	last_seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	last_hash = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	removed = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));

	/* a broken prefix is evidence: keep it */
	verify_chain(tenant_id, 0, 0, last_seq, NULL, &res);
	if (!res.intact)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit chain of %s is broken at id " INT64_FORMAT " (%s); nothing was removed",
						kaireon_audit_chain_name(tenant_id), res.broken_at, res.reason),
				 errhint("Investigate with kaireon.verify_audit_chain; retention keeps a broken chain.")));

	sql = psprintf("DELETE FROM %s WHERE %s AND chain_seq OPERATOR(pg_catalog.<=) $2",
				   kaireon_audit_log_table(tenant_id), kaireon_audit_chain_condition(tenant_id));
	types[1] = INT8OID;
	vals[1] = Int64GetDatum(last_seq);
	kaireon_audit_purging = true;
	PG_TRY();
	{
		if (kspi_execute_with_args(sql, 2, types, vals, nulls, false, 0) != SPI_OK_DELETE ||
			(int64) SPI_processed != removed)
			elog(ERROR, "removing " INT64_FORMAT " audit rows removed " UINT64_FORMAT,
				 removed, SPI_processed);
	}
	PG_FINALLY();
	{
		kaireon_audit_purging = false;
	}
	PG_END_TRY();

	memset(&anchor, 0, sizeof(anchor));
	anchor.tenant_id = tenant_id;
	anchor.action = "anchor";
	anchor.entity_type = "audit_logs";
	anchor.entity_id = psprintf(INT64_FORMAT, last_id);
	anchor.after = anchor_json(last_id, last_seq, last_hash, removed, older_than);
	anchor.changed = NULL;
	kaireon_audit_fill_session(&anchor);
	kaireon_audit_append(&anchor);

	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	PG_RETURN_INT64(removed);
}

/*
 * kaireon.audit_canonical(id): the canonical text of one audit row, as hashed
 * (a row of audit_logs, else of platform_audit_logs).
 */
Datum
kaireon_audit_canonical_sql(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	MemoryContext caller = CurrentMemoryContext;
	Oid			save_userid;
	int			save_sec;
	Oid			types[1] = {INT8OID};
	Datum		vals[1];
	AuditRecord rec;
	bool		found = false;
	bool		loadable = false;
	char	   *tenant_id = NULL;
	char	   *text = NULL;
	int			chain;

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	vals[0] = Int64GetDatum(id);
	for (chain = 0; chain < 2 && !found; chain++)
	{
		/* a tenant's chain first ("" stands for any tenant), then the platform's */
		const char *kind = chain == 0 ? "" : NULL;

		if (kspi_execute_with_args(psprintf("SELECT %s FROM %s WHERE id OPERATOR(pg_catalog.=) $1",
											audit_select_list(kind), kaireon_audit_log_table(kind)),
								   1, types, vals, NULL, true, 2) != SPI_OK_SELECT)
			elog(ERROR, "reading audit row " INT64_FORMAT " failed", id);
		if (SPI_processed > 1)
			ereport(ERROR,
					(errcode(ERRCODE_CARDINALITY_VIOLATION),
					 errmsg("audit id " INT64_FORMAT " names rows of more than one tenant's chain", id),
					 errhint("Read the row from kaireon.audit_logs by tenant_id and id.")));
		if (SPI_processed == 1)
		{
			found = true;
			loadable = record_from_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, &rec);
			if (rec.tenant_id != NULL)
				tenant_id = MemoryContextStrdup(caller, rec.tenant_id);
			if (loadable)
				text = MemoryContextStrdup(caller, kaireon_audit_canonical(&rec));
		}
	}
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	if (!found)
		PG_RETURN_NULL();
	kaireon_audit_check_chain_access(tenant_id);
	if (text == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(text));
}
