// Postgres benchmark (issue 17): durable runs on Postgres (loopback) against the same on SQLite
// and against Mastra's Postgres store (@mastra/pg), then throughput with 1, 2 and 4 worker
// processes on I/O-bound steps. One JSON line per figure ({"bench", "value", "unit"}).
//
//   cargo build -p miyabi --features postgres --examples [--release]
//   bash bench/peer/setup.sh            # @mastra/core, @mastra/pg (scratch folder)
//   MIYABI_TEST_POSTGRES_URL=postgres://miyabi@127.0.0.1:55432/postgres node bench/pg.mjs
//
// Environment: PG_BENCH_RUNS (3-step runs per store, default 500; 100-step: a tenth),
// PG_BENCH_ROUNDS (interleaved Miyabi/Mastra rounds of the 3-step figure, default 5),
// PG_BENCH_ONLY_LATENCY=1 / PG_BENCH_ONLY_THROUGHPUT=1 (one half),
// PG_BENCH_TP_RUNS (runs per throughput figure, default 600), MASTRA_DIR (default
// /tmp/miyabi-peer), PG_BENCH_PROFILE (release or debug: which build of the examples to use;
// default: release if built, else debug). Needs `psql` for the database's counters.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const URL_ = process.env.MIYABI_TEST_POSTGRES_URL;
if (!URL_) {
  console.error('set MIYABI_TEST_POSTGRES_URL (a throw-away database: schemas are created and dropped)');
  process.exit(2);
}
const RUNS = Number.parseInt(process.env.PG_BENCH_RUNS || '500', 10);
const TP_RUNS = Number.parseInt(process.env.PG_BENCH_TP_RUNS || '600', 10);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const profile =
  process.env.PG_BENCH_PROFILE ||
  (fs.existsSync(path.join(root, 'target/release/examples/pg_worker')) ? 'release' : 'debug');
const bin = (name) => {
  const p = path.join(root, 'target', profile, 'examples', name);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: cargo build -p miyabi --features postgres --examples`);
  return p;
};

function emit(bench, value, unit, extra = {}) {
  process.stdout.write(JSON.stringify({ bench, value: Math.round(value * 100) / 100, unit, ...extra }) + '\n');
}

const psql = (sql) =>
  execFileSync('psql', [URL_, '-XAtqc', sql], {
    encoding: 'utf8',
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  }).trim();
// Write transactions: each takes a transaction id (read-only ones do not), counted at once
// (pg_stat_database's counters reach the view late, and not at all from a killed session).
const writeXacts = () => Number(psql('SELECT txid_current()'));

const ONLY_TP = process.env.PG_BENCH_ONLY_THROUGHPUT === '1';
const ROUNDS = Number.parseInt(process.env.PG_BENCH_ROUNDS || '5', 10);
if (!ONLY_TP) await latency();
async function latency() {
// --- 1. Miyabi on Postgres and SQLite, every shape once (the Rust example prints its own lines)
process.stderr.write(`miyabi (${profile} build): 3-step and 100-step runs on Postgres and SQLite\n`);
process.stdout.write(execFileSync(bin('pg_bench'), [URL_, String(RUNS)], { encoding: 'utf8' }));

// --- 2. Mastra on Postgres (@mastra/pg) ------------------------------------------------------
const MASTRA_DIR = path.resolve(process.env.MASTRA_DIR || '/tmp/miyabi-peer');
async function importPkg(name, subpath = '.') {
  const pkgRoot = path.join(MASTRA_DIR, 'node_modules', ...name.split('/'));
  const pj = JSON.parse(fs.readFileSync(path.join(pkgRoot, 'package.json'), 'utf8'));
  const pick = (e) =>
    typeof e === 'string' ? e : e && (pick(e.import) || pick(e.node) || pick(e.default));
  const target = pick(pj.exports?.[subpath]) || (subpath === '.' ? pj.module || pj.main : null);
  if (!target) throw new Error(`cannot resolve ${name} ${subpath}`);
  return import(pathToFileURL(path.join(pkgRoot, target)).href);
}

if (!fs.existsSync(path.join(MASTRA_DIR, 'node_modules/@mastra/pg'))) {
  process.stderr.write(`mastra: @mastra/pg not installed in ${MASTRA_DIR} (bash bench/peer/setup.sh): skipped\n`);
  return;
}
process.env.MASTRA_TELEMETRY_DISABLED ??= '1';
const [{ createWorkflow, createStep }, { Mastra }, { PostgresStore }, { z }] = await Promise.all([
  importPkg('@mastra/core', './workflows'),
  importPkg('@mastra/core', '.'),
  importPkg('@mastra/pg'),
  importPkg('zod'),
]);
const Num = z.object({ n: z.number().int() });
const addOne = (id) =>
  createStep({ id, inputSchema: Num, outputSchema: Num, execute: async ({ inputData }) => ({ n: inputData.n + 1 }) });
const linear = (id, n) => {
  let w = createWorkflow({ id, inputSchema: Num, outputSchema: Num });
  for (let i = 0; i < n; i++) w = w.then(addOne(`add-${i}`));
  return w.commit();
};
// A Mastra with a fresh schema (as pg_bench recreates Miyabi's), its workflows warmed up.
async function mastra() {
  psql('DROP SCHEMA IF EXISTS mastra_bench CASCADE; CREATE SCHEMA mastra_bench');
  const storage = new PostgresStore({ id: 'miyabi-pg-bench', connectionString: URL_, schemaName: 'mastra_bench' });
  const m = new Mastra({ workflows: { three: linear('linear-3', 3), hundred: linear('linear-100', 100) }, storage, logger: false });
  await runs(m.getWorkflow('three'), 3, Math.max(1, RUNS / 10));
  return { m, close: async () => storage.close?.() };
}
async function runs(wf, steps, count) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const run = await wf.createRun();
    const res = await run.start({ inputData: { n: i } });
    if (res?.status !== 'success' || res.result?.n !== i + steps) throw new Error(`mastra run ${i}: ${res?.status}`);
  }
  return Number(process.hrtime.bigint() - t) / count;
}
{
  const { m, close } = await mastra();
  emit('mastra.postgres.3step', (await runs(m.getWorkflow('three'), 3, RUNS)) / 1e3, 'us/run');
  emit('mastra.postgres.100step', (await runs(m.getWorkflow('hundred'), 100, Math.max(10, RUNS / 10))) / 1e6, 'ms/run');
  await close();
}

// --- 2b. The 3-step figure side by side in interleaved rounds --------------------------------
// The host's load drifts over a minute; a round measures Miyabi then Mastra right after, and
// the ratio is the median of the rounds' ratios.
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ours = [];
const theirs = [];
for (let r = 0; r < ROUNDS; r++) {
  const line = execFileSync(bin('pg_bench'), [URL_, String(RUNS), 'postgres.3step'], { encoding: 'utf8' });
  ours.push(JSON.parse(line.trim().split('\n').pop()).value);
  const { m, close } = await mastra();
  theirs.push((await runs(m.getWorkflow('three'), 3, RUNS)) / 1e3);
  await close();
}
const ratios = ours.map((v, i) => theirs[i] / v);
const extra = { rounds: ROUNDS, runs_per_round: RUNS };
emit('miyabi.postgres.3step.rounds_median', median(ours), 'us/run', { ...extra, each: ours.map((v) => Math.round(v)) });
emit('mastra.postgres.3step.rounds_median', median(theirs), 'us/run', { ...extra, each: theirs.map((v) => Math.round(v)) });
emit('ratio.postgres.3step.rounds_median', median(ratios), 'x', { min: Math.round(Math.min(...ratios) * 10) / 10, max: Math.round(Math.max(...ratios) * 10) / 10 });
}

// --- 3. Throughput: 1, 2, 4 worker processes, 3 steps of 10 ms each ------------------------
if (process.env.PG_BENCH_ONLY_LATENCY === '1') process.exit(0);
// Two shapes: each worker executing at most 4 runs at once (`--max-active 4`: the workers'
// capacity is the bound, as with any fixed-size worker, so the figure shows whether adding
// workers adds throughput or the database serialises them), and with room for 256 (the host's
// CPU is the bound: workers and Postgres share its cores).
// With PG_BENCH_ASYNC_COMMIT=1 the workers' sessions use `synchronous_commit = off` (a commit
// does not wait for the WAL flush), to show the workers' own scaling where the disk's flush
// rate would otherwise bound every figure.
const ASYNC = process.env.PG_BENCH_ASYNC_COMMIT === '1';
const WORKER_URL = ASYNC
  ? URL_ + (URL_.includes('?') ? '&' : '?') + 'options=-c%20synchronous_commit%3Doff'
  : URL_;
const TP = ASYNC ? 'postgres_async_commit' : 'postgres';
function startWorker(schema, maxActive) {
  const child = spawn(
    bin('pg_worker'),
    ['--url', WORKER_URL, '--schema', schema, '--steps', '3', '--step-ms', '10', '--max-active', String(maxActive), '--poll-ms', '500', '--no-effects', 'work'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout });
    rl.once('line', (l) => (l.startsWith('ready ') ? resolve(child) : reject(new Error(l))));
    child.once('exit', (c) => reject(new Error(`worker exited ${c}`)));
  });
}

for (const [maxActive, tag] of [[4, '.cap4'], [256, '']]) {
  for (const workers of [1, 2, 4]) {
    const schema = `tp_${workers}`;
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    // The schema and its tables, then the runs, all enqueued before any worker starts.
    execFileSync(bin('pg_worker'), ['--url', URL_, '--schema', schema, '--steps', '3', 'enqueue', '--workflow', 'chain', '--runs', String(TP_RUNS)]);
    const x0 = writeXacts();
    const t0 = process.hrtime.bigint();
    const procs = await Promise.all(Array.from({ length: workers }, () => startWorker(schema, maxActive)));
    for (;;) {
      const left = Number(psql(`SELECT count(*) FROM ${schema}.runs WHERE status <> 'succeeded'`));
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const xacts = writeXacts() - x0 - 1;
    for (const p of procs) p.kill('SIGKILL');
    const steps = Number(psql(`SELECT count(*) FROM ${schema}.steps WHERE status = 'succeeded'`));
    if (steps !== TP_RUNS * 3) throw new Error(`throughput ${workers}: ${steps} step records`);
    const name = `miyabi.${TP}${tag}.workers${workers}`;
    emit(`${name}.runs_per_s`, TP_RUNS / secs, 'runs/s', { runs: TP_RUNS, steps_per_run: 3, step_ms: 10, max_active: maxActive });
    emit(`${name}.steps_per_s`, (TP_RUNS * 3) / secs, 'steps/s');
    emit(`${name}.write_xacts_per_s`, xacts / secs, 'xact/s');
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
}
