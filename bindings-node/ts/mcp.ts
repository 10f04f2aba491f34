/**
 * MCP both ways from TypeScript, on the official MCP SDK (`@modelcontextprotocol/sdk`, an
 * optional peer dependency):
 *
 * - {@link mcpTools}: an MCP server's tools as Miyabi tools, for any `Agent` — give it a
 *   connected SDK `Client` (stdio, Streamable HTTP, in-memory: any transport the SDK has).
 * - {@link createMcpServer}: this engine's workflows, agents and approval inbox as an MCP server
 *   — connect it to any SDK server transport (`new StdioServerTransport()`, Streamable HTTP).
 *
 * ```ts
 * const client = new Client({ name: 'app', version: '1.0.0' });
 * await client.connect(new StdioClientTransport({ command: 'npx', args: ['@modelcontextprotocol/server-everything'] }));
 * const agent = new Agent({ name: 'helper', model: 'openai/gpt-4o', tools: await mcpTools(client) });
 * ```
 */
import type { Agent, Tool } from './agent.js';
import type { Approver } from './approval.js';
import type { Engine } from './engine.js';
import { MiyabiError } from './errors.js';
import { jsonSchema, toJsonSchema } from './schema.js';
import { type Workflow, compiled } from './workflow.js';

/** A tool as an MCP server lists it. */
export interface McpToolInfo {
  readonly name: string;
  readonly description?: string | undefined;
  readonly title?: string | undefined;
  readonly inputSchema: { readonly [key: string]: unknown };
  readonly annotations?:
    | { readonly readOnlyHint?: boolean | undefined; readonly destructiveHint?: boolean | undefined; readonly title?: string | undefined }
    | undefined;
}

/** What {@link mcpTools} needs of a connected MCP client (the SDK's `Client` has it). */
export interface McpClientLike {
  listTools(params?: { cursor?: string }): Promise<{ readonly tools: ReadonlyArray<McpToolInfo>; readonly nextCursor?: string | undefined }>;
  callTool(
    params: { name: string; arguments?: Record<string, unknown> },
    resultSchema?: undefined,
    options?: { timeout?: number; signal?: AbortSignal },
  ): Promise<unknown>;
  getServerVersion?(): { readonly name: string } | undefined;
}

/** Options of {@link mcpTools}. */
export interface McpToolsOptions {
  /** Prefix of the tool names (`<prefix>_<tool>`; default: the server's name, `''` for none). */
  readonly prefix?: string;
  /**
   * Which calls need a human's approval: `'destructive'` (default: tools not marked read-only,
   * or marked destructive), `'all'`, `'none'`, or a function of the tool.
   */
  readonly approval?: 'destructive' | 'all' | 'none' | ((tool: McpToolInfo) => boolean);
  /** Per-call timeout (default 60 000 ms). */
  readonly timeoutMs?: number;
  /** Only these tools (by the server's names). */
  readonly include?: ReadonlyArray<string>;
}

/** The text of an MCP call result's content. */
function contentText(content: unknown): string {
  if (!Array.isArray(content)) return '';
  return content
    .map((c: { type?: string; text?: string; uri?: string; resource?: { uri?: string; text?: string } }) => {
      if (c.type === 'text') return c.text ?? '';
      if (c.type === 'resource') return c.resource?.text ?? c.resource?.uri ?? '';
      if (c.type === 'resource_link') return c.uri ?? '';
      return `[${c.type ?? 'content'}]`;
    })
    .join('\n');
}

function needsApproval(t: McpToolInfo, rule: McpToolsOptions['approval']): boolean {
  if (typeof rule === 'function') return rule(t);
  if (rule === 'all') return true;
  if (rule === 'none') return false;
  const a = t.annotations;
  return a?.destructiveHint === true || a?.readOnlyHint !== true;
}

/**
 * The tools of a connected MCP server as Miyabi tools (`{ [name]: tool }`, ready for an
 * agent's `tools`). A call the server reports as an error (`isError`) is thrown, so the model
 * reads it; the result is the structured content when the server gives one, else the text.
 */
export async function mcpTools(client: McpClientLike, options: McpToolsOptions = {}): Promise<Record<string, Tool<Record<string, unknown>, unknown>>> {
  const server = client.getServerVersion?.()?.name ?? 'mcp';
  const prefix = options.prefix ?? server.replace(/[^A-Za-z0-9_-]/g, '_');
  const listed: McpToolInfo[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor });
    listed.push(...page.tools);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined && cursor !== '');
  const out: Record<string, Tool<Record<string, unknown>, unknown>> = {};
  for (const t of listed) {
    if (options.include !== undefined && !options.include.includes(t.name)) continue;
    const name = prefix === '' ? t.name : `${prefix}_${t.name}`;
    out[name] = {
      kind: 'miyabi.tool',
      description: t.description ?? t.title ?? t.annotations?.title,
      parameters: jsonSchema<Record<string, unknown>>({ ...t.inputSchema }),
      requiresApproval: needsApproval(t, options.approval),
      final: false,
      execute: async (args) => {
        const r = (await client.callTool({ name: t.name, arguments: args }, undefined, { timeout: options.timeoutMs ?? 60_000 })) as {
          content?: unknown;
          structuredContent?: unknown;
          isError?: boolean;
          toolResult?: unknown;
        };
        if (r.isError === true) throw new Error(`MCP server \`${server}\`, tool \`${t.name}\`: ${contentText(r.content) || 'the tool failed'}`);
        if (r.structuredContent !== undefined) return r.structuredContent;
        if (r.toolResult !== undefined) return r.toolResult;
        return contentText(r.content);
      },
    };
  }
  return out;
}

/** What {@link createMcpServer} serves. */
export interface McpServerOptions {
  /** The server's name and version (default `miyabi` and the package's version). */
  readonly name?: string;
  readonly version?: string;
  /** Workflows as tools `run_<id>` (input schema from the workflow's; the call waits for the run). */
  readonly workflows?: ReadonlyArray<Workflow<never, unknown>>;
  /** Agents as tools `ask_<name>` (`{ prompt }` → the answer). */
  readonly agents?: ReadonlyArray<Agent<unknown>>;
  /** Serve the approval inbox of this identity as tools `approvals_list` and `approvals_decide` (default: none). */
  readonly approver?: Approver;
}

/** What {@link createMcpServer} returns: the SDK's `Server`, ready to `connect` to a transport. */
export interface McpServerLike {
  connect(transport: unknown): Promise<void>;
  close(): Promise<void>;
}

interface ToolEntry {
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
  call(args: Record<string, unknown>): Promise<unknown>;
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * This engine as an MCP server (on the SDK's low-level `Server`): each workflow a tool that starts
 * a run and answers with its outcome — `{ runId, status, output }`, or for a suspended run what it
 * waits for (`suspended: [{ path, payload }]`) —, each agent a tool, the approval inbox as tools,
 * and runs as resources `miyabi://runs/{id}`.
 *
 * ```ts
 * const server = await createMcpServer(engine, { workflows: [report], agents: [helper] });
 * await server.connect(new StdioServerTransport());
 * ```
 */
export async function createMcpServer(engine: Engine, options: McpServerOptions = {}): Promise<McpServerLike> {
  let sdk: typeof import('@modelcontextprotocol/sdk/server/index.js');
  let types: typeof import('@modelcontextprotocol/sdk/types.js');
  try {
    sdk = await import('@modelcontextprotocol/sdk/server/index.js');
    types = await import('@modelcontextprotocol/sdk/types.js');
  } catch (e) {
    throw new MiyabiError('CONFIG', `createMcpServer needs the MCP SDK: npm install @modelcontextprotocol/sdk (${e instanceof Error ? e.message : String(e)})`);
  }
  const tools = new Map<string, ToolEntry>();
  for (const wf of options.workflows ?? []) {
    const schema = compiled(wf).def.input;
    const input = schema === undefined ? undefined : toJsonSchema(schema);
    tools.set(`run_${safeName(wf.id)}`, {
      description: `Runs the workflow \`${wf.id}\` to its end (or until it waits for a human) and returns its outcome.`,
      inputSchema: {
        type: 'object',
        properties: { input: input ?? { description: 'the run input (any JSON)' } },
        ...(input === undefined ? {} : { required: ['input'] }),
      },
      call: async (args) => {
        const run = await engine.start(wf, args.input as never);
        return {
          runId: run.id,
          status: run.status,
          ...(run.output === undefined ? {} : { output: run.output }),
          ...(run.error === undefined ? {} : { error: run.error }),
          ...(run.suspended.length === 0 ? {} : { suspended: run.suspended.map((s) => ({ path: s.path, payload: s.payload })) }),
        };
      },
    });
  }
  for (const agent of options.agents ?? []) {
    tools.set(`ask_${safeName(agent.name)}`, {
      description: `Asks the agent \`${agent.name}\`.`,
      inputSchema: { type: 'object', properties: { prompt: { type: 'string' } }, required: ['prompt'] },
      call: async (args) => {
        if (typeof args.prompt !== 'string') throw new Error('`prompt` must be a string');
        const r = await agent.generate(args.prompt);
        return r.object === undefined ? { text: r.text } : { text: r.text, object: r.object };
      },
    });
  }
  const who = options.approver;
  if (who !== undefined) {
    tools.set('approvals_list', {
      description: `The approval gates waiting for ${who.id}.`,
      inputSchema: { type: 'object', properties: {} },
      call: async () => ({
        approvals: (await engine.approvals.inbox(who)).map((a) => ({ runId: a.runId, gate: a.gate, title: a.title, summary: a.summary, data: a.data })),
      }),
    });
    tools.set('approvals_decide', {
      description: `Approves or rejects a gate as ${who.id} (with the same checks as the HTTP API).`,
      inputSchema: {
        type: 'object',
        properties: {
          runId: { type: 'string' },
          gate: { type: 'string' },
          action: { type: 'string', enum: ['approve', 'reject'] },
          data: { description: 'edited data (approve only)' },
          comment: { type: 'string' },
        },
        required: ['runId', 'gate', 'action'],
      },
      call: async (args) => {
        const decision = {
          action: args.action as 'approve' | 'reject',
          ...(args.data === undefined ? {} : { data: args.data }),
          ...(typeof args.comment === 'string' ? { comment: args.comment } : {}),
        };
        const a = await engine.approvals.decide(String(args.runId), String(args.gate), who, decision as never);
        return { runId: a.runId, gate: a.gate, status: a.status };
      },
    });
  }

  const server = new sdk.Server(
    { name: options.name ?? 'miyabi', version: options.version ?? '0.1.0' },
    { capabilities: { tools: {}, resources: {} } },
  );
  server.setRequestHandler(types.ListToolsRequestSchema, () => ({
    tools: [...tools.entries()].map(([name, t]) => ({ name, description: t.description, inputSchema: t.inputSchema as { type: 'object' } })),
  }));
  server.setRequestHandler(types.CallToolRequestSchema, async (req) => {
    const t = tools.get(req.params.name);
    if (t === undefined) {
      return { isError: true, content: [{ type: 'text', text: `no tool named \`${req.params.name}\`` }] };
    }
    try {
      const out = await t.call((req.params.arguments ?? {}) as Record<string, unknown>);
      return { content: [{ type: 'text', text: JSON.stringify(out) }], structuredContent: out as Record<string, unknown> };
    } catch (e) {
      return { isError: true, content: [{ type: 'text', text: e instanceof Error ? e.message : String(e) }] };
    }
  });
  server.setRequestHandler(types.ListResourcesRequestSchema, async () => ({
    resources: (await engine.list({ limit: 100 })).map((r) => ({ uri: `miyabi://runs/${r.id}`, name: `${r.workflow} ${r.id}`, mimeType: 'application/json' })),
  }));
  server.setRequestHandler(types.ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [{ uriTemplate: 'miyabi://runs/{id}', name: 'run', mimeType: 'application/json' }],
  }));
  server.setRequestHandler(types.ReadResourceRequestSchema, async (req) => {
    const m = /^miyabi:\/\/runs\/([^/]+)$/.exec(req.params.uri);
    const run = m?.[1] === undefined ? null : await engine.get(decodeURIComponent(m[1]));
    if (run === null) throw new MiyabiError('NOT_FOUND', `no run at \`${req.params.uri}\``);
    return { contents: [{ uri: req.params.uri, mimeType: 'application/json', text: JSON.stringify(run) }] };
  });
  return server;
}
