-- The dispatch limits under concurrent claims: two more connections (dblink), A claiming inside an open
-- transaction while B claims. B must wait for A's dispatch lock (outcall_private.rate_state) and then see what
-- A committed: never both succeed past a limit. Also two sweeps at once never hand out the same session.
-- The rows and the policy the connections share must be committed: this file commits them through A, and
-- deletes / restores them at the end. This transaction itself writes nothing they need.
begin;
select plan(49);

-- A's claim (inside its open transaction), synchronously.
create function pg_temp.on_a(p_sql text) returns jsonb language sql as $$
  select j from dblink('a', p_sql) as t(j jsonb)
$$;
create function pg_temp.live_sessions() returns int language sql as $$
  select count(*)::int from outcall_private.live_sessions
   where pending_call_id::text like '00000000-0000-0000-0000-0000000e%'
$$;

select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
-- (a bug must fail the test, not hang it)
select is(dblink_exec('a', 'set statement_timeout = ''20s'''), 'SET', 'A gives up after 20 s');
select is(dblink_exec('b', 'set statement_timeout = ''20s'''), 'SET', 'B too');

-- Committed: a policy open all week with room for one live call, and the rows ------------------------------
create temp table saved_policy as select * from outcall_private.dispatch_policy;
create temp table saved_rate as select * from outcall_private.rate_state;
select is(dblink_exec('a', $$update outcall_private.dispatch_policy
                               set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '24:00',
                                   max_concurrent_calls = 1, calls_per_second = 1e9$$),
          'UPDATE 1', 'A commits a policy: all week, at most one live call, no rate limit');
select is(dblink_exec('a', $$delete from outcall_private.dial_requests; update outcall_private.rate_state set next_slot_at = '-infinity'$$), 'UPDATE 1',
          'and a free calls-per-second slot');
select is(dblink_exec('a', $$insert into public.pending_calls (id, employee_name, phone) values
                               ('00000000-0000-0000-0000-0000000e0001', 'R1', '+15550001701'),
                               ('00000000-0000-0000-0000-0000000e0002', 'R2', '+15550001702'),
                               ('00000000-0000-0000-0000-0000000e0003', 'R3', '+15550001703'),
                               ('00000000-0000-0000-0000-0000000e0004', 'R4', '+15550001703'),
                               ('00000000-0000-0000-0000-0000000e0005', 'R5', '+15550001705'),
                               ('00000000-0000-0000-0000-0000000e0006', 'R6', '+15550001706')$$),
          'INSERT 0 6', 'A commits six pending rows (R3 and R4 share a phone)');

-- claim_pending_call x 2, room for one ------------------------------------------------------------------------
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a($$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0001')$$) ->> 'attempt', '1',
          'A claims R1 (not committed yet)');
select is(dblink_send_query('b', $$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0002')$$), 1,
          'B claims R2 meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result(), '{"claimed": false, "reason": "at_capacity"}'::jsonb,
          'then B sees A''s live call: at_capacity');
select is(pg_temp.live_sessions(), 1, 'one live session, not two');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000e0002'), 'pending',
          'R2 is still pending');

-- claim_next_due x 2, room for one ----------------------------------------------------------------------------
select is(pg_temp.on_a($$select public.record_dial_result((select id from public.call_sessions
                                                           where pending_call_id = '00000000-0000-0000-0000-0000000e0001'),
                                                          null, 'boom', null)$$) ->> 'call_status',
          'retry_pending', 'R1''s dial fails (committed): the place is free again');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a('select public.claim_next_due()') ->> 'pending_call_id', '00000000-0000-0000-0000-0000000e0002',
          'A claims the next due row, R2');
select is(dblink_send_query('b', 'select public.claim_next_due()'), 1, 'B claims the next due row meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result(), '{"claimed": false, "reason": "at_capacity"}'::jsonb, 'then B: at_capacity');
select is(pg_temp.live_sessions(), 1, 'still one live session');

-- Two rows of one phone at once: one dial per phone -------------------------------------------------------------
select is(dblink_exec('a', 'update outcall_private.dispatch_policy set max_concurrent_calls = 1000'), 'UPDATE 1',
          'A commits room for many calls');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a($$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0003')$$) ->> 'attempt', '1',
          'A claims R3');
select is(dblink_send_query('b', $$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0004')$$), 1,
          'B claims R4, same phone, meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock (the phone is checked under it)');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result(), '{"claimed": false, "reason": "phone_dialing", "retry_after_ms": 250}'::jsonb,
          'then B: phone_dialing');

-- The calls-per-second slot ---------------------------------------------------------------------------------------
select is(dblink_exec('a', $$update outcall_private.dispatch_policy set calls_per_second = 1;
                             delete from outcall_private.dial_requests; update outcall_private.rate_state set next_slot_at = '-infinity'$$), 'UPDATE 1',
          'A commits 1 call/s, every send slot free');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a($$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0005')$$) ->> 'attempt', '1',
          'A claims R5');
select is(dblink_send_query('b', $$select public.claim_pending_call('00000000-0000-0000-0000-0000000e0006')$$), 1,
          'B claims R6 meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
create temp table b_rate as select test_fixtures.b_result() as j;
select ok((select j ->> 'reason' = 'rate_limited' and (j ->> 'retry_after_ms')::int between 1 and 1000 from b_rate),
          'then B: rate_limited, retry_after_ms up to 1 s');

-- Two sweeps at once ----------------------------------------------------------------------------------------------
-- R2, R3 and R5 are dialing; A makes them stale (replica mode: no updated_at trigger)
select is(dblink_exec('a', $$set session_replication_role = replica;
                             update public.call_sessions
                                set created_at = created_at - interval '10 minutes', updated_at = updated_at - interval '10 minutes'
                              where pending_call_id::text like '00000000-0000-0000-0000-0000000e%' and status = 'dialing';
                             set session_replication_role = origin$$),
          'SET', 'A makes the three dialing sessions stale');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(jsonb_array_length(pg_temp.on_a('select public.sweep_stale_sessions(1)') -> 'to_reconcile'), 1,
          'A''s sweep takes one');
select is((select jsonb_array_length(j -> 'to_reconcile') from dblink('b', 'select public.sweep_stale_sessions()') as t(j jsonb)),
          2, 'B''s sweep at the same time takes the other two, at once (SKIP LOCKED)');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is((select count(*)::int from public.call_sessions
            where pending_call_id::text like '00000000-0000-0000-0000-0000000e%' and reconciled_at is not null), 3,
          'each stale session was handed out once');

-- Clean up: the rows, the policy and the rate state as they were -----------------------------------------------------
select is(dblink_exec('a', $$delete from public.pending_calls where id::text like '00000000-0000-0000-0000-0000000e%'$$),
          'DELETE 6', 'A deletes the rows (and their sessions)');
select is(dblink_exec('a', (select format(
            'update outcall_private.dispatch_policy set max_concurrent_calls = %s, calls_per_second = %s, retry_delays = %L,
               window_days = %L, window_start = %L, window_end = %L, reconcile_after = %L',
            max_concurrent_calls, calls_per_second, retry_delays, window_days, window_start, window_end, reconcile_after)
            from saved_policy)), 'UPDATE 1', 'A restores the policy');
select is(dblink_exec('a', (select format('update outcall_private.rate_state set next_slot_at = %L', next_slot_at) from saved_rate)),
          'UPDATE 1', 'and the rate state');
select ok((select p = s from outcall_private.dispatch_policy as p, saved_policy as s), 'the committed policy is as before');
select is(dblink_disconnect('a'), 'OK', 'A is closed');
select is(dblink_disconnect('b'), 'OK', 'B is closed');

select * from finish();
rollback;
