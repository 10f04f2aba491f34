// The TypeScript surface: the type-level tests (tests/types) and the examples (examples-ts)
// type-check under strict settings, and the compiled quickstart runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, runNode, recordedStream, lastJson } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function typecheck(project, extra = []) {
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, project), ...extra], { stdio: 'pipe' });
  } catch (e) {
    assert.fail(`tsc -p ${project} failed:\n${e.stdout}${e.stderr}`);
  }
}

test('type-level tests of the public API and the README quickstart compile', async () => {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const snippet = readFileSync(join(root, 'tests', 'types', 'readme.ts'), 'utf8').split('\n').slice(1, -2).join('\n');
  assert.ok(readme.includes(snippet), 'tests/types/readme.ts is the README snippet');
  typecheck('tests/types');
});

test('the public .d.ts files have no `any`', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  for (const dir of ['dist/esm', 'dist/cjs']) {
    for (const f of readdirSync(join(root, dir)).filter((f) => f.endsWith('.d.ts'))) {
      const text = readFileSync(join(root, dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      assert.doesNotMatch(text, /\bany\b(?!')/, `${dir}/${f} mentions any`);
    }
  }
});

test('examples-ts type-check, and the quickstart runs to completion', async (t) => {
  typecheck('examples-ts');
  const db = join(tempDir(t), 'quickstart.db');
  const r = await runNode(join(root, 'examples-ts', '.out', 'quickstart.js'), [db]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /run-suspended/);
  assert.match(r.stdout, /succeeded: \{[^}]*deployed: true/);
  assert.match(r.stdout, /succeeded: \{[^}]*by: 'ada'/);
});

test('the evaluation example is the one README.md and docs/evals.md show, and runs as written', async (t) => {
  const { readFileSync } = await import('node:fs');
  const snippet = readFileSync(join(root, 'examples-ts', 'evaluate.ts'), 'utf8').split('\n').slice(1).join('\n');
  for (const doc of ['README.md', join('docs', 'evals.md')]) {
    assert.ok(readFileSync(join(root, doc), 'utf8').includes('```ts\n' + snippet + '```'), `${doc} shows examples-ts/evaluate.ts`);
  }
  const cwd = tempDir(t);
  const r = await runNode(join(root, 'examples-ts', '.out', 'evaluate.js'), [], { cwd });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /^exact mean 1 pass rate 1$/m);
  assert.match(r.stdout, /^short mean 1 pass rate 1$/m);
  assert.match(r.stdout, /^passed: true$/m);
  const written = JSON.parse(readFileSync(join(cwd, 'eval.json'), 'utf8'));
  assert.equal(written.schema, 'miyabi.eval/v1');
  assert.deepEqual(written.metrics.map((m) => [m.name, m.cases]), [['exact', 2], ['short', 2]]);
});

test('the streaming chat example streams the recorded answer from a local replay when no key is set', async () => {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  const r = await runNode(join(root, 'examples-ts', '.out', 'streaming-chat.js'), [], { env, timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /no OPENAI_API_KEY: using a local replay of recorded openai\/gpt-4\.1-nano traffic from tests\/fixtures\/recorded/);
  const { text } = await recordedStream();
  assert.ok(r.stdout.includes(text), 'the whole recorded text is printed');
  assert.match(r.stdout, /\[300 text deltas; 16 input \+ 300 output tokens; finish: stop\]/);
});

test('the approval example: one process stops at the gate, another decides it and the run finishes there', async (t) => {
  const db = join(tempDir(t), 'approval.db');
  const script = join(root, 'examples-ts', '.out', 'approval.js');
  const started = await runNode(script, ['start', db]);
  assert.equal(started.code, 0, started.stderr);
  const run = lastJson(started.stdout);
  assert.deepEqual({ status: run.status, waiting: run.waiting }, { status: 'suspended', waiting: ['sign-off'] });
  const inbox = await runNode(script, ['inbox', db, 'alice']);
  assert.equal(inbox.code, 0, inbox.stderr);
  const item = lastJson(inbox.stdout);
  assert.equal(item.run, run.id);
  assert.equal(item.title, 'Publish the release?');
  const approved = await runNode(script, ['approve', db, run.id, 'alice', 'ship it']);
  assert.equal(approved.code, 0, approved.stderr);
  assert.deepEqual(lastJson(approved.stdout), {
    gate: 'approved',
    status: 'succeeded',
    output: { published: 'v1.4.1', notes: ['fix: empty config (v1.4.1)'], by: ['alice'] },
  });
});

test('the demo runs the issue-resolution workflow with an agent step, suspends for review, and finishes with --yes', async (t) => {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  const dir = tempDir(t);
  const db = join(dir, 'demo.db');
  const demo = join(root, 'examples-ts', '.out', 'demo.js');
  const r = await runNode(demo, ['--yes', '--db', db], { env, timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /no OPENAI_API_KEY: using a local replay of recorded openai\/gpt-4\.1-nano traffic from tests\/fixtures\/recorded/);
  for (const step of ['intake', 'analyze', 'implement', 'review/fix/revise[1]', 'test', 'lint', 'security', 'code-review', 'deploy']) {
    assert.match(r.stdout, new RegExp(`step-output +${step.replace(/[[\]/]/g, '\\$&')} `), step);
  }
  assert.match(r.stdout, /custom +analyze +agent-turn/);
  assert.match(r.stdout, /run-suspended +code-review/);
  assert.match(r.stdout, /Approve the deploy\? \[y\/n\] y \(--yes\)/);
  assert.match(r.stdout, /waits at approval gate `code-review`/);
  assert.match(r.stdout, /audit: approved +by \S+ +approved from the demo/);
  assert.match(r.stdout, /succeeded\noutput: \{"deployed":true/);

  // Without an answer (stdin closed) the run stays suspended; another process resumes it.
  const left = await runNode(demo, ['--db', db], { env, timeoutMs: 60000 });
  assert.equal(left.code, 0, left.stderr + left.stdout);
  assert.match(left.stdout, /no answer on stdin: the run stays suspended/);
  const id = /--resume (\S+)/.exec(left.stdout)?.[1];
  assert.ok(id, left.stdout);
  const resumed = await runNode(demo, ['--db', db, '--resume', id, '--yes'], { env, timeoutMs: 60000 });
  assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
  assert.match(resumed.stdout, new RegExp(`run ${id} succeeded`));
});
