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
