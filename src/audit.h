/*
 * audit.h
 *	  The audit hash chain shared by its three modules: audit.c (capture
 *	  triggers and the guard of kaireon.audit_logs), audit_chain.c (canonical
 *	  form, hashing, appending under the chain lock) and audit_verify.c
 *	  (verification and retention of a chain).  The format is documented in
 *	  docs/audit.md; keep the two in step.
 */
#ifndef KAIREON_AUDIT_H
#define KAIREON_AUDIT_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "util/crypto.h"

/* One row of kaireon.audit_logs, as hashed. */
typedef struct AuditRecord
{
	int64		id;
	const char *tenant_id;		/* NULL: the chain of rows without a tenant */
	int64		chain_seq;
	const char *action;
	const char *entity_type;
	const char *entity_id;
	const char *before;			/* JSON text exactly as stored, or NULL */
	const char *after;
	int			nchanged;
	const char **changed;		/* changed column names */
	bool		has_version;
	int32		entity_version;
	const char *user_id;
	const char *request_id;
	const char *session_user_name;
	TimestampTz created_at;
	char		prev_hash[KC_SHA256_HEX_LEN + 1];
	char		integrity_hash[KC_SHA256_HEX_LEN + 1];
} AuditRecord;

/* audit_chain.c */
extern void kaireon_audit_hash(const AuditRecord *rec, char out[KC_SHA256_HEX_LEN + 1]);
extern char *kaireon_audit_canonical(const AuditRecord *rec);
extern void kaireon_audit_append(AuditRecord *rec);
extern void kaireon_audit_lock_chain(const char *tenant_id);
extern Oid	kaireon_audit_relid(void);
extern Oid	kaireon_audit_switch_to_owner(Oid *save_userid, int *save_sec);
extern void kaireon_audit_fill_session(AuditRecord *rec);
extern bool kaireon_audit_pending_head(const char *tenant_id, int64 *last_id, int64 *last_seq,
									   char *last_hash);

/* audit.c */
extern bool kaireon_audit_restore_session(void);
extern bool kaireon_audit_purging;

#define KAIREON_AUDIT_GENESIS_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

#endif							/* KAIREON_AUDIT_H */
