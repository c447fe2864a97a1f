/*
 * decision/state_read.h
 *	  The customer's history and suppressions read straight through their
 *	  indexes (decision/state_read.c), for decision/customer.c; the map of
 *	  the relations read directly and its helpers, for decision/state_row.c
 *	  (the customer's data row and segments) and decision/history_write.c.
 */
#ifndef KAIREON_DECISION_STATE_READ_H
#define KAIREON_DECISION_STATE_READ_H

#include "postgres.h"

#include "access/htup.h"
#include "access/skey.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "nodes/execnodes.h"
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


/* ---- the map of the relations read directly (protocol steps 1-3 and 5 of state_read.c) ---- */

/* The columns the history SQL reads, in KHistoryRow's order after the keys. */
#define H_TYPE		0
#define H_OUTCOME	1
#define H_OFFER		2
#define H_CHANNEL	3
#define H_AT		4
#define H_NCOLS		5

#define S_SCOPE		0
#define S_SCOPE_ID	1
#define S_REASON	2
#define S_EXPIRES	3
#define S_NCOLS		4

/*
 * An index scanned by equality on (tenant_id, customer_id), its first two
 * columns in either order, and, for the history, a bound on the third column.
 */
typedef struct KIndexKeys
{
	Oid			index;
	bool		customer_first; /* its first two columns are (customer_id, tenant_id) */
	FmgrInfo	eq[2];			/* = of the index's operator family on its first two columns */
	Oid			coll[3];		/* the index columns' collations */
	FmgrInfo	ge;				/* >= on the third column (history only) */
	TransactionId checkxmin;	/* indcheckxmin: its pg_index xmin (older snapshots may miss rows), else invalid */
} KIndexKeys;

/* One leaf partition of the history. */
typedef struct KPart
{
	Oid			rel;
	KIndexKeys	keys;
	AttrNumber	att[H_NCOLS];
	Oid			type_coll;		/* interaction_type's collation */
	bool		bounded;		/* has an upper bound (not the default partition, nor MAXVALUE) */
	Datum		upper;			/* exclusive upper bound of occurred_at */
	bool		had_pages;		/* found with a page once since the map was built: not measured again */
} KPart;

/* A table read here: whether it may be, and what its rights and policy checks need. */
typedef struct KTable
{
	bool		direct;			/* read here; else by the SQL */
	Oid			rel;
	RangeTblEntry *rte;			/* for ExecCheckRTPerms: SELECT on the columns the SQL names */
	bool		tenant_policy;	/* its policies are exactly kaireon's tenant_isolation */
} KTable;

/* The per-backend map of the relations (protocol step 1). */
typedef struct KStateMap
{
	bool		valid;
	MemoryContext mcxt;
	KTable		history;
	int			nparts;
	KPart	   *parts;
	FmgrInfo	partcmp;		/* the partition key's comparison (its support function) */
	Oid			partcoll;
	KTable		supp;
	KIndexKeys	supp_keys;
	AttrNumber	supp_att[S_NCOLS];
	int			ncustomer_tables;
	struct KCustomerTable *customer_tables;	/* the customer data tables read so far */
	int			nsegment_views;
	struct KSegmentView *segment_views;	/* the segment views asked about so far */
} KStateMap;

#define KSEGMENT_QUAL_USERS 4		/* users a segment view's compiled WHERE clause is kept for */

/* A segment view (protocol step 6): whether it is answered here, and how. */
typedef struct KSegmentView
{
	Oid			view;
	Oid			table;			/* its one data table */
	bool		direct;
	RangeTblEntry *rte;			/* SELECT on the view's customer_id, for ExecCheckRTPerms */
	List	   *where;			/* its WHERE clause over the table's row, planned (NIL: none) */
	MemoryContext qual_cxt;		/* the compiled clauses' memory (a child of the map's) */
	uint64		quals_made;		/* kaireon_rights_changes() when they were made */
	int			nquals;			/* where compiled, for each user who read the view (ExecInitQual */
	Oid			qual_user[KSEGMENT_QUAL_USERS]; /* checks the user's EXECUTE rights on its */
	ExprState  *qual[KSEGMENT_QUAL_USERS];	/* functions, as the view's SQL does for its invoker) */
} KSegmentView;

/*
 * A tenant's customer data table (a published customer schema), read by its
 * primary key (tenant_id, key): the SQL is "SELECT t.* ... WHERE t.tenant_id
 * = $2 AND t.key = $1::keytype" (config/compile.c).
 */
typedef struct KCustomerTable
{
	KTable		table;
	KIndexKeys	keys;
	Oid			key_input;		/* the key type's input function: the cast from text is by I/O */
	Oid			key_ioparam;
	bool		key_is_text;	/* no cast at all */
} KCustomerTable;

extern KStateMap kaireon_state_map;

/* one more zeroed entry of an array of the map, grown in the map's context */
extern void *kaireon_state_map_entry(void **arr, int *n, Size size);
/* the index of rel on the named columns (the first two in either order), its operators in keys */
extern bool kaireon_state_find_index(Relation rel, const char *const *names, const Oid *types, int ncols,
									 KIndexKeys *keys);
/* a table's rights entry: SELECT on the key columns and the named ones */
extern void kaireon_state_table_entry(KTable *t, Relation rel, const char *const *names, int ncols);
/* (re)build the map */
extern void kaireon_state_build_map(void);
/* how many of the table's rows of the tenant the session may see: -1 the SQL runs, 0 none, 1 all */
extern int	kaireon_state_visible_rows(KTable *t, const char *tenant_id);
extern bool kaireon_state_plain_table(Relation rel);
/* may the transaction's snapshot use the index (indcheckxmin) */
extern bool kaireon_state_index_usable(const KIndexKeys *k);
/* the scan keys of (tenant, customer[, since]) on the index; their number */
extern int	kaireon_state_scan_keys(ScanKey keys, const KIndexKeys *k, Datum tenant, Datum customer,
									const Datum *since);

#endif							/* KAIREON_DECISION_STATE_READ_H */
