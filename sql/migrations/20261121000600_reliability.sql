-- Reliability (issue 3): retries with backoff, calling windows, global dispatch limits, the sweep.
-- Contract: docs/architecture.md ("SQL functions"). The rules of ..._state_machine.sql still hold (idempotent,
-- monotonic, terminal never left, locks pending_calls row first, then its session). One lock is added: the
-- dispatch limits (the outcall_private.rate_state row), always taken last and only by claims and dial-slot
-- reservations, so they serialize there and nowhere else.

-- The dispatch policy -----------------------------------------------------------------------------------
-- One row; the defaults are what a deployment gets. Changed by hand, as postgres, like the webhook settings:
--   update outcall_private.dispatch_policy set max_concurrent_calls = 20, calls_per_second = 5;
create table outcall_private.dispatch_policy (
  id boolean primary key default true
    constraint dispatch_policy_singleton check (id),
  -- Live sessions (a Twilio call up or being set up) at most; a claim beyond it answers at_capacity.
  max_concurrent_calls int not null default 10
    constraint dispatch_policy_max_concurrent_calls_positive check (max_concurrent_calls >= 1),
  -- Twilio's calls-per-second limit of the account; fractions allowed (0.5: one call every 2 s).
  calls_per_second numeric not null default 1
    constraint dispatch_policy_calls_per_second_positive check (calls_per_second > 0),
  -- Delay before attempt n+1 after attempt n failed: retry_delays[least(n, cardinality)].
  retry_delays interval[] not null default '{5 minutes,15 minutes,30 minutes}'
    constraint dispatch_policy_retry_delays_valid check (
      cardinality(retry_delays) >= 1 and array_ndims(retry_delays) = 1 and array_lower(retry_delays, 1) = 1
      and array_position(retry_delays, null) is null and interval '0' < all (retry_delays)),
  -- The calling window, on the clinic's wall clock: ISO days of week (1 = Monday .. 7 = Sunday) and
  -- [window_start, window_end); window_end '24:00' is the end of the day.
  window_days int[] not null default '{1,2,3,4,5}'
    constraint dispatch_policy_window_days_valid check (
      cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[]),
  window_start time not null default '09:00',
  window_end time not null default '17:00',
  -- A live session with no news this long is reconciled with Twilio; a Twilio-completed session waits this
  -- long for VAPI's end-of-call report.
  reconcile_after interval not null default '5 minutes'
    constraint dispatch_policy_reconcile_after_positive check (reconcile_after > interval '0'),
  constraint dispatch_policy_window_valid check (window_start < window_end)
);
comment on table outcall_private.dispatch_policy is
  'The dispatch policy (one row): max_concurrent_calls, calls_per_second, retry_delays, the calling window (window_days, window_start, window_end on the clinic''s wall clock), reconcile_after.';
insert into outcall_private.dispatch_policy default values on conflict do nothing;

-- The calls-per-second reservation: the earliest instant the next dial request may leave.
create table outcall_private.rate_state (
  id boolean primary key default true
    constraint rate_state_singleton check (id),
  next_slot_at timestamptz not null default '-infinity'
);
comment on table outcall_private.rate_state is
  'The calls-per-second reservation (one row): next_slot_at. Its row lock serializes claims and dial-slot reservations.';
insert into outcall_private.rate_state default values on conflict do nothing;

-- When the sweep last handed the session to the Worker for reconciliation with Twilio.
alter table public.call_sessions add column reconciled_at timestamptz;

-- Live sessions: a Twilio call is up, or about to be (dialing: the create request is out, no CallSid yet).
-- They count against max_concurrent_calls and are what the sweep reconciles. Few rows at any time.
create view outcall_private.live_sessions with (security_invoker = true) as
  select * from public.call_sessions
   where status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress');
comment on view outcall_private.live_sessions is
  'call_sessions in a live status (dialing, queued, initiated, ringing, in-progress). Served by call_sessions_live_idx.';

-- Indexes for the queries below --------------------------------------------------------------------------
-- Capacity count, "is this phone dialing", stale live sessions (predicate = the view's, so it is used).
create index call_sessions_live_idx on public.call_sessions (status, updated_at)
  where status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress');
-- The sweep's Twilio-completed sessions still waiting for VAPI's report.
create index call_sessions_report_missing_idx on public.call_sessions (ended_at)
  where status = 'completed' and report_received_at is null;
-- claim_next_due: the due rows in the order they are served.
create index pending_calls_due_idx on public.pending_calls (next_attempt_at, created_at)
  where call_status in ('pending', 'retry_pending');

-- Small helpers ------------------------------------------------------------------------------------------

-- The policy row. Raises if someone deleted it: no row must not mean "no limits".
create or replace function outcall_private.policy() returns outcall_private.dispatch_policy
language plpgsql stable
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy;
begin
  select * into v_policy from outcall_private.dispatch_policy;
  if not found then
    raise exception 'outcall_private.dispatch_policy has no row' using errcode = 'no_data_found';
  end if;
  return v_policy;
end
$$;

-- An interval in whole milliseconds, rounded up, never negative (what the Worker sleeps).
create or replace function outcall_private.interval_ms(p_interval interval) returns int
language sql immutable strict
set search_path = ''
as $$
  select greatest(0, pg_catalog.ceil(extract(epoch from p_interval) * 1000))::int
$$;

-- The calling window ------------------------------------------------------------------------------------
-- p_at itself when it is inside the window on p_tz's wall clock (ISO day of week in p_days and
-- p_start <= local time < p_end), else the earliest later instant that opens it: p_start on the next allowed
-- local date. Computed on the wall clock and converted back with AT TIME ZONE, so DST changes are handled.
-- Where a transition makes the wall time ambiguous or missing, Postgres decides (relevant only for a window
-- starting between 01:00 and 03:00 local time in a DST zone):
--   * a p_start in a spring-forward gap (02:30 on the day New York skips 02:00-03:00) is read with the offset
--     before the gap, i.e. 03:30 EDT: inside the window, but later than the first inside instant (03:00 EDT);
--   * a p_start in a fall-back repeated hour (01:30 on the day New York repeats 01:00-02:00) is the later
--     of the two, 01:30 EST.
-- STABLE, not IMMUTABLE: the answer depends on the installed tz database. (PL/pgSQL: some 6 times faster
-- here than the same in one SQL statement.)
create or replace function outcall_private.calling_window_opening(
  p_tz text, p_at timestamptz, p_days int[], p_start time, p_end time
) returns timestamptz
language plpgsql stable strict
set search_path = ''
as $$
declare
  v_local timestamp := p_at at time zone p_tz;
  v_opening timestamptz;
begin
  if extract(isodow from v_local)::int = any (p_days) and v_local::time >= p_start and v_local::time < p_end then
    return p_at;
  end if;
  -- An allowed day comes round within a week; today's own opening counts only if it is still ahead.
  for n in 0 .. 7 loop
    if extract(isodow from v_local::date + n)::int = any (p_days) then
      v_opening := ((v_local::date + n) + p_start) at time zone p_tz;
      if v_opening > p_at then
        return v_opening;
      end if;
    end if;
  end loop;
  return null;  -- (no allowed day)
end
$$;

-- The same with the policy's window.
create or replace function outcall_private.calling_window_opening(p_tz text, p_at timestamptz)
returns timestamptz
language sql stable
set search_path = ''
as $$
  select outcall_private.calling_window_opening(p_tz, p_at, p.window_days, p.window_start, p.window_end)
    from outcall_private.policy() as p
$$;

-- When the next attempt of a row may start after its attempt p_attempts failed: the policy's delay for that
-- attempt from now, pushed into the clinic's calling window.
create or replace function outcall_private.retry_at(p_tz text, p_attempts int) returns timestamptz
language sql stable
set search_path = ''
as $$
  select outcall_private.calling_window_opening(
           p_tz,
           pg_catalog.now()
             + p.retry_delays[least(greatest(p_attempts, 1), pg_catalog.cardinality(p.retry_delays))])
    from outcall_private.policy() as p
$$;

-- How a pending call's status moves on an attempt's news --------------------------------------------------
-- (Replaces ..._state_machine.sql's version; same signature.) The one place it does: only the row's current
-- attempt moves it, only forward, never out of a terminal state. Returns the row after.
--   p_to 'calling':       dispatching -> calling
--   p_to 'completed':     dispatching | calling -> completed
--   p_to 'failed':        dispatching | calling -> failed (last_error p_error): not worth retrying
--   p_to 'retry_pending': a retryable failure (last_error p_error): dispatching | calling -> retry_pending,
--                         next_attempt_at = retry_at(...), while attempts < max_attempts; else -> failed
-- A row already in retry_pending is not moved again: a second failure report of the same attempt (Twilio's
-- busy and VAPI's not_reached) is a duplicate.
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
  v_to text := p_to;
  v_next_attempt_at timestamptz;
  v_from text[] := case p_to
                     when 'calling' then array['dispatching']
                     when 'completed' then array['dispatching', 'calling']
                     when 'failed' then array['dispatching', 'calling']
                     when 'retry_pending' then array['dispatching', 'calling']
                   end;
begin
  if v_from is null then
    raise exception 'advance_pending_call: unknown target status %', coalesce(p_to, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_attempt = p_call.attempts and p_call.call_status = any (v_from) then
    if p_to = 'retry_pending' then
      if p_call.attempts < p_call.max_attempts then
        v_next_attempt_at := outcall_private.retry_at(p_call.clinic_timezone, p_call.attempts);
      else
        v_to := 'failed';
      end if;
    end if;
    update public.pending_calls
       set call_status = v_to,
           last_error = coalesce(p_error, last_error),
           next_attempt_at = case when v_to = 'retry_pending' then v_next_attempt_at else next_attempt_at end
     where id = p_call.id
    returning * into v_call;
  end if;
  return v_call;
end
$$;

-- A dial that did not happen: session dial_failed, row retried per the policy (or failed when p_retryable
-- is false or no attempt is left). The session must be locked and still dialing. Returns the row after.
create or replace function outcall_private.fail_dial(
  p_call public.pending_calls,
  p_session public.call_sessions,
  p_error text,
  p_error_code text,
  p_retryable boolean
) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
begin
  update public.call_sessions
     set status = 'dial_failed', error = p_error, error_code = p_error_code, ended_at = pg_catalog.now()
   where id = p_session.id;
  return outcall_private.advance_pending_call(
    p_call, p_session.attempt, case when p_retryable then 'retry_pending' else 'failed' end, p_error);
end
$$;

-- Dispatch limits ----------------------------------------------------------------------------------------
-- Locks the rate_state row until commit. Every claim and slot reservation takes it (after its pending_calls
-- row), so the capacity count, the phone check and the calls-per-second slot are exact however many run at
-- once: the next one waits, and its following statements see what the previous one committed (READ
-- COMMITTED: one snapshot per statement). The section is short: one claim's work.
create or replace function outcall_private.lock_dispatch_limits() returns outcall_private.rate_state
language plpgsql volatile
set search_path = ''
as $$
declare
  v_state outcall_private.rate_state;
begin
  select * into v_state from outcall_private.rate_state for update;
  if not found then
    raise exception 'outcall_private.rate_state has no row' using errcode = 'no_data_found';
  end if;
  return v_state;
end
$$;

-- The gap between two dial requests. 10% headroom: we decide when a request leaves, Twilio counts when it
-- arrives, and network jitter can bring two requests closer than we sent them.
create or replace function outcall_private.dial_spacing() returns interval
language sql stable
set search_path = ''
as $$
  select interval '1 second' * (1.1 / p.calls_per_second)::float8 from outcall_private.policy() as p
$$;

-- Why nothing may be dialled now (at_capacity, rate_limited), or null. The dispatch lock must be held.
-- The rate is measured on the wall clock, clock_timestamp(), not now(): now() is when the transaction began,
-- and a claim may have waited for the dispatch lock since; its request leaves after this instant, not then.
create or replace function outcall_private.limits_answer() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_next_slot_at timestamptz;
  v_now timestamptz := pg_catalog.clock_timestamp();
begin
  if (select count(*) from outcall_private.live_sessions) >= (outcall_private.policy()).max_concurrent_calls then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'at_capacity');
  end if;
  select next_slot_at into v_next_slot_at from outcall_private.rate_state;
  if v_next_slot_at > v_now then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'rate_limited',
                                         'retry_after_ms', outcall_private.interval_ms(v_next_slot_at - v_now));
  end if;
  return null;
end
$$;

-- Takes the next calls-per-second slot (the dispatch lock must be held): the slot is now (wall clock), or later
-- when earlier reservations still run; the one after it is a spacing further. Returns the slot.
create or replace function outcall_private.take_dial_slot() returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_slot timestamptz;
begin
  select greatest(pg_catalog.clock_timestamp(), next_slot_at) into v_slot from outcall_private.rate_state;
  update outcall_private.rate_state set next_slot_at = v_slot + outcall_private.dial_spacing();
  return v_slot;
end
$$;

-- Another session of this phone waits for Twilio's answer to its create request (no CallSid yet). At most one
-- such dial per phone, so that reconciliation can tell which Twilio call belongs to which session.
create or replace function outcall_private.phone_is_dialing(p_phone text) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1
                   from outcall_private.live_sessions as s
                   join public.pending_calls as p on p.id = s.pending_call_id
                  where s.status = 'dialing' and p.phone = p_phone)
$$;

-- Claims ---------------------------------------------------------------------------------------------------
-- What stands between a claimable row (locked) and its dial, in the order of the answers: outside_window (the
-- row then waits for the opening), phone_dialing, at_capacity, rate_limited. Null = go ahead; the dispatch
-- lock is then held. The phone is checked under the lock too: two rows of one phone claimed at once must not
-- both pass.
create or replace function outcall_private.dispatch_gate(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_opening timestamptz := outcall_private.calling_window_opening(p_call.clinic_timezone, pg_catalog.now());
begin
  if v_opening > pg_catalog.now() then
    update public.pending_calls set next_attempt_at = v_opening where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'outside_window', 'next_attempt_at', v_opening);
  end if;
  perform outcall_private.lock_dispatch_limits();
  if outcall_private.phone_is_dialing(p_call.phone) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'phone_dialing', 'retry_after_ms', 250);
  end if;
  return outcall_private.limits_answer();
end
$$;

-- The claim itself, once dispatch_gate said go: row -> dispatching, attempts+1, a new dialing session with the
-- phone's active, unexpired classification, the calls-per-second slot taken. Returns the claim's answer.
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

  perform outcall_private.take_dial_slot();

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

-- claim_pending_call ------------------------------------------------------------------------------------
create or replace function public.claim_pending_call(p_pending_call_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls%rowtype;
  v_answer jsonb;
begin
  -- Taken by a concurrent claim (SKIP LOCKED), not claimable, not due, or out of attempts:
  -- {"claimed": false, "reason": "not_claimable"}; no such row: reason "not_found".
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

  v_answer := outcall_private.dispatch_gate(v_call);
  if v_answer is not null then
    return v_answer;
  end if;
  return outcall_private.start_attempt(v_call);
end
$$;

comment on function public.claim_pending_call(uuid) is
  'Claims a due pending/retry_pending row (FOR UPDATE SKIP LOCKED) inside its calling window and the dispatch limits: row -> dispatching, attempts+1, new call_sessions row (dialing). Returns {session_id, pending_call_id, attempt, phone, classification}, or {claimed: false, reason: not_found | not_claimable | outside_window (+next_attempt_at) | phone_dialing (+retry_after_ms) | at_capacity | rate_limited (+retry_after_ms)}.';

-- claim_next_due ----------------------------------------------------------------------------------------
-- The most overdue claimable row: due pending/retry_pending with attempts left, not locked by another claim,
-- whose phone is not dialing, by next_attempt_at then created_at. The dispatch lock is taken first and the
-- limits checked, so a full Worker touches no row, and the search runs under the lock (its phone filter is
-- exact). A row found outside its window is deferred to its opening and the next one tried, up to
-- c_max_deferrals; past that it answers outside_window with retry_after_ms 0 (more may be due: call again).
create or replace function public.claim_next_due() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_max_deferrals constant int := 100;
  v_call public.pending_calls%rowtype;
  v_answer jsonb;
begin
  perform outcall_private.lock_dispatch_limits();
  v_answer := outcall_private.limits_answer();
  if v_answer is not null then
    return v_answer;
  end if;

  for i in 1 .. c_max_deferrals loop
    select * into v_call
      from public.pending_calls as p
     where p.call_status in ('pending', 'retry_pending')
       and p.next_attempt_at <= now()
       and p.attempts < p.max_attempts
       and not outcall_private.phone_is_dialing(p.phone)
     order by p.next_attempt_at, p.created_at
     limit 1
       for update skip locked;
    if not found then
      return jsonb_build_object('claimed', false, 'reason', 'idle');
    end if;

    v_answer := outcall_private.dispatch_gate(v_call);
    if v_answer is null then
      return outcall_private.start_attempt(v_call);
    elsif v_answer ->> 'reason' <> 'outside_window' then
      return v_answer;  -- (not expected: the limits and the phone were checked under the same lock)
    end if;
  end loop;
  return v_answer || jsonb_build_object('retry_after_ms', 0);
end
$$;

comment on function public.claim_next_due() is
  'Claims the most overdue claimable row, like claim_pending_call; rows outside their calling window are deferred to the opening (up to 100 per call, then {claimed: false, reason: outside_window, retry_after_ms: 0}: call again). Returns the claim''s answer, or {claimed: false, reason: at_capacity | rate_limited | idle | outside_window | phone_dialing}.';

-- reserve_dial_slot -------------------------------------------------------------------------------------
-- The Worker re-sends Twilio's create request after a retryable provider error (5xx, 429, network): that
-- request needs a calls-per-second slot of its own. Returns {"reserved": true, "wait_ms": n} (sleep n ms,
-- then send), {"reserved": false} when the session no longer waits for its dial result, null for an unknown
-- session. Touches the session's updated_at: the sweep leaves a session being worked on alone.
create or replace function public.reserve_dial_slot(p_session_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_session public.call_sessions%rowtype;
  v_slot timestamptz;
begin
  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  perform 1 from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;
  if v_session.status <> 'dialing' then
    return jsonb_build_object('reserved', false);
  end if;

  perform outcall_private.lock_dispatch_limits();
  v_slot := outcall_private.take_dial_slot();
  update public.call_sessions set updated_at = now() where id = v_session.id;
  return jsonb_build_object('reserved', true,
                            'wait_ms', outcall_private.interval_ms(v_slot - clock_timestamp()));
end
$$;

comment on function public.reserve_dial_slot(uuid) is
  'Reserves the next calls-per-second slot for re-sending the dial request of a session still dialing: {reserved: true, wait_ms}, {reserved: false} (no longer dialing), or null (unknown session).';

-- record_dial_result ------------------------------------------------------------------------------------
-- (Was 4 arguments; p_retryable added.) A provider error the Worker knows is permanent (Twilio 400 21211,
-- an invalid number) fails the row at once: it would fail again. Any other error is retried per the policy.
drop function if exists public.record_dial_result(uuid, text, text, text);

create or replace function public.record_dial_result(
  p_session_id uuid,
  p_call_sid text default null,
  p_error text default null,
  p_error_code text default null,
  p_retryable boolean default true
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
    v_call := outcall_private.fail_dial(v_call, v_session, v_error, nullif(btrim(p_error_code), ''),
                                        coalesce(p_retryable, true));
    v_changed := true;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.record_dial_result(uuid, text, text, text, boolean) is
  'Records the outcome of the Twilio Calls.json request: a CallSid (session queued, row calling) or an error (session dial_failed; row retry_pending per the policy, or failed when p_retryable is false or no attempt is left). Returns {session_id, pending_call_id, call_status, changed} or null.';

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

-- apply_call_report -------------------------------------------------------------------------------------
-- As before, but not_reached is a retryable failure.
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

  return jsonb_build_object('reports_missing', v_reports_missing, 'to_reconcile', v_to_reconcile);
end
$$;

comment on function public.sweep_stale_sessions(int) is
  'Ends rows whose Twilio-completed call got no VAPI report within reconcile_after (failed, vapi_report_missing) and hands out live sessions without news for reconcile_after (reconciled_at set). Returns {reports_missing, to_reconcile: [{session_id, pending_call_id, attempt, phone, call_sid, status, created_at}]}.';

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

-- Privileges (as ..._security.sql: only service_role executes the RPCs; anon/authenticated nothing) -------
revoke all on function
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.record_dial_result(uuid, text, text, text, boolean),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.record_dial_result(uuid, text, text, text, boolean),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean)
  to service_role;

revoke all on all functions in schema outcall_private from public, anon, authenticated;
revoke all on table outcall_private.dispatch_policy, outcall_private.rate_state, outcall_private.live_sessions
  from public, anon, authenticated;
-- The RPCs run with the caller's rights: service_role reads the policy and the live sessions, writes the rate
-- state. It does not change the policy (that is postgres's, like the webhook settings).
grant select on table outcall_private.dispatch_policy, outcall_private.live_sessions to service_role;
grant select, update on table outcall_private.rate_state to service_role;
grant execute on function
  outcall_private.policy(),
  outcall_private.interval_ms(interval),
  outcall_private.calling_window_opening(text, timestamptz, int[], time, time),
  outcall_private.calling_window_opening(text, timestamptz),
  outcall_private.retry_at(text, int),
  outcall_private.lock_dispatch_limits(),
  outcall_private.dial_spacing(),
  outcall_private.limits_answer(),
  outcall_private.take_dial_slot(),
  outcall_private.phone_is_dialing(text),
  outcall_private.dispatch_gate(public.pending_calls),
  outcall_private.start_attempt(public.pending_calls),
  outcall_private.fail_dial(public.pending_calls, public.call_sessions, text, text, boolean)
  to service_role;
