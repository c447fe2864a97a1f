/*
 * util/subxact.c
 *	  The one place kaireon runs a step in an internal subtransaction and
 *	  turns its error into a value: a maintenance job, a campaign step, a
 *	  respond_bulk item, a model that no longer compiles, a retried lock.
 *
 * Protocol: BeginInternalSubTransaction; the step runs in the caller's memory
 * context; on success the subtransaction is released, on an error it is rolled
 * back and a copy of the error (in the caller's memory context) is returned.
 * Either way the caller's memory context and resource owner are current again.
 * A cancellation (statement_timeout, pg_cancel_backend: 57014) is re-raised
 * once the subtransaction is gone: it ends the caller's work as a whole,
 * never one step of it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/resowner.h"

#include "util/subxact.h"

/*
 * Run fn(arg) in an internal subtransaction.  Returns NULL when it succeeded,
 * else the error it raised, after rolling the subtransaction back.
 */
ErrorData *
ksubxact_run(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	if (edata != NULL && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	return edata;
}
