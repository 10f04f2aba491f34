// JS steps end to end on a SQLite file: every construct, sync/async/throw, retries, schemas,
// state, custom events, the event log, and the error classes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import {
  Engine,
  workflow,
  step,
  FatalError,
  MiyabiError,
  ValidationError,
  NotFoundError,
  ConflictError,
  WorkflowDefinitionError,
} from '@miyabi/core';
import { tempDir } from './helpers.mjs';

test('every construct runs JS steps on SQLite and records each step', async (t) => {
  const dir = tempDir(t);
  const engine = await Engine.open({ store: `sqlite:${join(dir, 'runs.db')}` });
  const inner = workflow('inner').step('x', ({ input }) => ({ nested: input })).commit();
  const wf = workflow('every', { input: z.object({ n: z.number() }) })
    .step('sync', ({ input }) => input.n + 1)
    .then('async', async ({ input }) => {
      await new Promise((r) => setTimeout(r, 2));
      return input * 2;
    })
    .branch('route', ({ output }) => (output > 5 ? 'big' : 'small'), {
      big: ({ input }) => input * 100,
      small: ({ input }) => input,
    })
    .dountil('grow', ({ input }) => input + 1, ({ output }) => output >= 403, { maxIterations: 10 })
    .dowhile('shrink', async ({ input }) => input - 100, ({ output }) => output > 401)
    .map('list', ({ input }) => [input, input + 1, input + 2])
    .foreach('each', async ({ input }) => input % 2, { concurrency: 2 })
    .sleep('nap', 5)
    .sleepUntil('until', () => new Date(Date.now() + 5))
    .parallel({
      a: ({ input }) => input.length,
      b: async ({ input, state }) => {
        state.set('seen', input);
        return 'b';
      },
      c: inner,
    })
    .then('last', ({ input, state, emit }) => {
      emit('progress', { pct: 100 });
      return { ...input, seen: state.get('seen') };
    })
    .commit();
  const run = await engine.start(wf, { n: 2 });
  assert.equal(run.status, 'succeeded', run.error);
  // 2+1=3 → 6 → big: 600 → until >= 403: 601 → while > 401: 501, 401 → [401, 402, 403] → [1, 0, 1]
  assert.deepEqual(run.output, { a: 3, b: 'b', c: { nested: [1, 0, 1] }, seen: [1, 0, 1] });

  const events = [];
  for await (const e of run.events()) events.push(e);
  assert.equal(events[0].type, 'run-started');
  assert.equal(events.at(-1).type, 'run-finished');
  const outputs = new Map(events.filter((e) => e.type === 'step-output').map((e) => [e.path, e.output]));
  assert.equal(outputs.get('sync'), 3);
  assert.equal(outputs.get('route/big'), 600);
  assert.equal(outputs.has('route/small'), false);
  assert.equal(outputs.get('grow[0]'), 601);
  assert.deepEqual([0, 1, 2].map((i) => outputs.get(`each[${i}]`)), [1, 0, 1]);
  assert.equal(outputs.get('shrink[1]'), 401);
  assert.deepEqual(outputs.get('c/x'), { nested: [1, 0, 1] });
  const custom = events.find((e) => e.type === 'custom');
  assert.deepEqual([custom.path, custom.name, custom.data], ['last', 'progress', { pct: 100 }]);
  // Sequence numbers have no gaps; events from a later seq start there.
  events.forEach((e, i) => assert.equal(e.seq, i + 1));
  const tail = [];
  for await (const e of engine.events(run.id, events.length - 1)) tail.push(e.seq);
  assert.deepEqual(tail, [events.length - 1, events.length]);

  const got = await engine.get(run.id);
  assert.equal(got.status, 'succeeded');
  assert.deepEqual(got.output, run.output);
  const listed = await engine.list({ workflow: 'every', status: 'succeeded' });
  assert.deepEqual(listed.map((r) => r.id), [run.id]);
  assert.equal(await engine.get('no-such-run'), null);
});

test('a throw or rejection fails the step with the JS message and stack', async () => {
  const engine = await Engine.open();
  function explode() {
    throw new TypeError('boom from sync');
  }
  const sync = workflow('throws').step('bad', () => explode()).commit();
  const run = await engine.start(sync, null);
  assert.equal(run.status, 'failed');
  assert.match(run.error, /step `bad` failed: TypeError: boom from sync/);
  assert.match(run.error, /at explode \(/, 'the stack names the throwing function');

  const rejecting = workflow('rejects')
    .step('bad', async () => {
      await null;
      throw new Error('boom from async');
    })
    .commit();
  const run2 = await engine.start(rejecting, null);
  assert.equal(run2.status, 'failed');
  assert.match(run2.error, /Error: boom from async/);
  const failed = [];
  for await (const e of run2.events()) if (e.type === 'step-failed') failed.push(e);
  assert.equal(failed.length, 1);
  assert.equal(failed[0].path, 'bad');

  const thrownString = workflow('throws-string')
    .step('bad', () => {
      throw 'plain string';
    })
    .commit();
  const run3 = await engine.start(thrownString, null);
  assert.match(run3.error, /plain string/);
});

test('retries re-run a failing step; a FatalError is not retried', async () => {
  const engine = await Engine.open();
  let calls = 0;
  const flaky = workflow('flaky')
    .step(
      'try',
      ({ attempt }) => {
        calls++;
        if (attempt < 3) throw new Error(`attempt ${attempt} failed`);
        return attempt;
      },
      { retry: { attempts: 3, initialDelayMs: 1, jitter: false } },
    )
    .commit();
  const run = await engine.start(flaky, null);
  assert.equal(run.status, 'succeeded', run.error);
  assert.equal(run.output, 3);
  assert.equal(calls, 3);
  const retrying = [];
  for await (const e of run.events()) if (e.type === 'step-retrying') retrying.push(e.attempt);
  assert.deepEqual(retrying, [2, 3]);

  let fatalCalls = 0;
  const fatal = workflow('fatal')
    .step(
      'try',
      () => {
        fatalCalls++;
        throw new FatalError('never again');
      },
      { retry: 5 },
    )
    .commit();
  const run2 = await engine.start(fatal, null);
  assert.equal(run2.status, 'failed');
  assert.equal(fatalCalls, 1);
});

test('a step timeout aborts the step signal and fails the attempt', async () => {
  const engine = await Engine.open();
  let reason;
  const wf = workflow('slow')
    .step(
      'wait',
      ({ signal }) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            reason = signal.reason;
            resolve('late');
          });
        }),
      { timeoutMs: 20 },
    )
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'failed');
  assert.match(run.error, /timed out after 20 ms/);
  assert.equal(reason?.code, 'TIMEOUT');
});

test('schemas: run input, step output (parsed by zod) and resume data are validated', async () => {
  const engine = await Engine.open();
  const wf = workflow('typed', { input: z.object({ name: z.string(), times: z.number().default(2) }) })
    .step('repeat', ({ input }) => input.name.repeat(input.times))
    .then(
      'shape',
      step({
        output: z.object({ text: z.string(), length: z.number() }),
        execute: ({ input }) => ({ text: input, length: input.length, extra: 'stripped by zod' }),
      }),
    )
    .commit();
  const ok = await engine.start(wf, { name: 'ab' });
  assert.deepEqual(ok.output, { text: 'abab', length: 4 });
  await assert.rejects(() => engine.start(wf, { name: 7 }), (e) => {
    assert.ok(e instanceof ValidationError);
    assert.equal(e.code, 'VALIDATION');
    assert.match(e.message, /name/);
    return true;
  });

  const badOutput = workflow('bad-output')
    .step('s', step({ output: z.number(), execute: () => 'not a number' }))
    .commit();
  const run = await engine.start(badOutput, null);
  assert.equal(run.status, 'failed');
  assert.match(run.error, /output violates its schema/);
});

test('definition errors and engine errors carry stable codes', async () => {
  assert.throws(
    () => workflow('dup').step('a', () => 1).then('a', () => 2).commit(),
    (e) => e instanceof WorkflowDefinitionError && e.code === 'INVALID_WORKFLOW' && /duplicate id `a`/.test(e.message),
  );
  assert.throws(() => workflow('empty').commit(), (e) => e instanceof MiyabiError && e.code === 'INVALID_WORKFLOW');
  const engine = await Engine.open();
  await assert.rejects(() => engine.resume('nope', 'x', 1), (e) => e instanceof NotFoundError && e.code === 'NOT_FOUND');
  const wf = workflow('done').step('a', () => 1).commit();
  const run = await engine.start(wf, null);
  await assert.rejects(() => engine.resume(run.id, 'a', 1), (e) => e instanceof ConflictError && e.code === 'CONFLICT');
  await assert.rejects(() => engine.cancel(run.id), (e) => e instanceof ConflictError);
  // A Postgres URL is a valid store; an unreachable server is a STORE error naming the location.
  assert.throws(() => Engine.openSync({ store: 'postgres://x' }), (e) => e instanceof MiyabiError && e.code === 'STORE' && /postgres:\/\/@x/.test(e.message));
});

test('a parallel child that suspends keeps its siblings results; resume finishes the run', async () => {
  const engine = await Engine.open();
  let checks = 0;
  const wf = workflow('gate')
    .parallel({
      check: async () => {
        checks++;
        return 'ok';
      },
      approve: step({
        resume: z.object({ approved: z.boolean() }),
        execute: ({ resumeData, suspend }) => resumeData ?? suspend({ question: 'ship it?' }),
      }),
    })
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'suspended');
  assert.deepEqual(run.suspended, [{ path: 'approve', payload: { question: 'ship it?' } }]);
  await assert.rejects(() => engine.resume(run.id, 'approve', { approved: 'yes' }), ValidationError);
  await assert.rejects(() => engine.resume(run.id, 'check', {}), (e) => e.code === 'NOT_SUSPENDED');
  const done = await engine.resume(run.id, 'approve', { approved: true });
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, { check: 'ok', approve: { approved: true } });
  assert.equal(checks, 1, 'the sibling ran once');
});

test('events() of a run driven here is live: it yields each commit and ends with the run', async () => {
  const engine = await Engine.open();
  const gates = [];
  const gate = () => new Promise((resolve) => gates.push(resolve));
  const wf = workflow('live')
    .step('one', async () => {
      await gate();
      return 1;
    })
    .then('two', async ({ input, emit }) => {
      emit('halfway', { input });
      await gate();
      return input + 1;
    })
    .commit();
  const handle = await engine.spawn(wf, null);
  const seen = [];
  const reader = (async () => {
    for await (const e of handle.events()) {
      seen.push(`${e.type}${e.path ? ` ${e.path}` : ''}`);
      // Let the run go on only once the iterator has seen the step start.
      if (e.type === 'step-started') setImmediate(() => gates.shift()?.());
    }
  })();
  await reader;
  assert.deepEqual(seen, [
    'run-started',
    'step-started one',
    'step-output one',
    'step-started two',
    'custom two',
    'step-output two',
    'run-finished',
  ]);
  assert.equal((await handle.result).output, 2);
});

test('values follow JSON: Dates become ISO strings; functions, symbols, NaN and cycles fail the step', async () => {
  const engine = await Engine.open();
  const when = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const dated = workflow('dated')
    .step('s', () => ({ when, list: [when], nothing: undefined, big: 2 ** 40 }))
    .then('t', ({ input }) => ({ got: input }))
    .commit();
  const run = await engine.start(dated, null);
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output, { got: { when: when.toISOString(), list: [when.toISOString()], big: 2 ** 40 } });

  const cyclic = {};
  cyclic.self = cyclic;
  for (const [name, value] of [
    ['function', { f() {} }],
    ['symbol', Symbol('s')],
    ['nan', Number.NaN],
    ['cycle', cyclic],
  ]) {
    const wf = workflow(`bad-${name}`).step('s', () => value).commit();
    const bad = await engine.start(wf, null);
    assert.equal(bad.status, 'failed', name);
    assert.match(bad.error, /the output of `s` cannot be stored as JSON/, name);
  }
});

test('runs and foreach items run concurrently on the event loop, within their limits', async () => {
  const engine = await Engine.open();
  let active = 0;
  let peak = 0;
  const wf = workflow('fanout')
    .map('items', () => Array.from({ length: 12 }, (_, i) => i))
    .foreach(
      'each',
      async ({ input }) => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        return input * 2;
      },
      { concurrency: 3 },
    )
    .commit();
  const run = await engine.start(wf, null);
  assert.equal(run.status, 'succeeded', run.error);
  assert.deepEqual(run.output, Array.from({ length: 12 }, (_, i) => i * 2));
  assert.equal(peak, 3, 'foreach ran three at a time');

  // 100 runs whose step waits until all 100 steps are in flight at once: they can finish only
  // if the runs are driven concurrently. (If they were not, the first step would wait for the
  // others forever; `giveUp` then lets it go, and the peak shows what happened.)
  let inFlight = 0;
  let most = 0;
  let allIn;
  const together = new Promise((r) => (allIn = r));
  let giveUpTimer;
  const giveUp = new Promise((r) => (giveUpTimer = setTimeout(r, 10_000)));
  const slow = workflow('slow-many')
    .step('wait', async ({ input }) => {
      inFlight++;
      most = Math.max(most, inFlight);
      if (inFlight === 100) allIn();
      await Promise.race([together, giveUp]);
      inFlight--;
      return input;
    })
    .commit();
  const handles = await Promise.all(Array.from({ length: 100 }, (_, i) => engine.spawn(slow, i)));
  const runs = await Promise.all(handles.map((h) => h.result));
  clearTimeout(giveUpTimer);
  assert.deepEqual(runs.map((r) => r.output), Array.from({ length: 100 }, (_, i) => i));
  assert.equal(most, 100, 'the 100 runs had their steps in flight at the same time');
});

test('hostile numbers in workflow options are WorkflowDefinitionErrors naming the option and the value', () => {
  const one = () => workflow('h').step('a', () => 1);
  const cases = [
    [() => one().sleep('nap', Number.NaN), 'the duration of sleep `nap`', 'NaN'],
    [() => one().sleep('nap', 1e300), 'the duration of sleep `nap`', '1e+300'],
    [() => one().sleep('nap', -1), 'the duration of sleep `nap`', '-1'],
    [() => workflow('h').step('a', () => 1, { timeoutMs: Number.POSITIVE_INFINITY }), 'the `timeoutMs` of step `a`', 'Infinity'],
    [() => workflow('h').step('a', () => 1, { timeoutMs: 2 ** 53 }), 'the `timeoutMs` of step `a`', '9007199254740992'],
    [() => workflow('h', { timeoutMs: Number.NaN }).step('a', () => 1), 'the `timeoutMs` of workflow `h`', 'NaN'],
    [() => one().timeout(-5), 'the `timeoutMs` of workflow `h`', '-5'],
    [() => workflow('h').step('a', () => 1, { retry: Number.NaN }), 'the `retry` of step `a`', 'NaN'],
    [() => workflow('h').step('a', () => 1, { retry: { attempts: 2, initialDelayMs: 1e300 } }), 'the `retry.initialDelayMs` of step `a`', '1e+300'],
    [() => workflow('h').step('a', () => 1, { retry: { attempts: 2, maxDelayMs: -1 } }), 'the `retry.maxDelayMs` of step `a`', '-1'],
    [() => workflow('h').parallel({ p: { timeoutMs: Number.NaN, execute: () => 1 } }), 'the `timeoutMs` of step `p`', 'NaN'],
    [() => one().dowhile('l', ({ input }) => input, () => false, { maxIterations: Number.POSITIVE_INFINITY }), 'the `maxIterations` of loop `l`', 'Infinity'],
    [() => one().map('m', () => [1]).foreach('f', ({ input }) => input, { concurrency: 1.5 }), 'the `concurrency` of foreach `f`', '1.5'],
  ];
  for (const [build, option, value] of cases) {
    assert.throws(
      () => build().commit(),
      (e) => {
        assert.ok(e instanceof WorkflowDefinitionError, `${option}: ${e}`);
        assert.equal(e.code, 'INVALID_WORKFLOW');
        assert.ok(e.message.startsWith(`${option} must be a whole number`), e.message);
        assert.ok(e.message.endsWith(`got ${value}`), e.message);
        return true;
      },
    );
  }
  // In range, including the largest.
  assert.equal(one().sleep('nap', Number.MAX_SAFE_INTEGER).commit().id, 'h');
});

test('delays longer than setTimeout can wait (2^31 - 1 ms) are waited in parts, not fired at once', async () => {
  const warnings = [];
  const onWarning = (w) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const engine = await Engine.open();
    const long = 2 ** 31 + 5000; // about 24.9 days: Node would fire a plain setTimeout after 1 ms
    let release;
    const gate = new Promise((r) => {
      release = r;
    });
    const wf = workflow('long-delays', { timeoutMs: long * 2 })
      .step('wait', () => gate, { timeoutMs: long })
      .sleep('nap', long)
      .then('after', () => 'woke')
      .commit();
    const h = await engine.spawn(wf, null);
    const seen = [];
    for await (const e of h.events()) {
      seen.push(`${e.type} ${e.path ?? ''}`.trim());
      // The deadline and the step's timeout are armed once the step has started.
      if (e.type === 'step-started' && e.path === 'wait') release(1);
      // The sleep is armed before its step's output is committed.
      if (e.type === 'step-output' && e.path === 'wait') break;
    }
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(warnings, []);
    assert.equal((await engine.get(h.id)).status, 'running', seen.join(', '));

    const flaky = workflow('long-retry')
      .step(
        'flaky',
        () => {
          throw new Error('try again later');
        },
        { retry: { attempts: 2, initialDelayMs: long, maxDelayMs: long, jitter: false } },
      )
      .commit();
    const r = await engine.spawn(flaky, null);
    for await (const e of r.events()) {
      if (e.type === 'step-retrying') {
        assert.equal(e.delayMs, long);
        break;
      }
    }
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(warnings, []);
    assert.equal((await engine.get(r.id)).status, 'running');

    await engine.cancel(h.id);
    await engine.cancel(r.id);
    assert.equal((await h.result).status, 'cancelled');
    assert.equal((await r.result).status, 'cancelled');
  } finally {
    process.off('warning', onWarning);
  }
});
