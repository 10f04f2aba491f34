/**
 * Results of model calls and agent generations: the final values (`GenerateTextResult`,
 * `AgentResult`) and the streaming one (`StreamTextResult`).
 */
import { toUIMessageStream, toUIMessageStreamResponse, type UIMessageChunk, type UIMessageStreamOptions } from './ui.js';
import type { NativeStream } from './native.js';
import {
  type FinishReason,
  type PendingApproval,
  PartSource,
  type RawPart,
  type StreamPart,
  type ToolCall,
  type ToolResult,
  type Usage,
  partReader,
  quiet,
  textByteStream,
  textHeaders,
  textReader,
} from './stream.js';
import { MiyabiError } from './errors.js';

/** One model call of a generation, with the tool calls it made and their results. */
export interface StepResult {
  readonly text: string;
  readonly reasoning: string;
  readonly toolCalls: ReadonlyArray<ToolCall>;
  readonly toolResults: ReadonlyArray<ToolResult>;
  readonly usage: Usage;
  readonly costUsd: number | null;
  readonly finishReason: FinishReason;
  /** The repair call after an answer that did not follow the output schema. */
  readonly repair: boolean;
}

/** Why an agent's generation stopped. */
export type StopReason = 'done' | 'max-steps' | 'final-tool' | 'predicate' | 'approval-required';

/** A generation waiting for approval, to give to `agent.resume` (serializable: store it anywhere). */
export type AgentCheckpoint = { readonly [key: string]: unknown };

/** What `generateText` returns. */
export interface GenerateTextResult {
  /** The answer (of the last step). */
  readonly text: string;
  /** The reasoning text (of the last step), if the model reasons. */
  readonly reasoning: string;
  /** Tool calls of every step. */
  readonly toolCalls: ReadonlyArray<ToolCall>;
  /** Results of the tool calls that ran. */
  readonly toolResults: ReadonlyArray<ToolResult>;
  /** Why the model stopped (last step). */
  readonly finishReason: FinishReason;
  /** Usage summed over the steps. */
  readonly usage: Usage;
  /** Cost in USD from the catalogue's prices, when known. */
  readonly costUsd: number | null;
  /** Every model call. */
  readonly steps: ReadonlyArray<StepResult>;
  /** Ids the provider gave (single model calls). */
  readonly response: { readonly id: string | null; readonly modelId: string | null; readonly requestId: string | null };
}

/** What an agent's generation returns; `object` is the structured answer with an `output` schema. */
export interface AgentResult<O = string> extends GenerateTextResult {
  /** The structured answer (with an `output` schema), or a final tool's result. */
  readonly object: O | undefined;
  /** Why the loop stopped. */
  readonly stopReason: StopReason;
  /** The final tool that ended the loop. */
  readonly finalTool: string | null;
  /** The messages this generation added (input and generated), in Miyabi's message format. */
  readonly messages: ReadonlyArray<unknown>;
  /** Tool calls waiting for approval (`stopReason: 'approval-required'`). */
  readonly pending: ReadonlyArray<PendingApproval>;
  /** Where to resume from after approval (`stopReason: 'approval-required'`). */
  readonly checkpoint: AgentCheckpoint | null;
}

const ZERO: Usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0, reasoningTokens: 0, cachedInputTokens: 0 };

type Obj = { readonly type: string; readonly [key: string]: unknown };

/** The result of a single model call (`response` part). */
export function modelResult(p: Obj): GenerateTextResult {
  const step: StepResult = {
    text: p.text as string,
    reasoning: p.reasoning as string,
    toolCalls: p.toolCalls as ToolCall[],
    toolResults: [],
    usage: p.usage as Usage,
    costUsd: (p.costUsd as number | null) ?? null,
    finishReason: p.finishReason as FinishReason,
    repair: false,
  };
  return {
    text: step.text,
    reasoning: step.reasoning,
    toolCalls: step.toolCalls,
    toolResults: [],
    finishReason: step.finishReason,
    usage: step.usage,
    costUsd: step.costUsd,
    steps: [step],
    response: {
      id: (p.responseId as string | null) ?? null,
      modelId: (p.modelId as string | null) ?? null,
      requestId: (p.requestId as string | null) ?? null,
    },
  };
}

/** An agent's response (`agent-response` or `finish` part). */
export function agentResult<O>(p: Obj): AgentResult<O> {
  const steps = p.steps as StepResult[];
  const last = steps[steps.length - 1];
  return {
    text: p.text as string,
    reasoning: last?.reasoning ?? '',
    object: (p.object ?? undefined) as O | undefined,
    stopReason: p.stopReason as StopReason,
    finalTool: (p.finalTool as string | null) ?? null,
    finishReason: p.finishReason as FinishReason,
    steps,
    toolCalls: p.toolCalls as ToolCall[],
    toolResults: p.toolResults as ToolResult[],
    usage: p.usage as Usage,
    costUsd: (p.costUsd as number | null) ?? null,
    messages: p.messages as unknown[],
    pending: p.pending as PendingApproval[],
    checkpoint: (p.checkpoint as AgentCheckpoint | null) ?? null,
    response: { id: null, modelId: null, requestId: null },
  };
}

/** Waits for a native call that yields one final part of type `type`; `signal` cancels it. */
export async function single(n: NativeStream, type: string, signal?: AbortSignal): Promise<Obj> {
  const src = new PartSource(n);
  cancelOn(src, signal);
  await src.finished();
  for (const p of src.parts()) {
    if (typeof p !== 'string' && p.type === type) return p;
  }
  throw new MiyabiError('ENGINE', `the native call ended without a ${type}`);
}

/** Cancels the source when `signal` aborts (with its reason). */
function cancelOn(src: PartSource, signal: AbortSignal | undefined): void {
  if (signal === undefined) return;
  if (signal.aborted) {
    src.cancel(signal.reason);
    return;
  }
  const onAbort = (): void => src.cancel(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const off = (): void => signal.removeEventListener('abort', onAbort);
  src.finished().then(off, off);
}

/** The final values of a stream, once it is over. */
interface Summary<O> {
  readonly text: string;
  readonly reasoning: string;
  readonly toolCalls: ReadonlyArray<ToolCall>;
  readonly toolResults: ReadonlyArray<ToolResult>;
  readonly finishReason: FinishReason;
  readonly usage: Usage;
  readonly agent: AgentResult<O> | undefined;
}

function summarize<O>(src: PartSource): Summary<O> {
  const text: string[] = [];
  const reasoning: string[] = [];
  const toolCalls: ToolCall[] = [];
  const toolResults: ToolResult[] = [];
  let finishReason: FinishReason = 'other';
  let usage = ZERO;
  let agent: AgentResult<O> | undefined;
  for (const p of src.parts()) {
    if (typeof p === 'string') {
      text.push(p);
      continue;
    }
    switch (p.type) {
      case 'reasoning-delta':
        reasoning.push(p.text as string);
        break;
      case 'tool-call':
        toolCalls.push(p as unknown as ToolCall);
        break;
      case 'tool-result':
        toolResults.push(p as unknown as ToolResult);
        break;
      case 'finish':
        finishReason = p.finishReason as FinishReason;
        usage = p.usage as Usage;
        if (Array.isArray(p.steps)) agent = agentResult<O>(p);
        break;
      default:
        break;
    }
  }
  return {
    text: agent?.text ?? text.join(''),
    reasoning: agent?.reasoning ?? reasoning.join(''),
    toolCalls,
    toolResults,
    finishReason,
    usage,
    agent,
  };
}

/** A stream part as `fullStream` shows it (an agent's `finish` without the whole response). */
function streamPart(p: RawPart): StreamPart {
  if (typeof p === 'string') return { type: 'text-delta', text: p };
  if (p.type === 'finish' && Array.isArray(p.steps)) {
    return { type: 'finish', finishReason: p.finishReason as FinishReason, usage: p.usage as Usage, costUsd: (p.costUsd as number | null) ?? null };
  }
  return p as StreamPart;
}

/**
 * A streamed answer: read the text as it comes (`for await (const t of result.textStream)`),
 * every part (`fullStream`), or await the final values (`text`, `usage`, ...). Every reader sees
 * the whole stream from its start, whenever it starts reading. For a route handler,
 * `return result.toTextStreamResponse()`. The promises reject only for those who await them: a
 * failing stream read through `textStream` alone causes no `unhandledRejection`.
 */
export class StreamTextResult<O = string> {
  readonly #src: PartSource;
  readonly #summary: Promise<Summary<O>>;

  /** @internal */
  constructor(n: NativeStream, signal?: AbortSignal) {
    const src = new PartSource(n);
    this.#src = src;
    this.#summary = quiet(src.finished().then(() => summarize<O>(src)));
    cancelOn(src, signal);
  }

  /** The text deltas, as they arrive. Throws the stream's error at the end if it failed. */
  get textStream(): AsyncIterableIterator<string> {
    return textReader(this.#src);
  }

  /** Every part: text and reasoning deltas, tool calls and results, steps, `finish`; a failure is an `error` part. */
  get fullStream(): AsyncIterableIterator<StreamPart> {
    return partReader(this.#src, streamPart);
  }

  /** The whole text (for an agent: its answer). */
  get text(): Promise<string> {
    return quiet(this.#summary.then((s) => s.text));
  }

  /** The whole reasoning text. */
  get reasoning(): Promise<string> {
    return quiet(this.#summary.then((s) => s.reasoning));
  }

  /** Token usage (summed over an agent's steps). */
  get usage(): Promise<Usage> {
    return quiet(this.#summary.then((s) => s.usage));
  }

  /** Why the model stopped. */
  get finishReason(): Promise<FinishReason> {
    return quiet(this.#summary.then((s) => s.finishReason));
  }

  /** The tool calls made. */
  get toolCalls(): Promise<ReadonlyArray<ToolCall>> {
    return quiet(this.#summary.then((s) => s.toolCalls));
  }

  /** The results of the tool calls that ran. */
  get toolResults(): Promise<ReadonlyArray<ToolResult>> {
    return quiet(this.#summary.then((s) => s.toolResults));
  }

  /** @internal the agent's whole response (agent streams only) */
  get agentResult(): Promise<AgentResult<O> | undefined> {
    return quiet(this.#summary.then((s) => s.agent));
  }

  /** A Web `ReadableStream` of the text, UTF-8 encoded; cancelling it stops the generation. */
  toReadableStream(): ReadableStream<Uint8Array> {
    return textByteStream(this.#src);
  }

  /**
   * A `Response` streaming the text (`text/plain; charset=utf-8` unless `init` says otherwise),
   * for Next.js route handlers and other fetch-style servers.
   */
  toTextStreamResponse(init?: ResponseInit): Response {
    return new Response(this.toReadableStream(), {
      status: init?.status ?? 200,
      statusText: init?.statusText ?? '',
      headers: textHeaders(init),
    });
  }

  /**
   * The stream in the AI SDK's UI message stream protocol: a `ReadableStream` of chunks
   * (`text-delta`, `tool-input-available`, `tool-output-available`, `tool-approval-request`, ...).
   */
  toUIMessageStream(options: UIMessageStreamOptions = {}): ReadableStream<UIMessageChunk> {
    return toUIMessageStream(this, options);
  }

  /**
   * A `Response` in the AI SDK's UI message stream protocol (server-sent events with
   * `x-vercel-ai-ui-message-stream: v1`): `useChat` from `@ai-sdk/react` reads it unchanged.
   */
  toUIMessageStreamResponse(options: UIMessageStreamOptions & ResponseInit = {}): Response {
    return toUIMessageStreamResponse(this, options);
  }

  /** Waits until the stream is over (rejects with its error). */
  async consumeStream(): Promise<void> {
    await this.#src.finished();
  }

  /** Stops the generation; readers end with a `CancelledError`. */
  cancel(): void {
    this.#src.cancel();
  }
}

/** An agent's streamed generation: a `StreamTextResult` plus the agent's final values. */
export class AgentStreamResult<O = string> extends StreamTextResult<O> {
  /** The whole response, once the generation is over. */
  get result(): Promise<AgentResult<O>> {
    return quiet(
      this.agentResult.then((r) => {
        if (r === undefined) throw new MiyabiError('ENGINE', 'the agent stream ended without its response');
        return r;
      }),
    );
  }

  /** The structured answer (with an `output` schema). */
  get object(): Promise<O | undefined> {
    return quiet(this.result.then((r) => r.object));
  }

  /** Every model call. */
  get steps(): Promise<ReadonlyArray<StepResult>> {
    return quiet(this.result.then((r) => r.steps));
  }
}
