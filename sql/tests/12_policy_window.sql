-- The dispatch policy and the calling window: outcall_private.dispatch_policy, outcall_private.rate_state,
-- outcall_private.calling_window_opening(tz, at, days, start, end) and (tz, at).
begin;
select plan(56);

-- The policy: one row, the defaults a deployment gets ---------------------------------------------------
select has_table('outcall_private', 'dispatch_policy', 'outcall_private.dispatch_policy exists');
select has_table('outcall_private', 'rate_state', 'outcall_private.rate_state exists');
select is((select count(*)::int from outcall_private.dispatch_policy), 1, 'the migration inserted the policy row');
select row_eq($$select max_concurrent_calls, calls_per_second, retry_delays, window_days, window_start, window_end,
                       reconcile_after from outcall_private.dispatch_policy$$,
              row(10, 1::numeric, '{5 minutes,15 minutes,30 minutes}'::interval[], '{1,2,3,4,5}'::int[],
                  '09:00'::time, '17:00'::time, '5 minutes'::interval),
              'defaults: 10 live calls, 1 call/s, retries after 5/15/30 min, Mon-Fri 09:00-17:00, reconcile after 5 min');
select is((select count(*)::int from outcall_private.rate_state), 1, 'the migration inserted the rate state row');
select col_type_is('outcall_private', 'dispatch_policy', 'retry_delays', 'interval[]', 'retry_delays is interval[]');
select col_type_is('outcall_private', 'dispatch_policy', 'window_start', 'time without time zone', 'window_start is time');

select throws_ok($$insert into outcall_private.dispatch_policy default values$$, '23505', null, 'a second row is refused');
select throws_ok($$insert into outcall_private.dispatch_policy (id) values (false)$$, '23514', null,
                 'a second row under another id too');
select throws_ok($$insert into outcall_private.rate_state default values$$, '23505', null, 'a second rate state row is refused');
select throws_ok($$update outcall_private.dispatch_policy set max_concurrent_calls = 0$$, '23514', null,
                 'max_concurrent_calls 0 is refused');
select throws_ok($$update outcall_private.dispatch_policy set calls_per_second = 0$$, '23514', null,
                 'calls_per_second 0 is refused');
select lives_ok($$update outcall_private.dispatch_policy set calls_per_second = 0.5$$,
                'calls_per_second 0.5 (one call every 2 s) is accepted');
select throws_ok($$update outcall_private.dispatch_policy set retry_delays = '{}'$$, '23514', null,
                 'no retry delay is refused');
select throws_ok($$update outcall_private.dispatch_policy set retry_delays = '{5 minutes,0 seconds}'$$, '23514', null,
                 'a zero retry delay is refused');
select throws_ok($$update outcall_private.dispatch_policy set retry_delays = '{5 minutes,-1 minutes}'$$, '23514', null,
                 'a negative retry delay is refused');
select throws_ok($$update outcall_private.dispatch_policy set retry_delays = '{5 minutes,NULL}'$$, '23514', null,
                 'a null retry delay is refused');
select throws_ok($$update outcall_private.dispatch_policy set window_days = '{}'$$, '23514', null, 'no window day is refused');
select throws_ok($$update outcall_private.dispatch_policy set window_days = '{0,1}'$$, '23514', null, 'day 0 is refused');
select throws_ok($$update outcall_private.dispatch_policy set window_days = '{7,8}'$$, '23514', null, 'day 8 is refused');
select throws_ok($$update outcall_private.dispatch_policy set window_start = '17:00', window_end = '09:00'$$, '23514', null,
                 'a window ending before it starts is refused');
select throws_ok($$update outcall_private.dispatch_policy set window_start = '09:00', window_end = '09:00'$$, '23514', null,
                 'an empty window is refused');
select lives_ok($$update outcall_private.dispatch_policy set window_start = '00:00', window_end = '24:00'$$,
                'an all-day window (00:00-24:00) is accepted');
select throws_ok($$update outcall_private.dispatch_policy set reconcile_after = '0 seconds'$$, '23514', null,
                 'reconcile_after 0 is refused');

-- Explicit examples ----------------------------------------------------------------------------------------
create function pg_temp.open_at(p_tz text, p_at timestamptz) returns timestamptz language sql as
  $$ select outcall_private.calling_window_opening(p_tz, p_at, '{1,2,3,4,5}', '09:00', '17:00') $$;

select is(pg_temp.open_at('America/New_York', '2026-03-11 10:00-04'), '2026-03-11 10:00-04'::timestamptz,
          'NY Wednesday 10:00: inside, itself');
select is(pg_temp.open_at('America/New_York', '2026-03-11 09:00-04'), '2026-03-11 09:00-04'::timestamptz,
          'NY at 09:00 exactly: inside (the start is in)');
select is(pg_temp.open_at('America/New_York', '2026-03-06 16:59:59.999999-05'), '2026-03-06 16:59:59.999999-05'::timestamptz,
          'NY Friday 16:59:59.999999: inside');
select is(pg_temp.open_at('America/New_York', '2026-03-11 08:59-04'), '2026-03-11 13:00+00'::timestamptz,
          'NY Wednesday 08:59: 09:00 the same day');
select is(pg_temp.open_at('America/New_York', '2026-03-11 17:00-04'), '2026-03-12 13:00+00'::timestamptz,
          'NY Wednesday 17:00 (the end is out): Thursday 09:00');
select is(pg_temp.open_at('America/New_York', '2026-03-06 17:00-05'), '2026-03-09 13:00+00'::timestamptz,
          'NY Friday 17:00 EST: Monday 09:00 EDT = 13:00Z (the clocks went forward on Sunday)');
select is(pg_temp.open_at('America/New_York', '2026-10-30 17:00-04'), '2026-11-02 14:00+00'::timestamptz,
          'NY Friday 17:00 EDT: Monday 09:00 EST = 14:00Z (the clocks went back on Sunday)');
select is(pg_temp.open_at('America/New_York', '2026-03-08 00:30-05'), '2026-03-09 13:00+00'::timestamptz,
          'NY Sunday 00:30 EST, before the change that night: Monday 09:00 EDT');
select is(pg_temp.open_at('America/New_York', '2026-03-07 23:59:59-05'), '2026-03-09 13:00+00'::timestamptz,
          'NY Saturday 23:59:59 EST: Monday 09:00 EDT');
select is(pg_temp.open_at('America/New_York', '2026-11-01 01:30-04'), '2026-11-02 14:00+00'::timestamptz,
          'NY Sunday 01:30 EDT (the first of two 01:30s): Monday 09:00 EST');
select is(pg_temp.open_at('Europe/London', '2026-03-27 17:00+00'), '2026-03-30 08:00+00'::timestamptz,
          'London Friday 17:00 GMT: Monday 09:00 BST = 08:00Z');
select is(pg_temp.open_at('Europe/London', '2026-10-23 17:00+01'), '2026-10-26 09:00+00'::timestamptz,
          'London Friday 17:00 BST: Monday 09:00 GMT = 09:00Z');
select is(pg_temp.open_at('Australia/Sydney', '2026-04-03 17:00+11'), '2026-04-05 23:00+00'::timestamptz,
          'Sydney Friday 17:00 AEDT: Monday 09:00 AEST = Sunday 23:00Z');
select is(pg_temp.open_at('Australia/Sydney', '2026-10-02 17:00+10'), '2026-10-04 22:00+00'::timestamptz,
          'Sydney Friday 17:00 AEST: Monday 09:00 AEDT = Sunday 22:00Z');
select is(pg_temp.open_at('Asia/Kolkata', '2026-03-06 17:00+05:30'), '2026-03-09 03:30+00'::timestamptz,
          'Kolkata Friday 17:00 IST: Monday 09:00 IST = 03:30Z');
select is(pg_temp.open_at('Asia/Kolkata', '2026-03-09 03:29+00'), '2026-03-09 03:30+00'::timestamptz,
          'Kolkata Monday 08:59 IST: 09:00 IST');
-- Wall time that does not exist or exists twice: Postgres decides (documented)
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-08 00:00-05', '{7}', '02:30', '04:00'),
          '2026-03-08 07:30+00'::timestamptz,
          'a start in the spring-forward gap (02:30) opens at 03:30 EDT: read with the offset before the gap');
select is(outcall_private.calling_window_opening('America/New_York', '2026-11-01 00:00-04', '{7}', '01:30', '04:00'),
          '2026-11-01 06:30+00'::timestamptz,
          'a start in the repeated hour (01:30) opens at the later 01:30, EST');
-- All day, one day a week, and the end '24:00'
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-08 23:59:59-04', '{7}', '00:00', '24:00'),
          '2026-03-08 23:59:59-04'::timestamptz, 'an all-day window: Sunday 23:59:59 is inside');
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-09 00:00-04', '{7}', '00:00', '24:00'),
          '2026-03-15 00:00-04'::timestamptz, 'Sundays only: Monday 00:00 waits for next Sunday 00:00');
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-09 10:00-04', '{1}', '09:00', '17:00'),
          '2026-03-09 10:00-04'::timestamptz, 'Mondays only: Monday 10:00 is inside');
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-09 17:00-04', '{1}', '09:00', '17:00'),
          '2026-03-16 13:00+00'::timestamptz, 'Mondays only: Monday 17:00 waits a week');
select is(outcall_private.calling_window_opening('America/New_York', null, '{1}', '09:00', '17:00'), null,
          'no instant: null');
-- The 2-argument form reads the policy
update outcall_private.dispatch_policy set window_days = '{6}', window_start = '10:00', window_end = '11:00';
select is(outcall_private.calling_window_opening('America/New_York', '2026-03-06 22:00+00'), '2026-03-07 15:00+00'::timestamptz,
          'the 2-argument form uses the policy''s window (Saturdays 10:00-11:00)');

-- Property: across the 2026 DST changes, for several windows --------------------------------------------
-- Every 15 minutes (and 7.5 minutes past each) through the weeks around US (03-08, 11-01), EU (03-29, 10-25)
-- and Sydney (04-05, 10-04) changes, in four zones (Kolkata has no DST). The oracle is independent of the
-- function's search: inside(t) straight from the definition, on a 15-minute grid. Every window boundary and DST
-- change falls on that grid (all offsets are whole quarter hours), so the earliest inside instant >= t is t
-- itself when inside, else the first inside grid instant after t.
create temp table windows (w int, days int[], w_start time, w_end time);
insert into windows values
  (1, '{1,2,3,4,5}', '09:00', '17:00'),       -- the default
  (2, '{7}', '00:00', '24:00'),               -- the transition days themselves, all day
  (3, '{1,2,3,4,5,6,7}', '12:00', '12:30'),   -- every day, half an hour
  (4, '{6,7}', '03:00', '23:00');             -- weekends, starting just after the night's transitions
create temp table zones (tz text);
insert into zones values ('America/New_York'), ('Europe/London'), ('Australia/Sydney'), ('Asia/Kolkata');

create function pg_temp.inside(p_tz text, p_at timestamptz, p_days int[], p_start time, p_end time) returns boolean
language sql immutable as $$
  select extract(isodow from p_at at time zone p_tz)::int = any (p_days)
     and (p_at at time zone p_tz)::time >= p_start and (p_at at time zone p_tz)::time < p_end
$$;

create temp table grid as
select z.tz, w.w, g.at, pg_temp.inside(z.tz, g.at, w.days, w.w_start, w.w_end) as inside,
       (g.at >= '2026-02-27 00:00+00' and g.at < '2026-04-08 00:00+00')
       or (g.at >= '2026-09-25 00:00+00' and g.at < '2026-11-04 00:00+00') as is_input
  from zones as z
 cross join windows as w
 cross join (select generate_series('2026-02-27 00:00+00'::timestamptz, '2026-04-16 00:00+00', '15 minutes')
             union all
             select generate_series('2026-09-25 00:00+00'::timestamptz, '2026-11-12 00:00+00', '15 minutes')) as g(at);

-- For each grid instant: the first inside grid instant at or after it, and strictly after it.
-- (Descending order and frames that start at the partition's start: computed incrementally.)
create temp table oracle as
select tz, w, at, inside, is_input,
       min(at) filter (where inside) over (partition by tz, w order by at desc
                                           rows between unbounded preceding and current row) as first_inside_from,
       min(at) filter (where inside) over (partition by tz, w order by at desc
                                           rows between unbounded preceding and 1 preceding) as first_inside_after
  from grid;

create temp table checked as
select o.tz, o.w, i.t, i.expected,
       outcall_private.calling_window_opening(o.tz, i.t, w.days, w.w_start, w.w_end) as result,
       pg_temp.inside(o.tz, i.t, w.days, w.w_start, w.w_end) as input_inside,
       w.days, w.w_start, w.w_end
  from oracle as o
  join windows as w using (w)
 cross join lateral (values (o.at, o.first_inside_from),
                            (o.at + interval '7 minutes 30 seconds',
                             case when pg_temp.inside(o.tz, o.at + interval '7 minutes 30 seconds', w.days, w.w_start, w.w_end)
                                  then o.at + interval '7 minutes 30 seconds' else o.first_inside_after end))
       as i(t, expected)
 where o.is_input;

select ok((select count(*) from checked where expected is not null) = (select count(*) from checked)
          and (select count(*) from checked) = 4 * 4 * 2 * 2 * 40 * 96,
          'the property covers 4 zones x 4 windows x 2 periods x 40 days x 96 quarter hours x 2 offsets');
select is(array(select format('%s w%s %s -> %s', tz, w, t, result) from checked
                 where result is null or result < t order by tz, w, t limit 5),
          '{}'::text[], 'every result is at or after its input');
select is(array(select format('%s w%s %s -> %s', tz, w, t, result) from checked
                 where not pg_temp.inside(tz, result, days, w_start, w_end) order by tz, w, t limit 5),
          '{}'::text[], 'every result is inside the window');
select is(array(select format('%s w%s %s -> %s', tz, w, t, result) from checked
                 where input_inside and result <> t order by tz, w, t limit 5),
          '{}'::text[], 'an input inside the window is its own result');
select is(array(select format('%s w%s %s -> %s', tz, w, t, result) from checked
                 where not input_inside
                   and ((result at time zone tz)::time <> w_start
                        or not extract(isodow from result at time zone tz)::int = any (days))
                 order by tz, w, t limit 5),
          '{}'::text[], 'an input outside the window gets window_start on an allowed day, on the local clock');
select is(array(select format('%s w%s %s -> %s, expected %s', tz, w, t, result, expected) from checked
                 where result is distinct from expected order by tz, w, t limit 5),
          '{}'::text[], 'no inside instant lies between an input and its result (the result is the earliest)');
select ok((select count(distinct (result at time zone tz)::date) from checked where not input_inside) > 60,
          'the openings found span many days');
-- (and some inputs fall on the transition days themselves)
select ok((select count(*) from checked
            where (tz, (t at time zone tz)::date) in (('America/New_York', '2026-03-08'), ('America/New_York', '2026-11-01'),
                                                      ('Europe/London', '2026-03-29'), ('Europe/London', '2026-10-25'),
                                                      ('Australia/Sydney', '2026-04-05'), ('Australia/Sydney', '2026-10-04'))) > 1000,
          'the inputs include the transition days');

select * from finish();
rollback;
