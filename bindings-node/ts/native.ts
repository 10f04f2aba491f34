/** The native addon (loaded once by the napi-generated loader next to package.json). */
import addon from '../../native.cjs';

export type {
  NativeEngine,
  NativeRun,
  NativeRunInfo,
  NativeTask,
  NativeWorkflow,
  NativeListFilter,
  NativeSteps,
  NativeStepCall,
  NativeWorkWait,
  NativeStream,
  NativeModel,
  NativeModelRequest,
  NativeAgent,
  NativeMemory,
  NativeToolCall,
  NativeApprovalGate,
  NativeServer,
  NativeEmbeddingModel,
  NativeMetric,
} from '../../native.cjs';
export { addon };
