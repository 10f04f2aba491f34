// The Next.js example (examples-ts/next-app), as a user would build it: copied with the built
// package installed (tests/support/next-harness.mjs), `next build` (which type-checks it), then
// `next start` on a free loopback port, and real HTTP requests to its route handlers: the
// agent's streamed answer (model pointed at a local replay of recorded OpenAI traffic) and a
// workflow run's events as server-sent events, resumed with Last-Event-ID. Then, in Chromium
// (playwright-core driving /usr/bin/chromium; skipped with the reason when it is missing), the
// pages built on @miyabi/react and @ai-sdk/react: a workflow run followed live through its
// approval card, and a chat whose tool needs approval, with each useChat.

const CHROMIUM = process.env.MIYABI_CHROMIUM || '/usr/bin/chromium';

/**
 * The model behind the app's routes: the support agent (it offers a `refund` tool) is scripted —
 * a refund call, then an answer quoting the tool's result —, every other request replays the
 * recorded OpenAI traffic.
 */
async function modelServer(t) {
  const rec = await recordedStream();
  const sse = rec.lines.map((l) => `data: ${l}\n\n`).join('') + 'data: [DONE]\n\n';
  let calls = 0;
  const s = await openaiServer(t, (body) => {
    if ((body?.tools ?? []).some((x) => x.function.name === 'refund')) {
      const last = body.messages.at(-1);
      if (last.role === 'tool') return { sse: textStream(['Done: ', String(last.content), '.']) };
      const args = JSON.stringify({ order: 'A-17', amount: 25 });
      return {
        sse: [
          chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: `call_${++calls}`, type: 'function', function: { name: 'refund', arguments: args } }] }),
          chunk({}, 'tool_calls'),
        ],
      };
    }
    return body?.stream === true
      ? { raw: sse, headers: { 'content-type': 'text/event-stream' } }
      : { raw: rec.whole, headers: { 'content-type': 'application/json' } };
  });
  return { ...s, text: rec.text };
}
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Engine } from '@miyabi/core';
import { chunk, freePort, openaiServer, recordedStream, tempDir, textStream } from './helpers.mjs';
import { nextBin, prepareNextApp } from './support/next-harness.mjs';

/** Parses a text/event-stream body into `{ id, event, data }` (data parsed as JSON). */
function parseSse(text) {
  return text
    .split('\n\n')
    .filter((b) => b !== '' && !b.startsWith(':'))
    .map((block) => {
      const ev = {};
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        ev[line.slice(0, i)] = line.slice(i + 1).replace(/^ /, '');
      }
      return { id: Number(ev.id), event: ev.event, data: JSON.parse(ev.data) };
    });
}

test('the Next.js example: next build, next start, its route handlers over HTTP', { timeout: 480_000 }, async (t) => {
  const app = prepareNextApp(t);
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
  delete env.OPENAI_API_KEY;
  let build;
  try {
    build = execFileSync(process.execPath, [nextBin, 'build'], { cwd: app, env, stdio: 'pipe', timeout: 300_000 }).toString();
  } catch (e) {
    assert.fail(`next build failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  // Next's own type check ran (the example sets no `typescript.ignoreBuildErrors`).
  assert.match(build, /Finished TypeScript/, build);

  const db = join(tempDir(t), 'runs.db');
  const replay = await modelServer(t);
  const port = await freePort();
  const server = spawn(process.execPath, [nextBin, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: app,
    env: { ...env, MIYABI_REPLAY_BASE_URL: replay.url, MIYABI_DB: db },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  server.stdout.on('data', (d) => (log += d));
  server.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => server.on('exit', resolve));
  t.after(async () => {
    server.kill('SIGTERM');
    await exited;
  });

  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`${base}/api/chat`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, 'an empty body is refused');
      await r.text();
      break;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      if (Date.now() > deadline) assert.fail(`next start did not answer within 60 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  await t.test('POST /api/chat streams an agent answer with toTextStreamResponse()', async () => {
    const res = await fetch(`${base}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'Invent a new holiday and describe its traditions.' }),
    });
    assert.equal(res.status, 200, log);
    assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
    const decoder = new TextDecoder();
    let text = '';
    for await (const chunk of res.body) text += decoder.decode(chunk, { stream: true });
    text += decoder.decode();
    assert.equal(text, replay.text, 'the streamed body is the recorded answer');
    assert.equal(replay.requests.length, 1);
    const sent = replay.requests[0].body;
    assert.equal(sent.stream, true);
    assert.equal(sent.messages[0].role, 'system');
    assert.equal(sent.messages.at(-1).content, 'Invent a new holiday and describe its traditions.');
    assert.equal(sent.tools[0].function.name, 'clock');
  });

  await t.test('POST /api/runs starts a workflow run and streams its events with runEventsResponse()', async () => {
    const bad = await fetch(`${base}/api/runs`, { method: 'POST', body: '{"topic": ""}', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.status, 400, 'the input schema is applied');
    await bad.text();

    const res = await fetch(`${base}/api/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'tides' }),
    });
    assert.equal(res.status, 200, log);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const runId = res.headers.get('x-run-id');
    assert.ok(runId);
    const events = parseSse(await res.text());
    assert.deepEqual(
      events.map((e) => e.id),
      events.map((_, i) => i + 1),
      'ids are the seqs, from 1',
    );
    assert.equal(events[0].event, 'run-started');
    assert.equal(events.at(-1).event, 'run-finished');
    assert.equal(events.at(-1).data.status, 'succeeded');
    assert.equal(events.at(-1).data.output.title, 'Report: tides');
    assert.deepEqual(
      events.filter((e) => e.event === 'custom').map((e) => e.data.data.title),
      ['Background', 'Findings', 'Next steps'],
    );
    for (const e of events) {
      assert.equal(e.event, e.data.type);
      assert.equal(e.data.runId, runId);
    }

    // A reconnecting EventSource sends the last id it got: the stream goes on after it.
    const again = await fetch(`${base}/api/runs/${runId}/events`, { headers: { 'last-event-id': '3' } });
    assert.equal(again.status, 200);
    const rest = parseSse(await again.text());
    assert.deepEqual(
      rest.map((e) => e.data),
      events.slice(3).map((e) => e.data),
    );
    const nd = await fetch(`${base}/api/runs/${runId}/events?format=ndjson`);
    assert.equal(nd.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await nd.text()).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(
      lines,
      events.map((e) => e.data),
    );
    const missing = await fetch(`${base}/api/runs/no-such-run/events`);
    assert.equal(missing.status, 404);
    await missing.text();

    // The run is in the app's database.
    const engine = await Engine.open({ store: `sqlite:${db}` });
    const stored = await engine.get(runId);
    assert.equal(stored.status, 'succeeded');
    assert.equal(stored.output.title, 'Report: tides');
  });

  await t.test('in Chromium: the pages on @miyabi/react and @ai-sdk/react', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is missing (apt-get install chromium): the browser part did not run`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const profile = mkdtempSync(join(tmpdir(), 'miyabi-chromium-'));
    const shots = process.env.MIYABI_WEB_SCREENSHOTS ? resolve(process.env.MIYABI_WEB_SCREENSHOTS) : undefined;
    if (shots !== undefined) mkdirSync(shots, { recursive: true });
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1100, height: 760 },
      colorScheme: 'light',
    });
    t.after(async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
    });
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));

    await t.test('a workflow page: start, steps appear live, edit and approve the gate, the result shows', async () => {
      await page.goto(`${base}/workflow`);
      await page.fill('[data-testid=change]', 'Fix the login bug');
      await page.click('[data-testid=start]');
      const card = page.locator('[data-miyabi=approval-card]');
      await card.waitFor({ timeout: 30_000 });
      assert.equal(await card.locator('[data-miyabi=approval-title]').textContent(), 'Ship this change?');
      // The timeline shows the plan done and the gate waiting, from the run's live events.
      await page.locator('[data-miyabi=timeline-step][data-path=plan][data-status=succeeded]').waitFor({ timeout: 30_000 });
      await page.locator('[data-miyabi=timeline-step][data-path=review][data-status=suspended]').waitFor({ timeout: 30_000 });
      const data = JSON.parse(await card.locator('[data-miyabi=approval-data]').inputValue());
      assert.deepEqual(data.steps, ['build', 'test', 'deploy']);
      await card.locator('[data-miyabi=approval-data]').fill(JSON.stringify({ ...data, steps: ['build', 'deploy'] }));
      if (shots !== undefined) await page.screenshot({ path: join(shots, 'web-workflow-gate.png') });
      await card.locator('[data-miyabi=approve]').click();
      const output = page.locator('[data-testid=run-output]');
      await output.waitFor({ timeout: 30_000 });
      const result = JSON.parse(await output.textContent());
      assert.equal(result.shipped, true);
      assert.deepEqual(result.plan.steps, ['build', 'deploy'], 'the edited plan went on');
      assert.equal(await page.locator('[data-testid=run-status]').textContent(), 'succeeded');
      await page.locator('[data-miyabi=timeline-step][data-path=apply][data-status=succeeded]').waitFor();
      if (shots !== undefined) await page.screenshot({ path: join(shots, 'web-workflow-done.png') });
    });

    for (const [path, name] of [
      ['/assistant', '@miyabi/react'],
      ['/ai-sdk', '@ai-sdk/react'],
    ]) {
      await t.test(`a chat with useChat from ${name}: type, see the approval request, approve, see the result`, async () => {
        await page.goto(`${base}${path}`);
        await page.fill('[data-testid=chat-input]', 'Please refund order A-17');
        await page.press('[data-testid=chat-input]', 'Enter');
        const approve = page.locator('[data-testid=approve-tool]');
        await approve.waitFor({ timeout: 30_000 });
        const call = (await page.locator('[data-part=tool] code').textContent()).split(' ');
        assert.equal(call[0], 'refund');
        assert.deepEqual(JSON.parse(call.slice(1).join(' ')), { order: 'A-17', amount: 25 });
        if (shots !== undefined && path === '/assistant') await page.screenshot({ path: join(shots, 'web-chat-approval.png') });
        await approve.click();
        await page.locator('[data-testid=tool-output]').waitFor({ timeout: 30_000 });
        assert.equal(await page.locator('[data-testid=tool-output]').textContent(), 'refunded 25 on order A-17');
        await page.getByText('Done: refunded 25 on order A-17.').waitFor({ timeout: 30_000 });
        // One assistant message: the answer continued the message that asked for approval.
        assert.equal(await page.locator('li[data-role=assistant]').count(), 1);
        if (shots !== undefined && path === '/assistant') await page.screenshot({ path: join(shots, 'web-chat-done.png') });
      });
    }
    assert.deepEqual(errors, [], 'no errors in the pages');
  });
});

test('without serverExternalPackages, next build fails as the README says', { timeout: 300_000 }, (t) => {
  const app = prepareNextApp(t);
  writeFileSync(join(app, 'next.config.example.mjs'), 'export default {};\n');
  let out = '';
  assert.throws(() => {
    try {
      execFileSync(process.execPath, [nextBin, 'build'], { cwd: app, env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' }, stdio: 'pipe', timeout: 240_000 });
    } catch (e) {
      out = `${e.stdout ?? ''}${e.stderr ?? ''}`;
      throw e;
    }
  });
  assert.match(out, /node addon\) is not placeable in ESM chunks/, out);
});
