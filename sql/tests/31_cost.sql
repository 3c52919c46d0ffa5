-- Cost (25_cost.sql): a batch's estimate (create_batch, estimate_batch_cost), the running spend (VAPI's cost and
-- Twilio's price per attempt, summed per batch and per UTC day), the price look-ups of the sweep
-- (sessions_lacking_price, record_twilio_price), and the spend caps in the claim (cost_cap; held in the status).
begin;
select plan(44);

select test_fixtures.open_policy();
select test_fixtures.free_send_slots();
-- Round rates: a call is 2 minutes at 0.10 (VAPI) + 0.02 (Twilio) per minute, + 0.01 to transcribe a learning call.
update outcall_private.dispatch_policy
   set expected_call_minutes = 2, vapi_usd_per_minute = 0.10, twilio_usd_per_minute = 0.02, stt_usd_per_minute = 0.01,
       daily_cost_cap = null;
-- Nothing else waits to be called.
update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending');
delete from outcall_private.daily_spend;

create function pg_temp.batch(p_name text, p_phones text[], p_cap numeric default null) returns uuid language sql as $$
  select (public.create_batch(jsonb_build_object(
            'name', p_name, 'cost_cap', p_cap,
            'targets', (select jsonb_agg(jsonb_build_object('employee_name', 'T', 'phone', ph)) from unnest(p_phones) as ph)))
          ->> 'batch_id')::uuid
$$;
create function pg_temp.row_of(p_batch uuid, p_phone text) returns uuid language sql as $$
  select id from public.pending_calls where batch_id = p_batch and phone = p_phone
$$;
-- A claimed row's call: dialled (CallSid p_sid), answered, ended at Twilio, VAPI's report with p_cost.
create function pg_temp.call_ends(p_id uuid, p_sid text, p_cost numeric) returns uuid language plpgsql as $$
declare
  v_session uuid := test_fixtures.dial(p_id, p_sid);
begin
  perform public.apply_twilio_status(p_sid, 'completed', null, null, 30);
  perform public.apply_call_report(p_id, 'vapi-' || p_sid, 'completed', 'customer-ended-call', p_cost => p_cost);
  return v_session;
end $$;
create function pg_temp.spent_today() returns numeric language sql as $$
  select coalesce((select spent from outcall_private.daily_spend where day = (now() at time zone 'UTC')::date), 0)
$$;

-- The estimate -------------------------------------------------------------------------------------------------
select is(outcall_private.call_cost_estimate(false), 0.24::numeric, 'one call: 2 min * (0.10 + 0.02)');
select is(outcall_private.call_cost_estimate(true), 0.26::numeric, 'one learning call: + 2 min * 0.01 to transcribe');
insert into public.call_classifications (phone_number, classification_type) values ('+15557770001', 'human');
insert into public.call_classifications (phone_number, classification_type, is_active)
values ('+15557770002', 'human', false);
insert into public.call_classifications (phone_number, classification_type, classification_expires_at)
values ('+15557770003', 'human', now() - interval '1 second');
select is(outcall_private.batch_cost_estimate('{+15557770001,+15557770002,+15557770003,+15557770004}'),
          '{"calls": 4, "learning_calls": 3, "expected_call_minutes": 2,
            "usd_per_minute": {"vapi": 0.10, "twilio": 0.02, "stt": 0.01}, "usd": 1.0200}'::jsonb,
          'a batch: the known phone is an ordinary call, inactive/expired/unknown ones learn: 0.24 + 3 * 0.26');

create temp table req as select jsonb_build_object('name', 'Estimate', 'cost_cap', 5,
  'targets', jsonb_build_array(jsonb_build_object('employee_name', 'A', 'phone', '+15557770001'),
                               jsonb_build_object('employee_name', 'B', 'phone', '+15557770004'))) as r;
create temp table counts0 as select (select count(*) from public.batches) as b, (select count(*) from public.pending_calls) as p;
create temp table est as select public.estimate_batch_cost(r) as j from req;
select is((select j from est), jsonb_build_object('outcome', 'estimated', 'accepted', 2, 'rejected', '[]'::jsonb,
            'cost_estimate', outcall_private.batch_cost_estimate('{+15557770001,+15557770004}')),
          'estimate_batch_cost: what create would estimate');
select ok((select b = (select count(*) from public.batches) and p = (select count(*) from public.pending_calls) from counts0),
          'and nothing written');
select is(public.estimate_batch_cost('{"targets": []}') ->> 'outcome', 'invalid', 'an invalid request: create''s answer');
create temp table made as select public.create_batch(r) as j from req;
select is((select j -> 'cost_estimate' from made), (select j -> 'cost_estimate' from est), 'create_batch answers the same estimate');
select row_eq($$select cost_cap, cost_estimate from public.batches where id = (select (j ->> 'batch_id')::uuid from made)$$,
              row(5::numeric, (select j -> 'cost_estimate' from est)), 'and stores it with the cap');
select throws_ok($$select public.create_batch('{"cost_cap": 0, "targets": [{"employee_name": "A", "phone": "+15557770001"}]}')$$,
                 '23514', null, 'a cap of 0 is refused (the Worker answers 400 before)');
update public.pending_calls set call_status = 'cancelled' where call_status = 'pending';

-- The running spend ----------------------------------------------------------------------------------------------
select pg_temp.batch('Spend', '{+15557771001,+15557771002}') as s \gset
select pg_temp.call_ends(pg_temp.row_of(:'s', '+15557771001'), 'CAcost1', 0.31) as s1 \gset
select is((select cost_total from public.batches where id = :'s'), 0.31::numeric, 'VAPI''s reported cost is spent by the batch');
select is(pg_temp.spent_today(), 0.31::numeric, 'and by the day');
select is(public.sessions_lacking_price(10), jsonb_build_array(jsonb_build_object('session_id', :'s1'::uuid, 'call_sid', 'CAcost1')),
          'the answered call lacks Twilio''s price');
select is(public.record_twilio_price(:'s1', null, null), jsonb_build_object('session_id', :'s1'::uuid, 'twilio_price', null, 'changed', false),
          'Twilio has no price yet: nothing recorded');
select is(public.sessions_lacking_price(10), '[]'::jsonb, 'looked at within the minute: not listed again');
update public.call_sessions set twilio_price_checked_at = now() - interval '2 minutes' where id = :'s1';
select is(jsonb_array_length(public.sessions_lacking_price(10)), 1, 'a minute later: listed again');
-- A call ended later but never looked at goes first: one Twilio keeps answering without a price cannot hold it back.
select pg_temp.call_ends(pg_temp.row_of(pg_temp.batch('Later', '{+15557771003}'), '+15557771003'), 'CAcost3', 0) as s3 \gset
select is(public.sessions_lacking_price(1) -> 0 ->> 'call_sid', 'CAcost3',
          'never looked at before looked at (even when it ended later)');
update public.call_sessions set twilio_price = 0 where id = :'s3';
select is(public.record_twilio_price(:'s1', 0.028, 'USD'), jsonb_build_object('session_id', :'s1'::uuid, 'twilio_price', 0.028, 'changed', true),
          'Twilio''s price recorded');
select is(public.record_twilio_price(:'s1', 0.5, 'USD') ->> 'changed', 'false', 'a second price changes nothing');
select row_eq($$select twilio_price, twilio_price_unit from public.call_sessions where id = $$ || quote_literal(:'s1'),
              row(0.028::numeric, 'USD'::text), 'the first is kept, with its unit');
select is((select cost_total from public.batches where id = :'s'), 0.338::numeric, 'the batch''s spend: 0.31 + 0.028');
select is(pg_temp.spent_today(), 0.338::numeric, 'the day''s too');
select is((select total_cost from public.batch_progress where batch_id = :'s'), 0.338::numeric, 'total_cost in the status');
select is((select cost from public.analytics_cost_by_batch where batch_id = :'s'), 0.338::numeric,
          'analytics_cost_by_batch: the same figure');
select is((select vapi_cost || ' + ' || twilio_cost from public.analytics_cost_by_batch where batch_id = :'s'), '0.31 + 0.028',
          'with its VAPI and Twilio parts');
select is(public.sessions_lacking_price(10), '[]'::jsonb, 'priced: not listed');
select throws_ok($$select public.record_twilio_price('$$ || :'s1' || $$', -0.028, 'USD')$$, '22023', null,
                 'a negative price (Twilio''s sign) is refused: the Worker passes the amount charged');
select is(public.record_twilio_price('00000000-0000-0000-0000-0000000000ff', 0.01, 'USD'), null, 'an unknown session: null');
-- A second attempt of a row adds its own cost (the row keeps only its last report's).
select pg_temp.call_ends(pg_temp.row_of(:'s', '+15557771002'), 'CAcost2', 0.2) is not null as s2 \gset
select is((select cost_total from public.batches where id = :'s'), 0.538::numeric, 'each attempt adds its spend');
delete from public.pending_calls where batch_id = :'s';
select is(pg_temp.spent_today(), 0.538::numeric, 'deleting rows does not unspend the day');

-- The batch's cap in the claim -----------------------------------------------------------------------------------------
-- Cap 1.00: spent 0.31 + (live + 1) * 0.26 (a learning call's estimate, the dearest).
select pg_temp.batch('Capped', '{+15557772001,+15557772002,+15557772003,+15557772004}', 1.00) as c \gset
select pg_temp.call_ends(pg_temp.row_of(:'c', '+15557772001'), 'CAcap1', 0.31) is not null as c1 \gset
select test_fixtures.claim(pg_temp.row_of(:'c', '+15557772002')) is not null as c2 \gset
select is(public.claim_pending_call(pg_temp.row_of(:'c', '+15557772003')) ->> 'claimed', null,
          '0.31 + 2 live * 0.26 = 0.83 <= 1.00: claimed');
select is(public.claim_pending_call(pg_temp.row_of(:'c', '+15557772004')),
          '{"claimed": false, "reason": "cost_cap", "held": {"reason": "batch_cost_cap", "spent": 0.31, "cap": 1.00}}'::jsonb,
          '0.31 + 3 * 0.26 = 1.09 > 1.00: held by the batch''s cap');
select row_eq($$select call_status, attempts from public.pending_calls where id = $$ || quote_literal(pg_temp.row_of(:'c', '+15557772004')),
              row('pending'::text, 0), 'the row stays pending, no attempt counted');
select is(public.batch_progress_of(:'c') -> 'held', '{"reason": "batch_cost_cap", "spent": 0.31, "cap": 1.00}'::jsonb,
          'the batch says why');
select is(public.batch_progress_of(:'c') -> 'cost_cap', '1.00'::jsonb, 'and shows its cap');
-- Another batch's row is claimed by claim_next_due; the held batch's row is passed over.
select pg_temp.batch('Free', '{+15557773001}') as f \gset
update public.pending_calls set next_attempt_at = now() - interval '1 hour' where batch_id = :'c' and call_status = 'pending';
select is(public.claim_next_due() ->> 'pending_call_id', pg_temp.row_of(:'f', '+15557773001')::text,
          'claim_next_due passes over the held batch''s older row and claims the other batch''s');
select is(public.claim_next_due() - 'held', '{"claimed": false, "reason": "cost_cap"}'::jsonb,
          'then only held rows are due: the hold is the answer');
update public.batches set cost_cap = 2 where id = :'c';
select is(public.batch_progress_of(:'c') -> 'held', 'null'::jsonb, 'the cap raised: not held');
select is(public.claim_next_due() ->> 'pending_call_id', pg_temp.row_of(:'c', '+15557772004')::text, 'and its row is claimed');
select is(public.batch_progress_of(:'c') -> 'held', 'null'::jsonb, 'nothing left to dial: never held');

-- The daily cap --------------------------------------------------------------------------------------------------------
select pg_temp.batch('Daily', '{+15557774001}') as d \gset
-- Spent today: 0.538 + 0.31 = 0.848; live: Capped's 2002, 2003, 2004 and Free's 3001.
select is(pg_temp.spent_today(), 0.848::numeric, 'setup: spent today');
update outcall_private.dispatch_policy set daily_cost_cap = 2.10;
select is(public.claim_next_due(),
          '{"claimed": false, "reason": "cost_cap", "held": {"reason": "daily_cost_cap", "spent": 0.848, "cap": 2.10}}'::jsonb,
          '0.848 + (4 live + 1) * 0.26 = 2.148 > 2.10: the daily cap holds every row');
select is(public.batch_progress_of(:'d') -> 'held' ->> 'reason', 'daily_cost_cap', 'the batch says so');
select is(public.claim_pending_call(pg_temp.row_of(:'d', '+15557774001')) ->> 'reason', 'cost_cap', 'claim_pending_call too');
update outcall_private.dispatch_policy set daily_cost_cap = 2.20;
select is(public.claim_next_due() ->> 'pending_call_id', pg_temp.row_of(:'d', '+15557774001')::text, 'raised to 2.20: dialled');

select * from finish();
rollback;
