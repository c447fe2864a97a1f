/*
 * kaireon.c
 *	  Module entry: _PG_init calls each module's init, and kaireon.version().
 *
 * The library is loaded either from shared_preload_libraries or on the first
 * call of one of its functions; every module's init must work in both cases.
 */
#include "postgres.h"

#include "util/json.h"
#include "util/version.h"
#include "config/config.h"
#include "config/references.h"
#include "decision/history_write.h"
#include "decision/projection.h"

#include "fmgr.h"
#include "utils/builtins.h"

#include "arbitration/arbitration.h"
#include "audit/audit.h"
#include "campaign/schedule.h"
#include "maintenance/maintenance.h"
#include "scoring/scoring.h"
#include "security/confine.h"
#include "security/governance.h"
#include "security/secrets.h"
#include "security/session.h"
#include "stats/stats.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(kaireon_version);

/* Load-time initialisation: one call per module, nothing else. */
void
_PG_init(void)
{
	kaireon_json_init();
	kaireon_version_init();
	kaireon_stats_init();
	kaireon_progress_init();
	kaireon_session_init();
	kaireon_confine_init();
	kaireon_config_cache_init();
	kaireon_references_init();
	kaireon_history_write_init();
	kaireon_projection_init();
	kaireon_flowgraph_init();
	kaireon_scoring_init();
	kaireon_audit_init();
	kaireon_secrets_init();
	kaireon_governance_init();
	kaireon_arbitration_init();
	kaireon_schedule_init();
	kaireon_jobs_init();
	kaireon_partitions_init();
	kaireon_retention_init();
	kaireon_catalogue_init();
	kaireon_worker_init();
	/* last: reserving the prefix drops placeholders of settings not defined by now */
	kaireon_session_reserve_prefix();
}

/* kaireon.version(): the version of the loaded C module. */
Datum
kaireon_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(KAIREON_VERSION));
}
