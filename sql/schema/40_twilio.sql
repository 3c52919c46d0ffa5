-- 40: Twilio's status callbacks.

-- apply_twilio_status -----------------------------------------------------------------------------------
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
  v_new_rank int;
  v_cur_rank int;
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
  v_slot_freed boolean := false;
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
    -- Every status below rank 5 is live, so this call ended a live session: a place under
    -- max_concurrent_calls is free (the Worker claims the next due row at once).
    v_slot_freed := v_new_rank = 5;

    -- A live call is `calling` even if its dial result has not been recorded yet. Of the endings,
    -- busy / no-answer / failed / canceled are retried (or fail the row when no attempt is left). A
    -- completed call reached VAPI, whose end-of-call report alone decides (answered by a person or a
    -- machine): so the Twilio-versus-VAPI race ends the same whichever arrives first.
    if v_new_rank < 5 then
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
    elsif p_call_status in ('busy', 'no-answer', 'failed', 'canceled') then
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'retry_pending', p_call_status);
    end if;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'session_status', v_session.status,
    'call_status', v_call.call_status,
    'changed', v_changed,
    'slot_freed', v_slot_freed);
end
$$;

comment on function public.apply_twilio_status(text, text, int, text, int, uuid) is
  'Applies a Twilio status callback, monotonically. busy/no-answer/failed/canceled are retried (retry_pending, or failed when no attempt is left); completed leaves the row to VAPI''s report. Returns {session_id, pending_call_id, session_status, call_status, changed, slot_freed} or null (unknown sid).';
