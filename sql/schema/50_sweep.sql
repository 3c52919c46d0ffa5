-- 50: the sweep (the Worker's cron): VAPI reports that never came, live sessions without news, and dials that
-- lost their result.

-- sweep_stale_sessions ------------------------------------------------------------------------------------
-- Run by the Worker's cron. Two jobs, each up to p_limit sessions:
--  1. Twilio says completed, the row still calls on that attempt, and VAPI's report has not come within
--     reconcile_after: the row ends failed, last_error vapi_report_missing. Not retried: the conversation may
--     have happened, and a call is never doubled.
--  2. Live sessions without news for reconcile_after (the last change, or the last reconciliation): handed to
--     the Worker to ask Twilio (GET Calls/{sid}.json then apply_twilio_status; a session still dialing:
--     the phone's calls, then reconcile_dialing_session). reconciled_at is set on those returned, so a
--     concurrent sweep takes others (and SKIP LOCKED skips those another transaction is writing). A session
--     whose dial is being re-sent is touched by reserve_dial_slot and so not taken.
--  3. Waiting rows (pending, retry_pending) past their expires_at that no claim reached (not due, outside their
--     window, no free slot): expired, up to 1,000 a sweep, so the batches' counts are right without a claim.
-- And the learning runs no listener will finish (past the lease, or their call ended without a result) are
-- abandoned (outcall_private.abandon_stale_runs, 47_learning.sql), all of them: a claim of their phone would too.
-- (Locks: part 2 locks sessions without their rows, against the usual order, but SKIP LOCKED never waits, so
-- it cannot deadlock.)
create or replace function public.sweep_stale_sessions(p_limit int default 50) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, 50);
  v_stale_before timestamptz := now() - (outcall_private.policy()).reconcile_after;
  v_call public.pending_calls%rowtype;
  v_reports_missing int := 0;
  v_to_reconcile jsonb;
  v_runs_abandoned int;
  v_expired int;
begin
  if v_limit < 1 then
    raise exception 'sweep_stale_sessions: p_limit must be at least 1, got %', v_limit
      using errcode = 'invalid_parameter_value';
  end if;

  for v_call in
    select p.*
      from public.call_sessions as s
      join public.pending_calls as p on p.id = s.pending_call_id and p.attempts = s.attempt
     where s.status = 'completed'
       and s.report_received_at is null
       and s.ended_at < v_stale_before
       and p.call_status = 'calling'
     order by s.ended_at
     limit v_limit
       for update of p skip locked
  loop
    v_call := outcall_private.advance_pending_call(v_call, v_call.attempts, 'failed', 'vapi_report_missing');
    v_reports_missing := v_reports_missing + (v_call.call_status = 'failed')::int;
  end loop;

  with stale as (
    -- (outcall_private.live_sessions, spelt out: locking rows through a view needs UPDATE on it)
    select s.id
      from public.call_sessions as s
     where s.status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress')
       and greatest(s.updated_at, s.reconciled_at) < v_stale_before
     order by greatest(s.updated_at, s.reconciled_at), s.created_at
     limit v_limit
       for update skip locked
  ), taken as (
    update public.call_sessions as s
       set reconciled_at = now()
      from stale
     where s.id = stale.id
    returning s.*
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'session_id', t.id,
           'pending_call_id', t.pending_call_id,
           'attempt', t.attempt,
           'phone', p.phone,
           'call_sid', t.call_sid,
           'status', t.status,
           'created_at', t.created_at) order by t.created_at, t.id), '[]'::jsonb)
    into v_to_reconcile
    from taken as t
    join public.pending_calls as p on p.id = t.pending_call_id;

  with overdue as (
    select p.id
      from public.pending_calls as p
     where p.call_status in ('pending', 'retry_pending') and p.expires_at <= now()
     order by p.expires_at
     limit 1000
       for update skip locked
  )
  update public.pending_calls as p
     set call_status = 'expired', last_error = 'expired'
    from overdue
   where p.id = overdue.id;
  get diagnostics v_expired = row_count;

  v_runs_abandoned := outcall_private.abandon_stale_runs(null);

  return jsonb_build_object('reports_missing', v_reports_missing, 'to_reconcile', v_to_reconcile,
                            'runs_abandoned', v_runs_abandoned, 'expired', v_expired);
end
$$;

comment on function public.sweep_stale_sessions(int) is
  'Ends rows whose Twilio-completed call got no VAPI report within reconcile_after (failed, vapi_report_missing) and hands out live sessions without news for reconcile_after (reconciled_at set), abandons the learning runs no listener will finish, ends waiting rows past their expires_at (expired, up to 1,000). Returns {reports_missing, to_reconcile: [{session_id, pending_call_id, attempt, phone, call_sid, status, created_at}], runs_abandoned, expired}.';

-- reconcile_dialing_session -------------------------------------------------------------------------------
-- A session still dialing whose create request got no usable answer (the Worker lost it, or never sent it).
-- p_candidates are Twilio's calls to the session's phone, [{"sid", "status", "date_created", "duration"}].
-- The earliest one not already any session's, created no earlier than 5 s (clock skew) before the session, is
-- this session's call: adopted as record_dial_result and a status callback would (row calling, then its
-- status applied). With none, p_final (the sweep's default) says the request never reached Twilio: the
-- session is dial_failed ('no call at Twilio', 'not_dialled') and the row retried per the policy; without
-- p_final (the Worker checking before it re-sends) nothing changes and the outcome is 'none'.
-- (At most one session per phone is dialing at a time, see phone_is_dialing, so the match is unambiguous.)
-- Returns {session_id, outcome: adopted | not_dialled | none | unchanged, call_sid, call_status} or null.
create or replace function public.reconcile_dialing_session(
  p_session_id uuid,
  p_candidates jsonb,
  p_final boolean default true
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_pick jsonb;
  v_outcome text := 'unchanged';
begin
  if jsonb_typeof(p_candidates) is distinct from 'array'
     or exists (select 1 from jsonb_array_elements(p_candidates) as c
                 where jsonb_typeof(c) <> 'object'
                    or nullif(btrim(c ->> 'sid'), '') is null
                    or c ->> 'status' is null
                    or c ->> 'date_created' is null) then
    raise exception 'reconcile_dialing_session: p_candidates must be an array of {sid, status, date_created, duration}'
      using errcode = 'invalid_parameter_value';
  end if;

  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;

  if v_session.status = 'dialing' and v_session.call_sid is null then
    select c into v_pick
      from jsonb_array_elements(p_candidates) as c
     where (c ->> 'date_created')::timestamptz >= v_session.created_at - interval '5 seconds'
       and not exists (select 1 from public.call_sessions where call_sid = c ->> 'sid')
     order by (c ->> 'date_created')::timestamptz, c ->> 'sid'
     limit 1;

    if v_pick is not null then
      update public.call_sessions
         set call_sid = v_pick ->> 'sid', dialed_at = (v_pick ->> 'date_created')::timestamptz, status = 'queued'
       where id = v_session.id;
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
      perform public.apply_twilio_status(v_pick ->> 'sid', v_pick ->> 'status', null, null,
                                         (v_pick ->> 'duration')::int);
      v_outcome := 'adopted';
    elsif coalesce(p_final, true) then
      v_call := outcall_private.fail_dial(v_call, v_session, 'no call at Twilio', 'not_dialled', true);
      v_outcome := 'not_dialled';
    else
      v_outcome := 'none';
    end if;
    select * into v_call from public.pending_calls where id = v_call.id;
    select * into v_session from public.call_sessions where id = v_session.id;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'outcome', v_outcome,
    'call_sid', v_session.call_sid,
    'call_status', v_call.call_status);
end
$$;

comment on function public.reconcile_dialing_session(uuid, jsonb, boolean) is
  'For a session still dialing: adopts the Twilio call among p_candidates ([{sid, status, date_created, duration}]) that belongs to it; with none and p_final (default), records that the dial never reached Twilio (dial_failed, row retried), without p_final changes nothing. Returns {session_id, outcome: adopted | not_dialled | none | unchanged, call_sid, call_status} or null.';
