/*
 * decision/state_read.h
 *	  The customer's history and suppressions read straight through their
 *	  indexes (decision/state_read.c), for decision/customer.c.
 */
#ifndef KAIREON_DECISION_STATE_READ_H
#define KAIREON_DECISION_STATE_READ_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "nodes/parsenodes.h"
#include "utils/relcache.h"

/* One history row as the history query returns it. */
typedef struct KHistoryRow
{
	char	   *type;			/* interaction_type */
	char	   *outcome;		/* outcome_type_key, or NULL */
	char	   *offer_id;
	char	   *channel_id;
	TimestampTz at;				/* occurred_at */
	int			seq;			/* order of reading (ties of at) */
} KHistoryRow;

/* One active suppression as the suppression query returns it. */
typedef struct KSuppressionRow
{
	char	   *scope;
	char	   *scope_id;
	char	   *reason;
} KSuppressionRow;

/* whether rel's only row level security policy is kaireon's tenant_isolation, for cmd */
extern bool kaireon_only_tenant_policy(Relation rel, char cmd);

/* the session's rights on a table for a direct read or write (state_read.c) */
typedef enum KTenantRls
{
	KRLS_SQL,					/* the SQL runs instead */
	KRLS_OFF,					/* row level security does not apply */
	KRLS_TENANT					/* kaireon's tenant policy applies: the current tenant's rows */
} KTenantRls;
extern KTenantRls kaireon_tenant_rls(RangeTblEntry *rte, bool tenant_policy, const char **current);

/* false: the caller runs the SQL instead (see the protocol in state_read.c) */
extern bool kaireon_read_history(const char *tenant_id, const char *customer_id, TimestampTz since,
								 int limit, KHistoryRow **rows, int *nrows);
extern bool kaireon_read_suppressions(const char *tenant_id, const char *customer_id, TimestampTz now,
									  KSuppressionRow **rows, int *nrows);
extern bool kaireon_read_customer_row(const char *qualified_table, const char *tenant_id,
									  const char *customer_id, HeapTuple *row, TupleDesc *desc,
									  Oid *table);

/*
 * Whether the customer whose row of table kaireon_read_customer_row read (row NULL: none) is
 * in the segment view (qualified name); -1 when the view's SQL must answer.
 */
extern int	kaireon_segment_member(const char *view, Oid table, HeapTuple row, TupleDesc desc);

#endif							/* KAIREON_DECISION_STATE_READ_H */
