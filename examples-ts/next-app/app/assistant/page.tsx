'use client';
// A support chat on @miyabi/react's useChat: streamed text, the agent's tool calls, and approval
// buttons for the refund tool.
import { useState } from 'react';
import { useChat, type ToolUIPart } from '@miyabi/react';

export default function Assistant() {
  const { messages, sendMessage, addToolApprovalResponse, status, error } = useChat({ api: '/api/assistant' });
  const [text, setText] = useState('');
  return (
    <main>
      <h1>Support (useChat from @miyabi/react)</h1>
      <ul data-testid="messages">
        {messages.map((m) => (
          <li key={m.id} data-role={m.role}>
            {m.parts.map((p, i) => {
              if (p.type === 'text') return <p key={i} data-part="text">{p.text}</p>;
              if (p.type === 'dynamic-tool' || p.type.startsWith('tool-')) {
                const t = p as ToolUIPart;
                return (
                  <div key={i} data-part="tool" data-state={t.state}>
                    <code>
                      {t.toolName} {JSON.stringify(t.input)}
                    </code>
                    {t.state === 'approval-requested' && t.approval !== undefined ? (
                      <span>
                        <button data-testid="approve-tool" onClick={() => void addToolApprovalResponse({ id: t.approval!.id, approved: true })}>
                          Approve
                        </button>
                        <button data-testid="deny-tool" onClick={() => void addToolApprovalResponse({ id: t.approval!.id, approved: false })}>
                          Deny
                        </button>
                      </span>
                    ) : null}
                    {t.state === 'output-available' ? <output data-testid="tool-output">{String(t.output)}</output> : null}
                  </div>
                );
              }
              return null;
            })}
          </li>
        ))}
      </ul>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void sendMessage(text);
          setText('');
        }}
      >
        <input data-testid="chat-input" value={text} onChange={(e) => setText(e.target.value)} placeholder="Ask for a refund…" />
        <button type="submit" disabled={status === 'streaming' || status === 'submitted'}>
          Send
        </button>
      </form>
      <p data-testid="chat-status">{status}</p>
      {error === undefined ? null : <p role="alert">{error.message}</p>}
    </main>
  );
}
