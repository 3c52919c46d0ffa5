-- LOCAL ONLY. A stand-in for the pg_net extension (https://github.com/supabase/pg_net) and for
-- Supabase's database-webhook trigger function, because the real pg_net cannot be installed here.
-- Same schema, table and function signatures as pg_net; what differs is who sends: pg_net's background
-- worker is replaced by the sandbox, which reads committed rows of net.http_request_queue, sends them,
-- deletes them and writes net._http_response. Requests of a rolled-back transaction are never seen.
-- Idempotent: safe to run any number of times, also after the migrations.
--
-- On a hosted project none of this is applied: pg_net is a real extension there
-- (the migrations create it when schema `net` is missing: sql/schema/00_extensions_and_schemas.sql).

create schema if not exists net;

-- pg_net's queue and response tables are UNLOGGED; so are these.
create unlogged table if not exists net.http_request_queue (
  id bigserial primary key,
  method text not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null,
  created timestamptz default now()
);

create unlogged table if not exists net._http_response (
  id bigint,
  status_code int,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);
create index if not exists _http_response_created_idx on net._http_response (created);

-- curl_escape(): every byte of the UTF-8 form except the unreserved set [A-Za-z0-9-._~] becomes %XX.
create or replace function net._urlencode_string(string text) returns text
language sql immutable strict
set search_path = ''
as $$
  select coalesce(
    string_agg(
      case
        when b between 48 and 57 or b between 65 and 90 or b between 97 and 122 or b in (45, 46, 95, 126)
          then chr(b)
        else '%' || upper(lpad(to_hex(b), 2, '0'))
      end,
      '' order by i),
    '')
  from (
    select i, get_byte(convert_to(string, 'UTF8'), i) as b
    from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
  ) as bytes
$$;

-- Appends already-encoded `key=value` pairs to the URL's query string.
create or replace function net._encode_url_with_params_array(url text, params_array text[]) returns text
language sql immutable strict
set search_path = ''
as $$
  select case
    when cardinality(params_array) = 0 then url
    else url
         || case when position('?' in url) > 0
                   then case when right(url, 1) in ('?', '&') then '' else '&' end
                 else '?' end
         || array_to_string(params_array, '&')
  end
$$;

create or replace function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 2000
) returns bigint
language plpgsql volatile
security definer
set search_path = net
as $$
declare
  request_id bigint;
  params_array text[];
begin
  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(coalesce(params, '{}'::jsonb));

  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values ('GET', net._encode_url_with_params_array(url, params_array), headers, timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

create or replace function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 2000
) returns bigint
language plpgsql volatile
security definer
set search_path = net
as $$
declare
  request_id bigint;
  params_array text[];
  content_type text;
begin
  -- As pg_net: a missing Content-Type is added, anything but JSON is refused.
  select header_value into content_type
    from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as r(header_name, header_value)
   where lower(header_name) = 'content-type'
   limit 1;

  if content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  end if;

  if content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(coalesce(params, '{}'::jsonb));

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('POST', net._encode_url_with_params_array(url, params_array), headers,
          convert_to(body::text, 'UTF8'), timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

-- Supabase's grants on pg_net.
do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = r) then
      execute format('grant usage on schema net to %I', r);
      execute format('grant execute on function net.http_get(text, jsonb, jsonb, int) to %I', r);
      execute format('grant execute on function net.http_post(text, jsonb, jsonb, jsonb, int) to %I', r);
    end if;
  end loop;
end
$$;
revoke all on function net.http_get(text, jsonb, jsonb, int) from public;
revoke all on function net.http_post(text, jsonb, jsonb, jsonb, int) from public;

-- Supabase's database-webhook trigger function ---------------------------------------------------
-- CREATE TRIGGER ... EXECUTE FUNCTION supabase_functions.http_request(url, method, headers_json,
-- params_json, timeout_ms); POSTs {"type","table","schema","record","old_record"}.
create schema if not exists supabase_functions;

create table if not exists supabase_functions.hooks (
  id bigserial primary key,
  hook_table_id integer not null,
  hook_name text not null,
  created_at timestamptz not null default now(),
  request_id bigint
);
create index if not exists supabase_functions_hooks_request_id_idx on supabase_functions.hooks (request_id);
create index if not exists supabase_functions_hooks_h_table_id_h_name_idx
  on supabase_functions.hooks (hook_table_id, hook_name);

create or replace function supabase_functions.http_request() returns trigger
language plpgsql
security definer
set search_path = supabase_functions
as $$
declare
  request_id bigint;
  payload jsonb;
  url text := TG_ARGV[0]::text;
  method text := TG_ARGV[1]::text;
  headers jsonb default '{}'::jsonb;
  params jsonb default '{}'::jsonb;
  timeout_ms integer default 1000;
begin
  if url is null or url = 'null' then
    raise exception 'url argument is missing';
  end if;

  if method is null or method = 'null' then
    raise exception 'method argument is missing';
  end if;

  if TG_ARGV[2] is null or TG_ARGV[2] = 'null' then
    headers := '{"Content-Type": "application/json"}'::jsonb;
  else
    headers := TG_ARGV[2]::jsonb;
  end if;

  if TG_ARGV[3] is null or TG_ARGV[3] = 'null' then
    params := '{}'::jsonb;
  else
    params := TG_ARGV[3]::jsonb;
  end if;

  if TG_ARGV[4] is null or TG_ARGV[4] = 'null' then
    timeout_ms := 1000;
  else
    timeout_ms := TG_ARGV[4]::integer;
  end if;

  case
    when method = 'GET' then
      request_id := net.http_get(url, params, headers, timeout_ms);
    when method = 'POST' then
      payload := jsonb_build_object(
        'old_record', case when TG_OP in ('UPDATE', 'DELETE') then to_jsonb(OLD) end,
        'record', case when TG_OP in ('INSERT', 'UPDATE') then to_jsonb(NEW) end,
        'type', TG_OP,
        'table', TG_TABLE_NAME,
        'schema', TG_TABLE_SCHEMA
      );
      request_id := net.http_post(url, payload, params, headers, timeout_ms);
    else
      raise exception 'method argument % is invalid', method;
  end case;

  insert into supabase_functions.hooks (hook_table_id, hook_name, request_id)
  values (TG_RELID, TG_NAME, request_id);

  return NEW;
end
$$;

revoke all on function supabase_functions.http_request() from public;
do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated', 'service_role'] loop
    if exists (select 1 from pg_catalog.pg_roles where rolname = r) then
      execute format('grant usage on schema supabase_functions to %I', r);
      execute format('grant execute on function supabase_functions.http_request() to %I', r);
    end if;
  end loop;
end
$$;
