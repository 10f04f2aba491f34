/**
 * @miyabi/core — durable workflows for Node.js on the Miyabi Rust engine.
 *
 * ```ts
 * import { workflow, Engine } from '@miyabi/core';
 * import { z } from 'zod';
 *
 * const wf = workflow('greet', { input: z.object({ name: z.string() }) })
 *   .step('hello', ({ input }) => `hello ${input.name}`)
 *   .commit();
 * const engine = await Engine.open({ store: 'sqlite:./miyabi.db' });
 * const run = await engine.start(wf, { name: 'Ada' });
 * ```
 */
export {
  workflow,
  step,
  Workflow,
  WorkflowBuilder,
  type StepContext,
  type StepFn,
  type StepDef,
  type StepSpec,
  type StepLike,
  type StepOptions,
  type RetryOptions,
  type RunState,
  type OutputOf,
  type ElementOf,
  type DecisionArgs,
  type MapArgs,
} from './workflow.js';
export {
  Engine,
  Run,
  type RunHandle,
  type RunInfo,
  type RunEvent,
  type RunStatus,
  type Suspension,
  type ListFilter,
  type EngineOptions,
} from './engine.js';
export { jsonSchema, type SchemaLike, type InferInput, type InferOutput, type Json } from './schema.js';
export {
  MiyabiError,
  ValidationError,
  NotFoundError,
  ConflictError,
  WorkflowDefinitionError,
  StoreError,
  CancelledError,
  TimeoutError,
  FatalError,
  type ErrorCode,
} from './errors.js';
