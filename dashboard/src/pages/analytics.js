// Analytics from the analytics_* views (88_analytics.sql documents their columns): success by clinic, answer rate
// by the clinic's local weekday and hour, outcomes and ended reasons per day, cost per day and per batch, learning
// calls and the classification cache's hit rate. Each chart has its numbers in a table beneath.
import { barChart, heatmap, stackedDays } from '../charts.js';
import { fetchAll } from '../data.js';
import { errorBox, formatCost, formatDuration, formatPercent, h, replace } from '../dom.js';
import { providersSection } from '../providers.js';

const STATUSES = ['completed', 'failed', 'cancelled', 'retry_pending', 'calling', 'dispatching', 'pending'];

function table(columns, rows) {
  return h('details', { class: 'numbers' }, h('summary', {}, 'Numbers'),
    h('table', { class: 'compact' },
      h('thead', {}, h('tr', {}, columns.map(([label]) => h('th', {}, label)))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, value]) => h('td', {}, value(row) ?? '')))))));
}

function daysBetween(from, to) {
  const days = [];
  for (let d = new Date(`${from}T00:00:00Z`); d <= new Date(`${to}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    days.push(d.toISOString().slice(0, 10));
  }
  return days;
}

// Every row of an analytics view (they are small: per clinic, per day, per batch), ordered and filtered by refine.
async function read(supabase, view, refine) {
  const { rows } = await fetchAll(() => refine(supabase.from(view).select('*')), 20_000);
  return rows;
}

const sections = {
  async success(supabase) {
    const rows = await read(supabase, 'analytics_success_by_clinic', (q) => q.order('clinic_name'));
    rows.sort((a, b) => (b.success_rate ?? -1) - (a.success_rate ?? -1));
    return [
      barChart(rows.map((r) => ({ label: r.clinic_name ?? '(no clinic)', value: Number(r.success_rate ?? 0),
        text: r.success_rate === null ? 'none ended' : formatPercent(r.success_rate) })), { max: 1 }),
      table([['clinic', (r) => r.clinic_name ?? '(no clinic)'], ['calls', (r) => r.calls],
        ['completed', (r) => r.completed], ['failed', (r) => r.failed], ['successful', (r) => r.successful],
        ['success rate', (r) => formatPercent(r.success_rate)]], rows),
    ];
  },

  async answerRate(supabase) {
    const rows = await read(supabase, 'analytics_answer_rate_by_hour', (q) => q.order('clinic_name')
      .order('local_weekday').order('local_hour'));
    const clinics = [...new Set(rows.map((r) => r.clinic_name ?? '(no clinic)'))].sort();
    const chart = h('div', {});
    const draw = (clinic) => {
      const cells = new Map();
      for (const r of rows) {
        if (clinic && (r.clinic_name ?? '(no clinic)') !== clinic) continue;
        const key = `${r.local_weekday}:${r.local_hour}`;
        const cell = cells.get(key) ?? { weekday: r.local_weekday, hour: r.local_hour, attempts: 0, answered: 0 };
        cell.attempts += Number(r.attempts);
        cell.answered += Number(r.answered);
        cells.set(key, cell);
      }
      const rated = [...cells.values()].map((c) => ({ ...c, rate: c.attempts ? c.answered / c.attempts : 0 }));
      replace(chart, heatmap(rated));
    };
    draw('');
    const select = h('select', { name: 'clinic', onchange: (e) => draw(e.target.value) },
      h('option', { value: '' }, 'every clinic'), clinics.map((c) => h('option', { value: c }, c)));
    return [
      h('label', {}, 'clinic ', select), chart,
      h('p', { class: 'muted' }, 'On each clinic\u2019s own clock; darker: a larger share of attempts answered.'),
      table([['clinic', (r) => r.clinic_name], ['weekday', (r) => r.local_weekday], ['hour', (r) => r.local_hour],
        ['attempts', (r) => r.attempts], ['answered', (r) => r.answered],
        ['answer rate', (r) => formatPercent(r.answer_rate)]], rows),
    ];
  },

  async outcomes(supabase, { from, to }) {
    const rows = await read(supabase, 'analytics_outcomes_daily', (q) => q.gte('day', from).lte('day', to)
      .order('day'));
    const byDay = new Map();
    const reasons = new Map();
    for (const r of rows) {
      const day = byDay.get(r.day) ?? {};
      day[r.call_status] = (day[r.call_status] ?? 0) + Number(r.calls);
      byDay.set(r.day, day);
      const reason = r.ended_reason ?? '(no report)';
      reasons.set(reason, (reasons.get(reason) ?? 0) + Number(r.calls));
    }
    const present = STATUSES.filter((s) => rows.some((r) => r.call_status === s));
    return [
      stackedDays(daysBetween(from, to), present.map((s) => ({ key: s, label: s, tone: STATUSES.indexOf(s) })),
        (d, s) => byDay.get(d)?.[s] ?? 0),
      h('h3', {}, 'Ended reasons'),
      barChart([...reasons].sort((a, b) => b[1] - a[1]).map(([label, value]) => ({ label, value }))),
      table([['day', (r) => r.day], ['status', (r) => r.call_status], ['ended reason', (r) => r.ended_reason],
        ['calls', (r) => r.calls]], rows),
    ];
  },

  async costDaily(supabase, { from, to }) {
    const rows = await read(supabase, 'analytics_cost_daily', (q) => q.gte('day', from).lte('day', to).order('day'));
    const byDay = new Map(rows.map((r) => [r.day, r]));
    return [
      stackedDays(daysBetween(from, to), [{ key: 'cost', label: 'cost' }], (d) => Number(byDay.get(d)?.cost ?? 0),
        { format: formatCost }),
      table([['day', (r) => r.day], ['attempts', (r) => r.calls], ['cost', (r) => formatCost(r.cost)],
        ['duration', (r) => formatDuration(r.duration_seconds)]], rows),
    ];
  },

  async costByBatch(supabase) {
    const rows = (await read(supabase, 'analytics_cost_by_batch', (q) => q.order('created_at', { ascending: false })
      .order('batch_id'))).slice(0, 20);
    return [
      barChart(rows.map((r) => ({ label: r.name, value: Number(r.cost), text: formatCost(r.cost) }))),
      table([['batch', (r) => h('a', { href: `#/batches/${r.batch_id}` }, r.name)], ['calls', (r) => r.calls],
        ['attempts', (r) => r.attempts], ['cost', (r) => formatCost(r.cost)],
        ['duration', (r) => formatDuration(r.duration_seconds)]], rows),
    ];
  },

  async learning(supabase, { from, to }) {
    const rows = await read(supabase, 'analytics_learning_daily', (q) => q.gte('day', from).lte('day', to)
      .order('day'));
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const series = [{ key: 'hits', label: 'cache hits' }, { key: 'misses', label: 'dialled without cache' }];
    const value = (d, key) => {
      const r = byDay.get(d);
      if (!r) return 0;
      return key === 'hits' ? Number(r.cache_hits) : Number(r.dialled) - Number(r.cache_hits);
    };
    return [
      stackedDays(daysBetween(from, to), series, value),
      h('h3', {}, 'Learning calls per day'),
      stackedDays(daysBetween(from, to), [{ key: 'learn', label: 'learning calls' }],
        (d) => Number(byDay.get(d)?.learning_calls ?? 0)),
      table([['day', (r) => r.day], ['learning calls', (r) => r.learning_calls], ['dialled', (r) => r.dialled],
        ['cache hits', (r) => r.cache_hits], ['hit rate', (r) => formatPercent(r.hit_rate)]], rows),
    ];
  },
};

sections.providers = providersSection;

const TITLES = [
  ['success', 'Success rate by clinic'],
  ['answerRate', 'Answer rate by local weekday and hour'],
  ['outcomes', 'Outcomes per day'],
  ['costDaily', 'Cost per day'],
  ['costByBatch', 'Cost per batch (newest 20)'],
  ['learning', 'Learning calls and cache hits'],
  ['providers', 'Provider refusals and the circuit breaker'],
];

export async function renderAnalytics(ctx, main) {
  const body = h('div', {});
  const period = h('select', { name: 'days', onchange: () => draw() },
    [7, 30, 90, 365].map((n) => h('option', { value: n, selected: n === 30 }, `last ${n} days`)));
  main.append(h('h1', {}, 'Analytics'), h('p', {}, h('label', {}, 'period ', period),
    h('span', { class: 'muted' }, ' (days are UTC days)')), body);

  async function draw() {
    const to = new Date();
    const from = new Date(to.getTime() - (Number(period.value) - 1) * 86_400_000);
    const range = { from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) };
    replace(body);
    await Promise.all(TITLES.map(async ([key, title]) => {
      const section = h('section', { class: 'analytics', dataset: { chart: key } }, h('h2', {}, title),
        h('p', { class: 'muted' }, 'Loading…'));
      body.append(section);
      try {
        replace(section, h('h2', {}, title), await sections[key](ctx.supabase, range));
      } catch (error) {
        replace(section, h('h2', {}, title), errorBox(error));
      }
    }));
  }
  await draw();
}
