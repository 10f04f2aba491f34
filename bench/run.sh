#!/usr/bin/env bash
# Runs Miyabi's engine benchmark and the @mastra/core peer benchmark on this machine, one after
# the other, and prints every figure as a JSON line {"bench": name, "value": n, "unit": u} on
# stdout, followed by the ratio lines (Mastra's figure / Miyabi's: how many times faster or
# smaller Miyabi is). Notes and spreads go to stderr.
#
#   bash bench/run.sh                 # both sides (the peer needs node and npm; see bench/peer)
#   RUN_PEER=0 bash bench/run.sh      # Miyabi only (no ratios)
#   RUN_RUST=0 bash bench/run.sh      # Mastra only (no ratios)
#
# The Rust side honours MIYABI_BENCH_* (see core/benches/engine.rs), the peer PEER_* (see
# bench/peer/mastra.mjs). Figures are medians of several batches; on a shared 2-core machine
# they move by 10-50% from one run to the next: compare figures from one run of this script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$(mktemp -d "${TMPDIR:-/tmp}/miyabi-bench-run-XXXXXX")"
trap 'rm -rf "$out"' EXIT

echo "run: $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //') x $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >&2

if [ "${RUN_RUST:-1}" != 0 ]; then
  echo "run: cargo bench -p miyabi --bench engine" >&2
  (cd "$root" && cargo bench -q -p miyabi --bench engine) | tee "$out/miyabi.jsonl"
fi

if [ "${RUN_PEER:-1}" != 0 ]; then
  echo "run: bash bench/peer/setup.sh && node bench/peer/mastra.mjs" >&2
  (cd "$root" && bash bench/peer/setup.sh && node bench/peer/mastra.mjs) | tee "$out/mastra.jsonl"
fi

[ -s "$out/miyabi.jsonl" ] && [ -s "$out/mastra.jsonl" ] || exit 0

# Ratio = Mastra / Miyabi for each pair of figures that measure the same shape in the same unit.
node - "$out/miyabi.jsonl" "$out/mastra.jsonl" <<'EOF'
const fs = require('fs');
const read = (f) => {
  const m = new Map();
  for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    try {
      const j = JSON.parse(line);
      m.set(j.bench, j);
    } catch {}
  }
  return m;
};
const [ours, peer] = [read(process.argv[2]), read(process.argv[3])];
const pairs = [
  // ratio name,                              Miyabi figure,                                Mastra figure
  ['ratio.memory.3step',                      'engine.memory.3step',                        'mastra.memory.3step'],
  ['ratio.memory.3step.multi_thread',         'engine.memory.3step.multi_thread',           'mastra.memory.3step'],
  ['ratio.sqlite.3step',                      'engine.sqlite.3step',                        'mastra.libsql.3step'],
  ['ratio.sqlite.100step',                    'engine.sqlite.100step',                      'mastra.libsql.100step'],
  ['ratio.sqlite.100step.bytes.logical',      'engine.sqlite.100step.bytes.logical',        'mastra.libsql.100step.bytes.logical'],
  ['ratio.sqlite.100step.bytes.file',         'engine.sqlite.100step.bytes.file',           'mastra.libsql.100step.bytes.file'],
  ['ratio.sqlite.100step.bytes.io',           'engine.sqlite.100step.bytes.io',             'mastra.libsql.100step.bytes.io'],
  ['ratio.sqlite.10k_concurrent_sleep',       'engine.sqlite.10k_concurrent_sleep',         'mastra.libsql.10k_concurrent_sleep'],
  ['ratio.sqlite.10k_concurrent_sleep.rss',   'engine.sqlite.10k_concurrent_sleep.rss',     'mastra.libsql.10k_concurrent_sleep.rss'],
  ['ratio.memory.10k_concurrent_sleep',       'engine.memory.10k_concurrent_sleep',         'mastra.memory.10k_concurrent_sleep'],
  ['ratio.memory.10k_concurrent_sleep.rss',   'engine.memory.10k_concurrent_sleep.rss',     'mastra.memory.10k_concurrent_sleep.rss'],
];
for (const [name, a, b] of pairs) {
  const x = ours.get(a), y = peer.get(b);
  if (!x || !y) {
    process.stderr.write(`run: no ${name}: ${!x ? a : b} was not measured\n`);
    continue;
  }
  if (x.unit !== y.unit || !(x.value > 0) || !(y.value > 0)) {
    process.stderr.write(`run: no ${name}: ${a} = ${x.value} ${x.unit}, ${b} = ${y.value} ${y.unit}\n`);
    continue;
  }
  const r = y.value / x.value;
  process.stdout.write(JSON.stringify({ bench: name, value: Math.round(r * 10) / 10, unit: 'x' }) + '\n');
}
EOF
