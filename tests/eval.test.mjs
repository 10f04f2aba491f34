// evaluate() from JS: JS metrics on a JS target and on an Agent (loopback OpenAI-compatible
// server), unscored and error samples kept out of the statistics, gates, zod-checked inputs,
// and the miyabi.eval/v1 document the Rust side reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { Agent, evaluate, metrics, model, tool } from '@miyabi/core';
import { openaiServer, completion } from './helpers.mjs';

const data = [
  { id: 'a', input: 'ship it', expected: 'deploy' },
  { id: 'b', input: 'roll back', expected: 'rollback' },
  { id: 'c', input: 'ship now', expected: 'deploy' },
  { id: 'd', input: 'boom', expected: 'deploy' },
];

const target = async (input) => {
  if (input === 'boom') throw new Error('the target broke');
  return input.includes('ship') ? 'deploy' : 'wait';
};

test('evaluate scores with JS metrics and summarises like the Rust evaluator', async () => {
  const progress = [];
  const r = await evaluate({
    name: 'deploys',
    data,
    target,
    metrics: {
      exact: metrics.exact(),
      mentions: metrics.contains(['deploy']),
      // Unscored on "b": never a zero.
      long: ({ case: c, output }) => (c.id === 'b' ? { unscored: 'not applicable' } : { score: output.length / 10, reason: 'length' }),
      broken: () => 7,
      throws: () => {
        throw new Error('oops');
      },
    },
    gates: { exact: { passRate: 0.6 }, mentions: { mean: 0.5 } },
    epochs: 2,
    concurrency: 3,
    onProgress: (p) => progress.push(p.done),
  });
  assert.equal(r.schema, 'miyabi.eval/v1');
  assert.equal(r.cases, 4);
  assert.equal(r.samples.length, 8);
  assert.deepEqual(r.samples.map((s) => `${s.case_id}${s.epoch}`), ['a0', 'a1', 'b0', 'b1', 'c0', 'c1', 'd0', 'd1']);
  assert.equal(r.errors, 2);
  assert.match(r.samples[6].error, /the target broke/);
  assert.deepEqual(progress.sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8]);

  const exact = r.metrics.find((m) => m.name === 'exact');
  // a and c right, b wrong; d errored (left out).
  assert.equal(exact.cases, 3);
  assert.equal(exact.errored, 2);
  assert.ok(Math.abs(exact.mean - 2 / 3) < 1e-12);
  assert.equal(exact.passes, 2);
  // Wilson 2/3: the same figures as miyabi::eval::stats.
  assert.ok(Math.abs(exact.pass_rate_ci.low - 0.2077) < 1e-3, JSON.stringify(exact.pass_rate_ci));
  assert.ok(Math.abs(exact.pass_rate_ci.high - 0.9385) < 1e-3);
  assert.ok(exact.ci_clt.low < exact.mean && exact.mean < exact.ci_clt.high);
  assert.ok(exact.ci_bootstrap.low <= exact.mean && exact.mean <= exact.ci_bootstrap.high);

  const long = r.metrics.find((m) => m.name === 'long');
  assert.equal(long.unscored, 2);
  assert.equal(long.cases, 2);
  assert.ok(Math.abs(long.mean - 0.6) < 1e-12);
  const broken = r.samples[0].scores.broken;
  assert.equal(broken.value, null);
  assert.match(broken.unscored, /invalid score 7/);
  assert.match(r.samples[0].scores.throws.unscored, /metric "throws" threw on case "a": oops/);

  assert.deepEqual(r.gates.map((g) => [g.metric, g.gate.kind, g.passed]), [
    ['exact', 'min_pass_rate', true],
    ['mentions', 'min_mean', true],
  ]);
  assert.equal(r.passed, true);
  // The document is plain JSON.
  assert.deepEqual(JSON.parse(JSON.stringify(r)).metrics, r.metrics);
});

test('a failing gate, zod-checked inputs and configuration errors', async () => {
  const r = await evaluate({ data, target, metrics: { exact: metrics.exact() }, gates: { exact: { mean: 0.9 } } });
  assert.equal(r.passed, false);
  await assert.rejects(
    evaluate({ data, input: z.string().min(5), target, metrics: { exact: metrics.exact() } }),
    /case "d" input/,
  );
  await assert.rejects(evaluate({ data, target, metrics: {} }), /no metric/);
  await assert.rejects(evaluate({ data, target, metrics: { e: metrics.exact() }, gates: { x: { mean: 1 } } }), /gate on "x"/);
  await assert.rejects(evaluate({ data: [data[0], data[0]], target, metrics: { e: metrics.exact() } }), /duplicate case id "a"/);
});

test('an agent target: its tool calls reach the metrics', async (t) => {
  const s = await openaiServer(t, (body) => {
    const toolMsgs = body.messages.filter((m) => m.role === 'tool').length;
    if (toolMsgs === 0) return { json: completion({ calls: [{ id: 'c1', name: 'lookup', args: { q: 'x' } }] }) };
    return { json: completion({ text: 'found it' }) };
  });
  const lookup = tool({ description: 'Looks up', parameters: z.object({ q: z.string() }), execute: async () => 'hit' });
  const agent = new Agent({
    name: 'finder',
    model: model('openai/gpt-4o', { baseURL: s.url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 }),
    tools: { lookup },
  });
  const r = await evaluate({
    data: [{ id: 'q1', input: 'find x', expected: 'found it', metadata: { expected_tools: ['lookup'] } }],
    target: agent,
    metrics: { exact: metrics.exact(), tools: metrics.toolCalls(), twoSearches: metrics.toolCalls(['lookup', 'lookup']) },
  });
  const sample = r.samples[0];
  assert.equal(sample.output, 'found it');
  assert.equal(sample.trace.turns, 2);
  assert.deepEqual(sample.trace.tool_calls.map((c) => c.name), ['lookup']);
  assert.equal(sample.scores.exact.value, 1);
  assert.equal(sample.scores.tools.value, 1);
  assert.ok(Math.abs(sample.scores.twoSearches.value - 2 / 3) < 1e-12);
  // A function target has no trace: tool metrics are unscored, saying so.
  const plain = await evaluate({ data: [{ id: 'q', input: 'x' }], target: () => 'y', metrics: { tools: metrics.toolCalls(['lookup']) } });
  assert.match(plain.samples[0].scores.tools.unscored, /no trace/);
});

test('clustered standard errors when cases name a cluster (CR1, as the Rust evaluator computes them)', async () => {
  // Two documents, three questions each: right, right, wrong about the first; wrong, wrong,
  // right about the second. Mean 0.5; the residuals sum to +0.5 and −0.5 per cluster, so
  // SE = √(2/1 · (0.25 + 0.25)) / 6 = 1/6.
  const right = new Set(['a1', 'a2', 'b3']);
  const cases = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map((id) => ({ id, input: id, expected: 'yes', cluster: `doc-${id[0]}` }));
  const r = await evaluate({
    data: cases,
    target: async (input) => (right.has(input) ? 'yes' : 'no'),
    metrics: { exact: metrics.exact() },
  });
  const exact = r.metrics.find((m) => m.name === 'exact');
  assert.equal(exact.clusters, 2);
  assert.ok(Math.abs(exact.clustered_std_error - 1 / 6) < 1e-12, String(exact.clustered_std_error));
  assert.deepEqual(r.samples.map((s) => s.cluster), cases.map((c) => c.cluster));
  // A case without a cluster is its own; without any cluster there is no clustered figure.
  const mixed = await evaluate({
    data: [...cases.slice(0, 3), { id: 'solo', input: 'b3', expected: 'yes' }],
    target: async (input) => (right.has(input) ? 'yes' : 'no'),
    metrics: { exact: metrics.exact() },
  });
  assert.equal(mixed.metrics[0].clusters, 2);
  const plain = await evaluate({ data, target, metrics: { exact: metrics.exact() } });
  assert.equal(plain.metrics[0].clustered_std_error, null);
  assert.equal(plain.metrics[0].clusters, null);
});
