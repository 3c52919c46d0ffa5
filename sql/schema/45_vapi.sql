-- 45: VAPI: what a call needs (call_context), VAPI's status updates and its end-of-call report.

-- call_context -------------------------------------------------------------------------------------------------
-- The fields VAPI may have of a row, by default (settings 'vapi_context_fields', a comma-separated list, narrows
-- or widens them; pending_call_id is always there). Date of birth is in: clinics verify patients by it.
-- Security definer: the settings table is closed to every API role, service_role included; this reads one name.
create or replace function outcall_private.vapi_context_fields() returns text[]
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select pg_catalog.string_to_array(pg_catalog.replace(value, ' ', ''), ',')
       from outcall_private.settings where name = 'vapi_context_fields'),
    array['exam_id', 'employee_name', 'employee_dob', 'client_name', 'clinic_name', 'clinic_timezone',
          'appointment_time', 'appointment_local', 'procedures', 'instructions', 'variables', 'prompt', 'first_message'])
$$;

-- What a call needs and nothing else, only for VAPI's call of the row's live attempt: the row is being dialled or
-- called (not finished, cancelled or waiting), its current session has not ended, and the session is bound to
-- p_vapi_call_id. The first VAPI call to ask binds it; any other call id gets null, as does an unknown row.
create or replace function public.call_context(p_pending_call_id uuid, p_vapi_call_id text) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_all jsonb;
begin
  if v_vapi_call_id is null then
    return null;
  end if;
  select * into v_call from public.pending_calls
   where id = p_pending_call_id and call_status in ('dispatching', 'calling')
     for update;
  if not found then
    return null;
  end if;
  select * into v_session from public.call_sessions as s
   where s.pending_call_id = v_call.id and s.attempt = v_call.attempts
     and exists (select 1 from outcall_private.live_sessions as l where l.id = s.id)
     for update of s;
  if not found or v_session.vapi_call_id <> v_vapi_call_id then
    return null;
  end if;
  if v_session.vapi_call_id is null then
    update public.call_sessions set vapi_call_id = v_vapi_call_id where id = v_session.id;
  end if;

  v_all := jsonb_build_object(
    'exam_id', v_call.exam_id,
    'employee_name', v_call.employee_name,
    'employee_dob', v_call.employee_dob,
    'client_name', v_call.client_name,
    'clinic_name', v_call.clinic_name,
    'clinic_timezone', v_call.clinic_timezone,
    'appointment_time', v_call.appointment_time,
    -- What the assistant says: the appointment on the clinic's wall clock.
    'appointment_local', to_char(v_call.appointment_time at time zone v_call.clinic_timezone,
                                 'FMDay, FMMonth FMDD, YYYY "at" FMHH12:MI AM'),
    'procedures', to_jsonb(v_call.procedures),
    'instructions', v_call.instructions,
    'variables', v_call.variables,
    'prompt', v_call.prompt,
    'first_message', v_call.first_message);
  return jsonb_build_object('pending_call_id', v_call.id)
         || coalesce((select jsonb_object_agg(f.key, f.value) from jsonb_each(v_all) as f
                       where f.key = any (outcall_private.vapi_context_fields())), '{}');
end
$$;

comment on function public.call_context(uuid, text) is
  'What a call needs and nothing else, for VAPI''s call p_vapi_call_id of the row''s live attempt (the first call id to ask is bound to the session): {pending_call_id} and the fields of outcall_private.vapi_context_fields(), or null (unknown row, not live, another VAPI call).';

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
     and (v_session.vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
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

-- apply_call_report -------------------------------------------------------------------------------------
-- VAPI's end-of-call report: completed ends the row completed; not_reached (voicemail, no answer, ...) is a
-- retryable failure. The results are recorded whatever the outcome. An assistant-request failure counts towards
-- the circuit breaker, a concurrency refusal towards the quota count (vapi_failure_kind).
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
     and (v_session.vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
  then
    update public.call_sessions
       set report_received_at = now(),
           ended_reason = p_ended_reason,
           cost = p_cost,
           vapi_call_id = coalesce(vapi_call_id, v_vapi_call_id)
     where id = v_session.id
    returning * into v_session;
    -- The circuit breaker and the quota count (35_breaker.sql), before the row's update locks its batch.
    if outcall_private.vapi_failure_kind(p_ended_reason) is null then
      perform outcall_private.breaker_success(v_session.id, 'vapi');
    else
      perform outcall_private.breaker_failure(v_session.id, 'vapi', outcall_private.vapi_failure_kind(p_ended_reason));
    end if;

    -- Results are recorded even on a row that Twilio's news already moved on (say busy on the last attempt); its
    -- status and last_error then stay as they are. Only the current attempt writes the row.
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
        case p_outcome when 'completed' then 'completed' else 'retry_pending' end,
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
  'Applies VAPI''s end-of-call report to the current session and the row: completed -> completed, not_reached -> retry_pending (failed when no attempt is left), unless Twilio''s news already moved the row on; results always recorded. A second report changes nothing. Returns {pending_call_id, session_id, call_status, changed} or null.';
