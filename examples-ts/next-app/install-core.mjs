// Installs this repository's built @miyabi/core into the example's node_modules, as
// `npm install @miyabi/core` would put a published version there: a copy of the package's files
// (package.json, dist/, native.cjs) plus a link to the platform binary built next to them.
// Next.js leaves packages under node_modules to Node (`serverExternalPackages`), which is what a
// native addon needs; a symlink to the repository would be bundled as project source instead.
//
//   npm run build && node examples-ts/next-app/install-core.mjs
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const target = join(here, 'node_modules', '@miyabi', 'core');
rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const f of ['package.json', 'native.cjs', 'native.d.cts', 'dist']) {
  cpSync(join(root, f), join(target, f), { recursive: true });
}
const binaries = readdirSync(root).filter((f) => f.startsWith('miyabi.') && f.endsWith('.node'));
if (binaries.length === 0) throw new Error('no native addon next to package.json: run `npm run build` (or build:debug) first');
for (const b of binaries) symlinkSync(join(root, b), join(target, b));
console.log(`installed @miyabi/core into ${target} (binary: ${binaries.join(', ')})`);
