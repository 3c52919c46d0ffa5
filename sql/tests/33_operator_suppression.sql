-- The do-not-call list from the dashboard (sql/schema/87_operator_actions.sql, operator_suppression_action): an
-- operator adds a phone (its waiting row ends suppressed, added_by is the operator) and removes it, each audited
-- (target_kind suppression, the phone in detail); a viewer, a signed-in non-operator and anon are refused (42501)
-- with nothing written; a bad phone, source or action is refused (22023) with nothing written.
begin;
select plan(22);

select test_fixtures.open_policy();

insert into auth.users (id, email) values
  ('00000000-0000-0000-0000-000000330001', 'olga.operator@example.com'),
  ('00000000-0000-0000-0000-000000330002', 'victor.viewer@example.com'),
  ('00000000-0000-0000-0000-000000330003', 'sam.stranger@example.com');
select outcall_private.add_operator('olga.operator@example.com', 'operator');
select outcall_private.add_operator('victor.viewer@example.com', 'viewer');

create function pg_temp.act_as(p_user uuid) returns void language sql as $$
  select set_config('request.jwt.claims', json_build_object('sub', p_user, 'role', 'authenticated')::text, true);
  set local role authenticated;
$$;
create function pg_temp.listed(p_phone text) returns boolean language sql as $$
  select exists (select 1 from public.suppression_list where phone = p_phone)
$$;

select test_fixtures.new_call('00000000-0000-0000-0000-00000033a001');
select phone as waiting_phone from public.pending_calls where id = '00000000-0000-0000-0000-00000033a001' \gset

-- An operator adds ------------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000330001');
select is(public.operator_suppression_action('add', :'waiting_phone', ' asked on the phone ', 'clinic')
            - 'suppression',
          '{"action": "add", "created": true}'::jsonb, 'an operator adds a phone: created');
reset role;
select is((select to_jsonb(l) - 'created_at' - 'id' from public.suppression_list as l where phone = :'waiting_phone'),
          jsonb_build_object('phone', :'waiting_phone', 'reason', 'asked on the phone', 'source', 'clinic',
                             'added_by', 'olga.operator@example.com'),
          'listed with its reason, source and the operator as added_by');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-00000033a001'),
          'suppressed', 'its waiting row ends suppressed (add_suppression''s rule)');
select is((select count(*)::int from public.operator_actions), 1, 'one audit row');
select is((select array[action, target_kind, email, cardinality(target_ids)::text, detail ->> 'phone']
             from public.operator_actions),
          array['add', 'suppression', 'olga.operator@example.com', '0', :'waiting_phone'],
          'audited: add on suppression by the operator, the phone in detail, no target ids');
select is((select (detail -> 'answer' ->> 'created')::boolean from public.operator_actions), true,
          'the audit keeps the answer');

select pg_temp.act_as('00000000-0000-0000-0000-000000330001');
select is(public.operator_suppression_action('add', :'waiting_phone') ->> 'created', 'false',
          'adding a listed phone again: created false');
reset role;
select is((select source from public.suppression_list where phone = :'waiting_phone'), 'clinic', 'the entry is kept');
select is((select count(*)::int from public.operator_actions), 2, 'and audited too');

-- Refused: not an operator ------------------------------------------------------------------------------------------
delete from public.operator_actions;
select pg_temp.act_as('00000000-0000-0000-0000-000000330002');
select throws_ok($$ select public.operator_suppression_action('add', '+15550003301') $$, '42501', null,
                 'a viewer may not add');
select throws_ok(format($$ select public.operator_suppression_action('remove', %L) $$, :'waiting_phone'), '42501',
                 null, 'nor remove');
reset role;
select pg_temp.act_as('00000000-0000-0000-0000-000000330003');
select throws_ok($$ select public.operator_suppression_action('add', '+15550003301') $$, '42501', null,
                 'a signed-in non-operator may not add');
reset role;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
set local role anon;
select throws_ok($$ select public.operator_suppression_action('add', '+15550003301') $$, '42501', null,
                 'anon may not call it');
reset role;
select is(array[pg_temp.listed('+15550003301'), pg_temp.listed(:'waiting_phone')], array[false, true],
          'nothing added, nothing removed');
select is((select count(*)::int from public.operator_actions), 0, 'nothing audited');

-- Refused: bad arguments --------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000330001');
select throws_ok($$ select public.operator_suppression_action('add', '5550003301') $$, '22023', null,
                 'a phone not in E.164');
select throws_ok($$ select public.operator_suppression_action('add', '+15550003301', null, 'sms_opt_out') $$,
                 '22023', null, 'source sms_opt_out is not the operators''');
select throws_ok($$ select public.operator_suppression_action('add', '+15550003301', repeat('x', 501)) $$,
                 '22023', null, 'a reason over 500 characters');
select throws_ok($$ select public.operator_suppression_action('delete', '+15550003301') $$, '22023', null,
                 'an unknown action');
reset role;
select is((select count(*)::int from public.operator_actions) + (select count(*)::int from public.suppression_list
            where phone = '+15550003301'), 0, 'nothing written');

-- An operator removes -----------------------------------------------------------------------------------------------
select pg_temp.act_as('00000000-0000-0000-0000-000000330001');
select is(public.operator_suppression_action('remove', :'waiting_phone') - 'suppression',
          '{"action": "remove", "removed": true}'::jsonb, 'an operator removes the phone');
reset role;
select is((select array[action, target_kind, detail ->> 'phone', detail -> 'answer' ->> 'removed']
             from public.operator_actions),
          array['remove', 'suppression', :'waiting_phone', 'true'], 'audited: remove, the phone in detail');

select * from finish();
rollback;
