/**
 * Unstyled components: an approval card and a run timeline. Every element carries a
 * `data-miyabi` attribute (and `className`s from `classNames`) so any styling system can theme them.
 */
import { useState, type ReactElement } from 'react';
import type { ApprovalInfo, DecisionInput, RunEventInfo, StepInfo } from './runs.js';

/** Class names for the parts of a component. */
export type ClassNames<K extends string> = Partial<Record<K, string>>;

/** Props of {@link ApprovalCard}. */
export interface ApprovalCardProps {
  readonly approval: ApprovalInfo;
  /** Called with the decision (the data edited in the card, when `editable`). */
  readonly onDecide: (decision: DecisionInput) => void | Promise<unknown>;
  /** Show the data in a text area the approver may edit (JSON). */
  readonly editable?: boolean;
  readonly className?: string;
  readonly classNames?: ClassNames<'title' | 'summary' | 'data' | 'actions' | 'approve' | 'reject' | 'error'>;
}

/** A pending gate: title, summary, the data under review (editable), approve and reject buttons. */
export function ApprovalCard({ approval, onDecide, editable = false, className, classNames = {} }: ApprovalCardProps): ReactElement {
  const [text, setText] = useState(() => JSON.stringify(approval.data, null, 2));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | undefined>(undefined);
  const decide = async (action: 'approve' | 'reject'): Promise<void> => {
    let decision: DecisionInput = { action };
    if (action === 'approve' && editable) {
      try {
        decision = { action, data: JSON.parse(text) as unknown };
      } catch {
        setError('the edited data is not valid JSON');
        return;
      }
    }
    setBusy(true);
    setError(undefined);
    try {
      await onDecide(decision);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section data-miyabi="approval-card" data-gate={approval.gate} data-run={approval.run_id} className={className}>
      <h3 data-miyabi="approval-title" className={classNames.title}>
        {approval.title}
      </h3>
      {approval.summary === '' ? null : (
        <p data-miyabi="approval-summary" className={classNames.summary}>
          {approval.summary}
        </p>
      )}
      {editable ? (
        <textarea data-miyabi="approval-data" className={classNames.data} value={text} onChange={(e) => setText(e.target.value)} rows={6} />
      ) : (
        <pre data-miyabi="approval-data" className={classNames.data}>
          {text}
        </pre>
      )}
      <div data-miyabi="approval-actions" className={classNames.actions}>
        <button type="button" data-miyabi="approve" className={classNames.approve} disabled={busy} onClick={() => void decide('approve')}>
          Approve
        </button>
        <button type="button" data-miyabi="reject" className={classNames.reject} disabled={busy} onClick={() => void decide('reject')}>
          Reject
        </button>
      </div>
      {error === undefined ? null : (
        <p role="alert" data-miyabi="approval-error" className={classNames.error}>
          {error}
        </p>
      )}
    </section>
  );
}

/** Props of {@link RunTimeline}. */
export interface RunTimelineProps {
  readonly steps: ReadonlyArray<StepInfo>;
  /** The run's events: a step's start time and attempts come from them. */
  readonly events?: ReadonlyArray<RunEventInfo>;
  readonly className?: string;
  readonly classNames?: ClassNames<'step' | 'path' | 'status' | 'duration'>;
}

/** A run's steps in the order they started: path, status, duration, attempts. */
export function RunTimeline({ steps, events = [], className, classNames = {} }: RunTimelineProps): ReactElement {
  const started = new Map<string, number>();
  for (const e of events) if (e.type === 'step-started' && typeof e.path === 'string' && !started.has(e.path)) started.set(e.path, e.at);
  const ordered = [...steps].sort((a, b) => (started.get(a.path) ?? a.updated_at) - (started.get(b.path) ?? b.updated_at));
  return (
    <ol data-miyabi="run-timeline" className={className}>
      {ordered.map((s) => {
        const from = started.get(s.path);
        const ms = from === undefined || s.status === 'running' ? undefined : Math.max(0, s.updated_at - from);
        return (
          <li key={s.path} data-miyabi="timeline-step" data-path={s.path} data-status={s.status} className={classNames.step}>
            <span data-miyabi="step-path" className={classNames.path}>
              {s.path}
            </span>{' '}
            <span data-miyabi="step-status" className={classNames.status}>
              {s.status}
            </span>
            {ms === undefined ? null : (
              <span data-miyabi="step-duration" className={classNames.duration}>
                {' '}
                {ms} ms
              </span>
            )}
            {s.attempt > 1 ? <span data-miyabi="step-attempts"> (attempt {s.attempt})</span> : null}
          </li>
        );
      })}
    </ol>
  );
}
