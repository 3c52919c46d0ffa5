-- The database webhook: a new pending row is POSTed to the Worker through pg_net, in Supabase's
-- database-webhook payload shape. It is the fast path only; the Worker's cron sweep picks up whatever
-- the webhook misses (pg_net sends after commit, keeps no retries, loses its queue on a crash).
--
-- Configuration (no URL or secret in migrations), set once per environment by a superuser/postgres:
--   insert into outcall_private.settings (name, value) values
--     ('webhook_url', 'https://<worker>/hooks/pending-calls'), ('webhook_secret', '<secret>')
--   on conflict (name) do update set value = excluded.value;
-- With either missing (or empty) the trigger sends nothing.

-- pg_net: a real extension on hosted Supabase (usually already enabled); locally a stand-in already
-- provides schema `net` (sandbox/sql/01_pg_net_shim.sql), so nothing is created then.
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

create table if not exists outcall_private.settings (
  name text primary key,
  value text not null
);
comment on table outcall_private.settings is
  'Per-environment configuration read by triggers: webhook_url, webhook_secret. Not exposed by the API.';
revoke all on table outcall_private.settings from public, anon, authenticated, service_role;

create or replace function outcall_private.notify_pending_call_inserted() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_url text;
  v_secret text;
begin
  select nullif(btrim(value), '') into v_url from outcall_private.settings where name = 'webhook_url';
  select nullif(value, '') into v_secret from outcall_private.settings where name = 'webhook_secret';
  if v_url is null or v_secret is null then
    return null;
  end if;

  begin
    perform net.http_post(
      url := v_url,
      body := pg_catalog.jsonb_build_object(
        'type', 'INSERT',
        'table', TG_TABLE_NAME,
        'schema', TG_TABLE_SCHEMA,
        'record', pg_catalog.to_jsonb(NEW),
        'old_record', null),
      headers := pg_catalog.jsonb_build_object(
        'Content-Type', 'application/json',
        'X-Webhook-Secret', v_secret),
      timeout_milliseconds := 5000);
  exception
    when others then
      -- The insert must not fail because the fast path did; the sweep dispatches the row anyway.
      raise warning 'outcall: pending_calls webhook not queued for %: %', NEW.id, sqlerrm;
  end;
  return null;
end
$$;

revoke all on function outcall_private.notify_pending_call_inserted() from public, anon, authenticated;

drop trigger if exists pending_calls_webhook on public.pending_calls;
create trigger pending_calls_webhook
  after insert on public.pending_calls
  for each row
  when (NEW.call_status = 'pending')
  execute function outcall_private.notify_pending_call_inserted();
