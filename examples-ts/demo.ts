// The Miyabi demo in TypeScript: the brief's issue-resolution workflow on the Rust engine, from
// Node, stored in a SQLite file.
//
//   analyze (an agent: a model call, native) → implement → review (deploy | fix loop)
//   → test ∥ lint ∥ security → code-review (a human approves: the run suspends) → deploy
//
//   npm run demo                    # asks for the approval on stdin
//   npm run demo -- --yes           # approves on its own
//   npm run demo -- --db runs.db --resume <run-id>
//
// With OPENAI_API_KEY set, `analyze` asks openai/gpt-4o-mini about the issue. Without one it
// says so and uses a local replay of recorded OpenAI traffic (tests/fixtures/recorded), whose
// answer is about something else entirely (an invented holiday): it shows the agent step
// working, not a real analysis.
//
// The run suspends at `code-review` and is stored: answer nothing (close stdin, Ctrl-D) and this
// process exits, leaving it suspended; `--resume <run-id>` continues it from another process.
import { createInterface } from 'node:readline/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { Agent, Engine, FatalError, approvalGate, model, workflow, type ModelLike, type RunEvent } from '@miyabi/core';
import { RECORDED_DIR, RECORDED_MODEL, startReplay, type Replay } from './replay.js';

const args = process.argv.slice(2);
let yes = false;
let db = 'miyabi-demo.db';
let resumeId: string | undefined;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--yes' || a === '-y') yes = true;
  else if (a === '--db') db = args[++i] ?? fail('--db needs a path');
  else if (a === '--resume') resumeId = args[++i] ?? fail('--resume needs a run id');
  else fail(`unknown argument \`${a}\` (try --yes, --db PATH, --resume RUN_ID)`);
}

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Who approves in the demo: the user running it. */
const reviewer = process.env.USER ?? 'you';

// The model: the real one with a key, else the local replay of recorded traffic.
let replay: Replay | undefined;
let analyst: ModelLike;
if (process.env.OPENAI_API_KEY) {
  analyst = 'openai/gpt-4o-mini';
  console.log('model: openai/gpt-4o-mini (OPENAI_API_KEY is set)');
} else {
  replay = await startReplay();
  analyst = model(RECORDED_MODEL, { baseURL: replay.url, apiKey: 'replay', protocol: 'openai-chat' });
  console.log(`no OPENAI_API_KEY: using a local replay of recorded ${RECORDED_MODEL} traffic from ${RECORDED_DIR}`);
  console.log('  (the recording answers another prompt: the analysis text below is not about the issue)');
}

const Issue = z.object({ number: z.number().int(), title: z.string() });
const Patch = z.object({ issue: z.number(), files: z.array(z.string()), quality: z.number(), summary: z.string() });
type Patch = z.infer<typeof Patch>;

const analyze = new Agent({
  name: 'analyze',
  model: analyst,
  instructions: 'You triage bug reports for a Rust project. In three sentences: the likely cause, the file to change, and the fix.',
  maxTokens: 300,
});

const revise = ({ input }: { readonly input: Patch }): Patch => ({ ...input, quality: Math.round((input.quality + 0.12) * 100) / 100 });

export const issueResolution = workflow('issue-resolution', { input: Issue })
  .step('intake', ({ input, state }) => {
    state.set('issue', input);
    return `Issue #${input.number}: ${input.title}`;
  })
  .then('analyze', analyze, { retry: 2 })
  .then('implement', async ({ input, state }): Promise<Patch> => {
    await sleep(300);
    const issue = state.get<{ number: number; title: string }>('issue');
    state.set('analysis', input.slice(0, 200));
    return { issue: issue?.number ?? 0, files: ['src/config.rs'], quality: 0.62, summary: 'return the default config for an empty file' };
  })
  .branch('review', ({ output }) => (output.quality > 0.8 ? 'deploy' : 'fix'), {
    deploy: ({ input }) => input,
    fix: workflow('fix', { input: Patch })
      .dountil(
        'revise',
        async (ctx) => {
          await sleep(250);
          return revise(ctx);
        },
        ({ output }) => output.quality > 0.8,
        { maxIterations: 3 },
      )
      .commit(),
  })
  .parallel({
    test: async ({ emit }) => {
      await sleep(600);
      emit('progress', { passed: 48, total: 48 });
      return { passed: 48, failed: 0 };
    },
    lint: async () => {
      await sleep(200);
      return { warnings: 0 };
    },
    // Fails once (a retryable error), then passes: the engine retries it.
    security: {
      retry: { attempts: 3, initialDelayMs: 200 },
      execute: async ({ attempt }: { readonly attempt: number }) => {
        await sleep(300);
        if (attempt === 1) throw new Error('advisory database is busy');
        return { findings: 0 };
      },
    },
  })
  // The human in the loop: an approval gate (durable; decided through engine.approvals, the
  // HTTP API, the dashboard or the CLI; audited).
  .awaitApproval(
    'code-review',
    approvalGate({ title: 'Deploy the fix?', summary: 'test, lint and security passed', approvers: [reviewer] }),
  )
  .then('deploy', {
    nonIdempotent: 'suspend',
    execute: async ({ input, idempotencyKey }) => {
      if (!input.approved) return { deployed: false, reason: 'rejected in review' };
      await sleep(300);
      // The key is stable across retries and processes: a real deploy API would dedupe on it.
      return { deployed: true, version: 'v1.4.1', key: idempotencyKey };
    },
  })
  .commit();

/** Waits until the run no longer runs (a decided gate continues it in the background). */
async function untilSettled(engine: Engine, runId: string) {
  for (;;) {
    const r = await engine.get(runId);
    if (r !== null && r.status !== 'running') return r;
    await sleep(20);
  }
}

function short(v: unknown): string {
  const s = JSON.stringify(v) ?? 'null';
  return s.length > 72 ? `${s.slice(0, 72)}…` : s;
}

function line(e: RunEvent): string {
  let what = '';
  switch (e.type) {
    case 'run-started':
      what = e.workflow;
      break;
    case 'step-started':
      what = e.attempt > 1 ? `${e.path} (attempt ${e.attempt})` : e.path;
      break;
    case 'step-output':
      what = `${e.path.padEnd(21)}${short(e.output)}`;
      break;
    case 'step-retrying':
      what = `${e.path.padEnd(21)}${e.error.split('\n')[0] ?? ''}; retrying in ${e.delayMs} ms`;
      break;
    case 'step-failed':
      what = `${e.path.padEnd(21)}${e.error.split('\n')[0] ?? ''}`;
      break;
    case 'step-suspended':
    case 'run-resumed':
      what = e.path;
      break;
    case 'run-suspended':
      what = e.paths.join(', ');
      break;
    case 'run-finished':
      what = e.status;
      break;
    case 'custom':
      what = `${e.path.padEnd(21)}${e.name} ${short(e.data)}`;
      break;
  }
  return `  ${String(e.seq).padStart(3)}  ${e.type.padEnd(15)}${what}`;
}

/** Prints a run's events from `from` while this engine drives it; returns the next seq. */
async function follow(engine: Engine, runId: string, from: number): Promise<number> {
  let next = from;
  for await (const e of engine.events(runId, from)) {
    console.log(line(e));
    next = e.seq + 1;
  }
  return next;
}

async function ask(question: string): Promise<boolean | undefined> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
  const closed = new Promise<undefined>((r) => rl.once('close', () => r(undefined)));
  try {
    for (;;) {
      const answer = await Promise.race([rl.question(question), closed]);
      if (answer === undefined) return undefined;
      if (process.stdin.isTTY !== true) console.log(answer.trim());
      const a = answer.trim().toLowerCase();
      if (a === 'y' || a === 'yes') return true;
      if (a === 'n' || a === 'no') return false;
    }
  } finally {
    rl.close();
  }
}

const shown = resolve(db);
const engine = await Engine.open({ store: `sqlite:${db}`, workflows: [issueResolution] });
console.log(`\nMiyabi demo (TypeScript): workflow \`${issueResolution.id}\``);
console.log(`runs are stored in ${shown} (SQLite)\n`);

try {
  let runId: string;
  let next = 1;
  if (resumeId === undefined) {
    const issue = { number: 42, title: 'crash when the config file is empty' };
    const handle = await engine.spawn(issueResolution, issue);
    runId = handle.id;
    console.log(`run ${runId} started`);
    next = await follow(engine, runId, 1);
    await handle.result;
  } else {
    runId = resumeId;
    if ((await engine.get(runId)) === null) fail(`no run ${runId} in ${db}`);
    console.log(`run ${runId}: its stored events`);
    next = await follow(engine, runId, 1);
  }

  const run = await engine.get(runId);
  const suspension = run?.suspended[0];
  if (run === null || suspension === undefined) {
    console.log(`\nrun ${runId} is ${run?.status ?? 'missing'}, nothing to approve`);
    if (run?.error !== undefined) throw new FatalError(run.error);
  } else {
    const gate = await engine.approvals.get(runId, suspension.path);
    console.log(`\nrun ${runId} waits at approval gate \`${gate.gate}\`: ${gate.title}`);
    console.log(`  ${gate.summary}; checks: ${short(gate.data)}`);
    console.log(`  approvers: ${gate.approvers.join(', ')}`);
    console.log(`It is committed to ${db}: this process may exit now, and any other can resume it:`);
    console.log(`  npm run demo -- --db ${db} --resume ${runId}\n`);

    let approved: boolean | undefined;
    if (yes) {
      console.log('Approve the deploy? [y/n] y (--yes)');
      approved = true;
    } else {
      approved = await ask('Approve the deploy? [y/n] ');
    }
    if (approved === undefined) {
      console.log('\nno answer on stdin: the run stays suspended; resume it with the command above');
    } else {
      await engine.approvals.decide(runId, gate.gate, { id: reviewer }, {
        action: approved ? 'approve' : 'reject',
        comment: approved ? 'approved from the demo' : 'rejected from the demo',
      });
      await follow(engine, runId, next);
      const finished = await untilSettled(engine, runId);
      for (const r of await engine.approvals.audit({ runId })) {
        console.log(`  audit: ${r.action.padEnd(20)} by ${r.actor.padEnd(16)} ${r.comment ?? ''}`);
      }
      console.log(`\nrun ${runId} ${finished.status}`);
      console.log(`output: ${JSON.stringify(finished.output)}`);
      if (finished.status !== 'succeeded') throw new FatalError(finished.error ?? 'the run did not succeed');
    }
  }
} finally {
  replay?.close();
}
