#!/usr/bin/python3
"""Scoring benchmark (test/bench/models.sh runs it against a private server).

One run, on one machine, measures the same 1M rows scored by:
  - xgboost's own prediction in Python (Booster.inplace_predict and Booster.predict on a
    DMatrix; all cores),
  - kaireon in SQL: SELECT kaireon.score_vector(...) FROM t over a float8[] column, with the
    server's default parallel query (2 workers) and serially,
  - kaireon.score(...) with jsonb features (the path of the KaireonFeatures callback) on 200k rows,
  - a baseline SELECT that reads the same column without scoring,
with a 100-tree, depth-6 binary:logistic XGBoost model over 10 features (10% missing).
Every timing is the median of REPEATS runs; the result is printed as Markdown for
docs/performance.md, with kaireon's throughput as a ratio of xgboost's.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import psycopg2
import xgboost as xgb

ROWS = int(os.environ.get("KAIREON_BENCH_ROWS", "1000000"))
JSON_ROWS = ROWS // 5
REPEATS = int(os.environ.get("KAIREON_BENCH_REPEATS", "5"))
NF = 10


def median_time(fn, repeats=REPEATS):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(ROWS, NF)).astype(np.float32)
    x[rng.random(size=x.shape) < 0.1] = np.nan
    xz = np.nan_to_num(x)
    logit = xz[:, 0] - 0.5 * xz[:, 1] + np.sin(xz[:, 2]) + 0.3 * xz[:, 3] * xz[:, 4]
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    train_n = min(ROWS, 200000)
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "seed": 1, "tree_method": "hist"},
                    xgb.DMatrix(x[:train_n], label=y[:train_n], missing=np.nan), num_boost_round=100)
    path = f"/tmp/kaireon-bench-{os.getpid()}.json"
    bst.save_model(path)
    with open(path) as f:
        doc = f.read()
    os.unlink(path)
    depth = max(len(t["left_children"]) for t in json.loads(doc)["learner"]["gradient_booster"]["model"]["trees"])

    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "postgres"))
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("DROP TABLE IF EXISTS bench_rows, bench_json")
    cur.execute("DELETE FROM kaireon.tenants WHERE id = 'bench'")
    cur.execute("INSERT INTO kaireon.tenants (id, name, slug) VALUES ('bench', 'Bench', 'bench')")
    cur.execute("SELECT kaireon.import_model('bench', 'xgb100', 'xgboost_json', %s)", (doc,))
    cur.execute("CREATE TABLE bench_rows (id int, f float8[])")
    cur.execute("CREATE TABLE bench_json (id int, f jsonb)")
    names = [f"f{i}" for i in range(NF)]

    def lines_vec():
        for i, r in enumerate(x):
            yield f"{i}\t{{{','.join('NULL' if np.isnan(v) else repr(float(v)) for v in r)}}}\n"

    def lines_json():
        for i, r in enumerate(x[:JSON_ROWS]):
            yield f"{i}\t{json.dumps({n: float(v) for n, v in zip(names, r) if not np.isnan(v)})}\n"

    class Reader:
        def __init__(self, gen):
            self.gen, self.buf = gen, ""

        def read(self, size=-1):
            while size < 0 or len(self.buf) < size:
                try:
                    self.buf += next(self.gen)
                except StopIteration:
                    break
            out, self.buf = (self.buf, "") if size < 0 else (self.buf[:size], self.buf[size:])
            return out

        readline = read

    cur.copy_from(Reader(lines_vec()), "bench_rows", columns=("id", "f"))
    cur.copy_from(Reader(lines_json()), "bench_json", columns=("id", "f"))
    cur.execute("VACUUM ANALYZE bench_rows")
    cur.execute("VACUUM ANALYZE bench_json")
    cur.execute("SELECT pg_prewarm('bench_rows'), pg_prewarm('bench_json')") if False else None

    # correctness of the run itself: kaireon's scores are xgboost's
    cur.execute("SELECT kaireon.score_vector('bench', 'xgb100', f) FROM bench_rows ORDER BY id LIMIT 20000")
    got = np.array([r[0] for r in cur.fetchall()])
    ref = bst.inplace_predict(x[:20000], missing=np.nan)
    max_diff = float(np.max(np.abs(got - ref)))

    t_inplace = median_time(lambda: bst.inplace_predict(x, missing=np.nan))
    t_dmatrix = median_time(lambda: bst.predict(xgb.DMatrix(x, missing=np.nan)))

    def q(sql):
        return lambda: cur.execute(sql) or cur.fetchall()

    t_base_par = median_time(q("SELECT sum(cardinality(f)) FROM bench_rows"))
    t_score_par = median_time(q("SELECT sum(kaireon.score_vector('bench', 'xgb100', f)) FROM bench_rows"))
    cur.execute("SET max_parallel_workers_per_gather = 0")
    t_base_ser = median_time(q("SELECT sum(cardinality(f)) FROM bench_rows"))
    t_score_ser = median_time(q("SELECT sum(kaireon.score_vector('bench', 'xgb100', f)) FROM bench_rows"))
    t_json_base = median_time(q("SELECT sum(length(f::text)) FROM bench_json"), max(3, REPEATS // 2))
    t_json_ser = median_time(q("SELECT sum(kaireon.score('bench', 'xgb100', f)) FROM bench_json"), max(3, REPEATS // 2))
    cur.execute("RESET max_parallel_workers_per_gather")
    cur.execute("DROP TABLE bench_rows, bench_json")
    cur.execute("DELETE FROM kaireon.tenants WHERE id = 'bench'")

    best_xgb = min(t_inplace, t_dmatrix)
    print(f"## Scoring benchmark ({ROWS} rows, {NF} features with 10% missing, 100 trees of depth 6, "
          f"binary:logistic; medians of {REPEATS} runs; {os.cpu_count()} cores)\n")
    print(f"kaireon's scores of the first 20000 rows differ from xgboost's by at most {max_diff:.3g}.\n")
    print("| what | seconds | rows/s | throughput vs xgboost (best) |")
    print("|---|---:|---:|---:|")
    rows = [("xgboost Booster.inplace_predict (numpy, all cores)", t_inplace, ROWS),
            ("xgboost Booster.predict(DMatrix) incl. DMatrix build", t_dmatrix, ROWS),
            ("SQL baseline: SELECT sum(cardinality(f)) FROM t, parallel", t_base_par, ROWS),
            ("SELECT sum(kaireon.score_vector(..., f)) FROM t, parallel (default plan)", t_score_par, ROWS),
            ("SQL baseline, serial", t_base_ser, ROWS),
            ("SELECT sum(kaireon.score_vector(..., f)) FROM t, serial", t_score_ser, ROWS),
            (f"SQL baseline over jsonb features ({JSON_ROWS} rows), serial", t_json_base, JSON_ROWS),
            (f"SELECT sum(kaireon.score(..., jsonb)) ({JSON_ROWS} rows), serial", t_json_ser, JSON_ROWS)]
    for name, t, n in rows:
        print(f"| {name} | {t:.3f} | {n / t:,.0f} | {(n / t) / (ROWS / best_xgb):.2f} |")
    print()
    print(f"Scorer cost per candidate (score minus scan, serial): float8[] "
          f"{(t_score_ser - t_base_ser) / ROWS * 1e6:.2f} us, jsonb {(t_json_ser - t_json_base) / JSON_ROWS * 1e6:.2f} us.")
    print(f"Largest tree: {depth} nodes.")
    return 0 if max_diff <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
