// Shared helpers of the end-to-end tests (node --test over the built package).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

/** A fresh temporary directory, removed when the test ends. */
export function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'miyabi-node-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs `node script ...args` (`script` may be a node flag, then args start with the script);
 * resolves with { code, signal, stdout, stderr, ms }. */
export function runNode(script, args = [], { timeoutMs = 20000, env = undefined, cwd = undefined } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The last JSON line a child printed. */
export function lastJson(stdout) {
  const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON line in output: ${stdout}`);
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * A loopback server speaking OpenAI Chat Completions (`POST /v1/chat/completions`). `reply(body,
 * n)` gets the request body and its index and returns what to answer: `{ sse: [chunk, ...] }`
 * (an SSE stream ending with `[DONE]`), `{ json, status? , headers? }`, or `{ raw, status?,
 * headers? }`. Requests are kept in `requests` ({ url, headers, body }).
 */
export async function openaiServer(t, reply) {
  const { createServer } = await import('node:http');
  const requests = [];
  const server = createServer(async (req, res) => {
    let text = '';
    for await (const c of req) text += c;
    const body = text === '' ? null : JSON.parse(text);
    requests.push({ url: req.url, headers: req.headers, body });
    let r;
    try {
      r = await reply(body, requests.length - 1);
    } catch (e) {
      r = { status: 500, json: { error: { message: String(e), type: 'test_server_error' } } };
    }
    if (r.sse !== undefined) {
      res.writeHead(200, { 'content-type': 'text/event-stream', ...(r.headers ?? {}) });
      res.end(r.sse.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + 'data: [DONE]\n\n');
    } else if (r.json !== undefined) {
      res.writeHead(r.status ?? 200, { 'content-type': 'application/json', ...(r.headers ?? {}) });
      res.end(JSON.stringify(r.json));
    } else {
      res.writeHead(r.status ?? 200, r.headers ?? {});
      res.end(r.raw ?? '');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${server.address().port}/v1`, requests };
}

/** A Chat Completions stream chunk. */
export function chunk(delta, finish = null, usage = undefined) {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-4o-test',
    choices: [{ index: 0, delta, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage }),
  };
}

/** A streamed text answer, one chunk per piece, then finish and usage. */
export function textStream(pieces) {
  return [
    chunk({ role: 'assistant', content: '' }),
    ...pieces.map((p) => chunk({ content: p })),
    chunk({}, 'stop'),
    { ...chunk({}), choices: [], usage: { prompt_tokens: 7, completion_tokens: pieces.length, total_tokens: 7 + pieces.length } },
  ];
}

/** A non-streamed Chat Completions answer: text, or tool calls `[{ id, name, args }]`. */
export function completion({ text = null, calls = [] } = {}) {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o-test',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text,
          ...(calls.length === 0
            ? {}
            : { tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.args) } })) }),
        },
        finish_reason: calls.length === 0 ? 'stop' : 'tool_calls',
      },
    ],
    usage: { prompt_tokens: 11, completion_tokens: 5, total_tokens: 16 },
  };
}

/** The recorded OpenAI Chat Completions stream of tests/fixtures/recorded: its lines and text. */
export async function recordedStream() {
  const { readFileSync } = await import('node:fs');
  const dir = new URL('./fixtures/recorded/openai/chat/', import.meta.url);
  const lines = readFileSync(new URL('openai-text.chunks.txt', dir), 'utf8').split('\n').filter((l) => l.trim() !== '');
  const text = lines.map((l) => JSON.parse(l).choices[0]?.delta?.content ?? '').join('');
  const whole = readFileSync(new URL('openai-text.json', dir), 'utf8');
  return { lines, text, whole };
}

/** A loopback server replaying the recorded OpenAI traffic (streamed or whole). */
export async function replayServer(t) {
  const rec = await recordedStream();
  const sse = rec.lines.map((l) => `data: ${l}\n\n`).join('') + 'data: [DONE]\n\n';
  const s = await openaiServer(t, (body) =>
    body?.stream === true
      ? { raw: sse, headers: { 'content-type': 'text/event-stream' } }
      : { raw: rec.whole, headers: { 'content-type': 'application/json' } },
  );
  return { ...s, text: rec.text, whole: JSON.parse(rec.whole) };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}
