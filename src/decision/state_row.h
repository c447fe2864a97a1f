/*
 * decision/state_row.h
 *	  The customer's data row and segment membership read straight through
 *	  the data table's primary key (decision/state_row.c), for
 *	  decision/customer.c.
 */
#ifndef KAIREON_DECISION_STATE_ROW_H
#define KAIREON_DECISION_STATE_ROW_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"

/* false: the caller runs the customer schema's lookup query instead (see the protocol in state_row.c) */
extern bool kaireon_read_customer_row(const char *qualified_table, const char *tenant_id,
									  const char *customer_id, HeapTuple *row, TupleDesc *desc,
									  Oid *table);

/*
 * Whether the customer whose row of table kaireon_read_customer_row read (row NULL: none) is
 * in the segment view (qualified name); -1 when the view's SQL must answer.
 */
extern int	kaireon_segment_member(const char *view, Oid table, HeapTuple row, TupleDesc desc);

#endif							/* KAIREON_DECISION_STATE_ROW_H */
