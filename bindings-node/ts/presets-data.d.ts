/** The 21 Miyabi agents as data (generated at build time from agents/presets.json). */
export interface PresetData {
  /** Short name (`issue`, `codegen`, `persona`, ...). */
  readonly name: string;
  /** The agent's name (`IssueAgent`, ...). */
  readonly agent: string;
  /** `coding` or `business`. */
  readonly group: 'coding' | 'business';
  /** The system instructions. */
  readonly instructions: string;
  /** The names of the tools the Rust preset has. */
  readonly tools: ReadonlyArray<string>;
  /** The JSON Schema of its typed output. */
  readonly output_schema: Record<string, unknown>;
}
export declare const PRESETS: ReadonlyArray<PresetData>;
