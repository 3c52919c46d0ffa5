-- The dashboard's views (sql/schema/88_analytics.sql): call_list and the analytics_* views, with exact figures on
-- known rows and sessions, and who reads them (viewers yes, through the tables' RLS; anyone else no row).
begin;
select plan(17);

-- Known data ----------------------------------------------------------------------------------------------------------
-- 2026-03-02 is a Monday. New York is on EST (UTC-5) until 8 March, London on GMT (UTC+0) until 29 March.
insert into public.batches (id, name, created_at) values
  ('00000000-0000-0000-0000-00000021b001', 'March batch', '2026-03-02 08:00Z'),
  ('00000000-0000-0000-0000-00000021b002', 'Empty batch', '2026-03-02 09:00Z');
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions) values
  ('00000000-0000-0000-0000-00000021c001', '+15550210006', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": 0}]');
insert into public.pending_calls (id, employee_name, phone, clinic_name, clinic_timezone, batch_id, call_status, attempts,
                                  success_evaluation, ended_reason, created_at) values
  ('00000000-0000-0000-0000-00000021a001', 'R1', '+15550210001', 'Alpha Clinic', 'America/New_York', '00000000-0000-0000-0000-00000021b001',
   'completed', 1, 'true', 'customer-ended-call', '2026-03-02 10:00Z'),
  ('00000000-0000-0000-0000-00000021a002', 'R2', '+15550210002', 'Alpha Clinic', 'America/New_York', '00000000-0000-0000-0000-00000021b001',
   'completed', 2, 'False', 'customer-ended-call', '2026-03-02 10:00Z'),
  ('00000000-0000-0000-0000-00000021a003', 'R3', '+15550210003', 'Alpha Clinic', 'America/New_York', '00000000-0000-0000-0000-00000021b001',
   'failed', 2, null, null, '2026-03-02 23:59Z'),
  ('00000000-0000-0000-0000-00000021a004', 'R4', '+15550210004', 'Alpha Clinic', 'America/New_York', null,
   'pending', 0, null, null, '2026-03-03 00:00Z'),
  ('00000000-0000-0000-0000-00000021a005', 'R5', '+15550210005', 'Alpha Clinic', 'America/New_York', null,
   'completed', 1, ' PASS ', 'assistant-ended-call', '2026-03-03 04:00Z'),
  ('00000000-0000-0000-0000-00000021a006', 'R6', '+15550210006', 'Beta Clinic', 'Europe/London', null,
   'completed', 1, 'true', 'customer-ended-call', '2026-03-03 09:00Z'),
  ('00000000-0000-0000-0000-00000021a007', 'R7', '+15550210007', 'Beta Clinic', 'Europe/London', null,
   'cancelled', 1, 'true', null, '2026-03-03 09:30Z'),
  ('00000000-0000-0000-0000-00000021a008', 'R8', '+15550210008', null, 'America/New_York', null,
   'failed', 0, null, null, '2026-03-03 12:00Z');
-- Sessions: (row, attempt) at a known instant; local times in the comments.
insert into public.call_sessions (id, pending_call_id, attempt, status, created_at, answered_at, cost, duration_seconds,
                                  classification_id, classification_type) values
  -- Alpha, Monday 09:05 New York: answered (in-progress reported), cost 0.50, 60 s
  ('00000000-0000-0000-0000-00000021d001', '00000000-0000-0000-0000-00000021a001', 1, 'completed', '2026-03-02 14:05Z',
   '2026-03-02 14:05:20Z', 0.50, 60, null, null),
  -- Alpha, Monday 09:40: no answer
  ('00000000-0000-0000-0000-00000021d002', '00000000-0000-0000-0000-00000021a002', 1, 'no-answer', '2026-03-02 14:40Z',
   null, null, null, null, null),
  -- Alpha, Monday 09:59: completed without an in-progress callback (answered all the same), replaying the cache
  ('00000000-0000-0000-0000-00000021d006', '00000000-0000-0000-0000-00000021a002', 2, 'completed', '2026-03-02 14:59Z',
   null, 1.00, 120, '00000000-0000-0000-0000-00000021c001', 'ivr_only'),
  -- Alpha, Monday 09:50: busy
  ('00000000-0000-0000-0000-00000021d003', '00000000-0000-0000-0000-00000021a003', 1, 'busy', '2026-03-02 14:50Z',
   null, null, null, null, null),
  -- Alpha, Monday 11:10: the dial failed (never reached Twilio: not an attempt of the answer rate)
  ('00000000-0000-0000-0000-00000021d004', '00000000-0000-0000-0000-00000021a003', 2, 'dial_failed', '2026-03-02 16:10Z',
   null, null, null, null, null),
  -- Alpha, Monday 23:30 New York (Tuesday 04:30 UTC): answered, still in progress, cost 0.25
  ('00000000-0000-0000-0000-00000021d005', '00000000-0000-0000-0000-00000021a005', 1, 'in-progress', '2026-03-03 04:30Z',
   '2026-03-03 04:30:10Z', 0.25, null, null, null),
  -- Beta, Tuesday 09:15 London: answered, replaying the cache, cost 0.75, 90 s
  ('00000000-0000-0000-0000-00000021d007', '00000000-0000-0000-0000-00000021a006', 1, 'completed', '2026-03-03 09:15Z',
   '2026-03-03 09:15:05Z', 0.75, 90, '00000000-0000-0000-0000-00000021c001', 'ivr_only'),
  -- Beta, Tuesday 09:45: still ringing
  ('00000000-0000-0000-0000-00000021d008', '00000000-0000-0000-0000-00000021a007', 1, 'ringing', '2026-03-03 09:45Z',
   null, null, null, null, null);
insert into public.classification_runs (phone, session_id, pending_call_id, purpose, token_sha256, created_at) values
  ('+15550210001', '00000000-0000-0000-0000-00000021d001', '00000000-0000-0000-0000-00000021a001', 'learn', sha256('1'), '2026-03-02 14:05Z'),
  ('+15550210005', '00000000-0000-0000-0000-00000021d005', '00000000-0000-0000-0000-00000021a005', 'learn', sha256('2'), '2026-03-03 04:30Z'),
  ('+15550210006', '00000000-0000-0000-0000-00000021d007', '00000000-0000-0000-0000-00000021a006', 'verify', sha256('3'), '2026-03-03 09:15Z');
select is((select count(*)::int from public.pending_calls), 8, 'fixture: the only rows are these eight');

-- analytics_success_by_clinic ---------------------------------------------------------------------------------------------
select results_eq(
  $$select clinic_name, calls, completed, failed, successful, success_rate
      from public.analytics_success_by_clinic order by clinic_name nulls last$$,
  $$values ('Alpha Clinic', 5::bigint, 3::bigint, 1::bigint, 2::bigint, 0.5000::numeric),
           ('Beta Clinic', 2, 1, 0, 1, 1.0000),
           (null, 1, 0, 1, 0, 0.0000)$$,
  'success by clinic: Alpha 2 successes (true, " PASS ") of 4 ended; Beta 1 of 1 (a cancelled row counts as a call only); no clinic 0 of 1');
select is((select success_rate from public.analytics_success_by_clinic where clinic_name = 'Beta Clinic'), 1.0000,
          'a "true" on a cancelled row is no success');

-- analytics_answer_rate_by_hour ----------------------------------------------------------------------------------------
select results_eq(
  $$select clinic_name, clinic_timezone, local_weekday, local_hour, attempts, answered, answer_rate
      from public.analytics_answer_rate_by_hour order by clinic_name, local_weekday, local_hour$$,
  $$values ('Alpha Clinic', 'America/New_York', 1, 9, 4::bigint, 2::bigint, 0.5000::numeric),
           ('Alpha Clinic', 'America/New_York', 1, 23, 1, 1, 1.0000),
           ('Beta Clinic', 'Europe/London', 2, 9, 2, 1, 0.5000)$$,
  'answer rate: Monday 9 h in New York 2 of 4 (completed twice, no-answer, busy), Monday 23 h (Tuesday in UTC) 1 of 1; London Tuesday 9 h 1 of 2 (ringing is not answered); the failed dial is no attempt');

-- analytics_outcomes_daily -------------------------------------------------------------------------------------------
select results_eq(
  $$select day, call_status, ended_reason, calls from public.analytics_outcomes_daily
     order by day, call_status, ended_reason nulls first$$,
  $$values ('2026-03-02'::date, 'completed', 'customer-ended-call', 2::bigint),
           ('2026-03-02', 'failed', null, 1),
           ('2026-03-03', 'cancelled', null, 1),
           ('2026-03-03', 'completed', 'assistant-ended-call', 1),
           ('2026-03-03', 'completed', 'customer-ended-call', 1),
           ('2026-03-03', 'failed', null, 1),
           ('2026-03-03', 'pending', null, 1)$$,
  'outcomes per UTC day of creation, status and ended reason (23:59Z is still the 2nd, 00:00Z the 3rd)');

-- analytics_cost_daily -----------------------------------------------------------------------------------------------
select results_eq(
  $$select day, calls, cost, duration_seconds from public.analytics_cost_daily order by day$$,
  $$values ('2026-03-02'::date, 5::bigint, 1.50::numeric, 180::bigint),
           ('2026-03-03', 3, 1.00, 90)$$,
  'cost per day: every attempt counts (the 2nd: 5 sessions, 0.50 + 1.00, 60 + 120 s; the 3rd: 3 sessions, 0.25 + 0.75, 90 s)');

-- analytics_cost_by_batch --------------------------------------------------------------------------------------------
select results_eq(
  $$select batch_id, name, calls, attempts, cost, duration_seconds from public.analytics_cost_by_batch order by created_at$$,
  $$values ('00000000-0000-0000-0000-00000021b001'::uuid, 'March batch', 3::bigint, 5::bigint, 1.50::numeric, 180::bigint),
           ('00000000-0000-0000-0000-00000021b002', 'Empty batch', 0, 0, 0, 0)$$,
  'cost per batch: March 3 rows, 5 attempts, 1.50, 180 s; an empty batch zeros');

-- analytics_learning_daily -------------------------------------------------------------------------------------------
select results_eq(
  $$select day, learning_calls, dialled, cache_hits, hit_rate from public.analytics_learning_daily order by day$$,
  $$values ('2026-03-02'::date, 1::bigint, 5::bigint, 1::bigint, 0.2000::numeric),
           ('2026-03-03', 1, 3, 1, 0.3333)$$,
  'learning per day: one learning run each day (the verify run is not one), cache hits 1 of 5 and 1 of 3 attempts');

-- call_list ----------------------------------------------------------------------------------------------------------
select results_eq(
  $$select id, batch_name, call_status, attempts, session_id, session_status, classification_type, archived_at
      from public.call_list where id in ('00000000-0000-0000-0000-00000021a002', '00000000-0000-0000-0000-00000021a004',
                                         '00000000-0000-0000-0000-00000021a006') order by id$$,
  $$values ('00000000-0000-0000-0000-00000021a002'::uuid, 'March batch', 'completed', 2, '00000000-0000-0000-0000-00000021d006'::uuid,
            'completed', 'ivr_only', null::timestamptz),
           ('00000000-0000-0000-0000-00000021a004', null, 'pending', 0, null, null, null, null),
           ('00000000-0000-0000-0000-00000021a006', null, 'completed', 1, '00000000-0000-0000-0000-00000021d007',
            'completed', 'ivr_only', null)$$,
  'call_list: the row with its batch''s name and its current attempt''s session (R2: attempt 2, not 1), nulls before any attempt');
select is((select count(*)::int from public.call_list), 8, 'call_list: one line per row');

-- Comments: the front end reads them --------------------------------------------------------------------------------
select is(array(select c.relname::text from pg_class as c
                 where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
                   and (c.relname like 'analytics\_%' or c.relname = 'call_list')
                   and coalesce(obj_description(c.oid, 'pg_class'), '') = ''
                 order by 1), '{}'::text[], 'every dashboard view has a comment');
select is(array(select c.relname::text from pg_class as c
                 where c.relnamespace = 'public'::regnamespace and c.relkind = 'v'
                   and (c.relname like 'analytics\_%' or c.relname = 'call_list')
                   and not coalesce((c.reloptions @> '{security_invoker=true}'), false)
                 order by 1), '{}'::text[], 'every dashboard view is security_invoker');

-- Who reads them -----------------------------------------------------------------------------------------------------
insert into auth.users (id, email) values
  ('00000000-0000-0000-0000-000000210001', 'viewer21@example.com'),
  ('00000000-0000-0000-0000-000000210002', 'stranger21@example.com');
select outcall_private.add_operator('viewer21@example.com', 'viewer');
create temp table as_postgres as
  select 'success' as v, count(*) as n from public.analytics_success_by_clinic
  union all select 'answer', count(*) from public.analytics_answer_rate_by_hour
  union all select 'outcomes', count(*) from public.analytics_outcomes_daily
  union all select 'cost', count(*) from public.analytics_cost_daily
  union all select 'batch', count(*) from public.analytics_cost_by_batch
  union all select 'learning', count(*) from public.analytics_learning_daily
  union all select 'list', count(*) from public.call_list;
grant select on as_postgres to public;
create function pg_temp.counts() returns table (v text, n bigint) language sql as $$
  select 'success', count(*) from public.analytics_success_by_clinic
  union all select 'answer', count(*) from public.analytics_answer_rate_by_hour
  union all select 'outcomes', count(*) from public.analytics_outcomes_daily
  union all select 'cost', count(*) from public.analytics_cost_daily
  union all select 'batch', count(*) from public.analytics_cost_by_batch
  union all select 'learning', count(*) from public.analytics_learning_daily
  union all select 'list', count(*) from public.call_list
$$;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000210001", "role": "authenticated"}', true);
set local role authenticated;
select results_eq('select * from pg_temp.counts()', 'select * from as_postgres', 'a viewer reads every line of every view');
select is((select cost from public.analytics_cost_by_batch where name = 'March batch'), 1.50::numeric, 'with the same figures');
reset role;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000210002", "role": "authenticated"}', true);
set local role authenticated;
select is((select sum(n)::int from pg_temp.counts()), 0, 'a signed-in non-operator: no line of any view');
reset role;
set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select throws_ok('select count(*) from public.analytics_cost_daily', '42501', null, 'anon: no privilege on the views');
select throws_ok('select count(*) from public.call_list', '42501', null, 'anon: nor on call_list');
reset role;

select * from finish();
rollback;
