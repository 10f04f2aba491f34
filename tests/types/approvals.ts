// Type-level tests of approval gates (compiled with `tsc --noEmit`, see inference.ts).
import { z } from 'zod';
import { Engine, approvalGate, slack, workflow, type Approval, type GateOutput } from '@miyabi/core';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

const gate = approvalGate({
  approvers: ['alice', 'team:leads'],
  policy: { quorum: 2 },
  deadlineMs: 3 * 24 * 3600_000,
  onTimeout: { escalate: ['cto'] },
  schema: z.object({ patch: z.string() }),
  notify: [slack('https://hooks.example/services/T/B/x')],
});

export const wf = workflow('ship', { input: z.object({ issue: z.string() }) })
  .step('generate-code', ({ input }) => ({ patch: `fix ${input.issue}` }))
  .awaitApproval('code-review', gate)
  .then('deploy', ({ input }) => {
    type _gate = Expect<Equal<typeof input, GateOutput<{ patch: string }>>>;
    const patch: string = input.data.patch;
    return input.approved ? { deployed: patch } : { deployed: null };
  })
  .commit();

export const parallel = workflow('checks')
  .parallel({ security: approvalGate({ approvers: ['sec'] }), legal: approvalGate() })
  .then('after', ({ input }) => {
    const ok: boolean = input.security.approved && input.legal.approved;
    return ok;
  })
  .commit();

export async function inbox(engine: Engine): Promise<Approval[]> {
  const pending = await engine.approvals.inbox({ id: 'bob', teams: ['leads'] });
  const first = pending[0];
  if (first !== undefined) {
    const a = await engine.approvals.decide(first.runId, first.gate, { id: 'bob' }, { action: 'approve', comment: 'ok' });
    type _status = Expect<Equal<typeof a.status, 'pending' | 'approved' | 'rejected' | 'closed'>>;
  }
  // @ts-expect-error: the action is approve or reject
  await engine.approvals.decide('r', 'g', { id: 'bob' }, { action: 'maybe' });
  return pending;
}
