// The providers' circuit breaker as operators see it (sql/schema/35_breaker.sql says what each state and reason
// means): a badge in the header, its state being the newest row of breaker_transitions (none: closed), kept live
// through Realtime; and on the analytics page its last transitions and the providers' refusals per UTC day
// (provider_errors_daily). Both tables are read with the user's session, so RLS decides as everywhere.
import { barChart } from './charts.js';
import { fetchAll, fetchOne } from './data.js';
import { formatDateTime, h } from './dom.js';
import { subscribe } from './live.js';

const LABELS = { closed: 'providers ok', open: 'breaker open', half_open: 'breaker probing' };

function show(element, transition) {
  const state = transition?.to_state ?? 'closed';
  element.dataset.state = state;
  element.textContent = LABELS[state] ?? state;
  element.title = transition
    ? `Circuit breaker ${state} since ${formatDateTime(transition.at)} (${transition.reason})`
    : 'Circuit breaker closed: no transition recorded';
}

// The header's badge; answers {element, stop}.
export function breakerBadge(supabase) {
  const element = h('a', { class: 'badge breaker-badge', id: 'breaker', href: '#/analytics' }, '…');
  let newest = null;
  const take = (transition) => {
    if (newest && transition.id <= newest.id) return; // (a late read never undoes a newer event)
    newest = transition;
    show(element, transition);
  };
  show(element, null);
  const stop = subscribe(supabase, [{ table: 'breaker_transitions' }], (_table, payload) => {
    if (payload.eventType === 'INSERT') take(payload.new);
  });
  fetchOne(supabase.from('breaker_transitions').select('*').order('id', { ascending: false }).limit(1))
    .then(([transition]) => transition && take(transition))
    .catch(() => { element.title = 'Circuit breaker: could not be read'; });
  return { element, stop };
}

function table(columns, rows, className = 'compact') {
  return h('table', { class: className },
    h('thead', {}, h('tr', {}, columns.map(([label]) => h('th', {}, label)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([, value]) => h('td', {}, value(row) ?? ''))))));
}

// The analytics page's section: refusals per provider and kind over the period, then the last 20 transitions.
export async function providersSection(supabase, { from, to }) {
  const { rows: errors } = await fetchAll(() => supabase.from('provider_errors_daily').select('*')
    .gte('day', from).lte('day', to).order('day', { ascending: false }).order('provider').order('kind'), 2000);
  const totals = new Map();
  for (const r of errors) {
    const key = `${r.provider} ${r.kind}`;
    totals.set(key, (totals.get(key) ?? 0) + Number(r.count));
  }
  const transitions = await fetchOne(supabase.from('breaker_transitions').select('*')
    .order('id', { ascending: false }).limit(20));
  return [
    barChart([...totals].sort().map(([label, value]) => ({ label, value }))),
    h('p', { class: 'muted' }, 'throttled: Twilio 429s and VAPI\u2019s concurrency limit (quota); unavailable: Twilio 5xx '
      + 'or no answer, VAPI assistant-request failures (what opens the breaker).'),
    h('details', { class: 'numbers' }, h('summary', {}, 'Numbers'),
      table([['day', (r) => r.day], ['provider', (r) => r.provider], ['kind', (r) => r.kind], ['count', (r) => r.count],
        ['last', (r) => formatDateTime(r.last_at)]], errors)),
    h('h3', {}, 'Circuit breaker transitions'),
    table([['at', (r) => formatDateTime(r.at)], ['from', (r) => r.from_state], ['to', (r) => r.to_state],
      ['reason', (r) => r.reason], ['failures', (r) => r.failures], ['provider', (r) => r.provider]], transitions,
    'compact transitions'),
  ];
}
