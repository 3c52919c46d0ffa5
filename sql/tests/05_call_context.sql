-- call_context(p_pending_call_id uuid): what a call needs and nothing else
begin;
select plan(11);

select has_function('public', 'call_context', array['uuid']);
select function_returns('public', 'call_context', array['uuid'], 'jsonb');
select volatility_is('public', 'call_context', array['uuid'], 'stable', 'call_context is read-only (stable)');

set local timezone = 'UTC';
insert into public.pending_calls (id, exam_id, employee_name, employee_dob, client_name, clinic_name, phone,
  clinic_timezone, appointment_time, procedures, instructions, variables, call_status, last_error, transcript,
  summary, cost)
values ('00000000-0000-0000-0000-0000000a0001', 'EX-42', 'Ada Lovelace', '1990-12-10', 'Acme Corp', 'Downtown Clinic',
  '+15550001001', 'America/Chicago', '2026-12-01 15:30:00+00', array['Audiogram', 'Drug screen'],
  '{"bring_id": true, "notes": "fasting"}', '{"agent_name": "Sam"}', 'calling', 'earlier', 'secret transcript',
  'secret summary', 1.25);
insert into public.pending_calls (id, employee_name, phone)
values ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002');

select is(public.call_context('00000000-0000-0000-0000-0000000a0001'),
  '{"pending_call_id": "00000000-0000-0000-0000-0000000a0001", "exam_id": "EX-42",
    "employee_name": "Ada Lovelace", "employee_dob": "1990-12-10", "client_name": "Acme Corp",
    "clinic_name": "Downtown Clinic", "clinic_timezone": "America/Chicago",
    "appointment_time": "2026-12-01T15:30:00+00:00", "appointment_local": "Tuesday, December 1, 2026 at 9:30 AM",
    "procedures": ["Audiogram", "Drug screen"],
    "instructions": {"bring_id": true, "notes": "fasting"}, "variables": {"agent_name": "Sam"},
    "prompt": null, "first_message": null}'::jsonb,
  'the context of a full row');
select is(array(select jsonb_object_keys(public.call_context('00000000-0000-0000-0000-0000000a0001')) order by 1),
          array['appointment_local', 'appointment_time', 'client_name', 'clinic_name', 'clinic_timezone', 'employee_dob', 'employee_name',
                'exam_id', 'first_message', 'instructions', 'pending_call_id', 'procedures', 'prompt', 'variables'],
          'exactly the documented fields');
select ok(not (public.call_context('00000000-0000-0000-0000-0000000a0001') ?| array['phone', 'call_status', 'last_error',
            'transcript', 'summary', 'cost', 'attempts', 'id']),
          'no phone, status, results or internals');
select is(public.call_context('00000000-0000-0000-0000-0000000a0002'),
  '{"pending_call_id": "00000000-0000-0000-0000-0000000a0002", "exam_id": null, "employee_name": "Bob",
    "employee_dob": null, "client_name": null, "clinic_name": null, "clinic_timezone": "America/New_York",
    "appointment_time": null, "appointment_local": null, "procedures": [], "instructions": {}, "variables": {},
    "prompt": null, "first_message": null}'::jsonb,
  'a minimal row: nulls and defaults, every key present');
select is(public.call_context('00000000-0000-0000-0000-0000000000ff'), null, 'unknown id: null');
select is(public.call_context(null), null, 'null id: null');

-- read-only: nothing is written
select ctid::text as ctid_before from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001' \gset
select is(public.call_context('00000000-0000-0000-0000-0000000a0001') ->> 'employee_name', 'Ada Lovelace', 'context read');
select is((select ctid::text from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'),
          :'ctid_before', 'reading the context writes nothing (same row version)');

select * from finish();
rollback;
