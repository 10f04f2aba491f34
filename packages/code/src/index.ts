/**
 * @miyabi/code — the coding agent's tools for `@miyabi/core` agents: read, search and edit files
 * confined to a workspace, git, a repository map, and a shell that runs commands in a
 * bubblewrap sandbox under a `deny > ask > allow` permission policy. The tools are the Rust
 * crate `miyabi-code`'s, in a native addon of this package.
 *
 * ```ts
 * import { Agent } from '@miyabi/core';
 * import { codingTools } from '@miyabi/code';
 *
 * const agent = new Agent({
 *   name: 'coder',
 *   model: 'openai/gpt-4.1',
 *   instructions: 'Fix what the user asks; run the tests with the shell.',
 *   tools: codingTools('/path/to/repo', { policy: { allow: ['npm test:*'] } }),
 *   maxSteps: 30,
 * });
 * const result = await agent.generate('make the failing test pass');
 * // a shell command the policy asks about stops the agent: result.pending lists it;
 * // agent.resume(result.checkpoint, { approved: true }) runs it.
 * ```
 */
import { MiyabiError, jsonSchema, preset, presets, tool } from '@miyabi/core';
import type { Agent, ErrorCode, Memory, ModelLike, Tool } from '@miyabi/core';
import { addon, type NativeCodeTools } from './native.js';

/** How much a shell command may touch (Codex's sandbox modes). */
export type SandboxMode = 'read-only' | 'workspace-write' | 'full-access';

/** Every tool's name, in the order `codingTools` returns them. */
export const CODING_TOOL_NAMES = [
  'read_file',
  'list_dir',
  'glob',
  'grep',
  'write_file',
  'edit',
  'apply_patch',
  'todo',
  'git_status',
  'git_diff',
  'git_add',
  'git_commit',
  'git_branch',
  'repo_map',
  'find_symbol',
  'shell',
] as const;

/** A coding tool's name. */
export type CodingToolName = (typeof CODING_TOOL_NAMES)[number];

/** An item of the agent's todo list. */
export interface TodoItem {
  /** What to do, imperative ("Fix the failing test"). */
  readonly content: string;
  readonly status: 'pending' | 'in_progress' | 'completed';
}

/** Each tool's arguments (what the model sends; the JSON Schemas say the same). */
export interface CodingToolArgs {
  readonly read_file: { readonly path: string; readonly offset?: number | null; readonly limit?: number | null };
  readonly list_dir: { readonly path?: string | null; readonly depth?: number | null };
  readonly glob: { readonly pattern: string; readonly path?: string | null };
  readonly grep: {
    readonly pattern: string;
    readonly path?: string | null;
    readonly glob?: string | null;
    readonly ignore_case?: boolean;
    readonly context?: number | null;
    readonly files_only?: boolean;
  };
  readonly write_file: { readonly path: string; readonly content: string };
  readonly edit: { readonly path: string; readonly old_string: string; readonly new_string: string; readonly replace_all?: boolean };
  readonly apply_patch: { readonly patch: string };
  readonly todo: { readonly todos?: ReadonlyArray<TodoItem> | null };
  readonly git_status: Readonly<Record<string, never>>;
  readonly git_diff: { readonly paths?: ReadonlyArray<string>; readonly staged?: boolean };
  readonly git_add: { readonly paths?: ReadonlyArray<string> };
  readonly git_commit: { readonly message: string };
  readonly git_branch: { readonly name?: string | null; readonly checkout?: boolean };
  readonly repo_map: { readonly token_budget?: number | null };
  readonly find_symbol: { readonly name: string; readonly limit?: number | null };
  readonly shell: { readonly command: string; readonly timeout_ms?: number };
}

/** What the shell tool returns. */
export interface ShellResult {
  /** The exit code (null when the command was killed). */
  readonly exit_code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timed_out: boolean;
  /** Output was cut in the middle (past the cap). */
  readonly truncated: boolean;
  /** The sandbox it ran in: `read-only`, `workspace-write`, `full-access`, or `none`. */
  readonly sandbox: string;
  readonly duration_ms: number;
  /** Set when the command timed out. */
  readonly note?: string;
}

/** Each tool's result: text sized for a model, except the shell's. */
export type CodingToolResults = { readonly [K in CodingToolName]: K extends 'shell' ? ShellResult : string };

/** The tools `codingTools` returns, as `@miyabi/core` tools. */
export type CodingTools<K extends CodingToolName = CodingToolName> = {
  readonly [P in K]: Tool<CodingToolArgs[P], CodingToolResults[P]>;
};

/** Extra rules for the shell's permission policy (command patterns: `npm test:*`, `git push*`). */
export interface PolicyRules {
  /** Run without asking. */
  readonly allow?: ReadonlyArray<string>;
  /** Ask a human first (the agent stops for approval). */
  readonly ask?: ReadonlyArray<string>;
  /** Refuse. */
  readonly deny?: ReadonlyArray<string>;
}

/** Options of `codingTools` and `CodeTools.open`. */
export interface CodingToolsOptions<K extends CodingToolName = CodingToolName> {
  /** The shell's sandbox (default `workspace-write`: writes only under the workspace and a
   * private /tmp, no network; needs bubblewrap). */
  readonly sandbox?: SandboxMode;
  /** Rules added to the policy (after the recommended rules and the policy file). Deny beats
   * ask beats allow, for every command of a compound line. */
  readonly policy?: PolicyRules;
  /** A permission file (TOML, docs/coding.md) used instead of `<root>/.miyabi/permissions.toml`. */
  readonly policyFile?: string;
  /** Let shell commands write the workspace's `.git` (commits from the shell; default false). */
  readonly gitWrites?: boolean;
  /** Run shell commands without a sandbox when bubblewrap is unavailable (default false:
   * such a call fails saying why). */
  readonly unsandboxedFallback?: boolean;
  /** Environment variables shell commands get besides PATH, HOME, LANG and the like. */
  readonly passEnv?: ReadonlyArray<string>;
  /** Only these tools (default all). */
  readonly only?: ReadonlyArray<K>;
  /** Aborting it cancels every running call (the shell kills its command) and refuses new ones. */
  readonly signal?: AbortSignal;
}

/** Options of one `CodeTools.call`. */
export interface CallOptions {
  /** The call's id (the model's tool call id; one is made up when missing). */
  readonly callId?: string;
  /** Aborting it cancels the call. */
  readonly signal?: AbortSignal;
}

/** A tool's description and JSON Schema, as the model sees it. */
export interface CodingToolInfo {
  readonly name: CodingToolName;
  readonly description: string;
  readonly parameters: Record<string, unknown>;
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'VALIDATION',
  'NOT_FOUND',
  'FORBIDDEN',
  'CONFLICT',
  'CANCELLED',
  'INVALID_ARGUMENT',
  'ENGINE',
]);

function errorCode(code: unknown): ErrorCode {
  return typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : 'ENGINE';
}

/** A coding tool's call failed: the tool's own message (a denied command names the rule). */
export class CodeToolError extends MiyabiError {
  /** The tool. */
  readonly tool: string;

  constructor(code: ErrorCode, tool: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.tool = tool;
  }
}

/** Calls into the addon synchronously; its errors become `MiyabiError`s with their code. */
function sync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;
    throw new MiyabiError(errorCode(code), e instanceof Error ? e.message : String(e), { cause: e });
  }
}

function isToolName(name: string): name is CodingToolName {
  return (CODING_TOOL_NAMES as ReadonlyArray<string>).includes(name);
}

/**
 * The coding tools over one workspace, to call directly or to turn into agent tools
 * (`tools()`, or `codingTools(root)` at once).
 */
export class CodeTools {
  readonly #native: NativeCodeTools;
  readonly #signal: AbortSignal | undefined;
  readonly #info: ReadonlyArray<CodingToolInfo>;
  /** The ids of the calls in flight (for the options' signal). */
  readonly #running = new Set<string>();
  #seq = 0;

  private constructor(native: NativeCodeTools, signal: AbortSignal | undefined) {
    this.#native = native;
    this.#signal = signal;
    this.#info = sync(() => native.list()).flatMap((t) =>
      isToolName(t.name) ? [{ name: t.name, description: t.description, parameters: t.parameters }] : [],
    );
  }

  /** The tools over `root` (an existing directory; a git repository for the git tools). */
  static open<K extends CodingToolName = CodingToolName>(root: string, options: CodingToolsOptions<K> = {}): CodeTools {
    const only = options.only;
    const native = sync(() =>
      addon.NativeCodeTools.create({
        root,
        ...(options.sandbox === undefined ? {} : { sandbox: options.sandbox }),
        ...(options.policy?.allow === undefined ? {} : { allow: [...options.policy.allow] }),
        ...(options.policy?.ask === undefined ? {} : { ask: [...options.policy.ask] }),
        ...(options.policy?.deny === undefined ? {} : { deny: [...options.policy.deny] }),
        ...(options.policyFile === undefined ? {} : { policyFile: options.policyFile }),
        repoMap: only === undefined || only.some((n) => n === 'repo_map' || n === 'find_symbol'),
        ...(options.gitWrites === undefined ? {} : { gitWrites: options.gitWrites }),
        ...(options.unsandboxedFallback === undefined ? {} : { unsandboxedFallback: options.unsandboxedFallback }),
        ...(options.passEnv === undefined ? {} : { passEnv: [...options.passEnv] }),
      }),
    );
    const tools = new CodeTools(native, options.signal);
    options.signal?.addEventListener('abort', () => tools.#cancelAll(), { once: true });
    return tools;
  }

  /** The workspace root (canonical). */
  get root(): string {
    return this.#native.root;
  }

  /** The shell's sandbox mode. */
  get sandbox(): SandboxMode {
    return this.#native.sandbox as SandboxMode;
  }

  /** Every tool: name, description, JSON Schema of its arguments. */
  list(): ReadonlyArray<CodingToolInfo> {
    return this.#info;
  }

  /** Whether this call needs a human's approval before it runs: for `shell`, the permission
   * policy says "ask" for one of the line's commands (a denied command needs none: it fails). */
  needsApproval<K extends CodingToolName>(name: K, args: CodingToolArgs[K]): boolean {
    return sync(() => this.#native.needsApproval(name, args as Record<string, unknown>));
  }

  /** Runs a tool; rejects with a `CodeToolError` carrying the tool's message. */
  async call<K extends CodingToolName>(name: K, args: CodingToolArgs[K], options: CallOptions = {}): Promise<CodingToolResults[K]> {
    const signals = [this.#signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
    if (signals.some((s) => s.aborted)) {
      throw new CodeToolError('CANCELLED', name, `tool \`${name}\` was cancelled before it started`);
    }
    this.#seq += 1;
    const id = `${options.callId ?? 'call'}#${this.#seq}`;
    const promise = sync(() => this.#native.call(name, args as Record<string, unknown>, id));
    const cancel = (): void => {
      this.#native.cancel(id);
    };
    for (const s of signals) s.addEventListener('abort', cancel, { once: true });
    this.#running.add(id);
    try {
      const r = await promise;
      if (r.ok) return r.value as CodingToolResults[K];
      throw new CodeToolError(errorCode(r.code), name, r.message);
    } finally {
      this.#running.delete(id);
      for (const s of signals) s.removeEventListener('abort', cancel);
    }
  }

  /** The project's instructions (`AGENTS.md`, `CLAUDE.md`) and a repository map of about
   * `mapTokens` tokens (0: none), as text for a system prompt; empty when there is neither. */
  async projectContext(mapTokens = 1024): Promise<string> {
    if (!Number.isInteger(mapTokens) || mapTokens < 0 || mapTokens > 0xffff_ffff) {
      throw new MiyabiError('INVALID_ARGUMENT', `mapTokens must be a whole number of tokens from 0, got ${String(mapTokens)}`);
    }
    return this.#native.projectContext(mapTokens);
  }

  /** The tools as `@miyabi/core` tools (all of them, or `only` these). Each one's
   * `requiresApproval` is a function of the call's arguments answered by the tool itself: the
   * shell's asks the permission policy about the call's command line. */
  tools<K extends CodingToolName = CodingToolName>(only?: ReadonlyArray<K>): CodingTools<K> {
    const wanted = only === undefined ? undefined : new Set<string>(only);
    for (const n of wanted ?? []) {
      if (!this.#info.some((t) => t.name === n)) {
        throw new MiyabiError('INVALID_ARGUMENT', `no coding tool named \`${n}\` here (available: ${this.#info.map((t) => t.name).join(', ')})`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const info of this.#info) {
      if (wanted !== undefined && !wanted.has(info.name)) continue;
      out[info.name] = this.#tool(info.name, info);
    }
    return out as CodingTools<K>;
  }

  #tool<K extends CodingToolName>(name: K, info: CodingToolInfo): Tool<CodingToolArgs[K], CodingToolResults[K]> {
    return tool({
      description: info.description,
      parameters: jsonSchema<CodingToolArgs[K]>(info.parameters),
      // The tool's own verdict for each call (for the shell, the policy's), asked by the agent
      // loop once per call and kept in its checkpoint.
      requiresApproval: (args: CodingToolArgs[K]) => this.needsApproval(name, args),
      execute: (args: CodingToolArgs[K], ctx) => this.call(name, args, { callId: ctx.toolCallId }),
    });
  }

  #cancelAll(): void {
    for (const id of this.#running) this.#native.cancel(id);
  }
}

/**
 * The coding tools over `root` as `@miyabi/core` tools, keyed by name, for an `Agent`'s
 * `tools` (or a preset's). Every path is confined to `root`; the shell runs in the sandbox
 * under the permission policy: the recommended rules, then `<root>/.miyabi/permissions.toml`
 * (or `policyFile`), then `policy`. A denied command fails with the rule's name; a command the
 * policy asks about makes `requiresApproval(args)` true, so the agent stops for a human.
 */
export function codingTools<K extends CodingToolName = CodingToolName>(root: string, options: CodingToolsOptions<K> = {}): CodingTools<K> {
  return CodeTools.open(root, options).tools(options.only);
}

/** Options of `codegenAgent`. */
export interface CodegenAgentOptions extends Omit<CodingToolsOptions, 'only'> {
  /** `"provider/model"` or `model(...)`. */
  readonly model: ModelLike;
  /** Instructions appended to the preset's and the project's. */
  readonly instructions?: string;
  /** Model calls per request (default 30, as the Rust preset). */
  readonly maxSteps?: number;
  /** Tokens of repository map in the instructions (default 1024; 0 for none). */
  readonly mapTokens?: number;
  readonly memory?: Memory;
}

/**
 * CodeGenAgent (the `codegen` preset of `@miyabi/core`) over `root` with its tools from this
 * package — the names the preset lists (`presets()`): the workspace tools, `git_status`,
 * `git_diff`, `repo_map`, `find_symbol` and `shell` — and, like the Rust preset, the project's
 * `AGENTS.md` / `CLAUDE.md` and a repository map in its instructions. Its answer's `object` is
 * the preset's typed output (`summary`, `files_changed`, ...).
 */
export async function codegenAgent(root: string, options: CodegenAgentOptions): Promise<Agent<Record<string, unknown>>> {
  const names = presets().find((p) => p.name === 'codegen')?.tools ?? [];
  const only = names.filter(isToolName);
  if (only.length !== names.length) {
    const missing = names.filter((n) => !isToolName(n));
    throw new MiyabiError('ENGINE', `the codegen preset lists tools this package does not have: ${missing.join(', ')}`);
  }
  const code = CodeTools.open(root, { ...options, only });
  const context = await code.projectContext(options.mapTokens ?? 1024);
  const extra = [context, options.instructions ?? ''].filter((s) => s !== '').join('\n\n');
  return preset('codegen', {
    model: options.model,
    tools: code.tools(only) as unknown as Readonly<Record<string, Tool<unknown, unknown>>>,
    maxSteps: options.maxSteps ?? 30,
    ...(extra === '' ? {} : { instructions: extra }),
    ...(options.memory === undefined ? {} : { memory: options.memory }),
  });
}

export * from './pipeline.js';
