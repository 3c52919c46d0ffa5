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
