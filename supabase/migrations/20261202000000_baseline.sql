-- GENERATED FILE, do not edit: `./dev schema` (sql/baseline.sh) writes it from sql/schema/*.sql.
-- The baseline migration: the whole database, the declared schema's files concatenated in name order.
-- To change the database, edit sql/schema/ and add a migration with the change (sql/README.md, "How to change
-- a function"); `./dev test sql` checks that the migrations and sql/schema build the same database.

-- ======== sql/schema/00_extensions_and_schemas.sql ========

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

-- ======== sql/schema/05_validation.sql ========

-- 05: the validation helpers the tables' check constraints call (so they come before the tables).
-- Check constraints run their function with the inserting role's rights: the writer needs EXECUTE on them
-- (granted in 90_security.sql).

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
--   speech: value non-empty text without control characters (U+0001-U+001F, U+007F-U+009F: no place in
--           speech, and most cannot be carried in XML, so in TwiML; outcall-core's replay refuses them too)
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
      if v_action = 'speech' and (a ->> 'value') ~ '[\u0001-\u001f\u007f-\u009f]' then
        return false;
      end if;
    end if;
  end loop;
  return true;
end
$$;

-- ======== sql/schema/10_tables.sql ========

-- 10: the tables, their columns, constraints, indexes and comments, the rows the functions need (the dispatch
-- policy, the rate state), and the views. Functions and triggers come in the files after this one; privileges,
-- RLS and policies in 90_security.sql; the Realtime publication in 80_realtime.sql.

-- public.call_classifications ----------------------------------------------------------------------------------

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
  -- What the learning run that made it heard (47_learning.sql): {prompts, fingerprint}; a verification run
  -- compares the call it hears with it. Null for a classification written by hand.
  evidence jsonb
    constraint call_classifications_evidence_object check (jsonb_typeof(evidence) = 'object'),
  -- Set when a verification run heard another phone system than this one (invalidate_classification): the
  -- row is then inactive, and the phone is learned again.
  invalidated_at timestamptz,
  invalidated_reason text,
  -- A human answers: nothing to replay. An IVR: something to replay, else it is not worth the row.
  constraint call_classifications_actions_match_type check (
    case
      when jsonb_typeof(ivr_actions) <> 'array' then true  -- reported by call_classifications_ivr_actions_valid
      when classification_type = 'human' then jsonb_array_length(ivr_actions) = 0
      else jsonb_array_length(ivr_actions) > 0
    end)
);

comment on table public.call_classifications is
  'What we know of a phone system: human, ivr_only or ivr_then_human, and the IVR actions to replay. At most one active row per phone.';
comment on column public.call_classifications.evidence is
  'What the learning run heard: {prompts, fingerprint} (null: written by hand). Verification runs compare with it.';
comment on column public.call_classifications.invalidated_reason is
  'Why a verification run found the phone system changed (invalidate_classification); the row is then inactive.';

-- public.batches ---------------------------------------------------------------------------------------------
-- (Before pending_calls, whose batch_id refers to it.) Its counters and state are kept by triggers on
-- pending_calls (60_batches.sql).
create table public.batches (
  id uuid primary key default gen_random_uuid(),
  name text not null
    constraint batches_name_length check (char_length(name) between 1 and 200),
  metadata jsonb not null default '{}'::jsonb
    constraint batches_metadata_object check (jsonb_typeof(metadata) = 'object'),
  status text not null default 'queued'
    constraint batches_status_valid check (status in ('queued', 'in_progress', 'completed', 'cancelled')),
  idempotency_key text
    constraint batches_idempotency_key_key unique,
  request_hash text,
  -- Rows of the batch, in all and per status (pending_calls.call_status: pending -> queued,
  -- dispatching -> dialling, calling -> in_progress, retry_pending -> retrying, completed, failed, cancelled,
  -- suppressed, expired).
  total int not null default 0 constraint batches_total_nonnegative check (total >= 0),
  queued int not null default 0 constraint batches_queued_nonnegative check (queued >= 0),
  dialling int not null default 0 constraint batches_dialling_nonnegative check (dialling >= 0),
  in_progress int not null default 0 constraint batches_in_progress_nonnegative check (in_progress >= 0),
  completed int not null default 0 constraint batches_completed_nonnegative check (completed >= 0),
  retrying int not null default 0 constraint batches_retrying_nonnegative check (retrying >= 0),
  failed int not null default 0 constraint batches_failed_nonnegative check (failed >= 0),
  cancelled int not null default 0 constraint batches_cancelled_nonnegative check (cancelled >= 0),
  -- (do-not-call and expiry: rows ended without a call, on the suppression list or past their expires_at)
  suppressed int not null default 0 constraint batches_suppressed_nonnegative check (suppressed >= 0),
  expired int not null default 0 constraint batches_expired_nonnegative check (expired >= 0),
  -- Sums over the rows' results (rows with a value only).
  duration_seconds_total numeric not null default 0,
  calls_with_duration int not null default 0
    constraint batches_calls_with_duration_nonnegative check (calls_with_duration >= 0),
  cost_total numeric not null default 0,
  -- The schedule (null: none): no row is dialled before not_before, nor outside window_* (ISO days,
  -- [start, end) on each row's clinic clock) besides the policy's window.
  not_before timestamptz,
  window_days int[],
  window_start time,
  window_end time,
  -- The batch's expiresAt (null: none), for display: each row carries its own, least(target's, batch's).
  expires_at timestamptz,
  -- What create_batch reported as rejected, answered again to a replay of the request.
  rejected jsonb not null default '[]'::jsonb
    constraint batches_rejected_array check (jsonb_typeof(rejected) = 'array'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  completed_at timestamptz,
  cancelled_at timestamptz,
  -- Campaign controls. paused_at: pause_batch .. resume_batch, nothing new is dialled meanwhile (null: not
  -- paused). The batch's own limits on top of the policy's (null: none), held by the claims (30_dispatch.sql).
  paused_at timestamptz,
  -- (the API's bounds; at 0.001 a pace's spacing, 1 / calls_per_second, is 1,000 s)
  max_concurrency int
    constraint batches_max_concurrency_range check (max_concurrency between 1 and 1000),
  calls_per_second numeric
    constraint batches_calls_per_second_range check (calls_per_second between 0.001 and 1000),
  -- Spend (25_cost.sql): the cap in USD (null: none), and create_batch's estimate before the first dial:
  -- {calls, learning_calls, expected_call_minutes, usd_per_minute: {vapi, twilio, stt}, usd}.
  cost_cap numeric
    constraint batches_cost_cap_positive check (cost_cap > 0),
  cost_estimate jsonb
    constraint batches_cost_estimate_object check (jsonb_typeof(cost_estimate) = 'object'),
  constraint batches_window_valid check (
    case when window_days is null and window_start is null and window_end is null then true
         when window_days is null or window_start is null or window_end is null then false
         else cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[] and window_start < window_end
    end)
);

comment on table public.batches is
  'A set of pending_calls created by one create_batch call. Counters (total, queued, dialling, in_progress, completed, retrying, failed, cancelled, suppressed, expired, duration_seconds_total, calls_with_duration) and state (started_at, completed_at, status) are kept by triggers on pending_calls; cost_total (the attempts'' VAPI cost + Twilio price) by triggers on call_sessions (25_cost.sql); cancelled_at by cancel_batch; cost_cap (USD, null: none) and cost_estimate by create_batch. status: queued -> in_progress -> completed, or cancelled; paused_at (pause_batch, resume_batch) holds its rows without changing status; max_concurrency and calls_per_second are its own dispatch limits.';

-- list_batches: newest first.
create index batches_created_at_idx on public.batches (created_at, id);

-- public.pending_calls ---------------------------------------------------------------------------------------

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
      ('pending', 'dispatching', 'calling', 'completed', 'retry_pending', 'failed', 'cancelled', 'suppressed',
       'expired')),
  attempts int not null default 0
    constraint pending_calls_attempts_nonnegative check (attempts >= 0),
  -- (bounded by pending_calls_max_attempts_range below)
  max_attempts int not null default 3,
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
  updated_at timestamptz not null default now(),
  -- batches: the batch, the row's own script and calling window, redials and rounds
  batch_id uuid references public.batches (id) on delete cascade,
  prompt text,
  first_message text,
  -- The row's own calling window (from its batch's schedule), on top of the policy's; null: the policy's only.
  window_days int[],
  window_start time,
  window_end time,
  -- The row this one is a copy of (create_batch's pending_call_ids).
  redial_of uuid references public.pending_calls (id) on delete set null,
  -- Attempts used by earlier rounds (retry_failed_batch): this round's attempt n is attempts - attempt_offset.
  attempt_offset int not null default 0,
  -- When an operator archived the row (operator_call_action archive; null: not archived). A label for lists:
  -- the state machine ignores it (an archived pending row is still dialled).
  archived_at timestamptz,
  -- No attempt starts at or after it (null: no expiry); what is not dialled by then ends expired (dispatch_gate,
  -- advance_pending_call, the sweep). A batch's rows get least(the target's, the batch's expiresAt).
  expires_at timestamptz,
  -- max_attempts counts from the first attempt of all; what bounds it is the budget of the round.
  constraint pending_calls_max_attempts_range
    check (attempt_offset >= 0 and (max_attempts - attempt_offset) between 1 and 20),
  constraint pending_calls_window_valid check (
    case when window_days is null and window_start is null and window_end is null then true
         when window_days is null or window_start is null or window_end is null then false
         else cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[] and window_start < window_end
    end)
);

comment on table public.pending_calls is
  'One row per person/appointment to call. call_status: pending -> dispatching -> calling -> completed | retry_pending | failed | cancelled; pending | retry_pending -> suppressed (its phone is on the suppression list) | expired (not dialled by expires_at); terminal states (completed, failed, cancelled, suppressed, expired) are never left.';
comment on column public.pending_calls.batch_id is 'The batch this row belongs to (null: created on its own).';
comment on column public.pending_calls.expires_at is
  'No attempt starts at or after it (null: none); a row not dialled by then ends expired.';
comment on column public.pending_calls.archived_at is
  'When an operator archived the row (operator_call_action); null: not archived. Lists hide archived rows; the state machine ignores it.';
comment on column public.pending_calls.attempt_offset is
  'Attempts used by earlier rounds (retry_failed_batch); max_attempts - attempt_offset is the budget of this round (1..20).';

-- public.call_sessions ---------------------------------------------------------------------------------------

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
  -- When the sweep last handed the session to the Worker for reconciliation with Twilio.
  reconciled_at timestamptz,
  -- Twilio's price of the call, as a positive amount in twilio_price_unit (Twilio writes it negative); null until
  -- the sweep fetched it (25_cost.sql). twilio_price_checked_at: the sweep's last look.
  twilio_price numeric
    constraint call_sessions_twilio_price_nonnegative check (twilio_price >= 0),
  twilio_price_unit text,
  twilio_price_checked_at timestamptz,
  constraint call_sessions_pending_call_attempt_key unique (pending_call_id, attempt)
);

comment on table public.call_sessions is
  'One row per dial attempt of a pending call: Twilio''s view (status, call_sid) and VAPI''s (vapi_status, report).';

-- public.classification_runs ----------------------------------------------------------------------------------
-- The audit of every learning or verification run: a listener on one call (its session), decided by the claim
-- (start_attempt), authenticated by begin_listening, finished by record_classification_run (47_learning.sql).
-- The stream's token is never stored, only its SHA-256.
create table public.classification_runs (
  id uuid primary key default gen_random_uuid(),
  phone text not null
    constraint classification_runs_phone_e164 check (outcall_private.is_e164(phone)),
  -- One run per call at most. Deleted with the call (the timeline may hold what the clinic said).
  session_id uuid not null
    constraint classification_runs_session_id_key unique
    references public.call_sessions (id) on delete cascade,
  pending_call_id uuid not null references public.pending_calls (id) on delete cascade,
  -- learn: nothing is known of the phone, the run classifies it; verify: a cached IVR is replayed, the run
  -- checks that the menu is still the one cached (invalidate_classification turns it into a learn run).
  purpose text not null
    constraint classification_runs_purpose_valid check (purpose in ('learn', 'verify')),
  -- listening -> finished (record_classification_run, or invalidated while another learn run listens)
  --           -> abandoned (no result within the lease, or the call ended without one: abandon_stale_runs)
  status text not null default 'listening'
    constraint classification_runs_status_valid check (status in ('listening', 'finished', 'abandoned')),
  token_sha256 bytea not null
    constraint classification_runs_token_sha256_length check (octet_length(token_sha256) = 32),
  -- When the stream presented the token (begin_listening; it is single use).
  stream_started_at timestamptz,
  result text
    constraint classification_runs_result_valid check (result in
      ('human', 'ivr_only', 'ivr_then_human', 'voicemail', 'unknown')),
  confidence real
    constraint classification_runs_confidence_range check (confidence >= 0 and confidence <= 1),
  ivr_actions jsonb
    constraint classification_runs_ivr_actions_valid check (
      ivr_actions is null or outcall_private.ivr_actions_valid(ivr_actions)),
  -- {prompts, fingerprint, reasons}
  evidence jsonb
    constraint classification_runs_evidence_object check (jsonb_typeof(evidence) = 'object'),
  -- What the listener heard, on the audio clock: {duration_ms, events: [...]}.
  timeline jsonb
    constraint classification_runs_timeline_object check (jsonb_typeof(timeline) = 'object'),
  stt_seconds numeric
    constraint classification_runs_stt_seconds_nonnegative check (stt_seconds >= 0),
  -- The classification a verify run checks (kept when it turns into a learn run: the one it invalidated).
  verified_classification_id uuid references public.call_classifications (id) on delete set null,
  -- The classification this run cached (a confident learn run); null when it cached nothing.
  classification_id uuid references public.call_classifications (id) on delete set null,
  -- Why the verified classification was invalidated (the menu changed), when it was.
  invalidated_reason text,
  created_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint classification_runs_finished_when_not_listening check ((status = 'listening') = (finished_at is null)),
  constraint classification_runs_result_when_finished check (result is null or status = 'finished')
);

comment on table public.classification_runs is
  'One row per learning (purpose learn) or verification (verify) run of a call''s audio: phone, session, result (human | ivr_only | ivr_then_human | voicemail | unknown), confidence, ivr_actions, evidence, timeline, stt_seconds, and the classification it cached (classification_id) or checked (verified_classification_id). status: listening -> finished | abandoned. Only the SHA-256 of the stream token is kept.';
comment on column public.classification_runs.token_sha256 is
  'SHA-256 of the single-use stream token (its UTF-8 text) the claim answered; the token itself is never stored.';

-- public.operator_actions ---------------------------------------------------------------------------------------
-- The audit of the operators' actions (87_operator_actions.sql): one row per call of an action function, written
-- by those functions only (in the same transaction as the change), read by viewers and operators. No foreign key to
-- auth.users: the record outlives the user, with their email as it was.
create table public.operator_actions (
  id uuid primary key default gen_random_uuid(),
  at timestamptz not null default now(),
  user_id uuid,
  email text,
  action text not null,
  target_kind text not null
    constraint operator_actions_target_kind_valid check (target_kind in ('call', 'batch', 'classification', 'suppression')),
  target_ids uuid[] not null,
  -- Who: an operator (user_id, email) or the API key (pause_batch, resume_batch: no user, no email).
  actor text not null default 'operator'
    constraint operator_actions_actor_valid check (actor in ('operator', 'api_key')),
  -- Per kind: call {results: [{id, ok, reason?, before, after}]}; batch {before, after, answer};
  -- classification {ok, reason?, note (the operator's reason), before, after};
  -- suppression {phone, answer} (target_ids empty: no uuid names a phone).
  detail jsonb not null
    constraint operator_actions_detail_object check (jsonb_typeof(detail) = 'object'),
  constraint operator_actions_action_valid check (case target_kind
    when 'call' then action in ('retry_now', 'cancel', 'reset', 'archive', 'unarchive')
    when 'batch' then action in ('cancel', 'retry_failed', 'pause', 'resume')
    when 'classification' then action in ('invalidate', 'correct')
    when 'suppression' then action in ('add', 'remove')
  end),
  constraint operator_actions_actor_identified check ((actor = 'operator') = (user_id is not null and email is not null))
);

comment on table public.operator_actions is
  'The audit of operators'' actions: who (user_id, email at the time; actor api_key: the API key, no user), when (at), what (action on target_kind call | batch | classification | suppression, target_ids) and detail (before and after). Written only by operator_call_action, operator_batch_action, operator_classification_action, operator_suppression_action, and pause_batch / resume_batch (actor api_key).';
comment on column public.operator_actions.detail is
  'call: {results: [{id, ok, reason?, before, after}]} (before/after: call_status, attempts, max_attempts, attempt_offset, next_attempt_at, last_error, archived_at; null for an unknown id); batch: {before, after (status and counters), answer}; classification: {ok, reason?, note, before, after (classification_type, ivr_actions, is_active, invalidated_at, invalidated_reason)}; suppression: {phone, answer (the add_suppression or remove_suppression answer)}.';

-- public.sms_batches --------------------------------------------------------------------------------------------
-- Batch SMS (65_sms.sql): one row per create_sms_batch call. Like public.batches, its counters and derived state
-- are kept by statement-level triggers on sms_messages (65_sms.sql).
create table public.sms_batches (
  id uuid primary key default gen_random_uuid(),
  name text not null
    constraint sms_batches_name_length check (char_length(name) between 1 and 200),
  metadata jsonb not null default '{}'::jsonb
    constraint sms_batches_metadata_object check (jsonb_typeof(metadata) = 'object'),
  -- A From number (E.164) or a Messaging Service SID (MG + 32 hex digits).
  sender text not null
    constraint sms_batches_sender_valid check (outcall_private.is_e164(sender) or sender ~ '^MG[0-9a-fA-F]{32}$'),
  -- The template the bodies were rendered from (null: every target brought its own body).
  body_template text,
  status text not null default 'queued'
    constraint sms_batches_status_valid check (status in ('queued', 'in_progress', 'completed', 'cancelled')),
  idempotency_key text
    constraint sms_batches_idempotency_key_key unique,
  request_hash text,
  not_before timestamptz,
  -- The positions created opted_out, answered again to a replay of the request.
  opted_out_positions int[] not null default '{}',
  -- Messages of the batch, in all and one per sms_messages.status; segments over all of them.
  total int not null default 0 constraint sms_batches_total_nonnegative check (total >= 0),
  pending int not null default 0 constraint sms_batches_pending_nonnegative check (pending >= 0),
  submitting int not null default 0 constraint sms_batches_submitting_nonnegative check (submitting >= 0),
  queued int not null default 0 constraint sms_batches_queued_nonnegative check (queued >= 0),
  accepted int not null default 0 constraint sms_batches_accepted_nonnegative check (accepted >= 0),
  scheduled int not null default 0 constraint sms_batches_scheduled_nonnegative check (scheduled >= 0),
  sending int not null default 0 constraint sms_batches_sending_nonnegative check (sending >= 0),
  sent int not null default 0 constraint sms_batches_sent_nonnegative check (sent >= 0),
  delivered int not null default 0 constraint sms_batches_delivered_nonnegative check (delivered >= 0),
  undelivered int not null default 0 constraint sms_batches_undelivered_nonnegative check (undelivered >= 0),
  failed int not null default 0 constraint sms_batches_failed_nonnegative check (failed >= 0),
  opted_out int not null default 0 constraint sms_batches_opted_out_nonnegative check (opted_out >= 0),
  cancelled int not null default 0 constraint sms_batches_cancelled_nonnegative check (cancelled >= 0),
  segments_total int not null default 0 constraint sms_batches_segments_total_nonnegative check (segments_total >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  completed_at timestamptz,
  cancelled_at timestamptz
);

comment on table public.sms_batches is
  'A set of sms_messages created by one create_sms_batch call, sent from sender (E.164 or Messaging Service SID). Counters (total, one per message status, segments_total) and state (started_at: first claim, completed_at: no message pending or submitting, status) are kept by triggers on sms_messages; cancelled_at by cancel_sms_batch. status: queued -> in_progress -> completed, or cancelled.';

create index sms_batches_created_at_idx on public.sms_batches (created_at, id);

-- public.sms_messages ------------------------------------------------------------------------------------------
create table public.sms_messages (
  id uuid primary key default gen_random_uuid(),
  batch_id uuid not null references public.sms_batches (id) on delete cascade,
  -- The target's index in the request.
  position int not null
    constraint sms_messages_position_nonnegative check (position >= 0),
  to_phone text not null
    constraint sms_messages_to_phone_e164 check (outcall_private.is_e164(to_phone)),
  variables jsonb not null default '{}'::jsonb
    constraint sms_messages_variables_object check (jsonb_typeof(variables) = 'object'),
  -- Rendered by the Worker (outcall_core::sms), with its encoding and segment count.
  body text not null
    constraint sms_messages_body_nonempty check (char_length(body) >= 1),
  encoding text not null
    constraint sms_messages_encoding_valid check (encoding in ('GSM-7', 'UCS-2')),
  segments int not null
    constraint sms_messages_segments_positive check (segments >= 1),
  -- pending -> submitting (claimed: the create request is out) -> queued | accepted | scheduled -> sending -> sent
  -- -> delivered | undelivered | failed (Twilio's names); pending -> opted_out | cancelled; submitting -> pending
  -- (retry) | failed | opted_out (refused). Terminal: delivered, undelivered, failed, opted_out, cancelled.
  status text not null default 'pending'
    constraint sms_messages_status_valid check (status in
      ('pending', 'submitting', 'queued', 'accepted', 'scheduled', 'sending', 'sent',
       'delivered', 'undelivered', 'failed', 'opted_out', 'cancelled')),
  message_sid text
    constraint sms_messages_message_sid_key unique,
  error_code int,
  error_message text,
  attempts int not null default 0
    constraint sms_messages_attempts_nonnegative check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  submitting_since timestamptz,
  price numeric,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint sms_messages_batch_position_key unique (batch_id, position)
);

comment on table public.sms_messages is
  'One text message of an sms_batch. status: pending -> submitting -> queued | accepted | scheduled -> sending -> sent -> delivered | undelivered | failed; pending -> opted_out | cancelled; submitting -> pending (retry) | failed | opted_out. Terminal statuses (delivered, undelivered, failed, opted_out, cancelled) are never left.';

-- claim_sms: a sender's due messages in the order they are served (the batch, then position: the unique key).
create index sms_messages_pending_idx on public.sms_messages (batch_id, position) where status = 'pending';
-- sms_to_reconcile: claimed messages Twilio's answer never reached.
create index sms_messages_unanswered_idx on public.sms_messages (submitting_since)
  where status = 'submitting' and message_sid is null;
-- record_sms_reply: the latest message sent to a phone.
create index sms_messages_to_phone_idx on public.sms_messages (to_phone, submitting_since);

-- public.sms_opt_outs ------------------------------------------------------------------------------------------
create table public.sms_opt_outs (
  phone text primary key
    constraint sms_opt_outs_phone_e164 check (outcall_private.is_e164(phone)),
  -- keyword: the person answered STOP (or another opt-out keyword); twilio_21610: Twilio refused a send with 21610;
  -- manual: written by hand.
  source text not null
    constraint sms_opt_outs_source_valid check (source in ('keyword', 'twilio_21610', 'manual')),
  keyword text,
  opted_out_at timestamptz not null default now()
);

comment on table public.sms_opt_outs is
  'Phones that must not be texted: created opted_out by create_sms_batch, skipped by claim_sms. A START (record_sms_reply) deletes the row.';

-- public.sms_replies -------------------------------------------------------------------------------------------
create table public.sms_replies (
  id uuid primary key default gen_random_uuid(),
  -- Twilio retries webhooks: one row per inbound MessageSid.
  message_sid text not null
    constraint sms_replies_message_sid_key unique,
  from_phone text not null,
  to_phone text not null,
  body text not null default '',
  -- The batch (and message) whose latest message to from_phone this answers; null when none.
  batch_id uuid references public.sms_batches (id) on delete set null,
  sms_message_id uuid references public.sms_messages (id) on delete set null,
  opt_out_type text
    constraint sms_replies_opt_out_type_valid check (opt_out_type in ('STOP', 'START', 'HELP')),
  received_at timestamptz not null default now()
);

comment on table public.sms_replies is
  'Inbound messages (record_sms_reply), tied to the batch and message whose latest text to from_phone they answer. opt_out_type: STOP | START | HELP for keywords.';

create index sms_replies_batch_id_idx on public.sms_replies (batch_id) where batch_id is not null;
create index sms_replies_sms_message_id_idx on public.sms_replies (sms_message_id, received_at)
  where sms_message_id is not null;

-- public.suppression_list ---------------------------------------------------------------------------------------
-- Do-not-call: a phone here is never dialled (dispatch_gate ends its rows suppressed; adding it ends its waiting
-- rows at once, 60_batches.sql). source: manual (the API or by hand), sms_opt_out (kept by triggers on
-- sms_opt_outs: a STOP adds it, a START removes only that entry), clinic (a clinic asked not to be called).
create table public.suppression_list (
  phone text primary key
    constraint suppression_list_phone_e164 check (outcall_private.is_e164(phone)),
  reason text
    constraint suppression_list_reason_length check (char_length(reason) <= 500),
  source text not null default 'manual'
    constraint suppression_list_source_valid check (source in ('manual', 'sms_opt_out', 'clinic')),
  -- Who added it, when known: the operator's email (the dashboard), 'api' (the API key), null (SQL, a trigger).
  added_by text
    constraint suppression_list_added_by_length check (char_length(added_by) <= 320),
  created_at timestamptz not null default now()
);

comment on table public.suppression_list is
  'Do-not-call: phones never dialled. source manual | sms_opt_out (an SMS STOP; a START removes it) | clinic. A row of a listed phone ends suppressed instead of being dialled.';

-- Indexes of the public tables ---------------------------------------------------------------------------------
-- call_sessions (pending_call_id, attempt) and (call_sid) are covered by their unique constraints.

-- The classification lookup by phone, and the rule: at most one active classification per phone.
create unique index call_classifications_one_active_per_phone
  on public.call_classifications (phone_number) where is_active;

-- The rule: at most one listening run per phone and purpose (one learning run per phone at a time; the claim's
-- insert does nothing on a conflict, and that call dials without a listener). Also the stale-run look-up.
create unique index classification_runs_one_listening_per_phone
  on public.classification_runs (phone, purpose) where status = 'listening';
-- A phone's runs, newest last (the history operators read).
create index classification_runs_phone_created_at_idx on public.classification_runs (phone, created_at);
create index classification_runs_pending_call_id_idx on public.classification_runs (pending_call_id);
create index classification_runs_classification_id_idx
  on public.classification_runs (classification_id) where classification_id is not null;
create index classification_runs_verified_classification_id_idx
  on public.classification_runs (verified_classification_id) where verified_classification_id is not null;

-- list_suppressions: newest first.
create index suppression_list_created_at_idx on public.suppression_list (created_at desc, phone);

-- The audit, newest first; and a call's (or batch's, classification's) own history, on its page.
create index operator_actions_at_idx on public.operator_actions (at desc);
create index operator_actions_target_ids_idx on public.operator_actions using gin (target_ids);

-- The sweep: what is due, by status.
create index pending_calls_status_next_attempt_idx
  on public.pending_calls (call_status, next_attempt_at);
-- A phone's waiting rows (a suppression ends them) and the waiting rows past their expiry (the sweep ends them).
create index pending_calls_waiting_phone_idx on public.pending_calls (phone)
  where call_status in ('pending', 'retry_pending');
create index pending_calls_waiting_expires_at_idx on public.pending_calls (expires_at)
  where call_status in ('pending', 'retry_pending') and expires_at is not null;
-- claim_next_due: the due rows in the order they are served.
create index pending_calls_due_idx on public.pending_calls (next_attempt_at, created_at)
  where call_status in ('pending', 'retry_pending');

-- Foreign keys (deleting a classification must not scan the big tables).
create index pending_calls_classification_id_idx
  on public.pending_calls (classification_id) where classification_id is not null;
create index call_sessions_classification_id_idx
  on public.call_sessions (classification_id) where classification_id is not null;

-- claim_next_due's search, one group at a time: a batch's due rows (batch_id null: the rows of no batch) in order.
create index pending_calls_batch_due_idx on public.pending_calls (batch_id, next_attempt_at, created_at)
  where call_status in ('pending', 'retry_pending');

-- A batch's rows in the order its results are listed (and the foreign key's index).
create index pending_calls_batch_idx on public.pending_calls (batch_id, created_at, id);
-- A clinic's attempts for smart scheduling (clinic_answer_rates, 88_analytics.sql); rows without a clinic are not read.
create index pending_calls_clinic_idx on public.pending_calls (clinic_name, clinic_timezone)
  where clinic_name is not null;
create index pending_calls_redial_of_idx on public.pending_calls (redial_of) where redial_of is not null;

-- Capacity count, "is this phone dialing", stale live sessions (predicate = outcall_private.live_sessions's, so
-- it is used).
create index call_sessions_live_idx on public.call_sessions (status, updated_at)
  where status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress');
-- The sweep's Twilio-completed sessions still waiting for VAPI's report.
create index call_sessions_report_missing_idx on public.call_sessions (ended_at)
  where status = 'completed' and report_received_at is null;

-- outcall_private.settings -------------------------------------------------------------------------------------
-- The webhook's configuration (70_webhook.sql), set once per environment by postgres; no URL or secret here.
create table outcall_private.settings (
  name text primary key,
  value text not null
);
comment on table outcall_private.settings is
  'Per-environment configuration read by triggers: webhook_url, webhook_secret. Not exposed by the API.';

-- The dispatch policy ----------------------------------------------------------------------------------------
-- One row; the defaults are what a deployment gets. Changed by hand, as postgres, like the webhook settings:
--   update outcall_private.dispatch_policy set max_concurrent_calls = 20, calls_per_second = 5;
create table outcall_private.dispatch_policy (
  id boolean primary key default true
    constraint dispatch_policy_singleton check (id),
  -- Live sessions (a Twilio call up or being set up) at most; a claim beyond it answers at_capacity.
  max_concurrent_calls int not null default 10
    constraint dispatch_policy_max_concurrent_calls_positive check (max_concurrent_calls >= 1),
  -- Twilio's calls-per-second limit of the account; fractions allowed (0.5: one call every 2 s).
  calls_per_second numeric not null default 1
    constraint dispatch_policy_calls_per_second_positive check (calls_per_second > 0),
  -- Delay before attempt n+1 after attempt n failed: retry_delays[least(n, cardinality)].
  retry_delays interval[] not null default '{5 minutes,15 minutes,30 minutes}'
    constraint dispatch_policy_retry_delays_valid check (
      cardinality(retry_delays) >= 1 and array_ndims(retry_delays) = 1 and array_lower(retry_delays, 1) = 1
      and array_position(retry_delays, null) is null and interval '0' < all (retry_delays)),
  -- The calling window, on the clinic's wall clock: ISO days of week (1 = Monday .. 7 = Sunday) and
  -- [window_start, window_end); window_end '24:00' is the end of the day.
  window_days int[] not null default '{1,2,3,4,5}'
    constraint dispatch_policy_window_days_valid check (
      cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[]),
  window_start time not null default '09:00',
  window_end time not null default '17:00',
  -- A live session with no news this long is reconciled with Twilio; a Twilio-completed session waits this
  -- long for VAPI's end-of-call report.
  reconcile_after interval not null default '5 minutes'
    constraint dispatch_policy_reconcile_after_positive check (reconcile_after > interval '0'),
  -- SMS (65_sms.sql): the pace a new sender gets (segments per second; null: no limit; a US long code sends one),
  -- the attempts of a message at most, and the delay before attempt n+1: sms_retry_delays[least(n, cardinality)].
  sms_messages_per_second numeric default 1
    constraint dispatch_policy_sms_messages_per_second_positive check (sms_messages_per_second > 0),
  sms_max_attempts int not null default 5
    constraint dispatch_policy_sms_max_attempts_range check (sms_max_attempts between 1 and 20),
  sms_retry_delays interval[] not null default '{1 second,5 seconds,30 seconds,2 minutes}'
    constraint dispatch_policy_sms_retry_delays_valid check (
      cardinality(sms_retry_delays) >= 1 and array_ndims(sms_retry_delays) = 1 and array_lower(sms_retry_delays, 1) = 1
      and array_position(sms_retry_delays, null) is null and interval '0' < all (sms_retry_delays)),
  -- The providers' circuit breaker (35_breaker.sql): breaker_failures consecutive provider failures within
  -- breaker_window open it; dialling then waits breaker_cooldown before one probe call decides.
  breaker_failures int not null default 5
    constraint dispatch_policy_breaker_failures_positive check (breaker_failures >= 1),
  breaker_window interval not null default '1 minute'
    constraint dispatch_policy_breaker_window_positive check (breaker_window > interval '0'),
  breaker_cooldown interval not null default '30 seconds'
    constraint dispatch_policy_breaker_cooldown_positive check (breaker_cooldown > interval '0'),
  -- Cost (25_cost.sql): the expected length of a call and the rates per minute in USD of VAPI, Twilio and the
  -- speech-to-text of a learning call (placeholders: set your contracts' figures), and the spend cap per UTC day of
  -- the whole deployment (null: none).
  expected_call_minutes numeric not null default 2
    constraint dispatch_policy_expected_call_minutes_positive check (expected_call_minutes > 0),
  vapi_usd_per_minute numeric not null default 0.10
    constraint dispatch_policy_vapi_usd_per_minute_nonnegative check (vapi_usd_per_minute >= 0),
  twilio_usd_per_minute numeric not null default 0.014
    constraint dispatch_policy_twilio_usd_per_minute_nonnegative check (twilio_usd_per_minute >= 0),
  stt_usd_per_minute numeric not null default 0.0077
    constraint dispatch_policy_stt_usd_per_minute_nonnegative check (stt_usd_per_minute >= 0),
  daily_cost_cap numeric
    constraint dispatch_policy_daily_cost_cap_positive check (daily_cost_cap > 0),
  -- Smart scheduling (20_helpers.sql, smart_attempt_at): a batch row's first attempt and every retry go to the
  -- best local hour of the clinic within smart_horizon after the earliest allowed instant, when that hour has at
  -- least smart_min_samples attempts and its answer rate beats the earliest's by smart_margin (answer-rate points).
  smart_scheduling boolean not null default true,
  smart_min_samples int not null default 30
    constraint dispatch_policy_smart_min_samples_positive check (smart_min_samples >= 1),
  smart_margin numeric not null default 0.05
    constraint dispatch_policy_smart_margin_range check (smart_margin between 0 and 1),
  smart_horizon interval not null default '24 hours'
    constraint dispatch_policy_smart_horizon_range check (smart_horizon between interval '1 hour' and interval '14 days'),
  -- How long a clinic's learned rates are reused (answer_rate_cache) before they are read from its history again.
  smart_refresh interval not null default '1 hour'
    constraint dispatch_policy_smart_refresh_nonnegative check (smart_refresh >= interval '0'),
  constraint dispatch_policy_window_valid check (window_start < window_end)
);
comment on table outcall_private.dispatch_policy is
  'The dispatch policy (one row): max_concurrent_calls, calls_per_second, retry_delays, the calling window (window_days, window_start, window_end on the clinic''s wall clock), reconcile_after; for SMS sms_messages_per_second (a new sender''s pace), sms_max_attempts, sms_retry_delays; the circuit breaker''s breaker_failures, breaker_window, breaker_cooldown; cost: expected_call_minutes, vapi_usd_per_minute, twilio_usd_per_minute, stt_usd_per_minute, daily_cost_cap (USD per UTC day, null: none); smart scheduling: smart_scheduling (on/off), smart_min_samples (attempts a clinic''s weekday hour needs to be rated), smart_margin (answer-rate points a later hour must gain), smart_horizon (how far past the earliest instant), smart_refresh (how long learned rates are reused).';
insert into outcall_private.dispatch_policy default values;

-- The calls-per-second pace: the earliest instant the next send slot may be granted (30_dispatch.sql).
create table outcall_private.rate_state (
  id boolean primary key default true
    constraint rate_state_singleton check (id),
  next_slot_at timestamptz not null default '-infinity',
  -- The last claim of a row of no batch: that group's turn among the batches (claim_next_due).
  batchless_claimed_at timestamptz not null default '-infinity'
);
comment on table outcall_private.rate_state is
  'The calls-per-second reservation (one row): next_slot_at; batchless_claimed_at (the turn of the rows of no batch). Its row lock serializes claims and dial-slot reservations.';
insert into outcall_private.rate_state default values;

-- The providers' circuit breaker (35_breaker.sql), one row every claim reads: closed (dial), open (dial nothing
-- until reopen_at), half_open (one probe call, probe_session_id, decides).
create table outcall_private.provider_breaker (
  id boolean primary key default true
    constraint provider_breaker_singleton check (id),
  state text not null default 'closed'
    constraint provider_breaker_state_valid check (state in ('closed', 'open', 'half_open')),
  -- Consecutive failures of each provider since its first_failure_at: Twilio's creates (reset by a created call),
  -- VAPI's assistant requests (reset by a report with another reason); a run older than the window starts again.
  twilio_failures int not null default 0,
  twilio_first_failure_at timestamptz,
  vapi_failures int not null default 0,
  vapi_first_failure_at timestamptz,
  opened_at timestamptz,
  -- While open: when the cool-down ends and the next claim becomes the probe.
  reopen_at timestamptz,
  -- While half_open: the probe's session and when it was claimed (a probe never heard of is replaced after
  -- dial_request_lease()).
  probe_session_id uuid,
  probe_started_at timestamptz,
  -- When the state last changed (null: never).
  changed_at timestamptz
);
comment on table outcall_private.provider_breaker is
  'The providers'' circuit breaker (one row): state closed | open | half_open, each provider''s consecutive failures since its first failure (twilio_*, vapi_*), opened_at, reopen_at, the probe (probe_session_id, probe_started_at). Written by 35_breaker.sql only.';
insert into outcall_private.provider_breaker default values;

-- The breaker's transitions, for operators (API, dashboard through Realtime): insert-only.
create table public.breaker_transitions (
  id bigint generated by default as identity primary key,
  at timestamptz not null default now(),
  from_state text not null,
  to_state text not null,
  -- failures (closed -> open), cooldown_over (open -> half_open: a probe), probe_lost (half_open -> half_open:
  -- a new probe), probe_succeeded | call_created (half_open -> closed), probe_failed (half_open -> open).
  reason text not null,
  -- The provider's consecutive failures when it happened.
  failures int not null,
  -- Whose failure or success moved it (twilio | vapi), null for the cool-down and a lost probe.
  provider text,
  -- The session whose claim, result or report caused it (no personal data).
  session_id uuid
);
comment on table public.breaker_transitions is
  'Every transition of the providers'' circuit breaker: at, from_state, to_state, reason (failures, cooldown_over, probe_lost, probe_succeeded, call_created, probe_failed), failures, provider, session_id.';
create index breaker_transitions_at on public.breaker_transitions (at desc);

-- Provider refusals counted per UTC day (quota monitoring): Twilio 429s and 5xx/timeouts on create, VAPI
-- concurrency refusals and assistant-request failures in end-of-call reasons.
create table public.provider_errors_daily (
  day date not null,
  provider text not null constraint provider_errors_daily_provider_valid check (provider in ('twilio', 'vapi')),
  -- throttled: a quota refusal (Twilio 429, VAPI's concurrency limit); unavailable: an outage (Twilio 5xx or no
  -- answer, a VAPI assistant-request failure), what the breaker counts.
  kind text not null constraint provider_errors_daily_kind_valid check (kind in ('throttled', 'unavailable')),
  count int not null default 0,
  last_at timestamptz not null default now(),
  primary key (day, provider, kind)
);
comment on table public.provider_errors_daily is
  'Provider refusals per UTC day, provider (twilio | vapi) and kind (throttled: Twilio 429, VAPI concurrency limit; unavailable: Twilio 5xx/timeout on create, VAPI assistant-request failure): count, last_at.';

-- What was spent per UTC day of the attempts' start (VAPI's reported cost + Twilio's price): the daily cap's
-- figure, kept by the call_sessions trigger of 25_cost.sql.
create table outcall_private.daily_spend (
  day date primary key,
  spent numeric not null default 0
);
comment on table outcall_private.daily_spend is
  'Per UTC day (of the attempts'' created_at): spent, the sum of the sessions'' cost + twilio_price. Kept by outcall_private.count_session_spend.';

-- Smart scheduling's learned rates per clinic (learned_answer_rates, 20_helpers.sql), reused for the policy's
-- smart_refresh: what clinic_answer_rates (88_analytics.sql) answered at computed_at for min_samples.
create table outcall_private.answer_rate_cache (
  clinic_name text not null,
  clinic_timezone text not null,
  min_samples int not null,
  rates numeric[],
  overall numeric,
  computed_at timestamptz not null,
  primary key (clinic_name, clinic_timezone)
);
comment on table outcall_private.answer_rate_cache is
  'Per clinic (clinic_name, clinic_timezone): clinic_answer_rates(clinic, zone, min_samples) as computed at computed_at (rates: 168 slots, null when no slot has min_samples attempts; overall). Reused for dispatch_policy.smart_refresh.';

-- The create requests in flight and those answered within the window: one row per session (its latest try).
-- The calls-per-second send slots (30_dispatch.sql).
create table outcall_private.dial_requests (
  session_id uuid primary key references public.call_sessions (id) on delete cascade,
  sent_at timestamptz not null,
  answered_at timestamptz,
  -- The session's batch (null: none): a batch's own calls per second count its own requests.
  batch_id uuid
);
comment on table outcall_private.dial_requests is
  'Twilio create requests in flight (answered_at null) and recently answered: the calls-per-second send slots. Pruned at each grant.';

-- Per batch, what the claims keep under the dispatch lock (30_dispatch.sql): its last claim (its turn among the
-- batches) and its own calls-per-second pace. A row is made by the batch's first claim.
create table outcall_private.batch_dispatch_state (
  batch_id uuid primary key references public.batches (id) on delete cascade,
  last_claimed_at timestamptz not null default '-infinity',
  next_slot_at timestamptz not null default '-infinity'
);
comment on table outcall_private.batch_dispatch_state is
  'Per batch: last_claimed_at (claim_next_due serves the batch whose last claim is oldest) and next_slot_at (its calls_per_second pace). Written under the dispatch lock.';

-- The SMS senders' pace (65_sms.sql): one row per sender, made by the first claim of its messages.
create table outcall_private.sms_senders (
  sender text primary key,
  -- Segments per second; null: no limit. A new row takes dispatch_policy.sms_messages_per_second.
  messages_per_second numeric
    constraint sms_senders_messages_per_second_positive check (messages_per_second > 0),
  -- The earliest instant the sender's next send slot may be granted.
  next_slot_at timestamptz not null default '-infinity'
);
comment on table outcall_private.sms_senders is
  'Per SMS sender (From number or Messaging Service SID): messages_per_second (segments; null: no limit) and next_slot_at. Its row lock serializes the claims of the sender''s messages.';

-- Views ------------------------------------------------------------------------------------------------------

-- Live sessions: a Twilio call is up, or about to be (dialing: the create request is out, no CallSid yet).
-- They count against max_concurrent_calls and are what the sweep reconciles. Few rows at any time.
create view outcall_private.live_sessions with (security_invoker = true) as
  select * from public.call_sessions
   where status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress');
comment on view outcall_private.live_sessions is
  'call_sessions in a live status (dialing, queued, initiated, ringing, in-progress). Served by call_sessions_live_idx.';

-- Batch progress: one row per batch, with the rates worked out. A view cannot be in a publication: Realtime
-- streams public.batches (the counters live there); this view is for dashboards' queries and the functions of
-- 60_batches.sql.
create view public.batch_progress with (security_invoker = true) as
  select b.id as batch_id,
         b.name,
         b.status,
         b.total,
         b.queued,
         b.dialling,
         b.in_progress,
         b.completed,
         b.retrying,
         b.failed,
         b.cancelled,
         b.suppressed,
         b.expired,
         b.expires_at,
         round(b.completed::numeric / nullif(b.completed + b.failed, 0), 4) as success_rate,
         round(b.duration_seconds_total / nullif(b.calls_with_duration, 0), 1) as average_duration_seconds,
         b.cost_total as total_cost,
         b.created_at,
         b.started_at,
         b.completed_at,
         b.cancelled_at,
         b.updated_at,
         b.paused_at,
         b.max_concurrency,
         b.calls_per_second,
         b.cost_estimate,
         b.cost_cap
    from public.batches as b;

comment on view public.batch_progress is
  'Per batch: its counters, success_rate (completed / (completed + failed)), average_duration_seconds, total_cost, paused_at and its own limits (max_concurrency, calls_per_second). Not in the Realtime publication (views cannot be): subscribe to public.batches, which carries the counters.';

-- ======== sql/schema/20_helpers.sql ========

-- 20: what every part of the state machine shares: housekeeping triggers, the terminal-state guard, the
-- dispatch policy and calling windows, and advance_pending_call, the one place a row's status moves on news.
--
-- The state machine: every transition is one call of one RPC function (30_dispatch.sql to 60_batches.sql), in
-- one transaction. Contract: docs/architecture.md ("SQL functions"). All return jsonb; null = unknown id (the
-- claims answer {"claimed": false, ...} instead).
--
-- Rules kept by every function:
--   * idempotent and monotonic: a duplicate or stale event changes nothing and says changed=false;
--   * a terminal pending_calls status (completed, failed, cancelled, suppressed, expired) is never left (also enforced by the
--     pending_calls_terminal_guard trigger; retry_failed_batch and an operator's reset are the deliberate
--     exceptions);
--   * locks are taken in one order, pending_calls row first, then its call_sessions row, so concurrent
--     events of one call serialize instead of deadlocking. One more lock: the dispatch limits (the
--     outcall_private.rate_state row), always taken last and only by claims and send-slot grants, so they
--     serialize there and nowhere else; and the batches rows (60_batches.sql), after the pending_calls rows.
--
-- SECURITY INVOKER: they run with the caller's rights (service_role; execute is granted in 90_security.sql).
-- search_path is empty, every name is qualified.
-- Optional trailing parameters default to null, so a PostgREST call may omit them (it matches by name).
-- Arguments that make no sense (unknown Twilio status, both/neither CallSid and error, unknown report
-- outcome) raise invalid_parameter_value (22023; PostgREST answers 400).

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
create trigger batches_set_updated_at
  before update on public.batches
  for each row execute function outcall_private.set_updated_at();

-- The terminal guard ---------------------------------------------------------------------------------------
-- A terminal state is never left, whoever writes (functions, dashboards, hand-written SQL), with two
-- deliberate exceptions, each for one statement, each set by the one function that may:
--   * retry_failed_batch requeues the failed rows of batch X (failed -> pending), with the transaction-local
--     setting outcall.reopening = X;
--   * operator_call_action reset (87_operator_actions.sql, audited) requeues the failed, cancelled or suppressed
--     (once the phone is off the list) rows it names (-> pending), with outcall.resetting = the array of their ids.
create or replace function outcall_private.guard_terminal_status() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_new_row jsonb := pg_catalog.to_jsonb(NEW);
  v_old text := pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0];
  v_new text := v_new_row ->> TG_ARGV[0];
begin
  if v_old = any (TG_ARGV[1]::text[]) and v_new is distinct from v_old then
    if TG_TABLE_SCHEMA = 'public' and TG_TABLE_NAME = 'pending_calls' and v_new = 'pending'
       and ((v_old = 'failed'
             and v_new_row ->> 'batch_id' = pg_catalog.current_setting('outcall.reopening', true))
            or (v_old in ('failed', 'cancelled', 'suppressed')
                and (v_new_row ->> 'id')::uuid
                    = any (nullif(pg_catalog.current_setting('outcall.resetting', true), '')::uuid[])))
    then
      return NEW;
    end if;
    raise exception '%.% is terminal (%), cannot become %', TG_TABLE_NAME, TG_ARGV[0], v_old, v_new
      using errcode = 'check_violation';
  end if;
  return NEW;
end
$$;

create trigger pending_calls_terminal_guard
  before update of call_status on public.pending_calls
  for each row execute function outcall_private.guard_terminal_status(
    'call_status', '{completed,failed,cancelled,suppressed,expired}');
create trigger call_sessions_terminal_guard
  before update of status on public.call_sessions
  for each row execute function outcall_private.guard_terminal_status(
    'status', '{completed,busy,no-answer,failed,canceled,dial_failed}');

-- Small helpers ------------------------------------------------------------------------------------------

-- The policy row. Raises if someone deleted it: no row must not mean "no limits".
create or replace function outcall_private.policy() returns outcall_private.dispatch_policy
language plpgsql stable
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy;
begin
  select * into v_policy from outcall_private.dispatch_policy;
  if not found then
    raise exception 'outcall_private.dispatch_policy has no row' using errcode = 'no_data_found';
  end if;
  return v_policy;
end
$$;

-- An interval in whole milliseconds, rounded up, never negative (what the Worker sleeps).
create or replace function outcall_private.interval_ms(p_interval interval) returns int
language sql immutable strict
set search_path = ''
as $$
  select greatest(0, pg_catalog.ceil(extract(epoch from p_interval) * 1000))::int
$$;

-- The calling window ------------------------------------------------------------------------------------
-- p_at itself when it is inside the window on p_tz's wall clock (ISO day of week in p_days and
-- p_start <= local time < p_end), else the earliest later instant that opens it: p_start on the next allowed
-- local date. Computed on the wall clock and converted back with AT TIME ZONE, so DST changes are handled.
-- Where a transition makes the wall time ambiguous or missing, Postgres decides (relevant only for a window
-- starting between 01:00 and 03:00 local time in a DST zone):
--   * a p_start in a spring-forward gap (02:30 on the day New York skips 02:00-03:00) is read with the offset
--     before the gap, i.e. 03:30 EDT: inside the window, but later than the first inside instant (03:00 EDT);
--   * a p_start in a fall-back repeated hour (01:30 on the day New York repeats 01:00-02:00) is the later
--     of the two, 01:30 EST.
-- STABLE, not IMMUTABLE: the answer depends on the installed tz database. (PL/pgSQL: some 6 times faster
-- here than the same in one SQL statement.)
create or replace function outcall_private.calling_window_opening(
  p_tz text, p_at timestamptz, p_days int[], p_start time, p_end time
) returns timestamptz
language plpgsql stable strict
set search_path = ''
as $$
declare
  v_local timestamp := p_at at time zone p_tz;
  v_opening timestamptz;
begin
  if extract(isodow from v_local)::int = any (p_days) and v_local::time >= p_start and v_local::time < p_end then
    return p_at;
  end if;
  -- An allowed day comes round within a week; today's own opening counts only if it is still ahead.
  for n in 0 .. 7 loop
    if extract(isodow from v_local::date + n)::int = any (p_days) then
      v_opening := ((v_local::date + n) + p_start) at time zone p_tz;
      if v_opening > p_at then
        return v_opening;
      end if;
    end if;
  end loop;
  return null;  -- (no allowed day)
end
$$;

-- The same with the policy's window.
create or replace function outcall_private.calling_window_opening(p_tz text, p_at timestamptz)
returns timestamptz
language sql stable
set search_path = ''
as $$
  select outcall_private.calling_window_opening(p_tz, p_at, p.window_days, p.window_start, p.window_end)
    from outcall_private.policy() as p
$$;

-- A row's own calling window --------------------------------------------------------------------------------
-- The earliest instant at or after p_at inside the policy's window and, when the row has one (its batch's
-- schedule), inside the row's window too, on the clinic's wall clock; null when they never meet. Alternates
-- the two openings until they agree: no instant before the current one is in both, so the first agreement is the
-- answer. A round that does not agree has passed a whole day's window of the policy, and the days repeat
-- weekly: windows that meet agree within 8 rounds; 16 without agreement means they never meet.
create or replace function outcall_private.row_window_opening(p_call public.pending_calls, p_at timestamptz)
returns timestamptz
language plpgsql stable
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_at timestamptz := p_at;
  v_row_opening timestamptz;
begin
  if p_call.window_days is null or p_call.window_start is null or p_call.window_end is null then
    return outcall_private.calling_window_opening(p_call.clinic_timezone, p_at, v_policy.window_days,
                                                  v_policy.window_start, v_policy.window_end);
  end if;
  for i in 1 .. 16 loop
    v_at := outcall_private.calling_window_opening(p_call.clinic_timezone, v_at, v_policy.window_days,
                                                   v_policy.window_start, v_policy.window_end);
    v_row_opening := outcall_private.calling_window_opening(p_call.clinic_timezone, v_at, p_call.window_days,
                                                            p_call.window_start, p_call.window_end);
    if v_row_opening is null or v_row_opening = v_at then
      return v_row_opening;  -- (null: one of the windows has no day, or the policy's gave null)
    end if;
    v_at := v_row_opening;
  end loop;
  return null;
end
$$;

-- Smart scheduling ---------------------------------------------------------------------------------------------
-- A slot of the week on the clinic's clock: ISO weekday (1 = Monday .. 7) and hour (0..23) as 1..168.
create or replace function outcall_private.week_slot(p_weekday int, p_hour int) returns int
language sql immutable strict
set search_path = ''
as $$
  select (p_weekday - 1) * 24 + p_hour + 1
$$;

-- A clinic's learned rates as the scheduler reads them: clinic_answer_rates (88_analytics.sql, the dashboard's view
-- aggregated over the clinic's sessions: some 10 microseconds a session) kept in answer_rate_cache for the policy's
-- smart_refresh, so a retry or a batch mostly reads one row. The cache is written under a try-lock per clinic:
-- a transaction refreshing it is never waited for (this one then keeps what it computed without storing it).
create or replace function outcall_private.learned_answer_rates(
  p_clinic_name text, p_tz text, p_policy outcall_private.dispatch_policy, out rates numeric[], out overall numeric
)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_cached outcall_private.answer_rate_cache;
begin
  select * into v_cached from outcall_private.answer_rate_cache as c
   where c.clinic_name = p_clinic_name and c.clinic_timezone = p_tz;
  if found and v_cached.min_samples = p_policy.smart_min_samples
     and v_cached.computed_at > pg_catalog.now() - p_policy.smart_refresh then
    rates := v_cached.rates;
    overall := v_cached.overall;
    return;
  end if;
  select r.rates, r.overall into rates, overall
    from outcall_private.clinic_answer_rates(p_clinic_name, p_tz, p_policy.smart_min_samples) as r;
  if pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('outcall_private.answer_rate_cache'),
                                          pg_catalog.hashtext(p_clinic_name || '/' || p_tz)) then
    insert into outcall_private.answer_rate_cache as c
           (clinic_name, clinic_timezone, min_samples, rates, overall, computed_at)
    values (p_clinic_name, p_tz, p_policy.smart_min_samples, rates, overall, pg_catalog.now())
    on conflict (clinic_name, clinic_timezone) do update
      set min_samples = excluded.min_samples, rates = excluded.rates, overall = excluded.overall,
          computed_at = excluded.computed_at;
  end if;
end
$$;

-- A better instant than p_earliest (the earliest allowed one, inside the row's window) for the row's next attempt,
-- or null: keep p_earliest. Candidates: the first instant inside the row's window of each later local hour of the
-- clinic's clock, before p_earliest + the policy's smart_horizon and before p_before (the row's expiry; null: none).
-- Each is rated by the clinic's answer rate at its (local weekday, hour) (learned_answer_rates: the dashboard's
-- view), only where that slot has smart_min_samples attempts or more. The best (the earliest of
-- equals) is taken if its rate is at least smart_margin above the earliest's: its slot's rate when sampled enough,
-- else the clinic's rate over all its attempts. Null also when the policy's smart_scheduling is off, the row has no
-- clinic_name (rows without one are not one clinic), or the clinic has no slot sampled enough.
-- Cost: one read of the clinic's cached rates (or of its history, once per smart_refresh), then, only when some
-- slot is sampled enough, up to one window opening per hour of the horizon.
create or replace function outcall_private.smart_attempt_at(
  p_call public.pending_calls, p_earliest timestamptz, p_before timestamptz default null
) returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_tz text := p_call.clinic_timezone;
  v_rates numeric[];
  v_overall numeric;
  v_end timestamptz;
  v_local timestamp;
  v_baseline numeric;
  v_rate numeric;
  v_at timestamptz;
  v_best numeric;
  v_best_at timestamptz;
begin
  if not v_policy.smart_scheduling or p_call.clinic_name is null or p_earliest is null or p_earliest = 'infinity'
  then
    return null;
  end if;
  select r.rates, r.overall into v_rates, v_overall
    from outcall_private.learned_answer_rates(p_call.clinic_name, v_tz, v_policy) as r;
  if v_rates is null then
    return null;  -- (no slot sampled enough)
  end if;
  v_end := least(p_earliest + v_policy.smart_horizon, p_before);
  v_local := p_earliest at time zone v_tz;
  v_baseline := coalesce(
    v_rates[outcall_private.week_slot(extract(isodow from v_local)::int, extract(hour from v_local)::int)], v_overall);
  loop
    -- The next local hour, pushed into the row's window (which may skip hours, or days).
    v_at := outcall_private.row_window_opening(p_call,
              (pg_catalog.date_trunc('hour', v_local) + interval '1 hour') at time zone v_tz);
    exit when v_at is null or v_at >= v_end;
    v_local := v_at at time zone v_tz;
    v_rate := v_rates[outcall_private.week_slot(extract(isodow from v_local)::int, extract(hour from v_local)::int)];
    if v_rate > coalesce(v_best, -1) then
      v_best := v_rate;
      v_best_at := v_at;
    end if;
  end loop;
  if v_best >= v_baseline + v_policy.smart_margin then
    return v_best_at;
  end if;
  return null;
end
$$;

-- Retries --------------------------------------------------------------------------------------------------
-- When the next attempt of a row may start after its attempt p_attempts failed: the policy's delay for that
-- attempt from now, pushed into the clinic's calling window (the policy's; not the row's own window: the
-- functions use retry_at(row) below).
create or replace function outcall_private.retry_at(p_tz text, p_attempts int) returns timestamptz
language sql stable
set search_path = ''
as $$
  select outcall_private.calling_window_opening(
           p_tz,
           pg_catalog.now()
             + p.retry_delays[least(greatest(p_attempts, 1), pg_catalog.cardinality(p.retry_delays))])
    from outcall_private.policy() as p
$$;

-- When the next attempt of this row may start after its current attempt failed: the policy's delay for the
-- round's attempt number (attempts - attempt_offset) from now, pushed into the row's calling window, then moved to
-- a better hour by smart scheduling (smart_attempt_at) before the row's expiry and p_before (null: none);
-- 'infinity' when that window never opens (a null here must never mean "at once").
create or replace function outcall_private.retry_at(p_call public.pending_calls, p_before timestamptz default null)
returns timestamptz
language sql volatile
set search_path = ''
as $$
  select coalesce(outcall_private.smart_attempt_at(p_call, e.earliest, least(p_before, p_call.expires_at)), e.earliest,
                  'infinity')
    from outcall_private.policy() as p
   cross join lateral outcall_private.row_window_opening(
           p_call,
           pg_catalog.now()
             + p.retry_delays[least(greatest(p_call.attempts - p_call.attempt_offset, 1),
                                    pg_catalog.cardinality(p.retry_delays))]) as e (earliest)
$$;

-- Do-not-call and expiry ---------------------------------------------------------------------------------------
-- Why a waiting row must end instead of being dialled at p_at: 'suppressed' (its phone is on the suppression
-- list), 'expired' (p_at is at or after its expires_at), or null. The claim's first check (dispatch_gate), the
-- insert of a row, and the sweep ask it.
create or replace function outcall_private.undiallable_reason(p_call public.pending_calls, p_at timestamptz)
returns text
language sql stable
set search_path = ''
as $$
  select case
    when exists (select 1 from public.suppression_list as s where s.phone = p_call.phone) then 'suppressed'
    when p_at >= p_call.expires_at then 'expired'
  end
$$;

-- How a pending call's status moves on an attempt's news --------------------------------------------------
-- The one place it does: only the row's current attempt moves it, only forward, never out of a terminal state.
-- Returns the row after.
--   p_to 'calling':       dispatching -> calling
--   p_to 'completed':     dispatching | calling -> completed
--   p_to 'failed':        dispatching | calling -> failed (last_error p_error): not worth retrying
--   p_to 'retry_pending': a retryable failure (last_error p_error): dispatching | calling -> retry_pending,
--                         next_attempt_at = retry_at(row) (the round's attempt number, the row's own window, smart
--                         scheduling),
--                         while attempts < max_attempts; else -> failed; -> expired when that next attempt
--                         would start at or after the row's expires_at (last_error still p_error: why the last
--                         attempt failed; the status says why there is no other)
-- A row already in retry_pending is not moved again: a second failure report of the same attempt (Twilio's
-- busy and VAPI's not_reached) is a duplicate.
create or replace function outcall_private.advance_pending_call(
  p_call public.pending_calls,
  p_attempt int,
  p_to text,
  p_error text default null
) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls := p_call;
  v_to text := p_to;
  v_next_attempt_at timestamptz;
  v_from text[] := case p_to
                     when 'calling' then array['dispatching']
                     when 'completed' then array['dispatching', 'calling']
                     when 'failed' then array['dispatching', 'calling']
                     when 'retry_pending' then array['dispatching', 'calling']
                   end;
begin
  if v_from is null then
    raise exception 'advance_pending_call: unknown target status %', coalesce(p_to, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_attempt = p_call.attempts and p_call.call_status = any (v_from) then
    if p_to = 'retry_pending' then
      if p_call.attempts < p_call.max_attempts then
        v_next_attempt_at := outcall_private.retry_at(p_call);
        if v_next_attempt_at >= p_call.expires_at then
          v_to := 'expired';
        end if;
      else
        v_to := 'failed';
      end if;
    end if;
    update public.pending_calls
       set call_status = v_to,
           last_error = coalesce(p_error, last_error),
           next_attempt_at = case when v_to = 'retry_pending' then v_next_attempt_at else next_attempt_at end
     where id = p_call.id
    returning * into v_call;
  end if;
  return v_call;
end
$$;

-- ======== sql/schema/25_cost.sql ========

-- 25: what calls cost: a batch's estimate before it starts, the running spend (VAPI's reported cost + Twilio's
-- price, per attempt), and the spend caps the claim keeps (per batch: batches.cost_cap; per UTC day for the whole
-- deployment: dispatch_policy.daily_cost_cap). Contract: docs/architecture.md ("Cost").
--
-- Amounts are USD (VAPI reports USD; Twilio's price_unit is recorded with each price and is the account's
-- currency, USD for a US account). The rates of the estimate are the policy's (10_tables.sql): placeholders until
-- set to a deployment's contracts.
--
-- The cap rule (cost_hold): one more call is dialled only while
--     spent + (live calls + 1) * one call's estimate <= cap
-- spent: what the attempts cost so far (batches.cost_total; outcall_private.daily_spend for today); live calls: the
-- batch's rows dialling or in a call (a call stays in_progress until VAPI's report gives its cost), or, for the day,
-- every live session; one call's estimate: a learning call's (the dearest: call_cost_estimate(true)), so live calls
-- are never under-counted. When the cap would be passed nothing more is dialled: the rows stay pending, the claim
-- answers cost_cap and the batch's status says held {reason, spent, cap}. Raising the cap
-- (update public.batches set cost_cap = ...; update outcall_private.dispatch_policy set daily_cost_cap = ...) lets
-- the next claim (the minute sweep's at the latest) go on. Twilio's price arrives with the sweep after the call
-- (call_sessions.twilio_price): until then an ended call's Twilio share is not in spent.

-- Estimates -----------------------------------------------------------------------------------------------------

-- One call's expected cost under the policy: expected_call_minutes * (VAPI + Twilio [+ speech-to-text when the call
-- learns the phone system]).
create or replace function outcall_private.call_cost_estimate(p_learning boolean) returns numeric
language sql stable
set search_path = ''
as $$
  select p.expected_call_minutes
         * (p.vapi_usd_per_minute + p.twilio_usd_per_minute + case when p_learning then p.stt_usd_per_minute else 0 end)
    from outcall_private.policy() as p
$$;

-- A batch's estimate from its targets' phones: one attempt each (retries cost more), a learning call (its audio
-- transcribed) for each phone with no active, unexpired classification. Stored on the batch by create_batch.
create or replace function outcall_private.batch_cost_estimate(p_phones text[]) returns jsonb
language sql stable
set search_path = ''
as $$
  with counted as (
    select pg_catalog.count(*)::int as calls,
           (pg_catalog.count(*) filter (where not exists (
              select 1 from public.call_classifications as c
               where c.phone_number = t.phone and c.is_active and c.classification_expires_at > pg_catalog.now())))::int
             as learning_calls
      from pg_catalog.unnest(p_phones) as t(phone)
  )
  select pg_catalog.jsonb_build_object(
    'calls', n.calls,
    'learning_calls', n.learning_calls,
    'expected_call_minutes', p.expected_call_minutes,
    'usd_per_minute', pg_catalog.jsonb_build_object(
      'vapi', p.vapi_usd_per_minute, 'twilio', p.twilio_usd_per_minute, 'stt', p.stt_usd_per_minute),
    'usd', pg_catalog.round(
      (n.calls - n.learning_calls) * outcall_private.call_cost_estimate(false)
      + n.learning_calls * outcall_private.call_cost_estimate(true), 4))
    from counted as n, outcall_private.policy() as p
$$;

comment on function outcall_private.batch_cost_estimate(text[]) is
  'A batch''s cost estimate from its targets'' phones: {calls, learning_calls (phones without an active classification), expected_call_minutes, usd_per_minute: {vapi, twilio, stt}, usd (4 places)}. One attempt per target.';

-- Spend ---------------------------------------------------------------------------------------------------------
-- An attempt's spend is cost (VAPI's report, apply_call_report) + twilio_price (record_twilio_price). Each change
-- is added to its batch's cost_total and to the day's outcall_private.daily_spend (the UTC day the attempt began).
-- Whoever changes a session has locked its pending_calls row first (the rule of 20_helpers.sql), so the batch row
-- is locked last here too. Money spent stays spent: deleting a row takes nothing off.
create or replace function outcall_private.count_session_spend() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_delta numeric := coalesce(NEW.cost, 0) + coalesce(NEW.twilio_price, 0);
begin
  if TG_OP = 'UPDATE' then
    v_delta := v_delta - coalesce(OLD.cost, 0) - coalesce(OLD.twilio_price, 0);
  end if;
  if v_delta = 0 then
    return null;
  end if;
  update public.batches as b
     set cost_total = b.cost_total + v_delta
    from public.pending_calls as p
   where p.id = NEW.pending_call_id and b.id = p.batch_id;
  insert into outcall_private.daily_spend as d (day, spent)
  values ((NEW.created_at at time zone 'UTC')::date, v_delta)
  on conflict (day) do update set spent = d.spent + excluded.spent;
  return null;
end
$$;

create trigger call_sessions_spend_insert
  after insert on public.call_sessions
  for each row when (NEW.cost is not null or NEW.twilio_price is not null)
  execute function outcall_private.count_session_spend();
create trigger call_sessions_spend_update
  after update of cost, twilio_price on public.call_sessions
  for each row when ((OLD.cost, OLD.twilio_price) is distinct from (NEW.cost, NEW.twilio_price))
  execute function outcall_private.count_session_spend();

-- The caps --------------------------------------------------------------------------------------------------------

-- Whether one more call of the batch (null: a row without one) would pass a cap (the rule at the top): null when
-- not, else {reason: batch_cost_cap | daily_cost_cap, spent, cap}. The batch's cap is checked first.
create or replace function outcall_private.cost_hold(p_batch_id uuid) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_cap numeric := (outcall_private.policy()).daily_cost_cap;
  v_batch public.batches;
  v_spent numeric;
begin
  if p_batch_id is not null then
    select * into v_batch from public.batches where id = p_batch_id;
    if v_batch.cost_cap is not null
       and v_batch.cost_total + (v_batch.dialling + v_batch.in_progress + 1) * outcall_private.call_cost_estimate(true)
           > v_batch.cost_cap then
      return pg_catalog.jsonb_build_object('reason', 'batch_cost_cap', 'spent', v_batch.cost_total,
                                           'cap', v_batch.cost_cap);
    end if;
  end if;
  if v_cap is null then
    return null;
  end if;
  v_spent := coalesce((select d.spent from outcall_private.daily_spend as d
                        where d.day = (pg_catalog.now() at time zone 'UTC')::date), 0);
  if v_spent + ((select pg_catalog.count(*) from outcall_private.live_sessions) + 1)
               * outcall_private.call_cost_estimate(true) > v_cap then
    return pg_catalog.jsonb_build_object('reason', 'daily_cost_cap', 'spent', v_spent, 'cap', v_cap);
  end if;
  return null;
end
$$;

comment on function outcall_private.cost_hold(uuid) is
  'Whether a spend cap holds the batch''s next call (rule: 25_cost.sql): null, or {reason: batch_cost_cap | daily_cost_cap, spent, cap}.';

-- Twilio's price --------------------------------------------------------------------------------------------------
-- Twilio's status callback carries no price, and the Call resource's price may still be null right after the end:
-- the Worker's minute sweep asks for the calls that lack one, a few at a time, and records what Twilio answers.

-- Answered calls (Twilio completed; unanswered ones are not billed) that ended in the last day without a price,
-- not looked at in the last minute: never looked at first, then the longest unlooked-at, oldest end first — so a
-- call Twilio keeps answering without a price (or not at all) cannot hold the others back:
-- [{session_id, call_sid}].
create or replace function public.sessions_lacking_price(p_limit int) returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('session_id', s.id, 'call_sid', s.call_sid)
                                       order by s.twilio_price_checked_at nulls first, s.ended_at, s.id), '[]'::jsonb)
    from (select s.id, s.call_sid, s.ended_at, s.twilio_price_checked_at
            from public.call_sessions as s
           where s.status = 'completed'
             and s.twilio_price is null
             and s.call_sid is not null
             and s.ended_at > pg_catalog.now() - interval '1 day'
             and (s.twilio_price_checked_at is null or s.twilio_price_checked_at < pg_catalog.now() - interval '1 minute')
           order by s.twilio_price_checked_at nulls first, s.ended_at, s.id
           limit greatest(p_limit, 0)) as s
$$;

comment on function public.sessions_lacking_price(int) is
  'Up to p_limit answered calls (Twilio completed) ended within a day without Twilio''s price, not looked at in the last minute; never looked at first, then the longest unlooked-at, oldest end first: [{session_id, call_sid}].';

-- Records Twilio's price of a session's call (p_price: the amount charged, positive; Twilio's own figure is
-- negative), once; p_price null (Twilio has none yet) only notes the look. Returns {session_id, twilio_price,
-- changed} or null (no such session).
create or replace function public.record_twilio_price(p_session_id uuid, p_price numeric, p_price_unit text)
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
begin
  if p_price < 0 then
    raise exception 'record_twilio_price: p_price must be 0 or more (the amount charged), got %', p_price
      using errcode = 'invalid_parameter_value';
  end if;
  perform 1 from public.pending_calls
   where id = (select s.pending_call_id from public.call_sessions as s where s.id = p_session_id)
     for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;
  if not found then
    return null;
  end if;
  if v_session.twilio_price is null then
    update public.call_sessions
       set twilio_price = p_price,
           twilio_price_unit = case when p_price is not null then p_price_unit end,
           twilio_price_checked_at = now()
     where id = v_session.id
    returning * into v_session;
    v_changed := v_session.twilio_price is not null;
  end if;
  return jsonb_build_object('session_id', v_session.id, 'twilio_price', v_session.twilio_price,
                            'changed', v_changed);
end
$$;

comment on function public.record_twilio_price(uuid, numeric, text) is
  'Records Twilio''s price of a session''s call (p_price >= 0, the amount charged; else 22023), once: a second price changes nothing; null only stamps twilio_price_checked_at. Adds it to the batch''s cost_total and the day''s spend. Returns {session_id, twilio_price, changed} or null.';

-- ======== sql/schema/30_dispatch.sql ========

-- 30: dispatch: the claims, the dispatch limits (capacity, one dial per phone, calls per second), the send
-- slots, and the dial result. The dispatch lock (the outcall_private.rate_state row) is always taken last and
-- only by claims and send-slot grants, so they serialize there and nowhere else.
--
-- Calls per second are held where Twilio counts them: when a create request arrives. A claim cannot just take
-- a slot paced 1/cps after the previous one and send at once: that spacing holds only as long as every request
-- reaches Twilio at the same delay after its claim, and under load the claim's answer (commit, PostgREST, the
-- gateway, the Worker's event loop) and the request itself (the Worker's fetch queue, the network) each took
-- up to ~130 ms longer for one request than the next: two creates arrived 419 ms apart at 2 calls/s, even with
-- 10% headroom in the pace.
--
-- So a send slot is released only when Twilio has answered the request that held it (or it went unanswered):
-- the answer is recorded after the request arrived, so a slot granted a window after that record leaves, and
-- arrives, a window after the earlier request arrived, whatever the delays in between. The rule, with
-- k = max(1, floor(calls_per_second)) and window = 1 s (1/calls_per_second below 1 call/s):
--   a create may be sent only while fewer than k creates are in flight or were answered within the window,
--   and no sooner than 1/calls_per_second after the previous grant (an even pace).
-- So any k + 1 creates arrive at least a window apart (at most k in any second), with no headroom for jitter.
-- The cost is the create's own answer time: at 1 call/s one call every 1 s + Twilio's answer time.
-- A batch with its own calls_per_second is held by the same rule over its own creates (dial_requests.batch_id)
-- and its own pace (batch_dispatch_state.next_slot_at), on top of the global one: send_slot_wait(p_batch_id).
--
-- Batches share the global slots by turns (claim_next_due): among the groups (each batch not finished, cancelled
-- or paused; the rows of no batch as one group) the one whose last claim is oldest is searched first, then the
-- next, each for its most overdue claimable row; a group at its own limits is passed over. So a batch of 1,000 rows
-- takes one claim in turn with a batch of 5, not 1,000 before it.

-- Dispatch limits ----------------------------------------------------------------------------------------
-- Locks the rate_state row until commit. Every claim and slot reservation takes it (after its pending_calls
-- row), so the capacity count, the phone check and the calls-per-second slot are exact however many run at
-- once: the next one waits, and its following statements see what the previous one committed (READ
-- COMMITTED: one snapshot per statement). The section is short: one claim's work.
create or replace function outcall_private.lock_dispatch_limits() returns outcall_private.rate_state
language plpgsql volatile
set search_path = ''
as $$
declare
  v_state outcall_private.rate_state;
begin
  select * into v_state from outcall_private.rate_state for update;
  if not found then
    raise exception 'outcall_private.rate_state has no row' using errcode = 'no_data_found';
  end if;
  return v_state;
end
$$;

-- Send slots ---------------------------------------------------------------------------------------------

-- A create request unanswered this long is no longer counted as in flight: the Worker waits at most
-- TWILIO_TIMEOUT_MS (up to 60 s) for an answer and then releases it; only a Worker that died mid-dial leaves
-- one behind.
create or replace function outcall_private.dial_request_lease() returns interval
language sql immutable
set search_path = ''
as $$
  select interval '2 minutes'
$$;

-- The gap between two grants: exactly 1/calls_per_second (the in-flight rule, not headroom, keeps arrivals apart).
create or replace function outcall_private.dial_spacing() returns interval
language sql stable
set search_path = ''
as $$
  select interval '1 second' * (1.0 / p.calls_per_second)::float8 from outcall_private.policy() as p
$$;

-- How long until a create request may be sent (zero: now). The dispatch lock must be held. On the database's
-- wall clock, clock_timestamp(), which is also the clock of every grant and answer compared here.
-- p_batch_id null: the global limit (the policy's calls_per_second over every create); a batch: its own
-- calls_per_second over its own creates (zero when it has none).
create or replace function outcall_private.send_slot_wait(p_batch_id uuid default null) returns interval
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_cps numeric := case when p_batch_id is null then (outcall_private.policy()).calls_per_second
                        else (select b.calls_per_second from public.batches as b where b.id = p_batch_id) end;
  v_slots int := greatest(1, pg_catalog.floor(v_cps))::int;
  v_window interval := interval '1 second' * (case when v_cps >= 1 then 1 else 1.0 / v_cps end)::float8;
  v_pace_wait interval := case when p_batch_id is null
      then (select greatest(next_slot_at, v_now) from outcall_private.rate_state)
      else (select greatest(s.next_slot_at, v_now) from outcall_private.batch_dispatch_state as s
             where s.batch_id = p_batch_id) end - v_now;
  v_free_at timestamptz[];
begin
  if v_cps is null then
    return interval '0';
  end if;
  v_pace_wait := coalesce(v_pace_wait, interval '0');
  -- When each busy slot frees: a window after its answer; a request in flight, a window after an answer still
  -- to come, so now + window is the earliest that can be.
  select coalesce(pg_catalog.array_agg(coalesce(r.answered_at, v_now) + v_window order by r.answered_at nulls last), '{}')
    into v_free_at
    from outcall_private.dial_requests as r
   where (p_batch_id is null or r.batch_id = p_batch_id)
     and ((r.answered_at is null and r.sent_at > v_now - outcall_private.dial_request_lease())
          or r.answered_at > v_now - v_window);
  if pg_catalog.cardinality(v_free_at) >= v_slots then
    -- the first moment fewer than v_slots are busy
    return greatest(v_free_at[pg_catalog.cardinality(v_free_at) - v_slots + 1] - v_now, v_pace_wait, interval '0');
  end if;
  return greatest(v_pace_wait, interval '0');
end
$$;

-- Why nothing may be dialled now (at_capacity, rate_limited), or null. The dispatch lock must be held.
create or replace function outcall_private.limits_answer() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_wait interval;
begin
  if (select count(*) from outcall_private.live_sessions) >= (outcall_private.policy()).max_concurrent_calls then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'at_capacity');
  end if;
  v_wait := outcall_private.send_slot_wait();
  if v_wait > interval '0' then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'rate_limited',
                                         'retry_after_ms', outcall_private.interval_ms(v_wait));
  end if;
  return null;
end
$$;

-- Why the batch may not dial now (batch_at_capacity; batch_rate_limited with retry_after_ms), or null: a batch
-- without limits of its own, or no batch. The dispatch lock must be held. Its live calls are counted by its rows'
-- live sessions (few at any time).
create or replace function outcall_private.batch_limits_answer(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.batches;
  v_wait interval;
begin
  select * into v_batch from public.batches where id = p_batch_id;
  if v_batch.max_concurrency is not null
     and (select count(*) from outcall_private.live_sessions as s
            join public.pending_calls as p on p.id = s.pending_call_id
           where p.batch_id = p_batch_id) >= v_batch.max_concurrency then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'batch_at_capacity');
  end if;
  if v_batch.calls_per_second is not null then
    v_wait := outcall_private.send_slot_wait(p_batch_id);
    if v_wait > interval '0' then
      return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'batch_rate_limited',
                                           'retry_after_ms', outcall_private.interval_ms(v_wait));
    end if;
  end if;
  return null;
end
$$;

-- Grants a send slot to the session's next create request, now (send_slot_wait() must have answered zero,
-- under the dispatch lock). The request is in flight until its answer is recorded. Returns the grant's time.
create or replace function outcall_private.take_dial_slot(p_session_id uuid) returns timestamptz
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.clock_timestamp();
  v_batch public.batches;
begin
  select b.* into v_batch
    from public.call_sessions as s
    join public.pending_calls as p on p.id = s.pending_call_id
    join public.batches as b on b.id = p.batch_id
   where s.id = p_session_id;
  delete from outcall_private.dial_requests
   where coalesce(answered_at, sent_at + outcall_private.dial_request_lease()) < v_now - interval '1 hour';
  insert into outcall_private.dial_requests (session_id, sent_at, batch_id) values (p_session_id, v_now, v_batch.id)
  on conflict (session_id) do update set sent_at = excluded.sent_at, answered_at = null;
  update outcall_private.rate_state set next_slot_at = v_now + outcall_private.dial_spacing();
  if v_batch.calls_per_second is not null then
    insert into outcall_private.batch_dispatch_state (batch_id, next_slot_at)
    values (v_batch.id, v_now + interval '1 second' * (1.0 / v_batch.calls_per_second)::float8)
    on conflict (batch_id) do update set next_slot_at = excluded.next_slot_at;
  end if;
  return v_now;
end
$$;

-- Twilio answered (or never answered) the session's create request: its send slot starts its window now.
-- Idempotent; a session with no request in flight is left alone.
create or replace function outcall_private.release_dial_slot(p_session_id uuid) returns boolean
language sql volatile
set search_path = ''
as $$
  with released as (
    update outcall_private.dial_requests set answered_at = pg_catalog.clock_timestamp()
     where session_id = p_session_id and answered_at is null
    returning 1)
  select exists (select 1 from released)
$$;

-- A session that leaves `dialing` or learns its CallSid has had its create request answered (a dial result,
-- a status callback that beat it, a reconciliation): its send slot is released with it, in the same
-- transaction, whichever function moved it. A CallSid is also Twilio's success for the circuit breaker.
create or replace function outcall_private.release_answered_dial() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform outcall_private.release_dial_slot(new.id);
  if new.call_sid is not null then
    perform outcall_private.breaker_success(new.id, 'twilio');
  end if;
  return null;
end
$$;

create trigger call_sessions_release_answered_dial
  after update of status, call_sid on public.call_sessions
  for each row
  when (old.status = 'dialing' and old.call_sid is null and (new.status <> 'dialing' or new.call_sid is not null))
  execute function outcall_private.release_answered_dial();

-- Claims ---------------------------------------------------------------------------------------------------

-- Another session of this phone waits for Twilio's answer to its create request (no CallSid yet). At most one
-- such dial per phone, so that reconciliation can tell which Twilio call belongs to which session.
create or replace function outcall_private.phone_is_dialing(p_phone text) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1
                   from outcall_private.live_sessions as s
                   join public.pending_calls as p on p.id = s.pending_call_id
                  where s.status = 'dialing' and p.phone = p_phone)
$$;

-- Whether the batch is paused (pause_batch, 60_batches.sql); false for no batch.
create or replace function outcall_private.batch_is_paused(p_batch_id uuid) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from public.batches where id = p_batch_id and paused_at is not null)
$$;

-- What stands between a claimable row (locked) and its dial, in the order of the answers: suppressed or expired
-- (the row ends so, no session, no call: outcall_private.undiallable_reason), paused (its batch holds it; the row
-- stays as it is), cost_cap (+held: a spend cap would be passed, 25_cost.sql; the row stays as it is),
-- outside_window (the row then waits for the opening; when that opening is at or after its
-- expires_at it ends expired at once), breaker_open (the providers' circuit breaker, 35_breaker.sql),
-- phone_dialing, batch_at_capacity, batch_rate_limited (its batch's own
-- limits), at_capacity, rate_limited. Null = go ahead; the dispatch
-- lock is then held. The phone is checked under the lock too: two rows of one phone claimed at once must not
-- both pass. The window is the row's: the policy's intersected with the row's own (row_window_opening). A
-- window that never opens is outside it for ever (next_attempt_at 'infinity'), never "go ahead".
create or replace function outcall_private.dispatch_gate(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_opening timestamptz;
  v_ends text := outcall_private.undiallable_reason(p_call, pg_catalog.now());
  v_breaker jsonb;
  v_hold jsonb;
begin
  -- (a) the row ends instead of being dialled
  if v_ends is not null then
    update public.pending_calls set call_status = v_ends, last_error = v_ends where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', v_ends);
  end if;
  -- (b) its batch holds it
  if outcall_private.batch_is_paused(p_call.batch_id) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'paused');
  end if;
  v_hold := outcall_private.cost_hold(p_call.batch_id);
  if v_hold is not null then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'cost_cap', 'held', v_hold);
  end if;
  v_opening := outcall_private.row_window_opening(p_call, pg_catalog.now());
  if v_opening is null or v_opening > pg_catalog.now() then
    v_opening := coalesce(v_opening, 'infinity');
    if v_opening >= p_call.expires_at then
      update public.pending_calls set call_status = 'expired', last_error = 'expired' where id = p_call.id;
      return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'expired');
    end if;
    update public.pending_calls set next_attempt_at = v_opening where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'outside_window', 'next_attempt_at', v_opening);
  end if;
  perform outcall_private.lock_dispatch_limits();
  v_breaker := outcall_private.breaker_answer();
  if v_breaker is not null then
    return v_breaker;
  end if;
  if outcall_private.phone_is_dialing(p_call.phone) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'phone_dialing', 'retry_after_ms', 250);
  end if;
  return coalesce(outcall_private.batch_limits_answer(p_call.batch_id), outcall_private.limits_answer());
end
$$;

-- A group's turn was taken (claim_next_due serves the group whose last claim is oldest): the batch's, or for a
-- row of no batch, the batchless group's. Under the dispatch lock.
create or replace function outcall_private.note_turn(p_batch_id uuid) returns void
language plpgsql volatile
set search_path = ''
as $$
begin
  if p_batch_id is null then
    update outcall_private.rate_state set batchless_claimed_at = pg_catalog.clock_timestamp();
  else
    insert into outcall_private.batch_dispatch_state (batch_id, last_claimed_at)
    values (p_batch_id, pg_catalog.clock_timestamp())
    on conflict (batch_id) do update set last_claimed_at = excluded.last_claimed_at;
  end if;
end
$$;

-- The claim itself, once dispatch_gate said go: row -> dispatching, attempts+1, a new dialing session with the
-- phone's active, unexpired classification, the call's listener if it gets one (open_listener, 47_learning.sql:
-- a learning run when nothing is known of the phone, a verification run when an IVR is replayed), a send slot
-- granted to its create request; when the circuit breaker is not closed, the attempt is its probe (breaker_claimed,
-- first: the breaker's lock comes before the batch counters'). Returns the claim's answer.
create or replace function outcall_private.start_attempt(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_class public.call_classifications%rowtype;
  v_attempt int := p_call.attempts + 1;
  v_session_id uuid := pg_catalog.gen_random_uuid();
  v_listen jsonb;
begin
  perform outcall_private.breaker_claimed(v_session_id);

  -- (at most one row is active per phone)
  select * into v_class
    from public.call_classifications
   where phone_number = p_call.phone
     and is_active
     and classification_expires_at > pg_catalog.now()
   limit 1;

  update public.pending_calls
     set call_status = 'dispatching',
         attempts = v_attempt,
         classification_id = v_class.id
   where id = p_call.id;

  insert into public.call_sessions (id, pending_call_id, attempt, status, classification_id, classification_type)
  values (v_session_id, p_call.id, v_attempt, 'dialing', v_class.id, v_class.classification_type);

  v_listen := outcall_private.open_listener(p_call, v_session_id, v_class);
  perform outcall_private.take_dial_slot(v_session_id);
  perform outcall_private.note_turn(p_call.batch_id);

  return pg_catalog.jsonb_build_object(
    'session_id', v_session_id,
    'pending_call_id', p_call.id,
    'attempt', v_attempt,
    'phone', p_call.phone,
    -- Whether other rows are due: the Worker then keeps dialling (drains) after this one.
    'more_due', exists (
      select 1 from public.pending_calls as o
       where o.call_status in ('pending', 'retry_pending') and o.next_attempt_at <= pg_catalog.now()
         and o.attempts < o.max_attempts and o.id <> p_call.id),
    'classification', case when v_class.id is null then null else
      pg_catalog.jsonb_build_object(
        'id', v_class.id,
        'classification_type', v_class.classification_type,
        'ivr_actions', v_class.ivr_actions)
      end,
    -- The call's listener, {run_id, purpose: learn | verify, token}, or null (none).
    'listen', v_listen)
    -- The breaker's transition this claim made (it is the half-open probe), if any.
    || outcall_private.breaker_transition_field(v_session_id);
end
$$;

-- claim_pending_call ------------------------------------------------------------------------------------
create or replace function public.claim_pending_call(p_pending_call_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls%rowtype;
  v_answer jsonb;
begin
  -- Taken by a concurrent claim (SKIP LOCKED), not claimable, not due, or out of attempts:
  -- {"claimed": false, "reason": "not_claimable"}; no such row: reason "not_found".
  select * into v_call
    from public.pending_calls
   where id = p_pending_call_id
     and call_status in ('pending', 'retry_pending')
     and next_attempt_at <= now()
     and attempts < max_attempts
     for update skip locked;
  if not found then
    return jsonb_build_object('claimed', false, 'reason',
      case when exists (select 1 from public.pending_calls where id = p_pending_call_id)
           then 'not_claimable' else 'not_found' end);
  end if;

  v_answer := outcall_private.dispatch_gate(v_call);
  if v_answer is not null then
    return v_answer;
  end if;
  return outcall_private.start_attempt(v_call);
end
$$;

comment on function public.claim_pending_call(uuid) is
  'Claims a due pending/retry_pending row (FOR UPDATE SKIP LOCKED) inside its calling window and the dispatch limits (its batch''s own, then the global): row -> dispatching, attempts+1, new call_sessions row (dialing), a learning or verification run when the call gets a listener. Returns {session_id, pending_call_id, attempt, phone, more_due, classification, listen: {run_id, purpose, token} | null}, or {claimed: false, reason: not_found | not_claimable | suppressed | expired (the row ended so: its phone is on the suppression list, or its expires_at passed or comes before its window opens) | paused | outside_window (+next_attempt_at) | breaker_open (+retry_after_ms) | phone_dialing (+retry_after_ms) | batch_at_capacity | batch_rate_limited (+retry_after_ms) | at_capacity | rate_limited (+retry_after_ms) | cost_cap (+held: {reason: batch_cost_cap | daily_cost_cap, spent, cap})}.';

-- A group's most overdue claimable row, locked (SKIP LOCKED: one taken by a concurrent claim is passed over), or
-- a row of nulls: p_batch_id's, or with p_batch_id null the rows of no batch. One probe of
-- pending_calls_batch_due_idx (two statements: `batch_id is not distinct from` would not use the index); the dispatch
-- lock must be held (the phone filter is exact under it).
create or replace function outcall_private.next_due_row(p_batch_id uuid) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
declare
  v_call public.pending_calls;
begin
  if p_batch_id is null then
    select * into v_call
      from public.pending_calls as p
     where p.batch_id is null
       and p.call_status in ('pending', 'retry_pending')
       and p.next_attempt_at <= pg_catalog.now()
       and p.attempts < p.max_attempts
       and not outcall_private.phone_is_dialing(p.phone)
     order by p.next_attempt_at, p.created_at
     limit 1
       for update skip locked;
  else
    select * into v_call
      from public.pending_calls as p
     where p.batch_id = p_batch_id
       and p.call_status in ('pending', 'retry_pending')
       and p.next_attempt_at <= pg_catalog.now()
       and p.attempts < p.max_attempts
       and not outcall_private.phone_is_dialing(p.phone)
     order by p.next_attempt_at, p.created_at
     limit 1
       for update skip locked;
  end if;
  return v_call;
end
$$;

-- claim_next_due ----------------------------------------------------------------------------------------
-- The next claimable row, by turns between the batches (the header above): due pending/retry_pending with attempts
-- left, not locked by another claim, whose phone is not dialing. The dispatch lock is taken first and the global
-- limits checked, so a full Worker touches no row, and the search runs under the lock (its phone filter is exact).
-- The groups are searched oldest last claim first (a batch never claimed first, then by creation); in a group, its
-- most overdue row (next_attempt_at, created_at), one index probe (pending_calls_batch_due_idx). A group at its own
-- limits is passed over; when every group with a due row is, the answer is the hold that ends first
-- (batch_rate_limited with the shortest retry_after_ms, else batch_at_capacity). A row found outside its window is
-- deferred to its opening, and a suppressed or expired one ended, and the next one tried, up to c_max_deferrals in
-- all; past that it answers the last reason with retry_after_ms 0 (more may be due: call again). Paused batches are
-- not searched; a batch held by its spend cap is passed over like one at its limits, and the daily cap holds every
-- row: its answer (cost_cap) is returned.
create or replace function public.claim_next_due() returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_max_deferrals constant int := 100;
  v_deferrals int := 0;
  v_group uuid;
  v_call public.pending_calls%rowtype;
  v_answer jsonb;
  v_held jsonb;
begin
  perform outcall_private.lock_dispatch_limits();
  v_answer := coalesce(outcall_private.breaker_answer(), outcall_private.limits_answer());
  if v_answer is not null then
    return v_answer;
  end if;

  for v_group in
    select g.batch_id
      from (select b.id as batch_id, coalesce(s.last_claimed_at, '-infinity') as last_claimed_at, b.created_at
              from public.batches as b
              left join outcall_private.batch_dispatch_state as s on s.batch_id = b.id
             where b.completed_at is null and b.cancelled_at is null and b.paused_at is null
            union all
            select null, r.batchless_claimed_at, '-infinity' from outcall_private.rate_state as r) as g
     order by g.last_claimed_at, g.created_at, g.batch_id
  loop
    -- A batch held by its spend cap or at its own limits is passed over before any row of it is locked (a claim
    -- by id must still see batch_at_capacity, not a row taken); its hold counts only if it has a row due. The hold
    -- that ends first is the answer if no group can dial. The daily cap holds every group.
    v_answer := outcall_private.cost_hold(v_group);
    if v_answer is not null then
      v_answer := jsonb_build_object('claimed', false, 'reason', 'cost_cap', 'held', v_answer);
      if v_answer -> 'held' ->> 'reason' = 'daily_cost_cap' then
        return v_answer;
      end if;
    else
      v_answer := outcall_private.batch_limits_answer(v_group);
    end if;
    if v_answer is not null then
      if exists (select 1 from public.pending_calls as p
                  where p.batch_id = v_group and p.call_status in ('pending', 'retry_pending')
                    and p.next_attempt_at <= now() and p.attempts < p.max_attempts)
         and (v_held is null or (v_answer ? 'retry_after_ms' and (not v_held ? 'retry_after_ms'
              or (v_held ->> 'retry_after_ms')::bigint > (v_answer ->> 'retry_after_ms')::bigint))) then
        v_held := v_answer;
      end if;
      continue;
    end if;
    loop
      v_call := outcall_private.next_due_row(v_group);
      exit when v_call.id is null;
      v_answer := outcall_private.dispatch_gate(v_call);
      if v_answer is null then
        return outcall_private.start_attempt(v_call);
      elsif v_answer ->> 'reason' not in ('outside_window', 'suppressed', 'expired') then
        return v_answer;  -- (not expected: the limits and the phone were checked under the same lock)
      end if;
      v_deferrals := v_deferrals + 1;
      if v_deferrals >= c_max_deferrals then
        return v_answer || jsonb_build_object('retry_after_ms', 0);
      end if;
    end loop;
  end loop;
  return coalesce(v_held, jsonb_build_object('claimed', false, 'reason', 'idle'));
end
$$;

comment on function public.claim_next_due() is
  'Claims the next claimable row, like claim_pending_call, by turns between batches (the batch whose last claim is oldest first; the rows of no batch as one group; paused batches skipped, a batch at its own limits or held by its spend cap passed over); rows outside their calling window are deferred to the opening, suppressed or expired rows ended (up to 100 per call, then {claimed: false, reason: outside_window | suppressed | expired, retry_after_ms: 0}: call again). Returns the claim''s answer, or {claimed: false, reason: breaker_open | at_capacity | rate_limited | batch_at_capacity | batch_rate_limited (+retry_after_ms: every batch with a due row is at its own limits) | idle | outside_window | phone_dialing | suppressed | expired | cost_cap (+held)}.';

-- reserve_dial_slot -------------------------------------------------------------------------------------
-- The Worker sends Twilio's create request again after a retryable provider error: that request needs a send
-- slot of its own, granted now or not at all. Returns {"outcome": "reserved"} (send now), {"outcome": "wait",
-- "retry_after_ms": n} (ask again then; with "reason": "breaker_open" while the circuit breaker holds dialling:
-- the Worker then gives up and the attempt is given back), {"outcome": "settled"} when the session no longer
-- waits for its dial result, null for an unknown session. A re-send let through while the breaker is not closed
-- is its probe. The batch's own calls_per_second holds it too (its capacity does not: the session is already
-- live). Touches the session's updated_at: the sweep leaves a session being
-- worked on alone.
create or replace function public.reserve_dial_slot(p_session_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_session public.call_sessions%rowtype;
  v_wait interval;
  v_breaker jsonb;
begin
  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  perform 1 from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;
  if v_session.status <> 'dialing' or v_session.call_sid is not null then
    return jsonb_build_object('outcome', 'settled');
  end if;

  update public.call_sessions set updated_at = now() where id = v_session.id;
  perform outcall_private.lock_dispatch_limits();
  v_breaker := outcall_private.breaker_answer(v_session.id);
  if v_breaker is not null then
    return jsonb_build_object('outcome', 'wait', 'retry_after_ms', v_breaker -> 'retry_after_ms', 'reason', 'breaker_open');
  end if;
  -- Its own earlier try was answered (the Worker released it before backing off). The batch's own rate too.
  v_wait := greatest(outcall_private.send_slot_wait(),
                     outcall_private.send_slot_wait((select batch_id from public.pending_calls where id = v_pending_call_id)));
  if v_wait > interval '0' then
    return jsonb_build_object('outcome', 'wait', 'retry_after_ms', outcall_private.interval_ms(v_wait));
  end if;
  perform outcall_private.breaker_claimed(v_session.id);
  perform outcall_private.take_dial_slot(v_session.id);
  return jsonb_build_object('outcome', 'reserved');
end
$$;

comment on function public.reserve_dial_slot(uuid) is
  'Grants a send slot now to the re-sent dial request of a session still dialing: {outcome: reserved}, {outcome: wait, retry_after_ms, reason?: breaker_open} (ask again then), {outcome: settled} (no longer dialing), or null (unknown session).';

-- release_dial_slot -------------------------------------------------------------------------------------
-- The Worker got an answer to a try that will be sent again (429, 503, 504) or none (timeout, dropped
-- connection): the try no longer holds a send slot while the Worker backs off. p_failure says what the try
-- tells of Twilio: unavailable (5xx, no answer: the circuit breaker counts it), throttled (429: quota, counted
-- per day), null (nothing). Returns {released: bool (false: nothing was in flight for it), breaker?: the
-- transition it caused}, null for an unknown session.
create or replace function public.release_dial_slot(p_session_id uuid, p_failure text default null) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_released boolean;
begin
  if not exists (select 1 from public.call_sessions where id = p_session_id) then
    return null;
  end if;
  v_released := outcall_private.release_dial_slot(p_session_id);
  perform outcall_private.breaker_failure(p_session_id, 'twilio', p_failure);
  return jsonb_build_object('released', v_released) || outcall_private.breaker_transition_field(p_session_id);
end
$$;

comment on function public.release_dial_slot(uuid, text) is
  'Records that the session''s create request was answered (or timed out): its calls-per-second send slot counts from now; p_failure unavailable (5xx, no answer) feeds the circuit breaker, throttled (429) the quota count. {released: bool, breaker?: {from, to, reason, failures, provider}} or null (unknown session).';

-- The dial result -------------------------------------------------------------------------------------------

-- A dial that did not happen: session dial_failed, row retried per the policy (or failed when p_retryable
-- is false or no attempt is left). The session must be locked and still dialing. Returns the row after.
create or replace function outcall_private.fail_dial(
  p_call public.pending_calls,
  p_session public.call_sessions,
  p_error text,
  p_error_code text,
  p_retryable boolean
) returns public.pending_calls
language plpgsql volatile
set search_path = ''
as $$
begin
  update public.call_sessions
     set status = 'dial_failed', error = p_error, error_code = p_error_code, ended_at = pg_catalog.now()
   where id = p_session.id;
  return outcall_private.advance_pending_call(
    p_call, p_session.attempt, case when p_retryable then 'retry_pending' else 'failed' end, p_error);
end
$$;

-- record_dial_result ------------------------------------------------------------------------------------
-- The Worker's Twilio create request answered: a CallSid, or an error. A provider error the Worker knows is
-- permanent (p_retryable false: Twilio 400 21211, an invalid number) fails the row at once: it would fail
-- again. Any other error is retried per the policy. p_failure: what the last try tells of Twilio, when the
-- Worker has not reported it with release_dial_slot (unavailable | throttled | null). A retryable failure while
-- the circuit breaker is not closed (or that opened it) gives the attempt back: due at the cool-down's end,
-- the budget unchanged (give_attempt_back, 35_breaker.sql).
create or replace function public.record_dial_result(
  p_session_id uuid,
  p_call_sid text default null,
  p_error text default null,
  p_error_code text default null,
  p_retryable boolean default true,
  p_failure text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_sid text := nullif(btrim(p_call_sid), '');
  v_error text := nullif(btrim(p_error), '');
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
  v_given_back boolean := false;
begin
  if (v_sid is null) = (v_error is null) then
    raise exception 'record_dial_result: exactly one of p_call_sid and p_error must be given'
      using errcode = 'invalid_parameter_value';
  end if;

  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;

  if v_sid is not null then
    -- Twilio may call back before its 201 reaches us, so a status callback can have stored the sid
    -- (and moved the session on) already; dialed_at marks that the dial result itself was recorded.
    if v_session.dialed_at is null and v_session.status <> 'dial_failed'
       and (v_session.call_sid is null or v_session.call_sid = v_sid) then
      update public.call_sessions
         set call_sid = v_sid, dialed_at = now(),
             status = case when status = 'dialing' then 'queued' else status end
       where id = v_session.id
      returning * into v_session;
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
      v_changed := true;
    end if;
  elsif v_session.status = 'dialing' then
    -- Only a session still waiting for its dial result takes a failure; a later one is a duplicate.
    perform outcall_private.breaker_failure(v_session.id, 'twilio', p_failure);
    v_given_back := coalesce(p_retryable, true) and v_call.attempts = v_session.attempt
                    and (select state from outcall_private.provider_breaker) <> 'closed';
    if v_given_back then
      v_call := outcall_private.give_attempt_back(v_call);
    end if;
    v_call := outcall_private.fail_dial(v_call, v_session, v_error, nullif(btrim(p_error_code), ''),
                                        coalesce(p_retryable, true));
    if v_given_back and v_call.call_status = 'retry_pending' then
      v_call := outcall_private.due_at_reopen(v_call);
    end if;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'call_status', v_call.call_status,
    'changed', v_changed)
    -- The attempt did not count (the circuit breaker held dialling); the transition of the breaker it caused.
    || case when v_given_back then jsonb_build_object('attempt_given_back', true) else '{}' end
    || outcall_private.breaker_transition_field(v_session.id);
end
$$;

comment on function public.record_dial_result(uuid, text, text, text, boolean, text) is
  'Records the outcome of the Twilio Calls.json request: a CallSid (session queued, row calling) or an error (session dial_failed; row retry_pending per the policy, or failed when p_retryable is false or no attempt is left; p_failure unavailable | throttled feeds the circuit breaker and the quota count; a retryable error while the breaker is not closed gives the attempt back, due when the cool-down ends). Returns {session_id, pending_call_id, call_status, changed, attempt_given_back?: true, breaker?} or null.';

-- ======== sql/schema/35_breaker.sql ========

-- 35: the providers' circuit breaker (outcall_private.provider_breaker, one row) and the providers' refusals per
-- day (public.provider_errors_daily). Every transition is a row of public.breaker_transitions.
--
--   closed    ─ breaker_failures consecutive failures of one provider within breaker_window ─▶ open
--   open      ─ breaker_cooldown over: the next claim (or re-send) is the probe ─▶ half_open
--   half_open ─ the probe's call is created (or any other call is) ─▶ closed
--             ─ the probe's create fails (5xx, no answer) ─▶ open (another cool-down)
--             ─ the probe is lost (its session left dialing without a call, or it is older than
--               dial_request_lease(): its Worker died) ─▶ half_open with the next claim as the probe
-- Failures: Twilio creates answered 5xx or not at all (release_dial_slot / record_dial_result p_failure
-- 'unavailable'), VAPI assistant-request failures in end-of-call reasons (apply_call_report). 429s and VAPI's
-- concurrency refusals are quota ('throttled'): counted per day, never an outage.
-- While not closed the claims refuse (breaker_open), reserve_dial_slot answers wait, and a dial that fails gives
-- its attempt back (record_dial_result): the row is due again when the cool-down ends, its budget unchanged.
--
-- Locks: the breaker row is taken after the pending_calls row, its session and the dispatch lock, and before
-- anything the row's own update locks (the batch counters): record_dial_result, apply_call_report and
-- start_attempt move the breaker first. The common case (closed, no failure to reset) reads it without a lock.

-- Counts one refusal of the day (UTC).
create or replace function outcall_private.count_provider_error(p_provider text, p_kind text) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.provider_errors_daily as d (day, provider, kind, count, last_at)
  values ((pg_catalog.now() at time zone 'UTC')::date, p_provider, p_kind, 1, pg_catalog.now())
  on conflict (day, provider, kind) do update set count = d.count + 1, last_at = excluded.last_at
$$;

-- Logs a transition (the Worker's answers report it: breaker_transition_of).
create or replace function outcall_private.log_breaker_transition(
  p_from text, p_to text, p_reason text, p_failures int, p_provider text, p_session_id uuid
) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.breaker_transitions (from_state, to_state, reason, failures, provider, session_id)
  values (p_from, p_to, p_reason, p_failures, p_provider, p_session_id)
$$;

-- The transition the session caused in this transaction, {from, to, reason, failures, provider}, or null:
-- what an answer to the Worker reports, for its log.
create or replace function outcall_private.breaker_transition_of(p_session_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('from', t.from_state, 'to', t.to_state, 'reason', t.reason,
                                       'failures', t.failures, 'provider', t.provider)
    from public.breaker_transitions as t
   where t.session_id = p_session_id and t.at = pg_catalog.now()
   order by t.id desc
   limit 1
$$;

-- {"breaker": transition} when the session caused one in this transaction, else {}: merged into an answer.
create or replace function outcall_private.breaker_transition_field(p_session_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select case when x.t is null then '{}'::jsonb else pg_catalog.jsonb_build_object('breaker', x.t) end
    from (select outcall_private.breaker_transition_of(p_session_id) as t) as x
$$;

-- Whether the half-open probe may still report: its session still dials, and not for longer than a create
-- request's lease (past it its Worker died).
create or replace function outcall_private.breaker_probe_is_live(p_breaker outcall_private.provider_breaker)
returns boolean
language sql stable
set search_path = ''
as $$
  select p_breaker.probe_started_at > pg_catalog.now() - outcall_private.dial_request_lease()
     and exists (select 1 from public.call_sessions as s
                  where s.id = p_breaker.probe_session_id and s.status = 'dialing' and s.call_sid is null)
$$;

-- Check (e) of dispatch_gate: {claimed: false, reason: breaker_open, retry_after_ms} while open (until the
-- cool-down ends) or half-open with a live probe (ask again in a second), else null (this claim may dial; if the
-- breaker is not closed it becomes the probe, breaker_claimed). p_session_id: a re-send's session, let through
-- when it is the probe itself (say after a 429). The dispatch lock must be held.
create or replace function outcall_private.breaker_answer(p_session_id uuid default null) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  select * into v_breaker from outcall_private.provider_breaker;
  if v_breaker.state = 'open' and v_breaker.reopen_at > pg_catalog.now() then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'breaker_open',
      'retry_after_ms', outcall_private.interval_ms(v_breaker.reopen_at - pg_catalog.now()));
  elsif v_breaker.state = 'half_open' and outcall_private.breaker_probe_is_live(v_breaker)
        and v_breaker.probe_session_id is distinct from p_session_id then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'breaker_open',
      'retry_after_ms', least(1000, outcall_private.interval_ms(
        v_breaker.probe_started_at + outcall_private.dial_request_lease() - pg_catalog.now())));
  end if;
  return null;
end
$$;

-- A claim (or a re-send) that breaker_answer let through, under the dispatch lock: when the breaker is not
-- closed, its session is the probe (open -> half_open, or a lost probe replaced).
create or replace function outcall_private.breaker_claimed(p_session_id uuid) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  if (select state from outcall_private.provider_breaker) = 'closed' then
    return;
  end if;
  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' and v_breaker.reopen_at <= pg_catalog.now()
     or v_breaker.state = 'half_open' and not coalesce(outcall_private.breaker_probe_is_live(v_breaker), false) then
    update outcall_private.provider_breaker
       set state = 'half_open', probe_session_id = p_session_id, probe_started_at = pg_catalog.now(),
           changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      v_breaker.state, 'half_open', case v_breaker.state when 'open' then 'cooldown_over' else 'probe_lost' end,
      greatest(v_breaker.twilio_failures, v_breaker.vapi_failures), null, p_session_id);
  end if;
end
$$;

-- A provider failure of the session: p_kind 'throttled' (quota) is only counted for the day; 'unavailable' (an
-- outage) also counts towards opening the breaker, or reopens it when it is the probe's. Null: nothing.
create or replace function outcall_private.breaker_failure(p_session_id uuid, p_provider text, p_kind text)
returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_failures int;
  v_first timestamptz;
begin
  if p_kind is null then
    return;
  elsif p_kind not in ('unavailable', 'throttled') or p_provider is null or p_provider not in ('twilio', 'vapi') then
    raise exception 'a provider failure is unavailable or throttled, of twilio or vapi; got % of %', p_kind, p_provider
      using errcode = 'invalid_parameter_value';
  end if;
  perform outcall_private.count_provider_error(p_provider, p_kind);
  if p_kind = 'throttled' then
    return;
  end if;

  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' or v_breaker.state = 'half_open' and v_breaker.probe_session_id is distinct from p_session_id then
    return;  -- the cool-down or the probe decides: a failure of a call dialled before is no news
  end if;
  if p_provider = 'twilio' then
    v_failures := v_breaker.twilio_failures;
    v_first := v_breaker.twilio_first_failure_at;
  else
    v_failures := v_breaker.vapi_failures;
    v_first := v_breaker.vapi_first_failure_at;
  end if;
  -- (a run older than the window starts again; a probe's failure adds to the run that opened the breaker)
  if v_breaker.state = 'closed' and (v_first is null or v_first <= pg_catalog.now() - v_policy.breaker_window) then
    v_failures := 1;
    v_first := pg_catalog.now();
  else
    v_failures := v_failures + 1;
  end if;
  update outcall_private.provider_breaker
     set twilio_failures = case p_provider when 'twilio' then v_failures else twilio_failures end,
         twilio_first_failure_at = case p_provider when 'twilio' then v_first else twilio_first_failure_at end,
         vapi_failures = case p_provider when 'vapi' then v_failures else vapi_failures end,
         vapi_first_failure_at = case p_provider when 'vapi' then v_first else vapi_first_failure_at end;

  if v_breaker.state = 'half_open' or v_failures >= v_policy.breaker_failures then
    update outcall_private.provider_breaker
       set state = 'open', opened_at = pg_catalog.now(), reopen_at = pg_catalog.now() + v_policy.breaker_cooldown,
           probe_session_id = null, probe_started_at = null, changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      v_breaker.state, 'open', case v_breaker.state when 'closed' then 'failures' else 'probe_failed' end,
      v_failures, p_provider, p_session_id);
  end if;
end
$$;

-- A provider success of the session: Twilio created its call (the trigger that releases an answered dial), or
-- VAPI ended it for another reason than an assistant-request failure. Resets that provider's failures; a
-- created call closes a half-open breaker. An open breaker waits for its cool-down whatever succeeds.
create or replace function outcall_private.breaker_success(p_session_id uuid, p_provider text) returns void
language plpgsql volatile
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
begin
  select * into v_breaker from outcall_private.provider_breaker;
  if not (v_breaker.state = 'half_open' and p_provider = 'twilio'
          or v_breaker.state <> 'open' and p_provider = 'twilio' and v_breaker.twilio_failures > 0
          or v_breaker.state <> 'open' and p_provider = 'vapi' and v_breaker.vapi_failures > 0) then
    return;  -- the common case: nothing to change, no lock taken
  end if;
  select * into v_breaker from outcall_private.provider_breaker for update;
  if v_breaker.state = 'open' then
    return;
  end if;
  update outcall_private.provider_breaker
     set twilio_failures = case p_provider when 'twilio' then 0 else twilio_failures end,
         twilio_first_failure_at = case p_provider when 'twilio' then null else twilio_first_failure_at end,
         vapi_failures = case p_provider when 'vapi' then 0 else vapi_failures end,
         vapi_first_failure_at = case p_provider when 'vapi' then null else vapi_first_failure_at end;
  if v_breaker.state = 'half_open' and p_provider = 'twilio' then
    update outcall_private.provider_breaker
       set state = 'closed', reopen_at = null, probe_session_id = null, probe_started_at = null,
           changed_at = pg_catalog.now();
    perform outcall_private.log_breaker_transition(
      'half_open', 'closed',
      case when v_breaker.probe_session_id = p_session_id then 'probe_succeeded' else 'call_created' end,
      v_breaker.twilio_failures, p_provider, p_session_id);
  end if;
end
$$;

-- The attempt's dial failed while the breaker is not closed (or the failure opened it): the attempt is given
-- back, before fail_dial retries the row. Its round keeps its budget: attempt_offset and max_attempts both one up,
-- as an operator's reset counts rounds, so attempt numbers stay unique and the retry delays count from the same
-- place. The row must be locked and dispatching; returns the row after.
create or replace function outcall_private.give_attempt_back(p_call public.pending_calls) returns public.pending_calls
language sql volatile
set search_path = ''
as $$
  update public.pending_calls
     set attempt_offset = attempt_offset + 1, max_attempts = max_attempts + 1
   where id = p_call.id
  returning *
$$;

-- A row given its attempt back is due again when the cool-down ends (not after the policy's retry delay).
create or replace function outcall_private.due_at_reopen(p_call public.pending_calls) returns public.pending_calls
language sql volatile
set search_path = ''
as $$
  update public.pending_calls
     set next_attempt_at = greatest(pg_catalog.now(), (select b.reopen_at from outcall_private.provider_breaker as b
                                                        where b.state = 'open'))
   where id = p_call.id and call_status = 'retry_pending'
  returning *
$$;

-- The end-of-call reasons that count: VAPI could not get an assistant from our server (unavailable), or
-- refused the call for its concurrency limit (throttled). Null for every other reason.
create or replace function outcall_private.vapi_failure_kind(p_ended_reason text) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when p_ended_reason in ('assistant-request-failed', 'assistant-request-returned-error',
                            'assistant-request-returned-unspeakable-error', 'assistant-request-returned-invalid-assistant',
                            'assistant-request-returned-no-assistant') then 'unavailable'
    when p_ended_reason like '%concurrency-limit-reached' then 'throttled'
  end
$$;

-- provider_health ---------------------------------------------------------------------------------------
-- What operators see (GET /api/v1/providers): the breaker, its policy, its last transitions, and the providers'
-- refusals of the last p_days UTC days.
create or replace function public.provider_health(p_transitions int default 20, p_days int default 7) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_breaker outcall_private.provider_breaker;
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
begin
  if p_transitions is null or p_transitions not between 1 and 200 or p_days is null or p_days not between 1 and 90 then
    raise exception 'provider_health: p_transitions must be 1..200 and p_days 1..90'
      using errcode = 'invalid_parameter_value';
  end if;
  select * into v_breaker from outcall_private.provider_breaker;
  return pg_catalog.jsonb_build_object(
    'breaker', pg_catalog.jsonb_build_object(
      'state', v_breaker.state,
      'twilio_failures', v_breaker.twilio_failures,
      'vapi_failures', v_breaker.vapi_failures,
      'opened_at', v_breaker.opened_at,
      'reopen_at', case when v_breaker.state = 'open' then v_breaker.reopen_at end,
      'probe_started_at', case when v_breaker.state = 'half_open' then v_breaker.probe_started_at end,
      'changed_at', v_breaker.changed_at,
      'failures_to_open', v_policy.breaker_failures,
      'window_ms', outcall_private.interval_ms(v_policy.breaker_window),
      'cooldown_ms', outcall_private.interval_ms(v_policy.breaker_cooldown)),
    'transitions', coalesce((
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'at', t.at, 'from', t.from_state, 'to', t.to_state, 'reason', t.reason, 'failures', t.failures,
               'provider', t.provider) order by t.id desc)
        from (select * from public.breaker_transitions order by id desc limit p_transitions) as t), '[]'::jsonb),
    'errors', coalesce((
      select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'day', d.day, 'provider', d.provider, 'kind', d.kind, 'count', d.count, 'last_at', d.last_at)
             order by d.day desc, d.provider, d.kind)
        from public.provider_errors_daily as d
       where d.day > (pg_catalog.now() at time zone 'UTC')::date - p_days), '[]'::jsonb));
end
$$;

comment on function public.provider_health(int, int) is
  'The providers'' circuit breaker and quota: {breaker: {state, twilio_failures, vapi_failures, opened_at, reopen_at, probe_started_at, changed_at, failures_to_open, window_ms, cooldown_ms}, transitions: [{at, from, to, reason, failures, provider}] newest first (p_transitions, 1..200), errors: [{day, provider, kind, count, last_at}] of the last p_days UTC days (1..90)}.';

-- ======== sql/schema/40_twilio.sql ========

-- 40: Twilio's status callbacks.

-- apply_twilio_status -----------------------------------------------------------------------------------
create or replace function public.apply_twilio_status(
  p_call_sid text,
  p_call_status text,
  p_sequence_number int default null,
  p_answered_by text default null,
  p_duration_seconds int default null,
  p_session_id uuid default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  -- queued < initiated < ringing < in-progress < (completed | busy | no-answer | failed | canceled)
  c_terminal constant text[] := array['completed', 'busy', 'no-answer', 'failed', 'canceled', 'dial_failed'];
  v_new_rank int;
  v_cur_rank int;
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
  v_slot_freed boolean := false;
begin
  v_new_rank := case p_call_status
    when 'queued' then 1 when 'initiated' then 2 when 'ringing' then 3 when 'in-progress' then 4
    when 'completed' then 5 when 'busy' then 5 when 'no-answer' then 5 when 'failed' then 5
    when 'canceled' then 5 end;
  if v_new_rank is null then
    raise exception 'apply_twilio_status: unknown CallStatus %', coalesce(p_call_status, 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  -- By CallSid; or, for a callback that beat the dial result, by the session id the StatusCallback
  -- URL carries, when that session has no CallSid yet.
  select pending_call_id into v_pending_call_id from public.call_sessions where call_sid = p_call_sid;
  if not found then
    select pending_call_id into v_pending_call_id
      from public.call_sessions
     where id = p_session_id and call_sid is null and status <> 'dial_failed';
    if not found then
      return null;
    end if;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions
   where call_sid = p_call_sid or (id = p_session_id and call_sid is null)
   order by (call_sid = p_call_sid) desc nulls last
   limit 1
     for update;
  if v_session.call_sid is null then
    update public.call_sessions set call_sid = p_call_sid where id = v_session.id returning * into v_session;
    v_changed := true;
  end if;

  v_cur_rank := case
    when v_session.status = any (c_terminal) then 5
    else coalesce(array_position(array['dialing', 'queued', 'initiated', 'ringing', 'in-progress'],
                                 v_session.status) - 1, 0) end;

  if v_new_rank > v_cur_rank then
    update public.call_sessions
       set status = p_call_status,
           twilio_sequence_number = greatest(twilio_sequence_number, p_sequence_number),
           answered_by = coalesce(nullif(btrim(p_answered_by), ''), answered_by),
           answered_at = case when p_call_status = 'in-progress' then coalesce(answered_at, now())
                              else answered_at end,
           ended_at = case when v_new_rank = 5 then coalesce(ended_at, now()) else ended_at end,
           duration_seconds = case when v_new_rank = 5 then coalesce(p_duration_seconds, duration_seconds)
                                   else duration_seconds end
     where id = v_session.id
    returning * into v_session;
    v_changed := true;
    -- Every status below rank 5 is live, so this call ended a live session: a place under
    -- max_concurrent_calls is free (the Worker claims the next due row at once).
    v_slot_freed := v_new_rank = 5;

    -- A live call is `calling` even if its dial result has not been recorded yet. Of the endings,
    -- busy / no-answer / failed / canceled are retried (or fail the row when no attempt is left). A
    -- completed call reached VAPI, whose end-of-call report alone decides (answered by a person or a
    -- machine): so the Twilio-versus-VAPI race ends the same whichever arrives first.
    if v_new_rank < 5 then
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
    elsif p_call_status in ('busy', 'no-answer', 'failed', 'canceled') then
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'retry_pending', p_call_status);
    end if;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'pending_call_id', v_call.id,
    'session_status', v_session.status,
    'call_status', v_call.call_status,
    'changed', v_changed,
    'slot_freed', v_slot_freed);
end
$$;

comment on function public.apply_twilio_status(text, text, int, text, int, uuid) is
  'Applies a Twilio status callback, monotonically. busy/no-answer/failed/canceled are retried (retry_pending, or failed when no attempt is left); completed leaves the row to VAPI''s report. Returns {session_id, pending_call_id, session_status, call_status, changed, slot_freed} or null (unknown sid).';

-- ======== sql/schema/45_vapi.sql ========

-- 45: VAPI: what a call needs (call_context), VAPI's status updates and its end-of-call report.

-- call_context -------------------------------------------------------------------------------------------------
-- The fields VAPI may have of a row, by default (settings 'vapi_context_fields', a comma-separated list, narrows
-- or widens them; pending_call_id is always there). Date of birth is in: clinics verify patients by it.
-- Security definer: the settings table is closed to every API role, service_role included; this reads one name.
create or replace function outcall_private.vapi_context_fields() returns text[]
language sql stable security definer
set search_path = ''
as $$
  select coalesce(
    (select pg_catalog.string_to_array(pg_catalog.replace(value, ' ', ''), ',')
       from outcall_private.settings where name = 'vapi_context_fields'),
    array['exam_id', 'employee_name', 'employee_dob', 'client_name', 'clinic_name', 'clinic_timezone',
          'appointment_time', 'appointment_local', 'procedures', 'instructions', 'variables', 'prompt', 'first_message'])
$$;

-- What a call needs and nothing else, only for VAPI's call of the row's live attempt: the row is being dialled or
-- called (not finished, cancelled or waiting), its current session has not ended, and the session is bound to
-- p_vapi_call_id. The first VAPI call to ask binds it; any other call id gets null, as does an unknown row.
create or replace function public.call_context(p_pending_call_id uuid, p_vapi_call_id text) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_all jsonb;
begin
  if v_vapi_call_id is null then
    return null;
  end if;
  select * into v_call from public.pending_calls
   where id = p_pending_call_id and call_status in ('dispatching', 'calling')
     for update;
  if not found then
    return null;
  end if;
  select * into v_session from public.call_sessions as s
   where s.pending_call_id = v_call.id and s.attempt = v_call.attempts
     and exists (select 1 from outcall_private.live_sessions as l where l.id = s.id)
     for update of s;
  if not found or v_session.vapi_call_id <> v_vapi_call_id then
    return null;
  end if;
  if v_session.vapi_call_id is null then
    update public.call_sessions set vapi_call_id = v_vapi_call_id where id = v_session.id;
  end if;

  v_all := jsonb_build_object(
    'exam_id', v_call.exam_id,
    'employee_name', v_call.employee_name,
    'employee_dob', v_call.employee_dob,
    'client_name', v_call.client_name,
    'clinic_name', v_call.clinic_name,
    'clinic_timezone', v_call.clinic_timezone,
    'appointment_time', v_call.appointment_time,
    -- What the assistant says: the appointment on the clinic's wall clock.
    'appointment_local', to_char(v_call.appointment_time at time zone v_call.clinic_timezone,
                                 'FMDay, FMMonth FMDD, YYYY "at" FMHH12:MI AM'),
    'procedures', to_jsonb(v_call.procedures),
    'instructions', v_call.instructions,
    'variables', v_call.variables,
    'prompt', v_call.prompt,
    'first_message', v_call.first_message);
  return jsonb_build_object('pending_call_id', v_call.id)
         || coalesce((select jsonb_object_agg(f.key, f.value) from jsonb_each(v_all) as f
                       where f.key = any (outcall_private.vapi_context_fields())), '{}');
end
$$;

comment on function public.call_context(uuid, text) is
  'What a call needs and nothing else, for VAPI''s call p_vapi_call_id of the row''s live attempt (the first call id to ask is bound to the session): {pending_call_id} and the fields of outcall_private.vapi_context_fields(), or null (unknown row, not live, another VAPI call).';

-- The session a VAPI event belongs to -------------------------------------------------------------
-- The session of this VAPI call, else the latest attempt that has a call_sid; locked. All nulls if none.
create or replace function outcall_private.lock_vapi_session(p_pending_call_id uuid, p_vapi_call_id text)
returns public.call_sessions
language sql volatile
set search_path = ''
as $$
  select *
    from public.call_sessions
   where pending_call_id = p_pending_call_id
     and (vapi_call_id = p_vapi_call_id or call_sid is not null)
   order by coalesce(vapi_call_id = p_vapi_call_id, false) desc, attempt desc
   limit 1
     for update
$$;

-- apply_vapi_status ---------------------------------------------------------------------------------
-- VAPI's status-update: scheduled < queued < ringing < in-progress < forwarding < ended. Recorded on the
-- current session (the one with this vapi_call_id, else the latest attempt that has a call_sid).
-- A status VAPI may add later, or an event of another VAPI call, changes nothing.
create or replace function public.apply_vapi_status(
  p_pending_call_id uuid,
  p_status text,
  p_vapi_call_id text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_order constant text[] := array['scheduled', 'queued', 'ringing', 'in-progress', 'forwarding', 'ended'];
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_new_rank int := array_position(c_order, p_status);
  v_changed boolean := false;
begin
  select * into v_call from public.pending_calls where id = p_pending_call_id for update;
  if not found then
    return null;
  end if;

  v_session := outcall_private.lock_vapi_session(v_call.id, v_vapi_call_id);
  if v_session.id is null then
    return null;
  end if;

  if v_new_rank is not null
     and v_new_rank > coalesce(array_position(c_order, v_session.vapi_status), 0)
     and (v_session.vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
  then
    update public.call_sessions
       set vapi_status = p_status,
           vapi_call_id = coalesce(vapi_call_id, v_vapi_call_id)
     where id = v_session.id
    returning * into v_session;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'pending_call_id', v_call.id,
    'session_id', v_session.id,
    'vapi_status', v_session.vapi_status,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.apply_vapi_status(uuid, text, text) is
  'Records VAPI''s status-update on the current session, monotonically. Returns {pending_call_id, session_id, vapi_status, call_status, changed} or null (unknown id / no dialled session).';

-- apply_call_report -------------------------------------------------------------------------------------
-- VAPI's end-of-call report: completed ends the row completed; not_reached (voicemail, no answer, ...) is a
-- retryable failure. The results are recorded whatever the outcome. An assistant-request failure counts towards
-- the circuit breaker, a concurrency refusal towards the quota count (vapi_failure_kind).
create or replace function public.apply_call_report(
  p_pending_call_id uuid,
  p_vapi_call_id text,
  p_outcome text,
  p_ended_reason text default null,
  p_summary text default null,
  p_success_evaluation text default null,
  p_structured_data jsonb default null,
  p_transcript text default null,
  p_duration_seconds numeric default null,
  p_cost numeric default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_vapi_call_id text := nullif(btrim(p_vapi_call_id), '');
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_changed boolean := false;
begin
  if p_outcome is null or p_outcome not in ('completed', 'not_reached') then
    raise exception 'apply_call_report: p_outcome must be completed or not_reached, got %',
      coalesce(p_outcome, 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_call from public.pending_calls where id = p_pending_call_id for update;
  if not found then
    return null;
  end if;

  v_session := outcall_private.lock_vapi_session(v_call.id, v_vapi_call_id);
  if v_session.id is null then
    return null;
  end if;

  -- One report per session; a report of another VAPI call than the session's is not ours.
  if v_session.report_received_at is null
     and (v_session.vapi_call_id is null or v_session.vapi_call_id = v_vapi_call_id)
  then
    update public.call_sessions
       set report_received_at = now(),
           ended_reason = p_ended_reason,
           cost = p_cost,
           vapi_call_id = coalesce(vapi_call_id, v_vapi_call_id)
     where id = v_session.id
    returning * into v_session;
    -- The circuit breaker and the quota count (35_breaker.sql), before the row's update locks its batch.
    if outcall_private.vapi_failure_kind(p_ended_reason) is null then
      perform outcall_private.breaker_success(v_session.id, 'vapi');
    else
      perform outcall_private.breaker_failure(v_session.id, 'vapi', outcall_private.vapi_failure_kind(p_ended_reason));
    end if;

    -- Results are recorded even on a row that Twilio's news already moved on (say busy on the last attempt); its
    -- status and last_error then stay as they are. Only the current attempt writes the row.
    if v_session.attempt = v_call.attempts then
      update public.pending_calls
         set ended_reason = p_ended_reason,
             summary = p_summary,
             success_evaluation = p_success_evaluation,
             structured_data = p_structured_data,
             transcript = p_transcript,
             duration_seconds = p_duration_seconds,
             cost = p_cost
       where id = v_call.id
      returning * into v_call;
      v_call := outcall_private.advance_pending_call(
        v_call, v_session.attempt,
        case p_outcome when 'completed' then 'completed' else 'retry_pending' end,
        case p_outcome when 'not_reached' then coalesce(p_ended_reason, 'not_reached') end);
    end if;
    v_changed := true;
  end if;

  return jsonb_build_object(
    'pending_call_id', v_call.id,
    'session_id', v_session.id,
    'call_status', v_call.call_status,
    'changed', v_changed);
end
$$;

comment on function public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric) is
  'Applies VAPI''s end-of-call report to the current session and the row: completed -> completed, not_reached -> retry_pending (failed when no attempt is left), unless Twilio''s news already moved the row on; results always recorded. A second report changes nothing. Returns {pending_call_id, session_id, call_status, changed} or null.';

-- ======== sql/schema/47_learning.sql ========

-- 47: learning each phone system once, and checking it on every replay (issue 12). The claim decides whether a call
-- gets a listener (start_attempt, 30_dispatch.sql, calls open_listener below); the listener (a Durable Object that
-- receives the call's audio from Twilio Media Streams) authenticates with begin_listening, and ends its run with
-- record_classification_run, or, hearing another menu than the cached one, invalidate_classification.
--
-- The rules (pgTAP: sql/tests/19_learning.sql):
--   * A claimed call of a phone with no active, unexpired classification gets a learning run (purpose learn); one
--     of a phone whose cached classification is an IVR (replayed before VAPI is dialled) gets a verification run
--     (verify). A phone a person answers gets none: there is nothing to replay, so nothing to check.
--   * At most one listening run per phone and purpose (classification_runs_one_listening_per_phone): of five rows
--     of one unknown phone, the first call claimed learns and the others dial without a listener. (Claims also
--     serialize on the dispatch lock and dial one call per phone at a time; the index holds even without that: a
--     claim that loses the race inserts nothing and gets no listener, without an error.)
--   * The 30-day rule, read as "a phone is learned successfully at most once per 30 days": a confident human,
--     ivr_only or ivr_then_human result is cached for 30 days (classification_expires_at), and while it is active
--     and unexpired no learning run starts for the phone. Invalidation (the menu changed) lifts it at once: the
--     same call goes on learning. voicemail, unknown, or a result below the confidence threshold cache nothing,
--     so the next call of the phone learns again (the row is retried as today).
--   * A listening run that will never be finished does not block its phone for ever: once the lease (1 hour)
--     has passed, or its call ended more than 2 minutes ago (time for the listener's last result) without a
--     result, it is abandoned, by the next claim of the phone and by the sweep (50_sweep.sql).
--   * The stream's token: 32 random bytes (pgcrypto), base64url without padding (43 characters), answered once
--     by the claim; only its SHA-256 is stored. begin_listening accepts it once.

-- How long a run may listen at most: a listener that died without a word frees its phone after this.
create or replace function outcall_private.learning_lease() returns interval
language sql immutable
set search_path = ''
as $$
  select interval '1 hour'
$$;

-- Whether a listening run is over without a result: past the lease, or its call ended more than 2 minutes ago.
create or replace function outcall_private.listening_is_over(p_run public.classification_runs) returns boolean
language sql stable
set search_path = ''
as $$
  select p_run.created_at < pg_catalog.now() - outcall_private.learning_lease()
      or exists (select 1 from public.call_sessions as s
                  where s.id = p_run.session_id and s.ended_at < pg_catalog.now() - interval '2 minutes')
$$;

-- Marks the listening runs that are over (of one phone, or all with null) abandoned; returns how many. Runs being
-- written by someone else (a result arriving) are skipped, not waited for.
create or replace function outcall_private.abandon_stale_runs(p_phone text) returns int
language sql volatile
set search_path = ''
as $$
  with stale as (
    select r.id
      from public.classification_runs as r
     where r.status = 'listening'
       and (p_phone is null or r.phone = p_phone)
       and outcall_private.listening_is_over(r)
       for update of r skip locked
  ), abandoned as (
    update public.classification_runs as r
       set status = 'abandoned', finished_at = pg_catalog.now()
      from stale
     where r.id = stale.id
    returning 1
  )
  select count(*)::int from abandoned
$$;

-- The claim's listener (start_attempt, in the claim's transaction, after the session is created): the claim
-- answer's `listen`, {run_id, purpose, token}, or null (no listener: a person answers the phone, or another run of
-- the phone is listening). p_class is the active, unexpired classification the call replays (all nulls: none).
create or replace function outcall_private.open_listener(
  p_call public.pending_calls,
  p_session_id uuid,
  p_class public.call_classifications
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_purpose text;
  v_token text;
  v_run_id uuid;
begin
  if p_class.id is null then
    v_purpose := 'learn';
  elsif p_class.classification_type in ('ivr_only', 'ivr_then_human') then
    v_purpose := 'verify';
  else
    return null;
  end if;

  perform outcall_private.abandon_stale_runs(p_call.phone);
  v_token := pg_catalog.translate(pg_catalog.encode(extensions.gen_random_bytes(32), 'base64'), '+/=', '-_');
  insert into public.classification_runs
    (phone, session_id, pending_call_id, purpose, token_sha256, verified_classification_id)
  values
    (p_call.phone, p_session_id, p_call.id, v_purpose, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')),
     p_class.id)
  on conflict (phone, purpose) where status = 'listening' do nothing
  returning id into v_run_id;

  if v_run_id is null then
    return null;  -- another run of the phone listens: this call goes without
  end if;
  return pg_catalog.jsonb_build_object('run_id', v_run_id, 'purpose', v_purpose, 'token', v_token);
end
$$;

-- begin_listening -----------------------------------------------------------------------------------------------
-- The stream of session p_session_id presents its token (Twilio's `start` message carries both). Accepted once:
-- the token is consumed (stream_started_at). Refused, writing nothing: {ok: false, reason: unknown_session (no run
-- for the session) | bad_token | used (the token was presented before) | not_listening (the run is finished,
-- abandoned, or over)}. The token is checked before anything about the run is told.
-- Accepted: {ok: true, run_id, purpose, phone_known (the phone had a classification before, active or not),
-- classification: for verify, what the replay should sound like: {id, classification_type, ivr_actions,
-- evidence: {prompts, fingerprint} or null}; null for learn}. No personal data.
create or replace function public.begin_listening(p_session_id uuid, p_token text) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_run public.classification_runs%rowtype;
  v_class public.call_classifications%rowtype;
begin
  select * into v_run from public.classification_runs where session_id = p_session_id for update;
  if not found then
    return jsonb_build_object('ok', false, 'reason', 'unknown_session');
  end if;
  if p_token is null or sha256(convert_to(p_token, 'UTF8')) <> v_run.token_sha256 then
    return jsonb_build_object('ok', false, 'reason', 'bad_token');
  end if;
  if v_run.stream_started_at is not null then
    return jsonb_build_object('ok', false, 'reason', 'used');
  end if;
  if v_run.status <> 'listening' or outcall_private.listening_is_over(v_run) then
    return jsonb_build_object('ok', false, 'reason', 'not_listening');
  end if;

  update public.classification_runs set stream_started_at = now() where id = v_run.id;
  if v_run.purpose = 'verify' then
    select * into v_class from public.call_classifications where id = v_run.verified_classification_id;
  end if;
  return jsonb_build_object(
    'ok', true,
    'run_id', v_run.id,
    'purpose', v_run.purpose,
    'phone_known', exists (select 1 from public.call_classifications where phone_number = v_run.phone),
    'classification', case when v_class.id is null then null else
      jsonb_build_object(
        'id', v_class.id,
        'classification_type', v_class.classification_type,
        'ivr_actions', v_class.ivr_actions,
        'evidence', v_class.evidence)
      end);
end
$$;

comment on function public.begin_listening(uuid, text) is
  'A listener''s stream presents its single-use token: {ok: true, run_id, purpose, phone_known, classification (verify: {id, classification_type, ivr_actions, evidence}; learn: null)} once, then {ok: false, reason: unknown_session | bad_token | used | not_listening} (nothing written).';

-- record_classification_run -------------------------------------------------------------------------------------
-- The listener's result. p_verdict = {classification: human | ivr_only | ivr_then_human | voicemail | unknown,
-- confidence: 0..1, ivr_actions: [...] (as call_classifications'), evidence: {prompts: [text], fingerprint: text,
-- reasons: [...], ...}}; other keys are ignored. p_timeline an object or null; p_stt_seconds >= 0 or null. A
-- verdict of another shape raises invalid_parameter_value (22023), nothing written.
-- Finishes a listening run once: a learn run whose result is human, ivr_only or ivr_then_human, with confidence at
-- least 0.7 and actions that fit the type (human none, an IVR at least one), replaces the phone's active
-- classification (the old one deactivated) for 30 days; anything else caches nothing (voicemail and unknown never).
-- A verify run records what it heard only (a changed menu is invalidate_classification's, during the call).
-- Answers {ok: true, cached, classification_id (what it cached, or null)}; again for a finished run, the same
-- (nothing changes); {ok: false, reason: abandoned} for an abandoned run; null for an unknown run.
create or replace function public.record_classification_run(
  p_run_id uuid,
  p_verdict jsonb,
  p_timeline jsonb,
  p_stt_seconds numeric
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  c_confident constant numeric := 0.7;
  v_result text := p_verdict ->> 'classification';
  v_actions jsonb := p_verdict -> 'ivr_actions';
  v_evidence jsonb := p_verdict -> 'evidence';
  v_problem text;
  v_run public.classification_runs%rowtype;
  v_class_id uuid;
begin
  v_problem := case
    when jsonb_typeof(p_verdict) is distinct from 'object' then 'p_verdict must be an object'
    when jsonb_typeof(p_verdict -> 'classification') is distinct from 'string'
      or v_result not in ('human', 'ivr_only', 'ivr_then_human', 'voicemail', 'unknown')
      then 'classification must be human, ivr_only, ivr_then_human, voicemail or unknown'
    when case when jsonb_typeof(p_verdict -> 'confidence') = 'number'
              then (p_verdict ->> 'confidence')::numeric not between 0 and 1 else true end
      then 'confidence must be a number from 0 to 1'
    when not coalesce(outcall_private.ivr_actions_valid(v_actions), false)
      then 'ivr_actions must be an array of {action, value, timing_ms} as call_classifications takes them'
    when jsonb_typeof(v_evidence) is distinct from 'object' then 'evidence must be an object'
    when coalesce(jsonb_typeof(v_evidence -> 'prompts'), 'null') not in ('array', 'null')
      or exists (select 1 from jsonb_array_elements(case when jsonb_typeof(v_evidence -> 'prompts') = 'array'
                                                         then v_evidence -> 'prompts' else '[]' end) as e
                  where jsonb_typeof(e) <> 'string') then 'evidence.prompts must be an array of strings'
    when coalesce(jsonb_typeof(v_evidence -> 'fingerprint'), 'null') not in ('string', 'null')
      then 'evidence.fingerprint must be a string'
    when coalesce(jsonb_typeof(p_timeline), 'object') <> 'object' then 'p_timeline must be an object or null'
    when p_stt_seconds < 0 then 'p_stt_seconds must not be negative'
  end;
  if v_problem is not null then
    raise exception 'record_classification_run: %', v_problem using errcode = 'invalid_parameter_value';
  end if;

  select * into v_run from public.classification_runs where id = p_run_id for update;
  if not found then
    return null;
  elsif v_run.status = 'abandoned' then
    return jsonb_build_object('ok', false, 'reason', 'abandoned');
  elsif v_run.status = 'finished' then
    return jsonb_build_object('ok', true, 'cached', v_run.classification_id is not null,
                              'classification_id', v_run.classification_id);
  end if;

  if v_run.purpose = 'learn'
     and v_result in ('human', 'ivr_only', 'ivr_then_human')
     and (p_verdict ->> 'confidence')::numeric >= c_confident
     and (jsonb_array_length(v_actions) = 0) = (v_result = 'human')
  then
    update public.call_classifications set is_active = false where phone_number = v_run.phone and is_active;
    insert into public.call_classifications
      (phone_number, classification_type, ivr_actions, confidence, evidence, classification_expires_at)
    values
      (v_run.phone, v_result, v_actions, (p_verdict ->> 'confidence')::real,
       nullif(jsonb_strip_nulls(jsonb_build_object('prompts', v_evidence -> 'prompts',
                                                   'fingerprint', v_evidence -> 'fingerprint')), '{}'),
       now() + interval '30 days')
    returning id into v_class_id;
  end if;

  update public.classification_runs
     set status = 'finished',
         result = v_result,
         confidence = (p_verdict ->> 'confidence')::real,
         ivr_actions = v_actions,
         evidence = v_evidence,
         timeline = p_timeline,
         stt_seconds = p_stt_seconds,
         classification_id = v_class_id,
         finished_at = now()
   where id = v_run.id;
  return jsonb_build_object('ok', true, 'cached', v_class_id is not null, 'classification_id', v_class_id);
end
$$;

comment on function public.record_classification_run(uuid, jsonb, jsonb, numeric) is
  'Finishes a listening run with the listener''s verdict ({classification, confidence, ivr_actions, evidence}), timeline and STT seconds; a confident (>= 0.7) human / ivr_only / ivr_then_human learn result becomes the phone''s active classification for 30 days. {ok: true, cached, classification_id}, the same again when already finished, {ok: false, reason: abandoned}, or null (unknown run). A bad verdict: 22023, nothing written.';

-- invalidate_classification ---------------------------------------------------------------------------------------
-- A verify run heard another phone system than the cached one (another prompt, a menu where a person was expected,
-- a person where a menu was): the classification it checks is deactivated with p_reason (invalidated_at,
-- invalidated_reason), and the same call goes on as a learning run (purpose learn; the listener now learns), unless
-- another learning run of the phone is listening: then the run finishes (a verify run, with the reason).
-- Answers {ok: true, purpose: learn (listen on, learning) | verify (finished), classification_id (the invalidated
-- one)}, the same again for a run already invalidated (nothing changes); {ok: false, reason: not_verify (a learn
-- run) | not_listening (finished, abandoned, or over)}, nothing written; null for an unknown run. A blank reason: 22023.
create or replace function public.invalidate_classification(p_run_id uuid, p_reason text) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_reason text := nullif(btrim(p_reason), '');
  v_run public.classification_runs%rowtype;
begin
  if v_reason is null then
    raise exception 'invalidate_classification: p_reason is required' using errcode = 'invalid_parameter_value';
  end if;
  select * into v_run from public.classification_runs where id = p_run_id for update;
  if not found then
    return null;
  elsif v_run.invalidated_reason is not null then
    null;  -- already invalidated: answered as it stands
  elsif v_run.purpose <> 'verify' then
    return jsonb_build_object('ok', false, 'reason', 'not_verify');
  elsif v_run.status <> 'listening' or outcall_private.listening_is_over(v_run) then
    return jsonb_build_object('ok', false, 'reason', 'not_listening');
  else
    update public.call_classifications
       set is_active = false, invalidated_at = now(), invalidated_reason = v_reason
     where id = v_run.verified_classification_id and is_active;
    update public.classification_runs set invalidated_reason = v_reason where id = v_run.id;
    perform outcall_private.abandon_stale_runs(v_run.phone);
    begin
      update public.classification_runs set purpose = 'learn' where id = v_run.id;
    exception when unique_violation then
      -- another learning run of the phone listens: it learns, this one ends
      update public.classification_runs set status = 'finished', finished_at = now() where id = v_run.id;
    end;
    select * into v_run from public.classification_runs where id = v_run.id;
  end if;
  return jsonb_build_object('ok', true, 'purpose', v_run.purpose,
                            'classification_id', v_run.verified_classification_id);
end
$$;

comment on function public.invalidate_classification(uuid, text) is
  'A listening verify run heard a changed phone system: its classification is deactivated with the reason, and the run becomes a learn run (unless another learn run of the phone listens: then it finishes). {ok: true, purpose: learn | verify, classification_id}, the same again once invalidated; {ok: false, reason: not_verify | not_listening}; null (unknown run). A blank reason: 22023.';

-- ======== sql/schema/50_sweep.sql ========

-- 50: the sweep (the Worker's cron): VAPI reports that never came, live sessions without news, and dials that
-- lost their result.

-- sweep_stale_sessions ------------------------------------------------------------------------------------
-- Run by the Worker's cron. Two jobs, each up to p_limit sessions:
--  1. Twilio says completed, the row still calls on that attempt, and VAPI's report has not come within
--     reconcile_after: the row ends failed, last_error vapi_report_missing. Not retried: the conversation may
--     have happened, and a call is never doubled.
--  2. Live sessions without news for reconcile_after (the last change, or the last reconciliation): handed to
--     the Worker to ask Twilio (GET Calls/{sid}.json then apply_twilio_status; a session still dialing:
--     the phone's calls, then reconcile_dialing_session). reconciled_at is set on those returned, so a
--     concurrent sweep takes others (and SKIP LOCKED skips those another transaction is writing). A session
--     whose dial is being re-sent is touched by reserve_dial_slot and so not taken.
--  3. Waiting rows (pending, retry_pending) past their expires_at that no claim reached (not due, outside their
--     window, no free slot): expired, up to 1,000 a sweep, so the batches' counts are right without a claim.
-- And the learning runs no listener will finish (past the lease, or their call ended without a result) are
-- abandoned (outcall_private.abandon_stale_runs, 47_learning.sql), all of them: a claim of their phone would too.
-- (Locks: part 2 locks sessions without their rows, against the usual order, but SKIP LOCKED never waits, so
-- it cannot deadlock.)
create or replace function public.sweep_stale_sessions(p_limit int default 50) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_limit int := coalesce(p_limit, 50);
  v_stale_before timestamptz := now() - (outcall_private.policy()).reconcile_after;
  v_call public.pending_calls%rowtype;
  v_reports_missing int := 0;
  v_to_reconcile jsonb;
  v_runs_abandoned int;
  v_expired int;
begin
  if v_limit < 1 then
    raise exception 'sweep_stale_sessions: p_limit must be at least 1, got %', v_limit
      using errcode = 'invalid_parameter_value';
  end if;

  for v_call in
    select p.*
      from public.call_sessions as s
      join public.pending_calls as p on p.id = s.pending_call_id and p.attempts = s.attempt
     where s.status = 'completed'
       and s.report_received_at is null
       and s.ended_at < v_stale_before
       and p.call_status = 'calling'
     order by s.ended_at
     limit v_limit
       for update of p skip locked
  loop
    v_call := outcall_private.advance_pending_call(v_call, v_call.attempts, 'failed', 'vapi_report_missing');
    v_reports_missing := v_reports_missing + (v_call.call_status = 'failed')::int;
  end loop;

  with stale as (
    -- (outcall_private.live_sessions, spelt out: locking rows through a view needs UPDATE on it)
    select s.id
      from public.call_sessions as s
     where s.status in ('dialing', 'queued', 'initiated', 'ringing', 'in-progress')
       and greatest(s.updated_at, s.reconciled_at) < v_stale_before
     order by greatest(s.updated_at, s.reconciled_at), s.created_at
     limit v_limit
       for update skip locked
  ), taken as (
    update public.call_sessions as s
       set reconciled_at = now()
      from stale
     where s.id = stale.id
    returning s.*
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'session_id', t.id,
           'pending_call_id', t.pending_call_id,
           'attempt', t.attempt,
           'phone', p.phone,
           'call_sid', t.call_sid,
           'status', t.status,
           'created_at', t.created_at) order by t.created_at, t.id), '[]'::jsonb)
    into v_to_reconcile
    from taken as t
    join public.pending_calls as p on p.id = t.pending_call_id;

  with overdue as (
    select p.id
      from public.pending_calls as p
     where p.call_status in ('pending', 'retry_pending') and p.expires_at <= now()
     order by p.expires_at
     limit 1000
       for update skip locked
  )
  update public.pending_calls as p
     set call_status = 'expired', last_error = 'expired'
    from overdue
   where p.id = overdue.id;
  get diagnostics v_expired = row_count;

  v_runs_abandoned := outcall_private.abandon_stale_runs(null);

  return jsonb_build_object('reports_missing', v_reports_missing, 'to_reconcile', v_to_reconcile,
                            'runs_abandoned', v_runs_abandoned, 'expired', v_expired);
end
$$;

comment on function public.sweep_stale_sessions(int) is
  'Ends rows whose Twilio-completed call got no VAPI report within reconcile_after (failed, vapi_report_missing) and hands out live sessions without news for reconcile_after (reconciled_at set), abandons the learning runs no listener will finish, ends waiting rows past their expires_at (expired, up to 1,000). Returns {reports_missing, to_reconcile: [{session_id, pending_call_id, attempt, phone, call_sid, status, created_at}], runs_abandoned, expired}.';

-- reconcile_dialing_session -------------------------------------------------------------------------------
-- A session still dialing whose create request got no usable answer (the Worker lost it, or never sent it).
-- p_candidates are Twilio's calls to the session's phone, [{"sid", "status", "date_created", "duration"}].
-- The earliest one not already any session's, created no earlier than 5 s (clock skew) before the session, is
-- this session's call: adopted as record_dial_result and a status callback would (row calling, then its
-- status applied). With none, p_final (the sweep's default) says the request never reached Twilio: the
-- session is dial_failed ('no call at Twilio', 'not_dialled') and the row retried per the policy; without
-- p_final (the Worker checking before it re-sends) nothing changes and the outcome is 'none'.
-- (At most one session per phone is dialing at a time, see phone_is_dialing, so the match is unambiguous.)
-- Returns {session_id, outcome: adopted | not_dialled | none | unchanged, call_sid, call_status} or null.
create or replace function public.reconcile_dialing_session(
  p_session_id uuid,
  p_candidates jsonb,
  p_final boolean default true
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_pending_call_id uuid;
  v_call public.pending_calls%rowtype;
  v_session public.call_sessions%rowtype;
  v_pick jsonb;
  v_outcome text := 'unchanged';
begin
  if jsonb_typeof(p_candidates) is distinct from 'array'
     or exists (select 1 from jsonb_array_elements(p_candidates) as c
                 where jsonb_typeof(c) <> 'object'
                    or nullif(btrim(c ->> 'sid'), '') is null
                    or c ->> 'status' is null
                    or c ->> 'date_created' is null) then
    raise exception 'reconcile_dialing_session: p_candidates must be an array of {sid, status, date_created, duration}'
      using errcode = 'invalid_parameter_value';
  end if;

  select pending_call_id into v_pending_call_id from public.call_sessions where id = p_session_id;
  if not found then
    return null;
  end if;
  select * into v_call from public.pending_calls where id = v_pending_call_id for update;
  select * into v_session from public.call_sessions where id = p_session_id for update;

  if v_session.status = 'dialing' and v_session.call_sid is null then
    select c into v_pick
      from jsonb_array_elements(p_candidates) as c
     where (c ->> 'date_created')::timestamptz >= v_session.created_at - interval '5 seconds'
       and not exists (select 1 from public.call_sessions where call_sid = c ->> 'sid')
     order by (c ->> 'date_created')::timestamptz, c ->> 'sid'
     limit 1;

    if v_pick is not null then
      update public.call_sessions
         set call_sid = v_pick ->> 'sid', dialed_at = (v_pick ->> 'date_created')::timestamptz, status = 'queued'
       where id = v_session.id;
      v_call := outcall_private.advance_pending_call(v_call, v_session.attempt, 'calling');
      perform public.apply_twilio_status(v_pick ->> 'sid', v_pick ->> 'status', null, null,
                                         (v_pick ->> 'duration')::int);
      v_outcome := 'adopted';
    elsif coalesce(p_final, true) then
      v_call := outcall_private.fail_dial(v_call, v_session, 'no call at Twilio', 'not_dialled', true);
      v_outcome := 'not_dialled';
    else
      v_outcome := 'none';
    end if;
    select * into v_call from public.pending_calls where id = v_call.id;
    select * into v_session from public.call_sessions where id = v_session.id;
  end if;

  return jsonb_build_object(
    'session_id', v_session.id,
    'outcome', v_outcome,
    'call_sid', v_session.call_sid,
    'call_status', v_call.call_status);
end
$$;

comment on function public.reconcile_dialing_session(uuid, jsonb, boolean) is
  'For a session still dialing: adopts the Twilio call among p_candidates ([{sid, status, date_created, duration}]) that belongs to it; with none and p_final (default), records that the dial never reached Twilio (dial_failed, row retried), without p_final changes nothing. Returns {session_id, outcome: adopted | not_dialled | none | unchanged, call_sid, call_status} or null.';

-- ======== sql/schema/60_batches.sql ========

-- 60: batches: many rows created, followed, cancelled and retried as one (the Worker's /api/v1/batches).
-- Contract: docs/architecture.md ("SQL functions"). The rules of 20_helpers.sql hold; what batches add:
--   * public.batches (10_tables.sql): one row per batch with its counters (rows per status, durations) and
--     derived state (started_at, completed_at, status), kept by statement-level triggers on pending_calls, so a
--     dashboard (Realtime on public.batches) or a poll (batch_progress_of) reads one row, never counts 10,000;
--   * a row's own calling window (the batch's schedule), intersected with the policy's (row_window_opening,
--     20_helpers.sql);
--   * cancelling a batch (no row of it is ever dialled again) and requeueing its failed rows with a fresh budget
--     (the one deliberate way out of a terminal status);
--   * one webhook per batch insert instead of one per row (70_webhook.sql).
--
-- Locks. Every writer of pending_calls locks its rows first and the batches rows last: the counter trigger
-- runs at the end of each statement and updates the batches it touched in ascending id order. cancel_batch
-- and retry_failed_batch keep that order too (rows first, batch row last); they serialize with each other on
-- a transaction-level advisory lock per batch (outcall_private.lock_batch_changes), taken before anything else
-- and by nothing else, so it cannot take part in a deadlock.

-- A batch's state ---------------------------------------------------------------------------------------------

-- A batch's status from its instants (call batches here, SMS batches in 65_sms.sql).
create or replace function outcall_private.batch_status_of(
  p_cancelled_at timestamptz, p_completed_at timestamptz, p_started_at timestamptz
) returns text
language sql immutable
set search_path = ''
as $$
  select case
    when p_cancelled_at is not null then 'cancelled'
    when p_completed_at is not null then 'completed'
    when p_started_at is not null then 'in_progress'
    else 'queued'
  end
$$;

-- What follows from the counters, whoever writes the row: completed_at once every row is terminal (and null
-- again when retry_failed_batch requeues some), and the status.
create or replace function outcall_private.derive_batch_state() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  NEW.completed_at := case
    when NEW.total > 0 and NEW.completed + NEW.failed + NEW.cancelled + NEW.suppressed + NEW.expired = NEW.total
      then coalesce(NEW.completed_at, pg_catalog.now())
  end;
  NEW.status := outcall_private.batch_status_of(NEW.cancelled_at, NEW.completed_at, NEW.started_at);
  return NEW;
end
$$;

create trigger batches_derive_state
  before insert or update on public.batches
  for each row execute function outcall_private.derive_batch_state();

-- The counters ------------------------------------------------------------------------------------------------
-- (cost_total, the attempts' spend, is kept from call_sessions: 25_cost.sql.)
-- After each statement on pending_calls, the rows it inserted, deleted or changed (call_status, duration_seconds
-- or batch_id; other updates, such as a claim deferring next_attempt_at, take no lock on a batch) are
-- summed per batch as deltas (-1 as the row was, +1 as it is) and added to the batches rows, in ascending id
-- order so that concurrent statements lock batches in one order. started_at is set when a row enters
-- dispatching (the first claim); completed_at and status follow in batches_derive_state.
-- Transition tables exist per event (new_rows on INSERT, old_rows on DELETE, both on UPDATE), so the rows are
-- read by a query chosen per event (EXECUTE sees the transition tables as static SQL would).
-- SECURITY DEFINER: the counters are right whoever writes pending_calls.
create or replace function outcall_private.count_batch_rows() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_rows text := case TG_OP
    when 'INSERT' then $q$
      select n.batch_id, 1 as sign, n.call_status, n.duration_seconds,
             n.call_status = 'dispatching' as dialled
        from new_rows as n$q$
    when 'DELETE' then $q$
      select o.batch_id, -1 as sign, o.call_status, o.duration_seconds, false as dialled
        from old_rows as o$q$
    else $q$
      select c.batch_id, c.sign, c.call_status, c.duration_seconds, c.dialled
        from old_rows as o
        join new_rows as n on n.id = o.id
       cross join lateral (values
               (o.batch_id, -1, o.call_status, o.duration_seconds, false),
               (n.batch_id, 1, n.call_status, n.duration_seconds,
                n.call_status = 'dispatching' and o.call_status is distinct from 'dispatching'))
             as c (batch_id, sign, call_status, duration_seconds, dialled)
       where (o.call_status, o.duration_seconds, o.batch_id)
             is distinct from (n.call_status, n.duration_seconds, n.batch_id)$q$
  end;
  d record;
begin
  for d in execute pg_catalog.format($q$
      select r.batch_id,
             sum(r.sign)::int as total,
             sum(case when r.call_status = 'pending' then r.sign else 0 end)::int as queued,
             sum(case when r.call_status = 'dispatching' then r.sign else 0 end)::int as dialling,
             sum(case when r.call_status = 'calling' then r.sign else 0 end)::int as in_progress,
             sum(case when r.call_status = 'completed' then r.sign else 0 end)::int as completed,
             sum(case when r.call_status = 'retry_pending' then r.sign else 0 end)::int as retrying,
             sum(case when r.call_status = 'failed' then r.sign else 0 end)::int as failed,
             sum(case when r.call_status = 'cancelled' then r.sign else 0 end)::int as cancelled,
             sum(case when r.call_status = 'suppressed' then r.sign else 0 end)::int as suppressed,
             sum(case when r.call_status = 'expired' then r.sign else 0 end)::int as expired,
             coalesce(sum(r.sign * r.duration_seconds), 0) as duration_seconds,
             sum(case when r.duration_seconds is not null then r.sign else 0 end)::int as with_duration,
             bool_or(r.dialled) as dialled
        from (%s) as r
       where r.batch_id is not null
       group by r.batch_id
       order by r.batch_id$q$, v_rows)
  loop
    update public.batches
       set total = total + d.total,
           queued = queued + d.queued,
           dialling = dialling + d.dialling,
           in_progress = in_progress + d.in_progress,
           completed = completed + d.completed,
           retrying = retrying + d.retrying,
           failed = failed + d.failed,
           cancelled = cancelled + d.cancelled,
           suppressed = suppressed + d.suppressed,
           expired = expired + d.expired,
           duration_seconds_total = duration_seconds_total + d.duration_seconds,
           calls_with_duration = calls_with_duration + d.with_duration,
           started_at = case when d.dialled then coalesce(started_at, pg_catalog.now()) else started_at end
     where id = d.batch_id;
  end loop;
  return null;
end
$$;

create trigger pending_calls_batch_counts_insert
  after insert on public.pending_calls
  referencing new table as new_rows
  for each statement execute function outcall_private.count_batch_rows();
create trigger pending_calls_batch_counts_update
  after update on public.pending_calls
  referencing old table as old_rows new table as new_rows
  for each statement execute function outcall_private.count_batch_rows();
create trigger pending_calls_batch_counts_delete
  after delete on public.pending_calls
  referencing old table as old_rows
  for each statement execute function outcall_private.count_batch_rows();

-- TRUNCATE removes rows without row events, so without transition tables: every batch is then empty.
create or replace function outcall_private.empty_batches() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.batches
     set total = 0, queued = 0, dialling = 0, in_progress = 0, completed = 0, retrying = 0, failed = 0, cancelled = 0,
         suppressed = 0, expired = 0,
         duration_seconds_total = 0, calls_with_duration = 0, cost_total = 0
   where total <> 0 or calls_with_duration <> 0 or duration_seconds_total <> 0 or cost_total <> 0;
  return null;
end
$$;

create trigger pending_calls_batch_counts_truncate
  after truncate on public.pending_calls
  for each statement execute function outcall_private.empty_batches();

-- A cancelled batch never redials ---------------------------------------------------------------------------
-- A row of a cancelled batch that would (again) wait for a dial, pending or retry_pending, ends cancelled
-- instead, whoever moves it (a retryable failure of a call that was live when the batch was cancelled, say).
-- So the batch still completes. Named to run before pending_calls_terminal_guard, which then checks the
-- final status. SECURITY DEFINER: it reads the batch whoever writes. Arguments: the batches table, the row's
-- status column and error column (also sms_messages of sms_batches, 65_sms.sql).
create or replace function outcall_private.stop_cancelled_batch_row() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cancelled boolean;
begin
  execute pg_catalog.format('select exists (select 1 from %s where id = $1 and cancelled_at is not null)',
                            TG_ARGV[0]::regclass)
     into v_cancelled
    using NEW.batch_id;
  if v_cancelled then
    NEW := pg_catalog.jsonb_populate_record(NEW, pg_catalog.jsonb_build_object(TG_ARGV[1], 'cancelled',
                                                                                TG_ARGV[2], 'batch_cancelled'));
  end if;
  return NEW;
end
$$;

create trigger pending_calls_batch_cancelled
  before update on public.pending_calls
  for each row
  when (NEW.batch_id is not null and NEW.call_status in ('pending', 'retry_pending'))
  execute function outcall_private.stop_cancelled_batch_row('public.batches', 'call_status', 'last_error');

-- Helpers of the functions -----------------------------------------------------------------------------------

-- A batch_progress row as the functions answer it.
create or replace function outcall_private.batch_progress_json(p public.batch_progress) returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'batch_id', p.batch_id,
    'name', p.name,
    'status', p.status,
    'total', p.total,
    'counts', pg_catalog.jsonb_build_object(
      'queued', p.queued,
      'dialling', p.dialling,
      'in_progress', p.in_progress,
      'completed', p.completed,
      'retrying', p.retrying,
      'failed', p.failed,
      'cancelled', p.cancelled,
      'suppressed', p.suppressed,
      'expired', p.expired),
    'success_rate', p.success_rate,
    'average_duration_seconds', p.average_duration_seconds,
    'total_cost', p.total_cost,
    'created_at', p.created_at,
    'started_at', p.started_at,
    'completed_at', p.completed_at,
    'cancelled_at', p.cancelled_at,
    'expires_at', p.expires_at,
    'updated_at', p.updated_at,
    'paused', p.paused_at is not null,
    'paused_at', p.paused_at,
    'max_concurrency', p.max_concurrency,
    'calls_per_second', p.calls_per_second,
    'updated_at', p.updated_at,
    'cost_estimate', p.cost_estimate,
    'cost_cap', p.cost_cap,
    -- Why nothing more is dialled, while rows wait: a spend cap (25_cost.sql).
    'held', case when p.queued + p.retrying > 0 then outcall_private.cost_hold(p.batch_id) end)
$$;

-- A page request: limit 1..1000, offset >= 0, else invalid_parameter_value (22023).
create or replace function outcall_private.check_page(p_function text, p_limit int, p_offset int) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception '%: p_limit must be 1 to 1000, got %', p_function, coalesce(p_limit::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_offset is null or p_offset < 0 then
    raise exception '%: p_offset must be 0 or more, got %', p_function, coalesce(p_offset::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
end
$$;

-- cancel_batch and retry_failed_batch of one batch, one at a time (see the locks, at the top).
create or replace function outcall_private.lock_batch_changes(p_batch_id uuid) returns void
language sql volatile
set search_path = ''
as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('outcall_private.batches'),
                                          pg_catalog.hashtext(p_batch_id::text))
$$;

-- An existing batch's answer to a request with its idempotency key: `replayed` with what the first request was
-- answered (the same hash), else `conflict`. For call batches and SMS batches alike.
create or replace function outcall_private.idempotent_answer(p_batch_id uuid, p_stored_hash text, p_request_hash text,
                                                             p_first_answer jsonb)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select case
    when p_stored_hash is not distinct from p_request_hash then
      pg_catalog.jsonb_build_object('outcome', 'replayed', 'batch_id', p_batch_id) || p_first_answer
    else pg_catalog.jsonb_build_object('outcome', 'conflict', 'batch_id', p_batch_id)
  end
$$;

-- A batch created without a name is named after its creation time (created_at, the transaction's now()), in UTC
-- to the minute: 'Batch 2026-12-02 14:05 UTC'.
create or replace function outcall_private.default_batch_name(p_at timestamptz) returns text
language sql stable
set search_path = ''
as $$
  select 'Batch ' || pg_catalog.to_char(p_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC'
$$;

comment on function outcall_private.default_batch_name(timestamptz) is
  'The name of a batch created without one: ''Batch YYYY-MM-DD HH24:MI UTC'' of its creation time.';

-- Smart scheduling of a new batch's rows (smart_attempt_at, 20_helpers.sql): each clinic's rows start at its best
-- hour within reach of the earliest allowed instant (not_before or now, in the batch's window). A clinic's rows share
-- that instant and window, so it is decided once per clinic (targets and copies of p_copies, null time zones taking
-- the column's default), before the batch's expiry (p_expires_at, null: none): {"[clinic_name, clinic_timezone]": instant} for the clinics with a better hour, null when
-- none has one or smart scheduling is off. Rows without one start as before: at not_before or now.
create or replace function outcall_private.batch_smart_starts(
  p_targets jsonb, p_copies uuid[], p_not_before timestamptz, p_days int[], p_start time, p_end time,
  p_expires_at timestamptz
) returns jsonb
language sql volatile
set search_path = ''
as $$
  select pg_catalog.jsonb_object_agg(s.clinic, s.at)
    from (select pg_catalog.jsonb_build_array(k.clinic_name, k.clinic_timezone)::text as clinic,
                 outcall_private.smart_attempt_at(
                   k.call, outcall_private.row_window_opening(k.call, coalesce(p_not_before, pg_catalog.now())),
                   p_expires_at) as at
            from (select c.clinic_name, c.clinic_timezone,
                         pg_catalog.jsonb_populate_record(null::public.pending_calls, pg_catalog.jsonb_build_object(
                           'clinic_name', c.clinic_name, 'clinic_timezone', c.clinic_timezone,
                           'window_days', p_days, 'window_start', p_start, 'window_end', p_end)) as call
                    from (select e ->> 'clinic_name' as clinic_name,
                                 coalesce(e ->> 'clinic_timezone', 'America/New_York') as clinic_timezone
                            from pg_catalog.jsonb_array_elements(p_targets) as e
                          union
                          select o.clinic_name, o.clinic_timezone from public.pending_calls as o where o.id = any (p_copies))
                         as c
                   where c.clinic_name is not null and (outcall_private.policy()).smart_scheduling) as k) as s
   where s.at is not null
$$;

-- create_batch ---------------------------------------------------------------------------------------------------
-- The Worker has validated the request's shape, phones, duplicates and size; this checks what only the database
-- knows (time-zone names, the policy's window, which ids exist) and writes everything or nothing, set-based:
-- one batches row, one pending_calls row per target and a copy of each existing pending_call_ids row, each
-- clinic's rows starting at its best hour when smart scheduling finds one (batch_smart_starts).
create or replace function public.create_batch(p_request jsonb) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_key text;
  v_hash text;
  v_window jsonb;
  v_days int[];
  v_start time;
  v_end time;
  v_not_before timestamptz;
  v_expires_at timestamptz;
  v_targets jsonb;
  v_ids uuid[];
  v_found uuid[];
  v_rejected jsonb;
  v_errors jsonb;
  v_batch public.batches;
  v_targets_created int;
  v_copies_created int;
  v_estimate jsonb;
  v_starts jsonb;
begin
  if pg_catalog.jsonb_typeof(p_request) is distinct from 'object' then
    raise exception 'create_batch: p_request must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  v_key := p_request ->> 'idempotency_key';
  v_hash := p_request ->> 'request_hash';
  v_not_before := (p_request ->> 'not_before')::timestamptz;
  v_expires_at := (p_request ->> 'expires_at')::timestamptz;
  v_window := nullif(p_request -> 'window', 'null'::jsonb);
  v_targets := coalesce(nullif(p_request -> 'targets', 'null'::jsonb), '[]'::jsonb);
  v_ids := array(select e::uuid
                   from jsonb_array_elements_text(coalesce(nullif(p_request -> 'pending_call_ids', 'null'::jsonb),
                                                           '[]'::jsonb)) as e);
  if v_window is not null then
    v_days := array(select d::int from jsonb_array_elements_text(v_window -> 'days') as d);
    v_start := (v_window ->> 'start')::time;
    v_end := (v_window ->> 'end')::time;
  end if;

  -- The key is known: the same request again (replayed) or another one (conflict); nothing is written.
  if v_key is not null then
    select * into v_batch from public.batches where idempotency_key = v_key;
    if found then
      return outcall_private.idempotent_answer(v_batch.id, v_batch.request_hash, v_hash,
             pg_catalog.jsonb_build_object('accepted', v_batch.total, 'rejected', v_batch.rejected,
                                           'cost_estimate', v_batch.cost_estimate));
    end if;
  end if;

  -- What only the database knows. Time zones: each distinct name checked once (materialized: the check must not
  -- be pushed down to every target).
  with zones as materialized (
    select distinct e ->> 'clinic_timezone' as tz from jsonb_array_elements(v_targets) as e
  ), invalid as (
    select z.tz from zones as z where z.tz is not null and not outcall_private.is_valid_timezone(z.tz)
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'index', x.n - 1, 'pending_call_id', null, 'field', 'clinic_timezone', 'code', 'invalid_timezone',
           'message', format('%s is not a time zone of the tz database', x.e ->> 'clinic_timezone'),
           'value', x.e -> 'clinic_timezone') order by x.n),
         '[]'::jsonb)
    into v_errors
    from jsonb_array_elements(v_targets) with ordinality as x(e, n)
   where exists (select 1 from invalid) and x.e ->> 'clinic_timezone' in (select i.tz from invalid as i);
  -- Both windows are on the clinic's wall clock: they meet if they share a day and their hours overlap.
  if v_days is not null
     and not (v_days && v_policy.window_days
              and greatest(v_start, v_policy.window_start) < least(v_end, v_policy.window_end)) then
    v_errors := v_errors || jsonb_build_object(
      'index', null, 'pending_call_id', null, 'field', 'schedule.window', 'code', 'window_outside_policy',
      'message', format('the window never meets the calling window of the policy (days %s, %s to %s)',
                        v_policy.window_days, to_char(v_policy.window_start, 'HH24:MI'),
                        to_char(v_policy.window_end, 'HH24:MI')),
      'value', v_window);
  end if;
  -- An expiry already past, the batch's or a target's: nothing would ever be dialled (the database's clock decides).
  if v_expires_at <= now() then
    v_errors := v_errors || jsonb_build_object(
      'index', null, 'pending_call_id', null, 'field', 'expiresAt', 'code', 'expires_in_past',
      'message', 'expiresAt has passed already', 'value', p_request -> 'expires_at');
  end if;
  select v_errors || coalesce(jsonb_agg(jsonb_build_object(
           'index', x.n - 1, 'pending_call_id', null, 'field', 'expires_at', 'code', 'expires_in_past',
           'message', 'expires_at has passed already', 'value', x.e -> 'expires_at') order by x.n), '[]'::jsonb)
    into v_errors
    from jsonb_array_elements(v_targets) with ordinality as x(e, n)
   where (x.e ->> 'expires_at')::timestamptz <= now();
  -- The originals of pending_call_ids, kept from being deleted until the copies are made.
  v_found := array(select p.id from public.pending_calls as p where p.id = any (v_ids) order by p.id for key share);
  if jsonb_array_length(v_targets) = 0 and cardinality(v_found) = 0 then
    v_errors := v_errors || jsonb_build_object(
      'index', null, 'pending_call_id', null, 'field', 'targets', 'code', 'nothing_to_call',
      'message', 'no targets, and no pending call has any of the pending_call_ids');
  end if;
  if jsonb_array_length(v_errors) > 0 then
    return jsonb_build_object('outcome', 'invalid', 'errors', v_errors);
  end if;

  select coalesce(jsonb_agg(jsonb_build_object('pendingCallId', i.id, 'code', 'not_found',
                                               'message', 'no pending call has this id') order by i.n),
                  '[]'::jsonb)
    into v_rejected
    from unnest(v_ids) with ordinality as i(id, n)
   where not (i.id = any (v_found));

  v_estimate := outcall_private.batch_cost_estimate(array(
    select e ->> 'phone' from jsonb_array_elements(v_targets) as e
    union all
    select p.phone from public.pending_calls as p where p.id = any (v_found)));

  -- A concurrent request with the same key waits here for the first to end; if that one committed, this one
  -- is its replay (or a conflict).
  insert into public.batches (name, metadata, idempotency_key, request_hash, not_before, window_days, window_start,
                              window_end, rejected, expires_at, max_concurrency, calls_per_second, cost_cap, cost_estimate)
  values (coalesce(p_request ->> 'name', outcall_private.default_batch_name(pg_catalog.now())),
          coalesce(nullif(p_request -> 'metadata', 'null'::jsonb), '{}'::jsonb), v_key, v_hash,
          v_not_before, v_days, v_start, v_end, v_rejected, v_expires_at,
          (p_request ->> 'max_concurrency')::int, (p_request ->> 'calls_per_second')::numeric,
          (p_request ->> 'cost_cap')::numeric, v_estimate)
  on conflict (idempotency_key) do nothing
  returning * into v_batch;
  if not found then
    select * into v_batch from public.batches where idempotency_key = v_key;
    return outcall_private.idempotent_answer(v_batch.id, v_batch.request_hash, v_hash,
             pg_catalog.jsonb_build_object('accepted', v_batch.total, 'rejected', v_batch.rejected,
                                           'cost_estimate', v_batch.cost_estimate));
  end if;

  v_starts := outcall_private.batch_smart_starts(v_targets, v_found, v_not_before, v_days, v_start, v_end,
                                                v_expires_at);

  -- The targets; an absent (or null) field takes the column's default (public.pending_calls, 10_tables.sql).
  insert into public.pending_calls (batch_id, employee_name, phone, exam_id, employee_dob, client_name, clinic_name,
                                    clinic_timezone, appointment_time, procedures, instructions, variables,
                                    max_attempts, prompt, first_message, next_attempt_at,
                                    window_days, window_start, window_end, expires_at)
  select v_batch.id, t.employee_name, t.phone, t.exam_id, t.employee_dob, t.client_name, t.clinic_name,
         coalesce(t.clinic_timezone, 'America/New_York'), t.appointment_time, coalesce(t.procedures, '{}'),
         coalesce(t.instructions, '{}'::jsonb), coalesce(t.variables, '{}'::jsonb), coalesce(t.max_attempts, 3),
         t.prompt, t.first_message,
         -- (a clinic's best hour only if it comes before the target's own, earlier, expiry)
         coalesce(case when smart.at < coalesce(least(t.expires_at, v_expires_at), 'infinity') then smart.at end,
                  v_not_before, now()),
         v_days, v_start, v_end, least(t.expires_at, v_expires_at)
    from jsonb_to_recordset(v_targets) as t(employee_name text, phone text, exam_id text, employee_dob date,
                                            client_name text, clinic_name text, clinic_timezone text,
                                            appointment_time timestamptz, procedures text[], instructions jsonb,
                                            variables jsonb, max_attempts int, prompt text, first_message text,
                                            expires_at timestamptz)
   cross join lateral (select case when v_starts is not null  -- (no look-up per row when no clinic has a better hour)
                                then (v_starts ->> jsonb_build_array(t.clinic_name,
                                                                     coalesce(t.clinic_timezone, 'America/New_York'))::text)
                                       ::timestamptz end as at) as smart;
  get diagnostics v_targets_created = row_count;

  -- The copies: the original's call fields and the budget of its round, in this batch, on its schedule.
  insert into public.pending_calls (batch_id, redial_of, employee_name, phone, exam_id, employee_dob, client_name,
                                    clinic_name, clinic_timezone, appointment_time, procedures, instructions,
                                    variables, prompt, first_message, max_attempts, next_attempt_at,
                                    window_days, window_start, window_end, expires_at)
  select v_batch.id, o.id, o.employee_name, o.phone, o.exam_id, o.employee_dob, o.client_name,
         o.clinic_name, o.clinic_timezone, o.appointment_time, o.procedures, o.instructions,
         o.variables, o.prompt, o.first_message, o.max_attempts - o.attempt_offset,
         coalesce(case when v_starts is not null
                    then (v_starts ->> jsonb_build_array(o.clinic_name, o.clinic_timezone)::text)::timestamptz end,
                  v_not_before, now()),
         v_days, v_start, v_end, v_expires_at
    from public.pending_calls as o
   where o.id = any (v_found);
  get diagnostics v_copies_created = row_count;

  return jsonb_build_object('outcome', 'created', 'batch_id', v_batch.id,
                            'accepted', v_targets_created + v_copies_created, 'rejected', v_rejected,
                            'cost_estimate', v_estimate);
end
$$;

comment on function public.create_batch(jsonb) is
  'Creates a batch from {name (null or absent: outcall_private.default_batch_name of its created_at), metadata, idempotency_key, request_hash, not_before, expires_at, window: {days, start, end}, max_concurrency, calls_per_second (its own limits; null: none), cost_cap (USD), targets: [pending_calls columns; expires_at: least(it, the batch''s)], pending_call_ids (copies expire with the batch)}: all or nothing. Returns {outcome: created, batch_id, accepted, rejected: [{pendingCallId, code: not_found, message}], cost_estimate (outcall_private.batch_cost_estimate)} | {outcome: replayed, batch_id, accepted, rejected, cost_estimate} | {outcome: conflict, batch_id} | {outcome: invalid, errors: [{index, pending_call_id, field, code: invalid_timezone | window_outside_policy | nothing_to_call | expires_in_past, message, value}]}.';

-- estimate_batch_cost ----------------------------------------------------------------------------------------------
-- What create_batch would estimate, writing nothing: the request is created inside a subtransaction that is then
-- rolled back (a raise caught below), so the estimate is the very one create would store, rows copied from
-- pending_call_ids included, and every check create makes is made. The idempotency key is ignored.
create or replace function public.estimate_batch_cost(p_request jsonb) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_answer jsonb;
begin
  begin
    v_answer := public.create_batch(p_request - 'idempotency_key');
    raise exception 'estimate_batch_cost: rolled back' using errcode = 'OC001', detail = v_answer::text;
  exception when sqlstate 'OC001' then
    get stacked diagnostics v_answer = pg_exception_detail;
  end;
  if v_answer ->> 'outcome' = 'created' then
    return jsonb_build_object('outcome', 'estimated', 'accepted', v_answer -> 'accepted',
                              'rejected', v_answer -> 'rejected', 'cost_estimate', v_answer -> 'cost_estimate');
  end if;
  return v_answer;
end
$$;

comment on function public.estimate_batch_cost(jsonb) is
  'The cost estimate create_batch would make of the same request, nothing written: {outcome: estimated, accepted, rejected, cost_estimate} | create_batch''s {outcome: invalid, errors}.';

-- batch_status ---------------------------------------------------------------------------------------------------
create or replace function public.batch_status(p_batch_id uuid, p_limit int default 100, p_offset int default 0)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_progress public.batch_progress;
begin
  perform outcall_private.check_page('batch_status', p_limit, p_offset);
  select * into v_progress from public.batch_progress where batch_id = p_batch_id;
  if not found then
    return null;
  end if;
  return outcall_private.batch_progress_json(v_progress) || jsonb_build_object(
    'metadata', (select b.metadata from public.batches as b where b.id = p_batch_id),
    'results', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'pending_call_id', r.id,
               'phone', r.phone,
               'name', r.employee_name,
               'status', r.call_status,
               'attempts', r.attempts,
               'outcome', coalesce(r.ended_reason, r.last_error),
               'summary', r.summary,
               'success_evaluation', r.success_evaluation,
               'duration_seconds', r.duration_seconds,
               'cost', r.cost,
               'updated_at', r.updated_at) order by r.created_at, r.id), '[]'::jsonb)
        from (select * from public.pending_calls as p
               where p.batch_id = p_batch_id
               order by p.created_at, p.id
               limit p_limit offset p_offset) as r),
    'page', jsonb_build_object('limit', p_limit, 'offset', p_offset, 'total', v_progress.total));
end
$$;

comment on function public.batch_status(uuid, int, int) is
  'A batch''s progress and one page of its rows (by created_at, id): {batch_id, name, status, total, counts: {queued, dialling, in_progress, completed, retrying, failed, cancelled, suppressed, expired}, success_rate, average_duration_seconds, total_cost (the attempts'' spend: VAPI''s cost + Twilio''s price), created_at, started_at, completed_at, cancelled_at, expires_at, updated_at, paused, paused_at, max_concurrency, calls_per_second, cost_estimate, cost_cap, held ({reason: batch_cost_cap | daily_cost_cap, spent, cap} or null), metadata, results: [{pending_call_id, phone, name, status, attempts, outcome, summary, success_evaluation, duration_seconds, cost, updated_at}], page: {limit, offset, total}} or null. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- batch_progress_of -----------------------------------------------------------------------------------------------
create or replace function public.batch_progress_of(p_batch_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select outcall_private.batch_progress_json(p) from public.batch_progress as p where p.batch_id = p_batch_id
$$;

comment on function public.batch_progress_of(uuid) is
  'A batch''s progress, for frequent polling (one row read): {batch_id, name, status, total, counts: {queued, dialling, in_progress, completed, retrying, failed, cancelled, suppressed, expired}, success_rate, average_duration_seconds, total_cost (the attempts'' spend: VAPI''s cost + Twilio''s price), created_at, started_at, completed_at, cancelled_at, expires_at, updated_at, paused, paused_at, max_concurrency, calls_per_second, cost_estimate, cost_cap, held ({reason: batch_cost_cap | daily_cost_cap, spent, cap} or null)} or null.';

-- list_batches ----------------------------------------------------------------------------------------------------
create or replace function public.list_batches(p_limit int default 50, p_offset int default 0) returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  perform outcall_private.check_page('list_batches', p_limit, p_offset);
  return jsonb_build_object(
    'batches', (
      select coalesce(jsonb_agg(outcall_private.batch_progress_json(p) order by p.created_at desc, p.batch_id desc),
                      '[]'::jsonb)
        from (select * from public.batch_progress as b
               order by b.created_at desc, b.batch_id desc
               limit p_limit offset p_offset) as p),
    'page', jsonb_build_object('limit', p_limit, 'offset', p_offset,
                               'total', (select count(*) from public.batches)));
end
$$;

comment on function public.list_batches(int, int) is
  'One page of batches, newest first: {batches: [progress as batch_progress_of], page: {limit, offset, total}}. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- batch_transcripts -----------------------------------------------------------------------------------------------
create or replace function public.batch_transcripts(p_batch_id uuid, p_limit int default 100, p_offset int default 0)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  perform outcall_private.check_page('batch_transcripts', p_limit, p_offset);
  if not exists (select 1 from public.batches where id = p_batch_id) then
    return null;
  end if;
  return jsonb_build_object(
    'batch_id', p_batch_id,
    'transcripts', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'pending_call_id', r.id,
               'phone', r.phone,
               'name', r.employee_name,
               'status', r.call_status,
               'attempts', r.attempts,
               'transcript', r.transcript,
               'summary', r.summary,
               'ended_reason', r.ended_reason,
               'duration_seconds', r.duration_seconds) order by r.created_at, r.id), '[]'::jsonb)
        from (select * from public.pending_calls as p
               where p.batch_id = p_batch_id and p.transcript is not null
               order by p.created_at, p.id
               limit p_limit offset p_offset) as r),
    'page', jsonb_build_object('limit', p_limit, 'offset', p_offset,
                               'total', (select count(*) from public.pending_calls
                                          where batch_id = p_batch_id and transcript is not null)));
end
$$;

comment on function public.batch_transcripts(uuid, int, int) is
  'One page of a batch''s rows that have a transcript (by created_at, id): {batch_id, transcripts: [{pending_call_id, phone, name, status, attempts, transcript, summary, ended_reason, duration_seconds}], page: {limit, offset, total}} or null. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- cancel_batch ----------------------------------------------------------------------------------------------------
-- Every row of the batch that may still move is locked first (in id order, rows before the batch row, as every
-- writer does): a claim or a status change in flight ends first, and none starts until this commits. So no row
-- can slip into pending/retry_pending unseen: the waiting rows are cancelled here, and a live row's later
-- retryable failure is cancelled by pending_calls_batch_cancelled, which then sees cancelled_at.
create or replace function public.cancel_batch(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.batches;
  v_cancelled int := 0;
begin
  if not exists (select 1 from public.batches where id = p_batch_id) then
    return null;
  end if;
  perform outcall_private.lock_batch_changes(p_batch_id);
  perform 1 from public.pending_calls
    where batch_id = p_batch_id and call_status in ('pending', 'dispatching', 'calling', 'retry_pending')
    order by id
    for no key update;

  select * into v_batch from public.batches where id = p_batch_id;
  -- A completed batch stays completed.
  if v_batch.cancelled_at is null and v_batch.completed_at is null then
    update public.batches set cancelled_at = now() where id = p_batch_id returning * into v_batch;
  end if;
  if v_batch.cancelled_at is not null then
    update public.pending_calls
       set call_status = 'cancelled', last_error = 'batch_cancelled'
     where batch_id = p_batch_id and call_status in ('pending', 'retry_pending');
    get diagnostics v_cancelled = row_count;
  end if;

  return jsonb_build_object(
    'batch_id', p_batch_id,
    'status', (select status from public.batches where id = p_batch_id),
    'cancelled', v_cancelled,
    'live', (select count(*) from public.pending_calls
              where batch_id = p_batch_id and call_status in ('dispatching', 'calling')));
end
$$;

comment on function public.cancel_batch(uuid) is
  'Cancels a batch (idempotent): cancelled_at set, its pending and retry_pending rows cancelled (last_error batch_cancelled); rows dispatching or calling finish, and are never retried. A completed batch stays as it is. Returns {batch_id, status, cancelled: rows stopped by this call, live: rows still dispatching or calling} or null.';

-- retry_failed_batch ----------------------------------------------------------------------------------------------
-- The failed rows of the batch back to pending, each with a fresh budget (the budget of its round again):
-- attempt numbers go on (sessions 4, 5, ... after 3), the retry delays start over. The ordinary claims dial them.
create or replace function public.retry_failed_batch(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.batches;
  v_requeued int;
begin
  if not exists (select 1 from public.batches where id = p_batch_id) then
    return null;
  end if;
  perform outcall_private.lock_batch_changes(p_batch_id);
  select * into v_batch from public.batches where id = p_batch_id;
  if v_batch.cancelled_at is not null then
    return jsonb_build_object('batch_id', p_batch_id, 'error', 'batch_cancelled');
  end if;

  -- The one deliberate way out of a terminal status (see guard_terminal_status), for this statement only.
  perform set_config('outcall.reopening', p_batch_id::text, true);
  update public.pending_calls
     set call_status = 'pending',
         attempt_offset = attempts,
         max_attempts = attempts + (max_attempts - attempt_offset),
         next_attempt_at = now(),
         last_error = null
   where batch_id = p_batch_id and call_status = 'failed';
  get diagnostics v_requeued = row_count;
  perform set_config('outcall.reopening', '', true);

  return jsonb_build_object(
    'batch_id', p_batch_id,
    'status', (select status from public.batches where id = p_batch_id),
    'requeued', v_requeued);
end
$$;

comment on function public.retry_failed_batch(uuid) is
  'Requeues the failed rows of a batch (pending, attempt_offset = attempts, a fresh budget of max_attempts - attempt_offset attempts, due now, last_error cleared); the batch reopens. Returns {batch_id, status, requeued} or {batch_id, error: batch_cancelled} (nothing changed) or null.';

-- pause_batch, resume_batch ------------------------------------------------------------------------------------
-- Pausing holds the batch's rows: no claim dials one (claim_pending_call answers paused, claim_next_due does not
-- search the batch) while its live calls finish, and a retry falling due meanwhile waits; the batch's status is
-- unchanged (paused is its own field). Resuming lets them go on where they stopped and kicks the Worker's dispatch
-- as a batch insert does: the webhook with the batch's first row due (70_webhook.sql; the sweep dispatches anyway).
-- Both idempotent (changed false when it already was so); a completed or cancelled batch refuses (error
-- batch_completed | batch_cancelled, nothing changed). Pausing takes the dispatch lock (before the batch row, as
-- the claims take them): a claim in progress commits first, and none after it dials a row of the batch.
create or replace function outcall_private.set_batch_paused(p_batch_id uuid, p_paused boolean) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.batches;
  v_changed boolean := false;
  v_first_due uuid;
begin
  if not exists (select 1 from public.batches where id = p_batch_id) then
    return null;
  end if;
  perform outcall_private.lock_batch_changes(p_batch_id);
  if p_paused then
    perform outcall_private.lock_dispatch_limits();
  end if;
  select * into v_batch from public.batches where id = p_batch_id for update;
  if v_batch.cancelled_at is not null or v_batch.completed_at is not null then
    return jsonb_build_object('batch_id', p_batch_id, 'status', v_batch.status,
      'error', case when v_batch.cancelled_at is not null then 'batch_cancelled' else 'batch_completed' end);
  end if;
  if (v_batch.paused_at is not null) <> p_paused then
    update public.batches set paused_at = case when p_paused then now() end where id = p_batch_id;
    v_changed := true;
    if not p_paused then
      select p.id into v_first_due
        from public.pending_calls as p
       where p.batch_id = p_batch_id and p.call_status in ('pending', 'retry_pending')
       order by p.next_attempt_at, p.created_at
       limit 1;
      if v_first_due is not null then
        perform outcall_private.post_pending_call_webhook('public', 'pending_calls', v_first_due);
      end if;
    end if;
  end if;
  return public.batch_progress_of(p_batch_id) || jsonb_build_object('changed', v_changed);
end
$$;

-- The API key's pause or resume (the Worker's /api/v1/batches/{id}/pause, /resume), audited in operator_actions
-- as actor api_key with the batch's progress before and after (as operator_batch_action audits an operator's).
create or replace function outcall_private.api_key_pause(p_batch_id uuid, p_paused boolean) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_before jsonb := public.batch_progress_of(p_batch_id);
  v_answer jsonb;
begin
  v_answer := outcall_private.set_batch_paused(p_batch_id, p_paused);
  if v_answer is not null then
    insert into public.operator_actions (actor, action, target_kind, target_ids, detail)
    values ('api_key', case when p_paused then 'pause' else 'resume' end, 'batch', array[p_batch_id],
            jsonb_build_object('before', v_before, 'after', public.batch_progress_of(p_batch_id), 'answer', v_answer));
  end if;
  return v_answer;
end
$$;

create or replace function public.pause_batch(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
begin
  return outcall_private.api_key_pause(p_batch_id, true);
end
$$;

comment on function public.pause_batch(uuid) is
  'Pauses a batch (idempotent, audited as actor api_key): nothing new of it is dialled, live calls finish. Returns its progress (as batch_progress_of, paused true) with changed (false: it was paused already), {batch_id, status, error: batch_completed | batch_cancelled} (nothing changed), or null (no such batch).';

create or replace function public.resume_batch(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
begin
  return outcall_private.api_key_pause(p_batch_id, false);
end
$$;

comment on function public.resume_batch(uuid) is
  'Resumes a paused batch (idempotent, audited as actor api_key): its rows are dialled again where they stopped, and the Worker is sent the first one due. Returns its progress with changed (false: it was not paused), {batch_id, status, error: batch_completed | batch_cancelled}, or null.';

-- ======== sql/schema/62_suppression.sql ========

-- 62: do-not-call: the suppression list (public.suppression_list, 10_tables.sql) and what keeps it, and the
-- functions of the API's /api/v1/suppressions. Contract: functions/core/src/rpc.rs (AddSuppression,
-- RemoveSuppression, ListSuppressions). pgTAP: sql/tests/25_dnc_expiry.sql.
--
-- A listed phone is never dialled. The claim is the guarantee (dispatch_gate's first check, 30_dispatch.sql, ends
-- a waiting row of a listed phone suppressed: no session, no call); besides, so that a list shows it at once:
--   * adding a phone ends its waiting rows (pending, retry_pending) suppressed, in the same transaction; a live
--     call finishes, and its retry is then ended by the claim;
--   * a row inserted for a listed phone (or already past its expires_at) is created ended.
-- Removing a phone changes no row: suppressed is terminal (an operator's reset revives a row, 87_operator_actions.sql).
-- SMS opt-outs feed the list: an sms_opt_outs row (a STOP, Twilio's 21610, or by hand) adds an sms_opt_out entry
-- unless the phone is listed already; its deletion (a START) removes the phone's entry only when it is that
-- sms_opt_out entry (a manual or clinic entry stays).

-- A row inserted for a listed phone, or past its expiry, is created ended (no webhook is sent for it:
-- 70_webhook.sql's triggers take pending rows only). SECURITY DEFINER: the list is read whoever inserts.
create or replace function outcall_private.end_undiallable_on_insert() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ends text := outcall_private.undiallable_reason(NEW, pg_catalog.now());
begin
  if v_ends is not null then
    NEW.call_status := v_ends;
    NEW.last_error := v_ends;
  end if;
  return NEW;
end
$$;

create trigger pending_calls_undiallable_on_insert
  before insert on public.pending_calls
  for each row
  when (NEW.call_status in ('pending', 'retry_pending'))
  execute function outcall_private.end_undiallable_on_insert();

-- A phone added (or its entry changed): its waiting rows end suppressed, locked in id order first (as every
-- multi-row writer does) so a concurrent claim of one of them ends first.
create or replace function outcall_private.suppress_waiting_rows() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.pending_calls
    where phone = NEW.phone and call_status in ('pending', 'retry_pending')
    order by id
    for no key update;
  update public.pending_calls
     set call_status = 'suppressed', last_error = 'suppressed'
   where phone = NEW.phone and call_status in ('pending', 'retry_pending');
  return null;
end
$$;

create trigger suppression_list_suppress_waiting_rows
  after insert or update of phone on public.suppression_list
  for each row execute function outcall_private.suppress_waiting_rows();

-- SMS opt-outs ------------------------------------------------------------------------------------------------
create or replace function outcall_private.suppress_sms_opt_out() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.suppression_list (phone, source, reason)
  values (NEW.phone, 'sms_opt_out',
          pg_catalog.left('SMS opt-out (' || NEW.source || coalesce(': ' || NEW.keyword, '') || ')', 500))
  on conflict (phone) do nothing;
  return null;
end
$$;

create or replace function outcall_private.lift_sms_opt_out() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from public.suppression_list where phone = OLD.phone and source = 'sms_opt_out';
  return null;
end
$$;

create trigger sms_opt_outs_suppress
  after insert on public.sms_opt_outs
  for each row execute function outcall_private.suppress_sms_opt_out();
create trigger sms_opt_outs_lift
  after delete on public.sms_opt_outs
  for each row execute function outcall_private.lift_sms_opt_out();

-- The API's functions -----------------------------------------------------------------------------------------

-- A suppression_list row as the functions answer it.
create or replace function outcall_private.suppression_json(p public.suppression_list) returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('phone', p.phone, 'reason', p.reason, 'source', p.source,
                                       'added_by', p.added_by, 'created_at', p.created_at)
$$;

-- add_suppression: idempotent. A new phone is added (created: true); a listed one is kept as it is (created:
-- false), except an sms_opt_out entry, which takes the request's source, reason and added_by: someone asked for it
-- now, so a START must no longer lift it. p_source manual (default) | sms_opt_out | clinic; the phone in E.164 (the
-- Worker parses it; the table's check refuses anything else, 23514).
create or replace function public.add_suppression(
  p_phone text,
  p_reason text default null,
  p_source text default null,
  p_added_by text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_row public.suppression_list;
begin
  insert into public.suppression_list (phone, reason, source, added_by)
  values (p_phone, nullif(btrim(p_reason), ''), coalesce(p_source, 'manual'), p_added_by)
  on conflict (phone) do nothing
  returning * into v_row;
  if found then
    return jsonb_build_object('created', true, 'suppression', outcall_private.suppression_json(v_row));
  end if;
  update public.suppression_list
     set source = coalesce(p_source, 'manual'), reason = nullif(btrim(p_reason), ''), added_by = p_added_by
   where phone = p_phone and source = 'sms_opt_out' and coalesce(p_source, 'manual') <> 'sms_opt_out';
  select * into v_row from public.suppression_list where phone = p_phone;
  return jsonb_build_object('created', false, 'suppression', outcall_private.suppression_json(v_row));
end
$$;

comment on function public.add_suppression(text, text, text, text) is
  'Puts a phone on the do-not-call list (idempotent): {created: true, suppression} for a new one (its waiting rows end suppressed), {created: false, suppression} when listed already (kept; an sms_opt_out entry takes the new source, reason, added_by). suppression: {phone, reason, source, added_by, created_at}. A phone not in E.164, a reason over 500 characters or an unknown source: 23514.';

create or replace function public.remove_suppression(p_phone text) returns jsonb
language sql volatile
set search_path = ''
as $$
  with removed as (delete from public.suppression_list where phone = p_phone returning *)
  select jsonb_build_object('removed', count(*) > 0,
                            'suppression', (select outcall_private.suppression_json(r) from removed as r))
    from removed
$$;

comment on function public.remove_suppression(text) is
  'Takes a phone off the do-not-call list, whatever its source: {removed: bool, suppression: the entry removed | null}. Rows already ended suppressed stay so (an operator''s reset revives one).';

create or replace function public.list_suppressions(p_limit int default 100, p_offset int default 0) returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  perform outcall_private.check_page('list_suppressions', p_limit, p_offset);
  return jsonb_build_object(
    'suppressions', (
      select coalesce(jsonb_agg(outcall_private.suppression_json(s) order by s.created_at desc, s.phone), '[]'::jsonb)
        from (select * from public.suppression_list as l
               order by l.created_at desc, l.phone
               limit p_limit offset p_offset) as s),
    'page', jsonb_build_object('limit', p_limit, 'offset', p_offset,
                               'total', (select count(*) from public.suppression_list)));
end
$$;

comment on function public.list_suppressions(int, int) is
  'One page of the do-not-call list, newest first: {suppressions: [{phone, reason, source, added_by, created_at}], page: {limit, offset, total}}. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- ======== sql/schema/65_sms.sql ========

-- 65: batch SMS through Twilio Messaging: batches of text messages created, claimed at each sender's pace, sent
-- by the Worker, followed by Twilio's status callbacks, answered by replies and opt-outs.
-- Contract: docs/architecture.md ("Batch SMS"). The rules of 20_helpers.sql hold; what SMS adds:
--   * public.sms_batches (10_tables.sql): counters and derived state kept by statement-level triggers on
--     sms_messages, as public.batches by pending_calls (60_batches.sql);
--   * a message's status moves only forward (sms_status_rank) and a terminal one is never left
--     (sms_messages_terminal_guard, outcall_private.guard_terminal_status of 20_helpers.sql);
--   * the send slots: per sender (outcall_private.sms_senders), segments / messages_per_second seconds apart;
--   * opt-outs (public.sms_opt_outs): an opted-out phone is never texted, whenever the opt-out came.
--
-- Locks. claim_sms locks the sms_senders rows of the senders it serves, in ascending sender order, then the
-- messages (FOR UPDATE SKIP LOCKED: a message another transaction holds is not waited for); every other writer
-- locks one message row. The counter trigger then updates the sms_batches rows in ascending id order, last.
-- cancel_sms_batch locks the batch's waiting messages in id order, then the batch row. So no cycle.

-- Housekeeping and guards -----------------------------------------------------------------------------------------

create trigger sms_batches_set_updated_at
  before update on public.sms_batches
  for each row execute function outcall_private.set_updated_at();
create trigger sms_messages_set_updated_at
  before update on public.sms_messages
  for each row execute function outcall_private.set_updated_at();

-- A message of a cancelled batch that would wait to be sent again (a retry after the cancel) is cancelled
-- instead (60_batches.sql's trigger, on these tables). Named to run before the terminal guard.
create trigger sms_messages_batch_cancelled
  before update on public.sms_messages
  for each row
  when (NEW.status = 'pending')
  execute function outcall_private.stop_cancelled_batch_row('public.sms_batches', 'status', 'error_message');

create trigger sms_messages_terminal_guard
  before update of status on public.sms_messages
  for each row execute function outcall_private.guard_terminal_status(
    'status', '{delivered,undelivered,failed,opted_out,cancelled}');

-- How far along Twilio's progression a status is: a callback moves a message only to a higher rank. pending and
-- submitting are 0 (Twilio's news may come before its answer to our create request); the terminal ones are 4.
create or replace function outcall_private.sms_status_rank(p_status text) returns int
language sql immutable
set search_path = ''
as $$
  select case p_status
    when 'pending' then 0
    when 'submitting' then 0
    when 'queued' then 1
    when 'accepted' then 1
    when 'scheduled' then 1
    when 'sending' then 2
    when 'sent' then 3
    when 'delivered' then 4
    when 'undelivered' then 4
    when 'failed' then 4
    when 'opted_out' then 4
    when 'cancelled' then 4
  end
$$;

-- A batch's state -------------------------------------------------------------------------------------------------
-- completed_at once no message is pending or submitting (Twilio has or refused every one; delivery reports may
-- still come), the status as a call batch's (batch_status_of, 60_batches.sql).
create or replace function outcall_private.derive_sms_batch_state() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  NEW.completed_at := case
    when NEW.total > 0 and NEW.pending + NEW.submitting = 0 then coalesce(NEW.completed_at, pg_catalog.now())
  end;
  NEW.status := outcall_private.batch_status_of(NEW.cancelled_at, NEW.completed_at, NEW.started_at);
  return NEW;
end
$$;

create trigger sms_batches_derive_state
  before insert or update on public.sms_batches
  for each row execute function outcall_private.derive_sms_batch_state();

-- The counters ------------------------------------------------------------------------------------------------------
-- As count_batch_rows (60_batches.sql): after each statement on sms_messages, the rows it inserted, deleted or
-- changed (status or segments) are summed per batch as deltas and added to the sms_batches rows in ascending id
-- order. started_at is set when a message first becomes submitting (the first claim).
create or replace function outcall_private.count_sms_batch_rows() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_rows text := case TG_OP
    when 'INSERT' then $q$
      select n.batch_id, 1 as sign, n.status, n.segments, n.status = 'submitting' as claimed
        from new_rows as n$q$
    when 'DELETE' then $q$
      select o.batch_id, -1 as sign, o.status, o.segments, false as claimed
        from old_rows as o$q$
    else $q$
      select c.batch_id, c.sign, c.status, c.segments, c.claimed
        from old_rows as o
        join new_rows as n on n.id = o.id
       cross join lateral (values
               (o.batch_id, -1, o.status, o.segments, false),
               (n.batch_id, 1, n.status, n.segments, n.status = 'submitting' and o.status <> 'submitting'))
             as c (batch_id, sign, status, segments, claimed)
       where (o.status, o.segments, o.batch_id) is distinct from (n.status, n.segments, n.batch_id)$q$
  end;
  d record;
begin
  for d in execute pg_catalog.format($q$
      select r.batch_id,
             sum(r.sign)::int as total,
             sum(case when r.status = 'pending' then r.sign else 0 end)::int as pending,
             sum(case when r.status = 'submitting' then r.sign else 0 end)::int as submitting,
             sum(case when r.status = 'queued' then r.sign else 0 end)::int as queued,
             sum(case when r.status = 'accepted' then r.sign else 0 end)::int as accepted,
             sum(case when r.status = 'scheduled' then r.sign else 0 end)::int as scheduled,
             sum(case when r.status = 'sending' then r.sign else 0 end)::int as sending,
             sum(case when r.status = 'sent' then r.sign else 0 end)::int as sent,
             sum(case when r.status = 'delivered' then r.sign else 0 end)::int as delivered,
             sum(case when r.status = 'undelivered' then r.sign else 0 end)::int as undelivered,
             sum(case when r.status = 'failed' then r.sign else 0 end)::int as failed,
             sum(case when r.status = 'opted_out' then r.sign else 0 end)::int as opted_out,
             sum(case when r.status = 'cancelled' then r.sign else 0 end)::int as cancelled,
             sum(r.sign * r.segments)::int as segments,
             bool_or(r.claimed) as claimed
        from (%s) as r
       group by r.batch_id
       order by r.batch_id$q$, v_rows)
  loop
    update public.sms_batches
       set total = total + d.total,
           pending = pending + d.pending,
           submitting = submitting + d.submitting,
           queued = queued + d.queued,
           accepted = accepted + d.accepted,
           scheduled = scheduled + d.scheduled,
           sending = sending + d.sending,
           sent = sent + d.sent,
           delivered = delivered + d.delivered,
           undelivered = undelivered + d.undelivered,
           failed = failed + d.failed,
           opted_out = opted_out + d.opted_out,
           cancelled = cancelled + d.cancelled,
           segments_total = segments_total + d.segments,
           started_at = case when d.claimed then coalesce(started_at, pg_catalog.now()) else started_at end
     where id = d.batch_id;
  end loop;
  return null;
end
$$;

create trigger sms_messages_batch_counts_insert
  after insert on public.sms_messages
  referencing new table as new_rows
  for each statement execute function outcall_private.count_sms_batch_rows();
create trigger sms_messages_batch_counts_update
  after update on public.sms_messages
  referencing old table as old_rows new table as new_rows
  for each statement execute function outcall_private.count_sms_batch_rows();
create trigger sms_messages_batch_counts_delete
  after delete on public.sms_messages
  referencing old table as old_rows
  for each statement execute function outcall_private.count_sms_batch_rows();

-- TRUNCATE: every SMS batch is then empty.
create or replace function outcall_private.empty_sms_batches() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.sms_batches
     set total = 0, pending = 0, submitting = 0, queued = 0, accepted = 0, scheduled = 0, sending = 0, sent = 0,
         delivered = 0, undelivered = 0, failed = 0, opted_out = 0, cancelled = 0, segments_total = 0
   where total <> 0;
  return null;
end
$$;

create trigger sms_messages_batch_counts_truncate
  after truncate on public.sms_messages
  for each statement execute function outcall_private.empty_sms_batches();

-- Helpers of the functions ------------------------------------------------------------------------------------------

-- Twilio's own statuses of a message it has (what its answers and callbacks may say).
create or replace function outcall_private.is_twilio_sms_status(p_status text) returns boolean
language sql immutable
set search_path = ''
as $$
  select coalesce(p_status in ('queued', 'accepted', 'scheduled', 'sending', 'sent', 'delivered', 'undelivered',
                               'failed'), false)
$$;

-- A phone that must not be texted.
create or replace function outcall_private.is_opted_out(p_phone text) returns boolean
language sql stable
set search_path = ''
as $$
  select exists (select 1 from public.sms_opt_outs where phone = p_phone)
$$;

-- Twilio refused a number with 21610 (it answered STOP to Twilio itself): never text it again.
create or replace function outcall_private.record_twilio_opt_out(p_phone text) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.sms_opt_outs (phone, source) values (p_phone, 'twilio_21610')
  on conflict (phone) do nothing
$$;

-- Where a message's Twilio fields go: a From number or a Messaging Service SID (the sender is one of the two).
create or replace function outcall_private.sms_sender_fields(p_sender text) returns jsonb
language sql immutable
set search_path = ''
as $$
  select case when p_sender like 'MG%'
    then pg_catalog.jsonb_build_object('from', null, 'messaging_service_sid', p_sender)
    else pg_catalog.jsonb_build_object('from', p_sender, 'messaging_service_sid', null)
  end
$$;

-- create_sms_batch --------------------------------------------------------------------------------------------------
-- The Worker has validated and rendered the messages (outcall_core::sms); the constraints of 10_tables.sql hold
-- the rest. All or nothing: one sms_batches row, one sms_messages row per message (position = its index), those to
-- an opted-out phone created opted_out.
create or replace function public.create_sms_batch(p_request jsonb) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_key text;
  v_hash text;
  v_not_before timestamptz;
  v_messages jsonb;
  v_opted_out int[];
  v_batch public.sms_batches;
begin
  if pg_catalog.jsonb_typeof(p_request) is distinct from 'object' then
    raise exception 'create_sms_batch: p_request must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  v_key := p_request ->> 'idempotency_key';
  v_hash := p_request ->> 'request_hash';
  v_not_before := (p_request ->> 'not_before')::timestamptz;
  v_messages := p_request -> 'messages';
  if pg_catalog.jsonb_typeof(v_messages) is distinct from 'array' or pg_catalog.jsonb_array_length(v_messages) = 0 then
    raise exception 'create_sms_batch: messages must be a non-empty array' using errcode = 'invalid_parameter_value';
  end if;

  -- The key is known: the same request again (replayed) or another one (conflict); nothing is written.
  if v_key is not null then
    select * into v_batch from public.sms_batches where idempotency_key = v_key;
    if found then
      return outcall_private.idempotent_answer(v_batch.id, v_batch.request_hash, v_hash, pg_catalog.jsonb_build_object(
             'accepted', v_batch.total, 'opted_out', pg_catalog.to_jsonb(v_batch.opted_out_positions)));
    end if;
  end if;

  v_opted_out := array(select (m.n - 1)::int
                         from jsonb_array_elements(v_messages) with ordinality as m(e, n)
                        where outcall_private.is_opted_out(m.e ->> 'to_phone')
                        order by m.n);

  -- A concurrent request with the same key waits here for the first to end (as create_batch).
  insert into public.sms_batches (name, metadata, sender, body_template, idempotency_key, request_hash, not_before,
                                  opted_out_positions)
  values (coalesce(p_request ->> 'name', outcall_private.default_batch_name(pg_catalog.now())),
          coalesce(nullif(p_request -> 'metadata', 'null'::jsonb), '{}'::jsonb), p_request ->> 'sender',
          p_request ->> 'body_template', v_key, v_hash, v_not_before, v_opted_out)
  on conflict (idempotency_key) do nothing
  returning * into v_batch;
  if not found then
    select * into v_batch from public.sms_batches where idempotency_key = v_key;
    return outcall_private.idempotent_answer(v_batch.id, v_batch.request_hash, v_hash, pg_catalog.jsonb_build_object(
             'accepted', v_batch.total, 'opted_out', pg_catalog.to_jsonb(v_batch.opted_out_positions)));
  end if;

  insert into public.sms_messages (batch_id, position, to_phone, variables, body, encoding, segments, status,
                                   next_attempt_at)
  select v_batch.id, (m.n - 1)::int, t.to_phone, coalesce(t.variables, '{}'::jsonb), t.body, t.encoding, t.segments,
         case when (m.n - 1)::int = any (v_opted_out) then 'opted_out' else 'pending' end,
         coalesce(v_not_before, pg_catalog.now())
    from jsonb_array_elements(v_messages) with ordinality as m(e, n)
   cross join lateral jsonb_to_record(m.e) as t(to_phone text, variables jsonb, body text, encoding text, segments int);

  return jsonb_build_object('outcome', 'created', 'batch_id', v_batch.id, 'accepted', jsonb_array_length(v_messages),
                            'opted_out', to_jsonb(v_opted_out));
end
$$;

comment on function public.create_sms_batch(jsonb) is
  'Creates an SMS batch from {name (null: default_batch_name), metadata, sender, body_template, not_before, idempotency_key, request_hash, messages: [{to_phone, variables, body, encoding, segments}]}: all or nothing; a message to an opted-out phone is created opted_out. Returns {outcome: created | replayed, batch_id, accepted: messages created (opted_out ones included), opted_out: [position]} | {outcome: conflict, batch_id}. Not an object, or no messages: 22023.';

-- claim_sms -----------------------------------------------------------------------------------------------------------
-- The send slots. Per sender: slot = greatest(next_slot_at, now()); a message is claimed while slot < now() +
-- p_horizon_ms, and next_slot_at moves to slot + segments / messages_per_second seconds (no limit: every slot is
-- now, nothing moves). So a sender never sends more segments per second than its rate, and the Worker sends each
-- message send_in_ms after the answer. now() is the transaction's start: a claim that waited for a sender's lock
-- counts from before it waited, which only makes its sends later, never sooner.
-- Due: pending, next_attempt_at passed, batch not cancelled, its not_before passed. Senders are served oldest
-- due batch first; a sender's messages by batch (oldest first) then position. A message to a phone opted out
-- since its creation becomes opted_out here and is not returned.
create or replace function public.claim_sms(p_limit int default 50, p_horizon_ms int default 1000) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_now timestamptz := pg_catalog.now();
  v_horizon timestamptz;
  v_sender outcall_private.sms_senders;
  v_slot timestamptz;
  v_claimed uuid[] := '{}';
  v_opted_out uuid[] := '{}';
  v_answers jsonb := '[]';
  v_more_due boolean;
  v_next_due timestamptz;
  v_senders text[];
  m record;
begin
  if p_limit is null or p_limit < 1 or p_limit > 1000 then
    raise exception 'claim_sms: p_limit must be 1 to 1000, got %', coalesce(p_limit::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_horizon_ms is null or p_horizon_ms < 0 or p_horizon_ms > 60000 then
    raise exception 'claim_sms: p_horizon_ms must be 0 to 60000, got %', coalesce(p_horizon_ms::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  v_horizon := v_now + p_horizon_ms * interval '1 millisecond';

  -- The senders with due messages get their row (a new one the policy's pace), then are locked in sender order.
  insert into outcall_private.sms_senders (sender, messages_per_second)
  select distinct b.sender, (outcall_private.policy()).sms_messages_per_second
    from public.sms_batches as b
   where b.cancelled_at is null and b.pending > 0 and (b.not_before is null or b.not_before <= v_now)
  on conflict (sender) do nothing;

  select coalesce(pg_catalog.array_agg(l.sender order by l.sender), '{}') into v_senders
    from (select s.sender
            from outcall_private.sms_senders as s
           where s.sender in (select b.sender from public.sms_batches as b
                               where b.cancelled_at is null and b.pending > 0
                                 and (b.not_before is null or b.not_before <= v_now))
           order by s.sender
             for update) as l;

  <<senders>>
  for v_sender in
    select s.*
      from outcall_private.sms_senders as s
      join lateral (select min(b.created_at) as oldest
                      from public.sms_batches as b
                     where b.sender = s.sender and b.cancelled_at is null and b.pending > 0
                       and (b.not_before is null or b.not_before <= v_now)) as o on o.oldest is not null
     where s.sender = any (v_senders)
     order by o.oldest, s.sender
  loop
    v_slot := greatest(v_sender.next_slot_at, v_now);
    for m in
      select msg.id, msg.batch_id, msg.to_phone, msg.body, msg.segments, msg.attempts
        from public.sms_messages as msg
        join public.sms_batches as b on b.id = msg.batch_id
       where b.sender = v_sender.sender and b.cancelled_at is null and (b.not_before is null or b.not_before <= v_now)
         and msg.status = 'pending' and msg.next_attempt_at <= v_now
       order by b.created_at, b.id, msg.position
         for update of msg skip locked
    loop
      exit senders when pg_catalog.cardinality(v_claimed) >= p_limit;
      if outcall_private.is_opted_out(m.to_phone) then
        v_opted_out := v_opted_out || m.id;
        continue;
      end if;
      if v_sender.messages_per_second is not null and v_slot >= v_horizon then
        exit;  -- this sender is full
      end if;
      v_claimed := v_claimed || m.id;
      v_answers := v_answers || (pg_catalog.jsonb_build_object(
        'message_id', m.id, 'batch_id', m.batch_id, 'to', m.to_phone, 'body', m.body, 'attempt', m.attempts + 1,
        'send_in_ms', outcall_private.interval_ms(v_slot - v_now))
        || outcall_private.sms_sender_fields(v_sender.sender));
      if v_sender.messages_per_second is not null then
        v_slot := v_slot + m.segments / v_sender.messages_per_second * interval '1 second';
        update outcall_private.sms_senders set next_slot_at = v_slot where sender = v_sender.sender;
      end if;
    end loop;
  end loop;

  update public.sms_messages
     set status = 'opted_out', error_message = 'opted_out'
   where id = any (v_opted_out);
  update public.sms_messages
     set status = 'submitting', attempts = attempts + 1, submitting_since = v_now
   where id = any (v_claimed);

  -- What is left: due messages whose sender has a slot within the horizon (claim again now), else the first
  -- instant a pending message or its sender's slot comes due.
  select bool_or(d.due and (s.sender is null or s.messages_per_second is null
                            or greatest(s.next_slot_at, v_now) < v_horizon)),
         min(greatest(d.due_at, case when s.messages_per_second is not null then s.next_slot_at end))
    into v_more_due, v_next_due
    from (select b.sender,
                 bool_or(msg.next_attempt_at <= v_now and (b.not_before is null or b.not_before <= v_now)) as due,
                 min(greatest(msg.next_attempt_at, b.not_before)) as due_at
            from public.sms_messages as msg
            join public.sms_batches as b on b.id = msg.batch_id
           where msg.status = 'pending' and b.cancelled_at is null
           group by b.sender) as d
    left join outcall_private.sms_senders as s on s.sender = d.sender;

  return pg_catalog.jsonb_build_object(
    'messages', v_answers,
    'more_due', coalesce(v_more_due, false),
    'retry_after_ms', case
      when v_next_due is null then null
      when v_more_due then 0
      -- At most an hour: a batch scheduled years ahead must not overflow the int (the sweep claims again anyway).
      else outcall_private.interval_ms(least(v_next_due - v_now, interval '1 hour'))
    end);
end
$$;

comment on function public.claim_sms(int, int) is
  'Claims due pending SMS at each sender''s pace (submitting, attempts + 1): {messages: [{message_id, batch_id, to, from, messaging_service_sid, body, attempt, send_in_ms}], more_due (due messages remain that could be claimed now), retry_after_ms (0 when more_due; else ms until the next pending message or its sender''s slot comes due, at most an hour; null: nothing pending)}. Messages to opted-out phones become opted_out, unreturned. p_limit 1..1000, p_horizon_ms 0..60000 (else 22023).';

-- record_sms_send -----------------------------------------------------------------------------------------------------
-- What came of the create request of a claimed (submitting) message:
--   accepted: Twilio took it: p_message_sid, p_status (Twilio's: queued, accepted, scheduled, ...; null: queued),
--             p_segments when Twilio counted them (0, a Messaging Service's "not yet", keeps ours);
--   retry:    429 / 5xx: pending again, due after the policy's delay for this attempt (sms_retry_delays) or
--             p_retry_after_ms, the longer; failed once attempts reached sms_max_attempts;
--   rejected: a permanent 4xx: failed with p_error_code, p_error_message; 21610 (the person opted out at Twilio):
--             opted_out, and the phone into sms_opt_outs (source twilio_21610);
--   unknown:  no clear answer: stays submitting for sms_to_reconcile / reconcile_sms.
create or replace function public.record_sms_send(
  p_message_id uuid,
  p_outcome text,
  p_message_sid text default null,
  p_status text default null,
  p_segments int default null,
  p_error_code int default null,
  p_error_message text default null,
  p_retry_after_ms int default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_policy outcall_private.dispatch_policy := outcall_private.policy();
  v_msg public.sms_messages;
begin
  if p_outcome is null or p_outcome not in ('accepted', 'retry', 'rejected', 'unknown') then
    raise exception 'record_sms_send: unknown outcome %', coalesce(p_outcome, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_outcome = 'accepted'
     and (p_message_sid is null or (p_status is not null and not outcall_private.is_twilio_sms_status(p_status))) then
    raise exception 'record_sms_send: accepted needs a MessageSid and a Twilio status, got % %',
      coalesce(p_message_sid, 'null'), coalesce(p_status, 'null') using errcode = 'invalid_parameter_value';
  end if;

  select * into v_msg from public.sms_messages where id = p_message_id for update;
  if not found then
    return null;
  end if;
  if v_msg.status <> 'submitting' then
    return pg_catalog.jsonb_build_object('recorded', false, 'status', v_msg.status);
  end if;

  if p_outcome = 'accepted' then
    update public.sms_messages
       set status = coalesce(p_status, 'queued'), message_sid = p_message_sid,
           segments = case when p_segments > 0 then p_segments else segments end
     where id = p_message_id
    returning * into v_msg;
  elsif p_outcome = 'retry' then
    update public.sms_messages
       set status = case when attempts >= v_policy.sms_max_attempts then 'failed' else 'pending' end,
           next_attempt_at = pg_catalog.now() + greatest(
             v_policy.sms_retry_delays[least(greatest(attempts, 1), pg_catalog.cardinality(v_policy.sms_retry_delays))],
             coalesce(p_retry_after_ms, 0) * interval '1 millisecond'),
           error_code = p_error_code, error_message = p_error_message
     where id = p_message_id
    returning * into v_msg;
  elsif p_outcome = 'rejected' then
    if p_error_code = 21610 then
      perform outcall_private.record_twilio_opt_out(v_msg.to_phone);
    end if;
    update public.sms_messages
       set status = case when p_error_code = 21610 then 'opted_out' else 'failed' end,
           error_code = p_error_code, error_message = p_error_message
     where id = p_message_id
    returning * into v_msg;
  end if;
  return pg_catalog.jsonb_build_object('recorded', true, 'status', v_msg.status);
end
$$;

comment on function public.record_sms_send(uuid, text, text, text, int, int, text, int) is
  'Records the answer to a submitting message''s create request: p_outcome accepted (p_message_sid, p_status, p_segments) | retry (pending after greatest(sms_retry_delays[attempt], p_retry_after_ms), or failed at sms_max_attempts) | rejected (failed with p_error_code, p_error_message; 21610: opted_out and an sms_opt_outs row) | unknown (stays submitting). Returns {recorded: true, status} | {recorded: false, status} (not submitting: nothing changed) | null (unknown id). Unknown outcome, accepted without sid or with an unknown status: 22023.';

-- sms_status_callback -------------------------------------------------------------------------------------------------
-- Twilio's status callback: the message by MessageSid, or by our id (the callback URL's) when Twilio's answer to
-- the create request has not been recorded yet (then the sid is linked). The status moves only forward
-- (sms_status_rank): a duplicate or out-of-order callback changes nothing, a terminal status never changes.
create or replace function public.sms_status_callback(
  p_message_sid text,
  p_status text,
  p_error_code int default null,
  p_message_id uuid default null,
  p_segments int default null,
  p_price numeric default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_msg public.sms_messages;
  v_changed boolean;
begin
  if p_message_sid is null or not outcall_private.is_twilio_sms_status(p_status) then
    raise exception 'sms_status_callback: needs a MessageSid and a Twilio message status, got % %',
      coalesce(p_message_sid, 'null'), coalesce(p_status, 'null') using errcode = 'invalid_parameter_value';
  end if;
  select * into v_msg from public.sms_messages where message_sid = p_message_sid for update;
  if not found and p_message_id is not null then
    select * into v_msg from public.sms_messages where id = p_message_id and message_sid is null for update;
  end if;
  if v_msg.id is null then
    return null;
  end if;

  v_changed := outcall_private.sms_status_rank(p_status) > outcall_private.sms_status_rank(v_msg.status);
  if v_changed and p_error_code = 21610 then
    perform outcall_private.record_twilio_opt_out(v_msg.to_phone);
  end if;
  update public.sms_messages
     set message_sid = p_message_sid,
         status = case when v_changed then p_status else status end,
         error_code = case when v_changed then coalesce(p_error_code, error_code) else error_code end,
         segments = case when p_segments > 0 then p_segments else segments end,
         price = coalesce(p_price, price)
   where id = v_msg.id
  returning * into v_msg;
  return pg_catalog.jsonb_build_object('message_id', v_msg.id, 'batch_id', v_msg.batch_id, 'status', v_msg.status,
                                       'changed', v_changed);
end
$$;

comment on function public.sms_status_callback(text, text, int, uuid, int, numeric) is
  'Applies a Twilio message status callback, only forward (queued | accepted | scheduled < sending < sent < delivered | undelivered | failed; terminal statuses never change): {message_id, batch_id, status, changed} or null (no message has the sid, nor the id without a sid). Links the sid to p_message_id''s message; records p_error_code (21610: also an opt-out), p_segments (> 0), p_price. Unknown status or no sid: 22023.';

-- record_sms_reply ----------------------------------------------------------------------------------------------------
-- An inbound message: stored once per MessageSid (Twilio retries), tied to the latest message we sent to the
-- person (one of the batches sent from p_to first), with its keyword's effect: STOP opts the phone out (source
-- keyword), START opts it back in; HELP changes nothing (Twilio answers it). A retry changes nothing again.
create or replace function public.record_sms_reply(
  p_message_sid text,
  p_from text,
  p_to text,
  p_body text,
  p_opt_out text default null
) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_reply public.sms_replies;
  v_message public.sms_messages;
begin
  if p_message_sid is null or p_from is null or p_to is null then
    raise exception 'record_sms_reply: p_message_sid, p_from and p_to are required' using errcode = 'invalid_parameter_value';
  end if;
  if p_opt_out is not null and p_opt_out not in ('STOP', 'START', 'HELP') then
    raise exception 'record_sms_reply: p_opt_out must be STOP, START or HELP, got %', p_opt_out
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_reply from public.sms_replies where message_sid = p_message_sid;
  if not found then
    select msg.* into v_message
      from public.sms_messages as msg
      join public.sms_batches as b on b.id = msg.batch_id
     where msg.to_phone = p_from and msg.submitting_since is not null
     order by (b.sender = p_to) desc, msg.submitting_since desc, msg.id desc
     limit 1;
    insert into public.sms_replies (message_sid, from_phone, to_phone, body, batch_id, sms_message_id, opt_out_type)
    values (p_message_sid, p_from, p_to, coalesce(p_body, ''), v_message.batch_id, v_message.id, p_opt_out)
    on conflict (message_sid) do nothing
    returning * into v_reply;
    if found then
      if p_opt_out = 'STOP' and outcall_private.is_e164(p_from) then
        insert into public.sms_opt_outs (phone, source, keyword)
        values (p_from, 'keyword', pg_catalog.btrim(p_body))
        on conflict (phone) do nothing;
      elsif p_opt_out = 'START' then
        delete from public.sms_opt_outs where phone = p_from;
      end if;
    else
      -- (a concurrent delivery of the same webhook stored it first)
      select * into v_reply from public.sms_replies where message_sid = p_message_sid;
    end if;
  end if;
  return pg_catalog.jsonb_build_object('reply_id', v_reply.id, 'batch_id', v_reply.batch_id,
                                       'opted_out', outcall_private.is_opted_out(v_reply.from_phone));
end
$$;

comment on function public.record_sms_reply(text, text, text, text, text) is
  'Stores an inbound SMS once per p_message_sid, tied to the batch of the latest message sent to p_from (from p_to''s batches first; null: none). p_opt_out STOP: an sms_opt_outs row (source keyword, keyword the trimmed body); START: the row deleted; HELP: nothing. Returns {reply_id, batch_id, opted_out: p_from is opted out now}. p_opt_out other than STOP/START/HELP, or no sid/from/to: 22023.';

-- Reads ---------------------------------------------------------------------------------------------------------------

create or replace function public.sms_batch_status(p_batch_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'batch_id', b.id,
    'name', b.name,
    'status', b.status,
    'sender', b.sender,
    'total', b.total,
    'counts', pg_catalog.jsonb_build_object(
      'pending', b.pending,
      'submitting', b.submitting,
      'queued', b.queued + b.accepted + b.scheduled + b.sending,
      'sent', b.sent,
      'delivered', b.delivered,
      'undelivered', b.undelivered,
      'failed', b.failed,
      'opted_out', b.opted_out,
      'cancelled', b.cancelled),
    'segments_total', b.segments_total,
    'replies', (select count(*) from public.sms_replies as r where r.batch_id = b.id),
    'created_at', b.created_at,
    'started_at', b.started_at,
    'completed_at', b.completed_at,
    'cancelled_at', b.cancelled_at,
    'metadata', b.metadata)
    from public.sms_batches as b
   where b.id = p_batch_id
$$;

comment on function public.sms_batch_status(uuid) is
  'An SMS batch''s progress: {batch_id, name, status, sender, total, counts: {pending, submitting, queued (Twilio''s queued, accepted, scheduled, sending), sent, delivered, undelivered, failed, opted_out, cancelled}, segments_total, replies, created_at, started_at, completed_at, cancelled_at, metadata} or null.';

create or replace function public.sms_batch_messages(p_batch_id uuid, p_limit int default 100, p_offset int default 0)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_total int;
begin
  perform outcall_private.check_page('sms_batch_messages', p_limit, p_offset);
  select b.total into v_total from public.sms_batches as b where b.id = p_batch_id;
  if not found then
    return null;
  end if;
  return jsonb_build_object(
    'batch_id', p_batch_id,
    'messages', (
      select coalesce(jsonb_agg(jsonb_build_object(
               'message_id', m.id,
               'position', m.position,
               'to', m.to_phone,
               'status', m.status,
               'message_sid', m.message_sid,
               'error_code', m.error_code,
               'error_message', m.error_message,
               'segments', m.segments,
               'encoding', m.encoding,
               'attempts', m.attempts,
               'body', m.body,
               'updated_at', m.updated_at,
               'replies', (select coalesce(jsonb_agg(jsonb_build_object(
                                    'body', r.body, 'opt_out_type', r.opt_out_type, 'received_at', r.received_at)
                                    order by r.received_at, r.id), '[]'::jsonb)
                             from public.sms_replies as r
                            where r.sms_message_id = m.id)) order by m.position), '[]'::jsonb)
        from (select * from public.sms_messages as s
               where s.batch_id = p_batch_id
               order by s.position
               limit p_limit offset p_offset) as m),
    'page', jsonb_build_object('limit', p_limit, 'offset', p_offset, 'total', v_total));
end
$$;

comment on function public.sms_batch_messages(uuid, int, int) is
  'One page of an SMS batch''s messages (by position): {batch_id, messages: [{message_id, position, to, status, message_sid, error_code, error_message, segments, encoding, attempts, body, updated_at, replies: [{body, opt_out_type, received_at}]}], page: {limit, offset, total}} or null. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- cancel_sms_batch ----------------------------------------------------------------------------------------------------
-- The batch's waiting and submitting messages are locked first (in id order, before the batch row, as every writer):
-- a claim or an answer in flight ends first. Then the pending ones are cancelled; a submitting one finishes (its
-- request is out), and one retried later is cancelled by sms_messages_batch_cancelled.
create or replace function public.cancel_sms_batch(p_batch_id uuid) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_batch public.sms_batches;
  v_cancelled int := 0;
begin
  if not exists (select 1 from public.sms_batches where id = p_batch_id) then
    return null;
  end if;
  perform 1 from public.sms_messages
    where batch_id = p_batch_id and status in ('pending', 'submitting')
    order by id
    for no key update;

  select * into v_batch from public.sms_batches where id = p_batch_id;
  -- A completed batch stays completed.
  if v_batch.cancelled_at is null and v_batch.completed_at is null then
    update public.sms_batches set cancelled_at = now() where id = p_batch_id returning * into v_batch;
  end if;
  if v_batch.cancelled_at is not null then
    update public.sms_messages
       set status = 'cancelled', error_message = 'batch_cancelled'
     where batch_id = p_batch_id and status = 'pending';
    get diagnostics v_cancelled = row_count;
  end if;

  return jsonb_build_object(
    'batch_id', p_batch_id,
    'status', (select status from public.sms_batches where id = p_batch_id),
    'cancelled', v_cancelled,
    'live', (select count(*) from public.sms_messages where batch_id = p_batch_id and status = 'submitting'));
end
$$;

comment on function public.cancel_sms_batch(uuid) is
  'Cancels an SMS batch (idempotent): cancelled_at set, its pending messages cancelled (error_message batch_cancelled); submitting ones finish and are never retried. A completed batch stays as it is. Returns {batch_id, status, cancelled: messages stopped by this call, live: messages still submitting} or null.';

-- Reconciliation ------------------------------------------------------------------------------------------------------
-- A claimed message whose create request got no clear answer (record_sms_send unknown, or the Worker died) stays
-- submitting without a sid. After p_older_than_ms the Worker asks Twilio (the list by To, From and date) and tells
-- reconcile_sms what it found.
create or replace function public.sms_to_reconcile(p_older_than_ms int default 120000, p_limit int default 50)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  perform outcall_private.check_page('sms_to_reconcile', p_limit, 0);
  if p_older_than_ms is null or p_older_than_ms < 0 then
    raise exception 'sms_to_reconcile: p_older_than_ms must be 0 or more, got %', coalesce(p_older_than_ms::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  return (
    select coalesce(jsonb_agg(jsonb_build_object(
             'message_id', m.id, 'to', m.to_phone, 'body', m.body, 'submitting_since', m.submitting_since)
             || outcall_private.sms_sender_fields(b.sender) order by m.submitting_since, m.id), '[]'::jsonb)
      from (select * from public.sms_messages as s
             where s.status = 'submitting' and s.message_sid is null
               and s.submitting_since < now() - p_older_than_ms * interval '1 millisecond'
             order by s.submitting_since, s.id
             limit p_limit) as m
      join public.sms_batches as b on b.id = m.batch_id);
end
$$;

comment on function public.sms_to_reconcile(int, int) is
  'Submitting messages without a MessageSid for longer than p_older_than_ms, oldest first: [{message_id, to, from, messaging_service_sid, body, submitting_since}]. p_limit 1..1000, p_older_than_ms >= 0 (else 22023).';

create or replace function public.reconcile_sms(p_message_id uuid, p_message_sid text default null,
                                                p_status text default null)
returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_msg public.sms_messages;
begin
  if p_message_sid is not null then
    return public.record_sms_send(p_message_id, 'accepted', p_message_sid, p_status);
  end if;
  select * into v_msg from public.sms_messages where id = p_message_id for update;
  if not found then
    return null;
  end if;
  if v_msg.status <> 'submitting' then
    return pg_catalog.jsonb_build_object('recorded', false, 'status', v_msg.status);
  end if;
  update public.sms_messages set status = 'pending', next_attempt_at = now()
   where id = p_message_id
  returning * into v_msg;
  return pg_catalog.jsonb_build_object('recorded', true, 'status', v_msg.status);
end
$$;

comment on function public.reconcile_sms(uuid, text, text) is
  'What Twilio knows of a submitting message: found (p_message_sid, p_status) -> as record_sms_send accepted; not found (null sid) -> pending, due now. Returns {recorded: true, status} | {recorded: false, status} (not submitting) | null (unknown id).';

-- ======== sql/schema/70_webhook.sql ========

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

-- ======== sql/schema/80_realtime.sql ========

-- 80: Realtime for dashboards: the nine tables (the SMS batches and messages, the breaker's transitions too) in Supabase's `supabase_realtime` publication, with full old
-- values on UPDATE/DELETE (operator_actions, the audit, and breaker_transitions are only ever inserted: its default replica identity is
-- enough). What each subscriber sees is still decided by RLS: Realtime checks every change against
-- the subscriber's policies, the tables' own (operators only, 85_operators.sql and 90_security.sql). Views cannot
-- be in a publication: public.batch_progress's counters come from public.batches.

-- Hosted Supabase has the publication already (empty); a plain Postgres gets it here.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['pending_calls', 'call_sessions', 'call_classifications', 'batches', 'classification_runs',
                           'operator_actions', 'sms_batches', 'sms_messages', 'breaker_transitions'] loop
    -- pg_publication_tables also lists the tables of a FOR ALL TABLES publication, which cannot be altered.
    if not exists (select 1 from pg_catalog.pg_publication_tables
                    where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t) then
      execute pg_catalog.format('alter publication supabase_realtime add table public.%I', t);
    end if;
  end loop;
end
$$;

alter table public.pending_calls replica identity full;
alter table public.call_sessions replica identity full;
alter table public.call_classifications replica identity full;
alter table public.batches replica identity full;
alter table public.classification_runs replica identity full;
alter table public.sms_batches replica identity full;
alter table public.sms_messages replica identity full;

-- ======== sql/schema/85_operators.sql ========

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

-- ======== sql/schema/87_operator_actions.sql ========

-- 87: what operators do from the dashboard (through the Worker's /api/v1/operator/*, with their own JWT): act on
-- calls (retry now, cancel, reset to pending, archive, unarchive), on a batch (cancel, retry its failed rows, pause,
-- resume) and on
-- a classification (invalidate, correct), and on the do-not-call list (add, remove). Each call of an action function writes one row of
-- public.operator_actions (who, what, before and after) in the same transaction as the change.
-- Contract: functions/core/src/rpc.rs (OperatorCallAction, OperatorBatchAction, OperatorClassificationAction,
-- OperatorSuppressionAction); docs/architecture.md ("Operators' actions"). pgTAP: sql/tests/20_operator_actions.sql,
-- 33_operator_suppression.sql.
--
-- SECURITY DEFINER, executable by authenticated: the API roles have no write privilege, these functions are the
-- writers, and they check the caller themselves (outcall_private.acting_operator): auth.uid() must be on the
-- allow-list with role operator; anyone else (a viewer, a signed-in non-operator, no user, service_role without a
-- user's JWT) gets 42501 before anything is read or written. Bad arguments are 22023 (PostgREST: 400); an unknown
-- batch or classification is P0002 (404); unknown call ids are answered per id (not_found), not raised.
--
-- The state machine's rules hold (20_helpers.sql):
--   * no action starts an attempt: only the claims do (calling window, limits, one live call per phone). An action
--     makes a waiting row due, ends it, or requeues it. A row dispatching or calling is refused (reason live), and
--     so is a retry_now or reset of a row whose last session is still live (VAPI's not_reached report can move a
--     row to retry_pending, or failed, while Twilio's call is still up): never a second live attempt;
--   * do-not-call and expiry: reset refuses a row past its expires_at (expired) and a row whose phone is on the
--     suppression list (suppressed); a suppressed row whose phone was taken off the list may be reset;
--   * terminal rows: retry_now and cancel refuse them (terminal). reset requeues a failed or cancelled row in
--     place, as retry_failed_batch does (pending, a fresh budget: attempt_offset = attempts, due now), through the
--     terminal guard's second deliberate exception (outcall.resetting, for that one statement), and the audit row
--     records the revival. In place rather than a copy with redial_of: the row is what the list, the batch
--     counters and the operator follow (one row per person to call), and its sessions stay one timeline
--     (attempts 4, 5, ... after 3). A completed row is refused (completed: another call would overwrite its
--     results), and so is a row of a cancelled batch (batch_cancelled: the batch was stopped as a whole);
--   * locks: batches' advisory locks first (reset: lock_batch_changes, ascending), then the pending_calls rows in id
--     order, then (the counter trigger, at the end of the one statement that changes them) the batches rows.

-- Who acts ------------------------------------------------------------------------------------------------------

-- The operator calling (auth.uid() with role operator on the allow-list), with their email as Auth has it now
-- (the allow-list's when the user is gone). Anyone else: 42501, saying who they are to the allow-list.
create or replace function outcall_private.acting_operator(p_function text) returns outcall_private.operators
language plpgsql stable
set search_path = ''
as $$
declare
  v_operator outcall_private.operators;
begin
  select o.* into v_operator from outcall_private.operators as o where o.user_id = auth.uid();
  if v_operator.role is distinct from 'operator' then
    raise exception '%: only an operator may act; the caller is %', p_function,
      case when auth.uid() is null then 'not a signed-in user'
           when v_operator.role = 'viewer' then 'a viewer'
           else 'not an operator' end
      using errcode = 'insufficient_privilege';
  end if;
  v_operator.email := coalesce((select u.email from auth.users as u where u.id = v_operator.user_id),
                               v_operator.email);
  return v_operator;
end
$$;

-- The audit row of one action call.
create or replace function outcall_private.record_operator_action(
  p_operator outcall_private.operators,
  p_action text,
  p_target_kind text,
  p_target_ids uuid[],
  p_detail jsonb
) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.operator_actions (user_id, email, action, target_kind, target_ids, detail)
  values (p_operator.user_id, p_operator.email, p_action, p_target_kind, p_target_ids, p_detail)
$$;

-- Calls ---------------------------------------------------------------------------------------------------------

-- What an action may change of a row, as the audit keeps it (before and after).
create or replace function outcall_private.call_snapshot(p_call public.pending_calls) returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'call_status', p_call.call_status,
    'attempts', p_call.attempts,
    'max_attempts', p_call.max_attempts,
    'attempt_offset', p_call.attempt_offset,
    'next_attempt_at', p_call.next_attempt_at,
    'last_error', p_call.last_error,
    'archived_at', p_call.archived_at)
$$;

-- Why p_action may not be applied to this (locked) row; null when it may. The rules at the top of this file.
create or replace function outcall_private.call_action_refusal(p_action text, p_call public.pending_calls)
returns text
language sql stable
set search_path = ''
as $$
  select case
    when p_action = 'unarchive' then null
    when p_call.call_status in ('dispatching', 'calling') then 'live'
    when p_action = 'archive' then null
    when p_action in ('retry_now', 'cancel')
      and p_call.call_status in ('completed', 'failed', 'cancelled', 'suppressed', 'expired')
      then 'terminal'
    when p_action = 'reset' and p_call.call_status = 'completed' then 'completed'
    -- (the claim would only end it again: past its expiry, or its phone on the do-not-call list)
    when p_action = 'reset' and (p_call.call_status = 'expired' or p_call.expires_at <= pg_catalog.now())
      then 'expired'
    when p_action = 'reset' and exists (select 1 from public.suppression_list as l where l.phone = p_call.phone)
      then 'suppressed'
    when exists (select 1 from outcall_private.live_sessions as s where s.pending_call_id = p_call.id)
      and p_action in ('retry_now', 'reset') then 'live'
    when p_action = 'reset'
      and exists (select 1 from public.batches as b where b.id = p_call.batch_id and b.cancelled_at is not null)
      then 'batch_cancelled'
  end
$$;

-- operator_call_action ------------------------------------------------------------------------------------------
--   retry_now  pending | retry_pending: due now (next_attempt_at = now() unless earlier); the claim still decides
--              (calling window, limits)
--   cancel     pending | retry_pending -> cancelled (last_error cancelled_by_operator)
--   reset      pending | retry_pending | failed | cancelled | suppressed (phone no longer listed) -> pending, a fresh budget (attempt_offset = attempts,
--              max_attempts = attempts + the round's budget), due now, last_error and archived_at cleared
--   archive    any row not dispatching or calling: archived_at = now() (kept if already archived)
--   unarchive  any row: archived_at = null
-- 1 to 500 ids (duplicates count once); answered per id, in the order given.
create or replace function public.operator_call_action(p_action text, p_ids uuid[]) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_operator outcall_private.operators := outcall_private.acting_operator('operator_call_action');
  v_ids uuid[];
  v_rows jsonb;      -- id -> {before, reason}, for the rows found
  v_allowed uuid[];
  v_results jsonb;   -- [{id, ok, call_status, reason?, before, after}]
begin
  if p_action is null or p_action not in ('retry_now', 'cancel', 'reset', 'archive', 'unarchive') then
    raise exception 'operator_call_action: p_action must be retry_now, cancel, reset, archive or unarchive, not %',
      coalesce(p_action, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  -- The ids once each, in the order given.
  select array_agg(d.id order by d.n) into v_ids
    from (select u.id, min(u.n) as n from unnest(p_ids) with ordinality as u (id, n) group by u.id) as d;
  if coalesce(cardinality(v_ids), 0) not between 1 and 500 or array_position(v_ids, null) is not null then
    raise exception 'operator_call_action: p_ids must hold 1 to 500 ids, none null (got %)',
      coalesce(cardinality(p_ids), 0)
      using errcode = 'invalid_parameter_value';
  end if;

  if p_action = 'reset' then
    -- (a reset and cancel_batch / retry_failed_batch of the row's batch, one at a time: batch_cancelled is exact)
    perform outcall_private.lock_batch_changes(b.batch_id)
       from (select distinct c.batch_id from public.pending_calls as c
              where c.id = any (v_ids) and c.batch_id is not null order by 1) as b;
  end if;

  with locked as (
    select c from public.pending_calls as c where c.id = any (v_ids) order by c.id for update
  )
  select jsonb_object_agg((l.c).id, jsonb_build_object(
           'before', outcall_private.call_snapshot(l.c),
           'reason', outcall_private.call_action_refusal(p_action, l.c)))
    into v_rows
    from locked as l;
  v_allowed := array(select e.key::uuid from jsonb_each(coalesce(v_rows, '{}')) as e
                      where e.value ->> 'reason' is null);

  -- One statement per action (the batch counters lock their rows once, in order).
  case p_action
    when 'retry_now' then
      update public.pending_calls set next_attempt_at = least(next_attempt_at, now()) where id = any (v_allowed);
    when 'cancel' then
      update public.pending_calls set call_status = 'cancelled', last_error = 'cancelled_by_operator'
       where id = any (v_allowed);
    when 'reset' then
      -- The terminal guard's exception for these rows, for this statement only (20_helpers.sql).
      perform set_config('outcall.resetting', v_allowed::text, true);
      update public.pending_calls
         set call_status = 'pending',
             attempt_offset = attempts,
             max_attempts = attempts + (max_attempts - attempt_offset),
             next_attempt_at = now(),
             last_error = null,
             archived_at = null
       where id = any (v_allowed);
      perform set_config('outcall.resetting', '', true);
    when 'archive' then
      update public.pending_calls set archived_at = coalesce(archived_at, now()) where id = any (v_allowed);
    else
      update public.pending_calls set archived_at = null where id = any (v_allowed) and archived_at is not null;
  end case;

  select jsonb_agg(
           case when r.value is null then
             jsonb_build_object('id', u.id, 'ok', false, 'call_status', null, 'reason', 'not_found',
                                'before', null, 'after', null)
           else
             jsonb_build_object('id', u.id, 'ok', r.value ->> 'reason' is null, 'call_status', (a.c).call_status,
                                'before', r.value -> 'before', 'after', outcall_private.call_snapshot(a.c))
             || case when r.value ->> 'reason' is not null
                     then jsonb_build_object('reason', r.value ->> 'reason') else '{}' end
           end
           order by u.n)
    into v_results
    from unnest(v_ids) with ordinality as u (id, n)
    left join jsonb_each(coalesce(v_rows, '{}')) as r on r.key = u.id::text
    left join lateral (select c from public.pending_calls as c where c.id = u.id) as a on true;

  perform outcall_private.record_operator_action(v_operator, p_action, 'call', v_ids,
                                                 jsonb_build_object('results', v_results));
  return jsonb_build_object(
    'action', p_action,
    'results', (select jsonb_agg(e - 'before' - 'after' order by n)
                  from jsonb_array_elements(v_results) with ordinality as t (e, n)));
end
$$;

comment on function public.operator_call_action(text, uuid[]) is
  'An operator''s action on 1 to 500 calls: retry_now (pending | retry_pending due now), cancel (pending | retry_pending -> cancelled), reset (pending | retry_pending | failed | cancelled | suppressed -> pending with a fresh budget, due now), archive (not dispatching/calling), unarchive. {action, results: [{id, ok, call_status, reason?}]} in the order given; reason: not_found | live | terminal | completed | batch_cancelled | expired | suppressed. One operator_actions row. Not an operator: 42501; another action, no id, over 500 or a null id: 22023.';

-- Batches -------------------------------------------------------------------------------------------------------

-- operator_batch_action: cancel_batch, retry_failed_batch, or pause / resume (set_batch_paused), all in
-- 60_batches.sql, audited with the batch's progress before and after. Answers theirs with {action, ok}: ok false
-- only when it refused (retry_failed of a cancelled batch: error batch_cancelled; pause or resume of a finished
-- batch: batch_completed | batch_cancelled; nothing changed). An unknown batch: P0002.
create or replace function public.operator_batch_action(p_batch_id uuid, p_action text) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_operator outcall_private.operators := outcall_private.acting_operator('operator_batch_action');
  v_before jsonb;
  v_answer jsonb;
begin
  if p_action is null or p_action not in ('cancel', 'retry_failed', 'pause', 'resume') then
    raise exception 'operator_batch_action: p_action must be cancel, retry_failed, pause or resume, not %',
      coalesce(p_action, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if p_batch_id is null then
    raise exception 'operator_batch_action: p_batch_id is required' using errcode = 'invalid_parameter_value';
  end if;
  -- (taken again by cancel_batch / retry_failed_batch: the lock is the transaction's, so "before" is exact)
  perform outcall_private.lock_batch_changes(p_batch_id);
  select outcall_private.batch_progress_json(p) into v_before from public.batch_progress as p where p.batch_id = p_batch_id;
  if v_before is null then
    raise exception 'operator_batch_action: no batch %', p_batch_id using errcode = 'no_data_found';
  end if;

  v_answer := case p_action when 'cancel' then public.cancel_batch(p_batch_id)
                            when 'pause' then outcall_private.set_batch_paused(p_batch_id, true)
                            when 'resume' then outcall_private.set_batch_paused(p_batch_id, false)
                            else public.retry_failed_batch(p_batch_id) end;

  perform outcall_private.record_operator_action(v_operator, p_action, 'batch', array[p_batch_id],
    jsonb_build_object(
      'before', v_before,
      'after', (select outcall_private.batch_progress_json(p) from public.batch_progress as p
                 where p.batch_id = p_batch_id),
      'answer', v_answer));
  return jsonb_build_object('action', p_action, 'ok', not v_answer ? 'error') || v_answer;
end
$$;

comment on function public.operator_batch_action(uuid, text) is
  'An operator''s action on a batch: cancel (cancel_batch: {batch_id, status, cancelled, live}), retry_failed (retry_failed_batch: {batch_id, status, requeued}, or error batch_cancelled), pause or resume (the batch''s progress with changed, or error batch_completed | batch_cancelled), answered with {action, ok} added. One operator_actions row. Not an operator: 42501; another action: 22023; unknown batch: P0002.';

-- Classifications -----------------------------------------------------------------------------------------------

-- A classification as the audit and the answer show it.
create or replace function outcall_private.classification_snapshot(p_class public.call_classifications)
returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'id', p_class.id,
    'phone_number', p_class.phone_number,
    'classification_type', p_class.classification_type,
    'ivr_actions', p_class.ivr_actions,
    'confidence', p_class.confidence,
    'is_active', p_class.is_active,
    'classification_expires_at', p_class.classification_expires_at,
    'invalidated_at', p_class.invalidated_at,
    'invalidated_reason', p_class.invalidated_reason)
$$;

-- operator_classification_action ------------------------------------------------------------------------------
--   invalidate  p_correction {reason}: the classification is deactivated (invalidated_at, invalidated_reason =
--               the reason), as a verification run does (47_learning.sql's invalidate_classification, which takes
--               a run): the phone's next call learns it again
--   correct     p_correction {classification_type, ivr_actions, reason}: both replaced, checked by the table's
--               constraints (a human line has no actions, an IVR at least one, each {action, value, timing_ms});
--               the old values stay in the audit row. Its expiry, confidence and evidence are kept.
-- Only an active classification is changed: an inactive one (invalidated, or replaced by a newer one of the phone)
-- is history, answered ok false, reason inactive (correcting it would not be used; the phone is learned again).
-- A missing or blank reason, a correction of the wrong shape or that the table refuses: 22023.
create or replace function public.operator_classification_action(
  p_classification_id uuid,
  p_action text,
  p_correction jsonb
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_operator outcall_private.operators := outcall_private.acting_operator('operator_classification_action');
  v_note text := case when jsonb_typeof(p_correction -> 'reason') = 'string'
                      then nullif(btrim(p_correction ->> 'reason'), '') end;
  v_before public.call_classifications;
  v_after public.call_classifications;
  v_refusal text;
begin
  if p_action is null or p_action not in ('invalidate', 'correct') then
    raise exception 'operator_classification_action: p_action must be invalidate or correct, not %',
      coalesce(p_action, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if v_note is null then
    raise exception 'operator_classification_action: p_correction.reason is required (a non-blank string)'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_action = 'correct' and (jsonb_typeof(p_correction -> 'classification_type') is distinct from 'string'
                               or jsonb_typeof(p_correction -> 'ivr_actions') is distinct from 'array') then
    raise exception 'operator_classification_action: correct needs p_correction.classification_type (a string) and p_correction.ivr_actions (an array)'
      using errcode = 'invalid_parameter_value';
  end if;

  select * into v_before from public.call_classifications where id = p_classification_id for update;
  if not found then
    raise exception 'operator_classification_action: no classification %', p_classification_id
      using errcode = 'no_data_found';
  end if;

  v_after := v_before;
  if not v_before.is_active then
    v_refusal := 'inactive';
  elsif p_action = 'invalidate' then
    update public.call_classifications
       set is_active = false, invalidated_at = now(), invalidated_reason = v_note
     where id = v_before.id
    returning * into v_after;
  else
    begin
      update public.call_classifications
         set classification_type = p_correction ->> 'classification_type',
             ivr_actions = p_correction -> 'ivr_actions'
       where id = v_before.id
      returning * into v_after;
    exception when check_violation then
      raise exception 'operator_classification_action: the correction is not a valid classification: %', sqlerrm
        using errcode = 'invalid_parameter_value';
    end;
  end if;

  perform outcall_private.record_operator_action(v_operator, p_action, 'classification', array[v_before.id],
    jsonb_build_object('ok', v_refusal is null, 'note', v_note,
                       'before', outcall_private.classification_snapshot(v_before),
                       'after', outcall_private.classification_snapshot(v_after))
    || case when v_refusal is not null then jsonb_build_object('reason', v_refusal) else '{}' end);
  return jsonb_build_object('action', p_action, 'classification_id', v_before.id, 'ok', v_refusal is null,
                            'classification', outcall_private.classification_snapshot(v_after))
         || case when v_refusal is not null then jsonb_build_object('reason', v_refusal) else '{}' end;
end
$$;

comment on function public.operator_classification_action(uuid, text, jsonb) is
  'An operator''s action on an active classification: invalidate (p_correction {reason}: deactivated, invalidated_reason = reason) or correct (p_correction {classification_type, ivr_actions, reason}: replaced, checked by the table). {action, classification_id, ok, reason?: inactive, classification: {id, phone_number, classification_type, ivr_actions, confidence, is_active, classification_expires_at, invalidated_at, invalidated_reason}}. One operator_actions row (before, after, note). Not an operator: 42501; another action, no reason, a bad correction: 22023; unknown id: P0002.';

-- Do-not-call -----------------------------------------------------------------------------------------------------

-- operator_suppression_action: the dashboard's do-not-call page. add (p_reason, p_source manual | clinic: an
-- sms_opt_out entry is the SMS triggers' to make) and remove are 62_suppression.sql's add_suppression (added_by =
-- the operator's email) and remove_suppression, audited with target_kind suppression: no uuid names a phone, so
-- target_ids is empty and the phone is in detail ({phone, answer}). Checked here too, before anything is written
-- (the Worker parses the body first): a phone not in E.164, an sms_opt_out or unknown source, a reason over 500
-- characters: 22023.
create or replace function public.operator_suppression_action(
  p_action text,
  p_phone text,
  p_reason text default null,
  p_source text default null
) returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_operator outcall_private.operators := outcall_private.acting_operator('operator_suppression_action');
  v_answer jsonb;
begin
  if p_action is null or p_action not in ('add', 'remove') then
    raise exception 'operator_suppression_action: p_action must be add or remove, not %', coalesce(p_action, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  -- (the phone is not quoted: messages reach the HTTP answer and logs)
  if p_phone is null or not outcall_private.is_e164(p_phone) then
    raise exception 'operator_suppression_action: p_phone must be a phone number in E.164 (+ and 8 to 15 digits)'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_action = 'add' and coalesce(p_source, 'manual') not in ('manual', 'clinic') then
    raise exception 'operator_suppression_action: p_source must be manual or clinic, not %', p_source
      using errcode = 'invalid_parameter_value';
  end if;
  if char_length(p_reason) > 500 then
    raise exception 'operator_suppression_action: p_reason is longer than 500 characters'
      using errcode = 'invalid_parameter_value';
  end if;

  v_answer := case p_action
    when 'add' then public.add_suppression(p_phone, p_reason, coalesce(p_source, 'manual'), v_operator.email)
    else public.remove_suppression(p_phone) end;

  perform outcall_private.record_operator_action(v_operator, p_action, 'suppression', '{}'::uuid[],
                                                 jsonb_build_object('phone', p_phone, 'answer', v_answer));
  return jsonb_build_object('action', p_action) || v_answer;
end
$$;

comment on function public.operator_suppression_action(text, text, text, text) is
  'An operator''s change to the do-not-call list: add (p_phone, p_reason, p_source manual | clinic; add_suppression with added_by = the operator''s email) -> {action, created, suppression}; remove (p_phone; remove_suppression) -> {action, removed, suppression | null}. suppression: {phone, reason, source, added_by, created_at}. One operator_actions row (target_kind suppression, target_ids {}, detail {phone, answer}). Not an operator: 42501; another action, a phone not in E.164, another source, a reason over 500 characters: 22023.';

-- ======== sql/schema/88_analytics.sql ========

-- 88: the dashboard's views: the calls list (public.call_list) and the analytics (public.analytics_*). Each is
-- security_invoker: it reads with the caller's rights, so the tables' RLS applies (viewers and operators read
-- them, anyone else gets no row; 90_security.sql grants SELECT). Days are UTC dates; counts are bigint, rates
-- numeric rounded to 4 places (null when there is nothing to divide by). pgTAP: sql/tests/21_analytics.sql.

-- The calls list ------------------------------------------------------------------------------------------------
-- One row per pending call with what the list and its CSV show: the row, its batch's name, and its current
-- attempt's session (attempt = attempts: the classification replayed, Twilio's status, when it was answered and
-- ended). Not the transcript (the call's page reads it from pending_calls).
create view public.call_list with (security_invoker = true) as
  select c.id,
         c.created_at,
         c.updated_at,
         c.batch_id,
         b.name as batch_name,
         c.exam_id,
         c.employee_name,
         c.client_name,
         c.clinic_name,
         c.phone,
         c.clinic_timezone,
         c.appointment_time,
         c.call_status,
         c.attempts,
         c.max_attempts,
         c.attempt_offset,
         c.next_attempt_at,
         c.last_error,
         c.ended_reason,
         c.success_evaluation,
         c.summary,
         c.duration_seconds,
         c.cost,
         c.archived_at,
         s.id as session_id,
         s.status as session_status,
         s.classification_id,
         s.classification_type,
         s.answered_by,
         s.answered_at,
         s.ended_at
    from public.pending_calls as c
    left join public.batches as b on b.id = c.batch_id
    left join public.call_sessions as s on s.pending_call_id = c.id and s.attempt = c.attempts;

comment on view public.call_list is
  'The calls list: every pending_calls row (id, created_at, updated_at, batch_id, batch_name, exam_id, employee_name, client_name, clinic_name, phone, clinic_timezone, appointment_time, call_status, attempts, max_attempts, attempt_offset, next_attempt_at, last_error, ended_reason, success_evaluation, summary, duration_seconds, cost, archived_at) with its current attempt''s session (session_id, session_status, classification_id and classification_type: the cached classification the attempt replayed, null when none; answered_by, answered_at, ended_at; all null before the first attempt). Archived rows included (filter on archived_at).';
comment on column public.call_list.classification_type is
  'The classification the current attempt replayed (human | ivr_only | ivr_then_human), null when it had none (a learning call, or not dialled yet).';

-- Success by clinic ---------------------------------------------------------------------------------------------
-- A success is VAPI's success evaluation read as true: its default rubric (PassFail) answers true or false; the
-- words below cover the other spellings a prompt may ask for. Scores of other rubrics (numbers, grades) are not
-- read as successes.
create view public.analytics_success_by_clinic with (security_invoker = true) as
  select t.clinic_name,
         t.calls,
         t.completed,
         t.failed,
         t.successful,
         round(t.successful::numeric / nullif(t.completed + t.failed, 0), 4) as success_rate
    from (select c.clinic_name,
                 count(*) as calls,
                 count(*) filter (where c.call_status = 'completed') as completed,
                 count(*) filter (where c.call_status = 'failed') as failed,
                 count(*) filter (where c.call_status = 'completed'
                                    and lower(btrim(c.success_evaluation)) in
                                        ('true', 'yes', 'pass', 'passed', 'success', 'successful')) as successful
            from public.pending_calls as c
           group by c.clinic_name) as t;

comment on view public.analytics_success_by_clinic is
  'Per clinic_name (null: rows without one), all rows archived or not: calls (rows), completed, failed (rows in those statuses), successful (completed with success_evaluation true, yes, pass, passed, success or successful, any case), success_rate = successful / (completed + failed) (rows still open or cancelled left out; null when none ended).';
comment on column public.analytics_success_by_clinic.success_rate is
  'successful / (completed + failed), 0..1, 4 places; null when no row ended completed or failed.';

-- Answer rate by the clinic's local hour and weekday ------------------------------------------------------------
-- An attempt is a session that reached Twilio (every status but dial_failed), placed at its start (created_at: the
-- claim, just before the dial) on the clinic's wall clock. Answered: the line was picked up, by a person, an IVR
-- or a machine: Twilio reported in-progress (answered_at) or completed (a completed call was answered).
-- busy, no-answer, failed and canceled were not; an attempt still ringing is not (yet).
create view public.analytics_answer_rate_by_hour with (security_invoker = true) as
  select t.clinic_name,
         t.clinic_timezone,
         t.local_weekday,
         t.local_hour,
         count(*) as attempts,
         count(*) filter (where t.answered) as answered,
         round((count(*) filter (where t.answered))::numeric / count(*), 4) as answer_rate
    from (select c.clinic_name,
                 c.clinic_timezone,
                 extract(isodow from s.created_at at time zone c.clinic_timezone)::int as local_weekday,
                 extract(hour from s.created_at at time zone c.clinic_timezone)::int as local_hour,
                 s.answered_at is not null or s.status in ('in-progress', 'completed') as answered
            from public.call_sessions as s
            join public.pending_calls as c on c.id = s.pending_call_id
           where s.status <> 'dial_failed') as t
   group by t.clinic_name, t.clinic_timezone, t.local_weekday, t.local_hour;

comment on view public.analytics_answer_rate_by_hour is
  'Per clinic (clinic_name, clinic_timezone), local_weekday (ISO: 1 = Monday .. 7 = Sunday) and local_hour (0..23) of the attempt''s start on the clinic''s wall clock: attempts (sessions that reached Twilio: every status but dial_failed), answered (Twilio reported in-progress, or completed: picked up by a person, an IVR or a machine), answer_rate = answered / attempts (4 places).';
comment on column public.analytics_answer_rate_by_hour.local_weekday is 'ISO day of week on the clinic''s clock: 1 = Monday .. 7 = Sunday.';
comment on column public.analytics_answer_rate_by_hour.local_hour is 'Hour of day on the clinic''s clock, 0..23.';

-- What the scheduler reads of it (smart_attempt_at, 20_helpers.sql): one clinic's slots of the week (week_slot),
-- rates[slot] = the slot's answer_rate where it has at least p_min_samples attempts, else null (rates itself null
-- when no slot has); overall = the clinic's answered over its attempts, every slot. The view's filter on
-- (clinic_name, clinic_timezone) reaches its rows through pending_calls_clinic_idx (10_tables.sql).
create or replace function outcall_private.clinic_answer_rates(
  p_clinic_name text, p_tz text, p_min_samples int, out rates numeric[], out overall numeric
)
language plpgsql stable
set search_path = ''
as $$
declare
  v_slot record;
  v_attempts bigint := 0;
  v_answered bigint := 0;
begin
  for v_slot in
    select a.local_weekday, a.local_hour, a.attempts, a.answered, a.answer_rate
      from public.analytics_answer_rate_by_hour as a
     where a.clinic_name = p_clinic_name and a.clinic_timezone = p_tz
  loop
    v_attempts := v_attempts + v_slot.attempts;
    v_answered := v_answered + v_slot.answered;
    if v_slot.attempts >= p_min_samples then
      rates := coalesce(rates, pg_catalog.array_fill(null::numeric, array[168]));
      rates[outcall_private.week_slot(v_slot.local_weekday, v_slot.local_hour)] := v_slot.answer_rate;
    end if;
  end loop;
  overall := round(v_answered::numeric / nullif(v_attempts, 0), 4);
end
$$;

-- Outcomes over time --------------------------------------------------------------------------------------------
create view public.analytics_outcomes_daily with (security_invoker = true) as
  select (c.created_at at time zone 'UTC')::date as day,
         c.call_status,
         c.ended_reason,
         count(*) as calls
    from public.pending_calls as c
   group by 1, 2, 3;

comment on view public.analytics_outcomes_daily is
  'Rows by the UTC day they were created (day), their status now (call_status) and VAPI''s last ended_reason (null: no report): calls. Archived rows included.';

-- Cost per day and per batch ------------------------------------------------------------------------------------
-- Cost and duration are the attempts' (call_sessions): VAPI's cost of each report + Twilio's price of each call
-- (25_cost.sql), Twilio's duration of each call,
-- so a row retried three times counts three times (pending_calls keeps only its last report's).
create view public.analytics_cost_daily with (security_invoker = true) as
  select (s.created_at at time zone 'UTC')::date as day,
         count(*) as calls,
         coalesce(sum(s.cost), 0) + coalesce(sum(s.twilio_price), 0) as cost,
         coalesce(sum(s.duration_seconds), 0) as duration_seconds,
         coalesce(sum(s.cost), 0) as vapi_cost,
         coalesce(sum(s.twilio_price), 0) as twilio_cost
    from public.call_sessions as s
   group by 1;

comment on view public.analytics_cost_daily is
  'Per UTC day of the attempt''s start (day): calls (attempts, i.e. sessions, of every status), cost (vapi_cost + twilio_cost: what outcall_private.daily_spend holds), duration_seconds (sum of Twilio''s call durations, 0 when none), vapi_cost (sum of VAPI''s reported cost, 0 when none), twilio_cost (sum of Twilio''s prices, 0 when none).';

create view public.analytics_cost_by_batch with (security_invoker = true) as
  select b.id as batch_id,
         b.name,
         b.created_at,
         count(distinct c.id) as calls,
         count(s.id) as attempts,
         coalesce(sum(s.cost), 0) + coalesce(sum(s.twilio_price), 0) as cost,
         coalesce(sum(s.duration_seconds), 0) as duration_seconds,
         coalesce(sum(s.cost), 0) as vapi_cost,
         coalesce(sum(s.twilio_price), 0) as twilio_cost
    from public.batches as b
    left join public.pending_calls as c on c.batch_id = b.id
    left join public.call_sessions as s on s.pending_call_id = c.id
   group by b.id;

comment on view public.analytics_cost_by_batch is
  'Per batch (batch_id, name, created_at): calls (its rows), attempts (their sessions), cost (vapi_cost + twilio_cost: the batch''s total_cost), duration_seconds (sum of their Twilio durations), vapi_cost (sum of the sessions'' reported cost, 0 when none), twilio_cost (sum of their Twilio prices, 0 when none). Rows without a batch are not in it (analytics_cost_daily has them).';

-- Learning and the cache ----------------------------------------------------------------------------------------
-- A learning call is a classification run of purpose learn (a verification run that heard a changed phone
-- system becomes one). A cache hit is an attempt dialled with a cached classification: the claim attaches one only
-- when it is active and unexpired (call_sessions.classification_id).
create view public.analytics_learning_daily with (security_invoker = true) as
  select d.day,
         coalesce(l.learning_calls, 0) as learning_calls,
         coalesce(a.dialled, 0) as dialled,
         coalesce(a.cache_hits, 0) as cache_hits,
         round(a.cache_hits::numeric / nullif(a.dialled, 0), 4) as hit_rate
    from (select (r.created_at at time zone 'UTC')::date as day from public.classification_runs as r
          union
          select (s.created_at at time zone 'UTC')::date from public.call_sessions as s) as d
    left join (select (r.created_at at time zone 'UTC')::date as day, count(*) as learning_calls
                 from public.classification_runs as r
                where r.purpose = 'learn'
                group by 1) as l on l.day = d.day
    left join (select (s.created_at at time zone 'UTC')::date as day,
                      count(*) as dialled,
                      count(*) filter (where s.classification_id is not null) as cache_hits
                 from public.call_sessions as s
                group by 1) as a on a.day = d.day;

comment on view public.analytics_learning_daily is
  'Per UTC day: learning_calls (classification_runs of purpose learn started that day, verification runs turned learning included), dialled (attempts: sessions), cache_hits (attempts that replayed a cached, active and unexpired classification), hit_rate = cache_hits / dialled (4 places; null when nothing was dialled).';

-- ======== sql/schema/90_security.sql ========

-- 90: privileges and row-level security, all of them.
--   anon:          nothing at all (no table privilege, no policy, no function).
--   authenticated: read-only (dashboards), and only an operator: SELECT privilege + a policy that reads every
--                  row when the caller is on the allow-list (outcall_private.is_viewer(), 85_operators.sql), none
--                  otherwise. No write privilege. Realtime's postgres_changes checks the same policies per
--                  subscriber, so the live feed follows the same rule. The one way to write: the operators'
--                  action functions (87_operator_actions.sql), SECURITY DEFINER, which refuse (42501) anyone
--                  but an operator with role operator.
--   service_role:  everything (bypasses RLS); the only role that may execute the state-machine functions.
-- Supabase grants everything in `public` to anon/authenticated by default, so each grant here is explicit.
-- Functions are executable by PUBLIC by default and that cannot be revoked per schema ahead of time: a function
-- added to the schema is revoked (and granted to service_role when the RPCs need it) here.
-- sql/tests/08_security.sql checks what each role may do.

-- Tables -------------------------------------------------------------------------------------------
alter table public.pending_calls enable row level security;
alter table public.call_sessions enable row level security;
alter table public.call_classifications enable row level security;
alter table public.batches enable row level security;
alter table public.classification_runs enable row level security;
alter table public.operator_actions enable row level security;
alter table public.sms_batches enable row level security;
alter table public.sms_messages enable row level security;
alter table public.sms_replies enable row level security;
alter table public.sms_opt_outs enable row level security;
alter table public.suppression_list enable row level security;
alter table public.breaker_transitions enable row level security;
alter table public.provider_errors_daily enable row level security;

revoke all on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  from public, anon, authenticated;
grant select on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  to authenticated;
grant all on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  to service_role;

-- Operators (viewer or operator) read every row; any other signed-in user reads none. `(select ...)`: the
-- check runs once per statement, not once per row.
create policy "operators can read" on public.pending_calls
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.call_sessions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.call_classifications
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.batches
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.classification_runs
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.operator_actions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_batches
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_messages
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_replies
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_opt_outs
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.suppression_list
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.breaker_transitions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.provider_errors_daily
  for select to authenticated using ((select outcall_private.is_viewer()));

-- The view over batches. security_invoker: the caller's rights and RLS on public.batches apply (a view without it
-- reads with its owner's rights, postgres's, and would bypass RLS). Every view in public must be so
-- (sql/tests/18_operators.sql checks).
revoke all on table public.batch_progress from public, anon, authenticated, service_role;
grant select on table public.batch_progress to authenticated, service_role;
-- The dashboard's views (88_analytics.sql), security_invoker likewise.
revoke all on table public.call_list, public.analytics_success_by_clinic, public.analytics_answer_rate_by_hour,
  public.analytics_outcomes_daily, public.analytics_cost_daily, public.analytics_cost_by_batch,
  public.analytics_learning_daily
  from public, anon, authenticated, service_role;
grant select on table public.call_list, public.analytics_success_by_clinic, public.analytics_answer_rate_by_hour,
  public.analytics_outcomes_daily, public.analytics_cost_daily, public.analytics_cost_by_batch,
  public.analytics_learning_daily
  to authenticated, service_role;

-- The state-machine functions (RPC) ---------------------------------------------------------------
revoke all on function
  public.claim_pending_call(uuid),
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.release_dial_slot(uuid, text),
  public.record_dial_result(uuid, text, text, text, boolean, text),
  public.provider_health(int, int),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid, text),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean),
  public.create_batch(jsonb),
  public.estimate_batch_cost(jsonb),
  public.sessions_lacking_price(int),
  public.record_twilio_price(uuid, numeric, text),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid),
  public.pause_batch(uuid),
  public.resume_batch(uuid),
  public.begin_listening(uuid, text),
  public.record_classification_run(uuid, jsonb, jsonb, numeric),
  public.invalidate_classification(uuid, text),
  public.create_sms_batch(jsonb),
  public.claim_sms(int, int),
  public.record_sms_send(uuid, text, text, text, int, int, text, int),
  public.sms_status_callback(text, text, int, uuid, int, numeric),
  public.record_sms_reply(text, text, text, text, text),
  public.sms_batch_status(uuid),
  public.sms_batch_messages(uuid, int, int),
  public.cancel_sms_batch(uuid),
  public.sms_to_reconcile(int, int),
  public.reconcile_sms(uuid, text, text),
  public.add_suppression(text, text, text, text),
  public.remove_suppression(text),
  public.list_suppressions(int, int)
  from public, anon, authenticated;
grant execute on function
  public.claim_pending_call(uuid),
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.release_dial_slot(uuid, text),
  public.record_dial_result(uuid, text, text, text, boolean, text),
  public.provider_health(int, int),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid, text),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean),
  public.create_batch(jsonb),
  public.estimate_batch_cost(jsonb),
  public.sessions_lacking_price(int),
  public.record_twilio_price(uuid, numeric, text),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid),
  public.pause_batch(uuid),
  public.resume_batch(uuid),
  public.begin_listening(uuid, text),
  public.record_classification_run(uuid, jsonb, jsonb, numeric),
  public.invalidate_classification(uuid, text),
  public.create_sms_batch(jsonb),
  public.claim_sms(int, int),
  public.record_sms_send(uuid, text, text, text, int, int, text, int),
  public.sms_status_callback(text, text, int, uuid, int, numeric),
  public.record_sms_reply(text, text, text, text, text),
  public.sms_batch_status(uuid),
  public.sms_batch_messages(uuid, int, int),
  public.cancel_sms_batch(uuid),
  public.sms_to_reconcile(int, int),
  public.reconcile_sms(uuid, text, text),
  public.add_suppression(text, text, text, text),
  public.remove_suppression(text),
  public.list_suppressions(int, int)
  to service_role;

-- The operators' actions (87_operator_actions.sql): SECURITY DEFINER, executable by signed-in users, who are
-- refused inside (42501) unless the allow-list names them operator; service_role may call them with a user's JWT.
revoke all on function
  public.operator_call_action(text, uuid[]),
  public.operator_batch_action(uuid, text),
  public.operator_classification_action(uuid, text, jsonb),
  public.operator_suppression_action(text, text, text, text)
  from public, anon, authenticated;
grant execute on function
  public.operator_call_action(text, uuid[]),
  public.operator_batch_action(uuid, text),
  public.operator_classification_action(uuid, text, jsonb),
  public.operator_suppression_action(text, text, text, text)
  to authenticated, service_role;

-- outcall_private: not exposed by the API, closed to the API roles ---------------------------------
revoke all on schema outcall_private from public, anon, authenticated;
revoke all on all functions in schema outcall_private from public, anon, authenticated;
revoke all on all tables in schema outcall_private from public, anon, authenticated;
-- The state-machine functions run with the caller's rights and share private helpers.
grant usage on schema outcall_private to service_role;

-- The operators' allow-list (85_operators.sql): written by postgres and service_role only, read by the API roles
-- only through is_viewer(), which every read policy calls as the querying user (hence its one grant to
-- authenticated; calling it needs no USAGE on the schema, the policy holds the function itself, not its name).
revoke all on table outcall_private.operators from public, anon, authenticated;
grant select, insert, update, delete on table outcall_private.operators to service_role;
grant execute on function outcall_private.is_viewer() to authenticated;
-- operator_of (85_operators.sql): the Worker asks it for a user whose JWT it verified; no user may ask it.
revoke all on function public.operator_of(uuid) from public, anon, authenticated;
grant execute on function public.operator_of(uuid) to service_role;
grant execute on function
  outcall_private.operator_role(),
  outcall_private.add_operator(text, text),
  outcall_private.remove_operator(text)
  to service_role;

-- The webhook's settings: postgres's only (the trigger functions that read them are SECURITY DEFINER).
revoke all on table outcall_private.settings from public, anon, authenticated, service_role;
-- The RPCs run with the caller's rights: service_role reads the policy and the live sessions, writes the rate
-- state, the send slots and the learned answer rates. It does not change the policy (that is postgres's, like the webhook settings).
grant select on table outcall_private.dispatch_policy, outcall_private.live_sessions to service_role;
grant select, update on table outcall_private.rate_state to service_role;
-- The day's spend (the daily cap's figure): read by the claim, written by the call_sessions trigger (definer).
grant select on table outcall_private.daily_spend to service_role;
grant select, insert, update, delete on table outcall_private.dial_requests to service_role;
-- The batches' turns and paces: the claims make a batch's row and move it.
grant select, insert, update on table outcall_private.batch_dispatch_state to service_role;
-- The providers' circuit breaker (35_breaker.sql): the RPCs move it.
grant select, update on table outcall_private.provider_breaker to service_role;
grant select, insert, update on table outcall_private.answer_rate_cache to service_role;
-- The SMS senders' pace: claim_sms makes a sender's row and moves its next slot.
grant select, insert, update on table outcall_private.sms_senders to service_role;

-- Check constraints run their function with the inserting role's rights: the writer needs EXECUTE
-- (not schema USAGE) on the validation helpers. Trigger functions need no grant. The RPCs share the rest.
grant execute on function
  outcall_private.is_e164(text),
  outcall_private.is_valid_timezone(text),
  outcall_private.ivr_actions_valid(jsonb),
  outcall_private.policy(),
  outcall_private.interval_ms(interval),
  outcall_private.calling_window_opening(text, timestamptz, int[], time, time),
  outcall_private.calling_window_opening(text, timestamptz),
  outcall_private.row_window_opening(public.pending_calls, timestamptz),
  outcall_private.retry_at(text, int),
  outcall_private.week_slot(int, int),
  outcall_private.clinic_answer_rates(text, text, int),
  outcall_private.learned_answer_rates(text, text, outcall_private.dispatch_policy),
  outcall_private.smart_attempt_at(public.pending_calls, timestamptz, timestamptz),
  outcall_private.batch_smart_starts(jsonb, uuid[], timestamptz, int[], time, time, timestamptz),
  outcall_private.retry_at(public.pending_calls, timestamptz),
  outcall_private.advance_pending_call(public.pending_calls, int, text, text),
  outcall_private.lock_dispatch_limits(),
  outcall_private.dial_request_lease(),
  outcall_private.vapi_context_fields(),
  outcall_private.dial_spacing(),
  outcall_private.send_slot_wait(uuid),
  outcall_private.limits_answer(),
  outcall_private.batch_limits_answer(uuid),
  outcall_private.batch_is_paused(uuid),
  outcall_private.note_turn(uuid),
  outcall_private.next_due_row(uuid),
  outcall_private.set_batch_paused(uuid, boolean),
  outcall_private.api_key_pause(uuid, boolean),
  outcall_private.post_pending_call_webhook(text, text, uuid),
  outcall_private.take_dial_slot(uuid),
  outcall_private.release_dial_slot(uuid),
  outcall_private.release_answered_dial(),
  outcall_private.phone_is_dialing(text),
  outcall_private.dispatch_gate(public.pending_calls),
  outcall_private.call_cost_estimate(boolean),
  outcall_private.batch_cost_estimate(text[]),
  outcall_private.cost_hold(uuid),
  outcall_private.start_attempt(public.pending_calls),
  outcall_private.fail_dial(public.pending_calls, public.call_sessions, text, text, boolean),
  outcall_private.lock_vapi_session(uuid, text),
  outcall_private.batch_progress_json(public.batch_progress),
  outcall_private.check_page(text, int, int),
  outcall_private.lock_batch_changes(uuid),
  outcall_private.idempotent_answer(uuid, text, text, jsonb),
  outcall_private.default_batch_name(timestamptz),
  outcall_private.learning_lease(),
  outcall_private.listening_is_over(public.classification_runs),
  outcall_private.abandon_stale_runs(text),
  outcall_private.open_listener(public.pending_calls, uuid, public.call_classifications),
  outcall_private.batch_status_of(timestamptz, timestamptz, timestamptz),
  outcall_private.sms_status_rank(text),
  outcall_private.is_twilio_sms_status(text),
  outcall_private.is_opted_out(text),
  outcall_private.record_twilio_opt_out(text),
  outcall_private.sms_sender_fields(text),
  outcall_private.undiallable_reason(public.pending_calls, timestamptz),
  outcall_private.suppression_json(public.suppression_list),
  outcall_private.count_provider_error(text, text),
  outcall_private.log_breaker_transition(text, text, text, int, text, uuid),
  outcall_private.breaker_transition_of(uuid),
  outcall_private.breaker_transition_field(uuid),
  outcall_private.breaker_probe_is_live(outcall_private.provider_breaker),
  outcall_private.breaker_answer(uuid),
  outcall_private.breaker_claimed(uuid),
  outcall_private.breaker_failure(uuid, text, text),
  outcall_private.breaker_success(uuid, text),
  outcall_private.give_attempt_back(public.pending_calls),
  outcall_private.due_at_reopen(public.pending_calls),
  outcall_private.vapi_failure_kind(text)
  to service_role;
