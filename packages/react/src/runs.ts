/**
 * Workflow runs and approvals over Miyabi's HTTP API (`miyabi serve`, `engine.serve()`, or a
 * route that forwards to it): {@link RunController} / {@link useRun} follow one run live,
 * {@link useWorkflow} starts and resumes runs, {@link useApprovals} is an inbox with decisions.
 * The paths are the API's: `${baseUrl}/runs/:id`, `${baseUrl}/runs/:id/events`, ... with
 * `baseUrl` defaulting to `/api`.
 */
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react';

/** Where a run stands. */
export type RunStatus = 'running' | 'suspended' | 'succeeded' | 'failed' | 'cancelled';

/** A run as the API returns it. */
export interface RunInfo {
  readonly id: string;
  readonly workflow: string;
  readonly status: RunStatus;
  readonly input?: unknown;
  readonly output?: unknown;
  readonly error?: string | null;
  readonly created_at: number;
  readonly updated_at: number;
  readonly [key: string]: unknown;
}

/** A step of a run as the API returns it. */
export interface StepInfo {
  readonly path: string;
  readonly kind: string;
  readonly status: 'running' | 'succeeded' | 'failed' | 'suspended';
  readonly output?: unknown;
  readonly error?: string | null;
  readonly payload?: unknown;
  readonly attempt: number;
  readonly updated_at: number;
}

/** An event of a run (`run-started`, `step-started`, `step-output`, `step-suspended`, ...). */
export interface RunEventInfo {
  readonly run_id: string;
  readonly seq: number;
  readonly at: number;
  readonly type: string;
  readonly path?: string;
  readonly [key: string]: unknown;
}

/** Where the API is and how to call it. */
export interface ApiOptions {
  /** The API's base URL (default `/api`). */
  readonly baseUrl?: string;
  /** Extra request headers (e.g. `authorization: Bearer …`). */
  readonly headers?: Record<string, string>;
  /** The `fetch` to use (default: the global one). */
  readonly fetch?: typeof globalThis.fetch;
}

/** An error of the API: the status and the API's own message. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

async function call<T>(o: ApiOptions, path: string, init: RequestInit = {}): Promise<T> {
  const f = o.fetch ?? globalThis.fetch;
  const res = await f(`${o.baseUrl ?? '/api'}${path}`, {
    ...init,
    headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...(o.headers ?? {}) },
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  if (!res.ok) {
    const err = (body as { error?: { message?: string } } | undefined)?.error;
    throw new ApiError(res.status, `${init.method ?? 'GET'} ${path}: ${res.status} ${err?.message ?? (typeof body === 'string' ? body : res.statusText)}`);
  }
  return body as T;
}

/** What {@link useRun} shows. */
export interface RunSnapshot {
  readonly run: RunInfo | undefined;
  readonly steps: ReadonlyArray<StepInfo>;
  readonly events: ReadonlyArray<RunEventInfo>;
  /** The event stream is open. */
  readonly live: boolean;
  readonly error: Error | undefined;
}

const EMPTY: RunSnapshot = { run: undefined, steps: [], events: [], live: false, error: undefined };

/** Whether an event ends what the stream has to say until someone acts. */
function quiet(e: RunEventInfo): boolean {
  return e.type === 'run-finished';
}

/**
 * Follows one run: its record and steps, and its events as they happen (server-sent events read
 * with `fetch`, so headers such as a bearer token go along; reconnects with `Last-Event-ID`).
 * The record is re-read after events at most every `refreshMs` (default 100 ms) — throttled,
 * never debounced, so a busy run's panel never goes stale.
 */
export class RunController {
  #snapshot: RunSnapshot = EMPTY;
  readonly #listeners = new Set<() => void>();
  readonly #o: ApiOptions & { readonly refreshMs?: number };
  readonly #id: string;
  #abort = new AbortController();
  #lastRefresh = 0;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(runId: string, options: ApiOptions & { readonly refreshMs?: number } = {}) {
    this.#id = runId;
    this.#o = options;
  }

  getSnapshot = (): RunSnapshot => this.#snapshot;

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  #set(change: Partial<RunSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...change };
    for (const l of this.#listeners) l();
  }

  /** Reads the run and its steps now. */
  async refresh(): Promise<void> {
    this.#lastRefresh = Date.now();
    try {
      const r = await call<{ run: RunInfo; steps: StepInfo[] }>(this.#o, `/runs/${encodeURIComponent(this.#id)}`, { signal: this.#abort.signal });
      this.#set({ run: r.run, steps: r.steps, error: undefined });
    } catch (e) {
      if (!this.#abort.signal.aborted) this.#set({ error: e instanceof Error ? e : new Error(String(e)) });
    }
  }

  #scheduleRefresh(): void {
    if (this.#refreshTimer !== undefined) return;
    const every = this.#o.refreshMs ?? 100;
    const wait = Math.max(0, this.#lastRefresh + every - Date.now());
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = undefined;
      void this.refresh();
    }, wait);
  }

  /** Starts following (idempotent until `close`). */
  async start(): Promise<void> {
    await this.refresh();
    let from = 0;
    const f = this.#o.fetch ?? globalThis.fetch;
    for (let attempt = 0; !this.#abort.signal.aborted; attempt++) {
      try {
        const res = await f(`${this.#o.baseUrl ?? '/api'}/runs/${encodeURIComponent(this.#id)}/events`, {
          headers: { accept: 'text/event-stream', ...(this.#o.headers ?? {}), ...(from > 0 ? { 'last-event-id': String(from) } : {}) },
          signal: this.#abort.signal,
        });
        if (!res.ok || res.body === null) throw new ApiError(res.status, `GET /runs/${this.#id}/events: ${res.status}`);
        this.#set({ live: true });
        let ended = false;
        for await (const ev of readEvents(res.body)) {
          if (ev.seq <= from) continue;
          from = ev.seq;
          this.#set({ events: [...this.#snapshot.events, ev] });
          this.#scheduleRefresh();
          if (quiet(ev)) ended = true;
        }
        this.#set({ live: false });
        if (ended) {
          await this.refresh();
          return;
        }
      } catch (e) {
        if (this.#abort.signal.aborted) return;
        this.#set({ live: false, error: e instanceof Error ? e : new Error(String(e)) });
        if (e instanceof ApiError && e.status >= 400 && e.status < 500) return;
      }
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(attempt, 5))));
      await this.refresh();
      if (this.#snapshot.run !== undefined && ['succeeded', 'failed', 'cancelled'].includes(this.#snapshot.run.status)) return;
    }
  }

  /** Stops following. */
  close(): void {
    this.#abort.abort();
    if (this.#refreshTimer !== undefined) clearTimeout(this.#refreshTimer);
  }
}

/** The events of a server-sent events body (`data:` lines holding a run event as JSON). */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<RunEventInfo> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data === '') continue;
        try {
          const ev = JSON.parse(data) as RunEventInfo;
          if (typeof ev.seq === 'number' && typeof ev.type === 'string') yield ev;
        } catch {
          // a comment or a non-JSON event: not a run event
        }
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/**
 * One run, live: `{ run, steps, events, live, error }`. Pass `undefined` to follow nothing.
 *
 * ```tsx
 * const { run, steps, events } = useRun(runId);
 * ```
 */
export function useRun(runId: string | undefined, options: ApiOptions & { readonly refreshMs?: number } = {}): RunSnapshot {
  const [controller, setController] = useState<RunController | undefined>(undefined);
  const opts = useRef(options);
  opts.current = options;
  useEffect(() => {
    if (runId === undefined) {
      setController(undefined);
      return;
    }
    const c = new RunController(runId, opts.current);
    setController(c);
    void c.start();
    return () => c.close();
  }, [runId]);
  const noop = useCallback(() => () => undefined, []);
  const empty = useCallback(() => EMPTY, []);
  return useSyncExternalStore(controller?.subscribe ?? noop, controller?.getSnapshot ?? empty, controller?.getSnapshot ?? empty);
}

/** What {@link useWorkflow} returns. */
export interface UseWorkflowResult {
  /** Starts a run; resolves with its id (also kept in `runId`). */
  start(input: unknown): Promise<string>;
  /** Resumes a suspended run at `path` with `data`. */
  resume(runId: string, path: string, data?: unknown): Promise<void>;
  /** Cancels a run. */
  cancel(runId: string): Promise<void>;
  /** The last run started here. */
  readonly runId: string | undefined;
  readonly pending: boolean;
  readonly error: Error | undefined;
}

/** Starts, resumes and cancels runs of a workflow. */
export function useWorkflow(workflowId: string, options: ApiOptions = {}): UseWorkflowResult {
  const [runId, setRunId] = useState<string | undefined>(undefined);
  const [pending, setPending] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const opts = useRef(options);
  opts.current = options;
  const guard = useCallback(async <T,>(f: () => Promise<T>): Promise<T> => {
    setPending(true);
    setError(undefined);
    try {
      return await f();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      setError(err);
      throw err;
    } finally {
      setPending(false);
    }
  }, []);
  const start = useCallback(
    (input: unknown) =>
      guard(async () => {
        const r = await call<{ id: string }>(opts.current, `/workflows/${encodeURIComponent(workflowId)}/runs`, { method: 'POST', body: JSON.stringify({ input }) });
        setRunId(r.id);
        return r.id;
      }),
    [workflowId, guard],
  );
  const resume = useCallback(
    (id: string, path: string, data?: unknown) =>
      guard(async () => {
        await call(opts.current, `/runs/${encodeURIComponent(id)}/resume`, { method: 'POST', body: JSON.stringify({ path, data: data ?? null }) });
      }),
    [guard],
  );
  const cancel = useCallback(
    (id: string) =>
      guard(async () => {
        await call(opts.current, `/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST', body: '{}' });
      }),
    [guard],
  );
  return { start, resume, cancel, runId, pending, error };
}

/** A pending (or decided) approval gate as the API returns it. */
export interface ApprovalInfo {
  readonly run_id: string;
  readonly workflow: string;
  readonly gate: string;
  /** `closed`: its run was cancelled or failed before a decision. */
  readonly status: 'pending' | 'approved' | 'rejected' | 'closed';
  readonly title: string;
  readonly summary: string;
  readonly data: unknown;
  readonly schema?: unknown;
  readonly links?: ReadonlyArray<{ readonly label: string; readonly url: string }>;
  readonly approvers: ReadonlyArray<string>;
  readonly [key: string]: unknown;
}

/** A decision on a gate. */
export interface DecisionInput {
  readonly action: 'approve' | 'reject';
  /** Edited data (approve only). */
  readonly data?: unknown;
  readonly comment?: string;
}

/** What {@link useApprovals} returns. */
export interface UseApprovalsResult {
  readonly approvals: ReadonlyArray<ApprovalInfo>;
  readonly error: Error | undefined;
  /** Decides a gate; the inbox is read again after it. */
  decide(runId: string, gate: string, decision: DecisionInput): Promise<ApprovalInfo>;
  /** Reads the inbox now. */
  refresh(): Promise<void>;
}

/** The caller's approval inbox (pending gates they may decide), read every `intervalMs` (default 2000; 0: only on demand). */
export function useApprovals(options: ApiOptions & { readonly runId?: string; readonly intervalMs?: number } = {}): UseApprovalsResult {
  const [approvals, setApprovals] = useState<ReadonlyArray<ApprovalInfo>>([]);
  const [error, setError] = useState<Error | undefined>(undefined);
  const opts = useRef(options);
  opts.current = options;
  const refresh = useCallback(async () => {
    try {
      const q = opts.current.runId === undefined ? '' : `?run=${encodeURIComponent(opts.current.runId)}`;
      const r = await call<{ approvals: ApprovalInfo[] }>(opts.current, `/approvals${q}`);
      setApprovals(r.approvals);
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    }
  }, []);
  const decide = useCallback(
    async (runId: string, gate: string, decision: DecisionInput) => {
      const r = await call<{ approval: ApprovalInfo }>(opts.current, `/approvals/${encodeURIComponent(runId)}/${encodeURIComponent(gate)}/decision`, {
        method: 'POST',
        body: JSON.stringify(decision),
      });
      await refresh();
      return r.approval;
    },
    [refresh],
  );
  const every = options.intervalMs ?? 2000;
  const runId = options.runId;
  useEffect(() => {
    void refresh();
    if (every <= 0) return;
    const t = setInterval(() => void refresh(), every);
    return () => clearInterval(t);
  }, [refresh, every, runId]);
  return { approvals, error, decide, refresh };
}
