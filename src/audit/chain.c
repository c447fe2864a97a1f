/*
 * audit/chain.c
 *	  The audit hash chain: the canonical form of an audit row, its hash, and
 *	  appending a row to its chain.
 *
 * integrity_hash = hex(SHA-256(prev_hash || canonical)), where prev_hash is the
 * 64 hex digits of the previous row of the same chain (64 zeros for the first)
 * and canonical is the row's fields as one JSON object with sorted keys and no
 * whitespace (see canon_append).  docs/audit.md states the format field by
 * field so that an outside auditor can re-verify it.
 *
 * Chains.  There is one chain per tenant, in kaireon.audit_logs, with its head
 * (last id, sequence number and hash) in kaireon.audit_chain_heads; every key
 * of both begins with tenant_id.  Changes without a tenant form the platform
 * chain, in kaireon.platform_audit_logs with its one-row head
 * kaireon.platform_audit_chain_head.  A chain's order is chain_seq; id only
 * names a row.
 *
 * Locking protocol.  Everything an append does goes through the executor (SPI,
 * saved plans, each statement of a tenant's chain with an explicit
 * tenant_id = $1), so that on a Citus cluster it reaches the tenant's shard;
 * nothing is written by tuple id or into a node-local copy of a table.  The
 * first append of a transaction to a chain locks the chain's head row:
 * SELECT ... FOR UPDATE, or, when the chain has no head yet, INSERT ... ON
 * CONFLICT DO NOTHING of a head at position 0 (a concurrent first appender
 * waits on that insertion, then finds the committed row and locks it).  The
 * row lock is held to the end of the transaction, so the next appender of the
 * chain gets the head only after this transaction has committed (and sees its
 * rows) or rolled back (and sees none of them): the chain stays linear and a
 * rollback leaves no gap.  The head is read and locked with the latest
 * snapshot, not the transaction's.  Under REPEATABLE READ and SERIALIZABLE,
 * locking a row that a concurrent appender moved raises a serialization
 * failure once that appender commits; there the lock is taken in a
 * subtransaction, retried after such a failure with a new latest snapshot
 * (which sees the moved head and locks it without a conflict), so such
 * transactions append without a serialization failure of their own.  A
 * transaction writing to the chains of two tenants locks both heads in the
 * order it writes, so two such transactions in opposite orders can deadlock
 * (one is cancelled by the deadlock detector).  No advisory lock and no
 * node-local state orders a chain: the lock is on the tenant's own row,
 * wherever it lives.
 *
 * Within a transaction the head is read once and then kept in memory, per
 * subtransaction level (chain.c's cache), and the head row is written once
 * when the transaction commits or prepares (a PRE_COMMIT callback, registered
 * after Citus's and so run before it), so a statement changing many rows does
 * not rewrite the head row per row.  The audit row is inserted by a saved
 * INSERT plan (the log's guard trigger lets the owner's insert through; the
 * unique key on (tenant_id, chain_seq) refuses a second row for one position
 * of a chain), so it is visible to the rest of the transaction like any other
 * row.  Ids come from the sequence of audit_logs.id, on a Citus cluster from
 * the range of the node that appends: unique, but only chain_seq orders a chain.
 *
 * The capture triggers are deferred constraint triggers (capture.c), so all of a
 * transaction's appends happen while it commits and the head row is locked
 * only from then to the end of the commit.
 *
 * The append runs as the owner of kaireon.audit_logs (like a SECURITY DEFINER
 * function), so application roles need no privilege on the log or the heads.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "security/owner.h"
#include "util/subxact.h"
#include "audit/audit.h"

/* The oid of schema kaireon. */
static Oid
kaireon_nsp(void)
{
	return get_namespace_oid("kaireon", false);
}

/* The oid of kaireon.audit_logs (error if the extension's table is missing). */
Oid
kaireon_audit_relid(void)
{
	Oid			relid = get_relname_relid("audit_logs", kaireon_nsp());

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table kaireon.audit_logs does not exist"),
				 errhint("CREATE EXTENSION kaireon creates it.")));
	return relid;
}

/*
 * Act as the owner of kaireon.audit_logs until the caller restores the saved
 * user (SetUserIdAndSecContext); an error restores it too.  Returns the table.
 */
Oid
kaireon_audit_switch_to_owner(Oid *save_userid, int *save_sec)
{
	Oid			relid = kaireon_audit_relid();

	kaireon_switch_to_owner(relid, save_userid, save_sec);
	return relid;
}

/* A setting's value, or NULL when it is empty or unknown. */
static const char *
setting_or_null(const char *name)
{
	const char *v = GetConfigOption(name, true, false);

	return (v == NULL || v[0] == '\0') ? NULL : pstrdup(v);
}

/* Fill the session fields of an audit row: application user, request, session user, time. */
void
kaireon_audit_fill_session(AuditRecord *rec)
{
	rec->user_id = setting_or_null("kaireon.user_id");
	rec->request_id = setting_or_null("kaireon.request_id");
	rec->session_user_name = GetUserNameFromId(GetSessionUserId(), false);
	rec->created_at = GetCurrentTransactionStartTimestamp();
}

/*
 * The canonical form is one JSON object with the row's fourteen fields as keys
 * in sorted order and no whitespace.  Strings are escaped by the server's
 * escape_json (", \ and \b \f \n \r \t as short escapes, other characters below
 * U+0020 as \u00xx in lower-case hex, everything else as is), integers in
 * decimal, absent values as null; the result is exactly what Python's
 * json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
 * prints, which is what lets an outside auditor re-verify a chain with a few
 * lines.  jansson is not used here: its printer decodes UTF-8 character by
 * character through a callback, which cost three times as much as reading the
 * row, and verification hashes millions of rows.  The bytes hashed are built
 * in canon_buf, reused for every row (one per backend, in TopMemoryContext).
 */
static StringInfoData canon_buf;
static bool canon_buf_ready = false;
static TimestampTz canon_ts_cached = DT_NOBEGIN;
static char canon_ts_text[40];

/* Server-encoded text as UTF-8 (a copy in the current context unless the database is UTF-8). */
static const char *
canon_utf8(const char *s)
{
	return GetDatabaseEncoding() == PG_UTF8 ? s : pg_server_to_any(s, strlen(s), PG_UTF8);
}

/* The keys of the canonical object, in sorted order, and each as printed with its separators. */
enum
{
	CK_ACTION, CK_AFTER, CK_BEFORE, CK_CHAIN_SEQ, CK_CHANGED, CK_CREATED, CK_ENTITY_ID,
	CK_ENTITY_TYPE, CK_ENTITY_VERSION, CK_ID, CK_REQUEST, CK_SESSION_USER, CK_TENANT,
	CK_USER, CK_NKEYS
};
static const char *const canon_keys[CK_NKEYS] = {
	"action", "after", "before", "chain_seq", "changed_fields", "created_at", "entity_id",
	"entity_type", "entity_version", "id", "request_id", "session_user_name", "tenant_id",
	"user_id"
};
static char *canon_key_text[CK_NKEYS];
static int	canon_key_len[CK_NKEYS];

/* Append key k with its separators: {"action": for the first, ,"after": for the others. */
static void
canon_key(StringInfo buf, int k)
{
	appendBinaryStringInfo(buf, canon_key_text[k], canon_key_len[k]);
}

/*
 * Append a JSON string (text converted to UTF-8), or null.  A string without a
 * character escape_json would escape (", \, below U+0020) is appended quoted as
 * it is, which is what escape_json would print, without its per-character work.
 */
static void
canon_string(StringInfo buf, const char *s)
{
	const char *utf8;
	const char *p;

	if (s == NULL)
	{
		appendStringInfoString(buf, "null");
		return;
	}
	utf8 = canon_utf8(s);
	for (p = utf8; *p != '\0'; p++)
		if ((unsigned char) *p < 0x20 || *p == '"' || *p == '\\')
			break;
	if (*p == '\0')
	{
		appendStringInfoChar(buf, '"');
		appendBinaryStringInfo(buf, utf8, (int) (p - utf8));
		appendStringInfoChar(buf, '"');
	}
	else
		escape_json(buf, utf8);
	if (utf8 != s)
		pfree((void *) utf8);
}

/* Append an integer, or null. */
static void
canon_int(StringInfo buf, bool isnull, int64 n)
{
	char		digits[MAXINT8LEN + 1];

	if (isnull)
		appendStringInfoString(buf, "null");
	else
	{
		pg_lltoa(n, digits);
		appendStringInfoString(buf, digits);
	}
}

/* Append changed_fields: a JSON array of strings. */
static void
canon_changed(StringInfo buf, const AuditRecord *rec)
{
	int			i;

	appendStringInfoChar(buf, '[');
	for (i = 0; i < rec->nchanged; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		canon_string(buf, rec->changed[i]);
	}
	appendStringInfoChar(buf, ']');
}

/*
 * A time as the canonical form prints it (created_at, and a digest's time):
 * UTC, microseconds, "Z".  The text lives until the next call.
 */
const char *
kaireon_audit_time_text(TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (ts == canon_ts_cached)
		return canon_ts_text;
	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("audit row time is out of range")));
	snprintf(canon_ts_text, sizeof(canon_ts_text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	canon_ts_cached = ts;
	return canon_ts_text;
}

/* Append the canonical object of an audit row (every field but prev_hash and integrity_hash). */
static void
canon_append(StringInfo buf, const AuditRecord *rec)
{
	canon_key(buf, CK_ACTION);
	canon_string(buf, rec->action);
	canon_key(buf, CK_AFTER);
	canon_string(buf, rec->after);
	canon_key(buf, CK_BEFORE);
	canon_string(buf, rec->before);
	canon_key(buf, CK_CHAIN_SEQ);
	canon_int(buf, false, rec->chain_seq);
	canon_key(buf, CK_CHANGED);
	canon_changed(buf, rec);
	canon_key(buf, CK_CREATED);
	canon_string(buf, kaireon_audit_time_text(rec->created_at));
	canon_key(buf, CK_ENTITY_ID);
	canon_string(buf, rec->entity_id);
	canon_key(buf, CK_ENTITY_TYPE);
	canon_string(buf, rec->entity_type);
	canon_key(buf, CK_ENTITY_VERSION);
	canon_int(buf, !rec->has_version, rec->entity_version);
	canon_key(buf, CK_ID);
	canon_int(buf, false, rec->id);
	canon_key(buf, CK_REQUEST);
	canon_string(buf, rec->request_id);
	canon_key(buf, CK_SESSION_USER);
	canon_string(buf, rec->session_user_name);
	canon_key(buf, CK_TENANT);
	canon_string(buf, rec->tenant_id);
	canon_key(buf, CK_USER);
	canon_string(buf, rec->user_id);
	appendStringInfoChar(buf, '}');
}

/* Build prev_hash followed by the canonical form of rec in canon_buf (the bytes hashed). */
static void
canon_build(const AuditRecord *rec)
{
	if (!canon_buf_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		int			k;

		/* the keys, printed once by escape_json with their separators */
		for (k = 0; k < CK_NKEYS; k++)
		{
			StringInfoData key;

			initStringInfo(&key);
			appendStringInfoChar(&key, k == 0 ? '{' : ',');
			escape_json(&key, canon_keys[k]);
			appendStringInfoChar(&key, ':');
			canon_key_text[k] = key.data;
			canon_key_len[k] = key.len;
		}
		initStringInfo(&canon_buf);
		MemoryContextSwitchTo(old);
		canon_buf_ready = true;
	}
	resetStringInfo(&canon_buf);
	appendBinaryStringInfo(&canon_buf, rec->prev_hash, KC_SHA256_HEX_LEN);
	canon_append(&canon_buf, rec);
}

/* integrity_hash of an audit row: hex SHA-256 of its prev_hash followed by its canonical form. */
void
kaireon_audit_hash(const AuditRecord *rec, char out[KC_SHA256_HEX_LEN + 1])
{
	canon_build(rec);
	kc_sha256_begin();
	kc_sha256_update(canon_buf.data, canon_buf.len);
	kc_sha256_finish_hex(out);
}

/* The canonical form of an audit row as text (for kaireon.audit_canonical and the docs). */
char *
kaireon_audit_canonical(const AuditRecord *rec)
{
	canon_build(rec);
	return pstrdup(canon_buf.data + KC_SHA256_HEX_LEN);
}

/*
 * The chains this transaction has appended to, kept in TopTransactionContext
 * while their head rows are locked.  Each entry remembers what the chain's
 * head row holds (row_seq), and the chain's true head as a stack of states,
 * one per subtransaction level that appended: a subtransaction that rolls back
 * pops its state (its audit rows are gone), one that commits hands its state
 * to its parent.  The head row itself is written once, when the transaction
 * commits (or prepares), not once per appended row.  A subtransaction that
 * rolls back after locking the head row releases the lock: its entry is
 * dropped, and the next append locks and reads the head again.
 */
typedef struct ChainState
{
	SubTransactionId subid;		/* the (sub)transaction that left the head here */
	int64		last_id;
	int64		last_seq;
	char		last_hash[KC_SHA256_HEX_LEN + 1];
	struct ChainState *prev;	/* the head before that (sub)transaction appended */
} ChainState;

typedef struct ChainCache
{
	struct ChainCache *next;
	char	   *tenant_id;		/* NULL: the platform chain */
	Oid			heads_relid;	/* the chain's head table when it was read */
	SubTransactionId lock_subid;	/* the (sub)transaction holding the head row's lock */
	bool		created_head;	/* this transaction inserted the head row (at 0) */
	int64		row_seq;		/* the last_seq the head row holds */
	ChainState *state;			/* the chain's head now */
} ChainCache;

static ChainCache *chain_cache = NULL;

static void flush_heads(void);

/* Citus's setting that lets a worker run a statement on a co-located shard outside a trigger. */
#define CITUS_NESTED_EXECUTION "citus.allow_nested_distributed_execution"

/* Transaction end: write the heads before commit; the cache dies with the transaction. */
static void
chain_cache_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
		flush_heads();
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
			 event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT ||
			 event == XACT_EVENT_PARALLEL_ABORT)
		chain_cache = NULL;
}

/*
 * A subtransaction ended: pop the heads it moved (abort) or hand them to its
 * parent (commit); an abort also drops the chains whose head row it locked.
 */
static void
chain_cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	ChainCache **link;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	link = &chain_cache;
	while (*link != NULL)
	{
		ChainCache *entry = *link;

		if (entry->lock_subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
			{
				*link = entry->next;	/* the lock and the head row it made are gone */
				continue;
			}
			entry->lock_subid = parentSubid;
		}
		if (entry->state->subid == mySubid)
		{
			if (event == SUBXACT_EVENT_ABORT_SUB)
				entry->state = entry->state->prev;
			else
			{
				entry->state->subid = parentSubid;
				if (entry->state->prev != NULL && entry->state->prev->subid == parentSubid)
					entry->state->prev = entry->state->prev->prev;
			}
		}
		link = &entry->next;
	}
}

/* Module init: register the callbacks that keep the head cache honest. */
void
kaireon_audit_init(void)
{
	RegisterXactCallback(chain_cache_xact_callback, NULL);
	RegisterSubXactCallback(chain_cache_subxact_callback, NULL);
}

/* The cache entry of a chain, or NULL when this transaction has not appended to it. */
static ChainCache *
chain_cache_find(const char *tenant_id)
{
	ChainCache *entry;

	for (entry = chain_cache; entry != NULL; entry = entry->next)
		if (tenant_id == NULL ? entry->tenant_id == NULL :
			(entry->tenant_id != NULL && strcmp(entry->tenant_id, tenant_id) == 0))
			return entry;
	return NULL;
}

/*
 * Drop an entry of the cache: it was read before the extension was dropped and
 * created again in this transaction, so it describes a chain that is gone.
 */
static void
chain_cache_forget(ChainCache *entry)
{
	ChainCache **link;

	for (link = &chain_cache; *link != NULL; link = &(*link)->next)
		if (*link == entry)
		{
			*link = entry->next;
			return;
		}
}

/* The oid of a chain's head table now (InvalidOid when the extension is gone). */
static Oid
head_table_relid(const char *tenant_id)
{
	Oid			nsp = get_namespace_oid("kaireon", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(tenant_id != NULL ? "audit_chain_heads" : "platform_audit_chain_head", nsp);
}

/*
 * The statements of an append, one set per kind of chain (a tenant's, the
 * platform's).  $1 is always the tenant id (null for the platform chain,
 * whose statements do not read it), so that Citus routes each statement of a
 * tenant's chain to the tenant's shard.
 */
enum
{
	CP_LOCK,					/* lock and read the head row */
	CP_CREATE,					/* create the head row at 0 unless it exists */
	CP_HAS_ROWS,				/* whether the chain has any row */
	CP_INSERT,					/* insert an audit row */
	CP_UPDATE,					/* move the head row */
	CP_DROP_EMPTY,				/* remove a head row left at 0 */
	CP_N
};

#define INSERT_NARGS 16

static const char *const chain_sql[2][CP_N] = {
	{
		"SELECT last_id, last_seq, last_hash FROM kaireon.audit_chain_heads"
		" WHERE tenant_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
		"INSERT INTO kaireon.audit_chain_heads (tenant_id, last_id, last_seq, last_hash, created_at, updated_at)"
		" VALUES ($1, 0, 0, $2, $3, $3) ON CONFLICT (tenant_id) DO NOTHING RETURNING last_seq",
		"SELECT 1 FROM kaireon.audit_logs WHERE tenant_id OPERATOR(pg_catalog.=) $1 LIMIT 1",
		"INSERT INTO kaireon.audit_logs (tenant_id, id, chain_seq, request_id, user_id, session_user_name,"
		" action, entity_type, entity_id, before, after, changed_fields, entity_version, prev_hash,"
		" integrity_hash, created_at) OVERRIDING SYSTEM VALUE"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
		"UPDATE kaireon.audit_chain_heads SET last_id = $2, last_seq = $3, last_hash = $4, updated_at = $5"
		" WHERE tenant_id OPERATOR(pg_catalog.=) $1",
		"DELETE FROM kaireon.audit_chain_heads WHERE tenant_id OPERATOR(pg_catalog.=) $1"
		" AND last_seq OPERATOR(pg_catalog.=) 0"
	},
	{
		"SELECT last_id, last_seq, last_hash FROM kaireon.platform_audit_chain_head"
		" WHERE $1::pg_catalog.text IS NULL FOR UPDATE",
		"INSERT INTO kaireon.platform_audit_chain_head (last_id, last_seq, last_hash, created_at, updated_at)"
		" SELECT 0, 0, $2, $3, $3 WHERE $1::pg_catalog.text IS NULL ON CONFLICT (chain) DO NOTHING RETURNING last_seq",
		"SELECT 1 FROM kaireon.platform_audit_logs WHERE $1::pg_catalog.text IS NULL LIMIT 1",
		"INSERT INTO kaireon.platform_audit_logs (id, chain_seq, request_id, user_id, session_user_name,"
		" action, entity_type, entity_id, before, after, changed_fields, entity_version, prev_hash,"
		" integrity_hash, created_at)"
		" SELECT $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 WHERE $1::pg_catalog.text IS NULL",
		"UPDATE kaireon.platform_audit_chain_head SET last_id = $2, last_seq = $3, last_hash = $4, updated_at = $5"
		" WHERE $1::pg_catalog.text IS NULL",
		"DELETE FROM kaireon.platform_audit_chain_head WHERE $1::pg_catalog.text IS NULL"
		" AND last_seq OPERATOR(pg_catalog.=) 0"
	}
};

static const Oid chain_sql_types[CP_N][INSERT_NARGS] = {
	{TEXTOID},
	{TEXTOID, TEXTOID, TIMESTAMPTZOID},
	{TEXTOID},
	{TEXTOID, INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONOID,
	JSONOID, JSONBOID, INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID},
	{TEXTOID, INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID},
	{TEXTOID}
};

static const int chain_sql_nargs[CP_N] = {1, 3, 1, INSERT_NARGS, 5, 1};

static SPIPlanPtr chain_plans[2][CP_N];

/*
 * Run one of the append's statements (inside SPI) with arguments args/nulls,
 * with the latest snapshot when latest is set; returns the SPI result code.
 */
static int
chain_exec(const char *tenant_id, int which, Datum *args, const char *nulls, bool latest)
{
	int			kind = tenant_id != NULL ? 0 : 1;
	SPIPlanPtr *plan = &chain_plans[kind][which];

	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(chain_sql[kind][which], chain_sql_nargs[which],
									(Oid *) chain_sql_types[which]);

		if (p == NULL || SPI_keepplan(p) != 0)
			elog(ERROR, "preparing an audit chain statement failed: %s",
				 SPI_result_code_string(SPI_result));
		*plan = p;
	}
	if (latest)
		return SPI_execute_snapshot(*plan, args, nulls, GetLatestSnapshot(), InvalidSnapshot,
									false, true, 0);
	return SPI_execute_plan(*plan, args, nulls, false, 0);
}

/* The first argument of every statement: the tenant id, or null for the platform chain. */
static void
chain_arg_tenant(const char *tenant_id, Datum *args, char *nulls)
{
	args[0] = tenant_id != NULL ? CStringGetTextDatum(tenant_id) : (Datum) 0;
	nulls[0] = tenant_id != NULL ? ' ' : 'n';
}

/*
 * Lock a chain's head row and read it into entry (inside SPI): the row as the
 * latest snapshot shows it, or a new row at 0 when the chain has none.  False
 * when a concurrent appender created the row first (the caller tries again).
 */
static bool
head_lock(ChainCache *entry)
{
	const char *tenant_id = entry->tenant_id;
	ChainState *state = entry->state;
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	bool		isnull;

	chain_arg_tenant(tenant_id, args, nulls);
	if (chain_exec(tenant_id, CP_LOCK, args, nulls, true) != SPI_OK_SELECT)
		elog(ERROR, "locking the audit chain head failed");
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		char	   *last_hash = SPI_getvalue(tup, desc, 3);

		if (last_hash == NULL || strlen(last_hash) != KC_SHA256_HEX_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the audit chain head of %s holds no valid hash",
							tenant_id ? psprintf("tenant %s", tenant_id) : "the platform chain"),
					 errhint("Run kaireon.verify_audit_chain to find where the chain is broken.")));
		state->last_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		state->last_seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		memcpy(state->last_hash, last_hash, KC_SHA256_HEX_LEN + 1);
		entry->row_seq = state->last_seq;
		return true;
	}

	/* no head: a chain with rows lost it; else this is the chain's first append */
	if (chain_exec(tenant_id, CP_HAS_ROWS, args, nulls, true) != SPI_OK_SELECT)
		elog(ERROR, "reading the audit chain failed");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit chain of %s%s%s has rows but no head; nothing can be appended to it",
						tenant_id ? "tenant \"" : "rows without a tenant", tenant_id ? tenant_id : "",
						tenant_id ? "\"" : ""),
				 errhint("Run kaireon.verify_audit_chain (with a digest kept before, if any) to find what was removed.")));
	args[1] = CStringGetTextDatum(KAIREON_AUDIT_GENESIS_HASH);
	args[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	if (chain_exec(tenant_id, CP_CREATE, args, nulls, true) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "creating the audit chain head failed");
	if (SPI_processed != 1)
		return false;
	state->last_id = 0;
	state->last_seq = 0;
	memcpy(state->last_hash, KAIREON_AUDIT_GENESIS_HASH, KC_SHA256_HEX_LEN + 1);
	entry->row_seq = 0;
	entry->created_head = true;
	return true;
}

/* How often a REPEATABLE READ or SERIALIZABLE appender retries locking a head a concurrent appender moved. */
#define HEAD_LOCK_RETRIES 100

/* The head lock as a subtransaction's step (head_lock_retrying). */
typedef struct HeadLock
{
	ChainCache *entry;
	bool		locked;
} HeadLock;

/* The step: lock the head row. */
static void
head_lock_step(void *arg)
{
	HeadLock   *hl = (HeadLock *) arg;

	hl->locked = head_lock(hl->entry);
}

/*
 * head_lock in a subtransaction, retried after a serialization failure: under
 * REPEATABLE READ and SERIALIZABLE, locking a row that a concurrent appender
 * moved (after waiting for it to commit) fails, and a new latest snapshot sees
 * the moved row.  False as head_lock.
 */
static bool
head_lock_retrying(ChainCache *entry)
{
	int			tries = 0;

	for (;;)
	{
		HeadLock	hl = {entry, false};
		ErrorData  *edata = ksubxact_run(head_lock_step, &hl);

		if (edata == NULL)
			return hl.locked;
		if (edata->sqlerrcode != ERRCODE_T_R_SERIALIZATION_FAILURE || ++tries > HEAD_LOCK_RETRIES)
			ReThrowError(edata);
		FreeErrorData(edata);
	}
}

/* Lock a chain's head row and read it into a new cache entry (inside SPI). */
static ChainCache *
chain_cache_load(const char *tenant_id)
{
	ChainCache *entry;

	entry = MemoryContextAllocZero(TopTransactionContext, sizeof(ChainCache));
	entry->state = MemoryContextAllocZero(TopTransactionContext, sizeof(ChainState));
	entry->tenant_id = tenant_id ? MemoryContextStrdup(TopTransactionContext, tenant_id) : NULL;
	entry->heads_relid = head_table_relid(tenant_id);
	if (!OidIsValid(entry->heads_relid))
		elog(ERROR, "the audit chain head table does not exist");
	entry->state->subid = InvalidSubTransactionId;	/* committed before this transaction */

	/* a concurrent first appender created the head: wait for it and lock that row */
	while (!(IsolationUsesXactSnapshot() ? head_lock_retrying(entry) : head_lock(entry)))
		CHECK_FOR_INTERRUPTS();
	entry->lock_subid = GetCurrentSubTransactionId();

	entry->next = chain_cache;
	chain_cache = entry;
	return entry;
}

/* The cache entry of a chain, its head row locked by this transaction (inside SPI). */
static ChainCache *
chain_entry(const char *tenant_id)
{
	ChainCache *entry = chain_cache_find(tenant_id);

	if (entry != NULL && entry->heads_relid != head_table_relid(tenant_id))
	{
		chain_cache_forget(entry);
		entry = NULL;
	}
	return entry != NULL ? entry : chain_cache_load(tenant_id);
}

/*
 * Lock a chain's head row to the end of the transaction, as an append does
 * (retention, before it reads the prefix it removes).
 */
void
kaireon_audit_lock_chain(const char *tenant_id)
{
	Oid			save_userid;
	int			save_sec;

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) chain_entry(tenant_id);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * The head of a chain as this transaction sees it, counting its own appends
 * (the head row is written only at commit); false when this transaction has
 * not appended to the chain.  For verification inside the appending transaction.
 */
bool
kaireon_audit_pending_head(const char *tenant_id, int64 *last_id, int64 *last_seq, char *last_hash)
{
	ChainCache *entry = chain_cache_find(tenant_id);

	if (entry == NULL || entry->state->last_seq == entry->row_seq)
		return false;
	*last_id = entry->state->last_id;
	*last_seq = entry->state->last_seq;
	memcpy(last_hash, entry->state->last_hash, KC_SHA256_HEX_LEN + 1);
	return true;
}

/*
 * Write the head rows of the chains this transaction moved (at commit or
 * prepare), with the latest snapshot (the row is locked, and may be newer
 * than a REPEATABLE READ transaction's snapshot).  A head row this
 * transaction created and left at 0 (its appends rolled back) is removed.
 */
static void
flush_heads(void)
{
	ChainCache *entry;
	bool		connected = false;
	Oid			save_userid = InvalidOid;
	int			save_sec = 0;
	int			save_nestlevel = 0;

	for (entry = chain_cache; entry != NULL; entry = entry->next)
	{
		ChainState *st = entry->state;
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		int			rc;

		if (st->last_seq == entry->row_seq && !(entry->created_head && st->last_seq == 0))
			continue;
		/* the extension was dropped (and maybe created again) since: nothing to record */
		if (head_table_relid(entry->tenant_id) != entry->heads_relid)
			continue;
		if (!connected)
		{
			(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			save_nestlevel = NewGUCNestLevel();
			/*
			 * On a Citus worker the commit of a transaction the coordinator
			 * opened is not a trigger, so Citus refuses statements on
			 * distributed tables there unless told otherwise: the head's
			 * UPDATE is the same single-shard, co-located statement a
			 * capture trigger runs on the tenant's shard, which Citus allows.
			 */
			if (GetConfigOption(CITUS_NESTED_EXECUTION, true, false) != NULL)
				(void) set_config_option(CITUS_NESTED_EXECUTION, "on", PGC_SUSET, PGC_S_SESSION,
										 GUC_ACTION_SAVE, true, 0, false);
			connected = true;
		}
		chain_arg_tenant(entry->tenant_id, args, nulls);
		if (st->last_seq == 0)
		{
			if (chain_exec(entry->tenant_id, CP_DROP_EMPTY, args, nulls, true) != SPI_OK_DELETE)
				elog(ERROR, "removing an empty audit chain head failed");
			continue;
		}
		args[1] = Int64GetDatum(st->last_id);
		args[2] = Int64GetDatum(st->last_seq);
		args[3] = CStringGetTextDatum(st->last_hash);
		args[4] = TimestampTzGetDatum(GetCurrentTimestamp());
		rc = chain_exec(entry->tenant_id, CP_UPDATE, args, nulls, true);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "moving the audit chain head failed");
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the audit chain head of %s was removed while this transaction appended to it",
							kaireon_audit_chain_name(entry->tenant_id)),
					 errhint("Run kaireon.verify_audit_chain to see the chain.")));
		entry->row_seq = st->last_seq;
	}
	if (connected)
	{
		AtEOXact_GUC(true, save_nestlevel);
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec);
	}
}

/* changed_fields as the jsonb array stored in the row. */
static Datum
changed_jsonb(const AuditRecord *rec)
{
	StringInfoData buf;

	initStringInfo(&buf);
	canon_changed(&buf, rec);
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
}

/* A text argument, or null. */
static void
arg_text(Datum *args, char *nulls, int i, const char *s)
{
	args[i] = s != NULL ? CStringGetTextDatum(s) : (Datum) 0;
	nulls[i] = s != NULL ? ' ' : 'n';
}

/* Insert an audit row (all of its fields are set; inside SPI). */
static void
insert_row(const AuditRecord *rec)
{
	Datum		args[INSERT_NARGS];
	char		nulls[INSERT_NARGS];

	memset(nulls, ' ', sizeof(nulls));
	chain_arg_tenant(rec->tenant_id, args, nulls);
	args[1] = Int64GetDatum(rec->id);
	args[2] = Int64GetDatum(rec->chain_seq);
	arg_text(args, nulls, 3, rec->request_id);
	arg_text(args, nulls, 4, rec->user_id);
	arg_text(args, nulls, 5, rec->session_user_name);
	arg_text(args, nulls, 6, rec->action);
	arg_text(args, nulls, 7, rec->entity_type);
	arg_text(args, nulls, 8, rec->entity_id);
	/* json is text inside: the JSON text goes in as it was hashed */
	arg_text(args, nulls, 9, rec->before);
	arg_text(args, nulls, 10, rec->after);
	args[11] = changed_jsonb(rec);
	args[12] = Int32GetDatum(rec->entity_version);
	nulls[12] = rec->has_version ? ' ' : 'n';
	args[13] = CStringGetTextDatum(rec->prev_hash);
	args[14] = CStringGetTextDatum(rec->integrity_hash);
	args[15] = TimestampTzGetDatum(rec->created_at);
	if (chain_exec(rec->tenant_id, CP_INSERT, args, nulls, false) != SPI_OK_INSERT || SPI_processed != 1)
		elog(ERROR, "inserting the audit row failed");
}

/*
 * Append rec to its chain: lock the chain's head row (on the first append of
 * the transaction to it), give rec its id, sequence number, prev_hash and
 * integrity_hash, insert it and move the head (in memory; the head row is
 * written at commit).  The caller fills every other field
 * (kaireon_audit_fill_session for the session ones).
 */
void
kaireon_audit_append(AuditRecord *rec)
{
	Oid			save_userid;
	int			save_sec;
	ChainCache *entry;
	ChainState *st;
	SubTransactionId subid = GetCurrentSubTransactionId();
	Oid			seqoid;

	(void) kaireon_audit_switch_to_owner(&save_userid, &save_sec);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	entry = chain_entry(rec->tenant_id);

	seqoid = get_relname_relid("audit_logs_id_seq", kaireon_nsp());
	if (!OidIsValid(seqoid))
		elog(ERROR, "sequence kaireon.audit_logs_id_seq does not exist");
	/* increasing within the chain, even when this node's sequence is behind its last id */
	rec->id = Max(nextval_internal(seqoid, false), entry->state->last_id + 1);
	rec->chain_seq = entry->state->last_seq + 1;
	memcpy(rec->prev_hash, entry->state->last_hash, KC_SHA256_HEX_LEN + 1);
	kaireon_audit_hash(rec, rec->integrity_hash);
	insert_row(rec);

	/* the new head, in a state of this subtransaction's own */
	st = entry->state;
	if (st->subid != subid)
	{
		st = MemoryContextAlloc(TopTransactionContext, sizeof(ChainState));
		*st = *entry->state;
		st->subid = subid;
		st->prev = entry->state;
		entry->state = st;
	}
	st->last_id = rec->id;
	st->last_seq = rec->chain_seq;
	memcpy(st->last_hash, rec->integrity_hash, KC_SHA256_HEX_LEN + 1);
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}
