// engine.retry(): a failed run runs its failed steps again and keeps what succeeded, in the
// process that failed it or another one on the same file, and through the HTTP API (serve).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine, MiyabiError, workflow } from '@miyabi/core';
import { tempDir } from './helpers.mjs';

/** A workflow whose `upload` step throws while `state.down` is set; `calls` counts each step. */
function flaky(state) {
  return workflow('sync')
    .step('prepare', ({ input }) => {
      state.calls.prepare += 1;
      return { files: input.files };
    })
    .step('upload', ({ input }) => {
      state.calls.upload += 1;
      if (state.down) throw new Error('the storage service answered 503');
      return { uploaded: input.files };
    })
    .commit();
}

test('a failed run is retried from its failed step by a second engine on the file', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const state = { down: true, calls: { prepare: 0, upload: 0 } };
  const wf = flaky(state);
  const first = await Engine.open({ store: `sqlite:${db}`, workflows: [wf] });
  t.after(() => first.close());
  const run = await first.start(wf, { files: 3 });
  assert.equal(run.status, 'failed');
  assert.match(run.error, /503/);

  state.down = false;
  const second = await Engine.open({ store: `sqlite:${db}`, workflows: [wf] });
  t.after(() => second.close());
  const done = await second.retry(run.id);
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, { uploaded: 3 });
  assert.equal(done.error, undefined);
  assert.deepEqual(state.calls, { prepare: 1, upload: 2 }, 'prepare is not run again');

  const types = [];
  let retried;
  for await (const ev of second.events(run.id)) {
    types.push(ev.type);
    if (ev.type === 'run-retried') retried = ev;
  }
  assert.deepEqual(retried.paths, ['upload']);
  assert.ok(types.indexOf('step-failed') < types.indexOf('run-retried'), types.join(' '));
  assert.equal(types.at(-1), 'run-finished');

  // A run that did not fail is refused with the engine's code and message.
  await assert.rejects(second.retry(run.id), (e) => {
    assert.ok(e instanceof MiyabiError);
    assert.equal(e.code, 'CONFLICT');
    assert.match(e.message, /only failed runs can be retried/);
    return true;
  });
  await assert.rejects(second.retry('no-such-run'), (e) => e instanceof MiyabiError && e.code === 'NOT_FOUND');
});

test('POST /api/runs/{id}/retry retries a run of a workflow with JS steps on this engine', async (t) => {
  const state = { down: true, calls: { prepare: 0, upload: 0 } };
  const wf = flaky(state);
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, workflows: [wf] });
  const token = 'tok-olga-0123456789';
  const server = await engine.serve({ port: 0, tokens: [{ token, id: 'olga' }] });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  const run = await engine.start(wf, { files: 2 });
  assert.equal(run.status, 'failed');
  state.down = false;
  const res = await fetch(`${server.url}/api/runs/${run.id}/retry`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 202, await res.clone().text());
  assert.deepEqual(await res.json(), { id: run.id });
  // Its events: the stored ones, then live ones while this engine drives it, to the end.
  let reopened = false;
  for await (const ev of engine.events(run.id)) {
    if (ev.type === 'run-retried') reopened = true;
    if (reopened && ev.type === 'run-finished') break;
  }
  assert.ok(reopened);
  const done = await engine.get(run.id);
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, { uploaded: 2 });
  assert.deepEqual(state.calls, { prepare: 1, upload: 2 });
});
