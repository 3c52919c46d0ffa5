-- 90: privileges and row-level security, all of them.
--   anon:          nothing at all (no table privilege, no policy, no function).
--   authenticated: read-only (dashboards), and only an operator: SELECT privilege + a policy that reads every
--                  row when the caller is on the allow-list (outcall_private.is_viewer(), 85_operators.sql), none
--                  otherwise. No write privilege. Realtime's postgres_changes checks the same policies per
--                  subscriber, so the live feed follows the same rule. The one way to write: the operators'
--                  action functions (87_operator_actions.sql), SECURITY DEFINER, which refuse (42501) anyone
--                  but an operator with role operator.
--   service_role:  everything (bypasses RLS); the only role that may execute the state-machine functions.
-- Supabase grants everything in `public` to anon/authenticated by default, so each grant here is explicit.
-- Functions are executable by PUBLIC by default and that cannot be revoked per schema ahead of time: a function
-- added to the schema is revoked (and granted to service_role when the RPCs need it) here.
-- sql/tests/08_security.sql checks what each role may do.

-- Tables -------------------------------------------------------------------------------------------
alter table public.pending_calls enable row level security;
alter table public.call_sessions enable row level security;
alter table public.call_classifications enable row level security;
alter table public.batches enable row level security;
alter table public.classification_runs enable row level security;
alter table public.operator_actions enable row level security;
alter table public.sms_batches enable row level security;
alter table public.sms_messages enable row level security;
alter table public.sms_replies enable row level security;
alter table public.sms_opt_outs enable row level security;
alter table public.suppression_list enable row level security;
alter table public.breaker_transitions enable row level security;
alter table public.provider_errors_daily enable row level security;

revoke all on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  from public, anon, authenticated;
grant select on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  to authenticated;
grant all on table public.pending_calls, public.call_sessions, public.call_classifications, public.batches,
  public.classification_runs, public.operator_actions, public.sms_batches, public.sms_messages, public.sms_replies,
  public.sms_opt_outs, public.suppression_list, public.breaker_transitions, public.provider_errors_daily
  to service_role;

-- Operators (viewer or operator) read every row; any other signed-in user reads none. `(select ...)`: the
-- check runs once per statement, not once per row.
create policy "operators can read" on public.pending_calls
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.call_sessions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.call_classifications
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.batches
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.classification_runs
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.operator_actions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_batches
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_messages
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_replies
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.sms_opt_outs
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.suppression_list
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.breaker_transitions
  for select to authenticated using ((select outcall_private.is_viewer()));
create policy "operators can read" on public.provider_errors_daily
  for select to authenticated using ((select outcall_private.is_viewer()));

-- The view over batches. security_invoker: the caller's rights and RLS on public.batches apply (a view without it
-- reads with its owner's rights, postgres's, and would bypass RLS). Every view in public must be so
-- (sql/tests/18_operators.sql checks).
revoke all on table public.batch_progress from public, anon, authenticated, service_role;
grant select on table public.batch_progress to authenticated, service_role;
-- The dashboard's views (88_analytics.sql), security_invoker likewise.
revoke all on table public.call_list, public.analytics_success_by_clinic, public.analytics_answer_rate_by_hour,
  public.analytics_outcomes_daily, public.analytics_cost_daily, public.analytics_cost_by_batch,
  public.analytics_learning_daily
  from public, anon, authenticated, service_role;
grant select on table public.call_list, public.analytics_success_by_clinic, public.analytics_answer_rate_by_hour,
  public.analytics_outcomes_daily, public.analytics_cost_daily, public.analytics_cost_by_batch,
  public.analytics_learning_daily
  to authenticated, service_role;

-- The state-machine functions (RPC) ---------------------------------------------------------------
revoke all on function
  public.claim_pending_call(uuid),
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.release_dial_slot(uuid, text),
  public.record_dial_result(uuid, text, text, text, boolean, text),
  public.provider_health(int, int),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid, text),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean),
  public.create_batch(jsonb),
  public.estimate_batch_cost(jsonb),
  public.sessions_lacking_price(int),
  public.record_twilio_price(uuid, numeric, text),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid),
  public.pause_batch(uuid),
  public.resume_batch(uuid),
  public.begin_listening(uuid, text),
  public.record_classification_run(uuid, jsonb, jsonb, numeric),
  public.invalidate_classification(uuid, text),
  public.create_sms_batch(jsonb),
  public.claim_sms(int, int),
  public.record_sms_send(uuid, text, text, text, int, int, text, int),
  public.sms_status_callback(text, text, int, uuid, int, numeric),
  public.record_sms_reply(text, text, text, text, text),
  public.sms_batch_status(uuid),
  public.sms_batch_messages(uuid, int, int),
  public.cancel_sms_batch(uuid),
  public.sms_to_reconcile(int, int),
  public.reconcile_sms(uuid, text, text),
  public.add_suppression(text, text, text, text),
  public.remove_suppression(text),
  public.list_suppressions(int, int)
  from public, anon, authenticated;
grant execute on function
  public.claim_pending_call(uuid),
  public.claim_next_due(),
  public.reserve_dial_slot(uuid),
  public.release_dial_slot(uuid, text),
  public.record_dial_result(uuid, text, text, text, boolean, text),
  public.provider_health(int, int),
  public.apply_twilio_status(text, text, int, text, int, uuid),
  public.call_context(uuid, text),
  public.apply_vapi_status(uuid, text, text),
  public.apply_call_report(uuid, text, text, text, text, text, jsonb, text, numeric, numeric),
  public.sweep_stale_sessions(int),
  public.reconcile_dialing_session(uuid, jsonb, boolean),
  public.create_batch(jsonb),
  public.estimate_batch_cost(jsonb),
  public.sessions_lacking_price(int),
  public.record_twilio_price(uuid, numeric, text),
  public.batch_status(uuid, int, int),
  public.batch_progress_of(uuid),
  public.list_batches(int, int),
  public.batch_transcripts(uuid, int, int),
  public.cancel_batch(uuid),
  public.retry_failed_batch(uuid),
  public.pause_batch(uuid),
  public.resume_batch(uuid),
  public.begin_listening(uuid, text),
  public.record_classification_run(uuid, jsonb, jsonb, numeric),
  public.invalidate_classification(uuid, text),
  public.create_sms_batch(jsonb),
  public.claim_sms(int, int),
  public.record_sms_send(uuid, text, text, text, int, int, text, int),
  public.sms_status_callback(text, text, int, uuid, int, numeric),
  public.record_sms_reply(text, text, text, text, text),
  public.sms_batch_status(uuid),
  public.sms_batch_messages(uuid, int, int),
  public.cancel_sms_batch(uuid),
  public.sms_to_reconcile(int, int),
  public.reconcile_sms(uuid, text, text),
  public.add_suppression(text, text, text, text),
  public.remove_suppression(text),
  public.list_suppressions(int, int)
  to service_role;

-- The operators' actions (87_operator_actions.sql): SECURITY DEFINER, executable by signed-in users, who are
-- refused inside (42501) unless the allow-list names them operator; service_role may call them with a user's JWT.
revoke all on function
  public.operator_call_action(text, uuid[]),
  public.operator_batch_action(uuid, text),
  public.operator_classification_action(uuid, text, jsonb),
  public.operator_suppression_action(text, text, text, text)
  from public, anon, authenticated;
grant execute on function
  public.operator_call_action(text, uuid[]),
  public.operator_batch_action(uuid, text),
  public.operator_classification_action(uuid, text, jsonb),
  public.operator_suppression_action(text, text, text, text)
  to authenticated, service_role;

-- outcall_private: not exposed by the API, closed to the API roles ---------------------------------
revoke all on schema outcall_private from public, anon, authenticated;
revoke all on all functions in schema outcall_private from public, anon, authenticated;
revoke all on all tables in schema outcall_private from public, anon, authenticated;
-- The state-machine functions run with the caller's rights and share private helpers.
grant usage on schema outcall_private to service_role;

-- The operators' allow-list (85_operators.sql): written by postgres and service_role only, read by the API roles
-- only through is_viewer(), which every read policy calls as the querying user (hence its one grant to
-- authenticated; calling it needs no USAGE on the schema, the policy holds the function itself, not its name).
revoke all on table outcall_private.operators from public, anon, authenticated;
grant select, insert, update, delete on table outcall_private.operators to service_role;
grant execute on function outcall_private.is_viewer() to authenticated;
-- operator_of (85_operators.sql): the Worker asks it for a user whose JWT it verified; no user may ask it.
revoke all on function public.operator_of(uuid) from public, anon, authenticated;
grant execute on function public.operator_of(uuid) to service_role;
grant execute on function
  outcall_private.operator_role(),
  outcall_private.add_operator(text, text),
  outcall_private.remove_operator(text)
  to service_role;

-- The webhook's settings: postgres's only (the trigger functions that read them are SECURITY DEFINER).
revoke all on table outcall_private.settings from public, anon, authenticated, service_role;
-- The RPCs run with the caller's rights: service_role reads the policy and the live sessions, writes the rate
-- state, the send slots and the learned answer rates. It does not change the policy (that is postgres's, like the webhook settings).
grant select on table outcall_private.dispatch_policy, outcall_private.live_sessions to service_role;
grant select, update on table outcall_private.rate_state to service_role;
-- The day's spend (the daily cap's figure): read by the claim, written by the call_sessions trigger (definer).
grant select on table outcall_private.daily_spend to service_role;
grant select, insert, update, delete on table outcall_private.dial_requests to service_role;
-- The batches' turns and paces: the claims make a batch's row and move it.
grant select, insert, update on table outcall_private.batch_dispatch_state to service_role;
-- The providers' circuit breaker (35_breaker.sql): the RPCs move it.
grant select, update on table outcall_private.provider_breaker to service_role;
grant select, insert, update on table outcall_private.answer_rate_cache to service_role;
-- The SMS senders' pace: claim_sms makes a sender's row and moves its next slot.
grant select, insert, update on table outcall_private.sms_senders to service_role;

-- Check constraints run their function with the inserting role's rights: the writer needs EXECUTE
-- (not schema USAGE) on the validation helpers. Trigger functions need no grant. The RPCs share the rest.
grant execute on function
  outcall_private.is_e164(text),
  outcall_private.is_valid_timezone(text),
  outcall_private.ivr_actions_valid(jsonb),
  outcall_private.policy(),
  outcall_private.interval_ms(interval),
  outcall_private.calling_window_opening(text, timestamptz, int[], time, time),
  outcall_private.calling_window_opening(text, timestamptz),
  outcall_private.row_window_opening(public.pending_calls, timestamptz),
  outcall_private.retry_at(text, int),
  outcall_private.week_slot(int, int),
  outcall_private.clinic_answer_rates(text, text, int),
  outcall_private.learned_answer_rates(text, text, outcall_private.dispatch_policy),
  outcall_private.smart_attempt_at(public.pending_calls, timestamptz, timestamptz),
  outcall_private.batch_smart_starts(jsonb, uuid[], timestamptz, int[], time, time, timestamptz),
  outcall_private.retry_at(public.pending_calls, timestamptz),
  outcall_private.advance_pending_call(public.pending_calls, int, text, text),
  outcall_private.lock_dispatch_limits(),
  outcall_private.dial_request_lease(),
  outcall_private.vapi_context_fields(),
  outcall_private.dial_spacing(),
  outcall_private.send_slot_wait(uuid),
  outcall_private.limits_answer(),
  outcall_private.batch_limits_answer(uuid),
  outcall_private.batch_is_paused(uuid),
  outcall_private.note_turn(uuid),
  outcall_private.next_due_row(uuid),
  outcall_private.set_batch_paused(uuid, boolean),
  outcall_private.api_key_pause(uuid, boolean),
  outcall_private.post_pending_call_webhook(text, text, uuid),
  outcall_private.take_dial_slot(uuid),
  outcall_private.release_dial_slot(uuid),
  outcall_private.release_answered_dial(),
  outcall_private.phone_is_dialing(text),
  outcall_private.dispatch_gate(public.pending_calls),
  outcall_private.call_cost_estimate(boolean),
  outcall_private.batch_cost_estimate(text[]),
  outcall_private.cost_hold(uuid),
  outcall_private.start_attempt(public.pending_calls),
  outcall_private.fail_dial(public.pending_calls, public.call_sessions, text, text, boolean),
  outcall_private.lock_vapi_session(uuid, text),
  outcall_private.batch_progress_json(public.batch_progress),
  outcall_private.check_page(text, int, int),
  outcall_private.lock_batch_changes(uuid),
  outcall_private.idempotent_answer(uuid, text, text, jsonb),
  outcall_private.default_batch_name(timestamptz),
  outcall_private.learning_lease(),
  outcall_private.listening_is_over(public.classification_runs),
  outcall_private.abandon_stale_runs(text),
  outcall_private.open_listener(public.pending_calls, uuid, public.call_classifications),
  outcall_private.batch_status_of(timestamptz, timestamptz, timestamptz),
  outcall_private.sms_status_rank(text),
  outcall_private.is_twilio_sms_status(text),
  outcall_private.is_opted_out(text),
  outcall_private.record_twilio_opt_out(text),
  outcall_private.sms_sender_fields(text),
  outcall_private.undiallable_reason(public.pending_calls, timestamptz),
  outcall_private.suppression_json(public.suppression_list),
  outcall_private.count_provider_error(text, text),
  outcall_private.log_breaker_transition(text, text, text, int, text, uuid),
  outcall_private.breaker_transition_of(uuid),
  outcall_private.breaker_transition_field(uuid),
  outcall_private.breaker_probe_is_live(outcall_private.provider_breaker),
  outcall_private.breaker_answer(uuid),
  outcall_private.breaker_claimed(uuid),
  outcall_private.breaker_failure(uuid, text, text),
  outcall_private.breaker_success(uuid, text),
  outcall_private.give_attempt_back(public.pending_calls),
  outcall_private.due_at_reopen(public.pending_calls),
  outcall_private.vapi_failure_kind(text)
  to service_role;
