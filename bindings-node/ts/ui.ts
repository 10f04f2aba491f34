/**
 * An agent's stream in the AI SDK's **UI message stream protocol** (server-sent events of JSON
 * chunks, header `x-vercel-ai-ui-message-stream: v1`), so `useChat` from `@ai-sdk/react` — and
 * `useChat` from `@miyabi/react` — work unchanged against a Miyabi agent route.
 *
 * ```ts
 * // app/api/chat/route.ts
 * const approvals = memoryApprovalStore();
 * export async function POST(req: Request): Promise<Response> {
 *   return agentChatResponse(agent, req, { approvals });
 * }
 * ```
 *
 * Text, reasoning, tool calls (as dynamic tools: the client needs no tool types), tool results
 * and errors become the protocol's parts. A tool that needs approval ends the stream with a
 * `tool-approval-request` part per pending call; the generation's checkpoint is kept in an
 * {@link ApprovalStore} under the approval's id. When the client answers
 * (`addToolApprovalResponse`) and sends the messages back, {@link agentChatResponse} finds the
 * checkpoint and resumes the generation, streaming the approved tools' results and the rest of
 * the answer into the same assistant message.
 */
import type { Agent } from './agent.js';
import { MiyabiError } from './errors.js';
import type { Message, MessagePart } from './model.js';
import type { AgentResult } from './result.js';
import type { FinishReason, PendingApproval, StreamPart } from './stream.js';

/** The headers of a UI message stream response. */
export const UI_MESSAGE_STREAM_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-vercel-ai-ui-message-stream': 'v1',
  'x-accel-buffering': 'no',
};

/** One chunk of the UI message stream protocol, as Miyabi writes them. */
export type UIMessageChunk =
  | { readonly type: 'start'; readonly messageId?: string }
  | { readonly type: 'start-step' }
  | { readonly type: 'finish-step' }
  | { readonly type: 'text-start'; readonly id: string }
  | { readonly type: 'text-delta'; readonly id: string; readonly delta: string }
  | { readonly type: 'text-end'; readonly id: string }
  | { readonly type: 'reasoning-start'; readonly id: string }
  | { readonly type: 'reasoning-delta'; readonly id: string; readonly delta: string }
  | { readonly type: 'reasoning-end'; readonly id: string }
  | { readonly type: 'tool-input-start'; readonly toolCallId: string; readonly toolName: string; readonly dynamic: true }
  | { readonly type: 'tool-input-delta'; readonly toolCallId: string; readonly inputTextDelta: string }
  | {
      readonly type: 'tool-input-available';
      readonly toolCallId: string;
      readonly toolName: string;
      readonly input: unknown;
      readonly dynamic: true;
    }
  | { readonly type: 'tool-approval-request'; readonly approvalId: string; readonly toolCallId: string }
  | { readonly type: 'tool-output-available'; readonly toolCallId: string; readonly output: unknown; readonly dynamic: true }
  | { readonly type: 'tool-output-error'; readonly toolCallId: string; readonly errorText: string; readonly dynamic: true }
  | { readonly type: 'tool-output-denied'; readonly toolCallId: string }
  | { readonly type: 'error'; readonly errorText: string }
  | { readonly type: 'abort' }
  | { readonly type: 'finish'; readonly finishReason?: FinishReason };

/** What a stream to convert offers: an agent's (or `streamText`'s) result. */
export interface UIStreamSource {
  readonly fullStream: AsyncIterableIterator<StreamPart>;
  /** @internal the agent's whole response, when it is an agent's stream */
  readonly agentResult?: Promise<AgentResult<unknown> | undefined>;
  cancel(): void;
}

/** Options of `toUIMessageStream` and `toUIMessageStreamResponse`. */
export interface UIMessageStreamOptions {
  /** The id of the assistant message (sent in the `start` chunk); omitted: the client picks one. */
  readonly messageId?: string;
  /** Send reasoning deltas (default true). */
  readonly sendReasoning?: boolean;
  /** Send the `start` chunk (default true; false when continuing an assistant message). */
  readonly sendStart?: boolean;
  /**
   * Called when the generation stops for approval, before the approval requests are sent; returns
   * the approval id of each pending call (in order). {@link agentChatResponse} stores the
   * checkpoint here. Default: the tool call ids.
   */
  readonly onApprovalRequired?: (
    pending: ReadonlyArray<PendingApproval>,
    result: AgentResult<unknown>,
  ) => Promise<ReadonlyArray<string>> | ReadonlyArray<string>;
  /** Tool calls a human refused: their results are sent as `tool-output-denied`. */
  readonly denied?: ReadonlySet<string>;
  /** The text sent in an `error` chunk (default: the error's message; Miyabi's errors hold no secrets). */
  readonly onError?: (error: Error) => string;
  /** Stops the generation when aborted (e.g. the request's signal). */
  readonly signal?: AbortSignal;
}

/** A small counter for part ids within one message. */
function ids(): () => string {
  let n = 0;
  return () => `p${(n++).toString(36)}`;
}

/**
 * The chunks of the UI message stream for an agent's (or `streamText`'s) stream, in order:
 * `start`, per model call `start-step` … `finish-step`, text and reasoning parts opened and closed
 * around their deltas, tool parts, approval requests, and `finish` (or `error` / `abort`).
 */
export async function* uiMessageChunks(source: UIStreamSource, options: UIMessageStreamOptions = {}): AsyncGenerator<UIMessageChunk> {
  const next = ids();
  const sendReasoning = options.sendReasoning ?? true;
  let text: string | undefined;
  let reasoning: string | undefined;
  let stepOpen = false;
  const close = function* (): Generator<UIMessageChunk> {
    if (text !== undefined) yield { type: 'text-end', id: text };
    if (reasoning !== undefined) yield { type: 'reasoning-end', id: reasoning };
    text = undefined;
    reasoning = undefined;
  };
  if (options.sendStart ?? true) yield options.messageId === undefined ? { type: 'start' } : { type: 'start', messageId: options.messageId };
  let finishReason: FinishReason | undefined;
  for await (const p of source.fullStream) {
    switch (p.type) {
      case 'text-delta':
        if (p.text === '') break;
        if (reasoning !== undefined) {
          yield { type: 'reasoning-end', id: reasoning };
          reasoning = undefined;
        }
        if (text === undefined) {
          text = next();
          yield { type: 'text-start', id: text };
        }
        yield { type: 'text-delta', id: text, delta: p.text };
        break;
      case 'reasoning-delta':
        if (!sendReasoning || p.text === '') break;
        if (text !== undefined) {
          yield { type: 'text-end', id: text };
          text = undefined;
        }
        if (reasoning === undefined) {
          reasoning = next();
          yield { type: 'reasoning-start', id: reasoning };
        }
        yield { type: 'reasoning-delta', id: reasoning, delta: p.text };
        break;
      case 'start-step':
        yield* close();
        stepOpen = true;
        yield { type: 'start-step' };
        break;
      case 'finish-step':
        yield* close();
        if (stepOpen) yield { type: 'finish-step' };
        stepOpen = false;
        finishReason = p.finishReason;
        break;
      case 'tool-input-start':
        yield* close();
        yield { type: 'tool-input-start', toolCallId: p.id, toolName: p.toolName, dynamic: true };
        break;
      case 'tool-input-delta':
        yield { type: 'tool-input-delta', toolCallId: p.id, inputTextDelta: p.delta };
        break;
      case 'tool-call':
        yield* close();
        yield { type: 'tool-input-available', toolCallId: p.toolCallId, toolName: p.toolName, input: p.input, dynamic: true };
        break;
      case 'tool-result':
        yield* close();
        if (options.denied?.has(p.toolCallId) === true) yield { type: 'tool-output-denied', toolCallId: p.toolCallId };
        else if (p.isError) yield { type: 'tool-output-error', toolCallId: p.toolCallId, errorText: String(p.output), dynamic: true };
        else yield { type: 'tool-output-available', toolCallId: p.toolCallId, output: p.output, dynamic: true };
        break;
      case 'approval-required': {
        yield* close();
        const result = source.agentResult === undefined ? undefined : await source.agentResult;
        let approvalIds: ReadonlyArray<string> = p.pending.map((x) => x.toolCallId);
        if (options.onApprovalRequired !== undefined) {
          if (result === undefined) throw new MiyabiError('ENGINE', 'an approval was requested by a stream without an agent response');
          approvalIds = await options.onApprovalRequired(p.pending, result);
        }
        for (const [i, call] of p.pending.entries()) {
          yield { type: 'tool-approval-request', approvalId: approvalIds[i] ?? call.toolCallId, toolCallId: call.toolCallId };
        }
        finishReason = 'tool-calls';
        break;
      }
      case 'finish':
        yield* close();
        if (stepOpen) yield { type: 'finish-step' };
        stepOpen = false;
        finishReason = finishReason === 'tool-calls' ? finishReason : p.finishReason;
        yield { type: 'finish', finishReason };
        return;
      case 'error': {
        yield* close();
        if (p.error.name === 'CancelledError' || options.signal?.aborted === true) {
          yield { type: 'abort' };
          return;
        }
        yield { type: 'error', errorText: options.onError?.(p.error) ?? p.error.message };
        return;
      }
      default:
        break;
    }
  }
  yield* close();
  yield finishReason === undefined ? { type: 'finish' } : { type: 'finish', finishReason };
}

/** The `error` chunk for a failure of the stream itself (the text from `options.onError`). */
function errorChunk(e: unknown, options: UIMessageStreamOptions): UIMessageChunk {
  const error = e instanceof Error ? e : new Error(String(e));
  return { type: 'error', errorText: options.onError?.(error) ?? error.message };
}

/** Stops the generation when `signal` aborts (at once if it already has). */
function cancelOnAbort(source: UIStreamSource, signal: AbortSignal | undefined): void {
  if (signal === undefined) return;
  if (signal.aborted) source.cancel();
  else signal.addEventListener('abort', () => source.cancel(), { once: true });
}

/** The UI message stream as a Web `ReadableStream` of chunks (objects). Cancelling it stops the generation. */
export function toUIMessageStream(source: UIStreamSource, options: UIMessageStreamOptions = {}): ReadableStream<UIMessageChunk> {
  const it = uiMessageChunks(source, options);
  cancelOnAbort(source, options.signal);
  return new ReadableStream<UIMessageChunk>({
    async pull(controller) {
      try {
        const r = await it.next();
        if (r.done === true) controller.close();
        else controller.enqueue(r.value);
      } catch (e) {
        controller.enqueue(errorChunk(e, options));
        controller.close();
      }
    },
    cancel() {
      source.cancel();
      void it.return(undefined);
    },
  });
}

const encoder = new TextEncoder();

/** Chunks as server-sent events (`data: <json>`), ended by `data: [DONE]`, UTF-8 encoded. */
export function uiMessageStreamToSSE(stream: ReadableStream<UIMessageChunk>): ReadableStream<Uint8Array> {
  return stream.pipeThrough(
    new TransformStream<UIMessageChunk, Uint8Array>({
      transform(chunk, controller) {
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(chunk)}\n\n`));
      },
      flush(controller) {
        controller.enqueue(encoder.encode('data: [DONE]\n\n'));
      },
    }),
  );
}

/** What a `setImmediate` race answers when the next chunk was not ready within the turn. */
const NOT_READY = Symbol('not ready');

/** The most UTF-16 units one write of {@link sseBody} gathers. */
const WRITE_CAP = 16 * 1024;

/**
 * The UI message stream as server-sent events, as `uiMessageStreamToSSE(toUIMessageStream(…))`
 * writes them, but every chunk that is ready within one turn of the event loop goes out in one
 * write: a fast model's deltas cost one stream read and one socket write per batch, not per
 * chunk, and a chunk that comes alone (the first token) is written as soon as it exists.
 */
function sseBody(source: UIStreamSource, options: UIMessageStreamOptions): ReadableStream<Uint8Array> {
  const it = uiMessageChunks(source, options);
  cancelOnAbort(source, options.signal);
  let pending: Promise<IteratorResult<UIMessageChunk>> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let out = '';
      let ended = false;
      try {
        // The first chunk of a write is waited for, however long the model takes.
        let r = await (pending ?? it.next());
        pending = undefined;
        const turn = new Promise<typeof NOT_READY>((resolve) => setImmediate(resolve, NOT_READY));
        for (;;) {
          if (r.done === true) {
            ended = true;
            break;
          }
          out += `data: ${JSON.stringify(r.value)}\n\n`;
          if (out.length >= WRITE_CAP) break;
          const next = it.next();
          const ready = await Promise.race([next, turn]);
          if (ready === NOT_READY) {
            pending = next;
            break;
          }
          r = ready;
        }
      } catch (e) {
        out += `data: ${JSON.stringify(errorChunk(e, options))}\n\n`;
        ended = true;
      }
      if (ended) out += 'data: [DONE]\n\n';
      if (out !== '') controller.enqueue(encoder.encode(out));
      if (ended) controller.close();
    },
    cancel() {
      source.cancel();
      void it.return(undefined);
    },
  });
}

/** A `Response` streaming the UI message stream (for Next.js route handlers and fetch-style servers). */
export function toUIMessageStreamResponse(source: UIStreamSource, options: UIMessageStreamOptions & ResponseInit = {}): Response {
  const headers = new Headers(UI_MESSAGE_STREAM_HEADERS);
  new Headers(options.headers).forEach((v, k) => headers.set(k, v));
  return new Response(sseBody(source, options), {
    status: options.status ?? 200,
    statusText: options.statusText ?? '',
    headers,
  });
}

/** Where {@link agentChatResponse} keeps the checkpoints of generations waiting for approval. */
export interface ApprovalStore {
  get(id: string): Promise<unknown> | unknown;
  set(id: string, checkpoint: unknown): Promise<void> | void;
  /** Removes it; returns whether it was there (a second answer to the same approval finds nothing). */
  delete(id: string): Promise<boolean> | boolean;
}

/** An {@link ApprovalStore} in this process's memory (lost on restart: use a durable one in production). */
export function memoryApprovalStore(): ApprovalStore {
  const m = new Map<string, unknown>();
  return {
    get: (id) => m.get(id),
    set: (id, cp) => {
      m.set(id, cp);
    },
    delete: (id) => m.delete(id),
  };
}

/** A key-value store such as a `WorkingMemory` (`memory.resource('chat-approvals')`). */
export interface KeyValueLike {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<unknown>;
  delete(key: string): Promise<unknown>;
}

/**
 * An {@link ApprovalStore} on a durable key-value store — e.g. a `WorkingMemory` of a SQLite
 * `Memory`, so an approval can wait for days and across restarts.
 */
export function keyValueApprovalStore(kv: KeyValueLike): ApprovalStore {
  return {
    get: async (id) => (await kv.get(id)) ?? undefined,
    set: async (id, cp) => {
      await kv.set(id, cp);
    },
    delete: async (id) => {
      const had = (await kv.get(id)) !== undefined && (await kv.get(id)) !== null;
      await kv.delete(id);
      return had;
    },
  };
}

/** A part of a UI message (the fields Miyabi reads; others are ignored). */
export interface UIMessagePartLike {
  readonly type: string;
  readonly text?: string;
  readonly toolCallId?: string;
  readonly toolName?: string;
  readonly state?: string;
  readonly input?: unknown;
  readonly output?: unknown;
  readonly errorText?: string;
  readonly approval?: { readonly id: string; readonly approved?: boolean; readonly reason?: string };
}

/** A UI message as `useChat` sends it. */
export interface UIMessageLike {
  readonly id?: string;
  readonly role: 'system' | 'user' | 'assistant';
  readonly parts: ReadonlyArray<UIMessagePartLike>;
}

function toolNameOf(p: UIMessagePartLike): string | undefined {
  if (p.type === 'dynamic-tool') return p.toolName;
  if (p.type.startsWith('tool-')) return p.type.slice('tool-'.length);
  return undefined;
}

/**
 * UI messages (what `useChat` sends) as Miyabi messages: text parts become text; finished tool
 * parts become the assistant's tool call and the tool's result (a refused one as an error the
 * model reads). Tool parts still waiting for a decision are left out.
 */
export function fromUIMessages(messages: ReadonlyArray<UIMessageLike>): Message[] {
  const out: Message[] = [];
  for (const m of messages) {
    if (m.role !== 'assistant') {
      const text = m.parts.filter((p) => p.type === 'text').map((p) => p.text ?? '').join('');
      out.push({ role: m.role, content: text });
      continue;
    }
    // An assistant message may hold several model turns: flush the content at each tool round.
    let content: MessagePart[] = [];
    let results: MessagePart[] = [];
    const flush = (): void => {
      if (content.length > 0) out.push({ role: 'assistant', content });
      if (results.length > 0) out.push({ role: 'tool', content: results });
      content = [];
      results = [];
    };
    for (const p of m.parts) {
      if (p.type === 'step-start') {
        if (results.length > 0) flush();
        continue;
      }
      if (p.type === 'text' && p.text !== undefined && p.text !== '') {
        if (results.length > 0) flush();
        content.push({ type: 'text', text: p.text });
        continue;
      }
      const name = toolNameOf(p);
      if (name === undefined || p.toolCallId === undefined) continue;
      let result: { content: unknown; isError: boolean } | undefined;
      if (p.state === 'output-available') result = { content: p.output, isError: false };
      else if (p.state === 'output-error') result = { content: p.errorText ?? 'the tool failed', isError: true };
      else if (p.state === 'output-denied') result = { content: `a human refused this call${p.approval?.reason ? `: ${p.approval.reason}` : ''}`, isError: true };
      if (result === undefined) continue;
      content.push({ type: 'tool_call', id: p.toolCallId, name, arguments: p.input ?? {} });
      results.push({ type: 'tool_result', call_id: p.toolCallId, name, content: result.content ?? null, is_error: result.isError });
    }
    flush();
  }
  return out;
}

/** Options of {@link agentChatResponse}. */
export interface AgentChatOptions extends Omit<UIMessageStreamOptions, 'onApprovalRequired' | 'denied' | 'sendStart'> {
  /** Where checkpoints wait for approvals (default: none — a tool needing approval is an error). */
  readonly approvals?: ApprovalStore;
  /**
   * A memory thread: its stored messages are the history, so only the newest user message is sent
   * to the agent (the agent needs `memory`). Without it, the whole conversation the client sent is.
   */
  readonly thread?: string;
  /** The memory resource of the thread. */
  readonly resource?: string;
  /** The request context given to the agent. */
  readonly context?: unknown;
  /** Extra response headers. */
  readonly headers?: HeadersInit;
}

function problem(status: number, message: string): Response {
  return Response.json({ error: { code: status === 409 ? 'CONFLICT' : 'INVALID_ARGUMENT', message } }, { status });
}

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * A route handler's answer to `useChat` (the AI SDK's default transport body: `{ id, messages,
 * trigger }`): the agent's reply as a UI message stream. When the last assistant message answers
 * approval requests, the stored checkpoint is resumed with those decisions instead; an approval
 * that is unknown or already answered gets 409.
 */
export async function agentChatResponse(agent: Agent<unknown>, request: Request, options: AgentChatOptions = {}): Promise<Response> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return problem(400, 'the request body is not JSON: send {"messages": [...]} as useChat does');
  }
  const messages = (body as { messages?: unknown } | null)?.messages;
  if (!Array.isArray(messages) || messages.some((m) => typeof m !== 'object' || m === null || !Array.isArray((m as UIMessageLike).parts))) {
    return problem(400, '`messages` must be an array of UI messages ({"role", "parts"})');
  }
  const ui = messages as ReadonlyArray<UIMessageLike>;
  const signal = options.signal ?? request.signal;
  const approvals = options.approvals;
  const onApprovalRequired =
    approvals === undefined
      ? undefined
      : async (pending: ReadonlyArray<PendingApproval>, result: AgentResult<unknown>): Promise<ReadonlyArray<string>> => {
          const key = randomId();
          await approvals.set(key, result.checkpoint);
          return pending.map((p) => `${key}:${p.toolCallId}`);
        };
  const streamOptions = { ...options, signal, onApprovalRequired };

  // Answers to approval requests in the last assistant message: resume.
  const last = ui.at(-1);
  const answered =
    last?.role === 'assistant'
      ? last.parts.filter((p) => p.approval !== undefined && typeof p.approval.approved === 'boolean' && p.state === 'approval-responded')
      : [];
  if (answered.length > 0) {
    if (approvals === undefined) return problem(409, 'this route keeps no approvals (pass `approvals`)');
    const key = answered[0]?.approval?.id.split(':')[0] ?? '';
    const checkpoint = await approvals.get(key);
    if (checkpoint === undefined || checkpoint === null || !(await approvals.delete(key))) {
      return problem(409, `approval \`${key}\` is unknown or was already answered`);
    }
    const decisions: Record<string, { approved: boolean; reason?: string }> = {};
    const denied = new Set<string>();
    for (const p of answered) {
      if (p.toolCallId === undefined || p.approval?.id.split(':')[0] !== key) continue;
      const approved = p.approval.approved === true;
      decisions[p.toolCallId] = p.approval.reason === undefined ? { approved } : { approved, reason: p.approval.reason };
      if (!approved) denied.add(p.toolCallId);
    }
    const stream = agent.resumeStream(checkpoint as never, { decisions });
    // The answer continues the client's last assistant message.
    return toUIMessageStreamResponse(stream, { ...streamOptions, denied, messageId: options.messageId ?? last?.id });
  }

  const input =
    options.thread === undefined
      ? { messages: fromUIMessages(ui), context: options.context }
      : {
          messages: fromUIMessages(ui.filter((m) => m.role === 'user').slice(-1)),
          thread: options.thread,
          resource: options.resource,
          context: options.context,
        };
  const stream = agent.stream(input, { abortSignal: signal });
  return toUIMessageStreamResponse(stream, streamOptions);
}
