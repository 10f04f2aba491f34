// engine.serve(): the HTTP API starts, resumes and continues (decided approval gates) runs of
// workflows with JS steps, over real HTTP on loopback, and this engine drives them on its event
// loop. Runs are followed through the API's own server-sent events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import { Engine, workflow, approvalGate } from '@miyabi/core';
import { tempDir } from './helpers.mjs';

const TOKEN = 'tok-alice-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

async function serveEngine(t, workflows) {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, workflows });
  const server = await engine.serve({ port: 0, tokens: [{ token: TOKEN, id: 'alice' }] });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  const api = async (method, path, body) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...auth, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  return { engine, server, api };
}

/**
 * Reads the API's event stream of a run (GET /api/runs/{id}/events) after `lastId`, until an
 * event whose type is in `until`; returns the events read.
 */
async function eventsUntil(server, id, until, lastId = 0) {
  const ctl = new AbortController();
  const res = await fetch(`${server.url}/api/runs/${id}/events`, {
    headers: { ...auth, 'last-event-id': String(lastId) },
    signal: ctl.signal,
  });
  assert.equal(res.status, 200);
  const events = [];
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).trim())
          .join('\n');
        if (data === '') continue;
        const ev = JSON.parse(data);
        events.push(ev);
        if (until.includes(ev.type)) return events;
      }
    }
  } finally {
    ctl.abort();
  }
  assert.fail(`the event stream ended before ${until.join('/')}: ${JSON.stringify(events)}`);
}

// `n` has a zod default: a run started through the API gets it, as one started from code would.
const compute = workflow('compute', { input: z.object({ x: z.number(), n: z.number().default(10) }) })
  .step('add', ({ input }) => ({ sum: input.x + input.n }))
  .then('double', async ({ input, emit }) => {
    await new Promise((r) => setTimeout(r, 5));
    emit('doubled', { from: input.sum });
    return { result: input.sum * 2, pid: process.pid };
  })
  .commit();

test('POST /api/workflows/{id}/runs starts a JS workflow and this engine drives it to success', async (t) => {
  const { engine, server, api } = await serveEngine(t, [compute]);
  const started = await api('POST', '/api/workflows/compute/runs', { input: { x: 1 } });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const id = started.body.id;

  const events = await eventsUntil(server, id, ['run-finished']);
  const finished = events.at(-1);
  assert.equal(finished.status, 'succeeded', finished.error);
  assert.deepEqual(finished.output, { result: 22, pid: process.pid });

  const { status, body } = await api('GET', `/api/runs/${id}`);
  assert.equal(status, 200);
  assert.equal(body.run.status, 'succeeded');
  assert.deepEqual(body.run.input, { x: 1, n: 10 }, 'the input went through the zod schema');
  assert.deepEqual(body.run.output, { result: 22, pid: process.pid });
  assert.deepEqual(
    body.steps.map((s) => [s.path, s.status]),
    [
      ['add', 'succeeded'],
      ['double', 'succeeded'],
    ],
  );
  assert.deepEqual(
    events.map((e) => e.type),
    ['run-started', 'step-started', 'step-output', 'step-started', 'custom', 'step-output', 'run-finished'],
  );
  assert.deepEqual(events.find((e) => e.type === 'custom').data, { from: 11 });
  // The run is this engine's, and its log is the same seen from code.
  const log = [];
  for await (const e of engine.events(id)) log.push(e.type);
  assert.deepEqual(
    log,
    events.map((e) => e.type),
  );
});

test('input the workflow schema refuses is a 422 and writes no run', async (t) => {
  const { engine, api } = await serveEngine(t, [compute]);
  const bad = await api('POST', '/api/workflows/compute/runs', { input: { x: 'one' } });
  assert.equal(bad.status, 422, JSON.stringify(bad.body));
  assert.equal(bad.body.error.code, 'VALIDATION');
  assert.match(bad.body.error.message, /workflow `compute` input/);
  assert.deepEqual(await engine.list(), []);
  const unknown = await api('POST', '/api/workflows/nope/runs', { input: {} });
  assert.equal(unknown.status, 404);
});

const review = workflow('review')
  .step('draft', ({ input }) => ({ text: `draft ${input.topic}` }))
  .then('approve', {
    resume: z.object({ ok: z.boolean() }),
    execute: ({ input, resumeData, suspend }) => (resumeData === undefined ? suspend({ question: 'publish?' }) : { ...input, ok: resumeData.ok }),
  })
  .then('publish', ({ input }) => ({ published: input.ok, text: input.text }))
  .commit();

test('POST /api/runs/{id}/resume resumes a suspended JS run and this engine drives it', async (t) => {
  const { server, api } = await serveEngine(t, [review]);
  const { body } = await api('POST', '/api/workflows/review/runs', { input: { topic: 'http' } });
  const id = body.id;
  const first = await eventsUntil(server, id, ['run-suspended']);
  assert.deepEqual(first.at(-1).paths, ['approve']);

  const wrongPath = await api('POST', `/api/runs/${id}/resume`, { path: 'draft', data: { ok: true } });
  assert.equal(wrongPath.status, 409, JSON.stringify(wrongPath.body));
  const badData = await api('POST', `/api/runs/${id}/resume`, { path: 'approve', data: { ok: 'yes' } });
  assert.equal(badData.status, 422, JSON.stringify(badData.body));
  assert.equal((await api('GET', `/api/runs/${id}`)).body.run.status, 'suspended', 'refused resumes leave it suspended');

  const resumed = await api('POST', `/api/runs/${id}/resume`, { path: 'approve', data: { ok: true } });
  assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
  assert.deepEqual(resumed.body, { id });
  const rest = await eventsUntil(server, id, ['run-finished'], first.at(-1).seq);
  assert.equal(rest[0].type, 'run-resumed');
  assert.equal(rest.at(-1).status, 'succeeded', rest.at(-1).error);
  const run = (await api('GET', `/api/runs/${id}`)).body.run;
  assert.equal(run.status, 'succeeded');
  assert.deepEqual(run.output, { published: true, text: 'draft http' });
});

const ship = workflow('ship-http')
  .step('build', ({ input }) => ({ patch: `fix ${input.issue}` }))
  .awaitApproval('code-review', approvalGate({ approvers: ['alice'] }))
  .then('deploy', ({ input }) => ({ deployed: input.approved, patch: input.data.patch }))
  .commit();

test('a gate of a run started over HTTP, decided over HTTP, is handed to this engine at once', async (t) => {
  const { server, api } = await serveEngine(t, [ship]);
  const { body } = await api('POST', '/api/workflows/ship-http/runs', { input: { issue: '#9' } });
  const id = body.id;
  const first = await eventsUntil(server, id, ['run-suspended']);
  const decided = await api('POST', `/api/approvals/${id}/code-review/decision`, { action: 'approve' });
  assert.equal(decided.status, 200, JSON.stringify(decided.body));
  assert.equal(decided.body.approval.status, 'approved');
  // Delivered by the decision itself (not left to the once-a-second approvals worker).
  assert.equal(decided.body.approval.delivered, true);
  const rest = await eventsUntil(server, id, ['run-finished'], first.at(-1).seq);
  assert.equal(rest.at(-1).status, 'succeeded', rest.at(-1).error);
  assert.deepEqual(rest.at(-1).output, { deployed: true, patch: 'fix #9' });
});

// The step ends only when its signal aborts: the API's cancellation must reach this engine's
// driver at once (the engine's own flag is read only when the driver wakes, which here would be
// never). The timeout only turns such a deadlock into a failure.
test('a cancellation over HTTP aborts the steps of a JS run at once', { timeout: 120_000 }, async (t) => {
  let release;
  const started = new Promise((r) => (release = r));
  const slow = workflow('slow-http')
    .step('wait', ({ signal }) => {
      release();
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    })
    .commit();
  const { server, api } = await serveEngine(t, [slow]);
  const { body } = await api('POST', '/api/workflows/slow-http/runs', { input: null });
  await started;
  const cancelled = await api('POST', `/api/runs/${body.id}/cancel`);
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.run.status, 'cancelled');
  const events = await eventsUntil(server, body.id, ['run-finished']);
  assert.equal(events.at(-1).status, 'cancelled');
});

test('serve tokens carry roles and workflow scopes: a viewer reads, a scoped operator starts its workflows only', async (t) => {
  const billing = workflow('billing.refund').step('refund', ({ input }) => ({ refunded: input })).commit();
  const ops = workflow('ops.restart').step('restart', () => ({ restarted: true })).commit();
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}`, workflows: [billing, ops] });
  const server = await engine.serve({
    port: 0,
    tokens: [
      { token: 'tok-vic-0123456789', id: 'vic', roles: ['viewer'] },
      { token: 'tok-olga-0123456789', id: 'olga', roles: ['operator'], workflows: ['billing.*'] },
    ],
  });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  const call = async (token, method, path, body) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const me = await call('tok-olga-0123456789', 'GET', '/api/me');
  assert.deepEqual(me.body.roles, ['operator']);
  assert.deepEqual(me.body.workflows, ['billing.*']);
  const refused = await call('tok-vic-0123456789', 'POST', '/api/workflows/billing.refund/runs', { input: 5 });
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, 'FORBIDDEN');
  const started = await call('tok-olga-0123456789', 'POST', '/api/workflows/billing.refund/runs', { input: 5 });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const hidden = await call('tok-olga-0123456789', 'POST', '/api/workflows/ops.restart/runs', { input: null });
  assert.equal(hidden.status, 404, 'out of scope: as if it did not exist');
  const listed = await call('tok-vic-0123456789', 'GET', '/api/workflows');
  assert.equal(listed.status, 200);
  await assert.rejects(
    engine.serve({ port: 0, tokens: [{ token: 'tok-x-0123456789', id: 'x', roles: ['superuser'] }] }),
    /tokens\[0\] \(`x`\): unknown role `superuser`/,
  );
});
