// Phone systems: the classifications (call_classifications), each with the learning and verification runs that
// made or checked it (classification_runs) and their evidence, and the operators' actions on it. An operator may
// invalidate one (the phone is learned again) or correct its type and IVR steps; both are audited.
import { classificationAction } from '../api.js';
import { confirmedButton } from '../actions.js';
import { fetchAll, fetchOne } from '../data.js';
import { errorBox, formatDateTime, formatPercent, h, replace } from '../dom.js';
import { liveBadge, subscribe } from '../live.js';
import { auditTable } from './call.js';

const TYPES = ['human', 'ivr_only', 'ivr_then_human'];
const RUN_COLUMNS = 'id,pending_call_id,purpose,status,result,confidence,ivr_actions,evidence,stt_seconds,created_at,'
  + 'finished_at,classification_id,verified_classification_id,invalidated_reason';

function json(value) {
  return h('pre', { class: 'json' }, value === null || value === undefined ? '—' : JSON.stringify(value, null, 2));
}

function stepsText(actions) {
  return (actions ?? []).map((a) => `${a.action}${a.value !== undefined ? ` ${a.value}` : ''} @${a.timing_ms} ms`)
    .join(', ');
}

function operatorForms(ctx, c, onDone) {
  const reason = h('input', { type: 'text', name: 'reason', placeholder: 'why (kept in the audit)', required: true });
  const type = h('select', { name: 'classification_type' },
    TYPES.map((t) => h('option', { value: t, selected: t === c.classification_type }, t)));
  const steps = h('textarea', { name: 'ivr_actions', rows: 4, spellcheck: 'false' },
    JSON.stringify(c.ivr_actions, null, 2));
  const describe = (answer) => (answer.ok
    ? `Done: ${answer.classification?.classification_type}${answer.classification?.is_active ? '' : ' (inactive)'}.`
    : `Refused: ${answer.reason}.`);
  const act = (segment, correction) => async () => {
    if (!reason.value.trim()) throw new Error('Give a reason: it is kept in the audit.');
    const answer = await classificationAction(await ctx.token(), c.id, segment, correction());
    onDone();
    return describe(answer);
  };
  return h('div', { class: 'classification-actions' },
    h('label', {}, 'reason ', reason),
    confirmedButton('Invalidate', 'invalidate', act('invalidate', () => ({ reason: reason.value.trim() }))),
    h('div', { class: 'correct' },
      h('label', {}, 'type ', type), h('label', {}, 'IVR steps (JSON) ', steps),
      confirmedButton('Correct', 'correct', act('correct', () => {
        let ivrActions;
        try {
          ivrActions = JSON.parse(steps.value || '[]');
        } catch {
          throw new Error('The IVR steps are not valid JSON.');
        }
        return { classification_type: type.value, ivr_actions: ivrActions, reason: reason.value.trim() };
      }))));
}

async function details(ctx, c, container, onDone) {
  const { supabase } = ctx;
  const [runs, audit] = await Promise.all([
    fetchOne(supabase.from('classification_runs').select(RUN_COLUMNS)
      .or(`classification_id.eq.${c.id},verified_classification_id.eq.${c.id}`)
      .order('created_at', { ascending: false }).limit(50)),
    fetchOne(supabase.from('operator_actions').select('*').contains('target_ids', [c.id])
      .order('at', { ascending: false }).limit(50)).catch((error) => ({ error })),
  ]);
  replace(container,
    h('h3', {}, 'IVR steps'), json(c.ivr_actions),
    h('h3', {}, 'Evidence (what the learning call heard)'), json(c.evidence),
    ctx.isOperator && c.is_active ? operatorForms(ctx, c, onDone) : null,
    h('h3', {}, 'Runs'),
    runs.length ? h('table', { class: 'compact runs' },
      h('thead', {}, h('tr', {}, ['started', 'purpose', 'status', 'result', 'confidence', 'call', 'note', 'evidence']
        .map((t) => h('th', {}, t)))),
      h('tbody', {}, runs.map((r) => h('tr', { dataset: { id: r.id } },
        [formatDateTime(r.created_at), r.purpose, r.status, r.result ?? ''].map((v) => h('td', {}, v)),
        h('td', {}, r.confidence === null ? '' : formatPercent(r.confidence)),
        h('td', {}, h('a', { href: `#/calls/${r.pending_call_id}` }, 'call')),
        h('td', {}, r.invalidated_reason ?? ''),
        h('td', {}, h('details', {}, h('summary', {}, 'evidence'), json(r.evidence)))))))
      : h('p', { class: 'muted' }, 'No runs (written by hand, or learned before runs were kept).'),
    h('h3', {}, 'Operators\u2019 actions'), audit.error ? errorBox(audit.error) : auditTable(audit));
}

export async function renderPhones(ctx, main) {
  const { supabase } = ctx;
  const badge = liveBadge();
  const note = h('p', { class: 'muted' });
  const list = h('div', { class: 'classifications' });
  const filters = { activeOnly: true, search: '' };
  const open = new Set(); // classification ids whose details are open
  let rows = [];

  main.append(h('h1', {}, 'Phone systems ', badge.element),
    h('div', { class: 'filters' },
      h('label', {}, h('input', { type: 'checkbox', name: 'active', checked: true,
        onchange: (e) => { filters.activeOnly = e.target.checked; render(); } }), ' active only'),
      h('label', {}, 'search ', h('input', { type: 'search', name: 'search', placeholder: 'phone', autocomplete: 'off',
        oninput: (e) => { filters.search = e.target.value; render(); } }))),
    note, list);

  function render() {
    const digits = filters.search.replace(/\D/g, '');
    const shown = rows.filter((c) => (!filters.activeOnly || c.is_active)
      && (!digits || c.phone_number.replace(/\D/g, '').includes(digits)));
    note.textContent = `${shown.length} of ${rows.length} classifications.`;
    replace(list, shown.map((c) => {
      const body = h('div', { class: 'classification-body' });
      const item = h('details', { class: 'classification', dataset: { id: c.id }, open: open.has(c.id) },
        h('summary', {},
          h('span', { class: 'phone' }, c.phone_number), ' ',
          h('span', { class: `badge type-${c.classification_type}` }, c.classification_type), ' ',
          h('span', { class: 'muted' }, [
            c.is_active ? 'active' : `inactive${c.invalidated_reason ? ` (${c.invalidated_reason})` : ''}`,
            c.confidence === null ? null : `confidence ${formatPercent(c.confidence)}`,
            stepsText(c.ivr_actions) || null,
            `expires ${formatDateTime(c.classification_expires_at)}`,
          ].filter(Boolean).join(' · '))),
        body);
      const show = () => details(ctx, c, body, reload).catch((error) => replace(body, errorBox(error)));
      item.addEventListener('toggle', () => {
        if (item.open) {
          open.add(c.id);
          show();
        } else open.delete(c.id);
      });
      if (item.open) show();
      return item;
    }));
  }

  async function load() {
    ({ rows } = await fetchAll(() => supabase.from('call_classifications').select('*')
      .order('updated_at', { ascending: false }).order('id'), 5000));
    render();
  }

  let timer = null;
  // (Not while the operator is typing a correction: the list is drawn again, and the form with it.)
  function reload() {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (list.contains(document.activeElement) && document.activeElement.matches('input, textarea, select')) reload();
      else load().catch((error) => replace(note, errorBox(error)));
    }, 200);
  }
  const unsubscribe = subscribe(supabase, [{ table: 'call_classifications' }, { table: 'classification_runs' }], reload,
    badge);
  await load().catch((error) => replace(note, errorBox(error)));
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}
