/**
 * Embeddings: `embeddingModel()`, `embed()` for one value, `embedMany()` for several (batched to
 * the provider's limit by the Rust model layer), and `cosineSimilarity()`.
 *
 * ```ts
 * const m = embeddingModel('openai/text-embedding-3-small');
 * const { embeddings } = await embedMany({ model: m, values: ['sunny day', 'rainy night'] });
 * const { embedding } = await embed({ model: m, value: 'warm weather' });
 * cosineSimilarity(embedding, embeddings[0]!);
 * ```
 */
import { MiyabiError, native } from './errors.js';
import type { ModelOptions } from './model.js';
import { addon, type NativeEmbeddingModel } from './native.js';
import { single } from './result.js';
import { optionalWhole } from './values.js';

/** An embedding model resolved through the catalogue (OpenAI-compatible, Gemini, Cohere and Ollama embeddings APIs). */
export class EmbeddingModel {
  /** `"provider/model"`. */
  readonly id: string;
  /** @internal */
  readonly native: NativeEmbeddingModel;

  /** @internal use `embeddingModel()` */
  constructor(id: string, n: NativeEmbeddingModel) {
    this.id = id;
    this.native = n;
  }
}

/** An embedding model given as `"provider/model"` or by `embeddingModel()`. */
export type EmbeddingModelLike = string | EmbeddingModel;

/** An embedding model by `"provider/model"`; one that cannot be used fails its calls with a `CONFIG` error. */
export function embeddingModel(spec: string, options: ModelOptions = {}): EmbeddingModel {
  const where = `of embeddingModel('${spec}')`;
  const n = native(() =>
    addon.NativeEmbeddingModel.create(spec, {
      baseUrl: options.baseURL,
      apiKey: options.apiKey,
      headers: options.headers === undefined ? undefined : { ...options.headers },
      protocol: options.protocol,
      maxRetries: optionalWhole(options.maxRetries, `the \`maxRetries\` ${where}`, { code: 'INVALID_ARGUMENT', max: 0xffff_ffff }),
      timeoutMs: optionalWhole(options.timeoutMs, `the \`timeoutMs\` ${where}`, { code: 'INVALID_ARGUMENT', min: 1, unit: 'milliseconds' }),
    }),
  );
  return new EmbeddingModel(spec, n);
}

/** @internal the native model of an `EmbeddingModelLike` */
export function nativeEmbeddingModel(m: EmbeddingModelLike): NativeEmbeddingModel {
  return typeof m === 'string' ? embeddingModel(m).native : m.native;
}

/** Options of `embed` and `embedMany`. */
export interface EmbedOptions {
  readonly model: EmbeddingModelLike;
  /** Output dimensions, where the model lets you choose. */
  readonly dimensions?: number;
  /** `'document'` (default: texts to store) or `'query'` (search queries), where the provider distinguishes them. */
  readonly inputType?: 'document' | 'query';
  readonly abortSignal?: AbortSignal;
}

/** Token usage of an embedding call. */
export interface EmbeddingUsage {
  readonly tokens: number;
}

async function call(o: EmbedOptions, values: ReadonlyArray<string>): Promise<{ vectors: number[][]; usage: EmbeddingUsage | null; costUsd: number | null }> {
  for (const [i, v] of values.entries()) {
    if (typeof v !== 'string') throw new MiyabiError('INVALID_ARGUMENT', `value ${i} to embed is not a string (a ${typeof v})`);
  }
  const p = await single(
    nativeEmbeddingModel(o.model).embed([...values], {
      dimensions: optionalWhole(o.dimensions, 'the `dimensions` of the embedding call', { code: 'INVALID_ARGUMENT', min: 1, max: 0xffff_ffff }),
      inputType: o.inputType,
    }),
    'embeddings',
    o.abortSignal,
  );
  return { vectors: p.vectors as number[][], usage: (p.usage as EmbeddingUsage | null) ?? null, costUsd: (p.costUsd as number | null) ?? null };
}

/** Embeds one value. */
export async function embed(options: EmbedOptions & { readonly value: string }): Promise<{ value: string; embedding: number[]; usage: EmbeddingUsage | null; costUsd: number | null }> {
  const r = await call(options, [options.value]);
  const embedding = r.vectors[0];
  if (embedding === undefined) throw new MiyabiError('PROVIDER', `embedding model \`${typeof options.model === 'string' ? options.model : options.model.id}\` returned no vector`);
  return { value: options.value, embedding, usage: r.usage, costUsd: r.costUsd };
}

/** Embeds several values (in order; large lists are sent in batches). */
export async function embedMany(options: EmbedOptions & { readonly values: ReadonlyArray<string> }): Promise<{ values: ReadonlyArray<string>; embeddings: number[][]; usage: EmbeddingUsage | null; costUsd: number | null }> {
  if (options.values.length === 0) return { values: [], embeddings: [], usage: null, costUsd: null };
  const r = await call(options, options.values);
  return { values: options.values, embeddings: r.vectors, usage: r.usage, costUsd: r.costUsd };
}

/** The cosine similarity of two vectors of the same length (NaN-free: an empty or zero vector is an error). */
export function cosineSimilarity(a: ReadonlyArray<number>, b: ReadonlyArray<number>): number {
  if (a.length !== b.length) throw new MiyabiError('INVALID_ARGUMENT', `cosineSimilarity: vectors of different lengths (${a.length} and ${b.length})`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (na === 0 || nb === 0) throw new MiyabiError('INVALID_ARGUMENT', 'cosineSimilarity: a vector with no length');
  return dot / (Math.sqrt(na) * Math.sqrt(nb));
}
