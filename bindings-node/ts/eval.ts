/**
 * `evaluate()`: run a target (a function or an `Agent`) over cases, score every output with
 * metrics written as JS functions, and summarise with the statistics of `miyabi::eval` (mean,
 * standard error, 95% CLT and bootstrap intervals, pass rate with a Wilson interval) and
 * gates. The results are a `miyabi.eval/v1` document — the same JSON the Rust evaluator and
 * `miyabi eval run` write — so `miyabi eval compare a.json b.json` compares runs made from JS
 * and from Rust alike.
 *
 * ```ts
 * import { evaluate, metrics } from '@miyabi/core';
 * const results = await evaluate({
 *   data: [{ id: '1', input: 'ship it', expected: 'deploy' }],
 *   target: async (input) => (String(input).includes('ship') ? 'deploy' : 'wait'),
 *   metrics: { exact: metrics.exact(), short: ({ output }) => (String(output).length < 20 ? 1 : 0) },
 *   gates: { exact: { passRate: 0.9 } },
 * });
 * ```
 */
import { type EmbeddingModelLike, nativeEmbeddingModel } from './embed.js';
import { MiyabiError } from './errors.js';
import { type ModelLike, nativeModel } from './model.js';
import { addon, type NativeMetric } from './native.js';
import { single } from './result.js';
import { type Workflow, workflow as workflowBuilder } from './workflow.js';
import type { SchemaLike } from './schema.js';
import { parse } from './schema.js';

/** One case. */
export interface EvalCase<I = unknown, E = unknown> {
  /** Unique within the data. */
  readonly id: string;
  /** What the target is given. */
  readonly input: I;
  /** The reference output. */
  readonly expected?: E;
  /** Context (retrieved documents, ...). */
  readonly context?: unknown;
  /** Free metadata. */
  readonly metadata?: Record<string, unknown>;
  /** Tags. */
  readonly tags?: ReadonlyArray<string>;
  /**
   * The cluster, for clustered standard errors: cases of one cluster (several questions about
   * one document, one user's conversations) are not independent, and `clustered_std_error`
   * accounts for that (CR1; a case without a cluster is its own).
   */
  readonly cluster?: string;
}

/** What the target did, when it is an agent: tool calls, turns, tokens, cost. */
export interface EvalTrace {
  readonly tool_calls: ReadonlyArray<{ readonly id: string; readonly name: string; readonly arguments: unknown }>;
  readonly turns: number;
  readonly usage?: { readonly input_tokens: number; readonly output_tokens: number };
  readonly cost_usd?: number;
  readonly stop?: string;
}

/** What a metric sees. */
export interface EvalSample<I = unknown, O = unknown, E = unknown> {
  readonly case: EvalCase<I, E>;
  readonly output: O;
  readonly epoch: number;
  readonly latencyMs: number;
  readonly trace?: EvalTrace;
  /** The name the metric was added under. */
  readonly metric: string;
}

/**
 * What a metric returns: a score in [0, 1] (a number, or with a reason and metadata), or
 * `{ unscored: reason }` when it cannot score the sample. An unscored sample is never 0: it is
 * left out of the statistics and counted apart. A score outside [0, 1], NaN, or a metric that
 * throws makes the sample unscored with the reason.
 */
export type MetricResult =
  | number
  | boolean
  | { readonly score: number; readonly reason?: string; readonly metadata?: Record<string, unknown> }
  | { readonly unscored: string };

/** A metric: a JS function of the sample. */
export type MetricFn<I = unknown, O = unknown, E = unknown> = (
  sample: EvalSample<I, O, E>,
) => MetricResult | Promise<MetricResult>;

/** A metric with its weight (in the overall score) and per-sample pass threshold. */
export interface MetricSpec<I = unknown, O = unknown, E = unknown> {
  readonly score: MetricFn<I, O, E>;
  /** Weight in the overall score (> 0; default 1). */
  readonly weight?: number;
  /** A sample passes when its score is at least this (default 0.5). */
  readonly threshold?: number;
}

/** Something with `generate(input)` returning an agent result (an `Agent`). */
export interface AgentLike<I = unknown> {
  generate(input: I): Promise<{
    readonly text: string;
    readonly object?: unknown;
    readonly toolCalls: ReadonlyArray<{ readonly toolCallId: string; readonly toolName: string; readonly input: unknown }>;
    readonly steps: ReadonlyArray<unknown>;
    readonly usage: { readonly inputTokens: number; readonly outputTokens: number };
    readonly costUsd: number | null;
    readonly stopReason?: string;
  }>;
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions<I = unknown, O = unknown, E = unknown> {
  /** A name for the evaluation (default `eval`). */
  readonly name?: string;
  /** The dataset's name (default `data`). */
  readonly dataset?: string;
  /** The cases. */
  readonly data: ReadonlyArray<EvalCase<I, E>>;
  /** Validates every case's input first (zod or any Standard Schema); a bad case is refused, naming its id. */
  readonly input?: SchemaLike<unknown, I>;
  /** A function of the input, or an agent. A throw is an error sample, never a 0. */
  readonly target: ((input: I) => O | Promise<O>) | AgentLike<I>;
  /** Metrics by name. */
  readonly metrics: Record<string, MetricFn<I, O, E> | MetricSpec<I, O, E>>;
  /** Gates: a metric's minimum mean and/or pass rate. */
  readonly gates?: Record<string, { readonly mean?: number; readonly passRate?: number }>;
  /** Repeats per case (default 1). */
  readonly epochs?: number;
  /** Samples run at once (default 8). */
  readonly concurrency?: number;
  /** Bootstrap resamples (default 2000; 0 turns it off) and seed. */
  readonly bootstrap?: { readonly resamples?: number; readonly seed?: number };
  /** Called after every sample. */
  readonly onProgress?: (p: { done: number; total: number; errors: number }) => void;
}

/** A 95% interval. */
export interface Interval {
  readonly low: number;
  readonly high: number;
}

/** One metric's outcome on one sample (`value: null` when unscored). */
export interface SampleScore {
  readonly value: number | null;
  readonly passed: boolean | null;
  readonly reason?: string;
  readonly metadata?: Record<string, unknown>;
  readonly unscored?: string;
}

/** One case × epoch. */
export interface SampleResult {
  readonly case_id: string;
  readonly epoch: number;
  readonly cluster?: string;
  readonly tags?: ReadonlyArray<string>;
  readonly latency_ms: number;
  readonly output?: unknown;
  readonly error?: string;
  readonly trace?: EvalTrace;
  readonly scores: Record<string, SampleScore>;
}

/** A metric's statistics over the cases (each case's score is its mean over epochs). */
export interface MetricSummary {
  readonly name: string;
  readonly weight: number;
  readonly pass_threshold: number;
  readonly scored: number;
  readonly unscored: number;
  readonly errored: number;
  readonly cases: number;
  readonly mean: number | null;
  readonly std_error: number | null;
  readonly ci_clt: Interval | null;
  readonly ci_bootstrap: Interval | null;
  readonly clustered_std_error: number | null;
  readonly clusters: number | null;
  readonly passes: number;
  readonly pass_rate: number | null;
  readonly pass_rate_ci: Interval | null;
}

/** The results: a `miyabi.eval/v1` document (see docs/evals.md). */
export interface EvalResults {
  readonly schema: 'miyabi.eval/v1';
  readonly name: string;
  readonly dataset: string;
  readonly started_at_ms: number;
  readonly duration_ms: number;
  readonly epochs: number;
  readonly cases: number;
  readonly errors: number;
  readonly metrics: ReadonlyArray<MetricSummary>;
  readonly overall: MetricSummary | null;
  readonly gates: ReadonlyArray<{
    readonly metric: string;
    readonly gate: { readonly kind: 'min_mean' | 'min_pass_rate'; readonly min: number };
    readonly actual: number | null;
    readonly passed: boolean;
  }>;
  readonly passed: boolean;
  readonly samples: ReadonlyArray<SampleResult>;
}

const Z95 = 1.959963984540054;

function mean(xs: number[]): number | null {
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

function stdError(xs: number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs) as number;
  const ss = xs.reduce((a, x) => a + (x - m) * (x - m), 0);
  return Math.sqrt(ss / (xs.length - 1)) / Math.sqrt(xs.length);
}

function quantile(sorted: number[], q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** A small seeded generator (mulberry32), so bootstrap intervals are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function bootstrap(xs: number[], resamples: number, seed: number): Interval | null {
  if (xs.length < 2 || resamples === 0) return null;
  const next = rng(seed);
  const means: number[] = new Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < xs.length; i++) s += xs[Math.floor(next() * xs.length)]!;
    means[r] = s / xs.length;
  }
  means.sort((a, b) => a - b);
  return { low: quantile(means, 0.025), high: quantile(means, 0.975) };
}

function wilson(k: number, n: number): Interval | null {
  if (n === 0) return null;
  const p = k / n;
  const z2 = Z95 * Z95;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (Z95 * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

function toScore(r: MetricResult, threshold: number): SampleScore {
  const bad = (why: string): SampleScore => ({ value: null, passed: null, unscored: why });
  let value: number;
  let reason: string | undefined;
  let metadata: Record<string, unknown> | undefined;
  if (typeof r === 'boolean') value = r ? 1 : 0;
  else if (typeof r === 'number') value = r;
  else if (r !== null && typeof r === 'object' && 'unscored' in r) return bad(String(r.unscored));
  else if (r !== null && typeof r === 'object' && 'score' in r) {
    value = r.score;
    reason = r.reason;
    metadata = r.metadata;
  } else return bad(`the metric returned ${JSON.stringify(r)}, not a score`);
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    return bad(`invalid score ${value}: a score is a finite number in [0, 1]`);
  }
  return {
    value,
    passed: value >= threshold,
    ...(reason !== undefined ? { reason } : {}),
    ...(metadata !== undefined ? { metadata } : {}),
  };
}

function isAgent<I>(t: unknown): t is AgentLike<I> {
  return typeof t === 'object' && t !== null && typeof (t as AgentLike<I>).generate === 'function';
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The cluster-robust (CR1) standard error of the mean: residuals summed per cluster,
 * `√(G/(G−1) · Σ_g S_g²) / n` over G clusters; null with fewer than two clusters.
 */
function clusteredStdError(xs: number[], clusters: string[]): number | null {
  const m = mean(xs);
  if (m === null || xs.length !== clusters.length) return null;
  const sums = new Map<string, number>();
  xs.forEach((x, i) => {
    const c = clusters[i] as string;
    sums.set(c, (sums.get(c) ?? 0) + (x - m));
  });
  const g = sums.size;
  if (g < 2) return null;
  let ss = 0;
  for (const s of sums.values()) ss += s * s;
  return Math.sqrt((g / (g - 1)) * ss) / xs.length;
}

function summarize(samples: SampleResult[], name: string, weight: number, threshold: number, resamples: number, seed: number): MetricSummary {
  let scored = 0;
  let unscored = 0;
  let errored = 0;
  const acc = new Map<string, { sum: number; n: number; cluster: string | undefined }>();
  for (const s of samples) {
    if (s.error !== undefined) {
      errored++;
      continue;
    }
    const v = s.scores[name]?.value;
    if (v === null || v === undefined) {
      unscored++;
      continue;
    }
    scored++;
    const e = acc.get(s.case_id) ?? { sum: 0, n: 0, cluster: s.cluster };
    e.sum += v;
    e.n++;
    acc.set(s.case_id, e);
  }
  const values = [...acc.values()].map((e) => e.sum / e.n);
  const m = mean(values);
  const se = stdError(values);
  // Clustered only when some case names a cluster (as the Rust evaluator does).
  const anyCluster = [...acc.values()].some((e) => e.cluster !== undefined);
  const clusterOf = [...acc.entries()].map(([id, e]) => e.cluster ?? id);
  const passes = values.filter((v) => v >= threshold).length;
  return {
    name,
    weight,
    pass_threshold: threshold,
    scored,
    unscored,
    errored,
    cases: values.length,
    mean: m,
    std_error: se,
    ci_clt: m !== null && se !== null ? { low: m - Z95 * se, high: m + Z95 * se } : null,
    ci_bootstrap: bootstrap(values, resamples, seed),
    clustered_std_error: anyCluster ? clusteredStdError(values, clusterOf) : null,
    clusters: anyCluster ? new Set(clusterOf).size : null,
    passes,
    pass_rate: values.length ? passes / values.length : null,
    pass_rate_ci: wilson(passes, values.length),
  };
}

/** A checked configuration: metrics, repeats, concurrency, bootstrap. */
interface Prepared<I, O, E> {
  readonly entries: ReadonlyArray<{ readonly name: string; readonly score: MetricFn<I, O, E>; readonly weight: number; readonly threshold: number }>;
  readonly epochs: number;
  readonly concurrency: number;
  readonly resamples: number;
  readonly seed: number;
}

function prepare<I, O, E>(options: EvaluateOptions<I, O, E>, what: string): Prepared<I, O, E> {
  const epochs = options.epochs ?? 1;
  const concurrency = options.concurrency ?? 8;
  if (!Number.isInteger(epochs) || epochs < 1) throw new TypeError(`${what}: epochs must be an integer ≥ 1, got ${epochs}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`${what}: concurrency must be an integer ≥ 1, got ${concurrency}`);
  const entries = Object.entries(options.metrics).map(([name, m]) => {
    const spec: MetricSpec<I, O, E> = typeof m === 'function' ? { score: m } : m;
    const weight = spec.weight ?? 1;
    const threshold = spec.threshold ?? 0.5;
    if (typeof spec.score !== 'function') throw new TypeError(`${what}: metric "${name}" has no score function`);
    if (!(Number.isFinite(weight) && weight > 0)) throw new TypeError(`${what}: weight ${weight} of "${name}" must be finite and > 0`);
    if (!(threshold >= 0 && threshold <= 1)) throw new TypeError(`${what}: threshold ${threshold} of "${name}" must be in [0, 1]`);
    return { name, score: spec.score, weight, threshold };
  });
  if (entries.length === 0) throw new TypeError(`${what}: no metric`);
  for (const gate of Object.keys(options.gates ?? {})) {
    if (!entries.some((e) => e.name === gate)) throw new TypeError(`${what}: a gate on "${gate}", which is not a metric`);
  }
  return { entries, epochs, concurrency, resamples: options.bootstrap?.resamples ?? 2000, seed: options.bootstrap?.seed ?? 0x6d697961 };
}

/** The cases, ids checked and inputs parsed with the `input` schema. */
async function checkedCases<I, O, E>(options: EvaluateOptions<I, O, E>, what: string): Promise<EvalCase<I, E>[]> {
  const ids = new Set<string>();
  const cases: EvalCase<I, E>[] = [];
  for (const c of options.data) {
    if (typeof c.id !== 'string' || c.id === '') throw new TypeError(`${what}: a case without an id: ${JSON.stringify(c)}`);
    if (ids.has(c.id)) throw new TypeError(`${what}: duplicate case id "${c.id}"`);
    ids.add(c.id);
    cases.push(options.input ? { ...c, input: await parse(options.input, c.input, `case "${c.id}" input`) } : c);
  }
  return cases;
}

/** Runs the target on one case × epoch and scores the output with every metric. */
async function runSample<I, O, E>(options: EvaluateOptions<I, O, E>, p: Prepared<I, O, E>, c: EvalCase<I, E>, epoch: number): Promise<SampleResult> {
  const base = {
    case_id: c.id,
    epoch,
    ...(c.cluster !== undefined ? { cluster: c.cluster } : {}),
    ...(c.tags && c.tags.length ? { tags: [...c.tags] } : {}),
  };
  const start = performance.now();
  let output: O;
  let trace: EvalTrace | undefined;
  try {
    if (isAgent<I>(options.target)) {
      const r = await options.target.generate(c.input);
      output = (r.object !== undefined && r.object !== null ? r.object : r.text) as O;
      trace = {
        tool_calls: r.toolCalls.map((t) => ({ id: t.toolCallId, name: t.toolName, arguments: t.input })),
        turns: r.steps.length,
        usage: { input_tokens: r.usage.inputTokens, output_tokens: r.usage.outputTokens },
        ...(r.costUsd !== null ? { cost_usd: r.costUsd } : {}),
        ...(r.stopReason ? { stop: r.stopReason } : {}),
      };
    } else {
      output = await (options.target as (input: I) => O | Promise<O>)(c.input);
    }
  } catch (e) {
    return { ...base, latency_ms: performance.now() - start, error: message(e), scores: {} };
  }
  const latencyMs = performance.now() - start;
  const scores: Record<string, SampleScore> = {};
  let wsum = 0;
  let wtot = 0;
  await Promise.all(
    p.entries.map(async (m) => {
      let s: SampleScore;
      try {
        const sample: EvalSample<I, O, E> = { case: c, output, epoch, latencyMs, metric: m.name, ...(trace ? { trace } : {}) };
        s = toScore(await m.score(sample), m.threshold);
      } catch (e) {
        s = { value: null, passed: null, unscored: `metric "${m.name}" threw on case "${c.id}": ${message(e)}` };
      }
      scores[m.name] = s;
    }),
  );
  for (const m of p.entries) {
    const v = scores[m.name]!.value;
    if (v !== null) {
      wsum += m.weight * v;
      wtot += m.weight;
    }
  }
  scores.overall = wtot > 0
    ? toScore({ score: Math.min(1, Math.max(0, wsum / wtot)), reason: 'weighted mean of the scored metrics' }, 0.5)
    : { value: null, passed: null, unscored: 'no metric scored this sample' };
  return { ...base, latency_ms: latencyMs, output, ...(trace ? { trace } : {}), scores };
}

/** The `miyabi.eval/v1` document of the samples (in job order). */
function assemble<I, O, E>(
  options: EvaluateOptions<I, O, E>,
  p: Prepared<I, O, E>,
  results: SampleResult[],
  meta: { readonly cases: number; readonly startedAt: number; readonly durationMs: number },
): EvalResults {
  const metrics = p.entries.map((e) => summarize(results, e.name, e.weight, e.threshold, p.resamples, p.seed));
  const gates: Array<EvalResults['gates'][number]> = [];
  for (const [metric, g] of Object.entries(options.gates ?? {})) {
    const s = metrics.find((m) => m.name === metric)!;
    if (g.mean !== undefined) gates.push({ metric, gate: { kind: 'min_mean', min: g.mean }, actual: s.mean, passed: s.mean !== null && s.mean >= g.mean });
    if (g.passRate !== undefined) {
      gates.push({ metric, gate: { kind: 'min_pass_rate', min: g.passRate }, actual: s.pass_rate, passed: s.pass_rate !== null && s.pass_rate >= g.passRate });
    }
  }
  return {
    schema: 'miyabi.eval/v1',
    name: options.name ?? 'eval',
    dataset: options.dataset ?? 'data',
    started_at_ms: meta.startedAt,
    duration_ms: meta.durationMs,
    epochs: p.epochs,
    cases: meta.cases,
    errors: results.filter((s) => s.error !== undefined).length,
    metrics,
    overall: summarize(results, 'overall', 1, 0.5, p.resamples, p.seed),
    gates,
    passed: gates.every((g) => g.passed),
    samples: results,
  };
}

/**
 * Runs `target` on every case × epoch (at most `concurrency` at once), scores each output
 * with every metric, and returns a `miyabi.eval/v1` results document. Throws (a `TypeError`
 * naming what is wrong) on a configuration mistake or an input the `input` schema refuses;
 * a target that throws is an error sample, a metric that throws an unscored one. For an
 * evaluation that survives a crash, see {@link durableEvaluation}.
 */
export async function evaluate<I = unknown, O = unknown, E = unknown>(
  options: EvaluateOptions<I, O, E>,
): Promise<EvalResults> {
  const p = prepare(options, 'evaluate');
  const cases = await checkedCases(options, 'evaluate');
  const started = Date.now();
  const t0 = performance.now();
  const jobs: Array<[number, number]> = [];
  cases.forEach((_, i) => {
    for (let e = 0; e < p.epochs; e++) jobs.push([i, e]);
  });
  const results: SampleResult[] = new Array(jobs.length);
  let done = 0;
  let errors = 0;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const j = next++;
      if (j >= jobs.length) return;
      const [i, epoch] = jobs[j]!;
      results[j] = await runSample(options, p, cases[i]!, epoch);
      done++;
      if (results[j]!.error !== undefined) errors++;
      options.onProgress?.({ done, total: jobs.length, errors });
    }
  };
  await Promise.all(Array.from({ length: Math.min(p.concurrency, jobs.length) }, worker));
  return assemble(options, p, results, { cases: cases.length, startedAt: started, durationMs: performance.now() - t0 });
}

/** What {@link durableEvaluation} returns. */
export interface DurableEvaluation {
  /** The workflow (`eval.<name>`), registered with the engine. */
  readonly workflow: Workflow<DurablePlan, EvalResults>;
  /** Starts an eval run of the cases; resolves with its id once it is committed. */
  start(): Promise<string>;
  /** Starts an eval run and waits for its results. */
  run(): Promise<EvalResults & { readonly runId: string }>;
  /** The results of a finished eval run (null while it runs; rejects if it failed). */
  results(runId: string): Promise<EvalResults | null>;
  /**
   * Continues the eval runs a killed process left running (as `engine.recover()`, which it
   * calls): the samples already committed are not run again. Resolves with their results.
   */
  recover(): Promise<Array<EvalResults & { readonly runId: string }>>;
}

/** The input of a durable eval run: the jobs (case × epoch) in order, and what the summary needs. */
export interface DurablePlan {
  readonly cases: number;
  readonly startedAt: number;
  readonly jobs: ReadonlyArray<{ readonly case: EvalCase<unknown, unknown>; readonly epoch: number }>;
}

/** The engine calls a durable evaluation needs. */
export interface EvalEngine {
  register(wf: Workflow<never, unknown>): unknown;
  spawn<I, O>(wf: Workflow<I, O>, input: I): Promise<{ readonly id: string; readonly result: Promise<{ readonly status: string; readonly output: O | undefined; readonly error: string | undefined }> }>;
  get(runId: string): Promise<{ readonly workflow: string; readonly status: string; readonly output: unknown; readonly error: string | undefined } | null>;
  recover(): Promise<Array<{ readonly id: string; readonly result: Promise<{ readonly status: string; readonly output: unknown; readonly error: string | undefined }> }>>;
}

/**
 * An evaluation that runs as a durable workflow on `engine` (`@miyabi/core`'s `Engine`), as
 * `miyabi::eval::DurableEval` does in Rust: the workflow `eval.<name>` plans the jobs, runs one
 * `foreach` item per case × epoch — target and metrics as JS steps on the JS driver — and a
 * `summary` step whose output (the run's output) is the `miyabi.eval/v1` document, so the
 * dashboard's Evals view lists it. Kill the process half-way, build the same evaluation in a
 * new process and call `recover()`: the samples already committed are not run again. Build
 * one per name and engine: the engine keeps the first functions registered for a definition.
 *
 * ```ts
 * const engine = await Engine.open({ store: 'sqlite:evals.db' });
 * const ev = durableEvaluation({ engine, name: 'support', data, target, metrics: { exact: metrics.exact() } });
 * const results = await ev.run();          // or, after a crash: await ev.recover()
 * ```
 */
export function durableEvaluation<I = unknown, O = unknown, E = unknown>(
  options: EvaluateOptions<I, O, E> & { readonly engine: EvalEngine },
): DurableEvaluation {
  const what = 'durableEvaluation';
  const p = prepare(options, what);
  const name = options.name ?? 'eval';
  const PLAN = 'eval.plan';
  let done = 0;
  let errors = 0;
  const wf = workflowBuilder(`eval.${name}`)
    .step('plan', ({ input, state }) => {
      const plan = input as DurablePlan;
      state.set(PLAN, { cases: plan.cases, startedAt: plan.startedAt, total: plan.jobs.length });
      return plan.jobs;
    })
    .foreach(
      'samples',
      async ({ input, state }) => {
        const job = input as { case: EvalCase<I, E>; epoch: number };
        const s = await runSample(options, p, job.case, job.epoch);
        done++;
        if (s.error !== undefined) errors++;
        // Samples of this process (a recovered run counts from where it continued).
        options.onProgress?.({ done, total: state.get<{ total: number }>(PLAN)?.total ?? done, errors });
        return s;
      },
      { concurrency: p.concurrency },
    )
    .step('summary', ({ input, state }) => {
      const meta = state.get<{ cases: number; startedAt: number }>(PLAN);
      const samples = input as SampleResult[];
      const startedAt = meta?.startedAt ?? Date.now();
      return assemble(options, p, samples, { cases: meta?.cases ?? new Set(samples.map((s) => s.case_id)).size, startedAt, durationMs: Date.now() - startedAt });
    })
    .commit() as unknown as Workflow<DurablePlan, EvalResults>;
  options.engine.register(wf as unknown as Workflow<never, unknown>);
  const outcome = async (runId: string, r: Promise<{ readonly status: string; readonly output: unknown; readonly error: string | undefined }>) => {
    const run = await r;
    if (run.status !== 'succeeded') throw new MiyabiError('ENGINE', `eval run ${runId} of \`eval.${name}\` ${run.status}: ${run.error ?? 'no error recorded'}`);
    return { ...(run.output as EvalResults), runId };
  };
  const start = async () => {
    const cases = await checkedCases(options, what);
    const jobs = cases.flatMap((c) => Array.from({ length: p.epochs }, (_, epoch) => ({ case: c as EvalCase<unknown, unknown>, epoch })));
    const h = await options.engine.spawn(wf, { cases: cases.length, startedAt: Date.now(), jobs });
    return h;
  };
  return {
    workflow: wf,
    start: async () => (await start()).id,
    run: async () => {
      const h = await start();
      return outcome(h.id, h.result);
    },
    results: async (runId) => {
      const r = await options.engine.get(runId);
      if (r === null) throw new MiyabiError('NOT_FOUND', `no eval run ${runId}`);
      if (r.workflow !== `eval.${name}`) throw new MiyabiError('VALIDATION', `run ${runId} is a run of \`${r.workflow}\`, not of \`eval.${name}\``);
      if (r.status === 'running' || r.status === 'suspended') return null;
      if (r.status !== 'succeeded') throw new MiyabiError('ENGINE', `eval run ${runId} ${r.status}: ${r.error ?? 'no error recorded'}`);
      return r.output as EvalResults;
    },
    recover: async () => {
      const handles = await options.engine.recover();
      const mine: Array<EvalResults & { readonly runId: string }> = [];
      for (const h of handles) {
        const info = await options.engine.get(h.id);
        if (info?.workflow === `eval.${name}`) mine.push(await outcome(h.id, h.result));
      }
      return mine;
    },
  };
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Built-in deterministic metrics as functions (the Rust evaluator has the full set). */
export const metrics = {
  /** 1 when the output equals `expected` (strings as text, optionally trimmed / case-insensitive; other values structurally). */
  exact(opts: { trim?: boolean; ignoreCase?: boolean } = {}): MetricFn {
    const norm = (s: string) => {
      const t = opts.trim ? s.trim() : s;
      return opts.ignoreCase ? t.toLowerCase() : t;
    };
    return ({ case: c, output }) => {
      if (c.expected === undefined || c.expected === null) return { unscored: 'the case has no expected value' };
      if (typeof c.expected === 'string' && typeof output === 'string') return norm(c.expected) === norm(output);
      return JSON.stringify(c.expected) === JSON.stringify(output);
    };
  },
  /** Any of the strings (or, without strings, the expected text) appears in the output, case-insensitively. */
  contains(needles?: ReadonlyArray<string>): MetricFn {
    return ({ case: c, output }) => {
      const list = needles ?? (c.expected === undefined || c.expected === null ? [] : [text(c.expected)]);
      if (list.length === 0) return { unscored: 'no string to look for and no expected value' };
      const hay = text(output).toLowerCase();
      return list.some((n) => hay.includes(n.toLowerCase()));
    };
  },
  /** 1 when the output text matches the pattern. */
  regex(pattern: RegExp): MetricFn {
    return ({ output }) => pattern.test(text(output));
  },
  /** Tool-call F1 against the expected tool names (given, or the case's `metadata.expected_tools`). Needs an agent target. */
  toolCalls(expected?: ReadonlyArray<string>): MetricFn {
    return ({ case: c, trace }) => {
      if (!trace) return { unscored: 'the target reported no trace (tool calls, turns, usage): only agent targets do' };
      const want = expected ?? (c.metadata?.expected_tools as string[] | undefined);
      if (!Array.isArray(want)) return { unscored: 'the case has no metadata "expected_tools" and the metric was given no expected calls' };
      const used = new Array(trace.tool_calls.length).fill(false);
      let matched = 0;
      for (const w of want) {
        const i = trace.tool_calls.findIndex((t, k) => !used[k] && t.name === w);
        if (i >= 0) {
          used[i] = true;
          matched++;
        }
      }
      const made = trace.tool_calls.length;
      const precision = made === 0 ? (want.length === 0 ? 1 : 0) : matched / made;
      const recall = want.length === 0 ? 1 : matched / want.length;
      const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
      return { score: f1, reason: `${matched} of ${want.length} expected calls made, ${made} made`, metadata: { precision, recall, f1 } };
    };
  },
};

/** Settings of an LLM judge. */
export interface JudgeOptions {
  /** A SQLite file caching the judge's answers: a question already asked (same model, prompt, epoch) is not asked again. */
  readonly cache?: string;
  /** Sampling temperature (default 0). */
  readonly temperature?: number;
  /** Ask the provider for structured output with the answer's schema (default true). */
  readonly structuredOutput?: boolean;
  /** A prompt template of your own (`{{input}}`, `{{output}}`, `{{expected}}`, `{{context}}`, `{{criteria}}`, `{{transcript}}`). */
  readonly prompt?: string;
}

/** A metric computed in Rust (judges, embedding similarity) as a JS metric function. */
function nativeMetric(n: NativeMetric): MetricFn {
  return async (s) => {
    const p = await single(
      n.score({
        case: {
          id: s.case.id,
          input: s.case.input ?? null,
          ...(s.case.expected === undefined ? {} : { expected: s.case.expected }),
          ...(s.case.context === undefined ? {} : { context: s.case.context }),
          ...(s.case.metadata === undefined ? {} : { metadata: s.case.metadata }),
        },
        output: s.output ?? null,
        epoch: s.epoch,
        ...(s.trace === undefined ? {} : { trace: s.trace }),
      }),
      'judge-score',
    );
    if (typeof p.unscored === 'string') return { unscored: p.unscored };
    return {
      score: p.score as number,
      ...(typeof p.reason === 'string' ? { reason: p.reason } : {}),
      ...(p.metadata !== null && typeof p.metadata === 'object' ? { metadata: p.metadata as Record<string, unknown> } : {}),
    };
  };
}

function judge(kind: string, model: ModelLike, options: JudgeOptions & { criteria?: string; scale?: { min: number; max: number } }): MetricFn {
  return nativeMetric(
    addon.NativeMetric.judge(kind, nativeModel(model), {
      criteria: options.criteria,
      min: options.scale?.min,
      max: options.scale?.max,
      prompt: options.prompt,
      cache: options.cache,
      temperature: options.temperature,
      structuredOutput: options.structuredOutput,
    }),
  );
}

/**
 * LLM judges — the Rust judges' prompts, answer parsing and cache. An answer that cannot be
 * parsed, or a refusal, leaves the sample unscored with a reason (never 0).
 *
 * ```ts
 * metrics: { helpful: judges.rubric('openai/gpt-4.1-mini', 'answers the question asked, concisely') }
 * ```
 */
export const judges = {
  /** G-Eval style: the output against criteria, on a scale (default 1–5), normalised to [0, 1]. */
  rubric(model: ModelLike, criteria: string, options: JudgeOptions & { readonly scale?: { min: number; max: number } } = {}): MetricFn {
    if (typeof criteria !== 'string' || criteria.trim() === '') {
      throw new MiyabiError('INVALID_ARGUMENT', 'judges.rubric needs criteria: what a good output does');
    }
    return judge('rubric', model, { ...options, criteria });
  },
  /** The output's statements checked against `expected`. */
  factuality(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('factuality', model, options);
  },
  /** The output's statements checked for relevance to the input. */
  answerRelevancy(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('answer-relevancy', model, options);
  },
  /** The output's statements checked against the case's `context`. */
  faithfulness(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('faithfulness', model, options);
  },
  /** 1 when the output contradicts nothing in the `context` (statements that do lower it). */
  hallucination(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('hallucination', model, options);
  },
  /** 1 when no statement of the output is toxic. */
  toxicity(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('toxicity', model, options);
  },
  /**
   * Goal success (agents): 1 when the target achieved the case's goal (its input), judged from
   * its tool calls (an `Agent` target's trace) and its final output, with the case's `expected`
   * as success criteria; else 0.
   */
  goalSuccess(model: ModelLike, options: JudgeOptions = {}): MetricFn {
    return judge('goal-success', model, options);
  },
  /**
   * The A/B judge: which of two outputs for a case is better, asked in both orders (a
   * preference counts only when both agree, else `tie`).
   */
  pairwise(model: ModelLike, options: JudgeOptions & { readonly criteria?: string } = {}): PairwiseJudge {
    const n = addon.NativePairwiseJudge.create(nativeModel(model), {
      criteria: options.criteria,
      cache: options.cache,
      temperature: options.temperature,
      structuredOutput: options.structuredOutput,
    });
    return {
      async compare(c, a, b, epoch = 0) {
        const p = await single(n.compare({ id: c.id, input: c.input ?? null, ...(c.expected === undefined ? {} : { expected: c.expected }) }, a ?? null, b ?? null, epoch), 'pairwise');
        return { preferred: p.preferred as 'a' | 'b' | 'tie', reason: p.reason as string, cached: p.cached as boolean };
      },
    };
  },
};

/** A pairwise judge (`judges.pairwise`). */
export interface PairwiseJudge {
  compare(testCase: EvalCase, a: unknown, b: unknown, epoch?: number): Promise<{ preferred: 'a' | 'b' | 'tie'; reason: string; cached: boolean }>;
}

/** The cosine similarity of the output's and the expected answer's embeddings, clamped to [0, 1] (computed in Rust). */
export function embeddingSimilarity(model: EmbeddingModelLike): MetricFn {
  return nativeMetric(addon.NativeMetric.embeddingSimilarity(nativeEmbeddingModel(model)));
}

/** A paired A/B comparison of results B against results A (`compareResults`): the `miyabi.eval-compare` document `miyabi eval compare` writes. */
export interface Comparison {
  readonly schema: string;
  readonly metrics: ReadonlyArray<{
    readonly metric: string;
    readonly verdict: 'better' | 'worse' | 'no_detectable_difference';
    readonly [key: string]: unknown;
  }>;
  readonly [key: string]: unknown;
}

/**
 * Paired A/B comparison of two results (from `evaluate`, or read from `miyabi eval run` JSON):
 * per metric the mean difference B − A with paired-bootstrap and CLT intervals, McNemar's test
 * for pass/fail metrics, win/loss/tie counts, a verdict, and the cases that regressed.
 */
export function compareResults(a: EvalResults, b: EvalResults): Comparison {
  try {
    return addon.compareEvalResults(a, b) as Comparison;
  } catch (e) {
    const m = e instanceof Error ? e.message : String(e);
    const i = m.indexOf(': ');
    throw new MiyabiError(m.startsWith('ENGINE: ') ? 'ENGINE' : 'INVALID_ARGUMENT', i > 0 ? m.slice(i + 2) : m);
  }
}
