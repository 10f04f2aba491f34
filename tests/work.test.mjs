// A web process that only enqueues, and workers that take the runs within concurrency limits:
// engine.enqueue() commits a run without running it; engine.work() in another engine on the
// same file takes enqueued runs and drives them, never more of a limited workflow at once than
// its limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import { Engine, ValidationError, workflow } from '@miyabi/core';
import { tempDir } from './helpers.mjs';

test('enqueued runs wait for a worker, which keeps within the workflow limit', async (t) => {
  const db = `sqlite:${join(tempDir(t), 'runs.db')}`;
  let running = 0;
  let peak = 0;
  const ran = [];
  const wf = workflow('ingest', { input: z.object({ n: z.number() }) })
    .step('load', async ({ input }) => {
      running++;
      peak = Math.max(peak, running);
      ran.push(input.n);
      await new Promise((r) => setTimeout(r, 15));
      running--;
      return { loaded: input.n };
    })
    .commit();

  // The web process: enqueues, runs nothing.
  const web = await Engine.open({ store: db });
  const ids = [];
  for (let n = 0; n < 6; n++) ids.push(await web.enqueue(wf, { n }));
  await assert.rejects(web.enqueue(wf, { n: 'six' }), ValidationError);
  assert.deepEqual(ran, []);
  for (const id of ids) assert.equal((await web.get(id)).status, 'running');

  // The worker: at most 2 runs of `ingest` at once across the store.
  const worker = await Engine.open({ store: db, workflows: [wf], limits: { workflows: { ingest: 2 } } });
  const stop = new AbortController();
  const working = worker.work({ signal: stop.signal, pollMs: 10 });
  for (;;) {
    const states = await Promise.all(ids.map((id) => worker.get(id)));
    if (states.every((r) => r.status === 'succeeded')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  stop.abort();
  await working;
  assert.deepEqual(ran.slice().sort(), [0, 1, 2, 3, 4, 5]);
  assert.equal(peak, 2, 'two at once, never more');
  assert.deepEqual((await web.get(ids[3])).output, { loaded: 3 });
  assert.throws(() => Engine.openSync({ store: db, limits: { workflows: { ingest: 0 } } }), /limits\.workflows\["ingest"\]/);
});
