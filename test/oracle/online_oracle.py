#!/usr/bin/python3
"""Oracle test of the online_learner model against scikit-learn's SGDClassifier.

Run by test/t/012_online_oracle.pl against a fresh server (PGHOST/PGPORT/PGDATABASE in the
environment, the extension created), with Debian's python3-sklearn, python3-numpy and
python3-psycopg2 (so under /usr/bin/python3). Each check prints one "ok - ..." or
"not ok - ..." line; the exit status is the number of failed checks.

One ordered stream of outcomes (numeric features, some missing, and a categorical one) is
learned by kaireon.model_learn, one call per outcome in stream order (the code respond runs),
and by SGDClassifier(loss='log_loss', penalty='l2', shuffle=False).partial_fit one sample at a
time, for each learning-rate schedule (optimal, constant, invscaling) and without an
intercept. The design sklearn sees is kaireon's: a missing numeric value is 0 and a
categorical predictor is one-hot over its levels. Every coefficient and the intercept must
agree within 1e-8 (the issue asks for 1e-2; they differ only by rounding), and so must the
scores of the learned model.

The default schedule (optimal, alpha 0.0001) starts with rates near 10: in that phase a step
magnifies the previous one's rounding, so two exact implementations part (scikit-learn keeps
its weights as a scale times a vector, kaireon the products) and meet again once the rate has
come down. That case learns 20,000 outcomes and must agree within 1e-6 (observed 1e-8); the
other cases start with moderate rates and agree within 1e-8 after 3,000.
"""
import json
import os
import sys

import numpy as np
import psycopg2
from sklearn.linear_model import SGDClassifier

FAILED = 0
TENANT = "online"
NUMERIC = ["age", "income", "recency", "visits"]
LEVELS = ["gold", "silver", "bronze"]
PREDICTORS = [{"name": n, "type": "numeric"} for n in NUMERIC] + [{"name": "segment", "type": "categorical"}]


def check(ok, what, detail=""):
    global FAILED
    if ok:
        print(f"ok - {what}")
    else:
        FAILED += 1
        print(f"not ok - {what} {detail}")
    sys.stdout.flush()


def stream(rng, n):
    """n ordered outcomes: (features dict, design row, label)."""
    out = []
    for _ in range(n):
        f = {"age": float(np.round(rng.normal(0, 1), 3)), "income": float(np.round(rng.lognormal(0, 0.5), 3)),
             "recency": float(np.round(rng.exponential(1), 3)), "visits": float(rng.integers(0, 4))}
        if rng.random() < 0.1:
            del f["income"]                 # missing: 0 in the design
        seg = rng.choice(LEVELS + [None], p=[0.3, 0.3, 0.3, 0.1])
        if seg is not None:
            f["segment"] = str(seg)
        z = -0.5 + 1.2 * f["age"] - 0.8 * f.get("income", 0) + 0.3 * f["visits"] - 0.4 * f["recency"] \
            + {"gold": 1.0, "silver": 0.2, "bronze": -0.7, None: 0}[seg]
        y = int(rng.random() < 1 / (1 + np.exp(-z)))
        row = [f.get(c, 0.0) for c in NUMERIC] + [1.0 if seg == lv else 0.0 for lv in LEVELS]
        out.append((f, row, y))
    return out


def kaireon_learn(cur, key, settings, data):
    cur.execute("INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) "
                "VALUES (%s, %s, %s, 'online_learner', %s::jsonb, %s::jsonb)",
                (TENANT, key, key, json.dumps(PREDICTORS), json.dumps(settings)))
    # one model_learn per outcome, in stream order, each a separate call under the row lock
    cur.execute("""DO $$
                   DECLARE r record;
                   BEGIN
                     FOR r IN SELECT e.value AS f, o FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(value, i)
                              JOIN unnest(%s::text[]) WITH ORDINALITY AS u(o, j) ON u.j = e.i ORDER BY e.i
                     LOOP
                       PERFORM kaireon.model_learn(%s, %s, NULL, r.f, r.o);
                     END LOOP;
                   END $$""",
                (json.dumps([d[0] for d in data]), ["positive" if d[2] else "negative" for d in data], TENANT, key))
    cur.execute("SELECT model_state, version FROM kaireon.algorithm_models WHERE tenant_id = %s AND key = %s",
                (TENANT, key))
    return cur.fetchone()


def coefficients(state):
    w = state.get("weights", {})
    return np.array([w.get(c, 0.0) for c in NUMERIC] + [w.get("segment", {}).get(lv, 0.0) for lv in LEVELS])


def test_schedule(cur, data, key, settings, sk_params, tolerance=1e-8):
    state, version = kaireon_learn(cur, key, settings, data)
    sk = SGDClassifier(loss="log_loss", penalty="l2", shuffle=False, **sk_params)
    for f, row, y in data:
        sk.partial_fit(np.array([row]), np.array([y]), classes=np.array([0, 1]))
    mine = coefficients(state)
    diff = float(np.max(np.abs(mine - sk.coef_[0])))
    bias_diff = abs(state.get("bias", 0.0) - float(sk.intercept_[0]))
    scale = float(np.max(np.abs(sk.coef_[0])))
    check(diff <= tolerance and bias_diff <= tolerance and scale > 0.05,
          f"{key}: online_learner coefficients equal SGDClassifier.partial_fit's on the same {len(data)} outcomes "
          f"(max coef diff {diff:.3g}, intercept diff {bias_diff:.3g}, largest coef {scale:.3g})")
    check(state["updates"] == len(data) and version == 1,
          f"{key}: {len(data)} updates counted, no new version (updates {state['updates']}, version {version})")
    # the learned model scores as sklearn predicts
    sample = data[:200]
    cur.execute("SELECT array_agg(kaireon.score(%s, %s, f::jsonb) ORDER BY i) "
                "FROM unnest(%s::text[]) WITH ORDINALITY AS u(f, i)",
                (TENANT, key, [json.dumps(d[0]) for d in sample]))
    scores = np.array(cur.fetchone()[0])
    p = sk.predict_proba(np.array([d[1] for d in sample]))[:, 1]
    sdiff = float(np.max(np.abs(scores - p)))
    check(sdiff <= tolerance, f"{key}: scores equal SGDClassifier.predict_proba (max diff {sdiff:.3g})")


def main():
    rng = np.random.default_rng(20261206)
    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "postgres"))
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("INSERT INTO kaireon.tenants (id, name, slug) VALUES (%s, 'Online', 'online')", (TENANT,))
    long_data = stream(rng, 20000)
    data = long_data[:3000]
    test_schedule(cur, long_data, "optimal-default", {}, {"alpha": 0.0001, "learning_rate": "optimal"}, 1e-6)
    test_schedule(cur, data, "optimal-strong-l2", {"alpha": 0.01},
                  {"alpha": 0.01, "learning_rate": "optimal"})
    test_schedule(cur, data, "constant", {"learningRate": "constant", "eta0": 0.05, "alpha": 0.001},
                  {"alpha": 0.001, "learning_rate": "constant", "eta0": 0.05})
    test_schedule(cur, data, "invscaling", {"learningRate": "invscaling", "eta0": 0.5, "powerT": 0.3, "alpha": 0.0005},
                  {"alpha": 0.0005, "learning_rate": "invscaling", "eta0": 0.5, "power_t": 0.3})
    test_schedule(cur, data, "no-intercept", {"learningRate": "constant", "eta0": 0.02, "fitIntercept": False},
                  {"alpha": 0.0001, "learning_rate": "constant", "eta0": 0.02, "fit_intercept": False})
    print(f"{FAILED} failed")
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
