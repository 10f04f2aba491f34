// Evals side by side: the same cases and the same three deterministic metrics (exact match,
// contains, Levenshtein similarity) run by Mastra's `runEvals` (its target must be an agent or a
// workflow: a one-step workflow that answers at once) and by @miyabi/core's `evaluate()` (with a
// function target, and with a one-step Miyabi workflow on an in-memory engine as the target, the
// shape closest to Mastra's). Both at concurrency 8. Wall time of the whole evaluation, best of
// three; every result is checked (the means must be the known values) so a broken run cannot
// pass for a fast one.
//
//   bash bench/peer/setup.sh && npm run build && node bench/peer/mastra-evals.mjs
//
// Environment: MASTRA_DIR (default /tmp/miyabi-peer), EVAL_CASES (default 1000).
// One JSON line per figure on stdout: {"bench", "value", "unit"}.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

process.env.MASTRA_TELEMETRY_DISABLED ??= '1';
const MASTRA_DIR = path.resolve(process.env.MASTRA_DIR || process.env.MASTRA_SCRATCH || '/tmp/miyabi-peer');
const N = Number(process.env.EVAL_CASES || 1000);
const CONCURRENCY = 8;

async function importFrom(name, subpath) {
  const root = path.join(MASTRA_DIR, 'node_modules', ...name.split('/'));
  const pj = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  let entry = pj.exports[subpath];
  while (entry && typeof entry === 'object') entry = entry.import ?? entry.default ?? entry.node;
  if (typeof entry !== 'string') throw new Error(`cannot resolve ${name}${subpath.slice(1)} in ${root}`);
  return import(pathToFileURL(path.join(root, entry)).href);
}

function levenshtein(a, b) {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}
const similarity = (a, b) => (a.length === 0 && b.length === 0 ? 1 : 1 - levenshtein(a, b) / Math.max(a.length, b.length));

const answer = (q) => (Number(q.split(' ').pop()) % 3 === 0 ? 'yes' : 'no');
const cases = Array.from({ length: N }, (_, i) => ({ id: `c${i}`, input: `question ${i}`, expected: i % 2 === 0 ? 'yes' : 'no' }));
// Known means: exact = share of cases where answer == expected.
const exactMean = cases.filter((c) => answer(c.input) === c.expected).length / N;
const containsMean = cases.filter((c) => answer(c.input).includes('yes')).length / N;

async function best(label, f) {
  let bestMs = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = process.hrtime.bigint();
    await f();
    bestMs = Math.min(bestMs, Number(process.hrtime.bigint() - t) / 1e6);
  }
  console.log(JSON.stringify({ bench: label, value: Math.round(bestMs * 10) / 10, unit: 'ms' }));
  return bestMs;
}

const close = (a, b) => Math.abs(a - b) < 1e-9;

// --- Mastra ---------------------------------------------------------------------------------
const { createWorkflow, createStep } = await importFrom('@mastra/core', './workflows');
const { createScorer, runEvals } = await importFrom('@mastra/core', './evals');
const { z } = await import(pathToFileURL(path.join(MASTRA_DIR, 'node_modules', 'zod', 'index.js')).href);
const Q = z.object({ q: z.string() });
const A = z.object({ answer: z.string() });
const mastraWf = createWorkflow({ id: 'answer', inputSchema: Q, outputSchema: A })
  .then(createStep({ id: 'answer', inputSchema: Q, outputSchema: A, execute: async ({ inputData }) => ({ answer: answer(inputData.q) }) }))
  .commit();
const out = (run) => String(run.output?.answer ?? run.output?.result?.answer ?? '');
const mastraScorers = [
  createScorer({ id: 'exact', description: 'exact match' }).generateScore(({ run }) => (out(run) === run.groundTruth ? 1 : 0)),
  createScorer({ id: 'contains', description: 'contains yes' }).generateScore(({ run }) => (out(run).toLowerCase().includes('yes') ? 1 : 0)),
  createScorer({ id: 'levenshtein', description: 'similarity' }).generateScore(({ run }) => similarity(out(run), String(run.groundTruth))),
];
const mastraMs = await best(`evals.mastra.runEvals.workflow.${N}`, async () => {
  const r = await runEvals({
    target: mastraWf,
    data: cases.map((c) => ({ input: { q: c.input }, groundTruth: c.expected })),
    scorers: mastraScorers,
    concurrency: CONCURRENCY,
  });
  if (!close(r.scores.exact, exactMean) || !close(r.scores.contains, containsMean)) {
    throw new Error(`mastra: unexpected scores ${JSON.stringify(r.scores)} (want exact ${exactMean}, contains ${containsMean})`);
  }
});

// --- Miyabi ---------------------------------------------------------------------------------
const { evaluate, Engine, workflow } = await import(new URL('../../dist/esm/index.js', import.meta.url).href);
const metrics = {
  exact: ({ case: c, output }) => output === c.expected,
  contains: ({ output }) => output.toLowerCase().includes('yes'),
  levenshtein: ({ case: c, output }) => similarity(output, c.expected),
};
const check = (r, who) => {
  const m = Object.fromEntries(r.metrics.map((x) => [x.name, x.mean]));
  if (!close(m.exact, exactMean) || !close(m.contains, containsMean) || r.samples.length !== N) {
    throw new Error(`${who}: unexpected means ${JSON.stringify(m)}`);
  }
};
const fnMs = await best(`evals.miyabi.evaluate.function.${N}`, async () => {
  check(await evaluate({ data: cases, target: async (q) => answer(q), metrics, concurrency: CONCURRENCY }), 'miyabi function');
});
const engine = Engine.openSync({ store: 'memory' });
const miyabiWf = workflow('answer').step('answer', ({ input }) => answer(input)).commit();
const wfMs = await best(`evals.miyabi.evaluate.workflow.${N}`, async () => {
  const target = async (q) => {
    const run = await engine.start(miyabiWf, q);
    if (run.status !== 'succeeded') throw new Error(`run ${run.id}: ${run.status}`);
    return run.output;
  };
  check(await evaluate({ data: cases, target, metrics, concurrency: CONCURRENCY }), 'miyabi workflow');
});
console.log(JSON.stringify({ bench: `evals.ratio.mastra_over_miyabi_workflow.${N}`, value: Math.round((mastraMs / wfMs) * 10) / 10, unit: 'x' }));
console.log(JSON.stringify({ bench: `evals.ratio.mastra_over_miyabi_function.${N}`, value: Math.round((mastraMs / fnMs) * 10) / 10, unit: 'x' }));
await engine.close?.();
process.stderr.write(`node ${process.version}; @mastra/core ${JSON.parse(fs.readFileSync(path.join(MASTRA_DIR, 'node_modules/@mastra/core/package.json'), 'utf8')).version}; ${N} cases, concurrency ${CONCURRENCY}\n`);
