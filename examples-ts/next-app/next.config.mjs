// The configuration a Next.js app needs to use @miyabi/core.
//
// `serverExternalPackages`: @miyabi/core loads a native addon (a `.node` file). Next must leave
// the package to Node's own `require` at run time instead of bundling it; without this line
// `next build` fails with "node addon is not placeable in ESM chunks".

/** @type {import('next').NextConfig} */
const config = {
  serverExternalPackages: ['@miyabi/core'],
};

export default config;
