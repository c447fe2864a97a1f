#!/usr/bin/python3
"""Oracle tests of kaireon's scoring models against the libraries they reproduce.

Run by test/t/010_models_oracle.pl against a fresh server (PGHOST/PGPORT/PGDATABASE in the
environment, the extension created), with Debian's python3-xgboost, python3-sklearn,
python3-numpy and python3-psycopg2 (so under /usr/bin/python3). Each check prints one
"ok - ..." or "not ok - ..." line; the exit status is the number of failed checks.

1. XGBoost binary:logistic and reg:squarederror models (Booster.save_model JSON) trained on
   generated data with missing values: kaireon.import_model, then kaireon's scores of
   thousands of rows equal Booster.predict within 1e-6 (both the float8[] and the jsonb
   form), and explain_score's TreeSHAP contributions equal predict(pred_contribs=True).
2. LightGBM JSON dumps: LightGBM is not packaged in Debian, so the dumps are written from
   scikit-learn HistGradientBoosting models (same split rule: value <= threshold, missing
   values to the side the node learned), and kaireon's scores must equal scikit-learn's
   predictions within 1e-6; their TreeSHAP values must add up to the margin. The same
   XGBoost trees written as a LightGBM dump must give the XGBoost TreeSHAP values too.
3. kaireon.train_model's L2-regularised logistic regression, trained from interaction
   history joined to a published customer data schema, matches scikit-learn's
   LogisticRegression(C = 1 / l2) on the same examples within 1e-4 on every coefficient.
4. The online_learner: one ordered stream of outcomes (numeric features, some missing, and a
   categorical one) learned by kaireon.model_learn, one call per outcome in stream order (the
   code respond runs), and by SGDClassifier(loss='log_loss', penalty='l2', shuffle=False)
   .partial_fit one sample at a time, for each learning-rate schedule (optimal, constant,
   invscaling) and without an intercept. sklearn sees kaireon's design: a missing numeric
   value is 0, a categorical predictor one-hot over its levels. Coefficients, intercept and
   scores must agree within 1e-8 (the issue asks for 1e-2; they differ only by rounding).
   The default schedule (optimal, alpha 0.0001) starts with rates near 10: there a step
   magnifies the previous one's rounding, so two exact implementations part (scikit-learn
   keeps its weights as a scale times a vector, kaireon the products) and meet again once the
   rate has come down; that case learns 20,000 outcomes and must agree within 1e-6 (observed
   about 1e-8). The others start with moderate rates and learn 3,000.
"""
import json
import math
import os
import sys

import numpy as np
import psycopg2
import xgboost as xgb
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, SGDClassifier

FAILED = 0
TENANT = "oracle"


def check(ok, what, detail=""):
    global FAILED
    if ok:
        print(f"ok - {what}")
    else:
        FAILED += 1
        print(f"not ok - {what} {detail}")
    sys.stdout.flush()


def connect():
    conn = psycopg2.connect(dbname=os.environ.get("PGDATABASE", "postgres"))
    conn.autocommit = True
    return conn


def features_data(rng, n, nf, missing=0.1):
    x = rng.normal(size=(n, nf)).astype(np.float32)
    x[:, 1] = rng.integers(0, 5, size=n)        # a few integer-valued features
    x[:, 2] = np.round(x[:, 2], 1)              # values exactly on thresholds are common
    mask = rng.random(size=(n, nf)) < missing
    x[mask] = np.nan
    return x


def xgb_splits(doc):
    """(feature, threshold) of every split of an XGBoost JSON model."""
    trees = json.loads(doc)["learner"]["gradient_booster"]["model"]["trees"]
    return [(t["split_indices"][i], t["split_conditions"][i]) for t in trees
            for i in range(len(t["left_children"])) if t["left_children"][i] != -1]


def with_threshold_rows(rng, x, splits):
    """x plus one row per split whose feature sits exactly on the threshold (the < / <= edge)."""
    extra = x[rng.integers(0, len(x), len(splits))].copy()
    for r, (f, t) in enumerate(splits):
        extra[r, f] = t
    return np.vstack([x, extra.astype(x.dtype)])


def score_vectors(cur, key, x):
    """kaireon.score_vector over all rows at once (one query)."""
    rows = [[None if np.isnan(v) else float(v) for v in r] for r in x]
    cur.execute("""SELECT kaireon.score_vector(%s, %s, f::float8[]) FROM unnest(%s::text[]) WITH ORDINALITY AS u(f, i)
                   ORDER BY i""", (TENANT, key, ["{" + ",".join("NULL" if v is None else repr(v) for v in r) + "}" for r in rows]))
    return np.array([r[0] for r in cur.fetchall()])


def row_json(names, r):
    return json.dumps({n: float(v) for n, v in zip(names, r) if not np.isnan(v)})


def score_jsonb(cur, key, names, x):
    cur.execute("""SELECT kaireon.score(%s, %s, f::jsonb) FROM unnest(%s::text[]) WITH ORDINALITY AS u(f, i) ORDER BY i""",
                (TENANT, key, [row_json(names, r) for r in x]))
    return np.array([r[0] for r in cur.fetchall()])


def explain_rows(cur, key, names, x):
    cur.execute("""SELECT kaireon.explain_score(%s, %s, f::jsonb) FROM unnest(%s::text[]) WITH ORDINALITY AS u(f, i) ORDER BY i""",
                (TENANT, key, [row_json(names, r) for r in x]))
    return [r[0] for r in cur.fetchall()]


def test_xgboost(cur, rng):
    n, nf = 4000, 8
    names = [f"f{i}" for i in range(nf)]
    x = features_data(rng, n, nf)
    xz = np.nan_to_num(x)
    logit = 1.5 * xz[:, 0] - xz[:, 1] * 0.5 + np.sin(xz[:, 3]) + 0.3 * xz[:, 2] * xz[:, 4]
    y_cls = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    y_reg = (20 + 10 * logit + rng.normal(size=n)).astype(np.float32)
    for objective, y, key in (("binary:logistic", y_cls, "xgb-cls"), ("reg:squarederror", y_reg, "xgb-reg")):
        dtrain = xgb.DMatrix(x, label=y, missing=np.nan)
        bst = xgb.train({"objective": objective, "max_depth": 6, "eta": 0.3, "seed": 7, "base_score": 0.5
                         if objective == "binary:logistic" else float(np.mean(y))},
                        dtrain, num_boost_round=60)
        path = f"/tmp/kaireon-oracle-{os.getpid()}-{key}.json"
        bst.save_model(path)
        with open(path) as f:
            doc = f.read()
        os.unlink(path)
        cur.execute("SELECT kaireon.import_model(%s, %s, 'xgboost_json', %s)", (TENANT, key, doc))
        xs = with_threshold_rows(rng, x, xgb_splits(doc))
        expected = bst.predict(xgb.DMatrix(xs, missing=np.nan))
        got = score_vectors(cur, key, xs)
        diff = float(np.max(np.abs(got - expected)))
        check(diff <= 1e-6, f"{objective}: score_vector of {len(xs)} rows equals Booster.predict (max diff {diff:.3g})")
        got_j = score_jsonb(cur, key, names, xs[-1000:])
        diff = float(np.max(np.abs(got_j - expected[-1000:])))
        check(diff <= 1e-6, f"{objective}: score (jsonb, missing keys) of 1000 rows equals Booster.predict (max diff {diff:.3g})")
        contribs = bst.predict(xgb.DMatrix(xs[-300:], missing=np.nan), pred_contribs=True)
        explained = explain_rows(cur, key, names, xs[-300:])
        worst = 0.0
        for e, c in zip(explained, contribs):
            mine = np.array([e["contributions"][nm] for nm in names] + [e["expectedValue"]])
            worst = max(worst, float(np.max(np.abs(mine - c) / np.maximum(1.0, np.abs(c)))))
        # XGBoost computes TreeSHAP in single precision, kaireon in double
        check(worst <= 1e-5, f"{objective}: TreeSHAP of 300 rows equals pred_contribs=True (max rel diff {worst:.3g})")
        if objective == "binary:logistic":
            test_xgboost_as_lightgbm(cur, doc, names, xs, explained)


def xgb_to_lightgbm_dump(doc, names):
    """The trees of an XGBoost JSON model as a LightGBM dump (x < t  <=>  x <= prev float32 of t)."""
    model = json.loads(doc)["learner"]["gradient_booster"]["model"]
    tree_info = []
    for t in model["trees"]:
        left, right = t["left_children"], t["right_children"]
        cond, split, dflt, hess = t["split_conditions"], t["split_indices"], t["default_left"], t["sum_hessian"]

        def node(i):
            if left[i] == -1:
                return {"leaf_index": i, "leaf_value": float(np.float32(cond[i])), "leaf_count": hess[i]}
            thr = float(np.nextafter(np.float32(cond[i]), np.float32(-np.inf)))
            return {"split_index": i, "split_feature": split[i], "threshold": thr, "decision_type": "<=",
                    "default_left": bool(dflt[i]), "missing_type": "NaN", "internal_count": hess[i],
                    "left_child": node(left[i]), "right_child": node(right[i])}
        tree_info.append({"tree_index": len(tree_info), "num_cat": 0, "shrinkage": 1, "tree_structure": node(0)})
    return {"name": "tree", "version": "v4", "num_class": 1, "num_tree_per_iteration": 1, "max_feature_idx": len(names) - 1,
            "objective": "binary sigmoid:1", "feature_names": names, "tree_info": tree_info}


def test_xgboost_as_lightgbm(cur, doc, names, x, xgb_explained):
    dump = xgb_to_lightgbm_dump(doc, names)
    cur.execute("SELECT kaireon.import_model(%s, 'xgb-as-lgb', 'lightgbm_json', %s)", (TENANT, json.dumps(dump)))
    explained = explain_rows(cur, "xgb-as-lgb", names, x[-300:])
    worst = 0.0
    for a, b in zip(explained, xgb_explained):
        # the XGBoost import's base margin is 0 for base_score 0.5, so expected values agree too
        worst = max(worst, max(abs(a["contributions"][nm] - b["contributions"][nm]) for nm in names),
                    abs(a["expectedValue"] - b["expectedValue"]), abs(a["score"] - b["score"]))
    check(worst <= 1e-6, f"lightgbm_json: the XGBoost trees as a LightGBM dump give the same scores and TreeSHAP (max diff {worst:.3g})")


def hgb_to_lightgbm_dump(model, names, objective):
    """A fitted scikit-learn HistGradientBoosting model as a LightGBM dump_model() document."""
    baseline = float(np.ravel(model._baseline_prediction)[0])
    tree_info = []
    for it, predictors in enumerate(model._predictors):
        nodes = predictors[0].nodes
        shift = baseline if it == 0 else 0.0   # LightGBM folds the initial score into the first tree

        def node(i):
            nd = nodes[i]
            if nd["is_leaf"]:
                return {"leaf_index": int(i), "leaf_value": float(nd["value"]) + shift, "leaf_count": int(nd["count"])}
            # scikit-learn splits "missing or not" with threshold +inf; LightGBM writes the largest double
            thr = min(float(nd["num_threshold"]), sys.float_info.max)
            return {"split_index": int(i), "split_feature": int(nd["feature_idx"]), "threshold": thr,
                    "decision_type": "<=", "default_left": bool(nd["missing_go_to_left"]), "missing_type": "NaN",
                    "internal_count": int(nd["count"]), "left_child": node(int(nd["left"])), "right_child": node(int(nd["right"]))}
        tree_info.append({"tree_index": it, "num_cat": 0, "shrinkage": 1, "tree_structure": node(0)})
    return {"name": "tree", "version": "v4", "num_class": 1, "num_tree_per_iteration": 1, "label_index": 0,
            "max_feature_idx": len(names) - 1, "objective": objective, "average_output": False,
            "feature_names": names, "tree_info": tree_info}


def test_lightgbm(cur, rng):
    n, nf = 4000, 6
    names = ["age", "income", "tenure", "visits", "balance", "score"]
    x = features_data(rng, n, nf).astype(np.float64)
    xz = np.nan_to_num(x)
    logit = xz[:, 0] - 0.7 * xz[:, 1] + np.cos(xz[:, 2]) + 0.5 * xz[:, 3] * xz[:, 5]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = HistGradientBoostingClassifier(max_iter=50, max_depth=6, random_state=3, early_stopping=False).fit(x, y)
    cur.execute("SELECT kaireon.import_model(%s, 'lgb-cls', 'lightgbm_json', %s)",
                (TENANT, json.dumps(hgb_to_lightgbm_dump(clf, names, "binary sigmoid:1"))))
    splits = [(int(nd["feature_idx"]), float(nd["num_threshold"])) for p in clf._predictors for nd in p[0].nodes
              if not nd["is_leaf"] and np.isfinite(nd["num_threshold"])]
    xs = with_threshold_rows(rng, x, splits)
    expected = clf.predict_proba(xs)[:, 1]
    got = score_vectors(cur, "lgb-cls", xs)
    diff = float(np.max(np.abs(got - expected)))
    check(diff <= 1e-6, f"lightgbm_json binary: score_vector of {len(xs)} rows equals the model's predict_proba (max diff {diff:.3g})")
    got_j = score_jsonb(cur, "lgb-cls", names, xs[-1000:])
    diff = float(np.max(np.abs(got_j - expected[-1000:])))
    check(diff <= 1e-6, f"lightgbm_json binary: score (jsonb) equals predict_proba (max diff {diff:.3g})")
    margin = clf.decision_function(xs[-300:])
    explained = explain_rows(cur, "lgb-cls", names, xs[-300:])
    worst = max(abs(sum(e["contributions"].values()) + e["expectedValue"] - m) for e, m in zip(explained, margin))
    check(worst <= 1e-9, f"lightgbm_json: TreeSHAP contributions plus expected value add up to the margin (max diff {worst:.3g})")

    yr = 100 + 30 * logit + rng.normal(size=n)
    reg = HistGradientBoostingRegressor(max_iter=40, max_depth=5, random_state=4, early_stopping=False).fit(x, yr)
    cur.execute("SELECT kaireon.import_model(%s, 'lgb-reg', 'lightgbm_json', %s)",
                (TENANT, json.dumps(hgb_to_lightgbm_dump(reg, names, "regression"))))
    xs = with_threshold_rows(rng, x, [(int(nd["feature_idx"]), float(nd["num_threshold"])) for p in reg._predictors
                                      for nd in p[0].nodes if not nd["is_leaf"] and np.isfinite(nd["num_threshold"])])
    expected = reg.predict(xs)
    got = score_vectors(cur, "lgb-reg", xs)
    diff = float(np.max(np.abs(got - expected)))
    check(diff <= 1e-6, f"lightgbm_json regression: score_vector of {len(xs)} rows equals the model's predict (max diff {diff:.3g})")


def test_logistic_training(cur, rng):
    """In-database logistic regression against scikit-learn with the same L2 penalty."""
    n_cust, n_events, l2 = 1500, 6000, 2.0
    cur.execute("""
        INSERT INTO kaireon.data_schemas (tenant_id, id, name) VALUES (%(t)s, 'customers', 'customers');
        INSERT INTO kaireon.schema_fields (tenant_id, schema_id, name, data_type, is_nullable, is_primary_key, ordinal) VALUES
          (%(t)s, 'customers', 'customer_id', 'text', false, true, 1),
          (%(t)s, 'customers', 'age', 'double', true, false, 2),
          (%(t)s, 'customers', 'income', 'double', true, false, 3),
          (%(t)s, 'customers', 'segment', 'text', true, false, 4);
        SELECT kaireon.publish_data_schema(%(t)s, 'customers');
        -- click (positive), dismiss (negative) and impression (neutral) are among the
        -- outcome types every new tenant gets
        INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors) VALUES
          (%(t)s, 'lr', 'lr', 'logistic_regression',
           '[{"name": "age", "type": "numeric"}, {"name": "income", "type": "numeric"},
             {"name": "segment", "type": "categorical"}, {"name": "device", "type": "categorical"},
             {"name": "recency", "type": "numeric"}]');
    """, {"t": TENANT})
    segs = ["gold", "silver", "bronze"]
    age = np.round(rng.uniform(18, 80, n_cust), 1)
    income = np.round(rng.lognormal(0, 0.5, n_cust), 3)
    seg = rng.choice(segs + [None], n_cust, p=[0.3, 0.3, 0.3, 0.1])
    age_missing = rng.random(n_cust) < 0.05
    cust_rows = [(f"c{i}", None if age_missing[i] else float(age[i]), float(income[i]), seg[i]) for i in range(n_cust)]
    cur.execute("INSERT INTO kaireon_t_oracle.ds_customers (customer_id, age, income, segment) SELECT * FROM unnest(%s::text[], %s::float8[], %s::float8[], %s::text[])",
                ([r[0] for r in cust_rows], [r[1] for r in cust_rows], [r[2] for r in cust_rows], [r[3] for r in cust_rows]))
    ci = rng.integers(0, n_cust, n_events)
    device = rng.choice(["mobile", "desktop", "tablet"], n_events)
    recency = np.round(rng.exponential(3, n_events), 2)
    # the context's "age" overrides the customer's for a few events (context wins)
    ctx_age = rng.random(n_events) < 0.05
    rows_x, rows_y, ctx = [], [], []
    for k in range(n_events):
        i = ci[k]
        a = 30.0 if ctx_age[k] else (None if age_missing[i] else age[i])
        z = -1 + 0.03 * (a or 0) - 0.8 * income[i] + {"gold": 1.0, "silver": 0.3, "bronze": -0.5, None: 0}[seg[i]] \
            + (0.6 if device[k] == "mobile" else 0) - 0.2 * recency[k]
        y = int(rng.random() < 1 / (1 + math.exp(-z)))
        c = {"device": str(device[k]), "recency": float(recency[k])}
        if ctx_age[k]:
            c["age"] = 30.0
        ctx.append(json.dumps(c))
        rows_y.append(y)
        rows_x.append((a, income[i], seg[i], device[k], recency[k]))
    outcome = ["click" if y else "dismiss" for y in rows_y]
    cur.execute("""INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, context, occurred_at)
                   SELECT %s, c, 'outcome', o, x::jsonb, now() - interval '1 day' FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(c, o, x)""",
                (TENANT, [f"c{i}" for i in ci], outcome, ctx))
    # neutral outcomes and other tenants' rows must not count
    cur.execute("""INSERT INTO kaireon.interaction_history (tenant_id, customer_id, interaction_type, outcome_type_key, occurred_at)
                   SELECT %s, 'c1', 'outcome', 'impression', now() - interval '1 day' FROM generate_series(1, 50)""", (TENANT,))
    cur.execute("SELECT kaireon.train_model(%s, 'lr', options => %s::jsonb)", (TENANT, json.dumps({"l2": l2})))
    metrics = cur.fetchone()[0]
    check(metrics["samples"] == n_events, f"train_model used the {n_events} positive and negative outcomes (got {metrics['samples']})")
    cur.execute("SELECT model_state, version FROM kaireon.algorithm_models WHERE tenant_id = %s AND key = 'lr'", (TENANT,))
    state, version = cur.fetchone()
    # the same design: numeric as is (missing as 0), every seen level one-hot
    levels = {"segment": sorted({r[2] for r in rows_x if r[2] is not None}), "device": sorted({r[3] for r in rows_x})}
    cols = ["age", "income"] + [f"segment={v}" for v in levels["segment"]] + [f"device={v}" for v in levels["device"]] + ["recency"]
    X = np.array([[r[0] or 0.0, r[1]] + [1.0 if r[2] == v else 0.0 for v in levels["segment"]]
                  + [1.0 if r[3] == v else 0.0 for v in levels["device"]] + [r[4]] for r in rows_x])
    sk = LogisticRegression(C=1.0 / l2, tol=1e-10, max_iter=500, solver="newton-cg").fit(X, rows_y)
    mine = []
    for col in cols:
        if "=" in col:
            f, v = col.split("=")
            mine.append(state["weights"][f][v])
        else:
            mine.append(state["weights"][col])
    diffs = np.abs(np.array(mine) - sk.coef_[0])
    bias_diff = abs(state["bias"] - sk.intercept_[0])
    check(float(np.max(diffs)) <= 1e-4 and bias_diff <= 1e-4,
          f"train_model logistic regression equals scikit-learn LogisticRegression(C=1/l2) (max coef diff {float(np.max(diffs)):.3g}, intercept diff {bias_diff:.3g})")
    cur.execute("SELECT count(*) FROM kaireon.model_versions v JOIN kaireon.algorithm_models m ON m.tenant_id = v.tenant_id AND m.id = v.model_id WHERE m.tenant_id = %s AND m.key = 'lr' AND v.version = %s AND v.model_state = m.model_state",
                (TENANT, version))
    check(cur.fetchone()[0] == 1 and version == 2, "training wrote a new version with its model_versions snapshot")
    p = sk.predict_proba(X)[:, 1]
    ll = -np.mean(np.where(np.array(rows_y) == 1, np.log(p), np.log(1 - p)))
    check(abs(metrics["logLoss"] - ll) <= 1e-6, f"training log loss equals scikit-learn's ({metrics['logLoss']:.6f} vs {ll:.6f})")
    from sklearn.metrics import roc_auc_score
    auc = roc_auc_score(rows_y, p)
    check(abs(metrics["auc"] - auc) <= 1e-6, f"training AUC equals scikit-learn's roc_auc_score ({metrics['auc']:.6f} vs {auc:.6f})")


# ---------------------------------------------------------------- online_learner

# the stream's predictors: numeric ones, and a categorical one one-hot over its levels
ONLINE_NUMERIC = ["age", "income", "recency", "visits"]
ONLINE_LEVELS = ["gold", "silver", "bronze"]
ONLINE_PREDICTORS = [{"name": n, "type": "numeric"} for n in ONLINE_NUMERIC] + [{"name": "segment", "type": "categorical"}]


def online_stream(rng, n):
    """n ordered outcomes: (features dict, design row, label)."""
    out = []
    for _ in range(n):
        f = {"age": float(np.round(rng.normal(0, 1), 3)), "income": float(np.round(rng.lognormal(0, 0.5), 3)),
             "recency": float(np.round(rng.exponential(1), 3)), "visits": float(rng.integers(0, 4))}
        if rng.random() < 0.1:
            del f["income"]                 # missing: 0 in the design
        seg = rng.choice(ONLINE_LEVELS + [None], p=[0.3, 0.3, 0.3, 0.1])
        if seg is not None:
            f["segment"] = str(seg)
        z = -0.5 + 1.2 * f["age"] - 0.8 * f.get("income", 0) + 0.3 * f["visits"] - 0.4 * f["recency"] \
            + {"gold": 1.0, "silver": 0.2, "bronze": -0.7, None: 0}[seg]
        y = int(rng.random() < 1 / (1 + np.exp(-z)))
        row = [f.get(c, 0.0) for c in ONLINE_NUMERIC] + [1.0 if seg == lv else 0.0 for lv in ONLINE_LEVELS]
        out.append((f, row, y))
    return out


def online_learn(cur, key, settings, data):
    cur.execute("INSERT INTO kaireon.algorithm_models (tenant_id, key, name, model_type, predictors, model_state) "
                "VALUES (%s, %s, %s, 'online_learner', %s::jsonb, %s::jsonb)",
                (TENANT, key, key, json.dumps(ONLINE_PREDICTORS), json.dumps(settings)))
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


def online_coefficients(state):
    w = state.get("weights", {})
    return np.array([w.get(c, 0.0) for c in ONLINE_NUMERIC] + [w.get("segment", {}).get(lv, 0.0) for lv in ONLINE_LEVELS])


def test_online_schedule(cur, data, key, settings, sk_params, tolerance=1e-8):
    state, version = online_learn(cur, key, settings, data)
    sk = SGDClassifier(loss="log_loss", penalty="l2", shuffle=False, **sk_params)
    for f, row, y in data:
        sk.partial_fit(np.array([row]), np.array([y]), classes=np.array([0, 1]))
    mine = online_coefficients(state)
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


def test_online_learner(cur, rng):
    """online_learner against SGDClassifier.partial_fit on one ordered stream, per schedule."""
    long_data = online_stream(rng, 20000)
    data = long_data[:3000]
    test_online_schedule(cur, long_data, "sgd-optimal-default", {}, {"alpha": 0.0001, "learning_rate": "optimal"}, 1e-6)
    test_online_schedule(cur, data, "sgd-optimal-strong-l2", {"alpha": 0.01},
                         {"alpha": 0.01, "learning_rate": "optimal"})
    test_online_schedule(cur, data, "sgd-constant", {"learningRate": "constant", "eta0": 0.05, "alpha": 0.001},
                         {"alpha": 0.001, "learning_rate": "constant", "eta0": 0.05})
    test_online_schedule(cur, data, "sgd-invscaling",
                         {"learningRate": "invscaling", "eta0": 0.5, "powerT": 0.3, "alpha": 0.0005},
                         {"alpha": 0.0005, "learning_rate": "invscaling", "eta0": 0.5, "power_t": 0.3})
    test_online_schedule(cur, data, "sgd-no-intercept", {"learningRate": "constant", "eta0": 0.02, "fitIntercept": False},
                         {"alpha": 0.0001, "learning_rate": "constant", "eta0": 0.02, "fit_intercept": False})


def main():
    rng = np.random.default_rng(20261125)
    conn = connect()
    cur = conn.cursor()
    cur.execute("INSERT INTO kaireon.tenants (id, name, slug) VALUES (%s, 'Oracle', 'oracle')", (TENANT,))
    test_xgboost(cur, rng)
    test_lightgbm(cur, rng)
    test_logistic_training(cur, rng)
    test_online_learner(cur, np.random.default_rng(20261206))
    print(f"{FAILED} failed")
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
