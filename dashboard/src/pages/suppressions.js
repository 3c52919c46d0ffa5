// Do-not-call: the suppression list (public.suppression_list, newest first) and the operators' changes to it
// (operator_actions of target_kind suppression). An operator adds a phone (reason, source manual or clinic) or
// removes one, through POST /api/v1/operator/suppressions/{add|remove}: the phone travels in the body, never in a
// URL. Not in the Realtime publication: the page reloads after each change.
import { suppressionAction } from '../api.js';
import { confirmedButton } from '../actions.js';
import { fetchAll, fetchOne } from '../data.js';
import { errorBox, formatDateTime, h, replace } from '../dom.js';
import { auditTable } from './call.js';

const COLUMNS = 'phone,source,reason,added_by,created_at';

function addForm(ctx, onDone) {
  const phone = h('input', { type: 'tel', name: 'phone', placeholder: '+15551234567', autocomplete: 'off',
    required: true });
  const reason = h('input', { type: 'text', name: 'reason', placeholder: 'why (optional)' });
  const source = h('select', { name: 'source' }, ['manual', 'clinic'].map((s) => h('option', { value: s }, s)));
  const output = h('span', { class: 'action-output', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit', class: 'action', dataset: { action: 'add' } }, 'Add');
  return h('form', { class: 'suppression-add filters', onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      const answer = await suppressionAction(await ctx.token(), 'add',
        { phone: phone.value, reason: reason.value, source: source.value });
      replace(output, answer.created ? `Added ${answer.suppression.phone}.`
        : `${answer.suppression.phone} was listed already.`);
      phone.value = '';
      reason.value = '';
      onDone();
    } catch (error) {
      replace(output, errorBox(error));
    } finally {
      button.disabled = false;
    }
  } },
  h('label', {}, 'phone ', phone), h('label', {}, 'reason ', reason), h('label', {}, 'source ', source), button,
  output);
}

export async function renderSuppressions(ctx, main) {
  const { supabase } = ctx;
  const note = h('p', { class: 'muted' });
  const tbody = h('tbody', {});
  const audit = h('div', { class: 'suppression-audit' });
  const columns = ['added', 'phone', 'source', 'reason', 'added by'].concat(ctx.isOperator ? [''] : []);
  main.append(h('h1', {}, 'Do-not-call'),
    h('p', { class: 'muted' }, 'A listed phone is never dialled: its waiting calls end suppressed.'),
    ctx.isOperator ? addForm(ctx, () => load().catch((error) => replace(note, errorBox(error)))) : null,
    note,
    h('div', { class: 'table-scroll' }, h('table', { class: 'suppressions' },
      h('thead', {}, h('tr', {}, columns.map((t) => h('th', {}, t)))), tbody)),
    h('h2', {}, 'Operators\u2019 changes'), audit);

  function removeButton(row) {
    return confirmedButton('Remove', 'remove', async () => {
      const answer = await suppressionAction(await ctx.token(), 'remove', { phone: row.phone });
      await load();
      return answer.removed ? 'Removed.' : 'It was not listed.';
    });
  }

  async function load() {
    const [{ rows, truncated }, actions] = await Promise.all([
      fetchAll(() => supabase.from('suppression_list').select(COLUMNS)
        .order('created_at', { ascending: false }).order('phone'), 5000),
      fetchOne(supabase.from('operator_actions').select('*').eq('target_kind', 'suppression')
        .order('at', { ascending: false }).limit(50)),
    ]);
    note.textContent = truncated ? 'The newest 5,000 phones.' : `${rows.length} ${rows.length === 1 ? 'phone' : 'phones'} listed.`;
    replace(tbody, rows.length ? rows.map((row) => h('tr', { dataset: { phone: row.phone } },
      h('td', {}, formatDateTime(row.created_at)),
      h('td', { class: 'phone' }, row.phone),
      h('td', {}, row.source),
      h('td', {}, row.reason ?? ''),
      h('td', {}, row.added_by ?? ''),
      ctx.isOperator ? h('td', {}, removeButton(row)) : null))
      : h('tr', {}, h('td', { colspan: columns.length, class: 'muted empty' }, 'No phone is listed.')));
    replace(audit, auditTable(actions));
  }

  await load().catch((error) => replace(note, errorBox(error)));
}
