#!/usr/bin/python3
"""Oracle test of kaireon's adaptive model (docs/models.md, "adaptive") against scikit-learn.

Run by test/t/012_adaptive_oracle.pl against a fresh server (PGHOST/PGPORT/PGDATABASE in the
environment, the extension created), with Debian's python3-sklearn, python3-numpy and
python3-psycopg2 (so under /usr/bin/python3). Each check prints one "ok - ..." or
"not ok - ..." line; the exit status is the number of failed checks.

A synthetic stream of 200,000 responses to one offer (fixed seed): ten customer predictors,
seven numeric (normal, uniform, log-normal, integer ages, a constant-offset one) and three
symbolic, where the true propensity depends on two only (x0 numeric, non-monotone; s1
symbolic, six values). The stream goes through kaireon.model_learn (the C update respond
uses) in batches of one transaction each. After 20,000 responses, and again after 200,000,
on a holdout of 50,000 customers:

1. the adaptive model's AUC is within 0.02 of scikit-learn's CategoricalNB (alpha 1) trained
   on the same first 20,000 responses (then on all of them), its numeric predictors binned by
   KBinsDiscretizer (quantile) with the number of bins the best on the holdout of a grid of
   2 to 60;
2. the two informative predictors rank first by AUC in kaireon.adaptive_report and are the
   only active ones (AUC above 0.52);
3. the calibration error, the mean over the deciles of the model's score of |mean score -
   observed rate|, is at most 0.02.
"""
import json
import os
import sys

import numpy as np
import psycopg2
from sklearn.metrics import roc_auc_score
from sklearn.naive_bayes import CategoricalNB
from sklearn.preprocessing import KBinsDiscretizer

FAILED = 0
TENANT = "adm"
NUMERIC = ["x0", "x2", "x3", "x4", "x5", "x6", "x7"]
SYMBOLIC = ["s1", "s8", "s9"]
INFORMATIVE = {"x0", "s1"}
S1_EFFECT = np.array([-1.2, -0.6, 0.0, 0.4, 0.9, 1.4])


def check(ok, what, detail=""):
    global FAILED
    if ok:
        print(f"ok - {what} {detail}")
    else:
        FAILED += 1
        print(f"not ok - {what} {detail}")
    sys.stdout.flush()


def customers(rng, n):
    """n customers: a dict of columns, and their true propensities."""
    c = {
        "x0": rng.normal(size=n),
        "x2": rng.uniform(0, 1, size=n),
        "x3": rng.lognormal(3, 1, size=n),
        "x4": rng.integers(18, 90, size=n).astype(float),
        "x5": rng.normal(1000, 0.5, size=n),
        "x6": rng.normal(size=n),
        "x7": rng.exponential(2, size=n),
        "s1": rng.integers(0, 6, size=n),
        "s8": rng.integers(0, 4, size=n),
        "s9": rng.integers(0, 12, size=n),
    }
    # a tenth of x6 is missing (NaN: left out of the features)
    c["x6"][rng.random(size=n) < 0.1] = np.nan
    x0 = c["x0"]
    logit = -1.9 + 1.1 * x0 - 0.6 * x0 * x0 + S1_EFFECT[c["s1"]]
    return c, 1 / (1 + np.exp(-logit))


def learn(cur, c, y, lo, hi, batch=250):
    """Feed responses lo..hi-1 through kaireon.model_learn, one transaction per batch."""
    for start in range(lo, hi, batch):
        end = min(hi, start + batch)
        args = [[None if np.isnan(v) else float(v) for v in c[k][start:end]] for k in NUMERIC]
        args += [[f"v{v}" for v in c[k][start:end]] for k in SYMBOLIC]
        args.append(["positive" if v else "negative" for v in y[start:end]])
        cols = ", ".join(f"%s::{'float8' if i < len(NUMERIC) else 'text'}[]"
                         for i in range(len(NUMERIC) + len(SYMBOLIC))) + ", %s::text[]"
        names = NUMERIC + SYMBOLIC
        obj = ", ".join(f"'{k}', {k}" for k in names)
        cur.execute(
            f"SELECT count(*) FILTER (WHERE kaireon.model_learn(%s, 'adm', 'o1', "
            f"jsonb_strip_nulls(jsonb_build_object({obj})), outcome)) "
            f"FROM unnest({cols}) AS u({', '.join(names)}, outcome)",
            [TENANT] + args)
        cur.connection.commit()


def scores(cur, c):
    """kaireon.score of every holdout customer (arm o1)."""
    names = NUMERIC + SYMBOLIC
    args = [[None if np.isnan(v) else float(v) for v in c[k]] for k in NUMERIC]
    args += [[f"v{v}" for v in c[k]] for k in SYMBOLIC]
    cols = ", ".join(f"%s::{'float8' if i < len(NUMERIC) else 'text'}[]" for i in range(len(names)))
    obj = ", ".join(f"'{k}', {k}" for k in names)
    cur.execute(
        f"SELECT kaireon.score(%s, 'adm', jsonb_strip_nulls(jsonb_build_object({obj})), 'o1') "
        f"FROM unnest({cols}) WITH ORDINALITY AS u({', '.join(names)}, i) ORDER BY i",
        [TENANT] + args)
    out = np.array([r[0] for r in cur.fetchall()])
    cur.connection.commit()
    return out


def design(c, edges):
    """The ordinal design matrix of CategoricalNB: numeric columns binned, symbols as codes."""
    cols = []
    for k in NUMERIC:
        x = c[k]
        b = np.searchsorted(edges[k], np.nan_to_num(x, nan=0.0), side="right")
        b = np.where(np.isnan(x), len(edges[k]) + 1, b)     # missing: a category of its own
        cols.append(b)
    for k in SYMBOLIC:
        cols.append(c[k])
    return np.column_stack(cols)


def oracle_nb(train, ytrain, test, ytest):
    """The best holdout AUC of CategoricalNB over quantile binnings of 2..60 bins."""
    best = (0.0, None)
    for nbins in list(range(2, 21)) + [25, 30, 40, 50, 60]:
        edges = {}
        for k in NUMERIC:
            x = train[k][~np.isnan(train[k])].reshape(-1, 1)
            kb = KBinsDiscretizer(n_bins=nbins, encode="ordinal", strategy="quantile",
                                  subsample=None).fit(x)
            edges[k] = kb.bin_edges_[0][1:-1]
        xtr, xte = design(train, edges), design(test, edges)
        cats = [max(xtr[:, j].max(), xte[:, j].max()) + 1 for j in range(xtr.shape[1])]
        nb = CategoricalNB(alpha=1.0, min_categories=cats).fit(xtr, ytrain)
        auc = roc_auc_score(ytest, nb.predict_proba(xte)[:, 1])
        if auc > best[0]:
            best = (auc, nbins)
    return best


def decile_calibration(p, y):
    """Mean over the deciles of p of |mean p - observed rate|."""
    order = np.argsort(p, kind="stable")
    return float(np.mean([abs(p[d].mean() - y[d].mean()) for d in np.array_split(order, 10)]))


def evaluate(cur, n, c, y, test, ytest):
    train = {k: v[:n] for k, v in c.items()}
    p = scores(cur, test)
    auc = roc_auc_score(ytest, p)
    nb_auc, nbins = oracle_nb(train, y[:n], test, ytest)
    check(auc >= nb_auc - 0.02, f"after {n} responses the adaptive model's AUC is within 0.02 of the best binned naive Bayes",
          f"(adaptive {auc:.4f}, scikit-learn CategoricalNB with {nbins} quantile bins {nb_auc:.4f})")
    cur.execute("SELECT predictor, auc, active FROM kaireon.adaptive_report(%s, 'adm', 'o1')", [TENANT])
    rows = cur.fetchall()
    cur.connection.commit()
    ranked = [r[0] for r in rows]
    check(set(ranked[:2]) == INFORMATIVE, f"after {n} responses the informative predictors rank first by AUC",
          "(" + ", ".join(f"{r[0]} {r[1]:.4f}{' active' if r[2] else ''}" for r in rows) + ")")
    check({r[0] for r in rows if r[2]} == INFORMATIVE,
          f"after {n} responses only the informative predictors are active (AUC above 0.52)")
    cal = decile_calibration(p, ytest)
    check(cal <= 0.02, f"after {n} responses the calibration error over deciles is at most 0.02", f"({cal:.4f})")


def main():
    rng = np.random.default_rng(20261206)
    c, truth = customers(rng, 200_000)
    y = rng.random(size=200_000) < truth
    test, ttruth = customers(rng, 50_000)
    ytest = rng.random(size=50_000) < ttruth

    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "postgres"))
    cur = conn.cursor()
    cur.execute("INSERT INTO kaireon.tenants (id, name, slug) VALUES (%s, 'ADM', 'adm')", [TENANT])
    preds = [{"name": k, "type": "numeric"} for k in NUMERIC] + [{"name": k, "type": "categorical"} for k in SYMBOLIC]
    cur.execute("INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, config) "
                "VALUES (%s, 'adm', 'ADM', 'adaptive', %s::jsonb, '{\"refreshMs\": 0}')",
                [TENANT, json.dumps(preds)])
    conn.commit()

    learn(cur, c, y, 0, 20_000)
    evaluate(cur, 20_000, c, y, test, ytest)
    learn(cur, c, y, 20_000, 200_000)
    cur.execute("SELECT sum(positives + negatives) FROM kaireon.model_adaptations WHERE tenant_id = %s", [TENANT])
    total = cur.fetchone()[0]
    conn.commit()
    check(total == 200_000, "every response of the stream was learned", f"({total})")
    evaluate(cur, 200_000, c, y, test, ytest)
    conn.close()
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
