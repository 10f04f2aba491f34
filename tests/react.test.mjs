// @miyabi/react without a browser: its chat state (what `useChat` renders) against an agent route
// with `agentChatResponse` (streamed text, a tool needing approval, resume into the same message),
// the protocol fold, and its run and approval clients against `engine.serve()` over loopback HTTP.
// The hooks themselves are driven in Chromium by tests/next.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import { Agent, Engine, agentChatResponse, approvalGate, memoryApprovalStore, model, tool, workflow } from '@miyabi/core';
import { ChatController, RunController, foldChunk, foldStart, readUIChunks } from '../packages/react/dist/esm/index.js';
import { openaiServer, chunk, tempDir, textStream } from './helpers.mjs';

const chat = (url) => model('openai/gpt-4o', { baseURL: url, apiKey: 'test-key', protocol: 'openai-chat', maxRetries: 0 });

function toolCallStream(id, name, args) {
  return [
    chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: JSON.stringify(args) } }] }),
    chunk({}, 'tool_calls'),
  ];
}

/** Resolves once `controller` is idle (the controller may send a follow-up by itself). */
function idle(controller) {
  return new Promise((resolve) => {
    const check = () => {
      const s = controller.getSnapshot().status;
      if (s === 'ready' || s === 'error') {
        unsubscribe();
        resolve();
      }
    };
    const unsubscribe = controller.subscribe(check);
    check();
  });
}

test('useChat state: streamed text, an approval request, approving resumes the same message', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { sse: toolCallStream('call_r', 'refund', { order: 'A-1' }) } : { sse: textStream(['Refunded ', body.messages.at(-1).content]) },
  );
  const refunds = [];
  const refund = tool({
    description: 'Refunds an order',
    parameters: z.object({ order: z.string() }),
    requiresApproval: true,
    execute: ({ order }) => {
      refunds.push(order);
      return `order ${order}`;
    },
  });
  const agent = new Agent({ name: 'support', model: chat(s.url), tools: { refund } });
  const approvals = memoryApprovalStore();
  const fetch = async (url, init) => agentChatResponse(agent, new Request(new URL(url, 'http://127.0.0.1'), init), { approvals });
  const c = new ChatController({ api: '/api/chat', fetch });
  const seen = [];
  c.subscribe(() => seen.push(c.getSnapshot().status));
  await c.sendMessage('Refund order A-1');
  await idle(c);
  let snap = c.getSnapshot();
  assert.equal(snap.status, 'ready', String(snap.error));
  assert.ok(seen.includes('streaming'));
  const waiting = snap.messages.at(-1).parts.find((p) => p.type === 'dynamic-tool');
  assert.equal(waiting.state, 'approval-requested');
  assert.deepEqual(waiting.input, { order: 'A-1' });
  assert.deepEqual(refunds, []);

  await c.addToolApprovalResponse({ id: waiting.approval.id, approved: true });
  await idle(c);
  snap = c.getSnapshot();
  assert.equal(snap.status, 'ready', String(snap.error));
  assert.deepEqual(refunds, ['A-1']);
  assert.equal(snap.messages.length, 2);
  const parts = snap.messages[1].parts.filter((p) => p.type !== 'step-start');
  assert.deepEqual(
    parts.map((p) => [p.type, p.state]),
    [
      ['dynamic-tool', 'output-available'],
      ['text', 'done'],
    ],
  );
  assert.equal(parts[1].text, 'Refunded order A-1');
});

test('useChat state: an error answer becomes the error status with the route message', async () => {
  const c = new ChatController({ fetch: async () => Response.json({ error: { message: 'no such agent' } }, { status: 404 }) });
  await c.sendMessage('hi');
  const snap = c.getSnapshot();
  assert.equal(snap.status, 'error');
  assert.match(snap.error.message, /404: no such agent/);
});

test('the protocol fold: text, partial tool input, data parts replaced by id, finish closes text', async () => {
  const sse = [
    { type: 'start', messageId: 'm1' },
    { type: 'start-step' },
    { type: 'tool-input-start', toolCallId: 'c', toolName: 'search', dynamic: true },
    { type: 'tool-input-delta', toolCallId: 'c', inputTextDelta: '{"q":' },
    { type: 'tool-input-delta', toolCallId: 'c', inputTextDelta: '"miyabi"}' },
    { type: 'tool-input-available', toolCallId: 'c', toolName: 'search', input: { q: 'miyabi' }, dynamic: true },
    { type: 'data-progress', id: 'p', data: { pct: 10 } },
    { type: 'data-progress', id: 'p', data: { pct: 90 } },
    { type: 'text-start', id: 't' },
    { type: 'text-delta', id: 't', delta: 'Hel' },
    { type: 'text-delta', id: 't', delta: 'lo' },
    { type: 'finish' },
  ]
    .map((c) => `data: ${JSON.stringify(c)}\n\n`)
    .join('');
  // Split the body at awkward places: events must be reassembled across reads.
  const bytes = new TextEncoder().encode(sse + 'data: [DONE]\n\n');
  const body = new ReadableStream({
    start(ctl) {
      for (let i = 0; i < bytes.length; i += 7) ctl.enqueue(bytes.slice(i, i + 7));
      ctl.close();
    },
  });
  let s = foldStart({ id: 'x', role: 'assistant', parts: [] });
  const inputs = [];
  for await (const c of readUIChunks(body)) {
    s = foldChunk(s, c);
    const tool = s.message.parts.find((p) => p.type === 'dynamic-tool');
    if (tool?.input !== undefined) inputs.push(JSON.stringify(tool.input));
  }
  assert.equal(s.message.id, 'm1');
  assert.ok(s.finished);
  assert.deepEqual(
    s.message.parts.map((p) => p.type),
    ['step-start', 'dynamic-tool', 'data-progress', 'text'],
  );
  assert.deepEqual(s.message.parts[2].data, { pct: 90 });
  assert.equal(s.message.parts[3].text, 'Hello');
  assert.equal(s.message.parts[3].state, 'done');
  assert.equal(inputs[0], '{"q":"miyabi"}');
});

test('the run client follows a run over the HTTP API live through a gate to its end', async (t) => {
  const wf = workflow('react-ship')
    .step('build', ({ input }) => ({ patch: `fix ${input.issue}` }))
    .awaitApproval('review', approvalGate({ approvers: ['alice'], title: 'Ship it?' }))
    .then('deploy', ({ input }) => ({ deployed: input.approved }))
    .commit();
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, workflows: [wf] });
  const server = await engine.serve({ port: 0, tokens: [{ token: 'tok-alice-0123456789', id: 'alice' }] });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  const headers = { authorization: 'Bearer tok-alice-0123456789' };
  const started = await fetch(`${server.url}/api/workflows/react-ship/runs`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ input: { issue: '#1' } }),
  });
  const { id } = await started.json();
  const rc = new RunController(id, { baseUrl: `${server.url}/api`, headers, refreshMs: 20 });
  t.after(() => rc.close());
  const following = rc.start();
  // Wait (on the controller's own notifications) for the gate, then decide it over the API.
  await new Promise((resolve) => {
    const un = rc.subscribe(() => {
      if (rc.getSnapshot().events.some((e) => e.type === 'run-suspended')) {
        un();
        resolve();
      }
    });
  });
  const inbox = await (await fetch(`${server.url}/api/approvals`, { headers })).json();
  assert.equal(inbox.approvals[0].title, 'Ship it?');
  const d = await fetch(`${server.url}/api/approvals/${id}/review/decision`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ action: 'approve' }),
  });
  assert.equal(d.status, 200);
  await following;
  const snap = rc.getSnapshot();
  assert.equal(snap.run.status, 'succeeded', snap.run.error);
  assert.deepEqual(snap.run.output, { deployed: true });
  assert.deepEqual(
    snap.steps.map((s) => [s.path, s.status]).sort(),
    [
      ['build', 'succeeded'],
      ['deploy', 'succeeded'],
      ['review', 'succeeded'],
    ],
  );
  const types = snap.events.map((e) => e.type);
  assert.equal(types[0], 'run-started');
  assert.equal(types.at(-1), 'run-finished');
  // Every event exactly once, in order, across the reconnect after the suspension.
  const seqs = snap.events.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
});
