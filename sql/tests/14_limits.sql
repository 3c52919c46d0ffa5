-- The claim's calling window and global limits, in one transaction: claim_pending_call and claim_next_due
-- (outside_window, phone_dialing, at_capacity, rate_limited, idle), reserve_dial_slot. The same limits under
-- concurrent claims from two connections: 16_concurrent_claims.sql.
begin;
select plan(72);

select has_function('public', 'claim_next_due', array[]::text[]);
select function_returns('public', 'claim_next_due', array[]::text[], 'jsonb');
select has_function('public', 'reserve_dial_slot', array['uuid']);
select function_returns('public', 'reserve_dial_slot', array['uuid'], 'jsonb');

-- Start wide open; each section narrows what it tests.
select test_fixtures.open_policy();
update outcall_private.rate_state set next_slot_at = '-infinity';

create function pg_temp.new_call(p_id uuid, p_phone text, p_tz text default 'America/New_York',
                                 p_next timestamptz default now()) returns uuid language sql as $$
  insert into public.pending_calls (id, employee_name, phone, clinic_timezone, next_attempt_at)
  values (p_id, 'Test', p_phone, p_tz, p_next)
  returning id
$$;
create function pg_temp.state(p_id uuid) returns text language sql as $$
  select concat_ws(' / ', call_status, attempts, (select count(*) from public.call_sessions where pending_call_id = p_id) || ' sessions')
    from public.pending_calls where id = p_id
$$;
-- Nothing else waits to be called (each claim_next_due section starts from a clean queue).
create function pg_temp.quiet() returns void language sql as $$
  update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending')
$$;
-- The calling window is open for the hour around now in Kolkata only, every day: closed in New York then
-- (9.5 or 10.5 hours behind, never within the same wall-clock hour).
create function pg_temp.open_in_kolkata_only() returns void language sql as $$
  update outcall_private.dispatch_policy
     set window_days = '{1,2,3,4,5,6,7}',
         window_start = date_trunc('hour', now() at time zone 'Asia/Kolkata')::time,
         window_end = case when extract(hour from now() at time zone 'Asia/Kolkata') = 23 then '24:00'::time
                           else date_trunc('hour', now() at time zone 'Asia/Kolkata')::time + interval '1 hour' end
$$;
create function pg_temp.ny_opening() returns timestamptz language sql as $$
  select outcall_private.calling_window_opening('America/New_York', now())
$$;

-- The calling window in claim_pending_call ---------------------------------------------------------------
select pg_temp.open_in_kolkata_only();
select ok(pg_temp.ny_opening() > now(), 'setup: the window is closed in New York now');
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0001', '+15550001001') is not null as n1 \gset
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0002', '+15550001002', 'Asia/Kolkata') is not null as n2 \gset
create temp table w1 as select public.claim_pending_call('00000000-0000-0000-0000-0000000a0001') as j;
select is((select j - 'next_attempt_at' from w1), '{"claimed": false, "reason": "outside_window"}'::jsonb,
          'a New York row outside its window: outside_window');
select is((select (j ->> 'next_attempt_at')::timestamptz from w1), pg_temp.ny_opening(),
          'the answer says when the window opens');
select row_eq($$select call_status, attempts, next_attempt_at from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('pending'::text, 0, pg_temp.ny_opening()), 'the row stays pending, next_attempt_at = the opening');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'pending / 0 / 0 sessions', 'no session, no attempt');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0001'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'claimed again: not due any more, not_claimable');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0002') ->> 'attempt', '1',
          'the Kolkata row, inside its own window at the same instant, is claimed');
-- a retry waiting outside its window stays retry_pending
insert into public.pending_calls (id, employee_name, phone, call_status, attempts)
values ('00000000-0000-0000-0000-0000000a0003', 'Test', '+15550001003', 'retry_pending', 1);
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0003') ->> 'reason', 'outside_window',
          'a retry_pending row outside its window: outside_window');
select row_eq($$select call_status, attempts, next_attempt_at from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000a0003'$$,
              row('retry_pending'::text, 1, pg_temp.ny_opening()), 'it stays retry_pending until the opening');
-- claimable comes first: a row not due is not_claimable whatever its window
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0004', '+15550001004', 'America/New_York', now() + interval '1 hour')
  is not null as n4 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0004'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'not due and outside the window: not_claimable');
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0004'),
          now() + interval '1 hour', 'and not deferred');

-- The calling window in claim_next_due --------------------------------------------------------------------
select pg_temp.quiet();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0011', '+15550001011', 'America/New_York', now() - interval '3 minutes')
  is not null as n11 \gset
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0012', '+15550001012', 'America/New_York', now() - interval '2 minutes')
  is not null as n12 \gset
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0013', '+15550001013', 'Asia/Kolkata', now() - interval '1 minute')
  is not null as n13 \gset
create temp table n1 as select public.claim_next_due() as j;
select is((select array(select jsonb_object_keys(j) order by 1) from n1),
          array['attempt', 'classification', 'more_due', 'pending_call_id', 'phone', 'session_id'],
          'claim_next_due answers like claim_pending_call');
select is((select j ->> 'pending_call_id' from n1), '00000000-0000-0000-0000-0000000a0013',
          'the two older New York rows are outside their window: skipped, the Kolkata row claimed');
select is(array(select next_attempt_at from public.pending_calls
                 where id in ('00000000-0000-0000-0000-0000000a0011', '00000000-0000-0000-0000-0000000a0012')),
          array[pg_temp.ny_opening(), pg_temp.ny_opening()], 'the skipped rows wait for their opening');
select is(public.claim_next_due(), '{"claimed": false, "reason": "idle"}'::jsonb, 'then nothing is due: idle');
-- The deferrals per call are bounded: 101 New York rows before a Kolkata one
select pg_temp.quiet();
select count(pg_temp.new_call(('00000000-0000-0000-0000-0000000f' || lpad(n::text, 4, '0'))::uuid, '+1555000' || lpad(n::text, 4, '0'),
                              'America/New_York', now() - interval '1 hour' + n * interval '1 second')) as n101
  from generate_series(1, 101) as n \gset
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0014', '+15550001014', 'Asia/Kolkata', now() - interval '1 minute')
  is not null as n14 \gset
create temp table n2 as select public.claim_next_due() as j;
select is((select j - 'next_attempt_at' from n2), '{"claimed": false, "reason": "outside_window", "retry_after_ms": 0}'::jsonb,
          'after 100 deferrals claim_next_due stops: outside_window, retry_after_ms 0 (call again at once)');
select is((select count(*)::int from public.pending_calls where id::text like '00000000-0000-0000-0000-0000000f%'
             and next_attempt_at = pg_temp.ny_opening()), 100, 'exactly 100 rows were deferred');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0014',
          'the next call defers the last one and claims the Kolkata row');
select is((select count(*)::int from public.pending_calls where id::text like '00000000-0000-0000-0000-0000000f%'
             and next_attempt_at = pg_temp.ny_opening()), 101, 'all 101 wait for their opening');

-- claim_next_due: the order, and what it skips ------------------------------------------------------------
update outcall_private.dispatch_policy set window_start = '00:00', window_end = '24:00';
select pg_temp.quiet();
insert into public.pending_calls (id, employee_name, phone, next_attempt_at, created_at, call_status, attempts, max_attempts) values
  ('00000000-0000-0000-0000-0000000a0021', 'Later',     '+15550001021', now() - interval '1 minute', now(), 'pending', 0, 3),
  ('00000000-0000-0000-0000-0000000a0022', 'Older',     '+15550001022', now() - interval '5 minutes', now(), 'pending', 0, 3),
  ('00000000-0000-0000-0000-0000000a0023', 'Tie-new',   '+15550001023', now() - interval '2 minutes', now(), 'retry_pending', 1, 3),
  ('00000000-0000-0000-0000-0000000a0024', 'Tie-old',   '+15550001024', now() - interval '2 minutes', now() - interval '1 day', 'retry_pending', 1, 3),
  ('00000000-0000-0000-0000-0000000a0025', 'Not due',   '+15550001025', now() + interval '1 minute', now(), 'pending', 0, 3),
  ('00000000-0000-0000-0000-0000000a0026', 'No tries',  '+15550001026', now() - interval '1 hour', now(), 'pending', 3, 3),
  ('00000000-0000-0000-0000-0000000a0027', 'Busy line', '+15550001022', now() - interval '1 hour', now(), 'pending', 0, 3);
-- a0027's phone is a0022's: while a0027's dial awaits its CallSid, a0022 waits
create temp table order_claims (n serial, j jsonb);
insert into order_claims (j) select public.claim_next_due();
select is((select j ->> 'pending_call_id' from order_claims where n = 1), '00000000-0000-0000-0000-0000000a0027', 'the most overdue first');
insert into order_claims (j) select public.claim_next_due();
select is((select j ->> 'pending_call_id' from order_claims where n = 2), '00000000-0000-0000-0000-0000000a0024',
          'the next one''s phone is dialing: passed over; same next_attempt_at: the older row first');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0023', 'then the newer (a retry)');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0021', 'then the last due one');
select is(public.claim_next_due(), '{"claimed": false, "reason": "idle"}'::jsonb,
          'a row whose phone is dialing, a row not due, a row out of attempts: idle');
select is(public.record_dial_result((select (j ->> 'session_id')::uuid from order_claims where n = 1), 'CA27', null, null)
            ->> 'call_status', 'calling', 'the phone''s dial gets its CallSid');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0022', 'now its other row is claimed');
select is(public.claim_next_due(), '{"claimed": false, "reason": "idle"}'::jsonb, 'and nothing else is due');
select is((select attempts from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0023'), 2, 'the retry is attempt 2');

-- phone_dialing -------------------------------------------------------------------------------------------
select pg_temp.quiet();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0031', '+15550001031') is not null as n31 \gset
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0032', '+15550001031') is not null as n32 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0031') ->> 'session_id') as s31 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0032'),
          '{"claimed": false, "reason": "phone_dialing", "retry_after_ms": 250}'::jsonb,
          'another row of a phone whose dial awaits its CallSid: phone_dialing');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0032'), 'pending / 0 / 0 sessions', 'the row is untouched');
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0032'), now(),
          'and not deferred');
select is(public.claim_next_due(), '{"claimed": false, "reason": "idle"}'::jsonb, 'claim_next_due passes it over: idle');
-- the window comes before the phone
select pg_temp.open_in_kolkata_only();
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0032') ->> 'reason', 'outside_window',
          'outside its window and its phone dialing: outside_window');
update outcall_private.dispatch_policy set window_start = '00:00', window_end = '24:00';
update public.pending_calls set next_attempt_at = now() where id = '00000000-0000-0000-0000-0000000a0032';
-- the phone comes before the capacity
update outcall_private.dispatch_policy set max_concurrent_calls = 1;
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0032') ->> 'reason', 'phone_dialing',
          'its phone dialing and no capacity left: phone_dialing');
update outcall_private.dispatch_policy set max_concurrent_calls = 1000;
-- a CallSid ends the wait (one live call per phone is fine, only an unacknowledged dial holds it)
select is(public.record_dial_result(:'s31', 'CA31', null, null) ->> 'call_status', 'calling', 'the first dial gets its CallSid');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0032') ->> 'attempt', '1', 'the other row is claimed now');

-- at_capacity -----------------------------------------------------------------------------------------------
select pg_temp.quiet();
-- whatever is live so far, plus two
update outcall_private.dispatch_policy set max_concurrent_calls = (select count(*) from outcall_private.live_sessions) + 2;
select count(pg_temp.new_call(('00000000-0000-0000-0000-0000000a004' || n)::uuid, '+1555000104' || n)) as n4x
  from generate_series(1, 4) as n \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0041') ->> 'session_id') as s41 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0042') ->> 'session_id') as s42 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0043'), '{"claimed": false, "reason": "at_capacity"}'::jsonb,
          'live sessions = max_concurrent_calls: at_capacity');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0043'), 'pending / 0 / 0 sessions', 'the row is untouched');
select is(public.claim_next_due(), '{"claimed": false, "reason": "at_capacity"}'::jsonb, 'claim_next_due: at_capacity');
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0043'), now(),
          'no row was touched');
-- every live status holds its place: dialing, queued, initiated, ringing, in-progress
select is(public.record_dial_result(:'s41', 'CA41', null, null) ->> 'call_status', 'calling', 'one dialled: queued');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0043') ->> 'reason', 'at_capacity', 'queued still counts');
select is(array(select public.apply_twilio_status('CA41', s, null, null, null) ->> 'session_status'
                  from unnest(array['initiated', 'ringing', 'in-progress']) with ordinality as t(s, n) order by n),
          array['initiated', 'ringing', 'in-progress'], 'it rings and is answered');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0043') ->> 'reason', 'at_capacity', 'in-progress still counts');
-- an ending frees the place
select is(public.apply_twilio_status('CA41', 'completed', 4, 'human', 60) -> 'slot_freed', 'true'::jsonb,
          'the call ends: slot_freed');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0043') ->> 'attempt', '1', 'and the next row is claimed');
select is(public.claim_next_due() ->> 'reason', 'at_capacity', 'full again');
select is(public.record_dial_result(:'s42', null, 'boom', null) ->> 'call_status', 'retry_pending', 'a dial fails');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0044',
          'dial_failed is not live: claim_next_due claims the next row');

-- rate_limited ------------------------------------------------------------------------------------------------
select pg_temp.quiet();
update outcall_private.dispatch_policy set max_concurrent_calls = 1000, calls_per_second = 1;
update outcall_private.rate_state set next_slot_at = '-infinity';
select count(pg_temp.new_call(('00000000-0000-0000-0000-0000000a005' || n)::uuid, '+1555000105' || n)) as n5x
  from generate_series(1, 2) as n \gset
select clock_timestamp() as before \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0051') ->> 'attempt', '1', 'the first claim takes the free slot');
select ok((select next_slot_at between :'before'::timestamptz + interval '1.1 seconds' and clock_timestamp() + interval '1.1 seconds'
             from outcall_private.rate_state),
          'and reserves the next one 1.1 s later (1 call/s with 10% headroom), on the wall clock');
create temp table r2 as select public.claim_pending_call('00000000-0000-0000-0000-0000000a0052') as j;
select is((select j - 'retry_after_ms' from r2), '{"claimed": false, "reason": "rate_limited"}'::jsonb,
          'an immediate second claim: rate_limited');
select ok((select (j ->> 'retry_after_ms')::int between 1 and 1100 from r2), 'retry_after_ms: the wait for the next slot');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0052'), 'pending / 0 / 0 sessions', 'the row is untouched');
select is(public.claim_next_due() ->> 'reason', 'rate_limited', 'claim_next_due: rate_limited');
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0052', 'once the slot is due: claimed');
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0053', '+15550001053') is not null as n53 \gset
update outcall_private.dispatch_policy set calls_per_second = 0.5;
update outcall_private.rate_state set next_slot_at = '-infinity';
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0053') ->> 'attempt', '1', 'at 0.5 calls/s');
select ok((select next_slot_at - clock_timestamp() between interval '2 seconds' and interval '2.2 seconds'
             from outcall_private.rate_state), 'the next slot is 2.2 s later');
-- capacity is answered before the rate
update outcall_private.dispatch_policy set max_concurrent_calls = 1;
select is(public.claim_next_due(), '{"claimed": false, "reason": "at_capacity"}'::jsonb, 'full and rate limited: at_capacity');

-- reserve_dial_slot -----------------------------------------------------------------------------------------
update outcall_private.dispatch_policy set max_concurrent_calls = 1000, calls_per_second = 1;
update outcall_private.rate_state set next_slot_at = '-infinity';
select pg_temp.quiet();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0061', '+15550001061') is not null as n61 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0061') ->> 'session_id') as s61 \gset
update outcall_private.rate_state set next_slot_at = '-infinity';
-- an old updated_at (the trigger would set now(); replica mode skips triggers)
set local session_replication_role = replica;
update public.call_sessions set updated_at = now() - interval '1 hour' where id = :'s61';
set local session_replication_role = origin;
select is(public.reserve_dial_slot(:'s61'), '{"reserved": true, "wait_ms": 0}'::jsonb, 'a free slot: reserved, no wait');
select is((select updated_at from public.call_sessions where id = :'s61'), now(), 'the session''s updated_at is touched');
create temp table rs as select public.reserve_dial_slot(:'s61') as j;
select ok((select (j ->> 'reserved')::boolean and (j ->> 'wait_ms')::int between 1000 and 1100 from rs),
          'the next reservation waits for the next slot, about 1.1 s');
create temp table rs2 as select public.reserve_dial_slot(:'s61') as j;
select ok((select (j ->> 'wait_ms')::int between 2100 and 2200 from rs2), 'and the one after that 2.2 s (slots queue up)');
select is(public.claim_next_due() ->> 'reason', 'rate_limited', 'claims wait behind reserved slots');
select is(public.reserve_dial_slot('00000000-0000-0000-0000-0000000000ff'), null, 'an unknown session: null');
create temp table slot_before as select next_slot_at from outcall_private.rate_state;
select is(public.record_dial_result(:'s61', 'CA61', null, null) ->> 'call_status', 'calling', 'the dial succeeds');
select is(public.reserve_dial_slot(:'s61'), '{"reserved": false}'::jsonb, 'a session no longer dialing: reserved false');
select is((select next_slot_at from outcall_private.rate_state), (select next_slot_at from slot_before),
          'and no slot is taken');

select * from finish();
rollback;
