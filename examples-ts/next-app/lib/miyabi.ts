// The engine and the workflow of the example, shared by the route handlers.
//
// One engine per server process, kept on `globalThis`: Next may load this module more than once
// (once per route bundle, and again on every hot reload in `next dev`), and every route must
// see the same engine, since a run's live events come from the engine that drives it.
import { z } from 'zod';
import { Engine, approvalGate, workflow, type Server } from '@miyabi/core';

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

/** plan → an approval gate (the plan is editable) → apply: the workflow page follows it live. */
export const ship = workflow('ship', { input: z.object({ change: z.string().min(1) }) })
  .step('plan', async ({ input }) => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { change: input.change, steps: ['build', 'test', 'deploy'] };
  })
  .awaitApproval('review', approvalGate({ approvers: ['*'], title: 'Ship this change?' }))
  .then('apply', ({ input }) => ({ shipped: input.approved, plan: input.data }))
  .commit();

const global = globalThis as typeof globalThis & { miyabiEngine?: Engine; miyabiApi?: Promise<{ server: Server; token: string }> };

/** The process's engine over `MIYABI_DB` (default `./miyabi.db`), with the workflows registered. */
export function engine(): Engine {
  global.miyabiEngine ??= Engine.openSync({ store: `sqlite:${process.env.MIYABI_DB ?? 'miyabi.db'}`, workflows: [report, ship] });
  return global.miyabiEngine;
}

/**
 * The engine's HTTP API (the one `miyabi serve` runs), on a loopback port of this process. The
 * route app/api/miyabi/[...path] forwards the browser's requests to it with a token the browser
 * never sees; put your own authentication in that route.
 */
export function api(): Promise<{ server: Server; token: string }> {
  global.miyabiApi ??= (async () => {
    const token = globalThis.crypto.randomUUID();
    const server = await engine().serve({ host: '127.0.0.1', port: 0, tokens: [{ token, id: 'web' }] });
    return { server, token };
  })();
  return global.miyabiApi;
}
