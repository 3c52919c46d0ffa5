// Reads through PostgREST with the user's session (supabase-js adds the token): row-level security decides what
// comes back. Personal data never goes into a query string: the pages filter by dates, ids and statuses on the
// server, and search names and phones in memory.

// A hosted project answers at most `max_rows` (1,000 by default) rows per request: read in pages of that size.
const PAGE = 1000;

// makeQuery() -> a fresh supabase-js select builder; answers {rows, truncated} with at most `cap` rows.
export async function fetchAll(makeQuery, cap) {
  const rows = [];
  for (let offset = 0; offset < cap; offset += PAGE) {
    const size = Math.min(PAGE, cap - offset);
    const { data, error } = await makeQuery().range(offset, offset + size - 1);
    if (error) throw error;
    rows.push(...data);
    if (data.length < size) return { rows, truncated: false };
  }
  return { rows, truncated: true };
}

export async function fetchOne(query) {
  const { data, error } = await query;
  if (error) throw error;
  return data;
}

// The outcome a person reads: how the call ended (VAPI's ended reason) or why the row failed.
export function outcomeOf(row) {
  return row.ended_reason || row.last_error || '';
}

export const CALL_STATUSES = ['pending', 'dispatching', 'calling', 'retry_pending', 'completed', 'failed', 'cancelled',
  'suppressed', 'expired'];
export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'suppressed', 'expired']);
