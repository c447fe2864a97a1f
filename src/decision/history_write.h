/*
 * decision/history_write.h
 *	  Rows written into interaction_history through the executor's insert
 *	  routines, without a statement (decision/history_write.c), for
 *	  decision/persist.c.
 */
#ifndef KAIREON_DECISION_HISTORY_WRITE_H
#define KAIREON_DECISION_HISTORY_WRITE_H

#include "postgres.h"

/* The rows to write: ncols named columns, values[c][r] and nulls[c][r] per row r. */
typedef struct KHistoryRows
{
	int			ncols;
	const char *const *names;	/* a static array: the column numbers are kept per array */
	const Oid  *types;			/* each column's type, as the table has it (else the statement runs) */
	Datum	  **values;
	bool	  **nulls;
	int			nrows;
	/* a kaireon table the statement also reads, and its columns read (NULL: none; static) */
	const char *read_table;
	const char *const *read_columns;
	int			nread_columns;
} KHistoryRows;

extern void kaireon_history_write_init(void);

/* false: nothing was written, the caller runs its statement (see the protocol in history_write.c) */
extern bool kaireon_history_insert(const KHistoryRows *rows, uint64 *inserted);

#endif
