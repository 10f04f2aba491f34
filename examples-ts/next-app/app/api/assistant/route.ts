// POST /api/assistant — an agent in the AI SDK's UI message stream protocol: `useChat` from
// @ai-sdk/react (app/ai-sdk) and from @miyabi/react (app/assistant) both talk to it unchanged.
// Its `refund` tool needs a human's approval: the chat shows the request, the answer comes back
// with the messages, and the stored checkpoint is resumed.
import { z } from 'zod';
import { Agent, agentChatResponse, memoryApprovalStore, model, tool, type ModelLike } from '@miyabi/core';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

function chatModel(): ModelLike {
  const replay = process.env.MIYABI_REPLAY_BASE_URL;
  if (replay !== undefined && replay !== '') {
    return model('openai/gpt-4.1-nano', { baseURL: replay, apiKey: 'replay', protocol: 'openai-chat' });
  }
  return process.env.CHAT_MODEL ?? 'openai/gpt-4o-mini';
}

const refund = tool({
  description: 'Refunds an order (a human approves each refund)',
  parameters: z.object({ order: z.string(), amount: z.number() }),
  requiresApproval: true,
  execute: ({ order, amount }) => `refunded ${amount} on order ${order}`,
});

const global = globalThis as typeof globalThis & {
  miyabiAssistant?: { agent: Agent; approvals: ReturnType<typeof memoryApprovalStore> };
};

/** One agent and one approval store per server process (use a durable store across restarts). */
function assistant(): { agent: Agent; approvals: ReturnType<typeof memoryApprovalStore> } {
  global.miyabiAssistant ??= {
    agent: new Agent({
      name: 'support',
      model: chatModel(),
      instructions: 'You are a support agent. Use the refund tool when asked for a refund.',
      tools: { refund },
      maxSteps: 4,
    }),
    approvals: memoryApprovalStore(),
  };
  return global.miyabiAssistant;
}

export async function POST(req: Request): Promise<Response> {
  const { agent, approvals } = assistant();
  return agentChatResponse(agent, req, { approvals });
}
