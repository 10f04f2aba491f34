#!/usr/bin/env node
// The `miyabi` command of @miyabi/core: the same commands as the Rust CLI (docs/server.md),
// over the package's own engine. It has no workflow code: it lists, cancels and decides;
// the application that registered a workflow continues its runs.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { Engine, compareResults } from '../dist/esm/index.js';

const USAGE = `usage: miyabi <command> [--db FILE] [--json]
  serve [--host 127.0.0.1] [--port 7420]      the HTTP API and dashboard (tokens: MIYABI_TOKENS, or one printed)
  runs list [--workflow W] [--status S] [--limit N]
  runs show <id>
  runs cancel <id>
  runs prune [--older-than 30d] [--keep-last N] [--workflow W]   delete finished runs (never suspended ones)
  approvals list [--all] [--as WHO [--team T]...]
  approve <run> <gate> --as WHO [--team T]... [--comment TEXT] [--edit FILE.json]
  reject <run> <gate> --as WHO [--team T]... [--comment TEXT]
  eval compare <a.json> <b.json>               paired A/B of two eval results (exit 100 on a significant regression)
--db defaults to $MIYABI_DB, else ./miyabi.db`;

function fail(message, code = 2) {
  process.stderr.write(`miyabi: ${message}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      db: { type: 'string' },
      json: { type: 'boolean', default: false },
      host: { type: 'string' },
      port: { type: 'string' },
      workflow: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      'older-than': { type: 'string' },
      'keep-last': { type: 'string' },
      all: { type: 'boolean', default: false },
      as: { type: 'string' },
      team: { type: 'string', multiple: true },
      comment: { type: 'string' },
      edit: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (e) {
  fail(`${e.message}\n${USAGE}`);
}
const { values: o, positionals: args } = parsed;
if (o.help || args.length === 0) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(o.help ? 0 : 2);
}

const print = (value, table) => process.stdout.write(o.json ? `${JSON.stringify(value)}\n` : `${table(value)}\n`);

// Commands without a database.
if (args[0] === 'eval') {
  if (args[1] !== 'compare' || args.length !== 4) fail(`eval compare needs <a.json> <b.json> (eval run is in the Rust CLI)\n${USAGE}`);
  const read = (path) => {
    try {
      return JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      fail(`${path}: ${e.message}`, 1);
    }
  };
  let c;
  try {
    c = compareResults(read(args[2]), read(args[3]));
  } catch (e) {
    fail(`${e.message}${e.code ? ` [${e.code}]` : ''}`, 1);
  }
  const pct = (x) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}`);
  print(c, (r) =>
    [`${r.a} → ${r.b}: ${r.cases_compared} paired cases`]
      .concat(r.metrics.map((m) => `${m.metric.padEnd(16)} ${m.verdict.padEnd(25)} Δ ${pct(m.paired?.mean_diff)} pts  95% CI [${pct(m.paired?.ci_bootstrap?.low ?? m.paired?.ci_clt?.low)}, ${pct(m.paired?.ci_bootstrap?.high ?? m.paired?.ci_clt?.high)}]${(m.regressed ?? []).length ? `  regressed: ${m.regressed.map((x) => x.case_id).join(', ')}` : ''}`))
      .join('\n'),
  );
  process.exit(c.metrics.some((m) => m.verdict === 'worse') ? 100 : 0);
}

const db = o.db ?? process.env.MIYABI_DB ?? './miyabi.db';
const engine = await Engine.open({ store: `sqlite:${db}` });
const when = (d) => (d instanceof Date ? d.toISOString() : typeof d === 'number' ? new Date(d).toISOString() : '');
const who = () => {
  if (o.as === undefined) fail('--as WHO is required (the approver deciding)');
  return { id: o.as, teams: o.team ?? [] };
};
// `30d`, `12h`, `90m`, `45s`, `500ms`, `2w` (the units the Rust CLI's --older-than takes too).
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const age = (text) => {
  const m = /^(\d+)\s*(ms|s|m|h|d|w)$/.exec(text.trim());
  if (m === null) fail(`--older-than ${JSON.stringify(text)}: give a whole number and a unit (ms, s, m, h, d, w), e.g. 30d [INVALID_ARGUMENT]`);
  return Number(m[1]) * UNITS[m[2]];
};
const runsTable = (runs) =>
  runs.length === 0 ? '(no runs)' : runs.map((r) => `${r.id}  ${r.status.padEnd(10)} ${r.workflow.padEnd(20)} ${when(r.createdAt)}`).join('\n');
const gatesTable = (gates) =>
  gates.length === 0
    ? '(no approvals)'
    : gates.map((a) => `${a.runId}  ${a.gate.padEnd(16)} ${a.status.padEnd(9)} ${a.title}  [${a.approvers.join(', ')}]`).join('\n');

try {
  const [cmd, sub, ...rest] = args;
  if (cmd === 'serve') {
    const server = await engine.serve({ host: o.host, port: o.port === undefined ? undefined : Number(o.port) });
    process.stderr.write(`miyabi: serving ${db} on ${server.url} (dashboard at ${server.url}/)\n`);
    const stop = async () => {
      await server.close();
      engine.close();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    setInterval(() => {}, 1 << 30);
  } else if (cmd === 'runs' && sub === 'list') {
    const runs = await engine.list({ workflow: o.workflow, status: o.status, limit: o.limit === undefined ? 50 : Number(o.limit) });
    print(runs, runsTable);
  } else if (cmd === 'runs' && (sub === 'show' || sub === 'cancel')) {
    const id = rest[0] ?? fail(`runs ${sub} needs a run id`);
    const run = sub === 'show' ? await engine.get(id) : await engine.cancel(id);
    if (run === null) fail(`no run ${id} in ${db}`, 1);
    print(run, (r) => `${r.id}  ${r.status}  ${r.workflow}\ninput:  ${JSON.stringify(r.input)}\noutput: ${JSON.stringify(r.output ?? null)}${r.error ? `\nerror:  ${r.error}` : ''}`);
  } else if (cmd === 'runs' && sub === 'prune') {
    const rule = { workflow: o.workflow };
    if (o['older-than'] !== undefined) rule.olderThanMs = age(o['older-than']);
    if (o['keep-last'] !== undefined) rule.keepLast = Number(o['keep-last']);
    if (rule.olderThanMs === undefined && rule.keepLast === undefined) fail('runs prune needs --older-than AGE and/or --keep-last N [INVALID_ARGUMENT]');
    const deleted = engine.prune(rule);
    print({ deleted }, (r) => `deleted ${r.deleted} finished run(s)`);
  } else if (cmd === 'approvals' && sub === 'list') {
    const gates = o.all || o.as === undefined ? await engine.approvals.list({ status: o.all ? undefined : 'pending' }) : await engine.approvals.inbox(who());
    print(gates, gatesTable);
  } else if (cmd === 'approve' || cmd === 'reject') {
    const [run, gate] = [sub, rest[0]];
    if (run === undefined || gate === undefined) fail(`${cmd} needs <run> <gate>`);
    const decision = { action: cmd };
    if (o.comment !== undefined) decision.comment = o.comment;
    if (o.edit !== undefined) {
      if (cmd === 'reject') fail('--edit goes with approve');
      try {
        decision.data = JSON.parse(readFileSync(o.edit, 'utf8'));
      } catch (e) {
        fail(`--edit ${o.edit}: ${e.message}`);
      }
    }
    const a = await engine.approvals.decide(run, gate, who(), decision);
    print(a, (g) => `${g.runId}  ${g.gate}: ${g.status}${g.status === 'pending' ? ` (${g.votes.length} vote(s) so far)` : ''}`);
  } else {
    fail(`unknown command \`${args.join(' ')}\`\n${USAGE}`);
  }
} catch (e) {
  const code = e && typeof e === 'object' && 'code' in e ? ` [${e.code}]` : '';
  fail(`${e instanceof Error ? e.message : String(e)}${code}`, 1);
}
if (args[0] !== 'serve') engine.close();
