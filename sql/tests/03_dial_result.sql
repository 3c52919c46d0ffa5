-- record_dial_result(p_session_id uuid, p_call_sid text, p_error text, p_error_code text, p_retryable boolean,
-- p_failure text) (the circuit breaker's part: 29_breaker.sql)
-- (Retries of a failed dial: 13_retries.sql.)
begin;
select plan(34);

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

select has_function('public', 'record_dial_result', array['uuid', 'text', 'text', 'text', 'boolean', 'text']);
select hasnt_function('public', 'record_dial_result', array['uuid', 'text', 'text', 'text'], 'the 4-argument version is gone');
select function_returns('public', 'record_dial_result', array['uuid', 'text', 'text', 'text', 'boolean', 'text'], 'jsonb');

insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0001', 'Ada', '+15550001001'),
  ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002'),
  ('00000000-0000-0000-0000-0000000a0003', 'Cy', '+15550001003');
create temp table s as
select p.id as pending_call_id, (public.claim_pending_call(p.id) ->> 'session_id')::uuid as session_id
  from public.pending_calls as p;
create function pg_temp.sess(p_pending uuid) returns uuid language sql as
  $$ select session_id from s where pending_call_id = p_pending $$;

-- Dialled: a CallSid -------------------------------------------------------------------------------
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0001'), 'CA0001', null, null),
          jsonb_build_object('session_id', pg_temp.sess('00000000-0000-0000-0000-0000000a0001'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'call_status', 'calling', 'changed', true),
          'a CallSid: row calling, changed');
select row_eq($$select status, call_sid, dialed_at = now(), error, ended_at from public.call_sessions
                where pending_call_id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('queued'::text, 'CA0001'::text, true, null::text, null::timestamptz),
              'the session is queued with its CallSid and dialed_at');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'),
          'calling', 'the row is calling');

-- ... and again: nothing changes
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0001'), 'CA0001', null, null),
          jsonb_build_object('session_id', pg_temp.sess('00000000-0000-0000-0000-0000000a0001'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'call_status', 'calling', 'changed', false),
          'the same CallSid again: changed false');
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0001'), 'CA9999', null, null) -> 'changed',
          'false'::jsonb, 'another CallSid for a session that has one: changed false');
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0001'), null, 'boom', '500') -> 'changed',
          'false'::jsonb, 'an error for a session that has a CallSid: changed false');
select row_eq($$select status, call_sid, error from public.call_sessions
                where pending_call_id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('queued'::text, 'CA0001'::text, null::text), 'the session keeps its first result');
select row_eq($$select call_status, last_error from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('calling'::text, null::text), 'the row keeps its first result');

-- Not dialled: a permanent error (the Worker says not retryable) ----------------------------------------
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0002'), null,
                                    'The phone number you are attempting to call is not valid', '21211', false),
          jsonb_build_object('session_id', pg_temp.sess('00000000-0000-0000-0000-0000000a0002'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0002',
                             'call_status', 'failed', 'changed', true),
          'a permanent error: row failed at once, changed');
select row_eq($$select status, call_sid, error, error_code, ended_at = now(), dialed_at from public.call_sessions
                where pending_call_id = '00000000-0000-0000-0000-0000000a0002'$$,
              row('dial_failed'::text, null::text, 'The phone number you are attempting to call is not valid'::text,
                  '21211'::text, true, null::timestamptz),
              'the session is dial_failed with the error, its code and ended_at');
select row_eq($$select call_status, last_error from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'$$,
              row('failed'::text, 'The phone number you are attempting to call is not valid'::text),
              'the row is failed with last_error');
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0002'), null, 'again', '1') -> 'changed',
          'false'::jsonb, 'the same error again: changed false');
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0002'), 'CA0002', null, null),
          jsonb_build_object('session_id', pg_temp.sess('00000000-0000-0000-0000-0000000a0002'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0002',
                             'call_status', 'failed', 'changed', false),
          'a CallSid after an error: changed false, still failed');
select row_eq($$select status, call_sid, error, error_code from public.call_sessions
                where pending_call_id = '00000000-0000-0000-0000-0000000a0002'$$,
              row('dial_failed'::text, null::text, 'The phone number you are attempting to call is not valid'::text, '21211'::text),
              'the failed session is left alone');
select is((select last_error from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'),
          'The phone number you are attempting to call is not valid', 'last_error is not overwritten');

-- Arguments ---------------------------------------------------------------------------------------
select is(public.record_dial_result('00000000-0000-0000-0000-0000000000ff', 'CA0404', null, null), null,
          'unknown session: null');
select throws_ok($$select public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0003'), 'CA0003', 'boom', null)$$,
                 '22023', null, 'both a CallSid and an error: invalid_parameter_value');
select throws_ok($$select public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0003'), null, null, null)$$,
                 '22023', null, 'neither a CallSid nor an error: invalid_parameter_value');
select throws_ok($$select public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0003'), '  ', '', '21211')$$,
                 '22023', null, 'blank strings count as absent');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0003'),
          'dialing', 'a rejected call changes nothing');
select throws_ok($$select public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0003'), 'CA0001', null, null)$$,
                 '23505', null, 'a CallSid already used by another session is refused');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0003'),
          'dialing', 'the session is still dialing after the refused CallSid');

-- The row was cancelled while dialling: the session records the result, the row stays cancelled --------
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0003';
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0003'), 'CA0003', null, null),
          jsonb_build_object('session_id', pg_temp.sess('00000000-0000-0000-0000-0000000a0003'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0003',
                             'call_status', 'cancelled', 'changed', true),
          'a CallSid for a cancelled row: session recorded, row cancelled');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0003'),
          'queued', 'the session of the cancelled row is queued');

-- An error on a cancelled row does not turn it failed
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0004', 'Di', '+15550001004');
insert into s select '00000000-0000-0000-0000-0000000a0004',
                     (public.claim_pending_call('00000000-0000-0000-0000-0000000a0004') ->> 'session_id')::uuid;
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0004';
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0004'), null, 'boom', null) ->> 'call_status',
          'cancelled', 'an error for a cancelled row leaves it cancelled');
select row_eq($$select call_status, last_error from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0004'$$,
              row('cancelled'::text, null::text), 'no last_error on the cancelled row');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0004'),
          'dial_failed', 'its session is dial_failed');

-- An old attempt's late result does not move the row of a newer attempt
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0005', 'Ed', '+15550001005');
insert into s select '00000000-0000-0000-0000-0000000a0005',
                     (public.claim_pending_call('00000000-0000-0000-0000-0000000a0005') ->> 'session_id')::uuid;
update public.pending_calls set attempts = 2 where id = '00000000-0000-0000-0000-0000000a0005';
insert into public.call_sessions (pending_call_id, attempt) values ('00000000-0000-0000-0000-0000000a0005', 2);
select is(public.record_dial_result(pg_temp.sess('00000000-0000-0000-0000-0000000a0005'), null, 'late', null) ->> 'call_status',
          'dispatching', 'a late error of attempt 1 leaves the row of attempt 2 dispatching');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0005' and attempt = 1),
          'dial_failed', 'attempt 1 is dial_failed');
select is((select status from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0005' and attempt = 2),
          'dialing', 'attempt 2 is still dialing');

-- Named arguments, optional ones omitted (as PostgREST calls it)
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0006', 'Flo', '+15550001006');
insert into s select '00000000-0000-0000-0000-0000000a0006',
                     (public.claim_pending_call('00000000-0000-0000-0000-0000000a0006') ->> 'session_id')::uuid;
select is(public.record_dial_result(p_session_id := pg_temp.sess('00000000-0000-0000-0000-0000000a0006'),
                                    p_error := 'timeout') ->> 'call_status',
          'retry_pending', 'p_call_sid, p_error_code and p_retryable may be omitted (an error is retryable by default)');

select * from finish();
rollback;
