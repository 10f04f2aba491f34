// Type-level tests of the public API: compiled with `tsc --noEmit` by tests/types.test.mjs.
// Each `Expect<Equal<..>>` fails compilation if inference changes; each `@ts-expect-error`
// fails it if the mistake below it stops being an error.
import { z } from 'zod';
import { Engine, workflow, step, type Run, type RunEvent, type Workflow, MiyabiError, type ErrorCode } from '@miyabi/core';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

const Input = z.object({ issue: z.string(), size: z.number().default(1) });

const wf = workflow('issue-resolution', { input: Input })
  .step('analyze', async ({ input }) => {
    type _in = Expect<Equal<typeof input, { issue: string; size: number }>>;
    return { quality: 0.9, plan: input.issue };
  })
  .then('implement', ({ input }) => ({ ...input, patch: 'diff' }))
  .branch('review', ({ output }) => (output.quality > 0.8 ? 'deploy' : 'fix'), {
    deploy: ({ input }) => ({ deployed: input.patch }),
    fix: async ({ input }) => ({ fixed: input.plan }),
  })
  .parallel({
    test: () => 1,
    lint: async () => 'ok',
    security: step({ output: z.object({ safe: z.boolean() }), execute: () => ({ safe: true }) }),
  })
  .then('gate', {
    resume: z.object({ approved: z.boolean() }),
    execute: ({ input, resumeData, suspend }) => {
      type _r = Expect<Equal<typeof resumeData, { approved: boolean } | undefined>>;
      type _i = Expect<Equal<typeof input, { test: number; lint: string; security: { safe: boolean } }>>;
      return resumeData ?? suspend({ ask: input.lint });
    },
  })
  .map('flag', ({ input }) => input.approved)
  .commit();

type _wf = Expect<Equal<typeof wf, Workflow<{ issue: string; size?: number | undefined }, boolean>>>;

const list = workflow<z.ZodArray<z.ZodNumber>>('list', { input: z.array(z.number()) })
  .foreach('double', ({ input }) => input * 2, { concurrency: 4 })
  .dountil('grow', ({ input }) => input.map((x) => x + 1), ({ output }) => output.length > 3)
  .sleep('nap', 10)
  .sleepUntil('later', () => new Date())
  .commit();
type _list = Expect<Equal<typeof list, Workflow<number[], number[]>>>;

const nested = workflow('outer', { input: z.array(z.number()) }).then('inner', list).commit();
type _nested = Expect<Equal<typeof nested, Workflow<number[], number[]>>>;

async function use(engine: Engine): Promise<void> {
  const run = await engine.start(wf, { issue: '#1' });
  type _run = Expect<Equal<typeof run, Run<boolean>>>;
  for await (const e of run.events()) {
    type _e = Expect<Equal<typeof e, RunEvent>>;
    const path: string | undefined = e.path;
    if (e.type === 'step-retrying') {
      const n: number = e.delayMs;
      void n;
    }
    void path;
  }
  // @ts-expect-error the input misses `issue`
  await engine.start(wf, { size: 2 });
  // @ts-expect-error foreach needs an array
  workflow('x').then('n', () => 1).foreach('each', () => 2);
  // @ts-expect-error a selector must name one of the arms
  workflow('x').branch('b', () => 'nope', { yes: () => 1 });
  try {
    await engine.resume(run.id, 'gate', { approved: true });
  } catch (e) {
    if (e instanceof MiyabiError) {
      const code: ErrorCode = e.code;
      void code;
    }
  }
}
void use;

// A durable evaluation takes the facade's own Engine.
import { durableEvaluation, metrics as evalMetrics, type EvalResults } from '@miyabi/core';
async function durableEvalTypes(engine: Engine): Promise<void> {
  const ev = durableEvaluation({
    engine,
    name: 'support',
    data: [{ id: '1', input: 'ship it', expected: 'deploy' }],
    target: async (input: string) => (input.includes('ship') ? 'deploy' : 'wait'),
    metrics: { exact: evalMetrics.exact() },
  });
  const r = await ev.run();
  type _results = Expect<Equal<typeof r, EvalResults & { readonly runId: string }>>;
  const id: string = await ev.start();
  void id;
}
void durableEvalTypes;
