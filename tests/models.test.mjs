// Models from JS over a loopback OpenAI-compatible server: generateText, streamText (textStream,
// fullStream, the final promises, toTextStreamResponse / toReadableStream), provider errors
// with their status, provider and message, and configuration errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { Agent, Memory, generateText, streamText, model, ProviderError, MiyabiError } from '@miyabi/core';
import { openaiServer, textStream, completion, chunk } from './helpers.mjs';

const chat = (url, extra = {}) => model('openai/gpt-4o', { baseURL: url, apiKey: 'test-key', protocol: 'openai-chat', ...extra });

test('generateText sends the prompt and settings and returns text, usage and finish reason', async (t) => {
  const s = await openaiServer(t, () => ({ json: completion({ text: 'Hello from the model' }) }));
  const r = await generateText({
    model: chat(s.url, { headers: { 'x-test': 'yes' } }),
    system: 'Be brief.',
    prompt: 'Say hello',
    temperature: 0.3,
    maxTokens: 50,
  });
  assert.equal(r.text, 'Hello from the model');
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(r.toolCalls, []);
  assert.equal(r.usage.inputTokens, 11);
  assert.equal(r.usage.outputTokens, 5);
  assert.equal(r.usage.totalTokens, 16);
  assert.equal(r.steps.length, 1);
  const req = s.requests[0];
  assert.equal(req.url, '/v1/chat/completions');
  assert.equal(req.headers.authorization, 'Bearer test-key');
  assert.equal(req.headers['x-test'], 'yes');
  assert.equal(req.body.model, 'gpt-4o');
  assert.equal(req.body.temperature, 0.3);
  assert.deepEqual(
    req.body.messages.map((m) => [m.role, m.content]),
    [
      ['system', 'Be brief.'],
      ['user', 'Say hello'],
    ],
  );
});

test('generateText takes messages, returns tool calls the model made, and structured output', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0
      ? { json: completion({ calls: [{ id: 'call_1', name: 'lookup', args: { q: 'x' } }] }) }
      : { json: completion({ text: '{"answer":42}' }) },
  );
  const r = await generateText({
    model: chat(s.url),
    messages: [
      { role: 'user', content: 'first' },
      { role: 'assistant', content: 'ok' },
      { role: 'user', content: [{ type: 'text', text: 'second' }] },
    ],
  });
  assert.deepEqual(r.toolCalls, [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'lookup', input: { q: 'x' } }]);
  assert.equal(r.finishReason, 'tool-calls');
  assert.deepEqual(
    s.requests[0].body.messages.map((m) => m.role),
    ['user', 'assistant', 'user'],
  );
  const o = await generateText({ model: chat(s.url), prompt: 'json please', output: z.object({ answer: z.number() }) });
  assert.equal(o.text, '{"answer":42}');
  assert.equal(s.requests[1].body.response_format.type, 'json_schema');
});

test('streamText: text deltas through for await, every part, the final values, and a text Response', async (t) => {
  const pieces = ['Once', ' upon', ' a', ' time', ' — ', 'ünïcödé ✓'];
  const s = await openaiServer(t, () => ({ sse: textStream(pieces) }));
  const r = streamText({ model: chat(s.url), prompt: 'Tell a story' });
  const deltas = [];
  for await (const d of r.textStream) deltas.push(d);
  assert.deepEqual(deltas, pieces);
  assert.equal(await r.text, pieces.join(''));
  assert.equal(await r.finishReason, 'stop');
  assert.equal((await r.usage).outputTokens, pieces.length);
  assert.equal(s.requests[0].body.stream, true);

  // A reader started after the stream ended still sees all of it.
  const parts = [];
  for await (const p of r.fullStream) parts.push(p);
  assert.deepEqual(parts.filter((p) => p.type === 'text-delta').map((p) => p.text), pieces);
  assert.equal(parts.at(-1).type, 'finish');
  assert.equal(parts.at(-1).finishReason, 'stop');

  const res = streamText({ model: chat(s.url), prompt: 'again' }).toTextStreamResponse({ headers: { 'x-extra': '1' } });
  assert.ok(res instanceof Response);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('x-extra'), '1');
  assert.equal(await res.text(), pieces.join(''));

  const rs = streamText({ model: chat(s.url), prompt: 'bytes' }).toReadableStream();
  const bytes = [];
  for await (const b of rs) {
    assert.ok(b instanceof Uint8Array);
    bytes.push(...b);
  }
  assert.equal(new TextDecoder().decode(new Uint8Array(bytes)), pieces.join(''));
});

test('streamText streams tool-call parts', async (t) => {
  const s = await openaiServer(t, () => ({
    sse: [
      chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: 'call_9', type: 'function', function: { name: 'weather', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
      chunk({}, 'tool_calls'),
    ],
  }));
  const r = streamText({ model: chat(s.url), prompt: 'weather?' });
  const types = [];
  for await (const p of r.fullStream) types.push(p.type);
  assert.deepEqual(types, ['start', 'tool-input-start', 'tool-input-delta', 'tool-input-delta', 'tool-call', 'finish']);
  assert.deepEqual(await r.toolCalls, [{ type: 'tool-call', toolCallId: 'call_9', toolName: 'weather', input: { city: 'Paris' } }]);
  assert.equal(await r.finishReason, 'tool-calls');
});

test('a provider error is a ProviderError with code PROVIDER, status, provider and the provider message', async (t) => {
  const s = await openaiServer(t, (body) =>
    body.stream
      ? { status: 503, json: { error: { message: 'The engine is currently overloaded', type: 'server_error' } } }
      : {
          status: 429,
          headers: { 'retry-after': '7' },
          json: { error: { message: 'Rate limit reached for gpt-4o', type: 'requests', code: 'rate_limit_exceeded' } },
        },
  );
  const m = chat(s.url, { maxRetries: 0 });
  const e = await generateText({ model: m, prompt: 'hi' }).then(
    () => assert.fail('expected a provider error'),
    (err) => err,
  );
  assert.ok(e instanceof ProviderError, String(e));
  assert.ok(e instanceof MiyabiError && e instanceof Error);
  assert.equal(e.code, 'PROVIDER');
  assert.equal(e.kind, 'rate-limited');
  assert.equal(e.status, 429);
  assert.equal(e.provider, 'openai');
  assert.equal(e.model, 'gpt-4o');
  assert.equal(e.providerMessage, 'Rate limit reached for gpt-4o');
  assert.equal(e.retryAfter, 7000);
  assert.equal(e.isRetryable, true);
  assert.match(e.message, /Rate limit reached for gpt-4o/);

  // Streams: textStream throws it, fullStream ends with an error part, the promises reject.
  const r = streamText({ model: m, prompt: 'hi' });
  await assert.rejects(
    async () => {
      for await (const _ of r.textStream);
    },
    (err) => err instanceof ProviderError && err.status === 503 && err.kind === 'server' && err.providerMessage === 'The engine is currently overloaded',
  );
  const parts = [];
  for await (const p of r.fullStream) parts.push(p);
  assert.equal(parts.length, 1);
  assert.equal(parts[0].type, 'error');
  assert.ok(parts[0].error instanceof ProviderError);
  await assert.rejects(r.text, ProviderError);
});

test('configuration errors say what to set; an unread failing stream does not crash the process', async () => {
  const e = await generateText({ model: 'nosuchprovider/x', prompt: 'hi' }).then(
    () => assert.fail('expected an error'),
    (err) => err,
  );
  assert.ok(e instanceof MiyabiError);
  assert.equal(e.code, 'CONFIG');
  assert.match(e.message, /nosuchprovider/);
  // Never read: its failure must not become an unhandled rejection.
  streamText({ model: 'nosuchprovider/x', prompt: 'hi' });
  await new Promise((r) => setTimeout(r, 50));
});

test('an abort signal cancels a stream', async (t) => {
  const s = await openaiServer(t, () => ({ sse: textStream(['a', 'b']) }));
  const ac = new AbortController();
  ac.abort();
  const r = streamText({ model: chat(s.url), prompt: 'x', abortSignal: ac.signal });
  await assert.rejects(r.text, (e) => e instanceof MiyabiError && e.code === 'CANCELLED' || e.name === 'AbortError');
});

test('generateText with tools runs the tools the model called (one step by default)', async (t) => {
  const { tool } = await import('@miyabi/core');
  const s = await openaiServer(t, () => ({ json: completion({ calls: [{ id: 'c1', name: 'double', args: { n: 21 } }] }) }));
  const double = tool({ parameters: z.object({ n: z.number() }), execute: ({ n }) => n * 2 });
  const r = await generateText({ model: chat(s.url), system: 'Use tools.', prompt: 'double 21', tools: { double } });
  assert.equal(s.requests.length, 1, 'one model call');
  assert.deepEqual(r.toolCalls.map((c) => [c.toolName, c.input]), [['double', { n: 21 }]]);
  assert.deepEqual(r.toolResults.map((c) => [c.toolName, c.output]), [['double', 42]]);
  assert.equal(s.requests[0].body.messages[0].content, 'Use tools.');
});

test('abort signals cancel generateText; unawaited promises of a failed stream stay quiet', async (t) => {
  const s = await openaiServer(t, async () => {
    await new Promise((r) => setTimeout(r, 2000));
    return { json: completion({ text: 'late' }) };
  });
  const ac = new AbortController();
  const p = generateText({ model: chat(s.url), prompt: 'slow', abortSignal: ac.signal });
  setTimeout(() => ac.abort(new Error('user gave up')), 20);
  await assert.rejects(p, /user gave up/);

  const f = await openaiServer(t, () => ({ status: 500, json: { error: { message: 'boom' } } }));
  const { textStream, text, usage } = streamText({ model: chat(f.url, { maxRetries: 0 }), prompt: 'x' });
  void text;
  void usage;
  await assert.rejects(async () => {
    for await (const _ of textStream);
  }, ProviderError);
  await new Promise((r) => setTimeout(r, 20));
});

/** The CONFIG error a model's call reports. */
async function configError(m) {
  const e = await generateText({ model: m, prompt: 'hi' }).then(
    () => assert.fail('expected an error'),
    (err) => err,
  );
  assert.ok(e instanceof MiyabiError, String(e));
  assert.equal(e.code, 'CONFIG', e.message);
  return e.message;
}

test('configuration errors name what a JS user writes, not Rust names', async (t) => {
  const saved = { GROQ_API_KEY: process.env.GROQ_API_KEY, AZURE_RESOURCE_NAME: process.env.AZURE_RESOURCE_NAME, AZURE_BASE_URL: process.env.AZURE_BASE_URL };
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  });
  for (const k of Object.keys(saved)) delete process.env[k];

  const noKey = await configError('groq/llama-3.3-70b-versatile');
  assert.match(noKey, /GROQ_API_KEY, or pass `model\(spec, \{ apiKey \}\)`/);
  const noUrl = await configError(model('azure/gpt-4o', { apiKey: 'k' }));
  assert.match(noUrl, /AZURE_RESOURCE_NAME/);
  assert.match(noUrl, /`model\(spec, \{ baseURL \}\)`/);
  const unknown = await configError('nosuchprovider/x');
  assert.match(unknown, /pass both `baseURL` and `protocol`: `model\(spec, \{ baseURL, protocol \}\)`/);
  const noMemory = await new Agent({ name: 'w', model: model('openai/gpt-4o', { apiKey: 'k', baseURL: 'http://127.0.0.1:9/v1' }), workingMemory: true })
    .generate('hi')
    .then(
      () => assert.fail('expected an error'),
      (e) => e,
    );
  assert.match(noMemory.message, /`workingMemory: true` needs a `memory`/);
  for (const m of [noKey, noUrl, unknown, noMemory.message]) {
    assert.doesNotMatch(m, /ModelBuilder|::|working_memory/, m);
  }
});

test('what the unknown-provider error says works: a custom endpoint with baseURL and protocol', async (t) => {
  const s = await openaiServer(t, () => ({ json: completion({ text: 'local hello' }) }));
  const r = await generateText({ model: model('my-llm/llama-3', { baseURL: s.url, protocol: 'openai-chat' }), prompt: 'hi' });
  assert.equal(r.text, 'local hello');
  assert.equal(s.requests[0].body.model, 'llama-3');
});

test('arguments napi cannot convert are MiyabiErrors in JS words', () => {
  assert.throws(
    () => model('openai/gpt-4o', { apiKey: 3 }),
    (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && e.message === '`apiKey`: expected a string, got Number 3',
  );
  assert.throws(
    () => model('openai/gpt-4o', { headers: { 'x-n': 1 } }),
    (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && /^`headers`: expected a string/.test(e.message) && !/rust|Native/.test(e.message),
  );
});

test('hostile numbers in model, agent and memory options are MiyabiErrors naming the option and the value', async () => {
  for (const [value, shown] of [
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [1e300, '1e+300'],
    [-1, '-1'],
    [0, '0'],
  ]) {
    assert.throws(
      () => model('openai/gpt-4o', { apiKey: 'k', timeoutMs: value }),
      (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && e.message.startsWith("the `timeoutMs` of model('openai/gpt-4o') must be") && e.message.endsWith(`got ${shown}`),
      shown,
    );
    await assert.rejects(
      () => Memory.open().thread('t').set('k', 1, { ttlMs: value }),
      (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && e.message.startsWith('the `ttlMs` of a working-memory key must be') && e.message.endsWith(`got ${shown}`),
      shown,
    );
  }
  assert.throws(() => model('openai/gpt-4o', { maxRetries: -1 }), /the `maxRetries` of model\('openai\/gpt-4o'\) must be a whole number from 0 to 4294967295, got -1/);
  assert.throws(() => new Agent({ name: 'a', model: 'openai/gpt-4o', maxSteps: 1.5 }), /the `maxSteps` of agent `a` must be a whole number from 0 to 4294967295, got 1.5/);
  assert.throws(() => new Agent({ name: 'a', model: 'openai/gpt-4o', maxTokens: -1 }), /`maxTokens` must be a whole number from 0 to 4294967295, got -1/);
  assert.throws(() => new Agent({ name: 'a', model: 'openai/gpt-4o', temperature: Number.NaN }), /`temperature` must be a finite number, got NaN/);
  await assert.rejects(() => generateText({ model: 'openai/gpt-4o', prompt: 'x', topK: Number.POSITIVE_INFINITY }), /`topK` must be a whole number from 0 to 4294967295, got Infinity/);
  // A valid TTL still works.
  const wm = Memory.open().thread('t');
  await wm.set('k', 1, { ttlMs: 60_000 });
  assert.equal(await wm.get('k'), 1);
});
