// The Leptos example (web/leptos) in a real browser: Debian's Chromium driven by playwright-core
// against the app built by scripts/build-leptos (SSR server + hydrate wasm). The page renders a
// run's status on the server (checked in the HTML before any script runs), then after
// hydration starts a run, shows its steps as they happen (over the run's server-sent events),
// shows the approval gate with its editable data, sends the edited data (a schema refusal is
// shown first), and `on_complete` writes the result into the page. A second page opened on the
// suspended run (server-rendered) follows the same run live to its end.
//
// Skips (with the reason) when /usr/bin/chromium or the built app is missing (scripts/test runs
// scripts/build-leptos first). Screenshots only with MIYABI_WEB_SCREENSHOTS=<dir>
// (docs/screenshots holds leptos-gate.png and leptos-done.png).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHROMIUM = process.env.MIYABI_CHROMIUM || '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVER = join(ROOT, 'target/leptos/debug/miyabi-leptos-app');
const SITE = join(ROOT, 'target/leptos/site');
const WASM = join(SITE, 'pkg/miyabi_leptos_app_bg.wasm');

/** Cleanups run last-registered first, after the test. */
function cleanups(t) {
  const stack = [];
  t.after(async () => {
    while (stack.length) await stack.pop()();
  });
  return (fn) => stack.push(fn);
}

/** Starts the app's server on a free loopback port with a fresh SQLite file; resolves with its URL. */
function startServer(dir, defer, env = {}) {
  const child = spawn(SERVER, [], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      MIYABI_DB: join(dir, 'runs.db'),
      MIYABI_ADDR: '127.0.0.1:0',
      LEPTOS_SITE_ROOT: SITE,
      ...env,
    },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  defer(async () => {
    child.stdin.end(); // closing stdin stops it
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  });
  return new Promise((res, rej) => {
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) res(JSON.parse(line).url);
    });
    exited.then(({ code, signal }) => rej(new Error(`the Leptos app exited (${code ?? signal}); stderr:\n${err}`)));
  });
}

/** Why the browser tests cannot run here, if they cannot. */
function missing() {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is missing (apt-get install chromium): the Leptos browser test did not run`;
  if (!existsSync(SERVER) || !existsSync(WASM)) {
    return 'the Leptos app is not built (run scripts/build-leptos; scripts/test does): the Leptos browser test did not run';
  }
  return undefined;
}

/** Chromium with a fresh profile; every page error and console error is collected. */
async function launch(defer) {
  const { chromium } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'miyabi-chromium-'));
  defer(() => rmSync(profile, { recursive: true, force: true, maxRetries: 5 }));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 900 },
    colorScheme: 'light',
  });
  defer(() => browser.close());
  browser.setDefaultTimeout(0);
  const problems = [];
  const watch = (page) => {
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 422/.test(m.text())) problems.push(`console: ${m.text()} (${m.location().url})`);
    });
    return page;
  };
  return { browser, problems, watch };
}

// No time limits: every wait is for something the page shows, however long the machine takes.
test('leptos: server-rendered run, live steps, edited approval, on_complete', async (t) => {
  const why = missing();
  if (why !== undefined) {
    t.skip(why);
    return;
  }
  const defer = cleanups(t);
  const dir = mkdtempSync(join(tmpdir(), 'miyabi-leptos-'));
  defer(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
  const url = await startServer(dir, defer);
  const shots = process.env.MIYABI_WEB_SCREENSHOTS ? resolve(process.env.MIYABI_WEB_SCREENSHOTS) : undefined;

  // Before any script: the page without a run is server-rendered with the start form.
  const first = await (await fetch(`${url}/`)).text();
  assert.match(first, /<section data-workflow="publish"/);
  assert.match(first, /Start a run/);
  assert.match(first, /No run yet\./);
  assert.match(first, /miyabi_leptos_app\.js/);
  // A run id that does not exist renders as no run, not an error page.
  const none = await fetch(`${url}/?run=0190a0b0-0000-7000-8000-000000000000`);
  assert.equal(none.status, 200);
  assert.match(await none.text(), /No run yet\./);
  // The API is mounted next to the page, behind authentication: no session cookie, no token.
  assert.equal((await fetch(`${url}/miyabi/api/runs`)).status, 401);

  const { browser, problems, watch } = await launch(defer);
  const page = browser.pages()[0] ?? (await browser.newPage());
  watch(page);
  await page.goto(`${url}/`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  await page.evaluate(() => {
    window.stillTheSamePage = true;
    // Every step status the page shows, in order, as it changes (to see the steps appear live).
    window.seen = [];
    const record = () => {
      for (const li of document.querySelectorAll('.miyabi-step')) {
        const s = `${li.dataset.path}:${li.dataset.status}`;
        if (!window.seen.includes(s)) window.seen.push(s);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
  });

  // Start a run with the input typed into the form.
  await page.getByLabel('Input').fill(JSON.stringify({ topic: 'Leptos' }));
  await page.getByRole('button', { name: 'Start a run' }).click();
  await page.locator('.miyabi-step[data-path="draft"][data-status="succeeded"]').waitFor();
  const gate = page.locator('.miyabi-gate[data-gate="review"]');
  await gate.waitFor();
  await page.locator('.miyabi-run[data-status="suspended"]').waitFor();
  assert.equal(await gate.locator('.miyabi-gate-title').textContent(), 'Review the draft');
  assert.match(await gate.locator('.miyabi-gate-summary').textContent(), /Notes on Leptos/);
  const runId = (await page.locator('.miyabi-run-id').textContent()).trim();
  assert.match(runId, /^[0-9a-f-]{36}$/);
  // on_start put the run into the URL without a reload.
  assert.equal(new URL(page.url()).searchParams.get('run'), runId);
  assert.equal(await page.evaluate(() => window.stillTheSamePage), true);
  const seen = await page.evaluate(() => window.seen);
  assert.ok(seen.includes('draft:succeeded') && seen.includes('review:suspended'), `steps seen: ${seen}`);
  assert.ok(seen.indexOf('draft:succeeded') < seen.indexOf('review:suspended'), `steps seen: ${seen}`);

  // The suspended run is rendered on the server: status, steps, the gate and its data.
  const html = await (await fetch(`${url}/?run=${runId}`)).text();
  assert.match(html, /data-status="suspended" class="miyabi-run"/);
  assert.match(html, /data-path="draft" data-status="succeeded" class="miyabi-step"/);
  assert.match(html, /data-gate="review"/);
  assert.match(html, /Review the draft/);
  assert.match(html, /Notes on Leptos/);

  // A second page on the suspended run: server-rendered, then it follows the run live.
  const second = await browser.newPage();
  watch(second);
  await second.goto(`${url}/?run=${runId}`);
  await second.locator('body[data-hydrated="true"]').waitFor();
  await second.locator('.miyabi-gate[data-gate="review"]').waitFor();

  // The edited data must satisfy the gate's schema: an empty title is refused, and said so.
  const data = gate.getByLabel('Data');
  const draft = JSON.parse(await data.inputValue());
  assert.deepEqual(draft, { title: 'Notes on Leptos', body: 'A short post about Leptos.' });
  await data.fill(JSON.stringify({ ...draft, title: '' }));
  await gate.getByRole('button', { name: 'Approve' }).click();
  const refusal = page.locator('.miyabi-error[role="alert"]').first();
  await refusal.filter({ hasText: /title/ }).waitFor();
  assert.equal(await page.locator('.miyabi-run[data-status="suspended"]').count(), 1);

  // Edit (which clears the refusal) and approve.
  await data.fill(JSON.stringify({ ...draft, title: 'Leptos, edited by the test' }, null, 2));
  await page.locator('section.miyabi-workflow > p.miyabi-error[hidden]').waitFor({ state: 'attached' });
  await gate.getByLabel('Comment').fill('ship it');
  if (shots !== undefined) await page.screenshot({ path: join(shots, 'leptos-gate.png'), fullPage: true });
  await gate.getByRole('button', { name: 'Approve' }).click();

  // The run continues live: the gate goes, publish runs, on_complete fires with the output.
  const completed = page.locator('#completed', { hasText: 'on_complete: succeeded' });
  await completed.waitFor();
  const text = await completed.textContent();
  assert.match(text, /"published":true/);
  assert.match(text, /"title":"Leptos, edited by the test"/);
  assert.match(text, /"by":\["editor"\]/);
  await page.locator('.miyabi-step[data-path="publish"][data-status="succeeded"]').waitFor();
  assert.equal(await gate.count(), 0);
  await page.locator('.miyabi-run[data-status="succeeded"] .miyabi-output').waitFor();
  assert.equal(await page.evaluate(() => window.stillTheSamePage), true);
  if (shots !== undefined) await page.screenshot({ path: join(shots, 'leptos-done.png'), fullPage: true });

  // The second page saw the same end live (its on_complete fired too).
  await second.locator('#completed', { hasText: 'Leptos, edited by the test' }).waitFor();
  await second.locator('.miyabi-step[data-path="publish"][data-status="succeeded"]').waitFor();

  // And the finished run renders on the server with its output.
  const done = await (await fetch(`${url}/?run=${runId}`)).text();
  assert.match(done, /data-status="succeeded" class="miyabi-run"/);
  assert.match(done, /data-path="publish" data-status="succeeded" class="miyabi-step"/);
  assert.match(done, /Leptos, edited by the test/);
  assert.doesNotMatch(done, /data-gate="review"/);

  assert.deepEqual(problems, []);
});

/**
 * A loopback server speaking OpenAI Chat Completions with a streamed answer: the first two
 * deltas at once, the rest only when `release()` is called (so the test sees the answer arrive
 * in parts). Requests are kept in `requests`.
 */
async function streamingModel(defer) {
  const { createServer } = await import('node:http');
  const requests = [];
  let release;
  const released = new Promise((res) => (release = res));
  const chunk = (delta, finish = null) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model: 'llama-3.1-8b-instant', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const server = createServer(async (req, res) => {
    let text = '';
    for await (const c of req) text += c;
    requests.push({ url: req.url, headers: req.headers, body: JSON.parse(text) });
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(chunk({ role: 'assistant', content: 'Durable runs ' }));
    res.write(chunk({ content: 'survive restarts' }));
    await released;
    res.write(chunk({ content: ', and Leptos renders them.' }));
    res.write(chunk({}, 'stop'));
    res.end('data: [DONE]\n\n');
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  defer(() => new Promise((res) => server.close(res)));
  return { url: `http://127.0.0.1:${server.address().port}/v1`, requests, release };
}

test('leptos: <MiyabiChat> streams the agent answer (UI message stream) into the page', async (t) => {
  const why = missing();
  if (why !== undefined) {
    t.skip(why);
    return;
  }
  const defer = cleanups(t);
  const dir = mkdtempSync(join(tmpdir(), 'miyabi-leptos-'));
  defer(() => rmSync(dir, { recursive: true, force: true, maxRetries: 5 }));
  const model = await streamingModel(defer);
  const url = await startServer(dir, defer, {
    // Groq's API is OpenAI Chat Completions: the mock stands in for it.
    MIYABI_CHAT_MODEL: 'groq/llama-3.1-8b-instant',
    GROQ_BASE_URL: model.url,
    GROQ_API_KEY: 'gsk-test-leptos-chat',
  });
  // The agent route is the app's: without its session cookie, nothing reaches the model.
  const refused = await fetch(`${url}/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages":[]}' });
  assert.equal(refused.status, 401);
  assert.equal(model.requests.length, 0);

  const { browser, problems, watch } = await launch(defer);
  const page = watch(browser.pages()[0] ?? (await browser.newPage()));
  await page.goto(`${url}/`);
  await page.locator('body[data-hydrated="true"]').waitFor();
  await page.getByLabel('Message').fill('Why durable workflows?');
  await page.getByRole('button', { name: 'Send' }).click();
  const user = page.locator('.miyabi-message[data-role="user"]');
  await user.filter({ hasText: 'Why durable workflows?' }).waitFor();
  const answer = page.locator('.miyabi-message[data-role="assistant"]');
  // The first part is on the page while the model still holds the rest back.
  await answer.filter({ hasText: 'Durable runs survive restarts' }).waitFor();
  assert.doesNotMatch(await answer.textContent(), /Leptos renders/);
  assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
  model.release();
  await answer.filter({ hasText: 'Durable runs survive restarts, and Leptos renders them.' }).waitFor();
  await page.locator('.miyabi-chat-form button:not([disabled])').waitFor();

  // What the model was asked: the agent's instructions and the user's message, with the key.
  assert.equal(model.requests.length, 1);
  const sent = model.requests[0];
  assert.equal(sent.headers.authorization, 'Bearer gsk-test-leptos-chat');
  assert.equal(sent.body.stream, true);
  const roles = sent.body.messages.map((m) => m.role);
  assert.deepEqual(roles, ['system', 'user']);
  assert.match(JSON.stringify(sent.body.messages[1]), /Why durable workflows\?/);

  // The route's answer is the UI message stream: check the chunks directly too.
  const cookie = (await fetch(`${url}/`)).headers.get('set-cookie').split(';')[0];
  const direct = await fetch(`${url}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', cookie },
    body: JSON.stringify({ messages: [{ role: 'user', text: 'again' }] }),
  });
  assert.equal(direct.headers.get('content-type'), 'text/event-stream');
  assert.equal(direct.headers.get('x-vercel-ai-ui-message-stream'), 'v1');
  const events = (await direct.text()).split('\n\n').filter(Boolean).map((e) => e.replace(/^data: /, ''));
  assert.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.deepEqual(
    chunks.map((c) => c.type),
    ['start', 'start-step', 'text-start', 'text-delta', 'text-delta', 'text-delta', 'text-end', 'finish-step', 'finish'],
  );
  assert.equal(chunks.filter((c) => c.type === 'text-delta').map((c) => c.delta).join(''), 'Durable runs survive restarts, and Leptos renders them.');
  assert.equal(chunks.at(-1).finishReason, 'stop');

  assert.deepEqual(problems, []);
});
