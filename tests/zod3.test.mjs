// zod 3 (the peer range is `^3.25.0 || ^4.0.0`), installed here as the aliased devDependency
// `zod3` (zod 3.25.x). Its zod 4 (`zod/v4`) works everywhere a schema goes, converted with
// zod's own `zod/v4/core` since it has no Standard JSON Schema; a zod 3 schema (`zod` itself)
// is a MiyabiError saying to import `zod/v4`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z as z3 } from 'zod3';
import { z } from 'zod3/v4';
import { Agent, Engine, MiyabiError, ValidationError, model, tool, workflow } from '@miyabi/core';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { completion, lastJson, openaiServer, runNode, tempDir } from './helpers.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The README quickstart's shape, with the `z` given. */
function quickstart(zz) {
  return workflow('issue-resolution', { input: zz.object({ issue: zz.string(), priority: zz.number().int().default(3) }) })
    .step('analyze', async ({ input }) => ({ quality: 0.9, plan: `fix ${input.issue} (p${input.priority})` }))
    .then('implement', ({ input }) => ({ ...input, patch: 'diff' }))
    .branch('review', ({ output }) => (output.quality > 0.8 ? 'deploy' : 'fix'), {
      deploy: ({ input }) => ({ deployed: input.patch, plan: input.plan }),
      fix: async ({ input }) => ({ deployed: `${input.patch} (fixed)`, plan: input.plan }),
    })
    .then('approve', {
      resume: zz.object({ approved: zz.boolean() }),
      execute: ({ input, resumeData, suspend }) => (resumeData ? { ...input, ...resumeData } : suspend({ question: 'ship it?' })),
    })
    .commit();
}

test('the zod 3.25 package is what this test runs with', async () => {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  assert.match(require('zod3/package.json').version, /^3\.25\./);
});

test('zod 3.25 with zod/v4: the README quickstart commits, validates, runs and resumes', async () => {
  const wf = quickstart(z);
  const engine = await Engine.open({ workflows: [wf] });
  const run = await engine.start(wf, { issue: '#715' });
  assert.equal(run.status, 'suspended', run.error);
  await assert.rejects(
    () => engine.start(wf, { issue: 715 }),
    (e) => e instanceof ValidationError && e.issues.length === 1 && e.issues[0].path.join() === 'issue',
  );
  await assert.rejects(
    () => engine.resume(run.id, 'approve', { approved: 'yes' }),
    (e) => e instanceof ValidationError && e.issues[0].path.join() === 'approved',
  );
  const done = await engine.resume(run.id, 'approve', { approved: true });
  assert.equal(done.status, 'succeeded', done.error);
  assert.deepEqual(done.output, { deployed: 'diff', plan: 'fix #715 (p3)', approved: true });
});

test('zod 3.25 with zod/v4: the engine checks values with the converted JSON Schema', async () => {
  // A step input schema is checked by the engine only (not parsed in JS).
  const wf = workflow('engine-checked')
    .step('make', () => ({ n: 'not a number' }))
    .then('use', ({ input }) => input, { input: z.object({ n: z.number() }) })
    .commit();
  const run = await (await Engine.open()).start(wf, null);
  assert.equal(run.status, 'failed');
  assert.match(run.error, /step `use`: input violates its schema at `\/n`/);
});

test('zod 3.25 with zod/v4: tool parameters become JSON Schema for the model', async (t) => {
  const s = await openaiServer(t, (body, i) =>
    i === 0 ? { json: completion({ calls: [{ id: 'c1', name: 'add', args: { a: 1, b: 2 } }] }) } : { json: completion({ text: `sum ${body.messages.at(-1).content}` }) },
  );
  const add = tool({ parameters: z.object({ a: z.number(), b: z.number() }), execute: ({ a, b }) => a + b });
  const chat = model('openai/gpt-4o', { baseURL: s.url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 });
  const r = await new Agent({ name: 'calc', model: chat, tools: { add }, maxSteps: 2 }).generate('1+2?');
  assert.equal(r.text, 'sum 3');
  const params = s.requests[0].body.tools[0].function.parameters;
  assert.equal(params.type, 'object');
  assert.deepEqual(params.required, ['a', 'b']);
  assert.equal(params.$schema, undefined);
});

test('a zod 3 schema (zod 3.25 `zod` itself) is a MiyabiError saying what to do, at commit and for tools', () => {
  const says = (e) => {
    assert.ok(e instanceof MiyabiError, `not a MiyabiError: ${e}`);
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /zod 3 schema/);
    assert.match(e.message, /import \{ z \} from 'zod\/v4'/);
    assert.match(e.message, /npm install zod@\^4/);
    return true;
  };
  assert.throws(() => quickstart(z3), says);
  assert.throws(() => workflow('w').step('s', () => 1, { output: z3.number() }).commit(), says);
  const add = tool({ parameters: z3.object({ a: z3.number() }), execute: ({ a }) => a });
  assert.throws(() => new Agent({ name: 'a', model: 'openai/gpt-4o', tools: { add } }), says);
});

test('something that is not a schema is a MiyabiError, not a TypeError', () => {
  assert.throws(
    () => workflow('w', { input: { type: 'object' } }).step('s', () => 1).commit(),
    (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && /jsonSchema\(/.test(e.message),
  );
});

test('in a project whose only zod is 3.25, its own zod/v4/core converts the schemas', async (t) => {
  // node_modules/zod is zod 3.25 and @miyabi/core sits next to it (symlinks kept as paths, as
  // an install would lay them out), so `zod/v4/core` resolves to zod 3.25's.
  const dir = tempDir(t);
  const pkg = join(dir, 'node_modules', '@miyabi', 'core');
  mkdirSync(pkg, { recursive: true });
  symlinkSync(join(root, 'node_modules', 'zod3'), join(dir, 'node_modules', 'zod'), 'dir');
  // The package's files, without this repository's own node_modules (which hold zod 4).
  for (const f of readdirSync(root)) {
    if (f === 'package.json' || f === 'dist' || f.startsWith('native.') || f.endsWith('.node')) symlinkSync(join(root, f), join(pkg, f));
  }
  writeFileSync(
    join(dir, 'app.mjs'),
    `import { createRequire } from 'node:module';
import { z } from 'zod/v4';
import { Engine, workflow } from '@miyabi/core';
const wf = workflow('q', { input: z.object({ issue: z.string(), n: z.number().default(1) }) })
  .step('s', ({ input }) => ({ got: input }))
  .commit();
const run = await (await Engine.open()).start(wf, { issue: '#1' });
const core = createRequire(createRequire(import.meta.url).resolve('@miyabi/core'));
const version = core('zod/package.json').version;
console.log(JSON.stringify({ status: run.status, output: run.output, version }));
`,
  );
  const r = await runNode('--preserve-symlinks', [join(dir, 'app.mjs')], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(lastJson(r.stdout), { status: 'succeeded', output: { got: { issue: '#1', n: 1 } }, version: '3.25.76' });
});
