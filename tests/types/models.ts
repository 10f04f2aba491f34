// Type-level tests of models, agents and tools (compiled with `tsc --noEmit`, see inference.ts).
import { z } from 'zod';
import {
  Agent,
  generateText,
  model,
  streamText,
  tool,
  workflow,
  ProviderError,
  type AgentResult,
  type StreamPart,
  type ToolContext,
  type Usage,
} from '@miyabi/core';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

const add = tool({
  description: 'Adds',
  parameters: z.object({ a: z.number(), b: z.number().default(0) }),
  execute: ({ a, b }, ctx) => {
    type _args = Expect<Equal<typeof a | typeof b, number>>;
    type _ctx = Expect<Equal<typeof ctx, ToolContext>>;
    return a + b;
  },
});

const local = model('openai/gpt-4o-mini', { baseURL: 'http://127.0.0.1:1/v1', protocol: 'openai-chat', headers: { 'x-a': 'b' } });
// @ts-expect-error: not a protocol family
model('openai/gpt-4o', { protocol: 'soap' });

const Analysis = z.object({ quality: z.number(), plan: z.string() });
const analyst = new Agent({ name: 'analyst', model: local, tools: { add }, output: Analysis, maxSteps: 4 });
const plain = new Agent({ name: 'plain', model: 'openai/gpt-4o' });

export async function usage(): Promise<void> {
  const g = await generateText({ model: 'openai/gpt-4o', prompt: 'hi', temperature: 0.1 });
  type _t = Expect<Equal<typeof g.text, string>>;
  type _u = Expect<Equal<typeof g.usage, Usage>>;

  const s = streamText({ model: local, messages: [{ role: 'user', content: 'hi' }] });
  for await (const d of s.textStream) {
    type _d = Expect<Equal<typeof d, string>>;
  }
  for await (const p of s.fullStream) {
    type _p = Expect<Equal<typeof p, StreamPart>>;
    if (p.type === 'text-delta') {
      type _x = Expect<Equal<typeof p.text, string>>;
    }
  }
  const text: string = await s.text;
  const res: Response = s.toTextStreamResponse({ headers: { 'x-b': '1' } });
  const body: ReadableStream<Uint8Array> = s.toReadableStream();
  void text;
  void res;
  void body;

  const r = await analyst.generate('analyze issue 7');
  type _o = Expect<Equal<typeof r, AgentResult<{ quality: number; plan: string }>>>;
  type _obj = Expect<Equal<typeof r.object, { quality: number; plan: string } | undefined>>;
  const p = await plain.generate([{ role: 'user', content: 'hi' }]);
  type _po = Expect<Equal<typeof p.object, string | undefined>>;

  try {
    await plain.generate('x');
  } catch (e) {
    if (e instanceof ProviderError) {
      const status: number | undefined = e.status;
      const retry: number | undefined = e.retryAfter;
      void status;
      void retry;
    }
  }
}

// An agent is a workflow step; its output type flows on.
export const wf = workflow('agentic', { input: z.object({ issue: z.string() }) })
  .step('prompt', ({ input }) => `Analyze ${input.issue}`)
  .then('analyze', analyst, { retry: 2 })
  .then('report', ({ input }) => {
    type _in = Expect<Equal<typeof input, { quality: number; plan: string }>>;
    return input.plan;
  })
  .then('chat', plain)
  .commit();
