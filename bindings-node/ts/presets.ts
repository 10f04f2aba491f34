/**
 * The 21 Miyabi agents from TypeScript: the same instructions and typed outputs as the Rust
 * presets of `miyabi-agents` (docs/agents21.md), as `Agent`s on any model.
 *
 * ```ts
 * import { preset } from '@miyabi/core';
 * const issue = preset('issue', { model: 'openai/gpt-4.1-mini' });
 * const { object } = await issue.generate('Login fails with a 500 when the password has a space');
 * // object: { type, priority, severity, labels, ... } — validated against the preset's schema
 * ```
 *
 * Tools: the business presets have none; a coding preset's Rust tools (workspace, git, shell,
 * checks) are not in the npm package — pass your own under the names `tools` lists, or use the
 * Rust presets (`miyabi run issue-resolution`).
 */
import { Agent, type Tool } from './agent.js';
import { MiyabiError } from './errors.js';
import type { Memory } from './agent.js';
import type { ModelLike } from './model.js';
import { PRESETS, type PresetData } from './presets-data.js';
import { jsonSchema } from './schema.js';

export type { PresetData };

/** Every preset's short name. */
export type PresetName =
  | 'coordinator'
  | 'issue'
  | 'codegen'
  | 'review'
  | 'pr'
  | 'deployment'
  | 'refresher'
  | 'entrepreneur'
  | 'self-analysis'
  | 'market-research'
  | 'persona'
  | 'product-concept'
  | 'product-design'
  | 'content-creation'
  | 'funnel-design'
  | 'sns-strategy'
  | 'marketing'
  | 'sales'
  | 'crm'
  | 'analytics'
  | 'youtube';

/** The presets as data: name, agent, group, instructions, tool names, output JSON Schema. */
export function presets(): ReadonlyArray<PresetData> {
  return PRESETS;
}

/** Options of `preset()`. */
export interface PresetOptions {
  /** The model (`"provider/model"` or `model(...)`). */
  readonly model: ModelLike;
  /** Tools by name (a coding preset's tools are yours to give; see `presets()` for the names). */
  readonly tools?: Readonly<Record<string, Tool<unknown, unknown>>>;
  /** Extra instructions appended to the preset's. */
  readonly instructions?: string;
  readonly maxSteps?: number;
  readonly memory?: Memory;
}

/** A preset as an `Agent` whose answer is its typed output (`result.object`). */
export function preset(name: PresetName, options: PresetOptions): Agent<Record<string, unknown>> {
  const p = PRESETS.find((x) => x.name === name);
  if (p === undefined) {
    throw new MiyabiError('INVALID_ARGUMENT', `no preset named \`${String(name)}\` (known: ${PRESETS.map((x) => x.name).join(', ')})`);
  }
  return new Agent<Record<string, unknown>>({
    name: p.agent,
    model: options.model,
    instructions: options.instructions === undefined ? p.instructions : `${p.instructions}\n\n${options.instructions}`,
    output: jsonSchema<Record<string, unknown>>(p.output_schema),
    ...(options.tools === undefined ? {} : { tools: options.tools }),
    ...(options.maxSteps === undefined ? {} : { maxSteps: options.maxSteps }),
    ...(options.memory === undefined ? {} : { memory: options.memory }),
  });
}
