/*
 * chart.js - the dashboard's own small SVG charts: a line chart (one or more series
 * over labelled windows), a column chart, horizontal bars and a sparkline. No library:
 * each function empties the <svg> it is given and draws into it with DOM calls, so no
 * markup is ever built from data and nothing needs inline styles (colours come from
 * CSS classes, geometry from SVG attributes, both allowed by the page's CSP).
 *
 * Every drawn data point carries data-label and data-value, and the <svg> gets
 * data-total (sum of the first series) and data-points, so tests and people reading the
 * DOM see the numbers the picture was drawn from. A <title> on each point gives the
 * exact value as a tooltip.
 */

const NS = 'http://www.w3.org/2000/svg';

function node(name, attrs, parent) {
  const n = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (parent) parent.appendChild(n);
  return n;
}

function text(parent, x, y, s, cls, anchor) {
  const t = node('text', { x, y, class: cls || 'axis-text', 'text-anchor': anchor || 'middle' }, parent);
  t.textContent = s;
  return t;
}

function titled(n, s) {
  node('title', {}, n).textContent = s;
  return n;
}

function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
}

/* The smallest of 1, 2, 5 x 10^k that is >= v (at least 1): a readable axis maximum. */
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/* Axis top for four grid steps of a readable size (1, 2, 5 x 10^k, at least 1). */
function axisMax(v) {
  return 4 * Math.max(1, niceMax(v / 4));
}

function sum(values) {
  return values.reduce((a, b) => a + (Number(b) || 0), 0);
}

/* Which label indexes get a tick so that at most max ticks show; the last always does. */
function tickIndexes(n, max) {
  const step = Math.max(1, Math.ceil(n / max));
  const out = [];
  for (let i = n - 1; i >= 0; i -= step) out.unshift(i);
  return out;
}

function frame(svg, width, height, yMax, pad) {
  clear(svg);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  const g = node('g', { class: 'grid-lines' }, svg);
  const plotH = height - pad.top - pad.bottom;
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const y = pad.top + plotH - (plotH * i) / 4;
    node('line', { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: i === 0 ? 'axis' : 'grid' }, g);
    if (Number.isInteger(v)) text(g, pad.left - 6, y + 5, String(v), 'axis-text', 'end');
  }
  return plotH;
}

/*
 * Line chart. opts: labels (array of strings), series ([{name, values, cls}]), tick
 * (label -> short text for the x axis), width, height. The first series is the one
 * data-total sums. Returns the svg.
 */
export function lineChart(svg, opts) {
  const labels = opts.labels || [];
  const series = opts.series || [];
  const width = opts.width || 640;
  const height = opts.height || 220;
  const pad = { top: 12, right: 14, bottom: 30, left: 48 };
  const all = series.flatMap((s) => s.values.map(Number));
  const yMax = axisMax(Math.max(0, ...all));
  const plotH = frame(svg, width, height, yMax, pad);
  const plotW = width - pad.left - pad.right;
  const n = labels.length;
  const x = (i) => pad.left + (n <= 1 ? plotW / 2 : (plotW * i) / (n - 1));
  const y = (v) => pad.top + plotH - (plotH * v) / yMax;
  const tick = opts.tick || ((l) => l);

  for (const i of tickIndexes(n, opts.maxTicks || 8)) text(svg, x(i), height - 8, tick(labels[i]));

  series.forEach((s, si) => {
    const g = node('g', { class: `series ${s.cls || `s${si}`}`, 'data-series': s.name }, svg);
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(Number(v) || 0).toFixed(1)}`);
    if (si === 0 && n > 1) {
      node('polygon', {
        class: 'area',
        points: `${x(0).toFixed(1)},${y(0)} ${pts.join(' ')} ${x(n - 1).toFixed(1)},${y(0)}`,
      }, g);
    }
    node('polyline', { class: 'line', points: pts.join(' ') }, g);
    s.values.forEach((v, i) => {
      const c = node('circle', {
        class: 'point', cx: x(i).toFixed(1), cy: y(Number(v) || 0).toFixed(1), r: n > 40 ? 2 : 3.5,
        'data-label': labels[i], 'data-value': Number(v) || 0,
      }, g);
      titled(c, `${s.name} ${tick(labels[i], true)}: ${Number(v) || 0}`);
    });
  });
  if (series.length > 1) {
    let lx = pad.left + 4;
    series.forEach((s, si) => {
      node('rect', { x: lx, y: 2, width: 12, height: 4, class: `legend-swatch ${s.cls || `s${si}`}` }, svg);
      text(svg, lx + 16, 8, s.name, 'legend-text', 'start');
      lx += 24 + s.name.length * 8;
    });
  }
  svg.setAttribute('data-total', String(series.length ? sum(series[0].values) : 0));
  svg.setAttribute('data-points', String(n));
  return svg;
}

/* Column chart: opts labels, values, cls, tick, width, height. */
export function columnChart(svg, opts) {
  const labels = opts.labels || [];
  const values = (opts.values || []).map((v) => Number(v) || 0);
  const width = opts.width || 640;
  const height = opts.height || 220;
  const pad = { top: 12, right: 14, bottom: 30, left: 48 };
  const yMax = axisMax(Math.max(0, ...values));
  const plotH = frame(svg, width, height, yMax, pad);
  const plotW = width - pad.left - pad.right;
  const n = Math.max(1, labels.length);
  const slot = plotW / n;
  const tick = opts.tick || ((l) => l);
  const g = node('g', { class: `series ${opts.cls || 's0'}` }, svg);
  values.forEach((v, i) => {
    const h = (plotH * v) / yMax;
    const r = node('rect', {
      class: 'bar', x: (pad.left + i * slot + slot * 0.1).toFixed(1), width: Math.max(1, slot * 0.8).toFixed(1),
      y: (pad.top + plotH - h).toFixed(1), height: h.toFixed(1),
      'data-label': labels[i], 'data-value': v,
    }, g);
    titled(r, `${tick(labels[i], true)}: ${v}`);
  });
  for (const i of tickIndexes(labels.length, opts.maxTicks || 8)) {
    text(svg, pad.left + i * slot + slot / 2, height - 8, tick(labels[i]));
  }
  svg.setAttribute('data-total', String(sum(values)));
  svg.setAttribute('data-points', String(values.length));
  return svg;
}

/* Horizontal bars with their label and value: opts items [{label, value}], cls. */
export function barList(svg, opts) {
  const items = opts.items || [];
  const width = opts.width || 480;
  const row = 26;
  const labelW = opts.labelWidth || 150;
  const height = Math.max(row, items.length * row) + 4;
  clear(svg);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const max = Math.max(1, ...items.map((it) => it.value));
  const barW = width - labelW - 70;
  items.forEach((it, i) => {
    const yy = 2 + i * row;
    text(svg, labelW - 8, yy + 18, it.label, 'bar-label', 'end');
    const w = Math.max(2, (barW * it.value) / max);
    const r = node('rect', {
      class: `bar ${opts.cls || 's0'}`, x: labelW, y: yy + 4, width: w.toFixed(1), height: row - 8,
      'data-label': it.label, 'data-value': it.value,
    }, svg);
    titled(r, `${it.label}: ${it.value}`);
    text(svg, labelW + w + 6, yy + 18, String(it.value), 'bar-value', 'start');
  });
  svg.setAttribute('data-total', String(sum(items.map((it) => it.value))));
  svg.setAttribute('data-points', String(items.length));
  return svg;
}

/* A small line without axes for the sector small multiples: opts labels, values, tick. */
export function sparkline(svg, opts) {
  const labels = opts.labels || [];
  const values = (opts.values || []).map((v) => Number(v) || 0);
  const width = opts.width || 240;
  const height = opts.height || 60;
  const max = niceMax(Math.max(0, ...values));
  const n = values.length;
  const tick = opts.tick || ((l) => l);
  clear(svg);
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const x = (i) => 2 + (n <= 1 ? (width - 4) / 2 : ((width - 4) * i) / (n - 1));
  const y = (v) => height - 3 - ((height - 6) * v) / max;
  node('line', { x1: 0, x2: width, y1: height - 3, y2: height - 3, class: 'axis' }, svg);
  const g = node('g', { class: `series ${opts.cls || 's0'}` }, svg);
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  if (n > 1) node('polygon', { class: 'area', points: `${x(0)},${y(0)} ${pts.join(' ')} ${x(n - 1)},${y(0)}` }, g);
  node('polyline', { class: 'line', points: pts.join(' '), 'vector-effect': 'non-scaling-stroke' }, g);
  values.forEach((v, i) => {
    const c = node('circle', {
      class: v > 0 ? 'point' : 'point zero', cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 0.1,
      'data-label': labels[i], 'data-value': v,
    }, g);
    titled(c, `${tick(labels[i], true)}: ${v}`);
  });
  svg.setAttribute('data-total', String(sum(values)));
  svg.setAttribute('data-points', String(n));
  return svg;
}
