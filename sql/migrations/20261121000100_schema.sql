-- outcall schema: tables, validation, indexes, housekeeping triggers.
-- The state-machine functions are in ..._state_machine.sql, privileges and RLS in ..._security.sql.

-- Private helpers live outside the API-exposed `public` schema (PostgREST would offer every public
-- function as an RPC). Locked down in ..._security.sql.
create schema if not exists outcall_private;

-- Validation helpers ------------------------------------------------------------------------------

-- E.164: '+', a non-zero country digit, 7..15 digits in all.
create or replace function outcall_private.is_e164(p_phone text) returns boolean
language sql immutable strict
set search_path = ''
as $$
  select p_phone ~ '^\+[1-9][0-9]{6,14}$'
$$;

-- A valid IANA time-zone name, spelled exactly as in the tz database ('America/New_York', 'UTC',
-- 'Etc/GMT+5'). Postgres is asked to load the zone (a lookup of pg_timezone_names costs ~30 ms per call,
-- too slow for batch inserts); rejected besides what Postgres refuses: abbreviations ('PST': not a zone),
-- other spellings ('america/new_york'), and POSIX rule strings ('XYZ+5'), which Postgres accepts but are not
-- zone names. STABLE, not IMMUTABLE: the answer depends on the installed tz database.
create or replace function outcall_private.is_valid_timezone(p_tz text) returns boolean
language plpgsql stable strict
set search_path = ''
set "TimeZone" = 'UTC'
as $$
begin
  if p_tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
    return false;
  end if;
  -- Outside Etc/, the only zone names with digits are these legacy ones; anything else is a POSIX rule.
  if p_tz !~ '/' and p_tz ~ '[0-9]' and p_tz !~ '^(EST5EDT|CST6CDT|MST7MDT|PST8PDT|GMT[+-]?0)$' then
    return false;
  end if;
  -- Local to this call: the function's SET clause restores TimeZone on exit.
  perform pg_catalog.set_config('TimeZone', p_tz, true);
  return pg_catalog.current_setting('TimeZone') = p_tz;
exception
  when others then
    return false;
end
$$;

-- ivr_actions: a JSON array of {"action": "dtmf"|"speech"|"wait", "value": text, "timing_ms": int >= 0}.
--   dtmf:   value non-empty, only [0-9*#w] (w = Twilio's half-second pause)
--   speech: value non-empty text
--   wait:   value optional (string or null)
--   timing_ms: required integer >= 0 (pause before the action)
-- No other keys. The consistency with classification_type (human: none; ivr_*: at least one) is a
-- separate table check.
create or replace function outcall_private.ivr_actions_valid(p_actions jsonb) returns boolean
language plpgsql immutable
set search_path = ''
as $$
declare
  a jsonb;
  v_action text;
begin
  if p_actions is null or pg_catalog.jsonb_typeof(p_actions) <> 'array' then
    return false;
  end if;
  for a in select e from pg_catalog.jsonb_array_elements(p_actions) as e loop
    if pg_catalog.jsonb_typeof(a) <> 'object' then
      return false;
    end if;
    if exists (select 1 from pg_catalog.jsonb_object_keys(a) as k
                where k not in ('action', 'value', 'timing_ms')) then
      return false;
    end if;
    if pg_catalog.jsonb_typeof(a -> 'action') is distinct from 'string' then
      return false;
    end if;
    v_action := a ->> 'action';
    if v_action not in ('dtmf', 'speech', 'wait') then
      return false;
    end if;
    -- timing_ms: a whole, non-negative number that fits an int
    if pg_catalog.jsonb_typeof(a -> 'timing_ms') is distinct from 'number'
       or (a ->> 'timing_ms')::numeric < 0
       or (a ->> 'timing_ms')::numeric > 2147483647
       or (a ->> 'timing_ms')::numeric <> pg_catalog.trunc((a ->> 'timing_ms')::numeric) then
      return false;
    end if;
    if v_action = 'wait' then
      if coalesce(pg_catalog.jsonb_typeof(a -> 'value'), 'null') not in ('string', 'null') then
        return false;
      end if;
    else
      if pg_catalog.jsonb_typeof(a -> 'value') is distinct from 'string' or (a ->> 'value') = '' then
        return false;
      end if;
      if v_action = 'dtmf' and (a ->> 'value') !~ '^[0-9*#w]+$' then
        return false;
      end if;
    end if;
  end loop;
  return true;
end
$$;

-- Tables -------------------------------------------------------------------------------------------

create table public.call_classifications (
  id uuid primary key default gen_random_uuid(),
  phone_number text not null
    constraint call_classifications_phone_e164 check (outcall_private.is_e164(phone_number)),
  classification_type text not null
    constraint call_classifications_type_valid check (classification_type in ('human', 'ivr_only', 'ivr_then_human')),
  ivr_actions jsonb not null default '[]'::jsonb
    constraint call_classifications_ivr_actions_valid check (outcall_private.ivr_actions_valid(ivr_actions)),
  confidence real
    constraint call_classifications_confidence_range check (confidence >= 0 and confidence <= 1),
  classification_expires_at timestamptz not null default (now() + interval '30 days'),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- A human answers: nothing to replay. An IVR: something to replay, else it is not worth the row.
  constraint call_classifications_actions_match_type check (
    case
      when jsonb_typeof(ivr_actions) <> 'array' then true  -- reported by ..._ivr_actions_valid
      when classification_type = 'human' then jsonb_array_length(ivr_actions) = 0
      else jsonb_array_length(ivr_actions) > 0
    end)
);

comment on table public.call_classifications is
  'What we know of a phone system: human, ivr_only or ivr_then_human, and the IVR actions to replay. At most one active row per phone.';

create table public.pending_calls (
  id uuid primary key default gen_random_uuid(),
  exam_id text,
  employee_name text not null,
  employee_dob date,
  client_name text,
  clinic_name text,
  phone text not null
    constraint pending_calls_phone_e164 check (outcall_private.is_e164(phone)),
  clinic_timezone text not null default 'America/New_York'
    constraint pending_calls_clinic_timezone_valid check (outcall_private.is_valid_timezone(clinic_timezone)),
  appointment_time timestamptz,
  procedures text[] not null default '{}',
  instructions jsonb not null default '{}'::jsonb
    constraint pending_calls_instructions_object check (jsonb_typeof(instructions) = 'object'),
  variables jsonb not null default '{}'::jsonb
    constraint pending_calls_variables_object check (jsonb_typeof(variables) = 'object'),
  call_status text not null default 'pending'
    constraint pending_calls_call_status_valid check (call_status in
      ('pending', 'dispatching', 'calling', 'completed', 'retry_pending', 'failed', 'cancelled')),
  attempts int not null default 0
    constraint pending_calls_attempts_nonnegative check (attempts >= 0),
  max_attempts int not null default 3
    constraint pending_calls_max_attempts_range check (max_attempts between 1 and 20),
  next_attempt_at timestamptz not null default now(),
  classification_id uuid references public.call_classifications (id) on delete set null,
  last_error text,
  -- results (from VAPI's end-of-call report)
  ended_reason text,
  summary text,
  success_evaluation text,
  structured_data jsonb,
  transcript text,
  duration_seconds numeric,
  cost numeric,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.pending_calls is
  'One row per person/appointment to call. call_status: pending -> dispatching -> calling -> completed | retry_pending | failed | cancelled; terminal states (completed, failed, cancelled) are never left.';

create table public.call_sessions (
  id uuid primary key default gen_random_uuid(),
  pending_call_id uuid not null references public.pending_calls (id) on delete cascade,
  attempt int not null
    constraint call_sessions_attempt_positive check (attempt >= 1),
  call_sid text unique,
  status text not null default 'dialing'
    constraint call_sessions_status_valid check (status in
      ('dialing', 'queued', 'initiated', 'ringing', 'in-progress',
       'completed', 'busy', 'no-answer', 'failed', 'canceled', 'dial_failed')),
  twilio_sequence_number int,
  answered_by text,
  classification_id uuid references public.call_classifications (id) on delete set null,
  classification_type text,
  vapi_call_id text,
  vapi_status text,
  error text,
  error_code text,
  created_at timestamptz not null default now(),
  dialed_at timestamptz,
  answered_at timestamptz,
  ended_at timestamptz,
  report_received_at timestamptz,
  duration_seconds int,
  cost numeric,
  ended_reason text,
  updated_at timestamptz not null default now(),
  constraint call_sessions_pending_call_attempt_key unique (pending_call_id, attempt)
);

comment on table public.call_sessions is
  'One row per dial attempt of a pending call: Twilio''s view (status, call_sid) and VAPI''s (vapi_status, report).';

-- Indexes ------------------------------------------------------------------------------------------
-- call_sessions (pending_call_id, attempt) and (call_sid) are covered by their unique constraints.

-- The classification lookup by phone, and the rule: at most one active classification per phone.
create unique index call_classifications_one_active_per_phone
  on public.call_classifications (phone_number) where is_active;

-- The sweep: what is due, by status.
create index pending_calls_status_next_attempt_idx
  on public.pending_calls (call_status, next_attempt_at);

-- Foreign keys (deleting a classification must not scan the big tables).
create index pending_calls_classification_id_idx
  on public.pending_calls (classification_id) where classification_id is not null;
create index call_sessions_classification_id_idx
  on public.call_sessions (classification_id) where classification_id is not null;

-- Housekeeping triggers ----------------------------------------------------------------------------

create or replace function outcall_private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  NEW.updated_at := pg_catalog.now();
  return NEW;
end
$$;

create trigger call_classifications_set_updated_at
  before update on public.call_classifications
  for each row execute function outcall_private.set_updated_at();
create trigger pending_calls_set_updated_at
  before update on public.pending_calls
  for each row execute function outcall_private.set_updated_at();
create trigger call_sessions_set_updated_at
  before update on public.call_sessions
  for each row execute function outcall_private.set_updated_at();

-- A terminal state is never left, whoever writes (functions, dashboards, hand-written SQL).
create or replace function outcall_private.guard_terminal_status() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_old text := pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0];
  v_new text := pg_catalog.to_jsonb(NEW) ->> TG_ARGV[0];
begin
  if v_old = any (TG_ARGV[1]::text[]) and v_new is distinct from v_old then
    raise exception '%.% is terminal (%), cannot become %', TG_TABLE_NAME, TG_ARGV[0], v_old, v_new
      using errcode = 'check_violation';
  end if;
  return NEW;
end
$$;

create trigger pending_calls_terminal_guard
  before update of call_status on public.pending_calls
  for each row execute function outcall_private.guard_terminal_status(
    'call_status', '{completed,failed,cancelled}');
create trigger call_sessions_terminal_guard
  before update of status on public.call_sessions
  for each row execute function outcall_private.guard_terminal_status(
    'status', '{completed,busy,no-answer,failed,canceled,dial_failed}');
