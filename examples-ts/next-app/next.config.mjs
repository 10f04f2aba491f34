// The Next.js example's configuration.
//
// - `serverExternalPackages`: @miyabi/core loads a native addon (a .node file); Next must leave
//   it to Node's `require`/`import` at run time instead of bundling it.
// - `typescript.ignoreBuildErrors`: Next's own type check calls the TypeScript 5 JS API; this
//   repository uses TypeScript 7 (a native compiler without that API), so the app is
//   type-checked with `tsc -p examples-ts/next-app` by the test instead.
// - `turbopack.root` / `outputFileTracingRoot`: the app uses the repository's node_modules.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** @type {import('next').NextConfig} */
const config = {
  serverExternalPackages: ['@miyabi/core'],
  typescript: { ignoreBuildErrors: true },
  turbopack: { root },
  outputFileTracingRoot: root,
};

export default config;
