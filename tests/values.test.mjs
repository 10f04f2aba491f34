// Values crossing into the engine follow one rule, JSON's (README "Values", docs/architecture.md):
// undefined is left out of objects and is null in arrays; NaN, ±Infinity, functions, symbols,
// cycles and BigInts beyond the safe integers are errors naming where they are; a safe BigInt
// becomes a number. Checked at every place a value crosses: run input, step outputs,
// suspension payloads, resume data, run state, custom events, tool results, memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import {
  Agent,
  Engine,
  Memory,
  MiyabiError,
  ValidationError,
  WorkflowDefinitionError,
  jsonSchema,
  model,
  tool,
  workflow,
} from '@miyabi/core';
import { completion, openaiServer } from './helpers.mjs';

/** A workflow whose one step returns `value`, followed by a step that reports what it got. */
function echoing(id, value) {
  return workflow(id)
    .step('s', () => value())
    .then('t', ({ input }) => ({ got: input, types: typesOf(input) }))
    .commit();
}

function typesOf(v) {
  if (Array.isArray(v)) return v.map(typesOf);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typesOf(x)]));
  return v === null ? 'null' : typeof v;
}

test('undefined: left out of objects, null in arrays (holes too) and on its own', async () => {
  const engine = await Engine.open();
  // eslint-disable-next-line no-sparse-arrays
  const run = await engine.start(echoing('undef', () => ({ a: undefined, list: [1, undefined, , 3], nested: { b: undefined, c: [undefined] } })), null);
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output.got, { list: [1, null, null, 3], nested: { c: [null] } });
  assert.equal('a' in run.output.got, false);

  const bare = await engine.start(echoing('undef-bare', () => undefined), null);
  assert.equal(bare.status, 'succeeded', bare.error);
  assert.equal(bare.output.got, null);

  // The run's input follows the same rule.
  const wf = workflow('undef-input').step('s', ({ input }) => input).commit();
  const r = await engine.start(wf, { x: [undefined], y: undefined });
  assert.deepEqual(r.output, { x: [null] });
});

test('NaN and Infinity in a run input: a ValidationError naming the path, with its issue', async () => {
  const engine = await Engine.open();
  const wf = workflow('nan-input').step('s', ({ input }) => input).commit();
  for (const [bad, text] of [
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    [Number.NEGATIVE_INFINITY, '-Infinity'],
  ]) {
    await assert.rejects(
      () => engine.start(wf, { items: [1, 2, bad] }),
      (e) => {
        assert.ok(e instanceof ValidationError, String(e));
        assert.equal(e.message, `input.items[2]: ${text} is not valid JSON`);
        assert.deepEqual(e.issues, [{ message: `${text} is not valid JSON`, path: ['items', 2] }]);
        return true;
      },
    );
  }
  // Keys that are not identifiers are quoted.
  await assert.rejects(() => engine.start(wf, { 'a b': { c: Number.NaN } }), { message: 'input["a b"].c: NaN is not valid JSON' });
  assert.deepEqual(await engine.list({ workflow: 'nan-input' }), [], 'no run was created');
});

test('NaN, Infinity, unsafe BigInts, functions, symbols and cycles in a step output fail the step, naming the path', async () => {
  const engine = await Engine.open();
  const cyclic = { list: [] };
  cyclic.list.push(cyclic);
  for (const [name, value, reason] of [
    ['nan', { items: [0, Number.NaN] }, 'output.items[1]: NaN is not valid JSON'],
    ['inf', { deep: { x: Number.POSITIVE_INFINITY } }, 'output.deep.x: Infinity is not valid JSON'],
    ['bigint', { id: 2n ** 64n }, 'output.id: 18446744073709551616n is beyond the safe integers'],
    ['neg-bigint', [-(2n ** 53n)], 'output[0]: -9007199254740992n is beyond the safe integers'],
    ['function', { f() {} }, 'output.f: a function is not valid JSON'],
    ['symbol', [Symbol('s')], 'output[0]: a symbol is not valid JSON'],
    ['cycle', cyclic, 'output.list[0]: a cycle (the value contains itself) is not valid JSON'],
  ]) {
    let attempts = 0;
    const wf = workflow(`bad-${name}`)
      .step(
        's',
        () => {
          attempts++;
          return value;
        },
        { retry: 3 },
      )
      .commit();
    const run = await engine.start(wf, null);
    assert.equal(run.status, 'failed', name);
    assert.ok(run.error.includes(`the output of \`s\` cannot be stored as JSON: ${reason}`), `${name}: ${run.error}`);
    assert.equal(attempts, 1, `${name}: an unstorable output is not retried`);
  }
});

test('BigInt: a safe integer becomes a number; numbers up to 2^53 - 1 come back as numbers', async () => {
  const engine = await Engine.open();
  const run = await engine.start(
    echoing('bigints', () => ({ small: 42n, neg: -7n, max: BigInt(Number.MAX_SAFE_INTEGER), num: 2 ** 53, big: 2 ** 60, safe: Number.MAX_SAFE_INTEGER })),
    null,
  );
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output.got, {
    small: 42,
    neg: -7,
    max: Number.MAX_SAFE_INTEGER,
    num: 2 ** 53,
    big: 2 ** 60,
    safe: Number.MAX_SAFE_INTEGER,
  });
  // Every value reaches the next step as a number (never a BigInt or a string).
  assert.deepEqual(run.output.types, { small: 'number', neg: 'number', max: 'number', num: 'number', big: 'number', safe: 'number' });
  // A BigInt in the run input converts the same way.
  const wf = workflow('bigint-input').step('s', ({ input }) => typeof input.n).commit();
  assert.equal((await engine.start(wf, { n: 5n })).output, 'number');
  await assert.rejects(() => engine.start(wf, { n: 2n ** 63n }), (e) => e instanceof ValidationError && e.message.startsWith('input.n: 9223372036854775808n is beyond'));
});

test('state, custom events and suspension payloads follow the rule, naming their place', async () => {
  const engine = await Engine.open();
  const state = workflow('state-nan')
    .step('s', ({ state }) => {
      state.set('ok', { at: new Date(0), skip: undefined, big: 3n });
      state.set('bad', { x: Number.NaN });
      return 1;
    })
    .commit();
  const r1 = await engine.start(state, null);
  assert.equal(r1.status, 'failed');
  assert.match(r1.error, /state\.bad\.x: NaN is not valid JSON/);

  const events = workflow('emit-nan')
    .step('s', ({ emit }) => {
      emit('fine', { at: new Date(0), list: [undefined] });
      emit('bad', [Number.POSITIVE_INFINITY]);
      return 1;
    })
    .commit();
  const r2 = await engine.start(events, null);
  assert.equal(r2.status, 'failed');
  assert.match(r2.error, /data\[0\]: Infinity is not valid JSON/);
  const custom = [];
  for await (const e of r2.events()) if (e.type === 'custom') custom.push(e);
  assert.deepEqual(
    custom.map((e) => [e.name, e.data]),
    [['fine', { at: '1970-01-01T00:00:00.000Z', list: [null] }]],
  );

  const suspends = workflow('suspend-nan').step('s', ({ suspend }) => suspend({ ask: Number.NaN })).commit();
  const r3 = await engine.start(suspends, null);
  assert.equal(r3.status, 'failed');
  assert.match(r3.error, /the suspension payload of `s` cannot be stored as JSON: payload\.ask: NaN is not valid JSON/);

  // The state that was valid is stored as JSON has it.
  const good = workflow('state-ok')
    .step('s', ({ state }) => {
      state.set('v', { at: new Date(0), skip: undefined, big: 3n, list: [undefined] });
      return state.get('v');
    })
    .commit();
  const r4 = await engine.start(good, null);
  assert.equal(r4.status, 'succeeded', r4.error);
  assert.deepEqual(r4.output, { at: '1970-01-01T00:00:00.000Z', big: 3, list: [null] });
});

test('resume data: NaN is a ValidationError; the run stays suspended', async () => {
  const engine = await Engine.open();
  const wf = workflow('resume-nan')
    .step('ask', ({ resumeData, suspend }) => resumeData ?? suspend({ q: 'n?' }))
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'suspended');
  await assert.rejects(
    () => engine.resume(run.id, 'ask', { n: [Number.NaN] }),
    (e) => e instanceof ValidationError && e.message === 'resumeData.n[0]: NaN is not valid JSON' && e.issues[0].path.join() === 'n,0',
  );
  assert.equal((await engine.get(run.id)).status, 'suspended');
  const done = await engine.resume(run.id, 'ask', { n: [1, undefined], big: 9n });
  assert.deepEqual(done.output, { n: [1, null], big: 9 });
});

test('resume validation errors carry issues: from the zod schema, and from the engine JSON Schema check', async () => {
  const engine = await Engine.open();
  const wf = workflow('resume-issues')
    .parallel({
      zod: {
        resume: z.object({ approved: z.boolean(), who: z.string().default('someone') }),
        execute: ({ resumeData, suspend }) => resumeData ?? suspend({}),
      },
      json: {
        resume: jsonSchema({ type: 'object', properties: { n: { type: 'array', items: { type: 'integer' } } }, required: ['n'] }),
        execute: ({ resumeData, suspend }) => resumeData ?? suspend({}),
      },
    })
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'suspended');

  await assert.rejects(
    () => engine.resume(run.id, 'zod', { approved: 'yes', who: 3 }),
    (e) => {
      assert.ok(e instanceof ValidationError);
      assert.match(e.message, /^step `zod` resume data violates its schema: /);
      assert.deepEqual(
        e.issues.map((i) => [i.path.join('.'), typeof i.message]),
        [
          ['approved', 'string'],
          ['who', 'string'],
        ],
      );
      return true;
    },
  );
  // The engine's check (a plain JSON Schema is not checked in JS): one issue with its path.
  await assert.rejects(
    () => engine.resume(run.id, 'json', { n: [1, 'two'] }),
    (e) => {
      assert.ok(e instanceof ValidationError);
      assert.deepEqual(e.issues.map((i) => i.path), [['n', 1]]);
      assert.match(e.issues[0].message, /integer/);
      assert.match(e.message, /^step `json` resume data violates its schema: n\.1: /);
      return true;
    },
  );
  // Zod defaults apply to resume data, as to the run input.
  await engine.resume(run.id, 'zod', { approved: true });
  const done = await engine.resume(run.id, 'json', { n: [1, 2] });
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, { zod: { approved: true, who: 'someone' }, json: { n: [1, 2] } });

  // The run input checked by the engine (a plain JSON Schema): the same shape.
  const typed = workflow('input-issues', { input: jsonSchema({ type: 'object', properties: { n: { type: 'integer' } } }) })
    .step('s', ({ input }) => input)
    .commit();
  await assert.rejects(
    () => engine.start(typed, { n: 'x' }),
    (e) => e instanceof ValidationError && e.issues.length === 1 && e.issues[0].path.join() === 'n' && /^workflow `input-issues` input violates its schema: n: /.test(e.message),
  );
});

test('an empty workflow id is a MiyabiError at workflow()', () => {
  for (const id of ['', undefined, 3]) {
    assert.throws(
      () => workflow(id),
      (e) => e instanceof WorkflowDefinitionError && e instanceof MiyabiError && e.code === 'INVALID_WORKFLOW' && /workflow id must be a non-empty string/.test(e.message),
    );
  }
});

test('tool results follow the rule: NaN in a result is a tool error the model sees', async (t) => {
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'c1', name: 'measure', args: {} }, { id: 'c2', name: 'count', args: {} }] }) };
    const tools = body.messages.filter((m) => m.role === 'tool').map((m) => m.content);
    return { json: completion({ text: tools.join(' | ') }) };
  });
  const measure = tool({ parameters: z.object({}), execute: () => ({ value: Number.NaN }) });
  const count = tool({ parameters: z.object({}), execute: () => ({ n: 12n, skip: undefined, list: [undefined] }) });
  const chat = model('openai/gpt-4o', { baseURL: s.url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 });
  const r = await new Agent({ name: 'a', model: chat, tools: { measure, count }, maxSteps: 2 }).generate('go');
  assert.match(r.text, /result\.value: NaN is not valid JSON/);
  assert.deepEqual(
    r.toolResults.map((x) => [x.toolName, x.isError]),
    [
      ['measure', true],
      ['count', false],
    ],
  );
  assert.deepEqual(r.toolResults[1].output, { n: 12, list: [null] });
});

test('memory values follow the rule', async () => {
  const memory = Memory.open();
  const wm = memory.thread('t1');
  await wm.set('k', { at: new Date(0), n: 5n, skip: undefined, list: [undefined] });
  assert.deepEqual(await wm.get('k'), { at: '1970-01-01T00:00:00.000Z', n: 5, list: [null] });
  await assert.rejects(() => wm.set('bad', { x: Number.NaN }), (e) => e instanceof ValidationError && e.message === 'value.x: NaN is not valid JSON');
  await assert.rejects(() => wm.merge('k', { y: Number.NEGATIVE_INFINITY }), (e) => e instanceof ValidationError && e.message === 'patch.y: -Infinity is not valid JSON');
});
