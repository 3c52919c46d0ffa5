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
