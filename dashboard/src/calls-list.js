// A live list of calls: the Calls page's (a date range) and a batch's. It reads the `call_list` view (each row with
// its batch's name and its current attempt's session), holds every row of its scope in memory and applies the
// filters and the search there (names and phones never leave the page), follows Realtime's changes to
// pending_calls and call_sessions (reading the changed rows of the view again, a few at a time), and offers
// selection, the operator's actions and the CSV of exactly what it shows.
import { callActionBar } from './actions.js';
import { download, timestampForFile, toCsv } from './csv.js';
import { CALL_STATUSES, fetchAll, outcomeOf } from './data.js';
import { errorBox, formatCost, formatDateTime, formatDuration, h, replace, toIso } from './dom.js';
import { liveBadge, subscribe } from './live.js';

const COLUMNS = [
  'id', 'created_at', 'updated_at', 'batch_id', 'batch_name', 'exam_id', 'employee_name', 'clinic_name', 'phone',
  'call_status', 'attempts', 'max_attempts', 'next_attempt_at', 'last_error', 'ended_reason', 'success_evaluation',
  'duration_seconds', 'cost', 'archived_at', 'session_status', 'classification_type',
];
const TIMESTAMPS = new Set(['created_at', 'updated_at', 'next_attempt_at', 'archived_at']);
const CSV_COLUMNS = [
  'id', 'created_at', 'exam_id', 'employee_name', 'phone', 'clinic_name', 'batch_id', 'batch_name', 'call_status',
  'attempts', 'max_attempts', 'next_attempt_at', 'classification_type', 'ended_reason', 'last_error',
  'success_evaluation', 'duration_seconds', 'cost', 'archived_at',
].map((name) => ({ name, value: (row) => row[name] }));
const ROW_CAP = 10_000; // rows held (and exported) at most
const SHOWN_CAP = 1000; // rows drawn at most: drawing 10,000 rows on every change would stall the page
const REFRESH_DELAY_MS = 100; // Realtime's changes are read again in groups, at most this long after they came
const HEADINGS = ['created', 'name', 'phone', 'clinic', 'status', 'attempts', 'next attempt', 'classification',
  'outcome', 'duration', 'cost'];

// Timestamps as ISO instants, so rows compare, sort and export alike.
const normalize = (row) => Object.fromEntries(COLUMNS.map((c) => [c, TIMESTAMPS.has(c) ? toIso(row[c]) : row[c] ?? null]
));

// scope: {batchId} (one batch, any date) or {range: {from, to}} (ISO instants; to null: no end). filterBar:
// {controls (names, in order), fromDay, toDay, toRange(fromDay, toDay)}. Answers {element, dispose}.
export function callList(ctx, { scope, filterBar, csvName, batches = [] }) {
  const { supabase } = ctx;
  const rows = new Map();
  const selected = new Set();
  const filters = { status: '', clinic: '', batch: '', outcome: '', search: '', archived: false };
  let range = scope.range ?? null;
  let truncated = false;
  let renderQueued = false;
  let loading = null; // while a load runs: the ids Realtime changed meanwhile (read again after it)
  const stale = new Set(); // ids to read again
  let refreshTimer = null;

  const badge = liveBadge();
  const note = h('p', { class: 'muted list-note' });
  const tbody = h('tbody', {});
  const selectAll = h('input', { type: 'checkbox', class: 'select-all', 'aria-label': 'select every call shown',
    onchange: () => {
      for (const row of drawn()) selectAll.checked ? selected.add(row.id) : selected.delete(row.id);
      render();
    } });
  const clinicSelect = h('select', { name: 'clinic', onchange: (e) => { filters.clinic = e.target.value; render(); } });
  const outcomeSelect = h('select', { name: 'outcome',
    onchange: (e) => { filters.outcome = e.target.value; render(); } });
  const actionBar = ctx.isOperator
    ? callActionBar(ctx, () => drawn().filter((r) => selected.has(r.id)).map((r) => r.id),
      (results) => readAgain(results.map((r) => r.id)))
    : null;

  function matches(row) {
    if (!filters.archived && row.archived_at) return false;
    if (filters.status && row.call_status !== filters.status) return false;
    if (filters.clinic && (row.clinic_name ?? '') !== filters.clinic) return false;
    if (filters.batch && row.batch_id !== filters.batch) return false;
    if (filters.outcome && outcomeOf(row) !== filters.outcome) return false;
    const search = filters.search.trim().toLowerCase();
    if (search) {
      // A phone search is digits and phone punctuation only: "mx7a" must not match every phone with a 7.
      const digits = /^[\d\s()+.-]+$/.test(search) ? search.replace(/\D/g, '') : '';
      const inName = (row.employee_name ?? '').toLowerCase().includes(search);
      const inPhone = digits.length > 0 && (row.phone ?? '').replace(/\D/g, '').includes(digits);
      if (!inName && !inPhone) return false;
    }
    return true;
  }

  // Newest first (ISO instants sort as text).
  function visible() {
    return [...rows.values()].filter(matches).sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  }

  // What the table shows, and so what select-all and the actions act on.
  function drawn() {
    return visible().slice(0, SHOWN_CAP);
  }

  function inScope(record) {
    if (scope.batchId) return record.batch_id === scope.batchId;
    const created = Date.parse(toIso(record.created_at));
    return !range || (created >= Date.parse(range.from) && (!range.to || created < Date.parse(range.to)));
  }

  function setOptions(select, values, current, any) {
    replace(select, h('option', { value: '' }, any),
      [...values].sort().map((v) => h('option', { value: v, selected: v === current }, v)));
  }

  function rowElement(row) {
    const live = ['dispatching', 'calling'].includes(row.call_status) && row.session_status;
    const next = ['pending', 'retry_pending'].includes(row.call_status) ? formatDateTime(row.next_attempt_at) : '';
    const evaluation = row.success_evaluation ? ` (${row.success_evaluation})` : '';
    const toggle = (e) => {
      e.target.checked ? selected.add(row.id) : selected.delete(row.id);
      actionBar?.refresh();
    };
    return h('tr', { dataset: { id: row.id }, class: row.archived_at ? 'archived' : null },
      ctx.isOperator
        ? h('td', {}, h('input', { type: 'checkbox', class: 'select', checked: selected.has(row.id),
          'aria-label': 'select', onchange: toggle }))
        : null,
      h('td', {}, formatDateTime(row.created_at)),
      h('td', {}, h('a', { href: `#/calls/${row.id}`, class: 'call-link' }, row.employee_name || '(no name)')),
      h('td', { class: 'phone' }, row.phone),
      h('td', {}, row.clinic_name ?? ''),
      h('td', { class: `status status-${row.call_status}`, dataset: { status: row.call_status } },
        row.call_status.replace('_', ' '), live ? h('span', { class: 'muted' }, ` · ${live}`) : null),
      h('td', { class: 'num' }, `${row.attempts}/${row.max_attempts}`),
      h('td', {}, next),
      h('td', {}, row.classification_type ?? ''),
      h('td', { class: 'outcome' }, outcomeOf(row) + evaluation),
      h('td', { class: 'num' }, formatDuration(row.duration_seconds)),
      h('td', { class: 'num' }, formatCost(row.cost)));
  }

  function render() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      const matching = visible();
      const shown = drawn();
      const all = [...rows.values()];
      setOptions(clinicSelect, new Set(all.map((r) => r.clinic_name).filter(Boolean)), filters.clinic, 'any clinic');
      setOptions(outcomeSelect, new Set(all.map(outcomeOf).filter(Boolean)), filters.outcome, 'any outcome');
      replace(tbody, shown.length
        ? shown.map(rowElement)
        : h('tr', {}, h('td', { colspan: HEADINGS.length + 1, class: 'muted empty' }, 'No calls match.')));
      selectAll.checked = shown.length > 0 && shown.every((r) => selected.has(r.id));
      const held = truncated ? ` (the newest ${ROW_CAP}: narrow the dates)` : '';
      const capped = shown.length < matching.length ? `; the newest ${SHOWN_CAP} drawn, the CSV has them all` : '';
      note.textContent = `${matching.length} of ${rows.size} calls match${held}${capped}.`;
      actionBar?.refresh();
    });
  }

  function scopedQuery() {
    let query = supabase.from('call_list').select(COLUMNS.join(',')).order('created_at', { ascending: false })
      .order('id');
    if (scope.batchId) query = query.eq('batch_id', scope.batchId);
    else if (range) {
      query = query.gte('created_at', range.from);
      if (range.to) query = query.lt('created_at', range.to);
    }
    return query;
  }

  async function load() {
    note.textContent = 'Loading…';
    loading = new Set();
    try {
      const result = await fetchAll(scopedQuery, ROW_CAP);
      truncated = result.truncated;
      rows.clear();
      for (const row of result.rows) rows.set(row.id, normalize(row));
      for (const id of [...selected]) if (!rows.has(id)) selected.delete(id);
      for (const id of loading) stale.add(id);
    } finally {
      loading = null;
    }
    render();
    if (stale.size) scheduleRefresh();
  }

  // Reads these rows of the view again (a change, an action's answer); a row out of scope is dropped.
  async function readAgain(ids) {
    for (let i = 0; i < ids.length; i += 100) {
      const chunk = ids.slice(i, i + 100);
      const { data, error } = await supabase.from('call_list').select(COLUMNS.join(',')).in('id', chunk);
      if (error) {
        replace(note, errorBox(error));
        return;
      }
      const found = new Set();
      for (const row of data) {
        found.add(row.id);
        if (inScope(row)) rows.set(row.id, normalize(row));
        else rows.delete(row.id);
      }
      for (const id of chunk) if (!found.has(id)) rows.delete(id);
    }
    render();
  }

  function scheduleRefresh() {
    if (refreshTimer || loading) return;
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const ids = [...stale];
      stale.clear();
      await readAgain(ids);
    }, REFRESH_DELAY_MS);
  }

  function changed(id) {
    if (!id) return;
    if (loading) loading.add(id);
    else {
      stale.add(id);
      scheduleRefresh();
    }
  }

  function onChange(table, payload) {
    if (table === 'pending_calls') {
      if (payload.eventType === 'DELETE') {
        rows.delete(payload.old?.id);
        render();
      } else if (rows.has(payload.new?.id) || inScope(payload.new ?? {})) changed(payload.new.id);
    } else if (table === 'call_sessions' && rows.has(payload.new?.pending_call_id)) {
      changed(payload.new.pending_call_id);
    }
  }

  function exportCsv() {
    download(`${csvName}-${timestampForFile()}.csv`, toCsv(CSV_COLUMNS, visible()));
  }

  const controls = {
    dates: () => {
      const from = h('input', { type: 'date', name: 'from', value: filterBar.fromDay });
      const to = h('input', { type: 'date', name: 'to', value: filterBar.toDay });
      const apply = () => {
        if (!from.value || !to.value) return;
        range = filterBar.toRange(from.value, to.value);
        load().catch((error) => replace(note, errorBox(error)));
      };
      from.addEventListener('change', apply);
      to.addEventListener('change', apply);
      return [h('label', {}, 'from ', from), h('label', {}, 'to ', to)];
    },
    status: () => h('label', {}, 'status ',
      h('select', { name: 'status', onchange: (e) => { filters.status = e.target.value; render(); } },
        h('option', { value: '' }, 'any status'),
        CALL_STATUSES.map((s) => h('option', { value: s }, s.replace('_', ' '))))),
    clinic: () => h('label', {}, 'clinic ', clinicSelect),
    batch: () => h('label', {}, 'batch ',
      h('select', { name: 'batch', onchange: (e) => { filters.batch = e.target.value; render(); } },
        h('option', { value: '' }, 'any batch'), batches.map((b) => h('option', { value: b.id }, b.name)))),
    outcome: () => h('label', {}, 'outcome ', outcomeSelect),
    search: () => h('label', {}, 'search ', h('input', { type: 'search', name: 'search', placeholder: 'name or phone',
      autocomplete: 'off', oninput: (e) => { filters.search = e.target.value; render(); } })),
    archived: () => h('label', {}, h('input', { type: 'checkbox', name: 'archived',
      onchange: (e) => { filters.archived = e.target.checked; render(); } }), ' archived too'),
  };

  const element = h('section', { class: 'call-list' },
    h('div', { class: 'filters' }, filterBar.controls.map((name) => controls[name]()),
      h('button', { type: 'button', id: 'export-csv', onclick: exportCsv }, 'Export CSV'), badge.element),
    actionBar?.element,
    note,
    h('div', { class: 'table-scroll' }, h('table', { class: 'calls' },
      h('thead', {}, h('tr', {}, ctx.isOperator ? h('th', {}, selectAll) : null, HEADINGS.map((t) => h('th', {}, t)))),
      tbody)));

  // Subscribe before the first read: a change in between is read again after it, never lost.
  const filter = scope.batchId ? `batch_id=eq.${scope.batchId}` : undefined;
  const unsubscribe = subscribe(supabase, [{ table: 'pending_calls', filter }, { table: 'call_sessions' }], onChange,
    badge);
  load().catch((error) => replace(note, errorBox(error)));

  return {
    element,
    dispose() {
      clearTimeout(refreshTimer);
      unsubscribe();
    },
  };
}
