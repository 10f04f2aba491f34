// Peer benchmark: the agent shapes of Miyabi's `core/benches/agent.rs`, run on @mastra/core's
// Agent with a zero-latency fake model (an AI SDK v5 `LanguageModelV2` object answering at once).
//
//   bash bench/peer/setup.sh && node bench/peer/mastra-agent.mjs
//
// Environment: MASTRA_DIR (or MASTRA_SCRATCH), default /tmp/miyabi-peer; PEER_AGENT_RUNS (500)
// generations per batch, 5 batches, median reported.
//
// Shapes (one JSON line each, {"bench", "value", "unit"}):
//   mastra.agent.text_only        Agent.generate, no tools, no memory: µs per generation
//   mastra.agent.one_tool_round   one tool call then the answer (2 model calls + 1 tool): µs
// Every result is checked (the answer text, and the tool's result 42), so a failing generation
// cannot pass for a fast one.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

process.env.MASTRA_TELEMETRY_DISABLED ??= '1';

const MASTRA_DIR = path.resolve(process.env.MASTRA_DIR || process.env.MASTRA_SCRATCH || '/tmp/miyabi-peer');
const RUNS = Number.parseInt(process.env.PEER_AGENT_RUNS || '500', 10);

function emit(bench, value, unit) {
  process.stdout.write(JSON.stringify({ bench, value, unit }) + '\n');
}

function pkgRoot(name) {
  const root = path.join(MASTRA_DIR, 'node_modules', ...name.split('/'));
  if (!fs.existsSync(path.join(root, 'package.json'))) {
    throw new Error(`${name} is not installed in ${MASTRA_DIR}: run bench/peer/setup.sh first (or set MASTRA_DIR)`);
  }
  return root;
}

function pickTarget(entry) {
  if (typeof entry === 'string') return entry;
  if (entry && typeof entry === 'object') {
    for (const cond of ['import', 'node', 'default']) {
      if (cond in entry) {
        const t = pickTarget(entry[cond]);
        if (t) return t;
      }
    }
  }
  return null;
}

async function importPkg(name, subpath) {
  const root = pkgRoot(name);
  const pj = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const target = pickTarget(pj.exports[subpath]);
  if (!target) throw new Error(`cannot resolve ${name} ${subpath} in ${root}`);
  return import(pathToFileURL(path.join(root, target)).href);
}

const { Agent } = await importPkg('@mastra/core', './agent');
const { createTool } = await importPkg('@mastra/core', './tools');
const { z } = await importPkg('zod', '.');

const usage = { inputTokens: 12, outputTokens: 6, totalTokens: 18 };

/// Answers at once: a tool call when the last message is the user's and tools are offered, the
/// text otherwise (the same rule as the Rust benchmark's model).
const model = {
  specificationVersion: 'v2',
  provider: 'fake',
  modelId: 'instant',
  supportedUrls: {},
  async doGenerate(opts) {
    const last = opts.prompt[opts.prompt.length - 1];
    if (opts.tools && opts.tools.length > 0 && last.role === 'user') {
      return {
        content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'add', input: JSON.stringify({ a: 40, b: 2 }) }],
        finishReason: 'tool-calls',
        usage,
        warnings: [],
      };
    }
    return { content: [{ type: 'text', text: 'The answer is 42.' }], finishReason: 'stop', usage, warnings: [] };
  },
  async doStream() {
    throw new Error('the benchmark calls generate only');
  },
};

let toolCalls = 0;
const add = createTool({
  id: 'add',
  description: 'Adds',
  inputSchema: z.object({ a: z.number(), b: z.number() }),
  execute: async (input) => {
    toolCalls += 1;
    return input.a + input.b;
  },
});

const plain = new Agent({ name: 'plain', instructions: 'Be brief.', model });
const calc = new Agent({ name: 'calc', instructions: 'Use the tool.', model, tools: { add } });

async function check(agent, steps) {
  const r = await agent.generate('What is 40 + 2?');
  if (r.text !== 'The answer is 42.' || r.steps.length !== steps) {
    throw new Error(`unexpected result: ${JSON.stringify({ text: r.text, steps: r.steps.length })}`);
  }
}

async function median(agent, steps) {
  for (let i = 0; i < 50; i++) await check(agent, steps); // warm-up
  const samples = [];
  for (let b = 0; b < 5; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < RUNS; i++) await check(agent, steps);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e3 / RUNS);
  }
  samples.sort((a, b) => a - b);
  return samples[2];
}

process.stderr.write(`peer: @mastra/core ${JSON.parse(fs.readFileSync(path.join(pkgRoot('@mastra/core'), 'package.json'), 'utf8')).version}, node ${process.versions.node}, ${RUNS} generations x 5 batches\n`);
emit('mastra.agent.text_only', await median(plain, 1), 'us');
const before = toolCalls;
emit('mastra.agent.one_tool_round', await median(calc, 2), 'us');
if (toolCalls - before !== 50 + 5 * RUNS) throw new Error(`the tool ran ${toolCalls - before} times`);
