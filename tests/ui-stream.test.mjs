// The AI SDK's UI message stream protocol from a Miyabi agent: the chunks are checked against the
// AI SDK's own schema, and the AI SDK's own chat client (`AbstractChat` with `DefaultChatTransport`,
// what `useChat` from @ai-sdk/react runs on) talks to `agentChatResponse` unchanged: streamed text,
// tool calls and results, a tool needing approval (approved, refused, answered twice), errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { AbstractChat, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses, uiMessageChunkSchema } from 'ai';
import { parseJsonEventStream } from '@ai-sdk/provider-utils';
import { Agent, agentChatResponse, fromUIMessages, memoryApprovalStore, model, tool } from '@miyabi/core';
import { openaiServer, chunk, textStream } from './helpers.mjs';

const chat = (url) => model('openai/gpt-4o', { baseURL: url, apiKey: 'sk-secret-test-key', protocol: 'openai-chat', maxRetries: 0 });

/** A streamed tool call, split over two argument deltas. */
function toolCallStream(id, name, args) {
  const json = JSON.stringify(args);
  const half = Math.floor(json.length / 2);
  return [
    chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id, type: 'function', function: { name, arguments: '' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: json.slice(0, half) } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: json.slice(half) } }] }),
    chunk({}, 'tool_calls'),
  ];
}

/** The minimal chat state the AI SDK's framework bindings provide (React, Vue, Svelte). */
class PlainState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (m) => {
    this.messages = [...this.messages, m];
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (i, m) => {
    this.messages = this.messages.map((x, j) => (j === i ? m : x));
  };
  snapshot = (x) => structuredClone(x);
}

class PlainChat extends AbstractChat {
  constructor(init) {
    const state = new PlainState();
    super({ ...init, state });
    this.plain = state;
  }
}

/** An AI SDK chat whose requests go to `handler` (a route handler) through a recording fetch. */
function aiSdkChat(handler, extra = {}) {
  const bodies = [];
  const chunks = [];
  const fetch = async (url, init) => {
    bodies.push(JSON.parse(init.body));
    const res = await handler(new Request(new URL(url, 'http://127.0.0.1/'), init));
    if (res.headers.get('x-vercel-ai-ui-message-stream') !== 'v1') return res;
    // Keep a copy of every chunk, validated by the AI SDK's own schema.
    const [a, b] = res.body.tee();
    void (async () => {
      const reader = parseJsonEventStream({ stream: b, schema: uiMessageChunkSchema }).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!value.success) throw new Error(`a chunk the AI SDK rejects: ${JSON.stringify(value.rawValue)}: ${value.error}`);
        chunks.push(value.value);
      }
    })();
    return new Response(a, { status: res.status, headers: res.headers });
  };
  const c = new PlainChat({ transport: new DefaultChatTransport({ api: '/api/chat', fetch }), ...extra });
  return { chat: c, bodies, chunks };
}

/** Waits until the chat is idle again (the AI SDK may send a follow-up request by itself). */
async function settled(c) {
  for (let i = 0; i < 500 && (c.status === 'submitted' || c.status === 'streaming'); i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
}

const adder = tool({
  description: 'Adds two numbers',
  parameters: z.object({ a: z.number(), b: z.number() }),
  execute: ({ a, b }) => a + b,
});

test('streamed text and a tool call reach the AI SDK chat client as its parts, in schema-valid chunks', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { sse: toolCallStream('call_1', 'add', { a: 1, b: 2 }) } : { sse: textStream(['The sum ', 'is ', `${body.messages.at(-1).content}.`]) },
  );
  const agent = new Agent({ name: 'calc', model: chat(s.url), tools: { add: adder } });
  const { chat: c, chunks } = aiSdkChat((req) => agentChatResponse(agent, req));
  await c.sendMessage({ text: 'What is 1 + 2?' });
  await settled(c);
  assert.equal(c.status, 'ready', String(c.error));
  const answer = c.messages.at(-1);
  assert.equal(answer.role, 'assistant');
  const parts = answer.parts.filter((p) => p.type !== 'step-start');
  assert.deepEqual(
    parts.map((p) => [p.type, p.state]),
    [
      ['dynamic-tool', 'output-available'],
      ['text', 'done'],
    ],
  );
  assert.equal(parts[0].toolName, 'add');
  assert.deepEqual(parts[0].input, { a: 1, b: 2 });
  assert.equal(parts[0].output, 3);
  assert.equal(parts[1].text, 'The sum is 3.');
  assert.equal(answer.parts.filter((p) => p.type === 'step-start').length, 2);
  // The model saw the user's text.
  assert.equal(s.requests[0].body.messages.at(-1).content, 'What is 1 + 2?');
  const types = chunks.map((x) => x.type);
  assert.equal(types[0], 'start');
  assert.equal(types.at(-1), 'finish');
  for (const k of ['tool-input-available', 'tool-output-available', 'text-start', 'text-delta', 'text-end']) {
    assert.ok(types.includes(k), `a ${k} chunk in ${types.join(',')}`);
  }
  // Text deltas are forwarded as they come, not joined.
  assert.equal(chunks.filter((x) => x.type === 'text-delta').length, 3);
});

test('a follow-up turn sends the earlier tool round back to the model as a call and its result', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { sse: toolCallStream('call_1', 'add', { a: 2, b: 2 }) } : { sse: textStream([`got ${body.messages.length} messages`]) },
  );
  const agent = new Agent({ name: 'calc', model: chat(s.url), tools: { add: adder } });
  const { chat: c } = aiSdkChat((req) => agentChatResponse(agent, req));
  await c.sendMessage({ text: 'What is 2 + 2?' });
  await settled(c);
  await c.sendMessage({ text: 'And again?' });
  await settled(c);
  assert.equal(c.status, 'ready', String(c.error));
  const last = s.requests.at(-1).body.messages;
  assert.deepEqual(
    last.map((m) => m.role),
    ['user', 'assistant', 'tool', 'assistant', 'user'],
  );
  assert.equal(last[1].tool_calls[0].function.name, 'add');
  assert.equal(last[2].content, '4');
  assert.equal(last[2].tool_call_id, 'call_1');
});

test('a tool needing approval: the request shows in the chat, approving resumes the same message, a second answer is refused', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { sse: toolCallStream('call_d', 'deploy', { version: 'v2' }) } : { sse: textStream([`Done: ${body.messages.at(-1).content}`]) },
  );
  const deployed = [];
  const deploy = tool({
    description: 'Deploys a version',
    parameters: z.object({ version: z.string() }),
    requiresApproval: true,
    execute: ({ version }) => {
      deployed.push(version);
      return `deployed ${version}`;
    },
  });
  const agent = new Agent({ name: 'ops', model: chat(s.url), tools: { deploy } });
  const approvals = memoryApprovalStore();
  const handler = (req) => agentChatResponse(agent, req, { approvals });
  const { chat: c, bodies } = aiSdkChat(handler, { sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses });
  await c.sendMessage({ text: 'Ship v2' });
  await settled(c);
  const waiting = c.messages.at(-1).parts.find((p) => p.type === 'dynamic-tool');
  assert.equal(waiting.state, 'approval-requested');
  assert.deepEqual(waiting.input, { version: 'v2' });
  assert.deepEqual(deployed, []);

  await c.addToolApprovalResponse({ id: waiting.approval.id, approved: true });
  await settled(c);
  assert.equal(c.status, 'ready', String(c.error));
  assert.deepEqual(deployed, ['v2']);
  assert.equal(c.messages.length, 2, 'the answer continues the same assistant message');
  const parts = c.messages.at(-1).parts.filter((p) => p.type !== 'step-start');
  assert.deepEqual(
    parts.map((p) => [p.type, p.state]),
    [
      ['dynamic-tool', 'output-available'],
      ['text', 'done'],
    ],
  );
  assert.equal(parts[0].output, 'deployed v2');
  assert.equal(parts[1].text, 'Done: deployed v2');
  assert.equal(s.requests.length, 2);

  // The same answer sent again (a double click, a replayed request) runs nothing a second time.
  const again = await handler(new Request('http://127.0.0.1/api/chat', { method: 'POST', body: JSON.stringify(bodies.at(-1)) }));
  assert.equal(again.status, 409);
  assert.match((await again.json()).error.message, /unknown or was already answered/);
  assert.deepEqual(deployed, ['v2']);
});

test('a refused tool call is output-denied and the model is told why', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { sse: toolCallStream('call_x', 'wipe', {}) } : { sse: textStream(['Understood, not wiping.']) },
  );
  const wiped = [];
  const wipe = tool({ description: 'Wipes the disk', parameters: z.object({}), requiresApproval: true, execute: () => wiped.push(1) });
  const agent = new Agent({ name: 'ops', model: chat(s.url), tools: { wipe } });
  const approvals = memoryApprovalStore();
  const { chat: c, chunks } = aiSdkChat((req) => agentChatResponse(agent, req, { approvals }), {
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  await c.sendMessage({ text: 'wipe it' });
  await settled(c);
  const waiting = c.messages.at(-1).parts.find((p) => p.type === 'dynamic-tool');
  await c.addToolApprovalResponse({ id: waiting.approval.id, approved: false, reason: 'not today' });
  await settled(c);
  assert.deepEqual(wiped, []);
  const parts = c.messages.at(-1).parts.filter((p) => p.type !== 'step-start');
  assert.equal(parts[0].state, 'output-denied');
  assert.ok(chunks.some((x) => x.type === 'tool-output-denied'));
  assert.equal(parts.at(-1).text, 'Understood, not wiping.');
  const toolMsg = s.requests[1].body.messages.at(-1);
  assert.equal(toolMsg.role, 'tool');
  assert.match(toolMsg.content, /not today/);
});

test("a provider error becomes an error chunk with the provider's message and never the key", async (t) => {
  const s = await openaiServer(t, () => ({ status: 401, json: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } } }));
  const agent = new Agent({ name: 'calc', model: chat(s.url) });
  const { chat: c, chunks } = aiSdkChat((req) => agentChatResponse(agent, req));
  await c.sendMessage({ text: 'hi' });
  await settled(c);
  assert.equal(c.status, 'error');
  assert.match(c.error.message, /401/);
  assert.match(c.error.message, /Incorrect API key provided/);
  const err = chunks.find((x) => x.type === 'error');
  assert.ok(err);
  assert.doesNotMatch(JSON.stringify(chunks), /sk-secret-test-key/);
});

test('bad request bodies get 400 naming what was wrong', async () => {
  const agent = new Agent({ name: 'calc', model: 'openai/gpt-4o' });
  const notJson = await agentChatResponse(agent, new Request('http://x/', { method: 'POST', body: '{' }));
  assert.equal(notJson.status, 400);
  assert.match((await notJson.json()).error.message, /not JSON/);
  const noParts = await agentChatResponse(agent, new Request('http://x/', { method: 'POST', body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) }));
  assert.equal(noParts.status, 400);
  assert.match((await noParts.json()).error.message, /`messages` must be an array of UI messages/);
});

test('fromUIMessages keeps text, turns finished tool parts into calls and results, and leaves pending ones out', () => {
  const out = fromUIMessages([
    { role: 'user', parts: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
    {
      role: 'assistant',
      parts: [
        { type: 'step-start' },
        { type: 'tool-add', toolCallId: 'c1', state: 'output-available', input: { a: 1 }, output: 2 },
        { type: 'step-start' },
        { type: 'text', text: 'two' },
        { type: 'dynamic-tool', toolName: 'deploy', toolCallId: 'c2', state: 'approval-requested', input: {}, approval: { id: 'x' } },
      ],
    },
  ]);
  assert.deepEqual(out, [
    { role: 'user', content: 'ab' },
    { role: 'assistant', content: [{ type: 'tool_call', id: 'c1', name: 'add', arguments: { a: 1 } }] },
    { role: 'tool', content: [{ type: 'tool_result', call_id: 'c1', name: 'add', content: 2, is_error: false }] },
    { role: 'assistant', content: [{ type: 'text', text: 'two' }] },
  ]);
});
