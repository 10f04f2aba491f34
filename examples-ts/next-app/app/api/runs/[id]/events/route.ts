// GET /api/runs/<id>/events — a run's events as server-sent events, from the start or after the
// `Last-Event-ID` a reconnecting EventSource sends; `?format=ndjson` for one JSON event per line.
import { runEventsResponse } from '@miyabi/core';
import { engine } from '../../../../../lib/miyabi';

export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

export async function GET(req: Request, ctx: { params: Promise<{ id: string }> }): Promise<Response> {
  const { id } = await ctx.params;
  const format = new URL(req.url).searchParams.get('format') === 'ndjson' ? 'ndjson' : 'sse';
  return runEventsResponse(engine(), id, { request: req, format });
}
