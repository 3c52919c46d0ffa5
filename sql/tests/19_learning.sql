-- Learning and verification runs (sql/schema/47_learning.sql): the claim's listener, one listening run per phone,
-- the 30-day rule, the single-use token, begin_listening, record_classification_run, invalidate_classification,
-- abandoned runs. The race of two claims of one phone commits through two dblink connections first (while this
-- transaction has written nothing they could wait for), and deletes what it committed.
begin;
select plan(115);

-- Shape --------------------------------------------------------------------------------------------------------
select has_table('public', 'classification_runs', 'the audit of learning and verification runs');
select columns_are('public', 'classification_runs', array[
  'id', 'phone', 'session_id', 'pending_call_id', 'purpose', 'status', 'token_sha256', 'stream_started_at',
  'result', 'confidence', 'ivr_actions', 'evidence', 'timeline', 'stt_seconds', 'verified_classification_id',
  'classification_id', 'invalidated_reason', 'created_at', 'finished_at']);
select fk_ok('public', 'classification_runs', 'session_id', 'public', 'call_sessions', 'id');
select fk_ok('public', 'classification_runs', 'classification_id', 'public', 'call_classifications', 'id');
select has_index('public', 'classification_runs', 'classification_runs_one_listening_per_phone', array['phone', 'purpose']);
select index_is_unique('public', 'classification_runs', 'classification_runs_one_listening_per_phone');
select function_returns('public', f, a, 'jsonb')
  from (values ('begin_listening', array['uuid', 'text']),
               ('record_classification_run', array['uuid', 'jsonb', 'jsonb', 'numeric']),
               ('invalidate_classification', array['uuid', 'text'])) as t(f, a);

-- The race: two claims of one unknown phone at once, the unique index decides ----------------------------------
-- (The dispatch lock and the one-dial-per-phone rule keep claims of one phone apart: here both connections call
-- start_attempt itself, past both, so that the index alone decides. B's insert waits for A's uncommitted run; once
-- A commits, B's call goes without a listener, and without an error.)
select is(test_fixtures.connect('a'), 'OK', 'connection A is open');
select is(test_fixtures.connect('b'), 'OK', 'connection B is open');
select (select pid from dblink('b', 'select pg_backend_pid()') as t(pid int)) as b_pid \gset
select is(dblink_exec('a', 'set statement_timeout = ''20s'''), 'SET', 'A gives up after 20 s');
select is(dblink_exec('b', 'set statement_timeout = ''20s'''), 'SET', 'B too');
create temp table saved_rate as select * from outcall_private.rate_state;
select is(dblink_exec('a', $$insert into public.pending_calls (id, employee_name, phone) values
                               ('00000000-0000-0000-0000-000000190f01', 'R1', '+15550003901'),
                               ('00000000-0000-0000-0000-000000190f02', 'R2', '+15550003901')$$),
          'INSERT 0 2', 'A commits two rows of one unknown phone');
select is(dblink_exec('a', 'begin'), 'BEGIN', 'A opens a transaction');
select is((select j -> 'listen' ->> 'purpose'
             from dblink('a', $$select outcall_private.start_attempt(p)::text from public.pending_calls as p
                                 where id = '00000000-0000-0000-0000-000000190f01'$$) as t(j jsonb)),
          'learn', 'A claims R1: a learning listener (not committed yet)');
select is(dblink_send_query('b', $$select outcall_private.start_attempt(p)::text from public.pending_calls as p
                                    where id = '00000000-0000-0000-0000-000000190f02'$$), 1, 'B claims R2 meanwhile');
select ok(test_fixtures.waits_for_lock(:b_pid), 'B waits for A''s run (the unique index)');
select is(dblink_exec('a', 'commit'), 'COMMIT', 'A commits');
create temp table b_claim as select test_fixtures.b_result() as j;
select ok((select j ? 'session_id' and j -> 'listen' = 'null'::jsonb from b_claim),
          'then B''s claim goes through without a listener, no error');
select is((select array_agg(purpose || ' ' || status) from public.classification_runs where phone = '+15550003901'),
          array['learn listening'], 'one learning run for the phone');
select is(dblink_exec('a', $$delete from public.pending_calls where id::text like '00000000-0000-0000-0000-000000190f0_'$$),
          'DELETE 2', 'A deletes the rows (their sessions and runs with them)');
select is(dblink_exec('a', (select format('update outcall_private.rate_state set next_slot_at = %L', next_slot_at)
                              from saved_rate)), 'UPDATE 1', 'and restores the rate state');
select is(dblink_exec('a', 'delete from outcall_private.dial_requests'), 'DELETE 0', 'their send slots went with them');
select is(dblink_disconnect('a'), 'OK', 'A is closed');
select is(dblink_disconnect('b'), 'OK', 'B is closed');

-- Fixtures -------------------------------------------------------------------------------------------------------
select test_fixtures.open_policy();
select test_fixtures.free_send_slots();

-- A new row of p_phone, claimed and dialled (so that the phone's next row may be claimed): the claim's answer.
create function pg_temp.call(p_phone text) returns jsonb language plpgsql as $$
declare
  v_id uuid;
  v_answer jsonb;
begin
  insert into public.pending_calls (employee_name, phone, employee_dob) values ('Zoe Quill', p_phone, '1970-01-02')
  returning id into v_id;
  v_answer := public.claim_pending_call(v_id);
  perform public.record_dial_result((v_answer ->> 'session_id')::uuid, 'CA' || replace(gen_random_uuid()::text, '-', ''));
  return v_answer;
end $$;
-- What a listener reports.
create function pg_temp.verdict(p_class text, p_confidence numeric, p_actions jsonb default '[]') returns jsonb
language sql as $$
  select jsonb_build_object('classification', p_class, 'confidence', p_confidence, 'ivr_actions', p_actions,
    'evidence', jsonb_build_object('prompts', jsonb_build_array('for appointments press 1'),
                                   'fingerprint', 'for appointments press 1', 'reasons', jsonb_build_array('menu')))
$$;
create function pg_temp.run(p_answer jsonb) returns uuid language sql as $$
  select (p_answer -> 'listen' ->> 'run_id')::uuid
$$;
create function pg_temp.active(p_phone text) returns public.call_classifications language sql as $$
  select * from public.call_classifications where phone_number = p_phone and is_active
$$;
create function pg_temp.sqlstate_of(p_sql text) returns text language plpgsql as $$
begin
  execute p_sql;
  return 'ok';
exception when others then
  return sqlstate;
end $$;
create temp table menu as
  select '[{"action": "wait", "timing_ms": 800}, {"action": "dtmf", "value": "1", "timing_ms": 2400}]'::jsonb as actions;

-- An unknown phone: a learning listener, a single-use token of which only the hash is kept ------------------------
create temp table c1 as select pg_temp.call('+15550003001') as j;
select is((select array(select jsonb_object_keys(j -> 'listen') order by 1) from c1), array['purpose', 'run_id', 'token'],
          'an unknown phone: the claim answers listen {run_id, purpose, token}');
select is((select j -> 'listen' ->> 'purpose' from c1), 'learn', 'purpose learn');
select matches((select j -> 'listen' ->> 'token' from c1), '^[A-Za-z0-9_-]{43}$',
               'the token: 32 random bytes in base64url without padding (43 characters)');
select row_eq($$select r.phone, r.session_id, r.pending_call_id, r.purpose, r.status, r.stream_started_at, r.finished_at
                  from public.classification_runs as r where r.id = (select pg_temp.run(j) from c1)$$,
              (select row('+15550003001'::text, (j ->> 'session_id')::uuid, (j ->> 'pending_call_id')::uuid,
                          'learn'::text, 'listening'::text, null::timestamptz, null::timestamptz) from c1),
              'the run: the phone, the call''s session and row, learn, listening');
select is((select token_sha256 from public.classification_runs where id = (select pg_temp.run(j) from c1)),
          (select sha256(convert_to(j -> 'listen' ->> 'token', 'UTF8')) from c1), 'its token_sha256 is the token''s SHA-256');
select is((select count(*)::int from public.classification_runs as r, c1
            where strpos(to_jsonb(r)::text, c1.j -> 'listen' ->> 'token') > 0
               or strpos(to_jsonb(r)::text, encode(convert_to(c1.j -> 'listen' ->> 'token', 'UTF8'), 'hex')) > 0), 0,
          'the token itself is stored nowhere in the run');
select isnt((select j -> 'listen' ->> 'token' from pg_temp.call('+15550003002') as j), (select j -> 'listen' ->> 'token' from c1),
            'every run has its own token');

-- Five rows of one unknown phone: exactly one learning run ---------------------------------------------------------
create temp table five as select n, pg_temp.call('+15550003003') as j from generate_series(1, 5) as n;
select is((select count(*)::int from five where j ? 'session_id'), 5, 'five rows of one unknown phone are claimed');
select is(array(select j -> 'listen' ->> 'purpose' from five order by n), array['learn', null, null, null, null],
          'the first gets the learning listener, the others none');
select is((select count(*)::int from public.classification_runs where phone = '+15550003003'), 1,
          'exactly one learning run for the phone');
select is((select pg_temp.sqlstate_of($$insert into public.classification_runs (phone, session_id, pending_call_id, purpose, token_sha256)
            select '+15550003003', s.id, s.pending_call_id, 'learn', sha256('x') from public.call_sessions as s
              join five on (five.j ->> 'session_id')::uuid = s.id where five.n = 2$$)), '23505',
          'a second listening learning run of the phone is refused by the unique index');

-- begin_listening ------------------------------------------------------------------------------------------------
select is(public.begin_listening((select (j ->> 'session_id')::uuid from c1), 'not-the-token'),
          '{"ok": false, "reason": "bad_token"}', 'a wrong token is refused');
select is(public.begin_listening((select (j ->> 'session_id')::uuid from c1), null),
          '{"ok": false, "reason": "bad_token"}', 'no token is refused');
select is(public.begin_listening('00000000-0000-0000-0000-0000001900ff', 'x'),
          '{"ok": false, "reason": "unknown_session"}', 'a session without a run is refused');
select is((select stream_started_at from public.classification_runs where id = (select pg_temp.run(j) from c1)), null,
          'refusals write nothing');
create temp table b1 as
  select public.begin_listening((j ->> 'session_id')::uuid, j -> 'listen' ->> 'token') as a from c1;
select is((select a from b1), (select jsonb_build_object('ok', true, 'run_id', pg_temp.run(j), 'purpose', 'learn',
                                                         'phone_known', false, 'classification', null) from c1),
          'the token: {ok, run_id, purpose learn, phone_known false, classification null}');
select is((select stream_started_at from public.classification_runs where id = (select pg_temp.run(j) from c1)), now(),
          'the token is consumed (stream_started_at)');
select is(public.begin_listening((select (j ->> 'session_id')::uuid from c1), (select j -> 'listen' ->> 'token' from c1)),
          '{"ok": false, "reason": "used"}', 'the same token again is refused: single use');

-- record_classification_run: bad verdicts write nothing ----------------------------------------------------------
select is(array(select pg_temp.sqlstate_of(format('select public.record_classification_run(%L, %L, null, null)',
                                                  (select pg_temp.run(j) from c1), v))
                  from unnest(array[
                    '[]',
                    '{"classification": "robot", "confidence": 0.9, "ivr_actions": [], "evidence": {}}',
                    '{"confidence": 0.9, "ivr_actions": [], "evidence": {}}',
                    '{"classification": "human", "confidence": 1.5, "ivr_actions": [], "evidence": {}}',
                    '{"classification": "human", "confidence": "high", "ivr_actions": [], "evidence": {}}',
                    '{"classification": "human", "ivr_actions": [], "evidence": {}}',
                    '{"classification": "ivr_only", "confidence": 0.9, "ivr_actions": [{"action": "press", "value": "1", "timing_ms": 0}], "evidence": {}}',
                    '{"classification": "human", "confidence": 0.9, "evidence": {}}',
                    '{"classification": "human", "confidence": 0.9, "ivr_actions": []}',
                    '{"classification": "human", "confidence": 0.9, "ivr_actions": [], "evidence": {"prompts": [1]}}',
                    '{"classification": "human", "confidence": 0.9, "ivr_actions": [], "evidence": {"fingerprint": ["x"]}}'
                  ]::jsonb[]) as v),
          array_fill('22023'::text, array[11]), 'every malformed verdict is refused with 22023');
select is(pg_temp.sqlstate_of(format('select public.record_classification_run(%L, %L, %L, null)',
                                     (select pg_temp.run(j) from c1), pg_temp.verdict('human', 0.9), '[]')), '22023',
          'a timeline that is not an object is refused');
select is(pg_temp.sqlstate_of(format('select public.record_classification_run(%L, %L, null, -1)',
                                     (select pg_temp.run(j) from c1), pg_temp.verdict('human', 0.9))), '22023',
          'negative STT seconds are refused');
select row_eq($$select status, result, finished_at from public.classification_runs where id = (select pg_temp.run(j) from c1)$$,
              row('listening'::text, null::text, null::timestamptz), 'the refused verdicts wrote nothing to the run');
select is((select count(*)::int from public.call_classifications where phone_number = '+15550003001'), 0,
          'nor a classification');
select is(public.record_classification_run('00000000-0000-0000-0000-0000001900ff', pg_temp.verdict('human', 0.9), null, null),
          null, 'an unknown run: null');

-- record_classification_run: a confident IVR is cached for 30 days ---------------------------------------------
create temp table rec1 as
  select public.record_classification_run(pg_temp.run(j),
           pg_temp.verdict('ivr_then_human', 0.85, (select actions from menu)),
           '{"duration_ms": 9000, "events": [{"type": "speech", "start_ms": 0, "end_ms": 2000, "text": "for appointments press 1"}]}',
           12.5) as a
    from c1;
select is((select array[a ->> 'ok', a ->> 'cached'] from rec1), array['true', 'true'], 'a confident ivr_then_human is cached');
select is((select (a ->> 'classification_id')::uuid from rec1), (select id from pg_temp.active('+15550003001')),
          'its classification_id is the phone''s active classification');
select row_eq($$select classification_type, ivr_actions, confidence, evidence, classification_expires_at, invalidated_at
                  from pg_temp.active('+15550003001')$$,
              row('ivr_then_human'::text, (select actions from menu), 0.85::real,
                  '{"prompts": ["for appointments press 1"], "fingerprint": "for appointments press 1"}'::jsonb,
                  now() + interval '30 days', null::timestamptz),
              'the classification: the type, the keys, the confidence, the menu''s prompts and fingerprint, 30 days');
select row_eq($$select status, result, confidence, ivr_actions, evidence ->> 'fingerprint', timeline -> 'duration_ms',
                       stt_seconds, finished_at
                  from public.classification_runs where id = (select pg_temp.run(j) from c1)$$,
              row('finished'::text, 'ivr_then_human'::text, 0.85::real, (select actions from menu),
                  'for appointments press 1'::text, '9000'::jsonb, 12.5::numeric, now()),
              'the run is finished with the verdict, the timeline and the STT seconds');
select is(public.record_classification_run((select pg_temp.run(j) from c1), pg_temp.verdict('voicemail', 0.99), null, null),
          (select a from rec1), 'recorded again (even another verdict): the first answer');
select row_eq($$select count(*)::int, bool_and(classification_type = 'ivr_then_human') from public.call_classifications
                 where phone_number = '+15550003001'$$, row(1, true), 'and nothing changed');

-- The 30-day rule: a cached classification blocks learning; the replay is verified ---------------------------------
create temp table c2 as select pg_temp.call('+15550003001') as j;
select is((select j -> 'listen' ->> 'purpose' from c2), 'verify', 'the next call replays the cached IVR: a verification run');
select is((select count(*)::int from public.classification_runs where phone = '+15550003001' and purpose = 'learn'), 1,
          'no second learning run while the classification is active and unexpired');
select is((select j -> 'listen' from pg_temp.call('+15550003001') as j), 'null'::jsonb,
          'another call while the verification listens: no listener (one per phone)');
create temp table b2 as
  select public.begin_listening((j ->> 'session_id')::uuid, j -> 'listen' ->> 'token') as a from c2;
select is((select a - 'run_id' from b2),
          jsonb_build_object('ok', true, 'purpose', 'verify', 'phone_known', true, 'classification',
            jsonb_build_object('id', (select id from pg_temp.active('+15550003001')),
                               'classification_type', 'ivr_then_human', 'ivr_actions', (select actions from menu),
                               'evidence', '{"prompts": ["for appointments press 1"], "fingerprint": "for appointments press 1"}'::jsonb)),
          'a verification run begins with what the replay should sound like');
select ok((select strpos(a::text, 'Quill') = 0 and strpos(a::text, '1970-01-02') = 0 from b2),
          'no personal data in begin_listening''s answer (the row''s name and date of birth)');
select is(public.record_classification_run((select pg_temp.run(j) from c2),
                                           pg_temp.verdict('ivr_then_human', 0.9, (select actions from menu)), null, 3),
          '{"ok": true, "cached": false, "classification_id": null}', 'a verification that heard the same menu caches nothing');
select is((select id from pg_temp.active('+15550003001')), (select (a ->> 'classification_id')::uuid from rec1),
          'the classification is unchanged');

-- A person answers: no listener at all; an expired classification: learning again --------------------------------
insert into public.call_classifications (phone_number, classification_type) values ('+15550003004', 'human');
select is((select j -> 'listen' from pg_temp.call('+15550003004') as j), 'null'::jsonb,
          'a human classification: no listener');
update public.call_classifications set classification_expires_at = now() - interval '1 second'
 where phone_number in ('+15550003001', '+15550003004');
select is((select j -> 'listen' ->> 'purpose' from pg_temp.call('+15550003004') as j), 'learn',
          'its expired human classification: the call learns');
create temp table c3 as select pg_temp.call('+15550003001') as j;
select is((select j -> 'listen' ->> 'purpose' from c3), 'learn', 'an expired IVR classification: the call learns');
select is(public.record_classification_run((select pg_temp.run(j) from c3), pg_temp.verdict('human', 0.7), null, null) ->> 'cached',
          'true', 'a human verdict at the threshold (0.7) is cached');
select row_eq($$select count(*)::int, count(*) filter (where is_active)::int,
                       (select classification_type from pg_temp.active('+15550003001'))
                  from public.call_classifications where phone_number = '+15550003001'$$,
              row(2, 1, 'human'::text), 'it replaces the expired one (deactivated): one active, human');
select is((select j -> 'listen' from pg_temp.call('+15550003001') as j), 'null'::jsonb,
          'and the next call has no listener');

-- What is never cached -----------------------------------------------------------------------------------------
create function pg_temp.learn_once(p_phone text, p_verdict jsonb) returns jsonb language sql as $$
  select public.record_classification_run(pg_temp.run(pg_temp.call(p_phone)), p_verdict, null, 1)
$$;
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('voicemail', 0.99)),
          '{"ok": true, "cached": false, "classification_id": null}', 'voicemail: nothing cached');
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('unknown', 0.99)),
          '{"ok": true, "cached": false, "classification_id": null}', 'unknown: nothing cached');
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('human', 0.69)) ->> 'cached', 'false',
          'human below the threshold: nothing cached');
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('ivr_only', 0.95)) ->> 'cached', 'false',
          'ivr_only without keys: nothing to replay, nothing cached');
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('human', 0.95, (select actions from menu))) ->> 'cached', 'false',
          'human with keys: nothing cached');
select is((select count(*)::int from public.call_classifications where phone_number = '+15550003005'), 0,
          'the phone has no classification');
select is(array(select purpose || ' ' || status || ' ' || result from public.classification_runs
                 where phone = '+15550003005' order by created_at, result),
          array['learn finished human', 'learn finished human', 'learn finished ivr_only', 'learn finished unknown',
                'learn finished voicemail'],
          'every call learned again, and each run is in the audit');
select is(pg_temp.learn_once('+15550003005', pg_temp.verdict('ivr_only', 0.7, '[{"action": "dtmf", "value": "3", "timing_ms": 1500}]'))
            ->> 'cached', 'true', 'a confident ivr_only with its keys is cached');

-- invalidate_classification: the menu changed; the same call learns ----------------------------------------------
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions, evidence) values
  ('00000000-0000-0000-0000-0000001900c6', '+15550003006', 'ivr_only', (select actions from menu),
   '{"prompts": ["press 1"], "fingerprint": "press 1"}');
create temp table v1 as select pg_temp.call('+15550003006') as j;
select is((select j -> 'listen' ->> 'purpose' from v1), 'verify', 'a replayed IVR: a verification run');
select is(pg_temp.sqlstate_of(format('select public.invalidate_classification(%L, %L)', (select pg_temp.run(j) from v1), '  ')),
          '22023', 'a blank reason is refused');
create temp table inv1 as
  select public.invalidate_classification(pg_temp.run(j), 'another prompt: "for billing press 2"') as a from v1;
select is((select a from inv1),
          '{"ok": true, "purpose": "learn", "classification_id": "00000000-0000-0000-0000-0000001900c6"}',
          'invalidated: the run goes on as a learning run');
select row_eq($$select is_active, invalidated_at, invalidated_reason from public.call_classifications
                 where id = '00000000-0000-0000-0000-0000001900c6'$$,
              row(false, now(), 'another prompt: "for billing press 2"'::text),
              'the classification is deactivated, with when and why');
select row_eq($$select purpose, status, invalidated_reason, verified_classification_id from public.classification_runs
                 where id = (select pg_temp.run(j) from v1)$$,
              row('learn'::text, 'listening'::text, 'another prompt: "for billing press 2"'::text,
                  '00000000-0000-0000-0000-0000001900c6'::uuid),
              'the run: learn, still listening, the reason and the classification it invalidated');
select is(public.invalidate_classification((select pg_temp.run(j) from v1), 'again'), (select a from inv1),
          'invalidated again: the same answer');
select is((select invalidated_reason from public.call_classifications where id = '00000000-0000-0000-0000-0000001900c6'),
          'another prompt: "for billing press 2"', 'and nothing changed');
select is((select j -> 'listen' from pg_temp.call('+15550003006') as j), 'null'::jsonb,
          'a call meanwhile: no listener (the same call is learning)');
select is(public.record_classification_run((select pg_temp.run(j) from v1),
            pg_temp.verdict('ivr_only', 0.9, '[{"action": "dtmf", "value": "2", "timing_ms": 3000}]'), null, 20) ->> 'cached',
          'true', 'its result: the new menu is cached');
select is((select ivr_actions -> 0 ->> 'value' from pg_temp.active('+15550003006')), '2', 'the next call replays the new path');
select is(public.invalidate_classification((select pg_temp.run(j) from v1), 'late'), (select a from inv1),
          'invalidated after it finished: still the first answer');

-- Invalidation lifts the 30-day rule even when the call learns nothing
insert into public.call_classifications (phone_number, classification_type, ivr_actions) values
  ('+15550003007', 'ivr_only', (select actions from menu));
create temp table v2 as select pg_temp.call('+15550003007') as j;
select is(public.invalidate_classification((select pg_temp.run(j) from v2), 'a person answered') ->> 'purpose', 'learn',
          'a verification run invalidates');
select is(public.record_classification_run((select pg_temp.run(j) from v2), pg_temp.verdict('voicemail', 0.9), null, null) ->> 'cached',
          'false', 'and hears a voicemail: nothing cached');
select is((select j -> 'listen' ->> 'purpose' from pg_temp.call('+15550003007') as j), 'learn',
          'the next call learns (the invalidated classification no longer blocks it)');

-- Invalidation while another learning run of the phone listens: the verification just finishes
insert into public.call_classifications (id, phone_number, classification_type, ivr_actions) values
  ('00000000-0000-0000-0000-0000001900c8', '+15550003008', 'ivr_only', (select actions from menu));
create temp table v3 as select pg_temp.call('+15550003008') as j;
update public.call_classifications set classification_expires_at = now() - interval '1 second'
 where id = '00000000-0000-0000-0000-0000001900c8';
create temp table l3 as select pg_temp.call('+15550003008') as j;
select is((select j -> 'listen' ->> 'purpose' from l3), 'learn', '(the classification expired: a call learns meanwhile)');
select is(public.invalidate_classification((select pg_temp.run(j) from v3), 'changed'),
          '{"ok": true, "purpose": "verify", "classification_id": "00000000-0000-0000-0000-0000001900c8"}',
          'another learning run listens: the verification run does not turn into one');
select row_eq($$select status, invalidated_reason, finished_at from public.classification_runs where id = (select pg_temp.run(j) from v3)$$,
              row('finished'::text, 'changed'::text, now()), 'it finishes, with the reason');
select is((select invalidated_reason from public.call_classifications where id = '00000000-0000-0000-0000-0000001900c8'),
          'changed', 'the classification is invalidated all the same');
select is(public.record_classification_run((select pg_temp.run(j) from v3), pg_temp.verdict('ivr_only', 0.9, (select actions from menu)), null, null),
          '{"ok": true, "cached": false, "classification_id": null}', 'its result afterwards changes nothing');

-- What invalidate_classification refuses
select is(public.invalidate_classification((select pg_temp.run(j) from l3), 'x'), '{"ok": false, "reason": "not_verify"}',
          'a learning run: not_verify');
select is(public.invalidate_classification((select pg_temp.run(j) from c2), 'x'), '{"ok": false, "reason": "not_listening"}',
          'a finished verification run: not_listening');
select is(public.invalidate_classification('00000000-0000-0000-0000-0000001900ff', 'x'), null, 'an unknown run: null');
insert into public.call_classifications (phone_number, classification_type, ivr_actions) values
  ('+15550003012', 'ivr_only', (select actions from menu));
create temp table v4 as select pg_temp.call('+15550003012') as j;
update public.classification_runs set created_at = now() - interval '2 hours' where id = (select pg_temp.run(j) from v4);
select is(public.invalidate_classification((select pg_temp.run(j) from v4), 'x'), '{"ok": false, "reason": "not_listening"}',
          'a verification run past its lease: not_listening');
select is((select is_active from pg_temp.active('+15550003012')), true, 'its classification stays active');
select row_eq($$select purpose, status, invalidated_reason from public.classification_runs where id = (select pg_temp.run(j) from l3)$$,
              row('learn'::text, 'listening'::text, null::text), 'a refusal writes nothing');

-- Abandoned runs do not block ------------------------------------------------------------------------------------
create temp table s1 as select pg_temp.call('+15550003009') as j;
update public.classification_runs set created_at = now() - interval '61 minutes' where id = (select pg_temp.run(j) from s1);
select is(public.begin_listening((select (j ->> 'session_id')::uuid from s1), (select j -> 'listen' ->> 'token' from s1)),
          '{"ok": false, "reason": "not_listening"}', 'a run past its lease (1 hour) may not begin');
create temp table s2 as select pg_temp.call('+15550003009') as j;
select is((select j -> 'listen' ->> 'purpose' from s2), 'learn', 'a run past its lease does not block the phone: the next call learns');
select is((select status from public.classification_runs where id = (select pg_temp.run(j) from s1)), 'abandoned',
          'the old run is abandoned');
select is(public.record_classification_run((select pg_temp.run(j) from s1), pg_temp.verdict('human', 0.9), null, null),
          '{"ok": false, "reason": "abandoned"}', 'a result for an abandoned run is refused');
select is((select count(*)::int from public.call_classifications where phone_number = '+15550003009'), 0,
          'and caches nothing');

-- A call that ended without a result: blocks for 2 minutes (the listener's last result may be on its way), then not
select public.apply_twilio_status(call_sid, 'completed', null, null, 30) from public.call_sessions
 where id = (select (j ->> 'session_id')::uuid from s2);
update public.call_sessions set ended_at = now() - interval '1 minute' where id = (select (j ->> 'session_id')::uuid from s2);
select is((select j -> 'listen' from pg_temp.call('+15550003009') as j), 'null'::jsonb,
          'a call ended a minute ago: its run still blocks the phone');
update public.call_sessions set ended_at = now() - interval '3 minutes' where id = (select (j ->> 'session_id')::uuid from s2);
select is((select j -> 'listen' ->> 'purpose' from pg_temp.call('+15550003009') as j), 'learn',
          'ended 3 minutes ago without a result: the next call learns');
select is((select status from public.classification_runs where id = (select pg_temp.run(j) from s2)), 'abandoned',
          'that run is abandoned');

-- The sweep abandons what no call of the phone will
create temp table s3 as select pg_temp.call('+15550003010') as j;
update public.classification_runs set created_at = now() - interval '2 hours' where id = (select pg_temp.run(j) from s3);
select is(public.sweep_stale_sessions() -> 'runs_abandoned', '2'::jsonb,
          'the sweep abandons the stale runs (this one and the verification run past its lease above)');
select row_eq($$select status, finished_at from public.classification_runs where id = (select pg_temp.run(j) from s3)$$,
              row('abandoned'::text, now()), 'the run past its lease among them');
select is((select count(*)::int from public.classification_runs where status = 'listening' and created_at < now() - interval '1 hour'),
          0, 'no listening run is past its lease');
select is(public.sweep_stale_sessions() -> 'runs_abandoned', '0'::jsonb, 'a second sweep: nothing more');
select is((select status from public.classification_runs where id = (select pg_temp.run(j) from c1)), 'finished',
          'finished runs are left alone');

select * from finish();
rollback;
