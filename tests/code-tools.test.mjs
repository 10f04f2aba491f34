// @miyabi/code over the built package (packages/code/dist and its debug addon), on a temporary
// git repository: the tools listed, read/edit/grep/write called directly and through an Agent
// with a scripted model (loopback OpenAI server), the shell under the permission policy (an
// allowed command runs in the sandbox, a denied one is refused even inside a compound line, an
// "ask" makes requiresApproval(args) true and stops the agent until resumed with approval),
// cancellation, CodeGenAgent from the coding preset, the TypeScript surface (tests/types-code), and
// what `npm pack` of the package holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, Engine, MiyabiError, model, presets, workflow } from '@miyabi/core';
import { CODING_TOOL_NAMES, CodeToolError, CodeTools, codegenAgent, codingTools } from '../packages/code/dist/esm/index.js';
import { completion, openaiServer, tempDir } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkgDir = join(root, 'packages', 'code');

const chat = (url) => model('openai/gpt-4o', { baseURL: url, apiKey: 'test-key', protocol: 'openai-chat', maxRetries: 0 });

function git(dir, ...args) {
  return execFileSync('git', args, { cwd: dir, stdio: 'pipe' }).toString();
}

/** A git repository with one commit: src/app.js, README.md, AGENTS.md. */
function repo(t) {
  const dir = tempDir(t);
  git(dir, 'init', '-q', '-b', 'main');
  git(dir, 'config', 'user.email', 'test@example.com');
  git(dir, 'config', 'user.name', 'Test');
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'app.js'), 'export function greet(name) {\n  return "hello " + name;\n}\n');
  writeFileSync(join(dir, 'README.md'), '# demo\n');
  writeFileSync(join(dir, 'AGENTS.md'), 'Use two spaces for indentation in this project.\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-q', '-m', 'chore: start');
  return dir;
}

/** What a tool's `execute` gets from an agent. */
const ctx = (id) => ({ toolCallId: id, agent: 'test', runId: undefined, path: undefined, idempotencyKey: id, thread: undefined, resource: undefined });

/** Whether a tool asks for approval for these arguments, whatever form `requiresApproval` has. */
async function asks(t, args) {
  return typeof t.requiresApproval === 'function' ? await t.requiresApproval(args) : t.requiresApproval;
}

test('codingTools: every tool with its JSON Schema; read, edit, grep, write and git through execute', async (t) => {
  const dir = repo(t);
  const tools = codingTools(dir);
  assert.deepEqual(Object.keys(tools), [...CODING_TOOL_NAMES]);
  // The addon has no tool the facade does not know about.
  const { createRequire } = await import('node:module');
  const addon = createRequire(import.meta.url)('../packages/code/native.cjs');
  assert.deepEqual(addon.NativeCodeTools.create({ root: dir }).list().map((x) => x.name), [...CODING_TOOL_NAMES]);
  for (const [name, tl] of Object.entries(tools)) {
    assert.equal(tl.kind, 'miyabi.tool', name);
    assert.ok(tl.description.length > 10, `${name} has a description`);
    const schema = tl.parameters['~standard'].jsonSchema.input({ target: 'draft-2020-12' });
    assert.equal(schema.type, 'object', `${name}'s schema is an object schema`);
  }
  assert.deepEqual(tools.read_file.parameters['~standard'].jsonSchema.input({ target: 'draft-2020-12' }).required, ['path']);

  const read = await tools.read_file.execute({ path: 'src/app.js' }, ctx('r1'));
  assert.equal(read, '     1\texport function greet(name) {\n     2\t  return "hello " + name;\n     3\t}\n');
  assert.equal(await tools.read_file.execute({ path: 'src/app.js', offset: 2, limit: 1 }, ctx('r2')), '     2\t  return "hello " + name;\n[showed lines 2-2 of 3; read on with offset=3]\n');

  const edited = await tools.edit.execute({ path: 'src/app.js', old_string: '"hello " + name', new_string: '`hello ${name}!`' }, ctx('e1'));
  assert.match(edited, /^-  return "hello " \+ name;$/m);
  assert.match(edited, /^\+  return `hello \$\{name\}!`;$/m);
  assert.equal(readFileSync(join(dir, 'src', 'app.js'), 'utf8'), 'export function greet(name) {\n  return `hello ${name}!`;\n}\n');
  await assert.rejects(
    () => tools.edit.execute({ path: 'src/app.js', old_string: 'no such text', new_string: 'x' }, ctx('e2')),
    (e) => e instanceof CodeToolError && e instanceof MiyabiError && e.tool === 'edit' && /not found|no match|does not occur/i.test(e.message),
  );

  const grep = await tools.grep.execute({ pattern: 'hello', context: 1 }, ctx('g1'));
  assert.match(grep, /^src\/app\.js:2:  return `hello \$\{name\}!`;$/m);
  assert.match(grep, /^src\/app\.js-1-export function greet\(name\) \{$/m);
  assert.equal(await tools.glob.execute({ pattern: '*.js' }, ctx('g2')), 'src/app.js\n');
  assert.match(await tools.list_dir.execute({}, ctx('l1')), /^src\/$/m);

  assert.match(await tools.write_file.execute({ path: 'docs/notes.md', content: 'notes\n' }, ctx('w1')), /created/);
  assert.equal(readFileSync(join(dir, 'docs', 'notes.md'), 'utf8'), 'notes\n');

  // Confinement: outside the root and into .git are refused, with the tool's message.
  await assert.rejects(() => tools.read_file.execute({ path: '../outside.txt' }, ctx('x1')), (e) => e instanceof CodeToolError && /\.\./.test(e.message));
  await assert.rejects(() => tools.write_file.execute({ path: '.git/hooks/pre-commit', content: 'evil' }, ctx('x2')), (e) => e instanceof CodeToolError && /\.git/.test(e.message));
  assert.equal(existsSync(join(dir, '.git', 'hooks', 'pre-commit')), false);

  assert.match(await tools.git_status.execute({}, ctx('s1')), /^ M src\/app\.js$/m);
  assert.match(await tools.git_diff.execute({}, ctx('d1')), /^\+  return `hello \$\{name\}!`;$/m);
  await tools.git_add.execute({}, ctx('a1'));
  await assert.rejects(() => tools.git_commit.execute({ message: 'changed stuff' }, ctx('c1')), (e) => e instanceof CodeToolError && /Conventional Commits/.test(e.message));
  await tools.git_commit.execute({ message: 'feat(app): greet with an exclamation mark' }, ctx('c2'));
  assert.equal(git(dir, 'log', '-1', '--format=%s').trim(), 'feat(app): greet with an exclamation mark');
  assert.match(await tools.find_symbol.execute({ name: 'greet' }, ctx('f1')), /src\/app\.js:1/);
});

test('the shell: an allowed command runs in the sandbox, a denied one is refused, an "ask" needs approval', async (t) => {
  const dir = repo(t);
  const tools = codingTools(dir, { policy: { deny: ['git stash*'] } });
  const shell = tools.shell;
  assert.equal(typeof shell.requiresApproval, 'function', 'the policy decides per call');

  const status = await shell.execute({ command: 'git status --short --branch' }, ctx('s1'));
  assert.equal(status.exit_code, 0, JSON.stringify(status));
  assert.equal(status.sandbox, 'workspace-write');
  assert.match(status.stdout, /^## main$/m);
  assert.equal(await asks(shell, { command: 'git status' }), false);

  for (const command of ['rm -rf /', 'true && rm -rf /', 'echo $(rm -rf ~)', 'git stash', 'ls | git stash pop']) {
    await assert.rejects(
      () => shell.execute({ command }, ctx('d1')),
      (e) => e instanceof CodeToolError && e.tool === 'shell' && /the permission policy denies this command/.test(e.message) && /deny rule/.test(e.message),
      command,
    );
  }
  assert.equal(existsSync(join(dir, 'src', 'app.js')), true);

  // Not in the recommended allow list: the policy asks; in a compound line too.
  assert.equal(await asks(shell, { command: 'touch approved.txt' }), true);
  assert.equal(await asks(shell, { command: 'ls && curl http://127.0.0.1:9/' }), true);
  const code = CodeTools.open(dir, { policy: { allow: ['touch:*'] } });
  assert.equal(code.needsApproval('shell', { command: 'touch approved.txt' }), false);
  assert.equal(code.needsApproval('shell', { command: 'touch a && sudo touch b' }), true);
  assert.equal(code.needsApproval('read_file', { path: 'README.md' }), false);

  // The sandbox: workspace-write, so the workspace's .git is read-only and there is no network.
  const planted = await shell.execute({ command: 'echo evil > .git/hooks/post-commit' }, ctx('s2'));
  assert.notEqual(planted.exit_code, 0, JSON.stringify(planted));
  assert.equal(existsSync(join(dir, '.git', 'hooks', 'post-commit')), false);
});

test('policy options: a policy file, and errors that name what was wrong', async (t) => {
  const dir = repo(t);
  const file = join(tempDir(t), 'permissions.toml');
  writeFileSync(file, '[commands]\nallow = ["touch:*"]\ndeny = ["git log*"]\n');
  const code = CodeTools.open(dir, { policyFile: file, sandbox: 'read-only' });
  assert.equal(code.sandbox, 'read-only');
  assert.equal(code.needsApproval('shell', { command: 'touch x' }), false);
  await assert.rejects(() => code.call('shell', { command: 'git log -1' }), (e) => e.code === 'ENGINE' && /git log\*/.test(e.message));
  // read-only: the command runs, but cannot write the workspace.
  const touched = await code.call('shell', { command: 'touch x' });
  assert.notEqual(touched.exit_code, 0);
  assert.equal(existsSync(join(dir, 'x')), false);

  // The workspace's own .miyabi/permissions.toml is read when no file is given.
  mkdirSync(join(dir, '.miyabi'));
  writeFileSync(join(dir, '.miyabi', 'permissions.toml'), '[commands]\ndeny = ["cat:*"]\n');
  await assert.rejects(() => CodeTools.open(dir).call('shell', { command: 'cat README.md' }), /cat:\*/);

  assert.throws(() => CodeTools.open(dir, { sandbox: 'chroot' }), (e) => e instanceof MiyabiError && e.code === 'INVALID_ARGUMENT' && /unknown sandbox mode `chroot`/.test(e.message));
  assert.throws(() => CodeTools.open(join(dir, 'missing')), (e) => e instanceof MiyabiError && /missing/.test(e.message));
  assert.throws(() => CodeTools.open(dir, { policyFile: join(dir, 'nope.toml') }), (e) => e instanceof MiyabiError && /nope\.toml/.test(e.message));
  writeFileSync(file, '[commands]\nallw = ["x"]\n');
  assert.throws(() => CodeTools.open(dir, { policyFile: file }), (e) => e instanceof MiyabiError && /permissions\.toml/.test(e.message));
  assert.throws(() => codingTools(dir, { only: ['read_file', 'nope'] }), (e) => e instanceof MiyabiError && /nope/.test(e.message));
  await assert.rejects(() => CodeTools.open(dir).call('nope', {}), (e) => e instanceof CodeToolError && e.code === 'NOT_FOUND');
  await assert.rejects(() => CodeTools.open(dir).call('read_file', { path: 10n }), (e) => e instanceof MiyabiError);
  assert.deepEqual(Object.keys(codingTools(dir, { only: ['read_file', 'shell'] })), ['read_file', 'shell']);
});

/** How many processes run `sleep <marker>`. */
function sleepers(marker) {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (cmd[0] === 'sleep' && cmd[1] === marker) n += 1;
  }
  return n;
}

test('an aborted signal cancels a running shell command (the command is killed)', { timeout: 120_000 }, async (t) => {
  const dir = repo(t);
  const code = CodeTools.open(dir, { policy: { allow: ['sleep:*'] } });
  const controller = new AbortController();
  const marker = `600.${process.pid}`;
  const running = code.call('shell', { command: `sleep ${marker} && echo late` }, { signal: controller.signal });
  while (sleepers(marker) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  controller.abort();
  await assert.rejects(running, (e) => e instanceof CodeToolError && e.code === 'CANCELLED');
  // The sandbox's processes die with it (bwrap --die-with-parent, its PID namespace): the kernel
  // does it asynchronously, so wait for it (the test's timeout guards against a hang).
  while (sleepers(marker) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  await assert.rejects(() => code.call('read_file', { path: 'README.md' }, { signal: controller.signal }), (e) => e.code === 'CANCELLED');

  // The options' signal cancels every call of the set.
  const all = new AbortController();
  const tools = CodeTools.open(dir, { policy: { allow: ['sleep:*'] }, signal: all.signal });
  const a = tools.call('shell', { command: 'sleep 600' });
  const b = tools.call('shell', { command: 'sleep 600 && true' });
  all.abort();
  for (const r of await Promise.allSettled([a, b])) {
    assert.equal(r.status, 'rejected');
    assert.equal(r.reason.code, 'CANCELLED');
  }
});

test('an Agent with a scripted model edits the repository through the tools', async (t) => {
  const dir = repo(t);
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'call_r', name: 'read_file', args: { path: 'src/app.js' } }] }) };
    if (i === 1) {
      assert.match(body.messages.at(-1).content, /return "hello " \+ name;/);
      return { json: completion({ calls: [{ id: 'call_w', name: 'write_file', args: { path: 'src/app.js', content: 'export const greet = (name) => `hi ${name}`;\n' } }] }) };
    }
    if (i === 2) return { json: completion({ calls: [{ id: 'call_d', name: 'shell', args: { command: 'true && rm -rf ~' } }] }) };
    return { json: completion({ text: 'Rewrote greet.' }) };
  });
  const agent = new Agent({ name: 'coder', model: chat(s.url), tools: codingTools(dir), maxSteps: 6 });
  const r = await agent.generate('Make greet shorter.');
  assert.equal(r.text, 'Rewrote greet.');
  assert.equal(r.stopReason, 'done');
  assert.equal(readFileSync(join(dir, 'src', 'app.js'), 'utf8'), 'export const greet = (name) => `hi ${name}`;\n');
  // The denied command went back to the model as the call's error.
  const denied = r.toolResults.find((x) => x.toolName === 'shell');
  assert.equal(denied.isError, true);
  assert.match(String(denied.output), /the permission policy denies this command/);
  assert.deepEqual(
    s.requests[0].body.tools.map((x) => x.function.name),
    [...CODING_TOOL_NAMES],
  );
});

test('a shell command the policy asks about stops the agent; resuming with approval runs it', async (t) => {
  const dir = repo(t);
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'call_ls', name: 'shell', args: { command: 'ls src' } }] }) };
    if (i === 1) return { json: completion({ calls: [{ id: 'call_t', name: 'shell', args: { command: 'touch approved.txt' } }] }) };
    return { json: completion({ text: `done: ${body.messages.at(-1).content.includes('"exit_code":0')}` }) };
  });
  const agent = new Agent({ name: 'coder', model: chat(s.url), tools: codingTools(dir), maxSteps: 6 });
  const first = await agent.generate('Create approved.txt.');
  assert.equal(first.stopReason, 'approval-required', JSON.stringify(first.toolResults));
  assert.deepEqual(first.pending.map((p) => [p.toolName, p.input]), [['shell', { command: 'touch approved.txt' }]]);
  // `ls src` is allowed: it ran without asking.
  assert.deepEqual(first.toolResults.map((x) => [x.toolName, x.isError]), [['shell', false]]);
  assert.equal(existsSync(join(dir, 'approved.txt')), false, 'nothing ran before the approval');

  const done = await agent.resume(first.checkpoint, { approved: true });
  assert.equal(done.stopReason, 'done');
  assert.equal(done.text, 'done: true');
  assert.equal(existsSync(join(dir, 'approved.txt')), true);
});

test('inside a workflow, an "ask" shell call suspends the run durably; another engine resumes it', async (t) => {
  const dir = repo(t);
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'call_m', name: 'shell', args: { command: 'mkdir build && touch build/out.txt' } }] }) };
    return { json: completion({ text: `built: ${body.messages.at(-1).content.includes('"exit_code":0')}` }) };
  });
  const agent = new Agent({ name: 'coder', model: chat(s.url), tools: codingTools(dir), maxSteps: 4 });
  const wf = workflow('code-ask').step('coder', agent).commit();
  const db = `sqlite:${join(tempDir(t), 'runs.db')}`;
  const run = await (await Engine.open({ store: db, workflows: [wf] })).start(wf, 'Build it.');
  assert.equal(run.status, 'suspended', run.error);
  assert.equal(run.suspended[0].payload.kind, 'tool-approval');
  assert.deepEqual(run.suspended[0].payload.pending.map((p) => p.tool), ['shell']);
  assert.equal(existsSync(join(dir, 'build')), false, 'nothing ran before the approval');

  const other = await Engine.open({ store: db, workflows: [wf] });
  const done = await other.resume(run.id, 'coder', { approved: true });
  assert.equal(done.status, 'succeeded', done.error);
  assert.equal(done.output, 'built: true');
  assert.equal(existsSync(join(dir, 'build', 'out.txt')), true);
  assert.equal(s.requests.length, 2, 'the model was not asked again for the first turn');
});

test('codegenAgent: the codegen preset with its tools from this package and the project context', async (t) => {
  const dir = repo(t);
  const codegen = presets().find((p) => p.name === 'codegen');
  for (const name of codegen.tools) assert.ok(CODING_TOOL_NAMES.includes(name), `the codegen preset's tool ${name} is a coding tool`);
  const s = await openaiServer(t, (body, i) => {
    if (i === 0) return { json: completion({ calls: [{ id: 'call_e', name: 'edit', args: { path: 'README.md', old_string: '# demo', new_string: '# demo app' } }] }) };
    return { json: completion({ text: JSON.stringify({ summary: 'Renamed the README title.', files_changed: ['README.md'], tests_changed: false }) }) };
  });
  const agent = await codegenAgent(dir, { model: chat(s.url), instructions: 'Keep commits small.' });
  const r = await agent.generate('Rename the project in the README.');
  assert.deepEqual(r.object, { summary: 'Renamed the README title.', files_changed: ['README.md'], tests_changed: false });
  assert.equal(readFileSync(join(dir, 'README.md'), 'utf8'), '# demo app\n');
  const req = s.requests[0].body;
  assert.deepEqual(req.tools.map((x) => x.function.name).sort(), [...codegen.tools].sort());
  const system = req.messages[0].content;
  assert.ok(system.startsWith(codegen.instructions), 'the preset instructions come first');
  assert.match(system, /Use two spaces for indentation in this project\./);
  assert.match(system, /# Repository map\n[\s\S]*src\/app\.js/);
  assert.match(system, /Keep commits small\.$/);
});

test('npm pack of @miyabi/code holds what a user needs; one platform package per napi target', async () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: pkgDir, stdio: 'pipe' }).toString());
  const files = packed[0].files.map((f) => f.path).sort();
  for (const f of [
    'package.json',
    'README.md',
    'LICENSE-MIT',
    'LICENSE-APACHE',
    'native.cjs',
    'native.d.cts',
    'dist/native.cjs',
    'dist/native.d.cts',
    'dist/esm/index.js',
    'dist/esm/index.d.ts',
    'dist/esm/native.js',
    'dist/esm/package.json',
    'dist/cjs/index.js',
    'dist/cjs/index.d.ts',
    'dist/cjs/native.js',
    'dist/cjs/package.json',
  ]) {
    assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
  }
  assert.ok(!files.some((f) => f.endsWith('.node')), 'binaries are in the platform packages');
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('npm/') || f.startsWith('node_modules/')), files.join(', '));
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  assert.equal(manifest.name, '@miyabi/code');
  assert.ok(manifest.peerDependencies['@miyabi/core'], 'peer dependency on @miyabi/core');
  for (const license of ['LICENSE-MIT', 'LICENSE-APACHE']) {
    assert.equal(readFileSync(join(pkgDir, license), 'utf8'), readFileSync(join(root, license), 'utf8'), `packages/code/${license} is the root's`);
  }

  const { parseTriple } = await import('@napi-rs/cli');
  const targets = manifest.napi.targets.map((x) => parseTriple(x));
  assert.deepEqual(targets.map((x) => x.platformArchABI).sort(), readdirSync(join(pkgDir, 'npm')).sort());
  for (const target of targets) {
    const dir = join(pkgDir, 'npm', target.platformArchABI);
    const platform = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const binary = `${manifest.napi.binaryName}.${target.platformArchABI}.node`;
    assert.equal(platform.name, `${manifest.napi.packageName}-${target.platformArchABI}`);
    assert.equal(platform.version, manifest.version);
    assert.equal(platform.main, binary);
    assert.deepEqual([...platform.files].sort(), ['LICENSE-APACHE', 'LICENSE-MIT', binary].sort());
    assert.deepEqual(platform.os, [target.platform]);
    assert.deepEqual(platform.cpu, [target.arch]);
    if (target.platform === 'linux') assert.deepEqual(platform.libc, [target.abi === 'musl' ? 'musl' : 'glibc']);
    assert.equal(platform.license, manifest.license);
    for (const license of ['LICENSE-MIT', 'LICENSE-APACHE']) {
      assert.equal(readFileSync(join(dir, license), 'utf8'), readFileSync(join(root, license), 'utf8'), `${platform.name}'s ${license}`);
    }
  }
});

test('the CommonJS build works the same', async (t) => {
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const cjs = require('../packages/code/dist/cjs/index.js');
  const dir = repo(t);
  const tools = cjs.codingTools(dir, { only: ['read_file'] });
  assert.equal(await tools.read_file.execute({ path: 'README.md' }, ctx('c1')), '     1\t# demo\n');
});

test('the TypeScript surface: typed tools go into an Agent as they are; no `any` in the .d.ts files', () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tests', 'types-code')], { stdio: 'pipe' });
  } catch (e) {
    assert.fail(`tsc -p tests/types-code failed:\n${e.stdout}${e.stderr}`);
  }
  for (const dir of ['dist/esm', 'dist/cjs']) {
    for (const f of readdirSync(join(pkgDir, dir)).filter((x) => x.endsWith('.d.ts'))) {
      const text = readFileSync(join(pkgDir, dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      assert.doesNotMatch(text, /\bany\b(?!')/, `packages/code/${dir}/${f} mentions any`);
    }
  }
});
