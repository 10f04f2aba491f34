/**
 * The workflow DSL: `workflow(id, { input }).step(..).then(..).branch(..).parallel(..).commit()`.
 *
 * A committed workflow is a graph the Rust engine validated (unique ids, schemas that compile)
 * plus a table of the JS functions it calls, numbered in definition order: the same definition
 * gets the same numbers, and so the same fingerprint, in every process — which is what lets a
 * second process resume a run the first one suspended.
 */
import { type NativeSteps, type NativeWorkflow, addon } from './native.js';
import { Agent } from './agent.js';
import { ApprovalGate, type GateOutput } from './approval.js';
import { WorkflowDefinitionError, native } from './errors.js';
import { optionalWhole, wholeNumber } from './values.js';
import { type SchemaLike, type InferInput, type InferOutput, toJsonSchema } from './schema.js';

/** What a step function gets: its input, where it runs, and what it can do. */
export interface StepContext<I = unknown, R = unknown> {
  /** The step's input: the previous step's output (the run's input for the first step). */
  readonly input: I;
  /** The run's id. */
  readonly runId: string;
  /** The step's path in the run (`review/deploy`, `each[3]`, ...). */
  readonly path: string;
  /** Attempt number, from 1 (more when the step is retried). */
  readonly attempt: number;
  /** `runId:path`: stable across retries, replays and processes; use it to make side effects idempotent. */
  readonly idempotencyKey: string;
  /** The data given to `engine.resume` when this step suspended earlier; undefined otherwise. */
  readonly resumeData: R | undefined;
  /** Aborted when the run is cancelled (reason: `CancelledError`) or the step times out (`TimeoutError`). */
  readonly signal: AbortSignal;
  /** Suspends the run at this step with `payload`; `engine.resume(runId, path, data)` runs the step again with `resumeData`. Never returns. */
  suspend(payload?: unknown): never;
  /** The run's shared state, persisted with the run. */
  readonly state: RunState;
  /** Records a custom event in the run's event log. */
  emit(name: string, data?: unknown): void;
}

/** The run's shared key/value state. */
export interface RunState {
  /** Reads a key. */
  get<T = unknown>(key: string): T | undefined;
  /** Writes a key (committed with the step's result). */
  set(key: string, value: unknown): void;
}

/** A step as a function: sync or async; a throw fails the step (and retries it if its policy allows). */
export type StepFn<I = unknown, O = unknown, R = unknown> = (ctx: StepContext<I, R>) => O | Promise<O>;

/** Retries of a failed step: total attempts and backoff. */
export interface RetryOptions {
  /** Total attempts, including the first. */
  readonly attempts: number;
  /** Delay before the second attempt (default 100 ms); doubles each time. */
  readonly initialDelayMs?: number;
  /** Upper bound of a delay (default 30 s). */
  readonly maxDelayMs?: number;
  /** Randomize each delay between half and all of it (default true). */
  readonly jitter?: boolean;
}

/** Options of a step. */
export interface StepOptions<I = unknown, O = unknown, R = unknown> {
  /** Schema of the step's input (checked by the engine). */
  readonly input?: SchemaLike<unknown, I>;
  /** Schema of the step's output (parsed in JS, then checked by the engine). */
  readonly output?: SchemaLike<unknown, O>;
  /** Schema of the data `engine.resume` gives this step (checked when resuming). */
  readonly resume?: SchemaLike<unknown, R>;
  /** Retries: a number of attempts or a policy. */
  readonly retry?: number | RetryOptions;
  /** Fails the attempt (retryably) after this many milliseconds; the step's `signal` aborts. */
  readonly timeoutMs?: number;
  /** The step has side effects that must not repeat: after a crash mid-step it is not re-run
   * on its own; the run fails (`'fail'`) or suspends there (`'suspend'`). */
  readonly nonIdempotent?: 'fail' | 'suspend';
}

/** A step written as an object: its options and its `execute` function. */
export type StepSpec<I = unknown, O = unknown, R = unknown> = StepOptions<I, O, R> & {
  execute(ctx: StepContext<I, R>): O | Promise<O>;
};

/** A step made with `step()`: a function with its options. */
export interface StepDef<I = unknown, O = unknown, R = unknown> {
  readonly kind: 'miyabi.step';
  readonly options: StepOptions<unknown, unknown, unknown>;
  execute(ctx: StepContext<I, R>): O | Promise<O>;
  /** Type-level only. */
  readonly '~types'?: { readonly in: (input: I) => void; readonly out: O };
}

/**
 * A step with options, defined on its own (its input type comes from its `input` schema or its
 * annotation; inline in `.then()` an object `{ execute, ...options }` gets it from the workflow).
 *
 * ```ts
 * const approve = step({
 *   resume: z.object({ approved: z.boolean() }),
 *   retry: 3,
 *   execute: ({ resumeData, suspend }) => resumeData ?? suspend({ ask: 'ok?' }),
 * });
 * ```
 */
export function step<I = unknown, O = unknown, R = unknown>(def: StepSpec<I, O, R>): StepDef<I, O, R> {
  const { execute, ...options } = def;
  return { kind: 'miyabi.step', options: options as StepOptions<unknown, unknown, unknown>, execute: execute.bind(def) };
}

/** Anything that can run at one place of a workflow, taking `I`. */
export type StepLike<I = unknown> =
  | StepFn<I, unknown, unknown>
  | StepSpec<I, unknown, unknown>
  | StepDef<I, unknown, never>
  | Workflow<I, unknown>
  | Agent<unknown>
  | ApprovalGate;

/** The output type of a step function, step object, step definition or nested workflow. */
export type OutputOf<S> = S extends (ctx: never) => infer R
  ? Awaited<R>
  : S extends { execute(ctx: never): infer R }
    ? Awaited<R>
    : S extends { readonly '~types'?: { readonly out: infer O } }
      ? O
      : never;

/** The element type of an array type. */
export type ElementOf<T> = T extends ReadonlyArray<infer E> ? E : never;

/** What a branch selector and a loop condition get. */
export interface DecisionArgs<T> {
  /** The output being decided on. */
  readonly output: T;
}

/** What a `map` and a `sleepUntil` function get. */
export interface MapArgs<T> {
  /** The value flowing in. */
  readonly input: T;
}

type AnyFn = (arg: never) => unknown;

/** A JS function a committed workflow calls, by handle. */
export type Handler =
  | {
      readonly kind: 'step';
      readonly fn: (ctx: StepContext<unknown, unknown>) => unknown;
      readonly timeoutMs: number | undefined;
      readonly output: SchemaLike | undefined;
      readonly resume: SchemaLike | undefined;
    }
  | { readonly kind: 'select' | 'condition' | 'map' | 'wakeAt'; readonly fn: (args: never) => unknown };

type NodeDef =
  | { readonly kind: 'step'; readonly fn: AnyFn; readonly options: StepOptions<unknown, unknown, unknown> }
  | { readonly kind: 'workflow'; readonly workflow: Workflow<unknown, unknown> }
  | { readonly kind: 'native'; readonly add: (natives: NativeSteps) => number; readonly options: StepOptions<unknown, unknown, unknown> };

type ItemDef =
  | { readonly kind: 'step'; readonly id: string; readonly node: NodeDef }
  | { readonly kind: 'parallel'; readonly children: ReadonlyArray<readonly [string, NodeDef]>; readonly all: boolean }
  | { readonly kind: 'branch'; readonly id: string; readonly selector: AnyFn; readonly arms: ReadonlyArray<readonly [string, NodeDef]> }
  | { readonly kind: 'loop'; readonly id: string; readonly body: NodeDef; readonly condition: AnyFn; readonly until: boolean; readonly max: number | undefined }
  | { readonly kind: 'foreach'; readonly id: string; readonly body: NodeDef; readonly concurrency: number | undefined }
  | { readonly kind: 'sleep'; readonly id: string; readonly ms: number }
  | { readonly kind: 'sleepUntil'; readonly id: string; readonly fn: AnyFn }
  | { readonly kind: 'map'; readonly id: string; readonly fn: AnyFn };

interface Definition {
  readonly id: string;
  readonly input: SchemaLike | undefined;
  readonly output: SchemaLike | undefined;
  readonly timeoutMs: number | undefined;
  readonly items: ReadonlyArray<ItemDef>;
}

/** The internals of a committed workflow (not part of the public API). */
export interface Compiled {
  readonly def: Definition;
  readonly native: NativeWorkflow;
  readonly handlers: ReadonlyArray<Handler>;
}

const COMPILED: unique symbol = Symbol('miyabi.compiled');

/** A committed workflow: immutable; start runs of it with `engine.start(workflow, input)`. */
export class Workflow<I = unknown, O = unknown> {
  /** The workflow id. */
  readonly id: string;
  /** A hash of the definition; a run records it, and resuming needs the same definition. */
  readonly fingerprint: string;
  /** @internal */
  readonly [COMPILED]: Compiled;
  /** Type-level only. */
  declare readonly '~types'?: { readonly in: (input: I) => void; readonly out: O };

  /** @internal use `workflow(..).commit()` */
  constructor(compiled: Compiled) {
    this[COMPILED] = compiled;
    this.id = compiled.native.id;
    this.fingerprint = compiled.native.fingerprint;
  }
}

/** The internals of a committed workflow (for the engine). */
export function compiled(w: Workflow<never, unknown>): Compiled {
  return (w as Workflow<unknown, unknown>)[COMPILED];
}

function nodeOf(s: StepLike<never>, options?: StepOptions<unknown, unknown, unknown>): NodeDef {
  if (s instanceof Agent) return { kind: 'native', add: (n) => n.addAgent(s.native), options: options ?? {} };
  if (s instanceof ApprovalGate) {
    if (options !== undefined) throw new TypeError('step options do not apply to approval gates');
    return { kind: 'native', add: (n) => n.addGate(s.native), options: {} };
  }
  if (s instanceof Workflow) {
    if (options !== undefined) throw new TypeError('step options apply to steps, not to nested workflows');
    return { kind: 'workflow', workflow: s as Workflow<unknown, unknown> };
  }
  if (typeof s === 'function') return { kind: 'step', fn: s as AnyFn, options: options ?? {} };
  if (s !== null && typeof s === 'object' && 'kind' in s && s.kind === 'miyabi.step') {
    const def = s as StepDef<never, unknown, never>;
    return {
      kind: 'step',
      fn: ((ctx: StepContext<never, never>) => def.execute(ctx)) as AnyFn,
      options: { ...def.options, ...options },
    };
  }
  if (s !== null && typeof s === 'object' && typeof (s as { execute?: unknown }).execute === 'function') {
    const { execute, ...rest } = s as StepSpec<never, unknown, never>;
    const spec = s as StepSpec<never, unknown, never>;
    return {
      kind: 'step',
      fn: ((ctx: StepContext<never, never>) => execute.call(spec, ctx)) as AnyFn,
      options: { ...(rest as StepOptions<unknown, unknown, unknown>), ...options },
    };
  }
  throw new TypeError('expected a step function, a step object ({ execute }), a step() definition or a committed workflow');
}

/** A builder whose current value is an array (what `foreach` needs). */
type ArrayBuilder = { readonly '~types'?: { readonly current: ReadonlyArray<unknown> } };

/**
 * A workflow under construction; every method returns a new builder whose type tracks the
 * current output. `I` is what `engine.start` accepts, `C` the current value's type.
 */
export class WorkflowBuilder<I = unknown, C = unknown> {
  readonly #def: Definition;
  /** Type-level only. */
  declare readonly '~types'?: { readonly in: (input: I) => void; readonly current: C };

  /** @internal use `workflow(id)` */
  constructor(def: Definition) {
    this.#def = def;
  }

  #with<N>(item: ItemDef): WorkflowBuilder<I, N> {
    return new WorkflowBuilder<I, N>({ ...this.#def, items: [...this.#def.items, item] });
  }

  /** Appends a step (same as `then`). */
  step<O>(id: string, step: StepFn<C, O, unknown>, options?: StepOptions<C, O>): WorkflowBuilder<I, O>;
  step<O, R = unknown>(id: string, step: StepSpec<C, O, R>): WorkflowBuilder<I, O>;
  step<O>(id: string, step: StepDef<C, O, never> | Workflow<C, O>): WorkflowBuilder<I, O>;
  step<O>(id: string, step: Agent<O>, options?: Pick<StepOptions, 'retry' | 'timeoutMs'>): WorkflowBuilder<I, O>;
  step(id: string, step: StepLike<C>, options?: StepOptions<C>): WorkflowBuilder<I, unknown> {
    return this.#with({ kind: 'step', id, node: nodeOf(step as StepLike<never>, options as StepOptions | undefined) });
  }

  /**
   * Appends a step — a function, an object `{ execute, ...options }`, a `step()` definition
   * or a committed workflow (nested) — that gets the current value as input.
   */
  then<O>(id: string, step: StepFn<C, O, unknown>, options?: StepOptions<C, O>): WorkflowBuilder<I, O>;
  then<O, R = unknown>(id: string, step: StepSpec<C, O, R>): WorkflowBuilder<I, O>;
  then<O>(id: string, step: StepDef<C, O, never> | Workflow<C, O>): WorkflowBuilder<I, O>;
  then<O>(id: string, step: Agent<O>, options?: Pick<StepOptions, 'retry' | 'timeoutMs'>): WorkflowBuilder<I, O>;
  then(id: string, step: StepLike<C>, options?: StepOptions<C>): WorkflowBuilder<I, unknown> {
    return this.#with({ kind: 'step', id, node: nodeOf(step as StepLike<never>, options as StepOptions | undefined) });
  }

  /**
   * Appends an approval gate: the run suspends until people decide it (see
   * `engine.approvals`); the gate's output is the decision, with the current value as
   * approved (possibly edited) under `data`.
   */
  awaitApproval(id: string, gate: ApprovalGate): WorkflowBuilder<I, GateOutput<C>> {
    return this.#with({ kind: 'step', id, node: nodeOf(gate) });
  }

  /**
   * Runs exactly one arm: the one `selector` names for the current value; the arm gets that
   * value, and its output is the branch's. The choice is recorded, so a replay takes the same arm.
   */
  branch<A extends Record<string, StepLike<C>>>(
    id: string,
    selector: (args: DecisionArgs<C>) => Extract<keyof A, string> | Promise<Extract<keyof A, string>>,
    arms: A,
  ): WorkflowBuilder<I, OutputOf<A[keyof A]>> {
    return this.#with({
      kind: 'branch',
      id,
      selector: selector as AnyFn,
      arms: Object.entries(arms).map(([k, s]) => [k, nodeOf(s as StepLike<never>)] as const),
    });
  }

  /** Runs the children concurrently on the current value; the output is keyed by child id. The first failure fails the run. */
  parallel<A extends Record<string, StepLike<C>>>(children: A): WorkflowBuilder<I, { -readonly [K in keyof A]: OutputOf<A[K]> }> {
    return this.#with({
      kind: 'parallel',
      all: false,
      children: Object.entries(children).map(([k, s]) => [k, nodeOf(s as StepLike<never>)] as const),
    });
  }

  /** Like `parallel`, but waits for every child: a failed child's entry is `{ error }` and the run goes on. */
  parallelAll<A extends Record<string, StepLike<C>>>(
    children: A,
  ): WorkflowBuilder<I, { -readonly [K in keyof A]: OutputOf<A[K]> | { readonly error: string } }> {
    return this.#with({
      kind: 'parallel',
      all: true,
      children: Object.entries(children).map(([k, s]) => [k, nodeOf(s as StepLike<never>)] as const),
    });
  }

  /** Runs `body` once per element of the current value (an array), at most `concurrency` at a time (default 1); the output is the results in order. */
  foreach<O>(
    this: ArrayBuilder,
    id: string,
    body: StepFn<ElementOf<C>, O, unknown>,
    options?: { readonly concurrency?: number } & StepOptions<ElementOf<C>, O>,
  ): WorkflowBuilder<I, O[]>;
  foreach<O, R = unknown>(
    this: ArrayBuilder,
    id: string,
    body: StepSpec<ElementOf<C>, O, R>,
    options?: { readonly concurrency?: number },
  ): WorkflowBuilder<I, O[]>;
  foreach<O>(
    this: ArrayBuilder,
    id: string,
    body: StepDef<ElementOf<C>, O, never> | Workflow<ElementOf<C>, O>,
    options?: { readonly concurrency?: number },
  ): WorkflowBuilder<I, O[]>;
  foreach(
    id: string,
    body: StepLike<ElementOf<C>>,
    options?: { readonly concurrency?: number } & StepOptions<ElementOf<C>>,
  ): WorkflowBuilder<I, unknown[]> {
    const { concurrency, ...stepOptions } = options ?? {};
    return this.#with({
      kind: 'foreach',
      id,
      body: nodeOf(body as StepLike<never>, Object.keys(stepOptions).length > 0 ? (stepOptions as StepOptions) : undefined),
      concurrency,
    });
  }

  /** Runs `body`, then again on its own output while `condition` holds, at most `maxIterations` times (default 100; more fails the run). */
  dowhile(
    id: string,
    body: StepFn<C, C, unknown> | StepSpec<C, C, unknown> | StepDef<C, C, never> | Workflow<C, C>,
    condition: (args: DecisionArgs<C>) => boolean | Promise<boolean>,
    options?: { readonly maxIterations?: number },
  ): WorkflowBuilder<I, C> {
    return this.#loop(id, body, condition, false, options?.maxIterations);
  }

  /** Runs `body`, then again on its own output until `condition` holds, at most `maxIterations` times (default 100). */
  dountil(
    id: string,
    body: StepFn<C, C, unknown> | StepSpec<C, C, unknown> | StepDef<C, C, never> | Workflow<C, C>,
    condition: (args: DecisionArgs<C>) => boolean | Promise<boolean>,
    options?: { readonly maxIterations?: number },
  ): WorkflowBuilder<I, C> {
    return this.#loop(id, body, condition, true, options?.maxIterations);
  }

  #loop(id: string, body: unknown, condition: unknown, until: boolean, max: number | undefined): WorkflowBuilder<I, C> {
    return this.#with({
      kind: 'loop',
      id,
      body: nodeOf(body as StepLike<never>),
      condition: condition as AnyFn,
      until,
      max,
    });
  }

  /** Waits `ms` milliseconds, durably (a restarted process waits only what is left); passes the value on. */
  sleep(id: string, ms: number): WorkflowBuilder<I, C> {
    return this.#with({ kind: 'sleep', id, ms });
  }

  /** Waits until the time `at` returns for the current value; passes the value on. */
  sleepUntil(id: string, at: (args: MapArgs<C>) => Date | number | Promise<Date | number>): WorkflowBuilder<I, C> {
    return this.#with({ kind: 'sleepUntil', id, fn: at as AnyFn });
  }

  /** Reshapes the current value; the result is recorded like a step's output. */
  map<O>(id: string, f: (args: MapArgs<C>) => O | Promise<O>): WorkflowBuilder<I, O> {
    return this.#with({ kind: 'map', id, fn: f as AnyFn });
  }

  /** Fails a run that takes longer than `ms` in total (time suspended counts too). */
  timeout(ms: number): WorkflowBuilder<I, C> {
    return new WorkflowBuilder<I, C>({ ...this.#def, timeoutMs: ms });
  }

  /** A schema the run's output must satisfy. */
  output<S extends SchemaLike<unknown, C>>(schema: S): WorkflowBuilder<I, C> {
    return new WorkflowBuilder<I, C>({ ...this.#def, output: schema });
  }

  /** Validates the definition (in the engine) and freezes it. Throws a `WorkflowDefinitionError`. */
  commit(): Workflow<I, C> {
    const handlers: Handler[] = [];
    const natives = new addon.NativeSteps();
    const spec = specOf(this.#def, { handlers, natives });
    const nw = native(() => addon.compileWorkflow(spec, natives));
    return new Workflow<I, C>({ def: this.#def, native: nw, handlers });
  }
}

/**
 * Starts a workflow definition. With `{ input: schema }` the run's input is validated and typed.
 *
 * ```ts
 * const wf = workflow('greet', { input: z.object({ name: z.string() }) })
 *   .step('hello', ({ input }) => `hello ${input.name}`)
 *   .commit();
 * ```
 */
export function workflow<S extends SchemaLike = SchemaLike<unknown, unknown>>(
  id: string,
  options?: { readonly input?: S; readonly timeoutMs?: number },
): WorkflowBuilder<InferInput<S>, InferOutput<S>> {
  if (typeof id !== 'string' || id === '') {
    throw new WorkflowDefinitionError(
      'INVALID_WORKFLOW',
      `a workflow id must be a non-empty string, got ${typeof id === 'string' ? "''" : String(id)}: workflow('my-workflow')`,
    );
  }
  return new WorkflowBuilder({
    id,
    input: options?.input,
    output: undefined,
    timeoutMs: options?.timeoutMs,
    items: [],
  });
}

/** Resume schemas of a committed workflow by path template (`fix[*]/revise`), built once. */
const RESUME_SCHEMAS = new WeakMap<Compiled, ReadonlyMap<string, SchemaLike>>();

/** The `resume` schema of the JS step at `path` (`fix[2]/revise`) of a committed workflow. */
export function resumeSchemaAt(c: Compiled, path: string): SchemaLike | undefined {
  let m = RESUME_SCHEMAS.get(c);
  if (m === undefined) {
    const byTemplate = new Map<string, SchemaLike>();
    for (const s of c.native.stepPaths()) {
      const h = c.handlers[s.handle];
      if (h !== undefined && h.kind === 'step' && h.resume !== undefined) byTemplate.set(s.path, h.resume);
    }
    m = byTemplate;
    RESUME_SCHEMAS.set(c, m);
  }
  return m.size === 0 ? undefined : m.get(path.replace(/\[\d+\]/g, '[*]'));
}

/** The input schema of a committed workflow (to parse the input in JS before starting). */
export function inputSchema(w: Workflow<never, unknown>): SchemaLike | undefined {
  return compiled(w).def.input;
}

/** What a spec collects: the JS functions and the Rust steps it names by number. */
interface Tables {
  readonly handlers: Handler[];
  readonly natives: NativeSteps;
}

function specOf(def: Definition, t: Tables): Record<string, unknown> {
  const spec: Record<string, unknown> = { id: def.id, steps: def.items.map((i) => itemSpec(i, t)) };
  if (def.input !== undefined) spec.inputSchema = toJsonSchema(def.input);
  if (def.output !== undefined) spec.outputSchema = toJsonSchema(def.output);
  if (def.timeoutMs !== undefined) {
    spec.timeoutMs = wholeNumber(def.timeoutMs, `the \`timeoutMs\` of workflow \`${def.id}\``, MS_NO_TIMEOUT);
  }
  return spec;
}

/** How a duration option is checked (a whole number of ms; Infinity is not "no timeout"). */
const MS = { code: 'INVALID_WORKFLOW', unit: 'milliseconds' } as const;
const MS_NO_TIMEOUT = { ...MS, hint: 'omit it for no timeout' } as const;

/** A retry option as the spec takes it, checked. */
function retrySpec(r: number | RetryOptions, where: string): Record<string, unknown> {
  const counts = { code: 'INVALID_WORKFLOW', min: 0, max: 4_294_967_295 } as const;
  if (typeof r === 'number') return { attempts: wholeNumber(r, `the \`retry\` of ${where}`, counts) };
  if (r === null || typeof r !== 'object') {
    throw new WorkflowDefinitionError('INVALID_WORKFLOW', `the \`retry\` of ${where} must be a number of attempts or { attempts, initialDelayMs?, maxDelayMs?, jitter? }, got ${String(r)}`);
  }
  const out: Record<string, unknown> = { ...r, attempts: wholeNumber(r.attempts, `the \`retry.attempts\` of ${where}`, counts) };
  const initial = optionalWhole(r.initialDelayMs, `the \`retry.initialDelayMs\` of ${where}`, MS);
  if (initial !== undefined) out.initialDelayMs = initial;
  const max = optionalWhole(r.maxDelayMs, `the \`retry.maxDelayMs\` of ${where}`, MS);
  if (max !== undefined) out.maxDelayMs = max;
  return out;
}

function handle(handlers: Handler[], h: Handler): number {
  handlers.push(h);
  return handlers.length - 1;
}

function itemSpec(item: ItemDef, t: Tables): Record<string, unknown> {
  const handlers = t.handlers;
  switch (item.kind) {
    case 'step':
      return { kind: 'step', id: item.id, node: nodeSpec(item.node, t, `step \`${item.id}\``) };
    case 'parallel':
      return {
        kind: 'parallel',
        all: item.all,
        children: item.children.map(([id, n]) => ({ id, node: nodeSpec(n, t, `step \`${id}\``) })),
      };
    case 'branch': {
      const selector = handle(handlers, { kind: 'select', fn: item.selector });
      return {
        kind: 'branch',
        id: item.id,
        selector,
        arms: item.arms.map(([id, n]) => ({ id, node: nodeSpec(n, t, `arm \`${id}\` of branch \`${item.id}\``) })),
      };
    }
    case 'loop': {
      const body = nodeSpec(item.body, t, `loop \`${item.id}\``);
      const condition = handle(handlers, { kind: 'condition', fn: item.condition });
      // Left out when not given: the core's default applies.
      const maxIterations = optionalWhole(item.max, `the \`maxIterations\` of loop \`${item.id}\``, { code: 'INVALID_WORKFLOW', min: 1, max: 4_294_967_295 });
      return { kind: 'loop', id: item.id, body, condition, until: item.until, ...(maxIterations === undefined ? {} : { maxIterations }) };
    }
    case 'foreach': {
      const concurrency = optionalWhole(item.concurrency, `the \`concurrency\` of foreach \`${item.id}\``, { code: 'INVALID_WORKFLOW', min: 1, max: 4_294_967_295 });
      return { kind: 'foreach', id: item.id, body: nodeSpec(item.body, t, `foreach \`${item.id}\``), ...(concurrency === undefined ? {} : { concurrency }) };
    }
    case 'sleep':
      return { kind: 'sleep', id: item.id, ms: wholeNumber(item.ms, `the duration of sleep \`${item.id}\``, MS) };
    case 'sleepUntil':
      return { kind: 'sleepUntil', id: item.id, handle: handle(handlers, { kind: 'wakeAt', fn: item.fn }) };
    case 'map':
      return { kind: 'map', id: item.id, handle: handle(handlers, { kind: 'map', fn: item.fn }) };
  }
}

function nodeSpec(node: NodeDef, t: Tables, where: string): Record<string, unknown> {
  if (node.kind === 'workflow') {
    return { kind: 'workflow', workflow: specOf(compiled(node.workflow).def, t) };
  }
  const o = node.options;
  if (node.kind === 'native') {
    const spec: Record<string, unknown> = { kind: 'native', index: node.add(t.natives) };
    if (o.retry !== undefined) spec.retry = retrySpec(o.retry, where);
    if (o.timeoutMs !== undefined) spec.timeoutMs = wholeNumber(o.timeoutMs, `the \`timeoutMs\` of ${where}`, MS_NO_TIMEOUT);
    return spec;
  }
  const handlers = t.handlers;
  const timeoutMs = optionalWhole(o.timeoutMs, `the \`timeoutMs\` of ${where}`, MS_NO_TIMEOUT);
  const h = handle(handlers, {
    kind: 'step',
    fn: node.fn as (ctx: StepContext<unknown, unknown>) => unknown,
    timeoutMs,
    output: o.output,
    resume: o.resume,
  });
  const spec: Record<string, unknown> = { kind: 'step', handle: h };
  if (o.retry !== undefined) spec.retry = retrySpec(o.retry, where);
  if (timeoutMs !== undefined) spec.timeoutMs = timeoutMs;
  if (o.nonIdempotent !== undefined) spec.nonIdempotent = o.nonIdempotent;
  if (o.input !== undefined) spec.inputSchema = toJsonSchema(o.input);
  if (o.output !== undefined) spec.outputSchema = toJsonSchema(o.output);
  if (o.resume !== undefined) spec.resumeSchema = toJsonSchema(o.resume);
  return spec;
}
