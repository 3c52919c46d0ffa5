-- The database webhook: AFTER INSERT on pending_calls (rows in pending) -> net.http_post, configured by
-- outcall_private.settings (webhook_url, webhook_secret).
begin;
select plan(27);

select has_table('outcall_private', 'settings', 'outcall_private.settings exists');
select has_trigger('public', 'pending_calls', 'pending_calls_webhook', 'the webhook trigger exists');
select trigger_is('public', 'pending_calls', 'pending_calls_webhook', 'outcall_private', 'notify_pending_call_inserted',
                  'it calls outcall_private.notify_pending_call_inserted()');
select ok((select tgtype & 1 = 1 and tgtype & 2 = 0 and tgtype & 4 = 4 and tgtype & (8 | 16) = 0
             from pg_trigger where tgname = 'pending_calls_webhook' and tgrelid = 'public.pending_calls'::regclass),
          'it fires AFTER INSERT only, FOR EACH ROW');
select ok((select prosecdef from pg_proc where oid = 'outcall_private.notify_pending_call_inserted()'::regprocedure),
          'the trigger function is security definer (the settings are private)');
select ok((select proconfig @> array['search_path=""'] from pg_proc
            where oid = 'outcall_private.notify_pending_call_inserted()'::regprocedure),
          'with an empty search_path');

create temp table q0 as select coalesce(max(id), 0) as id from net.http_request_queue;
create function pg_temp.sent() returns setof net.http_request_queue language sql as
  $$ select * from net.http_request_queue where id > (select id from q0) order by id $$;

-- Without configuration nothing is sent ------------------------------------------------------------
insert into public.pending_calls (employee_name, phone) values ('Ada', '+15550001001');
select is((select count(*)::int from pg_temp.sent()), 0, 'no settings: nothing queued');
insert into outcall_private.settings (name, value) values ('webhook_url', 'http://127.0.0.1:8787/webhooks/pending-call');
insert into public.pending_calls (employee_name, phone) values ('Ada', '+15550001001');
select is((select count(*)::int from pg_temp.sent()), 0, 'a URL without a secret: nothing queued');
insert into outcall_private.settings (name, value) values ('webhook_secret', '');
insert into public.pending_calls (employee_name, phone) values ('Ada', '+15550001001');
select is((select count(*)::int from pg_temp.sent()), 0, 'an empty secret: nothing queued');
delete from outcall_private.settings where name = 'webhook_url';
update outcall_private.settings set value = 'shh-local-secret' where name = 'webhook_secret';
insert into public.pending_calls (employee_name, phone) values ('Ada', '+15550001001');
select is((select count(*)::int from pg_temp.sent()), 0, 'a secret without a URL: nothing queued');

-- Configured: one request per pending row ------------------------------------------------------------
insert into outcall_private.settings (name, value) values ('webhook_url', 'http://127.0.0.1:8787/webhooks/pending-call');
insert into public.pending_calls (id, employee_name, phone, procedures)
values ('00000000-0000-0000-0000-0000000a0001', 'Ada Lovelace', '+15550001001', array['Audiogram']);
select is((select count(*)::int from pg_temp.sent()), 1, 'one insert: exactly one request');
select row_eq($$select method, url, timeout_milliseconds from pg_temp.sent()$$,
              row('POST'::text, 'http://127.0.0.1:8787/webhooks/pending-call'::text, 5000),
              'POST to the configured URL, 5 s timeout');
select is((select headers from pg_temp.sent()),
          '{"Content-Type": "application/json", "X-Webhook-Secret": "shh-local-secret"}'::jsonb,
          'headers: JSON content type and the secret');
create temp table body as select convert_from(body, 'UTF8')::jsonb as j from pg_temp.sent();
select is((select j - 'record' from body),
          '{"type": "INSERT", "table": "pending_calls", "schema": "public", "old_record": null}'::jsonb,
          'Supabase''s webhook payload: type, table, schema, old_record null');
select is((select j -> 'record' from body), '{"id": "00000000-0000-0000-0000-0000000a0001"}'::jsonb,
          'record is the inserted row''s id, nothing else (no personal data through pg_net)');
select ok((select convert_from(body, 'UTF8') !~ 'Ada|Audiogram|1555' from pg_temp.sent()),
          'neither the name, the procedures nor the phone travel');

-- Only pending rows, only inserts ----------------------------------------------------------------------
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
insert into public.pending_calls (employee_name, phone, call_status) values ('Bob', '+15550001002', 'cancelled');
select is((select count(*)::int from pg_temp.sent()), 0, 'a row inserted as cancelled: nothing queued');
update public.pending_calls set employee_name = 'Ada L.' where id = '00000000-0000-0000-0000-0000000a0001';
select is((select count(*)::int from pg_temp.sent()), 0, 'an update: nothing queued');
insert into public.pending_calls (employee_name, phone)
select 'Batch ' || n, '+1555000200' || n from generate_series(1, 3) as n;
select is((select count(*)::int from pg_temp.sent()), 3, 'a three-row insert: three requests');
select is((select array_agg(convert_from(body, 'UTF8')::jsonb -> 'record' ->> 'id' order by 1) from pg_temp.sent()),
          (select array_agg(id::text order by 1) from public.pending_calls where employee_name like 'Batch _'),
          'one request per row, each with its own id');

-- Inserted by service_role (the Worker's batch API): the trigger still reads the private settings --------
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
set local role service_role;
insert into public.pending_calls (employee_name, phone) values ('Svc', '+15550001003');
reset role;
select is((select count(*)::int from pg_temp.sent()), 1, 'an insert by service_role is queued too');
select is((select headers ->> 'X-Webhook-Secret' from pg_temp.sent()), 'shh-local-secret', 'with the secret');

-- The fast path failing never fails the insert -------------------------------------------------------------
truncate q0;
insert into q0 select coalesce(max(id), 0) from net.http_request_queue;
alter function net.http_post(text, jsonb, jsonb, jsonb, int) rename to http_post_gone;
set local client_min_messages = error;  -- the trigger's expected WARNING
select lives_ok($$insert into public.pending_calls (id, employee_name, phone)
                  values ('00000000-0000-0000-0000-0000000a0009', 'Zed', '+15550001009')$$,
                'the insert succeeds when net.http_post fails');
select is((select count(*)::int from pg_temp.sent()), 0, 'and nothing is queued');
select is((select call_status from public.pending_calls where id = '00000000-0000-0000-0000-0000000a0009'), 'pending',
          'the row waits for the sweep');
alter function net.http_post_gone(text, jsonb, jsonb, jsonb, int) rename to http_post;
set local client_min_messages = warning;

-- No URL or secret literal lives in the function ---------------------------------------------------------
select ok((select prosrc !~ 'https?://' and prosrc !~* 'shh' from pg_proc
            where oid = 'outcall_private.notify_pending_call_inserted()'::regprocedure),
          'the trigger function holds no URL or secret');
select is((select count(*)::int from outcall_private.settings where name in ('webhook_url', 'webhook_secret')), 2,
          'the configuration is data');

select * from finish();
rollback;
