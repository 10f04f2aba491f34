// Peer benchmark: the workflow shapes of Miyabi's Rust benchmark, run on @mastra/core.
//
// The packages are not in the repo: `bench/peer/setup.sh` installs the versions pinned in
// `bench/peer/package.json` into a scratch folder (default /tmp/miyabi-peer), and this script imports
// them from there by absolute path. Run:
//
//   bash bench/peer/setup.sh && node bench/peer/mastra.mjs
//
// Environment:
//   MASTRA_DIR (or MASTRA_SCRATCH)  folder holding node_modules/@mastra/core etc. (default /tmp/miyabi-peer)
//   PEER_DB_DIR                     folder for the LibSQL files (default: a fresh folder under the OS temp dir, removed at exit)
//   PEER_ONLY                       comma-separated shape names to run (default: all), e.g. "memory.3step,libsql.100step"
//   PEER_RUNS_MEMORY (2000) PEER_RUNS_LIBSQL (200) PEER_RUNS_100 (10) PEER_CONCURRENT (10000)  run counts
//
// Each figure is one JSON line on stdout: {"bench": name, "value": n, "unit": u}. Notes, per-shape
// details and anything that could not be measured go to stderr; nothing is made up.
//
// Shapes (names as printed):
//   mastra.memory.3step                      3 linear steps, InMemoryStore, runs one after another: mean µs per run
//   mastra.libsql.3step                      same on a LibSQLStore file: mean µs per run
//   mastra.libsql.100step                    100 linear steps on the LibSQL file: mean ms per run
//   mastra.libsql.100step.bytes.logical      JSON bytes of every workflow snapshot Mastra persisted for ONE 100-step run
//   mastra.libsql.100step.bytes.io           bytes the process passed to write(2) during that run (/proc/self/io wchar),
//                                            Mastra's own SQLite settings, checkpoint copies included
//   mastra.libsql.100step.bytes.file         growth of the .db + .db-wal files over a second such run, WAL truncated
//                                            before it and automatic checkpoints off during it (see shapeBytes)
//   mastra.memory.10k_concurrent_sleep       10,000 concurrent runs of one step that sleeps 10 ms, InMemoryStore: wall ms
//   mastra.memory.10k_concurrent_sleep.rss   peak RSS of that (fresh) process, MB
//   mastra.libsql.10k_concurrent_sleep(.rss) the same on a LibSQL file (the Miyabi target is on SQLite)
// Every run's result is checked (status "success", the expected number out) so a failing run cannot
// pass for a fast one.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// Mastra's anonymous feature telemetry is off for a benchmark (and there is no network here anyway).
process.env.MASTRA_TELEMETRY_DISABLED ??= '1';

const SCRIPT = fileURLToPath(import.meta.url);
const MASTRA_DIR = path.resolve(process.env.MASTRA_DIR || process.env.MASTRA_SCRATCH || '/tmp/miyabi-peer');
const RUNS_MEMORY = intEnv('PEER_RUNS_MEMORY', 2000);
const RUNS_LIBSQL = intEnv('PEER_RUNS_LIBSQL', 200);
const RUNS_100 = intEnv('PEER_RUNS_100', 10);
const CONCURRENT = intEnv('PEER_CONCURRENT', 10000);
const SLEEP_MS = 10;

function intEnv(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function emit(bench, value, unit) {
  process.stdout.write(JSON.stringify({ bench, value, unit }) + '\n');
}

function note(msg) {
  process.stderr.write(`peer: ${msg}\n`);
}

function skip(bench, why) {
  process.stderr.write(`peer: SKIPPED ${bench}: ${why}\n`);
}

// ---------------------------------------------------------------------------------------------
// Loading the packages from the scratch folder, as ES modules (the "import" export condition).

function pkgRoot(name) {
  const root = path.join(MASTRA_DIR, 'node_modules', ...name.split('/'));
  if (!fs.existsSync(path.join(root, 'package.json'))) {
    throw new Error(`${name} is not installed in ${MASTRA_DIR}: run bench/peer/setup.sh first (or set MASTRA_DIR)`);
  }
  return root;
}

function pkgVersion(name) {
  return JSON.parse(fs.readFileSync(path.join(pkgRoot(name), 'package.json'), 'utf8')).version;
}

function pickTarget(entry) {
  if (typeof entry === 'string') return entry;
  if (Array.isArray(entry)) {
    for (const e of entry) {
      const t = pickTarget(e);
      if (t) return t;
    }
    return null;
  }
  if (entry && typeof entry === 'object') {
    for (const cond of ['import', 'node', 'default']) {
      if (cond in entry) {
        const t = pickTarget(entry[cond]);
        if (t) return t;
      }
    }
  }
  return null;
}

async function importPkg(name, subpath = '.') {
  const root = pkgRoot(name);
  const pj = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  let target = null;
  if (pj.exports) {
    const exp = typeof pj.exports === 'string' || Array.isArray(pj.exports) || !Object.keys(pj.exports).some((k) => k.startsWith('.'))
      ? { '.': pj.exports }
      : pj.exports;
    target = pickTarget(exp[subpath]);
  } else if (subpath === '.') {
    target = pj.module || pj.main || 'index.js';
  }
  if (!target) throw new Error(`cannot resolve ${name}${subpath === '.' ? '' : subpath.slice(1)} in ${root}`);
  return import(pathToFileURL(path.join(root, target)).href);
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers.

const nowNs = () => process.hrtime.bigint();
const nsToUs = (ns) => Number(ns) / 1e3;
const nsToMs = (ns) => Number(ns) / 1e6;
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function fileSize(p) {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

function procWchar() {
  try {
    const m = /^wchar:\s*(\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// The workflows, written the way a Mastra user writes them: zod schemas, createStep, .then, .commit.
// Steps carry no `description`: Mastra copies the step graph into every snapshot it writes, so a
// description would only add to Mastra's bytes.

function buildWorkflows({ createWorkflow, createStep, z }) {
  const Num = z.object({ n: z.number().int() });
  const addOne = (id) =>
    createStep({
      id,
      inputSchema: Num,
      outputSchema: Num,
      execute: async ({ inputData }) => ({ n: inputData.n + 1 }),
    });

  let three = createWorkflow({ id: 'linear-3', inputSchema: Num, outputSchema: Num });
  for (let i = 0; i < 3; i++) three = three.then(addOne(`add-${i}`));
  three = three.commit();

  let hundred = createWorkflow({ id: 'linear-100', inputSchema: Num, outputSchema: Num });
  for (let i = 0; i < 100; i++) hundred = hundred.then(addOne(`add-${i}`));
  hundred = hundred.commit();

  const nap = createStep({
    id: 'nap',
    inputSchema: Num,
    outputSchema: Num,
    execute: async ({ inputData }) => {
      await sleep(SLEEP_MS);
      return { n: inputData.n + 1 };
    },
  });
  const sleeper = createWorkflow({ id: 'sleep-10ms', inputSchema: Num, outputSchema: Num }).then(nap).commit();

  return { three, hundred, sleeper };
}

async function runOnce(workflow, n, expected) {
  const run = await workflow.createRun();
  const res = await run.start({ inputData: { n } });
  if (res?.status !== 'success' || res.result?.n !== expected) {
    const detail = res?.status === 'failed' ? String(res.error?.stack || res.error?.message || res.error) : JSON.stringify(res?.result);
    throw new Error(`workflow ${workflow.id} run ${run.runId}: status ${res?.status}, result ${detail}, expected n=${expected}`);
  }
  return res;
}

async function sequentialRuns(workflow, steps, count) {
  const lat = new Array(count);
  const t0 = nowNs();
  for (let i = 0; i < count; i++) {
    const s = nowNs();
    await runOnce(workflow, i, i + steps);
    lat[i] = nowNs() - s;
  }
  const total = nowNs() - t0;
  lat.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { total, lat };
}

function describe(bench, { total, lat }, count, unitFn, unit) {
  note(
    `${bench}: ${count} runs in ${round(nsToMs(total))} ms; p50 ${round(unitFn(percentile(lat, 50)), 2)} ${unit}, ` +
      `p99 ${round(unitFn(percentile(lat, 99)), 2)} ${unit}, max ${round(unitFn(lat[lat.length - 1]), 2)} ${unit}`,
  );
}

// Wraps the workflows store's write methods so every snapshot Mastra hands to storage is counted.
async function instrumentWorkflowsStore(storage) {
  const wf = await storage.getStore('workflows');
  if (!wf) throw new Error('storage has no workflows store');
  const counter = { on: false, calls: {}, logicalBytes: 0, unsized: 0 };
  const bump = (m) => (counter.calls[m] = (counter.calls[m] || 0) + 1);
  const wrap = (method, sizeOf) => {
    if (typeof wf[method] !== 'function') return;
    const orig = wf[method].bind(wf);
    wf[method] = async (args) => {
      if (counter.on) {
        bump(method);
        const size = sizeOf(args);
        if (size === null) counter.unsized++;
        else counter.logicalBytes += size;
      }
      return orig(args);
    };
  };
  // persistWorkflowSnapshot writes the whole snapshot it is given (LibSQL: INSERT ... ON CONFLICT
  // DO UPDATE SET snapshot = jsonb(JSON.stringify(snapshot))).
  wrap('persistWorkflowSnapshot', (a) => Buffer.byteLength(JSON.stringify(a.snapshot)));
  // The read-modify-write paths: the stored size is not known here; they are counted and reported.
  wrap('updateWorkflowResults', () => null);
  wrap('updateWorkflowState', () => null);
  return counter;
}

// ---------------------------------------------------------------------------------------------
// Shapes.

async function loadMastra() {
  const [workflows, mastraMod, storageMod, zodMod] = await Promise.all([
    importPkg('@mastra/core', './workflows'),
    importPkg('@mastra/core', './mastra'),
    importPkg('@mastra/core', './storage'),
    importPkg('zod'),
  ]);
  const z = zodMod.z ?? zodMod.default ?? zodMod;
  return {
    createWorkflow: workflows.createWorkflow,
    createStep: workflows.createStep,
    Mastra: mastraMod.Mastra,
    InMemoryStore: storageMod.InMemoryStore,
    z,
  };
}

async function loadLibSQL() {
  const mod = await importPkg('@mastra/libsql');
  if (typeof mod.LibSQLStore !== 'function') throw new Error('@mastra/libsql does not export LibSQLStore');
  return mod.LibSQLStore;
}

function newMastra(M, storage) {
  const wfs = buildWorkflows(M);
  const mastra = new M.Mastra({
    workflows: { three: wfs.three, hundred: wfs.hundred, sleeper: wfs.sleeper },
    storage,
    logger: false,
  });
  return {
    mastra,
    three: mastra.getWorkflow('three'),
    hundred: mastra.getWorkflow('hundred'),
    sleeper: mastra.getWorkflow('sleeper'),
  };
}

async function shapeMemory3(M) {
  const bench = 'mastra.memory.3step';
  const { three } = newMastra(M, new M.InMemoryStore());
  await sequentialRuns(three, 3, Math.min(500, RUNS_MEMORY)); // warm-up (JIT, lazy init)
  const r = await sequentialRuns(three, 3, RUNS_MEMORY);
  describe(bench, r, RUNS_MEMORY, nsToUs, 'µs');
  emit(bench, round(nsToUs(r.total) / RUNS_MEMORY), 'us');
}

function dbFiles(dir, name) {
  const db = path.join(dir, name);
  return { db, wal: `${db}-wal`, url: `file:${db}` };
}

async function shapesLibSQL(M, LibSQLStore, dbDir, want) {
  const files = dbFiles(dbDir, 'mastra.db');
  const store = new LibSQLStore({ id: 'miyabi-peer', url: files.url });
  const { three, hundred } = newMastra(M, store);

  if (want('libsql.3step')) {
    const bench = 'mastra.libsql.3step';
    await sequentialRuns(three, 3, Math.min(50, RUNS_LIBSQL)); // warm-up: creates the tables, JIT
    const r = await sequentialRuns(three, 3, RUNS_LIBSQL);
    describe(bench, r, RUNS_LIBSQL, nsToUs, 'µs');
    emit(bench, round(nsToUs(r.total) / RUNS_LIBSQL), 'us');
  }

  if (want('libsql.100step')) {
    const bench = 'mastra.libsql.100step';
    await sequentialRuns(hundred, 100, 2); // warm-up
    const r = await sequentialRuns(hundred, 100, RUNS_100);
    describe(bench, r, RUNS_100, nsToMs, 'ms');
    emit(bench, round(nsToMs(r.total) / RUNS_100, 2), 'ms');
  }

  if (want('libsql.100step.bytes')) await shapeBytes(M, LibSQLStore, dbDir);
  store.client?.close?.();
}

async function pragma(client, sql) {
  const r = await client.execute(sql);
  const row = r.rows?.[0];
  return row ? row[0] : undefined;
}

// Bytes for ONE 100-step run, on a fresh file (so the run is alone in its WAL), measured on two runs:
//  A. Mastra's own settings (WAL, synchronous=NORMAL, wal_autocheckpoint 1000 pages): the JSON size of
//     every snapshot handed to storage (.logical) and the bytes the process passed to write(2) during
//     the run, WAL appends and checkpoint copies included (.io).
//  B. The same with automatic checkpoints off for that run only, after a WAL truncate: then every page
//     the run commits is appended to the WAL and none is moved, so db + WAL growth is what the run
//     wrote to the database files (.file). With checkpoints on, the WAL restarts from its beginning
//     once past 1000 pages and its size stops telling anything.
async function shapeBytes(M, LibSQLStore, dbDir) {
  const files = dbFiles(dbDir, 'mastra-bytes.db');
  const store = new LibSQLStore({ id: 'miyabi-peer-bytes', url: files.url });
  const { hundred } = newMastra(M, store);
  const counter = await instrumentWorkflowsStore(store);
  const client = store.client;
  await runOnce(hundred, 0, 100); // warm-up: tables, pages, JIT
  await sleep(50);

  // A
  const w0 = procWchar();
  counter.on = true;
  await runOnce(hundred, 1000, 1100);
  await sleep(50); // let any write Mastra does after start() resolves land before reading
  counter.on = false;
  const w1 = procWchar();
  note(`bytes: storage writes during one 100-step run: ${JSON.stringify(counter.calls)}`);
  if (counter.unsized > 0) {
    skip(
      'mastra.libsql.100step.bytes.logical',
      `${counter.unsized} writes went through updateWorkflowResults/updateWorkflowState, whose stored size this script cannot see`,
    );
  } else if (!counter.calls.persistWorkflowSnapshot) {
    skip('mastra.libsql.100step.bytes.logical', 'no persistWorkflowSnapshot call was seen during the run');
  } else {
    emit('mastra.libsql.100step.bytes.logical', counter.logicalBytes, 'bytes');
  }
  if (w0 === null || w1 === null) skip('mastra.libsql.100step.bytes.io', '/proc/self/io is not readable here');
  else emit('mastra.libsql.100step.bytes.io', w1 - w0, 'bytes');

  // B
  if (!client?.execute) {
    skip('mastra.libsql.100step.bytes.file', 'LibSQLStore exposes no client to truncate the WAL with');
  } else {
    const ckpt = await client.execute('PRAGMA wal_checkpoint(TRUNCATE)');
    const busy = Number(ckpt.rows?.[0]?.[0] ?? 1);
    const autoBefore = await pragma(client, 'PRAGMA wal_autocheckpoint');
    await pragma(client, 'PRAGMA wal_autocheckpoint = 0');
    const pageSize = Number(await pragma(client, 'PRAGMA page_size'));
    const db0 = fileSize(files.db);
    const wal0 = fileSize(files.wal);
    await runOnce(hundred, 2000, 2100);
    await sleep(50);
    const db1 = fileSize(files.db);
    const wal1 = fileSize(files.wal);
    // @libsql/client opens a new connection after a transaction, which would bring the default back.
    const autoAfter = Number(await pragma(client, 'PRAGMA wal_autocheckpoint'));
    await pragma(client, `PRAGMA wal_autocheckpoint = ${Number(autoBefore) || 1000}`);
    const frameBytes = pageSize + 24;
    note(
      `bytes: checkpoints off: db ${db0} -> ${db1} B, wal ${wal0} -> ${wal1} B ` +
        `(${Math.round((wal1 - 32) / frameBytes)} frames of ${pageSize} B pages; Mastra's wal_autocheckpoint was ${autoBefore})`,
    );
    if (busy !== 0 || wal0 !== 0) skip('mastra.libsql.100step.bytes.file', `the WAL could not be truncated before the run (busy=${busy}, size ${wal0})`);
    else if (autoAfter !== 0) skip('mastra.libsql.100step.bytes.file', 'automatic checkpoints came back on during the run (new connection), WAL growth would undercount');
    else emit('mastra.libsql.100step.bytes.file', db1 - db0 + (wal1 - wal0), 'bytes');
  }
  client?.close?.();
}

// Runs in a fresh child process so the RSS figure is that shape's alone.
async function shapeConcurrent(M, kind, dbDir) {
  const bench = `mastra.${kind}.10k_concurrent_sleep`;
  let storage;
  if (kind === 'memory') storage = new M.InMemoryStore();
  else {
    const LibSQLStore = await loadLibSQL();
    storage = new LibSQLStore({ id: 'miyabi-peer-concurrent', url: dbFiles(dbDir, 'mastra-concurrent.db').url });
  }
  const { sleeper } = newMastra(M, storage);
  // warm-up: a few concurrent runs (JIT, lazy storage init)
  await Promise.all(Array.from({ length: 100 }, (_, i) => runOnce(sleeper, i, i + 1)));
  if (global.gc) global.gc();
  const rssBefore = process.memoryUsage.rss();
  let peak = rssBefore;
  const sampler = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  }, 5);
  const t0 = nowNs();
  const results = await Promise.allSettled(
    Array.from({ length: CONCURRENT }, (_, i) => runOnce(sleeper, i, i + 1)),
  );
  const wall = nowNs() - t0;
  clearInterval(sampler);
  const after = process.memoryUsage.rss();
  if (after > peak) peak = after;
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) {
    skip(bench, `${failed.length} of ${CONCURRENT} runs failed, first: ${failed[0].reason?.message ?? failed[0].reason}`);
    return;
  }
  const maxRssMb = process.resourceUsage().maxRSS / 1024; // KiB -> MiB, kernel-tracked peak of this process
  note(
    `${bench}: ${CONCURRENT} runs in ${round(nsToMs(wall))} ms; RSS before ${round(rssBefore / 2 ** 20)} MB, ` +
      `sampled peak ${round(peak / 2 ** 20)} MB, process maxRSS ${round(maxRssMb)} MB`,
  );
  emit(bench, round(nsToMs(wall)), 'ms');
  emit(`${bench}.rss`, round(Math.max(maxRssMb, peak / 2 ** 20)), 'MB');
  storage.client?.close?.();
}

function runChild(kind, dbDir) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SCRIPT, `--child=concurrent:${kind}`], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, PEER_DB_DIR: dbDir },
    });
    child.on('exit', (code, signal) => {
      if (code !== 0) skip(`mastra.${kind}.10k_concurrent_sleep`, `child process exited with ${signal ?? code}`);
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const childArg = process.argv.find((a) => a.startsWith('--child='));
  const ownDbDir = !process.env.PEER_DB_DIR;
  const dbDir = process.env.PEER_DB_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'miyabi-peer-db-'));
  fs.mkdirSync(dbDir, { recursive: true });

  if (childArg) {
    const [, kind] = childArg.slice('--child='.length).split(':');
    const M = await loadMastra();
    await shapeConcurrent(M, kind, dbDir);
    return;
  }

  const only = (process.env.PEER_ONLY || '').split(',').map((s) => s.trim()).filter(Boolean);
  const want = (name) => only.length === 0 || only.some((o) => name === o || name.startsWith(o + '.') || o === name.split('.')[0]);

  try {
    emit('mastra.version', pkgVersion('@mastra/core'), 'version');
    emit('mastra.libsql_version', pkgVersion('@mastra/libsql'), 'version');
    emit('mastra.node_version', process.versions.node, 'version');
    note(`@mastra/core ${pkgVersion('@mastra/core')}, @mastra/libsql ${pkgVersion('@mastra/libsql')}, zod ${pkgVersion('zod')}, node ${process.versions.node}, from ${MASTRA_DIR}, db files in ${dbDir}`);

    const M = await loadMastra();
    if (want('memory.3step')) await shapeMemory3(M);

    if (want('libsql.3step') || want('libsql.100step') || want('libsql.100step.bytes')) {
      let LibSQLStore = null;
      try {
        LibSQLStore = await loadLibSQL();
      } catch (e) {
        for (const b of ['libsql.3step', 'libsql.100step', 'libsql.100step.bytes']) if (want(b)) skip(`mastra.${b}`, e.message);
      }
      if (LibSQLStore) await shapesLibSQL(M, LibSQLStore, dbDir, want);
    }

    if (want('memory.10k_concurrent_sleep')) await runChild('memory', dbDir);
    if (want('libsql.10k_concurrent_sleep')) await runChild('libsql', dbDir);
  } finally {
    if (ownDbDir) fs.rmSync(dbDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0), // LibSQL clients and Mastra timers may keep the loop alive
  (e) => {
    process.stderr.write(`peer: error: ${e?.stack || e}\n`);
    process.exit(1);
  },
);
