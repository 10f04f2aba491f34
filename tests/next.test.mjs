// The Next.js example (examples-ts/next-app): install the built package into it, type-check it,
// `next build`, `next start` on a free loopback port with the agent's model pointed at a local
// replay of recorded OpenAI traffic, then POST to the route handler and read the streamed text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, replayServer } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const app = join(root, 'examples-ts', 'next-app');
const next = join(root, 'node_modules', 'next', 'dist', 'bin', 'next');

function run(args, opts = {}) {
  try {
    return execFileSync(process.execPath, args, { cwd: app, stdio: 'pipe', timeout: 300_000, ...opts }).toString();
  } catch (e) {
    assert.fail(`node ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

test('the Next.js route handler streams an agent answer with toTextStreamResponse()', { timeout: 420_000 }, async (t) => {
  const env = { ...process.env, NEXT_TELEMETRY_DISABLED: '1' };
  delete env.OPENAI_API_KEY;
  run([join(app, 'install-core.mjs')]);
  run([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app]);
  rmSync(join(app, '.next'), { recursive: true, force: true });
  run([next, 'build'], { env });

  const replay = await replayServer(t);
  const port = await freePort();
  const server = spawn(process.execPath, [next, 'start', '-p', String(port), '-H', '127.0.0.1'], {
    cwd: app,
    env: { ...env, MIYABI_REPLAY_BASE_URL: replay.url },
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

  const res = await fetch(`${base}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'Invent a new holiday and describe its traditions.' }),
  });
  assert.equal(res.status, 200, log);
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  const decoder = new TextDecoder();
  let text = '';
  let chunks = 0;
  for await (const chunk of res.body) {
    chunks++;
    text += decoder.decode(chunk, { stream: true });
  }
  text += decoder.decode();
  assert.equal(text, replay.text, 'the streamed body is the recorded answer');
  assert.ok(chunks >= 1);
  assert.equal(replay.requests.length, 1);
  const sent = replay.requests[0].body;
  assert.equal(sent.stream, true);
  assert.equal(sent.messages[0].role, 'system');
  assert.equal(sent.messages.at(-1).content, 'Invent a new holiday and describe its traditions.');
  assert.equal(sent.tools[0].function.name, 'clock');
});
