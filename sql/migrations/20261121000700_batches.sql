-- Batches: many rows created, followed, cancelled and retried as one (the Worker's /api/v1/batches).
-- Contract: docs/architecture.md ("SQL functions"). The rules of ..._state_machine.sql and ..._reliability.sql
-- still hold; what this adds:
--   * public.batches: one row per batch with its counters (rows per status, durations, cost) and derived state
--     (started_at, completed_at, status), kept by statement-level triggers on pending_calls, so a dashboard
--     (Realtime on public.batches) or a poll (batch_progress_of) reads one row, never counts 10,000;
--   * a row's own calling window (the batch's schedule), intersected with the policy's;
--   * cancelling a batch (no row of it is ever dialled again) and requeueing its failed rows with a fresh budget
--     (the one deliberate way out of a terminal status);
--   * one webhook per batch insert instead of one per row.
--
-- Locks. Every writer of pending_calls locks its rows first and the batches rows last: the counter trigger
-- runs at the end of each statement and updates the batches it touched in ascending id order. cancel_batch
-- and retry_failed_batch keep that order too (rows first, batch row last); they serialize with each other on
-- a transaction-level advisory lock per batch (outcall_private.lock_batch_changes), taken before anything else
-- and by nothing else, so it cannot take part in a deadlock.

-- public.batches ---------------------------------------------------------------------------------------------
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
  -- dispatching -> dialling, calling -> in_progress, retry_pending -> retrying, completed, failed, cancelled).
  total int not null default 0 constraint batches_total_nonnegative check (total >= 0),
  queued int not null default 0 constraint batches_queued_nonnegative check (queued >= 0),
  dialling int not null default 0 constraint batches_dialling_nonnegative check (dialling >= 0),
  in_progress int not null default 0 constraint batches_in_progress_nonnegative check (in_progress >= 0),
  completed int not null default 0 constraint batches_completed_nonnegative check (completed >= 0),
  retrying int not null default 0 constraint batches_retrying_nonnegative check (retrying >= 0),
  failed int not null default 0 constraint batches_failed_nonnegative check (failed >= 0),
  cancelled int not null default 0 constraint batches_cancelled_nonnegative check (cancelled >= 0),
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
  -- What create_batch reported as rejected, answered again to a replay of the request.
  rejected jsonb not null default '[]'::jsonb
    constraint batches_rejected_array check (jsonb_typeof(rejected) = 'array'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  completed_at timestamptz,
  cancelled_at timestamptz,
  constraint batches_window_valid check (
    case when window_days is null and window_start is null and window_end is null then true
         when window_days is null or window_start is null or window_end is null then false
         else cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[] and window_start < window_end
    end)
);

comment on table public.batches is
  'A set of pending_calls created by one create_batch call. Counters (total, queued, dialling, in_progress, completed, retrying, failed, cancelled, duration_seconds_total, calls_with_duration, cost_total) and state (started_at, completed_at, status) are kept by triggers on pending_calls; cancelled_at by cancel_batch. status: queued -> in_progress -> completed, or cancelled.';

-- list_batches: newest first.
create index batches_created_at_idx on public.batches (created_at, id);

create trigger batches_set_updated_at
  before update on public.batches
  for each row execute function outcall_private.set_updated_at();

-- What follows from the counters, whoever writes the row: completed_at once every row is terminal (and null
-- again when retry_failed_batch requeues some), and the status.
create or replace function outcall_private.derive_batch_state() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  NEW.completed_at := case
    when NEW.total > 0 and NEW.completed + NEW.failed + NEW.cancelled = NEW.total
      then coalesce(NEW.completed_at, pg_catalog.now())
  end;
  NEW.status := case
    when NEW.cancelled_at is not null then 'cancelled'
    when NEW.completed_at is not null then 'completed'
    when NEW.started_at is not null then 'in_progress'
    else 'queued'
  end;
  return NEW;
end
$$;

create trigger batches_derive_state
  before insert or update on public.batches
  for each row execute function outcall_private.derive_batch_state();

-- pending_calls: batch, script, own window, redial, rounds ------------------------------------------------
alter table public.pending_calls
  add column batch_id uuid references public.batches (id) on delete cascade,
  add column prompt text,
  add column first_message text,
  -- The row's own calling window (from its batch's schedule), on top of the policy's; null: the policy's only.
  add column window_days int[],
  add column window_start time,
  add column window_end time,
  -- The row this one is a copy of (create_batch's pending_call_ids).
  add column redial_of uuid references public.pending_calls (id) on delete set null,
  -- Attempts used by earlier rounds (retry_failed_batch): this round's attempt n is attempts - attempt_offset.
  add column attempt_offset int not null default 0;

-- max_attempts counts from the first attempt of all; what bounds it is the budget of the round.
alter table public.pending_calls drop constraint pending_calls_max_attempts_range;
alter table public.pending_calls add constraint pending_calls_max_attempts_range
  check (attempt_offset >= 0 and (max_attempts - attempt_offset) between 1 and 20);
alter table public.pending_calls add constraint pending_calls_window_valid check (
  case when window_days is null and window_start is null and window_end is null then true
       when window_days is null or window_start is null or window_end is null then false
       else cardinality(window_days) >= 1 and window_days <@ '{1,2,3,4,5,6,7}'::int[] and window_start < window_end
  end);

comment on column public.pending_calls.batch_id is 'The batch this row belongs to (null: created on its own).';
comment on column public.pending_calls.attempt_offset is
  'Attempts used by earlier rounds (retry_failed_batch); max_attempts - attempt_offset is the budget of this round (1..20).';

-- A batch's rows in the order its results are listed (and the foreign key's index).
create index pending_calls_batch_idx on public.pending_calls (batch_id, created_at, id);
create index pending_calls_redial_of_idx on public.pending_calls (redial_of) where redial_of is not null;

-- The counters ------------------------------------------------------------------------------------------------
-- After each statement on pending_calls, the rows it inserted, deleted or changed (call_status, duration_seconds,
-- cost or batch_id; other updates, such as a claim deferring next_attempt_at, take no lock on a batch) are
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
      select n.batch_id, 1 as sign, n.call_status, n.duration_seconds, n.cost,
             n.call_status = 'dispatching' as dialled
        from new_rows as n$q$
    when 'DELETE' then $q$
      select o.batch_id, -1 as sign, o.call_status, o.duration_seconds, o.cost, false as dialled
        from old_rows as o$q$
    else $q$
      select c.batch_id, c.sign, c.call_status, c.duration_seconds, c.cost, c.dialled
        from old_rows as o
        join new_rows as n on n.id = o.id
       cross join lateral (values
               (o.batch_id, -1, o.call_status, o.duration_seconds, o.cost, false),
               (n.batch_id, 1, n.call_status, n.duration_seconds, n.cost,
                n.call_status = 'dispatching' and o.call_status is distinct from 'dispatching'))
             as c (batch_id, sign, call_status, duration_seconds, cost, dialled)
       where (o.call_status, o.duration_seconds, o.cost, o.batch_id)
             is distinct from (n.call_status, n.duration_seconds, n.cost, n.batch_id)$q$
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
             coalesce(sum(r.sign * r.duration_seconds), 0) as duration_seconds,
             sum(case when r.duration_seconds is not null then r.sign else 0 end)::int as with_duration,
             coalesce(sum(r.sign * r.cost), 0) as cost,
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
           duration_seconds_total = duration_seconds_total + d.duration_seconds,
           calls_with_duration = calls_with_duration + d.with_duration,
           cost_total = cost_total + d.cost,
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
-- final status. SECURITY DEFINER: it reads the batch whoever writes.
create or replace function outcall_private.stop_cancelled_batch_row() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.batches where id = NEW.batch_id and cancelled_at is not null) then
    NEW.call_status := 'cancelled';
    NEW.last_error := 'batch_cancelled';
  end if;
  return NEW;
end
$$;

create trigger pending_calls_batch_cancelled
  before update on public.pending_calls
  for each row
  when (NEW.batch_id is not null and NEW.call_status in ('pending', 'retry_pending'))
  execute function outcall_private.stop_cancelled_batch_row();

-- The terminal guard, with its one exception ----------------------------------------------------------------
-- (Replaces ..._schema.sql's version; same triggers.) A terminal state is never left, whoever writes, with one
-- deliberate exception: retry_failed_batch requeues the failed rows of batch X (failed -> pending), with the
-- transaction-local setting outcall.reopening = X for that one statement.
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
    if TG_TABLE_SCHEMA = 'public' and TG_TABLE_NAME = 'pending_calls' and v_old = 'failed' and v_new = 'pending'
       and v_new_row ->> 'batch_id' = pg_catalog.current_setting('outcall.reopening', true) then
      return NEW;
    end if;
    raise exception '%.% is terminal (%), cannot become %', TG_TABLE_NAME, TG_ARGV[0], v_old, v_new
      using errcode = 'check_violation';
  end if;
  return NEW;
end
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

-- When the next attempt of this row may start after its current attempt failed: the policy's delay for the
-- round's attempt number (attempts - attempt_offset) from now, pushed into the row's calling window;
-- 'infinity' when that window never opens (a null here must never mean "at once").
create or replace function outcall_private.retry_at(p_call public.pending_calls) returns timestamptz
language sql stable
set search_path = ''
as $$
  select coalesce(
           outcall_private.row_window_opening(
             p_call,
             pg_catalog.now()
               + p.retry_delays[least(greatest(p_call.attempts - p_call.attempt_offset, 1),
                                      pg_catalog.cardinality(p.retry_delays))]),
           'infinity')
    from outcall_private.policy() as p
$$;

-- How a pending call's status moves on an attempt's news --------------------------------------------------
-- (Replaces ..._reliability.sql's version; same signature and rules.) The retry is scheduled by
-- retry_at(row): the round's attempt number and the row's own window.
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

-- What stands between a claimable row and its dial ----------------------------------------------------------
-- (Replaces ..._reliability.sql's version; same signature and answers.) The window is the row's: the policy's
-- intersected with the row's own. A window that never opens is outside it for ever (next_attempt_at
-- 'infinity'), never "go ahead".
create or replace function outcall_private.dispatch_gate(p_call public.pending_calls) returns jsonb
language plpgsql volatile
set search_path = ''
as $$
declare
  v_opening timestamptz := outcall_private.row_window_opening(p_call, pg_catalog.now());
begin
  if v_opening is null or v_opening > pg_catalog.now() then
    v_opening := coalesce(v_opening, 'infinity');
    update public.pending_calls set next_attempt_at = v_opening where id = p_call.id;
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'outside_window', 'next_attempt_at', v_opening);
  end if;
  perform outcall_private.lock_dispatch_limits();
  if outcall_private.phone_is_dialing(p_call.phone) then
    return pg_catalog.jsonb_build_object('claimed', false, 'reason', 'phone_dialing', 'retry_after_ms', 250);
  end if;
  return outcall_private.limits_answer();
end
$$;

-- The webhook: one per batch insert -------------------------------------------------------------------------
-- The POST of one inserted row, in Supabase's database-webhook shape, to the configured URL (see
-- ..._webhook.sql); nothing without both settings. Never fails the insert: the sweep dispatches anyway.
create or replace function outcall_private.post_pending_call_webhook(p_schema text, p_table text, p_record jsonb)
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
        'record', p_record,
        'old_record', null),
      headers := pg_catalog.jsonb_build_object(
        'Content-Type', 'application/json',
        'X-Webhook-Secret', v_secret),
      timeout_milliseconds := 5000);
  exception
    when others then
      -- The insert must not fail because the fast path did; the sweep dispatches the row anyway.
      raise warning 'outcall: pending_calls webhook not queued for %: %', p_record ->> 'id', sqlerrm;
  end;
end
$$;

-- (Replaces ..._webhook.sql's version.) A pending row created on its own.
create or replace function outcall_private.notify_pending_call_inserted() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform outcall_private.post_pending_call_webhook(TG_TABLE_SCHEMA, TG_TABLE_NAME, pg_catalog.to_jsonb(NEW));
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
    perform outcall_private.post_pending_call_webhook(TG_TABLE_SCHEMA, TG_TABLE_NAME, pg_catalog.to_jsonb(v_row));
  end loop;
  return null;
end
$$;

drop trigger if exists pending_calls_webhook on public.pending_calls;
create trigger pending_calls_webhook
  after insert on public.pending_calls
  for each row
  when (NEW.call_status = 'pending' and NEW.batch_id is null)
  execute function outcall_private.notify_pending_call_inserted();
drop trigger if exists pending_calls_batch_webhook on public.pending_calls;
create trigger pending_calls_batch_webhook
  after insert on public.pending_calls
  referencing new table as new_rows
  for each statement execute function outcall_private.notify_batch_rows_inserted();

-- call_context -------------------------------------------------------------------------------------------------
-- (Replaces ..._state_machine.sql's version.) Adds the row's own script: prompt and first_message.
create or replace function public.call_context(p_pending_call_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select jsonb_build_object(
    'pending_call_id', c.id,
    'exam_id', c.exam_id,
    'employee_name', c.employee_name,
    'employee_dob', c.employee_dob,
    'client_name', c.client_name,
    'clinic_name', c.clinic_name,
    'clinic_timezone', c.clinic_timezone,
    'appointment_time', c.appointment_time,
    -- What the assistant says: the appointment on the clinic's wall clock.
    'appointment_local', to_char(c.appointment_time at time zone c.clinic_timezone,
                                 'FMDay, FMMonth FMDD, YYYY "at" FMHH12:MI AM'),
    'procedures', to_jsonb(c.procedures),
    'instructions', c.instructions,
    'variables', c.variables,
    'prompt', c.prompt,
    'first_message', c.first_message)
  from public.pending_calls as c
  where c.id = p_pending_call_id
$$;

comment on function public.call_context(uuid) is
  'What a call needs and nothing else (read-only): {pending_call_id, exam_id, employee_name, employee_dob, client_name, clinic_name, clinic_timezone, appointment_time, appointment_local, procedures, instructions, variables, prompt, first_message} or null.';

-- Progress -----------------------------------------------------------------------------------------------------
-- One row per batch, with the rates worked out. A view cannot be in a publication: Realtime streams
-- public.batches (the counters live there); this view is for dashboards' queries and the functions below.
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
         round(b.completed::numeric / nullif(b.completed + b.failed, 0), 4) as success_rate,
         round(b.duration_seconds_total / nullif(b.calls_with_duration, 0), 1) as average_duration_seconds,
         b.cost_total as total_cost,
         b.created_at,
         b.started_at,
         b.completed_at,
         b.cancelled_at,
         b.updated_at
    from public.batches as b;

comment on view public.batch_progress is
  'Per batch: its counters, success_rate (completed / (completed + failed)), average_duration_seconds, total_cost. Not in the Realtime publication (views cannot be): subscribe to public.batches, which carries the counters.';

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
      'cancelled', p.cancelled),
    'success_rate', p.success_rate,
    'average_duration_seconds', p.average_duration_seconds,
    'total_cost', p.total_cost,
    'created_at', p.created_at,
    'started_at', p.started_at,
    'completed_at', p.completed_at,
    'cancelled_at', p.cancelled_at,
    'updated_at', p.updated_at)
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

-- An existing batch's answer to a request with its idempotency key.
create or replace function outcall_private.idempotent_answer(p_batch public.batches, p_request_hash text)
returns jsonb
language sql stable
set search_path = ''
as $$
  select case
    when p_batch.request_hash is not distinct from p_request_hash then
      pg_catalog.jsonb_build_object('outcome', 'replayed', 'batch_id', p_batch.id, 'accepted', p_batch.total,
                                    'rejected', p_batch.rejected)
    else pg_catalog.jsonb_build_object('outcome', 'conflict', 'batch_id', p_batch.id)
  end
$$;

-- create_batch ---------------------------------------------------------------------------------------------------
-- The Worker has validated the request's shape, phones, duplicates and size; this checks what only the database
-- knows (time-zone names, the policy's window, which ids exist) and writes everything or nothing, set-based:
-- one batches row, one pending_calls row per target and a copy of each existing pending_call_ids row.
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
  v_targets jsonb;
  v_ids uuid[];
  v_found uuid[];
  v_rejected jsonb;
  v_errors jsonb;
  v_batch public.batches;
  v_targets_created int;
  v_copies_created int;
begin
  if pg_catalog.jsonb_typeof(p_request) is distinct from 'object' then
    raise exception 'create_batch: p_request must be a JSON object' using errcode = 'invalid_parameter_value';
  end if;
  v_key := p_request ->> 'idempotency_key';
  v_hash := p_request ->> 'request_hash';
  v_not_before := (p_request ->> 'not_before')::timestamptz;
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
      return outcall_private.idempotent_answer(v_batch, v_hash);
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

  -- A concurrent request with the same key waits here for the first to end; if that one committed, this one
  -- is its replay (or a conflict).
  insert into public.batches (name, metadata, idempotency_key, request_hash, not_before, window_days, window_start,
                              window_end, rejected)
  values (p_request ->> 'name', coalesce(nullif(p_request -> 'metadata', 'null'::jsonb), '{}'::jsonb), v_key, v_hash,
          v_not_before, v_days, v_start, v_end, v_rejected)
  on conflict (idempotency_key) do nothing
  returning * into v_batch;
  if not found then
    select * into v_batch from public.batches where idempotency_key = v_key;
    return outcall_private.idempotent_answer(v_batch, v_hash);
  end if;

  -- The targets; an absent (or null) field takes the column's default (..._schema.sql).
  insert into public.pending_calls (batch_id, employee_name, phone, exam_id, employee_dob, client_name, clinic_name,
                                    clinic_timezone, appointment_time, procedures, instructions, variables,
                                    max_attempts, prompt, first_message, next_attempt_at,
                                    window_days, window_start, window_end)
  select v_batch.id, t.employee_name, t.phone, t.exam_id, t.employee_dob, t.client_name, t.clinic_name,
         coalesce(t.clinic_timezone, 'America/New_York'), t.appointment_time, coalesce(t.procedures, '{}'),
         coalesce(t.instructions, '{}'::jsonb), coalesce(t.variables, '{}'::jsonb), coalesce(t.max_attempts, 3),
         t.prompt, t.first_message, coalesce(v_not_before, now()), v_days, v_start, v_end
    from jsonb_to_recordset(v_targets) as t(employee_name text, phone text, exam_id text, employee_dob date,
                                            client_name text, clinic_name text, clinic_timezone text,
                                            appointment_time timestamptz, procedures text[], instructions jsonb,
                                            variables jsonb, max_attempts int, prompt text, first_message text);
  get diagnostics v_targets_created = row_count;

  -- The copies: the original's call fields and the budget of its round, in this batch, on its schedule.
  insert into public.pending_calls (batch_id, redial_of, employee_name, phone, exam_id, employee_dob, client_name,
                                    clinic_name, clinic_timezone, appointment_time, procedures, instructions,
                                    variables, prompt, first_message, max_attempts, next_attempt_at,
                                    window_days, window_start, window_end)
  select v_batch.id, o.id, o.employee_name, o.phone, o.exam_id, o.employee_dob, o.client_name,
         o.clinic_name, o.clinic_timezone, o.appointment_time, o.procedures, o.instructions,
         o.variables, o.prompt, o.first_message, o.max_attempts - o.attempt_offset, coalesce(v_not_before, now()),
         v_days, v_start, v_end
    from public.pending_calls as o
   where o.id = any (v_found);
  get diagnostics v_copies_created = row_count;

  return jsonb_build_object('outcome', 'created', 'batch_id', v_batch.id,
                            'accepted', v_targets_created + v_copies_created, 'rejected', v_rejected);
end
$$;

comment on function public.create_batch(jsonb) is
  'Creates a batch from {name, metadata, idempotency_key, request_hash, not_before, window: {days, start, end}, targets: [pending_calls columns], pending_call_ids}: all or nothing. Returns {outcome: created, batch_id, accepted, rejected: [{pendingCallId, code: not_found, message}]} | {outcome: replayed, batch_id, accepted, rejected} | {outcome: conflict, batch_id} | {outcome: invalid, errors: [{index, pending_call_id, field, code: invalid_timezone | window_outside_policy | nothing_to_call, message, value}]}.';

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
  'A batch''s progress and one page of its rows (by created_at, id): {batch_id, name, status, total, counts: {queued, dialling, in_progress, completed, retrying, failed, cancelled}, success_rate, average_duration_seconds, total_cost, created_at, started_at, completed_at, cancelled_at, metadata, results: [{pending_call_id, phone, name, status, attempts, outcome, summary, success_evaluation, duration_seconds, cost, updated_at}], page: {limit, offset, total}} or null. p_limit 1..1000, p_offset >= 0 (else 22023).';

-- batch_progress_of -----------------------------------------------------------------------------------------------
create or replace function public.batch_progress_of(p_batch_id uuid) returns jsonb
language sql stable
set search_path = ''
as $$
  select outcall_private.batch_progress_json(p) from public.batch_progress as p where p.batch_id = p_batch_id
$$;

comment on function public.batch_progress_of(uuid) is
  'A batch''s progress, for frequent polling (one row read): {batch_id, name, status, total, counts: {queued, dialling, in_progress, completed, retrying, failed, cancelled}, success_rate, average_duration_seconds, total_cost, created_at, started_at, completed_at, cancelled_at} or null.';

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

-- Privileges (as ..._security.sql) --------------------------------------------------------------------------------
alter table public.batches enable row level security;
revoke all on table public.batches from public, anon, authenticated;
grant select on table public.batches to authenticated;
grant all on table public.batches to service_role;
drop policy if exists "authenticated can read" on public.batches;
create policy "authenticated can read" on public.batches
  for select to authenticated using (true);

revoke all on table public.batch_progress from public, anon, authenticated, service_role;
grant select on table public.batch_progress to authenticated, service_role;

revoke all on function
  public.create_batch(jsonb),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid)
  from public, anon, authenticated;
grant execute on function
  public.create_batch(jsonb),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid)
  to service_role;

revoke all on all functions in schema outcall_private from public, anon, authenticated;
-- The RPCs run with the caller's rights and share these helpers (trigger functions need no grant).
grant execute on function
  outcall_private.row_window_opening(public.pending_calls, timestamptz),
  outcall_private.retry_at(public.pending_calls),
  outcall_private.batch_progress_json(public.batch_progress),
  outcall_private.check_page(text, int, int),
  outcall_private.lock_batch_changes(uuid),
  outcall_private.idempotent_answer(public.batches, text)
  to service_role;

-- Realtime (as ..._realtime.sql) -------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  if not exists (select 1 from pg_catalog.pg_publication_tables
                  where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'batches') then
    alter publication supabase_realtime add table public.batches;
  end if;
end
$$;

alter table public.batches replica identity full;
