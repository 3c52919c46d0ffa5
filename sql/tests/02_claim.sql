-- claim_pending_call(p_pending_call_id uuid)
begin;
select plan(49);

select has_function('public', 'claim_pending_call', array['uuid']);
select function_returns('public', 'claim_pending_call', array['uuid'], 'jsonb');

-- A row locked by another transaction is skipped, not waited for (FOR UPDATE SKIP LOCKED) ------------
-- (First thing: a claim holds the dispatch lock, outcall_private.rate_state, until its transaction ends, so
-- the other connection claims while this transaction has claimed nothing yet.)
select is(test_fixtures.connect('locker'), 'OK', 'a second connection (dblink) is open');
select is(dblink_exec('locker', $$insert into public.pending_calls (id, employee_name, phone, next_attempt_at)
                                  values ('00000000-0000-0000-0000-0000000a0100', 'Locked', '+15550001100',
                                          now() - interval '1 hour')$$),
          'INSERT 0 1', 'the other connection commits a pending row');
-- (due also by this transaction's older now())
select is((select next_attempt_at <= now() from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0100'),
          true, 'the committed row is visible here and due');
select is(dblink_exec('locker', 'begin'), 'BEGIN', 'the other connection opens a transaction');
select is((select id from dblink('locker', $$select id from public.pending_calls
                                             where id = '00000000-0000-0000-0000-0000000a0100' for update$$) as t(id uuid)),
          '00000000-0000-0000-0000-0000000a0100'::uuid, 'the other transaction locks the row');
set local lock_timeout = '2s';
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0100'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'a row locked by someone else: not_claimable, at once');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0100'),
          'pending', 'the locked row is untouched');
select is(dblink_exec('locker', 'rollback'), 'ROLLBACK', 'the other transaction releases the lock');
-- The other connection claims it in a transaction it rolls back, with the calling window open all week
select is(dblink_exec('locker', 'begin'), 'BEGIN', 'the other connection opens another transaction');
select is(dblink_exec('locker', $$update outcall_private.dispatch_policy
                                    set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '24:00'$$),
          'UPDATE 1', 'which opens the calling window all week');
select is((select j ->> 'attempt' from dblink('locker',
             $$select public.claim_pending_call('00000000-0000-0000-0000-0000000a0100')::text$$) as t(j jsonb)),
          '1', 'once released, the row is claimed (by the other connection)');
select is(dblink_exec('locker', 'rollback'), 'ROLLBACK', 'the other connection rolls back its claim and policy');
select is(dblink_exec('locker', $$delete from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0100'$$),
          'DELETE 1', 'the other connection cleans up');
select is(dblink_disconnect('locker'), 'OK', 'the second connection is closed');

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

-- Fixtures ---------------------------------------------------------------------------------------
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions, confidence) values
  ('00000000-0000-0000-0000-0000000c0001', '+15550001001', 'ivr_then_human',
   '[{"action": "dtmf", "value": "1", "timing_ms": 2000}, {"action": "speech", "value": "nurse", "timing_ms": 500}]', 0.8);
-- +15550001002: only an expired classification (still flagged active) and an inactive one
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions, classification_expires_at) values
  ('00000000-0000-0000-0000-0000000c0002', '+15550001002', 'ivr_only',
   '[{"action": "dtmf", "value": "2", "timing_ms": 0}]', now() - interval '1 second');
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions, is_active) values
  ('00000000-0000-0000-0000-0000000c0003', '+15550001002', 'ivr_only',
   '[{"action": "dtmf", "value": "3", "timing_ms": 0}]', false);
-- +15550001003: only an inactive, unexpired classification
insert into public.call_classifications (id, phone_number, classification_type, is_active) values
  ('00000000-0000-0000-0000-0000000c0004', '+15550001003', 'human', false);

insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0001', 'Ada', '+15550001001'),
  ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002'),
  ('00000000-0000-0000-0000-0000000a0003', 'Cy', '+15550001003'),
  ('00000000-0000-0000-0000-0000000a0004', 'Di', '+15550001004');
insert into public.pending_calls (id, employee_name, phone, next_attempt_at) values
  ('00000000-0000-0000-0000-0000000a0005', 'Ed', '+15550001005', now() + interval '1 minute');
insert into public.pending_calls (id, employee_name, phone, attempts, max_attempts) values
  ('00000000-0000-0000-0000-0000000a0006', 'Flo', '+15550001006', 3, 3);
insert into public.pending_calls (id, employee_name, phone, call_status) values
  ('00000000-0000-0000-0000-0000000a0007', 'Gus', '+15550001007', 'dispatching'),
  ('00000000-0000-0000-0000-0000000a0008', 'Hal', '+15550001008', 'calling'),
  ('00000000-0000-0000-0000-0000000a0009', 'Ivy', '+15550001009', 'completed'),
  ('00000000-0000-0000-0000-0000000a0010', 'Jo', '+15550001010', 'failed'),
  ('00000000-0000-0000-0000-0000000a0011', 'Kim', '+15550001011', 'cancelled');
insert into public.pending_calls (id, employee_name, phone, call_status, attempts, next_attempt_at) values
  ('00000000-0000-0000-0000-0000000a0012', 'Lu', '+15550001012', 'retry_pending', 1, now() - interval '1 minute');

-- Happy path, with the phone's classification ----------------------------------------------------
create temp table r as select public.claim_pending_call('00000000-0000-0000-0000-0000000a0001') as j;

select is((select array(select jsonb_object_keys(j) order by 1) from r),
          array['attempt', 'classification', 'listen', 'more_due', 'pending_call_id', 'phone', 'session_id'],
          'claim returns exactly the documented fields');
select is((select j - 'session_id' - 'listen' from r),
          jsonb_build_object(
            'pending_call_id', '00000000-0000-0000-0000-0000000a0001',
            'attempt', 1,
            'phone', '+15550001001',
            'more_due', true,
            'classification', jsonb_build_object(
              'id', '00000000-0000-0000-0000-0000000c0001',
              'classification_type', 'ivr_then_human',
              'ivr_actions', '[{"action": "dtmf", "value": "1", "timing_ms": 2000},
                               {"action": "speech", "value": "nurse", "timing_ms": 500}]'::jsonb)),
          'claim returns the call, attempt 1, more_due (other rows are due) and the active classification');
-- (listeners: sql/tests/19_learning.sql)
select is((select array[j -> 'listen' ->> 'purpose', (j -> 'listen' ->> 'run_id')::uuid::text]
             from r),
          array['verify', (select id::text from public.classification_runs
                            where session_id = (select (j ->> 'session_id')::uuid from r))],
          'and a verification listener: the replayed IVR is checked');
select is((select (j ->> 'session_id')::uuid from r),
          (select id from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0001'),
          'session_id is the new session');
select row_eq(
  $$select call_status, attempts, classification_id from public.pending_calls
     where id = '00000000-0000-0000-0000-0000000a0001'$$,
  row('dispatching'::text, 1, '00000000-0000-0000-0000-0000000c0001'::uuid),
  'the row is dispatching, attempts 1, classification recorded');
select row_eq(
  $$select attempt, status, classification_id, classification_type, call_sid from public.call_sessions
     where pending_call_id = '00000000-0000-0000-0000-0000000a0001'$$,
  row(1, 'dialing'::text, '00000000-0000-0000-0000-0000000c0001'::uuid, 'ivr_then_human'::text, null::text),
  'one dialing session, attempt 1, with the classification');

-- Claimed once only -------------------------------------------------------------------------------
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0001'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'a second claim is not_claimable');
select is((select count(*)::int from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0001'),
          1, 'a second claim creates no session');
select is((select attempts from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'),
          1, 'a second claim does not count an attempt');

-- Expired / inactive classifications are ignored --------------------------------------------------
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0002') -> 'classification', 'null'::jsonb,
          'an expired classification is ignored (classification: null)');
select is((select classification_id from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'),
          null, 'no classification recorded on the row');
select row_eq(
  $$select classification_id, classification_type from public.call_sessions
     where pending_call_id = '00000000-0000-0000-0000-0000000a0002'$$,
  row(null::uuid, null::text), 'no classification recorded on the session');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0003') -> 'classification', 'null'::jsonb,
          'an inactive classification is ignored');
select ok((select j ? 'classification' and j -> 'classification' = 'null'::jsonb
             from (select public.claim_pending_call('00000000-0000-0000-0000-0000000a0004') as j) as x),
          'a phone without classification gets "classification": not_claimable');

-- Not claimable -------------------------------------------------------------------------------------
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000000ff'), '{"claimed": false, "reason": "not_found"}'::jsonb, 'unknown id: not_found');
select is(public.claim_pending_call(null), '{"claimed": false, "reason": "not_found"}'::jsonb, 'null id: not_found');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0005'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'a row not yet due: not_claimable');
select row_eq($$select call_status, attempts from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0005'$$,
              row('pending'::text, 0), 'a row not yet due is left alone');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0006'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'a row out of attempts: not_claimable');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0006'),
          'pending', 'a row out of attempts is left alone');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0007'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'dispatching: not_claimable');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0008'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'calling: not_claimable');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0009'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'completed: not_claimable');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0010'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'failed: not_claimable');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0011'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'cancelled: not_claimable');
select is((select count(*)::int from public.call_sessions
            where pending_call_id in ('00000000-0000-0000-0000-0000000a0005', '00000000-0000-0000-0000-0000000a0006',
                                      '00000000-0000-0000-0000-0000000a0007', '00000000-0000-0000-0000-0000000a0008',
                                      '00000000-0000-0000-0000-0000000a0009', '00000000-0000-0000-0000-0000000a0010',
                                      '00000000-0000-0000-0000-0000000a0011')),
          0, 'no session is created for an unclaimable row');

-- A due retry is claimed as the next attempt --------------------------------------------------------
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0012') ->> 'attempt', '2',
          'a due retry_pending row is claimed as attempt 2');
select row_eq($$select call_status, attempts from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0012'$$,
              row('dispatching'::text, 2), 'the retry is dispatching with 2 attempts');
select is((select attempt from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0012'),
          2, 'the retry''s session is attempt 2');

-- Last attempt: attempts 2 of 3 is claimable once more, then not
update public.pending_calls set call_status = 'retry_pending', attempts = 2, max_attempts = 3
 where id = '00000000-0000-0000-0000-0000000a0005';
update public.pending_calls set next_attempt_at = now() where id = '00000000-0000-0000-0000-0000000a0005';
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0005') ->> 'attempt', '3', 'the last attempt is claimed');
update public.pending_calls set call_status = 'retry_pending' where id = '00000000-0000-0000-0000-0000000a0005';
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0005'), '{"claimed": false, "reason": "not_claimable"}'::jsonb, 'no attempt beyond max_attempts');

-- more_due: whether other pending/retry_pending rows are due (the Worker then keeps dialling) -----------------
update public.pending_calls set next_attempt_at = now() + interval '1 hour'
 where call_status in ('pending', 'retry_pending');
insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0021', 'Mo', '+15550001021'),
  ('00000000-0000-0000-0000-0000000a0022', 'Ned', '+15550001022');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0021') -> 'more_due', 'true'::jsonb,
          'more_due true: another row is due');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0022') -> 'more_due', 'false'::jsonb,
          'more_due false: no other row is due (rows not yet due and the claimed ones do not count)');

select * from finish();
rollback;
