'use client';
// A workflow page on @miyabi/react: start a run, watch its steps live, decide its approval gate
// (the plan is editable), see the result.
import { useState } from 'react';
import { ApprovalCard, RunTimeline, useApprovals, useRun, useWorkflow } from '@miyabi/react';

const api = { baseUrl: '/api/miyabi' };

export default function WorkflowPage() {
  const [change, setChange] = useState('Fix the login bug');
  const { start, runId, pending, error } = useWorkflow('ship', api);
  const { run, steps, events, live } = useRun(runId, api);
  const { approvals, decide } = useApprovals({ ...api, runId, intervalMs: runId === undefined ? 0 : 500 });
  return (
    <main>
      <h1>Ship a change</h1>
      <input data-testid="change" value={change} onChange={(e) => setChange(e.target.value)} />
      <button data-testid="start" disabled={pending} onClick={() => void start({ change })}>
        Start run
      </button>
      {error === undefined ? null : <p role="alert">{error.message}</p>}
      {runId === undefined ? null : (
        <section>
          <p>
            Run <code data-testid="run-id">{runId}</code>: <strong data-testid="run-status">{run?.status ?? 'starting'}</strong>
            {live ? ' (live)' : ''} — {events.length} events
          </p>
          <RunTimeline steps={steps} events={events} />
          {approvals
            .filter((a) => a.status === 'pending')
            .map((a) => (
              <ApprovalCard key={`${a.run_id}/${a.gate}`} approval={a} editable onDecide={(d) => decide(a.run_id, a.gate, d)} />
            ))}
          {run?.status === 'succeeded' ? <pre data-testid="run-output">{JSON.stringify(run.output)}</pre> : null}
        </section>
      )}
    </main>
  );
}
