/**
 * Values as the engine stores them: JSON's rules, the same wherever a value crosses into the
 * engine (run input, step outputs, suspension payloads, resume data, run state, custom events,
 * tool results, memory values, model and agent inputs).
 *
 * - Plain data is taken as it is (no copy).
 * - `toJSON` is applied (a `Date` becomes its ISO string), boxed primitives are unwrapped, and
 *   an object that is not plain keeps its own enumerable properties, as `JSON.stringify` does.
 * - `undefined` is left out of objects and becomes `null` in arrays (and on its own).
 * - A `bigint` becomes a number when it is a safe integer (at most 2^53 − 1 either side of 0).
 * - NaN, ±Infinity, a `bigint` beyond the safe integers, a function, a symbol, a cycle and
 *   nesting deeper than 100 levels are errors that say where they are: a `ValidationError` such as
 *   `input.items[2]: NaN is not valid JSON`, with one issue `{ path: ['items', 2], message }`.
 */
import { type ErrorCode, MiyabiError, ValidationError, WorkflowDefinitionError } from './errors.js';

/** How deep objects and arrays may nest in a stored value (napi converts up to 128 levels). */
const MAX_DEPTH = 100;

/** The largest integer a JS number holds exactly (2^53 − 1), as a bigint. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Whether napi can take `v` as it is: plain objects and arrays of strings, booleans, finite
 * numbers and null (`undefined` only as an object's property, which JSON leaves out too). This
 * runs on every value a step returns, so leaves are checked inline (`x - x === 0` holds exactly
 * for finite numbers) and only objects cost a call. */
function plain(v: unknown): boolean {
  if (typeof v !== 'object') return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && v - v === 0);
  return v === null || plainObject(v, 0);
}

function plainObject(v: object, depth: number): boolean {
  if (depth > 64) return false;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Array.isArray(v)) {
    // Indexed, so that holes are seen (as undefined): JSON makes them null.
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const t = typeof x;
      if (t === 'object') {
        if (x !== null && !plainObject(x as object, depth + 1)) return false;
      } else if (t === 'number') {
        if ((x as number) - (x as number) !== 0) return false;
      } else if (t !== 'string' && t !== 'boolean') return false;
    }
    return true;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in v) {
    const x: unknown = (v as Record<string, unknown>)[k];
    const t = typeof x;
    if (t === 'object') {
      if (x !== null && !plainObject(x as object, depth + 1)) return false;
    } else if (t === 'number') {
      if ((x as number) - (x as number) !== 0) return false;
    } else if (t !== 'string' && t !== 'boolean' && t !== 'undefined') return false;
  }
  return true;
}

/** What `convert` returns for a value JSON leaves out (undefined). */
const OMIT: unique symbol = Symbol('omit');

/** `root.items[2]["a b"]`. */
export function pathText(root: string, path: ReadonlyArray<string | number>): string {
  let s = root;
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) s += s === '' ? p : `.${p}`;
    else s += `[${JSON.stringify(p)}]`;
  }
  return s === '' ? '(the value)' : s;
}

function invalid(root: string, at: ReadonlyArray<string | number>, reason: string): ValidationError {
  return new ValidationError(`${pathText(root, at)}: ${reason}`, [{ message: reason, path: [...at] }]);
}

/** JSON.stringify's conversion of one value, to a fresh plain value; `at` is its path (kept
 * as a stack), `seen` the objects being converted (a cycle is an error). */
function convert(v: unknown, key: string, root: string, at: Array<string | number>, seen: object[]): unknown {
  if ((typeof v === 'object' && v !== null) || typeof v === 'bigint') {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') v = (toJSON as (k: string) => unknown).call(v, key);
  }
  if (typeof v === 'object' && v !== null) {
    if (v instanceof Number) v = Number(v);
    else if (v instanceof String) v = String(v);
    else if (v instanceof Boolean) v = v.valueOf();
    else if (v instanceof BigInt) v = v.valueOf();
  }
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (Number.isFinite(v)) return v;
      throw invalid(root, at, `${String(v)} is not valid JSON`);
    case 'bigint':
      if (v <= MAX_SAFE && v >= -MAX_SAFE) return Number(v);
      throw invalid(root, at, `${v}n is beyond the safe integers of JSON numbers (±(2^53 − 1)): store it as a string`);
    case 'undefined':
      return OMIT;
    case 'function':
      throw invalid(root, at, 'a function is not valid JSON');
    case 'symbol':
      throw invalid(root, at, 'a symbol is not valid JSON');
    default:
      break;
  }
  if (v === null) return null;
  const obj = v as object;
  if (at.length >= MAX_DEPTH) throw invalid(root, at, `nested more than ${MAX_DEPTH} levels deep (the most a stored value may nest)`);
  if (seen.includes(obj)) throw invalid(root, at, 'a cycle (the value contains itself) is not valid JSON');
  seen.push(obj);
  let out: unknown;
  if (Array.isArray(obj)) {
    const arr = new Array<unknown>(obj.length);
    for (let i = 0; i < obj.length; i++) {
      at.push(i);
      const x = convert((obj as unknown[])[i], String(i), root, at, seen);
      at.pop();
      arr[i] = x === OMIT ? null : x;
    }
    out = arr;
  } else {
    const rec: Record<string, unknown> = {};
    for (const k of Object.keys(obj)) {
      at.push(k);
      const x = convert((obj as Record<string, unknown>)[k], k, root, at, seen);
      at.pop();
      if (x !== OMIT) rec[k] = x;
    }
    out = rec;
  }
  seen.pop();
  return out;
}

/**
 * A value as the engine stores it (JSON's rules, above): plain data as it is, anything else
 * converted. Throws a `ValidationError` naming the place (`root` and the path inside) of a value
 * JSON cannot hold.
 */
export function storable(v: unknown, root = 'value'): unknown {
  if (plain(v)) return v;
  const x = convert(v, '', root, [], []);
  return x === OMIT ? null : x;
}

/** The largest duration or count option accepted (2^53 − 1: the largest exact JS integer). */
const MAX_WHOLE = Number.MAX_SAFE_INTEGER;

/**
 * Checks a whole-number option given from JS (a duration in milliseconds, a count) and returns
 * it; throws a `MiyabiError` with `code` naming the option, where it was given and the value
 * (NaN, Infinity, a negative or fractional number, a non-number, or more than `max`).
 *
 * `what` names the option as the user wrote it (`` `timeoutMs` of step `a` ``); `hint` is
 * added to the message (`omit it for no timeout`).
 */
export function wholeNumber(
  value: unknown,
  what: string,
  options: { readonly code: ErrorCode; readonly min?: number; readonly max?: number; readonly unit?: string; readonly hint?: string },
): number {
  const min = options.min ?? 0;
  const max = options.max ?? MAX_WHOLE;
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  const unit = options.unit === undefined ? 'a whole number' : `a whole number of ${options.unit}`;
  const got = typeof value === 'number' || typeof value === 'bigint' ? String(value) : typeof value === 'string' ? JSON.stringify(value) : typeof value;
  const hint = options.hint === undefined ? '' : ` (${options.hint})`;
  const message = `${what} must be ${unit} from ${min} to ${max}${hint}, got ${got}`;
  throw options.code === 'INVALID_WORKFLOW' ? new WorkflowDefinitionError('INVALID_WORKFLOW', message) : new MiyabiError(options.code, message);
}

/** Like `wholeNumber` for an optional option: undefined stays undefined. */
export function optionalWhole(
  value: unknown,
  what: string,
  options: Parameters<typeof wholeNumber>[2],
): number | undefined {
  return value === undefined ? undefined : wholeNumber(value, what, options);
}

/** Checks an optional finite number option (temperature, topP, penalties). */
export function optionalFinite(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  const got = typeof value === 'number' ? String(value) : typeof value;
  throw new MiyabiError('INVALID_ARGUMENT', `${what} must be a finite number, got ${got}`);
}
