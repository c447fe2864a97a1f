/*
 * config/eligibility.h
 *	  The steps of compile.c that compile what decides which offers a
 *	  customer may get (eligibility.c): segments, qualification rules,
 *	  contact policies, guardrails, the policy snapshot, and the rules and
 *	  policies bound to each offer.  Each runs inside SPI, in the
 *	  configuration's memory context, in the order compile.c gives.
 */
#ifndef KAIREON_CONFIG_ELIGIBILITY_H
#define KAIREON_CONFIG_ELIGIBILITY_H

#include "config/config.h"

extern void kaireon_load_segments(KTenantConfig *cfg);
extern void kaireon_load_rules(KTenantConfig *cfg);
extern void kaireon_load_policies(KTenantConfig *cfg);
extern void kaireon_load_guardrails(KTenantConfig *cfg);
extern void kaireon_load_policy_snapshot(KTenantConfig *cfg);
extern void kaireon_prepare_segment_plan(KTenantConfig *cfg);
extern void kaireon_bind_offers(KTenantConfig *cfg);

#endif							/* KAIREON_CONFIG_ELIGIBILITY_H */
