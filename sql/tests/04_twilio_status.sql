-- apply_twilio_status(p_call_sid text, p_call_status text, p_sequence_number int, p_answered_by text,
--                     p_duration_seconds int, p_session_id uuid)
begin;
select plan(68);

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

select has_function('public', 'apply_twilio_status', array['text', 'text', 'integer', 'text', 'integer', 'uuid']);
select function_returns('public', 'apply_twilio_status', array['text', 'text', 'integer', 'text', 'integer', 'uuid'], 'jsonb');

-- (test_fixtures.dialled: a pending call, claimed and dialled with CallSid p_sid; sql/tests/fixtures/fixtures.sql)
create function pg_temp.row_status(p_id uuid) returns text language sql as
  $$ select call_status || coalesce(' / ' || last_error, '') from public.pending_calls where id = p_id $$;
create function pg_temp.session_status(p_sid text) returns text language sql as
  $$ select status from public.call_sessions where call_sid = p_sid $$;

select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0001', 'CA01') is not null as dialled \gset

-- Unknown sid / bad status -----------------------------------------------------------------------
select is(public.apply_twilio_status('CA_unknown', 'ringing', 1, null, null), null, 'unknown CallSid: null');
select throws_ok($$select public.apply_twilio_status('CA01', 'answered', 1, null, null)$$, '22023', null,
                 'an unknown CallStatus is refused');
select throws_ok($$select public.apply_twilio_status('CA01', null, 1, null, null)$$, '22023', null,
                 'a missing CallStatus is refused');
select throws_ok($$select public.apply_twilio_status('CA01', 'dial_failed', 1, null, null)$$, '22023', null,
                 'our own dial_failed is not a Twilio status');

-- Forward, one step at a time ------------------------------------------------------------------------
select is(public.apply_twilio_status('CA01', 'initiated', 0, null, null),
          jsonb_build_object('session_id', (select id from public.call_sessions where call_sid = 'CA01'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'session_status', 'initiated', 'call_status', 'calling', 'changed', true,
                             'slot_freed', false),
          'initiated: applied, the documented fields');
select is(public.apply_twilio_status('CA01', 'initiated', 0, null, null) -> 'changed', 'false'::jsonb,
          'initiated again (duplicate): changed false');
select is(public.apply_twilio_status('CA01', 'ringing', 1, null, null) ->> 'session_status', 'ringing', 'ringing: applied');
select is((select twilio_sequence_number from public.call_sessions where call_sid = 'CA01'), 1, 'sequence number recorded');
select is(public.apply_twilio_status('CA01', 'initiated', 0, null, null),
          jsonb_build_object('session_id', (select id from public.call_sessions where call_sid = 'CA01'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'session_status', 'ringing', 'call_status', 'calling', 'changed', false,
                             'slot_freed', false),
          'initiated after ringing (out of order): changed false, still ringing');
select is(public.apply_twilio_status('CA01', 'queued', 0, null, null) -> 'changed', 'false'::jsonb,
          'queued after ringing: changed false');
select is((select twilio_sequence_number from public.call_sessions where call_sid = 'CA01'), 1,
          'a stale event does not move the sequence number back');
select is((select answered_at from public.call_sessions where call_sid = 'CA01'), null, 'not answered yet');
select is(public.apply_twilio_status('CA01', 'in-progress', 2, 'human', null) -> 'changed', 'true'::jsonb, 'in-progress: applied');
select row_eq($$select status, answered_by, answered_at = now(), ended_at from public.call_sessions where call_sid = 'CA01'$$,
              row('in-progress'::text, 'human'::text, true, null::timestamptz),
              'in-progress sets answered_by and answered_at');
select is(public.apply_twilio_status('CA01', 'ringing', 1, null, null) -> 'changed', 'false'::jsonb,
          'ringing after in-progress: changed false');
select is(public.apply_twilio_status('CA01', 'completed', 3, 'human', 42),
          jsonb_build_object('session_id', (select id from public.call_sessions where call_sid = 'CA01'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
                             'session_status', 'completed', 'call_status', 'calling', 'changed', true,
                             'slot_freed', true),
          'completed by a human: session completed (its place is free), row left to the VAPI report');
select row_eq($$select status, duration_seconds, ended_at = now(), twilio_sequence_number from public.call_sessions where call_sid = 'CA01'$$,
              row('completed'::text, 42, true, 3), 'completed records duration, ended_at, sequence number');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0001'), 'calling', 'the row is still calling');

-- After a terminal status nothing moves ---------------------------------------------------------------
select is(public.apply_twilio_status('CA01', 'completed', 3, 'human', 42) -> 'changed', 'false'::jsonb, 'completed again: changed false');
select is(public.apply_twilio_status('CA01', 'busy', 4, null, 0) -> 'changed', 'false'::jsonb, 'busy after completed: changed false');
select is(public.apply_twilio_status('CA01', 'in-progress', 2, null, null) -> 'changed', 'false'::jsonb, 'in-progress after completed: changed false');
select row_eq($$select status, duration_seconds from public.call_sessions where call_sid = 'CA01'$$,
              row('completed'::text, 42), 'the completed session is unchanged');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0001'), 'calling', 'the row is unchanged');

-- Each unsuccessful terminal status is retried, last_error = the status (the schedule: 13_retries.sql) ------
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0002', 'CA02') is not null as d2 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0003', 'CA03') is not null as d3 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0004', 'CA04') is not null as d4 \gset
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0005', 'CA05') is not null as d5 \gset
select is(public.apply_twilio_status('CA02', 'busy', 2, null, 0) - 'session_id' - 'pending_call_id',
          '{"session_status": "busy", "call_status": "retry_pending", "changed": true, "slot_freed": true}'::jsonb,
          'busy: row retry_pending, the place is free');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0002'), 'retry_pending / busy', 'busy: last_error busy');
select is(pg_temp.session_status('CA02'), 'busy', 'busy: session busy');
select is(public.apply_twilio_status('CA03', 'no-answer', 2, null, 0) ->> 'call_status', 'retry_pending', 'no-answer: row retry_pending');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0003'), 'retry_pending / no-answer', 'no-answer: last_error no-answer');
select is(pg_temp.session_status('CA03'), 'no-answer', 'no-answer: session no-answer');
select is(public.apply_twilio_status('CA04', 'failed', 1, null, null) ->> 'call_status', 'retry_pending', 'failed: row retry_pending');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0004'), 'retry_pending / failed', 'failed: last_error failed');
select is(pg_temp.session_status('CA04'), 'failed', 'failed: session failed');
select is(public.apply_twilio_status('CA05', 'canceled', 1, null, null) ->> 'call_status', 'retry_pending', 'canceled: row retry_pending');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0005'), 'retry_pending / canceled', 'canceled: last_error canceled');
select is(pg_temp.session_status('CA05'), 'canceled', 'canceled: session canceled');
select ok((select bool_and(ended_at = now()) from public.call_sessions where call_sid in ('CA02', 'CA03', 'CA04', 'CA05')),
          'terminal statuses set ended_at');
-- a late, lower status for a failed call changes nothing
select is(public.apply_twilio_status('CA02', 'ringing', 1, null, null) -> 'changed', 'false'::jsonb, 'ringing after busy: changed false');
select is(public.apply_twilio_status('CA02', 'completed', 3, 'human', 10) - 'session_id' - 'pending_call_id',
          '{"session_status": "busy", "call_status": "retry_pending", "changed": false, "slot_freed": false}'::jsonb,
          'completed after busy: changed false, no place freed twice');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0002'), 'retry_pending / busy', 'the busy row stays retry_pending / busy');

-- A machine (or fax) answered: Twilio's completed still leaves the row to VAPI's report --------------------
-- Only VAPI's end-of-call report decides a completed call, whoever answered (so Twilio's and VAPI's news end
-- the row the same whichever comes first: 07_call_report.sql, 13_retries.sql). The session records AnsweredBy.
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0006', 'CA06') is not null as d6 \gset
select is(public.apply_twilio_status('CA06', 'completed', 3, 'machine_end_beep', 20),
          jsonb_build_object('session_id', (select id from public.call_sessions where call_sid = 'CA06'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0006',
                             'session_status', 'completed', 'call_status', 'calling', 'changed', true,
                             'slot_freed', true),
          'completed + machine_end_beep: session completed (its place is free), row left to the VAPI report');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0006'), 'calling', 'the row is still calling, no last_error');
select row_eq($$select status, answered_by, duration_seconds, ended_at = now() from public.call_sessions where call_sid = 'CA06'$$,
              row('completed'::text, 'machine_end_beep'::text, 20, true), 'the session records AnsweredBy, duration, ended_at');
-- then VAPI's report says voicemail (outcome not_reached): that retries the row
select is(public.apply_call_report('00000000-0000-0000-0000-0000000a0006', null, 'not_reached', 'voicemail',
                                   null, null, null, null, null, null) ->> 'call_status', 'retry_pending',
          'then VAPI''s report voicemail (not_reached): row retry_pending');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0006'), 'retry_pending / voicemail',
          'last_error voicemail (VAPI''s ended reason)');
-- AnsweredBy reported on in-progress, absent on completed
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0007', 'CA07') is not null as d7 \gset
select is(public.apply_twilio_status('CA07', 'in-progress', 2, 'machine_start', null) ->> 'call_status', 'calling',
          'in-progress + machine_start: row still calling');
select is(public.apply_twilio_status('CA07', 'completed', 3, null, 15) ->> 'call_status', 'calling',
          'then completed without AnsweredBy: row still calling');
select row_eq($$select status, answered_by from public.call_sessions where call_sid = 'CA07'$$,
              row('completed'::text, 'machine_start'::text), 'the session keeps the AnsweredBy of in-progress');
-- every AnsweredBy value
select bool_and(test_fixtures.dialled(('00000000-0000-0000-0000-0000000b000' || n)::uuid, 'CAM' || n) is not null) as dm
  from generate_series(1, 6) as n \gset
select is(array(select public.apply_twilio_status('CAM' || n, 'completed', 3, v, 5) ->> 'call_status'
                  from unnest(array['machine_start', 'machine_end_silence', 'machine_end_other', 'fax', 'human', 'unknown'])
                       with ordinality as t(v, n) order by n),
          array_fill('calling'::text, array[6]),
          'completed + machine_start, machine_end_silence, machine_end_other, fax, human or unknown: row still calling');
select is(array(select answered_by from public.call_sessions where call_sid like 'CAM_' order by call_sid),
          array['machine_start', 'machine_end_silence', 'machine_end_other', 'fax', 'human', 'unknown'],
          'each session records its AnsweredBy');
select is((select count(*)::int from public.pending_calls
            where id::text like '00000000-0000-0000-0000-0000000b000_' and call_status = 'calling' and last_error is null),
          6, 'no row has a last_error');

-- Skipping steps is fine (callbacks may be lost or not subscribed) -----------------------------------------
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0009', 'CA09') is not null as d9 \gset
select is(public.apply_twilio_status('CA09', 'in-progress', 2, null, null) -> 'changed', 'true'::jsonb, 'queued -> in-progress directly');
select is(public.apply_twilio_status('CA09', 'ringing', 1, null, null) -> 'changed', 'false'::jsonb, 'the late ringing is ignored');

-- A terminal row is never left ----------------------------------------------------------------------
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0010', 'CA10') is not null as d10 \gset
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0010';
select is(public.apply_twilio_status('CA10', 'busy', 2, null, 0),
          jsonb_build_object('session_id', (select id from public.call_sessions where call_sid = 'CA10'),
                             'pending_call_id', '00000000-0000-0000-0000-0000000a0010',
                             'session_status', 'busy', 'call_status', 'cancelled', 'changed', true,
                             'slot_freed', true),
          'busy for a cancelled row: the session records it, the row stays cancelled');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0010'), 'cancelled', 'no last_error on the cancelled row');

-- An old attempt's late status does not end the row of a newer attempt ---------------------------------
select test_fixtures.dialled('00000000-0000-0000-0000-0000000a0011', 'CA11') is not null as d11 \gset
update public.pending_calls set attempts = 2 where id = '00000000-0000-0000-0000-0000000a0011';
insert into public.call_sessions (pending_call_id, attempt, call_sid, status)
values ('00000000-0000-0000-0000-0000000a0011', 2, 'CA11b', 'ringing');
select is(public.apply_twilio_status('CA11', 'no-answer', 5, null, 0) ->> 'call_status', 'calling',
          'no-answer of attempt 1 leaves the row of attempt 2 calling');
select is(pg_temp.session_status('CA11'), 'no-answer', 'attempt 1''s session records it');

-- Named arguments, optional ones omitted (as PostgREST calls it)
select is(public.apply_twilio_status(p_call_sid := 'CA09', p_call_status := 'completed') -> 'changed', 'true'::jsonb,
          'sequence number, AnsweredBy and duration may be omitted');

-- A callback that beats the dial result (Twilio calls back before its 201 reaches us) ---------------
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0020', 'Race', '+15550001020');
select (public.claim_pending_call('00000000-0000-0000-0000-0000000a0020') ->> 'session_id') as race_session \gset
select is(public.apply_twilio_status('CA20', 'initiated', 0, null, null), null,
          'by CallSid alone the early callback is unknown');
select is(public.apply_twilio_status('CA20', 'initiated', 0, null, null, :'race_session') ->> 'session_status', 'initiated',
          'with the session id from the callback URL it is applied');
select is((select call_sid from public.call_sessions where id = :'race_session'), 'CA20', 'and the CallSid is stored');
select is(pg_temp.row_status('00000000-0000-0000-0000-0000000a0020'), 'calling', 'the row is calling');
select is(public.apply_twilio_status('CA21', 'ringing', 1, null, null, :'race_session'), null,
          'another CallSid cannot take over a session that has one');
select is(public.record_dial_result(:'race_session', 'CA20', null, null) -> 'changed', 'true'::jsonb,
          'the late dial result is still recorded');
select is((select status || ' ' || (dialed_at is not null)::text from public.call_sessions where id = :'race_session'),
          'initiated true', 'without moving the session back to queued');
select is(public.record_dial_result(:'race_session', 'CA20', null, null) -> 'changed', 'false'::jsonb,
          'a duplicate dial result changes nothing');
select is(public.record_dial_result(:'race_session', 'CA99', null, null) -> 'changed', 'false'::jsonb,
          'a dial result with another CallSid changes nothing');

select * from finish();
rollback;
