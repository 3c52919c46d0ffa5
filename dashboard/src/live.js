// Live updates through Supabase Realtime's postgres_changes, subscribed with the signed-in user's token (supabase-js
// hands it to Realtime), so the same row-level security that governs the page's reads decides which changes
// arrive. Filters travel in the channel's join message, never in a URL.
import { h } from './dom.js';

let channels = 0;

// bindings: [{table, filter?}]; onChange(table, {eventType, new, old}); answers a function that unsubscribes.
export function subscribe(supabase, bindings, onChange, badge) {
  const channel = supabase.channel(`dashboard-${++channels}`);
  for (const { table, filter } of bindings) {
    const spec = { event: '*', schema: 'public', table, ...(filter ? { filter } : {}) };
    channel.on('postgres_changes', spec, (payload) => onChange(table, payload));
  }
  channel.subscribe((status) => badge?.set(status));
  return () => supabase.removeChannel(channel);
}

// A badge saying whether the page is live: Realtime's channel status as a person reads it.
export function liveBadge() {
  const element = h('span', { class: 'badge live-badge', dataset: { live: 'connecting' } }, 'connecting…');
  const labels = { SUBSCRIBED: ['on', 'live'], CHANNEL_ERROR: ['off', 'not live'], TIMED_OUT: ['off', 'not live'],
    CLOSED: ['off', 'not live'] };
  return {
    element,
    set(status) {
      const [state, text] = labels[status] ?? ['connecting', 'connecting…'];
      element.dataset.live = state;
      element.textContent = text;
      element.title = `Realtime: ${status}`;
    },
  };
}
