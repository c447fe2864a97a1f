/*
 * decision/projection.h
 *	  The planner hook that builds no explanations for a kaireon.recommend
 *	  call whose query reads none (decision/projection.c).
 */
#ifndef KAIREON_DECISION_PROJECTION_H
#define KAIREON_DECISION_PROJECTION_H

extern void kaireon_projection_init(void);

#endif
