// Engine.open({ store: 'postgres://…' }): a run suspended by one Node process on Postgres is
// resumed by another. Needs MIYABI_TEST_POSTGRES_URL (and `psql`); skips without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Engine } from '@miyabi/core';
import { runNode, lastJson } from './helpers.mjs';

const fixture = fileURLToPath(new URL('./fixtures/approval.mjs', import.meta.url));
const base = process.env.MIYABI_TEST_POSTGRES_URL;

const psql = (url, sql) =>
  execFileSync('psql', [url, '-XAtqc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  });

test('a run suspended by one process on Postgres is resumed by another', { skip: !base && 'skipped: MIYABI_TEST_POSTGRES_URL not set' }, async (t) => {
  // A database of its own (the store's schema is `miyabi`).
  const name = `miyabi_node_${process.pid}`;
  psql(base, `DROP DATABASE IF EXISTS ${name}`);
  psql(base, `CREATE DATABASE ${name}`);
  t.after(() => psql(base, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const url = base.replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`);

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

test('an unknown store is refused without showing a password', async () => {
  await assert.rejects(
    Engine.open({ store: 'mysql://app:hunter2@db/app' }),
    (e) => e.code === 'INVALID_ARGUMENT' && !String(e.message).includes('hunter2'),
  );
});
