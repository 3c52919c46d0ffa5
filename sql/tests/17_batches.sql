-- Batches (sql/schema/60_batches.sql): public.batches and its counters kept by statement triggers on pending_calls, a row's
-- own calling window, cancel_batch, retry_failed_batch (the one way out of a terminal status), create_batch and its
-- outcomes, one webhook per batch insert, the read functions, privileges, Realtime. The first section runs two more
-- connections (dblink) against committed rows: the lock order under concurrent claims, cancels and creates.
begin;
select plan(285);

create function pg_temp.on_a(p_sql text) returns jsonb language sql as $$
  select j from dblink('a', p_sql) as t(j jsonb)
$$;
create function pg_temp.committed(p_sql text) returns text language sql as $$
  select j from dblink('a', p_sql) as t(j text)
$$;
select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
select is(dblink_exec('a', 'set statement_timeout = ''20s'''), 'SET', 'A gives up after 20 s');
select is(dblink_exec('b', 'set statement_timeout = ''20s'''), 'SET', 'B too');
create temp table saved_policy as select * from outcall_private.dispatch_policy;
create temp table saved_rate as select * from outcall_private.rate_state;
select is(dblink_exec('a', $$update outcall_private.dispatch_policy
                               set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '24:00',
                                   max_concurrent_calls = 1000, calls_per_second = 1e9;
                             delete from outcall_private.dial_requests; update outcall_private.rate_state set next_slot_at = '-infinity'$$),
          'UPDATE 1', 'A commits a policy open all week, without limits to speak of, and a free dial slot');
create function pg_temp.conc_batch(p_name text, p_tag text) returns text language sql as $$
  select pg_temp.committed(format($q$select public.create_batch(jsonb_build_object('name', %L, 'targets',
           jsonb_build_array(jsonb_build_object('employee_name', 'T1', 'phone', '+1555%s001'),
                             jsonb_build_object('employee_name', 'T2', 'phone', '+1555%s002'),
                             jsonb_build_object('employee_name', 'T3', 'phone', '+1555%s003')))) ->> 'batch_id'$q$,
           p_name, p_tag, p_tag, p_tag))
$$;
create function pg_temp.conc_row(p_batch text, p_name text) returns text language sql as $$
  select pg_temp.committed(format('select id::text from public.pending_calls where batch_id = %L and employee_name = %L', p_batch, p_name))
$$;

-- The same Idempotency-Key twice at once: one batch
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select pg_temp.on_a($$select public.create_batch('{"name": "conc-key", "idempotency_key": "conc-key-1", "request_hash": "h",
                                                   "targets": [{"employee_name": "K", "phone": "+15559990001"}]}')$$) ->> 'batch_id' as ka \gset
select is(dblink_send_query('b', $$select public.create_batch('{"name": "conc-key", "idempotency_key": "conc-key-1", "request_hash": "h",
                                                               "targets": [{"employee_name": "K", "phone": "+15559990001"}]}')$$), 1,
          'B sends the same request meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s insert of the key');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result() - 'cost_estimate', jsonb_build_object('outcome', 'replayed', 'batch_id', :'ka'::uuid, 'accepted', 1, 'rejected', '[]'::jsonb),
          'then B answers A''s batch, replayed');
select is(pg_temp.committed($$select count(*)::text from public.batches where idempotency_key = 'conc-key-1'$$), '1', 'one batch');

-- A claim in flight when the batch is cancelled
select pg_temp.conc_batch('conc-cancel-1', '998') as cb1 \gset
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a(format('select public.claim_pending_call(%L)', pg_temp.conc_row(:'cb1', 'T1'))) ->> 'attempt', '1',
          'A claims T1 (not committed: its row and the batch row are locked)');
select is(dblink_send_query('b', format('select public.cancel_batch(%L)', :'cb1')), 1, 'B cancels the batch meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s row');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits (no deadlock)');
select is(test_fixtures.b_result() - 'batch_id', '{"status": "cancelled", "cancelled": 2, "live": 1}'::jsonb,
          'then B: the two others cancelled, A''s claim live');
-- A retryable failure in flight when the batch is cancelled
select pg_temp.conc_batch('conc-cancel-2', '997') as cb2 \gset
select is(pg_temp.committed(format($q$select public.record_dial_result((public.claim_pending_call(%L) ->> 'session_id')::uuid,
                                                                      'CACONC2', null, null) ->> 'call_status'$q$,
                                   pg_temp.conc_row(:'cb2', 'T1'))), 'calling', 'A commits T1 calling');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a($$select public.apply_twilio_status('CACONC2', 'busy', 2, null, 0)$$) ->> 'call_status', 'retry_pending',
          'A: busy, T1 retry_pending (not committed)');
select is(dblink_send_query('b', format('select public.cancel_batch(%L)', :'cb2')), 1, 'B cancels the batch meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s row');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result() - 'batch_id', '{"status": "cancelled", "cancelled": 3, "live": 0}'::jsonb,
          'then B cancels T1 too: it was retry_pending by then');
select is(pg_temp.committed(format($q$select string_agg(call_status, ',' order by employee_name) from public.pending_calls
                                      where batch_id = %L$q$, :'cb2')), 'cancelled,cancelled,cancelled', 'no row waits to be redialled');
-- ... and the other way round: the cancel first, the failure waits for it
select pg_temp.conc_batch('conc-cancel-3', '996') as cb3 \gset
select is(pg_temp.committed(format($q$select public.record_dial_result((public.claim_pending_call(%L) ->> 'session_id')::uuid,
                                                                      'CACONC3', null, null) ->> 'call_status'$q$,
                                   pg_temp.conc_row(:'cb3', 'T1'))), 'calling', 'A commits T1 calling');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a(format('select public.cancel_batch(%L)', :'cb3')) - 'batch_id',
          '{"status": "cancelled", "cancelled": 2, "live": 1}'::jsonb, 'A cancels (not committed)');
select is(dblink_send_query('b', $$select public.apply_twilio_status('CACONC3', 'no-answer', 2, null, 0)$$), 1,
          'B applies T1''s no-answer meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s lock on T1');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result() ->> 'call_status', 'cancelled', 'then B''s retryable failure ends T1 cancelled');
select is(pg_temp.committed(format('select status || '' '' || (completed_at is not null) from public.batches where id = %L', :'cb3')),
          'cancelled true', 'and the cancelled batch is complete');
-- The narrow race: a retryable failure that read "not cancelled" (pending_calls_batch_cancelled ran) but has not
-- committed when the cancel runs. A second BEFORE trigger (named after it) holds A's statement there.
select pg_temp.conc_batch('conc-cancel-4', '994') as cb5 \gset
select is(pg_temp.committed(format($q$select public.record_dial_result((public.claim_pending_call(%L) ->> 'session_id')::uuid,
                                                                      'CACONC4', null, null) ->> 'call_status'$q$,
                                   pg_temp.conc_row(:'cb5', 'T1'))), 'calling', 'A commits T1 calling');
select is(dblink_exec('a', format($q$create trigger pending_calls_zz_pause before update on public.pending_calls for each row
                                     when (NEW.batch_id = %L and NEW.call_status = 'retry_pending')
                                     execute function test_fixtures.pause()$q$, :'cb5')), 'CREATE TRIGGER',
          'A commits a trigger that holds its statement after pending_calls_batch_cancelled');
select (select pid from dblink('a', 'select pg_backend_pid()') as t(pid int)) as a_pid \gset
select pg_advisory_lock(hashtext('test_fixtures.pause')) is not null as paused \gset
select is(dblink_send_query('a', $$select public.apply_twilio_status('CACONC4', 'busy', 2, null, 0)$$), 1, 'A applies T1''s busy');
select ok(test_fixtures.waits_for_lock(:a_pid), 'A stops there: T1 locked, "not cancelled" already read');
select is(dblink_send_query('b', format('select public.cancel_batch(%L)', :'cb5')), 1, 'B cancels the batch meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for T1 (it locks every row that may still move)');
select pg_advisory_unlock(hashtext('test_fixtures.pause')) as unpaused \gset
select is((select j ->> 'call_status' from dblink_get_result('a') as t(j jsonb)), 'retry_pending', 'A goes on: T1 retry_pending');
select is((select count(*)::int from dblink_get_result('a') as t(j jsonb)), 0, '(A''s result read to its end)');
select is(test_fixtures.b_result() - 'batch_id', '{"status": "cancelled", "cancelled": 3, "live": 0}'::jsonb,
          'then B cancels T1 with the others');
select is(pg_temp.committed(format($q$select string_agg(call_status, ',' order by employee_name) from public.pending_calls
                                      where batch_id = %L$q$, :'cb5')), 'cancelled,cancelled,cancelled', 'no row of it waits to be redialled');
select is(dblink_exec('a', 'drop trigger pending_calls_zz_pause on public.pending_calls'), 'DROP TRIGGER', 'A drops the trigger');
-- An update of other columns takes no lock on the batch row; a status change does
select pg_temp.conc_batch('conc-lock', '995') as cb4 \gset
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.committed(format('select id::text from public.batches where id = %L for update', :'cb4')), :'cb4',
          'A locks the batch row');
select is(dblink_exec('b', format($q$update public.pending_calls set next_attempt_at = now() + interval '1 hour'
                                     where batch_id = %L$q$, :'cb4')), 'UPDATE 3',
          'B defers the batch''s rows at once: no wait for the batch row');
select is(dblink_send_query('b', format($q$with u as (update public.pending_calls set call_status = 'cancelled'
                                                         where batch_id = %L returning 1)
                                           select (count(*) * 0)::text::jsonb from u$q$, :'cb4')), 1,
          'B cancels the rows by hand');
select ok(test_fixtures.waits_for_lock(:b_pid), 'that waits for the batch row (the counters)');
select is(dblink_exec('a', 'rollback'), 'ROLLBACK', 'A lets go');
select is(test_fixtures.b_result(), '0'::jsonb, 'then B goes on');
select is(pg_temp.committed(format('select concat_ws('' '', total, queued, cancelled, status) from public.batches where id = %L', :'cb4')),
          '3 0 3 completed', 'with the counters right');

-- Clean up: the batches (their rows and sessions go with them), the policy as it was
select is(dblink_exec('a', $$delete from public.batches where name like 'conc-%'$$), 'DELETE 6', 'A deletes the six batches');
select is(dblink_exec('a', (select format(
            'update outcall_private.dispatch_policy set max_concurrent_calls = %s, calls_per_second = %s, retry_delays = %L,
               window_days = %L, window_start = %L, window_end = %L, reconcile_after = %L',
            max_concurrent_calls, calls_per_second, retry_delays, window_days, window_start, window_end, reconcile_after)
            from saved_policy)), 'UPDATE 1', 'A restores the policy');
select is(dblink_exec('a', (select format('update outcall_private.rate_state set next_slot_at = %L', next_slot_at) from saved_rate)),
          'UPDATE 1', 'and the rate state');
select is(pg_temp.committed($$select count(*)::text from public.pending_calls where phone like '+155599%'$$), '0', 'no row is left');
select is(dblink_disconnect('a'), 'OK', 'A is closed');
select is(dblink_disconnect('b'), 'OK', 'B is closed');

-- In this transaction from here on ----------------------------------------------------------------------------------
select test_fixtures.open_policy();
select test_fixtures.free_send_slots();

create function pg_temp.report(p_id uuid, p_outcome text, p_reason text, p_duration numeric default null,
                               p_cost numeric default null, p_transcript text default null) returns jsonb language sql as $$
  select public.apply_call_report(p_id, null, p_outcome, p_reason, 'summary of ' || p_reason, 'true', null, p_transcript,
                                  p_duration, p_cost)
$$;
-- A batch of p_n targets named T1..Tn (phones +1555<tag><n>), created by create_batch; returns its id.
create function pg_temp.new_batch(p_name text, p_n int, p_tag text, p_extra jsonb default '{}') returns uuid
language sql as $$
  select (public.create_batch(jsonb_build_object(
            'name', p_name,
            'targets', (select jsonb_agg(jsonb_build_object('employee_name', 'T' || n,
                                                            'phone', '+1555' || p_tag || lpad(n::text, 3, '0'))
                                         order by n)
                          from generate_series(1, p_n) as n)) || p_extra) ->> 'batch_id')::uuid
$$;
create function pg_temp.row_of(p_batch uuid, p_name text) returns uuid language sql as $$
  select id from public.pending_calls where batch_id = p_batch and employee_name = p_name
$$;
-- The counters in one line: total queued dialling in_progress completed retrying failed cancelled.
create function pg_temp.counts(p_batch uuid) returns text language sql as $$
  select concat_ws(' ', total, queued, dialling, in_progress, completed, retrying, failed, cancelled)
    from public.batches where id = p_batch
$$;
-- The same, counted from the rows, and the sums: what the counters must always equal (the cost: the rows' attempts'
-- spend, VAPI's cost + Twilio's price, 25_cost.sql).
create function pg_temp.truth(p_batch uuid) returns text language sql as $$
  select concat_ws(' ', count(*), count(*) filter (where call_status = 'pending'),
                   count(*) filter (where call_status = 'dispatching'), count(*) filter (where call_status = 'calling'),
                   count(*) filter (where call_status = 'completed'), count(*) filter (where call_status = 'retry_pending'),
                   count(*) filter (where call_status = 'failed'), count(*) filter (where call_status = 'cancelled'),
                   trim_scale(coalesce(sum(duration_seconds), 0)), count(duration_seconds),
                   (select trim_scale(coalesce(sum(coalesce(s.cost, 0) + coalesce(s.twilio_price, 0)), 0))
                      from public.call_sessions as s join public.pending_calls as c on c.id = s.pending_call_id
                     where c.batch_id = p_batch))
    from public.pending_calls where batch_id = p_batch
$$;
create function pg_temp.kept(p_batch uuid) returns text language sql as $$
  select pg_temp.counts(p_batch) || ' ' || concat_ws(' ', trim_scale(duration_seconds_total), calls_with_duration, trim_scale(cost_total))
    from public.batches where id = p_batch
$$;
-- Statements of each kind on pending_calls, counted by a statement trigger (for "in one statement").
create temp table statements (op text);
grant all on statements to public;
create function pg_temp.count_statement() returns trigger language plpgsql as $$
begin
  insert into statements values (TG_OP);
  return null;
end $$;
create trigger zz_count_statements after update on public.pending_calls
  for each statement execute function pg_temp.count_statement();

-- Schema ---------------------------------------------------------------------------------------------------------
select has_table('public', 'batches', 'public.batches exists');
select columns_are('public', 'batches', array[
  'id', 'name', 'metadata', 'status', 'idempotency_key', 'request_hash', 'total', 'queued', 'dialling', 'in_progress',
  'completed', 'retrying', 'failed', 'cancelled', 'suppressed', 'expired', 'duration_seconds_total',
  'calls_with_duration', 'cost_total', 'not_before', 'window_days', 'window_start', 'window_end', 'expires_at', 'rejected', 'created_at', 'updated_at', 'started_at',
  'completed_at', 'cancelled_at', 'paused_at', 'max_concurrency', 'calls_per_second', 'cost_cap', 'cost_estimate']);
select fk_ok('public', 'pending_calls', 'batch_id', 'public', 'batches', 'id');
select fk_ok('public', 'pending_calls', 'redial_of', 'public', 'pending_calls', 'id');
select has_index('public', 'pending_calls', 'pending_calls_batch_idx', array['batch_id', 'created_at', 'id']);
select index_is_unique('public', 'batches', 'batches_idempotency_key_key');
select col_type_is('public', 'pending_calls', 'window_days', 'integer[]', 'pending_calls.window_days is int[]');
select col_type_is('public', 'pending_calls', 'window_start', 'time without time zone', 'pending_calls.window_start is time');
select has_view('public', 'batch_progress', 'public.batch_progress exists');

insert into public.batches (id, name) values ('00000000-0000-0000-0000-0000000b0001', 'Plain');
select row_eq($$select status, metadata, total, queued, dialling, in_progress, completed, retrying, failed, cancelled,
                       duration_seconds_total, calls_with_duration, cost_total, rejected, idempotency_key,
                       created_at = now(), updated_at = now(), started_at, completed_at, cancelled_at
                  from public.batches where id = '00000000-0000-0000-0000-0000000b0001'$$,
              row('queued'::text, '{}'::jsonb, 0, 0, 0, 0, 0, 0, 0, 0, 0::numeric, 0, 0::numeric, '[]'::jsonb, null::text,
                  true, true, null::timestamptz, null::timestamptz, null::timestamptz),
              'batches defaults: queued, every counter 0, no rejections, no state times');
select throws_ok($$insert into public.batches (name) values ('')$$, '23514', null, 'an empty name is refused');
select throws_ok($$insert into public.batches (name) values (repeat('x', 201))$$, '23514', null, 'a 201-character name is refused');
select lives_ok($$insert into public.batches (name) values (repeat('x', 200))$$, 'a 200-character name is accepted');
select throws_ok($$insert into public.batches (name, metadata) values ('x', '[]')$$, '23514', null, 'metadata must be an object');
insert into public.batches (id, name, status) values ('00000000-0000-0000-0000-0000000b0002', 'x', 'done');
select is((select status from public.batches where id = '00000000-0000-0000-0000-0000000b0002'), 'queued',
          'a status given on insert is replaced by the derived one');
select throws_ok($$update public.batches set queued = -1 where id = '00000000-0000-0000-0000-0000000b0001'$$, '23514', null,
                 'a negative counter is refused');
select throws_ok($$insert into public.batches (name, window_days) values ('x', '{1}')$$, '23514', null,
                 'a window without its times is refused');
select throws_ok($$insert into public.batches (name, window_days, window_start, window_end) values ('x', '{8}', '09:00', '17:00')$$,
                 '23514', null, 'a window day outside 1..7 is refused');
select throws_ok($$insert into public.batches (name, window_days, window_start, window_end) values ('x', '{1}', '17:00', '09:00')$$,
                 '23514', null, 'a window ending before it starts is refused');
select throws_ok($$insert into public.batches (name, rejected) values ('x', '{}')$$, '23514', null, 'rejected must be an array');
select throws_ok($$insert into public.pending_calls (employee_name, phone, window_days, window_start) values ('X', '+15550001001', '{1}', '09:00')$$,
                 '23514', null, 'a row''s window needs all three columns');
update public.batches set status = 'completed' where id = '00000000-0000-0000-0000-0000000b0001';
select is((select status from public.batches where id = '00000000-0000-0000-0000-0000000b0001'), 'queued',
          'status is derived: a hand-written status is put back (no rows, not started: queued)');

-- The per-round budget: attempt_offset >= 0 and max_attempts - attempt_offset in 1..20
select throws_ok($$insert into public.pending_calls (employee_name, phone, max_attempts) values ('X', '+15550001001', 21)$$,
                 '23514', null, 'max_attempts 21 in the first round is refused');
select lives_ok($$insert into public.pending_calls (employee_name, phone, max_attempts, attempt_offset, attempts)
                  values ('X', '+15550001001', 23, 3, 3)$$, 'after 3 attempts, a round of 20 (max_attempts 23) is accepted');
select throws_ok($$insert into public.pending_calls (employee_name, phone, max_attempts, attempt_offset) values ('X', '+15550001001', 24, 3)$$,
                 '23514', null, 'a round of 21 is refused');
select throws_ok($$insert into public.pending_calls (employee_name, phone, max_attempts, attempt_offset) values ('X', '+15550001001', 3, 3)$$,
                 '23514', null, 'a round of 0 is refused');
select throws_ok($$insert into public.pending_calls (employee_name, phone, attempt_offset) values ('X', '+15550001001', -1)$$,
                 '23514', null, 'a negative attempt_offset is refused');

-- The triggers: statement level, with transition tables; the per-row webhook skips batch rows
select is(array(select tgname::text || ':' || (tgtype & 1 = 0)::text || ':' || (tgoldtable is not null)::text || ':'
                       || (tgnewtable is not null)::text
                  from pg_trigger where tgrelid = 'public.pending_calls'::regclass
                   and tgname in ('pending_calls_batch_counts_insert', 'pending_calls_batch_counts_update',
                                  'pending_calls_batch_counts_delete', 'pending_calls_batch_webhook')
                 order by tgname),
          array['pending_calls_batch_counts_delete:true:true:false', 'pending_calls_batch_counts_insert:true:false:true',
                'pending_calls_batch_counts_update:true:true:true', 'pending_calls_batch_webhook:true:false:true'],
          'counters and the batch webhook: FOR EACH STATEMENT triggers with transition tables');
select ok((select pg_get_triggerdef(oid) ~ 'WHEN \(\(\(new.call_status = ''pending''::text\) AND \(new.batch_id IS NULL\)\)\)'
             from pg_trigger where tgname = 'pending_calls_webhook' and tgrelid = 'public.pending_calls'::regclass),
          'the per-row webhook fires for pending rows without a batch only');

-- Counters through every transition ---------------------------------------------------------------------------------
select pg_temp.new_batch('Counters', 4, '101') as b1 \gset
select pg_temp.row_of(:'b1', 'T1') as r1, pg_temp.row_of(:'b1', 'T2') as r2, pg_temp.row_of(:'b1', 'T3') as r3,
       pg_temp.row_of(:'b1', 'T4') as r4 \gset
select is(pg_temp.counts(:'b1'), '4 4 0 0 0 0 0 0', 'created: total 4, all queued');
select row_eq($$select status, started_at, completed_at from public.batches where id = $$ || quote_literal(:'b1'),
              row('queued'::text, null::timestamptz, null::timestamptz), 'queued, not started');
-- started_at: the first claim
select test_fixtures.claim(:'r1') as s1a \gset
select is(pg_temp.counts(:'b1'), '4 3 1 0 0 0 0 0', 'a claim: one queued -> dialling');
select row_eq($$select status, started_at from public.batches where id = $$ || quote_literal(:'b1'),
              row('in_progress'::text, now()), 'the first claim starts the batch: in_progress, started_at now');
update public.batches set started_at = now() - interval '1 hour' where id = :'b1';
select test_fixtures.claim(:'r2') is not null as s2a \gset
select is((select started_at from public.batches where id = :'b1'), now() - interval '1 hour',
          'a later claim leaves started_at as it was');
select is(pg_temp.counts(:'b1'), '4 2 2 0 0 0 0 0', 'two dialling');
select public.record_dial_result(:'s1a', 'CAB1a', null, null) is not null as d1 \gset
select is(pg_temp.counts(:'b1'), '4 2 1 1 0 0 0 0', 'a dial result: dialling -> in_progress');
select is(public.apply_twilio_status('CAB1a', 'busy', 2, null, 0) ->> 'call_status', 'retry_pending', 'busy: retried');
select is(pg_temp.counts(:'b1'), '4 2 1 0 0 1 0 0', 'in_progress -> retrying');
select test_fixtures.dial(:'r1', 'CAB1b') is not null as d1b \gset
select is(pg_temp.counts(:'b1'), '4 2 1 1 0 0 0 0', 'claimed and dialled again: retrying -> in_progress');
select is(pg_temp.report(:'r1', 'completed', 'customer-ended-call', 30, 0.25, 'Agent: hello') ->> 'call_status', 'completed',
          'VAPI''s report: completed');
select is(pg_temp.kept(:'b1'), '4 2 1 0 1 0 0 0 30 1 0.25', 'in_progress -> completed; duration 30 s and cost 0.25 summed');
-- r2: its dial fails for good
select public.record_dial_result((select id from public.call_sessions where pending_call_id = :'r2'), null, 'invalid number',
                                 '21211', false) ->> 'call_status' as f2 \gset
select is(pg_temp.counts(:'b1'), '4 2 0 0 1 0 1 0', 'a permanent dial error: dialling -> failed');
-- r3: a conversation that reached nobody, on its last attempt, with a duration and a cost
update public.pending_calls set max_attempts = 1 where id = :'r3';
select test_fixtures.dial(:'r3', 'CAB3') is not null as d3 \gset
select is(pg_temp.report(:'r3', 'not_reached', 'voicemail', 12.5, 0.05) ->> 'call_status', 'failed', 'not_reached on the last attempt: failed');
select is(pg_temp.kept(:'b1'), '4 1 0 0 1 0 2 0 42.5 2 0.3', 'failed counted; its duration and cost too');
-- an update that changes nothing counted does not touch the batch row
select ctid::text as b1_ctid from public.batches where id = :'b1' \gset
update public.pending_calls set next_attempt_at = next_attempt_at + interval '1 minute', variables = '{"x": 1}' where batch_id = :'b1';
select is((select ctid::text from public.batches where id = :'b1'), :'b1_ctid',
          'an update of other columns (next_attempt_at, variables) leaves the batch row alone');
select is(pg_temp.truth(:'b1'), pg_temp.kept(:'b1'), 'the counters equal a count of the rows');
select is((select completed_at from public.batches where id = :'b1'), null, 'one row left: not completed');
-- r4 cancelled by hand: every row is terminal
update public.pending_calls set call_status = 'cancelled' where id = :'r4';
select row_eq($$select status, completed_at, total, completed + failed + cancelled from public.batches where id = $$ || quote_literal(:'b1'),
              row('completed'::text, now(), 4, 4), 'every row terminal: completed, completed_at set');
-- the view
select row_eq($$select batch_id, name, status, total, queued, dialling, in_progress, completed, retrying, failed, cancelled,
                       success_rate, average_duration_seconds, total_cost, completed_at = now()
                  from public.batch_progress where batch_id = $$ || quote_literal(:'b1'),
              row(:'b1'::uuid, 'Counters'::text, 'completed'::text, 4, 0, 0, 0, 1, 0, 2, 1, 0.3333::numeric, 21.3::numeric,
                  0.30::numeric, true),
              'batch_progress: counters, success_rate 1/3 (4 decimals), average duration 42.5/2 (1 decimal), total cost');
select is((select success_rate from public.batch_progress where batch_id = '00000000-0000-0000-0000-0000000b0001'), null,
          'success_rate is null before anything completed or failed');

-- Deletes, moves between batches, several batches in one statement
delete from public.pending_calls where id = :'r4';
select is(pg_temp.counts(:'b1'), '3 0 0 0 1 0 2 0', 'a deleted row leaves the counters (total 3, cancelled 0)');
select pg_temp.new_batch('Other', 2, '102') as b2 \gset
update public.pending_calls set batch_id = :'b2' where id = :'r3';
select is(array[pg_temp.counts(:'b1'), pg_temp.counts(:'b2')], array['2 0 0 0 1 0 1 0', '3 2 0 0 0 0 1 0'],
          'a row moved to another batch: taken from one, added to the other');
select is(array[pg_temp.kept(:'b1'), pg_temp.kept(:'b2')], array['2 0 0 0 1 0 1 0 30 1 0.3', '3 2 0 0 0 0 1 0 12.5 1 0'],
          'with its duration; its cost stays with the batch that spent it (25_cost.sql)');
update public.pending_calls set call_status = 'cancelled' where batch_id in (:'b1', :'b2') and call_status = 'pending';
select is(array[pg_temp.counts(:'b1'), pg_temp.counts(:'b2')], array['2 0 0 0 1 0 1 0', '3 0 0 0 0 0 1 2'],
          'one statement over two batches updates each');
select is((select status from public.batches where id = :'b2'), 'completed', 'a batch never started completes too');
insert into public.pending_calls (employee_name, phone, batch_id) values ('Late', '+15550001999', :'b2');
select row_eq($$select total, queued, status, completed_at from public.batches where id = $$ || quote_literal(:'b2'),
              row(4, 1, 'queued'::text, null::timestamptz), 'a row added later reopens it');
delete from public.batches where id = :'b2';
select is((select count(*)::int from public.pending_calls where batch_id = :'b2'), 0, 'deleting a batch deletes its rows');
select is((select redial_of from public.pending_calls where id = :'r1'), null, '(r1 is no copy)');

-- Cancel ------------------------------------------------------------------------------------------------------------
-- c1 pending, c2 retry_pending (due later), c3 calling (live), c4 completed, c5 failed
select pg_temp.new_batch('Cancel', 5, '103') as c \gset
select pg_temp.row_of(:'c', 'T1') as c1, pg_temp.row_of(:'c', 'T2') as c2, pg_temp.row_of(:'c', 'T3') as c3,
       pg_temp.row_of(:'c', 'T4') as c4, pg_temp.row_of(:'c', 'T5') as c5 \gset
select test_fixtures.dial(:'c2', 'CAC2') is not null as dc2 \gset
select public.apply_twilio_status('CAC2', 'no-answer', 2, null, 0) ->> 'call_status' as nc2 \gset
select test_fixtures.dial(:'c3', 'CAC3') is not null as dc3 \gset
select test_fixtures.dial(:'c4', 'CAC4') is not null as dc4 \gset
select pg_temp.report(:'c4', 'completed', 'customer-ended-call', 20, 0.1) ->> 'call_status' as rc4 \gset
update public.pending_calls set max_attempts = 1 where id = :'c5';
select test_fixtures.dial(:'c5', 'CAC5') is not null as dc5 \gset
select public.apply_twilio_status('CAC5', 'busy', 2, null, 0) ->> 'call_status' as nc5 \gset
select is(pg_temp.counts(:'c'), '5 1 0 1 1 1 1 0', 'before: queued, retrying, in_progress, completed, failed');
truncate statements;
select is(public.cancel_batch(:'c'),
          jsonb_build_object('batch_id', :'c'::uuid, 'status', 'cancelled', 'cancelled', 2, 'live', 1),
          'cancel_batch: the pending and retry_pending rows stopped, one live');
select is((select count(*)::int from statements), 1, 'in one statement on pending_calls');
select is(array(select concat_ws(' / ', call_status, last_error) from public.pending_calls where batch_id = :'c' order by employee_name),
          array['cancelled / batch_cancelled', 'cancelled / batch_cancelled', 'calling', 'completed', 'failed / busy'],
          'pending and retry_pending: cancelled (batch_cancelled); the live, completed and failed rows untouched');
select row_eq($$select status, cancelled_at, completed_at from public.batches where id = $$ || quote_literal(:'c'),
              row('cancelled'::text, now(), null::timestamptz), 'the batch: cancelled, cancelled_at set, not complete');
select is(pg_temp.counts(:'c'), '5 0 0 1 1 0 1 2', 'counters follow');
update public.batches set cancelled_at = now() - interval '1 minute' where id = :'c';
select is(public.cancel_batch(:'c'),
          jsonb_build_object('batch_id', :'c'::uuid, 'status', 'cancelled', 'cancelled', 0, 'live', 1),
          'again: nothing more to stop (idempotent)');
select is((select cancelled_at from public.batches where id = :'c'), now() - interval '1 minute', 'cancelled_at is set once');
-- the live call fails in a retryable way: never retried
select is(public.apply_twilio_status('CAC3', 'busy', 2, null, 0) ->> 'call_status', 'cancelled',
          'the live row''s busy: cancelled, not retry_pending');
select is((select last_error from public.pending_calls where id = :'c3'), 'batch_cancelled', 'last_error batch_cancelled');
select row_eq($$select status, completed_at, completed + failed + cancelled = total from public.batches where id = $$ || quote_literal(:'c'),
              row('cancelled'::text, now(), true), 'every row terminal: the cancelled batch completes (status stays cancelled)');
select is((select count(*)::int from public.pending_calls where batch_id = :'c' and call_status in ('pending', 'retry_pending', 'dispatching', 'calling')),
          0, 'nothing of it is left to dial');
-- not_reached on a live row of a cancelled batch, and a hand-written requeue
select pg_temp.new_batch('Cancel 2', 3, '104') as cx \gset
select pg_temp.row_of(:'cx', 'T1') as cx1, pg_temp.row_of(:'cx', 'T2') as cx2, pg_temp.row_of(:'cx', 'T3') as cx3 \gset
select test_fixtures.dial(:'cx1', 'CAX1') is not null as dx1 \gset
select test_fixtures.dial(:'cx2', 'CAX2') is not null as dx2 \gset
select is(public.cancel_batch(:'cx') - 'batch_id', '{"status": "cancelled", "cancelled": 1, "live": 2}'::jsonb, 'two live, one stopped');
select is(pg_temp.report(:'cx1', 'not_reached', 'silence-timed-out') ->> 'call_status', 'cancelled',
          'VAPI''s not_reached on a live row of a cancelled batch: cancelled');
update public.pending_calls set call_status = 'retry_pending', next_attempt_at = now() where id = :'cx2';
select is(concat_ws(' / ', (select call_status from public.pending_calls where id = :'cx2'),
                    (select last_error from public.pending_calls where id = :'cx2')),
          'cancelled / batch_cancelled', 'even a hand-written move back to retry_pending: cancelled');
select is(public.retry_failed_batch(:'cx'), jsonb_build_object('batch_id', :'cx'::uuid, 'error', 'batch_cancelled'),
          'retry_failed_batch of a cancelled batch: batch_cancelled');
select is(public.retry_failed_batch(:'c'), jsonb_build_object('batch_id', :'c'::uuid, 'error', 'batch_cancelled'),
          'and nothing changes:');
select is((select call_status from public.pending_calls where id = :'c5'), 'failed', 'its failed row stays failed');
-- a completed batch is not cancelled
select is(public.cancel_batch(:'b1'), jsonb_build_object('batch_id', :'b1'::uuid, 'status', 'completed', 'cancelled', 0, 'live', 0),
          'cancel_batch of a completed batch: stays completed');
select is((select cancelled_at from public.batches where id = :'b1'), null, 'no cancelled_at');
select is(public.cancel_batch('00000000-0000-0000-0000-0000000000ff'), null, 'an unknown batch: null');

-- retry_failed_batch -----------------------------------------------------------------------------------------------
-- f1 fails three times (its whole budget), f2 fails for good on attempt 1, f3 completes
select pg_temp.new_batch('Retry', 3, '105') as f \gset
select pg_temp.row_of(:'f', 'T1') as f1, pg_temp.row_of(:'f', 'T2') as f2, pg_temp.row_of(:'f', 'T3') as f3 \gset
create function pg_temp.busy_round(p_id uuid, p_sid text) returns text language plpgsql as $$
begin
  perform test_fixtures.dial(p_id, p_sid);
  return public.apply_twilio_status(p_sid, 'busy', 2, null, 0) ->> 'call_status';
end $$;
select pg_temp.busy_round(:'f1', 'CAF1-1') as fr1 \gset
select pg_temp.busy_round(:'f1', 'CAF1-2') as fr2 \gset
select pg_temp.busy_round(:'f1', 'CAF1-3') as fr3 \gset
select public.record_dial_result(test_fixtures.claim(:'f2'), null, 'invalid number', '21211', false) is not null as df2 \gset
select test_fixtures.dial(:'f3', 'CAF3') is not null as df3 \gset
select pg_temp.report(:'f3', 'completed', 'customer-ended-call') is not null as rf3 \gset
select is(array(select concat_ws(' / ', call_status, attempts, max_attempts, attempt_offset) from public.pending_calls
                 where batch_id = :'f' order by employee_name),
          array['failed / 3 / 3 / 0', 'failed / 1 / 3 / 0', 'completed / 1 / 3 / 0'], 'before: two failed rows, one completed');
select row_eq($$select status, completed_at from public.batches where id = $$ || quote_literal(:'f'),
              row('completed'::text, now()), 'the batch is complete');
truncate statements;
select is(public.retry_failed_batch(:'f'), jsonb_build_object('batch_id', :'f'::uuid, 'status', 'in_progress', 'requeued', 2),
          'retry_failed_batch: two requeued, the batch in progress again');
select is((select count(*)::int from statements), 1, 'in one statement on pending_calls');
select is(array(select concat_ws(' / ', call_status, attempts, max_attempts, attempt_offset, last_error,
                                 (next_attempt_at = now())::text) from public.pending_calls
                 where batch_id = :'f' order by employee_name),
          array['pending / 3 / 6 / 3 / true', 'pending / 1 / 4 / 1 / true', 'completed / 1 / 3 / 0 / true'],
          'each failed row: pending, a fresh round of its budget (offset = attempts), due now, last_error cleared');
select row_eq($$select completed_at, queued, failed from public.batches where id = $$ || quote_literal(:'f'),
              row(null::timestamptz, 2, 0), 'the batch reopens: completed_at cleared, two queued');
select is(current_setting('outcall.reopening', true), '', 'the reopening setting is cleared after the statement');
-- the new round: attempts 4, 5, 6 with the delays of attempts 1, 2, 3
select test_fixtures.dial(:'f1', 'CAF1-4') as sf4 \gset
select is((select attempt from public.call_sessions where id = :'sf4'), 4, 'the next session is attempt 4');
select is(public.apply_twilio_status('CAF1-4', 'busy', 2, null, 0) ->> 'call_status', 'retry_pending', 'busy: retried');
select is((select next_attempt_at - now() from public.pending_calls where id = :'f1'), interval '5 minutes',
          'after attempt 4 (the round''s first): retry_delays[1], 5 minutes (not the 30 of attempt 4)');
select test_fixtures.dial(:'f1', 'CAF1-5') is not null as df5 \gset
select is(public.apply_twilio_status('CAF1-5', 'busy', 2, null, 0) ->> 'call_status', 'retry_pending', 'attempt 5 busy');
select is((select next_attempt_at - now() from public.pending_calls where id = :'f1'), interval '15 minutes',
          'after the round''s second: 15 minutes');
select test_fixtures.dial(:'f1', 'CAF1-6') is not null as df6 \gset
select is(public.apply_twilio_status('CAF1-6', 'busy', 2, null, 0) ->> 'call_status', 'failed', 'attempt 6, the round''s last: failed');
select is((select count(*)::int from public.call_sessions where pending_call_id = :'f1'), 6, 'six sessions, numbered on');
select is(public.retry_failed_batch(:'f') ->> 'requeued', '1', 'requeued again: f1 (f2 still waits for its dial)');
select is((select concat_ws(' / ', attempts, max_attempts, attempt_offset) from public.pending_calls where id = :'f1'),
          '6 / 9 / 6', 'f1: a third round of 3');
select is(public.retry_failed_batch(:'f') ->> 'requeued', '0', 'nothing failed: nothing requeued');
select is(public.retry_failed_batch('00000000-0000-0000-0000-0000000000ff'), null, 'an unknown batch: null');
select is(pg_temp.truth(:'f'), pg_temp.kept(:'f'), 'the counters still equal a count of the rows');

-- The terminal guard still refuses everything else
select pg_temp.new_batch('Guard', 2, '106') as g \gset
select pg_temp.row_of(:'g', 'T1') as g1, pg_temp.row_of(:'g', 'T2') as g2 \gset
update public.pending_calls set call_status = 'failed' where id = :'g1';
update public.pending_calls set call_status = 'completed' where id = :'g2';
select throws_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'g1'), '23514', null,
                 'failed -> pending by hand: refused');
select set_config('outcall.reopening', :'f', true) is not null as s \gset
select throws_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'g1'), '23514', null,
                 'with the setting naming another batch: refused');
select set_config('outcall.reopening', :'g', true) is not null as s \gset
select throws_ok(format($$update public.pending_calls set call_status = 'retry_pending' where id = %L$$, :'g1'), '23514', null,
                 'with its batch named, failed -> retry_pending: refused');
select throws_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'g2'), '23514', null,
                 'with its batch named, completed -> pending: refused');
select throws_ok($$update public.call_sessions set status = 'ringing' where call_sid = 'CAF1-1'$$, '23514', null,
                 'a terminal session is still never left');
select lives_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'g1'),
                'the one way: failed -> pending of that batch''s row with the setting on');
select set_config('outcall.reopening', '', true) is not null as s \gset
insert into public.pending_calls (id, employee_name, phone, call_status) values ('00000000-0000-0000-0000-0000000a0f01', 'Solo', '+15550001998', 'failed');
select throws_ok($$update public.pending_calls set call_status = 'pending' where id = '00000000-0000-0000-0000-0000000a0f01'$$,
                 '23514', null, 'a row without a batch: refused');

-- create_batch -------------------------------------------------------------------------------------------------------
select has_function('public', 'create_batch', array['jsonb']);
select function_returns('public', 'create_batch', array['jsonb'], 'jsonb');
select throws_ok($$select public.create_batch('[]')$$, '22023', null, 'p_request must be an object');
-- an original to copy: a failed row after a round of 3 (attempts 6, max_attempts 6, attempt_offset 3), with a script
insert into public.pending_calls (id, exam_id, employee_name, employee_dob, client_name, clinic_name, phone, clinic_timezone,
                                  appointment_time, procedures, instructions, variables, prompt, first_message,
                                  attempts, max_attempts, attempt_offset, call_status, last_error, transcript)
values ('00000000-0000-0000-0000-0000000a0c01', 'EX-9', 'Orig', '1980-01-02', 'Acme', 'North Clinic', '+15550001997',
        'America/Denver', '2026-12-01 15:30+00', '{Audiogram}', '{"fast": true}', '{"v": 1}', 'Be brief.', 'Hi Orig',
        6, 6, 3, 'failed', 'busy', 'old transcript');
select ctid::text as orig_ctid from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0c01' \gset
create temp table counts0 as select (select count(*) from public.batches) as b, (select count(*) from public.pending_calls) as p;
create temp table req1 as select jsonb_build_object(
  'name', 'Create', 'metadata', jsonb_build_object('campaign', 'spring', 'n', 1),
  'idempotency_key', 'key-1', 'request_hash', 'hash-1', 'not_before', null, 'window', null,
  'targets', jsonb_build_array(
     jsonb_build_object('employee_name', 'Ann', 'phone', '+15550002001', 'exam_id', 'EX-1', 'employee_dob', '1990-12-10',
                        'client_name', 'Acme', 'clinic_name', 'Downtown', 'clinic_timezone', 'America/Chicago',
                        'appointment_time', '2026-12-01T15:30:00+00:00', 'procedures', jsonb_build_array('Audiogram', 'Drug screen'),
                        'instructions', jsonb_build_object('bring_id', true), 'variables', jsonb_build_object('agent', 'Sam'),
                        'max_attempts', 5, 'prompt', 'You are calling about an exam.', 'first_message', 'Hello Ann'),
     jsonb_build_object('employee_name', 'Ben', 'phone', '+15550002002')),
  'pending_call_ids', jsonb_build_array('00000000-0000-0000-0000-0000000a0cff', '00000000-0000-0000-0000-0000000a0c01',
                                        '00000000-0000-0000-0000-0000000a0cfe')) as r;
create temp table ans1 as select public.create_batch(r) as a from req1;
select (a ->> 'batch_id') as k from ans1 \gset
select is((select a - 'cost_estimate' from ans1), jsonb_build_object('outcome', 'created', 'batch_id', :'k'::uuid, 'accepted', 3,
            'rejected', jsonb_build_array(
              jsonb_build_object('pendingCallId', '00000000-0000-0000-0000-0000000a0cff', 'code', 'not_found',
                                 'message', 'no pending call has this id'),
              jsonb_build_object('pendingCallId', '00000000-0000-0000-0000-0000000a0cfe', 'code', 'not_found',
                                 'message', 'no pending call has this id'))),
          'created: 2 targets + 1 copy accepted, the unknown ids rejected in the order given');
select row_eq($$select name, metadata, idempotency_key, request_hash, total, queued, status, not_before, window_days, rejected
                  from public.batches where id = $$ || quote_literal(:'k'),
              row('Create'::text, '{"campaign": "spring", "n": 1}'::jsonb, 'key-1'::text, 'hash-1'::text, 3, 3, 'queued'::text,
                  null::timestamptz, null::int[],
                  (select a -> 'rejected' from ans1)),
              'one batches row: name, metadata, key, hash, total 3, no schedule, the rejections kept');
select row_eq($$select exam_id, employee_dob, client_name, clinic_name, phone, clinic_timezone, appointment_time, procedures,
                       instructions, variables, max_attempts, prompt, first_message, call_status, attempts, attempt_offset,
                       next_attempt_at = now(), window_days, redial_of
                  from public.pending_calls where batch_id = $$ || quote_literal(:'k') || $$ and employee_name = 'Ann'$$,
              row('EX-1'::text, '1990-12-10'::date, 'Acme'::text, 'Downtown'::text, '+15550002001'::text, 'America/Chicago'::text,
                  '2026-12-01 15:30+00'::timestamptz, '{Audiogram,"Drug screen"}'::text[], '{"bring_id": true}'::jsonb,
                  '{"agent": "Sam"}'::jsonb, 5, 'You are calling about an exam.'::text, 'Hello Ann'::text, 'pending'::text, 0, 0,
                  true, null::int[], null::uuid),
              'a full target: every field in its column, pending, due now, no window, no original');
insert into public.pending_calls (id, employee_name, phone) values ('00000000-0000-0000-0000-0000000a0d01', 'Def', '+15550002002');
select row_eq($$select clinic_timezone, procedures, instructions, variables, max_attempts, prompt, first_message, exam_id
                  from public.pending_calls where batch_id = $$ || quote_literal(:'k') || $$ and employee_name = 'Ben'$$,
              (select row(clinic_timezone, procedures, instructions, variables, max_attempts, prompt, first_message, exam_id)
                 from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0d01'),
              'a minimal target: the column defaults, as a plain insert has them');
select row_eq($$select redial_of, exam_id, employee_name, employee_dob, client_name, clinic_name, phone, clinic_timezone,
                       appointment_time, procedures, instructions, variables, prompt, first_message, max_attempts, attempts,
                       attempt_offset, call_status, last_error, transcript
                  from public.pending_calls where batch_id = $$ || quote_literal(:'k') || $$ and employee_name = 'Orig'$$,
              row('00000000-0000-0000-0000-0000000a0c01'::uuid, 'EX-9'::text, 'Orig'::text, '1980-01-02'::date, 'Acme'::text,
                  'North Clinic'::text, '+15550001997'::text, 'America/Denver'::text, '2026-12-01 15:30+00'::timestamptz,
                  '{Audiogram}'::text[], '{"fast": true}'::jsonb, '{"v": 1}'::jsonb, 'Be brief.'::text, 'Hi Orig'::text,
                  3, 0, 0, 'pending'::text, null::text, null::text),
              'a pending_call_id: a copy of the call fields with its round''s budget (3), redial_of the original, fresh');
select is((select ctid::text from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0c01'), :'orig_ctid',
          'the original row is untouched');
savepoint before_delete;
delete from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0c01';
select is((select redial_of from public.pending_calls where batch_id = :'k' and employee_name = 'Orig'), null,
          'deleting the original leaves the copy, without redial_of');
rollback to savepoint before_delete;
-- replayed / conflict: nothing written
create temp table counts1 as select (select count(*) from public.batches) as b, (select count(*) from public.pending_calls) as p;
select is(public.create_batch(r), jsonb_build_object('outcome', 'replayed', 'batch_id', :'k'::uuid, 'accepted', 3,
                                                     'rejected', (select a -> 'rejected' from ans1),
                                                     'cost_estimate', (select a -> 'cost_estimate' from ans1)),
          'the same request again: replayed, with the estimate made at creation')
  from req1;
select is(public.create_batch(r || '{"request_hash": "hash-2", "name": "Other"}'),
          jsonb_build_object('outcome', 'conflict', 'batch_id', :'k'::uuid), 'the key with another request: conflict')
  from req1;
select ok((select b = (select count(*) from public.batches) and p = (select count(*) from public.pending_calls) from counts1),
          'neither wrote a batch or a row');
-- invalid: nothing written
update outcall_private.dispatch_policy set window_days = '{1,2,3,4,5}', window_start = '09:00', window_end = '17:00';
create temp table bad as select public.create_batch(jsonb_build_object(
  'name', 'Bad', 'idempotency_key', 'key-bad', 'request_hash', 'h',
  'window', jsonb_build_object('days', jsonb_build_array(6, 7), 'start', '09:00', 'end', '17:00'),
  'targets', jsonb_build_array(jsonb_build_object('employee_name', 'A', 'phone', '+15550002101'),
                               jsonb_build_object('employee_name', 'B', 'phone', '+15550002102', 'clinic_timezone', 'Mars/Base'),
                               jsonb_build_object('employee_name', 'C', 'phone', '+15550002103', 'clinic_timezone', 'PST'),
                               jsonb_build_object('employee_name', 'D', 'phone', '+15550002104', 'clinic_timezone', 'Mars/Base')),
  'pending_call_ids', jsonb_build_array('00000000-0000-0000-0000-0000000a0c01'))) as a;
select is((select a ->> 'outcome' from bad), 'invalid', 'unknown time zones and a window outside the policy: invalid');
select is((select array(select concat_ws(' ', coalesce(e ->> 'index', '-'), coalesce(e ->> 'pending_call_id', '-'), e ->> 'field', e ->> 'code', e ->> 'value')
                          from jsonb_array_elements(a -> 'errors') as e) from bad),
          array['1 - clinic_timezone invalid_timezone Mars/Base', '2 - clinic_timezone invalid_timezone PST',
                '3 - clinic_timezone invalid_timezone Mars/Base', '- - schedule.window window_outside_policy {"end": "17:00", "days": [6, 7], "start": "09:00"}'],
          'every problem: each bad target by its index (from 0), then the window');
select is((select array(select jsonb_typeof(e -> 'message') from jsonb_array_elements(a -> 'errors') as e) from bad),
          array_fill('string'::text, array[4]), 'each with a message');
select is((select array(select k from jsonb_array_elements(a -> 'errors') as e, jsonb_object_keys(e) as k where e ->> 'index' = '1' order by k) from bad),
          array['code', 'field', 'index', 'message', 'pending_call_id', 'value'], 'an error''s keys');
select is(public.create_batch(jsonb_build_object('name', 'Nothing', 'targets', '[]'::jsonb,
                                                 'pending_call_ids', jsonb_build_array('00000000-0000-0000-0000-0000000a0cff'))),
          '{"outcome": "invalid", "errors": [{"index": null, "pending_call_id": null, "field": "targets", "code": "nothing_to_call",
            "message": "no targets, and no pending call has any of the pending_call_ids"}]}'::jsonb,
          'no targets and no known id: nothing_to_call');
select is(public.create_batch(jsonb_build_object('name', 'Nothing')) -> 'errors' -> 0 ->> 'code', 'nothing_to_call',
          'no targets and no ids at all: nothing_to_call');
select ok((select b = (select count(*) from public.batches) and p = (select count(*) from public.pending_calls) from counts1),
          'no invalid request wrote a batch or a row');
-- Without a name (absent or null), the batch is named after its creation time, in UTC to the minute.
with made as (
  select public.create_batch(jsonb_build_object('name', null, 'targets', jsonb_build_array(
           jsonb_build_object('employee_name', 'Unnamed', 'phone', '+15550002199')))) ->> 'batch_id' as id
)
select is((select b.name from public.batches as b, made where b.id = made.id::uuid),
          (select 'Batch ' || to_char(b.created_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
             from public.batches as b, made where b.id = made.id::uuid),
          'no name: ''Batch YYYY-MM-DD HH24:MI UTC'' of its created_at');
select is(outcall_private.default_batch_name('2026-12-02 09:05:59-05'), 'Batch 2026-12-02 14:05 UTC',
          'the default name is in UTC, to the minute');
select is(public.create_batch(jsonb_build_object('name', 'Bad fixed', 'idempotency_key', 'key-bad', 'request_hash', 'h2',
                                                 'targets', jsonb_build_array(jsonb_build_object('employee_name', 'A', 'phone', '+15550002101'))))
            ->> 'outcome', 'created', 'an invalid request does not take its key: fixed, it is created');
-- the schedule
create temp table sched as select public.create_batch(jsonb_build_object(
  'name', 'Scheduled', 'not_before', '2030-01-02T14:00:00Z',
  'window', jsonb_build_object('days', jsonb_build_array(1, 3), 'start', '10:00', 'end', '12:30'),
  'targets', jsonb_build_array(jsonb_build_object('employee_name', 'A', 'phone', '+15550002201')),
  'pending_call_ids', jsonb_build_array('00000000-0000-0000-0000-0000000a0c01'))) as a;
select row_eq($$select not_before, window_days, window_start, window_end from public.batches where id = $$ || quote_literal((select a ->> 'batch_id' from sched)),
              row('2030-01-02 14:00+00'::timestamptz, '{1,3}'::int[], '10:00'::time, '12:30'::time), 'the batch keeps its schedule');
select is(array(select concat_ws(' / ', next_attempt_at, window_days, window_start, window_end) from public.pending_calls
                 where batch_id = (select (a ->> 'batch_id')::uuid from sched) order by employee_name),
          array_fill(concat_ws(' / ', '2030-01-02 14:00+00'::timestamptz, '{1,3}', '10:00:00', '12:30:00'), array[2]),
          'targets and copies: due at not_before, the schedule''s window as their own');

-- A row's own calling window ---------------------------------------------------------------------------------------
-- The policy: Monday to Friday, 09:00-17:00. 2026-03-16 is a Monday (EDT, -04).
update outcall_private.dispatch_policy set window_days = '{1,2,3,4,5}', window_start = '09:00', window_end = '17:00';
create function pg_temp.opening(p_at timestamptz, p_days int[], p_start time, p_end time, p_tz text default 'America/New_York')
returns timestamptz language sql as $$
  select outcall_private.row_window_opening(
           jsonb_populate_record(null::public.pending_calls,
                                 jsonb_build_object('clinic_timezone', p_tz, 'window_days', p_days, 'window_start', p_start,
                                                    'window_end', p_end)),
           p_at)
$$;
select is(pg_temp.opening('2026-03-16 10:00-04', null, null, null), outcall_private.calling_window_opening('America/New_York', '2026-03-16 10:00-04'),
          'no window of its own: the policy''s opening');
select is(pg_temp.opening('2026-03-16 07:00-04', null, null, null), '2026-03-16 09:00-04'::timestamptz, '(Monday 07:00: 09:00)');
select is(pg_temp.opening('2026-03-16 10:00-04', '{3}', '13:00', '15:00'), '2026-03-18 13:00-04'::timestamptz,
          'a narrower window (Wednesdays 13-15) from Monday 10:00: Wednesday 13:00');
select is(pg_temp.opening('2026-03-16 10:00-04', '{1,2,3,4,5,6,7}', '16:00', '20:00'), '2026-03-16 16:00-04'::timestamptz,
          'a window overlapping the policy''s end (16-20): 16:00 the same day');
select is(pg_temp.opening('2026-03-16 16:30-04', '{1,2,3,4,5,6,7}', '16:00', '20:00'), '2026-03-16 16:30-04'::timestamptz,
          'inside both: itself');
select is(pg_temp.opening('2026-03-16 17:30-04', '{1,2,3,4,5,6,7}', '16:00', '20:00'), '2026-03-17 16:00-04'::timestamptz,
          'inside the row''s window but after the policy''s: the next day at 16:00');
select is(pg_temp.opening('2026-03-16 10:00-04', '{5,6}', '08:00', '09:30'), '2026-03-20 09:00-04'::timestamptz,
          'Fridays and Saturdays 08:00-09:30: Friday 09:00 (the policy opens later, Saturday is not the policy''s)');
select is(pg_temp.opening('2026-03-16 10:00-07', '{3}', '13:00', '15:00', 'America/Los_Angeles'), '2026-03-18 13:00-07'::timestamptz,
          'on the clinic''s own clock');
select is(pg_temp.opening('2026-03-16 10:00-04', '{6,7}', '09:00', '17:00'), null, 'weekends only: never meets the policy, null');
select is(pg_temp.opening('2026-03-16 10:00-04', '{1,2,3,4,5}', '17:00', '20:00'), null, 'after hours only: null');
-- in the claim: a row whose own window is closed now (policy open all day), then one whose window never opens
select test_fixtures.open_policy();
insert into public.pending_calls (id, employee_name, phone, window_days, window_start, window_end) values
  ('00000000-0000-0000-0000-0000000a0e01', 'W1', '+15550002301',
   array(select d from generate_series(1, 7) as d where d <> extract(isodow from now() at time zone 'America/New_York')),
   '00:00', '24:00');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0e01'),
          jsonb_build_object('claimed', false, 'reason', 'outside_window', 'next_attempt_at',
                             ((now() at time zone 'America/New_York')::date + 1)::timestamp at time zone 'America/New_York'),
          'a row whose own window is closed today: outside_window, next_attempt_at its opening (local midnight)');
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0e01'),
          ((now() at time zone 'America/New_York')::date + 1)::timestamp at time zone 'America/New_York', 'the row waits for it');
update outcall_private.dispatch_policy set window_days = '{1,2,3,4,5}';
insert into public.pending_calls (id, employee_name, phone, window_days, window_start, window_end) values
  ('00000000-0000-0000-0000-0000000a0e02', 'W2', '+15550002302', '{6,7}', '00:00', '24:00');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0e02'),
          '{"claimed": false, "reason": "outside_window", "next_attempt_at": "infinity"}'::jsonb,
          'a row whose window never meets the policy''s: outside_window for ever, never "go ahead"');
select is((select concat_ws(' / ', call_status, attempts, next_attempt_at) from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0e02'),
          'pending / 0 / infinity', 'not dialled; next_attempt_at infinity');
-- retry_at(row): the round's attempt number, the row's window
select test_fixtures.open_policy();
select is(outcall_private.retry_at(p), now() + interval '5 minutes', 'retry_at(row) after attempt 4 of a row whose rounds began at 3: 5 minutes')
  from jsonb_populate_record(null::public.pending_calls, '{"clinic_timezone": "America/New_York", "attempts": 4, "attempt_offset": 3}') as p;
select is(outcall_private.retry_at(p), now() + interval '30 minutes', 'the same attempt 4 without rounds: 30 minutes')
  from jsonb_populate_record(null::public.pending_calls, '{"clinic_timezone": "America/New_York", "attempts": 4, "attempt_offset": 0}') as p;
select is(outcall_private.retry_at(p),
          (((now() + interval '5 minutes') at time zone 'America/New_York')::date + 1)::timestamp at time zone 'America/New_York',
          'and pushed into the row''s own window')
  from jsonb_populate_record(null::public.pending_calls, jsonb_build_object('clinic_timezone', 'America/New_York', 'attempts', 1,
         'window_days', array(select d from generate_series(1, 7) as d
                               where d <> extract(isodow from (now() + interval '5 minutes') at time zone 'America/New_York')),
         'window_start', '00:00', 'window_end', '24:00')) as p;
update outcall_private.dispatch_policy set window_days = '{2}';
select is(outcall_private.retry_at(p), 'infinity'::timestamptz, 'a window that never meets the policy''s: infinity, not null')
  from jsonb_populate_record(null::public.pending_calls, '{"clinic_timezone": "America/New_York", "attempts": 1,
         "window_days": [1], "window_start": "09:00", "window_end": "10:00"}') as p;
select test_fixtures.open_policy();

-- The webhook: one per batch insert ------------------------------------------------------------------------------------
create temp table q0 as select coalesce(max(id), 0) as id from net.http_request_queue;
create function pg_temp.sent() returns setof net.http_request_queue language sql as
  $$ select * from net.http_request_queue where id > (select id from q0) order by id $$;
insert into outcall_private.settings (name, value) values
  ('webhook_url', 'http://127.0.0.1:8787/hooks/pending-calls'), ('webhook_secret', 'batch-secret')
on conflict (name) do update set value = excluded.value;
select pg_temp.new_batch('Webhook', 3, '107') as wb \gset
select is((select count(*)::int from pg_temp.sent()), 1, 'create_batch with three targets: exactly one request');
create temp table wbody as select convert_from(body, 'UTF8')::jsonb as j, headers, url from pg_temp.sent();
select is((select j - 'record' from wbody), '{"type": "INSERT", "table": "pending_calls", "schema": "public", "old_record": null}'::jsonb,
          'the per-row webhook''s payload shape');
select is((select j -> 'record' from wbody),
          (select jsonb_build_object('id', p.id) from public.pending_calls as p where batch_id = :'wb' order by next_attempt_at, created_at, id limit 1),
          'record: the batch''s first row due (next_attempt_at, created_at, id), its id only');
select row_eq($$select url, headers from wbody$$,
              row('http://127.0.0.1:8787/hooks/pending-calls'::text,
                  '{"Content-Type": "application/json", "X-Webhook-Secret": "batch-secret"}'::jsonb),
              'to the configured URL, with the secret');
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
insert into public.batches (id, name) values ('00000000-0000-0000-0000-0000000b0d01', 'W A'), ('00000000-0000-0000-0000-0000000b0d02', 'W B');
insert into public.pending_calls (id, employee_name, phone, batch_id, next_attempt_at, call_status) values
  ('00000000-0000-0000-0000-0000000a0d11', 'a1', '+15550002401', '00000000-0000-0000-0000-0000000b0d01', now() + interval '2 minutes', 'pending'),
  ('00000000-0000-0000-0000-0000000a0d12', 'a2', '+15550002402', '00000000-0000-0000-0000-0000000b0d01', now() + interval '1 minute', 'pending'),
  ('00000000-0000-0000-0000-0000000a0d13', 'a3', '+15550002403', '00000000-0000-0000-0000-0000000b0d01', now(), 'cancelled'),
  ('00000000-0000-0000-0000-0000000a0d14', 'b1', '+15550002404', '00000000-0000-0000-0000-0000000b0d02', now(), 'pending'),
  ('00000000-0000-0000-0000-0000000a0d15', 'b2', '+15550002405', '00000000-0000-0000-0000-0000000b0d02', now(), 'pending'),
  ('00000000-0000-0000-0000-0000000a0d16', 'solo', '+15550002406', null, now(), 'pending');
select is(array(select convert_from(body, 'UTF8')::jsonb -> 'record' ->> 'id' from pg_temp.sent()),
          array['00000000-0000-0000-0000-0000000a0d16', '00000000-0000-0000-0000-0000000a0d12', '00000000-0000-0000-0000-0000000a0d14'],
          'one statement, two batches and a row of its own: the row''s own request, then one per batch (its first pending row due)');
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
update public.pending_calls set call_status = 'cancelled' where batch_id = '00000000-0000-0000-0000-0000000b0d02';
select is((select count(*)::int from pg_temp.sent()), 0, 'an update sends nothing');
alter function net.http_post(text, jsonb, jsonb, jsonb, int) rename to http_post_gone;
set local client_min_messages = error;
select is(pg_temp.new_batch('Webhook down', 2, '108') is not null, true, 'create_batch succeeds when net.http_post fails');
set local client_min_messages = warning;
alter function net.http_post_gone(text, jsonb, jsonb, jsonb, int) rename to http_post;
select is((select count(*)::int from pg_temp.sent()), 0, 'and nothing is queued');
select ok((select prosecdef and proconfig @> array['search_path=""'] and prosrc !~ 'https?://'
             from pg_proc where oid = 'outcall_private.notify_batch_rows_inserted()'::regprocedure),
          'the batch webhook function: security definer, empty search_path, no URL in it');
delete from outcall_private.settings where name in ('webhook_url', 'webhook_secret');

-- call_context (of a live call) ---------------------------------------------------------------------------------------
select test_fixtures.dial(id, 'CA-' || employee_name) is not null as live
  from public.pending_calls where batch_id = :'k' and employee_name in ('Ann', 'Ben') \g /dev/null
select is(public.call_context((select id from public.pending_calls where batch_id = :'k' and employee_name = 'Ann'), 'vapi-ann')
            - array['pending_call_id', 'appointment_time', 'appointment_local', 'employee_dob'],
          '{"exam_id": "EX-1", "employee_name": "Ann", "client_name": "Acme", "clinic_name": "Downtown",
            "clinic_timezone": "America/Chicago", "procedures": ["Audiogram", "Drug screen"], "instructions": {"bring_id": true},
            "variables": {"agent": "Sam"}, "prompt": "You are calling about an exam.", "first_message": "Hello Ann"}'::jsonb,
          'call_context carries the row''s prompt and first_message');
select is(public.call_context((select id from public.pending_calls where batch_id = :'k' and employee_name = 'Ben'), 'vapi-ben')
            -> 'prompt', 'null'::jsonb, 'null when the row has none (the key is there)');

-- The read functions ---------------------------------------------------------------------------------------------------
select is(array(select jsonb_object_keys(public.batch_progress_of(:'b1')) order by 1),
          array['average_duration_seconds', 'batch_id', 'calls_per_second', 'cancelled_at', 'completed_at', 'cost_cap',
                'cost_estimate', 'counts', 'created_at', 'expires_at', 'held', 'max_concurrency', 'name', 'paused',
                'paused_at', 'started_at', 'status', 'success_rate', 'total', 'total_cost', 'updated_at'],
          'batch_progress_of: the progress fields');
select is(public.batch_progress_of(:'b1') - array['created_at', 'started_at', 'completed_at', 'cancelled_at', 'updated_at', 'cost_estimate'],
          jsonb_build_object('batch_id', :'b1'::uuid, 'name', 'Counters', 'status', 'completed', 'total', 2,
            'counts', '{"queued": 0, "dialling": 0, "in_progress": 0, "completed": 1, "retrying": 0, "failed": 1, "cancelled": 0,
                        "suppressed": 0, "expired": 0}'::jsonb,
            'success_rate', 0.5, 'average_duration_seconds', 30.0, 'total_cost', 0.3, 'expires_at', null,
            'paused', false, 'paused_at', null, 'max_concurrency', null, 'calls_per_second', null,
            'cost_cap', null, 'held', null),
          'its values (after r3 left and r4 was deleted)');
select is((public.batch_progress_of(:'b1') ->> 'started_at')::timestamptz, now() - interval '1 hour', 'with its times');
select is(public.batch_progress_of('00000000-0000-0000-0000-0000000000ff'), null, 'unknown: null');
create temp table st as select public.batch_status(:'c', 2, 1) as j;
select is((select j - 'results' - 'page' - 'metadata' from st), public.batch_progress_of(:'c'),
          'batch_status: the progress fields');
select is((select j -> 'metadata' from st), '{}'::jsonb, 'and metadata');
select is((select j -> 'page' from st), '{"limit": 2, "offset": 1, "total": 5}'::jsonb, 'and the page');
select is((select array(select e ->> 'pending_call_id' from jsonb_array_elements(j -> 'results') as e) from st),
          array(select id::text from public.pending_calls where batch_id = :'c' order by created_at, id limit 2 offset 1),
          'results: the page of rows by (created_at, id)');
select is(array(select jsonb_object_keys(public.batch_status(:'c', 1000, 0) -> 'results' -> 0) order by 1),
          array['attempts', 'cost', 'duration_seconds', 'name', 'outcome', 'pending_call_id', 'phone', 'status', 'success_evaluation',
                'summary', 'updated_at'],
          'a result''s keys: pending_call_id, phone, name, status, attempts, outcome, summary, success_evaluation, duration_seconds, cost, updated_at');
select is((select e from jsonb_array_elements(public.batch_status(:'c') -> 'results') as e where e ->> 'name' = 'T4') - 'pending_call_id' - 'updated_at',
          '{"phone": "+1555103004", "name": "T4", "status": "completed", "attempts": 1, "outcome": "customer-ended-call",
            "summary": "summary of customer-ended-call", "success_evaluation": "true", "duration_seconds": 20, "cost": 0.1}'::jsonb,
          'a completed row: outcome its ended_reason, its results');
select is(array(select e ->> 'outcome' from jsonb_array_elements(public.batch_status(:'c') -> 'results') as e
                 where e ->> 'name' in ('T1', 'T5') order by e ->> 'name'),
          array['batch_cancelled', 'busy'], 'without an ended_reason: outcome is last_error');
select is(public.batch_status(:'k') -> 'metadata', '{"campaign": "spring", "n": 1}'::jsonb, 'metadata as given');
select is(public.batch_status('00000000-0000-0000-0000-0000000000ff'), null, 'batch_status of an unknown batch: null');
select throws_ok(format('select public.batch_status(%L, 0)', :'c'), '22023', null, 'limit 0: refused');
select throws_ok(format('select public.batch_status(%L, 1001)', :'c'), '22023', null, 'limit 1001: refused');
select throws_ok(format('select public.batch_status(%L, 10, -1)', :'c'), '22023', null, 'a negative offset: refused');
select is(jsonb_array_length(public.batch_status(:'c', 1000) -> 'results'), 5, 'limit 1000 is allowed');
-- transcripts
select is(public.batch_transcripts(:'b1'),
          jsonb_build_object('batch_id', :'b1'::uuid,
            'transcripts', jsonb_build_array(jsonb_build_object('pending_call_id', :'r1'::uuid, 'phone', '+1555101001', 'name', 'T1',
              'status', 'completed', 'attempts', 2, 'transcript', 'Agent: hello', 'summary', 'summary of customer-ended-call',
              'ended_reason', 'customer-ended-call', 'duration_seconds', 30)),
            'page', '{"limit": 100, "offset": 0, "total": 1}'::jsonb),
          'batch_transcripts: the rows with a transcript, and the page');
select is(public.batch_transcripts(:'b1', 10, 1) -> 'transcripts', '[]'::jsonb, 'paged');
select is(public.batch_transcripts('00000000-0000-0000-0000-0000000000ff'), null, 'unknown: null');
select throws_ok(format('select public.batch_transcripts(%L, 0)', :'b1'), '22023', null, 'its limit is checked');
-- list_batches
update public.batches set created_at = now() - interval '1 day' where id = :'b1';
select is((select array(select e ->> 'batch_id' from jsonb_array_elements(public.list_batches(1000) -> 'batches') as e)),
          array(select id::text from public.batches order by created_at desc, id desc), 'list_batches: newest first');
select is(public.list_batches(1000) -> 'batches' -> -1, public.batch_progress_of(:'b1'), 'each as batch_progress_of');
select is(public.list_batches(2, 1) -> 'page', jsonb_build_object('limit', 2, 'offset', 1, 'total', (select count(*) from public.batches)),
          'the page: limit, offset, total');
select is(jsonb_array_length(public.list_batches(2, 1) -> 'batches'), 2, 'limit 2: two');
select is(public.list_batches() -> 'page' -> 'limit', '50'::jsonb, 'default limit 50');
select throws_ok('select public.list_batches(1001)', '22023', null, 'list_batches'' limit is checked');

-- Privileges ------------------------------------------------------------------------------------------------------------
select ok((select relrowsecurity from pg_class where oid = 'public.batches'::regclass), 'RLS is enabled on batches');
select policies_are('public', 'batches', array['operators can read']);
select policy_roles_are('public', 'batches', 'operators can read', array['authenticated']);
select policy_cmd_is('public', 'batches', 'operators can read', 'select', 'batches: the policy is for SELECT');
select table_privs_are('public', 'batches', 'anon', array[]::text[], 'batches: anon has no privilege');
select table_privs_are('public', 'batches', 'authenticated', array['SELECT'], 'batches: authenticated may only SELECT');
select table_privs_are('public', 'batches', 'service_role',
                       array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
                       'batches: service_role has every privilege');
select table_privs_are('public', 'batch_progress', 'anon', array[]::text[], 'batch_progress: anon has no privilege');
select table_privs_are('public', 'batch_progress', 'authenticated', array['SELECT'], 'batch_progress: authenticated may SELECT');
select table_privs_are('public', 'batch_progress', 'service_role', array['SELECT'], 'batch_progress: service_role may SELECT');
select ok((select reloptions @> array['security_invoker=true'] from pg_class where oid = 'public.batch_progress'::regclass),
          'batch_progress is security_invoker (RLS of batches applies)');
create temp table brpc (sig regprocedure);
insert into brpc values ('public.create_batch(jsonb)'), ('public.batch_status(uuid, int, int)'), ('public.batch_progress_of(uuid)'),
  ('public.list_batches(int, int)'), ('public.batch_transcripts(uuid, int, int)'), ('public.cancel_batch(uuid)'),
  ('public.retry_failed_batch(uuid)');
grant select on brpc to public;
select is(array(select sig::text from brpc where has_function_privilege('anon', sig, 'execute')
                   or has_function_privilege('authenticated', sig, 'execute')), array[]::text[],
          'anon and authenticated can execute none of the batch functions');
select is((select count(*)::int from brpc where has_function_privilege('service_role', sig, 'execute')), 7,
          'service_role can execute all seven');
select is((select count(*)::int from brpc, aclexplode(coalesce((select proacl from pg_proc where oid = sig), '{}')) where grantee = 0), 0,
          'none is executable by PUBLIC');
select is((select count(*)::int from brpc where (select prosecdef from pg_proc where oid = sig)), 0,
          'they run with the caller''s rights');
select is(array(select p.oid::regprocedure::text from pg_proc p where p.pronamespace = 'outcall_private'::regnamespace
                   and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute'))),
          array['outcall_private.is_viewer()'], 'anon and authenticated can execute nothing in outcall_private but is_viewer()');
set local role anon;
select throws_ok('select count(*) from public.batches', '42501', null, 'anon cannot read batches');
select throws_ok('select count(*) from public.batch_progress', '42501', null, 'anon cannot read batch_progress');
select throws_ok(format('select public.batch_status(%L)', :'b1'), '42501', null, 'anon cannot call batch_status');
reset role;
set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated", "sub": "00000000-0000-0000-0000-0000000000b1"}';
select is((select count(*)::int from public.batches where id = :'b1'), 0, 'authenticated, not an operator: no batch');
select is((select count(*)::int from public.batch_progress where batch_id = :'b1'), 0, 'nor its batch_progress');
reset role;
insert into auth.users (id, email) values ('00000000-0000-0000-0000-0000000000b1', 'b1@example.com');
select is(outcall_private.add_operator('b1@example.com') ->> 'role', 'viewer', 'made a viewer (the default role)');
set local role authenticated;
select is((select count(*)::int from public.batches where id = :'b1'), 1, 'a viewer reads batches');
select is((select total from public.batch_progress where batch_id = :'b1'), 2, 'and batch_progress');
select throws_ok($$insert into public.batches (name) values ('x')$$, '42501', null, 'authenticated cannot insert batches');
select throws_ok($$update public.batches set name = 'x'$$, '42501', null, 'nor update them');
select throws_ok($$select public.create_batch('{"name": "x"}')$$, '42501', null, 'nor call create_batch');
select throws_ok(format('select public.cancel_batch(%L)', :'b1'), '42501', null, 'nor cancel_batch');
reset role;
-- service_role: everything through the functions (their helpers are within its rights)
set local role service_role;
select pg_temp.new_batch('Service', 2, '109') as sb \gset
select is(pg_temp.counts(:'sb'), '2 2 0 0 0 0 0 0', 'service_role creates a batch (counters kept)');
update public.pending_calls set next_attempt_at = now() - interval '1 second' where id = pg_temp.row_of(:'sb', 'T1');
select is(public.claim_pending_call(pg_temp.row_of(:'sb', 'T1')) ->> 'pending_call_id', pg_temp.row_of(:'sb', 'T1')::text,
          'claims its row');
select is(public.batch_status(:'sb') -> 'counts' ->> 'dialling', '1', 'reads its status');
select is(public.batch_progress_of(:'sb') ->> 'status', 'in_progress', 'its progress');
select is(public.list_batches(1) -> 'page' ->> 'limit', '1', 'lists batches');
select is(public.batch_transcripts(:'sb') -> 'transcripts', '[]'::jsonb, 'reads transcripts');
select is(public.cancel_batch(:'sb') - 'batch_id', '{"status": "cancelled", "cancelled": 1, "live": 1}'::jsonb, 'cancels');
select is(public.retry_failed_batch(:'sb') ->> 'error', 'batch_cancelled', 'and retries (refused: cancelled)');
reset role;
update public.pending_calls set call_status = 'failed' where id = :'f2';
set local role service_role;
select is(public.retry_failed_batch(:'f') ->> 'requeued', '1', 'retry_failed_batch requeues as service_role (the guard''s exception works for it)');
select is((select call_status from public.pending_calls where id = :'f2'), 'pending', 'f2 pending again');
reset role;

-- TRUNCATE (no row events): every batch empty
savepoint before_truncate;
truncate public.pending_calls cascade;
select is((select count(*)::int from public.batches where total <> 0 or completed <> 0 or cost_total <> 0 or calls_with_duration <> 0), 0,
          'after TRUNCATE of pending_calls every batch counts 0 rows');
rollback to savepoint before_truncate;

-- Realtime ------------------------------------------------------------------------------------------------------------
select is((select count(*)::int from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'
            and tablename = 'batches'), 1, 'batches is in supabase_realtime');
select is((select relreplident::text from pg_class where oid = 'public.batches'::regclass), 'f', 'batches: replica identity full');

select * from finish();
rollback;
