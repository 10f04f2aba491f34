// MCP both ways from TypeScript with the official SDK: an agent uses server-everything's tools
// (spawned over stdio) through `mcpTools`, and `createMcpServer` serves an engine's workflows,
// agents, approval inbox and runs to an SDK client (in-memory transport pair).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Agent, Engine, approvalGate, createMcpServer, mcpTools, model, workflow } from '@miyabi/core';
import { completion, openaiServer, tempDir } from './helpers.mjs';

const root = new URL('..', import.meta.url).pathname;
const everything = join(root, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

test("an agent calls server-everything's tools over stdio through mcpTools", async (t) => {
  assert.ok(existsSync(everything), 'npm ci installs @modelcontextprotocol/server-everything');
  const client = new Client({ name: 'miyabi-test', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [everything, 'stdio'], stderr: 'ignore' }));
  t.after(() => client.close());
  const tools = await mcpTools(client, { prefix: 'everything' });
  assert.ok(tools['everything_get-sum'], Object.keys(tools).join(','));
  assert.equal(tools['everything_get-sum'].requiresApproval, false, 'get-sum is read-only');
  assert.equal(tools['everything_echo'].parameters['~standard'].jsonSchema.input().properties.message.type, 'string');
  const destructive = Object.entries(tools).filter(([, x]) => x.requiresApproval);
  assert.ok(destructive.length > 0, 'tools not marked read-only need approval by default');
  const none = await mcpTools(client, { prefix: '', approval: 'none', include: ['echo'] });
  assert.deepEqual(Object.keys(none), ['echo']);

  const s = await openaiServer(t, (body, i) =>
    i === 0
      ? { json: completion({ calls: [{ id: 'c1', name: 'everything_get-sum', args: { a: 2, b: 40 } }, { id: 'c2', name: 'everything_echo', args: { message: 'hi' } }] }) }
      : { json: completion({ text: 'The sum is 42.' }) },
  );
  const agent = new Agent({
    name: 'helper',
    model: model('openai/gpt-4o', { baseURL: s.url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 }),
    tools: { 'everything_get-sum': tools['everything_get-sum'], everything_echo: tools['everything_echo'] },
  });
  const r = await agent.generate('add 2 and 40');
  assert.equal(r.text, 'The sum is 42.');
  const results = s.requests[1].body.messages.filter((m) => m.role === 'tool');
  assert.equal(results.length, 2);
  assert.match(results[0].content, /42/);
  assert.match(results[1].content, /hi/);

  // A tool error comes back to the model as the call's error, naming the server and tool.
  const bad = await tools['everything_get-sum'].execute({ a: 'x', b: 1 }, {}).then(
    () => 'no error',
    (e) => e.message,
  );
  assert.match(bad, /everything|get-sum|Invalid|invalid/);
});

test('createMcpServer: workflows, agents, approvals and runs for an SDK client', async (t) => {
  const greet = workflow('greet', { input: z.object({ name: z.string() }) })
    .step('hello', ({ input }) => `hello ${input.name}`)
    .commit();
  const release = workflow('release')
    .step('build', () => ({ version: '1.2.0' }))
    .awaitApproval('ship', approvalGate({ approvers: ['ops'], title: 'Ship 1.2.0?' }))
    .then('publish', ({ input }) => ({ published: input.approved }))
    .commit();
  const s = await openaiServer(t, () => ({ json: completion({ text: 'Bonjour.' }) }));
  const helper = new Agent({ name: 'helper', model: model('openai/gpt-4o', { baseURL: s.url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 }) });
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, workflows: [greet, release] });
  t.after(() => engine.close());
  const server = await createMcpServer(engine, { workflows: [greet, release], agents: [helper], approver: { id: 'ops' } });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(a);
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(b);
  t.after(() => client.close());

  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((x) => x.name).sort(), ['approvals_decide', 'approvals_list', 'ask_helper', 'run_greet', 'run_release']);
  const greetTool = tools.find((x) => x.name === 'run_greet');
  assert.equal(greetTool.inputSchema.properties.input.properties.name.type, 'string', 'the workflow input schema');

  const hello = await client.callTool({ name: 'run_greet', arguments: { input: { name: 'Ada' } } });
  assert.equal(hello.isError, undefined);
  assert.equal(hello.structuredContent.status, 'succeeded');
  assert.equal(hello.structuredContent.output, 'hello Ada');

  const invalid = await client.callTool({ name: 'run_greet', arguments: { input: { name: 3 } } });
  assert.equal(invalid.isError, true);
  assert.match(invalid.content[0].text, /name/);

  const asked = await client.callTool({ name: 'ask_helper', arguments: { prompt: 'Say hi in French' } });
  assert.equal(asked.structuredContent.text, 'Bonjour.');

  const waiting = await client.callTool({ name: 'run_release', arguments: {} });
  assert.equal(waiting.structuredContent.status, 'suspended');
  assert.equal(waiting.structuredContent.suspended[0].path, 'ship');
  const runId = waiting.structuredContent.runId;
  const inbox = await client.callTool({ name: 'approvals_list', arguments: {} });
  assert.deepEqual(
    inbox.structuredContent.approvals.map((x) => [x.runId, x.gate, x.title]),
    [[runId, 'ship', 'Ship 1.2.0?']],
  );
  const decided = await client.callTool({ name: 'approvals_decide', arguments: { runId, gate: 'ship', action: 'approve' } });
  assert.equal(decided.structuredContent.status, 'approved');
  const again = await client.callTool({ name: 'approvals_decide', arguments: { runId, gate: 'ship', action: 'approve' } });
  assert.equal(again.isError, true, 'a second decision is refused');

  // The run as a resource: the decision continued it in this engine.
  let run;
  for (let i = 0; i < 200; i++) {
    const res = await client.readResource({ uri: `miyabi://runs/${runId}` });
    run = JSON.parse(res.contents[0].text);
    if (run.status === 'succeeded') break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(run.status, 'succeeded');
  assert.deepEqual(run.output, { published: true });
  const listed = await client.listResources();
  assert.ok(listed.resources.some((r) => r.uri === `miyabi://runs/${runId}`));
  await assert.rejects(client.readResource({ uri: 'miyabi://runs/nope' }), /no run/);
  const unknown = await client.callTool({ name: 'nope', arguments: {} });
  assert.equal(unknown.isError, true);
});
