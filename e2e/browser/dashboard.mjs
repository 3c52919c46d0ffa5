// The operators' dashboard in a real browser (headless Chromium through playwright-core) against the running stack,
// as issue 14's "Done when" lists it: an operator signs in through the sandbox's Auth, sees a row inserted through
// PostgREST appear live and reach its terminal status, reads its transcript, cancels a pending row (and archives and
// unarchives it), acts on a batch and a classification, adds a phone to the do-not-call list and removes it, exports CSV and finds the database in it; a viewer sees calls
// and no action, and the action API refuses the viewer's token; a signed-in non-operator sees nothing. Screenshots
// of each page go to .dev/screenshots/. Run by e2e/tests/dashboard.rs (`cargo test -p outcall-e2e --test
// dashboard`), which passes the stack's settings (.dev/stack.env) and fresh phone numbers; plain
// `node e2e/browser/dashboard.mjs` works too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCREENSHOTS = join(ROOT, '.dev', 'screenshots');
// playwright-core is one of the pinned tools (tools/package.json), installed by ./dev setup outside the clone.
const NODE_MODULES = join(process.env.OUTCALL_CACHE ?? join(homedir(), '.cache', 'outcall'), 'npm', 'node_modules');
const { chromium } = createRequire(join(NODE_MODULES, 'noop.js'))('playwright-core');

const env = stackEnv();
const DASHBOARD = env.WORKER_URL;
const RUN = Date.now().toString(36);
const TIMEZONE = 'America/Chicago';
const CLINIC = 'Lakeside Occupational Health';
const LIVE_WITHIN_MS = 2000;
const phones = testPhones();

// ------------------------------------------------------------------------------------------------- the stack

function stackEnv() {
  let file = {};
  try {
    const text = readFileSync(join(ROOT, '.dev', 'stack.env'), 'utf8');
    file = Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')),
      l.slice(l.indexOf('=') + 1)]));
  } catch {
    // (no file: everything from the environment)
  }
  const names = ['WORKER_URL', 'SUPABASE_URL', 'SUPABASE_SERVICE_ROLE_KEY', 'DATABASE_URL', 'API_KEY'];
  const values = Object.fromEntries(names.map((n) => [n, process.env[n] ?? file[n]]));
  const missing = names.filter((n) => !values[n]);
  if (missing.length) throw new Error(`${missing.join(', ')} not set: start the stack with ./dev up`);
  return values;
}

// Numbers no other test dials (the classification cache is per phone): e2e/tests/dashboard.rs hands them over.
function testPhones() {
  if (process.env.OUTCALL_DASHBOARD_PHONES) return JSON.parse(process.env.OUTCALL_DASHBOARD_PHONES);
  const n = () => String(900 + Math.floor(Math.random() * 100));
  return { human: [`+15550001${n()}`, `+15550001${n()}`, `+15550001${n()}`], failed: [`+15550007${n()}`],
    dnc: [`+15550001${n()}`] };
}

async function rest(method, path, body, headers = {}) {
  const response = await fetch(`${env.SUPABASE_URL}/rest/v1/${path}`, {
    method,
    headers: { apikey: env.SUPABASE_SERVICE_ROLE_KEY, Authorization: `Bearer ${env.SUPABASE_SERVICE_ROLE_KEY}`,
      'Content-Type': 'application/json', Prefer: 'return=representation', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// An outside system's insert: through PostgREST with the service key.
async function insertCall(row) {
  const [inserted] = await rest('POST', 'pending_calls', {
    exam_id: `EX-${RUN}`, clinic_name: CLINIC, clinic_timezone: TIMEZONE, max_attempts: 1, ...row,
  });
  return inserted.id;
}

const callRow = async (id) => (await rest('GET', `call_list?id=eq.${id}`))[0];

async function eventually(what, check, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// Users: operators through `./dev operator add` (on this stack's Postgres), the non-operator as a plain confirmed
// Auth user, as an administrator would create one.
function addUsers(emails) {
  const port = new URL(env.DATABASE_URL).port;
  const dev = (...args) => execFileSync(join(ROOT, 'dev'), args, { env: { ...process.env, OUTCALL_PG_PORT: port },
    stdio: ['ignore', 'pipe', 'inherit'] });
  dev('operator', 'add', emails.operator, 'operator');
  dev('operator', 'add', emails.viewer, 'viewer');
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', `email=${emails.outsider}`, env.DATABASE_URL], {
    input: `insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
              created_at, updated_at)
            values (gen_random_uuid(), 'authenticated', 'authenticated', :'email', now(),
              '{"provider": "email", "providers": ["email"]}', '{}', now(), now());`,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
}

// ------------------------------------------------------------------------------------------------- the browser

const problems = []; // console errors and page errors: a CSP violation shows up here
const openPages = new Map(); // label -> page, for a screenshot of each when a case fails

async function newPage(browser, label) {
  const context = await browser.newContext({
    timezoneId: 'UTC', acceptDownloads: true, viewport: { width: 1400, height: 900 },
  });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`[${label}] console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`[${label}] page error: ${e.message}`));
  openPages.set(label, page);
  page.on('close', () => openPages.delete(label));
  return page;
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

// The code "sent" by the Auth stand-in, read back from its inspection endpoint.
async function signInCode(email, since) {
  return eventually(`a sign-in code for ${email}`, async () => {
    const response = await fetch(`${env.SUPABASE_URL}/_sandbox/auth/messages?email=${encodeURIComponent(email)}`);
    if (!response.ok) return null;
    const { messages } = await response.json();
    const latest = messages.filter((m) => Date.parse(m.sent_at) >= since - 2000).at(-1);
    return latest?.code ?? null;
  }, 5000);
}

async function signIn(page, email, name) {
  const response = await page.goto(`${DASHBOARD}/`);
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/, `/ is served with a strict CSP: ${csp}`);
  assert.match(csp, /style-src 'self'/, `/ is served with a strict CSP: ${csp}`);
  await page.waitForSelector('#email-form');
  if (name) await screenshot(page, name);
  await page.fill('#email', email);
  const since = Date.now();
  await page.click('#email-form button[type=submit]');
  await page.waitForSelector('#code-form:not([hidden])');
  await page.fill('#code', await signInCode(email, since));
  await page.click('#code-form button[type=submit]');
  await page.waitForSelector('main[data-page="calls"], main[data-page="denied"]');
}

// The signed-in user's access token, as supabase-js keeps it (localStorage, sb-<ref>-auth-token).
const accessToken = (page) => page.evaluate(() => {
  const key = Object.keys(localStorage).find((k) => /^sb-.*-auth-token$/.test(k));
  return JSON.parse(localStorage.getItem(key)).access_token;
});

const postAction = (page, token, path, body) => page.evaluate(async ([p, t, b]) => {
  const response = await fetch(p, { method: 'POST', headers: { Authorization: `Bearer ${t}`,
    'Content-Type': 'application/json' }, body: JSON.stringify(b) });
  return response.status;
}, [path, token, body]);

async function go(page, hash, ready) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.waitForSelector(ready);
}

async function downloadCsv(page, button) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
  return parseCsv(readFileSync(await download.path(), 'utf8'));
}

// RFC 4180 (what csv.js writes): rows of fields; the first row names them.
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\r') continue;
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else field += c;
  }
  const [header, ...body] = rows;
  return body.map((r) => Object.fromEntries(header.map((name, i) => [name, r[i]])));
}

// A CSV cell against the database's value: timestamps as instants, numbers as numbers, null as empty.
function sameValue(cell, value) {
  if (value === null || value === undefined) return cell === '';
  if (typeof value === 'number') return Number(cell) === value;
  if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) return Date.parse(cell) === Date.parse(value);
  return cell === String(value);
}

// ------------------------------------------------------------------------------------------------- the cases

async function operatorCases(browser, emails, ids) {
  const page = await newPage(browser, 'operator');
  await signIn(page, emails.operator, 'signin');
  await page.waitForSelector('main[data-page="calls"] table.calls');
  await page.waitForSelector('.live-badge[data-live="on"]', { timeout: 15_000 });

  // A row inserted through PostgREST appears without a reload, then reaches its terminal status on screen.
  ids.live = await insertCall({ employee_name: `Dana Live ${RUN}`, phone: phones.human[0] });
  const inserted = Date.now();
  await page.waitForSelector(`table.calls tr[data-id="${ids.live}"]`, { timeout: LIVE_WITHIN_MS });
  const appearedMs = Date.now() - inserted;
  const completed = `table.calls tr[data-id="${ids.live}"] td.status[data-status="completed"]`;
  await page.waitForSelector(completed, { timeout: 90_000 });
  const live = await eventually('the live row reported', async () => {
    const row = await callRow(ids.live);
    return row.call_status === 'completed' && row.duration_seconds !== null ? row : null;
  });
  await screenshot(page, 'calls');
  console.log(`the inserted row appeared on screen ${appearedMs} ms after its insert; completed on screen`);

  // Its page: the timeline and the transcript.
  await page.click(`table.calls tr[data-id="${ids.live}"] a.call-link`);
  await page.waitForSelector('#transcript');
  assert.equal(await page.evaluate(() => location.hash), `#/calls/${ids.live}`);
  const [full] = await rest('GET', `pending_calls?id=eq.${ids.live}&select=transcript`);
  assert.ok(full.transcript, 'the completed call has a transcript in the database');
  await page.waitForFunction((t) => document.getElementById('transcript')?.textContent === t, full.transcript);
  for (const step of ['dialled', 'answered', 'ended', 'report']) {
    assert.equal(await page.locator(`li[data-step="${step}"]`).count(), 1, `the timeline shows "${step}"`);
  }
  await screenshot(page, 'call');
  assert.ok(live.cost !== null || live.duration_seconds !== null);

  // A pending row (due tomorrow, so nothing dials it) cancelled from the list; the database changes and says who.
  ids.pending = await insertCall({
    employee_name: `Pat Pending ${RUN}`, phone: phones.human[1],
    next_attempt_at: new Date(Date.now() + 86_400_000).toISOString(),
  });
  await go(page, '#/calls', `table.calls tr[data-id="${ids.pending}"] td.status[data-status="pending"]`);
  await page.check(`table.calls tr[data-id="${ids.pending}"] input.select`);
  await page.click('.action-bar button.action[data-action="cancel"]');
  await page.click('button[data-confirm="cancel"]');
  await page.waitForSelector(`.results tr[data-id="${ids.pending}"][data-ok="true"]`);
  await eventually('the pending row cancelled in the database', async () =>
    (await callRow(ids.pending)).call_status === 'cancelled', 5000);
  const cancelled = `table.calls tr[data-id="${ids.pending}"] td.status[data-status="cancelled"]`;
  await page.waitForSelector(cancelled, { timeout: 5000 });
  const audit = await rest('GET', `operator_actions?target_ids=cs.{${ids.pending}}`);
  assert.equal(audit.length, 1, 'one audit row for the cancel');
  assert.equal(audit[0].action, 'cancel');
  assert.equal(audit[0].email, emails.operator);

  // Archived, the row leaves the list unless archived rows are asked for; unarchived, it is back.
  await page.click('.action-bar button.action[data-action="archive"]');
  await page.waitForSelector(`.results[data-action="archive"] tr[data-id="${ids.pending}"][data-ok="true"]`);
  await page.waitForSelector(`table.calls tr[data-id="${ids.pending}"]`, { state: 'detached' });
  assert.ok((await callRow(ids.pending)).archived_at, 'archived in the database');
  await page.check('input[name="archived"]');
  await page.waitForSelector(`table.calls tr.archived[data-id="${ids.pending}"]`);
  await page.click('.action-bar button.action[data-action="unarchive"]');
  await page.waitForSelector(`.results[data-action="unarchive"] tr[data-id="${ids.pending}"][data-ok="true"]`);
  assert.equal((await callRow(ids.pending)).archived_at, null, 'unarchived in the database');
  await page.uncheck('input[name="archived"]');
  await page.waitForSelector(`table.calls tr[data-id="${ids.pending}"]:not(.archived)`);
  const history = await rest('GET', `operator_actions?target_ids=cs.{${ids.pending}}&order=at`);
  assert.deepEqual(history.map((a) => a.action), ['cancel', 'archive', 'unarchive']);

  await batchCases(page, ids);
  await pauseCases(page, emails, ids);
  await phoneCases(page);
  await doNotCallCases(page, emails, ids);

  // The calls list, searched down to this run's rows, exported as CSV: what the database holds.
  await go(page, '#/calls', 'table.calls');
  await page.fill('input[name="search"]', RUN);
  const mine = [ids.live, ids.pending, ...ids.batchRows, ids.pausedRow, ids.dncRow];
  await page.waitForFunction((n) => document.querySelectorAll('table.calls tbody tr[data-id]').length === n,
    mine.length);
  const csv = await downloadCsv(page, '#export-csv');
  assert.deepEqual(csv.map((r) => r.id).sort(), [...mine].sort(), 'the CSV has exactly the rows shown');
  const database = await rest('GET', `call_list?id=in.(${mine.join(',')})`);
  for (const row of database) {
    const exported = csv.find((r) => r.id === row.id);
    for (const column of ['employee_name', 'phone', 'clinic_name', 'batch_id', 'call_status', 'attempts',
      'max_attempts', 'ended_reason', 'last_error', 'success_evaluation', 'duration_seconds', 'cost', 'created_at',
      'archived_at']) {
      assert.ok(sameValue(exported[column], row[column]),
        `CSV ${column} of ${row.id}: "${exported[column]}", the database has ${JSON.stringify(row[column])}`);
    }
  }
  console.log(`CSV: ${csv.length} rows, each as the database has it`);

  await go(page, '#/analytics', 'section.analytics[data-chart="learning"] svg');
  await page.waitForFunction(() => [...document.querySelectorAll('section.analytics')]
    .every((s) => s.querySelector('svg')));
  assert.equal(await page.locator('section.analytics .error').count(), 0, 'every analytics view answered');
  await screenshot(page, 'analytics');
  await breakerCases(page);
  await page.context().close();
}

// The circuit breaker's badge (in the header of every page) follows public.breaker_transitions live: its newest
// row is the state. The breaker itself is driven by e2e/tests/breaker.rs; here its log is written directly.
async function breakerCases(page) {
  const log = (values) => execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', env.DATABASE_URL], {
    input: `insert into public.breaker_transitions (from_state, to_state, reason, failures, provider) values ${values};`,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const state = () => page.locator('#breaker').getAttribute('data-state');
  const section = page.locator('section.analytics[data-chart="providers"]');
  assert.ok(await section.locator('h3', { hasText: 'Circuit breaker transitions' }).count() === 1,
    'the analytics page has the breaker\'s transitions');
  log(`('closed', 'open', 'failures', 5, 'twilio')`);
  await page.waitForFunction(() => document.querySelector('#breaker')?.dataset.state === 'open', null,
    { timeout: LIVE_WITHIN_MS });
  assert.equal(await page.locator('#breaker').textContent(), 'breaker open', 'the badge says the breaker is open');
  await screenshot(page, 'breaker-open');
  log(`('open', 'half_open', 'cooldown_over', 5, null)`);
  await page.waitForFunction(() => document.querySelector('#breaker')?.dataset.state === 'half_open', null,
    { timeout: LIVE_WITHIN_MS });
  log(`('half_open', 'closed', 'probe_succeeded', 5, 'twilio')`);
  await page.waitForFunction(() => document.querySelector('#breaker')?.dataset.state === 'closed', null,
    { timeout: LIVE_WITHIN_MS });
  assert.equal(await state(), 'closed');
  assert.equal(await page.locator('#breaker').textContent(), 'providers ok', 'and closed again when the probe succeeds');
  await go(page, '#/phones', 'main[data-page="phones"] h1');
  await go(page, '#/analytics', 'main[data-page="analytics"] section.analytics[data-chart="providers"] table.transitions');
  const reasons = await page.locator('table.transitions tbody tr td:nth-child(4)').allTextContents();
  assert.deepEqual(reasons.slice(0, 3), ['probe_succeeded', 'cooldown_over', 'failures'], 'newest transitions first');
  console.log('breaker: the badge followed open, half_open and closed live; the transitions are listed');
}

async function batchCases(page, ids) {
  const response = await fetch(`${env.WORKER_URL}/api/v1/batches`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: `dashboard ${RUN}`, targets: [
      { phone: phones.human[2], name: `Bo Batch ${RUN}`, clinic_timezone: TIMEZONE, max_attempts: 1 },
      { phone: phones.failed[0], name: `Cy Batch ${RUN}`, clinic_timezone: TIMEZONE, max_attempts: 1 },
    ] }),
  });
  const batch = await response.json();
  assert.equal(response.status, 202, JSON.stringify(batch));
  ids.batch = batch.batchId;
  await go(page, '#/batches', `table.batches tr[data-id="${ids.batch}"]`);
  await page.click(`table.batches tr[data-id="${ids.batch}"] a`);
  await page.waitForSelector('#batch-status');
  // Live: the batch ends while the page is open.
  await page.waitForFunction(() => document.getElementById('batch-status')?.textContent === 'completed', null,
    { timeout: 90_000 });
  ids.batchRows = (await rest('GET', `pending_calls?batch_id=eq.${ids.batch}&select=id`)).map((r) => r.id);
  assert.equal(ids.batchRows.length, 2);
  await screenshot(page, 'batch');

  // Its results as CSV, one line per row.
  const results = await downloadCsv(page, '#export-results');
  assert.deepEqual(results.map((r) => r.id).sort(), [...ids.batchRows].sort());

  // Retry its failed row from the page: audited, and the row is dialled again (and fails again, as its number does).
  await page.click('button.action[data-action="retry-failed"]');
  await page.click('button[data-confirm="retry-failed"]');
  await page.waitForFunction(() => document.querySelector('.confirmed-action[data-for="retry-failed"] .action-output')
    ?.textContent === 'Requeued: 1 call.');
  const audit = await rest('GET', `operator_actions?target_ids=cs.{${ids.batch}}`);
  assert.deepEqual(audit.map((a) => a.action), ['retry_failed']);
  await eventually('the batch ended again', async () =>
    (await rest('GET', `batches?id=eq.${ids.batch}&select=completed_at`))[0].completed_at, 90_000);
  await go(page, '#/batches', `table.batches tr[data-id="${ids.batch}"]`);
  await screenshot(page, 'batches');
}

// Pause and resume a batch from its page (scheduled a year ahead: nothing is dialled either way): the page shows it
// paused, live, and the audit names the operator; resume clears it.
async function pauseCases(page, emails, ids) {
  const notBefore = new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString();
  const response = await fetch(`${env.WORKER_URL}/api/v1/batches`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: `paused ${RUN}`, schedule: { notBefore }, maxConcurrency: 2, targets: [
      { phone: phones.human[1], name: `Di Paused ${RUN}`, clinic_timezone: TIMEZONE }] }),
  });
  const { batchId } = await response.json();
  assert.equal(response.status, 202);
  [{ id: ids.pausedRow }] = await rest('GET', `pending_calls?batch_id=eq.${batchId}&select=id`);
  await go(page, `#/batches/${batchId}`, '#batch-status');
  assert.equal(await page.locator('#batch-paused').count(), 0, 'not paused at first');
  for (const [action, text] of [['pause', 'Paused: nothing new is dialled; live calls finish.'], ['resume', 'Resumed.']]) {
    await page.click(`button.action[data-action="${action}-batch"]`);
    await page.click(`button[data-confirm="${action}-batch"]`);
    await page.waitForFunction(([a, t]) =>
      document.querySelector(`.confirmed-action[data-for="${a}-batch"] .action-output`)?.textContent === t,
    [action, text]);
    // Live: the page follows public.batches.
    await page.waitForFunction((paused) => !!document.getElementById('batch-paused') === paused, action === 'pause');
    if (action === 'pause') await screenshot(page, 'batch-paused');
  }
  const audit = await rest('GET', `operator_actions?target_ids=cs.{${batchId}}&order=at`);
  assert.deepEqual(audit.map((a) => [a.action, a.actor, a.email]).sort(),
    [['pause', 'operator', emails.operator], ['resume', 'operator', emails.operator]]);
  await fetch(`${env.WORKER_URL}/api/v1/batches/${batchId}/cancel`,
    { method: 'POST', headers: { Authorization: `Bearer ${env.API_KEY}` } });
}

// The live call's phone was learned (every first call to a phone is a learning call): invalidate it from the page.
async function phoneCases(page) {
  const [learned] = await rest('GET',
    `call_classifications?phone_number=eq.${encodeURIComponent(phones.human[0])}&is_active=is.true`);
  await go(page, '#/phones', 'div.classifications');
  if (!learned) {
    console.log(`no active classification of ${phones.human[0]}: invalidation not exercised`);
    await screenshot(page, 'phones');
    return;
  }
  const item = `details.classification[data-id="${learned.id}"]`;
  await page.click(`${item} > summary`);
  await page.waitForSelector(`${item} table.runs, ${item} .classification-actions`);
  await screenshot(page, 'phones');
  await page.fill(`${item} input[name="reason"]`, 'menu changed (dashboard test)');
  await page.click(`${item} button.action[data-action="invalidate"]`);
  await page.click(`${item} button[data-confirm="invalidate"]`);
  await eventually('the classification invalidated', async () =>
    !(await rest('GET', `call_classifications?id=eq.${learned.id}`))[0].is_active, 5000);
  const audit = await rest('GET', `operator_actions?target_ids=cs.{${learned.id}}`);
  assert.deepEqual(audit.map((a) => a.action), ['invalidate']);
  assert.equal(audit[0].detail.note, 'menu changed (dashboard test)');
}

// The do-not-call page: the operator adds a phone (its parked row ends suppressed), sees it listed, removes it;
// both changes are audited and shown on the page; a bad phone is refused with nothing written.
async function doNotCallCases(page, emails, ids) {
  const phone = phones.dnc[0];
  const parked = await insertCall({ phone, employee_name: `Dee Listed ${RUN}`,
    next_attempt_at: new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString() });
  ids.dncRow = parked;
  await go(page, '#/do-not-call', 'main[data-page="do-not-call"] table.suppressions');
  const row = `table.suppressions tr[data-phone="${phone}"]`;
  assert.equal(await page.locator(row).count(), 0, 'not listed at first');
  await page.fill('form.suppression-add input[name="phone"]', '555-not-a-phone');
  await page.click('form.suppression-add button[data-action="add"]');
  await page.waitForSelector('form.suppression-add .action-output .error');
  await page.fill('form.suppression-add input[name="phone"]', phone);
  await page.fill('form.suppression-add input[name="reason"]', 'asked not to be called (dashboard test)');
  await page.selectOption('form.suppression-add select[name="source"]', 'clinic');
  await page.click('form.suppression-add button[data-action="add"]');
  await page.waitForSelector(row);
  assert.deepEqual(await page.locator(`${row} td`).allTextContents().then((t) => t.slice(1, 5)),
    [phone, 'clinic', 'asked not to be called (dashboard test)', emails.operator]);
  assert.equal((await callRow(parked)).call_status, 'suppressed', 'its waiting row ended suppressed');
  await screenshot(page, 'do-not-call');
  await page.click(`${row} button.action[data-action="remove"]`);
  await page.click(`${row} button[data-confirm="remove"]`);
  await page.waitForSelector(row, { state: 'detached' });
  assert.deepEqual(await rest('GET', `suppression_list?phone=eq.${encodeURIComponent(phone)}`), []);
  // Audited, one row per change (the bad phone wrote none), and the page shows both.
  const audit = await rest('GET', 'operator_actions?target_kind=eq.suppression&order=at');
  const mine = audit.filter((a) => a.detail.phone === phone);
  assert.deepEqual(mine.map((a) => [a.action, a.email]), [['add', emails.operator], ['remove', emails.operator]]);
  assert.equal(audit.filter((a) => a.detail.phone === '555-not-a-phone').length, 0);
  await page.waitForFunction((p) => {
    const shown = [...document.querySelectorAll('.suppression-audit tr')].map((tr) => tr.textContent);
    return shown.some((t) => t.includes(`${p}: added`)) && shown.some((t) => t.includes(`${p}: removed`));
  }, phone);
}

async function viewerCases(browser, emails, ids) {
  const page = await newPage(browser, 'viewer');
  await signIn(page, emails.viewer);
  await page.waitForSelector(`table.calls tr[data-id="${ids.live}"]`);
  assert.equal(await page.locator('button.action').count(), 0, 'a viewer sees no action button');
  assert.equal(await page.locator('input.select').count(), 0, 'a viewer selects nothing');
  await screenshot(page, 'calls-viewer');
  await go(page, `#/calls/${ids.live}`, '#transcript');
  assert.equal(await page.locator('button.action').count(), 0, 'no action on a call page either');
  await go(page, `#/batches/${ids.batch}`, '#batch-status');
  assert.equal(await page.locator('button.action').count(), 0, 'no action on a batch page either');

  // The action API refuses the viewer's own token.
  const token = await accessToken(page);
  assert.equal(await postAction(page, token, '/api/v1/operator/calls/cancel', { ids: [ids.live] }), 403);
  assert.equal(await postAction(page, token, `/api/v1/operator/batches/${ids.batch}/cancel`, {}), 403);
  await go(page, '#/do-not-call', 'main[data-page="do-not-call"] table.suppressions');
  assert.equal(await page.locator('form.suppression-add, button.action').count(), 0, 'a viewer reads the list only');
  assert.equal(await postAction(page, token, '/api/v1/operator/suppressions/add', { phone: phones.dnc[0] }), 403);
  await page.context().close();
}

async function outsiderCases(browser, emails, ids) {
  const page = await newPage(browser, 'non-operator');
  await signIn(page, emails.outsider);
  await page.waitForSelector('main[data-page="denied"]');
  assert.equal(await page.locator('table.calls').count(), 0, 'a non-operator sees no call');
  assert.equal(await page.locator('button.action').count(), 0, 'a non-operator sees no action');
  assert.ok(await page.locator('#nav').isHidden(), 'nor the pages');
  await screenshot(page, 'denied');
  // Their token reads no row through PostgREST either (RLS), and acts on none.
  const token = await accessToken(page);
  const seen = await page.evaluate(async ([url, t]) => {
    const config = await (await fetch('/api/v1/dashboard/config')).json();
    const response = await fetch(`${url}/rest/v1/pending_calls?select=id&limit=5`, {
      headers: { apikey: config.supabaseAnonKey, Authorization: `Bearer ${t}` } });
    return response.json();
  }, [env.SUPABASE_URL, token]);
  assert.deepEqual(seen, []);
  assert.equal(await postAction(page, token, '/api/v1/operator/calls/cancel', { ids: [ids.live] }), 403);
  await page.context().close();
}

// ------------------------------------------------------------------------------------------------- main

mkdirSync(SCREENSHOTS, { recursive: true });
for (const name of readdirSync(SCREENSHOTS)) if (name.startsWith('failed-')) rmSync(join(SCREENSHOTS, name));
const emails = { operator: `operator-${RUN}@example.test`, viewer: `viewer-${RUN}@example.test`,
  outsider: `outsider-${RUN}@example.test` };
addUsers(emails);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const ids = { batchRows: [] };
try {
  await operatorCases(browser, emails, ids);
  await viewerCases(browser, emails, ids);
  await outsiderCases(browser, emails, ids);
  const csp = problems.filter((p) => /Content.Security.Policy/i.test(p));
  assert.deepEqual(csp, [], 'the pages keep to their Content-Security-Policy');
  const pages = ['signin', 'calls', 'call', 'batch', 'batches', 'phones', 'do-not-call', 'analytics', 'breaker-open',
    'calls-viewer', 'denied'];
  console.log(`screenshots: ${pages.map((n) => `.dev/screenshots/${n}.png`).join(' ')}`);
} catch (error) {
  if (problems.length) console.error(`browser console:\n  ${problems.join('\n  ')}`);
  for (const [label, page] of openPages) {
    await screenshot(page, `failed-${label}`).catch(() => {});
    console.error(`the ${label}'s page when it failed: .dev/screenshots/failed-${label}.png (${page.url()})`);
  }
  throw error;
} finally {
  await browser.close();
}
