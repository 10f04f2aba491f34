// The package works from CommonJS (require) as well as ESM.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const core = require('@miyabi/core');

test('require("@miyabi/core") gives the same API and runs a workflow', async () => {
  assert.equal(typeof core.workflow, 'function');
  assert.equal(typeof core.Engine.open, 'function');
  const wf = core.workflow('cjs').step('a', ({ input }) => input + 1).commit();
  const engine = core.Engine.openSync();
  const run = await engine.start(wf, 41);
  assert.equal(run.output, 42);
  assert.ok(new core.NotFoundError('x') instanceof core.MiyabiError);
});
