#!/usr/bin/env node
/*
 * dashboard.test.mjs - the dashboard in a real browser, end to end.
 *
 * Starts, on loopback ports picked at run time, the real pipeline: tm-devkafka, a private
 * redis-server, tm-collector (HTTP ingest, one bearer token per operator), tm-aggregator,
 * tm-dashboard (with a login token) and one tm-agent (for the agents panel). Headless
 * Debian chromium, driven by playwright-core, signs in through the login form and opens
 * the page before any event exists; the test then posts a known set of events to the
 * collector and waits for the page to show them live. Every expected number is computed
 * here from the events posted (not read from the API), except the risk order, which is
 * the aggregator's formula: that one is compared with /api/overview. Finally one new
 * severity-9 event must reach the feed within 2 seconds of being posted.
 *
 * Binaries come from $TM_BUILD (default build/); the screenshot goes to
 * $TM_BUILD/dashboard.png. Prints cmocka-style "[  PASSED  ]" / "[  FAILED  ]" lines so
 * tests/run-tests.sh counts its checks, and exits 0 only when every check passed.
 * Every process it starts is stopped by PID (SIGTERM, then SIGKILL) on every exit path,
 * and the whole run is bounded by OVERALL_MS.
 *
 * tm-devkafka keeps data in memory only (about the last 5 MB per partition); this test
 * sends a few dozen events, far below that.
 */

import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = process.env.TM_ROOT ? path.resolve(process.env.TM_ROOT) : path.resolve(HERE, '../..');
const BUILD = path.resolve(ROOT, process.env.TM_BUILD || 'build');
const WEB = path.join(ROOT, 'dashboard/web');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const OVERALL_MS = 180000; /* the whole run */
const LIVE_MS = 2000; /* a new event must be in the feed this soon after it was posted */
const STEP_MS = 30000; /* any single wait */
const DASH_TOKEN = crypto.randomBytes(16).toString('hex');

/* ---- reporting ------------------------------------------------------------------------ */

const results = [];
const log = (...a) => console.log(...a);

function fail(msg) {
  throw new Error(msg);
}

function expectEq(what, got, want) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) fail(`${what}: page shows ${g}, expected ${w}`);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`[       OK ] ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false, msg: e.message });
    log(`[  FAILED  ] ${name}: ${e.message}`);
  }
}

function summary() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.filter((r) => !r.ok);
  log(`[==========] ${results.length} test(s) run.`);
  log(`[  PASSED  ] ${passed} test(s).`);
  if (failed.length) {
    log(`[  FAILED  ] ${failed.length} test(s), listed below:`);
    for (const f of failed) log(`[  FAILED  ] ${f.name}`);
  }
  return failed.length === 0;
}

/* ---- processes -------------------------------------------------------------------------- */

const procs = [];
let tmp = '';

/* Starts cmd; its stderr goes to tmp/NAME.log, its stdout lines are kept for waitLine. */
function start(name, cmd, args) {
  const logFile = path.join(tmp, `${name}.log`);
  const err = fs.openSync(logFile, 'w');
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', err] });
  fs.closeSync(err);
  const p = { name, child, pid: child.pid, lines: [], waiters: [], exited: null, logFile };
  child.on('error', (e) => {
    p.exited = `cannot run: ${e.message}`;
    for (const w of p.waiters) w();
  });
  child.on('exit', (code, sig) => {
    p.exited = sig ? `killed by ${sig}` : `exit ${code}`;
    for (const w of p.waiters) w();
  });
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    p.lines.push(line);
    for (const w of p.waiters) w();
  });
  procs.push(p);
  return p;
}

function tail(file, n) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).map((l) => `    | ${l}`).join('\n');
  } catch (e) {
    return '';
  }
}

/* Waits for a stdout line matching re; returns the match. Fails when the process exits. */
function waitLine(p, re, ms = STEP_MS) {
  return new Promise((resolve, reject) => {
    const done = () => {
      const m = p.lines.map((l) => l.match(re)).find(Boolean);
      if (m) {
        cleanup();
        resolve(m);
      } else if (p.exited) {
        cleanup();
        reject(new Error(`${p.name} ${p.exited} before printing ${re}; its log:\n${tail(p.logFile, 20)}`));
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${p.name} printed no ${re} within ${ms} ms; its log:\n${tail(p.logFile, 20)}`));
    }, ms);
    const cleanup = () => {
      clearTimeout(timer);
      p.waiters = p.waiters.filter((w) => w !== done);
    };
    p.waiters.push(done);
    done();
  });
}

const alive = (p) => p.exited === null && p.pid > 0;

/* SIGTERM newest first, up to 10 s for all, then SIGKILL what is left. */
async function stopAll() {
  for (const p of [...procs].reverse()) if (alive(p)) process.kill(p.pid, 'SIGTERM');
  const deadline = Date.now() + 10000;
  while (procs.some(alive) && Date.now() < deadline) await sleep(50);
  for (const p of procs) {
    if (alive(p)) {
      log(`e2e: ${p.name} (pid ${p.pid}) ignored SIGTERM for 10 s, sending SIGKILL`);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch (e) {
        /* gone meanwhile */
      }
    }
  }
}

/* Last resort on a synchronous exit path: nothing may outlive the test. */
process.on('exit', () => {
  for (const p of procs) {
    if (alive(p)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch (e) {
        /* already gone */
      }
    }
  }
  if (tmp && !process.env.TM_E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

function request(method, url, { headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout: STEP_MS }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer within ${STEP_MS} ms`)));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

async function until(what, fn, ms = STEP_MS, every = 100) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) fail(`${what}: not within ${ms} ms${last ? ` (${last.message})` : ''}`);
    await sleep(every);
  }
}

/* ---- the events ---------------------------------------------------------------------------- */

/* One operator per sector; the collector stamps sector and region from the token. */
const OPERATORS = [
  { op: 'e2e-energy', sector: 'energy', region: 'UA-30', perHour: [4, 2, 0, 3, 5, 1], sev: [9, 7, 5, 3, 8, 10, 4], cats: ['ddos', 'intrusion', 'bruteforce'] },
  { op: 'e2e-water', sector: 'drinking-water', region: 'UA-46', perHour: [2, 0, 1, 3, 0, 2], sev: [7, 2, 6, 9], cats: ['malware', 'scan'] },
  { op: 'e2e-lg', sector: 'local-government', region: 'UA-51', perHour: [3, 4, 2, 1, 0, 2], sev: [4, 6, 7, 2, 5], cats: ['phishing', 'malware', 'scan'] },
  { op: 'e2e-reg', sector: 'state-registries', region: 'UA-30', perHour: [1, 1, 0, 0, 2, 1], sev: [8, 10, 5], cats: ['intrusion', 'wiper'] },
  { op: 'e2e-tel', sector: 'digital-infrastructure', region: 'UA-63', perHour: [0, 2, 2, 1, 1, 0], sev: [3, 9, 6], cats: ['ddos', 'scan'] },
];
const TECHNIQUE = { ddos: 'T1498', intrusion: 'T1190', bruteforce: 'T1110', malware: 'T1204', scan: 'T1595', phishing: 'T1566', wiper: 'T1485' };
const runId = crypto.randomBytes(4).toString('hex');

const hourLabel = (ts) => ts.slice(0, 13).replace(/[-T]/g, '');
const dayLabel = (ts) => ts.slice(0, 10).replace(/-/g, '');
const minuteLabel = (ts) => ts.slice(0, 16).replace(/[-T:]/g, '');
const serious = (e) => e.severity >= 7;

function makeEvents(now) {
  const events = [];
  let n = 0;
  for (const o of OPERATORS) {
    let k = 0;
    o.perHour.forEach((count, hoursAgo) => {
      for (let j = 0; j < count; j++, k++) {
        /* within the hour hoursAgo back, 97 s apart, the newest 20 s ago */
        const ts = new Date(now - hoursAgo * 3600e3 - j * 97e3 - 20e3).toISOString();
        const category = o.cats[k % o.cats.length];
        events.push({
          id: `e2e-${runId}-${String(++n).padStart(3, '0')}`,
          ts,
          category,
          severity: o.sev[k % o.sev.length],
          attack: { technique: TECHNIQUE[category] },
          src: { ip: `203.0.113.${10 + (OPERATORS.indexOf(o) * 10) + (k % 3)}` },
          count: 1 + (k % 4),
          summary: `e2e ${o.sector} ${category} #${k}`,
          _op: o,
        });
      }
    });
  }
  return events.sort((a, b) => a.ts.localeCompare(b.ts));
}

function wire(e) {
  const { _op, ...rest } = e;
  return JSON.stringify(rest);
}

async function postEvent(collectorUrl, e) {
  const res = await request('POST', `${collectorUrl}/v1/events`, {
    headers: { Authorization: `Bearer ${e._op.token}`, 'Content-Type': 'application/x-ndjson' },
    body: `${wire(e)}\n`,
  });
  if (res.status !== 200) fail(`collector answered ${res.status} to event ${e.id}: ${res.body}`);
  const ans = JSON.parse(res.body);
  if (ans.accepted !== 1) fail(`collector did not accept event ${e.id}: ${res.body}`);
}

/* ---- the page -------------------------------------------------------------------------- */

const numberOf = (s) => Number(String(s).replace(/[^0-9.-]/g, ''));

async function textNum(page, sel) {
  return numberOf(await page.locator(sel).first().textContent({ timeout: 5000 }));
}

/* The data-label / data-value pairs a chart was drawn from (chart.js puts them there). */
async function chartData(page, sel) {
  return page.$$eval(`${sel} [data-value]`, (ns) => ns.map((n) => [n.getAttribute('data-label'), Number(n.getAttribute('data-value'))]));
}

function countBy(list, key) {
  const m = {};
  for (const x of list) m[key(x)] = (m[key(x)] || 0) + 1;
  return m;
}

/* ---- main --------------------------------------------------------------------------------- */

async function main() {
  /* What the test needs, with a clear reason when something is missing. */
  for (const b of ['tm-devkafka', 'tm-collector', 'tm-aggregator', 'tm-dashboard', 'tm-agent']) {
    if (!fs.existsSync(path.join(BUILD, b))) fail(`'${path.join(BUILD, b)}' not found: build first (make)`);
  }
  if (!fs.existsSync(CHROMIUM)) fail(`'${CHROMIUM}' not found: install Debian's chromium (deploy/install-deps.sh)`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    fail(`playwright-core is not installed: run 'npm ci --prefix tests/e2e' (${e.message})`);
  }

  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-e2e-'));

  /* Kafka */
  const kafka = start('tm-devkafka', path.join(BUILD, 'tm-devkafka'), ['--brokers', '1', '--partitions', '3']);
  const bootstrap = (await waitLine(kafka, /^(\S+:\d+.*)$/))[1];

  /* Redis: a free port, and make sure the server answering there is ours */
  let redisPort = 0;
  for (let attempt = 0; attempt < 3 && !redisPort; attempt++) {
    const port = await freePort();
    const dir = path.join(tmp, `redis-${attempt}`);
    fs.mkdirSync(dir);
    const r = start(`redis-${attempt}`, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', dir, '--daemonize', 'no']);
    const ok = await until(`redis-server on ${port}`, async () => {
      if (r.exited) return 'exited';
      const info = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'info', 'server'], { encoding: 'utf8', timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] });
      return info.includes(`process_id:${r.pid}`) ? 'ours' : null;
    }, 10000).catch(() => 'no');
    if (ok === 'ours') redisPort = port;
  }
  if (!redisPort) fail('redis-server did not start on a free port in 3 tries');

  /* Collector: one token per operator, stored as SHA-256 digests; the agent by network */
  let map = '';
  for (const o of OPERATORS) {
    o.token = crypto.randomBytes(16).toString('hex');
    const digest = crypto.createHash('sha256').update(o.token).digest('hex');
    map += `[operator.${o.op}]\nsector = ${o.sector}\nregion = ${o.region}\ntokens_sha256 = ${digest}\n\n`;
  }
  map += '[operator.e2e-agents]\nsector = drinking-water\nregion = UA-46\nnetworks = 127.0.0.0/8\n';
  fs.writeFileSync(path.join(tmp, 'identities.ini'), map);
  fs.writeFileSync(path.join(tmp, 'collector.ini'), `[identity]\nmap = ${path.join(tmp, 'identities.ini')}\n[kafka]\nlinger = 2ms\n`);
  const col = start('tm-collector', path.join(BUILD, 'tm-collector'), ['-c', path.join(tmp, 'collector.ini'), '--kafka', bootstrap,
    '--http', '127.0.0.1:0', '--lumberjack', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  const collectorUrl = `http://${(await waitLine(col, /^listening http (\S+)$/))[1]}`;
  const lumberjack = (await waitLine(col, /^listening lumberjack (\S+)$/))[1];
  await waitLine(col, /^listening admin /);

  /* Aggregator, with its defaults: a lone event is flushed as soon as a poll (50 ms)
   * brings nothing more, so the 2 s promise holds without tuning. */
  fs.writeFileSync(path.join(tmp, 'aggregator.ini'), '[aggregator]\n');
  const agg = start('tm-aggregator', path.join(BUILD, 'tm-aggregator'), ['-c', path.join(tmp, 'aggregator.ini'), '--kafka', bootstrap, '--redis', `127.0.0.1:${redisPort}`,
    '--group', `tm-e2e-${runId}`, '--admin', '127.0.0.1:0']);
  await waitLine(agg, /^listening admin /);

  /* Dashboard, with a login token */
  fs.writeFileSync(path.join(tmp, 'dashboard.ini'), `[auth]\ntokens = e2e:${DASH_TOKEN}\n`);
  const dash = start('tm-dashboard', path.join(BUILD, 'tm-dashboard'), ['-c', path.join(tmp, 'dashboard.ini'),
    '--redis', `127.0.0.1:${redisPort}`, '--http', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--web', WEB]);
  const base = `http://${(await waitLine(dash, /^listening http (\S+)$/))[1]}`;
  const apiGet = async (p) => {
    const res = await request('GET', `${base}${p}`, { headers: { Authorization: `Bearer ${DASH_TOKEN}` } });
    if (res.status !== 200) fail(`GET ${p}: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  };
  await until('the dashboard answering /api/overview', () => apiGet('/api/overview'));

  /* One agent, so the agents panel has a row (heartbeats every second) */
  fs.writeFileSync(path.join(tmp, 'quiet.log'), '');
  fs.writeFileSync(path.join(tmp, 'agent.ini'), `[agent]\nid = e2e-gw-1\nstate_dir = ${path.join(tmp, 'agent-state')}\nfsync = never\n` +
    `[shipper]\ncollectors = ${lumberjack}\nheartbeat = 1s\n[input.quiet]\ntype = file\nformat = json\npaths = ${path.join(tmp, 'quiet.log')}\n`);
  start('tm-agent', path.join(BUILD, 'tm-agent'), ['-c', path.join(tmp, 'agent.ini')]);

  log(`e2e: pipeline up (kafka ${bootstrap}, redis ${redisPort}, collector ${collectorUrl}, dashboard ${base})`);

  /* The browser */
  const args = ['--disable-dev-shm-usage'];
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--no-sandbox');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  try {
    await runBrowser(browser, base, collectorUrl, apiGet, redisPort);
  } finally {
    await browser.close();
  }
}

async function runBrowser(browser, base, collectorUrl, apiGet, redisPort) {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.setDefaultTimeout(STEP_MS);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    /* 401s before the login are expected; anything else red is a problem */
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });

  await check('an unauthenticated visit goes to the login form; a wrong token is refused; the right one signs in', async () => {
    await page.goto(`${base}/`);
    await page.waitForURL('**/login.html');
    await page.fill('#token', 'not-the-token');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    await page.fill('#token', DASH_TOKEN);
    await page.click('#login-submit');
    await page.waitForURL(`${base}/`);
    await page.locator('body[data-loaded]').waitFor({ state: 'attached' });
  });

  await check('before any event: empty feed, "no priorities yet", zero today', async () => {
    await page.locator('#priorities-empty').waitFor({ state: 'visible' });
    expectEq('priorities text', (await page.textContent('#priorities-empty')).trim(), 'no priorities yet');
    await page.locator('#feed-empty').waitFor({ state: 'visible' });
    expectEq('events today', await textNum(page, '#n-today'), 0);
    await page.locator('#live-status.status-live').waitFor();
  });

  /* The events, posted in event-time order so that none is late for the aggregator. */
  const now = Date.now();
  const events = makeEvents(now);
  for (const e of events) await postEvent(collectorUrl, e);
  log(`e2e: posted ${events.length} events (${events.filter(serious).length} serious) in ${Date.now() - now} ms`);

  const day = await page.getAttribute('#headline', 'data-day');
  const today = events.filter((e) => dayLabel(e.ts) === day);

  await check('the page shows the new events live (headline figures)', async () => {
    await until('the page showing every event in "last 24 h"', async () => (await textNum(page, '#n-24h')) === events.length, STEP_MS, 200);
    expectEq('events today', await textNum(page, '#n-today'), today.length);
    expectEq('serious today', await textNum(page, '#n-serious'), today.filter(serious).length);
    expectEq('distinct sources today', await textNum(page, '#n-sources'), new Set(today.map((e) => e.src.ip)).size);
    expectEq('last 7 days', await textNum(page, '#n-7d'), events.length);
    expectEq('last 30 days', await textNum(page, '#n-30d'), events.length);
  });

  await check('sector table: rows in risk order, today / serious / 24 h and every hour cell', async () => {
    const ov = await apiGet('/api/overview?range=24h');
    const rows = await page.$$eval('#sector-table tbody tr', (trs) => trs.map((tr) => ({
      sector: tr.getAttribute('data-sector'),
      hidden: tr.hidden,
      today: tr.querySelector('[data-testid=today]').textContent,
      serious: tr.querySelector('[data-testid=serious]').textContent,
      total: tr.querySelector('[data-testid=range-total]').textContent,
      cells: [...tr.querySelectorAll('td.cell')].map((c) => [c.getAttribute('data-label'), Number(c.textContent)]),
    })));
    expectEq('row order', rows.map((r) => r.sector), ov.sectors.map((s) => s.sector));
    const scored = ov.sectors.filter((s) => s.rank > 0).map((s) => s.sector);
    expectEq('sectors with a risk score', [...scored].sort(), OPERATORS.map((o) => o.sector).sort());
    expectEq('column labels', await page.$$eval('#sector-head th.col-t', (ths) => ths.map((t) => t.getAttribute('data-label'))), ov.labels);
    for (const o of OPERATORS) {
      const row = rows.find((r) => r.sector === o.sector);
      const mine = events.filter((e) => e._op === o);
      const mineToday = mine.filter((e) => dayLabel(e.ts) === day);
      if (row.hidden) fail(`row ${o.sector} is hidden although it has events`);
      expectEq(`${o.sector} today`, numberOf(row.today), mineToday.length);
      expectEq(`${o.sector} serious today`, numberOf(row.serious), mineToday.filter(serious).length);
      expectEq(`${o.sector} 24 h`, numberOf(row.total), mine.length);
      const perHour = countBy(mine, (e) => hourLabel(e.ts));
      expectEq(`${o.sector} hour cells`, row.cells, ov.labels.map((l) => [l, perHour[l] || 0]));
    }
    const quiet = rows.filter((r) => !OPERATORS.some((o) => o.sector === r.sector));
    if (quiet.some((r) => !r.hidden)) fail('a sector without events is shown before "show quiet sectors"');
    expectEq('risk list order', await page.$$eval('#risk-list li[data-sector]', (ls) => ls.map((l) => l.getAttribute('data-sector'))),
      ov.sectors.filter((s) => s.rank > 0).map((s) => s.sector));
  });

  await check('charts: national line and one small multiple per active sector, drawn from the right numbers', async () => {
    const ov = await apiGet('/api/overview?range=24h');
    const perHour = countBy(events, (e) => hourLabel(e.ts));
    expectEq('national chart', await chartData(page, '#national-chart'), ov.labels.map((l) => [l, perHour[l] || 0]));
    const drawn = await page.$$eval('#multiples svg[data-sector]', (s) => s.map((n) => n.getAttribute('data-sector')));
    expectEq('small multiples', [...drawn].sort(), OPERATORS.map((o) => o.sector).sort());
    for (const o of OPERATORS) {
      const mine = countBy(events.filter((e) => e._op === o), (e) => hourLabel(e.ts));
      expectEq(`${o.sector} chart`, await chartData(page, `#multiples svg[data-sector="${o.sector}"]`), ov.labels.map((l) => [l, mine[l] || 0]));
    }
  });

  await check('feed: every serious event, newest first by arrival, with its fields', async () => {
    const want = events.filter(serious);
    await until('the feed holding every serious event', async () => (await page.locator('#feed li[data-id]').count()) === want.length, 10000);
    const ids = await page.$$eval('#feed li[data-id]', (ls) => ls.map((l) => l.getAttribute('data-id')));
    expectEq('feed ids', [...ids].sort(), want.map((e) => e.id).sort());
    const e = want[want.length - 1];
    const li = page.locator(`#feed li[data-id="${e.id}"]`);
    expectEq('severity', numberOf(await li.locator('.sev').textContent()), e.severity);
    expectEq('category', await li.locator('.cat').textContent(), e.category);
    expectEq('region', await li.locator('.region').textContent(), e._op.region);
    expectEq('summary', await li.locator('.summary').textContent(), e.summary);
  });

  await check('drill-down: energy series, minutes, categories, severity bands, techniques, sources, operators', async () => {
    const o = OPERATORS[0];
    await page.click(`#sector-table tr[data-sector="${o.sector}"] .sector-link`);
    await page.locator(`#drill[data-sector="${o.sector}"]`).waitFor({ state: 'visible' });
    const mine = events.filter((e) => e._op === o);
    const mineToday = mine.filter((e) => dayLabel(e.ts) === day);
    const labels = await page.$$eval('#sector-head th.col-t', (ths) => ths.map((t) => t.getAttribute('data-label')));
    const perHour = countBy(mine, (e) => hourLabel(e.ts));
    const seriousPerHour = countBy(mine.filter(serious), (e) => hourLabel(e.ts));
    expectEq('events line', await chartData(page, '#drill-series [data-series=events]'), labels.map((l) => [l, perHour[l] || 0]));
    expectEq('serious line', await chartData(page, '#drill-series [data-series=serious]'), labels.map((l) => [l, seriousPerHour[l] || 0]));
    const minutes = await chartData(page, '#drill-minutes');
    expectEq('minute labels', minutes.length, 60);
    const perMinute = countBy(mine, (e) => minuteLabel(e.ts));
    expectEq('minute bars', minutes, minutes.map(([l]) => [l, perMinute[l] || 0]));
    const cats = Object.entries(countBy(mine, (e) => e.category)).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    expectEq('categories', await chartData(page, '#drill-categories'), cats);
    const bands = { critical: 0, high: 0, medium: 0, low: 0 };
    for (const e of mine) bands[e.severity >= 9 ? 'critical' : e.severity >= 7 ? 'high' : e.severity >= 4 ? 'medium' : 'low']++;
    const shown = await page.$$eval('#drill-severity [data-band]', (ns) => ns.map((n) => [n.getAttribute('data-band'), Number(n.querySelector('.value').textContent)]));
    expectEq('severity bands', Object.fromEntries(shown), bands);
    const techs = await page.$$eval('#drill-techniques li[data-key]', (ls) => ls.map((l) => [l.getAttribute('data-key'), Number(l.querySelector('.v').textContent)]));
    expectEq('techniques', Object.fromEntries(techs), countBy(mine, (e) => e.attack.technique));
    const srcs = await page.$$eval('#drill-sources li[data-key]', (ls) => ls.map((l) => [l.getAttribute('data-key'), Number(l.querySelector('.v').textContent)]));
    expectEq('top sources today', Object.fromEntries(srcs), countBy(mineToday, (e) => e.src.ip));
    expectEq('distinct sources today', await textNum(page, '#drill-figures .f-sources .value'), new Set(mineToday.map((e) => e.src.ip)).size);
    expectEq('operators hit today', await textNum(page, '#drill-figures .f-operators .value'), mineToday.length ? 1 : 0);
    expectEq('24 h', await textNum(page, '#drill-figures .f-24h .value'), mine.length);
  });

  await check('region filter: the feed shows only that region, the regions list marks it', async () => {
    const o = OPERATORS[1];
    await page.selectOption('#region-filter', o.region);
    const want = events.filter((e) => serious(e) && e._op.region === o.region).map((e) => e.id).sort();
    await until('the filtered feed', async () => {
      const ids = await page.$$eval('#feed li[data-id]', (ls) => ls.map((l) => l.getAttribute('data-id')));
      return JSON.stringify([...ids].sort()) === JSON.stringify(want);
    }, 10000);
    await page.locator(`#regions li.selected[data-region="${o.region}"]`).waitFor();
    const perRegion = countBy(today, (e) => e._op.region);
    const shown = await page.$$eval('#regions li[data-region]', (ls) => ls.map((l) => [l.getAttribute('data-region'), Number(l.querySelector('.v').textContent)]));
    expectEq('regions today', Object.fromEntries([...shown].sort()), Object.fromEntries(Object.entries(perRegion).sort()));
    if (shown.some(([, v], i) => i > 0 && v > shown[i - 1][1])) fail(`regions are not most first: ${JSON.stringify(shown)}`);
    await page.selectOption('#region-filter', '');
    await until('the unfiltered feed', async () => (await page.locator('#feed li[data-id]').count()) === events.filter(serious).length, 10000);
  });

  await check(`agents: the running agent is listed and not silent`, async () => {
    await until('the agent in the agents panel', async () => (await page.locator('#agents tr[data-agent="e2e-agents/e2e-gw-1"]').count()) === 1, 20000, 500);
    expectEq('agent status', (await page.textContent('#agents tr[data-agent="e2e-agents/e2e-gw-1"] .status')).trim(), 'ok');
  });

  /* The live event: posted now, it must be in the feed within LIVE_MS. */
  const o = OPERATORS[0];
  const live = { id: `e2e-${runId}-live`, ts: new Date().toISOString(), category: 'wiper', severity: 9,
    attack: { technique: 'T1485' }, src: { ip: '198.51.100.99' }, summary: 'e2e live wiper on the grid', _op: o };
  const todayBefore = numberOf(await page.textContent(`#sector-table tr[data-sector="${o.sector}"] [data-testid=today]`));
  await check(`a new severity-9 event appears in the feed within ${LIVE_MS} ms`, async () => {
    /* whatever an earlier failed check left, the feed must be unfiltered here */
    if ((await page.inputValue('#region-filter')) !== '') {
      await page.selectOption('#region-filter', '');
      await until('the unfiltered feed', async () => (await page.locator('#feed li[data-id]').count()) === events.filter(serious).length, 10000);
    }
    const t0 = Date.now();
    await postEvent(collectorUrl, live);
    const posted = Date.now() - t0;
    try {
      await page.locator(`#feed li[data-id="${live.id}"]`).waitFor({ state: 'attached', timeout: Math.max(1, LIVE_MS - (Date.now() - t0)) });
    } catch (e) {
      /* say how late it was, to tell a slow path from a lost event */
      const late = await page.locator(`#feed li[data-id="${live.id}"]`).waitFor({ state: 'attached', timeout: 10000 })
        .then(() => `it came after ${Date.now() - t0} ms`, () => 'it had not come 10 s later either');
      fail(`not in the feed ${LIVE_MS} ms after posting (the collector acknowledged after ${posted} ms; ${late})`);
    }
    const ms = Date.now() - t0;
    log(`e2e: live event in the feed ${ms} ms after posting (acknowledged after ${posted} ms)`);
    const first = await page.getAttribute('#feed li:first-child', 'data-id');
    expectEq('first feed item', first, live.id);
  });

  await check('the sector table follows the live event', async () => {
    const sel = `#sector-table tr[data-sector="${o.sector}"] [data-testid=today]`;
    const want = todayBefore + (dayLabel(live.ts) === day ? 1 : 0);
    await until(`${o.sector} today = ${want}`, async () => numberOf(await page.textContent(sel)) === want, 10000);
  });

  await check('range 7 d: one column per day, today\'s column holds today\'s events', async () => {
    await page.click('#range-7d');
    await until('7 day columns', async () => (await page.locator('#sector-head th.col-t').count()) === 7, 10000);
    const all = [...events, live];
    for (const s of OPERATORS) {
      const cells = await page.$$eval(`#sector-table tr[data-sector="${s.sector}"] td.cell`, (cs) => cs.map((c) => [c.getAttribute('data-label'), Number(c.textContent)]));
      const perDay = countBy(all.filter((e) => e._op === s), (e) => dayLabel(e.ts));
      expectEq(`${s.sector} day cells`, cells, cells.map(([l]) => [l, perDay[l] || 0]));
    }
    await page.click('#range-24h');
    await until('24 hour columns', async () => (await page.locator('#sector-head th.col-t').count()) === 24, 10000);
  });

  await check('"show quiet sectors" shows every sector of the vocabulary', async () => {
    await page.click('#toggle-quiet');
    expectEq('visible rows', await page.locator('#sector-table tbody tr:not([hidden])').count(), 24);
    await page.click('#toggle-quiet');
    expectEq('visible rows', await page.locator('#sector-table tbody tr:not([hidden])').count(), OPERATORS.length);
  });

  await check('priorities: the planners\' ranking once it exists (written here as tmctl would)', async () => {
    const cli = (...a) => execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(redisPort), ...a], { encoding: 'utf8', timeout: 5000 });
    cli('HSET', 'tm:need:N-e2e-2', 'sector', 'energy', 'kind', 'backup', 'title', 'offline backups, Kyiv grid');
    cli('HSET', 'tm:need:N-e2e-1', 'sector', 'drinking-water', 'kind', 'edr', 'title', 'EDR licences <for> "water" & co');
    cli('ZADD', 'tm:priorities', '7.5', 'N-e2e-2', '12.5', 'N-e2e-1');
    await page.reload();
    await page.locator('#priorities li[data-need]').first().waitFor();
    const shown = await page.$$eval('#priorities li[data-need]', (ls) => ls.map((l) => [l.getAttribute('data-need'), l.querySelector('.score').textContent, l.querySelector('.details').textContent]));
    expectEq('needs, highest first', shown.map((x) => x[0]), ['N-e2e-1', 'N-e2e-2']);
    expectEq('scores', shown.map((x) => x[1]), ['12.5', '7.5']);
    if (!shown[0][2].includes('EDR licences <for> "water" & co')) fail(`need text not shown as text: ${shown[0][2]}`);
    if (await page.isVisible('#priorities-empty')) fail('"no priorities yet" still shown');
    await page.locator('body[data-loaded]').waitFor({ state: 'attached' });
  });

  await check('no script errors or CSP violations in the browser', async () => {
    if (problems.length) fail(problems.slice(0, 5).join('; '));
  });

  await check('screenshot saved', async () => {
    const file = path.join(BUILD, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    if (!(fs.statSync(file).size > 10000)) fail(`${file} is suspiciously small`);
    log(`e2e: screenshot ${file}`);
  });
}

/* ---- run, bounded -------------------------------------------------------------------------- */

const started = Date.now();
let finished = false;
const overall = setTimeout(async () => {
  if (finished) return;
  log(`[  FAILED  ] overall: the run passed its ${OVERALL_MS} ms limit`);
  results.push({ name: 'overall time limit', ok: false });
  await stopAll();
  summary();
  process.exit(1);
}, OVERALL_MS);

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    log(`e2e: ${sig}, stopping what was started`);
    await stopAll();
    process.exit(1);
  });
}

let ok = false;
try {
  await main();
} catch (e) {
  results.push({ name: 'setup', ok: false, msg: e.message });
  log(`[  FAILED  ] setup: ${e.message}`);
}
finished = true;
clearTimeout(overall);
await stopAll();
for (const p of procs) {
  if (!results.every((r) => r.ok)) log(`e2e: ${p.name} (pid ${p.pid}) ${p.exited}; end of its log:\n${tail(p.logFile, 8)}`);
}
ok = summary();
log(`e2e: ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(ok ? 0 : 1);
