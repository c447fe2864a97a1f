/*
 * assign.h
 *	  The optimal joint assignment of candidates to the slots of several
 *	  placements (a flow graph's `group` node; docs/arbitration.md, "Joint
 *	  placement").
 */
#ifndef KAIREON_ARB_ASSIGN_H
#define KAIREON_ARB_ASSIGN_H

/*
 * Assign candidates to placements: score[c * nplace + p] is candidate c's
 * value in placement p (NaN: c may not go there), slots[p] >= 0 the number of
 * candidates placement p takes.  Each candidate goes to at most one placement.
 * Fills as many slots as the allowed pairs permit and, among the assignments
 * that fill that many, returns one of largest total value (ties go to the
 * lower candidate index).  out[c] receives the placement's index or -1; the
 * return value is the total.  Errors (22023) on a negative count or an
 * infinite score.
 */
extern double karb_assign(const double *score, int ncand, int nplace, const int *slots, int *out);

#endif							/* KAIREON_ARB_ASSIGN_H */
