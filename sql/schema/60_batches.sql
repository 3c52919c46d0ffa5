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
