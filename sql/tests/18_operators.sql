-- Operators: personal data is read only by users the allow-list (outcall_private.operators) names. Every table and
-- view of `public` is found in the catalogue (not listed here), so a new one without the operators' policy, or a
-- view that bypasses RLS, fails this file:
--   anon reads nothing and executes nothing; a signed-in user who is not an operator sees no row and may call no
--   public function (the operators' actions, executable by authenticated, refuse them with 42501); a viewer reads
--   every row and writes nothing; an operator reads every row and writes only through the action functions
--   (20_operator_actions.sql tests them); removing an operator holds from the next statement (same JWT);
--   service_role does everything but act (the actions need an operator's JWT).
begin;
select plan(69);

select test_fixtures.open_policy();
-- (the helpers below read temp tables created further down)
set local check_function_bodies = off;

-- The relations and functions under test, from the catalogue (extension members, e.g. pgTAP's, left out) ------
create temp table rel as
  select c.oid::regclass as rel, c.relkind::text as kind
    from pg_class as c
   where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
     and not exists (select 1 from pg_depend as d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e');
create temp table fn as
  select p.oid::regprocedure as sig,
         format('select %s(%s)', p.oid::regproc,
                (select string_agg('null::' || format_type(t, null), ', ' order by i)
                   from unnest(p.proargtypes::oid[]) with ordinality as a (t, i))) as call
    from pg_proc as p
   where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'
     and not exists (select 1 from pg_depend as d
                      where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e');
grant select on rel, fn to public;

-- How many rows the current role sees in a relation.
create function pg_temp.rows_in(p_rel regclass) returns bigint language plpgsql as $$
declare
  n bigint;
begin
  execute format('select count(*) from %s', p_rel) into n;
  return n;
end
$$;
-- The SQLSTATE a statement fails with, 'ok' when it succeeds (its effects are rolled back either way).
create function pg_temp.sqlstate_of(p_sql text) returns text language plpgsql as $$
begin
  begin
    execute p_sql;
    raise exception using errcode = 'OK000';
  exception when sqlstate 'OK000' then
    return 'ok';
  end;
exception when others then
  return sqlstate;
end
$$;
-- Each write a client could try on a relation: insert, update, delete, truncate (truncate: tables only).
create function pg_temp.writes(p_rel regclass) returns setof text language sql as $$
  select format('insert into %s default values', p_rel)
  union all
  select format('update %s set %I = %I', p_rel, a.attname, a.attname)
    from (select attname from pg_attribute
           where attrelid = p_rel and attnum > 0 and not attisdropped and attgenerated = ''
           order by attnum limit 1) as a
  union all
  select format('delete from %s', p_rel)
  union all
  select format('truncate %s', p_rel) from pg_class where oid = p_rel and relkind in ('r', 'p')
$$;
-- The relations where one of those writes did not fail for lack of privilege (or, a view that is not updatable,
-- 55000, before privileges are checked: the catalogue test below checks that no write is granted on them).
create function pg_temp.writable() returns text[] language sql as $$
  select coalesce(array_agg(distinct r.rel::text order by r.rel::text), '{}')
    from rel as r, pg_temp.writes(r.rel) as w
   where pg_temp.sqlstate_of(w) not in ('42501', '55000')
$$;
-- The operators' actions: executable by authenticated, refusing inside all but operators (42501).
create temp table actions (sig regprocedure);
insert into actions values ('public.operator_call_action(text, uuid[])'), ('public.operator_batch_action(uuid, text)'),
  ('public.operator_classification_action(uuid, text, jsonb)'),
  ('public.operator_suppression_action(text, text, text, text)');
grant select on actions to public;
-- The relations whose row count, as the current role, differs from what postgres counted.
create function pg_temp.rows_differ() returns text[] language sql as $$
  select coalesce(array_agg(r.rel::text order by r.rel::text), '{}')
    from rel as r join expected as e using (rel)
   where pg_temp.rows_in(r.rel) <> e.n
$$;
-- The relations where the current role sees a row.
create function pg_temp.rows_seen() returns text[] language sql as $$
  select coalesce(array_agg(r.rel::text order by r.rel::text), '{}') from rel as r where pg_temp.rows_in(r.rel) > 0
$$;
-- The public functions the current role could call (a call that fails for another reason than privilege).
create function pg_temp.callable() returns text[] language sql as $$
  select coalesce(array_agg(f.sig::text order by f.sig::text), '{}') from fn as f where pg_temp.sqlstate_of(f.call) <> '42501'
$$;
create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;

select ok((select count(*) from rel where kind in ('r', 'p')) >= 4 and (select count(*) from rel where kind = 'v') >= 1
          and (select count(*) from fn) >= 18, 'the catalogue lists the tables, views and functions of public');

-- Catalogue: RLS, the policy, views, privileges -------------------------------------------------------------
select is(array(select rel::text from rel where kind in ('r', 'p') and not (select relrowsecurity from pg_class where oid = rel)
                 order by 1), '{}'::text[], 'RLS is enabled on every table of public');
select is(array(select r.rel::text from rel as r
                 where r.kind in ('r', 'p')
                   and (select count(*) <> 1
                               or not bool_and(p.policyname = 'operators can read' and p.cmd = 'SELECT'
                                               and p.permissive = 'PERMISSIVE' and p.roles = '{authenticated}'
                                               and p.qual = '( SELECT outcall_private.is_viewer() AS is_viewer)'
                                               and p.with_check is null)
                          from pg_policies as p
                         where p.schemaname = 'public' and p.tablename = (select relname from pg_class where oid = r.rel))
                 order by 1), '{}'::text[],
          'every table of public has one policy: "operators can read", SELECT, for authenticated, using is_viewer()');
select is(array(select policyname || ' on ' || tablename from pg_policies
                 where schemaname = 'public' and (qual is null or qual = 'true' or roles <> '{authenticated}')),
          '{}'::text[], 'no policy of public reads every row or names another role');
select is(array(select rel::text from rel
                 where kind = 'm' or (kind = 'v' and not coalesce((select reloptions from pg_class where oid = rel)
                                                                    @> '{security_invoker=true}', false))
                 order by 1), '{}'::text[],
          'every view of public is security_invoker (RLS of its tables applies), no materialized view');
select is(array(select rel::text from rel
                 where has_table_privilege('anon', rel, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                    or has_any_column_privilege('anon', rel, 'SELECT, INSERT, UPDATE, REFERENCES')
                 order by 1), '{}'::text[], 'anon has no privilege on any table or view of public');
select is(array(select rel::text from rel
                 where not has_table_privilege('authenticated', rel, 'SELECT')
                    or has_table_privilege('authenticated', rel, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                    or has_any_column_privilege('authenticated', rel, 'INSERT, UPDATE, REFERENCES')
                 order by 1), '{}'::text[], 'authenticated may SELECT every table and view of public, nothing else');
select is(array(select rel::text from rel
                 where not has_table_privilege('service_role', rel, 'SELECT')
                    or (kind in ('r', 'p') and not (has_table_privilege('service_role', rel, 'INSERT')
                                                    and has_table_privilege('service_role', rel, 'UPDATE')
                                                    and has_table_privilege('service_role', rel, 'DELETE')))
                 order by 1), '{}'::text[], 'service_role reads every table and view of public, writes every table');
select is(array(select c.oid::regclass::text from pg_class as c
                 where c.relnamespace = 'outcall_private'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
                   and (has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
                        or has_table_privilege('authenticated', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'))
                 order by 1), '{}'::text[], 'anon and authenticated have no privilege on any relation of outcall_private');
select is(array(select sig::text from fn where has_function_privilege('anon', sig, 'execute')
                   or (has_function_privilege('authenticated', sig, 'execute') and sig not in (select sig from actions))
                 order by 1), '{}'::text[],
          'anon can execute no function of public, authenticated only the operators'' actions');
select is(array(select f.sig::text from fn as f join actions as a using (sig)
                 where has_function_privilege('authenticated', f.sig, 'execute')
                   and (select prosecdef and array_to_string(proconfig, ',') = 'search_path=""' from pg_proc where oid = f.sig)
                 order by 1),
          array(select sig::text from actions order by 1),
          'the three operators'' actions: executable by authenticated, security definer, empty search_path');
select is(array(select sig::text from fn where not has_function_privilege('service_role', sig, 'execute') order by 1),
          '{}'::text[], 'service_role can execute every function of public');
select is(array(select p.oid::regprocedure::text from pg_proc as p
                 where p.pronamespace = 'outcall_private'::regnamespace
                   and has_function_privilege('authenticated', p.oid, 'execute')), array['outcall_private.is_viewer()'],
          'authenticated executes one private function, is_viewer() (what the policies call)');

-- The allow-list and its functions
select has_table('outcall_private', 'operators', 'the allow-list is outcall_private.operators');
select col_is_pk('outcall_private', 'operators', 'user_id', 'one row per user');
select fk_ok('outcall_private', 'operators', 'user_id', 'auth', 'users', 'id');
select table_privs_are('outcall_private', 'operators', r, array[]::text[], 'operators: nothing for ' || r)
  from unnest(array['anon', 'authenticated']) as r;
select table_privs_are('outcall_private', 'operators', 'service_role', array['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
                       'operators: service_role reads and writes the list');
select is(array(select p.proname::text || ' ' || p.provolatile::text || ' ' || p.prosecdef::text || ' ' || array_to_string(p.proconfig, ',')
                  from pg_proc as p
                 where p.oid in ('outcall_private.is_viewer()'::regprocedure, 'outcall_private.operator_role()'::regprocedure)
                 order by 1),
          array['is_viewer s true search_path=""', 'operator_role s true search_path=""'],
          'is_viewer and operator_role: stable, security definer, empty search_path');
select is(array(select sig::text from unnest(array['outcall_private.operator_role()'::regprocedure,
                                                   'outcall_private.add_operator(text, text)',
                                                   'outcall_private.remove_operator(text)']) as sig
                 where has_function_privilege('anon', sig, 'execute') or has_function_privilege('authenticated', sig, 'execute')
                    or not has_function_privilege('service_role', sig, 'execute')),
          '{}'::text[], 'operator_role, add_operator, remove_operator: service_role''s, not the users''');
select ok(not has_function_privilege('anon', 'outcall_private.is_viewer()', 'execute')
          and not has_function_privilege('service_role', 'outcall_private.is_viewer()', 'execute'),
          'is_viewer: authenticated''s only (service_role bypasses RLS, anon has no policy)');

-- Fixtures: a row in every table (and so in every view) ------------------------------------------------------
insert into auth.users (id, email) values
  ('00000000-0000-0000-0000-0000000e0001', 'Viewer@Example.com'),
  ('00000000-0000-0000-0000-0000000e0002', 'operator@example.com'),
  ('00000000-0000-0000-0000-0000000e0003', 'stranger@example.com'),
  ('00000000-0000-0000-0000-0000000e0004', 'twice@example.com'),
  ('00000000-0000-0000-0000-0000000e0005', 'twice@example.com');
insert into public.batches (id, name) values ('00000000-0000-0000-0000-0000000eb001', 'Operators');
insert into public.pending_calls (id, employee_name, phone, batch_id, employee_dob) values
  ('00000000-0000-0000-0000-0000000ea001', 'Ada', '+15550002001', '00000000-0000-0000-0000-0000000eb001', '1970-01-01');
insert into public.call_sessions (id, pending_call_id, attempt) values
  ('00000000-0000-0000-0000-0000000ec001', '00000000-0000-0000-0000-0000000ea001', 1);
insert into public.classification_runs (phone, session_id, pending_call_id, purpose, token_sha256) values
  ('+15550002001', '00000000-0000-0000-0000-0000000ec001', '00000000-0000-0000-0000-0000000ea001', 'learn',
   sha256('token'));
insert into public.call_classifications (phone_number, classification_type) values ('+15550002001', 'human');
insert into public.operator_actions (user_id, email, action, target_kind, target_ids, detail) values
  ('00000000-0000-0000-0000-0000000e0002', 'operator@example.com', 'cancel', 'call',
   '{00000000-0000-0000-0000-0000000ea001}', '{"results": []}');
insert into public.sms_batches (id, name, sender) values ('00000000-0000-0000-0000-0000000ed001', 'Texts', '+15550002099');
insert into public.sms_messages (id, batch_id, position, to_phone, body, encoding, segments) values
  ('00000000-0000-0000-0000-0000000ee001', '00000000-0000-0000-0000-0000000ed001', 0, '+15550002001', 'Hi', 'GSM-7', 1);
insert into public.sms_replies (message_sid, from_phone, to_phone, body, batch_id, sms_message_id) values
  ('SM00000000000000000000000000000e01', '+15550002001', '+15550002099', 'Thanks',
   '00000000-0000-0000-0000-0000000ed001', '00000000-0000-0000-0000-0000000ee001');
insert into public.sms_opt_outs (phone, source) values ('+15550002002', 'manual');
insert into public.suppression_list (phone, source) values ('+15550002003', 'clinic');
insert into public.breaker_transitions (from_state, to_state, reason, failures, provider)
  values ('closed', 'open', 'failures', 5, 'twilio');
insert into public.provider_errors_daily (day, provider, kind, count) values (current_date, 'twilio', 'throttled', 1);
create temp table expected as select rel, pg_temp.rows_in(rel) as n from rel;
grant select on expected to public;
select is(array(select rel::text from expected where n = 0 order by 1), '{}'::text[],
          'fixtures: every table and view of public has a row (add one for a new table)');

-- add_operator / remove_operator (as postgres) -----------------------------------------------------------------
select is(outcall_private.add_operator('viewer@example.com'),
          '{"user_id": "00000000-0000-0000-0000-0000000e0001", "email": "Viewer@Example.com", "role": "viewer", "previous_role": null}'::jsonb,
          'add_operator: the user found by email (any case), viewer by default');
select is(outcall_private.add_operator(' OPERATOR@example.com ', 'operator') ->> 'role', 'operator', 'add_operator with role operator');
select throws_ok($$select outcall_private.add_operator('nobody@example.com', 'viewer')$$, 'P0002', null,
                 'add_operator: an email no user has is refused');
select throws_ok($$select outcall_private.add_operator('stranger@example.com', 'admin')$$, '22023', null,
                 'add_operator: a role other than viewer/operator is refused');
select throws_ok($$select outcall_private.add_operator('twice@example.com', 'viewer')$$, 'P0003', null,
                 'add_operator: an email two users have is refused');
select throws_ok($$insert into outcall_private.operators (user_id, email, role) values
                   ('00000000-0000-0000-0000-0000000e0003', 'stranger@example.com', 'admin')$$, '23514', null,
                 'the table itself allows only viewer and operator');
select is((select count(*)::int from outcall_private.operators where user_id::text like '00000000-0000-0000-0000-0000000e000_'), 2,
          'two operators listed');

-- anon: nothing ------------------------------------------------------------------------------------------------
set local role anon;
set local request.jwt.claims = '{"role": "anon"}';
select is(array(select rel::text from rel where pg_temp.sqlstate_of(format('select from %s', rel)) <> '42501' order by 1),
          '{}'::text[], 'anon: reading any table or view of public is refused');
select is(pg_temp.writable(), '{}'::text[], 'anon: every insert, update, delete, truncate is refused');
select is(pg_temp.callable(), '{}'::text[], 'anon: every function of public is refused');
reset role;

-- A signed-in user who is not an operator: no row, no function ------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-0000000e0003');
select is(auth.uid(), '00000000-0000-0000-0000-0000000e0003'::uuid, 'acting as a signed-in user who is not an operator');
select is(pg_temp.rows_seen(), '{}'::text[], 'not an operator: no row of any table or view of public');
select is(pg_temp.writable(), '{}'::text[], 'not an operator: every insert, update, delete, truncate is refused');
select is(pg_temp.callable(), '{}'::text[], 'not an operator: every function of public is refused');
select throws_ok('select count(*) from outcall_private.operators', '42501', null, 'not an operator: cannot read the list');
select throws_ok($$insert into outcall_private.operators (user_id, email, role) values
                   ('00000000-0000-0000-0000-0000000e0003', 'stranger@example.com', 'operator')$$, '42501', null,
                 'not an operator: cannot add themselves to the list');
select throws_ok($$select outcall_private.add_operator('stranger@example.com', 'operator')$$, '42501', null,
                 'not an operator: cannot call add_operator');
reset role;
-- (is_viewer and operator_role read the same claims as postgres: authenticated has no USAGE on outcall_private to
-- call them by name; the policies hold is_viewer itself, and the rows below show it runs for authenticated)
select is(outcall_private.is_viewer(), false, 'is_viewer(): false for them');
select is(outcall_private.operator_role(), null, 'operator_role(): null for them');

-- No user at all (a JWT without sub, e.g. the anon key used with role authenticated): nothing.
set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated"}';
select is(pg_temp.rows_seen(), '{}'::text[], 'authenticated without a sub: no row');
reset role;

-- A viewer: reads every row, writes nothing ---------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-0000000e0001');
select is(pg_temp.rows_differ(), '{}'::text[], 'a viewer reads every row of every table and view of public');
select is((select employee_dob from public.pending_calls where id = '00000000-0000-0000-0000-0000000ea001'), '1970-01-01'::date,
          'personal data included');
select is(pg_temp.writable(), '{}'::text[], 'a viewer: every insert, update, delete, truncate is refused');
select is(pg_temp.callable(), '{}'::text[], 'a viewer: every function of public is refused');
select throws_ok('select count(*) from outcall_private.operators', '42501', null, 'a viewer cannot read the list');
select throws_ok($$update outcall_private.operators set role = 'operator'$$, '42501', null, 'nor promote themselves');
select throws_ok($$select outcall_private.operator_role()$$, '42501', null, 'nor call operator_role()');
reset role;
select is(outcall_private.is_viewer(), true, 'is_viewer(): true for a viewer');
select is(outcall_private.operator_role(), 'viewer', 'operator_role(): viewer');

-- An operator: reads like a viewer (acting comes in a later issue) -------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-0000000e0002');
select is(pg_temp.rows_differ(), '{}'::text[], 'an operator reads every row of every table and view of public');
select is(pg_temp.writable(), '{}'::text[], 'an operator: every insert, update, delete, truncate is refused');
select is(pg_temp.callable(), array(select sig::text from actions order by 1),
          'an operator: every function of public is refused but the four actions');
reset role;
select is(outcall_private.is_viewer(), true, 'is_viewer(): true for an operator');
select is(outcall_private.operator_role(), 'operator', 'operator_role(): operator');

-- A role change and a removal hold from the next statement, with the same JWT ----------------------------------
select is(outcall_private.add_operator('viewer@example.com', 'operator') - 'user_id',
          '{"email": "Viewer@Example.com", "role": "operator", "previous_role": "viewer"}'::jsonb,
          'add_operator again changes the role (and says which it was)');
select pg_temp.act_as('00000000-0000-0000-0000-0000000e0001');
reset role;
select is(outcall_private.operator_role(), 'operator', 'the same user is now an operator');
select is(outcall_private.remove_operator('VIEWER@example.com'),
          '{"removed": [{"user_id": "00000000-0000-0000-0000-0000000e0001", "email": "Viewer@Example.com", "role": "operator"}]}'::jsonb,
          'remove_operator: by email, any case; says whom it removed');
select is(outcall_private.remove_operator('viewer@example.com'), '{"removed": []}'::jsonb, 'removing again removes nothing');
select pg_temp.act_as('00000000-0000-0000-0000-0000000e0001');
select is(pg_temp.rows_seen(), '{}'::text[], 'removed: the same JWT reads nothing any more');
reset role;
-- Deleting the Supabase Auth user takes them off the list.
delete from auth.users where id = '00000000-0000-0000-0000-0000000e0002';
select is((select count(*)::int from outcall_private.operators where user_id = '00000000-0000-0000-0000-0000000e0002'), 0,
          'a deleted auth user is no operator');

-- service_role: everything --------------------------------------------------------------------------------------
set local role service_role;
set local request.jwt.claims = '{"role": "service_role"}';
select is(pg_temp.rows_differ(), '{}'::text[], 'service_role reads every row of every table and view of public (no policy needed)');
select is(array(select r.rel::text from rel as r, pg_temp.writes(r.rel) as w
                 where r.kind in ('r', 'p') and w !~ '^(insert|truncate)'
                   and pg_temp.sqlstate_of(w || ' where false') <> 'ok'
                 order by 1), '{}'::text[], 'service_role may update and delete in every table of public');
select is(array(select f.sig::text from fn as f where pg_temp.sqlstate_of(f.call) = '42501' order by 1),
          array(select sig::text from actions order by 1),
          'service_role may call every function of public; the actions refuse it (no operator''s JWT)');
select is(outcall_private.add_operator('stranger@example.com', 'viewer') ->> 'role', 'viewer', 'service_role adds an operator');
select is(jsonb_array_length(outcall_private.remove_operator('stranger@example.com') -> 'removed'), 1,
          'and removes one');
select lives_ok($$insert into outcall_private.operators (user_id, email, role) values
                  ('00000000-0000-0000-0000-0000000e0003', 'stranger@example.com', 'operator')$$,
                'service_role writes the list directly');
reset role;

select * from finish();
rollback;
