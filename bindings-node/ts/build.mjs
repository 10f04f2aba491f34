// Compiles the TypeScript facade twice: ESM into dist/esm and CommonJS into dist/cjs (with a
// package.json marking that folder CommonJS), each with its .d.ts files.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
rmSync(join(root, 'dist'), { recursive: true, force: true });
for (const config of ['tsconfig.json', 'tsconfig.cjs.json']) {
  execFileSync(process.execPath, [tsc, '-p', join(here, config)], { stdio: 'inherit' });
}
mkdirSync(join(root, 'dist', 'cjs'), { recursive: true });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');
writeFileSync(join(root, 'dist', 'esm', 'package.json'), '{ "type": "module" }\n');

// The 21 agent presets as data: agents/presets.json (written by the miyabi-agents crate and
// checked against its presets by its tests) becomes a module in both outputs.
const presets = readFileSync(join(root, 'agents', 'presets.json'), 'utf8');
JSON.parse(presets);
writeFileSync(join(root, 'dist', 'esm', 'presets-data.js'), `export const PRESETS = Object.freeze(${presets.trim()});\n`);
writeFileSync(join(root, 'dist', 'cjs', 'presets-data.js'), `"use strict";\nObject.defineProperty(exports, "__esModule", { value: true });\nexports.PRESETS = Object.freeze(${presets.trim()});\n`);
for (const out of ['esm', 'cjs']) copyFileSync(join(here, 'presets-data.d.ts'), join(root, 'dist', out, 'presets-data.d.ts'));
