-- Campaign controls, in one transaction: pause_batch / resume_batch (idempotent, audited, refused for a finished
-- batch; the claims hold a paused batch's rows, live calls finish, resume kicks the webhook), operator_batch_action
-- pause / resume, and a batch's own limits in the claims (batch_at_capacity, batch_rate_limited) and in
-- reserve_dial_slot. The turns between batches and the limits under concurrent claims: 27_fair_claims.sql.
begin;
select plan(65);

select has_function('public', 'pause_batch', array['uuid']);
select has_function('public', 'resume_batch', array['uuid']);
select function_returns('public', 'pause_batch', array['uuid'], 'jsonb');
select function_returns('public', 'resume_batch', array['uuid'], 'jsonb');
select has_index('public', 'pending_calls', 'pending_calls_batch_due_idx', array['batch_id', 'next_attempt_at', 'created_at']);

select test_fixtures.open_policy();
select test_fixtures.free_send_slots();
insert into outcall_private.settings (name, value) values
  ('webhook_url', 'http://127.0.0.1:8787/webhooks/pending-call'), ('webhook_secret', 'shh')
on conflict (name) do update set value = excluded.value;

create function pg_temp.row_of(p_batch uuid, p_name text) returns uuid language sql as $$
  select id from public.pending_calls where batch_id = p_batch and employee_name = p_name
$$;
create function pg_temp.sessions_of(p_batch uuid) returns int language sql as $$
  select count(*)::int from public.call_sessions as s join public.pending_calls as p on p.id = s.pending_call_id
   where p.batch_id = p_batch
$$;
create function pg_temp.batch_of(p_answer jsonb) returns uuid language sql as $$
  select batch_id from public.pending_calls where id = (p_answer ->> 'pending_call_id')::uuid
$$;
create temp table q0 as select coalesce(max(id), 0) as id from net.http_request_queue;

-- Pause ------------------------------------------------------------------------------------------------------------
select test_fixtures.new_batch('Paused', 3, '201') as p \gset
select is((public.claim_pending_call(pg_temp.row_of(:'p', 'T1')) ->> 'attempt')::int, 1, 'T1 of the batch is live');
create temp table paused1 as select public.pause_batch(:'p') as j;
select is((select j ->> 'changed' from paused1), 'true', 'pause_batch: changed');
select is((select j ->> 'paused' from paused1), 'true', 'paused');
select is((select (j ->> 'paused_at')::timestamptz from paused1), now(), 'paused_at: now');
select is((select j ->> 'status' from paused1), 'in_progress', 'the status stays as it was');
select is((select paused_at from public.batches where id = :'p'), now(), 'batches.paused_at');
create temp table paused2 as select public.pause_batch(:'p') as j;
select is((select j ->> 'changed' from paused2), 'false', 'pausing again changes nothing, and says so');
select is((select (j ->> 'paused_at')::timestamptz from paused2), now(), 'paused_at as it was');
select is((select array_agg(action order by at, id) from public.operator_actions where target_ids = array[:'p'::uuid]),
          array['pause', 'pause'], 'each call audited');
select row_eq(format($$select actor, user_id, email, target_kind, detail -> 'answer' ->> 'changed', detail -> 'before' ->> 'paused',
                              detail -> 'after' ->> 'paused'
                         from public.operator_actions
                        where target_ids = array[%L::uuid] and detail -> 'answer' ->> 'changed' = 'true'$$, :'p'),
              row('api_key'::text, null::uuid, null::text, 'batch'::text, 'true'::text, 'false'::text, 'true'::text),
              'the audit: the API key, no user, the progress before and after');
select throws_ok($$insert into public.operator_actions (actor, action, target_kind, target_ids, detail)
                   values ('operator', 'pause', 'batch', '{}', '{}')$$, '23514', null,
                 'an operator''s audit row names the operator');

-- While paused: nothing new is dialled, the live call goes on, a retry falling due waits
select is(public.claim_pending_call(pg_temp.row_of(:'p', 'T2')), '{"claimed": false, "reason": "paused"}'::jsonb,
          'claim_pending_call of a paused batch''s row: paused');
select is(public.claim_next_due(), '{"claimed": false, "reason": "idle"}'::jsonb,
          'claim_next_due passes the paused batch over (nothing else due: idle)');
select is(pg_temp.sessions_of(:'p'), 1, 'no session started');
select is((select call_status from public.pending_calls where id = pg_temp.row_of(:'p', 'T2')), 'pending', 'T2 still pending');
select test_fixtures.new_call('00000000-0000-0000-0000-0000002500a1');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000002500a1',
          'a row of no batch is claimed meanwhile: the search does not stop at the paused batch');
select is(public.record_dial_result((select id from public.call_sessions where pending_call_id = pg_temp.row_of(:'p', 'T1')),
                                    'CA25p1') ->> 'call_status', 'calling', 'the live call goes on');
update public.pending_calls set call_status = 'retry_pending', next_attempt_at = now() - interval '1 minute'
 where id = pg_temp.row_of(:'p', 'T3');
select is(public.claim_next_due() ->> 'reason', 'idle', 'a retry due while paused waits');
select is(public.claim_pending_call(pg_temp.row_of(:'p', 'T3')) ->> 'reason', 'paused', 'even when asked for by id');
select is(public.batch_progress_of(:'p') ->> 'paused', 'true', 'batch_progress_of shows it paused');

-- Resume
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
create temp table resumed1 as select public.resume_batch(:'p') as j;
select is((select j ->> 'changed' from resumed1), 'true', 'resume_batch: changed');
select is((select j ->> 'paused' from resumed1), 'false', 'not paused');
select is((select j -> 'paused_at' from resumed1), 'null'::jsonb, 'paused_at null');
select is((select array_agg(convert_from(body, 'UTF8')::jsonb -> 'record' ->> 'id') from net.http_request_queue where id > (select id from q0)),
          array[pg_temp.row_of(:'p', 'T3')::text], 'the webhook is sent the batch''s first row due (the retry, most overdue)');
select is((select j ->> 'changed' from (select public.resume_batch(:'p') as j) as r), 'false',
          'resuming again changes nothing, and says so');
select is((select count(*)::int from net.http_request_queue where id > (select id from q0)), 1, 'nor sends the webhook again');
select is((select array_agg(action || ' ' || (detail -> 'answer' ->> 'changed') order by action, detail -> 'answer' ->> 'changed')
             from public.operator_actions where target_ids = array[:'p'::uuid]),
          array['pause false', 'pause true', 'resume false', 'resume true'], 'each call audited, with what it changed');
select is(pg_temp.batch_of(public.claim_next_due()), :'p'::uuid, 'claim_next_due dials the batch again');
select is((select call_status from public.pending_calls where id = pg_temp.row_of(:'p', 'T3')), 'dispatching',
          'where it stopped: the most overdue row first');

-- Finished batches refuse; unknown batches are null
select test_fixtures.new_batch('Cancelled', 1, '202') as c \gset
select public.cancel_batch(:'c');
select is(public.pause_batch(:'c'), jsonb_build_object('batch_id', :'c'::uuid, 'status', 'cancelled', 'error', 'batch_cancelled'),
          'pausing a cancelled batch: refused, batch_cancelled');
select is(public.resume_batch(:'c') ->> 'error', 'batch_cancelled', 'resuming it too');
select is((select paused_at from public.batches where id = :'c'), null, 'nothing changed');
select test_fixtures.new_batch('Completed', 1, '203') as d \gset
update public.pending_calls set call_status = 'completed' where batch_id = :'d';
select is(public.pause_batch(:'d') ->> 'error', 'batch_completed', 'pausing a completed batch: batch_completed');
select is(public.pause_batch('00000000-0000-0000-0000-0000002500ff'), null, 'an unknown batch: null');
select is(public.resume_batch('00000000-0000-0000-0000-0000002500ff'), null, 'resume too');
select is((select count(*)::int from public.operator_actions where target_ids = array['00000000-0000-0000-0000-0000002500ff'::uuid]),
          0, 'and no audit');

-- An operator's pause and resume (operator_batch_action), audited with who
insert into auth.users (id, email) values ('00000000-0000-0000-0000-000000250001', 'olga@example.com');
select outcall_private.add_operator('olga@example.com', 'operator');
select test_fixtures.new_batch('Operated', 2, '204') as o \gset
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000250001", "role": "authenticated"}', true);
set local role authenticated;
create temp table op1 as select public.operator_batch_action(:'o', 'pause') as j;
select is((select j ->> 'action' || ' ' || (j ->> 'ok') || ' ' || (j ->> 'paused') from op1), 'pause true true',
          'operator_batch_action pause: ok, paused');
select is(public.operator_batch_action(:'o', 'resume') ->> 'paused', 'false', 'and resume');
reset role;
select results_eq(format($$select actor, email, action from public.operator_actions where target_ids = array[%L::uuid]
                          order by action$$, :'o'),
                  $$values ('operator', 'olga@example.com', 'pause'), ('operator', 'olga@example.com', 'resume')$$,
                  'audited as the operator');
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000250001", "role": "authenticated"}', true);
set local role authenticated;
select is(public.operator_batch_action(:'c', 'pause') ->> 'ok', 'false', 'an operator''s pause of a cancelled batch: ok false');
reset role;

-- A batch's own limits -----------------------------------------------------------------------------------------------
update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending');
select test_fixtures.new_batch('Capped', 4, '205', '{"max_concurrency": 2}') as l \gset
select row_eq(format('select max_concurrency, calls_per_second from public.batches where id = %L', :'l'),
              row(2, null::numeric), 'create_batch stores max_concurrency (calls_per_second absent: null)');
select is(public.batch_progress_of(:'l') ->> 'max_concurrency', '2', 'the progress shows it');
select throws_ok($$insert into public.batches (name, calls_per_second) values ('too slow', 0.0001)$$, '23514', null,
                 'calls_per_second below 0.001 is refused (its spacing would overflow an interval)');
select is(public.claim_pending_call(pg_temp.row_of(:'l', 'T1')) ->> 'attempt', '1', 'one live call of the batch');
select is(public.claim_next_due() ->> 'attempt', '1', 'two');
select is(public.claim_pending_call(pg_temp.row_of(:'l', 'T3')), '{"claimed": false, "reason": "batch_at_capacity"}'::jsonb,
          'a third: batch_at_capacity');
select is(public.claim_next_due(), '{"claimed": false, "reason": "batch_at_capacity"}'::jsonb,
          'claim_next_due, only its rows due: batch_at_capacity');
select test_fixtures.new_call('00000000-0000-0000-0000-0000002500a2');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000002500a2',
          'a row of no batch due too: claim_next_due passes the full batch over and claims it');
select is(public.record_dial_result((select id from public.call_sessions where pending_call_id = pg_temp.row_of(:'l', 'T1')),
                                    null, 'boom', null, false) ->> 'call_status', 'failed', 'one of its calls ends');
select is(pg_temp.batch_of(public.claim_next_due()), :'l'::uuid, 'and the batch dials again');

-- calls_per_second: its own creates (in flight or answered within the window) and its pace
update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending');
select test_fixtures.free_send_slots();
select test_fixtures.new_batch('Paced', 3, '206', '{"calls_per_second": 0.5}') as r \gset
select test_fixtures.new_batch('Unpaced', 2, '207') as u \gset
select is((select calls_per_second from public.batches where id = :'r'), 0.5, 'create_batch stores calls_per_second');
create temp table r1 as select public.claim_pending_call(pg_temp.row_of(:'r', 'T1')) as j;
select is((select j ->> 'attempt' from r1), '1', 'the paced batch dials one');
select is((select batch_id from outcall_private.dial_requests where session_id = (select (j ->> 'session_id')::uuid from r1)),
          :'r'::uuid, 'its create request is the batch''s');
create temp table r2 as select public.claim_pending_call(pg_temp.row_of(:'r', 'T2')) as j;
select ok((select j ->> 'reason' = 'batch_rate_limited' and (j ->> 'retry_after_ms')::int between 1 and 2000 from r2),
          'the next: batch_rate_limited, retry_after_ms up to its 2 s window');
select is(pg_temp.batch_of(public.claim_next_due()), :'u'::uuid, 'claim_next_due serves the other batch meanwhile');
select is(pg_temp.batch_of(public.claim_next_due()), :'u'::uuid, 'and again (the global rate is free)');
create temp table r3 as select public.claim_next_due() as j;
select ok((select j ->> 'reason' = 'batch_rate_limited' and (j ->> 'retry_after_ms')::int between 1 and 2000 from r3),
          'then, only the paced batch due: batch_rate_limited with its wait');
-- Its create answered long ago, its pace past: free again
update outcall_private.dial_requests set sent_at = clock_timestamp() - interval '10 seconds', answered_at = clock_timestamp() - interval '5 seconds'
 where batch_id = :'r';
update outcall_private.batch_dispatch_state set next_slot_at = '-infinity' where batch_id = :'r';
select is(pg_temp.batch_of(public.claim_next_due()), :'r'::uuid, 'its window past: the paced batch dials its next row');
-- reserve_dial_slot (a re-sent create) honours the batch's rate
select is(public.reserve_dial_slot((select (j ->> 'session_id')::uuid from r1)) ->> 'outcome', 'wait',
          'reserve_dial_slot for the batch''s first session: wait (its second create holds the batch''s slot)');
update outcall_private.dial_requests set sent_at = clock_timestamp() - interval '10 seconds', answered_at = clock_timestamp() - interval '5 seconds'
 where batch_id = :'r';
update outcall_private.batch_dispatch_state set next_slot_at = '-infinity' where batch_id = :'r';
select is(public.reserve_dial_slot((select (j ->> 'session_id')::uuid from r1)) ->> 'outcome', 'reserved',
          'once free: reserved');

select * from finish();
rollback;
