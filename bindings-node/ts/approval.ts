/**
 * Approval gates: a workflow step that waits, durably, for people to approve, reject or
 * edit-and-approve what it shows them, with notifications and an audit trail.
 *
 * ```ts
 * const wf = workflow('ship')
 *   .step('generate-code', codegen)
 *   .awaitApproval('code-review', approvalGate({
 *     approvers: ['alice', 'team:leads'], policy: { quorum: 2 },
 *     deadlineMs: 3 * 24 * 3600_000, onTimeout: { escalate: ['cto'] },
 *     notify: [slack(process.env.SLACK_WEBHOOK_URL!)],
 *   }))
 *   .then('deploy', ({ input }) => (input.approved ? deploy(input.data) : 'skipped'))
 *   .commit();
 * await engine.approvals.decide(run.id, 'code-review', { id: 'alice' }, { action: 'approve' });
 * ```
 */

import { type NativeApprovalGate, type NativeEngine, addon } from './native.js';
import { MiyabiError, fromNative, native } from './errors.js';
import { type SchemaLike, toJsonSchema } from './schema.js';

/** Where a notification goes. Webhook URLs are secrets: they stay in this process. */
export type Notifier =
  | { readonly kind: 'slack'; readonly url: string }
  | { readonly kind: 'discord'; readonly url: string }
  | { readonly kind: 'webhook'; readonly url: string; readonly secret: string };

/** A Slack incoming webhook (Block Kit message with a link to the gate's page). */
export function slack(url: string): Notifier {
  return { kind: 'slack', url };
}

/** A Discord webhook (one embed). */
export function discord(url: string): Notifier {
  return { kind: 'discord', url };
}

/** A JSON webhook signed with HMAC-SHA256 over `timestamp.body` (`X-Miyabi-Signature`). */
export function webhook(url: string, secret: string): Notifier {
  return { kind: 'webhook', url, secret };
}

/** How many approvals decide a gate; any rejection rejects it (a veto). */
export type Policy = 'any' | 'all' | { readonly quorum: number };

/** What a passed deadline does. */
export type OnTimeout = 'reject' | 'approve' | { readonly escalate: ReadonlyArray<string> };

/** Options of an approval gate. */
export interface ApprovalGateOptions {
  /** Title of the request (default `Approve <path>`). */
  readonly title?: string;
  /** A summary shown with it. */
  readonly summary?: string;
  /** User ids and `team:<name>` entries; none: anyone may decide. */
  readonly approvers?: ReadonlyArray<string>;
  /** `any` (default), `all`, or `{ quorum: n }`. */
  readonly policy?: Policy;
  /** How long the gate waits before `onTimeout` applies; durable (fires after restarts). */
  readonly deadlineMs?: number;
  /** `reject` (default), `approve` or `{ escalate: [...] }`. */
  readonly onTimeout?: OnTimeout;
  /** A schema edited data must satisfy (zod or JSON Schema). */
  readonly schema?: SchemaLike;
  /** Links shown with the request. */
  readonly links?: ReadonlyArray<{ readonly label: string; readonly url: string }>;
  /** Who to tell when the gate is reached, escalated and decided. */
  readonly notify?: ReadonlyArray<Notifier>;
}

/** An approval gate, to pass to `.awaitApproval(id, gate)` or use as a step (e.g. a parallel child). */
export class ApprovalGate {
  /** @internal */
  readonly native: NativeApprovalGate;
  /** Type-level only: what the gate outputs. */
  declare readonly '~types'?: { readonly out: GateOutput<unknown> };

  constructor(options: ApprovalGateOptions = {}) {
    const o: Record<string, unknown> = {};
    if (options.title !== undefined) o.title = options.title;
    if (options.summary !== undefined) o.summary = options.summary;
    if (options.approvers !== undefined) o.approvers = [...options.approvers];
    if (options.policy !== undefined) o.policy = options.policy;
    if (options.deadlineMs !== undefined) o.deadlineMs = options.deadlineMs;
    if (options.onTimeout !== undefined) o.onTimeout = options.onTimeout;
    if (options.schema !== undefined) o.schema = toJsonSchema(options.schema);
    if (options.links !== undefined) o.links = options.links.map((l) => ({ label: l.label, url: l.url }));
    if (options.notify !== undefined) o.notify = options.notify.map((n) => ({ ...n }));
    this.native = native(() => new addon.NativeApprovalGate(o));
  }
}

/** Builds an approval gate. */
export function approvalGate(options: ApprovalGateOptions = {}): ApprovalGate {
  return new ApprovalGate(options);
}

/** One vote on a gate. */
export interface Vote {
  readonly by: string;
  readonly action: 'approve' | 'reject';
  readonly comment?: string;
  readonly edited: boolean;
  readonly entries: ReadonlyArray<string>;
  readonly at: number;
}

/** What a gate outputs to the next step: the decision, with the data as approved. */
export interface GateOutput<T = unknown> {
  readonly status: 'approved' | 'rejected';
  readonly approved: boolean;
  /** The reviewed data, as edited by an approver if one edited it. */
  readonly data: T;
  readonly comment: string | null;
  readonly decided_by: ReadonlyArray<string>;
  readonly votes: ReadonlyArray<Vote>;
  readonly timed_out: boolean;
}

/** A notification's delivery state. */
export interface Delivery {
  readonly notifier: string;
  readonly event: string;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly attempts: number;
  readonly lastError: string | undefined;
}

/**
 * A gate's state: waiting for decisions, decided either way, or `closed` without a decision
 * because its run was cancelled or failed (it leaves inboxes and takes no decision).
 */
export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'closed';

/** A gate of a run: its request, votes and outcome. */
export interface Approval {
  readonly runId: string;
  readonly workflow: string;
  readonly gate: string;
  readonly status: ApprovalStatus;
  readonly title: string;
  readonly summary: string;
  readonly data: unknown;
  readonly links: ReadonlyArray<{ readonly label: string; readonly url: string }>;
  readonly schema: Record<string, unknown> | undefined;
  readonly approvers: ReadonlyArray<string>;
  readonly policy: Policy;
  readonly deadlineAt: Date | undefined;
  readonly onTimeout: OnTimeout;
  readonly escalated: boolean;
  readonly votes: ReadonlyArray<Vote>;
  readonly output: GateOutput | undefined;
  /** Whether the output was handed to the run. */
  readonly delivered: boolean;
  readonly createdAt: Date;
  readonly decidedAt: Date | undefined;
  readonly version: number;
  readonly deliveries: ReadonlyArray<Delivery>;
}

/** Who decides: a user id and their teams (gates list teams as `team:<name>`). */
export interface Approver {
  readonly id: string;
  readonly teams?: ReadonlyArray<string>;
}

/** A decision. `data` (approve only) replaces the data under review and is validated. */
export interface Decision {
  readonly action: 'approve' | 'reject';
  readonly data?: unknown;
  readonly comment?: string;
}

/** One audit record. */
export interface AuditRecord {
  readonly id: number;
  readonly runId: string;
  readonly gate: string;
  readonly at: Date;
  readonly actor: string;
  readonly action: string;
  readonly comment: string | undefined;
  /** An edit as a JSON Patch (RFC 6902). */
  readonly diff: unknown;
  readonly data: unknown;
}

/** Which gates `approvals.list` returns. */
export interface ApprovalFilter {
  readonly runId?: string;
  readonly status?: ApprovalStatus;
  /** Only gates this user may decide. */
  readonly approver?: Approver;
  /** Only decided gates not yet handed to their run. */
  readonly undelivered?: boolean;
  readonly limit?: number;
}

/** Which records `approvals.audit` returns. */
export interface AuditFilter {
  readonly runId?: string;
  readonly gate?: string;
  readonly actor?: string;
  readonly limit?: number;
}

type Raw = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const date = (v: unknown): Date | undefined => (typeof v === 'number' ? new Date(v) : undefined);

/** @internal */
export function approvalOf(r: Raw): Approval {
  const deliveries = Array.isArray(r.deliveries) ? (r.deliveries as Raw[]) : [];
  return {
    runId: str(r.run_id),
    workflow: str(r.workflow),
    gate: str(r.gate),
    status: str(r.status) as Approval['status'],
    title: str(r.title),
    summary: str(r.summary),
    data: r.data,
    links: (r.links as Approval['links'] | undefined) ?? [],
    schema: r.schema as Record<string, unknown> | undefined,
    approvers: (r.approvers as string[] | undefined) ?? [],
    policy: r.policy as Policy,
    deadlineAt: date(r.deadline_at),
    onTimeout: r.on_timeout as OnTimeout,
    escalated: r.escalated === true,
    votes: (r.votes as Vote[] | undefined) ?? [],
    output: r.output as GateOutput | undefined,
    delivered: r.delivered === true,
    createdAt: date(r.created_at) ?? new Date(0),
    decidedAt: date(r.decided_at),
    version: num(r.version),
    deliveries: deliveries.map((d) => ({
      notifier: str(d.notifier),
      event: str(d.event),
      status: str(d.status) as Delivery['status'],
      attempts: num(d.attempts),
      lastError: typeof d.last_error === 'string' ? d.last_error : undefined,
    })),
  };
}

/** @internal */
export function auditOf(r: Raw): AuditRecord {
  return {
    id: num(r.id),
    runId: str(r.run_id),
    gate: str(r.gate),
    at: date(r.at) ?? new Date(0),
    actor: str(r.actor),
    action: str(r.action),
    comment: typeof r.comment === 'string' ? r.comment : undefined,
    diff: r.diff,
    data: r.data,
  };
}

/** @internal The decision as the addon takes it. */
export function decisionOf(d: Decision): Record<string, unknown> {
  const o: Record<string, unknown> = { action: d.action };
  if (d.data !== undefined) o.data = d.data;
  if (d.comment !== undefined) o.comment = d.comment;
  return o;
}

/** @internal The approver as the addon takes it. */
export function approverOf(a: Approver): { id: string; teams?: string[] } {
  return a.teams === undefined ? { id: a.id } : { id: a.id, teams: [...a.teams] };
}

/** @internal Unwraps `{ approval } | { error }` from the addon. */
export function decided(r: { approval?: Raw; error?: { code: string; message: string } }): Approval {
  if (r.error !== undefined) {
    throw fromNative(Object.assign(new Error(r.error.message), { code: r.error.code }));
  }
  if (r.approval === undefined) throw new MiyabiError('ENGINE', 'the addon returned no approval');
  return approvalOf(r.approval);
}

/** @internal What `Approvals` needs from its engine. */
export interface ApprovalHooks {
  /** Resumes the run of a decided gate here if this engine has its workflow. */
  readonly resumeGate: (runId: string, gate: string) => { readonly result: Promise<unknown> } | undefined;
}

/**
 * The approval gates of an engine's runs (`engine.approvals`). Decisions are compare-and-set:
 * exactly one terminal decision wins; a second one, or a second vote by the same user, throws
 * a `ConflictError`; a user not among the approvers gets a `ForbiddenError`; edited data that
 * violates the gate's schema a `ValidationError`.
 */
export class Approvals {
  readonly #n: NativeEngine;
  readonly #hooks: ApprovalHooks;

  /** @internal use `engine.approvals` */
  constructor(n: NativeEngine, hooks: ApprovalHooks) {
    this.#n = n;
    this.#hooks = hooks;
  }

  /** The pending gates `who` may decide and has not voted on yet, newest first. */
  async inbox(who: Approver): Promise<Approval[]> {
    return native(() => this.#n.approvalInbox(approverOf(who))).map(approvalOf);
  }

  /** Gates matching a filter, newest first. */
  async list(filter: ApprovalFilter = {}): Promise<Approval[]> {
    const f: Record<string, unknown> = {};
    if (filter.runId !== undefined) f.runId = filter.runId;
    if (filter.status !== undefined) f.status = filter.status;
    if (filter.approver !== undefined) f.approver = approverOf(filter.approver);
    if (filter.undelivered !== undefined) f.undelivered = filter.undelivered;
    if (filter.limit !== undefined) f.limit = filter.limit;
    return native(() => this.#n.approvalList(f)).map(approvalOf);
  }

  /** One gate of a run. */
  async get(runId: string, gate: string): Promise<Approval> {
    return approvalOf(native(() => this.#n.approvalGet(runId, gate)));
  }

  /**
   * Records `who`'s decision. When it decides the gate, the run continues in the background
   * here if this engine has its workflow (`engine.wait`-style: await `runHandle` of the
   * returned value, or follow `engine.events`); otherwise the engine that has it continues it.
   */
  async decide(runId: string, gate: string, who: Approver, decision: Decision): Promise<Approval> {
    let r: { approval?: Record<string, unknown>; error?: { code: string; message: string } };
    try {
      r = await this.#n.approvalDecide(runId, gate, approverOf(who), decisionOf(decision));
    } catch (e) {
      throw fromNative(e);
    }
    const a = decided(r);
    if (a.status === 'pending') return a;
    const handle = this.#hooks.resumeGate(runId, gate);
    if (handle !== undefined) {
      // The run continues in the background; its failures surface through the run's status.
      handle.result.catch(() => undefined);
    }
    return this.get(runId, gate);
  }

  /** The audit trail, oldest first. */
  async audit(filter: AuditFilter = {}): Promise<AuditRecord[]> {
    const f: Record<string, unknown> = {};
    if (filter.runId !== undefined) f.runId = filter.runId;
    if (filter.gate !== undefined) f.gate = filter.gate;
    if (filter.actor !== undefined) f.actor = filter.actor;
    if (filter.limit !== undefined) f.limit = filter.limit;
    return native(() => this.#n.approvalAudit(f)).map(auditOf);
  }
}
