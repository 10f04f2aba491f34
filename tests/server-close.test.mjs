// `engine.serve()`'s server closes once, whoever calls close and however often: concurrent and
// repeated calls resolve, and the port stops answering.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '@miyabi/core';

test('server.close() stops the server; concurrent and repeated closes resolve', async () => {
  const engine = await Engine.open();
  const server = await engine.serve({ port: 0, tokens: [{ token: 'tok', id: 'ops' }] });
  try {
    const res = await fetch(`${server.url}/api/runs`, { headers: { authorization: 'Bearer tok' } });
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();

    await Promise.all([server.close(), server.close(), server.close()]);
    await server.close();
    await assert.rejects(
      () => fetch(`${server.url}/api/runs`, { headers: { authorization: 'Bearer tok' } }),
      (e) => e instanceof TypeError,
    );
  } finally {
    await server.close();
    engine.close();
  }
});
