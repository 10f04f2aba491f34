/**
 * @miyabi/react — React hooks and components for Miyabi.
 *
 * ```tsx
 * import { useChat, useRun, useWorkflow, useApprovals, ApprovalCard, RunTimeline } from '@miyabi/react';
 * ```
 *
 * `useChat` speaks the AI SDK's UI message stream protocol (a route with `agentChatResponse`
 * from `@miyabi/core`, or any AI SDK route); the run and approval hooks speak Miyabi's HTTP API.
 */
export { ChatController, useChat, type ChatOptions, type ChatSnapshot, type ChatStatus, type UseChatResult } from './chat.js';
export {
  ApiError,
  RunController,
  useApprovals,
  useRun,
  useWorkflow,
  type ApiOptions,
  type ApprovalInfo,
  type DecisionInput,
  type RunEventInfo,
  type RunInfo,
  type RunSnapshot,
  type RunStatus,
  type StepInfo,
  type UseApprovalsResult,
  type UseWorkflowResult,
} from './runs.js';
export { ApprovalCard, RunTimeline, type ApprovalCardProps, type ClassNames, type RunTimelineProps } from './components.js';
export {
  approvalsAnswered,
  foldChunk,
  foldStart,
  readUIChunks,
  toolParts,
  type DataUIPart,
  type FoldState,
  type StepStartUIPart,
  type TextUIPart,
  type ToolState,
  type ToolUIPart,
  type UIChunk,
  type UIMessage,
  type UIPart,
} from './protocol.js';
