-- 35: the providers' circuit breaker (outcall_private.provider_breaker, one row) and the providers' refusals per
-- day (public.provider_errors_daily). Every transition is a row of public.breaker_transitions.
--
--   closed    ─ breaker_failures consecutive failures of one provider within breaker_window ─▶ open
--   open      ─ breaker_cooldown over: the next claim (or re-send) is the probe ─▶ half_open
--   half_open ─ the probe's call is created (or any other call is) ─▶ closed
--             ─ the probe's create fails (5xx, no answer) ─▶ open (another cool-down)
--             ─ the probe is lost (its session left dialing without a call, or it is older than
--               dial_request_lease(): its Worker died) ─▶ half_open with the next claim as the probe
-- Failures: Twilio creates answered 5xx or not at all (release_dial_slot / record_dial_result p_failure
-- 'unavailable'), VAPI assistant-request failures in end-of-call reasons (apply_call_report). 429s and VAPI's
-- concurrency refusals are quota ('throttled'): counted per day, never an outage.
-- While not closed the claims refuse (breaker_open), reserve_dial_slot answers wait, and a dial that fails gives
-- its attempt back (record_dial_result): the row is due again when the cool-down ends, its budget unchanged.
--
-- Locks: the breaker row is taken after the pending_calls row, its session and the dispatch lock, and before
-- anything the row's own update locks (the batch counters): record_dial_result, apply_call_report and
-- start_attempt move the breaker first. The common case (closed, no failure to reset) reads it without a lock.

-- Counts one refusal of the day (UTC).
create or replace function outcall_private.count_provider_error(p_provider text, p_kind text) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.provider_errors_daily as d (day, provider, kind, count, last_at)
  values ((pg_catalog.now() at time zone 'UTC')::date, p_provider, p_kind, 1, pg_catalog.now())
  on conflict (day, provider, kind) do update set count = d.count + 1, last_at = excluded.last_at
$$;

-- Logs a transition (the Worker's answers report it: breaker_transition_of).
create or replace function outcall_private.log_breaker_transition(
  p_from text, p_to text, p_reason text, p_failures int, p_provider text, p_session_id uuid
) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.breaker_transitions (from_state, to_state, reason, failures, provider, session_id)
  values (p_from, p_to, p_reason, p_failures, p_provider, p_session_id)
$$;

-- The transition the session caused in this transaction, {from, to, reason, failures, provider}, or null:
-- what an answer to the Worker reports, for its log.
create or replace function outcall_private.breaker_transition_of(p_session_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('from', t.from_state, 'to', t.to_state, 'reason', t.reason,
                                       'failures', t.failures, 'provider', t.provider)
    from public.breaker_transitions as t
   where t.session_id = p_session_id and t.at = pg_catalog.now()
   order by t.id desc
   limit 1
$$;

-- {"breaker": transition} when the session caused one in this transaction, else {}: merged into an answer.
create or replace function outcall_private.breaker_transition_field(p_session_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select case when x.t is null then '{}'::jsonb else pg_catalog.jsonb_build_object('breaker', x.t) end
    from (select outcall_private.breaker_transition_of(p_session_id) as t) as x
$$;

-- Whether the half-open probe may still report: its session still dials, and not for longer than a create
-- request's lease (past it its Worker died).
create or replace function outcall_private.breaker_probe_is_live(p_breaker outcall_private.provider_breaker)
returns boolean
language sql stable
set search_path = ''
as $$
  select p_breaker.probe_started_at > pg_catalog.now() - outcall_private.dial_request_lease()
     and exists (select 1 from public.call_sessions as s
                  where s.id = p_breaker.probe_session_id and s.status = 'dialing' and s.call_sid is null)
$$;

-- Check (e) of dispatch_gate: {claimed: false, reason: breaker_open, retry_after_ms} while open (until the
-- cool-down ends) or half-open with a live probe (ask again in a second), else null (this claim may dial; if the
-- breaker is not closed it becomes the probe, breaker_claimed). p_session_id: a re-send's session, let through
-- when it is the probe itself (say after a 429). The dispatch lock must be held.
create or replace function outcall_private.breaker_answer(p_session_id uuid default null) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  select * into v_breaker from outcall_private.provider_breaker;
  if v_breaker.state = 'open' and v_breaker.reopen_at > pg_catalog.now() then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'breaker_open',
      'retry_after_ms', outcall_private.interval_ms(v_breaker.reopen_at - pg_catalog.now()));
  elsif v_breaker.state = 'half_open' and outcall_private.breaker_probe_is_live(v_breaker)
        and v_breaker.probe_session_id is distinct from p_session_id then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'breaker_open',
      'retry_after_ms', least(1000, outcall_private.interval_ms(
        v_breaker.probe_started_at + outcall_private.dial_request_lease() - pg_catalog.now())));
  end if;
  return null;
end
$$;

-- A claim (or a re-send) that breaker_answer let through, under the dispatch lock: when the breaker is not
-- closed, its session is the probe (open -> half_open, or a lost probe replaced).
create or replace function outcall_private.breaker_claimed(p_session_id uuid) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  if (select state from outcall_private.provider_breaker) = 'closed' then
    return;
  end if;
  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' and v_breaker.reopen_at <= pg_catalog.now()
     or v_breaker.state = 'half_open' and not coalesce(outcall_private.breaker_probe_is_live(v_breaker), false) then
    update outcall_private.provider_breaker
       set state = 'half_open', probe_session_id = p_session_id, probe_started_at = pg_catalog.now(),
           changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      v_breaker.state, 'half_open', case v_breaker.state when 'open' then 'cooldown_over' else 'probe_lost' end,
      greatest(v_breaker.twilio_failures, v_breaker.vapi_failures), null, p_session_id);
  end if;
end
$$;

-- A provider failure of the session: p_kind 'throttled' (quota) is only counted for the day; 'unavailable' (an
-- outage) also counts towards opening the breaker, or reopens it when it is the probe's. Null: nothing.
create or replace function outcall_private.breaker_failure(p_session_id uuid, p_provider text, p_kind text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_failures int;
  v_first timestamptz;
begin
  if p_kind is null then
    return;
  elsif p_kind not in ('unavailable', 'throttled') or p_provider is null or p_provider not in ('twilio', 'vapi') then
    raise exception 'a provider failure is unavailable or throttled, of twilio or vapi; got % of %', p_kind, p_provider
      using errcode = 'invalid_parameter_value';
  end if;
  perform outcall_private.count_provider_error(p_provider, p_kind);
  if p_kind = 'throttled' then
    return;
  end if;

  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' or v_breaker.state = 'half_open' and v_breaker.probe_session_id is distinct from p_session_id then
    return;  -- the cool-down or the probe decides: a failure of a call dialled before is no news
  end if;
  if p_provider = 'twilio' then
    v_failures := v_breaker.twilio_failures;
    v_first := v_breaker.twilio_first_failure_at;
  else
    v_failures := v_breaker.vapi_failures;
    v_first := v_breaker.vapi_first_failure_at;
  end if;
  -- (a run older than the window starts again; a probe's failure adds to the run that opened the breaker)
  if v_breaker.state = 'closed' and (v_first is null or v_first <= pg_catalog.now() - v_policy.breaker_window) then
    v_failures := 1;
    v_first := pg_catalog.now();
  else
    v_failures := v_failures + 1;
  end if;
  update outcall_private.provider_breaker
     set twilio_failures = case p_provider when 'twilio' then v_failures else twilio_failures end,
         twilio_first_failure_at = case p_provider when 'twilio' then v_first else twilio_first_failure_at end,
         vapi_failures = case p_provider when 'vapi' then v_failures else vapi_failures end,
         vapi_first_failure_at = case p_provider when 'vapi' then v_first else vapi_first_failure_at end;

  if v_breaker.state = 'half_open' or v_failures >= v_policy.breaker_failures then
    update outcall_private.provider_breaker
       set state = 'open', opened_at = pg_catalog.now(), reopen_at = pg_catalog.now() + v_policy.breaker_cooldown,
           probe_session_id = null, probe_started_at = null, changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      v_breaker.state, 'open', case v_breaker.state when 'closed' then 'failures' else 'probe_failed' end,
      v_failures, p_provider, p_session_id);
  end if;
end
$$;

-- A provider success of the session: Twilio created its call (the trigger that releases an answered dial), or
-- VAPI ended it for another reason than an assistant-request failure. Resets that provider's failures; a
-- created call closes a half-open breaker. An open breaker waits for its cool-down whatever succeeds.
create or replace function outcall_private.breaker_success(p_session_id uuid, p_provider text) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  select * into v_breaker from outcall_private.provider_breaker;
  if not (v_breaker.state = 'half_open' and p_provider = 'twilio'
          or v_breaker.state <> 'open' and p_provider = 'twilio' and v_breaker.twilio_failures > 0
          or v_breaker.state <> 'open' and p_provider = 'vapi' and v_breaker.vapi_failures > 0) then
    return;  -- the common case: nothing to change, no lock taken
  end if;
  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' then
    return;
  end if;
  update outcall_private.provider_breaker
     set twilio_failures = case p_provider when 'twilio' then 0 else twilio_failures end,
         twilio_first_failure_at = case p_provider when 'twilio' then null else twilio_first_failure_at end,
         vapi_failures = case p_provider when 'vapi' then 0 else vapi_failures end,
         vapi_first_failure_at = case p_provider when 'vapi' then null else vapi_first_failure_at end;
  if v_breaker.state = 'half_open' and p_provider = 'twilio' then
    update outcall_private.provider_breaker
       set state = 'closed', reopen_at = null, probe_session_id = null, probe_started_at = null,
           changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      'half_open', 'closed',
      case when v_breaker.probe_session_id = p_session_id then 'probe_succeeded' else 'call_created' end,
      v_breaker.twilio_failures, p_provider, p_session_id);
  end if;
end
$$;

-- The attempt's dial failed while the breaker is not closed (or the failure opened it): the attempt is given
-- back, before fail_dial retries the row. Its round keeps its budget: attempt_offset and max_attempts both one up,
-- as an operator's reset counts rounds, so attempt numbers stay unique and the retry delays count from the same
-- place. The row must be locked and dispatching; returns the row after.
create or replace function outcall_private.give_attempt_back(p_call public.pending_calls) returns public.pending_calls
language sql volatile
set search_path = ''
as $$
  update public.pending_calls
     set attempt_offset = attempt_offset + 1, max_attempts = max_attempts + 1
   where id = p_call.id
  returning *
$$;

-- A row given its attempt back is due again when the cool-down ends (not after the policy's retry delay).
create or replace function outcall_private.due_at_reopen(p_call public.pending_calls) returns public.pending_calls
language sql volatile
set search_path = ''
as $$
  update public.pending_calls
     set next_attempt_at = greatest(pg_catalog.now(), (select b.reopen_at from outcall_private.provider_breaker as b
                                                        where b.state = 'open'))
   where id = p_call.id and call_status = 'retry_pending'
  returning *
$$;

-- The end-of-call reasons that count: VAPI could not get an assistant from our server (unavailable), or
-- refused the call for its concurrency limit (throttled). Null for every other reason.
create or replace function outcall_private.vapi_failure_kind(p_ended_reason text) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when p_ended_reason in ('assistant-request-failed', 'assistant-request-returned-error',
                            'assistant-request-returned-unspeakable-error', 'assistant-request-returned-invalid-assistant',
                            'assistant-request-returned-no-assistant') then 'unavailable'
    when p_ended_reason like '%concurrency-limit-reached' then 'throttled'
  end
$$;

-- provider_health ---------------------------------------------------------------------------------------
-- What operators see (GET /api/v1/providers): the breaker, its policy, its last transitions, and the providers'
-- refusals of the last p_days UTC days.
create or replace function public.provider_health(p_transitions int default 20, p_days int default 7) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
begin
  if p_transitions is null or p_transitions not between 1 and 200 or p_days is null or p_days not between 1 and 90 then
    raise exception 'provider_health: p_transitions must be 1..200 and p_days 1..90'
      using errcode = 'invalid_parameter_value';
  end if;
  select * into v_breaker from outcall_private.provider_breaker;
  return pg_catalog.jsonb_build_object(
    'breaker', pg_catalog.jsonb_build_object(
      'state', v_breaker.state,
      'twilio_failures', v_breaker.twilio_failures,
      'vapi_failures', v_breaker.vapi_failures,
      'opened_at', v_breaker.opened_at,
      'reopen_at', case when v_breaker.state = 'open' then v_breaker.reopen_at end,
      'probe_started_at', case when v_breaker.state = 'half_open' then v_breaker.probe_started_at end,
      'changed_at', v_breaker.changed_at,
      'failures_to_open', v_policy.breaker_failures,
      'window_ms', outcall_private.interval_ms(v_policy.breaker_window),
      'cooldown_ms', outcall_private.interval_ms(v_policy.breaker_cooldown)),
    'transitions', coalesce((
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'at', t.at, 'from', t.from_state, 'to', t.to_state, 'reason', t.reason, 'failures', t.failures,
               'provider', t.provider) order by t.id desc)
        from (select * from public.breaker_transitions order by id desc limit p_transitions) as t), '[]'::jsonb),
    'errors', coalesce((
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'day', d.day, 'provider', d.provider, 'kind', d.kind, 'count', d.count, 'last_at', d.last_at)
             order by d.day desc, d.provider, d.kind)
        from public.provider_errors_daily as d
       where d.day > (pg_catalog.now() at time zone 'UTC')::date - p_days), '[]'::jsonb));
end
$$;

comment on function public.provider_health(int, int) is
  'The providers'' circuit breaker and quota: {breaker: {state, twilio_failures, vapi_failures, opened_at, reopen_at, probe_started_at, changed_at, failures_to_open, window_ms, cooldown_ms}, transitions: [{at, from, to, reason, failures, provider}] newest first (p_transitions, 1..200), errors: [{day, provider, kind, count, last_at}] of the last p_days UTC days (1..90)}.';
