-- Realtime: the tables are in supabase_realtime, with full replica identity.
begin;
select plan(7);

select ok(exists (select 1 from pg_publication where pubname = 'supabase_realtime'), 'publication supabase_realtime exists');
select ok((select pubinsert and pubupdate and pubdelete from pg_publication where pubname = 'supabase_realtime'),
          'it publishes inserts, updates and deletes');
select is(array(select tablename::text from pg_publication_tables
                 where pubname = 'supabase_realtime' and schemaname = 'public'
                   and tablename in ('pending_calls', 'call_sessions', 'call_classifications', 'classification_runs',
                                     'operator_actions')
                 order by 1),
          array['call_classifications', 'call_sessions', 'classification_runs', 'operator_actions', 'pending_calls'],
          'the five tables are members (the operators'' audit too: the dashboard sees actions live)');
select is((select relreplident::text from pg_class where oid = 'public.pending_calls'::regclass), 'f',
          'pending_calls: replica identity full');
select is((select relreplident::text from pg_class where oid = 'public.call_sessions'::regclass), 'f',
          'call_sessions: replica identity full');
select is((select relreplident::text from pg_class where oid = 'public.call_classifications'::regclass), 'f',
          'call_classifications: replica identity full');
select is((select relreplident::text from pg_class where oid = 'public.classification_runs'::regclass), 'f',
          'classification_runs: replica identity full');

select * from finish();
rollback;
