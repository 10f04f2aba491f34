/**
 * Schemas: any Standard Schema with Standard JSON Schema support (zod 4.2 and later), zod 4
 * schemas without it (zod 4.0 and 4.1, and `zod/v4` of zod 3.25: converted with zod's own
 * `zod/v4/core`), or a plain JSON Schema wrapped with `jsonSchema()`. Types are inferred from
 * the schema; the JSON Schema goes to the Rust engine, which validates stored values with it.
 * zod 3 schemas (`import { z } from 'zod'` with zod 3) have no JSON Schema: using one is a
 * `MiyabiError` saying to import `zod/v4` instead.
 */
import { MiyabiError, ValidationError } from './errors.js';
import { loadZodCore } from './zod-core.cjs';

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

/** What to do with a zod 3 schema, which has no JSON Schema. */
const ZOD3 =
  "this is a zod 3 schema (`import { z } from 'zod'` with zod 3), which cannot be turned into the JSON Schema the engine checks values with. " +
  "With zod 3.25 or later, import zod 4 from the same package instead: `import { z } from 'zod/v4'` (or `import * as z from 'zod/v4'`); " +
  'or upgrade to zod 4: `npm install zod@^4`. A plain JSON Schema can be wrapped with jsonSchema({ ... }).';

function isObjectLike(v: unknown): v is Record<string, unknown> {
  return (typeof v === 'object' && v !== null) || typeof v === 'function';
}

/** The JSON Schema of what `schema` accepts (`input`) or produces (`output`). */
function jsonSchemaOf(schema: SchemaLike, io: 'input' | 'output'): Record<string, unknown> {
  if (!isObjectLike(schema)) {
    throw new MiyabiError(
      'INVALID_ARGUMENT',
      `expected a schema (zod 4, another Standard Schema with JSON Schema, or jsonSchema({ ... })), got ${schema === null ? 'null' : typeof schema}`,
    );
  }
  const zod3 = '_def' in schema && !('_zod' in schema);
  if (zod3) throw new MiyabiError('INVALID_ARGUMENT', ZOD3);
  const std = (schema as Partial<SchemaLike>)['~standard'];
  if (std === undefined || !isObjectLike(std)) {
    throw new MiyabiError(
      'INVALID_ARGUMENT',
      'expected a schema (zod 4, another Standard Schema with JSON Schema, or jsonSchema({ ... })), got an object without `~standard`',
    );
  }
  let s: unknown;
  if (std.jsonSchema !== undefined) s = std.jsonSchema[io]({ target: 'draft-2020-12' });
  else if (typeof schema.toJSONSchema === 'function') s = schema.toJSONSchema({ io, unrepresentable: 'any' });
  else if ('_zod' in schema) {
    // zod 4 before Standard JSON Schema (4.0, 4.1, `zod/v4` of 3.25): zod's own converter.
    const core = loadZodCore();
    if (core instanceof Error) {
      throw new MiyabiError(
        'INVALID_ARGUMENT',
        `this zod schema has no Standard JSON Schema (zod before 4.2), and zod's converter (zod/v4/core) could not be loaded next to @miyabi/core (${core.message}): ` +
          'install zod in the same project as @miyabi/core, or upgrade to zod 4.2 or later: `npm install zod@^4.2`.',
      );
    }
    s = core.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' });
  } else {
    throw new MiyabiError(
      'INVALID_ARGUMENT',
      `a ${std.vendor} schema cannot be turned into JSON Schema (it does not implement Standard JSON Schema): use zod 4, or wrap a JSON Schema with jsonSchema({ ... })`,
    );
  }
  if (s === null || typeof s !== 'object') {
    throw new MiyabiError('INVALID_ARGUMENT', `a ${std.vendor} schema gave no JSON Schema object: use zod 4, or wrap a JSON Schema with jsonSchema({ ... })`);
  }
  return s as Record<string, unknown>;
}

/** The JSON Schema of the values a schema produces (what the engine stores). */
export function toJsonSchema(schema: SchemaLike): Record<string, unknown> {
  return jsonSchemaOf(schema, 'output');
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
  const { $schema: _, ...rest } = jsonSchemaOf(schema, 'input');
  return rest;
}
