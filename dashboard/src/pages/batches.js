// Batches: every batch with its progress (the batch_progress view), live through public.batches (which carries
// the counters; a view cannot be in the Realtime publication).
import { fetchAll } from '../data.js';
import { errorBox, formatCost, formatDateTime, formatDuration, formatPercent, h, replace } from '../dom.js';
import { liveBadge, subscribe } from '../live.js';
import { progressBar } from '../charts.js';

const COLUMNS = 'batch_id,name,status,total,queued,dialling,in_progress,completed,retrying,failed,cancelled,suppressed,expired,'
  + 'success_rate,average_duration_seconds,total_cost,created_at,started_at,completed_at,cancelled_at';

export async function renderBatches(ctx, main) {
  const badge = liveBadge();
  const tbody = h('tbody', {});
  const note = h('p', { class: 'muted' });
  main.append(h('h1', {}, 'Batches ', badge.element), note,
    h('div', { class: 'table-scroll' }, h('table', { class: 'batches' },
      h('thead', {}, h('tr', {}, ['created', 'name', 'status', 'progress', 'done', 'completed', 'failed', 'cancelled',
        'success', 'avg duration', 'cost'].map((t) => h('th', {}, t)))), tbody)));

  async function load() {
    const { rows, truncated } = await fetchAll(() => ctx.supabase.from('batch_progress').select(COLUMNS)
      .order('created_at', { ascending: false }).order('batch_id'), 1000);
    note.textContent = truncated ? 'The newest 1,000 batches.' : `${rows.length} batches.`;
    replace(tbody, rows.length ? rows.map((b) => {
      const done = b.completed + b.failed + b.cancelled;
      return h('tr', { dataset: { id: b.batch_id } },
        h('td', {}, formatDateTime(b.created_at)),
        h('td', {}, h('a', { href: `#/batches/${b.batch_id}` }, b.name)),
        h('td', { class: `status batch-${b.status}` }, b.status),
        h('td', {}, progressBar(b)),
        h('td', { class: 'num' }, `${done}/${b.total}`),
        [b.completed, b.failed, b.cancelled].map((n) => h('td', { class: 'num' }, n)),
        h('td', { class: 'num' }, formatPercent(b.success_rate)),
        h('td', { class: 'num' }, formatDuration(b.average_duration_seconds)),
        h('td', { class: 'num' }, formatCost(b.total_cost)));
    }) : h('tr', {}, h('td', { colspan: 11, class: 'muted empty' }, 'No batches yet.')));
  }

  let timer = null;
  const unsubscribe = subscribe(ctx.supabase, [{ table: 'batches' }], () => {
    clearTimeout(timer);
    timer = setTimeout(() => load().catch((error) => replace(note, errorBox(error))), 300);
  }, badge);
  await load().catch((error) => replace(note, errorBox(error)));
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}
