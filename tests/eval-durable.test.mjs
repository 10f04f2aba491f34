// durableEvaluation(): an evaluation as a durable workflow run of the JS engine. A process
// killed half-way leaves the samples it committed; another process on the same file continues
// the run without running them again, and the run's output is the miyabi.eval/v1 document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, durableEvaluation, metrics } from '@miyabi/core';
import { lastJson, runNode, tempDir } from './helpers.mjs';

const fixture = fileURLToPath(new URL('./fixtures/durable-eval.mjs', import.meta.url));

test('a killed durable evaluation continues in another process without re-running committed samples', async (t) => {
  const dir = tempDir(t);
  const db = join(dir, 'evals.db');
  const log = join(dir, 'calls.log');
  const first = await runNode(fixture, ['start', db, log]);
  assert.equal(first.signal, 'SIGKILL', first.stderr);
  const second = await runNode(fixture, ['recover', db, log]);
  assert.equal(second.code, 0, second.stderr);
  const [done] = lastJson(second.stdout).done;
  assert.equal(done.schema, 'miyabi.eval/v1');
  assert.equal(done.cases, 12);
  assert.deepEqual(done.samples, Array.from({ length: 12 }, (_, i) => `c${i}`));
  assert.equal(done.mean, 1);
  assert.equal(done.clusters, 4);

  const calls = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
  const pids = [...new Set(calls.map(([pid]) => pid))];
  assert.equal(pids.length, 2);
  const by = (pid) => calls.filter(([p]) => p === pid).map(([, c]) => c);
  const before = by(pids[0]);
  const after = by(pids[1]);
  assert.equal(before.length, 5, 'killed in the fifth case');
  // Only the case in flight at the kill runs twice; the committed ones do not run again.
  const twice = before.filter((c) => after.includes(c));
  assert.deepEqual(twice, ['c4'], `${before} / ${after}`);
  assert.deepEqual([...new Set([...before, ...after])].sort(), done.samples.slice().sort());

  // The run's output in the store is the results document.
  const engine = await Engine.open({ store: `sqlite:${db}` });
  const run = await engine.get(done.runId);
  assert.equal(run.workflow, 'eval.fizz');
  assert.equal(run.status, 'succeeded');
  assert.equal(run.output.schema, 'miyabi.eval/v1');
  assert.equal(run.output.samples.length, 12);
});

test('run() and results(): the same statistics as evaluate(), read back by run id', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'evals.db')}` });
  const data = [
    { id: 'a', input: 'ship it', expected: 'deploy' },
    { id: 'b', input: 'roll back', expected: 'rollback' },
  ];
  const target = async (input) => (input.includes('ship') ? 'deploy' : 'wait');
  const ev = durableEvaluation({ engine, name: 'deploys', data, target, metrics: { exact: metrics.exact() }, epochs: 2 });
  const r = await ev.run();
  assert.equal(r.samples.length, 4);
  assert.equal(r.metrics[0].mean, 0.5);
  const back = await ev.results(r.runId);
  assert.deepEqual(back.metrics, r.metrics);
  await assert.rejects(ev.results('nope'), /no eval run nope/);
  // A run of another workflow is refused by name.
  const other = durableEvaluation({ engine, name: 'other', data, target, metrics: { exact: metrics.exact() } });
  await assert.rejects(other.results(r.runId), /eval\.deploys/);
  assert.throws(() => durableEvaluation({ engine, data, target, metrics: {} }), /durableEvaluation: no metric/);
});
