// Calls: today's by default, any date range; filters, search, live, actions, CSV (calls-list.js).
import { callList } from '../calls-list.js';
import { dayRange, h, localDay } from '../dom.js';

export async function renderCalls(ctx, main) {
  const { data: batches } = await ctx.supabase.from('batches').select('id,name')
    .order('created_at', { ascending: false }).limit(200);
  const today = localDay();
  const list = callList(ctx, {
    scope: { range: dayRange(today, today) },
    csvName: 'calls',
    batches: batches ?? [],
    filterBar: {
      controls: ['dates', 'status', 'clinic', 'batch', 'outcome', 'search', 'archived'],
      fromDay: today,
      toDay: today,
      toRange: dayRange,
    },
  });
  main.append(h('h1', {}, 'Calls'), list.element);
  return list.dispose;
}
