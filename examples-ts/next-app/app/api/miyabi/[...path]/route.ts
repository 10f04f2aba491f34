// /api/miyabi/* — the engine's HTTP API for @miyabi/react's hooks (useRun, useWorkflow,
// useApprovals), forwarded to the API server this process runs on loopback (lib/miyabi.ts).
// This is the place for your own authentication: check the user's session here, and forward only
// what they may do.
import { api } from '../../../../lib/miyabi';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

async function forward(req: Request, { params }: { params: Promise<{ path: string[] }> }): Promise<Response> {
  const { path } = await params;
  const { server, token } = await api();
  const url = new URL(req.url);
  const target = `${server.url}/api/${path.map(encodeURIComponent).join('/')}${url.search}`;
  const headers = new Headers({ authorization: `Bearer ${token}` });
  for (const h of ['content-type', 'accept', 'last-event-id']) {
    const v = req.headers.get(h);
    if (v !== null) headers.set(h, v);
  }
  const res = await fetch(target, {
    method: req.method,
    headers,
    body: req.method === 'GET' ? undefined : await req.text(),
    signal: req.signal,
  });
  // Streams (the run's events) pass through as they come.
  const out = new Headers();
  for (const h of ['content-type', 'cache-control']) {
    const v = res.headers.get(h);
    if (v !== null) out.set(h, v);
  }
  return new Response(res.body, { status: res.status, headers: out });
}

export const GET = forward;
export const POST = forward;
