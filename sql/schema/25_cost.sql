-- 25: what calls cost: a batch's estimate before it starts, the running spend (VAPI's reported cost + Twilio's
-- price, per attempt), and the spend caps the claim keeps (per batch: batches.cost_cap; per UTC day for the whole
-- deployment: dispatch_policy.daily_cost_cap). Contract: docs/architecture.md ("Cost").
--
-- Amounts are USD (VAPI reports USD; Twilio's price_unit is recorded with each price and is the account's
-- currency, USD for a US account). The rates of the estimate are the policy's (10_tables.sql): placeholders until
-- set to a deployment's contracts.
--
-- The cap rule (cost_hold): one more call is dialled only while
--     spent + (live calls + 1) * one call's estimate <= cap
-- spent: what the attempts cost so far (batches.cost_total; outcall_private.daily_spend for today); live calls: the
-- batch's rows dialling or in a call (a call stays in_progress until VAPI's report gives its cost), or, for the day,
-- every live session; one call's estimate: a learning call's (the dearest: call_cost_estimate(true)), so live calls
-- are never under-counted. When the cap would be passed nothing more is dialled: the rows stay pending, the claim
-- answers cost_cap and the batch's status says held {reason, spent, cap}. Raising the cap
-- (update public.batches set cost_cap = ...; update outcall_private.dispatch_policy set daily_cost_cap = ...) lets
-- the next claim (the minute sweep's at the latest) go on. Twilio's price arrives with the sweep after the call
-- (call_sessions.twilio_price): until then an ended call's Twilio share is not in spent.

-- Estimates -----------------------------------------------------------------------------------------------------

-- One call's expected cost under the policy: expected_call_minutes * (VAPI + Twilio [+ speech-to-text when the call
-- learns the phone system]).
create or replace function outcall_private.call_cost_estimate(p_learning boolean) returns numeric
language sql stable
set search_path = ''
as $$
  select p.expected_call_minutes
         * (p.vapi_usd_per_minute + p.twilio_usd_per_minute + case when p_learning then p.stt_usd_per_minute else 0 end)
    from outcall_private.policy() as p
$$;

-- A batch's estimate from its targets' phones: one attempt each (retries cost more), a learning call (its audio
-- transcribed) for each phone with no active, unexpired classification. Stored on the batch by create_batch.
create or replace function outcall_private.batch_cost_estimate(p_phones text[]) returns jsonb
language sql stable
set search_path = ''
as $$
  with counted as (
    select pg_catalog.count(*)::int as calls,
           (pg_catalog.count(*) filter (where not exists (
              select 1 from public.call_classifications as c
               where c.phone_number = t.phone and c.is_active and c.classification_expires_at > pg_catalog.now())))::int
             as learning_calls
      from pg_catalog.unnest(p_phones) as t(phone)
  )
  select pg_catalog.jsonb_build_object(
    'calls', n.calls,
    'learning_calls', n.learning_calls,
    'expected_call_minutes', p.expected_call_minutes,
    'usd_per_minute', pg_catalog.jsonb_build_object(
      'vapi', p.vapi_usd_per_minute, 'twilio', p.twilio_usd_per_minute, 'stt', p.stt_usd_per_minute),
    'usd', pg_catalog.round(
      (n.calls - n.learning_calls) * outcall_private.call_cost_estimate(false)
      + n.learning_calls * outcall_private.call_cost_estimate(true), 4))
    from counted as n, outcall_private.policy() as p
$$;

comment on function outcall_private.batch_cost_estimate(text[]) is
  'A batch''s cost estimate from its targets'' phones: {calls, learning_calls (phones without an active classification), expected_call_minutes, usd_per_minute: {vapi, twilio, stt}, usd (4 places)}. One attempt per target.';

-- Spend ---------------------------------------------------------------------------------------------------------
-- An attempt's spend is cost (VAPI's report, apply_call_report) + twilio_price (record_twilio_price). Each change
-- is added to its batch's cost_total and to the day's outcall_private.daily_spend (the UTC day the attempt began).
-- Whoever changes a session has locked its pending_calls row first (the rule of 20_helpers.sql), so the batch row
-- is locked last here too. Money spent stays spent: deleting a row takes nothing off.
create or replace function outcall_private.count_session_spend() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_delta numeric := coalesce(NEW.cost, 0) + coalesce(NEW.twilio_price, 0);
begin
  if TG_OP = 'UPDATE' then
    v_delta := v_delta - coalesce(OLD.cost, 0) - coalesce(OLD.twilio_price, 0);
  end if;
  if v_delta = 0 then
    return null;
  end if;
  update public.batches as b
     set cost_total = b.cost_total + v_delta
    from public.pending_calls as p
   where p.id = NEW.pending_call_id and b.id = p.batch_id;
  insert into outcall_private.daily_spend as d (day, spent)
  values ((NEW.created_at at time zone 'UTC')::date, v_delta)
  on conflict (day) do update set spent = d.spent + excluded.spent;
  return null;
end
$$;

create trigger call_sessions_spend_insert
  after insert on public.call_sessions
  for each row when (NEW.cost is not null or NEW.twilio_price is not null)
  execute function outcall_private.count_session_spend();
create trigger call_sessions_spend_update
  after update of cost, twilio_price on public.call_sessions
  for each row when ((OLD.cost, OLD.twilio_price) is distinct from (NEW.cost, NEW.twilio_price))
  execute function outcall_private.count_session_spend();

-- The caps --------------------------------------------------------------------------------------------------------

-- Whether one more call of the batch (null: a row without one) would pass a cap (the rule at the top): null when
-- not, else {reason: batch_cost_cap | daily_cost_cap, spent, cap}. The batch's cap is checked first.
create or replace function outcall_private.cost_hold(p_batch_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_cap numeric := (outcall_private.policy()).daily_cost_cap;
  v_batch public.batches;
  v_spent numeric;
begin
  if p_batch_id is not null then
    select * into v_batch from public.batches where id = p_batch_id;
    if v_batch.cost_cap is not null
       and v_batch.cost_total + (v_batch.dialling + v_batch.in_progress + 1) * outcall_private.call_cost_estimate(true)
           > v_batch.cost_cap then
      return pg_catalog.jsonb_build_object('reason', 'batch_cost_cap', 'spent', v_batch.cost_total,
                                           'cap', v_batch.cost_cap);
    end if;
  end if;
  if v_cap is null then
    return null;
  end if;
  v_spent := coalesce((select d.spent from outcall_private.daily_spend as d
                        where d.day = (pg_catalog.now() at time zone 'UTC')::date), 0);
  if v_spent + ((select pg_catalog.count(*) from outcall_private.live_sessions) + 1)
               * outcall_private.call_cost_estimate(true) > v_cap then
    return pg_catalog.jsonb_build_object('reason', 'daily_cost_cap', 'spent', v_spent, 'cap', v_cap);
  end if;
  return null;
end
$$;

comment on function outcall_private.cost_hold(uuid) is
  'Whether a spend cap holds the batch''s next call (rule: 25_cost.sql): null, or {reason: batch_cost_cap | daily_cost_cap, spent, cap}.';

-- Twilio's price --------------------------------------------------------------------------------------------------
-- Twilio's status callback carries no price, and the Call resource's price may still be null right after the end:
-- the Worker's minute sweep asks for the calls that lack one, a few at a time, and records what Twilio answers.

-- Answered calls (Twilio completed; unanswered ones are not billed) that ended in the last day without a price,
-- not looked at in the last minute: never looked at first, then the longest unlooked-at, oldest end first — so a
-- call Twilio keeps answering without a price (or not at all) cannot hold the others back:
-- [{session_id, call_sid}].
create or replace function public.sessions_lacking_price(p_limit int) returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('session_id', s.id, 'call_sid', s.call_sid)
                                       order by s.twilio_price_checked_at nulls first, s.ended_at, s.id), '[]'::jsonb)
    from (select s.id, s.call_sid, s.ended_at, s.twilio_price_checked_at
            from public.call_sessions as s
           where s.status = 'completed'
             and s.twilio_price is null
             and s.call_sid is not null
             and s.ended_at > pg_catalog.now() - interval '1 day'
             and (s.twilio_price_checked_at is null or s.twilio_price_checked_at < pg_catalog.now() - interval '1 minute')
           order by s.twilio_price_checked_at nulls first, s.ended_at, s.id
           limit greatest(p_limit, 0)) as s
$$;

comment on function public.sessions_lacking_price(int) is
  'Up to p_limit answered calls (Twilio completed) ended within a day without Twilio''s price, not looked at in the last minute; never looked at first, then the longest unlooked-at, oldest end first: [{session_id, call_sid}].';

-- Records Twilio's price of a session's call (p_price: the amount charged, positive; Twilio's own figure is
-- negative), once; p_price null (Twilio has none yet) only notes the look. Returns {session_id, twilio_price,
-- changed} or null (no such session).
create or replace function public.record_twilio_price(p_session_id uuid, p_price numeric, p_price_unit text)
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
begin
  if p_price < 0 then
    raise exception 'record_twilio_price: p_price must be 0 or more (the amount charged), got %', p_price
      using errcode = 'invalid_parameter_value';
  end if;
  perform 1 from public.pending_calls
   where id = (select s.pending_call_id from public.call_sessions as s where s.id = p_session_id)
     for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;
  if not found then
    return null;
  end if;
  if v_session.twilio_price is null then
    update public.call_sessions
       set twilio_price = p_price,
           twilio_price_unit = case when p_price is not null then p_price_unit end,
           twilio_price_checked_at = now()
     where id = v_session.id
    returning * into v_session;
    v_changed := v_session.twilio_price is not null;
  end if;
  return jsonb_build_object('session_id', v_session.id, 'twilio_price', v_session.twilio_price,
                            'changed', v_changed);
end
$$;

comment on function public.record_twilio_price(uuid, numeric, text) is
  'Records Twilio''s price of a session''s call (p_price >= 0, the amount charged; else 22023), once: a second price changes nothing; null only stamps twilio_price_checked_at. Adds it to the batch''s cost_total and the day''s spend. Returns {session_id, twilio_price, changed} or null.';
