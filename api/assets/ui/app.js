// causeway dashboard: hash-routed views over the causeway HTTP API.
//
// Every string that comes from the API is put into the page with
// textContent / createTextNode / setAttribute, never parsed as HTML.

const app = { tenant: null, csrf: null, events: null, eventsRetryMs: 5000, live: false, renderSeq: 0, pollTimer: 0, refreshTimer: 0 };
const els = {};

// ---------------------------------------------------------------- DOM helpers

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An HTML element: props are attributes, plus class, text, on (listeners), style (CSSOM). */
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'style') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return append(el, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** An SVG element: attributes only (presentation attributes are fine under the CSP). */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v != null && v !== false) el.setAttribute(k, String(v));
  return append(el, children);
}

/** http(s) URLs only: a signal's URL never becomes a javascript: link. */
function safeUrl(u) {
  let url = null;
  try { url = new URL(String(u)); } catch { return null; }
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
}

function externalLink(url, text, testid) {
  const href = safeUrl(url);
  if (!href) return h('span', {}, text);
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': testid }, text,
    h('span', { class: 'visually-hidden' }, ' (opens in a new tab)'));
}

function toast(message, kind = 'info') {
  Object.assign(els.toast, { textContent: message, className: `toast ${kind}`, hidden: false });
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { els.toast.hidden = true; }, 4000);
}

// ---------------------------------------------------------------- formatting

const pad2 = (n) => String(n).padStart(2, '0');
function toDate(v) {
  const d = v == null || v === '' ? null : new Date(v);
  return d && !Number.isNaN(d.getTime()) ? d : null;
}
function fmtTime(v) {
  const d = toDate(v);
  if (!d) return '—';
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} `
    + `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
const fmtClock = (ms) => { const d = new Date(ms); return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`; };
function fmtAgo(v) {
  const d = toDate(v);
  if (!d) return '';
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
function timeEl(v, withAgo = false) {
  const d = toDate(v);
  if (!d) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, fmtTime(d),
    withAgo ? h('span', { class: 'muted' }, ` (${fmtAgo(d)})`) : null);
}
const nsToMs = (ns) => Number(ns) / 1e6;
function fmtNum(n, digits = 1) {
  if (n == null || !Number.isFinite(Number(n))) return '—';
  n = Number(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return String(Number(n.toFixed(digits)));
}
function fmtMs(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '—';
  ms = Number(ms);
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${Number(ms.toFixed(2))} ms`;
}
const fmtPct = (r) => (Number.isFinite(r) ? `${Number((r * 100).toFixed(1))}%` : '—');
const fmtValue = (v, unit) => (unit === 'ms' ? fmtMs(v) : unit === 'ratio' ? fmtPct(v) : fmtNum(v, 2));
/** Commit shas are long; 12 characters identify one. */
const shortId = (id) => (/^[0-9a-f]{40}$/i.test(String(id)) ? String(id).slice(0, 12) : String(id ?? ''));

const CAUSES = {
  deploy: 'Deploy', commit: 'Code change', code_error: 'Code error',
  behaviour_change: 'Behaviour change', resource: 'Resource saturation',
  dependency: 'Dependency', traffic: 'Traffic change',
};
const EVIDENCE_TYPES = {
  event_pattern: 'Event pattern', error_origin: 'Error origin', self_time: 'Self time',
  anomaly: 'Anomaly', version_change: 'New version', new_instance: 'New instance', signal: 'Signal',
};
const SIGNAL_KINDS = {
  commit: 'Commit', deploy: 'Deploy', release: 'Release', pull_request: 'Pull request',
  ticket: 'Ticket', message: 'Message',
};
const causeLabel = (c) => CAUSES[c] || String(c ?? 'unknown');

function subjectText(s) {
  if (!s || typeof s !== 'object') return String(s ?? '');
  if (s.type === 'operation') return `${s.service} ${s.operation}${s.kind ? ` (${s.kind})` : ''}`;
  if (s.type === 'edge') return `${s.client} → ${s.server}`;
  return String(s.service ?? '');
}

const badge = (text, kind) => h('span', { class: `badge ${kind || ''}` }, text);
const severityBadge = (sev) => badge(sev || 'unknown', `sev-${sev}`);
const stateBadge = (st) => badge(st || 'unknown', `state-${st}`);
const serviceLink = (name) => h('a', { href: `#/services/${encodeURIComponent(name)}`, class: 'chip' }, name);

// ---------------------------------------------------------------- API

class AuthError extends Error {}
class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

async function request(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && app.csrf) headers['X-CSRF-Token'] = app.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(path, { method, headers, credentials: 'same-origin', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new HttpError(0, `cannot reach the server (${e.message})`);
  }
}

/** The API's error body is {"error": "..."}. */
async function errorOf(resp) {
  const j = await resp.json().catch(() => null);
  return new HttpError(resp.status, typeof j?.error === 'string' ? j.error : `HTTP ${resp.status}`);
}

/** A JSON API call; a 401 signs the user out. */
async function api(path, opts) {
  const resp = await request(path, opts);
  if (resp.status === 401) {
    signedOut('Your session has ended. Sign in again.');
    throw new AuthError('signed out');
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp.status === 204 ? null : resp.json();
}

/** Like api(), but other failures give null (for optional parts of a page). */
const soft = (p) => p.catch((e) => { if (e instanceof AuthError) throw e; return null; });

// ---------------------------------------------------------------- session

async function boot() {
  for (const id of ['signin', 'signin-form', 'signin-key', 'signin-error', 'signin-submit', 'view', 'boot',
    'nav', 'session', 'tenant', 'signout', 'live', 'toast']) {
    els[id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = document.getElementById(id);
  }
  els.signinForm.addEventListener('submit', onSignin);
  els.signout.addEventListener('click', onSignout);
  window.addEventListener('hashchange', () => route());
  let resp;
  try {
    resp = await request('/api/v1/session');
  } catch (e) {
    els.boot.textContent = `causeway is not reachable: ${e.message}`;
    return;
  }
  if (resp.ok) signedIn(await resp.json());
  else showSignin(resp.status === 401 ? '' : (await errorOf(resp)).message);
}

function showShell(signedIn) {
  els.boot.hidden = true;
  els.signin.hidden = signedIn;
  for (const el of [els.nav, els.session, els.view]) el.hidden = !signedIn;
}

function showSignin(message) {
  showShell(false);
  els.view.replaceChildren();
  els.signinError.hidden = !message;
  els.signinError.textContent = message || '';
  els.signinKey.focus();
}

function signedIn(s) {
  app.tenant = String(s.tenant ?? '');
  app.csrf = String(s.csrf_token ?? '');
  // Keyless (no API keys configured): there is nothing to sign out of.
  els.signout.hidden = Boolean(s.keyless);
  els.tenant.textContent = app.tenant;
  showShell(true);
  connectEvents();
  route();
}

function signedOut(message) {
  const was = app.tenant != null;
  app.tenant = null;
  app.csrf = null;
  app.renderSeq += 1;
  clearTimeout(app.pollTimer);
  clearTimeout(app.refreshTimer);
  closeEvents();
  if (was || els.signin.hidden) showSignin(message);
}

async function onSignin(ev) {
  ev.preventDefault();
  const key = els.signinKey.value.trim();
  if (!key) return showSignin('Enter an API key.');
  els.signinSubmit.disabled = true;
  els.signinError.hidden = true;
  try {
    const resp = await request('/api/v1/session', { method: 'POST', body: { api_key: key } });
    if (resp.ok) {
      els.signinKey.value = '';
      signedIn(await resp.json());
    } else {
      const e = await errorOf(resp);
      showSignin(resp.status === 401 ? 'That API key was not accepted.' : `Sign-in failed: ${e.message}`);
    }
  } catch (e) {
    showSignin(`Sign-in failed: ${e.message}`);
  } finally {
    els.signinSubmit.disabled = false;
  }
}

async function onSignout() {
  els.signout.disabled = true;
  try {
    await api('/api/v1/session', { method: 'DELETE' });
  } catch (e) {
    if (!(e instanceof AuthError)) toast(`Sign-out: ${e.message}`, 'error');
  } finally {
    els.signout.disabled = false;
  }
  signedOut('You are signed out.');
}

// ---------------------------------------------------------------- live updates

function setLive(on) {
  app.live = on;
  els.live.textContent = on ? 'live' : 'offline';
  els.live.classList.toggle('on', on);
  els.live.title = on ? 'Live updates are on' : 'Live updates are off; pages refresh periodically';
}

function closeEvents() {
  if (app.events) app.events.close();
  app.events = null;
  setLive(false);
}

function connectEvents() {
  closeEvents();
  if (typeof EventSource === 'undefined' || !app.tenant) return;
  const es = new EventSource('/api/v1/events'); // same-origin: the session cookie goes along
  app.events = es;
  const onEvent = (ev) => {
    let id = null;
    try { id = String(JSON.parse(ev.data).id); } catch { /* no id */ }
    liveUpdate(ev.type, id);
  };
  es.addEventListener('incident', onEvent);
  es.addEventListener('rca', onEvent);
  es.addEventListener('reload', () => scheduleRefresh(800)); // the server dropped events: re-read
  es.addEventListener('open', () => { setLive(true); app.eventsRetryMs = 5000; });
  es.addEventListener('error', () => {
    setLive(false);
    if (es.readyState !== EventSource.CLOSED || app.events !== es) return;
    // The browser gave up (e.g. a 401 or 404): check the session, retry later.
    app.events = null;
    const wait = app.eventsRetryMs;
    app.eventsRetryMs = Math.min(wait * 2, 120000);
    setTimeout(() => {
      // api() signs out on a 401; other failures retry later.
      if (app.tenant && !app.events) api('/api/v1/session').then(connectEvents, (e) => { if (!(e instanceof AuthError)) connectEvents(); });
    }, wait);
  });
}

function liveUpdate(type, id) {
  const r = parseRoute();
  const relevant = r.name === 'incidents' || r.name === 'graph'
    || (r.name === 'incident' && (type === 'rca' || id == null || id === r.id));
  if (relevant) scheduleRefresh(800);
}

function scheduleRefresh(ms) {
  clearTimeout(app.refreshTimer);
  app.refreshTimer = setTimeout(() => {
    const a = document.activeElement;
    // Do not pull the page from under someone typing.
    if (a && els.view.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) scheduleRefresh(3000);
    else route({ quiet: true });
  }, ms);
}

function schedulePoll(ms) {
  clearTimeout(app.pollTimer);
  app.pollTimer = setTimeout(() => scheduleRefresh(0), ms);
}

// ---------------------------------------------------------------- router

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [pathPart, query = ''] = raw.split('?');
  let parts;
  try { parts = pathPart.split('/').filter(Boolean).map(decodeURIComponent); } catch { return { name: 'notfound' }; }
  const params = new URLSearchParams(query);
  const [head, arg] = parts;
  if (!head || (head === 'incidents' && !arg)) return { name: 'incidents', params };
  if (head === 'incidents') return { name: 'incident', id: arg, params };
  if (head === 'traces' && arg) return { name: 'trace', id: arg, params };
  if (head === 'graph') return { name: 'graph', params };
  if (head === 'services' && !arg) return { name: 'services', params };
  if (head === 'services') return { name: 'service', service: arg, params };
  return { name: 'notfound', params };
}

const VIEWS = {
  incidents: viewIncidents, incident: viewIncident, trace: viewTrace, graph: viewGraph, services: viewServices, service: viewService,
  notfound: async () => page('Not found', h('p', {}, 'There is no such page. ',
    h('a', { href: '#/incidents' }, 'Go to the incidents.'))),
};
const NAV_OF = { incidents: 'incidents', incident: 'incidents', trace: 'incidents', graph: 'graph', services: 'services', service: 'services' };

async function route({ quiet = false } = {}) {
  if (!app.tenant) return;
  const r = parseRoute();
  const seq = ++app.renderSeq;
  clearTimeout(app.pollTimer);
  for (const a of els.nav.querySelectorAll('a')) {
    if (a.dataset.route === NAV_OF[r.name]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!quiet) els.view.replaceChildren(h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  const current = () => seq === app.renderSeq && app.tenant != null;
  let node;
  try {
    node = await VIEWS[r.name](r, current);
  } catch (e) {
    if (e instanceof AuthError || !current()) return;
    if (quiet && els.view.dataset.shown === location.hash) return; // keep it; the next refresh may succeed
    node = errorView(e, r);
  }
  if (!current()) return;
  const y = window.scrollY;
  els.view.replaceChildren(node);
  els.view.dataset.shown = location.hash;
  const title = node.querySelector('h1');
  document.title = title ? `${title.textContent} · causeway` : 'causeway';
  if (quiet) window.scrollTo(0, y);
  else {
    window.scrollTo(0, 0);
    if (title) { title.tabIndex = -1; title.focus({ preventScroll: true }); }
  }
}

const page = (title, ...children) => h('div', { class: 'page' }, h('h1', {}, title), ...children);

function errorView(e, r) {
  let hint = '';
  if (e.status === 404 && r.name === 'trace') hint = 'The trace is not in span storage: it may have aged out, or its spans were sampled away.';
  else if (e.status === 404) hint = 'It does not exist, or it belongs to another tenant.';
  else if (e.status === 503) hint = 'This part of causeway is not running or not ready yet.';
  else if (e.status === 429) hint = 'Too many requests from this address or tenant: wait a moment, then reload.';
  return page('Something went wrong',
    h('div', { class: 'error-box', role: 'alert', 'data-testid': 'error' },
      h('p', {}, e.message || String(e)), hint ? h('p', { class: 'muted' }, hint) : null),
    h('p', {}, h('button', { type: 'button', class: 'button secondary', on: { click: () => route() } }, 'Retry')));
}

/** A <dl> of [term, description] pairs (falsy pairs skipped). */
const defs = (props, pairs) => h('dl', props, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));

function table(headers, rows, props = {}) {
  return h('div', { class: 'table-wrap' }, h('table', props,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows)));
}

// ---------------------------------------------------------------- incidents

function reportsByIncident(reports) {
  const m = new Map();
  for (const r of reports?.reports || []) {
    const prev = m.get(String(r.incident));
    if (!prev || String(r.computed) > String(prev.computed)) m.set(String(r.incident), r);
  }
  return m;
}

async function viewIncidents() {
  const [inc, reports] = await Promise.all([api(`/api/v1/incidents${qs({ limit: 500 })}`), soft(api(`/api/v1/rca${qs({ limit: 1000 })}`))]);
  const rca = reportsByIncident(reports);
  const list = [...(inc.incidents || [])].sort((a, b) => (a.state === b.state ? 0 : a.state === 'open' ? -1 : 1)
    || String(b.onset).localeCompare(String(a.onset)));
  const open = list.filter((i) => i.state === 'open').length;
  if (!app.live) schedulePoll(15000);
  if (!list.length) {
    return page('Incidents', h('p', { class: 'empty', 'data-testid': 'incidents-empty' },
      'No incidents. causeway opens one when anomalies in connected services overlap; this page updates by itself.'));
  }
  const rows = list.map((i) => {
    const top = rca.get(String(i.id))?.hypotheses?.slice().sort((a, b) => a.rank - b.rank)[0];
    return h('tr', { 'data-testid': 'incident-row', 'data-rca': top ? 'yes' : 'no', class: `state-${i.state}` },
      h('td', {}, h('a', { href: `#/incidents/${encodeURIComponent(i.id)}`, 'data-testid': 'incident-link' }, `#${i.id}`)),
      h('td', {}, stateBadge(i.state)),
      h('td', {}, severityBadge(i.severity)),
      h('td', {}, h('span', { class: 'chips' }, (i.services || []).map(serviceLink))),
      h('td', {}, timeEl(i.onset, true)),
      h('td', {}, timeEl(i.resolved || i.updated)),
      h('td', {}, top
        ? [h('strong', {}, top.service), ` — ${causeLabel(top.cause)} `, h('span', { class: 'muted' }, fmtPct(top.confidence))]
        : h('span', { class: 'muted' }, i.state === 'open' ? 'analysing…' : '—')));
  });
  return page('Incidents',
    h('p', { class: 'muted' }, `${open} open, ${list.length - open} resolved${inc.next_cursor ? ` (the ${list.length} most recent)` : ''}.`),
    table(['Incident', 'Status', 'Severity', 'Services', 'Onset', 'Updated / resolved', 'Most likely cause'], rows,
      { 'data-testid': 'incident-list', class: 'incidents' }));
}

/** The RCA of an incident: by id (a report's id is its incident's), else by its `incident` field. */
async function findReport(incident) {
  try {
    const r = await api(`/api/v1/rca/${encodeURIComponent(incident.id)}`);
    if (String(r.incident) === String(incident.id)) return r;
  } catch (e) {
    if (e instanceof AuthError || e.status !== 404) throw e;
  }
  const onset = toDate(incident.onset);
  const from = onset ? onset.getTime() - 6 * 3600 * 1000 : null;
  const list = await api(`/api/v1/rca${qs({ from, limit: 1000 })}`);
  return reportsByIncident(list).get(String(incident.id)) || null;
}

async function viewIncident(r) {
  const inc = await api(`/api/v1/incidents/${encodeURIComponent(r.id)}`);
  const [report, rcaError] = await findReport(inc).then((x) => [x, null], (e) => {
    if (e instanceof AuthError) throw e;
    return [null, e];
  });
  if (!report) schedulePoll(rcaError ? 30000 : 5000);
  else if (!app.live && inc.state === 'open') schedulePoll(15000);
  const meta = defs({ class: 'meta' }, [
    ['Status', [stateBadge(inc.state), ' ', severityBadge(inc.severity)]], ['Onset', timeEl(inc.onset, true)],
    ['Updated', timeEl(inc.updated)], ['Resolved', inc.resolved ? timeEl(inc.resolved) : 'not yet'],
    ['Services', h('span', { class: 'chips' }, (inc.services || []).map(serviceLink))]]);
  return h('div', { class: 'page', 'data-testid': 'incident-detail' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/incidents' }, '← Incidents')),
    h('h1', {}, `Incident #${inc.id}`),
    meta,
    rcaSection(report, rcaError),
    anomaliesSection(inc.anomalies || []),
    timelineSection(report?.timeline?.length
      ? report.timeline.map((t) => ({ time: nsToMs(t.time_ns), what: t.what }))
      : (inc.timeline || []).map((t) => ({ time: t.time, what: t.event }))));
}

function rcaSection(report, err) {
  if (!report) {
    return h('section', { class: 'card rca pending', 'data-testid': 'rca-pending', 'aria-labelledby': 'rca-h' },
      h('h2', { id: 'rca-h' }, 'Root cause analysis'),
      h('p', {}, err ? `The analysis is not available: ${err.message}`
        : 'The analysis is not ready yet. This page updates by itself.'));
  }
  const hyps = [...(report.hypotheses || [])].sort((a, b) => a.rank - b.rank);
  const narratedBy = report.narrative_by && report.narrative_by !== 'template' ? `written by ${report.narrative_by}` : 'from templates';
  return h('section', { class: 'card rca', 'data-testid': 'rca', 'data-report-id': String(report.id), 'aria-labelledby': 'rca-h' },
    h('h2', { id: 'rca-h' }, 'Root cause analysis'),
    h('p', { class: 'summary', 'data-testid': 'rca-summary' }, report.summary || '(no summary)'),
    report.narrative ? h('p', { class: 'narrative', 'data-testid': 'rca-narrative' }, report.narrative) : null,
    h('p', { class: 'muted small' },
      `Narrative ${narratedBy}. Window `, timeEl(report.window_start), ' – ', timeEl(report.window_end),
      `, compared with ${fmtNum(report.reference_spans, 0)} reference spans over ${fmtNum(report.reference_seconds, 0)} s; computed `,
      timeEl(report.computed, true), '.'),
    report.impacted_services?.length
      ? h('p', {}, 'Impacted services: ', h('span', { class: 'chips' }, report.impacted_services.map(serviceLink)))
      : null,
    h('h3', {}, 'Hypotheses'),
    hyps.length
      ? h('ol', { class: 'hypotheses' }, hyps.map((hy) => hypothesisCard(report, hy)))
      : h('p', { class: 'muted' }, 'No candidate stood out.'),
    report.reports?.length ? [h('h3', {}, 'Tickets and messages about it'),
      h('ul', { class: 'evidence-list' }, report.reports.map((lr) => evidenceItem(lr.signal, 'linked-report')))] : null,
    report.next_steps?.length ? [h('h3', {}, 'Next steps'),
      h('ol', { class: 'next-steps', 'data-testid': 'next-steps' }, report.next_steps.map((s) => h('li', {}, s)))] : null);
}

function confidenceBar(c) {
  const pct = Math.max(0, Math.min(100, Math.round((Number(c) || 0) * 100)));
  return h('span', { class: 'confidence', 'data-testid': 'confidence' },
    h('span', { class: 'bar', role: 'meter', 'aria-label': 'Confidence', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct },
      h('span', { class: 'fill', style: { width: `${pct}%` } })),
    h('span', { class: 'pct' }, `${pct}%`));
}

function hypothesisCard(report, hy) {
  const given = (report.feedback || []).filter((f) => f.rank === hy.rank);
  const comment = h('input', { type: 'text', id: `fb-${hy.rank}`, maxlength: 2000, placeholder: 'optional', 'data-testid': 'feedback-comment' });
  const status = h('span', { class: 'muted', role: 'status', 'data-testid': 'feedback-status' });
  const send = async (confirmed, btn) => {
    btn.disabled = true;
    try {
      const body = { rank: hy.rank, confirmed, by: 'dashboard' };
      if (comment.value.trim()) body.comment = comment.value.trim();
      await api(`/api/v1/rca/${encodeURIComponent(report.id)}/feedback`, { method: 'POST', body });
      status.textContent = confirmed ? 'Confirmed. Thank you.' : 'Rejected. Thank you.';
      toast('Feedback recorded.');
      comment.blur();
      scheduleRefresh(300);
    } catch (e) {
      if (!(e instanceof AuthError)) status.textContent = `Not recorded: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  };
  const confirmBtn = h('button', { type: 'button', class: 'button small', 'data-testid': 'feedback-confirm', on: { click: (ev) => send(true, ev.currentTarget) } }, 'Confirm');
  const rejectBtn = h('button', { type: 'button', class: 'button small secondary', 'data-testid': 'feedback-reject', on: { click: (ev) => send(false, ev.currentTarget) } }, 'Reject');
  return h('li', { class: 'hypothesis', 'data-testid': 'hypothesis', 'data-rank': hy.rank },
    h('div', { class: 'hyp-head' },
      h('span', { class: 'rank', 'aria-label': `Rank ${hy.rank}` }, `#${hy.rank}`),
      serviceLink(hy.service),
      hy.operation ? h('code', { class: 'op' }, hy.operation) : null,
      badge(causeLabel(hy.cause), `cause-${hy.cause}`),
      confidenceBar(hy.confidence),
      h('span', { class: 'muted small', title: 'Localization score (z-score scale)' }, `score ${fmtNum(hy.score, 1)}`)),
    hy.change ? h('div', { class: 'change' }, h('strong', {}, 'Likely change: '),
      h('ul', { class: 'evidence-list' }, evidenceItem(hy.change, 'evidence'))) : null,
    hy.evidence?.length ? h('ul', { class: 'evidence-list' }, hy.evidence.map((e) => evidenceItem(e, 'evidence'))) : null,
    h('div', { class: 'feedback' },
      given.map((f) => h('p', { class: `given ${f.confirmed ? 'yes' : 'no'}` },
        `${f.confirmed ? '✓ Confirmed' : '✗ Rejected'} by ${f.by}`, f.comment ? `: “${f.comment}”` : '',
        h('span', { class: 'muted' }, ` (${fmtTime(nsToMs(f.at_ns))})`))),
      h('label', { for: `fb-${hy.rank}` }, 'Comment'), comment, confirmBtn, rejectBtn, status));
}

function describeEvidence(e) {
  const t = (ns) => fmtTime(nsToMs(ns));
  switch (e.type) {
    case 'event_pattern':
      return `${e.service} ${e.operation}: “${e.template}” ${e.observed > e.expected ? 'logged more often' : 'no longer logged as usual'}`
        + ` (${fmtNum(e.observed, 0)} times, ${fmtNum(e.expected, 1)} expected)`;
    case 'error_origin':
      return `${e.service} ${e.operation}: ${fmtNum(e.observed, 0)} errors originate here (${fmtNum(e.expected, 1)} expected)`;
    case 'self_time':
      return `${e.service} ${e.operation}: own processing time ${fmtMs(e.observed_ms)} (median), ${fmtMs(e.expected_ms)} before`
        + ` (${fmtNum(e.spans, 0)} spans)`;
    case 'anomaly': {
      // Latencies are kept in µs in anomalies.
      const lat = /^(latency|self_time)/.test(e.metric || '');
      const v = (x) => (lat ? fmtMs(Number(x) / 1000) : fmtNum(x, 2));
      return `${e.metric} of ${e.subject}: ${v(e.observed)} (expected ${v(e.expected)})`;
    }
    case 'version_change':
      return `${e.service} runs version ${e.version} since ${t(e.first_seen_ns)}`
        + (e.previous?.length ? ` (before: ${e.previous.join(', ')})` : '');
    case 'new_instance':
      return `${e.service} instance ${e.instance} first seen at ${t(e.first_seen_ns)} `
        + `(${e.previous} instance(s) before): a restart, rollout or scale-out`;
    case 'signal':
      return `${shortId(e.external_id)} from ${e.source} at ${t(e.time_ns)}: `;
    default:
      return String(e.type ?? 'evidence');
  }
}

function traceLinks(ids, max = 5) {
  if (!ids?.length) return null;
  return h('span', { class: 'traces' }, 'Example traces: ', ids.slice(0, max).map((id) =>
    h('a', { href: `#/traces/${encodeURIComponent(id)}`, class: 'trace-link', 'data-testid': 'trace-link', title: id, 'aria-label': `Trace ${id}` },
      String(id).slice(0, 12))), ids.length > max ? h('span', { class: 'muted' }, ` +${ids.length - max}`) : null);
}

function evidenceItem(e, testid) {
  if (!e || typeof e !== 'object') return null;
  const label = e.type === 'signal' ? (SIGNAL_KINDS[e.kind] || e.kind) : (EVIDENCE_TYPES[e.type] || e.type);
  return h('li', { class: `evidence ev-${e.type}`, 'data-testid': testid },
    badge(label, 'ev'), ' ', describeEvidence(e),
    e.type === 'signal' ? externalLink(e.url, e.title || e.external_id || 'link', 'signal-link') : null,
    e.type === 'signal' && e.matched?.length ? h('span', { class: 'muted small' }, ` (matched on ${e.matched.join(', ')})`) : null,
    e.score != null && e.type !== 'signal' ? h('span', { class: 'muted small' }, ` z=${fmtNum(e.score, 1)}`) : null,
    h('div', {}, traceLinks(e.trace_ids)));
}

function anomaliesSection(list) {
  const rows = list.map((a) => h('tr', { 'data-testid': 'anomaly-row' },
    h('td', {}, h('code', {}, a.metric)), h('td', {}, subjectText(a.subject)),
    h('td', { class: 'num' }, fmtValue(a.observed, a.unit)), h('td', { class: 'num' }, fmtValue(a.expected, a.unit)),
    h('td', { class: 'num' }, fmtNum(a.score, 1)), h('td', {}, severityBadge(a.severity)), h('td', {}, timeEl(a.onset)),
    h('td', {}, a.resolved ? timeEl(a.resolved) : badge('ongoing', 'state-open')), h('td', {}, traceLinks(a.example_trace_ids, 3))));
  return h('section', { class: 'card', 'aria-labelledby': 'anom-h' }, h('h2', { id: 'anom-h' }, 'Anomalies'),
    rows.length
      ? table(['Metric', 'Subject', 'Observed', 'Expected', 'Score', 'Severity', 'Onset', 'Resolved', 'Traces'], rows)
      : h('p', { class: 'muted' }, 'None recorded.'));
}

function timelineSection(entries) {
  if (!entries.length) return null;
  return h('section', { class: 'card', 'aria-labelledby': 'tl-h' }, h('h2', { id: 'tl-h' }, 'Timeline'),
    h('ol', { class: 'timeline', 'data-testid': 'timeline' }, entries.map((t) => h('li', {}, timeEl(t.time), ' ', h('span', {}, t.what)))));
}

// ---------------------------------------------------------------- trace waterfall

async function viewTrace(r) {
  if (!/^[0-9a-f]{32}$/i.test(r.id)) throw new HttpError(404, 'A trace id is 32 hexadecimal characters.');
  const t = await api(`/api/v1/traces/${encodeURIComponent(r.id.toLowerCase())}`);
  const spans = (t.spans || []).map((sp) => {
    let start = 0n;
    try { start = BigInt(sp.start_unix_nano || '0'); } catch { /* keep 0 */ }
    return { ...sp, start, dur: Math.max(0, Number(sp.duration_ms) || 0), children: [] };
  });
  if (!spans.length) throw new HttpError(404, 'The trace has no spans.');
  const t0 = spans.reduce((m, s) => (s.start < m ? s.start : m), spans[0].start);
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const roots = [];
  for (const s of spans) {
    s.off = Number(s.start - t0) / 1e6;
    const parent = s.parent_span_id && s.parent_span_id !== s.span_id ? byId.get(s.parent_span_id) : null;
    (parent ? parent.children : roots).push(s);
  }
  const byStart = (a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  const ordered = [];
  const seen = new Set();
  const stack = roots.sort(byStart).reverse().map((s) => [s, 0]);
  while (stack.length) {
    const [s, depth] = stack.pop();
    if (seen.has(s)) continue;
    seen.add(s);
    ordered.push([s, depth]);
    for (const c of s.children.sort(byStart).slice().reverse()) stack.push([c, depth + 1]);
  }
  for (const s of spans) if (!seen.has(s)) ordered.push([s, 0]); // cycles: never lose a span
  const total = Math.max(...spans.map((s) => s.off + s.dur), 0.001);
  const services = [...new Set(ordered.map(([s]) => s.service))];
  const color = (svc) => `c${services.indexOf(svc) % 8}`;
  const errors = spans.filter((s) => s.status === 'error').length;

  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { class: 'tick', style: { left: `${f * 100}%` } }, fmtMs(total * f)));
  const rows = ordered.map(([s, depth]) => {
    const detail = defs({ class: 'span-detail', hidden: true }, [
      ['Service', s.service], ['Operation', s.name], ['Kind', s.kind || 'unspecified'],
      ['Status', `${s.status || 'unset'}${s.status_message ? `: ${s.status_message}` : ''}`],
      ['Start', `+${fmtMs(s.off)}`], ['Duration', fmtMs(s.dur)], ['Span id', h('code', {}, s.span_id)],
      s.parent_span_id && ['Parent', h('code', {}, s.parent_span_id)]]);
    const label = h('button', {
      type: 'button', class: 'span-label', 'aria-expanded': 'false', style: { paddingLeft: `${0.5 + Math.min(depth, 20) * 0.9}rem` },
    }, h('span', { class: `dot ${color(s.service)}` }), h('span', { class: 'svc' }, s.service), ' ', h('span', { class: 'name' }, s.name));
    label.addEventListener('click', () => label.setAttribute('aria-expanded', String(!(detail.hidden = !detail.hidden))));
    const left = (s.off / total) * 100;
    const bar = h('span', {
      class: `span-bar ${color(s.service)}${s.status === 'error' ? ' error' : ''}`, 'data-testid': 'span-bar',
      title: `${s.service} ${s.name}: ${fmtMs(s.dur)}${s.status === 'error' ? ' (error)' : ''}`,
      style: { left: `${left}%`, width: `${Math.max((s.dur / total) * 100, 0.2)}%` },
    });
    const dur = h('span', { class: 'span-dur', style: left > 70 ? { right: `${100 - left + 0.5}%` } : { left: `calc(${left + (s.dur / total) * 100}% + 4px)` } },
      fmtMs(s.dur), s.status === 'error' ? ' ⚠' : '');
    return h('li', { class: `span-row${s.status === 'error' ? ' is-error' : ''}`, 'data-testid': 'span-row' },
      label, h('div', { class: 'span-track' }, bar, dur), detail);
  });
  return h('div', { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/incidents' }, '← Incidents'), ' · ',
      h('a', { href: '#', on: { click: (ev) => { ev.preventDefault(); history.back(); } } }, 'Back')),
    h('h1', {}, 'Trace ', h('code', {}, t.trace_id || r.id)),
    h('p', { class: 'muted' }, `${spans.length} spans across ${services.length} services, ${fmtMs(total)} end to end`,
      errors ? [', ', h('strong', { class: 'err-text' }, `${errors} in error`)] : '', '.'),
    h('p', { class: 'legend' }, services.map((svc) => h('span', { class: 'legend-item' }, h('span', { class: `dot ${color(svc)}` }), svc)),
      h('span', { class: 'legend-item' }, h('span', { class: 'dot error' }), 'error')),
    h('div', { class: 'waterfall', 'data-testid': 'waterfall' },
      h('div', { class: 'wf-axis', 'aria-hidden': 'true' }, h('span', { class: 'span-label' }, 'Service / operation'), h('div', { class: 'span-track' }, ticks)),
      h('ol', { class: 'wf-rows', 'aria-label': 'Spans' }, rows)));
}

// ---------------------------------------------------------------- service graph

const RANGES = { '15m': 15, '1h': 60, '6h': 360, '24h': 1440 };

function rangeSelect(current, onChange) {
  const sel = h('select', { id: 'range', 'data-testid': 'range-select' },
    Object.keys(RANGES).map((k) => h('option', { value: k, selected: k === current }, `last ${k}`)));
  sel.addEventListener('change', () => onChange(sel.value));
  return [h('label', { for: 'range' }, 'Range '), sel];
}

const setHashParam = (base, params) => { location.hash = `${base}${qs(params)}`; };

async function viewGraph(r) {
  const range = RANGES[r.params.get('range')] ? r.params.get('range') : '15m';
  const [to, from] = [Date.now(), Date.now() - RANGES[range] * 60000];
  const [g, inc, reports] = await Promise.all([
    api(`/api/v1/graph${qs({ from, to })}`), soft(api(`/api/v1/incidents${qs({ limit: 500 })}`)), soft(api(`/api/v1/rca${qs({ limit: 1000 })}`)),
  ]);
  const [affected, culprits] = [new Set(), new Set()];
  const rca = reportsByIncident(reports);
  for (const i of inc?.incidents || []) {
    if (i.state !== 'open') continue;
    for (const s of i.services || []) affected.add(s);
    const top = rca.get(String(i.id))?.hypotheses?.find((hy) => hy.rank === 1);
    if (top) culprits.add(top.service);
  }
  // One edge per client → server pair.
  const pairs = new Map();
  for (const e of g.edges || []) {
    if (!e.client || !e.server) continue;
    const k = `${e.client}\u0000${e.server}`;
    const p = pairs.get(k) || { client: e.client, server: e.server, calls: 0, errors: 0, p50: 0, p99: 0, types: new Set() };
    Object.assign(p, { calls: p.calls + (e.calls || 0), errors: p.errors + (e.errors || 0) });
    Object.assign(p, { p50: Math.max(p.p50, e.p50_ms || 0), p99: Math.max(p.p99, e.p99_ms || 0) });
    if (e.connection_type) p.types.add(e.connection_type);
    pairs.set(k, p);
  }
  const edges = [...pairs.values()];
  const controls = h('p', { class: 'controls' }, rangeSelect(range, (v) => setHashParam('#/graph', { range: v })),
    h('span', { class: 'legend' }, [['culprit', 'likely culprit (open incident)'], ['affected', 'affected (open incident)'],
      ['virtual', 'not instrumented']].map(([k, text]) => h('span', { class: 'legend-item' }, h('span', { class: `swatch ${k}` }), text))));
  if (!app.live) schedulePoll(30000);
  if (!edges.length) {
    return page('Service graph', controls, h('p', { class: 'empty', 'data-testid': 'graph-empty' },
      'No calls between services in this range. Try a longer range.'));
  }
  const virtual = new Set(edges.filter((e) => [...e.types].some((t) => t !== '')).map((e) => e.server));
  const clients = new Set(edges.map((e) => e.client));
  for (const v of [...virtual]) if (clients.has(v)) virtual.delete(v);
  const rows = [...edges].sort((a, b) => b.calls - a.calls).map((e) => h('tr', {},
    h('td', {}, e.client), h('td', {}, e.server), h('td', {}, [...e.types].join(', ') || 'direct'),
    h('td', { class: 'num' }, fmtNum(e.calls, 0)), h('td', { class: `num${e.errors ? ' err-text' : ''}` }, fmtNum(e.errors, 0)),
    h('td', { class: 'num' }, fmtMs(e.p50)), h('td', { class: 'num' }, fmtMs(e.p99))));
  return page('Service graph', controls,
    h('div', { class: 'card graph-card' }, graphSvg(edges, { affected, culprits, virtual })),
    h('h2', {}, 'Edges'),
    table(['Client', 'Server', 'Connection', 'Calls', 'Errors', 'p50', 'p99'], rows));
}

/** Columns of a layered layout: cycles broken by a DFS from the least-called services, then longest path. */
function layoutLevels(nodes, edges) {
  const calledBy = new Map(nodes.map((n) => [n, 0]));
  const out = new Map(nodes.map((n) => [n, []]));
  for (const e of edges) {
    if (e.client === e.server) continue;
    out.get(e.client).push(e);
    calledBy.set(e.server, calledBy.get(e.server) + e.calls + 1);
  }
  const state = new Map();
  const back = new Set();
  const visit = (n) => {
    state.set(n, 1);
    for (const e of out.get(n).sort((a, b) => b.calls - a.calls)) {
      if (state.get(e.server) === 1) back.add(e);
      else if (!state.has(e.server)) visit(e.server);
    }
    state.set(n, 2);
  };
  for (const n of [...nodes].sort((a, b) => calledBy.get(a) - calledBy.get(b) || a.localeCompare(b))) if (!state.has(n)) visit(n);
  const dag = edges.filter((e) => e.client !== e.server && !back.has(e));
  const level = new Map(nodes.map((n) => [n, 0]));
  for (let changed = true, i = 0; changed && i <= nodes.length; i++) {
    changed = false;
    for (const e of dag) {
      if (level.get(e.client) + 1 > level.get(e.server)) { level.set(e.server, level.get(e.client) + 1); changed = true; }
    }
  }
  const columns = [];
  for (const node of nodes) (columns[level.get(node)] ||= []).push(node);
  // Order each column by the mean position of its callers (one barycentre sweep).
  const pos = new Map();
  columns.forEach((col, ci) => {
    if (ci > 0) {
      const bary = (node) => {
        const ps = edges.filter((e) => e.server === node && pos.has(e.client)).map((e) => pos.get(e.client));
        return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : Infinity;
      };
      col.sort((a, b) => bary(a) - bary(b) || a.localeCompare(b));
    }
    col.forEach((node, i) => pos.set(node, i));
  });
  return columns;
}

function graphSvg(edges, marks) {
  const nodes = [...new Set(edges.flatMap((e) => [e.client, e.server]))].sort();
  const columns = layoutLevels(nodes, edges);
  const NW = 160; const NH = 38; const CW = 310; const RH = 90; const PAD = 40;
  const maxRows = Math.max(...columns.map((c) => c.length));
  const W = PAD * 2 + (columns.length - 1) * CW + NW;
  const H = PAD * 2 + (maxRows - 1) * RH + NH + 40;
  const at = new Map();
  columns.forEach((col, ci) => col.forEach((node, ri) => {
    at.set(node, { x: PAD + ci * CW, y: PAD + 20 + ri * RH + ((maxRows - col.length) * RH) / 2, col: ci });
  }));
  const bottom = Math.max(...[...at.values()].map((p) => p.y + NH));
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'graph', role: 'group', 'data-testid': 'graph-svg',
    'aria-label': `Service graph: ${nodes.length} services, ${edges.length} edges`,
  }, svg('defs', {},
    ['ok', 'warn', 'bad'].map((k) => svg('marker', {
      id: `arrow-${k}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto',
    }, svg('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrow ${k}` })))));
  const [edgeLayer, labelLayer] = [svg('g', { class: 'edges' }), svg('g', { class: 'edge-labels' })];
  for (const e of edges) {
    const a = at.get(e.client); const b = at.get(e.server);
    const k = e.errors > 0.05 * e.calls ? 'bad' : e.errors > 0 ? 'warn' : 'ok';
    let d; let lx; let ly;
    if (e.client === e.server) {
      const x = a.x + NW - 30; const y = a.y;
      d = `M${x},${y} C${x - 10},${y - 40} ${x + 40},${y - 40} ${x + 30},${y}`;
      lx = x + 15; ly = y - 34;
    } else if (b.col > a.col) {
      const x1 = a.x + NW; const y1 = a.y + NH / 2; const x2 = b.x; const y2 = b.y + NH / 2;
      const dx = (x2 - x1) / 2;
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = (y1 + y2) / 2 - 6;
    } else {
      // Back or same-column edge: arc below the nodes.
      const x1 = a.x + NW / 2 + 10; const y1 = a.y + NH; const x2 = b.x + NW / 2 - 10; const y2 = b.y + NH;
      const dip = bottom + 28; // below every node, so it crosses none
      d = `M${x1},${y1} C${x1},${dip} ${x2},${dip} ${x2},${y2}`;
      lx = (x1 + x2) / 2; ly = dip - 8;
    }
    const width = Math.min(1 + Math.log10(e.calls + 1), 6);
    const text = `${fmtNum(e.calls, 0)} calls${e.errors ? ` · ${fmtNum(e.errors, 0)} err` : ''}`;
    edgeLayer.append(svg('g', { class: `edge ${k}`, 'data-testid': 'graph-edge', 'data-client': e.client, 'data-server': e.server },
      svg('title', {}, `${e.client} → ${e.server}: ${fmtNum(e.calls, 0)} calls, ${fmtNum(e.errors, 0)} errors, p50 ${fmtMs(e.p50)}, p99 ${fmtMs(e.p99)}`),
      svg('path', { d, 'stroke-width': width, 'marker-end': `url(#arrow-${k})`, fill: 'none' })));
    labelLayer.append(svg('text', { x: lx, y: ly, 'text-anchor': 'middle', class: `edge-label ${k}` }, text));
  }
  const nodeLayer = svg('g', { class: 'nodes' });
  for (const node of nodes) {
    const p = at.get(node);
    const cls = ['node', marks.culprits.has(node) ? 'culprit' : marks.affected.has(node) ? 'affected' : '', marks.virtual.has(node) ? 'virtual' : '']
      .filter(Boolean).join(' ');
    const label = node.length > 22 ? `${node.slice(0, 21)}…` : node;
    nodeLayer.append(svg('a', { href: `#/services/${encodeURIComponent(node)}`, class: cls, 'data-testid': 'graph-node', 'aria-label': `${node}: open its RED metrics` },
      svg('title', {}, node), svg('rect', { x: p.x, y: p.y, width: NW, height: NH, rx: 8 }),
      svg('text', { x: p.x + NW / 2, y: p.y + NH / 2 + 5, 'text-anchor': 'middle' }, label)));
  }
  root.append(edgeLayer, nodeLayer, labelLayer);
  return root;
}

// ---------------------------------------------------------------- services and RED

async function viewServices() {
  const { services = [] } = await api('/api/v1/services');
  const list = [...services].sort((a, b) => (b.spans || 0) - (a.spans || 0));
  const rows = list.map((s) => h('tr', { 'data-testid': 'service-row' },
    h('td', {}, h('a', { href: `#/services/${encodeURIComponent(s.name)}`, 'data-testid': 'service-link' }, s.name)),
    h('td', { class: 'num' }, fmtNum(s.spans, 0)), h('td', { class: 'num' }, fmtNum(s.errors, 0)),
    h('td', { class: 'num' }, s.spans ? fmtPct(s.errors / s.spans) : '—'), h('td', {}, timeEl(s.first_seen)), h('td', {}, timeEl(s.last_seen, true))));
  return page('Services', list.length
    ? table(['Service', 'Spans', 'Errors', 'Error rate', 'First seen', 'Last seen'], rows, { 'data-testid': 'service-list' })
    : h('p', { class: 'empty' }, 'No spans received yet.'));
}

/** A round axis maximum above v, and how many gridline steps divide it roundly. */
function niceScale(v) {
  if (!(v > 0)) return { max: 1, ticks: 4 };
  const e = 10 ** Math.floor(Math.log10(v));
  const f = [1, 2, 2.5, 5, 10].find((m) => v / e <= m + 1e-9);
  return { max: f * e, ticks: f === 1 || f === 2 ? 4 : 5 };
}

/** An SVG line chart of series [{name, cls, points: [{t (ms), v (number|null)}]}]. */
function lineChart({ title, fmt, from, to, series }) {
  const W = 640; const H = 200; const L = 64; const R = 14; const T = 12; const B = 26;
  const pw = W - L - R; const ph = H - T - B;
  const values = series.flatMap((s) => s.points.map((p) => p.v)).filter((v) => v != null);
  const { max: yMax, ticks } = niceScale(Math.max(0, ...values));
  const x = (t) => L + ((t - from) / Math.max(to - from, 1)) * pw;
  const y = (v) => T + ph - (v / yMax) * ph;
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}; maximum ${fmt(Math.max(0, ...values))}` });
  for (let i = 0; i <= ticks; i++) {
    const v = (yMax * i) / ticks;
    root.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = from + ((to - from) * i) / 4;
    root.append(svg('text', { x: x(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis' }, fmtClock(t)));
  }
  for (const s of series) {
    let d = '';
    let pen = false; // a gap (null) lifts the pen
    for (const p of s.points) {
      if (p.v != null) d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)} `;
      pen = p.v != null;
    }
    const g = svg('g', { class: `series ${s.cls}` }, svg('path', { d: d.trim() || 'M0,0', fill: 'none' }));
    for (const p of s.points.length <= 120 ? s.points : []) {
      if (p.v != null) g.append(svg('circle', { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 }, svg('title', {}, `${s.name} at ${fmtClock(p.t)}: ${fmt(p.v)}`)));
    }
    root.append(g);
  }
  return h('figure', { class: 'card chart-card', 'data-testid': 'red-chart' },
    h('figcaption', {}, h('span', { class: 'chart-title' }, title),
      series.map((s) => h('span', { class: 'legend-item' }, h('span', { class: `swatch line ${s.cls}` }), s.name))), root);
}

async function viewService(r) {
  const service = r.service;
  const range = RANGES[r.params.get('range')] ? r.params.get('range') : '1h';
  const mins = RANGES[range];
  const stepS = mins <= 60 ? 60 : mins <= 360 ? 300 : 900;
  const [to, from] = [Date.now(), Date.now() - mins * 60000];
  const red = await api(`/api/v1/red${qs({ service, from, to, step: `${stepS}s` })}`);
  const series = (red.series || []).filter((s) => s.service === service);
  const base = `#/services/${encodeURIComponent(service)}`;
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/services' }, '← Services'), ' · ', h('a', { href: '#/graph' }, 'Service graph'));
  if (!app.live) schedulePoll(60000);
  if (!series.length) {
    return h('div', { class: 'page' }, crumbs, h('h1', {}, service),
      h('p', { class: 'controls' }, rangeSelect(range, (v) => setHashParam(base, { range: v }))),
      h('p', { class: 'empty', 'data-testid': 'red-empty' }, 'No spans of this service in the range (it may be an uninstrumented dependency).'));
  }
  const kindRank = (k) => (k === 'server' ? 0 : k === 'consumer' ? 1 : 2);
  const ops = [...series].sort((a, b) => kindRank(a.kind) - kindRank(b.kind) || b.calls - a.calls);
  const [wantOp, wantKind] = [r.params.get('op'), r.params.get('kind')];
  const sel = ops.find((s) => s.operation === wantOp && (!wantKind || s.kind === wantKind)) || ops[0];
  const keyOf = (s) => `${s.kind}\u0000${s.operation}`;
  const select = h('select', { id: 'op', 'data-testid': 'operation-select' },
    ops.map((s) => h('option', { value: keyOf(s), selected: s === sel }, `${s.operation} (${s.kind}, ${fmtNum(s.calls, 0)} calls)`)));
  select.addEventListener('change', () => {
    const s = ops.find((o) => keyOf(o) === select.value);
    if (s) setHashParam(base, { op: s.operation, kind: s.kind, range });
  });

  // A regular grid of steps; missing steps had no calls.
  const stepMs = stepS * 1000;
  const byT = new Map((sel.points || []).map((p) => [toDate(p.t)?.getTime(), p]));
  const anchor = (sel.points || []).length ? toDate(sel.points[0].t).getTime() : Math.floor(from / stepMs) * stepMs;
  const grid = [];
  for (let t = anchor - Math.ceil((anchor - from) / stepMs) * stepMs; t < to; t += stepMs) grid.push(t);
  const pt = (t) => byT.get(t);
  const rate = grid.map((t) => ({ t, v: (pt(t)?.calls || 0) / stepS }));
  const errs = grid.map((t) => ({ t, v: (pt(t)?.errors || 0) / stepS }));
  const lat = (f) => grid.map((t) => ({ t, v: pt(t)?.calls ? pt(t)[f] : null }));
  const perS = (v) => `${fmtNum(v, v < 1 ? 3 : 1)}/s`;
  const [xFrom, xTo] = [grid[0] ?? from, to];

  const tiles = h('div', { class: 'tiles' },
    [['Calls', fmtNum(sel.calls, 0)], ['Rate', perS(sel.calls / (mins * 60))], ['Errors', fmtNum(sel.errors, 0)],
      ['Error rate', sel.calls ? fmtPct(sel.errors / sel.calls) : '—'], ['p50', fmtMs(sel.p50_ms)], ['p99', fmtMs(sel.p99_ms)]]
      .map(([k, v]) => h('div', { class: 'tile' }, h('span', { class: 'tile-k' }, k), h('span', { class: 'tile-v' }, v))));
  const opRows = ops.map((s) => h('tr', { class: s === sel ? 'selected' : '' },
    h('td', {}, h('a', { href: `${base}${qs({ op: s.operation, kind: s.kind, range })}` }, s.operation)),
    h('td', {}, s.kind), h('td', { class: 'num' }, fmtNum(s.calls, 0)),
    h('td', { class: `num${s.errors ? ' err-text' : ''}` }, fmtNum(s.errors, 0)),
    h('td', { class: 'num' }, fmtMs(s.p50_ms)), h('td', { class: 'num' }, fmtMs(s.p99_ms)),
    h('td', { class: 'num' }, s.self_p50_ms != null ? fmtMs(s.self_p50_ms) : '—')));
  return h('div', { class: 'page' }, crumbs,
    h('h1', {}, service),
    h('p', { class: 'controls' }, h('label', { for: 'op' }, 'Operation '), select, ' ',
      rangeSelect(range, (v) => setHashParam(base, { op: sel.operation, kind: sel.kind, range: v })),
      h('span', { class: 'muted small' }, ` ${stepS / 60} min steps`)),
    tiles,
    h('div', { class: 'charts' },
      lineChart({ title: 'Rate', fmt: perS, from: xFrom, to: xTo, series: [{ name: 'calls/s', cls: 's-rate', points: rate }] }),
      lineChart({ title: 'Errors', fmt: perS, from: xFrom, to: xTo, series: [{ name: 'errors/s', cls: 's-err', points: errs }] }),
      lineChart({ title: 'Latency', fmt: fmtMs, from: xFrom, to: xTo,
        series: [{ name: 'p50', cls: 's-p50', points: lat('p50_ms') }, { name: 'p99', cls: 's-p99', points: lat('p99_ms') }] })),
    h('h2', {}, 'Operations'),
    table(['Operation', 'Kind', 'Calls', 'Errors', 'p50', 'p99', 'Self p50'], opRows));
}

boot();
