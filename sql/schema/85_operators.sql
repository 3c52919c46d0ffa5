-- 85: operators: the Supabase Auth users who may read personal data through the API (PostgREST, Realtime).
-- Signed-in is not enough: a user reads a row only if this allow-list names them (every table's and view's
-- policy calls outcall_private.is_viewer(), 90_security.sql). Two roles:
--   viewer    reads every table and view;
--   operator  reads like a viewer, and will act (cancel, retry, reset, edit classifications: a later issue).
-- The list is a table, not app_metadata in the JWT: a change (a removal above all) holds from the next statement,
-- not after the user's access token expires; it is plain SQL to check and revoke, and pgTAP sees it
-- (sql/README.md, "Operators"). Only postgres and service_role write it; add and remove with add_operator and
-- remove_operator below (`./dev operator` locally, the SQL editor or psql in production: README.md).

create table outcall_private.operators (
  user_id uuid primary key references auth.users (id) on delete cascade,
  email text not null,
  role text not null check (role in ('viewer', 'operator')),
  created_at timestamptz not null default now()
);
comment on table outcall_private.operators is
  'The allow-list of operators: Supabase Auth users (auth.users.id = the JWT''s sub) who may read personal data (viewer) and, later, act on it (operator). email is the user''s at the time they were added (a label). Written by postgres and service_role only: add_operator, remove_operator.';

-- The caller's role (auth.uid(), the JWT's sub): 'viewer', 'operator', or null (not an operator, or no user).
-- SECURITY DEFINER: reads the allow-list, which no API role may read.
create or replace function outcall_private.operator_role() returns text
language sql stable security definer
set search_path = ''
as $$
  select o.role from outcall_private.operators as o where o.user_id = auth.uid()
$$;
comment on function outcall_private.operator_role() is
  'The signed-in caller''s operator role (viewer | operator), null when auth.uid() is not in outcall_private.operators.';

-- What every policy asks: may the caller read? (viewer or operator). Policies call it as
-- `(select outcall_private.is_viewer())`, evaluated once per statement rather than once per row.
create or replace function outcall_private.is_viewer() returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from outcall_private.operators as o
                  where o.user_id = auth.uid() and o.role in ('viewer', 'operator'))
$$;
comment on function outcall_private.is_viewer() is
  'True when the signed-in caller (auth.uid()) is an operator of any role (viewer, operator): the read policy of every table.';

-- add_operator ------------------------------------------------------------------------------------------------
-- Names an existing Supabase Auth user (found by email, case-insensitive) an operator with p_role, or changes
-- their role. Sign-ups are off: the user is created first (dashboard: Authentication > Users > Add user, email
-- confirmed; or the admin API with email_confirm: true).
create or replace function outcall_private.add_operator(p_email text, p_role text default 'viewer') returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_users uuid[];
  v_email text;
  v_previous text;
  v_row outcall_private.operators;
begin
  if p_role is null or p_role not in ('viewer', 'operator') then
    raise exception 'add_operator: role must be viewer or operator, not %', coalesce(p_role, 'null')
      using errcode = '22023';
  end if;
  select pg_catalog.array_agg(u.id) into v_users
    from auth.users as u
   where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)) and u.deleted_at is null;
  if v_users is null then
    raise exception 'add_operator: no Supabase Auth user has the email %', p_email
      using errcode = 'P0002',
            hint = 'Create the user first (sign-ups are off): dashboard Authentication > Users > Add user, email confirmed.';
  elsif pg_catalog.cardinality(v_users) > 1 then
    raise exception 'add_operator: % Supabase Auth users have the email %', pg_catalog.cardinality(v_users), p_email
      using errcode = 'P0003';
  end if;
  select u.email into v_email from auth.users as u where u.id = v_users[1];
  select o.role into v_previous from outcall_private.operators as o where o.user_id = v_users[1];
  insert into outcall_private.operators (user_id, email, role) values (v_users[1], v_email, p_role)
  on conflict (user_id) do update set email = excluded.email, role = excluded.role
  returning * into v_row;
  return pg_catalog.jsonb_build_object('user_id', v_row.user_id, 'email', v_row.email, 'role', v_row.role,
                                       'previous_role', v_previous);
end
$$;
comment on function outcall_private.add_operator(text, text) is
  'Makes the Supabase Auth user with this email (case-insensitive) an operator with role viewer (default) or operator, or changes their role: {user_id, email, role, previous_role}. No such user: P0002; role not viewer/operator: 22023.';

-- remove_operator ----------------------------------------------------------------------------------------------
-- Takes the user with this email (theirs now, or the one they were added with) off the list. Holds from the next
-- statement: their JWT stays valid until it expires, but every policy asks the list, so they read nothing more.
create or replace function outcall_private.remove_operator(p_email text) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_removed jsonb;
begin
  with gone as (
    delete from outcall_private.operators as o
     where pg_catalog.lower(o.email) = pg_catalog.lower(pg_catalog.btrim(p_email))
        or o.user_id in (select u.id from auth.users as u
                          where pg_catalog.lower(u.email) = pg_catalog.lower(pg_catalog.btrim(p_email)))
    returning o.user_id, o.email, o.role
  )
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('user_id', g.user_id, 'email', g.email,
                                                                     'role', g.role) order by g.email), '[]')
    into v_removed
    from gone as g;
  return pg_catalog.jsonb_build_object('removed', v_removed);
end
$$;
comment on function outcall_private.remove_operator(text) is
  'Removes the operator(s) with this email (auth.users'' or the one stored when added; case-insensitive): {removed: [{user_id, email, role}]}, empty when none was an operator.';

-- operator_of ---------------------------------------------------------------------------------------------------
-- Who a signed-in user is to outcall, for the dashboard to show or hide actions (GET /api/v1/operator/me). The
-- Worker calls it as service_role with the user id of the access token it has just verified; users cannot call it
-- (they would learn others' roles), and their own token reaches the action functions, which check the role again.
create or replace function public.operator_of(p_user_id uuid) returns jsonb
language sql stable security definer
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'user_id', p_user_id,
    'email', coalesce((select u.email from auth.users as u where u.id = p_user_id),
                      (select o.email from outcall_private.operators as o where o.user_id = p_user_id)),
    'role', (select o.role from outcall_private.operators as o where o.user_id = p_user_id))
$$;
comment on function public.operator_of(uuid) is
  'A Supabase Auth user as outcall sees them: {user_id, email, role}, role viewer | operator, or null when not on the allow-list. service_role''s (the Worker, after verifying the user''s JWT).';
