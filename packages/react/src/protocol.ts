/**
 * The AI SDK's UI message stream protocol on the client: reading the server-sent events of a
 * response into chunks, and folding chunks into a UI message. Framework-free (the hooks use it;
 * so can a terminal client or a test).
 */

/** A text or reasoning part. */
export interface TextUIPart {
  readonly type: 'text' | 'reasoning';
  readonly text: string;
  readonly state: 'streaming' | 'done';
}

/** Where a tool call stands. */
export type ToolState =
  | 'input-streaming'
  | 'input-available'
  | 'approval-requested'
  | 'approval-responded'
  | 'output-available'
  | 'output-error'
  | 'output-denied';

/** A tool call and, once known, its result (`dynamic-tool`, or `tool-<name>` for typed tools). */
export interface ToolUIPart {
  readonly type: 'dynamic-tool' | `tool-${string}`;
  readonly toolName: string;
  readonly toolCallId: string;
  readonly state: ToolState;
  readonly input?: unknown;
  readonly output?: unknown;
  readonly errorText?: string;
  readonly approval?: { readonly id: string; readonly approved?: boolean; readonly reason?: string };
}

/** The start of a model call within an assistant message. */
export interface StepStartUIPart {
  readonly type: 'step-start';
}

/** A custom data part (`data-<name>`). */
export interface DataUIPart {
  readonly type: `data-${string}`;
  readonly id?: string;
  readonly data: unknown;
}

/** One part of a UI message. */
export type UIPart = TextUIPart | ToolUIPart | StepStartUIPart | DataUIPart;

/** A message as a chat shows it (the AI SDK's `UIMessage` shape). */
export interface UIMessage {
  readonly id: string;
  readonly role: 'system' | 'user' | 'assistant';
  readonly parts: ReadonlyArray<UIPart>;
  readonly metadata?: unknown;
}

/** One chunk of the stream (the fields this client reads). */
export interface UIChunk {
  readonly type: string;
  readonly id?: string;
  readonly delta?: string;
  readonly messageId?: string;
  readonly toolCallId?: string;
  readonly toolName?: string;
  readonly inputTextDelta?: string;
  readonly input?: unknown;
  readonly output?: unknown;
  readonly errorText?: string;
  readonly approvalId?: string;
  readonly dynamic?: boolean;
  readonly data?: unknown;
  readonly transient?: boolean;
  readonly messageMetadata?: unknown;
}

/**
 * The chunks of a UI message stream response body (`data: <json>` events; `data: [DONE]` ends
 * it). A line that is not JSON is an error naming it.
 */
export async function* readUIChunks(body: ReadableStream<Uint8Array>): AsyncGenerator<UIChunk> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = block
          .split(/\r?\n/)
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n');
        if (data === '') continue;
        if (data === '[DONE]') return;
        let chunk: unknown;
        try {
          chunk = JSON.parse(data);
        } catch {
          throw new Error(`the UI message stream sent an event that is not JSON: ${data.slice(0, 200)}`);
        }
        if (typeof chunk === 'object' && chunk !== null && typeof (chunk as UIChunk).type === 'string') yield chunk as UIChunk;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** Folding state for one assistant message: which text part an id is, tool inputs being streamed. */
export interface FoldState {
  readonly message: UIMessage;
  /** Index in `parts` of each open text/reasoning id. */
  readonly open: Readonly<Record<string, number>>;
  /** Partial tool input text per call id. */
  readonly inputText: Readonly<Record<string, string>>;
  /** Error text sent by the server, if any. */
  readonly error?: string;
  /** The stream ended with `finish` (or `abort`). */
  readonly finished: boolean;
}

/** A fresh folding state for an assistant message (or one continued: its parts are kept). */
export function foldStart(message: UIMessage): FoldState {
  return { message, open: {}, inputText: {}, finished: false };
}

function isTool(p: UIPart): p is ToolUIPart {
  return p.type === 'dynamic-tool' || (p.type.startsWith('tool-') && 'toolCallId' in p);
}

function withParts(s: FoldState, parts: ReadonlyArray<UIPart>, extra: Partial<FoldState> = {}): FoldState {
  return { ...s, ...extra, message: { ...s.message, parts } };
}

function updateTool(s: FoldState, toolCallId: string | undefined, f: (p: ToolUIPart) => ToolUIPart): FoldState {
  const parts = s.message.parts.map((p) => (isTool(p) && p.toolCallId === toolCallId ? f(p) : p));
  return withParts(s, parts);
}

function upsertTool(s: FoldState, c: UIChunk, state: ToolState, input: unknown): FoldState {
  const id = c.toolCallId ?? '';
  if (s.message.parts.some((p) => isTool(p) && p.toolCallId === id)) {
    return updateTool(s, id, (p) => ({ ...p, state, input }));
  }
  const name = c.toolName ?? 'tool';
  const part: ToolUIPart = { type: c.dynamic === false ? `tool-${name}` : 'dynamic-tool', toolName: name, toolCallId: id, state, input };
  return withParts(s, [...s.message.parts, part]);
}

/** Applies one chunk; returns the new state (the old one is not changed). */
export function foldChunk(s: FoldState, c: UIChunk): FoldState {
  switch (c.type) {
    case 'start':
      return c.messageId === undefined ? s : { ...s, message: { ...s.message, id: c.messageId } };
    case 'start-step':
      return withParts(s, [...s.message.parts, { type: 'step-start' }]);
    case 'text-start':
    case 'reasoning-start': {
      const type = c.type === 'text-start' ? 'text' : 'reasoning';
      const parts = [...s.message.parts, { type, text: '', state: 'streaming' } as TextUIPart];
      return withParts(s, parts, { open: { ...s.open, [c.id ?? '']: parts.length - 1 } });
    }
    case 'text-delta':
    case 'reasoning-delta':
    case 'text-end':
    case 'reasoning-end': {
      const i = s.open[c.id ?? ''];
      if (i === undefined) return s;
      const end = c.type.endsWith('-end');
      const parts = s.message.parts.map((p, j) => {
        if (j !== i) return p;
        const t = p as TextUIPart;
        return end ? { ...t, state: 'done' as const } : { ...t, text: t.text + (c.delta ?? '') };
      });
      return withParts(s, parts);
    }
    case 'tool-input-start':
      return { ...upsertTool(s, c, 'input-streaming', undefined), inputText: { ...s.inputText, [c.toolCallId ?? '']: '' } };
    case 'tool-input-delta': {
      const id = c.toolCallId ?? '';
      const text = (s.inputText[id] ?? '') + (c.inputTextDelta ?? '');
      let partial: unknown;
      try {
        partial = JSON.parse(text);
      } catch {
        partial = undefined;
      }
      const next = partial === undefined ? s : updateTool(s, id, (p) => ({ ...p, input: partial }));
      return { ...next, inputText: { ...s.inputText, [id]: text } };
    }
    case 'tool-input-available':
      return upsertTool(s, c, 'input-available', c.input);
    case 'tool-input-error':
      return updateTool(upsertTool(s, c, 'output-error', c.input), c.toolCallId, (p) => ({ ...p, errorText: c.errorText ?? '' }));
    case 'tool-approval-request':
      return updateTool(s, c.toolCallId, (p) => ({ ...p, state: 'approval-requested', approval: { id: c.approvalId ?? '' } }));
    case 'tool-output-available':
      return updateTool(s, c.toolCallId, (p) => ({ ...p, state: 'output-available', output: c.output }));
    case 'tool-output-error':
      return updateTool(s, c.toolCallId, (p) => ({ ...p, state: 'output-error', errorText: c.errorText ?? '' }));
    case 'tool-output-denied':
      return updateTool(s, c.toolCallId, (p) => ({ ...p, state: 'output-denied' }));
    case 'error':
      return { ...s, error: c.errorText ?? 'the server reported an error' };
    case 'finish':
    case 'abort':
      return {
        ...withParts(
          s,
          s.message.parts.map((p) => ((p.type === 'text' || p.type === 'reasoning') && p.state === 'streaming' ? { ...p, state: 'done' } : p)),
        ),
        finished: true,
      };
    case 'message-metadata':
      return { ...s, message: { ...s.message, metadata: c.messageMetadata } };
    default:
      if (c.type.startsWith('data-') && c.transient !== true) {
        const part: DataUIPart = { type: c.type as `data-${string}`, data: c.data, ...(c.id === undefined ? {} : { id: c.id }) };
        const i = c.id === undefined ? -1 : s.message.parts.findIndex((p) => p.type === c.type && (p as DataUIPart).id === c.id);
        return withParts(s, i < 0 ? [...s.message.parts, part] : s.message.parts.map((p, j) => (j === i ? part : p)));
      }
      return s;
  }
}

/** The tool parts of a message. */
export function toolParts(m: UIMessage): ToolUIPart[] {
  return m.parts.filter(isTool);
}

/**
 * Whether the last message is the assistant's and every approval it asked for has an answer while
 * none is still waiting: the moment to send the messages back so the server resumes.
 */
export function approvalsAnswered(messages: ReadonlyArray<UIMessage>): boolean {
  const last = messages.at(-1);
  if (last === undefined || last.role !== 'assistant') return false;
  const tools = toolParts(last);
  return tools.some((p) => p.state === 'approval-responded') && !tools.some((p) => p.state === 'approval-requested');
}
