// Cancellation: a running run's steps see their AbortSignal fire; a suspended run is cancelled
// at once; a cancelled run cannot be resumed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine, workflow, CancelledError, ConflictError } from '@miyabi/core';
import { tempDir } from './helpers.mjs';

test('cancelling a running run aborts its steps and ends it cancelled', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  let started;
  const running = new Promise((r) => (started = r));
  let reason;
  let after = 0;
  const wf = workflow('long')
    .parallel({
      wait: ({ signal }) =>
        new Promise((resolve, reject) => {
          started();
          signal.addEventListener('abort', () => {
            reason = signal.reason;
            reject(signal.reason);
          });
        }),
      nap: () => new Promise((r) => setTimeout(r, 60_000).unref()),
    })
    .then('after', () => after++)
    .commit();
  const handle = await engine.spawn(wf, null);
  await running;
  const cancelled = await handle.cancel();
  assert.equal(cancelled.status, 'cancelled');
  assert.ok(reason instanceof CancelledError);
  assert.equal(reason.code, 'CANCELLED');
  const run = await handle.result;
  assert.equal(run.status, 'cancelled');
  assert.equal(after, 0);
  assert.equal((await engine.get(handle.id)).status, 'cancelled');
  const types = [];
  for await (const e of engine.events(handle.id)) types.push(e.type);
  assert.equal(types.at(-1), 'run-finished');
  await assert.rejects(() => engine.resume(handle.id, 'wait', null), ConflictError);
});

test('a suspended run is cancelled at once, also from another engine on the same file', async (t) => {
  const db = `sqlite:${join(tempDir(t), 'runs.db')}`;
  const engine = await Engine.open({ store: db });
  const wf = workflow('gate')
    .step('ask', ({ resumeData, suspend }) => resumeData ?? suspend({ q: 'go?' }))
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'suspended');
  const other = await Engine.open({ store: db, workflows: [wf] });
  const cancelled = await other.cancel(run.id);
  assert.equal(cancelled.status, 'cancelled');
  await assert.rejects(() => engine.resume(run.id, 'ask', true), (e) => e.code === 'CONFLICT');
});

test('a run over its workflow timeout fails, and its steps see a TimeoutError', async () => {
  const engine = await Engine.open();
  let reason;
  const wf = workflow('deadline', { timeoutMs: 30 })
    .step('forever', ({ signal }) => new Promise((resolve) => signal.addEventListener('abort', () => resolve((reason = signal.reason)))))
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'failed');
  assert.match(run.error, /timed out/);
  assert.equal(reason.code, 'TIMEOUT');
});

test('a cancel through the HTTP API reaches a run driven in JS: its next steps do not run', async (t) => {
  const engine = await Engine.open();
  const server = await engine.serve({ port: 0, tokens: [{ token: 'tok-ops', id: 'ops' }] });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  let started;
  const running = new Promise((r) => (started = r));
  let after = 0;
  const wf = workflow('served-cancel')
    .step('slow', () => {
      started();
      // Ends by itself: the driver reads the engine's cancellation request when it wakes.
      return new Promise((r) => setTimeout(() => r({ done: true }), 300));
    })
    .then('after', () => ++after)
    .commit();
  const handle = await engine.spawn(wf, null);
  await running;
  const res = await fetch(`${server.url}/api/runs/${handle.id}/cancel`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok-ops' },
  });
  assert.equal(res.status, 200, await res.clone().text());
  const body = await res.json();
  assert.equal(body.run.status, 'cancelled');
  const run = await handle.result;
  assert.equal(run.status, 'cancelled');
  assert.equal(after, 0);
});
