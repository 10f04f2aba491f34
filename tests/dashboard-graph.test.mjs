// The dashboard's graph layout and status colouring (crates/server/src/dashboard/graph.js), on
// a graph with every kind of container: pure functions, no browser needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layout, nodeStatuses, pathPattern, pathStatuses } from '../crates/server/src/dashboard/graph.js';

// draft → parallel(lint,test) → review (branch: ok → publish | fix → fix (loop: revise)) → notify
const graph = {
  id: 'publish',
  nodes: [
    { id: 'draft', path: 'draft', kind: 'step', parent: null },
    { id: 'parallel(lint,test)', path: null, kind: 'parallel', parent: null },
    { id: 'lint', path: 'lint', kind: 'step', parent: 'parallel(lint,test)' },
    { id: 'test', path: 'test', kind: 'step', parent: 'parallel(lint,test)' },
    { id: 'review', path: 'review', kind: 'branch', parent: null },
    { id: 'review/ok', path: 'review/ok', kind: 'step', parent: 'review' },
    { id: 'review/fix', path: 'review/fix', kind: 'loop', parent: 'review' },
    { id: 'review/fix[*]/revise', path: 'review/fix[*]/revise', kind: 'step', parent: 'review/fix' },
    { id: 'notify', path: 'notify', kind: 'step', parent: null },
  ],
  edges: [
    { from: 'draft', to: 'parallel(lint,test)', kind: 'next' },
    { from: 'parallel(lint,test)', to: 'lint', kind: 'child' },
    { from: 'parallel(lint,test)', to: 'test', kind: 'child' },
    { from: 'parallel(lint,test)', to: 'review', kind: 'next' },
    { from: 'review', to: 'review/ok', kind: 'arm', label: 'ok' },
    { from: 'review', to: 'review/fix', kind: 'arm', label: 'fix' },
    { from: 'review/fix', to: 'review/fix[*]/revise', kind: 'body' },
    { from: 'review', to: 'notify', kind: 'next' },
  ],
};

test('graph layout: top to bottom, containers frame their children, nothing overlaps', () => {
  const { pos, frames, width, height } = layout(graph);
  assert.equal(pos.size, graph.nodes.length);
  const W = 176;
  const H = 44;
  const box = (id) => ({ ...pos.get(id), w: W, h: H });
  // Sequence order goes down; the node after a container is below its whole frame.
  assert.ok(box('draft').y < box('parallel(lint,test)').y);
  assert.ok(frames.get('parallel(lint,test)').y + frames.get('parallel(lint,test)').h <= box('review').y);
  assert.ok(frames.get('review').y + frames.get('review').h <= box('notify').y);
  // Children sit side by side inside their container's frame, below its header.
  assert.equal(box('lint').y, box('test').y);
  assert.ok(box('lint').x + W <= box('test').x);
  for (const [child, parent] of [
    ['lint', 'parallel(lint,test)'],
    ['review/ok', 'review'],
    ['review/fix', 'review'],
    ['review/fix[*]/revise', 'review/fix'],
  ]) {
    const f = frames.get(parent);
    const b = box(child);
    assert.ok(b.x >= f.x && b.x + W <= f.x + f.w && b.y > f.y && b.y + H <= f.y + f.h, `${child} in ${parent}`);
  }
  // No two boxes overlap; everything fits the drawing.
  const ids = [...pos.keys()];
  for (const a of ids) {
    const A = box(a);
    assert.ok(A.x >= 0 && A.y >= 0 && A.x + W <= width + 0.5 && A.y + H <= height + 0.5, `${a} inside`);
    for (const b of ids) {
      if (a >= b) continue;
      const B = box(b);
      const apart = A.x + W <= B.x || B.x + W <= A.x || A.y + H <= B.y || B.y + H <= A.y;
      assert.ok(apart, `${a} overlaps ${b}`);
    }
  }
});

test('graph statuses: records, then newer events; templates and containers aggregate', () => {
  assert.ok(pathPattern('review/fix[*]/revise').test('review/fix[2]/revise'));
  assert.ok(!pathPattern('review/fix[*]/revise').test('review/fix[x]/revise'));
  assert.ok(!pathPattern('a.b').test('axb'));
  const steps = [
    { path: 'draft', status: 'succeeded', updated_at: 10 },
    { path: 'lint', status: 'succeeded', updated_at: 11 },
    { path: 'test', status: 'succeeded', updated_at: 12 },
    { path: 'review', status: 'succeeded', updated_at: 13 },
    { path: 'review/fix[0]/revise', status: 'succeeded', updated_at: 14 },
  ];
  const events = [
    { type: 'step-started', path: 'review/fix[1]/revise', at: 15 },
    { type: 'step-output', path: 'draft', at: 9 }, // older than its record: ignored
  ];
  const st = nodeStatuses(graph, pathStatuses(steps, events));
  assert.equal(st.get('draft'), 'succeeded');
  assert.equal(st.get('parallel(lint,test)'), 'succeeded'); // no record: all children succeeded
  assert.equal(st.get('review/fix[*]/revise'), 'running'); // one iteration still running
  assert.equal(st.get('review/fix'), 'running');
  assert.equal(st.get('review'), 'running');
  assert.equal(st.get('review/ok'), 'pending');
  assert.equal(st.get('notify'), 'pending');

  const failed = nodeStatuses(graph, pathStatuses(steps, [{ type: 'step-failed', path: 'review/fix[1]/revise', at: 16 }]));
  assert.equal(failed.get('review'), 'failed');
  const suspended = nodeStatuses(graph, pathStatuses([{ path: 'test', status: 'suspended', updated_at: 1 }], []));
  assert.equal(suspended.get('parallel(lint,test)'), 'suspended');
  assert.equal(suspended.get('lint'), 'pending');
});
