// One call: the row, its attempts as a timeline (from call_sessions and classification_runs), VAPI's results, the
// operators' actions on it (operator_actions), live. The operator's actions act on this one row.
import { callActionBar } from '../actions.js';
import { fetchOne } from '../data.js';
import { errorBox, formatCost, formatDateTime, formatDuration, h, replace, shortId } from '../dom.js';
import { liveBadge, subscribe } from '../live.js';

const RUN_COLUMNS = 'id,session_id,purpose,status,result,confidence,ivr_actions,evidence,stt_seconds,created_at,'
  + 'stream_started_at,finished_at,classification_id,verified_classification_id,invalidated_reason';
// Twilio statuses that mean the phone rang (a failed or refused dial never did).
const RANG = new Set(['ringing', 'in-progress', 'completed', 'busy', 'no-answer']);
const VAPI_CONNECTED = new Set(['in-progress', 'forwarding', 'ended']);

// The steps of one attempt, in the order a call goes through them; a step without a time is known to have
// happened (a status says so) but nothing recorded when.
export function timelineOf(session, run) {
  const steps = [{ step: 'dialled', label: `Attempt ${session.attempt}: dialled`, at: session.created_at }];
  if (session.dialed_at || session.call_sid) {
    steps.push({ step: 'placed', label: 'Call placed at Twilio', at: session.dialed_at });
  }
  if (RANG.has(session.status) || session.answered_at) steps.push({ step: 'ringing', label: 'Ringing' });
  if (session.answered_at) {
    steps.push({ step: 'answered', label: 'Answered', at: session.answered_at,
      detail: session.answered_by ? `by ${session.answered_by}` : '' });
  }
  if (session.classification_id && session.classification_type && session.classification_type !== 'human') {
    steps.push({ step: 'ivr-replayed', label: `IVR replayed (${session.classification_type}, cached)` });
  }
  if (run) {
    const confidence = run.confidence !== null ? ` (${Math.round(run.confidence * 100)} %)` : '';
    const heard = run.result ? `heard ${run.result}${confidence}` : run.status;
    const label = run.purpose === 'learn' ? 'IVR learned' : 'IVR replay verified';
    steps.push({ step: run.purpose === 'learn' ? 'ivr-learned' : 'ivr-verified', label,
      at: run.finished_at ?? run.stream_started_at,
      detail: [heard, run.invalidated_reason].filter(Boolean).join('; ') });
  }
  if (session.vapi_call_id || VAPI_CONNECTED.has(session.vapi_status)) {
    steps.push({ step: 'vapi', label: 'VAPI connected', detail: session.vapi_status ?? '' });
  }
  if (session.ended_at) {
    const why = [session.status, session.error, session.error_code].filter(Boolean).join(', ');
    steps.push({ step: 'ended', label: 'Ended', at: session.ended_at, detail: why });
  }
  if (session.report_received_at) {
    const parts = [session.ended_reason, formatDuration(session.duration_seconds), formatCost(session.cost)];
    steps.push({ step: 'report', label: "VAPI's report", at: session.report_received_at,
      detail: parts.filter(Boolean).join(', ') });
  }
  return steps;
}

// A link to VAPI's recording or report, only when the row carries one (http or https only).
function recordingLinks(call) {
  const candidates = [['recording', call.recording_url], ['stereo recording', call.stereo_recording_url],
    ['report', call.report_url], ['recording', call.structured_data?.recordingUrl]];
  return candidates.filter(([, url]) => typeof url === 'string' && /^https?:\/\//.test(url))
    .map(([label, url]) => h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, `VAPI ${label}`));
}

function field(label, value) {
  return [h('dt', {}, label), h('dd', {}, value === null || value === undefined || value === '' ? '—' : value)];
}

function sessionElement(session, run) {
  return h('li', { class: 'session', dataset: { attempt: session.attempt } },
    h('ol', { class: 'timeline' }, timelineOf(session, run).map((s) =>
      h('li', { dataset: { step: s.step } }, h('span', { class: 'when' }, s.at ? formatDateTime(s.at) : ''),
        h('span', { class: 'what' }, s.label), s.detail ? h('span', { class: 'muted' }, ` ${s.detail}`) : null))));
}

export function auditTable(actions) {
  if (!actions.length) return h('p', { class: 'muted' }, 'No operator has acted on it.');
  return h('table', { class: 'compact audit' },
    h('thead', {}, h('tr', {}, ['when', 'who', 'action', 'what changed'].map((t) => h('th', {}, t)))),
    h('tbody', {}, actions.map((a) => h('tr', { dataset: { action: a.action } },
      h('td', {}, formatDateTime(a.at)), h('td', {}, a.actor === 'api_key' ? 'API key' : a.email ?? shortId(a.user_id)), h('td', {}, a.action),
      h('td', {}, h('code', {}, summarizeDetail(a.detail)))))));
}

function summarizeDetail(detail) {
  if (!detail) return '';
  if (Array.isArray(detail.results)) {
    const change = (r) => `${r.before?.call_status ?? '?'} → ${r.after?.call_status ?? '?'}`;
    return detail.results.map((r) => `${shortId(r.id)}: ${change(r)}${r.ok ? '' : ` (refused: ${r.reason ?? ''})`}`)
      .join('; ');
  }
  if ('phone' in detail) { // the do-not-call list's (operator_suppression_action)
    const answer = detail.answer ?? {};
    const outcome = 'created' in answer ? (answer.created ? 'added' : 'listed already')
      : (answer.removed ? 'removed' : 'not listed');
    return `${detail.phone}: ${outcome}`;
  }
  const { before = {}, after = {} } = detail;
  if ('classification_type' in before || 'classification_type' in after) {
    const type = before.classification_type === after.classification_type ? after.classification_type
      : `${before.classification_type} → ${after.classification_type}`;
    const active = before.is_active === after.is_active ? '' : `, ${after.is_active ? 'active' : 'inactive'}`;
    return `${type}${active}${detail.ok === false ? ` (refused: ${detail.reason})` : ''}; “${detail.note ?? ''}”`;
  }
  const counts = (p) => Object.entries(p.counts ?? {}).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ');
  const paused = (p) => (p.paused ? ', paused' : '');
  return `${before.status}${paused(before)} → ${after.status}${paused(after)} (before: ${counts(before)}; after: ${counts(after)})`;
}

export async function renderCall(ctx, main, id) {
  const { supabase } = ctx;
  const badge = liveBadge();
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('p', {}, h('a', { href: '#/calls' }, '← Calls')), body);
  const actions = ctx.isOperator ? callActionBar(ctx, () => [id], () => load()) : null;

  async function load() {
    const [calls, sessions, runs, audit] = await Promise.all([
      fetchOne(supabase.from('pending_calls').select('*').eq('id', id)),
      fetchOne(supabase.from('call_sessions').select('*').eq('pending_call_id', id).order('attempt')),
      fetchOne(supabase.from('classification_runs').select(RUN_COLUMNS).eq('pending_call_id', id)),
      fetchOne(supabase.from('operator_actions').select('*').contains('target_ids', [id])
        .order('at', { ascending: false }).limit(100)).catch((error) => ({ error })),
    ]);
    const call = calls[0];
    if (!call) {
      replace(body, h('p', { class: 'error' }, 'No such call (or you may not read it).'));
      return;
    }
    const runBySession = new Map(runs.map((r) => [r.session_id, r]));
    const results = h('dl', { class: 'fields results-fields' },
      field('ended reason', call.ended_reason), field('success evaluation', call.success_evaluation),
      field('duration', formatDuration(call.duration_seconds)), field('cost', formatCost(call.cost)),
      field('last error', call.last_error));
    replace(body,
      h('h1', {}, call.employee_name || '(no name)', ' ', h('span', { class: `status status-${call.call_status}`,
        id: 'call-status', dataset: { status: call.call_status } }, call.call_status), ' ', badge.element),
      h('dl', { class: 'fields' },
        field('phone', call.phone), field('clinic', call.clinic_name), field('client', call.client_name),
        field('exam', call.exam_id), field('appointment', formatDateTime(call.appointment_time)),
        field('attempts', `${call.attempts} of ${call.max_attempts}`),
        field('next attempt',
          ['pending', 'retry_pending'].includes(call.call_status) ? formatDateTime(call.next_attempt_at) : ''),
        field('batch', call.batch_id ? h('a', { href: `#/batches/${call.batch_id}` }, shortId(call.batch_id)) : ''),
        field('created', formatDateTime(call.created_at)), field('archived', formatDateTime(call.archived_at))),
      actions?.element,
      h('h2', {}, 'Attempts'),
      sessions.length ? h('ol', { class: 'sessions' }, sessions.map((s) => sessionElement(s, runBySession.get(s.id))))
        : h('p', { class: 'muted' }, 'Not dialled yet.'),
      h('h2', {}, 'Result'), results, h('p', {}, recordingLinks(call)),
      h('h3', {}, 'Summary'), h('p', { class: 'summary' }, call.summary ?? '—'),
      h('h3', {}, 'Structured data'),
      h('pre', { class: 'json' }, call.structured_data ? JSON.stringify(call.structured_data, null, 2) : '—'),
      h('h3', {}, 'Transcript'), h('pre', { class: 'transcript', id: 'transcript' }, call.transcript ?? '—'),
      h('h2', {}, 'Operators\u2019 actions'), audit.error ? errorBox(audit.error) : auditTable(audit));
    actions?.refresh();
  }

  let timer = null;
  const reload = () => {
    clearTimeout(timer);
    timer = setTimeout(() => load().catch((error) => body.prepend(errorBox(error))), 150);
  };
  const unsubscribe = subscribe(supabase, [
    { table: 'pending_calls', filter: `id=eq.${id}` },
    { table: 'call_sessions', filter: `pending_call_id=eq.${id}` },
    { table: 'classification_runs', filter: `pending_call_id=eq.${id}` },
    { table: 'operator_actions' },
  ], (table, payload) => {
    if (table !== 'operator_actions' || (payload.new?.target_ids ?? []).includes(id)) reload();
  }, badge);
  await load().catch((error) => replace(body, errorBox(error)));
  return () => {
    clearTimeout(timer);
    unsubscribe();
  };
}
