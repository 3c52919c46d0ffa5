-- outcall's declared schema. sql/schema/*.sql, applied in name order to a new Supabase project, is the whole
-- database: every table, function, trigger, policy and grant is defined here once, as it is now. The baseline
-- migration (supabase/migrations/20261202000000_baseline.sql) is these files concatenated by `./dev schema`;
-- later changes are made here and in a new migration, and `./dev test sql` checks that both build the same
-- database (sql/README.md, "How to change a function").
--
-- 00: the schemas and extensions the rest needs.

-- Private helpers live outside the API-exposed `public` schema (PostgREST would offer every public
-- function as an RPC). Locked down in 90_security.sql.
create schema if not exists outcall_private;

-- pg_net (the webhook's HTTP client, 70_webhook.sql): a real extension on hosted Supabase (usually already
-- enabled); locally a stand-in already provides schema `net` (sandbox/sql/01_pg_net_shim.sql), so nothing is
-- created then.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_namespace where nspname = 'net') then
    if exists (select 1 from pg_catalog.pg_namespace where nspname = 'extensions') then
      create extension if not exists pg_net with schema extensions;
    else
      create extension if not exists pg_net;
    end if;
  end if;
end
$$;

-- pgcrypto (gen_random_bytes: the learning listener's single-use stream tokens, 30_dispatch.sql): hosted Supabase
-- has it in schema `extensions` (as sandbox/sql/00_supabase_bootstrap.sql does locally); a plain Postgres gets it
-- there too. The functions call it as extensions.gen_random_bytes: a pgcrypto installed elsewhere fails here, not
-- at the first claim.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pgcrypto') then
    create schema if not exists extensions;
    create extension pgcrypto with schema extensions;
  end if;
  if pg_catalog.to_regprocedure('extensions.gen_random_bytes(integer)') is null then
    raise exception 'pgcrypto is installed, but not in schema extensions'
      using hint = 'alter extension pgcrypto set schema extensions';
  end if;
end
$$;
