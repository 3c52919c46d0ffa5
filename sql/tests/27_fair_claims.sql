-- The turns between batches (claim_next_due), in one transaction: a batch of 1,000 rows does not starve one of 5,
-- the rows of no batch take their turn too, a paused batch gives up its turns. The same under concurrent claims:
-- 28_concurrent_batch_claims.sql.
begin;
select plan(11);

select test_fixtures.open_policy();
select test_fixtures.free_send_slots();
update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending');

-- The group of each of the next p_n claims of claim_next_due: a batch's name, or '-' for a row of no batch.
create function pg_temp.claim_groups(p_n int) returns text[] language plpgsql as $$
declare
  v_groups text[] := '{}';
  v_answer jsonb;
begin
  for i in 1 .. p_n loop
    v_answer := public.claim_next_due();
    v_groups := v_groups || coalesce((select coalesce(b.name, '-') from public.pending_calls as p
                                        left join public.batches as b on b.id = p.batch_id
                                       where p.id = (v_answer ->> 'pending_call_id')::uuid),
                                     v_answer ->> 'reason');
  end loop;
  return v_groups;
end $$;

-- Turns -----------------------------------------------------------------------------------------------------------
select test_fixtures.new_batch('Big', 1000, '301') as big \gset
select test_fixtures.new_batch('Small', 5, '302') as small \gset
-- Big was created (and its rows due) first, and is even more overdue: most-overdue-first would serve it 1,000 times.
update public.pending_calls set next_attempt_at = now() - interval '1 hour' where batch_id = :'big';
update public.batches set created_at = created_at - interval '1 minute' where id = :'big';
update public.pending_calls set next_attempt_at = now() - interval '2 hours' where batch_id = :'big' and employee_name = 'T1000';
select is(pg_temp.claim_groups(2), array['Big', 'Small'], 'the first two claims: one of each batch');
select is((select call_status from public.pending_calls where batch_id = :'big' and employee_name = 'T1000'), 'dispatching',
          'a batch''s turn takes its most overdue row');
select is(pg_temp.claim_groups(8), array['Big', 'Small', 'Big', 'Small', 'Big', 'Small', 'Big', 'Small'],
          'then in turns');
select is((select count(*)::int from public.pending_calls where batch_id = :'small' and call_status = 'dispatching'), 5,
          'the small batch is all dialled within its first five turns');
select is(pg_temp.claim_groups(3), array['Big', 'Big', 'Big'], 'then the big one has the slots to itself');
select test_fixtures.new_call('00000000-0000-0000-0000-0000002600a1');
select test_fixtures.new_call('00000000-0000-0000-0000-0000002600a2');
select is(pg_temp.claim_groups(4), array['-', 'Big', '-', 'Big'], 'the rows of no batch are one group, with its turns');
select is((select count(*)::int from public.pending_calls where batch_id = :'big' and call_status = 'dispatching'), 10,
          'Big: 10 dialled (5 in turn with Small, 3 alone, 2 in turn with the rows of no batch)');
-- A paused batch gives up its turns; a finished one is not searched
select public.pause_batch(:'big');
select is(pg_temp.claim_groups(1), array['idle'], 'Big paused, nothing else due: idle');
select public.resume_batch(:'big');
select is(pg_temp.claim_groups(1), array['Big'], 'resumed: Big again');
-- The search stays cheap: one probe per group, not a sort of every due row
select ok((select count(*) from outcall_private.batch_dispatch_state where batch_id in (:'big', :'small')) = 2,
          'each batch that was claimed has its turn recorded');
select ok(not exists (select 1 from public.pending_calls as p where p.batch_id = :'small' and p.call_status = 'pending'),
          'Small has nothing left to dial');
update public.pending_calls set call_status = 'cancelled' where call_status in ('pending', 'retry_pending');

select * from finish();
rollback;
