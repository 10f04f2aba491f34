// The workflow graph of a run as SVG, laid out top to bottom.
//
// The graph document (GET /api/workflows/{id} -> graph) is a tree: every node but the first
// has exactly one incoming edge, either `next` (sequence order) or `child` / `arm` / `body`
// (a container to the first node of what it holds). A container is drawn as a frame around
// its children's chains, side by side; a `next` edge leaves from the bottom of the frame.
// Every text goes in with textContent: nothing from the server is parsed as markup.

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 176;
const NODE_H = 44;
const GAP_X = 24;
const GAP_Y = 34;
const PAD = 12;

export const STATUSES = ['pending', 'running', 'suspended', 'succeeded', 'failed'];

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A RegExp matching the concrete record paths of a node's path template (`fix[*]/revise`). */
export function pathPattern(template) {
  const esc = template.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\[\\\*\\\]/g, '\\[\\d+\\]');
  return new RegExp(`^${esc}$`);
}

/**
 * The status of every concrete step path: step records first, then the run's events in order
 * (an event newer than the record's last update wins; a started step with no record yet is
 * running).
 */
export function pathStatuses(steps, events) {
  const out = new Map();
  for (const s of steps || []) out.set(s.path, { status: s.status, at: s.updated_at || 0 });
  for (const ev of events || []) {
    if (!ev || typeof ev.path !== 'string') continue;
    const st = {
      'step-started': 'running',
      'step-retrying': 'running',
      'step-output': 'succeeded',
      'step-failed': 'failed',
      'step-suspended': 'suspended',
    }[ev.type];
    if (!st) continue;
    const cur = out.get(ev.path);
    if (!cur || (ev.at || 0) >= cur.at) out.set(ev.path, { status: st, at: ev.at || 0 });
  }
  return out;
}

const RANK = { failed: 4, suspended: 3, running: 2 };

function worst(list) {
  let best = null;
  for (const s of list) if (RANK[s] && (!best || RANK[s] > RANK[best])) best = s;
  return best;
}

/** The status of each graph node (by node id), from concrete path statuses. */
export function nodeStatuses(graph, statuses) {
  const nodes = graph.nodes || [];
  const kids = new Map();
  for (const n of nodes) {
    if (n.parent != null) {
      if (!kids.has(n.parent)) kids.set(n.parent, []);
      kids.get(n.parent).push(n.id);
    }
  }
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const memo = new Map();
  const own = (n) => {
    if (n.path == null) return [];
    const re = pathPattern(n.path);
    const found = [];
    for (const [p, v] of statuses) if (re.test(p)) found.push(v.status);
    return found;
  };
  const statusOf = (id) => {
    if (memo.has(id)) return memo.get(id);
    memo.set(id, 'pending');
    const n = byId.get(id);
    const mine = own(n);
    const children = (kids.get(id) || []).map(statusOf);
    let st;
    const bad = worst([...mine, ...children]);
    if (bad) st = bad;
    else if (mine.length > 0) st = mine.every((s) => s === 'succeeded') ? 'succeeded' : 'pending';
    else if (children.length > 0 && children.every((s) => s === 'succeeded')) st = 'succeeded';
    else if (children.some((s) => s !== 'pending')) st = 'running';
    else st = 'pending';
    memo.set(id, st);
    return st;
  };
  const out = new Map();
  for (const n of nodes) out.set(n.id, statusOf(n.id));
  return out;
}

/** Sizes and positions of every node and container frame. */
export function layout(graph) {
  const nodes = graph.nodes || [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const next = new Map();
  const children = new Map();
  const incoming = new Set();
  for (const e of graph.edges || []) {
    if (!byId.has(e.from) || !byId.has(e.to) || incoming.has(e.to)) continue;
    incoming.add(e.to);
    if (e.kind === 'next') next.set(e.from, e.to);
    else {
      if (!children.has(e.from)) children.set(e.from, []);
      children.get(e.from).push(e.to);
    }
  }
  const roots = nodes.filter((n) => !incoming.has(n.id)).map((n) => n.id);

  const blockSize = new Map();
  const chainSize = new Map();
  const chain = (id) => {
    const out = [];
    const seen = new Set();
    for (let c = id; c != null && !seen.has(c); c = next.get(c)) {
      seen.add(c);
      out.push(c);
    }
    return out;
  };
  const sizeChain = (id) => {
    if (chainSize.has(id)) return chainSize.get(id);
    chainSize.set(id, { w: NODE_W, h: NODE_H });
    let w = 0;
    let h = 0;
    const ids = chain(id);
    ids.forEach((b, i) => {
      const s = sizeBlock(b);
      w = Math.max(w, s.w);
      h += s.h + (i > 0 ? GAP_Y : 0);
    });
    const size = { w, h };
    chainSize.set(id, size);
    return size;
  };
  const sizeBlock = (id) => {
    if (blockSize.has(id)) return blockSize.get(id);
    blockSize.set(id, { w: NODE_W, h: NODE_H });
    const ks = children.get(id) || [];
    let size;
    if (ks.length === 0) size = { w: NODE_W, h: NODE_H, inner: null };
    else {
      let iw = 0;
      let ih = 0;
      ks.forEach((k, i) => {
        const s = sizeChain(k);
        iw += s.w + (i > 0 ? GAP_X : 0);
        ih = Math.max(ih, s.h);
      });
      size = {
        w: Math.max(NODE_W, iw) + 2 * PAD,
        h: NODE_H + GAP_Y + ih + PAD,
        inner: { w: iw, h: ih },
      };
    }
    blockSize.set(id, size);
    return size;
  };

  const pos = new Map(); // node id -> {x, y} of its box
  const frames = new Map(); // container id -> {x, y, w, h}
  const placeChain = (id, x, y, w) => {
    let yy = y;
    for (const b of chain(id)) {
      const s = sizeBlock(b);
      placeBlock(b, x + (w - s.w) / 2, yy);
      yy += s.h + GAP_Y;
    }
  };
  const placeBlock = (id, x, y) => {
    const s = sizeBlock(id);
    pos.set(id, { x: x + (s.w - NODE_W) / 2, y });
    if (!s.inner) return;
    frames.set(id, { x, y, w: s.w, h: s.h });
    let xx = x + (s.w - s.inner.w) / 2;
    for (const k of children.get(id) || []) {
      const cs = sizeChain(k);
      placeChain(k, xx, y + NODE_H + GAP_Y, cs.w);
      xx += cs.w + GAP_X;
    }
  };
  let x = 0;
  let height = 0;
  for (const r of roots) {
    const s = sizeChain(r);
    placeChain(r, x, 0, s.w);
    x += s.w + GAP_X;
    height = Math.max(height, s.h);
  }
  return { pos, frames, width: Math.max(x - GAP_X, NODE_W), height, byId };
}

function label(n) {
  if (n.kind === 'parallel') return 'parallel';
  const p = n.path ?? n.id;
  const segs = String(p).split('/');
  return segs[segs.length - 1];
}

function clip(s, max) {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * The graph as an <svg> element. `statuses` maps node id -> status; `onSelect(node)` is called
 * when a node is clicked or activated with the keyboard.
 */
export function renderGraph(graph, statuses, onSelect) {
  const { pos, frames, width, height, byId } = layout(graph);
  const M = 8;
  const svg = el('svg', {
    class: 'graph',
    viewBox: `${-M} ${-M} ${width + 2 * M} ${height + 2 * M}`,
    width: width + 2 * M,
    height: height + 2 * M,
    role: 'group',
    'aria-label': `Workflow graph of ${graph.id ?? 'the workflow'}`,
  });
  const defs = el('defs');
  const marker = el('marker', {
    id: 'arrow',
    viewBox: '0 0 10 10',
    refX: 9,
    refY: 5,
    markerWidth: 7,
    markerHeight: 7,
    orient: 'auto-start-reverse',
  });
  marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }));
  defs.append(marker);
  svg.append(defs);

  for (const [id, f] of frames) {
    const st = statuses.get(id) || 'pending';
    svg.append(el('rect', { x: f.x, y: f.y, width: f.w, height: f.h, rx: 10, class: `frame st-${st}` }));
  }
  const edges = el('g', { class: 'edges' });
  for (const e of graph.edges || []) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    let x1 = a.x + NODE_W / 2;
    let y1 = a.y + NODE_H;
    if (e.kind === 'next' && frames.has(e.from)) {
      const f = frames.get(e.from);
      x1 = f.x + f.w / 2;
      y1 = f.y + f.h;
    }
    const x2 = b.x + NODE_W / 2;
    const y2 = b.y - 1;
    const dy = Math.max(12, (y2 - y1) / 2);
    edges.append(
      el('path', {
        d: `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`,
        class: `edge edge-${e.kind}`,
        'marker-end': 'url(#arrow)',
      }),
    );
    if (e.label) {
      edges.append(el('text', { x: x2 + 6, y: y2 - 8, class: 'edge-label' }, clip(String(e.label), 20)));
    }
  }
  svg.append(edges);

  for (const [id, p] of pos) {
    const n = byId.get(id);
    const st = statuses.get(id) || 'pending';
    const g = el('g', {
      class: `node st-${st}`,
      transform: `translate(${p.x},${p.y})`,
      tabindex: 0,
      role: 'button',
      'data-id': id,
      'data-path': n.path ?? '',
      'data-status': st,
      'aria-label': `${n.path ?? id} (${n.kind}): ${st}`,
    });
    g.append(el('title', {}, `${n.path ?? id} — ${n.kind} — ${st}`));
    g.append(el('rect', { width: NODE_W, height: NODE_H, rx: 8, class: 'box' }));
    g.append(el('circle', { cx: 14, cy: NODE_H / 2, r: 5, class: 'dot' }));
    g.append(el('text', { x: 26, y: 18, class: 'name' }, clip(label(n), 20)));
    g.append(el('text', { x: 26, y: 34, class: 'meta' }, `${n.kind} · ${st}`));
    if (onSelect) {
      g.addEventListener('click', () => onSelect(n));
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          onSelect(n);
        }
      });
    }
    svg.append(g);
  }
  return svg;
}

/**
 * Step durations from a run's events, one row per step path: from its first `step-started`
 * to its last `step-output` / `step-failed` / `step-suspended` (still open while it runs),
 * with its attempts and the error of each failed attempt.
 */
export function stepSpans(events) {
  const rows = new Map();
  for (const ev of events) {
    if (!ev || !ev.path) continue;
    let r = rows.get(ev.path);
    if (ev.type === 'step-started') {
      if (!r) {
        r = { path: ev.path, start: ev.at, end: null, status: 'running', attempts: 0, errors: [] };
        rows.set(ev.path, r);
      }
      r.attempts = Math.max(r.attempts, ev.attempt || 1);
      r.status = 'running';
      r.end = null;
      continue;
    }
    if (!r) continue;
    if (ev.type === 'step-output') {
      r.end = ev.at;
      r.status = 'succeeded';
    } else if (ev.type === 'step-suspended') {
      r.end = ev.at;
      r.status = 'suspended';
    } else if (ev.type === 'step-failed') {
      r.end = ev.at;
      r.status = 'failed';
      r.errors.push({ attempt: r.attempts, error: ev.error });
    } else if (ev.type === 'step-retrying') {
      r.errors.push({ attempt: Math.max(1, (ev.attempt || 2) - 1), error: ev.error });
    }
  }
  return [...rows.values()];
}

/** The spans as a Gantt chart (SVG): a bar per step on one time axis; `now` ends open bars. */
export function renderGantt(spans, now) {
  const LABEL = 200;
  const W = 760;
  const ROW = 20;
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(t0 + 1, ...spans.map((s) => s.end ?? now));
  const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * (W - LABEL - 8);
  const svg = el('svg', {
    class: 'gantt',
    viewBox: `0 0 ${W} ${spans.length * ROW + 4}`,
    width: W,
    height: spans.length * ROW + 4,
    role: 'img',
    'aria-label': `Step durations, ${spans.length} steps`,
  });
  spans.forEach((s, i) => {
    const y = i * ROW + 2;
    const g = el('g', { class: `gantt-row st-${s.status}`, 'data-path': s.path });
    g.append(el('text', { x: 0, y: y + 14, class: 'gantt-label' }, s.path));
    const x0 = x(s.start);
    const w = Math.max(2, x(s.end ?? now) - x0);
    const bar = el('rect', { x: x0, y: y + 3, width: w, height: ROW - 6, rx: 3, class: 'bar' });
    const ms = (s.end ?? now) - s.start;
    const tip = el('title', {}, `${s.path}: ${s.status}, ${ms} ms, attempt ${s.attempts}${s.errors.length ? `; ${s.errors.length} failed attempt(s)` : ''}`);
    bar.append(tip);
    g.append(bar);
    svg.append(g);
  });
  return svg;
}
