// Retention from TypeScript and from the package's `miyabi` command: finished runs are deleted,
// suspended ones never, and they still resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, MiyabiError, workflow } from '@miyabi/core';
import { tempDir, runNode, lastJson } from './helpers.mjs';

const cli = fileURLToPath(new URL('../bin/miyabi.mjs', import.meta.url));

const done = workflow('done').step('double', ({ input }) => input * 2).commit();
const waits = workflow('waits')
  .step('review', ({ input, resumeData, suspend }) => (resumeData === undefined ? suspend({ question: 'ok?' }) : { input, decision: resumeData }))
  .commit();

async function seed(engine) {
  const finished = [];
  for (let i = 0; i < 4; i++) finished.push((await engine.start(done, i)).id);
  const parked = await engine.start(waits, 'doc');
  assert.equal(parked.status, 'suspended');
  return { finished, parked: parked.id };
}

test('engine.prune deletes finished runs and keeps suspended ones, which still resume', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  const { finished, parked } = await seed(engine);
  assert.equal(engine.prune({ keepLast: 1, workflow: 'done' }), 3);
  assert.deepEqual((await engine.list({ workflow: 'done' })).map((r) => r.id), [finished[3]]);
  assert.equal(await engine.get(finished[0]), null);
  // Nothing ended an hour ago.
  assert.equal(engine.prune({ olderThanMs: 3_600_000 }), 0);
  assert.equal(engine.prune({ keepLast: 0 }), 1);
  assert.equal((await engine.get(parked)).status, 'suspended');
  const resumed = await engine.resume(parked, 'review', 'yes');
  assert.equal(resumed.status, 'succeeded');
  assert.deepEqual(resumed.output, { input: 'doc', decision: 'yes' });
  engine.close();
});

test('a retention rule must have a whole age or count', async () => {
  const engine = await Engine.open();
  for (const rule of [{}, { olderThanMs: -1 }, { keepLast: 1.5 }, { olderThanMs: Number.NaN }, { keepLast: Infinity }]) {
    assert.throws(() => engine.prune(rule), (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT', JSON.stringify(rule));
  }
  assert.throws(() => Engine.openSync({ retention: { keepLast: 1, intervalMs: 0 } }), (e) => e instanceof MiyabiError && /intervalMs/.test(e.message));
  engine.close();
});

test('the retention option prunes in the background', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, retention: { keepLast: 1, intervalMs: 10 } });
  const { finished, parked } = await seed(engine);
  // The worker runs once a second; wait for its pass (a fallback bound only so a broken build fails).
  const giveUp = Date.now() + 30_000;
  let left = await engine.list({ workflow: 'done' });
  while (left.length > 1 && Date.now() < giveUp) {
    await new Promise((r) => setTimeout(r, 50));
    left = await engine.list({ workflow: 'done' });
  }
  assert.deepEqual(left.map((r) => r.id), [finished[3]]);
  assert.equal((await engine.get(parked)).status, 'suspended');
  engine.close();
});

test('miyabi runs prune from the npm package', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const engine = await Engine.open({ store: `sqlite:${db}` });
  const { parked } = await seed(engine);
  engine.close();
  const bad = await runNode(cli, ['runs', 'prune', '--db', db, '--older-than', 'soon']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--older-than "soon".*INVALID_ARGUMENT/);
  const none = await runNode(cli, ['runs', 'prune', '--db', db]);
  assert.notEqual(none.code, 0);
  const day = await runNode(cli, ['runs', 'prune', '--db', db, '--older-than', '1d', '--json']);
  assert.equal(day.code, 0, day.stderr);
  assert.deepEqual(lastJson(day.stdout), { deleted: 0 });
  const all = await runNode(cli, ['runs', 'prune', '--db', db, '--keep-last', '0', '--json']);
  assert.equal(all.code, 0, all.stderr);
  assert.deepEqual(lastJson(all.stdout), { deleted: 4 });
  const again = await Engine.open({ store: `sqlite:${db}`, workflows: [waits] });
  assert.deepEqual((await again.list()).map((r) => r.id), [parked]);
  again.close();
});
