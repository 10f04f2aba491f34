// Approval gates from TypeScript: awaitApproval, engine.approvals, deadlines, decisions from
// another process, and engine.serve (the HTTP API deciding a gate of a JS-driven run).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { z } from 'zod';
import {
  Engine,
  workflow,
  approvalGate,
  webhook,
  ForbiddenError,
  ConflictError,
  ValidationError,
} from '@miyabi/core';
import { tempDir, runNode } from './helpers.mjs';

function ship(gateOptions) {
  return workflow('ship', { input: z.object({ issue: z.string() }) })
    .step('generate-code', ({ input }) => ({ patch: `fix for ${input.issue}`, replicas: 2 }))
    .awaitApproval('code-review', approvalGate({ approvers: ['alice', 'team:leads'], ...gateOptions }))
    .then('deploy', ({ input }) => ({ deployed: input.approved, patch: input.data.patch, by: input.decided_by }))
    .commit();
}

/** Waits until the run reaches `status` (polling the store). */
async function until(engine, id, status) {
  for (let i = 0; i < 1000; i++) {
    const r = await engine.get(id);
    if (r.status === status) return r;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`run ${id} never reached ${status}`);
}

test('a JS workflow waits at a gate; an edit-and-approve continues it with the edited data', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  t.after(() => engine.close());
  const wf = ship({
    title: 'Review the patch',
    schema: z.object({ patch: z.string(), replicas: z.number().int().max(5) }),
  });
  const run = await engine.start(wf, { issue: '#715' });
  assert.equal(run.status, 'suspended');
  assert.equal(run.suspended[0].path, 'code-review');

  const inbox = await engine.approvals.inbox({ id: 'bob', teams: ['leads'] });
  assert.equal(inbox.length, 1);
  assert.equal(inbox[0].title, 'Review the patch');
  assert.deepEqual(inbox[0].data, { patch: 'fix for #715', replicas: 2 });
  assert.ok(inbox[0].createdAt instanceof Date);

  await assert.rejects(
    engine.approvals.decide(run.id, 'code-review', { id: 'mallory' }, { action: 'approve' }),
    (e) => e instanceof ForbiddenError && e.code === 'FORBIDDEN' && /team:leads/.test(e.message),
  );
  await assert.rejects(
    engine.approvals.decide(run.id, 'code-review', { id: 'alice' }, { action: 'approve', data: { patch: 'x', replicas: 50 } }),
    (e) => e instanceof ValidationError && /\/replicas/.test(e.message),
  );
  const decided = await engine.approvals.decide(run.id, 'code-review', { id: 'alice' }, {
    action: 'approve',
    data: { patch: 'better fix', replicas: 3 },
    comment: 'tightened',
  });
  assert.equal(decided.status, 'approved');
  const done = await until(engine, run.id, 'succeeded');
  assert.deepEqual(done.output, { deployed: true, patch: 'better fix', by: ['alice'] });
  await assert.rejects(
    engine.approvals.decide(run.id, 'code-review', { id: 'bob', teams: ['leads'] }, { action: 'reject' }),
    (e) => e instanceof ConflictError && /already approved/.test(e.message),
  );
  const trail = await engine.approvals.audit({ runId: run.id });
  assert.deepEqual(
    trail.map((r) => r.action),
    ['requested', 'edited-and-approved', 'decided'],
  );
  assert.deepEqual(trail[1].diff, [{ op: 'replace', path: '/patch', value: 'better fix' }, { op: 'replace', path: '/replicas', value: 3 }]);
  assert.equal((await engine.approvals.get(run.id, 'code-review')).delivered, true);
});

test('a deadline rejects the gate by itself', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  t.after(() => engine.close());
  const run = await engine.start(ship({ deadlineMs: 50, onTimeout: 'reject' }), { issue: '#1' });
  assert.equal(run.status, 'suspended');
  const done = await until(engine, run.id, 'succeeded');
  assert.equal(done.output.deployed, false);
  const gate = await engine.approvals.get(run.id, 'code-review');
  assert.equal(gate.status, 'rejected');
  assert.equal(gate.output.timed_out, true);
});

test('cancelling a run closes its gate: it leaves the inbox and a later decision is a conflict', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  t.after(() => engine.close());
  const run = await engine.start(ship({}), { issue: '#9' });
  assert.equal(run.status, 'suspended');
  assert.equal((await engine.approvals.inbox({ id: 'alice' })).length, 1);
  const cancelled = await engine.cancel(run.id);
  assert.equal(cancelled.status, 'cancelled');
  /** @type {import('@miyabi/core').ApprovalStatus} */
  const status = (await engine.approvals.get(run.id, 'code-review')).status;
  assert.equal(status, 'closed');
  assert.equal((await engine.approvals.inbox({ id: 'alice' })).length, 0);
  const closed = await engine.approvals.list({ status: 'closed' });
  assert.deepEqual(closed.map((g) => g.runId), [run.id]);
  await assert.rejects(
    engine.approvals.decide(run.id, 'code-review', { id: 'alice' }, { action: 'approve' }),
    (e) => e instanceof ConflictError && /closed|cancelled/.test(e.message),
  );
  await assert.rejects(engine.approvals.list({ status: 'done' }), /unknown status `done`.*closed/);
});

test('a decision taken in another process is picked up by the engine that has the workflow', async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const engine = await Engine.open({ store: `sqlite:${db}` });
  t.after(() => engine.close());
  const run = await engine.start(ship({}), { issue: '#2' });
  const script = `
    import { Engine } from '@miyabi/core';
    const e = await Engine.open({ store: 'sqlite:${db.replaceAll('\\', '\\\\')}' });
    const a = await e.approvals.decide('${run.id}', 'code-review', { id: 'alice' }, { action: 'reject', comment: 'not now' });
    console.log(JSON.stringify({ status: a.status, delivered: a.delivered }));
  `;
  const child = await runNode('--input-type=module', ['-e', script], { cwd: process.cwd() });
  assert.equal(child.code, 0, child.stderr);
  assert.deepEqual(JSON.parse(child.stdout.trim()), { status: 'rejected', delivered: false });
  const done = await until(engine, run.id, 'succeeded');
  assert.equal(done.output.deployed, false);
});

test('engine.serve: the HTTP API decides a gate of a JS-driven run', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  const server = await engine.serve({ port: 0, tokens: [{ token: 'tok-alice', id: 'alice' }] });
  t.after(async () => {
    await server.close();
    engine.close();
  });
  const run = await engine.start(ship({ notify: [webhook('http://127.0.0.1:9/unused', 's3cret')] }), { issue: '#3' });
  const unauth = await fetch(`${server.url}/api/approvals`);
  assert.equal(unauth.status, 401);
  const inbox = await (await fetch(`${server.url}/api/approvals`, { headers: { authorization: 'Bearer tok-alice' } })).json();
  assert.equal(JSON.stringify(inbox).includes(run.id), true);
  const res = await fetch(`${server.url}/api/approvals/${run.id}/code-review/decision`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok-alice', 'content-type': 'application/json' },
    body: JSON.stringify({ action: 'approve', comment: 'from the API' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const done = await until(engine, run.id, 'succeeded');
  assert.deepEqual(done.output, { deployed: true, patch: 'fix for #3', by: ['alice'] });
  const page = await fetch(`${server.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
});
