-- Retries: a retryable failure of the current attempt -> retry_pending at the policy's delay (in the calling
-- window) while attempts remain, else failed; a permanent dial error fails at once; the Twilio-vs-VAPI race
-- ends the same whichever comes first; an older attempt's late news never moves the row.
begin;
select plan(77);

-- Every claim may go ahead (limits: 14_limits.sql); the window is open all week unless a test narrows it.
select test_fixtures.open_policy();

-- The row in one line: status, attempts, last_error, next attempt relative to now.
create function pg_temp.state(p_id uuid) returns text language sql as $$
  select concat_ws(' / ', call_status, attempts, last_error,
                   case when call_status = 'retry_pending' then 'in ' || (next_attempt_at - now())::text end)
    from public.pending_calls where id = p_id
$$;
create function pg_temp.report(p_id uuid, p_vapi text, p_outcome text, p_reason text) returns jsonb language sql as $$
  select public.apply_call_report(p_id, p_vapi, p_outcome, p_reason, null, null, null, null, null, null)
$$;

-- The schedule ---------------------------------------------------------------------------------------------
select is(array(select outcall_private.retry_at('America/New_York', n) - now() from generate_series(0, 5) as n),
          array['5 minutes', '5 minutes', '15 minutes', '30 minutes', '30 minutes', '30 minutes']::interval[],
          'after attempt n the delay is retry_delays[least(n, cardinality)]: 5, 15, 30, 30 min');
update outcall_private.dispatch_policy set retry_delays = '{1 hour}';
select is(outcall_private.retry_at('America/New_York', 2) - now(), interval '1 hour', 'a one-delay schedule repeats it');
update outcall_private.dispatch_policy set retry_delays = default;

-- A full life: three attempts, each failing a different way ----------------------------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0001') is not null as n1 \gset
select test_fixtures.claim('00000000-0000-0000-0000-0000000a0001') as s1a \gset
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'dispatching / 1', 'claimed: dispatching, attempt 1');
select is(public.record_dial_result(:'s1a', null, 'Service Unavailable', '503'),
          jsonb_build_object('session_id', :'s1a'::uuid, 'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'call_status', 'retry_pending', 'changed', true),
          'a dial error (retryable by default): retry_pending');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'retry_pending / 1 / Service Unavailable / in 00:05:00',
          'next attempt in 5 minutes, last_error the error');
select row_eq($$select status, error, error_code, ended_at = now() from public.call_sessions where id = $$ || quote_literal(:'s1a'),
              row('dial_failed'::text, 'Service Unavailable'::text, '503'::text, true), 'the session is dial_failed');
select is(public.record_dial_result(:'s1a', null, 'Service Unavailable', '503') -> 'changed', 'false'::jsonb,
          'the same error again: changed false');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'retry_pending / 1 / Service Unavailable / in 00:05:00',
          'and the row is as it was');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0001'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'not due yet: not_claimable');

select test_fixtures.dial('00000000-0000-0000-0000-0000000a0001', 'CA1b') as s1b \gset
select is((select attempt from public.call_sessions where id = :'s1b'), 2, 'once due: claimed again, attempt 2');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'calling / 2 / Service Unavailable', 'dialled: calling');
select is(public.apply_twilio_status('CA1b', 'busy', 2, null, 0) ->> 'call_status', 'retry_pending', 'busy: retry_pending');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'retry_pending / 2 / busy / in 00:15:00',
          'after attempt 2: in 15 minutes, last_error busy');
select is(public.apply_twilio_status('CA1b', 'busy', 2, null, 0) -> 'changed', 'false'::jsonb, 'busy again: changed false');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'retry_pending / 2 / busy / in 00:15:00',
          'the duplicate moves nothing');

select test_fixtures.dial('00000000-0000-0000-0000-0000000a0001', 'CA1c') as s1c \gset
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'calling / 3 / busy', 'attempt 3 calling');
select is(public.apply_twilio_status('CA1c', 'no-answer', 2, null, 0) ->> 'call_status', 'failed',
          'no-answer on the last attempt: failed');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0001'), 'failed / 3 / no-answer', 'last_error no-answer');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0001'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'a failed row is not claimed again');
select is((select count(*)::int from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0001'), 3,
          'three sessions, one per attempt');

-- Each retryable failure, on attempt 1 of 3 and on the last attempt ------------------------------------------
create temp table endings (n int, how text, last_error text);
insert into endings values (1, 'busy', 'busy'), (2, 'no-answer', 'no-answer'), (3, 'failed', 'failed'),
                           (4, 'canceled', 'canceled'), (5, 'voicemail', 'voicemail'), (6, 'not_reached', 'silence-timed-out'),
                           (7, 'dial error', 'timeout');
create function pg_temp.fail_by(p_id uuid, p_how text) returns jsonb language plpgsql as $$
declare
  v_sid text := 'CA-' || p_id || '-' || (select attempts + 1 from public.pending_calls where id = p_id);
  v_session uuid;
begin
  if p_how = 'dial error' then
    v_session := test_fixtures.claim(p_id);
    return public.record_dial_result(v_session, null, 'timeout', null);
  end if;
  perform test_fixtures.dial(p_id, v_sid);
  if p_how = 'voicemail' then
    -- Twilio's completed (a machine answered) leaves the row calling; VAPI's report says voicemail
    if public.apply_twilio_status(v_sid, 'completed', 3, 'machine_end_beep', 12) ->> 'call_status' <> 'calling' then
      raise exception 'Twilio''s completed (machine) moved the row of %', p_id;
    end if;
    return pg_temp.report(p_id, null, 'not_reached', 'voicemail');
  end if;
  return case p_how
    when 'not_reached' then pg_temp.report(p_id, null, 'not_reached', 'silence-timed-out')
    else public.apply_twilio_status(v_sid, p_how, 2, null, 0) end;
end $$;
select is(array(select pg_temp.fail_by(('00000000-0000-0000-0000-0000000b000' || n)::uuid, how) ->> 'call_status'
                  from endings, lateral test_fixtures.new_call(('00000000-0000-0000-0000-0000000b000' || n)::uuid) order by n),
          array_fill('retry_pending'::text, array[7]),
          'busy, no-answer, failed, canceled, voicemail (Twilio completed by a machine, then VAPI''s report), not_reached, a dial error: each is retried');
select is(array(select pg_temp.state(('00000000-0000-0000-0000-0000000b000' || n)::uuid) from endings order by n),
          array(select 'retry_pending / 1 / ' || last_error || ' / in 00:05:00' from endings order by n),
          'each in 5 minutes, with its reason');
select is(array(select pg_temp.fail_by(('00000000-0000-0000-0000-0000000c000' || n)::uuid, how) ->> 'call_status'
                  from endings, lateral test_fixtures.new_call(('00000000-0000-0000-0000-0000000c000' || n)::uuid, 1) order by n),
          array_fill('failed'::text, array[7]),
          'on the last attempt (max_attempts 1) each fails the row');
select is(array(select pg_temp.state(('00000000-0000-0000-0000-0000000c000' || n)::uuid) from endings order by n),
          array(select 'failed / 1 / ' || last_error from endings order by n),
          'with its reason as last_error');

-- A permanent dial error fails at once -------------------------------------------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0002') is not null as n2 \gset
select test_fixtures.claim('00000000-0000-0000-0000-0000000a0002') as s2 \gset
select is(public.record_dial_result(:'s2', null, 'The phone number you are attempting to call is not valid', '21211', false)
            ->> 'call_status', 'failed', 'p_retryable false: failed with attempts left');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0002'), 'failed / 1 / The phone number you are attempting to call is not valid',
          'last_error the error');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0003') is not null as n3 \gset
select test_fixtures.claim('00000000-0000-0000-0000-0000000a0003') as s3 \gset
select is(public.record_dial_result(p_session_id := :'s3', p_error := 'boom', p_retryable := null) ->> 'call_status',
          'retry_pending', 'p_retryable null counts as retryable');

-- The next attempt is pushed into the calling window ------------------------------------------------------
-- A window that is closed all day on the day 5 minutes from now (New York time) and open all other days:
-- the retry waits for the next local midnight.
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0004') is not null as n4 \gset
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0004', 'CA4') is not null as d4 \gset
update outcall_private.dispatch_policy
   set window_days = array(select d from generate_series(1, 7) as d
                            where d <> extract(isodow from (now() + interval '5 minutes') at time zone 'America/New_York'));
select is(public.apply_twilio_status('CA4', 'no-answer', 2, null, 0) ->> 'call_status', 'retry_pending', 'no-answer: retry_pending');
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0004'),
          (((now() + interval '5 minutes') at time zone 'America/New_York')::date + 1)::timestamp at time zone 'America/New_York',
          'next_attempt_at: not now + 5 min (the window is closed then) but the next opening, local midnight');
update outcall_private.dispatch_policy set window_days = '{1,2,3,4,5,6,7}';

-- Completed stays completed; a terminal row is never left ------------------------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0005') is not null as n5 \gset
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0005', 'CA5') is not null as d5 \gset
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0005', 'vapi-5', 'completed', 'customer-ended-call') ->> 'call_status',
          'completed', 'a conversation: completed');
select is(public.apply_twilio_status('CA5', 'busy', 2, null, 0) ->> 'call_status', 'completed', 'a late busy: still completed');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0005'), 'completed / 1', 'no last_error, not retried');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0006') is not null as n6 \gset
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0006', 'CA6') is not null as d6 \gset
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0006';
select is(public.apply_twilio_status('CA6', 'no-answer', 2, null, 0) ->> 'call_status', 'cancelled',
          'a retryable failure of a cancelled row: still cancelled');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0006', null, 'not_reached', 'x') ->> 'call_status', 'cancelled',
          'and its not_reached report too');

-- Out of order: a callback that ended the attempt before its dial result ----------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0007') is not null as n7 \gset
select test_fixtures.claim('00000000-0000-0000-0000-0000000a0007') as s7 \gset
select is(public.apply_twilio_status('CA7', 'busy', 1, null, 0, :'s7') ->> 'call_status', 'retry_pending',
          'busy before the dial result (found by the session in the callback URL): retry_pending');
select is(public.record_dial_result(:'s7', 'CA7', null, null) ->> 'call_status', 'retry_pending',
          'the late dial result does not bring the row back to calling');
select row_eq($$select status, call_sid, dialed_at is not null from public.call_sessions where id = $$ || quote_literal(:'s7'),
              row('busy'::text, 'CA7'::text, true), 'the session keeps busy and records the dial');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0007'), 'retry_pending / 1 / busy / in 00:05:00', 'the row is unchanged');

-- The Twilio-vs-VAPI race ends the same whichever comes first -------------------------------------------------
-- completed + completed
select bool_and(test_fixtures.new_call(('00000000-0000-0000-0000-0000000d00' || lpad(n::text, 2, '0'))::uuid,
                                       case when n > 10 then 1 else 3 end) is not null) as nd
  from generate_series(1, 12) as n \gset
select bool_and(test_fixtures.dial(('00000000-0000-0000-0000-0000000d00' || lpad(n::text, 2, '0'))::uuid, 'CAD' || n) is not null) as dd
  from generate_series(1, 12) as n \gset
select is(array[public.apply_twilio_status('CAD1', 'completed', 3, 'human', 30) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0001', 'v-d1', 'completed', 'customer-ended-call') ->> 'call_status'],
          array['calling', 'completed'], 'Twilio completed, then VAPI completed: calling, then completed');
select is(array[pg_temp.report('00000000-0000-0000-0000-0000000d0002', 'v-d2', 'completed', 'customer-ended-call') ->> 'call_status',
                public.apply_twilio_status('CAD2', 'completed', 3, 'human', 30) ->> 'call_status'],
          array['completed', 'completed'], 'VAPI completed, then Twilio completed: completed, stays completed');
-- completed + not_reached
select is(array[public.apply_twilio_status('CAD3', 'completed', 3, null, 30) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0003', 'v-d3', 'not_reached', 'customer-did-not-answer') ->> 'call_status'],
          array['calling', 'retry_pending'], 'Twilio completed, then VAPI not_reached: calling, then retry_pending');
select is(array[pg_temp.report('00000000-0000-0000-0000-0000000d0004', 'v-d4', 'not_reached', 'customer-did-not-answer') ->> 'call_status',
                public.apply_twilio_status('CAD4', 'completed', 3, null, 30) ->> 'call_status'],
          array['retry_pending', 'retry_pending'], 'VAPI not_reached, then Twilio completed: retry_pending, stays');
select row_eq($$select call_status, attempts, next_attempt_at, last_error from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0003'$$,
              (select row(call_status, attempts, next_attempt_at, last_error) from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0004'),
              'completed + not_reached: the same row either way (status, attempts, next attempt, last_error)');
-- busy + not_reached
select is(array[public.apply_twilio_status('CAD5', 'busy', 2, null, 0) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0005', 'v-d5', 'not_reached', 'customer-busy') ->> 'call_status'],
          array['retry_pending', 'retry_pending'], 'Twilio busy, then VAPI not_reached: retry_pending, stays');
select is(array[pg_temp.report('00000000-0000-0000-0000-0000000d0006', 'v-d6', 'not_reached', 'customer-busy') ->> 'call_status',
                public.apply_twilio_status('CAD6', 'busy', 2, null, 0) ->> 'call_status'],
          array['retry_pending', 'retry_pending'], 'VAPI not_reached, then Twilio busy: retry_pending, stays');
select row_eq($$select call_status, attempts, next_attempt_at from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0005'$$,
              (select row(call_status, attempts, next_attempt_at) from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0006'),
              'busy + not_reached: the same status, attempts and next attempt either way (one retry, not two)');
select is(array[pg_temp.state('00000000-0000-0000-0000-0000000d0005'), pg_temp.state('00000000-0000-0000-0000-0000000d0006')],
          array['retry_pending / 1 / busy / in 00:05:00', 'retry_pending / 1 / customer-busy / in 00:05:00'],
          'last_error is the first news''s reason');
select is((select summary is null and ended_reason = 'customer-busy' from public.pending_calls where id = '00000000-0000-0000-0000-0000000d0005'),
          true, 'the report after busy still records its results on the row');
-- a machine answered (Twilio completed, AnsweredBy machine_*): VAPI's report alone decides, in either order
select is(array[public.apply_twilio_status('CAD7', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0007', 'v-d7', 'completed', 'customer-ended-call') ->> 'call_status'],
          array['calling', 'completed'], 'Twilio completed (machine), then VAPI completed: calling, then completed');
select is(array[pg_temp.report('00000000-0000-0000-0000-0000000d0008', 'v-d8', 'completed', 'customer-ended-call') ->> 'call_status',
                public.apply_twilio_status('CAD8', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status'],
          array['completed', 'completed'], 'VAPI completed, then Twilio completed (machine): completed, stays completed');
select is(array[pg_temp.state('00000000-0000-0000-0000-0000000d0007'), pg_temp.state('00000000-0000-0000-0000-0000000d0008')],
          array['completed / 1', 'completed / 1'], 'machine + completed: the same row either way, no last_error');
select is(array[public.apply_twilio_status('CAD9', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0009', 'v-d9', 'not_reached', 'voicemail') ->> 'call_status'],
          array['calling', 'retry_pending'], 'Twilio completed (machine), then VAPI voicemail (not_reached): calling, then retry_pending');
select is(array[pg_temp.report('00000000-0000-0000-0000-0000000d0010', 'v-d10', 'not_reached', 'voicemail') ->> 'call_status',
                public.apply_twilio_status('CAD10', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status'],
          array['retry_pending', 'retry_pending'], 'VAPI voicemail (not_reached), then Twilio completed (machine): retry_pending, stays');
select row_eq($$select call_status, attempts, next_attempt_at, last_error, ended_reason from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0009'$$,
              (select row(call_status, attempts, next_attempt_at, last_error, ended_reason) from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000d0010'),
              'machine + voicemail: the same row either way (status, attempts, next attempt, last_error, ended_reason)');
select is(array[pg_temp.state('00000000-0000-0000-0000-0000000d0009'), pg_temp.state('00000000-0000-0000-0000-0000000d0010')],
          array['retry_pending / 1 / voicemail / in 00:05:00', 'retry_pending / 1 / voicemail / in 00:05:00'],
          'last_error voicemail (VAPI''s ended reason) in both orders');
select is(array(select status || ' ' || answered_by from public.call_sessions
                 where call_sid in ('CAD7', 'CAD8', 'CAD9', 'CAD10') order by attempt, call_sid),
          array_fill('completed machine_end_beep'::text, array[4]), 'every session records Twilio''s AnsweredBy');
-- the same on the last attempt (max_attempts 1): failed / voicemail in both orders
select is(array[public.apply_twilio_status('CAD11', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0011', 'v-d11', 'not_reached', 'voicemail') ->> 'call_status',
                pg_temp.report('00000000-0000-0000-0000-0000000d0012', 'v-d12', 'not_reached', 'voicemail') ->> 'call_status',
                public.apply_twilio_status('CAD12', 'completed', 3, 'machine_end_beep', 30) ->> 'call_status'],
          array['calling', 'failed', 'failed', 'failed'], 'on the last attempt: failed, whichever comes first');
select is(array[pg_temp.state('00000000-0000-0000-0000-0000000d0011'), pg_temp.state('00000000-0000-0000-0000-0000000d0012')],
          array['failed / 1 / voicemail', 'failed / 1 / voicemail'], 'with last_error voicemail both ways');

-- An older attempt's late news never moves the row ------------------------------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000a0008') is not null as n8 \gset
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0008', 'CA8a') as s8a \gset
select is(public.apply_twilio_status('CA8a', 'in-progress', 2, 'human', null) ->> 'call_status', 'calling', 'attempt 1 is answered');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0008', 'in-progress', 'vapi-8a') ->> 'vapi_status',
          'in-progress', 'attempt 1 has VAPI call vapi-8a');
-- VAPI says nobody was reached while Twilio's call is still up
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0008', 'vapi-8a', 'not_reached', 'silence-timed-out') ->> 'call_status',
          'retry_pending', 'attempt 1: not_reached, retry_pending');
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0008', 'CA8b') as s8b \gset
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0008'), 'calling / 2 / silence-timed-out', 'attempt 2 is calling');
select is(public.apply_twilio_status('CA8a', 'completed', 9, 'machine_end_beep', 70) - 'session_id' - 'pending_call_id',
          '{"session_status": "completed", "call_status": "calling", "changed": true, "slot_freed": true}'::jsonb,
          'attempt 1''s late Twilio completed (machine): its session ends, the row of attempt 2 stays calling');
select is(public.apply_twilio_status('CA8a', 'busy', 10, null, 0) -> 'changed', 'false'::jsonb,
          'attempt 1''s later busy: changed false');
select is(public.record_dial_result(:'s8a', null, 'late', null) -> 'changed', 'false'::jsonb,
          'attempt 1''s late dial error: changed false');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0008', 'vapi-8a', 'completed', 'x') -> 'changed', 'false'::jsonb,
          'attempt 1''s second report: changed false');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0008', 'ended', 'vapi-8a') ->> 'call_status', 'calling',
          'attempt 1''s VAPI ended: recorded on attempt 1, the row stays calling');
select is((select vapi_status from public.call_sessions where id = :'s8a'), 'ended', 'on attempt 1''s session');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0008'), 'calling / 2 / silence-timed-out',
          'after all of attempt 1''s late news the row is as attempt 2 left it');
-- and attempt 2 still decides
select is(public.apply_twilio_status('CA8b', 'no-answer', 2, null, 0) ->> 'call_status', 'retry_pending',
          'attempt 2''s no-answer: retry_pending');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0008'), 'retry_pending / 2 / no-answer / in 00:15:00',
          'in 15 minutes (after attempt 2)');
-- a late event of attempt 1 once attempt 2 has failed too: still nothing
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0008', 'vapi-8a', 'not_reached', 'again') -> 'changed', 'false'::jsonb,
          'attempt 1 cannot report twice');
select is(pg_temp.state('00000000-0000-0000-0000-0000000a0008'), 'retry_pending / 2 / no-answer / in 00:15:00',
          'the row waits for attempt 3');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0008'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'not before its time');
select is((public.claim_pending_call('00000000-0000-0000-0000-0000000a0008') ->> 'attempt')::int, null,
          'still not (idempotent)');
select test_fixtures.claim('00000000-0000-0000-0000-0000000a0008') as s8c \gset
select is((select attempt from public.call_sessions where id = :'s8c'), 3, 'then attempt 3');

-- advance_pending_call refuses an unknown target
select throws_ok($$select outcall_private.advance_pending_call(p, 1, 'done') from public.pending_calls as p limit 1$$,
                 '22023', null, 'advance_pending_call: an unknown target is a bug, not a no-op');

select * from finish();
rollback;
