// The dashboard as an operations console, in Debian's Chromium driven by playwright-core,
// against core/examples/dashboard_console.rs: the workflows page (statistics), a run started
// from the form built from the input schema (with confirmation), a rerun with edited input,
// run search, a busy run whose panel must update while the run still runs (it starved behind
// a trailing debounce before), and a viewer who sees no actions.
//
// Skips (with the reason) when /usr/bin/chromium or cargo is missing, like
// tests/dashboard.test.mjs. The example is built with scripts/test's flags, or taken from
// MIYABI_DASHBOARD_CONSOLE_BIN. Screenshots: MIYABI_DASHBOARD_SCREENSHOTS=docs/screenshots.
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

function exampleBinary() {
  if (process.env.MIYABI_DASHBOARD_CONSOLE_BIN) return process.env.MIYABI_DASHBOARD_CONSOLE_BIN;
  const r = spawnSync(
    'cargo',
    ['build', '--workspace', '--all-features', '--example', 'dashboard_console', '--message-format=json-render-diagnostics'],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, 'cargo build --example dashboard_console failed');
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const m = JSON.parse(line);
    if (m.reason === 'compiler-artifact' && m.target?.name === 'dashboard_console' && m.executable) return m.executable;
  }
  throw new Error('cargo did not report the dashboard_console executable');
}

function cleanups(t) {
  const stack = [];
  t.after(async () => {
    while (stack.length) await stack.pop()();
  });
  return (fn) => stack.push(fn);
}

/** Starts the example; resolves with its JSON line. */
function startExample(bin, defer) {
  const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  defer(async () => {
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  return new Promise((res, rej) => {
    child.stdout.on('data', (d) => {
      out += d;
      const i = out.indexOf('\n');
      if (i >= 0) res(JSON.parse(out.slice(0, i)));
    });
    exited.then(({ code, signal }) => rej(new Error(`dashboard_console exited (${code ?? signal}); stderr:\n${err}`)));
  });
}

// No time limits: every wait is for something the page shows.
test('dashboard console: workflows, start form, rerun, search, a busy run that never goes stale, a viewer', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing (apt-get install chromium): the console browser test did not run`);
    return;
  }
  if (!process.env.MIYABI_DASHBOARD_CONSOLE_BIN && !hasCargo()) {
    t.skip('cargo is missing and MIYABI_DASHBOARD_CONSOLE_BIN is unset: the console browser test did not run');
    return;
  }
  const { chromium } = await import('playwright-core');
  const defer = cleanups(t);
  const info = await startExample(exampleBinary(), defer);

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
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
  });
  defer(() => browser.close());
  browser.setDefaultTimeout(0);
  const page = browser.pages()[0] ?? (await browser.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  // Every confirmation is accepted (and counted).
  const confirmations = [];
  page.on('dialog', (d) => {
    confirmations.push(d.message());
    d.accept();
  });
  const shot = async (name) => {
    await page.locator('#toast.show').waitFor({ state: 'detached', timeout: 10000 }).catch(() => {});
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, name), animations: 'disabled', fullPage: true });
  };
  const api = async (method, path, body, token = info.token) => {
    const r = await fetch(`${info.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(r.ok, `${method} ${path}: ${r.status}`);
    return r.json();
  };

  await page.goto(`${info.url}/`);
  await page.getByLabel('API token').fill(info.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who', { hasText: 'alice' }).waitFor();

  // The workflows page: report has 2 of 3 finished runs succeeded.
  await page.getByRole('link', { name: 'Workflows' }).click();
  await page.getByRole('heading', { name: 'Workflows' }).waitFor();
  await page.locator('tr[data-workflow="report"] .success-rate', { hasText: '66.7%' }).waitFor();
  await shot('workflows.png');

  // Start a run from the form built from the input schema.
  await page.locator('tr[data-workflow="orders"] a[href="#/workflows/orders"]').click();
  await page.getByRole('heading', { name: /Workflow orders/ }).waitFor();
  await page.getByLabel('customer *').fill('ACME Widgets');
  await page.getByLabel('amount *').fill('42');
  await page.getByLabel('express').check();
  await shot('workflow.png');
  await page.getByRole('button', { name: 'Start run' }).click();
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  assert.ok(confirmations.some((m) => m.includes('Start a run of orders')), confirmations.join('\n'));
  const first = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  const firstRun = await api('GET', `/api/runs/${first}`);
  assert.deepEqual(firstRun.run.input, { customer: 'ACME Widgets', amount: 42, express: true });

  // Rerun it with an edited input.
  await page.getByRole('button', { name: 'Rerun…' }).click();
  const input = page.getByLabel('Input of the new run');
  const edited = { customer: 'ACME Widgets', amount: 7, express: false };
  await input.fill(JSON.stringify(edited));
  await page.getByRole('button', { name: 'Start a new run' }).click();
  await page.waitForFunction((id) => !location.hash.includes(id), first);
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  const second = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
  assert.notEqual(second, first);
  assert.deepEqual((await api('GET', `/api/runs/${second}`)).run.input, edited);
  const audit = await api('GET', '/api/audit?actor=alice');
  assert.ok(audit.audit.some((r) => r.action === 'run.rerun' && r.data.started === second));

  // Retry a failed run from its failed step: the step that succeeded is kept, the failed one
  // runs again, the timeline shows the retry, the audit trail who did it.
  const failedSync = (await api('GET', '/api/runs?workflow=sync&status=failed')).runs[0];
  assert.ok(failedSync, 'the example has a failed sync run');
  await page.goto(`${info.url}/#/runs/${failedSync.id}`);
  await page.locator('#run-status .pill', { hasText: 'failed' }).waitFor();
  await page.getByRole('button', { name: 'Retry failed steps' }).click();
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  assert.ok(confirmations.some((m) => m.includes(`Retry run ${failedSync.id}`)), confirmations.join('\n'));
  await page.locator('.timeline li', { hasText: 'run-retried' }).first().waitFor();
  const retried = await api('GET', `/api/runs/${failedSync.id}`);
  assert.deepEqual(retried.run.output, { uploaded: 3 });
  assert.equal(await page.getByRole('button', { name: 'Retry failed steps' }).count(), 0);
  await shot('run-retried.png');
  const audit2 = await api('GET', '/api/audit?actor=alice');
  assert.ok(audit2.audit.some((r) => r.action === 'run.retry' && r.run_id === failedSync.id && r.data.outcome === 'ok'));

  // Search by text in the input: both orders runs, no report run.
  await page.getByRole('link', { name: 'Runs', exact: true }).first().click();
  await page.getByRole('searchbox', { name: 'Search' }).fill('acme');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator(`tr[data-run="${second}"]`).waitFor();
  await page.locator(`tr[data-run="${first}"]`).waitFor();
  assert.equal(await page.locator('table.runs tbody tr').count(), 2);

  // A busy run: an event about every 20 ms for 6 s. Its steps panel must show finished
  // items while the run is still running (a trailing debounce longer than the gap between
  // events never fired until the run ended).
  const items = Array.from({ length: 60 }, (_, i) => i);
  const busy = await api('POST', '/api/workflows/busy/runs', { input: items });
  await page.goto(`${info.url}/#/runs/${busy.id}`);
  await page.locator('#run-status .pill', { hasText: 'running' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('details.step .pill.st-succeeded').length >= 5);
  const now = await api('GET', `/api/runs/${busy.id}`);
  assert.equal(now.run.status, 'running', 'the panel updated only once the run had finished');
  // The Gantt chart has a bar per started step; the event filters hide step events.
  await page.waitForFunction(() => document.querySelectorAll('svg.gantt g.gantt-row').length >= 5);
  await shot('run-busy.png');
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  await page.locator('svg.gantt g.gantt-row[data-path="tick[59]"].st-succeeded').waitFor();
  await page.locator('#ev-steps').uncheck();
  assert.equal(await page.locator('.timeline li[data-group="steps"]:visible').count(), 0);
  assert.ok((await page.locator('.timeline li[data-group="run"]:visible').count()) >= 2);
  await page.locator('#ev-steps').check();

  // A viewer sees the same pages without actions.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').fill(info.viewer);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who', { hasText: 'vic' }).waitFor();
  await page.goto(`${info.url}/#/runs/${second}`);
  await page.locator('#run-status .pill', { hasText: 'succeeded' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Rerun…' }).count(), 0);
  const failedReport = (await api('GET', '/api/runs?workflow=report&status=failed', undefined, info.viewer)).runs[0];
  await page.goto(`${info.url}/#/runs/${failedReport.id}`);
  await page.locator('#run-status .pill', { hasText: 'failed' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Retry failed steps' }).count(), 0);
  await page.goto(`${info.url}/#/workflows/orders`);
  await page.locator('#workflow-stats').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Start run' }).count(), 0);

  assert.deepEqual(problems, []);
});
