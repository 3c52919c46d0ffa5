// Small SVG charts drawn by hand (no chart library): a batch's progress bar, horizontal bars per category, stacked
// bars per day, and a weekday × hour heat map. Colours come from app.css by class; every mark has a <title> with
// its exact value, and each chart sits beside the table of its numbers.
import { svg } from './dom.js';

const WIDTH = 640;

// A batch's rows by state, as one bar (batch_progress's counters).
export function progressBar(batch) {
  const parts = [['completed', batch.completed], ['failed', batch.failed], ['cancelled', batch.cancelled],
    ['suppressed', batch.suppressed ?? 0], ['expired', batch.expired ?? 0], ['live', (batch.dialling ?? 0) + (batch.in_progress ?? 0)], ['retrying', batch.retrying], ['queued', batch.queued]];
  const total = Math.max(1, batch.total);
  let x = 0;
  return svg('svg', { class: 'progress', viewBox: '0 0 100 6', preserveAspectRatio: 'none', role: 'img',
    'aria-label': parts.map(([k, n]) => `${k} ${n}`).join(', ') },
  svg('rect', { class: 'seg-track', x: 0, y: 0, width: 100, height: 6 }),
  parts.filter(([, n]) => n > 0).map(([kind, n]) => {
    const width = (100 * n) / total;
    const rect = svg('rect', { class: `seg-${kind}`, x, y: 0, width, height: 6 }, svg('title', {}, `${kind}: ${n}`));
    x += width;
    return rect;
  }));
}

// items: [{label, value, text}] -> one horizontal bar each, scaled to `max` (default: the largest value).
export function barChart(items, { max, unit = '' } = {}) {
  const top = max ?? Math.max(0, ...items.map((i) => i.value ?? 0));
  const row = 22;
  const labelWidth = 200;
  const barWidth = WIDTH - labelWidth - 90;
  const height = Math.max(1, items.length) * row + 4;
  return svg('svg', { class: 'chart bars', viewBox: `0 0 ${WIDTH} ${height}`, role: 'img' },
    items.map((item, i) => {
      const width = top > 0 ? (barWidth * (item.value ?? 0)) / top : 0;
      const y = i * row + 2;
      return svg('g', {},
        svg('text', { class: 'label', x: labelWidth - 8, y: y + 14, 'text-anchor': 'end' }, truncate(item.label, 28)),
        svg('rect', { class: 'bar', x: labelWidth, y: y + 3, width: Math.max(width, item.value ? 1 : 0),
          height: row - 8 },
          svg('title', {}, `${item.label}: ${item.text ?? item.value}${unit}`)),
        svg('text', { class: 'value', x: labelWidth + width + 6, y: y + 14 }, item.text ?? String(item.value)));
    }));
}

// days: ['2026-12-01', ...]; series: [{key, label, tone?}] (tone: its colour, series-0..7); value(day, key) -> number.
// Stacked bars, one per day.
export function stackedDays(days, series, value, { format = String } = {}) {
  const height = 220;
  const bottom = 30;
  const left = 50;
  const totals = days.map((d) => series.reduce((sum, s) => sum + (value(d, s.key) ?? 0), 0));
  const top = Math.max(1e-9, ...totals);
  const step = (WIDTH - left - 10) / Math.max(1, days.length);
  const bar = Math.max(2, Math.min(40, step * 0.7));
  const scale = (height - bottom - 10) / top;
  const every = Math.ceil(days.length / 10); // at most about ten day labels
  return svg('svg', { class: 'chart stacked', viewBox: `0 0 ${WIDTH} ${height + 20 * Math.ceil(series.length / 4)}`,
    role: 'img' },
  svg('text', { class: 'axis', x: left - 6, y: 14, 'text-anchor': 'end' }, format(top)),
  svg('line', { class: 'axis-line', x1: left, y1: height - bottom, x2: WIDTH - 10, y2: height - bottom }),
  days.map((day, i) => {
    let y = height - bottom;
    const x = left + i * step + (step - bar) / 2;
    return svg('g', {},
      series.map((s, k) => {
        const v = value(day, s.key) ?? 0;
        if (!v) return null;
        y -= v * scale;
        return svg('rect', { class: `series-${s.tone ?? k % 8}`, x, y, width: bar, height: v * scale },
          svg('title', {}, `${day} ${s.label}: ${format(v)}`));
      }),
      i % every === 0 ? svg('text', { class: 'axis', x: x + bar / 2, y: height - bottom + 14, 'text-anchor': 'middle' },
        day.slice(5)) : null);
  }),
  legend(series, height));
}

function legend(series, y) {
  return series.map((s, k) => svg('g', {},
    svg('rect', { class: `series-${s.tone ?? k % 8}`, x: 10 + (k % 4) * 155, y: y + 4 + Math.floor(k / 4) * 20,
      width: 10, height: 10 }),
    svg('text', { class: 'label', x: 26 + (k % 4) * 155, y: y + 13 + Math.floor(k / 4) * 20 }, truncate(s.label, 22))));
}

// cells: [{weekday 1..7, hour 0..23, rate 0..1, attempts}] -> a 7 × 24 grid, darker where more calls were answered.
export function heatmap(cells) {
  const days = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
  const left = 40;
  const size = (WIDTH - left - 10) / 24;
  const byCell = new Map(cells.map((c) => [`${c.weekday}:${c.hour}`, c]));
  return svg('svg', { class: 'chart heatmap', viewBox: `0 0 ${WIDTH} ${7 * size + 30}`, role: 'img' },
    days.map((name, d) => svg('text', { class: 'label', x: left - 6, y: d * size + size * 0.7, 'text-anchor': 'end' },
      name)),
    Array.from({ length: 24 }, (_, hour) => (hour % 3 === 0
      ? svg('text', { class: 'axis', x: left + hour * size + size / 2, y: 7 * size + 16, 'text-anchor': 'middle' },
        `${hour}h`)
      : null)),
    days.flatMap((name, d) => Array.from({ length: 24 }, (_, hour) => {
      const cell = byCell.get(`${d + 1}:${hour}`);
      const level = cell ? Math.min(4, Math.floor((cell.rate ?? 0) * 5)) : 'none';
      return svg('rect', { class: `heat heat-${level}`, x: left + hour * size + 1, y: d * size + 1, width: size - 2,
        height: size - 2 }, svg('title', {}, cell
        ? `${name} ${hour}:00: ${Math.round((cell.rate ?? 0) * 100)} % of ${cell.attempts} answered`
        : `${name} ${hour}:00: no calls`));
    })));
}

function truncate(text, n) {
  const s = String(text ?? '');
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
