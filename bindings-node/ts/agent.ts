/**
 * Agents with JS tools, and agent memory.
 *
 * The tool loop runs in Rust (model calls, argument validation, concurrent tool calls, structured
 * output); a JS tool's `execute` is called from it through a threadsafe function and awaited.
 * An `Agent` is also a workflow step: `.step('analyze', agent)`.
 */
import { type NativeAgent, type NativeMemory, type NativeToolCall, addon } from './native.js';
import { MiyabiError, native } from './errors.js';
import { type InferOutput, type SchemaLike, parse, toInputJsonSchema, toJsonSchema } from './schema.js';
import { type Message, type ModelLike, U32, nativeModel, settings } from './model.js';
import { type AgentCheckpoint, type AgentResult, AgentStreamResult, agentResult, single } from './result.js';
import { optionalWhole, storable, wholeNumber } from './values.js';

/** What a tool's `execute` gets besides its arguments. */
export interface ToolContext {
  /** The model's id for this call. */
  readonly toolCallId: string;
  /** The calling agent's name. */
  readonly agent: string;
  /** The workflow run, when the agent runs as a step. */
  readonly runId: string | undefined;
  /** The step's path, when the agent runs as a step. */
  readonly path: string | undefined;
  /** `run:path:call` inside a workflow (stable across replays), the call id otherwise. */
  readonly idempotencyKey: string;
  /** The memory thread of the conversation, if any. */
  readonly thread: string | undefined;
  /** The memory resource of the conversation, if any. */
  readonly resource: string | undefined;
}

/**
 * Whether a tool call needs approval: a constant, or a function of the call's arguments (like
 * the AI SDK's `needsApproval`), e.g. a shell tool that asks only for commands outside a policy.
 */
export type ApprovalPredicate<I> = boolean | ApprovalCheck<I>;

/** The function form, declared as a method so that its argument is compared bivariantly (as
 * `execute`'s is): a tool with typed arguments stays assignable to `Tool<unknown, unknown>`, the
 * type of `AgentOptions.tools`. */
type ApprovalCheck<I> = { check(args: I): boolean | Promise<boolean> }['check'];

/** A tool a model can call. */
export interface Tool<I = unknown, O = unknown> {
  readonly kind: 'miyabi.tool';
  /** What it does, for the model. */
  readonly description: string | undefined;
  /** The schema of its arguments (a zod object, or `jsonSchema(...)`). */
  readonly parameters: SchemaLike<unknown, I>;
  /**
   * Whether a call needs a human's approval first (the agent stops, or its workflow run
   * suspends): always, never, or as a function of the call's arguments decides.
   */
  readonly requiresApproval: ApprovalPredicate<I>;
  /** A call ends the agent's loop; its result is the answer. */
  readonly final: boolean;
  /** Runs the tool; a throw goes back to the model as the call's error. */
  execute(args: I, ctx: ToolContext): O | Promise<O>;
}

/** The definition `tool()` takes. */
export interface ToolDefinition<S extends SchemaLike, O> {
  readonly description?: string;
  readonly parameters: S;
  /**
   * `true`: every call waits for a human's approval; a function: asked once per call with its
   * (parsed) arguments — a throw or a rejected promise counts as "needs approval". The answer is
   * kept in the agent's checkpoint, so a resumed run does not ask again.
   */
  readonly requiresApproval?: ApprovalPredicate<InferOutput<S>>;
  readonly final?: boolean;
  execute(args: InferOutput<S>, ctx: ToolContext): O | Promise<O>;
}

/**
 * A tool; its arguments are typed from the `parameters` schema.
 *
 * ```ts
 * const weather = tool({
 *   description: 'Current weather for a city',
 *   parameters: z.object({ city: z.string() }),
 *   execute: async ({ city }) => ({ city, sky: 'clear' }),
 * });
 * ```
 */
export function tool<S extends SchemaLike, O>(def: ToolDefinition<S, O>): Tool<InferOutput<S>, O> {
  return {
    kind: 'miyabi.tool',
    description: def.description,
    parameters: def.parameters as SchemaLike<unknown, InferOutput<S>>,
    requiresApproval: def.requiresApproval ?? false,
    final: def.final ?? false,
    execute: (args, ctx) => def.execute(args, ctx),
  };
}

/** What an agent is asked: a prompt, messages, or both with memory ids and a request context. */
export type AgentInput =
  | string
  | ReadonlyArray<Message>
  | {
      readonly prompt?: string;
      readonly messages?: ReadonlyArray<Message>;
      /** Memory thread: its last messages are the history; the new ones are appended. */
      readonly thread?: string;
      /** Memory resource (user, account...) the thread belongs to. */
      readonly resource?: string;
      /** Request context. */
      readonly context?: unknown;
    };

/** How to call an agent. */
export interface AgentCallOptions {
  /** Aborts the generation. */
  readonly abortSignal?: AbortSignal;
}

/** An agent's settings. */
export interface AgentOptions<O = string> {
  /** Its name (in errors, events and tool contexts). */
  readonly name: string;
  /** `"provider/model"` or `model(...)`. */
  readonly model: ModelLike;
  /** The system message. */
  readonly instructions?: string;
  /** Tools by name. */
  readonly tools?: Readonly<Record<string, Tool<unknown, unknown>>>;
  /** Most model calls per generation (default 8). */
  readonly maxSteps?: number;
  /** Structured output: the answer must follow this schema (validated; one repair attempt). */
  readonly output?: SchemaLike<unknown, O>;
  /** `auto` (default), `none`, `required`, or a tool's name. */
  readonly toolChoice?: string;
  readonly temperature?: number;
  readonly maxTokens?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly stopSequences?: ReadonlyArray<string>;
  readonly seed?: number;
  /** Memory: with a `thread` in the input, the thread's last messages are the history. */
  readonly memory?: Memory;
  /** How many messages of the thread are read back (default 20). */
  readonly lastMessages?: number;
  /** Show the working memory to the model and give it a `remember` tool (needs `memory`). */
  readonly workingMemory?: boolean;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * An agent: a model with instructions and tools, running the tool loop (model call → tool calls,
 * concurrently → results → model call) until it answers or `maxSteps` calls were made.
 *
 * ```ts
 * const agent = new Agent({ name: 'helper', model: 'openai/gpt-4o', instructions: 'Be brief.', tools: { weather } });
 * const { text } = await agent.generate('Weather in Paris?');
 * ```
 */
export class Agent<O = string> {
  /** Its name. */
  readonly name: string;
  /** @internal */
  readonly native: NativeAgent;
  readonly #output: SchemaLike<unknown, O> | undefined;
  /** Type-level only. */
  declare readonly '~types'?: { readonly in: (input: unknown) => void; readonly out: O };

  constructor(options: AgentOptions<O>) {
    this.name = options.name;
    this.#output = options.output;
    const tools = options.tools ?? {};
    const defs = Object.entries(tools).map(([name, t]) => ({
      name,
      description: t.description,
      parameters: toInputJsonSchema(t.parameters),
      requiresApproval: t.requiresApproval === true,
      approvalFn: typeof t.requiresApproval === 'function',
      isFinal: t.final,
    }));
    const dispatch = async (call: NativeToolCall): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> => {
      const t = tools[call.tool] as Tool<unknown, unknown> | undefined;
      if (t === undefined) return { ok: false, error: `no JS tool named ${call.tool}` };
      if (call.approval === true) {
        // The approval question: asked once per call; any failure means "ask a human".
        const rule = t.requiresApproval;
        if (typeof rule !== 'function') return { ok: true, value: rule };
        try {
          const args = await parse(t.parameters, call.args, `tool \`${call.tool}\` arguments`);
          const needs = await rule(args);
          return { ok: true, value: needs !== false };
        } catch (e) {
          return { ok: false, error: errorText(e) };
        }
      }
      try {
        const args = await parse(t.parameters, call.args, `tool \`${call.tool}\` arguments`);
        const out = await t.execute(args, {
          toolCallId: call.toolCallId,
          agent: call.agent,
          runId: call.runId ?? undefined,
          path: call.path ?? undefined,
          idempotencyKey: call.idempotencyKey,
          thread: call.thread ?? undefined,
          resource: call.resource ?? undefined,
        });
        return { ok: true, value: storable(out, 'result') };
      } catch (e) {
        return { ok: false, error: errorText(e) };
      }
    };
    const count = { code: 'INVALID_ARGUMENT', max: U32 } as const;
    const sampling = settings(options);
    const config = {
      name: options.name,
      instructions: options.instructions,
      maxSteps: optionalWhole(options.maxSteps, `the \`maxSteps\` of agent \`${options.name}\``, count),
      toolChoice: options.toolChoice,
      outputSchema: options.output === undefined ? undefined : toJsonSchema(options.output),
      ...sampling,
      lastMessages: optionalWhole(options.lastMessages, `the \`lastMessages\` of agent \`${options.name}\``, count),
      workingMemory: options.workingMemory,
    };
    this.native = native(() =>
      addon.NativeAgent.create(
        config,
        nativeModel(options.model),
        defs,
        dispatch,
        options.memory?.native,
      ),
    );
  }

  /** Runs the tool loop to an answer. Rejects with a `ProviderError` when the model's provider fails. */
  async generate(input: AgentInput, options: AgentCallOptions = {}): Promise<AgentResult<O>> {
    const n = this.native.generate(storable(input, 'input'));
    return this.#parsed(agentResult<O>(await single(n, 'agent-response', options.abortSignal)));
  }

  /** Runs the tool loop, streaming text, tool calls and results, and step boundaries. */
  stream(input: AgentInput, options: AgentCallOptions = {}): AgentStreamResult<O> {
    return new AgentStreamResult<O>(this.native.stream(storable(input, 'input')), options.abortSignal);
  }

  /**
   * Continues a generation that stopped for approval, with the decisions: `{ approved: true }`
   * (or `false`, with a `reason`) for every pending call, or per call
   * `{ decisions: { [toolCallId]: { approved, reason?, arguments? } } }`.
   */
  async resume(checkpoint: AgentCheckpoint, decisions: unknown): Promise<AgentResult<O>> {
    const n = this.native.resume(storable(checkpoint, 'checkpoint'), storable(decisions, 'decisions'));
    return this.#parsed(agentResult<O>(await single(n, 'agent-response')));
  }

  /**
   * `resume`, streaming like `stream`: the decided calls' results first, then the rest of the
   * tool loop. For chat routes, see `agentChatResponse`.
   */
  resumeStream(checkpoint: AgentCheckpoint, decisions: unknown, options: AgentCallOptions = {}): AgentStreamResult<O> {
    return new AgentStreamResult<O>(
      this.native.resumeStream(storable(checkpoint, 'checkpoint'), storable(decisions, 'decisions')),
      options.abortSignal,
    );
  }

  async #parsed(r: AgentResult<O>): Promise<AgentResult<O>> {
    if (this.#output === undefined || r.object === undefined) return r;
    const object = await parse(this.#output, r.object, `agent \`${this.name}\` output`);
    return { ...r, object };
  }
}

/** A working memory: a JSON document of keys for one thread or resource. */
export class WorkingMemory {
  readonly #m: NativeMemory;
  readonly #kind: 'thread' | 'resource';
  readonly #id: string;

  /** @internal use `memory.thread(id)` or `memory.resource(id)` */
  constructor(m: NativeMemory, kind: 'thread' | 'resource', id: string) {
    this.#m = m;
    this.#kind = kind;
    this.#id = id;
  }

  /** A key's value (undefined if missing or expired). */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    const v = await memoryCall(() => this.#m.get(this.#kind, this.#id, key));
    return (v ?? undefined) as T | undefined;
  }

  /** Writes a key; with `ttlMs` it expires after that long. */
  async set(key: string, value: unknown, options: { readonly ttlMs?: number } = {}): Promise<void> {
    const stored = storable(value, 'value');
    const ttlMs = optionalWhole(options.ttlMs, 'the `ttlMs` of a working-memory key', { code: 'INVALID_ARGUMENT', min: 1, unit: 'milliseconds', hint: 'omit it for no expiry' });
    await memoryCall(() => this.#m.set(this.#kind, this.#id, key, stored, ttlMs));
  }

  /** Merges a JSON merge patch (RFC 7386) into a key (created if missing); returns the new value. */
  async merge<T = unknown>(key: string, patch: unknown): Promise<T> {
    const stored = storable(patch, 'patch');
    return (await memoryCall(() => this.#m.merge(this.#kind, this.#id, key, stored))) as T;
  }

  /** Deletes a key; whether it existed. */
  async delete(key: string): Promise<boolean> {
    return memoryCall(() => this.#m.delete(this.#kind, this.#id, key));
  }

  /** Every key. */
  async all(): Promise<Record<string, unknown>> {
    return memoryCall(() => this.#m.all(this.#kind, this.#id));
  }

  /** Deletes every key; how many there were. */
  async clear(): Promise<number> {
    return memoryCall(() => this.#m.clear(this.#kind, this.#id));
  }
}

async function memoryCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new MiyabiError('MEMORY', errorText(e), { cause: e });
  }
}

/**
 * Agent memory in SQLite: threads of messages and working memory per thread or resource (TTL
 * per key). Give it to agents (`memory`), or use its working memory directly.
 *
 * ```ts
 * const memory = Memory.open('sqlite:./app.db');
 * await memory.resource('user-42').set('lang', 'ja');
 * ```
 */
export class Memory {
  /** @internal */
  readonly native: NativeMemory;

  private constructor(n: NativeMemory) {
    this.native = n;
  }

  /** Opens memory: `'memory'` (default, private to this process) or `'sqlite:<path>'` (may be the engine's file). */
  static open(store: 'memory' | `sqlite:${string}` = 'memory'): Memory {
    const path = store === 'memory' ? 'memory' : store.slice('sqlite:'.length);
    if (store !== 'memory' && !store.startsWith('sqlite:')) {
      throw new MiyabiError('INVALID_ARGUMENT', `unknown memory store \`${String(store)}\`: use 'memory' or 'sqlite:<path>'`);
    }
    return new Memory(native(() => addon.NativeMemory.open(path)));
  }

  /** The working memory of a thread. */
  thread(id: string): WorkingMemory {
    return new WorkingMemory(this.native, 'thread', id);
  }

  /** The working memory of a resource (user, account...), shared by its threads. */
  resource(id: string): WorkingMemory {
    return new WorkingMemory(this.native, 'resource', id);
  }

  /** The last `n` messages of a thread, oldest first, as stored (`{ id, thread, message, createdAt, ... }`). */
  async lastMessages(thread: string, n = 20): Promise<Array<Record<string, unknown>>> {
    const count = wholeNumber(n, 'the number of messages of lastMessages()', { code: 'INVALID_ARGUMENT', max: U32 });
    return memoryCall(() => this.native.lastMessages(thread, count));
  }

  /** Deletes a thread, its messages and its working memory; whether it existed. */
  async deleteThread(thread: string): Promise<boolean> {
    return memoryCall(() => this.native.deleteThread(thread));
  }
}
