-- 20: what every part of the state machine shares: housekeeping triggers, the terminal-state guard, the
-- dispatch policy and calling windows, and advance_pending_call, the one place a row's status moves on news.
--
-- The state machine: every transition is one call of one RPC function (30_dispatch.sql to 60_batches.sql), in
-- one transaction. Contract: docs/architecture.md ("SQL functions"). All return jsonb; null = unknown id (the
-- claims answer {"claimed": false, ...} instead).
--
-- Rules kept by every function:
--   * idempotent and monotonic: a duplicate or stale event changes nothing and says changed=false;
--   * a terminal pending_calls status (completed, failed, cancelled, suppressed, expired) is never left (also enforced by the
--     pending_calls_terminal_guard trigger; retry_failed_batch and an operator's reset are the deliberate
--     exceptions);
--   * locks are taken in one order, pending_calls row first, then its call_sessions row, so concurrent
--     events of one call serialize instead of deadlocking. One more lock: the dispatch limits (the
--     outcall_private.rate_state row), always taken last and only by claims and send-slot grants, so they
--     serialize there and nowhere else; and the batches rows (60_batches.sql), after the pending_calls rows.
--
-- SECURITY INVOKER: they run with the caller's rights (service_role; execute is granted in 90_security.sql).
-- search_path is empty, every name is qualified.
-- Optional trailing parameters default to null, so a PostgREST call may omit them (it matches by name).
-- Arguments that make no sense (unknown Twilio status, both/neither CallSid and error, unknown report
-- outcome) raise invalid_parameter_value (22023; PostgREST answers 400).

-- Housekeeping triggers ----------------------------------------------------------------------------

create or replace function outcall_private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  NEW.updated_at := pg_catalog.now();
  return NEW;
end
$$;

create trigger call_classifications_set_updated_at
  before update on public.call_classifications
  for each row execute function outcall_private.set_updated_at();
create trigger pending_calls_set_updated_at
  before update on public.pending_calls
  for each row execute function outcall_private.set_updated_at();
create trigger call_sessions_set_updated_at
  before update on public.call_sessions
  for each row execute function outcall_private.set_updated_at();
create trigger batches_set_updated_at
  before update on public.batches
  for each row execute function outcall_private.set_updated_at();

-- The terminal guard ---------------------------------------------------------------------------------------
-- A terminal state is never left, whoever writes (functions, dashboards, hand-written SQL), with two
-- deliberate exceptions, each for one statement, each set by the one function that may:
--   * retry_failed_batch requeues the failed rows of batch X (failed -> pending), with the transaction-local
--     setting outcall.reopening = X;
--   * operator_call_action reset (87_operator_actions.sql, audited) requeues the failed, cancelled or suppressed
--     (once the phone is off the list) rows it names (-> pending), with outcall.resetting = the array of their ids.
create or replace function outcall_private.guard_terminal_status() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_new_row jsonb := pg_catalog.to_jsonb(NEW);
  v_old text := pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0];
  v_new text := v_new_row ->> TG_ARGV[0];
begin
  if v_old = any (TG_ARGV[1]::text[]) and v_new is distinct from v_old then
    if TG_TABLE_SCHEMA = 'public' and TG_TABLE_NAME = 'pending_calls' and v_new = 'pending'
       and ((v_old = 'failed'
             and v_new_row ->> 'batch_id' = pg_catalog.current_setting('outcall.reopening', true))
            or (v_old in ('failed', 'cancelled', 'suppressed')
                and (v_new_row ->> 'id')::uuid
                    = any (nullif(pg_catalog.current_setting('outcall.resetting', true), '')::uuid[])))
    then
      return NEW;
    end if;
    raise exception '%.% is terminal (%), cannot become %', TG_TABLE_NAME, TG_ARGV[0], v_old, v_new
      using errcode = 'check_violation';
  end if;
  return NEW;
end
$$;

create trigger pending_calls_terminal_guard
  before update of call_status on public.pending_calls
  for each row execute function outcall_private.guard_terminal_status(
    'call_status', '{completed,failed,cancelled,suppressed,expired}');
create trigger call_sessions_terminal_guard
  before update of status on public.call_sessions
  for each row execute function outcall_private.guard_terminal_status(
    'status', '{completed,busy,no-answer,failed,canceled,dial_failed}');

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

-- A row's own calling window --------------------------------------------------------------------------------
-- The earliest instant at or after p_at inside the policy's window and, when the row has one (its batch's
-- schedule), inside the row's window too, on the clinic's wall clock; null when they never meet. Alternates
-- the two openings until they agree: no instant before the current one is in both, so the first agreement is the
-- answer. A round that does not agree has passed a whole day's window of the policy, and the days repeat
-- weekly: windows that meet agree within 8 rounds; 16 without agreement means they never meet.
create or replace function outcall_private.row_window_opening(p_call public.pending_calls, p_at timestamptz)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_at timestamptz := p_at;
  v_row_opening timestamptz;
begin
  if p_call.window_days is null or p_call.window_start is null or p_call.window_end is null then
    return outcall_private.calling_window_opening(p_call.clinic_timezone, p_at, v_policy.window_days,
                                                  v_policy.window_start, v_policy.window_end);
  end if;
  for i in 1 .. 16 loop
    v_at := outcall_private.calling_window_opening(p_call.clinic_timezone, v_at, v_policy.window_days,
                                                   v_policy.window_start, v_policy.window_end);
    v_row_opening := outcall_private.calling_window_opening(p_call.clinic_timezone, v_at, p_call.window_days,
                                                            p_call.window_start, p_call.window_end);
    if v_row_opening is null or v_row_opening = v_at then
      return v_row_opening;  -- (null: one of the windows has no day, or the policy's gave null)
    end if;
    v_at := v_row_opening;
  end loop;
  return null;
end
$$;

-- Smart scheduling ---------------------------------------------------------------------------------------------
-- A slot of the week on the clinic's clock: ISO weekday (1 = Monday .. 7) and hour (0..23) as 1..168.
create or replace function outcall_private.week_slot(p_weekday int, p_hour int) returns int
language sql immutable strict
set search_path = ''
as $$
  select (p_weekday - 1) * 24 + p_hour + 1
$$;

-- A clinic's learned rates as the scheduler reads them: clinic_answer_rates (88_analytics.sql, the dashboard's view
-- aggregated over the clinic's sessions: some 10 microseconds a session) kept in answer_rate_cache for the policy's
-- smart_refresh, so a retry or a batch mostly reads one row. The cache is written under a try-lock per clinic:
-- a transaction refreshing it is never waited for (this one then keeps what it computed without storing it).
create or replace function outcall_private.learned_answer_rates(
  p_clinic_name text, p_tz text, p_policy outcall_private.dispatch_policy, out rates numeric[], out overall numeric
)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_cached outcall_private.answer_rate_cache;
begin
  select * into v_cached from outcall_private.answer_rate_cache as c
   where c.clinic_name = p_clinic_name and c.clinic_timezone = p_tz;
  if found and v_cached.min_samples = p_policy.smart_min_samples
     and v_cached.computed_at > pg_catalog.now() - p_policy.smart_refresh then
    rates := v_cached.rates;
    overall := v_cached.overall;
    return;
  end if;
  select r.rates, r.overall into rates, overall
    from outcall_private.clinic_answer_rates(p_clinic_name, p_tz, p_policy.smart_min_samples) as r;
  if pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('outcall_private.answer_rate_cache'),
                                          pg_catalog.hashtext(p_clinic_name || '/' || p_tz)) then
    insert into outcall_private.answer_rate_cache as c
           (clinic_name, clinic_timezone, min_samples, rates, overall, computed_at)
    values (p_clinic_name, p_tz, p_policy.smart_min_samples, rates, overall, pg_catalog.now())
    on conflict (clinic_name, clinic_timezone) do update
      set min_samples = excluded.min_samples, rates = excluded.rates, overall = excluded.overall,
          computed_at = excluded.computed_at;
  end if;
end
$$;

-- A better instant than p_earliest (the earliest allowed one, inside the row's window) for the row's next attempt,
-- or null: keep p_earliest. Candidates: the first instant inside the row's window of each later local hour of the
-- clinic's clock, before p_earliest + the policy's smart_horizon and before p_before (the row's expiry; null: none).
-- Each is rated by the clinic's answer rate at its (local weekday, hour) (learned_answer_rates: the dashboard's
-- view), only where that slot has smart_min_samples attempts or more. The best (the earliest of
-- equals) is taken if its rate is at least smart_margin above the earliest's: its slot's rate when sampled enough,
-- else the clinic's rate over all its attempts. Null also when the policy's smart_scheduling is off, the row has no
-- clinic_name (rows without one are not one clinic), or the clinic has no slot sampled enough.
-- Cost: one read of the clinic's cached rates (or of its history, once per smart_refresh), then, only when some
-- slot is sampled enough, up to one window opening per hour of the horizon.
create or replace function outcall_private.smart_attempt_at(
  p_call public.pending_calls, p_earliest timestamptz, p_before timestamptz default null
) returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_tz text := p_call.clinic_timezone;
  v_rates numeric[];
  v_overall numeric;
  v_end timestamptz;
  v_local timestamp;
  v_baseline numeric;
  v_rate numeric;
  v_at timestamptz;
  v_best numeric;
  v_best_at timestamptz;
begin
  if not v_policy.smart_scheduling or p_call.clinic_name is null or p_earliest is null or p_earliest = 'infinity'
  then
    return null;
  end if;
  select r.rates, r.overall into v_rates, v_overall
    from outcall_private.learned_answer_rates(p_call.clinic_name, v_tz, v_policy) as r;
  if v_rates is null then
    return null;  -- (no slot sampled enough)
  end if;
  v_end := least(p_earliest + v_policy.smart_horizon, p_before);
  v_local := p_earliest at time zone v_tz;
  v_baseline := coalesce(
    v_rates[outcall_private.week_slot(extract(isodow from v_local)::int, extract(hour from v_local)::int)], v_overall);
  loop
    -- The next local hour, pushed into the row's window (which may skip hours, or days).
    v_at := outcall_private.row_window_opening(p_call,
              (pg_catalog.date_trunc('hour', v_local) + interval '1 hour') at time zone v_tz);
    exit when v_at is null or v_at >= v_end;
    v_local := v_at at time zone v_tz;
    v_rate := v_rates[outcall_private.week_slot(extract(isodow from v_local)::int, extract(hour from v_local)::int)];
    if v_rate > coalesce(v_best, -1) then
      v_best := v_rate;
      v_best_at := v_at;
    end if;
  end loop;
  if v_best >= v_baseline + v_policy.smart_margin then
    return v_best_at;
  end if;
  return null;
end
$$;

-- Retries --------------------------------------------------------------------------------------------------
-- When the next attempt of a row may start after its attempt p_attempts failed: the policy's delay for that
-- attempt from now, pushed into the clinic's calling window (the policy's; not the row's own window: the
-- functions use retry_at(row) below).
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

-- When the next attempt of this row may start after its current attempt failed: the policy's delay for the
-- round's attempt number (attempts - attempt_offset) from now, pushed into the row's calling window, then moved to
-- a better hour by smart scheduling (smart_attempt_at) before the row's expiry and p_before (null: none);
-- 'infinity' when that window never opens (a null here must never mean "at once").
create or replace function outcall_private.retry_at(p_call public.pending_calls, p_before timestamptz default null)
returns timestamptz
language sql volatile
set search_path = ''
as $$
  select coalesce(outcall_private.smart_attempt_at(p_call, e.earliest, least(p_before, p_call.expires_at)), e.earliest,
                  'infinity')
    from outcall_private.policy() as p
   cross join lateral outcall_private.row_window_opening(
           p_call,
           pg_catalog.now()
             + p.retry_delays[least(greatest(p_call.attempts - p_call.attempt_offset, 1),
                                    pg_catalog.cardinality(p.retry_delays))]) as e (earliest)
$$;

-- Do-not-call and expiry ---------------------------------------------------------------------------------------
-- Why a waiting row must end instead of being dialled at p_at: 'suppressed' (its phone is on the suppression
-- list), 'expired' (p_at is at or after its expires_at), or null. The claim's first check (dispatch_gate), the
-- insert of a row, and the sweep ask it.
create or replace function outcall_private.undiallable_reason(p_call public.pending_calls, p_at timestamptz)
returns text
language sql stable
set search_path = ''
as $$
  select case
    when exists (select 1 from public.suppression_list as s where s.phone = p_call.phone) then 'suppressed'
    when p_at >= p_call.expires_at then 'expired'
  end
$$;

-- How a pending call's status moves on an attempt's news --------------------------------------------------
-- The one place it does: only the row's current attempt moves it, only forward, never out of a terminal state.
-- Returns the row after.
--   p_to 'calling':       dispatching -> calling
--   p_to 'completed':     dispatching | calling -> completed
--   p_to 'failed':        dispatching | calling -> failed (last_error p_error): not worth retrying
--   p_to 'retry_pending': a retryable failure (last_error p_error): dispatching | calling -> retry_pending,
--                         next_attempt_at = retry_at(row) (the round's attempt number, the row's own window, smart
--                         scheduling),
--                         while attempts < max_attempts; else -> failed; -> expired when that next attempt
--                         would start at or after the row's expires_at (last_error still p_error: why the last
--                         attempt failed; the status says why there is no other)
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
        v_next_attempt_at := outcall_private.retry_at(p_call);
        if v_next_attempt_at >= p_call.expires_at then
          v_to := 'expired';
        end if;
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
