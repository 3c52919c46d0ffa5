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
