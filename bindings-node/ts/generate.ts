/**
 * `generateText` and `streamText`: one model call (or, with `tools`, the agent tool loop) from a
 * prompt or messages.
 */
import type { NativeModelRequest } from './native.js';
import { type CallSettings, type ModelLike, type Prompt, nativeModel, promptInput, settings } from './model.js';
import { type GenerateTextResult, StreamTextResult, modelResult, single } from './result.js';
import { Agent, type Tool } from './agent.js';
import { type SchemaLike, toInputJsonSchema } from './schema.js';
import { optionalFinite, storable } from './values.js';

/** The options of `generateText` and `streamText`. */
export type TextOptions = Prompt &
  CallSettings & {
    /** `"provider/model"` or `model(...)`. */
    readonly model: ModelLike;
    /**
     * Tools the model may call. With tools, the call runs the agent tool loop: each tool call is
     * executed and its result given back, up to `maxSteps` model calls (default 1: the tools
     * run, and their results are in `toolResults`).
     */
    readonly tools?: Readonly<Record<string, Tool<unknown, unknown>>>;
    /** Most model calls with tools (default 1). */
    readonly maxSteps?: number;
    /** `auto` (default), `none`, `required`, or a tool's name. */
    readonly toolChoice?: string;
    /** Structured output: the answer must be JSON following this schema (without tools). */
    readonly output?: SchemaLike;
    /** Presence penalty (OpenAI-compatible). */
    readonly presencePenalty?: number;
    /** Frequency penalty (OpenAI-compatible). */
    readonly frequencyPenalty?: number;
    /** Provider-specific fields merged into the request body. */
    readonly providerOptions?: Readonly<Record<string, unknown>>;
    /** Aborts the call. */
    readonly abortSignal?: AbortSignal;
  };

function request(o: TextOptions): NativeModelRequest {
  return {
    input: storable(promptInput(o), 'input'),
    system: o.system,
    toolChoice: o.toolChoice,
    responseSchema: o.output === undefined ? undefined : toInputJsonSchema(o.output),
    presencePenalty: optionalFinite(o.presencePenalty, '`presencePenalty`'),
    frequencyPenalty: optionalFinite(o.frequencyPenalty, '`frequencyPenalty`'),
    providerOptions: o.providerOptions === undefined ? undefined : (storable(o.providerOptions, 'providerOptions') as Record<string, unknown>),
    ...settings(o),
  };
}

function toolAgent(o: TextOptions & { readonly tools: Readonly<Record<string, Tool<unknown, unknown>>> }): Agent {
  return new Agent({
    name: 'generate-text',
    model: o.model,
    tools: o.tools,
    maxSteps: o.maxSteps ?? 1,
    ...(o.system === undefined ? {} : { instructions: o.system }),
    ...(o.toolChoice === undefined ? {} : { toolChoice: o.toolChoice }),
    ...(o.temperature === undefined ? {} : { temperature: o.temperature }),
    ...(o.maxTokens === undefined ? {} : { maxTokens: o.maxTokens }),
    ...(o.topP === undefined ? {} : { topP: o.topP }),
    ...(o.topK === undefined ? {} : { topK: o.topK }),
    ...(o.stopSequences === undefined ? {} : { stopSequences: o.stopSequences }),
    ...(o.seed === undefined ? {} : { seed: o.seed }),
  });
}

function agentInput(o: Prompt): { prompt?: string; messages?: Prompt['messages'] } {
  return promptInput(o) as { prompt?: string; messages?: Prompt['messages'] };
}

/**
 * Asks a model for a complete answer.
 *
 * ```ts
 * const { text, usage } = await generateText({ model: 'openai/gpt-4o', prompt: 'Say hi' });
 * ```
 *
 * Rejects with a `ProviderError` (code `PROVIDER`: `status`, `provider`, `providerMessage`,
 * `retryAfter`) when the provider fails, after the model layer's retries.
 */
export async function generateText(options: TextOptions): Promise<GenerateTextResult> {
  const tools = options.tools;
  if (tools !== undefined && Object.keys(tools).length > 0) {
    return toolAgent({ ...options, tools }).generate(agentInput(options), options);
  }
  const n = nativeModel(options.model).generate(request(options));
  return modelResult(await single(n, 'response', options.abortSignal));
}

/**
 * Streams a model's answer. Returns at once; the request starts now.
 *
 * ```ts
 * const result = streamText({ model: 'openai/gpt-4o', prompt: 'Tell me a story' });
 * for await (const delta of result.textStream) process.stdout.write(delta);
 * console.log(await result.usage);
 * ```
 */
export function streamText(options: TextOptions): StreamTextResult {
  const tools = options.tools;
  if (tools !== undefined && Object.keys(tools).length > 0) {
    return toolAgent({ ...options, tools }).stream(agentInput(options), options);
  }
  return new StreamTextResult(nativeModel(options.model).stream(request(options)), options.abortSignal);
}
