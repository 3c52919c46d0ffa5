-- apply_call_report(p_pending_call_id, p_vapi_call_id, p_outcome, p_ended_reason, p_summary, p_success_evaluation,
--                   p_structured_data, p_transcript, p_duration_seconds, p_cost)
begin;
select plan(39);

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

select has_function('public', 'apply_call_report',
  array['uuid', 'text', 'text', 'text', 'text', 'text', 'jsonb', 'text', 'numeric', 'numeric']);
select function_returns('public', 'apply_call_report',
  array['uuid', 'text', 'text', 'text', 'text', 'text', 'jsonb', 'text', 'numeric', 'numeric'], 'jsonb');

create function pg_temp.report(p_id uuid, p_vapi text, p_outcome text, p_reason text, p_summary text) returns jsonb
language sql as $$
  select public.apply_call_report(p_id, p_vapi, p_outcome, p_reason, p_summary, 'true',
                                  '{"confirmed": true}'::jsonb, 'AI: Hello. User: Hi.', 61.5, 0.42)
$$;

select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0001', 'CA01') as s1 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0002', 'CA02') as s2 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0003', 'CA03') as s3 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0004', 'CA04') as s4 \gset
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0005', 'Ed', '+15550001005');

-- A conversation happened: completed ------------------------------------------------------------------
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0001', 'vapi-1', 'completed', 'customer-ended-call', 'Confirmed.'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0001', 'session_id', :'s1'::uuid,
                             'call_status', 'completed', 'changed', true),
          'completed: row completed, the documented fields');
select row_eq($$select call_status, ended_reason, summary, success_evaluation, structured_data, transcript,
                       duration_seconds, cost, last_error
                  from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('completed'::text, 'customer-ended-call'::text, 'Confirmed.'::text, 'true'::text,
                  '{"confirmed": true}'::jsonb, 'AI: Hello. User: Hi.'::text, 61.5::numeric, 0.42::numeric, null::text),
              'the row has every result');
select row_eq($$select report_received_at = now(), ended_reason, cost, vapi_call_id, status
                  from public.call_sessions where call_sid = 'CA01'$$,
              row(true, 'customer-ended-call'::text, 0.42::numeric, 'vapi-1'::text, 'queued'::text),
              'the session is stamped (report_received_at, ended_reason, cost, vapi_call_id); its Twilio status is Twilio''s');

-- A second report changes nothing ---------------------------------------------------------------------
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0001', 'vapi-1', 'not_reached', 'silence-timed-out', 'Other.'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0001', 'session_id', :'s1'::uuid,
                             'call_status', 'completed', 'changed', false),
          'a second report: changed false');
select row_eq($$select call_status, ended_reason, summary, last_error from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000a0001'$$,
              row('completed'::text, 'customer-ended-call'::text, 'Confirmed.'::text, null::text),
              'the first report stands');
select is((select ended_reason from public.call_sessions where call_sid = 'CA01'), 'customer-ended-call',
          'the session keeps the first report');
-- Twilio's late statuses do not undo it
select is(public.apply_twilio_status('CA01', 'completed', 9, 'machine_end_beep', 62) ->> 'call_status', 'completed',
          'a late machine completed from Twilio does not leave completed');

-- Nobody reached: retried, last_error = ended reason (the schedule, the last attempt: 13_retries.sql) -----
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0002', 'vapi-2', 'not_reached', 'customer-did-not-answer', null),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0002', 'session_id', :'s2'::uuid,
                             'call_status', 'retry_pending', 'changed', true),
          'not_reached: row retry_pending');
select row_eq($$select call_status, last_error, ended_reason, transcript from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000a0002'$$,
              row('retry_pending'::text, 'customer-did-not-answer'::text, 'customer-did-not-answer'::text, 'AI: Hello. User: Hi.'::text),
              'not_reached: last_error is the ended reason, results recorded');
select is(public.apply_call_report('00000000-0000-0000-0000-0000000a0002', 'vapi-2', 'completed', 'customer-ended-call',
                                   null, null, null, null, null, null) -> 'changed', 'false'::jsonb,
          'a completed report after not_reached: changed false');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'), 'retry_pending',
          'still retry_pending');

-- A machine answered: Twilio's completed leaves the row to the report, which says voicemail ------------------
-- (its last attempt, so voicemail ends it failed; the same with attempts left: 04_twilio_status.sql, and
-- both orders of the race: 13_retries.sql)
update public.pending_calls set max_attempts = 1 where id = '00000000-0000-0000-0000-0000000a0003';
select is(public.apply_twilio_status('CA03', 'completed', 3, 'machine_end_beep', 20) ->> 'call_status', 'calling',
          'Twilio completed, answered by a machine, on the last attempt: the row still calls');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0003', 'vapi-3', 'not_reached', 'voicemail', 'Left no message.'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0003', 'session_id', :'s3'::uuid,
                             'call_status', 'failed', 'changed', true),
          'then VAPI''s report voicemail (not_reached) on the last attempt: failed');
select row_eq($$select call_status, last_error, ended_reason, summary, transcript, duration_seconds, cost
                  from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0003'$$,
              row('failed'::text, 'voicemail'::text, 'voicemail'::text, 'Left no message.'::text,
                  'AI: Hello. User: Hi.'::text, 61.5::numeric, 0.42::numeric),
              'last_error voicemail (the ended reason), the results recorded');
select row_eq($$select status, answered_by, report_received_at is not null from public.call_sessions where call_sid = 'CA03'$$,
              row('completed'::text, 'machine_end_beep'::text, true),
              'the session keeps Twilio''s status and AnsweredBy and is stamped');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0003', 'vapi-3', 'completed', 'voicemail', 'again') -> 'changed',
          'false'::jsonb, 'and a duplicate of it changes nothing');

-- A report after Twilio already ended the row: results recorded, status and last_error kept ------------
-- (busy on the last attempt; a report after a retry_pending row: 13_retries.sql)
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0009', 'CA09') as s9 \gset
update public.pending_calls set max_attempts = 1 where id = '00000000-0000-0000-0000-0000000a0009';
select is(public.apply_twilio_status('CA09', 'busy', 2, null, 0) ->> 'call_status', 'failed',
          'Twilio says busy first, on the last attempt: failed');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0009', 'vapi-9', 'not_reached', 'customer-busy', 'Busy.'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0009', 'session_id', :'s9'::uuid,
                             'call_status', 'failed', 'changed', true),
          'the report after a terminal row: changed (recorded), status unchanged');
select row_eq($$select call_status, last_error, ended_reason, summary from public.pending_calls
                where id = '00000000-0000-0000-0000-0000000a0009'$$,
              row('failed'::text, 'busy'::text, 'customer-busy'::text, 'Busy.'::text),
              'the results are recorded on the terminal row, its status and last_error kept');

-- A cancelled row stays cancelled --------------------------------------------------------------------
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0004';
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0004', 'vapi-4', 'completed', 'customer-ended-call', 'x') ->> 'call_status',
          'cancelled', 'a report for a cancelled row leaves it cancelled');
select is((select summary from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0004'), 'x',
          'but records the results');

-- Nothing to apply to ------------------------------------------------------------------------------
select is(pg_temp.report('00000000-0000-0000-0000-0000000000ff', 'vapi-x', 'completed', 'x', 'x'), null, 'unknown pending call: null');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0005', 'vapi-5', 'completed', 'x', 'x'), null,
          'a pending call never dialled: null');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0005'), 'pending',
          'and it is left alone');
select throws_ok($$select pg_temp.report('00000000-0000-0000-0000-0000000a0005', 'vapi-5', 'voicemail', 'x', 'x')$$,
                 '22023', null, 'an outcome other than completed / not_reached is refused');
select throws_ok($$select pg_temp.report('00000000-0000-0000-0000-0000000a0005', 'vapi-5', null, 'x', 'x')$$,
                 '22023', null, 'a missing outcome is refused');

-- The VAPI call id decides the session ---------------------------------------------------------------
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0006', 'CA06') as s6 \gset
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0006', 'in-progress', 'vapi-6') ->> 'vapi_status',
          'in-progress', 'the session knows its VAPI call');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0006', 'vapi-OTHER', 'completed', 'x', 'x') -> 'changed',
          'false'::jsonb, 'a report of another VAPI call: changed false');
select row_eq($$select call_status, summary from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0006'$$,
              row('calling'::text, null::text), 'and the row is untouched');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0006', null, 'completed', 'customer-ended-call', 'ok') ->> 'call_status',
          'calling', 'a report without a VAPI call id is refused: the session is bound to its VAPI call');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0006', 'vapi-6', 'completed', 'customer-ended-call', 'ok') ->> 'call_status',
          'completed', 'its own call''s report applies');

-- Only the current attempt writes the row
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0007', 'CA07') as s7 \gset
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0007', 'in-progress', 'vapi-7a') -> 'changed',
          'true'::jsonb, 'attempt 1 has VAPI call vapi-7a');
update public.pending_calls set attempts = 2 where id = '00000000-0000-0000-0000-0000000a0007';
insert into public.call_sessions (pending_call_id, attempt, call_sid, status)
values ('00000000-0000-0000-0000-0000000a0007', 2, 'CA07b', 'ringing');
select is(pg_temp.report('00000000-0000-0000-0000-0000000a0007', 'vapi-7a', 'completed', 'late', 'late summary'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0007', 'session_id', :'s7'::uuid,
                             'call_status', 'calling', 'changed', true),
          'a late report of attempt 1 is recorded on attempt 1');
select row_eq($$select call_status, summary from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0007'$$,
              row('calling'::text, null::text), 'and does not touch the row of attempt 2');
select is((select report_received_at from public.call_sessions where call_sid = 'CA07b'), null,
          'attempt 2 has no report');

-- Named arguments, optional ones omitted (as PostgREST calls it)
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0008', 'CA08') as s8 \gset
select is(public.apply_call_report(p_pending_call_id := '00000000-0000-0000-0000-0000000a0008', p_vapi_call_id := null,
                                   p_outcome := 'not_reached') ->> 'call_status',
          'retry_pending', 'the results may be omitted');
select is((select last_error from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0008'), 'not_reached',
          'not_reached without an ended reason: last_error not_reached');

select * from finish();
rollback;
