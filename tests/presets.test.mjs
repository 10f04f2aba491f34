// The 21 Miyabi agents from TypeScript: the presets' data (the same as the Rust crate's
// agents/presets.json), and a preset as an Agent whose answer is validated against its output
// schema — against a loopback OpenAI-compatible server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { MiyabiError, model, preset, presets } from '@miyabi/core';
import { completion, openaiServer } from './helpers.mjs';

const chat = (url) => model('openai/gpt-4.1-mini', { baseURL: url, apiKey: 'k', protocol: 'openai-chat', maxRetries: 0 });

test('presets(): all 21, coding and business, as the Rust crate writes them', () => {
  const list = presets();
  assert.equal(list.length, 21);
  assert.equal(list.filter((p) => p.group === 'coding').length, 7);
  assert.equal(list.filter((p) => p.group === 'business').length, 14);
  const fromRust = JSON.parse(readFileSync(new URL('../agents/presets.json', import.meta.url), 'utf8'));
  assert.deepEqual(list, fromRust);
});

test("a preset answers with its typed output; an answer outside the schema is refused", async (t) => {
  const good = { kind: 'bug', priority: 'P1', severity: 'high', labels: ['type:bug', 'priority:P1-high'], summary: 'Login fails when the password has a space' };
  let reply = good;
  const s = await openaiServer(t, () => ({ json: completion({ text: JSON.stringify(reply) }) }));
  const issue = preset('issue', { model: chat(s.url) });
  assert.equal(issue.name, 'IssueAgent');
  const r = await issue.generate('Login fails with a 500 when the password has a space');
  assert.deepEqual(r.object, good);
  const sent = s.requests[0].body;
  assert.match(sent.messages[0].content, /IssueAgent/);
  assert.equal(sent.response_format.type, 'json_schema', 'the schema goes to the provider');

  // A label outside the label set: the engine asks once more, then gives up with the reason.
  reply = { ...good, labels: ['urgent!!'] };
  await assert.rejects(issue.generate('again'), /labels|urgent/);
  assert.throws(() => preset('nope', { model: chat(s.url) }), (e) => e instanceof MiyabiError && /no preset named `nope`/.test(e.message));
});
