/**
 * Schemas: any Standard Schema with Standard JSON Schema support (zod 4 schemas are both), or a
 * plain JSON Schema wrapped with `jsonSchema()`. Types are inferred from the schema; the JSON
 * Schema goes to the Rust engine, which validates stored values with it.
 */
import { ValidationError } from './errors.js';

/** A JSON value as the engine stores it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One issue of a failed validation (Standard Schema). */
export interface SchemaIssue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

type ValidateResult<O> =
  | { readonly value: O; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<SchemaIssue> };

/** The part of the Standard Schema interface Miyabi uses (zod 4, valibot, arktype, ...). */
export interface SchemaLike<I = unknown, O = I> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => ValidateResult<O> | Promise<ValidateResult<O>>;
    readonly types?: { readonly input: I; readonly output: O } | undefined;
    readonly jsonSchema?: {
      readonly input: (options: { readonly target: string }) => Record<string, unknown>;
      readonly output: (options: { readonly target: string }) => Record<string, unknown>;
    };
  };
  /** zod 4 before Standard JSON Schema support. */
  readonly toJSONSchema?: (params?: { io?: 'input' | 'output'; unrepresentable?: 'any' | 'throw' }) => unknown;
}

/** The type a schema accepts. */
export type InferInput<S> = S extends { readonly '~standard': { readonly types?: infer T } }
  ? NonNullable<T> extends { readonly input: infer I }
    ? I
    : unknown
  : unknown;

/** The type a schema produces. */
export type InferOutput<S> = S extends { readonly '~standard': { readonly types?: infer T } }
  ? NonNullable<T> extends { readonly output: infer O }
    ? O
    : unknown
  : unknown;

/**
 * A plain JSON Schema as a schema for type `T` (not checked in JS: the engine validates it).
 *
 * ```ts
 * const input = jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } } });
 * ```
 */
export function jsonSchema<T>(schema: Record<string, unknown>): SchemaLike<T, T> {
  return {
    '~standard': {
      version: 1,
      vendor: 'miyabi-json-schema',
      validate: (value: unknown) => ({ value: value as T }),
      jsonSchema: { input: () => schema, output: () => schema },
    },
  };
}

/** The JSON Schema of the values a schema produces (what the engine stores). */
export function toJsonSchema(schema: SchemaLike): Record<string, unknown> {
  const std = schema['~standard'];
  if (std.jsonSchema !== undefined) {
    return std.jsonSchema.output({ target: 'draft-2020-12' });
  }
  if (typeof schema.toJSONSchema === 'function') {
    const s = schema.toJSONSchema({ io: 'output', unrepresentable: 'any' });
    if (s !== null && typeof s === 'object') return s as Record<string, unknown>;
  }
  throw new TypeError(
    `a ${std.vendor} schema cannot be turned into JSON Schema: use zod 4, or wrap a JSON Schema with jsonSchema()`,
  );
}

function describe(issues: ReadonlyArray<SchemaIssue>): string {
  return issues
    .map((i) => {
      const path = (i.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
      return path === '' ? i.message : `${path}: ${i.message}`;
    })
    .join('; ');
}

/** Validates `value`; returns the parsed value or throws a `ValidationError` naming `place`. */
export async function parse<O>(schema: SchemaLike<unknown, O>, value: unknown, place: string): Promise<O> {
  let r = schema['~standard'].validate(value);
  if (r instanceof Promise) r = await r;
  return checked(r, place);
}

/** Like `parse`, but synchronous when the schema validates synchronously (undefined otherwise). */
export function parseSync<O>(
  schema: SchemaLike<unknown, O>,
  value: unknown,
  place: string,
): { readonly value: O } | Promise<O> {
  const r = schema['~standard'].validate(value);
  if (r instanceof Promise) return r.then((x) => checked(x, place));
  return { value: checked(r, place) };
}

function checked<O>(r: ValidateResult<O>, place: string): O {
  if (r.issues !== undefined) {
    throw new ValidationError(`${place} violates its schema: ${describe(r.issues)}`, r.issues);
  }
  return r.value;
}

/** The JSON Schema of the values a schema accepts (tool arguments: what the model must send),
 * without a `$schema` key. */
export function toInputJsonSchema(schema: SchemaLike): Record<string, unknown> {
  const std = schema['~standard'];
  let s: unknown;
  if (std.jsonSchema !== undefined) s = std.jsonSchema.input({ target: 'draft-2020-12' });
  else if (typeof schema.toJSONSchema === 'function') s = schema.toJSONSchema({ io: 'input', unrepresentable: 'any' });
  if (s === null || typeof s !== 'object') {
    throw new TypeError(
      `a ${std.vendor} schema cannot be turned into JSON Schema: use zod 4, or wrap a JSON Schema with jsonSchema()`,
    );
  }
  const { $schema: _, ...rest } = s as Record<string, unknown>;
  return rest;
}
