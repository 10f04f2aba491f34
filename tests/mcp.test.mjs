// Miyabi served over MCP, called by the official TypeScript SDK client (@modelcontextprotocol/sdk)
// over stdio and over Streamable HTTP: initialize, list tools, call a workflow tool to completion
// (with progress), read the run as a resource, and decide an approval a workflow waits for.
// The server is the `mcp_demo` example of the miyabi-mcp crate (workflows `greet` and
// `release`), built by `cargo test` (or here, with `cargo build`, when it is missing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { tempDir } from './helpers.mjs';

const root = new URL('..', import.meta.url).pathname;
const exe = join(root, 'target', 'debug', 'examples', process.platform === 'win32' ? 'mcp_demo.exe' : 'mcp_demo');

/** The demo server's binary, built if needed; `null` (with the reason) when it cannot be. */
function demoBinary() {
  if (existsSync(exe)) return { exe };
  const r = spawnSync('cargo', ['build', '-p', 'miyabi-mcp', '--example', 'mcp_demo'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (r.error) return { skip: `cargo is not available to build the mcp_demo example: ${r.error.message}` };
  if (r.status !== 0) throw new Error('cargo build -p miyabi-mcp --example mcp_demo failed');
  return { exe };
}

const structured = (result) => {
  assert.ok(result.structuredContent, JSON.stringify(result));
  return result.structuredContent;
};

/**
 * Records every message the client receives, in order, at the transport (the SDK hands
 * notifications to their handlers asynchronously: a burst of progress notifications right
 * before the result may reach `onprogress` after the call has settled).
 */
function recordMessages(transport) {
  const seen = [];
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    seen.push(message);
    deliver(message, extra);
  };
  return seen;
}

/** The checks both transports share. */
async function exercise(client, { decideAs, received }) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name);
  for (const t of ['run_greet', 'run_release', 'approvals_list', 'approvals_decide']) {
    assert.ok(names.includes(t), `${t} in ${names}`);
  }
  const greet = tools.find((t) => t.name === 'run_greet');
  assert.deepEqual(greet.inputSchema.required, ['name'], 'the workflow input schema');

  // A workflow tool to completion, with a progress notification per step before the result.
  const from = received.length;
  const done = await client.callTool(
    { name: 'run_greet', arguments: { name: 'Ada' } },
    undefined,
    { onprogress: () => {} },
  );
  const run = structured(done);
  assert.equal(run.status, 'succeeded');
  assert.equal(run.output, 'Hello, Ada!');
  const mine = received.slice(from);
  const resultAt = mine.findIndex((m) => m.result?.structuredContent?.runId === run.runId);
  const progress = mine.slice(0, resultAt).filter((m) => m.method === 'notifications/progress');
  assert.deepEqual(progress.map((m) => m.params.progress), [1, 2, 3]);
  assert.equal(progress[2].params.message, 'step `name` finished');

  // The run as a resource.
  const { contents } = await client.readResource({ uri: `miyabi://runs/${run.runId}` });
  const record = JSON.parse(contents[0].text);
  assert.equal(record.status, 'succeeded');
  assert.equal(record.output, 'Hello, Ada!');
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.ok(resourceTemplates.some((t) => t.uriTemplate === 'miyabi://runs/{id}'));

  // A run that waits for an approval, decided over MCP.
  const waiting = structured(await client.callTool({ name: 'run_release', arguments: { version: '3.1.0' } }));
  assert.equal(waiting.status, 'suspended');
  assert.equal(waiting.waitingFor[0].kind, 'approval');
  assert.equal(waiting.waitingFor[0].path, 'review');
  const inbox = structured(await client.callTool({ name: 'approvals_list', arguments: { run: waiting.runId } }));
  assert.equal(inbox.approvals.length, 1, JSON.stringify(inbox));
  assert.equal(inbox.approvals[0].gate, 'review');
  const decided = await client.callTool({
    name: 'approvals_decide',
    arguments: { run: waiting.runId, gate: 'review', action: 'approve', comment: `approved by ${decideAs}` },
  });
  assert.notEqual(decided.isError, true, JSON.stringify(decided));
  assert.equal(structured(decided).approval.status, 'approved');
  // Deciding twice is refused with the HTTP API's conflict.
  const again = await client.callTool({
    name: 'approvals_decide',
    arguments: { run: waiting.runId, gate: 'review', action: 'approve' },
  });
  assert.equal(again.isError, true);
  assert.equal(structured(again).error.code, 'CONFLICT');
  return waiting.runId;
}

/** Reads the run resource until the run left `suspended` (the decision resumes it). */
async function settled(client, id) {
  for (;;) {
    const { contents } = await client.readResource({ uri: `miyabi://runs/${id}` });
    const run = JSON.parse(contents[0].text);
    if (run.status !== 'suspended' && run.status !== 'running') return run;
    // The run is resumed by the decision in the server process; ask again after its next turn.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('the TypeScript SDK client drives miyabi over stdio', async (t) => {
  const bin = demoBinary();
  if (bin.skip) return t.skip(bin.skip);
  const db = join(tempDir(t), 'runs.db');
  const transport = new StdioClientTransport({
    command: bin.exe,
    args: ['--db', db, '--as', 'alice'],
    stderr: 'inherit',
  });
  const client = new Client({ name: 'miyabi-test', version: '1.0.0' });
  await client.connect(transport);
  const received = recordMessages(transport);
  t.after(() => client.close());
  assert.equal(client.getServerVersion().name, 'miyabi');
  const id = await exercise(client, { decideAs: 'alice', received });
  const run = await settled(client, id);
  assert.equal(run.status, 'succeeded', JSON.stringify(run));
});

test('the TypeScript SDK client drives miyabi over Streamable HTTP, under bearer auth', async (t) => {
  const bin = demoBinary();
  if (bin.skip) return t.skip(bin.skip);
  const db = join(tempDir(t), 'runs.db');
  const token = 'alice-secret-0123456789';
  const child = spawn(bin.exe, ['--db', db, '--http', '127.0.0.1:0'], {
    env: { ...process.env, MIYABI_TOKENS: `alice=${token}` },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => child.kill('SIGINT'));
  // The server says where it listens on stderr.
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      const m = /MCP endpoint at (\S+)/.exec(line);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`mcp_demo exited with ${code}`)));
  });

  // Without the token: refused.
  const anonymous = new Client({ name: 'anonymous', version: '1.0.0' });
  await assert.rejects(anonymous.connect(new StreamableHTTPClientTransport(new URL(url))));

  const client = new Client({ name: 'miyabi-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  const received = recordMessages(transport);
  t.after(() => client.close());
  const id = await exercise(client, { decideAs: 'alice', received });
  const run = await settled(client, id);
  assert.equal(run.status, 'succeeded', JSON.stringify(run));
});
