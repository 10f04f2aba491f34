// Agents from JS over a loopback OpenAI-compatible server: JS tools with zod parameters called
// from the native tool loop (two tool rounds), streaming with tool parts, tool errors going back
// to the model, structured output, memory, and an agent as a step of a JS-driven workflow on
// SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import { Agent, Engine, Memory, ProviderError, model, tool, workflow } from '@miyabi/core';
import { openaiServer, completion, chunk, tempDir } from './helpers.mjs';

const chat = (url) => model('openai/gpt-4o', { baseURL: url, apiKey: 'test-key', protocol: 'openai-chat', maxRetries: 0 });

/** A scripted model: turn 0 adds 1+2, turn 1 adds the result and 4, turn 2 answers. */
function adder(body, i) {
  const last = body.messages.at(-1);
  if (i === 0) return { json: completion({ calls: [{ id: 'call_a', name: 'add', args: { a: 1, b: 2 } }] }) };
  if (i === 1) {
    assert.equal(last.role, 'tool');
    return { json: completion({ calls: [{ id: 'call_b', name: 'add', args: { a: Number(last.content), b: 4 } }] }) };
  }
  return { json: completion({ text: `The sum is ${last.content}.` }) };
}

test('an agent calls a JS tool in two rounds and answers', async (t) => {
  const s = await openaiServer(t, adder);
  const calls = [];
  const add = tool({
    description: 'Adds two numbers',
    parameters: z.object({ a: z.number(), b: z.number() }),
    execute: async ({ a, b }, ctx) => {
      calls.push({ a, b, id: ctx.toolCallId, agent: ctx.agent });
      await new Promise((r) => setTimeout(r, 5));
      return a + b;
    },
  });
  const agent = new Agent({ name: 'calc', model: chat(s.url), instructions: 'Use the tool.', tools: { add }, maxSteps: 5 });
  const r = await agent.generate('What is 1 + 2 + 4?');
  assert.equal(r.text, 'The sum is 7.');
  assert.equal(r.stopReason, 'done');
  assert.equal(r.steps.length, 3);
  assert.deepEqual(calls, [
    { a: 1, b: 2, id: 'call_a', agent: 'calc' },
    { a: 3, b: 4, id: 'call_b', agent: 'calc' },
  ]);
  assert.deepEqual(
    r.toolResults.map((x) => [x.toolName, x.output, x.isError]),
    [
      ['add', 3, false],
      ['add', 7, false],
    ],
  );
  assert.equal(r.usage.inputTokens, 33);
  const req = s.requests[0].body;
  assert.equal(req.messages[0].role, 'system');
  assert.equal(req.tools[0].function.name, 'add');
  assert.deepEqual(req.tools[0].function.parameters.required, ['a', 'b']);
});

test('a throwing tool gives its error to the model, and the loop goes on', async (t) => {
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'c1', name: 'fail', args: {} }] }) };
    return { json: completion({ text: `saw: ${body.messages.at(-1).content}` }) };
  });
  const fail = tool({ parameters: z.object({}), execute: () => { throw new Error('disk on fire'); } });
  const r = await new Agent({ name: 'a', model: chat(s.url), tools: { fail } }).generate('go');
  assert.match(r.text, /disk on fire/);
  assert.equal(r.toolResults[0].isError, true);
});

test('agent.stream yields steps, text deltas, tool calls and results', async (t) => {
  let turn = 0;
  const s = await openaiServer(t, (body) => {
    assert.equal(body.stream, true);
    if (turn++ === 0) {
      return {
        sse: [
          chunk({ role: 'assistant', tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'echo', arguments: '{"s":"hi"}' } }] }),
          chunk({}, 'tool_calls'),
        ],
      };
    }
    return { sse: [chunk({ role: 'assistant', content: 'Echoed ' }), chunk({ content: 'hi' }), chunk({}, 'stop')] };
  });
  const echo = tool({ parameters: z.object({ s: z.string() }), execute: ({ s }) => s.toUpperCase() });
  const r = new Agent({ name: 'e', model: chat(s.url), tools: { echo } }).stream({ prompt: 'echo hi' });
  const parts = [];
  for await (const p of r.fullStream) parts.push(p);
  assert.deepEqual(
    parts.map((p) => p.type),
    ['start-step', 'tool-call', 'tool-result', 'finish-step', 'start-step', 'text-delta', 'text-delta', 'finish-step', 'finish'],
  );
  assert.deepEqual(parts[2], { type: 'tool-result', toolCallId: 'call_1', toolName: 'echo', output: 'HI', isError: false });
  assert.equal(await r.text, 'Echoed hi');
  assert.equal((await r.steps).length, 2);
  const deltas = [];
  for await (const d of r.textStream) deltas.push(d);
  assert.deepEqual(deltas, ['Echoed ', 'hi']);
});

test('structured output is parsed with the zod schema; provider errors reject generate', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { json: completion({ text: '```json\n{"quality": 0.9, "plan": "fix it"}\n```' }) } : { status: 401, json: { error: { message: 'Incorrect API key provided' } } },
  );
  const Analysis = z.object({ quality: z.number(), plan: z.string() });
  const agent = new Agent({ name: 'analyst', model: chat(s.url), output: Analysis });
  const r = await agent.generate('analyze');
  assert.deepEqual(r.object, { quality: 0.9, plan: 'fix it' });
  await assert.rejects(agent.generate('again'), (e) => e instanceof ProviderError && e.status === 401 && e.kind === 'auth' && /Incorrect API key/.test(e.providerMessage));
});

test('working memory: set, get, merge, delete, TTL', async (t) => {
  const memory = Memory.open(`sqlite:${join(tempDir(t), 'memory.db')}`);
  const user = memory.resource('user-42');
  assert.equal(await user.get('lang'), undefined);
  await user.set('lang', 'ja');
  assert.equal(await user.get('lang'), 'ja');
  assert.deepEqual(await user.merge('prefs', { theme: 'dark', size: 2 }), { theme: 'dark', size: 2 });
  assert.deepEqual(await user.merge('prefs', { size: null }), { theme: 'dark' });
  await user.set('otp', '1234', { ttlMs: 30 });
  assert.deepEqual(Object.keys(await user.all()).sort(), ['lang', 'otp', 'prefs']);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(await user.get('otp'), undefined);
  assert.equal(await user.delete('lang'), true);
  assert.equal(await user.delete('lang'), false);
  assert.equal(await memory.thread('t1').get('x'), undefined);
});

test('an agent is a step of a JS-driven workflow on SQLite, its tools see the run', async (t) => {
  const s = await openaiServer(t, adder);
  const seen = [];
  const add = tool({
    parameters: z.object({ a: z.number(), b: z.number() }),
    execute: ({ a, b }, ctx) => {
      seen.push({ runId: ctx.runId, path: ctx.path, key: ctx.idempotencyKey });
      return a + b;
    },
  });
  const agent = new Agent({ name: 'calc', model: chat(s.url), tools: { add } });
  const wf = workflow('agent-step', { input: z.object({ question: z.string() }) })
    .step('prepare', ({ input }) => ({ prompt: input.question }))
    .then('solve', agent)
    .then('report', ({ input }) => ({ answer: input, length: input.length }))
    .commit();
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  const run = await engine.start(wf, { question: 'What is 1 + 2 + 4?' });
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output, { answer: 'The sum is 7.', length: 13 });
  assert.equal(seen.length, 2);
  assert.equal(seen[0].runId, run.id);
  assert.equal(seen[0].path, 'solve');
  assert.equal(seen[0].key, `${run.id}:solve:call_a`);
  const events = [];
  for await (const e of run.events()) events.push(e);
  assert.deepEqual(
    events.filter((e) => e.type === 'step-output').map((e) => e.path),
    ['prepare', 'solve', 'report'],
  );
  assert.equal(events.filter((e) => e.type === 'custom' && e.name === 'agent-turn' && e.path === 'solve').length, 3);
});

test('an agent step whose provider fails fails the run with the provider message', async (t) => {
  const s = await openaiServer(t, () => ({ status: 400, json: { error: { message: 'Invalid model parameters', type: 'invalid_request_error' } } }));
  const agent = new Agent({ name: 'broken', model: chat(s.url) });
  const wf = workflow('agent-fail').step('ask', agent).commit();
  const engine = await Engine.open();
  const run = await engine.start(wf, 'hello');
  assert.equal(run.status, 'failed');
  assert.match(run.error, /Invalid model parameters/);
});

test('a tool that needs approval suspends the workflow run; resuming runs it and the agent answers', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0
      ? { json: completion({ calls: [{ id: 'call_d', name: 'deploy', args: { version: 'v2' } }] }) }
      : { json: completion({ text: `deployed: ${body.messages.at(-1).content}` }) },
  );
  const deployed = [];
  const deploy = tool({
    description: 'Deploys a version',
    parameters: z.object({ version: z.string() }),
    requiresApproval: true,
    execute: ({ version }) => {
      deployed.push(version);
      return `ok ${version}`;
    },
  });
  const agent = new Agent({ name: 'ops', model: chat(s.url), tools: { deploy } });
  const wf = workflow('approve-tool').step('ops', agent).commit();
  const db = `sqlite:${join(tempDir(t), 'runs.db')}`;
  const engine = await Engine.open({ store: db, workflows: [wf] });
  const run = await engine.start(wf, 'ship v2');
  assert.equal(run.status, 'suspended', run.error);
  assert.equal(run.suspended[0].path, 'ops');
  assert.equal(run.suspended[0].payload.kind, 'tool-approval');
  assert.equal(run.suspended[0].payload.pending[0].tool, 'deploy');
  assert.deepEqual(deployed, []);

  // Another engine on the same file resumes it: the model is not asked again for the first turn.
  const other = await Engine.open({ store: db, workflows: [wf] });
  const done = await other.resume(run.id, 'ops', { approved: true });
  assert.equal(done.status, 'succeeded', done.error);
  assert.equal(done.output, 'deployed: ok v2');
  assert.deepEqual(deployed, ['v2']);
  assert.equal(s.requests.length, 2);
});

test('requiresApproval as a function: asked once per call with its arguments; only the risky call waits', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0
      ? {
          json: completion({
            calls: [
              { id: 'call_ls', name: 'shell', args: { command: 'ls' } },
              { id: 'call_rm', name: 'shell', args: { command: 'rm -rf build' } },
            ],
          }),
        }
      : { json: completion({ text: `done: ${body.messages.filter((m) => m.role === 'tool').map((m) => m.content).join(' | ')}` }) },
  );
  const asked = [];
  const ran = [];
  const shell = tool({
    description: 'Runs a command',
    parameters: z.object({ command: z.string() }),
    requiresApproval: async ({ command }) => {
      asked.push(command);
      if (command === 'boom') throw new Error('policy unavailable');
      return command.startsWith('rm');
    },
    execute: ({ command }) => {
      ran.push(command);
      return `ran ${command}`;
    },
  });
  const agent = new Agent({ name: 'dev', model: chat(s.url), tools: { shell } });
  const first = await agent.generate('clean up');
  assert.equal(first.stopReason, 'approval-required');
  assert.deepEqual(first.pending.map((p) => p.input.command), ['rm -rf build']);
  assert.deepEqual(ran, ['ls'], 'the safe call ran while the risky one waits');
  assert.deepEqual(asked.sort(), ['ls', 'rm -rf build']);

  const done = await agent.resume(first.checkpoint, { approved: true });
  assert.equal(done.text, 'done: ran ls | ran rm -rf build');
  assert.deepEqual(ran, ['ls', 'rm -rf build']);
  assert.equal(asked.length, 2, 'a resume does not ask again');

  // A predicate that throws counts as "needs approval".
  const s2 = await openaiServer(t, () => ({ json: completion({ calls: [{ id: 'c', name: 'shell', args: { command: 'boom' } }] }) }));
  const agent2 = new Agent({ name: 'dev2', model: chat(s2.url), tools: { shell } });
  const stopped = await agent2.generate('go');
  assert.equal(stopped.stopReason, 'approval-required');
  assert.deepEqual(ran, ['ls', 'rm -rf build']);
});
