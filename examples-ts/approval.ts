// Human approval across processes: one process starts a run that stops at an approval gate and
// exits; another process (hours or days later) decides the gate, and the run continues there.
//
//   node examples-ts/.out/approval.js start ./approval.db
//   node examples-ts/.out/approval.js inbox ./approval.db alice
//   node examples-ts/.out/approval.js approve ./approval.db <run-id> alice "ship it"
//   node examples-ts/.out/approval.js reject ./approval.db <run-id> alice "not today"
import { z } from 'zod';
import { Engine, approvalGate, workflow } from '@miyabi/core';

// Every process that may continue the run registers the same definition.
const release = workflow('release', { input: z.object({ version: z.string() }) })
  .step('changelog', ({ input }) => ({ version: input.version, notes: [`fix: empty config (${input.version})`] }))
  .awaitApproval(
    'sign-off',
    approvalGate({
      title: 'Publish the release?',
      summary: 'The changelog is ready; edit the notes if needed.',
      approvers: ['alice', 'team:release'],
      deadlineMs: 7 * 24 * 3600_000, // a week; durable: it fires even if no process runs then
      onTimeout: 'reject',
      schema: z.object({ version: z.string(), notes: z.array(z.string()).min(1) }),
    }),
  )
  .then('publish', ({ input }) =>
    input.approved ? { published: input.data.version, notes: input.data.notes, by: input.decided_by } : { published: null, reason: input.comment },
  )
  .commit();

const [command, db, ...rest] = process.argv.slice(2);
if (db === undefined) {
  console.error('usage: approval.js start|inbox|approve|reject <db> [...]');
  process.exit(2);
}
const engine = await Engine.open({ store: `sqlite:${db}`, workflows: [release] });

switch (command) {
  case 'start': {
    const run = await engine.start(release, { version: 'v1.4.1' });
    console.log(JSON.stringify({ id: run.id, status: run.status, waiting: run.suspended.map((s) => s.path) }));
    break;
  }
  case 'inbox': {
    const who = rest[0] ?? 'alice';
    for (const a of await engine.approvals.inbox({ id: who })) {
      console.log(JSON.stringify({ run: a.runId, gate: a.gate, title: a.title, data: a.data, deadline: a.deadlineAt?.toISOString() }));
    }
    break;
  }
  case 'approve':
  case 'reject': {
    const [runId, who = 'alice', comment] = rest;
    if (runId === undefined) throw new Error(`${command} needs a run id`);
    const gate = await engine.approvals.decide(runId, 'sign-off', { id: who }, { action: command, ...(comment === undefined ? {} : { comment }) });
    // The decision continues the run here, in the background: wait for it to settle.
    let info = await engine.get(runId);
    while (info !== null && info.status === 'running') {
      await new Promise((r) => setTimeout(r, 10));
      info = await engine.get(runId);
    }
    console.log(JSON.stringify({ gate: gate.status, status: info?.status, output: info?.output }));
    break;
  }
  default:
    console.error(`unknown command ${command}`);
    process.exit(2);
}
engine.close();
