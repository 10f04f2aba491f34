// Type-level tests of @miyabi/code (type-checked by tests/code-tools.test.mjs; nothing runs).
import { z } from 'zod';
import { Agent, preset, tool, type ToolContext } from '@miyabi/core';
import { CodeTools, codegenAgent, codingTools, type CodingToolArgs, type ShellResult } from '../../packages/code/dist/esm/index.js';

declare const ctx: ToolContext;

// The tools go into an Agent as they are (typed arguments, a per-call approval predicate),
// alone, as a subset, beside a zod tool with its own predicate, or into a preset.
const tools = codingTools('/repo', { only: ['read_file', 'shell'] });
export const coder = new Agent({ name: 'coder', model: 'openai/gpt-4.1', tools });
export const everything = new Agent({ name: 'coder', model: 'openai/gpt-4.1', tools: codingTools('/repo', { sandbox: 'read-only' }) });
const deploy = tool({
  parameters: z.object({ env: z.string() }),
  requiresApproval: ({ env }) => env === 'prod',
  execute: ({ env }) => `deployed to ${env}`,
});
export const mixed = new Agent({ name: 'ops', model: 'openai/gpt-4.1', tools: { ...tools, deploy } });
export const pr = preset('pr', { model: 'openai/gpt-4.1', tools: codingTools('/repo', { only: ['git_status', 'git_diff'] }) });
export const codegen: Promise<Agent<Record<string, unknown>>> = codegenAgent('/repo', { model: 'openai/gpt-4.1', policy: { allow: ['npm test:*'] } });

// Arguments and results are typed.
export const shell: Promise<ShellResult> = Promise.resolve(tools.shell.execute({ command: 'ls', timeout_ms: 1000 }, ctx));
export const text: Promise<string> = Promise.resolve(tools.read_file.execute({ path: 'README.md', offset: 2 }, ctx));
// @ts-expect-error read_file needs a path
tools.read_file.execute({}, ctx);
// @ts-expect-error grep was not selected
export const grep = tools.grep;

const code = CodeTools.open('/repo');
export const listed: Promise<string> = code.call('list_dir', { depth: 2 }, { callId: 'c1', signal: AbortSignal.timeout(1000) });
export const asks: boolean = code.needsApproval('shell', { command: 'git push' });
// @ts-expect-error a command is a string
code.call('shell', { command: 1 });
// @ts-expect-error no such tool
code.call('rm', {});
export const todo: CodingToolArgs['todo'] = { todos: [{ content: 'fix the test', status: 'in_progress' }] };
// @ts-expect-error no such sandbox mode
codingTools('/repo', { sandbox: 'chroot' });
