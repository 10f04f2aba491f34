// Text deltas through `for await` from a loopback stream: a Node HTTP server on 127.0.0.1 (in
// this process) serves one long OpenAI Chat Completions SSE stream of BENCH_DELTAS deltas (one
// delta per `data:` event, each a realistic chunk object, then `data: [DONE]`), and
// `streamText(...).textStream` is read to the end with `for await`. One JSON line on stdout:
//
//   {"bench":"node.stream.deltas","value":N,"unit":"deltas/s"}
//
// (the median of BENCH_REPEATS streams, after a warm-up stream); spreads go to stderr.
//
//   npm run build && node bench/stream.mjs
//
// Every stream's text is checked against what the server sent, so a lossy or reordered stream
// cannot pass for a fast one.
import { createServer } from 'node:http';
import { model, streamText } from '@miyabi/core';

const int = (name, d) => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const DELTAS = int('BENCH_DELTAS', 400_000);
const REPEATS = int('BENCH_REPEATS', 5);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The SSE body of a stream of `n` deltas and the text they make. */
function body(n) {
  const parts = [];
  const words = [];
  const head = '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":';
  parts.push(`data: ${head}""},"logprobs":null,"finish_reason":null}]}\n\n`);
  for (let i = 0; i < n; i++) {
    const w = ` w${i % 1000}`;
    words.push(w);
    parts.push(`data: ${head}${JSON.stringify(w)}},"logprobs":null,"finish_reason":null}]}\n\n`);
  }
  parts.push(
    'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n',
  );
  parts.push(
    `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1770933892,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":${n},"total_tokens":${n + 12}}}\n\n`,
  );
  parts.push('data: [DONE]\n\n');
  return { buf: Buffer.from(parts.join('')), text: words.join('') };
}

const bodies = new Map();
function bodyFor(n) {
  let b = bodies.get(n);
  if (b === undefined) bodies.set(n, (b = body(n)));
  return b;
}

const server = createServer((req, res) => {
  // The delta count is a path segment of the base URL: /n/<count>/v1/chat/completions.
  const n = Number.parseInt(/^\/n\/(\d+)\//.exec(req.url ?? '')?.[1] ?? '0', 10);
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(bodyFor(n).buf);
  });
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();

async function once(n) {
  const q = model('openai/gpt-4o', { baseURL: `http://127.0.0.1:${port}/n/${n}/v1`, apiKey: 'bench', protocol: 'openai-chat' });
  const expected = bodyFor(n).text;
  const started = process.hrtime.bigint();
  const result = streamText({ model: q, prompt: 'Count.' });
  let count = 0;
  let length = 0;
  for await (const delta of result.textStream) {
    count++;
    length += delta.length;
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const text = await result.text;
  if (count !== n || length !== expected.length || text !== expected) {
    throw new Error(`stream check failed: ${count} deltas of ${n}, ${length} chars of ${expected.length}`);
  }
  return n / secs;
}

await once(Math.min(DELTAS, 20_000));
const rates = [];
for (let i = 0; i < REPEATS; i++) rates.push(await once(DELTAS));
const m = median(rates);
process.stderr.write(
  `node.stream.deltas: ${DELTAS} deltas per stream, ${REPEATS} streams: ${rates.map((r) => Math.round(r)).join(', ')} deltas/s\n`,
);
process.stdout.write(`${JSON.stringify({ bench: 'node.stream.deltas', value: Math.round(m), unit: 'deltas/s' })}\n`);
server.closeAllConnections();
server.close();
