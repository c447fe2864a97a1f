/*
 * audit/chain.c
 *	  The audit hash chain: the canonical form of an audit row, its hash, and
 *	  appending a row to its tenant's chain.
 *
 * integrity_hash = hex(SHA-256(prev_hash || canonical)), where prev_hash is the
 * 64 hex digits of the previous row of the same chain (64 zeros for the first)
 * and canonical is the row's fields as one JSON object with sorted keys and no
 * whitespace (see canon_append).  docs/audit.md states the format field by
 * field so that an outside auditor can re-verify it.
 *
 * Locking protocol.  There is one chain per tenant plus one for rows without a
 * tenant, and kaireon.audit_chain_heads holds each chain's last id, sequence
 * number and hash.  An append first takes a transaction-level exclusive lock
 * on the chain (an advisory lock tag of kaireon's own, field4 = 0x4B41, keyed
 * by a 64-bit hash of the tenant id, so user advisory locks can never collide
 * with it), then reads the head with a fresh snapshot, inserts the audit row
 * and moves the head.  The lock is held to the end of the transaction, so the
 * next appender of the chain reads the head only after this transaction has
 * committed (and sees its rows) or rolled back (and sees none of them): the
 * chain stays linear and a rollback leaves no gap.  Reading the head with the
 * latest snapshot, not the transaction's, and writing it by its tuple id is
 * what lets REPEATABLE READ and SERIALIZABLE transactions append without a
 * serialization failure.  A transaction writing to the chains of two tenants
 * takes both locks in the order it writes, so two such transactions in
 * opposite orders can deadlock (one is cancelled by the deadlock detector).
 *
 * Within a transaction the head is read once and then kept in memory, per
 * subtransaction level (chain.c's cache), and the head row is written
 * once when the transaction commits or prepares (a PRE_COMMIT callback), so a
 * statement changing many rows does not rewrite the head row per row.  The
 * audit row is written directly (table AM and index insertion, as the
 * executor does, with no triggers or CHECK constraints to evaluate): it is
 * complete and valid by construction, and the unique index on (tenant_id,
 * chain_seq) still refuses a second row for one position of a chain.
 *
 * The capture triggers are deferred constraint triggers (capture.c), so all of a
 * transaction's appends happen while it commits and the chain lock is held
 * only from then to the end of the commit.
 *
 * The append runs as the owner of kaireon.audit_logs (like a SECURITY DEFINER
 * function), so application roles need no privilege on the log or the heads.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/fmgroids.h"
#include "storage/itemptr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "security/owner.h"
#include "audit/audit.h"

/* field4 of kaireon's advisory lock tags (user advisory locks use 1 and 2) */
#define KAIREON_LOCKTAG_AUDIT_CHAIN 0x4B41


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

/* Take the transaction-level lock that serialises appends to one chain. */
void
kaireon_audit_lock_chain(const char *tenant_id)
{
	LOCKTAG		tag;
	uint64		h = 0;

	if (tenant_id != NULL)
		h = hash_bytes_extended((const unsigned char *) tenant_id, strlen(tenant_id), 0x6b61697265);
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 KAIREON_LOCKTAG_AUDIT_CHAIN);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
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
 * while their locks are held.  Each entry remembers what the chain's head row
 * holds (row_seq), and the chain's true head as a stack of
 * states, one per subtransaction level that appended: a subtransaction that
 * rolls back pops its state (its audit rows are gone), one that commits hands
 * its state to its parent.  The head row itself is written once, when the
 * transaction commits (or prepares), not once per appended row.
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
	char	   *tenant_id;		/* NULL: the chain without a tenant */
	Oid			heads_relid;	/* kaireon.audit_chain_heads when it was read */
	int64		row_seq;		/* the last_seq the head row holds */
	ChainState *state;			/* the chain's head now */
} ChainCache;

static ChainCache *chain_cache = NULL;

static void flush_heads(void);

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

/* A subtransaction ended: pop the heads it moved (abort) or hand them to its parent (commit). */
static void
chain_cache_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	ChainCache *entry;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	for (entry = chain_cache; entry != NULL; entry = entry->next)
	{
		if (entry->state->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_ABORT_SUB)
			entry->state = entry->state->prev;
		else
		{
			entry->state->subid = parentSubid;
			if (entry->state->prev != NULL && entry->state->prev->subid == parentSubid)
				entry->state->prev = entry->state->prev->prev;
		}
	}
}

/* Module init: register the callbacks that keep the head cache honest. */
void
kaireon_audit_init(void)
{
	RegisterXactCallback(chain_cache_xact_callback, NULL);
	RegisterSubXactCallback(chain_cache_subxact_callback, NULL);
}

/* Attribute number of a named column (kaireon's own tables). */
static int
column_number(Relation rel, const char *name)
{
	int			attno = SPI_fnumber(RelationGetDescr(rel), name);

	if (attno <= 0)
		elog(ERROR, "table \"%s\" has no column \"%s\"", RelationGetRelationName(rel), name);
	return attno;
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

/*
 * Find a chain's head row through the unique index on tenant_id with a fresh
 * snapshot (the chain lock is held, so the previous appender has committed or
 * rolled back, and this transaction's own changes show).  Returns a copy of
 * the row, or NULL.
 */
static HeapTuple
head_row_lookup(Relation rel, Oid idxid, const char *tenant_id)
{
	SysScanDesc scan;
	ScanKeyData key;
	Snapshot	snapshot;
	HeapTuple	tup;

	if (tenant_id != NULL)
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(tenant_id));
	else
		ScanKeyEntryInitialize(&key, SK_ISNULL | SK_SEARCHNULL, 1, InvalidStrategy,
							   InvalidOid, InvalidOid, InvalidOid, (Datum) 0);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, idxid, true, snapshot, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	return tup;
}

/* Open kaireon.audit_chain_heads and find its tenant index; false when the extension is gone. */
static bool
heads_open(Relation *rel, Oid *idxid)
{
	Oid			nsp = get_namespace_oid("kaireon", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("audit_chain_heads", nsp) : InvalidOid;

	*idxid = OidIsValid(nsp) ? get_relname_relid("audit_chain_heads_tenant_id_key", nsp) : InvalidOid;
	if (!OidIsValid(relid) || !OidIsValid(*idxid))
		return false;
	*rel = table_open(relid, RowExclusiveLock);
	return true;
}

/*
 * Whether a chain has any audit row, with a fresh snapshot (the chain lock is
 * held): a chain with rows but no head row lost its head.
 */
static bool
chain_has_rows(const char *tenant_id)
{
	Oid			relid = kaireon_audit_relid();
	Oid			idxid = get_relname_relid("audit_logs_tenant_id_idx", kaireon_nsp());
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	Snapshot	snapshot;
	bool		found;

	if (!OidIsValid(idxid))
		elog(ERROR, "index kaireon.audit_logs_tenant_id_idx does not exist");
	rel = table_open(relid, AccessShareLock);
	/* systable_beginscan takes the table's attribute number */
	if (tenant_id != NULL)
		ScanKeyInit(&key, column_number(rel, "tenant_id"), BTEqualStrategyNumber, F_TEXTEQ,
					CStringGetTextDatum(tenant_id));
	else
		ScanKeyEntryInitialize(&key, SK_ISNULL | SK_SEARCHNULL, column_number(rel, "tenant_id"),
							   InvalidStrategy, InvalidOid, InvalidOid, InvalidOid, (Datum) 0);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, idxid, true, snapshot, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return found;
}

/* Read a chain's head row into a new cache entry. */
static ChainCache *
chain_cache_load(const char *tenant_id)
{
	Relation	rel;
	Oid			idxid;
	HeapTuple	tup;
	ChainCache *entry;
	ChainState *state;

	if (!heads_open(&rel, &idxid))
		elog(ERROR, "table kaireon.audit_chain_heads or its index does not exist");
	entry = MemoryContextAllocZero(TopTransactionContext, sizeof(ChainCache));
	state = MemoryContextAllocZero(TopTransactionContext, sizeof(ChainState));
	entry->tenant_id = tenant_id ? MemoryContextStrdup(TopTransactionContext, tenant_id) : NULL;
	entry->heads_relid = RelationGetRelid(rel);
	entry->state = state;
	state->subid = InvalidSubTransactionId;	/* committed before this transaction */
	memcpy(state->last_hash, KAIREON_AUDIT_GENESIS_HASH, KC_SHA256_HEX_LEN + 1);

	tup = head_row_lookup(rel, idxid, tenant_id);
	if (tup != NULL)
	{
		TupleDesc	desc = RelationGetDescr(rel);
		bool		isnull;
		char	   *last_hash = TextDatumGetCString(heap_getattr(tup, column_number(rel, "last_hash"), desc, &isnull));

		if (isnull || strlen(last_hash) != KC_SHA256_HEX_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the audit chain head of tenant %s holds no valid hash",
							tenant_id ? tenant_id : "(none)"),
					 errhint("Run kaireon.verify_audit_chain to find where the chain is broken.")));
		state->last_id = DatumGetInt64(heap_getattr(tup, column_number(rel, "last_id"), desc, &isnull));
		state->last_seq = DatumGetInt64(heap_getattr(tup, column_number(rel, "last_seq"), desc, &isnull));
		memcpy(state->last_hash, last_hash, KC_SHA256_HEX_LEN + 1);
		entry->row_seq = state->last_seq;
	}
	else if (chain_has_rows(tenant_id))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the audit chain of %s%s%s has rows but no head; nothing can be appended to it",
						tenant_id ? "tenant \"" : "rows without a tenant", tenant_id ? tenant_id : "",
						tenant_id ? "\"" : ""),
				 errhint("Run kaireon.verify_audit_chain (with a digest kept before, if any) to find what was removed.")));
	table_close(rel, NoLock);

	entry->next = chain_cache;
	chain_cache = entry;
	return entry;
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
 * Write a tuple of values into rel (insert, or update of otid) and its
 * indexes the way the executor does, without triggers or CHECK constraints:
 * kaireon's own rows are built complete and valid here, and the unique
 * indexes still refuse a second row for one chain position.
 */
static void
direct_write(Relation rel, Datum *values, bool *nulls, ItemPointer otid)
{
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel),
												  table_slot_callbacks(rel));
	bool		update_indexes = true;

	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, values, sizeof(Datum) * RelationGetDescr(rel)->natts);
	memcpy(slot->tts_isnull, nulls, sizeof(bool) * RelationGetDescr(rel)->natts);
	ExecStoreVirtualTuple(slot);
	if (otid == NULL)
		simple_table_tuple_insert(rel, slot);
	else
		simple_table_tuple_update(rel, otid, slot, GetLatestSnapshot(), &update_indexes);
	if (update_indexes && rri->ri_NumIndices > 0)
		(void) ExecInsertIndexTuples(rri, slot, estate, otid != NULL, false, NULL, NIL);
	ExecCloseIndices(rri);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
}

/* Set one column of a values/nulls pair by name. */
static void
set_column(Relation rel, Datum *values, bool *nulls, const char *name, Datum value, bool isnull)
{
	int			attno = column_number(rel, name);

	values[attno - 1] = value;
	nulls[attno - 1] = isnull;
}

/* A text datum or null, for set_column. */
#define TEXT_OR_NULL(s) ((s) == NULL ? (Datum) 0 : CStringGetTextDatum(s)), ((s) == NULL)

/*
 * Write the head rows of the chains this transaction moved (at commit or
 * prepare).  The row is looked up again rather than remembered, so that it is
 * right even when something in this transaction changed the heads table.
 */
static void
flush_heads(void)
{
	ChainCache *entry;
	Relation	rel = NULL;
	Oid			idxid = InvalidOid;
	bool		have_table = false;

	for (entry = chain_cache; entry != NULL; entry = entry->next)
	{
		ChainState *st = entry->state;
		TimestampTz now = GetCurrentTimestamp();
		HeapTuple	old;
		int			natts;
		Datum	   *values;
		bool	   *nulls;
		bool		isnull;

		if (st->last_seq == entry->row_seq)
			continue;
		if (rel == NULL && !have_table)
			have_table = heads_open(&rel, &idxid);
		/* the extension was dropped (and maybe created again) since: nothing to record */
		if (rel == NULL || RelationGetRelid(rel) != entry->heads_relid)
			continue;
		old = head_row_lookup(rel, idxid, entry->tenant_id);
		natts = RelationGetDescr(rel)->natts;
		values = palloc0(sizeof(Datum) * natts);
		nulls = palloc(sizeof(bool) * natts);
		memset(nulls, true, sizeof(bool) * natts);
		set_column(rel, values, nulls, "tenant_id", TEXT_OR_NULL(entry->tenant_id));
		set_column(rel, values, nulls, "last_id", Int64GetDatum(st->last_id), false);
		set_column(rel, values, nulls, "last_seq", Int64GetDatum(st->last_seq), false);
		set_column(rel, values, nulls, "last_hash", CStringGetTextDatum(st->last_hash), false);
		set_column(rel, values, nulls, "created_at",
				   old ? heap_getattr(old, column_number(rel, "created_at"), RelationGetDescr(rel), &isnull)
				   : TimestampTzGetDatum(now), false);
		set_column(rel, values, nulls, "updated_at", TimestampTzGetDatum(now), false);
		direct_write(rel, values, nulls, old ? &old->t_self : NULL);
		entry->row_seq = st->last_seq;
	}
	if (rel != NULL)
		table_close(rel, NoLock);
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

/* Insert an audit row (all of its fields are set). */
static void
insert_row(const AuditRecord *rec)
{
	Relation	rel = table_open(kaireon_audit_relid(), RowExclusiveLock);
	int			natts = RelationGetDescr(rel)->natts;
	Datum	   *values = palloc0(sizeof(Datum) * natts);
	bool	   *nulls = palloc(sizeof(bool) * natts);

	memset(nulls, true, sizeof(bool) * natts);
	set_column(rel, values, nulls, "id", Int64GetDatum(rec->id), false);
	set_column(rel, values, nulls, "tenant_id", TEXT_OR_NULL(rec->tenant_id));
	set_column(rel, values, nulls, "chain_seq", Int64GetDatum(rec->chain_seq), false);
	set_column(rel, values, nulls, "request_id", TEXT_OR_NULL(rec->request_id));
	set_column(rel, values, nulls, "user_id", TEXT_OR_NULL(rec->user_id));
	set_column(rel, values, nulls, "session_user_name", TEXT_OR_NULL(rec->session_user_name));
	set_column(rel, values, nulls, "action", TEXT_OR_NULL(rec->action));
	set_column(rel, values, nulls, "entity_type", TEXT_OR_NULL(rec->entity_type));
	set_column(rel, values, nulls, "entity_id", TEXT_OR_NULL(rec->entity_id));
	/* json is text inside: the JSON text goes in as it was hashed */
	set_column(rel, values, nulls, "before", TEXT_OR_NULL(rec->before));
	set_column(rel, values, nulls, "after", TEXT_OR_NULL(rec->after));
	set_column(rel, values, nulls, "changed_fields", changed_jsonb(rec), false);
	set_column(rel, values, nulls, "entity_version", Int32GetDatum(rec->entity_version), !rec->has_version);
	set_column(rel, values, nulls, "prev_hash", CStringGetTextDatum(rec->prev_hash), false);
	set_column(rel, values, nulls, "integrity_hash", CStringGetTextDatum(rec->integrity_hash), false);
	set_column(rel, values, nulls, "created_at", TimestampTzGetDatum(rec->created_at), false);
	direct_write(rel, values, nulls, NULL);
	table_close(rel, NoLock);
}

/*
 * Append rec to its tenant's chain: lock the chain, take its head, give rec
 * its id, sequence number, prev_hash and integrity_hash, insert it and move
 * the head (in memory; the head row is written at commit).  The caller fills
 * every other field (kaireon_audit_fill_session for the session ones).
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
	kaireon_audit_lock_chain(rec->tenant_id);
	entry = chain_cache_find(rec->tenant_id);
	if (entry != NULL && entry->heads_relid != get_relname_relid("audit_chain_heads", kaireon_nsp()))
	{
		chain_cache_forget(entry);
		entry = NULL;
	}
	if (entry == NULL)
		entry = chain_cache_load(rec->tenant_id);

	seqoid = get_relname_relid("audit_logs_id_seq", kaireon_nsp());
	if (!OidIsValid(seqoid))
		elog(ERROR, "sequence kaireon.audit_logs_id_seq does not exist");
	rec->id = nextval_internal(seqoid, false);
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
	SetUserIdAndSecContext(save_userid, save_sec);
}
