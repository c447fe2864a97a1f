#!/usr/bin/python3
"""Oracle test of the joint assignment of a flow graph's group node (src/arbitration/assign.c).

Run by test/t/021_assign_oracle.pl against a fresh server (PGHOST/PGPORT/PGDATABASE in the
environment, the extension created), with /usr/bin/python3 (python3-numpy, python3-scipy,
python3-psycopg2). Each check prints one "ok - ..." or "not ok - ..." line; the exit status is
the number of failed checks.

Random instances (candidates x placements with slot counts, some pairs not allowed, scores of
both signs) are solved by kaireon_internal._assign and by scipy's linear_sum_assignment (the
Hungarian method's successor, an independent implementation) on the slots expanded into
columns. kaireon fills as many slots as it can and, among those assignments, takes the
largest total; the reference gets the same order of goals from weights score + M (M larger
than any difference of totals) on allowed pairs and 0 on the others, where a slot matched at
weight 0 stays empty. The checks: kaireon's assignment is valid (allowed pairs, slot counts,
each candidate once), fills as many slots and has the same total (1e-9 relative).
"""
import os
import sys

import numpy as np
import psycopg2
from scipy.optimize import linear_sum_assignment

FAILED = 0


def check(ok, what, detail=""):
    global FAILED
    if ok:
        print(f"ok - {what}")
    else:
        FAILED += 1
        print(f"not ok - {what} {detail}")
    sys.stdout.flush()


def reference(score, slots):
    """The number of filled slots and the total of the reference's optimum."""
    ncand, nplace = score.shape
    cols = [p for p in range(nplace) for _ in range(slots[p])]
    if not cols or ncand == 0:
        return 0, 0.0
    big = 1e6
    w = np.zeros((ncand, len(cols)))
    for j, p in enumerate(cols):
        col = score[:, p]
        w[:, j] = np.where(np.isnan(col), 0.0, col + big)
    rows, cs = linear_sum_assignment(w, maximize=True)
    filled, total = 0, 0.0
    for r, j in zip(rows, cs):
        s = score[r, cols[j]]
        if not np.isnan(s):
            filled += 1
            total += s
    return filled, total


def main():
    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "postgres"))
    cur = conn.cursor()
    rng = np.random.default_rng(20261206)
    for case in range(60):
        ncand = int(rng.integers(1, 40))
        nplace = int(rng.integers(1, 5))
        slots = [int(rng.integers(0, 5)) for _ in range(nplace)]
        score = np.round(rng.normal(5, 4, (ncand, nplace)), 3)
        score[rng.random((ncand, nplace)) < 0.3] = np.nan
        flat = [None if np.isnan(v) else float(v) for v in score.ravel()]
        cur.execute("SELECT kaireon_internal._assign(%s::float8[], %s, %s)", (flat, nplace, slots))
        got = cur.fetchone()[0]
        used = [0] * nplace
        valid, total, filled = len(got) == ncand, 0.0, 0
        for c, p in enumerate(got):
            if p == 0:
                continue
            s = score[c, p - 1]
            if np.isnan(s):
                valid = False
                continue
            used[p - 1] += 1
            total += s
            filled += 1
        valid = valid and all(u <= k for u, k in zip(used, slots))
        ref_filled, ref_total = reference(score, slots)
        name = f"case {case} ({ncand} candidates, slots {slots})"
        check(valid, f"{name}: a valid assignment", f"{got}")
        check(filled == ref_filled, f"{name}: fills {ref_filled} slots", f"(filled {filled})")
        check(abs(total - ref_total) <= 1e-9 * (1 + abs(ref_total)),
              f"{name}: total equals the optimum {ref_total:.3f}", f"(got {total:.3f})")
    # a larger one: 5,000 candidates, 4 placements of 10 slots
    score = np.round(rng.normal(5, 4, (5000, 4)), 3)
    score[rng.random((5000, 4)) < 0.5] = np.nan
    flat = [None if np.isnan(v) else float(v) for v in score.ravel()]
    cur.execute("SELECT kaireon_internal._assign(%s::float8[], 4, %s)", (flat, [10] * 4))
    got = cur.fetchone()[0]
    total = sum(score[c, p - 1] for c, p in enumerate(got) if p)
    ref_filled, ref_total = reference(score, [10] * 4)
    check(sum(1 for p in got if p) == ref_filled and abs(total - ref_total) <= 1e-9 * (1 + abs(ref_total)),
          f"5,000 candidates, 4 placements of 10: total equals the optimum {ref_total:.3f}", f"(got {total:.3f})")
    conn.close()
    sys.exit(FAILED)


if __name__ == "__main__":
    main()
