-- 30: dispatch: the claims, the dispatch limits (capacity, one dial per phone, calls per second), the send
-- slots, and the dial result. The dispatch lock (the outcall_private.rate_state row) is always taken last and
-- only by claims and send-slot grants, so they serialize there and nowhere else.
--
-- Calls per second are held where Twilio counts them: when a create request arrives. A claim cannot just take
-- a slot paced 1/cps after the previous one and send at once: that spacing holds only as long as every request
-- reaches Twilio at the same delay after its claim, and under load the claim's answer (commit, PostgREST, the
-- gateway, the Worker's event loop) and the request itself (the Worker's fetch queue, the network) each took
-- up to ~130 ms longer for one request than the next: two creates arrived 419 ms apart at 2 calls/s, even with
-- 10% headroom in the pace.
--
-- So a send slot is released only when Twilio has answered the request that held it (or it went unanswered):
-- the answer is recorded after the request arrived, so a slot granted a window after that record leaves, and
-- arrives, a window after the earlier request arrived, whatever the delays in between. The rule, with
-- k = max(1, floor(calls_per_second)) and window = 1 s (1/calls_per_second below 1 call/s):
--   a create may be sent only while fewer than k creates are in flight or were answered within the window,
--   and no sooner than 1/calls_per_second after the previous grant (an even pace).
-- So any k + 1 creates arrive at least a window apart (at most k in any second), with no headroom for jitter.
-- The cost is the create's own answer time: at 1 call/s one call every 1 s + Twilio's answer time.
-- A batch with its own calls_per_second is held by the same rule over its own creates (dial_requests.batch_id)
-- and its own pace (batch_dispatch_state.next_slot_at), on top of the global one: send_slot_wait(p_batch_id).
--
-- Batches share the global slots by turns (claim_next_due): among the groups (each batch not finished, cancelled
-- or paused; the rows of no batch as one group) the one whose last claim is oldest is searched first, then the
-- next, each for its most overdue claimable row; a group at its own limits is passed over. So a batch of 1,000 rows
-- takes one claim in turn with a batch of 5, not 1,000 before it.

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

-- Send slots ---------------------------------------------------------------------------------------------

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
-- p_batch_id null: the global limit (the policy's calls_per_second over every create); a batch: its own
-- calls_per_second over its own creates (zero when it has none).
create or replace function outcall_private.send_slot_wait(p_batch_id uuid default null) returns interval
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_cps numeric := case when p_batch_id is null then (outcall_private.policy()).calls_per_second
                        else (select b.calls_per_second from public.batches as b where b.id = p_batch_id) end;
  v_slots int := greatest(1, pg_catalog.floor(v_cps))::int;
  v_window interval := interval '1 second' * (case when v_cps >= 1 then 1 else 1.0 / v_cps end)::float8;
  v_pace_wait interval := case when p_batch_id is null
      then (select greatest(next_slot_at, v_now) from outcall_private.rate_state)
      else (select greatest(s.next_slot_at, v_now) from outcall_private.batch_dispatch_state as s
             where s.batch_id = p_batch_id) end - v_now;
  v_free_at timestamptz[];
begin
  if v_cps is null then
    return interval '0';
  end if;
  v_pace_wait := coalesce(v_pace_wait, interval '0');
  -- When each busy slot frees: a window after its answer; a request in flight, a window after an answer still
  -- to come, so now + window is the earliest that can be.
  select coalesce(pg_catalog.array_agg(coalesce(r.answered_at, v_now) + v_window order by r.answered_at nulls last), '{}')
    into v_free_at
    from outcall_private.dial_requests as r
   where (p_batch_id is null or r.batch_id = p_batch_id)
     and ((r.answered_at is null and r.sent_at > v_now - outcall_private.dial_request_lease())
          or r.answered_at > v_now - v_window);
  if pg_catalog.cardinality(v_free_at) >= v_slots then
    -- the first moment fewer than v_slots are busy
    return greatest(v_free_at[pg_catalog.cardinality(v_free_at) - v_slots + 1] - v_now, v_pace_wait, interval '0');
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

-- Why the batch may not dial now (batch_at_capacity; batch_rate_limited with retry_after_ms), or null: a batch
-- without limits of its own, or no batch. The dispatch lock must be held. Its live calls are counted by its rows'
-- live sessions (few at any time).
create or replace function outcall_private.batch_limits_answer(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.batches;
  v_wait interval;
begin
  select * into v_batch from public.batches where id = p_batch_id;
  if v_batch.max_concurrency is not null
     and (select count(*) from outcall_private.live_sessions as s
            join public.pending_calls as p on p.id = s.pending_call_id
           where p.batch_id = p_batch_id) >= v_batch.max_concurrency then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'batch_at_capacity');
  end if;
  if v_batch.calls_per_second is not null then
    v_wait := outcall_private.send_slot_wait(p_batch_id);
    if v_wait > interval '0' then
      return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'batch_rate_limited',
                                           'retry_after_ms', outcall_private.interval_ms(v_wait));
    end if;
  end if;
  return null;
end
$$;

-- Grants a send slot to the session's next create request, now (send_slot_wait() must have answered zero,
-- under the dispatch lock). The request is in flight until its answer is recorded. Returns the grant's time.
create or replace function outcall_private.take_dial_slot(p_session_id uuid) returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_batch public.batches;
begin
  select b.* into v_batch
    from public.call_sessions as s
    join public.pending_calls as p on p.id = s.pending_call_id
    join public.batches as b on b.id = p.batch_id
   where s.id = p_session_id;
  delete from outcall_private.dial_requests
   where coalesce(answered_at, sent_at + outcall_private.dial_request_lease()) < v_now - interval '1 hour';
  insert into outcall_private.dial_requests (session_id, sent_at, batch_id) values (p_session_id, v_now, v_batch.id)
  on conflict (session_id) do update set sent_at = excluded.sent_at, answered_at = null;
  update outcall_private.rate_state set next_slot_at = v_now + outcall_private.dial_spacing();
  if v_batch.calls_per_second is not null then
    insert into outcall_private.batch_dispatch_state (batch_id, next_slot_at)
    values (v_batch.id, v_now + interval '1 second' * (1.0 / v_batch.calls_per_second)::float8)
    on conflict (batch_id) do update set next_slot_at = excluded.next_slot_at;
  end if;
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
-- transaction, whichever function moved it. A CallSid is also Twilio's success for the circuit breaker.
create or replace function outcall_private.release_answered_dial() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform outcall_private.release_dial_slot(new.id);
  if new.call_sid is not null then
    perform outcall_private.breaker_success(new.id, 'twilio');
  end if;
  return null;
end
$$;

create trigger call_sessions_release_answered_dial
  after update of status, call_sid on public.call_sessions
  for each row
  when (old.status = 'dialing' and old.call_sid is null and (new.status <> 'dialing' or new.call_sid is not null))
  execute function outcall_private.release_answered_dial();

-- Claims ---------------------------------------------------------------------------------------------------

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

-- Whether the batch is paused (pause_batch, 60_batches.sql); false for no batch.
create or replace function outcall_private.batch_is_paused(p_batch_id uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from public.batches where id = p_batch_id and paused_at is not null)
$$;

-- What stands between a claimable row (locked) and its dial, in the order of the answers: suppressed or expired
-- (the row ends so, no session, no call: outcall_private.undiallable_reason), paused (its batch holds it; the row
-- stays as it is), cost_cap (+held: a spend cap would be passed, 25_cost.sql; the row stays as it is),
-- outside_window (the row then waits for the opening; when that opening is at or after its
-- expires_at it ends expired at once), breaker_open (the providers' circuit breaker, 35_breaker.sql),
-- phone_dialing, batch_at_capacity, batch_rate_limited (its batch's own
-- limits), at_capacity, rate_limited. Null = go ahead; the dispatch
-- lock is then held. The phone is checked under the lock too: two rows of one phone claimed at once must not
-- both pass. The window is the row's: the policy's intersected with the row's own (row_window_opening). A
-- window that never opens is outside it for ever (next_attempt_at 'infinity'), never "go ahead".
create or replace function outcall_private.dispatch_gate(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_opening timestamptz;
  v_ends text := outcall_private.undiallable_reason(p_call, pg_catalog.now());
  v_breaker jsonb;
  v_hold jsonb;
begin
  -- (a) the row ends instead of being dialled
  if v_ends is not null then
    update public.pending_calls set call_status = v_ends, last_error = v_ends where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', v_ends);
  end if;
  -- (b) its batch holds it
  if outcall_private.batch_is_paused(p_call.batch_id) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'paused');
  end if;
  v_hold := outcall_private.cost_hold(p_call.batch_id);
  if v_hold is not null then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'cost_cap', 'held', v_hold);
  end if;
  v_opening := outcall_private.row_window_opening(p_call, pg_catalog.now());
  if v_opening is null or v_opening > pg_catalog.now() then
    v_opening := coalesce(v_opening, 'infinity');
    if v_opening >= p_call.expires_at then
      update public.pending_calls set call_status = 'expired', last_error = 'expired' where id = p_call.id;
      return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'expired');
    end if;
    update public.pending_calls set next_attempt_at = v_opening where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'outside_window', 'next_attempt_at', v_opening);
  end if;
  perform outcall_private.lock_dispatch_limits();
  v_breaker := outcall_private.breaker_answer();
  if v_breaker is not null then
    return v_breaker;
  end if;
  if outcall_private.phone_is_dialing(p_call.phone) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'phone_dialing', 'retry_after_ms', 250);
  end if;
  return coalesce(outcall_private.batch_limits_answer(p_call.batch_id), outcall_private.limits_answer());
end
$$;

-- A group's turn was taken (claim_next_due serves the group whose last claim is oldest): the batch's, or for a
-- row of no batch, the batchless group's. Under the dispatch lock.
create or replace function outcall_private.note_turn(p_batch_id uuid) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  if p_batch_id is null then
    update outcall_private.rate_state set batchless_claimed_at = pg_catalog.clock_timestamp();
  else
    insert into outcall_private.batch_dispatch_state (batch_id, last_claimed_at)
    values (p_batch_id, pg_catalog.clock_timestamp())
    on conflict (batch_id) do update set last_claimed_at = excluded.last_claimed_at;
  end if;
end
$$;

-- The claim itself, once dispatch_gate said go: row -> dispatching, attempts+1, a new dialing session with the
-- phone's active, unexpired classification, the call's listener if it gets one (open_listener, 47_learning.sql:
-- a learning run when nothing is known of the phone, a verification run when an IVR is replayed), a send slot
-- granted to its create request; when the circuit breaker is not closed, the attempt is its probe (breaker_claimed,
-- first: the breaker's lock comes before the batch counters'). Returns the claim's answer.
create or replace function outcall_private.start_attempt(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_class public.call_classifications%rowtype;
  v_attempt int := p_call.attempts + 1;
  v_session_id uuid := pg_catalog.gen_random_uuid();
  v_listen jsonb;
begin
  perform outcall_private.breaker_claimed(v_session_id);

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

  insert into public.call_sessions (id, pending_call_id, attempt, status, classification_id, classification_type)
  values (v_session_id, p_call.id, v_attempt, 'dialing', v_class.id, v_class.classification_type);

  v_listen := outcall_private.open_listener(p_call, v_session_id, v_class);
  perform outcall_private.take_dial_slot(v_session_id);
  perform outcall_private.note_turn(p_call.batch_id);

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
      end,
    -- The call's listener, {run_id, purpose: learn | verify, token}, or null (none).
    'listen', v_listen)
    -- The breaker's transition this claim made (it is the half-open probe), if any.
    || outcall_private.breaker_transition_field(v_session_id);
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
  'Claims a due pending/retry_pending row (FOR UPDATE SKIP LOCKED) inside its calling window and the dispatch limits (its batch''s own, then the global): row -> dispatching, attempts+1, new call_sessions row (dialing), a learning or verification run when the call gets a listener. Returns {session_id, pending_call_id, attempt, phone, more_due, classification, listen: {run_id, purpose, token} | null}, or {claimed: false, reason: not_found | not_claimable | suppressed | expired (the row ended so: its phone is on the suppression list, or its expires_at passed or comes before its window opens) | paused | outside_window (+next_attempt_at) | breaker_open (+retry_after_ms) | phone_dialing (+retry_after_ms) | batch_at_capacity | batch_rate_limited (+retry_after_ms) | at_capacity | rate_limited (+retry_after_ms) | cost_cap (+held: {reason: batch_cost_cap | daily_cost_cap, spent, cap})}.';

-- A group's most overdue claimable row, locked (SKIP LOCKED: one taken by a concurrent claim is passed over), or
-- a row of nulls: p_batch_id's, or with p_batch_id null the rows of no batch. One probe of
-- pending_calls_batch_due_idx (two statements: `batch_id is not distinct from` would not use the index); the dispatch
-- lock must be held (the phone filter is exact under it).
create or replace function outcall_private.next_due_row(p_batch_id uuid) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls;
begin
  if p_batch_id is null then
    select * into v_call
      from public.pending_calls as p
     where p.batch_id is null
       and p.call_status in ('pending', 'retry_pending')
       and p.next_attempt_at <= pg_catalog.now()
       and p.attempts < p.max_attempts
       and not outcall_private.phone_is_dialing(p.phone)
     order by p.next_attempt_at, p.created_at
     limit 1
       for update skip locked;
  else
    select * into v_call
      from public.pending_calls as p
     where p.batch_id = p_batch_id
       and p.call_status in ('pending', 'retry_pending')
       and p.next_attempt_at <= pg_catalog.now()
       and p.attempts < p.max_attempts
       and not outcall_private.phone_is_dialing(p.phone)
     order by p.next_attempt_at, p.created_at
     limit 1
       for update skip locked;
  end if;
  return v_call;
end
$$;

-- claim_next_due ----------------------------------------------------------------------------------------
-- The next claimable row, by turns between the batches (the header above): due pending/retry_pending with attempts
-- left, not locked by another claim, whose phone is not dialing. The dispatch lock is taken first and the global
-- limits checked, so a full Worker touches no row, and the search runs under the lock (its phone filter is exact).
-- The groups are searched oldest last claim first (a batch never claimed first, then by creation); in a group, its
-- most overdue row (next_attempt_at, created_at), one index probe (pending_calls_batch_due_idx). A group at its own
-- limits is passed over; when every group with a due row is, the answer is the hold that ends first
-- (batch_rate_limited with the shortest retry_after_ms, else batch_at_capacity). A row found outside its window is
-- deferred to its opening, and a suppressed or expired one ended, and the next one tried, up to c_max_deferrals in
-- all; past that it answers the last reason with retry_after_ms 0 (more may be due: call again). Paused batches are
-- not searched; a batch held by its spend cap is passed over like one at its limits, and the daily cap holds every
-- row: its answer (cost_cap) is returned.
create or replace function public.claim_next_due() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_max_deferrals constant int := 100;
  v_deferrals int := 0;
  v_group uuid;
  v_call public.pending_calls%rowtype;
  v_answer jsonb;
  v_held jsonb;
begin
  perform outcall_private.lock_dispatch_limits();
  v_answer := coalesce(outcall_private.breaker_answer(), outcall_private.limits_answer());
  if v_answer is not null then
    return v_answer;
  end if;

  for v_group in
    select g.batch_id
      from (select b.id as batch_id, coalesce(s.last_claimed_at, '-infinity') as last_claimed_at, b.created_at
              from public.batches as b
              left join outcall_private.batch_dispatch_state as s on s.batch_id = b.id
             where b.completed_at is null and b.cancelled_at is null and b.paused_at is null
            union all
            select null, r.batchless_claimed_at, '-infinity' from outcall_private.rate_state as r) as g
     order by g.last_claimed_at, g.created_at, g.batch_id
  loop
    -- A batch held by its spend cap or at its own limits is passed over before any row of it is locked (a claim
    -- by id must still see batch_at_capacity, not a row taken); its hold counts only if it has a row due. The hold
    -- that ends first is the answer if no group can dial. The daily cap holds every group.
    v_answer := outcall_private.cost_hold(v_group);
    if v_answer is not null then
      v_answer := jsonb_build_object('claimed', false, 'reason', 'cost_cap', 'held', v_answer);
      if v_answer -> 'held' ->> 'reason' = 'daily_cost_cap' then
        return v_answer;
      end if;
    else
      v_answer := outcall_private.batch_limits_answer(v_group);
    end if;
    if v_answer is not null then
      if exists (select 1 from public.pending_calls as p
                  where p.batch_id = v_group and p.call_status in ('pending', 'retry_pending')
                    and p.next_attempt_at <= now() and p.attempts < p.max_attempts)
         and (v_held is null or (v_answer ? 'retry_after_ms' and (not v_held ? 'retry_after_ms'
              or (v_held ->> 'retry_after_ms')::bigint > (v_answer ->> 'retry_after_ms')::bigint))) then
        v_held := v_answer;
      end if;
      continue;
    end if;
    loop
      v_call := outcall_private.next_due_row(v_group);
      exit when v_call.id is null;
      v_answer := outcall_private.dispatch_gate(v_call);
      if v_answer is null then
        return outcall_private.start_attempt(v_call);
      elsif v_answer ->> 'reason' not in ('outside_window', 'suppressed', 'expired') then
        return v_answer;  -- (not expected: the limits and the phone were checked under the same lock)
      end if;
      v_deferrals := v_deferrals + 1;
      if v_deferrals >= c_max_deferrals then
        return v_answer || jsonb_build_object('retry_after_ms', 0);
      end if;
    end loop;
  end loop;
  return coalesce(v_held, jsonb_build_object('claimed', false, 'reason', 'idle'));
end
$$;

comment on function public.claim_next_due() is
  'Claims the next claimable row, like claim_pending_call, by turns between batches (the batch whose last claim is oldest first; the rows of no batch as one group; paused batches skipped, a batch at its own limits or held by its spend cap passed over); rows outside their calling window are deferred to the opening, suppressed or expired rows ended (up to 100 per call, then {claimed: false, reason: outside_window | suppressed | expired, retry_after_ms: 0}: call again). Returns the claim''s answer, or {claimed: false, reason: breaker_open | at_capacity | rate_limited | batch_at_capacity | batch_rate_limited (+retry_after_ms: every batch with a due row is at its own limits) | idle | outside_window | phone_dialing | suppressed | expired | cost_cap (+held)}.';

-- reserve_dial_slot -------------------------------------------------------------------------------------
-- The Worker sends Twilio's create request again after a retryable provider error: that request needs a send
-- slot of its own, granted now or not at all. Returns {"outcome": "reserved"} (send now), {"outcome": "wait",
-- "retry_after_ms": n} (ask again then; with "reason": "breaker_open" while the circuit breaker holds dialling:
-- the Worker then gives up and the attempt is given back), {"outcome": "settled"} when the session no longer
-- waits for its dial result, null for an unknown session. A re-send let through while the breaker is not closed
-- is its probe. The batch's own calls_per_second holds it too (its capacity does not: the session is already
-- live). Touches the session's updated_at: the sweep leaves a session being
-- worked on alone.
create or replace function public.reserve_dial_slot(p_session_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_session public.call_sessions%rowtype;
  v_wait interval;
  v_breaker jsonb;
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
  v_breaker := outcall_private.breaker_answer(v_session.id);
  if v_breaker is not null then
    return jsonb_build_object('outcome', 'wait', 'retry_after_ms', v_breaker -> 'retry_after_ms', 'reason', 'breaker_open');
  end if;
  -- Its own earlier try was answered (the Worker released it before backing off). The batch's own rate too.
  v_wait := greatest(outcall_private.send_slot_wait(),
                     outcall_private.send_slot_wait((select batch_id from public.pending_calls where id = v_pending_call_id)));
  if v_wait > interval '0' then
    return jsonb_build_object('outcome', 'wait', 'retry_after_ms', outcall_private.interval_ms(v_wait));
  end if;
  perform outcall_private.breaker_claimed(v_session.id);
  perform outcall_private.take_dial_slot(v_session.id);
  return jsonb_build_object('outcome', 'reserved');
end
$$;

comment on function public.reserve_dial_slot(uuid) is
  'Grants a send slot now to the re-sent dial request of a session still dialing: {outcome: reserved}, {outcome: wait, retry_after_ms, reason?: breaker_open} (ask again then), {outcome: settled} (no longer dialing), or null (unknown session).';

-- release_dial_slot -------------------------------------------------------------------------------------
-- The Worker got an answer to a try that will be sent again (429, 503, 504) or none (timeout, dropped
-- connection): the try no longer holds a send slot while the Worker backs off. p_failure says what the try
-- tells of Twilio: unavailable (5xx, no answer: the circuit breaker counts it), throttled (429: quota, counted
-- per day), null (nothing). Returns {released: bool (false: nothing was in flight for it), breaker?: the
-- transition it caused}, null for an unknown session.
create or replace function public.release_dial_slot(p_session_id uuid, p_failure text default null) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_released boolean;
begin
  if not exists (select 1 from public.call_sessions where id = p_session_id) then
    return null;
  end if;
  v_released := outcall_private.release_dial_slot(p_session_id);
  perform outcall_private.breaker_failure(p_session_id, 'twilio', p_failure);
  return jsonb_build_object('released', v_released) || outcall_private.breaker_transition_field(p_session_id);
end
$$;

comment on function public.release_dial_slot(uuid, text) is
  'Records that the session''s create request was answered (or timed out): its calls-per-second send slot counts from now; p_failure unavailable (5xx, no answer) feeds the circuit breaker, throttled (429) the quota count. {released: bool, breaker?: {from, to, reason, failures, provider}} or null (unknown session).';

-- The dial result -------------------------------------------------------------------------------------------

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

-- record_dial_result ------------------------------------------------------------------------------------
-- The Worker's Twilio create request answered: a CallSid, or an error. A provider error the Worker knows is
-- permanent (p_retryable false: Twilio 400 21211, an invalid number) fails the row at once: it would fail
-- again. Any other error is retried per the policy. p_failure: what the last try tells of Twilio, when the
-- Worker has not reported it with release_dial_slot (unavailable | throttled | null). A retryable failure while
-- the circuit breaker is not closed (or that opened it) gives the attempt back: due at the cool-down's end,
-- the budget unchanged (give_attempt_back, 35_breaker.sql).
create or replace function public.record_dial_result(
  p_session_id uuid,
  p_call_sid text default null,
  p_error text default null,
  p_error_code text default null,
  p_retryable boolean default true,
  p_failure text default null
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
  v_given_back boolean := false;
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
    perform outcall_private.breaker_failure(v_session.id, 'twilio', p_failure);
    v_given_back := coalesce(p_retryable, true) and v_call.attempts = v_session.attempt
                    and (select state from outcall_private.provider_breaker) <> 'closed';
    if v_given_back then
      v_call := outcall_private.give_attempt_back(v_call);
    end if;
    v_call := outcall_private.fail_dial(v_call, v_session, v_error, nullif(btrim(p_error_code), ''),
                                        coalesce(p_retryable, true));
    if v_given_back and v_call.call_status = 'retry_pending' then
      v_call := outcall_private.due_at_reopen(v_call);
    end if;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'call_status', v_call.call_status,
    'changed', v_changed)
    -- The attempt did not count (the circuit breaker held dialling); the transition of the breaker it caused.
    || case when v_given_back then jsonb_build_object('attempt_given_back', true) else '{}' end
    || outcall_private.breaker_transition_field(v_session.id);
end
$$;

comment on function public.record_dial_result(uuid, text, text, text, boolean, text) is
  'Records the outcome of the Twilio Calls.json request: a CallSid (session queued, row calling) or an error (session dial_failed; row retry_pending per the policy, or failed when p_retryable is false or no attempt is left; p_failure unavailable | throttled feeds the circuit breaker and the quota count; a retryable error while the breaker is not closed gives the attempt back, due when the cool-down ends). Returns {session_id, pending_call_id, call_status, changed, attempt_given_back?: true, breaker?} or null.';
