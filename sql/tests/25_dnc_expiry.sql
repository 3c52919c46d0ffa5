-- Do-not-call and expiry (sql/schema/62_suppression.sql; the claim's first check in 30_dispatch.sql; retries in
-- 20_helpers.sql; the sweep in 50_sweep.sql; the batch counters in 60_batches.sql; reset in 87_operator_actions.sql):
-- every way a row ends suppressed or expired, and every way it must not be dialled.
begin;
select plan(74);

select test_fixtures.open_policy();

create function pg_temp.row_of(p_phone text, p_status text default 'pending', p_expires timestamptz default null,
                               p_batch uuid default null) returns uuid language sql as $$
  insert into public.pending_calls (employee_name, phone, call_status, expires_at, batch_id)
  values ('Test', p_phone, p_status, p_expires, p_batch)
  returning id
$$;
create function pg_temp.status_of(p_id uuid) returns text language sql as $$
  select call_status from public.pending_calls where id = p_id
$$;
create function pg_temp.sessions_of(p_id uuid) returns int language sql as $$
  select count(*)::int from public.call_sessions where pending_call_id = p_id
$$;
create function pg_temp.listed(p_phone text) returns text language sql as $$
  select source from public.suppression_list where phone = p_phone
$$;

-- The list itself -------------------------------------------------------------------------------------------------
select has_table('public', 'suppression_list', 'the do-not-call list');
select col_is_pk('public', 'suppression_list', 'phone', 'one entry per phone');
select columns_are('public', 'suppression_list', array['phone', 'reason', 'source', 'added_by', 'created_at']);
select throws_ok($$insert into public.suppression_list (phone) values ('5550001')$$, '23514', null,
                 'a phone not in E.164 is refused');
select throws_ok($$insert into public.suppression_list (phone, source) values ('+15556000001', 'whim')$$, '23514', null,
                 'an unknown source is refused');
select throws_ok($$insert into public.suppression_list (phone, reason) values ('+15556000001', repeat('x', 501))$$,
                 '23514', null, 'a reason over 500 characters is refused');
select is(pg_temp.listed('+15556000001'), null, 'nothing was written');

-- SMS opt-outs feed it --------------------------------------------------------------------------------------------
select public.record_sms_reply('SM0000000000000000000000000000d001', '+15556000010', '+15556009999', 'STOP', 'STOP');
select is((select (source, reason)::text from public.suppression_list where phone = '+15556000010'),
          '(sms_opt_out,"SMS opt-out (keyword: STOP)")', 'a STOP adds an sms_opt_out entry');
select public.record_sms_reply('SM0000000000000000000000000000d002', '+15556000010', '+15556009999', 'START', 'START');
select is(pg_temp.listed('+15556000010'), null, 'a START removes it');
insert into public.suppression_list (phone, source, reason) values ('+15556000011', 'clinic', 'the clinic asked');
select public.record_sms_reply('SM0000000000000000000000000000d003', '+15556000011', '+15556009999', 'STOP', 'STOP');
select is(pg_temp.listed('+15556000011'), 'clinic', 'a STOP keeps a clinic entry as it is');
select public.record_sms_reply('SM0000000000000000000000000000d004', '+15556000011', '+15556009999', 'START', 'START');
select is(pg_temp.listed('+15556000011'), 'clinic', 'a START removes only an sms_opt_out entry: the clinic''s stays');
insert into public.sms_opt_outs (phone, source) values ('+15556000012', 'twilio_21610');
select is(pg_temp.listed('+15556000012'), 'sms_opt_out', 'Twilio''s 21610 opt-out is an sms_opt_out entry too');

-- add_suppression ends the phone's waiting rows at once -------------------------------------------------------
create temp table b as select public.create_batch('{"name": "DNC", "targets": [
  {"employee_name": "A", "phone": "+15556000020"}, {"employee_name": "B", "phone": "+15556000020", "exam_id": "2"},
  {"employee_name": "C", "phone": "+15556000021"}, {"employee_name": "D", "phone": "+15556000022"}]}'::jsonb) as j;
select (j ->> 'batch_id') as b1 from b \gset
select id as r_a from public.pending_calls where batch_id = :'b1' and employee_name = 'A' \gset
select id as r_b from public.pending_calls where batch_id = :'b1' and employee_name = 'B' \gset
select id as r_c from public.pending_calls where batch_id = :'b1' and employee_name = 'C' \gset
select id as r_d from public.pending_calls where batch_id = :'b1' and employee_name = 'D' \gset
update public.pending_calls set call_status = 'retry_pending', attempts = 1 where id = :'r_b';
select test_fixtures.dial(:'r_c', 'CA62c');  -- C is live
create temp table s1 as select public.add_suppression('+15556000020', ' asked on the phone ', null, 'api') as j;
select is((select j -> 'created' from s1), 'true'::jsonb, 'add_suppression: created');
select is((select (j -> 'suppression') - 'created_at' from s1),
          '{"phone": "+15556000020", "reason": "asked on the phone", "source": "manual", "added_by": "api"}'::jsonb,
          'the entry: manual by default, the reason trimmed, who added it');
select is(array[pg_temp.status_of(:'r_a'), pg_temp.status_of(:'r_b')], array['suppressed', 'suppressed'],
          'its pending and retry_pending rows ended suppressed at once');
select is((select last_error from public.pending_calls where id = :'r_a'), 'suppressed', 'last_error says why');
select is(pg_temp.sessions_of(:'r_a'), 0, 'no session for it');
select is((select (queued, retrying, suppressed, dialling, in_progress)::text from public.batches where id = :'b1'),
          '(1,0,2,0,1)', 'the batch counts them suppressed');
select is((public.add_suppression('+15556000020', 'again', 'clinic') - 'suppression'), '{"created": false}'::jsonb,
          'again: not created...');
select is((select (source, reason)::text from public.suppression_list where phone = '+15556000020'),
          '(manual,"asked on the phone")', '... and the entry kept as it was');
select is(public.add_suppression('+15556000012', 'call me never', 'manual', 'ops@example.com') -> 'suppression' ->> 'source',
          'manual', 'an sms_opt_out entry takes a manual request''s source...');
delete from public.sms_opt_outs where phone = '+15556000012';
select is(pg_temp.listed('+15556000012'), 'manual', '... so a START no longer lifts it');
select throws_ok($$select public.add_suppression('not a phone')$$, '23514', null, 'add_suppression: a bad phone is refused');

-- A live call finishes; its retry is never dialled ---------------------------------------------------------------
select public.add_suppression('+15556000021');
select is(pg_temp.status_of(:'r_c'), 'calling', 'a live call is left to finish');
select public.apply_twilio_status('CA62c', 'busy');
select is(pg_temp.status_of(:'r_c'), 'retry_pending', 'its failure schedules a retry as usual');
update public.pending_calls set next_attempt_at = now() where id = :'r_c';
select is(public.claim_pending_call(:'r_c'), '{"claimed": false, "reason": "suppressed"}'::jsonb,
          'the claim refuses the retry: suppressed');
select is((pg_temp.status_of(:'r_c'), pg_temp.sessions_of(:'r_c'))::text, '(suppressed,1)',
          'the row ends suppressed, no new session');

-- The claim is the guarantee (a phone listed while the trigger was not there to end its rows) -----------------
alter table public.suppression_list disable trigger suppression_list_suppress_waiting_rows;
insert into public.suppression_list (phone) values ('+15556000030');
alter table public.suppression_list enable trigger suppression_list_suppress_waiting_rows;
update public.pending_calls set next_attempt_at = now() + interval '1 day'
 where call_status in ('pending', 'retry_pending');
select pg_temp.row_of('+15556000031') as r_next \gset
select pg_temp.row_of('+15556000032') as r_listed \gset
update public.pending_calls set phone = '+15556000030', next_attempt_at = now() - interval '1 minute'
 where id = :'r_listed';
select is(pg_temp.status_of(:'r_listed'), 'pending', '(a pending row of a listed phone, the most overdue)');
create temp table n1 as select public.claim_next_due() as j;
select is((select j ->> 'pending_call_id' from n1), :'r_next',
          'claim_next_due: goes on past the suppressed row to the next one');
select is((pg_temp.status_of(:'r_listed'), pg_temp.sessions_of(:'r_listed'))::text, '(suppressed,0)',
          'the suppressed row ended on the way, without a session');

-- A row inserted for a listed phone is created ended --------------------------------------------------------------
select pg_temp.row_of('+15556000020') as r_new \gset
select is(pg_temp.status_of(:'r_new'), 'suppressed', 'inserted for a listed phone: created suppressed');
select is(public.claim_pending_call(:'r_new'), '{"claimed": false, "reason": "not_claimable"}'::jsonb,
          'and never claimable');

-- remove and list -------------------------------------------------------------------------------------------------
select is(public.remove_suppression('+15556000020') -> 'removed', 'true'::jsonb, 'remove_suppression: removed');
select is(public.remove_suppression('+15556000020'), '{"removed": false, "suppression": null}'::jsonb,
          'again: nothing to remove');
select is(pg_temp.status_of(:'r_a'), 'suppressed', 'rows ended suppressed stay so');
select throws_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'r_a'), '23514',
                 null, 'suppressed is terminal');
select is(public.list_suppressions(2, 0) -> 'page',
          jsonb_build_object('limit', 2, 'offset', 0, 'total', (select count(*) from public.suppression_list)),
          'list_suppressions: the page and the total');
select is(jsonb_array_length(public.list_suppressions(2, 0) -> 'suppressions'), 2, 'one page of entries');
select is((select array_agg(e ->> 'phone' order by n) from jsonb_array_elements(public.list_suppressions(1000, 0) -> 'suppressions')
            with ordinality as x(e, n)),
          (select array_agg(phone order by created_at desc, phone) from public.suppression_list), 'newest first');
select throws_ok($$select public.list_suppressions(0, 0)$$, '22023', null, 'a bad page is refused');

-- Expiry: create_batch ----------------------------------------------------------------------------------------
create temp table e as select public.create_batch(jsonb_build_object(
  'name', 'Expiring', 'expires_at', now() + interval '2 hours', 'pending_call_ids', jsonb_build_array(:'r_d'),
  'targets', jsonb_build_array(
    jsonb_build_object('employee_name', 'E1', 'phone', '+15556000040'),
    jsonb_build_object('employee_name', 'E2', 'phone', '+15556000041', 'expires_at', now() + interval '1 hour'),
    jsonb_build_object('employee_name', 'E3', 'phone', '+15556000042', 'expires_at', now() + interval '3 hours')))) as j;
select (j ->> 'batch_id') as b2 from e \gset
select is((select expires_at from public.batches where id = :'b2'), now() + interval '2 hours',
          'the batch keeps its expiresAt');
select is(array(select expires_at - now() from public.pending_calls where batch_id = :'b2' order by employee_name),
          array[interval '2 hours', interval '2 hours', interval '1 hour', interval '2 hours'],
          'each row: least(its own, the batch''s); a copy of pendingCallIds: the batch''s');
select is(public.batch_progress_of(:'b2') ->> 'expires_at' is not null, true, 'batch_progress shows it');
select is(public.create_batch(jsonb_build_object('expires_at', now() - interval '1 second', 'targets',
            jsonb_build_array(jsonb_build_object('employee_name', 'X', 'phone', '+15556000043'),
                              jsonb_build_object('employee_name', 'Y', 'phone', '+15556000044',
                                                 'expires_at', now() - interval '1 minute')))) -> 'errors'
            @> '[{"index": null, "field": "expiresAt", "code": "expires_in_past"},
                 {"index": 1, "field": "expires_at", "code": "expires_in_past"}]'::jsonb,
          true, 'an expiry already past, the batch''s or a target''s: invalid');
select is((select count(*)::int from public.pending_calls where phone in ('+15556000043', '+15556000044')), 0,
          'nothing was written');

-- Expiry: the claim -----------------------------------------------------------------------------------------------
select pg_temp.row_of('+15556000050', 'pending', now() + interval '1 minute') as r_exp \gset
update public.pending_calls set expires_at = now() - interval '1 second' where id = :'r_exp';
select is(public.claim_pending_call(:'r_exp'), '{"claimed": false, "reason": "expired"}'::jsonb,
          'the claim of a row past its expiry: expired');
select is((pg_temp.status_of(:'r_exp'), pg_temp.sessions_of(:'r_exp'),
           (select last_error from public.pending_calls where id = :'r_exp'))::text,
          '(expired,0,expired)', 'it ends expired, no session, last_error expired');
select pg_temp.row_of('+15556000051', 'pending', now() - interval '1 second') as r_late \gset
select is(pg_temp.status_of(:'r_late'), 'expired', 'a row inserted past its expiry is created expired');
select throws_ok(format($$update public.pending_calls set call_status = 'pending' where id = %L$$, :'r_late'), '23514',
                 null, 'expired is terminal');

-- The window opens only after the expiry: ended at once, not deferred
-- (the window: only the day after tomorrow, on the clinic's clock: it opens 24 to 48 hours from now)
update outcall_private.dispatch_policy
   set window_days = array[((extract(isodow from now() at time zone 'America/New_York')::int + 1) % 7) + 1];
select pg_temp.row_of('+15556000052', 'pending', now() + interval '1 hour') as r_win \gset
select pg_temp.row_of('+15556000053', 'pending', now() + interval '3 days') as r_win2 \gset
select is(public.claim_pending_call(:'r_win'), '{"claimed": false, "reason": "expired"}'::jsonb,
          'a window that opens after the expiry: expired at once');
select is(pg_temp.status_of(:'r_win'), 'expired', '(the row ended)');
select is(public.claim_pending_call(:'r_win2') ->> 'reason', 'outside_window',
          'one that opens before it: deferred as usual');
select is(pg_temp.status_of(:'r_win2'), 'pending', '(the row waits)');
select test_fixtures.open_policy();

-- Retries: the next attempt at or after the expiry ends the row
update outcall_private.dispatch_policy set retry_delays = '{10 minutes}';
select pg_temp.row_of('+15556000054', 'pending', now() + interval '5 minutes') as r_retry \gset
select test_fixtures.dial(:'r_retry', 'CA62retry');
select is(public.apply_twilio_status('CA62retry', 'no-answer') ->> 'call_status', 'expired',
          'a failure whose retry would fall after the expiry: expired');
select is((select last_error from public.pending_calls where id = :'r_retry'), 'no-answer',
          'last_error keeps why the last attempt failed');
select pg_temp.row_of('+15556000055', 'pending', now() + interval '1 hour') as r_retry2 \gset
select test_fixtures.dial(:'r_retry2', 'CA62retry2');
select is(public.apply_twilio_status('CA62retry2', 'busy') ->> 'call_status', 'retry_pending',
          'one whose retry comes before it: retried');
select pg_temp.row_of('+15556000056', 'pending', now() + interval '5 minutes') as r_dial \gset
select test_fixtures.claim(:'r_dial') as s_dial \gset
select is(public.record_dial_result(:'s_dial', null, 'twilio 503') ->> 'call_status', 'expired',
          'a failed dial likewise');

-- A live call at its expiry finishes normally
select pg_temp.row_of('+15556000057', 'pending', now() + interval '5 minutes') as r_live \gset
select test_fixtures.dial(:'r_live', 'CA62live') as s_live \gset
update public.pending_calls set expires_at = now() - interval '1 second' where id = :'r_live';
select is(public.sweep_stale_sessions() -> 'expired', '0'::jsonb, 'the sweep leaves a live call alone');
select public.apply_vapi_status(:'r_live', 'in-progress', 'vapi-62live');
select is(public.apply_call_report(:'r_live', 'vapi-62live', 'completed', 'customer-ended-call') ->> 'call_status',
          'completed', 'and it completes as usual');

-- The sweep ends waiting rows nothing claims
select pg_temp.row_of('+15556000058', 'pending', now() + interval '1 minute') as r_sw1 \gset
select pg_temp.row_of('+15556000059', 'retry_pending', now() + interval '1 minute') as r_sw2 \gset
select pg_temp.row_of('+15556000060', 'pending', now() + interval '1 hour') as r_sw3 \gset
update public.pending_calls set next_attempt_at = now() + interval '1 day' where id in (:'r_sw1', :'r_sw2', :'r_sw3');
update public.pending_calls set expires_at = now() where id in (:'r_sw1', :'r_sw2');
select is(public.sweep_stale_sessions() -> 'expired', '2'::jsonb, 'the sweep: two overdue rows expired');
select is(array[pg_temp.status_of(:'r_sw1'), pg_temp.status_of(:'r_sw2'), pg_temp.status_of(:'r_sw3')],
          array['expired', 'expired', 'pending'], 'those past their expiry only');

-- The batch: counted, completed, per target ----------------------------------------------------------------------
update public.pending_calls set expires_at = now() where batch_id = :'b2' and employee_name in ('E1', 'E2');
select public.add_suppression('+15556000042');
select public.sweep_stale_sessions();
select is((select (total, expired, suppressed, queued)::text from public.batches where id = :'b2'), '(4,2,1,1)',
          'the batch counts expired and suppressed rows');
select is(public.batch_progress_of(:'b2') -> 'counts' @> '{"expired": 2, "suppressed": 1}', true, 'counts carries them');
select is((select array_agg(r ->> 'status' order by r ->> 'name')
             from jsonb_array_elements(public.batch_status(:'b2') -> 'results') as r),
          array['pending', 'expired', 'expired', 'suppressed'], 'batch_status: each target''s status');
select is((select status from public.batches where id = :'b2'), 'queued', 'not completed while a row waits');
update public.pending_calls set expires_at = now() where batch_id = :'b2' and call_status = 'pending';
select public.sweep_stale_sessions();
select is((select (status, completed_at is not null)::text from public.batches where id = :'b2'), '(completed,t)',
          'every row ended (expired and suppressed count): completed');

-- Operators' actions ------------------------------------------------------------------------------------------
insert into auth.users (id, email) values ('00000000-0000-0000-0000-000000250001', 'olga.dnc@example.com');
select outcall_private.add_operator('olga.dnc@example.com', 'operator');
select pg_temp.row_of('+15556000070') as r_op1 \gset
select public.add_suppression('+15556000070');
select pg_temp.row_of('+15556000071') as r_op2 \gset
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000250001", "role": "authenticated"}', true);
set local role authenticated;
select is((select array_agg(r ->> 'reason' order by n)
             from jsonb_array_elements(public.operator_call_action('reset', array[:'r_op1', :'r_exp']::uuid[]) -> 'results')
                  with ordinality as x(r, n)),
          array['suppressed', 'expired'], 'reset refuses a row whose phone is listed, and an expired row');
select is(public.operator_call_action('cancel', array[:'r_op1']::uuid[]) -> 'results' -> 0 ->> 'reason', 'terminal',
          'cancel: suppressed is terminal');
select is(public.operator_call_action('retry_now', array[:'r_exp']::uuid[]) -> 'results' -> 0 ->> 'reason', 'terminal',
          'retry_now: expired is terminal');
reset role;
select public.remove_suppression('+15556000070');
set local role authenticated;
select is(public.operator_call_action('reset', array[:'r_op1']::uuid[]) -> 'results' -> 0 ->> 'call_status', 'pending',
          'once the phone is off the list, reset requeues the suppressed row');
reset role;
select public.add_suppression('+15556000071', 'a clinic asked', 'clinic');
set local role authenticated;
select is(public.operator_call_action('reset', array[:'r_op2']::uuid[]) -> 'results' -> 0 ->> 'reason', 'suppressed',
          'reset of a row ended by a listing: suppressed');
reset role;

-- Rights --------------------------------------------------------------------------------------------------------
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000250009", "role": "authenticated"}', true);
set local role authenticated;
select throws_ok($$select public.add_suppression('+15556000080')$$, '42501', null, 'a user may not add to the list');
select is((select count(*)::int from public.suppression_list), 0, 'a signed-in user who is not an operator reads nothing');
reset role;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-0000-0000-000000250001", "role": "authenticated"}', true);
set local role authenticated;
select ok((select count(*) from public.suppression_list) > 0, 'an operator reads the list');
reset role;

select * from finish();
rollback;
