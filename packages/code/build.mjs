// Compiles @miyabi/code twice: ESM into dist/esm and CommonJS into dist/cjs, each with .d.ts
// files. The native addon's loader (native.cjs, written by `napi build`) stays next to
// package.json; dist/native.cjs forwards to it from both outputs.
//
// In this repository @miyabi/core, the peer dependency, is the root package: a link
// node_modules/@miyabi/core -> the root (what npm makes for a workspace) lets the compiler and
// Node resolve it from here. Run `npm run build:ts` at the root (it builds @miyabi/core first).
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

const scope = join(here, 'node_modules', '@miyabi');
const link = join(scope, 'core');
const target = relative(scope, root);
mkdirSync(scope, { recursive: true });
const linked = existsSync(link) && lstatSync(link).isSymbolicLink() && readlinkSync(link) === target;
if (!linked) {
  rmSync(link, { recursive: true, force: true });
  symlinkSync(target, link, 'dir');
}

rmSync(join(here, 'dist'), { recursive: true, force: true });
for (const config of ['tsconfig.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', join(here, config)], { stdio: 'inherit' });
}
writeFileSync(join(here, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(join(here, 'dist', 'esm', 'package.json'), '{ "type": "module" }\n');
writeFileSync(join(here, 'dist', 'native.cjs'), "'use strict';\nmodule.exports = require('../native.cjs');\n");
writeFileSync(join(here, 'dist', 'native.d.cts'), "export * from '../native.cjs';\n");
