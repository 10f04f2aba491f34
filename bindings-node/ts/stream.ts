/**
 * Streams of native async work (model calls, agent generations) as JS sees them.
 *
 * The native side produces parts on a tokio thread; `PartSource` pulls them in batches with one
 * async native call per batch (`NativeStream.next()` returns every part already produced), keeps
 * them, and lets any number of readers go through them: `textStream`, `fullStream`, a Web
 * `ReadableStream`, and the promises of the final values. Text deltas arrive as plain strings,
 * the cheapest value to carry across; other parts are objects with a `type`.
 */
import type { NativeStream } from './native.js';
import { CancelledError, MiyabiError, fromNative, fromNativeError } from './errors.js';

/** Token usage. */
export interface Usage {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly totalTokens: number;
  readonly reasoningTokens: number;
  readonly cachedInputTokens: number;
}

/** Why the model stopped. */
export type FinishReason = 'stop' | 'length' | 'tool-calls' | 'content-filter' | 'error' | 'other';

/** A tool call the model made. */
export interface ToolCall<I = unknown> {
  readonly toolCallId: string;
  readonly toolName: string;
  /** The arguments. */
  readonly input: I;
}

/** The result of a tool call. */
export interface ToolResult<O = unknown> {
  readonly toolCallId: string;
  readonly toolName: string;
  /** What the tool returned (for a failed call: the error text the model saw). */
  readonly output: O;
  /** The tool failed (or was refused); `output` is the error text. */
  readonly isError: boolean;
}

/** A tool call waiting for a human's approval. */
export interface PendingApproval {
  readonly toolCallId: string;
  readonly toolName: string;
  readonly input: unknown;
  readonly description: string;
}

/** One part of a `fullStream`. */
export type StreamPart =
  | { readonly type: 'text-delta'; readonly text: string }
  | { readonly type: 'reasoning-delta'; readonly text: string }
  | { readonly type: 'start'; readonly id: string | null; readonly modelId: string | null }
  | { readonly type: 'tool-input-start'; readonly id: string; readonly toolName: string }
  | { readonly type: 'tool-input-delta'; readonly id: string; readonly delta: string }
  | ({ readonly type: 'tool-call' } & ToolCall)
  | ({ readonly type: 'tool-result' } & ToolResult)
  | { readonly type: 'start-step'; readonly step: number }
  | {
      readonly type: 'finish-step';
      readonly step: number;
      readonly usage: Usage;
      readonly costUsd: number | null;
      readonly finishReason: FinishReason;
    }
  | { readonly type: 'approval-required'; readonly pending: ReadonlyArray<PendingApproval> }
  | { readonly type: 'finish'; readonly finishReason: FinishReason; readonly usage: Usage; readonly costUsd?: number | null }
  | { readonly type: 'error'; readonly error: Error };

/** A part as the addon sends it: a string is a text delta. */
export type RawPart = string | { readonly type: string; readonly [key: string]: unknown };

type Waiter = () => void;

/** Pulls a native stream's parts and keeps them for its readers. */
export class PartSource {
  readonly #n: NativeStream;
  /** Every batch so far (readers keep a position in it). */
  readonly batches: Array<ReadonlyArray<RawPart>> = [];
  #done = false;
  #error: Error | undefined;
  #waiters: Waiter[] = [];
  readonly #finished: Promise<void>;
  #cancelled = false;

  constructor(n: NativeStream) {
    this.#n = n;
    this.#finished = this.#pump();
    // Failures reach the readers and the promises that are awaited, never `unhandledRejection`.
    this.#finished.catch(() => undefined);
  }

  get done(): boolean {
    return this.#done;
  }

  get error(): Error | undefined {
    return this.#error;
  }

  /** Settles when the stream is over; rejects with its error. */
  finished(): Promise<void> {
    return this.#finished;
  }

  /** Resolves when more parts arrived or the stream ended. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Stops the native work; readers see the end (the error is a `CancelledError`). */
  cancel(reason?: unknown): void {
    if (this.#done || this.#cancelled) return;
    this.#cancelled = true;
    this.#error ??= reason instanceof Error ? reason : new CancelledError('the stream was cancelled');
    this.#n.cancel();
  }

  async #pump(): Promise<void> {
    const n = this.#n;
    try {
      for (;;) {
        let b;
        try {
          b = await n.next();
        } catch (e) {
          throw fromNative(e);
        }
        if (b.parts.length > 0) {
          this.batches.push(b.parts as ReadonlyArray<RawPart>);
          this.#wake();
        }
        if (b.error !== null && b.error !== undefined) throw fromNativeError(b.error);
        if (b.done) break;
      }
      if (this.#cancelled && this.#error !== undefined) throw this.#error;
    } catch (e) {
      this.#error ??= e instanceof Error ? e : new MiyabiError('ENGINE', String(e));
      throw this.#error;
    } finally {
      this.#done = true;
      this.#wake();
    }
  }

  #wake(): void {
    const w = this.#waiters;
    if (w.length === 0) return;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Every part so far, in order. */
  *parts(): Generator<RawPart> {
    for (const b of this.batches) yield* b;
  }
}

/** An async iterator over a source's parts, from the start. */
class Reader<T> implements AsyncIterableIterator<T> {
  #b = 0;
  #i = 0;
  #finished = false;
  readonly #src: PartSource;
  /** Maps a raw part to what this reader yields (undefined: skip it). */
  readonly #map: (p: RawPart) => T | undefined;
  /** What to yield once when the source failed (undefined: throw the error). */
  readonly #onError: ((e: Error) => T) | undefined;

  constructor(src: PartSource, map: (p: RawPart) => T | undefined, onError?: (e: Error) => T) {
    this.#src = src;
    this.#map = map;
    this.#onError = onError;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next value already available, or a marker saying to wait or that the end came. */
  #take(): { readonly value: T } | 'wait' | 'end' {
    const src = this.#src;
    for (;;) {
      const batch = src.batches[this.#b];
      if (batch === undefined) break;
      while (this.#i < batch.length) {
        const v = this.#map(batch[this.#i++] as RawPart);
        if (v !== undefined) return { value: v };
      }
      this.#b++;
      this.#i = 0;
    }
    return src.done ? 'end' : 'wait';
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#finished) return Promise.resolve({ value: undefined, done: true });
    const t = this.#take();
    if (t === 'wait') return this.#src.wait().then(() => this.next());
    if (t !== 'end') return Promise.resolve({ value: t.value, done: false });
    this.#finished = true;
    const e = this.#src.error;
    if (e === undefined) return Promise.resolve({ value: undefined, done: true });
    if (this.#onError !== undefined) return Promise.resolve({ value: this.#onError(e), done: false });
    return Promise.reject(e);
  }

  /** Every value available now, without waiting (empty when none). */
  drain(): T[] {
    const out: T[] = [];
    for (;;) {
      const t = this.#take();
      if (t === 'wait' || t === 'end') return out;
      out.push(t.value);
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.#finished = true;
    return Promise.resolve({ value: undefined, done: true });
  }
}

/** The text deltas of a source. */
export function textReader(src: PartSource): Reader<string> {
  return new Reader<string>(src, (p) => (typeof p === 'string' ? p : undefined));
}

/** Every part of a source as a typed stream part; a failure is an `error` part at the end. */
export function partReader(src: PartSource, map?: (p: RawPart) => StreamPart | undefined): Reader<StreamPart> {
  return new Reader<StreamPart>(
    src,
    map ?? ((p) => (typeof p === 'string' ? { type: 'text-delta', text: p } : (p as StreamPart))),
    (error) => ({ type: 'error', error }),
  );
}

/** A Web `ReadableStream` of the source's text, UTF-8 encoded; cancelling it stops the work. */
export function textByteStream(src: PartSource): ReadableStream<Uint8Array> {
  const reader = textReader(src);
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const r = await reader.next();
      if (r.done === true) {
        controller.close();
        return;
      }
      // Everything that arrived with this delta goes out as one chunk.
      const more = reader.drain();
      controller.enqueue(encoder.encode(more.length === 0 ? r.value : r.value + more.join('')));
    },
    cancel(reason) {
      src.cancel(reason);
    },
  });
}

/** A promise whose rejection is reported only to those who await it. */
export function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** The response headers of a text stream (a `content-type` unless given). */
export function textHeaders(init?: ResponseInit): Headers {
  const headers = new Headers(init?.headers);
  if (!headers.has('content-type')) headers.set('content-type', 'text/plain; charset=utf-8');
  return headers;
}
