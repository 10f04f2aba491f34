// Streaming chat: `streamText` with the text printed as it arrives (`for await` over
// `textStream`), then the usage and finish reason.
//
//   npm run build && npx tsc -p examples-ts && node examples-ts/.out/streaming-chat.js ["prompt"]
//
// With OPENAI_API_KEY set it asks openai/gpt-4o-mini. Without one it says so and streams from a
// local replay of recorded OpenAI traffic (tests/fixtures/recorded), which answers one fixed
// prompt whatever is asked.
import { model, streamText, type ModelLike } from '@miyabi/core';
import { RECORDED_MODEL, RECORDED_STREAM, startReplay, type Replay } from './replay.js';

const prompt = process.argv[2] ?? 'Invent a new holiday and describe its traditions.';

let replay: Replay | undefined;
let chatModel: ModelLike;
if (process.env.OPENAI_API_KEY) {
  chatModel = 'openai/gpt-4o-mini';
  console.log('model: openai/gpt-4o-mini (OPENAI_API_KEY is set)');
} else {
  replay = await startReplay({ delayMs: 3 });
  chatModel = model(RECORDED_MODEL, { baseURL: replay.url, apiKey: 'replay', protocol: 'openai-chat' });
  console.log(`no OPENAI_API_KEY: using a local replay of recorded ${RECORDED_MODEL} traffic from ${RECORDED_STREAM}`);
}

try {
  const result = streamText({ model: chatModel, system: 'You are a creative assistant.', prompt, maxTokens: 400 });
  let deltas = 0;
  for await (const delta of result.textStream) {
    process.stdout.write(delta);
    deltas++;
  }
  const usage = await result.usage;
  console.log(`\n\n[${deltas} text deltas; ${usage.inputTokens} input + ${usage.outputTokens} output tokens; finish: ${await result.finishReason}]`);
} finally {
  replay?.close();
}
