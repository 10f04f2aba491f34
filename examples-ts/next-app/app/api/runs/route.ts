// POST /api/runs — starts a `report` run and streams its events (server-sent events) until it
// finishes or suspends.
//
//   curl -N -X POST localhost:3000/api/runs -H 'content-type: application/json' -d '{"topic":"tides"}'
//
// Each event is `id: <seq>`, `event: <type>`, `data: <the event as JSON>`; a client that lost
// the connection picks up at GET /api/runs/<id>/events with `Last-Event-ID`. The run itself
// does not depend on the connection: it goes on (and is stored) if the client leaves.
import { ValidationError, runEventsResponse } from '@miyabi/core';
import { engine, report } from '../../../lib/miyabi';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export async function POST(req: Request): Promise<Response> {
  try {
    const run = await engine().spawn(report, await req.json());
    return runEventsResponse(engine(), run.id, { request: req, headers: { 'x-run-id': run.id } });
  } catch (e) {
    if (e instanceof ValidationError || e instanceof SyntaxError) return Response.json({ error: e.message }, { status: 400 });
    throw e;
  }
}
