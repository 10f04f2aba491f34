// Evaluation from TypeScript with the Rust pieces behind it: embeddings (embed, embedMany,
// cosineSimilarity), LLM judges as metrics of evaluate() (rubric scale, verdicts, unparseable
// answers unscored, the judge cache), the pairwise A/B judge (both orders), embedding
// similarity, and compareResults (the paired comparison `miyabi eval compare` makes) — against
// loopback servers speaking OpenAI's chat and embeddings APIs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  compareResults,
  cosineSimilarity,
  embed,
  embedMany,
  embeddingModel,
  embeddingSimilarity,
  evaluate,
  judges,
  metrics,
  model,
} from '@miyabi/core';
import { writeFileSync, existsSync } from 'node:fs';
import { completion, openaiServer, runNode, tempDir } from './helpers.mjs';

/** A loopback embeddings server: each text's vector is [length, count of 'a', 1]. */
async function embeddingsServer(t) {
  const requests = [];
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const j = JSON.parse(body);
    requests.push(j);
    const input = Array.isArray(j.input) ? j.input : [j.input];
    const data = input.map((s, index) => ({ object: 'embedding', index, embedding: [s.length, [...s].filter((c) => c === 'a').length, 1] }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ object: 'list', data, model: j.model, usage: { prompt_tokens: input.length * 2, total_tokens: input.length * 2 } }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return { url: `http://127.0.0.1:${server.address().port}/v1`, requests };
}

const emb = (url) => embeddingModel('openai/text-embedding-3-small', { baseURL: url, apiKey: 'k' });
const chat = (url) => model('openai/gpt-4.1-mini', { baseURL: url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 });

test('embed, embedMany and cosineSimilarity', async (t) => {
  const s = await embeddingsServer(t);
  const m = emb(s.url);
  const one = await embed({ model: m, value: 'banana' });
  assert.deepEqual(one.embedding, [6, 3, 1]);
  assert.deepEqual(one.usage, { tokens: 2 });
  const many = await embedMany({ model: m, values: ['a', 'bb', 'aaa'] });
  assert.deepEqual(many.embeddings, [
    [1, 1, 1],
    [2, 0, 1],
    [3, 3, 1],
  ]);
  assert.equal(s.requests.at(-1).model, 'text-embedding-3-small');
  assert.ok(Math.abs(cosineSimilarity([1, 0], [1, 0]) - 1) < 1e-12);
  assert.ok(Math.abs(cosineSimilarity([1, 0], [0, 1])) < 1e-12);
  assert.throws(() => cosineSimilarity([1], [1, 2]), /different lengths/);
  assert.deepEqual((await embedMany({ model: m, values: [] })).embeddings, []);
  await assert.rejects(embed({ model: 'nope/nothing', value: 'x' }), /nope/);
});

test('judges as metrics: a rubric on a scale, verdicts, unparseable answers unscored, the cache', async (t) => {
  const s = await openaiServer(t, (body) => {
    const user = body.messages.at(-1).content;
    if (user.includes('OUTPUT:\ngarbled')) return { json: completion({ text: 'I think it is fine' }) };
    if (body.messages[0].content.includes('"verdicts"')) {
      return { json: completion({ text: JSON.stringify({ verdicts: [{ statement: 'Paris is in France', verdict: 'yes' }, { statement: 'it has 3 people', verdict: 'no' }], reason: 'one wrong' }) }) };
    }
    return { json: completion({ text: JSON.stringify({ score: user.includes('great answer') ? 5 : 2, reason: 'judged' }) }) };
  });
  const cache = join(tempDir(t), 'judge.db');
  const data = [
    { id: 'good', input: 'q1', expected: 'Paris is in France' },
    { id: 'meh', input: 'q2', expected: 'Paris is in France' },
    { id: 'bad', input: 'q3', expected: 'Paris is in France' },
  ];
  const outputs = { q1: 'a great answer', q2: 'an answer', q3: 'garbled' };
  const run = () =>
    evaluate({
      data,
      target: (input) => outputs[input],
      metrics: {
        helpful: judges.rubric(chat(s.url), 'helpful and correct', { cache }),
        factual: judges.factuality(chat(s.url), { cache }),
      },
    });
  const r = await run();
  const score = (id, m) => r.samples.find((x) => x.case_id === id).scores[m];
  assert.equal(score('good', 'helpful').value, 1, '5 on 1–5');
  assert.equal(score('meh', 'helpful').value, 0.25, '2 on 1–5');
  assert.equal(score('bad', 'helpful').value, null);
  assert.match(score('bad', 'helpful').unscored, /helpful|parse|JSON/i);
  assert.equal(score('good', 'factual').value, 0.5, 'one of two statements holds');
  const calls = s.requests.length;
  assert.equal(calls, 6);
  // The same questions again: answered from the cache, the model is not called.
  const again = await run();
  assert.equal(s.requests.length, calls);
  assert.equal(again.samples.find((x) => x.case_id === 'good').scores.helpful.value, 1);
  // A rubric needs criteria; a bad kind of model is reported when scoring.
  assert.throws(() => judges.rubric(chat(s.url), undefined), /criteria/);
});

test('the goal-success judge: pass/fail from the judge, the goal and the criteria in its question', async (t) => {
  const s = await openaiServer(t, (body) => {
    const user = body.messages.at(-1).content;
    return { json: completion({ text: JSON.stringify({ achieved: user.includes('FINAL OUTPUT:\nrefunded'), reason: 'checked' }) }) };
  });
  const r = await evaluate({
    data: [
      { id: 'done', input: 'Refund order 42', expected: 'refunded in full' },
      { id: 'not', input: 'Refund order 43', expected: 'refunded in full' },
    ],
    target: (input) => (input.endsWith('42') ? 'refunded' : 'sorry'),
    metrics: { goal: judges.goalSuccess(chat(s.url)) },
  });
  const score = (id) => r.samples.find((x) => x.case_id === id).scores.goal;
  assert.equal(score('done').value, 1);
  assert.equal(score('done').metadata.achieved, true);
  assert.equal(score('not').value, 0);
  const q = s.requests[0].body;
  assert.match(q.messages[0].content, /"achieved"/);
  assert.match(q.messages.at(-1).content, /GOAL:\nRefund order 4[23]/);
  assert.match(q.messages.at(-1).content, /SUCCESS CRITERIA \(may be empty\):\nrefunded in full/);
  // A function target reports no tool calls; the judge is told so.
  assert.match(q.messages.at(-1).content, /the target reported no trace/);
});

test('the pairwise judge asks in both orders and counts agreement only', async (t) => {
  const s = await openaiServer(t, (body) => {
    const user = body.messages.at(-1).content;
    const a = user.split('OUTPUT A:\n')[1].split('\n')[0];
    return { json: completion({ text: JSON.stringify({ preferred: a.includes('detailed') ? 'A' : 'B', reason: 'more detail' }) }) };
  });
  const pj = judges.pairwise(chat(s.url), { criteria: 'more detailed' });
  const v = await pj.compare({ id: 'c1', input: 'explain tides' }, 'a detailed answer', 'short');
  assert.equal(v.preferred, 'a');
  assert.equal(s.requests.length, 2, 'asked in both orders');
  const w = await pj.compare({ id: 'c2', input: 'explain tides' }, 'short', 'a detailed answer');
  assert.equal(w.preferred, 'b');
});

test('embedding similarity as a metric, and compareResults between two runs', async (t) => {
  const s = await embeddingsServer(t);
  const data = Array.from({ length: 30 }, (_, i) => ({ id: `c${i}`, input: i, expected: 'aaaa' }));
  const similar = await evaluate({
    data: data.slice(0, 2),
    target: () => 'aaaa',
    metrics: { sim: embeddingSimilarity(emb(s.url)) },
  });
  assert.ok(Math.abs(similar.samples[0].scores.sim.value - 1) < 1e-6);
  const a = await evaluate({ name: 'a', data, target: (i) => (i % 2 === 0 ? 'aaaa' : 'x'), metrics: { exact: metrics.exact() } });
  const b = await evaluate({ name: 'b', data, target: () => 'aaaa', metrics: { exact: metrics.exact() } });
  const c = compareResults(a, b);
  const exact = c.metrics.find((m) => m.metric === 'exact');
  assert.equal(exact.verdict, 'better', JSON.stringify(exact));
  const back = compareResults(b, a);
  assert.equal(back.metrics.find((m) => m.metric === 'exact').verdict, 'worse');
  assert.throws(() => compareResults({ schema: 'nope' }, b), /not a miyabi\.eval\/v1 document/);

  // The npm package's `miyabi eval compare`: exit 0 when B is not worse, 100 on a significant
  // regression, 1 on a file it cannot read; no database is created.
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a.json'), JSON.stringify(a));
  writeFileSync(join(dir, 'b.json'), JSON.stringify(b));
  const bin = new URL('../bin/miyabi.mjs', import.meta.url).pathname;
  const better = await runNode(bin, ['eval', 'compare', 'a.json', 'b.json'], { cwd: dir });
  assert.equal(better.code, 0, better.stderr);
  assert.match(better.stdout, /exact\s+better/);
  const worse = await runNode(bin, ['eval', 'compare', 'b.json', 'a.json', '--json'], { cwd: dir });
  assert.equal(worse.code, 100, worse.stderr);
  assert.equal(JSON.parse(worse.stdout).metrics[0].verdict, 'worse');
  const missing = await runNode(bin, ['eval', 'compare', 'a.json', 'nope.json'], { cwd: dir });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.json/);
  assert.equal(existsSync(join(dir, 'miyabi.db')), false);
});
