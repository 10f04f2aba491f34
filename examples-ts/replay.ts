// A loopback server that replays recorded OpenAI Chat Completions traffic (model
// gpt-4.1-nano-2025-04-14; files and attribution in tests/fixtures/recorded), so the examples
// run without an API key. It answers `POST .../chat/completions`: a streamed request gets the
// recorded stream (paced by `delayMs` per chunk), any other the recorded non-streamed body.
// It ignores what was asked: the recordings answer one fixed prompt (an invented holiday).
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The recorded model, as `provider/model`. */
export const RECORDED_MODEL = 'openai/gpt-4.1-nano';

/** Where the recordings are, found from this file upwards (it also runs compiled from .out/). */
export function recordings(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'tests', 'fixtures', 'recorded');
    if (existsSync(candidate)) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error('tests/fixtures/recorded not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** The recorded stream's file, relative to the repository root (to name it in messages). */
export const RECORDED_STREAM = 'tests/fixtures/recorded/openai/chat/openai-text.chunks.txt';

/** The folder of both recordings (streamed and whole answers), relative to the repository root. */
export const RECORDED_DIR = 'tests/fixtures/recorded/openai/chat/';

export interface Replay {
  /** Base URL to give the model (`.../v1`). */
  readonly url: string;
  /** Requests answered so far. */
  readonly requests: number;
  close(): void;
}

/** Starts the replay server on a free loopback port. */
export async function startReplay(options: { readonly delayMs?: number } = {}): Promise<Replay> {
  const dir = join(recordings(), 'openai', 'chat');
  const chunks = readFileSync(join(dir, 'openai-text.chunks.txt'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  const whole = readFileSync(join(dir, 'openai-text.json'));
  const delay = options.delayMs ?? 0;
  let requests = 0;
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (text += c));
    req.on('end', () => {
      if (req.method !== 'POST' || !(req.url ?? '').endsWith('/chat/completions')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `the replay serves POST /v1/chat/completions, not ${req.method} ${req.url}`, type: 'invalid_request_error' } }));
        return;
      }
      requests++;
      let stream = false;
      try {
        stream = (JSON.parse(text) as { stream?: boolean }).stream === true;
      } catch {
        // not JSON: answer as if not streamed
      }
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(whole);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      if (delay <= 0) {
        res.end(chunks.map((c) => `data: ${c}\n\n`).join('') + 'data: [DONE]\n\n');
        return;
      }
      let i = 0;
      const timer = setInterval(() => {
        if (i < chunks.length) {
          res.write(`data: ${chunks[i++]}\n\n`);
          return;
        }
        clearInterval(timer);
        res.end('data: [DONE]\n\n');
      }, delay);
      res.on('close', () => clearInterval(timer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    get requests() {
      return requests;
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
