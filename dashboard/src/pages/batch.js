// One batch: its live progress (batch_progress, followed through public.batches), its calls (calls-list.js),
// cancel, retry-failed, pause and resume for operators, the CSV of its results, and the operators' actions on it.
import { batchAction } from '../api.js';
import { calls, confirmedButton } from '../actions.js';
import { callList } from '../calls-list.js';
import { progressBar } from '../charts.js';
import { download, timestampForFile, toCsv } from '../csv.js';
import { fetchAll, fetchOne } from '../data.js';
import { errorBox, formatCost, formatDateTime, formatDuration, formatPercent, h, replace } from '../dom.js';
import { liveBadge, subscribe } from '../live.js';
import { auditTable } from './call.js';

const RESULT_COLUMNS = ['id', 'exam_id', 'employee_name', 'phone', 'clinic_name', 'call_status', 'attempts',
  'max_attempts', 'ended_reason', 'last_error', 'success_evaluation', 'summary', 'structured_data', 'duration_seconds',
  'cost', 'created_at', 'updated_at'];

const refusal = (answer) =>
  `Refused: ${answer.error?.message ?? answer.error?.code ?? answer.error ?? answer.reason ?? 'no reason given'}.`;

async function exportResults(supabase, batch) {
  const { rows } = await fetchAll(() => supabase.from('pending_calls').select(RESULT_COLUMNS.join(','))
    .eq('batch_id', batch.batch_id).order('created_at').order('id'), 100_000);
  const columns = RESULT_COLUMNS.map((name) => ({ name, value: (row) => row[name] }));
  download(`batch-${batch.batch_id.slice(0, 8)}-results-${timestampForFile()}.csv`, toCsv(columns, rows));
}

export async function renderBatch(ctx, main, id) {
  const { supabase } = ctx;
  const badge = liveBadge();
  const summary = h('div', { class: 'batch-summary' }, h('p', { class: 'muted' }, 'Loading…'));
  const audit = h('div', {});
  let batch = null;

  const operate = ctx.isOperator ? h('div', { class: 'action-bar' },
    confirmedButton('Cancel the batch', 'cancel-batch', async () => {
      const answer = await batchAction(await ctx.token(), id, 'cancel');
      if (answer.ok === false) return refusal(answer);
      const live = answer.live ? `; ${calls(answer.live)} still live end on their own` : '';
      return `Cancelled: ${calls(answer.cancelled ?? 0)}${live}.`;
    }),
    confirmedButton('Retry the failed calls', 'retry-failed', async () => {
      const answer = await batchAction(await ctx.token(), id, 'retry-failed');
      if (answer.ok === false) return refusal(answer);
      return `Requeued: ${calls(answer.requeued ?? 0)}.`;
    }),
    // Pausing dials nothing new (live calls finish); resuming goes on where it stopped.
    ...[['Pause the batch', 'pause'], ['Resume the batch', 'resume']].map(([label, action]) =>
      confirmedButton(label, `${action}-batch`, async () => {
        const answer = await batchAction(await ctx.token(), id, action);
        if (answer.ok === false) return refusal(answer);
        const state = answer.paused ? 'Paused: nothing new is dialled; live calls finish' : 'Resumed';
        return answer.changed ? `${state}.` : `${state} already.`;
      }))) : null;

  async function load() {
    const [rows, actions] = await Promise.all([
      fetchOne(supabase.from('batch_progress').select('*').eq('batch_id', id)),
      fetchOne(supabase.from('operator_actions').select('*').contains('target_ids', [id])
        .order('at', { ascending: false }).limit(100)).catch((error) => ({ error })),
    ]);
    batch = rows[0];
    if (!batch) {
      replace(summary, h('p', { class: 'error' }, 'No such batch (or you may not read it).'));
      return;
    }
    const done = batch.completed + batch.failed + batch.cancelled + batch.suppressed + batch.expired;
    replace(summary,
      h('h1', {}, batch.name, ' ',
        h('span', { class: `status batch-${batch.status}`, id: 'batch-status' }, batch.status), ' ',
        batch.paused_at ? h('span', { class: 'status batch-paused', id: 'batch-paused' }, 'paused') : '', ' ',
        badge.element),
      progressBar(batch),
      h('dl', { class: 'fields' },
        ['total', 'queued', 'dialling', 'in_progress', 'retrying', 'completed', 'failed', 'cancelled', 'suppressed', 'expired']
          .flatMap((k) => [h('dt', {}, k.replace('_', ' ')), h('dd', { dataset: { counter: k } }, String(batch[k]))]),
        h('dt', {}, 'done'), h('dd', {}, `${done} of ${batch.total}`),
        h('dt', {}, 'success rate'), h('dd', {}, formatPercent(batch.success_rate) || '—'),
        h('dt', {}, 'average duration'), h('dd', {}, formatDuration(batch.average_duration_seconds) || '—'),
        h('dt', {}, 'cost'), h('dd', {}, formatCost(batch.total_cost) || '—'),
        h('dt', {}, 'estimate'), h('dd', {}, formatCost(batch.cost_estimate?.usd) || '—'),
        h('dt', {}, 'cost cap'), h('dd', {}, formatCost(batch.cost_cap) || 'none'),
        h('dt', {}, 'created'), h('dd', {}, formatDateTime(batch.created_at)),
        h('dt', {}, 'completed'), h('dd', {}, formatDateTime(batch.completed_at) || '—'),
        h('dt', {}, 'paused'), h('dd', { id: 'batch-paused-at' }, formatDateTime(batch.paused_at) || '—'),
        h('dt', {}, 'own limits'), h('dd', {}, [batch.max_concurrency && `${batch.max_concurrency} live`,
          batch.calls_per_second && `${batch.calls_per_second} calls/s`].filter(Boolean).join(', ') || '—')),
      h('p', {}, h('button', { type: 'button', id: 'export-results', onclick: () => exportResults(supabase, batch)
        .catch((error) => summary.append(errorBox(error))) }, 'Export results CSV')));
    replace(audit, actions.error ? errorBox(actions.error) : auditTable(actions));
  }

  const list = callList(ctx, {
    scope: { batchId: id },
    csvName: `batch-${id.slice(0, 8)}-calls`,
    filterBar: { controls: ['status', 'clinic', 'outcome', 'search', 'archived'] },
  });
  main.append(h('p', {}, h('a', { href: '#/batches' }, '← Batches')), summary, operate,
    h('h2', {}, 'Calls'), list.element, h('h2', {}, 'Operators\u2019 actions'), audit);

  let timer = null;
  const reload = () => {
    clearTimeout(timer);
    timer = setTimeout(() => load().catch((error) => summary.prepend(errorBox(error))), 200);
  };
  const unsubscribe = subscribe(supabase, [{ table: 'batches', filter: `id=eq.${id}` }, { table: 'operator_actions' }],
    (table, payload) => {
      if (table === 'batches' || (payload.new?.target_ids ?? []).includes(id)) reload();
    }, badge);
  await load().catch((error) => replace(summary, errorBox(error)));
  return () => {
    clearTimeout(timer);
    unsubscribe();
    list.dispose();
  };
}
