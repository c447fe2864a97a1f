/*
 * audit/audit.h
 *	  The audit hash chain shared by its modules, bottom-up: chain.c
 *	  (canonical form, hashing, appending under the head row lock), capture.c
 *	  (capture triggers and the guards of kaireon.audit_logs and
 *	  audit_chain_heads), access.c (who may read a chain, its committed end),
 *	  digest.c (signed digests of a chain's end) and verify.c (verification and
 *	  retention of a chain).  The format is documented in docs/audit.md; keep
 *	  the two in step.
 */
#ifndef KAIREON_AUDIT_H
#define KAIREON_AUDIT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "util/crypto.h"

/* One row of kaireon.audit_logs, as hashed. */
typedef struct AuditRecord
{
	int64		id;
	const char *tenant_id;		/* NULL: the platform chain (platform_audit_logs) */
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

/* chain.c */
extern void kaireon_audit_init(void);
extern void kaireon_audit_hash(const AuditRecord *rec, char out[KC_SHA256_HEX_LEN + 1]);
extern char *kaireon_audit_canonical(const AuditRecord *rec);
extern const char *kaireon_audit_time_text(TimestampTz ts);
extern void kaireon_audit_append(AuditRecord *rec);
extern void kaireon_audit_lock_chain(const char *tenant_id);
extern Oid	kaireon_audit_relid(void);
extern Oid	kaireon_audit_switch_to_owner(Oid *save_userid, int *save_sec);
extern void kaireon_audit_fill_session(AuditRecord *rec);
extern bool kaireon_audit_pending_head(const char *tenant_id, int64 *last_id, int64 *last_seq,
									   char *last_hash);

/* A digest of a chain's end (digest.c), as made or as read back. */
typedef struct AuditDigest
{
	const char *tenant_id;		/* NULL: the chain of rows without a tenant */
	int64		id;
	int64		chain_seq;
	char		hash[KC_SHA256_HEX_LEN + 1];
	char		digest_time[32];
	char		key_id[17];
} AuditDigest;

/* access.c */
extern void kaireon_audit_check_chain_access(const char *tenant_id);
extern void kaireon_audit_require_chain(const char *tenant_id);
extern void kaireon_audit_chain_end(const char *tenant_id, int64 *last_id, int64 *last_seq,
									char *last_hash);
extern Datum kaireon_audit_arg_text(const char *s, char *nulls, int i);
extern const char *kaireon_audit_chain_condition(const char *tenant_id);
extern const char *kaireon_audit_log_table(const char *tenant_id);
extern const char *kaireon_audit_head_table(const char *tenant_id);
extern char *kaireon_audit_chain_name(const char *tenant_id);

/* digest.c */
extern void kaireon_audit_digest_read(Jsonb *jb, const char *tenant_id, AuditDigest *d);

/* capture.c */
extern bool kaireon_audit_restore_session(void);
extern bool kaireon_audit_purging;

#define KAIREON_AUDIT_GENESIS_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

#endif							/* KAIREON_AUDIT_H */
