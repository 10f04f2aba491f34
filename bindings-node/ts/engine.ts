/**
 * The engine and the JS driver of runs.
 *
 * Runs are driven on the JS event loop: the driver asks the native state machine for tasks
 * (`poll`), runs the JS functions they name, and hands each result back (`complete`) — every
 * call synchronous, committing to the store in the same call. No thread hop per step.
 */
import { type NativeEngine, type NativeRun, type NativeRunInfo, type NativeServer, type NativeStepCall, type NativeTask, addon } from './native.js';
import type { NativeViolation } from '../../native.cjs';
import { Approvals } from './approval.js';
import { CancelledError, ConflictError, FatalError, MiyabiError, TimeoutError, fromNative, isEngineError, native, violationError } from './errors.js';
import { parse, parseSync } from './schema.js';
import { optionalWhole, pathText, storable, wholeNumber } from './values.js';
import { type Compiled, type Handler, type RunState, type StepContext, type Workflow, compiled, resumeSchemaAt } from './workflow.js';

/** Options of `engine.serve`. */
export interface ServeOptions {
  /** Interface to bind (default `127.0.0.1`). */
  readonly host?: string;
  /** Port (default 7420; 0 picks a free one). */
  readonly port?: number;
  /**
   * Bearer tokens and the identity each stands for: its teams, its `roles` (admin when absent)
   * and the `workflows` it may see and act on (every one when absent; `billing.*` for a
   * namespace). See docs/server.md, Access control.
   */
  readonly tokens?: ReadonlyArray<{
    readonly token: string;
    readonly id: string;
    readonly teams?: ReadonlyArray<string>;
    readonly roles?: ReadonlyArray<'viewer' | 'operator' | 'approver' | 'admin'>;
    readonly workflows?: ReadonlyArray<string>;
  }>;
  /** An access file (TOML: identities with tokens or token digests, roles, scopes, JWT), as `miyabi serve --access`. */
  readonly accessFile?: string;
  /** Origins allowed by CORS (off by default). */
  readonly cors?: ReadonlyArray<string>;
}

/** What the HTTP API asks of the engine that serves, for a workflow with JS steps. */
type ServeRequest =
  | { readonly kind: 'start'; readonly workflow: string; readonly fingerprint: string; readonly input: unknown }
  | { readonly kind: 'resume'; readonly runId: string; readonly path: string; readonly data: unknown }
  | { readonly kind: 'deliver'; readonly runId: string; readonly gate: string }
  | { readonly kind: 'retry'; readonly runId: string }
  | { readonly kind: 'cancel'; readonly runId: string };

/** The run's id, or why the request was refused (`code`: a Miyabi error code). */
type ServeAnswer = { readonly id: string; readonly error?: undefined } | { readonly id?: undefined; readonly error: { readonly code: string; readonly message: string } };

/** A running server from `engine.serve`. */
export interface Server {
  /** `host:port` it listens on. */
  readonly address: string;
  /** `http://host:port`. */
  readonly url: string;
  /** Stops it (open event streams end). */
  close(): Promise<void>;
}

/** Where a run stands. */
export type RunStatus = 'running' | 'suspended' | 'succeeded' | 'failed' | 'cancelled';

/** A suspended path and what its step asked for. */
export interface Suspension {
  /** The path to pass to `engine.resume`. */
  readonly path: string;
  /** The payload the step gave to `suspend`. */
  readonly payload: unknown;
}

/** A run as stored. */
export interface RunInfo<O = unknown> {
  /** Run id. */
  readonly id: string;
  /** Workflow id. */
  readonly workflow: string;
  /** Current status. */
  readonly status: RunStatus;
  /** The run's input. */
  readonly input: unknown;
  /** The output, once succeeded. */
  readonly output: O | undefined;
  /** The error, once failed or cancelled (a failed JS step's message and stack). */
  readonly error: string | undefined;
  /** The suspended paths, while suspended. */
  readonly suspended: ReadonlyArray<Suspension>;
  /** Creation time, ms since the epoch. */
  readonly createdAt: number;
  /** Last status change, ms since the epoch. */
  readonly updatedAt: number;
}

interface EventBase {
  /** The run. */
  readonly runId: string;
  /** Position in the run's event log, from 1, without gaps. */
  readonly seq: number;
  /** Time, ms since the epoch. */
  readonly at: number;
}

/** One event of a run's log. */
export type RunEvent = EventBase &
  (
    | { readonly type: 'run-started'; readonly path?: undefined; readonly workflow: string; readonly input: unknown }
    | { readonly type: 'step-started'; readonly path: string; readonly attempt: number }
    | { readonly type: 'step-output'; readonly path: string; readonly output: unknown }
    | { readonly type: 'step-suspended'; readonly path: string; readonly payload: unknown }
    | { readonly type: 'step-failed'; readonly path: string; readonly error: string }
    | {
        readonly type: 'step-retrying';
        readonly path: string;
        readonly attempt: number;
        readonly delayMs: number;
        readonly error: string;
      }
    | { readonly type: 'run-resumed'; readonly path: string }
    | { readonly type: 'run-suspended'; readonly path?: undefined; readonly paths: ReadonlyArray<string> }
    | { readonly type: 'run-retried'; readonly path?: undefined; readonly paths: ReadonlyArray<string> }
    | {
        readonly type: 'run-finished';
        readonly path?: undefined;
        readonly status: RunStatus;
        readonly output: unknown;
        readonly error: string | null;
      }
    | { readonly type: 'custom'; readonly path: string; readonly name: string; readonly data: unknown }
  );

/** Which runs `engine.list` returns. */
export interface ListFilter {
  readonly workflow?: string;
  readonly status?: RunStatus;
  /** Created at or after (ms since the epoch or a Date). */
  readonly createdAfter?: number | Date;
  /** Created before (ms since the epoch or a Date). */
  readonly createdBefore?: number | Date;
  /** At most this many, newest first. */
  readonly limit?: number;
}

/** Options of `Engine.open`. */
export interface EngineOptions {
  /**
   * `'memory'` (default), `'sqlite:<path>'` (created if missing; durable across processes) or
   * `'postgres://user:password@host:port/database'` (shared by several processes; tables in the
   * schema `miyabi`; each store call waits one database round trip).
   */
  readonly store?: 'memory' | `sqlite:${string}` | `postgres://${string}` | `postgresql://${string}`;
  /** Workflows to register now, so that their runs can be resumed and recovered. */
  readonly workflows?: ReadonlyArray<Workflow<never, unknown>>;
  /**
   * Deletes finished runs in the background by this rule (see `engine.prune`), once the
   * engine's worker runs and then every `intervalMs` (default 60,000). Running and suspended
   * runs are never deleted.
   */
  readonly retention?: Retention & { readonly intervalMs?: number };
  /**
   * How often the engine's worker applies approval deadlines, sends due notifications and
   * hands decided gates to their runs (default 1000 ms). The worker runs in Rust, never keeps
   * the process alive, and logs a failed pass to stderr (`MIYABI_LOG`: `warn` by default,
   * `off` to silence it).
   */
  readonly workerIntervalMs?: number;
  /** At most this many runs taken by `work()` / `recover()` execute in this process at once. */
  readonly maxActive?: number;
  /**
   * Concurrency limits across every engine on the store, checked when `work()` / `recover()`
   * take runs (give every worker the same): at most `global` runs of any workflow, at most
   * `workflows[id]` runs of that workflow executing at once. Runs this process starts itself
   * (`start`, `spawn`) execute at once; enqueue them to have them wait (docs/scaling.md).
   */
  readonly limits?: { readonly global?: number; readonly workflows?: Readonly<Record<string, number>> };
}

/**
 * Which finished runs `engine.prune` deletes: those that ended more than `olderThanMs` ago and,
 * per workflow, those beyond the newest `keepLast` (only `workflow`'s runs when given). Running
 * and suspended runs are never deleted, whatever their age. A run's step records, events, state,
 * approval gates and pending notifications go with it; the approvals audit trail stays.
 */
export interface Retention {
  readonly olderThanMs?: number;
  readonly keepLast?: number;
  readonly workflow?: string;
}

/** A finished or suspended run, with its event log. */
export class Run<O = unknown> implements RunInfo<O> {
  readonly id: string;
  readonly workflow: string;
  readonly status: RunStatus;
  readonly input: unknown;
  readonly output: O | undefined;
  readonly error: string | undefined;
  readonly suspended: ReadonlyArray<Suspension>;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly #engine: Engine;

  /** @internal */
  constructor(engine: Engine, info: RunInfo<O>) {
    this.#engine = engine;
    this.id = info.id;
    this.workflow = info.workflow;
    this.status = info.status;
    this.input = info.input;
    this.output = info.output;
    this.error = info.error;
    this.suspended = info.suspended;
    this.createdAt = info.createdAt;
    this.updatedAt = info.updatedAt;
  }

  /** The run's events from `fromSeq` (1: all); live while the run is driven by this engine. */
  events(fromSeq = 1): AsyncIterableIterator<RunEvent> {
    return this.#engine.events(this.id, fromSeq);
  }
}

/** A run being driven in the background (from `engine.spawn` or `engine.recover`). */
export interface RunHandle<O = unknown> {
  /** Run id. */
  readonly id: string;
  /** Settles when the run finishes or suspends. */
  readonly result: Promise<Run<O>>;
  /** Its events, live. */
  events(fromSeq?: number): AsyncIterableIterator<RunEvent>;
  /** Cancels it: steps see their `signal` abort, and the run ends `cancelled`. */
  cancel(): Promise<RunInfo<O>>;
}

function info<O>(n: NativeRunInfo): RunInfo<O> {
  return {
    id: n.id,
    workflow: n.workflow,
    status: n.status as RunStatus,
    input: n.input,
    output: (n.output ?? undefined) as O | undefined,
    error: n.error ?? undefined,
    suspended: n.suspended,
    createdAt: n.createdAt,
    updatedAt: n.updatedAt,
  };
}

function ms(t: number | Date | undefined): number | undefined {
  return t instanceof Date ? t.getTime() : t;
}

/** The longest delay `setTimeout` waits as asked (2^31 − 1 ms). */
const MAX_TIMEOUT = 2_147_483_647;


/** Thrown by `ctx.suspend` to end the step; the driver turns it into a suspension. */
class Suspend {
  constructor(readonly payload: unknown) {}
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

function errorValue(e: unknown, fatal: boolean): { message: string; fatal: boolean } {
  if (e instanceof Error) {
    const head = `${e.name}: ${e.message}`;
    const stack = typeof e.stack === 'string' ? e.stack : head;
    return { message: stack.startsWith(head) ? stack : `${head}\n${stack}`, fatal: fatal || e instanceof FatalError };
  }
  return { message: typeof e === 'string' ? e : `non-error thrown: ${String(e)}`, fatal };
}

function suspendStep(payload?: unknown): never {
  throw new Suspend(payload ?? null);
}

/** The run context a step gets. */
class Ctx implements StepContext<unknown, unknown> {
  readonly input: unknown;
  readonly runId: string;
  readonly path: string;
  readonly attempt: number;
  readonly resumeData: unknown;
  readonly #run: NativeRun;
  readonly #signal: () => AbortSignal;

  constructor(run: NativeRun, runId: string, t: NativeTask, signal: () => AbortSignal) {
    this.#run = run;
    this.runId = runId;
    this.input = t.input ?? null;
    this.path = t.path;
    this.attempt = t.attempt ?? 1;
    this.resumeData = t.resume;
    this.#signal = signal;
  }

  get signal(): AbortSignal {
    return this.#signal();
  }

  get idempotencyKey(): string {
    return `${this.runId}:${this.path}`;
  }

  // Getters returning functions that need no `this`, so that `({ suspend, emit })` works.
  get suspend(): (payload?: unknown) => never {
    return suspendStep;
  }

  get emit(): (name: string, data?: unknown) => void {
    const run = this.#run;
    const path = this.path;
    return (name: string, data?: unknown): void => {
      const stored = storable(data, 'data');
      native(() => run.emit(path, name, stored));
    };
  }

  get state(): RunState {
    const run = this.#run;
    return {
      get: <T = unknown>(key: string): T | undefined => (native(() => run.getState(key)) ?? undefined) as T | undefined,
      set: (key: string, value: unknown): void => {
        const stored = storable(value, pathText('state', [key]));
        native(() => run.setState(key, stored));
      },
    };
  }
}

/** Drives one run on the event loop until it finishes or suspends. */
class Driver {
  readonly id: string;
  readonly result: Promise<NativeRunInfo>;
  readonly #n: NativeRun;
  readonly #handlers: ReadonlyArray<Handler>;
  /** Created when a step first looks at its signal. */
  #controller: AbortController | undefined;
  readonly #runSignal = (): AbortSignal => (this.#controller ??= new AbortController()).signal;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #listeners = new Set<() => void>();
  /** Rust steps in flight (aborted when the run stops here). */
  readonly #calls = new Set<NativeStepCall>();
  readonly #onDone: () => void;
  #inflight = 0;
  #done = false;
  #wake: (() => void) | undefined;
  #final: NativeRunInfo | undefined;
  /** Tasks handed out by a `completeAndAdvance`, not started yet. */
  #ready: NativeTask[] = [];
  /** An engine error raised in a callback (a store failure): the loop rethrows it. */
  #error: unknown = undefined;
  /** Something completed without an advance after it: advance before going on. */
  #dirty = true;
  /** Completions so far (to see whether any happened during a microtask turn). */
  #completions = 0;

  /** The run's input as this process gave it to `startRun` (`undefined`: read it back at the end). */
  readonly #input: { readonly value: unknown } | undefined;

  constructor(n: NativeRun, id: string, c: Compiled, onDone: () => void, input?: { readonly value: unknown }) {
    this.#n = n;
    this.id = id;
    this.#handlers = c.handlers;
    this.#onDone = onDone;
    this.#input = input;
    this.result = this.#loop();
  }

  get done(): boolean {
    return this.#done;
  }

  /** Called when new events may be in the log (and once when the run stops here). */
  listen(f: () => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  async #loop(): Promise<NativeRunInfo> {
    const n = this.#n;
    try {
      // Only a workflow with a timeout has a deadline.
      const deadline = n.deadline();
      if (deadline !== null && deadline !== undefined) {
        this.#timer(deadline - Date.now(), () => this.#timedOut());
      }
      // A cancellation asked for outside this driver (the engine's `cancel` from Rust, the
      // server) is the core's business: an advance that finds it ends the run as cancelled
      // and hands out nothing, and the loop stops on the status below.
      for (;;) {
        if (this.#error !== undefined) throw fromNative(this.#error);
        if (this.#done) break;
        if (this.#dirty) {
          this.#dirty = false;
          let more: NativeTask[];
          try {
            more = n.advance();
          } catch (e) {
            throw fromNative(e);
          }
          if (more.length > 0) this.#ready.push(...more);
        }
        const tasks = this.#ready;
        this.#ready = [];
        if (tasks.length === 0) {
          // Tasks come only from a running run. With none, commit what ran (steps that finished
          // without waiting share one commit, as the Rust driver does) and read the status.
          this.#flush();
          const status = n.status();
          if (status !== 'running' && (status !== 'suspended' || this.#inflight === 0)) break;
        }
        let progressed = false;
        for (const t of tasks) {
          if (this.#start(t)) progressed = true;
        }
        if (progressed || this.#done) continue;
        if (this.#inflight === 0) {
          native(() => n.failRun('the run has nothing to do but is not finished (engine error)'));
          break;
        }
        // Promises that are already settled (an async step that did not wait) complete within
        // this turn of the microtask queue: let them, and go on without a commit if they did.
        const before = this.#completions;
        await null;
        if (this.#completions !== before || this.#done) continue;
        // Now the run waits for I/O or a timer: commit first.
        this.#flush();
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    } finally {
      const input = this.#input;
      this.#final = native(() => n.close(input === undefined));
      // Cancelled by the core (a request from elsewhere): steps still running see it.
      if (this.#final.status === 'cancelled') this.#controller?.abort(new CancelledError());
      if (input !== undefined) this.#final.input = input.value;
      this.#finish();
    }
    return this.#final;
  }

  /** Commits what the run produced since the last commit, and tells event readers. */
  #flush(): void {
    try {
      this.#n.flush();
    } catch (e) {
      throw fromNative(e);
    }
    this.#notify();
  }

  #signal(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #notify(): void {
    for (const f of this.#listeners) f();
  }

  /**
   * Calls `f` after `delay` ms; returns what stops it. A delay longer than `setTimeout` can
   * wait (2^31 − 1 ms, about 24.8 days: Node fires a longer one after 1 ms) waits in parts.
   */
  #timer(delay: number, f: () => void): () => void {
    let t: ReturnType<typeof setTimeout>;
    const arm = (left: number): void => {
      const wait = Math.min(left, MAX_TIMEOUT);
      t = setTimeout(() => {
        this.#timers.delete(t);
        if (left > MAX_TIMEOUT) arm(left - MAX_TIMEOUT);
        else this.#guard(f);
      }, wait);
      this.#timers.add(t);
    };
    arm(delay > 0 ? delay : 0);
    return () => {
      clearTimeout(t);
      this.#timers.delete(t);
    };
  }

  #finish(): void {
    this.#done = true;
    for (const c of this.#calls) c.abort();
    this.#calls.clear();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#onDone();
    this.#notify();
    this.#listeners.clear();
  }

  /** Ends the run as cancelled now; steps in flight see their signal abort. */
  cancel(): NativeRunInfo {
    if (!this.#done) {
      this.#done = true;
      this.#controller?.abort(new CancelledError());
      native(() => this.#n.cancel());
      this.#signal();
    }
    return this.#final ?? this.#n.outcome();
  }

  /** The run's deadline passed: the core fails the run; steps in flight see why. */
  #timedOut(): void {
    if (this.#done) return;
    const message = native(() => this.#n.timeOutRun());
    if (message === null || message === undefined) return;
    this.#done = true;
    this.#controller?.abort(new TimeoutError(message));
    this.#signal();
  }

  /** Starts a task; true if it completed at once. */
  #start(t: NativeTask): boolean {
    switch (t.kind) {
      case 'step': {
        const delay = t.delayMs ?? 0;
        if (delay > 0) {
          this.#inflight++;
          this.#timer(delay, () => {
            this.#inflight--;
            if (this.#runStep(t)) this.#signal();
          });
          return false;
        }
        return this.#runStep(t);
      }
      case 'eval':
        return this.#eval(t);
      case 'sleep':
        this.#inflight++;
        this.#timer((t.wakeAt ?? 0) - Date.now(), () => {
          this.#inflight--;
          if (this.#done) return;
          this.#complete(t.path, true, null);
          this.#signal();
        });
        return false;
      case 'native':
        return this.#native(t);
      default:
        this.#complete(t.path, false, { message: `unknown task kind \`${t.kind}\` at \`${t.path}\``, fatal: true });
        return true;
    }
  }

  /** Starts a Rust step (an agent) on the addon's tokio runtime and completes it when it ends. */
  #native(t: NativeTask): boolean {
    let call: NativeStepCall;
    try {
      call = this.#n.native(t.path);
    } catch (e) {
      throw fromNative(e);
    }
    this.#inflight++;
    this.#calls.add(call);
    call.wait().then(
      () =>
        this.#settled(() => {
          this.#calls.delete(call);
          this.#n.completeNative(call);
          this.#completions++;
          this.#dirty = true;
        }),
      (e: unknown) =>
        this.#settled(() => {
          this.#calls.delete(call);
          this.#complete(t.path, false, errorValue(e, true));
        }),
    );
    return false;
  }

  /** Completes `path` with a value and polls in the same native call. */
  #completeOk(path: string, value: unknown): void {
    let stored: unknown;
    try {
      stored = storable(value, 'output');
    } catch (e) {
      // The value cannot become JSON (NaN, a function, a cycle, ...): the step fails.
      this.#unstorable(path, 'output', e);
      return;
    }
    let more: NativeTask[];
    try {
      more = this.#n.completeAndAdvance(path, stored);
    } catch (e) {
      if (isEngineError(e)) throw fromNative(e);
      // napi refused the value (deeper or bigger than it converts): the step fails.
      this.#unstorable(path, 'output', e);
      return;
    }
    this.#completions++;
    if (more.length > 0) this.#ready.push(...more);
  }

  /** Completes `path` without polling (failures, suspensions, eval answers, sleeps). */
  #complete(path: string, ok: boolean, value: unknown): void {
    let stored = value;
    if (ok) {
      try {
        stored = storable(value, 'result');
      } catch (e) {
        this.#unstorable(path, 'result', e);
        return;
      }
    }
    try {
      this.#n.complete(path, ok, stored);
    } catch (e) {
      if (isEngineError(e)) throw fromNative(e);
      this.#unstorable(path, ok ? 'result' : 'error', e);
      return;
    }
    this.#completions++;
    this.#dirty = true;
  }

  #unstorable(path: string, what: string, e: unknown): void {
    const reason = e instanceof Error ? e.message : String(e);
    this.#n.complete(path, false, { message: `the ${what} of \`${path}\` cannot be stored as JSON: ${reason}`, fatal: true });
    this.#completions++;
    this.#dirty = true;
  }

  #fail(path: string, e: unknown, fatal = false): void {
    if (this.#done) return;
    if (e instanceof Suspend) {
      let payload: unknown;
      try {
        payload = storable(e.payload, 'payload');
      } catch (err) {
        this.#unstorable(path, 'suspension payload', err);
        return;
      }
      try {
        this.#n.suspend(path, payload);
      } catch (err) {
        if (isEngineError(err)) throw fromNative(err);
        this.#unstorable(path, 'suspension payload', err);
        return;
      }
      this.#completions++;
      this.#dirty = true;
    } else {
      this.#complete(path, false, errorValue(e, fatal));
    }
  }

  #ok(path: string, h: Handler & { kind: 'step' }, v: unknown): boolean {
    if (this.#done) return true;
    if (h.output === undefined) {
      this.#completeOk(path, v);
      return true;
    }
    let parsed: { readonly value: unknown } | Promise<unknown>;
    try {
      parsed = parseSync(h.output, v, `step \`${path}\` output`);
    } catch (e) {
      this.#fail(path, e, true);
      return true;
    }
    if (parsed instanceof Promise) {
      this.#inflight++;
      parsed.then(
        (x) => this.#settled(() => this.#completeOk(path, x)),
        (e: unknown) => this.#settled(() => this.#fail(path, e, true)),
      );
      return false;
    }
    this.#completeOk(path, parsed.value);
    return true;
  }

  /** Completes an async piece of work: one fewer in flight, then wakes the loop. */
  #settled(f: () => void): void {
    this.#inflight--;
    if (!this.#done) this.#guard(f);
    this.#signal();
  }

  /** Runs a callback's work; an error (the store failed) stops the run's driving with it. */
  #guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.#error ??= e;
      this.#done = true;
      this.#signal();
    }
  }

  #runStep(t: NativeTask): boolean {
    const h = this.#handlers[t.handle ?? -1];
    if (h === undefined || h.kind !== 'step') {
      this.#fail(t.path, new FatalError(`no step function for handle ${String(t.handle)}`), true);
      return true;
    }
    let signal = this.#runSignal;
    let stepAbort: AbortController | undefined;
    const timeoutMs = t.timeoutMs ?? undefined;
    if (timeoutMs !== undefined) {
      const step = new AbortController();
      stepAbort = step;
      let both: AbortSignal | undefined;
      signal = () => (both ??= AbortSignal.any([this.#runSignal(), step.signal]));
    }
    let r: unknown;
    try {
      r = h.fn(new Ctx(this.#n, this.id, t, signal));
    } catch (e) {
      this.#fail(t.path, e);
      return true;
    }
    if (!isThenable(r)) return this.#ok(t.path, h, r);
    this.#inflight++;
    let settled = false;
    let stopTimer: (() => void) | undefined;
    if (timeoutMs !== undefined && stepAbort !== undefined) {
      const ctl = stepAbort;
      stopTimer = this.#timer(timeoutMs, () => {
        if (settled) return;
        settled = true;
        // The core fails the attempt (its retry policy decides what follows).
        this.#settled(() => {
          const message = this.#n.timeOut(t.path);
          if (message === null || message === undefined) return;
          this.#completions++;
          this.#dirty = true;
          ctl.abort(new TimeoutError(message));
        });
      });
    }
    r.then(
      (v) => {
        if (settled) return;
        settled = true;
        stopTimer?.();
        this.#inflight--;
        this.#guard(() => {
          if (this.#ok(t.path, h, v) || this.#done) this.#signal();
        });
      },
      (e: unknown) => {
        if (settled) return;
        settled = true;
        stopTimer?.();
        this.#settled(() => this.#fail(t.path, e));
      },
    );
    return false;
  }

  #eval(t: NativeTask): boolean {
    const h = this.#handlers[t.handle ?? -1];
    if (h === undefined || h.kind === 'step') {
      this.#fail(t.path, new FatalError(`no function for handle ${String(t.handle)}`), true);
      return true;
    }
    const kind = t.eval;
    // The answer goes to the core as it is (a Date as its milliseconds): the machine checks
    // that a selector names an arm, a condition is a boolean and a wake time a time.
    const answer = (v: unknown): void => {
      if (this.#done) return;
      const a = v instanceof Date ? (Number.isNaN(v.getTime()) ? 'an invalid Date' : v.getTime()) : v;
      this.#complete(t.path, true, a ?? null);
    };
    const args = kind === 'select' || kind === 'condition' ? { output: t.input ?? null } : { input: t.input ?? null };
    let r: unknown;
    try {
      r = (h.fn as (a: typeof args) => unknown)(args);
    } catch (e) {
      this.#fail(t.path, e, true);
      return true;
    }
    if (!isThenable(r)) {
      answer(r);
      return true;
    }
    this.#inflight++;
    r.then(
      (v) => this.#settled(() => answer(v)),
      (e: unknown) => this.#settled(() => this.#fail(t.path, e, true)),
    );
    return false;
  }
}

/**
 * Runs workflows durably. JS steps run on this process's event loop; the engine commits every
 * step to the store as it completes.
 *
 * ```ts
 * const engine = await Engine.open({ store: 'sqlite:./miyabi.db' });
 * const run = await engine.start(wf, { issue: '#715' });
 * ```
 */
export class Engine {
  readonly #native: NativeEngine;
  readonly #byFingerprint = new Map<string, Compiled>();
  readonly #drivers = new Map<string, Driver>();
  /** Approval gates of this engine's runs: inbox, decisions, audit trail. */
  readonly approvals: Approvals;

  private constructor(n: NativeEngine) {
    this.#native = n;
    this.approvals = new Approvals(n, { resumeGate: (runId, gate) => this.#resumeGate(runId, gate) });
    // The engine's worker (in Rust: deadlines, notifications, retention) hands decided gates of
    // JS workflows here, decisions taken by other processes, the CLI or the HTTP API included.
    n.onDecidedGate(({ runId, gate }) => {
      try {
        const h = this.#resumeGate(runId, gate);
        if (h !== undefined) void h.result.catch(() => undefined);
      } catch (e) {
        // The worker hands the gate again on its next pass.
        process.emitWarning(`miyabi: resuming run ${runId} at gate \`${gate}\` failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  }

  /**
   * Hands a decided gate's output to its suspended run and drives the run here, if this
   * engine has the run's workflow; otherwise an engine that has it picks it up.
   */
  #resumeGate(runId: string, gate: string): RunHandle<unknown> | undefined {
    const rec = native(() => this.#native.get(runId));
    if (rec === null || rec === undefined || rec.status !== 'suspended') return undefined;
    const known = [...this.#byFingerprint.values()].some((c) => c.native.id === rec.workflow);
    if (!known) return undefined;
    const n = native(() => this.#native.approvalResume(runId, gate));
    if (n === null || n === undefined) return undefined;
    return this.#drive<unknown>(n);
  }

  /**
   * Serves the HTTP API (`/api`, bearer tokens) and the dashboard (`/`) on `host:port`
   * (default 127.0.0.1:7420; port 0 picks a free one). Without `tokens` (and without
   * `MIYABI_TOKENS`), one token is generated for `admin` and printed once to stderr.
   * Runs of the workflows registered here that the API starts or resumes, and approval gates
   * decided through it, are driven by this engine on this event loop, as if your code had
   * called `spawn` or `resume` (the run's input goes through the workflow's input schema); a
   * cancellation through the API is `engine.cancel`.
   */
  async serve(options: ServeOptions = {}): Promise<Server> {
    type Role = 'viewer' | 'operator' | 'approver' | 'admin';
    type TokenSpec = { token: string; id: string; teams?: string[]; roles?: Role[]; workflows?: string[] };
    const o: { host?: string; port?: number; tokens?: TokenSpec[]; accessFile?: string; cors?: string[] } = {};
    if (options.host !== undefined) o.host = options.host;
    if (options.port !== undefined) o.port = options.port;
    if (options.tokens !== undefined) {
      o.tokens = options.tokens.map((t) => {
        const spec: TokenSpec = { token: t.token, id: t.id };
        if (t.teams !== undefined) spec.teams = [...t.teams];
        if (t.roles !== undefined) spec.roles = [...t.roles];
        if (t.workflows !== undefined) spec.workflows = [...t.workflows];
        return spec;
      });
    }
    if (options.accessFile !== undefined) o.accessFile = options.accessFile;
    if (options.cors !== undefined) o.cors = [...options.cors];
    let s: NativeServer;
    try {
      s = await this.#native.serve(o, (request) => this.#serveRequest(request));
    } catch (e) {
      throw fromNative(e);
    }
    const address = s.address;
    return {
      address,
      url: `http://${address}`,
      close: () => s.close(),
    };
  }

  /**
   * A request of the HTTP API (`serve`) for a workflow with JS steps: starts, resumes or
   * continues (a decided gate) the run and drives it here, or cancels it (a run driven here
   * stops at once). Resolves once the change is committed, with the run's id or with the
   * error (never rejects: the server maps the code to an HTTP status).
   */
  async #serveRequest(r: ServeRequest): Promise<ServeAnswer> {
    // Nobody here awaits a run the API started: its outcome is in the store (and its events).
    const detached = (h: RunHandle<unknown>): ServeAnswer => {
      void h.result.catch(() => undefined);
      return { id: h.id };
    };
    try {
      switch (r.kind) {
        case 'start': {
          const c = this.#byFingerprint.get(r.fingerprint);
          if (c === undefined) {
            return { error: { code: 'UNKNOWN_WORKFLOW', message: `workflow \`${r.workflow}\` (fingerprint ${r.fingerprint}) has no JavaScript functions registered with this engine` } };
          }
          const schema = c.def.input;
          let value = r.input;
          if (schema !== undefined) {
            const p = parseSync(schema, r.input, `workflow \`${r.workflow}\` input`);
            value = p instanceof Promise ? await p : p.value;
          }
          return detached(this.#startParsed<unknown>(c, value, false));
        }
        case 'resume':
          // The same checks as `engine.resume`: the step's resume schema, then the engine's.
          return detached(await this.#resumed<unknown>(r.runId, r.path, r.data));
        case 'deliver': {
          const h = this.#resumeGate(r.runId, r.gate);
          return h === undefined ? { id: r.runId } : detached(h);
        }
        case 'retry':
          return detached(this.#retried<unknown>(r.runId));
        case 'cancel':
          await this.cancel(r.runId);
          return { id: r.runId };
      }
    } catch (e) {
      const code = e instanceof MiyabiError ? e.code : 'ENGINE';
      return { error: { code, message: e instanceof Error ? e.message : String(e) } };
    }
  }

  /**
   * Stops handing decided gates to this engine (its worker keeps applying deadlines and
   * retention until the engine is collected; the process exits by itself either way).
   */
  close(): void {
    this.#native.onDecidedGate(null);
  }

  /** Opens an engine over a store. */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    return Engine.openSync(options);
  }

  /** Opens an engine over a store, synchronously. */
  static openSync(options: EngineOptions = {}): Engine {
    const o: {
      retention?: Retention & { intervalMs?: number };
      workerIntervalMs?: number;
      maxActive?: number;
      limits?: { global?: number; workflows?: Record<string, number> };
    } = {};
    if (options.retention !== undefined) {
      const { intervalMs, ...rule } = options.retention;
      checkRetention(rule);
      o.retention = { ...rule };
      if (intervalMs !== undefined) {
        o.retention.intervalMs = wholeNumber(intervalMs, '`retention.intervalMs`', { code: 'INVALID_ARGUMENT', min: 1, unit: 'milliseconds' });
      }
    }
    if (options.workerIntervalMs !== undefined) {
      o.workerIntervalMs = wholeNumber(options.workerIntervalMs, '`workerIntervalMs`', { code: 'INVALID_ARGUMENT', min: 1, unit: 'milliseconds' });
    }
    if (options.maxActive !== undefined) o.maxActive = wholeNumber(options.maxActive, '`maxActive`', { code: 'INVALID_ARGUMENT', min: 1 });
    if (options.limits !== undefined) {
      const limits: { global?: number; workflows?: Record<string, number> } = {};
      if (options.limits.global !== undefined) limits.global = wholeNumber(options.limits.global, '`limits.global`', { code: 'INVALID_ARGUMENT', min: 1 });
      if (options.limits.workflows !== undefined) {
        limits.workflows = {};
        for (const [id, n] of Object.entries(options.limits.workflows)) {
          limits.workflows[id] = wholeNumber(n, `\`limits.workflows["${id}"]\``, { code: 'INVALID_ARGUMENT', min: 1 });
        }
      }
      o.limits = limits;
    }
    const engine = new Engine(native(() => addon.NativeEngine.open(options.store ?? 'memory', o)));
    for (const w of options.workflows ?? []) engine.register(w);
    return engine;
  }

  /**
   * Deletes finished runs by `rule` now and returns how many were deleted; running and
   * suspended runs are never deleted. `engine.prune({ olderThanMs: 30 * 86_400_000, keepLast: 10_000 })`.
   */
  prune(rule: Retention): number {
    checkRetention(rule);
    return native(() => this.#native.prune(rule.olderThanMs, rule.keepLast, rule.workflow));
  }

  /** Registers a workflow, so that its runs can be resumed and recovered here (starting registers too). */
  register(wf: Workflow<never, unknown>): this {
    const c = compiled(wf);
    if (!this.#byFingerprint.has(wf.fingerprint)) {
      this.#native.register(c.native);
      this.#byFingerprint.set(wf.fingerprint, c);
    }
    return this;
  }

  /** Starts a run and drives it until it finishes or suspends. */
  start<I, O>(wf: Workflow<I, O>, input: I): Promise<Run<O>> {
    try {
      // The run's creation is committed with its first steps (before it waits for anything).
      const h = this.#spawn<I, O>(wf, input, true);
      return h instanceof Promise ? h.then((x) => x.result) : h.result;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Starts a run (committed when this settles) and drives it in the background. */
  async spawn<I, O>(wf: Workflow<I, O>, input: I): Promise<RunHandle<O>> {
    return this.#spawn<I, O>(wf, input);
  }

  /** Validates the input (synchronously when the schema allows) and starts the run. */
  #spawn<I, O>(wf: Workflow<I, O>, input: I, deferred = false): RunHandle<O> | Promise<RunHandle<O>> {
    const w = wf as Workflow<never, unknown>;
    const c = compiled(w);
    if (!this.#byFingerprint.has(wf.fingerprint)) this.register(w);
    const schema = c.def.input;
    if (schema === undefined) return this.#startParsed<O>(c, input, deferred);
    const p = parseSync(schema, input, `workflow \`${wf.id}\` input`);
    return p instanceof Promise ? p.then((v) => this.#startParsed<O>(c, v, deferred)) : this.#startParsed<O>(c, p.value, deferred);
  }

  #startParsed<O>(c: Compiled, value: unknown, deferred: boolean): RunHandle<O> {
    let r: NativeRun | NativeViolation;
    const stored = storable(value, 'input');
    try {
      r = this.#native.startRun(c.native, stored, deferred);
    } catch (e) {
      throw fromNative(e);
    }
    if (!(r instanceof addon.NativeRun)) throw violationError(r, stored);
    const n = r;
    // The run's input is what was handed to the engine: the result reuses it instead of
    // converting the stored copy back.
    return this.#drive<O>(n, { value: stored });
  }

  /**
   * Gives `data` to the suspended step at `path` and drives the run until it finishes or
   * suspends again. Works from any process on the same store. With the step's `resume` schema
   * registered here, the data are parsed with it first (defaults and transforms apply); data
   * that violate it reject with a `ValidationError` whose `issues` say where, and the run stays
   * suspended.
   */
  async resume<O = unknown>(runId: string, path: string, data?: unknown): Promise<Run<O>> {
    return (await this.#resumed<O>(runId, path, data)).result;
  }

  /** Parses `data` with the step's resume schema, commits it, and drives the run here. */
  async #resumed<O>(runId: string, path: string, data: unknown): Promise<RunHandle<O>> {
    let value = data;
    const fp = native(() => this.#native.suspendedFingerprint(runId, path));
    const c = fp === null || fp === undefined ? undefined : this.#byFingerprint.get(fp);
    const schema = c === undefined ? undefined : resumeSchemaAt(c, path);
    if (schema !== undefined) value = await parse(schema, data, `step \`${path}\` resume data`);
    const stored = storable(value, 'resumeData');
    const r = native(() => this.#native.resumeRun(runId, path, stored));
    if (!(r instanceof addon.NativeRun)) throw violationError(r, stored);
    return this.#drive<O>(r);
  }

  /**
   * Retries a failed run from its failed steps and drives it until it finishes or suspends:
   * the steps that failed run again (from attempt 1), the ones that succeeded are not run again
   * (their outputs come from the store), and the run's events gain a `run-retried` event. Works
   * from any process on the same store whose engine has the workflow registered. Rejects with a
   * `CONFLICT` error when the run is not failed, or failed outside any step (its timeout, a
   * divergence): start a new run then.
   */
  async retry<O = unknown>(runId: string): Promise<Run<O>> {
    return this.#retried<O>(runId).result;
  }

  #retried<O>(runId: string): RunHandle<O> {
    const r = native(() => this.#native.retryRun(runId));
    return this.#drive<O>(r);
  }

  /**
   * Enqueues a run: its input is checked (the workflow's schema) and the run committed without
   * an owner; this process runs none of it. A worker — `work()` or `recover()` in any process
   * on the same store with the workflow registered — takes and drives it, within the
   * concurrency limits. For a web process that only enqueues (a Next.js route handler).
   */
  async enqueue<I, O>(wf: Workflow<I, O>, input: I): Promise<string> {
    const w = wf as Workflow<never, unknown>;
    const c = compiled(w);
    if (!this.#byFingerprint.has(wf.fingerprint)) this.register(w);
    const value = c.def.input === undefined ? input : await parse(c.def.input, input, `workflow \`${wf.id}\` input`);
    const stored = storable(value, 'input');
    const r = native(() => this.#native.enqueueRun(c.native, stored));
    if (typeof r !== 'string') throw violationError(r, stored);
    return r;
  }

  /**
   * Works as a worker until `signal` aborts: takes enqueued runs, and runs a dead process left
   * running, of the workflows registered here (within `maxActive` and the concurrency limits)
   * and drives them. Between passes it waits for the store to report new work (Postgres:
   * `LISTEN`/`NOTIFY`, so an enqueued run or a decided gate is taken at once), looking again
   * every `pollMs` (default 500) as the safety net — on SQLite, the poll. Resolves once
   * aborted; the runs it took keep running to their end.
   */
  async work(options: { readonly signal?: AbortSignal; readonly pollMs?: number } = {}): Promise<void> {
    const pollMs = wholeNumber(options.pollMs ?? 500, '`pollMs`', { code: 'INVALID_ARGUMENT', min: 1, max: 2 ** 31 - 1, unit: 'milliseconds' });
    const signal = options.signal;
    while (!signal?.aborted) {
      for (const h of await this.recover()) {
        // Nobody here awaits them: their outcome is in the store (and their events).
        void h.result.catch(() => undefined);
      }
      if (signal?.aborted) break;
      const wait = this.#native.workWait(pollMs);
      // An abort settles the native wait: no timer outlives the worker.
      const abort = (): void => wait.cancel();
      signal?.addEventListener('abort', abort, { once: true });
      try {
        await wait.wait();
      } finally {
        signal?.removeEventListener('abort', abort);
      }
    }
  }

  /** Takes over runs a dead process left running (of registered workflows) and drives them here. */
  async recover(): Promise<Array<RunHandle<unknown>>> {
    const runs = native(() => this.#native.recoverRuns());
    return runs.map((n) => this.#drive<unknown>(n));
  }

  #drive<O>(n: NativeRun, input?: { readonly value: unknown }): RunHandle<O> {
    const c = this.#byFingerprint.get(n.fingerprint);
    if (c === undefined) {
      native(() => n.failRun(`no JavaScript functions are registered for fingerprint ${n.fingerprint}`));
      throw new MiyabiError('UNKNOWN_WORKFLOW', `run ${n.id}: its workflow definition (fingerprint ${n.fingerprint}) is not registered with this engine`);
    }
    const id = n.id;
    const d = new Driver(n, id, c, () => this.#drivers.delete(id), input);
    if (!d.done) this.#drivers.set(id, d);
    const result = d.result.then((r) => new Run<O>(this, info<O>(r)));
    return {
      id,
      result,
      events: (fromSeq = 1) => this.events(id, fromSeq),
      cancel: () => this.cancel(id) as Promise<RunInfo<O>>,
    };
  }

  /** Reads a run; null if there is none. */
  async get<O = unknown>(runId: string): Promise<RunInfo<O> | null> {
    const r = native(() => this.#native.get(runId));
    return r === null || r === undefined ? null : info<O>(r);
  }

  /** Lists runs, newest first. */
  async list(filter: ListFilter = {}): Promise<Array<RunInfo<unknown>>> {
    const rs = native(() =>
      this.#native.list({
        workflow: filter.workflow,
        status: filter.status,
        createdAfter: ms(filter.createdAfter),
        createdBefore: ms(filter.createdBefore),
        limit: filter.limit,
      }),
    );
    return rs.map((r) => info(r));
  }

  /**
   * Cancels a run (running here, suspended, or left behind by another process). Its open
   * approval gates close with it: they leave inboxes and refuse later decisions.
   */
  async cancel(runId: string): Promise<RunInfo<unknown>> {
    const d = this.#drivers.get(runId);
    const r = d !== undefined ? d.cancel() : native(() => this.#native.cancel(runId));
    if (r === null || r === undefined) {
      throw new ConflictError('CONFLICT', `run ${runId} is executing in this engine outside a driver; cancellation was requested`);
    }
    if (r.status === 'cancelled') {
      await this.#native.approvalClose(runId).catch((e: unknown) => {
        throw fromNative(e);
      });
    }
    return info(r);
  }

  /**
   * A run's events from `fromSeq` (1: all): the stored ones, then live ones while the run is
   * driven by this engine. Ends when the run is no longer driven here.
   */
  async *events(runId: string, fromSeq = 1): AsyncIterableIterator<RunEvent> {
    let next = Math.max(1, fromSeq);
    for (;;) {
      const d = this.#drivers.get(runId);
      let changed = false;
      const waiting =
        d === undefined
          ? undefined
          : new Promise<void>((resolve) => {
              const off = d.listen(() => {
                changed = true;
                off();
                resolve();
              });
            });
      const evs = native(() => this.#native.events(runId, next, 512)) as unknown as RunEvent[];
      for (const e of evs) {
        next = e.seq + 1;
        yield e;
      }
      if (evs.length > 0) continue;
      if (waiting === undefined || (d !== undefined && d.done && !changed)) return;
      await waiting;
    }
  }
}

/** Checks a retention rule's numbers (whole, at least 0) and that it has one of them. */
function checkRetention(rule: Retention): void {
  optionalWhole(rule.olderThanMs, '`olderThanMs`', { code: 'INVALID_ARGUMENT', unit: 'milliseconds' });
  optionalWhole(rule.keepLast, '`keepLast`', { code: 'INVALID_ARGUMENT' });
  if (rule.olderThanMs === undefined && rule.keepLast === undefined) {
    throw new MiyabiError('INVALID_ARGUMENT', 'a retention rule needs `olderThanMs` and/or `keepLast`');
  }
}
