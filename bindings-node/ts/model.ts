/**
 * Models: `"provider/model"` strings resolved by the Rust model layer (its catalogue of
 * providers, keys from the provider's environment variables, `<PROVIDER>_BASE_URL`), or
 * `model(spec, { baseURL, apiKey, headers })` to give them explicitly.
 */
import { type NativeModel, type NativeModelRequest, addon } from './native.js';
import { native } from './errors.js';
import { optionalFinite, optionalWhole } from './values.js';

/** A protocol family of the model layer. */
export type Protocol =
  | 'openai-chat'
  | 'openai-responses'
  | 'anthropic'
  | 'gemini'
  | 'vertex-gemini'
  | 'vertex-anthropic'
  | 'cohere'
  | 'bedrock'
  | 'ollama';

/** How to reach a model, instead of (or on top of) the environment. */
export interface ModelOptions {
  /** Base URL of the API (else `<PROVIDER>_BASE_URL`, e.g. `OPENAI_BASE_URL`, else the catalogue's). */
  readonly baseURL?: string;
  /** API key (else the provider's variable, e.g. `OPENAI_API_KEY`). */
  readonly apiKey?: string;
  /** Headers sent with every request. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Protocol family, e.g. `'openai-chat'` for an OpenAI-compatible server (else the catalogue's). */
  readonly protocol?: Protocol;
  /** Retries after the first attempt on rate limits, server errors and network failures (default 2). */
  readonly maxRetries?: number;
  /** Timeout of a whole call in milliseconds (default 15 minutes): a whole number from 1 to
   * 2^53 − 1 (NaN, Infinity or a negative number is a `MiyabiError`, code `INVALID_ARGUMENT`). */
  readonly timeoutMs?: number;
}

/** A model to call: resolved through the catalogue, with explicit options if given. */
export class LanguageModel {
  /** `"provider/model"`. */
  readonly id: string;
  /** @internal */
  readonly native: NativeModel;

  /** @internal use `model()` */
  constructor(id: string, native: NativeModel) {
    this.id = id;
    this.native = native;
  }
}

/**
 * A model by `"provider/model"` (e.g. `'openai/gpt-4o'`, `'anthropic/claude-sonnet-4-5'`), with
 * optional base URL, key and headers. A model that cannot be used (unknown provider, no key)
 * is still returned; its calls fail with a `CONFIG` error saying what to set.
 *
 * ```ts
 * const local = model('openai/gpt-4o-mini', { baseURL: 'http://127.0.0.1:8080/v1', protocol: 'openai-chat' });
 * ```
 */
export function model(spec: string, options: ModelOptions = {}): LanguageModel {
  const where = `of model('${spec}')`;
  const n = native(() => addon.NativeModel.create(spec, {
    baseUrl: options.baseURL,
    apiKey: options.apiKey,
    headers: options.headers === undefined ? undefined : { ...options.headers },
    protocol: options.protocol,
    maxRetries: optionalWhole(options.maxRetries, `the \`maxRetries\` ${where}`, { code: 'INVALID_ARGUMENT', max: U32 }),
    timeoutMs: optionalWhole(options.timeoutMs, `the \`timeoutMs\` ${where}`, {
      code: 'INVALID_ARGUMENT',
      min: 1,
      unit: 'milliseconds',
      hint: 'omit it for the default of 15 minutes',
    }),
  }));
  return new LanguageModel(spec, n);
}

/** A model given as `"provider/model"` or by `model()`. */
export type ModelLike = string | LanguageModel;

/** The native model of a `ModelLike`. */
export function nativeModel(m: ModelLike): NativeModel {
  return typeof m === 'string' ? model(m).native : m.native;
}

/** One part of a message's content (Miyabi's content parts: `text`, `image`, `file`, `tool_call`, `tool_result`, ...). */
export type MessagePart = { readonly type: 'text'; readonly text: string } | { readonly type: string; readonly [key: string]: unknown };

/** A message of a conversation. */
export interface Message {
  readonly role: 'system' | 'user' | 'assistant' | 'tool';
  /** Text, or content parts. */
  readonly content: string | ReadonlyArray<MessagePart>;
}

/** Sampling and length settings of model calls. */
export interface CallSettings {
  /** Temperature. */
  readonly temperature?: number;
  /** Maximum output tokens. */
  readonly maxTokens?: number;
  /** Nucleus sampling. */
  readonly topP?: number;
  /** Top-k sampling. */
  readonly topK?: number;
  /** Stop sequences. */
  readonly stopSequences?: ReadonlyArray<string>;
  /** Seed, where supported. */
  readonly seed?: number;
}

/** What to say to the model: a prompt, messages, or both (the prompt comes last). */
export interface Prompt {
  /** A system message, put first. */
  readonly system?: string;
  /** A user message. */
  readonly prompt?: string;
  /** The conversation. */
  readonly messages?: ReadonlyArray<Message>;
}

/** The input object of a native request. */
export function promptInput(p: Prompt): unknown {
  if (p.prompt === undefined && (p.messages === undefined || p.messages.length === 0)) {
    throw new TypeError('give a `prompt` or `messages`');
  }
  const input: Record<string, unknown> = {};
  if (p.messages !== undefined) input.messages = p.messages;
  if (p.prompt !== undefined) input.prompt = p.prompt;
  return input;
}

/** The largest 32-bit unsigned integer (counts the addon takes as `u32`). */
export const U32 = 4_294_967_295;

/** Sampling settings as the addon takes them, checked (a `MiyabiError` naming a bad one). */
export function settings(s: CallSettings): Pick<
  NativeModelRequest,
  'temperature' | 'maxTokens' | 'topP' | 'topK' | 'stopSequences' | 'seed'
> {
  const count = { code: 'INVALID_ARGUMENT', max: U32 } as const;
  return {
    temperature: optionalFinite(s.temperature, '`temperature`'),
    maxTokens: optionalWhole(s.maxTokens, '`maxTokens`', count),
    topP: optionalFinite(s.topP, '`topP`'),
    topK: optionalWhole(s.topK, '`topK`', count),
    stopSequences: s.stopSequences === undefined ? undefined : [...s.stopSequences],
    seed: optionalWhole(s.seed, '`seed`', { code: 'INVALID_ARGUMENT' }),
  };
}
