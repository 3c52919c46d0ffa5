-- The state machine: every transition is one call of one of these functions, in one transaction.
-- Contract: docs/architecture.md ("SQL functions"). All return jsonb; null = unknown id (the claim answers
-- {"claimed": false, ...} instead).
--
-- Rules kept by every function:
--   * idempotent and monotonic: a duplicate or stale event changes nothing and says changed=false;
--   * a terminal pending_calls status (completed, failed, cancelled) is never left (also enforced by the
--     pending_calls_terminal_guard trigger);
--   * locks are taken in one order, pending_calls row first, then its call_sessions row, so concurrent
--     events of one call serialize instead of deadlocking.
--
-- SECURITY INVOKER: they run with the caller's rights (service_role; execute is granted in
-- ..._security.sql). search_path is empty, every name is qualified.
-- Optional trailing parameters default to null, so a PostgREST call may omit them (it matches by name).
-- Arguments that make no sense (unknown Twilio status, both/neither CallSid and error, unknown report
-- outcome) raise invalid_parameter_value (22023; PostgREST answers 400).

-- How a pending call's status moves on an attempt's news ---------------------------------------------
-- The one place it does: only the row's current attempt moves it, only forward
-- (dispatching -> calling -> completed | failed), never out of a terminal state. Returns the row after.
create or replace function outcall_private.advance_pending_call(
  p_call public.pending_calls,
  p_attempt int,
  p_to text,
  p_error text default null
) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls := p_call;
  v_from text[] := case p_to
                     when 'calling' then array['dispatching']
                     when 'completed' then array['dispatching', 'calling']
                     when 'failed' then array['dispatching', 'calling']
                   end;
begin
  if p_attempt = p_call.attempts and p_call.call_status = any (v_from) then
    update public.pending_calls
       set call_status = p_to, last_error = coalesce(p_error, last_error)
     where id = p_call.id
    returning * into v_call;
  end if;
  return v_call;
end
$$;

-- claim_pending_call --------------------------------------------------------------------------------
create or replace function public.claim_pending_call(p_pending_call_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls%rowtype;
  v_class public.call_classifications%rowtype;
  v_attempt int;
  v_session_id uuid;
begin
  -- Taken by a concurrent claim (SKIP LOCKED), not claimable, not due, or out of attempts:
  -- {"claimed": false, "reason": "not_claimable"}; no such row: reason "not_found".
  -- (Calling windows and global limits are checked here too once they exist.)
  select * into v_call
    from public.pending_calls
   where id = p_pending_call_id
     and call_status in ('pending', 'retry_pending')
     and next_attempt_at <= now()
     and attempts < max_attempts
     for update skip locked;
  if not found then
    return jsonb_build_object('claimed', false, 'reason',
      case when exists (select 1 from public.pending_calls where id = p_pending_call_id)
           then 'not_claimable' else 'not_found' end);
  end if;

  -- The active, unexpired classification of this phone (at most one row is active).
  select * into v_class
    from public.call_classifications
   where phone_number = v_call.phone
     and is_active
     and classification_expires_at > now()
   limit 1;

  v_attempt := v_call.attempts + 1;

  update public.pending_calls
     set call_status = 'dispatching',
         attempts = v_attempt,
         classification_id = v_class.id
   where id = v_call.id;

  insert into public.call_sessions (pending_call_id, attempt, status, classification_id, classification_type)
  values (v_call.id, v_attempt, 'dialing', v_class.id, v_class.classification_type)
  returning id into v_session_id;

  return jsonb_build_object(
    'session_id', v_session_id,
    'pending_call_id', v_call.id,
    'attempt', v_attempt,
    'phone', v_call.phone,
    'classification', case when v_class.id is null then null else
      jsonb_build_object(
        'id', v_class.id,
        'classification_type', v_class.classification_type,
        'ivr_actions', v_class.ivr_actions)
      end);
end
$$;

comment on function public.claim_pending_call(uuid) is
  'Claims a due pending/retry_pending row (FOR UPDATE SKIP LOCKED): row -> dispatching, attempts+1, new call_sessions row (dialing). Returns {session_id, pending_call_id, attempt, phone, classification}, or {claimed: false, reason: not_found | not_claimable}.';

-- record_dial_result --------------------------------------------------------------------------------
create or replace function public.record_dial_result(
  p_session_id uuid,
  p_call_sid text default null,
  p_error text default null,
  p_error_code text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_sid text := nullif(btrim(p_call_sid), '');
  v_error text := nullif(btrim(p_error), '');
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
begin
  if (v_sid is null) = (v_error is null) then
    raise exception 'record_dial_result: exactly one of p_call_sid and p_error must be given'
      using errcode = 'invalid_parameter_value';
  end if;

  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;

  if v_sid is not null then
    -- Twilio may call back before its 201 reaches us, so a status callback can have stored the sid
    -- (and moved the session on) already; dialed_at marks that the dial result itself was recorded.
    if v_session.dialed_at is null and v_session.status <> 'dial_failed'
       and (v_session.call_sid is null or v_session.call_sid = v_sid) then
      update public.call_sessions
         set call_sid = v_sid, dialed_at = now(),
             status = case when status = 'dialing' then 'queued' else status end
       where id = v_session.id
      returning * into v_session;
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
      v_changed := true;
    end if;
  elsif v_session.status = 'dialing' then
    -- Only a session still waiting for its dial result takes a failure; a later one is a duplicate.
    update public.call_sessions
       set status = 'dial_failed', error = v_error, error_code = nullif(btrim(p_error_code), ''),
           ended_at = now()
     where id = v_session.id
    returning * into v_session;
    -- No retries yet: a failed dial ends the row. (Retries will choose retry_pending here.)
    v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'failed', v_error);
    v_changed := true;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.record_dial_result(uuid, text, text, text) is
  'Records the outcome of the Twilio Calls.json request: a CallSid (session queued, row calling) or an error (session dial_failed, row failed). Returns {session_id, pending_call_id, call_status, changed} or null.';

-- apply_twilio_status -------------------------------------------------------------------------------
create or replace function public.apply_twilio_status(
  p_call_sid text,
  p_call_status text,
  p_sequence_number int default null,
  p_answered_by text default null,
  p_duration_seconds int default null,
  p_session_id uuid default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  -- queued < initiated < ringing < in-progress < (completed | busy | no-answer | failed | canceled)
  c_terminal constant text[] := array['completed', 'busy', 'no-answer', 'failed', 'canceled', 'dial_failed'];
  c_machine constant text[] := array['machine_start', 'machine_end_beep', 'machine_end_silence',
                                     'machine_end_other', 'fax'];
  v_new_rank int;
  v_cur_rank int;
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_last_error text;
  v_changed boolean := false;
begin
  v_new_rank := case p_call_status
    when 'queued' then 1 when 'initiated' then 2 when 'ringing' then 3 when 'in-progress' then 4
    when 'completed' then 5 when 'busy' then 5 when 'no-answer' then 5 when 'failed' then 5
    when 'canceled' then 5 end;
  if v_new_rank is null then
    raise exception 'apply_twilio_status: unknown CallStatus %', coalesce(p_call_status, 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  -- By CallSid; or, for a callback that beat the dial result, by the session id the StatusCallback
  -- URL carries, when that session has no CallSid yet.
  select pending_call_id into v_pending_call_id from public.call_sessions where call_sid = p_call_sid;
  if not found then
    select pending_call_id into v_pending_call_id
      from public.call_sessions
     where id = p_session_id and call_sid is null and status <> 'dial_failed';
    if not found then
      return null;
    end if;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions
   where call_sid = p_call_sid or (id = p_session_id and call_sid is null)
   order by (call_sid = p_call_sid) desc nulls last
   limit 1
     for update;
  if v_session.call_sid is null then
    update public.call_sessions set call_sid = p_call_sid where id = v_session.id returning * into v_session;
    v_changed := true;
  end if;

  v_cur_rank := case
    when v_session.status = any (c_terminal) then 5
    else coalesce(array_position(array['dialing', 'queued', 'initiated', 'ringing', 'in-progress'],
                                 v_session.status) - 1, 0) end;

  if v_new_rank > v_cur_rank then
    update public.call_sessions
       set status = p_call_status,
           twilio_sequence_number = greatest(twilio_sequence_number, p_sequence_number),
           answered_by = coalesce(nullif(btrim(p_answered_by), ''), answered_by),
           answered_at = case when p_call_status = 'in-progress' then coalesce(answered_at, now())
                              else answered_at end,
           ended_at = case when v_new_rank = 5 then coalesce(ended_at, now()) else ended_at end,
           duration_seconds = case when v_new_rank = 5 then coalesce(p_duration_seconds, duration_seconds)
                                   else duration_seconds end
     where id = v_session.id
    returning * into v_session;
    v_changed := true;

    -- A live call is `calling` even if its dial result has not been recorded yet. Of the endings,
    -- busy / no-answer / failed / canceled and a machine answering fail the row; a plain completed
    -- leaves it to VAPI's end-of-call report.
    if v_new_rank < 5 then
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
    else
      v_last_error := case
        when p_call_status in ('busy', 'no-answer', 'failed', 'canceled') then p_call_status
        when v_session.answered_by = any (c_machine) then 'voicemail'
      end;
      if v_last_error is not null then
        v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'failed', v_last_error);
      end if;
    end if;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'session_status', v_session.status,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.apply_twilio_status(text, text, int, text, int, uuid) is
  'Applies a Twilio status callback, monotonically. busy/no-answer/failed/canceled and a machine-answered completed end the row failed. Returns {session_id, pending_call_id, session_status, call_status, changed} or null (unknown sid).';

-- call_context --------------------------------------------------------------------------------------
create or replace function public.call_context(p_pending_call_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'pending_call_id', c.id,
    'exam_id', c.exam_id,
    'employee_name', c.employee_name,
    'employee_dob', c.employee_dob,
    'client_name', c.client_name,
    'clinic_name', c.clinic_name,
    'clinic_timezone', c.clinic_timezone,
    'appointment_time', c.appointment_time,
    -- What the assistant says: the appointment on the clinic's wall clock.
    'appointment_local', to_char(c.appointment_time at time zone c.clinic_timezone,
                                 'FMDay, FMMonth FMDD, YYYY "at" FMHH12:MI AM'),
    'procedures', to_jsonb(c.procedures),
    'instructions', c.instructions,
    'variables', c.variables)
  from public.pending_calls as c
  where c.id = p_pending_call_id
$$;

comment on function public.call_context(uuid) is
  'What a call needs and nothing else (read-only): {pending_call_id, exam_id, employee_name, employee_dob, client_name, clinic_name, clinic_timezone, appointment_time, appointment_local, procedures, instructions, variables} or null.';

-- The session a VAPI event belongs to -------------------------------------------------------------
-- The session of this VAPI call, else the latest attempt that has a call_sid; locked. All nulls if none.
create or replace function outcall_private.lock_vapi_session(p_pending_call_id uuid, p_vapi_call_id text)
returns public.call_sessions
language sql volatile
set search_path = ''
as $$
  select *
    from public.call_sessions
   where pending_call_id = p_pending_call_id
     and (vapi_call_id = p_vapi_call_id or call_sid is not null)
   order by coalesce(vapi_call_id = p_vapi_call_id, false) desc, attempt desc
   limit 1
     for update
$$;

-- apply_vapi_status ---------------------------------------------------------------------------------
-- VAPI's status-update: scheduled < queued < ringing < in-progress < forwarding < ended. Recorded on the
-- current session (the one with this vapi_call_id, else the latest attempt that has a call_sid).
-- A status VAPI may add later, or an event of another VAPI call, changes nothing.
create or replace function public.apply_vapi_status(
  p_pending_call_id uuid,
  p_status text,
  p_vapi_call_id text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_order constant text[] := array['scheduled', 'queued', 'ringing', 'in-progress', 'forwarding', 'ended'];
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_new_rank int := array_position(c_order, p_status);
  v_changed boolean := false;
begin
  select * into v_call from public.pending_calls where id = p_pending_call_id for update;
  if not found then
    return null;
  end if;

  v_session := outcall_private.lock_vapi_session(v_call.id, v_vapi_call_id);
  if v_session.id is null then
    return null;
  end if;

  if v_new_rank is not null
     and v_new_rank > coalesce(array_position(c_order, v_session.vapi_status), 0)
     and (v_session.vapi_call_id is null or v_vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
  then
    update public.call_sessions
       set vapi_status = p_status,
           vapi_call_id = coalesce(vapi_call_id, v_vapi_call_id)
     where id = v_session.id
    returning * into v_session;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'pending_call_id', v_call.id,
    'session_id', v_session.id,
    'vapi_status', v_session.vapi_status,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.apply_vapi_status(uuid, text, text) is
  'Records VAPI''s status-update on the current session, monotonically. Returns {pending_call_id, session_id, vapi_status, call_status, changed} or null (unknown id / no dialled session).';

-- apply_call_report ---------------------------------------------------------------------------------
create or replace function public.apply_call_report(
  p_pending_call_id uuid,
  p_vapi_call_id text,
  p_outcome text,
  p_ended_reason text default null,
  p_summary text default null,
  p_success_evaluation text default null,
  p_structured_data jsonb default null,
  p_transcript text default null,
  p_duration_seconds numeric default null,
  p_cost numeric default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
begin
  if p_outcome is null or p_outcome not in ('completed', 'not_reached') then
    raise exception 'apply_call_report: p_outcome must be completed or not_reached, got %',
      coalesce(p_outcome, 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_call from public.pending_calls where id = p_pending_call_id for update;
  if not found then
    return null;
  end if;

  v_session := outcall_private.lock_vapi_session(v_call.id, v_vapi_call_id);
  if v_session.id is null then
    return null;
  end if;

  -- One report per session; a report of another VAPI call than the session's is not ours.
  if v_session.report_received_at is null
     and (v_session.vapi_call_id is null or v_vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
  then
    update public.call_sessions
       set report_received_at = now(),
           ended_reason = p_ended_reason,
           cost = p_cost,
           vapi_call_id = coalesce(vapi_call_id, v_vapi_call_id)
     where id = v_session.id
    returning * into v_session;

    -- Results are recorded even on a row that is already terminal (say Twilio reported voicemail first);
    -- its status and last_error then stay as they are. Only the current attempt writes the row.
    if v_session.attempt = v_call.attempts then
      update public.pending_calls
         set ended_reason = p_ended_reason,
             summary = p_summary,
             success_evaluation = p_success_evaluation,
             structured_data = p_structured_data,
             transcript = p_transcript,
             duration_seconds = p_duration_seconds,
             cost = p_cost
       where id = v_call.id
      returning * into v_call;
      v_call := outcall_private.advance_pending_call(
        v_call, v_session.attempt,
        case p_outcome when 'completed' then 'completed' else 'failed' end,
        case p_outcome when 'not_reached' then coalesce(p_ended_reason, 'not_reached') end);
    end if;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'pending_call_id', v_call.id,
    'session_id', v_session.id,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric) is
  'Applies VAPI''s end-of-call report to the current session and the row: row -> completed (p_outcome completed) or failed (not_reached) unless already terminal; results always recorded. A second report changes nothing. Returns {pending_call_id, session_id, call_status, changed} or null.';
