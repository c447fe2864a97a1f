-- The joint assignment of a flow graph's group node (src/arbitration/assign.c,
-- docs/arbitration.md "Joint placement"), called through kaireon_internal._assign: the optimum
-- where placing greedily is worse, slots, placements a candidate may not take, filling as
-- many slots as possible before the total, ties, and bad input.  The random instances against
-- an independent solver are in test/oracle/assign_oracle.py.
\set VERBOSITY terse
-- two placements of one slot; candidate 1 is best in both (10 and 9), candidate 2 fits only
-- the first well (8, 1).  Greedy (best candidate to the first placement, then the next) takes
-- 10 + 1 = 11; the optimum puts candidate 1 second and candidate 2 first: 9 + 8 = 17.
SELECT kaireon_internal._assign(ARRAY[10, 9, 8, 1]::float8[], 2, ARRAY[1, 1]) AS optimum;
-- the same with the placements' order swapped: the answer does not depend on it
SELECT kaireon_internal._assign(ARRAY[9, 10, 1, 8]::float8[], 2, ARRAY[1, 1]) AS swapped;
-- slots: a placement of two takes the two best, the other the third
SELECT kaireon_internal._assign(ARRAY[5, 1, 4, 1, 3, 2.5, 1, 0]::float8[], 2, ARRAY[2, 1]) AS slots;
-- NULL: candidate 1 may not go to placement 1; candidate 2 gives up its best (7) so both are placed
SELECT kaireon_internal._assign(ARRAY[NULL, 3, 2, 7]::float8[], 2, ARRAY[1, 1]) AS not_allowed;
-- as many slots as possible first (as the fixed pipeline fills its slots): candidate 2 takes
-- placement 2 although it scores -1 there; and candidate 1 moves to placement 2 so that
-- candidate 2, allowed only in placement 1, fills it
SELECT kaireon_internal._assign(ARRAY[5, NULL, 1, -1]::float8[], 2, ARRAY[1, 1]) AS fill_first;
SELECT kaireon_internal._assign(ARRAY[5, 5, 1, NULL]::float8[], 2, ARRAY[1, 1]) AS fill_first_2;
-- ties go to the lower candidate
SELECT kaireon_internal._assign(ARRAY[2, 2, 2]::float8[], 1, ARRAY[2]) AS ties;
-- more slots than candidates, no slots at all, no candidates
SELECT kaireon_internal._assign(ARRAY[1, 2]::float8[], 1, ARRAY[5]) AS more_slots;
SELECT kaireon_internal._assign(ARRAY[1, 2]::float8[], 2, ARRAY[0, 0]) AS no_slots;
SELECT kaireon_internal._assign(ARRAY[]::float8[], 2, ARRAY[1, 1]) AS no_candidates;
-- a chain of moves: the third candidate enters placement 1 only if 1 moves to 2 and 2 to 3
SELECT kaireon_internal._assign(ARRAY[10, 9, 0,  0, 10, 9,  10, NULL, NULL]::float8[], 3, ARRAY[1, 1, 1]) AS chain;
-- bad input: refused with 22023 naming the value
SELECT kaireon_internal._assign(ARRAY['Infinity', 1]::float8[], 2, ARRAY[1, 1]);
SELECT kaireon_internal._assign(ARRAY['NaN', 1]::float8[], 2, ARRAY[1, 1]);
SELECT kaireon_internal._assign(ARRAY[1, 1]::float8[], 2, ARRAY[1, -1]);
SELECT kaireon_internal._assign(ARRAY[1, 1, 1]::float8[], 2, ARRAY[1, 1]);
SELECT kaireon_internal._assign(ARRAY[1, 1]::float8[], 2, ARRAY[1, NULL]);
