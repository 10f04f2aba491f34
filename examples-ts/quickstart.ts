// Quickstart: a typed workflow with JS steps, a branch, parallel checks and a review gate that
// suspends until someone approves; runs stored in a SQLite file.
//
//   npm run build && node --test tests/examples.test.mjs      (type-checks and runs this file)
import { z } from 'zod';
import { Engine, workflow } from '@miyabi/core';

const Issue = z.object({ issue: z.string(), size: z.number().int().default(1) });

export const issueResolution = workflow('issue-resolution', { input: Issue })
  .step('analyze', async ({ input }) => ({
    issue: input.issue,
    quality: input.size > 3 ? 0.5 : 0.9,
    plan: `fix ${input.issue}`,
  }))
  .then('implement', ({ input }) => ({ ...input, patch: `diff for ${input.issue}` }))
  .branch('triage', ({ output }) => (output.quality > 0.8 ? 'fast' : 'careful'), {
    fast: ({ input }) => ({ plan: input.plan, checks: 1 }),
    careful: async ({ input }) => ({ plan: `${input.plan} (carefully)`, checks: 3 }),
  })
  .parallel({
    test: ({ input }) => `${input.checks} test suite(s) passed`,
    lint: () => 'lint clean',
    plan: ({ input }) => input.plan,
  })
  .then(
    'review',
    {
      resume: z.object({ approved: z.boolean(), by: z.string() }),
      execute: ({ input, resumeData, suspend }) => ({
        plan: input.plan,
        ...(resumeData ?? suspend({ question: `approve "${input.plan}"?` })),
      }),
    },
  )
  .then('deploy', ({ input, runId }) => ({ deployed: input.approved, by: input.by, runId }))
  .commit();

const dbPath = process.argv[2] ?? './miyabi-quickstart.db';
const engine = await Engine.open({ store: `sqlite:${dbPath}`, workflows: [issueResolution] });

const run = await engine.start(issueResolution, { issue: '#715' });
for await (const event of run.events()) {
  console.log(`${String(event.seq).padStart(2)} ${event.type}${event.path === undefined ? '' : ` ${event.path}`}`);
}
console.log(`run ${run.id} is ${run.status}; waiting at`, run.suspended);

// Usually another process (a web request, a Slack button) resumes it; here we do it at once.
const done = await engine.resume<{ deployed: boolean; by: string }>(run.id, 'review', { approved: true, by: 'ada' });
console.log(`run ${done.id} ${done.status}:`, done.output);
if (done.status !== 'succeeded' || done.output?.deployed !== true) process.exit(1);
