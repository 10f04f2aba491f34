/**
 * Chats with an agent route that speaks the AI SDK's UI message stream protocol (a Miyabi route
 * with `agentChatResponse`, or any AI SDK route): {@link ChatController} holds the state and
 * {@link useChat} renders it in React.
 */
import { useCallback, useEffect, useRef, useSyncExternalStore } from 'react';
import { type UIMessage, approvalsAnswered, foldChunk, foldStart, readUIChunks, toolParts } from './protocol.js';

/** Where a chat stands. */
export type ChatStatus = 'ready' | 'submitted' | 'streaming' | 'error';

/** The state a chat renders. */
export interface ChatSnapshot {
  readonly id: string;
  readonly messages: ReadonlyArray<UIMessage>;
  readonly status: ChatStatus;
  readonly error: Error | undefined;
}

/** Options of a chat. */
export interface ChatOptions {
  /** The route (default `/api/chat`). */
  readonly api?: string;
  /** The chat's id (sent with every request; default: a random one). */
  readonly id?: string;
  /** Messages to start with. */
  readonly messages?: ReadonlyArray<UIMessage>;
  /** Extra request headers (e.g. `authorization`). */
  readonly headers?: Record<string, string>;
  /** Extra fields of the request body. */
  readonly body?: Record<string, unknown>;
  /** The `fetch` to use (default: the global one). */
  readonly fetch?: typeof globalThis.fetch;
  /** Send the messages back by itself once every approval of the last answer has a decision (default true). */
  readonly resumeAfterApprovals?: boolean;
  /** Called with each finished assistant message. */
  readonly onFinish?: (message: UIMessage) => void;
  /** Called with each error. */
  readonly onError?: (error: Error) => void;
}

function randomId(): string {
  return globalThis.crypto.randomUUID();
}

/** A chat's state and actions, independent of any UI framework. */
export class ChatController {
  #snapshot: ChatSnapshot;
  readonly #listeners = new Set<() => void>();
  #options: ChatOptions;
  #abort: AbortController | undefined;

  constructor(options: ChatOptions = {}) {
    this.#options = options;
    this.#snapshot = { id: options.id ?? randomId(), messages: options.messages ?? [], status: 'ready', error: undefined };
  }

  /** Replaces the options (headers, body, callbacks) used by later requests. */
  setOptions(options: ChatOptions): void {
    this.#options = options;
  }

  /** The current state (a new object after every change). */
  getSnapshot = (): ChatSnapshot => this.#snapshot;

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  #set(change: Partial<ChatSnapshot>): void {
    this.#snapshot = { ...this.#snapshot, ...change };
    for (const l of this.#listeners) l();
  }

  /** Replaces the messages. */
  setMessages(messages: ReadonlyArray<UIMessage>): void {
    this.#set({ messages });
  }

  /** Sends a user message and streams the answer. */
  async sendMessage(message: string | { readonly text: string }): Promise<void> {
    const text = typeof message === 'string' ? message : message.text;
    const user: UIMessage = { id: randomId(), role: 'user', parts: [{ type: 'text', text, state: 'done' }] };
    this.#set({ messages: [...this.#snapshot.messages, user] });
    await this.#request(undefined);
  }

  /**
   * Answers an approval request of the last answer. Once every request has an answer the
   * messages go back to the route, which resumes the generation into the same message.
   */
  async addToolApprovalResponse(answer: { readonly id: string; readonly approved: boolean; readonly reason?: string }): Promise<void> {
    const messages = this.#snapshot.messages.map((m) => {
      if (!toolParts(m).some((p) => p.approval?.id === answer.id && p.state === 'approval-requested')) return m;
      return {
        ...m,
        parts: m.parts.map((p) =>
          'approval' in p && p.approval?.id === answer.id && p.state === 'approval-requested'
            ? { ...p, state: 'approval-responded' as const, approval: { id: answer.id, approved: answer.approved, ...(answer.reason === undefined ? {} : { reason: answer.reason }) } }
            : p,
        ),
      };
    });
    this.#set({ messages });
    if ((this.#options.resumeAfterApprovals ?? true) && approvalsAnswered(messages) && this.#snapshot.status !== 'streaming') {
      const last = messages.at(-1);
      await this.#request(last);
    }
  }

  /** Stops the answer being streamed. */
  stop(): void {
    this.#abort?.abort();
  }

  async #request(continued: UIMessage | undefined): Promise<void> {
    const o = this.#options;
    const abort = new AbortController();
    this.#abort = abort;
    this.#set({ status: 'submitted', error: undefined });
    const doFetch = o.fetch ?? globalThis.fetch;
    const messages = this.#snapshot.messages;
    try {
      const res = await doFetch(o.api ?? '/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(o.headers ?? {}) },
        body: JSON.stringify({ ...(o.body ?? {}), id: this.#snapshot.id, messages, trigger: 'submit-message', messageId: continued?.id }),
        signal: abort.signal,
      });
      if (!res.ok || res.body === null) {
        const text = await res.text().catch(() => '');
        let message = text;
        try {
          const j = JSON.parse(text) as { error?: { message?: string } | string };
          message = typeof j.error === 'string' ? j.error : (j.error?.message ?? text);
        } catch {
          // not JSON: the text as it is
        }
        throw new Error(`the chat route answered ${res.status}${message === '' ? '' : `: ${message}`}`);
      }
      const base = continued ?? ({ id: randomId(), role: 'assistant', parts: [] } satisfies UIMessage);
      let state = foldStart(base);
      const index = continued === undefined ? messages.length : messages.length - 1;
      const put = (m: UIMessage): void => {
        const list = [...this.#snapshot.messages];
        list[index] = m;
        this.#set({ messages: list });
      };
      this.#set({ status: 'streaming' });
      for await (const chunk of readUIChunks(res.body)) {
        state = foldChunk(state, chunk);
        put(state.message);
      }
      if (state.error !== undefined) throw new Error(state.error);
      this.#set({ status: 'ready' });
      o.onFinish?.(state.message);
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      if (abort.signal.aborted) {
        this.#set({ status: 'ready' });
        return;
      }
      this.#set({ status: 'error', error });
      o.onError?.(error);
    } finally {
      if (this.#abort === abort) this.#abort = undefined;
    }
  }
}

/** What {@link useChat} returns. */
export interface UseChatResult extends ChatSnapshot {
  sendMessage(message: string | { readonly text: string }): Promise<void>;
  addToolApprovalResponse(answer: { readonly id: string; readonly approved: boolean; readonly reason?: string }): Promise<void>;
  setMessages(messages: ReadonlyArray<UIMessage>): void;
  stop(): void;
}

/**
 * A chat with an agent route in the AI SDK's UI message stream protocol: messages with their
 * parts (text, reasoning, tool calls with their state, approval requests), status and error.
 *
 * ```tsx
 * const { messages, sendMessage, addToolApprovalResponse, status } = useChat({ api: '/api/chat' });
 * ```
 */
export function useChat(options: ChatOptions = {}): UseChatResult {
  const ref = useRef<ChatController | undefined>(undefined);
  ref.current ??= new ChatController(options);
  const chat = ref.current;
  useEffect(() => {
    chat.setOptions(options);
  });
  const snapshot = useSyncExternalStore(chat.subscribe, chat.getSnapshot, chat.getSnapshot);
  const sendMessage = useCallback((m: string | { readonly text: string }) => chat.sendMessage(m), [chat]);
  const addToolApprovalResponse = useCallback(
    (a: { readonly id: string; readonly approved: boolean; readonly reason?: string }) => chat.addToolApprovalResponse(a),
    [chat],
  );
  const setMessages = useCallback((m: ReadonlyArray<UIMessage>) => chat.setMessages(m), [chat]);
  const stop = useCallback(() => chat.stop(), [chat]);
  useEffect(() => () => chat.stop(), [chat]);
  return { ...snapshot, sendMessage, addToolApprovalResponse, setMessages, stop };
}
