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
