-- Batch SMS (sql/schema/65_sms.sql): create_sms_batch and its outcomes, every transition of sms_messages (claim,
-- record_sms_send, sms_status_callback, reconcile_sms, cancel_sms_batch), retries with the policy's delays and its
-- attempt cap, 21610, the terminal guard, the batch counters and state, the reads and their paging errors.
-- Pacing and opt-outs: 24_sms_opt_out.sql. All in one transaction: now() is one instant throughout.
begin;
select plan(124);

-- No pace here (24_sms_opt_out.sql has it): every claim gets every due message.
update outcall_private.dispatch_policy set sms_messages_per_second = null;

-- A batch of p_n messages to +1555300000k (k = position), 1 segment each except position 1 (2), from p_sender.
create function pg_temp.new_batch(p_key text, p_n int, p_sender text default '+15553009999') returns jsonb
language sql as $$
  select public.create_sms_batch(jsonb_build_object(
    'name', p_key, 'sender', p_sender, 'idempotency_key', p_key, 'request_hash', 'h-' || p_key,
    'body_template', 'Hi {{name}}', 'metadata', '{"campaign": "test"}'::jsonb,
    'messages', (select jsonb_agg(jsonb_build_object(
                   'to_phone', '+1555300000' || k, 'variables', jsonb_build_object('name', 'P' || k),
                   'body', 'Hi P' || k, 'encoding', 'GSM-7', 'segments', case when k = 1 then 2 else 1 end)
                   order by k)
                   from generate_series(0, p_n - 1) as k)))
$$;
create function pg_temp.msg(p_batch uuid, p_position int) returns public.sms_messages language sql as $$
  select * from public.sms_messages where batch_id = p_batch and position = p_position
$$;
create function pg_temp.status(p_batch uuid, p_position int) returns text language sql as $$
  select status from public.sms_messages where batch_id = p_batch and position = p_position
$$;
create function pg_temp.id(p_batch uuid, p_position int) returns uuid language sql as $$
  select id from public.sms_messages where batch_id = p_batch and position = p_position
$$;
create function pg_temp.batch(p_batch uuid) returns public.sms_batches language sql as $$
  select * from public.sms_batches where id = p_batch
$$;

-- create_sms_batch -----------------------------------------------------------------------------------------------
create temp table created as select pg_temp.new_batch('b1', 3) as j;
select (j ->> 'batch_id') as b1 from created \gset
select is((select j - 'batch_id' from created), '{"outcome": "created", "accepted": 3, "opted_out": []}'::jsonb,
          'create_sms_batch: created, 3 accepted, none opted out');
select is((select array_agg(position || ':' || to_phone || ':' || status || ':' || segments || ':' || attempts order by position)
             from public.sms_messages where batch_id = :'b1'),
          array['0:+15553000000:pending:1:0', '1:+15553000001:pending:2:0', '2:+15553000002:pending:1:0'],
          'one pending message per target, position = index, segments as sent');
select is((select variables from public.sms_messages where batch_id = :'b1' and position = 2), '{"name": "P2"}'::jsonb,
          'the variables are kept');
select is((select (status, total, pending, segments_total, sender, body_template, metadata, started_at, completed_at)::text
             from public.sms_batches where id = :'b1'),
          '(queued,3,3,4,+15553009999,"Hi {{name}}","{""campaign"": ""test""}",,)',
          'the batch: queued, its counters (total, pending, segments_total), sender, template, metadata');
select is(public.create_sms_batch('{"idempotency_key": "b1", "request_hash": "h-b1", "sender": "+15553009999",
                                    "messages": [{"to_phone": "+15553000000", "body": "x", "encoding": "GSM-7", "segments": 1}]}'),
          jsonb_build_object('outcome', 'replayed', 'batch_id', :'b1', 'accepted', 3, 'opted_out', '[]'::jsonb),
          'the same key and hash: replayed, the first answer again');
select is(public.create_sms_batch('{"idempotency_key": "b1", "request_hash": "other", "sender": "+15553009999",
                                    "messages": [{"to_phone": "+15553000000", "body": "x", "encoding": "GSM-7", "segments": 1}]}'),
          jsonb_build_object('outcome', 'conflict', 'batch_id', :'b1'), 'the same key, another hash: conflict');
select is((select count(*)::int from public.sms_batches where idempotency_key = 'b1'), 1, 'and still one batch');
select ok((public.create_sms_batch('{"sender": "MG0123456789abcdef0123456789abcdef",
                                     "messages": [{"to_phone": "+15553000100", "body": "x", "encoding": "UCS-2", "segments": 1}]}')
           ->> 'outcome') = 'created', 'no key: created (and a Messaging Service sender)');
select matches((select name from public.sms_batches where sender like 'MG%'), '^Batch \d{4}-\d\d-\d\d \d\d:\d\d UTC$',
               'no name: named after its creation time');
select throws_ok($$select public.create_sms_batch('[]')$$, '22023', null, 'p_request not an object: 22023');
select throws_ok($$select public.create_sms_batch('{"sender": "+15553009999", "messages": []}')$$, '22023', null,
                 'no messages: 22023');
select throws_ok($$select public.create_sms_batch('{"sender": "+15553009999", "messages": [
                     {"to_phone": "+15553000200", "body": "x", "encoding": "GSM-7", "segments": 1},
                     {"to_phone": "555", "body": "x", "encoding": "GSM-7", "segments": 1}]}')$$, '23514', null,
                 'a phone not E.164: refused (23514)...');
select is((select count(*)::int from public.sms_messages where to_phone = '+15553000200'), 0,
          '... and nothing written (all or nothing)');
select throws_ok($$select public.create_sms_batch('{"sender": "+15553009999", "messages": [
                     {"to_phone": "+15553000200", "body": "x", "encoding": "UTF-8", "segments": 1}]}')$$, '23514', null,
                 'an encoding other than GSM-7 / UCS-2: refused');
select throws_ok($$select public.create_sms_batch('{"sender": "Acme", "messages": [
                     {"to_phone": "+15553000200", "body": "x", "encoding": "GSM-7", "segments": 1}]}')$$, '23514', null,
                 'a sender neither E.164 nor a Messaging Service SID: refused');
-- (the Messaging Service batch is out of the way)
select is((public.cancel_sms_batch((select id from public.sms_batches where sender like 'MG%')) ->> 'cancelled')::int, 1,
          'the Messaging Service batch cancelled, for now');

-- claim_sms: pending -> submitting --------------------------------------------------------------------------------
create temp table claim1 as select public.claim_sms(2) as j;
select is((select jsonb_array_length(j -> 'messages') from claim1), 2, 'claim_sms(2): two messages');
select is((select j -> 'messages' -> 0 from claim1),
          jsonb_build_object('message_id', pg_temp.id(:'b1', 0), 'batch_id', :'b1', 'to', '+15553000000',
                             'from', '+15553009999', 'messaging_service_sid', null, 'body', 'Hi P0', 'attempt', 1,
                             'send_in_ms', 0),
          'the first: position 0, from the sender number, attempt 1, send now');
select is((select j -> 'messages' -> 1 ->> 'message_id' from claim1), pg_temp.id(:'b1', 1)::text, 'then position 1');
select is((select (j -> 'more_due')::text || ' ' || (j ->> 'retry_after_ms') from claim1), 'true 0',
          'more due (the limit stopped it): retry_after_ms 0');
select is(((pg_temp.msg(:'b1', 0)).status, (pg_temp.msg(:'b1', 0)).attempts, (pg_temp.msg(:'b1', 0)).submitting_since)::text,
          ('submitting', 1, now())::text, 'a claimed message: submitting, attempts 1, submitting_since now');
select is(((pg_temp.batch(:'b1')).status, (pg_temp.batch(:'b1')).started_at, (pg_temp.batch(:'b1')).pending,
           (pg_temp.batch(:'b1')).submitting)::text, ('in_progress', now(), 1, 2)::text,
          'the batch: in_progress from the first claim, pending 1, submitting 2');
create temp table claim2 as select public.claim_sms() as j;
select is((select jsonb_agg(m ->> 'message_id') from claim2, jsonb_array_elements(j -> 'messages') as m),
          jsonb_build_array(pg_temp.id(:'b1', 2)), 'the next claim: the one left, position 2');
select is((select j - 'messages' from claim2), '{"more_due": false, "retry_after_ms": null}'::jsonb,
          'then nothing pending at all: more_due false, retry_after_ms null');
select is(public.claim_sms(), '{"messages": [], "more_due": false, "retry_after_ms": null}'::jsonb,
          'a claim with nothing pending: no messages');
select throws_ok($$select public.claim_sms(0)$$, '22023', null, 'claim_sms: p_limit 0 is refused');
select throws_ok($$select public.claim_sms(10, -1)$$, '22023', null, 'claim_sms: a negative horizon is refused');

-- record_sms_send -------------------------------------------------------------------------------------------------
select is(public.record_sms_send(pg_temp.id(:'b1', 0), 'accepted', 'SM00000000000000000000000000000001', 'queued', 0),
          '{"recorded": true, "status": "queued"}'::jsonb, 'accepted: queued');
select is(((pg_temp.msg(:'b1', 0)).message_sid, (pg_temp.msg(:'b1', 0)).segments)::text,
          '(SM00000000000000000000000000000001,1)', 'the sid linked; num_segments 0 keeps our count');
select is(public.record_sms_send(pg_temp.id(:'b1', 0), 'accepted', 'SM00000000000000000000000000000001', 'queued'),
          '{"recorded": false, "status": "queued"}'::jsonb, 'a second answer for it: not recorded');
select is(public.record_sms_send(pg_temp.id(:'b1', 1), 'accepted', 'SM00000000000000000000000000000002', 'accepted', 3),
          '{"recorded": true, "status": "accepted"}'::jsonb, 'accepted through a Messaging Service: accepted');
select is(((pg_temp.msg(:'b1', 1)).segments, (pg_temp.batch(:'b1')).segments_total)::text, '(3,5)',
          'Twilio''s num_segments replaces ours, and segments_total follows');
select is(public.record_sms_send(gen_random_uuid(), 'retry'), null, 'an unknown message: null');
select throws_ok(format($$select public.record_sms_send(%L, 'sent')$$, pg_temp.id(:'b1', 2)), '22023', null,
                 'an unknown outcome: 22023');
select throws_ok(format($$select public.record_sms_send(%L, 'accepted')$$, pg_temp.id(:'b1', 2)), '22023', null,
                 'accepted without a sid: 22023');
select throws_ok(format($$select public.record_sms_send(%L, 'accepted', 'SMx', 'delivering')$$, pg_temp.id(:'b1', 2)),
                 '22023', null, 'accepted with a status Twilio does not have: 22023');
select is(public.record_sms_send(pg_temp.id(:'b1', 2), 'unknown'), '{"recorded": true, "status": "submitting"}'::jsonb,
          'unknown (no clear answer): stays submitting');

-- sms_status_callback: only forward --------------------------------------------------------------------------------
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'sending') - 'message_id',
          jsonb_build_object('batch_id', :'b1', 'status', 'sending', 'changed', true), 'queued -> sending');
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'queued') ->> 'changed', 'false',
          'a late queued: ignored');
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'sent') ->> 'status', 'sent', 'sending -> sent');
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'sent') ->> 'changed', 'false',
          'sent twice: the duplicate is ignored');
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'delivered', null, null, null, -0.0079)
          ->> 'status', 'delivered', 'sent -> delivered');
select is((pg_temp.msg(:'b1', 0)).price, -0.0079, 'the price recorded');
select is(public.sms_status_callback('SM00000000000000000000000000000001', 'failed', 30008) ->> 'status', 'delivered',
          'delivered is final: a later failed changes nothing');
select is((pg_temp.msg(:'b1', 0)).error_code, null, '... nor its error code');
select is(public.sms_status_callback('SM00000000000000000000000000000002', 'sent') ->> 'status', 'sent',
          'accepted -> sent (sending skipped: out of order is fine forward)');
select is(public.sms_status_callback('SM00000000000000000000000000000002', 'sending') ->> 'changed', 'false',
          'the sending that arrives after sent: ignored');
select is(public.sms_status_callback('SM00000000000000000000000000000002', 'undelivered', 30003) ->> 'status',
          'undelivered', 'sent -> undelivered');
select is((pg_temp.msg(:'b1', 1)).error_code, 30003, 'with its error code');
select is(public.sms_status_callback('SM00000000000000000000000000000002', 'delivered') ->> 'status', 'undelivered',
          'undelivered is final');
select is(public.sms_status_callback('SM0000000000000000000000000000dead', 'sent'), null, 'an unknown sid: null');
select is(public.sms_status_callback('SM0000000000000000000000000000dead', 'sent', null, pg_temp.id(:'b1', 0)), null,
          'an id that already has another sid: null');
select throws_ok($$select public.sms_status_callback('SM00000000000000000000000000000001', 'read')$$, '22023', null,
                 'a status we do not know: 22023');
-- The callback before Twilio's answer reached us (position 2 is submitting without a sid).
select is(public.sms_status_callback('SM00000000000000000000000000000003', 'sent', null, pg_temp.id(:'b1', 2)) ->> 'status',
          'sent', 'a callback by our id for a message without a sid: submitting -> sent');
select is((pg_temp.msg(:'b1', 2)).message_sid, 'SM00000000000000000000000000000003', 'and the sid is linked');
select is(public.record_sms_send(pg_temp.id(:'b1', 2), 'accepted', 'SM00000000000000000000000000000003', 'queued'),
          '{"recorded": false, "status": "sent"}'::jsonb, 'the create answer that comes later does not move it back');
select is(public.sms_status_callback('SM00000000000000000000000000000003', 'failed', 30007) ->> 'status', 'failed',
          'sent -> failed');

-- The terminal guard, whoever writes ---------------------------------------------------------------------------------
select throws_ok(format($$update public.sms_messages set status = 'pending' where id = %L$$, pg_temp.id(:'b1', 0)),
                 '23514', null, 'delivered is terminal, even for a hand-written update');
select throws_ok(format($$update public.sms_messages set status = 'sent' where id = %L$$, pg_temp.id(:'b1', 2)),
                 '23514', null, 'failed is terminal');

-- The batch: counters, completed -------------------------------------------------------------------------------------
select is(public.sms_batch_status(:'b1') - 'created_at' - 'started_at' - 'completed_at',
          jsonb_build_object('batch_id', :'b1', 'name', 'b1', 'status', 'completed', 'sender', '+15553009999', 'total', 3,
                             'counts', '{"pending": 0, "submitting": 0, "queued": 0, "sent": 0, "delivered": 1,
                                         "undelivered": 1, "failed": 1, "opted_out": 0, "cancelled": 0}'::jsonb,
                             'segments_total', 5, 'replies', 0, 'cancelled_at', null, 'metadata', '{"campaign": "test"}'::jsonb),
          'sms_batch_status: completed, one delivered, one undelivered, one failed, 5 segments');
select is((pg_temp.batch(:'b1')).completed_at, now(), 'completed_at: when nothing was pending or submitting any more');
select is(public.sms_batch_status(gen_random_uuid()), null, 'sms_batch_status of an unknown id: null');

-- Completed once Twilio has them all, even before their delivery reports.
select pg_temp.new_batch('b2', 2) ->> 'batch_id' as b2 \gset
select is(jsonb_array_length(public.claim_sms() -> 'messages'), 2, 'b2: both claimed');
select is(public.record_sms_send(pg_temp.id(:'b2', 0), 'accepted', 'SM00000000000000000000000000000020', 'queued') ->> 'status',
          'queued', 'b2/0 queued');
select is((pg_temp.batch(:'b2')).status, 'in_progress', 'b2: in progress while one is submitting');
select is(public.record_sms_send(pg_temp.id(:'b2', 1), 'accepted', 'SM00000000000000000000000000000021', 'scheduled') ->> 'status',
          'scheduled', 'b2/1 scheduled');
select is(((pg_temp.batch(:'b2')).status, (pg_temp.batch(:'b2')).queued, (pg_temp.batch(:'b2')).scheduled)::text,
          '(completed,1,1)', 'b2: completed once none is pending or submitting; one counter per status');
select is(public.sms_batch_status(:'b2') -> 'counts' -> 'queued', '2'::jsonb,
          'sms_batch_status counts Twilio''s queued, accepted, scheduled and sending as queued');
select is(public.sms_status_callback('SM00000000000000000000000000000020', 'delivered') ->> 'status', 'delivered',
          'a delivery report after completion still applies');
select is(((pg_temp.batch(:'b2')).delivered, (pg_temp.batch(:'b2')).queued)::text, '(1,0)', 'and the counters follow');
select is(public.sms_status_callback('SM00000000000000000000000000000021', 'failed', 21610) ->> 'status', 'failed',
          'a failed callback with 21610...');
select is((select source from public.sms_opt_outs where phone = '+15553000001'), 'twilio_21610',
          '... opts the phone out too');
delete from public.sms_opt_outs;

-- Retries: submitting -> pending, the policy's delays, the attempt cap ---------------------------------------------------
update outcall_private.dispatch_policy set sms_max_attempts = 3, sms_retry_delays = '{1 second, 5 seconds}';
select pg_temp.new_batch('b3', 1) ->> 'batch_id' as b3 \gset
select is(public.claim_sms() -> 'messages' -> 0 ->> 'attempt', '1', 'b3: attempt 1 claimed');
select is(public.record_sms_send(pg_temp.id(:'b3', 0), 'retry', null, null, null, 20429, 'Too Many Requests'),
          '{"recorded": true, "status": "pending"}'::jsonb, 'retry (429): pending again');
select is(((pg_temp.msg(:'b3', 0)).next_attempt_at, (pg_temp.msg(:'b3', 0)).error_code,
           (pg_temp.msg(:'b3', 0)).error_message)::text,
          (now() + interval '1 second', 20429, 'Too Many Requests')::text,
          'due after the policy''s first delay (1 s), with the error recorded');
select is(((pg_temp.batch(:'b3')).status, (pg_temp.batch(:'b3')).pending, (pg_temp.batch(:'b3')).completed_at)::text,
          '(in_progress,1,)', 'the batch is not completed while a message waits for its retry');
create temp table not_yet as select public.claim_sms() as j;
select is((select jsonb_array_length(j -> 'messages') || ' ' || (j ->> 'more_due') || ' ' || (j ->> 'retry_after_ms') from not_yet),
          '0 false 1000', 'not due yet: no message, retry_after_ms = the delay left');
update public.sms_messages set next_attempt_at = now() where id = pg_temp.id(:'b3', 0);
select is(public.claim_sms() -> 'messages' -> 0 ->> 'attempt', '2', 'once due: attempt 2');
select is(public.record_sms_send(pg_temp.id(:'b3', 0), 'retry', null, null, null, null, 'HTTP 503', 10000) ->> 'status',
          'pending', 'a 503 with Retry-After 10 s: pending');
select is((pg_temp.msg(:'b3', 0)).next_attempt_at, now() + interval '10 seconds',
          'due after the longer of the policy''s second delay (5 s) and Retry-After (10 s)');
update public.sms_messages set next_attempt_at = now() where id = pg_temp.id(:'b3', 0);
select is(public.claim_sms() -> 'messages' -> 0 ->> 'attempt', '3', 'attempt 3');
select is(public.record_sms_send(pg_temp.id(:'b3', 0), 'retry', null, null, null, null, 'HTTP 500'),
          '{"recorded": true, "status": "failed"}'::jsonb, 'a retryable failure of the last attempt (sms_max_attempts 3): failed');
select is(((pg_temp.msg(:'b3', 0)).attempts, (pg_temp.batch(:'b3')).status)::text, '(3,completed)',
          'three attempts; the batch completed');

-- Rejected: failed, or opted_out for 21610 ------------------------------------------------------------------------------
select pg_temp.new_batch('b4', 2) ->> 'batch_id' as b4 \gset
select is(jsonb_array_length(public.claim_sms() -> 'messages'), 2, 'b4: both claimed');
select is(public.record_sms_send(pg_temp.id(:'b4', 0), 'rejected', null, null, null, 21211, 'Invalid To'),
          '{"recorded": true, "status": "failed"}'::jsonb, 'rejected 21211: failed');
select is(((pg_temp.msg(:'b4', 0)).error_code, (pg_temp.msg(:'b4', 0)).error_message)::text, '(21211,"Invalid To")',
          'with Twilio''s code and message');
select is(public.record_sms_send(pg_temp.id(:'b4', 1), 'rejected', null, null, null, 21610, 'Unsubscribed recipient'),
          '{"recorded": true, "status": "opted_out"}'::jsonb, 'rejected 21610: opted_out');
select is((select source from public.sms_opt_outs where phone = '+15553000001'), 'twilio_21610',
          'and the phone is opted out (source twilio_21610)');
select is(((pg_temp.batch(:'b4')).failed, (pg_temp.batch(:'b4')).opted_out, (pg_temp.batch(:'b4')).status)::text,
          '(1,1,completed)', 'b4: one failed, one opted out, completed');
delete from public.sms_opt_outs;

-- Reconciliation: submitting without a sid --------------------------------------------------------------------------------
select pg_temp.new_batch('b5', 3) ->> 'batch_id' as b5 \gset
select is(jsonb_array_length(public.claim_sms() -> 'messages'), 3, 'b5: three claimed');
select is(public.sms_to_reconcile(0), '[]'::jsonb, 'claimed just now: nothing to reconcile yet');
update public.sms_messages set submitting_since = now() - interval '3 minutes' where batch_id = :'b5' and position < 2;
update public.sms_messages set submitting_since = now() - interval '4 minutes' where batch_id = :'b5' and position = 1;
select is(public.sms_to_reconcile(),
          jsonb_build_array(
            jsonb_build_object('message_id', pg_temp.id(:'b5', 1), 'to', '+15553000001', 'from', '+15553009999',
                               'messaging_service_sid', null, 'body', 'Hi P1',
                               'submitting_since', now() - interval '4 minutes'),
            jsonb_build_object('message_id', pg_temp.id(:'b5', 0), 'to', '+15553000000', 'from', '+15553009999',
                               'messaging_service_sid', null, 'body', 'Hi P0',
                               'submitting_since', now() - interval '3 minutes')),
          'sms_to_reconcile: submitting without a sid for over 2 minutes, oldest first');
select is(jsonb_array_length(public.sms_to_reconcile(120000, 1)), 1, 'p_limit is held');
select throws_ok($$select public.sms_to_reconcile(120000, 0)$$, '22023', null, 'sms_to_reconcile: p_limit 0 is refused');
select is(public.reconcile_sms(pg_temp.id(:'b5', 0), 'SM00000000000000000000000000000050', 'sent'),
          '{"recorded": true, "status": "sent"}'::jsonb, 'found at Twilio: its status, and the sid');
select is(public.reconcile_sms(pg_temp.id(:'b5', 1)), '{"recorded": true, "status": "pending"}'::jsonb,
          'not found at Twilio: pending again...');
select is(((pg_temp.msg(:'b5', 1)).next_attempt_at, (pg_temp.msg(:'b5', 1)).attempts)::text, (now(), 1)::text,
          '... due now, its attempt counted');
select is(public.reconcile_sms(pg_temp.id(:'b5', 1)), '{"recorded": false, "status": "pending"}'::jsonb,
          'reconcile of a message that is not submitting: not recorded');
select is(public.reconcile_sms(gen_random_uuid()), null, 'reconcile_sms of an unknown id: null');

-- cancel_sms_batch ------------------------------------------------------------------------------------------------------
-- b5: 0 sent, 1 pending, 2 submitting.
select is(public.cancel_sms_batch(:'b5'), jsonb_build_object('batch_id', :'b5', 'status', 'cancelled', 'cancelled', 1, 'live', 1),
          'cancel: the pending message cancelled, one still submitting (live)');
select is((pg_temp.msg(:'b5', 1)).status || '/' || (pg_temp.msg(:'b5', 1)).error_message, 'cancelled/batch_cancelled',
          'pending -> cancelled (batch_cancelled)');
select is(public.cancel_sms_batch(:'b5') ->> 'cancelled', '0', 'cancel again: nothing more to stop');
select is(public.record_sms_send(pg_temp.id(:'b5', 2), 'retry', null, null, null, 20429) ->> 'status', 'cancelled',
          'the submitting message''s retry after the cancel: cancelled, never sent again');
select is(((pg_temp.batch(:'b5')).status, (pg_temp.batch(:'b5')).cancelled, (pg_temp.batch(:'b5')).cancelled_at,
           (pg_temp.batch(:'b5')).completed_at is not null)::text,
          ('cancelled', 2, now(), true)::text, 'the batch: cancelled, 2 cancelled, and completed (nothing pending)');
select throws_ok(format($$update public.sms_messages set status = 'submitting' where id = %L$$, pg_temp.id(:'b5', 1)),
                 '23514', null, 'cancelled is terminal');
select pg_temp.new_batch('b6', 2) ->> 'batch_id' as b6 \gset
select is(public.cancel_sms_batch(:'b6') ->> 'cancelled', '2', 'b6 cancelled before any claim');
select is(public.claim_sms(), '{"messages": [], "more_due": false, "retry_after_ms": null}'::jsonb,
          'a cancelled batch''s messages are never claimed');
select is(public.cancel_sms_batch(:'b2') ->> 'status', 'completed', 'cancelling a completed batch: it stays completed');
select is(public.cancel_sms_batch(gen_random_uuid()), null, 'cancel_sms_batch of an unknown id: null');
select is(public.sms_status_callback('SM00000000000000000000000000000050', 'delivered') ->> 'status', 'delivered',
          'a message of a cancelled batch already at Twilio still gets its delivery report');

-- sms_batch_messages ------------------------------------------------------------------------------------------------------
select is(public.sms_batch_messages(:'b1', 2, 1) -> 'page', '{"limit": 2, "offset": 1, "total": 3}'::jsonb,
          'sms_batch_messages: the page');
select is((select jsonb_agg(m ->> 'position') from jsonb_array_elements(public.sms_batch_messages(:'b1', 2, 1) -> 'messages') as m),
          '["1", "2"]'::jsonb, 'by position, limit and offset held');
select is(public.sms_batch_messages(:'b1', 1, 0) -> 'messages' -> 0,
          jsonb_build_object('message_id', pg_temp.id(:'b1', 0), 'position', 0, 'to', '+15553000000', 'status', 'delivered',
                             'message_sid', 'SM00000000000000000000000000000001', 'error_code', null,
                             'error_message', null, 'segments', 1, 'encoding', 'GSM-7', 'attempts', 1, 'body', 'Hi P0',
                             'updated_at', (pg_temp.msg(:'b1', 0)).updated_at, 'replies', '[]'::jsonb),
          'a message as listed');
select is(public.sms_batch_messages(gen_random_uuid()), null, 'an unknown batch: null');
select throws_ok(format($$select public.sms_batch_messages(%L, 0)$$, :'b1'), '22023', null, 'p_limit 0: 22023');
select throws_ok(format($$select public.sms_batch_messages(%L, 1001)$$, :'b1'), '22023', null, 'p_limit 1001: 22023');
select throws_ok(format($$select public.sms_batch_messages(%L, 10, -1)$$, :'b1'), '22023', null, 'p_offset -1: 22023');
select throws_ok($$select public.sms_batch_messages(gen_random_uuid(), 0)$$, '22023', null,
                 'paging is checked before the id (as batch_status)');

-- Privileges ------------------------------------------------------------------------------------------------------------
select is(array(select p.oid::regprocedure::text from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
                 where n.nspname = 'public'
                   and p.proname in ('create_sms_batch', 'claim_sms', 'record_sms_send', 'sms_status_callback',
                                     'record_sms_reply', 'sms_batch_status', 'sms_batch_messages', 'cancel_sms_batch',
                                     'sms_to_reconcile', 'reconcile_sms')
                   and (has_function_privilege('anon', p.oid, 'execute')
                        or has_function_privilege('authenticated', p.oid, 'execute')
                        or not has_function_privilege('service_role', p.oid, 'execute'))),
          '{}'::text[], 'the ten SMS functions: service_role''s only');
select is((select count(*)::int from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
            where n.nspname = 'public' and p.proname in ('create_sms_batch', 'claim_sms', 'record_sms_send',
              'sms_status_callback', 'record_sms_reply', 'sms_batch_status', 'sms_batch_messages', 'cancel_sms_batch',
              'sms_to_reconcile', 'reconcile_sms')), 10, 'ten of them, one each');
select ok(not has_table_privilege('authenticated', 'public.sms_messages', 'insert')
          and has_table_privilege('authenticated', 'public.sms_messages', 'select')
          and not has_table_privilege('anon', 'public.sms_batches', 'select'),
          'the SMS tables: read by signed-in users (under RLS), never written by them; nothing for anon');
select is(array(select tablename::text from pg_publication_tables
                 where pubname = 'supabase_realtime' and tablename like 'sms_%' order by 1),
          array['sms_batches', 'sms_messages'], 'Realtime: sms_batches and sms_messages');

-- A batch scheduled decades ahead: the claim's wait is capped at an hour, not an integer overflow.
select public.create_sms_batch(jsonb_build_object('sender', '+15553008888', 'request_hash', 'far',
         'not_before', '2099-01-01T00:00:00Z', 'messages', jsonb_build_array(jsonb_build_object(
           'to_phone', '+15553008001', 'variables', '{}'::jsonb, 'body', 'Later', 'encoding', 'GSM-7', 'segments', 1))))
  is not null as far_batch \gset
select lives_ok($$select public.claim_sms(1000, 0)$$, 'claim_sms: a batch due in 2099 is no error');
select ok((public.claim_sms(1000, 0) ->> 'retry_after_ms')::bigint between 0 and 3600000,
          'claim_sms: retry_after_ms at most an hour');

select * from finish();
rollback;
