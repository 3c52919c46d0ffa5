-- Calls per second held where Twilio counts them: when a create request arrives.
--
-- Until now a claim reserved a send slot 1.1/cps after the previous one and the Worker sent at once. The
-- spacing held only as long as every request reached Twilio at the same delay after its claim; under load the
-- claim's answer (commit, PostgREST, the gateway, the Worker's event loop) and the request itself (the
-- Worker's fetch queue, the network) each took up to ~130 ms longer for one request than the next, and two
-- creates arrived 419 ms apart at 2 calls/s.
--
-- Now a send slot is released only when Twilio has answered the request that held it (or it went unanswered):
-- the answer is recorded after the request arrived, so a slot granted a window after that record leaves, and
-- arrives, a window after the earlier request arrived, whatever the delays in between. The rule, with
-- k = max(1, floor(calls_per_second)) and window = 1 s (1/calls_per_second below 1 call/s):
--   a create may be sent only while fewer than k creates are in flight or were answered within the window,
--   and no sooner than 1/calls_per_second after the previous grant (an even pace).
-- So any k + 1 creates arrive at least a window apart (at most k in any second), with no headroom for jitter.
-- The cost is the create's own answer time: at 1 call/s one call every 1 s + Twilio's answer time.

-- The create requests in flight and those answered within the window: one row per session (its latest try).
create table outcall_private.dial_requests (
  session_id uuid primary key references public.call_sessions (id) on delete cascade,
  sent_at timestamptz not null,
  answered_at timestamptz
);
comment on table outcall_private.dial_requests is
  'Twilio create requests in flight (answered_at null) and recently answered: the calls-per-second send slots. Pruned at each grant.';

-- A create request unanswered this long is no longer counted as in flight: the Worker waits at most
-- TWILIO_TIMEOUT_MS (up to 60 s) for an answer and then releases it; only a Worker that died mid-dial leaves
-- one behind.
create or replace function outcall_private.dial_request_lease() returns interval
language sql immutable
set search_path = ''
as $$
  select interval '2 minutes'
$$;

-- The gap between two grants: exactly 1/calls_per_second (the in-flight rule, not headroom, keeps arrivals apart).
create or replace function outcall_private.dial_spacing() returns interval
language sql stable
set search_path = ''
as $$
  select interval '1 second' * (1.0 / p.calls_per_second)::float8 from outcall_private.policy() as p
$$;

-- How long until a create request may be sent (zero: now). The dispatch lock must be held. On the database's
-- wall clock, clock_timestamp(), which is also the clock of every grant and answer compared here.
create or replace function outcall_private.send_slot_wait() returns interval
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_cps numeric := (outcall_private.policy()).calls_per_second;
  v_slots int := greatest(1, pg_catalog.floor(v_cps))::int;
  v_window interval := interval '1 second' * (case when v_cps >= 1 then 1 else 1.0 / v_cps end)::float8;
  v_pace_wait interval := (select greatest(next_slot_at, v_now) from outcall_private.rate_state) - v_now;
  v_busy int;
  v_free_at timestamptz;
begin
  -- A request in flight frees its slot a window after its answer, which is later than now: now + window
  -- is the earliest that can be.
  select count(*) into v_busy
    from outcall_private.dial_requests as r
   where (r.answered_at is null and r.sent_at > v_now - outcall_private.dial_request_lease())
      or r.answered_at > v_now - v_window;
  if v_busy >= v_slots then
    select free_at into v_free_at
      from (select coalesce(r.answered_at, v_now) + v_window as free_at
              from outcall_private.dial_requests as r
             where (r.answered_at is null and r.sent_at > v_now - outcall_private.dial_request_lease())
                or r.answered_at > v_now - v_window) as busy
     order by free_at
     offset v_busy - v_slots
     limit 1;
    return greatest(v_free_at - v_now, v_pace_wait, interval '0');
  end if;
  return greatest(v_pace_wait, interval '0');
end
$$;

-- Why nothing may be dialled now (at_capacity, rate_limited), or null. The dispatch lock must be held.
create or replace function outcall_private.limits_answer() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_wait interval;
begin
  if (select count(*) from outcall_private.live_sessions) >= (outcall_private.policy()).max_concurrent_calls then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'at_capacity');
  end if;
  v_wait := outcall_private.send_slot_wait();
  if v_wait > interval '0' then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'rate_limited',
                                         'retry_after_ms', outcall_private.interval_ms(v_wait));
  end if;
  return null;
end
$$;

-- Grants a send slot to the session's next create request, now (send_slot_wait() must have answered zero,
-- under the dispatch lock). The request is in flight until its answer is recorded. Returns the grant's time.
drop function if exists outcall_private.take_dial_slot();
create or replace function outcall_private.take_dial_slot(p_session_id uuid) returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
begin
  delete from outcall_private.dial_requests
   where coalesce(answered_at, sent_at + outcall_private.dial_request_lease()) < v_now - interval '1 hour';
  insert into outcall_private.dial_requests (session_id, sent_at) values (p_session_id, v_now)
  on conflict (session_id) do update set sent_at = excluded.sent_at, answered_at = null;
  update outcall_private.rate_state set next_slot_at = v_now + outcall_private.dial_spacing();
  return v_now;
end
$$;

-- Twilio answered (or never answered) the session's create request: its send slot starts its window now.
-- Idempotent; a session with no request in flight is left alone.
create or replace function outcall_private.release_dial_slot(p_session_id uuid) returns boolean
language sql volatile
set search_path = ''
as $$
  with released as (
    update outcall_private.dial_requests set answered_at = pg_catalog.clock_timestamp()
     where session_id = p_session_id and answered_at is null
    returning 1)
  select exists (select 1 from released)
$$;

-- A session that leaves `dialing` or learns its CallSid has had its create request answered (a dial result,
-- a status callback that beat it, a reconciliation): its send slot is released with it, in the same
-- transaction, whichever function moved it.
create or replace function outcall_private.release_answered_dial() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform outcall_private.release_dial_slot(new.id);
  return null;
end
$$;

create trigger call_sessions_release_answered_dial
  after update of status, call_sid on public.call_sessions
  for each row
  when (old.status = 'dialing' and old.call_sid is null and (new.status <> 'dialing' or new.call_sid is not null))
  execute function outcall_private.release_answered_dial();

-- The claim itself, once dispatch_gate said go: row -> dispatching, attempts+1, a new dialing session with the
-- phone's active, unexpired classification, a send slot granted to its create request. Returns the claim's answer.
create or replace function outcall_private.start_attempt(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_class public.call_classifications%rowtype;
  v_attempt int := p_call.attempts + 1;
  v_session_id uuid;
begin
  -- (at most one row is active per phone)
  select * into v_class
    from public.call_classifications
   where phone_number = p_call.phone
     and is_active
     and classification_expires_at > pg_catalog.now()
   limit 1;

  update public.pending_calls
     set call_status = 'dispatching',
         attempts = v_attempt,
         classification_id = v_class.id
   where id = p_call.id;

  insert into public.call_sessions (pending_call_id, attempt, status, classification_id, classification_type)
  values (p_call.id, v_attempt, 'dialing', v_class.id, v_class.classification_type)
  returning id into v_session_id;

  perform outcall_private.take_dial_slot(v_session_id);

  return pg_catalog.jsonb_build_object(
    'session_id', v_session_id,
    'pending_call_id', p_call.id,
    'attempt', v_attempt,
    'phone', p_call.phone,
    -- Whether other rows are due: the Worker then keeps dialling (drains) after this one.
    'more_due', exists (
      select 1 from public.pending_calls as o
       where o.call_status in ('pending', 'retry_pending') and o.next_attempt_at <= pg_catalog.now()
         and o.attempts < o.max_attempts and o.id <> p_call.id),
    'classification', case when v_class.id is null then null else
      pg_catalog.jsonb_build_object(
        'id', v_class.id,
        'classification_type', v_class.classification_type,
        'ivr_actions', v_class.ivr_actions)
      end);
end
$$;

-- reserve_dial_slot -------------------------------------------------------------------------------------
-- The Worker sends Twilio's create request again after a retryable provider error: that request needs a send
-- slot of its own, granted now or not at all. Returns {"outcome": "reserved"} (send now), {"outcome": "wait",
-- "retry_after_ms": n} (ask again then), {"outcome": "settled"} when the session no longer waits for its dial
-- result, null for an unknown session. Touches the session's updated_at: the sweep leaves a session being
-- worked on alone.
drop function if exists public.reserve_dial_slot(uuid);
create or replace function public.reserve_dial_slot(p_session_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_session public.call_sessions%rowtype;
  v_wait interval;
begin
  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  perform 1 from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;
  if v_session.status <> 'dialing' or v_session.call_sid is not null then
    return jsonb_build_object('outcome', 'settled');
  end if;

  update public.call_sessions set updated_at = now() where id = v_session.id;
  perform outcall_private.lock_dispatch_limits();
  -- Its own earlier try was answered (the Worker released it before backing off).
  v_wait := outcall_private.send_slot_wait();
  if v_wait > interval '0' then
    return jsonb_build_object('outcome', 'wait', 'retry_after_ms', outcall_private.interval_ms(v_wait));
  end if;
  perform outcall_private.take_dial_slot(v_session.id);
  return jsonb_build_object('outcome', 'reserved');
end
$$;

comment on function public.reserve_dial_slot(uuid) is
  'Grants a send slot now to the re-sent dial request of a session still dialing: {outcome: reserved}, {outcome: wait, retry_after_ms} (ask again then), {outcome: settled} (no longer dialing), or null (unknown session).';

-- release_dial_slot -------------------------------------------------------------------------------------
-- The Worker got an answer to a try that will be sent again (429, 503, 504) or none (timeout, dropped
-- connection): the try no longer holds a send slot while the Worker backs off. Returns {released: bool}
-- (false: nothing was in flight for it), null for an unknown session.
create or replace function public.release_dial_slot(p_session_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
begin
  if not exists (select 1 from public.call_sessions where id = p_session_id) then
    return null;
  end if;
  return jsonb_build_object('released', outcall_private.release_dial_slot(p_session_id));
end
$$;

comment on function public.release_dial_slot(uuid) is
  'Records that the session''s create request was answered (or timed out): its calls-per-second send slot counts from now. {released: bool} or null (unknown session).';

-- Privileges (as ..._security.sql: only service_role executes the RPCs; anon/authenticated nothing) -------
revoke all on function public.reserve_dial_slot(uuid), public.release_dial_slot(uuid)
  from public, anon, authenticated;
grant execute on function public.reserve_dial_slot(uuid), public.release_dial_slot(uuid) to service_role;

revoke all on all functions in schema outcall_private from public, anon, authenticated;
revoke all on table outcall_private.dial_requests from public, anon, authenticated;
grant select, insert, update, delete on table outcall_private.dial_requests to service_role;
grant execute on function
  outcall_private.dial_request_lease(),
  outcall_private.send_slot_wait(),
  outcall_private.take_dial_slot(uuid),
  outcall_private.release_dial_slot(uuid),
  outcall_private.release_answered_dial()
  to service_role;
