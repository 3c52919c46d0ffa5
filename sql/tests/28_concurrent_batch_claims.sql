-- The batches' own limits and turns under concurrent claims from two more connections (dblink, as
-- 16_concurrent_claims.sql): B waits for A's dispatch lock and sees what A committed, so no batch passes its
-- max_concurrency, the global limit holds, and no row is claimed twice. The rows and the policy the connections
-- share are committed through A, and deleted / restored at the end. This transaction itself writes nothing they need.
begin;
select plan(18);

create function pg_temp.on_a(p_sql text) returns jsonb language sql as $$
  select j from dblink('a', p_sql) as t(j jsonb)
$$;
-- Live sessions of the committed batch p_name (read through A: the committed state).
create function pg_temp.live_of(p_name text) returns int language sql as $$
  select n from dblink('a', format($q$select count(*)::int from outcall_private.live_sessions as s
                                         join public.pending_calls as p on p.id = s.pending_call_id
                                         join public.batches as b on b.id = p.batch_id
                                        where b.name = %L$q$, p_name)) as t(n int)
$$;
create function pg_temp.name_of(p_answer jsonb) returns text language sql as $$
  select n from dblink('a', format($q$select b.name from public.pending_calls as p join public.batches as b on b.id = p.batch_id
                                        where p.id = %L$q$, p_answer ->> 'pending_call_id')) as t(n text)
$$;

select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
select dblink_exec('a', 'set statement_timeout = ''20s''');
select dblink_exec('b', 'set statement_timeout = ''20s''');
create temp table saved_policy as select * from outcall_private.dispatch_policy;
create temp table saved_rate as select * from outcall_private.rate_state;
select dblink_exec('a', $$update outcall_private.dispatch_policy
                           set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '24:00',
                               max_concurrent_calls = 4, calls_per_second = 1e9;
                         delete from outcall_private.dial_requests;
                         update outcall_private.rate_state set next_slot_at = '-infinity'$$);
select is((select o from dblink('a', $$select public.create_batch('{"name": "27-One", "max_concurrency": 1, "targets": [
                 {"employee_name": "O1", "phone": "+15553030001"}, {"employee_name": "O2", "phone": "+15553030002"},
                 {"employee_name": "O3", "phone": "+15553030003"}]}'::jsonb) ->> 'outcome'$$) as t(o text)), 'created',
          'A commits batch 27-One: at most 1 live call, 3 rows');
select is((select o from dblink('a', $$select public.create_batch('{"name": "27-Two", "max_concurrency": 2, "targets": [
                 {"employee_name": "W1", "phone": "+15553040001"}, {"employee_name": "W2", "phone": "+15553040002"},
                 {"employee_name": "W3", "phone": "+15553040003"}, {"employee_name": "W4", "phone": "+15553040004"}]}'::jsonb) ->> 'outcome'$$)
             as t(o text)), 'created', 'and 27-Two: at most 2, 4 rows (the policy: 4 in all)');

select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
create temp table a_claims as
  select pg_temp.on_a('select public.claim_next_due()') as j union all select pg_temp.on_a('select public.claim_next_due()');
select is((select array_agg(pg_temp.name_of(j) order by 1) from a_claims), array['27-One', '27-Two'],
          'A claims one row of each batch (not committed yet)');
select is(dblink_send_query('b', 'select public.claim_next_due()'), 1, 'B claims meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s dispatch lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(pg_temp.name_of(test_fixtures.b_result()), '27-Two', 'then B sees 27-One full: it claims 27-Two''s second row');

select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(pg_temp.on_a('select public.claim_next_due()'), '{"claimed": false, "reason": "batch_at_capacity"}'::jsonb,
          'A: both batches full (3 live, the global 4 not reached): batch_at_capacity');
select is(dblink_send_query('b', $$select public.claim_pending_call((select id from public.pending_calls
                                     where employee_name = 'O2' and phone = '+15553030002'))$$), 1,
          'B asks for a row of 27-One by id meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s lock');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
select is(test_fixtures.b_result(), '{"claimed": false, "reason": "batch_at_capacity"}'::jsonb, 'B: batch_at_capacity');

select is(array[pg_temp.live_of('27-One'), pg_temp.live_of('27-Two')], array[1, 2], 'each batch at its limit, not past it');
select is((select n from dblink('a', $$select count(*)::int from (select pending_call_id from public.call_sessions as s
                                        join public.pending_calls as p on p.id = s.pending_call_id
                                        join public.batches as b on b.id = p.batch_id
                                       where b.name like '27-%' group by pending_call_id having count(*) > 1) as twice$$)
                   as t(n int)), 0, 'no row was claimed twice');

-- Clean up: the batches (their rows and sessions with them), the policy and the rate state as they were
select dblink_exec('a', $$delete from public.batches where name like '27-%'$$);
select dblink_exec('a', (select format(
         'update outcall_private.dispatch_policy set max_concurrent_calls = %s, calls_per_second = %s,
            window_days = %L, window_start = %L, window_end = %L',
         max_concurrent_calls, calls_per_second, window_days, window_start, window_end) from saved_policy));
select dblink_exec('a', (select format('update outcall_private.rate_state set next_slot_at = %L, batchless_claimed_at = %L',
                                       next_slot_at, batchless_claimed_at) from saved_rate));
select dblink_disconnect('a');
select dblink_disconnect('b');

select * from finish();
rollback;
