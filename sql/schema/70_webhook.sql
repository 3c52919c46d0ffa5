-- 70: the database webhook: a new pending row is POSTed to the Worker through pg_net, in Supabase's
-- database-webhook payload shape. It is the fast path only; the Worker's cron sweep picks up whatever
-- the webhook misses (pg_net sends after commit, keeps no retries, loses its queue on a crash).
-- A row created on its own is POSTed itself; a batch insert sends one request per batch (its first row due).
--
-- Configuration (no URL or secret in the schema), set once per environment by a superuser/postgres:
--   insert into outcall_private.settings (name, value) values
--     ('webhook_url', 'https://<worker>/hooks/pending-calls'), ('webhook_secret', '<secret>')
--   on conflict (name) do update set value = excluded.value;
-- With either missing (or empty) the triggers send nothing.

-- The POST of one inserted row, in Supabase's database-webhook shape, to the configured URL; nothing without
-- both settings. Never fails the insert: the sweep dispatches anyway. The record is the row's id and nothing else:
-- the Worker reads only the id, and personal data has no business in pg_net's queue or a proxy's logs.
create or replace function outcall_private.post_pending_call_webhook(p_schema text, p_table text, p_id uuid)
returns void
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
    return;
  end if;

  begin
    perform net.http_post(
      url := v_url,
      body := pg_catalog.jsonb_build_object(
        'type', 'INSERT',
        'table', p_table,
        'schema', p_schema,
        'record', pg_catalog.jsonb_build_object('id', p_id),
        'old_record', null),
      headers := pg_catalog.jsonb_build_object(
        'Content-Type', 'application/json',
        'X-Webhook-Secret', v_secret),
      timeout_milliseconds := 5000);
  exception
    when others then
      -- The insert must not fail because the fast path did; the sweep dispatches the row anyway.
      raise warning 'outcall: pending_calls webhook not queued for %: %', p_id, sqlerrm;
  end;
end
$$;

-- A pending row created on its own.
create or replace function outcall_private.notify_pending_call_inserted() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform outcall_private.post_pending_call_webhook(TG_TABLE_SCHEMA, TG_TABLE_NAME, NEW.id);
  return null;
end
$$;

-- The rows of a batch: one request per batch in the statement, carrying its first row due (by
-- next_attempt_at, created_at, id). The Worker dispatches that row, and as its claim answers more_due, keeps
-- claiming the rest.
create or replace function outcall_private.notify_batch_rows_inserted() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row public.pending_calls;
begin
  for v_row in
    select r.*
      from new_rows as r
     where r.id in (select distinct on (n.batch_id) n.id
                      from new_rows as n
                     where n.batch_id is not null and n.call_status = 'pending'
                     order by n.batch_id, n.next_attempt_at, n.created_at, n.id)
     order by r.batch_id
  loop
    perform outcall_private.post_pending_call_webhook(TG_TABLE_SCHEMA, TG_TABLE_NAME, v_row.id);
  end loop;
  return null;
end
$$;

create trigger pending_calls_webhook
  after insert on public.pending_calls
  for each row
  when (NEW.call_status = 'pending' and NEW.batch_id is null)
  execute function outcall_private.notify_pending_call_inserted();
create trigger pending_calls_batch_webhook
  after insert on public.pending_calls
  referencing new table as new_rows
  for each statement execute function outcall_private.notify_batch_rows_inserted();
