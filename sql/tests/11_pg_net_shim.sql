-- The LOCAL stand-in for pg_net and supabase_functions.http_request (sandbox/sql/01_pg_net_shim.sql):
-- the interface the sandbox's delivery process depends on.
begin;
select plan(18);

select has_function('net', 'http_post', array['text', 'jsonb', 'jsonb', 'jsonb', 'integer']);
select has_function('net', 'http_get', array['text', 'jsonb', 'jsonb', 'integer']);
select columns_are('net', 'http_request_queue', array['id', 'method', 'url', 'headers', 'body', 'timeout_milliseconds', 'created']);
select columns_are('net', '_http_response', array['id', 'status_code', 'content_type', 'headers', 'content', 'timed_out',
                                                  'error_msg', 'created']);

select net.http_post('http://127.0.0.1:9/hook', '{"a": "ü"}'::jsonb) as p1 \gset
select row_eq(format('select method, url, headers, convert_from(body, %L)::jsonb, timeout_milliseconds
                        from net.http_request_queue where id = %s', 'UTF8', :p1),
              row('POST'::text, 'http://127.0.0.1:9/hook'::text, '{"Content-Type": "application/json"}'::jsonb,
                  '{"a": "ü"}'::jsonb, 2000),
              'http_post with defaults: JSON content type, UTF-8 body, 2000 ms');
select is((select body from net.http_request_queue where id = :p1), convert_to('{"a": "ü"}', 'UTF8'),
          'the body is the JSON text as UTF-8 bytes');

select net.http_post(url := 'http://127.0.0.1:9/hook?x=1', body := '{}', params := '{"q": "a b&c", "é": "/"}',
                     headers := '{"X-Test": "1"}', timeout_milliseconds := 750) as p2 \gset
select is((select url from net.http_request_queue where id = :p2),
          'http://127.0.0.1:9/hook?x=1&q=a%20b%26c&%C3%A9=%2F', 'params are URL-encoded and appended');
select is((select headers from net.http_request_queue where id = :p2),
          '{"X-Test": "1", "Content-Type": "application/json"}'::jsonb, 'a missing Content-Type is added');
select is((select timeout_milliseconds from net.http_request_queue where id = :p2), 750, 'the timeout is kept');
select throws_ok($$select net.http_post('http://127.0.0.1:9/hook', '{}', '{}', '{"Content-Type": "text/plain"}')$$,
                 'P0001', 'Content-Type header must be "application/json"', 'a non-JSON content type is refused');

select net.http_get('http://127.0.0.1:9/ping', '{"n": "1"}') as g1 \gset
select row_eq(format('select method, url, headers, body, timeout_milliseconds from net.http_request_queue where id = %s', :g1),
              row('GET'::text, 'http://127.0.0.1:9/ping?n=1'::text, '{}'::jsonb, null::bytea, 2000),
              'http_get: GET, params in the URL, no body');
select ok(:g1 > :p2 and :p2 > :p1, 'ids increase');

-- supabase_functions.http_request as a database-webhook trigger
create table public.shim_probe (id int primary key, note text);
create trigger shim_probe_hook after insert or update or delete on public.shim_probe
  for each row execute function supabase_functions.http_request(
    'http://127.0.0.1:9/db-hook', 'POST', '{"Content-Type": "application/json", "X-Secret": "s"}', '{"src": "db"}', '1500');
select max(id) as before from net.http_request_queue \gset
insert into public.shim_probe values (1, 'one');
update public.shim_probe set note = 'uno' where id = 1;
delete from public.shim_probe where id = 1;
select is(array(select convert_from(body, 'UTF8')::jsonb from net.http_request_queue where id > :before order by id),
          array['{"type": "INSERT", "table": "shim_probe", "schema": "public", "record": {"id": 1, "note": "one"}, "old_record": null}',
                '{"type": "UPDATE", "table": "shim_probe", "schema": "public", "record": {"id": 1, "note": "uno"}, "old_record": {"id": 1, "note": "one"}}',
                '{"type": "DELETE", "table": "shim_probe", "schema": "public", "record": null, "old_record": {"id": 1, "note": "uno"}}']::jsonb[],
          'INSERT, UPDATE and DELETE payloads in Supabase''s shape');
select is(array(select distinct url from net.http_request_queue where id > :before),
          array['http://127.0.0.1:9/db-hook?src=db'], 'URL with the trigger''s params');
select is(array(select distinct headers from net.http_request_queue where id > :before),
          array['{"Content-Type": "application/json", "X-Secret": "s"}'::jsonb], 'the trigger''s headers');
select is(array(select distinct timeout_milliseconds from net.http_request_queue where id > :before),
          array[1500], 'the trigger''s timeout');
select is((select count(*)::int from supabase_functions.hooks h
            where hook_name = 'shim_probe_hook' and request_id > :before), 3, 'each request is logged in supabase_functions.hooks');
create trigger shim_probe_get after insert on public.shim_probe
  for each row execute function supabase_functions.http_request('http://127.0.0.1:9/get', 'GET', null, null, null);
select max(id) as before2 from net.http_request_queue \gset
insert into public.shim_probe values (2, 'two');
select is((select array_agg(method || ' ' || url order by method) from net.http_request_queue where id > :before2),
          array['GET http://127.0.0.1:9/get', 'POST http://127.0.0.1:9/db-hook?src=db'], 'GET webhooks use http_get');

select * from finish();
rollback;
