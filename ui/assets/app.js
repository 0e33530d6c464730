// flowpack ui — the browser side of `flowpack ui` (read-only).
//
// This file owns everything the page does: hash routing (#/, #/runs/F/R,
// #/runs/F/R/tasks/S/T, #/packages/D), the fetches from /api/..., and the views:
// the runs list, a run (failing panel, DAG, timeline, tasks), a task (attempts, log,
// artifacts) and a package. No libraries, no build step, nothing from the network.
//
// Every text from the store is untrusted: it reaches the DOM only through
// textContent, createTextNode and setAttribute (see el()), never through innerHTML.
'use strict';

(() => {
  // ------------------------------------------------------------------ constants
  const RUN_STATUSES = ['running', 'succeeded', 'failed'];
  const TASK_STATUSES = ['running', 'succeeded', 'failed', 'timed_out', 'terminated', 'reused', 'skipped', 'lost'];
  const FAILED = new Set(['failed', 'timed_out', 'lost']);
  const PHASES = ['claim', 'fetch', 'reuse', 'inputs', 'run', 'outputs', 'commit', 'report'];
  const PHASE_COLORS = {
    claim: '#94a3b8', fetch: '#38bdf8', reuse: '#c084fc', inputs: '#2dd4bf',
    run: '#6366f1', outputs: '#f59e0b', commit: '#84cc16', report: '#f472b6',
  };
  const STATUS_COLORS = {
    succeeded: '#1a7f37', failed: '#cf222e', timed_out: '#cf222e', lost: '#cf222e',
    running: '#0969da', reused: '#8c959f', skipped: '#8c959f', terminated: '#bc4c00',
  };
  const RED = '#cf222e';
  const FONT_FAMILY = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const FONT = `12px ${FONT_FAMILY}`;
  const RUNS_PAGE = 50;
  const TASKS_PAGE = 100;
  const MAX_LOG_LINES = 20000;
  const SVGNS = 'http://www.w3.org/2000/svg';

  // ------------------------------------------------------------------ DOM helpers
  const $ = (id) => document.getElementById(id);

  // Sets attributes safely: `text` becomes textContent, `on*` functions become
  // listeners, everything else goes through setAttribute (null/false skipped).
  function setAttrs(node, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') node.textContent = String(v);
      else if (k.startsWith('on')) { if (typeof v === 'function') node.addEventListener(k.slice(2), v); }
      else node.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function appendAll(node, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // el('a', {href: '#/', class: 'x'}, 'text', childNode, ...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    return appendAll(node, children);
  }

  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVGNS, tag);
    setAttrs(node, attrs);
    return appendAll(node, children);
  }

  function loading(what) {
    return el('p', { class: 'loading' }, what || 'Loading…');
  }

  // Replaces the options of a select only when they changed (keeps focus and an open list).
  function fillSelect(sel, options, current) {
    const key = JSON.stringify(options);
    if (sel._key !== key) {
      sel.replaceChildren(...options.map(([value, label]) => el('option', { value }, label)));
      sel._key = key;
    }
    sel.value = current;
  }

  // The width of a text in px, measured on a canvas that is never shown.
  let measurer = null;
  function textWidth(text, font) {
    measurer = measurer || document.createElement('canvas').getContext('2d');
    measurer.font = font;
    return measurer.measureText(String(text)).width;
  }

  // ------------------------------------------------------------------ formatting
  const enc = encodeURIComponent;
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const fmtNum = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));

  function humanBytes(n) {
    if (n == null || isNaN(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
  }

  function humanDuration(s) {
    if (s == null || isNaN(s)) return '—';
    if (s < 1) return `${Math.round(s * 1000)} ms`;
    if (s < 60) return `${s.toFixed(1)} s`;
    if (s < 3600) return Math.floor(s % 60) ? `${Math.floor(s / 60)}m ${pad(Math.floor(s % 60))}s` : `${Math.floor(s / 60)}m`;
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }

  const secs = (s) => (s == null ? '—' : `${Number(s).toFixed(2)} s`);

  function parseTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }

  function exactTime(iso) {
    const d = parseTime(iso);
    if (!d) return iso || '—';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function relTime(iso) {
    const d = parseTime(iso);
    if (!d) return '—';
    const s = (Date.now() - d.getTime()) / 1000;
    if (s < 10) return 'just now';
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    if (s < 30 * 86400) return `${Math.floor(s / 86400)} d ago`;
    return exactTime(iso).slice(0, 10);
  }

  // HH:MM:SS.mmm in local time (the raw text when it is not a time).
  function clock(iso) {
    const d = parseTime(iso);
    if (!d) return iso || '';
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function timeCell(iso) {
    return el('span', { title: iso ? `${exactTime(iso)} (${iso})` : null }, iso ? clock(iso).slice(0, 8) : '—');
  }

  function createdCell(iso) {
    return el('span', { class: 'rel', title: iso ? `${exactTime(iso)} (${iso})` : null }, relTime(iso));
  }

  function shortDigest(d) {
    if (!d) return '—';
    const hex = String(d).replace(/^sha256:/, '');
    return hex.slice(0, 12);
  }

  const valueText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

  function paramsText(params) {
    return Object.entries(params || {}).map(([k, v]) => `${k}=${valueText(v)}`).join(' ');
  }

  // Elapsed seconds of something still running, from its start.
  function elapsedSince(iso) {
    const d = parseTime(iso);
    return d ? Math.max(0, (Date.now() - d.getTime()) / 1000) : null;
  }

  function durationCell(seconds, status, startedAt) {
    if (seconds != null) return el('span', null, humanDuration(seconds));
    if (status === 'running') return el('span', { class: 'muted', title: 'still running' }, humanDuration(elapsedSince(startedAt)) + '…');
    return el('span', { class: 'muted' }, '—');
  }

  const statusClass = (s) => 's-' + String(s || 'unknown').replace(/[^a-z_]/gi, '');

  function badge(status) {
    return el('span', { class: `badge ${statusClass(status)}`, 'data-status': status },
      el('span', { class: 'dot' }), String(status || 'unknown').replace(/_/g, ' '));
  }

  function countsView(counts) {
    const order = ['succeeded', 'reused', 'running', 'failed', 'timed_out', 'lost', 'terminated', 'skipped'];
    const keys = Object.keys(counts || {}).sort((a, b) => {
      const ia = order.indexOf(a), ib = order.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
    return el('span', { class: 'counts' }, keys.filter((k) => counts[k]).map((k) =>
      el('span', { class: `count ${statusClass(k)}`, title: `${counts[k]} ${k.replace(/_/g, ' ')}` }, fmtNum(counts[k]))));
  }

  function countsText(counts) {
    return Object.entries(counts || {}).filter(([, n]) => n).map(([k, n]) => `${n} ${k.replace(/_/g, ' ')}`).join(', ');
  }

  // ------------------------------------------------------------------ links
  const runsHash = (s) => {
    const p = new URLSearchParams();
    for (const k of ['flow', 'status', 'origin', 'q']) if (s[k]) p.set(k, s[k]);
    if (s.offset) p.set('offset', String(s.offset));
    const q = p.toString();
    return '#/' + (q ? '?' + q : '');
  };
  const runHash = (flow, run) => `#/runs/${enc(flow)}/${enc(run)}`;
  const taskHash = (flow, run, step, task) => `${runHash(flow, run)}/tasks/${enc(step)}/${enc(task)}`;
  const packageHash = (digest) => `#/packages/${enc(digest)}`;
  const runApi = (flow, run) => `runs/${enc(flow)}/${enc(run)}`;
  const taskApi = (flow, run, step, task) => `${runApi(flow, run)}/tasks/${enc(step)}/${enc(task)}`;

  // "forest/3" (+ step "forest") -> ["forest", "3"]
  function splitTask(name, step) {
    const s = String(name || '');
    if (step && s.startsWith(step + '/')) return [step, s.slice(step.length + 1)];
    const i = s.indexOf('/');
    return i < 0 ? [step || s, s] : [s.slice(0, i), s.slice(i + 1)];
  }

  // ------------------------------------------------------------------ API
  async function api(path, params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== '' && v != null) q.set(k, String(v));
    const url = '/api/' + path + (q.toString() ? '?' + q : '');
    let res;
    try {
      res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      throw new Error(`Cannot reach the flowpack ui server (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      throw new Error(body && typeof body.error === 'string' ? body.error : `HTTP ${res.status} ${res.statusText} from ${url}`);
    }
    if (body === null) throw new Error(`The server sent no JSON for ${path}`);
    return body;
  }

  function showError(message) {
    $('error-message').textContent = String(message);
    $('error').hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
    $('error-message').textContent = '';
  }

  // ------------------------------------------------------------------ views and routing
  // A view lives until the next navigation: its timers stop and its cleanups run then,
  // and every async continuation checks `alive` before touching the page.
  let view = null;
  let renderedHash = null;

  function newView() {
    return { alive: true, timers: new Set(), cleanups: [] };
  }

  function leaveView() {
    if (!view) return;
    view.alive = false;
    for (const t of view.timers) clearTimeout(t);
    for (const f of view.cleanups) { try { f(); } catch (e) { /* ignore */ } }
  }

  function later(v, ms, fn) {
    const id = setTimeout(() => { v.timers.delete(id); if (v.alive) fn(); }, ms);
    v.timers.add(id);
    return id;
  }

  // Calls tick() every `ms` after the previous call finished, while it returns true.
  // Errors show in the banner (and clear when a later tick succeeds).
  function poll(v, ms, tick) {
    let failed = false;
    const loop = async () => {
      if (document.hidden) { later(v, ms, loop); return; }
      let again = true;
      try {
        again = await tick();
        if (failed && v.alive) { clearError(); failed = false; }
      } catch (e) {
        if (v.alive) { showError(e.message); failed = true; }
      }
      if (v.alive && again !== false) later(v, ms, loop);
    };
    later(v, ms, loop);
  }

  function debounce(v, ms, fn) {
    let id = null;
    return (...args) => {
      if (id) { clearTimeout(id); v.timers.delete(id); }
      id = later(v, ms, () => { id = null; fn(...args); });
    };
  }

  function parseRoute(hash) {
    let h = hash.replace(/^#/, '');
    let query = '';
    const qi = h.indexOf('?');
    if (qi >= 0) { query = h.slice(qi + 1); h = h.slice(0, qi); }
    const seg = h.split('/').filter((s) => s !== '').map((s) => {
      try { return decodeURIComponent(s); } catch (e) { return s; }
    });
    const params = new URLSearchParams(query);
    if (seg.length === 0) return { name: 'runs', params };
    if (seg[0] === 'runs' && seg.length === 3) return { name: 'run', flow: seg[1], run: seg[2] };
    if (seg[0] === 'runs' && seg.length === 6 && seg[3] === 'tasks') {
      return { name: 'task', flow: seg[1], run: seg[2], step: seg[4], task: seg[5] };
    }
    if (seg[0] === 'packages' && seg.length === 2) return { name: 'package', digest: seg[1] };
    return { name: 'notfound' };
  }

  function route() {
    const hash = location.hash || '#/';
    if (hash === renderedHash) return;
    renderedHash = hash;
    leaveView();
    view = newView();
    clearError();
    const app = $('app');
    app.replaceChildren(loading());
    window.scrollTo(0, 0);
    const r = parseRoute(hash);
    if (r.name === 'runs') renderRuns(view, app, r.params);
    else if (r.name === 'run') renderRun(view, app, r.flow, r.run);
    else if (r.name === 'task') renderTask(view, app, r);
    else if (r.name === 'package') renderPackage(view, app, r.digest);
    else renderNotFound(app);
  }

  // Changes the hash without re-rendering (filters, paging): push adds a history entry.
  function setHashQuietly(hash, push) {
    if (hash === location.hash) return;
    history[push ? 'pushState' : 'replaceState'](null, '', hash);
    renderedHash = location.hash;
  }

  function go(hash) {
    location.hash = hash;
  }

  function renderNotFound(app) {
    document.title = 'Not found · flowpack';
    app.replaceChildren(el('section', { class: 'empty' },
      el('h1', null, 'Page not found'), el('p', null, el('a', { href: '#/' }, 'Back to the runs'))));
  }

  function crumbs(...parts) {
    const nav = el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' });
    parts.forEach((p, i) => {
      if (i) nav.append(el('span', { class: 'sep' }, '›'));
      nav.append(p[1] ? el('a', { href: p[1] }, p[0]) : el('span', { class: 'here' }, p[0]));
    });
    return nav;
  }

  const NUMERIC_HEADS = new Set(['Duration', 'Attempts', 'Exit code', 'Attempt', 'Exit', 'Down', 'Up', 'Reused', 'Size', 'Entries']);
  function headCell(name, cls) {
    return el('th', { class: [cls, NUMERIC_HEADS.has(name) ? 'num' : ''].filter(Boolean).join(' ') || null }, name);
  }

  function metaItem(label, ...value) {
    return [el('dt', null, label), el('dd', null, ...value)];
  }

  function pager(prefix, onPrev, onNext) {
    const prev = el('button', { type: 'button', id: `${prefix}-prev`, class: 'btn', onclick: onPrev }, '‹ Prev');
    const next = el('button', { type: 'button', id: `${prefix}-next`, class: 'btn', onclick: onNext }, 'Next ›');
    const range = el('span', { id: `${prefix}-range`, class: 'range' });
    const box = el('div', { class: 'pager' }, range, prev, next);
    box.update = (offset, shown, total, limit) => {
      range.textContent = total ? `${fmtNum(offset + 1)}–${fmtNum(offset + shown)} of ${fmtNum(total)}` : '0 of 0';
      prev.disabled = offset <= 0;
      next.disabled = offset + limit >= total;
    };
    return box;
  }

  // ================================================================== runs list
  function renderRuns(v, app, params) {
    document.title = 'Runs · flowpack';
    const st = {
      flow: params.get('flow') || '', status: params.get('status') || '',
      origin: params.get('origin') || '', q: params.get('q') || '',
      offset: Math.max(0, parseInt(params.get('offset') || '0', 10) || 0),
    };
    let seq = 0;
    let data = null;

    const flowSel = el('select', { id: 'runs-flow', 'aria-label': 'Flow' });
    const statusSel = el('select', { id: 'runs-status', 'aria-label': 'Status' });
    const originSel = el('select', { id: 'runs-origin', 'aria-label': 'Origin' });
    const qBox = el('input', { id: 'runs-q', type: 'search', placeholder: 'Search runs, flows, parameters…', 'aria-label': 'Search', autocomplete: 'off' });
    qBox.value = st.q;
    fillSelect(statusSel, [['', 'Any status'], ...RUN_STATUSES.map((s) => [s, s])], st.status);
    fillSelect(flowSel, [['', 'All flows']].concat(st.flow ? [[st.flow, st.flow]] : []), st.flow);
    fillSelect(originSel, [['', 'Any origin']].concat(st.origin ? [[st.origin, st.origin]] : []), st.origin);

    const tbody = el('tbody');
    const table = el('table', { id: 'runs-table', class: 'grid runs' },
      el('thead', null, el('tr', null, ['Status', 'Run', 'Flow', 'Origin', 'Created', 'Duration', 'Tasks', 'Parameters']
        .map((h) => headCell(h, 'col-' + h.toLowerCase())))),
      tbody);
    const wrap = el('div', { class: 'table-wrap' }, table);
    const count = el('span', { class: 'muted', id: 'runs-total' });
    const empty = el('div', { id: 'runs-empty', class: 'empty', hidden: true });
    const pg = pager('runs', () => page(-1), () => page(1));

    app.replaceChildren(el('section', { class: 'page' },
      el('div', { class: 'page-head' }, el('h1', null, 'Runs'), count),
      el('form', { class: 'filters', id: 'runs-filters', onsubmit: (e) => e.preventDefault() },
        el('label', null, 'Flow', flowSel), el('label', null, 'Status', statusSel),
        el('label', null, 'Origin', originSel), el('label', { class: 'grow' }, 'Search', qBox)),
      wrap, pg, empty, el('p', { class: 'loading', id: 'runs-loading' }, 'Loading…')));

    const reload = () => load().catch((e) => { if (v.alive) showError(e.message); });
    const changed = (push) => { st.offset = 0; setHashQuietly(runsHash(st), push); reload(); };
    flowSel.addEventListener('change', () => { st.flow = flowSel.value; changed(true); });
    statusSel.addEventListener('change', () => { st.status = statusSel.value; changed(true); });
    originSel.addEventListener('change', () => { st.origin = originSel.value; changed(true); });
    qBox.addEventListener('input', debounce(v, 300, () => { st.q = qBox.value.trim(); changed(false); }));

    function page(dir) {
      st.offset = Math.max(0, st.offset + dir * RUNS_PAGE);
      setHashQuietly(runsHash(st), true);
      reload();
      wrap.scrollIntoView({ block: 'nearest' });
    }

    async function load() {
      const my = ++seq;
      const res = await api('runs', { flow: st.flow, status: st.status, origin: st.origin, q: st.q, offset: st.offset, limit: RUNS_PAGE });
      if (!v.alive || my !== seq) return;
      if (res.runs.length === 0 && st.offset > 0 && res.total > 0) {
        st.offset = Math.floor((res.total - 1) / RUNS_PAGE) * RUNS_PAGE;
        setHashQuietly(runsHash(st), false);
        return load();
      }
      data = res;
      update();
    }

    function update() {
      const flows = data.flows || [];
      const origins = data.origins || [];
      fillSelect(flowSel, [['', 'All flows'], ...flows.concat(st.flow && !flows.includes(st.flow) ? [st.flow] : []).map((f) => [f, f])], st.flow);
      fillSelect(originSel, [['', 'Any origin'], ...origins.concat(st.origin && !origins.includes(st.origin) ? [st.origin] : []).map((o) => [o, o])], st.origin);
      $('runs-loading')?.remove();
      count.textContent = `${fmtNum(data.total)} run${data.total === 1 ? '' : 's'}`;
      tbody.replaceChildren(...data.runs.map(runRow));
      pg.update(st.offset, data.runs.length, data.total, RUNS_PAGE);
      const none = data.total === 0;
      wrap.hidden = none;
      pg.hidden = none;
      empty.hidden = !none;
      if (none) {
        const filtered = st.flow || st.status || st.origin || st.q;
        empty.replaceChildren(...(filtered
          ? [el('h2', null, 'No runs match these filters'),
            el('p', null, el('a', { href: '#/' }, 'Clear the filters'))]
          : [el('h2', null, 'No runs in this store yet'),
            el('p', null, 'Start one with ', el('code', null, 'flowpack run examples/hello/flow.yaml'))]));
      }
    }

    function runRow(r) {
      const href = runHash(r.flow, r.run);
      const ptext = paramsText(r.parameters);
      const tr = el('tr', { 'data-run': r.run, 'data-status': r.status, 'data-flow': r.flow, class: 'clickable' },
        el('td', null, badge(r.status)),
        el('td', { class: 'mono' }, el('a', { href }, r.run),
          r.resumed_from ? el('span', { class: 'tag', title: `resumed from ${r.resumed_from}` }, 'resumed') : null),
        el('td', null, r.flow),
        el('td', null, el('span', { class: 'tag' }, r.origin || '—')),
        el('td', null, createdCell(r.created_at)),
        el('td', { class: 'num' }, durationCell(r.seconds, r.status, r.created_at)),
        el('td', null, countsView(r.counts)),
        el('td', { class: 'params', title: ptext }, el('span', { class: 'mono small' }, ptext)));
      tr.addEventListener('click', (e) => {
        if (e.target.closest('a') || String(window.getSelection() || '')) return;
        go(href);
      });
      return tr;
    }

    reload().then(() => $('runs-loading')?.remove());
    poll(v, 3000, async () => { await load(); return true; });
  }

  // ================================================================== a run
  function renderRun(v, app, flow, run) {
    document.title = `${run} · flowpack`;
    const base = runApi(flow, run);
    const st = { step: '', status: '', offset: 0, data: null, graphKey: '', tasksSeq: 0, timelineBusy: false };

    const head = el('section', { class: 'run-head', id: 'run-head' }, loading());
    const failingBox = el('div');
    const dag = svgEl('svg', { id: 'dag', class: 'dag', role: 'img', 'aria-label': 'Flow graph' });
    const dagCard = el('section', { class: 'card' },
      el('div', { class: 'card-head' }, el('h2', null, 'Graph'),
        el('span', { class: 'muted small' }, 'Click a step to filter the tasks')),
      el('div', { class: 'dag-wrap' }, dag), el('p', { class: 'loading', id: 'dag-loading' }, 'Loading…'));
    dag.setAttribute('height', 0);
    const timelineBox = el('div', { id: 'timeline', class: 'timeline', hidden: true });
    const timelineCard = el('section', { class: 'card' },
      el('div', { class: 'card-head' }, el('h2', null, 'Timeline'), phaseLegend('timeline-legend')),
      timelineBox, el('p', { class: 'loading', id: 'timeline-loading' }, 'Loading…'));
    const stepSel = el('select', { id: 'tasks-step', 'aria-label': 'Step' });
    const statusSel = el('select', { id: 'tasks-status', 'aria-label': 'Status' });
    fillSelect(stepSel, [['', 'All steps']], '');
    fillSelect(statusSel, [['', 'Any status'], ...TASK_STATUSES.map((s) => [s, s.replace(/_/g, ' ')])], '');
    const tbody = el('tbody');
    const tasksTable = el('table', { id: 'tasks-table', class: 'grid' },
      el('thead', null, el('tr', null, ['Task', 'Status', 'Attempts', 'Started', 'Duration', 'Exit code']
        .map((h) => headCell(h)))), tbody);
    const tasksTotal = el('span', { class: 'muted', id: 'tasks-total' });
    const reloadTasks = () => loadTasks().catch((e) => { if (v.alive) showError(e.message); });
    const pg = pager('tasks', () => { st.offset = Math.max(0, st.offset - TASKS_PAGE); reloadTasks(); },
      () => { st.offset += TASKS_PAGE; reloadTasks(); });
    const tasksCard = el('section', { class: 'card', id: 'tasks' },
      el('div', { class: 'card-head' }, el('h2', null, 'Tasks'), tasksTotal,
        el('div', { class: 'filters inline' }, el('label', null, 'Step', stepSel), el('label', null, 'Status', statusSel))),
      el('div', { class: 'table-wrap' }, tasksTable), pg);

    app.replaceChildren(el('section', { class: 'page' },
      crumbs(['Runs', '#/'], [flow, runsHash({ flow })], [run]),
      head, failingBox, dagCard, timelineCard, tasksCard));

    const timeline = createTimeline(v, timelineBox, (row) => {
      const [s, t] = splitTask(row.task, row.step);
      go(taskHash(flow, run, s, t));
    });

    const selectStep = (name) => {
      st.step = st.step === name ? '' : name;
      stepSel.value = st.step;
      st.offset = 0;
      markSelected();
      reloadTasks();
    };
    stepSel.addEventListener('change', () => { st.step = stepSel.value; st.offset = 0; markSelected(); reloadTasks(); });
    statusSel.addEventListener('change', () => { st.status = statusSel.value; st.offset = 0; reloadTasks(); });
    const refit = () => fitDag(dag);
    window.addEventListener('resize', refit);
    v.cleanups.push(() => window.removeEventListener('resize', refit));
    const markSelected = () => {
      for (const g of dag.querySelectorAll('g.node')) g.classList.toggle('selected', g.getAttribute('data-step') === st.step);
    };

    async function loadRun() {
      const d = await api(base);
      if (!v.alive) return;
      st.data = d;
      document.title = `${d.run.run} · ${d.run.flow} · flowpack`;
      renderRunHead(head, d.run);
      renderFailing(failingBox, flow, run, d.failing);
      const key = JSON.stringify(d.graph);
      if (key !== st.graphKey) {
        st.graphKey = key;
        $('dag-loading')?.remove();
        drawDag(dag, d.graph, selectStep);
        markSelected();
      }
      const steps = (d.graph.steps || []).map((s) => s.name);
      fillSelect(stepSel, [['', 'All steps'], ...steps.concat(st.step && !steps.includes(st.step) ? [st.step] : []).map((s) => [s, s])], st.step);
    }

    async function loadTimeline() {
      if (st.timelineBusy) return;
      st.timelineBusy = true;
      try {
        const t = await api(base + '/timeline');
        if (!v.alive) return;
        $('timeline-loading')?.remove();
        timeline.update(t);
      } finally { st.timelineBusy = false; }
    }

    async function loadTasks() {
      const my = ++st.tasksSeq;
      const res = await api(base + '/tasks', { offset: st.offset, limit: TASKS_PAGE, step: st.step, status: st.status });
      if (!v.alive || my !== st.tasksSeq) return;
      tasksTotal.textContent = `${fmtNum(res.total)} task${res.total === 1 ? '' : 's'}`;
      tbody.replaceChildren(...(res.tasks.length ? res.tasks.map((t) => taskRow(t)) :
        [el('tr', { class: 'empty-row' }, el('td', { colspan: 6 }, 'No tasks match.'))]));
      pg.update(st.offset, res.tasks.length, res.total, TASKS_PAGE);
    }

    function taskRow(t) {
      const [s, id] = splitTask(t.task, t.step);
      return el('tr', { 'data-task': t.task, 'data-status': t.status },
        el('td', { class: 'mono' }, el('a', { href: taskHash(flow, run, s, id) }, t.task)),
        el('td', null, badge(t.status)),
        el('td', { class: 'num' }, fmtNum(t.attempts)),
        el('td', null, timeCell(t.started_at)),
        el('td', { class: 'num' }, durationCell(t.seconds, t.status, t.started_at)),
        el('td', { class: 'num' }, t.exit_code == null ? '—' : String(t.exit_code)));
    }

    // The three first loads may fail alike (an unknown run): show the first error.
    const fail = (e) => { if (v.alive && $('error').hidden) showError(e.message); };
    loadRun().then(() => {
      if (st.data && st.data.run.status === 'running') {
        poll(v, 2000, async () => {
          await Promise.all([loadRun(), loadTimeline(), loadTasks()]);
          return st.data.run.status === 'running';
        });
      }
    }).catch((e) => {
      fail(e);
      head.replaceChildren(el('p', { class: 'muted' }, 'This run could not be loaded.'));
      dagCard.hidden = timelineCard.hidden = tasksCard.hidden = true;
    });
    loadTimeline().catch((e) => { fail(e); $('timeline-loading')?.remove(); });
    loadTasks().catch(fail);
  }

  function renderRunHead(head, r) {
    const params = Object.entries(r.parameters || {});
    const meta = el('dl', { class: 'meta' },
      metaItem('Flow', el('a', { href: runsHash({ flow: r.flow }) }, r.flow)),
      metaItem('Origin', el('span', { class: 'tag' }, r.origin || '—')),
      metaItem('Created', el('span', { title: r.created_at }, `${exactTime(r.created_at)} · ${relTime(r.created_at)}`)),
      metaItem('Duration', durationCell(r.seconds, r.status, r.created_at)),
      metaItem('Tasks', `${fmtNum(r.tasks)} `, countsView(r.counts)),
      metaItem('Package', r.package
        ? el('a', { class: 'mono', id: 'run-package', href: packageHash(r.package), title: r.package }, shortDigest(r.package))
        : '—'),
      r.resumed_from ? metaItem('Resumed from',
        el('a', { class: 'mono', id: 'run-resumed-from', href: runHash(r.flow, r.resumed_from) }, r.resumed_from)) : null);
    const ptable = params.length
      ? el('table', { class: 'kv', id: 'run-params' }, el('tbody', null, params.map(([k, val]) =>
        el('tr', { 'data-param': k }, el('th', null, k), el('td', { class: 'mono' }, valueText(val))))))
      : el('p', { class: 'muted' }, 'No parameters');
    head.replaceChildren(
      el('div', { class: 'title-row' }, badge(r.status), el('h1', { class: 'mono', id: 'run-id' }, r.run)),
      el('div', { class: 'head-grid' }, meta, el('div', { class: 'params-box' }, el('h3', null, 'Parameters'), ptable)));
    head.setAttribute('data-status', r.status);
  }

  function logLineNode(line) {
    const stream = String(line.stream || 'stdout');
    const cls = stream === 'stderr' ? 'err' : stream === 'stdout' ? 'out' : 'sys';
    // Inline spans ending in a newline: the <pre>'s text reads (and copies) as the log.
    return el('span', { class: `line ${cls}` },
      el('span', { class: 'ts', title: `${line.time || ''} ${stream}` }, clock(line.time) + ' '),
      el('span', { class: 'tx' }, line.text == null ? '' : String(line.text)), '\n');
  }

  function renderFailing(box, flow, run, f) {
    if (!f) { box.replaceChildren(); return; }
    const [s, t] = splitTask(f.task, f.step);
    const href = taskHash(flow, run, s, t);
    box.replaceChildren(el('section', { id: 'failing', class: 'failing', 'data-task': f.task },
      el('div', { class: 'failing-head' },
        el('strong', null, 'Failed task '), el('a', { class: 'mono', href }, f.task), ' ', badge(f.status),
        el('span', { class: 'muted' }, ` attempt ${f.attempt}`),
        f.exit_code != null ? el('span', { class: 'muted' }, ` · exit code ${f.exit_code}`) : null),
      f.error ? el('p', { class: 'failing-error', id: 'failing-error' }, f.error) : null,
      el('pre', { id: 'failing-log', class: 'log small-log' }, (f.log_tail || []).map(logLineNode)),
      el('a', { href, class: 'more' }, 'Open the task and its full log ›')));
  }

  // ================================================================== DAG
  // Status of a step from its task counts (see the brief): grey "not_run" when it has none.
  function stepStatus(s) {
    const c = s.counts || {};
    const n = (k) => c[k] || 0;
    if (!s.tasks) return 'not_run';
    if (n('failed') || n('timed_out') || n('lost')) return 'failed';
    if (n('running')) return 'running';
    if (n('terminated')) return 'terminated';
    if (n('succeeded') + n('reused') >= s.tasks && n('succeeded')) return 'succeeded';
    if (n('reused') >= s.tasks) return 'reused';
    if (n('skipped')) return 'skipped';
    return 'succeeded';
  }

  // The second line of a step's node: "12 tasks · 1 failed", "not run".
  function stepSub(s) {
    const c = s.counts || {};
    const status = stepStatus(s);
    if (!s.tasks) return 'not run';
    return `${fmtNum(s.tasks)} task${s.tasks === 1 ? '' : 's'}` +
      (status === 'failed' ? ` · ${fmtNum((c.failed || 0) + (c.timed_out || 0) + (c.lost || 0))} failed`
        : status === 'running' ? ` · ${fmtNum(c.running)} running` : '');
  }

  // Layered left-to-right layout: longest-path layers from graph.start (back edges of
  // cycles set aside), dummy nodes on long edges, barycenter ordering to cut crossings.
  function layoutDag(graph) {
    const steps = graph.steps || [];
    const main = steps.filter((s) => !s.hook);
    const hooks = steps.filter((s) => s.hook);
    const index = new Map(main.map((s, i) => [s.name, i]));
    const bodies = new Map();
    for (const s of main) if (s.transition === 'foreach') for (const t of s.next || []) bodies.set(t, true);

    const edges = [];
    for (const s of main) {
      for (const t of s.next || []) {
        if (!index.has(t)) continue;
        const e = { from: s.name, to: t, label: '', kind: s.transition, chosen: null, back: false };
        if (s.transition === 'foreach') e.label = 'foreach over' + (s.foreach && s.foreach.over ? ' ' + s.foreach.over : '');
        if (s.switch) {
          const cases = Object.entries(s.switch.cases || {}).filter(([, target]) => target === t).map(([k]) => k);
          e.label = cases.join(' | ');
          e.chosen = cases.some((c) => (s.switch.chosen || []).includes(c));
        }
        edges.push(e);
      }
    }
    const out = new Map(main.map((s) => [s.name, []]));
    for (const e of edges) out.get(e.from).push(e);

    // DFS from start: back edges, and a topological order of the rest.
    const state = new Map();
    const post = [];
    const dfs = (u) => {
      state.set(u, 1);
      for (const e of out.get(u)) {
        const s = state.get(e.to);
        if (s === 1) e.back = true;
        else if (!s) dfs(e.to);
      }
      state.set(u, 2);
      post.push(u);
    };
    for (const r of [graph.start, ...main.map((s) => s.name)]) if (index.has(r) && !state.get(r)) dfs(r);
    const topo = post.reverse();
    const layerOf = new Map(topo.map((n) => [n, 0]));
    for (const u of topo) {
      for (const e of out.get(u)) if (!e.back) layerOf.set(e.to, Math.max(layerOf.get(e.to), layerOf.get(u) + 1));
    }

    const nodes = new Map();
    for (const n of topo) nodes.set(n, { id: n, layer: layerOf.get(n), step: main[index.get(n)], order: index.get(n), dummy: false });
    let dn = 0;
    for (const e of edges) {
      if (e.back) continue;
      e.chain = [e.from];
      for (let l = layerOf.get(e.from) + 1; l < layerOf.get(e.to); l++) {
        const id = `\u0000d${dn++}`;
        nodes.set(id, { id, layer: l, dummy: true, order: index.get(e.from) + 0.5 });
        e.chain.push(id);
      }
      e.chain.push(e.to);
    }
    const nLayers = Math.max(1, ...[...nodes.values()].map((n) => n.layer + 1));
    const layers = Array.from({ length: nLayers }, () => []);
    for (const n of nodes.values()) layers[n.layer].push(n);
    for (const ly of layers) ly.sort((a, b) => a.order - b.order);

    const up = new Map(), down = new Map();
    for (const id of nodes.keys()) { up.set(id, []); down.set(id, []); }
    for (const e of edges) {
      if (e.back) continue;
      for (let i = 0; i + 1 < e.chain.length; i++) { down.get(e.chain[i]).push(e.chain[i + 1]); up.get(e.chain[i + 1]).push(e.chain[i]); }
    }
    const pos = new Map();
    const setPos = (ly) => ly.forEach((n, i) => pos.set(n.id, i));
    layers.forEach(setPos);
    const sortBy = (ly, nb) => {
      const bary = new Map(ly.map((n) => {
        const ns = nb.get(n.id);
        return [n.id, ns.length ? ns.reduce((a, x) => a + pos.get(x), 0) / ns.length : pos.get(n.id)];
      }));
      ly.sort((a, b) => bary.get(a.id) - bary.get(b.id));
      setPos(ly);
    };
    const crossings = () => {
      let c = 0;
      for (let l = 0; l + 1 < nLayers; l++) {
        const segs = [];
        for (const n of layers[l]) for (const m of down.get(n.id)) segs.push([pos.get(n.id), pos.get(m)]);
        for (let i = 0; i < segs.length; i++) {
          for (let j = i + 1; j < segs.length; j++) {
            if ((segs[i][0] - segs[j][0]) * (segs[i][1] - segs[j][1]) < 0) c++;
          }
        }
      }
      return c;
    };
    let best = crossings();
    let bestOrder = layers.map((ly) => ly.slice());
    for (let it = 0; it < 6 && best > 0; it++) {
      for (let l = 1; l < nLayers; l++) sortBy(layers[l], up);
      for (let l = nLayers - 2; l >= 0; l--) sortBy(layers[l], down);
      const c = crossings();
      if (c < best) { best = c; bestOrder = layers.map((ly) => ly.slice()); }
    }
    bestOrder.forEach((ly, l) => { layers[l] = ly; setPos(ly); });

    // Coordinates.
    const W = Math.min(220, Math.max(110, ...steps.map((s) => Math.max(
      textWidth(s.name, `600 13px ${FONT_FAMILY}`) + 34, textWidth(stepSub(s), `11px ${FONT_FAMILY}`) + 30))));
    const H = 46;
    // The gap after a layer is as wide as the labels on the edges leaving it.
    const gaps = layers.map(() => 56);
    for (const e of edges) {
      if (!e.back && e.label) {
        const l = layerOf.get(e.from);
        gaps[l] = Math.max(gaps[l], Math.min(220, textWidth(e.label, `11px ${FONT_FAMILY}`) + 44));
      }
    }
    const GY = 30;
    const PAD = 28;
    const xs = [PAD];
    for (let l = 1; l < nLayers; l++) xs.push(xs[l - 1] + W + gaps[l - 1]);
    const maxN = Math.max(1, ...layers.map((ly) => ly.length));
    for (const ly of layers) {
      ly.forEach((n, i) => {
        n.x = xs[n.layer];
        n.y = PAD + ((maxN - ly.length) / 2 + i) * (H + GY);
      });
    }
    const backs = edges.filter((e) => e.back);
    let height = PAD + maxN * (H + GY) - GY + PAD + (backs.length ? 30 + backs.length * 12 : 0);
    const width = Math.max(xs[nLayers - 1] + W + PAD + 8, hooks.length * (W + 40) + PAD * 2);
    const hookNodes = [];
    if (hooks.length) {
      const hy = height + 26;
      hooks.forEach((s, i) => hookNodes.push({ id: s.name, step: s, x: PAD + i * (W + 40), y: hy, hook: s.hook }));
      height = hy + H + PAD;
    }
    return { nodes: [...nodes.values()], edges, hookNodes, hooksTop: hookNodes.length ? hookNodes[0].y - 34 : 0, bodies, W, H, width, height };
  }

  function drawDag(svg, graph, onSelect) {
    const lay = layoutDag(graph);
    const { W, H } = lay;
    svg.replaceChildren();
    svg.setAttribute('viewBox', `0 0 ${lay.width} ${lay.height}`);
    svg.setAttribute('width', lay.width);
    svg.setAttribute('height', lay.height);
    fitDag(svg);
    const marker = (id, cls) => svgEl('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
      svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    svg.append(svgEl('defs', null, marker('arrow', 'arrowhead'), marker('arrow-chosen', 'arrowhead chosen'), marker('arrow-muted', 'arrowhead muted')));

    const byId = new Map(lay.nodes.map((n) => [n.id, n]));
    const edgeLayer = svgEl('g', { class: 'edges' });
    const labelLayer = svgEl('g', { class: 'edge-labels' });
    for (const e of lay.edges) {
      const a = byId.get(e.from), b = byId.get(e.to);
      let d, lx, ly;
      if (e.back) {
        const self = a === b;
        const sx = self ? a.x + W - 24 : a.x + W / 2 + 10, tx = self ? a.x + 24 : b.x + W / 2 - 10;
        const by = Math.max(a.y, b.y) + H + 34;
        d = `M${sx},${a.y + H} C${sx},${by} ${tx},${by} ${tx},${b.y + H + 2}`;
        lx = (sx + tx) / 2; ly = by - 6;
      } else {
        const pts = e.chain.map((id) => byId.get(id));
        let x = a.x + W, y = a.y + H / 2;
        d = `M${x},${y}`;
        for (let i = 1; i < pts.length; i++) {
          const p = pts[i];
          const px = p.x, py = p.y + H / 2, mx = (x + px) / 2;
          if (i === 1) { lx = mx; ly = (y + py) / 2 - 5; }
          const endX = i === pts.length - 1 ? px - 2 : px;
          d += ` C${mx},${y} ${mx},${py} ${endX},${py}`;
          if (p.dummy) { d += ` L${px + W},${py}`; x = px + W; } else x = px;
          y = py;
        }
      }
      const cls = e.chosen === true ? 'edge chosen' : e.chosen === false ? 'edge unchosen' : 'edge';
      const mk = e.chosen === true ? 'arrow-chosen' : e.chosen === false ? 'arrow-muted' : 'arrow';
      edgeLayer.append(svgEl('path', {
        d, class: cls, 'marker-end': `url(#${mk})`, 'data-from': e.from, 'data-to': e.to,
        'data-chosen': e.chosen === null ? null : String(e.chosen),
      }));
      if (e.label) {
        labelLayer.append(svgEl('text', { x: lx, y: ly, class: 'edge-label' + (e.chosen ? ' chosen' : ''), 'text-anchor': 'middle' }, e.label));
      }
    }
    svg.append(edgeLayer, labelLayer);

    const nodeLayer = svgEl('g', { class: 'nodes' });
    for (const n of lay.nodes) if (!n.dummy) nodeLayer.append(dagNode(n, lay, onSelect));
    if (lay.hookNodes.length) {
      nodeLayer.append(svgEl('line', { x1: 12, x2: lay.width - 12, y1: lay.hooksTop, y2: lay.hooksTop, class: 'hook-sep' }));
      for (const n of lay.hookNodes) nodeLayer.append(dagNode(n, lay, onSelect));
    }
    svg.append(nodeLayer);
  }

  // Shrinks the graph to its box when that keeps it readable (70 % or more); else it scrolls.
  function fitDag(svg) {
    const box = svg.parentNode && svg.parentNode.clientWidth;
    const width = Number(svg.getAttribute('width'));
    svg.classList.toggle('fit', !!box && width > box && width * 0.7 <= box);
  }

  function dagNode(n, lay, onSelect) {
    const { W, H } = lay;
    const s = n.step;
    const status = stepStatus(s);
    const body = lay.bodies.has(s.name);
    let name = s.name;
    while (name.length > 4 && textWidth(name, `600 13px ${FONT_FAMILY}`) > W - 30) name = name.slice(0, -2) + '…';
    const sub = stepSub(s);
    const g = svgEl('g', {
      class: 'node' + (body ? ' foreach-body' : '') + (n.hook ? ' hook' : ''), 'data-step': s.name, 'data-status': status,
      tabindex: 0, role: 'button', transform: `translate(${n.x},${n.y})`,
    }, svgEl('title', null, `${s.name}: ${s.tasks ? `${fmtNum(s.tasks)} task${s.tasks === 1 ? '' : 's'}` : 'not run'}` +
      (countsText(s.counts) ? ` (${countsText(s.counts)})` : '') + (s.hook ? ` — ${s.hook.replace('_', ' ')} hook` : '')));
    if (body) {
      g.append(svgEl('rect', { x: 8, y: 8, width: W, height: H, rx: 8, class: 'stack' }),
        svgEl('rect', { x: 4, y: 4, width: W, height: H, rx: 8, class: 'stack' }));
    }
    g.append(svgEl('rect', { x: 0, y: 0, width: W, height: H, rx: 8, class: 'card' }),
      svgEl('rect', { x: 0, y: 0, width: 5, height: H, rx: 2, class: 'stripe' }),
      svgEl('text', { x: 14, y: 19, class: 'name' }, name),
      svgEl('text', { x: 14, y: 36, class: 'sub' }, sub));
    if (body) {
      const label = `×${fmtNum(s.tasks)}`;
      const bw = label.length * 7 + 12;
      g.append(svgEl('g', { class: 'fanout', transform: `translate(${W - bw / 2 - 4},-9)` },
        svgEl('rect', { x: -bw / 2, y: 0, width: bw, height: 18, rx: 9 }),
        svgEl('text', { x: 0, y: 13, 'text-anchor': 'middle' }, label)));
    }
    if (s.join) {
      g.append(svgEl('g', { class: 'join-tag', transform: 'translate(10,-9)' },
        svgEl('rect', { x: 0, y: 0, width: 34, height: 16, rx: 8 }), svgEl('text', { x: 17, y: 12, 'text-anchor': 'middle' }, 'join')));
    }
    if (n.hook) {
      g.append(svgEl('text', { x: 0, y: -8, class: 'hook-label' }, n.hook === 'on_failure' ? 'on failure' : n.hook === 'on_exit' ? 'on exit' : String(n.hook)));
    }
    g.addEventListener('click', () => onSelect(s.name));
    g.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); onSelect(s.name); } });
    return g;
  }

  // ================================================================== timeline
  function phaseLegend(id) {
    return el('div', { class: 'legend', id },
      PHASES.map((p) => {
        const sw = el('span', { class: 'swatch' });
        sw.style.background = PHASE_COLORS[p];
        return el('span', { class: 'legend-item' }, sw, p);
      }),
      el('span', { class: 'legend-item' }, el('span', { class: 'swatch failed-outline' }), 'failed attempt'));
  }

  // A canvas Gantt chart of every task; only the visible rows are drawn. The canvas is
  // sticky inside the scrolling #timeline, above a spacer as tall as all the rows.
  function createTimeline(v, box, onRowClick) {
    const ROW = 18, AXIS = 24, MAXH = 420;
    const canvas = el('canvas', { class: 'timeline-canvas', 'aria-label': 'Timeline of the tasks' });
    const spacer = el('div', { class: 'timeline-spacer' });
    const tip = el('div', { class: 'tooltip', id: 'timeline-tip', hidden: true });
    box.append(canvas, spacer);
    document.body.append(tip);
    v.cleanups.push(() => tip.remove());
    const ctx = canvas.getContext('2d');
    let data = { rows: [], span: 1 };
    let span = 1;
    let hover = -1;
    let frame = 0;
    let width = 0, height = 0;
    const geo = () => {
      const gutter = Math.round(Math.min(240, Math.max(120, width * 0.2)));
      return { gutter, px: gutter + 10, pw: Math.max(40, width - gutter - 26) };
    };

    function resize() {
      width = box.clientWidth;
      const total = AXIS + data.rows.length * ROW;
      height = Math.min(MAXH, Math.max(AXIS + ROW, total));
      box.style.height = `${height}px`;
      spacer.style.height = `${Math.max(0, total - height)}px`;
      const dpr = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * dpr);
      canvas.height = Math.round(height * dpr);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      drawTimeline();
    }

    function schedule() {
      if (!frame) frame = requestAnimationFrame(() => { frame = 0; drawTimeline(); });
    }

    function drawTimeline() {
      const { gutter, px, pw } = geo();
      const top = box.scrollTop;
      const rows = data.rows;
      const xOf = (s) => px + (s / span) * pw;
      ctx.clearRect(0, 0, width, height);
      ctx.font = FONT;
      ctx.textBaseline = 'middle';
      const first = Math.max(0, Math.floor(top / ROW));
      const last = Math.min(rows.length - 1, Math.floor((top + height - AXIS) / ROW));
      const step = tickStep(span, pw / 90);
      // grid lines
      ctx.strokeStyle = '#eef0f3';
      ctx.lineWidth = 1;
      for (let t = 0; t <= span + 1e-9; t += step) {
        const x = Math.round(xOf(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, height); ctx.stroke();
      }
      for (let i = first; i <= last; i++) {
        const row = rows[i];
        const y = AXIS + i * ROW - top;
        if (i === hover) { ctx.fillStyle = '#eaf2ff'; ctx.fillRect(0, y, width, ROW); }
        else if (i % 2) { ctx.fillStyle = '#fafbfc'; ctx.fillRect(0, y, width, ROW); }
        // gutter: status dot and name
        ctx.fillStyle = STATUS_COLORS[row.status] || '#8c959f';
        ctx.beginPath(); ctx.arc(10, y + ROW / 2, 3.5, 0, Math.PI * 2); ctx.fill();
        ctx.save();
        ctx.beginPath(); ctx.rect(18, y, gutter - 22, ROW); ctx.clip();
        ctx.fillStyle = '#24292f';
        ctx.fillText(String(row.task), 20, y + ROW / 2 + 0.5);
        ctx.restore();
        for (const a of row.attempts || []) drawAttempt(a, y, xOf);
      }
      // gutter border and axis
      ctx.strokeStyle = '#d0d7de';
      ctx.beginPath(); ctx.moveTo(gutter + 0.5, 0); ctx.lineTo(gutter + 0.5, height); ctx.stroke();
      ctx.fillStyle = '#ffffff';
      ctx.fillRect(0, 0, width, AXIS);
      ctx.beginPath(); ctx.moveTo(0, AXIS - 0.5); ctx.lineTo(width, AXIS - 0.5); ctx.stroke();
      ctx.fillStyle = '#57606a';
      ctx.textAlign = 'left';
      ctx.fillText(`${fmtNum(rows.length)} task${rows.length === 1 ? '' : 's'}`, 8, AXIS / 2);
      ctx.textAlign = 'center';
      for (let t = 0; t <= span + 1e-9; t += step) {
        const x = xOf(t);
        ctx.fillText(fmtOffset(t, step), Math.min(width - 20, Math.max(px + 8, x)), AXIS / 2);
        ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, AXIS - 5); ctx.lineTo(Math.round(x) + 0.5, AXIS); ctx.stroke();
      }
      ctx.textAlign = 'left';
    }

    function drawAttempt(a, y, xOf) {
      const end = a.end == null ? span : a.end;
      const x0 = xOf(a.start || 0), x1 = Math.max(x0 + 2, xOf(end));
      const yb = y + 3, hb = ROW - 6;
      ctx.fillStyle = a.status === 'running' ? '#cfe3ff' : '#dde1e6';
      ctx.fillRect(x0, yb, x1 - x0, hb);
      let t = a.start || 0;
      for (const p of PHASES) {
        const d = a.phases && a.phases[p];
        if (!d) continue;
        const sx = xOf(t), ex = Math.min(x1, xOf(t + d));
        if (ex > sx) { ctx.fillStyle = PHASE_COLORS[p]; ctx.fillRect(sx, yb, Math.max(0.75, ex - sx), hb); }
        t += d;
      }
      if (FAILED.has(a.status)) {
        ctx.strokeStyle = RED; ctx.lineWidth = 1.5;
        ctx.strokeRect(x0 + 0.75, yb + 0.75, x1 - x0 - 1.5, hb - 1.5);
        ctx.lineWidth = 1;
      } else if (a.status === 'terminated') {
        ctx.strokeStyle = STATUS_COLORS.terminated; ctx.strokeRect(x0 + 0.5, yb + 0.5, x1 - x0 - 1, hb - 1);
      }
    }

    // The row and attempt under a mouse position.
    function hit(e) {
      const r = canvas.getBoundingClientRect();
      const mx = e.clientX - r.left, my = e.clientY - r.top;
      if (my < AXIS) return null;
      const i = Math.floor((my - AXIS + box.scrollTop) / ROW);
      const row = data.rows[i];
      if (!row) return null;
      const { gutter, px, pw } = geo();
      if (mx < gutter) return { i, row, attempt: null };
      const t = ((mx - px) / pw) * span, slack = (4 / pw) * span;
      const attempt = (row.attempts || []).find((a) => t >= (a.start || 0) - slack && t <= (a.end == null ? span : a.end) + slack) || null;
      return { i, row, attempt };
    }

    function showTip(h, e) {
      const a = h.attempt;
      const kids = [el('strong', null, h.row.task)];
      if (a) {
        kids.push(el('div', null, `attempt ${a.attempt} · `, badge(a.status)),
          el('div', { class: 'muted' }, `${secs(a.start)} → ${a.end == null ? 'running' : secs(a.end)}`));
        const tbl = el('table', { class: 'tip-phases' });
        let total = 0;
        for (const p of PHASES) {
          const d = a.phases && a.phases[p];
          if (d == null) continue;
          total += d;
          const sw = el('span', { class: 'swatch' });
          sw.style.background = PHASE_COLORS[p];
          tbl.append(el('tr', null, el('td', null, sw, p), el('td', { class: 'num' }, secs(d))));
        }
        tbl.append(el('tr', { class: 'total' }, el('td', null, 'total'), el('td', { class: 'num' }, secs(a.end == null ? span - (a.start || 0) : a.end - (a.start || 0)))));
        kids.push(tbl);
      } else {
        kids.push(el('div', null, badge(h.row.status), ` · ${(h.row.attempts || []).length} attempt(s)`), el('div', { class: 'muted' }, 'click to open'));
      }
      tip.replaceChildren(...kids);
      tip.hidden = false;
      const tw = tip.offsetWidth, th = tip.offsetHeight;
      let left = e.clientX + 14, top = e.clientY + 14;
      if (left + tw > window.innerWidth - 8) left = e.clientX - tw - 14;
      if (top + th > window.innerHeight - 8) top = e.clientY - th - 14;
      tip.style.left = `${Math.max(4, left)}px`;
      tip.style.top = `${Math.max(4, top)}px`;
    }

    canvas.addEventListener('mousemove', (e) => {
      const h = hit(e);
      const i = h ? h.i : -1;
      if (i !== hover) { hover = i; schedule(); }
      canvas.classList.toggle('pointer', !!h);
      if (h) showTip(h, e); else tip.hidden = true;
    });
    canvas.addEventListener('mouseleave', () => { hover = -1; tip.hidden = true; schedule(); });
    canvas.addEventListener('click', (e) => { const h = hit(e); if (h) onRowClick(h.row); });
    box.addEventListener('scroll', () => { tip.hidden = true; schedule(); }, { passive: true });
    // Resizing in the observer's callback would change what it observes: next frame.
    const ro = new ResizeObserver(() => requestAnimationFrame(() => { if (v.alive && box.clientWidth !== width) resize(); }));
    ro.observe(box);
    v.cleanups.push(() => { ro.disconnect(); if (frame) cancelAnimationFrame(frame); });

    return {
      update(d) {
        data = { rows: d.rows || [], span: d.span || 0, t0: d.t0 };
        let maxEnd = data.span;
        for (const r of data.rows) for (const a of r.attempts || []) if (a.end != null && a.end > maxEnd) maxEnd = a.end;
        span = Math.max(maxEnd, 0.001);
        box.classList.toggle('empty-timeline', data.rows.length === 0);
        box.hidden = false;
        resize();
      },
    };
  }

  function tickStep(span, maxTicks) {
    const raw = span / Math.max(1, maxTicks);
    const steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400];
    return steps.find((s) => s >= raw) || Math.ceil(raw / 86400) * 86400;
  }

  function fmtOffset(t, step) {
    if (t === 0) return '0';
    if (t < 60 || step < 1) return `${Number(t.toFixed(step < 0.1 ? 2 : step < 1 ? 1 : 0))}s`;
    if (t < 3600) return `${Math.floor(t / 60)}m${t % 60 ? pad(Math.round(t % 60)) + 's' : ''}`;
    return `${Math.floor(t / 3600)}h${pad(Math.floor((t % 3600) / 60))}m`;
  }

  // ================================================================== a task
  function renderTask(v, app, r) {
    const { flow, run, step, task } = r;
    const base = taskApi(flow, run, step, task);
    const name = `${step}/${task}`;
    document.title = `${name} · ${run} · flowpack`;
    const st = { data: null, artifactsKey: '', preview: null };

    const head = el('section', { class: 'run-head', id: 'task-head' }, loading());
    const attemptsBody = el('tbody');
    const attemptsTable = el('table', { id: 'attempts', class: 'grid' },
      el('thead', null, el('tr', null, ['Attempt', 'Status', 'Exit', 'Error', 'Host', 'Started', 'Duration', 'Down', 'Up', 'Reused', 'Reused from']
        .map((h) => headCell(h)))), attemptsBody);
    const phasesBox = el('div', { class: 'phases', id: 'phases' });
    const logBox = el('div');
    const artBody = el('tbody');
    const artTable = el('table', { id: 'artifacts', class: 'grid' },
      el('thead', null, el('tr', null, ['Name', 'Kind', 'Size', 'Digest', 'Origin', ''].map((h) => headCell(h)))), artBody);
    const preview = el('section', { id: 'artifact-preview', class: 'preview', hidden: true });

    const cards = [
      el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Attempts')),
        el('div', { class: 'table-wrap' }, attemptsTable), phasesBox),
      el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Log')), logBox),
      el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Artifacts')),
        el('div', { class: 'table-wrap' }, artTable), preview)];
    app.replaceChildren(el('section', { class: 'page' },
      crumbs(['Runs', '#/'], [run, runHash(flow, run)], [name]), head, cards));

    const log = renderLog(v, logBox, base);

    async function load() {
      const d = await api(base);
      if (!v.alive) return;
      st.data = d;
      const attempts = d.attempts || [];
      const newest = attempts.length ? attempts[attempts.length - 1] : null;
      const parents = newest && newest.parents ? newest.parents : [];
      head.replaceChildren(
        el('div', { class: 'title-row' }, badge(d.status), el('h1', { class: 'mono', id: 'task-name' }, d.task || name)),
        el('dl', { class: 'meta cols' },
          metaItem('Run', el('a', { class: 'mono', href: runHash(flow, run) }, run)),
          metaItem('Step', d.step || step),
          metaItem('Attempts', fmtNum(attempts.length)),
          newest && newest.split_index != null ? metaItem('Split index', String(newest.split_index)) : null,
          parents.length ? metaItem('Parents', parents.map((p, i) => {
            const [ps, pt] = splitTask(p);
            return [i ? ', ' : '', el('a', { class: 'mono', href: taskHash(flow, run, ps, pt) }, p)];
          })) : null,
          newest && newest.image ? metaItem('Image', el('span', { class: 'mono' }, newest.image)) : null,
          newest && newest.reuse_reason ? metaItem('Reused because', valueText(newest.reuse_reason)) : null));
      head.setAttribute('data-status', d.status);
      attemptsBody.replaceChildren(...(attempts.length ? attempts.map(attemptRow)
        : [el('tr', { class: 'empty-row' }, el('td', { colspan: 11 }, 'No attempts yet.'))]));
      phasesBox.replaceChildren(...attempts.map(phasesBar));
      const key = JSON.stringify(d.artifacts || []);
      if (key !== st.artifactsKey) {
        st.artifactsKey = key;
        const arts = d.artifacts || [];
        artBody.replaceChildren(...(arts.length ? arts.map(artifactRow)
          : [el('tr', { class: 'empty-row' }, el('td', { colspan: 6 }, 'No artifacts.'))]));
        for (const tr of artBody.querySelectorAll('tr')) tr.classList.toggle('active', tr.getAttribute('data-artifact') === st.preview);
      }
      log.setAttempts(attempts.map((a) => a.attempt));
    }

    function attemptRow(a) {
      const b = a.bytes || {};
      return el('tr', { 'data-attempt': a.attempt, 'data-status': a.status },
        el('td', { class: 'num' }, String(a.attempt)),
        el('td', null, badge(a.status)),
        el('td', { class: 'num' }, a.exit_code == null ? '—' : String(a.exit_code)),
        a.error ? el('td', { class: 'error-cell', title: a.error }, a.error) : el('td', { class: 'muted' }, '—'),
        el('td', { class: 'mono small', title: [a.host, a.image, a.flowpack_version && `flowpack ${a.flowpack_version}`].filter(Boolean).join('\n') || null }, a.host || '—'),
        el('td', null, timeCell(a.started_at)),
        el('td', { class: 'num' }, durationCell(a.seconds, a.status, a.started_at)),
        el('td', { class: 'num', title: b.downloaded != null ? `${fmtNum(b.downloaded)} bytes` : null }, humanBytes(b.downloaded)),
        el('td', { class: 'num', title: b.uploaded != null ? `${fmtNum(b.uploaded)} bytes` : null }, humanBytes(b.uploaded)),
        el('td', { class: 'num', title: b.reused != null ? `${fmtNum(b.reused)} bytes` : null }, humanBytes(b.reused)),
        el('td', { class: 'mono small' }, reusedFromLink(a.reused_from)));
    }

    // reused_from is RUN/STEP/TASK/ATTEMPT: a task of another run of this flow.
    function reusedFromLink(ref) {
      if (!ref) return '—';
      const parts = String(ref).split('/');
      if (parts.length < 4) return String(ref);
      return el('a', { href: taskHash(flow, parts[0], parts[1], parts.slice(2, -1).join('/')), title: ref }, ref);
    }

    function phasesBar(a) {
      const entries = PHASES.filter((p) => a.phases && a.phases[p] != null).map((p) => [p, Number(a.phases[p])]);
      const total = entries.reduce((s, [, d]) => s + d, 0);
      const bar = el('div', { class: 'phase-bar' });
      for (const [p, d] of entries) {
        const seg = el('span', { class: 'seg', title: `${p} ${secs(d)}`, 'data-phase': p });
        seg.style.background = PHASE_COLORS[p];
        seg.style.flexGrow = String(total ? d / total : 0);
        bar.append(seg);
      }
      return el('div', { class: 'phase-row', 'data-attempt': a.attempt },
        el('span', { class: 'phase-label' }, `attempt ${a.attempt}`), bar,
        el('span', { class: 'phase-text small' }, entries.length
          ? entries.map(([p, d]) => {
            const sw = el('span', { class: 'swatch' });
            sw.style.background = PHASE_COLORS[p];
            return el('span', { class: 'phase-item' }, sw, `${p} ${secs(d)}`);
          })
          : el('span', { class: 'muted' }, 'no phases recorded')));
    }

    function artifactRow(a) {
      const artBase = `/api/${base}/artifacts/${enc(a.name)}`;
      let origin = el('span', { class: 'muted' }, a.origin || '—');
      const parts = String(a.origin || '').split('/');
      if (parts.length >= 3) {
        const os = parts[0], ot = parts.slice(1, -1).join('/');
        origin = `${os}/${ot}` === name
          ? el('span', { class: 'muted', title: a.origin }, `this task (attempt ${parts[parts.length - 1]})`)
          : el('a', { class: 'mono', href: taskHash(flow, run, os, ot), title: a.origin }, a.origin);
      }
      const btn = el('button', { type: 'button', class: 'btn small preview-btn', 'data-artifact': a.name }, 'preview');
      btn.addEventListener('click', () => openPreview(a, artBase));
      return el('tr', { 'data-artifact': a.name },
        el('td', { class: 'mono' }, a.name),
        el('td', null, a.kind || '—'),
        el('td', { class: 'num', title: `${fmtNum(a.size)} bytes` }, humanBytes(a.size)),
        el('td', { class: 'mono small', title: a.digest || null }, shortDigest(a.digest)),
        el('td', null, origin),
        el('td', { class: 'actions' }, btn,
          el('a', { class: 'btn small', href: `${artBase}/download`, download: a.kind === 'dir' ? `${a.name}.tar` : a.name }, 'download')));
    }

    async function openPreview(a, artBase) {
      st.preview = a.name;
      for (const tr of artBody.querySelectorAll('tr')) tr.classList.toggle('active', tr.getAttribute('data-artifact') === a.name);
      preview.hidden = false;
      preview.replaceChildren(el('div', { class: 'card-head' }, el('h3', null, 'Preview: ', el('span', { class: 'mono' }, a.name))), loading());
      try {
        const p = await api(`${base}/artifacts/${enc(a.name)}/preview`);
        if (!v.alive || st.preview !== a.name) return;
        const close = el('button', { type: 'button', class: 'btn small', id: 'artifact-preview-close' }, 'close');
        close.addEventListener('click', () => {
          preview.hidden = true; preview.replaceChildren(); st.preview = null;
          for (const tr of artBody.querySelectorAll('tr')) tr.classList.remove('active');
        });
        preview.replaceChildren(el('div', { class: 'card-head' },
          el('h3', null, 'Preview: ', el('span', { class: 'mono' }, p.name || a.name)),
          el('span', { class: 'muted small' }, `${p.kind || a.kind} · ${humanBytes(p.size)}`), close));
        renderArtifactPreview(preview, p, artBase);
      } catch (e) {
        if (!v.alive) return;
        showError(e.message);
        preview.replaceChildren(el('p', { class: 'muted' }, 'No preview: ', e.message));
      }
    }

    load().then(() => {
      if (st.data && st.data.status === 'running') {
        poll(v, 2000, async () => { await load(); return st.data.status === 'running'; });
      }
    }).catch((e) => {
      if (!v.alive) return;
      showError(e.message);
      head.replaceChildren(el('p', { class: 'muted' }, 'This task could not be loaded.'));
      for (const c of cards) c.hidden = true;
    });
  }

  // The log of one attempt: a selector, a search box and a followed <pre id="log">.
  function renderLog(v, box, base) {
    const sel = el('select', { id: 'log-attempt', 'aria-label': 'Attempt' });
    const search = el('input', { id: 'log-search', type: 'search', placeholder: 'Search the log…', autocomplete: 'off', 'aria-label': 'Search the log' });
    const matches = el('span', { id: 'log-matches', class: 'muted small' });
    const following = el('span', { id: 'log-following', class: 'following', hidden: true }, el('span', { class: 'dot' }), 'following…');
    const note = el('div', { id: 'log-dropped', class: 'log-note', hidden: true });
    const pre = el('pre', { id: 'log', class: 'log', tabindex: 0 });
    box.append(el('div', { class: 'log-bar' }, el('label', null, 'Attempt', sel), el('label', { class: 'grow' }, 'Search', search), matches, following), note, pre);

    const st = { attempts: [], attempt: null, picked: false, gen: 0, next: 0, final: true, dropped: 0, query: '', count: 0 };

    sel.addEventListener('change', () => { st.picked = true; start(Number(sel.value)); });
    search.addEventListener('input', debounce(v, 150, () => { st.query = search.value; applySearch(); }));

    function start(attempt) {
      st.attempt = attempt;
      st.gen++;
      st.next = 0;
      st.final = false;
      st.dropped = 0;
      st.count = 0;
      note.hidden = true;
      pre.replaceChildren(el('span', { class: 'placeholder muted' }, 'Loading the log…\n'));
      following.hidden = true;
      fetchMore(st.gen, true);
    }

    async function fetchMore(gen, first) {
      let res;
      try {
        res = await api(base + '/logs', { attempt: st.attempt, from: st.next });
      } catch (e) {
        if (!v.alive || gen !== st.gen) return;
        showError(e.message);
        if (first) pre.replaceChildren(el('span', { class: 'placeholder muted' }, 'The log could not be loaded.\n'));
        later(v, 3000, () => { if (gen === st.gen) fetchMore(gen, first); });
        return;
      }
      if (!v.alive || gen !== st.gen) return;
      if (first) pre.replaceChildren();
      append(res.lines || [], first);
      st.next = res.next != null ? res.next : st.next;
      st.final = !!res.final;
      following.hidden = st.final;
      if (!pre.firstChild && st.final) pre.append(el('span', { class: 'placeholder muted' }, '(no log lines)\n'));
      // A full page means a backlog (a long log): read on at once; else poll each second.
      if (!st.final) later(v, (res.lines || []).length >= 500 ? 0 : 1000, () => { if (gen === st.gen) fetchMore(gen, false); });
    }

    function append(lines, first) {
      if (!lines.length) return;
      const atBottom = first || pre.scrollHeight - pre.scrollTop - pre.clientHeight < 8;
      pre.querySelector('.placeholder')?.remove();
      const skip = Math.max(0, lines.length - MAX_LOG_LINES);
      st.dropped += skip;
      const frag = document.createDocumentFragment();
      for (let i = skip; i < lines.length; i++) {
        const node = logLineNode(lines[i]);
        if (st.query) mark(node);
        frag.append(node);
      }
      pre.append(frag);
      let extra = pre.childElementCount - MAX_LOG_LINES;
      while (extra-- > 0) {
        const old = pre.firstElementChild;
        if (st.query && !old.classList.contains('nomatch')) st.count--;
        old.remove();
        st.dropped++;
      }
      if (st.dropped) {
        note.hidden = false;
        note.textContent = `${fmtNum(st.dropped)} earlier line${st.dropped === 1 ? '' : 's'} not shown: only the last ${fmtNum(MAX_LOG_LINES)} lines are kept.`;
      }
      updateCount();
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }

    // Highlights the query in one line (DOM nodes, never HTML) or hides the line.
    function mark(node) {
      const tx = node.querySelector('.tx');
      const text = tx.textContent;
      const q = st.query.toLowerCase();
      const lower = text.toLowerCase();
      if (!q) { tx.replaceChildren(text); node.classList.remove('nomatch'); return; }
      let i = lower.indexOf(q);
      if (i < 0) { if (tx.firstElementChild) tx.replaceChildren(text); node.classList.add('nomatch'); return; }
      node.classList.remove('nomatch');
      st.count++;
      if (lower.length !== text.length) { tx.replaceChildren(el('mark', null, text)); return; }
      const parts = [];
      let at = 0;
      while (i >= 0) {
        if (i > at) parts.push(text.slice(at, i));
        parts.push(el('mark', null, text.slice(i, i + q.length)));
        at = i + q.length;
        i = lower.indexOf(q, at);
      }
      if (at < text.length) parts.push(text.slice(at));
      tx.replaceChildren(...parts);
    }

    function applySearch() {
      st.count = 0;
      for (const node of pre.children) if (node.classList.contains('line')) mark(node);
      updateCount();
    }

    function updateCount() {
      matches.textContent = st.query ? `${fmtNum(st.count)} match${st.count === 1 ? '' : 'es'}` : '';
      pre.classList.toggle('filtered', !!st.query);
    }

    return {
      // Called with the task's attempt numbers on every load; follows the newest
      // unless the user picked one.
      setAttempts(list) {
        const key = list.join(',');
        if (key !== st.attempts.join(',')) {
          st.attempts = list.slice();
          fillSelect(sel, list.slice().reverse().map((n, i) => [String(n), `attempt ${n}${i === 0 ? ' (newest)' : ''}`]), String(st.attempt ?? ''));
        }
        if (!list.length) {
          if (st.attempt === null) { pre.replaceChildren(el('span', { class: 'placeholder muted' }, '(no attempts yet)\n')); st.attempt = -1; }
          return;
        }
        const newest = list[list.length - 1];
        if (st.attempt === null || st.attempt === -1 || (!st.picked && st.attempt !== newest)) start(newest);
        sel.value = String(st.attempt);
      },
    };
  }

  // Fills the preview panel for one artifact preview answer.
  function renderArtifactPreview(box, p, artBase) {
    const body = el('div', { class: 'preview-body', id: 'artifact-preview-body', 'data-kind': p.kind || '' });
    const truncated = p.truncated && p.text != null ? el('p', { class: 'note', id: 'artifact-truncated' }, '(truncated: first 64 KiB)') : null;
    const text = p.text == null ? '' : String(p.text);
    switch (p.kind) {
      case 'text':
        body.append(el('pre', { class: 'preview-text' }, text));
        break;
      case 'json': {
        let shown = text;
        let note = null;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {
          note = el('p', { class: 'note' }, p.truncated ? 'Truncated JSON: shown as text.' : 'Not valid JSON: shown as text.');
        }
        body.append(note || '', el('pre', { class: 'preview-text' }, shown));
        break;
      }
      case 'csv': {
        const rows = parseCsv(text);
        const shown = rows.slice(0, 200);
        const [headRow, ...rest] = shown;
        const table = el('table', { class: 'grid csv' },
          headRow ? el('thead', null, el('tr', null, headRow.map((c) => el('th', null, c)))) : null,
          el('tbody', null, rest.map((r) => el('tr', null, r.map((c) => el('td', null, c))))));
        body.append(el('div', { class: 'table-wrap csv-wrap' }, table));
        if (rows.length > 200) body.append(el('p', { class: 'note' }, `First 200 of ${fmtNum(rows.length)} rows.`));
        break;
      }
      case 'image':
        body.append(el('img', { src: `${artBase}/raw`, alt: p.name || 'image', class: 'preview-image' }));
        break;
      case 'pickle': {
        const pk = p.pickle || {};
        body.append(el('p', null, `Python pickle (protocol ${pk.protocol ?? '?'}) of `, el('code', null, pk.type || 'an unknown type')));
        if (pk.value != null) body.append(el('pre', { class: 'preview-text' }, String(pk.value)));
        body.append(el('p', { class: 'note' }, 'not unpickled in the browser: use the Client API'));
        break;
      }
      case 'binary':
        body.append(el('p', null, `binary, ${p.size} bytes`, p.size >= 1024 ? ` (${humanBytes(p.size)})` : ''));
        break;
      case 'dir':
        body.append(el('p', null, `folder, ${p.size} bytes `, el('a', { href: `${artBase}/download`, download: `${p.name}.tar` }, '(download as .tar)')));
        break;
      default:
        body.append(p.text != null ? el('pre', { class: 'preview-text' }, text) : el('p', { class: 'muted' }, `No preview for kind ${p.kind}.`));
    }
    box.append(truncated || '', body);
  }

  // A small CSV reader: commas, double quotes ("" inside quotes), CRLF or LF.
  function parseCsv(text) {
    const rows = [];
    let row = [], cell = '', quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') { cell += '"'; i++; } else quoted = false;
        } else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') { row.push(cell); cell = ''; }
      else if (c === '\n' || c === '\r') {
        if (c === '\r' && text[i + 1] === '\n') i++;
        row.push(cell); rows.push(row); row = []; cell = '';
        if (rows.length > 1000) return rows;
      } else cell += c;
    }
    if (cell !== '' || row.length) { row.push(cell); rows.push(row); }
    return rows;
  }

  // ================================================================== a package
  function renderPackage(v, app, digest) {
    document.title = `Package ${shortDigest(digest)} · flowpack`;
    api(`packages/${enc(digest)}`).then((p) => {
      if (!v.alive) return;
      const flow = p.flow || {};
      const layers = p.layers || [];
      app.replaceChildren(el('section', { class: 'page' },
        crumbs(['Runs', '#/'], ['Package ' + shortDigest(p.digest || digest)]),
        el('section', { class: 'run-head' },
          el('div', { class: 'title-row' }, el('h1', null, 'Package ', el('span', { class: 'mono' }, shortDigest(p.digest || digest)))),
          el('dl', { class: 'meta' },
            metaItem('Digest', el('span', { class: 'mono', id: 'package-digest' }, p.digest || digest)),
            metaItem('Format', p.format || '—'),
            metaItem('Flow', flow.name ? el('a', { href: runsHash({ flow: flow.name }) }, flow.name) : '—'),
            flow.description ? metaItem('Description', flow.description) : null)),
        el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Layers')),
          el('div', { class: 'table-wrap' }, el('table', { class: 'grid', id: 'layers' },
            el('thead', null, el('tr', null, ['Kind', 'Digest', 'Size', 'Entries', 'Python', 'Platform', 'Steps'].map((h) => headCell(h)))),
            el('tbody', null, layers.map((l) => el('tr', { 'data-layer': l.kind },
              el('td', null, el('span', { class: 'tag' }, l.kind)),
              el('td', { class: 'mono small', title: l.digest }, shortDigest(l.digest)),
              el('td', { class: 'num', title: `${fmtNum(l.size)} bytes` }, humanBytes(l.size)),
              el('td', { class: 'num' }, fmtNum(l.entries)),
              el('td', null, l.python || '—'),
              el('td', { class: 'mono small' }, l.platform || '—'),
              el('td', null, (l.steps || []).length ? l.steps.join(', ') : el('span', { class: 'muted' }, 'all')))))))),
        el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Steps')),
          el('div', { class: 'table-wrap' }, packageSteps(flow))),
        el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', null, 'Flow as pushed')),
          el('pre', { id: 'package-flow', class: 'json' }, JSON.stringify(flow, null, 2)))));
    }).catch((e) => {
      if (!v.alive) return;
      showError(e.message);
      app.replaceChildren(el('section', { class: 'page' }, crumbs(['Runs', '#/'], ['Package']),
        el('p', { class: 'muted' }, 'This package could not be loaded.')));
    });
  }

  function packageSteps(flow) {
    const steps = flow.steps && typeof flow.steps === 'object' ? flow.steps : {};
    // Flow order: breadth-first from start, then the rest by name.
    const names = [];
    const queue = steps.start ? ['start'] : [];
    while (queue.length) {
      const n = queue.shift();
      if (names.includes(n) || !steps[n]) continue;
      names.push(n);
      queue.push(...transitionTargets(steps[n].next));
    }
    for (const n of Object.keys(steps).sort()) if (!names.includes(n)) names.push(n);
    return el('table', { class: 'grid', id: 'package-steps' },
      el('thead', null, el('tr', null, ['Step', 'Run', 'Next', 'Image', 'Retry', 'Timeout'].map((h) => headCell(h)))),
      el('tbody', null, names.map((n) => {
        const s = steps[n] || {};
        const set = s.settings || {};
        const retry = set.retry && set.retry.times ? `${set.retry.times}× after ${set.retry.delay_seconds || 0} s` : '—';
        return el('tr', { 'data-step': n },
          el('td', { class: 'mono' }, n, s.join ? el('span', { class: 'tag' }, 'join') : null),
          el('td', { class: 'mono small' }, runText(s.run)),
          el('td', { class: 'small' }, transitionText(s.next)),
          el('td', { class: 'mono small' }, set.image || '—'),
          el('td', null, retry),
          el('td', null, set.timeout_seconds != null ? humanDuration(set.timeout_seconds) : '—'));
      })));
  }

  function runText(run) {
    if (run == null) return '—';
    if (typeof run === 'string') return run;
    if (typeof run.shell === 'string') return run.shell;
    if (Array.isArray(run.exec)) return run.exec.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ');
    return JSON.stringify(run);
  }

  function transitionTargets(next) {
    if (!next || typeof next !== 'object') return [];
    if (next.linear) return [next.linear];
    if (next.split) return next.split;
    if (next.foreach) return [next.foreach.body];
    if (next.switch) return Object.values(next.switch.cases || {});
    return [];
  }

  function transitionText(next) {
    if (next == null || next === 'end') return 'end';
    if (typeof next === 'string') return next;
    if (next.linear) return `→ ${next.linear}`;
    if (next.split) return `split → ${next.split.join(', ')}`;
    if (next.foreach) return `foreach over ${next.foreach.over} → ${next.foreach.body}`;
    if (next.switch) return `switch on ${next.switch.on}: ` + Object.entries(next.switch.cases || {}).map(([k, t]) => `${k} → ${t}`).join(', ');
    return JSON.stringify(next);
  }

  // ================================================================== start
  function start() {
    $('error-close').addEventListener('click', clearError);
    api('info').then((info) => {
      $('store').textContent = info.store || '';
      $('store').title = `Store: ${info.store || ''}`;
      $('version').textContent = info.version ? `v${info.version}` : '';
    }).catch((e) => showError(e.message));
    window.addEventListener('hashchange', route);
    window.addEventListener('popstate', route);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
