// No hanging handles: a process that ran workflows exits by itself after its last run, because
// nothing it started is left in the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, lastJson } from './helpers.mjs';

test('the process exits by itself after its last run: nothing is left to keep it alive', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const fixture = fileURLToPath(new URL('./fixtures/exit.mjs', import.meta.url));
  const child = spawn(process.execPath, [fixture, db], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  // The fixture's one line, printed after its last run (or its exit, if it failed first).
  const printed = new Promise((res) =>
    child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.includes('\n')) res();
    }),
  );
  await Promise.race([printed, exited]);
  const out = lastJson(stdout);
  if (out.alive.length > 0) child.kill('SIGKILL');
  // Timers, sockets, file handles: anything here would keep the process running.
  assert.deepEqual(out.alive, [], 'resources left in the event loop after the last run');
  const { code, signal } = await exited;
  assert.equal(signal, null, stderr);
  assert.equal(code, 0, stderr);
  assert.equal(out.last, 382);
  assert.equal(out.resumed, 'ok');
  assert.ok(out.events > 5);
});
