// The README's Node quickstart, type-checked by tests/types.test (keep in sync with README.md).
import { z } from 'zod';
import { Engine, workflow } from '@miyabi/core';

const wf = workflow('issue-resolution', { input: z.object({ issue: z.string() }) })
  .step('analyze', async ({ input }) => ({ quality: 0.9, plan: `fix ${input.issue}` }))
  .then('implement', ({ input }) => ({ ...input, patch: 'diff' }))
  .branch('review', ({ output }) => (output.quality > 0.8 ? 'deploy' : 'fix'), {
    deploy: ({ input }) => ({ deployed: input.patch }),
    fix: async ({ input }) => ({ deployed: `${input.patch} (fixed)` }),
  })
  .parallel({ test: () => 'ok', lint: () => 'ok' })
  .then('approve', {
    resume: z.object({ approved: z.boolean() }),
    execute: ({ resumeData, suspend }) => resumeData ?? suspend({ question: 'ship it?' }),
  })
  .commit();

const engine = await Engine.open({ store: 'sqlite:./miyabi.db', workflows: [wf] });
const run = await engine.start(wf, { issue: '#715' });          // typed from the zod schema
for await (const event of run.events()) console.log(event.type, event.path ?? '');
const done = await engine.resume(run.id, 'approve', { approved: true }); // any process, same file
void done;
