// The Miyabi dashboard: runs, run details with the workflow graph, the approval inbox and
// gates, the audit trail, and eval runs (trend, A/B). Plain JavaScript, no framework, no build step.
//
// Safety: every piece of data goes into the page with textContent or setAttribute (no HTML is
// ever parsed from strings), external links must be http(s), and the page runs under a strict CSP.

import { nodeStatuses, pathPattern, pathStatuses, renderGantt, renderGraph, STATUSES, stepSpans } from './graph.js';

const TOKEN_KEY = 'miyabi.token';
const RUN_STATUSES = ['running', 'suspended', 'succeeded', 'failed', 'cancelled'];
const PAGE_SIZE = 25;

const view = document.getElementById('view');
const whoEl = document.getElementById('who');
const liveEl = document.getElementById('live');
const signoutBtn = document.getElementById('signout');
const toastEl = document.getElementById('toast');

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let me = null;
let cleanup = null; // the current view's teardown
let generation = 0; // bumps on every navigation; stale async work checks it

// ---------------------------------------------------------------------------------------
// DOM helpers

/**
 * Creates an element. `props`: `class`, `text` (textContent), `on` ({event: fn}), any other
 * key is set as an attribute (booleans add/omit it). Children: nodes, strings (as text),
 * arrays, or null/undefined/false (skipped).
 */
function h(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k === 'value') e.value = v;
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

function clear(e) {
  while (e.firstChild) e.firstChild.remove();
  return e;
}

/** Replaces an element's children (same child rules as h()). */
function fill(e, ...children) {
  return append(clear(e), children);
}

/** Appends children (same rules as h(): null and false are skipped, never shown). */
function add(e, ...children) {
  return append(e, children);
}

/** An internal hash link: `#/a/b` from raw segments, each percent-encoded. */
function route(...segments) {
  return `#/${segments.map((s) => encodeURIComponent(String(s))).join('/')}`;
}

function gateRoute(run, gate) {
  return route('approvals', run, gate);
}

/** An external link's URL, only when it is http or https. */
function safeUrl(u) {
  try {
    const url = new URL(String(u), location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function pretty(v) {
  if (v === undefined) return '';
  try {
    return JSON.stringify(v, null, 2);
  } catch {
    return String(v);
  }
}

function jsonBlock(v, label) {
  return h('pre', { class: 'json', tabindex: 0, 'aria-label': label || 'JSON' }, pretty(v));
}

/** A collapsible JSON value. */
function jsonDetails(summary, v, open = false) {
  return h('details', { class: 'json-details', open }, h('summary', { text: summary }), jsonBlock(v, summary));
}

function time(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return h('span', { class: 'muted', text: '—' });
  const d = new Date(ms);
  return h('time', {
    datetime: d.toISOString(),
    title: d.toISOString(),
    text: d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }),
  });
}

function pill(status, kind = 'st') {
  const s = String(status ?? 'unknown');
  return h('span', { class: `pill ${kind}-${s.replace(/[^a-z-]/g, '')}`, text: s });
}

function heading(text, extra) {
  return h('h1', { tabindex: -1 }, text, extra);
}

function section(title, ...content) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id, text: title }), content);
}

function table(caption, headers, rows) {
  return h(
    'table',
    {},
    h('caption', { class: 'sr-only', text: caption }),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, rows),
  );
}

function toast(msg, kind = 'info') {
  toastEl.textContent = msg;
  toastEl.className = `toast show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => {
    toastEl.className = 'toast';
  }, 4000);
}

function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' }, err instanceof ApiError ? err.describe() : String(err?.message || err));
}

// A trailing debounce with a maximum wait: a burst of calls runs `fn` `ms` after the last
// call, but never later than `maxWait` after the first call of the burst, so a steady stream
// of calls (a busy run's events every 100 ms) still refreshes instead of starving.
function debounce(fn, ms, maxWait = Infinity) {
  let t = null;
  let first = 0;
  return (...args) => {
    const now = Date.now();
    if (t === null) first = now;
    clearTimeout(t);
    const wait = Math.max(0, Math.min(ms, first + maxWait - now));
    t = setTimeout(() => {
      t = null;
      fn(...args);
    }, wait);
  };
}

// Whether the signed-in identity may start, cancel and resume runs.
function canOperate() {
  return !!me && Array.isArray(me.roles) && me.roles.some((r) => r === 'operator' || r === 'admin');
}

// ---------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'error';
    this.body = body;
    this.pointer = typeof e.pointer === 'string' ? e.pointer : pointerFrom(e.message);
  }

  describe() {
    return `${this.message} (${this.status} ${this.code})`;
  }
}

/** The JSON pointer named in a validation message (`... violates its schema at `/x`: ...`). */
function pointerFrom(message) {
  const m = /at `([^`]*)`/.exec(String(message || ''));
  return m ? m[1] : null;
}

async function api(path, { method = 'GET', body, query } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const s = q.toString();
    if (s) url += `?${s}`;
  }
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: { code: 'bad-response', message: text.slice(0, 300) } };
    }
  }
  if (res.status === 401) {
    signOut('The server did not accept the token. Sign in again.');
    throw new ApiError(401, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------
// Live updates: one WebSocket (`/api/ws?access_token=`), resubscribed after reconnects.

const live = {
  ws: null,
  subs: new Map(), // target -> { handler, from }
  retry: 0,
  timer: null,

  connect() {
    if (!token || this.ws) return;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/api/ws?access_token=${enc(token)}`);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      setLive(true);
      for (const [target, s] of this.subs) this.send(target, s.from);
    };
    ws.onmessage = (m) => {
      let msg;
      try {
        msg = JSON.parse(m.data);
      } catch {
        return;
      }
      if (msg.type === 'run') this.subs.get('runs')?.handler(msg.run);
      else if (msg.type === 'event' && msg.event) {
        const s = this.subs.get(msg.run);
        if (s) {
          s.from = Math.max(s.from || 1, (msg.event.seq || 0) + 1);
          s.handler(msg.event);
        }
      }
    };
    ws.onclose = () => {
      if (this.ws === ws) this.ws = null;
      setLive(false);
      if (!token) return;
      const delay = Math.min(10000, 500 * 2 ** this.retry++);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), delay);
    };
  },

  send(target, from) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      const msg = { subscribe: target };
      if (from) msg.from = from;
      this.ws.send(JSON.stringify(msg));
    }
  },

  subscribe(target, handler, from) {
    this.subs.set(target, { handler, from });
    this.connect();
    this.send(target, from);
    return () => this.unsubscribe(target, handler);
  },

  /** Asks again for a target's events from where they stopped (a run that was reopened). */
  resubscribe(target) {
    const s = this.subs.get(target);
    if (s) this.send(target, s.from);
  },

  unsubscribe(target, handler) {
    const s = this.subs.get(target);
    if (!s || (handler && s.handler !== handler)) return;
    this.subs.delete(target);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ unsubscribe: target }));
  },

  close() {
    clearTimeout(this.timer);
    this.subs.clear();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    setLive(false);
  },
};

function setLive(on) {
  liveEl.textContent = on ? 'live' : 'offline';
  liveEl.className = on ? 'live on' : 'live';
}

// ---------------------------------------------------------------------------------------
// Session

function signOut(message) {
  token = '';
  me = null;
  sessionStorage.removeItem(TOKEN_KEY);
  live.close();
  whoEl.textContent = '';
  signoutBtn.hidden = true;
  renderSignIn(message);
}

function renderSignIn(message) {
  generation++;
  if (cleanup) cleanup();
  cleanup = null;
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'token-help',
  });
  const err = h('p', { id: 'signin-error', class: 'field-error', role: 'alert' }, message || '');
  const form = h(
    'form',
    { class: 'card signin' },
    heading('Sign in'),
    h('label', { for: 'token', text: 'API token' }),
    input,
    h('p', {
      id: 'token-help',
      class: 'help',
      text: 'The token stays in this browser tab only (session storage) and is sent to this server as a bearer token.',
    }),
    err,
    h('button', { type: 'submit', class: 'primary', text: 'Sign in' }),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    token = t;
    try {
      me = await api('/api/me');
    } catch (e) {
      token = '';
      err.textContent = e instanceof ApiError && e.status === 401 ? 'This token was not accepted.' : `Cannot reach the server: ${e.message}`;
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    showIdentity();
    render();
  });
  fill(view, form);
  input.focus();
}

function showIdentity() {
  whoEl.textContent = me ? `${me.id}${me.teams && me.teams.length ? ` (${me.teams.join(', ')})` : ''}` : '';
  signoutBtn.hidden = !me;
}

signoutBtn.addEventListener('click', () => signOut('Signed out.'));

// ---------------------------------------------------------------------------------------
// Router

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/runs';
  const i = raw.indexOf('?');
  const path = i < 0 ? raw : raw.slice(0, i);
  const params = new URLSearchParams(i < 0 ? '' : raw.slice(i + 1));
  return { path, params };
}

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const ROUTES = [
  [/^\/?$/, () => runsView],
  [/^\/runs\/?$/, () => runsView],
  [/^\/runs\/([^/]+)\/?$/, () => runView],
  [/^\/approvals\/?$/, () => inboxView],
  [/^\/approvals\/([^/]+)\/(.+)$/, () => gateView],
  [/^\/audit\/?$/, () => auditView],
  [/^\/workflows\/?$/, () => workflowsView],
  [/^\/workflows\/([^/]+)\/?$/, () => workflowView],
  [/^\/evals\/?$/, () => evalsView],
  [/^\/evals\/compare\/?$/, () => evalCompareView],
];

async function render() {
  if (!token) {
    renderSignIn();
    return;
  }
  if (!me) {
    try {
      me = await api('/api/me');
      showIdentity();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) fill(view, errorBox(e));
      return;
    }
  }
  live.connect();
  if (cleanup) cleanup();
  cleanup = null;
  const gen = ++generation;
  const { path, params } = parseHash();
  const area = path.split('/')[1] || 'runs';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === area) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  let match = null;
  let fn = null;
  for (const [re, f] of ROUTES) {
    match = re.exec(path);
    if (match) {
      fn = f();
      break;
    }
  }
  if (!fn) {
    fill(view, heading('Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/runs', text: 'Go to the runs.' })));
    return;
  }
  const ctx = {
    params,
    args: match.slice(1).map(decode),
    stale: () => gen !== generation,
    onCleanup: (f) => {
      const prev = cleanup;
      cleanup = () => {
        if (prev) prev();
        f();
      };
    },
  };
  fill(view, h('p', { class: 'muted', role: 'status', text: 'Loading…' }));
  try {
    await fn(ctx);
  } catch (e) {
    if (ctx.stale()) return;
    if (e instanceof ApiError && e.status === 401) return;
    fill(view, heading('Something went wrong'), errorBox(e));
  }
  if (!ctx.stale()) {
    const h1 = view.querySelector('h1');
    if (h1) h1.focus({ preventScroll: true });
    document.title = `${h1 ? h1.textContent : 'Dashboard'} · Miyabi`;
  }
}

window.addEventListener('hashchange', render);

// ---------------------------------------------------------------------------------------
// Runs

const runsPaging = { key: '', stack: [] };

function runRow(r) {
  return h(
    'tr',
    { 'data-run': r.id, 'data-created': r.created_at },
    h('td', {}, h('a', { href: route('runs', r.id), class: 'mono', text: r.id })),
    h('td', { text: r.workflow }),
    h('td', { class: 'status' }, pill(r.status)),
    h('td', {}, time(r.created_at)),
    h('td', { class: 'updated' }, time(r.updated_at)),
  );
}

async function runsView(ctx) {
  const status = RUN_STATUSES.includes(ctx.params.get('status')) ? ctx.params.get('status') : '';
  const cursor = ctx.params.get('cursor') || '';
  const workflow = ctx.params.get('workflow') || '';
  const search = ctx.params.get('q') || '';
  const from = ctx.params.get('from') || '';
  const to = ctx.params.get('to') || '';
  const key = `${status}|${workflow}|${search}|${from}|${to}`;
  if (runsPaging.key !== key || !cursor) runsPaging.stack = [];
  runsPaging.key = key;
  // datetime-local values are local times: the API takes RFC 3339.
  const iso = (v) => (v ? new Date(v).toISOString() : '');
  const page = await api('/api/runs', {
    query: { status, cursor, workflow, q: search, from: iso(from), to: iso(to), limit: PAGE_SIZE },
  });
  if (ctx.stale()) return;
  const runs = page.runs || [];
  const q = (extra) => {
    const p = new URLSearchParams();
    if (status) p.set('status', status);
    if (workflow) p.set('workflow', workflow);
    if (search) p.set('q', search);
    if (from) p.set('from', from);
    if (to) p.set('to', to);
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    const s = p.toString();
    return `#/runs${s ? `?${s}` : ''}`;
  };
  const searchInput = h('input', { id: 'runs-q', name: 'q', type: 'search', value: search, placeholder: 'run id, or text in input/output' });
  const fromInput = h('input', { id: 'runs-from', name: 'from', type: 'datetime-local', value: from });
  const toInput = h('input', { id: 'runs-to', name: 'to', type: 'datetime-local', value: to });
  const searchForm = h(
    'form',
    { class: 'filters-form', role: 'search', 'aria-label': 'Search runs' },
    h('div', { class: 'field' }, h('label', { for: 'runs-q', text: 'Search' }), searchInput),
    h('div', { class: 'field' }, h('label', { for: 'runs-from', text: 'Created from' }), fromInput),
    h('div', { class: 'field' }, h('label', { for: 'runs-to', text: 'to' }), toInput),
    h('button', { type: 'submit', class: 'primary', text: 'Search' }),
    search || from || to ? h('a', { href: workflow ? `#/runs?workflow=${enc(workflow)}` : '#/runs', text: 'Clear' }) : null,
  );
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (status) p.set('status', status);
    if (workflow) p.set('workflow', workflow);
    if (searchInput.value.trim()) p.set('q', searchInput.value.trim());
    if (fromInput.value) p.set('from', fromInput.value);
    if (toInput.value) p.set('to', toInput.value);
    location.hash = `#/runs${p.toString() ? `?${p}` : ''}`;
  });
  const filters = h(
    'nav',
    { class: 'filters', 'aria-label': 'Filter runs by status' },
    h(
      'ul',
      {},
      ['', ...RUN_STATUSES].map((s) => {
        const p = new URLSearchParams();
        if (s) p.set('status', s);
        if (workflow) p.set('workflow', workflow);
        const href = `#/runs${p.toString() ? `?${p}` : ''}`;
        return h('li', {}, h('a', { href, 'aria-current': s === status ? 'true' : null, text: s || 'all' }));
      }),
    ),
  );
  const tbody = h('tbody', {}, runs.map(runRow));
  const tbl = h(
    'table',
    { class: 'runs' },
    h('caption', { class: 'sr-only', text: 'Runs, newest first' }),
    h('thead', {}, h('tr', {}, ['Run', 'Workflow', 'Status', 'Created', 'Updated'].map((t) => h('th', { scope: 'col', text: t })))),
    tbody,
  );
  const empty = h('p', {
    class: 'muted empty',
    text: search || from || to ? 'No runs match.' : status ? `No ${status} runs.` : 'No runs yet.',
    hidden: runs.length > 0,
  });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  if (cursor) {
    add(pager, h('a', { href: q({}), text: '⇤ Newest' }));
    if (runsPaging.stack.length > 0) {
      const prev = runsPaging.stack[runsPaging.stack.length - 1];
      const a = h('a', { href: q({ cursor: prev }), text: '← Newer' });
      a.addEventListener('click', () => runsPaging.stack.pop());
      add(pager, a);
    }
  }
  if (page.next_cursor) {
    const a = h('a', { href: q({ cursor: page.next_cursor }), text: 'Older →' });
    a.addEventListener('click', () => runsPaging.stack.push(cursor));
    add(pager, a);
  }
  fill(view,
    h('div', { class: 'title-row' }, heading(workflow ? `Runs of ${workflow}` : 'Runs'), h('span', { class: 'muted', text: 'updates live' })),
    searchForm,
    filters,
    h('div', { class: 'card flush' }, tbl, empty),
    pager,
  );

  // Live: update rows in place; on the first page, add new matching runs at the top.
  const onRun = (r) => {
    if (!r || !r.id) return;
    const row = tbody.querySelector(`tr[data-run="${CSS.escape(r.id)}"]`);
    if (row) {
      row.replaceWith(runRow(r));
      return;
    }
    if (cursor || (status && r.status !== status) || (workflow && r.workflow !== workflow)) return;
    const first = tbody.firstElementChild;
    const firstCreated = first ? Number(first.dataset.created || 0) : 0;
    if (first && r.created_at < firstCreated) return;
    const tr = runRow(r);
    tr.classList.add('fresh');
    tbody.prepend(tr);
    empty.hidden = true;
    while (tbody.children.length > PAGE_SIZE) tbody.lastElementChild.remove();
  };
  ctx.onCleanup(live.subscribe('runs', onRun));
}

// ---------------------------------------------------------------------------------------
// Run detail

async function runView(ctx) {
  const [id] = ctx.args;
  let detail = await api(`/api/runs/${enc(id)}`);
  if (ctx.stale()) return;
  let graph = null;
  let graphError = null;
  try {
    const wf = await api(`/api/workflows/${enc(detail.run.workflow)}`);
    graph = wf.graph;
  } catch (e) {
    graphError = e;
  }
  if (ctx.stale()) return;

  const events = [];
  const seen = new Set();
  const header = h('div');
  const ioBox = h('div');
  const graphBox = h('div', { class: 'graph-box' });
  const stepsBox = h('div', { class: 'steps' });
  const timeline = h('ol', { class: 'timeline', 'aria-label': 'Events, oldest first' });
  const timelineEmpty = h('p', { class: 'muted', text: 'No events yet.' });
  const openStep = (path) => {
    const d = stepsBox.querySelector(`details[data-path="${CSS.escape(path)}"]`);
    if (d) {
      d.open = true;
      d.querySelector('summary').focus();
      d.scrollIntoView({ block: 'nearest' });
    }
  };

  // Kept across header redraws (a live refresh must not close an open rerun form).
  const rerunBox = h('div', { class: 'rerun', hidden: true });
  const renderHeader = () => {
    const r = detail.run;
    const active = r.status === 'running' || r.status === 'suspended';
    const cancel = active && canOperate()
      ? h('button', {
          type: 'button',
          class: 'danger',
          id: 'cancel-run',
          text: 'Cancel run',
          on: {
            click: async (ev) => {
              if (!window.confirm(`Cancel run ${r.id}?`)) return;
              ev.target.disabled = true;
              try {
                const res = await api(`/api/runs/${enc(r.id)}/cancel`, { method: 'POST' });
                if (res && res.run) detail.run = res.run;
                toast('Run cancelled.');
                refresh();
              } catch (e) {
                toast(e.message, 'error');
                ev.target.disabled = false;
              }
            },
          },
        })
      : null;
    const gates = (r.suspended || []).filter((s) => s && s.payload && s.payload.type === 'approval');
    const retry = r.status === 'failed' && canOperate()
      ? h('button', {
          type: 'button',
          id: 'retry-run',
          text: 'Retry failed steps',
          title: 'Run the failed steps of this run again; the steps that succeeded are kept',
          on: {
            click: async (ev) => {
              if (!window.confirm(`Retry run ${r.id} from its failed steps? The steps that succeeded are kept; the failed ones run again.`)) return;
              ev.target.disabled = true;
              try {
                await api(`/api/runs/${enc(r.id)}/retry`, { method: 'POST' });
                toast('Run retried from its failed steps.');
                live.resubscribe(id);
                refresh();
              } catch (e) {
                toast(e.message, 'error');
                ev.target.disabled = false;
              }
            },
          },
        })
      : null;
    const rerun = canOperate() && (r.status === 'failed' || r.status === 'succeeded' || r.status === 'cancelled')
      ? h('button', {
          type: 'button',
          id: 'rerun-run',
          text: 'Rerun…',
          on: {
            click: () => {
              const input = h('textarea', { id: 'rerun-input', class: 'mono', rows: 8, 'aria-label': 'Input of the new run' });
              input.value = pretty(r.input);
              const start = h('button', {
                type: 'button',
                class: 'primary',
                id: 'rerun-start',
                text: 'Start a new run',
                on: {
                  click: async (ev) => {
                    let value;
                    try {
                      value = JSON.parse(input.value);
                    } catch (e) {
                      toast(`The input is not JSON: ${e.message}`, 'error');
                      return;
                    }
                    if (!window.confirm(`Start a new run of ${r.workflow} with this input?`)) return;
                    ev.target.disabled = true;
                    try {
                      const res = await api(`/api/runs/${enc(r.id)}/rerun`, { method: 'POST', body: { input: value } });
                      toast('New run started.');
                      location.hash = route('runs', res.id);
                    } catch (e) {
                      toast(e.message, 'error');
                      ev.target.disabled = false;
                    }
                  },
                },
              });
              const close = h('button', { type: 'button', text: 'Close', on: { click: () => { rerunBox.hidden = true; } } });
              fill(rerunBox, h('label', { for: 'rerun-input', text: 'Input (the same, or edit it)' }), input, h('div', { class: 'actions' }, start, close));
              rerunBox.hidden = false;
              input.focus();
            },
          },
        })
      : null;
    fill(header,
      h('div', { class: 'title-row' }, heading('Run ', h('span', { class: 'mono', text: r.id })), h('div', { class: 'actions' }, retry, rerun, cancel)),
      rerunBox,
      h(
        'dl',
        { class: 'meta' },
        h('dt', { text: 'Workflow' }),
        h('dd', {}, h('a', { href: `#/runs?workflow=${enc(r.workflow)}`, text: r.workflow })),
        h('dt', { text: 'Status' }),
        h('dd', { id: 'run-status' }, pill(r.status)),
        h('dt', { text: 'Created' }),
        h('dd', {}, time(r.created_at)),
        h('dt', { text: 'Updated' }),
        h('dd', {}, time(r.updated_at)),
      ),
      gates.length
        ? h(
            'div',
            { class: 'notice' },
            'Waiting for approval: ',
            gates.map((g, i) => [i ? ', ' : '', h('a', { href: gateRoute(r.id, g.path), text: g.payload.request?.title || g.path })]),
          )
        : null,
      r.error ? h('div', { class: 'error-box' }, h('strong', { text: 'Error: ' }), r.error) : null,
    );
    fill(
      ioBox,
      jsonDetails('Input', r.input, true),
      r.output !== undefined && r.output !== null ? jsonDetails('Output', r.output, true) : h('p', { class: 'muted', text: 'No output yet.' }),
    );
  };

  const renderGraphBox = () => {
    clear(graphBox);
    if (!graph) {
      add(graphBox,
        h('p', { class: 'muted' }, `The graph is not available: ${graphError ? graphError.message : 'unknown workflow'}.`),
      );
      return;
    }
    const statuses = nodeStatuses(graph, pathStatuses(detail.steps, events));
    add(graphBox,
      h('div', { class: 'graph-scroll' }, renderGraph(graph, statuses, (n) => n.path && openStep(n.path))),
      h(
        'ul',
        { class: 'legend', 'aria-label': 'Legend' },
        STATUSES.map((s) => h('li', {}, h('span', { class: `swatch st-${s}`, 'aria-hidden': 'true' }), s)),
      ),
    );
  };

  // The input a step received, where the run's records tell it: the run's input for the
  // first step, the previous step's output after a `next` edge, a branch's or parallel's
  // input for its arms and children. Inside loops and foreach it is not recorded.
  const inputOf = (path) => {
    if (!graph) return undefined;
    const nodes = graph.nodes || [];
    const node = nodes.find((n) => n.path === path);
    if (!node) return undefined;
    const outputAt = (p) => (detail.steps || []).find((s) => s.path === p)?.output;
    const inputOfNode = (n, depth) => {
      if (depth > 50) return undefined;
      const edge = (graph.edges || []).find((e) => e.to === n.id);
      if (!edge) return n.parent == null ? { v: detail.run.input } : undefined;
      const from = nodes.find((m) => m.id === edge.from);
      if (!from) return undefined;
      if (edge.kind === 'next') {
        if (from.path == null || from.path.includes('[*]')) return undefined;
        const v = outputAt(from.path);
        return v === undefined ? undefined : { v };
      }
      if (from.kind === 'loop' || from.kind === 'foreach') return undefined;
      return inputOfNode(from, depth + 1);
    };
    return inputOfNode(node, 0);
  };

  const renderSteps = () => {
    const open = new Set([...stepsBox.querySelectorAll('details[open]')].map((d) => d.dataset.path));
    clear(stepsBox);
    // In the graph's order (iterations of one node by time), then by time.
    const patterns = graph ? (graph.nodes || []).filter((n) => n.path != null).map((n) => pathPattern(n.path)) : [];
    const order = (p) => {
      const i = patterns.findIndex((re) => re.test(p));
      return i < 0 ? patterns.length : i;
    };
    const steps = [...(detail.steps || [])].sort(
      (x, y) => order(x.path) - order(y.path) || (x.updated_at || 0) - (y.updated_at || 0) || String(x.path).localeCompare(String(y.path)),
    );
    if (steps.length === 0) {
      add(stepsBox, h('p', { class: 'muted', text: 'No step has a record yet.' }));
      return;
    }
    for (const s of steps) {
      const input = inputOf(s.path);
      const gate = s.payload && s.payload.type === 'approval';
      add(stepsBox,
        h(
          'details',
          { class: 'step', 'data-path': s.path, open: open.has(s.path) },
          h(
            'summary',
            {},
            h('span', { class: 'mono', text: s.path }),
            ' ',
            pill(s.status),
            h('span', { class: 'muted' }, ` ${s.kind || ''} · attempt ${s.attempt ?? '—'} · `, time(s.updated_at)),
          ),
          h(
            'div',
            { class: 'step-body' },
            input ? jsonDetails('Input (the output it was given)', input.v, true) : h('p', { class: 'muted', text: 'Input: not recorded separately.' }),
            s.output !== null && s.output !== undefined ? jsonDetails('Output', s.output, true) : null,
            s.error ? h('div', { class: 'error-box' }, s.error) : null,
            s.payload !== null && s.payload !== undefined ? jsonDetails('Suspended with', s.payload) : null,
            s.resume !== null && s.resume !== undefined ? jsonDetails('Resume data', s.resume) : null,
            gate ? h('p', {}, h('a', { href: gateRoute(detail.run.id, s.path), text: 'Open the approval gate' })) : null,
          ),
        ),
      );
    }
  };

  const eventLine = (ev) => {
    const data = { ...ev };
    for (const k of ['run_id', 'seq', 'at', 'type', 'path']) delete data[k];
    const hasData = Object.keys(data).length > 0;
    return h(
      'li',
      { class: `ev ev-${String(ev.type).replace(/[^a-z-]/g, '')}`, 'data-seq': ev.seq },
      h('span', { class: 'seq mono', text: `#${ev.seq}` }),
      ' ',
      time(ev.at),
      ' ',
      h('strong', { text: ev.type }),
      ev.path ? [' ', h('span', { class: 'mono', text: ev.path })] : null,
      hasData ? jsonDetails('details', data) : null,
    );
  };

  const refresh = debounce(async () => {
    try {
      const d = await api(`/api/runs/${enc(id)}`);
      if (ctx.stale()) return;
      detail = d;
      renderHeader();
      renderSteps();
      renderGraphBox();
    } catch (e) {
      if (!ctx.stale()) toast(e.message, 'error');
    }
  }, 150, 500);
  const redrawGraph = debounce(renderGraphBox, 50);

  // Step durations (a Gantt chart) and each step's failed attempts, from the events.
  const ganttBox = h('div', { class: 'gantt-box' });
  const renderGantt_ = () => {
    const spans = stepSpans(events);
    if (spans.length === 0) {
      fill(ganttBox, h('p', { class: 'muted', text: 'No step has started yet.' }));
      return;
    }
    const failures = spans.flatMap((s) => s.errors.map((e) => ({ path: s.path, ...e })));
    fill(ganttBox,
      h('div', { class: 'graph-scroll' }, renderGantt(spans, Date.now())),
      failures.length
        ? h(
            'ul',
            { class: 'attempts', 'aria-label': 'Failed attempts' },
            failures.map((f) => h('li', {}, h('span', { class: 'mono', text: f.path }), ` attempt ${f.attempt}: `, h('span', { class: 'error-text', text: f.error }))),
          )
        : null,
    );
  };
  const redrawGantt = debounce(renderGantt_, 100, 500);

  // Event filters and following the newest event.
  const EVENT_GROUPS = { steps: /^step-/, custom: /^custom$/, run: /^run-/ };
  const shown = new Set(Object.keys(EVENT_GROUPS));
  const groupOf = (type) => Object.keys(EVENT_GROUPS).find((g) => EVENT_GROUPS[g].test(type)) || 'run';
  const applyFilter = (li) => {
    li.hidden = !shown.has(li.dataset.group);
  };
  const follow = h('input', { type: 'checkbox', id: 'timeline-follow', checked: true });
  const filterBar = h(
    'div',
    { class: 'event-filters', role: 'group', 'aria-label': 'Event filters' },
    Object.keys(EVENT_GROUPS).map((g) => {
      const box = h('input', { type: 'checkbox', id: `ev-${g}`, checked: true });
      box.addEventListener('change', () => {
        if (box.checked) shown.add(g);
        else shown.delete(g);
        for (const li of timeline.children) applyFilter(li);
      });
      return h('label', { for: `ev-${g}` }, box, ` ${g} `);
    }),
    h('label', { for: 'timeline-follow' }, follow, ' follow new events'),
  );
  const appendEvent = (ev) => {
    const li = eventLine(ev);
    li.dataset.group = groupOf(ev.type);
    applyFilter(li);
    add(timeline, li);
    if (follow.checked) timeline.scrollTop = timeline.scrollHeight;
  };

  renderHeader();
  renderGraphBox();
  renderSteps();
  renderGantt_();
  fill(
    view,
    header,
    h('div', { class: 'columns' }, section('Graph', graphBox), section('Steps', stepsBox)),
    section('Durations', ganttBox),
    h(
      'div',
      { class: 'columns' },
      section('Timeline', h('p', { class: 'muted small', text: 'Live: new events appear as they happen.' }), filterBar, timelineEmpty, timeline),
      section('Input and output', ioBox),
    ),
  );

  ctx.onCleanup(
    live.subscribe(
      id,
      (ev) => {
        if (ctx.stale() || seen.has(ev.seq)) return;
        seen.add(ev.seq);
        events.push(ev);
        timelineEmpty.hidden = true;
        appendEvent(ev);
        redrawGantt();
        if (ev.type === 'step-started' || ev.type === 'step-retrying') redrawGraph();
        else refresh();
      },
      1,
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Approvals

function listOf(body, ...keys) {
  if (Array.isArray(body)) return body;
  for (const k of keys) if (body && Array.isArray(body[k])) return body[k];
  return [];
}

function policyText(p) {
  if (typeof p === 'string') return p;
  if (p && typeof p === 'object' && 'quorum' in p) return `quorum of ${p.quorum}`;
  return pretty(p);
}

function timeoutText(t) {
  if (typeof t === 'string') return t;
  if (t && typeof t === 'object' && Array.isArray(t.escalate)) return `escalate to ${t.escalate.join(', ')}`;
  return pretty(t);
}

async function inboxView(ctx) {
  const all = ctx.params.get('all') === '1';
  const cursor = ctx.params.get('cursor') || '';
  let nextCursor = null;
  const load = async () => {
    const page = await api('/api/approvals', { query: all ? { all: 1, cursor, limit: PAGE_SIZE } : { status: 'pending', cursor, limit: PAGE_SIZE } });
    nextCursor = page.next_cursor || null;
    return listOf(page, 'approvals');
  };
  let items = await load();
  if (ctx.stale()) return;
  const base = all ? '#/approvals?all=1' : '#/approvals';
  const sep = all ? '&' : '?';
  const inboxPager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const fillPager = () => {
    fill(inboxPager,
      cursor ? h('a', { href: base, text: '⇤ Newest' }) : null,
      nextCursor ? h('a', { href: `${base}${sep}cursor=${enc(nextCursor)}`, text: 'Older →' }) : null,
    );
  };
  fillPager();
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted empty' });
  const fillRows = () => {
    fill(tbody,
      items.map((a) =>
        h(
          'tr',
          { 'data-run': a.run_id, 'data-gate': a.gate },
          h('td', {}, h('a', { href: gateRoute(a.run_id, a.gate), text: a.title || a.gate })),
          h('td', { text: a.workflow }),
          h('td', {}, h('a', { href: route('runs', a.run_id), class: 'mono', text: a.run_id })),
          h('td', { class: 'mono', text: a.gate }),
          h('td', {}, pill(a.status, 'ap')),
          h('td', { text: (a.approvers || []).join(', ') }),
          h('td', {}, time(a.created_at)),
          h('td', {}, time(a.deadline_at)),
        ),
      ),
    );
    empty.textContent = all ? 'No approval gates yet.' : 'Nothing is waiting for you.';
    empty.hidden = items.length > 0;
  };
  fillRows();
  const toggle = h('a', { href: all ? '#/approvals' : '#/approvals?all=1', text: all ? 'Show my inbox' : 'Show all gates' });
  fill(view,
    h('div', { class: 'title-row' }, heading(all ? 'All approval gates' : 'Approval inbox'), toggle),
    h(
      'p',
      { class: 'muted' },
      all ? 'Every gate, newest first.' : `Gates waiting for ${me ? me.id : 'you'} (directly or through a team), newest first.`,
    ),
    h(
      'div',
      { class: 'card flush' },
      h(
        'table',
        {},
        h('caption', { class: 'sr-only', text: all ? 'All approval gates' : 'Approval inbox' }),
        h('thead', {}, h('tr', {}, ['Request', 'Workflow', 'Run', 'Gate', 'Status', 'Approvers', 'Requested', 'Deadline'].map((t) => h('th', { scope: 'col', text: t })))),
        tbody,
      ),
      empty,
    ),
    inboxPager,
  );
  const reload = debounce(async () => {
    try {
      const next = await load();
      if (ctx.stale()) return;
      items = next;
      fillRows();
      fillPager();
    } catch {
      /* the next change retries */
    }
  }, 200);
  ctx.onCleanup(live.subscribe('runs', reload));
}

async function gateView(ctx) {
  const [run, gate] = ctx.args;
  const path = `/api/approvals/${enc(run)}/${enc(gate)}`;
  const loadGate = async () => {
    const body = await api(path);
    return body && body.approval ? body.approval : body;
  };
  const loadAudit = async () => {
    const body = await api('/api/audit', { query: { run, gate, order: 'oldest', limit: 500 } });
    return listOf(body, 'audit').filter((r) => r.gate === gate);
  };
  let a = await loadGate();
  let audit = [];
  let auditError = null;
  try {
    audit = await loadAudit();
  } catch (e) {
    auditError = e;
  }
  if (ctx.stale()) return;

  const votesBox = h('div');
  const deliveriesBox = h('div');
  const auditBox = h('div');
  const statusBox = h('span', { id: 'gate-status' });

  const renderSide = () => {
    fill(statusBox, pill(a.status, 'ap'));
    const votes = a.votes || [];
    fill(votesBox,
      votes.length === 0
        ? h('p', { class: 'muted', text: 'No votes yet.' })
        : table(
            'Votes',
            ['By', 'Decision', 'Edited', 'Comment', 'When'],
            votes.map((v) =>
              h(
                'tr',
                {},
                h('td', { text: v.by }),
                h('td', {}, pill(v.action === 'approve' ? 'approved' : v.action === 'reject' ? 'rejected' : v.action, 'ap')),
                h('td', { text: v.edited ? 'yes' : 'no' }),
                h('td', { class: 'pre', text: v.comment || '' }),
                h('td', {}, time(v.at)),
              ),
            ),
          ),
    );
    const ds = a.deliveries || [];
    fill(deliveriesBox,
      ds.length === 0
        ? h('p', { class: 'muted', text: (a.notify || []).length ? 'No notification recorded yet.' : 'No notifier is configured for this gate.' })
        : table(
            'Notifications',
            ['Notifier', 'Event', 'State', 'Last error', 'Updated'],
            ds.map((d) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono', text: d.notifier }),
                h('td', { text: d.event }),
                h('td', {}, pill(d.status, 'dl'), h('span', { class: 'muted small', text: ` ${d.attempts} attempt${d.attempts === 1 ? '' : 's'}` })),
                h('td', { class: 'pre', text: d.last_error || '' }),
                h('td', {}, time(d.updated_at)),
              ),
            ),
          ),
    );
    fill(auditBox,
      auditError
        ? errorBox(auditError)
        : audit.length === 0
          ? h('p', { class: 'muted', text: 'No audit records.' })
          : table(
              'Audit trail of this gate',
              ['When', 'Actor', 'Action', 'Comment', 'Change'],
              audit.map((r) =>
                h(
                  'tr',
                  {},
                  h('td', {}, time(r.at)),
                  h('td', { text: r.actor }),
                  h('td', { text: r.action }),
                  h('td', { class: 'pre', text: r.comment || '' }),
                  h('td', {}, r.diff ? jsonDetails('edit (JSON Patch)', r.diff) : r.data ? jsonDetails('details', r.data) : ''),
                ),
              ),
            ),
    );
  };

  const original = pretty(a.data);
  const pending = a.status === 'pending';
  const dataArea = h('textarea', {
    id: 'gate-data',
    name: 'data',
    class: 'mono',
    spellcheck: 'false',
    rows: Math.min(30, Math.max(8, original.split('\n').length + 1)),
    'aria-describedby': 'data-help data-error',
    readonly: !pending,
    value: original,
  });
  const dataError = h('p', { id: 'data-error', class: 'field-error', role: 'alert' });
  dataArea.addEventListener('input', () => {
    if (dataArea.hasAttribute('aria-invalid')) {
      dataError.textContent = '';
      dataArea.removeAttribute('aria-invalid');
    }
  });
  const comment = h('textarea', { id: 'gate-comment', name: 'comment', rows: 3 });
  const result = h('div', { id: 'decision-result', role: 'status', 'aria-live': 'polite' });
  const buttons = [];
  const setBusy = (busy) => {
    for (const b of buttons) b.disabled = busy;
  };
  const clearErrors = () => {
    dataError.textContent = '';
    dataArea.removeAttribute('aria-invalid');
    clear(result);
  };

  const decide = async (action, withData) => {
    clearErrors();
    const body = { action };
    const c = comment.value.trim();
    if (c) body.comment = c;
    if (withData) {
      try {
        body.data = JSON.parse(dataArea.value);
      } catch (e) {
        dataError.textContent = `Not valid JSON: ${e.message}`;
        dataArea.setAttribute('aria-invalid', 'true');
        dataArea.focus();
        return;
      }
    }
    setBusy(true);
    try {
      await api(`${path}/decision`, { method: 'POST', body });
      toast(action === 'approve' ? (withData ? 'Edited and approved.' : 'Approved.') : 'Rejected.');
      a = await loadGate();
      try {
        audit = await loadAudit();
      } catch (e) {
        auditError = e;
      }
      if (ctx.stale()) return;
      renderPage(action === 'approve' ? 'Your approval was recorded.' : 'Your rejection was recorded.');
    } catch (e) {
      setBusy(false);
      if (!(e instanceof ApiError)) {
        add(result, errorBox(e));
        return;
      }
      if (e.status === 422) {
        const where = e.pointer !== null && e.pointer !== undefined ? ` (at ${e.pointer === '' ? 'the whole value' : e.pointer})` : '';
        dataError.textContent = `Rejected by the gate's schema${where}: ${e.message}`;
        dataArea.setAttribute('aria-invalid', 'true');
        dataArea.focus();
      } else if (e.status === 409) {
        // Decided meanwhile (by someone else, the deadline, or in another tab), or this
        // identity already voted: show the gate as it is now, with who decided it.
        try {
          a = await loadGate();
          audit = await loadAudit();
        } catch {
          /* keep what is shown */
        }
        if (ctx.stale()) return;
        const by = (a.votes || []).map((v) => v.by).join(', ');
        const box =
          a.status === 'pending'
            ? h('div', { class: 'error-box conflict', role: 'alert' }, h('strong', { text: 'Conflict: ' }), e.message)
            : h(
                'div',
                { class: 'error-box conflict', role: 'alert' },
                h('strong', { text: 'Already decided: ' }),
                `${a.status}${by ? ` by ${by}` : ''}. `,
                h('span', { class: 'muted small', text: e.message }),
              );
        if (a.status === 'pending') {
          add(result, box);
          renderSide();
        } else renderPage(box);
      } else if (e.status === 403) {
        add(result, h('div', { class: 'error-box', role: 'alert' }, h('strong', { text: 'Not allowed. ' }), e.message));
      } else {
        add(result, errorBox(e));
      }
    }
  };

  const renderPage = (notice) => {
    const pendingNow = a.status === 'pending';
    const links = (a.links || [])
      .map((l) => ({ label: l.label || l.url, url: safeUrl(l.url) }))
      .filter((l) => l.url);
    buttons.length = 0;
    const btn = (text, cls, fn, id) => {
      const b = h('button', { type: 'button', class: cls, id, text, on: { click: fn } });
      buttons.push(b);
      return b;
    };
    dataArea.readOnly = !pendingNow;
    const form = pendingNow
      ? h(
          'form',
          { class: 'decision', 'aria-label': 'Decision', on: { submit: (ev) => ev.preventDefault() } },
          h('label', { for: 'gate-data', text: 'Data under review (JSON)' }),
          h('p', {
            id: 'data-help',
            class: 'help',
            text: 'Approve sends your decision on the data as requested; Edit & approve sends the data as edited here (checked against the gate’s schema).',
          }),
          dataArea,
          dataError,
          a.schema ? jsonDetails('Schema the data must satisfy', a.schema) : null,
          h('label', { for: 'gate-comment', text: 'Comment (optional)' }),
          comment,
          h(
            'div',
            { class: 'buttons' },
            btn('Approve', 'primary', () => decide('approve', false), 'approve'),
            btn('Edit & approve', 'primary outline', () => decide('approve', true), 'edit-approve'),
            btn('Reject', 'danger', () => decide('reject', false), 'reject'),
            btn(
              'Reset data',
              'link',
              () => {
                dataArea.value = original;
                clearErrors();
              },
              'reset-data',
            ),
          ),
          result,
        )
      : h(
          'div',
          {},
          notice instanceof Node ? notice : notice ? h('div', { class: 'notice ok', role: 'status', text: notice }) : null,
          h('p', {}, `This gate was ${a.status}`, a.decided_at ? [' at ', time(a.decided_at)] : null, '.'),
          jsonDetails('Data as decided', a.data, true),
          a.output !== undefined && a.output !== null ? jsonDetails('Gate output (what the next step receives)', a.output) : null,
          result,
        );

    fill(view,
      h(
        'div',
        { class: 'title-row' },
        heading(a.title || `Approve ${a.gate}`),
        statusBox,
      ),
      a.summary ? h('p', { class: 'summary pre', text: a.summary }) : null,
      links.length ? h('ul', { class: 'links', 'aria-label': 'Links' }, links.map((l) => h('li', {}, h('a', { href: l.url, rel: 'noopener noreferrer', target: '_blank', text: l.label })))) : null,
      h(
        'dl',
        { class: 'meta' },
        h('dt', { text: 'Workflow' }),
        h('dd', { text: a.workflow }),
        h('dt', { text: 'Run' }),
        h('dd', {}, h('a', { href: route('runs', a.run_id), class: 'mono', text: a.run_id })),
        h('dt', { text: 'Gate' }),
        h('dd', { class: 'mono', text: a.gate }),
        h('dt', { text: 'Approvers' }),
        h('dd', { text: (a.approvers || []).join(', ') || '—' }),
        h('dt', { text: 'Policy' }),
        h('dd', { text: policyText(a.policy) }),
        h('dt', { text: 'Requested' }),
        h('dd', {}, time(a.created_at)),
        h('dt', { text: 'Deadline' }),
        h('dd', {}, a.deadline_at ? [time(a.deadline_at), ` (then ${timeoutText(a.on_timeout)})`] : 'none'),
        a.escalated ? [h('dt', { text: 'Escalated' }), h('dd', { text: 'yes' })] : null,
      ),
      section(pendingNow ? 'Your decision' : 'Decision', form),
      section('Votes', votesBox),
      section('Notifications', deliveriesBox),
      section('Audit trail', auditBox),
    );
    renderSide();
  };
  renderPage();

  // Live: when the run changes (the gate decided elsewhere, the run moving on), refresh.
  const reload = debounce(async () => {
    try {
      const next = await loadGate();
      try {
        audit = await loadAudit();
      } catch {
        /* keep the old trail */
      }
      if (ctx.stale()) return;
      const changed = next.status !== a.status;
      a = next;
      if (changed) renderPage('This gate was decided.');
      else renderSide();
    } catch {
      /* the next change retries */
    }
  }, 200);
  ctx.onCleanup(live.subscribe('runs', (r) => r && r.id === run && reload()));
  // Notifications are sent in the background: look again while any is still pending.
  const poll = setInterval(() => {
    if ((a.deliveries || []).some((d) => d.status === 'pending')) reload();
  }, 3000);
  ctx.onCleanup(() => clearInterval(poll));
}

// ---------------------------------------------------------------------------------------
// Audit

async function auditView(ctx) {
  const run = ctx.params.get('run') || '';
  const actor = ctx.params.get('actor') || '';
  const cursor = ctx.params.get('cursor') || '';
  const page = await api('/api/audit', { query: { run, actor, cursor, limit: PAGE_SIZE } });
  const records = listOf(page, 'audit');
  if (ctx.stale()) return;
  const here = (extra) => {
    const p = new URLSearchParams();
    if (run) p.set('run', run);
    if (actor) p.set('actor', actor);
    for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
    return `#/audit${p.toString() ? `?${p}` : ''}`;
  };
  const auditPager = h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    cursor ? h('a', { href: here({}), text: '⇤ Newest' }) : null,
    page.next_cursor ? h('a', { href: here({ cursor: page.next_cursor }), text: 'Older →' }) : null,
  );
  const runInput = h('input', { id: 'audit-run', name: 'run', value: run, class: 'mono', placeholder: 'any run' });
  const actorInput = h('input', { id: 'audit-actor', name: 'actor', value: actor, placeholder: 'anyone' });
  const form = h(
    'form',
    { class: 'filters-form', role: 'search', 'aria-label': 'Filter the audit trail' },
    h('div', { class: 'field' }, h('label', { for: 'audit-run', text: 'Run' }), runInput),
    h('div', { class: 'field' }, h('label', { for: 'audit-actor', text: 'Actor' }), actorInput),
    h('button', { type: 'submit', class: 'primary', text: 'Filter' }),
    run || actor ? h('a', { href: '#/audit', text: 'Clear' }) : null,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    if (runInput.value.trim()) p.set('run', runInput.value.trim());
    if (actorInput.value.trim()) p.set('actor', actorInput.value.trim());
    location.hash = `#/audit${p.toString() ? `?${p}` : ''}`;
  });
  fill(view,
    heading('Audit trail'),
    form,
    h(
      'div',
      { class: 'card flush' },
      records.length === 0
        ? h('p', { class: 'muted empty', text: 'No audit records match.' })
        : table(
            'Audit records, newest first',
            ['When', 'Actor', 'Action', 'Run', 'Gate', 'Comment', 'Details'],
            records.map((r) =>
              h(
                'tr',
                {},
                h('td', {}, time(r.at)),
                h('td', {}, h('a', { href: `#/audit?actor=${enc(r.actor)}`, text: r.actor })),
                h('td', { text: r.action }),
                h('td', {}, h('a', { href: route('runs', r.run_id), class: 'mono', text: r.run_id })),
                h('td', {}, h('a', { href: gateRoute(r.run_id, r.gate), class: 'mono', text: r.gate })),
                h('td', { class: 'pre', text: r.comment || '' }),
                h('td', {}, r.diff ? jsonDetails('edit (JSON Patch)', r.diff) : r.data ? jsonDetails('details', r.data) : ''),
              ),
            ),
          ),
    ),
    auditPager,
  );
}

// ---------------------------------------------------------------------------------------
// Workflows

function duration(ms) {
  if (typeof ms !== 'number') return '—';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

function rate(r) {
  return typeof r === 'number' ? `${Math.round(r * 1000) / 10}%` : '—';
}

async function workflowsView(ctx) {
  const list = listOf(await api('/api/workflows'), 'workflows');
  const stats = await Promise.all(list.map((w) => api(`/api/workflows/${enc(w.id)}/stats`).catch(() => null)));
  if (ctx.stale()) return;
  fill(view,
    heading('Workflows'),
    h(
      'div',
      { class: 'card flush' },
      list.length === 0
        ? h('p', { class: 'muted empty', text: 'No workflows are registered with this server.' })
        : table(
            'Workflows with their newest 500 runs',
            ['Workflow', 'Runs', 'Success rate', 'p50', 'p95', 'Failed', 'Running'],
            list.map((w, i) => {
              const s = stats[i] || {};
              const by = s.by_status || {};
              return h(
                'tr',
                { 'data-workflow': w.id },
                h('td', {}, h('a', { href: route('workflows', w.id), text: w.id })),
                h('td', { text: s.runs ?? '—' }),
                h('td', { class: 'success-rate', text: rate(s.success_rate) }),
                h('td', { text: duration(s.p50_ms) }),
                h('td', { text: duration(s.p95_ms) }),
                h('td', {}, h('a', { href: `#/runs?workflow=${enc(w.id)}&status=failed`, text: by.failed ?? 0 })),
                h('td', { text: (by.running ?? 0) + (by.suspended ?? 0) }),
              );
            }),
          ),
    ),
  );
}

/** Form fields for an input schema: one per top-level property of an object schema whose type
 * is a string, number, integer or boolean; otherwise one JSON text area. */
function inputForm(schema) {
  const props = schema && schema.type === 'object' && schema.properties && typeof schema.properties === 'object' ? schema.properties : null;
  const simple = props && Object.values(props).every((p) => p && ['string', 'number', 'integer', 'boolean'].includes(p.type));
  if (!simple) {
    const area = h('textarea', { id: 'start-input', class: 'mono', rows: 6, 'aria-label': 'Input (JSON)' });
    area.value = 'null';
    return {
      fields: [h('label', { for: 'start-input', text: 'Input (JSON)' }), area],
      value: () => JSON.parse(area.value),
    };
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required : []);
  const inputs = Object.entries(props).map(([name, p]) => {
    const id = `start-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const attrs = { id, name, required: required.has(name) };
    let input;
    if (p.type === 'boolean') input = h('input', { ...attrs, type: 'checkbox' });
    else if (Array.isArray(p.enum)) input = h('select', attrs, p.enum.map((v) => h('option', { value: v, text: v })));
    else input = h('input', { ...attrs, type: p.type === 'string' ? 'text' : 'number', step: p.type === 'integer' ? '1' : 'any' });
    if (p.default !== undefined && p.type !== 'boolean') input.value = p.default;
    if (p.default === true && p.type === 'boolean') input.checked = true;
    return { name, p, input, field: h('div', { class: 'field' }, h('label', { for: id, text: `${name}${required.has(name) ? ' *' : ''}` }), input, p.description ? h('small', { class: 'muted', text: p.description }) : null) };
  });
  return {
    fields: inputs.map((i) => i.field),
    value: () => {
      const out = {};
      for (const { name, p, input } of inputs) {
        if (p.type === 'boolean') out[name] = input.checked;
        else if (input.value === '' && !required.has(name)) continue;
        else if (p.type === 'string') out[name] = input.value;
        else out[name] = Number(input.value);
      }
      return out;
    },
  };
}

async function workflowView(ctx) {
  const [id] = ctx.args;
  const [wf, stats] = await Promise.all([api(`/api/workflows/${enc(id)}`), api(`/api/workflows/${enc(id)}/stats`)]);
  if (ctx.stale()) return;
  const graph = wf.graph;
  const by = stats.by_status || {};
  const summary = h(
    'dl',
    { class: 'meta', id: 'workflow-stats' },
    h('dt', { text: 'Runs (newest 500)' }),
    h('dd', { text: stats.runs }),
    h('dt', { text: 'Success rate' }),
    h('dd', { class: 'success-rate', text: rate(stats.success_rate) }),
    h('dt', { text: 'Duration p50 / p95' }),
    h('dd', { text: `${duration(stats.p50_ms)} / ${duration(stats.p95_ms)}` }),
    h('dt', { text: 'By status' }),
    h('dd', {}, Object.entries(by).map(([s, n]) => [pill(s), ` ${n} `])),
  );
  const recent = (stats.recent || []).map(runRow);
  let start = null;
  if (canOperate()) {
    const form = inputForm(graph && graph.input_schema);
    const submit = h('button', { type: 'submit', class: 'primary', id: 'start-run', text: 'Start run' });
    start = h('form', { class: 'start-form', 'aria-label': `Start a run of ${id}` }, form.fields, h('div', { class: 'actions' }, submit));
    start.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let input;
      try {
        input = form.value();
      } catch (e) {
        toast(`The input is not JSON: ${e.message}`, 'error');
        return;
      }
      if (!window.confirm(`Start a run of ${id}?`)) return;
      submit.disabled = true;
      try {
        const res = await api(`/api/workflows/${enc(id)}/runs`, { method: 'POST', body: { input } });
        toast('Run started.');
        location.hash = route('runs', res.id);
      } catch (e) {
        toast(e.message, 'error');
        submit.disabled = false;
      }
    });
  }
  fill(view,
    h('div', { class: 'title-row' }, heading('Workflow ', h('span', { class: 'mono', text: id })), h('a', { href: `#/runs?workflow=${enc(id)}`, text: 'All its runs' })),
    section('Statistics', summary),
    h(
      'div',
      { class: 'columns' },
      section('Graph', graph ? h('div', { class: 'graph-scroll' }, renderGraph(graph, new Map(), null)) : h('p', { class: 'muted', text: 'No graph.' })),
      start ? section('Start a run', start) : null,
    ),
    section(
      'Recent runs',
      recent.length
        ? h('table', { class: 'runs' }, h('thead', {}, h('tr', {}, ['Run', 'Workflow', 'Status', 'Created', 'Updated'].map((t) => h('th', { scope: 'col', text: t })))), h('tbody', {}, recent))
        : h('p', { class: 'muted', text: 'No runs yet.' }),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Evals: durable eval runs (workflows `eval.<suite>`, their output the miyabi.eval/v1
// results), a per-metric trend across a suite's runs, and the A/B comparison of two runs
// (computed by the server: GET /api/evals/compare).

const EVAL_PAGE = 25;
// How many of a suite's newest runs the trend and the A/B pickers cover.
const EVAL_TREND_RUNS = 50;
const SVG_NS = 'http://www.w3.org/2000/svg';
const evalsPaging = { key: '', stack: [] };

/** An SVG element; attributes set with setAttribute, text with textContent. */
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function num(x, digits = 3) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function signed(x, digits = 3) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return '—';
  const s = x.toFixed(digits);
  return x > 0 ? `+${s}` : s;
}

/** A metric summary's 95% interval: the bootstrap one when the run has it, else the CLT one. */
function metricCi(m) {
  return (m && (m.ci_bootstrap || m.ci_clt)) || null;
}

function ciText(ci) {
  return ci ? `[${num(ci.low)}, ${num(ci.high)}]` : '';
}

/** The metric names of a list of eval runs, in the order they first appear. */
function metricNames(runs) {
  const names = [];
  for (const r of runs) for (const m of r.results?.metrics || []) if (!names.includes(m.name)) names.push(m.name);
  return names;
}

function metricOf(run, name) {
  return (run.results?.metrics || []).find((m) => m.name === name) || null;
}

function clamp01(x) {
  return Math.min(1, Math.max(0, x));
}

/**
 * The trend of one metric across runs (oldest first): the mean of each run as a point on a
 * line, its 95% interval as a bar and, joined across runs, a band. Scores are in [0, 1]; an
 * interval reaching outside is drawn clipped to the axis (the table gives the exact values).
 */
function trendChart(metric, runs) {
  const W = 560;
  const H = 200;
  const L = 44;
  const R = 16;
  const T = 14;
  const B = 34;
  const pts = runs
    .map((r) => ({ r, m: metricOf(r, metric) }))
    .filter((p) => p.m && typeof p.m.mean === 'number');
  const x = (i) => (pts.length <= 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (pts.length - 1));
  const y = (v) => T + (1 - clamp01(v)) * (H - T - B);
  const chart = svg('svg', {
    class: 'trend',
    viewBox: `0 0 ${W} ${H}`,
    width: W,
    height: H,
    role: 'img',
    'data-metric': metric,
    'aria-label': `${metric}: mean per run, oldest first, with 95% intervals`,
  });
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(
      svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      svg('text', { class: 'axis', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, v.toFixed(2)),
    );
  }
  const withCi = pts.map((p, i) => ({ i, ci: metricCi(p.m) })).filter((p) => p.ci);
  if (withCi.length >= 2) {
    const upper = withCi.map((p) => `${x(p.i)},${y(p.ci.high)}`);
    const lower = withCi.slice().reverse().map((p) => `${x(p.i)},${y(p.ci.low)}`);
    chart.append(svg('polygon', { class: 'band', points: [...upper, ...lower].join(' ') }));
  }
  for (const p of withCi) {
    chart.append(svg('line', { class: 'ci', x1: x(p.i), x2: x(p.i), y1: y(p.ci.low), y2: y(p.ci.high) }));
  }
  if (pts.length >= 2) {
    chart.append(svg('polyline', { class: 'mean-line', points: pts.map((p, i) => `${x(i)},${y(p.m.mean)}`).join(' ') }));
  }
  pts.forEach((p, i) => {
    const ci = metricCi(p.m);
    const when = new Date(p.r.created_at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
    chart.append(
      svg(
        'circle',
        { class: `pt${p.r.results?.passed === false ? ' gate-failed' : ''}`, cx: x(i), cy: y(p.m.mean), r: 4.5, 'data-run': p.r.id, 'data-mean': p.m.mean },
        svg('title', {}, `${p.r.id} (${when}): ${num(p.m.mean)}${ci ? ` ${ciText(ci)}` : ''}`),
      ),
    );
  });
  if (pts.length) {
    const label = (i, anchor) =>
      svg('text', { class: 'axis', x: x(i), y: H - 12, 'text-anchor': anchor }, new Date(pts[i].r.created_at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }));
    chart.append(label(0, pts.length > 1 ? 'start' : 'middle'));
    if (pts.length > 1) chart.append(label(pts.length - 1, 'end'));
  }
  return h('figure', { class: 'trend-fig' }, h('figcaption', {}, h('strong', { text: metric }), h('span', { class: 'muted', text: ` · ${pts.length} run${pts.length === 1 ? '' : 's'}` })), chart);
}

function gatesCell(results) {
  if (!results) return h('span', { class: 'muted', text: '—' });
  const gates = results.gates || [];
  if (gates.length === 0) return h('span', { class: 'muted', text: 'no gates' });
  const failed = gates.filter((g) => !g.passed);
  const title = gates
    .map((g) => `${g.passed ? '✓' : '✗'} ${g.metric} ${g.gate?.kind === 'min_pass_rate' ? 'pass rate' : 'mean'} ≥ ${g.gate?.min} (actual ${num(g.actual)})`)
    .join('\n');
  return h('span', { class: `pill ${results.passed ? 'gate-pass' : 'gate-fail'}`, title, text: results.passed ? 'passed' : `failed ${failed.length}/${gates.length}` });
}

function evalRow(r, metrics, previous) {
  const res = r.results;
  return h(
    'tr',
    { 'data-run': r.id },
    h('td', {}, h('a', { href: route('runs', r.id), class: 'mono', text: r.id })),
    h('td', {}, time(r.created_at)),
    h('td', { class: 'status' }, pill(r.status)),
    h('td', { class: 'cases', text: res ? `${res.cases}${res.epochs > 1 ? ` × ${res.epochs}` : ''}` : '—' }),
    metrics.map((name) => {
      const m = res ? metricOf(r, name) : null;
      const ci = metricCi(m);
      return h(
        'td',
        { class: 'metric', 'data-metric': name },
        h('span', { class: 'mean', text: m ? num(m.mean) : '—' }),
        ci ? h('span', { class: 'ci muted small', text: ` ${ciText(ci)}` }) : null,
      );
    }),
    h('td', { class: 'gates' }, gatesCell(res)),
    h('td', {}, res && previous ? h('a', { href: `#/evals/compare?${new URLSearchParams({ suite: r.suite, a: previous.id, b: r.id })}`, class: 'ab-link', text: 'A/B vs previous' }) : null),
  );
}

async function evalsView(ctx) {
  let suite = ctx.params.get('suite') || '';
  const cursor = ctx.params.get('cursor') || '';
  if (!suite) {
    // The suite with the newest run.
    const first = await api('/api/evals', { query: { limit: 1 } });
    if (ctx.stale()) return;
    const suites = first.suites || [];
    if (suites.length === 0) {
      fill(view, heading('Evals'), h('div', { class: 'card' }, h('p', { class: 'muted', text: 'No eval runs yet. Durable eval runs (miyabi eval run --durable, or DurableEval in Rust) on this server\'s database show here.' })));
      return;
    }
    suite = suites[0].name;
    history.replaceState(null, '', `#/evals?suite=${enc(suite)}`);
  }
  if (evalsPaging.key !== suite || !cursor) evalsPaging.stack = [];
  evalsPaging.key = suite;
  const [page, recent] = await Promise.all([
    api('/api/evals', { query: { suite, cursor, limit: EVAL_PAGE } }),
    api('/api/evals', { query: { suite, limit: EVAL_TREND_RUNS } }),
  ]);
  if (ctx.stale()) return;
  const suites = page.suites || [];
  const runs = page.runs || [];
  const trendRuns = (recent.runs || []).filter((r) => r.results).slice().reverse();
  const metrics = metricNames([...runs, ...trendRuns]);
  // A run's previous finished run (for the A/B link), among the newest runs.
  const finished = (recent.runs || []).filter((r) => r.results);
  const previousOf = (r) => {
    const i = finished.findIndex((x) => x.id === r.id);
    return i >= 0 ? finished[i + 1] || null : null;
  };
  const tabs = h(
    'nav',
    { class: 'filters', 'aria-label': 'Suites' },
    h('ul', {}, suites.map((s) => h('li', {}, h('a', { href: `#/evals?suite=${enc(s.name)}`, 'aria-current': s.name === suite ? 'true' : null, 'data-suite': s.name, text: `${s.name} (${s.runs})` })))),
  );
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const q = (c) => `#/evals?${new URLSearchParams(c ? { suite, cursor: c } : { suite })}`;
  if (cursor) {
    add(pager, h('a', { href: q(''), text: '⇤ Newest' }));
    if (evalsPaging.stack.length > 0) {
      const prev = evalsPaging.stack[evalsPaging.stack.length - 1];
      add(pager, h('a', { href: q(prev), text: '← Newer', on: { click: () => evalsPaging.stack.pop() } }));
    }
  }
  if (page.next_cursor) add(pager, h('a', { href: q(page.next_cursor), text: 'Older →', on: { click: () => evalsPaging.stack.push(cursor) } }));
  const tbl = h(
    'table',
    { class: 'evals' },
    h('caption', { class: 'sr-only', text: `Eval runs of ${suite}, newest first` }),
    h(
      'thead',
      {},
      h('tr', {}, ['Run', 'Created', 'Status', 'Cases', ...metrics.map((m) => `${m} (95% CI)`), 'Gates', ''].map((t) => h('th', { scope: 'col', text: t }))),
    ),
    h('tbody', {}, runs.map((r) => evalRow(r, metrics, previousOf(r)))),
  );
  const newest = finished[0];
  fill(view,
    h(
      'div',
      { class: 'title-row' },
      heading('Evals ', h('span', { class: 'mono', text: suite })),
      newest && finished[1]
        ? h('a', { href: `#/evals/compare?${new URLSearchParams({ suite, a: finished[1].id, b: newest.id })}`, text: 'A/B: newest vs previous' })
        : null,
    ),
    tabs,
    section(
      'Trend',
      trendRuns.length
        ? h('div', { class: 'trends' }, metrics.map((m) => trendChart(m, trendRuns)))
        : h('p', { class: 'muted', text: 'No finished run yet.' }),
      h('p', { class: 'muted small', text: `Mean per run (the newest ${EVAL_TREND_RUNS} finished runs, oldest on the left); bars and band: 95% intervals. A hollow point: the run failed a gate.` }),
    ),
    h('div', { class: 'card flush' }, tbl, runs.length ? null : h('p', { class: 'muted empty', text: 'No runs.' })),
    pager,
  );
  // Live: a run of this suite that starts or changes status redraws the page (once a burst
  // of changes has settled).
  const workflow = `eval.${suite}`;
  const known = new Map(runs.map((r) => [r.id, r.status]));
  const redraw = debounce(() => {
    if (!ctx.stale()) render();
  }, 300, 1000);
  ctx.onCleanup(
    live.subscribe('runs', (r) => {
      if (!r || r.workflow !== workflow || known.get(r.id) === r.status) return;
      if (!known.has(r.id) && cursor) return;
      redraw();
    }),
  );
}

/**
 * Every metric's difference B − A with its 95% interval on one axis around 0 (a forest
 * plot): a bar right of 0 is better, left worse.
 */
function deltaChart(cmp) {
  const rows = cmp.metrics || [];
  const W = 560;
  const L = 120;
  const R = 24;
  const ROW = 28;
  const T = 10;
  const H = T + rows.length * ROW + 26;
  let span = 0.05;
  for (const m of rows) {
    const ci = m.paired?.ci_bootstrap || m.paired?.ci_clt;
    for (const v of [m.paired?.mean_diff, ci?.low, ci?.high]) if (typeof v === 'number' && Number.isFinite(v)) span = Math.max(span, Math.abs(v));
  }
  span = Math.min(1, span * 1.1);
  const x = (v) => L + ((v + span) / (2 * span)) * (W - L - R);
  const chart = svg('svg', { class: 'deltas', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Difference B − A per metric with its 95% interval' });
  chart.append(svg('line', { class: 'zero', x1: x(0), x2: x(0), y1: T - 4, y2: T + rows.length * ROW }));
  for (const v of [-span, 0, span]) chart.append(svg('text', { class: 'axis', x: x(v), y: H - 8, 'text-anchor': 'middle' }, signed(v, 2)));
  rows.forEach((m, i) => {
    const cy = T + i * ROW + ROW / 2;
    const ci = m.paired?.ci_bootstrap || m.paired?.ci_clt;
    const g = svg('g', { class: `delta-row v-${m.verdict}`, 'data-metric': m.metric });
    g.append(svg('text', { class: 'label', x: L - 10, y: cy + 4, 'text-anchor': 'end' }, m.metric));
    if (ci) g.append(svg('line', { class: 'ci', x1: x(ci.low), x2: x(ci.high), y1: cy, y2: cy }));
    g.append(svg('circle', { class: 'pt', cx: x(m.paired.mean_diff), cy, r: 5 }, svg('title', {}, `${m.metric}: ${signed(m.paired.mean_diff)} ${ciText(ci)}`)));
    chart.append(g);
  });
  return chart;
}

const VERDICTS = { better: 'better', worse: 'worse', no_detectable_difference: 'no detectable difference' };

async function evalCompareView(ctx) {
  const suite = ctx.params.get('suite') || '';
  let a = ctx.params.get('a') || '';
  let b = ctx.params.get('b') || '';
  const list = suite ? await api('/api/evals', { query: { suite, limit: EVAL_TREND_RUNS } }) : { runs: [] };
  if (ctx.stale()) return;
  const finished = (list.runs || []).filter((r) => r.results);
  if (!b && finished[0]) b = finished[0].id;
  if (!a) {
    const i = finished.findIndex((r) => r.id === b);
    if (i >= 0 && finished[i + 1]) a = finished[i + 1].id;
  }
  const label = (r) => `${new Date(r.created_at).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' })} · ${r.id}`;
  const picker = (id, text, current) => {
    const options = finished.map((r) => h('option', { value: r.id, selected: r.id === current, text: label(r) }));
    if (current && !finished.some((r) => r.id === current)) options.unshift(h('option', { value: current, selected: true, text: current }));
    return h('div', { class: 'field' }, h('label', { for: id, text }), h('select', { id, name: id }, options));
  };
  const form = h(
    'form',
    { class: 'filters-form', 'aria-label': 'Runs to compare' },
    picker('ab-a', 'A (baseline)', a),
    picker('ab-b', 'B (candidate)', b),
    h('button', { type: 'submit', class: 'primary', text: 'Compare' }),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ suite, a: form.querySelector('#ab-a').value, b: form.querySelector('#ab-b').value });
    location.hash = `#/evals/compare?${p}`;
  });
  const top = [
    h('div', { class: 'title-row' }, heading('A/B ', h('span', { class: 'mono', text: suite || 'eval runs' })), suite ? h('a', { href: `#/evals?suite=${enc(suite)}`, text: 'All runs of the suite' }) : null),
    h('div', { class: 'card' }, form),
  ];
  if (!a || !b) {
    fill(view, ...top, h('p', { class: 'muted', text: 'Pick two finished runs of the suite.' }));
    return;
  }
  let cmp;
  try {
    cmp = await api('/api/evals/compare', { query: { a, b } });
  } catch (e) {
    if (ctx.stale()) return;
    if (e instanceof ApiError && e.status === 401) throw e;
    fill(view, ...top, errorBox(e));
    return;
  }
  if (ctx.stale()) return;
  const rows = (cmp.metrics || []).map((m) => {
    const p = m.paired || {};
    const ci = p.ci_bootstrap || p.ci_clt;
    const dir = p.mean_diff > 1e-12 ? 'up' : p.mean_diff < -1e-12 ? 'down' : 'flat';
    return h(
      'tr',
      { 'data-metric': m.metric },
      h('th', { scope: 'row', text: m.metric }),
      h('td', { class: 'mean-a', text: num(p.mean_a) }),
      h('td', { class: 'mean-b', text: num(p.mean_b) }),
      h('td', { class: `delta ${dir}`, text: signed(p.mean_diff) }),
      h('td', { class: 'ci', text: ciText(ci) || '—' }),
      h('td', { text: m.mcnemar ? num(m.mcnemar.p_value, 4) : '—' }),
      h('td', { text: `${p.wins ?? 0} / ${p.losses ?? 0} / ${p.ties ?? 0}` }),
      h('td', { class: 'verdict' }, h('span', { class: `pill v-${m.verdict}`, text: VERDICTS[m.verdict] || m.verdict })),
    );
  });
  // The cases that regressed most: every regressed (case, metric), the largest drop first.
  const regressed = [];
  for (const m of cmp.metrics || []) for (const r of m.regressed || []) regressed.push({ ...r, metric: m.metric, drop: r.b - r.a });
  regressed.sort((x, y) => x.drop - y.drop || String(x.case_id).localeCompare(String(y.case_id)));
  const worse = (cmp.metrics || []).some((m) => m.verdict === 'worse');
  const runLink = (r) => h('a', { href: route('runs', r.id), class: 'mono', text: r.id });
  fill(view,
    ...top,
    h(
      'p',
      { class: 'summary' },
      'B ', cmp.b_run ? runLink(cmp.b_run) : b, ' against A ', cmp.a_run ? runLink(cmp.a_run) : a,
      ` on ${cmp.cases_compared} paired case${cmp.cases_compared === 1 ? '' : 's'}: `,
      h('strong', { id: 'ab-verdict', class: worse ? 'worse' : 'ok', text: worse ? 'a significant regression' : 'no significant regression' }),
      cmp.only_in_a?.length || cmp.only_in_b?.length ? h('span', { class: 'muted', text: ` (${cmp.only_in_a.length} case(s) only in A, ${cmp.only_in_b.length} only in B)` }) : null,
    ),
    section(
      'Per metric',
      h('div', { class: 'deltas-box' }, deltaChart(cmp)),
      h(
        'table',
        { class: 'ab-metrics' },
        h('caption', { class: 'sr-only', text: 'Per metric: means, difference B − A with its 95% interval, McNemar, wins/losses/ties, verdict' }),
        h('thead', {}, h('tr', {}, ['Metric', 'A', 'B', 'Δ (B − A)', '95% CI of Δ', 'McNemar p', 'W / L / T', 'Verdict'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, rows),
      ),
    ),
    section(
      'Regressed cases',
      regressed.length
        ? h(
            'table',
            { class: 'regressed' },
            h('caption', { class: 'sr-only', text: 'Cases that scored lower in B, the largest drop first' }),
            h('thead', {}, h('tr', {}, ['Case', 'Metric', 'A', 'B', 'Δ'].map((t) => h('th', { scope: 'col', text: t })))),
            h(
              'tbody',
              {},
              regressed.slice(0, 20).map((r) =>
                h('tr', { 'data-case': r.case_id, 'data-metric': r.metric }, h('td', { class: 'mono', text: r.case_id }), h('td', { text: r.metric }), h('td', { text: num(r.a) }), h('td', { text: num(r.b) }), h('td', { class: 'delta down', text: signed(r.drop) })),
              ),
            ),
          )
        : h('p', { class: 'muted', text: 'No case scored lower in B.' }),
      regressed.length > 20 ? h('p', { class: 'muted small', text: `… and ${regressed.length - 20} more.` }) : null,
    ),
  );
}

render();
