#!/usr/bin/python3
"""A kaireon client in Python with psycopg2: recommend, render the creative, respond, and
handle errors by SQLSTATE.

It connects as "acme_app", an application role pinned to the demo tenant "acme"
(examples/setup.sql), asks kaireon.recommend for the offers to show a web visitor on the home
page hero, renders each offer's creative as text, records a click on the first offer with
kaireon.respond, and then makes the usual mistakes on purpose to show the SQLSTATE each one
raises and what a client should do about it.

Every step checks what came back: a line "ok - ..." says a check held; the first check that
fails prints "not ok - ..." and the script exits with status 1. So running it is a test (CI
runs it: test/t/060_examples.pl). examples/node/example.js does the same in JavaScript, with
the same checks.

Connection: the libpq environment (PGHOST, PGPORT, PGPASSWORD, ...); PGUSER defaults to
acme_app and PGDATABASE to kaireon_demo (the database of test/demo.sh). See
examples/README.md. Run it with Debian's /usr/bin/python3 (package python3-psycopg2).
"""
import os
import sys
import time
import uuid

import psycopg2
import psycopg2.errorcodes
from psycopg2.extras import Json

TENANT = "acme"
CHANNEL = "web"
PLACEMENT = "hero"


class CheckFailed(Exception):
    """An observed result differs from the expected one."""


def check(condition, what, detail=""):
    """Print "ok - what" when condition holds; raise CheckFailed otherwise."""
    if not condition:
        raise CheckFailed("%s%s" % (what, (": " + detail) if detail else ""))
    print("ok - " + what)


# What a client does about an error, by SQLSTATE (docs/recommend.md lists which call raises
# which). kaireon writes nothing when it raises, and the transaction is rolled back either
# way, so each action starts from a clean state.
def action_for(sqlstate):
    """The client's answer to an error with this SQLSTATE."""
    if sqlstate in ("40001", "40P01"):
        # serialization failure (a cap or budget unit taken concurrently), deadlock: nothing
        # of the transaction was kept; run the whole transaction again, after a short pause.
        # respond with an idempotency key records an outcome once however often it is sent.
        return "retry"
    if sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        # connection lost, server shutting down or starting: reconnect, then retry.
        return "reconnect"
    if sqlstate.startswith("22"):
        # data exception: 22023 a bad value (max_offers, an unknown outcome or option), 22004
        # a NULL, 22P02 a customer id of the wrong type. The request is wrong: fix the
        # input (an HTTP API answers 400); sending it again fails again.
        return "fix input"
    if sqlstate == "42704":
        # an unknown tenant, channel, placement, flow, offer or recommendation: the request
        # names something the tenant's configuration does not have; fix the request or the
        # configuration (400/404). No retry.
        return "fix input"
    if sqlstate == "42501":
        # insufficient privilege: this role may not act for that tenant (a pin, row level
        # security). A bug or an attempt to cross tenants: refuse (403), log it, never retry
        # and never work around it with another role.
        return "refuse"
    if sqlstate == "55000":
        # object not in prerequisite state: an inactive channel or placement, an unpublished
        # decision flow. The configuration is not ready: serve fallback content, alert the
        # people who run the configuration.
        return "fallback"
    # Anything else is unexpected (a bug, an internal error): fail the request, serve
    # fallback content, log the SQLSTATE and message.
    return "fallback"


def in_transaction(conn, work, attempts=3):
    """Run work(cursor) in one transaction for the tenant, retrying on 40001/40P01."""
    for attempt in range(1, attempts + 1):
        try:
            with conn:  # commits when the block ends, rolls back on an exception
                with conn.cursor() as cur:
                    # The request's context, per transaction (safe behind a transaction
                    # pooler); kaireon.user_id and request_id are recorded by audit.
                    cur.execute("SELECT kaireon.set_tenant(%s, user_id => %s, request_id => %s)",
                                (TENANT, "example-app", str(uuid.uuid4())))
                    return work(cur)
        except psycopg2.Error as e:
            if e.pgcode and action_for(e.pgcode) == "retry" and attempt < attempts:
                print("  %s (%s): retrying the transaction" % (e.pgcode, e.diag.message_primary))
                time.sleep(0.05 * 2 ** attempt)
                continue
            raise
    raise AssertionError("unreachable")


def creative_text(creative):
    """The copy of a creative: its content's headline, subject (email) or text (push)."""
    content = creative["content"] if creative else {}
    return content.get("headline") or content.get("subject") or content.get("text") or ""


def render(row, creative):
    """A decision as text: rank, offer name and the creative's copy."""
    return '#%d %s: "%s" (creative %s, score %.3f)' % (
        row["rank"], row["offer_name"], creative_text(creative), row["creative_id"], row["score"])


def recommend(cur, customer_id, context):
    """kaireon.recommend for the visitor on the hero, with each decision's creative."""
    cur.execute("""
        SELECT rank, offer_id, offer_name, creative_id, score, recommendation_id
          FROM kaireon.recommend(%s, %s, %s, %s, context => %s, max_offers => 3)""",
                (TENANT, customer_id, CHANNEL, PLACEMENT, Json(context)))
    names = [d.name for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    # The decision names the creative; its content (JSON) is in kaireon.creatives, which row
    # level security shows to the tenant's roles.
    cur.execute("SELECT id, content FROM kaireon.creatives WHERE id = ANY(%s)",
                ([r["creative_id"] for r in rows],))
    creatives = {i: {"content": c} for i, c in cur.fetchall()}
    return rows, creatives


def respond_click(cur, customer_id, decision):
    """kaireon.respond: a click on the decision, sent with an idempotency key."""
    cur.execute("""
        SELECT kaireon.respond(%s, %s, 'click', recommendation_id => %s, rank => %s,
                               idempotency_key => %s)""",
                (TENANT, customer_id, decision["recommendation_id"], decision["rank"],
                 "%s:%d:click" % (decision["recommendation_id"], decision["rank"])))
    return cur.fetchone()[0]


def expect_error(conn, what, sqlstate, action, work):
    """Run work in a transaction; check it fails with sqlstate and the client's action."""
    try:
        in_transaction(conn, work)
    except psycopg2.Error as e:
        name = psycopg2.errorcodes.lookup(e.pgcode) if e.pgcode else "(no SQLSTATE)"
        print("  %s: %s %s: %s" % (what, e.pgcode, name, e.diag.message_primary))
        if e.diag.message_hint:
            print("    hint: " + e.diag.message_hint)
        check(e.pgcode == sqlstate and action_for(e.pgcode) == action,
              "%s raises %s: %s" % (what, sqlstate, action),
              "got %s: %s" % (e.pgcode, action_for(e.pgcode or "")))
        return
    check(False, "%s raises %s: %s" % (what, sqlstate, action), "it succeeded")


def main():
    conn = psycopg2.connect(user=os.environ.get("PGUSER", "acme_app"),
                            dbname=os.environ.get("PGDATABASE", "kaireon_demo"),
                            application_name="kaireon-example-python")

    # 1. Who are we? An application role: no superuser, no BYPASSRLS (either would bypass
    # row level security), pinned to acme: its tenant with nothing set.
    with conn, conn.cursor() as cur:
        cur.execute("""SELECT current_user, rolsuper, rolbypassrls, kaireon.current_tenant_id()
                         FROM pg_roles WHERE rolname = current_user""")
        user, superuser, bypassrls, tenant = cur.fetchone()
    print("connected as %s; kaireon.current_tenant_id() = %s" % (user, tenant))
    check(not superuser and not bypassrls, "the role is neither superuser nor BYPASSRLS")
    check(tenant == TENANT, "the role is pinned to tenant " + TENANT, "got %r" % tenant)

    # 2. Recommend. A visitor of the web site (an id of its own each run, so the demo's
    # contact policy of three a day never holds it back); what the site knows of them goes in
    # the context, merged over the customer data.
    customer_id = "visitor-" + uuid.uuid4().hex[:12]
    context = {"age": 35, "income": 52000, "travels": True, "device": "mobile"}
    rows, creatives = in_transaction(conn, lambda cur: recommend(cur, customer_id, context))
    print("recommend(%s, %s, %s, %s):" % (TENANT, customer_id, CHANNEL, PLACEMENT))
    for row in rows:
        print("  " + render(row, creatives.get(row["creative_id"])))
    check(len(rows) >= 1, "recommend returned decisions")
    check([r["rank"] for r in rows] == list(range(1, len(rows) + 1)), "the ranks are 1, 2, ...")
    check(len({r["recommendation_id"] for r in rows}) == 1,
          "the decisions share one recommendation id")
    check(all(r["creative_id"] in creatives for r in rows), "every decision has its creative")
    check(all(creative_text(creatives[r["creative_id"]]) for r in rows),
          "every creative has text to show")

    # 3. Respond: the visitor clicks the first offer.
    first = rows[0]
    answer = in_transaction(conn, lambda cur: respond_click(cur, customer_id, first))
    print("respond click on #1: interaction %s, %s" % (answer["interactionId"],
                                                      answer["classification"]))
    check(answer["classification"] == "positive" and not answer["duplicate"],
          "respond recorded a positive outcome")
    check(answer["recommendationId"] == first["recommendation_id"]
          and answer["offerId"] == first["offer_id"] and answer["rank"] == 1,
          "respond matched the first decision")

    def recorded(cur):
        cur.execute("""SELECT interaction_type, outcome_type_key, offer_id, recommendation_id
                         FROM kaireon.interaction_history WHERE id = %s""",
                    (answer["interactionId"],))
        return cur.fetchall()
    check(in_transaction(conn, recorded)
          == [("outcome", "click", first["offer_id"], first["recommendation_id"])],
          "the click is in kaireon.interaction_history")

    # Sending it again (say the answer was lost with the connection) records nothing new.
    again = in_transaction(conn, lambda cur: respond_click(cur, customer_id, first))
    check(again["duplicate"] and again["interactionId"] == answer["interactionId"],
          "respond again with the same idempotency key is a duplicate")

    # 4. Errors, by SQLSTATE. kaireon writes nothing when it raises.
    print("errors:")

    def run(sql, *args):
        return lambda cur: cur.execute(sql, args)
    expect_error(conn, "an unknown channel", "42704", "fix input",
                 run("SELECT * FROM kaireon.recommend(%s, %s, 'fax')", TENANT, customer_id))
    expect_error(conn, "max_offers 0", "22023", "fix input",
                 run("SELECT * FROM kaireon.recommend(%s, %s, %s, %s, max_offers => 0)",
                     TENANT, customer_id, CHANNEL, PLACEMENT))
    expect_error(conn, "an unknown outcome", "22023", "fix input",
                 run("SELECT kaireon.respond(%s, %s, 'like', recommendation_id => %s, rank => 1)",
                     TENANT, customer_id, first["recommendation_id"]))
    expect_error(conn, "recommend for another tenant", "42501", "refuse",
                 run("SELECT * FROM kaireon.recommend('globex', %s, %s, %s)",
                     customer_id, CHANNEL, PLACEMENT))
    expect_error(conn, "set_tenant to another tenant", "42501", "refuse",
                 run("SELECT kaireon.set_tenant('globex')"))

    # 5. Retry. A serialization failure (40001) or deadlock (40P01) rolls the whole
    # transaction back; in_transaction runs it again. Simulated here: the first attempt
    # raises 40001 itself.
    attempts = []

    def fails_once(cur):
        attempts.append(1)
        if len(attempts) == 1:
            cur.execute("DO $$ BEGIN RAISE EXCEPTION 'simulated serialization failure' "
                        "USING ERRCODE = '40001'; END $$")
        cur.execute("SELECT kaireon.current_tenant_id()")
        return cur.fetchone()[0]
    check(in_transaction(conn, fails_once) == TENANT and len(attempts) == 2,
          "a transaction failing with 40001 is retried and succeeds")
    conn.close()
    print("all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print("not ok - %s" % e)
        sys.exit(1)
