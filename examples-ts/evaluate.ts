// The README's evaluation example (keep in sync: tests/eval.test.mjs checks README.md and docs/evals.md hold it).
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { evaluate, metrics } from '@miyabi/core';

const results = await evaluate({
  name: 'deploys',
  data: [
    { id: '1', input: 'ship the release', expected: 'deploy' },
    { id: '2', input: 'undo the release', expected: 'rollback' },
  ],
  input: z.string(), // every case's input is checked; the target's parameter is typed from it
  target: async (input) => (input.includes('ship') ? 'deploy' : 'rollback'),
  metrics: {
    exact: metrics.exact({ trim: true }),
    short: { score: ({ output }) => String(output).length < 20, weight: 0.5 },
  },
  gates: { exact: { passRate: 0.9 } },
});
for (const m of results.metrics) console.log(m.name, 'mean', m.mean, 'pass rate', m.pass_rate);
console.log('passed:', results.passed);
writeFileSync('eval.json', JSON.stringify(results)); // then: miyabi eval compare before.json eval.json
