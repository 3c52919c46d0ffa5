-- Privileges and RLS: anon nothing, authenticated read-only and only an operator (18_operators.sql tests the
-- allow-list over every table and view), service_role everything.
begin;
select plan(96);

-- Calling windows and dispatch limits are tested in 12_ to 16_; here every claim may go ahead.
select test_fixtures.open_policy();

-- Catalog: RLS, policies, privileges ----------------------------------------------------------------
select ok((select bool_and(relrowsecurity) from pg_class
            where oid in ('public.pending_calls'::regclass, 'public.call_sessions'::regclass,
                          'public.call_classifications'::regclass)),
          'RLS is enabled on the three tables');
select policies_are('public', 'pending_calls', array['operators can read']);
select policies_are('public', 'call_sessions', array['operators can read']);
select policies_are('public', 'call_classifications', array['operators can read']);
select policy_roles_are('public', 'pending_calls', 'operators can read', array['authenticated']);
select policy_cmd_is('public', 'pending_calls', 'operators can read', 'select', 'pending_calls: the policy is for SELECT');
select policy_roles_are('public', 'call_sessions', 'operators can read', array['authenticated']);
select policy_cmd_is('public', 'call_sessions', 'operators can read', 'select', 'call_sessions: the policy is for SELECT');
select policy_roles_are('public', 'call_classifications', 'operators can read', array['authenticated']);
select policy_cmd_is('public', 'call_classifications', 'operators can read', 'select', 'call_classifications: the policy is for SELECT');

select table_privs_are('public', t, 'anon', array[]::text[], t || ': anon has no privilege')
  from unnest(array['pending_calls', 'call_sessions', 'call_classifications']) as t;
select table_privs_are('public', t, 'authenticated', array['SELECT'], t || ': authenticated may only SELECT')
  from unnest(array['pending_calls', 'call_sessions', 'call_classifications']) as t;
select table_privs_are('public', t, 'service_role',
                       array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'],
                       t || ': service_role has every privilege')
  from unnest(array['pending_calls', 'call_sessions', 'call_classifications']) as t;

create temp table rpc (sig regprocedure);
insert into rpc values
  ('public.claim_pending_call(uuid)'),
  ('public.record_dial_result(uuid, text, text, text, boolean, text)'),
  ('public.apply_twilio_status(text, text, int, text, int, uuid)'),
  ('public.call_context(uuid, text)'),
  ('public.apply_vapi_status(uuid, text, text)'),
  ('public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric)'),
  ('public.claim_next_due()'),
  ('public.reserve_dial_slot(uuid)'),
  ('public.sweep_stale_sessions(int)'),
  ('public.reconcile_dialing_session(uuid, jsonb, boolean)');
grant select on rpc to public;
select is(array(select sig::text from rpc where has_function_privilege('anon', sig, 'execute')), array[]::text[],
          'anon can execute none of the functions');
select is(array(select sig::text from rpc where has_function_privilege('authenticated', sig, 'execute')), array[]::text[],
          'authenticated can execute none of the functions');
select is((select count(*)::int from rpc where has_function_privilege('service_role', sig, 'execute')), 10,
          'service_role can execute all ten functions');
select is((select count(*)::int from rpc, aclexplode(coalesce((select proacl from pg_proc where oid = sig), '{}'))
            where grantee = 0), 0,
          'no function is executable by PUBLIC');
select is((select count(*)::int from rpc where (select prosecdef from pg_proc where oid = sig)), 0,
          'the functions run with the caller''s rights (security invoker)');

select ok(not has_schema_privilege('anon', 'outcall_private', 'usage'), 'anon has no usage on outcall_private');
select ok(not has_schema_privilege('authenticated', 'outcall_private', 'usage'), 'authenticated has no usage on outcall_private');
select is(array(select p.oid::regprocedure::text from pg_proc p
                 where p.pronamespace = 'outcall_private'::regnamespace
                   and (has_function_privilege('anon', p.oid, 'execute')
                        or has_function_privilege('authenticated', p.oid, 'execute'))),
          array['outcall_private.is_viewer()'],
          'anon can execute nothing in outcall_private, authenticated only is_viewer() (the read policies'' check)');
select table_privs_are('outcall_private', 'settings', r, array[]::text[], 'outcall_private.settings: nothing for ' || r)
  from unnest(array['anon', 'authenticated', 'service_role']) as r;
select table_privs_are('outcall_private', t, r, array[]::text[], 'outcall_private.' || t || ': nothing for ' || r)
  from unnest(array['dispatch_policy', 'rate_state', 'live_sessions', 'provider_breaker']) as t, unnest(array['anon', 'authenticated']) as r;
-- The RPCs run with the caller's rights: service_role reads the policy, keeps the rate state, never changes the policy.
select table_privs_are('outcall_private', 'dispatch_policy', 'service_role', array['SELECT'],
                       'outcall_private.dispatch_policy: service_role may only read it');
select table_privs_are('outcall_private', 'rate_state', 'service_role', array['SELECT', 'UPDATE'],
                       'outcall_private.rate_state: service_role reads and updates it');
select table_privs_are('outcall_private', 'provider_breaker', 'service_role', array['SELECT', 'UPDATE'],
                       'outcall_private.provider_breaker: service_role reads and moves it');
select table_privs_are('outcall_private', 'live_sessions', 'service_role', array['SELECT'],
                       'outcall_private.live_sessions: service_role reads it');

select ok(pg_has_role('authenticator', 'anon', 'member') and pg_has_role('authenticator', 'authenticated', 'member')
          and pg_has_role('authenticator', 'service_role', 'member'), 'authenticator can become each API role');

-- Fixtures ---------------------------------------------------------------------------------------
insert into public.pending_calls (id, employee_name, phone) values
  ('00000000-0000-0000-0000-0000000a0001', 'Ada', '+15550001001'),
  ('00000000-0000-0000-0000-0000000a0002', 'Bob', '+15550001002');
insert into public.call_sessions (pending_call_id, attempt) values ('00000000-0000-0000-0000-0000000a0001', 1);
insert into public.call_classifications (phone_number, classification_type) values ('+15550001001', 'human');
insert into outcall_private.settings (name, value) values ('test_only', 'x');

-- anon ---------------------------------------------------------------------------------------------
set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select is(auth.role(), 'anon', 'acting as anon');
select throws_ok('select count(*) from public.pending_calls', '42501', null, 'anon cannot read pending_calls');
select throws_ok('select count(*) from public.call_sessions', '42501', null, 'anon cannot read call_sessions');
select throws_ok('select count(*) from public.call_classifications', '42501', null, 'anon cannot read call_classifications');
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('Eve', '+15550009999')$$, '42501', null,
                 'anon cannot insert');
select throws_ok($$select public.claim_pending_call('00000000-0000-0000-0000-0000000a0002')$$, '42501', null,
                 'anon cannot claim');
select throws_ok('select public.claim_next_due()', '42501', null, 'anon cannot claim the next due row');
select throws_ok($$select public.call_context('00000000-0000-0000-0000-0000000a0001', 'v')$$, '42501', null,
                 'anon cannot read a call context');
select throws_ok($$select public.apply_call_report('00000000-0000-0000-0000-0000000a0001', 'v', 'completed', null, null, null, null, null, null, null)$$,
                 '42501', null, 'anon cannot write a report');
select throws_ok('select * from outcall_private.settings', '42501', null, 'anon cannot read the settings');
reset role;
-- Even with a table privilege (granted by mistake), RLS gives anon no rows: no policy is for anon.
grant select on public.pending_calls to anon;
set local role anon;
select is((select count(*)::int from public.pending_calls), 0, 'anon sees 0 rows even if granted SELECT');
reset role;
revoke select on public.pending_calls from anon;

-- authenticated --------------------------------------------------------------------------------------
set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated", "sub": "00000000-0000-0000-0000-00000000d00d"}';
select is(auth.uid(), '00000000-0000-0000-0000-00000000d00d'::uuid, 'acting as an authenticated user');
-- Signed in is not enough: a user the allow-list does not name reads nothing.
select is((select count(*)::int from public.pending_calls), 0, 'authenticated, not an operator: no pending call');
select is((select count(*)::int from public.call_sessions), 0, 'authenticated, not an operator: no session');
select is((select count(*)::int from public.call_classifications), 0, 'authenticated, not an operator: no classification');
reset role;
insert into auth.users (id, email) values ('00000000-0000-0000-0000-00000000d00d', 'd00d@example.com');
select is(outcall_private.add_operator('d00d@example.com', 'viewer') ->> 'role', 'viewer', 'the user is made a viewer');
set local role authenticated;
select is((select count(*)::int from public.pending_calls where id in ('00000000-0000-0000-0000-0000000a0001', '00000000-0000-0000-0000-0000000a0002')),
          2, 'a viewer reads every pending call');
select is((select count(*)::int from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0001'),
          1, 'a viewer reads the sessions');
select is((select count(*)::int from public.call_classifications where phone_number = '+15550001001'),
          1, 'a viewer reads the classifications');
-- and writes nothing (no write privilege: the errors below are a viewer's)
select throws_ok($$insert into public.pending_calls (employee_name, phone) values ('Eve', '+15550009999')$$, '42501', null,
                 'authenticated cannot insert pending calls');
select throws_ok($$update public.pending_calls set call_status = 'cancelled'$$, '42501', null,
                 'authenticated cannot update pending calls');
select throws_ok($$delete from public.pending_calls$$, '42501', null, 'authenticated cannot delete pending calls');
select throws_ok($$update public.call_sessions set status = 'completed'$$, '42501', null,
                 'authenticated cannot update sessions');
select throws_ok($$insert into public.call_classifications (phone_number, classification_type) values ('+15550009999', 'human')$$,
                 '42501', null, 'authenticated cannot insert classifications');
select throws_ok($$select public.claim_pending_call('00000000-0000-0000-0000-0000000a0002')$$, '42501', null,
                 'authenticated cannot claim');
select throws_ok('select public.sweep_stale_sessions()', '42501', null, 'authenticated cannot sweep');
select throws_ok($$select public.record_dial_result('00000000-0000-0000-0000-0000000a0002', 'CA', null, null)$$, '42501', null,
                 'authenticated cannot record a dial result');
select throws_ok($$select public.apply_twilio_status('CA', 'ringing', 1, null, null)$$, '42501', null,
                 'authenticated cannot apply a Twilio status');
select throws_ok($$select public.call_context('00000000-0000-0000-0000-0000000a0001', 'v')$$, '42501', null,
                 'authenticated cannot read a call context');
select throws_ok($$select public.apply_vapi_status('00000000-0000-0000-0000-0000000a0001', 'ended', 'v')$$, '42501', null,
                 'authenticated cannot apply a VAPI status');
select throws_ok($$select public.apply_call_report('00000000-0000-0000-0000-0000000a0001', 'v', 'completed', null, null, null, null, null, null, null)$$,
                 '42501', null, 'authenticated cannot write a report');
select throws_ok('select * from outcall_private.settings', '42501', null, 'authenticated cannot read the settings');
select throws_ok('select * from outcall_private.operators', '42501', null, 'authenticated cannot read the operators');
reset role;
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'), 'pending',
          'nothing was changed by anon or authenticated');

-- service_role ------------------------------------------------------------------------------------
set local role service_role;
set local request.jwt.claims = '{"role": "service_role"}';
select lives_ok($$insert into public.pending_calls (id, employee_name, phone, clinic_timezone) values
                  ('00000000-0000-0000-0000-0000000a0003', 'Cy', '+15550001003', 'America/Denver')$$,
                'service_role inserts pending calls (validation functions executable)');
select throws_ok($$insert into public.pending_calls (employee_name, phone, clinic_timezone) values ('Cy', '+15550001003', 'Nowhere/Land')$$,
                 '23514', null, 'and the checks still apply to it');
select lives_ok($$insert into public.call_classifications (phone_number, classification_type, ivr_actions) values
                  ('+15550001003', 'ivr_only', '[{"action": "dtmf", "value": "1", "timing_ms": 0}]')$$,
                'service_role inserts classifications');
select is((select count(*)::int from public.pending_calls where id::text like '00000000-0000-0000-0000-0000000a000_'),
          3, 'service_role reads every row');
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000a0003') -> 'classification' ->> 'classification_type',
          'ivr_only', 'service_role claims');
select is(public.record_dial_result((select id from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000a0003'),
                                    'CA03', null, null) ->> 'call_status', 'calling', 'service_role records a dial result');
select is(public.apply_twilio_status('CA03', 'in-progress', 2, 'human', null) ->> 'session_status', 'in-progress',
          'service_role applies a Twilio status');
select is(public.call_context('00000000-0000-0000-0000-0000000a0003', 'v3') ->> 'clinic_timezone', 'America/Denver',
          'service_role reads a call context');
select is(public.apply_vapi_status('00000000-0000-0000-0000-0000000a0003', 'in-progress', 'v3') ->> 'vapi_status', 'in-progress',
          'service_role applies a VAPI status');
select is(public.apply_call_report('00000000-0000-0000-0000-0000000a0003', 'v3', 'completed', 'customer-ended-call',
                                   null, null, null, null, null, null) ->> 'call_status', 'completed',
          'service_role applies a report');
select lives_ok($$update public.pending_calls set call_status = 'cancelled' where id = '00000000-0000-0000-0000-0000000a0002'$$,
                'service_role updates rows');
select lives_ok($$delete from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0002'$$,
                'service_role deletes rows');
-- the reliability functions (their private helpers, the policy and the rate state are within its rights)
select lives_ok($$insert into public.pending_calls (id, employee_name, phone) values
                  ('00000000-0000-0000-0000-0000000a0004', 'Di', '+15550001004')$$, 'service_role inserts another row');
select is(public.claim_next_due() ->> 'pending_call_id', '00000000-0000-0000-0000-0000000a0004',
          'service_role claims the next due row');
select is(public.reserve_dial_slot((select id from public.call_sessions
                                     where pending_call_id = '00000000-0000-0000-0000-0000000a0004')) ->> 'outcome',
          'reserved', 'service_role reserves a dial slot');
select is(public.release_dial_slot((select id from public.call_sessions
                                     where pending_call_id = '00000000-0000-0000-0000-0000000a0004')),
          '{"released": true}'::jsonb, 'service_role releases a dial slot');
select is(public.sweep_stale_sessions(), '{"reports_missing": 0, "to_reconcile": [], "runs_abandoned": 0, "expired": 0}'::jsonb,
          'service_role sweeps');
select is(public.reconcile_dialing_session((select id from public.call_sessions
                                             where pending_call_id = '00000000-0000-0000-0000-0000000a0004'), '[]')
            ->> 'outcome', 'not_dialled', 'service_role reconciles a dialing session');
select throws_ok('select * from outcall_private.settings', '42501', null, 'service_role cannot read the private settings');
reset role;

select * from finish();
rollback;
