// The published shape: `npm pack`, install the tarball into a fresh project, and use it from
// ESM, from CommonJS and from TypeScript (tsc --noEmit). The platform binary is pointed to with
// NAPI_RS_NATIVE_LIBRARY_PATH here; published installs get it from the @miyabi/core-<platform>
// package, which tests/registry.test.mjs publishes and installs through a loopback registry.
// Also: every release target has its platform package under npm/, with the licenses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function sh(cmd, args, cwd, env = {}) {
  try {
    return execFileSync(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: 'pipe' }).toString();
  } catch (e) {
    assert.fail(`${cmd} ${args.join(' ')} failed:\n${e.stdout}${e.stderr}`);
  }
}

test('the packed package installs and works from ESM, CommonJS and TypeScript', async (t) => {
  const dir = tempDir(t);
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', dir], root));
  const files = packed[0].files.map((f) => f.path);
  assert.ok(files.includes('dist/esm/index.js') && files.includes('dist/cjs/index.js') && files.includes('native.cjs'), files.join(', '));
  assert.ok(!files.some((f) => f.startsWith('bindings-node/') || f.startsWith('tests/')), 'sources stay out of the package');
  assert.ok(!files.some((f) => f.endsWith('.node')), 'binaries are in the platform packages, not in the main one');
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'README.md']) assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);

  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  // --omit=optional: the platform packages are not published from here.
  sh('npm', ['install', '--omit=optional', '--no-audit', '--no-fund', '--offline', join(dir, packed[0].filename)], app);
  for (const dep of ['zod', '@types']) symlinkSync(join(root, 'node_modules', dep), join(app, 'node_modules', dep));

  const binary = readdirSync(root).find((f) => f.startsWith('miyabi.') && f.endsWith('.node'));
  assert.ok(binary !== undefined && existsSync(join(root, binary)), 'build the addon first');
  const env = { NAPI_RS_NATIVE_LIBRARY_PATH: join(root, binary) };

  writeFileSync(
    join(app, 'esm.mjs'),
    `import { workflow, Engine } from '@miyabi/core';
     const wf = workflow('esm').step('a', ({ input }) => input * 2).commit();
     const run = await (await Engine.open()).start(wf, 21);
     console.log(run.output);`,
  );
  assert.equal(sh(process.execPath, ['esm.mjs'], app, env).trim(), '42');

  writeFileSync(
    join(app, 'cjs.cjs'),
    `const { workflow, Engine } = require('@miyabi/core');
     const wf = workflow('cjs').step('a', async ({ input }) => input + 1).commit();
     Engine.openSync().start(wf, 41).then((run) => console.log(run.output));`,
  );
  assert.equal(sh(process.execPath, ['cjs.cjs'], app, env).trim(), '42');

  writeFileSync(
    join(app, 'main.ts'),
    `import { z } from 'zod';
     import { workflow, Engine, type Run } from '@miyabi/core';
     const wf = workflow('ts', { input: z.object({ n: z.number() }) }).step('a', ({ input }) => input.n + 1).commit();
     export async function main(): Promise<Run<number>> {
       const engine = await Engine.open({ store: 'memory' });
       return engine.start(wf, { n: 1 });
     }`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] }, files: ['main.ts'] }),
  );
  sh(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app);

  // The `miyabi` command the package installs.
  const bin = join(app, 'node_modules', '.bin', 'miyabi');
  assert.equal(sh(bin, ['runs', 'list', '--db', join(app, 'cli.db'), '--json'], app, env).trim(), '[]');
  assert.match(sh(bin, ['--help'], app, env), /approve <run> <gate> --as WHO/);
});

test('every release target has its platform package under npm/, with the licenses', async () => {
  const { parseTriple } = await import('@napi-rs/cli');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const dirs = readdirSync(join(root, 'npm')).sort();
  const targets = pkg.napi.targets.map((t) => parseTriple(t));
  assert.deepEqual(targets.map((t) => t.platformArchABI).sort(), dirs, 'one npm/<platform> directory per napi target');
  for (const target of targets) {
    const dir = join(root, 'npm', target.platformArchABI);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const binary = `${pkg.napi.binaryName}.${target.platformArchABI}.node`;
    assert.equal(manifest.name, `${pkg.napi.packageName}-${target.platformArchABI}`);
    assert.equal(manifest.version, pkg.version, `${manifest.name}'s version`);
    assert.equal(manifest.main, binary);
    assert.deepEqual([...manifest.files].sort(), ['LICENSE-APACHE', 'LICENSE-MIT', binary].sort(), `${manifest.name}'s files`);
    assert.deepEqual(manifest.os, [target.platform]);
    assert.deepEqual(manifest.cpu, [target.arch]);
    if (target.platform === 'linux') assert.deepEqual(manifest.libc, [target.abi === 'musl' ? 'musl' : 'glibc']);
    assert.equal(manifest.license, pkg.license);
    for (const license of ['LICENSE-MIT', 'LICENSE-APACHE']) {
      assert.equal(readFileSync(join(dir, license), 'utf8'), readFileSync(join(root, license), 'utf8'), `npm/${target.platformArchABI}/${license} is the root's`);
    }
  }
});
