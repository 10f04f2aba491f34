// Test-only wrapper of the Next.js example (examples-ts/next-app): what this repository's layout
// needs and a user's app does not, kept out of the example.
//
// The example is copied into a fresh directory under target/ (inside the repository, so that
// `next`, `react` and `zod` resolve from the repository's node_modules), the built package is
// installed into the copy's node_modules as `npm install @miyabi/core` would put a published
// version there, and the example's next.config.mjs is wrapped with the repository root as
// Turbopack's root and the file-tracing root (the dependencies live above the app).
import { cpSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const example = join(root, 'examples-ts', 'next-app');
export const nextBin = join(root, 'node_modules', 'next', 'dist', 'bin', 'next');

/** Copies the example to a temporary directory (removed when the test ends); returns its path. */
export function prepareNextApp(t) {
  const parent = join(root, 'target');
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'next-app-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(example, dir, {
    recursive: true,
    filter: (src) => !/[\\/](node_modules|\.next)([\\/]|$)|next-env\.d\.ts$/.test(src.slice(example.length)),
  });

  // @miyabi/core as installed from a package: its files, plus the platform binary built next
  // to them (linked: a debug build is large).
  const core = join(dir, 'node_modules', '@miyabi', 'core');
  mkdirSync(core, { recursive: true });
  for (const f of ['package.json', 'native.cjs', 'native.d.cts', 'dist']) cpSync(join(root, f), join(core, f), { recursive: true });
  const binaries = readdirSync(root).filter((f) => f.startsWith('miyabi.') && f.endsWith('.node'));
  if (binaries.length === 0) throw new Error('no native addon next to package.json: run `npm run build` (or build:debug) first');
  for (const b of binaries) symlinkSync(join(root, b), join(core, b));

  // @miyabi/react as installed from a package (built by `npm run build:ts`).
  const react = join(dir, 'node_modules', '@miyabi', 'react');
  mkdirSync(react, { recursive: true });
  for (const f of ['package.json', 'dist']) cpSync(join(root, 'packages', 'react', f), join(react, f), { recursive: true });

  renameSync(join(dir, 'next.config.mjs'), join(dir, 'next.config.example.mjs'));
  writeFileSync(
    join(dir, 'next.config.mjs'),
    [
      "import example from './next.config.example.mjs';",
      `const root = ${JSON.stringify(root)};`,
      'export default { ...example, turbopack: { ...example.turbopack, root }, outputFileTracingRoot: root };',
      '',
    ].join('\n'),
  );
  return dir;
}
