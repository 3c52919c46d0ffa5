-- The providers' circuit breaker (sql/schema/35_breaker.sql): every transition, what the claims and re-sends
-- answer while it is not closed, attempts given back, the probe, and the providers' refusals per day.
begin;
select plan(68);

select test_fixtures.open_policy();

-- The breaker in one line: state, Twilio's and VAPI's failures, whether a probe is set.
create function pg_temp.breaker() returns text language sql as $$
  select concat_ws(' / ', state, twilio_failures, vapi_failures, case when probe_session_id is not null then 'probe' end)
    from outcall_private.provider_breaker
$$;
-- The row in one line: status, attempts, attempt_offset, max_attempts.
create function pg_temp.row_state(p_id uuid) returns text language sql as $$
  select concat_ws(' / ', call_status, attempts, attempt_offset, max_attempts) from public.pending_calls where id = p_id
$$;
-- The transitions logged so far, oldest first: "from>to reason failures provider".
create function pg_temp.transitions() returns text[] language sql as $$
  select coalesce(array_agg(concat_ws(' ', from_state || '>' || to_state, reason, failures, provider) order by id), '{}')
    from public.breaker_transitions
$$;
-- A fresh row claimed; returns its session.
create function pg_temp.claimed(p_n int, p_max_attempts int default 3) returns uuid language sql as $$
  select test_fixtures.claim(test_fixtures.new_call(('00000000-0000-0000-0000-0000000b' || lpad(p_n::text, 4, '0'))::uuid,
                                                    p_max_attempts))
$$;
create function pg_temp.row_of(p_session uuid) returns uuid language sql as $$
  select pending_call_id from public.call_sessions where id = p_session
$$;
create function pg_temp.errors(p_provider text, p_kind text) returns int language sql as $$
  select coalesce((select count from public.provider_errors_daily
                    where day = (now() at time zone 'UTC')::date and provider = p_provider and kind = p_kind), 0)
$$;
create function pg_temp.report(p_session uuid, p_reason text) returns jsonb language sql as $$
  select public.apply_call_report(pg_temp.row_of(p_session), 'vapi-' || p_session, 'not_reached', p_reason,
                                  null, null, null, null, null, null)
$$;

-- The policy and the shape ---------------------------------------------------------------------------------------
select is((select (breaker_failures, breaker_window, breaker_cooldown)::text from outcall_private.dispatch_policy),
          '(5,00:01:00,00:00:30)', 'the policy: 5 failures within 1 minute open it for a 30 s cool-down');
select is(pg_temp.breaker(), 'closed / 0 / 0', 'the breaker starts closed');
select ok(exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'
                   and tablename = 'breaker_transitions'), 'the transitions are in the Realtime publication (the dashboard)');
select has_function('public', 'release_dial_slot', array['uuid', 'text']);
select hasnt_function('public', 'release_dial_slot', array['uuid'], 'the 1-argument version is gone');

-- closed: failures count, a success resets them, a 429 is quota --------------------------------------------------
select pg_temp.claimed(1) as s1 \gset
select is(public.release_dial_slot(:'s1', 'unavailable'), '{"released": true}'::jsonb,
          'a 503 released: counted, no transition to report');
select is(public.release_dial_slot(:'s1', 'throttled'), '{"released": false}'::jsonb, 'a 429 released');
select is(pg_temp.breaker(), 'closed / 1 / 0', 'a 503 counts towards the breaker, a 429 does not');
select is(array[pg_temp.errors('twilio', 'unavailable'), pg_temp.errors('twilio', 'throttled')], array[1, 1],
          'both counted for the day, by kind');
select throws_ok($$select public.release_dial_slot('$$ || :'s1' || $$', 'bogus')$$, '22023', null,
                 'an unknown failure kind is refused');
select is(public.record_dial_result(:'s1', 'CA01', null, null) ->> 'call_status', 'calling', 'then the call is created');
select is(pg_temp.breaker(), 'closed / 0 / 0', 'a created call resets Twilio''s failures');
select is(pg_temp.transitions(), '{}'::text[], 'no transition yet');

-- Failures older than the window start a new run.
select pg_temp.claimed(2) as s2 \gset
select public.release_dial_slot(:'s2', 'unavailable');
select public.release_dial_slot(:'s2', 'unavailable');
update outcall_private.provider_breaker set twilio_first_failure_at = now() - interval '61 seconds';
select public.release_dial_slot(:'s2', 'unavailable');
select is(pg_temp.breaker(), 'closed / 1 / 0', 'a run older than breaker_window starts again at 1');
select ok((select twilio_first_failure_at = now() from outcall_private.provider_breaker), 'from now');

-- closed -> open: the fifth consecutive failure ----------------------------------------------------------------
select pg_temp.claimed(4, 1) as s4 \gset
select pg_temp.claimed(5, 1) as s5 \gset
select public.release_dial_slot(:'s2', 'unavailable');
select public.release_dial_slot(:'s2', 'unavailable');
select public.release_dial_slot(:'s2', 'unavailable');
select is(pg_temp.breaker(), 'closed / 4 / 0', 'four failures: still closed');
select is(public.release_dial_slot(:'s2', 'unavailable'),
          '{"released": false, "breaker": {"from": "closed", "to": "open", "reason": "failures", "failures": 5, "provider": "twilio"}}'::jsonb,
          'the fifth opens it, and the answer reports the transition');
select is(pg_temp.breaker(), 'open / 5 / 0', 'open');
select ok((select opened_at = now() and reopen_at = now() + interval '30 seconds' from outcall_private.provider_breaker),
          'opened now, reopens after the cool-down');
select is(pg_temp.transitions(), array['closed>open failures 5 twilio'], 'logged');

-- open: claims refuse, re-sends wait, nothing counts as an attempt ------------------------------------------------
select test_fixtures.new_call('00000000-0000-0000-0000-0000000b0003') is not null as n3 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000b0003'),
          '{"claimed": false, "reason": "breaker_open", "retry_after_ms": 30000}'::jsonb,
          'claim_pending_call: breaker_open until the cool-down ends');
select is(public.claim_next_due(), '{"claimed": false, "reason": "breaker_open", "retry_after_ms": 30000}'::jsonb,
          'claim_next_due likewise, before touching a row');
select is(pg_temp.row_state('00000000-0000-0000-0000-0000000b0003'), 'pending / 0 / 0 / 3', 'the row stays due, untouched');
select is(public.reserve_dial_slot(:'s2'), '{"outcome": "wait", "retry_after_ms": 30000, "reason": "breaker_open"}'::jsonb,
          'reserve_dial_slot: a re-send waits, saying why');
select is(public.record_dial_result(:'s2', null, 'twilio 503', '20503') - array['session_id', 'breaker'],
          jsonb_build_object('pending_call_id', pg_temp.row_of(:'s2'), 'call_status', 'retry_pending', 'changed', true,
                             'attempt_given_back', true),
          'a dial that fails while open gives its attempt back (one transaction here: the breaker it reports is the one s2 opened)');
select is(pg_temp.row_state(pg_temp.row_of(:'s2')), 'retry_pending / 1 / 1 / 4',
          'attempts stay unique (1 used), the round''s budget is unchanged (4 - 1 = 3)');
select ok((select next_attempt_at = now() + interval '30 seconds' from public.pending_calls where id = pg_temp.row_of(:'s2')),
          'due again when the cool-down ends, not after the retry delay');
select is(pg_temp.breaker(), 'open / 5 / 0', 'failures while open change nothing');
-- A row on its last attempt is given it back too; a permanent refusal is not (it would fail again).
select is(public.record_dial_result(:'s4', null, 'twilio did not answer', null, true, 'unavailable') ->> 'call_status',
          'retry_pending', 'its only attempt given back: retry_pending, not failed');
select is(pg_temp.row_state(pg_temp.row_of(:'s4')), 'retry_pending / 1 / 1 / 2', 'budget of the round still 1');
select is(public.record_dial_result(:'s5', null, 'invalid number', '21211', false) ->> 'call_status', 'failed',
          'a permanent refusal while open fails as always');
select is(pg_temp.row_state(pg_temp.row_of(:'s5')), 'failed / 1 / 0 / 1', 'and keeps its count');

-- open -> half_open: after the cool-down, one claim is the probe ------------------------------------------------
update outcall_private.provider_breaker set reopen_at = now() - interval '1 millisecond';
select public.claim_pending_call('00000000-0000-0000-0000-0000000b0003') as probe_claim \gset
select is((:'probe_claim'::jsonb) -> 'breaker',
          '{"from": "open", "to": "half_open", "reason": "cooldown_over", "failures": 5, "provider": null}'::jsonb,
          'the first claim after the cool-down is the probe, and says so');
select is(pg_temp.breaker(), 'half_open / 5 / 0 / probe', 'half_open, with its probe');
select is((select probe_session_id from outcall_private.provider_breaker), (:'probe_claim'::jsonb ->> 'session_id')::uuid,
          'the probe is that claim''s session');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000b0006') is not null as n6 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000b0006'),
          '{"claimed": false, "reason": "breaker_open", "retry_after_ms": 1000}'::jsonb,
          'others keep refusing while the probe is out');
select is(public.claim_next_due() ->> 'reason', 'breaker_open', 'claim_next_due too');
select is(public.reserve_dial_slot(:'s1') ->> 'outcome', 'settled', '(a settled session is just settled)');
select is(public.release_dial_slot((:'probe_claim'::jsonb ->> 'session_id')::uuid, 'throttled') - 'breaker',
          '{"released": true}'::jsonb, 'the probe''s try answered 429: quota, the probe goes on');
select is(pg_temp.breaker(), 'half_open / 5 / 0 / probe', 'still half-open with its probe');
select is(public.reserve_dial_slot((:'probe_claim'::jsonb ->> 'session_id')::uuid), '{"outcome": "reserved"}'::jsonb,
          'the probe''s own re-send is let through');

-- half_open -> open: the probe's create fails ------------------------------------------------------------------
select is(public.release_dial_slot((:'probe_claim'::jsonb ->> 'session_id')::uuid, 'unavailable') -> 'breaker',
          '{"from": "half_open", "to": "open", "reason": "probe_failed", "failures": 6, "provider": "twilio"}'::jsonb,
          'the probe''s failure reopens it');
select is(pg_temp.breaker(), 'open / 6 / 0', 'open again, no probe');
select ok((select reopen_at = now() + interval '30 seconds' from outcall_private.provider_breaker), 'for another cool-down');
select is(public.record_dial_result((:'probe_claim'::jsonb ->> 'session_id')::uuid, null, 'twilio 503', '20503')
            ->> 'attempt_given_back', 'true', 'the probe''s attempt is given back too');
select is(pg_temp.row_state('00000000-0000-0000-0000-0000000b0003'), 'retry_pending / 1 / 1 / 4', 'its budget unchanged');

-- A lost probe is replaced: its session stopped dialing without a call, or it is older than the lease ----------------
update outcall_private.provider_breaker set reopen_at = now() - interval '1 millisecond';
select (public.claim_pending_call('00000000-0000-0000-0000-0000000b0006') ->> 'session_id')::uuid as probe2 \gset
select is(pg_temp.breaker(), 'half_open / 6 / 0 / probe', 'a second probe');
update outcall_private.provider_breaker set probe_started_at = now() - interval '3 minutes';
select test_fixtures.new_call('00000000-0000-0000-0000-0000000b0007') is not null as n7 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000b0007') -> 'breaker',
          '{"from": "half_open", "to": "half_open", "reason": "probe_lost", "failures": 6, "provider": null}'::jsonb,
          'a probe never heard of for dial_request_lease() is replaced by the next claim');
select is((select probe_session_id from outcall_private.provider_breaker),
          (select id from public.call_sessions where pending_call_id = '00000000-0000-0000-0000-0000000b0007'),
          'the new probe');
select public.record_dial_result((select probe_session_id from outcall_private.provider_breaker), null, 'unauthorized', '20003', false);
select is(pg_temp.breaker(), 'half_open / 6 / 0 / probe', 'a probe refused for another reason than an outage decides nothing');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000b0008') is not null as n8 \gset
select is(public.claim_pending_call('00000000-0000-0000-0000-0000000b0008') -> 'breaker' ->> 'reason', 'probe_lost',
          'but it is no longer dialing: the next claim probes');

-- half_open -> closed: the probe's call is created -------------------------------------------------------------
select is(public.record_dial_result((select probe_session_id from outcall_private.provider_breaker), 'CA08', null, null) -> 'breaker',
          '{"from": "half_open", "to": "closed", "reason": "probe_succeeded", "failures": 6, "provider": "twilio"}'::jsonb,
          'the probe''s CallSid closes it');
select is(pg_temp.breaker(), 'closed / 0 / 0', 'closed, failures reset');
select test_fixtures.new_call('00000000-0000-0000-0000-0000000b0009') is not null as n9 \gset
select is((public.claim_pending_call('00000000-0000-0000-0000-0000000b0009') ->> 'session_id') is not null, true,
          'claims dial again');
select is(pg_temp.transitions(), array['closed>open failures 5 twilio', 'open>half_open cooldown_over 5',
                                       'half_open>open probe_failed 6 twilio', 'open>half_open cooldown_over 6',
                                       'half_open>half_open probe_lost 6', 'half_open>half_open probe_lost 6',
                                       'half_open>closed probe_succeeded 6 twilio'],
          'every transition logged, in order');

-- VAPI: assistant-request failures open it, concurrency refusals are quota -------------------------------------
select count(pg_temp.claimed(10 + n)) from generate_series(1, 6) as n;
select public.record_dial_result(s.id, 'CAV' || s.attempt || s.pending_call_id, null, null)
  from public.call_sessions as s where s.pending_call_id::text like '00000000-0000-0000-0000-0000000b001_' and s.status = 'dialing';
select is(pg_temp.report(s.id, 'assistant-request-failed') ->> 'changed', 'true', 'an assistant-request failure')
  from public.call_sessions as s where s.pending_call_id = '00000000-0000-0000-0000-0000000b0011';
select is(pg_temp.breaker(), 'closed / 0 / 1', 'counts towards the breaker as VAPI''s');
select pg_temp.report(s.id, 'customer-ended-call')
  from public.call_sessions as s where s.pending_call_id = '00000000-0000-0000-0000-0000000b0012';
select is(pg_temp.breaker(), 'closed / 0 / 0', 'a report with another reason resets VAPI''s failures');
select pg_temp.report(s.id, 'call.start.error-subscription-concurrency-limit-reached')
  from public.call_sessions as s where s.pending_call_id = '00000000-0000-0000-0000-0000000b0013';
select is(array[pg_temp.errors('vapi', 'throttled'), pg_temp.errors('vapi', 'unavailable')], array[1, 1],
          'a concurrency refusal is VAPI quota, counted for the day');
select pg_temp.report(s.id, r)
  from public.call_sessions as s,
       unnest(array['assistant-request-returned-error', 'assistant-request-returned-invalid-assistant',
                    'assistant-request-returned-no-assistant', 'assistant-request-returned-unspeakable-error']) as r
 where s.pending_call_id = '00000000-0000-0000-0000-0000000b0014';
select is(pg_temp.breaker(), 'closed / 0 / 1', 'one report per session: a duplicate counts nothing');
update outcall_private.provider_breaker set vapi_failures = 4, vapi_first_failure_at = now();
select pg_temp.report(s.id, 'assistant-request-returned-error')
  from public.call_sessions as s where s.pending_call_id = '00000000-0000-0000-0000-0000000b0015';
select is(pg_temp.breaker(), 'open / 0 / 5', 'the fifth VAPI failure in a row opens it');
select is((pg_temp.transitions())[8], 'closed>open failures 5 vapi', 'logged as VAPI''s');

-- provider_health --------------------------------------------------------------------------------------------------
select is((public.provider_health() -> 'breaker') - array['opened_at', 'reopen_at', 'changed_at'],
          '{"state": "open", "twilio_failures": 0, "vapi_failures": 5, "probe_started_at": null, "failures_to_open": 5,
            "window_ms": 60000, "cooldown_ms": 30000}'::jsonb, 'provider_health: the breaker and its policy');
select is(jsonb_array_length(public.provider_health(3) -> 'transitions'), 3, 'the last p_transitions transitions');
select is(public.provider_health() -> 'transitions' -> 0 ->> 'reason', 'failures', 'newest first');
select is(public.provider_health() -> 'errors',
          jsonb_build_array(
            jsonb_build_object('day', (now() at time zone 'UTC')::date, 'provider', 'twilio', 'kind', 'throttled', 'count', 2, 'last_at', now()),
            jsonb_build_object('day', (now() at time zone 'UTC')::date, 'provider', 'twilio', 'kind', 'unavailable', 'count', 10, 'last_at', now()),
            jsonb_build_object('day', (now() at time zone 'UTC')::date, 'provider', 'vapi', 'kind', 'throttled', 'count', 1, 'last_at', now()),
            jsonb_build_object('day', (now() at time zone 'UTC')::date, 'provider', 'vapi', 'kind', 'unavailable', 'count', 3, 'last_at', now())),
          'the refusals of the day by provider and kind');
select throws_ok('select public.provider_health(0)', '22023', null, 'p_transitions 1..200');
select throws_ok('select public.provider_health(20, 91)', '22023', null, 'p_days 1..90');

select * from finish();
rollback;
