// POST /api/chat — streams an agent's answer as plain UTF-8 text.
//
//   curl -N -X POST localhost:3000/api/chat -H 'content-type: application/json' -d '{"prompt":"Hi"}'
//
// The agent runs on Miyabi's Rust engine (the tool loop, the model's HTTP stream); the route
// hands its text stream to the client with `toTextStreamResponse()`. The model is
// `openai/gpt-4o-mini` (key from OPENAI_API_KEY), or CHAT_MODEL; with MIYABI_REPLAY_BASE_URL set
// (the test does), a local server replaying recorded OpenAI Chat Completions traffic.
import { z } from 'zod';
import { Agent, model, tool, type Message, type ModelLike } from '@miyabi/core';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

function chatModel(): ModelLike {
  const replay = process.env.MIYABI_REPLAY_BASE_URL;
  if (replay !== undefined && replay !== '') {
    return model('openai/gpt-4.1-nano', { baseURL: replay, apiKey: 'replay', protocol: 'openai-chat' });
  }
  return process.env.CHAT_MODEL ?? 'openai/gpt-4o-mini';
}

const clock = tool({
  description: 'The current date and time (ISO 8601, UTC)',
  parameters: z.object({}),
  execute: () => new Date().toISOString(),
});

let agent: Agent | undefined;

/** One agent per server process, made on first use. */
function chatAgent(): Agent {
  agent ??= new Agent({
    name: 'chat',
    model: chatModel(),
    instructions: 'You are a helpful assistant. Answer in plain text.',
    tools: { clock },
    maxSteps: 4,
  });
  return agent;
}

const Body = z.object({
  prompt: z.string().optional(),
  messages: z.array(z.object({ role: z.enum(['user', 'assistant']), content: z.string() })).optional(),
});

export async function POST(req: Request): Promise<Response> {
  const parsed = Body.safeParse(await req.json().catch(() => null));
  if (!parsed.success || (parsed.data.prompt === undefined && parsed.data.messages === undefined)) {
    return Response.json({ error: 'send {"prompt": "..."} or {"messages": [...]}' }, { status: 400 });
  }
  const { prompt, messages } = parsed.data;
  const input: ReadonlyArray<Message> = [...(messages ?? []), ...(prompt === undefined ? [] : [{ role: 'user' as const, content: prompt }])];
  // The client going away (req.signal) stops the generation.
  return chatAgent().stream(input, { abortSignal: req.signal }).toTextStreamResponse();
}
