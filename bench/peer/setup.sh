#!/usr/bin/env bash
# Installs the peer benchmark's npm packages (@mastra/core, @mastra/libsql, zod) into a scratch
# folder outside the repo, default /tmp/miyabi-peer (override with MASTRA_SCRATCH).
# Idempotent: skips the install when the scratch folder already holds exactly the pinned versions.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="${MASTRA_SCRATCH:-/tmp/miyabi-peer}"
mkdir -p "$scratch"

installed_ok() {
  [ -f "$scratch/package.json" ] && cmp -s "$here/package.json" "$scratch/package.json" || return 1
  node -e '
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1];
    const want = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).dependencies;
    for (const [name, version] of Object.entries(want)) {
      const p = path.join(dir, "node_modules", name, "package.json");
      if (!fs.existsSync(p) || JSON.parse(fs.readFileSync(p, "utf8")).version !== version) process.exit(1);
    }' "$scratch"
}

if installed_ok; then
  echo "peer: packages already installed in $scratch" >&2
  exit 0
fi

cp "$here/package.json" "$scratch/package.json"
# @mastra/core 1.71 declares engines node >=22.13; npm only warns about that (no engine-strict),
# and the benchmark records the Node version it ran on.
(cd "$scratch" && npm install --no-audit --no-fund --loglevel=error --prefix "$scratch")
installed_ok || { echo "peer: install in $scratch did not yield the pinned versions" >&2; exit 1; }
echo "peer: installed into $scratch" >&2
