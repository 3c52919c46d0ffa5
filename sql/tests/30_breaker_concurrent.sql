-- The circuit breaker's half-open probe under concurrent claims: after the cool-down, A's claim (inside its open
-- transaction) becomes the probe while B claims; B waits for A's dispatch lock and then refuses (breaker_open):
-- exactly one probe. Like 16_concurrent_claims.sql, the rows, the policy and the breaker the connections share are
-- committed through A and put back at the end.
begin;
select plan(16);

create function pg_temp.on_a(p_sql text) returns jsonb language sql as $$
  select j from dblink('a', p_sql) as t(j jsonb)
$$;

select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
select is(dblink_exec('a', 'set statement_timeout = ''20s'''), 'SET', 'A gives up after 20 s');
select is(dblink_exec('b', 'set statement_timeout = ''20s'''), 'SET', 'B too');

create temp table saved_policy as select * from outcall_private.dispatch_policy;
create temp table saved_rate as select * from outcall_private.rate_state;
create temp table saved_breaker as select * from outcall_private.provider_breaker;
create temp table saved_log as select coalesce(max(id), 0) as last_id from public.breaker_transitions;

select is(dblink_exec('a', $$update outcall_private.dispatch_policy
                               set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '24:00',
                                   max_concurrent_calls = 1000, calls_per_second = 1e9;
                             delete from outcall_private.dial_requests;
                             update outcall_private.rate_state set next_slot_at = '-infinity';
                             update outcall_private.provider_breaker
                                set state = 'open', twilio_failures = 5, twilio_first_failure_at = now(),
                                    opened_at = now() - interval '31 seconds', reopen_at = now() - interval '1 second'$$),
          'UPDATE 1', 'A commits an open policy, free send slots, and a breaker whose cool-down is over');
select is(dblink_exec('a', $$insert into public.pending_calls (id, employee_name, phone) values
                               ('00000000-0000-0000-0000-0000000f0001', 'P1', '+15550001801'),
                               ('00000000-0000-0000-0000-0000000f0002', 'P2', '+15550001802')$$),
          'INSERT 0 2', 'and two pending rows');

select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a($$select public.claim_pending_call('00000000-0000-0000-0000-0000000f0001')$$) -> 'breaker' ->> 'reason',
          'cooldown_over', 'A''s claim is the probe (not committed yet)');
select is(dblink_send_query('b', $$select public.claim_pending_call('00000000-0000-0000-0000-0000000f0002')$$), 1,
          'B claims the other row meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result(), '{"claimed": false, "reason": "breaker_open", "retry_after_ms": 1000}'::jsonb,
          'then B sees the probe out: breaker_open, exactly one probe');
select is((select count(*)::int from public.breaker_transitions, saved_log where id > last_id and to_state = 'half_open'), 1,
          'one transition to half_open');

-- Clean up: the rows, the log, the policy, the rate state and the breaker as they were ---------------------------
select is(dblink_exec('a', (select format(
            $$delete from public.pending_calls where id::text like '00000000-0000-0000-0000-0000000f%%';
              delete from public.breaker_transitions where id > %s;
              update outcall_private.dispatch_policy set max_concurrent_calls = %s, calls_per_second = %s,
                window_days = %L, window_start = %L, window_end = %L;
              update outcall_private.rate_state set next_slot_at = %L;
              update outcall_private.provider_breaker set state = %L, twilio_failures = %s, twilio_first_failure_at = %L,
                vapi_failures = %s, vapi_first_failure_at = %L, opened_at = %L, reopen_at = %L, probe_session_id = %L,
                probe_started_at = %L, changed_at = %L$$,
            l.last_id, p.max_concurrent_calls, p.calls_per_second, p.window_days, p.window_start, p.window_end,
            r.next_slot_at, b.state, b.twilio_failures, b.twilio_first_failure_at, b.vapi_failures,
            b.vapi_first_failure_at, b.opened_at, b.reopen_at, b.probe_session_id, b.probe_started_at, b.changed_at)
            from saved_policy as p, saved_rate as r, saved_breaker as b, saved_log as l)), 'UPDATE 1',
          'A puts everything back');
select is(dblink_disconnect('a'), 'OK', 'A is closed');
select is(dblink_disconnect('b'), 'OK', 'B is closed');

select * from finish();
rollback;
