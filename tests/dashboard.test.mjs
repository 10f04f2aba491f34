// The dashboard in a real browser: Debian's Chromium driven by playwright-core (which never
// downloads a browser of its own) against core/examples/dashboard_e2e.rs. Sign in with the
// token, open the approval inbox and the gate, hit the schema with bad data (422 shown at its
// field), edit the data and approve with a comment, then check that the run finished with the
// EDITED data and that the run's graph shows `deploy` as succeeded.
//
// Skips (with the reason) when /usr/bin/chromium or cargo is missing; .ci/run installs
// chromium. The example binary is built with the same flags as scripts/test's `cargo test`
// (so it is already built there), or taken from MIYABI_DASHBOARD_E2E_BIN.
//
// Screenshots go to a temporary directory; set MIYABI_DASHBOARD_SCREENSHOTS=docs/screenshots
// to refresh the ones in the docs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = process.env.MIYABI_CHROMIUM || '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

function hasCargo() {
  return spawnSync('cargo', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** The example's executable: built (or found up to date) by cargo, which prints its path. */
function exampleBinary() {
  if (process.env.MIYABI_DASHBOARD_E2E_BIN) return process.env.MIYABI_DASHBOARD_E2E_BIN;
  const r = spawnSync(
    'cargo',
    ['build', '--workspace', '--all-features', '--example', 'dashboard_e2e', '--message-format=json-render-diagnostics'],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, 'cargo build --example dashboard_e2e failed');
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const m = JSON.parse(line);
    if (m.reason === 'compiler-artifact' && m.target?.name === 'dashboard_e2e' && m.executable) return m.executable;
  }
  throw new Error('cargo did not report the dashboard_e2e executable');
}

/** Cleanups run last-registered first, after the test (node:test runs `after` hooks in
 * registration order: the browser must close before its profile is removed). */
function cleanups(t) {
  const stack = [];
  t.after(async () => {
    while (stack.length) await stack.pop()();
  });
  return (fn) => stack.push(fn);
}

/** Starts the example; resolves with its first JSON line and a way to await later lines. */
function startExample(bin, defer) {
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters = [];
  const lines = [];
  child.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, i).trim();
      out = out.slice(i + 1);
      if (!line.startsWith('{')) continue;
      const v = JSON.parse(line);
      lines.push(v);
      for (const w of [...waiters]) if (w.pred(v)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(v);
      }
    }
  });
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  const line = (pred) =>
    new Promise((res, rej) => {
      const found = lines.find(pred);
      if (found) return res(found);
      waiters.push({ pred, resolve: res });
      exited.then(({ code, signal }) => rej(new Error(`dashboard_e2e exited (${code ?? signal}) early; stderr:\n${err}`)));
    });
  defer(async () => {
    // Closing stdin asks it to stop; kill only if it does not.
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  return { line, stderr: () => err };
}

// No time limits: every wait below is for something the page shows, however long the machine
// takes (playwright's own default of 30 s per wait is turned off too).
test('dashboard: sign in, edit and approve a gate, run finishes with the edited data', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing (apt-get install chromium): the dashboard browser test did not run`);
    return;
  }
  if (!process.env.MIYABI_DASHBOARD_E2E_BIN && !hasCargo()) {
    t.skip('cargo is missing and MIYABI_DASHBOARD_E2E_BIN is unset: the dashboard browser test did not run');
    return;
  }
  const { chromium } = await import('playwright-core');
  const defer = cleanups(t);
  const bin = exampleBinary();
  const ex = startExample(bin, defer);
  const info = await ex.line((v) => v.url && v.token && v.run);

  const shots = process.env.MIYABI_DASHBOARD_SCREENSHOTS
    ? resolve(ROOT, process.env.MIYABI_DASHBOARD_SCREENSHOTS)
    : mkdtempSync(join(tmpdir(), 'miyabi-shots-'));
  mkdirSync(shots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'miyabi-chromium-'));
  defer(() => rmSync(profile, { recursive: true, force: true, maxRetries: 5 }));
  if (!process.env.MIYABI_DASHBOARD_SCREENSHOTS) defer(() => rmSync(shots, { recursive: true, force: true }));

  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  defer(() => browser.close());
  browser.setDefaultTimeout(0);
  const page = browser.pages()[0] ?? (await browser.newPage());
  // Every script error and every Content-Security-Policy refusal fails the test.
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 422|status of 409/.test(m.text())) problems.push(`console: ${m.text()}`);
  });

  // A screenshot of the page's content (at most `max` pixels high), without the toast.
  const shot = async (name, max = 1000) => {
    await page.locator('#toast.show').waitFor({ state: 'detached', timeout: 10000 }).catch(() => {});
    await page.evaluate(() => window.scrollTo(0, 0));
    const bottom = await page.evaluate(() => Math.ceil(document.querySelector('main').getBoundingClientRect().bottom));
    await page.setViewportSize({ width: 1280, height: Math.min(max, Math.max(400, bottom + 8)) });
    await page.screenshot({ path: join(shots, name), animations: 'disabled' });
    await page.setViewportSize({ width: 1280, height: 800 });
  };

  // Sign in.
  await page.goto(`${info.url}/`);
  await page.getByLabel('API token').fill(info.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who', { hasText: 'alice' }).waitFor();

  // The runs list, with the run waiting at the gate.
  const runLink = page.locator(`table.runs a[href="#/runs/${info.run}"]`);
  await runLink.waitFor();
  await page.locator(`tr[data-run="${info.run}"] .pill`, { hasText: 'suspended' }).waitFor();
  await page.locator('#live.on').waitFor();
  await shot('runs.png');

  // Live: a run started elsewhere appears on the open first page, without a reload.
  const api = async (method, path, body) => {
    const r = await fetch(`${info.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${info.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(r.ok, `${method} ${path}: ${r.status}`);
    return r.json();
  };
  await page.evaluate(() => {
    window.stillTheSamePage = true;
  });
  const started = await api('POST', '/api/workflows/report/runs', { input: { day: '2025-06-04' } });
  await page.locator(`tr[data-run="${started.id}"] .pill`, { hasText: 'succeeded' }).waitFor();
  assert.equal(await page.evaluate(() => window.stillTheSamePage), true);

  // Paging with the API's cursor: 25 more runs make two pages of succeeded runs.
  for (let i = 0; i < 25; i++) await api('POST', '/api/workflows/report/runs', { input: { day: `2025-07-${i + 1}` } });
  await page.getByRole('navigation', { name: 'Filter runs by status' }).getByRole('link', { name: 'succeeded' }).click();
  const rows = page.locator('table.runs tbody tr');
  await page.getByRole('link', { name: 'Older →' }).waitFor();
  assert.equal(await rows.count(), 25);
  await page.getByRole('link', { name: 'Older →' }).click();
  await page.getByRole('link', { name: '← Newer' }).waitFor();
  const older = await rows.count();
  assert.ok(older >= 3 && older < 25, `second page has ${older} rows`);
  assert.equal(await page.locator('table.runs tbody tr .pill', { hasText: 'succeeded' }).count(), older);
  await page.getByRole('link', { name: '← Newer' }).click();
  await page.getByRole('link', { name: 'Older →' }).waitFor();
  assert.equal(await rows.count(), 25);

  // The inbox, then the gate (the link has the notifications' form).
  await page.getByRole('link', { name: 'Approvals' }).click();
  await page.getByRole('heading', { name: 'Approval inbox' }).waitFor();
  await page.getByRole('link', { name: 'Review the generated patch' }).click();
  await page.getByRole('heading', { name: 'Review the generated patch' }).waitFor();
  assert.equal(new URL(page.url()).hash, `#/approvals/${info.run}/code-review`);
  await page.getByRole('row', { name: /webhook:.*delivered/ }).waitFor();

  const data = page.getByLabel('Data under review (JSON)');
  const original = JSON.parse(await data.inputValue());
  assert.equal(original.service, 'billing-api');

  // Data the gate's schema refuses: the 422 is shown at the field it names.
  await data.fill(JSON.stringify({ ...original, replicas: 50 }, null, 2));
  await page.getByRole('button', { name: 'Edit & approve' }).click();
  const fieldError = page.locator('#data-error');
  await fieldError.filter({ hasText: '/replicas' }).waitFor();
  assert.equal(await data.getAttribute('aria-invalid'), 'true');

  // Not JSON at all: caught before sending.
  await data.fill('{"service": ');
  await page.getByRole('button', { name: 'Edit & approve' }).click();
  await fieldError.filter({ hasText: 'Not valid JSON' }).waitFor();

  // A second tab on the same gate, without live updates (its WebSocket never reaches the
  // server), so it still offers the decision after the first tab decided: its click gets 409.
  const stale = await browser.newPage();
  stale.on('pageerror', (e) => problems.push(`page error (second tab): ${e.message}`));
  await stale.routeWebSocket(/\/api\/ws/, () => {});
  await stale.goto(page.url());
  // The token lives in the tab's sessionStorage: a new tab signs in again, then shows the page.
  await stale.getByLabel('API token').fill(info.token);
  await stale.getByRole('button', { name: 'Sign in' }).click();
  await stale.getByRole('button', { name: 'Approve', exact: true }).waitFor();

  // The edit that goes through.
  const edited = { ...original, version: '1.4.1', replicas: 3 };
  await data.fill(JSON.stringify(edited, null, 2));
  await page.getByLabel('Comment (optional)').fill('Bumped the patch version; 3 replicas for the rollout.');
  await shot('approval.png', 1100);
  await page.getByRole('button', { name: 'Edit & approve' }).click();
  await page.locator('#gate-status .pill', { hasText: 'approved' }).waitFor();
  await page.getByRole('row', { name: /alice.*approved.*yes/ }).first().waitFor();
  await page.getByRole('row', { name: /alice.*edited-and-approved/ }).first().waitFor();

  // The stale tab: its approval conflicts, and it says who decided.
  await stale.getByRole('button', { name: 'Approve', exact: true }).click();
  await stale.locator('.conflict', { hasText: 'Already decided: approved by alice' }).waitFor();
  await stale.locator('#gate-status .pill', { hasText: 'approved' }).waitFor();
  await stale.close();

  // The process reports the run's output: the edited data.
  const finished = await ex.line((v) => 'finished' in v);
  assert.equal(finished.status, 'succeeded');
  assert.deepEqual(finished.finished, edited);

  // The run's page: its graph shows deploy as succeeded (live or on load).
  await page.getByRole('link', { name: info.run }).click();
  await page.locator('svg.graph').waitFor();
  await page.locator('svg.graph g.node[data-path="deploy"][data-status="succeeded"]').waitFor();
  for (const step of ['generate-code', 'code-review']) {
    await page.locator(`svg.graph g.node[data-path="${step}"][data-status="succeeded"]`).waitFor();
  }
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  await page.locator('.timeline li.ev-run-finished').waitFor();
  await shot('run.png', 1000);

  // The audit trail, filtered by actor.
  await page.goto(`${info.url}/#/audit?actor=alice`);
  await page.getByRole('heading', { name: 'Audit trail' }).waitFor();
  await page.getByRole('row', { name: /alice.*edited-and-approved.*3 replicas/ }).first().waitFor();

  assert.deepEqual(problems, []);
});
