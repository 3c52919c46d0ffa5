-- Tables, columns, defaults, constraints, indexes, housekeeping triggers.
begin;
select plan(100);

-- Shape -------------------------------------------------------------------------------------------
select tables_are('public', array['pending_calls', 'call_sessions', 'call_classifications', 'batches',
                                   'classification_runs', 'operator_actions',
                                   -- (SMS: sql/schema/65_sms.sql, tested in 23_sms.sql and 24_sms_opt_out.sql)
                                   'sms_batches', 'sms_messages', 'sms_opt_outs', 'sms_replies',
                                   -- (do-not-call: sql/schema/62_suppression.sql, tested in 25_dnc_expiry.sql)
                                   'suppression_list',
                                   -- (the circuit breaker: sql/schema/35_breaker.sql, tested in 29_breaker.sql)
                                   'breaker_transitions', 'provider_errors_daily']);

select columns_are('public', 'pending_calls', array[
  'id', 'exam_id', 'employee_name', 'employee_dob', 'client_name', 'clinic_name', 'phone',
  'clinic_timezone', 'appointment_time', 'procedures', 'instructions', 'variables', 'call_status',
  'attempts', 'max_attempts', 'next_attempt_at', 'classification_id', 'last_error', 'ended_reason',
  'summary', 'success_evaluation', 'structured_data', 'transcript', 'duration_seconds', 'cost',
  'created_at', 'updated_at',
  -- (batches: sql/schema/60_batches.sql)
  'batch_id', 'prompt', 'first_message', 'window_days', 'window_start', 'window_end', 'redial_of', 'attempt_offset',
  -- (operators: sql/schema/87_operator_actions.sql)
  'archived_at',
  -- (expiry: 25_dnc_expiry.sql)
  'expires_at']);
select columns_are('public', 'call_sessions', array[
  'id', 'pending_call_id', 'attempt', 'call_sid', 'status', 'twilio_sequence_number', 'answered_by',
  'classification_id', 'classification_type', 'vapi_call_id', 'vapi_status', 'error', 'error_code',
  'created_at', 'dialed_at', 'answered_at', 'ended_at', 'report_received_at', 'duration_seconds', 'cost',
  'ended_reason', 'updated_at', 'reconciled_at', 'twilio_price', 'twilio_price_unit', 'twilio_price_checked_at']);
select columns_are('public', 'call_classifications', array[
  'id', 'phone_number', 'classification_type', 'ivr_actions', 'confidence', 'classification_expires_at',
  'is_active', 'created_at', 'updated_at',
  -- (learning: sql/schema/47_learning.sql)
  'evidence', 'invalidated_at', 'invalidated_reason']);

select col_type_is('public', 'pending_calls', 'procedures', 'text[]', 'procedures is text[]');
select col_type_is('public', 'pending_calls', 'instructions', 'jsonb', 'instructions is jsonb');
select col_type_is('public', 'pending_calls', 'appointment_time', 'timestamp with time zone', 'appointment_time is timestamptz');
select col_type_is('public', 'call_classifications', 'ivr_actions', 'jsonb', 'ivr_actions is jsonb');
select fk_ok('public', 'call_sessions', 'pending_call_id', 'public', 'pending_calls', 'id');
select fk_ok('public', 'pending_calls', 'classification_id', 'public', 'call_classifications', 'id');
select fk_ok('public', 'call_sessions', 'classification_id', 'public', 'call_classifications', 'id');

-- Indexes for every lookup the functions make
select has_index('public', 'call_sessions', 'call_sessions_pending_call_attempt_key', array['pending_call_id', 'attempt']);
select has_index('public', 'call_sessions', 'call_sessions_call_sid_key', array['call_sid']);
select has_index('public', 'call_classifications', 'call_classifications_one_active_per_phone', array['phone_number']);
select has_index('public', 'pending_calls', 'pending_calls_status_next_attempt_idx', array['call_status', 'next_attempt_at']);
select index_is_unique('public', 'call_classifications', 'call_classifications_one_active_per_phone');
-- (reliability: claim_next_due, the capacity count, the sweep)
select has_index('public', 'pending_calls', 'pending_calls_due_idx', array['next_attempt_at', 'created_at']);
select has_index('public', 'call_sessions', 'call_sessions_live_idx', array['status', 'updated_at']);
select has_index('public', 'call_sessions', 'call_sessions_report_missing_idx', array['ended_at']);

-- Defaults ----------------------------------------------------------------------------------------
insert into public.pending_calls (id, employee_name, phone)
values ('00000000-0000-0000-0000-00000000a001', 'Ada Lovelace', '+15550001001');

select row_eq(
  $$select call_status, attempts, max_attempts, clinic_timezone, procedures, instructions, variables,
           next_attempt_at = now(), created_at = now(), updated_at = now(), classification_id
      from public.pending_calls where id = '00000000-0000-0000-0000-00000000a001'$$,
  row('pending'::text, 0, 3, 'America/New_York'::text, '{}'::text[], '{}'::jsonb, '{}'::jsonb,
      true, true, true, null::uuid),
  'pending_calls defaults: pending, 0/3 attempts, New York, empty procedures/instructions/variables, due now');

insert into public.call_sessions (id, pending_call_id, attempt)
values ('00000000-0000-0000-0000-00000000b001', '00000000-0000-0000-0000-00000000a001', 1);
select is((select status from public.call_sessions where id = '00000000-0000-0000-0000-00000000b001'),
          'dialing', 'call_sessions.status defaults to dialing');

insert into public.call_classifications (id, phone_number, classification_type)
values ('00000000-0000-0000-0000-00000000c001', '+15550001001', 'human');
select row_eq(
  $$select ivr_actions, is_active, classification_expires_at = now() + interval '30 days'
      from public.call_classifications where id = '00000000-0000-0000-0000-00000000c001'$$,
  row('[]'::jsonb, true, true),
  'call_classifications defaults: no actions, active, expires in 30 days');

-- pending_calls constraints -------------------------------------------------------------------------
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '5550001001')$$,
  '23514', null, 'phone without + is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+05550001001')$$,
  '23514', null, 'phone with country code 0 is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+155500')$$,
  '23514', null, 'phone shorter than 7 digits is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+1555000100123456')$$,
  '23514', null, 'phone longer than 15 digits is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+1 555 000 1001')$$,
  '23514', null, 'phone with spaces is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+1555000100a')$$,
  '23514', null, 'phone with letters is rejected');
select lives_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+1555000')$$,
  'a 7-digit E.164 phone is accepted');
select lives_ok($$insert into public.pending_calls (employee_name, phone) values ('X', '+442071838750')$$,
  'a UK E.164 phone is accepted');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('X', null)$$,
  '23502', null, 'phone is required');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values (null, '+15550001001')$$,
  '23502', null, 'employee_name is required');

select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', 'Mars/Olympus_Mons')$$,
  '23514', null, 'unknown time zone is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', 'PST')$$,
  '23514', null, 'a time-zone abbreviation is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', 'america/new_york')$$,
  '23514', null, 'a wrongly spelled zone is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', 'XYZ+5')$$,
  '23514', null, 'a POSIX TZ rule is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', '')$$,
  '23514', null, 'an empty time zone is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', null)$$,
  '23502', null, 'clinic_timezone is required');
set local timezone = 'Asia/Tokyo';
select is(
  array(select z from unnest(array['America/Chicago', 'Europe/Berlin', 'UTC', 'Etc/GMT+5', 'US/Eastern',
                                   'EST5EDT', 'Asia/Kolkata', 'America/Argentina/Buenos_Aires']) as z
         where outcall_private.is_valid_timezone(z)),
  array['America/Chicago', 'Europe/Berlin', 'UTC', 'Etc/GMT+5', 'US/Eastern', 'EST5EDT', 'Asia/Kolkata',
        'America/Argentina/Buenos_Aires'],
  'IANA zone names are valid');
select is(
  (select count(*)::int from pg_timezone_names where not outcall_private.is_valid_timezone(name)),
  0, 'every zone of pg_timezone_names is valid');
select is(current_setting('TimeZone'), 'Asia/Tokyo',
  'validating zones does not change the session time zone');
select lives_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('X', '+15550001001', 'America/Los_Angeles')$$,
  'a valid zone is accepted');

select throws_ok($$insert into public.pending_calls (employee_name, phone, call_status) values ('X', '+15550001001', 'done')$$,
  '23514', null, 'unknown call_status is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, call_status) values ('X', '+15550001001', null)$$,
  '23502', null, 'call_status is required');
select lives_ok($$insert into public.pending_calls (employee_name, phone, call_status)
                  select 'X', '+15550001001', s
                    from unnest(array['pending', 'dispatching', 'calling', 'completed', 'retry_pending', 'failed', 'cancelled']) as s$$,
  'every documented call_status is accepted');
select throws_ok($$insert into public.pending_calls (employee_name, phone, attempts) values ('X', '+15550001001', -1)$$,
  '23514', null, 'negative attempts are rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, max_attempts) values ('X', '+15550001001', 0)$$,
  '23514', null, 'max_attempts 0 is rejected');
select throws_ok($$insert into public.pending_calls (employee_name, phone, max_attempts) values ('X', '+15550001001', 21)$$,
  '23514', null, 'max_attempts 21 is rejected');
select lives_ok($$insert into public.pending_calls (employee_name, phone, max_attempts) values ('X', '+15550001001', 20)$$,
  'max_attempts 20 is accepted');
select throws_ok($$insert into public.pending_calls (employee_name, phone, instructions) values ('X', '+15550001001', '[]')$$,
  '23514', null, 'instructions must be an object');
select throws_ok($$insert into public.pending_calls (employee_name, phone, variables) values ('X', '+15550001001', '"x"')$$,
  '23514', null, 'variables must be an object');
select throws_ok($$insert into public.pending_calls (employee_name, phone, instructions) values ('X', '+15550001001', null)$$,
  '23502', null, 'instructions is required');
select throws_ok($$insert into public.pending_calls (employee_name, phone, classification_id) values ('X', '+15550001001', '00000000-0000-0000-0000-0000000000ff')$$,
  '23503', null, 'classification_id must reference a classification');

-- call_sessions constraints ---------------------------------------------------------------------------
select throws_ok($$insert into public.call_sessions (pending_call_id, attempt, status) values ('00000000-0000-0000-0000-00000000a001', 2, 'answered')$$,
  '23514', null, 'unknown session status is rejected');
select lives_ok($$insert into public.call_sessions (pending_call_id, attempt, status)
                  select '00000000-0000-0000-0000-00000000a001', 10 + n, s
                    from unnest(array['dialing', 'queued', 'initiated', 'ringing', 'in-progress', 'completed',
                                      'busy', 'no-answer', 'failed', 'canceled', 'dial_failed'])
                         with ordinality as t(s, n)$$,
  'every documented session status is accepted');
select throws_ok($$insert into public.call_sessions (pending_call_id, attempt) values ('00000000-0000-0000-0000-00000000a001', 1)$$,
  '23505', null, 'one session per (pending_call_id, attempt)');
select throws_ok($$insert into public.call_sessions (pending_call_id, attempt) values ('00000000-0000-0000-0000-00000000a001', 0)$$,
  '23514', null, 'attempt starts at 1');
select throws_ok($$insert into public.call_sessions (pending_call_id, attempt) values ('00000000-0000-0000-0000-0000000000ff', 1)$$,
  '23503', null, 'a session needs its pending call');
update public.call_sessions set call_sid = 'CA_dup' where id = '00000000-0000-0000-0000-00000000b001';
select throws_ok($$insert into public.call_sessions (pending_call_id, attempt, call_sid) values ('00000000-0000-0000-0000-00000000a001', 2, 'CA_dup')$$,
  '23505', null, 'call_sid is unique');

-- call_classifications constraints ---------------------------------------------------------------------
select throws_ok($$insert into public.call_classifications (phone_number, classification_type) values ('15550002002', 'human')$$,
  '23514', null, 'classification phone must be E.164');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type) values ('+15550002002', 'robot')$$,
  '23514', null, 'unknown classification_type is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, confidence) values ('+15550002002', 'human', 1.5)$$,
  '23514', null, 'confidence above 1 is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, confidence) values ('+15550002002', 'human', -0.1)$$,
  '23514', null, 'negative confidence is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '{"action": "dtmf", "value": "1", "timing_ms": 0}')$$,
  '23514', null, 'ivr_actions must be an array');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "press", "value": "1", "timing_ms": 0}]')$$,
  '23514', null, 'unknown action is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "12a", "timing_ms": 0}]')$$,
  '23514', null, 'dtmf value outside [0-9*#w] is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "", "timing_ms": 0}]')$$,
  '23514', null, 'empty dtmf value is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": 1, "timing_ms": 0}]')$$,
  '23514', null, 'dtmf value must be a string');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "speech", "timing_ms": 0}]')$$,
  '23514', null, 'speech needs a value');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": -1}]')$$,
  '23514', null, 'negative timing_ms is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": 1.5}]')$$,
  '23514', null, 'fractional timing_ms is rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": "100"}]')$$,
  '23514', null, 'timing_ms must be a number');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "1"}]')$$,
  '23514', null, 'timing_ms is required');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": 0, "note": "x"}]')$$,
  '23514', null, 'unknown keys are rejected');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '["1"]')$$,
  '23514', null, 'an action must be an object');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', null)$$,
  '23502', null, 'ivr_actions is required');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'human', '[{"action": "dtmf", "value": "1", "timing_ms": 0}]')$$,
  '23514', null, 'a human line has no IVR actions');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[]')$$,
  '23514', null, 'an ivr_only line has IVR actions');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_then_human', '[]')$$,
  '23514', null, 'an ivr_then_human line has IVR actions');
select lives_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions, confidence) values ('+15550002002', 'ivr_then_human',
  '[{"action": "wait", "timing_ms": 1500}, {"action": "dtmf", "value": "1w2#*", "timing_ms": 2000},
    {"action": "speech", "value": "front desk", "timing_ms": 0}, {"action": "wait", "value": null, "timing_ms": 500}]', 0.9)$$,
  'valid dtmf/speech/wait actions are accepted');
select is(outcall_private.ivr_actions_valid('[]'), true, 'an empty action list is well-formed');
select is(outcall_private.ivr_actions_valid(null), false, 'null actions are not well-formed');
select is(outcall_private.ivr_actions_valid('[{"action": "speech", "value": "front\ndesk", "timing_ms": 0}]'), false,
  'speech with a line break (a control character) is not well-formed');
select is(outcall_private.ivr_actions_valid('[{"action": "speech", "value": "bell\u0007", "timing_ms": 0}]'), false,
  'speech with a C0 control character is not well-formed');
select is(outcall_private.ivr_actions_valid('[{"action": "speech", "value": "next\u0085line", "timing_ms": 0}]'), false,
  'speech with a C1 control character is not well-formed');
select is(outcall_private.ivr_actions_valid('[{"action": "speech", "value": "rendez-vous, s''il vous plaît", "timing_ms": 0}]'), true,
  'speech with accents and punctuation is well-formed');

select throws_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "2", "timing_ms": 0}]')$$,
  '23505', null, 'at most one active classification per phone');
select lives_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions, is_active) values ('+15550002002', 'ivr_only', '[{"action": "dtmf", "value": "2", "timing_ms": 0}]', false)$$,
  'inactive classifications of the same phone are allowed');
select lives_ok($$insert into public.call_classifications (phone_number, classification_type, is_active) values ('+15550002002', 'human', false)$$,
  'several inactive classifications of the same phone are allowed');

-- updated_at trigger -----------------------------------------------------------------------------
update public.pending_calls set updated_at = '2000-01-01' where id = '00000000-0000-0000-0000-00000000a001';
select is((select updated_at from public.pending_calls where id = '00000000-0000-0000-0000-00000000a001'),
          now(), 'pending_calls.updated_at is maintained on every update');
update public.call_sessions set updated_at = '2000-01-01' where id = '00000000-0000-0000-0000-00000000b001';
select is((select updated_at from public.call_sessions where id = '00000000-0000-0000-0000-00000000b001'),
          now(), 'call_sessions.updated_at is maintained');
update public.call_classifications set updated_at = '2000-01-01' where id = '00000000-0000-0000-0000-00000000c001';
select is((select updated_at from public.call_classifications where id = '00000000-0000-0000-0000-00000000c001'),
          now(), 'call_classifications.updated_at is maintained');

-- Terminal states are never left ---------------------------------------------------------------------
insert into public.pending_calls (id, employee_name, phone, call_status) values
  ('00000000-0000-0000-0000-00000000a002', 'T', '+15550001001', 'completed'),
  ('00000000-0000-0000-0000-00000000a003', 'T', '+15550001001', 'failed'),
  ('00000000-0000-0000-0000-00000000a004', 'T', '+15550001001', 'cancelled');
select throws_ok($$update public.pending_calls set call_status = 'pending' where id = '00000000-0000-0000-0000-00000000a002'$$,
  '23514', null, 'completed is never left');
select throws_ok($$update public.pending_calls set call_status = 'retry_pending' where id = '00000000-0000-0000-0000-00000000a003'$$,
  '23514', null, 'failed is never left');
select throws_ok($$update public.pending_calls set call_status = 'completed' where id = '00000000-0000-0000-0000-00000000a004'$$,
  '23514', null, 'cancelled is never left');
select lives_ok($$update public.pending_calls set call_status = 'failed', transcript = 'x' where id = '00000000-0000-0000-0000-00000000a003'$$,
  'a terminal row can still be updated without leaving its status');
select lives_ok($$update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-00000000a001'$$,
  'a non-terminal row can become terminal');
insert into public.call_sessions (id, pending_call_id, attempt, status)
values ('00000000-0000-0000-0000-00000000b002', '00000000-0000-0000-0000-00000000a002', 1, 'busy');
select throws_ok($$update public.call_sessions set status = 'ringing' where id = '00000000-0000-0000-0000-00000000b002'$$,
  '23514', null, 'a terminal session status is never left');

-- Deleting a pending call deletes its sessions --------------------------------------------------------
delete from public.pending_calls where id = '00000000-0000-0000-0000-00000000a002';
select is((select count(*)::int from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-00000000a002'),
          0, 'sessions are deleted with their pending call');
-- Deleting a classification keeps the calls that used it
update public.pending_calls set classification_id = '00000000-0000-0000-0000-00000000c001'
 where id = '00000000-0000-0000-0000-00000000a003';
delete from public.call_classifications where id = '00000000-0000-0000-0000-00000000c001';
select is((select classification_id from public.pending_calls where id = '00000000-0000-0000-0000-00000000a003'),
          null, 'deleting a classification clears the reference');

select * from finish();
rollback;
