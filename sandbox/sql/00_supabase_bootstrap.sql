-- LOCAL ONLY. What a hosted Supabase project already has before our migrations run: the API roles,
-- the auth helper functions, auth.users, the `extensions` schema and Supabase's default privileges.
-- Never applied to a hosted project (it has all of this). Idempotent: safe to run any number of times,
-- also on a database the migrations have already been applied to (it grants nothing on existing
-- tables or functions, only default privileges for future objects).

-- Roles --------------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

-- Keep the attributes right even if the roles pre-existed with others.
alter role anon nologin noinherit;
alter role authenticated nologin noinherit;
alter role service_role nologin noinherit bypassrls;
alter role authenticator login noinherit password 'authenticator-local';

grant anon, authenticated, service_role to authenticator;

-- Schemas and extensions -------------------------------------------------------------------------
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;

grant usage on schema public to anon, authenticated, service_role;

-- auth helpers, as Supabase defines them (PostgREST sets request.jwt.claims per request) ----------
create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt() to anon, authenticated, service_role;

-- auth.users: Supabase Auth's users (GoTrue owns the table on a hosted project; its id is a JWT's `sub`). Here a
-- stand-in with the columns outcall reads (id, email) and a few of the real ones beside them: the sandbox's Auth
-- stand-in signs in its confirmed rows (email_confirmed_at) and records last_sign_in_at, but never creates one
-- (sign-ups are off): `./dev operator add` inserts the user an operator needs. Like hosted, no API role reads it.
create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  email_confirmed_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  created_at timestamptz,
  updated_at timestamptz,
  deleted_at timestamptz
);
revoke all on table auth.users from public, anon, authenticated;

-- Supabase's default privileges: everything the migration owner creates in `public` is granted to
-- the API roles, so a migration that forgets to revoke really exposes the object (and the tests see it).
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
