// What `npm install @miyabi/core` gives a user, end to end. A throw-away registry (Verdaccio) on
// loopback; the release steps of package.json run on a staged copy of the package for this
// platform (`npm run artifacts` = `napi artifacts`, which puts the built addon into
// npm/linux-x64-gnu; `npm publish`, whose prepublishOnly `napi pre-publish` publishes the platform
// package and gives the main package its optionalDependencies); then, in empty folders,
// `npm install @miyabi/core zod` (only @miyabi/* — core, react and code — from the loopback registry, everything else from
// npm's cache) runs the README's Node quickstart as ESM and as CommonJS, and a copy of the Next.js
// example is built, started and asked to run a workflow. @miyabi/code goes through the same
// release steps (its own platform package) and `npm install @miyabi/core @miyabi/code` runs its
// tools on a git repository from ESM, CommonJS and TypeScript. Nothing points the package at its binary
// (no NAPI_RS_NATIVE_LIBRARY_PATH): the binary comes from the optional dependency, as for a user.
//
// Needs `npm run build:debug` first (the debug addon is what gets published here). Runs on
// linux-x64-gnu only: the only binary this machine builds is that platform's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { freePort, tempDir } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = rootPackage.version;
const TARGET = 'x86_64-unknown-linux-gnu';
const PLATFORM = 'linux-x64-gnu';
const BINARY = `miyabi.${PLATFORM}.node`;
const CODE_BINARY = `miyabi-code.${PLATFORM}.node`;
const LICENSES = ['LICENSE-MIT', 'LICENSE-APACHE'];

function hostPlatform() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `${process.platform}-${process.arch}`;
  return process.report.getReport().header.glibcVersionRuntime ? 'linux-x64-gnu' : 'linux-x64-musl';
}

/** The environment of every npm/node child: no npm_* variables inherited from `npm test` (they
 * name this repository as the project), and no override of the addon's path. */
function cleanEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH;
  return { ...env, PATH: `${join(root, 'node_modules', '.bin')}:${env.PATH ?? ''}`, ...extra };
}

function sh(cmd, args, cwd, env = cleanEnv()) {
  try {
    return execFileSync(cmd, args, { cwd, env, stdio: 'pipe', maxBuffer: 64 << 20 }).toString();
  } catch (e) {
    assert.fail(`${cmd} ${args.join(' ')} (in ${cwd}) failed:\n${e.stdout ?? ''}${e.stderr ?? ''}${e.code ?? ''}`);
  }
}

/** The installed version of one of the repository's dev dependencies: installing that exact
 * version lets npm take it from its cache (`npm ci` put it there). */
function devVersion(name) {
  return JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
}

/** Files of a .tgz (npm's tarballs are ustar): path -> contents. */
function tarEntries(tgz) {
  const buf = gunzipSync(tgz);
  const entries = new Map();
  let pax = null;
  for (let off = 0; off + 512 <= buf.length; ) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const field = (a, b) => h.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(field(124, 136).trim() || '0', 8);
    const type = field(156, 157);
    const prefix = field(257, 263) === 'ustar' ? field(345, 500) : '';
    const body = buf.subarray(off + 512, off + 512 + size);
    if (type === 'x') {
      pax = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'))?.[1] ?? null;
    } else {
      if (type === '0' || type === '') entries.set(pax ?? (prefix ? `${prefix}/` : '') + field(0, 100), body);
      pax = null;
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return entries;
}

/** Starts Verdaccio in a child process on 127.0.0.1 (a port the OS picks); resolves with its URL. */
async function startRegistry(t, dir) {
  // JSON is YAML: Verdaccio reads this as its config file.
  const config = {
    storage: join(dir, 'storage'),
    auth: { htpasswd: { file: join(dir, 'htpasswd'), max_users: 1 } },
    uplinks: {},
    packages: {
      '@miyabi/*': { access: '$all', publish: '$authenticated' },
      '**': { access: '$all' },
    },
    web: { enable: false },
    max_body_size: '500mb',
    log: { type: 'stdout', format: 'json', level: 'error' },
  };
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const verdaccio = pathToFileURL(createRequire(import.meta.url).resolve('verdaccio')).href;
  const script = `
    const { runServer } = await import(process.argv[1]);
    const app = await runServer(process.argv[2]);
    const server = app.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, verdaccio, configPath], {
    cwd: dir,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => (log += d));
    child.stdout.on('data', (d) => {
      log += d;
      const m = /\{"listening":(\d+)\}/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    exited.then((code) => reject(new Error(`verdaccio exited (${code}) before listening:\n${log}`)));
  });
  return `http://127.0.0.1:${port}/`;
}

/** Stages a copy of the package, runs the release steps on it for this platform and publishes
 * to `registry`. */
async function publish(dir, registry) {
  // A user, as `npm adduser` makes one; its token goes into a userconfig used for publishing only.
  const res = await fetch(new URL('-/user/org.couchdb.user:miyabi-test', registry), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'miyabi-test', password: 'miyabi-test-password' }),
  });
  const { token } = await res.json();
  assert.equal(res.status, 201, 'the registry creates the publishing user');
  const host = registry.replace(/^http:/, '');
  const userconfig = join(dir, 'publish.npmrc');
  writeFileSync(userconfig, `@miyabi:registry=${registry}\n${host}:_authToken=${token}\n`);

  // The staged package: what `files` lists, the README and the per-platform packages (no
  // binaries left over from a local run).
  const stage = join(dir, 'stage');
  for (const f of ['package.json', 'README.md', ...rootPackage.files, 'npm']) {
    cpSync(join(root, f), join(stage, f), { recursive: true, filter: (src) => !src.endsWith('.node') });
  }
  // This machine builds one platform's binary, so the staged napi config lists that target only:
  // napi artifacts and pre-publish require a binary for every configured target. The platform
  // packages of the other targets are checked by tests/pack.test.mjs.
  assert.ok(rootPackage.napi.targets.includes(TARGET), `${TARGET} is a release target`);
  const staged = { ...rootPackage, napi: { ...rootPackage.napi, targets: [TARGET] } };
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`);

  // `artifacts/` is where a release job downloads the built binaries. The debug build carries
  // ~200 MB of debug info; stripped (as the release build is by `napi build --strip`) it packs and
  // installs several times faster. Without `strip` on the machine it is published as built.
  const built = join(root, BINARY);
  assert.ok(existsSync(built), `${BINARY} is missing: run \`npm run build:debug\` first`);
  mkdirSync(join(stage, 'artifacts'));
  try {
    execFileSync('strip', ['--strip-unneeded', '-o', join(stage, 'artifacts', BINARY), built], { stdio: 'pipe' });
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    cpSync(built, join(stage, 'artifacts', BINARY));
  }

  sh('npm', ['run', 'artifacts'], stage);
  assert.ok(existsSync(join(stage, 'npm', PLATFORM, BINARY)), 'napi artifacts put the binary into its platform package');
  const out = sh('npm', ['publish'], stage, cleanEnv({ npm_config_userconfig: userconfig }));
  assert.match(out, new RegExp(`\\+ @miyabi/core-${PLATFORM}@${version.replace(/\./g, '\\.')}`), out);
  assert.match(out, new RegExp(`\\+ @miyabi/core@${version.replace(/\./g, '\\.')}`), out);

  // @miyabi/react, built by `npm run build:ts` into packages/react/dist.
  const react = join(dir, 'stage-react');
  for (const f of ['package.json', 'dist']) cpSync(join(root, 'packages', 'react', f), join(react, f), { recursive: true });
  for (const f of LICENSES) cpSync(join(root, f), join(react, f));
  const reactOut = sh('npm', ['publish'], react, cleanEnv({ npm_config_userconfig: userconfig }));
  assert.match(reactOut, /\+ @miyabi\/react@/, reactOut);

  // @miyabi/code: the same release steps on its own package (packages/code, its addon built by
  // `npm run build:debug`) and its own platform package.
  const codeDir = join(root, 'packages', 'code');
  const codePackage = JSON.parse(readFileSync(join(codeDir, 'package.json'), 'utf8'));
  const code = join(dir, 'stage-code');
  for (const f of ['package.json', 'README.md', ...codePackage.files, 'npm']) {
    cpSync(join(codeDir, f), join(code, f), { recursive: true, filter: (src) => !src.endsWith('.node') });
  }
  assert.ok(codePackage.napi.targets.includes(TARGET), `${TARGET} is a release target of @miyabi/code`);
  writeFileSync(join(code, 'package.json'), `${JSON.stringify({ ...codePackage, napi: { ...codePackage.napi, targets: [TARGET] } }, null, 2)}\n`);
  const codeBuilt = join(codeDir, CODE_BINARY);
  assert.ok(existsSync(codeBuilt), `packages/code/${CODE_BINARY} is missing: run \`npm run build:debug\` first`);
  mkdirSync(join(code, 'artifacts'));
  try {
    execFileSync('strip', ['--strip-unneeded', '-o', join(code, 'artifacts', CODE_BINARY), codeBuilt], { stdio: 'pipe' });
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    cpSync(codeBuilt, join(code, 'artifacts', CODE_BINARY));
  }
  sh('npm', ['run', 'artifacts'], code);
  assert.ok(existsSync(join(code, 'npm', PLATFORM, CODE_BINARY)), 'napi artifacts put the binary into its platform package');
  const codeOut = sh('npm', ['publish'], code, cleanEnv({ npm_config_userconfig: userconfig }));
  assert.match(codeOut, new RegExp(`\\+ @miyabi/code-${PLATFORM}@${version.replace(/\./g, '\\.')}`), codeOut);
  assert.match(codeOut, new RegExp(`\\+ @miyabi/code@${version.replace(/\./g, '\\.')}`), codeOut);
}

/** The README's ```ts block under "## Quickstart (Node ...", with a last line printing the result. */
function readmeQuickstart() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quickstart (Node'));
  assert.ok(section, 'README.md has a "## Quickstart (Node / TypeScript)" section');
  const block = /^```ts\n([\s\S]*?)^```/m.exec(section);
  assert.ok(block, 'the quickstart section has a ```ts block');
  return `${block[1]}console.log(JSON.stringify({ status: done.status, output: done.output }));\n`;
}

/** The same program as CommonJS: imports become requires, the rest runs in an async function. */
function toCommonJs(esm) {
  const imports = [];
  const body = esm.replace(/^import \{([^}]*)\} from '([^']+)';\n/gm, (_, names, mod) => {
    imports.push(`const {${names}} = require('${mod}');`);
    return '';
  });
  assert.ok(!/^import /m.test(body), `only named imports are turned into requires:\n${body}`);
  return `${imports.join('\n')}\n(async () => {\n${body}})().catch((e) => {\n  console.error(e);\n  process.exitCode = 1;\n});\n`;
}

/** Removes the npm cache's entries for the loopback registry (a later run may get the same
 * port; its metadata must not come from this run's cache). */
function forgetRegistry(registry) {
  const keys = sh('npm', ['cache', 'ls'], root)
    .split('\n')
    .filter((k) => k.includes(registry.replace(/\/$/, '')));
  if (keys.length > 0) sh('npm', ['cache', 'clean', ...keys], root);
}

test('@miyabi/core installs from a registry and works without NAPI_RS_NATIVE_LIBRARY_PATH', { timeout: 900_000 }, async (t) => {
  const host = hostPlatform();
  if (host !== PLATFORM) {
    t.skip(`the release steps are run for ${PLATFORM} only (the binary this machine builds); this is ${host}`);
    return;
  }
  const dir = tempDir(t);
  const registry = await startRegistry(t, join(dir, 'registry'));
  t.after(() => forgetRegistry(registry));
  await publish(dir, registry);
  const npmrc = `@miyabi:registry=${registry}\n`;

  await t.test('what was published: the binary in the platform package, optionalDependencies, licenses', async () => {
    const meta = await (await fetch(new URL('@miyabi%2fcore', registry))).json();
    const main = meta.versions[version];
    assert.deepEqual(main.optionalDependencies, { [`@miyabi/core-${PLATFORM}`]: version });
    const mainFiles = tarEntries(Buffer.from(await (await fetch(main.dist.tarball)).arrayBuffer()));
    for (const f of ['package/dist/esm/index.js', 'package/dist/cjs/index.js', 'package/native.cjs', 'package/bin/miyabi.mjs']) {
      assert.ok(mainFiles.has(f), `${f} in ${[...mainFiles.keys()].join(', ')}`);
    }
    assert.ok(![...mainFiles.keys()].some((f) => f.endsWith('.node')), 'the main package carries no binary');

    const platformMeta = await (await fetch(new URL(`@miyabi%2fcore-${PLATFORM}`, registry))).json();
    const platform = platformMeta.versions[version];
    assert.deepEqual([platform.os, platform.cpu, platform.libc], [['linux'], ['x64'], ['glibc']]);
    const platformFiles = tarEntries(Buffer.from(await (await fetch(platform.dist.tarball)).arrayBuffer()));
    assert.ok(platformFiles.has(`package/${BINARY}`), [...platformFiles.keys()].join(', '));

    for (const [name, files] of [['@miyabi/core', mainFiles], [`@miyabi/core-${PLATFORM}`, platformFiles]]) {
      for (const license of LICENSES) {
        const text = files.get(`package/${license}`);
        assert.ok(text, `${name}'s tarball has ${license}`);
        assert.equal(text.toString('utf8'), readFileSync(join(root, license), 'utf8'), `${name}'s ${license}`);
      }
    }
  });

  await t.test('npm install @miyabi/core zod, then the README quickstart as ESM and as CommonJS', async () => {
    const app = join(dir, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    writeFileSync(join(app, '.npmrc'), npmrc);
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '@miyabi/core', `zod@${devVersion('zod')}`], app);
    const installed = join(app, 'node_modules', '@miyabi', `core-${PLATFORM}`, BINARY);
    assert.ok(existsSync(installed), 'npm installed the platform package as an optional dependency');

    const quickstart = readmeQuickstart();
    const expected = { status: 'succeeded', output: { approved: true } };
    writeFileSync(join(app, 'quickstart.mjs'), quickstart);
    const esm = sh(process.execPath, ['quickstart.mjs'], app);
    assert.match(esm, /^run-suspended/m, esm);
    assert.deepEqual(JSON.parse(esm.trim().split('\n').at(-1)), expected, esm);

    writeFileSync(join(app, 'quickstart.cjs'), toCommonJs(quickstart));
    const cjs = sh(process.execPath, ['quickstart.cjs'], app);
    assert.match(cjs, /^run-suspended/m, cjs);
    assert.deepEqual(JSON.parse(cjs.trim().split('\n').at(-1)), expected, cjs);

    // The `miyabi` command the package installs, on the quickstart's database (two runs).
    const bin = join(app, 'node_modules', '.bin', 'miyabi');
    const runs = JSON.parse(sh(bin, ['runs', 'list', '--db', join(app, 'miyabi.db'), '--json'], app));
    assert.deepEqual(runs.map((r) => [r.workflow, r.status]), [['issue-resolution', 'succeeded'], ['issue-resolution', 'succeeded']]);
  });

  await t.test('npm install @miyabi/core @miyabi/code: the coding tools from ESM, CommonJS and TypeScript', async () => {
    const meta = await (await fetch(new URL('@miyabi%2fcode', registry))).json();
    assert.deepEqual(meta.versions[version].optionalDependencies, { [`@miyabi/code-${PLATFORM}`]: version });
    const codePeers = JSON.parse(readFileSync(join(root, 'packages', 'code', 'package.json'), 'utf8')).peerDependencies;
    assert.deepEqual(meta.versions[version].peerDependencies, codePeers);

    const app = join(dir, 'code-app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'code-app', private: true }));
    writeFileSync(join(app, '.npmrc'), npmrc);
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '@miyabi/core', '@miyabi/code'], app);
    assert.ok(existsSync(join(app, 'node_modules', '@miyabi', `code-${PLATFORM}`, CODE_BINARY)), 'npm installed the platform package of @miyabi/code');

    const repo = join(app, 'repo');
    mkdirSync(repo);
    sh('git', ['init', '-q'], repo);
    writeFileSync(join(repo, 'hello.txt'), 'hello\n');
    writeFileSync(
      join(app, 'esm.mjs'),
      `import { codingTools } from '@miyabi/code';
       const tools = codingTools('repo');
       const ctx = { toolCallId: 'c1', agent: 'app', idempotencyKey: 'c1' };
       const read = await tools.read_file.execute({ path: 'hello.txt' }, ctx);
       const status = await tools.shell.execute({ command: 'git status --short' }, ctx);
       const asks = await tools.shell.requiresApproval({ command: 'curl http://127.0.0.1:9/' });
       console.log(JSON.stringify({ read, stdout: status.stdout, sandbox: status.sandbox, asks }));\n`,
    );
    assert.deepEqual(JSON.parse(sh(process.execPath, ['esm.mjs'], app).trim()), {
      read: '     1\thello\n',
      stdout: '?? hello.txt\n',
      sandbox: 'workspace-write',
      asks: true,
    });
    writeFileSync(
      join(app, 'cjs.cjs'),
      `const { CodeTools } = require('@miyabi/code');
       CodeTools.open('repo').call('grep', { pattern: 'hel+o' }).then((out) => console.log(JSON.stringify(out)));\n`,
    );
    assert.equal(JSON.parse(sh(process.execPath, ['cjs.cjs'], app).trim()), 'hello.txt:1:hello\n');

    writeFileSync(
      join(app, 'main.ts'),
      `import { Agent } from '@miyabi/core';
       import { codingTools, type ShellResult } from '@miyabi/code';
       const tools = codingTools('repo', { only: ['read_file', 'shell'] });
       export const agent = new Agent({ name: 'coder', model: 'openai/gpt-4.1', tools });
       export async function run(): Promise<ShellResult> {
         return tools.shell.execute({ command: 'ls' }, { toolCallId: 'x', agent: 'a', runId: undefined, path: undefined, idempotencyKey: 'x', thread: undefined, resource: undefined });
       }\n`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] }, files: ['main.ts'] }),
    );
    symlinkSync(join(root, 'node_modules', '@types'), join(app, 'node_modules', '@types'));
    sh(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app);
  });

  await t.test('a Next.js app with @miyabi/core from the registry: next build, next start, a workflow per request', async (t) => {
    // A copy of examples-ts/next-app as a standalone app: its own package.json and next.config
    // (the example's use the repository's node_modules), plus a route that runs a workflow.
    const example = join(root, 'examples-ts', 'next-app');
    const app = join(dir, 'next-app');
    const skipped = new Set(['node_modules', '.next', 'next-env.d.ts', 'install-core.mjs', 'package.json', 'next.config.mjs', 'next.config.ts']);
    cpSync(example, app, { recursive: true, filter: (src) => !relative(example, src).split(sep).some((p) => skipped.has(p)) });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'next-app', private: true }));
    writeFileSync(join(app, '.npmrc'), npmrc);
    writeFileSync(
      join(app, 'next.config.mjs'),
      `// @miyabi/core loads a native addon: Next leaves it to Node instead of bundling it.
       // Type errors are left to tsc (TypeScript 7 has no JS API for Next's own check).
       export default { serverExternalPackages: ['@miyabi/core'], typescript: { ignoreBuildErrors: true } };\n`,
    );
    mkdirSync(join(app, 'app', 'api', 'registry-check'), { recursive: true });
    writeFileSync(
      join(app, 'app', 'api', 'registry-check', 'route.ts'),
      `import { z } from 'zod';
       import { Engine, workflow } from '@miyabi/core';

       export const runtime = 'nodejs';
       export const dynamic = 'force-dynamic';

       const wf = workflow('registry-check', { input: z.object({ n: z.number() }) })
         .step('double', ({ input }) => input.n * 2)
         .then('describe', async ({ input }) => ({ doubled: input }))
         .commit();
       const engine = Engine.open({ store: 'memory', workflows: [wf] });

       export async function POST(req: Request): Promise<Response> {
         const run = await (await engine).start(wf, await req.json());
         return Response.json({ status: run.status, output: run.output });
       }\n`,
    );
    const deps = ['next', 'react', 'react-dom', 'zod', 'typescript', '@types/react', '@types/node', 'ai', '@ai-sdk/react'].map((d) => `${d}@${devVersion(d)}`);
    sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '@miyabi/core', '@miyabi/react', ...deps], app);

    const env = cleanEnv({ NEXT_TELEMETRY_DISABLED: '1' });
    const next = join(app, 'node_modules', 'next', 'dist', 'bin', 'next');
    sh(process.execPath, [next, 'build'], app, env);

    const port = await freePort();
    const server = spawn(process.execPath, [next, 'start', '-p', String(port), '-H', '127.0.0.1'], { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => server.on('exit', resolve));
    t.after(async () => {
      server.kill('SIGTERM');
      await exited;
    });
    let log = '';
    server.stderr.on('data', (d) => (log += d));
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (d) => {
        log += d;
        if (/Ready in/.test(log)) resolve();
      });
      exited.then((code) => reject(new Error(`next start exited (${code}):\n${log}`)));
    });

    const res = await fetch(`http://127.0.0.1:${port}/api/registry-check`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 21 }),
    });
    const body = await res.text();
    assert.equal(res.status, 200, `${body}\n${log}`);
    assert.deepEqual(JSON.parse(body), { status: 'succeeded', output: { doubled: 42 } });
  });
});
