// runEventsResponse: a workflow run's events as a web Response (SSE and NDJSON), read back
// through the Response body the way a route handler's client reads it. Tests that read live
// events before letting the run go on have a timeout: it only turns a stream that never
// delivers (a regression) into a failure instead of a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Engine, workflow, runEventsResponse } from '@miyabi/core';
import { tempDir } from './helpers.mjs';

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Parses a text/event-stream body into events `{ id, event, data }` and counts comments. */
function parseSse(text) {
  const events = [];
  let comments = 0;
  for (const block of text.split('\n\n')) {
    if (block === '') continue;
    const ev = {};
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        comments++;
        continue;
      }
      const i = line.indexOf(':');
      const key = line.slice(0, i);
      const value = line.slice(i + 1).replace(/^ /, '');
      ev[key] = ev[key] === undefined ? value : `${ev[key]}\n${value}`;
    }
    if (Object.keys(ev).length > 0) events.push({ ...ev, data: JSON.parse(ev.data) });
  }
  return { events, comments };
}

function parseNdjson(text) {
  assert.ok(text.endsWith('\n'), 'every line ends with a newline');
  return text
    .slice(0, -1)
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Reads a body chunk by chunk until `until(textSoFar)` holds; returns the reader and the text. */
async function readUntil(res, until) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!until(text)) {
    const r = await reader.read();
    if (r.done) assert.fail(`the stream ended before the expected content; got:\n${text}`);
    text += decoder.decode(r.value, { stream: true });
  }
  return { reader, text, decoder };
}

async function readRest({ reader, text, decoder }) {
  for (;;) {
    const r = await reader.read();
    if (r.done) return text + decoder.decode();
    text += decoder.decode(r.value, { stream: true });
  }
}

async function stored(engine, id, from = 1) {
  const out = [];
  for await (const e of engine.events(id, from)) out.push(e);
  return out;
}

/** plan (sync) → wait (until `gate` resolves; emits a custom event) → done. */
function gated(id, gate) {
  return workflow(id)
    .step('plan', ({ input }) => ({ n: input.n + 1 }))
    .then('wait', async ({ input, emit }) => {
      emit('progress', { half: true });
      await gate.promise;
      return { n: input.n * 10 };
    })
    .then('done', ({ input }) => ({ total: input.n }))
    .commit();
}

test('SSE: id is the seq, event the type, data the event; live events arrive before the run ends', { timeout: 60_000 }, async () => {
  const engine = await Engine.open();
  const gate = deferred();
  const run = await engine.spawn(gated('sse-live', gate), { n: 1 });
  const res = await runEventsResponse(engine, run.id);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('cache-control'), 'no-cache, no-transform');

  // The custom event of `wait` is committed while the run waits on the gate: it is streamed
  // although the run is not over.
  const partial = await readUntil(res, (t) => t.includes('event: custom'));
  assert.equal((await engine.get(run.id)).status, 'running');
  gate.resolve();
  const text = await readRest(partial);
  const { events } = parseSse(text);
  const log = await stored(engine, run.id);
  assert.deepEqual(
    events.map((e) => [Number(e.id), e.event]),
    log.map((e) => [e.seq, e.type]),
  );
  assert.deepEqual(
    events.map((e) => e.data),
    log,
  );
  assert.equal(events.at(-1).event, 'run-finished');
  assert.deepEqual(events.at(-1).data.output, { total: 20 });
  assert.deepEqual(
    events.map((e) => Number(e.id)),
    log.map((_, i) => i + 1),
    'ids are consecutive from 1',
  );
});

test('NDJSON: one event per line, the whole log of a finished run', async () => {
  const engine = await Engine.open();
  const gate = deferred();
  gate.resolve();
  const done = await engine.start(gated('ndjson', gate), { n: 4 });
  const res = await runEventsResponse(engine, done.id, { format: 'ndjson' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
  const lines = parseNdjson(await res.text());
  assert.deepEqual(lines, await stored(engine, done.id));
  assert.equal(lines[0].type, 'run-started');
  assert.equal(lines.at(-1).type, 'run-finished');
  assert.deepEqual(lines.at(-1).output, { total: 50 });
});

/** draft → review (suspends until resumed) → publish. */
const reviewed = workflow('reviewed')
  .step('draft', ({ input }) => ({ text: `draft of ${input.topic}` }))
  .then('review', ({ input, resumeData, suspend }) => (resumeData === undefined ? suspend({ question: `ok: ${input.text}?` }) : { ...input, ok: resumeData.ok }))
  .then('publish', ({ input }) => ({ published: input.ok, text: input.text }))
  .commit();

test('a suspending run: the stream ends at run-suspended; Last-Event-ID resumes after it once the run goes on', async (t) => {
  const engine = await Engine.open({ store: `sqlite:${join(tempDir(t), 'runs.db')}` });
  const run = await engine.spawn(reviewed, { topic: 'events' });
  const first = parseSse(await (await runEventsResponse(engine, run.id)).text()).events;
  assert.equal(first.at(-1).event, 'run-suspended');
  assert.deepEqual(first.at(-1).data.paths, ['review']);
  assert.ok(first.some((e) => e.event === 'step-suspended' && e.data.payload.question === 'ok: draft of events?'));
  assert.equal((await engine.get(run.id)).status, 'suspended');
  const last = Number(first.at(-1).id);

  // While it stays suspended, a reconnect after the last event gets an empty, finished stream.
  const idle = new Request('http://127.0.0.1/events', { headers: { 'Last-Event-ID': String(last) } });
  assert.equal(await (await runEventsResponse(engine, run.id, { request: idle })).text(), '');

  const finished = await engine.resume(run.id, 'review', { ok: true });
  assert.equal(finished.status, 'succeeded');
  // A reconnecting EventSource sends the id of the last event it got.
  const req = new Request('http://127.0.0.1/events', { headers: { 'Last-Event-ID': String(last) } });
  const rest = parseSse(await (await runEventsResponse(engine, run.id, { request: req, fromSeq: 1 })).text()).events;
  assert.equal(Number(rest[0].id), last + 1, 'Last-Event-ID wins over fromSeq');
  assert.equal(rest[0].event, 'run-resumed');
  assert.equal(rest.at(-1).event, 'run-finished');
  assert.deepEqual(rest.at(-1).data.output, { published: true, text: 'draft of events' });
  assert.deepEqual(
    [...first, ...rest].map((e) => e.data),
    await stored(engine, run.id),
    'the two streams together are the whole log, each event once',
  );

  // NDJSON with fromSeq; a Last-Event-ID that is not a number is ignored.
  const junk = new Request('http://127.0.0.1/events', { headers: { 'Last-Event-ID': 'abc' } });
  const lines = parseNdjson(await (await runEventsResponse(engine, run.id, { format: 'ndjson', fromSeq: last + 1, request: junk })).text());
  assert.deepEqual(lines, await stored(engine, run.id, last + 1));
});

test('an unknown run is a 404 JSON error; an unknown format is a TypeError', async () => {
  const engine = await Engine.open();
  const res = await runEventsResponse(engine, 'no-such-run');
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { error: { code: 'NOT_FOUND', message: 'run `no-such-run` not found' } });
  const done = await engine.start(reviewed, { topic: 'x' });
  await assert.rejects(runEventsResponse(engine, done.id, { format: 'xml' }), TypeError);
});

test('the client going away ends the stream while the run goes on', { timeout: 60_000 }, async () => {
  const engine = await Engine.open();
  const gate = deferred();
  const run = await engine.spawn(gated('disconnect', gate), { n: 2 });

  // Through the request's signal (what a server does when the connection closes), while the
  // stream waits for the run's next event: a keep-alive comment after the last event shows
  // that it waits.
  const client = new AbortController();
  const req = new Request('http://127.0.0.1/events', { signal: client.signal });
  const a = await readUntil(
    await runEventsResponse(engine, run.id, { request: req, keepAliveMs: 20 }),
    (t) => t.includes('event: custom') && t.lastIndexOf(': keep-alive') > t.indexOf('event: custom'),
  );
  client.abort();
  const tail = await readRest(a);
  assert.ok(!tail.includes('run-finished'));
  assert.equal((await engine.get(run.id)).status, 'running', 'the stream ended before the run');

  // Through cancelling the body (what a fetch client does when it stops reading).
  const b = await readUntil(await runEventsResponse(engine, run.id, { format: 'ndjson' }), (t) => t.includes('"custom"'));
  await b.reader.cancel();

  gate.resolve();
  const done = await run.result;
  assert.equal(done.status, 'succeeded');
  assert.deepEqual(done.output, { total: 30 });
});

test('SSE keep-alive comments while the run waits', { timeout: 60_000 }, async () => {
  const engine = await Engine.open();
  const gate = deferred();
  const run = await engine.spawn(gated('keep-alive', gate), { n: 0 });
  const partial = await readUntil(await runEventsResponse(engine, run.id, { keepAliveMs: 20 }), (t) => t.includes(': keep-alive\n\n'));
  gate.resolve();
  const { events, comments } = parseSse(await readRest(partial));
  assert.ok(comments >= 1);
  assert.deepEqual(
    events.map((e) => e.data),
    await stored(engine, run.id),
  );
});

test('a run driven by another engine on the same database is followed through the store', { timeout: 60_000 }, async (t) => {
  const db = join(tempDir(t), 'runs.db');
  const driver = await Engine.open({ store: `sqlite:${db}` });
  const reader = await Engine.open({ store: `sqlite:${db}` });
  const gate = deferred();
  const run = await driver.spawn(gated('elsewhere', gate), { n: 3 });
  const res = await runEventsResponse(reader, run.id, { format: 'ndjson', pollIntervalMs: 10 });
  const partial = await readUntil(res, (t) => t.includes('"custom"'));
  gate.resolve();
  const lines = parseNdjson(await readRest(partial));
  assert.equal(lines.at(-1).type, 'run-finished');
  assert.deepEqual(lines.at(-1).output, { total: 40 });
  assert.deepEqual(lines, await stored(driver, run.id));
});
