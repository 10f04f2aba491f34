/**
 * A workflow run's events as a web `Response`, for route handlers (Next.js App Router and other
 * fetch-style servers): server-sent events or newline-delimited JSON.
 *
 * ```ts
 * export async function POST(req: Request): Promise<Response> {
 *   const run = await engine.spawn(wf, await req.json());
 *   return runEventsResponse(engine, run.id, { request: req });
 * }
 * ```
 */
import type { Engine, RunEvent } from './engine.js';

/** How `runEventsResponse` writes events. */
export type RunEventsFormat = 'sse' | 'ndjson';

/** Options of `runEventsResponse`. */
export interface RunEventsResponseOptions {
  /**
   * `'sse'` (default): server-sent events, `text/event-stream`; each event is `id: <seq>`,
   * `event: <type>`, `data: <the event as JSON>`. `'ndjson'`: `application/x-ndjson`, one event
   * as JSON per line.
   */
  readonly format?: RunEventsFormat;
  /** The first event to send (its `seq`; default 1, every event). `Last-Event-ID` wins over it. */
  readonly fromSeq?: number;
  /**
   * The incoming request: its `Last-Event-ID` header (what a reconnecting `EventSource` sends)
   * makes the stream start after that event, and its `signal` stops the stream.
   */
  readonly request?: Request;
  /** Stops the stream when aborted (the client went away). */
  readonly signal?: AbortSignal;
  /** How often to look at the store for a run driven by another process (default 500 ms). */
  readonly pollIntervalMs?: number;
  /** SSE only: a comment line is sent after this long without an event (default 15 000 ms; 0: never). */
  readonly keepAliveMs?: number;
  /** Status of the response (default 200). */
  readonly status?: number;
  /** Status text of the response. */
  readonly statusText?: string;
  /** Extra headers (a `content-type` given here wins). */
  readonly headers?: HeadersInit;
}

const CONTENT_TYPE: Readonly<Record<RunEventsFormat, string>> = {
  sse: 'text/event-stream',
  ndjson: 'application/x-ndjson',
};

/** The run's last event in one stream: after it, nothing new comes until someone acts. */
function isLast(e: RunEvent): boolean {
  return e.type === 'run-finished' || e.type === 'run-suspended';
}

/** `Last-Event-ID` as the next seq to send, or undefined when absent or not a number. */
function lastEventId(request: Request | undefined): number | undefined {
  const v = request?.headers.get('last-event-id')?.trim();
  if (v === undefined || !/^\d{1,15}$/.test(v)) return undefined;
  return Number(v) + 1;
}

/** One event in the chosen format. */
function encodeEvent(e: RunEvent, format: RunEventsFormat): string {
  const json = JSON.stringify(e);
  // JSON.stringify escapes line breaks inside strings, so `data:` is one line.
  return format === 'sse' ? `id: ${e.seq}\nevent: ${e.type}\ndata: ${json}\n\n` : `${json}\n`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The events of one run, from `from`, up to and including the next `run-finished` or
 * `run-suspended`: live while this engine drives the run, read from the store every
 * `poll` ms while another process drives it. Stops early when `stop` aborts.
 */
async function* runEvents(engine: Engine, runId: string, from: number, poll: number, stop: AbortSignal): AsyncGenerator<RunEvent, void, undefined> {
  let next = from;
  for (;;) {
    const it = engine.events(runId, next);
    const onStop = (): void => void it.return?.(undefined)?.catch(() => undefined);
    stop.addEventListener('abort', onStop, { once: true });
    try {
      for await (const e of it) {
        if (stop.aborted) return;
        next = e.seq + 1;
        yield e;
        if (isLast(e)) return;
      }
    } finally {
      stop.removeEventListener('abort', onStop);
    }
    if (stop.aborted) return;
    // Not driven here (any more). Its status and events are committed together: a run that is
    // no longer running has all its events stored, so one more read finds whatever is left.
    const run = await engine.get(runId);
    if (run === null) return;
    if (run.status !== 'running') {
      for (const e of await readStored(engine, runId, next)) {
        yield e;
        if (isLast(e)) return;
      }
      return;
    }
    await pause(poll, stop);
    if (stop.aborted) return;
  }
}

/** The stored events of a run from `from` (a run not driven here: the iterator does not wait). */
async function readStored(engine: Engine, runId: string, from: number): Promise<RunEvent[]> {
  const out: RunEvent[] = [];
  for await (const e of engine.events(runId, from)) out.push(e);
  return out;
}

/**
 * Streams a workflow run's events as a web `Response`: stored events first, then live ones, up
 * to the run's `run-finished` or `run-suspended` event (included), where the stream ends.
 * Resolves to a 404 JSON error (`{ error: { code: 'NOT_FOUND', message } }`) when the run does
 * not exist.
 *
 * - SSE (default): `id:` is the event's `seq`, so a reconnecting `EventSource` resumes after
 *   the last event it got (pass `request` so its `Last-Event-ID` header is honoured); `event:`
 *   is the event's `type`; `data:` the event as JSON. Close the `EventSource` on
 *   `run-finished` / `run-suspended`, or it reconnects when the stream ends.
 * - NDJSON: one event as JSON per line (`fetch` + a line reader).
 *
 * When the client goes away (the body is cancelled, or `request.signal` / `signal` aborts) the
 * stream stops reading events; the run itself goes on.
 */
export async function runEventsResponse(engine: Engine, runId: string, options: RunEventsResponseOptions = {}): Promise<Response> {
  const format: RunEventsFormat = options.format ?? 'sse';
  if (format !== 'sse' && format !== 'ndjson') {
    throw new TypeError(`runEventsResponse: unknown format \`${String(format)}\` (sse or ndjson)`);
  }
  if ((await engine.get(runId)) === null) {
    return Response.json({ error: { code: 'NOT_FOUND', message: `run \`${runId}\` not found` } }, { status: 404 });
  }
  const from = Math.max(1, lastEventId(options.request) ?? Math.floor(options.fromSeq ?? 1));
  const poll = Math.max(10, options.pollIntervalMs ?? 500);
  const keepAlive = format === 'sse' ? Math.max(0, options.keepAliveMs ?? 15_000) : 0;

  const stop = new AbortController();
  const sources = [options.request?.signal, options.signal].filter((s): s is AbortSignal => s !== undefined);
  const onAbort = (): void => stop.abort();
  for (const s of sources) {
    if (s.aborted) stop.abort();
    else s.addEventListener('abort', onAbort, { once: true });
  }
  const events = runEvents(engine, runId, from, poll, stop.signal);
  const encoder = new TextEncoder();
  /** The read in progress (kept across pulls when a keep-alive comment went out meanwhile). */
  let pending: Promise<IteratorResult<RunEvent, void>> | undefined;
  const finish = (): void => {
    for (const s of sources) s.removeEventListener('abort', onAbort);
    stop.abort();
    // The generator may be waiting for the engine's next commit: it ends then (`return` is
    // queued behind that read), and reads nothing more.
    void events.return(undefined).catch(() => undefined);
  };

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending === undefined) {
        pending = events.next();
        // A read can reject (the store failed): the stream errors with it, but the rejection
        // must not also go unhandled when the client left before it came.
        pending.catch(() => undefined);
      }
      // Wait for the next event, the client going away, or the keep-alive time; the listener
      // and the timer are this pull's only (nothing piles up on a long stream).
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onStop: (() => void) | undefined;
      const waits: Array<Promise<IteratorResult<RunEvent, void> | 'keep-alive' | 'stopped'>> = [
        pending,
        new Promise<'stopped'>((resolve) => {
          onStop = () => resolve('stopped');
          if (stop.signal.aborted) resolve('stopped');
          else stop.signal.addEventListener('abort', onStop, { once: true });
        }),
      ];
      if (keepAlive > 0) {
        waits.push(
          new Promise<'keep-alive'>((resolve) => {
            timer = setTimeout(() => resolve('keep-alive'), keepAlive);
          }),
        );
      }
      let r: IteratorResult<RunEvent, void> | 'keep-alive' | 'stopped';
      try {
        r = await Promise.race(waits);
      } finally {
        clearTimeout(timer);
        if (onStop !== undefined) stop.signal.removeEventListener('abort', onStop);
      }
      if (r === 'keep-alive') {
        controller.enqueue(encoder.encode(': keep-alive\n\n'));
        return;
      }
      pending = undefined;
      if (r === 'stopped' || r.done === true) {
        finish();
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(encodeEvent(r.value, format)));
    },
    cancel() {
      finish();
    },
  });
  const headers = new Headers(options.headers);
  if (!headers.has('content-type')) headers.set('content-type', CONTENT_TYPE[format]);
  if (!headers.has('cache-control')) headers.set('cache-control', 'no-cache, no-transform');
  // Proxies such as nginx buffer responses unless told otherwise.
  if (!headers.has('x-accel-buffering')) headers.set('x-accel-buffering', 'no');
  return new Response(body, { status: options.status ?? 200, statusText: options.statusText ?? '', headers });
}
