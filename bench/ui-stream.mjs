// The AI SDK's UI message stream protocol, Miyabi's and the AI SDK's own, side by side on the same
// loopback model stream (a Node HTTP server in this process serving an OpenAI Chat Completions
// SSE stream; the AI SDK calls it through @ai-sdk/openai's chat model, Miyabi through its Rust
// client). Per implementation, JSON lines on stdout:
//
//   {"bench":"ui.<impl>.first-chunk","value":N,"unit":"us"}   model's first delta written → its
//        text-delta chunk read from the route's Response body (median of BENCH_FIRST streams)
//   {"bench":"ui.<impl>.throughput","value":N,"unit":"chunks/s"}  SSE chunks read from the
//        Response body of a BENCH_DELTAS-delta stream (median of BENCH_REPEATS)
//   {"bench":"ui.<impl>.throughput.per-cpu-s",...}  the same chunks per second of the process's
//        CPU time (process.cpuUsage(): every thread, the model server and reader included)
//
//   npm run build && node bench/ui-stream.mjs
//
// Each stream's text is checked against what the model server sent.
import { createServer } from 'node:http';
import { model, streamText as miyabiStreamText } from '@miyabi/core';
import { streamText as aiStreamText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';

const int = (name, d) => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const DELTAS = int('BENCH_DELTAS', 100_000);
const REPEATS = int('BENCH_REPEATS', 5);
const FIRST = int('BENCH_FIRST', 50);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":';
const event = (w) => `data: ${head}${JSON.stringify(w)}},"finish_reason":null}]}\n\n`;
const tail =
  'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n' +
  'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}\n\n' +
  'data: [DONE]\n\n';

let mode = { n: 1, firstWrittenAt: 0n, hold: undefined };
const server = createServer(async (req, res) => {
  for await (const _ of req);
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  if (mode.hold !== undefined) {
    // First-chunk mode: one delta now (time noted), the rest once the client saw it.
    mode.firstWrittenAt = process.hrtime.bigint();
    res.write(event('first'));
    await mode.hold;
    res.end(event(' rest') + tail);
    return;
  }
  const parts = [];
  for (let i = 0; i < mode.n; i++) parts.push(event(` w${i % 1000}`));
  res.end(parts.join('') + tail);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}/v1`;

const miyabiModel = model('openai/gpt-4o', { baseURL: base, apiKey: 'bench', protocol: 'openai-chat', maxRetries: 0 });
const aiModel = createOpenAI({ baseURL: base, apiKey: 'bench' }).chat('gpt-4o');

const impls = {
  miyabi: () => miyabiStreamText({ model: miyabiModel, prompt: 'go' }).toUIMessageStreamResponse(),
  'ai-sdk': () => aiStreamText({ model: aiModel, prompt: 'go' }).toUIMessageStreamResponse(),
};

/** Reads a UI message stream body; calls `onDelta` with each text delta; returns the chunk count and text. */
async function read(res, onDelta) {
  const decoder = new TextDecoder();
  let buf = '';
  let chunks = 0;
  let text = '';
  for await (const bytes of res.body) {
    buf += decoder.decode(bytes, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      chunks++;
      const c = JSON.parse(line.slice(6));
      if (c.type === 'text-delta') {
        text += c.delta;
        onDelta?.(c.delta);
      }
    }
  }
  return { chunks, text };
}

for (const [name, make] of Object.entries(impls)) {
  // First chunk latency.
  const firsts = [];
  for (let r = 0; r < FIRST + 3; r++) {
    let release;
    mode = { n: 0, firstWrittenAt: 0n, hold: new Promise((x) => (release = x)) };
    let seen = 0n;
    const { text } = await read(make(), (d) => {
      if (seen === 0n && d.length > 0) {
        seen = process.hrtime.bigint();
        release();
      }
    });
    if (!text.startsWith('first')) throw new Error(`${name}: wrong text ${text.slice(0, 40)}`);
    if (r >= 3) firsts.push(Number(seen - mode.firstWrittenAt) / 1000);
  }
  console.log(JSON.stringify({ bench: `ui.${name}.first-chunk`, value: Math.round(median(firsts)), unit: 'us' }));
  console.error(`${name} first chunk us: min ${Math.min(...firsts).toFixed(0)} max ${Math.max(...firsts).toFixed(0)}`);

  // Throughput.
  mode = { n: DELTAS, firstWrittenAt: 0n, hold: undefined };
  const rates = [];
  const perCpu = [];
  for (let r = 0; r < REPEATS + 1; r++) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const { chunks, text } = await read(make());
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    if (text.length < DELTAS * 3) throw new Error(`${name}: lost deltas (${text.length} chars)`);
    if (r > 0) {
      rates.push(chunks / s);
      perCpu.push(chunks / ((c.user + c.system) / 1e6));
    }
  }
  console.log(JSON.stringify({ bench: `ui.${name}.throughput`, value: Math.round(median(rates)), unit: 'chunks/s' }));
  // Per second of CPU time of the whole process (every thread: the loopback model server, the
  // stream, the reader): the steadier figure on a shared host, and a conservative one.
  console.log(JSON.stringify({ bench: `ui.${name}.throughput.per-cpu-s`, value: Math.round(median(perCpu)), unit: 'chunks/cpu-s' }));
  console.error(`${name} chunks/s: ${rates.map((x) => Math.round(x)).join(' ')}; per CPU-second: ${perCpu.map((x) => Math.round(x)).join(' ')}`);
}
server.close();
