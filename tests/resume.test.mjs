// Suspend in one Node process, resume in another; a crashed process's run is recovered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '@miyabi/core';
import { tempDir, runNode, lastJson } from './helpers.mjs';

const fixture = fileURLToPath(new URL('./fixtures/approval.mjs', import.meta.url));

test('a run suspended by one process is resumed by a second one', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const first = await runNode(fixture, ['start', db]);
  assert.equal(first.code, 0, first.stderr);
  const started = lastJson(first.stdout);
  assert.equal(started.status, 'suspended');
  assert.deepEqual(started.suspended, [{ path: 'review', payload: { question: 'approve draft of readme?' } }]);

  // Bad resume data is refused by the schema, and the run stays suspended.
  const engine = await Engine.open({ store: `sqlite:${db}` });
  const info = await engine.get(started.id);
  assert.equal(info.status, 'suspended');

  const second = await runNode(fixture, ['resume', db, started.id, 'review']);
  assert.equal(second.code, 0, second.stderr);
  const done = lastJson(second.stdout);
  assert.equal(done.status, 'succeeded', done.error);
  assert.equal(done.output.published, true);
  assert.equal(done.output.by, 'ada');
  assert.notEqual(done.output.draftPid, done.output.publishPid, 'two processes did the work');
  // The second process did not run `draft` again: its output came from the store.
  assert.deepEqual(done.log, ['review', 'publish']);
  assert.equal((await engine.get(started.id)).status, 'succeeded');
});

test('a run whose process died mid-step is recovered by another process', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const started = lastJson((await runNode(fixture, ['start', db])).stdout);
  const crashed = await runNode(fixture, ['crash', db, started.id, 'review']);
  assert.equal(crashed.code, 3, crashed.stderr);
  const engine = await Engine.open({ store: `sqlite:${db}` });
  assert.equal((await engine.get(started.id)).status, 'running');

  const recovered = await runNode(fixture, ['recover', db]);
  assert.equal(recovered.code, 0, recovered.stderr);
  const done = lastJson(recovered.stdout);
  assert.equal(done.status, 'succeeded', done.error);
  assert.equal(done.output.published, true);
  // Recovery replays from the store: only the interrupted step runs again.
  assert.deepEqual(done.log, ['publish']);
});

test('resume data are parsed with the resume schema of the step at that path (foreach items, nested workflows), by any engine on the file', async (t) => {
  const { z } = await import('zod');
  const { ValidationError, workflow } = await import('@miyabi/core');
  const db = join(tempDir(t), 'runs.db');
  const ask = {
    resume: z.object({ ok: z.boolean(), note: z.string().default('none') }),
    execute: ({ input, resumeData, suspend }) => (resumeData ? { item: input, ...resumeData } : suspend({ item: input })),
  };
  const inner = workflow('inner').step('approve', ask).commit();
  const define = () =>
    workflow('many-asks')
      .map('items', () => [1, 2])
      .foreach('each', ask, { concurrency: 2 })
      .then('nested', inner)
      .commit();

  const first = await Engine.open({ store: `sqlite:${db}`, workflows: [define()] });
  const run = await first.start(define(), null);
  assert.deepEqual(run.suspended.map((s) => s.path).sort(), ['each[0]', 'each[1]']);

  // Another engine on the same file, with the same definition registered.
  const second = await Engine.open({ store: `sqlite:${db}`, workflows: [define()] });
  await assert.rejects(
    () => second.resume(run.id, 'each[1]', { ok: 'yes' }),
    (e) => e instanceof ValidationError && e.message.startsWith('step `each[1]` resume data violates its schema') && e.issues.map((i) => i.path.join('.')).join() === 'ok',
  );
  assert.equal((await second.get(run.id)).status, 'suspended');
  await second.resume(run.id, 'each[0]', { ok: true });
  const mid = await second.resume(run.id, 'each[1]', { ok: false, note: 'later' });
  assert.deepEqual(mid.suspended.map((s) => s.path), ['nested/approve']);
  await assert.rejects(
    () => second.resume(run.id, 'nested/approve', {}),
    (e) => e instanceof ValidationError && e.issues.map((i) => i.path.join('.')).join() === 'ok',
  );
  const done = await second.resume(run.id, 'nested/approve', { ok: true });
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, {
    item: [
      { item: 1, ok: true, note: 'none' },
      { item: 2, ok: false, note: 'later' },
    ],
    ok: true,
    note: 'none',
  });
});
