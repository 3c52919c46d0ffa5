-- The operators' actions (sql/schema/87_operator_actions.sql): operator_call_action (retry_now, cancel, reset, archive,
-- unarchive), operator_batch_action (cancel, retry_failed), operator_classification_action (invalidate, correct).
-- For each: the state machine's rules (a live row refused, terminal rows handled, unknown ids reported, never a second
-- live attempt), its audit row (who, what, before and after), and the roles (an operator acts; a viewer, a signed-in
-- non-operator and anon are refused with 42501 and nothing is written).
begin;
select plan(89);

select test_fixtures.open_policy();

-- People ----------------------------------------------------------------------------------------------------------
insert into auth.users (id, email) values
  ('00000000-0000-0000-0000-000000140001', 'Olga.Operator@Example.com'),
  ('00000000-0000-0000-0000-000000140002', 'victor.viewer@example.com'),
  ('00000000-0000-0000-0000-000000140003', 'sam.stranger@example.com');
select outcall_private.add_operator('olga.operator@example.com', 'operator');
select outcall_private.add_operator('victor.viewer@example.com', 'viewer');

create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;
create function pg_temp.status_of(p_id uuid) returns text language sql as $$
  select call_status from public.pending_calls where id = p_id
$$;
create function pg_temp.live_sessions_of(p_id uuid) returns int language sql as $$
  select count(*)::int from outcall_private.live_sessions where pending_call_id = p_id
$$;
-- The one audit row written since the table was last emptied (raises when there is not exactly one).
create function pg_temp.audit() returns public.operator_actions language plpgsql as $$
declare
  v public.operator_actions;
  n int;
begin
  select count(*) into n from public.operator_actions;
  if n <> 1 then
    raise exception 'expected one audit row, found %', n;
  end if;
  select * into v from public.operator_actions;
  return v;
end $$;

-- Calls in every state ------------------------------------------------------------------------------------------
-- a001 pending; a002 retry_pending (due in an hour); a003 dispatching (claimed); a004 calling (dialled);
-- a005 completed; a006 failed (no attempt left); a007 cancelled; a008 retry_pending while its attempt's call is still
-- live (VAPI's report came first); a009 failed, of a cancelled batch; a010 failed, of a completed batch.
select test_fixtures.new_call(('00000000-0000-0000-0000-00000014a0' || lpad(n::text, 2, '0'))::uuid)
  from generate_series(1, 8) as n;
update public.pending_calls set call_status = 'retry_pending', attempts = 1, next_attempt_at = now() + interval '1 hour',
                                last_error = 'busy'
 where id = '00000000-0000-0000-0000-00000014a002';
select test_fixtures.claim('00000000-0000-0000-0000-00000014a003');
select test_fixtures.dial('00000000-0000-0000-0000-00000014a004', 'CA14a004');
update public.pending_calls set call_status = 'completed', attempts = 1, success_evaluation = 'true'
 where id = '00000000-0000-0000-0000-00000014a005';
update public.pending_calls set call_status = 'failed', attempts = 3, last_error = 'no-answer'
 where id = '00000000-0000-0000-0000-00000014a006';
update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-00000014a007';
select test_fixtures.claim('00000000-0000-0000-0000-00000014a008');
update public.pending_calls set call_status = 'retry_pending', last_error = 'voicemail', next_attempt_at = now() + interval '1 hour'
 where id = '00000000-0000-0000-0000-00000014a008';
insert into public.batches (id, name) values
  ('00000000-0000-0000-0000-00000014b001', 'Stopped'), ('00000000-0000-0000-0000-00000014b002', 'Done');
insert into public.pending_calls (id, employee_name, phone, batch_id, call_status, attempts) values
  ('00000000-0000-0000-0000-00000014a009', 'Nine', '+15550140009', '00000000-0000-0000-0000-00000014b001', 'failed', 1),
  ('00000000-0000-0000-0000-00000014a011', 'Eleven', '+15550140011', '00000000-0000-0000-0000-00000014b001', 'pending', 0),
  ('00000000-0000-0000-0000-00000014a010', 'Ten', '+15550140010', '00000000-0000-0000-0000-00000014b002', 'failed', 1);
select public.cancel_batch('00000000-0000-0000-0000-00000014b001');
select is((select array_agg(call_status order by id) from public.pending_calls where id::text like '00000000-0000-0000-0000-00000014a0__'),
          '{pending,retry_pending,dispatching,calling,completed,failed,cancelled,retry_pending,failed,failed,cancelled}'::text[],
          'fixture: a call in every state');
select is((select array_agg(status order by id) from public.batches where id::text like '00000000-0000-0000-0000-00000014b00_'),
          '{cancelled,completed}'::text[], 'fixture: batch Stopped is cancelled (a011 with it), batch Done completed (its one row failed)');
delete from public.operator_actions;

-- Roles: only an operator acts; the others are refused before anything is written -----------------------------------
create function pg_temp.every_action() returns setof text language sql as $$
  values ($q$select public.operator_call_action('cancel', '{00000000-0000-0000-0000-00000014a001}')$q$),
         ($q$select public.operator_call_action('bogus', null)$q$),
         ($q$select public.operator_batch_action('00000000-0000-0000-0000-00000014b002', 'retry_failed')$q$),
         ($q$select public.operator_classification_action(gen_random_uuid(), 'invalidate', '{"reason": "x"}')$q$)
$$;
create function pg_temp.sqlstates() returns text[] language plpgsql as $$
declare
  v text[] := '{}';
  q text;
begin
  for q in select * from pg_temp.every_action() loop
    begin
      execute q;
      v := v || 'ok'::text;
    exception when others then
      v := v || sqlstate::text;
    end;
  end loop;
  return v;
end $$;
select pg_temp.act_as('00000000-0000-0000-0000-000000140002');
select is(pg_temp.sqlstates(), '{42501,42501,42501,42501}'::text[], 'a viewer: every action is refused, 42501');
select throws_ok($$select public.operator_call_action('cancel', '{00000000-0000-0000-0000-00000014a001}')$$, '42501',
                 'operator_call_action: only an operator may act; the caller is a viewer', 'the message says why');
reset role;
select pg_temp.act_as('00000000-0000-0000-0000-000000140003');
select is(pg_temp.sqlstates(), '{42501,42501,42501,42501}'::text[], 'a signed-in non-operator: every action is refused, 42501');
select throws_ok($$select public.operator_batch_action('00000000-0000-0000-0000-00000014b002', 'cancel')$$, '42501',
                 'operator_batch_action: only an operator may act; the caller is not an operator', 'the message says why');
reset role;
set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated"}';
select is(pg_temp.sqlstates(), '{42501,42501,42501,42501}'::text[], 'authenticated without a user: every action is refused');
reset role;
set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select is(pg_temp.sqlstates(), '{42501,42501,42501,42501}'::text[], 'anon: every action is refused (no privilege)');
reset role;
set local role service_role;
set local request.jwt.claims = '{"role": "service_role"}';
select is(pg_temp.sqlstates(), '{42501,42501,42501,42501}'::text[], 'service_role without an operator''s JWT: refused too');
reset role;
select is((select count(*)::int from public.operator_actions), 0, 'no audit row written by a refused caller');
select is(pg_temp.status_of('00000000-0000-0000-0000-00000014a001'), 'pending', 'and the row they tried to cancel is pending');
select is((select status from public.batches where id = '00000000-0000-0000-0000-00000014b002'), 'completed', 'the batch unchanged');

-- Arguments ---------------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select throws_ok($$select public.operator_call_action('delete', '{00000000-0000-0000-0000-00000014a001}')$$, '22023', null,
                 'an unknown action: 22023');
select throws_ok($$select public.operator_call_action(null, '{00000000-0000-0000-0000-00000014a001}')$$, '22023', null,
                 'no action: 22023');
select throws_ok($$select public.operator_call_action('cancel', '{}')$$, '22023', null, 'no id: 22023');
select throws_ok($$select public.operator_call_action('cancel', null)$$, '22023', null, 'null ids: 22023');
select throws_ok($$select public.operator_call_action('cancel', array[null]::uuid[])$$, '22023', null, 'a null id: 22023');
select throws_ok($$select public.operator_call_action('cancel', array(select gen_random_uuid() from generate_series(1, 501)))$$,
                 '22023', null, '501 ids: 22023');
select is(jsonb_array_length(public.operator_call_action('archive', array(select gen_random_uuid() from generate_series(1, 500)))
                             -> 'results'), 500, '500 ids: answered, each not_found');
reset role;
delete from public.operator_actions;

-- retry_now ---------------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('retry_now', array['00000000-0000-0000-0000-00000014a002', '00000000-0000-0000-0000-00000014a001',
            '00000000-0000-0000-0000-00000014a003', '00000000-0000-0000-0000-0000001400ff', '00000000-0000-0000-0000-00000014a005',
            '00000000-0000-0000-0000-00000014a008', '00000000-0000-0000-0000-00000014a002']::uuid[]),
          '{"action": "retry_now", "results": [
             {"id": "00000000-0000-0000-0000-00000014a002", "ok": true, "call_status": "retry_pending"},
             {"id": "00000000-0000-0000-0000-00000014a001", "ok": true, "call_status": "pending"},
             {"id": "00000000-0000-0000-0000-00000014a003", "ok": false, "call_status": "dispatching", "reason": "live"},
             {"id": "00000000-0000-0000-0000-0000001400ff", "ok": false, "call_status": null, "reason": "not_found"},
             {"id": "00000000-0000-0000-0000-00000014a005", "ok": false, "call_status": "completed", "reason": "terminal"},
             {"id": "00000000-0000-0000-0000-00000014a008", "ok": false, "call_status": "retry_pending", "reason": "live"}]}'::jsonb,
          'retry_now: waiting rows ok; a live row, a terminal row, a row whose call is still up refused; an unknown id reported; a duplicate once; in the order given');
reset role;
select is((select next_attempt_at from public.pending_calls where id = '00000000-0000-0000-0000-00000014a002'), now(),
          'retry_now: the retry_pending row is due now');
select ok((select next_attempt_at > now() from public.pending_calls where id = '00000000-0000-0000-0000-00000014a008'),
          'retry_now: the row whose call is still live keeps its time');
select is(pg_temp.live_sessions_of('00000000-0000-0000-0000-00000014a008'), 1, 'and still has one live attempt');
select is((select array[a.user_id::text, a.email, a.action, a.target_kind] from pg_temp.audit() as a),
          array['00000000-0000-0000-0000-000000140001', 'Olga.Operator@Example.com', 'retry_now', 'call'],
          'retry_now: one audit row: who (user id, email as Auth has it) and what');
select is((select a.target_ids from pg_temp.audit() as a),
          array['00000000-0000-0000-0000-00000014a002', '00000000-0000-0000-0000-00000014a001', '00000000-0000-0000-0000-00000014a003',
                '00000000-0000-0000-0000-0000001400ff', '00000000-0000-0000-0000-00000014a005', '00000000-0000-0000-0000-00000014a008']::uuid[],
          'retry_now: the audit names every id once');
select is((select (r -> 'before' ->> 'next_attempt_at')::timestamptz = now() + interval '1 hour'
                  and (r -> 'after' ->> 'next_attempt_at')::timestamptz = now() and (r ->> 'ok')::boolean
             from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') as r
            where r ->> 'id' = '00000000-0000-0000-0000-00000014a002'), true,
          'retry_now: the audit keeps next_attempt_at before (in an hour) and after (now)');
select is((select r - 'id' from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') as r
            where r ->> 'id' = '00000000-0000-0000-0000-0000001400ff'),
          '{"ok": false, "reason": "not_found", "call_status": null, "before": null, "after": null}'::jsonb,
          'retry_now: the unknown id is in the audit too');
delete from public.operator_actions;

-- cancel ------------------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('cancel', '{00000000-0000-0000-0000-00000014a001,00000000-0000-0000-0000-00000014a004,00000000-0000-0000-0000-00000014a006}'),
          '{"action": "cancel", "results": [
             {"id": "00000000-0000-0000-0000-00000014a001", "ok": true, "call_status": "cancelled"},
             {"id": "00000000-0000-0000-0000-00000014a004", "ok": false, "call_status": "calling", "reason": "live"},
             {"id": "00000000-0000-0000-0000-00000014a006", "ok": false, "call_status": "failed", "reason": "terminal"}]}'::jsonb,
          'cancel: a pending row ends cancelled; a calling row and a failed row are refused');
reset role;
select is((select last_error from public.pending_calls where id = '00000000-0000-0000-0000-00000014a001'), 'cancelled_by_operator',
          'cancel: last_error says who stopped it');
select is(pg_temp.live_sessions_of('00000000-0000-0000-0000-00000014a004'), 1, 'cancel: the live call goes on, one attempt');
select is((select jsonb_agg(jsonb_build_object('id', r ->> 'id', 'before', r -> 'before' ->> 'call_status',
                                               'after', r -> 'after' ->> 'call_status') order by n)
             from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') with ordinality as t (r, n)),
          '[{"id": "00000000-0000-0000-0000-00000014a001", "before": "pending", "after": "cancelled"},
            {"id": "00000000-0000-0000-0000-00000014a004", "before": "calling", "after": "calling"},
            {"id": "00000000-0000-0000-0000-00000014a006", "before": "failed", "after": "failed"}]'::jsonb,
          'cancel: the audit keeps each status before and after');
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('retry_now', '{00000000-0000-0000-0000-00000014a001}') -> 'results' -> 0 ->> 'reason',
          'terminal', 'a cancelled row is not made due again by retry_now');
reset role;
delete from public.operator_actions;

-- reset -------------------------------------------------------------------------------------------------------------
create temp table before_reset as
  select id, attempts, max_attempts, attempt_offset from public.pending_calls
   where id::text like '00000000-0000-0000-0000-00000014a0__';
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('reset', '{00000000-0000-0000-0000-00000014a006,00000000-0000-0000-0000-00000014a007,00000000-0000-0000-0000-00000014a002,00000000-0000-0000-0000-00000014a005,00000000-0000-0000-0000-00000014a003,00000000-0000-0000-0000-00000014a004,00000000-0000-0000-0000-00000014a008,00000000-0000-0000-0000-00000014a009,00000000-0000-0000-0000-00000014a010,00000000-0000-0000-0000-0000001400ff}'),
          '{"action": "reset", "results": [
             {"id": "00000000-0000-0000-0000-00000014a006", "ok": true, "call_status": "pending"},
             {"id": "00000000-0000-0000-0000-00000014a007", "ok": true, "call_status": "pending"},
             {"id": "00000000-0000-0000-0000-00000014a002", "ok": true, "call_status": "pending"},
             {"id": "00000000-0000-0000-0000-00000014a005", "ok": false, "call_status": "completed", "reason": "completed"},
             {"id": "00000000-0000-0000-0000-00000014a003", "ok": false, "call_status": "dispatching", "reason": "live"},
             {"id": "00000000-0000-0000-0000-00000014a004", "ok": false, "call_status": "calling", "reason": "live"},
             {"id": "00000000-0000-0000-0000-00000014a008", "ok": false, "call_status": "retry_pending", "reason": "live"},
             {"id": "00000000-0000-0000-0000-00000014a009", "ok": false, "call_status": "failed", "reason": "batch_cancelled"},
             {"id": "00000000-0000-0000-0000-00000014a010", "ok": true, "call_status": "pending"},
             {"id": "00000000-0000-0000-0000-0000001400ff", "ok": false, "call_status": null, "reason": "not_found"}]}'::jsonb,
          'reset: failed, cancelled and retry_pending rows back to pending; completed, live, a live call and a cancelled batch''s row refused');
reset role;
select is((select array[c.attempts, c.max_attempts, c.attempt_offset] from public.pending_calls as c
            where c.id = '00000000-0000-0000-0000-00000014a006'), array[3, 6, 3],
          'reset of a failed row: a fresh budget of its round (attempt_offset = attempts; 3 more attempts)');
select is((select (next_attempt_at = now(), last_error, archived_at) from public.pending_calls
            where id = '00000000-0000-0000-0000-00000014a006')::text, '(t,,)', 'reset: due now, last_error cleared');
select is((select array[c.attempts, c.max_attempts, c.attempt_offset] from public.pending_calls as c
            where c.id = '00000000-0000-0000-0000-00000014a002'), array[1, 4, 1], 'reset of a retry_pending row: a fresh budget too');
select is((select array_agg(c.id order by c.id) from public.pending_calls as c join before_reset as b using (id)
            where (c.attempts, c.max_attempts, c.attempt_offset) is distinct from (b.attempts, b.max_attempts, b.attempt_offset)),
          '{00000000-0000-0000-0000-00000014a002,00000000-0000-0000-0000-00000014a006,00000000-0000-0000-0000-00000014a010}'::uuid[],
          'reset: only the rows reset that had used attempts changed their budget (a007, never dialled, keeps its 3)');
select is(pg_temp.live_sessions_of('00000000-0000-0000-0000-00000014a008'), 1, 'reset: the row whose call is up keeps one live attempt');
select is((select jsonb_build_object('status', status, 'failed', failed, 'queued', queued) from public.batches
            where id = '00000000-0000-0000-0000-00000014b002'),
          '{"status": "queued", "failed": 0, "queued": 1}'::jsonb, 'reset: the completed batch of a reset row reopens, counters follow');
select is((select jsonb_build_object('before', (r -> 'before') - 'next_attempt_at', 'after', (r -> 'after') - 'next_attempt_at',
                                     'due_now', (r -> 'after' ->> 'next_attempt_at')::timestamptz = now())
             from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') as r
            where r ->> 'id' = '00000000-0000-0000-0000-00000014a006'),
          '{"before": {"call_status": "failed", "attempts": 3, "max_attempts": 3, "attempt_offset": 0, "last_error": "no-answer", "archived_at": null},
            "after": {"call_status": "pending", "attempts": 3, "max_attempts": 6, "attempt_offset": 3, "last_error": null, "archived_at": null},
            "due_now": true}'::jsonb,
          'reset: the audit keeps the failed row before (status, budget, last_error) and after');
select is((select r ->> 'reason' from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') as r
            where r ->> 'id' = '00000000-0000-0000-0000-00000014a009'), 'batch_cancelled', 'reset: refusals are audited with their reason');
-- The revived row is dialled again by the claim, once: its next attempt is number 4.
select is((public.claim_pending_call('00000000-0000-0000-0000-00000014a006') ->> 'attempt')::int, 4,
          'a reset failed row is claimed again: attempt 4');
select is(public.claim_pending_call('00000000-0000-0000-0000-00000014a006') ->> 'reason', 'not_claimable',
          'and only once: no second live attempt');
select is(pg_temp.live_sessions_of('00000000-0000-0000-0000-00000014a006'), 1, 'one live session');
-- The guard's exception held for that one statement only.
select is(current_setting('outcall.resetting', true), '', 'reset: the guard''s exception is cleared after its statement');
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('cancel', '{00000000-0000-0000-0000-00000014a007}') -> 'results' -> 0 ->> 'call_status',
          'cancelled', 'a reset row can be cancelled again');
reset role;
select throws_ok($$update public.pending_calls set call_status = 'pending' where id = '00000000-0000-0000-0000-00000014a007'$$,
                 '23514', null, 'and then a hand-written update cannot revive it (the guard holds again)');
select throws_ok($$update public.pending_calls set call_status = 'pending' where id = '00000000-0000-0000-0000-00000014a005'$$,
                 '23514', null, 'nor a completed row');
delete from public.operator_actions;

-- archive / unarchive -------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('archive', '{00000000-0000-0000-0000-00000014a005,00000000-0000-0000-0000-00000014a004,00000000-0000-0000-0000-00000014a001,00000000-0000-0000-0000-0000001400ff}'),
          '{"action": "archive", "results": [
             {"id": "00000000-0000-0000-0000-00000014a005", "ok": true, "call_status": "completed"},
             {"id": "00000000-0000-0000-0000-00000014a004", "ok": false, "call_status": "calling", "reason": "live"},
             {"id": "00000000-0000-0000-0000-00000014a001", "ok": true, "call_status": "cancelled"},
             {"id": "00000000-0000-0000-0000-0000001400ff", "ok": false, "call_status": null, "reason": "not_found"}]}'::jsonb,
          'archive: a completed and a cancelled row ok, a live row refused, an unknown id reported');
reset role;
select is((select array_agg(archived_at = now() order by id) from public.pending_calls
            where id in ('00000000-0000-0000-0000-00000014a001', '00000000-0000-0000-0000-00000014a004', '00000000-0000-0000-0000-00000014a005')),
          array[true, null, true], 'archive: archived_at set on the two, not on the live row');
select is((select array[r -> 'before' ->> 'archived_at', (r -> 'after' ->> 'archived_at' is not null)::text]
             from pg_temp.audit() as a, jsonb_array_elements(a.detail -> 'results') as r
            where r ->> 'id' = '00000000-0000-0000-0000-00000014a005'), array[null, 'true']::text[],
          'archive: the audit keeps archived_at before (null) and after');
select is(pg_temp.status_of('00000000-0000-0000-0000-00000014a005'), 'completed', 'archive: the status is untouched');
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_call_action('unarchive', '{00000000-0000-0000-0000-00000014a005,00000000-0000-0000-0000-00000014a004}'),
          '{"action": "unarchive", "results": [
             {"id": "00000000-0000-0000-0000-00000014a005", "ok": true, "call_status": "completed"},
             {"id": "00000000-0000-0000-0000-00000014a004", "ok": true, "call_status": "calling"}]}'::jsonb,
          'unarchive: any row (nothing to do for one not archived)');
reset role;
select is((select count(*)::int from public.pending_calls
            where id in ('00000000-0000-0000-0000-00000014a004', '00000000-0000-0000-0000-00000014a005') and archived_at is null), 2,
          'unarchive: archived_at cleared');
select is((select count(*)::int from public.operator_actions where action = 'unarchive'), 1, 'unarchive: one audit row');
delete from public.operator_actions;

-- Batches -------------------------------------------------------------------------------------------------------------
insert into public.batches (id, name) values ('00000000-0000-0000-0000-00000014b003', 'Acted on');
insert into public.pending_calls (id, employee_name, phone, batch_id, call_status, attempts, max_attempts) values
  ('00000000-0000-0000-0000-00000014a021', 'B1', '+15550140021', '00000000-0000-0000-0000-00000014b003', 'pending', 0, 3),
  ('00000000-0000-0000-0000-00000014a022', 'B2', '+15550140022', '00000000-0000-0000-0000-00000014b003', 'failed', 2, 2);
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_batch_action('00000000-0000-0000-0000-00000014b003', 'retry_failed'),
          '{"action": "retry_failed", "ok": true, "batch_id": "00000000-0000-0000-0000-00000014b003", "status": "queued", "requeued": 1}'::jsonb,
          'retry_failed: retry_failed_batch''s answer, with action and ok');
reset role;
select is((select array[c.attempts, c.max_attempts, c.attempt_offset] from public.pending_calls as c
            where c.id = '00000000-0000-0000-0000-00000014a022'), array[2, 4, 2], 'retry_failed: the failed row requeued with a fresh budget');
select is((select jsonb_build_object('action', action, 'kind', target_kind, 'ids', target_ids, 'before', detail -> 'before' -> 'counts' -> 'failed',
                                     'after', detail -> 'after' -> 'counts' -> 'failed', 'answer', detail -> 'answer' -> 'requeued')
             from pg_temp.audit()),
          '{"action": "retry_failed", "kind": "batch", "ids": ["00000000-0000-0000-0000-00000014b003"], "before": 1, "after": 0, "answer": 1}'::jsonb,
          'retry_failed: audited with the batch''s counts before and after');
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_batch_action('00000000-0000-0000-0000-00000014b003', 'cancel'),
          '{"action": "cancel", "ok": true, "batch_id": "00000000-0000-0000-0000-00000014b003", "status": "cancelled", "cancelled": 2, "live": 0}'::jsonb,
          'cancel: cancel_batch''s answer, with action and ok');
reset role;
select is((select array[detail -> 'before' ->> 'status', detail -> 'after' ->> 'status', detail -> 'after' -> 'counts' ->> 'cancelled']
             from pg_temp.audit()), array['queued', 'cancelled', '2'], 'cancel: audited, status before and after');
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_batch_action('00000000-0000-0000-0000-00000014b003', 'retry_failed'),
          '{"action": "retry_failed", "ok": false, "batch_id": "00000000-0000-0000-0000-00000014b003", "error": "batch_cancelled"}'::jsonb,
          'retry_failed of a cancelled batch: ok false, batch_cancelled');
select throws_ok($$select public.operator_batch_action('00000000-0000-0000-0000-0000001400ff', 'cancel')$$, 'P0002', null,
                 'an unknown batch: P0002');
select throws_ok($$select public.operator_batch_action('00000000-0000-0000-0000-00000014b003', 'delete')$$, '22023', null,
                 'an unknown batch action: 22023');
select throws_ok($$select public.operator_batch_action(null, 'cancel')$$, '22023', null, 'no batch id: 22023');
reset role;
select is((select count(*)::int from public.operator_actions), 2, 'the refused retry is audited; the errors wrote nothing');
delete from public.operator_actions;

-- Classifications -----------------------------------------------------------------------------------------------------
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions, confidence, is_active,
                                         invalidated_at, invalidated_reason) values
  ('00000000-0000-0000-0000-00000014c001', '+15550140101', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": 500}]', 0.9, true, null, null),
  ('00000000-0000-0000-0000-00000014c002', '+15550140102', 'human', '[]', 0.8, true, null, null),
  ('00000000-0000-0000-0000-00000014c003', '+15550140103', 'human', '[]', 0.8, false, now(), 'menu changed');
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_classification_action('00000000-0000-0000-0000-00000014c001', 'invalidate', '{"reason": " wrong menu "}') - 'classification',
          '{"action": "invalidate", "classification_id": "00000000-0000-0000-0000-00000014c001", "ok": true}'::jsonb,
          'invalidate: ok');
reset role;
select is((select (is_active, invalidated_at = now(), invalidated_reason) from public.call_classifications
            where id = '00000000-0000-0000-0000-00000014c001')::text, '(f,t,"wrong menu")',
          'invalidate: inactive, with the reason (trimmed)');
select is((select jsonb_build_object('kind', target_kind, 'note', detail ->> 'note', 'before', detail -> 'before' -> 'is_active',
                                     'after', detail -> 'after' -> 'is_active', 'reason_after', detail -> 'after' -> 'invalidated_reason')
             from pg_temp.audit()),
          '{"kind": "classification", "note": "wrong menu", "before": true, "after": false, "reason_after": "wrong menu"}'::jsonb,
          'invalidate: audited, before and after');
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_classification_action('00000000-0000-0000-0000-00000014c001', 'invalidate', '{"reason": "again"}') ->> 'reason',
          'inactive', 'invalidate of an inactive classification: ok false, inactive');
select is(public.operator_classification_action('00000000-0000-0000-0000-00000014c003', 'correct',
            '{"classification_type": "ivr_only", "ivr_actions": [{"action": "dtmf", "value": "2", "timing_ms": 0}], "reason": "r"}')
            - 'classification',
          '{"action": "correct", "classification_id": "00000000-0000-0000-0000-00000014c003", "ok": false, "reason": "inactive"}'::jsonb,
          'correct of an inactive classification: ok false, inactive');
reset role;
select is((select classification_type from public.call_classifications where id = '00000000-0000-0000-0000-00000014c003'), 'human',
          'and it is unchanged');
select is((select count(*)::int from public.operator_actions where detail ->> 'reason' = 'inactive'), 2, 'both refusals audited');
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select is(public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct',
            '{"classification_type": "ivr_then_human", "ivr_actions": [{"action": "dtmf", "value": "3", "timing_ms": 1200}], "reason": "it has a menu"}')
            -> 'classification' #- '{classification_expires_at}',
          '{"id": "00000000-0000-0000-0000-00000014c002", "phone_number": "+15550140102", "classification_type": "ivr_then_human",
            "ivr_actions": [{"action": "dtmf", "value": "3", "timing_ms": 1200}], "confidence": 0.8, "is_active": true,
            "invalidated_at": null, "invalidated_reason": null}'::jsonb,
          'correct: type and actions replaced, the rest kept');
reset role;
select is((select jsonb_build_object('note', detail ->> 'note', 'ok', detail -> 'ok',
                                     'before', jsonb_build_object('type', detail -> 'before' -> 'classification_type', 'actions', detail -> 'before' -> 'ivr_actions'),
                                     'after', jsonb_build_object('type', detail -> 'after' -> 'classification_type', 'actions', detail -> 'after' -> 'ivr_actions'))
             from pg_temp.audit()),
          '{"note": "it has a menu", "ok": true, "before": {"type": "human", "actions": []},
            "after": {"type": "ivr_then_human", "actions": [{"action": "dtmf", "value": "3", "timing_ms": 1200}]}}'::jsonb,
          'correct: the audit keeps the old type and actions and the new');
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct',
                   '{"classification_type": "human", "ivr_actions": [{"action": "dtmf", "value": "1", "timing_ms": 0}], "reason": "r"}')$$,
                 '22023', null, 'correct: a human line with actions is refused by the table''s checks, 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct',
                   '{"classification_type": "ivr_only", "ivr_actions": [{"action": "dtmf", "value": "x", "timing_ms": 0}], "reason": "r"}')$$,
                 '22023', null, 'correct: a DTMF value outside [0-9*#w]: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct',
                   '{"classification_type": "robot", "ivr_actions": [], "reason": "r"}')$$,
                 '22023', null, 'correct: an unknown type: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct',
                   '{"classification_type": "human", "ivr_actions": []}')$$,
                 '22023', null, 'correct without a reason: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'correct', '{"reason": "r"}')$$,
                 '22023', null, 'correct without a type and actions: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'invalidate', '{"reason": "  "}')$$,
                 '22023', null, 'invalidate with a blank reason: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'invalidate', null)$$,
                 '22023', null, 'invalidate without p_correction: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-00000014c002', 'delete', '{"reason": "r"}')$$,
                 '22023', null, 'an unknown classification action: 22023');
select throws_ok($$select public.operator_classification_action('00000000-0000-0000-0000-0000001400ff', 'invalidate', '{"reason": "r"}')$$,
                 'P0002', null, 'an unknown classification: P0002');
reset role;
select is((select (classification_type, is_active) from public.call_classifications where id = '00000000-0000-0000-0000-00000014c002')::text,
          '(ivr_then_human,t)', 'the refused corrections changed nothing');
select is((select count(*)::int from public.operator_actions), 0, 'and wrote no audit row');

-- Who reads the audit -------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select public.operator_call_action('archive', '{00000000-0000-0000-0000-00000014a005}');
reset role;
select pg_temp.act_as('00000000-0000-0000-0000-000000140002');
select is((select array_agg(action) from public.operator_actions), '{archive}'::text[], 'a viewer reads the audit');
select throws_ok($$insert into public.operator_actions (user_id, action, target_kind, target_ids, detail)
                   values ('00000000-0000-0000-0000-000000140002', 'cancel', 'call', '{}', '{}')$$, '42501', null,
                 'and cannot write it');
reset role;
select pg_temp.act_as('00000000-0000-0000-0000-000000140001');
select throws_ok($$delete from public.operator_actions$$, '42501', null, 'nor can an operator (only the action functions do)');
reset role;
select pg_temp.act_as('00000000-0000-0000-0000-000000140003');
select is((select count(*)::int from public.operator_actions), 0, 'a signed-in non-operator sees no audit row');
reset role;

select * from finish();
rollback;
