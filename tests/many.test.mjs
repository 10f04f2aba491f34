// 12,000 runs in one process: once warm (SQLite page cache, JIT), RSS no longer grows with the
// number of runs — nothing is kept per run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, runNode, lastJson } from './helpers.mjs';

test('12,000 runs on SQLite without RSS growth per run', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/many.mjs', import.meta.url));
  const r = await runNode('--expose-gc', [fixture, join(tempDir(t), 'runs.db')], { timeoutMs: 180000 });
  assert.equal(r.code, 0, r.stderr);
  const mb = lastJson(r.stdout).rssAt.map((b) => b / 1e6);
  const grew = mb[2] - mb[1];
  // The last 4,000 runs: keeping even 1 KB per run would add 4 MB.
  assert.ok(grew < 3, `RSS after 4k/8k/12k runs: ${mb.map((x) => x.toFixed(1)).join(' / ')} MB`);
});
