-- apply_vapi_status(p_pending_call_id uuid, p_status text, p_vapi_call_id text)
begin;
select plan(20);

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

select has_function('public', 'apply_vapi_status', array['uuid', 'text', 'text']);
select function_returns('public', 'apply_vapi_status', array['uuid', 'text', 'text'], 'jsonb');

insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0001', 'Ada', '+15550001001'),
  ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002');
select public.record_dial_result((public.claim_pending_call('00000000-0000-0000-0000-0000000a0001') ->> 'session_id')::uuid,
                                 'CA01', null, null) ->> 'call_status' as dialled \gset
-- a2 is claimed but not dialled: no session with a call_sid
select public.claim_pending_call('00000000-0000-0000-0000-0000000a0002') is not null as claimed \gset
create function pg_temp.s1() returns uuid language sql as $$ select id from public.call_sessions where call_sid = 'CA01' $$;

select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000000ff', 'queued', 'vapi-1'), null, 'unknown pending call: null');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0002', 'queued', 'vapi-2'), null, 'no dialled session: null');

select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'queued', 'vapi-1'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0001', 'session_id', pg_temp.s1(),
                             'vapi_status', 'queued', 'call_status', 'calling', 'changed', true),
          'queued: recorded on the current session');
select row_eq($$select vapi_status, vapi_call_id from public.call_sessions where call_sid = 'CA01'$$,
              row('queued'::text, 'vapi-1'::text), 'the session has the VAPI status and call id');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'queued', 'vapi-1') -> 'changed', 'false'::jsonb,
          'the same status again: changed false');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'in-progress', 'vapi-1') ->> 'vapi_status', 'in-progress',
          'in-progress: applied');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ringing', 'vapi-1'),
          jsonb_build_object('pending_call_id', '00000000-0000-0000-0000-0000000a0001', 'session_id', pg_temp.s1(),
                             'vapi_status', 'in-progress', 'call_status', 'calling', 'changed', false),
          'ringing after in-progress (stale): changed false');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'teleporting', 'vapi-1') -> 'changed', 'false'::jsonb,
          'an unknown status: changed false');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ended', 'vapi-OTHER') -> 'changed', 'false'::jsonb,
          'a status of another VAPI call: changed false');
select row_eq($$select vapi_status, vapi_call_id from public.call_sessions where call_sid = 'CA01'$$,
              row('in-progress'::text, 'vapi-1'::text), 'ignored events changed nothing');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ended', null) ->> 'vapi_status', 'in-progress',
          'ended without a call id: refused, the session is bound to its VAPI call');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'), 'calling',
          'a VAPI status never changes the row (the report does)');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'in-progress', 'vapi-1') -> 'changed', 'false'::jsonb,
          'nothing after ended');

-- The current session is the latest attempt that has a call_sid -------------------------------------
update public.pending_calls set attempts = 3 where id = '00000000-0000-0000-0000-0000000a0001';
insert into public.call_sessions (pending_call_id, attempt, call_sid, status) values
  ('00000000-0000-0000-0000-0000000a0001', 2, 'CA01b', 'ringing');
insert into public.call_sessions (pending_call_id, attempt, status) values
  ('00000000-0000-0000-0000-0000000a0001', 3, 'dialing');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ringing', 'vapi-2b') ->> 'session_id',
          (select id::text from public.call_sessions where call_sid = 'CA01b'),
          'a new VAPI call goes to attempt 2 (latest with a call_sid), not to attempt 3 (not dialled)');
select row_eq($$select vapi_status, vapi_call_id from public.call_sessions where call_sid = 'CA01b'$$,
              row('ringing'::text, 'vapi-2b'::text), 'attempt 2 has it');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ended', 'vapi-1') ->> 'session_id',
          pg_temp.s1()::text, 'an event naming attempt 1''s VAPI call goes to attempt 1');
select is((select vapi_status from public.call_sessions where call_sid = 'CA01b'), 'ringing',
          'attempt 2 is untouched by it');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', null, 'vapi-2b') -> 'changed', 'false'::jsonb,
          'a null status: changed false');

select * from finish();
rollback;
