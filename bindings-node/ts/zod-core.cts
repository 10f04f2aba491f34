/**
 * zod's own JSON Schema converter, for zod 4 schemas that do not carry Standard JSON Schema
 * (the `zod/v4` of zod 3.25, zod 4.0 and 4.1). Loaded on first use from the zod installed next
 * to @miyabi/core (its optional peer dependency); this file is CommonJS in both builds so that
 * `require` resolves from this package, synchronously.
 */

/** The part of `zod/v4/core` used. */
export interface ZodCore {
  toJSONSchema(schema: unknown, params?: { io?: 'input' | 'output'; unrepresentable?: 'any' | 'throw'; target?: string }): unknown;
}

let core: ZodCore | undefined;

/** `zod/v4/core`, or the error `require` threw. */
export function loadZodCore(): ZodCore | Error {
  if (core !== undefined) return core;
  try {
    const m = require('zod/v4/core') as Partial<ZodCore>;
    if (typeof m.toJSONSchema !== 'function') return new Error('zod/v4/core has no toJSONSchema');
    core = m as ZodCore;
    return core;
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}
