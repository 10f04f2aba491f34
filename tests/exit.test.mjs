// No hanging handles: a process that ran workflows exits by itself soon after the last run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, runNode, lastJson } from './helpers.mjs';

test('the process exits by itself within a second of its last run', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const fixture = fileURLToPath(new URL('./fixtures/exit.mjs', import.meta.url));
  const r = await runNode(fixture, [db], { timeoutMs: 15000 });
  const exitedAt = Date.now();
  assert.equal(r.code, 0, r.stderr);
  const out = lastJson(r.stdout);
  assert.equal(out.last, 382);
  assert.equal(out.resumed, 'ok');
  assert.ok(out.events > 5);
  assert.ok(exitedAt - out.endedAt < 1000, `exited ${exitedAt - out.endedAt} ms after the last run`);
});
