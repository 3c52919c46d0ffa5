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
