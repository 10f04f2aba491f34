/**
 * The issue-resolution pipeline from TypeScript: the Rust workflow `miyabi run
 * issue-resolution` runs (crate `miyabi-agents`) — IssueAgent → CoordinatorAgent's plan, its
 * CodeGenAgent tasks in git worktrees → ReviewAgent with the fix loop → test ∥ lint ∥ security
 * → an approval gate → PRAgent's draft PR → deploy — durably on a run database, with the gate
 * decided from here.
 *
 * ```ts
 * import { issueResolution } from '@miyabi/code';
 * const pipeline = await issueResolution({
 *   repo: '/path/to/repo', db: 'sqlite:/path/runs.db', model: 'openai/gpt-4.1',
 *   github: { owner: 'acme', repo: 'calc' },   // token from GITHUB_TOKEN unless given
 *   approvers: ['alice'],
 * });
 * const run = await pipeline.start({ issue: 12 });     // resolves at the gate (or at the end)
 * if (run.status === 'suspended' && run.gate) console.log(run.gate.summary);
 * const done = await pipeline.approve(run.id, { as: 'alice', comment: 'ship it' });
 * done.output?.pr;                                     // the draft PR
 * pipeline.close();
 * ```
 */
import { MiyabiError } from '@miyabi/core';
import type { ErrorCode } from '@miyabi/core';
import type { SandboxMode } from './index.js';
import { addon, type NativePipeline } from './native.js';

/** An issue, as the workflow takes it. */
export interface Issue {
  readonly number: number;
  readonly title: string;
  readonly body?: string | null;
  readonly comments?: ReadonlyArray<string>;
  readonly labels?: ReadonlyArray<string>;
}

/** A command line: the program and its arguments (no shell unless you call one). */
export type Argv = ReadonlyArray<string>;

/** The repository's commands, over `<repo>/.miyabi/pipeline.toml` and the Cargo/npm defaults:
 * an array replaces one, `null` removes it (its check is then reported as skipped). */
export interface PipelineCommands {
  readonly test?: Argv | null;
  readonly lint?: Argv | null;
  readonly security?: Argv | null;
  readonly deploy?: Argv | null;
  readonly health?: Argv | null;
  readonly rollback?: Argv | null;
  /** Seconds each command may run (default 600). */
  readonly timeoutSecs?: number | null;
}

/** Where the issue is read from and the draft PR opened. */
export interface PipelineGitHub {
  readonly owner: string;
  readonly repo: string;
  /** Default: `GITHUB_TOKEN`, else `GH_TOKEN`. Sent only in the authorization header. */
  readonly token?: string;
  /** Default: `GITHUB_API_URL`, else GitHub's. */
  readonly apiUrl?: string;
  /** The git remote the branch is pushed to (default `origin`). */
  readonly remote?: string;
}

/** One scripted reply of a replayed model. */
export type ReplayReply =
  | { readonly text: string }
  | { readonly json: unknown }
  | { readonly calls: ReadonlyArray<{ readonly name: string; readonly arguments?: Readonly<Record<string, unknown>> }> };

/** A replay script: replies per agent (`"IssueAgent"`, `"CodeGenAgent|<needle>"`), in
 * conversation order (docs/agents21.md, "The replayed model"). */
export type ReplayScript = Readonly<Record<string, ReadonlyArray<ReplayReply>>>;

/** Options of `issueResolution`. */
export interface IssueResolutionOptions {
  /** The local git repository (with a commit). */
  readonly repo: string;
  /** The run database: `sqlite:<path>` (or a path), or a Postgres URL. */
  readonly db: string;
  /** Every agent's model, `"provider/model"` (default `MIYABI_AGENTS_MODEL`, else `openai/gpt-4o`). */
  readonly model?: string;
  /** The model API's base URL (else the provider's variable or the catalogue's). */
  readonly baseURL?: string;
  /** The model API's key (else the provider's variable, e.g. `OPENAI_API_KEY`). */
  readonly apiKey?: string;
  /** The protocol family (`openai-chat`...); with `baseURL` and an unknown provider, a custom endpoint. */
  readonly protocol?: string;
  /** Answer from a replay script (a JSON file's path, or the script) served on 127.0.0.1
   * instead of calling a provider: for tests and demos. Not with `model`. */
  readonly replay?: string | ReplayScript;
  /** The GitHub repository: issues by number are read there, the draft PR opened there. */
  readonly github?: PipelineGitHub;
  /** Read the issue from this file: JSON `{number, title, body, comments?}` or Markdown (the
   * first line is the title). */
  readonly issueFile?: string;
  readonly commands?: PipelineCommands;
  /** The branch to start from and to target (default: the repository's current branch). */
  readonly base?: string;
  /** Who may decide the approval gate (default: `$USER`). */
  readonly approvers?: ReadonlyArray<string>;
  /** Fix rounds after a review below 80 (default 3; more fails the run). */
  readonly maxFixRounds?: number;
  /** CodeGenAgent's shell sandbox (default `workspace-write`). */
  readonly sandbox?: SandboxMode;
}

/** A run's status. */
export type PipelineRunStatus = 'running' | 'suspended' | 'succeeded' | 'failed' | 'cancelled';

/** One of the repository's commands, as run. */
export interface CheckResult {
  readonly name: string;
  readonly command: ReadonlyArray<string>;
  readonly passed: boolean;
  readonly skipped: boolean;
  /** The exit code (null: killed, timed out or not run). */
  readonly exit_code: number | null;
  /** The end of its output. */
  readonly output: string;
}

/** ReviewAgent's review. */
export interface PipelineReview {
  readonly score: number;
  readonly summary: string;
  readonly findings: ReadonlyArray<{
    readonly severity: 'low' | 'medium' | 'high' | 'critical';
    readonly message: string;
    readonly file?: string | null;
    readonly line?: number | null;
  }>;
}

/** What the approval gate shows while the run waits there. */
export interface ApprovalRequest {
  /** The gate's path (`approval`). */
  readonly path: string;
  readonly title: string;
  /** `review 93/100; test passed, lint passed, security passed`. */
  readonly summary: string;
  /** The review and the checks. */
  readonly data: {
    readonly review: PipelineReview;
    readonly checks: { readonly test: CheckResult; readonly lint: CheckResult; readonly security: CheckResult };
  };
  readonly approvers: ReadonlyArray<string>;
  readonly status: string;
}

/** The pull request: opened on GitHub, only committed (no GitHub configured), or skipped
 * (rejected at the gate). */
export type PullRequestResult =
  | {
      readonly opened: true;
      readonly title: string;
      readonly body: string;
      readonly branch: string;
      readonly commit: string;
      readonly number: number;
      readonly url: string;
    }
  | {
      readonly opened: false;
      readonly title: string;
      readonly body: string;
      readonly branch: string;
      readonly commit: string;
      /** Why it was not sent (`no GitHub repository configured`). */
      readonly reason: string;
    }
  | { readonly skipped: string; readonly comment?: string | null };

/** The deploy stage's report. */
export interface DeployReport {
  readonly environment: string;
  readonly deployed: boolean;
  readonly healthy: boolean;
  readonly rolled_back: boolean;
  readonly summary: string;
}

/** A succeeded run's output. */
export interface PipelineOutput {
  readonly issue: number;
  /** `miyabi/issue-<N>`: one commit on the base with the PR's title and body. */
  readonly branch: string;
  readonly review: PipelineReview;
  readonly pr: PullRequestResult;
  readonly deploy: DeployReport;
}

/** A run of the pipeline. */
export interface PipelineRun {
  readonly id: string;
  readonly workflow: string;
  readonly status: PipelineRunStatus;
  /** The issue's number. */
  readonly issue: number;
  readonly input: { readonly issue: Issue };
  readonly output: PipelineOutput | null;
  readonly error: string | null;
  /** Where it waits (`approval`; `implement` for a command a task asks to run), with what it asks. */
  readonly suspended: ReadonlyArray<{ readonly path: string; readonly payload: unknown }>;
  /** The approval gate's request while the run waits there. */
  readonly gate: ApprovalRequest | null;
  /** Milliseconds since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** A decision at the approval gate. */
export interface GateDecision {
  /** Who decides: one of the pipeline's approvers. */
  readonly as: string;
  readonly comment?: string;
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'VALIDATION',
  'NOT_FOUND',
  'FORBIDDEN',
  'CONFLICT',
  'NOT_SUSPENDED',
  'UNKNOWN_WORKFLOW',
  'DEFINITION_CHANGED',
  'STORE',
  'SHUTDOWN',
  'CANCELLED',
  'TIMEOUT',
  'INVALID_ARGUMENT',
  'PROVIDER',
  'CONFIG',
  'UNSUPPORTED',
  'ENGINE',
]);

function fail(code: unknown, message: string, cause?: unknown): MiyabiError {
  const c = typeof code === 'string' && CODES.has(code) ? (code as ErrorCode) : 'ENGINE';
  return new MiyabiError(c, message, cause === undefined ? undefined : { cause });
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };

async function settled<T>(p: Promise<Outcome>): Promise<T> {
  const r = await p;
  if (r.ok) return r.value as T;
  throw fail(r.code, r.message);
}

/** The pipeline on one repository and run database (`issueResolution(...)`). */
export class IssueResolutionPipeline {
  readonly #native: NativePipeline;

  /** @internal */
  constructor(native: NativePipeline) {
    this.#native = native;
  }

  /** The repository (absolute). */
  get repo(): string {
    return this.#native.repo;
  }

  /** Who may decide the approval gate. */
  get approvers(): ReadonlyArray<string> {
    return this.#native.approvers;
  }

  /**
   * Starts a run for the issue and resolves once it finishes or suspends (at the approval
   * gate, or on a command a task asks to run). `issue`: its number (read from `github`, or
   * from `issueFile` with that number), the issue itself, or nothing (the `issueFile`). An
   * unfinished run of the same issue is continued instead of starting a second.
   */
  async start(options: { readonly issue?: number | Issue } = {}): Promise<PipelineRun> {
    const issue = options.issue;
    if (issue !== undefined && typeof issue !== 'number' && (typeof issue !== 'object' || issue === null)) {
      throw new MiyabiError('INVALID_ARGUMENT', `\`issue\`: a number or {number, title, body}, got ${typeof issue}`);
    }
    return settled(this.#native.start(issue === undefined ? null : (issue as number | Record<string, unknown>)));
  }

  /** Waits until the run no longer executes here (finished or suspended) and returns it. */
  async wait(runId: string): Promise<PipelineRun> {
    return settled(this.#native.wait(runId));
  }

  /** The run as stored, or null. */
  async get(runId: string): Promise<PipelineRun | null> {
    return settled(this.#native.get(runId));
  }

  /** The pipeline's runs in this database (of one issue), newest first. */
  async list(options: { readonly issue?: number } = {}): Promise<ReadonlyArray<PipelineRun>> {
    const n = options.issue;
    if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 0xffff_ffff)) {
      throw new MiyabiError('INVALID_ARGUMENT', `\`issue\`: a whole number from 1, got ${String(n)}`);
    }
    return settled(this.#native.list(n));
  }

  /** Approves at the gate as `as` (an approver) and resolves once the run finishes (the PR
   * and the deploy) or suspends again. */
  async approve(runId: string, decision: GateDecision): Promise<PipelineRun> {
    return settled(this.#native.decide(runId, true, decision.as, decision.comment));
  }

  /** Rejects at the gate: no PR, no deploy; the run succeeds with `pr.skipped`. */
  async reject(runId: string, decision: GateDecision): Promise<PipelineRun> {
    return settled(this.#native.decide(runId, false, decision.as, decision.comment));
  }

  /**
   * Resumes a path other than the gate: a command a CodeGenAgent task waits on (`implement`
   * with `{ approved: true }`, `{ approved: false, reason }`, or per call `{ decisions: {...} }`),
   * or an interrupted deploy (`deploy` with `{ rerun: true }`). Resolves once the run
   * finishes or suspends again.
   */
  async resume(runId: string, path: string, data: unknown): Promise<PipelineRun> {
    return settled(this.#native.resume(runId, path, data));
  }

  /** Takes over runs a dead process left running (their lease lapsed) and drives them here;
   * their ids (`wait` for each). */
  async recover(): Promise<ReadonlyArray<string>> {
    return settled(this.#native.recover());
  }

  /** Closes this handle (later calls fail with `SHUTDOWN`); what runs committed stays in the
   * database, and another pipeline on it continues them. */
  close(): void {
    this.#native.close();
  }
}

/**
 * The issue-resolution pipeline on `options.repo`, with its runs in `options.db`: the same
 * Rust workflow as `miyabi run issue-resolution`, durable (a run suspended at the gate can be
 * approved from another process on the same database; `recover()` continues runs of a killed
 * one).
 */
export async function issueResolution(options: IssueResolutionOptions): Promise<IssueResolutionPipeline> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
  try {
    return new IssueResolutionPipeline(addon.NativePipeline.create(o));
  } catch (e) {
    const code = typeof e === 'object' && e !== null && 'code' in e ? e.code : undefined;
    throw fail(code, e instanceof Error ? e.message : String(e), e);
  }
}
