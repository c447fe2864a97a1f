/*
 * config/caps.h
 *	  The SQL text of the volume and budget counters, written once: which
 *	  rows are in force, when a volume constraint's period is over, and what
 *	  it has used.  Layers that read the counters include this header (the
 *	  configuration cache and the per-request state query in config/, the
 *	  constraints of arbitration/); every statement that changes a counter is
 *	  in decision/caps.c, built from the same pieces.
 *
 * Counters.  kaireon.volume_constraints.current_count is the count of the
 * period ending at reset_at; a period whose reset_at has passed (or was never
 * set) counts as 0 until the next taking UPDATE restarts it and moves reset_at
 * to the end of the current period (kaireon_internal._period_end).  The used_* columns
 * of kaireon.budget_allocations count the row's own period (period_key) and
 * are never reset: a new period is a new row.
 *
 * Aliases: v for volume_constraints, b for budget_allocations; $1 is the
 * tenant id.
 */
#ifndef KAIREON_CONFIG_CAPS_H
#define KAIREON_CONFIG_CAPS_H

#include "config/config.h"

/* caps.c: does a budget allocation count at now (its period key is now's, UTC, or it stands)? */
extern bool kaireon_budget_current(const KCap *c, TimestampTz now);

/* The volume constraint's period is over (or never started): its count restarts. */
#define KCAPS_VOLUME_PERIOD_OVER_AT(now) "(v.reset_at IS NULL OR v.reset_at <= " now ")"
#define KCAPS_VOLUME_PERIOD_OVER KCAPS_VOLUME_PERIOD_OVER_AT("now()")

/*
 * What a volume constraint has used in its current period (the _AT form with
 * the time as a parameter: an UPDATE on Citus may call no function that is not
 * IMMUTABLE in a CASE).
 */
#define KCAPS_VOLUME_USED_AT(now) "CASE WHEN " KCAPS_VOLUME_PERIOD_OVER_AT(now) " THEN 0 ELSE v.current_count END"
#define KCAPS_VOLUME_USED KCAPS_VOLUME_USED_AT("now()")

/* The volume constraint is the tenant's and in force. */
#define KCAPS_VOLUME_IN_FORCE "v.tenant_id = $1 AND v.status = 'active'"

/* The budget allocation is the tenant's and in force (in any period). */
#define KCAPS_BUDGET_IN_FORCE "b.tenant_id = $1 AND b.status <> 'inactive'"

/* The budget allocation counts the current period (or stands for all of them). */
#define KCAPS_BUDGET_CURRENT \
	"(b.period_type = 'total' OR b.period_key IN ('current', kaireon_internal._period_key(b.period_type, now())))"

#endif							/* KAIREON_CONFIG_CAPS_H */
