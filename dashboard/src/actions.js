// The operator's actions on calls (one or many): buttons, a confirmation for what cannot be undone, and each id's
// result as the SQL function answered it. Only built for the operator role; the Worker checks the role again.
import { CALL_ACTIONS, callAction } from './api.js';
import { errorBox, h, replace, shortId } from './dom.js';

export const calls = (n) => (n === 1 ? '1 call' : `${n} calls`);

// getIds() -> the ids to act on; onDone(results) after an action answered.
export function callActionBar(ctx, getIds, onDone) {
  const results = h('div', { class: 'action-results', 'aria-live': 'polite' });
  const confirmRow = h('div', { class: 'confirm', hidden: true });
  const count = h('span', { class: 'muted selection-count' });
  const buttons = CALL_ACTIONS.map((spec) =>
    h('button', { type: 'button', class: 'action', dataset: { action: spec.action }, onclick: () => start(spec) },
      spec.label));

  function refresh() {
    const n = getIds().length;
    count.textContent = calls(n);
    for (const button of buttons) button.disabled = n === 0;
  }

  function start(spec) {
    const ids = getIds();
    if (ids.length === 0) return;
    if (!spec.confirm) {
      run(spec, ids);
      return;
    }
    confirmRow.hidden = false;
    replace(confirmRow,
      h('span', {}, `${spec.label}: ${calls(ids.length)}?`),
      h('button', { type: 'button', class: 'danger', dataset: { confirm: spec.action },
        onclick: () => { confirmRow.hidden = true; run(spec, ids); } }, `Yes, ${spec.label.toLowerCase()}`),
      h('button', { type: 'button', class: 'link', onclick: () => { confirmRow.hidden = true; } }, 'No'));
  }

  async function run(spec, ids) {
    for (const button of buttons) button.disabled = true;
    replace(results, h('p', { class: 'muted' }, `${spec.label}…`));
    try {
      const answered = await callAction(await ctx.token(), spec, ids);
      replace(results, resultsTable(spec, answered));
      onDone?.(answered);
    } catch (error) {
      replace(results, errorBox(error));
    } finally {
      refresh();
    }
  }

  refresh();
  const element = h('div', { class: 'action-bar' }, count, ...buttons, confirmRow, results);
  return { element, refresh };
}

function resultsTable(spec, results) {
  const done = results.filter((r) => r.ok).length;
  return h('div', { class: 'results', dataset: { action: spec.action } },
    h('p', {}, `${spec.label}: ${done} of ${results.length} done.`),
    h('table', { class: 'compact' },
      h('thead', {}, h('tr', {}, ['call', 'result', 'status', 'why'].map((t) => h('th', {}, t)))),
      h('tbody', {}, results.map((r) => h('tr', { dataset: { id: r.id, ok: String(Boolean(r.ok)) } },
        h('td', {}, h('a', { href: `#/calls/${r.id}` }, shortId(r.id))),
        h('td', {}, r.ok ? 'done' : 'refused'),
        h('td', {}, r.call_status ?? ''),
        h('td', {}, r.reason ?? ''))))));
}

// A button whose action must be confirmed first (a batch's cancel, a classification's invalidation): answers the
// element; run() may throw, and what it answers (a string or nodes) is shown beside the button.
export function confirmedButton(label, action, run) {
  const output = h('span', { class: 'action-output', 'aria-live': 'polite' });
  const confirmRow = h('span', { class: 'confirm', hidden: true });
  const button = h('button', { type: 'button', class: 'action', dataset: { action }, onclick: () => {
    confirmRow.hidden = false;
    replace(confirmRow, h('span', {}, `${label}?`),
      h('button', { type: 'button', class: 'danger', dataset: { confirm: action }, onclick: go },
        `Yes, ${label.toLowerCase()}`),
      h('button', { type: 'button', class: 'link', onclick: () => { confirmRow.hidden = true; } }, 'No'));
  } }, label);

  async function go() {
    confirmRow.hidden = true;
    button.disabled = true;
    replace(output, h('span', { class: 'muted' }, `${label}…`));
    try {
      replace(output, await run());
    } catch (error) {
      replace(output, errorBox(error));
    } finally {
      button.disabled = false;
    }
  }

  return h('span', { class: 'confirmed-action', dataset: { for: action } }, button, confirmRow, output);
}
