/**
 * Errors thrown by @miyabi/core. Every one is a `MiyabiError` with a stable `code`; catch the
 * subclass or switch on `code`.
 */

/** The codes a `MiyabiError` can carry. */
export type ErrorCode =
  | 'VALIDATION'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'NOT_SUSPENDED'
  | 'INVALID_WORKFLOW'
  | 'UNKNOWN_WORKFLOW'
  | 'DEFINITION_CHANGED'
  | 'REPLAY_DIVERGED'
  | 'STORE'
  | 'SHUTDOWN'
  | 'CANCELLED'
  | 'TIMEOUT'
  | 'INVALID_ARGUMENT'
  | 'PROVIDER'
  | 'CONFIG'
  | 'UNSUPPORTED'
  | 'MEMORY'
  | 'ENGINE'
  | 'UNAUTHORIZED'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE';

/** Base class of every error this package throws. */
export class MiyabiError extends Error {
  /** A stable code: switch on it rather than on the message. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A value does not match its schema (run input, step output, resume data), or is not valid
 * JSON (NaN, a function, a cycle, ...: see "Values" in the README). */
export class ValidationError extends MiyabiError {
  /** What failed: one issue per violation, each with its `path` inside the value and a
   * `message` (the schema library's issues when validated in JS, such as zod's; the engine's
   * violation when the engine's JSON Schema check failed). */
  readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> }>;

  constructor(message: string, issues: ValidationError['issues'] = [], options?: { cause?: unknown }) {
    super('VALIDATION', message, options);
    this.issues = issues;
  }
}

/** No run has this id. */
export class NotFoundError extends MiyabiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NOT_FOUND', message, options);
  }
}

/** The user may not do this (for example decide a gate they are not an approver of). */
export class ForbiddenError extends MiyabiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('FORBIDDEN', message, options);
  }
}

/** The run is not in a state that allows the operation (for example resuming a finished run,
 * or a path that is not suspended: code `NOT_SUSPENDED`). */
export class ConflictError extends MiyabiError {
  constructor(code: 'CONFLICT' | 'NOT_SUSPENDED', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A workflow definition is invalid, unknown to the engine, or changed under a stored run. */
export class WorkflowDefinitionError extends MiyabiError {
  constructor(
    code: 'INVALID_WORKFLOW' | 'UNKNOWN_WORKFLOW' | 'DEFINITION_CHANGED' | 'REPLAY_DIVERGED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** The store (SQLite file) failed: busy, full, read-only, corrupt or unopenable. */
export class StoreError extends MiyabiError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('STORE', message, options);
  }
}

/** The run was cancelled: the `reason` of a step's `signal` when its run is cancelled. */
export class CancelledError extends MiyabiError {
  constructor(message = 'the run was cancelled') {
    super('CANCELLED', message);
  }
}

/** A step or run took longer than its timeout: the `reason` of the step's `signal` then. */
export class TimeoutError extends MiyabiError {
  constructor(message: string) {
    super('TIMEOUT', message);
  }
}

/** What went wrong at the provider. */
export type ProviderErrorKind =
  | 'auth'
  | 'rate-limited'
  | 'context-length'
  | 'invalid-request'
  | 'content-filtered'
  | 'server'
  | 'network'
  | 'timeout'
  | 'decode';

/** The details a `ProviderError` carries. */
export interface ProviderErrorDetails {
  readonly kind: ProviderErrorKind;
  readonly provider?: string | undefined;
  readonly model?: string | undefined;
  readonly status?: number | undefined;
  readonly providerMessage?: string | undefined;
  readonly providerCode?: string | undefined;
  readonly requestId?: string | undefined;
  readonly retryAfter?: number | undefined;
  readonly isRetryable?: boolean | undefined;
}

/**
 * A model provider failed the call (after the model layer's own retries): HTTP status, the
 * provider's id and its own message, and how long it asked to wait. Code `PROVIDER`.
 */
export class ProviderError extends MiyabiError {
  /** What went wrong: `auth`, `rate-limited`, `server`, `timeout`, ... */
  readonly kind: ProviderErrorKind;
  /** Provider id, e.g. `openai`. */
  readonly provider: string | undefined;
  /** Model id, e.g. `gpt-4o`. */
  readonly model: string | undefined;
  /** HTTP status, when the provider answered. */
  readonly status: number | undefined;
  /** The provider's own error message. */
  readonly providerMessage: string | undefined;
  /** The provider's error type or code, e.g. `rate_limit_error`. */
  readonly providerCode: string | undefined;
  /** The provider's request id. */
  readonly requestId: string | undefined;
  /** How long the provider asked to wait before trying again, in milliseconds. */
  readonly retryAfter: number | undefined;
  /** Whether the same call may succeed later (rate limits, server errors, network failures). */
  readonly isRetryable: boolean;

  constructor(message: string, details: ProviderErrorDetails, options?: { cause?: unknown }) {
    super('PROVIDER', message, options);
    this.kind = details.kind;
    this.provider = details.provider;
    this.model = details.model;
    this.status = details.status;
    this.providerMessage = details.providerMessage;
    this.providerCode = details.providerCode;
    this.requestId = details.requestId;
    this.retryAfter = details.retryAfter;
    this.isRetryable = details.isRetryable ?? false;
  }
}

/** An error of native async work as the addon reports it (data, not a thrown error). */
export interface NativeErrorData {
  readonly code: string;
  readonly message: string;
  readonly kind?: string | null | undefined;
  readonly provider?: string | null | undefined;
  readonly model?: string | null | undefined;
  readonly status?: number | null | undefined;
  readonly providerMessage?: string | null | undefined;
  readonly providerCode?: string | null | undefined;
  readonly requestId?: string | null | undefined;
  readonly retryAfterMs?: number | null | undefined;
  readonly retryable: boolean;
}

/** A schema violation as the engine reports it when a run starts or resumes. */
export interface NativeViolationData {
  readonly place: string;
  readonly direction: string;
  readonly pointer: string;
  readonly reason: string;
}

/** The path (`['items', 2]`) a JSON pointer (`/items/2`) names in `value`. */
export function pointerPath(pointer: string, value: unknown): Array<string | number> {
  if (pointer === '') return [];
  const path: Array<string | number> = [];
  let cur: unknown = value;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur) && /^(0|[1-9]\d*)$/.test(seg)) {
      const i = Number(seg);
      path.push(i);
      cur = cur[i];
    } else {
      path.push(seg);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
    }
  }
  return path;
}

/** The `ValidationError` of a violation the engine found in `value`, with it as its issue. */
export function violationError(v: NativeViolationData, value: unknown): ValidationError {
  const path = pointerPath(v.pointer, value);
  const at = path.map(String).join('.');
  const message = `${v.place} ${v.direction} violates its schema: ${at === '' ? '' : `${at}: `}${v.reason}`;
  return new ValidationError(message, [{ message: v.reason, path }]);
}

/** Turns an error reported as data by the addon into its class. */
export function fromNativeError(e: NativeErrorData): MiyabiError {
  const u = <T>(v: T | null | undefined): T | undefined => v ?? undefined;
  if (e.code === 'PROVIDER') {
    return new ProviderError(e.message, {
      kind: (u(e.kind) ?? 'server') as ProviderErrorKind,
      provider: u(e.provider),
      model: u(e.model),
      status: u(e.status),
      providerMessage: u(e.providerMessage),
      providerCode: u(e.providerCode),
      requestId: u(e.requestId),
      retryAfter: u(e.retryAfterMs),
      isRetryable: e.retryable,
    });
  }
  if (e.code === 'CANCELLED') return new CancelledError(e.message);
  if (e.code === 'VALIDATION') return new ValidationError(e.message);
  const code = CODES.has(e.code) ? (e.code as ErrorCode) : 'ENGINE';
  return new MiyabiError(code, e.message);
}

/**
 * Throw it from a step to fail the step at once, without the retries its policy allows
 * (any other error is retryable).
 */
export class FatalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FatalError';
  }
}

const CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'VALIDATION',
  'NOT_FOUND',
  'FORBIDDEN',
  'CONFLICT',
  'NOT_SUSPENDED',
  'INVALID_WORKFLOW',
  'UNKNOWN_WORKFLOW',
  'DEFINITION_CHANGED',
  'REPLAY_DIVERGED',
  'STORE',
  'SHUTDOWN',
  'CANCELLED',
  'TIMEOUT',
  'INVALID_ARGUMENT',
  'PROVIDER',
  'CONFIG',
  'UNSUPPORTED',
  'MEMORY',
  'ENGINE',
  'UNAUTHORIZED',
  'METHOD_NOT_ALLOWED',
  'PAYLOAD_TOO_LARGE',
]);

/** Whether `e` was raised by the engine (it carries one of Miyabi's codes), rather than by napi
 * converting a value. */
export function isEngineError(e: unknown): boolean {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && CODES.has(code);
}

/** What JS calls the Rust types napi names when it cannot convert an argument. */
function jsType(rust: string): string {
  if (rust === 'String' || rust === '&str') return 'a string';
  if (rust === 'bool') return 'a boolean';
  if (rust === 'u32') return 'a whole number from 0 to 4294967295';
  if (rust === 'i32') return 'a whole number from -2147483648 to 2147483647';
  if (/^(u|i)(8|16|64|128|size)$/.test(rust)) return 'a whole number';
  if (/^f(32|64)$/.test(rust)) return 'a number';
  if (/^Vec</.test(rust)) return 'an array';
  if (/Map</.test(rust)) return 'an object';
  if (rust.startsWith('serde_json::')) return 'JSON';
  if (/^Native[A-Z]\w*$/.test(rust)) return 'an object';
  return `a ${rust}`;
}

/**
 * napi's message when it cannot convert an argument (`Failed to convert JavaScript value
 * \`Number 3 \` into rust type \`String\` on NativeModelOptions.apiKey`), in JS words
 * (`` `apiKey`: expected a string, got Number 3 ``); undefined for any other message.
 */
export function conversionMessage(message: string): string | undefined {
  const m = /^Failed to convert (?:JavaScript value `(.*?)\s*`|napi value (\S+)) into rust type `([^`]+)`(?: on \w+\.(\w+))?/.exec(message);
  if (m === null) return undefined;
  const got = (m[1] ?? m[2] ?? '').trim();
  const field = m[4] === undefined ? '' : `\`${m[4]}\`: `;
  return `${field}expected ${jsType(m[3] ?? '')}${got === '' ? '' : `, got ${got}`}`;
}

/** Turns an error thrown by the native addon (a plain Error with a `code`) into its class. */
export function fromNative(e: unknown): Error {
  if (!(e instanceof Error)) return new MiyabiError('ENGINE', String(e));
  if (e instanceof MiyabiError) return e;
  const raw = (e as Error & { code?: unknown }).code;
  const code = typeof raw === 'string' && CODES.has(raw) ? (raw as ErrorCode) : undefined;
  if (code === undefined) {
    // napi refused an argument: say so in JS words.
    const words = conversionMessage(e.message);
    return words === undefined ? e : new MiyabiError('INVALID_ARGUMENT', words, { cause: e });
  }
  const opts = { cause: e };
  switch (code) {
    case 'VALIDATION':
      return new ValidationError(e.message, [], opts);
    case 'NOT_FOUND':
      return new NotFoundError(e.message, opts);
    case 'FORBIDDEN':
      return new ForbiddenError(e.message, opts);
    case 'CONFLICT':
    case 'NOT_SUSPENDED':
      return new ConflictError(code, e.message, opts);
    case 'INVALID_WORKFLOW':
    case 'UNKNOWN_WORKFLOW':
    case 'DEFINITION_CHANGED':
    case 'REPLAY_DIVERGED':
      return new WorkflowDefinitionError(code, e.message, opts);
    case 'STORE':
      return new StoreError(e.message, opts);
    default:
      return new MiyabiError(code, e.message, opts);
  }
}

/** Calls `f`, turning native errors into their classes. */
export function native<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}
