-- Smart scheduling (smart_attempt_at, 20_helpers.sql; clinic_answer_rates, 88_analytics.sql): with a synthetic
-- history (sessions at known local hours), a retry and a new batch row go to the clinic's best hour inside the
-- row's window, within the horizon and before the expiry bound; too few samples, too small a gain, the policy off
-- or no clinic: the earliest allowed instant, as before.
begin;
select plan(30);

-- The window is open all week (the test's hours are then the only constraint); retries wait 5 minutes.
select test_fixtures.open_policy();

-- A zone where it is 07:xx now, whenever the test runs: Etc/GMT zones have no DST and POSIX's sign (Etc/GMT-3 is
-- UTC+3). The earliest retry (now + 5 min) is then at 07:05..08:04 local, and every hour named below is today's.
select format('Etc/GMT%s', case when o > 0 then '-' || o when o < 0 then '+' || -o else '' end) as tz
  from (select (7 - extract(hour from now() at time zone 'UTC')::int + 36) % 24 - 12 as o) as x \gset
select (now() at time zone :'tz')::date as today \gset
create function pg_temp.at(p_hour int) returns timestamptz language sql as $$
  select (current_setting('smart.today')::date + make_time(p_hour, 0, 0)) at time zone current_setting('smart.tz')
$$;
select set_config('smart.tz', :'tz', true), set_config('smart.today', :'today', true);

-- p_attempts sessions of clinic p_clinic a week ago (so: today's weekday) at local hour p_hour, p_answered of them
-- answered (completed), the rest not (no-answer); each on a row of its own.
create function pg_temp.history(p_clinic text, p_hour int, p_attempts int, p_answered int) returns void
language sql as $$
  with r as (
    insert into public.pending_calls (employee_name, phone, clinic_name, clinic_timezone, call_status, attempts)
    select 'History ' || n, '+1555' || lpad((abs(hashtext(p_clinic || p_hour || '/' || n)) % 10000000)::text, 7, '0'),
           p_clinic, current_setting('smart.tz'), 'completed', 1
      from generate_series(1, p_attempts) as n
    returning id
  ), numbered as (
    select id, row_number() over (order by id) as n from r
  )
  insert into public.call_sessions (pending_call_id, attempt, status, created_at, answered_at)
  select id, 1, case when n <= p_answered then 'completed' else 'no-answer' end, t.at,
         case when n <= p_answered then t.at end
    from numbered
   cross join lateral (select pg_temp.at(p_hour) - interval '7 days' + (n % 60) * interval '1 minute' as at) as t
$$;

-- A row in its first attempt (calling), of clinic p_clinic (null: none), in the test's zone; returns it.
create function pg_temp.calling(p_clinic text) returns public.pending_calls language sql as $$
  insert into public.pending_calls (employee_name, phone, clinic_name, clinic_timezone, call_status, attempts)
  values ('Retried', '+15550250001', p_clinic, current_setting('smart.tz'), 'calling', 1)
  returning *
$$;
-- Its retry's next_attempt_at, through the one place a row's status moves (advance_pending_call).
create function pg_temp.retried(p_clinic text) returns timestamptz language sql as $$
  select (outcall_private.advance_pending_call(pg_temp.calling(p_clinic), 1, 'retry_pending', 'no-answer')).next_attempt_at
$$;
-- The first attempt of a new batch's row of clinic p_clinic (and p_extra: window, not_before).
create function pg_temp.batch_row(p_clinic text, p_extra jsonb default '{}') returns timestamptz language plpgsql as $$
declare
  v_batch uuid := (public.create_batch(jsonb_build_object('targets', jsonb_build_array(jsonb_build_object(
                     'employee_name', 'New', 'phone', '+15550250002', 'clinic_name', p_clinic,
                     'clinic_timezone', current_setting('smart.tz')))) || p_extra) ->> 'batch_id')::uuid;
begin
  return (select p.next_attempt_at from public.pending_calls as p where p.batch_id = v_batch);
end
$$;

-- Smart Clinic: 07 and 08 answer 20 %, 09 60 %, 11 90 %; 10 answers always but on 10 attempts only.
select pg_temp.history('Smart Clinic', 7, 40, 8), pg_temp.history('Smart Clinic', 8, 40, 8),
       pg_temp.history('Smart Clinic', 9, 40, 24), pg_temp.history('Smart Clinic', 11, 40, 36),
       pg_temp.history('Smart Clinic', 10, 10, 10);
-- Sparse Clinic: 11 is perfect, 07 and 08 never answer, on 29 attempts each (one short of the policy's 30).
select pg_temp.history('Sparse Clinic', 7, 29, 0), pg_temp.history('Sparse Clinic', 8, 29, 0),
       pg_temp.history('Sparse Clinic', 11, 29, 29);
-- Flat Clinic: 50 % in the morning, 52.5 % at 11 (less than the policy's 5 points better).
select pg_temp.history('Flat Clinic', 7, 40, 20), pg_temp.history('Flat Clinic', 8, 40, 20),
       pg_temp.history('Flat Clinic', 11, 40, 21);

-- The learned rates are the dashboard's ---------------------------------------------------------------------------
select is((outcall_private.clinic_answer_rates('Smart Clinic', :'tz', 30)).rates[
            outcall_private.week_slot(extract(isodow from :'today'::date)::int, 11)],
          (select answer_rate from public.analytics_answer_rate_by_hour
            where clinic_name = 'Smart Clinic' and clinic_timezone = :'tz' and local_hour = 11),
          'the scheduler reads the rate the dashboard shows (analytics_answer_rate_by_hour)');
select is((outcall_private.clinic_answer_rates('Smart Clinic', :'tz', 30)).rates[
            outcall_private.week_slot(extract(isodow from :'today'::date)::int, 10)],
          null, 'an hour with fewer attempts than the minimum has no rate');
select is((outcall_private.clinic_answer_rates('Smart Clinic', :'tz', 30)).overall, round(86 / 170.0, 4),
          'overall: answered over attempts, every hour');
select is((outcall_private.clinic_answer_rates('Sparse Clinic', :'tz', 30)).rates, null,
          'no hour sampled enough: no rates at all');

-- A retry ------------------------------------------------------------------------------------------------------------
select is(pg_temp.retried('Smart Clinic'), pg_temp.at(11), 'a retry goes to the best hour in reach: 11:00 (90 %)');
select is(outcall_private.retry_at(pg_temp.calling('Smart Clinic'), pg_temp.at(10)), pg_temp.at(9),
          'expiring at 10:00: the best hour before it, 09:00 (60 %)');
select is(outcall_private.retry_at(pg_temp.calling('Smart Clinic'), pg_temp.at(9)), now() + interval '5 minutes',
          'expiring at 09:00: no better hour before it, the earliest (now + 5 min)');
select (pg_temp.calling('Smart Clinic')).id as windowed_id \gset
update public.pending_calls set window_days = '{1,2,3,4,5,6,7}', window_start = '00:00', window_end = '11:00'
 where id = :'windowed_id'
returning outcall_private.retry_at(pending_calls) = pg_temp.at(9) as windowed \gset
select ok(:'windowed', 'a row window ending at 11:00 excludes the best hour: the best allowed one, 09:00');
select (pg_temp.calling('Smart Clinic')).id as late_id \gset
update public.pending_calls set window_days = '{1,2,3,4,5,6,7}', window_start = '11:30', window_end = '24:00'
 where id = :'late_id'
returning outcall_private.retry_at(pending_calls) = pg_temp.at(11) + interval '30 minutes' as late_window \gset
select ok(:'late_window', 'a row window opening at 11:30: the earliest, which is in the best hour (11:30)');
update outcall_private.dispatch_policy set smart_horizon = '2 hours';
select is(pg_temp.retried('Smart Clinic'), pg_temp.at(9), 'a 2-hour horizon does not reach 11:00: 09:00');
update outcall_private.dispatch_policy set smart_horizon = default;

-- The fallbacks: the earliest allowed instant, as without smart scheduling
select is(pg_temp.retried('Sparse Clinic'), now() + interval '5 minutes',
          'too few samples (29 < 30) in every hour: the earliest');
update outcall_private.dispatch_policy set smart_min_samples = 29;
select is(pg_temp.retried('Sparse Clinic'), pg_temp.at(11), 'with a minimum of 29 the same history moves it to 11:00');
update outcall_private.dispatch_policy set smart_min_samples = default;
select is(pg_temp.retried('Flat Clinic'), now() + interval '5 minutes',
          '52.5 % against 50 %: less than the 5-point margin, the earliest');
update outcall_private.dispatch_policy set smart_margin = 0.02;
select is(pg_temp.retried('Flat Clinic'), pg_temp.at(11), 'with a 2-point margin it moves to 11:00');
update outcall_private.dispatch_policy set smart_margin = default;
-- The learned rates are reused for smart_refresh: new history shows once they are read again.
select pg_temp.history('Flat Clinic', 11, 40, 40);
select is(pg_temp.retried('Flat Clinic'), now() + interval '5 minutes',
          'history added since the rates were learned is not read within smart_refresh (1 hour)');
update outcall_private.dispatch_policy set smart_refresh = '0';
select is(pg_temp.retried('Flat Clinic'), pg_temp.at(11), 'read again (smart_refresh 0): 11:00 now answers 76 %');
update outcall_private.dispatch_policy set smart_refresh = default;
select is(pg_temp.retried(null), now() + interval '5 minutes', 'a row without a clinic_name: the earliest');
select is(pg_temp.retried('Unknown Clinic'), now() + interval '5 minutes', 'a clinic without history: the earliest');
update outcall_private.dispatch_policy set smart_scheduling = false;
select is(pg_temp.retried('Smart Clinic'), now() + interval '5 minutes', 'smart_scheduling off: the earliest');
update outcall_private.dispatch_policy set smart_scheduling = default;

-- A new batch's rows ---------------------------------------------------------------------------------------------
select is(pg_temp.batch_row('Smart Clinic'), pg_temp.at(11), 'a new batch row starts at its clinic''s best hour');
select is(pg_temp.batch_row('Smart Clinic', '{"window": {"days": [1,2,3,4,5,6,7], "start": "00:00", "end": "11:00"}}'),
          pg_temp.at(9), 'in a batch window ending at 11:00: 09:00');
select is(pg_temp.batch_row('Smart Clinic', jsonb_build_object('not_before', pg_temp.at(10))), pg_temp.at(11),
          'not before 10:00 (10 unsampled: compared with the clinic''s 50.6 % overall): 11:00');
select is(pg_temp.batch_row('Sparse Clinic'), now(), 'too few samples: now, as before');
select is(pg_temp.batch_row(null), now(), 'no clinic: now, as before');
select public.create_batch(jsonb_build_object('targets', jsonb_build_array(
         jsonb_build_object('employee_name', 'A', 'phone', '+15550250003', 'clinic_name', 'Smart Clinic',
                            'clinic_timezone', :'tz'),
         jsonb_build_object('employee_name', 'B', 'phone', '+15550250004', 'clinic_name', 'Sparse Clinic',
                            'clinic_timezone', :'tz'),
         jsonb_build_object('employee_name', 'C', 'phone', '+15550250005')))) ->> 'batch_id' as three_id \gset
select is((select array_agg(p.next_attempt_at order by p.clinic_name nulls first)
             from public.pending_calls as p where p.batch_id = :'three_id'),
          array[now(), pg_temp.at(11), now()],
          'one batch, three clinics: each row on its own clinic''s answer (none: now; Smart: 11:00; Sparse: now)');

-- The row's own expiry bounds it (expires_at, 10_tables.sql) ------------------------------------------------------------
select (pg_temp.calling('Smart Clinic')).id as expiring_id \gset
update public.pending_calls set expires_at = pg_temp.at(10) where id = :'expiring_id';
select is((outcall_private.advance_pending_call(p, 1, 'retry_pending', 'no-answer')).next_attempt_at, pg_temp.at(9),
          'a retry of a row expiring at 10:00: 09:00, never the best hour after its expiry')
  from public.pending_calls as p where p.id = :'expiring_id';
select is(pg_temp.batch_row('Smart Clinic', jsonb_build_object('expires_at', pg_temp.at(10))), pg_temp.at(9),
          'a batch expiring at 10:00: its rows start at 09:00');
select public.create_batch(jsonb_build_object('targets', jsonb_build_array(
         jsonb_build_object('employee_name', 'Soon', 'phone', '+15550250006', 'clinic_name', 'Smart Clinic',
                            'clinic_timezone', :'tz', 'expires_at', pg_temp.at(10) + interval '30 minutes'),
         jsonb_build_object('employee_name', 'Later', 'phone', '+15550250007', 'clinic_name', 'Smart Clinic',
                            'clinic_timezone', :'tz')))) ->> 'batch_id' as own_expiry_id \gset
select is((select array_agg(p.next_attempt_at order by p.employee_name)
             from public.pending_calls as p where p.batch_id = :'own_expiry_id'),
          array[pg_temp.at(11), now()],
          'a target expiring at 10:30 before its clinic''s 11:00 starts now; the other at 11:00');
select is((select count(*)::int from public.pending_calls as p
            where p.batch_id = :'own_expiry_id' and p.next_attempt_at >= p.expires_at), 0,
          'no row of it is scheduled at or after its own expiry');

update outcall_private.dispatch_policy set smart_scheduling = false;
select is(pg_temp.batch_row('Smart Clinic'), now(), 'smart_scheduling off: now');

select * from finish();
rollback;
