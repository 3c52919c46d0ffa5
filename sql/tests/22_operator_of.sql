-- operator_of (sql/schema/85_operators.sql): the Worker's GET /api/v1/operator/me. Who a user is to outcall, by the
-- user id of a JWT the Worker verified; service_role's only (a user could learn others' roles with it).
begin;
select plan(9);

select function_returns('public', 'operator_of', array['uuid'], 'jsonb', 'operator_of(uuid) returns jsonb');
select ok((select prosecdef and array_to_string(proconfig, ',') = 'search_path=""' from pg_proc
            where oid = 'public.operator_of(uuid)'::regprocedure), 'security definer, empty search_path');
select ok(not has_function_privilege('anon', 'public.operator_of(uuid)', 'execute')
          and not has_function_privilege('authenticated', 'public.operator_of(uuid)', 'execute')
          and has_function_privilege('service_role', 'public.operator_of(uuid)', 'execute'),
          'service_role executes it, anon and authenticated do not');

insert into auth.users (id, email) values
  ('00000000-0000-0000-0000-0000000f0001', 'Vera@Example.com'),
  ('00000000-0000-0000-0000-0000000f0002', 'otto@example.com'),
  ('00000000-0000-0000-0000-0000000f0003', 'sam@example.com');
select outcall_private.add_operator('vera@example.com', 'viewer');
select outcall_private.add_operator('otto@example.com', 'operator');

set local role service_role;
set local request.jwt.claims = '{"role": "service_role"}';
select is(public.operator_of('00000000-0000-0000-0000-0000000f0001'),
          '{"user_id": "00000000-0000-0000-0000-0000000f0001", "email": "Vera@Example.com", "role": "viewer"}'::jsonb,
          'a viewer, with the email Auth has');
select is(public.operator_of('00000000-0000-0000-0000-0000000f0002') ->> 'role', 'operator', 'an operator');
select is(public.operator_of('00000000-0000-0000-0000-0000000f0003'),
          '{"user_id": "00000000-0000-0000-0000-0000000f0003", "email": "sam@example.com", "role": null}'::jsonb,
          'a signed-in user not on the list: role null');
select is(public.operator_of('00000000-0000-0000-0000-0000000fffff'),
          '{"user_id": "00000000-0000-0000-0000-0000000fffff", "email": null, "role": null}'::jsonb,
          'no such user: email and role null');
reset role;

set local role authenticated;
set local request.jwt.claims = '{"role": "authenticated", "sub": "00000000-0000-0000-0000-0000000f0002"}';
select throws_ok($$select public.operator_of('00000000-0000-0000-0000-0000000f0001')$$, '42501', null,
                 'a signed-in user (an operator even) cannot ask it');
reset role;
set local role anon;
select throws_ok($$select public.operator_of('00000000-0000-0000-0000-0000000f0001')$$, '42501', null, 'nor anon');
reset role;

select * from finish();
rollback;
