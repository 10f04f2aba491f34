// Engine.open({ store: 'postgres://…' }): a run suspended by one Node process on Postgres is
// resumed by another; a worker's work() is woken by the store's NOTIFY for an enqueued run.
// Needs MIYABI_TEST_POSTGRES_URL (and `psql`); skips without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Engine, workflow } from '@miyabi/core';
import { runNode, lastJson } from './helpers.mjs';

const fixture = fileURLToPath(new URL('./fixtures/approval.mjs', import.meta.url));
const base = process.env.MIYABI_TEST_POSTGRES_URL;

const psql = (url, sql) =>
  execFileSync('psql', [url, '-XAtqc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  });

/** A database of its own for test `t` (the store's schema is `miyabi`), dropped after it. */
function database(t, suffix) {
  const name = `miyabi_node_${process.pid}_${suffix}`;
  psql(base, `DROP DATABASE IF EXISTS ${name}`);
  psql(base, `CREATE DATABASE ${name}`);
  t.after(() => psql(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return base.replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`);
}

test('a run suspended by one process on Postgres is resumed by another', { skip: !base && 'skipped: MIYABI_TEST_POSTGRES_URL not set' }, async (t) => {
  const url = database(t, 'resume');

  const first = await runNode(fixture, ['start', url]);
  assert.equal(first.code, 0, first.stderr);
  const started = lastJson(first.stdout);
  assert.equal(started.status, 'suspended');

  const engine = await Engine.open({ store: url });
  assert.equal((await engine.get(started.id)).status, 'suspended');

  const second = await runNode(fixture, ['resume', url, started.id, 'review']);
  assert.equal(second.code, 0, second.stderr);
  const done = lastJson(second.stdout);
  assert.equal(done.status, 'succeeded', done.error);
  assert.notEqual(done.output.draftPid, done.output.publishPid, 'two processes did the work');
  assert.deepEqual(done.log, ['review', 'publish']);
  assert.equal((await engine.get(started.id)).status, 'succeeded');
  // The rows are in Postgres.
  assert.equal(psql(url, `SELECT status FROM miyabi.runs WHERE id = '${started.id}'`).trim(), 'succeeded');
});

test("work() takes an enqueued run when the store's NOTIFY wakes it, with an hour between polls", { skip: !base && 'skipped: MIYABI_TEST_POSTGRES_URL not set', timeout: 120_000 }, async (t) => {
  const url = database(t, 'notify');
  const wf = workflow('notified')
    .step('double', async ({ input }) => ({ doubled: input.n * 2, pid: process.pid }))
    .commit();
  const worker = await Engine.open({ store: url, workflows: [wf] });
  t.after(() => worker.close());
  const stop = new AbortController();
  // The first pass finds nothing; the next look is an hour away unless the store wakes it.
  const working = worker.work({ signal: stop.signal, pollMs: 3_600_000 });

  const web = await Engine.open({ store: url });
  t.after(() => web.close());
  const id = await web.enqueue(wf, { n: 21 });
  let run = await web.get(id);
  while (run.status === 'running') {
    await new Promise((r) => setTimeout(r, 20));
    run = await web.get(id);
  }
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output, { doubled: 42, pid: process.pid });
  stop.abort();
  await working;
});

test('an unknown store is refused without showing a password', async () => {
  await assert.rejects(
    Engine.open({ store: 'mysql://app:hunter2@db/app' }),
    (e) => e.code === 'INVALID_ARGUMENT' && !String(e.message).includes('hunter2'),
  );
});
