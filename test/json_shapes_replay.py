#!/usr/bin/python3
"""Replay KaireonAI-shaped requests against kaireon's JSON entry points, unchanged.

Usage: json_shapes_replay.py FIXTURE SCHEMA_DIR [DOC...]

FIXTURE (test/fixtures/kaireonai_requests.json) lists steps, each a request body exactly as a
KaireonAI client sends it (its own names: channelId, placementId, limit, decisionFlowKey,
sessionId, attributes, timestamp, ...), without tenantId: the tenant is the connection's, so
every call uses the tenant-first form kaireon.<call>(tenant, request), as a REST gateway would
with its API key's tenant. A string "${step.path}" in a request is the value at path of an
earlier step's answer (a client passing on the recommendationId it got). Each step:
  - its request must be valid against docs/schemas/<call>-request.json, unless the step says
    "schemaValid": false (then the schema must refuse it too);
  - with "error": the call must fail with that SQLSTATE;
  - else its answer must be valid against docs/schemas/<call>-response.json and hold each
    "expect" path's value ("path": value; a value {"present": false} means the key is absent).
Each DOC (docs/json-api.md) is read for its examples: a ```json block right after a line
"<!-- schema: NAME -->" must be valid against docs/schemas/NAME.
Connects with libpq's environment (PGHOST, PGPORT, PGDATABASE, PGUSER) and prints a TAP-style
"ok - ..." or "not ok - ..." line per check; exits 1 when any check failed.
"""
import json
import os
import re
import sys
import warnings

import jsonschema
import psycopg2

TENANT = os.environ.get("KAIREON_TENANT", "acme")
failures = 0


def check(condition, what, detail=""):
    """Print one TAP-style line; count a failure."""
    global failures
    if condition:
        print("ok - " + what)
    else:
        failures += 1
        print("not ok - %s%s" % (what, (": " + detail) if detail else ""))


def load_schemas(directory):
    """Every docs/schemas/*.json, by file name, with a resolver for their $refs."""
    schemas = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                schemas[name] = json.load(f)
    store = {s["$id"]: s for s in schemas.values()}
    return schemas, store


def validator(schemas, store, name):
    """A draft-07 validator of schema NAME that resolves the others' $ids."""
    schema = schemas[name]
    jsonschema.Draft7Validator.check_schema(schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver(base_uri=schema["$id"], referrer=schema, store=store)
    return jsonschema.Draft7Validator(schema, resolver=resolver)


def errors_of(v, instance):
    """The validation errors, as one line."""
    return "; ".join("%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
                     for e in v.iter_errors(instance))


def at(value, path):
    """The value at a path such as decisions[0].offerId (KeyError / IndexError when absent)."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value


def substitute(value, answers):
    """Replace "${step.path}" strings by an earlier answer's value."""
    if isinstance(value, dict):
        return {k: substitute(v, answers) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, answers) for v in value]
    m = re.fullmatch(r"\$\{([^.}]+)\.([^}]+)\}", value) if isinstance(value, str) else None
    return at(answers[m.group(1)], m.group(2)) if m else value


def replay(conn, steps, schemas, store):
    """Run every step of the fixture."""
    answers = {}
    calls = {"recommend_json": "recommend", "respond_json": "respond", "respond_bulk": "respond-bulk"}
    for step in steps:
        name, call = step["name"], step["call"]
        request = substitute(step["request"], answers)
        problems = errors_of(validator(schemas, store, calls[call] + "-request.json"), request)
        if step.get("schemaValid", True):
            check(problems == "", "%s: the request is valid against its schema" % name, problems)
        else:
            check(problems != "", "%s: its schema refuses the request too" % name)
        sqlstate, answer = None, None
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT kaireon.%s(%%s, %%s::jsonb)" % call, (TENANT, json.dumps(request)))
                answer = cur.fetchone()[0]
                conn.commit()
            except psycopg2.Error as e:
                conn.rollback()
                sqlstate = e.pgcode
                message = e.pgerror
        if "error" in step:
            check(sqlstate == step["error"], "%s: refused with SQLSTATE %s" % (name, step["error"]),
                  "got %s" % (sqlstate or "an answer"))
            continue
        if sqlstate is not None:
            check(False, "%s: answered" % name, "%s %s" % (sqlstate, message))
            continue
        answers[name] = answer
        v = validator(schemas, store, calls[call] + "-response.json")
        check(errors_of(v, answer) == "", "%s: the answer is valid against its schema" % name, errors_of(v, answer))
        for path, want in step.get("expect", {}).items():
            try:
                got = at(answer, path)
                present = True
            except (KeyError, IndexError, TypeError):
                got, present = None, False
            if want == {"present": False}:
                check(not present, "%s: %s is absent" % (name, path), "got %r" % (got,))
            else:
                check(present and got == want, "%s: %s = %s" % (name, path, json.dumps(want)),
                      "got %s" % (json.dumps(got) if present else "nothing"))


def doc_examples(path, schemas, store):
    """Validate each ```json example of a doc marked <!-- schema: NAME --> against NAME."""
    with open(path) as f:
        text = f.read()
    found = 0
    for m in re.finditer(r"<!-- schema: ([\w.-]+) -->\s*```json\n(.*?)```", text, re.S):
        found += 1
        example = json.loads(m.group(2))
        v = validator(schemas, store, m.group(1))
        line = text[:m.start()].count("\n") + 1
        check(errors_of(v, example) == "", "%s line %d: the example is valid against %s" % (path, line, m.group(1)),
              errors_of(v, example))
    check(found > 0, "%s has examples marked with their schema" % path)


def main():
    fixture, schema_dir, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
    schemas, store = load_schemas(schema_dir)
    for name, schema in schemas.items():
        jsonschema.Draft7Validator.check_schema(schema)
        check(True, "%s is a valid draft-07 schema" % name)
    with open(fixture) as f:
        steps = json.load(f)["steps"]
    conn = psycopg2.connect("")
    replay(conn, steps, schemas, store)
    conn.close()
    for doc in docs:
        doc_examples(doc, schemas, store)
    print("%d checks failed" % failures if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
