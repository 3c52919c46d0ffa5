-- The claim's calling window and global limits, in one transaction: claim_pending_call and claim_next_due
-- (outside_window, phone_dialing, at_capacity, rate_limited, idle), reserve_dial_slot. The same limits under
-- concurrent claims from two connections: 16_concurrent_claims.sql.
begin;
select plan(94);

select has_function('public', 'claim_next_due', array[]::text[]);
select function_returns('public', 'claim_next_due', array[]::text[], 'jsonb');
select has_function('public', 'reserve_dial_slot', array['uuid']);
select function_returns('public', 'reserve_dial_slot', array['uuid'], 'jsonb');

-- Start wide open; each section narrows what it tests.
select test_fixtures.open_policy();
select test_fixtures.free_send_slots();

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
          array['attempt', 'classification', 'listen', 'more_due', 'pending_call_id', 'phone', 'session_id'],
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

-- rate_limited: the send slots ---------------------------------------------------------------------------------
-- At c calls/s: at most max(1, floor(c)) creates in flight or answered within the window (1 s; 1/c below 1
-- call/s), and grants 1/c apart. A create is in flight from its grant (the claim) to its answer (the dial
-- result, a release, or a callback that beat it).
create function pg_temp.request(p_session uuid) returns text language sql as $$
  select case when answered_at is null then 'in flight' else 'answered' end
    from outcall_private.dial_requests where session_id = p_session
$$;
-- Moves every answer (and the pace) p_ago into the past, as if that much time had passed.
create function pg_temp.answered_ago(p_ago interval) returns void language sql as $$
  update outcall_private.dial_requests set answered_at = pg_catalog.clock_timestamp() - p_ago where answered_at is not null;
  update outcall_private.rate_state set next_slot_at = pg_catalog.clock_timestamp() - interval '1 millisecond';
$$;
select pg_temp.quiet();
update outcall_private.dispatch_policy set max_concurrent_calls = 1000, calls_per_second = 1;
select test_fixtures.free_send_slots();
select count(pg_temp.new_call(('00000000-0000-0000-0000-0000000a005' || n)::uuid, '+1555000105' || n)) as n5x
  from generate_series(1, 6) as n \gset
select clock_timestamp() as before \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0051') ->> 'session_id') as s51 \gset
select ok(:'s51' is not null, 'the first claim takes the free slot');
select is(pg_temp.request(:'s51'), 'in flight', 'its create request is in flight from the claim');
select ok((select next_slot_at between :'before'::timestamptz + interval '1 second' and clock_timestamp() + interval '1 second'
             from outcall_private.rate_state),
          'the next grant is paced 1 s later (1 call/s, no headroom), on the wall clock');
create temp table r2 as select public.claim_pending_call('00000000-0000-0000-0000-0000000a0052') as j;
select is((select j - 'retry_after_ms' from r2), '{"claimed": false, "reason": "rate_limited"}'::jsonb,
          'an immediate second claim: rate_limited');
select ok((select (j ->> 'retry_after_ms')::int between 1 and 1000 from r2), 'retry_after_ms: the wait, at most the window');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0052'), 'pending / 0 / 0 sessions', 'the row is untouched');
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
create temp table r3 as select public.claim_next_due() as j;
select is((select j ->> 'reason' from r3), 'rate_limited',
          'the pace has passed, but the create in flight still holds the slot, however long Twilio takes');
select ok((select (j ->> 'retry_after_ms')::int between 999 and 1000 from r3),
          'retry_after_ms: a window from now at least (its answer is still to come)');
select is(public.record_dial_result(:'s51', 'CA51', null, null) ->> 'call_status', 'calling', 'Twilio answers: the dial result');
select is(pg_temp.request(:'s51'), 'answered', 'the dial result releases the request');
create temp table r4 as select public.claim_next_due() as j;
select ok((select j ->> 'reason' = 'rate_limited' and (j ->> 'retry_after_ms')::int between 1 and 1000 from r4),
          'the slot is free a window after the answer, not before');
select pg_temp.answered_ago(interval '1001 milliseconds');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0052',
          'a window after the answer: claimed');
-- a create unanswered past the lease (its Worker died mid-dial) no longer counts
update outcall_private.dial_requests set sent_at = clock_timestamp() - interval '121 seconds' where answered_at is null;
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0053',
          'a create in flight for longer than the 2-minute lease no longer holds a slot');

-- 2 calls/s: two slots, grants 0.5 s apart
update outcall_private.dispatch_policy set calls_per_second = 2;
select test_fixtures.free_send_slots();
select (public.claim_next_due() ->> 'session_id') as s54 \gset
create temp table r5 as select public.claim_next_due() as j;
select ok((select j ->> 'reason' = 'rate_limited' and (j ->> 'retry_after_ms')::int between 1 and 500 from r5),
          '2 calls/s: the next grant is paced 0.5 s later');
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0055',
          'then a second create goes while the first is in flight (two slots)');
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
create temp table r6 as select public.claim_next_due() as j;
select ok((select j ->> 'reason' = 'rate_limited' and (j ->> 'retry_after_ms')::int between 999 and 1000 from r6),
          'a third waits: both slots are in flight');
select is((public.release_dial_slot(:'s54')), '{"released": true}'::jsonb, 'the first create is answered (released)');
select pg_temp.answered_ago(interval '1001 milliseconds');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0056',
          'a window after that answer, the third goes');

-- 0.5 calls/s: one slot, a window of 2 s
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0057', '+15550001057') is not null as n57 \gset
update outcall_private.dispatch_policy set calls_per_second = 0.5;
select test_fixtures.free_send_slots();
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0057') ->> 'session_id') as s57 \gset
select ok(:'s57' is not null, 'at 0.5 calls/s');
select ok((select next_slot_at - clock_timestamp() between interval '1.9 seconds' and interval '2 seconds'
             from outcall_private.rate_state), 'the next grant is paced 2 s later');
select is(public.release_dial_slot(:'s57'), '{"released": true}'::jsonb, 'answered at once');
update outcall_private.rate_state set next_slot_at = clock_timestamp() - interval '1 millisecond';
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0058', '+15550001058') is not null as n58 \gset
create temp table r7 as select public.claim_pending_call('00000000-0000-0000-0000-0000000a0058') as j;
select ok((select j ->> 'reason' = 'rate_limited' and (j ->> 'retry_after_ms')::int between 1001 and 2000 from r7),
          'the window is 2 s after the answer');
-- capacity is answered before the rate
update outcall_private.dispatch_policy set max_concurrent_calls = 1;
select is(public.claim_next_due(), '{"claimed": false, "reason": "at_capacity"}'::jsonb, 'full and rate limited: at_capacity');

-- reserve_dial_slot, release_dial_slot ---------------------------------------------------------------------------
update outcall_private.dispatch_policy set max_concurrent_calls = 1000, calls_per_second = 1;
select pg_temp.quiet();
select test_fixtures.free_send_slots();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0061', '+15550001061') is not null as n61 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0061') ->> 'session_id') as s61 \gset
-- an old updated_at (the trigger would set now(); replica mode skips triggers)
set local session_replication_role = replica;
update public.call_sessions set updated_at = now() - interval '1 hour' where id = :'s61';
set local session_replication_role = origin;
select is(public.reserve_dial_slot(:'s61') ->> 'outcome', 'wait', 'its own first try still in flight: wait');
select is((select updated_at from public.call_sessions where id = :'s61'), now(), 'the session''s updated_at is touched');
select is(public.release_dial_slot(:'s61'), '{"released": true}'::jsonb, 'Twilio answered 503: the Worker releases the try');
select is(public.release_dial_slot(:'s61'), '{"released": false}'::jsonb, 'releasing again changes nothing');
create temp table rs as select public.reserve_dial_slot(:'s61') as j;
select ok((select j ->> 'outcome' = 'wait' and (j ->> 'retry_after_ms')::int between 1 and 1000 from rs),
          'a re-send waits a window after that answer');
select pg_temp.answered_ago(interval '1001 milliseconds');
select is(public.reserve_dial_slot(:'s61'), '{"outcome": "reserved"}'::jsonb, 'then it is granted a slot: reserved');
select is(pg_temp.request(:'s61'), 'in flight', 'and the re-sent request is in flight');
select is(public.claim_next_due() ->> 'reason', 'rate_limited', 'claims wait behind it');
select is(public.reserve_dial_slot('00000000-0000-0000-0000-0000000000ff'), null, 'reserve, an unknown session: null');
select is(public.release_dial_slot('00000000-0000-0000-0000-0000000000ff'), null, 'release, an unknown session: null');
create temp table slot_before as select next_slot_at from outcall_private.rate_state;
select is(public.record_dial_result(:'s61', 'CA61', null, null) ->> 'call_status', 'calling', 'the dial succeeds');
select is(pg_temp.request(:'s61'), 'answered', 'which releases the slot');
select is(public.reserve_dial_slot(:'s61'), '{"outcome": "settled"}'::jsonb, 'a session no longer dialing: settled');
select is((select next_slot_at from outcall_private.rate_state), (select next_slot_at from slot_before),
          'and no slot is taken');
-- every way out of `dialing` releases: a failed dial, a callback that beat the dial result
select test_fixtures.free_send_slots();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0062', '+15550001062') is not null as n62 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0062') ->> 'session_id') as s62 \gset
select is(public.record_dial_result(:'s62', null, 'twilio 503', null) ->> 'call_status', 'retry_pending', 'a dial fails');
select is(pg_temp.request(:'s62'), 'answered', 'the failure releases the slot');
select test_fixtures.free_send_slots();
select pg_temp.new_call('00000000-0000-0000-0000-0000000a0063', '+15550001063') is not null as n63 \gset
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0063') ->> 'session_id') as s63 \gset
select is(public.apply_twilio_status('CA63', 'ringing', 1, null, null, :'s63') ->> 'session_status', 'ringing',
          'a callback arrives before the dial result');
select is(pg_temp.request(:'s63'), 'answered', 'Twilio has the call: the callback releases the slot');

select * from finish();
rollback;
