// Node benchmark of @miyabi/core: the JS-step shapes, one JSON line per figure on stdout
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

const emit = (bench, value, unit) => process.stdout.write(`${JSON.stringify({ bench, value, unit })}\n`);
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
  const sqlite = Engine.openSync({ store: `sqlite:${join(dir, 'bench.db')}` });
  await shape('node.sqlite.3step', sqlite, three(false), RUNS_SQLITE);
  await shape('node.sqlite.3step.zod', sqlite, three(true), RUNS_SQLITE);
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
