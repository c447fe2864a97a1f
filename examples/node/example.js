// A kaireon client in Node.js with the npm "pg" client: recommend, render the creative,
// respond, and handle errors by SQLSTATE.
//
// It connects as "acme_app", an application role pinned to the demo tenant "acme"
// (examples/setup.sql), asks kaireon.recommend for the offers to show a web visitor on the
// home page hero, renders each offer's creative as text, records a click on the first offer
// with kaireon.respond, and then makes the usual mistakes on purpose to show the SQLSTATE each
// one raises and what a client should do about it.
//
// Every step checks what came back: a line "ok - ..." says a check held; the first check that
// fails prints "not ok - ..." and the script exits with status 1. So running it is a test (CI
// runs it: test/t/060_examples.pl). examples/python/example.py does the same in Python, with
// the same checks.
//
// Connection: the libpq environment variables pg reads (PGHOST, a directory for a Unix
// socket; PGPORT, PGPASSWORD, ...); PGUSER defaults to acme_app and PGDATABASE to
// kaireon_demo (the database of test/demo.sh). Install with `npm ci`, run with
// `node example.js`. See examples/README.md.
'use strict';

const crypto = require('node:crypto');
const { Client } = require('pg');

const TENANT = 'acme';
const CHANNEL = 'web';
const PLACEMENT = 'hero';

// An observed result differs from the expected one.
class CheckFailed extends Error {}

// Prints "ok - what" when condition holds; throws CheckFailed otherwise.
function check(condition, what, detail = '') {
  if (!condition) throw new CheckFailed(what + (detail ? ': ' + detail : ''));
  console.log('ok - ' + what);
}

// What a client does about an error, by SQLSTATE (err.code; docs/recommend.md lists which
// call raises which). kaireon writes nothing when it raises, and the transaction is rolled
// back either way, so each action starts from a clean state.
function actionFor(sqlstate) {
  // serialization failure (a cap or budget unit taken concurrently), deadlock: nothing of
  // the transaction was kept; run the whole transaction again, after a short pause. respond
  // with an idempotency key records an outcome once however often it is sent.
  if (sqlstate === '40001' || sqlstate === '40P01') return 'retry';
  // connection lost, server shutting down or starting: reconnect, then retry.
  if (sqlstate.startsWith('08') || ['57P01', '57P02', '57P03'].includes(sqlstate)) return 'reconnect';
  // data exception: 22023 a bad value (max_offers, an unknown outcome or option), 22004 a
  // NULL, 22P02 a customer id of the wrong type. The request is wrong: fix the input (an
  // HTTP API answers 400); sending it again fails again.
  if (sqlstate.startsWith('22')) return 'fix input';
  // an unknown tenant, channel, placement, flow, offer or recommendation: the request names
  // something the tenant's configuration does not have; fix the request or the
  // configuration (400/404). No retry.
  if (sqlstate === '42704') return 'fix input';
  // insufficient privilege: this role may not act for that tenant (a pin, row level
  // security). A bug or an attempt to cross tenants: refuse (403), log it, never retry and
  // never work around it with another role.
  if (sqlstate === '42501') return 'refuse';
  // object not in prerequisite state (55000): an inactive channel or placement, an
  // unpublished decision flow: the configuration is not ready; serve fallback content,
  // alert the people who run the configuration. Anything else is unexpected (a bug, an
  // internal error): fail the request, serve fallback content, log the SQLSTATE and message.
  return 'fallback';
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs work(client) in one transaction for the tenant, retrying on 40001/40P01.
async function inTransaction(client, work, attempts = 3) {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query('BEGIN');
      // The request's context, per transaction (safe behind a transaction pooler);
      // kaireon.user_id and request_id are recorded by audit.
      await client.query('SELECT kaireon.set_tenant($1, user_id => $2, request_id => $3)',
        [TENANT, 'example-app', crypto.randomUUID()]);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {}); // a lost connection: keep err
      if (err.code && actionFor(err.code) === 'retry' && attempt < attempts) {
        console.log(`  ${err.code} (${err.message}): retrying the transaction`);
        await sleep(50 * 2 ** attempt);
        continue;
      }
      throw err;
    }
  }
}

// The copy of a creative: its content's headline, subject (email) or text (push).
function creativeText(creative) {
  const content = creative ? creative.content : {};
  return content.headline || content.subject || content.text || '';
}

// A decision as text: rank, offer name and the creative's copy.
function render(row, creative) {
  return `#${row.rank} ${row.offer_name}: "${creativeText(creative)}" ` +
    `(creative ${row.creative_id}, score ${row.score.toFixed(3)})`;
}

// kaireon.recommend for the visitor on the hero, with each decision's creative.
async function recommend(client, customerId, context) {
  const { rows } = await client.query(
    `SELECT rank, offer_id, offer_name, creative_id, score, recommendation_id
       FROM kaireon.recommend($1, $2, $3, $4, context => $5, max_offers => 3)`,
    [TENANT, customerId, CHANNEL, PLACEMENT, context]);
  // The decision names the creative; its content (JSON) is in kaireon.creatives, which row
  // level security shows to the tenant's roles.
  const found = await client.query(
    'SELECT id, content FROM kaireon.creatives WHERE id = ANY($1)',
    [rows.map((r) => r.creative_id)]);
  const creatives = new Map(found.rows.map((c) => [c.id, c]));
  return { rows, creatives };
}

// kaireon.respond: a click on the decision, sent with an idempotency key.
async function respondClick(client, customerId, decision) {
  const { rows } = await client.query(
    `SELECT kaireon.respond($1, $2, 'click', recommendation_id => $3, rank => $4,
                            idempotency_key => $5) AS answer`,
    [TENANT, customerId, decision.recommendation_id, decision.rank,
      `${decision.recommendation_id}:${decision.rank}:click`]);
  return rows[0].answer;
}

// Runs work in a transaction; checks it fails with sqlstate and the client's action.
async function expectError(client, what, sqlstate, action, work) {
  const name = `${what} raises ${sqlstate}: ${action}`;
  try {
    await inTransaction(client, work);
  } catch (err) {
    if (err instanceof CheckFailed || !err.code) throw err;
    console.log(`  ${what}: ${err.code}: ${err.message}`);
    if (err.hint) console.log('    hint: ' + err.hint);
    check(err.code === sqlstate && actionFor(err.code) === action, name,
      `got ${err.code}: ${actionFor(err.code)}`);
    return;
  }
  check(false, name, 'it succeeded');
}

async function main() {
  const client = new Client({
    user: process.env.PGUSER || 'acme_app',
    database: process.env.PGDATABASE || 'kaireon_demo',
    application_name: 'kaireon-example-node',
  });
  await client.connect();
  try {
    // 1. Who are we? An application role: no superuser, no BYPASSRLS (either would bypass
    // row level security), pinned to acme: its tenant with nothing set.
    const me = (await client.query(
      `SELECT current_user AS user, rolsuper, rolbypassrls, kaireon.current_tenant_id() AS tenant
         FROM pg_roles WHERE rolname = current_user`)).rows[0];
    console.log(`connected as ${me.user}; kaireon.current_tenant_id() = ${me.tenant}`);
    check(!me.rolsuper && !me.rolbypassrls, 'the role is neither superuser nor BYPASSRLS');
    check(me.tenant === TENANT, 'the role is pinned to tenant ' + TENANT, `got ${me.tenant}`);

    // 2. Recommend. A visitor of the web site (an id of its own each run, so the demo's
    // contact policy of three a day never holds it back); what the site knows of them goes
    // in the context, merged over the customer data.
    const customerId = 'visitor-' + crypto.randomBytes(6).toString('hex');
    const context = { age: 35, income: 52000, travels: true, device: 'mobile' };
    const { rows, creatives } = await inTransaction(client, (c) => recommend(c, customerId, context));
    console.log(`recommend(${TENANT}, ${customerId}, ${CHANNEL}, ${PLACEMENT}):`);
    for (const row of rows) console.log('  ' + render(row, creatives.get(row.creative_id)));
    check(rows.length >= 1, 'recommend returned decisions');
    check(rows.every((r, i) => r.rank === i + 1), 'the ranks are 1, 2, ...');
    check(new Set(rows.map((r) => r.recommendation_id)).size === 1,
      'the decisions share one recommendation id');
    check(rows.every((r) => creatives.has(r.creative_id)), 'every decision has its creative');
    check(rows.every((r) => creativeText(creatives.get(r.creative_id)) !== ''),
      'every creative has text to show');

    // 3. Respond: the visitor clicks the first offer.
    const first = rows[0];
    const answer = await inTransaction(client, (c) => respondClick(c, customerId, first));
    console.log(`respond click on #1: interaction ${answer.interactionId}, ${answer.classification}`);
    check(answer.classification === 'positive' && !answer.duplicate,
      'respond recorded a positive outcome');
    check(answer.recommendationId === first.recommendation_id &&
      answer.offerId === first.offer_id && answer.rank === 1,
      'respond matched the first decision');
    const recorded = await inTransaction(client, async (c) => (await c.query(
      `SELECT interaction_type, outcome_type_key, offer_id, recommendation_id
         FROM kaireon.interaction_history WHERE id = $1`, [answer.interactionId])).rows);
    check(recorded.length === 1 && recorded[0].interaction_type === 'outcome' &&
      recorded[0].outcome_type_key === 'click' && recorded[0].offer_id === first.offer_id &&
      recorded[0].recommendation_id === first.recommendation_id,
      'the click is in kaireon.interaction_history');

    // Sending it again (say the answer was lost with the connection) records nothing new.
    const again = await inTransaction(client, (c) => respondClick(c, customerId, first));
    check(again.duplicate && again.interactionId === answer.interactionId,
      'respond again with the same idempotency key is a duplicate');

    // 4. Errors, by SQLSTATE. kaireon writes nothing when it raises.
    console.log('errors:');
    const run = (sql, ...args) => (c) => c.query(sql, args);
    await expectError(client, 'an unknown channel', '42704', 'fix input',
      run("SELECT * FROM kaireon.recommend($1, $2, 'fax')", TENANT, customerId));
    await expectError(client, 'max_offers 0', '22023', 'fix input',
      run('SELECT * FROM kaireon.recommend($1, $2, $3, $4, max_offers => 0)',
        TENANT, customerId, CHANNEL, PLACEMENT));
    await expectError(client, 'an unknown outcome', '22023', 'fix input',
      run("SELECT kaireon.respond($1, $2, 'like', recommendation_id => $3, rank => 1)",
        TENANT, customerId, first.recommendation_id));
    await expectError(client, 'recommend for another tenant', '42501', 'refuse',
      run("SELECT * FROM kaireon.recommend('globex', $1, $2, $3)", customerId, CHANNEL, PLACEMENT));
    await expectError(client, 'set_tenant to another tenant', '42501', 'refuse',
      run("SELECT kaireon.set_tenant('globex')"));

    // 5. Retry. A serialization failure (40001) or deadlock (40P01) rolls the whole
    // transaction back; inTransaction runs it again. Simulated here: the first attempt
    // raises 40001 itself.
    let attempts = 0;
    const tenant = await inTransaction(client, async (c) => {
      attempts++;
      if (attempts === 1) {
        await c.query(`DO $$ BEGIN RAISE EXCEPTION 'simulated serialization failure'
                       USING ERRCODE = '40001'; END $$`);
      }
      return (await c.query('SELECT kaireon.current_tenant_id() AS t')).rows[0].t;
    });
    check(tenant === TENANT && attempts === 2,
      'a transaction failing with 40001 is retried and succeeds');
  } finally {
    await client.end();
  }
  console.log('all checks passed');
}

main().catch((err) => {
  if (err instanceof CheckFailed) console.log('not ok - ' + err.message);
  else console.error(err);
  process.exitCode = 1;
});
