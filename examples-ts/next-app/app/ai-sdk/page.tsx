'use client';
// The same agent route with the AI SDK's own useChat (@ai-sdk/react), unchanged.
import { useState } from 'react';
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';

export default function AiSdkChat() {
  const { messages, sendMessage, addToolApprovalResponse, status } = useChat({
    transport: new DefaultChatTransport({ api: '/api/assistant' }),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  const [text, setText] = useState('');
  return (
    <main>
      <h1>Support (useChat from @ai-sdk/react)</h1>
      <ul data-testid="messages">
        {messages.map((m) => (
          <li key={m.id} data-role={m.role}>
            {m.parts.map((p, i) => {
              if (p.type === 'text') return <p key={i} data-part="text">{p.text}</p>;
              if (p.type === 'dynamic-tool') {
                return (
                  <div key={i} data-part="tool" data-state={p.state}>
                    <code>
                      {p.toolName} {JSON.stringify(p.input)}
                    </code>
                    {p.state === 'approval-requested' ? (
                      <button data-testid="approve-tool" onClick={() => void addToolApprovalResponse({ id: p.approval.id, approved: true })}>
                        Approve
                      </button>
                    ) : null}
                    {p.state === 'output-available' ? <output data-testid="tool-output">{String(p.output)}</output> : null}
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
          void sendMessage({ text });
          setText('');
        }}
      >
        <input data-testid="chat-input" value={text} onChange={(e) => setText(e.target.value)} />
        <button type="submit">Send</button>
      </form>
      <p data-testid="chat-status">{status}</p>
    </main>
  );
}
