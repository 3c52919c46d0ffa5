-- Batch SMS (sql/schema/65_sms.sql), the rules around the state machine: opt-outs (an opted-out phone is never
-- texted, whenever the opt-out came), replies (record_sms_reply: tied to their batch, STOP / START, idempotent),
-- the per-sender send slots of claim_sms (segments per second), and claim_sms under concurrent claims (two more
-- connections, dblink, on committed rows: no message claimed twice, the rate held).
begin;
select plan(67);

-- A batch from p_sender to the phones p_phones (1 segment each, unless p_segments says otherwise).
create function pg_temp.new_batch(p_sender text, p_phones text[], p_segments int[] default null) returns jsonb
language sql as $$
  select public.create_sms_batch(jsonb_build_object(
    'sender', p_sender,
    'messages', (select jsonb_agg(jsonb_build_object('to_phone', p.phone, 'body', 'Hello', 'encoding', 'GSM-7',
                                                     'segments', coalesce(p_segments[p.n], 1)) order by p.n)
                   from unnest(p_phones) with ordinality as p(phone, n))))
$$;
create function pg_temp.id(p_batch uuid, p_position int) returns uuid language sql as $$
  select id from public.sms_messages where batch_id = p_batch and position = p_position
$$;
create function pg_temp.status(p_batch uuid, p_position int) returns text language sql as $$
  select status from public.sms_messages where batch_id = p_batch and position = p_position
$$;
create function pg_temp.sends(p_claim jsonb) returns int[] language sql as $$
  select coalesce(array_agg((m ->> 'send_in_ms')::int order by n), '{}')
    from jsonb_array_elements(p_claim -> 'messages') with ordinality as e(m, n)
$$;
update outcall_private.dispatch_policy set sms_messages_per_second = null;

-- Opted out before the batch ----------------------------------------------------------------------------------------
insert into public.sms_opt_outs (phone, source) values ('+15554000001', 'manual');
create temp table c1 as select pg_temp.new_batch('+15554009999', '{+15554000000,+15554000001,+15554000002}') as j;
select (j ->> 'batch_id') as b1 from c1 \gset
select is((select j -> 'opted_out' from c1), '[1]'::jsonb, 'create: the opted-out target''s position is answered');
select is((select j -> 'accepted' from c1), '3'::jsonb, 'accepted counts every message created');
select is(pg_temp.status(:'b1', 1), 'opted_out', 'it is created opted_out');
select is((select (total, pending, opted_out)::text from public.sms_batches where id = :'b1'), '(3,2,1)',
          'the counters: 2 pending, 1 opted out');
-- An opt-out after the batch was created
insert into public.sms_opt_outs (phone, source) values ('+15554000002', 'manual');
create temp table k1 as select public.claim_sms() as j;
select is((select array_agg(m ->> 'to') from k1, jsonb_array_elements(j -> 'messages') as m), array['+15554000000'],
          'the claim sends neither the one opted out at creation nor the one opted out since');
select is(pg_temp.status(:'b1', 2), 'opted_out', 'the one opted out since: opted_out by the claim');
select is((select attempts from public.sms_messages where batch_id = :'b1' and position = 2), 0, 'never attempted');
select is((select (status, pending, submitting, opted_out)::text from public.sms_batches where id = :'b1'),
          '(in_progress,0,1,2)', 'the batch counts it');
create temp table c0 as select public.create_sms_batch(jsonb_build_object('sender', '+15554009999', 'messages',
  jsonb_build_array(jsonb_build_object('to_phone', '+15554000001', 'body', 'x', 'encoding', 'GSM-7', 'segments', 1)))) as j;
select is((select j ->> 'opted_out' from c0), '[0]', 'a batch with only opted-out targets...');
select is((select b.status from public.sms_batches as b, c0 where b.id = (c0.j ->> 'batch_id')::uuid), 'completed',
          '... is completed at once (nothing to send)');

-- Replies ------------------------------------------------------------------------------------------------------------
select is(public.record_sms_send(pg_temp.id(:'b1', 0), 'accepted', 'SM00000000000000000000000000000a00', 'queued') ->> 'status',
          'queued', '+15554000000 is texted');
create temp table r1 as select public.record_sms_reply('SM0000000000000000000000000000r001', '+15554000000', '+15554009999',
                                                      'Thanks, see you') as j;
select is((select j - 'reply_id' from r1), jsonb_build_object('batch_id', :'b1', 'opted_out', false),
          'a reply: tied to the batch of the latest message sent to that phone');
select is((select (sms_message_id, opt_out_type, body)::text from public.sms_replies
            where message_sid = 'SM0000000000000000000000000000r001'),
          (pg_temp.id(:'b1', 0), null, 'Thanks, see you')::text, 'and to the message');
select is(public.record_sms_reply('SM0000000000000000000000000000r001', '+15554000000', '+15554009999', 'Thanks, see you'),
          (select j from r1), 'the same MessageSid again (Twilio retries): the same answer...');
select is((select count(*)::int from public.sms_replies where message_sid = 'SM0000000000000000000000000000r001'), 1,
          '... and one row');
select is(public.sms_batch_status(:'b1') -> 'replies', '1'::jsonb, 'sms_batch_status counts the replies');
select is((public.sms_batch_messages(:'b1', 1) -> 'messages' -> 0 -> 'replies' -> 0) - 'received_at',
          '{"body": "Thanks, see you", "opt_out_type": null}'::jsonb, 'sms_batch_messages lists them with their message');
select is(public.record_sms_reply('SM0000000000000000000000000000r002', '+15554000000', '+15554009999', ' Stop ', 'STOP')
          ->> 'opted_out', 'true', 'STOP: opted out');
select is((select (source, keyword, opted_out_at)::text from public.sms_opt_outs where phone = '+15554000000'),
          ('keyword', 'Stop', now())::text, 'the opt-out row: source keyword, the trimmed body');
select is(public.record_sms_reply('SM0000000000000000000000000000r002', '+15554000000', '+15554009999', ' Stop ', 'STOP')
          ->> 'opted_out', 'true', 'the STOP again: idempotent');
select is(public.record_sms_reply('SM0000000000000000000000000000r003', '+15554000000', '+15554009999', 'help', 'HELP')
          ->> 'opted_out', 'true', 'HELP changes nothing');
select is(public.record_sms_reply('SM0000000000000000000000000000r004', '+15554000000', '+15554009999', 'START', 'START')
          ->> 'opted_out', 'false', 'START: opted in again');
select is((select count(*)::int from public.sms_opt_outs where phone = '+15554000000'), 0, 'the row is deleted');
select is(public.record_sms_reply('SM0000000000000000000000000000r002', '+15554000000', '+15554009999', ' Stop ', 'STOP')
          ->> 'opted_out', 'false', 'a retry of the old STOP after START does not opt out again');
select is((select opt_out_type from public.sms_replies where message_sid = 'SM0000000000000000000000000000r004'), 'START',
          'the reply keeps its keyword type');
select is(public.record_sms_reply('SM0000000000000000000000000000r005', '+15554000077', '+15554009999', 'who is this?')
          ->> 'batch_id', null, 'a reply from a phone we never texted: no batch');
select throws_ok($$select public.record_sms_reply('SM0000000000000000000000000000r006', '+15554000000', '+15554009999', 'x', 'UNSUBSCRIBE')$$,
                 '22023', null, 'p_opt_out other than STOP / START / HELP: 22023');
-- The latest message wins: a second batch texts the same phone (a minute after the first).
update public.sms_messages set submitting_since = now() - interval '1 minute' where batch_id = :'b1';
create temp table c2 as select pg_temp.new_batch('+15554009999', '{+15554000000}') as j;
select (j ->> 'batch_id') as b2 from c2 \gset
select is(jsonb_array_length(public.claim_sms() -> 'messages'), 1, 'a second batch texts +15554000000 again');
select is(public.record_sms_reply('SM0000000000000000000000000000r007', '+15554000000', '+15554009999', 'ok') ->> 'batch_id',
          :'b2', 'its reply is tied to the second batch, the latest');

-- The send slots ------------------------------------------------------------------------------------------------------
update public.sms_messages set status = 'cancelled' where status = 'pending';
update outcall_private.dispatch_policy set sms_messages_per_second = 1;
-- One sender at 1 message a second.
select pg_temp.new_batch('+15554100001', '{+15554100100,+15554100101,+15554100102}') ->> 'batch_id' as p1 \gset
create temp table s1 as select public.claim_sms() as j;
select is((select pg_temp.sends(j) from s1), '{0}', '1/s: a claim at t returns one message, to send now');
select is((select (j -> 'more_due')::text from s1), 'false', 'more_due false: the sender''s next slot is past the horizon');
select is((select (j ->> 'retry_after_ms')::int from s1), 1000, 'retry_after_ms: the next slot, 1 s away');
select is((select messages_per_second from outcall_private.sms_senders where sender = '+15554100001'), 1::numeric,
          'the new sender got the policy''s pace');
create temp table s2 as select public.claim_sms() as j;
select is((select j - 'messages' from s2), '{"more_due": false, "retry_after_ms": 1000}'::jsonb,
          'the next claim at t: none, retry_after_ms 1000');
select is((select pg_temp.sends(j) from s2), '{}', '(no message)');
-- 10 a second, a horizon of 1 s.
update outcall_private.sms_senders set messages_per_second = 10 where sender = '+15554100001';
update public.sms_messages set status = 'cancelled' where status = 'pending';
select pg_temp.new_batch('+15554100002', array(select '+1555420' || lpad(k::text, 4, '0') from generate_series(1, 12) as k))
       ->> 'batch_id' as p2 \gset
insert into outcall_private.sms_senders (sender, messages_per_second) values ('+15554100002', 10);
create temp table s3 as select public.claim_sms(50, 1000) as j;
select is((select pg_temp.sends(j) from s3), '{0,100,200,300,400,500,600,700,800,900}',
          '10/s, horizon 1 s: ten messages, to send at 0, 100, ..., 900 ms');
select is((select (j -> 'more_due')::text || ' ' || (j ->> 'retry_after_ms') from s3), 'false 1000',
          'two left for the next slot, at 1 s');
select is((select next_slot_at from outcall_private.sms_senders where sender = '+15554100002'), now() + interval '1 second',
          'the sender''s next slot: 1 s on');
update public.sms_messages set status = 'cancelled' where status = 'pending';
-- Two segments take two slots.
select pg_temp.new_batch('+15554100003', '{+15554300001,+15554300002,+15554300003}', '{2,1,1}') ->> 'batch_id' as p3 \gset
insert into outcall_private.sms_senders (sender, messages_per_second) values ('+15554100003', 10);
select is(pg_temp.sends(public.claim_sms(50, 300)), '{0,200}',
          'a 2-segment message at 10/s: the next one 200 ms later (horizon 300 ms: two fit)');
update public.sms_messages set status = 'cancelled' where status = 'pending';
-- No limit: up to p_limit at once.
insert into outcall_private.sms_senders (sender, messages_per_second) values ('+15554100004', null);
select pg_temp.new_batch('+15554100004', array(select '+1555440' || lpad(k::text, 4, '0') from generate_series(1, 7) as k))
       ->> 'batch_id' as p4 \gset
create temp table s4 as select public.claim_sms(5) as j;
select is((select pg_temp.sends(j) from s4), '{0,0,0,0,0}', 'no limit: p_limit messages, all now');
select is((select (j -> 'more_due')::text from s4), 'true', 'and more due');
select is(pg_temp.sends(public.claim_sms(5)), '{0,0}', 'the rest');
-- Two senders, each at its own pace.
select pg_temp.new_batch('+15554100005', '{+15554500001,+15554500002}') ->> 'batch_id' as p5 \gset
select pg_temp.new_batch('+15554100006', '{+15554600001,+15554600002}') ->> 'batch_id' as p6 \gset
create temp table s5 as select public.claim_sms() as j;
select is((select array_agg(m ->> 'from' || '@' || (m ->> 'send_in_ms') order by m ->> 'from')
             from s5, jsonb_array_elements(j -> 'messages') as m),
          array['+15554100005@0', '+15554100006@0'], 'two new senders at 1/s: one message each, both now');
select is((select (j ->> 'retry_after_ms')::int from s5), 1000, 'then both wait for their next slot');
update outcall_private.sms_senders set next_slot_at = now() where sender = '+15554100006';
select is((select array_agg(m ->> 'from') from jsonb_array_elements(public.claim_sms() -> 'messages') as m),
          array['+15554100006'], 'the sender whose slot came claims its next message; the other still waits');
update public.sms_messages set status = 'cancelled' where status = 'pending';

-- Under concurrent claims ---------------------------------------------------------------------------------------------
-- Two more connections on committed rows: A claims in an open transaction while B claims. B waits for A's lock on
-- the sender row, then sees what A did.
create function pg_temp.on_a(p_sql text) returns jsonb language sql as $$
  select j from dblink('a', p_sql) as t(j jsonb)
$$;
select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
select is(dblink_exec('a', 'set statement_timeout = ''20s''') || dblink_exec('b', 'set statement_timeout = ''20s'''),
          'SETSET', 'A and B give up after 20 s');
-- A batch of 6 from a sender without limit, one of 3 from a sender at 1/s (committed).
select pg_temp.on_a($$select public.create_sms_batch('{"name": "conc-free", "sender": "+15554700001", "messages": [
  {"to_phone": "+15554700101", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700102", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700103", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700104", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700105", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700106", "body": "x", "encoding": "GSM-7", "segments": 1}]}')$$) ->> 'batch_id' as cfree \gset
select is(dblink_exec('a', $$insert into outcall_private.sms_senders (sender, messages_per_second)
                             values ('+15554700001', null), ('+15554700002', 1)$$), 'INSERT 0 2',
          'A commits the two senders: no limit, and 1/s');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is(jsonb_array_length(pg_temp.on_a('select public.claim_sms(4)') -> 'messages'), 4, 'A claims 4 of the 6');
select is(dblink_send_query('b', 'select public.claim_sms(10)'), 1, 'B claims up to 10 meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s lock on the sender');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
create temp table b1 as select test_fixtures.b_result() as j;
select is((select jsonb_array_length(j -> 'messages') from b1), 2, 'then B claims the 2 A left');
select is((select count(*)::int from dblink('a', format('select attempts from public.sms_messages where batch_id = %L', :'cfree'))
                                   as t(attempts int) where attempts = 1), 6,
          'each of the 6 claimed once, none twice');
-- The 1/s sender
select pg_temp.on_a($$select public.create_sms_batch('{"name": "conc-paced", "sender": "+15554700002", "messages": [
  {"to_phone": "+15554700201", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700202", "body": "x", "encoding": "GSM-7", "segments": 1},
  {"to_phone": "+15554700203", "body": "x", "encoding": "GSM-7", "segments": 1}]}')$$) ->> 'batch_id' as cpaced \gset
create function pg_temp.sent_at(p_claim jsonb) returns timestamptz[] language sql as $$
  -- The instants a claim's messages are to be sent: their claim's now() (submitting_since) + send_in_ms.
  select coalesce(array_agg(t.since + (m ->> 'send_in_ms')::int * interval '1 millisecond' order by t.since), '{}')
    from jsonb_array_elements(p_claim -> 'messages') as m
    cross join lateral dblink('a', format('select submitting_since from public.sms_messages where id = %L',
                                          m ->> 'message_id')) as t(since timestamptz)
$$;
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
create temp table a2 as select pg_temp.on_a('select public.claim_sms()') as j;
select is((select pg_temp.sends(j) from a2), '{0}', 'A claims one of the 1/s sender''s, to send now');
select is(dblink_send_query('b', 'select public.claim_sms()'), 1, 'B claims meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s lock on the sender');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
create temp table b2 as select test_fixtures.b_result() as j;
select is((select jsonb_array_length(j -> 'messages') from b2), 1,
          'then B claims one (its horizon reaches A''s next slot)...');
select ok((select (pg_temp.sent_at(b2.j))[1] >= (pg_temp.sent_at(a2.j))[1] + interval '1 second' from a2, b2),
          '... to be sent at least 1 s after A''s: the rate is held');
select ok((select bool_and(m ->> 'message_id' <> (a2.j -> 'messages' -> 0 ->> 'message_id'))
             from a2, b2, jsonb_array_elements(b2.j -> 'messages') as m),
          'and not A''s message');

-- Clean up the committed rows
select is(dblink_exec('a', $$delete from public.sms_batches where name in ('conc-free', 'conc-paced')$$), 'DELETE 2',
          'A deletes the batches (and their messages)');
select is(dblink_exec('a', $$delete from outcall_private.sms_senders where sender in ('+15554700001', '+15554700002')$$),
          'DELETE 2', 'and the senders');
select is(dblink_disconnect('a') || dblink_disconnect('b'), 'OKOK', 'A and B are closed');

select * from finish();
rollback;
