-- The sweep: sweep_stale_sessions(p_limit) and reconcile_dialing_session(p_session_id, p_candidates, p_final).
begin;
select plan(54);

select has_function('public', 'sweep_stale_sessions', array['integer']);
select function_returns('public', 'sweep_stale_sessions', array['integer'], 'jsonb');
select has_function('public', 'reconcile_dialing_session', array['uuid', 'jsonb', 'boolean']);
select function_returns('public', 'reconcile_dialing_session', array['uuid', 'jsonb', 'boolean'], 'jsonb');

-- Every claim may go ahead (limits: 14_limits.sql); reconcile_after stays 5 minutes.
select test_fixtures.open_policy();

create function pg_temp.claim(p_id uuid) returns uuid language sql as $$
  select (public.claim_pending_call(p_id) ->> 'session_id')::uuid
$$;
create function pg_temp.dial(p_id uuid, p_sid text) returns uuid language plpgsql as $$
declare
  v_session uuid := pg_temp.claim(p_id);
begin
  perform public.record_dial_result(v_session, p_sid, null, null);
  return v_session;
end $$;
-- Moves a session's clocks into the past (without the updated_at trigger).
create function pg_temp.age(p_session uuid, p_by interval) returns void language plpgsql as $$
begin
  perform set_config('session_replication_role', 'replica', true);
  update public.call_sessions
     set created_at = created_at - p_by, updated_at = updated_at - p_by, ended_at = ended_at - p_by,
         reconciled_at = reconciled_at - p_by
   where id = p_session;
  perform set_config('session_replication_role', 'origin', true);
end $$;
create function pg_temp.state(p_id uuid) returns text language sql as $$
  select concat_ws(' / ', call_status, attempts, last_error) from public.pending_calls where id = p_id
$$;
create function pg_temp.stale_ids(p_answer jsonb) returns uuid[] language sql as $$
  select array(select (e ->> 'session_id')::uuid from jsonb_array_elements(p_answer -> 'to_reconcile') as e order by 1)
$$;

select is(public.sweep_stale_sessions(), '{"reports_missing": 0, "to_reconcile": [], "runs_abandoned": 0, "expired": 0}'::jsonb, 'nothing to sweep');
select throws_ok('select public.sweep_stale_sessions(0)', '22023', null, 'p_limit 0 is refused');

-- 1. Twilio completed, VAPI's report missing ---------------------------------------------------------------
select test_fixtures.new_call(('00000000-0000-0000-0000-0000000a000' || n)::uuid) is not null
  from generate_series(1, 6) as n \g /dev/null
select pg_temp.dial(('00000000-0000-0000-0000-0000000a000' || n)::uuid, 'CA0' || n) is not null
  from generate_series(1, 6) as n \g /dev/null
select count(public.apply_twilio_status('CA0' || n, 'completed', 3, 'human', 30)) from generate_series(1, 6) as n \g /dev/null
-- a1: ended 6 minutes ago, no report: resolved. a2: ended 4 minutes ago: not yet. a3: its report came.
-- a4: the row is on a later attempt. a5: the row is cancelled. a6: like a1, for p_limit.
select pg_temp.age(s.id, interval '6 minutes') from public.call_sessions as s
 where s.call_sid in ('CA01', 'CA03', 'CA04', 'CA05', 'CA06') \g /dev/null
select pg_temp.age(s.id, interval '4 minutes') from public.call_sessions as s where s.call_sid = 'CA02' \g /dev/null
select public.apply_call_report('00000000-0000-0000-0000-0000000a0003', 'v3', 'completed', 'customer-ended-call',
                                null, null, null, null, null, null) is not null as r3 \gset
update public.pending_calls set attempts = 2 where id = '00000000-0000-0000-0000-0000000a0004';
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0005';

select is(public.sweep_stale_sessions(1) -> 'reports_missing', '1'::jsonb, 'p_limit 1: one row resolved');
select is(public.sweep_stale_sessions(), '{"reports_missing": 1, "to_reconcile": [], "runs_abandoned": 0, "expired": 0}'::jsonb, 'the next sweep: the other one');
select is(array[pg_temp.state('00000000-0000-0000-0000-0000000a0001'), pg_temp.state('00000000-0000-0000-0000-0000000a0006')],
          array['failed / 1 / vapi_report_missing', 'failed / 1 / vapi_report_missing'],
          'ended > reconcile_after ago without a report: failed, vapi_report_missing (not retried: never call twice)');
select is(array(select pg_temp.state(('00000000-0000-0000-0000-0000000a000' || n)::uuid) from generate_series(2, 5) as n order by n),
          array['calling / 1', 'completed / 1', 'calling / 2', 'cancelled / 1'],
          'a recent ending, a report received, an older attempt, a cancelled row: left alone');
select is(public.sweep_stale_sessions() -> 'reports_missing', '0'::jsonb, 'a second sweep: nothing more');
select is(public.apply_call_report('00000000-0000-0000-0000-0000000a0001', 'v1', 'completed', 'customer-ended-call',
                                   'late summary', null, null, null, null, null) ->> 'call_status',
          'failed', 'a report after all: recorded, the row stays failed');
select is((select summary from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0001'), 'late summary',
          'with its results');

-- 2. Live sessions without news ---------------------------------------------------------------------------
update public.pending_calls set call_status = 'cancelled' where call_status not in ('completed', 'failed', 'cancelled');
create temp table live (n int, id uuid, sid text, status text);
select count(test_fixtures.new_call(('00000000-0000-0000-0000-0000000b000' || n)::uuid)) from generate_series(1, 8) as n \g /dev/null
-- b1 dialing, b2 queued, b3 initiated, b4 ringing, b5 in-progress; b6 in-progress but recent; b7 busy (ended);
-- b8 dialing, its dial being re-sent (reserve_dial_slot touched it)
insert into live select 1, pg_temp.claim('00000000-0000-0000-0000-0000000b0001'), null, 'dialing';
insert into live select n, pg_temp.dial(('00000000-0000-0000-0000-0000000b000' || n)::uuid, 'CAB' || n), 'CAB' || n, s
  from (values (2, 'queued'), (3, 'initiated'), (4, 'ringing'), (5, 'in-progress'), (6, 'in-progress'), (7, 'busy')) as v(n, s);
select count(public.apply_twilio_status(sid, status, 1, null, null)) from live where status <> 'queued' and sid is not null \g /dev/null
insert into live select 8, pg_temp.claim('00000000-0000-0000-0000-0000000b0008'), null, 'dialing';
-- stale: b1 the stalest .. b5; b6 4 minutes old (reconcile_after is 5)
select count(pg_temp.age(id, (11 - n) * interval '1 minute')) from live where n <= 5 \g /dev/null
select count(pg_temp.age(id, interval '6 minutes')) from live where n >= 7 \g /dev/null
select count(pg_temp.age(id, interval '4 minutes')) from live where n = 6 \g /dev/null
select is(public.release_dial_slot(id) ->> 'released', 'true', 'b8''s first try was answered') from live where n = 8;
select is(public.reserve_dial_slot(id) ->> 'outcome', 'reserved', 'b8''s dial is being re-sent') from live where n = 8;
select is(array(select s.status from public.call_sessions as s join live using (id) order by live.n),
          array['dialing', 'queued', 'initiated', 'ringing', 'in-progress', 'in-progress', 'busy', 'dialing'],
          'setup: sessions in each status');

create temp table sw1 as select public.sweep_stale_sessions(3) as j;
select is((select jsonb_array_length(j -> 'to_reconcile') from sw1), 3, 'p_limit 3: three sessions');
select is((select j -> 'to_reconcile' -> 0 from sw1),
          (select jsonb_build_object('session_id', s.id, 'pending_call_id', s.pending_call_id, 'attempt', 1, 'phone', p.phone,
                                     'call_sid', null, 'status', 'dialing', 'created_at', s.created_at)
             from public.call_sessions as s join public.pending_calls as p on p.id = s.pending_call_id
            where s.id = (select id from live where n = 1)),
          'each: session_id, pending_call_id, attempt, phone, call_sid (null while dialing), status, created_at');
create temp table sw2 as select public.sweep_stale_sessions() as j;
select is(pg_temp.stale_ids((select j from sw1)), array(select id from live where n between 1 and 3 order by id),
          'the stalest first: b1, b2, b3');
select is(pg_temp.stale_ids((select j from sw2)), array(select id from live where n between 4 and 5 order by id),
          'the next sweep hands out the rest, b4 and b5 (none twice)');
select is((select array_agg(e ->> 'call_sid' order by e ->> 'call_sid') from sw2, jsonb_array_elements(sw2.j -> 'to_reconcile') as e),
          array['CAB4', 'CAB5'], 'with their CallSids');
select ok((select bool_and(s.reconciled_at = now()) from public.call_sessions as s join live using (id) where live.n between 1 and 5),
          'reconciled_at is set on the sessions handed out');
select ok((select bool_and(s.reconciled_at is null) from public.call_sessions as s join live using (id) where live.n between 6 and 8),
          'and only on them: recent (b6), ended (b7), touched by reserve_dial_slot (b8) are not stale');
select is(public.sweep_stale_sessions(), '{"reports_missing": 0, "to_reconcile": [], "runs_abandoned": 0, "expired": 0}'::jsonb,
          'a sweep right after: nothing (just reconciled)');
-- reconcile_after later, without news, they are due again
select count(pg_temp.age(id, interval '6 minutes')) from live where n = 3 \g /dev/null
select is(pg_temp.stale_ids(public.sweep_stale_sessions()), array(select id from live where n = 3),
          'reconcile_after after its last reconciliation, with no news since: handed out again');
-- news resets the clock
select count(pg_temp.age(id, interval '6 minutes')) from live where n = 4 \g /dev/null
select is(public.apply_twilio_status('CAB4', 'in-progress', 2, 'human', null) ->> 'session_status', 'in-progress',
          'b4 gets news (answered)');
select is(public.sweep_stale_sessions(), '{"reports_missing": 0, "to_reconcile": [], "runs_abandoned": 0, "expired": 0}'::jsonb, 'so it is not stale');

-- reconcile_dialing_session ---------------------------------------------------------------------------------
select is(public.reconcile_dialing_session('00000000-0000-0000-0000-0000000000ff', '[]'), null, 'an unknown session: null');
select throws_ok($$select public.reconcile_dialing_session('00000000-0000-0000-0000-0000000000ff', null)$$, '22023', null,
                 'p_candidates null is refused (an empty list is [])');
select throws_ok($$select public.reconcile_dialing_session('00000000-0000-0000-0000-0000000000ff', '{"sid": "CA"}')$$, '22023', null,
                 'p_candidates must be an array');
select throws_ok($$select public.reconcile_dialing_session('00000000-0000-0000-0000-0000000000ff',
                                                           '[{"sid": "CA", "status": "queued"}]')$$, '22023', null,
                 'each candidate needs sid, status and date_created');

-- Adopted: the earliest candidate that is nobody's and not older than the session (5 s of clock skew allowed)
update public.pending_calls set call_status = 'cancelled' where call_status not in ('completed', 'failed', 'cancelled');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0001') is not null as c1 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0001') as sc1 \gset
select created_at as c1_created from public.call_sessions where id = :'sc1' \gset
create temp table cands as
select jsonb_build_array(
  jsonb_build_object('sid', 'CA-before', 'status', 'completed', 'date_created', :'c1_created'::timestamptz - interval '1 hour', 'duration', 40),
  jsonb_build_object('sid', 'CAB2', 'status', 'ringing', 'date_created', :'c1_created'::timestamptz + interval '1 second', 'duration', null),
  jsonb_build_object('sid', 'CA-second', 'status', 'ringing', 'date_created', :'c1_created'::timestamptz + interval '3 seconds', 'duration', null),
  jsonb_build_object('sid', 'CA-first', 'status', 'in-progress', 'date_created', :'c1_created'::timestamptz - interval '4 seconds', 'duration', null)
) as c;
select is(public.reconcile_dialing_session(:'sc1', (select c from cands)),
          jsonb_build_object('session_id', :'sc1'::uuid, 'outcome', 'adopted', 'call_sid', 'CA-first', 'call_status', 'calling'),
          'adopted: the earliest call that is no other session''s (CAB2 is b2''s) and not from before the session');
select row_eq($$select call_sid, status, dialed_at = created_at - interval '4 seconds', answered_at is not null
                  from public.call_sessions where id = $$ || quote_literal(:'sc1'),
              row('CA-first'::text, 'in-progress'::text, true, true),
              'the session has the CallSid, Twilio''s status (in-progress: answered_at), dialed_at = Twilio''s date_created');
select is(pg_temp.state('00000000-0000-0000-0000-0000000c0001'), 'calling / 1', 'the row is calling');
select is(public.reconcile_dialing_session(:'sc1', (select c from cands)),
          jsonb_build_object('session_id', :'sc1'::uuid, 'outcome', 'unchanged', 'call_sid', 'CA-first', 'call_status', 'calling'),
          'reconciled again: unchanged');
select is(public.record_dial_result(:'sc1', 'CA-first', null, null) -> 'changed', 'false'::jsonb,
          'the lost dial result turning up after all: changed false');
select is(public.apply_twilio_status('CA-first', 'completed', 5, 'human', 42) ->> 'session_status', 'completed',
          'later callbacks find the adopted call by its CallSid');

-- Adopted with an ending status: applied like a status callback (Twilio's RFC 2822 dates are read too)
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0002') is not null as c2 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0002') as sc2 \gset
select is(public.reconcile_dialing_session(:'sc2', jsonb_build_array(jsonb_build_object(
            'sid', 'CA-c2', 'status', 'busy', 'duration', '0',
            'date_created', to_char(now() at time zone 'UTC', 'Dy, DD Mon YYYY HH24:MI:SS "+0000"')))) ->> 'call_status',
          'retry_pending', 'an adopted busy call: the row is retried');
select row_eq($$select status, call_sid, duration_seconds, ended_at is not null from public.call_sessions where id = $$ || quote_literal(:'sc2'),
              row('busy'::text, 'CA-c2'::text, 0, true), 'the session is busy, with its duration');
select is(pg_temp.state('00000000-0000-0000-0000-0000000c0002'), 'retry_pending / 1 / busy', 'last_error busy');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0003') is not null as c3 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0003') as sc3 \gset
select is(public.reconcile_dialing_session(:'sc3', jsonb_build_array(jsonb_build_object(
            'sid', 'CA-c3', 'status', 'completed', 'duration', 61, 'date_created', now()))) ->> 'call_status',
          'calling', 'an adopted completed call: the row waits for VAPI''s report');
select is((select status from public.call_sessions where id = :'sc3'), 'completed', 'the session is completed');

-- Not dialled: no candidate is this session's
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0004') is not null as c4 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0004') as sc4 \gset
select is(public.reconcile_dialing_session(:'sc4', '[]'),
          jsonb_build_object('session_id', :'sc4'::uuid, 'outcome', 'not_dialled', 'call_sid', null, 'call_status', 'retry_pending'),
          'no call at Twilio: not_dialled, the row is retried');
select row_eq($$select status, error, error_code, ended_at = now() from public.call_sessions where id = $$ || quote_literal(:'sc4'),
              row('dial_failed'::text, 'no call at Twilio'::text, 'not_dialled'::text, true),
              'the session is dial_failed, error ''no call at Twilio'', error_code not_dialled');
select is((select next_attempt_at - now() from public.pending_calls where id = '00000000-0000-0000-0000-0000000c0004'),
          interval '5 minutes', 'the retry is in 5 minutes');
select is(public.reconcile_dialing_session(:'sc4', '[]') ->> 'outcome', 'unchanged', 'once more: unchanged');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0005') is not null as c5 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0005') as sc5 \gset
select is(public.reconcile_dialing_session(:'sc5', (select jsonb_build_array(jsonb_build_object(
            'sid', 'CA-old', 'status', 'completed', 'duration', 5, 'date_created', created_at - interval '6 seconds'))
            from public.call_sessions where id = :'sc5')) ->> 'outcome',
          'not_dialled', 'a call from more than 5 s before the session is not its own');
-- Not final (the Worker looks before re-sending): with no call found nothing changes
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0007') is not null as c7 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0007') as sc7 \gset
select is(public.reconcile_dialing_session(:'sc7', '[]', false),
          jsonb_build_object('session_id', :'sc7'::uuid, 'outcome', 'none', 'call_sid', null, 'call_status', 'dispatching'),
          'p_final false and no call at Twilio: outcome none');
select row_eq($$select status, error from public.call_sessions where id = $$ || quote_literal(:'sc7'),
              row('dialing'::text, null::text), 'the session is still dialing (the Worker may send again)');
select is(public.reconcile_dialing_session(:'sc7', jsonb_build_array(jsonb_build_object(
            'sid', 'CA-c7', 'status', 'queued', 'duration', null, 'date_created', now())), false) ->> 'outcome',
          'adopted', 'p_final false with its call at Twilio: adopted all the same');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000c0006', 1) is not null as c6 \gset
select pg_temp.claim('00000000-0000-0000-0000-0000000c0006') as sc6 \gset
select is(public.reconcile_dialing_session(:'sc6', '[]') ->> 'call_status', 'failed', 'not dialled on the last attempt: failed');
select is(pg_temp.state('00000000-0000-0000-0000-0000000c0006'), 'failed / 1 / no call at Twilio', 'last_error says why');

-- Unchanged: a session that is not dialing
select is(public.reconcile_dialing_session((select id from live where n = 2), (select c from cands)),
          jsonb_build_object('session_id', (select id from live where n = 2), 'outcome', 'unchanged', 'call_sid', 'CAB2',
                             'call_status', 'cancelled'),
          'a session with a CallSid: unchanged');
select is((select status from public.call_sessions where id = (select id from live where n = 2)), 'queued', 'and left as it was');

select * from finish();
rollback;
