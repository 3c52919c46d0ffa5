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
