// The engine and the workflow of the example, shared by the route handlers.
//
// One engine per server process, kept on `globalThis`: Next may load this module more than once
// (once per route bundle, and again on every hot reload in `next dev`), and every route must
// see the same engine, since a run's live events come from the engine that drives it.
import { z } from 'zod';
import { Engine, workflow } from '@miyabi/core';

/** outline → write (one section at a time, reporting progress) → assemble. */
export const report = workflow('report', { input: z.object({ topic: z.string().min(1) }) })
  .step('outline', ({ input }) => ({ topic: input.topic, sections: ['Background', 'Findings', 'Next steps'] }))
  .then('write', async ({ input, emit }) => {
    const sections: Array<{ title: string; text: string }> = [];
    for (const title of input.sections) {
      // Real work (a model call, a search) would go here.
      await new Promise((resolve) => setTimeout(resolve, 10));
      sections.push({ title, text: `${title} of ${input.topic}.` });
      emit('section-written', { title });
    }
    return { topic: input.topic, sections };
  })
  .then('assemble', ({ input }) => ({
    title: `Report: ${input.topic}`,
    body: input.sections.map((s) => `## ${s.title}\n${s.text}`).join('\n\n'),
  }))
  .commit();

const global = globalThis as typeof globalThis & { miyabiEngine?: Engine };

/** The process's engine over `MIYABI_DB` (default `./miyabi.db`), with the workflows registered. */
export function engine(): Engine {
  global.miyabiEngine ??= Engine.openSync({ store: `sqlite:${process.env.MIYABI_DB ?? 'miyabi.db'}`, workflows: [report] });
  return global.miyabiEngine;
}
