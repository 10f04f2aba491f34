/**
 * @miyabi/core — durable workflows, models and agents for Node.js on the Miyabi Rust engine.
 *
 * ```ts
 * import { streamText, Agent, tool } from '@miyabi/core';
 *
 * const result = streamText({ model: 'openai/gpt-4o', prompt: 'Tell me a story' });
 * for await (const delta of result.textStream) process.stdout.write(delta);
 * ```
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
  type ServeOptions,
  type Server,
} from './engine.js';
export {
  agentChatResponse,
  fromUIMessages,
  keyValueApprovalStore,
  memoryApprovalStore,
  toUIMessageStream,
  toUIMessageStreamResponse,
  uiMessageChunks,
  uiMessageStreamToSSE,
  UI_MESSAGE_STREAM_HEADERS,
  type AgentChatOptions,
  type ApprovalStore,
  type KeyValueLike,
  type UIMessageChunk,
  type UIMessageLike,
  type UIMessagePartLike,
  type UIMessageStreamOptions,
  type UIStreamSource,
} from './ui.js';
export {
  createMcpServer,
  mcpTools,
  type McpClientLike,
  type McpServerLike,
  type McpServerOptions,
  type McpToolInfo,
  type McpToolsOptions,
} from './mcp.js';
export { runEventsResponse, type RunEventsFormat, type RunEventsResponseOptions } from './response.js';
export {
  approvalGate,
  ApprovalGate,
  Approvals,
  slack,
  discord,
  webhook,
  type ApprovalGateOptions,
  type Approval,
  type Approver,
  type ApprovalFilter,
  type ApprovalStatus,
  type AuditFilter,
  type AuditRecord,
  type Decision,
  type Delivery,
  type GateOutput,
  type Notifier,
  type OnTimeout,
  type Policy,
  type Vote,
} from './approval.js';
export {
  model,
  LanguageModel,
  type ModelOptions,
  type ModelLike,
  type Protocol,
  type Message,
  type MessagePart,
  type CallSettings,
  type Prompt,
} from './model.js';
export { generateText, streamText, type TextOptions } from './generate.js';
export {
  Agent,
  tool,
  Memory,
  WorkingMemory,
  type Tool,
  type ApprovalPredicate,
  type ToolDefinition,
  type ToolContext,
  type AgentOptions,
  type AgentInput,
  type AgentCallOptions,
} from './agent.js';
export {
  StreamTextResult,
  AgentStreamResult,
  type GenerateTextResult,
  type AgentResult,
  type StepResult,
  type StopReason,
  type AgentCheckpoint,
} from './result.js';
export {
  type StreamPart,
  type Usage,
  type FinishReason,
  type ToolCall,
  type ToolResult,
  type PendingApproval,
} from './stream.js';
export { jsonSchema, type SchemaLike, type InferInput, type InferOutput, type Json } from './schema.js';
export {
  MiyabiError,
  ValidationError,
  NotFoundError,
  ForbiddenError,
  ConflictError,
  WorkflowDefinitionError,
  StoreError,
  CancelledError,
  TimeoutError,
  FatalError,
  ProviderError,
  type ProviderErrorKind,
  type ProviderErrorDetails,
  type ErrorCode,
} from './errors.js';
export {
  compareResults,
  durableEvaluation,
  embeddingSimilarity,
  evaluate,
  judges,
  metrics,
  type Comparison,
  type JudgeOptions,
  type PairwiseJudge,
  type EvalCase,
  type EvalSample,
  type EvalTrace,
  type EvalResults,
  type EvaluateOptions,
  type DurableEvaluation,
  type DurablePlan,
  type EvalEngine,
  type MetricFn,
  type MetricResult,
  type MetricSpec,
  type MetricSummary,
  type SampleResult,
  type SampleScore,
} from './eval.js';
export { preset, presets, type PresetData, type PresetName, type PresetOptions } from './presets.js';
export {
  cosineSimilarity,
  embed,
  embedMany,
  embeddingModel,
  EmbeddingModel,
  type EmbeddingModelLike,
  type EmbeddingUsage,
  type EmbedOptions,
} from './embed.js';
