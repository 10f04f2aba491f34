// Node benchmark of @miyabi/core: the issue's JS-step shapes, one JSON line per figure on stdout
// ({"bench": name, "value": n, "unit": u}); spreads and notes go to stderr.
//
//   npm run build && node bench/node.mjs
//
// Shapes:
//   node.memory.3step        3 async JS steps ({n} → {n+1}), in-memory store, runs one after another: µs per run
//   node.memory.3step.zod    the same with zod schemas (run input, each step's output), as Mastra's peer shape has
//   node.sqlite.3step        3 async JS steps on a SQLite file, every step committed: µs per run
//   node.sqlite.3step.zod    the same with zod schemas
//   node.import.ms           import('@miyabi/core') in a fresh process: ms (median of 5 processes)
//   node.import.rss          RSS of that process after the import: MB (median of 5)
// Each run's output is checked, so a failing run cannot pass for a fast one. Each figure is the
// median of BENCH_REPEATS (5) batches of BENCH_RUNS_MEMORY (5000) or BENCH_RUNS_SQLITE (1000) runs.
//
// The peer: with BENCH_PEER=1 (after `bash bench/peer/setup.sh`), the same script then runs
// @mastra/core's 3-step shapes (bench/peer/mastra.mjs: mastra.memory.3step, mastra.libsql.3step,
// zod-typed steps like the `.zod` shapes here) in a child process, after ours and never at the
// same time, and prints ratio lines: Mastra's figure divided by ours (ratio.node.*).
//   BENCH_PEER=1 node bench/node.mjs
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { Engine, workflow, step } from '@miyabi/core';

const int = (name, d) => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const REPEATS = int('BENCH_REPEATS', 5);
const RUNS_MEMORY = int('BENCH_RUNS_MEMORY', 5000);
const RUNS_SQLITE = int('BENCH_RUNS_SQLITE', 1000);
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter(Boolean);
const want = (name) => ONLY.length === 0 || ONLY.some((o) => name.includes(o));

const figures = new Map();
const emit = (bench, value, unit) => {
  figures.set(bench, { bench, value, unit });
  process.stdout.write(`${JSON.stringify({ bench, value, unit })}\n`);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const Num = z.object({ n: z.number().int() });
function three(zod) {
  let wf = workflow(zod ? 'linear-3-zod' : 'linear-3', zod ? { input: Num } : undefined);
  for (let i = 0; i < 3; i++) {
    wf = zod
      ? wf.then(`add-${i}`, step({ output: Num, execute: async ({ input }) => ({ n: input.n + 1 }) }))
      : wf.then(`add-${i}`, async ({ input }) => ({ n: input.n + 1 }));
  }
  return wf.commit();
}

async function batch(engine, wf, runs) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) {
    const run = await engine.start(wf, { n: i });
    if (run.output?.n !== i + 3) throw new Error(`run ${run.id}: ${run.status} ${JSON.stringify(run.output)} ${run.error}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1000 / runs;
}

async function shape(name, engine, wf, runs) {
  if (!want(name)) return;
  await batch(engine, wf, Math.min(500, runs)); // warm-up: JIT, tables, statement caches
  const us = [];
  for (let r = 0; r < REPEATS; r++) us.push(await batch(engine, wf, runs));
  process.stderr.write(`${name}: ${us.map((x) => round(x)).join(' / ')} µs per run (${runs} runs per batch)\n`);
  emit(name, round(median(us)), 'us');
}

const dir = mkdtempSync(join(tmpdir(), 'miyabi-node-bench-'));
try {
  const memory = Engine.openSync({ store: 'memory' });
  await shape('node.memory.3step', memory, three(false), RUNS_MEMORY);
  await shape('node.memory.3step.zod', memory, three(true), RUNS_MEMORY);
  // Each SQLite shape on a fresh file of its own: a figure does not depend on which shape
  // grew the file before it.
  const sqlite = (name) => Engine.openSync({ store: `sqlite:${join(dir, `${name}.db`)}` });
  if (want('node.sqlite.3step')) await shape('node.sqlite.3step', sqlite('plain'), three(false), RUNS_SQLITE);
  if (want('node.sqlite.3step.zod')) await shape('node.sqlite.3step.zod', sqlite('zod'), three(true), RUNS_SQLITE);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (want('node.import')) {
  const probe = `
    const t0 = performance.now();
    await import('@miyabi/core');
    const ms = performance.now() - t0;
    console.log(JSON.stringify({ ms, rss: process.memoryUsage().rss }));`;
  const ms = [];
  const rss = [];
  for (let i = 0; i < 5; i++) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: process.cwd() });
    const r = JSON.parse(out.toString());
    ms.push(r.ms);
    rss.push(r.rss / 1e6);
  }
  process.stderr.write(`node.import: ${ms.map((x) => round(x, 1)).join(' / ')} ms, ${rss.map((x) => round(x, 1)).join(' / ')} MB\n`);
  emit('node.import.ms', round(median(ms), 1), 'ms');
  emit('node.import.rss', round(median(rss), 1), 'MB');
}

if (process.env.BENCH_PEER === '1') {
  // Mastra's figures for the same shapes, measured now, on this machine, by the peer script.
  const peer = new URL('./peer/mastra.mjs', import.meta.url);
  const out = execFileSync(process.execPath, [peer.pathname], {
    env: { ...process.env, PEER_ONLY: 'memory.3step,libsql.3step' },
    stdio: ['ignore', 'pipe', 'inherit'],
  }).toString();
  const peerFigures = new Map();
  for (const line of out.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const j = JSON.parse(line);
    peerFigures.set(j.bench, j);
    process.stdout.write(`${line}\n`);
  }
  for (const [name, ours, theirs] of [
    ['ratio.node.memory.3step', 'node.memory.3step.zod', 'mastra.memory.3step'],
    ['ratio.node.sqlite.3step', 'node.sqlite.3step.zod', 'mastra.libsql.3step'],
  ]) {
    const a = figures.get(ours);
    const b = peerFigures.get(theirs);
    if (!a || !b || a.unit !== b.unit) {
      process.stderr.write(`${name}: not computed (${ours} or ${theirs} missing)\n`);
      continue;
    }
    emit(name, round(b.value / a.value, 1), 'x');
  }
}
