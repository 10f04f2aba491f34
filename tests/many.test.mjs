// 12,000 runs in one process: once warm (SQLite page cache, JIT), RSS no longer grows with the
// number of runs — nothing is kept per run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir, lastJson } from './helpers.mjs';

test('12,000 runs on SQLite without RSS growth per run', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/many.mjs', import.meta.url));
  // No time limit: the runs take as long as the machine needs; only memory is measured.
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', fixture, join(tempDir(t), 'runs.db')], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const mb = lastJson(stdout).rssAt.map((b) => b / 1e6);
  const grew = mb[2] - mb[1];
  // The last 4,000 runs: keeping even 1 KB per run would add 4 MB.
  assert.ok(grew < 3, `RSS after 4k/8k/12k runs: ${mb.map((x) => x.toFixed(1)).join(' / ')} MB`);
});
