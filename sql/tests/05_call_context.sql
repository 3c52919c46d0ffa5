-- call_context(p_pending_call_id uuid, p_vapi_call_id text): what a call needs and nothing else, only for the
-- VAPI call of the row's live attempt (the first to ask is bound to the session).
begin;
select plan(25);

select has_function('public', 'call_context', array['uuid', 'text']);
select function_returns('public', 'call_context', array['uuid', 'text'], 'jsonb');
select hasnt_function('public', 'call_context', array['uuid'], 'no context by id alone');

set local timezone = 'UTC';
select test_fixtures.open_policy();
select test_fixtures.free_send_slots();
insert into public.pending_calls (id, exam_id, employee_name, employee_dob, client_name, clinic_name, phone,
  clinic_timezone, appointment_time, procedures, instructions, variables, last_error, transcript, summary, cost)
values ('00000000-0000-0000-0000-0000000a0001', 'EX-42', 'Ada Lovelace', '1990-12-10', 'Acme Corp', 'Downtown Clinic',
  '+15550001001', 'America/Chicago', '2026-12-01 15:30:00+00', array['Audiogram', 'Drug screen'],
  '{"bring_id": true, "notes": "fasting"}', '{"agent_name": "Sam"}', 'earlier', 'secret transcript',
  'secret summary', 1.25);
insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002'),
  ('00000000-0000-0000-0000-0000000a0003', 'Cleo', '+15550001003'),
  ('00000000-0000-0000-0000-0000000a0004', 'Dov', '+15550001004');
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0001', 'CA01') as s1 \gset
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0002', 'CA02') as s2 \gset

-- a live call: its context, bound to the VAPI call that asked first
select is(public.call_context('00000000-0000-0000-0000-0000000a0001', 'vapi-1'),
  '{"pending_call_id": "00000000-0000-0000-0000-0000000a0001", "exam_id": "EX-42",
    "employee_name": "Ada Lovelace", "employee_dob": "1990-12-10", "client_name": "Acme Corp",
    "clinic_name": "Downtown Clinic", "clinic_timezone": "America/Chicago",
    "appointment_time": "2026-12-01T15:30:00+00:00", "appointment_local": "Tuesday, December 1, 2026 at 9:30 AM",
    "procedures": ["Audiogram", "Drug screen"],
    "instructions": {"bring_id": true, "notes": "fasting"}, "variables": {"agent_name": "Sam"},
    "prompt": null, "first_message": null}'::jsonb,
  'the context of a live call');
select is((select vapi_call_id from public.call_sessions where id = :'s1'), 'vapi-1',
          'the first VAPI call to ask is bound to the session');
select is(array(select jsonb_object_keys(public.call_context('00000000-0000-0000-0000-0000000a0001', 'vapi-1')) order by 1),
          array['appointment_local', 'appointment_time', 'client_name', 'clinic_name', 'clinic_timezone', 'employee_dob', 'employee_name',
                'exam_id', 'first_message', 'instructions', 'pending_call_id', 'procedures', 'prompt', 'variables'],
          'exactly the documented fields');
select ok(not (public.call_context('00000000-0000-0000-0000-0000000a0001', 'vapi-1') ?| array['phone', 'call_status', 'last_error',
            'transcript', 'summary', 'cost', 'attempts', 'id']),
          'no phone, status, results or internals');
select is(public.call_context('00000000-0000-0000-0000-0000000a0001', 'vapi-2'), null, 'another VAPI call: null');
select is((select vapi_call_id from public.call_sessions where id = :'s1'), 'vapi-1', 'and the binding stays');
select is(public.call_context('00000000-0000-0000-0000-0000000a0001', null), null, 'no VAPI call id: null');
select is(public.call_context('00000000-0000-0000-0000-0000000a0001', '  '), null, 'a blank VAPI call id: null');
select is(public.call_context('00000000-0000-0000-0000-0000000a0002', 'vapi-b'),
  '{"pending_call_id": "00000000-0000-0000-0000-0000000a0002", "exam_id": null, "employee_name": "Bob",
    "employee_dob": null, "client_name": null, "clinic_name": null, "clinic_timezone": "America/New_York",
    "appointment_time": null, "appointment_local": null, "procedures": [], "instructions": {}, "variables": {},
    "prompt": null, "first_message": null}'::jsonb,
  'a minimal row: nulls and defaults, every key present');
select is(public.call_context('00000000-0000-0000-0000-0000000a0002', 'vapi-1'), null,
          'a VAPI call bound to another row gets nothing of this one');

-- not live: never dialled, unknown, finished, an ended session
select is(public.call_context('00000000-0000-0000-0000-0000000a0003', 'vapi-3'), null, 'a row never dialled: null');
select is((select count(*)::int from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0003'), 0,
          'and nothing is bound or created');
select is(public.call_context('00000000-0000-0000-0000-0000000000ff', 'vapi-1'), null, 'unknown id: null');
select is(public.call_context(null, 'vapi-1'), null, 'null id: null');
select is(public.apply_call_report('00000000-0000-0000-0000-0000000a0001', 'vapi-1', 'completed') ->> 'call_status', 'completed',
          'the call ends');
select is(public.call_context('00000000-0000-0000-0000-0000000a0001', 'vapi-1'), null, 'a finished row: null, even to its own call');
select is(public.apply_twilio_status('CA02', 'busy', 9, null, 0) ->> 'call_status', 'retry_pending', 'Bob''s line is busy');
select is(public.call_context('00000000-0000-0000-0000-0000000a0002', 'vapi-b'), null, 'an ended attempt waiting for its retry: null');

-- the row still calling, but its call over at Twilio (VAPI's report not in yet): not live
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0005', 'Eli', '+15550001005');
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0005', 'CA05') as s5 \gset
select is(public.apply_twilio_status('CA05', 'completed', 9, 'human', 30) ->> 'call_status', 'calling',
          'Twilio''s call ends; the row waits for VAPI''s report');
select is((select status from public.call_sessions where id = :'s5'), 'completed', 'its session is no longer live');
select is(public.call_context('00000000-0000-0000-0000-0000000a0005', 'vapi-5'), null,
          'a row whose current call has ended: null, though the row is still calling');

-- the fields VAPI gets are a setting
select test_fixtures.dial('00000000-0000-0000-0000-0000000a0004', 'CA04') as s4 \gset
insert into outcall_private.settings (name, value) values ('vapi_context_fields', 'employee_name, clinic_name');
select is(public.call_context('00000000-0000-0000-0000-0000000a0004', 'vapi-4'),
          '{"pending_call_id": "00000000-0000-0000-0000-0000000a0004", "employee_name": "Dov", "clinic_name": null}'::jsonb,
          'settings vapi_context_fields narrows the context (pending_call_id always there)');

select * from finish();
rollback;
