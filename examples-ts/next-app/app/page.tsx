'use client';
// A minimal chat page: posts the prompt to /api/chat and shows the answer as it streams.
import { useState } from 'react';

export default function Page() {
  const [prompt, setPrompt] = useState('Invent a new holiday and describe its traditions.');
  const [answer, setAnswer] = useState('');
  const [busy, setBusy] = useState(false);

  async function send(): Promise<void> {
    setBusy(true);
    setAnswer('');
    try {
      const res = await fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt }),
      });
      if (res.body === null) return;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        setAnswer((a) => a + value);
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <main>
      <h1>Miyabi chat</h1>
      <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={3} style={{ width: '100%' }} />
      <button onClick={() => void send()} disabled={busy}>
        {busy ? 'Streaming…' : 'Send'}
      </button>
      <pre style={{ whiteSpace: 'pre-wrap' }}>{answer}</pre>
    </main>
  );
}
