// The dashboard's Evals view, in Debian's Chromium driven by playwright-core, against
// core/examples/dashboard_evals.rs: three real durable eval runs of the suite `support` with
// different scores (plus a run of another suite, an unfinished eval run and a plain run).
// Checks the runs list (the means shown are the results' means), the trend chart (one point
// per run), the A/B page (the delta's sign, the verdict, the regressed case), and the compare
// endpoint's errors through HTTP (unknown run, not an eval run, another suite, not finished,
// out of the caller's scope).
//
// Skips (with the reason) when /usr/bin/chromium or cargo is missing, like the other dashboard
// tests. The example is built with scripts/test's flags, or taken from
// MIYABI_DASHBOARD_EVALS_BIN. Screenshots: MIYABI_DASHBOARD_SCREENSHOTS=docs/screenshots
// (evals-list.png, evals-ab.png).
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
  if (process.env.MIYABI_DASHBOARD_EVALS_BIN) return process.env.MIYABI_DASHBOARD_EVALS_BIN;
  const r = spawnSync(
    'cargo',
    ['build', '--workspace', '--all-features', '--example', 'dashboard_evals', '--message-format=json-render-diagnostics'],
    { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, 'cargo build --example dashboard_evals failed');
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const m = JSON.parse(line);
    if (m.reason === 'compiler-artifact' && m.target?.name === 'dashboard_evals' && m.executable) return m.executable;
  }
  throw new Error('cargo did not report the dashboard_evals executable');
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
    exited.then(({ code, signal }) => rej(new Error(`dashboard_evals exited (${code ?? signal}); stderr:\n${err}`)));
  });
}

const fmt = (x) => x.toFixed(3);

// No time limits: every wait is for something the page shows.
test('dashboard evals: runs with their means, the trend, the A/B page, the compare endpoint', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} is missing (apt-get install chromium): the evals browser test did not run`);
    return;
  }
  if (!process.env.MIYABI_DASHBOARD_EVALS_BIN && !hasCargo()) {
    t.skip('cargo is missing and MIYABI_DASHBOARD_EVALS_BIN is unset: the evals browser test did not run');
    return;
  }
  const { chromium } = await import('playwright-core');
  const defer = cleanups(t);
  const info = await startExample(exampleBinary(), defer);
  const [run1, run2, run3] = info.support;

  const call = async (path, token = info.token) => {
    const r = await fetch(`${info.url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json() };
  };

  // The API first: the three runs with their results, newest first.
  const listed = await call('/api/evals?suite=support');
  assert.equal(listed.status, 200);
  assert.deepEqual(listed.body.runs.map((r) => r.id), [run3, run2, run1]);
  const byId = new Map(listed.body.runs.map((r) => [r.id, r]));
  const mean = (run, metric) => byId.get(run).results.metrics.find((m) => m.name === metric).mean;
  // The deterministic target: c1–c3 right, then c1–c5, then c1, c2, c4, c5.
  assert.equal(fmt(mean(run1, 'exact')), '0.500');
  assert.equal(fmt(mean(run2, 'exact')), '0.833');
  assert.equal(fmt(mean(run3, 'exact')), '0.667');
  assert.equal(byId.get(run1).results.passed, false, 'the gate exact mean >= 0.6 fails on run 1');
  assert.ok(listed.body.runs.every((r) => r.results.samples === undefined), 'the list carries no samples');
  assert.deepEqual(listed.body.suites.map((s) => s.name).sort(), ['slow', 'support', 'triage']);
  // Paging with the cursor.
  const p1 = await call('/api/evals?suite=support&limit=2');
  assert.deepEqual(p1.body.runs.map((r) => r.id), [run3, run2]);
  const p2 = await call(`/api/evals?suite=support&limit=2&cursor=${encodeURIComponent(p1.body.next_cursor)}`);
  assert.deepEqual(p2.body.runs.map((r) => r.id), [run1]);
  assert.equal(p2.body.next_cursor, null);

  // The compare endpoint: run 3 against run 2, and its errors, each naming the run.
  const cmp = await call(`/api/evals/compare?a=${run2}&b=${run3}`);
  assert.equal(cmp.status, 200, JSON.stringify(cmp.body));
  assert.equal(cmp.body.schema, 'miyabi.eval.compare/v1');
  const exact = cmp.body.metrics.find((m) => m.metric === 'exact');
  assert.equal(fmt(exact.paired.mean_diff), '-0.167');
  assert.deepEqual(exact.regressed.map((r) => r.case_id), ['c3']);
  const refused = async (query, status, needle, token) => {
    const r = await call(`/api/evals/compare?${query}`, token);
    assert.equal(r.status, status, `${query}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.error.message.includes(needle), `${query}: ${r.body.error.message}`);
  };
  await refused(`a=${run2}&b=no-such-run`, 404, 'no-such-run');
  await refused(`a=${info.report}&b=${run3}`, 422, info.report);
  await refused(`a=${run2}&b=${info.triage}`, 422, info.triage);
  await refused(`a=${run2}&b=${info.slow}`, 409, info.slow);
  await refused(`a=${run2}`, 400, '`b`');
  // tess sees the suite triage only: a support run is not found for her, and not listed.
  await refused(`a=${info.triage}&b=${run3}`, 404, run3, info.scoped);
  const scopedList = await call('/api/evals', info.scoped);
  assert.deepEqual(scopedList.body.suites.map((s) => s.name), ['triage']);
  assert.deepEqual(scopedList.body.runs.map((r) => r.id), [info.triage]);

  // The browser.
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
    // The 4xx answers this test asks for on purpose are not problems of the page.
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  const shot = async (name) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(shots, name), animations: 'disabled', fullPage: true });
  };

  await page.goto(`${info.url}/`);
  await page.getByLabel('API token').fill(info.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who', { hasText: 'alice' }).waitFor();

  // The Evals page opens on the suite with the newest run (slow); pick support.
  await page.getByRole('link', { name: 'Evals' }).click();
  await page.getByRole('heading', { name: /Evals/ }).waitFor();
  await page.locator('a[data-suite="support"]').click();
  await page.getByRole('heading', { name: 'Evals support' }).waitFor();
  await page.locator(`table.evals tr[data-run="${run1}"]`).waitFor();
  assert.deepEqual(
    await page.locator('table.evals tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.run)),
    [run3, run2, run1],
    'newest first',
  );
  for (const run of [run1, run2, run3]) {
    for (const metric of ['exact', 'similarity']) {
      const shown = await page.locator(`tr[data-run="${run}"] td[data-metric="${metric}"] .mean`).textContent();
      assert.equal(shown, fmt(mean(run, metric)), `${metric} of ${run}`);
    }
    assert.equal(await page.locator(`tr[data-run="${run}"] td.cases`).textContent(), '6');
  }
  assert.equal(await page.locator(`tr[data-run="${run1}"] td.gates`).textContent(), 'failed 1/1');
  assert.equal(await page.locator(`tr[data-run="${run3}"] td.gates`).textContent(), 'passed');
  // The trend: one chart per metric, one point per run, oldest on the left, at the run's mean.
  for (const metric of ['exact', 'similarity']) {
    const points = await page
      .locator(`svg.trend[data-metric="${metric}"] circle.pt`)
      .evaluateAll((cs) => cs.map((c) => ({ run: c.dataset.run, mean: Number(c.dataset.mean), cx: Number(c.getAttribute('cx')), cy: Number(c.getAttribute('cy')) })));
    assert.deepEqual(points.map((p) => p.run), [run1, run2, run3], metric);
    assert.ok(points[0].cx < points[1].cx && points[1].cx < points[2].cx, metric);
    for (const p of points) assert.equal(p.mean, mean(p.run, metric));
    // A higher mean is drawn higher (smaller y).
    const order = (a, b) => Math.sign(b.mean - a.mean) === Math.sign(a.cy - b.cy) || a.mean === b.mean;
    assert.ok(order(points[0], points[1]) && order(points[1], points[2]), `${metric}: ${JSON.stringify(points)}`);
  }
  assert.equal(await page.locator('svg.trend[data-metric="exact"] line.ci').count(), 3, 'an interval bar per run');
  await shot('evals-list.png');

  // A/B: the newest run against the previous one, from its row.
  await page.locator(`tr[data-run="${run3}"] a.ab-link`).click();
  await page.getByRole('heading', { name: 'A/B support' }).waitFor();
  await page.locator('table.ab-metrics tr[data-metric="exact"] td.delta').waitFor();
  assert.equal(await page.locator('#ab-a').inputValue(), run2);
  assert.equal(await page.locator('#ab-b').inputValue(), run3);
  assert.equal(await page.locator('table.ab-metrics tr[data-metric="exact"] td.delta').textContent(), fmt(exact.paired.mean_diff));
  assert.ok((await page.locator('table.ab-metrics tr[data-metric="exact"] td.delta').getAttribute('class')).includes('down'));
  assert.ok((await page.locator('table.ab-metrics tr[data-metric="similarity"] td.delta').textContent()).startsWith('-'));
  assert.equal(await page.locator('table.ab-metrics tr[data-metric="exact"] td.verdict').textContent(), 'no detectable difference');
  const firstRegressed = page.locator('table.regressed tbody tr').first();
  assert.equal(await firstRegressed.getAttribute('data-case'), 'c3');
  assert.equal(await page.locator('table.regressed tbody tr[data-case]').evaluateAll((rs) => new Set(rs.map((r) => r.dataset.case)).size), 1, 'only c3 regressed');
  assert.equal(await page.locator('svg.deltas g.delta-row').count(), 2);
  await shot('evals-ab.png');

  // Swapped (run 2 against run 3): the delta turns positive and nothing regressed.
  await page.locator('#ab-a').selectOption(run3);
  await page.locator('#ab-b').selectOption(run2);
  await page.getByRole('button', { name: 'Compare' }).click();
  await page.locator('table.ab-metrics tr[data-metric="exact"] td.delta.up').waitFor();
  assert.equal(await page.locator('table.ab-metrics tr[data-metric="exact"] td.delta').textContent(), '+0.167');
  await page.getByText('No case scored lower in B.').waitFor();

  // A pair the server refuses shows its message.
  await page.goto(`${info.url}/#/evals/compare?suite=support&a=${run2}&b=${info.report}`);
  await page.locator('.error-box', { hasText: 'is not an eval run' }).waitFor();

  assert.deepEqual(problems, []);
});
