/**
 * Errors thrown by @miyabi/core. Every one is a `MiyabiError` with a stable `code`; catch the
 * subclass or switch on `code`.
 */

/** The codes a `MiyabiError` can carry. */
export type ErrorCode =
  | 'VALIDATION'
  | 'NOT_FOUND'
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
  | 'ENGINE';

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

/** A value does not match its schema (run input, step output, resume data). */
export class ValidationError extends MiyabiError {
  /** What failed, as reported by the schema library (zod issues) when validated in JS. */
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
  'ENGINE',
]);

/** Whether `e` was raised by the engine (it carries one of Miyabi's codes), rather than by napi
 * converting a value. */
export function isEngineError(e: unknown): boolean {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && CODES.has(code);
}

/** Turns an error thrown by the native addon (a plain Error with a `code`) into its class. */
export function fromNative(e: unknown): Error {
  if (!(e instanceof Error)) return new MiyabiError('ENGINE', String(e));
  if (e instanceof MiyabiError) return e;
  const raw = (e as Error & { code?: unknown }).code;
  const code = typeof raw === 'string' && CODES.has(raw) ? (raw as ErrorCode) : undefined;
  if (code === undefined) return e;
  const opts = { cause: e };
  switch (code) {
    case 'VALIDATION':
      return new ValidationError(e.message, [], opts);
    case 'NOT_FOUND':
      return new NotFoundError(e.message, opts);
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
