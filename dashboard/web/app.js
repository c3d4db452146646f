/*
 * app.js - the analysts' dashboard page. Reads the JSON API of tm-dashboard
 * (docs/dashboard.md) and its Server-Sent Events stream, and draws: the national
 * headline figures, the sector x time heat table (rows in risk order), the risk ranking,
 * one small chart per active sector, the live incident feed, regions, agents (silent
 * first), the planners' priorities and a drill-down of one sector.
 *
 * Data flow: load() fetches everything once; the stream's `feed` events are put at the
 * top of the feed as they come (no request), and each `update` event (an aggregator
 * flush) schedules one refresh of the overview and of the open drill-down, coalesced so
 * a burst of flushes costs one round of requests. A slow poll backs the stream up.
 *
 * Every string from the API reaches the page through textContent or an attribute set
 * with setAttribute; nothing is parsed as HTML. A 401 from any API call sends the
 * browser to the login page. The view (range, region, drilled sector) lives in the URL
 * fragment so a wall screen can be bookmarked on it.
 */

import { lineChart, columnChart, barList, sparkline } from './chart.js';

const SECTOR_NAMES = {
  energy: 'Energy', transport: 'Transport', banking: 'Banking', 'financial-market': 'Financial market',
  health: 'Health', 'drinking-water': 'Drinking water', 'waste-water': 'Waste water',
  'digital-infrastructure': 'Digital infrastructure', 'ict-services': 'ICT services',
  'public-administration': 'Public administration', 'state-registries': 'State registries',
  'local-government': 'Local government', space: 'Space', postal: 'Postal',
  'waste-management': 'Waste management', chemicals: 'Chemicals', food: 'Food',
  manufacturing: 'Manufacturing', 'digital-providers': 'Digital providers', research: 'Research',
  'defence-industry': 'Defence industry', education: 'Education', media: 'Media', other: 'Other',
};

const REGION_NAMES = {
  'UA-05': 'Vinnytska', 'UA-07': 'Volynska', 'UA-09': 'Luhanska', 'UA-12': 'Dnipropetrovska',
  'UA-14': 'Donetska', 'UA-18': 'Zhytomyrska', 'UA-21': 'Zakarpatska', 'UA-23': 'Zaporizka',
  'UA-26': 'Ivano-Frankivska', 'UA-30': 'Kyiv (city)', 'UA-32': 'Kyivska', 'UA-35': 'Kirovohradska',
  'UA-40': 'Sevastopol (city)', 'UA-43': 'Crimea', 'UA-46': 'Lvivska', 'UA-48': 'Mykolaivska',
  'UA-51': 'Odeska', 'UA-53': 'Poltavska', 'UA-56': 'Rivnenska', 'UA-59': 'Sumska',
  'UA-61': 'Ternopilska', 'UA-63': 'Kharkivska', 'UA-65': 'Khersonska', 'UA-68': 'Khmelnytska',
  'UA-71': 'Cherkaska', 'UA-74': 'Chernihivska', 'UA-77': 'Chernivetska',
};

const RANGES = ['24h', '7d', '30d'];
const RANGE_TEXT = { '24h': 'last 24 hours', '7d': 'last 7 days', '30d': 'last 30 days' };
const FEED_LIMIT = 50;
const FEED_KEEP = 100; /* items kept in the list as live ones arrive */
const HEAT_STEPS = 8;
const POLL_MS = 30000; /* backs the stream up */
const AGENTS_MS = 15000; /* ages and silence change with the clock alone */
const PRIORITIES_MS = 60000;

const state = {
  range: '24h',
  region: '',
  sector: '', /* drilled-down sector, '' for none */
  feedSector: '',
  feedSeverity: '',
  showQuiet: false,
  overview: null,
  feedKeys: new Set(),
  refreshTimer: 0,
  refreshing: false,
  refreshAgain: false,
  stream: null,
  streamWasDown: false,
  lastAgents: 0,
};

const $ = (id) => document.getElementById(id);

/* ---- DOM helpers ------------------------------------------------------------------ */

/* el('td', {class: 'x', 'data-sector': s}, 'text', child): attributes and children, never HTML. */
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') n.className = v;
    else n.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids) {
    if (k === undefined || k === null) continue;
    n.appendChild(typeof k === 'object' ? k : document.createTextNode(String(k)));
  }
  return n;
}

function svgEl(attrs) {
  const n = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  return n;
}

function empty(n) {
  while (n.firstChild) n.removeChild(n.firstChild);
  return n;
}

function setText(id, s) {
  $(id).textContent = s;
}

const fmt = new Intl.NumberFormat('en-US');
const num = (v) => fmt.format(Number(v) || 0);
const sectorName = (id) => SECTOR_NAMES[id] || id;
const regionName = (id) => (REGION_NAMES[id] ? `${id} ${REGION_NAMES[id]}` : id);
const sumOf = (a) => (a || []).reduce((s, v) => s + (Number(v) || 0), 0);

/* Window labels (docs/redis-keys.md): YYYYMMDDHH, YYYYMMDD, YYYYMMDDHHMM; UTC. */
function labelTick(l, long) {
  const s = String(l || '');
  const date = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}`;
  if (s.length === 10) return long ? `${date} ${s.slice(8, 10)}:00 UTC` : `${s.slice(8, 10)}h`;
  if (s.length === 12) return long ? `${date} ${s.slice(8, 10)}:${s.slice(10, 12)} UTC` : `${s.slice(8, 10)}:${s.slice(10, 12)}`;
  if (s.length === 8) return long ? date : `${s.slice(6, 8)}.${s.slice(4, 6)}`;
  return s;
}

function timeOf(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts || '');
  const iso = d.toISOString();
  const today = new Date().toISOString().slice(0, 10);
  return iso.slice(0, 10) === today ? iso.slice(11, 19) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

function ago(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function severityBand(sev) {
  const v = Number(sev) || 0;
  if (v >= 9) return 'critical';
  if (v >= 7) return 'high';
  if (v >= 4) return 'medium';
  return 'low';
}

/* ---- API -------------------------------------------------------------------------- */

class AuthNeeded extends Error {}

function toLogin() {
  if (!location.pathname.endsWith('login.html')) location.replace('login.html');
}

async function api(path) {
  const res = await fetch(path, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
  if (res.status === 401) {
    toLogin();
    throw new AuthNeeded('login needed');
  }
  if (!res.ok) {
    let reason = res.statusText;
    try {
      reason = (await res.json()).error || reason;
    } catch (e) {
      /* not JSON: keep the status text */
    }
    throw new Error(`${path.split('?')[0]}: ${res.status} ${reason}`);
  }
  return res.json();
}

function showError(err) {
  if (err instanceof AuthNeeded) return;
  const p = $('error');
  p.textContent = `cannot load data: ${err.message}`;
  p.hidden = false;
}

function clearError() {
  $('error').hidden = true;
}

/* ---- overview ---------------------------------------------------------------------- */

function heatStep(v, max) {
  if (!(v > 0) || !(max > 0)) return 0;
  return Math.min(HEAT_STEPS, 1 + Math.floor(((HEAT_STEPS - 1) * Math.log1p(v)) / Math.log1p(max)));
}

function trendText(t) {
  if (!t) return { text: 'no baseline yet', cls: 'trend-none', short: '–' };
  const z = Number(t.z) || 0;
  const arrow = z >= 1 ? '▲' : z <= -1 ? '▼' : '►';
  const short = `${arrow} z ${z.toFixed(1)}`;
  const text = `baseline ${Number(t.baseline || 0).toFixed(1)}/day, z = ${z.toFixed(2)}`;
  return { text, short, cls: t.anomaly ? 'trend-anomaly' : z >= 1 ? 'trend-up' : 'trend-flat', anomaly: !!t.anomaly };
}

function renderHeadline(o) {
  const n = o.national || {};
  $('headline').setAttribute('data-day', o.day || '');
  setText('n-today', num(n.today));
  setText('n-serious', num(n.serious_today));
  setText('n-sources', num(n.sources_today));
  setText('n-24h', num(n.events_24h));
  setText('n-7d', num(n.events_7d));
  setText('n-30d', num(n.events_30d));
  const t = trendText(n.trend);
  setText('n-trend', t.anomaly ? `ANOMALY ${t.short}` : t.short);
  setText('n-trend-detail', t.text);
  $('n-trend-tile').className = `tile trend ${t.cls}`;
  setText('updated', o.generated_ms ? `updated ${new Date(o.generated_ms).toISOString().slice(11, 19)} UTC` : '');
}

function isActive(s) {
  return sumOf(s.series) > 0 || (Number(s.today) || 0) > 0;
}

function renderSectorTable(o) {
  const labels = o.labels || [];
  const head = empty($('sector-head'));
  head.appendChild(el('th', { class: 'rank', scope: 'col', title: 'risk rank' }, '#'));
  head.appendChild(el('th', { class: 'name', scope: 'col' }, 'sector'));
  head.appendChild(el('th', { class: 'num', scope: 'col' }, 'today'));
  head.appendChild(el('th', { class: 'num', scope: 'col', title: 'severity 7-10 today' }, 'serious'));
  head.appendChild(el('th', { class: 'num', scope: 'col', title: `events in the ${RANGE_TEXT[o.range] || ''}` }, o.range || ''));
  head.appendChild(el('th', { class: 'trend', scope: 'col' }, 'trend'));
  for (const l of labels) head.appendChild(el('th', { class: 'col-t', scope: 'col', title: labelTick(l, true), 'data-label': l }, labelTick(l)));

  const sectors = o.sectors || [];
  let max = 0;
  for (const s of sectors) for (const v of s.series || []) max = Math.max(max, Number(v) || 0);

  const body = empty($('sector-table').tBodies[0]);
  let quiet = 0;
  for (const s of sectors) {
    const active = isActive(s);
    if (!active) quiet++;
    const t = trendText(s.trend);
    const tr = el('tr', {
      'data-sector': s.sector, 'data-rank': s.rank || 0,
      class: `${active ? 'active' : 'quiet'}${s.sector === state.sector ? ' selected' : ''}${t.anomaly ? ' anomaly' : ''}`,
      hidden: !active && !state.showQuiet,
    });
    tr.appendChild(el('td', { class: 'rank' }, s.rank > 0 ? s.rank : '–'));
    tr.appendChild(el('th', { class: 'name', scope: 'row' },
      el('button', { type: 'button', class: 'sector-link', 'data-sector': s.sector, title: `drill down into ${sectorName(s.sector)}` }, sectorName(s.sector))));
    tr.appendChild(el('td', { class: 'num today', 'data-testid': 'today' }, num(s.today)));
    tr.appendChild(el('td', { class: `num serious${s.serious_today > 0 ? ' hot' : ''}`, 'data-testid': 'serious' }, num(s.serious_today)));
    tr.appendChild(el('td', { class: 'num total', 'data-testid': 'range-total' }, num(sumOf(s.series))));
    tr.appendChild(el('td', { class: `trend ${t.cls}`, title: t.text }, t.anomaly ? `${t.short} !` : t.short));
    (s.series || []).forEach((v, i) => {
      tr.appendChild(el('td', {
        class: `cell heat-${heatStep(Number(v) || 0, max)}`, 'data-label': labels[i], 'data-value': Number(v) || 0,
        title: `${sectorName(s.sector)}, ${labelTick(labels[i], true)}: ${Number(v) || 0} events`,
      }, Number(v) || 0));
    });
    body.appendChild(tr);
  }
  const btn = $('toggle-quiet');
  btn.hidden = quiet === 0;
  btn.textContent = state.showQuiet ? `hide ${quiet} quiet sectors` : `show ${quiet} quiet sectors`;
  renderLegend(max);
}

function renderLegend(max) {
  const p = empty($('heat-legend'));
  p.appendChild(el('span', { class: 'legend-title' }, 'events per cell: '));
  p.appendChild(el('span', { class: 'swatch heat-0' }, '0'));
  if (max <= 0) return;
  const seen = new Set();
  for (let step = 1; step <= HEAT_STEPS; step++) {
    /* the smallest value that gets this step */
    let lo = Math.ceil(Math.expm1(((step - 1) * Math.log1p(max)) / (HEAT_STEPS - 1)));
    lo = Math.max(1, Math.min(lo, max));
    while (lo < max && heatStep(lo, max) < step) lo++;
    if (heatStep(lo, max) !== step || seen.has(lo)) continue;
    seen.add(lo);
    p.appendChild(el('span', { class: `swatch heat-${step}` }, step === HEAT_STEPS ? `${num(lo)}+` : num(lo)));
  }
}

function renderRisk(o) {
  const list = empty($('risk-list'));
  const ranked = (o.sectors || []).filter((s) => s.rank > 0).sort((a, b) => a.rank - b.rank);
  const max = Math.max(1, ...ranked.map((s) => Number(s.risk) || 0));
  for (const s of ranked.slice(0, 12)) {
    const t = trendText(s.trend);
    list.appendChild(el('li', { 'data-sector': s.sector, class: t.anomaly ? 'anomaly' : '' },
      el('span', { class: 'rank' }, s.rank),
      el('button', { type: 'button', class: 'sector-link', 'data-sector': s.sector }, sectorName(s.sector)),
      el('meter', { min: 0, max: max.toFixed(2), value: (Number(s.risk) || 0).toFixed(2), title: `risk ${s.risk}` }),
      el('span', { class: 'risk-value' }, (Number(s.risk) || 0).toFixed(1)),
      t.anomaly ? el('span', { class: 'badge anomaly' }, 'anomaly') : null));
  }
  if (!ranked.length) list.appendChild(el('li', { class: 'empty' }, 'no sector has a risk score yet'));
}

function renderMultiples(o) {
  const box = empty($('multiples'));
  const active = (o.sectors || []).filter(isActive);
  for (const s of active) {
    const svg = svgEl({ class: 'spark', 'data-sector': s.sector, role: 'img', 'aria-label': `${sectorName(s.sector)} events` });
    sparkline(svg, { labels: o.labels, values: s.series, tick: labelTick, cls: 's0' });
    box.appendChild(el('figure', { class: `multiple${s.sector === state.sector ? ' selected' : ''}`, 'data-sector': s.sector },
      el('figcaption', {},
        el('button', { type: 'button', class: 'sector-link', 'data-sector': s.sector }, sectorName(s.sector)),
        el('span', { class: 'total' }, num(sumOf(s.series)))),
      svg));
  }
  if (!active.length) box.appendChild(el('p', { class: 'empty' }, 'no events in this range'));
}

function renderRegions(o) {
  const list = empty($('regions'));
  const regions = o.regions || [];
  for (const r of regions) {
    list.appendChild(el('li', { 'data-region': r.region, class: r.region === state.region ? 'selected' : '' },
      el('button', { type: 'button', class: 'region-link', 'data-region': r.region }, regionName(r.region)),
      el('span', { class: 'v' }, num(r.today))));
  }
  $('regions-empty').hidden = regions.length > 0;
}

function renderOverview(o) {
  state.overview = o;
  document.body.setAttribute('data-loaded', 'true');
  for (const n of document.querySelectorAll('.range-label')) n.textContent = `· ${RANGE_TEXT[o.range] || o.range}`;
  renderHeadline(o);
  lineChart($('national-chart'), {
    labels: o.labels, tick: labelTick, width: 440, height: 220, maxTicks: 6,
    series: [{ name: 'events', values: (o.national || {}).series || [], cls: 's0' }],
  });
  renderSectorTable(o);
  renderRisk(o);
  renderMultiples(o);
  renderRegions(o);
}

async function loadOverview() {
  const o = await api(`api/overview?range=${encodeURIComponent(state.range)}`);
  renderOverview(o);
}

/* ---- sector drill-down ---------------------------------------------------------------- */

function figure(label, value, cls) {
  return el('div', { class: `fig ${cls || ''}` }, el('span', { class: 'value' }, value), el('span', { class: 'label' }, label));
}

function kvList(list, entries, emptyText) {
  empty(list);
  for (const [k, v] of entries) list.appendChild(el('li', { 'data-key': k }, el('span', { class: 'k' }, k), el('span', { class: 'v' }, num(v))));
  if (!entries.length) list.appendChild(el('li', { class: 'empty' }, emptyText));
}

function renderDrill(d) {
  const box = $('drill');
  box.hidden = false;
  box.setAttribute('data-sector', d.sector);
  setText('drill-title', `${sectorName(d.sector)}${d.rank > 0 ? ` · risk rank ${d.rank} (${Number(d.risk || 0).toFixed(1)})` : ''}`);
  const roll = d.roll || {};
  const t = trendText(d.trend);
  const figs = empty($('drill-figures'));
  figs.appendChild(figure('events, 24 h', num(roll.events_24h), 'f-24h'));
  figs.appendChild(figure('serious, 24 h', num(roll.serious_24h), 'f-serious'));
  figs.appendChild(figure('events, 7 d', num(roll.events_7d), 'f-7d'));
  figs.appendChild(figure('events, 30 d', num(roll.events_30d), 'f-30d'));
  figs.appendChild(figure('distinct sources today', num(d.sources_today), 'f-sources'));
  figs.appendChild(figure('operators hit today', num(d.operators_today), 'f-operators'));
  figs.appendChild(figure(t.text, t.anomaly ? `ANOMALY ${t.short}` : t.short, `f-trend ${t.cls}`));

  const series = d.series || {};
  const ds = $('drill-series');
  ds.setAttribute('data-sector', d.sector);
  lineChart(ds, {
    labels: d.labels, tick: labelTick,
    series: [{ name: 'events', values: series.events || [], cls: 's0' }, { name: 'serious', values: series.serious || [], cls: 's1' }],
  });
  const minutes = d.minutes || {};
  const dm = $('drill-minutes');
  dm.setAttribute('data-sector', d.sector);
  columnChart(dm, { labels: minutes.labels || [], values: minutes.events || [], tick: labelTick, maxTicks: 6, cls: 's2' });

  const cats = Object.entries(d.categories || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const dc = $('drill-categories');
  dc.setAttribute('data-sector', d.sector);
  barList(dc, { items: cats.map(([k, v]) => ({ label: k, value: Number(v) || 0 })), cls: 's4' });

  const bands = empty($('drill-severity'));
  const sev = d.severity || {};
  for (const b of ['critical', 'high', 'medium', 'low']) {
    bands.appendChild(el('div', { class: `band band-${b}`, 'data-band': b }, el('span', { class: 'value' }, num(sev[b])), el('span', { class: 'label' }, b)));
  }
  const techs = Object.entries(d.techniques || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  kvList($('drill-techniques'), techs.slice(0, 10), 'no techniques recorded');
  kvList($('drill-sources'), (d.top_sources || []).map((s) => [s.src, s.events]), 'no sources recorded today');
}

async function loadDrill() {
  if (!state.sector) {
    $('drill').hidden = true;
    return;
  }
  const d = await api(`api/sector/${encodeURIComponent(state.sector)}?range=${encodeURIComponent(state.range)}`);
  if (d.sector === state.sector) renderDrill(d);
}

/* ---- feed ----------------------------------------------------------------------------- */

function feedKey(it) {
  return it.id || it.stream_id;
}

function feedItem(it, fresh) {
  const band = severityBand(it.severity);
  return el('li', {
    'data-id': it.id || '', 'data-stream-id': it.stream_id || '', 'data-sector': it.sector || '',
    'data-severity': it.severity, class: `sev-${band}${fresh ? ' new' : ''}`,
  },
  el('span', { class: 'sev', title: `severity ${it.severity} (${band})` }, it.severity),
  el('span', { class: 'time', title: it.ts || '' }, timeOf(it.ts)),
  el('span', { class: 'what' },
    el('span', { class: 'cat' }, it.category || ''),
    it.technique ? el('span', { class: 'tech' }, it.technique) : null,
    el('button', { type: 'button', class: 'sector-link', 'data-sector': it.sector }, sectorName(it.sector)),
    el('span', { class: 'region', title: regionName(it.region) }, it.region || ''),
    el('span', { class: 'op' }, it.operator || ''),
    it.src ? el('span', { class: 'src' }, it.src) : null),
  it.summary ? el('span', { class: 'summary' }, it.summary) : null);
}

function feedMatches(it) {
  if (state.region && it.region !== state.region) return false;
  if (state.feedSector && it.sector !== state.feedSector) return false;
  if (state.feedSeverity && (Number(it.severity) || 0) < Number(state.feedSeverity)) return false;
  return true;
}

function feedQuery() {
  const q = new URLSearchParams({ limit: String(FEED_LIMIT) });
  if (state.region) q.set('region', state.region);
  if (state.feedSector) q.set('sector', state.feedSector);
  if (state.feedSeverity) q.set('min_severity', state.feedSeverity);
  return q.toString();
}

async function loadFeed() {
  const f = await api(`api/feed?${feedQuery()}`);
  const list = empty($('feed'));
  state.feedKeys.clear();
  for (const it of f.items || []) {
    state.feedKeys.add(feedKey(it));
    list.appendChild(feedItem(it, false));
  }
  $('feed-empty').hidden = list.children.length > 0;
}

function addLiveFeedItem(it) {
  if (!it || !feedMatches(it) || state.feedKeys.has(feedKey(it))) return;
  state.feedKeys.add(feedKey(it));
  const list = $('feed');
  list.insertBefore(feedItem(it, true), list.firstChild);
  while (list.children.length > FEED_KEEP) {
    const last = list.lastChild;
    state.feedKeys.delete(last.getAttribute('data-id') || last.getAttribute('data-stream-id'));
    list.removeChild(last);
  }
  $('feed-empty').hidden = true;
}

/* ---- agents, priorities -------------------------------------------------------------- */

async function loadAgents() {
  const a = await api('api/agents');
  state.lastAgents = Date.now();
  const body = empty($('agents').tBodies[0]);
  const agents = a.agents || [];
  let silent = 0;
  for (const g of agents) {
    if (g.silent) silent++;
    body.appendChild(el('tr', { 'data-agent': `${g.operator}/${g.agent}`, class: g.silent ? 'silent' : 'ok' },
      el('td', { class: 'status' }, el('span', { class: `badge ${g.silent ? 'silent' : 'ok'}` }, g.silent ? 'SILENT' : 'ok')),
      el('td', { class: 'who' }, el('span', { class: 'op' }, g.operator), ' / ', el('span', { class: 'agent' }, g.agent),
        g.last_error ? el('span', { class: 'agent-error', title: g.last_error }, ` ⚠ ${g.last_error}`) : null),
      el('td', { class: 'age', title: g.last_seen ? new Date(g.last_seen).toISOString() : '' }, ago(g.age_s)),
      el('td', {}, sectorName(g.sector || '')),
      el('td', {}, g.region || ''),
      el('td', { class: 'num', title: `${num(g.spool_bytes)} bytes` }, num(g.spool_events)),
      el('td', { class: `num${(g.agent_lost || 0) + (g.seq_lost || 0) > 0 ? ' hot' : ''}`, title: `reported by the agent ${num(g.agent_lost)}, sequence gaps ${num(g.seq_lost)}` },
        num((Number(g.agent_lost) || 0) + (Number(g.seq_lost) || 0))),
      el('td', {}, g.version || '')));
  }
  $('agents-empty').hidden = agents.length > 0;
  const after = Math.round((Number(a.silent_after_ms) || 0) / 1000);
  setText('agents-summary', agents.length ? `${silent} silent of ${agents.length} (no heartbeat for ${after} s)` : '');
  $('agents-title').classList.toggle('alert', silent > 0);
}

const PRIORITY_SKIP = new Set(['need', 'score']);

async function loadPriorities() {
  const p = await api('api/priorities');
  const list = empty($('priorities'));
  const items = p.items || [];
  for (const it of items) {
    const details = Object.entries(it).filter(([k, v]) => !PRIORITY_SKIP.has(k) && v !== '' && v !== null && typeof v !== 'object');
    list.appendChild(el('li', { 'data-need': it.need },
      el('span', { class: 'need' }, it.need),
      el('span', { class: 'score' }, Number(it.score || 0).toFixed(1)),
      el('span', { class: 'details' }, details.slice(0, 6).map(([k, v]) => `${k}: ${v}`).join(' · '))));
  }
  $('priorities-empty').hidden = items.length > 0;
}

/* ---- refresh and the live stream --------------------------------------------------------- */

async function refresh() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  try {
    const work = [loadOverview(), loadDrill()];
    if (Date.now() - state.lastAgents > 3000) work.push(loadAgents());
    await Promise.all(work);
    clearError();
  } catch (e) {
    showError(e);
  } finally {
    state.refreshing = false;
    if (state.refreshAgain) {
      state.refreshAgain = false;
      scheduleRefresh(200);
    }
  }
}

function scheduleRefresh(delay) {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => {
    state.refreshTimer = 0;
    refresh();
  }, delay);
}

function setStatus(cls, text) {
  const s = $('live-status');
  s.className = `status ${cls}`;
  s.textContent = text;
}

function connectStream() {
  if (state.stream) state.stream.close();
  const es = new EventSource('api/stream');
  state.stream = es;
  es.addEventListener('open', () => {
    setStatus('status-live', 'live');
    /* what the feed got while the stream was down comes from the API */
    if (state.streamWasDown) loadFeed().catch(showError);
    state.streamWasDown = false;
  });
  es.addEventListener('feed', (ev) => {
    try {
      addLiveFeedItem(JSON.parse(ev.data));
    } catch (e) {
      /* a malformed event is skipped; the next refresh shows the feed as stored */
    }
  });
  es.addEventListener('update', () => scheduleRefresh(250));
  es.addEventListener('error', () => {
    state.streamWasDown = true;
    if (es.readyState === EventSource.CLOSED) {
      /* refused (401, 503 over max_streams, ...): find out which, then try again */
      setStatus('status-off', 'offline, retrying');
      api('api/agents').then(() => setTimeout(connectStream, 5000), () => setTimeout(connectStream, 5000));
    } else {
      setStatus('status-off', 'reconnecting');
    }
  });
}

/* ---- view state and controls ------------------------------------------------------------ */

function readHash() {
  const h = new URLSearchParams(location.hash.replace(/^#/, ''));
  const r = h.get('range');
  state.range = RANGES.includes(r) ? r : '24h';
  state.region = REGION_NAMES[h.get('region')] ? h.get('region') : '';
  state.sector = SECTOR_NAMES[h.get('sector')] ? h.get('sector') : '';
}

function writeHash() {
  const h = new URLSearchParams();
  if (state.range !== '24h') h.set('range', state.range);
  if (state.region) h.set('region', state.region);
  if (state.sector) h.set('sector', state.sector);
  const s = h.toString();
  history.replaceState(null, '', s ? `#${s}` : location.pathname);
}

function syncControls() {
  for (const b of document.querySelectorAll('.range button')) {
    const on = b.getAttribute('data-range') === state.range;
    b.classList.toggle('active', on);
    b.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  $('region-filter').value = state.region;
  $('feed-sector').value = state.feedSector;
  $('feed-severity').value = state.feedSeverity;
}

function selectSector(id) {
  state.sector = state.sector === id ? '' : id;
  writeHash();
  for (const n of document.querySelectorAll('#sector-table tbody tr, .multiple')) {
    n.classList.toggle('selected', n.getAttribute('data-sector') === state.sector);
  }
  loadDrill().then(() => {
    if (state.sector) $('drill').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  }, showError);
}

function selectRegion(id) {
  state.region = id;
  writeHash();
  syncControls();
  if (state.overview) renderRegions(state.overview);
  loadFeed().catch(showError);
}

function fillSelects() {
  const rs = $('region-filter');
  for (const [code, name] of Object.entries(REGION_NAMES)) rs.appendChild(el('option', { value: code }, `${code} ${name}`));
  const ss = $('feed-sector');
  for (const [id, name] of Object.entries(SECTOR_NAMES)) ss.appendChild(el('option', { value: id }, name));
}

function wire() {
  for (const b of document.querySelectorAll('.range button')) {
    b.addEventListener('click', () => {
      state.range = b.getAttribute('data-range');
      writeHash();
      syncControls();
      refresh();
    });
  }
  $('region-filter').addEventListener('change', (e) => selectRegion(e.target.value));
  $('feed-sector').addEventListener('change', (e) => {
    state.feedSector = e.target.value;
    loadFeed().catch(showError);
  });
  $('feed-severity').addEventListener('change', (e) => {
    state.feedSeverity = e.target.value;
    loadFeed().catch(showError);
  });
  $('toggle-quiet').addEventListener('click', () => {
    state.showQuiet = !state.showQuiet;
    if (state.overview) renderSectorTable(state.overview);
  });
  $('drill-close').addEventListener('click', () => selectSector(state.sector));
  /* one delegated listener for every sector and region button the renderers make */
  document.addEventListener('click', (e) => {
    const t = e.target instanceof Element ? e.target : null;
    const sb = t && t.closest('.sector-link');
    if (sb) {
      selectSector(sb.getAttribute('data-sector'));
      return;
    }
    const rb = t && t.closest('.region-link');
    if (rb) selectRegion(state.region === rb.getAttribute('data-region') ? '' : rb.getAttribute('data-region'));
  });
  window.addEventListener('hashchange', () => {
    readHash();
    syncControls();
    refresh();
    loadFeed().catch(showError);
  });
}

async function start() {
  fillSelects();
  readHash();
  syncControls();
  wire();
  try {
    await Promise.all([loadOverview(), loadFeed(), loadAgents(), loadPriorities(), loadDrill()]);
    clearError();
  } catch (e) {
    showError(e);
    if (e instanceof AuthNeeded) return;
  }
  connectStream();
  setInterval(refresh, POLL_MS);
  setInterval(() => loadAgents().catch(showError), AGENTS_MS);
  setInterval(() => loadPriorities().catch(showError), PRIORITIES_MS);
}

start();
